//! The splitter: a small state machine over the decoded bytes that finds
//! each item of every input shape (the `Records` of a CloudTrail file, a
//! bare array, JSON Lines, lookup-events' `Events`, an EventBridge
//! envelope's `detail`), keeping only the current record and one read
//! chunk in its buffer, and names where anything went wrong.

use super::blocks::{ObjectEnd, open_string_start};
use super::decode::{CHUNK, Decoded, RawState, map_io_error};
use super::{Position, RawItem, ReadError, ScanOptions, Sink};
use memchr::{memchr2, memchr3, memmem, memrchr};
use std::io::{self, Read};

/// The buffer's first size; it grows up to the record cap.
const INITIAL_BUF: usize = 1 << 20;

/// Index of the first `"` or `\\` in `hay` (most strings are short keys).
#[inline]
fn find_quote_or_escape(hay: &[u8]) -> Option<usize> {
    let n = hay.len().min(32);
    if let Some(i) = hay[..n].iter().position(|&b| b == b'"' || b == b'\\') {
        return Some(i);
    }
    memchr2(b'"', b'\\', &hay[n..]).map(|k| k + n)
}

pub(super) struct Splitter<'o, R: Read> {
    r: Decoded<R>,
    raw: RawState,
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
    /// A key every CloudTrail record has (`eventVersion`, `eventSource`,
    /// `eventName`, `eventID`, `eventTime`), or an escaped key that may
    /// spell one.
    RecordField,
    Other,
}

/// Might `bytes` hold a `\\u` or `\\/` escape? (Also true for an escaped
/// backslash followed by `u` or `/`: never false when it does.)
fn may_hold_escapes(bytes: &[u8]) -> bool {
    memmem::find(bytes, b"\\u").is_some() || memmem::find(bytes, b"\\/").is_some()
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
        map_io_error(&self.r, &self.raw, self.name, self.bytes_read(), err)
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

    pub fn run(&mut self, sink: &mut dyn Sink) -> Result<(), ReadError> {
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
            let escapes = self.skip_object()?;
            let m = self.mark.take().unwrap_or_default();
            let (bytes, end) = (m, self.pos);
            let item = match kind {
                ArrayKind::Records => RawItem::Record {
                    bytes: &self.buf[bytes..end],
                    escapes,
                },
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
        let mut record_field = false;
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
                        record_field |= k == Key::RecordField;
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
            _ if !record_field => {
                // JSON, but not a CloudTrail record on its own (a Config
                // snapshot, a stray object): told apart, never read as one.
                self.emit(m, RawItem::NotCloudTrail, sink);
                return Ok(());
            }
            _ => (m, self.pos),
        };
        let bytes = &self.buf[s..e];
        let escapes = may_hold_escapes(bytes);
        if let Err(err) = sink.item(RawItem::Record { bytes, escapes }) {
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
            b"eventVersion" | b"eventSource" | b"eventName" | b"eventID" | b"eventTime" => {
                Key::RecordField
            }
            k if k.contains(&b'\\') => Key::RecordField,
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

    /// `pos` at `{`; moves past the matching `}`, 64 bytes at a time
    /// ([`ObjectEnd`]). Returns whether the object holds a `\\u` or `\\/`
    /// escape. Brackets need no tracking: in JSON that nests properly the
    /// braces balance on their own.
    fn skip_object(&mut self) -> Result<bool, ReadError> {
        let start = self.abs(self.pos);
        let mut st = ObjectEnd::default();
        loop {
            while self.end - self.pos >= 64 {
                let block: &[u8; 64] = self.buf[self.pos..self.pos + 64]
                    .try_into()
                    .unwrap_or(&[b' '; 64]);
                if let Some(i) = st.block(block, 64) {
                    self.pos += i + 1;
                    return Ok(st.escapes);
                }
                self.pos += 64;
            }
            // A short tail, handled now rather than after the next read: a
            // stream may not send more until this record is answered.
            let n = self.end - self.pos;
            if n > 0 {
                let mut block = [b' '; 64];
                block[..n].copy_from_slice(&self.buf[self.pos..self.end]);
                if let Some(i) = st.block(&block, n) {
                    self.pos += i + 1;
                    return Ok(st.escapes);
                }
                self.pos = self.end;
            }
            if !self.fill()? {
                return Err(self.eof_in_object(start, st.ends_in_string));
            }
        }
    }

    /// The end of the input inside the object starting at `start`: name the
    /// string it was cut off in when the object's bytes are all held (a
    /// record, or a value inside one), else the object.
    fn eof_in_object(&self, start: u64, in_string: bool) -> ReadError {
        let held = self
            .mark
            .is_some_and(|m| self.base + m as u64 <= start)
            .then(|| (start - self.base) as usize);
        match held
            .filter(|_| in_string)
            .and_then(|s| open_string_start(&self.buf[s..self.end]).map(|i| self.abs(s + i)))
        {
            Some(string_start) => self.eof_in("JSON string", string_start),
            None => self.eof_in("JSON object", start),
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
            b'{' => self.skip_object().map(|_| ()),
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

impl<'o, R: Read> Splitter<'o, R> {
    /// `buf`: a buffer to reuse (its contents do not matter).
    pub fn new(
        r: Decoded<R>,
        raw: RawState,
        opts: &'o ScanOptions,
        name: &'o str,
        mut buf: Vec<u8>,
    ) -> Self {
        if buf.len() < INITIAL_BUF {
            buf.resize(INITIAL_BUF, 0);
        }
        Splitter {
            r,
            raw,
            buf,
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

    /// Uncompressed bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.base + self.end as u64
    }

    /// The buffers and decoder, for the next input: the split buffer (a
    /// buffer grown for a large record is let go instead), the raw input's,
    /// and the gzip decoder.
    pub fn into_bufs(self) -> (Vec<u8>, Vec<u8>, Option<flate2::Decompress>) {
        let split = if self.buf.len() > 4 * INITIAL_BUF {
            Vec::new()
        } else {
            self.buf
        };
        let (raw, inflate) = self.r.into_parts();
        (split, raw, inflate)
    }
}
