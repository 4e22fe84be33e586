//! In Lambda the caller is the IAM principal of the Function URL request
//! context, decoded by `lambda_http` from a real-shaped event
//! (`fixtures/function_url_iam_run_request.json`), never a header or the body.
//! Ports are the in-memory fakes: this is about identity, not storage.

use axum::body::Body;
use axum::http::StatusCode;
use http_body_util::BodyExt;
use launcher::settings::Settings;
use launcher_core::agents::token_sha256_hex;
use launcher_core::fakes::{
    ManualClock, MemoryApprovals, MemoryLedger, MemoryStore, RecordingMicrovms,
};
use launcher_core::{Config, PortSet};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tower::ServiceExt;

const FIXTURE: &str = include_str!("fixtures/function_url_iam_run_request.json");

fn router(lambda: bool) -> (axum::Router, Arc<RecordingMicrovms>) {
    let file = format!(
        r#"
[policy]
allowed_image_arns = ["arn:aws:lambda:us-east-1:111122223333:microvm-image:py"]
allowed_execution_role_arns = ["arn:aws:iam::111122223333:role/sandbox"]
[[agents]]
id = "ci"
owner = "platform"
environment = "dev"
principal_arns = ["arn:aws:iam::111122223333:role/agents/ci-bot"]
bearer_token_sha256 = ["{}"]
"#,
        token_sha256_hex("ci-token")
    );
    let mut env: HashMap<String, String> = [
        (
            "LAUNCHER_PUBLIC_URL",
            "https://example.lambda-url.us-east-1.on.aws",
        ),
        ("CONTRO1_API_KEY", "k"),
        ("CONTRO1_WEBHOOK_SECRET", "s"),
        ("PENDING_TABLE", "p"),
        ("LEDGER_TABLE", "l"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if lambda {
        env.insert("AWS_LAMBDA_FUNCTION_NAME".into(), "launcher".into());
        // Required inside Lambda; the in-memory store here seals nothing.
        env.insert("TOKEN_KMS_KEY_ID".into(), "alias/launcher-tokens".into());
    }
    let settings = Settings::from_env(&env).unwrap();
    let vms = Arc::new(RecordingMicrovms::default());
    let ports = PortSet {
        store: Arc::new(MemoryStore::new()),
        ledger: Arc::new(MemoryLedger::default()),
        microvms: vms.clone(),
        approvals: Arc::new(MemoryApprovals::default()),
        clock: Arc::new(ManualClock::at(1_741_608_000)),
    };
    let config = Config::from_parts(&file, &HashMap::new()).unwrap();
    let state = launcher::bootstrap::from_ports(&settings, config, ports, b"s".to_vec());
    (launcher::app(state), vms)
}

async fn send(router: axum::Router, event: &str, extra_bearer: bool) -> (StatusCode, Value) {
    let req = lambda_http::request::from_str(event).unwrap();
    let mut req = req.map(|b| Body::from(b.to_vec()));
    if extra_bearer {
        req.headers_mut()
            .insert("authorization", "Bearer ci-token".parse().unwrap());
    }
    let resp = router.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn function_url_iam_principal_of_an_assumed_role_is_mapped_to_its_agent() {
    let (router, vms) = router(true);
    let (s, v) = send(router, FIXTURE, false).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["decision"]["rule_id"], "auto.run");
    assert_eq!(vms.calls().len(), 1);
    let hook: Value = serde_json::from_str(&vms.runs.lock().unwrap()[0].run_hook_payload).unwrap();
    assert_eq!(hook["agent_id"], "ci");
}

/// Without the IAM principal nothing identifies the caller: `401` before
/// the body is read, whatever `Authorization` header comes along.
#[tokio::test]
async fn in_lambda_a_bearer_token_does_not_identify_anyone() {
    let (router, vms) = router(true);
    let mut event: Value = serde_json::from_str(FIXTURE).unwrap();
    event["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    let (s, v) = send(router, &event.to_string(), true).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["error"]["code"], "unauthenticated");
    assert!(vms.calls().is_empty());
}

#[tokio::test]
async fn another_roles_session_is_an_unknown_agent() {
    let (router, vms) = router(true);
    let event = FIXTURE.replace("assumed-role/ci-bot/", "assumed-role/ci-bot-2/");
    let (s, v) = send(router, &event, false).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["decision"]["rule_id"], "agent.unknown");
    assert!(vms.calls().is_empty());
}

#[tokio::test]
async fn locally_the_request_context_is_ignored_and_the_bearer_token_counts() {
    let (router, _) = router(false);
    let (s, v) = send(router.clone(), FIXTURE, false).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, v) = send(router, FIXTURE, true).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}
