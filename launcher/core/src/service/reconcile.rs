//! The reconciler: finishes executions a crash or the function's timeout
//! left `executing` (the item is written before the AWS call, so every
//! interrupted call leaves one).
//!
//! * RunMicrovm is issued again with the same `clientToken` (the request
//!   id; AWS answers with the MicroVM it already started, or starts the
//!   approved one), then the ledger is completed and the item `executed`.
//!   A result kept when only the ledger write failed is used without a call.
//! * Token and lifecycle calls are never issued again: the item is `failed`
//!   ("interrupted") and audited; a result kept from AWS is still ledgered.
//! * An item is taken over with a conditional lease, so concurrent runs act
//!   once; after `reconcile_max_attempts` take-overs it is failed.
//! * A run that is not issued again (its agent gone, its approval or action
//!   not confirmed, too many take-overs) never leaves a MicroVM unaccounted
//!   for: a kept result is ledgered; otherwise the MicroVMs its call may
//!   have started are looked up and reported in a critical audit record.

use super::audit::Phase;
use super::{Service, ServiceError};
use crate::approval::{Resolution, State, action_digest};
use crate::policy::{self, Target, Verdict};
use crate::ports::{ExecResult, Finish, MicrovmError, PendingRecord, ReplyTo, Transition};
use crate::request::Action;
use serde::Serialize;
use shared_core::LedgerEntry;

/// What one reconciler run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Stuck items looked at.
    pub examined: usize,
    /// Finished `executed`.
    pub executed: usize,
    /// Finished `failed`.
    pub failed: usize,
    /// Left for a later run (another reconciler holds it, or AWS/the ledger
    /// did not answer).
    pub left: usize,
    /// One line per item that could not be finished.
    pub errors: Vec<String>,
}

impl Service {
    /// Finish every item `executing` for longer than the function can run.
    pub async fn reconcile(&self) -> Result<ReconcileReport, ServiceError> {
        let now = self.ports.clock.now();
        let cutoff = now - self.options.executing_timeout_seconds;
        let ids = self
            .ports
            .store
            .stuck(cutoff, self.options.reconcile_batch)
            .await?;
        let mut report = ReconcileReport::default();
        for id in ids {
            report.examined += 1;
            match self.reconcile_one(&id, now, cutoff).await {
                Ok(Some(State::Executed)) => report.executed += 1,
                Ok(Some(_)) => report.failed += 1,
                Ok(None) => report.left += 1,
                Err(e) => {
                    report.left += 1;
                    tracing::error!(target: "audit", contro1_request_id = %id, error = %e, "reconciler could not finish a stuck execution");
                    report.errors.push(format!("{id}: {e}"));
                }
            }
        }
        tracing::info!(target: "audit", examined = report.examined, executed = report.executed, failed = report.failed, left = report.left, "reconciler run");
        Ok(report)
    }

    async fn reconcile_one(
        &self,
        id: &str,
        now: i64,
        cutoff: i64,
    ) -> Result<Option<State>, ServiceError> {
        let Some(rec) = self.ports.store.get(id).await? else {
            return Ok(None);
        };
        let Some(since) = rec
            .executing_since
            .filter(|s| rec.state == State::Executing && *s < cutoff)
        else {
            return Ok(None);
        };
        if !self.ports.store.lease(id, since, now).await? {
            return Ok(None);
        }
        let finish = if rec.reconcile_attempts >= self.options.reconcile_max_attempts {
            self.account_for(
                &rec,
                format!(
                    "interrupted, and not reconciled after {} attempts",
                    rec.reconcile_attempts
                ),
            )
            .await?
        } else {
            match self.reconcile_call(&rec).await? {
                Some(f) => f,
                None => return Ok(None),
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
        done.metadata["reconciled"] = serde_json::json!(true);
        if let Some(r) = &finish.result {
            done.microvm_id = r.microvm_id.clone().or(done.microvm_id);
            done.metadata["aws_request_id"] = serde_json::json!(r.aws_request_id);
        }
        if let Some(e) = &finish.error {
            done.metadata["error"] = serde_json::json!(e);
        }
        if let Transition::LostRace { .. } = self.ports.store.finish(id, finish).await? {
            return Ok(None);
        }
        self.audit(done).await;
        Ok(Some(state))
    }

    /// How a stuck item ends; `None` to leave it for a later run.
    async fn reconcile_call(&self, rec: &PendingRecord) -> Result<Option<Finish>, ServiceError> {
        if !matches!(rec.action, Action::Run(_)) {
            if let Some(result) = &rec.result {
                self.ports
                    .ledger
                    .record(
                        &self.entry_for(rec, result, "succeeded"),
                        &result.attempt_request_ids,
                    )
                    .await?;
            }
            return Ok(Some(Finish::failed(format!(
                "{} was interrupted before its result was recorded; it is not issued again: ask again",
                rec.action.op()
            ))));
        }
        if let Some(result) = rec.result.as_ref().filter(|r| r.microvm_id.is_some()) {
            // AWS answered before; only the ledger is missing.
            self.ports
                .ledger
                .record(
                    &self.entry_for(rec, result, "succeeded"),
                    &result.attempt_request_ids,
                )
                .await?;
            return Ok(Some(Finish {
                state: State::Executed,
                result: Some(result.clone()),
                error: None,
                token: None,
                token_binding: None,
            }));
        }
        let Some(agent) = self.config.agents.get(&rec.agent_id).filter(|a| a.enabled) else {
            let reason = format!(
                "interrupted, and agent `{}` is no longer registered and enabled",
                rec.agent_id
            );
            return Ok(Some(self.account_for(rec, reason).await?));
        };
        if let Err(reason) = self.reconfirm(rec, agent).await? {
            tracing::error!(target: "audit", contro1_request_id = %rec.request_id, reason = %reason, "reconciler refused a stuck run: nothing issued");
            let reason = format!("interrupted, and not confirmed again: {reason}");
            return Ok(Some(self.account_for(rec, reason).await?));
        }
        let call = self.run_call(&rec.request_id, &rec.agent_id, &rec.action)?;
        match self.ports.microvms.run(&call).await {
            Ok(out) => {
                let result = ExecResult {
                    operation: rec.action.op().as_str().to_string(),
                    microvm_id: Some(out.microvm_id),
                    aws_request_id: out.aws_request_id,
                    state: Some(out.state),
                    endpoint: out.endpoint,
                    token_expires_in_minutes: None,
                    attempt_request_ids: out.attempt_request_ids,
                };
                self.ports
                    .ledger
                    .record(
                        &self.entry_for(rec, &result, "succeeded"),
                        &result.attempt_request_ids,
                    )
                    .await?;
                Ok(Some(Finish {
                    state: State::Executed,
                    result: Some(result),
                    error: None,
                    token: None,
                    token_binding: None,
                }))
            }
            Err(e @ MicrovmError::Rejected { .. }) => {
                let failed = ExecResult {
                    operation: rec.action.op().as_str().to_string(),
                    aws_request_id: e.aws_request_id().map(str::to_string),
                    ..Default::default()
                };
                if let Err(le) = self
                    .ports
                    .ledger
                    .record(
                        &self.entry_for(rec, &failed, "failed"),
                        e.attempt_request_ids(),
                    )
                    .await
                {
                    tracing::error!(target: "audit", error = %le, "failed reconciler call not recorded in the ledger");
                }
                Ok(Some(Finish::failed(e.public_message())))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// How a stuck item that will not be issued (again) ends, `reason` being
    /// why. A run never leaves a MicroVM unaccounted for: a result kept from
    /// AWS is ledgered as the governed call it was (the item `executed`);
    /// otherwise the MicroVMs its interrupted call may have started (its
    /// image, started since the item began executing, unknown to the
    /// ledger) are looked up, and each one found, or a lookup that failed,
    /// is a critical `aws.microvm.unmanaged.detected` audit record naming
    /// the MicroVM and the request (the call's `clientToken`), and is named
    /// in the item's error. Other actions start no MicroVM: failed.
    async fn account_for(
        &self,
        rec: &PendingRecord,
        reason: String,
    ) -> Result<Finish, ServiceError> {
        let Action::Run(run) = &rec.action else {
            return Ok(Finish::failed(reason));
        };
        if let Some(result) = rec.result.as_ref().filter(|r| r.microvm_id.is_some()) {
            self.ports
                .ledger
                .record(
                    &self.entry_for(rec, result, "succeeded"),
                    &result.attempt_request_ids,
                )
                .await?;
            return Ok(Finish {
                state: State::Executed,
                result: Some(result.clone()),
                error: None,
                token: None,
                token_binding: None,
            });
        }
        // Not before the item existed (a take-over moves `executing_since`
        // on); clocks differ a little between the launcher and AWS.
        let since = rec.created_at - 300;
        let found = match self
            .ports
            .microvms
            .started_since(&run.image_arn, since)
            .await
        {
            Ok(ids) => {
                let mut unknown = Vec::new();
                for id in ids {
                    if self.ports.ledger.microvm(&id).await?.is_none() {
                        unknown.push(id);
                    }
                }
                Ok(unknown)
            }
            Err(e) => Err(e),
        };
        let (summary, candidates, error) = match &found {
            Ok(ids) if ids.is_empty() => {
                return Ok(Finish::failed(format!(
                    "{reason}; no MicroVM of its image was started since it began executing"
                )));
            }
            Ok(ids) => (
                format!(
                    "reconciler: request `{}` was interrupted and is not issued again; MicroVM(s) {} of its image started since then are in no ledger item and may be the one it started",
                    rec.request_id,
                    ids.join(", ")
                ),
                ids.clone(),
                None,
            ),
            Err(e) => (
                format!(
                    "reconciler: request `{}` was interrupted and is not issued again; whether it started a MicroVM is unknown (ListMicrovms failed)",
                    rec.request_id
                ),
                Vec::new(),
                Some(e.public_message()),
            ),
        };
        tracing::error!(target: "audit", contro1_request_id = %rec.request_id, candidates = ?candidates, "{summary}");
        self.audit(crate::ports::AuditEvent {
            action: shared_core::Event::UnmanagedDetected,
            summary: summary.clone(),
            agent_id: rec.agent_id.clone(),
            microvm_id: candidates.first().cloned(),
            outcome: "failure",
            severity: "critical",
            correlation_id: rec
                .action
                .common()
                .correlation_id
                .map(|c| shared_core::text::clean(c, shared_core::text::TEXT_MAX)),
            external_request_id: None,
            in_reply_to: Some(ReplyTo::Request(rec.request_id.clone())),
            metadata: serde_json::json!({
                "rule_id": "reconcile.unaccounted_microvm",
                "client_token": rec.request_id,
                "image_arn": run.image_arn,
                "started_since": since,
                "candidate_microvm_ids": candidates,
                "lookup_error": error,
            }),
        })
        .await;
        Ok(Finish::failed(match found {
            Ok(ids) => format!(
                "{reason}; MicroVM(s) {} may have been started by it and are reported",
                ids.join(", ")
            ),
            Err(_) => format!("{reason}; whether it started a MicroVM is unknown and is reported"),
        }))
    }

    /// Before a stuck run is issued again: the stored action must still be
    /// the one decided on. Its digest, recomputed from the item, must be the
    /// stored key; an approval must be confirmed again by Contro1 (`GET
    /// /requests/{id}`: approved, for this digest); an auto-approval must
    /// still be auto-approved by the policy. `Err(reason)` refuses;
    /// Contro1 unreachable is an error (the item is left for a later run).
    async fn reconfirm(
        &self,
        rec: &PendingRecord,
        agent: &crate::agents::Agent,
    ) -> Result<Result<(), String>, ServiceError> {
        if action_digest(&rec.agent_id, &rec.action) != rec.idempotency_key {
            return Ok(Err(
                "the stored action does not match its digest (the item was changed)".into(),
            ));
        }
        match rec.decision.decision {
            Verdict::RequireApproval => {
                let status = self.ports.approvals.get_request(&rec.request_id).await?;
                match super::callback::confirm(rec, &status) {
                    Ok(Resolution::Approved) => Ok(Ok(())),
                    Ok(other) => Ok(Err(format!("Contro1 records the request as {other:?}"))),
                    Err(ServiceError::Unconfirmed { reason, .. }) => Ok(Err(reason)),
                    Err(e) => Err(e),
                }
            }
            Verdict::AutoApprove => {
                let now = policy::evaluate(
                    &self.config.policy,
                    Some(agent),
                    &rec.action,
                    Target::NotApplicable,
                );
                if now.decision == Verdict::AutoApprove {
                    Ok(Ok(()))
                } else {
                    Ok(Err(format!(
                        "the policy no longer auto-approves it ({})",
                        now.rule_id
                    )))
                }
            }
            Verdict::Block => Ok(Err("the policy blocked it".into())),
        }
    }

    /// The ledger entry of a stored action and a result.
    fn entry_for(&self, rec: &PendingRecord, result: &ExecResult, outcome: &str) -> LedgerEntry {
        let (image_arn, execution_role_arn) = match &rec.action {
            Action::Run(r) => (
                Some(r.image_arn.clone()),
                Some(r.execution_role_arn.clone()),
            ),
            _ => (None, None),
        };
        LedgerEntry {
            contro1_request_id: rec.request_id.clone(),
            operation: rec.action.op().as_str().to_string(),
            microvm_id: result
                .microvm_id
                .clone()
                .or_else(|| rec.action.target().map(str::to_string)),
            aws_request_id: result.aws_request_id.clone(),
            agent_id: rec.agent_id.clone(),
            owner: rec.owner.clone(),
            correlation_id: rec.action.common().correlation_id.map(str::to_string),
            image_arn,
            execution_role_arn,
            outcome: outcome.to_string(),
            time_epoch: self.ports.clock.now(),
        }
    }
}
