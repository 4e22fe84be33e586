//! A local Contro1 stand-in: the same HTTP API as the real service, in
//! memory, with an unauthenticated `/_dev/` surface to play the human
//! reviewer and to inject faults.
//!
//! It exists so that the launcher can be run end to end on a laptop
//! (`launcher contro1-dev`) and so that tests exercise the real client over
//! real HTTP and receive real signed callbacks, instead of mocking either
//! side. Callbacks are signed with [`shared_core::webhook::sign`] over the
//! exact bytes sent, as reference/contro1-api.md describes.
//!
//! API (Bearer key required):
//! - `POST /requests` — needs `type` (approval, yes_no, free_text), a
//!   non-empty `question` and a string `context`, as Contro1's SDK always
//!   sends them; honours `Idempotency-Key`
//!   (same key and body → the same request, `200`; same key with another body
//!   → `409`); answers `201 {id, state: "created", ...}`.
//! - `GET /requests/{id}`, `DELETE /requests/{id}` (→ `cancelled`, cancelled
//!   callback sent in the background when `callback_url` is set; `409` when
//!   already terminal).
//! - `POST /audit-records` — needs a string `action`, a string `summary` and
//!   `source.integration`, as the SDK's `log_action` sends them; honours
//!   `Idempotency-Key`; answers `201 {id, ...}`.
//!
//! Dev surface (no auth — bind to loopback only):
//! - `GET /_dev/requests`, `GET /_dev/audit-records`;
//! - `POST /_dev/requests/{id}/approve` | `/deny` (optional body
//!   `{"responded_by": "..."}`) | `/expire` — resolve and deliver the callback;
//! - `POST /_dev/faults` `{fail_next, status, delay_ms, retry_after_secs}` —
//!   the next `fail_next` API calls answer `status` (default 503, with
//!   `Retry-After` when set); every API call waits `delay_ms` first.
//!   `GET /_dev/faults` shows them.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared_core::webhook::{self, Decision};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client::IDEMPOTENCY_HEADER;
use crate::types::TERMINAL_STATES;

/// `responded_by` when the reviewer does not say who they are.
pub const DEFAULT_REVIEWER: &str = "reviewer@standin.local";
/// How long the stand-in waits for a callback receiver.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of a stand-in.
#[derive(Clone)]
pub struct StandInConfig {
    /// The Bearer key clients must send.
    pub api_key: String,
    /// The organisation webhook secret callbacks are signed with.
    pub webhook_secret: String,
    /// Listen address, e.g. `127.0.0.1:0` (any free port).
    pub bind: String,
}

impl StandInConfig {
    /// Settings listening on `127.0.0.1:0`.
    pub fn new(api_key: impl Into<String>, webhook_secret: impl Into<String>) -> Self {
        StandInConfig {
            api_key: api_key.into(),
            webhook_secret: webhook_secret.into(),
            bind: "127.0.0.1:0".into(),
        }
    }
}

impl fmt::Debug for StandInConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandInConfig")
            .field("api_key", &"***redacted***")
            .field("webhook_secret", &"***redacted***")
            .field("bind", &self.bind)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StandInError {
    #[error("invalid stand-in configuration: {reason}")]
    Config { reason: String },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("stand-in server failed")]
    Serve(#[source] std::io::Error),
    #[error("no request with id {id:?}")]
    UnknownRequest { id: String },
    #[error("request {id} is already {state}; it cannot be resolved again")]
    NotPending { id: String, state: String },
    #[error("request {id} has no callback delivered yet")]
    NothingToRedeliver { id: String },
}

/// A request as the stand-in holds it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredRequest {
    pub id: String,
    pub state: String,
    /// The JSON body exactly as received (parsed).
    pub body: Value,
    pub idempotency_key: Option<String>,
    pub created_at: String,
    pub response: Option<Value>,
    pub responded_by: Option<String>,
    pub responded_at: Option<String>,
    /// Callback deliveries attempted so far.
    pub callback_attempts: u32,
    /// HTTP status of the last delivery (`None`: not sent or no answer).
    pub last_callback_status: Option<u16>,
    #[serde(skip)]
    last_callback: Option<SignedCallback>,
}

impl StoredRequest {
    pub fn callback_url(&self) -> Option<&str> {
        self.body.get("callback_url").and_then(Value::as_str)
    }

    pub fn is_terminal(&self) -> bool {
        TERMINAL_STATES.contains(&self.state.as_str())
    }

    /// What the API answers about this request: the body as sent plus
    /// `id`, `state`, `created_at`, `response`, `responded_by`, `responded_at`.
    pub fn view(&self) -> Value {
        let mut v = match &self.body {
            Value::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        };
        v.insert("id".into(), json!(self.id));
        v.insert("state".into(), json!(self.state));
        v.insert("created_at".into(), json!(self.created_at));
        v.insert("response".into(), json!(self.response));
        v.insert("responded_by".into(), json!(self.responded_by));
        v.insert("responded_at".into(), json!(self.responded_at));
        Value::Object(v)
    }
}

/// A callback built and signed, ready to be POSTed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCallback {
    pub request_id: String,
    /// The exact bytes that were signed.
    pub body: Vec<u8>,
    pub timestamp: i64,
    /// Lowercase hex HMAC-SHA256.
    pub signature: String,
    /// Where it goes (`callback_url` of the request), if anywhere.
    pub url: Option<String>,
}

impl SignedCallback {
    /// The three `X-Centcom-*` headers, by name.
    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            (webhook::SIGNATURE_HEADER, self.signature.clone()),
            (webhook::TIMESTAMP_HEADER, self.timestamp.to_string()),
            (webhook::REQUEST_ID_HEADER, self.request_id.clone()),
        ]
    }
}

/// What happened when a callback was sent.
#[derive(Debug, Clone)]
pub struct CallbackDelivery {
    /// `None` when the request has no `callback_url`.
    pub url: Option<String>,
    /// HTTP status the receiver answered; `None` when nothing was sent or
    /// no answer came (see `error`).
    pub status: Option<u16>,
    /// The exact body sent (signed).
    pub body: Vec<u8>,
    /// Headers sent (name, value), including the `X-Centcom-*` ones.
    pub headers: Vec<(String, String)>,
    /// The receiver's answer body.
    pub response_body: Vec<u8>,
    /// Transport error, when the receiver could not be reached.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Faults {
    fail_next: u32,
    status: u16,
    delay_ms: u64,
    /// `Retry-After` seconds sent with injected faults.
    retry_after_secs: Option<u64>,
}

struct Data {
    requests: Vec<StoredRequest>,
    audit_records: Vec<Value>,
    audit_keys: Vec<(String, String)>,
    faults: Faults,
    hits: u64,
}

struct Shared {
    api_key: String,
    secret: Vec<u8>,
    http: reqwest::Client,
    data: Mutex<Data>,
}

/// The stand-in's state; cheap to clone. Both the HTTP handlers and the
/// programmatic API ([`StandInHandle`] derefs to it) work through it.
#[derive(Clone)]
pub struct StandInState {
    shared: Arc<Shared>,
}

impl fmt::Debug for StandInState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandInState").finish_non_exhaustive()
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| now_unix().to_string())
}

fn state_and_response(decision: Decision) -> (&'static str, Option<Value>) {
    match decision {
        Decision::Approved => (
            "answered",
            Some(json!({"approved": true, "decision": "approved"})),
        ),
        Decision::Denied => (
            "answered",
            Some(json!({"approved": false, "decision": "denied"})),
        ),
        Decision::Expired => ("expired", None),
        Decision::Cancelled => ("cancelled", None),
    }
}

impl StandInState {
    /// Validates the configuration (non-empty key and secret).
    pub fn new(cfg: &StandInConfig) -> Result<Self, StandInError> {
        if cfg.api_key.trim().is_empty() {
            return Err(StandInError::Config {
                reason: "api_key is empty".into(),
            });
        }
        if cfg.webhook_secret.is_empty() {
            return Err(StandInError::Config {
                reason: "webhook_secret is empty".into(),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(CALLBACK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| StandInError::Config {
                reason: format!("building the callback HTTP client: {e}"),
            })?;
        Ok(StandInState {
            shared: Arc::new(Shared {
                api_key: cfg.api_key.clone(),
                secret: cfg.webhook_secret.as_bytes().to_vec(),
                http,
                data: Mutex::new(Data {
                    requests: Vec::new(),
                    audit_records: Vec::new(),
                    audit_keys: Vec::new(),
                    faults: Faults {
                        fail_next: 0,
                        status: 503,
                        delay_ms: 0,
                        retry_after_secs: None,
                    },
                    hits: 0,
                }),
            }),
        })
    }

    fn data(&self) -> MutexGuard<'_, Data> {
        // A panic while holding the lock cannot leave the data half-written
        // in a way that matters for a test double; keep serving.
        self.shared
            .data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every request received, oldest first.
    pub fn requests(&self) -> Vec<StoredRequest> {
        self.data().requests.clone()
    }

    /// One request by id.
    pub fn request(&self, id: &str) -> Option<StoredRequest> {
        self.data().requests.iter().find(|r| r.id == id).cloned()
    }

    /// Every audit record received (body plus `id` and `created_at`), oldest first.
    pub fn audit_records(&self) -> Vec<Value> {
        self.data().audit_records.clone()
    }

    /// API calls received so far (not counting `/_dev/`), faulted ones included.
    pub fn hits(&self) -> u64 {
        self.data().hits
    }

    /// The next `n` API calls answer `status` with `{"message": "injected fault"}`.
    pub fn fail_next(&self, n: u32, status: u16) {
        let mut d = self.data();
        d.faults.fail_next = n;
        d.faults.status = status;
        d.faults.retry_after_secs = None;
    }

    /// As [`Self::fail_next`], with a `Retry-After: secs` header on each fault.
    pub fn fail_next_with_retry_after(&self, n: u32, status: u16, secs: u64) {
        let mut d = self.data();
        d.faults.fail_next = n;
        d.faults.status = status;
        d.faults.retry_after_secs = Some(secs);
    }

    /// Every API call waits `delay` before being handled.
    pub fn set_delay(&self, delay: Duration) {
        self.data().faults.delay_ms = delay.as_millis().try_into().unwrap_or(u64::MAX);
    }

    /// Approves request `id` as `by` and delivers the callback.
    pub async fn approve(&self, id: &str, by: &str) -> Result<CallbackDelivery, StandInError> {
        self.resolve(id, Decision::Approved, by).await
    }

    /// Denies request `id` as `by` and delivers the callback.
    pub async fn deny(&self, id: &str, by: &str) -> Result<CallbackDelivery, StandInError> {
        self.resolve(id, Decision::Denied, by).await
    }

    /// Expires request `id` and delivers the callback.
    pub async fn expire(&self, id: &str) -> Result<CallbackDelivery, StandInError> {
        self.resolve(id, Decision::Expired, "").await
    }

    /// Sends the last callback of `id` again, byte for byte with the same
    /// headers (as Contro1 does when it retries a delivery).
    pub async fn redeliver(&self, id: &str) -> Result<CallbackDelivery, StandInError> {
        let cb = {
            let d = self.data();
            let r = d
                .requests
                .iter()
                .find(|r| r.id == id)
                .ok_or_else(|| StandInError::UnknownRequest { id: id.into() })?;
            r.last_callback
                .clone()
                .ok_or_else(|| StandInError::NothingToRedeliver { id: id.into() })?
        };
        Ok(self.deliver(cb).await)
    }

    /// Resolves request `id` as a reviewer would (its state changes, so
    /// `GET /requests/{id}` reports the decision) and returns the signed
    /// callback **without** sending it, for tests that post it themselves.
    pub fn decide(&self, id: &str, decision: Decision) -> Result<SignedCallback, StandInError> {
        self.settle(id, decision, DEFAULT_REVIEWER)
    }

    /// A callback for `id` carrying `decision`, signed now, **not** sent and
    /// without changing the request (for tests that post it themselves).
    pub fn signed_callback(
        &self,
        id: &str,
        decision: Decision,
    ) -> Result<SignedCallback, StandInError> {
        self.signed_callback_at(id, decision, now_unix())
    }

    /// As [`Self::signed_callback`], signed with the given timestamp (for
    /// stale-timestamp tests).
    pub fn signed_callback_at(
        &self,
        id: &str,
        decision: Decision,
        timestamp: i64,
    ) -> Result<SignedCallback, StandInError> {
        let d = self.data();
        let r = d
            .requests
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| StandInError::UnknownRequest { id: id.into() })?;
        let (state, response) = state_and_response(decision);
        let by =
            matches!(decision, Decision::Approved | Decision::Denied).then_some(DEFAULT_REVIEWER);
        Ok(self.build_callback(r, state, response.as_ref(), by, &now_rfc3339(), timestamp))
    }

    fn build_callback(
        &self,
        r: &StoredRequest,
        state: &str,
        response: Option<&Value>,
        responded_by: Option<&str>,
        responded_at: &str,
        timestamp: i64,
    ) -> SignedCallback {
        let body = json!({
            "request_id": r.id,
            "state": state,
            "response": response,
            "responded_by": responded_by,
            "responded_at": responded_at,
            "metadata": r.body.get("metadata").cloned().unwrap_or(Value::Null),
        });
        let body = serde_json::to_vec(&body).expect("a JSON value always serialises");
        let signature = webhook::sign(&self.shared.secret, timestamp, &body);
        SignedCallback {
            request_id: r.id.clone(),
            body,
            timestamp,
            signature,
            url: r.callback_url().map(str::to_owned),
        }
    }

    /// Moves a pending request to the decision's state and records the
    /// signed callback; does not send it.
    fn settle(
        &self,
        id: &str,
        decision: Decision,
        by: &str,
    ) -> Result<SignedCallback, StandInError> {
        let mut d = self.data();
        let r = d
            .requests
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or_else(|| StandInError::UnknownRequest { id: id.into() })?;
        if r.is_terminal() {
            return Err(StandInError::NotPending {
                id: id.into(),
                state: r.state.clone(),
            });
        }
        let (state, response) = state_and_response(decision);
        let by = match decision {
            Decision::Approved | Decision::Denied if by.is_empty() => {
                Some(DEFAULT_REVIEWER.to_owned())
            }
            Decision::Approved | Decision::Denied => Some(by.to_owned()),
            Decision::Expired | Decision::Cancelled => None,
        };
        let at = now_rfc3339();
        r.state = state.to_owned();
        r.response.clone_from(&response);
        r.responded_by.clone_from(&by);
        r.responded_at = Some(at.clone());
        let r = r.clone();
        let cb = self.build_callback(&r, state, response.as_ref(), by.as_deref(), &at, now_unix());
        if let Some(stored) = d.requests.iter_mut().find(|x| x.id == id) {
            stored.last_callback = Some(cb.clone());
        }
        Ok(cb)
    }

    async fn resolve(
        &self,
        id: &str,
        decision: Decision,
        by: &str,
    ) -> Result<CallbackDelivery, StandInError> {
        let cb = self.settle(id, decision, by)?;
        tracing::info!(
            request_id = id,
            decision = decision.as_str(),
            "stand-in resolved request"
        );
        Ok(self.deliver(cb).await)
    }

    /// POSTs a signed callback to its URL and records the outcome.
    async fn deliver(&self, cb: SignedCallback) -> CallbackDelivery {
        let mut headers: Vec<(String, String)> = cb
            .headers()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        headers.push((
            header::CONTENT_TYPE.as_str().to_owned(),
            "application/json".to_owned(),
        ));
        let mut delivery = CallbackDelivery {
            url: cb.url.clone(),
            status: None,
            body: cb.body.clone(),
            headers,
            response_body: Vec::new(),
            error: None,
        };
        let Some(url) = cb.url.clone() else {
            return delivery;
        };
        let mut rb = self.shared.http.post(&url);
        for (k, v) in &delivery.headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        match rb.body(cb.body.clone()).send().await {
            Ok(resp) => {
                delivery.status = Some(resp.status().as_u16());
                match resp.bytes().await {
                    Ok(b) => delivery.response_body = b.to_vec(),
                    Err(e) => delivery.error = Some(format!("reading the receiver's answer: {e}")),
                }
            }
            Err(e) => delivery.error = Some(e.to_string()),
        }
        tracing::info!(request_id = %cb.request_id, url = %url, status = ?delivery.status, error = ?delivery.error, "stand-in delivered callback");
        let mut d = self.data();
        if let Some(r) = d.requests.iter_mut().find(|r| r.id == cb.request_id) {
            r.callback_attempts += 1;
            r.last_callback_status = delivery.status;
        }
        delivery
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some(token) = value.strip_prefix("Bearer ") else {
            return false;
        };
        bool::from(token.as_bytes().ct_eq(self.shared.api_key.as_bytes()))
    }
}

fn message(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({"message": msg.into()}))).into_response()
}

fn unauthorized() -> Response {
    message(StatusCode::UNAUTHORIZED, "missing or invalid API key")
}

fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get(IDEMPOTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .filter(|k| !k.is_empty())
}

/// The body as a JSON object, or the 400 message saying why not.
fn parse_object(body: &[u8]) -> Result<Value, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
    if !v.is_object() {
        return Err("body must be a JSON object".into());
    }
    Ok(v)
}

/// The request types Contro1's SDK (`centcom.CentcomClient.create_request`) documents.
const REQUEST_TYPES: &[&str] = &["approval", "yes_no", "free_text"];

/// What `POST /requests` requires, as Contro1's SDK does: `create_request`
/// always sends `type` (one of [`REQUEST_TYPES`]), `question` and `context`.
fn check_request_body(v: &Value) -> Result<(), String> {
    match v.get("type").and_then(Value::as_str) {
        Some(t) if REQUEST_TYPES.contains(&t) => {}
        _ => {
            return Err(format!(
                "`type` must be one of {}",
                REQUEST_TYPES.join(", ")
            ));
        }
    }
    if v.get("question")
        .and_then(Value::as_str)
        .is_none_or(|q| q.trim().is_empty())
    {
        return Err("`question` must be a non-empty string".into());
    }
    if v.get("context").and_then(Value::as_str).is_none() {
        return Err("`context` must be a string".into());
    }
    Ok(())
}

/// What `POST /audit-records` requires, as Contro1's SDK does: `log_action`
/// always sends `action`, `summary` and a `source` object.
fn check_audit_body(v: &Value) -> Result<(), String> {
    if v.get("action")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err("audit record must have a non-empty string `action`".into());
    }
    if v.get("summary").and_then(Value::as_str).is_none() {
        return Err("audit record must have a string `summary`".into());
    }
    if v.get("source")
        .and_then(|s| s.get("integration"))
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(
            "audit record must have a `source` object with a non-empty `integration`".into(),
        );
    }
    Ok(())
}

async fn create_request(
    State(s): State<StandInState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !s.authorized(&headers) {
        return unauthorized();
    }
    let v = match parse_object(&body) {
        Ok(v) => v,
        Err(msg) => return message(StatusCode::BAD_REQUEST, msg),
    };
    if let Err(msg) = check_request_body(&v) {
        return message(StatusCode::BAD_REQUEST, msg);
    }
    if let Some(cb) = v.get("callback_url")
        && !cb
            .as_str()
            .is_some_and(|u| u.starts_with("http://") || u.starts_with("https://"))
    {
        return message(
            StatusCode::BAD_REQUEST,
            "`callback_url` must be an http(s) URL",
        );
    }
    let key = idempotency_key(&headers);
    let mut d = s.data();
    if let Some(k) = &key
        && let Some(existing) = d
            .requests
            .iter()
            .find(|r| r.idempotency_key.as_deref() == Some(k))
    {
        if existing.body != v {
            return message(
                StatusCode::CONFLICT,
                "Idempotency-Key reused with a different body",
            );
        }
        return (StatusCode::OK, Json(existing.view())).into_response();
    }
    let r = StoredRequest {
        id: format!("req_{}", uuid::Uuid::new_v4().simple()),
        state: "created".into(),
        body: v,
        idempotency_key: key,
        created_at: now_rfc3339(),
        response: None,
        responded_by: None,
        responded_at: None,
        callback_attempts: 0,
        last_callback_status: None,
        last_callback: None,
    };
    let view = r.view();
    d.requests.push(r);
    (StatusCode::CREATED, Json(view)).into_response()
}

async fn get_request(
    State(s): State<StandInState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !s.authorized(&headers) {
        return unauthorized();
    }
    match s.request(&id) {
        Some(r) => Json(r.view()).into_response(),
        None => message(StatusCode::NOT_FOUND, format!("request {id} not found")),
    }
}

async fn cancel_request(
    State(s): State<StandInState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !s.authorized(&headers) {
        return unauthorized();
    }
    match s.settle(&id, Decision::Cancelled, "") {
        Ok(cb) => {
            let view = s.request(&id).map(|r| r.view()).unwrap_or(Value::Null);
            if cb.url.is_some() {
                tokio::spawn(async move {
                    s.deliver(cb).await;
                });
            }
            Json(view).into_response()
        }
        Err(StandInError::UnknownRequest { .. }) => {
            message(StatusCode::NOT_FOUND, format!("request {id} not found"))
        }
        Err(e) => message(StatusCode::CONFLICT, e.to_string()),
    }
}

async fn create_audit_record(
    State(s): State<StandInState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !s.authorized(&headers) {
        return unauthorized();
    }
    let mut v = match parse_object(&body) {
        Ok(v) => v,
        Err(msg) => return message(StatusCode::BAD_REQUEST, msg),
    };
    if let Err(msg) = check_audit_body(&v) {
        return message(StatusCode::BAD_REQUEST, msg);
    }
    let key = idempotency_key(&headers);
    let mut d = s.data();
    if let Some(k) = &key
        && let Some((_, id)) = d.audit_keys.iter().find(|(kk, _)| kk == k)
    {
        let id = id.clone();
        let existing = d
            .audit_records
            .iter()
            .find(|r| r["id"] == id.as_str())
            .cloned();
        return (
            StatusCode::OK,
            Json(existing.unwrap_or_else(|| json!({"id": id}))),
        )
            .into_response();
    }
    let id = format!("aud_{}", uuid::Uuid::new_v4().simple());
    if let Some(obj) = v.as_object_mut() {
        obj.insert("id".into(), json!(id));
        obj.insert("created_at".into(), json!(now_rfc3339()));
    }
    if let Some(k) = key {
        d.audit_keys.push((k, id));
    }
    d.audit_records.push(v.clone());
    (StatusCode::CREATED, Json(v)).into_response()
}

/// Counts API calls, applies the injected delay, answers injected faults.
async fn faults_layer(State(s): State<StandInState>, req: Request, next: Next) -> Response {
    let (delay, fail, retry_after) = {
        let mut d = s.data();
        d.hits += 1;
        let fail = (d.faults.fail_next > 0).then(|| {
            d.faults.fail_next -= 1;
            d.faults.status
        });
        (
            Duration::from_millis(d.faults.delay_ms),
            fail,
            d.faults.retry_after_secs,
        )
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(status) = fail {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut resp = message(status, "injected fault");
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        return resp;
    }
    next.run(req).await
}

#[derive(Debug, Default, Deserialize)]
struct ReviewerBody {
    responded_by: Option<String>,
}

fn delivery_json(id: &str, s: &StandInState, d: &CallbackDelivery) -> Value {
    json!({
        "request_id": id,
        "state": s.request(id).map(|r| r.state),
        "callback": {"url": d.url, "status": d.status, "error": d.error},
    })
}

async fn dev_resolve(s: StandInState, id: String, decision: Decision, body: &[u8]) -> Response {
    let reviewer: ReviewerBody = if body.iter().all(u8::is_ascii_whitespace) {
        ReviewerBody::default()
    } else {
        match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => {
                return message(
                    StatusCode::BAD_REQUEST,
                    format!("body is not {{\"responded_by\": ...}}: {e}"),
                );
            }
        }
    };
    let by = reviewer.responded_by.unwrap_or_default();
    match s.resolve(&id, decision, &by).await {
        Ok(d) => Json(delivery_json(&id, &s, &d)).into_response(),
        Err(StandInError::UnknownRequest { .. }) => {
            message(StatusCode::NOT_FOUND, format!("request {id} not found"))
        }
        Err(e) => message(StatusCode::CONFLICT, e.to_string()),
    }
}

async fn dev_approve(
    State(s): State<StandInState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    dev_resolve(s, id, Decision::Approved, &body).await
}

async fn dev_deny(State(s): State<StandInState>, Path(id): Path<String>, body: Bytes) -> Response {
    dev_resolve(s, id, Decision::Denied, &body).await
}

async fn dev_expire(State(s): State<StandInState>, Path(id): Path<String>) -> Response {
    dev_resolve(s, id, Decision::Expired, b"").await
}

async fn dev_requests(State(s): State<StandInState>) -> Response {
    Json(s.requests()).into_response()
}

async fn dev_audit_records(State(s): State<StandInState>) -> Response {
    Json(s.audit_records()).into_response()
}

#[derive(Debug, Deserialize)]
struct FaultsBody {
    fail_next: Option<u32>,
    status: Option<u16>,
    delay_ms: Option<u64>,
    retry_after_secs: Option<u64>,
}

async fn dev_get_faults(State(s): State<StandInState>) -> Response {
    let f = s.data().faults;
    Json(f).into_response()
}

async fn dev_set_faults(State(s): State<StandInState>, body: Bytes) -> Response {
    let f: FaultsBody = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => {
            return message(
                StatusCode::BAD_REQUEST,
                format!("body is not {{fail_next, status, delay_ms}}: {e}"),
            );
        }
    };
    if let Some(status) = f.status
        && StatusCode::from_u16(status).is_err()
    {
        return message(
            StatusCode::BAD_REQUEST,
            format!("`status` {status} is not an HTTP status"),
        );
    }
    let mut d = s.data();
    if let Some(n) = f.fail_next {
        d.faults.fail_next = n;
    }
    if let Some(status) = f.status {
        d.faults.status = status;
    }
    if let Some(ms) = f.delay_ms {
        d.faults.delay_ms = ms;
    }
    if f.retry_after_secs.is_some() {
        d.faults.retry_after_secs = f.retry_after_secs;
    }
    Json(d.faults).into_response()
}

/// The stand-in's HTTP API (routes at the root: the base URL is
/// `http://host:port`).
pub fn router(state: StandInState) -> Router {
    let api = Router::new()
        .route("/requests", post(create_request))
        .route("/requests/{id}", get(get_request).delete(cancel_request))
        .route("/audit-records", post(create_audit_record))
        .route_layer(middleware::from_fn_with_state(state.clone(), faults_layer));
    let dev = Router::new()
        .route("/_dev/requests", get(dev_requests))
        .route("/_dev/audit-records", get(dev_audit_records))
        .route("/_dev/requests/{id}/approve", post(dev_approve))
        .route("/_dev/requests/{id}/deny", post(dev_deny))
        .route("/_dev/requests/{id}/expire", post(dev_expire))
        .route("/_dev/faults", get(dev_get_faults).post(dev_set_faults));
    api.merge(dev).with_state(state)
}

/// Serves the stand-in on `listener` until the process stops (for
/// `launcher contro1-dev`). `cfg.bind` is ignored: the listener is already bound.
pub async fn serve(listener: TcpListener, cfg: StandInConfig) -> Result<(), StandInError> {
    let state = StandInState::new(&cfg)?;
    if let Ok(addr) = listener.local_addr() {
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "Contro1 stand-in listening on a non-loopback address: /_dev/ is unauthenticated");
        }
        tracing::info!(%addr, "Contro1 stand-in listening");
    }
    axum::serve(listener, router(state))
        .await
        .map_err(StandInError::Serve)
}

/// Entry point of the in-process stand-in.
#[derive(Debug)]
pub struct StandIn;

impl StandIn {
    /// Binds `cfg.bind`, serves in a background task, returns the handle.
    pub async fn start(cfg: StandInConfig) -> Result<StandInHandle, StandInError> {
        let state = StandInState::new(&cfg)?;
        let listener = TcpListener::bind(&cfg.bind)
            .await
            .map_err(|source| StandInError::Bind {
                addr: cfg.bind.clone(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StandInError::Bind {
            addr: cfg.bind.clone(),
            source,
        })?;
        let (tx, rx) = oneshot::channel::<()>();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
        });
        Ok(StandInHandle {
            state,
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// A running in-process stand-in. Derefs to [`StandInState`] for
/// `requests()`, `approve()`, `fail_next()`, ...
#[derive(Debug)]
pub struct StandInHandle {
    state: StandInState,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl StandInHandle {
    /// `http://127.0.0.1:<port>`: give it to `Contro1Config::base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &StandInState {
        &self.state
    }

    /// Stops accepting connections and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl std::ops::Deref for StandInHandle {
    type Target = StandInState;
    fn deref(&self) -> &StandInState {
        &self.state
    }
}

impl Drop for StandInHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
