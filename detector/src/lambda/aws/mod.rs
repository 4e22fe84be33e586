//! AWS adapters of the detector's ports, one module per service: DynamoDB
//! (dedupe table and heartbeat; the ledger via `shared_aws::DynamoLedger`),
//! SNS (alerts), Security Hub, EventBridge and the chat topic (optional
//! destinations), the MicroVMs API (sweep and remediation), CloudTrail (trail
//! health), Lambda and SSM (the integrity check), S3 (log objects), STS,
//! Organizations and Account (the accounts and regions swept). Each is a
//! thin translation; every error keeps the SDK's context.

mod dedupe;
mod destinations;
mod functions;
mod microvms;
mod objects;
mod queue;
mod securityhub;
mod sns;
mod targets;
mod trails;

pub use dedupe::DynamoDedupe;
pub use destinations::{ChatChannel, EVENT_SOURCE, EventBusChannel, chat_message, event_detail};
pub use functions::SdkFunctions;
pub use microvms::SdkMicrovms;
pub use objects::S3Objects;
pub use queue::SqsSweepQueue;
pub use securityhub::{SecurityHubChannel, SecurityHubConfig, sdk_finding};
pub use sns::SnsChannel;
pub use targets::{SdkTargets, TargetsConfig};
pub use trails::SdkTrails;

/// A service error as `Code: message` (the raw HTTP response the SDK's
/// `DisplayErrorContext` would add is noise in a log line); transport and
/// other errors with their full context.
pub(crate) fn ctx<E>(e: E) -> String
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error,
{
    match e.code() {
        Some(code) => format!("{code}: {}", e.message().unwrap_or("(no message)")),
        None => aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
    }
}

pub(crate) fn ctx_plain(e: impl std::error::Error) -> String {
    aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()
}

fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
