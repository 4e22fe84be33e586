//! The hardening issue's defects, each pinned over the in-memory ports:
//! approvals bound to Contro1's truth, nothing stuck in `executing`, an
//! auto-approved retry never starting a second MicroVM, a per-agent limit
//! on approval requests, targets that must exist, and every attempt's AWS
//! request id in the ledger.

mod common;

use common::*;
use launcher_core::agents::Caller;
use launcher_core::fakes::*;
use launcher_core::ports::{Clock, PendingStore};
use launcher_core::{
    CallbackOutcome, Options, PortSet, Resolution, Service, ServiceError, State, Submitted,
};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Regression: approve a shell token; the pending item disappears (TTL);
/// the agent asks again and got `202 pending` with the same Contro1 id
/// although Contro1 had answered; re-delivering the approval executed again.
#[tokio::test]
async fn one_approval_never_executes_twice_after_its_pending_item_is_gone() {
    let w = world();
    let vm = managed_vm(&w).await;
    let id = pending_id(&w, shell(&vm)).await;
    assert_eq!(
        approve(&w, &id).await,
        CallbackOutcome::Executed {
            state: State::Executed
        }
    );
    w.store.expire(&id);
    let again = w.svc.submit(&ci(), shell(&vm)).await;
    assert!(
        matches!(&again, Err(ServiceError::AlreadyDecided { request_id, .. }) if *request_id == id),
        "{again:?}"
    );
    let redelivered = w.svc.on_callback(&id, Resolution::Approved).await;
    assert!(
        matches!(redelivered, Err(ServiceError::NotFound { .. })),
        "{redelivered:?}"
    );
    let shells = w
        .vms
        .calls()
        .iter()
        .filter(|c| c.starts_with("CreateMicrovmShellAuthToken"))
        .count();
    assert_eq!(shells, 1);
}

/// A validly signed approval is acted on only when Contro1 itself says the
/// request is approved; when Contro1 says otherwise, its word is recorded.
#[tokio::test]
async fn an_approval_executes_only_when_contro1_confirms_it() {
    let w = world();
    let id = pending_id(&w, run(|r| r.duration_seconds = 5000)).await;
    let r = w.svc.on_callback(&id, Resolution::Approved).await;
    assert!(matches!(r, Err(ServiceError::Unconfirmed { .. })), "{r:?}");
    assert_eq!(w.c1.lookups.load(Ordering::SeqCst), 2, "create + callback");
    w.c1.decide(&id, Resolution::Denied);
    let r = w.svc.on_callback(&id, Resolution::Approved).await.unwrap();
    assert_eq!(
        r,
        CallbackOutcome::Recorded {
            state: State::Denied
        }
    );
    assert!(w.vms.calls().is_empty());
    // Contro1 unreachable at callback time: nothing happens, it can redeliver.
    let id = pending_id(&w, run(|r| r.duration_seconds = 5001)).await;
    w.c1.decide(&id, Resolution::Approved);
    w.c1.down.store(true, Ordering::SeqCst);
    let r = w.svc.on_callback(&id, Resolution::Approved).await;
    assert!(matches!(r, Err(ServiceError::Approvals(_))), "{r:?}");
    w.c1.down.store(false, Ordering::SeqCst);
    assert_eq!(
        w.svc.on_callback(&id, Resolution::Approved).await.unwrap(),
        CallbackOutcome::Executed {
            state: State::Executed
        }
    );
    assert_eq!(w.vms.calls().len(), 1);
}

/// Regression: a crash between the conditional write and the result left
/// the item `executing` forever. The reconciler issues RunMicrovm again
/// with the same clientToken, completes the ledger and the agent sees
/// `executed`; a token call is failed and audited, never issued again.
#[tokio::test]
async fn the_reconciler_finishes_a_run_and_fails_a_token_left_executing() {
    let w = world();
    let vm = managed_vm(&w).await;
    let run_id = pending_id(&w, run(|r| r.duration_seconds = 5000)).await;
    let shell_id = pending_id(&w, shell(&vm)).await;
    let now = w.clock.now();
    // Contro1 recorded the approvals (the reconciler asks it again).
    w.c1.decide(&run_id, Resolution::Approved);
    w.c1.decide(&shell_id, Resolution::Approved);
    for id in [&run_id, &shell_id] {
        // The callback's conditional write happened; then the function died.
        w.store
            .transition(id, State::Pending, State::Executing, now)
            .await
            .unwrap();
    }
    let calls_before = w.vms.calls().len();
    // Within the function's timeout nothing is touched.
    let early = w.svc.reconcile().await.unwrap();
    assert_eq!(early.examined, 0);
    w.clock
        .advance(w.svc.options().executing_timeout_seconds + 1);
    let report = w.svc.reconcile().await.unwrap();
    assert_eq!((report.executed, report.failed), (1, 1), "{report:?}");
    let calls = w.vms.calls();
    assert_eq!(calls.len(), calls_before + 1, "{calls:?}");
    assert_eq!(calls.last().unwrap(), &format!("RunMicrovm {run_id}"));
    let view = w.svc.get_request(&ci(), &run_id).await.unwrap();
    assert_eq!(view.state, State::Executed);
    let started = view.result.unwrap().microvm_id.unwrap();
    assert!(
        w.ledger
            .entries()
            .iter()
            .any(|e| e.microvm_id.as_deref() == Some(started.as_str()))
    );
    let view = w.svc.get_request(&ci(), &shell_id).await.unwrap();
    assert_eq!(view.state, State::Failed);
    assert!(view.token.is_none());
    assert!(view.error.unwrap().contains("not issued again"));
    assert!(
        w.c1.audits()
            .iter()
            .any(|a| a.metadata["reconciled"] == true
                && a.outcome == "failure"
                && a.action == shared_core::Event::ShellTokenApproved)
    );
    // A second run finds nothing.
    assert_eq!(w.svc.reconcile().await.unwrap().examined, 0);
}

/// Regression: a failed ledger write after an auto-approved RunMicrovm
/// answered 500; the agent's retry got a new audit id, so a new clientToken,
/// so a second MicroVM. With an `Idempotency-Key` the retry answers "in
/// progress", the reconciler records the VM, and the retry then gets the
/// first result: one RunMicrovm in all.
#[tokio::test]
async fn an_auto_approved_retry_with_the_same_idempotency_key_never_starts_a_second_microvm() {
    let w = world();
    let key = Some("build-77-attempt");
    w.ledger.fail_writes.store(true, Ordering::SeqCst);
    let first = w.svc.submit_with_key(&ci(), run(|_| {}), key).await;
    let Err(ServiceError::Unrecorded { request_id, .. }) = first else {
        panic!("{first:?}")
    };
    let retry = w.svc.submit_with_key(&ci(), run(|_| {}), key).await;
    assert!(
        matches!(retry, Err(ServiceError::InProgress { .. })),
        "{retry:?}"
    );
    w.ledger.fail_writes.store(false, Ordering::SeqCst);
    w.clock
        .advance(w.svc.options().executing_timeout_seconds + 1);
    let report = w.svc.reconcile().await.unwrap();
    assert_eq!(report.executed, 1, "{report:?}");
    let retry = w
        .svc
        .submit_with_key(&ci(), run(|_| {}), key)
        .await
        .unwrap();
    let Submitted::Executed {
        request_id: again,
        replayed,
        result,
        ..
    } = retry
    else {
        panic!("{retry:?}")
    };
    assert_eq!((again.as_str(), replayed), (request_id.as_str(), true));
    assert_eq!(w.vms.runs.lock().unwrap().len(), 1, "one RunMicrovm in all");
    assert!(
        w.ledger
            .entries()
            .iter()
            .any(|e| e.microvm_id == result.microvm_id)
    );
    // The same key with another request is refused; without a key it is a new run.
    let other = w
        .svc
        .submit_with_key(&ci(), run(|r| r.duration_seconds = 300), key)
        .await;
    assert!(
        matches!(other, Err(ServiceError::KeyReused { .. })),
        "{other:?}"
    );
    // Another agent's identical key is its own.
    let theirs = w
        .svc
        .submit_with_key(
            &Caller::Bearer {
                token: "other-token".into(),
            },
            run(|_| {}),
            key,
        )
        .await
        .unwrap();
    assert!(matches!(
        theirs,
        Submitted::Executed {
            replayed: false,
            ..
        }
    ));
}

#[tokio::test]
async fn concurrent_requests_with_one_idempotency_key_start_one_microvm() {
    let w = world();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let svc = w.svc.clone();
        tasks.push(tokio::spawn(async move {
            svc.submit_with_key(&ci(), run(|_| {}), Some("same")).await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(Submitted::Executed { request_id, .. }) => {
                ids.insert(request_id);
            }
            Err(ServiceError::InProgress { request_id }) => {
                ids.insert(request_id);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(w.vms.runs.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn approval_requests_are_limited_per_agent_per_minute() {
    let w = world();
    let per_minute = w.svc.options().approval_requests_per_minute;
    for i in 0..per_minute {
        pending_id(&w, run(|r| r.duration_seconds = 2000 + i)).await;
    }
    let created = w.c1.requests.lock().unwrap().len();
    let r = w
        .svc
        .submit(&ci(), run(|r| r.duration_seconds = 1000))
        .await;
    assert!(
        matches!(r, Err(ServiceError::RateLimited { retry_after_seconds, .. }) if (1..=60).contains(&retry_after_seconds)),
        "{r:?}"
    );
    assert_eq!(
        w.c1.requests.lock().unwrap().len(),
        created,
        "Contro1 untouched"
    );
    // Another agent has its own budget; the next minute has a new one.
    let other = Caller::Bearer {
        token: "other-token".into(),
    };
    assert!(matches!(
        w.svc
            .submit(&other, run(|r| r.duration_seconds = 1000))
            .await,
        Ok(Submitted::Pending { .. })
    ));
    w.clock.advance(60);
    assert!(matches!(
        w.svc
            .submit(&ci(), run(|r| r.duration_seconds = 1000))
            .await,
        Ok(Submitted::Pending { .. })
    ));
}

/// Regression: terminating a MicroVM that does not exist opened an approval.
#[tokio::test]
async fn a_target_that_does_not_exist_is_refused_before_policy_audit_or_approval() {
    let w = world();
    w.vms.absent.lock().unwrap().insert("microvm-gone".into());
    let terminate = launcher_core::Action::Lifecycle {
        microvm_id: "microvm-gone".into(),
        op: launcher_core::request::Lifecycle::Terminate,
        request: launcher_core::request::LifecycleRequest {
            agent_id: None,
            owner: Some("team-a".into()),
            reason: "r".into(),
            environment: None,
            correlation_id: None,
            metadata: serde_json::json!({}),
        },
    };
    let r = w.svc.submit(&ci(), terminate).await;
    assert!(
        matches!(r, Err(ServiceError::NoSuchMicrovm { .. })),
        "{r:?}"
    );
    assert!(w.c1.requests.lock().unwrap().is_empty());
    assert!(w.c1.audits().is_empty());
}

/// Every attempt's AWS request id gets its own `call#` item.
#[tokio::test]
async fn every_attempt_request_id_reaches_the_ledger() {
    struct Retrying(RecordingMicrovms);
    impl launcher_core::ports::MicrovmApi for Retrying {
        fn run<'a>(
            &'a self,
            call: &'a launcher_core::ports::RunCall,
        ) -> launcher_core::ports::BoxFut<
            'a,
            Result<launcher_core::ports::RunOutput, launcher_core::ports::MicrovmError>,
        > {
            Box::pin(async move {
                let mut out = self.0.run(call).await?;
                out.attempt_request_ids
                    .insert(0, "throttled-attempt".into());
                Ok(out)
            })
        }
        fn auth_token<'a>(
            &'a self,
            id: &'a str,
            p: &'a launcher_core::request::Ports,
            m: u32,
        ) -> launcher_core::ports::BoxFut<
            'a,
            Result<launcher_core::ports::TokenOutput, launcher_core::ports::MicrovmError>,
        > {
            self.0.auth_token(id, p, m)
        }
        fn shell_token<'a>(
            &'a self,
            id: &'a str,
            m: u32,
        ) -> launcher_core::ports::BoxFut<
            'a,
            Result<launcher_core::ports::TokenOutput, launcher_core::ports::MicrovmError>,
        > {
            self.0.shell_token(id, m)
        }
        fn lifecycle<'a>(
            &'a self,
            id: &'a str,
            op: launcher_core::request::Lifecycle,
        ) -> launcher_core::ports::BoxFut<
            'a,
            Result<launcher_core::ports::LifecycleOutput, launcher_core::ports::MicrovmError>,
        > {
            self.0.lifecycle(id, op)
        }
        fn exists<'a>(
            &'a self,
            id: &'a str,
        ) -> launcher_core::ports::BoxFut<'a, Result<bool, launcher_core::ports::MicrovmError>>
        {
            self.0.exists(id)
        }
        fn started_since<'a>(
            &'a self,
            image_arn: &'a str,
            since: i64,
        ) -> launcher_core::ports::BoxFut<'a, Result<Vec<String>, launcher_core::ports::MicrovmError>>
        {
            self.0.started_since(image_arn, since)
        }
    }
    let w = world();
    let ledger = Arc::new(MemoryLedger::default());
    let ports = PortSet {
        store: Arc::new(MemoryStore::new()),
        ledger: ledger.clone(),
        microvms: Arc::new(Retrying(RecordingMicrovms::default())),
        approvals: w.c1.clone(),
        clock: w.clock.clone(),
    };
    let svc = Service::with_options(w.svc.config().clone(), ports, Options::default());
    let Submitted::Executed { result, .. } = svc.submit(&ci(), run(|_| {})).await.unwrap() else {
        panic!()
    };
    let keys = ledger.call_keys();
    assert_eq!(
        keys,
        vec![
            "call#throttled-attempt".to_string(),
            format!("call#{}", result.aws_request_id.unwrap())
        ]
    );
}
