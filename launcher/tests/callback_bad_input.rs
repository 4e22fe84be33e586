//! Bad input table for `POST /contro1/callback` (issue 6), through the real
//! router (`launcher::app`) over the in-memory ports: each malformed
//! callback is refused with a JSON error naming what was wrong, no AWS call
//! is made, and the genuine callback sent after all of them still executes
//! the pending action exactly once. docs/bad-input.md lists these rows.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{CI, CI_AGENT, IMAGE, SANDBOX};
use http_body_util::BodyExt;
use launcher::settings::AuthMode;
use launcher::{AppState, app};
use launcher_core::agents::Caller;
use launcher_core::fakes::{
    ManualClock, MemoryApprovals, MemoryLedger, MemoryStore, RecordingMicrovms,
};
use launcher_core::request::{NetworkEgress, RunRequest};
use launcher_core::{Action, Config, PortSet, Service, Submitted};
use shared_core::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use std::collections::HashMap;
use std::sync::Arc;
use tower::ServiceExt;

const SECRET: &[u8] = b"whsec_bad_input_table";
const NOW: i64 = 1_800_000_000;

struct Rig {
    state: Arc<AppState>,
    vms: Arc<RecordingMicrovms>,
    c1: Arc<MemoryApprovals>,
}

fn rig() -> Rig {
    let file = format!(
        r#"
[policy]
allowed_image_arns = ["{IMAGE}"]
allowed_execution_role_arns = ["{SANDBOX}"]
allowed_token_ports = [8080]
approval_ttl_seconds = 600
{}"#,
        common::agents_toml(&[CI_AGENT]),
    );
    let config = Config::from_parts(&file, &HashMap::new()).unwrap();
    let vms = Arc::new(RecordingMicrovms::default());
    let c1 = Arc::new(MemoryApprovals::default());
    let clock = Arc::new(ManualClock::at(NOW));
    let ports = PortSet {
        store: Arc::new(MemoryStore::new()),
        ledger: Arc::new(MemoryLedger::default()),
        microvms: vms.clone(),
        approvals: c1.clone(),
        clock: clock.clone(),
    };
    let state = Arc::new(AppState {
        service: Service::new(config, ports, "http://launcher/contro1/callback"),
        auth: AuthMode::Bearer,
        webhook_secret: SECRET.to_vec(),
        webhook_window_seconds: 300,
        callback_qualifier: "contro1-webhook".into(),
        region: None,
        clock,
    });
    Rig { state, vms, c1 }
}

/// A run that needs a human decision (long duration): its request id.
async fn pending(r: &Rig) -> String {
    let action = Action::Run(RunRequest {
        agent_id: None,
        owner: Some("team-a".into()),
        reason: "bad input table".into(),
        environment: None,
        image_arn: IMAGE.into(),
        image_version: None,
        execution_role_arn: SANDBOX.into(),
        duration_seconds: 5000,
        network_egress: NetworkEgress::None,
        shell_access: false,
        correlation_id: None,
        metadata: serde_json::json!({}),
    });
    let caller = Caller::Bearer { token: CI.into() };
    match r.state.service.submit(&caller, action).await.unwrap() {
        Submitted::Pending { request_id, .. } => request_id,
        other => panic!("expected a pending request, got {other:?}"),
    }
}

async fn post(
    r: &Rig,
    sig: Option<&str>,
    ts: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::post("/contro1/callback").header("content-type", "application/json");
    if let Some(s) = sig {
        req = req.header(SIGNATURE_HEADER, s);
    }
    if let Some(t) = ts {
        req = req.header(TIMESTAMP_HEADER, t);
    }
    let resp = app(r.state.clone())
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json)
}

#[tokio::test]
async fn bad_callbacks_are_refused_with_a_named_error_and_the_genuine_one_still_executes_once() {
    let r = rig();
    let id = pending(&r).await;
    let approve = serde_json::json!({"request_id": id, "state": "answered",
        "response": {"approved": true}})
    .to_string()
    .into_bytes();
    let ts = NOW.to_string();
    let good_sig = sign(SECRET, NOW, &approve);
    let big = {
        // Signed correctly, but past the router's 64 KiB limit.
        let mut v = serde_json::json!({"request_id": id, "state": "answered",
            "response": {"approved": true}, "metadata": {"pad": "x".repeat(70 * 1024)}});
        v["metadata"]["n"] = 1.into();
        v.to_string().into_bytes()
    };
    let big_sig = sign(SECRET, NOW, &big);
    let not_json = b"approved=yes".to_vec();
    let not_json_sig = sign(SECRET, NOW, &not_json);
    let no_id = br#"{"state":"answered","response":{"approved":true}}"#.to_vec();
    let no_id_sig = sign(SECRET, NOW, &no_id);
    // Regression: a signed body with `approved` twice inside `response`
    // executed (the last copy won).
    let twice = format!(
        r#"{{"request_id":"{id}","state":"answered","response":{{"approved":false,"approved":true}}}}"#
    )
    .into_bytes();
    let twice_sig = sign(SECRET, NOW, &twice);
    let stale = (NOW - 301).to_string();
    let stale_sig = sign(SECRET, NOW - 301, &approve);

    type Row<'a> = (
        &'a str,
        Option<String>,
        Option<String>,
        Vec<u8>,
        StatusCode,
        &'a str,
        &'a str,
    );
    let rows: Vec<Row> = vec![
        (
            "oversized body (70 KiB, correctly signed)",
            Some(big_sig),
            Some(ts.clone()),
            big,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "request body is larger than 65536 bytes",
        ),
        (
            "signature of the wrong length",
            Some(good_sig[..63].to_string()),
            Some(ts.clone()),
            approve.clone(),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "X-Centcom-Signature is not a hex HMAC-SHA256: wrong length (saw 63 characters, expected 64 hex digits)",
        ),
        (
            "non-hex signature",
            Some(format!("zz{}", &good_sig[2..])),
            Some(ts.clone()),
            approve.clone(),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "X-Centcom-Signature is not a hex HMAC-SHA256: not hex (saw 64 characters",
        ),
        (
            "missing timestamp",
            Some(good_sig.clone()),
            None,
            approve.clone(),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "missing webhook header X-Centcom-Timestamp",
        ),
        (
            "missing signature",
            None,
            Some(ts.clone()),
            approve.clone(),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "missing webhook header X-Centcom-Signature",
        ),
        (
            "stale timestamp",
            Some(stale_sig),
            Some(stale),
            approve.clone(),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "is more than 300 s away from the receiver's clock",
        ),
        (
            "body changed after signing",
            Some(good_sig.clone()),
            Some(ts.clone()),
            [&approve[..], b" "].concat(),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "webhook signature does not match the body and timestamp",
        ),
        (
            "signed body that is not JSON",
            Some(not_json_sig),
            Some(ts.clone()),
            not_json,
            StatusCode::BAD_REQUEST,
            "invalid_callback",
            "verified callback body is not a Contro1 callback: expected value at line 1 column 1",
        ),
        (
            "signed body with a key twice inside response",
            Some(twice_sig),
            Some(ts.clone()),
            twice,
            StatusCode::BAD_REQUEST,
            "invalid_callback",
            "duplicate key `approved` in `response`",
        ),
        (
            "signed body without request_id",
            Some(no_id_sig),
            Some(ts.clone()),
            no_id,
            StatusCode::BAD_REQUEST,
            "invalid_callback",
            "missing field `request_id`",
        ),
    ];
    for (row, sig, ts, body, status, code, message) in rows {
        let (got, json) = post(&r, sig.as_deref(), ts.as_deref(), body).await;
        assert_eq!(got, status, "{row}: {json}");
        assert_eq!(json["error"]["code"], code, "{row}: {json}");
        let msg = json["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(message), "{row}: {msg:?} lacks {message:?}");
        assert!(r.vms.calls().is_empty(), "{row}: an AWS call was made");
    }

    // Nothing was lost: the genuine callback still executes, once (Contro1
    // confirms the approval).
    r.c1.decide(&id, launcher_core::Resolution::Approved);
    let (got, json) = post(&r, Some(&good_sig), Some(&NOW.to_string()), approve.clone()).await;
    assert_eq!(got, StatusCode::OK, "{json}");
    assert_eq!(r.vms.calls().len(), 1, "{:?}", r.vms.calls());
    let (got, json) = post(&r, Some(&good_sig), Some(&NOW.to_string()), approve).await;
    assert_eq!(got, StatusCode::OK, "replay: {json}");
    assert_eq!(r.vms.calls().len(), 1, "a replay executed again");
}
