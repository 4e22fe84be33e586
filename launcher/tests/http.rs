//! The launcher through its real router (`tower::ServiceExt::oneshot`), with
//! DynamoDB on moto, the MicroVMs API on the testkit emulator driven by the
//! real SDK, and Contro1 on the stand-in over real HTTP.
//!
//! Needs `MOTO_ENDPOINT` (see DEVELOPERS.md); panics clearly without it.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Agent, CI, CI_AGENT, IMAGE, PROD, SANDBOX, SECRET, Setup};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared_core::webhook::Decision;
use std::time::Duration;
use tower::ServiceExt;

const OTHER_IMAGE: &str = "arn:aws:lambda:us-east-1:111122223333:microvm-image:unlisted";
const ADMIN: &str = "arn:aws:iam::111122223333:role/admin";
const OTHER: &str = "other-token";
const OFF: &str = "disabled-token";

/// The harness these tests drive through `oneshot`.
type H = common::Harness;

fn policy_file() -> String {
    common::policy_file(
        "http-test",
        true,
        &[
            CI_AGENT,
            Agent::new("other", OTHER),
            Agent::new("off", OFF).disabled(),
        ],
    )
}

async fn harness_with(contro1_timeout: Duration, public_url: &str) -> H {
    let setup = Setup {
        contro1_timeout: Some(contro1_timeout),
        contro1_max_retries: Some(1),
        ..Setup::new(policy_file())
    };
    common::harness(setup, public_url).await
}

async fn harness() -> H {
    // Callbacks in these tests are posted through the router, not by the stand-in.
    harness_with(Duration::from_secs(3), "http://127.0.0.1:9").await
}

impl H {
    /// Start a MicroVM through the launcher (auto-approved); its id.
    async fn managed_vm(&self, token: &str) -> String {
        let (s, v) = self.post(token, "/microvms/run-request", run_body()).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["result"]["microvm_id"].as_str().unwrap().to_string()
    }
}

fn run_body() -> Value {
    json!({
        "owner": "team-a",
        "reason": "integration test",
        "image_arn": IMAGE,
        "execution_role_arn": SANDBOX,
        "duration_seconds": 600,
        "correlation_id": "case-42"
    })
}

fn with(mut v: Value, k: &str, x: Value) -> Value {
    v[k] = x;
    v
}

fn token_body(ports: &Value, ttl: u32) -> Value {
    json!({"owner": "team-a", "reason": "r", "ports": ports, "token_ttl_seconds": ttl})
}

fn shell_body() -> Value {
    json!({"owner": "team-a", "reason": "debug", "token_ttl_seconds": 300})
}

fn lifecycle_body() -> Value {
    json!({"owner": "team-a", "reason": "r"})
}

#[tokio::test]
async fn every_policy_row_answers_with_its_status_and_rule_through_the_router() {
    let h = harness().await;
    let vm = h.managed_vm(CI).await;
    let unmanaged = h
        .emu
        .seed_microvms(1, IMAGE, testkit::emulator::MicrovmState::Running)[0]
        .clone();
    let run = "/microvms/run-request".to_string();
    let on = |what: &str| format!("/microvms/{vm}/{what}");
    let rows: Vec<(&str, String, Value, StatusCode, &str)> = vec![
        (CI, run.clone(), run_body(), StatusCode::OK, "auto.run"),
        (
            CI,
            on("auth-token-request"),
            token_body(&json!([8080]), 300),
            StatusCode::OK,
            "auto.auth_token",
        ),
        (
            CI,
            on("shell-token-request"),
            shell_body(),
            StatusCode::ACCEPTED,
            "shell.token",
        ),
        (
            CI,
            run.clone(),
            with(run_body(), "shell_access", json!(true)),
            StatusCode::ACCEPTED,
            "run.shell_access",
        ),
        (
            CI,
            on("auth-token-request"),
            token_body(&json!("all"), 300),
            StatusCode::ACCEPTED,
            "token.all_ports",
        ),
        (
            CI,
            on("auth-token-request"),
            token_body(&json!([22]), 300),
            StatusCode::ACCEPTED,
            "token.broad_ports",
        ),
        (
            CI,
            on("auth-token-request"),
            token_body(&json!([8080]), 3600),
            StatusCode::ACCEPTED,
            "token.long_lived",
        ),
        (
            OTHER,
            on("auth-token-request"),
            token_body(&json!([8080]), 300),
            StatusCode::ACCEPTED,
            "token.not_owner",
        ),
        (
            CI,
            run.clone(),
            with(run_body(), "network_egress", json!("vpc")),
            StatusCode::ACCEPTED,
            "network.private_egress",
        ),
        (
            CI,
            run.clone(),
            with(run_body(), "network_egress", json!("private")),
            StatusCode::ACCEPTED,
            "network.private_egress",
        ),
        (
            CI,
            run.clone(),
            with(run_body(), "network_egress", json!("internet")),
            StatusCode::ACCEPTED,
            "network.internet_egress",
        ),
        (
            CI,
            run.clone(),
            with(run_body(), "execution_role_arn", json!(PROD)),
            StatusCode::ACCEPTED,
            "role.production",
        ),
        (
            CI,
            run.clone(),
            with(run_body(), "duration_seconds", json!(3600)),
            StatusCode::ACCEPTED,
            "duration.long",
        ),
        (
            CI,
            run.clone(),
            with(run_body(), "image_arn", json!(OTHER_IMAGE)),
            StatusCode::ACCEPTED,
            "image.unregistered",
        ),
        (
            CI,
            on("suspend"),
            lifecycle_body(),
            StatusCode::ACCEPTED,
            "lifecycle.suspend",
        ),
        (
            CI,
            on("resume"),
            lifecycle_body(),
            StatusCode::ACCEPTED,
            "lifecycle.resume",
        ),
        (
            OFF,
            run.clone(),
            run_body(),
            StatusCode::FORBIDDEN,
            "agent.disabled",
        ),
        (
            CI,
            run.clone(),
            with(run_body(), "owner", json!("")),
            StatusCode::FORBIDDEN,
            "owner.missing",
        ),
        (
            CI,
            run.clone(),
            with(
                with(run_body(), "shell_access", json!(true)),
                "execution_role_arn",
                json!(PROD),
            ),
            StatusCode::FORBIDDEN,
            "shell.production_role",
        ),
        (
            CI,
            run.clone(),
            with(run_body(), "execution_role_arn", json!(ADMIN)),
            StatusCode::FORBIDDEN,
            "role.not_allowed",
        ),
        (
            CI,
            format!("/microvms/{unmanaged}/shell-token-request"),
            shell_body(),
            StatusCode::FORBIDDEN,
            "target.unmanaged",
        ),
        (
            OTHER,
            on("terminate"),
            lifecycle_body(),
            StatusCode::ACCEPTED,
            "terminate.not_owner",
        ),
        (
            CI,
            on("terminate"),
            lifecycle_body(),
            StatusCode::OK,
            "terminate.owner_emergency",
        ),
    ];
    for (token, path, body, status, rule) in rows {
        let (s, v) = h.post(token, &path, body).await;
        assert_eq!(s, status, "{rule}: {v}");
        assert_eq!(v["decision"]["rule_id"], rule, "{v}");
        assert_eq!(v["decision"]["policy_version"], "http-test");
    }
    // Blocks and approvals made no AWS call of their own: only the auto rows did.
    assert_eq!(h.emulator_calls("RunMicrovm"), 2);
    assert_eq!(h.emulator_calls("CreateMicrovmAuthToken"), 1);
    assert_eq!(h.emulator_calls("CreateMicrovmShellAuthToken"), 0);
    assert_eq!(h.emulator_calls("TerminateMicrovm"), 1);
    // Blocks are audited in Contro1.
    let audits = h.c1.audit_records();
    assert!(
        audits
            .iter()
            .any(|a| a["action"] == "aws.microvm.run.denied"
                && a["metadata"]["decision"]["rule_id"] == "role.not_allowed")
    );
}

#[tokio::test]
async fn auto_approved_run_carries_the_audit_id_and_is_in_the_ledger_with_the_emulators_request_id()
{
    let h = harness().await;
    let (s, v) = h.post(CI, "/microvms/run-request", run_body()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let contro1_id = v["request_id"].as_str().unwrap();
    let calls = h.emu.calls();
    let run = calls.iter().find(|c| c.operation == "RunMicrovm").unwrap();
    // The audit record came first, and its id is on the call.
    let audits = h.c1.audit_records();
    let first = audits.iter().find(|a| a["id"] == contro1_id).unwrap();
    assert_eq!(first["action"], "aws.microvm.run.requested");
    assert_eq!(first["metadata"]["decision"]["rule_id"], "auto.run");
    assert_eq!(run.request["clientToken"], contro1_id);
    let hook: Value =
        serde_json::from_str(run.request["runHookPayload"].as_str().unwrap()).unwrap();
    assert_eq!(
        hook,
        json!({"contro1_request_id": contro1_id, "agent_id": "ci", "owner": "team-a", "correlation_id": "case-42"})
    );
    assert_eq!(v["result"]["aws_request_id"], run.request_id.as_str());
    let known = h
        .ledger
        .known_requests(std::slice::from_ref(&run.request_id))
        .await
        .unwrap();
    assert!(known.contains(&run.request_id));
    let vm = run.microvm_id.clone().unwrap();
    let entry = h.ledger.microvm(&vm).await.unwrap().unwrap();
    assert_eq!(entry.contro1_request_id, contro1_id);
    assert_eq!(
        entry.aws_request_id.as_deref(),
        Some(run.request_id.as_str())
    );
    assert_eq!(entry.agent_id, "ci");
    assert_eq!(entry.owner, "team-a");
    assert_eq!(entry.image_arn.as_deref(), Some(IMAGE));
    assert_eq!(entry.execution_role_arn.as_deref(), Some(SANDBOX));
    assert_eq!(entry.correlation_id.as_deref(), Some("case-42"));
}

async fn pending_run(h: &H) -> String {
    let (s, v) = h
        .post(
            CI,
            "/microvms/run-request",
            with(run_body(), "duration_seconds", json!(3600)),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["status"], "pending");
    v["request_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn bad_callbacks_are_refused_and_make_zero_aws_calls() {
    let h = harness().await;
    let id = pending_run(&h).await;
    let before = h.emu.calls().len();
    let good = h.c1.signed_callback(&id, Decision::Approved).unwrap();
    let hdr = |sig: &str, ts: String| {
        vec![
            ("X-Centcom-Signature", sig.to_string()),
            ("X-Centcom-Timestamp", ts),
            ("X-Centcom-Request-Id", id.clone()),
        ]
    };
    // forged signature
    let forged = shared_core::webhook::sign(b"not-the-secret", good.timestamp, &good.body);
    let (s, v) = h
        .callback(good.body.clone(), &hdr(&forged, good.timestamp.to_string()))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["error"]["code"], "bad_signature");
    // stale timestamp, correctly signed
    let stale =
        h.c1.signed_callback_at(&id, Decision::Approved, good.timestamp - 3600)
            .unwrap();
    let (s, v) = h
        .callback(
            stale.body.clone(),
            &hdr(&stale.signature, stale.timestamp.to_string()),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("stale"),
        "{v}"
    );
    // missing headers
    let (s, _) = h.callback(good.body.clone(), &[]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = h
        .callback(good.body.clone(), &hdr(&good.signature, String::new())[..1])
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // body tampered after signing (a denied callback turned into an approval, or vice versa)
    let mut tampered: Value = serde_json::from_slice(&good.body).unwrap();
    tampered["request_id"] = json!(format!("{id}x"));
    let (s, _) = h
        .callback(
            tampered.to_string().into_bytes(),
            &hdr(&good.signature, good.timestamp.to_string()),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // unknown request id, correctly signed
    let mut unknown: Value = serde_json::from_slice(&good.body).unwrap();
    unknown["request_id"] = json!("req_does_not_exist");
    let body = unknown.to_string().into_bytes();
    let ts = good.timestamp;
    let sig = shared_core::webhook::sign(SECRET.as_bytes(), ts, &body);
    let (s, v) = h.callback(body, &hdr(&sig, ts.to_string())).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(
        h.emu.calls().len(),
        before,
        "a refused callback reached AWS"
    );
    // And the real one still works afterwards.
    let (s, v) = h.approve(&id).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(h.emulator_calls("RunMicrovm"), 1);
}

/// DynamoDB's atomic conditional write on the item is what lets exactly one
/// delivery move it `pending → executing`. moto does not serialise
/// conditional writes (several concurrent writers can pass `state =
/// pending`; without the proxy this test failed 10 runs of 30), so
/// the launcher's DynamoDB goes through a serialising proxy here
/// (`Setup::serialise_dynamodb`), which gives moto DynamoDB's guarantee.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_identical_approved_callbacks_start_exactly_one_microvm() {
    let setup = Setup {
        contro1_max_retries: Some(1),
        serialise_dynamodb: true,
        ..Setup::new(policy_file())
    };
    let h = common::harness(setup, "http://127.0.0.1:9").await;
    let id = pending_run(&h).await;
    let cb = h.c1.decide(&id, Decision::Approved).unwrap();
    let headers: Vec<(&'static str, String)> = cb.headers().into_iter().collect();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let router = h.router.clone();
        let body = cb.body.clone();
        let headers = headers.clone();
        tasks.push(tokio::spawn(async move {
            let mut b = Request::post("/contro1/callback");
            for (k, v) in &headers {
                b = b.header(*k, v);
            }
            let resp = router
                .oneshot(b.body(Body::from(body)).unwrap())
                .await
                .unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        }));
    }
    let mut executed = 0;
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert_eq!(s, StatusCode::OK, "{v}");
        if v["outcome"] == "executed" {
            executed += 1;
        }
    }
    assert_eq!(executed, 1);
    let runs: Vec<_> = h
        .emu
        .calls()
        .into_iter()
        .filter(|c| c.operation == "RunMicrovm")
        .collect();
    assert_eq!(runs.len(), 1);
    // The stored input, not the callback, decided the call.
    assert_eq!(runs[0].request["clientToken"], id.as_str());
    assert_eq!(runs[0].request["maximumDurationInSeconds"], 3600);
}

#[tokio::test]
async fn denied_callback_records_the_state_and_calls_nothing() {
    let h = harness().await;
    let id = pending_run(&h).await;
    let cb = h.c1.signed_callback(&id, Decision::Denied).unwrap();
    let headers: Vec<(&str, String)> = cb.headers().into_iter().collect();
    let (s, v) = h.callback(cb.body.clone(), &headers).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["outcome"], "recorded");
    assert_eq!(v["state"], "denied");
    // A later approval is a no-op.
    let (s, v) = h.approve(&id).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["outcome"], "already_processed");
    assert_eq!(h.emu.calls().len(), 0);
    let (_, v) = h.get(CI, &format!("/requests/{id}")).await;
    assert_eq!(v["state"], "denied");
    assert!(
        h.c1.audit_records()
            .iter()
            .any(|a| a["action"] == "aws.microvm.run.denied")
    );
}

#[tokio::test]
async fn contro1_down_fails_closed_with_503_and_no_aws_call() {
    let h = harness().await;
    h.c1.fail_next(100, 503);
    for body in [
        run_body(),
        with(run_body(), "duration_seconds", json!(3600)),
    ] {
        let (s, v) = h.post(CI, "/microvms/run-request", body).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert_eq!(v["error"]["code"], "contro1_unavailable");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("fail closed")
        );
    }
    assert!(h.emu.calls().is_empty());
}

#[tokio::test]
async fn contro1_slow_fails_closed_with_503_and_no_aws_call() {
    let h = harness_with(Duration::from_millis(200), "http://127.0.0.1:9").await;
    h.c1.set_delay(Duration::from_millis(1500));
    let (s, v) = h.post(CI, "/microvms/run-request", run_body()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{v}"
    );
    assert!(h.emu.calls().is_empty());
}

#[tokio::test]
async fn body_agent_id_spoofing_is_refused_with_403() {
    let h = harness().await;
    let (s, v) = h
        .post(
            CI,
            "/microvms/run-request",
            with(run_body(), "agent_id", json!("other")),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "agent_mismatch");
    assert_eq!(v["error"]["field"], "agent_id");
    assert!(h.emu.calls().is_empty());
    // The own id is accepted.
    let (s, _) = h
        .post(
            CI,
            "/microvms/run-request",
            with(run_body(), "agent_id", json!("ci")),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn oversize_and_malformed_bodies_get_4xx_naming_the_problem() {
    let h = harness().await;
    let big = with(run_body(), "reason", json!("x".repeat(70 * 1024)));
    let (s, v) = h.post(CI, "/microvms/run-request", big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("65536"),
        "{v}"
    );
    let cases: Vec<(Value, &str)> = vec![
        (
            with(run_body(), "duraton_seconds", json!(1)),
            "duraton_seconds",
        ),
        (
            with(run_body(), "network_egress", json!("anywhere")),
            "anywhere",
        ),
        (with(run_body(), "duration_seconds", json!(-5)), "-5"),
        (
            with(run_body(), "image_arn", json!("arn:aws:s3:::bucket")),
            "image_arn",
        ),
        (
            with(run_body(), "execution_role_arn", json!("nope")),
            "execution_role_arn",
        ),
        (
            with(run_body(), "duration_seconds", json!(99999)),
            "duration_seconds",
        ),
    ];
    for (body, needle) in cases {
        let (s, v) = h.post(CI, "/microvms/run-request", body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["error"].to_string().contains(needle), "{needle}: {v}");
    }
    for raw in ["{not json", "", "[1,2]"] {
        let (s, v) = h
            .send(
                Request::post("/microvms/run-request")
                    .header("authorization", format!("Bearer {CI}"))
                    .body(Body::from(raw))
                    .unwrap(),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{raw}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    let (s, v) = h
        .post(CI, "/microvms/a%2F..%2Fb/suspend", lifecycle_body())
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["field"], "microvm_id");
    assert!(h.emu.calls().is_empty());
}

#[tokio::test]
async fn approved_shell_token_is_returned_once_only_to_its_agent_then_erased_from_dynamodb() {
    let h = harness().await;
    let vm = h.managed_vm(CI).await;
    let (s, v) = h
        .post(
            CI,
            &format!("/microvms/{vm}/shell-token-request"),
            shell_body(),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let id = v["request_id"].as_str().unwrap().to_string();
    let (s, v) = h.get(CI, &format!("/requests/{id}")).await;
    assert_eq!((s, v["state"].clone()), (StatusCode::OK, json!("pending")));
    let (s, v) = h.approve(&id).await;
    assert_eq!(
        (s, v["outcome"].clone()),
        (StatusCode::OK, json!("executed")),
        "{v}"
    );
    // Another agent cannot see it.
    let (s, _) = h.get(OTHER, &format!("/requests/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let issued = h
        .emu
        .calls()
        .into_iter()
        .find(|c| c.operation == "CreateMicrovmShellAuthToken")
        .unwrap();
    let (s, first) = h.get(CI, &format!("/requests/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(first["state"], "executed");
    assert_eq!(
        first["token"], issued.response["authToken"]["X-aws-proxy-auth"],
        "{first}"
    );
    assert_eq!(
        first["result"]["aws_request_id"],
        issued.request_id.as_str()
    );
    let (_, second) = h.get(CI, &format!("/requests/{id}")).await;
    assert!(second.get("token").is_none(), "{second}");
    assert_eq!(second["token_already_returned"], true);
    let item = h
        .dynamo
        .get_item()
        .table_name(&h.pending_table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("req#{id}")),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let item = item.item().unwrap();
    assert!(!item.contains_key("token"));
    assert_eq!(item["state"].as_s().unwrap(), "executed");
    assert!(item.contains_key("expires_at"));
}

#[tokio::test]
async fn the_stand_in_delivers_a_signed_callback_over_real_http_to_a_served_launcher() {
    // Bind first so the launcher's public URL (the callback_url Contro1 gets) is known.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let h = harness_with(Duration::from_secs(3), &format!("http://{addr}")).await;
    let router = h.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("http://{addr}/microvms/run-request"))
        .bearer_auth(CI)
        .json(&with(run_body(), "duration_seconds", json!(3600)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let v: Value = resp.json().await.unwrap();
    let id = v["request_id"].as_str().unwrap().to_string();
    let stored = h.c1.request(&id).unwrap();
    assert_eq!(
        stored.callback_url(),
        Some(format!("http://{addr}/contro1/callback").as_str())
    );
    // A reviewer approves in the stand-in; it POSTs the signed callback to the launcher.
    let delivery = h.c1.approve(&id, "alice@example.com").await.unwrap();
    assert_eq!(delivery.status, Some(200), "{:?}", delivery.error);
    // Contro1 redelivers: acknowledged, not executed again.
    let again = h.c1.redeliver(&id).await.unwrap();
    assert_eq!(again.status, Some(200));
    let r: Value = http
        .get(format!("http://{addr}/requests/{id}"))
        .bearer_auth(CI)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["state"], "executed", "{r}");
    assert_eq!(h.emulator_calls("RunMicrovm"), 1);
}

#[tokio::test]
async fn healthz_and_unknown_routes_answer_json() {
    let h = harness().await;
    let (s, v) = h.get(CI, "/healthz").await;
    assert_eq!((s, v["status"].clone()), (StatusCode::OK, json!("ok")));
    let (s, v) = h.get(CI, "/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "not_found");
}
