//! The rig the agent's tests run `microvm` against: the built `launcher
//! serve` (simulating the MicroVMs API, with the example policy) and the
//! Contro1 stand-in, whose reviewer approves, denies or expires.
#![allow(dead_code)]

use contro1::{StandIn, StandInConfig, StandInHandle};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

pub const API_KEY: &str = "agent-test-contro1-key";
pub const WEBHOOK_SECRET: &str = "agent-test-webhook-secret";
/// The example policy's agent `dev-agent` (bearer `dev-agent-token`).
pub const TOKEN: &str = "dev-agent-token";
pub const IMAGE: &str = "arn:aws:lambda:us-east-1:111122223333:microvm-image:python-sandbox";
pub const ROLE: &str = "arn:aws:iam::111122223333:role/microvm-sandbox";

pub fn launcher_binary() -> PathBuf {
    testkit::lambda_runtime::workspace_binary(
        "launcher",
        &[
            "launcher/src",
            "launcher/core/src",
            "shared/core/src",
            "shared/contro1/src",
        ],
    )
}

pub fn example_policy() -> PathBuf {
    testkit::workspace_dir().join("launcher/examples/launcher.toml")
}

pub struct Rig {
    pub contro1: StandInHandle,
    pub url: String,
    launcher: tokio::process::Child,
    pub home: PathBuf,
}

async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

impl Rig {
    /// `launcher serve` on a free port with the Contro1 stand-in.
    pub async fn start() -> Rig {
        let contro1 = StandIn::start(StandInConfig::new(API_KEY, WEBHOOK_SECRET))
            .await
            .expect("start the Contro1 stand-in");
        let port = free_port().await;
        let launcher = tokio::process::Command::new(launcher_binary())
            .args([
                "serve",
                "--port",
                &port.to_string(),
                "--reconcile-every",
                "0",
            ])
            .arg("--config")
            .arg(example_policy())
            .env_clear()
            .env("SIMULATE_AWS", "true")
            .env("CONTRO1_BASE_URL", contro1.base_url())
            .env("CONTRO1_API_KEY", API_KEY)
            .env("CONTRO1_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start launcher serve");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if http
                .get(format!("{url}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                let home = std::env::temp_dir().join(testkit::unique_name("microvm-home"));
                std::fs::create_dir_all(&home).unwrap();
                return Rig {
                    contro1,
                    url,
                    launcher,
                    home,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("launcher serve did not answer /healthz on {url} within 10 s");
    }

    /// `microvm ARGS` as the example policy's agent, with nothing from the
    /// developer's environment.
    pub fn microvm(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_microvm"));
        c.args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("MICROVM_URL", &self.url)
            .env("MICROVM_TOKEN", TOKEN)
            .env("MICROVM_OWNER", "platform-team")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }

    /// The Contro1 requests no reviewer has decided yet.
    pub fn pending(&self) -> Vec<String> {
        self.contro1
            .state()
            .requests()
            .into_iter()
            .filter(|r| !r.is_terminal())
            .map(|r| r.id)
            .collect()
    }

    /// Waits for a new pending request (not in `before`).
    pub async fn next_pending(&self, before: &[String]) -> String {
        for _ in 0..200 {
            if let Some(id) = self.pending().into_iter().find(|id| !before.contains(id)) {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no new pending request in Contro1 within 10 s");
    }
}

/// A finished `microvm`: exit code, stdout as JSON (when it is), stderr.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub json: Value,
    pub stderr: String,
}

pub async fn output(mut c: tokio::process::Command) -> Out {
    let o = tokio::time::timeout(Duration::from_secs(60), c.output())
        .await
        .expect("microvm finished within 60 s")
        .expect("microvm ran");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    Out {
        code: o.status.code().unwrap_or(-1),
        json: serde_json::from_str(stdout.trim()).unwrap_or(Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// `microvm run` within the example policy (auto-approved).
pub fn run_args() -> Vec<&'static str> {
    vec![
        "run",
        "--reason",
        "agent tests",
        "--image-arn",
        IMAGE,
        "--role",
        ROLE,
        "--duration",
        "600",
    ]
}
