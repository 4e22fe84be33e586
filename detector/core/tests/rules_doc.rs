//! docs/rules.md lists every rule under the event it raises, so the
//! reference a security engineer reads cannot fall behind the code.

use detector_core::{Rule, Severity};
use std::collections::{BTreeSet, HashSet};

#[test]
fn every_rule_is_documented_under_its_event_and_once() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/rules.md");
    let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let ids: HashSet<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(ids.len(), Rule::ALL.len(), "Rule::ALL has a duplicate");
    let mut section = "";
    let mut seen = HashSet::new();
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            section = h;
        }
        let Some(id) = line.strip_prefix("| `").and_then(|l| l.split('`').next()) else {
            continue;
        };
        let rule = Rule::ALL
            .iter()
            .find(|r| r.as_str() == id)
            .unwrap_or_else(|| panic!("docs/rules.md lists `{id}`, which is not a rule"));
        assert!(
            section.contains(rule.event().as_str()),
            "`{id}` is listed under `{section}`, but raises {}",
            rule.event().as_str()
        );
        assert!(seen.insert(id), "`{id}` is listed twice");
    }
    let missing: Vec<&&str> = ids.iter().filter(|i| !seen.contains(**i)).collect();
    assert!(missing.is_empty(), "not in docs/rules.md: {missing:?}");
}

/// The severities a docs/rules.md row gives: every CRITICAL, HIGH, MEDIUM,
/// LOW word in its severity cell; "by operation" is all four.
fn documented_severities(cell: &str) -> BTreeSet<Severity> {
    if cell.trim() == "by operation" {
        return [
            Severity::Critical,
            Severity::High,
            Severity::Medium,
            Severity::Low,
        ]
        .into();
    }
    cell.split(|c: char| !c.is_ascii_alphabetic())
        .filter_map(|w| match w {
            "CRITICAL" => Some(Severity::Critical),
            "HIGH" => Some(Severity::High),
            "MEDIUM" => Some(Severity::Medium),
            "LOW" => Some(Severity::Low),
            _ => None,
        })
        .collect()
}

#[test]
fn every_rules_documented_severities_are_the_ones_the_code_raises() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/rules.md");
    let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut checked = 0;
    for line in doc.lines() {
        let Some(id) = line.strip_prefix("| `").and_then(|l| l.split('`').next()) else {
            continue;
        };
        let rule = Rule::ALL.iter().find(|r| r.as_str() == id).unwrap();
        let cell = line.split('|').nth(2).unwrap_or("");
        let documented = documented_severities(cell);
        let code: BTreeSet<Severity> = rule.severities().iter().copied().collect();
        assert_eq!(
            documented, code,
            "`{id}`: docs/rules.md says {documented:?} ({cell}), the code raises {code:?}"
        );
        checked += 1;
    }
    assert_eq!(checked, Rule::ALL.len());
    // A failed tamper call is LOW, said once for the whole table.
    assert!(
        doc.contains("is reported at **LOW**"),
        "docs/rules.md must say at what severity a failed tamper call is reported"
    );
    for rule in Rule::FROM_RECORDS {
        if rule.event().as_str() == "aws.microvm.governance.tampered" {
            assert!(rule.raises(Severity::Low), "{rule}: a failed attempt");
        }
    }
}
