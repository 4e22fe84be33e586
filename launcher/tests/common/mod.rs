//! What the launcher's integration tests share: the policy file they run
//! under, their agents and bearer tokens, and the harness that builds the
//! real router over DynamoDB on moto, the MicroVMs API on the testkit
//! emulator (driven by the real SDK) and Contro1 on the stand-in over real
//! HTTP.
//!
//! Each test file takes it with `mod common;` and uses only some of it.
#![allow(dead_code)]

use aws_config::SdkConfig;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use contro1::standin::{StandIn, StandInConfig, StandInHandle};
use http_body_util::BodyExt;
use launcher::adapters::{Connectors, Contro1Approvals, LedgerAdapter, SdkMicrovms};
use launcher::settings::Settings;
use launcher::store::DynamoPendingStore;
use launcher_core::agents::token_sha256_hex;
use launcher_core::ports::SystemClock;
use launcher_core::{Config, PortSet};
use serde_json::{Value, json};
use shared_core::webhook::Decision;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use testkit::emulator::Emulator;
use testkit::fault_proxy::FaultProxy;
use tower::ServiceExt;

pub const API_KEY: &str = "test-contro1-key";
pub const SECRET: &str = "test-webhook-secret";
pub const IMAGE: &str = "arn:aws:lambda:us-east-1:111122223333:microvm-image:py";
pub const SANDBOX: &str = "arn:aws:iam::111122223333:role/sandbox";
pub const PROD: &str = "arn:aws:iam::111122223333:role/prod";
pub const CI: &str = "ci-token";

/// One `[[agents]]` entry (owner `platform`, environment `dev`) that
/// authenticates with the bearer token `token`.
#[derive(Debug, Clone, Copy)]
pub struct Agent<'a> {
    pub id: &'a str,
    pub token: &'a str,
    pub enabled: bool,
}

impl<'a> Agent<'a> {
    pub const fn new(id: &'a str, token: &'a str) -> Self {
        Agent {
            id,
            token,
            enabled: true,
        }
    }

    pub const fn disabled(self) -> Self {
        Agent {
            enabled: false,
            ..self
        }
    }
}

/// The agent `ci`, token [`CI`].
pub const CI_AGENT: Agent<'static> = Agent::new("ci", CI);

/// The `[[agents]]` tables of `agents`, in order.
pub fn agents_toml(agents: &[Agent]) -> String {
    agents
        .iter()
        .map(|a| {
            let enabled = if a.enabled { "" } else { "enabled = false\n" };
            format!(
                r#"
[[agents]]
id = "{}"
owner = "platform"
environment = "dev"
{enabled}bearer_token_sha256 = ["{}"]
"#,
                a.id,
                token_sha256_hex(a.token)
            )
        })
        .collect()
}

/// The policy the router tests run under: [`IMAGE`] and [`SANDBOX`]
/// allowed, port 8080, auto-approval up to 900 s and tokens up to 900 s;
/// with `production_role`, [`PROD`] is a production role; then `agents`.
pub fn policy_file(version: &str, production_role: bool, agents: &[Agent]) -> String {
    let production = if production_role {
        format!("production_execution_role_arns = [\"{PROD}\"]\n")
    } else {
        String::new()
    };
    format!(
        r#"
[policy]
version = "{version}"
allowed_image_arns = ["{IMAGE}"]
allowed_execution_role_arns = ["{SANDBOX}"]
{production}allowed_token_ports = [8080]
max_auto_approve_duration_seconds = 900
max_token_ttl_seconds = 900
{}"#,
        agents_toml(agents)
    )
}

/// What differs between the test files' launchers; [`Setup::new`] gives
/// the plain one (DynamoDB straight on moto, no MicroVMs retries, the
/// Contro1 client's own timeout and retries).
pub struct Setup {
    /// The policy file text.
    pub policy: String,
    /// The Contro1 client's per-attempt timeout; `None` keeps its default.
    pub contro1_timeout: Option<Duration>,
    /// The Contro1 client's retries; `None` keeps its production policy.
    pub contro1_max_retries: Option<u32>,
    /// The SDK configuration of the launcher's DynamoDB client (e.g. the
    /// fault proxy in front of moto); `None` is moto itself. Tables are
    /// always created straight on moto.
    pub dynamodb_sdk: Option<SdkConfig>,
    /// Attempts per MicroVMs call with the SDK's standard retry mode;
    /// `None` is the emulator's client without retries.
    pub microvms_attempts: Option<u32>,
    /// How tokens are sealed; `None` is a key in this process.
    pub sealer: Option<Arc<dyn launcher::seal::Sealer>>,
    /// `APPROVAL_REQUESTS_PER_MINUTE`; `None` is 10000 (the load test asks
    /// a hundred times a second).
    pub approvals_per_minute: Option<u32>,
    /// Put a [`FaultProxy::serialise_items`] proxy between the launcher and
    /// moto (when `dynamodb_sdk` is `None`). DynamoDB applies each
    /// conditional write to an item atomically; moto does not (two
    /// concurrent `pending → executing` writes can both pass its
    /// condition), so tests that count executions under concurrent
    /// callbacks need this to test the launcher against DynamoDB's
    /// guarantee rather than moto's race.
    pub serialise_dynamodb: bool,
}

impl Setup {
    pub fn new(policy: String) -> Self {
        Setup {
            policy,
            contro1_timeout: None,
            contro1_max_retries: None,
            dynamodb_sdk: None,
            microvms_attempts: None,
            sealer: None,
            approvals_per_minute: None,
            serialise_dynamodb: false,
        }
    }
}

/// The launcher's router and what it talks to.
pub struct Harness {
    pub router: axum::Router,
    /// The state behind the router (the reconciler runs on it).
    pub state: Arc<launcher::AppState>,
    pub emu: Emulator,
    pub c1: StandInHandle,
    /// Straight to moto, for looking at the tables without touching a proxy.
    pub dynamo: aws_sdk_dynamodb::Client,
    pub pending_table: String,
    pub ledger_table: String,
    /// The ledger table, read straight from moto.
    pub ledger: shared_aws::DynamoLedger,
    /// The serialising proxy of [`Setup::serialise_dynamodb`], kept alive.
    pub serialiser: Option<FaultProxy>,
}

/// Requests through the router (`oneshot`), as an agent with a bearer
/// token or as Contro1 posting a callback.
impl Harness {
    pub async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)}));
        (status, v)
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(
            Request::post(path)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.send(
            Request::get(path)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn callback(&self, body: Vec<u8>, headers: &[(&str, String)]) -> (StatusCode, Value) {
        let mut b = Request::post("/contro1/callback").header("content-type", "application/json");
        for (k, v) in headers {
            b = b.header(*k, v);
        }
        self.send(b.body(Body::from(body)).unwrap()).await
    }

    /// A reviewer approves `id` in the stand-in; its signed callback is
    /// delivered through the router.
    pub async fn approve(&self, id: &str) -> (StatusCode, Value) {
        let cb = self.c1.decide(id, Decision::Approved).unwrap();
        let headers: Vec<(&str, String)> = cb.headers().into_iter().collect();
        self.callback(cb.body.clone(), &headers).await
    }

    /// How many `op` calls the emulator served.
    pub fn emulator_calls(&self, op: &str) -> usize {
        self.emu
            .calls()
            .iter()
            .filter(|c| c.operation == op)
            .count()
    }
}

/// The pending table as the templates create it: `pk`, and the sparse
/// index `executing-index` (`executing` S, `executing_since` N) the
/// reconciler queries.
pub async fn create_pending_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    testkit::moto::create_pending_table(client, name, launcher::store::DEFAULT_EXECUTING_INDEX)
        .await;
}

/// The launcher's router built from `setup`, with `public_url` as its
/// `LAUNCHER_PUBLIC_URL` (the base of the callback_url Contro1 gets).
pub async fn harness(setup: Setup, public_url: &str) -> Harness {
    let dynamo = testkit::moto::dynamodb_client().await;
    let serialiser = match (&setup.dynamodb_sdk, setup.serialise_dynamodb) {
        (None, true) => {
            let proxy = FaultProxy::start().await;
            proxy.serialise_items();
            Some(proxy)
        }
        _ => None,
    };
    let launcher_dynamo = match (&setup.dynamodb_sdk, &serialiser) {
        (Some(sdk), _) => aws_sdk_dynamodb::Client::new(sdk),
        (None, Some(proxy)) => aws_sdk_dynamodb::Client::new(&proxy.sdk_config().await),
        (None, None) => dynamo.clone(),
    };
    let pending_table = testkit::unique_name("pending");
    let ledger_table = testkit::unique_name("ledger");
    create_pending_table(&dynamo, &pending_table).await;
    testkit::moto::create_pk_table(&dynamo, &ledger_table).await;
    let approvals_per_minute = setup.approvals_per_minute.unwrap_or(10_000).to_string();
    let emu = Emulator::start().await;
    let c1 = StandIn::start(StandInConfig::new(API_KEY, SECRET))
        .await
        .unwrap();
    let env: HashMap<String, String> = [
        ("LAUNCHER_PUBLIC_URL", public_url),
        ("CONTRO1_API_KEY", API_KEY),
        ("CONTRO1_WEBHOOK_SECRET", SECRET),
        ("PENDING_TABLE", pending_table.as_str()),
        ("LEDGER_TABLE", ledger_table.as_str()),
        (
            "APPROVAL_REQUESTS_PER_MINUTE",
            approvals_per_minute.as_str(),
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let settings = Settings::from_env(&env).unwrap();
    let config = Config::from_parts(&setup.policy, &HashMap::new()).unwrap();
    let mut c1cfg = contro1::Contro1Config::new(c1.base_url(), API_KEY);
    if let Some(timeout) = setup.contro1_timeout {
        c1cfg.timeout = timeout;
    }
    if let Some(retries) = setup.contro1_max_retries {
        c1cfg.max_retries = retries;
    }
    c1cfg.backoff_base = Duration::from_millis(5);
    let microvms = match setup.microvms_attempts {
        Some(attempts) => emu.client_with_retries("AKIDLAUNCHER", attempts),
        None => emu.client("AKIDLAUNCHER"),
    };
    let ports = PortSet {
        store: Arc::new(DynamoPendingStore::new(
            launcher_dynamo.clone(),
            &pending_table,
            setup
                .sealer
                .clone()
                .unwrap_or_else(|| Arc::new(launcher::seal::LocalSealer::random())),
        )),
        ledger: Arc::new(LedgerAdapter(shared_aws::DynamoLedger::new(
            launcher_dynamo,
            &ledger_table,
        ))),
        microvms: Arc::new(SdkMicrovms::new(
            microvms,
            "us-east-1",
            Connectors::default(),
        )),
        approvals: Arc::new(Contro1Approvals(
            contro1::Contro1Client::new(c1cfg).unwrap(),
        )),
        clock: Arc::new(SystemClock),
    };
    let state =
        launcher::bootstrap::from_ports(&settings, config, ports, SECRET.as_bytes().to_vec());
    Harness {
        router: launcher::app(state.clone()),
        state,
        emu,
        c1,
        ledger: shared_aws::DynamoLedger::new(dynamo.clone(), &ledger_table),
        dynamo,
        pending_table,
        ledger_table,
        serialiser,
    }
}

/// The launcher built from `setup` and served on a real loopback port (so
/// the stand-in can POST callbacks to it); its base URL, which is also its
/// public URL.
pub async fn served(setup: Setup) -> (Harness, String) {
    // Bind first so the launcher's public URL (the callback_url Contro1 gets) is known.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let h = harness(setup, &base).await;
    let router = h.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (h, base)
}

/// The router over in-memory ports (no moto, no emulator): one agent `ci`
/// (role `agents/ci-bot`) under the policy of the Function URL fixture,
/// with `extra_env` added to the Lambda environment it is configured from.
pub struct MemoryRig {
    pub state: Arc<launcher::app::AppState>,
    pub router: axum::Router,
    pub c1: Arc<launcher_core::fakes::MemoryApprovals>,
    pub vms: Arc<launcher_core::fakes::RecordingMicrovms>,
}

pub fn memory_rig(extra_env: &[(&str, &str)]) -> MemoryRig {
    use launcher_core::fakes::{
        ManualClock, MemoryApprovals, MemoryLedger, MemoryStore, RecordingMicrovms,
    };
    let file = r#"
[policy]
allowed_image_arns = ["arn:aws:lambda:us-east-1:111122223333:microvm-image:py"]
allowed_execution_role_arns = ["arn:aws:iam::111122223333:role/sandbox"]
[[agents]]
id = "ci"
owner = "platform"
environment = "dev"
principal_arns = ["arn:aws:iam::111122223333:role/agents/ci-bot"]
"#;
    let env: HashMap<String, String> = [
        (
            "LAUNCHER_PUBLIC_URL",
            "https://cb.lambda-url.us-east-1.on.aws",
        ),
        ("CONTRO1_API_KEY", "k"),
        ("CONTRO1_WEBHOOK_SECRET", "s"),
        ("PENDING_TABLE", "p"),
        ("LEDGER_TABLE", "l"),
        ("AWS_LAMBDA_FUNCTION_NAME", "launcher"),
        ("TOKEN_KMS_KEY_ID", "alias/launcher-tokens"),
    ]
    .iter()
    .chain(extra_env)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let settings = Settings::from_env(&env).unwrap();
    let c1 = Arc::new(MemoryApprovals::default());
    let vms = Arc::new(RecordingMicrovms::default());
    let ports = PortSet {
        store: Arc::new(MemoryStore::new()),
        ledger: Arc::new(MemoryLedger::default()),
        microvms: vms.clone(),
        approvals: c1.clone(),
        clock: Arc::new(ManualClock::at(1_741_608_000)),
    };
    let config = Config::from_parts(file, &HashMap::new()).unwrap();
    let state = launcher::bootstrap::from_ports(&settings, config, ports, b"s".to_vec());
    MemoryRig {
        router: launcher::app(state.clone()),
        state,
        c1,
        vms,
    }
}
