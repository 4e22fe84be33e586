//! The sweep: the detector layer that does not depend on CloudTrail.
//!
//! `ListMicrovms` over every page (50 a page; pages are sequential by nature),
//! each page's non-terminated MicroVMs joined against the launcher's ledger
//! while the next page is fetched (ledger reads run with bounded
//! concurrency). A MicroVM missing from the ledger — twice, the second read
//! closing the window in which the launcher has started a VM but not yet
//! written its ledger item — is `aws.microvm.unmanaged.detected`. Then the
//! optional remediation (off by default; only for unmanaged MicroVMs older
//! than the grace period; every action audited), and the trail health check.

use super::alert::{Alert, ListedMicrovm, utc_timestamp};
use super::alerter::{AlertBatch, AlertError};
use super::counters::Counters;
use super::ports::{Auditor, LedgerReader, MicrovmsApi, PortError, TrailsApi};
use super::trail;
use contro1::types::{
    AuditActor, AuditRecord, AuditResource, AuditSource, INTEGRATION, Outcome as AuditOutcome,
    RESOURCE_TYPE_MICROVM,
};
use detector_core::Rule;
use futures::{SinkExt, StreamExt, TryStreamExt};
use serde_json::json;
use shared_core::Event;
use std::collections::HashSet;

/// ListMicrovms accepts 1–50.
pub const PAGE_SIZE: i32 = 50;
/// A pagination loop that goes on longer than this is a bug or a hostile
/// endpoint (2.5 M MicroVMs).
const MAX_PAGES: usize = 50_000;

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
        }
    }
}

/// The edges the sweep uses.
pub struct SweepPorts<'a> {
    pub microvms: &'a dyn MicrovmsApi,
    pub ledger: &'a dyn LedgerReader,
    pub trails: &'a dyn TrailsApi,
    pub auditor: &'a dyn Auditor,
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
    #[error("ListMicrovms did not finish after {MAX_PAGES} pages")]
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
}

/// What one sweep found.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    pub pages: usize,
    pub unmanaged: Vec<ListedMicrovm>,
    pub remediated: Vec<String>,
    pub trail_health: Option<trail::TrailHealth>,
}

/// List every page, keeping non-terminated MicroVMs, joined against the
/// ledger with bounded concurrency while the next page is fetched.
async fn list_unmanaged(
    ports: &SweepPorts<'_>,
    concurrency: usize,
    counters: &mut Counters,
) -> Result<(usize, Vec<ListedMicrovm>), SweepError> {
    let (mut tx, rx) = futures::channel::mpsc::channel::<Vec<ListedMicrovm>>(concurrency.max(1));
    let mut listed = 0u64;
    let mut active = 0u64;
    let producer = async {
        let mut token: Option<String> = None;
        let mut seen_tokens = HashSet::new();
        let mut pages = 0usize;
        loop {
            if pages >= MAX_PAGES {
                return Err(SweepError::TooManyPages);
            }
            let page = ports
                .microvms
                .list_page(token.as_deref(), PAGE_SIZE)
                .await
                .map_err(|source| SweepError::List {
                    page: pages + 1,
                    source,
                })?;
            pages += 1;
            listed += page.items.len() as u64;
            let live: Vec<ListedMicrovm> = page
                .items
                .into_iter()
                .filter(|v| v.state != "TERMINATED")
                .collect();
            active += live.len() as u64;
            if !live.is_empty() && tx.send(live).await.is_err() {
                // The consumer stopped on an error; it reports it.
                break;
            }
            match page.next_token.filter(|t| !t.is_empty()) {
                Some(t) => {
                    if !seen_tokens.insert(t.clone()) {
                        return Err(SweepError::PaginationLoop { page: pages });
                    }
                    token = Some(t);
                }
                None => break,
            }
        }
        tx.close_channel();
        Ok(pages)
    };
    let consumer = rx
        .map(|vms| async move {
            let ids: Vec<String> = vms.iter().map(|v| v.microvm_id.clone()).collect();
            let known = ports
                .ledger
                .known_microvms(&ids)
                .await
                .map_err(SweepError::Ledger)?;
            Ok::<_, SweepError>(
                vms.into_iter()
                    .filter(|v| !known.contains(&v.microvm_id))
                    .collect::<Vec<_>>(),
            )
        })
        .buffer_unordered(concurrency.max(1))
        .try_fold(Vec::new(), |mut acc, v| async move {
            acc.extend(v);
            Ok(acc)
        });
    let (pages, candidates) = futures::try_join!(producer, consumer)?;
    counters.microvms_listed += listed;
    counters.microvms_active += active;
    // Second read of the candidates only: a VM the launcher had just started
    // may have been listed before its ledger item was written.
    let mut unmanaged = candidates;
    if !unmanaged.is_empty() {
        let ids: Vec<String> = unmanaged.iter().map(|v| v.microvm_id.clone()).collect();
        let known = ports
            .ledger
            .known_microvms(&ids)
            .await
            .map_err(SweepError::Ledger)?;
        unmanaged.retain(|v| !known.contains(&v.microvm_id));
    }
    unmanaged.sort_by(|a, b| a.microvm_id.cmp(&b.microvm_id));
    Ok((pages, unmanaged))
}

/// Run one sweep. Alerts go through `batch`; its counts are folded in by the
/// caller. Each layer runs even when an earlier one failed to deliver; the
/// first error is returned at the end so the invocation fails.
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

    match list_unmanaged(ports, cfg.concurrency, counters).await {
        Ok((pages, unmanaged)) => {
            report.pages = pages;
            counters.unmanaged += unmanaged.len() as u64;
            let results: Vec<Result<_, AlertError>> = futures::stream::iter(&unmanaged)
                .map(|vm| async move {
                    let alert =
                        Alert::unmanaged(vm, now, cfg.account_id.as_deref(), cfg.region.as_deref());
                    batch.raise(&alert).await
                })
                .buffer_unordered(cfg.concurrency.max(1))
                .collect()
                .await;
            if let Some(e) = results.into_iter().find_map(Result::err) {
                first_error.get_or_insert(SweepError::Alert(e));
            }
            report.unmanaged = unmanaged;
        }
        Err(e) => {
            first_error = Some(e);
        }
    }

    // Remediation: only when on, only VMs older than the grace period, every
    // action audited (success or failure).
    if cfg.remediation != Remediation::Off {
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
    }

    if cfg.check_trails {
        counters.trails_checked += 1;
        let alert = match ports.trails.trails().await {
            Ok(trails) => {
                let health = trail::assess(&trails, &cfg.trails);
                let alert = (!health.healthy).then(|| {
                    Alert::degraded(
                        Rule::NoTrailLogsMicrovmDataEvents,
                        &health.reason(),
                        now,
                        None,
                    )
                });
                report.trail_health = Some(health);
                alert
            }
            Err(e) => Some(Alert::degraded(
                Rule::TrailHealthUnavailable,
                &format!("cannot read CloudTrail configuration: {e}"),
                now,
                None,
            )),
        };
        if let Some(alert) = alert
            && let Err(e) = batch.raise(&alert).await
        {
            first_error.get_or_insert(SweepError::Alert(e));
        }
    }

    match first_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lambda::fakes::{FakeAuditor, FakeLedger, FakeMicrovms, FakeTrails, Rig, vm};
    use crate::lambda::ports::{FieldCondition, TrailInfo};
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
