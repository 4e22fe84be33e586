//! The ports of `launcher-core` implemented over the real services: the
//! ledger (`shared_aws::DynamoLedger`), the MicroVMs API
//! (`aws-sdk-lambdamicrovms`) and Contro1 (the `contro1` client).

use aws_sdk_lambdamicrovms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambdamicrovms::operation::RequestId;
use aws_sdk_lambdamicrovms::types::{PortRange, PortSpecification};
use contro1::types::{
    AuditActor, AuditResource, AuditSource, INTEGRATION, InReplyTo, Outcome, PolicyContext,
    RESOURCE_TYPE_MICROVM, ReplyKind, RequestType,
};
use contro1::{AuditRecord, Contro1Client, Contro1Error, CreateRequest};
use launcher_core::RiskLevel;
use launcher_core::ports::{
    ApprovalRequest, Approvals, ApprovalsError, AuditEvent, BoxFut, Ledger, LedgerError,
    LifecycleOutput, MicrovmApi, MicrovmError, ReplyTo, RunCall, RunOutput, Secret, TokenOutput,
};
use launcher_core::request::{Lifecycle, NetworkEgress, PortSpec, Ports};
use shared_core::LedgerEntry;

/// The ledger port over the shared DynamoDB ledger.
#[derive(Debug, Clone)]
pub struct LedgerAdapter(pub shared_aws::DynamoLedger);

impl Ledger for LedgerAdapter {
    fn record<'a>(&'a self, entry: &'a LedgerEntry) -> BoxFut<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            self.0.record(entry).await.map_err(|e| LedgerError {
                message: e.to_string(),
            })
        })
    }

    fn microvm<'a>(
        &'a self,
        microvm_id: &'a str,
    ) -> BoxFut<'a, Result<Option<LedgerEntry>, LedgerError>> {
        Box::pin(async move {
            self.0.microvm(microvm_id).await.map_err(|e| LedgerError {
                message: e.to_string(),
            })
        })
    }
}

/// Network connectors used for RunMicrovm.
#[derive(Debug, Clone, Default)]
pub struct Connectors {
    /// For `network_egress = "vpc"`.
    pub vpc_egress_arn: Option<String>,
    /// For `network_egress = "private"`.
    pub private_egress_arn: Option<String>,
}

/// The MicroVMs API over the real SDK client.
#[derive(Debug, Clone)]
pub struct SdkMicrovms {
    client: aws_sdk_lambdamicrovms::Client,
    region: String,
    connectors: Connectors,
}

fn aws_connector(region: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:aws:network-connector:aws-network-connector:{name}")
}

fn map_err<E, R>(operation: &'static str, e: &SdkError<E, R>) -> MicrovmError
where
    E: ProvideErrorMetadata + RequestId + std::error::Error + 'static,
    R: std::fmt::Debug,
    SdkError<E, R>: RequestId,
{
    let aws_request_id = e.request_id().map(str::to_string);
    match e {
        SdkError::ServiceError(se) => MicrovmError::Rejected {
            operation,
            code: se.err().code().unwrap_or("Unknown").to_string(),
            message: se.err().message().unwrap_or("").to_string(),
            aws_request_id,
        },
        _ => MicrovmError::Unavailable {
            operation,
            message: aws_sdk_lambdamicrovms::error::DisplayErrorContext(e).to_string(),
            aws_request_id,
        },
    }
}

fn ports_spec(ports: &Ports) -> Vec<PortSpecification> {
    match ports {
        Ports::All(_) => vec![PortSpecification::AllPorts],
        Ports::Listed(list) => list
            .iter()
            .filter_map(|p| match *p {
                PortSpec::Port(p) => Some(PortSpecification::Port(i32::from(p))),
                PortSpec::Range { start, end } => PortRange::builder()
                    .start_port(i32::from(start))
                    .end_port(i32::from(end))
                    .build()
                    .ok()
                    .map(PortSpecification::Range),
            })
            .collect(),
    }
}

fn token_value(map: &std::collections::HashMap<String, String>) -> Option<Secret> {
    map.get("X-aws-proxy-auth")
        .or_else(|| map.values().next())
        .map(|v| Secret::new(v.clone()))
}

impl SdkMicrovms {
    pub fn new(
        client: aws_sdk_lambdamicrovms::Client,
        region: impl Into<String>,
        connectors: Connectors,
    ) -> Self {
        SdkMicrovms {
            client,
            region: region.into(),
            connectors,
        }
    }
}

impl MicrovmApi for SdkMicrovms {
    fn run<'a>(&'a self, call: &'a RunCall) -> BoxFut<'a, Result<RunOutput, MicrovmError>> {
        Box::pin(async move {
            const OP: &str = "RunMicrovm";
            let egress = match call.network_egress {
                NetworkEgress::None => None,
                NetworkEgress::Internet => Some(aws_connector(&self.region, "INTERNET_EGRESS")),
                NetworkEgress::Vpc => Some(self.connectors.vpc_egress_arn.clone().ok_or_else(
                    || MicrovmError::Rejected {
                        operation: OP,
                        code: "LauncherConfiguration".into(),
                        message: "no VPC egress connector configured (MICROVM_VPC_EGRESS_CONNECTOR_ARN)".into(),
                        aws_request_id: None,
                    },
                )?),
                NetworkEgress::Private => Some(
                    self.connectors.private_egress_arn.clone().ok_or_else(|| {
                        MicrovmError::Rejected {
                            operation: OP,
                            code: "LauncherConfiguration".into(),
                            message: "no private egress connector configured (MICROVM_PRIVATE_EGRESS_CONNECTOR_ARN)".into(),
                            aws_request_id: None,
                        }
                    })?,
                ),
            };
            let mut req = self
                .client
                .run_microvm()
                .client_token(&call.client_token)
                .image_identifier(&call.image_arn)
                .set_image_version(call.image_version.clone())
                .execution_role_arn(&call.execution_role_arn)
                .maximum_duration_in_seconds(
                    i32::try_from(call.max_duration_seconds).unwrap_or(i32::MAX),
                )
                .run_hook_payload(&call.run_hook_payload)
                .ingress_network_connectors(aws_connector(&self.region, "HTTP_INGRESS"));
            if call.shell_access {
                req = req.ingress_network_connectors(aws_connector(&self.region, "SHELL_INGRESS"));
            }
            if let Some(e) = egress {
                req = req.egress_network_connectors(e);
            }
            let out = req.send().await.map_err(|e| map_err(OP, &e))?;
            Ok(RunOutput {
                microvm_id: out.microvm_id().to_string(),
                state: out.state().as_str().to_string(),
                endpoint: Some(out.endpoint().to_string()).filter(|e| !e.is_empty()),
                aws_request_id: out.request_id().map(str::to_string),
            })
        })
    }

    fn auth_token<'a>(
        &'a self,
        microvm_id: &'a str,
        ports: &'a Ports,
        expiration_minutes: u32,
    ) -> BoxFut<'a, Result<TokenOutput, MicrovmError>> {
        Box::pin(async move {
            const OP: &str = "CreateMicrovmAuthToken";
            let out = self
                .client
                .create_microvm_auth_token()
                .microvm_identifier(microvm_id)
                .expiration_in_minutes(i32::try_from(expiration_minutes).unwrap_or(i32::MAX))
                .set_allowed_ports(Some(ports_spec(ports)))
                .send()
                .await
                .map_err(|e| map_err(OP, &e))?;
            let aws_request_id = out.request_id().map(str::to_string);
            let token = token_value(out.auth_token()).ok_or(MicrovmError::Rejected {
                operation: OP,
                code: "EmptyToken".into(),
                message: "the answer carried no token".into(),
                aws_request_id: aws_request_id.clone(),
            })?;
            Ok(TokenOutput {
                token,
                aws_request_id,
            })
        })
    }

    fn shell_token<'a>(
        &'a self,
        microvm_id: &'a str,
        expiration_minutes: u32,
    ) -> BoxFut<'a, Result<TokenOutput, MicrovmError>> {
        Box::pin(async move {
            const OP: &str = "CreateMicrovmShellAuthToken";
            let out = self
                .client
                .create_microvm_shell_auth_token()
                .microvm_identifier(microvm_id)
                .expiration_in_minutes(i32::try_from(expiration_minutes).unwrap_or(i32::MAX))
                .send()
                .await
                .map_err(|e| map_err(OP, &e))?;
            let aws_request_id = out.request_id().map(str::to_string);
            let token = token_value(out.auth_token()).ok_or(MicrovmError::Rejected {
                operation: OP,
                code: "EmptyToken".into(),
                message: "the answer carried no token".into(),
                aws_request_id: aws_request_id.clone(),
            })?;
            Ok(TokenOutput {
                token,
                aws_request_id,
            })
        })
    }

    fn lifecycle<'a>(
        &'a self,
        microvm_id: &'a str,
        op: Lifecycle,
    ) -> BoxFut<'a, Result<LifecycleOutput, MicrovmError>> {
        Box::pin(async move {
            let aws_request_id = match op {
                Lifecycle::Suspend => self
                    .client
                    .suspend_microvm()
                    .microvm_identifier(microvm_id)
                    .send()
                    .await
                    .map_err(|e| map_err("SuspendMicrovm", &e))?
                    .request_id()
                    .map(str::to_string),
                Lifecycle::Resume => self
                    .client
                    .resume_microvm()
                    .microvm_identifier(microvm_id)
                    .send()
                    .await
                    .map_err(|e| map_err("ResumeMicrovm", &e))?
                    .request_id()
                    .map(str::to_string),
                Lifecycle::Terminate => self
                    .client
                    .terminate_microvm()
                    .microvm_identifier(microvm_id)
                    .send()
                    .await
                    .map_err(|e| map_err("TerminateMicrovm", &e))?
                    .request_id()
                    .map(str::to_string),
            };
            Ok(LifecycleOutput {
                state: None,
                aws_request_id,
            })
        })
    }
}

/// Contro1 over the shared client.
#[derive(Debug, Clone)]
pub struct Contro1Approvals(pub Contro1Client);

fn approvals_err(e: Contro1Error) -> ApprovalsError {
    match e {
        Contro1Error::Rejected {
            status, message, ..
        } => ApprovalsError::Rejected { status, message },
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
}
