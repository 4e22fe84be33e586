//! The raw input: gzip detected by its magic bytes (multi-member), the bytes
//! pulled counted so that an error can say where in the compressed input it
//! happened, and the decoder thread of [`super::split_pipelined`].

use super::ReadError;
use super::gzip::GzipMembers;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};

/// Bytes read from the raw input at a time.
pub(super) const CHUNK: usize = 256 << 10;

/// The raw (possibly compressed) input, buffered. Counts the bytes pulled,
/// so that an error can say where in the compressed input it happened, and
/// notes whether the raw input itself failed, so decoder errors can be told
/// apart. Its buffer is reused from one input to the next (a buffer that a
/// reader fills must be cleared once; `BufReader` over a plain `Read` clears
/// its whole capacity for every input, which cost as much as decompressing
/// a small CloudTrail file).
pub(super) struct RawInput<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
    state: RawState,
}

/// One read from the raw input, counted; a failure of the input itself is
/// noted.
fn read_counted(inner: &mut impl Read, state: &RawState, out: &mut [u8]) -> io::Result<usize> {
    loop {
        match inner.read(out) {
            Ok(n) => {
                state.count.fetch_add(n as u64, Ordering::Relaxed);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                state.failed.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
    }
}

impl<R: Read> RawInput<R> {
    /// Read more into the buffer, after what it holds. `Ok(0)` at the end.
    fn read_more(&mut self) -> io::Result<usize> {
        if self.pos == self.filled {
            (self.pos, self.filled) = (0, 0);
        }
        let n = read_counted(&mut self.inner, &self.state, &mut self.buf[self.filled..])?;
        self.filled += n;
        Ok(n)
    }

    /// Bytes pulled from the input and not handed on yet.
    pub fn buffered(&self) -> usize {
        self.filled - self.pos
    }

    pub fn into_buf(self) -> Vec<u8> {
        self.buf
    }
}

impl<R: Read> Read for RawInput<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.filled && out.len() >= self.buf.len() {
            // Nothing buffered and a large read: straight into `out`.
            return read_counted(&mut self.inner, &self.state, out);
        }
        let n = {
            let have = io::BufRead::fill_buf(self)?;
            let n = have.len().min(out.len());
            out[..n].copy_from_slice(&have[..n]);
            n
        };
        self.pos += n;
        Ok(n)
    }
}

impl<R: Read> io::BufRead for RawInput<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.filled {
            self.read_more()?;
        }
        Ok(&self.buf[self.pos..self.filled])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.filled);
    }
}

pub(super) enum Decoded<R: Read> {
    Plain(RawInput<R>),
    Gzip(GzipMembers<RawInput<R>>),
    /// Decompressed on another thread ([`super::split_pipelined`]).
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

impl<R: Read> Decoded<R> {
    /// The raw input's buffer and the gzip decoder, for the next input
    /// (none when piped: the decoder thread had them).
    pub fn into_parts(self) -> (Vec<u8>, Option<flate2::Decompress>) {
        match self {
            Decoded::Plain(r) => (r.into_buf(), None),
            Decoded::Gzip(d) => {
                let (raw, inflate) = d.into_parts();
                (raw.into_buf(), Some(inflate))
            }
            Decoded::Piped(_) => (Vec::new(), None),
        }
    }
}

/// What errors need to know about the raw input, shared with the decoder
/// thread.
#[derive(Clone)]
pub(super) struct RawState {
    pub is_gzip: bool,
    /// Bytes pulled from the raw input.
    pub count: Arc<AtomicU64>,
    /// The raw input itself failed (not the decoder).
    pub failed: Arc<AtomicBool>,
}

/// The input with gzip detected and the decoder in place.
pub(super) struct Prepared<R: Read> {
    pub decoded: Decoded<R>,
    pub state: RawState,
}

/// `buf`: a buffer to reuse (its contents do not matter); `inflate`: a gzip
/// decoder to reuse.
pub(super) fn prepare<R: Read>(
    input: R,
    name: &str,
    mut buf: Vec<u8>,
    inflate: Option<flate2::Decompress>,
) -> Result<Prepared<R>, ReadError> {
    if buf.len() != CHUNK {
        buf = vec![0; CHUNK];
    }
    let state = RawState {
        is_gzip: false,
        count: Arc::new(AtomicU64::new(0)),
        failed: Arc::new(AtomicBool::new(false)),
    };
    let mut raw = RawInput {
        inner: input,
        buf,
        pos: 0,
        filled: 0,
        state,
    };
    // Gzip by its magic bytes. A read may return a single byte (a pipe, a
    // network stream), so read until two bytes or the end of the input
    // (fuzz: cloudtrail_reader found gzip read as plain text when the first
    // read returned one byte).
    while raw.filled < 2 {
        match raw.read_more() {
            Ok(0) => break,
            Ok(_) => {}
            Err(err) => {
                return Err(ReadError::Io {
                    input: name.to_string(),
                    offset: raw.filled as u64,
                    err,
                });
            }
        }
    }
    raw.state.is_gzip = raw.buf[..raw.filled].starts_with(&[0x1f, 0x8b]);
    let state = raw.state.clone();
    let decoded = if state.is_gzip {
        Decoded::Gzip(GzipMembers::new(raw, inflate))
    } else {
        Decoded::Plain(raw)
    };
    Ok(Prepared { decoded, state })
}

/// Decompressed bytes handed from the decoder thread to the splitter.
const PIPE_CHUNK: usize = 512 << 10;

/// The splitter's end of the pipe: chunks in, empty buffers back.
pub(super) struct Pipe {
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

impl Pipe {
    pub fn new(rx: Receiver<io::Result<Vec<u8>>>, back: SyncSender<Vec<u8>>) -> Pipe {
        Pipe {
            rx,
            back,
            cur: Vec::new(),
            pos: 0,
        }
    }
}

/// The decoder thread of [`super::split_pipelined`]: decompress into chunks
/// of [`PIPE_CHUNK`] bytes and send them, then the error that ended the
/// input, if any (already a [`ReadError`] naming where).
pub(super) fn decode_to_pipe<R: Read>(
    mut decoded: Decoded<R>,
    state: &RawState,
    name: &str,
    tx: &SyncSender<io::Result<Vec<u8>>>,
    back: &Receiver<Vec<u8>>,
) {
    let mut total = 0u64;
    loop {
        let mut chunk = back.try_recv().unwrap_or_default();
        chunk.resize(PIPE_CHUNK, 0);
        let mut len = 0;
        let mut error = None;
        while len < PIPE_CHUNK {
            match decoded.read(&mut chunk[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let mapped = map_io_error(&decoded, state, name, total + len as u64, e);
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
}

/// An I/O error from the decoded stream as a [`ReadError`] naming where.
pub(super) fn map_io_error<R: Read>(
    r: &Decoded<R>,
    state: &RawState,
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
    let compressed_offset = state.count.load(Ordering::Relaxed);
    let input = name.to_string();
    if !state.is_gzip || state.failed.load(Ordering::Relaxed) {
        return ReadError::Io {
            input,
            offset: if state.is_gzip {
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
        Decoded::Gzip(d) => compressed_offset.saturating_sub(d.get_ref().buffered() as u64),
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
