//! The test every record's bytes pass before any parsing: a record that
//! holds none of these needles cannot match any rule, so it is counted and
//! skipped without building any value.
//!
//! - `Microvm`: every governed operation's name holds it;
//! - `AwsCloudTrailInsight`: Insight records are counted;
//! - the CloudTrail operations the trail rules read (`StopLogging`,
//!   `DeleteTrail`, `UpdateTrail`, `PutEventSelectors`);
//! - every configured name a tamper rule matches on: the launcher roles,
//!   the launcher and detector functions, the protected resources and the
//!   ledger tables. A rule reports a record only when a value in it names
//!   one of them, and a value can only name one if the record's bytes hold
//!   the name (JSON-escaped, as a JSON writer writes it).
//!
//! A name can also be spelt with `\u` escapes (`Micro\u0076m`), or `\/` for
//! a slash: a record holding either is always parsed (the reader flags it
//! while finding the record's end).
//!
//! A record some rule looks at but reports on no configured name (a Lambda
//! function change to another function, say) is skipped too: it is counted
//! as not governed either way. Only its JSON is no longer checked, as no
//! skipped record's is.
//!
//! The needles are searched with `aho-corasick` in leftmost-first mode, which
//! lets it use its SIMD (Teddy) prefilter: several GB/s on CloudTrail.

use crate::classify::ClassifierConfig;
use crate::classify::tamper::trail::EVENTS as TRAIL_CHANGE_EVENTS;
use aho_corasick::{AhoCorasick, MatchKind};

pub(crate) struct Prefilter {
    ac: AhoCorasick,
}

impl Prefilter {
    pub(crate) fn new(cfg: &ClassifierConfig) -> Prefilter {
        let t = &cfg.tamper;
        let mut needles: Vec<String> = ["Microvm", "AwsCloudTrailInsight"]
            .iter()
            .chain(&TRAIL_CHANGE_EVENTS)
            .map(|s| s.to_string())
            .collect();
        needles.extend(cfg.launcher_roles.iter().map(|r| json_text(&r.name)));
        needles.extend(
            t.launcher_functions
                .iter()
                .chain(&t.detector_functions)
                .map(|f| json_text(&f.name)),
        );
        needles.extend(
            t.protected_resources
                .iter()
                .chain(&t.ledger_tables)
                .map(|r| json_text(r.needle())),
        );
        needles.retain(|n| !n.is_empty());
        needles.sort();
        needles.dedup();
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&needles)
            .expect("the prefilter's needles are plain strings");
        Prefilter { ac }
    }

    /// Must `record` be parsed? `escapes`: it holds a `\u` or `\/` escape.
    pub(crate) fn candidate(&self, record: &[u8], escapes: bool) -> bool {
        escapes || self.ac.is_match(record)
    }
}

/// `s` as it appears inside a JSON string written by a JSON writer
/// (quotes, backslashes and control characters escaped).
fn json_text(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or(s)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ResourceRef, TamperConfig};
    use shared_core::RoleRef;

    fn prefilter() -> Prefilter {
        Prefilter::new(&ClassifierConfig {
            launcher_roles: vec![
                RoleRef::from_role_arn("arn:aws:iam::1:role/gov/Launcher").unwrap(),
            ],
            tamper: TamperConfig {
                protected_resources: vec![
                    ResourceRef::parse("arn:aws:s3:::trail-bucket").unwrap(),
                    ResourceRef::parse("odd\"name").unwrap(),
                ],
                ..TamperConfig::default()
            },
            ..ClassifierConfig::default()
        })
    }

    #[test]
    fn a_record_naming_nothing_configured_is_not_a_candidate() {
        let p = prefilter();
        let r = br#"{"eventSource":"s3.amazonaws.com","eventName":"GetObject","requestParameters":{"bucketName":"other"}}"#;
        assert!(!p.candidate(r, false));
        assert!(
            p.candidate(r, true),
            "a record with escapes is always parsed"
        );
    }

    #[test]
    fn configured_names_are_searched_as_json_writes_them() {
        let p = prefilter();
        assert!(p.candidate(
            br#"{"requestParameters":{"bucketName":"trail-bucket"}}"#,
            false
        ));
        assert!(p.candidate(br#"{"roleArn":"arn:aws:iam::1:role/gov/Launcher"}"#, false));
        assert!(p.candidate(br#"{"name":"odd\"name"}"#, false));
        assert!(!p.candidate(br#"{"name":"odd"name"}"#, false));
        assert!(p.candidate(br#"{"eventName":"RunMicrovm20250909v2"}"#, false));
        assert!(p.candidate(br#"{"eventName":"PutEventSelectors"}"#, false));
        assert!(p.candidate(br#"{"eventType":"AwsCloudTrailInsight"}"#, false));
    }
}
