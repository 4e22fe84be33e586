//! One invocation's view of the alerter: each key raised at most once per
//! invocation, the counts, and coalescing.
//!
//! Coalescing: the objects of an SQS batch are read at once, and each
//! raises its findings as soon as it is read. Raised one object at a time,
//! every object would cost its own dedupe read, SNS batch and mark write,
//! however few findings it holds. With a window (the handler's), the first
//! caller waits up to the window (or until [`FLUSH_AT`] findings are
//! queued), then raises everything queued by then in one
//! [`Alerter::raise_all`]; each caller gets the results of its own findings,
//! so a delivery failure still fails exactly the messages whose findings it
//! concerns. Without a window, each call is raised on its own.

use super::alert::Alert;
use super::alerter::{AlertError, Alerter, Raised};
use super::counters::Counters;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};

/// How long the handler lets findings gather before raising them together.
pub const COALESCE_WINDOW: Duration = Duration::from_millis(20);

/// Queued findings that are raised at once, window or not.
pub const FLUSH_AT: usize = 100;

type Reply = oneshot::Sender<Result<Raised, AlertError>>;

/// Findings waiting for the next flush, and whether a caller is already
/// waiting to flush them.
#[derive(Default)]
struct Queue {
    queued: Vec<(Alert, Reply)>,
    leader: bool,
}

/// Clears the queue if the flushing caller is dropped before it flushed
/// (its task was cancelled): the waiting callers then get an error instead
/// of waiting forever.
struct LeaderGuard<'q> {
    queue: &'q Mutex<Queue>,
    armed: bool,
}

impl LeaderGuard<'_> {
    fn take(mut self) -> Vec<(Alert, Reply)> {
        self.armed = false;
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        q.leader = false;
        std::mem::take(&mut q.queued)
    }
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            q.leader = false;
            q.queued.clear();
        }
    }
}

/// One invocation's view of the alerter: raises each key at most once per
/// invocation and counts. Shared by concurrent tasks of one invocation.
pub struct AlertBatch<'a> {
    alerter: &'a Alerter,
    window: Duration,
    queue: Mutex<Queue>,
    full: Notify,
    seen: Mutex<HashSet<String>>,
    alerted: AtomicU64,
    suppressed: AtomicU64,
    failed: AtomicU64,
    unmarked: AtomicU64,
}

impl<'a> AlertBatch<'a> {
    /// Each call raised on its own.
    pub fn new(alerter: &'a Alerter) -> AlertBatch<'a> {
        AlertBatch::coalescing(alerter, Duration::ZERO)
    }

    /// Findings raised within `window` of each other raised together.
    pub fn coalescing(alerter: &'a Alerter, window: Duration) -> AlertBatch<'a> {
        AlertBatch {
            alerter,
            window,
            queue: Mutex::new(Queue::default()),
            full: Notify::new(),
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
        self.raise_all(vec![alert])
            .await
            .pop()
            .expect("one result per alert")
    }

    /// Raise several findings with [`Alerter::raise_all`]; a key already
    /// raised in this invocation is suppressed locally. One result per
    /// alert, in order.
    pub async fn raise_all(&self, alerts: Vec<&Alert>) -> Vec<Result<Raised, AlertError>> {
        let mut results: Vec<Option<Result<Raised, AlertError>>> =
            alerts.iter().map(|_| None).collect();
        let mut fresh: Vec<(usize, &Alert)> = Vec::new();
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            for (i, a) in alerts.iter().enumerate() {
                if seen.insert(a.dedupe.as_key()) {
                    fresh.push((i, a));
                } else {
                    self.suppressed.fetch_add(1, Ordering::Relaxed);
                    self.alerter.log().line(&a.log_line("suppressed-duplicate"));
                    results[i] = Some(Ok(Raised::Suppressed));
                }
            }
        }
        let batch: Vec<&Alert> = fresh.iter().map(|(_, a)| *a).collect();
        let raised = if self.window.is_zero() || batch.is_empty() {
            self.alerter.raise_all(&batch).await
        } else {
            self.coalesced(&batch).await
        };
        for ((i, a), r) in fresh.into_iter().zip(raised) {
            match &r {
                Ok(Raised::Alerted) => {
                    self.alerted.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Raised::AlertedUnmarked) => {
                    self.unmarked.fetch_add(1, Ordering::Relaxed);
                    self.alerted.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Raised::Suppressed) => {
                    self.suppressed.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    // Not alerted: forget it locally so a later attempt in
                    // this invocation (another message with the same event)
                    // tries again.
                    if let Ok(mut s) = self.seen.lock() {
                        s.remove(&a.dedupe.as_key());
                    }
                    self.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            results[i] = Some(r);
        }
        results
            .into_iter()
            .map(|r| r.expect("every alert has a result"))
            .collect()
    }

    /// Queue `alerts` for the next flush; the first caller to queue waits
    /// out the window and flushes. One result per alert, in order.
    async fn coalesced(&self, alerts: &[&Alert]) -> Vec<Result<Raised, AlertError>> {
        let mut replies = Vec::with_capacity(alerts.len());
        let lead = {
            let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            for a in alerts {
                let (tx, rx) = oneshot::channel();
                q.queued.push(((*a).clone(), tx));
                replies.push(rx);
            }
            if q.queued.len() >= FLUSH_AT {
                self.full.notify_one();
            }
            !std::mem::replace(&mut q.leader, true)
        };
        if lead {
            let guard = LeaderGuard {
                queue: &self.queue,
                armed: true,
            };
            tokio::select! {
                () = tokio::time::sleep(self.window) => {}
                () = self.full.notified() => {}
            }
            let queued = guard.take();
            let (queued, tx): (Vec<Alert>, Vec<Reply>) = queued.into_iter().unzip();
            let refs: Vec<&Alert> = queued.iter().collect();
            let results = self.alerter.raise_all(&refs).await;
            for (tx, r) in tx.into_iter().zip(results) {
                // A caller that is gone has nothing to be told.
                let _ = tx.send(r);
            }
        }
        let mut out = Vec::with_capacity(alerts.len());
        for (rx, a) in replies.into_iter().zip(alerts) {
            out.push(rx.await.unwrap_or_else(|_| {
                Err(AlertError::Abandoned {
                    key: a.dedupe.as_key(),
                })
            }));
        }
        out
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

    fn alert(id: &str) -> Alert {
        Alert::unmanaged(&vm(id, "RUNNING", NOW - 10), NOW, None, None)
    }

    #[tokio::test]
    async fn findings_raised_at_once_by_several_tasks_are_delivered_in_one_batch() {
        let rig = Rig::new(NOW);
        let alerter = rig.alerter();
        let batch = AlertBatch::coalescing(&alerter, Duration::from_millis(50));
        let (a, b, c) = (alert("ai-1"), alert("ai-2"), alert("ai-3"));
        let (first, second) =
            tokio::join!(batch.raise_all(vec![&a, &b]), batch.raise_all(vec![&c]));
        assert_eq!(first.len(), 2);
        assert!(
            first
                .iter()
                .chain(&second)
                .all(|r| matches!(r, Ok(Raised::Alerted)))
        );
        assert_eq!(*rig.channel.batches.lock().unwrap(), [3]);
        assert_eq!(rig.dedupe.marks.lock().unwrap().len(), 3);
        let mut c = Counters::default();
        batch.fold_into(&mut c);
        assert_eq!((c.findings, c.alerted), (3, 3));
    }

    #[tokio::test]
    async fn without_a_window_each_call_is_its_own_batch() {
        let rig = Rig::new(NOW);
        let alerter = rig.alerter();
        let batch = AlertBatch::new(&alerter);
        let (a, b) = (alert("ai-1"), alert("ai-2"));
        let _ = tokio::join!(batch.raise(&a), batch.raise(&b));
        assert_eq!(*rig.channel.batches.lock().unwrap(), [1, 1]);
    }

    #[tokio::test]
    async fn a_full_queue_is_raised_before_the_window_ends() {
        let rig = Rig::new(NOW);
        let alerter = rig.alerter();
        // A window far longer than the test may take.
        let batch = AlertBatch::coalescing(&alerter, Duration::from_secs(3600));
        let alerts: Vec<Alert> = (0..FLUSH_AT).map(|i| alert(&format!("ai-{i}"))).collect();
        let raised = tokio::time::timeout(
            Duration::from_secs(30),
            batch.raise_all(alerts.iter().collect()),
        )
        .await
        .expect("a full queue does not wait for the window");
        assert_eq!(raised.len(), FLUSH_AT);
        assert_eq!(*rig.channel.batches.lock().unwrap(), [FLUSH_AT]);
    }

    #[tokio::test]
    async fn a_failed_delivery_is_an_error_for_each_caller_and_no_mark_is_written() {
        let rig = Rig::new(NOW);
        rig.channel.fail.store(true, Ordering::SeqCst);
        let alerter = rig.alerter();
        let batch = AlertBatch::coalescing(&alerter, Duration::from_millis(50));
        let (a, b) = (alert("ai-1"), alert("ai-2"));
        let (first, second) = tokio::join!(batch.raise(&a), batch.raise(&b));
        for r in [first, second] {
            assert!(matches!(r, Err(AlertError::Delivery { .. })), "{r:?}");
        }
        assert!(rig.dedupe.marks.lock().unwrap().is_empty());
        let mut c = Counters::default();
        batch.fold_into(&mut c);
        assert_eq!((c.findings, c.alert_failures), (0, 2));
    }

    #[tokio::test]
    async fn callers_waiting_on_a_cancelled_flush_get_an_error_not_a_hang() {
        let rig = Rig::new(NOW);
        let alerter = rig.alerter();
        let batch = AlertBatch::coalescing(&alerter, Duration::from_millis(200));
        let (a, b) = (alert("ai-1"), alert("ai-2"));
        // The first caller leads the flush; it is cancelled during its
        // window, while the second waits for the flush.
        let waiting = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            batch.raise(&b).await
        };
        let cancelled = tokio::time::timeout(Duration::from_millis(50), batch.raise(&a));
        let (lead, second) = tokio::join!(cancelled, waiting);
        assert!(lead.is_err(), "the leader was cancelled");
        // The second caller queued after the leader and before the cancel:
        // its finding was dropped with the queue, and it is told so.
        assert!(
            matches!(&second, Err(AlertError::Abandoned { key }) if key.contains("ai-2")),
            "{second:?}"
        );
        assert!(rig.channel.delivered.lock().unwrap().is_empty());
    }
}
