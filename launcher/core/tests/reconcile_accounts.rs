//! The reconciler never leaves a MicroVM unaccounted for, over the
//! in-memory ports.
//!
//! Regression: a run item stuck in `executing` whose agent was removed, or
//! that had been taken over `reconcile_max_attempts` times, was marked
//! `failed` with no AWS lookup, no ledger item and no alert, while the
//! MicroVM its interrupted RunMicrovm started may be running.

mod common;

use common::*;
use launcher_core::config::Config;
use launcher_core::ports::{Clock, PendingStore};
use launcher_core::{Options, PortSet, Service, ServiceError, State};
use std::collections::HashMap;
use std::sync::atomic::Ordering;

/// The same ports as `w`, with agent `ci` removed from the registry.
fn without_ci(w: &World) -> Service {
    let file = format!(
        r#"
[policy]
allowed_image_arns = ["{IMAGE}"]
allowed_execution_role_arns = ["{SANDBOX}"]
allowed_token_ports = [8080]
approval_ttl_seconds = 600
[[agents]]
id = "other"
owner = "platform"
environment = "dev"
bearer_token_sha256 = ["{}"]
"#,
        launcher_core::agents::token_sha256_hex("other-token")
    );
    let ports = PortSet {
        store: w.store.clone(),
        ledger: w.ledger.clone(),
        microvms: w.vms.clone(),
        approvals: w.c1.clone(),
        clock: w.clock.clone(),
    };
    Service::with_options(
        Config::from_parts(&file, &HashMap::new()).unwrap(),
        ports,
        Options::default(),
    )
}

/// An approved run whose callback moved it to `executing`, then died: its
/// RunMicrovm reached AWS (MicroVM `vm-lost`), the answer never came back.
async fn interrupted_run(w: &World) -> String {
    let id = pending_id(w, run(|r| r.duration_seconds = 5000)).await;
    w.c1.decide(&id, launcher_core::Resolution::Approved);
    w.store
        .transition(&id, State::Pending, State::Executing, w.clock.now())
        .await
        .unwrap();
    w.vms
        .lost_runs
        .lock()
        .unwrap()
        .push((IMAGE.to_string(), "vm-lost".to_string()));
    id
}

#[tokio::test]
async fn a_run_of_a_removed_agent_is_not_issued_and_the_microvm_it_may_have_started_is_reported() {
    let w = world();
    // A MicroVM of the same image the launcher did start is in the ledger
    // and is not reported.
    let governed = managed_vm(&w).await;
    let id = interrupted_run(&w).await;
    let svc = without_ci(&w);
    let runs_before = w.vms.runs.lock().unwrap().len();
    w.clock.advance(svc.options().executing_timeout_seconds + 1);
    let report = svc.reconcile().await.unwrap();
    assert_eq!((report.failed, report.left), (1, 0), "{report:?}");
    assert_eq!(
        w.vms.runs.lock().unwrap().len(),
        runs_before,
        "nothing issued for a removed agent"
    );
    let rec = w.store.get(&id).await.unwrap().unwrap();
    assert_eq!(rec.state, State::Failed);
    let error = rec.error.unwrap();
    assert!(
        error.contains("no longer registered") && error.contains("vm-lost"),
        "{error}"
    );
    let alerts: Vec<_> =
        w.c1.audits()
            .into_iter()
            .filter(|a| a.action == shared_core::Event::UnmanagedDetected)
            .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a.severity, "critical");
    assert_eq!(a.microvm_id.as_deref(), Some("vm-lost"));
    assert_eq!(a.metadata["client_token"], id.as_str());
    assert_eq!(
        a.metadata["candidate_microvm_ids"],
        serde_json::json!(["vm-lost"]),
        "the governed MicroVM `{governed}` is not a candidate"
    );

    // ListMicrovms unavailable: still failed, and reported as unknown.
    let w = world();
    let id = interrupted_run(&w).await;
    w.vms.fail_list.store(true, Ordering::SeqCst);
    let svc = without_ci(&w);
    w.clock.advance(svc.options().executing_timeout_seconds + 1);
    assert_eq!(svc.reconcile().await.unwrap().failed, 1);
    let alert =
        w.c1.audits()
            .into_iter()
            .find(|a| a.action == shared_core::Event::UnmanagedDetected)
            .expect("an alert when the lookup fails");
    assert_eq!(alert.metadata["client_token"], id.as_str());
    assert!(alert.metadata["lookup_error"].is_string(), "{alert:?}");

    // Nothing of its image running: failed, no alert.
    let w = world();
    let id = pending_id(&w, run(|r| r.duration_seconds = 5000)).await;
    w.store
        .transition(&id, State::Pending, State::Executing, w.clock.now())
        .await
        .unwrap();
    let svc = without_ci(&w);
    w.clock.advance(svc.options().executing_timeout_seconds + 1);
    assert_eq!(svc.reconcile().await.unwrap().failed, 1);
    assert!(
        !w.c1
            .audits()
            .iter()
            .any(|a| a.action == shared_core::Event::UnmanagedDetected)
    );
}

#[tokio::test]
async fn a_run_taken_over_too_often_still_ledgers_the_microvm_aws_started() {
    let w = world();
    // RunMicrovm succeeded, the ledger write failed: the result is kept on
    // an item that stays `executing`.
    w.ledger.fail_writes.store(true, Ordering::SeqCst);
    let first = w.svc.submit(&ci(), run(|_| {})).await;
    let Err(ServiceError::Unrecorded { request_id: id, .. }) = first else {
        panic!("{first:?}")
    };
    let vm = format!("vm-{id}");
    let max = w.svc.options().reconcile_max_attempts;
    for _ in 0..max {
        w.clock
            .advance(w.svc.options().executing_timeout_seconds + 1);
        let r = w.svc.reconcile().await.unwrap();
        assert_eq!(r.left, 1, "{r:?}");
    }
    assert_eq!(
        w.store.get(&id).await.unwrap().unwrap().reconcile_attempts,
        max
    );
    // The ledger is back; the attempts are used up.
    w.ledger.fail_writes.store(false, Ordering::SeqCst);
    w.clock
        .advance(w.svc.options().executing_timeout_seconds + 1);
    let r = w.svc.reconcile().await.unwrap();
    assert_eq!(r.executed, 1, "{r:?}");
    let rec = w.store.get(&id).await.unwrap().unwrap();
    assert_eq!(rec.state, State::Executed);
    assert!(
        w.ledger
            .entries()
            .iter()
            .any(|e| e.microvm_id.as_deref() == Some(vm.as_str())
                && e.contro1_request_id == id
                && e.outcome == "succeeded"),
        "the running MicroVM has its ledger item"
    );
    assert_eq!(w.vms.runs.lock().unwrap().len(), 1, "never issued again");
}
