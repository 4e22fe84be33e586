//! Submitting an action: who asks, is the target real, what the policy
//! says, and then a block, an auto-approved execution (replayed for a
//! repeated `Idempotency-Key`) or an approval request.

use super::audit::{Phase, audit_log};
use super::execute::Outcome;
use super::{Service, ServiceError, Submitted};
use crate::agents::{Agent, Caller};
use crate::approval::{State, idempotency_key, idempotency_key_id};
use crate::policy::{self, Decision, Target, Verdict};
use crate::ports::{
    ApprovalRequest, AuditEvent, Finish, KeyClaim, PendingRecord, PutOutcome, ReplyTo,
};
use crate::request::Action;
use shared_core::{LedgerEntry, text};

/// Length of the rate limit's window.
const RATE_WINDOW_SECONDS: i64 = 60;

impl Service {
    /// Classify an action and act on the decision.
    pub async fn submit(&self, caller: &Caller, action: Action) -> Result<Submitted, ServiceError> {
        self.submit_with_key(caller, action, None).await
    }

    /// As [`Service::submit`], with the agent's `Idempotency-Key`: an
    /// auto-approved action sent again with the same key gets the first
    /// answer back and is never executed twice.
    pub async fn submit_with_key(
        &self,
        caller: &Caller,
        action: Action,
        idempotency_key: Option<&str>,
    ) -> Result<Submitted, ServiceError> {
        let agent = self.authenticate(caller)?;
        let known = agent.filter(|a| a.enabled);
        // Validated before anything is audited or logged: a claim of any
        // length or content never reaches a record.
        action.validate()?;
        if let Some(a) = known
            && let Some(claimed) = action.common().agent_id
            && claimed != a.id
        {
            self.audit(AuditEvent {
                action: super::event_for(action.op(), Phase::Denied),
                summary: format!(
                    "agent `{}` claimed to be `{}` in the request body",
                    a.id,
                    text::clean(claimed, text::TEXT_MAX)
                ),
                agent_id: a.id.clone(),
                microvm_id: action.target().map(str::to_string),
                outcome: "failure",
                severity: "critical",
                correlation_id: action
                    .common()
                    .correlation_id
                    .map(|c| text::clean(c, text::TEXT_MAX)),
                external_request_id: None,
                in_reply_to: None,
                metadata: serde_json::json!({"rule_id": "agent.spoofed", "claimed_agent_id": text::clean(claimed, text::TEXT_MAX)}),
            })
            .await;
            return Err(ServiceError::Spoofed {
                claimed: claimed.to_string(),
            });
        }
        let target_entry = match (known, action.target()) {
            (Some(_), Some(id)) => self.target(id).await?,
            _ => None,
        };
        let target = match (&target_entry, action.target()) {
            (_, None) => Target::NotApplicable,
            (Some(e), _) => Target::Managed(e),
            (None, _) => Target::Unmanaged,
        };
        let decision = policy::evaluate(&self.config.policy, agent, &action, target);
        match decision.decision {
            Verdict::Block => {
                let agent_id = agent.map_or_else(|| caller.describe(), |a| a.id.clone());
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
                self.auto_approve(agent, action, decision, target_entry, idempotency_key)
                    .await
            }
            Verdict::RequireApproval => {
                let agent = known.ok_or_else(|| {
                    ServiceError::Internal("approval requested without an agent".into())
                })?;
                self.request_approval(agent, action, decision, target_entry.as_ref())
                    .await
            }
        }
    }

    /// The registered agent of an identified caller. Nothing identified the
    /// caller (no IAM principal, no bearer token, or a bearer token nobody
    /// holds): `Unauthenticated`, before anything else happens. An IAM
    /// principal that is not registered is identified, and its ask is
    /// blocked and audited by the policy (`agent.unknown`).
    pub(super) fn authenticate(&self, caller: &Caller) -> Result<Option<&Agent>, ServiceError> {
        let agent = self.config.agents.resolve(caller);
        match caller {
            Caller::Anonymous => Err(ServiceError::Unauthenticated),
            Caller::Bearer { .. } if agent.is_none() => Err(ServiceError::Unauthenticated),
            _ => Ok(agent),
        }
    }

    /// What the ledger knows of a target MicroVM; a MicroVM the ledger does
    /// not know must at least exist (GetMicrovm), or the ask is refused
    /// before any policy, audit or approval.
    async fn target(&self, microvm_id: &str) -> Result<Option<LedgerEntry>, ServiceError> {
        if let Some(e) = self.ports.ledger.microvm(microvm_id).await? {
            return Ok(Some(e));
        }
        if self.ports.microvms.exists(microvm_id).await? {
            Ok(None)
        } else {
            Err(ServiceError::NoSuchMicrovm {
                microvm_id: microvm_id.to_string(),
            })
        }
    }

    async fn auto_approve(
        &self,
        agent: &Agent,
        action: Action,
        decision: Decision,
        target: Option<LedgerEntry>,
        key: Option<&str>,
    ) -> Result<Submitted, ServiceError> {
        let fingerprint = idempotency_key(&agent.id, &action);
        let key_id = key.map(|k| idempotency_key_id(&agent.id, k));
        if let Some(kid) = &key_id
            && let Some(claim) = self.ports.store.get_key(kid).await?
        {
            return self.replay(&claim, &fingerprint).await;
        }
        // Audit record first: its id is the contro1_request_id. No record, no call.
        let ev = self.decision_event(&agent.id, &action, &decision, Phase::Requested);
        audit_log(&ev, None);
        let request_id = self.ports.approvals.audit(&ev).await?;
        let now = self.ports.clock.now();
        let rec = PendingRecord {
            request_id: request_id.clone(),
            agent_id: agent.id.clone(),
            owner: action.owner().unwrap_or_default().to_string(),
            action: action.clone(),
            decision: decision.clone(),
            idempotency_key: fingerprint.clone(),
            state: State::Executing,
            created_at: now,
            expires_at: now,
            result: None,
            error: None,
            has_token: false,
            executing_since: Some(now),
            reconcile_attempts: 0,
        };
        let claim = key_id.map(|key_id| KeyClaim {
            key_id,
            request_id: request_id.clone(),
            fingerprint: fingerprint.clone(),
        });
        // The execution item exists before the AWS call, so a crash after the
        // call leaves something for the reconciler to finish.
        if self.ports.store.put_executing(&rec, claim.as_ref()).await? == PutOutcome::AlreadyExists
        {
            // A concurrent request with the same key won.
            if let Some(c) = &claim
                && let Some(winner) = self.ports.store.get_key(&c.key_id).await?
            {
                return self.replay(&winner, &fingerprint).await;
            }
            return Err(ServiceError::Internal(format!(
                "execution item `{request_id}` already exists"
            )));
        }
        let outcome = self
            .execute(&request_id, &agent.id, &action, target.as_ref())
            .await;
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                self.finish_logged(&request_id, Finish::failed(e.to_string()))
                    .await;
                return Err(e);
            }
        };
        let mut done = self.decision_event(&agent.id, &action, &decision, Phase::Executed);
        done.in_reply_to = Some(ReplyTo::AuditRecord(request_id.clone()));
        match outcome {
            Outcome::Done { result, token } => {
                self.finish_logged(
                    &request_id,
                    Finish {
                        state: State::Executed,
                        result: Some(result.clone()),
                        error: None,
                        // A token is handed over in this answer, never stored.
                        token: None,
                        token_binding: None,
                    },
                )
                .await;
                done.microvm_id = result.microvm_id.clone().or(done.microvm_id);
                done.metadata["aws_request_id"] = serde_json::json!(result.aws_request_id);
                self.audit(done).await;
                Ok(Submitted::Executed {
                    request_id,
                    decision,
                    result,
                    token,
                    replayed: false,
                })
            }
            Outcome::Failed(e) => {
                self.finish_logged(&request_id, Finish::failed(e.public_message()))
                    .await;
                done.outcome = "failure";
                done.metadata["error"] = serde_json::json!(e.public_message());
                done.metadata["aws_request_id"] = serde_json::json!(e.aws_request_id());
                self.audit(done).await;
                Err(ServiceError::Aws(e))
            }
            Outcome::Unrecorded { result, error } => Err(ServiceError::Unrecorded {
                request_id,
                operation: action.op().as_str(),
                aws_request_id: result.aws_request_id,
                microvm_id: result.microvm_id,
                source: error,
            }),
        }
    }

    /// Finish an execution item; a failure is logged (the item stays
    /// `executing` and the reconciler finishes it).
    pub(super) async fn finish_logged(&self, request_id: &str, finish: Finish) {
        if let Err(e) = self.ports.store.finish(request_id, finish).await {
            tracing::error!(target: "audit", contro1_request_id = request_id, error = %e, "execution item not finished; left to the reconciler");
        }
    }

    /// The answer of the request an `Idempotency-Key` started.
    async fn replay(&self, claim: &KeyClaim, fingerprint: &str) -> Result<Submitted, ServiceError> {
        let request_id = claim.request_id.clone();
        if claim.fingerprint != fingerprint {
            return Err(ServiceError::KeyReused { request_id });
        }
        let Some(rec) = self.ports.store.get(&request_id).await? else {
            return Err(ServiceError::InProgress { request_id });
        };
        match rec.state {
            State::Executed => Ok(Submitted::Executed {
                request_id,
                decision: rec.decision,
                result: rec.result.unwrap_or_default(),
                token: None,
                replayed: true,
            }),
            State::Failed => Err(ServiceError::ReplayedFailure {
                request_id,
                error: rec.error.unwrap_or_default(),
            }),
            _ => Err(ServiceError::InProgress { request_id }),
        }
    }

    /// The Contro1 request for an action: who asks (agent and team), whose
    /// the target is (from the ledger and the registry), exactly what (the
    /// action digest), every text of the agent's through `shared_core::text`.
    fn approval_request(
        &self,
        agent: &Agent,
        action: &Action,
        decision: &Decision,
        target: Option<&LedgerEntry>,
        digest: &str,
    ) -> ApprovalRequest {
        let c = action.common();
        let clean = |s: &str| text::clean(s, text::TEXT_MAX);
        let stated_owner = clean(action.owner().unwrap_or_default());
        let owner_agent_id = target.map(|t| t.agent_id.clone());
        let owner_team = target.map(|t| {
            self.config
                .agents
                .get(&t.agent_id)
                .map_or_else(|| clean(&t.owner), |a| a.owner.clone())
        });
        let whose = match (&owner_agent_id, &owner_team) {
            (Some(a), Some(t)) if *a == agent.id => format!(" (its own, team `{t}`)"),
            (Some(a), Some(t)) => format!(", which belongs to agent `{a}` (team `{t}`)"),
            _ => String::new(),
        };
        ApprovalRequest {
            idempotency_key: digest.to_string(),
            question: format!(
                "Allow agent `{}` (team `{}`) to {}{}{whose}?",
                agent.id,
                agent.owner,
                action.op(),
                action
                    .target()
                    .map(|t| format!(" on MicroVM `{t}`"))
                    .unwrap_or_default()
            ),
            context: format!(
                "requested by: agent {} (team {})\nMicroVM owner: {}\nowner stated by the requester: {stated_owner}\nreason: {}\npolicy: {} ({})\naction digest: {digest}",
                agent.id,
                agent.owner,
                match (&owner_agent_id, &owner_team) {
                    (Some(a), Some(t)) => format!("agent {a} (team {t})"),
                    _ => "(a new MicroVM)".to_string(),
                },
                clean(c.reason),
                decision.rule_id,
                decision.reason
            ),
            callback_url: self.options.callback_url.clone(),
            risk_level: decision.risk_level,
            required_role: self.config.policy.default_required_role.clone(),
            sla_minutes: self.config.policy.default_sla_minutes,
            decision: decision.clone(),
            correlation_id: c.correlation_id.map(clean),
            agent_id: agent.id.clone(),
            requested_by_team: agent.owner.clone(),
            owner: owner_team.unwrap_or_else(|| stated_owner.clone()),
            owner_agent_id,
            stated_owner,
            action_type: action.action_type(),
            microvm_id: action.target().map(str::to_string),
            metadata: text::clean_json(&serde_json::json!({
                "input": super::audit::action_summary(action),
                "agent_metadata": c.metadata,
            })),
        }
    }

    async fn request_approval(
        &self,
        agent: &Agent,
        action: Action,
        decision: Decision,
        target: Option<&LedgerEntry>,
    ) -> Result<Submitted, ServiceError> {
        let now = self.ports.clock.now();
        let per_minute = self.options.approval_requests_per_minute;
        let window_end = (now.div_euclid(RATE_WINDOW_SECONDS) + 1) * RATE_WINDOW_SECONDS;
        if !self
            .ports
            .store
            .count_in_window(&format!("approvals#{}", agent.id), window_end, per_minute)
            .await?
        {
            tracing::warn!(target: "audit", agent_id = %agent.id, per_minute, "approval request refused: rate limit");
            return Err(ServiceError::RateLimited {
                agent_id: agent.id.clone(),
                per_minute,
                retry_after_seconds: window_end - now,
            });
        }
        let key = idempotency_key(&agent.id, &action);
        let owner = action.owner().unwrap_or_default().to_string();
        let req = self.approval_request(agent, &action, &decision, target, &key);
        let request_id = self.ports.approvals.create_request(&req).await?;
        // The same ask again: Contro1 gave the same request back. What we
        // hold about it (pending, or its tombstone) is the answer.
        if let Some(rec) = self.ports.store.get(&request_id).await? {
            return Ok(Submitted::Pending {
                request_id,
                decision,
                state: rec.state,
            });
        }
        // We hold nothing: only a request Contro1 says is still open may get
        // a pending item, or an old approval could execute again.
        let status = self.ports.approvals.get_request(&request_id).await?;
        if status.decision.is_some() {
            return Err(ServiceError::AlreadyDecided {
                request_id,
                state: status.state,
            });
        }
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
            executing_since: None,
            reconcile_attempts: 0,
        };
        let state = match self.ports.store.put_pending(&rec).await? {
            PutOutcome::Created => {
                let mut ev = self.decision_event(&agent.id, &action, &decision, Phase::Requested);
                ev.in_reply_to = Some(ReplyTo::Request(request_id.clone()));
                ev.external_request_id = Some(key);
                audit_log(&ev, None);
                State::Pending
            }
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
}
