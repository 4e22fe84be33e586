//! `detector sweep`, `detector handle --event FILE` and the Lambda entry
//! point. All three build the same [`State`] from the same environment
//! variables and call the same handler, so what runs locally (against moto,
//! the emulator and the Contro1 stand-in via `AWS_ENDPOINT_URL`,
//! `MICROVMS_ENDPOINT_URL` and `CONTRO1_BASE_URL`) is what runs in Lambda.
//! See `detector/LAMBDA.md`.

use anyhow::{Context, Result};
use detector::lambda::config::Config;
use detector::lambda::handler::{State, handle};
use detector::lambda::state;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

/// Exit status when the invocation failed (Lambda would retry it).
pub const EXIT_FAILED: i32 = 1;
/// Exit status when some SQS messages of the batch failed.
pub const EXIT_PARTIAL: i32 = 2;

#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// Accounts to sweep: ids, comma-separated lists, files (one id per
    /// line, or `aws organizations list-accounts` JSON), or `organization`
    /// for every active account [env: SWEEP_ACCOUNTS; default: the
    /// credentials' own account]
    #[arg(long = "account", value_name = "ID|FILE|organization")]
    pub accounts: Vec<String>,
    /// Regions to sweep in each account, or `enabled` for every region
    /// enabled for the account [env: SWEEP_REGIONS; default: the configured
    /// region]
    #[arg(long = "region", value_name = "REGION|enabled")]
    pub regions: Vec<String>,
    /// The role assumed in every other account [env: SWEEP_ROLE_NAME]
    #[arg(long, value_name = "NAME")]
    pub role_name: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct HandleArgs {
    /// The invocation payload (JSON, any trigger shape); `-` for stdin.
    #[arg(long, value_name = "FILE")]
    pub event: PathBuf,
}

async fn state_from_env() -> Result<Arc<State>> {
    state_from(std::env::vars().collect()).await
}

async fn state_from(env: HashMap<String, String>) -> Result<Arc<State>> {
    let cfg = Config::from_parts(&env).context("configuration")?;
    let sdk = shared_aws::load_sdk_config().await;
    let st = state::build(&cfg, &sdk).await.context("building clients")?;
    Ok(Arc::new(st))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Run one invocation and print its answer on stdout; returns the exit status.
async fn invoke(st: &State, event: &Value) -> i32 {
    match handle(st, event).await {
        Ok(answer) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&answer).unwrap_or_default()
            );
            let failed = answer
                .get("batchItemFailures")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
            if failed { EXIT_PARTIAL } else { 0 }
        }
        Err(e) => {
            eprintln!("detector: invocation failed: {e}");
            EXIT_FAILED
        }
    }
}

/// Run a job and turn its outcome into the process exit status.
pub fn exit(result: Result<i32>) -> std::process::ExitCode {
    match result {
        Ok(code) => std::process::ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("detector: {e:#}");
            std::process::ExitCode::from(EXIT_FAILED as u8)
        }
    }
}

/// `detector sweep`: the scheduled sweep, once, every target in this
/// process (never handed out to `SWEEP_QUEUE_URL`).
pub fn sweep(args: &SweepArgs) -> Result<i32> {
    let mut env: HashMap<String, String> = std::env::vars().collect();
    env.remove("SWEEP_QUEUE_URL");
    if !args.accounts.is_empty() {
        env.insert("SWEEP_ACCOUNTS".into(), args.accounts.join(","));
    }
    if !args.regions.is_empty() {
        env.insert("SWEEP_REGIONS".into(), args.regions.join(","));
    }
    if let Some(r) = &args.role_name {
        env.insert("SWEEP_ROLE_NAME".into(), r.clone());
    }
    runtime()?.block_on(async {
        let st = state_from(env).await?;
        let event = json!({
            "version": "0",
            "source": "aws.events",
            "detail-type": "Scheduled Event",
            "detail": {},
        });
        Ok(invoke(&st, &event).await)
    })
}

/// `detector handle --event FILE`: one invocation with that payload.
pub fn handle_file(args: &HandleArgs) -> Result<i32> {
    let text = if args.event.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the event from stdin")?;
        s
    } else {
        std::fs::read_to_string(&args.event)
            .with_context(|| format!("reading {}", args.event.display()))?
    };
    let event: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not JSON", args.event.display()))?;
    runtime()?.block_on(async {
        let st = state_from_env().await?;
        Ok(invoke(&st, &event).await)
    })
}

/// True when this process is a Lambda function's runtime.
pub fn in_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// The Lambda entry point: configuration and clients once, then the runtime
/// loop. A handler error fails the invocation (retry / DLQ).
pub fn run_lambda() -> Result<()> {
    runtime()?.block_on(async {
        let st = state_from_env().await?;
        lambda_runtime::run(lambda_runtime::service_fn(
            move |ev: lambda_runtime::LambdaEvent<Value>| {
                let st = st.clone();
                async move {
                    handle(&st, &ev.payload)
                        .await
                        .map_err(|e| -> lambda_runtime::Error { Box::new(e) })
                }
            },
        ))
        .await
        .map_err(|e| anyhow::anyhow!("lambda runtime: {e}"))
    })
}
