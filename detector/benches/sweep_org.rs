//! Organization sweep benchmark: 200 accounts × 4 regions × 50 MicroVMs,
//! 20 ms of latency on every MicroVMs call, each account's ledger in its own
//! moto account (reached by assuming the sweep role there, as in AWS).
//! Target: the 800 account-regions in ≤ 60 s in one invocation.
//!
//! Measured in the same run:
//! - baseline: one `ListMicrovms` page per target at the same concurrency,
//!   nothing else (the floor set by the injected latency);
//! - one invocation: `sweep` over every target, 16 at once (the default
//!   `SWEEP_TARGET_CONCURRENCY`) and 64 at once;
//! - fanned out: the schedule queues one SQS message per target
//!   (`SWEEP_QUEUE_URL`), then the messages are swept as Lambda's SQS poller
//!   would run them (batches of 10, 20 invocations at once, in this process).
//!
//! Each prints wall time, MicroVMs calls per second and the projected time
//! for 1,000 accounts × 17 regions (linear in targets at the measured rate).
//!
//!   export MOTO_ENDPOINT=$(scripts/moto.sh start)
//!   cargo bench -p detector --bench sweep_org
//!
//! `ORG_BENCH_ACCOUNTS`, `ORG_BENCH_REGIONS`, `ORG_BENCH_VMS` and
//! `ORG_BENCH_LATENCY_MS` change the shape.

mod common;

use common::{NoAudit, NoLog, NoTrails, Off, env_num, vm_writes};
use detector::lambda::alert_batch::AlertBatch;
use detector::lambda::alerter::Alerter;
use detector::lambda::aws::{
    DynamoDedupe, SdkMicrovms, SdkTargets, SnsChannel, SqsSweepQueue, TargetsConfig,
};
use detector::lambda::counters::Counters;
use detector::lambda::ports::{AlertChannel, SystemClock, Target, TargetPorts};
use detector::lambda::sweep::{
    Accounts, Regions, SweepConfig, SweepPorts, sweep, sweep_queued_target,
};
use detector_core::notification::{Trigger, decode_message_body};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::emulator::{Emulator, MicrovmState};
use testkit::moto;

const IMAGE: &str = "arn:aws:lambda:us-east-1:123456789012:microvm-image:agent-sandbox";
const REGION_NAMES: [&str; 17] = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ca-central-1",
    "sa-east-1",
];
const PROJECT_TARGETS: f64 = 1000.0 * 17.0;

/// Write `ids` as the ledger's MicroVM items, 25 per BatchWriteItem.
async fn write_ledger(ddb: &aws_sdk_dynamodb::Client, table: &str, ids: &[String]) {
    for chunk in ids.chunks(25) {
        let reqs = vm_writes(chunk);
        ddb.batch_write_item()
            .request_items(table, reqs)
            .send()
            .await
            .expect("batch write ledger");
    }
}

struct Run {
    label: String,
    took: Duration,
    calls: usize,
    targets: usize,
    floor: Duration,
}

impl Run {
    fn print(&self, target_s: Option<f64>) {
        let s = self.took.as_secs_f64();
        let per_target = s / self.targets as f64;
        let verdict = target_s.map_or(String::new(), |t| {
            format!(
                "   (target: these {} targets in <= {t:.0} s: {})",
                self.targets,
                if s <= t { "met" } else { "MISSED" }
            )
        });
        println!(
            "  {:<44} {:>7.2} s  {:>6.0} calls/s  ratio to floor {:>5.2}  1000x17 projected {:>7.0} s{verdict}",
            self.label,
            s,
            self.calls as f64 / s,
            s / self.floor.as_secs_f64(),
            per_target * PROJECT_TARGETS,
        );
    }
}

#[tokio::main]
async fn main() {
    let n_accounts = env_num("ORG_BENCH_ACCOUNTS", 200) as usize;
    let n_regions = (env_num("ORG_BENCH_REGIONS", 4) as usize).min(REGION_NAMES.len());
    let per_target = env_num("ORG_BENCH_VMS", 50) as usize;
    let latency = Duration::from_millis(env_num("ORG_BENCH_LATENCY_MS", 20));
    let regions: Vec<String> = REGION_NAMES[..n_regions]
        .iter()
        .map(|r| r.to_string())
        .collect();
    let accounts: Vec<String> = (0..n_accounts)
        .map(|i| format!("{:012}", 100_000_000_000u64 + i as u64))
        .collect();
    let sdk = moto::sdk_config().await;
    let ledger_table = testkit::unique_name("org-ledger");

    // One emulator per region; every account sees that region's fleet (the
    // emulator cannot tell accounts apart), and every account's ledger knows
    // all of them but one: account 0's first region has one unmanaged VM.
    let t = Instant::now();
    let mut emulators = Vec::new();
    let mut all_ids = Vec::new();
    let mut stray = None;
    for region in &regions {
        let em = Emulator::start().await;
        let ids = em.seed_microvms(per_target, IMAGE, MicrovmState::Running);
        em.age_microvms(3600);
        if stray.is_none() {
            stray = ids.first().cloned();
        }
        all_ids.extend(ids);
        emulators.push((region.clone(), em));
    }
    let stray = stray.expect("at least one MicroVM");
    let setups: Vec<_> = accounts
        .iter()
        .enumerate()
        .map(|(i, account)| {
            let table = ledger_table.clone();
            let ids: Vec<String> = all_ids
                .iter()
                .filter(|id| i != 0 || **id != stray)
                .cloned()
                .collect();
            async move {
                let conf = moto::sdk_config_in(account, "setup").await;
                let ddb = aws_sdk_dynamodb::Client::new(&conf);
                moto::create_pk_table(&ddb, &table).await;
                write_ledger(&ddb, &table, &ids).await;
            }
        })
        .collect();
    futures::stream::iter(setups)
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let mut endpoints = HashMap::new();
    for a in &accounts {
        for (r, em) in &emulators {
            endpoints.insert(format!("{a}/{r}"), em.base_url().to_string());
        }
    }
    eprintln!(
        "setup: {n_accounts} accounts x {n_regions} regions x {per_target} MicroVMs, {} ledger items in {:.1} s",
        n_accounts * all_ids.len(),
        t.elapsed().as_secs_f64()
    );
    for (_, em) in &emulators {
        em.set_latency(latency);
    }
    let calls = || -> usize { emulators.iter().map(|(_, em)| em.calls().len()).sum() };

    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let sns = aws_sdk_sns::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (topic, alert_queue) =
        moto::sns_topic_with_queue(&sns, &sqs, &testkit::unique_name("org-bench")).await;
    let own = TargetPorts {
        microvms: Arc::new(SdkMicrovms::new(emulators[0].1.client("AKIAOWN"))),
        ledger: Arc::new(shared_aws::DynamoLedger::new(
            ddb.clone(),
            ledger_table.clone(),
        )),
    };
    // The detector's own account is not among the swept ones: every target
    // is reached through AssumeRole.
    let targets = || {
        SdkTargets::new(
            &sdk,
            Some(moto::ACCOUNT_ID.to_string()),
            own.clone(),
            TargetsConfig {
                role_name: Some("microvm-sweep".into()),
                ledger_table: ledger_table.clone(),
                ledger_region: Some(moto::REGION.into()),
                microvms_endpoints: endpoints.clone(),
                microvms_endpoint: None,
            },
        )
    };
    let alerter = || async {
        let dedupe = testkit::unique_name("org-dedupe");
        moto::create_pk_table(&ddb, &dedupe).await;
        let channels: Vec<Arc<dyn AlertChannel>> =
            vec![Arc::new(SnsChannel::new(sns.clone(), topic.clone()))];
        Alerter::new(
            Arc::new(DynamoDedupe::new(ddb.clone(), dedupe)),
            channels,
            Arc::new(NoLog),
            Arc::new(SystemClock),
        )
    };
    let cfg = |target_concurrency: usize| SweepConfig {
        check_trails: false,
        accounts: Accounts::List(accounts.clone()),
        regions: Regions::List(regions.clone()),
        target_concurrency,
        account_id: Some(moto::ACCOUNT_ID.into()),
        region: Some(moto::REGION.into()),
        ..Default::default()
    };
    let n_targets = n_accounts * n_regions;
    let pages_per_target = per_target.div_ceil(50).max(1);
    let mut runs = Vec::new();

    // Baseline: one ListMicrovms page per target, nothing else, at each
    // concurrency measured below.
    let all_targets: Vec<Target> = accounts
        .iter()
        .flat_map(|a| {
            regions.iter().map(|r| Target {
                account: a.clone(),
                region: r.clone(),
            })
        })
        .collect();
    let mut floors = HashMap::new();
    for conc in [16usize, 64, 20] {
        let tg = targets();
        let t = Instant::now();
        futures::stream::iter(all_targets.iter())
            .map(|target| {
                let tg = &tg;
                async move {
                    use detector::lambda::ports::TargetsApi;
                    let p = tg.ports(target).await.expect("target ports");
                    p.microvms.list_page(None, 50).await.expect("list");
                }
            })
            .buffer_unordered(conc)
            .collect::<Vec<_>>()
            .await;
        floors.insert(conc, t.elapsed());
    }

    // One invocation.
    for conc in [16usize, 64] {
        let tg = targets();
        let al = alerter().await;
        let batch = AlertBatch::new(&al);
        let ports = SweepPorts {
            targets: &tg,
            trails: &NoTrails,
            auditor: &NoAudit,
            functions: &Off,
            heartbeat: &Off,
            queue: None,
        };
        let before = calls();
        let mut c = Counters::default();
        let t = Instant::now();
        let report = sweep(&ports, &cfg(conc), &batch, &mut c).await.unwrap();
        let took = t.elapsed();
        assert_eq!(report.targets, n_targets);
        assert_eq!(report.pages, n_targets * pages_per_target);
        assert_eq!(report.unmanaged.len(), 1, "exactly the one stray VM");
        assert_eq!(report.unmanaged[0].microvm_id, stray);
        runs.push(Run {
            label: format!("one invocation, {conc} targets at once"),
            took,
            calls: calls() - before,
            targets: n_targets,
            floor: floors[&conc],
        });
    }

    // Fanned out: queue, then 20 concurrent invocations of 10 messages each.
    let sweep_queue_url = moto::create_queue(&sqs, &testkit::unique_name("org-sweep")).await;
    let queue = SqsSweepQueue::new(sqs.clone(), sweep_queue_url.clone());
    let tg = targets();
    let al = alerter().await;
    let ports = SweepPorts {
        targets: &tg,
        trails: &NoTrails,
        auditor: &NoAudit,
        functions: &Off,
        heartbeat: &Off,
        queue: Some(&queue),
    };
    let before = calls();
    let t = Instant::now();
    let batch = AlertBatch::new(&al);
    let mut c = Counters::default();
    sweep(&ports, &cfg(16), &batch, &mut c).await.unwrap();
    let enqueue_took = t.elapsed();
    assert_eq!(c.sweep_targets_enqueued as usize, n_targets);
    let bodies = moto::drain_queue(&sqs, &sweep_queue_url).await;
    assert_eq!(bodies.len(), n_targets);
    let messages: Vec<Target> = bodies
        .iter()
        .map(|b| match decode_message_body(b).expect("sweep message") {
            Trigger::SweepTarget { account, region } => Target { account, region },
            other => panic!("unexpected message {other:?}"),
        })
        .collect();
    let invocations: Vec<Vec<Target>> = messages.chunks(10).map(<[Target]>::to_vec).collect();
    let cfg16 = cfg(16);
    let t_work = Instant::now();
    let unmanaged: usize = futures::stream::iter(invocations)
        .map(|batch_targets| {
            let (ports, cfg, al) = (&ports, &cfg16, &al);
            async move {
                let batch = AlertBatch::new(al);
                let mut found = 0;
                for tgt in &batch_targets {
                    let mut c = Counters::default();
                    let r = sweep_queued_target(ports, cfg, tgt, &batch, &mut c)
                        .await
                        .expect("queued target");
                    found += r.unmanaged.len();
                }
                found
            }
        })
        .buffer_unordered(20)
        .collect::<Vec<usize>>()
        .await
        .into_iter()
        .sum();
    let work_took = t_work.elapsed();
    assert_eq!(unmanaged, 1);
    runs.push(Run {
        label: "fanned out, 20 invocations of 10 messages".into(),
        took: enqueue_took + work_took,
        calls: calls() - before,
        targets: n_targets,
        floor: floors[&20],
    });
    let alerts = moto::drain_queue(&sqs, &alert_queue).await.len();

    println!(
        "organization sweep benchmark: {n_accounts} accounts x {n_regions} regions = {n_targets} targets, {per_target} MicroVMs each, {} ms per MicroVMs call",
        latency.as_millis()
    );
    for conc in [16usize, 64, 20] {
        println!(
            "  baseline: one page per target, {conc:>2} at once          {:>7.2} s",
            floors[&conc].as_secs_f64()
        );
    }
    runs[0].print(Some(60.0));
    runs[1].print(Some(60.0));
    runs[2].print(None);
    println!(
        "    of which queueing {n_targets} messages: {:.2} s ({:.0} messages/s)",
        enqueue_took.as_secs_f64(),
        n_targets as f64 / enqueue_took.as_secs_f64()
    );
    println!(
        "  alerts published: {alerts} (expected 3: the stray MicroVM once per run, de-duplicated within each)"
    );
}
