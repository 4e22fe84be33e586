//! The tamper rules: CloudTrail management events that change what the
//! promise depends on (THREAT-MODEL.md T1–T7). One module per rule family;
//! the first family that matches decides. A match by a deployment role (or,
//! where it cannot be an attack, by an AWS service on its own behalf) is
//! counted, not reported.
//!
//! | family | rules |
//! | --- | --- |
//! | [`trail`] | `trail-stopped`, `trail-deleted`, `trail-updated`, `trail-selectors-changed` |
//! | [`functions`] | `launcher-function-changed`, `detector-function-changed`, `launcher-role-passed-to-function` |
//! | [`roles`] | `launcher-role-assumed`, `launcher-role-changed` |
//! | [`resources`] | `ledger-written-outside-launcher`, `protected-resource-changed` |

pub mod functions;
pub mod resources;
pub mod roles;
pub mod trail;

use super::{Classification, Classifier, Exemption, TamperConfig, principal_role};
use crate::evidence;
use crate::finding::{Finding, Outcome, Rule, Severity};
use crate::record::Record;
use serde_json::Value;
use shared_core::ops::normalise_event_name;

/// What a rule family found.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub rule: Rule,
    /// Severity if the call succeeded (a failed attempt is `low`).
    pub severity: Severity,
    /// The resource changed, as the record names it.
    pub resource: String,
    /// Why, in a sentence.
    pub reason: String,
    /// The change may be made by a deployment role (counted, not reported).
    pub deployment_may: bool,
    /// The change may be made by an AWS service on its own behalf.
    pub service_may: bool,
}

/// One record, as the rule families see it.
pub(crate) struct Ctx<'a> {
    pub c: &'a Classifier,
    pub r: &'a Record<'a>,
    /// `eventSource`.
    pub service: &'a str,
    /// Normalised `eventName`.
    pub name: &'a str,
    /// `requestParameters` / `responseElements` of the whole record.
    pub params: Option<&'a Value>,
    pub response: Option<&'a Value>,
    /// The account the call was made in.
    pub account: Option<String>,
}

impl Ctx<'_> {
    pub fn cfg(&self) -> &TamperConfig {
        &self.c.config().tamper
    }
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params?.get(key)?.as_str()
    }
    pub fn response_str(&self, key: &str) -> Option<&str> {
        self.response?.get(key)?.as_str()
    }
}

/// Is the call read-only? `readOnly` when the record has it, else by the
/// operation's verb.
pub(crate) fn read_only(r: &Record<'_>, name: &str) -> bool {
    if r.read_only.is_true() {
        return true;
    }
    if r.read_only.is_false() {
        return false;
    }
    const VERBS: [&str; 8] = [
        "Get", "List", "Describe", "Head", "Lookup", "BatchGet", "Query", "Scan",
    ];
    VERBS.iter().any(|v| name.starts_with(v))
}

/// Could some tamper rule apply to this record? Decided from `eventSource`,
/// `eventName` and what is configured, before the record is looked into.
pub(crate) fn may_apply(service: &str, name: &str, r: &Record<'_>, cfg: &TamperConfig) -> bool {
    trail::may_apply(service, name)
        || functions::may_apply(service, name)
        || roles::may_apply(service, name)
        || resources::may_apply(service, name, r, cfg)
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed => "failed (attempt)",
    }
}

pub(crate) fn classify(
    c: &Classifier,
    r: &Record<'_>,
    whole: &Value,
    source: &str,
) -> Classification {
    let (Some(service), Some(raw_name)) = (r.event_source.as_str(), r.event_name.as_str()) else {
        return Classification::NotGoverned;
    };
    let ctx = Ctx {
        c,
        r,
        service,
        name: normalise_event_name(raw_name),
        params: whole.get("requestParameters").filter(|v| v.is_object()),
        response: whole.get("responseElements").filter(|v| v.is_object()),
        account: evidence::account(r),
    };
    let hit = trail::check(&ctx)
        .or_else(|| functions::check(&ctx))
        .or_else(|| roles::check(&ctx))
        .or_else(|| resources::check(&ctx, whole));
    let hit = match hit {
        Some(Ok(hit)) => hit,
        Some(Err(why)) => {
            return Classification::Exempt {
                rule: why.0,
                why: why.1,
            };
        }
        None => return Classification::NotGoverned,
    };
    let role = principal_role(r);
    if hit.deployment_may
        && role.is_some_and(|role| c.is_deployment_role(&role, ctx.account.as_deref()))
    {
        return Classification::Exempt {
            rule: hit.rule,
            why: Exemption::Deployment,
        };
    }
    let identity_type = r.user_identity.get().and_then(|u| u.identity_type.as_str());
    if hit.service_may && identity_type == Some("AWSService") {
        return Classification::Exempt {
            rule: hit.rule,
            why: Exemption::AwsService,
        };
    }
    let outcome = evidence::outcome(r);
    let summary = format!(
        "{} {} on {} ({})",
        ctx.name,
        outcome_word(outcome),
        hit.resource,
        hit.rule
    );
    let mut f = Finding::new(
        hit.rule,
        hit.severity.attempt(outcome),
        summary,
        source.to_string(),
    );
    evidence::fill(&mut f, r);
    f.resource = Some(hit.resource);
    f.reason = Some(hit.reason);
    f.incident_key = crate::finding::incident_key(&f);
    Classification::Finding(f)
}

/// A rule family's verdict: a hit, a match that is exempt by nature, or
/// nothing.
pub(crate) type Verdict = Option<Result<Hit, (Rule, Exemption)>>;

/// Every string in a JSON value, keys included, with its path
/// (`requestParameters.requestItems.<key>`), depth-first. Stops at the first
/// string `pred` accepts.
pub(crate) fn find_string<'v>(
    v: &'v Value,
    path: &mut String,
    pred: &mut dyn FnMut(&str) -> bool,
) -> Option<&'v str> {
    match v {
        Value::String(s) => pred(s).then_some(s.as_str()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = find_string(item, path, pred);
            if found.is_none() {
                path.truncate(len);
            }
            found
        }),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            let len = path.len();
            path.push('.');
            path.push_str(k);
            if pred(k) {
                return Some(k.as_str());
            }
            let found = find_string(item, path, pred);
            if found.is_none() {
                path.truncate(len);
            }
            found
        }),
        _ => None,
    }
}
