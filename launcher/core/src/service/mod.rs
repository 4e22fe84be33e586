//! The launcher's use cases over the ports: submit an action, act on a
//! verified Contro1 callback, show a request to the agent that made it, and
//! reconcile executions a crash left behind.
//!
//! The order of effects is the product's promise:
//! * auto-approved: Contro1 audit record first (its id is the
//!   `contro1_request_id`), then the execution item (`executing`, with the
//!   agent's `Idempotency-Key` pointer when given), then the AWS call, then
//!   the ledger, then the result;
//! * approval needed: per-agent rate limit, Contro1 request, Contro1's own
//!   word that it is still open, then the pending item, then `202`;
//! * callback: Contro1 confirms the approval and the action
//!   (`GET /requests/{id}`), `pending → executing` by a conditional write,
//!   then the AWS call with the **stored** input, then the ledger, then the
//!   result;
//! * reconcile: an item `executing` for longer than the function can run is
//!   finished from what AWS and the item say, never by issuing a token again.
//!
//! Anything that cannot be done safely fails closed: no AWS call.
//!
//! | module | what |
//! | --- | --- |
//! | `submit` | classify an action, the auto-approved path with `Idempotency-Key`, the approval request |
//! | `callback` | act on a verified callback once Contro1 confirms it |
//! | `execute` | the AWS call and its ledger items |
//! | `reconcile` | finish executions a crash or timeout left `executing` |
//! | `view` | `GET /requests/{id}` |
//! | `audit` | audit events: the Contro1 record and the log line |

mod audit;
mod callback;
mod execute;
mod reconcile;
mod submit;
mod view;

pub use audit::{Phase, event_for};
pub use execute::{MAX_RUN_HOOK_PAYLOAD_BYTES, run_hook_payload};
pub use reconcile::ReconcileReport;

use crate::approval::State;
use crate::config::Config;
use crate::policy::Decision;
use crate::ports::{
    Approvals, ApprovalsError, Clock, ExecResult, Ledger, LedgerError, MicrovmApi, MicrovmError,
    PendingStore, Secret, StoreError,
};
use crate::request::{FieldError, Lifecycle};
use serde::Serialize;
use std::sync::Arc;

/// The adapters, built once at cold start.
#[derive(Clone)]
pub struct PortSet {
    pub store: Arc<dyn PendingStore>,
    pub ledger: Arc<dyn Ledger>,
    pub microvms: Arc<dyn MicrovmApi>,
    pub approvals: Arc<dyn Approvals>,
    pub clock: Arc<dyn Clock>,
}

/// Tunables of the use cases (defaults in [`Options::default`]).
#[derive(Debug, Clone)]
pub struct Options {
    /// `LAUNCHER_PUBLIC_URL` + `/contro1/callback`.
    pub callback_url: String,
    /// Approval requests one agent may create per minute.
    pub approval_requests_per_minute: u32,
    /// An item `executing` for longer than this is stuck: the function that
    /// owned it has been stopped (its timeout, plus a margin).
    pub executing_timeout_seconds: i64,
    /// Most stuck items one reconciler run takes over.
    pub reconcile_batch: usize,
    /// A stuck item is taken over at most this many times, then failed.
    pub reconcile_max_attempts: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            callback_url: String::new(),
            approval_requests_per_minute: 30,
            executing_timeout_seconds: 960,
            reconcile_batch: 50,
            reconcile_max_attempts: 5,
        }
    }
}

/// Why a use case did not complete. Each variant maps to one HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// 400: a field is malformed.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// 403: the body claims to be another agent.
    #[error("body agent_id `{claimed}` does not match the authenticated agent")]
    Spoofed { claimed: String },
    /// 404: no such request, or not the caller's.
    #[error("request `{request_id}` not found")]
    NotFound { request_id: String },
    /// 404: the target MicroVM does not exist.
    #[error("MicroVM `{microvm_id}` does not exist")]
    NoSuchMicrovm { microvm_id: String },
    /// 401: nothing identified the caller.
    #[error("the caller is not authenticated")]
    Unauthenticated,
    /// 403: the caller is not a registered, enabled agent (GET /requests).
    #[error("caller is not a registered agent")]
    UnknownCaller,
    /// 429: the agent created too many approval requests in a minute.
    #[error(
        "agent `{agent_id}` asked for more than {per_minute} approvals in a minute; retry in {retry_after_seconds} s"
    )]
    RateLimited {
        agent_id: String,
        per_minute: u32,
        retry_after_seconds: i64,
    },
    /// 409: Contro1 already decided the request this action maps to, and
    /// the launcher holds no record of it any more: it is not asked again.
    #[error(
        "Contro1 request `{request_id}` for this action is already {state}; send a new correlation_id to ask again"
    )]
    AlreadyDecided { request_id: String, state: String },
    /// 409: Contro1 does not confirm the callback (still open, another action).
    #[error("Contro1 does not confirm request `{request_id}`: {reason}")]
    Unconfirmed { request_id: String, reason: String },
    /// 409: the first request with this `Idempotency-Key` is still executing.
    #[error("the request `{request_id}` started with this Idempotency-Key is still executing")]
    InProgress { request_id: String },
    /// 422: the `Idempotency-Key` was used with another request.
    #[error("this Idempotency-Key was used for a different request (`{request_id}`)")]
    KeyReused { request_id: String },
    /// 502 (replayed): the first request with this `Idempotency-Key` failed.
    #[error("the request `{request_id}` started with this Idempotency-Key failed: {error}")]
    ReplayedFailure { request_id: String, error: String },
    /// 503: Contro1 unavailable or refused: nothing was done.
    #[error(transparent)]
    Approvals(#[from] ApprovalsError),
    /// 503: the pending table is unavailable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// 503: the ledger could not be read (target lookup) or written.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// 502: AWS refused or failed the call.
    #[error(transparent)]
    Aws(#[from] MicrovmError),
    /// 500: the AWS call succeeded but could not be recorded in the ledger;
    /// the execution is left to the reconciler, any token is withheld.
    #[error(
        "{operation} succeeded (AWS request {aws_request_id:?}) but the ledger write failed: {source}"
    )]
    Unrecorded {
        request_id: String,
        operation: &'static str,
        aws_request_id: Option<String>,
        microvm_id: Option<String>,
        #[source]
        source: LedgerError,
    },
    /// 500: an internal limit was exceeded (e.g. the run hook payload).
    #[error("{0}")]
    Internal(String),
}

/// The answer to a submitted action.
#[derive(Debug)]
pub enum Submitted {
    /// 200: auto-approved and executed (or the replay of a request with the
    /// same `Idempotency-Key`, which never carries a token again).
    Executed {
        request_id: String,
        decision: Decision,
        result: ExecResult,
        token: Option<Secret>,
        replayed: bool,
    },
    /// 202: waiting for a human.
    Pending {
        request_id: String,
        decision: Decision,
        state: State,
    },
    /// 403: blocked by policy.
    Blocked {
        decision: Decision,
        audit_record_id: Option<String>,
    },
}

/// The answer to a verified callback (all 200).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CallbackOutcome {
    /// Approved: the stored action ran; `state` is executed or failed (or
    /// executing, left to the reconciler when the ledger could not be written).
    Executed { state: State },
    /// Denied, expired or cancelled: recorded, no AWS call.
    Recorded { state: State },
    /// Not pending any more (a replay, or a concurrent delivery won).
    AlreadyProcessed { state: Option<State> },
}

/// What `GET /requests/{id}` shows its agent.
#[derive(Debug, Serialize)]
pub struct RequestView {
    pub request_id: String,
    pub state: State,
    pub operation: &'static str,
    pub microvm_id: Option<String>,
    pub decision: Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<ExecResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Present once: the first fetch after execution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// True when a token was issued and already handed out.
    pub token_already_returned: bool,
}

/// The launcher.
pub struct Service {
    config: Config,
    ports: PortSet,
    options: Options,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("policy_version", &self.config.policy.version)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A service with the default [`Options`] and this callback URL.
    pub fn new(config: Config, ports: PortSet, callback_url: impl Into<String>) -> Service {
        Service::with_options(
            config,
            ports,
            Options {
                callback_url: callback_url.into(),
                ..Options::default()
            },
        )
    }

    pub fn with_options(config: Config, ports: PortSet, options: Options) -> Service {
        Service {
            config,
            ports,
            options,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn options(&self) -> &Options {
        &self.options
    }
}

/// The lifecycle op name, for logs.
pub fn lifecycle_name(op: Lifecycle) -> &'static str {
    match op {
        Lifecycle::Suspend => "suspend",
        Lifecycle::Resume => "resume",
        Lifecycle::Terminate => "terminate",
    }
}
