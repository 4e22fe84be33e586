//! Raising a finding: de-duplicate, deliver to every channel, then mark.
//!
//! Order matters (ARCHITECTURE.md: "a finding is never lost silently"):
//! 1. if the dedupe table already has the key → suppressed (logged, counted);
//! 2. deliver to every channel (SNS, Contro1); any failure is returned, so
//!    the invocation fails and SQS/EventBridge retries it;
//! 3. only then write the dedupe mark (conditional put with a TTL). If that
//!    write fails, the finding *was* delivered: failing the message would
//!    re-deliver it on every retry (up to the DLQ's receive count) and park
//!    a delivered finding in the DLQ. So the failure is logged
//!    (`dedupe-mark-failed`, with the key and the error) and counted
//!    (`dedupe_mark_failures`), and the finding counts as alerted.
//!
//! A crash between 2 and 3, or a mark that could not be written, means at
//! most one duplicate alert when the same finding arrives again, never a lost
//! one. Within one invocation a key is raised at most once (local set), so a
//! file holding the same event twice costs one table read.

use super::alert::Alert;
use super::counters::Counters;
use super::ports::{AlertChannel, Clock, DedupeStore, LogSink, PortError};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Why raising a finding failed. The invocation must fail (retry).
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("reading the dedupe table for `{key}`: {source}")]
    DedupeRead {
        key: String,
        #[source]
        source: PortError,
    },
    #[error("delivering `{key}` to {channel}: {source}")]
    Delivery {
        key: String,
        channel: &'static str,
        #[source]
        source: PortError,
    },
}

/// What happened to one finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raised {
    Alerted,
    /// Delivered to every channel, but the dedupe mark could not be written
    /// (logged): a later copy of this finding may alert again.
    AlertedUnmarked,
    Suppressed,
}

/// Delivers findings. Shared by every invocation (in `State`).
pub struct Alerter {
    dedupe: Arc<dyn DedupeStore>,
    channels: Vec<Arc<dyn AlertChannel>>,
    log: Arc<dyn LogSink>,
    clock: Arc<dyn Clock>,
}

impl Alerter {
    pub fn new(
        dedupe: Arc<dyn DedupeStore>,
        channels: Vec<Arc<dyn AlertChannel>>,
        log: Arc<dyn LogSink>,
        clock: Arc<dyn Clock>,
    ) -> Alerter {
        Alerter {
            dedupe,
            channels,
            log,
            clock,
        }
    }

    pub fn log(&self) -> &dyn LogSink {
        self.log.as_ref()
    }

    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// Raise one finding, once per key across invocations.
    pub async fn raise(&self, alert: &Alert) -> Result<Raised, AlertError> {
        let key = alert.dedupe.as_key();
        let marked =
            self.dedupe
                .is_marked(&key)
                .await
                .map_err(|source| AlertError::DedupeRead {
                    key: key.clone(),
                    source,
                })?;
        if marked {
            self.log.line(&alert.log_line("suppressed-duplicate"));
            return Ok(Raised::Suppressed);
        }
        // The log line comes first: even if delivery fails, the finding is on
        // record in the logs, and the error below makes the message retry.
        self.log.line(&alert.log_line("alerting"));
        for ch in &self.channels {
            ch.deliver(alert)
                .await
                .map_err(|source| AlertError::Delivery {
                    key: key.clone(),
                    channel: ch.name(),
                    source,
                })?;
        }
        let expires_at = self.clock.now_epoch() + alert.dedupe.ttl_seconds();
        if let Err(e) = self.dedupe.mark(&key, expires_at).await {
            self.log.line(&serde_json::json!({
                "log": "dedupe-mark-failed",
                "level": "ERROR",
                "dedupe_key": key,
                "error": format!("writing the dedupe mark for `{key}` after delivery: {e}"),
                "consequence": "delivered; a later copy of this finding may alert again",
            }));
            return Ok(Raised::AlertedUnmarked);
        }
        Ok(Raised::Alerted)
    }
}

/// One invocation's view of the alerter: raises each key at most once per
/// invocation and counts. Shared by concurrent tasks of one invocation.
pub struct AlertBatch<'a> {
    alerter: &'a Alerter,
    seen: Mutex<HashSet<String>>,
    alerted: AtomicU64,
    suppressed: AtomicU64,
    failed: AtomicU64,
    unmarked: AtomicU64,
}

impl<'a> AlertBatch<'a> {
    pub fn new(alerter: &'a Alerter) -> AlertBatch<'a> {
        AlertBatch {
            alerter,
            seen: Mutex::new(HashSet::new()),
            alerted: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            unmarked: AtomicU64::new(0),
        }
    }

    pub fn alerter(&self) -> &Alerter {
        self.alerter
    }

    /// Raise one finding. The error must fail the invocation (or the SQS
    /// message the finding came from).
    pub async fn raise(&self, alert: &Alert) -> Result<Raised, AlertError> {
        let key = alert.dedupe.as_key();
        let first = self
            .seen
            .lock()
            .map(|mut s| s.insert(key.clone()))
            .unwrap_or(true);
        if !first {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            self.alerter
                .log
                .line(&alert.log_line("suppressed-duplicate"));
            return Ok(Raised::Suppressed);
        }
        match self.alerter.raise(alert).await {
            Ok(r) => {
                match r {
                    Raised::Alerted => self.alerted.fetch_add(1, Ordering::Relaxed),
                    Raised::AlertedUnmarked => {
                        self.unmarked.fetch_add(1, Ordering::Relaxed);
                        self.alerted.fetch_add(1, Ordering::Relaxed)
                    }
                    Raised::Suppressed => self.suppressed.fetch_add(1, Ordering::Relaxed),
                };
                Ok(r)
            }
            Err(e) => {
                // Not alerted: forget it locally so a later attempt in this
                // invocation (another message with the same event) tries again.
                if let Ok(mut s) = self.seen.lock() {
                    s.remove(&key);
                }
                self.failed.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Add this batch's counts: `findings = alerted + suppressed` (findings
    /// whose delivery failed are in `alert_failures`, and fail the
    /// invocation).
    pub fn fold_into(&self, c: &mut Counters) {
        let alerted = self.alerted.load(Ordering::Relaxed);
        let suppressed = self.suppressed.load(Ordering::Relaxed);
        c.alerted += alerted;
        c.suppressed += suppressed;
        c.findings += alerted + suppressed;
        c.alert_failures += self.failed.load(Ordering::Relaxed);
        c.dedupe_mark_failures += self.unmarked.load(Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lambda::fakes::{Rig, vm};

    const NOW: i64 = 1_759_413_931;

    #[tokio::test]
    async fn delivery_failure_returns_an_error_and_writes_no_mark() {
        let rig = Rig::new(NOW);
        rig.channel.fail.store(true, Ordering::SeqCst);
        let alerter = rig.alerter();
        let batch = AlertBatch::new(&alerter);
        let alert = Alert::unmanaged(&vm("ai-1", "RUNNING", NOW - 10), NOW, None, None);
        let err = batch.raise(&alert).await.unwrap_err();
        assert!(matches!(err, AlertError::Delivery { .. }), "{err}");
        assert!(rig.dedupe.marks.lock().unwrap().is_empty());
        let mut c = Counters::default();
        batch.fold_into(&mut c);
        assert_eq!((c.findings, c.alerted, c.alert_failures), (0, 0, 1));
        // The retry, with the channel back, delivers and marks.
        rig.channel.fail.store(false, Ordering::SeqCst);
        assert_eq!(batch.raise(&alert).await.unwrap(), Raised::Alerted);
        let marks = rig.dedupe.marks.lock().unwrap();
        assert_eq!(marks.get("vm#ai-1#2025-10-02"), Some(&(NOW + 2 * 86_400)));
    }

    #[tokio::test]
    async fn a_marked_finding_is_suppressed_across_invocations() {
        let rig = Rig::new(NOW);
        let alerter = rig.alerter();
        let alert = Alert::unmanaged(&vm("ai-1", "RUNNING", NOW - 10), NOW, None, None);
        let first = AlertBatch::new(&alerter);
        assert_eq!(first.raise(&alert).await.unwrap(), Raised::Alerted);
        let second = AlertBatch::new(&alerter);
        assert_eq!(second.raise(&alert).await.unwrap(), Raised::Suppressed);
        assert_eq!(rig.channel.delivered.lock().unwrap().len(), 1);
        let mut c = Counters::default();
        second.fold_into(&mut c);
        assert_eq!((c.findings, c.alerted, c.suppressed), (1, 0, 1));
        assert!(c.reconciles());
        let statuses: Vec<String> = rig
            .log
            .lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| l["status"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(statuses, ["alerting", "suppressed-duplicate"]);
    }

    #[tokio::test]
    async fn the_same_key_twice_in_one_invocation_reads_the_table_once() {
        let rig = Rig::new(NOW);
        rig.dedupe.fail_reads.store(false, Ordering::SeqCst);
        let alerter = rig.alerter();
        let batch = AlertBatch::new(&alerter);
        let alert = Alert::unmanaged(&vm("ai-1", "RUNNING", NOW - 10), NOW, None, None);
        batch.raise(&alert).await.unwrap();
        // Reads now fail: a second table read would error.
        rig.dedupe.fail_reads.store(true, Ordering::SeqCst);
        assert_eq!(batch.raise(&alert).await.unwrap(), Raised::Suppressed);
    }
}
