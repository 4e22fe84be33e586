//! `POST /contro1/callback`: verify the signature over the raw bytes, parse
//! (duplicate keys refused), then let the service act once Contro1 confirms.

use super::AppState;
use super::errors::{error, service_error};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use launcher_core::Resolution;
use shared_core::webhook::{self, Callback, Decision};
use std::sync::Arc;

pub(super) async fn callback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return super::agent::body_error(&e).into_response(),
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
            &e.public_message(),
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
