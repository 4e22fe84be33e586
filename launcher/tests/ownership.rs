//! Whose MicroVM an ask targets, as the reviewer sees it, through the real
//! router with DynamoDB on moto, the MicroVMs emulator and the Contro1
//! stand-in.
//!
//! Regression: agent B got a shell token into agent A's MicroVM after one
//! approval that looked like any other (`shell.token`), and suspend/resume
//! likewise; the reviewer was told `context.owner` = B's own free text.

mod common;

use axum::http::StatusCode;
use common::{API_KEY, IMAGE, SANDBOX, Setup, harness};
use launcher_core::agents::token_sha256_hex;
use serde_json::{Value, json};

/// Two agents of two teams.
fn policy() -> String {
    format!(
        r#"
[policy]
version = "ownership-test"
allowed_image_arns = ["{IMAGE}"]
allowed_execution_role_arns = ["{SANDBOX}"]
allowed_token_ports = [8080]
max_auto_approve_duration_seconds = 900
max_token_ttl_seconds = 900

[[agents]]
id = "agent-a"
owner = "team-alpha"
environment = "dev"
bearer_token_sha256 = ["{}"]

[[agents]]
id = "agent-b"
owner = "team-bravo"
environment = "dev"
bearer_token_sha256 = ["{}"]
"#,
        token_sha256_hex("token-a"),
        token_sha256_hex("token-b")
    )
}

async fn run_as_a(h: &common::Harness) -> String {
    let (s, v) = h
        .post(
            "token-a",
            "/microvms/run-request",
            json!({"owner": "team-alpha", "reason": "build", "image_arn": IMAGE,
                   "execution_role_arn": SANDBOX, "duration_seconds": 600}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["result"]["microvm_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_ask_about_another_agents_microvm_is_a_not_owner_approval_naming_the_owner_from_the_ledger()
 {
    let _ = API_KEY;
    let h = harness(Setup::new(policy()), "http://127.0.0.1:9").await;
    let vm = run_as_a(&h).await;
    let asks: [(&str, Value, &str); 5] = [
        (
            "shell-token-request",
            json!({"owner": "team-alpha", "reason": "debug", "token_ttl_seconds": 300}),
            "shell.not_owner",
        ),
        (
            "auth-token-request",
            json!({"owner": "team-alpha", "reason": "look", "ports": [8080], "token_ttl_seconds": 300}),
            "token.not_owner",
        ),
        (
            "suspend",
            json!({"owner": "team-alpha", "reason": "pause"}),
            "lifecycle.not_owner",
        ),
        (
            "resume",
            json!({"owner": "team-alpha", "reason": "go"}),
            "lifecycle.not_owner",
        ),
        (
            "terminate",
            json!({"owner": "team-alpha", "reason": "stop"}),
            "terminate.not_owner",
        ),
    ];
    for (route, body, rule) in asks {
        let (s, v) = h
            .post("token-b", &format!("/microvms/{vm}/{route}"), body)
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{route}: {v}");
        assert_eq!(v["decision"]["rule_id"], rule, "{route}: {v}");
        let id = v["request_id"].as_str().unwrap();
        let stored = h.c1.state().request(id).unwrap();
        let body = &stored.body;
        let ctx = &body["metadata"]["context"];
        // The owner comes from the ledger and the registry, not from B's text
        // (which claimed `team-alpha` too).
        assert_eq!(ctx["owner_agent_id"], "agent-a", "{route}: {body}");
        assert_eq!(ctx["owner"], "team-alpha", "{route}: {body}");
        assert_eq!(ctx["requested_by_team"], "team-bravo", "{route}: {body}");
        assert_eq!(body["policy_trigger"], rule);
        let question = body["question"].as_str().unwrap();
        assert!(
            question.contains("agent-a") && question.contains("team-alpha"),
            "{route}: the question names the owner: {question}"
        );
    }
    // Nothing ran: every ask waits for a human.
    for op in [
        "CreateMicrovmShellAuthToken",
        "CreateMicrovmAuthToken",
        "SuspendMicrovm",
        "ResumeMicrovm",
        "TerminateMicrovm",
    ] {
        assert_eq!(h.emulator_calls(op), 0, "{op}");
    }
    // The owner itself: a short token on its own MicroVM is auto-approved,
    // and terminate is its emergency control.
    let (s, v) = h
        .post(
            "token-a",
            &format!("/microvms/{vm}/auth-token-request"),
            json!({"owner": "team-alpha", "reason": "look", "ports": [8080], "token_ttl_seconds": 300}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["decision"]["rule_id"], "auto.auth_token");
}
