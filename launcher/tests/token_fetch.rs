//! A sealed token survives a failed fetch, and agents never read Contro1's
//! own error text. Through the real router with DynamoDB and KMS on moto,
//! the emulator and the Contro1 stand-in.
//!
//! Regression: opening a sealed token deleted it before decrypting, so a
//! KMS failure destroyed it and later fetches said `token_already_returned:
//! true`; a Contro1 error's message reached the agent in the `503` body.

mod common;

use axum::http::StatusCode;
use common::{CI, CI_AGENT, IMAGE, SANDBOX, Setup, harness, policy_file};
use launcher::seal::KmsSealer;
use serde_json::json;
use std::sync::Arc;
use testkit::fault_proxy::{Fault, FaultProxy, Matcher};

#[tokio::test]
async fn a_kms_failure_at_fetch_leaves_the_token_sealed_and_a_later_fetch_gets_it_once() {
    let kms = testkit::moto::kms_client().await;
    let key = testkit::moto::create_kms_key(&kms, "launcher tokens, fetch test").await;
    // The launcher's KMS client goes through a proxy that can answer KMS's
    // own `DisabledException` (moto's DisableKey is not usable here).
    let proxy = FaultProxy::start().await;
    let launcher_kms = aws_sdk_kms::Client::new(&proxy.sdk_config().await);
    let mut setup = Setup::new(policy_file("fetch", false, &[CI_AGENT]));
    setup.sealer = Some(Arc::new(KmsSealer::new(launcher_kms, key.clone())));
    let h = harness(setup, "http://127.0.0.1:9").await;
    let (s, v) = h
        .post(
            CI,
            "/microvms/run-request",
            json!({"owner": "platform", "reason": "r", "image_arn": IMAGE,
                   "execution_role_arn": SANDBOX, "duration_seconds": 600}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let vm = v["result"]["microvm_id"].as_str().unwrap().to_string();
    let (s, v) = h
        .post(
            CI,
            &format!("/microvms/{vm}/shell-token-request"),
            json!({"owner": "platform", "reason": "debug", "token_ttl_seconds": 300}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["request_id"].as_str().unwrap().to_string();
    let (s, v) = h.approve(&id).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // KMS refuses to decrypt (the key is disabled).
    proxy.fail_always(
        Matcher::Any,
        Fault::new(
            400,
            "application/x-amz-json-1.1",
            r#"{"__type":"DisabledException","message":"key is disabled"}"#,
        ),
    );
    let (s, v) = h.get(CI, &format!("/requests/{id}")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "storage_unavailable", "{v}");
    assert!(v["error"]["reference"].is_string(), "{v}");
    assert!(v.get("token").is_none());
    // KMS is back: the token was not destroyed, and is handed over once.
    proxy.clear();
    let (s, v) = h.get(CI, &format!("/requests/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v["token"].is_string(),
        "the token was destroyed by the failed fetch: {v}"
    );
    let (_, v) = h.get(CI, &format!("/requests/{id}")).await;
    assert!(v.get("token").is_none());
    assert_eq!(v["token_already_returned"], true);
}

#[tokio::test]
async fn agents_see_an_error_code_and_a_reference_never_contro1s_own_text() {
    let h = harness(
        Setup::new(policy_file("c1text", false, &[CI_AGENT])),
        "http://127.0.0.1:9",
    )
    .await;
    let body = json!({"owner": "platform", "reason": "r", "image_arn": IMAGE,
                      "execution_role_arn": SANDBOX, "duration_seconds": 600});
    // The stand-in answers `{"message": "injected fault"}`: a 4xx (final) and
    // a 503 (after the retries).
    for status in [400, 503] {
        h.c1.state().fail_next(10, status);
        let (s, v) = h.post(CI, "/microvms/run-request", body.clone()).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert_eq!(v["error"]["code"], "contro1_unavailable", "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains("injected fault") && !message.contains("127.0.0.1"),
            "Contro1's text reached the agent: {message}"
        );
        let reference = v["error"]["reference"].as_str().unwrap();
        assert!(message.contains(reference), "{v}");
        h.c1.state().fail_next(0, 503);
    }
    assert_eq!(h.emulator_calls("RunMicrovm"), 0);
}
