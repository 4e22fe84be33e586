//! Benchmark of `detector scan`'s engine against single-thread gzip
//! decompression of the same files, both measured in the same run. The scan
//! reads the files as `detector scan DIR` does: several at once
//! (`Scanner::scan_inputs`, one thread per core), merged in input order.
//!
//!     cargo bench -p detector --bench scan
//!     BENCH_RUNS=3 BENCH_RECORDS=50000 cargo bench -p detector --bench scan   # quicker
//!
//! Two corpora: a generated one (`testkit::corpus`, 300,000 records resampled
//! from tests/data, 3,000 per file: 100 files, cached under
//! `target/bench-data/`) and the real CloudTrail data: the shared data tier's
//! `data/cloudtrail` when present (about 4,000 small files), the bundled
//! tests/data otherwise (it is read several times per run so the run lasts
//! long enough to time). Targets:
//! scan wall time at most 1/1.2 of decompression (throughput at least 1.2×),
//! scan CPU time at most 1.3× decompression CPU, peak RSS at most 64 MiB.
//!
//! Each measurement runs in a child process (this binary re-executed with
//! `BENCH_CHILD=raw|scan`) so that its peak RSS (`VmHWM`) and CPU time
//! (`/proc/self/stat`, every thread included) are its own. Runs of the two
//! alternate, and the median of each figure is printed, with the load average
//! before and after: the machine may be shared.
#![forbid(unsafe_code)]

mod common;

use common::{env_num, process_cpu_secs};
use detector_core::parallel::{self, Delivery, Input, Job};
use detector_core::{
    Classifier, ClassifierConfig, ResourceRef, ScanEvent, ScanOptions, Scanner, TamperConfig,
};
use serde_json::{Value, json};
use shared_core::{Event, RoleRef};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const ACCOUNT: &str = "111122223333";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The files `detector scan DIR` reads: recursive, sorted, by extension.
fn input_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p.to_string_lossy();
        if p.is_dir() {
            input_files(&p, out);
        } else if [".json", ".json.gz", ".jsonl", ".ndjson", ".gz"]
            .iter()
            .any(|ext| name.ends_with(ext))
        {
            out.push(p);
        }
    }
}

/// The classifier as a deployment configures it (the SAM template's
/// environment with the default name prefix): the launcher role and session,
/// both functions, a deployment role, the protected resources and the
/// ledger, so that the tamper rules' needles are all in play.
fn deployed_config(role: &str, session: &str) -> ClassifierConfig {
    let arn =
        |service: &str, resource: &str| format!("arn:aws:{service}:us-east-1:{ACCOUNT}:{resource}");
    let ledger = arn("dynamodb", "table/microvm-gov-ledger");
    let protected: Vec<String> = vec![
        format!("arn:aws:s3:::microvm-gov-cloudtrail-{ACCOUNT}-us-east-1"),
        ledger.clone(),
        arn("dynamodb", "table/microvm-gov-pending"),
        arn("dynamodb", "table/microvm-gov-dedupe"),
        arn("events", "rule/microvm-gov-sweep"),
        arn("events", "rule/microvm-gov-governed-calls"),
        arn("events", "rule/microvm-gov-tamper-events"),
        arn("sqs", "microvm-gov-detector-queue"),
        arn("sqs", "microvm-gov-detector-dlq"),
        arn("sqs", "microvm-gov-detector-events-dlq"),
        arn("sns", "microvm-gov-alerts"),
        arn("ssm", "parameter/microvm-gov/integrity-baseline"),
        arn("lambda", "microvm-image:agent-sandbox"),
    ];
    let mut tamper = TamperConfig::parse(
        &[arn("lambda", &format!("function:{session}"))],
        &[arn("lambda", "function:microvm-gov-detector")],
        &[format!(
            "arn:aws:iam::{ACCOUNT}:role/microvm-gov-deployment"
        )],
        &protected,
    )
    .unwrap();
    tamper.ledger_tables = vec![ResourceRef::parse(&ledger).unwrap()];
    ClassifierConfig {
        launcher_roles: vec![RoleRef::from_role_arn(role).unwrap()],
        launcher_session_names: vec![session.to_string()],
        tamper,
        ..ClassifierConfig::default()
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU seconds of this process so far, every thread included.
fn cpu_secs() -> f64 {
    process_cpu_secs("self").expect("/proc/self/stat is readable")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Child mode: measure one thing over the files listed in BENCH_LIST
/// (`SIZE<TAB>PATH` lines), BENCH_PASSES times, and print one JSON line
/// (figures per pass).
fn child(mode: &str) {
    let list = std::fs::read_to_string(std::env::var("BENCH_LIST").unwrap()).unwrap();
    let listed: Vec<(u64, &str)> = list
        .lines()
        .filter(|s| !s.is_empty())
        .map(|l| {
            let (size, path) = l.split_once('\t').unwrap();
            (size.parse().unwrap(), path)
        })
        .collect();
    let files: Vec<&str> = listed.iter().map(|(_, p)| *p).collect();
    let passes = env_num("BENCH_PASSES", 1);
    let cpu0 = cpu_secs();
    let start = Instant::now();
    let (mut bytes, mut records, mut bypass, mut tampered) = (0u64, 0u64, 0u64, 0u64);
    for _ in 0..passes {
        match mode {
            "raw" => {
                for f in &files {
                    // A plain program's reader: `BufReader`'s default 8 KiB.
                    // (A 256 KiB one is zeroed for every file: on the real
                    // data's 12 KB files that was a third of this baseline's
                    // instructions, and flattered the scan.)
                    let mut file = io::BufReader::new(File::open(f).unwrap());
                    let gzip = io::BufRead::fill_buf(&mut file)
                        .map(|b| b.starts_with(&[0x1f, 0x8b]))
                        .unwrap();
                    bytes += if gzip {
                        io::copy(
                            &mut flate2::read::MultiGzDecoder::new(file),
                            &mut io::sink(),
                        )
                    } else {
                        io::copy(&mut file, &mut io::sink())
                    }
                    .unwrap();
                }
            }
            "scan" => {
                let cfg = deployed_config(
                    &std::env::var("BENCH_ROLE").unwrap(),
                    &std::env::var("BENCH_SESSION").unwrap(),
                );
                let opts = ScanOptions::default();
                let threads = parallel::threads_for(&opts);
                let mut scanner = Scanner::new(Classifier::new(cfg), opts);
                // As `detector scan` reads a directory: every input opened
                // by the thread that reads it, results merged in order, its
                // size known from the listing (the walk's one stat of each
                // file, or an S3 listing), as the baseline knows the files.
                scanner.scan_inputs::<()>(
                    threads,
                    |emit| {
                        for &(size, f) in &listed {
                            emit(Job::Input(Input {
                                source: f.to_string(),
                                open: Box::new(move || {
                                    File::open(f)
                                        .map(|f| Box::new(f) as Box<dyn Read + Send>)
                                        .map_err(|e| e.to_string())
                                }),
                                size: Some(size),
                            }));
                        }
                    },
                    |d| match d {
                        Delivery::Event(ScanEvent::Finding(f)) => {
                            if f.event == Event::BypassDetected {
                                bypass += 1;
                            } else {
                                tampered += 1;
                            }
                        }
                        Delivery::Event(ScanEvent::RecordError(e)) => panic!("{e}"),
                        Delivery::Done { result: Err(e), .. } => panic!("{e}"),
                        _ => {}
                    },
                );
                bytes += scanner.stats().bytes;
                records += scanner.stats().records;
            }
            other => panic!("unknown BENCH_CHILD {other}"),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    let n = passes as f64;
    println!(
        "{}",
        json!({"secs": secs / n, "cpu": cpu / n, "bytes": bytes / passes, "records": records / passes,
               "bypass": bypass / passes, "tampered": tampered / passes, "peak_rss_kib": peak_rss_kib()})
    );
}

struct Corpus {
    label: String,
    files: Vec<PathBuf>,
    role: String,
    session: String,
    /// Bypass findings the corpus must give, when known.
    expected_bypass: Option<u64>,
    records: Option<u64>,
}

fn run_child(mode: &str, c: &Corpus, list: &Path, passes: u64) -> Value {
    let out = Command::new(std::env::current_exe().unwrap())
        .env("BENCH_CHILD", mode)
        .env("BENCH_LIST", list)
        .env("BENCH_PASSES", passes.to_string())
        .env("BENCH_ROLE", &c.role)
        .env("BENCH_SESSION", &c.session)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{mode}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn median(runs: &[Value], key: &str) -> f64 {
    let mut v: Vec<f64> = runs.iter().map(|r| r[key].as_f64().unwrap()).collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Alternate raw and scan runs; print the medians and the ratios.
fn compare(c: &Corpus, runs: usize) {
    let slug: String = c
        .label
        .chars()
        .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
        .collect();
    let list = workspace()
        .join("target/bench-data")
        .join(format!("files-{slug}.txt"));
    let text: String = c
        .files
        .iter()
        .map(|p| {
            let size = std::fs::metadata(p).unwrap().len();
            format!("{size}\t{}\n", p.to_string_lossy())
        })
        .collect();
    std::fs::write(&list, text).unwrap();
    // Small corpora are read several times per run so that a run lasts
    // long enough for the CPU clock's 10 ms ticks.
    let probe = run_child("raw", c, &list, 1);
    let passes = (0.5 / probe["secs"].as_f64().unwrap().max(1e-3))
        .ceil()
        .clamp(1.0, 50.0) as u64;
    let load_before = load_average();
    let (mut raw, mut scan) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        raw.push(run_child("raw", c, &list, passes));
        scan.push(run_child("scan", c, &list, passes));
    }
    let load_after = load_average();
    let (r, s) = (&raw[0], &scan[0]);
    assert_eq!(
        r["bytes"], s["bytes"],
        "both read the same uncompressed bytes"
    );
    if let Some(want) = c.records {
        assert_eq!(s["records"].as_u64(), Some(want), "records scanned");
    }
    if let Some(want) = c.expected_bypass {
        assert_eq!(s["bypass"].as_u64(), Some(want), "bypass findings");
    }
    let mb = r["bytes"].as_f64().unwrap() / 1e6;
    let (rw, rc, rr) = (
        median(&raw, "secs"),
        median(&raw, "cpu"),
        median(&raw, "peak_rss_kib"),
    );
    let (sw, sc, sr) = (
        median(&scan, "secs"),
        median(&scan, "cpu"),
        median(&scan, "peak_rss_kib"),
    );
    println!(
        "== {}: {} files, {mb:.1} MB uncompressed; {passes} pass(es) per run, median of {runs} runs; load average {load_before} before, {load_after} after",
        c.label,
        c.files.len()
    );
    println!("                               wall s    CPU s     MB/s    records/s   peak RSS");
    println!(
        "single-thread flate2         {rw:>8.3} {rc:>8.3} {:>8.0}            -  {:>6.1} MiB",
        mb / rw,
        rr / 1024.0
    );
    println!(
        "detector scan                {sw:>8.3} {sc:>8.3} {:>8.0} {:>12.0}  {:>6.1} MiB",
        mb / sw,
        s["records"].as_f64().unwrap() / sw,
        sr / 1024.0
    );
    println!(
        "throughput scan/decompression {:.2}x (target >= 1.2x); CPU scan/decompression {:.2}x (target <= 1.3x); peak RSS {:.1} MiB (target <= 64 MiB)",
        rw / sw,
        sc / rc,
        sr / 1024.0
    );
    println!(
        "findings: {} bypass{}, {} tamper; {} records",
        s["bypass"],
        c.expected_bypass
            .map(|n| format!(" (expected {n})"))
            .unwrap_or_default(),
        s["tampered"],
        s["records"]
    );
}

fn make_corpus(records: u64, per_file: u64) -> Corpus {
    let dir = workspace()
        .join("target/bench-data")
        .join(format!("corpus-v2-{records}-{per_file}"));
    let meta = dir.join(testkit::corpus::SUMMARY);
    if !meta.exists() {
        let source = testkit::test_data_dir();
        eprintln!(
            "generating {} from {} (testkit::corpus)",
            dir.display(),
            source.display()
        );
        let opts = testkit::corpus::CorpusOptions {
            records,
            per_file,
            ..Default::default()
        };
        testkit::corpus::generate(&dir, &source, &opts).unwrap();
    }
    let m: Value = serde_json::from_str(&std::fs::read_to_string(meta).unwrap()).unwrap();
    let mut files = Vec::new();
    input_files(&dir.join("AWSLogs"), &mut files);
    Corpus {
        label: format!("generated corpus {records} records, {per_file} per file"),
        files,
        role: m["launcher_role_arn"].as_str().unwrap().to_string(),
        session: m["launcher_session_name"].as_str().unwrap().to_string(),
        expected_bypass: m["expected_bypass"].as_u64(),
        records: m["records"].as_u64(),
    }
}

/// The real CloudTrail data: all of the shared data tier's when it is
/// present (about 4,000 small files), the bundled tests/data otherwise.
fn real_data() -> Corpus {
    let dir = if testkit::shared_tier_present() {
        testkit::shared_data_dir()
    } else {
        testkit::test_data_dir()
    };
    let mut files = Vec::new();
    input_files(&dir, &mut files);
    let records = testkit::corpus::real_records(&dir).unwrap().len() as u64;
    Corpus {
        label: format!("real data {}", dir.display()),
        files,
        role: format!("arn:aws:iam::{ACCOUNT}:role/Contro1MicrovmLauncher"),
        session: "contro1-microvm-launcher".to_string(),
        expected_bypass: Some(0),
        records: Some(records),
    }
}

fn main() {
    if let Ok(mode) = std::env::var("BENCH_CHILD") {
        return child(&mode);
    }
    // `cargo bench` passes `--bench`; ignore arguments.
    let runs = env_num("BENCH_RUNS", 7) as usize;
    std::fs::create_dir_all(workspace().join("target/bench-data")).unwrap();
    let corpus = make_corpus(
        env_num("BENCH_RECORDS", 300_000),
        env_num("BENCH_PER_FILE", 3_000),
    );
    compare(&corpus, runs);
    compare(&real_data(), runs);
}
