//! Aligned columns for a terminal: sorted by event time, cut to fit the
//! terminal's width (the widest columns give way first, shortened with
//! `…`), severity in colour only when asked (a terminal without
//! `NO_COLOR`), and a total line. Every cell is cleaned.

use crate::finding::{Finding, Severity};
use crate::text::{FIELD_MAX, clean};

const HEAD: [&str; 6] = [
    "SEVERITY",
    "EVENT_TIME",
    "RULE",
    "EVENT",
    "PRINCIPAL",
    "TARGET",
];
/// The narrowest a shrinkable column gets.
const MIN_WIDTH: usize = 10;
const GAP: usize = 2;

fn colour(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "\x1b[1;31m",
        Severity::High => "\x1b[31m",
        Severity::Medium => "\x1b[33m",
        Severity::Low => "\x1b[36m",
        Severity::Info => "\x1b[2m",
    }
}

/// `s` cut to `w` characters with `…` where it was cut: at the end, or in
/// the middle for ARNs and ids (`middle`), whose start (service, account)
/// and end (name) both tell them apart.
fn fit(s: &str, w: usize, middle: bool) -> String {
    let n = s.chars().count();
    if n <= w {
        return s.to_string();
    }
    let keep = w.saturating_sub(1);
    let head = if middle { keep / 3 } else { keep };
    let mut out: String = s.chars().take(head).collect();
    out.push('…');
    out.extend(s.chars().skip(n - (keep - head)));
    out
}

/// The findings as a table at most `width` characters wide (as far as the
/// columns' minimum widths allow), sorted by event time.
pub fn render(findings: &[Finding], width: usize, coloured: bool) -> String {
    let mut rows: Vec<&Finding> = findings.iter().collect();
    rows.sort_by(|a, b| {
        (a.event_time.as_deref(), a.event_id.as_deref())
            .cmp(&(b.event_time.as_deref(), b.event_id.as_deref()))
    });
    let cell = |s: Option<&str>| clean(s.unwrap_or("-"), FIELD_MAX);
    let cells: Vec<([String; 6], Severity)> = rows
        .iter()
        .map(|f| {
            (
                [
                    f.severity.as_str().to_string(),
                    cell(f.event_time.as_deref()),
                    f.rule.as_str().to_string(),
                    cell(f.event_name.as_deref()),
                    cell(f.principal_arn.as_deref().or(f.identity_type.as_deref())),
                    cell(f.microvm_id.as_deref().or(f.resource.as_deref())),
                ],
                f.severity,
            )
        })
        .collect();
    let mut widths = HEAD.map(str::len);
    for (row, _) in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    // Give way: the widest of PRINCIPAL, TARGET, EVENT, RULE shrinks first,
    // one character at a time, until the line fits or all are at minimum.
    let total = |w: &[usize; 6]| w.iter().sum::<usize>() + GAP * (w.len() - 1);
    while total(&widths) > width {
        let Some(i) = [4, 5, 3, 2]
            .into_iter()
            .filter(|&i| widths[i] > MIN_WIDTH)
            .max_by_key(|&i| widths[i])
        else {
            break;
        };
        widths[i] -= 1;
    }
    let line = |cols: [String; 6], sev: Option<Severity>| {
        let mut s = String::new();
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
            let c = fit(c, w, i >= 4);
            let pad = w - c.chars().count();
            match (i, sev) {
                (0, Some(sev)) if coloured => {
                    s.push_str(&format!("{}{c}\x1b[0m{}", colour(sev), " ".repeat(pad)));
                }
                _ => {
                    s.push_str(&c);
                    if i + 1 < cols.len() {
                        s.push_str(&" ".repeat(pad));
                    }
                }
            }
            if i + 1 < cols.len() {
                s.push_str(&" ".repeat(GAP));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(HEAD.map(str::to_string), None);
    for (row, sev) in cells {
        out += &line(row, Some(sev));
    }
    out += &format!(
        "total: {} finding{}\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    out
}
