//! The launcher's use cases over the ports: submit an action, act on a
//! verified Contro1 callback, show a request to the agent that made it.
//!
//! The order of effects is the product's promise:
//! * auto-approved: Contro1 audit record first (its id is the
//!   `contro1_request_id`), then the AWS call, then the ledger;
//! * approval needed: Contro1 request, then the pending item, then `202`;
//! * callback: `pending → executing` by a conditional write, then the AWS call
//!   with the **stored** input, then the ledger, then the result.
//!
//! Anything that cannot be done safely fails closed: no AWS call.

use crate::agents::{Agent, Caller};
use crate::approval::{Resolution, State, idempotency_key};
use crate::config::Config;
use crate::policy::{self, Decision, Target, Verdict};
use crate::ports::{
    ApprovalRequest, Approvals, ApprovalsError, AuditEvent, Clock, ExecResult, Finish, Ledger,
    LedgerError, MicrovmApi, MicrovmError, PendingRecord, PendingStore, PutOutcome, ReplyTo,
    RunCall, Secret, StoreError, Transition,
};
use crate::request::{Action, FieldError, Lifecycle};
use serde::Serialize;
use shared_core::{Event, GovernedOp, LedgerEntry};
use std::sync::Arc;

/// RunMicrovm's `runHookPayload` limit enforced in practice.
pub const MAX_RUN_HOOK_PAYLOAD_BYTES: usize = 4096;

/// The adapters, built once at cold start.
#[derive(Clone)]
pub struct PortSet {
    pub store: Arc<dyn PendingStore>,
    pub ledger: Arc<dyn Ledger>,
    pub microvms: Arc<dyn MicrovmApi>,
    pub approvals: Arc<dyn Approvals>,
    pub clock: Arc<dyn Clock>,
}

/// Why a use case did not complete. Each variant maps to one HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// 400: a field is malformed.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// 403: the body claims to be another agent.
    #[error("body agent_id `{claimed}` does not match the authenticated agent")]
    Spoofed { claimed: String },
    /// 404: no such request, or not the caller's.
    #[error("request `{request_id}` not found")]
    NotFound { request_id: String },
    /// 403: the caller is not a registered, enabled agent (GET /requests).
    #[error("caller is not a registered agent")]
    UnknownCaller,
    /// 503: Contro1 unavailable or refused: nothing was done.
    #[error(transparent)]
    Approvals(#[from] ApprovalsError),
    /// 503: the pending table is unavailable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// 503: the ledger could not be read (target lookup) or written.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// 502: AWS refused or failed the call.
    #[error(transparent)]
    Aws(#[from] MicrovmError),
    /// 500: the AWS call succeeded but could not be recorded in the ledger;
    /// any token is withheld.
    #[error(
        "{operation} succeeded (AWS request {aws_request_id:?}) but the ledger write failed: {source}"
    )]
    Unrecorded {
        operation: &'static str,
        aws_request_id: Option<String>,
        microvm_id: Option<String>,
        #[source]
        source: LedgerError,
    },
    /// 500: an internal limit was exceeded (e.g. the run hook payload).
    #[error("{0}")]
    Internal(String),
}

/// The answer to a submitted action.
#[derive(Debug)]
pub enum Submitted {
    /// 200: auto-approved and executed.
    Executed {
        request_id: String,
        decision: Decision,
        result: ExecResult,
        token: Option<Secret>,
    },
    /// 202: waiting for a human.
    Pending {
        request_id: String,
        decision: Decision,
        state: State,
    },
    /// 403: blocked by policy.
    Blocked {
        decision: Decision,
        audit_record_id: Option<String>,
    },
}

/// The answer to a verified callback (all 200).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CallbackOutcome {
    /// Approved: the stored action ran; `state` is executed or failed.
    Executed { state: State },
    /// Denied, expired or cancelled: recorded, no AWS call.
    Recorded { state: State },
    /// Not pending any more (a replay, or a concurrent delivery won).
    AlreadyProcessed { state: Option<State> },
}

/// What `GET /requests/{id}` shows its agent.
#[derive(Debug, Serialize)]
pub struct RequestView {
    pub request_id: String,
    pub state: State,
    pub operation: &'static str,
    pub microvm_id: Option<String>,
    pub decision: Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<ExecResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Present once: the first fetch after execution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// True when a token was issued and already handed out.
    pub token_already_returned: bool,
}

/// Which audit event names an action in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Requested,
    Approved,
    Denied,
    Executed,
}

/// The taxonomy event for an operation in a phase. Operations without their
/// own `approved`/`denied`/`issued` names use their `requested` name, with
/// the phase in the record's metadata.
pub fn event_for(op: GovernedOp, phase: Phase) -> Event {
    use GovernedOp::*;
    use Phase::*;
    match (op, phase) {
        (RunMicrovm, Requested) => Event::RunRequested,
        (RunMicrovm, Approved) => Event::RunApproved,
        (RunMicrovm, Denied) => Event::RunDenied,
        (RunMicrovm, Executed) => Event::RunCreated,
        (CreateMicrovmAuthToken, Executed) => Event::AuthTokenIssued,
        (CreateMicrovmAuthToken, _) => Event::AuthTokenRequested,
        (CreateMicrovmShellAuthToken, Requested) => Event::ShellTokenRequested,
        (CreateMicrovmShellAuthToken, Denied) => Event::ShellTokenDenied,
        (CreateMicrovmShellAuthToken, Approved | Executed) => Event::ShellTokenApproved,
        (SuspendMicrovm, _) => Event::SuspendRequested,
        (ResumeMicrovm, _) => Event::ResumeRequested,
        (TerminateMicrovm, _) => Event::TerminateRequested,
    }
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Requested => "requested",
        Phase::Approved => "approved",
        Phase::Denied => "denied",
        Phase::Executed => "executed",
    }
}

/// The launcher.
pub struct Service {
    config: Config,
    ports: PortSet,
    callback_url: String,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("policy_version", &self.config.policy.version)
            .field("callback_url", &self.callback_url)
            .finish_non_exhaustive()
    }
}

struct Executed {
    result: ExecResult,
    token: Option<Secret>,
}

impl Service {
    pub fn new(config: Config, ports: PortSet, callback_url: impl Into<String>) -> Service {
        Service {
            config,
            ports,
            callback_url: callback_url.into(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Classify an action and act on the decision.
    pub async fn submit(&self, caller: &Caller, action: Action) -> Result<Submitted, ServiceError> {
        let agent = self.config.agents.resolve(caller);
        let known = agent.filter(|a| a.enabled);
        if let Some(a) = known {
            if let Some(claimed) = action.common().agent_id
                && claimed != a.id
            {
                self.audit(AuditEvent {
                        action: event_for(action.op(), Phase::Denied),
                        summary: format!(
                            "agent `{}` claimed to be `{claimed}` in the request body",
                            a.id
                        ),
                        agent_id: a.id.clone(),
                        microvm_id: action.target().map(str::to_string),
                        outcome: "failure",
                        severity: "critical",
                        correlation_id: action.common().correlation_id.map(str::to_string),
                        external_request_id: None,
                        in_reply_to: None,
                        metadata: serde_json::json!({"rule_id": "agent.spoofed", "claimed_agent_id": claimed}),
                    })
                    .await;
                return Err(ServiceError::Spoofed {
                    claimed: claimed.to_string(),
                });
            }
            action.validate()?;
        }
        // What the ledger knows about the target (fail closed if unreadable).
        let target_entry = match (known, action.target()) {
            (Some(_), Some(id)) => Some(self.ports.ledger.microvm(id).await?),
            _ => None,
        };
        let target = match (&target_entry, action.target()) {
            (_, None) => Target::NotApplicable,
            (Some(Some(e)), _) => Target::Managed(e),
            _ => Target::Unmanaged,
        };
        let decision = policy::evaluate(&self.config.policy, agent, &action, target);
        match decision.decision {
            Verdict::Block => {
                let agent_id = agent
                    .map(|a| a.id.clone())
                    .unwrap_or_else(|| caller.describe());
                let id = self
                    .audit(self.decision_event(&agent_id, &action, &decision, Phase::Denied))
                    .await;
                Ok(Submitted::Blocked {
                    decision,
                    audit_record_id: id,
                })
            }
            Verdict::AutoApprove => {
                let agent = known.ok_or_else(|| {
                    ServiceError::Internal("auto-approved without an agent".into())
                })?;
                // Audit record first: its id is the contro1_request_id. No record, no call.
                let ev = self.decision_event(&agent.id, &action, &decision, Phase::Requested);
                audit_log(&ev, None);
                let request_id = self.ports.approvals.audit(&ev).await?;
                let executed = self
                    .execute(&request_id, agent, &action, target_entry.flatten().as_ref())
                    .await?;
                let mut done = self.decision_event(&agent.id, &action, &decision, Phase::Executed);
                done.in_reply_to = Some(ReplyTo::AuditRecord(request_id.clone()));
                done.microvm_id = executed.result.microvm_id.clone();
                done.metadata["aws_request_id"] = serde_json::json!(executed.result.aws_request_id);
                self.audit(done).await;
                Ok(Submitted::Executed {
                    request_id,
                    decision,
                    result: executed.result,
                    token: executed.token,
                })
            }
            Verdict::RequireApproval => {
                let agent = known.ok_or_else(|| {
                    ServiceError::Internal("approval requested without an agent".into())
                })?;
                self.request_approval(agent, action, decision).await
            }
        }
    }

    async fn request_approval(
        &self,
        agent: &Agent,
        action: Action,
        decision: Decision,
    ) -> Result<Submitted, ServiceError> {
        let key = idempotency_key(&agent.id, &action);
        let owner = action.owner().unwrap_or_default().to_string();
        let c = action.common();
        let req = ApprovalRequest {
            idempotency_key: key.clone(),
            question: format!(
                "Allow agent `{}` to {}{}?",
                agent.id,
                action.op(),
                action
                    .target()
                    .map(|t| format!(" on MicroVM `{t}`"))
                    .unwrap_or_default()
            ),
            context: format!(
                "owner: {owner}\nreason: {}\npolicy: {} ({})",
                c.reason, decision.rule_id, decision.reason
            ),
            callback_url: self.callback_url.clone(),
            risk_level: decision.risk_level,
            required_role: self.config.policy.default_required_role.clone(),
            sla_minutes: self.config.policy.default_sla_minutes,
            decision: decision.clone(),
            correlation_id: c.correlation_id.map(str::to_string),
            agent_id: agent.id.clone(),
            owner: owner.clone(),
            action_type: action.action_type(),
            microvm_id: action.target().map(str::to_string),
            metadata: serde_json::json!({
                "input": action_summary(&action),
                "agent_metadata": c.metadata,
            }),
        };
        let request_id = self.ports.approvals.create_request(&req).await?;
        let now = self.ports.clock.now();
        let rec = PendingRecord {
            request_id: request_id.clone(),
            agent_id: agent.id.clone(),
            owner,
            action: action.clone(),
            decision: decision.clone(),
            idempotency_key: key.clone(),
            state: State::Pending,
            created_at: now,
            expires_at: now + i64::from(self.config.policy.approval_ttl_seconds),
            result: None,
            error: None,
            has_token: false,
        };
        let state = match self.ports.store.put_pending(&rec).await? {
            PutOutcome::Created => {
                let mut ev = self.decision_event(&agent.id, &action, &decision, Phase::Requested);
                ev.in_reply_to = Some(ReplyTo::Request(request_id.clone()));
                ev.external_request_id = Some(key);
                audit_log(&ev, None);
                State::Pending
            }
            // The same action asked again: Contro1 gave the same request back.
            PutOutcome::AlreadyExists => self
                .ports
                .store
                .get(&request_id)
                .await?
                .map_or(State::Pending, |r| r.state),
        };
        Ok(Submitted::Pending {
            request_id,
            decision,
            state,
        })
    }

    /// Act on a callback whose signature has been verified.
    pub async fn on_callback(
        &self,
        request_id: &str,
        resolution: Resolution,
    ) -> Result<CallbackOutcome, ServiceError> {
        let rec =
            self.ports
                .store
                .get(request_id)
                .await?
                .ok_or_else(|| ServiceError::NotFound {
                    request_id: request_id.to_string(),
                })?;
        if rec.state != State::Pending {
            return Ok(CallbackOutcome::AlreadyProcessed {
                state: Some(rec.state),
            });
        }
        let mut resolution = resolution;
        if resolution == Resolution::Approved && self.ports.clock.now() > rec.expires_at {
            // An approval that arrives after the pending item's lifetime is not acted on.
            resolution = Resolution::Expired;
        }
        let to = resolution.next_state();
        if let Transition::LostRace { current } = self
            .ports
            .store
            .transition(request_id, State::Pending, to)
            .await?
        {
            return Ok(CallbackOutcome::AlreadyProcessed { state: current });
        }
        if resolution != Resolution::Approved {
            let mut ev =
                self.decision_event(&rec.agent_id, &rec.action, &rec.decision, Phase::Denied);
            ev.in_reply_to = Some(ReplyTo::Request(rec.request_id.clone()));
            ev.metadata["resolution"] = serde_json::json!(to.as_str());
            self.audit(ev).await;
            return Ok(CallbackOutcome::Recorded { state: to });
        }
        // We own the execution now. Re-check the agent: it may have been disabled since.
        let mut approved =
            self.decision_event(&rec.agent_id, &rec.action, &rec.decision, Phase::Approved);
        approved.in_reply_to = Some(ReplyTo::Request(rec.request_id.clone()));
        self.audit(approved).await;
        let finish = match self.config.agents.get(&rec.agent_id).filter(|a| a.enabled) {
            None => Finish {
                state: State::Failed,
                result: None,
                error: Some(format!(
                    "agent `{}` is no longer registered and enabled",
                    rec.agent_id
                )),
                token: None,
            },
            Some(agent) => {
                let target_entry = match rec.action.target() {
                    Some(id) => self.ports.ledger.microvm(id).await.ok().flatten(),
                    None => None,
                };
                match self
                    .execute(&rec.request_id, agent, &rec.action, target_entry.as_ref())
                    .await
                {
                    Ok(ex) => Finish {
                        state: State::Executed,
                        result: Some(ex.result),
                        error: None,
                        token: ex.token,
                    },
                    Err(e) => Finish {
                        state: State::Failed,
                        result: None,
                        error: Some(e.to_string()),
                        token: None,
                    },
                }
            }
        };
        let state = finish.state;
        let mut done =
            self.decision_event(&rec.agent_id, &rec.action, &rec.decision, Phase::Executed);
        done.in_reply_to = Some(ReplyTo::Request(rec.request_id.clone()));
        done.outcome = if state == State::Executed {
            "success"
        } else {
            "failure"
        };
        if let Some(r) = &finish.result {
            done.microvm_id = r.microvm_id.clone().or(done.microvm_id);
            done.metadata["aws_request_id"] = serde_json::json!(r.aws_request_id);
        }
        if let Some(e) = &finish.error {
            done.metadata["error"] = serde_json::json!(e);
        }
        self.ports.store.finish(request_id, finish).await?;
        self.audit(done).await;
        Ok(CallbackOutcome::Executed { state })
    }

    /// Show a request to the agent that made it; a token once.
    pub async fn get_request(
        &self,
        caller: &Caller,
        request_id: &str,
    ) -> Result<RequestView, ServiceError> {
        let agent = self
            .config
            .agents
            .resolve(caller)
            .filter(|a| a.enabled)
            .ok_or(ServiceError::UnknownCaller)?;
        let not_found = || ServiceError::NotFound {
            request_id: request_id.to_string(),
        };
        let rec = self
            .ports
            .store
            .get(request_id)
            .await?
            .ok_or_else(not_found)?;
        if rec.agent_id != agent.id {
            return Err(not_found());
        }
        let token = if rec.has_token {
            self.ports.store.take_token_once(request_id).await?
        } else {
            None
        };
        let issued_token = matches!(
            rec.action,
            Action::AuthToken { .. } | Action::ShellToken { .. }
        ) && rec.state == State::Executed;
        Ok(RequestView {
            request_id: rec.request_id,
            state: rec.state,
            operation: rec.action.op().as_str(),
            microvm_id: rec
                .action
                .target()
                .map(str::to_string)
                .or_else(|| rec.result.as_ref().and_then(|r| r.microvm_id.clone())),
            decision: rec.decision,
            result: rec.result,
            error: rec.error,
            token_already_returned: issued_token && token.is_none(),
            token,
        })
    }

    /// Make the AWS call for an approved action and record it in the ledger.
    async fn execute(
        &self,
        contro1_request_id: &str,
        agent: &Agent,
        action: &Action,
        target: Option<&LedgerEntry>,
    ) -> Result<Executed, ServiceError> {
        let c = action.common();
        let owner = action.owner().unwrap_or_default().to_string();
        let op = action.op();
        let mut entry = LedgerEntry {
            contro1_request_id: contro1_request_id.to_string(),
            operation: op.as_str().to_string(),
            microvm_id: action.target().map(str::to_string),
            aws_request_id: None,
            agent_id: agent.id.clone(),
            owner: owner.clone(),
            correlation_id: c.correlation_id.map(str::to_string),
            image_arn: target.and_then(|t| t.image_arn.clone()),
            execution_role_arn: target.and_then(|t| t.execution_role_arn.clone()),
            outcome: "succeeded".to_string(),
            time_epoch: self.ports.clock.now(),
        };
        let mut result = ExecResult {
            operation: op.as_str().to_string(),
            microvm_id: entry.microvm_id.clone(),
            ..Default::default()
        };
        let api = &self.ports.microvms;
        let outcome: Result<Option<Secret>, MicrovmError> = match action {
            Action::Run(r) => {
                entry.image_arn = Some(r.image_arn.clone());
                entry.execution_role_arn = Some(r.execution_role_arn.clone());
                let payload =
                    run_hook_payload(contro1_request_id, &agent.id, &owner, c.correlation_id)?;
                let call = RunCall {
                    client_token: contro1_request_id.to_string(),
                    image_arn: r.image_arn.clone(),
                    image_version: r.image_version.clone(),
                    execution_role_arn: r.execution_role_arn.clone(),
                    max_duration_seconds: r.duration_seconds,
                    network_egress: r.network_egress,
                    shell_access: r.shell_access,
                    run_hook_payload: payload,
                };
                api.run(&call).await.map(|out| {
                    entry.microvm_id = Some(out.microvm_id.clone());
                    entry.aws_request_id = out.aws_request_id.clone();
                    result.microvm_id = Some(out.microvm_id);
                    result.aws_request_id = out.aws_request_id;
                    result.state = Some(out.state);
                    result.endpoint = out.endpoint;
                    None
                })
            }
            Action::AuthToken {
                microvm_id,
                request,
            } => {
                let minutes = request.token_ttl_seconds.div_ceil(60);
                api.auth_token(microvm_id, &request.ports, minutes)
                    .await
                    .map(|out| {
                        entry.aws_request_id = out.aws_request_id.clone();
                        result.aws_request_id = out.aws_request_id;
                        result.token_expires_in_minutes = Some(minutes);
                        Some(out.token)
                    })
            }
            Action::ShellToken {
                microvm_id,
                request,
            } => {
                let minutes = request.token_ttl_seconds.div_ceil(60);
                api.shell_token(microvm_id, minutes).await.map(|out| {
                    entry.aws_request_id = out.aws_request_id.clone();
                    result.aws_request_id = out.aws_request_id;
                    result.token_expires_in_minutes = Some(minutes);
                    Some(out.token)
                })
            }
            Action::Lifecycle { microvm_id, op, .. } => {
                api.lifecycle(microvm_id, *op).await.map(|out| {
                    entry.aws_request_id = out.aws_request_id.clone();
                    result.aws_request_id = out.aws_request_id;
                    result.state = out.state;
                    None
                })
            }
        };
        match outcome {
            Ok(token) => {
                if let Err(e) = self.ports.ledger.record(&entry).await {
                    tracing::error!(
                        target: "audit",
                        operation = op.as_str(),
                        contro1_request_id,
                        aws_request_id = entry.aws_request_id.as_deref(),
                        microvm_id = entry.microvm_id.as_deref(),
                        error = %e,
                        "governed call succeeded but was not recorded in the ledger"
                    );
                    return Err(ServiceError::Unrecorded {
                        operation: op.as_str(),
                        aws_request_id: entry.aws_request_id,
                        microvm_id: entry.microvm_id,
                        source: e,
                    });
                }
                Ok(Executed { result, token })
            }
            Err(e) => {
                entry.outcome = "failed".to_string();
                entry.aws_request_id = e.aws_request_id().map(str::to_string);
                if let Err(le) = self.ports.ledger.record(&entry).await {
                    tracing::error!(target: "audit", operation = op.as_str(), error = %le, "failed governed call not recorded in the ledger");
                }
                Err(e.into())
            }
        }
    }

    fn decision_event(
        &self,
        agent_id: &str,
        action: &Action,
        decision: &Decision,
        phase: Phase,
    ) -> AuditEvent {
        let c = action.common();
        let failure = phase == Phase::Denied;
        AuditEvent {
            action: event_for(action.op(), phase),
            summary: format!(
                "{} {} for agent `{agent_id}`: {} ({})",
                action.op(),
                phase_name(phase),
                decision.rule_id,
                decision.reason
            ),
            agent_id: agent_id.to_string(),
            microvm_id: action.target().map(str::to_string),
            outcome: if failure { "failure" } else { "success" },
            severity: match decision.risk_level {
                crate::policy::RiskLevel::Critical => "critical",
                crate::policy::RiskLevel::High => "warning",
                _ if failure => "warning",
                _ => "info",
            },
            correlation_id: c.correlation_id.map(str::to_string),
            external_request_id: None,
            in_reply_to: None,
            metadata: serde_json::json!({
                "phase": phase_name(phase),
                "decision": decision,
                "owner": action.owner(),
                "input": action_summary(action),
            }),
        }
    }

    /// Write an audit event: always a log line; a Contro1 audit record when
    /// Contro1 answers (a failure is logged, never hidden).
    async fn audit(&self, ev: AuditEvent) -> Option<String> {
        match self.ports.approvals.audit(&ev).await {
            Ok(id) => {
                audit_log(&ev, Some(&id));
                Some(id)
            }
            Err(e) => {
                audit_log(&ev, None);
                tracing::error!(target: "audit", event = ev.action.as_str(), error = %e, "audit record not written to Contro1");
                None
            }
        }
    }
}

/// One structured log line per audit event (never a token or key).
fn audit_log(ev: &AuditEvent, record_id: Option<&str>) {
    tracing::info!(
        target: "audit",
        event = ev.action.as_str(),
        agent_id = %ev.agent_id,
        microvm_id = ev.microvm_id.as_deref(),
        outcome = ev.outcome,
        severity = ev.severity,
        correlation_id = ev.correlation_id.as_deref(),
        in_reply_to = ev.in_reply_to.as_ref().map(ReplyTo::id),
        audit_record_id = record_id,
        metadata = %ev.metadata,
        "{}", ev.summary
    );
}

/// The action's input without free-text metadata, for audit records.
fn action_summary(action: &Action) -> serde_json::Value {
    let mut v = serde_json::to_value(action).unwrap_or_default();
    if let Some(input) = v.get_mut("input").and_then(|i| i.as_object_mut()) {
        input.remove("metadata");
        if let Some(r) = input.get_mut("request").and_then(|r| r.as_object_mut()) {
            r.remove("metadata");
        }
    }
    v
}

/// `runHookPayload`: compact JSON carrying the ids the detector and the VM
/// can read back. Errors if it would exceed 4096 bytes.
pub fn run_hook_payload(
    contro1_request_id: &str,
    agent_id: &str,
    owner: &str,
    correlation_id: Option<&str>,
) -> Result<String, ServiceError> {
    let s = serde_json::json!({
        "contro1_request_id": contro1_request_id,
        "agent_id": agent_id,
        "owner": owner,
        "correlation_id": correlation_id,
    })
    .to_string();
    if s.len() > MAX_RUN_HOOK_PAYLOAD_BYTES {
        return Err(ServiceError::Internal(format!(
            "runHookPayload would be {} bytes (limit {MAX_RUN_HOOK_PAYLOAD_BYTES})",
            s.len()
        )));
    }
    Ok(s)
}

/// The lifecycle op name, for logs.
pub fn lifecycle_name(op: Lifecycle) -> &'static str {
    match op {
        Lifecycle::Suspend => "suspend",
        Lifecycle::Resume => "resume",
        Lifecycle::Terminate => "terminate",
    }
}
