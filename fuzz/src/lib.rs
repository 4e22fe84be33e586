//! Helpers shared by the fuzz targets: the classifier they scan with, a reader
//! that hands input over in awkward pieces, and the invariants every scan must
//! keep (counts reconcile, errors name the input). Kept here so each target
//! stays a few lines and the invariants are written once.
#![forbid(unsafe_code)]

use detector_core::parallel::{Delivery, Input, Job};
use detector_core::targets::FunctionRef;
use detector_core::{
    Classifier, ClassifierConfig, InputReport, ReadError, ResourceRef, ScanEvent, ScanOptions,
    ScanStats, Scanner, TamperConfig,
};
use shared_core::RoleRef;
use std::collections::HashSet;
use std::io::{self, Read};

/// The input name every scan uses; every error message must carry it.
pub const SOURCE: &str = "fuzz-input.json";

/// The launcher as `scripts/fuzz-seeds.py` writes it into the seeds, so that
/// managed calls and every bypass rule are reachable.
pub const LAUNCHER_ROLE: &str = "arn:aws:iam::111122223333:role/Contro1MicrovmLauncher";
pub const LAUNCHER_SESSION: &str = "contro1-microvm-launcher";

/// A bucket the tamper rules protect, so that their needles are in play.
pub const PROTECTED_BUCKET: &str = "microvm-gov-trail";

pub fn classifier() -> Classifier {
    Classifier::new(ClassifierConfig {
        launcher_roles: vec![RoleRef::from_role_arn(LAUNCHER_ROLE).expect("valid role ARN")],
        launcher_session_names: vec![LAUNCHER_SESSION.to_string()],
        tamper: TamperConfig {
            launcher_functions: vec![FunctionRef::parse(LAUNCHER_SESSION).expect("valid name")],
            protected_resources: vec![ResourceRef::parse(PROTECTED_BUCKET).expect("valid name")],
            ..TamperConfig::default()
        },
        ..ClassifierConfig::default()
    })
}

/// A reader that returns `data` in pieces of 1..=`max` bytes, the sizes
/// following a small deterministic sequence, so that every buffer boundary
/// of the splitter (inside a string, an escape, a key, the gzip magic) gets
/// exercised.
pub struct Chunked<'a> {
    data: &'a [u8],
    pos: usize,
    state: u32,
    max: usize,
}

impl<'a> Chunked<'a> {
    pub fn new(data: &'a [u8], seed: u32, max: usize) -> Chunked<'a> {
        Chunked {
            data,
            pos: 0,
            state: seed | 1,
            max: max.max(1),
        }
    }
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // xorshift32: cheap and deterministic.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        let want = 1 + (self.state as usize % self.max);
        let n = want.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Everything one scan produced, rendered so two scans can be compared.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub events: Vec<String>,
    pub result: Result<InputReport, String>,
    pub stats: ScanStats,
}

/// Per-kind counts of the events a scan passed to its callback.
#[derive(Debug, Default)]
struct Counts {
    findings: u64,
    managed: u64,
    record_errors: u64,
}

/// Scan one input with a fresh scanner and check every invariant that must
/// hold whatever the bytes were.
pub fn scan_checked<R: Read + Send>(input: R, opts: ScanOptions) -> Outcome {
    scan_checked_with(input, opts, false)
}

/// [`scan_checked`] through `Scanner::scan_reader_pipelined` (gzip
/// decompressed on a second thread) when `pipelined`.
pub fn scan_checked_with<R: Read + Send>(input: R, opts: ScanOptions, pipelined: bool) -> Outcome {
    let mut scanner = Scanner::new(classifier(), opts);
    let mut counts = Counts::default();
    let mut events = Vec::new();
    let mut ids = HashSet::new();
    let on_event = |ev: ScanEvent| {
        match &ev {
            ScanEvent::Finding(f) => {
                counts.findings += 1;
                assert_eq!(f.source, SOURCE);
                assert!(
                    matches!(
                        f.event.as_str(),
                        "aws.microvm.bypass.detected" | "aws.microvm.governance.tampered"
                    ),
                    "{f:?}"
                );
                if let Some(id) = &f.event_id {
                    assert!(ids.insert(id.clone()), "eventID {id} reported twice");
                }
            }
            ScanEvent::Managed(m) => {
                counts.managed += 1;
                assert_eq!(m.if_not_in_ledger.source, SOURCE);
                if let Some(id) = &m.if_not_in_ledger.event_id {
                    assert!(ids.insert(id.clone()), "eventID {id} reported twice");
                }
            }
            ScanEvent::RecordError(e) => {
                counts.record_errors += 1;
                assert_names_input(e);
            }
        }
        events.push(format!("{ev:?}"));
    };
    let result = if pipelined {
        scanner.scan_reader_pipelined(input, SOURCE, on_event)
    } else {
        scanner.scan_reader(input, SOURCE, on_event)
    };
    if let Err(e) = &result {
        assert_names_input(e);
    }
    let stats = scanner.stats().clone();
    check_stats(&stats, &counts, &result);
    Outcome {
        events,
        result: result.map_err(|e| e.to_string()),
        stats,
    }
}

fn assert_names_input(e: &ReadError) {
    let msg = e.to_string();
    assert!(
        msg.starts_with(SOURCE),
        "error does not name its input: {msg}"
    );
}

/// The counters reconcile with what was reported and with each other.
fn check_stats(s: &ScanStats, c: &Counts, result: &Result<InputReport, ReadError>) {
    assert_eq!(s.files + s.input_errors, 1, "{s:?}");
    assert_eq!(s.input_errors, u64::from(result.is_err()), "{s:?}");
    assert_eq!(s.total_findings(), c.findings, "{s:?}");
    assert_eq!(s.managed, c.managed, "{s:?}");
    assert_eq!(s.record_errors, c.record_errors, "{s:?}");
    let exempt =
        s.changes_by_deployment + s.changes_by_aws_service + s.selector_changes_keeping_coverage;
    assert_eq!(
        s.governed + s.control_plane,
        s.managed + s.total_findings() + exempt,
        "{s:?}"
    );
    assert!(
        s.trail_changes <= s.control_plane + s.not_governed + s.duplicates,
        "{s:?}"
    );
    // Every counted record ends in exactly one bucket, or as a record error
    // (lookup-events entries can fail before they are counted as records).
    let classified =
        s.governed + s.control_plane + s.not_governed + s.duplicates + s.skipped_insight_records;
    assert!(classified <= s.records, "{s:?}");
    assert!(s.records - classified <= s.record_errors, "{s:?}");
    if let Ok(report) = result {
        assert_eq!(report.records, s.records, "{s:?} {report:?}");
        assert_eq!(report.record_errors, s.record_errors, "{s:?} {report:?}");
        assert_eq!(report.bytes, s.bytes, "{s:?} {report:?}");
        assert_eq!(
            report.digest,
            s.skipped_digest_files > 0,
            "{s:?} {report:?}"
        );
    }
}

/// Gzip `data` as one member.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("writing to a Vec");
    enc.finish().expect("writing to a Vec")
}

/// Small limits, so that the record and input caps are reachable with
/// fuzzer-sized inputs.
pub fn tiny_limits() -> ScanOptions {
    ScanOptions {
        max_record_bytes: 300,
        max_input_bytes: 3000,
    }
}

/// The events and input ends of a multi-input scan, in order, and its counts.
type Delivered = (Vec<String>, ScanStats);

/// `data` cut into two or three inputs, at places that depend on the data.
pub fn pieces(data: &[u8]) -> Vec<&[u8]> {
    let n = data.len();
    let a = n * usize::from(data.first().copied().unwrap_or(0) % 4 + 1) / 8;
    let b = (a + n / 3).min(n);
    if data.len() % 2 == 0 {
        vec![&data[..a], &data[a..]]
    } else {
        vec![&data[..a], &data[a..b], &data[b..]]
    }
}

/// Read `inputs` one after another with `scan_reader`.
pub fn scan_serially(inputs: &[&[u8]]) -> Delivered {
    let mut scanner = Scanner::new(classifier(), ScanOptions::default());
    let mut out = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let source = format!("{SOURCE}#{i}");
        let result = scanner.scan_reader(*input, &source, |ev| out.push(format!("{ev:?}")));
        out.push(format!(
            "done {source}: {:?}",
            result.map_err(|e| e.to_string())
        ));
    }
    (out, scanner.stats().clone())
}

/// Read `inputs` with `Scanner::scan_inputs`, `threads` at a time.
pub fn scan_in_parallel(inputs: &[&[u8]], threads: usize) -> Delivered {
    let mut scanner = Scanner::new(classifier(), ScanOptions::default());
    let mut out = Vec::new();
    scanner.scan_inputs::<()>(
        threads,
        |emit| {
            for (i, input) in inputs.iter().enumerate() {
                let input: &[u8] = input;
                emit(Job::Input(Input {
                    source: format!("{SOURCE}#{i}"),
                    open: Box::new(move || Ok(Box::new(input) as Box<dyn Read + Send>)),
                    // The first alone in its batch, the others together.
                    size: Some(if i == 0 { u64::MAX } else { input.len() as u64 }),
                }));
            }
        },
        |d| match d {
            Delivery::Event(ev) => out.push(format!("{ev:?}")),
            Delivery::Done { source, result } => {
                out.push(format!(
                    "done {source}: {:?}",
                    result.map_err(|e| e.to_string())
                ));
            }
            Delivery::Note(()) => {}
        },
    );
    (out, scanner.stats().clone())
}

/// The full parse: each record of `items` classified from its parsed
/// value, with no splitter, skip or prefilter. `None` when a record is
/// unreadable that way.
pub fn scan_values(items: &[serde_json::Value]) -> Option<Vec<String>> {
    let mut scanner = Scanner::new(classifier(), ScanOptions::default());
    let mut events = Vec::new();
    for item in items {
        scanner
            .scan_value(item, SOURCE, |ev| events.push(format!("{ev:?}")))
            .ok()?;
    }
    Some(events)
}
