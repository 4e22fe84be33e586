//! A small emulator of the Lambda MicroVMs REST API (API version 2025-09-09).
//!
//! It exists so that the launcher and the detector are tested through the **real**
//! `aws-sdk-lambdamicrovms` client (request serialisation, SigV4 signing, error and request-id
//! parsing included) against a server that behaves like the service where it matters to us:
//! the routes and wire shapes the SDK sends and expects (taken from the SDK's
//! `protocol_serde`), the documented limits, `clientToken` idempotency, state transitions,
//! `ListMicrovms` pagination, a unique `x-amzn-RequestId` per response, and error answers as
//! `x-amzn-errortype` + `{"message"}`.
//!
//! Everything it serves is recorded ([`Emulator::calls`]) with the caller's access key id
//! (parsed from the SigV4 `Authorization` header). With the callers' identities registered
//! ([`Emulator::register_identity`]), the calls become the CloudTrail records AWS would write
//! ([`Emulator::cloudtrail_records`], [`Emulator::cloudtrail_log_gz`]), so an end-to-end test
//! can feed the detector exactly what the launcher did.
//!
//! Simplifications (documented, deliberate): state changes are immediate (RunMicrovm answers
//! `RUNNING`, SuspendMicrovm leaves `SUSPENDED`), signatures are parsed but not verified, a
//! `clientToken` is global to the emulator, and an image name (not an ARN) is resolved in
//! account [`ACCOUNT_ID`].

mod cloudtrail;

pub use aws_sdk_lambdamicrovms::types::MicrovmState;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Account that owns every emulated MicroVM (and `recipientAccountId` in CloudTrail records).
pub const ACCOUNT_ID: &str = "123456789012";
/// Region of the emulator and of the clients it builds.
pub const REGION: &str = "us-east-1";
/// The API version prefix of every route.
pub const API_VERSION: &str = "2025-09-09";

/// Limits the emulator enforces (from the service model and observed behaviour).
pub mod limits {
    /// `clientToken` length, characters.
    pub const CLIENT_TOKEN_MAX: usize = 128;
    /// `maximumDurationInSeconds` range.
    pub const MAX_DURATION_SECONDS: i64 = 28_800;
    /// `runHookPayload` size enforced in practice, bytes (the docs say 16 KiB).
    pub const RUN_HOOK_PAYLOAD_MAX_BYTES: usize = 4096;
    /// `idlePolicy.maxIdleDurationSeconds` minimum.
    pub const MIN_IDLE_SECONDS: i64 = 60;
    /// `expirationInMinutes` of auth tokens.
    pub const TOKEN_EXPIRATION_MAX_MINUTES: i64 = 60;
    /// `ListMicrovms` `maxResults` range; also the default page size.
    pub const LIST_MAX_RESULTS: i64 = 50;
    /// `maximumDurationInSeconds` when RunMicrovm does not set it.
    pub const DEFAULT_DURATION_SECONDS: i32 = 28_800;
}

/// One request the emulator answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedCall {
    /// Operation name as in CloudTrail `eventName` (`RunMicrovm`, `GetMicrovm`, ...;
    /// `UnknownOperation` for a route the API does not have).
    pub operation: String,
    /// The MicroVM the call was about: the path id, or the id RunMicrovm created/returned.
    pub microvm_id: Option<String>,
    /// The `x-amzn-RequestId` the emulator answered with (CloudTrail `requestID`).
    pub request_id: String,
    /// Access key id from the SigV4 `Authorization` header (`Credential=AKID/...`).
    pub access_key_id: Option<String>,
    /// Region from the SigV4 credential scope (defaults to [`REGION`]).
    pub region: String,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
    /// Caller IP address.
    pub source_ip: String,
    /// The JSON body as sent (RunMicrovm, token operations), or the query parameters as a JSON
    /// object of strings (ListMicrovms), or `{}`.
    pub request: Value,
    /// HTTP status answered.
    pub status: u16,
    /// `x-amzn-errortype` when the call failed.
    pub error_type: Option<String>,
    /// `message` of the error body when the call failed.
    pub error_message: Option<String>,
    /// The JSON body answered (tokens included: this is test data).
    pub response: Value,
    /// The image ARN of the MicroVM concerned, when known.
    pub image_arn: Option<String>,
    /// When the call was served.
    pub time: SystemTime,
}

impl ServedCall {
    /// True for a 2xx answer.
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Kind of token issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// CreateMicrovmAuthToken.
    Auth,
    /// CreateMicrovmShellAuthToken.
    Shell,
}

/// A token the emulator issued.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedToken {
    /// Which operation issued it.
    pub kind: TokenKind,
    /// The token value returned under `authToken["X-aws-proxy-auth"]`.
    pub value: String,
    /// `expirationInMinutes` as requested.
    pub expiration_in_minutes: Option<i64>,
    /// `allowedPorts` as requested (auth tokens only).
    pub allowed_ports: Option<Value>,
    /// Request id of the issuing call.
    pub request_id: String,
    /// Access key id of the caller.
    pub access_key_id: Option<String>,
}

/// Everything the emulator knows about one MicroVM.
#[derive(Debug, Clone, PartialEq)]
pub struct MicrovmView {
    /// `microvmId` (`microvm-<32 hex>`).
    pub microvm_id: String,
    /// Current state.
    pub state: MicrovmState,
    /// Image ARN (resolved from `imageIdentifier`).
    pub image_arn: String,
    /// Image version (`"1"` when not requested).
    pub image_version: String,
    /// `executionRoleArn` as requested.
    pub execution_role_arn: Option<String>,
    /// `clientToken` of the RunMicrovm call (the SDK fills a UUID when the caller did not).
    pub client_token: Option<String>,
    /// `runHookPayload` as requested.
    pub run_hook_payload: Option<String>,
    /// `maximumDurationInSeconds`.
    pub maximum_duration_in_seconds: i32,
    /// `ingressNetworkConnectors`.
    pub ingress_network_connectors: Vec<String>,
    /// `egressNetworkConnectors`.
    pub egress_network_connectors: Vec<String>,
    /// `idlePolicy` as requested.
    pub idle_policy: Option<Value>,
    /// `logging` as requested.
    pub logging: Option<Value>,
    /// Epoch seconds.
    pub started_at: i64,
    /// Epoch seconds, once terminated.
    pub terminated_at: Option<i64>,
    /// Access key id of the RunMicrovm caller (`None` for seeded MicroVMs).
    pub created_by: Option<String>,
    /// Tokens issued for this MicroVM, in order.
    pub tokens_issued: Vec<IssuedToken>,
}

impl MicrovmView {
    fn endpoint(&self) -> String {
        format!("https://{}.microvm.lambda.{REGION}.on.aws", self.microvm_id)
    }

    /// The GetMicrovm / RunMicrovm response body.
    fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("microvmId".into(), json!(self.microvm_id));
        o.insert("state".into(), json!(self.state.as_str()));
        o.insert("endpoint".into(), json!(self.endpoint()));
        o.insert("imageArn".into(), json!(self.image_arn));
        o.insert("imageVersion".into(), json!(self.image_version));
        o.insert(
            "maximumDurationInSeconds".into(),
            json!(self.maximum_duration_in_seconds),
        );
        if let Some(r) = &self.execution_role_arn {
            o.insert("executionRoleArn".into(), json!(r));
        }
        if let Some(p) = &self.idle_policy {
            o.insert("idlePolicy".into(), p.clone());
        }
        o.insert(
            "ingressNetworkConnectors".into(),
            json!(self.ingress_network_connectors),
        );
        o.insert(
            "egressNetworkConnectors".into(),
            json!(self.egress_network_connectors),
        );
        o.insert("startedAt".into(), json!(self.started_at));
        if let Some(t) = self.terminated_at {
            o.insert("terminatedAt".into(), json!(t));
            o.insert(
                "stateReason".into(),
                json!("Terminated by TerminateMicrovm"),
            );
        }
        Value::Object(o)
    }

    fn to_item_json(&self) -> Value {
        json!({
            "microvmId": self.microvm_id,
            "state": self.state.as_str(),
            "imageArn": self.image_arn,
            "imageVersion": self.image_version,
            "startedAt": self.started_at,
        })
    }
}

/// Who a caller is, for the `userIdentity` of CloudTrail records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// `userIdentity.type`: `AssumedRole`, `IAMUser`, `Root`, `FederatedUser`, ...
    pub type_: String,
    /// `userIdentity.arn` (for `AssumedRole`: `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`).
    pub arn: String,
    /// `userIdentity.accountId`.
    pub account_id: String,
    /// `sessionContext.sessionIssuer.arn` (the IAM role ARN, path kept) for assumed roles.
    pub session_issuer_arn: Option<String>,
    /// `userIdentity.principalId` (for `AssumedRole`: `AROA...:SESSION`).
    pub principal_id: String,
}

impl CallerIdentity {
    /// An assumed-role session, as a Lambda function's own calls appear: `role_arn` is the IAM
    /// role ARN (`arn:aws:iam::ACCOUNT:role/PATH/NAME`, path kept in the session issuer and
    /// dropped from the assumed-role ARN, as AWS does).
    ///
    /// # Panics
    /// When `role_arn` is not an IAM role ARN.
    pub fn assumed_role(role_arn: &str, session_name: &str) -> CallerIdentity {
        let (account_id, role_name) =
            parse_role_arn(role_arn).unwrap_or_else(|| panic!("not an IAM role ARN: {role_arn}"));
        let role_id = pseudo_id("AROA", role_arn);
        CallerIdentity {
            type_: "AssumedRole".into(),
            arn: format!("arn:aws:sts::{account_id}:assumed-role/{role_name}/{session_name}"),
            account_id,
            session_issuer_arn: Some(role_arn.to_string()),
            principal_id: format!("{role_id}:{session_name}"),
        }
    }

    /// An IAM user with long-term keys.
    pub fn iam_user(account_id: &str, user_name: &str) -> CallerIdentity {
        let arn = format!("arn:aws:iam::{account_id}:user/{user_name}");
        CallerIdentity {
            type_: "IAMUser".into(),
            principal_id: pseudo_id("AIDA", &arn),
            arn,
            account_id: account_id.to_string(),
            session_issuer_arn: None,
        }
    }
}

/// `(account, role name)` from `arn:aws:iam::ACCOUNT:role/PATH/NAME`.
fn parse_role_arn(arn: &str) -> Option<(String, String)> {
    let mut parts = arn.splitn(6, ':');
    let (_arn, _partition, service, _region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if service != "iam" || !resource.starts_with("role/") {
        return None;
    }
    let name = resource.rsplit('/').next()?;
    Some((account.to_string(), name.to_string()))
}

/// A stable IAM-style unique id (`AROA` + 17 upper-case alphanumerics) derived from `seed`.
fn pseudo_id(prefix: &str, seed: &str) -> String {
    let u = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, seed.as_bytes());
    let hex = u.simple().to_string().to_ascii_uppercase();
    format!("{prefix}{}", &hex[..17])
}

#[derive(Default)]
struct EmulatorState {
    vms: Vec<MicrovmView>,
    index: HashMap<String, usize>,
    /// clientToken → (request fingerprint, microvm id).
    client_tokens: HashMap<String, (Value, String)>,
    calls: Vec<ServedCall>,
    identities: HashMap<String, CallerIdentity>,
    latency: Duration,
    /// (remaining, status, error type)
    failures: Option<(u32, u16, String)>,
}

struct Shared {
    state: Mutex<EmulatorState>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, EmulatorState> {
        // A panicking test thread must not hide the emulator's state from the others.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct ServerGuard(tokio::task::JoinHandle<()>);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A running emulator. Cheap to clone; the server stops when the last clone is dropped (or
/// when the test's runtime ends).
#[derive(Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
    base_url: String,
    _server: Arc<ServerGuard>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Starts the emulator on `127.0.0.1:<free port>` inside the current tokio runtime.
    ///
    /// # Panics
    /// When no local port can be bound.
    pub async fn start() -> Emulator {
        let shared = Arc::new(Shared {
            state: Mutex::new(EmulatorState::default()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for the MicroVMs emulator");
        let addr = listener.local_addr().expect("emulator local address");
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        Emulator {
            shared,
            base_url: format!("http://{addr}"),
            _server: Arc::new(ServerGuard(server)),
        }
    }

    /// `http://127.0.0.1:PORT`: the `endpoint_url` (or `MICROVMS_ENDPOINT_URL`) for clients.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A real SDK client for this emulator signing with `access_key_id` (secret
    /// `"emulator-secret"`), region us-east-1, **retries disabled** so each SDK call is
    /// exactly one served call. Use [`Emulator::client_with_retries`] to test retry handling.
    pub fn client(&self, access_key_id: &str) -> aws_sdk_lambdamicrovms::Client {
        self.build_client(
            access_key_id,
            aws_sdk_lambdamicrovms::config::retry::RetryConfig::disabled(),
        )
    }

    /// Like [`Emulator::client`] with the SDK's standard retry strategy, up to `max_attempts`
    /// attempts and a 1 ms initial backoff.
    pub fn client_with_retries(
        &self,
        access_key_id: &str,
        max_attempts: u32,
    ) -> aws_sdk_lambdamicrovms::Client {
        self.build_client(
            access_key_id,
            aws_sdk_lambdamicrovms::config::retry::RetryConfig::standard()
                .with_max_attempts(max_attempts)
                .with_initial_backoff(Duration::from_millis(1)),
        )
    }

    fn build_client(
        &self,
        access_key_id: &str,
        retry: aws_sdk_lambdamicrovms::config::retry::RetryConfig,
    ) -> aws_sdk_lambdamicrovms::Client {
        use aws_sdk_lambdamicrovms::config::{BehaviorVersion, Credentials, Region};
        let conf = aws_sdk_lambdamicrovms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(
                access_key_id,
                "emulator-secret",
                None,
                None,
                "testkit-emulator",
            ))
            .endpoint_url(&self.base_url)
            .retry_config(retry)
            .build();
        aws_sdk_lambdamicrovms::Client::from_conf(conf)
    }

    /// Every call served so far, in order.
    pub fn calls(&self) -> Vec<ServedCall> {
        self.shared.lock().calls.clone()
    }

    /// Delay added before answering every call (the sweep benchmark uses 20 ms).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// The next `n` calls (any operation) fail with HTTP `status`,
    /// `x-amzn-errortype: error_type` and `{"message": ...}`; they are recorded like any
    /// other call. Replaces any earlier `fail_next` still pending.
    pub fn fail_next(&self, n: u32, status: u16, error_type: &str) {
        self.shared.lock().failures = (n > 0).then(|| (n, status, error_type.to_string()));
    }

    /// Inserts `n` MicroVMs directly (no served calls, no CloudTrail records), as if started
    /// outside the launcher; returns their ids in insertion (= listing) order.
    pub fn seed_microvms(&self, n: usize, image_arn: &str, state: MicrovmState) -> Vec<String> {
        let now = epoch_seconds(SystemTime::now());
        let mut st = self.shared.lock();
        st.vms.reserve(n);
        let mut ids = Vec::with_capacity(n);
        for state in std::iter::repeat_n(state, n) {
            let id = new_microvm_id();
            let terminated = state == MicrovmState::Terminated;
            let view = MicrovmView {
                microvm_id: id.clone(),
                state,
                image_arn: image_arn.to_string(),
                image_version: "1".into(),
                execution_role_arn: None,
                client_token: None,
                run_hook_payload: None,
                maximum_duration_in_seconds: limits::DEFAULT_DURATION_SECONDS,
                ingress_network_connectors: Vec::new(),
                egress_network_connectors: Vec::new(),
                idle_policy: None,
                logging: None,
                started_at: now,
                terminated_at: terminated.then_some(now),
                created_by: None,
                tokens_issued: Vec::new(),
            };
            let idx = st.vms.len();
            st.index.insert(id.clone(), idx);
            st.vms.push(view);
            ids.push(id);
        }
        ids
    }

    /// Moves every MicroVM's start time `seconds` into the past, as if that
    /// much time had gone by (the detector reports only MicroVMs older than
    /// its minimum age).
    pub fn age_microvms(&self, seconds: i64) {
        let mut st = self.shared.lock();
        for vm in &mut st.vms {
            vm.started_at -= seconds;
            if let Some(t) = vm.terminated_at.as_mut() {
                *t -= seconds;
            }
        }
    }

    /// One MicroVM's current view.
    pub fn microvm(&self, id: &str) -> Option<MicrovmView> {
        let st = self.shared.lock();
        st.index.get(id).map(|&i| st.vms[i].clone())
    }

    /// Every MicroVM, in creation order.
    pub fn microvms(&self) -> Vec<MicrovmView> {
        self.shared.lock().vms.clone()
    }

    /// Declares who signs with `access_key_id`, for the `userIdentity` of CloudTrail records.
    /// Callers not registered appear as an `IAMUser` named after their access key.
    pub fn register_identity(&self, access_key_id: &str, identity: CallerIdentity) {
        self.shared
            .lock()
            .identities
            .insert(access_key_id.to_string(), identity);
    }

    /// The CloudTrail record of every served call, in the real format (see
    /// `cloudtrail.rs`): the six governed operations as data events with the image ARN in
    /// `resources`, GetMicrovm and ListMicrovms as read-only management events.
    pub fn cloudtrail_records(&self) -> Vec<Value> {
        let st = self.shared.lock();
        st.calls
            .iter()
            .filter_map(|c| cloudtrail::record(c, st.identities.get(c.access_key_id.as_deref()?)))
            .collect()
    }

    /// [`Emulator::cloudtrail_records`] as a CloudTrail log file: gzip of `{"Records":[...]}`.
    pub fn cloudtrail_log_gz(&self) -> Vec<u8> {
        cloudtrail::log_file_gz(&self.cloudtrail_records())
    }

    /// Any `records` as a CloudTrail log file (gzip of `{"Records":[...]}`): for
    /// management events of services the emulator does not serve.
    pub fn log_file_gz(records: &[Value]) -> Vec<u8> {
        cloudtrail::log_file_gz(records)
    }

    /// The S3 key CloudTrail would deliver a log file under, for `time`:
    /// `AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/ACCOUNT_CloudTrail_REGION_YYYYMMDDTHHMMZ_<16 chars>.json.gz`.
    pub fn cloudtrail_object_key(time: SystemTime) -> String {
        cloudtrail::object_key(ACCOUNT_ID, REGION, time)
    }
}

/// The emulator's `ApiError`: what goes into `x-amzn-errortype` and the body.
struct ApiError {
    status: u16,
    kind: String,
    message: String,
    extra: Map<String, Value>,
}

impl ApiError {
    fn new(status: u16, kind: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind: kind.to_string(),
            message: message.into(),
            extra: Map::new(),
        }
    }
    fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "ValidationException", message)
    }
    fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(409, "ConflictException", message)
    }
    fn not_found(id: &str) -> ApiError {
        let mut e = ApiError::new(
            404,
            "ResourceNotFoundException",
            format!("MicroVM {id} not found"),
        );
        e.extra.insert("resourceId".into(), json!(id));
        e.extra.insert("resourceType".into(), json!("Microvm"));
        e
    }
    fn body(&self) -> Value {
        let mut o = self.extra.clone();
        o.insert("message".into(), json!(self.message));
        Value::Object(o)
    }
}

/// A successful operation's answer.
struct Answer {
    body: Value,
    microvm_id: Option<String>,
    image_arn: Option<String>,
}

/// Which operation a method + path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Run,
    Get,
    List,
    AuthToken,
    ShellToken,
    Suspend,
    Resume,
    Terminate,
    Unknown,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Run => "RunMicrovm",
            Op::Get => "GetMicrovm",
            Op::List => "ListMicrovms",
            Op::AuthToken => "CreateMicrovmAuthToken",
            Op::ShellToken => "CreateMicrovmShellAuthToken",
            Op::Suspend => "SuspendMicrovm",
            Op::Resume => "ResumeMicrovm",
            Op::Terminate => "TerminateMicrovm",
            Op::Unknown => "UnknownOperation",
        }
    }
}

fn route(method: &Method, path: &str) -> (Op, Option<String>) {
    let prefix = format!("/{API_VERSION}/microvms");
    let Some(rest) = path.strip_prefix(&prefix) else {
        return (Op::Unknown, None);
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return match *method {
            Method::POST => (Op::Run, None),
            Method::GET => (Op::List, None),
            _ => (Op::Unknown, None),
        };
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return (Op::Unknown, None);
    };
    let (raw_id, action) = match rest.split_once('/') {
        Some((id, action)) => (id, Some(action)),
        None => (rest, None),
    };
    let id = percent_encoding::percent_decode_str(raw_id)
        .decode_utf8_lossy()
        .into_owned();
    let op = match (method.clone(), action) {
        (Method::GET, None) => Op::Get,
        (Method::DELETE, None) => Op::Terminate,
        (Method::POST, Some("auth-token")) => Op::AuthToken,
        (Method::POST, Some("shell-auth-token")) => Op::ShellToken,
        (Method::POST, Some("suspend")) => Op::Suspend,
        (Method::POST, Some("resume")) => Op::Resume,
        _ => Op::Unknown,
    };
    (op, Some(id))
}

/// `AKID` and region from `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, ...`.
fn parse_authorization(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let Some(auth) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return (None, None);
    };
    let Some(cred) = auth.split("Credential=").nth(1) else {
        return (None, None);
    };
    let cred = cred.split([',', ' ']).next().unwrap_or_default();
    let mut parts = cred.split('/');
    let akid = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
    let region = parts.nth(1).filter(|s| !s.is_empty()).map(str::to_string);
    (akid, region)
}

fn query_params(uri: &Uri) -> Map<String, Value> {
    let mut out = Map::new();
    for pair in uri.query().unwrap_or_default().split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        out.insert(dec(k), Value::String(dec(v)));
    }
    out
}

fn epoch_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn new_microvm_id() -> String {
    format!("microvm-{}", uuid::Uuid::new_v4().simple())
}

fn new_token() -> String {
    format!(
        "emu-{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let time = SystemTime::now();
    let (op, path_id) = route(&method, uri.path());
    let (access_key_id, region) = parse_authorization(&headers);
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .or_else(|| headers.get("x-amz-user-agent"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);

    let parsed_body: Result<Value, ApiError> = if body.is_empty() {
        Ok(Value::Object(Map::new()))
    } else {
        serde_json::from_slice::<Value>(&body)
            .map_err(|e| ApiError::validation(format!("request body is not valid JSON: {e}")))
            .and_then(|v| {
                if v.is_object() {
                    Ok(v)
                } else {
                    Err(ApiError::validation("request body must be a JSON object"))
                }
            })
    };
    let request = match (&parsed_body, op) {
        (_, Op::List) => Value::Object(query_params(&uri)),
        (Ok(v), _) => v.clone(),
        (Err(_), _) => Value::String(String::from_utf8_lossy(&body).into_owned()),
    };

    let latency = shared.lock().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let mut st = shared.lock();
    let injected = match st.failures.as_mut() {
        Some((remaining, status, kind)) => {
            let e = ApiError::new(
                *status,
                kind,
                format!("injected failure ({kind}) from the testkit emulator"),
            );
            *remaining -= 1;
            if *remaining == 0 {
                st.failures = None;
            }
            Some(e)
        }
        None => None,
    };
    let outcome: Result<Answer, ApiError> = if let Some(e) = injected {
        Err(e)
    } else if access_key_id.is_none() {
        Err(ApiError::new(
            403,
            "AccessDeniedException",
            "missing or malformed SigV4 Authorization header",
        ))
    } else {
        parsed_body.and_then(|body| {
            let ctx = CallCtx {
                request_id: &request_id,
                access_key_id: access_key_id.as_deref(),
                now: time,
            };
            dispatch(&mut st, op, path_id.as_deref(), &body, &uri, &ctx)
        })
    };

    let (status, body_json, microvm_id, image_arn, error) = match outcome {
        Ok(a) => (200u16, a.body, a.microvm_id.or(path_id), a.image_arn, None),
        Err(e) => {
            let image = match (op, &path_id) {
                (Op::Run, _) => request
                    .get("imageIdentifier")
                    .and_then(Value::as_str)
                    .map(resolve_image_arn),
                (_, Some(id)) => st.index.get(id).map(|&i| st.vms[i].image_arn.clone()),
                _ => None,
            };
            (e.status, e.body(), path_id, image, Some(e))
        }
    };
    st.calls.push(ServedCall {
        operation: op.name().to_string(),
        microvm_id,
        request_id: request_id.clone(),
        access_key_id,
        region: region.unwrap_or_else(|| REGION.to_string()),
        user_agent,
        source_ip: peer.ip().to_string(),
        request,
        status,
        error_type: error.as_ref().map(|e| e.kind.clone()),
        error_message: error.as_ref().map(|e| e.message.clone()),
        response: body_json.clone(),
        image_arn,
        time,
    });
    drop(st);

    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body_json.to_string(),
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-amzn-RequestId", v);
    }
    if let Some(e) = error
        && let Ok(v) = HeaderValue::from_str(&e.kind)
    {
        h.insert("x-amzn-errortype", v);
    }
    resp
}

struct CallCtx<'a> {
    request_id: &'a str,
    access_key_id: Option<&'a str>,
    now: SystemTime,
}

fn dispatch(
    st: &mut EmulatorState,
    op: Op,
    id: Option<&str>,
    body: &Value,
    uri: &Uri,
    ctx: &CallCtx<'_>,
) -> Result<Answer, ApiError> {
    match (op, id) {
        (Op::Run, _) => run(st, body, ctx),
        (Op::List, _) => list(st, &query_params(uri)),
        (Op::Unknown, _) | (_, None) => Err(ApiError::new(
            404,
            "UnknownOperationException",
            format!("no such route in the MicroVMs API {API_VERSION}"),
        )),
        (op, Some(id)) => {
            let idx = *st.index.get(id).ok_or_else(|| ApiError::not_found(id))?;
            let vm = &mut st.vms[idx];
            let image_arn = Some(vm.image_arn.clone());
            let body = match op {
                Op::Get => vm.to_json(),
                Op::AuthToken | Op::ShellToken => issue_token(vm, op, body, ctx)?,
                Op::Suspend => {
                    if vm.state != MicrovmState::Running {
                        return Err(ApiError::conflict(format!(
                            "MicroVM {id} is {}; only a RUNNING MicroVM can be suspended",
                            vm.state.as_str()
                        )));
                    }
                    vm.state = MicrovmState::Suspended;
                    json!({})
                }
                Op::Resume => {
                    if vm.state != MicrovmState::Suspended {
                        return Err(ApiError::conflict(format!(
                            "MicroVM {id} is {}; only a SUSPENDED MicroVM can be resumed",
                            vm.state.as_str()
                        )));
                    }
                    vm.state = MicrovmState::Running;
                    json!({})
                }
                Op::Terminate => {
                    if vm.state != MicrovmState::Terminated {
                        vm.state = MicrovmState::Terminated;
                        vm.terminated_at = Some(epoch_seconds(ctx.now));
                    }
                    json!({})
                }
                Op::Run | Op::List | Op::Unknown => unreachable!("handled above"),
            };
            Ok(Answer {
                body,
                microvm_id: Some(id.to_string()),
                image_arn,
            })
        }
    }
}

fn opt_str<'a>(body: &'a Value, key: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::validation(format!("{key} must be a string"))),
    }
}

fn opt_int(body: &Value, key: &str) -> Result<Option<i64>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| ApiError::validation(format!("{key} must be an integer"))),
    }
}

fn opt_str_list(body: &Value, key: &str) -> Result<Vec<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::validation(format!("{key} must be a list of strings")))
            })
            .collect(),
        Some(_) => Err(ApiError::validation(format!("{key} must be a list"))),
    }
}

/// An image identifier (ARN or name) as an ARN.
fn resolve_image_arn(identifier: &str) -> String {
    if identifier.starts_with("arn:") {
        identifier.to_string()
    } else {
        format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:microvm-image:{identifier}")
    }
}

fn image_matches(vm: &MicrovmView, identifier: &str) -> bool {
    vm.image_arn == identifier || vm.image_arn == resolve_image_arn(identifier)
}

fn run(st: &mut EmulatorState, body: &Value, ctx: &CallCtx<'_>) -> Result<Answer, ApiError> {
    let client_token = opt_str(body, "clientToken")?;
    if let Some(t) = client_token
        && (t.is_empty() || t.chars().count() > limits::CLIENT_TOKEN_MAX)
    {
        return Err(ApiError::validation(format!(
            "clientToken must be 1-{} characters, got {}",
            limits::CLIENT_TOKEN_MAX,
            t.chars().count()
        )));
    }
    let image = opt_str(body, "imageIdentifier")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::validation("imageIdentifier is required"))?;
    let image_version = opt_str(body, "imageVersion")?.unwrap_or("1");
    let role = opt_str(body, "executionRoleArn")?;
    if let Some(r) = role
        && parse_role_arn(r).is_none()
    {
        return Err(ApiError::validation(format!(
            "executionRoleArn is not an IAM role ARN: {r}"
        )));
    }
    let duration = opt_int(body, "maximumDurationInSeconds")?;
    if let Some(d) = duration
        && !(1..=limits::MAX_DURATION_SECONDS).contains(&d)
    {
        return Err(ApiError::validation(format!(
            "maximumDurationInSeconds must be 1-{}, got {d}",
            limits::MAX_DURATION_SECONDS
        )));
    }
    let payload = opt_str(body, "runHookPayload")?;
    if let Some(p) = payload
        && p.len() > limits::RUN_HOOK_PAYLOAD_MAX_BYTES
    {
        return Err(ApiError::validation(format!(
            "runHookPayload must be at most {} bytes, got {}",
            limits::RUN_HOOK_PAYLOAD_MAX_BYTES,
            p.len()
        )));
    }
    let idle_policy = body.get("idlePolicy").filter(|v| !v.is_null()).cloned();
    if let Some(p) = &idle_policy {
        if !p.is_object() {
            return Err(ApiError::validation("idlePolicy must be an object"));
        }
        if let Some(s) = opt_int(p, "maxIdleDurationSeconds")?
            && s < limits::MIN_IDLE_SECONDS
        {
            return Err(ApiError::validation(format!(
                "idlePolicy.maxIdleDurationSeconds must be at least {}, got {s}",
                limits::MIN_IDLE_SECONDS
            )));
        }
    }
    let logging = body.get("logging").filter(|v| !v.is_null()).cloned();
    let ingress = opt_str_list(body, "ingressNetworkConnectors")?;
    let egress = opt_str_list(body, "egressNetworkConnectors")?;

    let mut fingerprint = body.clone();
    if let Some(o) = fingerprint.as_object_mut() {
        o.remove("clientToken");
    }
    if let Some(token) = client_token
        && let Some((previous, vm_id)) = st.client_tokens.get(token)
    {
        if *previous != fingerprint {
            return Err(ApiError::conflict(format!(
                "clientToken {token} was already used with different parameters"
            )));
        }
        let vm = &st.vms[st.index[vm_id.as_str()]];
        return Ok(Answer {
            body: vm.to_json(),
            microvm_id: Some(vm.microvm_id.clone()),
            image_arn: Some(vm.image_arn.clone()),
        });
    }

    let id = new_microvm_id();
    let duration = duration.map_or(limits::DEFAULT_DURATION_SECONDS, |d| {
        i32::try_from(d).unwrap_or(i32::MAX)
    });
    let view = MicrovmView {
        microvm_id: id.clone(),
        state: MicrovmState::Running,
        image_arn: resolve_image_arn(image),
        image_version: image_version.to_string(),
        execution_role_arn: role.map(str::to_string),
        client_token: client_token.map(str::to_string),
        run_hook_payload: payload.map(str::to_string),
        maximum_duration_in_seconds: duration,
        ingress_network_connectors: ingress,
        egress_network_connectors: egress,
        idle_policy,
        logging,
        started_at: epoch_seconds(ctx.now),
        terminated_at: None,
        created_by: ctx.access_key_id.map(str::to_string),
        tokens_issued: Vec::new(),
    };
    let answer = Answer {
        body: view.to_json(),
        microvm_id: Some(id.clone()),
        image_arn: Some(view.image_arn.clone()),
    };
    if let Some(token) = client_token {
        st.client_tokens
            .insert(token.to_string(), (fingerprint, id.clone()));
    }
    let idx = st.vms.len();
    st.index.insert(id, idx);
    st.vms.push(view);
    Ok(answer)
}

fn validate_ports(ports: &Value) -> Result<(), ApiError> {
    let Some(items) = ports.as_array() else {
        return Err(ApiError::validation("allowedPorts must be a list"));
    };
    let port_ok = |v: Option<&Value>| {
        v.and_then(Value::as_i64)
            .is_some_and(|p| (1..=65_535).contains(&p))
    };
    for (i, item) in items.iter().enumerate() {
        let Some(o) = item.as_object().filter(|o| o.len() == 1) else {
            return Err(ApiError::validation(format!(
                "allowedPorts[{i}] must have exactly one of port, range, allPorts"
            )));
        };
        let ok = match o.iter().next() {
            Some((k, v)) if k == "port" => port_ok(Some(v)),
            Some((k, v)) if k == "range" => {
                port_ok(v.get("startPort"))
                    && port_ok(v.get("endPort"))
                    && v["startPort"].as_i64() <= v["endPort"].as_i64()
            }
            Some((k, v)) if k == "allPorts" => v.is_object(),
            _ => false,
        };
        if !ok {
            return Err(ApiError::validation(format!(
                "allowedPorts[{i}] is not a valid port specification: {item}"
            )));
        }
    }
    Ok(())
}

fn issue_token(
    vm: &mut MicrovmView,
    op: Op,
    body: &Value,
    ctx: &CallCtx<'_>,
) -> Result<Value, ApiError> {
    let expiration = opt_int(body, "expirationInMinutes")?;
    if let Some(m) = expiration
        && !(1..=limits::TOKEN_EXPIRATION_MAX_MINUTES).contains(&m)
    {
        return Err(ApiError::validation(format!(
            "expirationInMinutes must be 1-{}, got {m}",
            limits::TOKEN_EXPIRATION_MAX_MINUTES
        )));
    }
    let allowed_ports = match op {
        Op::AuthToken => body.get("allowedPorts").filter(|v| !v.is_null()).cloned(),
        _ => None,
    };
    if let Some(p) = &allowed_ports {
        validate_ports(p)?;
    }
    if vm.state != MicrovmState::Running {
        return Err(ApiError::conflict(format!(
            "MicroVM {} is {}; tokens are issued for RUNNING MicroVMs only",
            vm.microvm_id,
            vm.state.as_str()
        )));
    }
    let value = new_token();
    vm.tokens_issued.push(IssuedToken {
        kind: if op == Op::ShellToken {
            TokenKind::Shell
        } else {
            TokenKind::Auth
        },
        value: value.clone(),
        expiration_in_minutes: expiration,
        allowed_ports,
        request_id: ctx.request_id.to_string(),
        access_key_id: ctx.access_key_id.map(str::to_string),
    });
    Ok(json!({ "authToken": { "X-aws-proxy-auth": value } }))
}

const NEXT_TOKEN_PREFIX: &str = "emu-page-";

fn list(st: &EmulatorState, q: &Map<String, Value>) -> Result<Answer, ApiError> {
    let get = |k: &str| q.get(k).and_then(Value::as_str);
    let max = match get("maxResults") {
        None => limits::LIST_MAX_RESULTS,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=limits::LIST_MAX_RESULTS).contains(n))
            .ok_or_else(|| {
                ApiError::validation(format!(
                    "maxResults must be an integer 1-{}, got {s}",
                    limits::LIST_MAX_RESULTS
                ))
            })?,
    };
    let max = usize::try_from(max).unwrap_or(1);
    let start = match get("nextToken") {
        None => 0,
        Some(t) => t
            .strip_prefix(NEXT_TOKEN_PREFIX)
            .and_then(|h| usize::from_str_radix(h, 16).ok())
            .filter(|&i| i <= st.vms.len())
            .ok_or_else(|| ApiError::validation(format!("invalid nextToken: {t}")))?,
    };
    let image = get("imageIdentifier");
    let version = get("imageVersion");
    let matches = |vm: &MicrovmView| {
        image.is_none_or(|i| image_matches(vm, i)) && version.is_none_or(|v| vm.image_version == v)
    };
    let mut items = Vec::new();
    let mut next = None;
    for (i, vm) in st.vms.iter().enumerate().skip(start) {
        if !matches(vm) {
            continue;
        }
        if items.len() == max {
            next = Some(i);
            break;
        }
        items.push(vm.to_item_json());
    }
    let mut body = json!({ "items": items });
    if let Some(i) = next {
        body["nextToken"] = json!(format!("{NEXT_TOKEN_PREFIX}{i:x}"));
    }
    Ok(Answer {
        body,
        microvm_id: None,
        image_arn: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_header_yields_access_key_and_region() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/eu-west-1/lambda/aws4_request, SignedHeaders=host, Signature=abc",
            ),
        );
        assert_eq!(
            parse_authorization(&h),
            (Some("AKIDEXAMPLE".into()), Some("eu-west-1".into()))
        );
        assert_eq!(parse_authorization(&HeaderMap::new()), (None, None));
    }

    #[test]
    fn routes_map_method_and_path_to_operations() {
        let p = |m: Method, path: &str| route(&m, path);
        assert_eq!(p(Method::POST, "/2025-09-09/microvms"), (Op::Run, None));
        assert_eq!(p(Method::GET, "/2025-09-09/microvms"), (Op::List, None));
        assert_eq!(
            p(Method::GET, "/2025-09-09/microvms/microvm-a%2Fb"),
            (Op::Get, Some("microvm-a/b".into()))
        );
        assert_eq!(
            p(Method::POST, "/2025-09-09/microvms/x/shell-auth-token").0,
            Op::ShellToken
        );
        assert_eq!(p(Method::DELETE, "/2025-09-09/microvms/x").0, Op::Terminate);
        assert_eq!(p(Method::PUT, "/2025-09-09/microvms/x").0, Op::Unknown);
        assert_eq!(p(Method::GET, "/2015-03-31/functions").0, Op::Unknown);
    }

    #[test]
    fn assumed_role_identity_drops_the_role_path_from_the_session_arn() {
        let id = CallerIdentity::assumed_role(
            "arn:aws:iam::111122223333:role/service/launcher-role",
            "launcher-fn",
        );
        assert_eq!(
            id.arn,
            "arn:aws:sts::111122223333:assumed-role/launcher-role/launcher-fn"
        );
        assert_eq!(
            id.session_issuer_arn.as_deref(),
            Some("arn:aws:iam::111122223333:role/service/launcher-role")
        );
        assert!(id.principal_id.starts_with("AROA") && id.principal_id.ends_with(":launcher-fn"));
        assert_eq!(id.account_id, "111122223333");
    }
}
