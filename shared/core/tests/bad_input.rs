//! Bad input table for the Contro1 webhook verifier and the callback body
//! (issue 6). Every refusal names what was wrong; the verifier is stateless,
//! so a genuine callback verifies after any number of bad ones. The body-size
//! limit is the router's (launcher/tests/callback_bad_input.rs): the verifier
//! itself takes any size, and a large body neither verifies wrongly nor
//! panics. docs/bad-input.md lists these rows.

use shared_core::webhook::{Callback, DEFAULT_WINDOW_SECS, sign, verify};

const SECRET: &[u8] = b"whsec_bad_input";
const NOW: i64 = 1_800_000_000;
const BODY: &[u8] = br#"{"request_id":"req_1","state":"answered","response":{"approved":true}}"#;

fn check(secret: &[u8], sig: Option<&str>, ts: Option<&str>, body: &[u8]) -> Result<i64, String> {
    verify(secret, sig, ts, body, NOW, DEFAULT_WINDOW_SECS).map_err(|e| e.to_string())
}

#[test]
fn bad_webhook_headers_are_refused_with_an_error_naming_the_header_and_the_problem() {
    let sig = sign(SECRET, NOW, BODY);
    let ts = NOW.to_string();
    let stale_ts = (NOW - 301).to_string();
    let stale_sig = sign(SECRET, NOW - 301, BODY);
    let future_ts = (NOW + 301).to_string();
    let future_sig = sign(SECRET, NOW + 301, BODY);
    let long = format!("{sig}00");
    let non_hex = format!("g{}", &sig[1..]);
    let prefixed = format!("sha256={sig}");
    // name, secret, signature header, timestamp header, body, expected error
    type Row<'a> = (
        &'a str,
        &'a [u8],
        Option<&'a str>,
        Option<&'a str>,
        &'a [u8],
        &'a str,
    );
    let rows: Vec<Row> = vec![
        (
            "signature of 63 characters",
            SECRET,
            Some(&sig[..63]),
            Some(&ts),
            BODY,
            "X-Centcom-Signature is not a hex HMAC-SHA256: wrong length (saw 63 characters, expected 64 hex digits)",
        ),
        (
            "signature of 66 characters",
            SECRET,
            Some(&long),
            Some(&ts),
            BODY,
            "wrong length (saw 66 characters, expected 64 hex digits)",
        ),
        (
            "empty signature",
            SECRET,
            Some(""),
            Some(&ts),
            BODY,
            "wrong length (saw 0 characters",
        ),
        (
            "non-hex signature",
            SECRET,
            Some(&non_hex),
            Some(&ts),
            BODY,
            "X-Centcom-Signature is not a hex HMAC-SHA256: not hex (saw 64 characters",
        ),
        (
            "`sha256=` prefixed signature",
            SECRET,
            Some(&prefixed),
            Some(&ts),
            BODY,
            "wrong length (saw 71 characters",
        ),
        (
            "missing signature",
            SECRET,
            None,
            Some(&ts),
            BODY,
            "missing webhook header X-Centcom-Signature",
        ),
        (
            "missing timestamp",
            SECRET,
            Some(&sig),
            None,
            BODY,
            "missing webhook header X-Centcom-Timestamp",
        ),
        (
            "timestamp not an integer",
            SECRET,
            Some(&sig),
            Some("2026-11-20T10:00:00Z"),
            BODY,
            "X-Centcom-Timestamp is not an integer number of unix seconds: \"2026-11-20T10:00:00Z\"",
        ),
        (
            "timestamp in milliseconds",
            SECRET,
            Some(&sig),
            Some("1800000000000"),
            BODY,
            "webhook timestamp 1800000000000 is more than 300 s away from now (1800000000)",
        ),
        (
            "stale timestamp",
            SECRET,
            Some(&stale_sig),
            Some(&stale_ts),
            BODY,
            "webhook timestamp 1799999699 is more than 300 s away from now (1800000000): stale or from the future",
        ),
        (
            "timestamp from the future",
            SECRET,
            Some(&future_sig),
            Some(&future_ts),
            BODY,
            "webhook timestamp 1800000301 is more than 300 s away",
        ),
        (
            "body changed after signing",
            SECRET,
            Some(&sig),
            Some(&ts),
            br#"{"request_id":"req_2","state":"answered","response":{"approved":true}}"#,
            "webhook signature does not match the body and timestamp",
        ),
        (
            "empty secret configured",
            b"",
            Some(&sig),
            Some(&ts),
            BODY,
            "webhook secret is empty: refusing to verify anything",
        ),
    ];
    for (row, secret, sig_h, ts_h, body, expected) in rows {
        let err = check(secret, sig_h, ts_h, body)
            .map(|t| format!("verified at {t}"))
            .unwrap_err();
        assert!(err.contains(expected), "{row}: {err:?} lacks {expected:?}");
        // Nothing poisoned: the genuine callback still verifies.
        assert_eq!(check(SECRET, Some(&sig), Some(&ts), BODY), Ok(NOW), "{row}");
    }
}

/// The verifier has no size limit of its own (the router refuses bodies over
/// 64 KiB before verifying): a 16 MiB body verifies when signed and fails on
/// a change to its last byte, without a panic.
#[test]
fn a_16_mib_body_verifies_only_when_signed_and_a_change_to_its_last_byte_fails() {
    let mut body = vec![b'x'; 16 << 20];
    let sig = sign(SECRET, NOW, &body);
    let ts = NOW.to_string();
    assert_eq!(check(SECRET, Some(&sig), Some(&ts), &body), Ok(NOW));
    *body.last_mut().unwrap() = b'y';
    assert_eq!(
        check(SECRET, Some(&sig), Some(&ts), &body),
        Err("webhook signature does not match the body and timestamp".to_string())
    );
}

/// A verified body that is not a Contro1 callback is refused naming the field.
#[test]
fn bad_callback_bodies_are_refused_naming_the_field() {
    let deep = format!(
        r#"{{"request_id":"r","state":"answered","response":{}]}}"#,
        "[".repeat(100_000)
    );
    let rows: Vec<(&str, &[u8], &str)> = vec![
        ("not JSON", b"approved", "expected value at line 1 column 1"),
        (
            "empty body",
            b"",
            "EOF while parsing a value at line 1 column 0",
        ),
        (
            "non-UTF-8 bytes",
            b"{\"request_id\":\"\xff\",\"state\":\"answered\"}",
            "invalid unicode code point at line 1 column 16",
        ),
        (
            "a JSON array",
            b"[]",
            "callback body must be a JSON object, found an array",
        ),
        (
            "the fields as a JSON array in struct order",
            br#"["req_1","answered",{"approved":true},null,null,null,null]"#,
            "callback body must be a JSON object, found an array",
        ),
        (
            "request_id missing",
            br#"{"state":"answered"}"#,
            "missing field `request_id`",
        ),
        (
            "request_id a number",
            br#"{"request_id":7,"state":"answered"}"#,
            "invalid type: integer `7`, expected a string at line 1 column 15",
        ),
        (
            "state missing",
            br#"{"request_id":"r"}"#,
            "missing field `state`",
        ),
        (
            "responded_at an object",
            br#"{"request_id":"r","state":"answered","responded_at":{"t":1}}"#,
            "responded_at must be a string or a number",
        ),
        // Regression: a signed body with a key twice inside `response`
        // executed (serde_json keeps the last copy; other parsers the first).
        (
            "`approved` twice inside response",
            br#"{"request_id":"r","state":"answered","response":{"approved":false,"approved":true}}"#,
            "duplicate key `approved` in `response`: a signed body must say each thing once",
        ),
        (
            "a key twice deep inside metadata",
            br#"{"request_id":"r","state":"answered","metadata":{"a":{"b":[{"c":1,"c":1}]}}}"#,
            "duplicate key `c` in `metadata.a.b[0]`",
        ),
        (
            "state twice at the top level",
            br#"{"request_id":"r","state":"denied","state":"answered"}"#,
            "duplicate field `state`",
        ),
        (
            "100k nested arrays as response",
            deep.as_bytes(),
            "recursion limit exceeded",
        ),
    ];
    for (row, body, expected) in rows {
        let err = Callback::from_slice(body).unwrap_err().to_string();
        assert!(err.contains(expected), "{row}: {err:?} lacks {expected:?}");
    }
}
