//! The scanner: the reader and the classifier put together, with the
//! counting and the de-duplication by `eventID` that `detector scan` and the
//! detector Lambda both need.

use crate::classify::tamper::trail::EVENTS as TRAIL_CHANGE_EVENTS;
use crate::classify::{Classification, Classifier, Exemption, GovernedCall, Kind, kind_of};
use crate::finding::{Finding, Rule};
use crate::prefilter::Prefilter;
use crate::reader::{
    Buffers, RawItem, ReadError, RecordError, ScanOptions, Sink, split, split_pipelined,
};
use crate::record::{Field, Record};
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
    /// Top-level JSON objects that are not CloudTrail (a Config snapshot, a
    /// stray file), skipped.
    pub not_cloudtrail: u64,
    /// Inputs that could not be read to the end.
    pub input_errors: u64,
    /// Records that could not be read (the input was still read on).
    pub record_errors: u64,
}

impl ScanStats {
    /// Add the counts of `other` (an input read on another thread) to these.
    pub(crate) fn add(&mut self, other: &ScanStats) {
        // Destructured, so that a counter added later cannot be forgotten here.
        let ScanStats {
            files,
            records,
            bytes,
            governed,
            managed,
            control_plane,
            not_governed,
            findings,
            changes_by_deployment,
            changes_by_aws_service,
            selector_changes_keeping_coverage,
            duplicates,
            trail_changes,
            skipped_digest_files,
            skipped_insight_records,
            not_cloudtrail,
            input_errors,
            record_errors,
        } = other;
        self.files += files;
        self.records += records;
        self.bytes += bytes;
        self.governed += governed;
        self.managed += managed;
        self.control_plane += control_plane;
        self.not_governed += not_governed;
        for (rule, n) in findings {
            *self.findings.entry(*rule).or_default() += n;
        }
        self.changes_by_deployment += changes_by_deployment;
        self.changes_by_aws_service += changes_by_aws_service;
        self.selector_changes_keeping_coverage += selector_changes_keeping_coverage;
        self.duplicates += duplicates;
        self.trail_changes += trail_changes;
        self.skipped_digest_files += skipped_digest_files;
        self.skipped_insight_records += skipped_insight_records;
        self.not_cloudtrail += not_cloudtrail;
        self.input_errors += input_errors;
        self.record_errors += record_errors;
    }

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
    /// Top-level JSON objects in it that are not CloudTrail (skipped).
    pub not_cloudtrail: u64,
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
    /// The reader's buffers, kept from one input to the next.
    buf: Buffers,
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

/// Where a [`ScanSink`] sends what it found: straight to the caller, with
/// de-duplication against everything scanned so far ([`Immediate`]), or to
/// the thread that merges parallel inputs in order ([`crate::parallel`]).
pub(crate) trait Commit {
    /// A managed call or finding, not yet de-duplicated.
    fn report(&mut self, pending: Pending, stats: &mut ScanStats);
    /// A record that could not be read (already counted).
    fn record_error(&mut self, err: ReadError);
}

/// A managed call or finding before de-duplication by `eventID`: it is
/// reported, and counted, only the first time its `eventID` is seen.
#[derive(Debug)]
pub(crate) struct Pending {
    event_id: Option<String>,
    /// A governed MicroVM call (else a change to the control plane).
    governed: bool,
    /// [`ScanEvent::Finding`] or [`ScanEvent::Managed`].
    event: ScanEvent,
}

/// Count `pending` and hand it on, unless its `eventID` was seen before (in
/// any input read earlier, or earlier in this one).
pub(crate) fn commit(
    pending: Pending,
    seen: &mut HashSet<String>,
    stats: &mut ScanStats,
    on_event: &mut dyn FnMut(ScanEvent),
) {
    if let Some(id) = pending.event_id
        && !seen.insert(id)
    {
        stats.duplicates += 1;
        return;
    }
    match &pending.event {
        ScanEvent::Managed(_) => {
            stats.governed += 1;
            stats.managed += 1;
        }
        ScanEvent::Finding(f) => {
            if pending.governed {
                stats.governed += 1;
            } else {
                stats.control_plane += 1;
            }
            *stats.findings.entry(f.rule).or_default() += 1;
        }
        ScanEvent::RecordError(_) => {}
    }
    on_event(pending.event);
}

/// De-duplicates at once against the scanner's own set (serial scans).
pub(crate) struct Immediate<'s, F> {
    pub seen: &'s mut HashSet<String>,
    pub on_event: F,
}

impl<F: FnMut(ScanEvent)> Commit for Immediate<'_, F> {
    fn report(&mut self, pending: Pending, stats: &mut ScanStats) {
        commit(pending, self.seen, stats, &mut self.on_event);
    }
    fn record_error(&mut self, err: ReadError) {
        (self.on_event)(ScanEvent::RecordError(err));
    }
}

/// What reading one input needs from a scanner, shared by every thread that
/// reads inputs.
#[derive(Clone, Copy)]
pub(crate) struct Parts<'s> {
    pub classifier: &'s Classifier,
    pub prefilter: &'s Prefilter,
    pub opts: &'s ScanOptions,
}

pub(crate) struct ScanSink<'s, C> {
    classifier: &'s Classifier,
    prefilter: &'s Prefilter,
    stats: &'s mut ScanStats,
    report: InputReport,
    source: &'s str,
    commit: C,
}

impl<C: Commit> ScanSink<'_, C> {
    /// `escapes`: whether the record holds a `\\u` or `\\/` escape, when
    /// the reader could tell; `None` parses it whatever it holds.
    fn record(&mut self, bytes: &[u8], escapes: Option<bool>) -> Result<(), RecordError> {
        self.stats.records += 1;
        self.report.records += 1;
        if let Some(escapes) = escapes
            && !self.prefilter.candidate(bytes, escapes)
        {
            self.stats.not_governed += 1;
            return Ok(());
        }
        let record = Record::from_slice(bytes).map_err(RecordError::Json)?;
        let pending = classify_record(self.classifier, &record, self.source, self.stats, || {
            serde_json::from_slice(bytes).map(Cow::Owned)
        })?;
        if let Some(p) = pending {
            self.commit.report(p, self.stats);
        }
        Ok(())
    }
}

/// Classify one record, counting everything that does not depend on
/// de-duplication; a managed call or finding comes back as [`Pending`].
/// Shared by streamed records and single JSON values. `whole` gives the
/// record as a JSON value when a tamper rule must look into it.
fn classify_record<'w>(
    classifier: &Classifier,
    record: &Record<'_>,
    source: &str,
    stats: &mut ScanStats,
    whole: impl FnOnce() -> Result<Cow<'w, serde_json::Value>, serde_json::Error>,
) -> Result<Option<Pending>, RecordError> {
    let kind = kind_of(record, classifier.config());
    record
        .check_types(kind != Kind::Other)
        .map_err(RecordError::FieldType)?;
    if record.is_insight() {
        stats.skipped_insight_records += 1;
        return Ok(None);
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
    let event_id = || record.event_id.as_str().map(str::to_string);
    Ok(match classification {
        Classification::NotGoverned => {
            stats.not_governed += 1;
            None
        }
        Classification::Managed(call) => Some(Pending {
            event_id: event_id(),
            governed: true,
            event: ScanEvent::Managed(call),
        }),
        Classification::Finding(finding) => Some(Pending {
            event_id: event_id(),
            governed: matches!(kind, Kind::Governed(_)),
            event: ScanEvent::Finding(finding),
        }),
        Classification::Exempt { why, .. } => {
            stats.control_plane += 1;
            match why {
                Exemption::Deployment => stats.changes_by_deployment += 1,
                Exemption::AwsService => stats.changes_by_aws_service += 1,
                Exemption::CoverageKept => stats.selector_changes_keeping_coverage += 1,
            }
            None
        }
    })
}

impl<C: Commit> Sink for ScanSink<'_, C> {
    fn item(&mut self, item: RawItem<'_>) -> Result<(), RecordError> {
        match item {
            RawItem::Record { bytes, escapes } => self.record(bytes, Some(escapes)),
            RawItem::LookupEvent(bytes) => {
                let ev: LookupEvent<'_> =
                    serde_json::from_slice(bytes).map_err(RecordError::Json)?;
                let inner = match ev.cloudtrail_event {
                    Field::Str(s) => s,
                    Field::Wrong(found) => return Err(RecordError::CloudTrailEventType { found }),
                    Field::Missing | Field::Null => return Err(RecordError::NoCloudTrailEvent),
                };
                // Positions in a serde error are inside the string: say so.
                self.record(inner.as_bytes(), None).map_err(|e| match e {
                    RecordError::Json(e) => RecordError::CloudTrailEventJson(e),
                    other => other,
                })
            }
            RawItem::Digest => {
                self.report.digest = true;
                self.stats.skipped_digest_files += 1;
                Ok(())
            }
            RawItem::NotCloudTrail => {
                self.report.not_cloudtrail += 1;
                self.stats.not_cloudtrail += 1;
                Ok(())
            }
        }
    }

    fn record_error(&mut self, err: ReadError) {
        self.stats.record_errors += 1;
        self.report.record_errors += 1;
        self.commit.record_error(err);
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
            buf: Buffers::default(),
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
        self.scan_with(source, on_event, |name, opts, sink, buf| {
            split(input, name, opts, sink, buf)
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
        self.scan_with(source, on_event, |name, opts, sink, buf| {
            split_pipelined(input, name, opts, sink, buf)
        })
    }

    fn scan_with(
        &mut self,
        source: &str,
        on_event: impl FnMut(ScanEvent),
        split_fn: impl FnOnce(&str, &ScanOptions, &mut dyn Sink, &mut Buffers) -> Result<u64, ReadError>,
    ) -> Result<InputReport, ReadError> {
        let parts = Parts {
            classifier: &self.classifier,
            prefilter: &self.prefilter,
            opts: &self.opts,
        };
        let commit = Immediate {
            seen: &mut self.seen,
            on_event,
        };
        let buf = &mut self.buf;
        read_input(
            parts,
            &mut self.stats,
            source,
            commit,
            |name, opts, sink| split_fn(name, opts, sink, buf),
        )
    }

    /// The parts every thread reading an input shares; the state the thread
    /// merging their results updates; this thread's reader buffer.
    pub(crate) fn split_parts(
        &mut self,
    ) -> (
        Parts<'_>,
        &mut HashSet<String>,
        &mut ScanStats,
        &mut Buffers,
    ) {
        (
            Parts {
                classifier: &self.classifier,
                prefilter: &self.prefilter,
                opts: &self.opts,
            },
            &mut self.seen,
            &mut self.stats,
            &mut self.buf,
        )
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
            classify_record(&self.classifier, &r, source, &mut self.stats, || {
                Ok(Cow::Borrowed(record))
            })
        });
        match res {
            Ok(pending) => {
                if let Some(p) = pending {
                    commit(p, &mut self.seen, &mut self.stats, &mut on_event);
                }
                Ok(())
            }
            Err(e) => {
                self.stats.record_errors += 1;
                Err(e)
            }
        }
    }
}

/// Read one input to its end through `split_fn`, counting into `stats` and
/// handing what it finds to `commit`. An input that cannot be read to the
/// end is counted in `input_errors`.
pub(crate) fn read_input<C: Commit>(
    parts: Parts<'_>,
    stats: &mut ScanStats,
    source: &str,
    commit: C,
    split_fn: impl FnOnce(&str, &ScanOptions, &mut dyn Sink) -> Result<u64, ReadError>,
) -> Result<InputReport, ReadError> {
    let mut sink = ScanSink {
        classifier: parts.classifier,
        prefilter: parts.prefilter,
        stats,
        report: InputReport::default(),
        source,
        commit,
    };
    match split_fn(source, parts.opts, &mut sink) {
        Ok(bytes) => {
            let mut report = sink.report;
            report.bytes = bytes;
            sink.stats.files += 1;
            sink.stats.bytes += bytes;
            Ok(report)
        }
        Err(e) => {
            sink.stats.input_errors += 1;
            Err(e)
        }
    }
}
