//! The Contro1 HTTP client: create / read / cancel review requests and write
//! audit records.
//!
//! Built once per process (one `reqwest::Client`, one connection pool) and
//! shared. Every call is bounded, because a Lambda waiting on Contro1 holds a
//! caller waiting on the launcher:
//! - each attempt has `timeout` (default 3 s); a timeout is **final** — the
//!   caller fails closed rather than waiting longer;
//! - 429 and 5xx are retried up to `max_retries` times with exponential
//!   backoff and jitter (honouring `Retry-After` seconds, capped);
//! - a refused connection is retried the same way, then reported as
//!   [`Contro1Error::Unreachable`];
//! - any other 4xx is final ([`Contro1Error::Rejected`]).
//!
//! Retried writes are safe: `create_request` sends the caller's
//! `Idempotency-Key` on every attempt, and `create_audit_record` sends one
//! key generated per call, so a retry after a lost answer never creates a
//! second request or record.
//!
//! The API key is wrapped in [`ApiKey`], whose `Debug` and `Display` print
//! `***redacted***`; it is sent only as a sensitive `Authorization` header.

use std::fmt;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::Rng;
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde_json::Value;

use crate::types::{AuditRecord, CreateRequest, RequestInfo};

/// Header carrying an idempotency key on writes.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// The production base URL (`CONTRO1_BASE_URL` overrides it).
pub const DEFAULT_BASE_URL: &str = "https://api.contro1.com/api/centcom/v1";
/// Longest single wait between two attempts, whatever `Retry-After` says.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);

const REDACTED: &str = "***redacted***";
/// Path-segment encoding: everything but unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The Contro1 bearer key. Never printed: `Debug` and `Display` show
/// `***redacted***`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl From<String> for ApiKey {
    fn from(s: String) -> Self {
        ApiKey(s)
    }
}

impl From<&str> for ApiKey {
    fn from(s: &str) -> Self {
        ApiKey(s.to_owned())
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct Contro1Config {
    /// e.g. [`DEFAULT_BASE_URL`] or the stand-in's `base_url()`; a trailing `/` is ignored.
    pub base_url: String,
    pub api_key: ApiKey,
    /// Per attempt, connect to last body byte.
    pub timeout: Duration,
    /// Retries after the first attempt for 429 / 5xx / refused connection.
    pub max_retries: u32,
    /// First backoff; doubles each retry, with jitter.
    pub backoff_base: Duration,
}

impl Contro1Config {
    /// Settings with the defaults: 3 s timeout, 2 retries, 100 ms backoff base.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<ApiKey>) -> Self {
        Contro1Config {
            base_url: base_url.into(),
            api_key: api_key.into(),
            timeout: Duration::from_secs(3),
            max_retries: 2,
            backoff_base: Duration::from_millis(100),
        }
    }
}

/// Why a Contro1 call did not succeed. Every variant means "no decision":
/// callers fail closed.
#[derive(Debug, thiserror::Error)]
pub enum Contro1Error {
    /// The configuration cannot work (bad base URL, empty key).
    #[error("invalid Contro1 client configuration: {reason}")]
    InvalidConfig { reason: String },
    /// The arguments of a call are unusable (e.g. empty idempotency key, empty id).
    #[error("Contro1 {op}: invalid input: {reason}")]
    InvalidInput { op: &'static str, reason: String },
    /// An attempt exceeded the client timeout; not retried.
    #[error("Contro1 {op}: timed out (not retried: failing closed)")]
    Timeout { op: &'static str },
    /// No connection could be made (after retries), or the transport failed.
    #[error("Contro1 {op}: unreachable")]
    Unreachable {
        op: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// A final 4xx answer.
    #[error("Contro1 {op}: rejected with HTTP {status}: {message}")]
    Rejected {
        op: &'static str,
        status: u16,
        message: String,
    },
    /// 429 / 5xx on every attempt.
    #[error("Contro1 {op}: unavailable, HTTP {status} after {attempts} attempts: {message}")]
    Unavailable {
        op: &'static str,
        status: u16,
        message: String,
        attempts: u32,
    },
    /// A 2xx answer that does not say what the API promises.
    #[error("Contro1 {op}: invalid response: {reason}")]
    InvalidResponse { op: &'static str, reason: String },
}

impl Contro1Error {
    /// The operation that failed (`create_request`, `get_request`, ...).
    pub fn op(&self) -> &'static str {
        match self {
            Contro1Error::InvalidConfig { .. } => "new",
            Contro1Error::InvalidInput { op, .. }
            | Contro1Error::Timeout { op }
            | Contro1Error::Unreachable { op, .. }
            | Contro1Error::Rejected { op, .. }
            | Contro1Error::Unavailable { op, .. }
            | Contro1Error::InvalidResponse { op, .. } => op,
        }
    }
}

/// The Contro1 API client. Cheap to clone (shares the connection pool).
#[derive(Debug, Clone)]
pub struct Contro1Client {
    http: reqwest::Client,
    base: String,
    cfg: Contro1Config,
}

impl Contro1Client {
    /// Validates the configuration and builds the HTTP client.
    pub fn new(cfg: Contro1Config) -> Result<Self, Contro1Error> {
        let invalid = |reason: String| Contro1Error::InvalidConfig { reason };
        let base = cfg.base_url.trim_end_matches('/').to_owned();
        let url = Url::parse(&base).map_err(|e| invalid(format!("base_url {base:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "base_url {base:?}: scheme must be http or https"
            )));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(format!(
                "base_url {base:?}: must not have a query or fragment"
            )));
        }
        if cfg.api_key.expose().trim().is_empty() {
            return Err(invalid("api_key is empty".into()));
        }
        if cfg.timeout.is_zero() {
            return Err(invalid("timeout must be greater than zero".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            // A redirect would carry the bearer key somewhere we did not configure.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "microvm-governance-contro1/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| invalid(format!("building the HTTP client: {e}")))?;
        Ok(Contro1Client { http, base, cfg })
    }

    /// The configuration (key redacted when printed).
    pub fn config(&self) -> &Contro1Config {
        &self.cfg
    }

    /// `POST /requests` with `Idempotency-Key: idempotency_key`.
    pub async fn create_request(
        &self,
        req: &CreateRequest,
        idempotency_key: &str,
    ) -> Result<RequestInfo, Contro1Error> {
        const OP: &str = "create_request";
        if idempotency_key.trim().is_empty() {
            return Err(Contro1Error::InvalidInput {
                op: OP,
                reason: "idempotency key is empty".into(),
            });
        }
        let url = format!("{}/requests", self.base);
        let body = self
            .call(OP, Method::POST, &url, Some(req), Some(idempotency_key))
            .await?;
        request_info(OP, body)
    }

    /// `GET /requests/{id}`.
    pub async fn get_request(&self, id: &str) -> Result<RequestInfo, Contro1Error> {
        const OP: &str = "get_request";
        let url = self.request_url(OP, id)?;
        let body = self.call(OP, Method::GET, &url, None::<&()>, None).await?;
        request_info(OP, body)
    }

    /// `DELETE /requests/{id}`.
    pub async fn cancel_request(&self, id: &str) -> Result<(), Contro1Error> {
        const OP: &str = "cancel_request";
        let url = self.request_url(OP, id)?;
        self.call(OP, Method::DELETE, &url, None::<&()>, None)
            .await
            .map(drop)
    }

    /// `POST /audit-records`; returns the record id (top-level `id`, or
    /// `audit_record.id` / `data.id`).
    pub async fn create_audit_record(&self, record: &AuditRecord) -> Result<String, Contro1Error> {
        const OP: &str = "create_audit_record";
        let url = format!("{}/audit-records", self.base);
        // One key per logical call, repeated on retries.
        let key = format!("audit-{}", uuid::Uuid::new_v4());
        let body = self
            .call(OP, Method::POST, &url, Some(record), Some(&key))
            .await?;
        ["id", "audit_record", "data"]
            .iter()
            .find_map(|k| match *k {
                "id" => body.get("id"),
                wrapper => body.get(wrapper).and_then(|w| w.get("id")),
            })
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| Contro1Error::InvalidResponse {
                op: OP,
                reason: "answer has no string `id` (looked at `id`, `audit_record.id`, `data.id`)"
                    .into(),
            })
    }

    fn request_url(&self, op: &'static str, id: &str) -> Result<String, Contro1Error> {
        if id.is_empty() || id == "." || id == ".." {
            return Err(Contro1Error::InvalidInput {
                op,
                reason: format!("request id {id:?} is not a usable path segment"),
            });
        }
        Ok(format!(
            "{}/requests/{}",
            self.base,
            utf8_percent_encode(id, SEGMENT)
        ))
    }

    /// One logical call: attempts, retries, classification. Returns the JSON
    /// body of a 2xx answer (`Null` when empty).
    async fn call<B: Serialize + ?Sized>(
        &self,
        op: &'static str,
        method: Method,
        url: &str,
        body: Option<&B>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, Contro1Error> {
        let body =
            body.map(serde_json::to_vec)
                .transpose()
                .map_err(|e| Contro1Error::InvalidInput {
                    op,
                    reason: format!("body does not serialise: {e}"),
                })?;
        let max_attempts = self.cfg.max_retries.saturating_add(1);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let mut rb = self
                .http
                .request(method.clone(), url)
                .bearer_auth(self.cfg.api_key.expose())
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(key) = idempotency_key {
                rb = rb.header(IDEMPOTENCY_HEADER, key);
            }
            if let Some(bytes) = &body {
                rb = rb
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(bytes.clone());
            }
            let outcome = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = retry_after(&resp);
                    match resp.bytes().await {
                        Ok(bytes) => Ok((status, retry_after, bytes)),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            let (status, retry_after, bytes) = match outcome {
                Ok(parts) => parts,
                Err(e) if e.is_timeout() => {
                    tracing::warn!(op, attempt, "Contro1 call timed out; failing closed");
                    return Err(Contro1Error::Timeout { op });
                }
                Err(e) if e.is_connect() && attempt < max_attempts => {
                    let wait = self.backoff(attempt, None);
                    tracing::warn!(op, attempt, wait_ms = wait.as_millis() as u64, error = %e, "Contro1 unreachable; retrying");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => return Err(Contro1Error::Unreachable { op, source: e }),
            };

            if status.is_success() {
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    return Ok(Value::Null);
                }
                return serde_json::from_slice(&bytes).map_err(|e| Contro1Error::InvalidResponse {
                    op,
                    reason: format!("HTTP {status} body is not JSON: {e}"),
                });
            }
            let message = error_message(&bytes);
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                if attempt < max_attempts {
                    let wait = self.backoff(attempt, retry_after);
                    tracing::warn!(
                        op,
                        attempt,
                        status = status.as_u16(),
                        wait_ms = wait.as_millis() as u64,
                        "Contro1 unavailable; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
                return Err(Contro1Error::Unavailable {
                    op,
                    status: status.as_u16(),
                    message,
                    attempts: attempt,
                });
            }
            if status.is_client_error() {
                return Err(Contro1Error::Rejected {
                    op,
                    status: status.as_u16(),
                    message,
                });
            }
            return Err(Contro1Error::InvalidResponse {
                op,
                reason: format!("unexpected HTTP {status}: {message}"),
            });
        }
    }

    /// Wait before retry number `attempt` (1-based): `Retry-After` when the
    /// server sent one, else `backoff_base * 2^(attempt-1)` with equal
    /// jitter; never more than [`MAX_RETRY_WAIT`].
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(MAX_RETRY_WAIT);
        }
        let exp = self
            .cfg
            .backoff_base
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(MAX_RETRY_WAIT);
        let half = exp / 2;
        let jitter_ms = rand::rng().random_range(0..=half.as_millis() as u64);
        half + Duration::from_millis(jitter_ms)
    }
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The JSON `message` of an error answer, else `error.message` (the
/// `centcom` SDK's reading: `error` is an object), else `error` as text,
/// else the start of the body.
fn error_message(bytes: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        let found = v
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| v.pointer("/error/message").and_then(Value::as_str))
            .or_else(|| v.get("error").and_then(Value::as_str));
        if let Some(m) = found {
            return m.chars().take(200).collect();
        }
    }
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".to_owned()
    } else {
        text.chars().take(200).collect()
    }
}

fn request_info(op: &'static str, body: Value) -> Result<RequestInfo, Contro1Error> {
    RequestInfo::from_json(body).map_err(|reason| Contro1Error::InvalidResponse { op, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_never_prints() {
        let key = ApiKey::new("sk_live_supersecret");
        assert_eq!(format!("{key}"), REDACTED);
        assert_eq!(format!("{key:?}"), REDACTED);
        let cfg = Contro1Config::new("http://127.0.0.1:1", key);
        assert!(!format!("{cfg:?}").contains("supersecret"));
    }

    #[test]
    fn config_with_bad_base_url_or_empty_key_is_refused_with_the_reason() {
        let err = Contro1Client::new(Contro1Config::new("not a url", "k")).unwrap_err();
        assert!(err.to_string().contains("base_url"), "{err}");
        let err = Contro1Client::new(Contro1Config::new("ftp://x", "k")).unwrap_err();
        assert!(err.to_string().contains("scheme"), "{err}");
        let err = Contro1Client::new(Contro1Config::new("http://x", " ")).unwrap_err();
        assert!(err.to_string().contains("api_key"), "{err}");
    }

    #[test]
    fn error_message_prefers_json_message_then_error_then_text() {
        assert_eq!(
            error_message(br#"{"message":"bad field","error":"x"}"#),
            "bad field"
        );
        assert_eq!(error_message(br#"{"error":"nope"}"#), "nope");
        assert_eq!(error_message(b"  plain text "), "plain text");
        assert_eq!(error_message(b""), "(empty body)");
    }

    /// The centcom SDK reads `{"error": {"message": ...}}` as the message
    /// (`CentcomClient._request`); the client printed the whole body instead.
    #[test]
    fn error_message_reads_an_error_object_as_the_sdk_does() {
        assert_eq!(
            error_message(br#"{"error":{"code":"policy_denied","message":"agent blocked"}}"#),
            "agent blocked"
        );
    }

    #[test]
    fn backoff_grows_is_jittered_within_bounds_and_capped() {
        let c = Contro1Client::new(Contro1Config::new("http://127.0.0.1:1", "k")).unwrap();
        for attempt in 1..=3u32 {
            let full = Duration::from_millis(100) * (1 << (attempt - 1));
            for _ in 0..50 {
                let w = c.backoff(attempt, None);
                assert!(w >= full / 2 && w <= full, "attempt {attempt}: {w:?}");
            }
        }
        assert!(c.backoff(30, None) <= MAX_RETRY_WAIT);
        assert_eq!(
            c.backoff(1, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(c.backoff(1, Some(Duration::from_secs(600))), MAX_RETRY_WAIT);
    }

    #[test]
    fn request_ids_are_encoded_as_one_path_segment() {
        let c = Contro1Client::new(Contro1Config::new("http://h/api/", "k")).unwrap();
        assert_eq!(
            c.request_url("t", "req_1").unwrap(),
            "http://h/api/requests/req_1"
        );
        assert_eq!(
            c.request_url("t", "../audit-records?x").unwrap(),
            "http://h/api/requests/..%2Faudit-records%3Fx"
        );
        assert!(c.request_url("t", "").is_err());
        assert!(c.request_url("t", "..").is_err());
    }
}
