//! Load: 200 concurrent launcher requests, then 150 concurrent Contro1
//! callbacks of which 50 are duplicates, against the real router served on a
//! loopback listener and driven over real HTTP (reqwest), with DynamoDB on
//! moto, the MicroVMs API on the testkit emulator (real SDK) and Contro1 on
//! the stand-in over real HTTP.
//!
//! It asserts that nothing is lost and nothing runs twice: every request gets
//! its expected answer, every approved request starts exactly one MicroVM and
//! has exactly one ledger entry, duplicates are acknowledged and not executed.
//! Timing figures are printed (run with `--nocapture`), never asserted.
//!
//! ```text
//! export MOTO_ENDPOINT=http://127.0.0.1:5000
//! cargo test -p launcher --test load -- --nocapture
//! ```

#![forbid(unsafe_code)]

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::{CI, CI_AGENT, IMAGE, PROD, SANDBOX, Setup};
use contro1::standin::StandInHandle;
use serde_json::{Value, json};
use shared_core::webhook::Decision;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::emulator::Emulator;
use tokio::sync::Barrier;

/// Requests in the burst: half auto-approved, half waiting for approval.
const AUTO: usize = 100;
const PENDING: usize = 100;
/// Pending requests whose approval is delivered `DUP_COPIES` times at once.
const DUP_IDS: usize = 10;
const DUP_COPIES: usize = 6;
/// Pending requests approved, denied, expired with a single delivery.
const APPROVE_ONCE: usize = 60;
const DENY_ONCE: usize = 20;
const EXPIRE_ONCE: usize = 10;
// Every pending request gets a decision, so each must end in a definite state.
const _: () = assert!(DUP_IDS + APPROVE_ONCE + DENY_ONCE + EXPIRE_ONCE == PENDING);

/// Generous: moto is a single Python process; slow is a figure, not a failure.
const HTTP_TIMEOUT: Duration = Duration::from_secs(180);

/// The launcher served on a real loopback listener, and what it talks to.
struct Served {
    base: String,
    emu: Emulator,
    c1: StandInHandle,
    dynamo: aws_sdk_dynamodb::Client,
    ledger_table: String,
    http: reqwest::Client,
    /// The serialising proxy in front of moto; it stops when dropped.
    _serialiser: Option<testkit::fault_proxy::FaultProxy>,
}

async fn serve() -> Served {
    let setup = Setup {
        // Under load a slow answer is a figure; a timeout would fail closed (503).
        contro1_timeout: Some(Duration::from_secs(60)),
        contro1_max_retries: Some(1),
        // Duplicate deliveries race for one item: give moto DynamoDB's
        // atomic conditional writes (see `Setup::serialise_dynamodb`).
        serialise_dynamodb: true,
        ..Setup::new(common::policy_file("load-test", true, &[CI_AGENT]))
    };
    let (h, base) = common::served(setup).await;
    let http = reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .build()
        .unwrap();
    Served {
        base,
        emu: h.emu,
        c1: h.c1,
        dynamo: h.dynamo,
        ledger_table: h.ledger_table,
        http,
        _serialiser: h.serialiser,
    }
}

/// One answer over HTTP, with how long it took (send to last body byte).
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    body: Value,
    latency: Duration,
}

async fn answer(req: reqwest::RequestBuilder) -> Answer {
    let t0 = Instant::now();
    let resp = req.send().await.expect("the launcher answers over HTTP");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("the launcher's answer body");
    let latency = t0.elapsed();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)}));
    Answer {
        status,
        body,
        latency,
    }
}

impl Served {
    fn run_microvm_calls(&self) -> Vec<testkit::emulator::ServedCall> {
        self.emu
            .calls()
            .into_iter()
            .filter(|c| c.operation == "RunMicrovm")
            .collect()
    }

    /// Every ledger item (consistent scan, every page).
    async fn ledger_items(&self) -> Vec<HashMap<String, AttributeValue>> {
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let out = self
                .dynamo
                .scan()
                .table_name(&self.ledger_table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .unwrap();
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        items
    }

    /// Ledger items of one kind (`call` or `vm`), counted by contro1_request_id.
    async fn ledger_counts(&self, kind: &str) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for item in self.ledger_items().await {
            if item
                .get("kind")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
                != Some(kind)
            {
                continue;
            }
            let id = item["contro1_request_id"].as_s().unwrap().clone();
            *counts.entry(id).or_insert(0) += 1;
        }
        counts
    }
}

/// An auto-approved run: allowed image, sandbox role, short duration.
fn auto_body(i: usize) -> Value {
    json!({
        "owner": "team-load",
        "reason": "load test, auto",
        "image_arn": IMAGE,
        "execution_role_arn": SANDBOX,
        "duration_seconds": 600,
        "correlation_id": format!("load-auto-{i}")
    })
}

/// A run that needs approval: long duration (even i) or production role (odd i).
/// The correlation id makes each one a different action (its own Contro1 request).
fn pending_body(i: usize) -> Value {
    let (role, duration) = if i.is_multiple_of(2) {
        (SANDBOX, 3600)
    } else {
        (PROD, 600)
    };
    json!({
        "owner": "team-load",
        "reason": "load test, needs approval",
        "image_arn": IMAGE,
        "execution_role_arn": role,
        "duration_seconds": duration,
        "correlation_id": format!("load-pending-{i}")
    })
}

/// Nearest-rank percentile of sorted durations.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    assert!(!sorted.is_empty());
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn latency_line(label: &str, mut v: Vec<Duration>) -> String {
    v.sort();
    format!(
        "{label:<36} n={:<4} p50 {:>10}  p95 {:>10}  p99 {:>10}  max {:>10}",
        v.len(),
        ms(pct(&v, 50.0)),
        ms(pct(&v, 95.0)),
        ms(pct(&v, 99.0)),
        ms(*v.last().unwrap())
    )
}

/// A fixed permutation (xorshift Fisher-Yates), so deliveries interleave the
/// same way on every run.
fn shuffle<T>(v: &mut [T]) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Auto,
    Pending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    ApproveDup,
    ApproveOnce,
    DenyOnce,
    ExpireOnce,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_requests_and_fifty_duplicate_callbacks_lose_nothing_and_run_nothing_twice()
 {
    let s = serve().await;

    // ---- Phase 1: 200 requests at once --------------------------------------------------
    let mut work: Vec<(Kind, usize)> = (0..AUTO)
        .map(|i| (Kind::Auto, i))
        .chain((0..PENDING).map(|i| (Kind::Pending, i)))
        .collect();
    shuffle(&mut work);
    let gate = Arc::new(Barrier::new(work.len() + 1));
    let mut tasks = tokio::task::JoinSet::new();
    for (kind, i) in work {
        let gate = gate.clone();
        let req = s
            .http
            .post(format!("{}/microvms/run-request", s.base))
            .bearer_auth(CI)
            .json(&match kind {
                Kind::Auto => auto_body(i),
                Kind::Pending => pending_body(i),
            });
        tasks.spawn(async move {
            gate.wait().await;
            (kind, i, answer(req).await)
        });
    }
    gate.wait().await;
    let burst_start = Instant::now();
    let burst: Vec<(Kind, usize, Answer)> = tasks.join_all().await;
    let burst_wall = burst_start.elapsed();
    assert_eq!(burst.len(), AUTO + PENDING);

    let mut auto_ids: BTreeMap<usize, String> = BTreeMap::new();
    let mut auto_vms: HashSet<String> = HashSet::new();
    let mut pending_ids: BTreeMap<usize, String> = BTreeMap::new();
    let mut rules: BTreeMap<String, usize> = BTreeMap::new();
    for (kind, i, a) in &burst {
        let id = a.body["request_id"].as_str().map(str::to_string);
        match kind {
            Kind::Auto => {
                assert_eq!(a.status, 200, "auto #{i}: {}", a.body);
                assert_eq!(a.body["status"], "executed", "auto #{i}: {}", a.body);
                let vm = a.body["result"]["microvm_id"].as_str().unwrap();
                assert!(
                    auto_vms.insert(vm.to_string()),
                    "MicroVM {vm} answered twice"
                );
                auto_ids.insert(*i, id.expect("an executed run has a request_id"));
            }
            Kind::Pending => {
                assert_eq!(a.status, 202, "pending #{i}: {}", a.body);
                assert_eq!(a.body["status"], "pending", "pending #{i}: {}", a.body);
                pending_ids.insert(*i, id.expect("a 202 has a request_id"));
            }
        }
        let rule = a.body["decision"]["rule_id"].as_str().unwrap_or("?");
        *rules.entry(format!("{kind:?}:{rule}")).or_insert(0) += 1;
    }
    let auto_set: HashSet<&String> = auto_ids.values().collect();
    let pending_set: HashSet<&String> = pending_ids.values().collect();
    assert_eq!(auto_set.len(), AUTO, "auto-approved request ids repeat");
    assert_eq!(pending_set.len(), PENDING, "a 202 request_id repeats");
    assert!(auto_set.is_disjoint(&pending_set));
    assert_eq!(rules.get("Pending:duration.long"), Some(&(PENDING / 2)));
    assert_eq!(rules.get("Pending:role.production"), Some(&(PENDING / 2)));
    assert_eq!(rules.get("Auto:auto.run"), Some(&AUTO));

    // The emulator served exactly one RunMicrovm per auto-approved request.
    let runs = s.run_microvm_calls();
    assert_eq!(runs.len(), AUTO, "RunMicrovm calls after the burst");
    assert!(runs.iter().all(|c| c.succeeded()), "a RunMicrovm failed");
    let tokens: HashSet<String> = runs
        .iter()
        .map(|c| c.request["clientToken"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tokens, auto_ids.values().cloned().collect::<HashSet<_>>());

    // The ledger: one call# and one vm# item per executed call, nothing else.
    let calls = s.ledger_counts("call").await;
    let vms = s.ledger_counts("vm").await;
    for id in auto_ids.values() {
        assert_eq!(calls.get(id), Some(&1), "ledger call# items for {id}");
        assert_eq!(vms.get(id), Some(&1), "ledger vm# items for {id}");
    }
    assert_eq!(calls.values().sum::<usize>(), AUTO);
    assert_eq!(vms.values().sum::<usize>(), AUTO);

    // Contro1: one approval request per pending action, an audit pair per auto one.
    let c1_requests = s.c1.requests();
    assert_eq!(c1_requests.len(), PENDING, "Contro1 approval requests");
    let c1_ids: HashSet<&String> = c1_requests.iter().map(|r| &r.id).collect();
    assert_eq!(c1_ids, pending_set);
    let audits = s.c1.audit_records();
    let count_audits = |action: &str, reply_type: &str, id: &str| {
        audits
            .iter()
            .filter(|a| a["action"] == action)
            .filter(|a| match reply_type {
                "" => a["id"] == id,
                t => a["in_reply_to"]["type"] == t && a["in_reply_to"]["id"] == id,
            })
            .count()
    };
    for id in auto_ids.values() {
        assert_eq!(count_audits("aws.microvm.run.requested", "", id), 1, "{id}");
        assert_eq!(
            count_audits("aws.microvm.run.created", "audit_record", id),
            1,
            "{id}"
        );
    }
    let audits_after_burst = audits.len();
    assert_eq!(
        audits_after_burst,
        2 * AUTO,
        "audit records after the burst"
    );

    // ---- Phase 2: callbacks, 50 of them duplicates, all at once --------------------------
    let plan: Vec<(String, Plan)> = pending_ids
        .values()
        .enumerate()
        .map(|(n, id)| {
            let p = match n {
                n if n < DUP_IDS => Plan::ApproveDup,
                n if n < DUP_IDS + APPROVE_ONCE => Plan::ApproveOnce,
                n if n < DUP_IDS + APPROVE_ONCE + DENY_ONCE => Plan::DenyOnce,
                _ => Plan::ExpireOnce,
            };
            (id.clone(), p)
        })
        .collect();
    let approved: HashSet<String> = plan
        .iter()
        .filter(|(_, p)| matches!(p, Plan::ApproveDup | Plan::ApproveOnce))
        .map(|(id, _)| id.clone())
        .collect();
    // Each callback is signed once; duplicates are the same bytes and headers,
    // as when Contro1 redelivers.
    let mut deliveries: Vec<(String, Plan, usize)> = Vec::new();
    let mut signed = HashMap::new();
    for (id, p) in &plan {
        let (decision, copies) = match p {
            Plan::ApproveDup => (Decision::Approved, DUP_COPIES),
            Plan::ApproveOnce => (Decision::Approved, 1),
            Plan::DenyOnce => (Decision::Denied, 1),
            Plan::ExpireOnce => (Decision::Expired, 1),
        };
        signed.insert(id.clone(), s.c1.decide(id, decision).unwrap());
        deliveries.extend((0..copies).map(|copy| (id.clone(), *p, copy)));
    }
    shuffle(&mut deliveries);
    let duplicates = deliveries.len() - signed.len();
    assert!(duplicates >= 50, "{duplicates} duplicate deliveries");
    let gate = Arc::new(Barrier::new(deliveries.len() + 1));
    let mut tasks = tokio::task::JoinSet::new();
    for (id, p, copy) in deliveries {
        let cb = &signed[&id];
        let mut req = s
            .http
            .post(format!("{}/contro1/callback", s.base))
            .header("content-type", "application/json")
            .body(cb.body.clone());
        for (k, v) in cb.headers() {
            req = req.header(k, v);
        }
        let gate = gate.clone();
        tasks.spawn(async move {
            gate.wait().await;
            (id, p, copy, answer(req).await)
        });
    }
    gate.wait().await;
    let cb_start = Instant::now();
    let cb_answers: Vec<(String, Plan, usize, Answer)> = tasks.join_all().await;
    let cb_wall = cb_start.elapsed();

    let mut outcomes: HashMap<String, Vec<Value>> = HashMap::new();
    for (id, p, copy, a) in &cb_answers {
        assert_eq!(
            a.status, 200,
            "callback {id} ({p:?}, copy {copy}): {}",
            a.body
        );
        outcomes.entry(id.clone()).or_default().push(a.body.clone());
    }
    let mut dup_acknowledged = 0;
    for (id, p) in &plan {
        let got = outcomes.get(id).cloned().unwrap_or_default();
        let by = |outcome: &str| got.iter().filter(|v| v["outcome"] == outcome).count();
        match p {
            Plan::ApproveDup => {
                assert_eq!(got.len(), DUP_COPIES);
                assert_eq!(by("executed"), 1, "{id}: {got:?}");
                assert_eq!(by("already_processed"), DUP_COPIES - 1, "{id}: {got:?}");
                dup_acknowledged += by("already_processed");
                let ex = got.iter().find(|v| v["outcome"] == "executed").unwrap();
                assert_eq!(ex["state"], "executed", "{id}: {ex}");
            }
            Plan::ApproveOnce => {
                assert_eq!(
                    got,
                    vec![json!({"outcome": "executed", "state": "executed"})]
                );
            }
            Plan::DenyOnce => {
                assert_eq!(got, vec![json!({"outcome": "recorded", "state": "denied"})]);
            }
            Plan::ExpireOnce => {
                assert_eq!(
                    got,
                    vec![json!({"outcome": "recorded", "state": "expired"})]
                );
            }
        }
    }
    assert_eq!(dup_acknowledged, duplicates);

    // Exactly one new RunMicrovm per approved request, with the stored input.
    let runs = s.run_microvm_calls();
    assert_eq!(runs.len(), AUTO + approved.len(), "RunMicrovm calls in all");
    assert!(runs.iter().all(|c| c.succeeded()), "a RunMicrovm failed");
    let mut per_token: HashMap<String, usize> = HashMap::new();
    for c in &runs {
        *per_token
            .entry(c.request["clientToken"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert!(
        per_token.values().all(|n| *n == 1),
        "a clientToken was sent twice"
    );
    for id in &approved {
        assert_eq!(per_token.get(id), Some(&1), "RunMicrovm for approved {id}");
    }
    let index_of: HashMap<&str, usize> = pending_ids
        .iter()
        .map(|(i, id)| (id.as_str(), *i))
        .collect();
    for c in &runs {
        let token = c.request["clientToken"].as_str().unwrap();
        let Some(&i) = index_of.get(token) else {
            continue;
        };
        let hook: Value =
            serde_json::from_str(c.request["runHookPayload"].as_str().unwrap()).unwrap();
        assert_eq!(hook["correlation_id"], format!("load-pending-{i}"));
        let expected = pending_body(i);
        assert_eq!(
            c.request["executionRoleArn"],
            expected["execution_role_arn"]
        );
        assert_eq!(
            c.request["maximumDurationInSeconds"],
            expected["duration_seconds"]
        );
    }

    // No request lost: every pending request ends in a definite state, seen over HTTP.
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    let mut view_latency = Vec::new();
    for (id, p) in &plan {
        let a = answer(
            s.http
                .get(format!("{}/requests/{id}", s.base))
                .bearer_auth(CI),
        )
        .await;
        view_latency.push(a.latency);
        assert_eq!(a.status, 200, "GET /requests/{id}: {}", a.body);
        let want = match p {
            Plan::ApproveDup | Plan::ApproveOnce => "executed",
            Plan::DenyOnce => "denied",
            Plan::ExpireOnce => "expired",
        };
        assert_eq!(a.body["state"], want, "{id} ({p:?}): {}", a.body);
        if want == "executed" {
            let vm = a.body["result"]["microvm_id"].as_str().unwrap();
            assert!(s.emu.microvm(vm).is_some(), "{id}: {vm} unknown to AWS");
        }
        *states
            .entry(a.body["state"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }

    // The ledger: exactly one entry each, for the auto and the approved requests.
    let calls = s.ledger_counts("call").await;
    let vms = s.ledger_counts("vm").await;
    for id in auto_ids.values().chain(approved.iter()) {
        assert_eq!(calls.get(id), Some(&1), "ledger call# items for {id}");
        assert_eq!(vms.get(id), Some(&1), "ledger vm# items for {id}");
    }
    assert_eq!(calls.values().sum::<usize>(), AUTO + approved.len());
    assert_eq!(vms.values().sum::<usize>(), AUTO + approved.len());

    // Contro1 audit: approved + created once per approved request, denied once per
    // denied or expired one, nothing for duplicates.
    let audits = s.c1.audit_records();
    for (id, p) in &plan {
        let (approved_n, created_n, denied_n) = match p {
            Plan::ApproveDup | Plan::ApproveOnce => (1, 1, 0),
            Plan::DenyOnce | Plan::ExpireOnce => (0, 0, 1),
        };
        let n = |action: &str| {
            audits
                .iter()
                .filter(|a| {
                    a["action"] == action
                        && a["in_reply_to"]["type"] == "request"
                        && a["in_reply_to"]["id"] == id.as_str()
                })
                .count()
        };
        assert_eq!(n("aws.microvm.run.approved"), approved_n, "{id} ({p:?})");
        assert_eq!(n("aws.microvm.run.created"), created_n, "{id} ({p:?})");
        assert_eq!(n("aws.microvm.run.denied"), denied_n, "{id} ({p:?})");
    }
    assert_eq!(
        audits.len(),
        audits_after_burst + 2 * approved.len() + (PENDING - approved.len())
    );

    // ---- Figures (printed, never asserted) ------------------------------------------------
    let lat = |k: Kind| -> Vec<Duration> {
        burst
            .iter()
            .filter(|(kind, _, _)| *kind == k)
            .map(|(_, _, a)| a.latency)
            .collect()
    };
    let all: Vec<Duration> = burst.iter().map(|(_, _, a)| a.latency).collect();
    let cb_first: Vec<Duration> = cb_answers
        .iter()
        .filter(|(_, _, _, a)| a.body["outcome"] != "already_processed")
        .map(|(_, _, _, a)| a.latency)
        .collect();
    let cb_dups: Vec<Duration> = cb_answers
        .iter()
        .filter(|(_, _, _, a)| a.body["outcome"] == "already_processed")
        .map(|(_, _, _, a)| a.latency)
        .collect();
    let cb_all: Vec<Duration> = cb_answers.iter().map(|(_, _, _, a)| a.latency).collect();
    // Where a duplicate found the request: still `executing` (it raced the winner) or done.
    let mut dup_seen: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, _, a) in &cb_answers {
        if a.body["outcome"] == "already_processed" {
            *dup_seen
                .entry(a.body["state"].as_str().unwrap_or("none").to_string())
                .or_insert(0) += 1;
        }
    }
    println!();
    println!(
        "== launcher load (real HTTP on loopback; DynamoDB on moto; MicroVMs emulator; Contro1 stand-in)"
    );
    println!(
        "burst: {} concurrent POST /microvms/run-request ({AUTO} auto-approved -> 200, {PENDING} need approval -> 202) in {} = {:.1} requests/s",
        AUTO + PENDING,
        ms(burst_wall),
        (AUTO + PENDING) as f64 / burst_wall.as_secs_f64()
    );
    println!("{}", latency_line("  all 200", all));
    println!(
        "{}",
        latency_line("  auto-approved (200 executed)", lat(Kind::Auto))
    );
    println!(
        "{}",
        latency_line("  needs approval (202 pending)", lat(Kind::Pending))
    );
    println!(
        "callbacks: {} concurrent POST /contro1/callback for {} requests ({duplicates} duplicates of {DUP_IDS} approvals x{DUP_COPIES}; {APPROVE_ONCE} approved, {DENY_ONCE} denied, {EXPIRE_ONCE} expired once) in {} = {:.1} callbacks/s",
        cb_answers.len(),
        signed.len(),
        ms(cb_wall),
        cb_answers.len() as f64 / cb_wall.as_secs_f64()
    );
    println!("{}", latency_line("  all callbacks", cb_all));
    println!(
        "{}",
        latency_line("  first delivery (executed/recorded)", cb_first)
    );
    println!(
        "{}",
        latency_line("  duplicate (already_processed)", cb_dups)
    );
    println!("  duplicates found the request in state: {dup_seen:?}");
    println!(
        "{}",
        latency_line("  GET /requests/{id} (sequential)", view_latency)
    );
    println!(
        "counts: RunMicrovm {} (auto {AUTO} + approved {}), ledger call# {} vm# {}, Contro1 requests {}, audit records {}, final states {states:?}, duplicates acknowledged {dup_acknowledged}, double executions 0, lost 0",
        runs.len(),
        approved.len(),
        calls.values().sum::<usize>(),
        vms.values().sum::<usize>(),
        s.c1.requests().len(),
        audits.len()
    );
}
