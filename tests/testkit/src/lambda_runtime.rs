//! A local stand-in for the AWS Lambda service around a built function binary: the
//! [Runtime API](https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html) the
//! function's `lambda_runtime` loop polls, plus a Function URL front that turns plain HTTP into
//! Function URL (payload 2.0) events and the function's answers back into HTTP.
//!
//! What it serves, as Lambda does:
//! - `GET  /2018-06-01/runtime/invocation/next` — blocks until an invocation is queued, then
//!   answers the event with `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`,
//!   `Lambda-Runtime-Invoked-Function-Arn` (with the alias as its qualifier when the
//!   invocation named one, as a Function URL on an alias does) and `Lambda-Runtime-Trace-Id`;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error`;
//! - `POST /2018-06-01/runtime/init/error` — the function could not start (recorded; every
//!   waiting and later invocation fails with it).
//!
//! [`Function::spawn`] starts the binary with a Lambda-like environment (`env_clear`, then
//! `AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME`, memory, version, log group/stream,
//! region, plus the caller's variables), captures its stderr (the function's logs), and kills
//! it when dropped. [`Function::invoke`] is one synchronous invocation (`RequestResponse`).
//! Invocations are served one at a time per process, as one Lambda execution environment does.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, oneshot};

/// How one invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum InvokeError {
    /// The function answered `/error` (the handler returned an error): Lambda would retry an
    /// asynchronous or event-source invocation.
    Function(Value),
    /// The function reported `/init/error`: it could not start.
    Init(Value),
    /// No answer within the timeout (the function may have crashed).
    Timeout { seconds: u64, logs: Vec<String> },
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvokeError::Function(v) => write!(f, "function error: {v}"),
            InvokeError::Init(v) => write!(f, "init error: {v}"),
            InvokeError::Timeout { seconds, logs } => write!(
                f,
                "no answer within {seconds} s; last log lines:\n{}",
                logs.join("\n")
            ),
        }
    }
}

impl std::error::Error for InvokeError {}

enum Outcome {
    Response(Bytes),
    Error(Value),
}

struct Invocation {
    id: String,
    event: Bytes,
    deadline_ms: u128,
    /// The alias or version invoked (`None`: the unqualified function).
    qualifier: Option<String>,
}

struct Shared {
    function_arn: String,
    tx: mpsc::UnboundedSender<Invocation>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: Mutex<Option<Value>>,
    /// Paths the function asked for that this stand-in does not serve.
    unexpected: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The Runtime API of one function, listening on loopback.
pub struct RuntimeApi {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    /// Listen on `127.0.0.1:0` for the function named `function_name`.
    pub async fn start(function_name: &str) -> RuntimeApi {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}"),
            tx,
            rx: tokio::sync::Mutex::new(rx),
            waiting: Mutex::default(),
            init_error: Mutex::default(),
            unexpected: Mutex::default(),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .fallback(unexpected)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Runtime API listener");
        let addr = listener.local_addr().expect("Runtime API address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RuntimeApi {
            addr,
            shared,
            server,
        }
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Queue one invocation of the unqualified function and wait for its answer.
    pub async fn invoke(&self, event: &Value, timeout: Duration) -> Result<Value, InvokeError> {
        self.invoke_qualified(event, None, timeout).await
    }

    /// Queue one invocation of `qualifier` (an alias or version; `None` is the unqualified
    /// function) and wait for the function's answer. The function sees the qualifier as the
    /// last field of its invoked function ARN.
    pub async fn invoke_qualified(
        &self,
        event: &Value,
        qualifier: Option<&str>,
        timeout: Duration,
    ) -> Result<Value, InvokeError> {
        if let Some(e) = lock(&self.shared.init_error).clone() {
            return Err(InvokeError::Init(e));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let (done_tx, done_rx) = oneshot::channel();
        lock(&self.shared.waiting).insert(id.clone(), done_tx);
        let deadline_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            + timeout.as_millis();
        self.shared
            .tx
            .send(Invocation {
                id: id.clone(),
                event: Bytes::from(event.to_string()),
                deadline_ms,
                qualifier: qualifier.map(str::to_string),
            })
            .expect("the Runtime API queue is open while the RuntimeApi lives");
        let answer = tokio::time::timeout(timeout, done_rx).await;
        lock(&self.shared.waiting).remove(&id);
        match answer {
            Ok(Ok(Outcome::Response(body))) => Ok(serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))),
            Ok(Ok(Outcome::Error(e))) => Err(InvokeError::Function(e)),
            Ok(Err(_)) | Err(_) => Err(InvokeError::Timeout {
                seconds: timeout.as_secs(),
                logs: Vec::new(),
            }),
        }
    }

    /// Runtime API paths the function requested that this stand-in does not serve.
    pub fn unexpected_requests(&self) -> Vec<String> {
        lock(&self.shared.unexpected).clone()
    }
}

async fn next(State(s): State<Arc<Shared>>) -> Response {
    let inv = {
        let mut rx = s.rx.lock().await;
        match rx.recv().await {
            Some(inv) => inv,
            None => return StatusCode::GONE.into_response(),
        }
    };
    let trace = format!(
        "Root=1-{:08x}-{};Sampled=0",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
        &uuid::Uuid::new_v4().simple().to_string()[..24]
    );
    let invoked_arn = match &inv.qualifier {
        Some(q) => format!("{}:{q}", s.function_arn),
        None => s.function_arn.clone(),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("lambda-runtime-aws-request-id", &inv.id)
        .header("lambda-runtime-deadline-ms", inv.deadline_ms.to_string())
        .header("lambda-runtime-invoked-function-arn", invoked_arn)
        .header("lambda-runtime-trace-id", trace)
        .body(Body::from(inv.event))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn finish(s: &Shared, id: &str, outcome: Outcome) -> Response {
    match lock(&s.waiting).remove(id) {
        Some(tx) => {
            let _ = tx.send(outcome);
            (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
        }
        None => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"errorType": "InvalidRequestID", "errorMessage": format!("unknown or finished invocation {id}")})),
        )
            .into_response(),
    }
}

async fn response(State(s): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> Response {
    finish(&s, &id, Outcome::Response(body))
}

async fn error(State(s): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> Response {
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| json!({"errorMessage": String::from_utf8_lossy(&body)}));
    finish(&s, &id, Outcome::Error(v))
}

async fn init_error(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| json!({"errorMessage": String::from_utf8_lossy(&body)}));
    *lock(&s.init_error) = Some(v.clone());
    let waiting: Vec<_> = lock(&s.waiting).drain().collect();
    for (_, tx) in waiting {
        let _ = tx.send(Outcome::Error(v.clone()));
    }
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

async fn unexpected(State(s): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    lock(&s.unexpected).push(format!("{method} {uri}"));
    StatusCode::NOT_FOUND.into_response()
}

/// A built function binary running against its own [`RuntimeApi`].
pub struct Function {
    name: String,
    api: RuntimeApi,
    child: tokio::process::Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Most log lines kept per function.
const MAX_LOG_LINES: usize = 5_000;

impl Function {
    /// Start `binary` as the Lambda function `name`. The environment is cleared first (no
    /// developer credentials or profiles leak in); `env` is added to the Lambda variables.
    ///
    /// # Panics
    /// When the binary cannot be started.
    pub async fn spawn(binary: &FsPath, name: &str, env: &[(String, String)]) -> Function {
        let api = RuntimeApi::start(name).await;
        let mut cmd = tokio::process::Command::new(binary);
        cmd.env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", api.host_port())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/23/[$LATEST]e2e")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
            .env("LAMBDA_TASK_ROOT", "/var/task")
            .env("TZ", ":UTC")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let logs: Arc<Mutex<Vec<String>>> = Arc::default();
        let echo = std::env::var_os("E2E_ECHO_LOGS").is_some();
        for (stream, tag) in [
            (
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
                "out",
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
                "err",
            ),
        ] {
            let Some(stream) = stream else { continue };
            let logs = logs.clone();
            let name = name.to_string();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if echo {
                        eprintln!("[{name} {tag}] {line}");
                    }
                    let mut l = lock(&logs);
                    if l.len() < MAX_LOG_LINES {
                        l.push(line);
                    }
                }
            });
        }
        Function {
            name: name.to_string(),
            api,
            child,
            logs,
        }
    }

    /// One synchronous invocation of the unqualified function (30 s timeout). The error
    /// carries the function's last log lines when it did not answer.
    pub async fn invoke(&mut self, event: &Value) -> Result<Value, InvokeError> {
        self.invoke_qualified(event, None).await
    }

    /// One synchronous invocation of `qualifier` (an alias or version), as a Function URL
    /// on that alias invokes it; otherwise as [`Function::invoke`].
    pub async fn invoke_qualified(
        &mut self,
        event: &Value,
        qualifier: Option<&str>,
    ) -> Result<Value, InvokeError> {
        let out = self
            .api
            .invoke_qualified(event, qualifier, Duration::from_secs(30))
            .await;
        if let Err(InvokeError::Timeout { seconds, .. }) = &out {
            let exited = self.child.try_wait().ok().flatten();
            let mut logs = self.logs();
            if let Some(status) = exited {
                logs.push(format!("(the process exited: {status})"));
            }
            let tail = logs.len().saturating_sub(40);
            return Err(InvokeError::Timeout {
                seconds: *seconds,
                logs: logs[tail..].to_vec(),
            });
        }
        out
    }

    /// Everything the function wrote to stdout and stderr so far.
    pub fn logs(&self) -> Vec<String> {
        lock(&self.logs).clone()
    }

    /// Runtime API paths the function used that Lambda does not have.
    pub fn unexpected_requests(&self) -> Vec<String> {
        self.api.unexpected_requests()
    }
}

/// The IAM caller a Function URL with `AuthType: AWS_IAM` puts in
/// `requestContext.authorizer.iam` after verifying the SigV4 signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamCaller {
    pub account_id: String,
    /// `userArn`: for a role session `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub user_arn: String,
    /// `userId` / `callerId`: `AROA...:SESSION` or `AIDA...`.
    pub user_id: String,
    pub access_key: String,
}

/// A Function URL invocation event (payload format 2.0) for `method path` with a JSON or
/// empty body; `iam` is the verified caller (`None` for `AuthType: NONE`).
pub fn function_url_event(
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: &[u8],
    iam: Option<&IamCaller>,
) -> Value {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let url_id = "e2efunctionurl0000000000000000000";
    let domain = format!("{url_id}.lambda-url.us-east-1.on.aws");
    let mut h = serde_json::Map::new();
    h.insert("host".into(), json!(domain));
    h.insert("x-forwarded-proto".into(), json!("https"));
    h.insert("x-forwarded-port".into(), json!("443"));
    h.insert("x-forwarded-for".into(), json!("127.0.0.1"));
    for (k, v) in headers {
        h.insert(k.to_ascii_lowercase(), json!(v));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let time = time::OffsetDateTime::from_unix_timestamp(now.as_secs() as i64)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
            ))
            .ok()
        })
        .unwrap_or_default();
    let (body_text, b64) = match std::str::from_utf8(body) {
        Ok(s) => (s.to_string(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    let mut ctx = json!({
        "accountId": "anonymous",
        "apiId": url_id,
        "domainName": domain,
        "domainPrefix": url_id,
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                 "sourceIp": "127.0.0.1", "userAgent": h.get("user-agent").cloned().unwrap_or(json!("e2e"))},
        "requestId": uuid::Uuid::new_v4().to_string(),
        "routeKey": "$default",
        "stage": "$default",
        "time": time,
        "timeEpoch": now.as_millis() as u64,
    });
    if let Some(c) = iam {
        ctx["accountId"] = json!(c.account_id);
        ctx["authorizer"] = json!({"iam": {
            "accessKey": c.access_key, "accountId": c.account_id, "callerId": c.user_id,
            "cognitoIdentity": null, "principalOrgId": null,
            "userArn": c.user_arn, "userId": c.user_id,
        }});
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": h,
        "requestContext": ctx,
        "isBase64Encoded": b64,
    });
    if !body.is_empty() {
        event["body"] = json!(body_text);
    }
    event
}

/// A Function URL answer (`statusCode`, `headers`, `body`, `isBase64Encoded`) as status and
/// body bytes.
///
/// # Panics
/// When the answer is not a Function URL response.
pub fn function_url_response(answer: &Value) -> (u16, Vec<u8>) {
    let status = answer["statusCode"]
        .as_u64()
        .unwrap_or_else(|| panic!("not a Function URL response (no statusCode): {answer}"));
    let body = answer["body"].as_str().unwrap_or("");
    let body = if answer["isBase64Encoded"] == true {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap_or_else(|e| panic!("Function URL body is not base64 ({e}): {answer}"))
    } else {
        body.as_bytes().to_vec()
    };
    (status as u16, body)
}

/// One JSON request through a Function URL of `function` on `qualifier` (`None`: the
/// unqualified function): `iam` is the caller an `AWS_IAM` URL verified (`None` for
/// `AuthType: NONE`). Answers the status and the JSON body.
///
/// # Panics
/// When the invocation fails or the body is not JSON (the message names the request).
pub async fn call_function_url(
    function: &tokio::sync::Mutex<Function>,
    qualifier: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
    iam: Option<&IamCaller>,
) -> (u16, Value) {
    let body = body.map(Value::to_string).unwrap_or_default();
    let event = function_url_event(
        method,
        path,
        &[("content-type".into(), "application/json".into())],
        body.as_bytes(),
        iam,
    );
    let answer = function
        .lock()
        .await
        .invoke_qualified(&event, qualifier)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let (status, bytes) = function_url_response(&answer);
    let v = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{method} {path}: body is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, v)
}

/// A public Function URL (`AuthType: NONE`) in front of a [`Function`]: plain HTTP on
/// loopback, each request turned into a Function URL event and the answer back into HTTP.
/// Invocations are serialised (one execution environment). A URL on an alias invokes the
/// function with that qualifier ([`FunctionUrl::serve_alias`]).
pub struct FunctionUrl {
    addr: std::net::SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FunctionUrl {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FunctionUrl {
    /// Serve `function` on `listener` (bind it first when the URL must be known before the
    /// function starts, e.g. to put it in the function's own environment).
    pub fn serve(
        listener: tokio::net::TcpListener,
        function: Arc<tokio::sync::Mutex<Function>>,
    ) -> FunctionUrl {
        Self::serve_qualified(listener, function, None)
    }

    /// Serve the Function URL of the alias `alias` of `function`: every request invokes
    /// `function:alias`, so the function's invoked ARN carries the alias.
    pub fn serve_alias(
        listener: tokio::net::TcpListener,
        function: Arc<tokio::sync::Mutex<Function>>,
        alias: &str,
    ) -> FunctionUrl {
        Self::serve_qualified(listener, function, Some(alias.to_string()))
    }

    /// An `AuthType: AWS_IAM` Function URL in front of `function`: every request must carry a
    /// SigV4 signature (service `lambda`, `region`, within 5 minutes) by one of `keys`
    /// ([`crate::sigv4_verify`]); the signer becomes `requestContext.authorizer.iam`. A refused
    /// request gets `403` with the message AWS gives, and the function is not invoked.
    pub fn serve_iam(
        listener: tokio::net::TcpListener,
        function: Arc<tokio::sync::Mutex<Function>>,
        keys: HashMap<String, crate::sigv4_verify::IamKey>,
        region: &str,
    ) -> FunctionUrl {
        Self::serve_with(
            listener,
            Front {
                function,
                qualifier: None,
                iam: Some((keys, region.to_string())),
            },
        )
    }

    fn serve_qualified(
        listener: tokio::net::TcpListener,
        function: Arc<tokio::sync::Mutex<Function>>,
        qualifier: Option<String>,
    ) -> FunctionUrl {
        Self::serve_with(
            listener,
            Front {
                function,
                qualifier,
                iam: None,
            },
        )
    }

    fn serve_with(listener: tokio::net::TcpListener, front_state: Front) -> FunctionUrl {
        let addr = listener.local_addr().expect("Function URL address");
        let app = Router::new()
            .fallback(front)
            .with_state(Arc::new(front_state));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FunctionUrl { addr, server }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// What a Function URL front invokes.
struct Front {
    function: Arc<tokio::sync::Mutex<Function>>,
    qualifier: Option<String>,
    /// `AWS_IAM`: the keys it accepts and the URL's region; `None`: `AuthType: NONE`.
    iam: Option<(HashMap<String, crate::sigv4_verify::IamKey>, String)>,
}

async fn front(
    State(front): State<Arc<Front>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let hs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let caller = match &front.iam {
        None => None,
        Some((keys, region)) => {
            match crate::sigv4_verify::verify(
                method.as_str(),
                path,
                &hs,
                &body,
                keys,
                region,
                "lambda",
                SystemTime::now(),
            ) {
                Ok(c) => Some(c),
                Err(r) => {
                    return (
                        StatusCode::FORBIDDEN,
                        axum::Json(json!({"Message": r.message()})),
                    )
                        .into_response();
                }
            }
        }
    };
    let event = function_url_event(method.as_str(), path, &hs, &body, caller.as_ref());
    let answer = front
        .function
        .lock()
        .await
        .invoke_qualified(&event, front.qualifier.as_deref())
        .await;
    match answer {
        Ok(v) => {
            let (status, body) = function_url_response(&v);
            let mut resp = Response::builder()
                .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY));
            if let Some(h) = v["headers"].as_object() {
                for (k, v) in h {
                    if let Some(v) = v.as_str() {
                        resp = resp.header(k.as_str(), v);
                    }
                }
            }
            resp.body(Body::from(body))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        // What a Function URL answers when the function fails.
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            axum::Json(json!({"Message": format!("{e}")})),
        )
            .into_response(),
    }
}

/// A binary of this workspace, built by cargo next to the test executable
/// (`target/<profile>/NAME`).
///
/// # Panics
/// When it is missing, or older than a source file in `src_dirs` (paths relative to the
/// workspace root), with the command that builds it. `cargo test --workspace` (which
/// `scripts/test.sh` runs) builds it; `cargo test -p e2e` alone does not.
pub fn workspace_binary(name: &str, src_dirs: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(FsPath::parent)
        .expect("the test executable lives in target/<profile>/deps");
    let bin = dir.join(name);
    let build = "cargo build -p launcher -p detector --bins";
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}: build it first with `{build}`", bin.display()));
    let root = crate::workspace_dir();
    for d in src_dirs {
        if let Some((path, t)) = newest_file(&root.join(d)) {
            assert!(
                t <= built,
                "{} is older than {}: rebuild it with `{build}`",
                bin.display(),
                path.display()
            );
        }
    }
    bin
}

fn newest_file(dir: &FsPath) -> Option<(PathBuf, SystemTime)> {
    let mut best: Option<(PathBuf, SystemTime)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(p);
            } else if let Ok(t) = m.modified()
                && best.as_ref().is_none_or(|(_, b)| t > *b)
            {
                best = Some((p, t));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_url_events_decode_with_lambda_http_shapes() {
        let caller = IamCaller {
            account_id: "123456789012".into(),
            user_arn: "arn:aws:sts::123456789012:assumed-role/agent/s1".into(),
            user_id: "AROAEXAMPLE:s1".into(),
            access_key: "ASIAEXAMPLE".into(),
        };
        let e = function_url_event(
            "POST",
            "/microvms/run-request?x=1",
            &[("Content-Type".into(), "application/json".into())],
            br#"{"a":1}"#,
            Some(&caller),
        );
        assert_eq!(e["rawPath"], "/microvms/run-request");
        assert_eq!(e["rawQueryString"], "x=1");
        assert_eq!(e["headers"]["content-type"], "application/json");
        assert_eq!(
            e["requestContext"]["authorizer"]["iam"]["userArn"],
            caller.user_arn
        );
        assert_eq!(e["body"], r#"{"a":1}"#);
        let anon = function_url_event("POST", "/x", &[], &[0xff, 0x00], None);
        assert!(anon["requestContext"].get("authorizer").is_none());
        assert_eq!(anon["isBase64Encoded"], true);
        assert_eq!(anon["body"], "/wA=");
    }

    #[test]
    fn function_url_responses_decode_plain_and_base64_bodies() {
        let (s, b) = function_url_response(&json!({"statusCode": 202, "body": "{}"}));
        assert_eq!((s, b), (202, b"{}".to_vec()));
        let (s, b) = function_url_response(
            &json!({"statusCode": 200, "body": "/wA=", "isBase64Encoded": true}),
        );
        assert_eq!((s, b), (200, vec![0xff, 0x00]));
    }

    #[tokio::test]
    async fn invocations_round_trip_through_the_runtime_api_as_lambda_runtime_drives_it() {
        // Drive the API the way lambda_runtime does, over real HTTP.
        let api = RuntimeApi::start("f").await;
        let base = format!("http://{}/2018-06-01/runtime", api.host_port());
        let http = reqwest::Client::new();
        let worker = {
            let (http, base) = (http.clone(), base.clone());
            tokio::spawn(async move {
                for _ in 0..3 {
                    let r = http
                        .get(format!("{base}/invocation/next"))
                        .send()
                        .await
                        .unwrap();
                    let id = r.headers()["lambda-runtime-aws-request-id"]
                        .to_str()
                        .unwrap()
                        .to_string();
                    assert!(r.headers().contains_key("lambda-runtime-deadline-ms"));
                    let arn = r.headers()["lambda-runtime-invoked-function-arn"]
                        .to_str()
                        .unwrap()
                        .to_string();
                    let ev: Value = r.json().await.unwrap();
                    let path = if ev["fail"] == true {
                        "error"
                    } else {
                        "response"
                    };
                    let s = http
                        .post(format!("{base}/invocation/{id}/{path}"))
                        .json(&json!({"echo": ev, "arn": arn, "errorType": "Boom"}))
                        .send()
                        .await
                        .unwrap()
                        .status();
                    assert_eq!(s, 202);
                }
            })
        };
        let ok = api
            .invoke(&json!({"n": 1}), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(ok["echo"]["n"], 1);
        assert_eq!(
            ok["arn"],
            "arn:aws:lambda:us-east-1:123456789012:function:f"
        );
        let alias = api
            .invoke_qualified(
                &json!({"n": 2}),
                Some("contro1-webhook"),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(
            alias["arn"], "arn:aws:lambda:us-east-1:123456789012:function:f:contro1-webhook",
            "a Function URL on an alias invokes the function with the alias as qualifier"
        );
        let err = api
            .invoke(&json!({"fail": true}), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, InvokeError::Function(ref v) if v["errorType"] == "Boom"));
        worker.await.unwrap();
        // Nobody polls now: the invocation times out instead of hanging.
        let t = api
            .invoke(&json!({}), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(t, InvokeError::Timeout { .. }));
    }
}
