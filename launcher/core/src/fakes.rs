//! In-memory implementations of the ports, for unit tests of the state
//! machine and the use cases (and for the local simulator's store). They keep
//! the same contracts as the real adapters: conditional transitions, a token
//! taken at most once.

use crate::approval::State;
use crate::ports::{
    ApprovalRequest, Approvals, ApprovalsError, AuditEvent, BoxFut, Clock, Finish, Ledger,
    LedgerError, LifecycleOutput, MicrovmApi, MicrovmError, PendingRecord, PendingStore,
    PutOutcome, RunCall, RunOutput, Secret, StoreError, TokenOutput, Transition,
};
use crate::request::{Lifecycle, Ports};
use shared_core::LedgerEntry;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The pending table in memory.
#[derive(Default)]
pub struct MemoryStore {
    items: Mutex<HashMap<String, (PendingRecord, Option<Secret>)>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

impl PendingStore for MemoryStore {
    fn put_pending<'a>(
        &'a self,
        rec: &'a PendingRecord,
    ) -> BoxFut<'a, Result<PutOutcome, StoreError>> {
        Box::pin(async move {
            let mut items = lock(&self.items);
            if items.contains_key(&rec.request_id) {
                return Ok(PutOutcome::AlreadyExists);
            }
            items.insert(rec.request_id.clone(), (rec.clone(), None));
            Ok(PutOutcome::Created)
        })
    }

    fn get<'a>(
        &'a self,
        request_id: &'a str,
    ) -> BoxFut<'a, Result<Option<PendingRecord>, StoreError>> {
        Box::pin(async move { Ok(lock(&self.items).get(request_id).map(|(r, _)| r.clone())) })
    }

    fn transition<'a>(
        &'a self,
        request_id: &'a str,
        from: State,
        to: State,
    ) -> BoxFut<'a, Result<Transition, StoreError>> {
        Box::pin(async move {
            let mut items = lock(&self.items);
            match items.get_mut(request_id) {
                Some((r, _)) if r.state == from && from.can_transition(to) => {
                    r.state = to;
                    Ok(Transition::Done)
                }
                Some((r, _)) => Ok(Transition::LostRace {
                    current: Some(r.state),
                }),
                None => Ok(Transition::LostRace { current: None }),
            }
        })
    }

    fn finish<'a>(
        &'a self,
        request_id: &'a str,
        finish: Finish,
    ) -> BoxFut<'a, Result<Transition, StoreError>> {
        Box::pin(async move {
            let mut items = lock(&self.items);
            match items.get_mut(request_id) {
                Some((r, tok))
                    if r.state == State::Executing
                        && State::Executing.can_transition(finish.state) =>
                {
                    r.state = finish.state;
                    r.result = finish.result;
                    r.error = finish.error;
                    r.has_token = finish.token.is_some();
                    *tok = finish.token;
                    Ok(Transition::Done)
                }
                other => Ok(Transition::LostRace {
                    current: other.map(|(r, _)| r.state),
                }),
            }
        })
    }

    fn take_token_once<'a>(
        &'a self,
        request_id: &'a str,
    ) -> BoxFut<'a, Result<Option<Secret>, StoreError>> {
        Box::pin(async move {
            let mut items = lock(&self.items);
            Ok(items.get_mut(request_id).and_then(|(r, tok)| {
                r.has_token = false;
                tok.take()
            }))
        })
    }
}

/// The ledger in memory.
#[derive(Default)]
pub struct MemoryLedger {
    pub entries: Mutex<Vec<LedgerEntry>>,
    pub fail_writes: AtomicBool,
}

impl MemoryLedger {
    pub fn entries(&self) -> Vec<LedgerEntry> {
        lock(&self.entries).clone()
    }
    /// Pretend the launcher started this MicroVM.
    pub fn seed_vm(&self, entry: LedgerEntry) {
        lock(&self.entries).push(entry);
    }
}

impl Ledger for MemoryLedger {
    fn record<'a>(&'a self, entry: &'a LedgerEntry) -> BoxFut<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            if self.fail_writes.load(Ordering::SeqCst) {
                return Err(LedgerError {
                    message: "injected failure".into(),
                });
            }
            lock(&self.entries).push(entry.clone());
            Ok(())
        })
    }

    fn microvm<'a>(
        &'a self,
        microvm_id: &'a str,
    ) -> BoxFut<'a, Result<Option<LedgerEntry>, LedgerError>> {
        Box::pin(async move {
            Ok(lock(&self.entries)
                .iter()
                .find(|e| {
                    e.operation == "RunMicrovm"
                        && e.outcome == "succeeded"
                        && e.microvm_id.as_deref() == Some(microvm_id)
                })
                .cloned())
        })
    }
}

/// A MicroVMs API that records every call.
#[derive(Default)]
pub struct RecordingMicrovms {
    pub calls: Mutex<Vec<String>>,
    pub runs: Mutex<Vec<RunCall>>,
    counter: AtomicU64,
    pub fail: AtomicBool,
}

impl RecordingMicrovms {
    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }

    fn next(&self, op: &'static str, what: String) -> Result<String, MicrovmError> {
        lock(&self.calls).push(what);
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(MicrovmError::Rejected {
                operation: op,
                code: "ValidationException".into(),
                message: "injected".into(),
                aws_request_id: Some(format!("req-fail-{n}")),
            });
        }
        Ok(format!("req-{n}"))
    }
}

impl MicrovmApi for RecordingMicrovms {
    fn run<'a>(&'a self, call: &'a RunCall) -> BoxFut<'a, Result<RunOutput, MicrovmError>> {
        Box::pin(async move {
            let req = self.next("RunMicrovm", format!("RunMicrovm {}", call.client_token))?;
            lock(&self.runs).push(call.clone());
            Ok(RunOutput {
                microvm_id: format!("vm-{}", call.client_token),
                state: "PENDING".into(),
                endpoint: None,
                aws_request_id: Some(req),
            })
        })
    }

    fn auth_token<'a>(
        &'a self,
        microvm_id: &'a str,
        _ports: &'a Ports,
        _expiration_minutes: u32,
    ) -> BoxFut<'a, Result<TokenOutput, MicrovmError>> {
        Box::pin(async move {
            let req = self.next(
                "CreateMicrovmAuthToken",
                format!("CreateMicrovmAuthToken {microvm_id}"),
            )?;
            Ok(TokenOutput {
                token: Secret::new(format!("tok-{req}")),
                aws_request_id: Some(req),
            })
        })
    }

    fn shell_token<'a>(
        &'a self,
        microvm_id: &'a str,
        _expiration_minutes: u32,
    ) -> BoxFut<'a, Result<TokenOutput, MicrovmError>> {
        Box::pin(async move {
            let req = self.next(
                "CreateMicrovmShellAuthToken",
                format!("CreateMicrovmShellAuthToken {microvm_id}"),
            )?;
            Ok(TokenOutput {
                token: Secret::new(format!("shell-{req}")),
                aws_request_id: Some(req),
            })
        })
    }

    fn lifecycle<'a>(
        &'a self,
        microvm_id: &'a str,
        op: Lifecycle,
    ) -> BoxFut<'a, Result<LifecycleOutput, MicrovmError>> {
        Box::pin(async move {
            let req = self.next("Lifecycle", format!("{op:?} {microvm_id}"))?;
            Ok(LifecycleOutput {
                state: None,
                aws_request_id: Some(req),
            })
        })
    }
}

/// Contro1 in memory: numbered ids, idempotent by key, can be made unavailable.
#[derive(Default)]
pub struct MemoryApprovals {
    pub requests: Mutex<Vec<ApprovalRequest>>,
    pub audits: Mutex<Vec<AuditEvent>>,
    by_key: Mutex<HashMap<String, String>>,
    counter: AtomicU64,
    pub down: AtomicBool,
}

impl MemoryApprovals {
    pub fn audits(&self) -> Vec<AuditEvent> {
        lock(&self.audits).clone()
    }
}

impl Approvals for MemoryApprovals {
    fn create_request<'a>(
        &'a self,
        req: &'a ApprovalRequest,
    ) -> BoxFut<'a, Result<String, ApprovalsError>> {
        Box::pin(async move {
            if self.down.load(Ordering::SeqCst) {
                return Err(ApprovalsError::Unavailable {
                    message: "injected".into(),
                });
            }
            let mut by_key = lock(&self.by_key);
            if let Some(id) = by_key.get(&req.idempotency_key) {
                return Ok(id.clone());
            }
            let id = format!("rq-{}", self.counter.fetch_add(1, Ordering::SeqCst));
            by_key.insert(req.idempotency_key.clone(), id.clone());
            lock(&self.requests).push(req.clone());
            Ok(id)
        })
    }

    fn audit<'a>(&'a self, event: &'a AuditEvent) -> BoxFut<'a, Result<String, ApprovalsError>> {
        Box::pin(async move {
            if self.down.load(Ordering::SeqCst) {
                return Err(ApprovalsError::Unavailable {
                    message: "injected".into(),
                });
            }
            lock(&self.audits).push(event.clone());
            Ok(format!(
                "ar-{}",
                self.counter.fetch_add(1, Ordering::SeqCst)
            ))
        })
    }
}

/// A clock the test moves.
#[derive(Debug, Default)]
pub struct ManualClock(pub AtomicI64);

impl ManualClock {
    pub fn at(t: i64) -> ManualClock {
        ManualClock(AtomicI64::new(t))
    }
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
