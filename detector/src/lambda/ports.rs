//! The edges of the detector Lambda as small traits ("ports"), so the
//! decisions (what to alert, what to suppress, what to remediate, whether
//! detection is degraded) are tested with in-memory fakes, and the AWS and
//! Contro1 adapters in [`super::aws`] are tested against moto, the MicroVMs
//! emulator and the Contro1 stand-in.
//!
//! Futures are boxed so the ports are object-safe and `State` holds
//! `Arc<dyn ...>`.

use super::alert::{Alert, ListedMicrovm};
use futures::future::BoxFuture;
use std::collections::HashSet;

/// Failure at an edge. `what` names the service and operation, `message`
/// carries the SDK's full error context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {message}")]
pub struct PortError {
    pub what: String,
    pub message: String,
}

impl PortError {
    pub fn new(what: impl Into<String>, message: impl Into<String>) -> PortError {
        PortError {
            what: what.into(),
            message: message.into(),
        }
    }
}

pub type PortResult<'a, T> = BoxFuture<'a, Result<T, PortError>>;

/// Which channels already delivered one finding (an unexpired mark).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    /// A mark written before delivery was recorded per channel: every
    /// channel had delivered.
    pub all: bool,
    pub channels: std::collections::BTreeSet<String>,
}

impl Marks {
    pub fn delivered(&self, channel: &str) -> bool {
        self.all || self.channels.contains(channel)
    }
}

/// One key's marks to record: every channel that has delivered it, and
/// when the marks expire (Unix seconds, TTL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkWrite {
    pub key: String,
    pub channels: Vec<String>,
    pub expires_at: i64,
}

/// The alert de-duplication table: per finding key, the channels that
/// delivered it.
pub trait DedupeStore: Send + Sync {
    /// The channels that already delivered this key.
    fn marks<'a>(&'a self, key: &'a str) -> PortResult<'a, Marks>;
    /// Record that `channels` delivered the key, in one write that keeps
    /// the marks of other channels (idempotent). `expires_at` is Unix
    /// seconds (TTL).
    fn mark<'a>(
        &'a self,
        key: &'a str,
        channels: &'a [&'a str],
        expires_at: i64,
    ) -> PortResult<'a, ()>;
    /// Record several marks; one result per write, in order. Each write
    /// names every channel known to have delivered its key (the channels
    /// read before delivery included), so a store may replace the key's
    /// marks in one batched put instead of updating them one key at a time.
    /// By default, [`DedupeStore::mark`] a few at a time.
    fn mark_many<'a>(
        &'a self,
        writes: &'a [MarkWrite],
    ) -> BoxFuture<'a, Vec<Result<(), PortError>>> {
        use futures::StreamExt;
        Box::pin(
            futures::stream::iter(writes.iter().map(move |w| async move {
                let channels: Vec<&str> = w.channels.iter().map(String::as_str).collect();
                self.mark(&w.key, &channels, w.expires_at).await
            }))
            .buffered(DELIVERY_CONCURRENCY)
            .collect(),
        )
    }
    /// The marks of several keys (absent keys have none). Stores that can
    /// read in batches override it.
    fn marks_many<'a>(
        &'a self,
        keys: &'a [String],
    ) -> PortResult<'a, std::collections::HashMap<String, Marks>> {
        Box::pin(async move {
            let mut out = std::collections::HashMap::new();
            for k in keys {
                out.insert(k.clone(), self.marks(k).await?);
            }
            Ok(out)
        })
    }
}

/// A place an alert is delivered to (SNS topic, Contro1 audit records, ...).
pub trait AlertChannel: Send + Sync {
    fn name(&self) -> &'static str;
    fn deliver<'a>(&'a self, alert: &'a Alert) -> PortResult<'a, ()>;
    /// Deliver several alerts; one result per alert, in order. Channels with
    /// a batch API override it; by default a few at a time.
    fn deliver_batch<'a>(
        &'a self,
        alerts: &'a [&'a Alert],
    ) -> futures::future::BoxFuture<'a, Vec<Result<(), PortError>>> {
        use futures::StreamExt;
        Box::pin(
            futures::stream::iter(alerts.iter().map(|a| self.deliver(a)))
                .buffered(DELIVERY_CONCURRENCY)
                .collect(),
        )
    }
}

/// Deliveries in flight at once on a channel without a batch API.
pub const DELIVERY_CONCURRENCY: usize = 8;

/// Where structured JSON log lines go (stderr in the Lambda and the CLI; a
/// buffer in tests).
pub trait LogSink: Send + Sync {
    fn line(&self, value: &serde_json::Value);
}

/// The launcher's ledger, read side.
pub trait LedgerReader: Send + Sync {
    fn known_microvms<'a>(&'a self, ids: &'a [String]) -> PortResult<'a, HashSet<String>>;
    fn known_requests<'a>(&'a self, request_ids: &'a [String]) -> PortResult<'a, HashSet<String>>;
}

/// One account and region the sweep covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub account: String,
    pub region: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.account, self.region)
    }
}

/// The MicroVMs and the ledger of one target.
#[derive(Clone)]
pub struct TargetPorts {
    pub microvms: std::sync::Arc<dyn MicrovmsApi>,
    pub ledger: std::sync::Arc<dyn LedgerReader>,
}

/// The accounts and regions of an organization, as far as the sweep and
/// the ledger check need them.
pub trait TargetsApi: Send + Sync {
    /// The MicroVMs API and ledger of `target` (in another account, through
    /// the sweep role assumed there).
    fn ports<'a>(&'a self, target: &'a Target) -> PortResult<'a, TargetPorts>;
    /// The ledger of `account`, for launcher calls seen in CloudTrail.
    fn ledger<'a>(&'a self, account: &'a str) -> PortResult<'a, std::sync::Arc<dyn LedgerReader>>;
    /// Whether `account` can be reached at all (its own account, or a sweep
    /// role is configured). `false` is a configuration gap a retry cannot
    /// close, unlike a failed AssumeRole.
    fn reaches(&self, account: &str) -> bool;
    /// The organization's active accounts (Organizations `ListAccounts`).
    fn organization_accounts(&self) -> PortResult<'_, Vec<String>>;
    /// The regions enabled for the detector's account (Account `ListRegions`).
    fn enabled_regions(&self) -> PortResult<'_, Vec<String>>;
}

/// Where the scheduled sweep hands out its targets when they are too many
/// for one invocation: one message per target (SQS), each swept by its own
/// invocation.
pub trait SweepQueue: Send + Sync {
    /// Queue one message per target. `Err` names what was not queued.
    fn enqueue<'a>(&'a self, targets: &'a [Target]) -> PortResult<'a, ()>;
}

/// One page of `ListMicrovms`.
#[derive(Debug, Clone, Default)]
pub struct MicrovmPage {
    pub items: Vec<ListedMicrovm>,
    pub next_token: Option<String>,
}

/// The MicroVMs API, as far as the sweep needs it.
pub trait MicrovmsApi: Send + Sync {
    fn list_page<'a>(
        &'a self,
        next_token: Option<&'a str>,
        max_results: i32,
    ) -> PortResult<'a, MicrovmPage>;
    fn suspend<'a>(&'a self, microvm_id: &'a str) -> PortResult<'a, ()>;
    fn terminate<'a>(&'a self, microvm_id: &'a str) -> PortResult<'a, ()>;
}

pub use detector_core::selectors::FieldCondition;

/// What CloudTrail says about one trail. A trail whose status or selectors
/// could not be read carries the error in `read_error` (and is judged on
/// that alone): one unreadable trail never hides the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrailInfo {
    pub name: String,
    pub arn: String,
    pub home_region: Option<String>,
    pub is_multi_region: bool,
    pub is_organization_trail: bool,
    /// The bucket the trail delivers to.
    pub s3_bucket_name: Option<String>,
    pub is_logging: bool,
    /// Advanced event selectors: each a list of field conditions (ANDed).
    pub advanced_selectors: Vec<Vec<FieldCondition>>,
    /// Basic event selectors cannot select MicroVM data events; counted only
    /// to say so in the alert.
    pub basic_selectors: usize,
    /// `GetTrailStatus.LatestDeliveryError`.
    pub latest_delivery_error: Option<String>,
    /// `GetTrailStatus.LatestDigestDeliveryError`.
    pub latest_digest_delivery_error: Option<String>,
    /// Why this trail's status or selectors could not be read.
    pub read_error: Option<String>,
}

/// The CloudTrail API, as far as trail health needs it.
pub trait TrailsApi: Send + Sync {
    /// Every trail the detector's region can see (shadow trails of
    /// multi-region and organization trails included), each read in its
    /// home region. `Err` only when the trails cannot be listed at all.
    fn trails(&self) -> PortResult<'_, Vec<TrailInfo>>;
}

/// The governance functions and their recorded baseline, as far as the
/// integrity check needs them.
pub trait FunctionsApi: Send + Sync {
    /// The value of the baseline parameter.
    fn baseline<'a>(&'a self, parameter: &'a str) -> PortResult<'a, String>;
    /// The function as it is now; `Ok(None)` when it does not exist.
    fn observe<'a>(
        &'a self,
        function: &'a super::integrity::FunctionBaseline,
    ) -> PortResult<'a, Option<super::integrity::ObservedFunction>>;
}

/// When a CloudTrail log object was last read (the heartbeat), kept across
/// invocations.
pub trait HeartbeatStore: Send + Sync {
    /// Record that log objects were read at `now` (keeps the latest time).
    fn beat(&self, now: i64) -> PortResult<'_, ()>;
    /// `(last object read, first time the sweep looked)`; the second is
    /// recorded on the first call, so a detector that never read an object
    /// is found out too.
    fn last_beat(&self, now: i64) -> PortResult<'_, (Option<i64>, i64)>;
}

/// Unix time, injected so tests can move it.
pub trait Clock: Send + Sync {
    fn now_epoch(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_epoch(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// Log lines as JSON on stderr, one per line.
#[derive(Debug, Clone, Copy, Default)]
pub struct StderrLog;

impl LogSink for StderrLog {
    fn line(&self, value: &serde_json::Value) {
        use std::io::Write;
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{value}");
    }
}

/// Contro1 audit records for actions the detector itself takes
/// (remediation). Findings go through [`AlertChannel`].
pub trait Auditor: Send + Sync {
    fn audit<'a>(&'a self, record: &'a contro1::AuditRecord) -> PortResult<'a, ()>;
}

/// A readable object body (S3 GetObject streamed, never buffered whole).
pub type ObjectBody = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// What a key holds now, as a read without a version id sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LatestVersion {
    /// The current version's id (`null` for an object written while the
    /// bucket's versioning was suspended).
    Id(String),
    /// The current object has no version id: the bucket is not versioned.
    Unversioned,
    /// No current object: the key was deleted (a delete marker) or expired.
    Absent,
}

/// Where CloudTrail log files are read from.
pub trait ObjectStore: Send + Sync {
    /// Open `key` at `version_id` (S3 `GetObject` with `versionId`), or its
    /// current version when `None`. The body is streamed.
    fn open<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
    ) -> PortResult<'a, ObjectBody>;
    /// The key's current version (S3 `HeadObject` without a version id).
    fn latest<'a>(&'a self, bucket: &'a str, key: &'a str) -> PortResult<'a, LatestVersion>;
    /// Whether `version_id` of `key` still exists as an object (S3
    /// `HeadObject` with `versionId`): `false` when S3 answers that it is
    /// not there (deleted for good) or is a delete marker; an error when S3
    /// cannot say (access denied, throttling, a malformed id).
    fn has_version<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: &'a str,
    ) -> PortResult<'a, bool>;
}
