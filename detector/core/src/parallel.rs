//! Several inputs read at once, with exactly the result of reading them one
//! after another.
//!
//! [`Scanner::scan_inputs`] takes a producer that names the inputs in order
//! (a directory walk, an S3 listing). Worker threads each read one input at a
//! time to its end, streamed as [`Scanner::scan_reader`] reads it; the
//! calling thread merges what they found **in input order**: events in
//! stream order, counters added, and de-duplication by `eventID` decided
//! there, so the first occurrence in input order wins, as in a serial scan.
//!
//! Memory stays bounded: each worker holds one input's buffers (at most the
//! record cap plus a few chunks), each worker's results wait in a channel of
//! a few bundles of events, and at most a few inputs are queued ahead of the
//! workers. A worker whose results the merge is not reading yet waits.

use crate::reader::{Buffers, ReadError, ScanOptions, split, split_pipelined};
use crate::scan::{
    Commit, Immediate, InputReport, Parts, Pending, ScanEvent, ScanStats, Scanner, commit,
    read_input,
};
use std::collections::HashSet;
use std::io::Read;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Mutex, PoisonError};

/// Bundles of up to [`BUNDLE`] events a worker may have waiting for the
/// merge before it waits.
const PENDING_BUNDLES: usize = 4;

/// Memory the workers' buffers may take together, at worst (every worker
/// holding a record at the record cap); see [`threads_for`].
pub const MEMORY_BUDGET: usize = 512 << 20;

/// How many inputs to read at once: one per core, no more than the memory
/// budget allows with every worker holding a record at the record cap, and
/// at least one.
pub fn threads_for(opts: &ScanOptions) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let per_worker = opts.max_record_bytes.saturating_add(4 << 20);
    cores.min(MEMORY_BUDGET / per_worker).max(1)
}

/// Opens an input when a worker gets to it (so that S3 requests, say, run in
/// parallel too). An `Err` names what went wrong.
pub type Opener<'a> = Box<dyn FnOnce() -> Result<Box<dyn Read + Send + 'a>, String> + Send + 'a>;

/// One input to read.
pub struct Input<'a> {
    /// Names the input in findings and errors.
    pub source: String,
    pub open: Opener<'a>,
    /// Its size as stored (compressed), when known: small inputs are read
    /// in batches.
    pub size: Option<u64>,
}

impl std::fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// What a producer hands over, in order.
#[derive(Debug)]
pub enum Job<'a, T> {
    Input(Input<'a>),
    /// Anything the caller wants back in its place in the order (an input
    /// that could not be listed, a file skipped); not read.
    Note(T),
}

/// Why an input was not read to its end.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// It could not be opened (not counted in [`ScanStats`]).
    #[error("{0}")]
    Open(String),
    /// It could not be read to the end (counted in `input_errors`).
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// What [`Scanner::scan_inputs`] hands back, in input order.
#[derive(Debug)]
pub enum Delivery<T> {
    /// A finding, managed call or bad record, as [`Scanner::scan_reader`]
    /// reports it.
    Event(ScanEvent),
    /// An input is finished; its events came before this.
    Done {
        source: String,
        result: Result<InputReport, InputError>,
    },
    Note(T),
}

/// From a worker to the merge, in the order of its inputs.
enum Msg {
    Report(Pending),
    RecordError(ReadError),
    /// An input is finished; its own counters are added to the scanner's at
    /// the merge.
    Done {
        source: String,
        result: Result<InputReport, InputError>,
        stats: Box<ScanStats>,
    },
}

/// Messages go to the merge in bundles, so that a run of small inputs
/// wakes the merging thread once, not once per input.
const BUNDLE: usize = 64;

/// A worker's messages for the work it is on, sent in bundles.
struct Outbox<'c> {
    tx: &'c SyncSender<Vec<Msg>>,
    pending: Vec<Msg>,
}

impl Outbox<'_> {
    fn push(&mut self, msg: Msg) {
        self.pending.push(msg);
        if self.pending.len() >= BUNDLE {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            // A closed channel means the merge stopped (its callback
            // panicked); these results have nowhere to go.
            let _ = self.tx.send(std::mem::take(&mut self.pending));
        }
    }
}

/// Sends to the merge instead of de-duplicating here.
struct Deferred<'o, 'c>(&'o mut Outbox<'c>);

impl Commit for Deferred<'_, '_> {
    fn report(&mut self, pending: Pending, _: &mut ScanStats) {
        self.0.push(Msg::Report(pending));
    }
    fn record_error(&mut self, err: ReadError) {
        self.0.push(Msg::RecordError(err));
    }
}

/// Inputs read together in one worker at a time: small ones are grouped
/// (up to [`BATCH_BYTES`] of compressed input, [`BATCH_INPUTS`] inputs), so
/// that thousands of small files cost a few thread hand-offs, not thousands.
const BATCH_BYTES: u64 = 256 << 10;
const BATCH_INPUTS: usize = 128;

/// Inputs given to a worker, with the channel their results go back on.
struct Work<'a> {
    inputs: Vec<Input<'a>>,
    tx: SyncSender<Vec<Msg>>,
    /// The only input of the run: decompress on a second thread.
    alone: bool,
}

/// Inputs or a note, in the order the merge must deliver them.
enum Slot<T> {
    Inputs(Receiver<Vec<Msg>>),
    Note(T),
}

/// Read one input on this thread, counting into `stats`.
fn read_one(
    parts: Parts<'_>,
    stats: &mut ScanStats,
    input: Input<'_>,
    pipelined: bool,
    commit: impl Commit,
    buf: &mut Buffers,
) -> Result<InputReport, InputError> {
    let Input { source, open, .. } = input;
    let reader = open().map_err(InputError::Open)?;
    let result = if pipelined {
        read_input(parts, stats, &source, commit, |name, opts, sink| {
            split_pipelined(reader, name, opts, sink, buf)
        })
    } else {
        read_input(parts, stats, &source, commit, |name, opts, sink| {
            split(reader, name, opts, sink, buf)
        })
    };
    result.map_err(InputError::Read)
}

fn worker(parts: Parts<'_>, jobs: &Mutex<Receiver<Work<'_>>>) {
    let mut buf = Buffers::default();
    loop {
        let work = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(Work { inputs, tx, alone }) = work else {
            return; // the producer is done
        };
        let mut out = Outbox {
            tx: &tx,
            pending: Vec::new(),
        };
        for input in inputs {
            let source = input.source.clone();
            let mut stats = ScanStats::default();
            let result = read_one(
                parts,
                &mut stats,
                input,
                alone,
                Deferred(&mut out),
                &mut buf,
            );
            out.push(Msg::Done {
                source,
                result,
                stats: Box::new(stats),
            });
        }
        out.flush();
    }
}

/// Hands work to the workers and slots to the merge, in order. The first
/// input is held back until a second one shows up, so that an input read
/// alone is known to be alone; small inputs are batched.
struct Dispatch<'a, T> {
    order: SyncSender<Slot<T>>,
    jobs: SyncSender<Work<'a>>,
    held: Option<(Input<'a>, Vec<T>)>,
    batch: Vec<Input<'a>>,
    batch_bytes: u64,
    inputs: usize,
    /// The merge is gone; drop everything.
    closed: bool,
}

impl<'a, T> Dispatch<'a, T> {
    fn new(order: SyncSender<Slot<T>>, jobs: SyncSender<Work<'a>>) -> Self {
        Dispatch {
            order,
            jobs,
            held: None,
            batch: Vec::new(),
            batch_bytes: 0,
            inputs: 0,
            closed: false,
        }
    }

    fn job(&mut self, job: Job<'a, T>) {
        match job {
            Job::Note(t) => match &mut self.held {
                Some((_, notes)) => notes.push(t),
                None => {
                    self.flush();
                    self.note(t);
                }
            },
            Job::Input(input) => {
                self.inputs += 1;
                if self.inputs == 1 {
                    self.held = Some((input, Vec::new()));
                    return;
                }
                if let Some((first, notes)) = self.held.take() {
                    self.add(first);
                    if !notes.is_empty() {
                        self.flush();
                        notes.into_iter().for_each(|t| self.note(t));
                    }
                }
                self.add(input);
            }
        }
    }

    /// No more jobs.
    fn finish(&mut self) {
        match self.held.take() {
            Some((input, notes)) => {
                self.send(vec![input], true);
                notes.into_iter().for_each(|t| self.note(t));
            }
            None => self.flush(),
        }
    }

    fn add(&mut self, input: Input<'a>) {
        let size = input.size.unwrap_or(u64::MAX);
        if size >= BATCH_BYTES {
            self.flush();
            self.send(vec![input], false);
            return;
        }
        if self.batch_bytes + size > BATCH_BYTES || self.batch.len() >= BATCH_INPUTS {
            self.flush();
        }
        self.batch_bytes += size;
        self.batch.push(input);
    }

    fn flush(&mut self) {
        if !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            self.batch_bytes = 0;
            self.send(batch, false);
        }
    }

    fn note(&mut self, t: T) {
        self.closed = self.closed || self.order.send(Slot::Note(t)).is_err();
    }

    fn send(&mut self, inputs: Vec<Input<'a>>, alone: bool) {
        if self.closed {
            return;
        }
        let (tx, rx) = sync_channel(PENDING_BUNDLES);
        self.closed = self.order.send(Slot::Inputs(rx)).is_err()
            || self.jobs.send(Work { inputs, tx, alone }).is_err();
    }
}

impl Scanner {
    /// Read every input `produce` names, up to `threads` at a time, and hand
    /// back their events, their ends and the notes in input order: exactly
    /// what reading them one after another with [`Scanner::scan_reader`]
    /// gives, counters and de-duplication included. `produce` runs on its
    /// own thread and calls its argument once per job, in order.
    ///
    /// With `threads` 1 everything happens on the calling thread. An input
    /// read alone (the only one) is decompressed on a second thread, as
    /// [`Scanner::scan_reader_pipelined`] does.
    ///
    /// ```
    /// use detector_core::parallel::{Delivery, Input, Job};
    /// use detector_core::{Classifier, ClassifierConfig, ScanEvent, ScanOptions, Scanner};
    ///
    /// let mut scanner = Scanner::new(Classifier::new(ClassifierConfig::default()), ScanOptions::default());
    /// let logs: Vec<&[u8]> = vec![
    ///     br#"{"Records":[{"eventID":"e1","eventSource":"lambda.amazonaws.com","eventName":"RunMicrovm"}]}"#,
    ///     br#"{"Records":[{"eventID":"e1","eventSource":"lambda.amazonaws.com","eventName":"RunMicrovm"},
    ///                    {"eventID":"e2","eventSource":"lambda.amazonaws.com","eventName":"TerminateMicrovm"}]}"#,
    /// ];
    /// let mut findings = Vec::new();
    /// scanner.scan_inputs::<()>(
    ///     2,
    ///     |emit| {
    ///         for (i, log) in logs.iter().enumerate() {
    ///             let log: &[u8] = log;
    ///             let open = Box::new(move || Ok(Box::new(log) as Box<dyn std::io::Read + Send>));
    ///             emit(Job::Input(Input { source: format!("log-{i}"), open, size: None }));
    ///         }
    ///     },
    ///     |d| if let Delivery::Event(ScanEvent::Finding(f)) = d {
    ///         findings.push((f.source, f.event_id.unwrap()));
    ///     },
    /// );
    /// assert_eq!(findings, [("log-0".to_string(), "e1".to_string()), ("log-1".to_string(), "e2".to_string())]);
    /// assert_eq!(scanner.stats().duplicates, 1);
    /// ```
    pub fn scan_inputs<'a, T: Send>(
        &mut self,
        threads: usize,
        produce: impl FnOnce(&mut dyn FnMut(Job<'a, T>)) + Send,
        mut deliver: impl FnMut(Delivery<T>),
    ) {
        let (parts, seen, stats, buf) = self.split_parts();
        if threads <= 1 {
            produce(&mut |job| match job {
                Job::Note(t) => deliver(Delivery::Note(t)),
                Job::Input(input) => {
                    let source = input.source.clone();
                    let on_event = |ev| deliver(Delivery::Event(ev));
                    let commit = Immediate { seen, on_event };
                    let result = read_one(parts, stats, input, false, commit, buf);
                    deliver(Delivery::Done { source, result });
                }
            });
            return;
        }
        let (order_tx, order_rx) = sync_channel::<Slot<T>>(threads * 2);
        let (jobs_tx, jobs_rx) = sync_channel::<Work<'a>>(threads);
        let jobs_rx = Mutex::new(jobs_rx);
        std::thread::scope(|scope| {
            scope.spawn(move || {
                let mut dispatch = Dispatch::new(order_tx, jobs_tx);
                produce(&mut |job| dispatch.job(job));
                dispatch.finish();
            });
            for _ in 0..threads {
                let jobs = &jobs_rx;
                scope.spawn(move || worker(parts, jobs));
            }
            merge(order_rx, seen, stats, &mut deliver);
        });
    }
}

/// Deliver every slot in order; inputs' results as their worker sends them.
fn merge<T>(
    order: Receiver<Slot<T>>,
    seen: &mut HashSet<String>,
    stats: &mut ScanStats,
    deliver: &mut dyn FnMut(Delivery<T>),
) {
    for slot in order {
        let rx = match slot {
            Slot::Note(t) => {
                deliver(Delivery::Note(t));
                continue;
            }
            Slot::Inputs(rx) => rx,
        };
        for msg in rx.into_iter().flatten() {
            match msg {
                Msg::Report(p) => commit(p, seen, stats, &mut |ev| deliver(Delivery::Event(ev))),
                Msg::RecordError(e) => deliver(Delivery::Event(ScanEvent::RecordError(e))),
                Msg::Done {
                    source,
                    result,
                    stats: input_stats,
                } => {
                    stats.add(&input_stats);
                    deliver(Delivery::Done { source, result });
                }
            }
        }
        // A worker that stopped before its inputs were done panicked; the
        // scope re-raises its panic once every thread has stopped.
    }
}
