//! The dedupe table: partition key `pk` (string), TTL attribute
//! `expires_at`. It also keeps the heartbeat item (when a log object was
//! last read).

use super::{ctx, now_epoch};
use crate::lambda::ports::{DedupeStore, Marks, PortError, PortResult};
use aws_sdk_dynamodb::types::AttributeValue;
use futures::FutureExt;

/// The dedupe table: partition key `pk` (string), TTL attribute `expires_at`.
#[derive(Debug, Clone)]
pub struct DynamoDedupe {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDedupe {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> DynamoDedupe {
        DynamoDedupe {
            client,
            table: table.into(),
        }
    }

    fn what(&self, op: &str) -> String {
        format!("dedupe table `{}`: {op}", self.table)
    }
}

/// Prefix of the attribute that records one channel's delivery
/// (`ch_sns`, `ch_contro1`, ... = Unix seconds).
const CHANNEL_ATTR: &str = "ch_";

impl DedupeStore for DynamoDedupe {
    fn marks<'a>(&'a self, key: &'a str) -> PortResult<'a, Marks> {
        async move {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key.to_string()))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| PortError::new(self.what("GetItem"), ctx(e)))?;
            let Some(item) = out.item() else {
                return Ok(Marks::default());
            };
            // TTL deletion is lazy (up to two days late): an expired mark is
            // no mark.
            let expires = item
                .get("expires_at")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok());
            if expires.is_some_and(|t| t <= now_epoch()) {
                return Ok(Marks::default());
            }
            let channels: std::collections::BTreeSet<String> = item
                .keys()
                .filter_map(|k| k.strip_prefix(CHANNEL_ATTR))
                .map(str::to_string)
                .collect();
            // An item of the earlier design (`alerted_at`, no channel) was
            // written only after every channel had delivered.
            let all = channels.is_empty() && item.contains_key("alerted_at");
            Ok(Marks { all, channels })
        }
        .boxed()
    }

    fn mark<'a>(&'a self, key: &'a str, channel: &'a str, expires_at: i64) -> PortResult<'a, ()> {
        async move {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key.to_string()))
                .update_expression("SET #ch = :now, expires_at = :exp")
                .expression_attribute_names("#ch", format!("{CHANNEL_ATTR}{channel}"))
                .expression_attribute_values(":now", AttributeValue::N(now_epoch().to_string()))
                .expression_attribute_values(":exp", AttributeValue::N(expires_at.to_string()))
                .send()
                .await
                .map_err(|e| PortError::new(self.what("UpdateItem"), ctx(e)))?;
            Ok(())
        }
        .boxed()
    }
}

/// Key of the heartbeat item in the dedupe table.
pub const HEARTBEAT_KEY: &str = "heartbeat#log-objects";

impl crate::lambda::ports::HeartbeatStore for DynamoDedupe {
    fn beat(&self, now: i64) -> PortResult<'_, ()> {
        async move {
            // Keep the latest time: an older invocation finishing late does
            // not move the heartbeat back.
            let res = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(HEARTBEAT_KEY.to_string()))
                .update_expression("SET last_object_at = :now")
                .condition_expression(
                    "attribute_not_exists(last_object_at) OR last_object_at < :now",
                )
                .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                .send()
                .await;
            match res {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                {
                    Ok(())
                }
                Err(e) => Err(PortError::new(self.what("UpdateItem (heartbeat)"), ctx(e))),
            }
        }
        .boxed()
    }

    fn last_beat(&self, now: i64) -> PortResult<'_, (Option<i64>, i64)> {
        async move {
            // Record when the sweep first looked (only if not yet recorded),
            // and read both times back in the same call.
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(HEARTBEAT_KEY.to_string()))
                .update_expression("SET first_checked_at = if_not_exists(first_checked_at, :now)")
                .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
                .send()
                .await
                .map_err(|e| PortError::new(self.what("UpdateItem (heartbeat)"), ctx(e)))?;
            let n = |k: &str| {
                out.attributes()
                    .and_then(|a| a.get(k))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<i64>().ok())
            };
            Ok((n("last_object_at"), n("first_checked_at").unwrap_or(now)))
        }
        .boxed()
    }
}
