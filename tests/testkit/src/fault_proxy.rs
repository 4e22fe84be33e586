//! A fault-injecting reverse proxy in front of moto.
//!
//! moto answers every call it can; it cannot be told "throttle the next two
//! `PutItem`s on this table". The product's promises under failure (fail
//! closed, retry, DLQ, no lost finding, no duplicate AWS call) are about
//! exactly such calls, so the tests put this proxy between the **real** SDK
//! clients and moto:
//!
//! ```text
//!   product code ── real SDK client ──▶ FaultProxy (127.0.0.1:0) ──▶ moto
//!                                        │ next N matching requests:
//!                                        └─▶ an AWS-shaped error instead
//! ```
//!
//! Every request is forwarded unchanged (method, path, query, headers, body)
//! except those a programmed rule catches: "the next N requests matching
//! this [`Matcher`] get this [`Fault`]". The preset faults are shaped like
//! the service's own errors (status, content type, body, request-id header),
//! so the SDK's error parsing and **retry classifier** treat them as the real
//! thing: a DynamoDB `ProvisionedThroughputExceededException` is an HTTP 400
//! with `__type` in the JSON body and is retried as a throttle; an SNS
//! `Throttling` is the query-protocol `<ErrorResponse>` XML.
//!
//! Requests are classified by the service in the SigV4 credential scope
//! (`dynamodb`, `sns`, `s3`, ...) and the operation: `X-Amz-Target` (JSON
//! protocols), `Action=` of the form body (query protocols: SNS), or
//! `x-id=` / the method (S3). Every request is recorded ([`FaultProxy::requests`])
//! with whether it was faulted, so tests assert exact attempt counts.
//!
//! With [`FaultProxy::serialise_items`] the proxy also gives moto the one
//! DynamoDB guarantee it lacks: DynamoDB applies each conditional write to
//! an item atomically, but moto (threaded werkzeug, no lock between
//! evaluating a `ConditionExpression` and applying the write) lets two
//! concurrent `UpdateItem`s with the same condition both pass. The proxy
//! then forwards one request per item at a time (requests on other items
//! go on concurrently), which makes tests that count executions under
//! concurrency deterministic.
//!
//! [`FaultProxy::sdk_config`] is [`crate::moto::sdk_config`] pointed at the
//! proxy, with the SDK's default standard retry mode ([`SDK_MAX_ATTEMPTS`]
//! attempts) and a short initial backoff so tests stay fast.

use crate::moto;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Attempts per SDK call in [`FaultProxy::sdk_config`]: the SDK's default
/// (standard retry mode), so a test sees what production would.
pub const SDK_MAX_ATTEMPTS: u32 = 3;
/// Initial retry backoff in [`FaultProxy::sdk_config`] (the SDK's default is
/// 1 s; only the waiting is shortened, not the number of attempts).
pub const SDK_INITIAL_BACKOFF: Duration = Duration::from_millis(10);

/// Which requests a rule applies to, or a count is taken over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// Every request.
    Any,
    /// A DynamoDB operation (`X-Amz-Target: DynamoDB_20120810.<operation>`),
    /// optionally only on one table ([`ProxiedRequest::table`]).
    DynamoDb {
        operation: String,
        table: Option<String>,
    },
    /// An SNS action (`Action=<action>` in the query-protocol form body).
    Sns { action: String },
    /// S3 requests with this HTTP method on this bucket (path-style), and
    /// this key when given (compared percent-decoded).
    S3 {
        method: String,
        bucket: String,
        key: Option<String>,
    },
}

impl Matcher {
    /// `DynamoDB_20120810.<operation>` on any table.
    pub fn dynamodb(operation: &str) -> Matcher {
        Matcher::DynamoDb {
            operation: operation.to_string(),
            table: None,
        }
    }

    /// `DynamoDB_20120810.<operation>` on `table` only.
    pub fn dynamodb_on(operation: &str, table: &str) -> Matcher {
        Matcher::DynamoDb {
            operation: operation.to_string(),
            table: Some(table.to_string()),
        }
    }

    /// SNS `Action=<action>` (e.g. `Publish`).
    pub fn sns(action: &str) -> Matcher {
        Matcher::Sns {
            action: action.to_string(),
        }
    }

    /// S3 `method` on `bucket` (any key).
    pub fn s3_bucket(method: &str, bucket: &str) -> Matcher {
        Matcher::S3 {
            method: method.to_ascii_uppercase(),
            bucket: bucket.to_string(),
            key: None,
        }
    }

    /// S3 `method` on `bucket`/`key` (the key as stored, not URL-encoded).
    pub fn s3_object(method: &str, bucket: &str, key: &str) -> Matcher {
        Matcher::S3 {
            method: method.to_ascii_uppercase(),
            bucket: bucket.to_string(),
            key: Some(key.to_string()),
        }
    }

    /// Does this request match?
    pub fn matches(&self, r: &ProxiedRequest) -> bool {
        match self {
            Matcher::Any => true,
            Matcher::DynamoDb { operation, table } => {
                r.service == "dynamodb"
                    && r.operation == *operation
                    && table.as_ref().is_none_or(|t| r.table.as_ref() == Some(t))
            }
            Matcher::Sns { action } => r.service == "sns" && r.operation == *action,
            Matcher::S3 {
                method,
                bucket,
                key,
            } => {
                r.service == "s3"
                    && r.method == *method
                    && r.bucket.as_ref() == Some(bucket)
                    && key.as_ref().is_none_or(|k| r.key.as_ref() == Some(k))
            }
        }
    }
}

/// An answer given instead of forwarding. Build one with a preset
/// ([`Fault::dynamodb_throughput_exceeded`], [`Fault::sns_throttling`], ...)
/// or with [`Fault::new`]. A fresh request id is added to every answer
/// (`x-amzn-RequestId`, and `x-amz-request-id` for S3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

const DYNAMODB_JSON: &str = "application/x-amz-json-1.0";

impl Fault {
    /// Any status with a content type and a body.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Fault {
        Fault {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// Adds a header to the answer.
    pub fn header(mut self, name: &str, value: &str) -> Fault {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn dynamodb(status: u16, type_: &str, message: &str) -> Fault {
        let body = serde_json::json!({"__type": type_, "message": message}).to_string();
        Fault::new(status, DYNAMODB_JSON, body)
    }

    /// DynamoDB's throttle, exactly as AWS sends it: HTTP 400,
    /// `__type = com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException`.
    /// The SDK classifies it as a throttling error and retries it.
    pub fn dynamodb_throughput_exceeded() -> Fault {
        Fault::dynamodb(
            400,
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded. \
             Consider increasing your provisioning level with the UpdateTable API.",
        )
    }

    /// DynamoDB's control-plane / account-level throttle: HTTP 400,
    /// `__type = com.amazon.coral.availability#ThrottlingException`.
    pub fn dynamodb_throttling() -> Fault {
        Fault::dynamodb(
            400,
            "com.amazon.coral.availability#ThrottlingException",
            "Rate of requests exceeds the allowed throughput.",
        )
    }

    /// DynamoDB `InternalServerError` (HTTP 500; retried as transient).
    pub fn dynamodb_internal_error() -> Fault {
        Fault::dynamodb(
            500,
            "com.amazonaws.dynamodb.v20120810#InternalServerError",
            "Internal server error",
        )
    }

    fn query_error(status: u16, namespace: &str, type_: &str, code: &str, message: &str) -> Fault {
        let body = format!(
            "<ErrorResponse xmlns=\"{namespace}\">\n  <Error>\n    <Type>{type_}</Type>\n    \
             <Code>{code}</Code>\n    <Message>{}</Message>\n  </Error>\n  \
             <RequestId>{}</RequestId>\n</ErrorResponse>\n",
            xml_escape(message),
            uuid::Uuid::new_v4()
        );
        Fault::new(status, "text/xml", body)
    }

    /// SNS `Throttling` in the query-protocol shape (HTTP 400, `Sender`).
    pub fn sns_throttling() -> Fault {
        Fault::query_error(
            400,
            "http://sns.amazonaws.com/doc/2010-03-31/",
            "Sender",
            "Throttling",
            "Rate exceeded",
        )
    }

    /// SNS `InternalError` in the query-protocol shape (HTTP 500, `Receiver`).
    pub fn sns_internal_error() -> Fault {
        Fault::query_error(
            500,
            "http://sns.amazonaws.com/doc/2010-03-31/",
            "Receiver",
            "InternalError",
            "The request processing has failed because of an unknown error, exception or failure.",
        )
    }

    /// S3 `NoSuchKey` (HTTP 404, REST-XML `<Error>`), as S3 answers GetObject
    /// for a key that is not (or no longer, or not yet) there.
    pub fn s3_no_such_key(key: &str) -> Fault {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>\
             <Message>The specified key does not exist.</Message><Key>{}</Key>\
             <RequestId>{}</RequestId><HostId>fault-proxy</HostId></Error>",
            xml_escape(key),
            uuid::Uuid::new_v4().simple()
        );
        Fault::new(404, "application/xml", body)
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// One request the proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedRequest {
    /// Service of the SigV4 credential scope (`dynamodb`, `sns`, `s3`,
    /// `sqs`, `cloudtrail`, ...), empty when unsigned.
    pub service: String,
    /// `X-Amz-Target` operation, query `Action`, S3 `x-id` (or the method).
    pub operation: String,
    /// The DynamoDB table: `TableName`, or the only table a batch or
    /// transaction names.
    pub table: Option<String>,
    /// HTTP method, upper case.
    pub method: String,
    /// Path-style S3 bucket, for S3 requests.
    pub bucket: Option<String>,
    /// Percent-decoded S3 key, for S3 object requests.
    pub key: Option<String>,
    /// Status answered to the client.
    pub status: u16,
    /// True when a rule answered instead of moto.
    pub faulted: bool,
}

struct Rule {
    matcher: Matcher,
    /// `None`: every matching request, until [`FaultProxy::clear`].
    remaining: Option<u32>,
    fault: Fault,
}

#[derive(Default)]
struct ProxyState {
    rules: Vec<Rule>,
    log: Vec<ProxiedRequest>,
}

struct Shared {
    state: Mutex<ProxyState>,
    upstream: String,
    http: reqwest::Client,
    /// With [`FaultProxy::serialise_items`]: one lock per DynamoDB item.
    item_locks: Mutex<Option<ItemLocks>>,
}

/// The per-item locks of [`FaultProxy::serialise_items`], and each table's
/// key attribute names (from `DescribeTable`, to find the key of a put).
#[derive(Default)]
struct ItemLocks {
    locks: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    key_names: HashMap<String, Vec<String>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ProxyState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct ServerGuard(tokio::task::JoinHandle<()>);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A running proxy. Cheap to clone; it stops when the last clone is dropped.
#[derive(Clone)]
pub struct FaultProxy {
    shared: Arc<Shared>,
    base_url: String,
    _server: Arc<ServerGuard>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("base_url", &self.base_url)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Starts a proxy in front of moto ([`moto::ensure_running`]).
    ///
    /// # Panics
    /// When moto is not configured or not answering, or no port can be bound.
    pub async fn start() -> FaultProxy {
        let upstream = moto::ensure_running().await;
        FaultProxy::start_in_front_of(&upstream).await
    }

    /// Starts a proxy forwarding to `upstream` (`http://host:port`).
    ///
    /// # Panics
    /// When no local port can be bound.
    pub async fn start_in_front_of(upstream: &str) -> FaultProxy {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("build the fault proxy's HTTP client");
        let shared = Arc::new(Shared {
            state: Mutex::new(ProxyState::default()),
            upstream: upstream.trim_end_matches('/').to_string(),
            http,
            item_locks: Mutex::new(None),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for the fault proxy");
        let addr = listener.local_addr().expect("fault proxy local address");
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::disable())
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultProxy {
            shared,
            base_url: format!("http://{addr}"),
            _server: Arc::new(ServerGuard(server)),
        }
    }

    /// `http://127.0.0.1:PORT`: the `endpoint_url` for clients.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The next `n` requests matching `matcher` get `fault` (rules are tried
    /// in the order they were added; the first one with requests left wins).
    pub fn fail_next(&self, n: u32, matcher: Matcher, fault: Fault) {
        if n > 0 {
            self.shared.lock().rules.push(Rule {
                matcher,
                remaining: Some(n),
                fault,
            });
        }
    }

    /// Every request matching `matcher` gets `fault`, until [`FaultProxy::clear`].
    pub fn fail_always(&self, matcher: Matcher, fault: Fault) {
        self.shared.lock().rules.push(Rule {
            matcher,
            remaining: None,
            fault,
        });
    }

    /// From now on, forward DynamoDB requests on one item one at a time
    /// (every item a request names: `Key`, the key of a put's `Item`, the
    /// items of a transaction or a batch), so moto applies each conditional
    /// write atomically, as DynamoDB does (see the module documentation).
    /// Queries and scans are not held back.
    pub fn serialise_items(&self) {
        let mut locks = self
            .shared
            .item_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        locks.get_or_insert_with(ItemLocks::default);
    }

    /// Removes every rule: from now on everything is forwarded.
    pub fn clear(&self) {
        self.shared.lock().rules.clear();
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.shared.lock().log.clone()
    }

    /// How many requests matching `matcher` were received (faulted or not).
    pub fn count(&self, matcher: &Matcher) -> usize {
        self.shared
            .lock()
            .log
            .iter()
            .filter(|r| matcher.matches(r))
            .count()
    }

    /// How many requests matching `matcher` were answered with a fault.
    pub fn faulted(&self, matcher: &Matcher) -> usize {
        self.shared
            .lock()
            .log
            .iter()
            .filter(|r| r.faulted && matcher.matches(r))
            .count()
    }

    /// SDK configuration for moto through this proxy: region us-east-1,
    /// static test credentials, standard retries ([`SDK_MAX_ATTEMPTS`]
    /// attempts, [`SDK_INITIAL_BACKOFF`] initial backoff). Build service
    /// clients from it (S3 needs path-style addressing: [`FaultProxy::s3_client`]).
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(moto::REGION))
            .credentials_provider(moto::test_credentials())
            .endpoint_url(&self.base_url)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(SDK_MAX_ATTEMPTS)
                    .with_initial_backoff(SDK_INITIAL_BACKOFF),
            )
            .load()
            .await
    }

    /// S3 client through this proxy, path-style.
    pub async fn s3_client(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.sdk_config().await)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }
}

/// The service of `Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, ...`.
fn signed_service(headers: &HeaderMap) -> String {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split([',', ' ']).next())
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or_default()
        .to_string()
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Service, operation, table, bucket and key of one request.
fn classify(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> ProxiedRequest {
    let service = signed_service(headers);
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit_once('.'))
        .map(|(_, op)| op.to_string());
    let mut r = ProxiedRequest {
        service,
        operation: String::new(),
        table: None,
        method: method.as_str().to_string(),
        bucket: None,
        key: None,
        status: 0,
        faulted: false,
    };
    if let Some(op) = target {
        r.operation = op;
        if r.service == "dynamodb" {
            // `TableName`, or the one table of a batch or transaction.
            let tables = dynamodb_tables(body);
            if tables.len() == 1 {
                r.table = tables.into_iter().next();
            }
        }
    } else if r.service == "s3" {
        let x_id = uri.query().unwrap_or_default().split('&').find_map(|p| {
            p.strip_prefix("x-id=")
                .map(decode)
                .filter(|s| !s.is_empty())
        });
        r.operation = x_id.unwrap_or_else(|| r.method.clone());
        let path = uri.path().trim_start_matches('/');
        let (bucket, key) = match path.split_once('/') {
            Some((b, k)) => (b, Some(k)),
            None => (path, None),
        };
        r.bucket = Some(decode(bucket)).filter(|b| !b.is_empty());
        r.key = key.filter(|k| !k.is_empty()).map(decode);
    } else {
        // Query protocols (SNS, ...): Action= in the form body (or the query).
        let form = std::str::from_utf8(body).unwrap_or_default();
        let query = uri.query().unwrap_or_default();
        r.operation = form
            .split('&')
            .chain(query.split('&'))
            .find_map(|p| p.strip_prefix("Action=").map(decode))
            .unwrap_or_default();
    }
    r
}

/// Request headers not forwarded: the proxy's own connection and host.
const HOP_BY_HOP: [&str; 5] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
];

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut record = classify(&method, &uri, &headers, &body);
    let fault = {
        let mut st = shared.lock();
        let hit = st
            .rules
            .iter_mut()
            .find(|rule| rule.remaining != Some(0) && rule.matcher.matches(&record));
        hit.map(|rule| {
            if let Some(n) = rule.remaining.as_mut() {
                *n -= 1;
            }
            rule.fault.clone()
        })
    };
    let response = match fault {
        Some(f) => {
            record.faulted = true;
            fault_response(&f, &record.service)
        }
        None => {
            let locks = if record.service == "dynamodb" {
                item_locks(&shared, &body).await
            } else {
                Vec::new()
            };
            // In key order, so two multi-item requests never deadlock.
            let mut held = Vec::with_capacity(locks.len());
            for l in &locks {
                held.push(l.lock().await);
            }
            let r = forward(&shared, method, &uri, &headers, body).await;
            drop(held);
            r
        }
    };
    record.status = response.status().as_u16();
    shared.lock().log.push(record);
    response
}

/// Every table a DynamoDB request body names: `TableName`, the
/// `TableName`s inside `TransactItems`, the keys of `RequestItems`.
fn dynamodb_tables(body: &[u8]) -> BTreeSet<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return BTreeSet::new();
    };
    let mut out = BTreeSet::new();
    if let Some(t) = v.get("TableName").and_then(|t| t.as_str()) {
        out.insert(t.to_string());
    }
    for item in v
        .get("TransactItems")
        .and_then(|t| t.as_array())
        .into_iter()
        .flatten()
    {
        for op in item.as_object().into_iter().flat_map(|o| o.values()) {
            if let Some(t) = op.get("TableName").and_then(|t| t.as_str()) {
                out.insert(t.to_string());
            }
        }
    }
    if let Some(o) = v.get("RequestItems").and_then(|r| r.as_object()) {
        out.extend(o.keys().cloned());
    }
    out
}

/// One item a DynamoDB request touches: its table and either its `Key` or
/// the whole `Item` of a put.
enum ItemRef<'a> {
    Key(&'a str, &'a serde_json::Value),
    Item(&'a str, &'a serde_json::Value),
}

/// The item one operation names (`Key`, or a put's `Item`), in `table` or
/// its own `TableName`.
fn item_of<'a>(table: Option<&'a str>, op: &'a serde_json::Value) -> Option<ItemRef<'a>> {
    let table = table.or_else(|| op.get("TableName")?.as_str())?;
    op.get("Key")
        .map(|k| ItemRef::Key(table, k))
        .or_else(|| op.get("Item").map(|i| ItemRef::Item(table, i)))
}

/// Every item a single-item, transaction or batch-write request names.
fn dynamodb_items(v: &serde_json::Value) -> Vec<ItemRef<'_>> {
    let mut out = Vec::new();
    out.extend(item_of(None, v));
    for t in v
        .get("TransactItems")
        .and_then(|t| t.as_array())
        .into_iter()
        .flatten()
    {
        out.extend(
            t.as_object()
                .into_iter()
                .flat_map(|o| o.values())
                .filter_map(|op| item_of(None, op)),
        );
    }
    if let Some(o) = v.get("RequestItems").and_then(|r| r.as_object()) {
        for (table, writes) in o {
            for w in writes.as_array().into_iter().flatten() {
                let op = w.get("PutRequest").or_else(|| w.get("DeleteRequest"));
                out.extend(op.and_then(|op| item_of(Some(table), op)));
            }
        }
    }
    out
}

/// `table` + the key attributes, in name order: one lock name per item.
fn lock_name(table: &str, key: &serde_json::Value, names: Option<&[String]>) -> String {
    let mut parts: Vec<(String, String)> = key
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| names.is_none_or(|n| n.iter().any(|x| x == *k)))
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    parts.sort();
    format!("{table}\u{0}{parts:?}")
}

/// The locks of the items `body` names, in lock-name order; none unless
/// [`FaultProxy::serialise_items`] was called.
async fn item_locks(shared: &Shared, body: &[u8]) -> Vec<Arc<tokio::sync::Mutex<()>>> {
    let known = |t: &str| {
        let guard = shared.item_locks.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().map(|l| l.key_names.contains_key(t))
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let items = dynamodb_items(&v);
    // The key attributes of the tables a put names, asked of moto once.
    for item in &items {
        if let ItemRef::Item(table, _) = item {
            match known(table) {
                None => return Vec::new(),
                Some(true) => {}
                Some(false) => {
                    let names = key_names(shared, table).await;
                    let mut guard = shared.item_locks.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(l) = guard.as_mut() {
                        l.key_names.insert(table.to_string(), names);
                    }
                }
            }
        }
    }
    let mut guard = shared.item_locks.lock().unwrap_or_else(|p| p.into_inner());
    let Some(l) = guard.as_mut() else {
        return Vec::new();
    };
    let names: BTreeSet<String> = items
        .iter()
        .map(|i| match i {
            ItemRef::Key(t, k) => lock_name(t, k, None),
            ItemRef::Item(t, item) => lock_name(t, item, l.key_names.get(*t).map(Vec::as_slice)),
        })
        .collect();
    names
        .into_iter()
        .map(|n| l.locks.entry(n).or_default().clone())
        .collect()
}

/// The key attribute names of `table`, from moto's `DescribeTable` (none
/// when it cannot say: the whole item then names the lock, which still
/// serialises identical puts).
async fn key_names(shared: &Shared, table: &str) -> Vec<String> {
    let conf = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(moto::REGION))
        .credentials_provider(moto::test_credentials())
        .endpoint_url(&shared.upstream)
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&conf)
        .describe_table()
        .table_name(table)
        .send()
        .await
        .ok()
        .and_then(|d| d.table)
        .map(|t| {
            t.key_schema()
                .iter()
                .map(|k| k.attribute_name().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn fault_response(f: &Fault, service: &str) -> Response {
    let mut resp = (
        StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        f.body.clone(),
    )
        .into_response();
    let h = resp.headers_mut();
    let request_id = uuid::Uuid::new_v4().to_string();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-amzn-requestid", v.clone());
        if service == "s3" {
            h.insert("x-amz-request-id", v);
        }
    }
    for (k, v) in &f.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(k, v);
        }
    }
    resp
}

async fn forward(
    shared: &Shared,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path_and_query}", shared.upstream);
    let mut out = HeaderMap::new();
    for (k, v) in headers {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            out.append(k.clone(), v.clone());
        }
    }
    let is_head = method == Method::HEAD;
    let sent = shared
        .http
        .request(method, &url)
        .headers(out)
        .body(body)
        .send()
        .await;
    let upstream = match sent {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("fault proxy: upstream {url} failed: {e}"),
            )
                .into_response();
        }
    };
    let status = upstream.status();
    let upstream_headers = upstream.headers().clone();
    let bytes = match upstream.bytes().await {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("fault proxy: reading the answer of {url} failed: {e}"),
            )
                .into_response();
        }
    };
    let mut resp = (status, bytes).into_response();
    let h = resp.headers_mut();
    // Only moto's headers (axum added its own content type).
    h.clear();
    for (k, v) in &upstream_headers {
        let name = k.as_str();
        // The body is re-framed here; HEAD keeps the object's length.
        if name == "transfer-encoding" || name == "connection" {
            continue;
        }
        if name == "content-length" && !is_head {
            continue;
        }
        h.append(k.clone(), v.clone());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    use aws_sdk_dynamodb::types::AttributeValue;

    fn signed(service: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!(
                "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/{service}/aws4_request, \
                 SignedHeaders=host, Signature=abc"
            ))
            .unwrap(),
        );
        h
    }

    #[test]
    fn serialised_requests_lock_every_item_they_name_by_its_key() {
        let names = |b: &str, keys: &[&str]| {
            let v: serde_json::Value = serde_json::from_str(b).unwrap();
            let key_names: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            dynamodb_items(&v)
                .iter()
                .map(|i| match i {
                    ItemRef::Key(t, k) => lock_name(t, k, None),
                    ItemRef::Item(t, item) => lock_name(t, item, Some(&key_names)),
                })
                .collect::<Vec<_>>()
        };
        let update = names(r#"{"TableName":"p","Key":{"pk":{"S":"req#1"}}}"#, &[]);
        let put = names(
            r#"{"TableName":"p","Item":{"state":{"S":"x"},"pk":{"S":"req#1"}}}"#,
            &["pk"],
        );
        assert_eq!(update.len(), 1);
        assert_eq!(update, put, "a put and an update of one item share a lock");
        let transaction = names(
            r#"{"TransactItems":[{"Put":{"TableName":"p","Item":{"pk":{"S":"key#1"},"n":{"N":"1"}}}},{"Update":{"TableName":"p","Key":{"pk":{"S":"req#1"}}}}]}"#,
            &["pk"],
        );
        assert_eq!(transaction.len(), 2);
        assert!(transaction.contains(&update[0]));
        let batch = names(
            r#"{"RequestItems":{"l":[{"PutRequest":{"Item":{"pk":{"S":"a"}}}},{"DeleteRequest":{"Key":{"pk":{"S":"b"}}}}]}}"#,
            &["pk"],
        );
        assert_eq!(batch.len(), 2);
        assert!(names(r#"{"TableName":"p","KeyConditionExpression":"x"}"#, &[]).is_empty());
        assert!(names(r#"{"RequestItems":{"l":{"Keys":[]}}}"#, &[]).is_empty());
    }

    #[test]
    fn requests_are_classified_by_signed_service_and_operation() {
        let mut h = signed("dynamodb");
        h.insert(
            "x-amz-target",
            HeaderValue::from_static("DynamoDB_20120810.PutItem"),
        );
        let uri: Uri = "/".parse().unwrap();
        let r = classify(&Method::POST, &uri, &h, br#"{"TableName":"t1","Item":{}}"#);
        assert_eq!(
            (r.service.as_str(), r.operation.as_str(), r.table.as_deref()),
            ("dynamodb", "PutItem", Some("t1"))
        );
        assert!(Matcher::dynamodb("PutItem").matches(&r));
        assert!(Matcher::dynamodb_on("PutItem", "t1").matches(&r));
        assert!(!Matcher::dynamodb_on("PutItem", "t2").matches(&r));
        assert!(!Matcher::dynamodb("GetItem").matches(&r));
        h.insert(
            "x-amz-target",
            HeaderValue::from_static("DynamoDB_20120810.BatchWriteItem"),
        );
        let r = classify(&Method::POST, &uri, &h, br#"{"RequestItems":{"led":[]}}"#);
        assert!(Matcher::dynamodb_on("BatchWriteItem", "led").matches(&r));

        let r = classify(
            &Method::POST,
            &uri,
            &signed("sns"),
            b"Action=Publish&Version=2010-03-31&TopicArn=arn%3Aaws%3Asns",
        );
        assert_eq!(
            (r.service.as_str(), r.operation.as_str()),
            ("sns", "Publish")
        );
        assert!(Matcher::sns("Publish").matches(&r));
        assert!(!Matcher::dynamodb("Publish").matches(&r));

        let uri: Uri = "/bkt/AWSLogs/a%20b.json.gz?x-id=GetObject".parse().unwrap();
        let r = classify(&Method::GET, &uri, &signed("s3"), b"");
        assert_eq!(r.operation, "GetObject");
        assert_eq!(r.bucket.as_deref(), Some("bkt"));
        assert_eq!(r.key.as_deref(), Some("AWSLogs/a b.json.gz"));
        assert!(Matcher::s3_object("get", "bkt", "AWSLogs/a b.json.gz").matches(&r));
        assert!(Matcher::s3_bucket("GET", "bkt").matches(&r));
        assert!(!Matcher::s3_bucket("PUT", "bkt").matches(&r));
        assert!(!Matcher::s3_object("GET", "bkt", "other").matches(&r));
    }

    /// 20 concurrent `UpdateItem`s conditioned on `state = pending`, each
    /// setting its own claim, 10 rounds: through a serialising proxy exactly
    /// one passes each time, as on DynamoDB (moto alone lets several pass
    /// now and then).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn serialised_items_let_exactly_one_concurrent_conditional_write_pass() {
        let proxy = FaultProxy::start().await;
        proxy.serialise_items();
        let ddb = aws_sdk_dynamodb::Client::new(&proxy.sdk_config().await);
        let table = crate::unique_name("serial");
        moto::create_pk_table(&ddb, &table).await;
        for round in 0..10 {
            let pk = AttributeValue::S(format!("req#{round}"));
            ddb.put_item()
                .table_name(&table)
                .item("pk", pk.clone())
                .item("state", AttributeValue::S("pending".into()))
                .send()
                .await
                .unwrap();
            let writers = (0..20).map(|i| {
                let (ddb, table, pk) = (ddb.clone(), table.clone(), pk.clone());
                tokio::spawn(async move {
                    ddb.update_item()
                        .table_name(&table)
                        .key("pk", pk)
                        .update_expression("SET #s = :to, claim = :c")
                        .condition_expression("#s = :from")
                        .expression_attribute_names("#s", "state")
                        .expression_attribute_values(":to", AttributeValue::S("executing".into()))
                        .expression_attribute_values(":from", AttributeValue::S("pending".into()))
                        .expression_attribute_values(":c", AttributeValue::N(i.to_string()))
                        .send()
                        .await
                        .is_ok()
                })
            });
            let passed = futures_count(writers).await;
            assert_eq!(
                passed, 1,
                "round {round}: {passed} conditional writes passed"
            );
        }
    }

    async fn futures_count(tasks: impl Iterator<Item = tokio::task::JoinHandle<bool>>) -> usize {
        let mut n = 0;
        for t in tasks.collect::<Vec<_>>() {
            n += usize::from(t.await.unwrap());
        }
        n
    }

    /// The preset faults, through the real SDK clients and moto: each is
    /// parsed as the service's own error, throttles and 5xx are retried up
    /// to the SDK's attempt limit, and everything else is forwarded.
    #[tokio::test]
    async fn preset_faults_are_parsed_and_retried_by_the_real_sdk() {
        let proxy = FaultProxy::start().await;
        let sdk = proxy.sdk_config().await;
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        let table = crate::unique_name("proxy");
        moto::create_pk_table(&ddb, &table).await;
        let put = || {
            ddb.put_item()
                .table_name(&table)
                .item("pk", AttributeValue::S("k".into()))
                .send()
        };
        let puts = Matcher::dynamodb_on("PutItem", &table);
        // Two throttles: the third attempt reaches moto.
        proxy.fail_next(2, puts.clone(), Fault::dynamodb_throughput_exceeded());
        put().await.expect("retried past two throttles");
        assert_eq!((proxy.count(&puts), proxy.faulted(&puts)), (3, 2));
        // Throttled every time: the SDK gives up after its attempts with the
        // modeled error.
        proxy.fail_always(puts.clone(), Fault::dynamodb_throttling());
        let err = put().await.unwrap_err();
        assert_eq!(err.code(), Some("ThrottlingException"), "{err:?}");
        assert_eq!(proxy.count(&puts), 3 + SDK_MAX_ATTEMPTS as usize);
        proxy.clear();
        proxy.fail_next(1, puts.clone(), Fault::dynamodb_throughput_exceeded());
        proxy.fail_next(
            5,
            Matcher::dynamodb("GetItem"),
            Fault::dynamodb_throughput_exceeded(),
        );
        let err = ddb
            .get_item()
            .table_name(&table)
            .key("pk", AttributeValue::S("k".into()))
            .send()
            .await
            .unwrap_err();
        let service_err = err.into_service_error();
        assert!(
            service_err.is_provisioned_throughput_exceeded_exception(),
            "{service_err:?}"
        );
        put().await.expect("one throttle, then moto");
        assert_eq!(
            proxy.faulted(&Matcher::dynamodb("GetItem")),
            SDK_MAX_ATTEMPTS as usize
        );

        let sns = aws_sdk_sns::Client::new(&sdk);
        let topic = sns
            .create_topic()
            .name(crate::unique_name("proxy"))
            .send()
            .await
            .unwrap()
            .topic_arn
            .unwrap();
        let publish = Matcher::sns("Publish");
        proxy.fail_next(1, publish.clone(), Fault::sns_throttling());
        proxy.fail_next(1, publish.clone(), Fault::sns_internal_error());
        sns.publish()
            .topic_arn(&topic)
            .message("m")
            .send()
            .await
            .expect("retried past a throttle and a 500");
        assert_eq!((proxy.count(&publish), proxy.faulted(&publish)), (3, 2));
        proxy.fail_always(publish.clone(), Fault::sns_throttling());
        let err = sns
            .publish()
            .topic_arn(&topic)
            .message("m")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("Throttling"), "{err:?}");
        assert_eq!(proxy.count(&publish), 3 + SDK_MAX_ATTEMPTS as usize);
        proxy.clear();

        let s3 = proxy.s3_client().await;
        let bucket = crate::unique_name("proxy");
        moto::create_bucket(&s3, &bucket).await;
        s3.put_object()
            .bucket(&bucket)
            .key("a b&c")
            .body(b"hello".to_vec().into())
            .send()
            .await
            .unwrap();
        let get = Matcher::s3_object("GET", &bucket, "a b&c");
        proxy.fail_next(1, get.clone(), Fault::s3_no_such_key("a b&c"));
        let err = s3
            .get_object()
            .bucket(&bucket)
            .key("a b&c")
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(err.is_no_such_key(), "{err:?}");
        // Not retried (a 404 is final), and the next read is forwarded.
        assert_eq!((proxy.count(&get), proxy.faulted(&get)), (1, 1));
        let body = s3
            .get_object()
            .bucket(&bucket)
            .key("a b&c")
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        assert_eq!(&body[..], b"hello");
        assert!(
            proxy
                .requests()
                .iter()
                .all(|r| r.faulted || (200..300).contains(&r.status)),
            "{:?}",
            proxy.requests()
        );
    }
}
