//! The use cases and the approval state machine over the in-memory ports.

mod common;

use common::*;
use launcher_core::agents::Caller;
use launcher_core::fakes::*;
use launcher_core::ports::Clock;
use launcher_core::{CallbackOutcome, Resolution, ServiceError, State, Submitted};
use std::sync::atomic::Ordering;

#[tokio::test]
async fn auto_approved_run_audits_first_then_calls_aws_with_the_audit_id_then_records_the_ledger() {
    let w = world();
    let Submitted::Executed {
        request_id, result, ..
    } = w.svc.submit(&ci(), run(|_| {})).await.unwrap()
    else {
        panic!("not executed")
    };
    let audits = w.c1.audits();
    assert_eq!(audits[0].action, shared_core::Event::RunRequested);
    assert_eq!(audits[1].action, shared_core::Event::RunCreated);
    let runs = w.vms.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].client_token, request_id);
    let hook: serde_json::Value = serde_json::from_str(&runs[0].run_hook_payload).unwrap();
    assert_eq!(hook["contro1_request_id"], request_id.as_str());
    assert_eq!(hook["agent_id"], "ci");
    assert_eq!(hook["owner"], "team-a");
    assert_eq!(hook["correlation_id"], "case-1");
    let entries = w.ledger.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].contro1_request_id, request_id);
    assert_eq!(entries[0].aws_request_id, result.aws_request_id);
    assert_eq!(entries[0].microvm_id, result.microvm_id);
}

#[tokio::test]
async fn contro1_down_means_no_aws_call_for_auto_and_approval_paths() {
    let w = world();
    w.c1.down.store(true, Ordering::SeqCst);
    assert!(matches!(
        w.svc.submit(&ci(), run(|_| {})).await,
        Err(ServiceError::Approvals(_))
    ));
    assert!(matches!(
        w.svc
            .submit(&ci(), run(|r| r.duration_seconds = 5000))
            .await,
        Err(ServiceError::Approvals(_))
    ));
    assert!(w.vms.calls().is_empty());
    assert!(w.ledger.entries().is_empty());
}

#[tokio::test]
async fn approved_callback_executes_the_stored_input_once_even_when_replayed() {
    let w = world();
    let id = pending_id(&w, run(|r| r.duration_seconds = 5000)).await;
    assert!(w.vms.calls().is_empty());
    let first = approve(&w, &id).await;
    assert_eq!(
        first,
        CallbackOutcome::Executed {
            state: State::Executed
        }
    );
    for _ in 0..3 {
        let again = w.svc.on_callback(&id, Resolution::Approved).await.unwrap();
        assert_eq!(
            again,
            CallbackOutcome::AlreadyProcessed {
                state: Some(State::Executed)
            }
        );
    }
    let runs = w.vms.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].max_duration_seconds, 5000);
    assert_eq!(runs[0].client_token, id);
}

#[tokio::test]
async fn concurrent_callbacks_execute_once() {
    let w = world();
    let id = pending_id(&w, run(|r| r.duration_seconds = 5000)).await;
    w.c1.decide(&id, Resolution::Approved);
    let mut handles = Vec::new();
    for _ in 0..10 {
        let svc = w.svc.clone();
        let id = id.clone();
        handles.push(tokio::spawn(async move {
            svc.on_callback(&id, Resolution::Approved).await
        }));
    }
    let mut executed = 0;
    for h in handles {
        if matches!(h.await.unwrap().unwrap(), CallbackOutcome::Executed { .. }) {
            executed += 1;
        }
    }
    assert_eq!(executed, 1);
    assert_eq!(w.vms.calls().len(), 1);
}

#[tokio::test]
async fn denied_expired_and_cancelled_callbacks_make_no_aws_call() {
    let w = world();
    for (i, res) in [
        Resolution::Denied,
        Resolution::Expired,
        Resolution::Cancelled,
    ]
    .into_iter()
    .enumerate()
    {
        let id = pending_id(&w, run(|r| r.duration_seconds = 1000 + i as u32)).await;
        let out = w.svc.on_callback(&id, res).await.unwrap();
        assert_eq!(
            out,
            CallbackOutcome::Recorded {
                state: res.next_state()
            }
        );
        // A later approval for the same request does nothing.
        let late = w.svc.on_callback(&id, Resolution::Approved).await.unwrap();
        assert!(matches!(late, CallbackOutcome::AlreadyProcessed { .. }));
    }
    assert!(w.vms.calls().is_empty());
}

#[tokio::test]
async fn an_approval_arriving_after_the_pending_lifetime_is_treated_as_expired() {
    let w = world();
    let id = pending_id(&w, run(|r| r.duration_seconds = 5000)).await;
    w.clock.advance(601);
    assert!(w.clock.now() > 0);
    let out = w.svc.on_callback(&id, Resolution::Approved).await.unwrap();
    assert_eq!(
        out,
        CallbackOutcome::Recorded {
            state: State::Expired
        }
    );
    assert!(w.vms.calls().is_empty());
}

#[tokio::test]
async fn unknown_request_is_not_found() {
    let w = world();
    assert!(matches!(
        w.svc.on_callback("nope", Resolution::Approved).await,
        Err(ServiceError::NotFound { .. })
    ));
}

#[tokio::test]
async fn shell_token_is_returned_once_and_only_to_the_agent_that_asked() {
    let w = world();
    // The VM must be in the ledger (started through the launcher) to get a shell token.
    let vm = managed_vm(&w).await;
    let id = pending_id(&w, shell(&vm)).await;
    approve(&w, &id).await;
    let other = Caller::Bearer {
        token: "other-token".into(),
    };
    assert!(matches!(
        w.svc.get_request(&other, &id).await,
        Err(ServiceError::NotFound { .. })
    ));
    let first = w.svc.get_request(&ci(), &id).await.unwrap();
    assert_eq!(first.state, State::Executed);
    assert!(first.token.as_ref().unwrap().expose().starts_with("shell-"));
    let second = w.svc.get_request(&ci(), &id).await.unwrap();
    assert!(second.token.is_none());
    assert!(second.token_already_returned);
    assert!(w.store.get_sync_has_no_token(&id).await);
}

#[tokio::test]
async fn body_agent_id_that_disagrees_is_refused_before_anything_else() {
    let w = world();
    let r = w
        .svc
        .submit(&ci(), run(|r| r.agent_id = Some("other".into())))
        .await;
    assert!(matches!(r, Err(ServiceError::Spoofed { .. })));
    assert!(w.vms.calls().is_empty());
    // Claiming one's own id is fine.
    assert!(
        w.svc
            .submit(&ci(), run(|r| r.agent_id = Some("ci".into())))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn unknown_iam_principal_is_blocked_and_audited() {
    let w = world();
    let r = w
        .svc
        .submit(
            &Caller::Iam {
                arn: "arn:aws:sts::111122223333:assumed-role/stranger/s".into(),
            },
            run(|_| {}),
        )
        .await
        .unwrap();
    let Submitted::Blocked {
        decision,
        audit_record_id,
    } = r
    else {
        panic!()
    };
    assert_eq!(decision.rule_id, "agent.unknown");
    assert!(audit_record_id.is_some());
    assert_eq!(w.c1.audits()[0].action, shared_core::Event::RunDenied);
    assert!(w.vms.calls().is_empty());
}

/// Regression: an anonymous caller, or a bearer token nobody holds, got its
/// body validated and then a 403 with a Contro1 audit record; it is now
/// refused as unauthenticated before anything else, Contro1 untouched.
#[tokio::test]
async fn an_unidentified_caller_is_unauthenticated_and_contro1_is_not_touched() {
    let w = world();
    for caller in [
        Caller::Anonymous,
        Caller::Bearer {
            token: "guess".into(),
        },
    ] {
        let r = w
            .svc
            .submit(&caller, run(|r| r.reason = String::new()))
            .await;
        assert!(matches!(r, Err(ServiceError::Unauthenticated)), "{r:?}");
        let r = w.svc.get_request(&caller, "rq-1").await;
        assert!(matches!(r, Err(ServiceError::Unauthenticated)), "{r:?}");
    }
    assert!(w.c1.audits().is_empty());
    assert!(w.vms.calls().is_empty());
}

#[tokio::test]
async fn ledger_failure_after_the_call_withholds_the_result() {
    let w = world();
    w.ledger.fail_writes.store(true, Ordering::SeqCst);
    let r = w.svc.submit(&ci(), run(|_| {})).await;
    assert!(matches!(r, Err(ServiceError::Unrecorded { .. })), "{r:?}");
    // The execution is kept for the reconciler, with what AWS answered.
    let Err(ServiceError::Unrecorded { request_id, .. }) = r else {
        unreachable!()
    };
    use launcher_core::ports::PendingStore;
    let rec = w.store.get(&request_id).await.unwrap().unwrap();
    assert_eq!(rec.state, State::Executing);
    assert!(rec.result.unwrap().microvm_id.is_some());
}

#[tokio::test]
async fn identical_requests_map_to_the_same_pending_request() {
    let w = world();
    let a = pending_id(&w, run(|r| r.duration_seconds = 5000)).await;
    let b = pending_id(&w, run(|r| r.duration_seconds = 5000)).await;
    assert_eq!(a, b);
    let c = pending_id(&w, run(|r| r.duration_seconds = 5001)).await;
    assert_ne!(a, c);
}

trait NoToken {
    async fn get_sync_has_no_token(&self, id: &str) -> bool;
}

impl NoToken for MemoryStore {
    async fn get_sync_has_no_token(&self, id: &str) -> bool {
        use launcher_core::ports::PendingStore;
        let rec = self.get(id).await.unwrap().unwrap();
        !rec.has_token && self.take_token_once(id, "").await.unwrap().is_none()
    }
}
