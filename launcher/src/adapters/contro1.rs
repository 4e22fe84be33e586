//! Contro1 over the shared client: approval requests, audit records, and
//! the request's current state, which the launcher checks before it acts on
//! a callback.

use contro1::types::{
    AuditActor, AuditResource, AuditSource, INTEGRATION, InReplyTo, Outcome, PolicyContext,
    RESOURCE_TYPE_MICROVM, ReplyKind, RequestType,
};
use contro1::{AuditRecord, Contro1Client, Contro1Error, CreateRequest};
use launcher_core::RiskLevel;
use launcher_core::approval::Resolution;
use launcher_core::ports::{
    ApprovalRequest, Approvals, ApprovalsError, AuditEvent, BoxFut, ReplyTo, RequestStatus,
};
use shared_core::webhook::Decision;

/// Contro1 over the shared client.
#[derive(Debug, Clone)]
pub struct Contro1Approvals(pub Contro1Client);

fn approvals_err(e: Contro1Error) -> ApprovalsError {
    match e {
        Contro1Error::Rejected {
            status, message, ..
        } => ApprovalsError::Rejected { status, message },
        e @ Contro1Error::Timeout { .. } => ApprovalsError::TimedOut {
            message: e.to_string(),
        },
        other => ApprovalsError::Unavailable {
            message: other.to_string(),
        },
    }
}

fn risk(r: RiskLevel) -> contro1::types::RiskLevel {
    match r {
        RiskLevel::Low => contro1::types::RiskLevel::Low,
        RiskLevel::Medium => contro1::types::RiskLevel::Medium,
        RiskLevel::High => contro1::types::RiskLevel::High,
        RiskLevel::Critical => contro1::types::RiskLevel::Critical,
    }
}

impl Approvals for Contro1Approvals {
    fn create_request<'a>(
        &'a self,
        req: &'a ApprovalRequest,
    ) -> BoxFut<'a, Result<String, ApprovalsError>> {
        Box::pin(async move {
            let body = CreateRequest {
                request_type: Some(RequestType::Approval),
                question: Some(req.question.clone()),
                context: Some(req.context.clone()),
                callback_url: Some(req.callback_url.clone()),
                required_role: Some(req.required_role.clone()),
                sla_minutes: Some(req.sla_minutes),
                metadata: Some(serde_json::json!({
                    "source": {"integration": INTEGRATION},
                    "context": {
                        "action_type": req.action_type,
                        "microvm_id": req.microvm_id,
                        "owner": req.owner,
                        "owner_agent_id": req.owner_agent_id,
                        "stated_owner": req.stated_owner,
                        "requested_by_team": req.requested_by_team,
                        "action_digest": req.idempotency_key,
                    },
                    "actor": {"agent_id": req.agent_id},
                    "launcher": req.metadata,
                })),
                external_request_id: Some(req.idempotency_key.clone()),
                correlation_id: req.correlation_id.clone(),
                risk_level: Some(risk(req.risk_level)),
                policy_trigger: Some(req.decision.rule_id.clone()),
                policy_context: Some(PolicyContext {
                    source: Some("microvm-launcher".into()),
                    policy_name: Some("microvm-launcher".into()),
                    rule_id: Some(req.decision.rule_id.clone()),
                    rule_reason: Some(req.decision.reason.clone()),
                    policy_version: Some(req.decision.policy_version.clone()),
                    enforcement: Some("require_approval".into()),
                }),
                ..Default::default()
            };
            self.0
                .create_request(&body, &req.idempotency_key)
                .await
                .map(|info| info.id)
                .map_err(approvals_err)
        })
    }

    fn audit<'a>(&'a self, ev: &'a AuditEvent) -> BoxFut<'a, Result<String, ApprovalsError>> {
        Box::pin(async move {
            let record = AuditRecord {
                action: ev.action.as_str().to_string(),
                summary: Some(ev.summary.clone()),
                source: Some(AuditSource {
                    integration: INTEGRATION.to_string(),
                    workflow_id: None,
                }),
                actor: Some(AuditActor {
                    agent_id: ev.agent_id.clone(),
                }),
                resource: ev.microvm_id.as_ref().map(|id| AuditResource {
                    resource_type: RESOURCE_TYPE_MICROVM.to_string(),
                    id: id.clone(),
                    uri: None,
                }),
                outcome: Some(if ev.outcome == "success" {
                    Outcome::Success
                } else {
                    Outcome::Failure
                }),
                severity: Some(ev.severity.to_string()),
                correlation_id: ev.correlation_id.clone(),
                external_request_id: ev.external_request_id.clone(),
                in_reply_to: ev.in_reply_to.as_ref().map(|r| InReplyTo {
                    kind: match r {
                        ReplyTo::Request(_) => ReplyKind::Request,
                        ReplyTo::AuditRecord(_) => ReplyKind::AuditRecord,
                    },
                    id: r.id().to_string(),
                }),
                metadata: Some(ev.metadata.clone()),
            };
            self.0
                .create_audit_record(&record)
                .await
                .map_err(approvals_err)
        })
    }

    fn get_request<'a>(
        &'a self,
        request_id: &'a str,
    ) -> BoxFut<'a, Result<RequestStatus, ApprovalsError>> {
        Box::pin(async move {
            let info = self
                .0
                .get_request(request_id)
                .await
                .map_err(approvals_err)?;
            let obj = ["request", "data"]
                .iter()
                .find_map(|k| info.raw.get(k).filter(|v| v.get("id").is_some()))
                .unwrap_or(&info.raw);
            let text = |v: Option<&serde_json::Value>| {
                v.and_then(serde_json::Value::as_str).map(str::to_string)
            };
            let context = obj.get("metadata").and_then(|m| m.get("context"));
            Ok(RequestStatus {
                decision: info.decision().map(|d| match d {
                    Decision::Approved => Resolution::Approved,
                    Decision::Denied => Resolution::Denied,
                    Decision::Expired => Resolution::Expired,
                    Decision::Cancelled => Resolution::Cancelled,
                }),
                external_request_id: text(obj.get("external_request_id")),
                action_type: text(context.and_then(|c| c.get("action_type"))),
                microvm_id: text(context.and_then(|c| c.get("microvm_id"))),
                action_digest: text(context.and_then(|c| c.get("action_digest"))),
                state: info.state,
            })
        })
    }
}
