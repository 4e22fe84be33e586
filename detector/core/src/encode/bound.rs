//! Every encoding has a size limit its channel enforces (EventBridge 256 KiB
//! an entry, Security Hub 240 KB a finding, SNS 256 KiB a message) or that
//! this project documents (one JSON line of `detector scan`,
//! [`LINE_MAX`]). A record is attacker-controlled and may be megabytes; a
//! message over its channel's limit would be refused and retried until it
//! lands in the dead-letter queue. So a value is fitted to its limit before
//! it is sent: the longest texts are cut first, each with a visible
//! [`marker`] saying how much was cut, until the serialised value fits.
//! The value is never dropped.

use serde_json::Value;

/// The longest line `detector scan` writes for `--format jsonl` and
/// `--format ocsf`, newline excluded.
pub const LINE_MAX: usize = 256 * 1024;

/// Texts shorter than this (serialised) are never cut: identifiers,
/// timestamps, enumerations.
const KEEP: usize = 96;

/// What replaces the cut part of a text.
pub fn marker(cut_bytes: usize) -> String {
    format!("...[truncated {cut_bytes} bytes]")
}

/// Bytes `s` takes inside a JSON string (serde_json's escaping).
pub fn escaped_len(s: &str) -> usize {
    s.chars().map(escaped_char_len).sum()
}

fn escaped_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Serialised size of `v` in bytes.
pub fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX, |b| b.len())
}

/// The longest text in `v` longer than [`KEEP`], as a JSON pointer, with
/// its escaped length.
fn longest(v: &Value, path: &mut String, best: &mut Option<(String, usize)>) {
    match v {
        Value::String(s) => {
            let n = escaped_len(s);
            if n > KEEP && best.as_ref().is_none_or(|(_, b)| n > *b) {
                *best = Some((path.clone(), n));
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("/{i}"));
                longest(x, path, best);
                path.truncate(len);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                let len = path.len();
                path.push('/');
                path.push_str(&k.replace('~', "~0").replace('/', "~1"));
                longest(x, path, best);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// The longest array in `v` with more than one element.
fn longest_array(v: &Value, path: &mut String, best: &mut Option<(String, usize)>) {
    match v {
        Value::Array(a) => {
            if a.len() > 1 {
                let n = json_len(v);
                if best.as_ref().is_none_or(|(_, b)| n > *b) {
                    *best = Some((path.clone(), n));
                }
            }
            for (i, x) in a.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("/{i}"));
                longest_array(x, path, best);
                path.truncate(len);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                let len = path.len();
                path.push('/');
                path.push_str(&k.replace('~', "~0").replace('/', "~1"));
                longest_array(x, path, best);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// `s` cut so that it takes about `keep` escaped bytes, at a character
/// boundary, followed by the marker.
pub fn cut(s: &str, keep: usize) -> String {
    let mut used = 0usize;
    let mut end = 0usize;
    for (i, c) in s.char_indices() {
        let n = escaped_char_len(c);
        if used + n > keep {
            break;
        }
        used += n;
        end = i + c.len_utf8();
    }
    if end >= s.len() {
        return s.to_string();
    }
    format!("{}{}", &s[..end], marker(s.len() - end))
}

/// Fit `v` to at most `max` bytes serialised: cut the longest texts first
/// (each keeps a visible marker), then, if texts alone cannot make it fit,
/// halve the longest arrays (an array of texts ends with a marker text).
/// Returns whether `v` now fits; it does unless `max` is smaller than the
/// value's skeleton (its keys, numbers and short texts).
pub fn fit(v: &mut Value, max: usize) -> bool {
    loop {
        let size = json_len(v);
        if size <= max {
            return true;
        }
        let excess = size - max;
        let mut best = None;
        longest(v, &mut String::new(), &mut best);
        if let Some((path, n)) = best {
            // Keep what the excess and the marker leave, never less than
            // KEEP/2 (then the next longest text is cut next).
            let keep = n
                .saturating_sub(excess + marker(size).len() + 2)
                .max(KEEP / 2);
            if let Some(Value::String(s)) = v.pointer_mut(&path) {
                let c = cut(s, keep);
                if c.len() < s.len() {
                    *s = c;
                    continue;
                }
            }
        }
        let mut arr = None;
        longest_array(v, &mut String::new(), &mut arr);
        let Some((path, _)) = arr else {
            return false;
        };
        let Some(Value::Array(a)) = v.pointer_mut(&path) else {
            return false;
        };
        let texts = a.iter().all(Value::is_string);
        let keep = a.len() / 2;
        let dropped = a.len() - keep;
        a.truncate(keep.max(1));
        if texts {
            let last = a.len() - 1;
            a[last] = Value::String(format!("...[{dropped} more truncated]"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escaped_length_matches_what_serde_json_writes() {
        for s in ["plain", "q\"b\\", "\u{1}\u{1f}\n\t", "é€😀", "\u{7f}"] {
            assert_eq!(
                escaped_len(s) + 2,
                serde_json::to_string(s).unwrap().len(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn a_value_over_its_limit_is_cut_with_a_marker_and_fits() {
        let mut v = json!({
            "id": "keep-me",
            "a": "\u{1}".repeat(300_000),
            "b": "x".repeat(200_000),
            "list": (0..50_000).map(|i| format!("arn:{i}")).collect::<Vec<_>>(),
        });
        assert!(fit(&mut v, 64 * 1024));
        assert!(json_len(&v) <= 64 * 1024, "{}", json_len(&v));
        assert_eq!(v["id"], "keep-me");
        assert!(v["a"].as_str().unwrap().contains("...[truncated "), "a");
        assert!(v["b"].as_str().unwrap().contains("...[truncated "), "b");
        let list = v["list"].as_array().unwrap();
        assert!(
            list.last()
                .unwrap()
                .as_str()
                .unwrap()
                .contains("more truncated")
        );
    }

    #[test]
    fn a_value_within_its_limit_is_left_alone() {
        let mut v = json!({"a": "x".repeat(1000)});
        let before = v.clone();
        assert!(fit(&mut v, 2000));
        assert_eq!(v, before);
    }
}
