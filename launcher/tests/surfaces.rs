//! The two Function URLs reach one function; the invoked alias (from the
//! Lambda context, which no caller can set) decides what each serves.
//! Regression: the public callback URL (AuthType NONE) served every route,
//! so an anonymous `POST /microvms/run-request` wrote a critical Contro1
//! audit record each time (a flood of Contro1's trail and rate limit).

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use launcher::settings::Settings;
use launcher_core::fakes::{
    ManualClock, MemoryApprovals, MemoryLedger, MemoryStore, RecordingMicrovms,
};
use launcher_core::{Config, PortSet};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tower::ServiceExt;

const FIXTURE: &str = include_str!("fixtures/function_url_iam_run_request.json");
const FUNCTION: &str = "arn:aws:lambda:us-east-1:111122223333:function:launcher";

fn router() -> (axum::Router, Arc<MemoryApprovals>, Arc<RecordingMicrovms>) {
    let r = common::memory_rig(&[]);
    (r.router, r.c1, r.vms)
}

/// A Function URL event as `qualifier`'s URL delivers it (no IAM
/// authorizer when `iam` is false).
fn event(path: &str, qualifier: Option<&str>, iam: bool) -> Request<Body> {
    let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
    v["rawPath"] = path.into();
    v["requestContext"]["http"]["path"] = path.into();
    if !iam {
        v["requestContext"]
            .as_object_mut()
            .unwrap()
            .remove("authorizer");
    }
    let req = lambda_http::request::from_str(&v.to_string()).unwrap();
    let mut req = req.map(|b| Body::from(b.to_vec()));
    let mut ctx = lambda_http::Context::default();
    ctx.invoked_function_arn = match qualifier {
        Some(q) => format!("{FUNCTION}:{q}"),
        None => FUNCTION.to_string(),
    };
    req.extensions_mut().insert(ctx);
    req
}

async fn send(r: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = r.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_callback_url_answers_404_to_every_agent_route_without_touching_contro1() {
    let (r, c1, vms) = router();
    for path in [
        "/microvms/run-request",
        "/healthz",
        "/requests/x",
        "/microvms/vm-1/terminate",
    ] {
        for iam in [false, true] {
            let (s, v) = send(&r, event(path, Some("contro1-webhook"), iam)).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{path} iam={iam}: {v}");
        }
    }
    assert!(c1.audits().is_empty(), "Contro1 was written to");
    assert!(vms.calls().is_empty());
    // The callback route itself is served there (and refuses an unsigned body).
    let (s, v) = send(
        &r,
        event("/contro1/callback", Some("contro1-webhook"), false),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["error"]["code"], "bad_signature");
}

#[tokio::test]
async fn the_iam_url_never_serves_the_callback_and_answers_401_to_an_unsigned_caller() {
    let (r, c1, _) = router();
    for q in [None, Some("live")] {
        let (s, _) = send(&r, event("/contro1/callback", q, true)).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // Regression: no identity → the body was validated (400 naming
        // fields) or blocked as agent.unknown (403, audited); now 401 first.
        let (s, v) = send(&r, event("/microvms/run-request", q, false)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
        assert_eq!(v["error"]["code"], "unauthenticated");
    }
    assert!(c1.audits().is_empty());
    // The signed agent is served as before.
    let (s, v) = send(&r, event("/microvms/run-request", Some("live"), true)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn a_scheduled_event_runs_the_reconciler_and_a_url_event_the_router() {
    use lambda_http::lambda_runtime::LambdaEvent;
    let (r, _, _) = router();
    let file = "[[agents]]\nid = \"a\"\nowner = \"o\"\nenvironment = \"dev\"\n";
    let state = launcher::bootstrap::from_ports(
        &Settings::from_env(
            &[
                ("LAUNCHER_PUBLIC_URL", "http://127.0.0.1:9"),
                ("CONTRO1_API_KEY", "k"),
                ("CONTRO1_WEBHOOK_SECRET", "s"),
                ("SIMULATE_AWS", "true"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        )
        .unwrap(),
        Config::from_parts(file, &HashMap::new()).unwrap(),
        PortSet {
            store: Arc::new(MemoryStore::new()),
            ledger: Arc::new(MemoryLedger::default()),
            microvms: Arc::new(RecordingMicrovms::default()),
            approvals: Arc::new(MemoryApprovals::default()),
            clock: Arc::new(ManualClock::at(1_741_608_000)),
        },
        b"s".to_vec(),
    );
    let sched =
        serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let out = launcher::lambda::handle(
        state.clone(),
        r.clone(),
        LambdaEvent::new(sched, lambda_http::Context::default()),
    )
    .await
    .unwrap();
    assert_eq!(out["examined"], 0, "{out}");
    let mut ctx = lambda_http::Context::default();
    ctx.invoked_function_arn = format!("{FUNCTION}:contro1-webhook");
    // The public callback URL (AuthType NONE): no authorizer, an anonymous
    // account; an agent route there is 404.
    let mut url: Value = serde_json::from_str(FIXTURE).unwrap();
    url["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    url["requestContext"]["accountId"] = Value::from("anonymous");
    let out = launcher::lambda::handle(state, r, LambdaEvent::new(url, ctx))
        .await
        .unwrap();
    assert_eq!(out["statusCode"], 404, "{out}");
}
