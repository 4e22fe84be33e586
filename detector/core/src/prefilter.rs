//! The test every record's bytes pass before any parsing: a record that
//! holds none of these needles cannot match any rule, so it is counted and
//! skipped without building any value.
//!
//! - `Microvm`: every governed operation's name holds it;
//! - `AwsCloudTrailInsight`: Insight records are counted;
//! - the CloudTrail operations the trail rules read (`StopLogging`,
//!   `DeleteTrail`, `UpdateTrail`, `PutEventSelectors`);
//! - the organization operations reported whatever they name
//!   (`LeaveOrganization`, ...), and with a boundary or an SCP configured the
//!   operations that remove or replace one without naming it;
//! - every configured name a tamper rule matches on: the launcher roles,
//!   the launcher and detector functions, the protected resources and the
//!   ledger tables, and the administrator's paths (stacks, deployment,
//!   pipeline, break-glass and execution roles, the deny policy and
//!   boundary, SCP ids, secrets, alert topics, log groups, trail buckets). A rule reports a record only when a value in it names
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
use crate::classify::admin::PrincipalRef;
use crate::classify::tamper::organization::EVENTS as ORGANIZATION_EVENTS;
use crate::classify::tamper::prevention::{BOUNDARY_REMOVALS, BOUNDARY_SETS};
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
        needles.extend(ORGANIZATION_EVENTS.iter().map(|s| s.to_string()));
        let a = &t.admin;
        if !a.prevention_policies.is_empty() {
            needles.extend(
                BOUNDARY_REMOVALS
                    .iter()
                    .chain(&BOUNDARY_SETS)
                    .map(|s| s.to_string()),
            );
        }
        if !a.scps.is_empty() {
            needles.push("DisablePolicyType".into());
        }
        let last = |s: &str, sep: char| s.rsplit(sep).next().unwrap_or(s).to_string();
        needles.extend(a.governance_stacks.iter().map(|s| json_text(&s.name)));
        needles.extend(
            t.deployment_roles
                .iter()
                .chain(&a.break_glass_roles)
                .chain(&a.execution_roles)
                .map(|r| json_text(&r.name)),
        );
        needles.extend(a.pipeline_principals.iter().map(|p| match p {
            PrincipalRef::Role(r) => json_text(&r.name),
            PrincipalRef::User(arn) => json_text(&last(arn, '/')),
        }));
        needles.extend(
            a.prevention_policies
                .iter()
                .chain(&a.scps)
                .chain(&a.detector_log_groups)
                .chain(&a.trail_buckets)
                .map(|p| json_text(&last(p, '/'))),
        );
        needles.extend(a.alert_topics.iter().map(|t| json_text(&last(t, ':'))));
        needles.extend(
            a.contro1_secrets
                .iter()
                .map(|s| json_text(&last(s.base.as_deref().unwrap_or(&s.name), '/'))),
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
