//! AWS adapters used by both functions: building SDK configuration once (so
//! `AWS_ENDPOINT_URL` points every client at moto or an emulator in tests and
//! local runs), the DynamoDB ledger (see `shared_core::ledger` for the
//! table design), and the bounded resending of what DynamoDB's batch calls
//! leave unprocessed.
#![forbid(unsafe_code)]

pub mod ledger;
pub mod rounds;

pub use ledger::{DynamoLedger, LedgerError};

/// Load the SDK configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL`). Called once per process, in `main`.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}
