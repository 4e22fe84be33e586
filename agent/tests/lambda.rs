//! The Lambda path: the built launcher runs as a Lambda function (local
//! Runtime API) behind an `AWS_IAM` Function URL front that verifies SigV4
//! as the Function URL does (testkit), and `microvm` signs with credentials
//! from the standard chain. Also what `microvm` says when the URL's
//! AuthType is NONE, when the signature is refused, and when the clock is
//! off. Needs `target/debug/launcher` built (`cargo build -p launcher --bins`).

mod common;

use agent::config::{Auth, Settings};
use agent::{Client, ClientError};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use common::{API_KEY, IMAGE, ROLE, WEBHOOK_SECRET, output, run_args};
use contro1::{StandIn, StandInConfig, StandInHandle};
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use testkit::lambda_runtime::{Function, FunctionUrl, IamCaller};
use testkit::sigv4_verify::IamKey;
use tokio::sync::Mutex;

const ACCESS_KEY: &str = "ASIAAGENTTESTKEY0001";
const SECRET_KEY: &str = "agent-test-secret-access-key-9f2c";
const SESSION_TOKEN: &str = "agent-test-session-token-1b7e";

struct LambdaRig {
    contro1: StandInHandle,
    /// The `AWS_IAM` Function URL.
    iam_url: String,
    /// A Function URL with `AuthType: NONE` on the same function.
    open_url: String,
    _urls: Vec<FunctionUrl>,
    home: std::path::PathBuf,
}

async fn start() -> LambdaRig {
    let contro1 = StandIn::start(StandInConfig::new(API_KEY, WEBHOOK_SECRET))
        .await
        .unwrap();
    let webhook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public_url = format!("http://{}", webhook.local_addr().unwrap());
    let env: Vec<(String, String)> = [
        ("SIMULATE_AWS", "true"),
        ("LAUNCHER_ALLOW_SIMULATION_IN_LAMBDA", "true"),
        ("CONTRO1_BASE_URL", &contro1.base_url()),
        ("CONTRO1_API_KEY", API_KEY),
        ("CONTRO1_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("LAUNCHER_PUBLIC_URL", &public_url),
        (
            "LAUNCHER_CONFIG",
            common::example_policy().to_str().unwrap(),
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let function = Arc::new(Mutex::new(
        Function::spawn(&common::launcher_binary(), "microvm-launcher", &env).await,
    ));
    // The example policy's agent is the role `dev-agent`.
    let keys = HashMap::from([(
        ACCESS_KEY.to_string(),
        IamKey {
            secret_access_key: SECRET_KEY.into(),
            caller: IamCaller {
                account_id: "111122223333".into(),
                user_arn: "arn:aws:sts::111122223333:assumed-role/dev-agent/ci-run-1".into(),
                user_id: "AROAAGENTTEST0000001:ci-run-1".into(),
                access_key: ACCESS_KEY.into(),
            },
        },
    )]);
    let iam = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let urls = vec![
        FunctionUrl::serve_alias(webhook, function.clone(), "contro1-webhook"),
        FunctionUrl::serve_iam(iam, function.clone(), keys, "us-east-1"),
        FunctionUrl::serve(open, function.clone()),
    ];
    let home = std::env::temp_dir().join(testkit::unique_name("microvm-lambda-home"));
    std::fs::create_dir_all(&home).unwrap();
    LambdaRig {
        contro1,
        iam_url: urls[1].url(),
        open_url: urls[2].url(),
        _urls: urls,
        home,
    }
}

impl LambdaRig {
    /// `microvm ARGS` with AWS credentials in the environment (the standard
    /// chain) and the region given, since the local front is not a
    /// `*.lambda-url.*.on.aws` host.
    fn microvm(&self, url: &str, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_microvm"));
        c.args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("MICROVM_URL", url)
            .env("MICROVM_REGION", "us-east-1")
            .env("MICROVM_OWNER", "platform-team")
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_SESSION_TOKEN", SESSION_TOKEN)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_requests_through_an_aws_iam_function_url_run_and_wait_through_an_approval() {
    let rig = start().await;
    let args = [&run_args()[..], &["--json"]].concat();
    let out = output(rig.microvm(&rig.iam_url, &args)).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json["outcome"], "executed");
    let vm = out.json["result"]["microvm_id"]
        .as_str()
        .unwrap()
        .to_string();

    let waiting = tokio::spawn(output(rig.microvm(
        &rig.iam_url,
        &[
            "shell-token",
            &vm,
            "--reason",
            "debug",
            "--ttl",
            "300",
            "--wait",
            "--poll-seconds",
            "0.2",
            "--json",
        ],
    )));
    let mut id = None;
    for _ in 0..200 {
        id = rig
            .contro1
            .state()
            .requests()
            .into_iter()
            .find(|r| !r.is_terminal())
            .map(|r| r.id);
        if id.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(id) = id else {
        let out = waiting.await.unwrap();
        panic!("no pending shell-token request in Contro1; microvm: {out:?}");
    };
    let d = rig
        .contro1
        .approve(&id, "reviewer@example.com")
        .await
        .unwrap();
    assert_eq!(d.status, Some(200), "{:?}", d.error);
    let out = waiting.await.unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.json["token"].is_string(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_secret_is_refused_by_the_function_url_with_the_iam_it_needs() {
    let rig = start().await;
    let mut c = rig.microvm(&rig.iam_url, &[&run_args()[..], &["--json"]].concat());
    c.env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let out = output(c).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.json["error"]["code"], "forbidden");
    assert!(
        out.stderr.contains("lambda:InvokeFunctionUrl")
            && out.stderr.contains("lambda:InvokedViaFunctionUrl"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_url_with_auth_type_none_is_named_as_not_aws_iam() {
    let rig = start().await;
    let out = output(rig.microvm(&rig.open_url, &[&run_args()[..], &["--json"]].concat())).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.json["error"]["code"], "not_aws_iam_function_url");
    assert!(out.stderr.contains("AWS_IAM"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clock_ten_minutes_slow_is_named_as_clock_skew() {
    let rig = start().await;
    fn slow() -> SystemTime {
        SystemTime::now() - Duration::from_secs(600)
    }
    let settings = Settings {
        url: rig.iam_url.clone(),
        auth: Auth::Iam {
            region: "us-east-1".into(),
            aws_profile: None,
        },
        owner: Some("platform-team".into()),
    };
    let creds = SharedCredentialsProvider::new(Credentials::new(
        ACCESS_KEY,
        SECRET_KEY,
        Some(SESSION_TOKEN.into()),
        None,
        "test",
    ));
    let client = Client::with_credentials(settings, Some(creds), slow);
    let e = client.status("req_abc").await.unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::ClockSkew {
                direction: "behind",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("NTP"), "{e}");
    // The same request with the right clock reaches the launcher (404: no
    // such request), so it was the clock that was refused.
    let client = Client::with_credentials(
        Settings {
            url: rig.iam_url.clone(),
            auth: Auth::Iam {
                region: "us-east-1".into(),
                aws_profile: None,
            },
            owner: None,
        },
        Some(SharedCredentialsProvider::new(Credentials::new(
            ACCESS_KEY,
            SECRET_KEY,
            Some(SESSION_TOKEN.into()),
            None,
            "test",
        ))),
        SystemTime::now,
    );
    let e = client.status("req_abc").await.unwrap_err();
    assert!(
        matches!(&e, ClientError::Launcher { status: 404, .. }),
        "{e}"
    );
    let _ = (IMAGE, ROLE);
}
