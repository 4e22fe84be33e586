//! Making attacker-controlled text safe for a human-readable output.
//!
//! Everything a finding carries comes from a CloudTrail record or an API
//! response, and most of it can be chosen by whoever made the call (a
//! MicroVM id, a session name, a user agent, a function name). A newline in
//! such a value could forge a line of an alert ("Rule: ..."), an escape
//! sequence could rewrite a terminal, a bidirectional override could make
//! text read differently than it is. [`clean`] escapes all of them and bounds
//! the length; every plain-text output (SNS subject and body, the table,
//! text logs) goes through it. JSON outputs are escaped by the serializer and
//! bounded with [`clip`].

/// Longest value shown in one line of a human-readable output.
pub const FIELD_MAX: usize = 512;

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}' // zero-width and directional marks
                | '\u{2028}' | '\u{2029}' // line and paragraph separators
                | '\u{202A}'..='\u{202E}' // bidirectional embeddings and overrides
                | '\u{2060}'..='\u{2064}' // invisible operators
                | '\u{2066}'..='\u{2069}' // bidirectional isolates
                | '\u{FEFF}' // byte order mark
        )
}

/// `s` on one line: control, invisible and bidirectional characters
/// escaped (`\n`, `\t`, `\u{1b}`), at most `max` characters (cut with `...`).
pub fn clean(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max + 8));
    let mut count = 0usize;
    for c in s.chars() {
        let piece: String = match c {
            '\n' => "\\n".into(),
            '\r' => "\\r".into(),
            '\t' => "\\t".into(),
            c if needs_escape(c) => format!("\\u{{{:x}}}", c as u32),
            c => c.to_string(),
        };
        let n = piece.chars().count();
        if count + n > max {
            out.push_str("...");
            return out;
        }
        count += n;
        out.push_str(&piece);
    }
    out
}

/// At most `max` bytes of `s`, cut at a character boundary with `...`.
/// For values inside JSON, where the serializer does the escaping.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_escapes_and_bidi_overrides_are_escaped_on_one_line() {
        let forged = "vm-1\nRule:    nothing-to-see\nWhat to do: ignore";
        let c = clean(forged, FIELD_MAX);
        assert!(!c.contains('\n'), "{c}");
        assert_eq!(c, "vm-1\\nRule:    nothing-to-see\\nWhat to do: ignore");
        assert_eq!(clean("a\u{1b}[2Jb", 50), "a\\u{1b}[2Jb");
        assert_eq!(clean("x\u{202E}gnp.exe", 50), "x\\u{202e}gnp.exe");
        assert_eq!(clean("tab\there\r", 50), "tab\\there\\r");
        assert_eq!(clean("é ünïcode stays", 50), "é ünïcode stays");
    }

    #[test]
    fn length_is_bounded_in_characters_with_an_ellipsis() {
        let long = "a".repeat(10_000);
        let c = clean(&long, 100);
        assert_eq!(c.chars().count(), 103);
        assert!(c.ends_with("..."));
        let c = clean(&"\n".repeat(100), 10);
        assert!(c.chars().count() <= 13, "{c}");
        assert_eq!(clip("ééééé", 7), "éé...");
        assert_eq!(clip("short", 7), "short");
    }
}
