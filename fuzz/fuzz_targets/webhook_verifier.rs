//! The Contro1 webhook verifier with arbitrary headers, body, clock and
//! window. Must never panic. Properties:
//! - `verify` accepts only what `sign` produced for that exact timestamp
//!   text and body (checked against an independent recomputation);
//! - a correctly signed body verifies, and any single-byte mutation of the
//!   body, the signature or the timestamp text makes it fail;
//! - `Callback::from_slice` and `decision` never panic on any body.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use shared_core::webhook::{Callback, DEFAULT_WINDOW_SECS, WebhookError, sign, verify};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    secret: &'a [u8],
    signature: Option<&'a str>,
    timestamp: Option<&'a str>,
    body: &'a [u8],
    now: i64,
    window: u64,
    ts: i64,
    skew: i16,
    mutate_at: usize,
    flip: u8,
}

fuzz_target!(|input: Input<'_>| {
    // Arbitrary headers: no panic; Ok only for a genuine signature.
    if let Ok(ts) = verify(
        input.secret,
        input.signature,
        input.timestamp,
        input.body,
        input.now,
        input.window,
    ) {
        let ts_text = input.timestamp.expect("verified without a timestamp");
        assert_eq!(ts_text.parse::<i64>().ok(), Some(ts));
        assert!(!input.secret.is_empty());
        let sig = input.signature.expect("verified without a signature");
        if ts_text == ts.to_string() {
            assert_eq!(sig.to_ascii_lowercase(), sign(input.secret, ts, input.body));
        }
    }

    if let Ok(cb) = Callback::from_slice(input.body) {
        let _ = cb.decision();
    }

    // A correctly signed body verifies within the window ...
    if input.secret.is_empty() {
        return;
    }
    let ts = input.ts;
    let ts_text = ts.to_string();
    let skew = i64::from(input.skew) % (DEFAULT_WINDOW_SECS as i64 + 1);
    let Some(now) = ts.checked_add(skew) else {
        return;
    };
    let sig = sign(input.secret, ts, input.body);
    let check = |sig: &str, ts: &str, body: &[u8]| {
        verify(
            input.secret,
            Some(sig),
            Some(ts),
            body,
            now,
            DEFAULT_WINDOW_SECS,
        )
    };
    assert_eq!(check(&sig, &ts_text, input.body), Ok(ts));

    // ... and any single-byte change fails.
    let flip = input.flip.max(1);
    if !input.body.is_empty() {
        let mut body = input.body.to_vec();
        let i = input.mutate_at % body.len();
        body[i] ^= flip;
        assert_eq!(check(&sig, &ts_text, &body), Err(WebhookError::Mismatch));
    }
    let mut s = sig.clone().into_bytes();
    let i = input.mutate_at % s.len();
    s[i] ^= flip;
    // Hex case carries no information (uppercase is accepted by design).
    if let Ok(s) = String::from_utf8(s)
        && s.to_ascii_lowercase() != sig
    {
        assert!(
            check(&s, &ts_text, input.body).is_err(),
            "mutated signature {s} verified"
        );
    }
    let mut t = ts_text.clone().into_bytes();
    let i = input.mutate_at % t.len();
    t[i] ^= flip;
    if let Ok(t) = String::from_utf8(t) {
        assert!(
            check(&sig, &t, input.body).is_err(),
            "mutated timestamp {t:?} verified"
        );
    }
});
