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
//! is validated by `serde_json` when the scanner deserialises it. A record
//! is found 64 bytes at a time ([`blocks`]) without building any value, so a
//! record the scanner skips costs little more than reading its bytes.
//!
//! - [`decode`]: gzip by its magic bytes, byte counts for errors, the
//!   decoder thread of [`split_pipelined`].
//! - [`splitter`]: the shapes, the buffer, positions and errors.
//! - [`blocks`]: where an object ends, and whether it holds an escape that
//!   could spell a name in other bytes.

mod blocks;
mod decode;
mod gzip;
mod splitter;

use decode::{Decoded, Pipe, Prepared, decode_to_pipe, prepare};
use splitter::Splitter;
use std::fmt;
use std::io::{self, Read};
use std::sync::mpsc::sync_channel;

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
    /// One CloudTrail record's JSON bytes. `escapes`: it holds a `\\u` or
    /// `\\/` escape (or may: the flag is never false when it does), so text
    /// in it may be spelt differently from its bytes.
    Record { bytes: &'a [u8], escapes: bool },
    /// One element of lookup-events' `Events` array (record in a string).
    LookupEvent(&'a [u8]),
    /// A CloudTrail digest file (skipped).
    Digest,
    /// A top-level JSON object that is neither a container of records, an
    /// EventBridge envelope, a digest, nor a record (no key every CloudTrail
    /// record has): a Config snapshot, a stray file.
    NotCloudTrail,
}

pub(crate) trait Sink {
    /// Handle an item; an error is reported at the item's position through
    /// [`Sink::record_error`] and the scan goes on.
    fn item(&mut self, item: RawItem<'_>) -> Result<(), RecordError>;
    fn record_error(&mut self, err: ReadError);
}

/// The reader's buffers, kept from one input to the next, so that reading
/// many small inputs does not allocate and clear buffers for each.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    split: Vec<u8>,
    raw: Vec<u8>,
    /// The gzip decoder: its window is cleared when it is made, which on a
    /// small file costs a tenth of reading it.
    inflate: Option<flate2::Decompress>,
}

/// Split `input` into items, calling `sink` for each. Returns the number of
/// uncompressed bytes read. An error here ends this input.
pub(crate) fn split<R: Read>(
    input: R,
    name: &str,
    opts: &ScanOptions,
    sink: &mut dyn Sink,
    bufs: &mut Buffers,
) -> Result<u64, ReadError> {
    let p = bufs.prepare(input, name)?;
    split_here(p, name, opts, sink, bufs)
}

impl Buffers {
    /// `input` with gzip detected and the decoder in place, on these
    /// buffers and this decoder.
    fn prepare<R: Read>(&mut self, input: R, name: &str) -> Result<Prepared<R>, ReadError> {
        prepare(
            input,
            name,
            std::mem::take(&mut self.raw),
            self.inflate.take(),
        )
    }
}

/// Split a prepared input on this thread.
fn split_here<R: Read>(
    p: Prepared<R>,
    name: &str,
    opts: &ScanOptions,
    sink: &mut dyn Sink,
    bufs: &mut Buffers,
) -> Result<u64, ReadError> {
    let split_buf = std::mem::take(&mut bufs.split);
    let mut s = Splitter::new(p.decoded, p.state, opts, name, split_buf);
    let r = s.run(sink);
    let bytes = s.bytes_read();
    (bufs.split, bufs.raw, bufs.inflate) = s.into_bufs();
    r.map(|()| bytes)
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
    bufs: &mut Buffers,
) -> Result<u64, ReadError> {
    let p = bufs.prepare(input, name)?;
    if !p.state.is_gzip {
        return split_here(p, name, opts, sink, bufs);
    }
    let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(2);
    let (back_tx, back_rx) = sync_channel::<Vec<u8>>(4);
    let state = p.state.clone();
    let decoded = p.decoded;
    std::thread::scope(|scope| {
        scope.spawn(move || decode_to_pipe(decoded, &state, name, &tx, &back_rx));
        let pipe = Pipe::new(rx, back_tx);
        let piped = Decoded::<R>::Piped(pipe);
        let mut s = Splitter::new(piped, p.state, opts, name, std::mem::take(&mut bufs.split));
        let r = s.run(sink);
        let bytes = s.bytes_read();
        // Dropping the splitter's pipe stops a decoder still running (the
        // raw buffer stays with the decoder thread).
        bufs.split = s.into_bufs().0;
        r.map(|()| bytes)
    })
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
