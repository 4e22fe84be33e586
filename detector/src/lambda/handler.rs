//! The detector Lambda's handler: decode the invocation, run each trigger
//! through the core, raise findings, and answer.
//!
//! - SQS batch: each message on its own; the answer lists exactly the failed
//!   messages in `batchItemFailures` (retry, then DLQ). A message fails when
//!   its body cannot be decoded, an object cannot be read or holds an
//!   unreadable record, the ledger cannot be read, or an alert cannot be
//!   delivered. Never acknowledged silently.
//! - Any other trigger (S3, SNS, EventBridge): an error fails the invocation,
//!   so Lambda retries it.
//!
//! Objects are read by the version their notification names (S3 event
//! notifications and EventBridge carry it for a versioned bucket), so a log
//! file replaced after CloudTrail wrote it is still read as CloudTrail wrote
//! it, and the replacement is reported ([`super::versions`]).
//!
//! Objects are streamed: S3 `GetObject` body → `SyncIoBridge` → the core's
//! streaming scanner on a blocking thread, so memory is bounded by the
//! largest record, not the object.

use super::alert::Alert;
use super::alert_batch::AlertBatch;
use super::alerter::{AlertError, Alerter};
use super::counters::Counters;
use super::ports::{
    Auditor, FunctionsApi, HeartbeatStore, ObjectStore, PortError, SweepQueue, Target, TargetsApi,
    TrailsApi,
};
use super::sweep::{SweepConfig, SweepError, SweepPorts, sweep, sweep_queued_target};
use super::versions::{self, VersionCheck};
use detector_core::notification::{
    Invocation, NotificationError, ObjectKind, ObjectRef, SqsMessage, Trigger, decode_invocation,
    decode_message_body,
};
use detector_core::{
    Classifier, GovernedCall, ReadError, RecordError, Rule, ScanEvent, ScanOptions, ScanStats,
    Scanner,
};
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;

/// Everything an invocation needs, built once in `main`.
pub struct State {
    pub classifier: Classifier,
    pub scan_options: ScanOptions,
    pub objects: Arc<dyn ObjectStore>,
    /// Each account's ledger and each target's MicroVMs.
    pub targets: Arc<dyn TargetsApi>,
    /// Where the schedule hands out its targets (`SWEEP_QUEUE_URL`).
    pub sweep_queue: Option<Arc<dyn SweepQueue>>,
    pub trails: Arc<dyn TrailsApi>,
    pub auditor: Arc<dyn Auditor>,
    pub functions: Arc<dyn FunctionsApi>,
    pub heartbeat: Arc<dyn HeartbeatStore>,
    pub alerter: Alerter,
    /// The detector function's name, the dimension of its metrics.
    pub function_name: String,
    pub sweep: SweepConfig,
    /// SQS messages (and objects of one notification) in progress at once.
    pub message_concurrency: usize,
    /// Objects streamed at once (each holds its buffers, up to the record
    /// cap). Raising an object's findings does not hold a slot, so the
    /// next object is read meanwhile.
    pub read_concurrency: usize,
    /// How long the first round of findings gathers before it is raised
    /// (see [`AlertBatch::coalescing`]); zero raises it at once. Each next
    /// round holds what was found while the one before was in flight.
    pub coalesce_window: std::time::Duration,
}

/// One invocation's findings (each raised once, coalesced), its read
/// slots, and whether its heartbeat is written.
struct Run<'a> {
    batch: AlertBatch<'a>,
    reads: tokio::sync::Semaphore,
    /// The first object read to its end writes the heartbeat, while its
    /// findings are raised and the other objects are read.
    beaten: std::sync::atomic::AtomicBool,
}

#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error("cannot decode the notification: {0}")]
    Decode(#[from] NotificationError),
    #[error("s3://{bucket}/{key}: cannot read its current version: {source}")]
    Version {
        bucket: String,
        key: String,
        #[source]
        source: PortError,
    },
    #[error("s3://{bucket}/{key}: cannot open: {source}")]
    Open {
        bucket: String,
        key: String,
        #[source]
        source: PortError,
    },
    #[error("s3://{bucket}/{key}: {source}")]
    Read {
        bucket: String,
        key: String,
        #[source]
        source: ReadError,
    },
    #[error("s3://{bucket}/{key}: {count} unreadable record(s); first: {first}")]
    BadRecords {
        bucket: String,
        key: String,
        count: u64,
        first: String,
    },
    #[error("EventBridge record: {0}")]
    Record(#[source] RecordError),
    #[error("scanner task failed: {0}")]
    Task(String),
    #[error("checking launcher calls against the ledger: {0}")]
    Ledger(#[source] PortError),
    #[error(transparent)]
    Alert(#[from] AlertError),
    #[error("sweep: {0}")]
    Sweep(#[from] SweepError),
}

/// Handle one invocation payload. `Ok` carries the answer (for SQS, the
/// `batchItemFailures`).
pub async fn handle(state: &State, event: &Value) -> Result<Value, HandleError> {
    let run = Run {
        batch: AlertBatch::coalescing(&state.alerter, state.coalesce_window),
        reads: tokio::sync::Semaphore::new(state.read_concurrency.max(1)),
        beaten: std::sync::atomic::AtomicBool::new(false),
    };
    let batch = &run.batch;
    let mut counters = Counters::default();
    let decoded = decode_invocation(event);
    let label = match &decoded {
        Ok(Invocation::Sqs(_)) => "sqs",
        Ok(Invocation::Direct(t)) => match t.first() {
            Some(Trigger::Objects { .. }) => "objects",
            Some(Trigger::ApiCall(_)) => "api-call",
            Some(Trigger::Schedule) => "schedule",
            Some(Trigger::SweepTarget { .. }) => "sweep-target",
            Some(Trigger::TestEvent) => "test-event",
            Some(Trigger::Ignored(_)) | None => "ignored",
        },
        Err(_) => "undecodable",
    };
    let result = match decoded {
        Err(e) => Err(HandleError::Decode(e)),
        Ok(Invocation::Sqs(messages)) => {
            counters.messages = messages.len() as u64;
            let outcomes: Vec<(String, Counters, Result<(), HandleError>)> =
                futures::stream::iter(messages)
                    .map(|m| {
                        let run = &run;
                        async move {
                            let mut c = Counters::default();
                            let r = run_message(state, &m, run, &mut c).await;
                            (m.message_id, c, r)
                        }
                    })
                    .buffer_unordered(state.message_concurrency.max(1))
                    .collect()
                    .await;
            let mut failures = Vec::new();
            for (id, c, r) in outcomes {
                counters.add(&c);
                if let Err(e) = r {
                    state.alerter.log().line(&json!({
                        "log": "message-failed",
                        "message_id": id,
                        "error": e.to_string(),
                    }));
                    failures.push(json!({"itemIdentifier": id}));
                }
            }
            counters.messages_failed = failures.len() as u64;
            Ok(json!({"batchItemFailures": failures}))
        }
        Ok(Invocation::Direct(triggers)) => {
            let mut first_err = None;
            for t in triggers {
                if let Err(e) = run_trigger(state, t, &run, &mut counters).await {
                    log_error(state, &e);
                    first_err.get_or_insert(e);
                }
            }
            match first_err {
                Some(e) => Err(e),
                None => Ok(json!({"status": "ok"})),
            }
        }
    };
    let now = state.alerter.clock().now_epoch();
    batch.fold_into(&mut counters);
    state
        .alerter
        .log()
        .line(&counters.log_line(label, &state.function_name, now * 1000));
    result.map(|mut v| {
        if let Value::Object(m) = &mut v {
            m.insert(
                "counters".into(),
                serde_json::to_value(&counters).unwrap_or_default(),
            );
        }
        v
    })
}

fn log_error(state: &State, e: &HandleError) {
    let mut line = json!({"log": "error", "error": e.to_string()});
    if let HandleError::Open { bucket, key, .. }
    | HandleError::Version { bucket, key, .. }
    | HandleError::Read { bucket, key, .. }
    | HandleError::BadRecords { bucket, key, .. } = e
    {
        line["bucket"] = json!(bucket);
        line["key"] = json!(key);
    }
    state.alerter.log().line(&line);
}

async fn run_message(
    state: &State,
    m: &SqsMessage,
    run: &Run<'_>,
    counters: &mut Counters,
) -> Result<(), HandleError> {
    let trigger = decode_message_body(&m.body)?;
    let r = run_trigger(state, trigger, run, counters).await;
    if let Err(e) = &r {
        log_error(state, e);
    }
    r
}

/// Run one trigger. Every object of a trigger is read even when an earlier
/// one failed; the first error is returned.
async fn run_trigger(
    state: &State,
    trigger: Trigger,
    run: &Run<'_>,
    counters: &mut Counters,
) -> Result<(), HandleError> {
    let batch = &run.batch;
    match trigger {
        Trigger::Objects {
            objects,
            ignored_records,
        } => {
            counters.s3_records_ignored += ignored_records as u64;
            let mut readable = Vec::new();
            for o in objects {
                match o.kind() {
                    ObjectKind::Digest => counters.objects_skipped_digest += 1,
                    ObjectKind::Insight => counters.objects_skipped_insight += 1,
                    ObjectKind::Folder => counters.s3_records_ignored += 1,
                    ObjectKind::NotCloudTrail => {
                        counters.objects_not_cloudtrail += 1;
                        state.alerter.log().line(&json!({
                            "log": "ignored-object",
                            "reason": "not a CloudTrail log file by its key",
                            "bucket": o.bucket,
                            "key": detector_core::text::clip(&o.key, 1024),
                        }));
                    }
                    ObjectKind::Log => readable.push(o),
                }
            }
            // Every object is read, a few at once, even when one fails; the
            // first error is returned.
            let outcomes: Vec<(Counters, Result<(), HandleError>)> =
                futures::stream::iter(readable)
                    .map(|o| async move {
                        let mut c = Counters::default();
                        let r = run_object(state, &o, run, &mut c).await;
                        (c, r)
                    })
                    .buffered(state.message_concurrency.max(1))
                    .collect()
                    .await;
            let mut first_err = None;
            for (c, r) in outcomes {
                counters.add(&c);
                if let Err(e) = r {
                    counters.objects_failed += 1;
                    if first_err.is_some() {
                        log_error(state, &e);
                    }
                    first_err.get_or_insert(e);
                }
            }
            first_err.map_or(Ok(()), Err)
        }
        Trigger::ApiCall(record) => {
            let mut scanner = Scanner::new(state.classifier.clone(), state.scan_options.clone());
            let mut events = Vec::new();
            let res = scanner.scan_value(&record, "eventbridge", |ev| events.push(ev));
            fold_stats(scanner.stats(), counters);
            let handled = handle_events(state, events, Vec::new(), batch, counters).await;
            res.map_err(HandleError::Record)?;
            handled.map(|_| ())
        }
        Trigger::Schedule => {
            sweep(&sweep_ports(state), &state.sweep, batch, counters).await?;
            Ok(())
        }
        Trigger::SweepTarget { account, region } => {
            let target = Target { account, region };
            sweep_queued_target(&sweep_ports(state), &state.sweep, &target, batch, counters)
                .await?;
            Ok(())
        }
        Trigger::TestEvent => {
            counters.notifications_ignored += 1;
            Ok(())
        }
        Trigger::Ignored(reason) => {
            counters.notifications_ignored += 1;
            state
                .alerter
                .log()
                .line(&json!({"log": "ignored", "reason": reason}));
            Ok(())
        }
    }
}

fn sweep_ports(state: &State) -> SweepPorts<'_> {
    SweepPorts {
        targets: state.targets.as_ref(),
        trails: state.trails.as_ref(),
        auditor: state.auditor.as_ref(),
        functions: state.functions.as_ref(),
        heartbeat: state.heartbeat.as_ref(),
        queue: state.sweep_queue.as_deref(),
    }
}

fn fold_stats(s: &ScanStats, c: &mut Counters) {
    c.records_in += s.records;
    c.governed += s.governed;
    c.control_plane += s.control_plane;
    c.not_governed += s.not_governed;
    c.skipped_records += s.skipped_insight_records + s.duplicates;
    c.parse_errors += s.record_errors;
    c.trail_changes += s.trail_changes;
    c.changes_by_deployment += s.changes_by_deployment;
    c.bytes_read += s.bytes;
    c.objects_skipped_digest += s.skipped_digest_files;
}

/// Stream one object through the scanner and raise what it holds.
async fn run_object(
    state: &State,
    o: &ObjectRef,
    run: &Run<'_>,
    counters: &mut Counters,
) -> Result<(), HandleError> {
    // A read slot while the object is streamed, given back before its
    // findings are raised.
    let slot = run
        .reads
        .acquire()
        .await
        .map_err(|e| HandleError::Task(e.to_string()))?;
    let body = match state
        .objects
        .open(&o.bucket, &o.key, o.version_id.as_deref())
        .await
    {
        Ok(body) => body,
        Err(source) => {
            drop(slot);
            return Err(open_failed(state, o, source, &run.batch, counters).await);
        }
    };
    let bridge = tokio_util::io::SyncIoBridge::new(body);
    let mut scanner = Scanner::new(state.classifier.clone(), state.scan_options.clone());
    let source = o.to_string();
    let (scanner, read, events) = tokio::task::spawn_blocking(move || {
        let mut events = Vec::new();
        let read = scanner.scan_reader(bridge, &source, |ev| events.push(ev));
        (scanner, read, events)
    })
    .await
    .map_err(|e| HandleError::Task(e.to_string()))?;
    fold_stats(scanner.stats(), counters);
    drop(slot);
    // The version read, against the key's current one: an overwrite is a
    // finding raised with the object's; a failed check fails the object.
    let mut extra = Vec::new();
    let checked =
        match versions::check(state.objects.as_ref(), o, state.alerter.clock().now_epoch()).await {
            Ok(VersionCheck::NotNamed) => {
                counters.objects_read_unversioned += 1;
                Ok(())
            }
            Ok(VersionCheck::Latest) => Ok(()),
            Ok(VersionCheck::Overwritten(alert)) => {
                counters.objects_overwritten += 1;
                extra.push(*alert);
                Ok(())
            }
            Ok(VersionCheck::Deleted(alert)) => {
                counters.objects_latest_deleted += 1;
                extra.push(*alert);
                Ok(())
            }
            Err(source) => Err(HandleError::Version {
                bucket: o.bucket.clone(),
                key: o.key.clone(),
                source,
            }),
        };
    // Findings read before a failure are raised anyway (de-duplication makes
    // the retry cheap); then the failure fails the message. The first object
    // read whole writes the heartbeat meanwhile.
    // Read to its end with every record readable, and a log file (not a
    // digest): what `objects_read` counts.
    let read_whole = matches!(&read, Ok(r) if !r.digest && r.record_errors == 0);
    let beat = read_whole && !run.beaten.swap(true, std::sync::atomic::Ordering::Relaxed);
    let (bad, beaten) = futures::join!(
        handle_events(state, events, extra, &run.batch, counters),
        async {
            if beat {
                Some(
                    state
                        .heartbeat
                        .beat(state.alerter.clock().now_epoch())
                        .await,
                )
            } else {
                None
            }
        }
    );
    if let Some(Err(e)) = beaten {
        counters.heartbeat_failures += 1;
        state.alerter.log().line(&json!({
            "log": "heartbeat-failed",
            "level": "ERROR",
            "error": e.to_string(),
            "consequence": "the sweep may report no-log-objects-read although objects were read",
        }));
    }
    let bad = bad?;
    checked?;
    match read {
        Err(source) => Err(HandleError::Read {
            bucket: o.bucket.clone(),
            key: o.key.clone(),
            source,
        }),
        Ok(report) if report.record_errors > 0 => Err(HandleError::BadRecords {
            bucket: o.bucket.clone(),
            key: o.key.clone(),
            count: report.record_errors,
            first: bad.unwrap_or_default(),
        }),
        Ok(report) => {
            if report.not_cloudtrail > 0 {
                counters.json_not_cloudtrail += report.not_cloudtrail;
                state.alerter.log().line(&json!({
                    "log": "error",
                    "error": format!(
                        "{o}: {} JSON object(s) that are not CloudTrail records (no eventVersion, eventSource, eventName, eventID or eventTime): skipped",
                        report.not_cloudtrail
                    ),
                }));
            }
            if read_whole {
                counters.objects_read += 1;
            }
            Ok(())
        }
    }
}

/// An object that could not be opened: when the notification named a
/// version and S3 says it is gone, the `trail-object-deleted` finding is
/// raised first; the message fails either way (retried, then kept in the
/// dead-letter queue), so nothing is dropped silently.
async fn open_failed(
    state: &State,
    o: &ObjectRef,
    source: PortError,
    batch: &AlertBatch<'_>,
    counters: &mut Counters,
) -> HandleError {
    let failed = HandleError::Open {
        bucket: o.bucket.clone(),
        key: o.key.clone(),
        source,
    };
    match versions::gone(state.objects.as_ref(), o, state.alerter.clock().now_epoch()).await {
        Ok(None) => failed,
        Ok(Some(alert)) => {
            counters.objects_version_gone += 1;
            match handle_events(state, Vec::new(), vec![alert], batch, counters).await {
                // The open failure is what the message fails with.
                Ok(_) => failed,
                Err(e) => e,
            }
        }
        Err(e) => {
            state.alerter.log().line(&json!({
                "log": "error",
                "error": format!("{o}: cannot tell whether the version named still exists: {}: {}", e.what, e.message),
            }));
            failed
        }
    }
}

/// Raise findings (`extra`: the object's own, beside its records'); check
/// launcher calls against the ledger. Returns the
/// first record error's text, if any.
async fn handle_events(
    state: &State,
    events: Vec<ScanEvent>,
    extra: Vec<Alert>,
    batch: &AlertBatch<'_>,
    counters: &mut Counters,
) -> Result<Option<String>, HandleError> {
    let mut managed: Vec<GovernedCall> = Vec::new();
    let mut first_bad = None;
    let mut first_err: Option<HandleError> = None;
    let mut alerts = extra;
    for ev in events {
        match ev {
            ScanEvent::Finding(f) => alerts.push(Alert::from_finding(f)),
            ScanEvent::Managed(call) => managed.push(call),
            ScanEvent::RecordError(e) => {
                let text = e.to_string();
                state
                    .alerter
                    .log()
                    .line(&json!({"log": "record-error", "error": text}));
                first_bad.get_or_insert(text);
            }
        }
    }
    // The ledger check first, so that every finding of the object is raised
    // in one batch.
    match check_ledger(state, managed, counters).await {
        Ok(unledgered) => alerts.extend(unledgered),
        Err(e) => {
            first_err.get_or_insert(e);
        }
    }
    let results = batch.raise_all(alerts.iter().collect()).await;
    if let Some(e) = results.into_iter().find_map(Result::err) {
        first_err.get_or_insert(e.into());
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(first_bad),
    }
}

/// Launcher-role calls whose `requestID` the ledger does not hold were made
/// with the launcher's credentials outside the launcher: their alerts. (A
/// launcher-role call without any `requestID` is already a finding of the
/// classifier.) Each call is looked up in the ledger of the account it was
/// made in (an organization trail holds every account's calls), one batched
/// read per account. A ledger that cannot be read fails the object: the
/// calls would otherwise be judged against the wrong ledger.
async fn check_ledger(
    state: &State,
    managed: Vec<GovernedCall>,
    counters: &mut Counters,
) -> Result<Vec<Alert>, HandleError> {
    if managed.is_empty() {
        return Ok(Vec::new());
    }
    counters.ledger_checked_calls += managed.len() as u64;
    let own = state.sweep.account_id.clone().unwrap_or_default();
    let mut by_account: std::collections::BTreeMap<String, Vec<GovernedCall>> =
        std::collections::BTreeMap::new();
    for call in managed {
        let account = call
            .if_not_in_ledger
            .account_id
            .clone()
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| own.clone());
        by_account.entry(account).or_default().push(call);
    }
    let mut alerts = Vec::new();
    for (account, calls) in by_account {
        if !state.targets.reaches(&account) {
            // A gap in the configuration, not a fault: a retry would fail
            // the same way and park the message in the DLQ. Reported once
            // per account and day instead.
            counters.ledger_unreachable_calls += calls.len() as u64;
            let mut a = Alert::degraded(
                Rule::LedgerUnreachable,
                &format!(
                    "{} launcher-role call(s) recorded in account {account} cannot be checked: its ledger cannot be read (SWEEP_ROLE_NAME is not set)",
                    calls.len()
                ),
                state.alerter.clock().now_epoch(),
                Some(&format!("ledger:{account}")),
            );
            a.finding.account_id = Some(account.clone());
            alerts.push(a);
            continue;
        }
        let ledger = state
            .targets
            .ledger(&account)
            .await
            .map_err(HandleError::Ledger)?;
        let ids: Vec<String> = calls.iter().map(|c| c.request_id.clone()).collect();
        let known = ledger
            .known_requests(&ids)
            .await
            .map_err(HandleError::Ledger)?;
        alerts.extend(
            calls
                .into_iter()
                .filter(|call| !known.contains(&call.request_id))
                .map(|call| Alert::from_finding(call.if_not_in_ledger)),
        );
    }
    Ok(alerts)
}
