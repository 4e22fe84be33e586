//! The Lambda entry point. One function serves three kinds of invocation:
//! Function URL events from either URL (turned into HTTP requests for
//! [`crate::app`], which picks the surface from the invoked qualifier), and
//! the EventBridge schedule that runs the reconciler, a separate path that
//! never reaches the router. Anything else is refused with a log line: an
//! HTTP event must have the shape a Function URL gives it
//! ([`crate::function_url`]); that check is defence in depth behind the IAM
//! condition `lambda:InvokedViaFunctionUrl`, which keeps a direct `Invoke`
//! with a forged event from reaching the function at all.

use crate::app::AppState;
use lambda_http::lambda_runtime::{Error, LambdaEvent};
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Service};
use serde_json::Value;
use std::sync::Arc;

/// Is this the reconciler's schedule (`aws.events` / `Scheduled Event`)?
pub fn is_scheduled_event(payload: &Value) -> bool {
    payload.get("requestContext").is_none()
        && payload.get("rawPath").is_none()
        && payload.get("source").and_then(Value::as_str) == Some("aws.events")
        && payload.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
}

/// Handle one invocation.
pub async fn handle(
    state: Arc<AppState>,
    router: axum::Router,
    event: LambdaEvent<Value>,
) -> Result<Value, Error> {
    let LambdaEvent { payload, context } = event;
    if is_scheduled_event(&payload) {
        let report = state.service.reconcile().await.map_err(|e| {
            tracing::error!(error = %e, "reconciler run failed");
            Error::from(format!("reconciler run failed: {e}"))
        })?;
        if !report.errors.is_empty() {
            // The run did what it could; the failure makes the Errors metric count it.
            return Err(Error::from(format!(
                "reconciler left {} item(s) unfinished: {}",
                report.errors.len(),
                report.errors.join("; ")
            )));
        }
        return Ok(serde_json::to_value(report)?);
    }
    let surface =
        crate::app::surface_of_arn(&context.invoked_function_arn, &state.callback_qualifier);
    if let Err(e) = crate::function_url::check(&payload, surface, state.region.as_deref()) {
        tracing::warn!(target: "audit", error = %e, surface = ?surface, invoked_function_arn = %context.invoked_function_arn, "invocation refused: not a Function URL event or the schedule");
        return Err(Error::from(e.to_string()));
    }
    let request: LambdaRequest = serde_json::from_value(payload)
        .map_err(|e| Error::from(format!("not a Function URL event: {e}")))?;
    let mut adapter = Adapter::from(router);
    let response = adapter.call(LambdaEvent::new(request, context)).await?;
    Ok(serde_json::to_value(response)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_schedule_without_a_request_context_runs_the_reconciler() {
        let sched = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        assert!(is_scheduled_event(&sched));
        let mut url = sched;
        url["requestContext"] = json!({});
        assert!(!is_scheduled_event(&url));
        assert!(!is_scheduled_event(
            &json!({"source": "aws.events", "detail-type": "Other"})
        ));
    }
}
