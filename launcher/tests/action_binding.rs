//! The approved action is bound end to end: Contro1's request carries the
//! digest of the canonical action and agent; the callback and the
//! reconciler recompute it from the stored item and refuse a mismatch; the
//! reconciler asks Contro1 again before it executes an approval; a sealed
//! token opens only for its agent, request and action. Through the real
//! router with the pending table on moto, the emulator and the stand-in.
//!
//! Regression: a pending item whose `action` was rewritten (attacker
//! image, production role, internet, 8 h) executed after a human approved
//! the benign one, because the callback compared Contro1's
//! `external_request_id` with the stored key string instead of recomputing
//! it; the reconciler ran any `executing` run item with no check at all;
//! rewriting `agent_id` of an executed item gave agent A's shell token to
//! agent B. Each needs a write to the pending table (which the templates
//! limit to the launcher): defence in depth.

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::http::StatusCode;
use common::{Agent, IMAGE, PROD, SANDBOX, Setup, harness, policy_file};
use serde_json::{Value, json};
use shared_core::webhook::Decision;

const A: Agent<'static> = Agent::new("agent-a", "token-a");
const B: Agent<'static> = Agent::new("agent-b", "token-b");

async fn set_attr(h: &common::Harness, id: &str, name: &str, value: AttributeValue) {
    h.dynamo
        .update_item()
        .table_name(&h.pending_table)
        .key("pk", AttributeValue::S(format!("req#{id}")))
        .update_expression("SET #n = :v")
        .expression_attribute_names("#n", name)
        .expression_attribute_values(":v", value)
        .send()
        .await
        .unwrap();
}

async fn get_attr(h: &common::Harness, id: &str, name: &str) -> Option<AttributeValue> {
    h.dynamo
        .get_item()
        .table_name(&h.pending_table)
        .key("pk", AttributeValue::S(format!("req#{id}")))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item()
        .and_then(|i| i.get(name).cloned())
}

/// A benign run that needs a human (long duration); its request id and the
/// stored action as JSON.
async fn benign_pending(h: &common::Harness, reason: &str) -> (String, Value) {
    let (s, v) = h
        .post(
            A.token,
            "/microvms/run-request",
            json!({"owner": "platform", "reason": reason, "image_arn": IMAGE,
                   "execution_role_arn": SANDBOX, "duration_seconds": 1800}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["request_id"].as_str().unwrap().to_string();
    let action = get_attr(h, &id, "action").await.unwrap();
    let action: Value = serde_json::from_str(action.as_s().unwrap()).unwrap();
    (id, action)
}

fn rewritten(mut action: Value) -> String {
    let input = &mut action["input"];
    input["image_arn"] = json!("arn:aws:lambda:us-east-1:444455556666:microvm-image:attacker");
    input["execution_role_arn"] = json!(PROD);
    input["network_egress"] = json!("internet");
    input["shell_access"] = json!(true);
    input["duration_seconds"] = json!(28_800);
    action.to_string()
}

#[tokio::test]
async fn a_rewritten_pending_action_is_refused_by_the_callback_after_the_human_approves() {
    let h = harness(
        Setup::new(policy_file("bind", true, &[A, B])),
        "http://127.0.0.1:9",
    )
    .await;
    let (id, action) = benign_pending(&h, "long test").await;
    // Contro1's request names the digest of the action it shows the reviewer.
    let sent = h.c1.state().request(&id).unwrap().body;
    let digest = sent["metadata"]["context"]["action_digest"].clone();
    assert_eq!(digest, sent["external_request_id"], "{sent}");
    set_attr(&h, &id, "action", AttributeValue::S(rewritten(action))).await;
    let (s, v) = h.approve(&id).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "not_confirmed", "{v}");
    assert_eq!(
        h.emulator_calls("RunMicrovm"),
        0,
        "the rewritten action ran"
    );
}

#[tokio::test]
async fn the_reconciler_reconfirms_an_approval_and_its_action_before_it_runs_anything() {
    let h = harness(
        Setup::new(policy_file("bind", true, &[A, B])),
        "http://127.0.0.1:9",
    )
    .await;
    let old = launcher_core::ports::SystemClock;
    let long_ago = launcher_core::ports::Clock::now(&old) - 3600;
    // 1. Approved in Contro1, but the stored action was rewritten, and the
    //    item left `executing` (as if the callback's function died).
    let (tampered, action) = benign_pending(&h, "tampered").await;
    h.c1.decide(&tampered, Decision::Approved).unwrap();
    set_attr(
        &h,
        &tampered,
        "action",
        AttributeValue::S(rewritten(action)),
    )
    .await;
    // 2. Never approved: still open in Contro1, the item pushed to `executing`.
    let (open, _) = benign_pending(&h, "never approved").await;
    for id in [tampered.clone(), open.clone()] {
        set_attr(&h, &id, "state", AttributeValue::S("executing".into())).await;
        set_attr(&h, &id, "executing", AttributeValue::S("1".into())).await;
        set_attr(
            &h,
            &id,
            "executing_since",
            AttributeValue::N(long_ago.to_string()),
        )
        .await;
    }
    let report = h.state.service.reconcile().await.unwrap();
    assert_eq!(report.examined, 2, "{report:?}");
    assert_eq!(h.emulator_calls("RunMicrovm"), 0, "{report:?}");
    assert_eq!(report.executed, 0, "{report:?}");
    for id in [&tampered, &open] {
        let state = get_attr(&h, id, "state").await.unwrap();
        assert_eq!(state.as_s().unwrap(), "failed", "{id}");
    }
    // 3. The genuine case still works: approved, untouched, left executing.
    let (good, _) = benign_pending(&h, "genuine").await;
    h.c1.decide(&good, Decision::Approved).unwrap();
    set_attr(&h, &good, "state", AttributeValue::S("executing".into())).await;
    set_attr(&h, &good, "executing", AttributeValue::S("1".into())).await;
    set_attr(
        &h,
        &good,
        "executing_since",
        AttributeValue::N(long_ago.to_string()),
    )
    .await;
    let report = h.state.service.reconcile().await.unwrap();
    assert_eq!(report.executed, 1, "{report:?}");
    assert_eq!(h.emulator_calls("RunMicrovm"), 1);
}

#[tokio::test]
async fn a_sealed_token_does_not_open_for_another_agent_written_into_its_item() {
    let h = harness(
        Setup::new(policy_file("bind", true, &[A, B])),
        "http://127.0.0.1:9",
    )
    .await;
    let (s, v) = h
        .post(
            A.token,
            "/microvms/run-request",
            json!({"owner": "platform", "reason": "r", "image_arn": IMAGE,
                   "execution_role_arn": SANDBOX, "duration_seconds": 600}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let vm = v["result"]["microvm_id"].as_str().unwrap().to_string();
    let (s, v) = h
        .post(
            A.token,
            &format!("/microvms/{vm}/shell-token-request"),
            json!({"owner": "platform", "reason": "debug", "token_ttl_seconds": 300}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["request_id"].as_str().unwrap().to_string();
    let (s, v) = h.approve(&id).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(h.emulator_calls("CreateMicrovmShellAuthToken"), 1);
    // The item is rewritten to agent B, who fetches it.
    set_attr(&h, &id, "agent_id", AttributeValue::S(B.id.into())).await;
    let (s, v) = h.get(B.token, &format!("/requests/{id}")).await;
    assert!(
        v.get("token").is_none(),
        "agent B got agent A's token: {s} {v}"
    );
    assert!(
        get_attr(&h, &id, "token_sealed").await.is_some(),
        "a fetch that did not open the token must not erase it"
    );
    // Put back, agent A gets it once.
    set_attr(&h, &id, "agent_id", AttributeValue::S(A.id.into())).await;
    let (s, v) = h.get(A.token, &format!("/requests/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["token"].is_string(), "{v}");
}
