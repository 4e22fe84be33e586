//! One evidence schema for every finding the detector raises — a governed
//! call that bypassed the launcher, a change to the control plane, a MicroVM
//! the ledger does not know, a blind spot in detection — so that every output
//! (JSON lines, the table, SNS, Contro1, and the encodings built on them)
//! reads the same fields. Field by field in `detector/README.md`.

use serde::Serialize;
use shared_core::{Event, GovernedOp};

/// Every rule the detector has, across every finding kind. The id is what
/// outputs carry in `rule`; [`Rule::event`] is the finding event it raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    // aws.microvm.bypass.detected: governed calls (the classifier, in order)
    AccountOutsideOrganization,
    NonLauncherPrincipal,
    LauncherSessionMismatch,
    MissingContro1RequestId,
    Contro1RequestIdMismatch,
    // aws.microvm.bypass.detected: launcher-role calls checked against the ledger
    LauncherCredentialsOutsideLauncher,
    LauncherCallWithoutRequestId,
    // aws.microvm.governance.tampered: CloudTrail management events
    LauncherFunctionChanged,
    DetectorFunctionChanged,
    LauncherRolePassedToFunction,
    LauncherRoleAssumed,
    LauncherRoleChanged,
    LedgerWrittenOutsideLauncher,
    ProtectedResourceChanged,
    TrailStopped,
    TrailDeleted,
    TrailUpdated,
    TrailSelectorsChanged,
    // aws.microvm.governance.tampered: the administrator's paths (T11–T19)
    GovernanceStackChanged,
    ExemptRoleChanged,
    BreakGlassSession,
    ExecutionRoleChanged,
    PreventionPolicyChanged,
    Contro1SecretWritten,
    AlertTopicChanged,
    DetectorLogGroupChanged,
    TrailObjectWritten,
    AccountLeftOrganization,
    // aws.microvm.governance.tampered: the sweep's integrity check
    FunctionIntegrityDrift,
    // aws.microvm.governance.tampered: the Lambda's versioned object reads
    TrailObjectOverwritten,
    TrailObjectDeleted,
    // aws.microvm.unmanaged.detected: the sweep
    MicrovmNotInLedger,
    // aws.microvm.detection.degraded
    NoTrailLogsMicrovmDataEvents,
    TrailHealthUnavailable,
    NoLogObjectsRead,
    IntegrityCheckUnavailable,
    RemediationHalted,
    SweepTargetUnavailable,
    LedgerUnreachable,
}

impl Rule {
    /// Every rule, in declaration order.
    pub const ALL: [Rule; 39] = [
        Rule::AccountOutsideOrganization,
        Rule::NonLauncherPrincipal,
        Rule::LauncherSessionMismatch,
        Rule::MissingContro1RequestId,
        Rule::Contro1RequestIdMismatch,
        Rule::LauncherCredentialsOutsideLauncher,
        Rule::LauncherCallWithoutRequestId,
        Rule::LauncherFunctionChanged,
        Rule::DetectorFunctionChanged,
        Rule::LauncherRolePassedToFunction,
        Rule::LauncherRoleAssumed,
        Rule::LauncherRoleChanged,
        Rule::LedgerWrittenOutsideLauncher,
        Rule::ProtectedResourceChanged,
        Rule::TrailStopped,
        Rule::TrailDeleted,
        Rule::TrailUpdated,
        Rule::TrailSelectorsChanged,
        Rule::GovernanceStackChanged,
        Rule::ExemptRoleChanged,
        Rule::BreakGlassSession,
        Rule::ExecutionRoleChanged,
        Rule::PreventionPolicyChanged,
        Rule::Contro1SecretWritten,
        Rule::AlertTopicChanged,
        Rule::DetectorLogGroupChanged,
        Rule::TrailObjectWritten,
        Rule::AccountLeftOrganization,
        Rule::FunctionIntegrityDrift,
        Rule::TrailObjectOverwritten,
        Rule::TrailObjectDeleted,
        Rule::MicrovmNotInLedger,
        Rule::NoTrailLogsMicrovmDataEvents,
        Rule::TrailHealthUnavailable,
        Rule::NoLogObjectsRead,
        Rule::IntegrityCheckUnavailable,
        Rule::RemediationHalted,
        Rule::SweepTargetUnavailable,
        Rule::LedgerUnreachable,
    ];

    /// The rules the CloudTrail classifier can raise (what `detector scan`
    /// can report), in the order the summary lists them.
    pub const FROM_RECORDS: [Rule; 27] = [
        Rule::AccountOutsideOrganization,
        Rule::NonLauncherPrincipal,
        Rule::LauncherSessionMismatch,
        Rule::MissingContro1RequestId,
        Rule::Contro1RequestIdMismatch,
        Rule::LauncherCallWithoutRequestId,
        Rule::LauncherFunctionChanged,
        Rule::DetectorFunctionChanged,
        Rule::LauncherRolePassedToFunction,
        Rule::LauncherRoleAssumed,
        Rule::LauncherRoleChanged,
        Rule::LedgerWrittenOutsideLauncher,
        Rule::ProtectedResourceChanged,
        Rule::TrailStopped,
        Rule::TrailDeleted,
        Rule::TrailUpdated,
        Rule::TrailSelectorsChanged,
        Rule::GovernanceStackChanged,
        Rule::ExemptRoleChanged,
        Rule::BreakGlassSession,
        Rule::ExecutionRoleChanged,
        Rule::PreventionPolicyChanged,
        Rule::Contro1SecretWritten,
        Rule::AlertTopicChanged,
        Rule::DetectorLogGroupChanged,
        Rule::TrailObjectWritten,
        Rule::AccountLeftOrganization,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::AccountOutsideOrganization => "account-outside-organization",
            Rule::NonLauncherPrincipal => "non-launcher-principal",
            Rule::LauncherSessionMismatch => "launcher-session-mismatch",
            Rule::MissingContro1RequestId => "missing-contro1-request-id",
            Rule::Contro1RequestIdMismatch => "contro1-request-id-mismatch",
            Rule::LauncherCredentialsOutsideLauncher => "launcher-credentials-outside-launcher",
            Rule::LauncherCallWithoutRequestId => "launcher-call-without-request-id",
            Rule::LauncherFunctionChanged => "launcher-function-changed",
            Rule::DetectorFunctionChanged => "detector-function-changed",
            Rule::LauncherRolePassedToFunction => "launcher-role-passed-to-function",
            Rule::LauncherRoleAssumed => "launcher-role-assumed",
            Rule::LauncherRoleChanged => "launcher-role-changed",
            Rule::LedgerWrittenOutsideLauncher => "ledger-written-outside-launcher",
            Rule::ProtectedResourceChanged => "protected-resource-changed",
            Rule::TrailStopped => "trail-stopped",
            Rule::TrailDeleted => "trail-deleted",
            Rule::TrailUpdated => "trail-updated",
            Rule::TrailSelectorsChanged => "trail-selectors-changed",
            Rule::GovernanceStackChanged => "governance-stack-changed",
            Rule::ExemptRoleChanged => "exempt-role-changed",
            Rule::BreakGlassSession => "break-glass-session",
            Rule::ExecutionRoleChanged => "execution-role-changed",
            Rule::PreventionPolicyChanged => "prevention-policy-changed",
            Rule::Contro1SecretWritten => "contro1-secret-written",
            Rule::AlertTopicChanged => "alert-topic-changed",
            Rule::DetectorLogGroupChanged => "detector-log-group-changed",
            Rule::TrailObjectWritten => "trail-object-written",
            Rule::AccountLeftOrganization => "account-left-organization",
            Rule::FunctionIntegrityDrift => "function-integrity-drift",
            Rule::TrailObjectOverwritten => "trail-object-overwritten",
            Rule::TrailObjectDeleted => "trail-object-deleted",
            Rule::MicrovmNotInLedger => "microvm-not-in-ledger",
            Rule::NoTrailLogsMicrovmDataEvents => "no-trail-logs-microvm-data-events",
            Rule::TrailHealthUnavailable => "trail-health-unavailable",
            Rule::NoLogObjectsRead => "no-log-objects-read",
            Rule::IntegrityCheckUnavailable => "integrity-check-unavailable",
            Rule::RemediationHalted => "remediation-halted",
            Rule::SweepTargetUnavailable => "sweep-target-unavailable",
            Rule::LedgerUnreachable => "ledger-unreachable",
        }
    }

    /// The finding event this rule raises.
    pub fn event(self) -> Event {
        match self {
            Rule::AccountOutsideOrganization
            | Rule::NonLauncherPrincipal
            | Rule::LauncherSessionMismatch
            | Rule::MissingContro1RequestId
            | Rule::Contro1RequestIdMismatch
            | Rule::LauncherCredentialsOutsideLauncher
            | Rule::LauncherCallWithoutRequestId => Event::BypassDetected,
            Rule::LauncherFunctionChanged
            | Rule::DetectorFunctionChanged
            | Rule::LauncherRolePassedToFunction
            | Rule::LauncherRoleAssumed
            | Rule::LauncherRoleChanged
            | Rule::LedgerWrittenOutsideLauncher
            | Rule::ProtectedResourceChanged
            | Rule::TrailStopped
            | Rule::TrailDeleted
            | Rule::TrailUpdated
            | Rule::TrailSelectorsChanged
            | Rule::GovernanceStackChanged
            | Rule::ExemptRoleChanged
            | Rule::BreakGlassSession
            | Rule::ExecutionRoleChanged
            | Rule::PreventionPolicyChanged
            | Rule::Contro1SecretWritten
            | Rule::AlertTopicChanged
            | Rule::DetectorLogGroupChanged
            | Rule::TrailObjectWritten
            | Rule::AccountLeftOrganization
            | Rule::FunctionIntegrityDrift
            | Rule::TrailObjectOverwritten
            | Rule::TrailObjectDeleted => Event::GovernanceTampered,
            Rule::MicrovmNotInLedger => Event::UnmanagedDetected,
            Rule::NoTrailLogsMicrovmDataEvents
            | Rule::TrailHealthUnavailable
            | Rule::NoLogObjectsRead
            | Rule::IntegrityCheckUnavailable
            | Rule::RemediationHalted
            | Rule::SweepTargetUnavailable
            | Rule::LedgerUnreachable => Event::DetectionDegraded,
        }
    }

    /// What the reader of the alert should do, in one or two sentences.
    pub fn recommended_action(self) -> &'static str {
        match self {
            Rule::AccountOutsideOrganization => {
                "A MicroVM call was recorded for an account outside the organization's list: \
                 find out whose account it is and why its calls reach this trail; add it to \
                 ORGANIZATION_ACCOUNTS only if it belongs to the organization."
            }
            Rule::NonLauncherPrincipal => {
                "Find out who holds these credentials and why they can call the MicroVMs API \
                 directly; if not expected, terminate the MicroVM and revoke the credentials. \
                 Only the launcher may make governed calls."
            }
            Rule::LauncherSessionMismatch => {
                "The launcher's role was used from a session that is not the launcher function: \
                 review who can assume the launcher role (its trust policy) and revoke the session."
            }
            Rule::MissingContro1RequestId | Rule::Contro1RequestIdMismatch => {
                "The launcher's role started a MicroVM without a consistent Contro1 request id: \
                 the launcher's code or credentials may be compromised. Terminate the MicroVM and \
                 check the launcher function's code and configuration."
            }
            Rule::LauncherCredentialsOutsideLauncher => {
                "The launcher's credentials were used outside the launcher: rotate the launcher \
                 role's sessions, review who can assume it, and terminate the MicroVM if it is \
                 not expected."
            }
            Rule::LauncherCallWithoutRequestId => {
                "A call with the launcher's role has no CloudTrail requestID, so it cannot be \
                 checked against the ledger: treat it as made outside the launcher until shown \
                 otherwise."
            }
            Rule::LauncherFunctionChanged | Rule::DetectorFunctionChanged => {
                "Only the deployment role may change the governance functions. Confirm the \
                 change with whoever owns the deployment; if it is not theirs, redeploy the stack \
                 and revoke the principal's Lambda permissions."
            }
            Rule::LauncherRolePassedToFunction => {
                "Code other than the launcher can now run as the launcher role: delete or fix \
                 that function at once and deny iam:PassRole on the launcher role."
            }
            Rule::LauncherRoleAssumed => {
                "Someone other than the Lambda service assumed the launcher role: restore its \
                 trust policy to lambda.amazonaws.com only and revoke the role's active sessions."
            }
            Rule::LauncherRoleChanged => {
                "The launcher role's trust or permissions changed outside the deployment: \
                 compare them with the stack and redeploy it."
            }
            Rule::LedgerWrittenOutsideLauncher => {
                "The ledger may hold forged items that make a bypass look managed: find the \
                 items written by this principal, delete them, and restrict writes to the \
                 launcher role (table resource policy)."
            }
            Rule::ProtectedResourceChanged => {
                "A resource the detection pipeline depends on changed outside the deployment: \
                 check that the trail still delivers, the notification and rules still reach the \
                 detector, and redeploy the stack if not."
            }
            Rule::TrailStopped | Rule::TrailDeleted | Rule::TrailUpdated => {
                "Check that a logging trail still delivers AWS::Lambda::MicrovmImage data events to \
                 the detector's bucket; until it does, MicroVM calls made outside the launcher are \
                 not seen in CloudTrail (the sweep still runs)."
            }
            Rule::TrailSelectorsChanged => {
                "Restore an advanced event selector with eventCategory = Data and resources.type = \
                 AWS::Lambda::MicrovmImage on this trail."
            }
            Rule::GovernanceStackChanged => {
                "The governance stack was operated on by someone other than the pipeline: find \
                 out from the principal named here what they changed (the stack's events and \
                 template), revert it through the pipeline, and deny stack operations on it to \
                 all but the pipeline principal."
            }
            Rule::ExemptRoleChanged => {
                "A role every deny exempts changed outside the deployment: compare its trust and \
                 policies with the stack, revert, and revoke the sessions it issued since."
            }
            Rule::BreakGlassSession => {
                "The break-glass role is in use: confirm a declared emergency with its owner; if \
                 none, revoke the role's sessions and review every call the session made."
            }
            Rule::ExecutionRoleChanged => {
                "The role approved MicroVMs run with changed outside the deployment: compare it \
                 with the stack and revert; MicroVMs started since ran with the new permissions."
            }
            Rule::PreventionPolicyChanged => {
                "The deny policy, permissions boundary or SCP that keeps the controls in place \
                 changed or was detached: restore it from the stack or the organization's \
                 pipeline, then review what was done while it was off."
            }
            Rule::Contro1SecretWritten => {
                "A Contro1 secret was written outside the deployment: approvals may now come from \
                 another tenant. Restore the secret's value and policy, rotate the key with \
                 Contro1, and review approvals since the change."
            }
            Rule::AlertTopicChanged => {
                "The alert topic or its subscriptions changed: check that every subscription \
                 still delivers (no filter policy, confirmed endpoints) and remove any foreign \
                 subscriber."
            }
            Rule::DetectorLogGroupChanged => {
                "The detector's log group was written or reconfigured by someone else: its lines \
                 and the alarms built on them (the heartbeat) cannot be trusted until the filter \
                 or writer is removed."
            }
            Rule::TrailObjectWritten => {
                "A CloudTrail log object was written or removed by someone other than CloudTrail: \
                 validate the trail's log file digests for that period and read the object's \
                 earlier versions."
            }
            Rule::AccountLeftOrganization => {
                "An account left (or was removed from) the organization: its SCPs and \
                 organization trail no longer apply. Find out who asked, and sweep the account \
                 directly until it is back."
            }
            Rule::FunctionIntegrityDrift => {
                "The deployed function no longer matches what the deployment recorded: redeploy \
                 the stack and find out who changed it (CloudTrail, the function's change events)."
            }
            Rule::TrailObjectOverwritten => {
                "CloudTrail writes each log file key once: another object was written over this \
                 one. The detector read the version CloudTrail wrote; find who wrote the newer \
                 version (S3 data events or server access logs), restore the bucket policy that \
                 lets only CloudTrail put objects, and compare the versions."
            }
            Rule::TrailObjectDeleted => {
                "CloudTrail never deletes its log files: find who deleted this one (S3 data \
                 events or server access logs), restore the bucket policy that lets only the \
                 deployer delete objects, and check for a lifecycle rule that expires log files. \
                 When the version named is gone for good, its records were not read: the \
                 notification is kept in the dead-letter queue; look for a copy (replication, \
                 the organization trail)."
            }
            Rule::MicrovmNotInLedger => {
                "Search CloudTrail for the RunMicrovm of this MicroVM to find who started it; \
                 terminate it if it is not expected."
            }
            Rule::NoTrailLogsMicrovmDataEvents => {
                "Make sure a logging trail has an advanced event selector with eventCategory = \
                 Data and resources.type = AWS::Lambda::MicrovmImage, that it delivers to the \
                 configured bucket, and that its last delivery succeeded."
            }
            Rule::TrailHealthUnavailable => {
                "The detector cannot read the CloudTrail configuration: check its IAM permissions \
                 (cloudtrail:DescribeTrails, GetTrailStatus, GetEventSelectors)."
            }
            Rule::NoLogObjectsRead => {
                "No CloudTrail log file reached the detector for longer than the allowed silence: \
                 check the trail, the bucket notification, the queue and the event source mapping."
            }
            Rule::IntegrityCheckUnavailable => {
                "The detector cannot read the governance functions or their recorded baseline: \
                 check its lambda:Get*/List* and ssm:GetParameter permissions."
            }
            Rule::SweepTargetUnavailable => {
                "An account or region could not be swept, so MicroVMs there are not checked: \
                 check that the sweep role exists in that account, trusts the detector and may \
                 list MicroVMs and read the ledger, and that the region is enabled."
            }
            Rule::LedgerUnreachable => {
                "Launcher-role calls were recorded in an account whose ledger the detector cannot \
                 read, so they cannot be told apart from the launcher's credentials used elsewhere: \
                 set SWEEP_ROLE_NAME (the read-only role in every account) or, if that account \
                 should not be in this trail, find out why it is."
            }
            Rule::RemediationHalted => {
                "Remediation stopped because it would have acted on more MicroVMs than allowed: \
                 check LEDGER_TABLE and the ledger before acting by hand; nothing was suspended or \
                 terminated."
            }
        }
    }
}

impl Rule {
    /// The severities a finding of this rule carries (docs/rules.md lists
    /// the same; a test compares them). A tamper rule's failed attempt
    /// (an `errorCode` in the record) is [`Severity::Low`] besides.
    pub fn severities(self) -> &'static [Severity] {
        use Severity::{Critical, High, Low, Medium};
        match self {
            Rule::AccountOutsideOrganization
            | Rule::NonLauncherPrincipal
            | Rule::LauncherSessionMismatch
            | Rule::MissingContro1RequestId
            | Rule::Contro1RequestIdMismatch
            | Rule::LauncherCredentialsOutsideLauncher
            | Rule::LauncherCallWithoutRequestId => &[Critical, High, Medium, Low],
            Rule::LauncherFunctionChanged
            | Rule::LauncherRolePassedToFunction
            | Rule::LauncherRoleAssumed
            | Rule::LauncherRoleChanged
            | Rule::LedgerWrittenOutsideLauncher
            | Rule::TrailStopped
            | Rule::TrailDeleted
            | Rule::ExemptRoleChanged
            | Rule::ExecutionRoleChanged
            | Rule::PreventionPolicyChanged
            | Rule::Contro1SecretWritten
            | Rule::TrailObjectWritten
            | Rule::AccountLeftOrganization => &[Critical],
            Rule::TrailSelectorsChanged
            | Rule::FunctionIntegrityDrift
            | Rule::GovernanceStackChanged
            | Rule::AlertTopicChanged => &[Critical, High],
            Rule::TrailUpdated => &[High, Medium],
            Rule::DetectorFunctionChanged
            | Rule::ProtectedResourceChanged
            | Rule::BreakGlassSession
            | Rule::DetectorLogGroupChanged
            | Rule::TrailObjectOverwritten
            | Rule::TrailObjectDeleted
            | Rule::MicrovmNotInLedger
            | Rule::NoTrailLogsMicrovmDataEvents
            | Rule::TrailHealthUnavailable
            | Rule::NoLogObjectsRead
            | Rule::IntegrityCheckUnavailable
            | Rule::RemediationHalted
            | Rule::SweepTargetUnavailable
            | Rule::LedgerUnreachable => &[High],
        }
    }

    /// Is `severity` one this rule can raise (its own, or a tamper rule's
    /// failed attempt)?
    pub fn raises(self, severity: Severity) -> bool {
        self.severities().contains(&severity)
            || (severity == Severity::Low
                && self.event() == Event::GovernanceTampered
                && Rule::FROM_RECORDS.contains(&self))
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Severity of a governed call outside the launcher: what it can do
    /// (a shell token is the worst), and whether it succeeded.
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

    /// A failed attempt is still reported, at `low` whatever the call would
    /// have done had it succeeded.
    pub fn attempt(self, outcome: Outcome) -> Severity {
        match outcome {
            Outcome::Succeeded => self,
            Outcome::Failed => Severity::Low,
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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

/// One finding, with all the evidence the detector has for it. Every field
/// is always present in JSON (null when unknown), so every line of every
/// output has the same columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The taxonomy event: bypass, tampered, unmanaged or degraded.
    pub event: Event,
    pub severity: Severity,
    pub rule: Rule,
    /// One line: what happened (plain text; sanitise before display).
    pub summary: String,
    pub recommended_action: String,
    /// Links findings about the same incident: a bypass RunMicrovm and the
    /// unmanaged MicroVM it started share `microvm:<account>:<region>:<id>`.
    pub incident_key: String,

    // When and what
    pub event_time: Option<String>,
    /// CloudTrail `eventID`.
    pub event_id: Option<String>,
    /// Normalised (date/version suffix stripped).
    pub event_name: Option<String>,
    pub event_source: Option<String>,
    /// CloudTrail `requestID` (the call's `x-amzn-RequestId`).
    pub aws_request_id: Option<String>,
    pub outcome: Option<Outcome>,
    pub error_code: Option<String>,

    // Where
    /// `recipientAccountId`, else the principal's account.
    pub account_id: Option<String>,
    pub region: Option<String>,

    // Who
    /// `userIdentity.arn`.
    pub principal_arn: Option<String>,
    /// `userIdentity.type` (IAMUser, AssumedRole, Root, AWSService, IdentityCenterUser, ...).
    pub identity_type: Option<String>,
    pub access_key_id: Option<String>,
    /// The role behind an assumed-role session (`sessionContext.sessionIssuer.arn`).
    pub session_issuer_arn: Option<String>,
    /// The Identity Center user a session acts for (`onBehalfOf.userId`, with
    /// the identity store when given).
    pub on_behalf_of: Option<String>,
    /// The AWS service that made the call for the principal (`invokedBy`).
    pub invoked_by: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,

    // The MicroVM
    pub microvm_id: Option<String>,
    /// As listed by ListMicrovms, or as the call's response gave it.
    pub microvm_state: Option<String>,
    pub image_arn: Option<String>,
    pub image_version: Option<String>,
    pub execution_role_arn: Option<String>,
    /// Ingress then egress network connector ARNs of a RunMicrovm.
    pub network_connectors: Vec<String>,
    /// The Contro1 request id the call carried (a valid `runHookPayload`);
    /// a bypass's `clientToken` proves nothing and is not shown here.
    pub contro1_request_id_claimed: Option<String>,
    /// The Contro1 request id the launcher's ledger holds for this call or
    /// MicroVM (the Lambda's ledger checks only).
    pub contro1_request_id_ledger: Option<String>,

    // What was changed (tampered) or what is wrong (degraded)
    /// The function, role, trail, table, bucket... that was changed.
    pub resource: Option<String>,
    /// Why this is a finding beyond the rule's name (e.g. which property
    /// drifted, whether the new selectors still cover MicroVM data events).
    pub reason: Option<String>,
    /// What the detector did about it (remediation), when it did anything.
    pub remediation: Option<String>,

    /// The file, object or event the evidence came from.
    pub source: String,

    /// The CloudTrail record itself, credentials redacted and size bounded
    /// ([`crate::evidence::record_evidence`]), for the encodings that carry
    /// it as evidence (OCSF, ASFF). Not part of the JSON Lines schema.
    #[serde(skip)]
    pub record: Option<serde_json::Value>,
}

impl Finding {
    /// A finding with no evidence yet: every field empty but the rule's.
    pub fn new(rule: Rule, severity: Severity, summary: String, source: String) -> Finding {
        debug_assert!(
            rule.raises(severity),
            "{rule} raised at {severity}, which docs/rules.md does not give it"
        );
        Finding {
            event: rule.event(),
            severity,
            rule,
            summary,
            recommended_action: rule.recommended_action().to_string(),
            incident_key: String::new(),
            event_time: None,
            event_id: None,
            event_name: None,
            event_source: None,
            aws_request_id: None,
            outcome: None,
            error_code: None,
            account_id: None,
            region: None,
            principal_arn: None,
            identity_type: None,
            access_key_id: None,
            session_issuer_arn: None,
            on_behalf_of: None,
            invoked_by: None,
            source_ip: None,
            user_agent: None,
            microvm_id: None,
            microvm_state: None,
            image_arn: None,
            image_version: None,
            execution_role_arn: None,
            network_connectors: Vec::new(),
            contro1_request_id_claimed: None,
            contro1_request_id_ledger: None,
            resource: None,
            reason: None,
            remediation: None,
            source,
            record: None,
        }
    }

    /// The finding with every text field cut to at most `max` bytes, for
    /// outputs that must stay bounded whatever a record carried (log lines,
    /// SNS and Contro1 bodies). JSON escaping handles control characters.
    pub fn bounded(&self, max: usize) -> Finding {
        let clip = |s: &String| crate::text::clip(s, max);
        let opt = |s: &Option<String>| s.as_ref().map(clip);
        Finding {
            summary: clip(&self.summary),
            recommended_action: clip(&self.recommended_action),
            incident_key: clip(&self.incident_key),
            event_time: opt(&self.event_time),
            event_id: opt(&self.event_id),
            event_name: opt(&self.event_name),
            event_source: opt(&self.event_source),
            aws_request_id: opt(&self.aws_request_id),
            error_code: opt(&self.error_code),
            account_id: opt(&self.account_id),
            region: opt(&self.region),
            principal_arn: opt(&self.principal_arn),
            identity_type: opt(&self.identity_type),
            access_key_id: opt(&self.access_key_id),
            session_issuer_arn: opt(&self.session_issuer_arn),
            on_behalf_of: opt(&self.on_behalf_of),
            invoked_by: opt(&self.invoked_by),
            source_ip: opt(&self.source_ip),
            user_agent: opt(&self.user_agent),
            microvm_id: opt(&self.microvm_id),
            microvm_state: opt(&self.microvm_state),
            image_arn: opt(&self.image_arn),
            image_version: opt(&self.image_version),
            execution_role_arn: opt(&self.execution_role_arn),
            network_connectors: self.network_connectors.iter().take(64).map(clip).collect(),
            contro1_request_id_claimed: opt(&self.contro1_request_id_claimed),
            contro1_request_id_ledger: opt(&self.contro1_request_id_ledger),
            resource: opt(&self.resource),
            reason: opt(&self.reason),
            remediation: opt(&self.remediation),
            source: clip(&self.source),
            ..self.clone()
        }
    }

    /// A stable identifier of this finding: the rule and the CloudTrail
    /// event (or, for findings of a check, the incident key). The same
    /// finding delivered twice has the same uid.
    pub fn uid(&self) -> String {
        format!(
            "{}/{}",
            self.rule.as_str(),
            self.event_id
                .as_deref()
                .map_or_else(|| self.incident_key.clone(), |id| format!("event:{id}"))
        )
    }

    /// Fill `incident_key` from what the finding names, most specific first:
    /// the MicroVM, else the CloudTrail event, else the rule and resource.
    pub fn with_incident_key(mut self) -> Finding {
        self.incident_key = incident_key(&self);
        self
    }
}

/// `microvm:<account>:<region>:<id>`, `event:<eventID>`, or
/// `<rule>:<resource or source>`.
pub fn incident_key(f: &Finding) -> String {
    if let Some(vm) = &f.microvm_id {
        return format!(
            "microvm:{}:{}:{vm}",
            f.account_id.as_deref().unwrap_or("-"),
            f.region.as_deref().unwrap_or("-")
        );
    }
    if let Some(id) = &f.event_id {
        return format!("event:{id}");
    }
    format!(
        "{}:{}",
        f.rule.as_str(),
        f.resource.as_deref().unwrap_or(f.source.as_str())
    )
}
