//! What each path costs in round trips: the DynamoDB requests (counted by
//! the fault proxy in front of moto, nothing faulted) and the Contro1 calls
//! (counted by the stand-in) of one request on each path. Each count is
//! what the path's guarantees need; a change that adds one fails here and
//! has to say why.
//!
//! | path | DynamoDB | Contro1 |
//! | --- | --- | --- |
//! | auto-approved run | execution item, ledger batch, finish | audit record, result record |
//! | approval ask | rate counter, held item?, pending item | create request, still open? |
//! | approved callback | item, claim (`ALL_NEW` carries the claim), ledger batch, finish | confirm, approved record, result record |
//! | agent GET | item | — |
//!
//! Needs `MOTO_ENDPOINT` (see DEVELOPERS.md); panics clearly without it.

mod common;

use axum::http::StatusCode;
use common::{CI, CI_AGENT, IMAGE, SANDBOX, Setup};
use serde_json::{Value, json};
use testkit::fault_proxy::FaultProxy;

/// Round trips made since `mark`.
struct Since<'a> {
    h: &'a common::Harness,
    proxy: &'a FaultProxy,
    dynamodb: usize,
    contro1: u64,
}

impl<'a> Since<'a> {
    fn mark(h: &'a common::Harness, proxy: &'a FaultProxy) -> Self {
        Since {
            h,
            proxy,
            dynamodb: proxy.requests().len(),
            contro1: h.c1.state().hits(),
        }
    }

    /// `(operation, table kind)` of each DynamoDB request, and the number
    /// of Contro1 calls.
    fn trips(&self) -> (Vec<(String, &'static str)>, u64) {
        let kind = |t: &Option<String>| match t.as_deref() {
            Some(t) if t == self.h.pending_table => "pending",
            Some(t) if t == self.h.ledger_table => "ledger",
            _ => "other",
        };
        let ddb = self.proxy.requests()[self.dynamodb..]
            .iter()
            .map(|r| (r.operation.clone(), kind(&r.table)))
            .collect();
        (ddb, self.h.c1.state().hits() - self.contro1)
    }
}

fn ops(list: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
    list.iter().map(|(o, t)| (o.to_string(), *t)).collect()
}

fn run_body(duration: u32) -> Value {
    json!({"owner": "team-a", "reason": "round trips", "image_arn": IMAGE,
           "execution_role_arn": SANDBOX, "duration_seconds": duration})
}

#[tokio::test]
async fn each_path_makes_only_the_round_trips_its_guarantees_need() {
    let proxy = FaultProxy::start().await;
    let setup = Setup {
        dynamodb_sdk: Some(proxy.sdk_config().await),
        ..Setup::new(common::policy_file("round-trips", false, &[CI_AGENT]))
    };
    let h = common::harness(setup, "http://127.0.0.1:9").await;

    let since = Since::mark(&h, &proxy);
    let (s, v) = h.post(CI, "/microvms/run-request", run_body(600)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        since.trips(),
        (
            ops(&[
                ("PutItem", "pending"),
                ("BatchWriteItem", "ledger"),
                ("UpdateItem", "pending"),
            ]),
            2
        ),
        "auto-approved run"
    );

    let since = Since::mark(&h, &proxy);
    let (s, v) = h.post(CI, "/microvms/run-request", run_body(3600)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["request_id"].as_str().unwrap().to_string();
    assert_eq!(
        since.trips(),
        (
            ops(&[
                ("UpdateItem", "pending"),
                ("GetItem", "pending"),
                ("PutItem", "pending"),
            ]),
            2
        ),
        "approval ask"
    );

    let since = Since::mark(&h, &proxy);
    let (s, v) = h.approve(&id).await;
    assert_eq!(
        (s, v["outcome"].clone()),
        (StatusCode::OK, json!("executed"))
    );
    // Regression: a read-back GetItem after the claim doubled what the
    // conditional write's ALL_NEW answer already said.
    assert_eq!(
        since.trips(),
        (
            ops(&[
                ("GetItem", "pending"),
                ("UpdateItem", "pending"),
                ("BatchWriteItem", "ledger"),
                ("UpdateItem", "pending"),
            ]),
            3
        ),
        "approved callback"
    );

    let since = Since::mark(&h, &proxy);
    let (s, v) = h.get(CI, &format!("/requests/{id}")).await;
    assert_eq!((s, v["state"].clone()), (StatusCode::OK, json!("executed")));
    assert_eq!(
        since.trips(),
        (ops(&[("GetItem", "pending")]), 0),
        "agent GET"
    );
}
