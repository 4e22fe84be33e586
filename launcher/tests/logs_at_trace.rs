//! No secret reaches the logs, whatever the log level: the built launcher
//! runs as Lambda runs it (local Runtime API, both Function URLs) with
//! DynamoDB and KMS on moto, the MicroVMs emulator and the Contro1 stand-in,
//! at `AWS_LAMBDA_LOG_LEVEL=TRACE` (JSON) and at `RUST_LOG=trace` with the
//! SDK and HTTP crates asked for by name (text). It issues an auto-approved
//! auth token and a human-approved shell token, fetches the shell token,
//! and then every log line is searched for every secret the process held:
//! both tokens, the Contro1 API key, the webhook secret, the KMS data key
//! (as bytes, base64 and hex) and the function's AWS secret key and session
//! token.
//!
//! Regression: at TRACE the AWS SDK's `aws_smithy_runtime` printed response
//! bodies, a MicroVM token among them, 38 times. With the cap on the SDK's
//! and HTTP crates' levels removed, this test fails.

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use contro1::{StandIn, StandInConfig};
use serde_json::{Value, json};
use std::sync::Arc;
use testkit::emulator::{CallerIdentity, Emulator};
use testkit::lambda_runtime::{Function, FunctionUrl, IamCaller, call_function_url};
use testkit::moto;
use tokio::sync::Mutex;

const ROLE: &str = "arn:aws:iam::123456789012:role/microvm-launcher";
const AGENT_ROLE: &str = "arn:aws:iam::123456789012:role/agents/ci-bot";
const IMAGE: &str = "arn:aws:lambda:us-east-1:123456789012:microvm-image:agent-sandbox";
const SANDBOX_ROLE: &str = "arn:aws:iam::123456789012:role/microvm-sandbox";
const API_KEY: &str = "trace-test-contro1-api-key-5f0c1d";
const WEBHOOK_SECRET: &str = "trace-test-webhook-secret-93ab2e";
const AWS_SECRET_KEY: &str = "trace-test-aws-secret-key-77d1c0";
const AWS_SESSION_TOKEN: &str = "trace-test-aws-session-token-4c2a9b";
const CALLBACK_ALIAS: &str = "contro1-webhook";

fn agent() -> IamCaller {
    IamCaller {
        account_id: "123456789012".into(),
        user_arn: "arn:aws:sts::123456789012:assumed-role/ci-bot/ci-run-7".into(),
        user_id: "AROATRACEAGENT000001:ci-run-7".into(),
        access_key: "ASIATRACEAGENT000001".into(),
    }
}

/// The forms a secret could take in a log line.
fn forms(secret: &[u8]) -> Vec<String> {
    let mut out = vec![
        base64::engine::general_purpose::STANDARD.encode(secret),
        hex::encode(secret),
    ];
    if let Ok(text) = std::str::from_utf8(secret) {
        out.push(text.to_string());
    }
    out
}

/// Runs the governed flow with the launcher's logging set by `log_env`
/// and answers (every log line, every secret the process held).
async fn flow_with_logging(log_env: &[(&str, &str)]) -> (Vec<String>, Vec<(String, Vec<u8>)>) {
    moto::ensure_running().await;
    let sdk = moto::sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let kms = aws_sdk_kms::Client::new(&sdk);
    let pending = testkit::unique_name("trace-pending");
    let ledger = testkit::unique_name("trace-ledger");
    moto::create_pending_table(&ddb, &pending, launcher::store::DEFAULT_EXECUTING_INDEX).await;
    moto::create_pk_table(&ddb, &ledger).await;
    let key_id = moto::create_kms_key(&kms, "launcher tokens, trace test").await;
    let emulator = Emulator::start().await;
    emulator.register_identity(
        "AKIDTRACELAUNCHER",
        CallerIdentity::assumed_role(ROLE, "microvm-launcher"),
    );
    let contro1 = StandIn::start(StandInConfig::new(API_KEY, WEBHOOK_SECRET))
        .await
        .expect("start the Contro1 stand-in");
    let dir = std::env::temp_dir().join(testkit::unique_name("trace-policy"));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("launcher.toml");
    std::fs::write(
        &policy,
        format!(
            r#"
[policy]
version = "trace-1"
allowed_image_arns = ["{IMAGE}"]
allowed_execution_role_arns = ["{SANDBOX_ROLE}"]
allowed_token_ports = [8080]
max_auto_approve_duration_seconds = 900
max_token_ttl_seconds = 900

[[agents]]
id = "ci-bot"
owner = "platform-team"
environment = "dev"
principal_arns = ["{AGENT_ROLE}"]
"#
        ),
    )
    .unwrap();
    let webhook_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public_url = format!("http://{}", webhook_listener.local_addr().unwrap());
    let (moto_url, emulator_url, contro1_url) = (
        moto::endpoint(),
        emulator.base_url().to_string(),
        contro1.base_url(),
    );
    let mut env: Vec<(String, String)> = [
        ("AWS_ACCESS_KEY_ID", "AKIDTRACELAUNCHER"),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET_KEY),
        ("AWS_SESSION_TOKEN", AWS_SESSION_TOKEN),
        ("AWS_ENDPOINT_URL", &moto_url),
        ("MICROVMS_ENDPOINT_URL", &emulator_url),
        ("CONTRO1_BASE_URL", &contro1_url),
        ("CONTRO1_API_KEY", API_KEY),
        ("CONTRO1_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("PENDING_TABLE", &pending),
        ("LEDGER_TABLE", &ledger),
        ("LAUNCHER_PUBLIC_URL", &public_url),
        ("LAUNCHER_CONFIG", policy.to_str().unwrap()),
        ("TOKEN_KMS_KEY_ID", &key_id),
    ]
    .iter()
    .chain(log_env)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.sort();
    let launcher = Arc::new(Mutex::new(
        Function::spawn(
            std::path::Path::new(env!("CARGO_BIN_EXE_launcher")),
            "microvm-launcher",
            &env,
        )
        .await,
    ));
    let _webhook = FunctionUrl::serve_alias(webhook_listener, launcher.clone(), CALLBACK_ALIAS);
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let launcher = launcher.clone();
        async move {
            call_function_url(
                &launcher,
                None,
                method,
                &path,
                body.as_ref(),
                Some(&agent()),
            )
            .await
        }
    };

    let (status, run) = call(
        "POST",
        "/microvms/run-request".into(),
        Some(json!({
            "owner": "platform-team", "reason": "trace logging test", "environment": "dev",
            "image_arn": IMAGE, "execution_role_arn": SANDBOX_ROLE, "duration_seconds": 600
        })),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    let vm = run["result"]["microvm_id"].as_str().unwrap().to_string();

    let (status, auth) = call(
        "POST",
        format!("/microvms/{vm}/auth-token-request"),
        Some(json!({"owner": "platform-team", "reason": "reach the app", "ports": [8080], "token_ttl_seconds": 300})),
    )
    .await;
    assert_eq!(status, 200, "auto-approved auth token: {auth}");
    assert!(auth["token"].is_string(), "{auth}");

    let (status, shell) = call(
        "POST",
        format!("/microvms/{vm}/shell-token-request"),
        Some(json!({"owner": "platform-team", "reason": "debug", "token_ttl_seconds": 300})),
    )
    .await;
    assert_eq!(status, 202, "{shell}");
    let shell_id = shell["request_id"].as_str().unwrap().to_string();
    let delivery = contro1
        .approve(&shell_id, "reviewer@example.com")
        .await
        .unwrap();
    assert_eq!(delivery.status, Some(200), "{:?}", delivery.error);

    // The data key sealing the waiting shell token, as KMS gives it back
    // for this item's binding only (agent, request id, action digest).
    let item = ddb
        .get_item()
        .table_name(&pending)
        .key("pk", AttributeValue::S(format!("req#{shell_id}")))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_default();
    let Some(AttributeValue::B(wrapped)) = item.get("token_key") else {
        panic!("the approved shell token is not waiting sealed: {item:?}");
    };
    let text = |k: &str| match item.get(k) {
        Some(AttributeValue::S(v)) => v.clone(),
        other => panic!("`{k}` of the item: {other:?}"),
    };
    let binding = launcher_core::approval::token_binding(
        &text("agent_id"),
        &shell_id,
        &text("idempotency_key"),
    );
    let data_key = kms
        .decrypt()
        .key_id(&key_id)
        .ciphertext_blob(wrapped.clone())
        .encryption_context(launcher::seal::CONTEXT_KEY, binding)
        .send()
        .await
        .expect("KMS opens the item's data key with the item's binding as encryption context")
        .plaintext
        .expect("a plaintext data key")
        .into_inner();
    assert_eq!(data_key.len(), 32, "an AES-256 data key");

    let (status, fetched) = call("GET", format!("/requests/{shell_id}"), None).await;
    assert_eq!(status, 200, "{fetched}");
    assert_eq!(fetched["state"], "executed", "{fetched}");

    let tokens: Vec<_> = emulator
        .microvms()
        .into_iter()
        .flat_map(|m| m.tokens_issued)
        .map(|t| t.value)
        .collect();
    assert_eq!(tokens.len(), 2, "an auth and a shell token were issued");
    assert_eq!(fetched["token"], tokens[1].as_str(), "{fetched}");
    let mut secrets: Vec<(String, Vec<u8>)> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("MicroVM token {i}"), t.as_bytes().to_vec()))
        .collect();
    secrets.extend([
        ("Contro1 API key".into(), API_KEY.as_bytes().to_vec()),
        ("webhook secret".into(), WEBHOOK_SECRET.as_bytes().to_vec()),
        ("KMS data key".into(), data_key),
        ("AWS secret key".into(), AWS_SECRET_KEY.as_bytes().to_vec()),
        (
            "AWS session token".into(),
            AWS_SESSION_TOKEN.as_bytes().to_vec(),
        ),
    ]);
    // Let the last lines reach the log reader.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let logs = launcher.lock().await.logs();
    (logs, secrets)
}

fn assert_no_secret_in(logs: &[String], secrets: &[(String, Vec<u8>)]) {
    assert!(
        logs.iter()
            .any(|l| l.contains("log filter in force") && l.contains("DEBUG")),
        "the launcher did not log at DEBUG, so the level asked for was not applied; logs:\n{}",
        logs.join("\n")
    );
    for (what, secret) in secrets {
        for form in forms(secret) {
            let hits: Vec<_> = logs.iter().filter(|l| l.contains(&form)).collect();
            assert!(
                hits.is_empty(),
                "{what} appears in {} of {} log lines, e.g.: {}",
                hits.len(),
                logs.len(),
                hits[0]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_is_logged_at_aws_lambda_log_level_trace() {
    let (logs, secrets) = flow_with_logging(&[
        ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
    ])
    .await;
    assert_no_secret_in(&logs, &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_is_logged_at_rust_log_trace_naming_the_sdk_and_http_crates() {
    let (logs, secrets) = flow_with_logging(&[
        (
            "RUST_LOG",
            "trace,aws_smithy_runtime=trace,aws_sdk_kms=trace,hyper=trace,reqwest=trace",
        ),
        ("AWS_LAMBDA_LOG_FORMAT", "Text"),
    ])
    .await;
    assert_no_secret_in(&logs, &secrets);
}
