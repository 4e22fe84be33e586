//! The ledger: the authoritative record of every governed AWS call the
//! launcher made. MicroVMs cannot be tagged and no API returns `clientToken`
//! or `runHookPayload` later, so the detector decides "managed or not" only
//! from this table.
//!
//! ## Table design (one DynamoDB table, `LEDGER_TABLE`)
//! Partition key `pk` (string), no sort key. Two kinds of item:
//!
//! | `pk` | written when | used by |
//! | --- | --- | --- |
//! | `call#<aws_request_id>` | after every governed call the launcher makes (success or failure), **one per attempt**: the SDK retries a throttled or failed call, each attempt gets its own `x-amzn-RequestId` and CloudTrail logs each, so every attempt's id has an item (`attempt` = 1-based position; `0` for an id known only from the final answer) | detector: a CloudTrail governed call by the launcher role whose `requestID` has no `call#` item was made with the launcher's credentials outside the launcher; any attempt's id counts |
//! | `vm#<microvm_id>` | after a successful RunMicrovm | sweep: a listed MicroVM with no `vm#` item is unmanaged |
//!
//! Both items carry every field of [`LedgerEntry`] as plain attributes (`S`
//! strings, `N` for `time_epoch`), plus `kind` = `call` or `vm`. Reads are
//! `BatchGetItem` by `pk` (100 keys a request).

use serde::{Deserialize, Serialize};

/// Attribute name of the partition key.
pub const PK: &str = "pk";
/// Prefix of the per-call item's key.
pub const CALL_PREFIX: &str = "call#";
/// Prefix of the per-MicroVM item's key.
pub const VM_PREFIX: &str = "vm#";

/// One governed call made by the launcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub contro1_request_id: String,
    /// The operation name, e.g. `RunMicrovm` (see [`crate::GovernedOp`]).
    pub operation: String,
    pub microvm_id: Option<String>,
    /// `x-amzn-RequestId` of the call; CloudTrail records it as `requestID`.
    pub aws_request_id: Option<String>,
    pub agent_id: String,
    pub owner: String,
    pub correlation_id: Option<String>,
    pub image_arn: Option<String>,
    pub execution_role_arn: Option<String>,
    /// `succeeded` or `failed`.
    pub outcome: String,
    /// Unix seconds.
    pub time_epoch: i64,
}

/// Key of the per-call item.
pub fn call_key(aws_request_id: &str) -> String {
    format!("{CALL_PREFIX}{aws_request_id}")
}

/// Key of the per-MicroVM item.
pub fn vm_key(microvm_id: &str) -> String {
    format!("{VM_PREFIX}{microvm_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_so_ids_cannot_collide() {
        assert_eq!(call_key("abc"), "call#abc");
        assert_eq!(vm_key("abc"), "vm#abc");
        assert_ne!(call_key("x"), vm_key("x"));
    }
}
