//! Remediation: off by default; when on, only unmanaged MicroVMs older than
//! the grace period are suspended or terminated, and every action, successful
//! or not, is written as a Contro1 audit record and logged.

use super::{SweepConfig, SweepError, SweepPorts, SweepReport};
use crate::lambda::alert::{ListedMicrovm, utc_timestamp};
use crate::lambda::counters::Counters;
use crate::lambda::ports::{LogSink, PortError};
use contro1::types::{
    AuditActor, AuditRecord, AuditResource, AuditSource, INTEGRATION, Outcome as AuditOutcome,
    RESOURCE_TYPE_MICROVM,
};
use serde_json::json;
use shared_core::Event;

/// What to do with an unmanaged MicroVM older than the grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remediation {
    Off,
    Suspend,
    Terminate,
}

impl Remediation {
    pub fn parse(s: &str) -> Option<Remediation> {
        match s {
            "off" => Some(Remediation::Off),
            "suspend" => Some(Remediation::Suspend),
            "terminate" => Some(Remediation::Terminate),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Remediation::Off => "off",
            Remediation::Suspend => "suspend",
            Remediation::Terminate => "terminate",
        }
    }
}

/// Act on the unmanaged MicroVMs of `report`, as configured. Returns the
/// first error (an action or its audit failed) after trying every one.
pub(super) async fn remediate(
    ports: &SweepPorts<'_>,
    cfg: &SweepConfig,
    report: &mut SweepReport,
    now: i64,
    log: &dyn LogSink,
    counters: &mut Counters,
) -> Option<SweepError> {
    if cfg.remediation == Remediation::Off {
        return None;
    }
    let mut first_error: Option<SweepError> = None;
    let mut failures = 0u64;
    let mut first_failure = None;
    for vm in &report.unmanaged {
        let old_enough = vm.started_at.is_some_and(|t| now - t >= cfg.grace_seconds);
        let already = match cfg.remediation {
            Remediation::Suspend => {
                matches!(
                    vm.state.as_str(),
                    "SUSPENDING" | "SUSPENDED" | "TERMINATING"
                )
            }
            _ => vm.state == "TERMINATING",
        };
        if !old_enough || already {
            continue;
        }
        let result = match cfg.remediation {
            Remediation::Suspend => ports.microvms.suspend(&vm.microvm_id).await,
            Remediation::Terminate => ports.microvms.terminate(&vm.microvm_id).await,
            Remediation::Off => Ok(()),
        };
        let (event, outcome) = match cfg.remediation {
            Remediation::Suspend => (Event::SuspendRequested, result.is_ok()),
            _ => (Event::TerminateRequested, result.is_ok()),
        };
        let record = remediation_audit(vm, cfg, event, result.as_ref().err(), now);
        log.line(&json!({"log": "remediation", "audit": record}));
        if outcome {
            counters.remediations += 1;
            report.remediated.push(vm.microvm_id.clone());
        } else {
            counters.remediation_failures += 1;
            failures += 1;
            if first_failure.is_none() {
                first_failure = result.err().map(|e| e.to_string());
            }
        }
        if let Err(source) = ports.auditor.audit(&record).await {
            first_error.get_or_insert(SweepError::Audit {
                microvm_id: vm.microvm_id.clone(),
                source,
            });
        }
    }
    if failures > 0 {
        first_error.get_or_insert(SweepError::Remediation {
            failures,
            first: first_failure.unwrap_or_default(),
        });
    }
    first_error
}

/// The Contro1 audit record of one remediation action.
fn remediation_audit(
    vm: &ListedMicrovm,
    cfg: &SweepConfig,
    event: Event,
    error: Option<&PortError>,
    now: i64,
) -> AuditRecord {
    AuditRecord {
        action: event.as_str().to_string(),
        summary: Some(format!(
            "Detector {} unmanaged MicroVM {} (not in the launcher ledger, older than {} s)",
            match cfg.remediation {
                Remediation::Suspend => "suspended",
                _ => "terminated",
            },
            vm.microvm_id,
            cfg.grace_seconds
        )),
        source: Some(AuditSource {
            integration: INTEGRATION.to_string(),
            workflow_id: Some("detector-remediation".to_string()),
        }),
        actor: Some(AuditActor {
            agent_id: "microvm-detector".to_string(),
        }),
        resource: Some(AuditResource {
            resource_type: RESOURCE_TYPE_MICROVM.to_string(),
            id: vm.microvm_id.clone(),
            uri: None,
        }),
        outcome: Some(if error.is_none() {
            AuditOutcome::Success
        } else {
            AuditOutcome::Failure
        }),
        severity: Some("warning".to_string()),
        correlation_id: None,
        external_request_id: Some(format!(
            "remediate#{}#{}",
            vm.microvm_id,
            cfg.remediation.as_str()
        )),
        in_reply_to: None,
        metadata: Some(json!({
            "remediation": cfg.remediation.as_str(),
            "grace_seconds": cfg.grace_seconds,
            "state": vm.state,
            "image_arn": vm.image_arn,
            "started_at": vm.started_at.map(utc_timestamp),
            "at": utc_timestamp(now),
            "error": error.map(ToString::to_string),
        })),
    }
}
