//! Text an agent (or any caller) chose, made safe for a human reader.
//!
//! What the launcher shows a reviewer in Contro1 (the question, the context,
//! the metadata of a request and of an audit record) and what it writes to
//! its logs comes partly from the agent's body: owner, reason, environment,
//! correlation id, free metadata. A newline or U+2028 there could forge a
//! line ("approved by security"), an escape sequence could rewrite a
//! terminal, a right-to-left override or a zero-width character could make
//! text read differently than it is. [`clean`] escapes every such character
//! visibly and caps the length; [`clean_json`] does it to every key and
//! string of a JSON value. This module is the one place that does it.
//!
//! Escaped: C0 and C1 controls (`\n`, `\r`, `\t`, else `\u{1b}`), zero-width
//! and directional marks U+200B–U+200F, U+2028/U+2029, bidirectional
//! embeddings and overrides U+202A–U+202E, invisible operators
//! U+2060–U+2064, isolates U+2066–U+2069, U+FEFF, and the backslash itself
//! (`\\`), so an escape in the output is never ambiguous.

use serde_json::Value;

/// Longest free-text value shown (characters, after escaping).
pub const TEXT_MAX: usize = 512;
/// Longest string inside a JSON value shown (characters, after escaping).
pub const JSON_STRING_MAX: usize = 256;

/// A character that is shown escaped.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// `s` on one line with every hidden character escaped visibly, at most
/// `max` characters; a longer text ends with `…[N more characters]`.
pub fn clean(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max) + 8);
    let mut count = 0usize;
    for (i, c) in s.char_indices() {
        let piece: String = match c {
            '\n' => "\\n".into(),
            '\r' => "\\r".into(),
            '\t' => "\\t".into(),
            '\\' => "\\\\".into(),
            c if is_hidden(c) => format!("\\u{{{:x}}}", c as u32),
            c => c.to_string(),
        };
        let n = piece.chars().count();
        if count + n > max {
            let rest = s[i..].chars().count();
            out.push_str(&format!("…[{rest} more characters]"));
            return out;
        }
        count += n;
        out.push_str(&piece);
    }
    out
}

/// Is `s` already what [`clean`] would make of it (nothing hidden, no
/// backslash, at most `max` characters)?
pub fn is_clean(s: &str, max: usize) -> bool {
    s.chars().count() <= max && !s.chars().any(|c| c == '\\' || is_hidden(c))
}

/// `v` with every object key and string cleaned ([`JSON_STRING_MAX`]).
pub fn clean_json(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(clean(s, JSON_STRING_MAX)),
        Value::Array(a) => Value::Array(a.iter().map(clean_json).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (clean(k, JSON_STRING_MAX), clean_json(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hidden_characters_are_escaped_visibly_and_plain_text_is_kept() {
        assert_eq!(clean("a\nb", 50), "a\\nb");
        assert_eq!(clean("x\u{202E}gnp.exe", 50), "x\\u{202e}gnp.exe");
        assert_eq!(
            clean("a\u{1b}[2Jb\u{85}\u{9b}", 50),
            "a\\u{1b}[2Jb\\u{85}\\u{9b}"
        );
        assert_eq!(
            clean("z\u{200B}w\u{2028}\u{2069}", 50),
            "z\\u{200b}w\\u{2028}\\u{2069}"
        );
        assert_eq!(clean("C:\\u{202e}", 50), "C:\\\\u{202e}");
        assert_eq!(clean("é ünïcode, 日本", 50), "é ünïcode, 日本");
        assert!(is_clean("team-alpha", 50) && !is_clean("a\u{2066}", 50));
    }

    #[test]
    fn long_text_is_capped_and_says_how_much_was_cut() {
        let c = clean(&"y".repeat(1000), 100);
        assert_eq!(c, format!("{}…[900 more characters]", "y".repeat(100)));
        // An escape is never cut in half.
        let c = clean("aaaa\u{202E}", 6);
        assert_eq!(c, "aaaa…[1 more characters]");
    }

    #[test]
    fn json_keys_and_strings_are_cleaned_at_every_depth() {
        let v = json!({"k\u{202E}": ["a\nb", {"x": "\u{7}"}], "n": 1});
        assert_eq!(
            clean_json(&v),
            json!({"k\\u{202e}": ["a\\nb", {"x": "\\u{7}"}], "n": 1})
        );
    }
}
