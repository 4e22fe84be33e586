//! Streaming reader for every shape CloudTrail is held in.
//!
//! The input is split into records at the byte level: a small state machine
//! finds each record's byte span (tracking strings, escapes and brace depth
//! with `memchr`) inside `{"Records":[...]}`, a bare array, JSON Lines, the
//! `Events` of `aws cloudtrail lookup-events`, or an EventBridge envelope's
//! `detail`. Only the current record (and one read chunk) is ever held in
//! memory, so memory is bounded by the largest record, not by the file. Gzip
//! (multi-member) is detected by its magic bytes, not by a file name.
//!
//! The splitter checks the JSON *structure* between records (objects where
//! records belong, commas, brackets, complete values); a record's own content
//! is validated by `serde_json` when the scanner deserialises it.

use memchr::{memchr2, memchr3, memrchr};
use std::fmt;
use std::io::{self, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Limits for one input.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Largest record accepted, in bytes (default 32 MiB).
    pub max_record_bytes: usize,
    /// Largest input accepted, in uncompressed bytes (default 8 GiB).
    pub max_input_bytes: u64,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            max_record_bytes: 32 << 20,
            max_input_bytes: 8 << 30,
        }
    }
}

/// A record that could not be read (its JSON or a field the classifier reads).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{0}")]
    Json(#[source] serde_json::Error),
    #[error("{0}")]
    FieldType(#[source] crate::record::FieldTypeError),
    #[error("lookup-events entry has no `CloudTrailEvent`")]
    NoCloudTrailEvent,
    #[error(
        "lookup-events entry: `CloudTrailEvent` must be a string holding the record's JSON, found {found}"
    )]
    CloudTrailEventType { found: &'static str },
    #[error(
        "lookup-events entry: the `CloudTrailEvent` string is not a JSON record (position inside the string): {0}"
    )]
    CloudTrailEventJson(#[source] serde_json::Error),
}

/// Where in the uncompressed input something was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Byte offset from the start of the (uncompressed) input.
    pub offset: u64,
    /// 1-based line and column.
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} column {} (byte {})",
            self.line, self.column, self.offset
        )
    }
}

/// An input (or one record of it) that could not be read. Every variant
/// names the input and where.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{input}: truncated gzip stream at byte {compressed_offset}")]
    TruncatedGzip {
        input: String,
        compressed_offset: u64,
    },
    #[error("{input}: invalid gzip data at byte {compressed_offset}: {err}")]
    Gzip {
        input: String,
        compressed_offset: u64,
        #[source]
        err: io::Error,
    },
    #[error("{input}: read failed at byte {offset}: {err}")]
    Io {
        input: String,
        offset: u64,
        #[source]
        err: io::Error,
    },
    #[error("{input}: {expected} at {at}")]
    Syntax {
        input: String,
        expected: &'static str,
        at: Position,
    },
    #[error(
        "{input}: unexpected end of input at {at}: {what} starting at byte {start} is incomplete"
    )]
    Eof {
        input: String,
        what: &'static str,
        start: u64,
        at: Position,
    },
    #[error("{input}: input is empty (no JSON value, not even an empty `Records` array)")]
    Empty { input: String },
    #[error(
        "{input}: record at byte {offset} is larger than the maximum record size of {limit} bytes"
    )]
    RecordTooLarge {
        input: String,
        offset: u64,
        limit: usize,
    },
    #[error(
        "{input}: input is larger than the maximum of {limit} uncompressed bytes (at byte {offset})"
    )]
    InputTooLarge {
        input: String,
        offset: u64,
        limit: u64,
    },
    #[error("{input}: record at {at}: {err}")]
    BadRecord {
        input: String,
        at: Position,
        #[source]
        err: RecordError,
    },
}

/// What the splitter found.
#[derive(Debug)]
pub(crate) enum RawItem<'a> {
    /// One CloudTrail record's JSON bytes.
    Record(&'a [u8]),
    /// One element of lookup-events' `Events` array (record in a string).
    LookupEvent(&'a [u8]),
    /// A CloudTrail digest file (skipped).
    Digest,
}

pub(crate) trait Sink {
    /// Handle an item; an error is reported at the item's position through
    /// [`Sink::record_error`] and the scan goes on.
    fn item(&mut self, item: RawItem<'_>) -> Result<(), RecordError>;
    fn record_error(&mut self, err: ReadError);
}

/// Counts bytes pulled from the raw (possibly compressed) input and notes
/// whether the raw input itself failed, so decoder errors can be told apart.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.count.fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.failed.store(true, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }
}

/// The first bytes of the input, read ahead to look for the gzip magic, then
/// handed back before the rest of the input.
struct Peeked<R> {
    head: [u8; 2],
    head_len: usize,
    head_pos: usize,
    inner: R,
}

impl<R: Read> Read for Peeked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.head_pos < self.head_len {
            let n = (self.head_len - self.head_pos).min(buf.len());
            buf[..n].copy_from_slice(&self.head[self.head_pos..self.head_pos + n]);
            self.head_pos += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

impl<R> Peeked<R> {
    /// Bytes read ahead and not handed back yet.
    fn unread(&self) -> usize {
        self.head_len - self.head_pos
    }
}

type Raw<R> = BufReader<Peeked<Counting<R>>>;

enum Decoded<R: Read> {
    Plain(Raw<R>),
    Gzip(flate2::bufread::MultiGzDecoder<Raw<R>>),
    /// Decompressed on another thread ([`split_pipelined`]).
    Piped(Pipe),
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoded::Plain(r) => r.read(buf),
            Decoded::Gzip(r) => r.read(buf),
            Decoded::Piped(r) => r.read(buf),
        }
    }
}

const CHUNK: usize = 256 << 10;
const INITIAL_BUF: usize = 1 << 20;

/// The input with gzip detected and the decoder in place.
struct Prepared<R: Read> {
    decoded: Decoded<R>,
    is_gzip: bool,
    count: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
}

fn prepare<R: Read>(input: R, name: &str) -> Result<Prepared<R>, ReadError> {
    let count = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let mut counting = Counting {
        inner: input,
        count: count.clone(),
        failed: failed.clone(),
    };
    // Gzip by its magic bytes. A read may return a single byte (a pipe, a
    // network stream), so read until two bytes or the end of the input
    // (fuzz: cloudtrail_reader found gzip read as plain text when the first
    // read returned one byte).
    let mut head = [0u8; 2];
    let mut head_len = 0;
    while head_len < head.len() {
        match counting.read(&mut head[head_len..]) {
            Ok(0) => break,
            Ok(n) => head_len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                return Err(ReadError::Io {
                    input: name.to_string(),
                    offset: head_len as u64,
                    err,
                });
            }
        }
    }
    let is_gzip = head[..head_len] == [0x1f, 0x8b];
    let raw = BufReader::with_capacity(
        CHUNK,
        Peeked {
            head,
            head_len,
            head_pos: 0,
            inner: counting,
        },
    );
    let decoded = if is_gzip {
        Decoded::Gzip(flate2::bufread::MultiGzDecoder::new(raw))
    } else {
        Decoded::Plain(raw)
    };
    Ok(Prepared {
        decoded,
        is_gzip,
        count,
        failed,
    })
}

impl<'o, R: Read> Splitter<'o, R> {
    fn new(
        r: Decoded<R>,
        p: (bool, Arc<AtomicU64>, Arc<AtomicBool>),
        opts: &'o ScanOptions,
        name: &'o str,
    ) -> Self {
        let (is_gzip, count, failed) = p;
        Splitter {
            r,
            is_gzip,
            count,
            failed,
            buf: vec![0; INITIAL_BUF],
            end: 0,
            pos: 0,
            mark: None,
            base: 0,
            lines: 0,
            last_nl: None,
            eof: false,
            opts,
            name,
        }
    }
}

/// Split `input` into items, calling `sink` for each. Returns the number of
/// uncompressed bytes read. An error here ends this input.
pub(crate) fn split<R: Read>(
    input: R,
    name: &str,
    opts: &ScanOptions,
    sink: &mut dyn Sink,
) -> Result<u64, ReadError> {
    let p = prepare(input, name)?;
    let mut s = Splitter::new(p.decoded, (p.is_gzip, p.count, p.failed), opts, name);
    s.run(sink)?;
    Ok(s.base + s.end as u64)
}

/// Decompressed bytes handed from the decoder thread to the splitter.
const PIPE_CHUNK: usize = 512 << 10;

/// The splitter's end of the pipe: chunks in, empty buffers back.
pub(crate) struct Pipe {
    rx: Receiver<io::Result<Vec<u8>>>,
    back: SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    let old = std::mem::replace(&mut self.cur, chunk);
                    let _ = self.back.try_send(old);
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Like [`split`], but a gzip input is decompressed on a second thread while
/// this one splits and classifies, so the scan runs at the speed of the
/// slower of the two instead of their sum. At most a few 512 KiB chunks are
/// in flight. Plain input is split directly.
pub(crate) fn split_pipelined<R: Read + Send>(
    input: R,
    name: &str,
    opts: &ScanOptions,
    sink: &mut dyn Sink,
) -> Result<u64, ReadError> {
    let p = prepare(input, name)?;
    if !p.is_gzip {
        let mut s = Splitter::new(p.decoded, (p.is_gzip, p.count, p.failed), opts, name);
        s.run(sink)?;
        return Ok(s.base + s.end as u64);
    }
    let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(2);
    let (back_tx, back_rx) = sync_channel::<Vec<u8>>(4);
    let (count, failed) = (p.count.clone(), p.failed.clone());
    let mut decoded = p.decoded;
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut total = 0u64;
            loop {
                let mut chunk = back_rx.try_recv().unwrap_or_default();
                chunk.resize(PIPE_CHUNK, 0);
                let mut len = 0;
                let mut error = None;
                while len < PIPE_CHUNK {
                    match decoded.read(&mut chunk[len..]) {
                        Ok(0) => break,
                        Ok(n) => len += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let mapped = map_io_error(
                                &decoded,
                                true,
                                &count,
                                &failed,
                                name,
                                total + len as u64,
                                e,
                            );
                            error = Some(io::Error::other(mapped));
                            break;
                        }
                    }
                }
                let end = len < PIPE_CHUNK || error.is_some();
                chunk.truncate(len);
                total += len as u64;
                if len > 0 && tx.send(Ok(chunk)).is_err() {
                    return; // the splitter stopped
                }
                if let Some(e) = error {
                    let _ = tx.send(Err(e));
                    return;
                }
                if end {
                    return;
                }
            }
        });
        let pipe = Pipe {
            rx,
            back: back_tx,
            cur: Vec::new(),
            pos: 0,
        };
        let mut s = Splitter::new(
            Decoded::<R>::Piped(pipe),
            (true, p.count, p.failed),
            opts,
            name,
        );
        let r = s.run(sink);
        let bytes = s.base + s.end as u64;
        drop(s); // closes the pipe, so a decoder still running stops
        r.map(|()| bytes)
    })
}

/// An I/O error from the decoded stream as a [`ReadError`] naming where.
fn map_io_error<R: Read>(
    r: &Decoded<R>,
    is_gzip: bool,
    count: &AtomicU64,
    failed: &AtomicBool,
    name: &str,
    uncompressed_offset: u64,
    err: io::Error,
) -> ReadError {
    // Already mapped on the decoder thread.
    let err = if err.get_ref().is_some_and(|e| e.is::<ReadError>()) {
        match err.into_inner().map(|e| e.downcast::<ReadError>()) {
            Some(Ok(mapped)) => return *mapped,
            Some(Err(other)) => io::Error::other(other),
            None => io::Error::other("decoder thread failed"),
        }
    } else {
        err
    };
    let compressed_offset = count.load(Ordering::Relaxed);
    let input = name.to_string();
    if !is_gzip || failed.load(Ordering::Relaxed) {
        return ReadError::Io {
            input,
            offset: if is_gzip {
                compressed_offset
            } else {
                uncompressed_offset
            },
            err,
        };
    }
    // Where the decoder stopped: what it pulled, less what is still
    // buffered ahead of it (not what read-ahead happened to fetch; fuzz:
    // cloudtrail_reader found the offset depended on read sizes).
    let compressed_offset = match r {
        Decoded::Gzip(d) => {
            let ahead = d.get_ref().buffer().len() + d.get_ref().get_ref().unread();
            compressed_offset.saturating_sub(ahead as u64)
        }
        Decoded::Plain(_) | Decoded::Piped(_) => compressed_offset,
    };
    if err.kind() == io::ErrorKind::UnexpectedEof {
        ReadError::TruncatedGzip {
            input,
            compressed_offset,
        }
    } else {
        ReadError::Gzip {
            input,
            compressed_offset,
            err,
        }
    }
}

/// Index of the first `"`, `{` or `}` in `hay`. The next one is usually a
/// few bytes away (between a key and its value), where a short scalar look
/// beats setting up `memchr3`.
#[inline]
fn find_structural(hay: &[u8]) -> Option<usize> {
    let n = hay.len().min(16);
    if let Some(i) = hay[..n]
        .iter()
        .position(|&b| matches!(b, b'"' | b'{' | b'}'))
    {
        return Some(i);
    }
    memchr3(b'"', b'{', b'}', &hay[n..]).map(|k| k + n)
}

/// Index of the first `"` or `\\` in `hay` (most strings are short keys).
#[inline]
fn find_quote_or_escape(hay: &[u8]) -> Option<usize> {
    let n = hay.len().min(32);
    if let Some(i) = hay[..n].iter().position(|&b| b == b'"' || b == b'\\') {
        return Some(i);
    }
    memchr2(b'"', b'\\', &hay[n..]).map(|k| k + n)
}

struct Splitter<'o, R: Read> {
    r: Decoded<R>,
    is_gzip: bool,
    count: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    buf: Vec<u8>,
    /// Valid bytes are `buf[..end]`.
    end: usize,
    /// Scanning position.
    pos: usize,
    /// Start of the value whose bytes must be kept across refills.
    mark: Option<usize>,
    /// Absolute offset of `buf[0]`.
    base: u64,
    /// Newlines in the input before `buf[0]`.
    lines: u64,
    /// Absolute offset of the last newline before `buf[0]`.
    last_nl: Option<u64>,
    eof: bool,
    opts: &'o ScanOptions,
    name: &'o str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ArrayKind {
    Records,
    Events,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Records,
    Events,
    Detail,
    DetailType,
    Digest,
    Other,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl<R: Read> Splitter<'_, R> {
    fn position(&self, p: usize) -> Position {
        let head = &self.buf[..p];
        let nl_in_buf = memchr::memchr_iter(b'\n', head).count() as u64;
        let last_nl = memrchr(b'\n', head)
            .map(|i| self.base + i as u64)
            .or(self.last_nl);
        let offset = self.base + p as u64;
        Position {
            offset,
            line: self.lines + nl_in_buf + 1,
            column: match last_nl {
                Some(nl) => offset - nl,
                None => offset + 1,
            },
        }
    }

    fn syntax(&self, expected: &'static str) -> ReadError {
        ReadError::Syntax {
            input: self.name.to_string(),
            expected,
            at: self.position(self.pos.min(self.end)),
        }
    }

    /// Absolute offset of `buf[p]`. Values that must survive a refill (which
    /// moves the buffer) are kept absolute (fuzz: cloudtrail_reader found
    /// "starting at byte" offsets off by however far the buffer had moved).
    fn abs(&self, p: usize) -> u64 {
        self.base + p as u64
    }

    /// `start` is absolute ([`Self::abs`]).
    fn eof_in(&self, what: &'static str, start: u64) -> ReadError {
        ReadError::Eof {
            input: self.name.to_string(),
            what,
            start,
            at: self.position(self.end),
        }
    }

    fn io_error(&self, err: io::Error) -> ReadError {
        map_io_error(
            &self.r,
            self.is_gzip,
            &self.count,
            &self.failed,
            self.name,
            self.base + self.end as u64,
            err,
        )
    }

    /// Read more input. Keeps `buf[mark..]` (or `buf[pos..]`); returns false
    /// at the end of the input.
    fn fill(&mut self) -> Result<bool, ReadError> {
        if self.eof {
            return Ok(false);
        }
        if let Some(m) = self.mark
            && self.pos - m > self.opts.max_record_bytes
        {
            return Err(ReadError::RecordTooLarge {
                input: self.name.to_string(),
                offset: self.base + m as u64,
                limit: self.opts.max_record_bytes,
            });
        }
        let keep = self.mark.unwrap_or(self.pos).min(self.pos);
        if keep > 0 {
            let gone = &self.buf[..keep];
            if let Some(i) = memrchr(b'\n', gone) {
                self.lines += memchr::memchr_iter(b'\n', gone).count() as u64;
                self.last_nl = Some(self.base + i as u64);
            }
            self.buf.copy_within(keep..self.end, 0);
            self.end -= keep;
            self.pos -= keep;
            if let Some(m) = &mut self.mark {
                *m -= keep;
            }
            self.base += keep as u64;
        }
        // Memory stays within the record cap plus a chunk or two: the buffer
        // grows no further than that, and a read never goes further past the
        // current record's start than the cap check needs (the bad-input
        // table found a 1 GiB record pulling 64 MiB for a 32 MiB cap).
        let held_max = self.opts.max_record_bytes.saturating_add(CHUNK);
        if self.buf.len() - self.end < CHUNK {
            let want = (self.buf.len() * 2)
                .min(held_max.saturating_add(CHUNK))
                .max(self.end + CHUNK);
            self.buf.resize(want, 0);
        }
        let room = match self.mark {
            Some(m) => held_max.saturating_sub(self.end - m).max(1),
            None => usize::MAX,
        };
        let stop = self.end.saturating_add(room).min(self.buf.len());
        loop {
            match self.r.read(&mut self.buf[self.end..stop]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    let total = self.base + self.end as u64;
                    if total > self.opts.max_input_bytes {
                        return Err(ReadError::InputTooLarge {
                            input: self.name.to_string(),
                            offset: total,
                            limit: self.opts.max_input_bytes,
                        });
                    }
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(e)),
            }
        }
    }

    /// Make sure `buf[pos]` exists; false at the end of the input.
    fn have(&mut self) -> Result<bool, ReadError> {
        while self.pos >= self.end {
            if !self.fill()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Skip whitespace; the next byte, or None at the end of the input.
    fn peek_non_ws(&mut self) -> Result<Option<u8>, ReadError> {
        loop {
            if !self.have()? {
                return Ok(None);
            }
            let b = self.buf[self.pos];
            if is_ws(b) {
                self.pos += 1;
            } else {
                return Ok(Some(b));
            }
        }
    }

    fn expect_non_ws(&mut self, what: &'static str, start: u64) -> Result<u8, ReadError> {
        match self.peek_non_ws()? {
            Some(b) => Ok(b),
            None => Err(self.eof_in(what, start)),
        }
    }

    fn run(&mut self, sink: &mut dyn Sink) -> Result<(), ReadError> {
        // UTF-8 byte-order mark.
        if self.have()? && self.buf[self.pos] == 0xEF {
            while self.end < 3 && self.fill()? {}
            if self.buf[..self.end].starts_with(&[0xEF, 0xBB, 0xBF]) {
                self.pos = 3;
            }
        }
        let mut first = true;
        while let Some(b) = self.peek_non_ws()? {
            match b {
                b'{' => self.top_object(sink)?,
                b'[' if first => self.array(ArrayKind::Records, sink)?,
                _ => return Err(self.syntax("expected JSON object")),
            }
            first = false;
        }
        if first {
            // CloudTrail never writes an empty file; fail rather than report
            // "no records" for an object that lost its content.
            return Err(ReadError::Empty {
                input: self.name.to_string(),
            });
        }
        Ok(())
    }

    fn emit(&mut self, item_start: usize, item: RawItem<'_>, sink: &mut dyn Sink) {
        if let Err(err) = sink.item(item) {
            sink.record_error(ReadError::BadRecord {
                input: self.name.to_string(),
                at: self.position(item_start),
                err,
            });
        }
    }

    /// `pos` at `[`: every element must be an object.
    fn array(&mut self, kind: ArrayKind, sink: &mut dyn Sink) -> Result<(), ReadError> {
        let start = self.abs(self.pos);
        self.pos += 1;
        if self.expect_non_ws("JSON array", start)? == b']' {
            self.pos += 1;
            return Ok(());
        }
        loop {
            let b = self.expect_non_ws("JSON array", start)?;
            if b != b'{' {
                return Err(self.syntax("expected JSON object"));
            }
            self.mark = Some(self.pos);
            self.skip_object()?;
            let m = self.mark.take().unwrap_or_default();
            let (bytes, end) = (m, self.pos);
            let item = match kind {
                ArrayKind::Records => RawItem::Record(&self.buf[bytes..end]),
                ArrayKind::Events => RawItem::LookupEvent(&self.buf[bytes..end]),
            };
            if let Err(err) = sink.item(item) {
                let at = self.position(bytes);
                sink.record_error(ReadError::BadRecord {
                    input: self.name.to_string(),
                    at,
                    err,
                });
            }
            match self.expect_non_ws("JSON array", start)? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.syntax("expected `,` or `]`")),
            }
        }
    }

    /// A top-level object: a container (`Records`/`Events`), an EventBridge
    /// envelope, a digest, or a record on its own (a JSON Lines line).
    fn top_object(&mut self, sink: &mut dyn Sink) -> Result<(), ReadError> {
        let start = self.abs(self.pos);
        self.mark = Some(self.pos);
        self.pos += 1;
        let mut container = false;
        let mut digest = false;
        let mut detail: Option<(usize, usize)> = None;
        let mut detail_type = false;
        if self.expect_non_ws("JSON object", start)? == b'}' {
            self.pos += 1;
        } else {
            loop {
                if self.expect_non_ws("JSON object", start)? != b'"' {
                    return Err(self.syntax("expected a string key"));
                }
                let key = self.key()?;
                if self.expect_non_ws("JSON object", start)? != b':' {
                    return Err(self.syntax("expected `:`"));
                }
                self.pos += 1;
                let v = self.expect_non_ws("JSON object", start)?;
                match (key, v) {
                    (Key::Records, b) if b != b'[' => {
                        return Err(self.syntax("expected `Records` to be an array of records"));
                    }
                    (Key::Events, b) if b != b'[' => {
                        return Err(self
                            .syntax("expected `Events` to be an array of lookup-events entries"));
                    }
                    (Key::Records, b'[') | (Key::Events, b'[') => {
                        container = true;
                        self.mark = None;
                        let kind = if key == Key::Records {
                            ArrayKind::Records
                        } else {
                            ArrayKind::Events
                        };
                        self.array(kind, sink)?;
                    }
                    (Key::Detail, b'{') if !container => {
                        let m = self.mark.unwrap_or_default();
                        let s = self.pos - m;
                        self.skip_object()?;
                        let m = self.mark.unwrap_or_default();
                        detail = Some((s, self.pos - m));
                    }
                    (k, _) => {
                        digest |= k == Key::Digest;
                        detail_type |= k == Key::DetailType;
                        self.skip_value(start)?;
                    }
                }
                match self.expect_non_ws("JSON object", start)? {
                    b',' => self.pos += 1,
                    b'}' => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.syntax("expected `,` or `}`")),
                }
            }
        }
        let Some(m) = self.mark.take() else {
            return Ok(()); // a container: its records were emitted
        };
        if container {
            return Ok(());
        }
        if digest {
            self.emit(m, RawItem::Digest, sink);
            return Ok(());
        }
        let (s, e) = match (detail, detail_type) {
            (Some((s, e)), true) => (m + s, m + e),
            _ => (m, self.pos),
        };
        if let Err(err) = sink.item(RawItem::Record(&self.buf[s..e])) {
            let at = self.position(s);
            sink.record_error(ReadError::BadRecord {
                input: self.name.to_string(),
                at,
                err,
            });
        }
        Ok(())
    }

    /// `pos` at the opening quote of a key; reads it and classifies it.
    fn key(&mut self) -> Result<Key, ReadError> {
        let saved = self.mark;
        let ks = self.pos;
        if saved.is_none() {
            self.mark = Some(ks);
        }
        let rel = ks - self.mark.unwrap_or_default();
        self.pos += 1;
        self.skip_string_body(self.abs(ks))?;
        let m = self.mark.unwrap_or_default();
        let key = &self.buf[m + rel + 1..self.pos - 1];
        let k = match key {
            b"Records" => Key::Records,
            b"Events" => Key::Events,
            b"detail" => Key::Detail,
            b"detail-type" => Key::DetailType,
            b"digestStartTime" | b"logFiles" => Key::Digest,
            _ => Key::Other,
        };
        if saved.is_none() {
            self.mark = None;
        }
        Ok(k)
    }

    /// `pos` just after an opening quote; moves past the closing quote.
    fn skip_string_body(&mut self, start: u64) -> Result<(), ReadError> {
        loop {
            match find_quote_or_escape(&self.buf[self.pos..self.end]) {
                Some(i) => {
                    let p = self.pos + i;
                    if self.buf[p] == b'"' {
                        self.pos = p + 1;
                        return Ok(());
                    }
                    // An escape: skip the backslash and the byte after it.
                    self.pos = p + 1;
                    if !self.have()? {
                        return Err(self.eof_in("JSON string", start));
                    }
                    self.pos += 1;
                }
                None => {
                    self.pos = self.end;
                    if !self.fill()? {
                        return Err(self.eof_in("JSON string", start));
                    }
                }
            }
        }
    }

    /// `pos` at `{`; moves past the matching `}`. Brackets need no tracking:
    /// in JSON that nests properly the braces balance on their own.
    fn skip_object(&mut self) -> Result<(), ReadError> {
        let start = self.abs(self.pos);
        let mut depth = 0usize;
        loop {
            match find_structural(&self.buf[self.pos..self.end]) {
                Some(i) => {
                    let p = self.pos + i;
                    self.pos = p + 1;
                    match self.buf[p] {
                        b'{' => depth += 1,
                        b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                return Ok(());
                            }
                        }
                        _ => {
                            // Most strings end within the buffer without an
                            // escape: handle that here, the rest below.
                            match find_quote_or_escape(&self.buf[self.pos..self.end]) {
                                Some(k) if self.buf[self.pos + k] == b'"' => self.pos += k + 1,
                                _ => self.skip_string_body(self.abs(p))?,
                            }
                        }
                    }
                }
                None => {
                    self.pos = self.end;
                    if !self.fill()? {
                        return Err(self.eof_in("JSON object", start));
                    }
                }
            }
        }
    }

    /// `pos` at `[`; moves past the matching `]`.
    fn skip_array(&mut self) -> Result<(), ReadError> {
        let start = self.abs(self.pos);
        let mut depth = 0usize;
        loop {
            match memchr3(b'"', b'[', b']', &self.buf[self.pos..self.end]) {
                Some(i) => {
                    let p = self.pos + i;
                    self.pos = p + 1;
                    match self.buf[p] {
                        b'[' => depth += 1,
                        b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Ok(());
                            }
                        }
                        _ => self.skip_string_body(self.abs(p))?,
                    }
                }
                None => {
                    self.pos = self.end;
                    if !self.fill()? {
                        return Err(self.eof_in("JSON array", start));
                    }
                }
            }
        }
    }

    /// Skip any JSON value at `pos`.
    fn skip_value(&mut self, container_start: u64) -> Result<(), ReadError> {
        match self.buf[self.pos] {
            b'"' => {
                let s = self.pos;
                self.pos += 1;
                self.skip_string_body(self.abs(s))
            }
            b'{' => self.skip_object(),
            b'[' => self.skip_array(),
            b',' | b'}' | b']' | b':' => Err(self.syntax("expected a JSON value")),
            _ => {
                // number, true, false, null
                loop {
                    if !self.have()? {
                        return Err(self.eof_in("JSON object", container_start));
                    }
                    let b = self.buf[self.pos];
                    if matches!(b, b',' | b'}' | b']') || is_ws(b) {
                        return Ok(());
                    }
                    if !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')) {
                        return Err(self.syntax("expected a JSON value"));
                    }
                    self.pos += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Classifier, ClassifierConfig, ScanOptions, Scanner};
    use std::io::{self, Read};

    /// Hands the input over one byte per read, as a pipe may.
    struct OneByte<'a>(&'a [u8]);

    impl Read for OneByte<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            if buf.is_empty() {
                return Ok(0);
            }
            buf[0] = *first;
            self.0 = rest;
            Ok(1)
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    /// Fuzz (cloudtrail_reader, crash-71b05364): a gzip file whose first read
    /// returned one byte was read as plain text and failed with "expected
    /// JSON object at line 1 column 1".
    #[test]
    fn regression_fuzz_cloudtrail_reader_gzip_magic_split_across_reads() {
        let log = br#"{"Records":[{"eventID":"e1","eventSource":"s3.amazonaws.com","eventName":"GetObject"}]}"#;
        let gz = gzip(log);
        let mut scanner = Scanner::new(
            Classifier::new(ClassifierConfig::default()),
            ScanOptions::default(),
        );
        let report = scanner
            .scan_reader(OneByte(&gz), "one-byte.json.gz", |_| {})
            .unwrap();
        assert_eq!(report.records, 1);
        assert_eq!(report.bytes, log.len() as u64);
    }

    /// Fuzz (cloudtrail_reader, crash-6d0ef560): a bad gzip header was
    /// reported "at byte 446" (everything read ahead so far) when read at
    /// once, "at byte 11" when read in pieces. The offset is now where the
    /// decoder stopped, whatever the read sizes.
    #[test]
    fn regression_fuzz_cloudtrail_reader_gzip_error_offset_is_where_the_decoder_stopped() {
        let mut gz = gzip(&[b' '; 4000]);
        gz[2] = 9; // compression method 9 does not exist
        let scan = |r: &mut dyn Read| {
            let mut scanner = Scanner::new(
                Classifier::new(ClassifierConfig::default()),
                ScanOptions::default(),
            );
            scanner
                .scan_reader(r, "bad-header.json.gz", |_| {})
                .unwrap_err()
                .to_string()
        };
        let whole = scan(&mut &gz[..]);
        assert_eq!(whole, scan(&mut OneByte(&gz)));
        assert!(whole.contains("invalid gzip data at byte "), "{whole}");
        let at: u64 = whole
            .split("at byte ")
            .nth(1)
            .and_then(|r| r.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no offset in {whole}"));
        assert!(
            at <= 10,
            "the header is 10 bytes, error reported at {at}: {whole}"
        );
    }

    /// Fuzz (cloudtrail_reader, crash-acdabda2): "JSON object starting at
    /// byte N is incomplete" named 4716 for a record at byte 2358 (read at
    /// once) and 3177 (read in pieces): the start was a buffer index that
    /// went stale when a refill moved the buffer.
    #[test]
    fn regression_fuzz_cloudtrail_reader_incomplete_value_start_survives_refills() {
        let scan = |r: &mut dyn Read| {
            let mut scanner = Scanner::new(
                Classifier::new(ClassifierConfig::default()),
                ScanOptions::default(),
            );
            scanner
                .scan_reader(r, "cut.json", |_| {})
                .unwrap_err()
                .to_string()
        };
        let log = br#"{"Records":[{"a":1},{"b":2,"c":"xy"#;
        let whole = scan(&mut &log[..]);
        assert_eq!(whole, scan(&mut OneByte(log)));
        assert!(
            whole.contains("JSON string starting at byte 31 is incomplete"),
            "{whole}"
        );
        let log = br#"{"Records":[{"a":1},{"b":2"#;
        let whole = scan(&mut &log[..]);
        assert_eq!(whole, scan(&mut OneByte(log)));
        assert!(
            whole.contains("JSON object starting at byte 20 is incomplete"),
            "{whole}"
        );
    }
}
