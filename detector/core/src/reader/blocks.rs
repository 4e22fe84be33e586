//! Where a JSON object ends, found 64 bytes at a time without building any
//! value: the structural skip every record goes through, and the only work
//! done on a record the prefilter then rules out.
//!
//! The method is simdjson's (Langdale and Lemire, "Parsing Gigabytes of JSON
//! per Second", 2019), in plain safe Rust that the compiler vectorises: a
//! block's bytes are compared against `"`, `\`, `{` and `}` to give one bit
//! per byte; backslash runs mark the bytes they escape; the quotes left
//! delimit strings, and a prefix XOR over them gives the bytes inside
//! strings; the braces outside strings change the depth.
//!
//! Most blocks hold no brace and no backslash (in CloudTrail about one in
//! four bytes blocks holds a brace, one in thirty a backslash). For those
//! only the parity of their quotes matters, which is counted without
//! building any bit mask.

/// One bit per byte of `block`: set where `is(byte)`.
#[inline(always)]
fn mask(block: &[u8; 64], is: impl Fn(u8) -> bool) -> u64 {
    // 0 or 1 per byte (a vectorised compare), then the eight bytes of each
    // word gathered into eight bits by one multiplication: byte j is 2^(8j)
    // at most, and 2^(8j) * 2^(56-7j) = 2^(56+j), with no carries between
    // the products.
    let mut ones = [0u8; 64];
    for (o, &x) in ones.iter_mut().zip(block) {
        *o = u8::from(is(x));
    }
    let mut m = 0u64;
    for (k, word) in ones.chunks_exact(8).enumerate() {
        let w = u64::from_le_bytes(word.try_into().unwrap_or_default());
        m |= (w.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * k);
    }
    m
}

/// Does `block` hold a byte for which `is` holds?
#[inline(always)]
fn has(block: &[u8; 64], is: impl Fn(u8) -> bool) -> bool {
    let mut any = 0u8;
    for &x in block {
        any |= u8::from(is(x));
    }
    any != 0
}

/// Bit i set when an odd number of bits at or below i are set in `x`.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The state of a scan through one object, carried from block to block.
/// Start it at the object's `{`.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct ObjectEnd {
    /// Braces open outside strings.
    depth: u32,
    /// The next block starts inside a string.
    in_string: bool,
    /// The next block's first byte is escaped (the last one ended a run of
    /// an odd number of backslashes).
    escaped: bool,
    /// A `\u` or `\/` escape was seen: text in the object may be spelt
    /// with escapes, so a byte search for a name is not conclusive.
    pub escapes: bool,
    /// Inside a string at the end of the last block.
    pub ends_in_string: bool,
}

impl ObjectEnd {
    /// Scan the first `n` bytes of `block` (`1 <= n <= 64`; the rest must
    /// be spaces). Returns the index of the `}` that closes the object, if
    /// it is among them; otherwise the state is ready for the next block.
    #[inline(always)]
    pub fn block(&mut self, block: &[u8; 64], n: usize) -> Option<usize> {
        debug_assert!((1..=64).contains(&n));
        if !self.escaped {
            // One pass: any backslash or brace, and the number of quotes.
            let (mut special, mut quotes) = (0u8, 0u8);
            for &x in block {
                special |= u8::from(x == b'\\' || x == b'{' || x == b'}');
                quotes = quotes.wrapping_add(u8::from(x == b'"'));
            }
            if special == 0 {
                self.in_string ^= quotes & 1 == 1;
                self.ends_in_string = self.in_string;
                return None;
            }
        }
        self.block_with_masks(block, n)
    }

    fn block_with_masks(&mut self, block: &[u8; 64], n: usize) -> Option<usize> {
        // Bytes escaped by a backslash, including the first byte of the next
        // block (bit 64, or bit `n` of a short block).
        let mut escaped = u128::from(self.escaped);
        if has(block, |x| x == b'\\') {
            // A backslash that is itself escaped starts nothing.
            let mut starts = u128::from(mask(block, |x| x == b'\\')) & !escaped;
            while starts != 0 {
                let i = starts.trailing_zeros();
                let next = 1u128 << (i + 1);
                escaped |= next;
                starts &= !next;
                starts &= starts - 1;
            }
        }
        let mut e = escaped as u64;
        if n < 64 {
            e &= (1u64 << n) - 1;
        }
        while e != 0 {
            let j = e.trailing_zeros() as usize;
            self.escapes |= matches!(block[j], b'u' | b'/');
            e &= e - 1;
        }
        self.escaped = (escaped >> n) & 1 == 1;
        let escaped = escaped as u64;
        let quotes = mask(block, |x| x == b'"') & !escaped;
        let inside = prefix_xor(quotes) ^ if self.in_string { u64::MAX } else { 0 };
        self.in_string = (inside >> (n - 1)) & 1 == 1;
        self.ends_in_string = self.in_string;
        // Braces are few: one mask for both, told apart one by one. (An
        // escaped brace is inside a string in valid JSON; excluding it keeps
        // invalid input read the same way at any block boundary.)
        let mut braces = mask(block, |x| x == b'{' || x == b'}') & !inside & !escaped;
        while braces != 0 {
            let i = braces.trailing_zeros() as usize;
            if block[i] == b'{' {
                self.depth += 1;
            } else {
                self.depth -= 1;
                if self.depth == 0 {
                    return Some(i);
                }
            }
            braces &= braces - 1;
        }
        None
    }
}

/// Where the string open at the end of `bytes` (an object's bytes from its
/// `{`) starts, found byte by byte; for the error message of an object cut
/// off inside a string.
pub(super) fn open_string_start(bytes: &[u8]) -> Option<usize> {
    let (mut start, mut in_string, mut escaped) = (None, false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if in_string && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            in_string = !in_string;
            if in_string {
                start = Some(i);
            }
        }
    }
    start.filter(|_| in_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The obvious byte-by-byte version: (index of the closing `}`, whether
    /// a `\u` or `\/` escape was seen before it).
    fn reference(bytes: &[u8]) -> (Option<usize>, bool) {
        let (mut depth, mut in_string, mut escaped, mut escapes) = (0u32, false, false, false);
        for (i, &b) in bytes.iter().enumerate() {
            if escaped {
                escaped = false;
                escapes |= b == b'u' || b == b'/';
                continue;
            }
            match b {
                b'\\' => escaped = true,
                b'"' => in_string = !in_string,
                b'{' if !in_string => depth += 1,
                b'}' if !in_string => {
                    depth -= 1;
                    if depth == 0 {
                        return (Some(i), escapes);
                    }
                }
                _ => {}
            }
        }
        (None, escapes)
    }

    /// Blocks of the sizes given (cycled), as the splitter may see them. The
    /// escape flag may also count escapes after the end in its last block.
    fn by_blocks(bytes: &[u8], sizes: &[usize]) -> (Option<usize>, bool) {
        let mut st = ObjectEnd::default();
        let mut pos = 0;
        for &size in sizes.iter().cycle() {
            if pos == bytes.len() {
                return (None, st.escapes);
            }
            let n = size.clamp(1, 64).min(bytes.len() - pos);
            let mut block = [b' '; 64];
            block[..n].copy_from_slice(&bytes[pos..pos + n]);
            if let Some(i) = st.block(&block, n) {
                return (Some(pos + i), st.escapes);
            }
            pos += n;
        }
        unreachable!("cycle never ends")
    }

    /// An object whose strings hold what makes the skip hard: braces,
    /// quotes and backslashes escaped or not, `\u` escapes, nested
    /// objects, odd whitespace.
    fn object() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(&b"\"a\":"[..]),
            Just(&b"\"{\":\"}\","[..]),
            Just(&b"\"x\\\"}\":1,"[..]),
            Just(&b"\"\\\\\":\"\\\\\\\\\","[..]),
            Just(&b"\"\\u007d\":\"\\/\","[..]),
            Just(&b"\"n\":{\"o\":[{},{\"p\":\"}\"}]},"[..]),
            Just(&b" \t\r\n"[..]),
            Just(&b"\"long string without any structure in it at all, long enough to fill a block\","[..]),
            Just(&b"\"e\\\\u\":\"\\\\/\","[..]),
        ];
        prop::collection::vec(piece, 0..40).prop_map(|pieces| {
            let mut v = b"{".to_vec();
            for p in pieces {
                v.extend_from_slice(p);
            }
            v.extend_from_slice(b"\"z\":0}");
            v
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn blocks_find_the_same_end_and_escapes_as_a_byte_by_byte_scan(
            obj in object(),
            tail in prop::collection::vec(any::<u8>(), 0..80),
            sizes in prop::collection::vec(1usize..=64, 1..6),
        ) {
            let mut bytes = obj.clone();
            bytes.extend_from_slice(&tail);
            let want = reference(&bytes);
            prop_assert_eq!(want.0, Some(obj.len() - 1));
            let got = by_blocks(&bytes, &sizes);
            prop_assert_eq!(got.0, want.0);
            prop_assert!(got.1 || !want.1, "an escape was missed");
        }

        #[test]
        fn blocks_agree_with_a_byte_by_byte_scan_on_any_bytes(
            bytes in prop::collection::vec(prop_oneof![
                Just(b'{'), Just(b'}'), Just(b'"'), Just(b'\\'), Just(b'u'), Just(b'/'), Just(b' '), any::<u8>()
            ], 1..300),
            sizes in prop::collection::vec(1usize..=64, 1..6),
        ) {
            let mut bytes = bytes;
            bytes[0] = b'{';
            let want = reference(&bytes);
            let got = by_blocks(&bytes, &sizes);
            prop_assert_eq!(got.0, want.0);
            prop_assert!(got.1 || !want.1, "an escape was missed");
            if want.0.is_none() {
                // No end: both saw every byte.
                prop_assert_eq!(got.1, want.1);
            }
        }
    }

    #[test]
    fn an_escape_split_across_blocks_is_carried() {
        // The backslash is the last byte of the first block.
        let mut obj = b"{\"k\":\"".to_vec();
        obj.resize(63, b'a');
        obj.extend_from_slice(b"\\u007d\"}");
        assert_eq!(by_blocks(&obj, &[64]), (Some(obj.len() - 1), true));
        assert_eq!(by_blocks(&obj, &[63, 1]), (Some(obj.len() - 1), true));
        assert_eq!(reference(&obj), (Some(obj.len() - 1), true));
    }

    #[test]
    fn the_string_open_at_the_end_is_found() {
        assert_eq!(open_string_start(br#"{"b":2,"c":"xy"#), Some(11));
        assert_eq!(open_string_start(br#"{"b":"x\"y"#), Some(5));
        assert_eq!(open_string_start(br#"{"b":2"#), None);
    }
}
