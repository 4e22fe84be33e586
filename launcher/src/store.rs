//! The pending-approvals table in DynamoDB (`PENDING_TABLE`).
//!
//! ## Table design
//! Partition key `pk` (string) = `req#<contro1_request_id>`, no sort key, TTL
//! attribute `expires_at` (unix seconds). Attributes: `state` (S: pending,
//! executing, executed, failed, denied, expired, cancelled), `agent_id`,
//! `owner`, `idempotency_key`, `action` (S: the stored input as JSON — the
//! only thing ever executed), `decision` (S: JSON), `created_at` (N),
//! `updated_at` (N), `result` (S: JSON, no secrets), `error` (S), `token` (S:
//! a token waiting to be fetched once; removed on fetch), `has_token` (BOOL).
//!
//! Every state change is an `UpdateItem` with `ConditionExpression
//! #state = :from`, so of concurrent callbacks exactly one moves
//! `pending → executing`; the others get `ConditionalCheckFailedException`,
//! reported as [`Transition::LostRace`]. The token is taken with
//! `REMOVE token` conditioned on `attribute_exists(token)` and
//! `ReturnValues = ALL_OLD`, so at most one reader ever sees it.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use launcher_core::approval::State;
use launcher_core::ports::{
    BoxFut, Finish, PendingRecord, PendingStore, PutOutcome, Secret, StoreError, Transition,
};
use std::collections::HashMap;

/// Partition key prefix of a pending item.
pub const PREFIX: &str = "req#";

/// The DynamoDB pending store.
#[derive(Debug, Clone)]
pub struct DynamoPendingStore {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
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
    matches!(e, SdkError::ServiceError(se) if se.err().code() == Some("ConditionalCheckFailedException"))
}

impl DynamoPendingStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoPendingStore {
            client,
            table: table.into(),
        }
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
        let get_n = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
                .ok_or_else(|| self.malformed(&pk, &format!("missing number `{k}`")))
        };
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
            expires_at: get_n("expires_at")?,
            result: get_s("result")
                .map(|r| self.json(&pk, "result", &r))
                .transpose()?,
            error: get_s("error"),
            has_token: item
                .get("has_token")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
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
}

impl PendingStore for DynamoPendingStore {
    fn put_pending<'a>(
        &'a self,
        rec: &'a PendingRecord,
    ) -> BoxFut<'a, Result<PutOutcome, StoreError>> {
        Box::pin(async move {
            let item = HashMap::from([
                ("pk".to_string(), Self::key(&rec.request_id)),
                ("state".to_string(), s(rec.state.as_str())),
                ("agent_id".to_string(), s(&rec.agent_id)),
                ("owner".to_string(), s(&rec.owner)),
                ("idempotency_key".to_string(), s(&rec.idempotency_key)),
                ("action".to_string(), s(to_json(&rec.action))),
                ("decision".to_string(), s(to_json(&rec.decision))),
                ("created_at".to_string(), n(rec.created_at)),
                ("updated_at".to_string(), n(rec.created_at)),
                ("expires_at".to_string(), n(rec.expires_at)),
                ("has_token".to_string(), AttributeValue::Bool(false)),
            ]);
            match self
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
            }
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
    ) -> BoxFut<'a, Result<Transition, StoreError>> {
        Box::pin(async move {
            if !from.can_transition(to) {
                return Ok(Transition::LostRace {
                    current: self.current_state(request_id).await,
                });
            }
            match self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", Self::key(request_id))
                .update_expression("SET #state = :to, updated_at = :now")
                .condition_expression("#state = :from")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":to", s(to.as_str()))
                .expression_attribute_values(":from", s(from.as_str()))
                .expression_attribute_values(":now", n(now()))
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

    fn finish<'a>(
        &'a self,
        request_id: &'a str,
        finish: Finish,
    ) -> BoxFut<'a, Result<Transition, StoreError>> {
        Box::pin(async move {
            let mut set = vec!["#state = :to", "updated_at = :now", "has_token = :has"];
            let mut req = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", Self::key(request_id))
                .condition_expression("#state = :from")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":to", s(finish.state.as_str()))
                .expression_attribute_values(":from", s(State::Executing.as_str()))
                .expression_attribute_values(":now", n(now()))
                .expression_attribute_values(":has", AttributeValue::Bool(finish.token.is_some()));
            if let Some(r) = &finish.result {
                set.push("#result = :result");
                req = req
                    .expression_attribute_names("#result", "result")
                    .expression_attribute_values(
                        ":result",
                        s(serde_json::to_string(r).unwrap_or_default()),
                    );
            }
            if let Some(e) = &finish.error {
                set.push("#error = :error");
                req = req
                    .expression_attribute_names("#error", "error")
                    .expression_attribute_values(":error", s(e));
            }
            if let Some(t) = &finish.token {
                set.push("#token = :token");
                req = req
                    .expression_attribute_names("#token", "token")
                    .expression_attribute_values(":token", s(t.expose()));
            }
            match req
                .update_expression(format!("SET {}", set.join(", ")))
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
    ) -> BoxFut<'a, Result<Option<Secret>, StoreError>> {
        Box::pin(async move {
            match self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", Self::key(request_id))
                .update_expression("REMOVE #token SET has_token = :f, updated_at = :now")
                .condition_expression("attribute_exists(#token)")
                .expression_attribute_names("#token", "token")
                .expression_attribute_values(":f", AttributeValue::Bool(false))
                .expression_attribute_values(":now", n(now()))
                .return_values(ReturnValue::AllOld)
                .send()
                .await
            {
                Ok(out) => Ok(out
                    .attributes()
                    .and_then(|a| a.get("token"))
                    .and_then(|v| v.as_s().ok())
                    .map(|t| Secret::new(t.clone()))),
                Err(e) if is_conditional_failure(&e) => Ok(None),
                Err(e) => Err(self.err("UpdateItem", e)),
            }
        })
    }
}

/// JSON text of a stored attribute.
fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}
