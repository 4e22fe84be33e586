//! In-memory implementations of the ports, for unit tests of the decisions
//! (dedupe order, sweep join, remediation, trail health). The adapters
//! themselves are tested against moto, the emulator and the Contro1 stand-in
//! in `detector/tests/`.

use super::alert::{Alert, ListedMicrovm};
use super::alerter::Alerter;
use super::ports::{
    AlertChannel, Auditor, Clock, DedupeStore, LedgerReader, LogSink, Marks, MicrovmPage,
    MicrovmsApi, PortError, PortResult, Target, TargetPorts, TargetsApi, TrailInfo, TrailsApi,
};
use futures::FutureExt;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Marks per key: channel → expiry.
#[derive(Default)]
pub struct FakeDedupe {
    pub marks: Mutex<HashMap<String, HashMap<String, i64>>>,
    pub fail_reads: AtomicBool,
    pub fail_marks: AtomicBool,
}

impl DedupeStore for FakeDedupe {
    fn marks<'a>(&'a self, key: &'a str) -> PortResult<'a, Marks> {
        async move {
            if self.fail_reads.load(Ordering::SeqCst) {
                return Err(PortError::new("fake dedupe", "down"));
            }
            Ok(Marks {
                all: false,
                channels: self
                    .marks
                    .lock()
                    .unwrap()
                    .get(key)
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default(),
            })
        }
        .boxed()
    }
    fn mark<'a>(
        &'a self,
        key: &'a str,
        channels: &'a [&'a str],
        expires_at: i64,
    ) -> PortResult<'a, ()> {
        async move {
            if self.fail_marks.load(Ordering::SeqCst) {
                return Err(PortError::new("fake dedupe", "throttled"));
            }
            let mut marks = self.marks.lock().unwrap();
            let item = marks.entry(key.to_string()).or_default();
            for ch in channels {
                item.insert(ch.to_string(), expires_at);
            }
            Ok(())
        }
        .boxed()
    }
}

pub struct FakeChannel {
    pub name: &'static str,
    pub delivered: Mutex<Vec<Alert>>,
    /// The size of each batch handed to the channel.
    pub batches: Mutex<Vec<usize>>,
    pub fail: AtomicBool,
    /// How long each batch takes to deliver.
    pub delay: Mutex<std::time::Duration>,
}

impl Default for FakeChannel {
    fn default() -> FakeChannel {
        FakeChannel::named("fake")
    }
}

impl FakeChannel {
    pub fn named(name: &'static str) -> FakeChannel {
        FakeChannel {
            name,
            delivered: Mutex::default(),
            batches: Mutex::default(),
            fail: AtomicBool::default(),
            delay: Mutex::default(),
        }
    }
}

impl AlertChannel for FakeChannel {
    fn name(&self) -> &'static str {
        self.name
    }
    fn deliver<'a>(&'a self, alert: &'a Alert) -> PortResult<'a, ()> {
        async move {
            if self.fail.load(Ordering::SeqCst) {
                return Err(PortError::new("fake channel", "topic does not exist"));
            }
            self.delivered.lock().unwrap().push(alert.clone());
            Ok(())
        }
        .boxed()
    }
    fn deliver_batch<'a>(
        &'a self,
        alerts: &'a [&'a Alert],
    ) -> futures::future::BoxFuture<'a, Vec<Result<(), PortError>>> {
        async move {
            self.batches.lock().unwrap().push(alerts.len());
            let delay = *self.delay.lock().unwrap();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut out = Vec::new();
            for a in alerts {
                out.push(self.deliver(a).await);
            }
            out
        }
        .boxed()
    }
}

#[derive(Default)]
pub struct FakeLog {
    pub lines: Mutex<Vec<serde_json::Value>>,
}

impl LogSink for FakeLog {
    fn line(&self, value: &serde_json::Value) {
        self.lines.lock().unwrap().push(value.clone());
    }
}

pub struct FixedClock(pub AtomicI64);

impl Clock for FixedClock {
    fn now_epoch(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Default)]
pub struct FakeLedger {
    pub vms: Mutex<HashSet<String>>,
    pub requests: Mutex<HashSet<String>>,
    pub reads: AtomicUsize,
}

impl LedgerReader for FakeLedger {
    fn known_microvms<'a>(&'a self, ids: &'a [String]) -> PortResult<'a, HashSet<String>> {
        async move {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let vms = self.vms.lock().unwrap();
            Ok(ids.iter().filter(|i| vms.contains(*i)).cloned().collect())
        }
        .boxed()
    }
    fn known_requests<'a>(&'a self, ids: &'a [String]) -> PortResult<'a, HashSet<String>> {
        async move {
            let r = self.requests.lock().unwrap();
            Ok(ids.iter().filter(|i| r.contains(*i)).cloned().collect())
        }
        .boxed()
    }
}

/// Pages of `page_size` over a fixed list; records remediation calls.
#[derive(Default)]
pub struct FakeMicrovms {
    pub vms: Vec<ListedMicrovm>,
    pub pages_served: AtomicUsize,
    pub suspended: Mutex<Vec<String>>,
    pub terminated: Mutex<Vec<String>>,
}

impl MicrovmsApi for FakeMicrovms {
    fn list_page<'a>(
        &'a self,
        next_token: Option<&'a str>,
        max_results: i32,
    ) -> PortResult<'a, MicrovmPage> {
        async move {
            self.pages_served.fetch_add(1, Ordering::SeqCst);
            let start: usize = next_token.map_or(0, |t| t.parse().unwrap());
            let end = (start + max_results as usize).min(self.vms.len());
            Ok(MicrovmPage {
                items: self.vms[start..end].to_vec(),
                next_token: (end < self.vms.len()).then(|| end.to_string()),
            })
        }
        .boxed()
    }
    fn suspend<'a>(&'a self, id: &'a str) -> PortResult<'a, ()> {
        async move {
            self.suspended.lock().unwrap().push(id.to_string());
            Ok(())
        }
        .boxed()
    }
    fn terminate<'a>(&'a self, id: &'a str) -> PortResult<'a, ()> {
        async move {
            self.terminated.lock().unwrap().push(id.to_string());
            Ok(())
        }
        .boxed()
    }
}

#[derive(Default)]
pub struct FakeTrails {
    pub trails: Vec<TrailInfo>,
}

impl TrailsApi for FakeTrails {
    fn trails(&self) -> PortResult<'_, Vec<TrailInfo>> {
        let t = self.trails.clone();
        async move { Ok(t) }.boxed()
    }
}

#[derive(Default)]
pub struct FakeAuditor {
    pub records: Mutex<Vec<contro1::AuditRecord>>,
}

impl Auditor for FakeAuditor {
    fn audit<'a>(&'a self, record: &'a contro1::AuditRecord) -> PortResult<'a, ()> {
        async move {
            self.records.lock().unwrap().push(record.clone());
            Ok(())
        }
        .boxed()
    }
}

/// An alerter over fakes, with handles on each.
pub struct Rig {
    pub dedupe: Arc<FakeDedupe>,
    pub channel: Arc<FakeChannel>,
    pub log: Arc<FakeLog>,
    pub clock: Arc<FixedClock>,
}

impl Rig {
    pub fn new(now: i64) -> Rig {
        Rig {
            dedupe: Arc::default(),
            channel: Arc::default(),
            log: Arc::default(),
            clock: Arc::new(FixedClock(AtomicI64::new(now))),
        }
    }
    pub fn alerter(&self) -> Alerter {
        Alerter::new(
            self.dedupe.clone(),
            vec![self.channel.clone()],
            self.log.clone(),
            self.clock.clone(),
        )
    }
}

pub fn vm(id: &str, state: &str, started_at: i64) -> ListedMicrovm {
    ListedMicrovm {
        microvm_id: id.to_string(),
        state: state.to_string(),
        image_arn: Some("arn:aws:lambda:us-east-1:111122223333:microvm-image:sandbox".into()),
        image_version: Some("1".into()),
        started_at: Some(started_at),
    }
}

/// The integrity check's port: a baseline text and one observed function
/// (or none), failing on demand.
#[derive(Default)]
pub struct FakeFunctions {
    pub baseline: Mutex<Option<String>>,
    pub observed: Mutex<Option<crate::lambda::integrity::ObservedFunction>>,
    pub fail_observe: AtomicBool,
}

impl FakeFunctions {
    /// Functions exactly as `b` records them.
    pub fn intact(b: &crate::lambda::integrity::FunctionBaseline) -> FakeFunctions {
        use crate::lambda::integrity::{AliasInfo, ObservedFunction, Snapshot};
        let snap = Snapshot {
            code_sha256: "sha".into(),
            role: b.execution_role_arn.clone(),
            ..Snapshot::default()
        };
        let observed = ObservedFunction {
            latest: snap.clone(),
            deployed: Some(snap),
            aliases: b
                .aliases
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        AliasInfo {
                            version: v.clone(),
                            routing: None,
                        },
                    )
                })
                .collect(),
            urls: b.url_auth_types.clone(),
            permissions: b.permissions.iter().cloned().collect(),
            event_sources: b
                .event_source_arns
                .iter()
                .map(|a| (a.clone(), "Enabled".to_string()))
                .collect(),
            reserved_concurrency: b.reserved_concurrency,
        };
        FakeFunctions {
            observed: Mutex::new(Some(observed)),
            ..FakeFunctions::default()
        }
    }
}

impl crate::lambda::ports::FunctionsApi for FakeFunctions {
    fn baseline<'a>(&'a self, parameter: &'a str) -> PortResult<'a, String> {
        async move {
            self.baseline.lock().unwrap().clone().ok_or_else(|| {
                PortError::new(format!("SSM GetParameter {parameter}"), "ParameterNotFound")
            })
        }
        .boxed()
    }
    fn observe<'a>(
        &'a self,
        _function: &'a crate::lambda::integrity::FunctionBaseline,
    ) -> PortResult<'a, Option<crate::lambda::integrity::ObservedFunction>> {
        async move {
            if self.fail_observe.load(Ordering::SeqCst) {
                return Err(PortError::new(
                    "Lambda GetFunction",
                    "AccessDeniedException: denied",
                ));
            }
            Ok(self.observed.lock().unwrap().clone())
        }
        .boxed()
    }
}

/// The heartbeat item, in memory.
#[derive(Default)]
pub struct FakeHeartbeat {
    pub last: Mutex<Option<i64>>,
    pub first: Mutex<Option<i64>>,
    pub fail: AtomicBool,
}

impl crate::lambda::ports::HeartbeatStore for FakeHeartbeat {
    fn beat(&self, now: i64) -> PortResult<'_, ()> {
        async move {
            let mut last = self.last.lock().unwrap();
            *last = Some(last.map_or(now, |l| l.max(now)));
            Ok(())
        }
        .boxed()
    }
    fn last_beat(&self, now: i64) -> PortResult<'_, (Option<i64>, i64)> {
        async move {
            if self.fail.load(Ordering::SeqCst) {
                return Err(PortError::new("dedupe table", "throttled"));
            }
            let first = *self.first.lock().unwrap().get_or_insert(now);
            Ok((*self.last.lock().unwrap(), first))
        }
        .boxed()
    }
}

/// Targets over fakes: each target's MicroVMs and ledger, a default for
/// any other target (tests with one target), and targets that cannot be
/// reached (their role cannot be assumed).
#[derive(Default)]
pub struct FakeTargets {
    pub targets: HashMap<Target, TargetPorts>,
    pub default: Option<TargetPorts>,
    pub unreachable: HashSet<Target>,
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    /// Calls to `ports`, in order.
    pub asked: Mutex<Vec<Target>>,
}

impl FakeTargets {
    /// Every target is this one fleet and ledger.
    pub fn one(microvms: Arc<dyn MicrovmsApi>, ledger: Arc<dyn LedgerReader>) -> FakeTargets {
        FakeTargets {
            default: Some(TargetPorts { microvms, ledger }),
            ..Default::default()
        }
    }
}

impl TargetsApi for FakeTargets {
    fn ports<'a>(&'a self, t: &'a Target) -> PortResult<'a, TargetPorts> {
        async move {
            self.asked.lock().unwrap().push(t.clone());
            if self.unreachable.contains(t) {
                return Err(PortError::new(
                    format!("STS AssumeRole arn:aws:iam::{}:role/sweep", t.account),
                    "AccessDenied: not authorized to perform sts:AssumeRole",
                ));
            }
            self.targets
                .get(t)
                .or(self.default.as_ref())
                .cloned()
                .ok_or_else(|| PortError::new(t.to_string(), "no such target in the fake"))
        }
        .boxed()
    }
    fn ledger<'a>(&'a self, account: &'a str) -> PortResult<'a, Arc<dyn LedgerReader>> {
        async move {
            self.targets
                .iter()
                .find(|(t, _)| t.account == account)
                .map(|(_, p)| p)
                .or(self.default.as_ref())
                .map(|p| p.ledger.clone())
                .ok_or_else(|| PortError::new(account, "no ledger in the fake"))
        }
        .boxed()
    }
    fn reaches(&self, _account: &str) -> bool {
        true
    }

    fn organization_accounts(&self) -> PortResult<'_, Vec<String>> {
        let a = self.accounts.clone();
        async move { Ok(a) }.boxed()
    }
    fn enabled_regions(&self) -> PortResult<'_, Vec<String>> {
        let r = self.regions.clone();
        async move { Ok(r) }.boxed()
    }
}

/// Fakes for every sweep port, with the integrity and heartbeat ports
/// borrowed from the test.
pub struct FakePorts<'a> {
    pub targets: FakeTargets,
    pub trails: FakeTrails,
    pub auditor: FakeAuditor,
    pub functions: &'a FakeFunctions,
    pub heartbeat: &'a FakeHeartbeat,
}

impl FakePorts<'_> {
    pub fn ports(&self) -> crate::lambda::sweep::SweepPorts<'_> {
        crate::lambda::sweep::SweepPorts {
            targets: &self.targets,
            trails: &self.trails,
            auditor: &self.auditor,
            functions: self.functions,
            heartbeat: self.heartbeat,
            queue: None,
        }
    }
}

pub fn ports_with<'a>(functions: &'a FakeFunctions, heartbeat: &'a FakeHeartbeat) -> FakePorts<'a> {
    FakePorts {
        targets: FakeTargets::one(
            Arc::new(FakeMicrovms::default()),
            Arc::new(FakeLedger::default()),
        ),
        trails: FakeTrails::default(),
        auditor: FakeAuditor::default(),
        functions,
        heartbeat,
    }
}

/// One version of a key in [`FakeObjects`]: `None` body is a delete marker.
struct FakeVersion {
    id: Option<String>,
    body: Option<Vec<u8>>,
}

/// A versioned bucket in memory: every put adds a version (newest last), as
/// S3 does with versioning enabled.
#[derive(Default)]
pub struct FakeObjects {
    keys: Mutex<HashMap<(String, String), Vec<FakeVersion>>>,
    next: AtomicUsize,
    head_calls: AtomicUsize,
    pub fail_heads: AtomicBool,
}

impl FakeObjects {
    /// Put a new version; its id.
    pub fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> String {
        let id = format!("v{}", self.next.fetch_add(1, Ordering::SeqCst));
        self.push(bucket, key, Some(id.clone()), Some(body));
        id
    }
    /// Put an object with no version id (an unversioned bucket).
    pub fn put_unversioned(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.push(bucket, key, None, Some(body));
    }
    /// Make a delete marker the key's current version.
    pub fn delete_marker(&self, bucket: &str, key: &str) {
        let id = format!("v{}", self.next.fetch_add(1, Ordering::SeqCst));
        self.push(bucket, key, Some(id), None);
    }
    /// `HeadObject` calls served.
    pub fn heads(&self) -> usize {
        self.head_calls.load(Ordering::SeqCst)
    }
    fn push(&self, bucket: &str, key: &str, id: Option<String>, body: Option<Vec<u8>>) {
        self.keys
            .lock()
            .unwrap()
            .entry((bucket.to_string(), key.to_string()))
            .or_default()
            .push(FakeVersion { id, body });
    }
}

impl crate::lambda::ports::ObjectStore for FakeObjects {
    fn open<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
    ) -> PortResult<'a, crate::lambda::ports::ObjectBody> {
        async move {
            let keys = self.keys.lock().unwrap();
            let versions = keys
                .get(&(bucket.to_string(), key.to_string()))
                .ok_or_else(|| PortError::new("fake S3 GetObject", "NoSuchKey"))?;
            let found = match version_id {
                Some(v) => versions
                    .iter()
                    .find(|f| f.id.as_deref() == Some(v))
                    .ok_or_else(|| PortError::new("fake S3 GetObject", "NoSuchVersion"))?,
                None => versions
                    .last()
                    .ok_or_else(|| PortError::new("fake S3 GetObject", "NoSuchKey"))?,
            };
            let body = found
                .body
                .clone()
                .ok_or_else(|| PortError::new("fake S3 GetObject", "NoSuchKey (delete marker)"))?;
            Ok(Box::new(std::io::Cursor::new(body)) as crate::lambda::ports::ObjectBody)
        }
        .boxed()
    }
    fn latest<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> PortResult<'a, crate::lambda::ports::LatestVersion> {
        use crate::lambda::ports::LatestVersion;
        async move {
            self.head_calls.fetch_add(1, Ordering::SeqCst);
            if self.fail_heads.load(Ordering::SeqCst) {
                return Err(PortError::new("fake S3 HeadObject", "AccessDenied"));
            }
            let keys = self.keys.lock().unwrap();
            Ok(
                match keys
                    .get(&(bucket.to_string(), key.to_string()))
                    .and_then(|v| v.last())
                {
                    None | Some(FakeVersion { body: None, .. }) => LatestVersion::Absent,
                    Some(FakeVersion { id: Some(id), .. }) => LatestVersion::Id(id.clone()),
                    Some(FakeVersion { id: None, .. }) => LatestVersion::Unversioned,
                },
            )
        }
        .boxed()
    }
    fn has_version<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: &'a str,
    ) -> PortResult<'a, bool> {
        async move {
            self.head_calls.fetch_add(1, Ordering::SeqCst);
            if self.fail_heads.load(Ordering::SeqCst) {
                return Err(PortError::new("fake S3 HeadObject", "AccessDenied"));
            }
            let keys = self.keys.lock().unwrap();
            Ok(keys
                .get(&(bucket.to_string(), key.to_string()))
                .is_some_and(|versions| {
                    versions
                        .iter()
                        .any(|f| f.id.as_deref() == Some(version_id) && f.body.is_some())
                }))
        }
        .boxed()
    }
}

impl FakeObjects {
    /// Delete one version for good (`DeleteObject` with `versionId`).
    pub fn delete_version(&self, bucket: &str, key: &str, version_id: &str) {
        if let Some(versions) = self
            .keys
            .lock()
            .unwrap()
            .get_mut(&(bucket.to_string(), key.to_string()))
        {
            versions.retain(|f| f.id.as_deref() != Some(version_id));
        }
    }
}
