//! Launcher latency benchmark (not a test; prints figures).
//!
//! ```text
//! scripts/moto.sh start && export MOTO_ENDPOINT=$(scripts/moto.sh endpoint)
//! cargo bench -p launcher --bench latency
//! ```
//!
//! 1. **Cold start of the built binary**: spawn `launcher serve` (the bench
//!    build of the bin, `SIMULATE_AWS=true`, in-memory store, Contro1 stand-in
//!    in this process) and time process start → first answered `/healthz`,
//!    and → first answered policy request (a `require_approval` run request:
//!    policy, one local Contro1 round trip, pending item). Baseline: spawn →
//!    exit of `launcher hash-token x` (process start cost alone).
//! 2. **Warm per-request latency** of the policy + store path, in process
//!    through the router (`oneshot`), with the pending table and the ledger on
//!    moto and Contro1/AWS replaced by in-memory ports (their round trips are
//!    excluded by the target). Baselines measured in the same run: `/healthz`
//!    through the same router, and a raw DynamoDB `PutItem` to moto (the
//!    floor the store path cannot beat).

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use launcher::adapters::LedgerAdapter;
use launcher::settings::Settings;
use launcher::store::DynamoPendingStore;
use launcher_core::agents::token_sha256_hex;
use launcher_core::fakes::{MemoryApprovals, RecordingMicrovms};
use launcher_core::ports::SystemClock;
use launcher_core::{Config, PortSet};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const IMAGE: &str = "arn:aws:lambda:us-east-1:111122223333:microvm-image:py";
const SANDBOX: &str = "arn:aws:iam::111122223333:role/sandbox";

fn policy() -> String {
    format!(
        r#"
[policy]
allowed_image_arns = ["{IMAGE}"]
allowed_execution_role_arns = ["{SANDBOX}"]
[[agents]]
id = "ci"
owner = "platform"
environment = "dev"
bearer_token_sha256 = ["{}"]
"#,
        token_sha256_hex("bench-token")
    )
}

fn run_body(i: usize) -> String {
    format!(
        r#"{{"owner":"team-a","reason":"bench {i}","image_arn":"{IMAGE}","execution_role_arn":"{SANDBOX}","duration_seconds":3600,"correlation_id":"bench-{i}"}}"#
    )
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One HTTP/1.1 request over a fresh connection; the status code.
fn http(port: u16, method: &str, path: &str, body: &str, token: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split(' ').nth(1)?.parse().ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn cold_start(contro1_url: &str, policy_path: &std::path::Path) {
    let bin = env!("CARGO_BIN_EXE_launcher");
    const RUNS: usize = 15;
    let mut health = Vec::new();
    let mut first_policy = Vec::new();
    let mut baseline = Vec::new();
    for i in 0..RUNS {
        let t = Instant::now();
        let st = Command::new(bin)
            .args(["hash-token", "x"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        baseline.push(t.elapsed());

        let port = free_port();
        let t = Instant::now();
        let mut child = Command::new(bin)
            .args(["serve", "--port", &port.to_string(), "--config"])
            .arg(policy_path)
            .env("SIMULATE_AWS", "true")
            .env("CONTRO1_BASE_URL", contro1_url)
            .env("CONTRO1_API_KEY", "bench-key")
            .env("CONTRO1_WEBHOOK_SECRET", "bench-secret")
            .env("RUST_LOG", "warn")
            .env_remove("PENDING_TABLE")
            .env_remove("LEDGER_TABLE")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = t + Duration::from_secs(10);
        loop {
            if http(port, "GET", "/healthz", "", "") == Some(200) {
                health.push(t.elapsed());
                break;
            }
            assert!(Instant::now() < deadline, "launcher did not start");
            std::thread::sleep(Duration::from_micros(200));
        }
        let code = http(
            port,
            "POST",
            "/microvms/run-request",
            &run_body(i),
            "bench-token",
        );
        first_policy.push(t.elapsed());
        assert_eq!(code, Some(202));
        child.kill().ok();
        child.wait().ok();
    }
    for v in [&mut health, &mut first_policy, &mut baseline] {
        v.sort();
    }
    println!("cold start ({RUNS} runs of the built binary, `launcher serve`, SIMULATE_AWS=true):");
    println!(
        "  process start -> first /healthz answered      p50 {:7.2} ms  max {:7.2} ms",
        ms(pct(&health, 0.5)),
        ms(pct(&health, 1.0))
    );
    println!(
        "  process start -> first policy request (202)   p50 {:7.2} ms  max {:7.2} ms",
        ms(pct(&first_policy, 0.5)),
        ms(pct(&first_policy, 1.0))
    );
    println!(
        "  baseline: spawn -> exit of `launcher hash-token` p50 {:7.2} ms",
        ms(pct(&baseline, 0.5))
    );
    println!(
        "  ratio first /healthz / bare process start: {:.1}x   (target: cold start <= 50 ms)",
        ms(pct(&health, 0.5)) / ms(pct(&baseline, 0.5))
    );
}

async fn time_router(
    router: &axum::Router,
    n: usize,
    mk: impl Fn(usize) -> Request<Body>,
) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let req = mk(i);
        let t = Instant::now();
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let _ = resp.into_body().collect().await.unwrap();
        out.push(t.elapsed());
        assert!(status.is_success(), "{status}");
    }
    out.sort();
    out
}

fn line(name: &str, v: &[Duration], base: Duration) {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "  {name:<44} p50 {:9.1} us  p99 {:9.1} us  ({:.3}x baseline p50)",
        us(pct(v, 0.5)),
        us(pct(v, 0.99)),
        ms(pct(v, 0.5)) / ms(base)
    );
}

async fn warm() {
    let sdk = testkit::moto::sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let pending = testkit::unique_name("bench-pending");
    let ledger = testkit::unique_name("bench-ledger");
    testkit::moto::create_pk_table(&dynamo, &pending).await;
    testkit::moto::create_pk_table(&dynamo, &ledger).await;
    let env: HashMap<String, String> = [
        ("LAUNCHER_PUBLIC_URL", "http://127.0.0.1:9"),
        ("CONTRO1_API_KEY", "k"),
        ("CONTRO1_WEBHOOK_SECRET", "s"),
        ("PENDING_TABLE", pending.as_str()),
        ("LEDGER_TABLE", ledger.as_str()),
        // The benchmark asks far more often than an agent may.
        ("APPROVAL_REQUESTS_PER_MINUTE", "10000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let settings = Settings::from_env(&env).unwrap();
    let ports = PortSet {
        store: Arc::new(DynamoPendingStore::new(
            dynamo.clone(),
            &pending,
            Arc::new(launcher::seal::LocalSealer::random()),
        )),
        ledger: Arc::new(LedgerAdapter(shared_aws::DynamoLedger::new(
            dynamo.clone(),
            &ledger,
        ))),
        microvms: Arc::new(RecordingMicrovms::default()),
        approvals: Arc::new(MemoryApprovals::default()),
        clock: Arc::new(SystemClock),
    };
    let config = Config::from_parts(&policy(), &HashMap::new()).unwrap();
    let router = launcher::app(launcher::bootstrap::from_ports(
        &settings,
        config.clone(),
        ports,
        b"s".to_vec(),
    ));
    // The same router over in-memory ports: the launcher's own cost with
    // every round trip (DynamoDB, Contro1, AWS) removed.
    let mem_router = launcher::app(launcher::bootstrap::from_ports(
        &settings,
        config.clone(),
        PortSet {
            store: Arc::new(launcher_core::fakes::MemoryStore::new()),
            ledger: Arc::new(launcher_core::fakes::MemoryLedger::default()),
            microvms: Arc::new(RecordingMicrovms::default()),
            approvals: Arc::new(MemoryApprovals::default()),
            clock: Arc::new(SystemClock),
        },
        b"s".to_vec(),
    ));
    const N: usize = 1000;
    // Warm-up (connection pool, moto).
    let _ = time_router(&router, 50, |i| post(&run_body(100_000 + i))).await;

    let health = time_router(&router, N, |_| {
        Request::get("/healthz").body(Body::empty()).unwrap()
    })
    .await;
    let in_memory = time_router(&mem_router, N, |i| post(&run_body(i))).await;
    // Interleave the raw PutItem baseline with the launcher's submit so that
    // moto's (and the shared machine's) noise hits both alike.
    let mut raw = Vec::with_capacity(N);
    let mut submit = Vec::with_capacity(N);
    for i in 0..N {
        let t = Instant::now();
        dynamo
            .put_item()
            .table_name(&pending)
            .item(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("raw#{i}")),
            )
            .item("v", aws_sdk_dynamodb::types::AttributeValue::S("x".into()))
            .send()
            .await
            .unwrap();
        raw.push(t.elapsed());
        submit.extend(time_router(&router, 1, |_| post(&run_body(200_000 + i))).await);
    }
    raw.sort();
    submit.sort();
    // Pure policy evaluation, no I/O.
    let action: launcher_core::Action =
        launcher_core::Action::Run(serde_json::from_str(&run_body(1)).unwrap());
    let agent = config.agents.get("ci");
    let mut pure = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        let d = launcher_core::policy::evaluate(
            &config.policy,
            agent,
            std::hint::black_box(&action),
            launcher_core::Target::NotApplicable,
        );
        std::hint::black_box(d);
        pure.push(t.elapsed());
    }
    pure.sort();
    let base = pct(&raw, 0.5);
    println!(
        "warm, in process, {N} requests each (pending table + ledger on moto; Contro1/AWS in memory):"
    );
    line("baseline: raw DynamoDB PutItem to moto", &raw, base);
    line("GET /healthz through the router", &health, base);
    line("policy::evaluate alone (no I/O)", &pure, base);
    line("POST run-request -> 202, in-memory store", &in_memory, base);
    line("POST run-request -> 202, PutItem on moto", &submit, base);
    println!(
        "  launcher's own cost (in-memory ports) p99 {:.3} ms; with moto, p50 above raw PutItem: {:.3} ms   (target: warm p99 <= 5 ms excluding Contro1/AWS)",
        ms(pct(&in_memory, 0.99)),
        ms(pct(&submit, 0.5)) - ms(pct(&raw, 0.5))
    );
}

fn post(body: &str) -> Request<Body> {
    Request::post("/microvms/run-request")
        .header("authorization", "Bearer bench-token")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c1 = contro1::standin::StandIn::start(contro1::standin::StandInConfig::new(
            "bench-key",
            "bench-secret",
        ))
        .await
        .unwrap();
        let dir = std::env::temp_dir().join(format!("launcher-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policy.toml");
        std::fs::write(&path, policy()).unwrap();
        cold_start(&c1.base_url(), &path).await;
        warm().await;
        std::fs::remove_dir_all(&dir).ok();
    });
}
