//! The summary `detector scan` prints on stderr at the end: the totals a
//! hunter always wants (inputs, records, findings), then only the counters
//! that are not zero.

use detector_core::ScanStats;

/// What the command line counts beside the scanner's [`ScanStats`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Files in a directory or prefix whose names are not read.
    pub ignored: u64,
    /// Inputs that failed to open or read, or held a bad record.
    pub bad_inputs: u64,
    /// Findings outside `--since` / `--until` (not printed).
    pub outside_window: u64,
    /// Findings kept because their `eventTime` is missing or unparsable.
    pub undated: u64,
    /// Inputs that stopped at a record larger than `--max-record-bytes`.
    pub too_large: u64,
}

/// `N name` for each non-zero count, joined.
fn nonzero(items: &[(&str, u64)]) -> String {
    items
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{n} {name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// ` (inner)` when `inner` is not empty.
fn paren(inner: String) -> String {
    if inner.is_empty() {
        inner
    } else {
        format!(" ({inner})")
    }
}

/// The stderr summary. Inputs, records and findings are always shown; every
/// other counter only when it is not zero.
pub fn summary(s: &ScanStats, c: &Counts) -> String {
    let mut head = vec![
        format!(
            "{} files read{}",
            s.files,
            paren(nonzero(&[("ignored", c.ignored)]))
        ),
        format!(
            "{} records{}",
            s.records,
            paren(nonzero(&[("MB", s.bytes / 1_000_000)]))
        ),
    ];
    if s.governed > 0 {
        head.push(format!(
            "{} governed calls{}",
            s.governed,
            paren(nonzero(&[("managed", s.managed)]))
        ));
    }
    if s.control_plane > 0 {
        head.push(format!("{} control-plane changes", s.control_plane));
    }
    let shown = s.total_findings().saturating_sub(c.outside_window);
    head.push(format!("{shown} findings"));
    let mut out = format!("detector scan: {}\n", head.join(", "));
    if !s.findings.is_empty() {
        let by_rule: Vec<String> = s
            .findings
            .iter()
            .map(|(rule, n)| format!("{rule} {n}"))
            .collect();
        // The rules' counts include the findings the time window hides.
        let label = if c.outside_window > 0 {
            "findings by rule, outside the time window included"
        } else {
            "findings by rule"
        };
        out += &format!("  {label}: {}\n", by_rule.join(", "));
    }
    let window = nonzero(&[
        (
            "findings outside --since/--until not shown",
            c.outside_window,
        ),
        ("findings kept with no usable eventTime", c.undated),
    ]);
    if !window.is_empty() {
        out += &format!("  time window: {window}\n");
    }
    let not_reported = nonzero(&[
        ("by a deployment role", s.changes_by_deployment),
        ("by an AWS service", s.changes_by_aws_service),
        (
            "selector changes keeping MicroVM coverage",
            s.selector_changes_keeping_coverage,
        ),
    ]);
    if !not_reported.is_empty() {
        out += &format!("  changes not reported: {not_reported}\n");
    }
    let skipped = nonzero(&[
        ("digest files", s.skipped_digest_files),
        ("insight records", s.skipped_insight_records),
        ("JSON objects not CloudTrail", s.not_cloudtrail),
        ("duplicate events", s.duplicates),
    ]);
    if !skipped.is_empty() {
        out += &format!("  skipped: {skipped}\n");
    }
    let errors = nonzero(&[
        ("inputs unreadable", s.input_errors),
        ("records unreadable", s.record_errors),
        (
            "inputs stopped at a record over --max-record-bytes",
            c.too_large,
        ),
        ("inputs with errors", c.bad_inputs),
    ]);
    if !errors.is_empty() {
        out += &format!("  errors: {errors}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_scan_shows_only_inputs_records_and_findings() {
        let s = ScanStats {
            files: 3,
            records: 10,
            not_governed: 10,
            ..ScanStats::default()
        };
        assert_eq!(
            summary(&s, &Counts::default()),
            "detector scan: 3 files read, 10 records, 0 findings\n"
        );
    }

    #[test]
    fn non_zero_counters_are_shown_with_their_names() {
        let mut s = ScanStats {
            files: 2,
            records: 5,
            bytes: 3_000_000,
            governed: 3,
            managed: 1,
            duplicates: 1,
            record_errors: 1,
            ..ScanStats::default()
        };
        s.findings.insert(detector_core::Rule::ALL[0], 2);
        let c = Counts {
            ignored: 1,
            outside_window: 1,
            undated: 1,
            bad_inputs: 1,
            ..Counts::default()
        };
        let text = summary(&s, &c);
        assert!(
            text.starts_with(
                "detector scan: 2 files read (1 ignored), 5 records (3 MB), 3 governed calls (1 managed), 1 findings\n"
            ),
            "{text}"
        );
        assert!(text.contains("  time window: 1 findings outside --since/--until not shown, 1 findings kept with no usable eventTime\n"), "{text}");
        assert!(text.contains("  skipped: 1 duplicate events\n"), "{text}");
        assert!(
            text.contains("  errors: 1 records unreadable, 1 inputs with errors\n"),
            "{text}"
        );
        assert!(!text.contains(" 0 "), "{text}");
    }
}
