//! The pending table in DynamoDB (`PENDING_TABLE`).
//!
//! ## Table design
//! Partition key `pk` (string), no sort key, TTL attribute `expires_at`.
//!
//! | `pk` | what |
//! | --- | --- |
//! | `req#<contro1_request_id>` | a pending approval, an execution in flight, or the tombstone of a finished one |
//! | `key#<sha256(agent, Idempotency-Key)>` | which request an agent's `Idempotency-Key` started (`request_id`, `fingerprint`) |
//! | `rate#<counter>#<window end>` | a fixed-window counter (`n`), e.g. approval requests per agent per minute |
//!
//! A `req#` item holds `state` (pending, executing, executed, failed,
//! denied, expired, cancelled), `agent_id`, `owner`, `idempotency_key`,
//! `action` (S: the stored input as JSON — the only thing ever executed),
//! `decision` (S: JSON), `created_at`, `updated_at`, `approval_deadline`
//! (N), `result` (S: JSON, no secrets), `error`, `has_token`, and while a
//! token waits for its one fetch `token_sealed` / `token_key` (B: AES-GCM
//! ciphertext and the KMS-wrapped data key, [`crate::seal`]); never a
//! plaintext token. While `executing` it also holds `executing` (S, `"1"`)
//! and `executing_since` (N), the keys of the sparse index the reconciler
//! queries (`PENDING_EXECUTING_INDEX`, default `executing-index`).
//!
//! Every state change is an `UpdateItem` with a condition on `state`, so of
//! concurrent callbacks exactly one moves `pending → executing`; the
//! condition also accepts the same write's own retry (`claim`), so a lost
//! answer to the winning write never strands the item. A token is opened
//! first (under its binding: agent, request id, action digest) and only
//! then removed, with `REMOVE` conditioned on that very ciphertext, so a
//! KMS failure never destroys it and at most one reader ever gets it.
//!
//! `expires_at` keeps every `req#` item for the tombstone retention after
//! its last change (and a pending one for that long after its approval
//! deadline), so a redelivered callback finds the tombstone rather than
//! nothing.

use crate::seal::{Sealed, Sealer};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem};
use launcher_core::approval::State;
use launcher_core::ports::{
    BoxFut, ExecResult, Finish, KeyClaim, PendingRecord, PendingStore, PutOutcome, Secret,
    StoreError, Transition,
};
use std::collections::HashMap;
use std::sync::Arc;

/// Partition key prefix of a pending item.
pub const PREFIX: &str = "req#";
/// Partition key prefix of an `Idempotency-Key` pointer.
pub const KEY_PREFIX: &str = "key#";
/// Partition key prefix of a rate counter.
pub const RATE_PREFIX: &str = "rate#";
/// Default name of the sparse index over executing items.
pub const DEFAULT_EXECUTING_INDEX: &str = "executing-index";
/// Default tombstone retention: 30 days.
pub const DEFAULT_RETENTION_SECONDS: i64 = 30 * 24 * 3600;

/// The DynamoDB pending store.
#[derive(Clone)]
pub struct DynamoPendingStore {
    client: Client,
    table: String,
    index: String,
    retention: i64,
    sealer: Arc<dyn Sealer>,
}

impl std::fmt::Debug for DynamoPendingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoPendingStore")
            .field("table", &self.table)
            .field("index", &self.index)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn b(v: Vec<u8>) -> AttributeValue {
    AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(v))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn is_conditional_failure<E, R>(e: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    matches!(e, SdkError::ServiceError(se)
        if matches!(se.err().code(), Some("ConditionalCheckFailedException" | "TransactionCanceledException")))
}

impl DynamoPendingStore {
    /// A store over `table`, with tokens sealed by `sealer`, the default
    /// index name and retention.
    pub fn new(client: Client, table: impl Into<String>, sealer: Arc<dyn Sealer>) -> Self {
        DynamoPendingStore {
            client,
            table: table.into(),
            index: DEFAULT_EXECUTING_INDEX.into(),
            retention: DEFAULT_RETENTION_SECONDS,
            sealer,
        }
    }

    /// How long finished items (tombstones) are kept, in seconds.
    pub fn with_retention(mut self, seconds: i64) -> Self {
        self.retention = seconds;
        self
    }

    /// The sparse index over executing items.
    pub fn with_executing_index(mut self, index: impl Into<String>) -> Self {
        self.index = index.into();
        self
    }

    fn key(request_id: &str) -> AttributeValue {
        s(format!("{PREFIX}{request_id}"))
    }

    fn err(&self, op: &str, e: impl std::error::Error) -> StoreError {
        StoreError {
            message: format!(
                "table `{}`: {op} failed: {}",
                self.table,
                aws_sdk_dynamodb::error::DisplayErrorContext(e)
            ),
        }
    }

    fn malformed(&self, pk: &str, what: &str) -> StoreError {
        StoreError {
            message: format!("table `{}`: item `{pk}` is malformed: {what}", self.table),
        }
    }

    fn json<T: serde::de::DeserializeOwned>(
        &self,
        pk: &str,
        key: &str,
        text: &str,
    ) -> Result<T, StoreError> {
        serde_json::from_str(text).map_err(|e| self.malformed(pk, &format!("`{key}`: {e}")))
    }

    fn decode(&self, item: &HashMap<String, AttributeValue>) -> Result<PendingRecord, StoreError> {
        let pk = item
            .get("pk")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let get_s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        let req_s =
            |k: &str| get_s(k).ok_or_else(|| self.malformed(&pk, &format!("missing `{k}`")));
        let opt_n = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
        };
        let get_n =
            |k: &str| opt_n(k).ok_or_else(|| self.malformed(&pk, &format!("missing number `{k}`")));
        let state_text = req_s("state")?;
        let state = State::parse(&state_text)
            .ok_or_else(|| self.malformed(&pk, &format!("unknown state `{state_text}`")))?;
        Ok(PendingRecord {
            request_id: pk.strip_prefix(PREFIX).unwrap_or(&pk).to_string(),
            agent_id: req_s("agent_id")?,
            owner: req_s("owner")?,
            action: self.json(&pk, "action", &req_s("action")?)?,
            decision: self.json(&pk, "decision", &req_s("decision")?)?,
            idempotency_key: req_s("idempotency_key")?,
            state,
            created_at: get_n("created_at")?,
            expires_at: match opt_n("approval_deadline") {
                Some(d) => d,
                None => get_n("expires_at")?,
            },
            result: get_s("result")
                .map(|r| self.json(&pk, "result", &r))
                .transpose()?,
            error: get_s("error"),
            has_token: item
                .get("has_token")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
            executing_since: opt_n("executing_since").filter(|_| state == State::Executing),
            reconcile_attempts: opt_n("reconcile_attempts")
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0),
        })
    }

    async fn current_state(&self, request_id: &str) -> Option<State> {
        self.get_record(request_id)
            .await
            .ok()
            .flatten()
            .map(|r| r.state)
    }

    async fn get_record(&self, request_id: &str) -> Result<Option<PendingRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", Self::key(request_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.err("GetItem", e))?;
        out.item().map(|i| self.decode(i)).transpose()
    }

    fn record_item(&self, rec: &PendingRecord) -> HashMap<String, AttributeValue> {
        let ttl = rec.expires_at.max(rec.created_at) + self.retention;
        let mut item = HashMap::from([
            ("pk".to_string(), Self::key(&rec.request_id)),
            ("state".to_string(), s(rec.state.as_str())),
            ("agent_id".to_string(), s(&rec.agent_id)),
            ("owner".to_string(), s(&rec.owner)),
            ("idempotency_key".to_string(), s(&rec.idempotency_key)),
            ("action".to_string(), s(to_json(&rec.action))),
            ("decision".to_string(), s(to_json(&rec.decision))),
            ("created_at".to_string(), n(rec.created_at)),
            ("updated_at".to_string(), n(rec.created_at)),
            ("approval_deadline".to_string(), n(rec.expires_at)),
            ("expires_at".to_string(), n(ttl)),
            ("has_token".to_string(), AttributeValue::Bool(false)),
        ]);
        if rec.state == State::Executing {
            item.insert("executing".into(), s("1"));
            item.insert(
                "executing_since".into(),
                n(rec.executing_since.unwrap_or(rec.created_at)),
            );
        }
        item
    }
}

impl PendingStore for DynamoPendingStore {
    fn put_pending<'a>(
        &'a self,
        rec: &'a PendingRecord,
    ) -> BoxFut<'a, Result<PutOutcome, StoreError>> {
        Box::pin(async move {
            match self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(self.record_item(rec)))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await
            {
                Ok(_) => Ok(PutOutcome::Created),
                Err(e) if is_conditional_failure(&e) => Ok(PutOutcome::AlreadyExists),
                Err(e) => Err(self.err("PutItem", e)),
            }
        })
    }

    fn put_executing<'a>(
        &'a self,
        rec: &'a PendingRecord,
        key: Option<&'a KeyClaim>,
    ) -> BoxFut<'a, Result<PutOutcome, StoreError>> {
        Box::pin(async move {
            let mut rec = rec.clone();
            rec.state = State::Executing;
            let item = self.record_item(&rec);
            let Some(k) = key else {
                return match self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)")
                    .send()
                    .await
                {
                    Ok(_) => Ok(PutOutcome::Created),
                    Err(e) if is_conditional_failure(&e) => Ok(PutOutcome::AlreadyExists),
                    Err(e) => Err(self.err("PutItem", e)),
                };
            };
            let pointer = HashMap::from([
                ("pk".to_string(), s(format!("{KEY_PREFIX}{}", k.key_id))),
                ("request_id".to_string(), s(&k.request_id)),
                ("fingerprint".to_string(), s(&k.fingerprint)),
                ("created_at".to_string(), n(rec.created_at)),
                ("expires_at".to_string(), n(rec.created_at + self.retention)),
            ]);
            let put = |item| {
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .map(|p| TransactWriteItem::builder().put(p).build())
                    .map_err(|e| self.err("TransactWriteItems", e))
            };
            match self
                .client
                .transact_write_items()
                .transact_items(put(pointer)?)
                .transact_items(put(item)?)
                .send()
                .await
            {
                Ok(_) => Ok(PutOutcome::Created),
                Err(e) if is_conditional_failure(&e) => Ok(PutOutcome::AlreadyExists),
                Err(e) => Err(self.err("TransactWriteItems", e)),
            }
        })
    }

    fn get_key<'a>(&'a self, key_id: &'a str) -> BoxFut<'a, Result<Option<KeyClaim>, StoreError>> {
        Box::pin(async move {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("pk", s(format!("{KEY_PREFIX}{key_id}")))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| self.err("GetItem", e))?;
            let Some(item) = out.item() else {
                return Ok(None);
            };
            let get = |k: &str| {
                item.get(k)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .ok_or_else(|| self.malformed(&format!("{KEY_PREFIX}{key_id}"), k))
            };
            Ok(Some(KeyClaim {
                key_id: key_id.to_string(),
                request_id: get("request_id")?,
                fingerprint: get("fingerprint")?,
            }))
        })
    }

    fn get<'a>(
        &'a self,
        request_id: &'a str,
    ) -> BoxFut<'a, Result<Option<PendingRecord>, StoreError>> {
        Box::pin(self.get_record(request_id))
    }

    fn transition<'a>(
        &'a self,
        request_id: &'a str,
        from: State,
        to: State,
        now: i64,
    ) -> BoxFut<'a, Result<Transition, StoreError>> {
        Box::pin(async move {
            if !from.can_transition(to) {
                return Ok(Transition::LostRace {
                    current: self.current_state(request_id).await,
                });
            }
            // A fresh claim per write: when the SDK retries this very write
            // after an attempt that was applied but not answered, the retry
            // fails the condition, and the stored claim shows it was ours.
            let claim = uuid::Uuid::new_v4().to_string();
            let mut set = vec![
                "#state = :to",
                "updated_at = :now",
                "#claim = :claim",
                "expires_at = :ttl",
            ];
            let mut req = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", Self::key(request_id))
                .condition_expression("#state = :from")
                .expression_attribute_names("#state", "state")
                .expression_attribute_names("#claim", "claim")
                .expression_attribute_values(":to", s(to.as_str()))
                .expression_attribute_values(":from", s(from.as_str()))
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":claim", s(claim.clone()))
                .expression_attribute_values(":ttl", n(now + self.retention));
            if to == State::Executing {
                set.extend(["#executing = :x", "executing_since = :now"]);
                req = req
                    .expression_attribute_values(":x", s("1"))
                    .expression_attribute_names("#executing", "executing");
            }
            let written = req
                .update_expression(format!("SET {}", set.join(", ")))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match written {
                Ok(out) => {
                    // DynamoDB applies a conditional write to one item
                    // atomically, so only one writer gets here per
                    // `pending → executing`. The item as this write left
                    // it (`ALL_NEW`, no extra round trip) must still carry
                    // our claim; if it does not, we back off rather than
                    // execute. (moto, the test server, does not serialise
                    // conditional writes: the tests that count executions
                    // under concurrency put `FaultProxy::serialise_items`
                    // in front of it to give it DynamoDB's guarantee.)
                    let stored = out
                        .attributes()
                        .and_then(|a| a.get("claim"))
                        .and_then(|v| v.as_s().ok());
                    if stored.map(String::as_str) == Some(claim.as_str()) {
                        Ok(Transition::Done)
                    } else {
                        Ok(Transition::LostRace { current: Some(to) })
                    }
                }
                Err(e) if is_conditional_failure(&e) => {
                    // Our own write, applied by an attempt whose answer was
                    // lost, fails its retry's condition: the claim tells.
                    let out = self
                        .client
                        .get_item()
                        .table_name(&self.table)
                        .key("pk", Self::key(request_id))
                        .consistent_read(true)
                        .send()
                        .await
                        .map_err(|e| self.err("GetItem", e))?;
                    let item = out.item();
                    let field = |k: &str| {
                        item.and_then(|i| i.get(k))
                            .and_then(|v| v.as_s().ok())
                            .cloned()
                    };
                    let current = field("state").and_then(|st| State::parse(&st));
                    if current == Some(to) && field("claim").as_deref() == Some(claim.as_str()) {
                        Ok(Transition::Done)
                    } else {
                        Ok(Transition::LostRace { current })
                    }
                }
                Err(e) => Err(self.err("UpdateItem", e)),
            }
        })
    }

    fn finish<'a>(
        &'a self,
        request_id: &'a str,
        finish: Finish,
    ) -> BoxFut<'a, Result<Transition, StoreError>> {
        Box::pin(async move {
            let mut finish = finish;
            let sealed = match (finish.token.take(), finish.token_binding.take()) {
                (None, _) => None,
                (Some(_), None) => {
                    tracing::error!(target: "audit", contro1_request_id = request_id, "token without a binding; it is not stored");
                    finish.state = State::Failed;
                    finish.error = Some(
                        "the token was issued but could not be bound for storage; it was discarded: ask again".into(),
                    );
                    None
                }
                (Some(t), Some(binding)) => {
                    match self.sealer.seal(&binding, t.expose().as_bytes()).await {
                        Ok(sealed) => Some(sealed),
                        Err(e) => {
                            // Never stored in plaintext: the token is dropped.
                            tracing::error!(target: "audit", contro1_request_id = request_id, error = %e, "token could not be sealed; it is not stored");
                            finish.state = State::Failed;
                            finish.error = Some(
                            "the token was issued but could not be sealed for storage; it was discarded: ask again".into(),
                        );
                            None
                        }
                    }
                }
            };
            let now = now();
            let mut set = vec![
                "#state = :to",
                "updated_at = :now",
                "has_token = :has",
                "expires_at = :ttl",
            ];
            let mut req = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", Self::key(request_id))
                .condition_expression("#state = :from")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":to", s(finish.state.as_str()))
                .expression_attribute_values(":from", s(State::Executing.as_str()))
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":ttl", n(now + self.retention))
                .expression_attribute_values(":has", AttributeValue::Bool(sealed.is_some()));
            if let Some(r) = &finish.result {
                set.push("#result = :result");
                req = req
                    .expression_attribute_names("#result", "result")
                    .expression_attribute_values(":result", s(to_json(r)));
            }
            if let Some(e) = &finish.error {
                set.push("#error = :error");
                req = req
                    .expression_attribute_names("#error", "error")
                    .expression_attribute_values(":error", s(e));
            }
            if let Some(sealed) = sealed {
                set.extend(["token_sealed = :ct", "token_key = :wk"]);
                req = req
                    .expression_attribute_values(":ct", b(sealed.ciphertext))
                    .expression_attribute_values(":wk", b(sealed.wrapped_key));
            }
            match req
                .update_expression(format!(
                    "SET {} REMOVE #executing, executing_since",
                    set.join(", ")
                ))
                .expression_attribute_names("#executing", "executing")
                .send()
                .await
            {
                Ok(_) => Ok(Transition::Done),
                Err(e) if is_conditional_failure(&e) => Ok(Transition::LostRace {
                    current: self.current_state(request_id).await,
                }),
                Err(e) => Err(self.err("UpdateItem", e)),
            }
        })
    }

    fn take_token_once<'a>(
        &'a self,
        request_id: &'a str,
        binding: &'a str,
    ) -> BoxFut<'a, Result<Option<Secret>, StoreError>> {
        Box::pin(async move {
            // Decrypt first, remove after: a KMS failure or a token bound to
            // another agent or action leaves the token where it is.
            let pk = format!("{PREFIX}{request_id}");
            let item = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("pk", Self::key(request_id))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| self.err("GetItem", e))?;
            let blob = |k: &str| {
                item.item()
                    .and_then(|a| a.get(k))
                    .and_then(|v| v.as_b().ok())
                    .map(|b| b.as_ref().to_vec())
            };
            let (Some(ciphertext), Some(wrapped_key)) = (blob("token_sealed"), blob("token_key"))
            else {
                return Ok(None);
            };
            let plain = self
                .sealer
                .open(
                    binding,
                    &Sealed {
                        wrapped_key,
                        ciphertext: ciphertext.clone(),
                    },
                )
                .await
                .map_err(|e| StoreError {
                    message: format!("table `{}`: item `{pk}`: {e}", self.table),
                })?;
            let token = String::from_utf8(plain)
                .map_err(|_| self.malformed(&pk, "the sealed token is not UTF-8"))?;
            // Only the reader whose removal finds this very ciphertext gets it.
            match self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", Self::key(request_id))
                .update_expression(
                    "REMOVE token_sealed, token_key SET has_token = :f, updated_at = :now",
                )
                .condition_expression("token_sealed = :ct")
                .expression_attribute_values(":ct", b(ciphertext))
                .expression_attribute_values(":f", AttributeValue::Bool(false))
                .expression_attribute_values(":now", n(now()))
                .send()
                .await
            {
                Ok(_) => Ok(Some(Secret::new(token))),
                Err(e) if is_conditional_failure(&e) => Ok(None),
                Err(e) => Err(self.err("UpdateItem", e)),
            }
        })
    }

    fn save_result<'a>(
        &'a self,
        request_id: &'a str,
        result: &'a ExecResult,
    ) -> BoxFut<'a, Result<(), StoreError>> {
        Box::pin(async move {
            match self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", Self::key(request_id))
                .update_expression("SET #result = :r, updated_at = :now")
                .condition_expression("#state = :executing")
                .expression_attribute_names("#result", "result")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":r", s(to_json(result)))
                .expression_attribute_values(":now", n(now()))
                .expression_attribute_values(":executing", s(State::Executing.as_str()))
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if is_conditional_failure(&e) => Ok(()),
                Err(e) => Err(self.err("UpdateItem", e)),
            }
        })
    }

    fn stuck<'a>(
        &'a self,
        cutoff: i64,
        limit: usize,
    ) -> BoxFut<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let mut ids = Vec::new();
            let mut start = None;
            while ids.len() < limit {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(&self.index)
                    .key_condition_expression("#executing = :x AND executing_since < :cutoff")
                    .expression_attribute_names("#executing", "executing")
                    .expression_attribute_values(":x", s("1"))
                    .expression_attribute_values(":cutoff", n(cutoff))
                    .projection_expression("pk")
                    .limit(i32::try_from(limit - ids.len()).unwrap_or(i32::MAX))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| self.err(&format!("Query on index `{}`", self.index), e))?;
                for item in out.items() {
                    if let Some(id) = item
                        .get("pk")
                        .and_then(|v| v.as_s().ok())
                        .and_then(|pk| pk.strip_prefix(PREFIX))
                    {
                        ids.push(id.to_string());
                    }
                }
                start = out.last_evaluated_key().cloned();
                if start.is_none() {
                    break;
                }
            }
            Ok(ids)
        })
    }

    fn lease<'a>(
        &'a self,
        request_id: &'a str,
        seen_since: i64,
        now: i64,
    ) -> BoxFut<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            match self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", Self::key(request_id))
                .update_expression(
                    "SET executing_since = :now, updated_at = :now, reconcile_attempts = if_not_exists(reconcile_attempts, :zero) + :one",
                )
                .condition_expression("#state = :executing AND executing_since = :seen")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":executing", s(State::Executing.as_str()))
                .expression_attribute_values(":seen", n(seen_since))
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":one", n(1))
                .send()
                .await
            {
                Ok(_) => Ok(true),
                Err(e) if is_conditional_failure(&e) => Ok(false),
                Err(e) => Err(self.err("UpdateItem", e)),
            }
        })
    }

    fn count_in_window<'a>(
        &'a self,
        key: &'a str,
        window_end: i64,
        limit: u32,
    ) -> BoxFut<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            match self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(format!("{RATE_PREFIX}{key}#{window_end}")))
                .update_expression("SET expires_at = :ttl ADD #n :one")
                .condition_expression("attribute_not_exists(#n) OR #n < :limit")
                .expression_attribute_names("#n", "n")
                .expression_attribute_values(":ttl", n(window_end + 3600))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":limit", n(i64::from(limit)))
                .send()
                .await
            {
                Ok(_) => Ok(true),
                Err(e) if is_conditional_failure(&e) => Ok(false),
                Err(e) => Err(self.err("UpdateItem", e)),
            }
        })
    }
}

/// JSON text of a stored attribute.
fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}
