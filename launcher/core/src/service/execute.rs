//! The AWS call for an approved action, with the **stored** input, and its
//! ledger items: one `call#` per attempt the SDK made, and `vm#` for a
//! MicroVM started.

use super::{Service, ServiceError};
use crate::ports::{ExecResult, LedgerError, MicrovmError, RunCall, Secret};
use crate::request::Action;
use shared_core::LedgerEntry;

/// RunMicrovm's `runHookPayload` limit enforced in practice.
pub const MAX_RUN_HOOK_PAYLOAD_BYTES: usize = 4096;

/// How an execution ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// AWS answered and the ledger holds the call.
    Done {
        result: ExecResult,
        token: Option<Secret>,
    },
    /// AWS refused or failed the call (recorded as failed in the ledger,
    /// when the ledger could be written).
    Failed(MicrovmError),
    /// AWS answered but the ledger could not be written: the item stays
    /// `executing` with the result kept for the reconciler; a token is
    /// withheld (never stored).
    Unrecorded {
        result: ExecResult,
        error: LedgerError,
    },
}

impl Service {
    /// Make the AWS call of `action` for `contro1_request_id` and record it.
    /// `target` is the ledger's `vm#` item of the target MicroVM, if any.
    pub(super) async fn execute(
        &self,
        contro1_request_id: &str,
        agent_id: &str,
        action: &Action,
        target: Option<&LedgerEntry>,
    ) -> Result<Outcome, ServiceError> {
        let c = action.common();
        let owner = action.owner().unwrap_or_default().to_string();
        let op = action.op();
        let mut entry = LedgerEntry {
            contro1_request_id: contro1_request_id.to_string(),
            operation: op.as_str().to_string(),
            microvm_id: action.target().map(str::to_string),
            aws_request_id: None,
            agent_id: agent_id.to_string(),
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
        let mut attempts: Vec<String> = Vec::new();
        let outcome: Result<Option<Secret>, MicrovmError> = match action {
            Action::Run(r) => {
                entry.image_arn = Some(r.image_arn.clone());
                entry.execution_role_arn = Some(r.execution_role_arn.clone());
                let call = self.run_call(contro1_request_id, agent_id, action)?;
                api.run(&call).await.map(|out| {
                    entry.microvm_id = Some(out.microvm_id.clone());
                    entry.aws_request_id = out.aws_request_id.clone();
                    attempts = out.attempt_request_ids;
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
                        attempts = out.attempt_request_ids;
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
                    attempts = out.attempt_request_ids;
                    result.aws_request_id = out.aws_request_id;
                    result.token_expires_in_minutes = Some(minutes);
                    Some(out.token)
                })
            }
            Action::Lifecycle { microvm_id, op, .. } => {
                api.lifecycle(microvm_id, *op).await.map(|out| {
                    entry.aws_request_id = out.aws_request_id.clone();
                    attempts = out.attempt_request_ids;
                    result.aws_request_id = out.aws_request_id;
                    result.state = out.state;
                    None
                })
            }
        };
        result.attempt_request_ids.clone_from(&attempts);
        match outcome {
            Ok(token) => match self.ports.ledger.record(&entry, &attempts).await {
                Ok(()) => Ok(Outcome::Done { result, token }),
                Err(error) => {
                    tracing::error!(
                        target: "audit",
                        operation = op.as_str(),
                        contro1_request_id,
                        aws_request_id = entry.aws_request_id.as_deref(),
                        microvm_id = entry.microvm_id.as_deref(),
                        error = %error,
                        "governed call succeeded but was not recorded in the ledger; left to the reconciler"
                    );
                    if let Err(e) = self
                        .ports
                        .store
                        .save_result(contro1_request_id, &result)
                        .await
                    {
                        tracing::error!(target: "audit", contro1_request_id, error = %e, "result of an unrecorded call not kept either; the reconciler will ask AWS again");
                    }
                    Ok(Outcome::Unrecorded { result, error })
                }
            },
            Err(e) => {
                entry.outcome = "failed".to_string();
                entry.aws_request_id = e.aws_request_id().map(str::to_string);
                if let Err(le) = self
                    .ports
                    .ledger
                    .record(&entry, e.attempt_request_ids())
                    .await
                {
                    tracing::error!(target: "audit", operation = op.as_str(), error = %le, "failed governed call not recorded in the ledger");
                }
                Ok(Outcome::Failed(e))
            }
        }
    }

    /// RunMicrovm for a stored run action: `clientToken` = the
    /// contro1_request_id, so issuing it again can never start a second VM.
    pub(super) fn run_call(
        &self,
        contro1_request_id: &str,
        agent_id: &str,
        action: &Action,
    ) -> Result<RunCall, ServiceError> {
        let Action::Run(r) = action else {
            return Err(ServiceError::Internal(
                "run_call for a non-run action".into(),
            ));
        };
        let owner = action.owner().unwrap_or_default();
        Ok(RunCall {
            client_token: contro1_request_id.to_string(),
            image_arn: r.image_arn.clone(),
            image_version: r.image_version.clone(),
            execution_role_arn: r.execution_role_arn.clone(),
            max_duration_seconds: r.duration_seconds,
            network_egress: r.network_egress,
            shell_access: r.shell_access,
            run_hook_payload: run_hook_payload(
                contro1_request_id,
                agent_id,
                owner,
                r.correlation_id.as_deref(),
            )?,
        })
    }
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
