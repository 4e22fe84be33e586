//! The ports of `launcher-core` implemented over the real services: the
//! ledger (`shared_aws::DynamoLedger`), the MicroVMs API
//! (`aws-sdk-lambdamicrovms`) and Contro1 (the `contro1` client). The
//! pending table is in [`crate::store`].

mod contro1;
mod ledger;
mod microvms;

pub use contro1::Contro1Approvals;
pub use ledger::{LEDGER_RETRIES, LedgerAdapter};
pub use microvms::{AttemptIds, Connectors, SdkMicrovms};
