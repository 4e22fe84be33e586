//! The agent surface's handlers: each identifies the caller first (`401`
//! before the body is read), decodes, calls `launcher_core::Service`,
//! encodes.

use super::errors::{service_error, unauthenticated};
use super::{ApiError, AppState, MAX_BODY_BYTES};
use crate::settings::AuthMode;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use launcher_core::Submitted;
use launcher_core::agents::Caller;
use launcher_core::request::{
    Action, AuthTokenRequest, Lifecycle, LifecycleRequest, RunRequest, ShellTokenRequest,
};
use serde_json::json;
use std::sync::Arc;

pub use launcher_core::request::{IDEMPOTENCY_KEY_HEADER, MAX_IDEMPOTENCY_KEY_LEN};

/// The agent routes (no callback, no fallback).
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", super::healthz_route())
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
        .route("/requests/{request_id}", get(get_request))
}

/// The caller as the platform identified it, or the `401` answer when
/// nothing identifies it (no IAM principal, no bearer token, or a bearer
/// token nobody holds): decided before the body is read.
#[allow(clippy::result_large_err)]
fn identify<B>(state: &AppState, req: &Request<B>) -> Result<(Caller, Option<String>), Response> {
    let caller = caller_from_parts(state.auth, req.headers(), req.extensions());
    let known = match &caller {
        Caller::Anonymous => false,
        Caller::Bearer { .. } => state.service.config().agents.resolve(&caller).is_some(),
        Caller::Iam { .. } => true,
    };
    if !known {
        return Err(unauthenticated());
    }
    let key = match req.headers().get(IDEMPOTENCY_KEY_HEADER) {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k) if launcher_core::request::idempotency_key_ok(k) => Some(k.to_string()),
            _ => {
                return Err(super::error(
                    StatusCode::BAD_REQUEST,
                    "invalid_header",
                    &format!(
                        "{IDEMPOTENCY_KEY_HEADER} must be 1..={MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
                    ),
                    Some(IDEMPOTENCY_KEY_HEADER),
                ));
            }
        },
    };
    Ok((caller, key))
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

pub(super) fn body_error(r: &BytesRejection) -> ApiError {
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

async fn submit(
    state: &AppState,
    (caller, key): (Caller, Option<String>),
    action: Action,
) -> Response {
    match state
        .service
        .submit_with_key(&caller, action, key.as_deref())
        .await
    {
        Ok(Submitted::Executed {
            request_id,
            decision,
            result,
            token,
            replayed,
        }) => {
            let mut body = json!({
                "status": "executed",
                "request_id": request_id,
                "decision": decision,
                "result": result,
            });
            if replayed {
                body["replayed"] = json!(true);
            }
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

async fn run_request(
    State(state): State<Arc<AppState>>,
    req: Request<axum::body::Body>,
) -> Response {
    let c = match identify(&state, &req) {
        Ok(c) => c,
        Err(r) => return r,
    };
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
    let c = match identify(&state, &req) {
        Ok(c) => c,
        Err(r) => return r,
    };
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
    let c = match identify(&state, &req) {
        Ok(c) => c,
        Err(r) => return r,
    };
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
    let c = match identify(state, &req) {
        Ok(c) => c,
        Err(r) => return r,
    };
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

async fn get_request(
    State(state): State<Arc<AppState>>,
    Path(request_id): Path<String>,
    req: Request<axum::body::Body>,
) -> Response {
    let c = match identify(&state, &req) {
        Ok((c, _)) => c,
        Err(r) => return r,
    };
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
