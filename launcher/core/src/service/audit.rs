//! Audit events: each is a Contro1 audit record (the taxonomy name as
//! `action`) and one structured log line (target `audit`), never a token.

use super::Service;
use crate::policy::{Decision, RiskLevel};
use crate::ports::{AuditEvent, ReplyTo};
use crate::request::Action;
use shared_core::{Event, GovernedOp, text};

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

impl Service {
    pub(super) fn decision_event(
        &self,
        agent_id: &str,
        action: &Action,
        decision: &Decision,
        phase: Phase,
    ) -> AuditEvent {
        let c = action.common();
        let failure = phase == Phase::Denied;
        // The agent's text (owner, correlation id, the input) goes through
        // `shared_core::text` here, once: every audit record and its log line
        // is built by this function or from validated, cleaned parts.
        let clean = |s: &str| text::clean(s, text::TEXT_MAX);
        AuditEvent {
            action: event_for(action.op(), phase),
            summary: format!(
                "{} {} for agent `{agent_id}`: {} ({})",
                action.op(),
                phase_name(phase),
                decision.rule_id,
                clean(&decision.reason)
            ),
            agent_id: agent_id.to_string(),
            microvm_id: action.target().map(str::to_string),
            outcome: if failure { "failure" } else { "success" },
            severity: match decision.risk_level {
                RiskLevel::Critical => "critical",
                RiskLevel::High => "warning",
                _ if failure => "warning",
                _ => "info",
            },
            correlation_id: c.correlation_id.map(clean),
            external_request_id: None,
            in_reply_to: None,
            metadata: text::clean_json(&serde_json::json!({
                "phase": phase_name(phase),
                "decision": decision,
                "owner": action.owner(),
                "input": action_summary(action),
            })),
        }
    }

    /// Write an audit event: always a log line; a Contro1 audit record when
    /// Contro1 answers (a failure is logged, never hidden).
    pub(super) async fn audit(&self, ev: AuditEvent) -> Option<String> {
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
pub(super) fn audit_log(ev: &AuditEvent, record_id: Option<&str>) {
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
pub(super) fn action_summary(action: &Action) -> serde_json::Value {
    let mut v = serde_json::to_value(action).unwrap_or_default();
    if let Some(input) = v.get_mut("input").and_then(|i| i.as_object_mut()) {
        input.remove("metadata");
        if let Some(r) = input.get_mut("request").and_then(|r| r.as_object_mut()) {
            r.remove("metadata");
        }
    }
    v
}
