//! The sweep: the detector layer that does not depend on CloudTrail.
//!
//! 1. [`listing`]: every page of `ListMicrovms`, each non-terminated MicroVM
//!    joined against the launcher's ledger (twice, the second read closing
//!    the window in which the launcher has started a VM but not yet written
//!    its ledger item); a MicroVM missing from it is
//!    `aws.microvm.unmanaged.detected`.
//! 2. [`remediation`]: optional suspend/terminate of those MicroVMs.
//! 3. [`checks`]: trail health, the governance functions against their
//!    recorded baseline, and the heartbeat.
//!
//! Each step runs even when an earlier one failed; the first error is
//! returned at the end so the invocation fails (and the alarm on errors
//! fires). A completed sweep is counted in `sweeps_completed` (the metric
//! the "sweep did not run" alarm watches).

mod checks;
mod listing;
mod remediation;

pub use checks::drift_alert;
pub use listing::PAGE_SIZE;
pub use remediation::Remediation;

use super::alert::{Alert, ListedMicrovm};
use super::alerter::{AlertBatch, AlertError};
use super::counters::Counters;
use super::ports::{
    Auditor, FunctionsApi, HeartbeatStore, LedgerReader, MicrovmsApi, PortError, TrailsApi,
};
use super::trail;
use futures::StreamExt;

#[derive(Debug, Clone)]
pub struct SweepConfig {
    pub remediation: Remediation,
    pub grace_seconds: i64,
    /// Concurrent ledger reads and alert deliveries.
    pub concurrency: usize,
    /// Check trail health in the same run.
    pub check_trails: bool,
    /// What a covering trail must be (names, bucket, region).
    pub trails: trail::TrailExpectations,
    /// The account and region swept, as findings report them.
    pub account_id: Option<String>,
    pub region: Option<String>,
    /// The SSM parameter holding the integrity baseline; no integrity check
    /// when unset.
    pub integrity_parameter: Option<String>,
    /// Longest time without a CloudTrail log object read before detection is
    /// degraded; no heartbeat check when unset.
    pub heartbeat_max_silence: Option<i64>,
}

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig {
            remediation: Remediation::Off,
            grace_seconds: 900,
            concurrency: 8,
            check_trails: true,
            trails: trail::TrailExpectations::default(),
            account_id: None,
            region: None,
            integrity_parameter: None,
            heartbeat_max_silence: None,
        }
    }
}

/// The edges the sweep uses.
pub struct SweepPorts<'a> {
    pub microvms: &'a dyn MicrovmsApi,
    pub ledger: &'a dyn LedgerReader,
    pub trails: &'a dyn TrailsApi,
    pub auditor: &'a dyn Auditor,
    pub functions: &'a dyn FunctionsApi,
    pub heartbeat: &'a dyn HeartbeatStore,
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
}

/// What one sweep found.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    pub pages: usize,
    pub unmanaged: Vec<ListedMicrovm>,
    pub remediated: Vec<String>,
    pub trail_health: Option<trail::TrailHealth>,
}

/// Run one sweep. Alerts go through `batch`; its counts are folded in by the
/// caller.
pub async fn sweep(
    ports: &SweepPorts<'_>,
    cfg: &SweepConfig,
    batch: &AlertBatch<'_>,
    counters: &mut Counters,
) -> Result<SweepReport, SweepError> {
    let now = batch.alerter().clock().now_epoch();
    let log = batch.alerter().log();
    let mut first_error: Option<SweepError> = None;
    let mut report = SweepReport::default();
    let raise_all = |alerts: Vec<Alert>| async move {
        let results: Vec<Result<_, AlertError>> = futures::stream::iter(alerts)
            .map(|a| async move { batch.raise(&a).await })
            .buffer_unordered(cfg.concurrency.max(1))
            .collect()
            .await;
        results.into_iter().find_map(Result::err)
    };

    match listing::list_unmanaged(ports, cfg.concurrency, counters).await {
        Ok((pages, unmanaged)) => {
            report.pages = pages;
            counters.unmanaged += unmanaged.len() as u64;
            let alerts = unmanaged
                .iter()
                .map(|vm| {
                    Alert::unmanaged(vm, now, cfg.account_id.as_deref(), cfg.region.as_deref())
                })
                .collect();
            if let Some(e) = raise_all(alerts).await {
                first_error.get_or_insert(SweepError::Alert(e));
            }
            report.unmanaged = unmanaged;
        }
        Err(e) => {
            first_error = Some(e);
        }
    }

    if let Some(e) = remediation::remediate(ports, cfg, &mut report, now, log, counters).await {
        first_error.get_or_insert(e);
    }

    let mut checks: Vec<Alert> = Vec::new();
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
        FakeAuditor, FakeFunctions, FakeHeartbeat, FakeLedger, FakeMicrovms, FakeTrails, Rig, vm,
    };
    use crate::lambda::ports::{FieldCondition, TrailInfo};
    use std::collections::HashSet;
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
    fn fleet() -> (FakeMicrovms, FakeLedger, Vec<String>) {
        let mut vms = Vec::new();
        let ledger = FakeLedger::default();
        let mut expected = Vec::new();
        for i in 0..130 {
            let id = format!("ai-{i:04}");
            let state = if i % 7 == 0 { "TERMINATED" } else { "RUNNING" };
            // Older VMs first: i < 65 started two hours ago, the rest 60 s ago.
            let started = if i < 65 { NOW - 7200 } else { NOW - 60 };
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
            FakeMicrovms {
                vms,
                ..Default::default()
            },
            ledger,
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
        let ports = SweepPorts {
            microvms: &mv,
            ledger: &ledger,
            trails: &trails,
            auditor: &auditor,
            functions: &FakeFunctions::default(),
            heartbeat: &FakeHeartbeat::default(),
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
        let ports = SweepPorts {
            microvms: &mv,
            ledger: &ledger,
            trails: &trails,
            auditor: &auditor,
            functions: &FakeFunctions::default(),
            heartbeat: &FakeHeartbeat::default(),
        };
        let cfg = SweepConfig {
            remediation: Remediation::Terminate,
            grace_seconds: 900,
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
        let ports = SweepPorts {
            microvms: &mv,
            ledger: &ledger,
            trails: &trails,
            auditor: &auditor,
            functions: &FakeFunctions::default(),
            heartbeat: &FakeHeartbeat::default(),
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
        let mv = FakeMicrovms {
            vms: vec![vm("ai-late", "PENDING", NOW)],
            ..Default::default()
        };
        let ledger = LateLedger(FakeLedger::default());
        let (trails, auditor) = (healthy_trails(), FakeAuditor::default());
        let rig = Rig::new(NOW);
        let alerter = rig.alerter();
        let batch = AlertBatch::new(&alerter);
        let ports = SweepPorts {
            microvms: &mv,
            ledger: &ledger,
            trails: &trails,
            auditor: &auditor,
            functions: &FakeFunctions::default(),
            heartbeat: &FakeHeartbeat::default(),
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
}
