//! `microvm mcp`: the launcher's operations as Model Context Protocol tools
//! over stdio, with the official Rust SDK (`rmcp`).
//!
//! Every tool answers at once: a call that needs a human's approval returns
//! `outcome: "pending"` with the `request_id` and a `next_step` saying to
//! call `get_request_status` later; no call waits for a human. The result's
//! `structuredContent` is the launcher's answer plus `outcome`, `exit_code`
//! (as `microvm` would exit) and `next_step`; its text content is the same
//! JSON. `isError` is true for `blocked`, `denied`, `expired`, `failed`
//! and `error`. A token (auth or shell) is in `token`, once: the launcher
//! erases it when it is handed out, and a later status shows
//! `token_already_returned: true`.

use crate::cli::parse_ports;
use crate::client::{Client, ClientError};
use crate::outcome::{Kind, Outcome};
use launcher_core::request::{
    Action, AuthTokenRequest, Lifecycle, LifecycleRequest, NetworkEgress, RunRequest,
    ShellTokenRequest,
};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Where a MicroVM may send traffic.
#[derive(Debug, Clone, Copy, Deserialize, rmcp::schemars::JsonSchema, Default)]
#[schemars(crate = "rmcp::schemars")]
#[serde(rename_all = "lowercase")]
pub enum Egress {
    #[default]
    None,
    Internet,
    Vpc,
    Private,
}

impl From<Egress> for NetworkEgress {
    fn from(e: Egress) -> NetworkEgress {
        match e {
            Egress::None => NetworkEgress::None,
            Egress::Internet => NetworkEgress::Internet,
            Egress::Vpc => NetworkEgress::Vpc,
            Egress::Private => NetworkEgress::Private,
        }
    }
}

/// Fields of every ask.
#[derive(Debug, Clone, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct RunParams {
    /// Why the MicroVM is needed; a human reviewer may read it.
    pub reason: String,
    /// The MicroVM image ARN (arn:aws:lambda:REGION:ACCOUNT:microvm-image:NAME).
    pub image_arn: String,
    /// An image version; omit for the image's default version.
    pub image_version: Option<String>,
    /// The IAM role ARN the MicroVM runs as.
    pub execution_role_arn: String,
    /// Longest run in seconds, 1 to 28800.
    pub duration_seconds: u32,
    /// Network egress: none (default), internet, vpc or private. Anything but none needs a human's approval.
    #[serde(default)]
    pub network_egress: Egress,
    /// Shell access into the MicroVM; always needs a human's approval.
    #[serde(default)]
    pub shell_access: bool,
    /// The owning team (defaults to the configured owner).
    pub owner: Option<String>,
    pub environment: Option<String>,
    /// Your own id for this task, carried into the audit trail.
    pub correlation_id: Option<String>,
    /// A small JSON object attached to the ask (at most 4096 bytes).
    pub metadata: Option<Map<String, Value>>,
    /// Makes a retried auto-approved ask return the first answer instead of starting a second MicroVM.
    pub idempotency_key: Option<String>,
}

/// An auth token for a MicroVM's ports.
#[derive(Debug, Clone, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct AuthTokenParams {
    /// The MicroVM id (from run_microvm's result.microvm_id).
    pub microvm_id: String,
    /// Why the token is needed.
    pub reason: String,
    /// Ports the token may reach: "8080", "8080,9000-9010", or "all" (all ports needs approval).
    pub ports: String,
    /// Token lifetime in seconds, 60 to 86400.
    pub token_ttl_seconds: u32,
    pub owner: Option<String>,
    pub environment: Option<String>,
    pub correlation_id: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub idempotency_key: Option<String>,
}

/// A shell token (always needs a human's approval).
#[derive(Debug, Clone, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct ShellTokenParams {
    /// The MicroVM id.
    pub microvm_id: String,
    /// Why a shell is needed.
    pub reason: String,
    /// Token lifetime in seconds, 60 to 86400.
    pub token_ttl_seconds: u32,
    pub owner: Option<String>,
    pub environment: Option<String>,
    pub correlation_id: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub idempotency_key: Option<String>,
}

/// Suspend, resume or terminate a MicroVM.
#[derive(Debug, Clone, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct LifecycleParams {
    /// The MicroVM id.
    pub microvm_id: String,
    /// Why.
    pub reason: String,
    pub owner: Option<String>,
    pub environment: Option<String>,
    pub correlation_id: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub idempotency_key: Option<String>,
}

/// A request to check on.
#[derive(Debug, Clone, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct StatusParams {
    /// The request_id a pending answer gave (req_...).
    pub request_id: String,
}

fn meta(m: Option<Map<String, Value>>) -> Value {
    Value::Object(m.unwrap_or_default())
}

/// The MCP server: one launcher client, the tools below.
#[derive(Clone)]
pub struct MicrovmServer {
    client: Arc<Client>,
    tool_router: ToolRouter<MicrovmServer>,
}

impl std::fmt::Debug for MicrovmServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MicrovmServer").finish_non_exhaustive()
    }
}

/// What the model should do next, by outcome.
fn next_step(o: &Outcome) -> String {
    let id = o.request_id.as_deref().unwrap_or("");
    match o.kind {
        Kind::Pending => format!(
            "Nothing has run yet: a human must approve this in Contro1. Call get_request_status with request_id \"{id}\" later (in a minute or more) to learn the decision. Do not submit the same ask again."
        ),
        Kind::Executed if o.token().is_some() => "Done. The token is in `token` and is handed out only once: keep it for this task; it is never returned again.".into(),
        Kind::Executed => "Done.".into(),
        Kind::Blocked => format!(
            "The launcher's policy refused this (rule {}); no human was asked. Do not retry it unchanged: change what the reason names, or ask the user.",
            o.rule_id().unwrap_or("unknown")
        ),
        Kind::Denied => "A reviewer denied this (or it was cancelled). Do not retry it unchanged; ask the user.".into(),
        Kind::Expired => "Nobody decided in time; the request expired. Ask the user before asking again.".into(),
        Kind::Failed => "Approved, but the AWS call failed; see `error`.".into(),
        Kind::Error => String::new(),
    }
}

/// The tool result for an outcome.
pub fn outcome_result(o: &Outcome) -> CallToolResult {
    let mut v = o.to_json(None);
    v["next_step"] = json!(next_step(o));
    if matches!(o.kind, Kind::Executed | Kind::Pending) {
        CallToolResult::structured(v)
    } else {
        CallToolResult::structured_error(v)
    }
}

/// The tool result for an ask that got no outcome.
pub fn error_result(e: &ClientError) -> CallToolResult {
    CallToolResult::structured_error(e.to_json())
}

#[tool_router]
impl MicrovmServer {
    pub fn new(client: Client) -> MicrovmServer {
        MicrovmServer {
            client: Arc::new(client),
            tool_router: Self::tool_router(),
        }
    }

    fn owner(&self, given: Option<String>) -> Option<String> {
        given.or_else(|| self.client.settings().owner.clone())
    }

    async fn ask(&self, action: Action, key: Option<String>) -> CallToolResult {
        match self.client.submit(&action, key.as_deref()).await {
            Ok(o) => outcome_result(&o),
            Err(e) => error_result(&e),
        }
    }

    #[tool(
        description = "Start an AWS Lambda MicroVM through the governed launcher. Within policy it runs at once (outcome executed, result.microvm_id); otherwise a human approves it in Contro1 (outcome pending: call get_request_status later), or policy blocks it (outcome blocked, with the rule)."
    )]
    async fn run_microvm(
        &self,
        Parameters(p): Parameters<RunParams>,
    ) -> Result<CallToolResult, rmcp::ErrorData> {
        let action = Action::Run(RunRequest {
            agent_id: None,
            owner: self.owner(p.owner),
            reason: p.reason,
            environment: p.environment,
            image_arn: p.image_arn,
            image_version: p.image_version,
            execution_role_arn: p.execution_role_arn,
            duration_seconds: p.duration_seconds,
            network_egress: p.network_egress.into(),
            shell_access: p.shell_access,
            correlation_id: p.correlation_id,
            metadata: meta(p.metadata),
        });
        Ok(self.ask(action, p.idempotency_key).await)
    }

    #[tool(
        description = "Get an auth token for ports of a MicroVM the launcher started. Within policy the token is in the result's `token` at once (handed out only once); broader asks wait for a human (outcome pending)."
    )]
    async fn create_auth_token(
        &self,
        Parameters(p): Parameters<AuthTokenParams>,
    ) -> Result<CallToolResult, rmcp::ErrorData> {
        let ports = match parse_ports(&p.ports) {
            Ok(ports) => ports,
            Err(m) => {
                return Ok(error_result(&ClientError::Invalid {
                    field: "ports".into(),
                    message: m,
                }));
            }
        };
        let action = Action::AuthToken {
            microvm_id: p.microvm_id,
            request: AuthTokenRequest {
                agent_id: None,
                owner: self.owner(p.owner),
                reason: p.reason,
                environment: p.environment,
                ports,
                token_ttl_seconds: p.token_ttl_seconds,
                correlation_id: p.correlation_id,
                metadata: meta(p.metadata),
            },
        };
        Ok(self.ask(action, p.idempotency_key).await)
    }

    #[tool(
        description = "Ask for a shell token into a MicroVM. Always needs a human's approval: the result is outcome pending with a request_id; call get_request_status later, and the token is in its `token` once approved (handed out only once)."
    )]
    async fn create_shell_token(
        &self,
        Parameters(p): Parameters<ShellTokenParams>,
    ) -> Result<CallToolResult, rmcp::ErrorData> {
        let action = Action::ShellToken {
            microvm_id: p.microvm_id,
            request: ShellTokenRequest {
                agent_id: None,
                owner: self.owner(p.owner),
                reason: p.reason,
                environment: p.environment,
                token_ttl_seconds: p.token_ttl_seconds,
                correlation_id: p.correlation_id,
                metadata: meta(p.metadata),
            },
        };
        Ok(self.ask(action, p.idempotency_key).await)
    }

    async fn lifecycle(&self, op: Lifecycle, p: LifecycleParams) -> CallToolResult {
        let action = Action::Lifecycle {
            microvm_id: p.microvm_id,
            op,
            request: LifecycleRequest {
                agent_id: None,
                owner: self.owner(p.owner),
                reason: p.reason,
                environment: p.environment,
                correlation_id: p.correlation_id,
                metadata: meta(p.metadata),
            },
        };
        self.ask(action, p.idempotency_key).await
    }

    #[tool(
        description = "Suspend a MicroVM. Always needs a human's approval (outcome pending; check with get_request_status)."
    )]
    async fn suspend_microvm(
        &self,
        Parameters(p): Parameters<LifecycleParams>,
    ) -> Result<CallToolResult, rmcp::ErrorData> {
        Ok(self.lifecycle(Lifecycle::Suspend, p).await)
    }

    #[tool(
        description = "Resume a suspended MicroVM. Always needs a human's approval (outcome pending; check with get_request_status)."
    )]
    async fn resume_microvm(
        &self,
        Parameters(p): Parameters<LifecycleParams>,
    ) -> Result<CallToolResult, rmcp::ErrorData> {
        Ok(self.lifecycle(Lifecycle::Resume, p).await)
    }

    #[tool(
        description = "Terminate a MicroVM. The agent that started it may always terminate it (executed at once); another agent's MicroVM needs approval."
    )]
    async fn terminate_microvm(
        &self,
        Parameters(p): Parameters<LifecycleParams>,
    ) -> Result<CallToolResult, rmcp::ErrorData> {
        Ok(self.lifecycle(Lifecycle::Terminate, p).await)
    }

    #[tool(
        description = "Check a request that was pending: outcome pending (still waiting for a human; check again later), executed (with `result`, and `token` the first time for a token), denied, expired or failed. Answers at once; never waits."
    )]
    async fn get_request_status(
        &self,
        Parameters(p): Parameters<StatusParams>,
    ) -> Result<CallToolResult, rmcp::ErrorData> {
        Ok(match self.client.status(&p.request_id).await {
            Ok(o) => outcome_result(&o),
            Err(e) => error_result(&e),
        })
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for MicrovmServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("microvm", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "AWS Lambda MicroVMs through a governed launcher: every ask is checked by policy, and some need a human's approval in Contro1. A pending result is not a failure: call get_request_status with its request_id later. Tokens are returned once, in `token`.",
            )
    }
}

/// Serve the tools on stdin/stdout until the client closes the stream.
///
/// Standard input and output are opened as `tokio::fs::File`s (duplicates of
/// descriptors 0 and 1), which keeps tokio's `io-std` feature, and with it a
/// second build of tokio and everything above it, out of the workspace.
pub async fn serve_stdio(client: Client) -> anyhow::Result<()> {
    use std::os::fd::AsFd;
    let stdin = std::io::stdin().as_fd().try_clone_to_owned()?;
    let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
    let transport = (
        tokio::fs::File::from_std(std::fs::File::from(stdin)),
        tokio::fs::File::from_std(std::fs::File::from(stdout)),
    );
    let service = MicrovmServer::new(client).serve(transport).await?;
    service.waiting().await?;
    Ok(())
}
