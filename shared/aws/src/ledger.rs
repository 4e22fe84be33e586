//! The ledger in DynamoDB: written by the launcher after every governed call,
//! read in batches by the detector.

use crate::rounds::{RoundsError, until_processed, write_all};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use shared_core::LedgerEntry;
use shared_core::ledger::{PK, call_key, vm_key};
use std::collections::{HashMap, HashSet};

/// BatchGetItem accepts at most 100 keys per request.
const BATCH_GET_MAX: usize = 100;
/// BatchWriteItem accepts at most 25 puts per request.
const BATCH_WRITE_MAX: usize = 25;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger table `{table}`: {op} failed: {message}")]
    Aws {
        table: String,
        op: &'static str,
        message: String,
    },
    #[error(
        "ledger table `{table}`: {remaining} keys or items still unprocessed after {rounds} {op} rounds"
    )]
    Unprocessed {
        table: String,
        op: &'static str,
        remaining: usize,
        rounds: u32,
    },
    #[error("ledger table `{table}`: item `{pk}` is malformed: {reason}")]
    Malformed {
        table: String,
        pk: String,
        reason: String,
    },
}

/// The ledger table.
#[derive(Debug, Clone)]
pub struct DynamoLedger {
    client: Client,
    table: String,
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

impl DynamoLedger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoLedger {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn aws_err(&self, op: &'static str, e: impl std::error::Error) -> LedgerError {
        LedgerError::Aws {
            table: self.table.clone(),
            op,
            message: aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
        }
    }

    fn item(entry: &LedgerEntry, pk: String, kind: &str) -> HashMap<String, AttributeValue> {
        let mut item = HashMap::new();
        item.insert(PK.to_string(), AttributeValue::S(pk));
        item.insert("kind".to_string(), s(kind));
        item.insert(
            "contro1_request_id".to_string(),
            s(&entry.contro1_request_id),
        );
        item.insert("operation".to_string(), s(&entry.operation));
        item.insert("agent_id".to_string(), s(&entry.agent_id));
        item.insert("owner".to_string(), s(&entry.owner));
        item.insert("outcome".to_string(), s(&entry.outcome));
        item.insert(
            "time_epoch".to_string(),
            AttributeValue::N(entry.time_epoch.to_string()),
        );
        for (k, v) in [
            ("microvm_id", &entry.microvm_id),
            ("aws_request_id", &entry.aws_request_id),
            ("correlation_id", &entry.correlation_id),
            ("image_arn", &entry.image_arn),
            ("execution_role_arn", &entry.execution_role_arn),
        ] {
            if let Some(v) = v {
                item.insert(k.to_string(), s(v));
            }
        }
        item
    }

    fn entry(&self, item: &HashMap<String, AttributeValue>) -> Result<LedgerEntry, LedgerError> {
        let pk = item
            .get(PK)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let malformed = |reason: String| LedgerError::Malformed {
            table: self.table.clone(),
            pk: pk.clone(),
            reason,
        };
        let req = |k: &str| -> Result<String, LedgerError> {
            item.get(k)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .ok_or_else(|| malformed(format!("missing string attribute `{k}`")))
        };
        let opt = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        let time_epoch = item
            .get("time_epoch")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .ok_or_else(|| malformed("missing numeric attribute `time_epoch`".to_string()))?;
        Ok(LedgerEntry {
            contro1_request_id: req("contro1_request_id")?,
            operation: req("operation")?,
            microvm_id: opt("microvm_id"),
            aws_request_id: opt("aws_request_id"),
            agent_id: req("agent_id")?,
            owner: req("owner")?,
            correlation_id: opt("correlation_id"),
            image_arn: opt("image_arn"),
            execution_role_arn: opt("execution_role_arn"),
            outcome: req("outcome")?,
            time_epoch,
        })
    }

    /// Record one governed call: a `call#` item when the AWS request id is
    /// known, and a `vm#` item for a successful RunMicrovm.
    pub async fn record(&self, entry: &LedgerEntry) -> Result<(), LedgerError> {
        self.record_attempts(entry, &[]).await
    }

    /// Record one governed call made in several attempts: a `call#` item for
    /// every attempt's request id (`attempt_request_ids`, in order) and for
    /// the entry's own, each with `attempt` (1-based position, `0` for an id
    /// seen only as the entry's), and the `vm#` item of a successful
    /// RunMicrovm. All of them go in one `BatchWriteItem` (unprocessed
    /// items are sent again, a bounded number of rounds). Puts are
    /// idempotent, so a retried record is harmless.
    pub async fn record_attempts(
        &self,
        entry: &LedgerEntry,
        attempt_request_ids: &[String],
    ) -> Result<(), LedgerError> {
        let mut items = Vec::new();
        let mut seen = HashSet::new();
        for (i, req) in attempt_request_ids.iter().enumerate() {
            if seen.insert(req.as_str()) {
                let mut item = Self::item(entry, call_key(req), "call");
                item.insert("attempt".into(), AttributeValue::N((i + 1).to_string()));
                item.insert("attempt_request_id".into(), s(req));
                items.push(item);
            }
        }
        if let Some(req) = &entry.aws_request_id
            && seen.insert(req.as_str())
        {
            let mut item = Self::item(entry, call_key(req), "call");
            item.insert("attempt".into(), AttributeValue::N("0".into()));
            items.push(item);
        }
        if entry.operation == "RunMicrovm"
            && entry.outcome == "succeeded"
            && let Some(vm) = &entry.microvm_id
        {
            items.push(Self::item(entry, vm_key(vm), "vm"));
        }
        for chunk in items.chunks(BATCH_WRITE_MAX) {
            let requests = chunk
                .iter()
                .map(|item| {
                    PutRequest::builder()
                        .set_item(Some(item.clone()))
                        .build()
                        .map(|p| WriteRequest::builder().put_request(p).build())
                        .map_err(|e| self.aws_err("BatchWriteItem", e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            write_all(&self.client, &self.table, requests)
                .await
                .map_err(|e| {
                    self.rounds_err("BatchWriteItem", e, |e| self.aws_err("BatchWriteItem", e))
                })?;
        }
        Ok(())
    }

    /// [`until_processed`], its errors as the ledger's.
    async fn in_rounds<T, R, F, Fut>(
        &self,
        op: &'static str,
        pending: Vec<T>,
        send: F,
    ) -> Result<Vec<R>, LedgerError>
    where
        F: FnMut(Vec<T>) -> Fut,
        Fut: std::future::Future<Output = Result<(Vec<T>, Vec<R>), LedgerError>>,
    {
        until_processed(pending, send)
            .await
            .map_err(|e| self.rounds_err(op, e, |e| e))
    }

    /// A batch that did not complete as the ledger's error.
    fn rounds_err<E>(
        &self,
        op: &'static str,
        e: RoundsError<E>,
        call: impl FnOnce(E) -> LedgerError,
    ) -> LedgerError {
        match e {
            RoundsError::Call(e) => call(e),
            RoundsError::Unprocessed { remaining, rounds } => LedgerError::Unprocessed {
                table: self.table.clone(),
                op,
                remaining,
                rounds,
            },
        }
    }

    /// Which of these MicroVM ids have a `vm#` item. Batched, 100 keys a call.
    pub async fn known_microvms(&self, ids: &[String]) -> Result<HashSet<String>, LedgerError> {
        let keys: Vec<String> = ids.iter().map(|id| vm_key(id)).collect();
        let found = self.batch_get(&keys).await?;
        Ok(found
            .into_iter()
            .filter_map(|k| {
                k.strip_prefix(shared_core::ledger::VM_PREFIX)
                    .map(str::to_string)
            })
            .collect())
    }

    /// Which of these AWS request ids have a `call#` item.
    pub async fn known_requests(
        &self,
        request_ids: &[String],
    ) -> Result<HashSet<String>, LedgerError> {
        let keys: Vec<String> = request_ids.iter().map(|id| call_key(id)).collect();
        let found = self.batch_get(&keys).await?;
        Ok(found
            .into_iter()
            .filter_map(|k| {
                k.strip_prefix(shared_core::ledger::CALL_PREFIX)
                    .map(str::to_string)
            })
            .collect())
    }

    /// The full entry of one MicroVM, if it is in the ledger.
    pub async fn microvm(&self, microvm_id: &str) -> Result<Option<LedgerEntry>, LedgerError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(vm_key(microvm_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.aws_err("GetItem", e))?;
        out.item().map(|i| self.entry(i)).transpose()
    }

    /// Returns the subset of `keys` present in the table.
    async fn batch_get(&self, keys: &[String]) -> Result<HashSet<String>, LedgerError> {
        let mut found = HashSet::new();
        let unique: Vec<&String> = keys.iter().collect::<HashSet<_>>().into_iter().collect();
        for chunk in unique.chunks(BATCH_GET_MAX) {
            let keys: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|k| HashMap::from([(PK.to_string(), AttributeValue::S((*k).clone()))]))
                .collect();
            let got = self
                .in_rounds("BatchGetItem", keys, |pending| async move {
                    let ka = KeysAndAttributes::builder()
                        .set_keys(Some(pending))
                        .projection_expression("#pk")
                        .expression_attribute_names("#pk", PK)
                        .consistent_read(true)
                        .build()
                        .map_err(|e| self.aws_err("BatchGetItem", e))?;
                    let out = self
                        .client
                        .batch_get_item()
                        .request_items(&self.table, ka)
                        .send()
                        .await
                        .map_err(|e| self.aws_err("BatchGetItem", e))?;
                    let got = out
                        .responses()
                        .and_then(|r| r.get(&self.table))
                        .into_iter()
                        .flatten()
                        .filter_map(|item| item.get(PK).and_then(|v| v.as_s().ok()).cloned())
                        .collect();
                    let left = out
                        .unprocessed_keys()
                        .and_then(|u| u.get(&self.table))
                        .map(|k| k.keys().to_vec())
                        .unwrap_or_default();
                    Ok((left, got))
                })
                .await?;
            found.extend(got);
        }
        Ok(found)
    }
}
