//! The scanner: the reader and the classifier put together, with the
//! counting and the de-duplication by `eventID` that `detector scan` and the
//! detector Lambda both need.

use crate::classify::tamper::trail::EVENTS as TRAIL_CHANGE_EVENTS;
use crate::classify::{
    Classification, Classifier, ClassifierConfig, Exemption, GovernedCall, Kind, kind_of,
};
use crate::finding::{Finding, Rule};
use crate::reader::{RawItem, ReadError, RecordError, ScanOptions, Sink, split, split_pipelined};
use crate::record::{Field, Record};
use aho_corasick::AhoCorasick;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::io::Read;

/// Counts over everything a [`Scanner`] has read. Every record lands in
/// exactly one of `governed`, `control_plane`, `not_governed`,
/// `skipped_insight_records`, `duplicates` and `record_errors`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScanStats {
    /// Inputs read to the end (with or without bad records).
    pub files: u64,
    /// Records read, including skipped Insight records.
    pub records: u64,
    /// Uncompressed bytes read.
    pub bytes: u64,
    /// Governed MicroVM calls (managed + bypass findings), duplicates excluded.
    pub governed: u64,
    pub managed: u64,
    /// Records a tamper rule matched (findings and exempt changes).
    pub control_plane: u64,
    pub not_governed: u64,
    /// Findings by rule.
    pub findings: BTreeMap<Rule, u64>,
    /// Changes a tamper rule matched, made by a deployment role (not reported).
    pub changes_by_deployment: u64,
    /// Changes a tamper rule matched, made by an AWS service (not reported).
    pub changes_by_aws_service: u64,
    /// PutEventSelectors calls whose selectors still log every governed call.
    pub selector_changes_keeping_coverage: u64,
    /// Records seen again under an `eventID` already classified.
    pub duplicates: u64,
    /// CloudTrail StopLogging / DeleteTrail / UpdateTrail / PutEventSelectors
    /// records seen (findings or not).
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
    /// A finding (never a duplicate within this scanner).
    Finding(Finding),
    /// A governed call by the launcher (check it against the ledger).
    Managed(GovernedCall),
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

/// Cheap test run on every record's bytes before any parsing: a record
/// that contains none of these needles cannot match any rule, so it is not
/// parsed at all.
///
/// - `Microvm` (governed calls), `AwsCloudTrailInsight` (Insight records are
///   counted), and the JSON escapes `\u` and `\/` (a name written with
///   escapes would hide from the other needles);
/// - `cloudtrail.amazonaws.com` together with a trail-change operation name
///   (half of a busy trail is CloudTrail's own S3 deliveries, which name the
///   service but never these operations);
/// - every configured name a tamper rule matches on: the launcher roles,
///   the launcher and detector functions, the protected resources and the
///   ledger tables. A record can only name one of them if its bytes hold it.
struct Prefilter {
    ac: AhoCorasick,
    /// Patterns `0..any` alone make a record a candidate.
    any: usize,
    /// Pattern `any` is `cloudtrail.amazonaws.com`; the rest are trail-change names.
    cloudtrail: usize,
}

impl Prefilter {
    fn new(cfg: &ClassifierConfig) -> Prefilter {
        let mut any: Vec<String> = ["Microvm", "AwsCloudTrailInsight", "\\u", "\\/"]
            .map(str::to_string)
            .to_vec();
        let t = &cfg.tamper;
        any.extend(cfg.launcher_roles.iter().map(|r| r.name.clone()));
        any.extend(
            t.launcher_functions
                .iter()
                .chain(&t.detector_functions)
                .map(|f| f.name.clone()),
        );
        any.extend(
            t.protected_resources
                .iter()
                .chain(&t.ledger_tables)
                .map(|r| r.needle().to_string()),
        );
        any.retain(|n| !n.is_empty());
        any.sort();
        any.dedup();
        let n_any = any.len();
        let mut patterns = any;
        patterns.push("cloudtrail.amazonaws.com".to_string());
        patterns.extend(TRAIL_CHANGE_EVENTS.iter().map(|s| s.to_string()));
        Prefilter {
            ac: AhoCorasick::new(&patterns).expect("the prefilter's needles are plain strings"),
            any: n_any,
            cloudtrail: n_any,
        }
    }

    fn candidate(&self, record: &[u8]) -> bool {
        let (mut service, mut operation) = (false, false);
        for m in self.ac.find_overlapping_iter(record) {
            let p = m.pattern().as_usize();
            if p < self.any {
                return true;
            }
            if p == self.cloudtrail {
                service = true;
            } else {
                operation = true;
            }
            if service && operation {
                return true;
            }
        }
        false
    }
}

/// Scans inputs with one classifier, de-duplicating the records any rule
/// looks at by `eventID` across every input it reads.
///
/// ```
/// use detector_core::{ClassifierConfig, Classifier, ScanEvent, ScanOptions, Scanner};
/// use shared_core::RoleRef;
///
/// let cfg = ClassifierConfig {
///     launcher_roles: vec![RoleRef::from_role_arn("arn:aws:iam::111122223333:role/launcher").unwrap()],
///     ..ClassifierConfig::default()
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
            || serde_json::from_slice(bytes).map(Cow::Owned),
        )
    }
}

/// Shared by streamed records and single JSON values. `whole` gives the
/// record as a JSON value when a tamper rule must look into it.
fn classify_into<'w>(
    classifier: &Classifier,
    record: &Record<'_>,
    source: &str,
    seen: &mut HashSet<String>,
    stats: &mut ScanStats,
    on_event: &mut dyn FnMut(ScanEvent),
    whole: impl FnOnce() -> Result<Cow<'w, serde_json::Value>, serde_json::Error>,
) -> Result<(), RecordError> {
    let kind = kind_of(record, classifier.config());
    record
        .check_types(kind != Kind::Other)
        .map_err(RecordError::FieldType)?;
    if record.is_insight() {
        stats.skipped_insight_records += 1;
        return Ok(());
    }
    if kind == Kind::Management
        && record.event_source.as_str() == Some("cloudtrail.amazonaws.com")
        && record.event_name.as_str().is_some_and(|n| {
            TRAIL_CHANGE_EVENTS.contains(&shared_core::ops::normalise_event_name(n))
        })
    {
        stats.trail_changes += 1;
    }
    let classification = classifier
        .classify(record, source, whole)
        .map_err(RecordError::Json)?;
    // A record that yields a finding or a managed call is reported once per
    // eventID, whatever file or path delivers it again.
    let mut first_time = || {
        record
            .event_id
            .as_str()
            .is_none_or(|id| seen.insert(id.to_string()))
    };
    match classification {
        Classification::NotGoverned => stats.not_governed += 1,
        Classification::Managed(_) | Classification::Finding(_) if !first_time() => {
            stats.duplicates += 1;
        }
        Classification::Managed(call) => {
            stats.governed += 1;
            stats.managed += 1;
            on_event(ScanEvent::Managed(call));
        }
        Classification::Finding(finding) => {
            if matches!(kind, Kind::Governed(_)) {
                stats.governed += 1;
            } else {
                stats.control_plane += 1;
            }
            *stats.findings.entry(finding.rule).or_default() += 1;
            on_event(ScanEvent::Finding(finding));
        }
        Classification::Exempt { why, .. } => {
            stats.control_plane += 1;
            match why {
                Exemption::Deployment => stats.changes_by_deployment += 1,
                Exemption::AwsService => stats.changes_by_aws_service += 1,
                Exemption::CoverageKept => stats.selector_changes_keeping_coverage += 1,
            }
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
        let prefilter = Prefilter::new(classifier.config());
        Scanner {
            classifier,
            opts,
            prefilter,
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
    /// `on_event` for every finding, managed call and bad record. `source` names the input in findings and errors. An `Err`
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
                || Ok(Cow::Borrowed(record)),
            )
        });
        if res.is_err() {
            self.stats.record_errors += 1;
        }
        res
    }
}
