//! Tokens at rest under KMS envelope encryption, against KMS and DynamoDB on
//! moto: the data key comes from `GenerateDataKey` bound to the item by its
//! encryption context, only its wrapped form is stored next to the
//! AES-256-GCM ciphertext, and the fetch erases both.
//!
//! Needs `MOTO_ENDPOINT` (see DEVELOPERS.md); panics clearly without it.

mod common;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use aws_sdk_dynamodb::types::AttributeValue;
use axum::http::StatusCode;
use common::{CI, CI_AGENT, IMAGE, SANDBOX, Setup};
use launcher::seal::{CONTEXT_KEY, KmsSealer, Sealer};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

const TOKEN: &[u8] = b"emu-token-7d2f0a9c4b1e";

async fn kms_key() -> (aws_sdk_kms::Client, String) {
    let kms = testkit::moto::kms_client().await;
    let key = testkit::moto::create_kms_key(&kms, "launcher tokens, seal test").await;
    (kms, key)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What KMS gives back for `wrapped` under the item `context`.
async fn unwrap_data_key(
    kms: &aws_sdk_kms::Client,
    wrapped: &[u8],
    context: &str,
) -> Result<Vec<u8>, String> {
    kms.decrypt()
        .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(wrapped))
        .encryption_context(CONTEXT_KEY, context)
        .send()
        .await
        .map_err(|e| format!("{}", aws_sdk_kms::error::DisplayErrorContext(e)))
        .map(|o| o.plaintext.expect("a plaintext data key").into_inner())
}

/// `nonce || ciphertext` opened with `key`, the item's key as associated data.
fn aead_open(key: &[u8], context: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    let (nonce, ct) = sealed.split_at(12);
    Aes256Gcm::new_from_slice(key)
        .ok()?
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: context.as_bytes(),
            },
        )
        .ok()
}

#[tokio::test]
async fn kms_sealed_tokens_open_only_for_their_own_item() {
    let (kms, key) = kms_key().await;
    let sealer = KmsSealer::new(kms.clone(), &key);
    let sealed = sealer.seal("req#a", TOKEN).await.unwrap();
    assert!(!contains(&sealed.ciphertext, TOKEN), "ciphertext hides it");
    assert!(!contains(&sealed.wrapped_key, TOKEN));
    assert_eq!(sealer.open("req#a", &sealed).await.unwrap(), TOKEN);
    // Another item's context: KMS itself refuses the data key.
    let moved = sealer.open("req#b", &sealed).await.unwrap_err();
    assert!(moved.to_string().contains("Decrypt"), "{moved}");
    assert!(
        unwrap_data_key(&kms, &sealed.wrapped_key, "req#b")
            .await
            .is_err()
    );
    // The stored layers are what they claim: KMS's data key opens the AEAD.
    let data_key = unwrap_data_key(&kms, &sealed.wrapped_key, "req#a")
        .await
        .unwrap();
    assert_eq!(data_key.len(), 32, "AES-256");
    assert_eq!(
        aead_open(&data_key, "req#a", &sealed.ciphertext).as_deref(),
        Some(TOKEN)
    );
    let again = sealer.seal("req#a", TOKEN).await.unwrap();
    assert_ne!(
        again.wrapped_key, sealed.wrapped_key,
        "a data key per token"
    );
}

#[tokio::test]
async fn an_approved_shell_token_waits_sealed_under_kms_and_the_fetch_erases_it() {
    let (kms, key) = kms_key().await;
    let h = common::harness(
        Setup {
            sealer: Some(Arc::new(KmsSealer::new(kms.clone(), &key))),
            ..Setup::new(common::policy_file("kms-test", false, &[CI_AGENT]))
        },
        "http://127.0.0.1:9",
    )
    .await;
    let (s, run) = h
        .post(
            CI,
            "/microvms/run-request",
            json!({"owner": "team-a", "reason": "seal test", "image_arn": IMAGE,
                   "execution_role_arn": SANDBOX, "duration_seconds": 600}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{run}");
    let vm = run["result"]["microvm_id"].as_str().unwrap();
    let (s, ask) = h
        .post(
            CI,
            &format!("/microvms/{vm}/shell-token-request"),
            json!({"owner": "team-a", "reason": "debug", "token_ttl_seconds": 300}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{ask}");
    let id = ask["request_id"].as_str().unwrap().to_string();
    let (s, v) = h.approve(&id).await;
    assert_eq!(
        (s, v["outcome"].clone()),
        (StatusCode::OK, json!("executed"))
    );
    let token = h
        .emu
        .microvms()
        .into_iter()
        .flat_map(|m| m.tokens_issued)
        .map(|t| t.value)
        .next()
        .expect("the emulator issued the shell token");

    let pk = format!("req#{id}");
    let read = || async {
        h.dynamo
            .get_item()
            .table_name(&h.pending_table)
            .key("pk", AttributeValue::S(pk.clone()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap_or_default()
    };
    let item: HashMap<String, AttributeValue> = read().await;
    let blob = |k: &str| match item.get(k) {
        Some(AttributeValue::B(b)) => b.as_ref().to_vec(),
        other => panic!("{k} is not a binary attribute: {other:?} in {item:?}"),
    };
    let (ciphertext, wrapped) = (blob("token_sealed"), blob("token_key"));
    for (name, v) in &item {
        let plain = match v {
            AttributeValue::B(b) => contains(b.as_ref(), token.as_bytes()),
            other => format!("{other:?}").contains(&token),
        };
        assert!(!plain, "{name} holds the token in plaintext");
    }
    // Sealed under the item's binding: agent, request id, action digest.
    let text = |k: &str| match item.get(k) {
        Some(AttributeValue::S(v)) => v.clone(),
        other => panic!("`{k}` of the item: {other:?}"),
    };
    let binding =
        launcher_core::approval::token_binding(&text("agent_id"), &id, &text("idempotency_key"));
    assert!(
        unwrap_data_key(&kms, &wrapped, &pk).await.is_err(),
        "the data key opens under the item key alone"
    );
    let data_key = unwrap_data_key(&kms, &wrapped, &binding).await.unwrap();
    assert_eq!(
        aead_open(&data_key, &binding, &ciphertext).as_deref(),
        Some(token.as_bytes()),
        "the stored ciphertext is the token under the KMS data key"
    );

    let (s, first) = h.get(CI, &format!("/requests/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(first["token"], token.as_str(), "{first}");
    let after = read().await;
    assert!(
        !after.contains_key("token_sealed") && !after.contains_key("token_key"),
        "the fetch erases the sealed token and its wrapped key: {after:?}"
    );
    assert_eq!(after["has_token"], AttributeValue::Bool(false));
}
