//! The HTTP routers. Two surfaces, never mixed in Lambda:
//!
//! * the **agent** surface (the Function URL with `AuthType: AWS_IAM`): the
//!   `/microvms/...` asks, `GET /requests/{id}`, `/healthz`; it never serves
//!   the callback;
//! * the **callback** surface (the public Function URL, `AuthType: NONE`,
//!   on the alias `CALLBACK_FUNCTION_QUALIFIER`): only `POST
//!   /contro1/callback`; anything else is `404` without touching Contro1.
//!
//! Both URLs invoke the same function; the surface is chosen from what the
//! caller cannot forge: the qualifier of the invoked function ARN in the
//! Lambda context (the alias the URL belongs to). Headers and paths play no
//! part. Locally (`launcher serve`, bearer tokens) one listener serves both.
//!
//! Errors are JSON: `{"error": {"code", "message", "field"}}`, without
//! internals (tables, endpoints, error chains go to the log under a
//! `reference` the answer carries).

mod agent;
mod callback;
mod errors;

pub use agent::caller_from_parts;
pub use errors::{ApiError, error, service_error};

use crate::settings::AuthMode;
use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use launcher_core::Service;
use launcher_core::ports::Clock;
use std::sync::Arc;
use tower::ServiceExt;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything a handler needs; built once in `main`.
pub struct AppState {
    pub service: Service,
    pub auth: AuthMode,
    /// The Contro1 webhook secret (never logged).
    pub webhook_secret: Vec<u8>,
    pub webhook_window_seconds: u64,
    /// The alias whose Function URL is the public callback URL.
    pub callback_qualifier: String,
    /// `AWS_REGION`: the region a Function URL event must name.
    pub region: Option<String>,
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("service", &self.service)
            .field("auth", &self.auth)
            .field("webhook_secret", &"<redacted>")
            .field("callback_qualifier", &self.callback_qualifier)
            .finish_non_exhaustive()
    }
}

/// Which surface a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Agent,
    Callback,
}

/// The surface of a Lambda request: the callback surface exactly when the
/// invoked function ARN's qualifier is the callback alias.
pub fn surface<B>(req: &Request<B>, callback_qualifier: &str) -> Surface {
    req.extensions()
        .get::<lambda_http::Context>()
        .map_or(Surface::Agent, |c| {
            surface_of_arn(&c.invoked_function_arn, callback_qualifier)
        })
}

/// The surface of an invoked function ARN: the callback surface exactly
/// when its qualifier is the callback alias.
pub fn surface_of_arn(invoked_function_arn: &str, callback_qualifier: &str) -> Surface {
    if invoked_function_arn.split(':').nth(7) == Some(callback_qualifier) {
        Surface::Callback
    } else {
        Surface::Agent
    }
}

fn not_found_router() -> Router {
    Router::new()
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such route", None) })
}

/// The agent surface: every route but the callback.
pub fn agent_router(state: Arc<AppState>) -> Router {
    agent::routes()
        .with_state(state)
        .merge(not_found_router())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// The callback surface: `POST /contro1/callback` and nothing else.
pub fn callback_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/contro1/callback", post(callback::callback))
        .with_state(state)
        .merge(not_found_router())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// The launcher's routes: in Lambda (`AuthMode::Iam`) each request goes to
/// the surface its Function URL belongs to; locally one router serves both.
pub fn app(state: Arc<AppState>) -> Router {
    match state.auth {
        AuthMode::Bearer => agent::routes()
            .route("/contro1/callback", post(callback::callback))
            .with_state(state)
            .merge(not_found_router())
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        AuthMode::Iam => {
            let qualifier = state.callback_qualifier.clone();
            let agents = agent_router(state.clone());
            let callbacks = callback_router(state);
            Router::new().fallback(move |req: Request<Body>| async move {
                let router = match surface(&req, &qualifier) {
                    Surface::Agent => agents,
                    Surface::Callback => callbacks,
                };
                match router.oneshot(req).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                }
            })
        }
    }
}

/// The healthz route.
pub(crate) fn healthz_route() -> axum::routing::MethodRouter<Arc<AppState>> {
    get(|| async { axum::Json(serde_json::json!({"status": "ok"})) })
}
