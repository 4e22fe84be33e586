//! Contro1 (CENTCOM) webhook signing and verification, and the callback body.
//!
//! A Contro1 decision reaches the launcher as a signed `POST` to its callback
//! URL. The launcher acts on the decision (starting a MicroVM, issuing a
//! token), so the signature check is the only thing between the Internet and
//! an AWS call: it must verify over the **raw bytes as received**, compare in
//! constant time, reject stale or future timestamps, and fail closed on
//! anything missing or malformed. The local Contro1 stand-in signs with
//! [`sign`], so both sides of the protocol share this one implementation.
//!
//! Wire format (reference/contro1-api.md, "Webhook (callback) delivery"):
//! - `X-Centcom-Signature`: lowercase hex HMAC-SHA256 of `"{timestamp}.{raw_body}"`
//!   keyed with the organisation webhook secret;
//! - `X-Centcom-Timestamp`: unix seconds;
//! - `X-Centcom-Request-Id`: the Contro1 request id.
//!
//! Decisions taken here:
//! - Uppercase hex signatures are **accepted**: hex case carries no
//!   information (both spell the same 32 bytes), and the comparison is on the
//!   decoded bytes, so accepting it does not weaken the check.
//! - The MAC is computed over the timestamp header text exactly as received
//!   (which is what the sender signed), after checking it parses as an integer.
//! - An empty secret never verifies anything ([`WebhookError::EmptySecret`]).
//! - The window is at most [`MAX_WINDOW_SECS`]: a larger one is clamped, so
//!   a misconfiguration cannot turn a captured callback into a long-lived one.
//! - A verified body is parsed with [`Callback::from_slice`], which refuses a
//!   key that appears twice in any object, at any depth: JSON parsers
//!   disagree on which copy wins (`{"approved":false,"approved":true}`), so a
//!   signed body must say each thing once.
//! - [`WebhookError::public_message`] is what a sender is told: the same as
//!   `Display` except that the receiver's clock is left out.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Header carrying the hex HMAC-SHA256 signature.
pub const SIGNATURE_HEADER: &str = "X-Centcom-Signature";
/// Header carrying the signing time in unix seconds.
pub const TIMESTAMP_HEADER: &str = "X-Centcom-Timestamp";
/// Header carrying the Contro1 request id the callback is about.
pub const REQUEST_ID_HEADER: &str = "X-Centcom-Request-Id";
/// Default tolerated distance between the signed timestamp and now, either way.
pub const DEFAULT_WINDOW_SECS: u64 = 300;
/// Largest tolerated distance, whatever the configuration says.
pub const MAX_WINDOW_SECS: u64 = 900;

/// Length in hex characters of a SHA-256 HMAC.
const SIGNATURE_HEX_LEN: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// Why a callback was refused. Every variant means "do not act on it".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("missing webhook header {0}")]
    MissingHeader(&'static str),
    #[error("webhook secret is empty: refusing to verify anything")]
    EmptySecret,
    #[error("{TIMESTAMP_HEADER} is not an integer number of unix seconds: {value:?}")]
    BadTimestamp { value: String },
    #[error(
        "webhook timestamp {timestamp} is more than {window} s away from now ({now}): stale or from the future"
    )]
    Stale {
        timestamp: i64,
        now: i64,
        window: u64,
    },
    #[error(
        "{SIGNATURE_HEADER} is not a hex HMAC-SHA256: {reason} (saw {seen_len} characters, expected {SIGNATURE_HEX_LEN} hex digits)"
    )]
    BadSignatureEncoding {
        reason: &'static str,
        seen_len: usize,
    },
    #[error("webhook signature does not match the body and timestamp")]
    Mismatch,
}

impl WebhookError {
    /// The error as the sender is told it: `Display` without the receiver's
    /// clock (which helps nobody but someone timing a replay).
    pub fn public_message(&self) -> String {
        match self {
            WebhookError::Stale {
                timestamp, window, ..
            } => format!(
                "webhook timestamp {timestamp} is more than {window} s away from the receiver's clock: stale or from the future"
            ),
            other => other.to_string(),
        }
    }
}

fn mac_for(secret: &[u8], timestamp: &str, raw_body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, including empty; `new_from_slice` cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(raw_body);
    mac
}

/// Signs `raw_body` as Contro1 does: lowercase hex HMAC-SHA256 of
/// `"{timestamp}.{raw_body}"` keyed with `secret`.
pub fn sign(secret: &[u8], timestamp: i64, raw_body: &[u8]) -> String {
    let mac = mac_for(secret, &timestamp.to_string(), raw_body);
    hex::encode(mac.finalize().into_bytes())
}

/// Verifies a callback. `signature_hex` and `timestamp` are the header values
/// as received (`None` when absent); `raw_body` is the body exactly as
/// received. Returns the verified timestamp.
///
/// Checks, in order: headers present, secret non-empty, timestamp an integer,
/// timestamp within `window_secs` (at most [`MAX_WINDOW_SECS`]) of `now_unix`
/// (either direction), signature 64 hex digits, then the HMAC in constant
/// time.
pub fn verify(
    secret: &[u8],
    signature_hex: Option<&str>,
    timestamp: Option<&str>,
    raw_body: &[u8],
    now_unix: i64,
    window_secs: u64,
) -> Result<i64, WebhookError> {
    let signature_hex = signature_hex.ok_or(WebhookError::MissingHeader(SIGNATURE_HEADER))?;
    let timestamp_text = timestamp.ok_or(WebhookError::MissingHeader(TIMESTAMP_HEADER))?;
    if secret.is_empty() {
        return Err(WebhookError::EmptySecret);
    }
    let ts: i64 = timestamp_text
        .parse()
        .map_err(|_| WebhookError::BadTimestamp {
            value: timestamp_text.chars().take(40).collect(),
        })?;
    let window_secs = window_secs.min(MAX_WINDOW_SECS);
    let distance = (i128::from(now_unix) - i128::from(ts)).unsigned_abs();
    if distance > u128::from(window_secs) {
        return Err(WebhookError::Stale {
            timestamp: ts,
            now: now_unix,
            window: window_secs,
        });
    }
    if signature_hex.len() != SIGNATURE_HEX_LEN {
        return Err(WebhookError::BadSignatureEncoding {
            reason: "wrong length",
            seen_len: signature_hex.len(),
        });
    }
    let expected = hex::decode(signature_hex).map_err(|_| WebhookError::BadSignatureEncoding {
        reason: "not hex",
        seen_len: signature_hex.len(),
    })?;
    let computed = mac_for(secret, timestamp_text, raw_body)
        .finalize()
        .into_bytes();
    if bool::from(computed.as_slice().ct_eq(&expected)) {
        Ok(ts)
    } else {
        Err(WebhookError::Mismatch)
    }
}

/// The outcome a callback carries, after the defensive reading described on
/// [`Callback::decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approved,
    Denied,
    Expired,
    Cancelled,
}

impl Decision {
    pub fn is_approved(self) -> bool {
        self == Decision::Approved
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approved => "approved",
            Decision::Denied => "denied",
            Decision::Expired => "expired",
            Decision::Cancelled => "cancelled",
        }
    }
}

/// A Contro1 callback body. Unknown fields are ignored; only `request_id` and
/// `state` are required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Callback {
    pub request_id: String,
    /// `answered`, `expired` or `cancelled`.
    pub state: String,
    /// Where the decision lives; its exact shape is not documented publicly.
    #[serde(default)]
    pub response: Option<Value>,
    #[serde(default)]
    pub responded_by: Option<String>,
    /// Kept as text; a numeric value is accepted and rendered as its digits.
    #[serde(default, deserialize_with = "string_or_number")]
    pub responded_at: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Raw top-level `status`, one of the accepted approval spellings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!(
            "responded_at must be a string or a number, got {other}"
        ))),
    }
}

impl Callback {
    /// Parses a raw (already verified) callback body.
    /// The body must be a JSON object: serde's derive would also accept the
    /// fields as a JSON array in declaration order, which no sender means.
    /// A key repeated in any object of the body is refused
    /// ([`check_unique_keys`]).
    pub fn from_slice(raw_body: &[u8]) -> Result<Self, serde_json::Error> {
        if raw_body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(serde::de::Error::custom(
                "callback body must be a JSON object, found an array",
            ));
        }
        let cb = serde_json::from_slice(raw_body)?;
        check_unique_keys(raw_body)?;
        Ok(cb)
    }

    /// The decision this callback carries.
    ///
    /// - `state == "expired"` → [`Decision::Expired`]; `"cancelled"` →
    ///   [`Decision::Cancelled`] (whatever `response` says).
    /// - `state == "answered"` → [`Decision::Approved`] when any accepted
    ///   approval spelling is present (`response.approved == true`,
    ///   `response.decision == "approved"`, top-level `status == "approved"`)
    ///   **and** no explicit contrary signal is (`response.approved == false`,
    ///   or `response.decision` / `status` present with another value):
    ///   contradictory callbacks fail closed.
    /// - Anything else → [`Decision::Denied`].
    pub fn decision(&self) -> Decision {
        match self.state.as_str() {
            "expired" => return Decision::Expired,
            "cancelled" => return Decision::Cancelled,
            "answered" => {}
            _ => return Decision::Denied,
        }
        let response = self.response.as_ref().and_then(Value::as_object);
        let approved_flag = response.and_then(|r| r.get("approved"));
        let decision_field = response.and_then(|r| r.get("decision"));
        let status = self.status.as_deref();

        let says_yes = approved_flag == Some(&Value::Bool(true))
            || decision_field.and_then(Value::as_str) == Some("approved")
            || status == Some("approved");
        let says_no = approved_flag.is_some_and(|v| v != &Value::Bool(true))
            || decision_field.is_some_and(|v| v.as_str() != Some("approved"))
            || status.is_some_and(|s| s != "approved");
        if says_yes && !says_no {
            Decision::Approved
        } else {
            Decision::Denied
        }
    }
}

/// Refuses a JSON text in which any object, at any depth, has a key twice
/// (compared after unescaping: `"a"` and `"\u0061"` are one key). The error
/// names the key and where it is (`response`, `metadata.items[2]`, or the
/// top level). Nesting is bounded by serde_json's recursion limit.
pub fn check_unique_keys(raw: &[u8]) -> Result<(), serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(raw);
    Unique { path: "" }.deserialize(&mut de)?;
    de.end()
}

/// Walks one JSON value, checking every object's keys; `path` is where the
/// value sits (empty for the top level).
struct Unique<'p> {
    path: &'p str,
}

impl<'de> serde::de::DeserializeSeed<'de> for Unique<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Unique<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        loop {
            let path = format!("{}[{i}]", self.path);
            if seq.next_element_seed(Unique { path: &path })?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if !seen.insert(key) {
                let (key, at) = match path.rsplit_once('.') {
                    Some((parent, k)) if !self.path.is_empty() => (k, format!("`{parent}`")),
                    _ => (path.as_str(), "the top level".to_string()),
                };
                return Err(serde::de::Error::custom(format!(
                    "duplicate key `{key}` in {at}: a signed body must say each thing once"
                )));
            }
            map.next_value_seed(Unique { path: &path })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const SECRET: &[u8] = b"whsec_test_123";
    const BODY: &[u8] = br#"{"request_id":"req_1","state":"answered"}"#;
    const TS: i64 = 1_700_000_000;
    // Computed independently with Python:
    // python3 -c "import hmac,hashlib; print(hmac.new(b'whsec_test_123',
    //   b'1700000000.'+b'{\"request_id\":\"req_1\",\"state\":\"answered\"}',
    //   hashlib.sha256).hexdigest())"
    const KNOWN_SIG: &str = "03425c03bd3f9312a816a43482f5fe8893e73fbfbcdacac0f3eedebeef86c662";

    fn check(
        sig: Option<&str>,
        ts: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<i64, WebhookError> {
        verify(SECRET, sig, ts, body, now, DEFAULT_WINDOW_SECS)
    }

    #[test]
    fn sign_matches_a_vector_computed_with_python_hmac() {
        assert_eq!(sign(SECRET, TS, BODY), KNOWN_SIG);
    }

    #[test]
    fn known_vector_verifies_and_returns_its_timestamp() {
        assert_eq!(
            check(Some(KNOWN_SIG), Some("1700000000"), BODY, TS + 10),
            Ok(TS)
        );
    }

    #[test]
    fn tampered_body_is_a_mismatch() {
        let body = br#"{"request_id":"req_2","state":"answered"}"#;
        assert_eq!(
            check(Some(KNOWN_SIG), Some("1700000000"), body, TS),
            Err(WebhookError::Mismatch)
        );
    }

    #[test]
    fn tampered_timestamp_is_a_mismatch() {
        assert_eq!(
            check(Some(KNOWN_SIG), Some("1700000001"), BODY, TS),
            Err(WebhookError::Mismatch)
        );
    }

    #[test]
    fn equivalent_but_differently_spelled_timestamp_is_a_mismatch() {
        // "+1700000000" parses to the same integer but is not what was signed.
        assert_eq!(
            check(Some(KNOWN_SIG), Some("+1700000000"), BODY, TS),
            Err(WebhookError::Mismatch)
        );
    }

    #[test]
    fn wrong_secret_is_a_mismatch() {
        let r = verify(
            b"another-secret",
            Some(KNOWN_SIG),
            Some("1700000000"),
            BODY,
            TS,
            300,
        );
        assert_eq!(r, Err(WebhookError::Mismatch));
    }

    #[test]
    fn empty_secret_fails_closed_even_with_a_signature_made_with_it() {
        let sig = sign(b"", TS, BODY);
        let r = verify(b"", Some(&sig), Some("1700000000"), BODY, TS, 300);
        assert_eq!(r, Err(WebhookError::EmptySecret));
    }

    #[test]
    fn missing_signature_header_is_named() {
        assert_eq!(
            check(None, Some("1700000000"), BODY, TS),
            Err(WebhookError::MissingHeader(SIGNATURE_HEADER))
        );
    }

    #[test]
    fn missing_timestamp_header_is_named() {
        assert_eq!(
            check(Some(KNOWN_SIG), None, BODY, TS),
            Err(WebhookError::MissingHeader(TIMESTAMP_HEADER))
        );
    }

    #[test]
    fn non_integer_timestamp_is_rejected() {
        for bad in ["", "abc", "1700000000.5", "1e9", " 1700000000"] {
            assert!(
                matches!(
                    check(Some(KNOWN_SIG), Some(bad), BODY, TS),
                    Err(WebhookError::BadTimestamp { .. })
                ),
                "{bad:?} should be a bad timestamp"
            );
        }
    }

    #[test]
    fn timestamp_older_than_the_window_is_stale() {
        let now = TS + 301;
        assert_eq!(
            check(Some(KNOWN_SIG), Some("1700000000"), BODY, now),
            Err(WebhookError::Stale {
                timestamp: TS,
                now,
                window: 300
            })
        );
    }

    #[test]
    fn timestamp_further_in_the_future_than_the_window_is_stale() {
        let now = TS - 301;
        assert_eq!(
            check(Some(KNOWN_SIG), Some("1700000000"), BODY, now),
            Err(WebhookError::Stale {
                timestamp: TS,
                now,
                window: 300
            })
        );
    }

    #[test]
    fn timestamp_exactly_at_the_window_edge_is_accepted_both_ways() {
        assert_eq!(
            check(Some(KNOWN_SIG), Some("1700000000"), BODY, TS + 300),
            Ok(TS)
        );
        assert_eq!(
            check(Some(KNOWN_SIG), Some("1700000000"), BODY, TS - 300),
            Ok(TS)
        );
    }

    #[test]
    fn extreme_timestamps_do_not_overflow_and_are_stale() {
        let sig = sign(SECRET, i64::MIN, BODY);
        let ts = i64::MIN.to_string();
        assert!(matches!(
            verify(SECRET, Some(&sig), Some(&ts), BODY, i64::MAX, 300),
            Err(WebhookError::Stale { .. })
        ));
    }

    #[test]
    fn uppercase_hex_signature_is_accepted() {
        let upper = KNOWN_SIG.to_ascii_uppercase();
        assert_eq!(check(Some(&upper), Some("1700000000"), BODY, TS), Ok(TS));
    }

    #[test]
    fn wrong_length_signature_reports_the_length_seen() {
        let short = &KNOWN_SIG[..63];
        let err = check(Some(short), Some("1700000000"), BODY, TS).unwrap_err();
        assert_eq!(
            err,
            WebhookError::BadSignatureEncoding {
                reason: "wrong length",
                seen_len: 63
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("63") && msg.contains("64"), "{msg}");
        let long = format!("{KNOWN_SIG}00");
        assert!(matches!(
            check(Some(&long), Some("1700000000"), BODY, TS),
            Err(WebhookError::BadSignatureEncoding { seen_len: 66, .. })
        ));
    }

    #[test]
    fn non_hex_signature_of_the_right_length_is_a_bad_encoding() {
        let bad = format!("zz{}", &KNOWN_SIG[2..]);
        assert_eq!(
            check(Some(&bad), Some("1700000000"), BODY, TS),
            Err(WebhookError::BadSignatureEncoding {
                reason: "not hex",
                seen_len: 64
            })
        );
    }

    #[test]
    fn sha256_prefixed_signature_is_rejected_rather_than_stripped() {
        let prefixed = format!("sha256={KNOWN_SIG}");
        assert!(matches!(
            check(Some(&prefixed), Some("1700000000"), BODY, TS),
            Err(WebhookError::BadSignatureEncoding { .. })
        ));
    }

    fn cb(v: Value) -> Callback {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn answered_with_approved_true_is_approved() {
        let c = cb(json!({"request_id": "r", "state": "answered", "response": {"approved": true}}));
        assert_eq!(c.decision(), Decision::Approved);
    }

    #[test]
    fn answered_with_decision_approved_is_approved() {
        let c = cb(
            json!({"request_id": "r", "state": "answered", "response": {"decision": "approved"}}),
        );
        assert_eq!(c.decision(), Decision::Approved);
    }

    #[test]
    fn answered_with_top_level_status_approved_is_approved_and_status_is_kept() {
        let c = cb(
            json!({"request_id": "r", "state": "answered", "response": null, "status": "approved"}),
        );
        assert_eq!(c.status.as_deref(), Some("approved"));
        assert_eq!(c.decision(), Decision::Approved);
    }

    #[test]
    fn answered_with_approved_false_is_denied() {
        let c =
            cb(json!({"request_id": "r", "state": "answered", "response": {"approved": false}}));
        assert_eq!(c.decision(), Decision::Denied);
    }

    #[test]
    fn answered_with_decision_denied_is_denied() {
        let c =
            cb(json!({"request_id": "r", "state": "answered", "response": {"decision": "denied"}}));
        assert_eq!(c.decision(), Decision::Denied);
    }

    #[test]
    fn answered_with_truthy_but_not_boolean_approved_is_denied() {
        for v in [json!("true"), json!(1), json!("yes")] {
            let c =
                cb(json!({"request_id": "r", "state": "answered", "response": {"approved": v}}));
            assert_eq!(c.decision(), Decision::Denied, "approved = {v}");
        }
    }

    #[test]
    fn answered_with_differently_cased_decision_is_denied() {
        let c = cb(
            json!({"request_id": "r", "state": "answered", "response": {"decision": "APPROVED"}}),
        );
        assert_eq!(c.decision(), Decision::Denied);
    }

    #[test]
    fn answered_with_contradictory_signals_is_denied() {
        let c = cb(json!({"request_id": "r", "state": "answered",
            "response": {"approved": true, "decision": "denied"}}));
        assert_eq!(c.decision(), Decision::Denied);
        let c = cb(json!({"request_id": "r", "state": "answered",
            "response": {"approved": false}, "status": "approved"}));
        assert_eq!(c.decision(), Decision::Denied);
    }

    #[test]
    fn answered_with_no_response_or_free_text_is_denied() {
        let c = cb(json!({"request_id": "r", "state": "answered"}));
        assert_eq!(c.decision(), Decision::Denied);
        let c = cb(json!({"request_id": "r", "state": "answered", "response": "looks fine"}));
        assert_eq!(c.decision(), Decision::Denied);
    }

    #[test]
    fn expired_is_expired_even_with_an_approving_response() {
        let c = cb(json!({"request_id": "r", "state": "expired", "response": {"approved": true}}));
        assert_eq!(c.decision(), Decision::Expired);
        assert!(!c.decision().is_approved());
    }

    #[test]
    fn cancelled_is_cancelled() {
        let c = cb(json!({"request_id": "r", "state": "cancelled", "response": null}));
        assert_eq!(c.decision(), Decision::Cancelled);
    }

    #[test]
    fn an_approving_response_under_another_state_is_denied() {
        for state in ["closed", "callback_delivered", "queued", "Answered"] {
            let c = cb(json!({"request_id": "r", "state": state, "response": {"approved": true}}));
            assert_eq!(c.decision(), Decision::Denied, "state {state}");
        }
    }

    #[test]
    fn callback_parses_the_full_shape_and_ignores_unknown_fields() {
        let raw = br#"{"request_id":"req_9","state":"answered","response":{"approved":true,"comment":"ok"},
            "responded_by":"alice@example.com","responded_at":"2026-01-01T00:00:00Z",
            "metadata":{"action":"run_microvm"},"something_new":[1,2]}"#;
        let c = Callback::from_slice(raw).unwrap();
        assert_eq!(c.request_id, "req_9");
        assert_eq!(c.responded_by.as_deref(), Some("alice@example.com"));
        assert_eq!(c.responded_at.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(c.metadata, Some(json!({"action": "run_microvm"})));
        assert_eq!(c.status, None);
    }

    #[test]
    fn numeric_responded_at_is_kept_as_text() {
        let c = cb(json!({"request_id": "r", "state": "answered", "responded_at": 1700000000}));
        assert_eq!(c.responded_at.as_deref(), Some("1700000000"));
    }

    #[test]
    fn callback_without_request_id_does_not_parse() {
        let err = Callback::from_slice(br#"{"state":"answered"}"#).unwrap_err();
        assert!(err.to_string().contains("request_id"), "{err}");
    }

    proptest! {
        #[test]
        fn sign_then_verify_round_trips(
            secret in proptest::collection::vec(any::<u8>(), 1..64),
            body in proptest::collection::vec(any::<u8>(), 0..512),
            ts in 0i64..4_000_000_000,
            skew in -300i64..=300,
        ) {
            let sig = sign(&secret, ts, &body);
            prop_assert_eq!(sig.len(), 64);
            let ts_text = ts.to_string();
            prop_assert_eq!(verify(&secret, Some(&sig), Some(&ts_text), &body, ts + skew, 300), Ok(ts));
        }

        #[test]
        fn any_single_byte_change_to_the_body_fails(
            secret in proptest::collection::vec(any::<u8>(), 1..64),
            body in proptest::collection::vec(any::<u8>(), 1..512),
            idx in any::<proptest::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let ts = TS;
            let sig = sign(&secret, ts, &body);
            let mut tampered = body;
            let i = idx.index(tampered.len());
            tampered[i] ^= flip;
            prop_assert_eq!(
                verify(&secret, Some(&sig), Some("1700000000"), &tampered, ts, 300),
                Err(WebhookError::Mismatch)
            );
        }
    }

    #[test]
    fn a_window_larger_than_the_maximum_is_clamped() {
        let now = TS + MAX_WINDOW_SECS as i64 + 1;
        assert!(matches!(
            verify(
                SECRET,
                Some(KNOWN_SIG),
                Some("1700000000"),
                BODY,
                now,
                u64::MAX
            ),
            Err(WebhookError::Stale {
                window: MAX_WINDOW_SECS,
                ..
            })
        ));
    }

    #[test]
    fn the_public_message_of_a_stale_timestamp_leaves_out_the_receivers_clock() {
        let e = WebhookError::Stale {
            timestamp: 5,
            now: 1_800_000_000,
            window: 300,
        };
        assert!(e.to_string().contains("1800000000"));
        assert!(
            !e.public_message().contains("1800000000"),
            "{}",
            e.public_message()
        );
        assert!(e.public_message().contains("more than 300 s"));
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth_naming_the_key_and_where() {
        for (body, expected) in [
            (
                r#"{"request_id":"r","state":"answered","response":{"approved":false,"approved":true}}"#,
                "duplicate key `approved` in `response`",
            ),
            (
                r#"{"request_id":"r","state":"answered","metadata":{"a":[{"x":1},{"x":1,"x":2}]}}"#,
                "duplicate key `x` in `metadata.a[1]`",
            ),
            (
                r#"{"request_id":"r","state":"answered","response":{"approved":true,"approved":false}}"#,
                "duplicate key `approved` in `response`",
            ),
            (
                r#"{"request_id":"r","state":"answered","extra":1,"extra":2}"#,
                "duplicate key `extra` in the top level",
            ),
        ] {
            let e = Callback::from_slice(body.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{body}: {e}");
        }
        // Equal keys in different objects are fine.
        let ok = br#"{"request_id":"r","state":"answered","response":{"approved":true},"metadata":{"approved":1}}"#;
        assert!(Callback::from_slice(ok).is_ok());
    }
}
