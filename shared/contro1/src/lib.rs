//! Contro1 (CENTCOM), the human-review service every governed MicroVM action
//! goes through: the HTTP client the launcher and the detector use, and a
//! local stand-in server that speaks the same API.
//!
//! - [`client`]: [`Contro1Client`] — create / get / cancel review requests,
//!   write audit records; bounded retries with backoff and jitter, a short
//!   timeout that fails closed, the API key never printed.
//! - [`types`]: the request, audit-record and request-state wire types.
//! - [`standin`]: the stand-in server (`launcher contro1-dev`, tests), which
//!   signs callbacks with [`shared_core::webhook::sign`].
//!
//! Callback verification itself lives in [`shared_core::webhook`], because
//! it is pure and the launcher's handler needs nothing else from here.
#![forbid(unsafe_code)]

pub mod client;
pub mod standin;
pub mod types;

pub use client::{ApiKey, Contro1Client, Contro1Config, Contro1Error, DEFAULT_BASE_URL};
pub use standin::{
    CallbackDelivery, SignedCallback, StandIn, StandInConfig, StandInError, StandInHandle,
    StandInState, StoredRequest,
};
pub use types::{AuditRecord, CreateRequest, RequestInfo};
