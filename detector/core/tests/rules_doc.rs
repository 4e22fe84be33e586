//! docs/rules.md lists every rule under the event it raises, so the
//! reference a security engineer reads cannot fall behind the code.

use detector_core::Rule;
use std::collections::HashSet;

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
