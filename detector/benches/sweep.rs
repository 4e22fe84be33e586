//! Sweep benchmark (issue 4): 10,000 MicroVMs at the emulator with 20 ms of
//! latency per call, 9,990 of them in the ledger (moto DynamoDB), 10 not.
//! Target: the sweep finishes in ≤ 10 s.
//!
//! Prints the sweep time at the configured concurrency and at concurrency 1,
//! and, as the baseline measured in the same run, the time to list every
//! page alone (the floor: pagination is sequential, 200 pages × 20 ms).
//!
//!   export MOTO_ENDPOINT=$(scripts/moto.sh start)
//!   cargo bench -p detector --bench sweep
//!
//! `SWEEP_BENCH_VMS` and `SWEEP_BENCH_LATENCY_MS` change the size and latency.

mod common;

use common::{NoAudit, NoLog, NoTrails, Off, env_num, vm_writes};
use detector::lambda::alert_batch::AlertBatch;
use detector::lambda::alerter::Alerter;
use detector::lambda::aws::{DynamoDedupe, SdkMicrovms, SdkTargets, SnsChannel, TargetsConfig};
use detector::lambda::counters::Counters;
use detector::lambda::ports::{AlertChannel, MicrovmsApi, SystemClock, TargetPorts};
use detector::lambda::sweep::{SweepConfig, SweepPorts, sweep};
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::emulator::{Emulator, MicrovmState};
use testkit::moto;

const IMAGE: &str = "arn:aws:lambda:us-east-1:123456789012:microvm-image:agent-sandbox";

#[tokio::main]
async fn main() {
    let n = env_num("SWEEP_BENCH_VMS", 10_000) as usize;
    let latency = Duration::from_millis(env_num("SWEEP_BENCH_LATENCY_MS", 20));
    let unmanaged_n = 10.min(n);

    let sdk = moto::sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let sns = aws_sdk_sns::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let ledger_table = testkit::unique_name("bench-ledger");
    let dedupe_table = testkit::unique_name("bench-dedupe");
    moto::create_pk_table(&ddb, &ledger_table).await;
    moto::create_pk_table(&ddb, &dedupe_table).await;
    let (topic, queue) =
        moto::sns_topic_with_queue(&sns, &sqs, &testkit::unique_name("bench")).await;

    let emulator = Emulator::start().await;
    let managed = emulator.seed_microvms(n - unmanaged_n, IMAGE, MicrovmState::Running);
    emulator.seed_microvms(unmanaged_n, IMAGE, MicrovmState::Running);
    // Older than the detector's minimum age, so the unmanaged ones count.
    emulator.age_microvms(3600);
    // Ledger items for the managed ones, 25 per BatchWriteItem (setup, not timed).
    let t = Instant::now();
    let writes: Vec<_> = managed
        .chunks(25)
        .map(|chunk| {
            let reqs = vm_writes(chunk);
            let ddb = ddb.clone();
            let table = ledger_table.clone();
            async move {
                ddb.batch_write_item()
                    .request_items(table, reqs)
                    .send()
                    .await
                    .expect("batch write ledger");
            }
        })
        .collect();
    futures::stream::iter(writes)
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    eprintln!(
        "setup: {} MicroVMs seeded, {} ledger items written in {:.1} s",
        n,
        managed.len(),
        t.elapsed().as_secs_f64()
    );

    emulator.set_latency(latency);
    let microvms = SdkMicrovms::new(emulator.client("AKIABENCH"));
    let ledger = shared_aws::DynamoLedger::new(ddb.clone(), ledger_table);
    // The detector's own account and region: the one target.
    let targets = SdkTargets::new(
        &sdk,
        Some(moto::ACCOUNT_ID.into()),
        TargetPorts {
            microvms: Arc::new(SdkMicrovms::new(emulator.client("AKIABENCH"))),
            ledger: Arc::new(ledger.clone()),
        },
        TargetsConfig::default(),
    );

    // Baseline: listing every page, nothing else.
    let t = Instant::now();
    let mut token: Option<String> = None;
    let mut pages = 0;
    let mut listed = 0;
    loop {
        let page = microvms.list_page(token.as_deref(), 50).await.unwrap();
        pages += 1;
        listed += page.items.len();
        match page.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let list_only = t.elapsed();
    assert_eq!(listed, n);

    let mut results = Vec::new();
    for concurrency in [1usize, 8] {
        // A fresh dedupe table per run, so each run alerts the same 10.
        let dedupe = testkit::unique_name("bench-dedupe");
        moto::create_pk_table(&ddb, &dedupe).await;
        let channels: Vec<Arc<dyn AlertChannel>> =
            vec![Arc::new(SnsChannel::new(sns.clone(), topic.clone()))];
        let alerter = Alerter::new(
            Arc::new(DynamoDedupe::new(ddb.clone(), dedupe)),
            channels,
            Arc::new(NoLog),
            Arc::new(SystemClock),
        );
        let batch = AlertBatch::new(&alerter);
        let ports = SweepPorts {
            targets: &targets,
            trails: &NoTrails,
            auditor: &NoAudit,
            functions: &Off,
            heartbeat: &Off,
            queue: None,
        };
        let cfg = SweepConfig {
            concurrency,
            check_trails: false,
            account_id: Some(moto::ACCOUNT_ID.into()),
            region: Some(moto::REGION.into()),
            ..Default::default()
        };
        let mut counters = Counters::default();
        let t = Instant::now();
        let report = sweep(&ports, &cfg, &batch, &mut counters).await.unwrap();
        let took = t.elapsed();
        assert_eq!(report.unmanaged.len(), unmanaged_n);
        assert_eq!(report.pages, pages);
        results.push((concurrency, took));
    }
    let alerts = moto::drain_queue(&sqs, &queue).await.len();
    let _ = dedupe_table;

    println!(
        "sweep benchmark: {n} MicroVMs ({unmanaged_n} unmanaged), {} ms latency per MicroVMs call, {pages} pages",
        latency.as_millis()
    );
    println!(
        "  baseline  list every page only     {:>7.2} s",
        list_only.as_secs_f64()
    );
    for (c, took) in &results {
        println!(
            "  sweep     concurrency {c:<2} (+ledger, alerts) {:>7.2} s   ratio to baseline {:.2}   {}",
            took.as_secs_f64(),
            took.as_secs_f64() / list_only.as_secs_f64(),
            if took.as_secs_f64() <= 10.0 {
                "(target <= 10 s: met)"
            } else {
                "(target <= 10 s: MISSED)"
            }
        );
    }
    println!(
        "  alerts published: {alerts} (expected {})",
        2 * unmanaged_n
    );
}
