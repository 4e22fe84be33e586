//! Use-case errors as HTTP answers. What the caller reads names what was
//! wrong with its ask; what only the operator needs (table names,
//! endpoints, error chains) goes to the log under a `reference` that the
//! answer carries.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use launcher_core::ServiceError;
use serde_json::json;

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

/// A JSON error answer that names the `reference` of its log line.
fn referenced(status: StatusCode, code: &str, message: &str, reference: &str) -> Response {
    (
        status,
        axum::Json(
            json!({"error": {"code": code, "message": message, "field": null,
                                    "reference": reference}}),
        ),
    )
        .into_response()
}

/// Log the full error under a fresh reference; the reference.
fn logged(e: &ServiceError) -> String {
    let reference = uuid::Uuid::new_v4().to_string();
    tracing::error!(reference = %reference, error = %e, "request failed");
    reference
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
        ServiceError::NoSuchMicrovm { .. } => error(
            StatusCode::NOT_FOUND,
            "microvm_not_found",
            &msg,
            Some("microvm_id"),
        ),
        ServiceError::Unauthenticated => unauthenticated(),
        ServiceError::UnknownCaller => error(StatusCode::FORBIDDEN, "unknown_caller", &msg, None),
        ServiceError::RateLimited {
            retry_after_seconds,
            ..
        } => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", &msg, None);
            if let Ok(v) = HeaderValue::from_str(&retry_after_seconds.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        ServiceError::AlreadyDecided { .. } => {
            error(StatusCode::CONFLICT, "already_decided", &msg, None)
        }
        ServiceError::Unconfirmed { .. } => {
            tracing::warn!(target: "audit", error = %e, "callback not confirmed by Contro1; nothing done");
            error(StatusCode::CONFLICT, "not_confirmed", &msg, None)
        }
        ServiceError::InProgress { .. } => error(StatusCode::CONFLICT, "in_progress", &msg, None),
        ServiceError::KeyReused { .. } => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            &msg,
            Some("Idempotency-Key"),
        ),
        ServiceError::ReplayedFailure { .. } => {
            error(StatusCode::BAD_GATEWAY, "aws_error", &msg, None)
        }
        ServiceError::Approvals(a) => {
            // Contro1's own text (and the endpoint) only in the log.
            let reference = logged(e);
            referenced(
                StatusCode::SERVICE_UNAVAILABLE,
                "contro1_unavailable",
                &format!(
                    "{}; nothing was done (fail closed); reference {reference}",
                    a.public_message()
                ),
                &reference,
            )
        }
        ServiceError::Store(_) | ServiceError::Ledger(_) => {
            let reference = logged(e);
            referenced(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                &format!(
                    "the launcher's storage is unavailable; nothing was done (fail closed); reference {reference}"
                ),
                &reference,
            )
        }
        ServiceError::Aws(a) => error(
            StatusCode::BAD_GATEWAY,
            "aws_error",
            &a.public_message(),
            None,
        ),
        ServiceError::Unrecorded {
            request_id,
            operation,
            aws_request_id,
            ..
        } => {
            let reference = logged(e);
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                &format!(
                    "{operation} succeeded (AWS request {}) but its ledger write failed; request `{request_id}` is kept for the reconciler and any token is withheld; send the same Idempotency-Key again for the result; reference {reference}",
                    aws_request_id.as_deref().unwrap_or("unknown")
                ),
                None,
            )
        }
        ServiceError::Internal(_) => {
            let reference = logged(e);
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                &format!("internal error; reference {reference}"),
                None,
            )
        }
    }
}

/// 401: nothing identified the caller.
pub fn unauthenticated() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "the caller is not authenticated (an IAM-signed request, or locally `Authorization: Bearer <token>`)",
        None,
    )
}
