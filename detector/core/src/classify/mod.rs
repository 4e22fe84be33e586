//! The bypass rules (issue 2, "Classification rules"): decides, for one
//! CloudTrail record, whether it is a governed MicroVM call and, if so,
//! whether the launcher made it consistently (managed) or not (a finding).
//! Also spots changes to CloudTrail itself, which blind the detector.

use crate::record::{PayloadId, Record};
use serde::Serialize;
use shared_core::ops::{is_microvm_event_source, normalise_event_name};
use shared_core::{Event, GovernedOp, RoleRef};

/// Who counts as the launcher.
#[derive(Debug, Clone, Default)]
pub struct ClassifierConfig {
    /// Roles the launcher runs as (`LAUNCHER_ROLE_ARNS`).
    pub launcher_roles: Vec<RoleRef>,
    /// When non-empty, the launcher's session must carry one of these names
    /// (`LAUNCHER_SESSION_NAMES`); Lambda uses the function name.
    pub launcher_session_names: Vec<String>,
}

/// Why a governed call is a bypass. The first matching rule wins, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    NonLauncherPrincipal,
    LauncherSessionMismatch,
    MissingContro1RequestId,
    Contro1RequestIdMismatch,
}

impl Rule {
    pub const ALL: [Rule; 4] = [
        Rule::NonLauncherPrincipal,
        Rule::LauncherSessionMismatch,
        Rule::MissingContro1RequestId,
        Rule::Contro1RequestIdMismatch,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::NonLauncherPrincipal => "non-launcher-principal",
            Rule::LauncherSessionMismatch => "launcher-session-mismatch",
            Rule::MissingContro1RequestId => "missing-contro1-request-id",
            Rule::Contro1RequestIdMismatch => "contro1-request-id-mismatch",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The severity table of issue 2.
    pub fn of(op: GovernedOp, outcome: Outcome) -> Severity {
        match (outcome, op) {
            (Outcome::Succeeded, GovernedOp::CreateMicrovmShellAuthToken) => Severity::Critical,
            (Outcome::Succeeded, GovernedOp::RunMicrovm | GovernedOp::CreateMicrovmAuthToken) => {
                Severity::High
            }
            (Outcome::Succeeded, _) => Severity::Medium,
            (Outcome::Failed, GovernedOp::CreateMicrovmShellAuthToken) => Severity::Medium,
            (Outcome::Failed, _) => Severity::Low,
        }
    }
}

/// `failed` when the record carries an `errorCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Succeeded,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
        }
    }
}

/// A bypass finding: one per governed event that is not managed. Serialises
/// to the `detector scan` jsonl line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Always `aws.microvm.bypass.detected`.
    pub event: Event,
    pub severity: Severity,
    pub rule: Rule,
    pub event_id: Option<String>,
    /// Normalised (date/version suffix stripped).
    pub event_name: String,
    pub event_time: Option<String>,
    pub outcome: Outcome,
    /// `userIdentity.arn`.
    pub principal_arn: Option<String>,
    /// `recipientAccountId`, else `userIdentity.accountId`.
    pub account_id: Option<String>,
    pub region: Option<String>,
    pub microvm_id: Option<String>,
    /// From a valid `runHookPayload` only (a bypass's `clientToken` proves nothing).
    pub contro1_request_id: Option<String>,
    /// The file, object or event the record came from.
    pub source: String,
    /// CloudTrail `requestID` (the `x-amzn-RequestId` of the call).
    pub aws_request_id: Option<String>,
    pub user_identity_type: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub error_code: Option<String>,
    pub image_arn: Option<String>,
}

/// A governed call made by the launcher, consistently. The detector checks
/// it against the ledger by `request_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GovernedCall {
    pub op: GovernedOp,
    pub event_id: Option<String>,
    /// CloudTrail `requestID`; the launcher's ledger stores the same id.
    pub request_id: Option<String>,
    pub microvm_id: Option<String>,
    /// From the payload, else from `clientToken`.
    pub contro1_request_id: Option<String>,
    pub principal_arn: Option<String>,
    pub event_time: Option<String>,
    pub outcome: Outcome,
    pub source: String,
}

/// CloudTrail operations that can stop or narrow what the detector sees.
pub const TRAIL_CHANGE_EVENTS: [&str; 6] = [
    "StopLogging",
    "DeleteTrail",
    "UpdateTrail",
    "PutEventSelectors",
    "PutInsightSelectors",
    "DeleteEventDataStore",
];

/// A change to CloudTrail itself, by anyone (`aws.microvm.detection.degraded`
/// material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrailChange {
    pub event_id: Option<String>,
    pub event_name: String,
    pub principal_arn: Option<String>,
    pub event_time: Option<String>,
    /// `requestParameters.name` (a trail name or ARN).
    pub trail_name: Option<String>,
    pub outcome: Outcome,
    pub region: Option<String>,
    pub source: String,
}

/// What one record is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classification {
    NotGoverned,
    Managed(GovernedCall),
    Bypass(Finding),
    TrailChange(TrailChange),
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
    TrailChange,
    Other,
}

/// Kind of a record from its `eventSource` and `eventName`.
pub fn kind_of(record: &Record<'_>) -> Kind {
    let (Some(source), Some(name)) = (record.event_source.as_str(), record.event_name.as_str())
    else {
        return Kind::Other;
    };
    if is_microvm_event_source(source) {
        if let Some(op) = GovernedOp::from_event_name(name) {
            return Kind::Governed(op);
        }
    } else if source == "cloudtrail.amazonaws.com"
        && TRAIL_CHANGE_EVENTS.contains(&normalise_event_name(name))
    {
        return Kind::TrailChange;
    }
    Kind::Other
}

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_string)
}

impl Classifier {
    pub fn new(cfg: ClassifierConfig) -> Classifier {
        Classifier { cfg }
    }

    pub fn config(&self) -> &ClassifierConfig {
        &self.cfg
    }

    /// Classify one record. Fields of the wrong type read as absent here;
    /// callers that want them reported run [`Record::check_types`] first (the
    /// streaming scanner does).
    pub fn classify(&self, r: &Record<'_>, source: &str) -> Classification {
        let op = match kind_of(r) {
            Kind::Other => return Classification::NotGoverned,
            Kind::TrailChange => return Classification::TrailChange(trail_change(r, source)),
            Kind::Governed(op) => op,
        };
        let ui = r.user_identity.get();
        let principal_arn = ui.and_then(|u| u.arn.as_str());
        let issuer_arn = ui
            .and_then(|u| u.session_context.get())
            .and_then(|c| c.session_issuer.get())
            .and_then(|i| i.arn.as_str());
        let assumed = principal_arn.and_then(|a| RoleRef::from_assumed_role_arn(a).ok());
        let role = match issuer_arn {
            Some(issuer) => RoleRef::from_role_arn(issuer).ok(),
            None => assumed.as_ref().map(|(role, _)| role.clone()),
        };
        // The last segment of the assumed-role ARN.
        let session = assumed
            .as_ref()
            .and_then(|(_, s)| s.rsplit('/').next())
            .filter(|s| !s.is_empty());
        let is_launcher = role
            .as_ref()
            .is_some_and(|role| self.cfg.launcher_roles.iter().any(|l| l.matches(role)));

        let params = r.request_parameters.get();
        let payload_id = match (op, params) {
            (GovernedOp::RunMicrovm, Some(p)) => p.run_hook_payload.contro1_request_id(),
            _ => PayloadId::NotVisible,
        };
        let client_token = params.and_then(|p| p.client_token.visible());

        let rule = if !is_launcher {
            Some(Rule::NonLauncherPrincipal)
        } else if !self.cfg.launcher_session_names.is_empty()
            && !session.is_some_and(|s| self.cfg.launcher_session_names.iter().any(|n| n == s))
        {
            Some(Rule::LauncherSessionMismatch)
        } else if op == GovernedOp::RunMicrovm && payload_id == PayloadId::Invalid {
            Some(Rule::MissingContro1RequestId)
        } else if op == GovernedOp::RunMicrovm
            && matches!((&payload_id, client_token), (PayloadId::Id(id), Some(t)) if id != t)
        {
            Some(Rule::Contro1RequestIdMismatch)
        } else {
            None
        };

        let outcome = if r.error_code.as_str().is_some() {
            Outcome::Failed
        } else {
            Outcome::Succeeded
        };
        let microvm_id = params
            .and_then(|p| p.microvm_identifier.visible())
            .or_else(|| {
                r.response_elements
                    .get()
                    .and_then(|e| e.microvm_id.visible())
            });
        let payload_id = match payload_id {
            PayloadId::Id(id) => Some(id),
            _ => None,
        };

        let Some(rule) = rule else {
            return Classification::Managed(GovernedCall {
                op,
                event_id: owned(r.event_id.as_str()),
                request_id: owned(r.request_id.as_str()),
                microvm_id: owned(microvm_id),
                contro1_request_id: payload_id.or_else(|| owned(client_token)),
                principal_arn: owned(principal_arn),
                event_time: owned(r.event_time.as_str()),
                outcome,
                source: source.to_string(),
            });
        };
        let image_arn = params
            .and_then(|p| {
                p.image_identifier
                    .visible()
                    .or(p.microvm_image_arn.visible())
            })
            .or_else(|| {
                r.response_elements
                    .get()
                    .and_then(|e| e.image_arn.visible().or(e.microvm_image_arn.visible()))
            });
        Classification::Bypass(Finding {
            event: Event::BypassDetected,
            severity: Severity::of(op, outcome),
            rule,
            event_id: owned(r.event_id.as_str()),
            event_name: op.as_str().to_string(),
            event_time: owned(r.event_time.as_str()),
            outcome,
            principal_arn: owned(principal_arn),
            account_id: owned(
                r.recipient_account_id
                    .as_str()
                    .or_else(|| ui.and_then(|u| u.account_id.as_str())),
            ),
            region: owned(r.aws_region.as_str()),
            microvm_id: owned(microvm_id),
            contro1_request_id: payload_id,
            source: source.to_string(),
            aws_request_id: owned(r.request_id.as_str()),
            user_identity_type: owned(ui.and_then(|u| u.identity_type.as_str())),
            source_ip: owned(r.source_ip_address.as_str()),
            user_agent: owned(r.user_agent.as_str()),
            error_code: owned(r.error_code.as_str()),
            image_arn: owned(image_arn),
        })
    }

    /// Classify one record given as a parsed JSON value (an EventBridge
    /// `detail`). Fails on a field of the wrong type the classifier reads.
    pub fn classify_value(
        &self,
        record: &serde_json::Value,
        source: &str,
    ) -> Result<Classification, crate::RecordError> {
        let r = Record::from_value(record).map_err(crate::RecordError::Json)?;
        let deep = kind_of(&r) != Kind::Other;
        r.check_types(deep).map_err(crate::RecordError::FieldType)?;
        if r.is_insight() {
            return Ok(Classification::NotGoverned);
        }
        Ok(self.classify(&r, source))
    }
}

fn trail_change(r: &Record<'_>, source: &str) -> TrailChange {
    TrailChange {
        event_id: owned(r.event_id.as_str()),
        event_name: normalise_event_name(r.event_name.as_str().unwrap_or_default()).to_string(),
        principal_arn: owned(r.user_identity.get().and_then(|u| u.arn.as_str())),
        event_time: owned(r.event_time.as_str()),
        trail_name: owned(r.request_parameters.get().and_then(|p| p.name.as_str())),
        outcome: if r.error_code.as_str().is_some() {
            Outcome::Failed
        } else {
            Outcome::Succeeded
        },
        region: owned(r.aws_region.as_str()),
        source: source.to_string(),
    }
}
