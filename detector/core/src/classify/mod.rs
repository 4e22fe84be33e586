//! The rules: for one CloudTrail record, is it a governed MicroVM call (and
//! did the launcher make it, consistently), or a change to the control plane
//! the promise depends on (the launcher and detector functions, the launcher
//! role, the trail, the pipeline's resources)?
//!
//! - [`bypass`]: governed calls (`aws.microvm.bypass.detected`).
//! - [`tamper`]: management events that change the control plane
//!   (`aws.microvm.governance.tampered`), one module per rule family.
//!
//! Every finding carries the same evidence ([`crate::finding::Finding`]).

pub mod admin;
pub mod bypass;
pub mod tamper;

pub use admin::{AdminConfig, PrincipalRef, SecretRef, StackRef};

use crate::finding::{Finding, Outcome, Rule};
use crate::record::Record;
use crate::targets::{FunctionRef, ResourceRef};
use serde_json::Value;
use shared_core::ops::{is_microvm_event_source, normalise_event_name};
use shared_core::{GovernedOp, RoleRef};
use std::borrow::Cow;

/// Who counts as the launcher, and what the tamper rules protect.
#[derive(Debug, Clone, Default)]
pub struct ClassifierConfig {
    /// Roles the launcher runs as (`LAUNCHER_ROLE_ARNS`). An account field of
    /// `*` matches the role in the account where the call was made; every
    /// launcher role counts only in its own account.
    pub launcher_roles: Vec<RoleRef>,
    /// When non-empty, the only accounts whose governed calls are trusted
    /// (`ORGANIZATION_ACCOUNTS`); a call recorded for another account is
    /// `account-outside-organization`.
    pub organization_accounts: Vec<String>,
    /// When non-empty, the launcher's session must carry one of these names
    /// (`LAUNCHER_SESSION_NAMES`); Lambda uses the function name.
    pub launcher_session_names: Vec<String>,
    /// The control plane the tamper rules watch.
    pub tamper: TamperConfig,
}

/// What the tamper rules protect, and who may change it.
#[derive(Debug, Clone, Default)]
pub struct TamperConfig {
    /// `LAUNCHER_FUNCTIONS`.
    pub launcher_functions: Vec<FunctionRef>,
    /// `DETECTOR_FUNCTIONS`.
    pub detector_functions: Vec<FunctionRef>,
    /// `DEPLOYMENT_ROLE_ARNS`: their changes are counted, not reported.
    pub deployment_roles: Vec<RoleRef>,
    /// `PROTECTED_RESOURCES`: any mutating management call naming one.
    pub protected_resources: Vec<ResourceRef>,
    /// `LEDGER_TABLE`(s): item writes by anyone but the launcher role.
    pub ledger_tables: Vec<ResourceRef>,
    /// `TRAIL_NAMES`: when non-empty, only changes to these trails count.
    pub trail_names: Vec<String>,
    /// The administrator's paths (T11–T19): stacks, exempt roles, the
    /// prevention, secrets, alert plumbing.
    pub admin: AdminConfig,
}

/// The account field of a role pattern (launcher or deployment role) that
/// matches the role in whichever account the call was made.
pub const ANY_ACCOUNT: &str = "*";

/// Is `role` one of `patterns`? A pattern names a role of one account, or
/// with [`ANY_ACCOUNT`] the role of that name in the account of the call
/// (`account`, when known) and in no other.
fn role_in(patterns: &[RoleRef], role: &RoleRef, account: Option<&str>) -> bool {
    patterns.iter().any(|p| {
        if p.account == ANY_ACCOUNT {
            account.is_none_or(|a| a == role.account)
                && RoleRef {
                    account: role.account.clone(),
                    ..p.clone()
                }
                .matches(role)
        } else {
            p.matches(role)
        }
    })
}

/// Which list of a [`TamperConfig`] a value came from, named as the
/// environment variable and as the `detector scan` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TamperList {
    LauncherFunctions,
    DetectorFunctions,
    DeploymentRoles,
    ProtectedResources,
    GovernanceStacks,
    PipelinePrincipals,
    BreakGlassRoles,
    ExecutionRoles,
    PreventionPolicies,
    Scps,
    Contro1Secrets,
    AlertTopics,
    DetectorLogGroups,
    DetectorRoles,
    TrailBuckets,
}

impl TamperList {
    /// The lists of [`AdminConfig`], each an environment variable of the
    /// Lambda and a flag of `detector scan`.
    pub const ADMIN: [TamperList; 11] = [
        TamperList::GovernanceStacks,
        TamperList::PipelinePrincipals,
        TamperList::BreakGlassRoles,
        TamperList::ExecutionRoles,
        TamperList::PreventionPolicies,
        TamperList::Scps,
        TamperList::Contro1Secrets,
        TamperList::AlertTopics,
        TamperList::DetectorLogGroups,
        TamperList::DetectorRoles,
        TamperList::TrailBuckets,
    ];

    pub fn env(self) -> &'static str {
        match self {
            TamperList::LauncherFunctions => "LAUNCHER_FUNCTIONS",
            TamperList::DetectorFunctions => "DETECTOR_FUNCTIONS",
            TamperList::DeploymentRoles => "DEPLOYMENT_ROLE_ARNS",
            TamperList::ProtectedResources => "PROTECTED_RESOURCES",
            TamperList::GovernanceStacks => "GOVERNANCE_STACKS",
            TamperList::PipelinePrincipals => "PIPELINE_PRINCIPAL_ARNS",
            TamperList::BreakGlassRoles => "BREAK_GLASS_ROLE_ARNS",
            TamperList::ExecutionRoles => "EXECUTION_ROLE_ARNS",
            TamperList::PreventionPolicies => "PREVENTION_POLICY_ARNS",
            TamperList::Scps => "SCP_IDS",
            TamperList::Contro1Secrets => "CONTRO1_SECRETS",
            TamperList::AlertTopics => "ALERT_TOPIC_ARN",
            TamperList::DetectorLogGroups => "DETECTOR_LOG_GROUPS",
            TamperList::DetectorRoles => "DETECTOR_ROLE_ARNS",
            TamperList::TrailBuckets => "TRAIL_BUCKETS",
        }
    }
    pub fn flag(self) -> &'static str {
        match self {
            TamperList::LauncherFunctions => "--launcher-function",
            TamperList::DetectorFunctions => "--detector-function",
            TamperList::DeploymentRoles => "--deployment-role-arn",
            TamperList::ProtectedResources => "--protected-resource",
            TamperList::GovernanceStacks => "--governance-stack",
            TamperList::PipelinePrincipals => "--pipeline-principal-arn",
            TamperList::BreakGlassRoles => "--break-glass-role-arn",
            TamperList::ExecutionRoles => "--execution-role-arn",
            TamperList::PreventionPolicies => "--prevention-policy-arn",
            TamperList::Scps => "--scp",
            TamperList::Contro1Secrets => "--contro1-secret",
            TamperList::AlertTopics => "--alert-topic-arn",
            TamperList::DetectorLogGroups => "--detector-log-group",
            TamperList::DetectorRoles => "--detector-role-arn",
            TamperList::TrailBuckets => "--trail-bucket",
        }
    }
}

/// A KMS alias where the records name keys by key id or key ARN: a rule
/// given it would never match a change to the key.
fn kms_alias(v: &str) -> bool {
    v.starts_with("alias/")
        || admin::split_arn(v)
            .is_some_and(|[_, service, _, _, r]| service == "kms" && r.starts_with("alias/"))
}

/// A value of a tamper list that is not what the list takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}`: {reason}")]
pub struct TamperConfigError {
    pub list: TamperList,
    pub value: String,
    pub reason: String,
}

impl TamperConfig {
    /// Parse the four configured lists (blank entries are ignored). Ledger
    /// tables and trail names are set by the caller, which knows them.
    pub fn parse(
        launcher_functions: &[String],
        detector_functions: &[String],
        deployment_roles: &[String],
        protected_resources: &[String],
    ) -> Result<TamperConfig, TamperConfigError> {
        fn each<T>(
            list: TamperList,
            values: &[String],
            parse: impl Fn(&str) -> Result<T, String>,
        ) -> Result<Vec<T>, TamperConfigError> {
            values
                .iter()
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(|v| {
                    parse(v).map_err(|reason| TamperConfigError {
                        list,
                        value: v.to_string(),
                        reason,
                    })
                })
                .collect()
        }
        let function = |v: &str| {
            FunctionRef::parse(v).ok_or_else(|| {
                "not a Lambda function name or ARN (NAME or arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME)"
                    .to_string()
            })
        };
        Ok(TamperConfig {
            launcher_functions: each(TamperList::LauncherFunctions, launcher_functions, function)?,
            detector_functions: each(TamperList::DetectorFunctions, detector_functions, function)?,
            deployment_roles: each(TamperList::DeploymentRoles, deployment_roles, |v| {
                RoleRef::from_role_arn(v).map_err(|e| e.to_string())
            })?,
            protected_resources: each(TamperList::ProtectedResources, protected_resources, |v| {
                if kms_alias(v) {
                    return Err(
                        "a KMS alias: CloudTrail records name a key by its key id or key \
                                ARN, never by alias, so no change to the key would match; give \
                                the key ARN (arn:aws:kms:REGION:ACCOUNT:key/KEY-ID)"
                            .to_string(),
                    );
                }
                ResourceRef::parse(v).ok_or_else(|| "not a resource name or ARN".to_string())
            })?,
            ledger_tables: Vec::new(),
            trail_names: Vec::new(),
            admin: AdminConfig::default(),
        })
    }
}

/// A governed call made by the launcher's role, consistently. The Lambda
/// checks its `request_id` against the ledger; if the ledger does not hold
/// it, `if_not_in_ledger` is the finding to raise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GovernedCall {
    pub op: GovernedOp,
    pub outcome: Outcome,
    /// CloudTrail `requestID`; the launcher's ledger stores the same id.
    pub request_id: String,
    pub microvm_id: Option<String>,
    /// From the payload, else from `clientToken`.
    pub contro1_request_id: Option<String>,
    /// `launcher-credentials-outside-launcher`, with the call's evidence.
    pub if_not_in_ledger: Finding,
}

/// Why a change was not reported although a tamper rule matched it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exemption {
    /// Made by a deployment role or a pipeline principal.
    Deployment,
    /// Made by an AWS service on its own behalf (every shape:
    /// [`tamper::service_acting_for_itself`]).
    AwsService,
    /// A `PutEventSelectors` whose selectors still log every governed call.
    CoverageKept,
}

/// What one record is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classification {
    /// Nothing any rule looks at.
    NotGoverned,
    Managed(GovernedCall),
    Finding(Finding),
    /// A tamper rule matched, but the change is not reported (counted).
    Exempt {
        rule: Rule,
        why: Exemption,
    },
}

/// The classifier. Cheap to share; holds only its configuration.
#[derive(Debug, Clone)]
pub struct Classifier {
    cfg: ClassifierConfig,
}

/// What kind of record this is, from `eventSource` + `eventName` alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Governed(GovernedOp),
    /// Some tamper rule may apply (decided on the whole record).
    Management,
    Other,
}

/// Kind of a record from its `eventSource` and `eventName` (and, for the
/// protected-resource rule, whether it is a mutating management event).
pub fn kind_of(record: &Record<'_>, cfg: &ClassifierConfig) -> Kind {
    let (Some(source), Some(name)) = (record.event_source.as_str(), record.event_name.as_str())
    else {
        return Kind::Other;
    };
    if is_microvm_event_source(source)
        && let Some(op) = GovernedOp::from_event_name(name)
    {
        return Kind::Governed(op);
    }
    if tamper::may_apply(source, normalise_event_name(name), record, &cfg.tamper) {
        return Kind::Management;
    }
    Kind::Other
}

/// The role behind the caller: `sessionIssuer.arn`, else the assumed-role
/// ARN's account and name.
pub fn principal_role(r: &Record<'_>) -> Option<RoleRef> {
    let ui = r.user_identity.get()?;
    let issuer = ui
        .session_context
        .get()
        .and_then(|c| c.session_issuer.get())
        .and_then(|i| i.arn.as_str());
    match issuer {
        Some(issuer) => RoleRef::from_role_arn(issuer).ok(),
        None => ui
            .arn
            .as_str()
            .and_then(|a| RoleRef::from_assumed_role_arn(a).ok())
            .map(|(role, _)| role),
    }
}

/// The session name: the last segment of the assumed-role ARN.
pub fn session_name<'r>(r: &'r Record<'_>) -> Option<&'r str> {
    let arn = r.user_identity.get()?.arn.as_str()?;
    let rest = arn.split_once(":assumed-role/")?.1;
    rest.split_once('/')
        .and_then(|(_, s)| s.rsplit('/').next())
        .filter(|s| !s.is_empty())
}

impl Classifier {
    pub fn new(cfg: ClassifierConfig) -> Classifier {
        Classifier { cfg }
    }

    pub fn config(&self) -> &ClassifierConfig {
        &self.cfg
    }

    /// True when `role`, acting in `account` (the account the call was
    /// made in, when known), is one of the launcher's roles: same name (and
    /// path where both know it), and the role belongs to that account — a
    /// launcher role of another account is not the launcher here.
    pub fn is_launcher_role(&self, role: &RoleRef, account: Option<&str>) -> bool {
        if account.is_some_and(|a| a != role.account) {
            return false;
        }
        role_in(&self.cfg.launcher_roles, role, account)
    }

    /// True when `role`, acting in `account`, is one of the deployment
    /// roles: a role named by its ARN wherever it acts, a role named for any
    /// account (`arn:aws:iam::*:role/NAME`, as StackSets deploy into every
    /// member account) only in its own account.
    pub fn is_deployment_role(&self, role: &RoleRef, account: Option<&str>) -> bool {
        role_in(&self.cfg.tamper.deployment_roles, role, account)
    }

    /// A launcher role of another account than the call's (the launcher
    /// of account B used for a call recorded in account A): B.
    pub fn foreign_launcher_account<'r>(
        &self,
        role: &'r RoleRef,
        account: Option<&str>,
    ) -> Option<&'r str> {
        let account = account?;
        (role.account != account && self.is_launcher_role(role, Some(&role.account)))
            .then_some(role.account.as_str())
    }

    /// Classify one record. `whole` gives the record as a JSON value, asked
    /// for only when a tamper rule needs to look inside it (rare). Fields of
    /// the wrong type read as absent here; callers that want them reported
    /// run [`Record::check_types`] first (the streaming scanner does).
    pub fn classify<'w>(
        &self,
        r: &Record<'_>,
        source: &str,
        whole: impl FnOnce() -> Result<Cow<'w, Value>, serde_json::Error>,
    ) -> Result<Classification, serde_json::Error> {
        Ok(match kind_of(r, &self.cfg) {
            Kind::Other => Classification::NotGoverned,
            Kind::Governed(op) => match bypass::classify(self, op, r, source) {
                // Findings are rare: only they pay for the record as evidence.
                Classification::Finding(mut f) => {
                    f.record = Some(crate::evidence::record_evidence(whole()?.as_ref()));
                    Classification::Finding(f)
                }
                other => other,
            },
            Kind::Management => {
                let whole = whole()?;
                match tamper::classify(self, r, whole.as_ref(), source) {
                    Classification::Finding(mut f) => {
                        f.record = Some(crate::evidence::record_evidence(whole.as_ref()));
                        Classification::Finding(f)
                    }
                    other => other,
                }
            }
        })
    }

    /// Classify one record given as a parsed JSON value (an EventBridge
    /// `detail`). Fails on a field of the wrong type the classifier reads.
    pub fn classify_value(
        &self,
        record: &Value,
        source: &str,
    ) -> Result<Classification, crate::RecordError> {
        let r = Record::from_value(record).map_err(crate::RecordError::Json)?;
        let deep = kind_of(&r, &self.cfg) != Kind::Other;
        r.check_types(deep).map_err(crate::RecordError::FieldType)?;
        if r.is_insight() {
            return Ok(Classification::NotGoverned);
        }
        self.classify(&r, source, || Ok(Cow::Borrowed(record)))
            .map_err(crate::RecordError::Json)
    }
}
