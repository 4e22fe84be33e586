//! What an agent asks the launcher for, as plain types, and the validation
//! that turns a malformed ask into a 4xx naming the field.
//!
//! Bodies are decoded with `deny_unknown_fields` so a typo (`duraton_seconds`)
//! is an error naming the key rather than a silently ignored field. Values that
//! the *policy* judges (a missing owner, an unregistered image, a production
//! role) are not validation errors: they are decisions, audited as such.

use crate::grammar;
use serde::{Deserialize, Serialize};
use shared_core::GovernedOp;
use std::fmt;

pub use crate::grammar::MAX_MICROVM_ID_LEN;
/// RunMicrovm accepts `maximumDurationInSeconds` in 1..=28800.
pub const MAX_DURATION_SECONDS: u32 = 28_800;
/// Longest free-text field (owner, reason, environment, correlation id).
pub const MAX_TEXT_LEN: usize = 512;
/// Largest `metadata` object, serialised.
pub const MAX_METADATA_BYTES: usize = 4096;
/// The header that makes an auto-approved ask safe to retry.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";
/// Longest `Idempotency-Key` (1..= this many visible ASCII characters).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Whether `key` is an `Idempotency-Key` the launcher accepts.
pub fn idempotency_key_ok(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_IDEMPOTENCY_KEY_LEN
        && key.bytes().all(|b| b.is_ascii_graphic())
}

/// A request field failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("field `{field}`: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Where a MicroVM may send traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NetworkEgress {
    #[default]
    None,
    Internet,
    Vpc,
    Private,
}

impl fmt::Display for NetworkEgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetworkEgress::None => "none",
            NetworkEgress::Internet => "internet",
            NetworkEgress::Vpc => "vpc",
            NetworkEgress::Private => "private",
        })
    }
}

/// One entry of a token's port scope: a port or an inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortSpec {
    Port(u16),
    Range { start: u16, end: u16 },
}

/// The ports a token may reach: a list, or the string `"all"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Ports {
    Listed(Vec<PortSpec>),
    All(AllPorts),
}

/// The literal `"all"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllPorts {
    All,
}

fn default_metadata() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// `POST /microvms/run-request`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// A claim only: checked against the authenticated agent.
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    pub reason: String,
    #[serde(default)]
    pub environment: Option<String>,
    pub image_arn: String,
    #[serde(default)]
    pub image_version: Option<String>,
    pub execution_role_arn: String,
    pub duration_seconds: u32,
    #[serde(default)]
    pub network_egress: NetworkEgress,
    #[serde(default)]
    pub shell_access: bool,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default = "default_metadata")]
    pub metadata: serde_json::Value,
}

/// `POST /microvms/{id}/auth-token-request`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthTokenRequest {
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    pub reason: String,
    #[serde(default)]
    pub environment: Option<String>,
    pub ports: Ports,
    pub token_ttl_seconds: u32,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default = "default_metadata")]
    pub metadata: serde_json::Value,
}

/// `POST /microvms/{id}/shell-token-request`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellTokenRequest {
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    pub reason: String,
    #[serde(default)]
    pub environment: Option<String>,
    pub token_ttl_seconds: u32,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default = "default_metadata")]
    pub metadata: serde_json::Value,
}

/// `POST /microvms/{id}/suspend|resume|terminate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleRequest {
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    pub reason: String,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default = "default_metadata")]
    pub metadata: serde_json::Value,
}

/// Which lifecycle call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    Suspend,
    Resume,
    Terminate,
}

/// One governed action, as stored in the pending table and executed later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "input", rename_all = "snake_case")]
pub enum Action {
    Run(RunRequest),
    AuthToken {
        microvm_id: String,
        request: AuthTokenRequest,
    },
    ShellToken {
        microvm_id: String,
        request: ShellTokenRequest,
    },
    Lifecycle {
        microvm_id: String,
        op: Lifecycle,
        request: LifecycleRequest,
    },
}

/// The fields every action carries.
#[derive(Debug, Clone, Copy)]
pub struct Common<'a> {
    pub agent_id: Option<&'a str>,
    pub owner: Option<&'a str>,
    pub reason: &'a str,
    pub environment: Option<&'a str>,
    pub correlation_id: Option<&'a str>,
    pub metadata: &'a serde_json::Value,
}

impl Action {
    pub fn op(&self) -> GovernedOp {
        match self {
            Action::Run(_) => GovernedOp::RunMicrovm,
            Action::AuthToken { .. } => GovernedOp::CreateMicrovmAuthToken,
            Action::ShellToken { .. } => GovernedOp::CreateMicrovmShellAuthToken,
            Action::Lifecycle { op, .. } => match op {
                Lifecycle::Suspend => GovernedOp::SuspendMicrovm,
                Lifecycle::Resume => GovernedOp::ResumeMicrovm,
                Lifecycle::Terminate => GovernedOp::TerminateMicrovm,
            },
        }
    }

    /// The `context.action_type` Contro1's connector protocol uses.
    pub fn action_type(&self) -> &'static str {
        match self.op() {
            GovernedOp::RunMicrovm => "run_microvm",
            GovernedOp::CreateMicrovmAuthToken => "create_auth_token",
            GovernedOp::CreateMicrovmShellAuthToken => "create_shell_token",
            GovernedOp::SuspendMicrovm => "suspend",
            GovernedOp::ResumeMicrovm => "resume",
            GovernedOp::TerminateMicrovm => "terminate",
        }
    }

    /// The MicroVM the action targets (none for a run).
    pub fn target(&self) -> Option<&str> {
        match self {
            Action::Run(_) => None,
            Action::AuthToken { microvm_id, .. }
            | Action::ShellToken { microvm_id, .. }
            | Action::Lifecycle { microvm_id, .. } => Some(microvm_id),
        }
    }

    pub fn common(&self) -> Common<'_> {
        macro_rules! c {
            ($r:expr) => {
                Common {
                    agent_id: $r.agent_id.as_deref(),
                    owner: $r.owner.as_deref(),
                    reason: &$r.reason,
                    environment: $r.environment.as_deref(),
                    correlation_id: $r.correlation_id.as_deref(),
                    metadata: &$r.metadata,
                }
            };
        }
        match self {
            Action::Run(r) => c!(r),
            Action::AuthToken { request, .. } => c!(request),
            Action::ShellToken { request, .. } => c!(request),
            Action::Lifecycle { request, .. } => c!(request),
        }
    }

    /// The owner, trimmed; `None` when missing or blank (a policy block, not
    /// a validation error).
    pub fn owner(&self) -> Option<&str> {
        self.common().owner.map(str::trim).filter(|o| !o.is_empty())
    }

    /// Check the shape of every field. Policy questions are left to
    /// [`crate::policy::evaluate`].
    pub fn validate(&self) -> Result<(), FieldError> {
        let c = self.common();
        if let Some(id) = self.target() {
            validate_microvm_id(id)?;
        }
        text("reason", Some(c.reason), true)?;
        text("owner", c.owner, false)?;
        text("environment", c.environment, false)?;
        text("correlation_id", c.correlation_id, false)?;
        text("agent_id", c.agent_id, false)?;
        if !c.metadata.is_object() {
            return Err(FieldError::new("metadata", "must be a JSON object"));
        }
        if c.metadata.to_string().len() > MAX_METADATA_BYTES {
            return Err(FieldError::new(
                "metadata",
                format!("must serialise to at most {MAX_METADATA_BYTES} bytes"),
            ));
        }
        match self {
            Action::Run(r) => {
                grammar::image_arn(&r.image_arn).map_err(|e| FieldError::new("image_arn", e))?;
                if let Some(v) = &r.image_version {
                    grammar::image_version(v).map_err(|e| FieldError::new("image_version", e))?;
                }
                grammar::role_arn(&r.execution_role_arn)
                    .map_err(|e| FieldError::new("execution_role_arn", e))?;
                if r.duration_seconds == 0 || r.duration_seconds > MAX_DURATION_SECONDS {
                    return Err(FieldError::new(
                        "duration_seconds",
                        format!("must be between 1 and {MAX_DURATION_SECONDS}"),
                    ));
                }
            }
            Action::AuthToken { request, .. } => {
                token_ttl(request.token_ttl_seconds)?;
                if let Ports::Listed(list) = &request.ports {
                    if list.is_empty() {
                        return Err(FieldError::new(
                            "ports",
                            "must list at least one port, or be \"all\"",
                        ));
                    }
                    for p in list {
                        match *p {
                            PortSpec::Port(0) => {
                                return Err(FieldError::new("ports", "port 0 is not a port"));
                            }
                            PortSpec::Range { start, end } if start == 0 || start > end => {
                                return Err(FieldError::new(
                                    "ports",
                                    format!("range {start}-{end}: start must be 1..=end"),
                                ));
                            }
                            _ => {}
                        }
                    }
                }
            }
            Action::ShellToken { request, .. } => token_ttl(request.token_ttl_seconds)?,
            Action::Lifecycle { .. } => {}
        }
        Ok(())
    }
}

fn token_ttl(ttl: u32) -> Result<(), FieldError> {
    // CreateMicrovm*AuthToken takes whole minutes; a day is far beyond any policy.
    if !(60..=86_400).contains(&ttl) {
        return Err(FieldError::new(
            "token_ttl_seconds",
            "must be between 60 and 86400",
        ));
    }
    Ok(())
}

fn text(field: &str, v: Option<&str>, required: bool) -> Result<(), FieldError> {
    match v {
        None if required => Err(FieldError::new(field, "is required")),
        None => Ok(()),
        Some(s) if required && s.trim().is_empty() => {
            Err(FieldError::new(field, "must not be empty"))
        }
        Some(s) if s.len() > MAX_TEXT_LEN => Err(FieldError::new(
            field,
            format!("must be at most {MAX_TEXT_LEN} bytes"),
        )),
        Some(s) if s.chars().any(char::is_control) => Err(FieldError::new(
            field,
            "must not contain control characters",
        )),
        Some(_) => Ok(()),
    }
}

/// A MicroVM id from a path segment ([`grammar::microvm_id`]).
pub fn validate_microvm_id(id: &str) -> Result<(), FieldError> {
    grammar::microvm_id(id).map_err(|e| FieldError::new("microvm_id", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(v: serde_json::Value) -> Result<RunRequest, serde_json::Error> {
        serde_json::from_value(v)
    }

    fn good_run() -> serde_json::Value {
        json!({
            "owner": "team-a",
            "reason": "tests",
            "image_arn": "arn:aws:lambda:us-east-1:111122223333:microvm-image:py",
            "execution_role_arn": "arn:aws:iam::111122223333:role/sandbox",
            "duration_seconds": 600
        })
    }

    #[test]
    fn unknown_fields_are_rejected_naming_the_field() {
        let mut v = good_run();
        v["duraton_seconds"] = json!(5);
        let e = run(v).unwrap_err().to_string();
        assert!(e.contains("duraton_seconds"), "{e}");
    }

    #[test]
    fn bad_egress_is_rejected_naming_the_variants() {
        let mut v = good_run();
        v["network_egress"] = json!("everywhere");
        let e = run(v).unwrap_err().to_string();
        assert!(e.contains("everywhere") && e.contains("private"), "{e}");
    }

    #[test]
    fn validation_names_the_bad_field() {
        let cases = [
            ("image_arn", json!("arn:aws:s3:::bucket")),
            ("execution_role_arn", json!("arn:aws:iam::1:user/bob")),
            ("duration_seconds", json!(0)),
            ("duration_seconds", json!(28_801)),
            ("reason", json!("  ")),
            ("metadata", json!([1, 2])),
            ("owner", json!("a\u{0}b")),
            // Regression: the region of an IAM ARN was ignored.
            (
                "execution_role_arn",
                json!("arn:aws:iam:us-east-1:111122223333:role/sandbox"),
            ),
            ("image_version", json!("latest")),
        ];
        for (field, value) in cases {
            let mut v = good_run();
            v[field] = value;
            let action = Action::Run(run(v).unwrap());
            let e = action.validate().unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
        assert_eq!(Action::Run(run(good_run()).unwrap()).validate(), Ok(()));
    }

    #[test]
    fn ports_accept_lists_ranges_and_all() {
        let t: AuthTokenRequest = serde_json::from_value(json!({
            "reason": "r", "token_ttl_seconds": 300,
            "ports": [8080, {"start": 9000, "end": 9010}]
        }))
        .unwrap();
        assert_eq!(
            t.ports,
            Ports::Listed(vec![
                PortSpec::Port(8080),
                PortSpec::Range {
                    start: 9000,
                    end: 9010
                }
            ])
        );
        let t: AuthTokenRequest = serde_json::from_value(json!({
            "reason": "r", "token_ttl_seconds": 300, "ports": "all"
        }))
        .unwrap();
        assert_eq!(t.ports, Ports::All(AllPorts::All));
        let bad = Action::AuthToken {
            microvm_id: "vm-1".into(),
            request: AuthTokenRequest {
                ports: Ports::Listed(vec![PortSpec::Range { start: 10, end: 5 }]),
                ..t
            },
        };
        assert_eq!(bad.validate().unwrap_err().field, "ports");
    }

    #[test]
    fn microvm_ids_with_path_characters_are_rejected() {
        assert!(validate_microvm_id("ai-1234").is_ok());
        assert!(validate_microvm_id("../x").is_err());
        // Regression: `..` (sent as `/microvms/%2e%2e/terminate`) passed the old character set.
        assert!(validate_microvm_id("..").is_err());
        assert!(validate_microvm_id("").is_err());
        assert!(validate_microvm_id(&"a".repeat(257)).is_err());
    }
}
