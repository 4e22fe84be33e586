//! Fault injection for the launcher: what each dependency failing does to a
//! request, through the real router served over HTTP.
//!
//! - DynamoDB (pending table and ledger) is moto behind
//!   `testkit::fault_proxy`, which answers chosen calls with DynamoDB's own
//!   throttling error, so the real SDK's retry classifier sees a throttle;
//! - the MicroVMs API is the testkit emulator (`Emulator::fail_next`), driven
//!   by the real SDK with the default standard retry mode (3 attempts);
//! - Contro1 is the stand-in (`StandInHandle::fail_next`), which also POSTs
//!   and redelivers the signed callbacks like Contro1 does.
//!
//! Contro1 down for good and Contro1 too slow are in `tests/http.rs`
//! (`contro1_down_fails_closed_with_503_and_no_aws_call`,
//! `contro1_slow_fails_closed_with_503_and_no_aws_call`).
//!
//! Needs `MOTO_ENDPOINT` (see DEVELOPERS.md); panics clearly without it.

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::{CI, CI_AGENT, IMAGE, SANDBOX, Setup};
use contro1::standin::StandInHandle;
use serde_json::{Value, json};
use std::collections::HashMap;
use testkit::emulator::{Emulator, ServedCall};
use testkit::fault_proxy::{Fault, FaultProxy, Matcher, SDK_MAX_ATTEMPTS};

/// The SDK's attempts per call (default standard retry mode), as a count.
const ATTEMPTS: usize = SDK_MAX_ATTEMPTS as usize;

/// The launcher served on a real port (so the stand-in can POST callbacks to
/// it), DynamoDB through the fault proxy.
struct H {
    base: String,
    http: reqwest::Client,
    proxy: FaultProxy,
    emu: Emulator,
    c1: StandInHandle,
    /// Straight to moto, for looking at the tables without touching the proxy.
    ddb: aws_sdk_dynamodb::Client,
    pending_table: String,
    ledger_table: String,
}

async fn harness() -> H {
    let proxy = FaultProxy::start().await;
    let setup = Setup {
        dynamodb_sdk: Some(proxy.sdk_config().await),
        // The SDK's default standard retry mode (3 attempts) for MicroVMs,
        // and the Contro1 client's production retry policy (2 retries),
        // with short backoffs.
        microvms_attempts: Some(SDK_MAX_ATTEMPTS),
        ..Setup::new(common::policy_file("faults-test", false, &[CI_AGENT]))
    };
    let (h, base) = common::served(setup).await;
    H {
        base,
        http: reqwest::Client::new(),
        proxy,
        emu: h.emu,
        c1: h.c1,
        ddb: h.dynamo,
        pending_table: h.pending_table,
        ledger_table: h.ledger_table,
    }
}

fn run_body() -> Value {
    json!({
        "owner": "team-a",
        "reason": "fault injection",
        "image_arn": IMAGE,
        "execution_role_arn": SANDBOX,
        "duration_seconds": 600,
        "correlation_id": "case-faults"
    })
}

/// Longer than the auto-approve limit: needs a human.
fn approval_run_body() -> Value {
    let mut b = run_body();
    b["duration_seconds"] = json!(3600);
    b
}

impl H {
    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(CI)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(CI)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// A request that needs approval: `202 pending`; its Contro1 request id.
    async fn pending_run(&self) -> String {
        let (s, v) = self
            .post("/microvms/run-request", &approval_run_body())
            .await;
        assert_eq!(s, 202, "{v}");
        assert_eq!(v["status"], "pending");
        v["request_id"].as_str().unwrap().to_string()
    }

    fn calls(&self, op: &str) -> Vec<ServedCall> {
        self.emu
            .calls()
            .into_iter()
            .filter(|c| c.operation == op)
            .collect()
    }

    /// Every item of a table, read straight from moto.
    async fn items(&self, table: &str) -> Vec<HashMap<String, AttributeValue>> {
        self.ddb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default()
    }

    /// `(pk, outcome)` of every ledger item, sorted.
    async fn ledger(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .items(&self.ledger_table)
            .await
            .iter()
            .map(|i| {
                (
                    i["pk"].as_s().unwrap().clone(),
                    i["outcome"].as_s().unwrap().clone(),
                )
            })
            .collect();
        v.sort();
        v
    }

    /// `req#` items in the pending table (rate counters left out).
    async fn request_items(&self) -> usize {
        self.items(&self.pending_table)
            .await
            .iter()
            .filter(|i| i["pk"].as_s().is_ok_and(|pk| pk.starts_with("req#")))
            .count()
    }

    async fn pending_state(&self, id: &str) -> Option<String> {
        self.ddb
            .get_item()
            .table_name(&self.pending_table)
            .key("pk", AttributeValue::S(format!("req#{id}")))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .map(|i| i["state"].as_s().unwrap().clone())
    }
}

#[tokio::test]
async fn transient_dynamodb_throttling_on_the_ledger_write_is_retried_and_the_run_is_recorded_once()
{
    let h = harness().await;
    let ledger_puts = Matcher::dynamodb_on("BatchWriteItem", &h.ledger_table);
    // Fewer throttles than the SDK has attempts.
    h.proxy.fail_next(
        2,
        ledger_puts.clone(),
        Fault::dynamodb_throughput_exceeded(),
    );
    let (s, v) = h.post("/microvms/run-request", &run_body()).await;
    assert_eq!(s, 200, "{v}");
    let runs = h.calls("RunMicrovm");
    assert_eq!(runs.len(), 1);
    assert_eq!(h.emu.microvms().len(), 1);
    let vm = runs[0].microvm_id.clone().unwrap();
    // call# and vm# in one batch: throttled twice, then written.
    assert_eq!(h.proxy.count(&ledger_puts), 3);
    assert_eq!(h.proxy.faulted(&ledger_puts), 2);
    assert_eq!(
        h.ledger().await,
        [
            (format!("call#{}", runs[0].request_id), "succeeded".into()),
            (format!("vm#{vm}"), "succeeded".into()),
        ]
    );
    assert_eq!(v["result"]["microvm_id"], vm.as_str());
}

/// DynamoDB may answer a `BatchWriteItem` with some items unprocessed
/// (throttled partitions); the ledger sends exactly those again.
#[tokio::test]
async fn ledger_items_dynamodb_leaves_unprocessed_are_sent_again() {
    let h = harness().await;
    let ledger_puts = Matcher::dynamodb_on("BatchWriteItem", &h.ledger_table);
    // The first batch is answered 200 by the proxy in moto's place, with
    // one item left over: a `call#` item of the proxy's own, so its arrival
    // in the table shows the launcher sent back what DynamoDB returned.
    // (The run's own items, which that answer claims were written, never
    // reached moto.)
    let leftover = json!({"UnprocessedItems": {h.ledger_table.clone(): [{"PutRequest": {"Item": {
        "pk": {"S": "call#left-over-by-dynamodb"}, "kind": {"S": "call"},
        "contro1_request_id": {"S": "x"}, "operation": {"S": "RunMicrovm"},
        "agent_id": {"S": "ci"}, "owner": {"S": "team-a"}, "outcome": {"S": "succeeded"},
        "time_epoch": {"N": "1"}
    }}}]}});
    h.proxy.fail_next(
        1,
        ledger_puts.clone(),
        Fault::new(200, "application/x-amz-json-1.0", leftover.to_string()),
    );
    let (s, v) = h.post("/microvms/run-request", &run_body()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        h.proxy.count(&ledger_puts),
        2,
        "the batch, then its leftover"
    );
    let keys: Vec<String> = h.ledger().await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["call#left-over-by-dynamodb"]);
}

#[tokio::test]
async fn transient_dynamodb_throttling_on_the_pending_write_still_answers_202_with_one_request_and_one_item()
 {
    let h = harness().await;
    let pending_puts = Matcher::dynamodb_on("PutItem", &h.pending_table);
    h.proxy
        .fail_next(2, pending_puts.clone(), Fault::dynamodb_throttling());
    let id = h.pending_run().await;
    assert_eq!(h.proxy.count(&pending_puts), 3);
    assert_eq!(h.proxy.faulted(&pending_puts), 2);
    assert_eq!(h.request_items().await, 1);
    assert_eq!(h.pending_state(&id).await.as_deref(), Some("pending"));
    assert_eq!(h.c1.requests().len(), 1);
    assert!(h.emu.calls().is_empty());
}

#[tokio::test]
async fn persistent_throttling_on_the_pending_write_fails_closed_and_the_orphan_contro1_request_never_runs_anything()
 {
    let h = harness().await;
    let pending_puts = Matcher::dynamodb_on("PutItem", &h.pending_table);
    h.proxy
        .fail_always(pending_puts.clone(), Fault::dynamodb_throughput_exceeded());
    let (s, v) = h.post("/microvms/run-request", &approval_run_body()).await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error"]["code"], "storage_unavailable");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("fail closed") && msg.contains("reference"),
        "{msg}"
    );
    // Regression: the 503 body carried the table name, the operation and
    // the SDK's error chain (with the endpoint); they go to the log only.
    for internal in [
        h.pending_table.as_str(),
        "PutItem",
        "ProvisionedThroughputExceededException",
        "127.0.0.1",
    ] {
        assert!(!msg.contains(internal), "{internal} leaked: {msg}");
    }
    // The SDK tried as often as it does in production, then gave up.
    assert_eq!(h.proxy.count(&pending_puts), ATTEMPTS);
    assert_eq!(h.proxy.faulted(&pending_puts), ATTEMPTS);
    assert_eq!(h.request_items().await, 0);
    assert!(h.emu.calls().is_empty());
    // The Contro1 request was created before the write failed: it is an
    // orphan. A reviewer approving it gets the launcher's 404 (no pending
    // item), and nothing runs.
    let requests = h.c1.requests();
    assert_eq!(requests.len(), 1);
    let id = requests[0].id.clone();
    let delivery = h.c1.approve(&id, "alice@example.com").await.unwrap();
    assert_eq!(delivery.status, Some(404), "{:?}", delivery.error);
    assert!(h.emu.calls().is_empty());
    // Throttling over, the agent asks again: Contro1 hands back the same
    // request (same Idempotency-Key), which Contro1 reports answered while
    // the launcher held nothing: no pending item is created for it (an old
    // approval never gets a new life), and its redelivery runs nothing.
    h.proxy.clear();
    let (s, v) = h.post("/microvms/run-request", &approval_run_body()).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["code"], "already_decided");
    assert!(v["error"]["message"].as_str().unwrap().contains(&id), "{v}");
    assert_eq!(h.c1.requests().len(), 1);
    let delivery = h.c1.redeliver(&id).await.unwrap();
    assert_eq!(delivery.status, Some(404), "{:?}", delivery.error);
    assert!(h.calls("RunMicrovm").is_empty());
    // A new correlation id is a new ask.
    let mut again = approval_run_body();
    again["correlation_id"] = serde_json::json!("case-after-outage");
    let (s, v) = h.post("/microvms/run-request", &again).await;
    assert_eq!(s, 202, "{v}");
    assert_ne!(v["request_id"], id.as_str());
}

#[tokio::test]
async fn throttled_pending_to_executing_transition_makes_no_aws_call_and_the_redelivery_executes_once()
 {
    let h = harness().await;
    let id = h.pending_run().await;
    let updates = Matcher::dynamodb_on("UpdateItem", &h.pending_table);
    h.proxy
        .fail_always(updates.clone(), Fault::dynamodb_throughput_exceeded());
    // The reviewer approves; the launcher cannot claim the item, so it makes
    // no AWS call and answers 503, which makes Contro1 redeliver.
    let delivery = h.c1.approve(&id, "alice@example.com").await.unwrap();
    assert_eq!(delivery.status, Some(503), "{:?}", delivery.error);
    let answer: Value = serde_json::from_slice(&delivery.response_body).unwrap();
    assert_eq!(answer["error"]["code"], "storage_unavailable");
    assert!(
        !answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("UpdateItem"),
        "{answer}"
    );
    // The ask's rate counter, then the SDK's attempts at the claim.
    assert_eq!(h.proxy.count(&updates), 1 + ATTEMPTS);
    assert_eq!(h.proxy.faulted(&updates), ATTEMPTS);
    assert!(h.emu.calls().is_empty());
    assert_eq!(h.pending_state(&id).await.as_deref(), Some("pending"));
    // Redelivered while still throttled: still nothing.
    let delivery = h.c1.redeliver(&id).await.unwrap();
    assert_eq!(delivery.status, Some(503));
    assert!(h.emu.calls().is_empty());
    // Throttling over: the next redelivery executes, and only once.
    h.proxy.clear();
    let delivery = h.c1.redeliver(&id).await.unwrap();
    assert_eq!(delivery.status, Some(200), "{:?}", delivery.error);
    let answer: Value = serde_json::from_slice(&delivery.response_body).unwrap();
    assert_eq!(answer, json!({"outcome": "executed", "state": "executed"}));
    let delivery = h.c1.redeliver(&id).await.unwrap();
    let answer: Value = serde_json::from_slice(&delivery.response_body).unwrap();
    assert_eq!(answer["outcome"], "already_processed", "{answer}");
    let runs = h.calls("RunMicrovm");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].request["clientToken"], id.as_str());
    assert_eq!(h.emu.microvms().len(), 1);
    let vm = runs[0].microvm_id.clone().unwrap();
    assert_eq!(
        h.ledger().await,
        [
            (format!("call#{}", runs[0].request_id), "succeeded".into()),
            (format!("vm#{vm}"), "succeeded".into()),
        ]
    );
}

#[tokio::test]
async fn persistent_throttling_on_the_ledger_write_after_run_answers_500_and_leaves_the_vm_for_the_sweep()
 {
    let h = harness().await;
    let ledger_puts = Matcher::dynamodb_on("BatchWriteItem", &h.ledger_table);
    h.proxy
        .fail_always(ledger_puts.clone(), Fault::dynamodb_throughput_exceeded());
    let (s, v) = h.post("/microvms/run-request", &run_body()).await;
    assert_eq!(s, 500, "{v}");
    assert_eq!(v["error"]["code"], "internal");
    let msg = v["error"]["message"].as_str().unwrap();
    let runs = h.calls("RunMicrovm");
    assert_eq!(runs.len(), 1);
    assert!(
        msg.contains("RunMicrovm succeeded")
            && msg.contains(&runs[0].request_id)
            && msg.contains("ledger write failed")
            && msg.contains("reconciler"),
        "{msg}"
    );
    assert!(!msg.contains(&h.ledger_table), "{msg}");
    // The SDK's attempts, twice more after a pause (the ledger adapter's retries).
    let tries = 1 + launcher::adapters::LEDGER_RETRIES as usize;
    assert_eq!(h.proxy.count(&ledger_puts), ATTEMPTS * tries);
    // The MicroVM runs but the ledger does not hold it yet: the sweep would
    // report it, and the execution item keeps it for the reconciler.
    assert_eq!(h.emu.microvms().len(), 1);
    let id = v["error"]["message"]
        .as_str()
        .unwrap()
        .split('`')
        .nth(1)
        .unwrap()
        .to_string();
    assert_eq!(h.pending_state(&id).await.as_deref(), Some("executing"));
    assert!(h.ledger().await.is_empty());
}

/// The RunMicrovm attempts the emulator saw for one clientToken.
fn attempts_for(calls: &[ServedCall], token: &str) -> Vec<ServedCall> {
    calls
        .iter()
        .filter(|c| c.operation == "RunMicrovm" && c.request["clientToken"] == token)
        .cloned()
        .collect()
}

#[tokio::test]
async fn transient_microvms_5xx_and_throttling_are_retried_with_the_same_client_token_and_start_one_vm()
 {
    let h = harness().await;
    let cases = [
        (500, "InternalServerException"),
        (429, "ThrottlingException"),
        (503, "ServiceUnavailableException"),
    ];
    for (n, (status, error_type)) in cases.into_iter().enumerate() {
        h.emu.fail_next(2, status, error_type);
        let (s, v) = h.post("/microvms/run-request", &run_body()).await;
        assert_eq!(s, 200, "{error_type}: {v}");
        let token = v["request_id"].as_str().unwrap();
        let attempts = attempts_for(&h.emu.calls(), token);
        assert_eq!(attempts.len(), 3, "{error_type}");
        let statuses: Vec<u16> = attempts.iter().map(|c| c.status).collect();
        assert_eq!(statuses, [status, status, 200], "{error_type}");
        // Byte-for-byte the same request each time: AWS dedupes on clientToken.
        assert!(attempts.iter().all(|c| c.request == attempts[0].request));
        assert_eq!(h.emu.microvms().len(), n + 1, "{error_type}");
        assert_eq!(
            v["result"]["aws_request_id"],
            attempts[2].request_id.as_str()
        );
    }
    assert_eq!(h.calls("RunMicrovm").len(), 9);
    // Every attempt's request id has its call# item (CloudTrail logs each
    // attempt), and every VM its vm# item, once.
    let ledger = h.ledger().await;
    assert_eq!(ledger.len(), 12, "{ledger:?}");
    for call in h.calls("RunMicrovm") {
        assert!(
            ledger
                .iter()
                .any(|(pk, _)| *pk == format!("call#{}", call.request_id)),
            "attempt {} not in the ledger",
            call.request_id
        );
    }
    assert_eq!(
        ledger
            .iter()
            .filter(|(pk, _)| pk.starts_with("vm#"))
            .count(),
        3
    );
    assert!(ledger.iter().all(|(_, outcome)| outcome == "succeeded"));
}

#[tokio::test]
async fn transient_microvms_throttling_during_an_approved_callback_is_retried_and_starts_one_vm() {
    let h = harness().await;
    let id = h.pending_run().await;
    h.emu.fail_next(2, 429, "ThrottlingException");
    let delivery = h.c1.approve(&id, "alice@example.com").await.unwrap();
    assert_eq!(delivery.status, Some(200), "{:?}", delivery.error);
    let attempts = attempts_for(&h.emu.calls(), &id);
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts.iter().filter(|c| c.succeeded()).count(), 1);
    assert_eq!(h.emu.microvms().len(), 1);
    assert_eq!(h.pending_state(&id).await.as_deref(), Some("executed"));
}

#[tokio::test]
async fn persistent_microvms_failure_answers_502_naming_it_records_a_failed_call_and_starts_nothing()
 {
    let h = harness().await;
    h.emu.fail_next(100, 503, "ServiceUnavailableException");
    let (s, v) = h.post("/microvms/run-request", &run_body()).await;
    assert_eq!(s, 502, "{v}");
    assert_eq!(v["error"]["code"], "aws_error");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("RunMicrovm") && msg.contains("ServiceUnavailableException"),
        "{msg}"
    );
    let runs = h.calls("RunMicrovm");
    assert_eq!(runs.len(), ATTEMPTS);
    assert!(runs.iter().all(|c| c.status == 503));
    assert!(runs.iter().all(|c| c.request == runs[0].request));
    assert!(h.emu.microvms().is_empty());
    // The ledger records the failed call under every attempt's request id,
    // and no vm# item: nothing is "managed" that does not exist.
    let mut expected: Vec<(String, String)> = runs
        .iter()
        .map(|c| (format!("call#{}", c.request_id), "failed".into()))
        .collect();
    expected.sort();
    assert_eq!(h.ledger().await, expected);
    // Contro1 holds the authorising record and, since the failure is not
    // only in the ledger any more, the failed outcome.
    let records = h.c1.audit_records();
    let actions: Vec<Value> = records.iter().map(|a| a["action"].clone()).collect();
    assert_eq!(
        actions,
        [
            json!("aws.microvm.run.requested"),
            json!("aws.microvm.run.created")
        ]
    );
    assert_eq!(records[1]["outcome"], "failure");
}

#[tokio::test]
async fn persistent_microvms_failure_during_an_approved_callback_marks_the_request_failed_once() {
    let h = harness().await;
    let id = h.pending_run().await;
    h.emu.fail_next(100, 500, "InternalServerException");
    let delivery = h.c1.approve(&id, "alice@example.com").await.unwrap();
    // The callback was handled (so Contro1 does not redeliver): it ran and failed.
    assert_eq!(delivery.status, Some(200), "{:?}", delivery.error);
    let answer: Value = serde_json::from_slice(&delivery.response_body).unwrap();
    assert_eq!(answer, json!({"outcome": "executed", "state": "failed"}));
    let (s, v) = h.get(&format!("/requests/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(v["state"], "failed");
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains("RunMicrovm") && error.contains("InternalServerException"),
        "{error}"
    );
    let runs = h.calls("RunMicrovm");
    assert_eq!(runs.len(), ATTEMPTS);
    assert!(runs.iter().all(|c| c.request["clientToken"] == id.as_str()));
    assert!(h.emu.microvms().is_empty());
    let mut expected: Vec<(String, String)> = runs
        .iter()
        .map(|c| (format!("call#{}", c.request_id), "failed".into()))
        .collect();
    expected.sort();
    assert_eq!(h.ledger().await, expected);
    // The outcome is in the audit trail.
    let done: Vec<Value> =
        h.c1.audit_records()
            .into_iter()
            .filter(|a| a["action"] == "aws.microvm.run.created")
            .collect();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["outcome"], "failure");
    // A redelivery (the API healthy again) does not run it a second time.
    h.emu.fail_next(0, 200, "");
    let delivery = h.c1.redeliver(&id).await.unwrap();
    let answer: Value = serde_json::from_slice(&delivery.response_body).unwrap();
    assert_eq!(
        answer,
        json!({"outcome": "already_processed", "state": "failed"})
    );
    assert_eq!(h.calls("RunMicrovm").len(), ATTEMPTS);
}

#[tokio::test]
async fn contro1_5xx_then_success_is_retried_and_creates_one_approval_request() {
    let h = harness().await;
    // Two 503s, then the third attempt (the client's last) gets through.
    h.c1.fail_next(2, 503);
    let id = h.pending_run().await;
    // Three attempts of the create, then the launcher's GET of the new request.
    assert_eq!(h.c1.hits(), 4);
    let requests = h.c1.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].id, id);
    let key = requests[0].idempotency_key.clone().unwrap();
    assert!(key.starts_with("mvl-"), "{key}");
    // The agent asking again (its own retry) gets the same request back.
    let (s, v) = h.post("/microvms/run-request", &approval_run_body()).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["request_id"], id.as_str());
    assert_eq!(h.c1.requests().len(), 1);
    assert!(h.emu.calls().is_empty());
    // Auto-approved: the audit record that authorises the call is retried too,
    // and written once.
    h.c1.fail_next(1, 500);
    let (s, v) = h.post("/microvms/run-request", &run_body()).await;
    assert_eq!(s, 200, "{v}");
    let audit_id = v["request_id"].as_str().unwrap();
    let requested: Vec<Value> =
        h.c1.audit_records()
            .into_iter()
            .filter(|a| a["action"] == "aws.microvm.run.requested" && a["id"] == audit_id)
            .collect();
    assert_eq!(requested.len(), 1);
    let runs = h.calls("RunMicrovm");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].request["clientToken"], audit_id);
}

#[tokio::test]
async fn contro1_5xx_past_the_retries_fails_closed_for_both_paths_with_no_aws_call() {
    // The plain "Contro1 down" case is contro1_down_fails_closed_with_503_and_no_aws_call
    // in tests/http.rs; this pins the attempt count with the production retry policy.
    let h = harness().await;
    h.c1.fail_next(100, 502);
    for body in [run_body(), approval_run_body()] {
        let before = h.c1.hits();
        let (s, v) = h.post("/microvms/run-request", &body).await;
        assert_eq!(s, 503, "{v}");
        assert_eq!(v["error"]["code"], "contro1_unavailable");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("fail closed")
        );
        assert_eq!(h.c1.hits() - before, 3);
    }
    assert!(h.emu.calls().is_empty());
    assert!(h.c1.requests().is_empty());
    assert_eq!(h.request_items().await, 0);
    assert!(h.ledger().await.is_empty());
}

/// A throttled attempt and its successful retry are two requests CloudTrail
/// logs with two `requestID`s: both are in the ledger, so the detector
/// recognises both as the launcher's.
#[tokio::test]
async fn a_throttled_attempt_and_its_retry_both_have_a_ledger_item() {
    let h = harness().await;
    h.emu.fail_next(1, 429, "ThrottlingException");
    let (s, v) = h.post("/microvms/run-request", &run_body()).await;
    assert_eq!(s, 200, "{v}");
    let attempts = attempts_for(&h.emu.calls(), v["request_id"].as_str().unwrap());
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].status, 429);
    let ledger = h.ledger().await;
    for a in &attempts {
        let key = format!("call#{}", a.request_id);
        assert!(
            ledger.iter().any(|(pk, _)| *pk == key),
            "{key} not in {ledger:?}"
        );
    }
    assert_eq!(
        v["result"]["attempt_request_ids"].as_array().unwrap().len(),
        2
    );
}
