//! The sweep: the detector layer that does not depend on CloudTrail.
//!
//! For each target — an account and region; by default the detector's own,
//! or a list, the organization's accounts and the enabled regions —
//! concurrently (when there are several, a target whose role cannot be
//! assumed or whose MicroVMs cannot be listed raises
//! `sweep-target-unavailable` naming it and never stops the others; a lone
//! target's failure fails the invocation):
//!
//! 1. [`listing`]: every page of `ListMicrovms`, each non-terminated MicroVM
//!    joined against that account's ledger (twice, the second read closing
//!    the window in which the launcher has started a VM but not yet written
//!    its ledger item); a MicroVM missing from it is
//!    `aws.microvm.unmanaged.detected`.
//! 2. [`remediation`]: optional suspend/terminate of those MicroVMs.
//!
//! Then, once: [`checks`]: trail health, the governance functions against
//! their recorded baseline, and the heartbeat. When the targets are too many
//! for one invocation, the schedule hands them out one SQS message each
//! (see `handler`), and each message sweeps one target with
//! [`sweep_target`].
//!
//! The first error is returned at the end so the invocation fails (and the
//! alarm on errors fires) when nothing could be swept or an alert could not
//! be delivered. A completed sweep is counted in `sweeps_completed` (the
//! metric the "sweep did not run" alarm watches).

mod checks;
mod listing;
mod remediation;

pub use checks::drift_alert;
pub use listing::PAGE_SIZE;
pub use remediation::{Remediation, RemediationLimits};

use super::alert::{Alert, ListedMicrovm};
use super::alert_batch::AlertBatch;
use super::alerter::AlertError;
use super::counters::Counters;
use super::ports::{
    Auditor, FunctionsApi, HeartbeatStore, PortError, SweepQueue, Target, TargetsApi, TrailsApi,
};
use super::trail;
use detector_core::Rule;
use futures::StreamExt;

/// Which accounts the sweep covers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Accounts {
    /// The detector's own account.
    #[default]
    Own,
    List(Vec<String>),
    /// Every active account of the organization (Organizations `ListAccounts`).
    Organization,
}

/// Which regions the sweep covers in each account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Regions {
    /// The detector's own region.
    #[default]
    Own,
    List(Vec<String>),
    /// The regions enabled for the detector's account.
    Enabled,
}

#[derive(Debug, Clone)]
pub struct SweepConfig {
    pub remediation: Remediation,
    pub limits: RemediationLimits,
    /// A MicroVM younger than this (seconds) is not reported as unmanaged
    /// yet (`UNMANAGED_MIN_AGE_SECONDS`, at least 60).
    pub min_age_seconds: i64,
    /// Concurrent ledger reads and alert deliveries.
    pub concurrency: usize,
    /// Check trail health in the same run.
    pub check_trails: bool,
    /// What a covering trail must be (names, bucket, region).
    pub trails: trail::TrailExpectations,
    /// The detector's own account and region (the default target).
    pub account_id: Option<String>,
    pub region: Option<String>,
    /// The SSM parameter holding the integrity baseline; no integrity check
    /// when unset.
    pub integrity_parameter: Option<String>,
    /// Longest time without a CloudTrail log object read before detection is
    /// degraded; no heartbeat check when unset.
    pub heartbeat_max_silence: Option<i64>,
    /// The accounts and regions swept (`SWEEP_ACCOUNTS`, `SWEEP_REGIONS`).
    pub accounts: Accounts,
    pub regions: Regions,
    /// Targets swept at once in one invocation.
    pub target_concurrency: usize,
}

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig {
            remediation: Remediation::Off,
            limits: RemediationLimits::default(),
            min_age_seconds: 300,
            concurrency: 8,
            check_trails: true,
            trails: trail::TrailExpectations::default(),
            account_id: None,
            region: None,
            integrity_parameter: None,
            heartbeat_max_silence: None,
            accounts: Accounts::Own,
            regions: Regions::Own,
            target_concurrency: 16,
        }
    }
}

/// The edges the sweep uses.
pub struct SweepPorts<'a> {
    pub targets: &'a dyn TargetsApi,
    pub trails: &'a dyn TrailsApi,
    pub auditor: &'a dyn Auditor,
    pub functions: &'a dyn FunctionsApi,
    pub heartbeat: &'a dyn HeartbeatStore,
    /// When set and there is more than one target, the targets are queued
    /// here one message each instead of swept in this invocation.
    pub queue: Option<&'a dyn SweepQueue>,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("listing MicroVMs (page {page}): {source}")]
    List {
        page: usize,
        #[source]
        source: PortError,
    },
    #[error("ListMicrovms returned the same nextToken twice (page {page}); stopping")]
    PaginationLoop { page: usize },
    #[error("ListMicrovms did not finish after {} pages", listing::MAX_PAGES)]
    TooManyPages,
    #[error("reading the ledger: {0}")]
    Ledger(#[source] PortError),
    #[error(transparent)]
    Alert(#[from] AlertError),
    #[error("auditing remediation of {microvm_id}: {source}")]
    Audit {
        microvm_id: String,
        #[source]
        source: PortError,
    },
    #[error("{failures} remediation action(s) failed; first: {first}")]
    Remediation { failures: u64, first: String },
    #[error("reading the heartbeat: {0}")]
    Heartbeat(#[source] PortError),
    #[error("deciding what to sweep: {0}")]
    Targets(#[source] PortError),
    #[error("{target}: {source}")]
    Target {
        target: Target,
        #[source]
        source: Box<SweepError>,
    },
    #[error("queueing {targets} sweep target(s): {source}")]
    Enqueue {
        targets: usize,
        #[source]
        source: PortError,
    },
    #[error("{target}: {source}")]
    TargetPorts {
        target: Target,
        #[source]
        source: PortError,
    },
}

/// What one sweep found.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    pub pages: usize,
    pub targets: usize,
    pub unmanaged: Vec<ListedMicrovm>,
    pub remediated: Vec<String>,
    pub trail_health: Option<trail::TrailHealth>,
}

/// The targets of this sweep: every account × region asked for.
pub async fn targets(ports: &SweepPorts<'_>, cfg: &SweepConfig) -> Result<Vec<Target>, SweepError> {
    let own_account = || cfg.account_id.clone().unwrap_or_else(|| "unknown".into());
    let own_region = || cfg.region.clone().unwrap_or_else(|| "us-east-1".into());
    let accounts = match &cfg.accounts {
        Accounts::Own => vec![own_account()],
        Accounts::List(l) => l.clone(),
        Accounts::Organization => ports
            .targets
            .organization_accounts()
            .await
            .map_err(SweepError::Targets)?,
    };
    let regions = match &cfg.regions {
        Regions::Own => vec![own_region()],
        Regions::List(l) => l.clone(),
        Regions::Enabled => ports
            .targets
            .enabled_regions()
            .await
            .map_err(SweepError::Targets)?,
    };
    let mut out = Vec::with_capacity(accounts.len() * regions.len());
    for a in &accounts {
        for r in &regions {
            out.push(Target {
                account: a.clone(),
                region: r.clone(),
            });
        }
    }
    Ok(out)
}

/// Sweep one target: list, remediate, raise its unmanaged alerts.
pub async fn sweep_target(
    ports: &SweepPorts<'_>,
    cfg: &SweepConfig,
    target: &Target,
    batch: &AlertBatch<'_>,
    counters: &mut Counters,
) -> Result<SweepReport, SweepError> {
    let now = batch.alerter().clock().now_epoch();
    let log = batch.alerter().log();
    let tp = ports
        .targets
        .ports(target)
        .await
        .map_err(|source| SweepError::TargetPorts {
            target: target.clone(),
            source,
        })?;
    let mut report = SweepReport {
        targets: 1,
        ..SweepReport::default()
    };
    let (pages, unmanaged) =
        listing::list_unmanaged(&tp, cfg.concurrency, cfg.min_age_seconds, now, counters)
            .await
            .map_err(|e| SweepError::Target {
                target: target.clone(),
                source: Box::new(e),
            })?;
    report.pages = pages;
    counters.unmanaged += unmanaged.len() as u64;
    report.unmanaged = unmanaged;
    // Remediation first, so that each unmanaged alert carries its outcome.
    let outcomes =
        remediation::remediate(&tp, ports.auditor, cfg, &mut report, now, log, counters).await;
    let mut alerts: Vec<Alert> = report
        .unmanaged
        .iter()
        .map(|vm| {
            let mut a = Alert::unmanaged(vm, now, Some(&target.account), Some(&target.region));
            a.finding.remediation = Some(
                outcomes
                    .per_vm
                    .get(&vm.microvm_id)
                    .cloned()
                    .unwrap_or_else(|| format!("none (REMEDIATION={})", cfg.remediation.as_str())),
            );
            a
        })
        .collect();
    alerts.extend(outcomes.halted);
    let raised = batch.raise_all(alerts.iter().collect()).await;
    if let Some(e) = raised.into_iter().find_map(Result::err) {
        return Err(SweepError::Alert(e));
    }
    match outcomes.error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Sweep one target handed out by the schedule (one queued message): its
/// failure raises `sweep-target-unavailable` and fails the message, so it
/// is retried and ends in the DLQ.
pub async fn sweep_queued_target(
    ports: &SweepPorts<'_>,
    cfg: &SweepConfig,
    target: &Target,
    batch: &AlertBatch<'_>,
    counters: &mut Counters,
) -> Result<SweepReport, SweepError> {
    counters.sweep_targets += 1;
    match sweep_target(ports, cfg, target, batch, counters).await {
        Ok(r) => Ok(r),
        Err(SweepError::Alert(e)) => Err(SweepError::Alert(e)),
        Err(e) => {
            counters.sweep_targets_failed += 1;
            let now = batch.alerter().clock().now_epoch();
            let alert = target_unavailable(target, &e, now);
            if let Some(ae) = batch
                .raise_all(vec![&alert])
                .await
                .into_iter()
                .find_map(Result::err)
            {
                batch.alerter().log().line(&serde_json::json!({
                    "log": "error",
                    "error": ae.to_string(),
                }));
            }
            Err(e)
        }
    }
}

/// The alert for a target that could not be swept.
fn target_unavailable(target: &Target, e: &SweepError, now: i64) -> Alert {
    let mut a = Alert::degraded(
        Rule::SweepTargetUnavailable,
        &format!("cannot sweep {target}: {e}"),
        now,
        Some(&target.to_string()),
    );
    a.finding.account_id = Some(target.account.clone());
    a.finding.region = Some(target.region.clone());
    a
}

/// Run one sweep: every target, then the checks. Alerts go through
/// `batch`; its counts are folded in by the caller.
pub async fn sweep(
    ports: &SweepPorts<'_>,
    cfg: &SweepConfig,
    batch: &AlertBatch<'_>,
    counters: &mut Counters,
) -> Result<SweepReport, SweepError> {
    let now = batch.alerter().clock().now_epoch();
    let mut first_error: Option<SweepError> = None;
    let mut report = SweepReport::default();
    let raise_all = |alerts: Vec<Alert>| async move {
        batch
            .raise_all(alerts.iter().collect())
            .await
            .into_iter()
            .find_map(Result::err)
    };

    let mut unavailable = Vec::new();
    match (targets(ports, cfg).await, ports.queue) {
        (Ok(targets), Some(queue)) if targets.len() > 1 => match queue.enqueue(&targets).await {
            Ok(()) => counters.sweep_targets_enqueued += targets.len() as u64,
            Err(source) => {
                let e = SweepError::Enqueue {
                    targets: targets.len(),
                    source,
                };
                unavailable.push(Alert::degraded(
                    Rule::SweepTargetUnavailable,
                    &format!("cannot hand out the sweep: {e}"),
                    now,
                    None,
                ));
                first_error.get_or_insert(e);
            }
        },
        (Ok(targets), _) => {
            let n = targets.len();
            let results: Vec<(Target, Counters, Result<SweepReport, SweepError>)> =
                futures::stream::iter(targets)
                    .map(|t| async move {
                        let mut c = Counters::default();
                        let r = sweep_target(ports, cfg, &t, batch, &mut c).await;
                        (t, c, r)
                    })
                    .buffer_unordered(cfg.target_concurrency.max(1))
                    .collect()
                    .await;
            let mut failed = 0usize;
            for (t, c, r) in results {
                counters.add(&c);
                match r {
                    Ok(r) => {
                        report.targets += 1;
                        report.pages += r.pages;
                        report.unmanaged.extend(r.unmanaged);
                        report.remediated.extend(r.remediated);
                    }
                    // An alert that could not be delivered is retried with
                    // the invocation; a target that could not be read is
                    // reported, and the others go on.
                    Err(SweepError::Alert(e)) => {
                        first_error.get_or_insert(SweepError::Alert(e));
                    }
                    Err(e) => {
                        failed += 1;
                        counters.sweep_targets_failed += 1;
                        // With one target the failed invocation is what
                        // surfaces (Lambda retry, the Errors alarm), as it
                        // was before several targets existed.
                        if n > 1 {
                            unavailable.push(target_unavailable(&t, &e, now));
                        }
                        batch.alerter().log().line(&serde_json::json!({
                            "log": "sweep-target-failed",
                            "target": t.to_string(),
                            "error": e.to_string(),
                        }));
                        if failed == n {
                            // Nothing could be swept: the invocation fails too.
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }
            counters.sweep_targets += n as u64;
        }
        (Err(e), _) => {
            unavailable.push(Alert::degraded(
                Rule::SweepTargetUnavailable,
                &format!("cannot decide what to sweep: {e}"),
                now,
                None,
            ));
            first_error.get_or_insert(e);
        }
    }

    let mut checks: Vec<Alert> = unavailable;
    checks.extend(checks::trail_health(ports, cfg, &mut report, now, counters).await);
    checks.extend(checks::integrity(ports, cfg, now, counters).await);
    match checks::heartbeat(ports, cfg, now).await {
        Ok(alert) => checks.extend(alert),
        Err(e) => {
            first_error.get_or_insert(e);
        }
    }
    if let Some(e) = raise_all(checks).await {
        first_error.get_or_insert(SweepError::Alert(e));
    }

    match first_error {
        Some(e) => Err(e),
        None => {
            counters.sweeps_completed += 1;
            Ok(report)
        }
    }
}

#[cfg(test)]
mod tests;
