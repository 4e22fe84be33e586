//! Acting on a callback whose signature has been verified: Contro1 itself
//! must confirm an approval (state and action) before anything executes.

use super::audit::Phase;
use super::execute::Outcome;
use super::{CallbackOutcome, Service, ServiceError};
use crate::approval::{Resolution, State, action_digest, token_binding};
use crate::ports::{Finish, PendingRecord, ReplyTo, RequestStatus, Transition};

impl Service {
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
        let now = self.ports.clock.now();
        let mut resolution = resolution;
        if resolution == Resolution::Approved {
            if now > rec.expires_at {
                // An approval that arrives after the pending item's lifetime is not acted on.
                resolution = Resolution::Expired;
            } else {
                // The signature says Contro1 sent it; Contro1 must also say it
                // still stands, for this action.
                let status = self.ports.approvals.get_request(request_id).await?;
                resolution = confirm(&rec, &status)?;
            }
        }
        let to = resolution.next_state();
        if let Transition::LostRace { current } = self
            .ports
            .store
            .transition(request_id, State::Pending, to, now)
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
            None => Finish::failed(format!(
                "agent `{}` is no longer registered and enabled",
                rec.agent_id
            )),
            Some(agent) => {
                let target_entry = match rec.action.target() {
                    Some(id) => self.ports.ledger.microvm(id).await.ok().flatten(),
                    None => None,
                };
                match self
                    .execute(
                        &rec.request_id,
                        &agent.id,
                        &rec.action,
                        target_entry.as_ref(),
                    )
                    .await
                {
                    Ok(Outcome::Done { result, token }) => Finish {
                        state: State::Executed,
                        result: Some(result),
                        error: None,
                        token_binding: token.as_ref().map(|_| {
                            token_binding(
                                &rec.agent_id,
                                &rec.request_id,
                                &action_digest(&rec.agent_id, &rec.action),
                            )
                        }),
                        token,
                    },
                    Ok(Outcome::Failed(e)) => Finish::failed(e.public_message()),
                    Ok(Outcome::Unrecorded { .. }) => {
                        // Left `executing` for the reconciler; the token is withheld.
                        return Ok(CallbackOutcome::Executed {
                            state: State::Executing,
                        });
                    }
                    Err(e) => Finish::failed(e.to_string()),
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
}

/// What Contro1 says about an approved callback: the approval stands for
/// this very action, or Contro1's own decision replaces the callback's, or
/// nothing is done (still open, another action). "This very action" is the
/// digest recomputed from the stored item (agent and action), never the
/// stored key string alone: it must equal the stored key, Contro1's
/// `external_request_id` and, when Contro1 kept it, the request's
/// `metadata.context.action_digest`.
pub(super) fn confirm(
    rec: &PendingRecord,
    status: &RequestStatus,
) -> Result<Resolution, ServiceError> {
    let refuse = |reason: String| ServiceError::Unconfirmed {
        request_id: rec.request_id.clone(),
        reason,
    };
    let decision = status.decision.ok_or_else(|| {
        refuse(format!(
            "the callback says approved, Contro1 says the request is still open (`{}`)",
            status.state
        ))
    })?;
    if decision != Resolution::Approved {
        tracing::warn!(target: "audit", contro1_request_id = %rec.request_id, contro1_state = %status.state, "callback said approved, Contro1 says otherwise: recording Contro1's decision");
        return Ok(decision);
    }
    let digest = action_digest(&rec.agent_id, &rec.action);
    if digest != rec.idempotency_key {
        tracing::error!(target: "audit", contro1_request_id = %rec.request_id, "the stored action does not match its own digest: the pending item was changed after the request was made");
        return Err(refuse(
            "the stored action is not the one Contro1 was asked about".into(),
        ));
    }
    if status.external_request_id.as_deref() != Some(digest.as_str()) {
        return Err(refuse(
            "Contro1's external_request_id is not the stored action's digest".into(),
        ));
    }
    if status.action_digest.as_deref().is_some_and(|d| d != digest) {
        return Err(refuse("Contro1 holds another action digest".into()));
    }
    if status
        .action_type
        .as_deref()
        .is_some_and(|t| t != rec.action.action_type())
    {
        return Err(refuse("Contro1 holds another action type".into()));
    }
    if status.microvm_id.is_some() && status.microvm_id.as_deref() != rec.action.target() {
        return Err(refuse("Contro1 holds another MicroVM".into()));
    }
    Ok(Resolution::Approved)
}
