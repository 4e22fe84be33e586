//! The dedupe table: partition key `pk` (string), TTL attribute
//! `expires_at`. It also keeps the heartbeat item (when a log object was
//! last read).

use super::{ctx, now_epoch};
use crate::lambda::ports::{DedupeStore, MarkWrite, Marks, PortError, PortResult};
use aws_sdk_dynamodb::types::AttributeValue;
use futures::FutureExt;
use shared_aws::rounds::{RoundsError, until_processed, write_all};

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

/// The marks one item holds (`None`: no item, or an expired one).
fn marks_of(item: &std::collections::HashMap<String, AttributeValue>) -> Marks {
    // TTL deletion is lazy (up to two days late): an expired mark is no mark.
    let expires = item
        .get("expires_at")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok());
    if expires.is_some_and(|t| t <= now_epoch()) {
        return Marks::default();
    }
    let channels: std::collections::BTreeSet<String> = item
        .keys()
        .filter_map(|k| k.strip_prefix(CHANNEL_ATTR))
        .map(str::to_string)
        .collect();
    // An item of the earlier design (`alerted_at`, no channel) was written
    // only after every channel had delivered.
    let all = channels.is_empty() && item.contains_key("alerted_at");
    Marks { all, channels }
}

/// Keys a BatchGetItem request may ask for.
const BATCH_GET_MAX: usize = 100;
/// Puts a BatchWriteItem request may hold.
const BATCH_WRITE_MAX: usize = 25;
/// BatchWriteItem requests in flight at once.
const WRITE_CONCURRENCY: usize = 4;

/// One key's item as [`DedupeStore::mark_many`] writes it: a `ch_<name>`
/// attribute per channel that delivered, and the expiry.
fn mark_item(
    key: &str,
    channels: &std::collections::BTreeSet<&str>,
    expires_at: i64,
    now: i64,
) -> std::collections::HashMap<String, AttributeValue> {
    let mut item: std::collections::HashMap<String, AttributeValue> = channels
        .iter()
        .map(|ch| {
            (
                format!("{CHANNEL_ATTR}{ch}"),
                AttributeValue::N(now.to_string()),
            )
        })
        .collect();
    item.insert("pk".into(), AttributeValue::S(key.to_string()));
    item.insert(
        "expires_at".into(),
        AttributeValue::N(expires_at.to_string()),
    );
    item
}

impl DynamoDedupe {
    /// A batch of `op` that did not complete as a port error naming the
    /// table; `call` turns a failed call's error into one.
    fn rounds_err<E>(
        &self,
        op: &str,
        e: RoundsError<E>,
        call: impl FnOnce(E) -> PortError,
    ) -> PortError {
        match e {
            RoundsError::Call(e) => call(e),
            RoundsError::Unprocessed { remaining, rounds } => PortError::new(
                self.what(op),
                format!("{remaining} keys or items still unprocessed after {rounds} rounds"),
            ),
        }
    }

    /// Put these items with BatchWriteItem until none is left unprocessed.
    async fn put_batch(
        &self,
        items: Vec<std::collections::HashMap<String, AttributeValue>>,
    ) -> Result<(), PortError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        let requests = items
            .into_iter()
            .map(|item| {
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
                    .map_err(|e| PortError::new(self.what("BatchWriteItem"), e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        write_all(&self.client, &self.table, requests)
            .await
            .map_err(|e| {
                self.rounds_err("BatchWriteItem", e, |e| {
                    PortError::new(self.what("BatchWriteItem"), ctx(e))
                })
            })
    }
}

impl DedupeStore for DynamoDedupe {
    fn marks_many<'a>(
        &'a self,
        keys: &'a [String],
    ) -> PortResult<'a, std::collections::HashMap<String, Marks>> {
        async move {
            use aws_sdk_dynamodb::types::KeysAndAttributes;
            let mut out = std::collections::HashMap::new();
            let mut unique: Vec<&String> = keys.iter().collect();
            unique.sort();
            unique.dedup();
            for chunk in unique.chunks(BATCH_GET_MAX) {
                let keys: Vec<std::collections::HashMap<String, AttributeValue>> = chunk
                    .iter()
                    .map(|k| [("pk".to_string(), AttributeValue::S((*k).clone()))].into())
                    .collect();
                let found = until_processed(keys, |pending| async move {
                    let ask = KeysAndAttributes::builder()
                        .consistent_read(true)
                        .set_keys(Some(pending))
                        .build()
                        .map_err(|e| PortError::new(self.what("BatchGetItem"), e.to_string()))?;
                    let resp = self
                        .client
                        .batch_get_item()
                        .request_items(&self.table, ask)
                        .send()
                        .await
                        .map_err(|e| PortError::new(self.what("BatchGetItem"), ctx(e)))?;
                    let found: Vec<(String, Marks)> = resp
                        .responses()
                        .and_then(|r| r.get(&self.table))
                        .into_iter()
                        .flatten()
                        .filter_map(|item| {
                            let k = item.get("pk").and_then(|v| v.as_s().ok())?;
                            Some((k.clone(), marks_of(item)))
                        })
                        .collect();
                    let left = resp
                        .unprocessed_keys()
                        .and_then(|u| u.get(&self.table))
                        .map(|k| k.keys().to_vec())
                        .unwrap_or_default();
                    Ok((left, found))
                })
                .await
                .map_err(|e| self.rounds_err("BatchGetItem", e, |e| e))?;
                out.extend(found);
            }
            Ok(out)
        }
        .boxed()
    }

    /// Each key's item is replaced by one put holding every channel of its
    /// write: 25 keys a request instead of one update per key. Two
    /// invocations marking the same key at the same moment may leave only
    /// one's channels: at worst one more alert on the other's, never a lost
    /// one.
    fn mark_many<'a>(
        &'a self,
        writes: &'a [MarkWrite],
    ) -> futures::future::BoxFuture<'a, Vec<Result<(), PortError>>> {
        async move {
            use futures::StreamExt;
            // One item per key (a request may not name a key twice).
            let mut by_key: std::collections::BTreeMap<
                &str,
                (std::collections::BTreeSet<&str>, i64),
            > = std::collections::BTreeMap::new();
            for w in writes {
                let e = by_key.entry(w.key.as_str()).or_default();
                e.0.extend(w.channels.iter().map(String::as_str));
                e.1 = e.1.max(w.expires_at);
            }
            let now = now_epoch();
            let keys: Vec<&str> = by_key.keys().copied().collect();
            let batches: Vec<(Vec<String>, Vec<_>)> = keys
                .chunks(BATCH_WRITE_MAX)
                .map(|chunk| {
                    let items = chunk
                        .iter()
                        .map(|k| mark_item(k, &by_key[k].0, by_key[k].1, now))
                        .collect();
                    (chunk.iter().map(|k| k.to_string()).collect(), items)
                })
                .collect();
            let outcomes: Vec<(Vec<String>, Result<(), PortError>)> = futures::stream::iter(
                batches
                    .into_iter()
                    .map(|(chunk, items)| async move { (chunk, self.put_batch(items).await) }),
            )
            .buffer_unordered(WRITE_CONCURRENCY)
            .collect()
            .await;
            let mut failed: std::collections::HashMap<String, PortError> =
                std::collections::HashMap::new();
            for (chunk, r) in outcomes {
                if let Err(e) = r {
                    failed.extend(chunk.into_iter().map(|k| (k, e.clone())));
                }
            }
            writes
                .iter()
                .map(|w| match failed.get(w.key.as_str()) {
                    Some(e) => Err(e.clone()),
                    None => Ok(()),
                })
                .collect()
        }
        .boxed()
    }

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
            Ok(out.item().map(marks_of).unwrap_or_default())
        }
        .boxed()
    }

    fn mark<'a>(
        &'a self,
        key: &'a str,
        channels: &'a [&'a str],
        expires_at: i64,
    ) -> PortResult<'a, ()> {
        async move {
            // One update adds every channel that delivered: other channels'
            // marks on the item are kept.
            let sets: Vec<String> = (0..channels.len())
                .map(|i| format!("#ch{i} = :now"))
                .collect();
            let mut req = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key.to_string()))
                .update_expression(format!("SET {}, expires_at = :exp", sets.join(", ")))
                .expression_attribute_values(":now", AttributeValue::N(now_epoch().to_string()))
                .expression_attribute_values(":exp", AttributeValue::N(expires_at.to_string()));
            for (i, ch) in channels.iter().enumerate() {
                req = req
                    .expression_attribute_names(format!("#ch{i}"), format!("{CHANNEL_ATTR}{ch}"));
            }
            req.send()
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
