//! The ports: what the launcher needs from the outside world, as small traits
//! over plain types. The launcher crate implements them over DynamoDB, the
//! MicroVMs SDK and the Contro1 client; [`crate::fakes`] implements them in
//! memory for the state machine's unit tests.
//!
//! Methods return boxed futures so the traits stay object-safe
//! (`Arc<dyn PendingStore>`), built once at cold start.

use crate::approval::State;
use crate::policy::{Decision, RiskLevel};
use crate::request::{Action, Lifecycle, NetworkEgress, Ports};
use serde::{Deserialize, Serialize};
use shared_core::{Event, LedgerEntry};
use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A secret value (a MicroVM auth token). `Debug` and `Display` never show it;
/// it is serialised only where it is handed to the agent or stored for it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The outcome of a governed AWS call, without any secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResult {
    pub operation: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub microvm_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub aws_request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub token_expires_in_minutes: Option<u32>,
    /// The request id of every attempt, in order (each has a `call#` item).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub attempt_request_ids: Vec<String>,
}

/// One pending (or finished) approval, as the pending table holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingRecord {
    /// The Contro1 request id; also the `contro1_request_id` of the AWS call.
    pub request_id: String,
    pub agent_id: String,
    pub owner: String,
    /// The stored input: the only thing ever executed.
    pub action: Action,
    pub decision: Decision,
    pub idempotency_key: String,
    pub state: State,
    pub created_at: i64,
    /// Unix seconds after which an approval is no longer acted upon (and the
    /// table's TTL may delete the item).
    pub expires_at: i64,
    pub result: Option<ExecResult>,
    pub error: Option<String>,
    /// A token is stored and has not been fetched yet.
    pub has_token: bool,
    /// Unix seconds when the item entered `executing` (or a reconciler took
    /// it over); `None` in any other state.
    #[serde(default)]
    pub executing_since: Option<i64>,
    /// How many times a reconciler has taken this item over.
    #[serde(default)]
    pub reconcile_attempts: u32,
}

/// The pointer an `Idempotency-Key` leaves: which request the key started,
/// and the fingerprint of the action it was sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyClaim {
    /// SHA-256 over the agent and the key (never the raw key).
    pub key_id: String,
    pub request_id: String,
    /// [`crate::approval::idempotency_key`] of the action.
    pub fingerprint: String,
}

/// The pending table could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pending store: {message}")]
pub struct StoreError {
    pub message: String,
}

/// Result of [`PendingStore::put_pending`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    /// An item with this request id exists already (an idempotent retry).
    AlreadyExists,
}

/// Result of a conditional state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Done,
    /// The item was not in the expected state: another delivery won.
    LostRace {
        current: Option<State>,
    },
}

/// How an executing item ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// `Executed` or `Failed`.
    pub state: State,
    pub result: Option<ExecResult>,
    pub error: Option<String>,
    pub token: Option<Secret>,
    /// What the sealed token is bound to ([`crate::approval::token_binding`]:
    /// agent, request id and action digest); a token is stored only with it.
    pub token_binding: Option<String>,
}

impl Finish {
    /// `Failed` with this error and nothing else.
    pub fn failed(error: impl Into<String>) -> Finish {
        Finish {
            state: State::Failed,
            result: None,
            error: Some(error.into()),
            token: None,
            token_binding: None,
        }
    }
}

/// The pending table: pending approvals, executions in flight, and the
/// tombstones of finished ones (kept for the retention the store was built
/// with, so a redelivered callback finds them).
pub trait PendingStore: Send + Sync {
    /// Create the item (state `pending`) unless one with the same request id exists.
    fn put_pending<'a>(
        &'a self,
        rec: &'a PendingRecord,
    ) -> BoxFut<'a, Result<PutOutcome, StoreError>>;
    /// Create an auto-approved execution (state `executing`) and, with a
    /// key, the key's pointer, atomically: `AlreadyExists` when the key (or
    /// the request id) is taken, and then nothing was written.
    fn put_executing<'a>(
        &'a self,
        rec: &'a PendingRecord,
        key: Option<&'a KeyClaim>,
    ) -> BoxFut<'a, Result<PutOutcome, StoreError>>;
    /// The pointer of an `Idempotency-Key`, if the key was used.
    fn get_key<'a>(&'a self, key_id: &'a str) -> BoxFut<'a, Result<Option<KeyClaim>, StoreError>>;
    fn get<'a>(
        &'a self,
        request_id: &'a str,
    ) -> BoxFut<'a, Result<Option<PendingRecord>, StoreError>>;
    /// Move `from → to` only if the item is in `from` (a conditional write
    /// that a retry of the same write also passes). Entering `executing`
    /// stamps `executing_since`; a terminal state starts the tombstone's
    /// retention.
    fn transition<'a>(
        &'a self,
        request_id: &'a str,
        from: State,
        to: State,
        now: i64,
    ) -> BoxFut<'a, Result<Transition, StoreError>>;
    /// Move `executing → executed|failed` and store the result (and a token
    /// for the agent to fetch once).
    fn finish<'a>(
        &'a self,
        request_id: &'a str,
        finish: Finish,
    ) -> BoxFut<'a, Result<Transition, StoreError>>;
    /// Open the stored token under `binding` (the agent asking, the request
    /// id and the digest of the stored action) and only then remove it; `None`
    /// if there is none (any more). Of concurrent callers at most one gets it.
    /// A token that does not open (another binding, KMS unavailable) is an
    /// error and stays stored.
    fn take_token_once<'a>(
        &'a self,
        request_id: &'a str,
        binding: &'a str,
    ) -> BoxFut<'a, Result<Option<Secret>, StoreError>>;
    /// Keep the result of a call whose ledger write failed on an item that
    /// stays `executing`, so the reconciler can finish it without calling AWS.
    fn save_result<'a>(
        &'a self,
        request_id: &'a str,
        result: &'a ExecResult,
    ) -> BoxFut<'a, Result<(), StoreError>>;
    /// Up to `limit` request ids in `executing` since before `cutoff`, oldest first.
    fn stuck<'a>(
        &'a self,
        cutoff: i64,
        limit: usize,
    ) -> BoxFut<'a, Result<Vec<String>, StoreError>>;
    /// Take a stuck item over: only if it is still `executing` since
    /// `seen_since`, move `executing_since` to `now` and count the attempt.
    /// Of concurrent reconcilers one wins.
    fn lease<'a>(
        &'a self,
        request_id: &'a str,
        seen_since: i64,
        now: i64,
    ) -> BoxFut<'a, Result<bool, StoreError>>;
    /// Count one event under `key` in the window ending at `window_end`
    /// (unix seconds); `false` when `limit` events were already counted.
    fn count_in_window<'a>(
        &'a self,
        key: &'a str,
        window_end: i64,
        limit: u32,
    ) -> BoxFut<'a, Result<bool, StoreError>>;
}

/// The ledger could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger: {message}")]
pub struct LedgerError {
    pub message: String,
}

pub trait Ledger: Send + Sync {
    /// Record one governed call: a `call#` item for every attempt's AWS
    /// request id (`attempt_request_ids`, in order, and the entry's own), and
    /// the `vm#` item of a successful RunMicrovm.
    fn record<'a>(
        &'a self,
        entry: &'a LedgerEntry,
        attempt_request_ids: &'a [String],
    ) -> BoxFut<'a, Result<(), LedgerError>>;
    /// The `vm#` item of a MicroVM the launcher started, if any.
    fn microvm<'a>(
        &'a self,
        microvm_id: &'a str,
    ) -> BoxFut<'a, Result<Option<LedgerEntry>, LedgerError>>;
}

/// RunMicrovm, as the launcher makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCall {
    /// = contro1_request_id: a retried approval can never start a second VM.
    pub client_token: String,
    pub image_arn: String,
    pub image_version: Option<String>,
    pub execution_role_arn: String,
    pub max_duration_seconds: u32,
    pub network_egress: NetworkEgress,
    pub shell_access: bool,
    /// Compact JSON `{contro1_request_id, agent_id, owner, correlation_id}`.
    pub run_hook_payload: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    pub microvm_id: String,
    pub state: String,
    pub endpoint: Option<String>,
    pub aws_request_id: Option<String>,
    /// The request id of every attempt the SDK made, in order.
    pub attempt_request_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOutput {
    pub token: Secret,
    pub aws_request_id: Option<String>,
    pub attempt_request_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleOutput {
    pub state: Option<String>,
    pub aws_request_id: Option<String>,
    pub attempt_request_ids: Vec<String>,
}

/// A MicroVMs API call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MicrovmError {
    /// AWS answered with an error (validation, conflict, not found, denied...).
    #[error("{operation} rejected by AWS ({code}): {message}")]
    Rejected {
        operation: &'static str,
        code: String,
        message: String,
        aws_request_id: Option<String>,
        /// Every attempt's request id, in order.
        attempt_request_ids: Vec<String>,
    },
    /// No answer (network, timeout, throttling after retries).
    #[error("{operation} failed: {message}")]
    Unavailable {
        operation: &'static str,
        message: String,
        aws_request_id: Option<String>,
        attempt_request_ids: Vec<String>,
    },
}

impl MicrovmError {
    pub fn aws_request_id(&self) -> Option<&str> {
        match self {
            MicrovmError::Rejected { aws_request_id, .. }
            | MicrovmError::Unavailable { aws_request_id, .. } => aws_request_id.as_deref(),
        }
    }

    pub fn attempt_request_ids(&self) -> &[String] {
        match self {
            MicrovmError::Rejected {
                attempt_request_ids,
                ..
            }
            | MicrovmError::Unavailable {
                attempt_request_ids,
                ..
            } => attempt_request_ids,
        }
    }

    /// The error as the agent is told it: AWS's own code and message for a
    /// refusal (about the agent's input), nothing of the transport for an
    /// unavailable service (that chain names endpoints).
    pub fn public_message(&self) -> String {
        match self {
            MicrovmError::Rejected { .. } => self.to_string(),
            MicrovmError::Unavailable { operation, .. } => {
                format!("{operation} failed: the MicroVMs API did not answer")
            }
        }
    }

    /// AWS said the MicroVM does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, MicrovmError::Rejected { code, .. } if code == "ResourceNotFoundException")
    }
}

pub trait MicrovmApi: Send + Sync {
    fn run<'a>(&'a self, call: &'a RunCall) -> BoxFut<'a, Result<RunOutput, MicrovmError>>;
    fn auth_token<'a>(
        &'a self,
        microvm_id: &'a str,
        ports: &'a Ports,
        expiration_minutes: u32,
    ) -> BoxFut<'a, Result<TokenOutput, MicrovmError>>;
    fn shell_token<'a>(
        &'a self,
        microvm_id: &'a str,
        expiration_minutes: u32,
    ) -> BoxFut<'a, Result<TokenOutput, MicrovmError>>;
    /// Suspend, resume or terminate.
    fn lifecycle<'a>(
        &'a self,
        microvm_id: &'a str,
        op: Lifecycle,
    ) -> BoxFut<'a, Result<LifecycleOutput, MicrovmError>>;
    /// Does the MicroVM exist (GetMicrovm; not a governed call)?
    fn exists<'a>(&'a self, microvm_id: &'a str) -> BoxFut<'a, Result<bool, MicrovmError>>;
    /// The MicroVMs of `image_arn` started at or after `since` (epoch
    /// seconds) and not terminated (ListMicrovms filtered by image, every
    /// page; not a governed call): what an interrupted RunMicrovm may have
    /// started. The API has no lookup by `clientToken`, so this is the
    /// narrowest one it allows.
    fn started_since<'a>(
        &'a self,
        image_arn: &'a str,
        since: i64,
    ) -> BoxFut<'a, Result<Vec<String>, MicrovmError>>;
}

/// A human-review request to create in Contro1. Every text in it has been
/// through `shared_core::text`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApprovalRequest {
    /// The digest of the canonical action and agent
    /// ([`crate::approval::action_digest`]): Contro1's `external_request_id`
    /// and `metadata.context.action_digest`.
    pub idempotency_key: String,
    pub question: String,
    pub context: String,
    pub callback_url: String,
    pub risk_level: RiskLevel,
    pub required_role: String,
    pub sla_minutes: u32,
    pub decision: Decision,
    pub correlation_id: Option<String>,
    pub agent_id: String,
    /// The asking agent's team (the registry's `owner`).
    pub requested_by_team: String,
    /// Whose the target is: for a MicroVM-targeted action the owner team of
    /// the agent that started it (from the ledger and the registry, never
    /// the asker's text); for a run, the owner the asker stated.
    pub owner: String,
    /// The agent that started the target MicroVM (from the ledger).
    pub owner_agent_id: Option<String>,
    /// The owner the asker wrote in its body.
    pub stated_owner: String,
    pub action_type: &'static str,
    pub microvm_id: Option<String>,
    pub metadata: serde_json::Value,
}

/// One audit event: a Contro1 audit record and a JSON log line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub action: Event,
    pub summary: String,
    pub agent_id: String,
    pub microvm_id: Option<String>,
    /// `success` or `failure`.
    pub outcome: &'static str,
    /// `info`, `warning` or `critical`.
    pub severity: &'static str,
    pub correlation_id: Option<String>,
    pub external_request_id: Option<String>,
    /// The Contro1 request or audit record this one follows.
    pub in_reply_to: Option<ReplyTo>,
    pub metadata: serde_json::Value,
}

/// What an audit record follows up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum ReplyTo {
    Request(String),
    AuditRecord(String),
}

impl ReplyTo {
    pub fn id(&self) -> &str {
        match self {
            ReplyTo::Request(id) | ReplyTo::AuditRecord(id) => id,
        }
    }
}

/// Contro1 could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalsError {
    /// Down, slow (timeout) or 429/5xx after bounded retries: fail closed.
    #[error("Contro1 unavailable: {message}")]
    Unavailable { message: String },
    /// An attempt took longer than the client's timeout: fail closed.
    #[error("Contro1 timed out: {message}")]
    TimedOut { message: String },
    /// Contro1 refused the call (4xx): fail closed, and it is a bug or misconfiguration.
    #[error("Contro1 rejected the call (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
}

impl ApprovalsError {
    /// The error as an agent is told it: what kind of failure, never
    /// Contro1's own text (that goes to the log under a reference).
    pub fn public_message(&self) -> String {
        match self {
            ApprovalsError::Unavailable { .. } => "Contro1 is unavailable".into(),
            ApprovalsError::TimedOut { .. } => "Contro1 timed out".into(),
            ApprovalsError::Rejected { status, .. } => {
                format!("Contro1 refused the launcher's call (HTTP {status})")
            }
        }
    }
}

/// A request as Contro1 reports it now (`GET /requests/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestStatus {
    /// Contro1's state text (`queued`, `answered`, `expired`, ...).
    pub state: String,
    /// The decision once Contro1 holds one; `None` while the request is open.
    pub decision: Option<crate::approval::Resolution>,
    /// `external_request_id` as Contro1 stored it (the action's idempotency key).
    pub external_request_id: Option<String>,
    /// `metadata.context.action_type` as stored.
    pub action_type: Option<String>,
    /// `metadata.context.microvm_id` as stored.
    pub microvm_id: Option<String>,
    /// `metadata.context.action_digest` as stored.
    pub action_digest: Option<String>,
}

pub trait Approvals: Send + Sync {
    /// Create a request; returns its id.
    fn create_request<'a>(
        &'a self,
        req: &'a ApprovalRequest,
    ) -> BoxFut<'a, Result<String, ApprovalsError>>;
    /// Write an audit record; returns its id.
    fn audit<'a>(&'a self, event: &'a AuditEvent) -> BoxFut<'a, Result<String, ApprovalsError>>;
    /// What Contro1 says about a request now.
    fn get_request<'a>(
        &'a self,
        request_id: &'a str,
    ) -> BoxFut<'a, Result<RequestStatus, ApprovalsError>>;
}

/// Unix time, behind a port so tests can move it.
pub trait Clock: Send + Sync {
    fn now(&self) -> i64;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}
