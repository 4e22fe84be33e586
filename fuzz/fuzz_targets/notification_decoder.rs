//! The Lambda trigger decoders on arbitrary JSON-ish input:
//! `decode_invocation`, `decode_message_body`, `decode_value` and
//! `form_decode`. Must never panic; an error must name its context. Also:
//! - `form_decode` inverts a strict form-encoding of any string;
//! - decoded object keys come out exactly as `form_decode` gives them.
#![no_main]

use detector_core::notification::{
    Invocation, Trigger, decode_invocation, decode_message_body, decode_value, form_decode,
};
use libfuzzer_sys::fuzz_target;

fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b' ' => out.push('+'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn check_trigger(t: &Trigger) {
    if let Trigger::Objects { objects, .. } = t {
        for o in objects {
            // Display must not panic on any key.
            let _ = o.to_string();
            let _ = o.kind();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    match form_decode(&text) {
        Ok(decoded) => assert_eq!(form_decode(&form_encode(&decoded)).ok(), Some(decoded)),
        Err(e) => assert!(e.to_string().contains("S3 object key"), "{e}"),
    }
    assert_eq!(
        form_decode(&form_encode(&text)).ok().as_deref(),
        Some(&*text)
    );

    match decode_message_body(&text) {
        Ok(t) => check_trigger(&t),
        Err(e) => assert!(!e.to_string().is_empty()),
    }

    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(t) = decode_value(&value) {
        check_trigger(&t);
    }
    match decode_invocation(&value) {
        Ok(Invocation::Sqs(messages)) => {
            for m in messages {
                if let Ok(t) = decode_message_body(&m.body) {
                    check_trigger(&t);
                }
            }
        }
        Ok(Invocation::Direct(triggers)) => triggers.iter().for_each(check_trigger),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
