//! In-memory implementations of the ports, for unit tests of the state
//! machine and the use cases (and for the local simulator's store). They keep
//! the same contracts as the real adapters: conditional transitions, a token
//! taken at most once.

use crate::approval::{Resolution, State};
use crate::ports::{
    ApprovalRequest, Approvals, ApprovalsError, AuditEvent, BoxFut, Clock, ExecResult, Finish,
    KeyClaim, Ledger, LedgerError, LifecycleOutput, MicrovmApi, MicrovmError, PendingRecord,
    PendingStore, PutOutcome, RequestStatus, RunCall, RunOutput, Secret, StoreError, TokenOutput,
    Transition,
};
use crate::request::{Lifecycle, Ports};
use shared_core::LedgerEntry;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A pending item and its token with the binding it was sealed under.
type StoredItem = (PendingRecord, Option<(Secret, String)>);

/// The pending table in memory (tombstones are kept for the process's life).
#[derive(Default)]
pub struct MemoryStore {
    /// Each item, with its token and the binding it was stored under.
    items: Mutex<HashMap<String, StoredItem>>,
    keys: Mutex<HashMap<String, KeyClaim>>,
    counters: Mutex<HashMap<(String, i64), u32>>,
    /// Makes every write fail (a storage outage).
    pub fail_writes: AtomicBool,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Forget an item, as DynamoDB's TTL would.
    pub fn expire(&self, request_id: &str) {
        lock(&self.items).remove(request_id);
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(StoreError {
                message: "injected failure".into(),
            });
        }
        Ok(())
    }
}

impl PendingStore for MemoryStore {
    fn put_pending<'a>(
        &'a self,
        rec: &'a PendingRecord,
    ) -> BoxFut<'a, Result<PutOutcome, StoreError>> {
        Box::pin(async move {
            self.check_writable()?;
            let mut items = lock(&self.items);
            if items.contains_key(&rec.request_id) {
                return Ok(PutOutcome::AlreadyExists);
            }
            items.insert(rec.request_id.clone(), (rec.clone(), None));
            Ok(PutOutcome::Created)
        })
    }

    fn put_executing<'a>(
        &'a self,
        rec: &'a PendingRecord,
        key: Option<&'a KeyClaim>,
    ) -> BoxFut<'a, Result<PutOutcome, StoreError>> {
        Box::pin(async move {
            self.check_writable()?;
            let mut items = lock(&self.items);
            let mut keys = lock(&self.keys);
            if items.contains_key(&rec.request_id)
                || key.is_some_and(|k| keys.contains_key(&k.key_id))
            {
                return Ok(PutOutcome::AlreadyExists);
            }
            let mut rec = rec.clone();
            rec.state = State::Executing;
            items.insert(rec.request_id.clone(), (rec, None));
            if let Some(k) = key {
                keys.insert(k.key_id.clone(), k.clone());
            }
            Ok(PutOutcome::Created)
        })
    }

    fn get_key<'a>(&'a self, key_id: &'a str) -> BoxFut<'a, Result<Option<KeyClaim>, StoreError>> {
        Box::pin(async move { Ok(lock(&self.keys).get(key_id).cloned()) })
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
        now: i64,
    ) -> BoxFut<'a, Result<Transition, StoreError>> {
        Box::pin(async move {
            self.check_writable()?;
            let mut items = lock(&self.items);
            match items.get_mut(request_id) {
                Some((r, _)) if r.state == from && from.can_transition(to) => {
                    r.state = to;
                    r.executing_since = (to == State::Executing).then_some(now);
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
                    r.result = finish.result.or(r.result.take());
                    r.error = finish.error;
                    *tok = finish.token.zip(finish.token_binding);
                    r.has_token = tok.is_some();
                    r.executing_since = None;
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
        binding: &'a str,
    ) -> BoxFut<'a, Result<Option<Secret>, StoreError>> {
        Box::pin(async move {
            let mut items = lock(&self.items);
            let Some((r, tok)) = items.get_mut(request_id) else {
                return Ok(None);
            };
            match tok {
                Some((_, b)) if b != binding => Err(StoreError {
                    message: format!(
                        "item `{request_id}`: the token is bound to another agent, request or action"
                    ),
                }),
                _ => {
                    r.has_token = false;
                    Ok(tok.take().map(|(t, _)| t))
                }
            }
        })
    }

    fn save_result<'a>(
        &'a self,
        request_id: &'a str,
        result: &'a ExecResult,
    ) -> BoxFut<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.check_writable()?;
            if let Some((r, _)) = lock(&self.items).get_mut(request_id)
                && r.state == State::Executing
            {
                r.result = Some(result.clone());
            }
            Ok(())
        })
    }

    fn stuck<'a>(
        &'a self,
        cutoff: i64,
        limit: usize,
    ) -> BoxFut<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let items = lock(&self.items);
            let mut v: Vec<(i64, String)> = items
                .values()
                .filter(|(r, _)| r.state == State::Executing)
                .filter_map(|(r, _)| r.executing_since.map(|t| (t, r.request_id.clone())))
                .filter(|(t, _)| *t < cutoff)
                .collect();
            v.sort();
            Ok(v.into_iter().take(limit).map(|(_, id)| id).collect())
        })
    }

    fn lease<'a>(
        &'a self,
        request_id: &'a str,
        seen_since: i64,
        now: i64,
    ) -> BoxFut<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.check_writable()?;
            let mut items = lock(&self.items);
            match items.get_mut(request_id) {
                Some((r, _))
                    if r.state == State::Executing && r.executing_since == Some(seen_since) =>
                {
                    r.executing_since = Some(now);
                    r.reconcile_attempts += 1;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }

    fn count_in_window<'a>(
        &'a self,
        key: &'a str,
        window_end: i64,
        limit: u32,
    ) -> BoxFut<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.check_writable()?;
            let mut c = lock(&self.counters);
            let n = c.entry((key.to_string(), window_end)).or_insert(0);
            if *n >= limit {
                return Ok(false);
            }
            *n += 1;
            Ok(true)
        })
    }
}

impl MemoryStore {
    /// Move an item's `executing_since` (tests of the reconciler).
    pub fn set_executing_since(&self, request_id: &str, t: i64) {
        if let Some((r, _)) = lock(&self.items).get_mut(request_id) {
            r.executing_since = Some(t);
        }
    }
}

/// The ledger in memory.
#[derive(Default)]
pub struct MemoryLedger {
    pub entries: Mutex<Vec<LedgerEntry>>,
    /// Every `call#` key written (one per attempt).
    pub call_keys: Mutex<Vec<String>>,
    pub fail_writes: AtomicBool,
    /// Writes attempted, failed ones included.
    pub writes: AtomicU64,
}

impl MemoryLedger {
    pub fn entries(&self) -> Vec<LedgerEntry> {
        lock(&self.entries).clone()
    }
    pub fn call_keys(&self) -> Vec<String> {
        lock(&self.call_keys).clone()
    }
    /// Pretend the launcher started this MicroVM.
    pub fn seed_vm(&self, entry: LedgerEntry) {
        lock(&self.entries).push(entry);
    }
}

impl Ledger for MemoryLedger {
    fn record<'a>(
        &'a self,
        entry: &'a LedgerEntry,
        attempt_request_ids: &'a [String],
    ) -> BoxFut<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            self.writes.fetch_add(1, Ordering::SeqCst);
            if self.fail_writes.load(Ordering::SeqCst) {
                return Err(LedgerError {
                    message: "injected failure".into(),
                });
            }
            let mut keys = lock(&self.call_keys);
            for id in attempt_request_ids
                .iter()
                .chain(entry.aws_request_id.as_ref())
            {
                let k = shared_core::ledger::call_key(id);
                if !keys.contains(&k) {
                    keys.push(k);
                }
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

/// A MicroVMs API that records every call. Every MicroVM exists except
/// those listed in `absent`.
#[derive(Default)]
pub struct RecordingMicrovms {
    pub calls: Mutex<Vec<String>>,
    pub runs: Mutex<Vec<RunCall>>,
    counter: AtomicU64,
    pub fail: AtomicBool,
    pub absent: Mutex<HashSet<String>>,
    /// MicroVMs AWS started whose answer never reached the launcher
    /// (`(image_arn, microvm_id)`), listed by `started_since`.
    pub lost_runs: Mutex<Vec<(String, String)>>,
    /// Makes `started_since` fail (ListMicrovms unavailable).
    pub fail_list: AtomicBool,
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
                attempt_request_ids: vec![format!("req-fail-{n}")],
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
                attempt_request_ids: vec![req.clone()],
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
                attempt_request_ids: vec![req.clone()],
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
                attempt_request_ids: vec![req.clone()],
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
                attempt_request_ids: vec![req.clone()],
                aws_request_id: Some(req),
            })
        })
    }

    fn exists<'a>(&'a self, microvm_id: &'a str) -> BoxFut<'a, Result<bool, MicrovmError>> {
        Box::pin(async move { Ok(!lock(&self.absent).contains(microvm_id)) })
    }

    /// Every MicroVM of the image this fake started or was told was started
    /// (it keeps no start times: `since` is not applied).
    fn started_since<'a>(
        &'a self,
        image_arn: &'a str,
        _since: i64,
    ) -> BoxFut<'a, Result<Vec<String>, MicrovmError>> {
        Box::pin(async move {
            if self.fail_list.load(Ordering::SeqCst) {
                return Err(MicrovmError::Unavailable {
                    operation: "ListMicrovms",
                    message: "injected".into(),
                    aws_request_id: None,
                    attempt_request_ids: Vec::new(),
                });
            }
            let absent = lock(&self.absent).clone();
            let mut ids: Vec<String> = lock(&self.runs)
                .iter()
                .filter(|r| r.image_arn == image_arn)
                .map(|r| format!("vm-{}", r.client_token))
                .chain(
                    lock(&self.lost_runs)
                        .iter()
                        .filter(|(i, _)| i == image_arn)
                        .map(|(_, id)| id.clone()),
                )
                .filter(|id| !absent.contains(id))
                .collect();
            ids.dedup();
            Ok(ids)
        })
    }
}

/// Contro1 in memory: numbered ids, idempotent by key, can be made
/// unavailable. A request stays open until [`MemoryApprovals::decide`].
#[derive(Default)]
pub struct MemoryApprovals {
    pub requests: Mutex<Vec<ApprovalRequest>>,
    pub audits: Mutex<Vec<AuditEvent>>,
    by_key: Mutex<HashMap<String, String>>,
    decisions: Mutex<HashMap<String, Resolution>>,
    counter: AtomicU64,
    pub down: AtomicBool,
    /// `get_request` calls made.
    pub lookups: AtomicU64,
}

impl MemoryApprovals {
    pub fn audits(&self) -> Vec<AuditEvent> {
        lock(&self.audits).clone()
    }

    /// A reviewer decides request `id` (as Contro1 would record it).
    pub fn decide(&self, id: &str, resolution: Resolution) {
        lock(&self.decisions).insert(id.to_string(), resolution);
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

    fn get_request<'a>(
        &'a self,
        request_id: &'a str,
    ) -> BoxFut<'a, Result<RequestStatus, ApprovalsError>> {
        Box::pin(async move {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(ApprovalsError::Unavailable {
                    message: "injected".into(),
                });
            }
            let key = lock(&self.by_key)
                .iter()
                .find(|(_, id)| id.as_str() == request_id)
                .map(|(k, _)| k.clone())
                .ok_or_else(|| ApprovalsError::Rejected {
                    status: 404,
                    message: format!("request {request_id} not found"),
                })?;
            let req = lock(&self.requests)
                .iter()
                .find(|r| r.idempotency_key == key)
                .cloned();
            let decision = lock(&self.decisions).get(request_id).copied();
            Ok(RequestStatus {
                state: match decision {
                    None => "queued",
                    Some(Resolution::Approved | Resolution::Denied) => "answered",
                    Some(Resolution::Expired) => "expired",
                    Some(Resolution::Cancelled) => "cancelled",
                }
                .to_string(),
                decision,
                external_request_id: Some(key),
                action_type: req.as_ref().map(|r| r.action_type.to_string()),
                action_digest: req.as_ref().map(|r| r.idempotency_key.clone()),
                microvm_id: req.and_then(|r| r.microvm_id),
            })
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
