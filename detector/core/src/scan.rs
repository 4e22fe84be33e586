//! The scanner: the reader and the classifier put together, with the
//! counting and the de-duplication by `eventID` that `detector scan` and the
//! detector Lambda both need.

use crate::classify::{
    Classification, Classifier, Finding, GovernedCall, Kind, Rule, TRAIL_CHANGE_EVENTS,
    TrailChange, kind_of,
};
use crate::reader::{RawItem, ReadError, RecordError, ScanOptions, Sink, split, split_pipelined};
use crate::record::{Field, Record};
use memchr::memmem::Finder;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::io::Read;

/// Counts over everything a [`Scanner`] has read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScanStats {
    /// Inputs read to the end (with or without bad records).
    pub files: u64,
    /// Records read, including skipped Insight records.
    pub records: u64,
    /// Uncompressed bytes read.
    pub bytes: u64,
    /// Governed MicroVM calls (managed + findings), duplicates excluded.
    pub governed: u64,
    pub managed: u64,
    pub not_governed: u64,
    /// Findings by rule.
    pub findings: BTreeMap<Rule, u64>,
    /// Governed records seen again under an `eventID` already reported.
    pub duplicates: u64,
    pub trail_changes: u64,
    pub skipped_digest_files: u64,
    pub skipped_insight_records: u64,
    /// Inputs that could not be read to the end.
    pub input_errors: u64,
    /// Records that could not be read (the input was still read on).
    pub record_errors: u64,
}

impl ScanStats {
    pub fn total_findings(&self) -> u64 {
        self.findings.values().sum()
    }
    pub fn errors(&self) -> u64 {
        self.input_errors + self.record_errors
    }
}

/// What the scanner reports, record by record.
#[derive(Debug)]
pub enum ScanEvent {
    /// A bypass (never a duplicate within this scanner).
    Finding(Finding),
    /// A governed call by the launcher (check it against the ledger).
    Managed(GovernedCall),
    TrailChange(TrailChange),
    /// A record that could not be read; the input goes on. A caller that
    /// must fail closed (the Lambda) treats this as a failure of the input.
    RecordError(ReadError),
}

/// What one input held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputReport {
    pub records: u64,
    pub record_errors: u64,
    pub bytes: u64,
    /// The input was a CloudTrail digest file (skipped).
    pub digest: bool,
}

/// Cheap test run on every record's bytes before any parsing: a record that
/// passes none of these cannot be a governed call, a trail change or an
/// Insight record. `\u` catches names written with JSON unicode escapes.
/// `cloudtrail.amazonaws.com` alone is not enough to parse a record: half of
/// a busy trail is CloudTrail's own S3 deliveries (`invokedBy`), so a trail
/// change must also carry one of the [`TRAIL_CHANGE_EVENTS`] names.
struct Prefilter {
    any: [Finder<'static>; 3],
    cloudtrail: Finder<'static>,
    trail_changes: Vec<Finder<'static>>,
}

impl Prefilter {
    fn new() -> Prefilter {
        Prefilter {
            any: [
                Finder::new(b"Microvm"),
                Finder::new(b"AwsCloudTrailInsight"),
                Finder::new(b"\\u"),
            ],
            cloudtrail: Finder::new(b"cloudtrail.amazonaws.com"),
            trail_changes: TRAIL_CHANGE_EVENTS
                .iter()
                .map(|name| Finder::new(name.as_bytes()))
                .collect(),
        }
    }
    fn candidate(&self, record: &[u8]) -> bool {
        self.any.iter().any(|f| f.find(record).is_some())
            || (self.cloudtrail.find(record).is_some()
                && self.trail_changes.iter().any(|f| f.find(record).is_some()))
    }
}

/// Scans inputs with one classifier, de-duplicating governed records by
/// `eventID` across every input it reads.
///
/// ```
/// use detector_core::{ClassifierConfig, Classifier, ScanEvent, ScanOptions, Scanner};
/// use shared_core::RoleRef;
///
/// let cfg = ClassifierConfig {
///     launcher_roles: vec![RoleRef::from_role_arn("arn:aws:iam::111122223333:role/launcher").unwrap()],
///     launcher_session_names: vec![],
/// };
/// let mut scanner = Scanner::new(Classifier::new(cfg), ScanOptions::default());
/// let log = br#"{"Records":[{"eventID":"e1","eventSource":"lambda.amazonaws.com",
///   "eventName":"TerminateMicrovm","userIdentity":{"type":"IAMUser",
///   "arn":"arn:aws:iam::111122223333:user/alice"},"requestParameters":{"microvmIdentifier":"vm-1"}}]}"#;
/// let mut findings = Vec::new();
/// scanner
///     .scan_reader(&log[..], "example.json", |ev| {
///         if let ScanEvent::Finding(f) = ev {
///             findings.push(f);
///         }
///     })
///     .unwrap();
/// assert_eq!(findings[0].rule.as_str(), "non-launcher-principal");
/// assert_eq!(findings[0].microvm_id.as_deref(), Some("vm-1"));
/// assert_eq!(scanner.stats().records, 1);
/// ```
pub struct Scanner {
    classifier: Classifier,
    opts: ScanOptions,
    prefilter: Prefilter,
    seen: HashSet<String>,
    stats: ScanStats,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("classifier", &self.classifier)
            .field("opts", &self.opts)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct LookupEvent<'a> {
    /// Lenient, so that a value of the wrong type is named, not a serde error.
    #[serde(borrow, default, rename = "CloudTrailEvent")]
    cloudtrail_event: Field<'a>,
}

struct ScanSink<'s, F> {
    classifier: &'s Classifier,
    prefilter: &'s Prefilter,
    seen: &'s mut HashSet<String>,
    stats: &'s mut ScanStats,
    report: InputReport,
    source: &'s str,
    on_event: F,
}

impl<F: FnMut(ScanEvent)> ScanSink<'_, F> {
    fn record(&mut self, bytes: &[u8], prefiltered: bool) -> Result<(), RecordError> {
        self.stats.records += 1;
        self.report.records += 1;
        if prefiltered && !self.prefilter.candidate(bytes) {
            self.stats.not_governed += 1;
            return Ok(());
        }
        let record = Record::from_slice(bytes).map_err(RecordError::Json)?;
        classify_into(
            self.classifier,
            &record,
            self.source,
            self.seen,
            self.stats,
            &mut self.on_event,
        )
    }
}

/// Shared by streamed records and single JSON values.
fn classify_into(
    classifier: &Classifier,
    record: &Record<'_>,
    source: &str,
    seen: &mut HashSet<String>,
    stats: &mut ScanStats,
    on_event: &mut dyn FnMut(ScanEvent),
) -> Result<(), RecordError> {
    let kind = kind_of(record);
    record
        .check_types(kind != Kind::Other)
        .map_err(RecordError::FieldType)?;
    if record.is_insight() {
        stats.skipped_insight_records += 1;
        return Ok(());
    }
    if let (Kind::Governed(_), Some(id)) = (kind, record.event_id.as_str())
        && !seen.insert(id.to_string())
    {
        stats.duplicates += 1;
        return Ok(());
    }
    match classifier.classify(record, source) {
        Classification::NotGoverned => stats.not_governed += 1,
        Classification::Managed(call) => {
            stats.governed += 1;
            stats.managed += 1;
            on_event(ScanEvent::Managed(call));
        }
        Classification::Bypass(finding) => {
            stats.governed += 1;
            *stats.findings.entry(finding.rule).or_default() += 1;
            on_event(ScanEvent::Finding(finding));
        }
        Classification::TrailChange(change) => {
            stats.not_governed += 1;
            stats.trail_changes += 1;
            on_event(ScanEvent::TrailChange(change));
        }
    }
    Ok(())
}

impl<F: FnMut(ScanEvent)> Sink for ScanSink<'_, F> {
    fn item(&mut self, item: RawItem<'_>) -> Result<(), RecordError> {
        match item {
            RawItem::Record(bytes) => self.record(bytes, true),
            RawItem::LookupEvent(bytes) => {
                let ev: LookupEvent<'_> =
                    serde_json::from_slice(bytes).map_err(RecordError::Json)?;
                let inner = match ev.cloudtrail_event {
                    Field::Str(s) => s,
                    Field::Wrong(found) => return Err(RecordError::CloudTrailEventType { found }),
                    Field::Missing | Field::Null => return Err(RecordError::NoCloudTrailEvent),
                };
                // Positions in a serde error are inside the string: say so.
                self.record(inner.as_bytes(), false).map_err(|e| match e {
                    RecordError::Json(e) => RecordError::CloudTrailEventJson(e),
                    other => other,
                })
            }
            RawItem::Digest => {
                self.report.digest = true;
                self.stats.skipped_digest_files += 1;
                Ok(())
            }
        }
    }

    fn record_error(&mut self, err: ReadError) {
        self.stats.record_errors += 1;
        self.report.record_errors += 1;
        (self.on_event)(ScanEvent::RecordError(err));
    }
}

impl Scanner {
    pub fn new(classifier: Classifier, opts: ScanOptions) -> Scanner {
        Scanner {
            classifier,
            opts,
            prefilter: Prefilter::new(),
            seen: HashSet::new(),
            stats: ScanStats::default(),
        }
    }

    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    pub fn stats(&self) -> &ScanStats {
        &self.stats
    }

    /// Read one input to its end (any shape, plain or gzip), calling
    /// `on_event` for every finding, managed call, trail change and bad
    /// record. `source` names the input in findings and errors. An `Err`
    /// means the input could not be read to the end (events already passed
    /// to `on_event` stand); it is counted in `input_errors`. Runs on the
    /// calling thread only; see [`Scanner::scan_reader_pipelined`].
    pub fn scan_reader<R: Read>(
        &mut self,
        input: R,
        source: &str,
        on_event: impl FnMut(ScanEvent),
    ) -> Result<InputReport, ReadError> {
        self.scan_with(source, on_event, |name, opts, sink| {
            split(input, name, opts, sink)
        })
    }

    /// Same as [`Scanner::scan_reader`], but a gzip input is decompressed on
    /// a second (scoped) thread while the calling thread splits and
    /// classifies: about twice the throughput on two cores, with a few
    /// 512 KiB chunks more in memory. Results are identical.
    pub fn scan_reader_pipelined<R: Read + Send>(
        &mut self,
        input: R,
        source: &str,
        on_event: impl FnMut(ScanEvent),
    ) -> Result<InputReport, ReadError> {
        self.scan_with(source, on_event, |name, opts, sink| {
            split_pipelined(input, name, opts, sink)
        })
    }

    fn scan_with(
        &mut self,
        source: &str,
        on_event: impl FnMut(ScanEvent),
        split_fn: impl FnOnce(&str, &ScanOptions, &mut dyn Sink) -> Result<u64, ReadError>,
    ) -> Result<InputReport, ReadError> {
        let mut sink = ScanSink {
            classifier: &self.classifier,
            prefilter: &self.prefilter,
            seen: &mut self.seen,
            stats: &mut self.stats,
            report: InputReport::default(),
            source,
            on_event,
        };
        match split_fn(source, &self.opts, &mut sink) {
            Ok(bytes) => {
                let mut report = sink.report;
                report.bytes = bytes;
                self.stats.files += 1;
                self.stats.bytes += bytes;
                Ok(report)
            }
            Err(e) => {
                self.stats.input_errors += 1;
                Err(e)
            }
        }
    }

    /// Classify one record given as a JSON value (an EventBridge `detail`),
    /// with the same counting and de-duplication as a streamed record.
    pub fn scan_value(
        &mut self,
        record: &serde_json::Value,
        source: &str,
        mut on_event: impl FnMut(ScanEvent),
    ) -> Result<(), RecordError> {
        self.stats.records += 1;
        let r = Record::from_value(record).map_err(RecordError::Json);
        let res = r.and_then(|r| {
            classify_into(
                &self.classifier,
                &r,
                source,
                &mut self.seen,
                &mut self.stats,
                &mut on_event,
            )
        });
        if res.is_err() {
            self.stats.record_errors += 1;
        }
        res
    }
}
