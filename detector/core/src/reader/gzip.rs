//! Gzip (RFC 1952), every member in turn, over one raw-deflate decoder that
//! is reset rather than rebuilt from one input to the next.
//!
//! A decoder's state holds a 32 KiB window that is allocated and cleared
//! when it is made: for a CloudTrail file of a few kilobytes that costs a
//! tenth of reading it. [`GzipMembers`] takes the decoder of the previous
//! input and hands it back at the end ([`GzipMembers::into_parts`]).
//!
//! Each member: the header (magic, method 8, flags; the optional extra
//! field, name, comment and header CRC skipped), the deflate stream, then
//! the trailer, whose CRC-32 and length (mod 2^32) are checked against what
//! was decompressed. After a member, more bytes must be another member. An
//! input that ends inside a member is `UnexpectedEof` (truncated); anything
//! else wrong is `InvalidData`, with what was wrong.

use std::io::{self, BufRead, Read};

/// Header flags (RFC 1952, 2.3.1).
const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;
const RESERVED: u8 = 0b1110_0000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Before a member's header.
    Header,
    /// Inside its deflate stream.
    Body,
    /// After a member's trailer: another member or the end.
    Between,
    End,
}

/// The gzip members of `inner`, decompressed.
pub(super) struct GzipMembers<R> {
    inner: R,
    inflate: flate2::Decompress,
    crc: flate2::Crc,
    part: Part,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn truncated(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the input ends inside a gzip {what}"),
    )
}

impl<R: BufRead> GzipMembers<R> {
    /// `inflate`: a raw-deflate decoder to reuse (its state does not matter).
    pub fn new(inner: R, inflate: Option<flate2::Decompress>) -> GzipMembers<R> {
        GzipMembers {
            inner,
            inflate: inflate.unwrap_or_else(|| flate2::Decompress::new(false)),
            crc: flate2::Crc::new(),
            part: Part::Header,
        }
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The input, and the decoder for the next one.
    pub fn into_parts(self) -> (R, flate2::Decompress) {
        (self.inner, self.inflate)
    }

    fn exact(&mut self, out: &mut [u8], what: &str) -> io::Result<()> {
        let mut got = 0;
        while got < out.len() {
            let have = self.inner.fill_buf()?;
            if have.is_empty() {
                return Err(truncated(what));
            }
            let n = have.len().min(out.len() - got);
            out[got..got + n].copy_from_slice(&have[..n]);
            self.inner.consume(n);
            got += n;
        }
        Ok(())
    }

    fn skip(&mut self, mut n: usize, what: &str) -> io::Result<()> {
        while n > 0 {
            let have = self.inner.fill_buf()?;
            if have.is_empty() {
                return Err(truncated(what));
            }
            let k = have.len().min(n);
            self.inner.consume(k);
            n -= k;
        }
        Ok(())
    }

    /// Skip a zero-terminated field (the file name, the comment).
    fn skip_zero_terminated(&mut self, what: &str) -> io::Result<()> {
        loop {
            let have = self.inner.fill_buf()?;
            if have.is_empty() {
                return Err(truncated(what));
            }
            match memchr::memchr(0, have) {
                Some(i) => {
                    self.inner.consume(i + 1);
                    return Ok(());
                }
                None => {
                    let n = have.len();
                    self.inner.consume(n);
                }
            }
        }
    }

    fn header(&mut self) -> io::Result<()> {
        let mut fixed = [0u8; 10];
        self.exact(&mut fixed, "member header")?;
        if fixed[..2] != [0x1f, 0x8b] {
            return Err(invalid(format!(
                "not a gzip member (magic bytes {:02x} {:02x}, expected 1f 8b)",
                fixed[0], fixed[1]
            )));
        }
        if fixed[2] != 8 {
            return Err(invalid(format!(
                "gzip compression method {} (only 8, deflate, exists)",
                fixed[2]
            )));
        }
        let flags = fixed[3];
        if flags & RESERVED != 0 {
            return Err(invalid(format!(
                "gzip header flags {flags:#04x} set reserved bits"
            )));
        }
        if flags & FEXTRA != 0 {
            let mut len = [0u8; 2];
            self.exact(&mut len, "header's extra field")?;
            self.skip(usize::from(u16::from_le_bytes(len)), "header's extra field")?;
        }
        if flags & FNAME != 0 {
            self.skip_zero_terminated("header's file name")?;
        }
        if flags & FCOMMENT != 0 {
            self.skip_zero_terminated("header's comment")?;
        }
        if flags & FHCRC != 0 {
            self.skip(2, "header's CRC")?;
        }
        self.inflate.reset(false);
        self.crc.reset();
        Ok(())
    }

    fn trailer(&mut self) -> io::Result<()> {
        let mut t = [0u8; 8];
        self.exact(&mut t, "member trailer")?;
        let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        let size = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        if crc != self.crc.sum() {
            return Err(invalid(format!(
                "gzip CRC-32 mismatch: the trailer says {crc:08x}, the data gives {:08x}",
                self.crc.sum()
            )));
        }
        if size != self.crc.amount() {
            return Err(invalid(format!(
                "gzip length mismatch: the trailer says {size} bytes (mod 2^32), the data gives {}",
                self.crc.amount()
            )));
        }
        Ok(())
    }

    /// Decompress into `out` (not empty) from the current member's stream.
    fn body(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let input = self.inner.fill_buf()?;
            let at_end = input.is_empty();
            let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
            let status = self
                .inflate
                .decompress(input, out, flate2::FlushDecompress::None)
                .map_err(|e| invalid(format!("corrupt deflate stream: {e}")))?;
            let used = (self.inflate.total_in() - in0) as usize;
            let made = (self.inflate.total_out() - out0) as usize;
            self.inner.consume(used);
            self.crc.update(&out[..made]);
            if status == flate2::Status::StreamEnd {
                self.trailer()?;
                self.part = Part::Between;
                return Ok(made);
            }
            if made > 0 {
                return Ok(made);
            }
            if at_end {
                return Err(truncated("deflate stream"));
            }
            if used == 0 {
                // Input and room, yet no progress: cannot happen with a
                // well-behaved decoder; never loop on it.
                return Err(invalid("the deflate decoder made no progress".into()));
            }
        }
    }
}

impl<R: BufRead> Read for GzipMembers<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.part {
                Part::Header => {
                    self.header()?;
                    self.part = Part::Body;
                }
                Part::Body => {
                    let n = self.body(out)?;
                    if n > 0 {
                        return Ok(n);
                    }
                }
                Part::Between => {
                    self.part = if self.inner.fill_buf()?.is_empty() {
                        Part::End
                    } else {
                        Part::Header
                    };
                }
                Part::End => return Ok(0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn read_all(bytes: &[u8], inflate: Option<flate2::Decompress>) -> io::Result<Vec<u8>> {
        let mut r = GzipMembers::new(bytes, inflate);
        let mut out = Vec::new();
        // Small reads, so members and trailers straddle them.
        let mut buf = [0u8; 7];
        loop {
            match r.read(&mut buf)? {
                0 => return Ok(out),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    #[test]
    fn members_are_read_in_turn_and_the_decoder_is_reused() {
        let mut two = gz(b"{\"Records\":[");
        two.extend(gz(b"]}"));
        let mut r = GzipMembers::new(&two[..], None);
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        assert_eq!(out, "{\"Records\":[]}");
        let (_, inflate) = r.into_parts();
        // The same decoder, mid-state or not, reads the next input.
        assert_eq!(read_all(&gz(b"next"), Some(inflate)).unwrap(), b"next");
    }

    #[test]
    fn optional_header_fields_are_skipped() {
        let mut e = flate2::GzBuilder::new()
            .filename("CloudTrail.json")
            .comment("a comment")
            .extra(vec![1, 2, 3, 4])
            .write(Vec::new(), Compression::fast());
        e.write_all(b"payload").unwrap();
        let mut bytes = e.finish().unwrap();
        assert_eq!(read_all(&bytes, None).unwrap(), b"payload");
        // With a header CRC too (the flag, and two bytes after the comment).
        bytes[3] |= FHCRC;
        let end_of_header = 10 + 2 + 4 + "CloudTrail.json".len() + 1 + "a comment".len() + 1;
        bytes.splice(end_of_header..end_of_header, [0xab, 0xcd]);
        assert_eq!(read_all(&bytes, None).unwrap(), b"payload");
    }

    #[test]
    fn a_wrong_crc_or_length_is_invalid_data_naming_it() {
        let good = gz(b"some records");
        let n = good.len();
        let mut bad_crc = good.clone();
        bad_crc[n - 8] ^= 1;
        let e = read_all(&bad_crc, None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("CRC-32 mismatch"), "{e}");
        let mut bad_len = good;
        bad_len[n - 4] ^= 1;
        let e = read_all(&bad_len, None).unwrap_err();
        assert!(e.to_string().contains("length mismatch"), "{e}");
    }

    #[test]
    fn an_input_cut_anywhere_inside_a_member_is_truncated() {
        let good = gz(br#"{"Records":[{"eventID":"e1"}]}"#);
        for cut in 1..good.len() {
            let e = read_all(&good[..cut], None).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}: {e}");
        }
    }

    #[test]
    fn bytes_after_a_member_that_are_not_a_member_are_invalid() {
        let mut bytes = gz(b"records");
        bytes.extend_from_slice(b"garbage after the member");
        let e = read_all(&bytes, None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("not a gzip member"), "{e}");
        let mut method = gz(b"records");
        method[2] = 7;
        let e = read_all(&method, None).unwrap_err();
        assert!(e.to_string().contains("compression method 7"), "{e}");
        let mut reserved = gz(b"records");
        reserved[3] |= 0x80;
        let e = read_all(&reserved, None).unwrap_err();
        assert!(e.to_string().contains("reserved bits"), "{e}");
    }

    #[test]
    fn corrupt_deflate_data_is_invalid_data() {
        let mut bytes = gz(&[b'x'; 4096]);
        // The first byte of the deflate stream: block type 3 is reserved.
        bytes[10] = 0b111;
        let e = read_all(&bytes, None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("corrupt deflate stream"), "{e}");
    }

    #[test]
    fn the_same_bytes_as_flate2s_multi_member_decoder() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut many = Vec::new();
        for chunk in data.chunks(33_333) {
            many.extend(gz(chunk));
        }
        let mut expected = Vec::new();
        flate2::read::MultiGzDecoder::new(&many[..])
            .read_to_end(&mut expected)
            .unwrap();
        assert_eq!(read_all(&many, None).unwrap(), expected);
        assert_eq!(expected, data);
    }
}
