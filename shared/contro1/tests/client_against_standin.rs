//! The Contro1 client against the local stand-in over real HTTP: the API
//! calls, idempotency, the retry / timeout / fail-closed rules, and signed
//! callbacks verified with `shared_core::webhook::verify` over the raw bytes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use contro1::types::{
    AuditActor, AuditResource, AuditSource, INTEGRATION, RESOURCE_TYPE_MICROVM, RequestType,
};
use contro1::{
    AuditRecord, Contro1Client, Contro1Config, Contro1Error, CreateRequest, StandIn, StandInConfig,
    StandInError, StandInHandle,
};
use serde_json::{Value, json};
use shared_core::webhook::{self, Callback, Decision};

const KEY: &str = "sk_test_standin_key_5f3a";
const SECRET: &str = "whsec_standin_secret";

async fn standin() -> StandInHandle {
    StandIn::start(StandInConfig::new(KEY, SECRET))
        .await
        .unwrap()
}

fn client_for(base_url: &str) -> Contro1Client {
    let mut cfg = Contro1Config::new(base_url, KEY);
    cfg.backoff_base = Duration::from_millis(10);
    Contro1Client::new(cfg).unwrap()
}

/// The fields Contro1's SDK always sends (`type`, `question`, `context`).
fn question(q: &str) -> CreateRequest {
    CreateRequest {
        request_type: Some(RequestType::Approval),
        question: Some(q.into()),
        context: Some(format!("context of {q}")),
        ..Default::default()
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// One callback as received: headers and raw body.
type Hit = (HeaderMap, Vec<u8>);

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Hit>>>);

/// A tiny callback receiver that records headers and the raw body.
async fn receiver() -> (String, Received) {
    async fn hook(State(r): State<Received>, headers: HeaderMap, body: Bytes) -> &'static str {
        r.0.lock().unwrap().push((headers, body.to_vec()));
        "ok"
    }
    let received = Received::default();
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn create_then_get_returns_the_same_request_and_stores_the_body_sent() {
    let s = standin().await;
    let c = client_for(&s.base_url());
    let req = CreateRequest {
        metadata: Some(json!({"action_type": "run_microvm"})),
        correlation_id: Some("case-1".into()),
        ..question("Run image X?")
    };
    let created = c.create_request(&req, "idem-create-1").await.unwrap();
    assert_eq!(created.state, "created");
    assert!(!created.is_terminal());
    let got = c.get_request(&created.id).await.unwrap();
    assert_eq!(got.id, created.id);
    assert_eq!(got.raw["question"], "Run image X?");

    let stored = s.request(&created.id).unwrap();
    assert_eq!(stored.body, serde_json::to_value(&req).unwrap());
    assert_eq!(stored.idempotency_key.as_deref(), Some("idem-create-1"));
}

#[tokio::test]
async fn same_idempotency_key_twice_creates_one_request() {
    let s = standin().await;
    let c = client_for(&s.base_url());
    let a = c
        .create_request(&question("once?"), "idem-dup")
        .await
        .unwrap();
    let b = c
        .create_request(&question("once?"), "idem-dup")
        .await
        .unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(s.requests().len(), 1);
    let other = c
        .create_request(&question("once?"), "idem-other")
        .await
        .unwrap();
    assert_ne!(other.id, a.id);
    assert_eq!(s.requests().len(), 2);
}

#[tokio::test]
async fn idempotency_key_reused_with_another_body_is_rejected() {
    let s = standin().await;
    let c = client_for(&s.base_url());
    c.create_request(&question("first"), "idem-reuse")
        .await
        .unwrap();
    let err = c
        .create_request(&question("second"), "idem-reuse")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Contro1Error::Rejected { status: 409, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn cancel_moves_the_request_to_cancelled_and_sends_a_cancelled_callback() {
    let s = standin().await;
    let (url, received) = receiver().await;
    let c = client_for(&s.base_url());
    let req = CreateRequest {
        callback_url: Some(url),
        ..question("cancel me")
    };
    let r = c.create_request(&req, "idem-cancel").await.unwrap();
    c.cancel_request(&r.id).await.unwrap();
    let got = c.get_request(&r.id).await.unwrap();
    assert_eq!(got.state, "cancelled");
    assert!(got.is_terminal());

    // The callback is sent in the background: wait for it (bounded).
    let mut waited = 0;
    while received.0.lock().unwrap().is_empty() && waited < 100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    let (headers, body) = received.0.lock().unwrap()[0].clone();
    webhook::verify(
        SECRET.as_bytes(),
        header(&headers, webhook::SIGNATURE_HEADER),
        header(&headers, webhook::TIMESTAMP_HEADER),
        &body,
        now(),
        webhook::DEFAULT_WINDOW_SECS,
    )
    .unwrap();
    assert_eq!(
        Callback::from_slice(&body).unwrap().decision(),
        Decision::Cancelled
    );

    // Cancelling twice is a final 4xx.
    let err = c.cancel_request(&r.id).await.unwrap_err();
    assert!(
        matches!(err, Contro1Error::Rejected { status: 409, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn audit_record_returns_its_id_and_is_stored_once() {
    let s = standin().await;
    let c = client_for(&s.base_url());
    let record = AuditRecord {
        action: "aws.microvm.bypass.detected".into(),
        summary: Some("RunMicrovm outside the launcher".into()),
        source: Some(AuditSource {
            integration: INTEGRATION.into(),
            workflow_id: None,
        }),
        actor: Some(AuditActor {
            agent_id: "agent-7".into(),
        }),
        resource: Some(AuditResource {
            resource_type: RESOURCE_TYPE_MICROVM.into(),
            id: "mvm-123".into(),
            uri: None,
        }),
        ..Default::default()
    };
    let id = c.create_audit_record(&record).await.unwrap();
    assert!(id.starts_with("aud_"), "{id}");
    let stored = s.audit_records();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["id"], id.as_str());
    assert_eq!(stored[0]["resource"]["id"], "mvm-123");
    assert_eq!(stored[0]["action"], "aws.microvm.bypass.detected");
}

#[tokio::test]
async fn retried_audit_record_after_a_503_is_still_stored_once() {
    let s = standin().await;
    let c = client_for(&s.base_url());
    s.fail_next(1, 503);
    let record = AuditRecord {
        action: "aws.microvm.run.created".into(),
        summary: Some("MicroVM started".into()),
        source: Some(AuditSource {
            integration: INTEGRATION.into(),
            workflow_id: None,
        }),
        ..Default::default()
    };
    c.create_audit_record(&record).await.unwrap();
    assert_eq!(s.hits(), 2);
    assert_eq!(s.audit_records().len(), 1);
}

#[tokio::test]
async fn two_503s_then_success_succeeds_on_the_third_attempt() {
    let s = standin().await;
    let c = client_for(&s.base_url());
    s.fail_next(2, 503);
    let r = c
        .create_request(&question("retry me"), "idem-retry")
        .await
        .unwrap();
    assert_eq!(s.hits(), 3);
    assert_eq!(s.requests().len(), 1);
    assert_eq!(s.requests()[0].id, r.id);
}

#[tokio::test]
async fn always_503_is_unavailable_after_three_attempts() {
    let s = standin().await;
    let c = client_for(&s.base_url());
    s.fail_next(100, 503);
    let err = c.get_request("req_x").await.unwrap_err();
    match err {
        Contro1Error::Unavailable {
            op,
            status,
            attempts,
            ref message,
        } => {
            assert_eq!((op, status, attempts), ("get_request", 503, 3));
            assert_eq!(message, "injected fault");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(s.hits(), 3);
}

#[tokio::test]
async fn retry_after_from_the_server_is_honoured_instead_of_the_short_backoff() {
    let s = standin().await;
    let c = client_for(&s.base_url()); // backoff_base 10 ms
    s.fail_next_with_retry_after(1, 429, 1);
    let started = std::time::Instant::now();
    c.create_request(&question("later"), "idem-retry-after")
        .await
        .unwrap();
    assert_eq!(s.hits(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited only {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn too_many_requests_is_retried_like_a_5xx() {
    let s = standin().await;
    let c = client_for(&s.base_url());
    s.fail_next(1, 429);
    c.create_request(&question("busy"), "idem-429")
        .await
        .unwrap();
    assert_eq!(s.hits(), 2);
}

#[tokio::test]
async fn bad_request_is_rejected_once_with_the_servers_message() {
    let s = standin().await;
    let c = client_for(&s.base_url());
    let err = c
        .create_request(&CreateRequest::default(), "idem-400")
        .await
        .unwrap_err();
    match err {
        Contro1Error::Rejected {
            op,
            status,
            ref message,
        } => {
            assert_eq!((op, status), ("create_request", 400));
            assert!(message.contains("`type` must be one of"), "{message}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(s.hits(), 1, "a 4xx is final");
}

#[tokio::test]
async fn wrong_api_key_is_rejected_with_401() {
    let s = standin().await;
    let c = Contro1Client::new(Contro1Config::new(s.base_url(), "sk_wrong")).unwrap();
    let err = c.get_request("req_1").await.unwrap_err();
    assert!(
        matches!(err, Contro1Error::Rejected { status: 401, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn unknown_request_is_a_404_rejection() {
    let s = standin().await;
    let c = client_for(&s.base_url());
    let err = c.get_request("req_missing").await.unwrap_err();
    assert!(
        matches!(err, Contro1Error::Rejected { status: 404, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn slow_server_past_the_timeout_is_a_timeout_and_is_not_retried() {
    let s = standin().await;
    let mut cfg = Contro1Config::new(s.base_url(), KEY);
    cfg.timeout = Duration::from_millis(200);
    cfg.backoff_base = Duration::from_millis(10);
    let c = Contro1Client::new(cfg).unwrap();
    s.set_delay(Duration::from_millis(1500));
    let err = c
        .create_request(&question("slow"), "idem-slow")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Contro1Error::Timeout {
                op: "create_request"
            }
        ),
        "{err:?}"
    );
    // Give a (wrong) retry the time to arrive before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.hits(), 1, "a timeout must not be retried");
}

#[tokio::test]
async fn connection_refused_is_retried_then_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = client_for(&format!("http://{addr}"));
    let started = std::time::Instant::now();
    let err = c.get_request("req_1").await.unwrap_err();
    assert!(
        matches!(
            err,
            Contro1Error::Unreachable {
                op: "get_request",
                ..
            }
        ),
        "{err:?}"
    );
    // Two backoffs of at least 5 ms and 10 ms happened, so it was retried.
    assert!(started.elapsed() >= Duration::from_millis(15));
    assert!(
        std::error::Error::source(&err).is_some(),
        "keeps the transport error"
    );
}

#[tokio::test]
async fn approve_delivers_a_callback_that_verifies_over_the_exact_raw_bytes() {
    let s = standin().await;
    let (url, received) = receiver().await;
    let c = client_for(&s.base_url());
    let req = CreateRequest {
        callback_url: Some(url.clone()),
        metadata: Some(json!({"contro1_case": "c-9"})),
        ..question("approve me")
    };
    let r = c.create_request(&req, "idem-approve").await.unwrap();
    let delivery = s.approve(&r.id, "alice@example.com").await.unwrap();
    assert_eq!(delivery.status, Some(200));
    assert_eq!(delivery.url.as_deref(), Some(url.as_str()));

    let (headers, body) = received.0.lock().unwrap()[0].clone();
    assert_eq!(
        body, delivery.body,
        "the receiver got exactly the bytes signed"
    );
    let ts = webhook::verify(
        SECRET.as_bytes(),
        header(&headers, webhook::SIGNATURE_HEADER),
        header(&headers, webhook::TIMESTAMP_HEADER),
        &body,
        now(),
        webhook::DEFAULT_WINDOW_SECS,
    )
    .unwrap();
    assert!((now() - ts).abs() <= 5);
    assert_eq!(
        header(&headers, webhook::REQUEST_ID_HEADER),
        Some(r.id.as_str())
    );

    // The wrong secret does not verify the same delivery.
    assert_eq!(
        webhook::verify(
            b"another",
            header(&headers, webhook::SIGNATURE_HEADER),
            header(&headers, webhook::TIMESTAMP_HEADER),
            &body,
            now(),
            300
        ),
        Err(webhook::WebhookError::Mismatch)
    );

    let cb = Callback::from_slice(&body).unwrap();
    assert_eq!(cb.decision(), Decision::Approved);
    assert_eq!(cb.request_id, r.id);
    assert_eq!(cb.responded_by.as_deref(), Some("alice@example.com"));
    assert_eq!(cb.metadata, Some(json!({"contro1_case": "c-9"})));

    let after = c.get_request(&r.id).await.unwrap();
    assert_eq!(after.state, "answered");
    assert_eq!(after.decision(), Some(Decision::Approved));
}

#[tokio::test]
async fn deny_and_expire_deliver_callbacks_that_read_as_denials() {
    let s = standin().await;
    let (url, received) = receiver().await;
    let c = client_for(&s.base_url());
    let req = CreateRequest {
        callback_url: Some(url),
        ..question("deny me")
    };
    let denied = c.create_request(&req, "idem-deny").await.unwrap();
    let expired = c.create_request(&req, "idem-expire").await.unwrap();
    s.deny(&denied.id, "bob").await.unwrap();
    s.expire(&expired.id).await.unwrap();
    let got = received.0.lock().unwrap().clone();
    let decisions: Vec<Decision> = got
        .iter()
        .map(|(_, b)| Callback::from_slice(b).unwrap().decision())
        .collect();
    assert_eq!(decisions, [Decision::Denied, Decision::Expired]);
    for (headers, body) in &got {
        webhook::verify(
            SECRET.as_bytes(),
            header(headers, webhook::SIGNATURE_HEADER),
            header(headers, webhook::TIMESTAMP_HEADER),
            body,
            now(),
            300,
        )
        .unwrap();
    }
}

#[tokio::test]
async fn a_resolved_request_cannot_be_resolved_again_but_can_be_redelivered_byte_for_byte() {
    let s = standin().await;
    let (url, received) = receiver().await;
    let c = client_for(&s.base_url());
    let req = CreateRequest {
        callback_url: Some(url),
        ..question("once")
    };
    let r = c.create_request(&req, "idem-once").await.unwrap();
    let first = s.approve(&r.id, "alice").await.unwrap();
    let err = s.deny(&r.id, "mallory").await.unwrap_err();
    assert!(matches!(err, StandInError::NotPending { .. }), "{err:?}");
    let again = s.redeliver(&r.id).await.unwrap();
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers, first.headers);
    assert_eq!(received.0.lock().unwrap().len(), 2);
    assert_eq!(s.request(&r.id).unwrap().callback_attempts, 2);
}

#[tokio::test]
async fn signed_callback_is_built_but_not_sent_and_leaves_the_request_pending() {
    let s = standin().await;
    let (url, received) = receiver().await;
    let c = client_for(&s.base_url());
    let req = CreateRequest {
        callback_url: Some(url),
        ..question("build only")
    };
    let r = c.create_request(&req, "idem-build").await.unwrap();
    let sc = s.signed_callback(&r.id, Decision::Approved).unwrap();
    let ts = sc.timestamp.to_string();
    assert_eq!(
        webhook::verify(
            SECRET.as_bytes(),
            Some(&sc.signature),
            Some(&ts),
            &sc.body,
            now(),
            300
        ),
        Ok(sc.timestamp)
    );
    assert_eq!(
        Callback::from_slice(&sc.body).unwrap().decision(),
        Decision::Approved
    );
    assert_eq!(s.request(&r.id).unwrap().state, "created");
    assert!(received.0.lock().unwrap().is_empty());

    let stale = s
        .signed_callback_at(&r.id, Decision::Approved, now() - 3600)
        .unwrap();
    let ts = stale.timestamp.to_string();
    assert!(matches!(
        webhook::verify(
            SECRET.as_bytes(),
            Some(&stale.signature),
            Some(&ts),
            &stale.body,
            now(),
            300
        ),
        Err(webhook::WebhookError::Stale { .. })
    ));
}

#[tokio::test]
async fn dev_endpoints_approve_over_http_and_list_requests() {
    let s = standin().await;
    let (url, received) = receiver().await;
    let c = client_for(&s.base_url());
    let req = CreateRequest {
        callback_url: Some(url),
        ..question("dev approve")
    };
    let r = c.create_request(&req, "idem-dev").await.unwrap();
    let http = reqwest::Client::new();
    let answer: Value = http
        .post(format!("{}/_dev/requests/{}/approve", s.base_url(), r.id))
        .json(&json!({"responded_by": "carol"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["state"], "answered");
    assert_eq!(answer["callback"]["status"], 200);
    let (_, body) = received.0.lock().unwrap()[0].clone();
    assert_eq!(
        Callback::from_slice(&body).unwrap().responded_by.as_deref(),
        Some("carol")
    );

    let listed: Value = http
        .get(format!("{}/_dev/requests", s.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["id"], r.id.as_str());
    assert_eq!(listed[0]["idempotency_key"], "idem-dev");

    let faults: Value = http
        .post(format!("{}/_dev/faults", s.base_url()))
        .json(&json!({"fail_next": 1, "status": 502}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults["fail_next"], 1);
    let mut cfg = Contro1Config::new(s.base_url(), KEY);
    cfg.max_retries = 0;
    let no_retry = Contro1Client::new(cfg).unwrap();
    let err = no_retry.get_request(&r.id).await.unwrap_err();
    assert!(
        matches!(
            err,
            Contro1Error::Unavailable {
                status: 502,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn api_key_never_appears_in_debug_output_of_the_client_or_config() {
    let s = standin().await;
    let c = client_for(&s.base_url());
    let dbg_client = format!("{c:?}");
    let dbg_cfg = format!("{:?}", c.config());
    assert!(!dbg_client.contains(KEY), "{dbg_client}");
    assert!(!dbg_cfg.contains(KEY), "{dbg_cfg}");
    assert!(dbg_cfg.contains("***redacted***"));
    let dbg_standin = format!("{:?}", StandInConfig::new(KEY, SECRET));
    assert!(!dbg_standin.contains(KEY) && !dbg_standin.contains(SECRET));
    // And it is not in any error message either.
    s.fail_next(5, 503);
    let err = c.get_request("req_1").await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains(KEY));
}

#[tokio::test]
async fn shutdown_stops_the_standin() {
    let s = standin().await;
    let base = s.base_url();
    s.shutdown().await;
    let c = client_for(&base);
    let err = c.get_request("req_1").await.unwrap_err();
    assert!(matches!(err, Contro1Error::Unreachable { .. }), "{err:?}");
}
