//! Raising a finding: de-duplicate, deliver to every channel that has not
//! delivered it yet, and mark the channels that did.
//!
//! Order matters (ARCHITECTURE.md: "a finding is never lost silently"):
//! 1. read the finding's marks: the channels (SNS, Contro1, ...) that already
//!    delivered it. Every channel marked → suppressed (logged, counted);
//! 2. deliver to each channel not yet marked, each on its own; then mark
//!    the finding with every channel that has delivered it, whatever the
//!    others did (one item per finding, an attribute per channel, a TTL;
//!    the marks of many findings written in one batched request);
//! 3. if any channel failed, the error is returned, so the invocation fails
//!    and SQS/EventBridge retries it — and the retry delivers only to the
//!    channels that failed. An SNS alert is never re-sent because Contro1 was
//!    down, and the other way round.
//!
//! A mark that cannot be written after its channel delivered (DynamoDB
//! throttling past the SDK's retries) does not fail the finding: failing
//! would re-deliver it on every receive and park a delivered finding in the
//! DLQ. It is logged (`dedupe-mark-failed`, with the key, channel and error)
//! and counted (`dedupe_mark_failures`); a later copy may alert once more on
//! that channel. A crash between a delivery and its mark costs the same: one
//! duplicate on one channel, never a lost alert. Within one invocation a key
//! is raised at most once (local set), so a file holding the same event
//! twice costs one table read.

use super::alert::Alert;
use super::ports::{AlertChannel, Clock, DedupeStore, LogSink, MarkWrite, Marks, PortError};
use std::sync::Arc;

/// Why raising a finding failed. The invocation must fail (retry).
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("reading the dedupe table for `{key}`: {source}")]
    DedupeRead {
        key: String,
        #[source]
        source: PortError,
    },
    /// The task raising it together with others stopped before it could.
    #[error("`{key}` was not raised: the task raising it with other findings stopped first")]
    Abandoned { key: String },
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
    /// Delivered to every channel, but some mark could not be written
    /// (logged): a later copy of this finding may alert again there.
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

    /// Raise one finding, once per key and channel across invocations.
    pub async fn raise(&self, alert: &Alert) -> Result<Raised, AlertError> {
        self.raise_all(&[alert])
            .await
            .pop()
            .expect("one result per alert")
    }

    /// Raise several findings together, with few round trips: one batched
    /// read of their marks, each channel given its pending findings at once
    /// (batched where the channel can — SNS `PublishBatch` — and concurrent
    /// otherwise), channels in parallel, the marks in one batched write.
    /// One result per alert, in order.
    pub async fn raise_all(&self, alerts: &[&Alert]) -> Vec<Result<Raised, AlertError>> {
        if alerts.is_empty() {
            return Vec::new();
        }
        let keys: Vec<String> = alerts.iter().map(|a| a.dedupe.as_key()).collect();
        let marks = match self.dedupe.marks_many(&keys).await {
            Ok(m) => m,
            Err(source) => {
                return keys
                    .into_iter()
                    .map(|key| {
                        Err(AlertError::DedupeRead {
                            key,
                            source: source.clone(),
                        })
                    })
                    .collect();
            }
        };
        let none = Marks::default();
        // Per alert: the channels still to deliver it.
        let pending: Vec<Vec<usize>> = keys
            .iter()
            .map(|k| {
                let m = marks.get(k).unwrap_or(&none);
                (0..self.channels.len())
                    .filter(|&c| !m.delivered(self.channels[c].name()))
                    .collect()
            })
            .collect();
        for (a, p) in alerts.iter().zip(&pending) {
            if p.is_empty() {
                self.log.line(&a.log_line("suppressed-duplicate"));
            } else {
                // The log line comes first: even if delivery fails, the
                // finding is on record, and the error makes the message retry.
                let mut line = a.log_line("alerting");
                line["channels"] = p.iter().map(|&c| self.channels[c].name()).collect();
                self.log.line(&line);
            }
        }
        // Each channel delivers its pending alerts; channels in parallel.
        let deliveries = self.channels.iter().enumerate().map(|(c, ch)| {
            let idx: Vec<usize> = (0..alerts.len())
                .filter(|&i| pending[i].contains(&c))
                .collect();
            async move {
                let batch: Vec<&Alert> = idx.iter().map(|&i| alerts[i]).collect();
                let results = if batch.is_empty() {
                    Vec::new()
                } else {
                    ch.deliver_batch(&batch).await
                };
                (c, idx, results)
            }
        });
        let delivered = futures::future::join_all(deliveries).await;
        let mut errors: Vec<Option<AlertError>> = alerts.iter().map(|_| None).collect();
        let mut to_mark: Vec<(usize, usize)> = Vec::new();
        for (c, idx, results) in delivered {
            for (i, r) in idx.into_iter().zip(results) {
                match r {
                    Ok(()) => to_mark.push((i, c)),
                    Err(source) => {
                        errors[i].get_or_insert(AlertError::Delivery {
                            key: keys[i].clone(),
                            channel: self.channels[c].name(),
                            source,
                        });
                    }
                }
            }
        }
        // One mark per finding, naming every channel that has delivered it
        // (those read before and those that just did), all in one batched
        // write.
        let mut by_alert: Vec<Vec<&'static str>> = vec![Vec::new(); alerts.len()];
        for (i, c) in to_mark {
            by_alert[i].push(self.channels[c].name());
        }
        let now = self.clock.now_epoch();
        let (idx, writes): (Vec<usize>, Vec<MarkWrite>) = by_alert
            .iter()
            .enumerate()
            .filter(|(_, chs)| !chs.is_empty())
            .map(|(i, chs)| {
                let mut channels: std::collections::BTreeSet<String> = marks
                    .get(&keys[i])
                    .map(|m| m.channels.clone())
                    .unwrap_or_default();
                channels.extend(chs.iter().map(|c| c.to_string()));
                let write = MarkWrite {
                    key: keys[i].clone(),
                    channels: channels.into_iter().collect(),
                    expires_at: now + alerts[i].dedupe.ttl_seconds(),
                };
                (i, write)
            })
            .unzip();
        let marked: Vec<(usize, Result<(), PortError>)> = if writes.is_empty() {
            Vec::new()
        } else {
            idx.into_iter()
                .zip(self.dedupe.mark_many(&writes).await)
                .collect()
        };
        let mut unmarked = vec![false; alerts.len()];
        for (i, r) in marked {
            if let Err(e) = r {
                unmarked[i] = true;
                let key = &keys[i];
                let names = by_alert[i].join(", ");
                self.log.line(&serde_json::json!({
                    "log": "dedupe-mark-failed",
                    "level": "ERROR",
                    "dedupe_key": key,
                    "channels": by_alert[i],
                    "error": format!("writing the {names} mark for `{key}` after delivery: {e}"),
                    "consequence": "delivered; a later copy of this finding may alert again on these channels",
                }));
            }
        }
        errors
            .into_iter()
            .enumerate()
            .map(|(i, e)| match e {
                Some(e) => Err(e),
                None if pending[i].is_empty() => Ok(Raised::Suppressed),
                None if unmarked[i] => Ok(Raised::AlertedUnmarked),
                None => Ok(Raised::Alerted),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lambda::alert_batch::AlertBatch;
    use crate::lambda::counters::Counters;
    use crate::lambda::fakes::{FakeChannel, Rig, vm};
    use std::sync::atomic::Ordering;

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
        assert_eq!(
            marks.get("vm#ai-1#2025-10-02").and_then(|m| m.get("fake")),
            Some(&(NOW + 2 * 86_400))
        );
    }

    #[tokio::test]
    async fn a_channel_that_delivered_is_never_sent_the_finding_again_when_another_failed() {
        // Regression: with Contro1 unreachable, every retry re-sent the SNS
        // alert (the mark was written only when every channel succeeded).
        let rig = Rig::new(NOW);
        let sns = Arc::new(FakeChannel::named("sns"));
        let contro1 = Arc::new(FakeChannel::named("contro1"));
        contro1.fail.store(true, Ordering::SeqCst);
        let alerter = Alerter::new(
            rig.dedupe.clone(),
            vec![sns.clone(), contro1.clone()],
            rig.log.clone(),
            rig.clock.clone(),
        );
        let alert = Alert::unmanaged(&vm("ai-1", "RUNNING", NOW - 10), NOW, None, None);
        for attempt in 1..=3 {
            let batch = AlertBatch::new(&alerter);
            let err = batch.raise(&alert).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    AlertError::Delivery {
                        channel: "contro1",
                        ..
                    }
                ),
                "attempt {attempt}: {err}"
            );
        }
        assert_eq!(
            sns.delivered.lock().unwrap().len(),
            1,
            "one SNS alert across three attempts"
        );
        assert!(contro1.delivered.lock().unwrap().is_empty());
        // Contro1 back: the retry goes to Contro1 only.
        contro1.fail.store(false, Ordering::SeqCst);
        let batch = AlertBatch::new(&alerter);
        assert_eq!(batch.raise(&alert).await.unwrap(), Raised::Alerted);
        assert_eq!(sns.delivered.lock().unwrap().len(), 1);
        assert_eq!(contro1.delivered.lock().unwrap().len(), 1);
        let batch = AlertBatch::new(&alerter);
        assert_eq!(batch.raise(&alert).await.unwrap(), Raised::Suppressed);
        let pending: Vec<Vec<String>> = rig
            .log
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l["status"] == "alerting")
            .map(|l| serde_json::from_value(l["channels"].clone()).unwrap())
            .collect();
        assert_eq!(
            pending,
            [
                vec!["sns", "contro1"],
                vec!["contro1"],
                vec!["contro1"],
                vec!["contro1"]
            ]
        );
    }

    #[tokio::test]
    async fn a_mark_that_cannot_be_written_after_delivery_is_logged_not_a_failure() {
        let rig = Rig::new(NOW);
        rig.dedupe.fail_marks.store(true, Ordering::SeqCst);
        let alerter = rig.alerter();
        let batch = AlertBatch::new(&alerter);
        let alert = Alert::unmanaged(&vm("ai-1", "RUNNING", NOW - 10), NOW, None, None);
        assert_eq!(batch.raise(&alert).await.unwrap(), Raised::AlertedUnmarked);
        let mut c = Counters::default();
        batch.fold_into(&mut c);
        assert_eq!((c.alerted, c.dedupe_mark_failures), (1, 1));
        assert!(
            rig.log
                .lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l["log"] == "dedupe-mark-failed"
                    && l["channels"] == serde_json::json!(["fake"]))
        );
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
