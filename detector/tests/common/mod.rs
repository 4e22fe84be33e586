//! What the detector Lambda's handler tests share: one test's resources in
//! the shared moto (S3, SQS, SNS, DynamoDB, CloudTrail), the MicroVMs
//! emulator, the Contro1 stand-in and the log lines the handler writes, plus
//! the CloudTrail records and trigger events the tests feed it.
//!
//! Each test file takes it with `mod common;` and uses only some of it.
#![allow(dead_code)]

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use contro1::{StandIn, StandInConfig, StandInHandle};
use detector::lambda::config::Config;
use detector::lambda::handler::State;
use detector::lambda::ports::LogSink;
use detector::lambda::state::build_with_log;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use shared_core::LedgerEntry;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use testkit::emulator::Emulator;
use testkit::moto;

pub const ACCOUNT: &str = "123456789012";
pub const LAUNCHER_ROLE: &str = "arn:aws:iam::123456789012:role/svc/microvm-launcher";
pub const IMAGE: &str = "arn:aws:lambda:us-east-1:123456789012:microvm-image:agent-sandbox";
const CONTRO1_KEY: &str = "detector-test-key";
const CONTRO1_SECRET: &str = "whsec-test";

/// The JSON log lines the handler writes.
#[derive(Default)]
pub struct Lines(Mutex<Vec<Value>>);

impl LogSink for Lines {
    fn line(&self, value: &Value) {
        self.0.lock().unwrap().push(value.clone());
    }
}

impl Lines {
    pub fn all(&self) -> Vec<Value> {
        self.0.lock().unwrap().clone()
    }
    pub fn with(&self, log: &str) -> Vec<Value> {
        self.all().into_iter().filter(|l| l["log"] == log).collect()
    }
}

/// Every resource one test needs, uniquely named in the shared moto. The
/// clients go straight to moto (setup and inspection never go through a
/// fault proxy); the handler's own clients come from the SDK configuration
/// given to [`Rig::state_with`].
pub struct Rig {
    pub s3: aws_sdk_s3::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub cloudtrail: aws_sdk_cloudtrail::Client,
    pub bucket: String,
    pub dedupe_table: String,
    pub ledger: shared_aws::DynamoLedger,
    pub alert_queue: String,
    pub trail_name: String,
    pub emulator: Emulator,
    pub contro1: StandInHandle,
    pub lines: Arc<Lines>,
    /// The handler's environment; tests may change it before building the state.
    pub env: HashMap<String, String>,
}

impl Rig {
    pub async fn new() -> Rig {
        let sdk = moto::sdk_config().await;
        let s3 = moto::s3_client().await;
        let ddb = moto::dynamodb_client().await;
        let sqs = moto::sqs_client().await;
        let sns = moto::sns_client().await;
        let bucket = testkit::unique_name("detector-logs");
        moto::create_bucket(&s3, &bucket).await;
        let dedupe_table = testkit::unique_name("dedupe");
        let ledger_table = testkit::unique_name("ledger");
        moto::create_pk_table(&ddb, &dedupe_table).await;
        moto::create_pk_table(&ddb, &ledger_table).await;
        let (topic_arn, alert_queue) =
            moto::sns_topic_with_queue(&sns, &sqs, &testkit::unique_name("alerts")).await;
        let emulator = Emulator::start().await;
        let contro1 = StandIn::start(StandInConfig::new(CONTRO1_KEY, CONTRO1_SECRET))
            .await
            .expect("start the Contro1 stand-in");
        let trail_name = testkit::unique_name("trail");
        let env: HashMap<String, String> = [
            ("LEDGER_TABLE", ledger_table.clone()),
            ("DEDUPE_TABLE", dedupe_table.clone()),
            ("ALERT_TOPIC_ARN", topic_arn),
            ("LAUNCHER_ROLE_ARNS", LAUNCHER_ROLE.to_string()),
            ("CONTRO1_BASE_URL", contro1.base_url()),
            ("CONTRO1_API_KEY", CONTRO1_KEY.to_string()),
            ("MICROVMS_ENDPOINT_URL", emulator.base_url().to_string()),
            ("TRAIL_NAMES", trail_name.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Rig {
            s3,
            cloudtrail: aws_sdk_cloudtrail::Client::new(&sdk),
            ddb: ddb.clone(),
            sqs,
            bucket,
            dedupe_table,
            ledger: shared_aws::DynamoLedger::new(ddb, ledger_table),
            alert_queue,
            trail_name,
            emulator,
            contro1,
            lines: Arc::default(),
            env,
        }
    }

    /// The handler's state from [`Rig::env`], its AWS clients on moto.
    pub async fn state(&self) -> State {
        self.state_with(&moto::sdk_config().await).await
    }

    /// The handler's state from [`Rig::env`], its AWS clients on `sdk`.
    pub async fn state_with(&self, sdk: &SdkConfig) -> State {
        let cfg = Config::from_parts(&self.env).expect("test configuration");
        build_with_log(&cfg, sdk, self.lines.clone())
            .await
            .expect("build state")
    }

    pub async fn put(&self, key: &str, body: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .expect("put object");
    }

    pub async fn alerts(&self) -> Vec<moto::SnsMessage> {
        moto::drain_sns_messages(&self.sqs, &self.alert_queue).await
    }

    pub async fn dedupe_item(&self, key: &str) -> Option<HashMap<String, AttributeValue>> {
        self.ddb
            .get_item()
            .table_name(&self.dedupe_table)
            .key("pk", AttributeValue::S(key.to_string()))
            .consistent_read(true)
            .send()
            .await
            .expect("get dedupe item")
            .item
    }

    /// A trail in moto, logging, with or without the MicroVM data selector
    /// (with it, the sweep's trail check is healthy and raises nothing).
    pub async fn trail(&self, microvm_data_events: bool) {
        moto::logging_trail(
            &self.cloudtrail,
            &self.trail_name,
            &self.bucket,
            microvm_data_events,
        )
        .await;
    }

    /// Record a call the launcher made ([`ledger_entry`]) in this rig's ledger.
    pub async fn ledger_call(
        &self,
        contro1_request_id: &str,
        operation: &str,
        microvm_id: &str,
        aws_request_id: &str,
    ) {
        let mut e = ledger_entry(aws_request_id, microvm_id);
        e.contro1_request_id = contro1_request_id.to_string();
        e.operation = operation.to_string();
        self.ledger.record(&e).await.unwrap();
    }

    /// The ledger entry of a MicroVM the launcher started: `id` is managed.
    pub async fn ledger_vm(&self, id: &str) {
        self.ledger_call(&format!("c1-{id}"), "RunMicrovm", id, &format!("req-{id}"))
            .await;
    }
}

pub fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/notifications")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The RunMicrovm record of the EventBridge fixture (IAM user alice: a
/// bypass), with the given eventID.
pub fn bypass_record(event_id: &str) -> Value {
    let env: Value =
        serde_json::from_str(&fixture("eventbridge-api-call-run-microvm.json")).unwrap();
    let mut r = env["detail"].clone();
    r["eventID"] = json!(event_id);
    r["recipientAccountId"] = json!(ACCOUNT);
    r
}

pub fn gz_log(records: &[Value]) -> Vec<u8> {
    gz_bytes(json!({"Records": records}).to_string().as_bytes())
}

pub fn gz_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A fresh CloudTrail log file key, in minute `n` of 14:00.
pub fn log_key(n: u32) -> String {
    format!(
        "AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2025/10/02/{ACCOUNT}_CloudTrail_us-east-1_20251002T14{n:02}Z_{}.json.gz",
        &uuid_like()
    )
}

pub fn uuid_like() -> String {
    testkit::unique_name("k").replace('-', "")
}

pub fn s3_event(bucket: &str, encoded_key: &str) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2025-10-02T14:05:31.512Z", "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": encoded_key, "size": 1234}}
    }]})
}

pub fn sqs_event(bodies: &[(&str, String)]) -> Value {
    json!({"Records": bodies.iter().map(|(id, body)| json!({
        "messageId": id, "receiptHandle": "rh", "body": body,
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "awsRegion": "us-east-1"
    })).collect::<Vec<_>>()})
}

pub fn failed_ids(answer: &Value) -> Vec<String> {
    let mut ids: Vec<String> = answer["batchItemFailures"]
        .as_array()
        .expect("batchItemFailures")
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

pub fn scheduled() -> Value {
    serde_json::from_str(&fixture("eventbridge-schedule.json")).unwrap()
}

/// The ledger entry of a RunMicrovm the launcher made for agent-1 of team-a
/// (succeeded, on [`IMAGE`]) with AWS request id `request_id`.
pub fn ledger_entry(request_id: &str, microvm_id: &str) -> LedgerEntry {
    LedgerEntry {
        contro1_request_id: format!("c1-{request_id}"),
        operation: "RunMicrovm".into(),
        microvm_id: Some(microvm_id.to_string()),
        aws_request_id: Some(request_id.to_string()),
        agent_id: "agent-1".into(),
        owner: "team-a".into(),
        correlation_id: None,
        image_arn: Some(IMAGE.into()),
        execution_role_arn: None,
        outcome: "succeeded".into(),
        time_epoch: 1_759_413_791,
    }
}
