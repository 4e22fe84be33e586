//! The `microvm` subcommands' flags: the launcher's request fields, one
//! flag each, turned into the launcher's own request types
//! ([`launcher_core::request`]), so a field the launcher adds or renames
//! breaks this build instead of a request.

use clap::Args;
use launcher_core::request::{
    Action, AllPorts, AuthTokenRequest, Lifecycle, LifecycleRequest, NetworkEgress, PortSpec,
    Ports, RunRequest, ShellTokenRequest,
};
use serde_json::Value;

/// Fields every ask carries.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Why (shown to the reviewer in Contro1, and audited).
    #[arg(long)]
    pub reason: String,
    /// The owning team (default: MICROVM_OWNER, the profile's `owner`).
    #[arg(long)]
    pub owner: Option<String>,
    #[arg(long)]
    pub environment: Option<String>,
    /// Your own id for this ask (a CI run id), carried into the audit trail.
    #[arg(long)]
    pub correlation_id: Option<String>,
    /// A JSON object attached to the ask (at most 4096 bytes).
    #[arg(long, value_parser = parse_metadata)]
    pub metadata: Option<Value>,
    /// A claim only: the launcher checks it against who you are.
    #[arg(long)]
    pub agent_id: Option<String>,
}

/// `microvm run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The MicroVM image ARN (arn:aws:lambda:REGION:ACCOUNT:microvm-image:NAME).
    #[arg(long)]
    pub image_arn: String,
    /// An image version (default: the image's default version).
    #[arg(long)]
    pub image_version: Option<String>,
    /// The role the MicroVM runs as.
    #[arg(long, visible_alias = "role")]
    pub execution_role_arn: String,
    /// Longest run, 1..=28800 seconds.
    #[arg(long, visible_alias = "duration")]
    pub duration_seconds: u32,
    /// none | internet | vpc | private.
    #[arg(long, default_value = "none", value_parser = parse_egress)]
    pub network_egress: NetworkEgress,
    /// Allow shell access (always needs a human's approval).
    #[arg(long)]
    pub shell_access: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `microvm auth-token MICROVM_ID`.
#[derive(Debug, Clone, Args)]
pub struct AuthTokenArgs {
    pub microvm_id: String,
    /// Ports the token may reach: `8080,9000-9010`, or `all`.
    #[arg(long, value_parser = parse_ports)]
    pub ports: Ports,
    /// Token lifetime, 60..=86400 seconds.
    #[arg(long, visible_alias = "ttl")]
    pub token_ttl_seconds: u32,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `microvm shell-token MICROVM_ID`.
#[derive(Debug, Clone, Args)]
pub struct ShellTokenArgs {
    pub microvm_id: String,
    /// Token lifetime, 60..=86400 seconds.
    #[arg(long, visible_alias = "ttl")]
    pub token_ttl_seconds: u32,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `microvm suspend|resume|terminate MICROVM_ID`.
#[derive(Debug, Clone, Args)]
pub struct LifecycleArgs {
    pub microvm_id: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn metadata_or_empty(m: Option<Value>) -> Value {
    m.unwrap_or_else(|| Value::Object(Default::default()))
}

fn owner(given: Option<String>, default: Option<&str>) -> Option<String> {
    given.or_else(|| default.map(str::to_string))
}

impl RunArgs {
    pub fn action(self, default_owner: Option<&str>) -> Action {
        let c = self.common;
        Action::Run(RunRequest {
            agent_id: c.agent_id,
            owner: owner(c.owner, default_owner),
            reason: c.reason,
            environment: c.environment,
            image_arn: self.image_arn,
            image_version: self.image_version,
            execution_role_arn: self.execution_role_arn,
            duration_seconds: self.duration_seconds,
            network_egress: self.network_egress,
            shell_access: self.shell_access,
            correlation_id: c.correlation_id,
            metadata: metadata_or_empty(c.metadata),
        })
    }
}

impl AuthTokenArgs {
    pub fn action(self, default_owner: Option<&str>) -> Action {
        let c = self.common;
        Action::AuthToken {
            microvm_id: self.microvm_id,
            request: AuthTokenRequest {
                agent_id: c.agent_id,
                owner: owner(c.owner, default_owner),
                reason: c.reason,
                environment: c.environment,
                ports: self.ports,
                token_ttl_seconds: self.token_ttl_seconds,
                correlation_id: c.correlation_id,
                metadata: metadata_or_empty(c.metadata),
            },
        }
    }
}

impl ShellTokenArgs {
    pub fn action(self, default_owner: Option<&str>) -> Action {
        let c = self.common;
        Action::ShellToken {
            microvm_id: self.microvm_id,
            request: ShellTokenRequest {
                agent_id: c.agent_id,
                owner: owner(c.owner, default_owner),
                reason: c.reason,
                environment: c.environment,
                token_ttl_seconds: self.token_ttl_seconds,
                correlation_id: c.correlation_id,
                metadata: metadata_or_empty(c.metadata),
            },
        }
    }
}

impl LifecycleArgs {
    pub fn action(self, op: Lifecycle, default_owner: Option<&str>) -> Action {
        let c = self.common;
        Action::Lifecycle {
            microvm_id: self.microvm_id,
            op,
            request: LifecycleRequest {
                agent_id: c.agent_id,
                owner: owner(c.owner, default_owner),
                reason: c.reason,
                environment: c.environment,
                correlation_id: c.correlation_id,
                metadata: metadata_or_empty(c.metadata),
            },
        }
    }
}

/// `none`, `internet`, `vpc` or `private`.
pub fn parse_egress(s: &str) -> Result<NetworkEgress, String> {
    serde_json::from_value(Value::String(s.to_string()))
        .map_err(|_| format!("`{s}` is not one of none, internet, vpc, private"))
}

/// `all`, or ports and ranges separated by commas: `8080,9000-9010`.
pub fn parse_ports(s: &str) -> Result<Ports, String> {
    if s.trim() == "all" {
        return Ok(Ports::All(AllPorts::All));
    }
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|_| format!("`{}` is not a port (1..=65535)", p.trim()))
    };
    let mut out = Vec::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => out.push(PortSpec::Range {
                start: port(a)?,
                end: port(b)?,
            }),
            None => out.push(PortSpec::Port(port(part)?)),
        }
    }
    Ok(Ports::Listed(out))
}

/// A JSON object.
pub fn parse_metadata(s: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))?;
    if !v.is_object() {
        return Err("must be a JSON object".into());
    }
    Ok(v)
}

/// `s` without control characters (terminal escapes in text the launcher
/// relays, such as a policy reason, are not passed to the terminal).
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// `2 m 10 s`, `45 s`, `1 h 3 m`.
pub fn elapsed(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} m {} s", s / 60, s % 60),
        _ => format!("{} h {} m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_as_the_launcher_reads_them() {
        assert_eq!(parse_ports("all").unwrap(), Ports::All(AllPorts::All));
        assert_eq!(
            serde_json::to_value(parse_ports("8080, 9000-9010").unwrap()).unwrap(),
            serde_json::json!([8080, {"start": 9000, "end": 9010}])
        );
        assert!(parse_ports("http").unwrap_err().contains("`http`"));
        assert!(parse_ports("70000").is_err());
    }

    #[test]
    fn egress_names_the_choices_when_wrong() {
        assert_eq!(parse_egress("vpc").unwrap(), NetworkEgress::Vpc);
        assert!(parse_egress("everywhere").unwrap_err().contains("private"));
    }

    #[test]
    fn elapsed_reads_like_the_progress_line() {
        use std::time::Duration;
        assert_eq!(elapsed(Duration::from_secs(130)), "2 m 10 s");
        assert_eq!(elapsed(Duration::from_secs(9)), "9 s");
        assert_eq!(elapsed(Duration::from_secs(3780)), "1 h 3 m");
    }

    #[test]
    fn printable_removes_terminal_escapes() {
        assert_eq!(printable("a\u{1b}[2Jb\n"), "a\u{FFFD}[2Jb\u{FFFD}");
    }
}
