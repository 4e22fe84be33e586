//! The HTTP router: one `fn app(state) -> Router`, served by `lambda_http`
//! in Lambda and by a plain tokio listener in `launcher serve`; tests call it
//! with `oneshot`. Handlers decode, call `launcher_core::Service`, encode.
//!
//! Errors are JSON: `{"error": {"code", "message", "field"}}`.

use crate::settings::AuthMode;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use launcher_core::agents::Caller;
use launcher_core::ports::Clock;
use launcher_core::request::{
    Action, AuthTokenRequest, Lifecycle, LifecycleRequest, RunRequest, ShellTokenRequest,
};
use launcher_core::{Resolution, Service, ServiceError, Submitted};
use serde_json::json;
use shared_core::webhook::{self, Callback, Decision};
use std::sync::Arc;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything a handler needs; built once in `main`.
pub struct AppState {
    pub service: Service,
    pub auth: AuthMode,
    /// The Contro1 webhook secret (never logged).
    pub webhook_secret: Vec<u8>,
    pub webhook_window_seconds: u64,
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("service", &self.service)
            .field("auth", &self.auth)
            .field("webhook_secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The launcher's routes.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/microvms/run-request", post(run_request))
        .route(
            "/microvms/{id}/auth-token-request",
            post(auth_token_request),
        )
        .route(
            "/microvms/{id}/shell-token-request",
            post(shell_token_request),
        )
        .route("/microvms/{id}/suspend", post(suspend))
        .route("/microvms/{id}/resume", post(resume))
        .route("/microvms/{id}/terminate", post(terminate))
        .route("/contro1/callback", post(callback))
        .route("/requests/{request_id}", get(get_request))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such route", None) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A JSON error, small enough to pass around before it becomes a response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.status, self.code, &self.message, self.field.as_deref())
    }
}

/// A JSON error answer.
pub fn error(status: StatusCode, code: &str, message: &str, field: Option<&str>) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message, "field": field}})),
    )
        .into_response()
}

async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// The caller as the platform identified it.
fn caller<B>(state: &AppState, req: &Request<B>) -> Caller {
    caller_from_parts(state.auth, req.headers(), req.extensions())
}

/// In Lambda: the IAM principal of the Function URL request context (never
/// a header). Locally: `Authorization: Bearer <token>`.
pub fn caller_from_parts(
    auth: AuthMode,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> Caller {
    match auth {
        AuthMode::Iam => {
            use lambda_http::request::RequestContext;
            let arn = match extensions.get::<RequestContext>() {
                Some(RequestContext::ApiGatewayV2(ctx)) => ctx
                    .authorizer
                    .as_ref()
                    .and_then(|a| a.iam.as_ref())
                    .and_then(|i| i.user_arn.clone()),
                Some(RequestContext::ApiGatewayV1(ctx)) => ctx.identity.user_arn.clone(),
                _ => None,
            };
            arn.map_or(Caller::Anonymous, |arn| Caller::Iam { arn })
        }
        AuthMode::Bearer => headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map_or(Caller::Anonymous, |t| Caller::Bearer {
                token: t.to_string(),
            }),
    }
}

fn body_error(r: &BytesRejection) -> ApiError {
    let status = r.status();
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("request body is larger than {MAX_BODY_BYTES} bytes")
    } else {
        r.body_text()
    };
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "body_too_large"
    } else {
        "bad_body"
    };
    ApiError {
        status,
        code,
        message,
        field: None,
    }
}

/// Decode a JSON body, naming the problem (and the field, when serde knows it).
fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_json",
            message: "request body is empty; expected a JSON object".into(),
            field: None,
        });
    }
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        let field = text
            .split('`')
            .nth(1)
            .filter(|_| text.contains("field `"))
            .map(str::to_string);
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_json",
            message: text,
            field,
        }
    })
}

async fn submit(state: &AppState, caller: Caller, action: Action) -> Response {
    match state.service.submit(&caller, action).await {
        Ok(Submitted::Executed {
            request_id,
            decision,
            result,
            token,
        }) => {
            let mut body = json!({
                "status": "executed",
                "request_id": request_id,
                "decision": decision,
                "result": result,
            });
            if let Some(t) = token {
                body["token"] = json!(t.expose());
            }
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Ok(Submitted::Pending {
            request_id,
            decision,
            state,
        }) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({
                "status": state.as_str(),
                "request_id": request_id,
                "decision": decision,
            })),
        )
            .into_response(),
        Ok(Submitted::Blocked {
            decision,
            audit_record_id,
        }) => (
            StatusCode::FORBIDDEN,
            axum::Json(json!({
                "error": {"code": "blocked", "message": decision.reason, "field": null,
                          "rule_id": decision.rule_id},
                "decision": decision,
                "audit_record_id": audit_record_id,
            })),
        )
            .into_response(),
        Err(e) => service_error(&e),
    }
}

/// Map a use-case error to its HTTP answer.
pub fn service_error(e: &ServiceError) -> Response {
    let msg = e.to_string();
    match e {
        ServiceError::Invalid(f) => error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &msg,
            Some(&f.field),
        ),
        ServiceError::Spoofed { .. } => error(
            StatusCode::FORBIDDEN,
            "agent_mismatch",
            &msg,
            Some("agent_id"),
        ),
        ServiceError::NotFound { .. } => error(StatusCode::NOT_FOUND, "not_found", &msg, None),
        ServiceError::UnknownCaller => error(StatusCode::FORBIDDEN, "unknown_caller", &msg, None),
        ServiceError::Approvals(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "contro1_unavailable",
            &format!("{msg}; nothing was done (fail closed)"),
            None,
        ),
        ServiceError::Store(_) | ServiceError::Ledger(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            &format!("{msg}; nothing was done (fail closed)"),
            None,
        ),
        ServiceError::Aws(_) => error(StatusCode::BAD_GATEWAY, "aws_error", &msg, None),
        ServiceError::Unrecorded { .. } | ServiceError::Internal(_) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal", &msg, None)
        }
    }
}

async fn run_request(
    State(state): State<Arc<AppState>>,
    req: Request<axum::body::Body>,
) -> Response {
    let c = caller(&state, &req);
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    match decode::<RunRequest>(&body) {
        Ok(r) => submit(&state, c, Action::Run(r)).await,
        Err(r) => r.into_response(),
    }
}

async fn read_body(req: Request<axum::body::Body>) -> Result<Bytes, ApiError> {
    <Bytes as axum::extract::FromRequest<()>>::from_request(req, &())
        .await
        .map_err(|e| body_error(&e))
}

async fn auth_token_request(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    req: Request<axum::body::Body>,
) -> Response {
    let c = caller(&state, &req);
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    match decode::<AuthTokenRequest>(&body) {
        Ok(request) => {
            submit(
                &state,
                c,
                Action::AuthToken {
                    microvm_id: id,
                    request,
                },
            )
            .await
        }
        Err(r) => r.into_response(),
    }
}

async fn shell_token_request(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    req: Request<axum::body::Body>,
) -> Response {
    let c = caller(&state, &req);
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    match decode::<ShellTokenRequest>(&body) {
        Ok(request) => {
            submit(
                &state,
                c,
                Action::ShellToken {
                    microvm_id: id,
                    request,
                },
            )
            .await
        }
        Err(r) => r.into_response(),
    }
}

async fn lifecycle(
    state: &AppState,
    id: String,
    op: Lifecycle,
    req: Request<axum::body::Body>,
) -> Response {
    let c = caller(state, &req);
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    match decode::<LifecycleRequest>(&body) {
        Ok(request) => {
            submit(
                state,
                c,
                Action::Lifecycle {
                    microvm_id: id,
                    op,
                    request,
                },
            )
            .await
        }
        Err(r) => r.into_response(),
    }
}

async fn suspend(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    req: Request<axum::body::Body>,
) -> Response {
    lifecycle(&state, id, Lifecycle::Suspend, req).await
}

async fn resume(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    req: Request<axum::body::Body>,
) -> Response {
    lifecycle(&state, id, Lifecycle::Resume, req).await
}

async fn terminate(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    req: Request<axum::body::Body>,
) -> Response {
    lifecycle(&state, id, Lifecycle::Terminate, req).await
}

async fn callback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return body_error(&e).into_response(),
    };
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = webhook::verify(
        &state.webhook_secret,
        h(webhook::SIGNATURE_HEADER),
        h(webhook::TIMESTAMP_HEADER),
        &body,
        state.clock.now(),
        state.webhook_window_seconds,
    ) {
        tracing::warn!(target: "audit", error = %e, "Contro1 callback refused");
        return error(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            &e.to_string(),
            None,
        );
    }
    let cb = match Callback::from_slice(&body) {
        Ok(cb) => cb,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_callback",
                &format!("verified callback body is not a Contro1 callback: {e}"),
                None,
            );
        }
    };
    let resolution = match cb.decision() {
        Decision::Approved => Resolution::Approved,
        Decision::Denied => Resolution::Denied,
        Decision::Expired => Resolution::Expired,
        Decision::Cancelled => Resolution::Cancelled,
    };
    match state.service.on_callback(&cb.request_id, resolution).await {
        Ok(outcome) => (StatusCode::OK, axum::Json(outcome)).into_response(),
        Err(e) => service_error(&e),
    }
}

async fn get_request(
    State(state): State<Arc<AppState>>,
    Path(request_id): Path<String>,
    req: Request<axum::body::Body>,
) -> Response {
    let c = caller(&state, &req);
    match state.service.get_request(&c, &request_id).await {
        Ok(view) => {
            let mut body = serde_json::to_value(&view).unwrap_or_default();
            if let Some(t) = &view.token {
                body["token"] = json!(t.expose());
            }
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Err(e) => service_error(&e),
    }
}
