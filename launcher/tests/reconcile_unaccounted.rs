//! A run the reconciler will not issue never leaves a MicroVM unaccounted
//! for: through the real adapters (the pending table and the ledger on moto,
//! ListMicrovms on the emulator through the SDK) and the Contro1 stand-in.
//!
//! Regression: an item stuck in `executing` that the reconciler would not
//! run was marked `failed` with no AWS lookup, no ledger item and no alert,
//! while the MicroVM its interrupted RunMicrovm started may be running.

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::http::StatusCode;
use common::{Agent, IMAGE, SANDBOX, Setup, harness, policy_file};
use serde_json::json;
use testkit::emulator::MicrovmState;

const A: Agent<'static> = Agent::new("agent-a", "token-a");

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

#[tokio::test]
async fn a_run_not_issued_again_names_the_unledgered_microvm_of_its_image_in_a_critical_audit_record()
 {
    let h = harness(
        Setup::new(policy_file("unaccounted", false, &[A])),
        "http://127.0.0.1:9",
    )
    .await;
    // A MicroVM of the same image the launcher started: in the ledger.
    let (s, v) = h
        .post(
            A.token,
            "/microvms/run-request",
            json!({"owner": "platform", "reason": "governed", "image_arn": IMAGE,
                   "execution_role_arn": SANDBOX, "duration_seconds": 600}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let governed = v["result"]["microvm_id"].as_str().unwrap().to_string();
    // A run that needs a human, left `executing` without Contro1's approval
    // (so the reconciler refuses it); AWS has a MicroVM of its image that
    // no ledger item names, as if its RunMicrovm had reached AWS.
    let (s, v) = h
        .post(
            A.token,
            "/microvms/run-request",
            json!({"owner": "platform", "reason": "interrupted", "image_arn": IMAGE,
                   "execution_role_arn": SANDBOX, "duration_seconds": 1800}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["request_id"].as_str().unwrap().to_string();
    let lost = h
        .emu
        .seed_microvms(1, IMAGE, MicrovmState::Running)
        .remove(0);
    let long_ago = launcher_core::ports::Clock::now(&launcher_core::ports::SystemClock) - 3600;
    set_attr(&h, &id, "state", AttributeValue::S("executing".into())).await;
    set_attr(&h, &id, "executing", AttributeValue::S("1".into())).await;
    set_attr(
        &h,
        &id,
        "executing_since",
        AttributeValue::N(long_ago.to_string()),
    )
    .await;
    let runs_before = h.emulator_calls("RunMicrovm");

    let report = h.state.service.reconcile().await.unwrap();
    assert_eq!((report.failed, report.left), (1, 0), "{report:?}");
    assert_eq!(
        h.emulator_calls("RunMicrovm"),
        runs_before,
        "nothing issued"
    );
    assert!(h.emulator_calls("ListMicrovms") >= 1);
    let alerts: Vec<_> =
        h.c1.state()
            .audit_records()
            .into_iter()
            .filter(|r| r.to_string().contains("aws.microvm.unmanaged.detected"))
            .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = alerts[0].to_string();
    assert!(
        alert.contains(&lost) && alert.contains(&id) && alert.contains("critical"),
        "the alert names the MicroVM, the request and is critical: {alert}"
    );
    assert!(
        !alert.contains(&governed),
        "the governed MicroVM is not named: {alert}"
    );
    let (_, view) = h.get(A.token, &format!("/requests/{id}")).await;
    assert_eq!(view["state"], "failed", "{view}");
    assert!(
        view["error"].as_str().unwrap().contains(&lost),
        "the item's error names it: {view}"
    );
}
