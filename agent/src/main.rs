//! `microvm`: ask the governed launcher for a MicroVM, a token or a
//! lifecycle change; wait for a human's approval; or serve the same as MCP
//! tools (`microvm mcp`). Exit codes: see `agent::outcome`.
//!
//! Only this file reads the environment, the profile file and token files.
#![forbid(unsafe_code)]

use agent::cli::{AuthTokenArgs, LifecycleArgs, RunArgs, ShellTokenArgs, elapsed, printable};
use agent::config::{ENV_CONFIG, Flags, ProfileFile, Settings};
use agent::{Client, ClientError, Kind, Outcome};
use clap::{Args, Parser, Subcommand};
use launcher_core::request::Lifecycle;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "microvm",
    version,
    about = "Ask the governed launcher for AWS Lambda MicroVMs (SigV4 to its Function URL, or a local bearer token)",
    after_help = "Exit codes: 0 executed, 1 error, 2 usage, 3 pending, 4 denied, 5 blocked, 6 expired, 7 failed."
)]
struct Cli {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Where the launcher is and how to authenticate.
#[derive(Args)]
struct ConnArgs {
    /// The launcher's base URL (MICROVM_URL, or the profile's `url`).
    #[arg(long, global = true)]
    url: Option<String>,
    /// SigV4 region, when the URL is not a Function URL host (MICROVM_REGION).
    #[arg(long, global = true)]
    region: Option<String>,
    /// Profile in ~/.config/microvm/config.toml or MICROVM_CONFIG (MICROVM_PROFILE).
    #[arg(long, global = true)]
    profile: Option<String>,
    /// `iam` (SigV4) or `bearer` (MICROVM_AUTH; default: bearer when a token is given).
    #[arg(long, global = true)]
    auth: Option<String>,
    /// File holding a local launcher's bearer token (or MICROVM_TOKEN / MICROVM_TOKEN_FILE).
    #[arg(long, global = true)]
    token_file: Option<String>,
    /// AWS profile for credentials (MICROVM_AWS_PROFILE; default: the standard chain).
    #[arg(long, global = true)]
    aws_profile: Option<String>,
}

/// How to report and wait.
#[derive(Args, Clone)]
struct AskOpts {
    /// Makes a retried auto-approved ask return the first answer.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Follow a pending approval until a human decides (or --timeout).
    #[arg(long)]
    wait: bool,
    /// Stop waiting after this many seconds (exit 3, still pending). Default: no limit.
    #[arg(long, requires = "wait")]
    timeout: Option<u64>,
    /// Seconds between status checks while waiting (grows to 15).
    #[arg(long, default_value_t = 2.0)]
    poll_seconds: f64,
    /// Print the answer as JSON (with `outcome` and `exit_code`).
    #[arg(long)]
    json: bool,
    /// No progress line, even on a terminal.
    #[arg(long, short)]
    quiet: bool,
    /// Write a token to this new file (mode 0600) instead of printing it.
    #[arg(long)]
    save_token: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a MicroVM (RunMicrovm).
    Run {
        #[command(flatten)]
        args: RunArgs,
        #[command(flatten)]
        opts: AskOpts,
    },
    /// An auth token for a MicroVM's ports.
    AuthToken {
        #[command(flatten)]
        args: AuthTokenArgs,
        #[command(flatten)]
        opts: AskOpts,
    },
    /// A shell token (always needs approval).
    ShellToken {
        #[command(flatten)]
        args: ShellTokenArgs,
        #[command(flatten)]
        opts: AskOpts,
    },
    /// Suspend a MicroVM.
    Suspend {
        #[command(flatten)]
        args: LifecycleArgs,
        #[command(flatten)]
        opts: AskOpts,
    },
    /// Resume a MicroVM.
    Resume {
        #[command(flatten)]
        args: LifecycleArgs,
        #[command(flatten)]
        opts: AskOpts,
    },
    /// Terminate a MicroVM.
    Terminate {
        #[command(flatten)]
        args: LifecycleArgs,
        #[command(flatten)]
        opts: AskOpts,
    },
    /// The state of a request (`req_…`); with --wait, until it is decided.
    Status {
        request_id: String,
        #[command(flatten)]
        opts: AskOpts,
    },
    /// Serve the same operations as MCP tools on stdin/stdout.
    Mcp,
}

fn profile_path(env: &HashMap<String, String>) -> Option<String> {
    if let Some(p) = env.get(ENV_CONFIG) {
        return Some(p.clone());
    }
    let base = env
        .get("XDG_CONFIG_HOME")
        .cloned()
        .or_else(|| env.get("HOME").map(|h| format!("{h}/.config")))?;
    let p = format!("{base}/microvm/config.toml");
    std::path::Path::new(&p).exists().then_some(p)
}

fn settings(conn: ConnArgs, env: &HashMap<String, String>) -> Result<Settings, ClientError> {
    let flags = Flags {
        url: conn.url,
        region: conn.region,
        profile: conn.profile,
        auth: conn.auth,
        token_file: conn.token_file,
        aws_profile: conn.aws_profile,
    };
    let path = profile_path(env);
    let text = match &path {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
            ClientError::Config(agent::config::ConfigError {
                source_name: ENV_CONFIG.into(),
                message: format!("reading profile file {p}: {e}"),
            })
        })?),
        None => None,
    };
    let file = match (&path, &text) {
        (Some(path), Some(text)) => Some(ProfileFile { path, text }),
        _ => None,
    };
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| e.to_string());
    Ok(Settings::from_parts(&flags, env, file, &read)?)
}

fn save_token(path: &str, token: &str) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    f.write_all(token.as_bytes())?;
    f.write_all(b"\n")
}

/// The human-readable report of an outcome, on stdout.
fn print_human(o: &Outcome, saved: Option<&str>) {
    let id = o.request_id.as_deref().unwrap_or("-");
    let rule = o.rule_id().unwrap_or("-");
    let reason = printable(o.reason().unwrap_or(""));
    match o.kind {
        Kind::Executed => {
            let op = o
                .answer
                .pointer("/result/operation")
                .or_else(|| o.answer.get("operation"))
                .and_then(|v| v.as_str())
                .unwrap_or("request");
            println!("executed: {} (request {id}, rule {rule})", printable(op));
            if let Some(r) = o.answer.get("result").and_then(|r| r.as_object()) {
                for (k, v) in r {
                    if k != "operation" && k != "attempt_request_ids" {
                        let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                        println!("{k}: {}", printable(&v));
                    }
                }
            }
            if o.answer.get("replayed") == Some(&serde_json::Value::Bool(true)) {
                println!(
                    "replayed: true (the first answer to this Idempotency-Key; a token is never returned twice)"
                );
            }
            if o.answer.get("token_already_returned") == Some(&serde_json::Value::Bool(true)) {
                println!("token_already_returned: true");
            }
            match (o.token(), saved) {
                (Some(_), Some(p)) => println!("token saved to {p}"),
                (Some(t), None) => println!("token: {t}"),
                _ => {}
            }
        }
        Kind::Pending => {
            println!("pending: waiting for approval in Contro1: {id} (rule {rule}: {reason})");
            println!("check back: microvm status {id} --wait");
        }
        Kind::Blocked => println!("blocked by policy rule {rule}: {reason}"),
        Kind::Denied | Kind::Expired | Kind::Failed => {
            let err = o
                .answer
                .get("error")
                .and_then(|e| e.as_str())
                .map(printable)
                .unwrap_or(reason);
            println!("{}: request {id} (rule {rule}) {err}", o.kind.as_str());
        }
        Kind::Error => {}
    }
}

async fn ask(client: &Client, first: Result<Outcome, ClientError>, opts: &AskOpts) -> u8 {
    let mut result = first;
    if opts.wait
        && let Ok(o) = &result
        && !o.kind.is_final()
    {
        let show = !opts.quiet && std::io::stderr().is_terminal();
        let mut progress = |id: &str, t: Duration| {
            if show {
                eprint!(
                    "\r\x1b[Kwaiting for approval in Contro1: {}, {}",
                    printable(id),
                    elapsed(t)
                );
                let _ = std::io::stderr().flush();
            }
        };
        let poll = Duration::from_secs_f64(opts.poll_seconds.clamp(0.1, 60.0));
        let timeout = opts.timeout.map(Duration::from_secs);
        result = client.wait(o.clone(), poll, timeout, &mut progress).await;
        if show {
            eprint!("\r\x1b[K");
        }
    }
    match result {
        Ok(o) => {
            let mut saved = None;
            if let (Some(path), Some(token)) = (&opts.save_token, o.token()) {
                if let Err(e) = save_token(path, token) {
                    // The token is handed out once: never lose it.
                    eprintln!(
                        "error: could not write the token to {path} ({e}); it is printed instead"
                    );
                } else {
                    saved = Some(path.as_str());
                }
            }
            if opts.json {
                println!("{}", o.to_json(saved));
            } else {
                print_human(&o, saved);
            }
            o.kind.exit_code()
        }
        Err(e) => {
            if opts.json {
                println!("{}", e.to_json());
            }
            eprintln!("error: {e}");
            Kind::Error.exit_code()
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    let opts_json = match &cli.cmd {
        Cmd::Run { opts, .. }
        | Cmd::AuthToken { opts, .. }
        | Cmd::ShellToken { opts, .. }
        | Cmd::Suspend { opts, .. }
        | Cmd::Resume { opts, .. }
        | Cmd::Terminate { opts, .. }
        | Cmd::Status { opts, .. } => opts.json,
        Cmd::Mcp => false,
    };
    let settings = match settings(cli.conn, &env) {
        Ok(s) => s,
        Err(e) => {
            if opts_json {
                println!("{}", e.to_json());
            }
            eprintln!("error: {e}");
            return ExitCode::from(Kind::Error.exit_code());
        }
    };
    let owner = settings.owner.clone();
    let owner = owner.as_deref();
    let client = Client::new(settings).await;
    let code = match cli.cmd {
        Cmd::Mcp => match agent::mcp::serve_stdio(client).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: MCP server: {e}");
                1
            }
        },
        Cmd::Status { request_id, opts } => {
            let first = client.status(&request_id).await;
            ask(&client, first, &opts).await
        }
        Cmd::Run { args, opts } => {
            let first = client
                .submit(&args.action(owner), opts.idempotency_key.as_deref())
                .await;
            ask(&client, first, &opts).await
        }
        Cmd::AuthToken { args, opts } => {
            let first = client
                .submit(&args.action(owner), opts.idempotency_key.as_deref())
                .await;
            ask(&client, first, &opts).await
        }
        Cmd::ShellToken { args, opts } => {
            let first = client
                .submit(&args.action(owner), opts.idempotency_key.as_deref())
                .await;
            ask(&client, first, &opts).await
        }
        Cmd::Suspend { args, opts } => {
            lifecycle(&client, args, Lifecycle::Suspend, owner, &opts).await
        }
        Cmd::Resume { args, opts } => {
            lifecycle(&client, args, Lifecycle::Resume, owner, &opts).await
        }
        Cmd::Terminate { args, opts } => {
            lifecycle(&client, args, Lifecycle::Terminate, owner, &opts).await
        }
    };
    ExitCode::from(code)
}

async fn lifecycle(
    client: &Client,
    args: LifecycleArgs,
    op: Lifecycle,
    owner: Option<&str>,
    opts: &AskOpts,
) -> u8 {
    let first = client
        .submit(&args.action(op, owner), opts.idempotency_key.as_deref())
        .await;
    ask(client, first, opts).await
}
