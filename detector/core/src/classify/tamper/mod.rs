//! The tamper rules: CloudTrail management events that change what the
//! promise depends on (THREAT-MODEL.md T1–T7, T11–T19). One module per rule
//! family; the first family that matches decides. A match by a deployment
//! role or pipeline principal (or, where it cannot be an attack, by an AWS
//! service on its own behalf) is counted, not reported; a governance stack
//! operation is exempt for the pipeline principal only.
//!
//! | family | rules |
//! | --- | --- |
//! | [`trail`] | `trail-stopped`, `trail-deleted`, `trail-updated`, `trail-selectors-changed` |
//! | [`functions`] | `launcher-function-changed`, `detector-function-changed`, `launcher-role-passed-to-function` |
//! | [`roles`] | `launcher-role-assumed`, `launcher-role-changed` |
//! | [`stacks`] | `governance-stack-changed` |
//! | [`admin_roles`] | `exempt-role-changed`, `break-glass-session`, `execution-role-changed` |
//! | [`prevention`] | `prevention-policy-changed` |
//! | [`secrets`] | `contro1-secret-written` |
//! | [`alerts`] | `alert-topic-changed`, `detector-log-group-changed` |
//! | [`trail_objects`] | `trail-object-written` |
//! | [`organization`] | `account-left-organization` |
//! | [`ledger`] | `ledger-written-outside-launcher` |
//! | [`resources`] | `protected-resource-changed` |

pub mod admin_roles;
pub mod alerts;
pub mod functions;
pub mod ledger;
pub mod organization;
pub mod prevention;
pub mod resources;
pub mod roles;
pub mod secrets;
pub mod stacks;
pub mod trail;
pub mod trail_objects;

use super::admin::PrincipalRef;
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
    /// The change may be made by a deployment role or a pipeline principal
    /// (counted, not reported).
    pub deployment_may: bool,
    /// Only a pipeline principal may make it (a governance stack
    /// operation: the deployment role is what it makes act).
    pub pipeline_only: bool,
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
    /// The whole record.
    pub whole: &'a Value,
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
    let a = &cfg.admin;
    trail::may_apply(service, name)
        || functions::may_apply(service, name)
        || roles::may_apply(service, name)
        || stacks::may_apply(service, name, !a.governance_stacks.is_empty())
        || admin_roles::may_apply(service, name, cfg)
        || prevention::may_apply(service, name, cfg)
        || secrets::may_apply(service, name, !a.contro1_secrets.is_empty())
        || alerts::may_apply(service, name, cfg)
        || trail_objects::may_apply(service, name, !a.trail_buckets.is_empty())
        || organization::may_apply(service, name)
        || ledger::may_apply(service, name, cfg)
        || resources::may_apply(r, name, cfg)
}

/// Service principals end in this (`lambda.amazonaws.com`).
const SERVICE_PRINCIPAL: &str = ".amazonaws.com";

/// Is the call an AWS service acting on its own behalf? Every shape AWS
/// documents for one:
/// - `userIdentity.type` `AWSService` (a service assuming a role of yours);
/// - no identity of its own (no `type`, no `arn`), with `invokedBy` a
///   service principal or `AWS Internal`, or the record an
///   `AwsServiceEvent`: KMS automatic rotation's `RotateKey` carries only
///   `accountId` and `invokedBy: AWS Internal`;
/// - a service-linked role (path `/aws-service-role/`), which only its
///   service can assume.
///
/// A person's call made through a service (CloudFormation with the
/// caller's credentials: the caller's `type` and `arn`, `invokedBy` the
/// service) is the person's, not the service's.
pub fn service_acting_for_itself(r: &Record<'_>) -> bool {
    let Some(ui) = r.user_identity.get() else {
        return false;
    };
    let ty = ui.identity_type.as_str();
    if ty == Some("AWSService") {
        return true;
    }
    if ty.is_none() && ui.arn.as_str().is_none() {
        let by = ui.invoked_by.as_str();
        if by.is_some_and(|b| b.ends_with(SERVICE_PRINCIPAL) || b == "AWS Internal")
            || r.event_type.as_str() == Some("AwsServiceEvent")
        {
            return true;
        }
    }
    ty == Some("AssumedRole")
        && principal_role(r).is_some_and(|role| {
            role.path
                .as_deref()
                .is_some_and(|p| p.starts_with("/aws-service-role/"))
        })
}

/// Is the caller one of the pipeline principals?
fn is_pipeline(c: &Classifier, r: &Record<'_>, account: Option<&str>) -> bool {
    let principals = &c.config().tamper.admin.pipeline_principals;
    if principals.is_empty() {
        return false;
    }
    let role = principal_role(r);
    let arn = r.user_identity.get().and_then(|u| u.arn.as_str());
    principals.iter().any(|p| match p {
        PrincipalRef::Role(want) => role
            .as_ref()
            .is_some_and(|role| want.matches(role) && account.is_none_or(|a| a == role.account)),
        PrincipalRef::User(want) => arn == Some(want.as_str()),
    })
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
        whole,
        params: whole.get("requestParameters").filter(|v| v.is_object()),
        response: whole.get("responseElements").filter(|v| v.is_object()),
        account: evidence::account(r),
    };
    let hit = trail::check(&ctx)
        .or_else(|| functions::check(&ctx))
        .or_else(|| roles::check(&ctx))
        .or_else(|| stacks::check(&ctx))
        .or_else(|| admin_roles::check(&ctx))
        .or_else(|| prevention::check(&ctx))
        .or_else(|| secrets::check(&ctx))
        .or_else(|| alerts::check(&ctx))
        .or_else(|| trail_objects::check(&ctx))
        .or_else(|| organization::check(&ctx))
        .or_else(|| ledger::check(&ctx))
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
    let account = ctx.account.as_deref();
    let exempt = if hit.pipeline_only {
        is_pipeline(c, r, account)
    } else {
        hit.deployment_may
            && (role.is_some_and(|role| c.is_deployment_role(&role, account))
                || is_pipeline(c, r, account))
    };
    if exempt {
        return Classification::Exempt {
            rule: hit.rule,
            why: Exemption::Deployment,
        };
    }
    if hit.service_may && service_acting_for_itself(r) {
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
