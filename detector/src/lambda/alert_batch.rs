//! One invocation's view of the alerter: each key raised at most once per
//! invocation, the counts, and coalescing.
//!
//! Coalescing: the objects of an SQS batch are read at once, and each
//! raises its findings as soon as it is read. Raised one object at a time,
//! every object would cost its own dedupe read, SNS batch and mark write,
//! however few findings it holds. Coalesced (the handler's way), findings
//! are raised as a group commit: the first caller becomes the leader,
//! waits out the window if there is one (or until [`FLUSH_AT`] findings are
//! queued), and raises what is queued in one [`Alerter::raise_all`]; what
//! other callers queue meanwhile is raised by the same leader in its next
//! round, as soon as the round in flight ends, until the queue is empty.
//! Under load the rounds grow on their own, without any wait; each caller
//! gets the results of its own findings, so a delivery failure still fails
//! exactly the messages whose findings it concerns. Not coalesced, each
//! call is raised on its own.

use super::alert::Alert;
use super::alerter::{AlertError, Alerter, Raised};
use super::counters::Counters;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};

/// How long the handler's first round lets findings gather before it is
/// raised: none, since the rounds that follow gather whatever arrives while
/// one is in flight.
pub const COALESCE_WINDOW: Duration = Duration::ZERO;

/// Queued findings that end the first round's window early, and the most
/// one round raises (the rest wait for the next round).
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
    /// The next round (up to [`FLUSH_AT`] findings, oldest first), or `None`
    /// when the queue is empty: then leadership ends, in the same critical
    /// section, so a caller queueing next becomes the next leader.
    fn next_round(&mut self) -> Option<Vec<(Alert, Reply)>> {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if q.queued.is_empty() {
            q.leader = false;
            self.armed = false;
            return None;
        }
        let n = q.queued.len().min(FLUSH_AT);
        Some(q.queued.drain(..n).collect())
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
    /// The first round's window when coalescing; `None`: each call on its
    /// own.
    window: Option<Duration>,
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
        AlertBatch::with_window(alerter, None)
    }

    /// Findings raised together in rounds (see the module's text): the
    /// first round after `window` (zero: at once), each next one as soon as
    /// the one before ends.
    pub fn coalescing(alerter: &'a Alerter, window: Duration) -> AlertBatch<'a> {
        AlertBatch::with_window(alerter, Some(window))
    }

    fn with_window(alerter: &'a Alerter, window: Option<Duration>) -> AlertBatch<'a> {
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
        let raised = match self.window {
            Some(window) if !batch.is_empty() => self.coalesced(&batch, window).await,
            _ => self.alerter.raise_all(&batch).await,
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

    /// Queue `alerts` for the next round; a caller that finds no leader
    /// leads: waits out the window, then raises rounds until the queue is
    /// empty. One result per alert, in order.
    async fn coalesced(
        &self,
        alerts: &[&Alert],
        window: Duration,
    ) -> Vec<Result<Raised, AlertError>> {
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
            let mut guard = LeaderGuard {
                queue: &self.queue,
                armed: true,
            };
            if !window.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(window) => {}
                    () = self.full.notified() => {}
                }
            }
            while let Some(round) = guard.next_round() {
                let (queued, tx): (Vec<Alert>, Vec<Reply>) = round.into_iter().unzip();
                let refs: Vec<&Alert> = queued.iter().collect();
                let results = self.alerter.raise_all(&refs).await;
                for (tx, r) in tx.into_iter().zip(results) {
                    // A caller that is gone has nothing to be told.
                    let _ = tx.send(r);
                }
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
    async fn findings_queued_while_a_round_is_in_flight_are_raised_together_in_the_next_round() {
        let rig = Rig::new(NOW);
        *rig.channel.delay.lock().unwrap() = Duration::from_millis(300);
        let alerter = rig.alerter();
        let batch = AlertBatch::coalescing(&alerter, Duration::ZERO);
        let first = alert("ai-0");
        let later: Vec<Alert> = (1..=3).map(|i| alert(&format!("ai-{i}"))).collect();
        let started = std::time::Instant::now();
        // The first finding is raised at once; three more arrive while its
        // round is being delivered.
        let queued_later = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            futures::future::join_all(later.iter().map(|a| batch.raise(a))).await
        };
        let (lead, rest) = tokio::join!(batch.raise(&first), queued_later);
        assert_eq!(lead.unwrap(), Raised::Alerted);
        assert!(rest.iter().all(|r| matches!(r, Ok(Raised::Alerted))));
        assert_eq!(*rig.channel.batches.lock().unwrap(), [1, 3]);
        // Two rounds, not one per finding, and no window waited out first.
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(rig.dedupe.marks.lock().unwrap().len(), 4);
    }

    #[tokio::test]
    async fn a_round_raises_at_most_flush_at_findings_and_the_rest_follow_in_order() {
        let rig = Rig::new(NOW);
        *rig.channel.delay.lock().unwrap() = Duration::from_millis(100);
        let alerter = rig.alerter();
        let batch = AlertBatch::coalescing(&alerter, Duration::ZERO);
        let first = alert("ai-first");
        let many: Vec<Alert> = (0..FLUSH_AT * 2 + 50)
            .map(|i| alert(&format!("ai-{i}")))
            .collect();
        let queued_later = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            batch.raise_all(many.iter().collect()).await
        };
        let (lead, rest) = tokio::join!(batch.raise(&first), queued_later);
        assert_eq!(lead.unwrap(), Raised::Alerted);
        assert_eq!(rest.len(), many.len());
        assert!(rest.iter().all(|r| matches!(r, Ok(Raised::Alerted))));
        assert_eq!(
            *rig.channel.batches.lock().unwrap(),
            [1, FLUSH_AT, FLUSH_AT, 50]
        );
        let delivered: Vec<String> = rig
            .channel
            .delivered
            .lock()
            .unwrap()
            .iter()
            .map(|a| a.dedupe.as_key())
            .collect();
        let want: Vec<String> = std::iter::once(&first)
            .chain(&many)
            .map(|a| a.dedupe.as_key())
            .collect();
        assert_eq!(delivered, want, "delivered in the order raised");
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
