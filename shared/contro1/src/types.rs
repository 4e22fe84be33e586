//! Wire types of the Contro1 API (reference/contro1-api.md): the body of
//! `POST /requests`, the body of `POST /audit-records`, and what `GET
//! /requests/{id}` answers. They live apart from the client so the stand-in
//! validates and stores exactly what the client sends.
//!
//! Optional fields are `None` by default and are left out of the JSON, so a
//! caller writes `CreateRequest { question: Some(..), ..Default::default() }`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared_core::webhook::{Callback, Decision};

/// `source.integration` value for everything this project sends.
pub const INTEGRATION: &str = "aws-lambda-microvms";
/// `resource.type` of a MicroVM in an audit record.
pub const RESOURCE_TYPE_MICROVM: &str = "aws.lambda.microvm";

/// Every request state Contro1 documents.
pub const ALL_STATES: &[&str] = &[
    "created",
    "validated",
    "queued",
    "assigned",
    "viewed",
    "answered",
    "callback_pending",
    "callback_delivered",
    "callback_failed",
    "closed",
    "broadcasted",
    "escalated",
    "reassigned",
    "expired",
    "cancelled",
];

/// States after which a request no longer changes its decision.
pub const TERMINAL_STATES: &[&str] = &[
    "answered",
    "callback_pending",
    "callback_delivered",
    "callback_failed",
    "closed",
    "expired",
    "cancelled",
];

/// Terminal states that mean "a human answered" (the decision is in `response`).
const ANSWERED_STATES: &[&str] = &[
    "answered",
    "callback_pending",
    "callback_delivered",
    "callback_failed",
    "closed",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestType {
    Approval,
    YesNo,
    FreeText,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Normal,
    Urgent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    Single,
    AllOf,
    AnyOf,
    Threshold,
}

/// `approval_policy` of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<ApprovalMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_approvals: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_roles: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub separation_of_duties: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_closed_on_timeout: Option<bool>,
}

/// `policy_context` of a request: which policy rule asked for the review.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<String>,
}

/// Body of `POST /requests`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateRequest {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub request_type: Option<RequestType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sla_minutes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_policy: Option<ApprovalPolicy>,
    /// Returned unchanged in the callback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// One action's idempotency key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_request_id: Option<String>,
    /// The case grouping several requests and audit records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_level: Option<RiskLevel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_trigger: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_context: Option<PolicyContext>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_comment_required: Option<bool>,
}

/// `source` of an audit record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSource {
    /// Normally [`INTEGRATION`].
    pub integration: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
}

/// `actor` of an audit record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditActor {
    pub agent_id: String,
}

/// `resource` of an audit record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditResource {
    /// Normally [`RESOURCE_TYPE_MICROVM`].
    #[serde(rename = "type")]
    pub resource_type: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyKind {
    Request,
    AuditRecord,
}

/// `in_reply_to` of an audit record: the request or record it follows up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InReplyTo {
    #[serde(rename = "type")]
    pub kind: ReplyKind,
    pub id: String,
}

/// Body of `POST /audit-records`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// A taxonomy event name, e.g. `aws.microvm.bypass.detected`.
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<AuditSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<AuditActor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<AuditResource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// `info`, `warning`, ... (the full list is not public, so kept as text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<InReplyTo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// A request as Contro1 reports it (`POST /requests`, `GET /requests/{id}`).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestInfo {
    pub id: String,
    pub state: String,
    pub response: Option<Value>,
    /// The whole JSON object as received.
    pub raw: Value,
}

impl RequestInfo {
    /// Reads a response body defensively: the request object may be at the
    /// top level or wrapped under `request` or `data`. `id` and `state` must
    /// be strings.
    pub fn from_json(raw: Value) -> Result<Self, String> {
        let obj = ["request", "data"]
            .iter()
            .find_map(|k| raw.get(k).filter(|v| v.get("id").is_some()))
            .unwrap_or(&raw);
        let id = obj
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or("response has no string `id`")?
            .to_owned();
        let state = obj
            .get("state")
            .and_then(Value::as_str)
            .ok_or("response has no string `state`")?
            .to_owned();
        let response = obj.get("response").filter(|v| !v.is_null()).cloned();
        Ok(RequestInfo {
            id,
            state,
            response,
            raw,
        })
    }

    /// Whether the state is one of [`TERMINAL_STATES`].
    pub fn is_terminal(&self) -> bool {
        TERMINAL_STATES.contains(&self.state.as_str())
    }

    /// The decision, once terminal, read with the same defensive rules as a
    /// callback ([`Callback::decision`]); `None` while still pending. The
    /// answered-family states (`callback_delivered`, `closed`, ...) are read
    /// as `answered`.
    pub fn decision(&self) -> Option<Decision> {
        if !self.is_terminal() {
            return None;
        }
        let state = if ANSWERED_STATES.contains(&self.state.as_str()) {
            "answered"
        } else {
            self.state.as_str()
        };
        let obj = ["request", "data"]
            .iter()
            .find_map(|k| self.raw.get(k).filter(|v| v.get("id").is_some()))
            .unwrap_or(&self.raw);
        let cb = Callback {
            request_id: self.id.clone(),
            state: state.to_owned(),
            response: self.response.clone(),
            responded_by: None,
            responded_at: None,
            metadata: None,
            status: obj.get("status").and_then(Value::as_str).map(str::to_owned),
        };
        Some(cb.decision())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn create_request_leaves_out_unset_fields_and_renames_type() {
        let r = CreateRequest {
            request_type: Some(RequestType::YesNo),
            question: Some("Run it?".into()),
            risk_level: Some(RiskLevel::High),
            approval_policy: Some(ApprovalPolicy {
                mode: Some(ApprovalMode::AllOf),
                required_approvals: Some(2),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"type": "yes_no", "question": "Run it?", "risk_level": "high",
                   "approval_policy": {"mode": "all_of", "required_approvals": 2}})
        );
    }

    #[test]
    fn audit_record_serialises_nested_objects_with_wire_names() {
        let a = AuditRecord {
            action: "aws.microvm.bypass.detected".into(),
            source: Some(AuditSource {
                integration: INTEGRATION.into(),
                workflow_id: None,
            }),
            resource: Some(AuditResource {
                resource_type: RESOURCE_TYPE_MICROVM.into(),
                id: "mvm-1".into(),
                uri: None,
            }),
            outcome: Some(Outcome::Failure),
            in_reply_to: Some(InReplyTo {
                kind: ReplyKind::AuditRecord,
                id: "aud_1".into(),
            }),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"action": "aws.microvm.bypass.detected",
                   "source": {"integration": "aws-lambda-microvms"},
                   "resource": {"type": "aws.lambda.microvm", "id": "mvm-1"},
                   "outcome": "failure",
                   "in_reply_to": {"type": "audit_record", "id": "aud_1"}})
        );
    }

    #[test]
    fn request_info_reads_top_level_and_wrapped_shapes() {
        let top = RequestInfo::from_json(json!({"id": "r1", "state": "queued"})).unwrap();
        assert_eq!((top.id.as_str(), top.state.as_str()), ("r1", "queued"));
        let wrapped = RequestInfo::from_json(
            json!({"data": {"id": "r2", "state": "answered", "response": {"approved": true}}}),
        )
        .unwrap();
        assert_eq!(wrapped.id, "r2");
        assert_eq!(wrapped.response, Some(json!({"approved": true})));
    }

    #[test]
    fn request_info_without_id_or_state_is_an_error_naming_the_field() {
        assert!(
            RequestInfo::from_json(json!({"state": "queued"}))
                .unwrap_err()
                .contains("`id`")
        );
        assert!(
            RequestInfo::from_json(json!({"id": "r"}))
                .unwrap_err()
                .contains("`state`")
        );
        assert!(RequestInfo::from_json(json!({"id": 7, "state": "queued"})).is_err());
    }

    #[test]
    fn terminal_states_are_exactly_the_documented_seven() {
        let terminal: Vec<&str> = ALL_STATES
            .iter()
            .copied()
            .filter(|s| {
                RequestInfo::from_json(json!({"id": "r", "state": s}))
                    .unwrap()
                    .is_terminal()
            })
            .collect();
        assert_eq!(
            terminal,
            [
                "answered",
                "callback_pending",
                "callback_delivered",
                "callback_failed",
                "closed",
                "expired",
                "cancelled"
            ]
        );
    }

    #[test]
    fn pending_request_has_no_decision_and_delivered_approval_is_approved() {
        let pending = RequestInfo::from_json(
            json!({"id": "r", "state": "assigned", "response": {"approved": true}}),
        )
        .unwrap();
        assert_eq!(pending.decision(), None);
        let delivered = RequestInfo::from_json(
            json!({"id": "r", "state": "callback_delivered", "response": {"decision": "approved"}}),
        )
        .unwrap();
        assert_eq!(delivered.decision(), Some(Decision::Approved));
        let expired = RequestInfo::from_json(json!({"id": "r", "state": "expired"})).unwrap();
        assert_eq!(expired.decision(), Some(Decision::Expired));
        let denied = RequestInfo::from_json(
            json!({"id": "r", "state": "closed", "response": {"approved": false}}),
        )
        .unwrap();
        assert_eq!(denied.decision(), Some(Decision::Denied));
    }
}
