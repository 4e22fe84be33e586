//! The sweep against fakes: pages, remediation, targets, checks.

use super::*;
use crate::lambda::fakes::{
    FakeAuditor, FakeFunctions, FakeHeartbeat, FakeLedger, FakeMicrovms, FakeTargets, FakeTrails,
    Rig, vm,
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
