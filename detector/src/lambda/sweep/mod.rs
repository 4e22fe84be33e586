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
use super::alerter::{AlertBatch, AlertError};
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
mod tests {
    use super::*;
    use crate::lambda::fakes::{
        FakeAuditor, FakeFunctions, FakeHeartbeat, FakeLedger, FakeMicrovms, FakeTargets,
        FakeTrails, Rig, vm,
    };
    use crate::lambda::ports::LedgerReader;
    use crate::lambda::ports::{FieldCondition, TrailInfo};
    use detector_core::Rule;
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    const NOW: i64 = 1_759_413_931;

    fn healthy_trails() -> FakeTrails {
        FakeTrails {
            trails: vec![TrailInfo {
                name: "t".into(),
                arn: "arn:aws:cloudtrail:us-east-1:1:trail/t".into(),
                is_multi_region: true,
                is_logging: true,
                advanced_selectors: vec![vec![
                    FieldCondition {
                        field: "eventCategory".into(),
                        equals: vec!["Data".into()],
                        ..Default::default()
                    },
                    FieldCondition {
                        field: "resources.type".into(),
                        equals: vec![trail::MICROVM_RESOURCE_TYPE.into()],
                        ..Default::default()
                    },
                ]],
                ..Default::default()
            }],
        }
    }

    /// 130 VMs (3 pages): every 10th not in the ledger, every 7th terminated.
    fn fleet() -> (Arc<FakeMicrovms>, Arc<FakeLedger>, Vec<String>) {
        let mut vms = Vec::new();
        let ledger = FakeLedger::default();
        let mut expected = Vec::new();
        for i in 0..130 {
            let id = format!("ai-{i:04}");
            let state = if i % 7 == 0 { "TERMINATED" } else { "RUNNING" };
            // Older VMs first: i < 65 started two hours ago, the rest ten
            // minutes ago (reported, but inside the remediation grace period).
            let started = if i < 65 { NOW - 7200 } else { NOW - 600 };
            vms.push(vm(&id, state, started));
            if i % 10 == 0 {
                if state != "TERMINATED" {
                    expected.push(id);
                }
            } else {
                ledger.vms.lock().unwrap().insert(id);
            }
        }
        (
            Arc::new(FakeMicrovms {
                vms,
                ..Default::default()
            }),
            Arc::new(ledger),
            expected,
        )
    }

    #[tokio::test]
    async fn sweep_finds_exactly_the_unmanaged_vms_over_every_page() {
        let (mv, ledger, expected) = fleet();
        let (trails, auditor) = (healthy_trails(), FakeAuditor::default());
        let rig = Rig::new(NOW);
        let alerter = rig.alerter();
        let batch = AlertBatch::new(&alerter);
        let targets = FakeTargets::one(mv.clone(), ledger.clone());
        let ports = SweepPorts {
            targets: &targets,
            trails: &trails,
            auditor: &auditor,
            functions: &FakeFunctions::default(),
            heartbeat: &FakeHeartbeat::default(),
            queue: None,
        };
        let mut c = Counters::default();
        let report = sweep(&ports, &SweepConfig::default(), &batch, &mut c)
            .await
            .unwrap();
        let found: Vec<String> = report
            .unmanaged
            .iter()
            .map(|v| v.microvm_id.clone())
            .collect();
        assert_eq!(found, expected);
        assert_eq!(report.pages, 3);
        assert_eq!(mv.pages_served.load(Ordering::SeqCst), 3);
        assert_eq!(c.microvms_listed, 130);
        let delivered = rig.channel.delivered.lock().unwrap();
        assert_eq!(delivered.len(), expected.len());
        assert!(
            delivered
                .iter()
                .all(|a| a.finding.event == shared_core::Event::UnmanagedDetected)
        );
        // Remediation is off by default: no action, no audit.
        assert!(mv.suspended.lock().unwrap().is_empty());
        assert!(mv.terminated.lock().unwrap().is_empty());
        assert!(auditor.records.lock().unwrap().is_empty());
        assert!(report.trail_health.unwrap().healthy);
    }

    #[tokio::test]
    async fn terminate_remediation_spares_vms_younger_than_the_grace_period_and_audits_each() {
        let (mv, ledger, expected) = fleet();
        let (trails, auditor) = (healthy_trails(), FakeAuditor::default());
        let rig = Rig::new(NOW);
        let alerter = rig.alerter();
        let batch = AlertBatch::new(&alerter);
        let targets = FakeTargets::one(mv.clone(), ledger.clone());
        let ports = SweepPorts {
            targets: &targets,
            trails: &trails,
            auditor: &auditor,
            functions: &FakeFunctions::default(),
            heartbeat: &FakeHeartbeat::default(),
            queue: None,
        };
        let cfg = SweepConfig {
            remediation: Remediation::Terminate,
            limits: RemediationLimits {
                grace_seconds: 900,
                max_per_sweep: 1000,
                max_fleet_percent: 100,
            },
            ..Default::default()
        };
        sweep(&ports, &cfg, &batch, &mut Counters::default())
            .await
            .unwrap();
        let old: Vec<String> = expected
            .iter()
            .filter(|id| id[3..].parse::<u32>().unwrap() < 65)
            .cloned()
            .collect();
        assert!(!old.is_empty() && old.len() < expected.len());
        assert_eq!(*mv.terminated.lock().unwrap(), old);
        assert!(mv.suspended.lock().unwrap().is_empty());
        let audits = auditor.records.lock().unwrap();
        assert_eq!(audits.len(), old.len());
        assert!(
            audits
                .iter()
                .all(|a| a.action == "aws.microvm.terminate.requested")
        );
    }

    #[tokio::test]
    async fn no_trail_selecting_data_events_raises_degraded_once_a_day() {
        let (mv, ledger, _) = fleet();
        let trails = FakeTrails {
            trails: vec![TrailInfo {
                name: "mgmt-only".into(),
                arn: "arn:aws:cloudtrail:us-east-1:1:trail/mgmt-only".into(),
                is_logging: true,
                basic_selectors: 1,
                ..Default::default()
            }],
        };
        let auditor = FakeAuditor::default();
        let rig = Rig::new(NOW);
        let alerter = rig.alerter();
        let targets = FakeTargets::one(mv.clone(), ledger.clone());
        let ports = SweepPorts {
            targets: &targets,
            trails: &trails,
            auditor: &auditor,
            functions: &FakeFunctions::default(),
            heartbeat: &FakeHeartbeat::default(),
            queue: None,
        };
        for _ in 0..2 {
            let batch = AlertBatch::new(&alerter);
            sweep(
                &ports,
                &SweepConfig::default(),
                &batch,
                &mut Counters::default(),
            )
            .await
            .unwrap();
        }
        let delivered = rig.channel.delivered.lock().unwrap();
        let degraded: Vec<&Alert> = delivered
            .iter()
            .filter(|a| a.finding.event == shared_core::Event::DetectionDegraded)
            .collect();
        assert_eq!(degraded.len(), 1);
        assert!(
            degraded[0]
                .finding
                .summary
                .contains("only basic event selectors"),
            "{}",
            degraded[0].finding.summary
        );
    }

    #[tokio::test]
    async fn a_vm_written_to_the_ledger_during_the_sweep_is_not_reported() {
        // The second read of the candidates sees the late ledger item.
        struct LateLedger(FakeLedger);
        impl LedgerReader for LateLedger {
            fn known_microvms<'a>(
                &'a self,
                ids: &'a [String],
            ) -> crate::lambda::ports::PortResult<'a, HashSet<String>> {
                if self.0.reads.load(Ordering::SeqCst) >= 1 {
                    self.0.vms.lock().unwrap().insert("ai-late".into());
                }
                self.0.known_microvms(ids)
            }
            fn known_requests<'a>(
                &'a self,
                ids: &'a [String],
            ) -> crate::lambda::ports::PortResult<'a, HashSet<String>> {
                self.0.known_requests(ids)
            }
        }
        let mv = Arc::new(FakeMicrovms {
            vms: vec![vm("ai-late", "PENDING", NOW)],
            ..Default::default()
        });
        let ledger = Arc::new(LateLedger(FakeLedger::default()));
        let (trails, auditor) = (healthy_trails(), FakeAuditor::default());
        let rig = Rig::new(NOW);
        let alerter = rig.alerter();
        let batch = AlertBatch::new(&alerter);
        let targets = FakeTargets::one(mv.clone(), ledger.clone());
        let ports = SweepPorts {
            targets: &targets,
            trails: &trails,
            auditor: &auditor,
            functions: &FakeFunctions::default(),
            heartbeat: &FakeHeartbeat::default(),
            queue: None,
        };
        let report = sweep(
            &ports,
            &SweepConfig::default(),
            &batch,
            &mut Counters::default(),
        )
        .await
        .unwrap();
        assert!(report.unmanaged.is_empty());
        assert!(rig.channel.delivered.lock().unwrap().is_empty());
    }

    /// `n` MicroVMs started two hours ago, none in the ledger.
    fn unmanaged_fleet(n: usize) -> Arc<FakeMicrovms> {
        Arc::new(FakeMicrovms {
            vms: (0..n)
                .map(|i| vm(&format!("ai-{i:04}"), "RUNNING", NOW - 7200))
                .collect(),
            ..Default::default()
        })
    }

    async fn run(
        mv: &Arc<FakeMicrovms>,
        ledger: &Arc<FakeLedger>,
        cfg: &SweepConfig,
        rig: &Rig,
    ) -> Counters {
        let (trails, auditor) = (healthy_trails(), FakeAuditor::default());
        let alerter = rig.alerter();
        let batch = AlertBatch::new(&alerter);
        let targets = FakeTargets::one(mv.clone(), ledger.clone());
        let ports = SweepPorts {
            targets: &targets,
            trails: &trails,
            auditor: &auditor,
            functions: &FakeFunctions::default(),
            heartbeat: &FakeHeartbeat::default(),
            queue: None,
        };
        let mut c = Counters::default();
        sweep(&ports, cfg, &batch, &mut c).await.unwrap();
        batch.fold_into(&mut c);
        c
    }

    fn terminate() -> SweepConfig {
        SweepConfig {
            remediation: Remediation::Terminate,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn sixty_of_sixty_unmanaged_with_a_wrong_ledger_terminates_nothing_and_says_remediation_halted()
     {
        // Regression: with LEDGER_TABLE pointed at an empty table and
        // REMEDIATION=terminate, one sweep terminated 60 of 60 MicroVMs.
        let mv = unmanaged_fleet(60);
        let rig = Rig::new(NOW);
        let c = run(&mv, &Arc::default(), &terminate(), &rig).await;
        assert!(mv.terminated.lock().unwrap().is_empty());
        assert_eq!((c.remediations, c.remediations_halted), (0, 60));
        let delivered = rig.channel.delivered.lock().unwrap();
        let halted: Vec<&Alert> = delivered
            .iter()
            .filter(|a| a.finding.rule == Rule::RemediationHalted)
            .collect();
        assert_eq!(halted.len(), 1);
        let reason = halted[0].finding.reason.clone().unwrap();
        assert!(
            reason.contains("60 of 60 active MicroVMs (100%)")
                && reason.contains("10 per sweep")
                && reason.contains("20% of the fleet"),
            "{reason}"
        );
        let unmanaged: Vec<&Alert> = delivered
            .iter()
            .filter(|a| a.finding.rule == Rule::MicrovmNotInLedger)
            .collect();
        assert_eq!(unmanaged.len(), 60);
        assert!(unmanaged.iter().all(|a| {
            a.finding
                .remediation
                .as_deref()
                .unwrap()
                .starts_with("halted")
        }));
    }

    #[tokio::test]
    async fn either_cap_halts_remediation_and_within_both_each_outcome_is_in_its_alert() {
        let ledger = Arc::new(FakeLedger::default());
        // 11 of 1000 is 1.1% of the fleet but over 10 per sweep.
        let mut mv = unmanaged_fleet(1000);
        for v in mv.vms.iter().skip(11) {
            ledger.vms.lock().unwrap().insert(v.microvm_id.clone());
        }
        let rig = Rig::new(NOW);
        let c = run(&mv, &ledger, &terminate(), &rig).await;
        assert_eq!((c.remediations, c.remediations_halted), (0, 11));
        // 3 of 10 is within 10 per sweep but 30% of the fleet.
        let mv10 = unmanaged_fleet(10);
        let ledger10 = Arc::new(FakeLedger::default());
        for v in mv10.vms.iter().skip(3) {
            ledger10.vms.lock().unwrap().insert(v.microvm_id.clone());
        }
        let c = run(&mv10, &ledger10, &terminate(), &Rig::new(NOW)).await;
        assert_eq!((c.remediations, c.remediations_halted), (0, 3));
        // 2 of 20: within both; each alert says what was done.
        mv = unmanaged_fleet(20);
        let ledger20 = Arc::new(FakeLedger::default());
        for v in mv.vms.iter().skip(2) {
            ledger20.vms.lock().unwrap().insert(v.microvm_id.clone());
        }
        let rig = Rig::new(NOW);
        let c = run(&mv, &ledger20, &terminate(), &rig).await;
        assert_eq!(c.remediations, 2);
        assert_eq!(mv.terminated.lock().unwrap().len(), 2);
        let delivered = rig.channel.delivered.lock().unwrap();
        assert_eq!(delivered.len(), 2);
        for a in delivered.iter() {
            let r = a.finding.remediation.as_deref().unwrap();
            assert!(r.starts_with("terminated by the detector at "), "{r}");
            assert!(a.message().contains("Done:     terminated by the detector"));
        }
    }

    #[tokio::test]
    async fn dry_run_reports_what_it_would_do_and_does_nothing() {
        let mv = unmanaged_fleet(20);
        let ledger = Arc::new(FakeLedger::default());
        for v in mv.vms.iter().skip(2) {
            ledger.vms.lock().unwrap().insert(v.microvm_id.clone());
        }
        let rig = Rig::new(NOW);
        let cfg = SweepConfig {
            remediation: Remediation::DryRun,
            ..Default::default()
        };
        let c = run(&mv, &ledger, &cfg, &rig).await;
        assert_eq!((c.remediations, c.remediations_dry_run), (0, 2));
        assert!(mv.terminated.lock().unwrap().is_empty());
        assert!(mv.suspended.lock().unwrap().is_empty());
        let delivered = rig.channel.delivered.lock().unwrap();
        assert!(delivered.iter().all(|a| a.finding.remediation.as_deref()
            == Some("dry run: would terminate (REMEDIATION=dry-run)")));
    }

    #[tokio::test]
    async fn a_microvm_younger_than_the_minimum_age_is_not_reported_until_it_is_old_enough() {
        // Regression: a MicroVM 2 s old produced a HIGH unmanaged alert (the
        // second ledger read follows the first by milliseconds).
        let mv = Arc::new(FakeMicrovms {
            vms: vec![vm("ai-young", "RUNNING", NOW - 2)],
            ..Default::default()
        });
        let rig = Rig::new(NOW);
        let c = run(&mv, &Arc::default(), &SweepConfig::default(), &rig).await;
        assert_eq!((c.unmanaged, c.microvms_too_young), (0, 1));
        assert!(rig.channel.delivered.lock().unwrap().is_empty());
        // Five minutes later it still has no ledger item: reported.
        rig.clock.0.store(NOW + 300, Ordering::SeqCst);
        let c = run(&mv, &Arc::default(), &SweepConfig::default(), &rig).await;
        assert_eq!((c.unmanaged, c.microvms_too_young), (1, 0));
    }
}
