//! The whole pipeline on one machine, with the built binaries running as Lambda runs them.
//!
//! Real parts: moto (S3, SQS, SNS, DynamoDB, EventBridge, CloudTrail), the MicroVMs emulator
//! (every call through the real `aws-sdk-lambdamicrovms`, each one recorded as the CloudTrail
//! record AWS would write), the Contro1 stand-in (real HTTP, signed callbacks), and the
//! `launcher` and `detector` binaries under a local Lambda Runtime API
//! (`testkit::lambda_runtime`), invoked with real event payloads: Function URL events (IAM and
//! public), SQS batches of moto's own S3 notifications, EventBridge events routed by a moto
//! rule, and the scheduled sweep event.
//!
//! The scenario (README "Demo"): an agent launches a sandbox through the launcher
//! (auto-approved), asks for a shell token (a human approves it in Contro1), fetches the token
//! once; a second actor with other credentials calls RunMicrovm and CreateMicrovmShellAuthToken
//! directly; a third uses the launcher's role by hand. Then CloudTrail's file lands in S3 and
//! the detector runs. Exactly the bypass calls are reported, with their rules and severities;
//! the sweep reports the MicroVMs nobody governed; each finding reaches SNS once, even after
//! redelivery and through a second path; Contro1 holds the audit records of the whole
//! timeline; the governed MicroVM is never reported.
//!
//! Run with `--nocapture` to read the timeline (`scripts/demo.sh` does). Needs
//! `MOTO_ENDPOINT` and the built binaries (see `src/lib.rs`).

use aws_sdk_dynamodb::types::AttributeValue;
use contro1::{StandIn, StandInConfig};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;
use testkit::emulator::{CallerIdentity, Emulator};
use testkit::lambda_control;
use testkit::lambda_runtime::{
    Function, FunctionUrl, IamCaller, call_function_url, workspace_binary,
};
use testkit::moto;
use tokio::sync::Mutex;

const ACCOUNT: &str = "123456789012";
const LAUNCHER_ROLE: &str = "arn:aws:iam::123456789012:role/microvm-launcher";
const DETECTOR_ROLE: &str = "arn:aws:iam::123456789012:role/microvm-detector";
const AGENT_ROLE: &str = "arn:aws:iam::123456789012:role/agents/ci-bot";
const IMAGE: &str = "arn:aws:lambda:us-east-1:123456789012:microvm-image:agent-sandbox";
const SANDBOX_ROLE: &str = "arn:aws:iam::123456789012:role/microvm-sandbox";
const CONTRO1_KEY: &str = "e2e-contro1-api-key";
const WEBHOOK_SECRET: &str = "e2e-webhook-secret";
/// Lambda names a function's role session after the function.
const LAUNCHER_FUNCTION: &str = "microvm-launcher";
const DETECTOR_FUNCTION: &str = "microvm-detector";

const LAUNCHER_SRC: &[&str] = &[
    "launcher/src",
    "launcher/core/src",
    "shared/core/src",
    "shared/aws/src",
    "shared/contro1/src",
];
const DETECTOR_SRC: &[&str] = &[
    "detector/src",
    "detector/core/src",
    "shared/core/src",
    "shared/aws/src",
    "shared/contro1/src",
];

fn say(step: &str) {
    println!("\n== {step}");
}

fn agent() -> IamCaller {
    IamCaller {
        account_id: ACCOUNT.into(),
        user_arn: "arn:aws:sts::123456789012:assumed-role/ci-bot/ci-run-7".into(),
        user_id: "AROAE2EAGENT00000001:ci-run-7".into(),
        access_key: "ASIAE2EAGENT0000001".into(),
    }
}

/// The agent calls the launcher's IAM Function URL (the platform verified its SigV4).
async fn agent_call(
    launcher: &Mutex<Function>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    call_function_url(launcher, None, method, path, body, Some(&agent())).await
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An SQS batch as the event source mapping hands it to Lambda.
fn sqs_event(queue_arn: &str, messages: &[aws_sdk_sqs::types::Message]) -> Value {
    json!({"Records": messages.iter().map(|m| json!({
        "messageId": m.message_id(),
        "receiptHandle": m.receipt_handle(),
        "body": m.body(),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1763899200000",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1763899200100"
        },
        "messageAttributes": {},
        "md5OfBody": m.md5_of_body(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1"
    })).collect::<Vec<_>>()})
}

async fn receive_all(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut out = Vec::new();
    loop {
        let r = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap_or_else(|e| panic!("receive from {url}: {e:?}"));
        let batch = r.messages.unwrap_or_default();
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

async fn delete_all(sqs: &aws_sdk_sqs::Client, url: &str, msgs: &[aws_sdk_sqs::types::Message]) {
    for m in msgs {
        sqs.delete_message()
            .queue_url(url)
            .receipt_handle(m.receipt_handle().unwrap_or_default())
            .send()
            .await
            .unwrap_or_else(|e| panic!("delete from {url}: {e:?}"));
    }
}

/// One alert as the security team's SNS subscription receives it.
#[derive(Debug, Clone)]
struct Alert {
    subject: String,
    attrs: Value,
    details: Value,
}

impl Alert {
    fn attr(&self, name: &str) -> String {
        self.attrs[name]["Value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

async fn alerts(sqs: &aws_sdk_sqs::Client, queue: &str) -> Vec<Alert> {
    moto::drain_sns_messages(sqs, queue)
        .await
        .into_iter()
        .map(|m| {
            let json = m
                .message
                .split_once("--- details (JSON) ---\n")
                .map(|(_, j)| j)
                .unwrap_or_else(|| panic!("alert without its JSON details: {}", m.message));
            Alert {
                subject: m.subject.clone().unwrap_or_default(),
                attrs: m.envelope["MessageAttributes"].clone(),
                details: serde_json::from_str(json)
                    .unwrap_or_else(|e| panic!("alert details are not JSON ({e}): {json}")),
            }
        })
        .collect()
}

/// A callback delivery as the demo prints it: `what (HTTP 200)`, or what
/// went wrong when the launcher gave no answer.
fn delivery_in_words(what: &str, d: &contro1::CallbackDelivery) -> String {
    match (d.status, &d.error) {
        (Some(code), _) => format!("{what} (HTTP {code})"),
        (None, Some(e)) => format!("{what}: no answer ({e})"),
        (None, None) => format!("{what}: no answer"),
    }
}

fn show(alerts: &[Alert]) {
    for a in alerts {
        println!("   SNS  {}", a.subject);
    }
}

async fn invoke_detector(detector: &Mutex<Function>, event: &Value, what: &str) -> Value {
    let answer = detector
        .lock()
        .await
        .invoke(event)
        .await
        .unwrap_or_else(|e| panic!("detector ({what}): {e}"));
    let failures = answer["batchItemFailures"].as_array().map_or(0, Vec::len);
    assert_eq!(failures, 0, "detector ({what}) failed messages: {answer}");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn governed_and_bypass_microvm_activity_flows_from_agents_to_the_security_team() {
    let launcher_bin = workspace_binary("launcher", LAUNCHER_SRC);
    let detector_bin = workspace_binary("detector", DETECTOR_SRC);
    let moto_url = moto::ensure_running().await;
    let sdk = moto::sdk_config().await;
    let s3 = aws_sdk_s3::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let sns = aws_sdk_sns::Client::new(&sdk);
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let cloudtrail = aws_sdk_cloudtrail::Client::new(&sdk);

    say("setting up: moto resources, the MicroVMs emulator, the Contro1 stand-in");
    let pending_table = testkit::unique_name("launcher-pending");
    let ledger_table = testkit::unique_name("microvm-ledger");
    let dedupe_table = testkit::unique_name("detector-dedupe");
    moto::create_pending_table(&ddb, &pending_table, "executing-index").await;
    for t in [&ledger_table, &dedupe_table] {
        moto::create_pk_table(&ddb, t).await;
    }
    // The key the launcher seals tokens with at rest (envelope encryption).
    let token_key =
        moto::create_kms_key(&aws_sdk_kms::Client::new(&sdk), "launcher tokens at rest").await;
    // CloudTrail's bucket notifies the detector's queue of every new log file.
    let trail_bucket = testkit::unique_name("cloudtrail-logs");
    moto::create_bucket(&s3, &trail_bucket).await;
    let notify_queue = moto::create_queue(&sqs, &testkit::unique_name("trail-notify")).await;
    let notify_arn = moto::queue_arn(&sqs, &notify_queue).await;
    s3.put_bucket_notification_configuration()
        .bucket(&trail_bucket)
        .notification_configuration(
            aws_sdk_s3::types::NotificationConfiguration::builder()
                .queue_configurations(
                    aws_sdk_s3::types::QueueConfiguration::builder()
                        .queue_arn(&notify_arn)
                        .events(aws_sdk_s3::types::Event::S3ObjectCreated)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .expect("bucket notification");
    let test_events = receive_all(&sqs, &notify_queue).await;
    delete_all(&sqs, &notify_queue, &test_events).await;
    // The trail the detector checks: logging, with the MicroVM data-event selector.
    let trail_name = testkit::unique_name("org-trail");
    moto::logging_trail(&cloudtrail, &trail_name, &trail_bucket, true).await;
    // EventBridge: the rule the detector's stack creates for API calls, here delivering to a
    // queue the test reads (EventBridge would invoke the function with the same event).
    let api_queue = moto::create_queue(&sqs, &testkit::unique_name("api-calls")).await;
    let api_queue_arn = moto::queue_arn(&sqs, &api_queue).await;
    let rule = testkit::unique_name("microvm-api-calls");
    events
        .put_rule()
        .name(&rule)
        .event_pattern(
            json!({"source": ["aws.lambda"], "detail-type": ["AWS API Call via CloudTrail"]})
                .to_string(),
        )
        .send()
        .await
        .expect("put rule");
    events
        .put_targets()
        .rule(&rule)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("detector")
                .arn(&api_queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("put targets");
    // The security team's topic, read through a subscribed queue.
    let (topic_arn, alert_queue) =
        moto::sns_topic_with_queue(&sns, &sqs, &testkit::unique_name("security-alerts")).await;

    let emulator = Emulator::start().await;
    emulator.register_identity(
        "AKIDLAUNCHERFUNCTION",
        CallerIdentity::assumed_role(LAUNCHER_ROLE, LAUNCHER_FUNCTION),
    );
    emulator.register_identity(
        "AKIDDETECTORFUNCTION",
        CallerIdentity::assumed_role(DETECTOR_ROLE, DETECTOR_FUNCTION),
    );
    emulator.register_identity("AKIDMALLORY", CallerIdentity::iam_user(ACCOUNT, "mallory"));
    emulator.register_identity(
        "AKIDHANDLAUNCH",
        CallerIdentity::assumed_role(LAUNCHER_ROLE, "alice-laptop"),
    );
    let contro1 = StandIn::start(StandInConfig::new(CONTRO1_KEY, WEBHOOK_SECRET))
        .await
        .expect("start the Contro1 stand-in");

    // The launcher as the stack deploys it, in moto's Lambda control plane (code, version,
    // alias, URL, concurrency), and the integrity baseline the stack records in SSM: what the
    // sweep's integrity check compares against.
    let deployed_launcher = lambda_control::deploy_function(
        &sdk,
        &testkit::unique_name("microvm-launcher"),
        &lambda_control::iam_role(
            &moto_url,
            &testkit::unique_name("launcher"),
            "/microvm-gov/",
        )
        .await,
        b"the launcher as built",
        20,
    )
    .await;
    let baseline_parameter = format!("/{}/integrity-baseline", testkit::unique_name("gov"));
    lambda_control::write_baseline(
        &sdk,
        &baseline_parameter,
        &[("launcher", &deployed_launcher)],
    )
    .await;

    say("starting the launcher and detector binaries under the Lambda Runtime API");
    let policy_dir = std::env::temp_dir().join(testkit::unique_name("e2e-policy"));
    std::fs::create_dir_all(&policy_dir).unwrap();
    let policy = policy_dir.join("launcher.toml");
    std::fs::write(
        &policy,
        format!(
            r#"
[policy]
version = "e2e-1"
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
    // The public Function URL Contro1 posts its callbacks to (on the alias
    // `contro1-webhook`, the only invocations the launcher serves the callback to): its
    // address goes into the launcher's own environment, so bind it first.
    let webhook_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public_url = format!("http://{}", webhook_listener.local_addr().unwrap());
    let moto_endpoint = moto_url.clone();
    let emulator_url = emulator.base_url().to_string();
    let contro1_url = contro1.base_url();
    let launcher = Arc::new(Mutex::new(
        Function::spawn(
            &launcher_bin,
            LAUNCHER_FUNCTION,
            &env(&[
                ("AWS_ACCESS_KEY_ID", "AKIDLAUNCHERFUNCTION"),
                ("AWS_SECRET_ACCESS_KEY", "launcher-secret"),
                ("AWS_SESSION_TOKEN", "launcher-session"),
                ("AWS_ENDPOINT_URL", &moto_endpoint),
                ("MICROVMS_ENDPOINT_URL", &emulator_url),
                ("CONTRO1_BASE_URL", &contro1_url),
                ("CONTRO1_API_KEY", CONTRO1_KEY),
                ("CONTRO1_WEBHOOK_SECRET", WEBHOOK_SECRET),
                ("PENDING_TABLE", &pending_table),
                ("LEDGER_TABLE", &ledger_table),
                ("LAUNCHER_PUBLIC_URL", &public_url),
                ("LAUNCHER_CONFIG", policy.to_str().unwrap()),
                ("TOKEN_KMS_KEY_ID", &token_key),
                ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ]),
        )
        .await,
    ));
    let webhook_url =
        FunctionUrl::serve_alias(webhook_listener, launcher.clone(), "contro1-webhook");
    assert_eq!(webhook_url.url(), public_url);
    let detector = Mutex::new(
        Function::spawn(
            &detector_bin,
            DETECTOR_FUNCTION,
            &env(&[
                ("AWS_ACCESS_KEY_ID", "AKIDDETECTORFUNCTION"),
                ("AWS_SECRET_ACCESS_KEY", "detector-secret"),
                ("AWS_SESSION_TOKEN", "detector-session"),
                ("AWS_ENDPOINT_URL", &moto_endpoint),
                ("MICROVMS_ENDPOINT_URL", &emulator_url),
                ("CONTRO1_BASE_URL", &contro1_url),
                ("CONTRO1_API_KEY", CONTRO1_KEY),
                ("LEDGER_TABLE", &ledger_table),
                ("DEDUPE_TABLE", &dedupe_table),
                ("ALERT_TOPIC_ARN", &topic_arn),
                ("LAUNCHER_ROLE_ARNS", LAUNCHER_ROLE),
                ("LAUNCHER_SESSION_NAMES", LAUNCHER_FUNCTION),
                ("TRAIL_NAMES", &trail_name),
                ("LAUNCHER_FUNCTIONS", &deployed_launcher.arn),
                ("INTEGRITY_BASELINE_PARAMETER", &baseline_parameter),
                ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ]),
        )
        .await,
    );

    // ---------------------------------------------------------------- the agent, governed
    say("1. agent ci-bot: POST /microvms/run-request (within policy: auto-approved)");
    let (status, run) = agent_call(
        &launcher,
        "POST",
        "/microvms/run-request",
        Some(&json!({
            "owner": "platform-team", "reason": "run the nightly evaluation",
            "environment": "dev", "image_arn": IMAGE, "execution_role_arn": SANDBOX_ROLE,
            "duration_seconds": 600, "network_egress": "none", "correlation_id": "eval-2026-11-23"
        })),
    )
    .await;
    println!("   launcher answered {status}: {run}");
    assert_eq!(status, 200, "{run}");
    let governed_vm = run["result"]["microvm_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no microvm_id: {run}"))
        .to_string();
    let run_contro1_id = run["contro1_request_id"]
        .as_str()
        .or_else(|| run["request_id"].as_str())
        .unwrap_or_else(|| panic!("no contro1_request_id: {run}"))
        .to_string();

    say("2. agent ci-bot: POST /microvms/{id}/shell-token-request (needs a human)");
    let (status, shell) = agent_call(
        &launcher,
        "POST",
        &format!("/microvms/{governed_vm}/shell-token-request"),
        Some(&json!({"owner": "platform-team", "reason": "debug a stuck evaluation", "token_ttl_seconds": 300})),
    )
    .await;
    println!("   launcher answered {status}: {shell}");
    assert_eq!(status, 202, "{shell}");
    let shell_id = shell["request_id"].as_str().unwrap().to_string();
    assert!(
        emulator
            .calls()
            .iter()
            .all(|c| c.operation != "CreateMicrovmShellAuthToken"),
        "no token before approval"
    );

    say("2. a reviewer approves in Contro1: the signed callback goes to the public Function URL");
    let delivery = contro1
        .approve(&shell_id, "alice@example.com")
        .await
        .expect("approve in the stand-in");
    println!(
        "   {}",
        delivery_in_words("the launcher took the callback", &delivery)
    );
    assert_eq!(delivery.status, Some(200), "{:?}", delivery.error);
    let again = contro1.redeliver(&shell_id).await.expect("redeliver");
    println!(
        "   {} (already decided: ignored)",
        delivery_in_words("Contro1 redelivered it; the launcher acknowledged", &again)
    );
    assert_eq!(again.status, Some(200), "redelivery is acknowledged");

    say("2. the token waits for its one fetch sealed under a KMS data key, never in plaintext");
    let waiting_token = emulator
        .calls()
        .into_iter()
        .find(|c| c.operation == "CreateMicrovmShellAuthToken")
        .and_then(|c| {
            c.response["authToken"]["X-aws-proxy-auth"]
                .as_str()
                .map(str::to_string)
        })
        .expect("the emulator issued the shell token");
    let item = ddb
        .get_item()
        .table_name(&pending_table)
        .key("pk", AttributeValue::S(format!("req#{shell_id}")))
        .consistent_read(true)
        .send()
        .await
        .expect("read the pending item")
        .item
        .unwrap_or_else(|| panic!("no pending item for {shell_id}"));
    for attr in ["token_sealed", "token_key"] {
        assert!(
            matches!(item.get(attr), Some(AttributeValue::B(b)) if !b.as_ref().is_empty()),
            "{attr} missing: {item:?}"
        );
    }
    let holds_token = |v: &AttributeValue| match v {
        AttributeValue::B(b) => b
            .as_ref()
            .windows(waiting_token.len())
            .any(|w| w == waiting_token.as_bytes()),
        other => format!("{other:?}").contains(&waiting_token),
    };
    assert!(
        !item.values().any(holds_token),
        "the pending item holds the token in plaintext: {item:?}"
    );
    println!("   pending item: token_sealed + token_key (KMS-wrapped), no plaintext");

    say("2. agent ci-bot: GET /requests/{id} (the token, once)");
    let (status, fetched) =
        agent_call(&launcher, "GET", &format!("/requests/{shell_id}"), None).await;
    assert_eq!(status, 200, "{fetched}");
    assert_eq!(fetched["state"], "executed", "{fetched}");
    let issued: Vec<_> = emulator
        .calls()
        .into_iter()
        .filter(|c| c.operation == "CreateMicrovmShellAuthToken")
        .collect();
    assert_eq!(issued.len(), 1, "one shell token despite the redelivery");
    assert_eq!(
        fetched["token"], issued[0].response["authToken"]["X-aws-proxy-auth"],
        "{fetched}"
    );
    println!("   state executed, token returned (not printed)");
    let (_, second) = agent_call(&launcher, "GET", &format!("/requests/{shell_id}"), None).await;
    assert!(second.get("token").is_none(), "{second}");
    assert_eq!(second["token_already_returned"], true, "{second}");
    println!("   second fetch: token_already_returned = true");

    // ---------------------------------------------------------------- the bypasses
    say("3. mallory (IAM user, own keys): RunMicrovm and CreateMicrovmShellAuthToken directly");
    let mallory = emulator.client("AKIDMALLORY");
    let direct_vm = mallory
        .run_microvm()
        .image_identifier(IMAGE)
        .execution_role_arn(SANDBOX_ROLE)
        .send()
        .await
        .expect("direct RunMicrovm")
        .microvm_id;
    mallory
        .create_microvm_shell_auth_token()
        .microvm_identifier(&direct_vm)
        .send()
        .await
        .expect("direct shell token");
    println!("   started {direct_vm} and took a shell token on it");

    say("3. alice assumes the launcher's role by hand and calls RunMicrovm");
    let by_hand_vm = emulator
        .client("AKIDHANDLAUNCH")
        .run_microvm()
        .image_identifier(IMAGE)
        .execution_role_arn(SANDBOX_ROLE)
        .send()
        .await
        .expect("RunMicrovm with the launcher's role")
        .microvm_id;
    println!("   started {by_hand_vm}");

    // ---------------------------------------------------------------- CloudTrail -> detector
    say("4. CloudTrail delivers its log file to S3; S3 notifies the detector's queue");
    let records = emulator.cloudtrail_records();
    let key = Emulator::cloudtrail_object_key(SystemTime::now());
    s3.put_object()
        .bucket(&trail_bucket)
        .key(&key)
        .body(emulator.cloudtrail_log_gz().into())
        .send()
        .await
        .expect("put the CloudTrail log file");
    println!("   s3://{trail_bucket}/{key} ({} records)", records.len());
    let notifications = receive_all(&sqs, &notify_queue).await;
    assert_eq!(notifications.len(), 1, "one S3 notification");
    let batch = sqs_event(&notify_arn, &notifications);

    say("5. detector: the SQS batch; the security team's SNS topic receives");
    let answer = invoke_detector(&detector, &batch, "S3 notification").await;
    println!("   detector answered: {answer}");
    delete_all(&sqs, &notify_queue, &notifications).await;
    let bypass = alerts(&sqs, &alert_queue).await;
    show(&bypass);
    let got: BTreeSet<(String, String, String, String)> = bypass
        .iter()
        .map(|a| {
            (
                a.details["event_name"].as_str().unwrap_or("").to_string(),
                a.details["microvm_id"].as_str().unwrap_or("").to_string(),
                a.details["rule"].as_str().unwrap_or("").to_string(),
                a.details["severity"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, String, String)> = [
        ("RunMicrovm", &direct_vm, "non-launcher-principal", "high"),
        (
            "CreateMicrovmShellAuthToken",
            &direct_vm,
            "non-launcher-principal",
            "critical",
        ),
        (
            "RunMicrovm",
            &by_hand_vm,
            "launcher-session-mismatch",
            "high",
        ),
    ]
    .into_iter()
    .map(|(a, b, c, d)| (a.to_string(), b.clone(), c.to_string(), d.to_string()))
    .collect();
    assert_eq!(got, want, "exactly the bypass calls: {bypass:#?}");
    assert_eq!(bypass.len(), 3, "one alert per bypass call: {bypass:#?}");
    for a in &bypass {
        assert_eq!(a.attr("event"), "aws.microvm.bypass.detected");
        assert_eq!(a.attr("rule"), a.details["rule"].as_str().unwrap());
        assert_ne!(a.details["microvm_id"], governed_vm.as_str());
    }
    let mallory_arn = format!("arn:aws:iam::{ACCOUNT}:user/mallory");
    assert!(
        bypass
            .iter()
            .filter(|a| a.details["rule"] == "non-launcher-principal")
            .all(|a| a.details["principal_arn"] == mallory_arn.as_str()),
        "{bypass:#?}"
    );

    say("5. SQS redelivers the same batch (e.g. the delete was lost): nothing new");
    invoke_detector(&detector, &batch, "redelivered batch").await;
    let dup = alerts(&sqs, &alert_queue).await;
    assert!(
        dup.is_empty(),
        "no duplicate alert after redelivery: {dup:#?}"
    );
    println!("   0 new alerts");

    say("5. the same calls arrive as EventBridge API-call events: nothing new");
    for chunk in records.chunks(10) {
        let mut put = events.put_events();
        for r in chunk {
            put = put.entries(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .source("aws.lambda")
                    .detail_type("AWS API Call via CloudTrail")
                    .detail(r.to_string())
                    .build(),
            );
        }
        let out = put.send().await.expect("put events");
        assert_eq!(out.failed_entry_count, 0);
    }
    let api_events = receive_all(&sqs, &api_queue).await;
    assert_eq!(
        api_events.len(),
        records.len(),
        "the rule routed every call"
    );
    for m in &api_events {
        let ev: Value = serde_json::from_str(m.body().unwrap()).unwrap();
        invoke_detector(&detector, &ev, "EventBridge API call").await;
    }
    let dup = alerts(&sqs, &alert_queue).await;
    assert!(dup.is_empty(), "the second path is de-duplicated: {dup:#?}");
    println!("   {} events, 0 new alerts", api_events.len());

    // ---------------------------------------------------------------- the sweep
    say("6. the scheduled sweep: ListMicrovms against the ledger");
    // The sweep reports a MicroVM only once it is older than UNMANAGED_MIN_AGE_SECONDS
    // (300 s by default: the launcher's ledger write may still be in flight); the story's
    // MicroVMs started an hour ago.
    emulator.age_microvms(3600);
    let scheduled = json!({
        "version": "0", "id": "5e1f2a3b-0000-4000-8000-00000000e2e0",
        "detail-type": "Scheduled Event", "source": "aws.events", "account": ACCOUNT,
        "time": "2026-11-23T12:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/microvm-detector-sweep"],
        "detail": {}
    });
    let answer = invoke_detector(&detector, &scheduled, "sweep").await;
    println!("   detector answered: {answer}");
    let unmanaged = alerts(&sqs, &alert_queue).await;
    show(&unmanaged);
    let got: BTreeSet<String> = unmanaged
        .iter()
        .map(|a| {
            assert_eq!(a.attr("event"), "aws.microvm.unmanaged.detected", "{a:?}");
            assert_eq!(a.details["rule"], "microvm-not-in-ledger");
            a.details["microvm_id"].as_str().unwrap().to_string()
        })
        .collect();
    let want: BTreeSet<String> = [direct_vm.clone(), by_hand_vm.clone()].into();
    assert_eq!(got, want, "exactly the ungoverned MicroVMs: {unmanaged:#?}");
    assert_eq!(unmanaged.len(), 2, "one alert each: {unmanaged:#?}");
    invoke_detector(&detector, &scheduled, "second sweep").await;
    let dup = alerts(&sqs, &alert_queue).await;
    assert!(
        dup.is_empty(),
        "the next sweep the same day repeats nothing: {dup:#?}"
    );

    // ---------------------------------------------------------------- tampering
    say("7. mallory replaces the launcher's code (lambda:UpdateFunctionCode)");
    let new_sha =
        lambda_control::replace_code(&sdk, &deployed_launcher.name, b"mallory's launcher").await;
    println!("   {} now runs code {new_sha}", deployed_launcher.name);
    // moto writes no CloudTrail: this is the management event CloudTrail records for that
    // call, delivered the way CloudTrail delivers it (a log file in the trail's bucket).
    let tamper_event_id = testkit::unique_name("ev-update-code");
    let tamper_record = json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAMALLORY",
            "arn": format!("arn:aws:iam::{ACCOUNT}:user/mallory"), "accountId": ACCOUNT,
            "accessKeyId": "AKIDMALLORY", "userName": "mallory"},
        "eventTime": "2026-11-23T12:05:00Z", "eventSource": "lambda.amazonaws.com",
        "eventName": "UpdateFunctionCode20150331v2", "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.66", "userAgent": "aws-cli/2.22.0",
        "requestParameters": {"functionName": deployed_launcher.name, "publish": false,
            "dryRun": false},
        "responseElements": {"functionName": deployed_launcher.name,
            "functionArn": deployed_launcher.arn, "codeSha256": new_sha},
        "requestID": "3c8f7a52-1d2e-4b6a-9f00-e2e0tamper01", "eventID": tamper_event_id,
        "readOnly": false, "eventType": "AwsApiCall", "managementEvent": true,
        "recipientAccountId": ACCOUNT, "eventCategory": "Management"
    });
    let tamper_key = Emulator::cloudtrail_object_key(SystemTime::now());
    s3.put_object()
        .bucket(&trail_bucket)
        .key(&tamper_key)
        .body(Emulator::log_file_gz(&[tamper_record]).into())
        .send()
        .await
        .expect("put the CloudTrail log file with the tamper record");
    let notifications = receive_all(&sqs, &notify_queue).await;
    assert_eq!(notifications.len(), 1, "one S3 notification");
    invoke_detector(
        &detector,
        &sqs_event(&notify_arn, &notifications),
        "tamper record",
    )
    .await;
    delete_all(&sqs, &notify_queue, &notifications).await;
    let from_trail = alerts(&sqs, &alert_queue).await;
    show(&from_trail);
    assert_eq!(from_trail.len(), 1, "{from_trail:#?}");
    assert_eq!(
        from_trail[0].attr("event"),
        "aws.microvm.governance.tampered"
    );
    assert_eq!(from_trail[0].details["rule"], "launcher-function-changed");
    assert_eq!(from_trail[0].details["event_id"], tamper_event_id.as_str());
    assert_eq!(
        from_trail[0].details["principal_arn"],
        format!("arn:aws:iam::{ACCOUNT}:user/mallory")
    );

    say("7. the next sweep: the integrity check finds the code changed, without CloudTrail");
    invoke_detector(&detector, &scheduled, "sweep after the tamper").await;
    let from_sweep = alerts(&sqs, &alert_queue).await;
    show(&from_sweep);
    assert_eq!(from_sweep.len(), 1, "{from_sweep:#?}");
    assert_eq!(
        from_sweep[0].attr("event"),
        "aws.microvm.governance.tampered"
    );
    assert_eq!(from_sweep[0].details["rule"], "function-integrity-drift");
    assert_eq!(
        from_sweep[0].details["resource"],
        deployed_launcher.arn.as_str()
    );
    assert!(
        from_sweep[0].details.to_string().contains(&new_sha),
        "the drift names the new code: {from_sweep:#?}"
    );

    // ---------------------------------------------------------------- the records
    say("8. the ledger: the governed calls with the AWS request ids CloudTrail records");
    let ledger = ddb
        .scan()
        .table_name(&ledger_table)
        .send()
        .await
        .expect("scan the ledger")
        .items
        .unwrap_or_default();
    let served = emulator.calls();
    let run_call = served
        .iter()
        .find(|c| c.operation == "RunMicrovm" && c.response["microvmId"] == governed_vm.as_str())
        .expect("the governed RunMicrovm");
    let s = |item: &std::collections::HashMap<String, AttributeValue>, k: &str| {
        item.get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let calls: Vec<_> = ledger
        .iter()
        .filter(|i| s(i, "pk").starts_with("call#"))
        .collect();
    for i in &calls {
        println!(
            "   {} {} {} by {} (contro1 {})",
            s(i, "operation"),
            s(i, "microvm_id"),
            s(i, "aws_request_id"),
            s(i, "agent_id"),
            s(i, "contro1_request_id")
        );
    }
    assert_eq!(calls.len(), 2, "the run and the shell token: {ledger:#?}");
    assert!(
        calls
            .iter()
            .any(|i| s(i, "aws_request_id") == run_call.request_id
                && s(i, "contro1_request_id") == run_contro1_id)
    );
    assert!(
        calls
            .iter()
            .any(|i| s(i, "aws_request_id") == issued[0].request_id
                && s(i, "contro1_request_id") == shell_id)
    );
    assert_eq!(
        run_call.request["clientToken"],
        run_contro1_id.as_str(),
        "RunMicrovm's clientToken is the contro1_request_id"
    );

    say("8. Contro1: the audit records of the whole timeline");
    let audit = contro1.audit_records();
    let actions: Vec<String> = audit
        .iter()
        .map(|r| r["action"].as_str().unwrap_or("?").to_string())
        .collect();
    for r in &audit {
        println!(
            "   {:<36} {:<8} {}",
            r["action"].as_str().unwrap_or("?"),
            r["outcome"].as_str().unwrap_or("-"),
            r["summary"].as_str().unwrap_or("")
        );
    }
    // In order: the launcher's records as things happened (the redelivered callback adds
    // none), then one record per finding from the detector.
    assert_eq!(
        actions,
        [
            "aws.microvm.run.requested",
            "aws.microvm.run.created",
            "aws.microvm.shell_token.approved",
            "aws.microvm.shell_token.approved",
            "aws.microvm.bypass.detected",
            "aws.microvm.bypass.detected",
            "aws.microvm.bypass.detected",
            "aws.microvm.unmanaged.detected",
            "aws.microvm.unmanaged.detected",
            "aws.microvm.governance.tampered",
            "aws.microvm.governance.tampered",
        ],
        "{audit:#?}"
    );
    let approvals = contro1.requests();
    assert_eq!(approvals.len(), 1, "one human approval: the shell token");
    assert_eq!(approvals[0].view()["id"], shell_id.as_str());

    // The governed MicroVM never reached the security team, by any path.
    for text in audit
        .iter()
        .filter(|r| {
            r["action"]
                .as_str()
                .is_some_and(|a| a.ends_with(".detected"))
        })
        .map(Value::to_string)
    {
        assert!(!text.contains(&governed_vm), "{text}");
    }
    let logs = launcher.lock().await.logs().join("\n");
    let token = fetched["token"].as_str().unwrap();
    assert!(
        !logs.contains(token),
        "the token never appears in the launcher's logs"
    );
    assert!(!logs.contains(WEBHOOK_SECRET) && !logs.contains(CONTRO1_KEY));
    let detector_logs = detector.lock().await.logs().join("\n");
    assert!(!detector_logs.contains(CONTRO1_KEY));
    for f in [
        &launcher.lock().await.unexpected_requests(),
        &detector.lock().await.unexpected_requests(),
    ] {
        assert!(
            f.is_empty(),
            "Runtime API paths Lambda does not have: {f:?}"
        );
    }
    println!(
        "\n== done: 3 bypass calls, 2 unmanaged MicroVMs and the launcher's replaced code (from CloudTrail and from the sweep) reported once each; the governed MicroVM {governed_vm} was never reported"
    );
    let _ = std::fs::remove_dir_all(&policy_dir);
}
