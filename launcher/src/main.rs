//! `launcher`: the governed MicroVM launcher.
//!
//! * `launcher lambda` (or no subcommand inside Lambda): serve the router with
//!   `lambda_http` behind a Function URL.
//! * `launcher serve --port 8080 --config launcher.toml`: the same router on a
//!   local listener (bearer tokens; usually with `SIMULATE_AWS=true`).
//! * `launcher contro1-dev [--port 8700]`: the local Contro1 stand-in;
//!   `launcher contro1-dev approve|deny|expire REQUEST_ID --url URL` resolves
//!   a pending request (the stand-in sends a signed callback).
//! * `launcher hash-token TOKEN`: the SHA-256 to put in `bearer_token_sha256`.
//!
//! Only this file reads the process environment.
#![forbid(unsafe_code)]

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use launcher::bootstrap;
use launcher::settings::Settings;
use launcher_core::Config;
use std::collections::HashMap;

#[derive(Parser)]
#[command(
    name = "launcher",
    about = "Governed AWS Lambda MicroVM launcher and token broker"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run as the Lambda function (Function URL events).
    Lambda,
    /// Serve the router locally.
    Serve {
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Policy file (TOML); also `LAUNCHER_CONFIG`.
        #[arg(long)]
        config: Option<String>,
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        /// Run the reconciler every this many seconds (0: never).
        #[arg(long, default_value_t = 60)]
        reconcile_every: u64,
        /// Each request (headers and body) must arrive within this many
        /// seconds of the connection opening or of its previous answer.
        #[arg(long, default_value_t = launcher::serve::DEFAULT_READ_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
        read_timeout_seconds: u64,
    },
    /// The local Contro1 stand-in, or resolve one of its requests.
    #[command(name = "contro1-dev")]
    Contro1Dev {
        #[arg(long, default_value_t = 8700)]
        port: u16,
        /// Bearer key clients must send (`CONTRO1_API_KEY`).
        #[arg(long, env = "CONTRO1_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Secret callbacks are signed with (`CONTRO1_WEBHOOK_SECRET`).
        #[arg(long, env = "CONTRO1_WEBHOOK_SECRET", hide_env_values = true)]
        webhook_secret: Option<String>,
        #[command(subcommand)]
        action: Option<DevAction>,
    },
    /// Print the SHA-256 of a bearer token, for `bearer_token_sha256`.
    HashToken { token: String },
}

#[derive(Subcommand)]
enum DevAction {
    /// Approve a pending request (sends a signed callback).
    Approve(DevTarget),
    /// Deny a pending request.
    Deny(DevTarget),
    /// Expire a pending request.
    Expire(DevTarget),
}

#[derive(clap::Args)]
struct DevTarget {
    request_id: String,
    /// The stand-in's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8700")]
    url: String,
}

/// Crates whose logs are capped at INFO whatever the level asked for: at
/// DEBUG and TRACE they print request and response bodies and headers (the
/// AWS SDK's `aws_smithy_runtime` alone printed a token 38 times), which
/// carry MicroVM tokens, KMS data keys and the Contro1 key.
pub const CAPPED_TARGETS: &[&str] = &[
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_smithy_types",
    "aws_smithy_json",
    "aws_sigv4",
    "aws_config",
    "aws_runtime",
    "aws_sdk_dynamodb",
    "aws_sdk_kms",
    "aws_sdk_lambdamicrovms",
    "aws_sdk_secretsmanager",
    "aws_sdk_sts",
    "aws_sdk_sso",
    "aws_sdk_ssooidc",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "reqwest",
    "lambda_runtime",
    "lambda_runtime_api_client",
    "lambda_http",
    "tower",
    "axum",
];

fn init_tracing(env: &HashMap<String, String>) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{EnvFilter, fmt};
    let level = env
        .get("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|| env.get("RUST_LOG"))
        .map_or_else(|| "info".to_string(), |l| l.to_ascii_lowercase());
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    // A second filter every event must also pass: the capped crates never
    // log below INFO, whatever `filter` allows.
    let caps = CAPPED_TARGETS
        .iter()
        .fold(Targets::new().with_default(LevelFilter::TRACE), |t, c| {
            t.with_target(*c, LevelFilter::INFO)
        });
    let in_lambda = env.contains_key("AWS_LAMBDA_FUNCTION_NAME");
    let json = env
        .get("AWS_LAMBDA_LOG_FORMAT")
        .or_else(|| env.get("LOG_FORMAT"))
        .map_or(in_lambda, |f| f.eq_ignore_ascii_case("json"));
    let layer = if json {
        fmt::layer()
            .json()
            .with_current_span(false)
            .flatten_event(true)
            .without_time()
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        // No colour escapes in CloudWatch.
        fmt::layer()
            .with_ansi(!in_lambda)
            .with_writer(std::io::stderr)
            .boxed()
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(filter).with_filter(caps))
        .init();
    tracing::debug!(
        filter = %level,
        capped_at_info = CAPPED_TARGETS.len(),
        "log filter in force"
    );
}

async fn load(env: &HashMap<String, String>) -> anyhow::Result<std::sync::Arc<launcher::AppState>> {
    let settings = Settings::from_env(env)?;
    let text = match &settings.config_path {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading policy file {p}"))?
        }
        None => String::new(),
    };
    let config = Config::from_parts(&text, env).with_context(|| match &settings.config_path {
        Some(p) => format!("policy file {p}"),
        None => "policy (environment only)".to_string(),
    })?;
    tracing::info!(
        policy_version = %config.policy.version,
        agents = config.agents.agents().len(),
        backend = ?settings.backend,
        "launcher configured"
    );
    let sdk = if bootstrap::needs_aws(&settings) {
        Some(shared_aws::load_sdk_config().await)
    } else {
        None
    };
    Ok(bootstrap::build_state(&settings, config, sdk.as_ref()).await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut env: HashMap<String, String> = std::env::vars().collect();
    init_tracing(&env);
    match cli.cmd {
        None if env.contains_key("AWS_LAMBDA_RUNTIME_API") => lambda(&env).await,
        Some(Cmd::Lambda) => lambda(&env).await,
        None => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
            Ok(())
        }
        Some(Cmd::Serve {
            port,
            config,
            bind,
            reconcile_every,
            read_timeout_seconds,
        }) => {
            if let Some(c) = config {
                env.insert("LAUNCHER_CONFIG".into(), c);
            }
            env.entry("LAUNCHER_PUBLIC_URL".into())
                .or_insert_with(|| format!("http://127.0.0.1:{port}"));
            let state = load(&env).await?;
            let listener = tokio::net::TcpListener::bind((bind.as_str(), port))
                .await
                .with_context(|| format!("binding {bind}:{port}"))?;
            tracing::info!(addr = %listener.local_addr()?, "launcher listening");
            if reconcile_every > 0 {
                let state = state.clone();
                tokio::spawn(async move {
                    let mut tick =
                        tokio::time::interval(std::time::Duration::from_secs(reconcile_every));
                    loop {
                        tick.tick().await;
                        if let Err(e) = state.service.reconcile().await {
                            tracing::error!(error = %e, "reconciler run failed");
                        }
                    }
                });
            }
            launcher::serve::serve(
                listener,
                launcher::app(state),
                std::time::Duration::from_secs(read_timeout_seconds),
                async {
                    let _ = tokio::signal::ctrl_c().await;
                },
            )
            .await?;
            Ok(())
        }
        Some(Cmd::Contro1Dev {
            port,
            api_key,
            webhook_secret,
            action,
        }) => match action {
            None => {
                let (Some(k), Some(s)) = (api_key, webhook_secret) else {
                    bail!(
                        "contro1-dev needs --api-key and --webhook-secret (or CONTRO1_API_KEY / CONTRO1_WEBHOOK_SECRET)"
                    );
                };
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .with_context(|| format!("binding 127.0.0.1:{port}"))?;
                contro1::standin::serve(listener, contro1::standin::StandInConfig::new(k, s))
                    .await?;
                Ok(())
            }
            Some(a) => {
                let (verb, t) = match a {
                    DevAction::Approve(t) => ("approve", t),
                    DevAction::Deny(t) => ("deny", t),
                    DevAction::Expire(t) => ("expire", t),
                };
                let url = format!(
                    "{}/_dev/requests/{}/{verb}",
                    t.url.trim_end_matches('/'),
                    t.request_id
                );
                let resp = reqwest::Client::new()
                    .post(&url)
                    .send()
                    .await
                    .with_context(|| format!("POST {url}"))?;
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                println!("{text}");
                if !status.is_success() {
                    bail!("{verb} {}: HTTP {status}", t.request_id);
                }
                Ok(())
            }
        },
        Some(Cmd::HashToken { token }) => {
            println!("{}", launcher_core::agents::token_sha256_hex(&token));
            Ok(())
        }
    }
}

async fn lambda(env: &HashMap<String, String>) -> anyhow::Result<()> {
    let state = load(env).await?;
    let router = launcher::app(state.clone());
    lambda_http::lambda_runtime::run(lambda_http::service_fn(move |event| {
        launcher::lambda::handle(state.clone(), router.clone(), event)
    }))
    .await
    .map_err(|e| anyhow::anyhow!("lambda runtime: {e}"))
}
