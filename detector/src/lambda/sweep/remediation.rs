//! Remediation: off by default. When on, it can never hurt the fleet:
//!
//! - only unmanaged MicroVMs older than the grace period are candidates
//!   (the grace period is at least the minimum age of an unmanaged finding,
//!   itself at least 60 s: a VM whose ledger write is in flight is never one);
//! - if the candidates exceed either cap — a count per sweep
//!   (`REMEDIATION_MAX_PER_SWEEP`) or a share of the MicroVMs listed
//!   (`REMEDIATION_MAX_FLEET_PERCENT`) — **nothing** is suspended or
//!   terminated and one `remediation-halted` alert gives the figures (a wrong
//!   or empty `LEDGER_TABLE` makes every MicroVM look unmanaged);
//! - `dry-run` acts on nothing and says what it would have done;
//! - every action, successful or not, is written as a Contro1 audit record
//!   and logged, and its outcome travels in the MicroVM's unmanaged alert.

use super::{SweepConfig, SweepError, SweepReport};
use crate::lambda::alert::{Alert, ListedMicrovm, utc_timestamp};
use crate::lambda::counters::Counters;
use crate::lambda::ports::{Auditor, LogSink, PortError, TargetPorts};
use contro1::types::{
    AuditActor, AuditRecord, AuditResource, AuditSource, INTEGRATION, Outcome as AuditOutcome,
    RESOURCE_TYPE_MICROVM,
};
use detector_core::Rule;
use serde_json::json;
use shared_core::Event;
use std::collections::HashMap;

/// What to do with an unmanaged MicroVM older than the grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remediation {
    Off,
    /// Report what `terminate` would do, do nothing.
    DryRun,
    Suspend,
    Terminate,
}

impl Remediation {
    pub fn parse(s: &str) -> Option<Remediation> {
        match s {
            "off" => Some(Remediation::Off),
            "dry-run" => Some(Remediation::DryRun),
            "suspend" => Some(Remediation::Suspend),
            "terminate" => Some(Remediation::Terminate),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Remediation::Off => "off",
            Remediation::DryRun => "dry-run",
            Remediation::Suspend => "suspend",
            Remediation::Terminate => "terminate",
        }
    }
}

/// The caps and timing of remediation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemediationLimits {
    /// Only MicroVMs started at least this long ago (seconds).
    pub grace_seconds: i64,
    /// At most this many actions in one sweep.
    pub max_per_sweep: u64,
    /// At most this share (percent) of the MicroVMs listed.
    pub max_fleet_percent: u64,
}

impl Default for RemediationLimits {
    fn default() -> Self {
        RemediationLimits {
            grace_seconds: 900,
            max_per_sweep: 10,
            max_fleet_percent: 20,
        }
    }
}

/// What remediation did (or would do) per MicroVM, and the halted alert
/// when a cap stopped it.
#[derive(Debug, Default)]
pub(super) struct Outcomes {
    /// MicroVM id → what happened to it, in words (for its unmanaged alert).
    pub per_vm: HashMap<String, String>,
    pub halted: Option<Alert>,
    pub error: Option<SweepError>,
}

fn already(remediation: Remediation, state: &str) -> bool {
    match remediation {
        Remediation::Suspend => matches!(state, "SUSPENDING" | "SUSPENDED" | "TERMINATING"),
        _ => state == "TERMINATING",
    }
}

/// Decide and act on the unmanaged MicroVMs of `report`.
pub(super) async fn remediate(
    target: &TargetPorts,
    auditor: &dyn Auditor,
    cfg: &SweepConfig,
    report: &mut SweepReport,
    now: i64,
    log: &dyn LogSink,
    counters: &mut Counters,
) -> Outcomes {
    let mut out = Outcomes::default();
    if cfg.remediation == Remediation::Off {
        return out;
    }
    let limits = cfg.limits;
    let mut candidates: Vec<&ListedMicrovm> = Vec::new();
    for vm in &report.unmanaged {
        if already(cfg.remediation, &vm.state) {
            out.per_vm
                .insert(vm.microvm_id.clone(), format!("none: already {}", vm.state));
        } else if vm
            .started_at
            .is_some_and(|t| now - t >= limits.grace_seconds)
        {
            candidates.push(vm);
        } else {
            out.per_vm.insert(
                vm.microvm_id.clone(),
                format!(
                    "not yet: {} after {} s unmanaged (REMEDIATION_GRACE_SECONDS)",
                    cfg.remediation.as_str(),
                    limits.grace_seconds
                ),
            );
        }
    }
    if candidates.is_empty() {
        return out;
    }
    let n = candidates.len() as u64;
    let listed = counters.microvms_active.max(1);
    let share = n * 100 / listed;
    let over_count = n > limits.max_per_sweep;
    let over_share = n * 100 > listed * limits.max_fleet_percent;
    if over_count || over_share {
        counters.remediations_halted += n;
        let reason = format!(
            "remediation halted: {} would have {} {n} of {listed} active MicroVMs ({share}%), above the limit of {} per sweep (REMEDIATION_MAX_PER_SWEEP) {} {}% of the fleet (REMEDIATION_MAX_FLEET_PERCENT); nothing was suspended or terminated. Check that LEDGER_TABLE is the launcher's ledger before acting by hand.",
            cfg.remediation.as_str(),
            if cfg.remediation == Remediation::Suspend {
                "suspended"
            } else {
                "terminated"
            },
            limits.max_per_sweep,
            if over_count && over_share {
                "and"
            } else {
                "or"
            },
            limits.max_fleet_percent,
        );
        log.line(&json!({"log": "remediation-halted", "level": "ERROR", "reason": reason}));
        out.halted = Some(Alert::degraded(Rule::RemediationHalted, &reason, now, None));
        for vm in candidates {
            out.per_vm.insert(
                vm.microvm_id.clone(),
                "halted: remediation stopped by its limits (see the remediation-halted alert)"
                    .into(),
            );
        }
        return out;
    }
    if cfg.remediation == Remediation::DryRun {
        for vm in candidates {
            log.line(&json!({"log": "remediation", "dry_run": true,
                             "would": "terminate", "microvm_id": vm.microvm_id}));
            counters.remediations_dry_run += 1;
            out.per_vm.insert(
                vm.microvm_id.clone(),
                "dry run: would terminate (REMEDIATION=dry-run)".into(),
            );
        }
        return out;
    }
    let mut failures = 0u64;
    let mut first_failure = None;
    for vm in candidates {
        let result = match cfg.remediation {
            Remediation::Suspend => target.microvms.suspend(&vm.microvm_id).await,
            _ => target.microvms.terminate(&vm.microvm_id).await,
        };
        let (event, verb) = match cfg.remediation {
            Remediation::Suspend => (Event::SuspendRequested, "suspended"),
            _ => (Event::TerminateRequested, "terminated"),
        };
        let record = remediation_audit(vm, cfg, event, result.as_ref().err(), now);
        log.line(&json!({"log": "remediation", "audit": record}));
        match &result {
            Ok(()) => {
                counters.remediations += 1;
                report.remediated.push(vm.microvm_id.clone());
                out.per_vm.insert(
                    vm.microvm_id.clone(),
                    format!("{verb} by the detector at {}", utc_timestamp(now)),
                );
            }
            Err(e) => {
                counters.remediation_failures += 1;
                failures += 1;
                first_failure.get_or_insert_with(|| e.to_string());
                out.per_vm
                    .insert(vm.microvm_id.clone(), format!("failed to be {verb}: {e}"));
            }
        }
        if let Err(source) = auditor.audit(&record).await {
            out.error.get_or_insert(SweepError::Audit {
                microvm_id: vm.microvm_id.clone(),
                source,
            });
        }
    }
    if failures > 0 {
        out.error.get_or_insert(SweepError::Remediation {
            failures,
            first: first_failure.unwrap_or_default(),
        });
    }
    out
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
            cfg.limits.grace_seconds
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
            "grace_seconds": cfg.limits.grace_seconds,
            "state": vm.state,
            "image_arn": vm.image_arn,
            "started_at": vm.started_at.map(utc_timestamp),
            "at": utc_timestamp(now),
            "error": error.map(ToString::to_string),
        })),
    }
}
