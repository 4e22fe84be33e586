//! End-to-end S3 object throughput inside the Lambda handler: SQS
//! batches of S3 notifications → GetObject from moto, streamed through
//! `SyncIoBridge` into the core scanner → findings alerted (SNS, Contro1
//! stand-in, DynamoDB dedupe) and launcher calls checked against the ledger.
//!
//! Baseline measured in the same run: the core scanner alone over the same
//! gzip bytes held in memory (no S3, no alerts). Prints objects/s and MB/s
//! (uncompressed JSON) for both and their ratio, for two cases:
//!
//! - realistic: one governed call per 5,000 records (make-corpus.py's
//!   default; with the resampled trail changes, under 0.1% of records are
//!   findings);
//! - burst: one governed call per 4 records (about 10% of records are
//!   findings), on fewer records (`BURST_RECORDS`, default 20000).
//!
//!   export MOTO_ENDPOINT=$(scripts/moto.sh start)
//!   cargo bench -p detector --bench handler_throughput
//!
//! The corpus comes from ../shared/tools/make-corpus.py (python3), written to
//! a temporary directory: `THROUGHPUT_RECORDS` (default 100000) records,
//! `THROUGHPUT_PER_FILE` (default 5000) per object.
//!
//! `BENCH_READS` (objects streamed at once) and `BENCH_COALESCE_MS` (the
//! window findings gather in) override the deployed defaults.
//!
//! The moto server runs on the same two cores as the handler (its Python
//! uses one at a time): its own CPU seconds during each phase are printed
//! when its PID is known (`MOTO_PID`, or `.tmp/moto.pid` as
//! `scripts/moto.sh` writes it).
//!
//! The alert topic has no subscriber unless `BENCH_SUBSCRIBE=1`: moto
//! delivers to a subscribed queue inside the `PublishBatch` call (about 7 ms
//! a message here), which AWS does after the call returns, so a subscriber
//! would time moto's fan-out, not the handler. Every alert is still checked:
//! the handler counts an alert only when `PublishBatch` accepted it; with
//! `BENCH_SUBSCRIBE=1` the subscribed queue is drained and counted too.

mod common;

use common::{NoLog, env_num, process_cpu_secs};
use detector::lambda::config::Config;
use detector::lambda::handler::handle;
use detector::lambda::state::build_with_log;
use detector_core::{Classifier, ScanEvent, ScanOptions, Scanner};
use futures::StreamExt;
use serde_json::{Value, json};
use shared_core::LedgerEntry;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use testkit::moto;

const LAUNCHER_ROLE: &str = "arn:aws:iam::111122223333:role/Contro1MicrovmLauncher";
/// The read-only role the detector assumes in other accounts.
const SWEEP_ROLE: &str = "microvm-gov-sweep";
const LAUNCHER_SESSION: &str = "contro1-microvm-launcher";

/// The moto server's CPU seconds so far (user + system, every thread), when
/// its PID is known.
fn moto_cpu() -> Option<f64> {
    let pid = std::env::var("MOTO_PID").ok().or_else(|| {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tmp/moto.pid");
        std::fs::read_to_string(file).ok()
    })?;
    process_cpu_secs(pid.trim())
}

/// "moto used X CPU s" for a phase, or nothing when moto's PID is unknown.
fn moto_used(before: Option<f64>) -> String {
    match (before, moto_cpu()) {
        (Some(a), Some(b)) => format!("   moto's CPU {:.2} s", b - a),
        _ => String::new(),
    }
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.to_string_lossy().ends_with(".json.gz") {
            out.push(p);
        }
    }
}

#[tokio::main]
async fn main() {
    let records = env_num("THROUGHPUT_RECORDS", 100_000);
    let per_file = env_num("THROUGHPUT_PER_FILE", 5_000);
    run_case("realistic", records, per_file, 5_000).await;
    run_case(
        "burst",
        env_num("BURST_RECORDS", 20_000),
        env_num("BURST_PER_FILE", 1_000),
        4,
    )
    .await;
}

async fn run_case(case: &str, records: u64, per_file: u64, microvm_every: u64) {
    let dir = std::env::temp_dir().join(testkit::unique_name("detector-throughput"));
    let tool = testkit::shared_dir().join("tools/make-corpus.py");
    let status = std::process::Command::new("python3")
        .arg(&tool)
        .arg(&dir)
        .args(["--records", &records.to_string()])
        .args(["--per-file", &per_file.to_string()])
        .args(["--microvm-every", &microvm_every.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run python3 make-corpus.py");
    assert!(status.success(), "make-corpus.py failed");
    let mut paths = Vec::new();
    files(&dir, &mut paths);
    paths.sort();
    let root = dir.clone();
    let objects: Vec<(String, Vec<u8>)> = paths
        .iter()
        .map(|p| {
            (
                p.strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                std::fs::read(p).unwrap(),
            )
        })
        .collect();
    let gz_bytes: usize = objects.iter().map(|(_, b)| b.len()).sum();

    let classifier_cfg = detector_core::ClassifierConfig {
        launcher_roles: vec![shared_core::RoleRef::from_role_arn(LAUNCHER_ROLE).unwrap()],
        launcher_session_names: vec![LAUNCHER_SESSION.to_string()],
        ..detector_core::ClassifierConfig::default()
    };

    // Baseline: the scanner alone over the same bytes, in memory.
    let t = Instant::now();
    let mut managed_requests = Vec::new();
    let mut raw_bytes = 0u64;
    let mut raw_findings = 0u64;
    for (key, body) in &objects {
        let mut scanner = Scanner::new(
            Classifier::new(classifier_cfg.clone()),
            ScanOptions::default(),
        );
        let report = scanner
            .scan_reader(&body[..], key, |ev| match ev {
                ScanEvent::Managed(c) => managed_requests.push((
                    c.if_not_in_ledger.account_id.clone().unwrap_or_default(),
                    c.request_id,
                )),
                // Bypasses and changes to CloudTrail (the corpus resamples
                // real StopLogging / PutEventSelectors records) are findings.
                ScanEvent::Finding(_) => raw_findings += 1,
                _ => {}
            })
            .unwrap();
        raw_bytes += report.bytes;
    }
    let raw = t.elapsed();

    // Moto resources, the ledger holding every launcher call, the stand-in.
    let sdk = moto::sdk_config().await;
    let s3 = moto::s3_client().await;
    let ddb = moto::dynamodb_client().await;
    let sns = moto::sns_client().await;
    let sqs = moto::sqs_client().await;
    let bucket = testkit::unique_name("bench-trail");
    moto::create_bucket(&s3, &bucket).await;
    let ledger_table = testkit::unique_name("bench-ledger");
    let dedupe_table = testkit::unique_name("bench-dedupe");
    moto::create_pk_table(&ddb, &dedupe_table).await;
    // Each launcher call goes to the ledger of the account it was recorded
    // in (the corpus is an organization trail), read through the sweep
    // role as the detector reads it.
    let mut ledgers: HashMap<String, shared_aws::DynamoLedger> = HashMap::new();
    for (account, req) in &managed_requests {
        if !ledgers.contains_key(account) {
            let conf = moto::sdk_config_in(account, SWEEP_ROLE).await;
            let client = aws_sdk_dynamodb::Client::new(&conf);
            moto::create_pk_table(&client, &ledger_table).await;
            ledgers.insert(
                account.clone(),
                shared_aws::DynamoLedger::new(client, ledger_table.clone()),
            );
        }
        ledgers[account]
            .record(&LedgerEntry {
                contro1_request_id: format!("c1-{req}"),
                operation: "RunMicrovm".into(),
                microvm_id: None,
                aws_request_id: Some(req.clone()),
                agent_id: "agent".into(),
                owner: "owner".into(),
                correlation_id: None,
                image_arn: None,
                execution_role_arn: None,
                outcome: "failed".into(),
                time_epoch: 0,
            })
            .await
            .unwrap();
    }
    let subscribe = env_num("BENCH_SUBSCRIBE", 0) == 1;
    let (topic, queue) = if subscribe {
        let (t, q) =
            moto::sns_topic_with_queue(&sns, &sqs, &testkit::unique_name("bench-alerts")).await;
        (t, Some(q))
    } else {
        let t = sns
            .create_topic()
            .name(testkit::unique_name("bench-alerts"))
            .send()
            .await
            .unwrap();
        (t.topic_arn().unwrap().to_string(), None)
    };
    for (key, body) in &objects {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(body.clone().into())
            .send()
            .await
            .unwrap();
    }
    let contro1 = contro1::StandIn::start(contro1::StandInConfig::new("bench-key", "whsec"))
        .await
        .unwrap();
    let env: HashMap<String, String> = [
        ("LEDGER_TABLE", ledger_table),
        ("DEDUPE_TABLE", dedupe_table),
        ("ALERT_TOPIC_ARN", topic),
        ("LAUNCHER_ROLE_ARNS", LAUNCHER_ROLE.to_string()),
        ("LAUNCHER_SESSION_NAMES", LAUNCHER_SESSION.to_string()),
        ("SWEEP_ROLE_NAME", SWEEP_ROLE.to_string()),
        ("CONTRO1_BASE_URL", contro1.base_url()),
        ("CONTRO1_API_KEY", "bench-key".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let cfg = Config::from_parts(&env).unwrap();
    let mut state = build_with_log(&cfg, &sdk, Arc::new(NoLog)).await.unwrap();
    // The deployed defaults unless overridden, to see what they cost.
    state.read_concurrency = env_num("BENCH_READS", state.read_concurrency as u64) as usize;
    state.coalesce_window = std::time::Duration::from_millis(env_num(
        "BENCH_COALESCE_MS",
        state.coalesce_window.as_millis() as u64,
    ));

    // What moto alone takes to serve the objects: every GetObject, the
    // same number at once as the handler reads, bodies read to the end.
    let moto_before = moto_cpu();
    let t = Instant::now();
    let fetched: usize = futures::stream::iter(&objects)
        .map(|(key, _)| {
            let s3 = &s3;
            let bucket = &bucket;
            async move {
                let out = s3
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .unwrap();
                out.body.collect().await.unwrap().into_bytes().len()
            }
        })
        .buffer_unordered(state.read_concurrency)
        .fold(0, |n, len| async move { n + len })
        .await;
    let transport = t.elapsed();
    let moto_transport = moto_used(moto_before);
    assert_eq!(fetched, gz_bytes);

    // The handler: SQS batches of 10 S3 notifications.
    let moto_before = moto_cpu();
    let t = Instant::now();
    let mut handler_bytes = 0u64;
    let mut findings = 0u64;
    let mut alerted = 0u64;
    for (i, chunk) in objects.chunks(10).enumerate() {
        let records: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(j, (key, _))| {
                let body = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}]});
                json!({"messageId": format!("m-{i}-{j}"), "body": body.to_string(), "eventSource": "aws:sqs"})
            })
            .collect();
        let answer = handle(&state, &json!({"Records": records})).await.unwrap();
        assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
        handler_bytes += answer["counters"]["bytes_read"].as_u64().unwrap();
        findings += answer["counters"]["findings"].as_u64().unwrap();
        alerted += answer["counters"]["alerted"].as_u64().unwrap();
    }
    let handler = t.elapsed();
    let moto_handler = moto_used(moto_before);
    assert_eq!(handler_bytes, raw_bytes);
    assert_eq!(findings, raw_findings);
    assert_eq!(alerted, raw_findings, "every finding alerted once");
    let alerts = match &queue {
        Some(q) => {
            let n = moto::drain_queue(&sqs, q).await.len();
            assert_eq!(
                n as u64, alerted,
                "every accepted alert reached the subscriber"
            );
            format!("{n} SNS messages received by a subscribed queue")
        }
        None => format!("{alerted} accepted by SNS PublishBatch"),
    };
    let _ = std::fs::remove_dir_all(&dir);

    let mb = raw_bytes as f64 / 1e6;
    let n = objects.len() as f64;
    println!(
        "== {case}: {} objects, {records} records, {:.1} MB uncompressed ({:.1} MB gzip), {} findings alerted ({:.2}% of records; {alerts}), {} launcher calls checked against the ledger",
        objects.len(),
        mb,
        gz_bytes as f64 / 1e6,
        findings,
        findings as f64 * 100.0 / records as f64,
        managed_requests.len()
    );
    println!(
        "  baseline  scanner over in-memory bytes   {:>7.2} s  {:>7.1} objects/s  {:>7.1} MB/s",
        raw.as_secs_f64(),
        n / raw.as_secs_f64(),
        mb / raw.as_secs_f64()
    );
    println!(
        "  moto      GetObject alone, bodies read   {:>7.2} s  {:>7.1} objects/s  {:>7.1} MB/s (gzip {:.1} MB/s){moto_transport}",
        transport.as_secs_f64(),
        n / transport.as_secs_f64(),
        mb / transport.as_secs_f64(),
        gz_bytes as f64 / 1e6 / transport.as_secs_f64()
    );
    println!(
        "  handler   SQS → S3 (moto) → scan → alert {:>7.2} s  {:>7.1} objects/s  {:>7.1} MB/s   ratio to baseline {:.2}{moto_handler}",
        handler.as_secs_f64(),
        n / handler.as_secs_f64(),
        mb / handler.as_secs_f64(),
        (mb / handler.as_secs_f64()) / (mb / raw.as_secs_f64())
    );
}
