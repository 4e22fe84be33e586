//! Plain types that the launcher and the detector must agree on, with no AWS
//! dependency: the six governed MicroVM operations, the event taxonomy, how an
//! IAM role is identified from CloudTrail or a request context, and the ledger
//! record the launcher writes and the detector reads, and the Contro1 webhook
//! signature both the launcher and the local Contro1 stand-in must agree on.
//!
//! If the two functions disagreed on any of these, calls made by the launcher
//! would be reported as bypasses (or, worse, bypasses would look managed), so
//! they live in one place.
#![forbid(unsafe_code)]

pub mod identity;
pub mod ledger;
pub mod ops;
pub mod taxonomy;
pub mod text;
pub mod webhook;

pub use identity::{RoleRef, RoleRefError};
pub use ledger::LedgerEntry;
pub use ops::GovernedOp;
pub use taxonomy::Event;
