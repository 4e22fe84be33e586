//! Policy and agent configuration: a TOML file plus environment overrides
//! named like the reference connector's (`ALLOWED_IMAGE_ARNS`, ...), loaded by
//! one pure function, [`Config::from_parts`], at cold start. Any bad value
//! fails the cold start with an error naming the key.
//!
//! ```toml
//! [policy]
//! version = "2025-06-01"                 # optional; default: hash of the effective policy
//! allowed_agent_ids = []                 # empty: every registered agent
//! # an image ARN allows only its default version; `ARN:3` pins version 3, `ARN:*` allows any
//! allowed_image_arns = ["arn:aws:lambda:us-east-1:111122223333:microvm-image:py:3"]
//! allowed_execution_role_arns = ["arn:aws:iam::111122223333:role/sandbox"]
//! production_execution_role_arns = ["arn:aws:iam::111122223333:role/prod"]
//! max_auto_approve_duration_seconds = 900
//! max_token_ttl_seconds = 900
//! allowed_token_ports = [8080]
//! default_required_role = "security"
//! default_sla_minutes = 30
//! approval_ttl_seconds = 86400
//!
//! [[agents]]
//! id = "ci-bot"
//! owner = "platform-team"
//! environment = "dev"
//! principal_arns = ["arn:aws:iam::111122223333:role/ci-bot"]
//! bearer_token_sha256 = ["<64 hex chars>"]
//! ```
//!
//! Environment overrides (comma-separated lists; they replace the file's value):
//! `ALLOWED_AGENT_IDS`, `ALLOWED_IMAGE_ARNS`, `ALLOWED_EXECUTION_ROLE_ARNS`,
//! `PRODUCTION_EXECUTION_ROLE_ARNS`, `MAX_AUTO_APPROVE_DURATION_SECONDS`,
//! `MAX_TOKEN_TTL_SECONDS`, `ALLOWED_TOKEN_PORTS`, `DEFAULT_REQUIRED_ROLE`,
//! `DEFAULT_SLA_MINUTES`, `POLICY_VERSION`.

use crate::agents::{Agent, Principal, Registry};
use crate::grammar::{self, ImageRule};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared_core::RoleRef;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid TOML or has an unknown/mistyped key (the message
    /// carries the line and column).
    #[error("config file: {message}")]
    File { message: String },
    /// A key in the file has a bad value.
    #[error("config key `{key}`: {message}")]
    Key { key: String, message: String },
    /// An environment override has a bad value.
    #[error("environment variable `{key}`: {message}")]
    Env { key: String, message: String },
}

/// The validated policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyConfig {
    /// Versioned into every decision and audit record.
    pub version: String,
    /// Empty: every registered agent may call.
    pub allowed_agent_ids: Vec<String>,
    /// `ARN` (default version only), `ARN:VERSION` or `ARN:*`.
    pub allowed_image_arns: Vec<ImageRule>,
    pub allowed_execution_roles: Vec<RoleRef>,
    pub production_execution_roles: Vec<RoleRef>,
    pub max_auto_approve_duration_seconds: u32,
    pub max_token_ttl_seconds: u32,
    pub allowed_token_ports: Vec<u16>,
    pub default_required_role: String,
    pub default_sla_minutes: u32,
    /// How long a pending approval stays actionable (and the pending item's TTL).
    pub approval_ttl_seconds: u32,
}

/// Everything the policy engine needs: the policy and the agent registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    pub policy: PolicyConfig,
    pub agents: Registry,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    agents: Vec<RawAgent>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    version: Option<String>,
    allowed_agent_ids: Option<Vec<String>>,
    allowed_image_arns: Option<Vec<String>>,
    allowed_execution_role_arns: Option<Vec<String>>,
    production_execution_role_arns: Option<Vec<String>>,
    max_auto_approve_duration_seconds: Option<u32>,
    max_token_ttl_seconds: Option<u32>,
    allowed_token_ports: Option<Vec<u16>>,
    default_required_role: Option<String>,
    default_sla_minutes: Option<u32>,
    approval_ttl_seconds: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    id: String,
    owner: String,
    environment: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    principal_arns: Vec<String>,
    #[serde(default)]
    bearer_token_sha256: Vec<String>,
    #[serde(default)]
    allowed_image_arns: Vec<String>,
    #[serde(default)]
    allowed_execution_role_arns: Vec<String>,
}

fn yes() -> bool {
    true
}

pub const DEFAULT_MAX_AUTO_APPROVE_DURATION_SECONDS: u32 = 900;
pub const DEFAULT_MAX_TOKEN_TTL_SECONDS: u32 = 900;
pub const DEFAULT_REQUIRED_ROLE: &str = "security";
pub const DEFAULT_SLA_MINUTES: u32 = 30;
pub const DEFAULT_APPROVAL_TTL_SECONDS: u32 = 86_400;

fn env_list(env: &HashMap<String, String>, key: &str) -> Option<Vec<String>> {
    env.get(key).map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
}

fn env_num<T: std::str::FromStr>(
    env: &HashMap<String, String>,
    key: &str,
) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    env.get(key)
        .map(|v| {
            v.trim().parse::<T>().map_err(|e| ConfigError::Env {
                key: key.to_string(),
                message: format!("`{v}` is not a valid number: {e}"),
            })
        })
        .transpose()
}

fn key_err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.into(),
        message: message.into(),
    }
}

/// Where a value came from, so an error names the file key or the env var.
fn origin(env: &HashMap<String, String>, env_key: &str, file_key: &str) -> (bool, String) {
    if env.contains_key(env_key) {
        (true, env_key.to_string())
    } else {
        (false, format!("policy.{file_key}"))
    }
}

fn bad(is_env: bool, key: String, message: String) -> ConfigError {
    if is_env {
        ConfigError::Env { key, message }
    } else {
        ConfigError::Key { key, message }
    }
}

fn roles(
    env: &HashMap<String, String>,
    env_key: &str,
    file_key: &str,
    arns: &[String],
) -> Result<Vec<RoleRef>, ConfigError> {
    let (is_env, key) = origin(env, env_key, file_key);
    arns.iter()
        .map(|a| grammar::role_arn(a).map_err(|e| bad(is_env, key.clone(), e)))
        .collect()
}

impl Config {
    /// Build and validate the configuration from the file's text (empty for
    /// none) and the environment. Pure: only `main` reads the process env.
    pub fn from_parts(
        file_text: &str,
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let raw: RawFile = toml::from_str(file_text).map_err(|e| ConfigError::File {
            message: e.to_string(),
        })?;
        let mut p = raw.policy;
        // Environment overrides replace file values.
        if let Some(v) = env_list(env, "ALLOWED_AGENT_IDS") {
            p.allowed_agent_ids = Some(v);
        }
        if let Some(v) = env_list(env, "ALLOWED_IMAGE_ARNS") {
            p.allowed_image_arns = Some(v);
        }
        if let Some(v) = env_list(env, "ALLOWED_EXECUTION_ROLE_ARNS") {
            p.allowed_execution_role_arns = Some(v);
        }
        if let Some(v) = env_list(env, "PRODUCTION_EXECUTION_ROLE_ARNS") {
            p.production_execution_role_arns = Some(v);
        }
        if let Some(v) = env_num(env, "MAX_AUTO_APPROVE_DURATION_SECONDS")? {
            p.max_auto_approve_duration_seconds = Some(v);
        }
        if let Some(v) = env_num(env, "MAX_TOKEN_TTL_SECONDS")? {
            p.max_token_ttl_seconds = Some(v);
        }
        if let Some(list) = env_list(env, "ALLOWED_TOKEN_PORTS") {
            let ports = list
                .iter()
                .map(|s| {
                    s.parse::<u16>()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| ConfigError::Env {
                            key: "ALLOWED_TOKEN_PORTS".into(),
                            message: format!("`{s}` is not a port number (1-65535)"),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            p.allowed_token_ports = Some(ports);
        }
        if let Some(v) = env.get("DEFAULT_REQUIRED_ROLE") {
            p.default_required_role = Some(v.trim().to_string());
        }
        if let Some(v) = env_num(env, "DEFAULT_SLA_MINUTES")? {
            p.default_sla_minutes = Some(v);
        }
        if let Some(v) = env.get("POLICY_VERSION") {
            p.version = Some(v.trim().to_string());
        }

        let allowed_image_arns = {
            let (is_env, key) = origin(env, "ALLOWED_IMAGE_ARNS", "allowed_image_arns");
            p.allowed_image_arns
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|a| ImageRule::parse(a).map_err(|e| bad(is_env, key.clone(), e)))
                .collect::<Result<Vec<_>, _>>()?
        };
        let allowed_execution_roles = roles(
            env,
            "ALLOWED_EXECUTION_ROLE_ARNS",
            "allowed_execution_role_arns",
            p.allowed_execution_role_arns.as_deref().unwrap_or_default(),
        )?;
        let production_execution_roles = roles(
            env,
            "PRODUCTION_EXECUTION_ROLE_ARNS",
            "production_execution_role_arns",
            p.production_execution_role_arns
                .as_deref()
                .unwrap_or_default(),
        )?;
        let max_auto = p
            .max_auto_approve_duration_seconds
            .unwrap_or(DEFAULT_MAX_AUTO_APPROVE_DURATION_SECONDS);
        if max_auto == 0 || max_auto > crate::request::MAX_DURATION_SECONDS {
            let (is_env, key) = origin(
                env,
                "MAX_AUTO_APPROVE_DURATION_SECONDS",
                "max_auto_approve_duration_seconds",
            );
            return Err(bad(is_env, key, "must be between 1 and 28800".into()));
        }
        let max_ttl = p
            .max_token_ttl_seconds
            .unwrap_or(DEFAULT_MAX_TOKEN_TTL_SECONDS);
        if !(60..=86_400).contains(&max_ttl) {
            let (is_env, key) = origin(env, "MAX_TOKEN_TTL_SECONDS", "max_token_ttl_seconds");
            return Err(bad(is_env, key, "must be between 60 and 86400".into()));
        }
        let allowed_token_ports = p.allowed_token_ports.clone().unwrap_or_default();
        if allowed_token_ports.contains(&0) {
            return Err(key_err("policy.allowed_token_ports", "0 is not a port"));
        }
        let default_required_role = p
            .default_required_role
            .clone()
            .unwrap_or_else(|| DEFAULT_REQUIRED_ROLE.to_string());
        if default_required_role.is_empty() {
            let (is_env, key) = origin(env, "DEFAULT_REQUIRED_ROLE", "default_required_role");
            return Err(bad(is_env, key, "must not be empty".into()));
        }
        let default_sla_minutes = p.default_sla_minutes.unwrap_or(DEFAULT_SLA_MINUTES);
        if default_sla_minutes == 0 {
            let (is_env, key) = origin(env, "DEFAULT_SLA_MINUTES", "default_sla_minutes");
            return Err(bad(is_env, key, "must be at least 1".into()));
        }
        let approval_ttl_seconds = p
            .approval_ttl_seconds
            .unwrap_or(DEFAULT_APPROVAL_TTL_SECONDS);
        if approval_ttl_seconds < 60 {
            return Err(key_err(
                "policy.approval_ttl_seconds",
                "must be at least 60",
            ));
        }

        // Agents.
        let mut agents = Vec::new();
        let mut ids = HashSet::new();
        let mut hashes = HashSet::new();
        // (agent id, normalised principal): one principal, one agent.
        let mut principals: Vec<(String, String)> = Vec::new();
        for (i, a) in raw.agents.into_iter().enumerate() {
            let at = |field: &str| format!("agents[{i}].{field}");
            if a.id.trim().is_empty() || a.id.len() > 128 {
                return Err(key_err(at("id"), "must be 1..=128 characters"));
            }
            if !ids.insert(a.id.clone()) {
                return Err(key_err(at("id"), format!("`{}` is registered twice", a.id)));
            }
            if a.owner.trim().is_empty() {
                return Err(key_err(at("owner"), "must not be empty"));
            }
            if a.environment.trim().is_empty() {
                return Err(key_err(at("environment"), "must not be empty"));
            }
            let mut ps = Vec::new();
            for arn in &a.principal_arns {
                let pr = Principal::parse(arn).map_err(|m| key_err(at("principal_arns"), m))?;
                let norm =
                    grammar::principal_key(arn).map_err(|m| key_err(at("principal_arns"), m))?;
                if let Some((other, _)) = principals.iter().find(|(_, o)| *o == norm) {
                    return Err(key_err(
                        at("principal_arns"),
                        format!(
                            "`{arn}` is the same principal as one of agent `{other}` (paths and case do not tell IAM principals apart)"
                        ),
                    ));
                }
                principals.push((a.id.clone(), norm));
                ps.push(pr);
            }
            let mut th = Vec::new();
            for h in &a.bearer_token_sha256 {
                let bytes = hex::decode(h)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| {
                        key_err(
                            at("bearer_token_sha256"),
                            "each entry must be 64 hex characters (sha256 of the token)",
                        )
                    })?;
                if !hashes.insert(bytes) {
                    return Err(key_err(
                        at("bearer_token_sha256"),
                        "a token hash is registered twice",
                    ));
                }
                th.push(bytes);
            }
            let allowed_image_arns = a
                .allowed_image_arns
                .iter()
                .map(|img| ImageRule::parse(img).map_err(|e| key_err(at("allowed_image_arns"), e)))
                .collect::<Result<Vec<_>, _>>()?;
            let allowed_execution_roles = a
                .allowed_execution_role_arns
                .iter()
                .map(|r| {
                    grammar::role_arn(r).map_err(|e| key_err(at("allowed_execution_role_arns"), e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            agents.push(Agent {
                id: a.id,
                owner: a.owner,
                environment: a.environment,
                enabled: a.enabled,
                principals: ps,
                token_sha256: th,
                allowed_image_arns,
                allowed_execution_roles,
            });
        }
        let allowed_agent_ids = p.allowed_agent_ids.clone().unwrap_or_default();
        for id in &allowed_agent_ids {
            if !ids.contains(id) {
                let (is_env, key) = origin(env, "ALLOWED_AGENT_IDS", "allowed_agent_ids");
                return Err(bad(
                    is_env,
                    key,
                    format!("names agent `{id}`, which is not registered in [[agents]]"),
                ));
            }
        }

        let mut policy = PolicyConfig {
            version: String::new(),
            allowed_agent_ids,
            allowed_image_arns,
            allowed_execution_roles,
            production_execution_roles,
            max_auto_approve_duration_seconds: max_auto,
            max_token_ttl_seconds: max_ttl,
            allowed_token_ports,
            default_required_role,
            default_sla_minutes,
            approval_ttl_seconds,
        };
        let registry = Registry::new(agents);
        policy.version = match p.version.filter(|v| !v.is_empty()) {
            Some(v) => v,
            None => {
                // A hash of the effective policy (token hashes excluded by Agent's
                // Serialize): the same rules always give the same version.
                let effective: BTreeMap<&str, serde_json::Value> = BTreeMap::from([
                    ("policy", serde_json::to_value(&policy).unwrap_or_default()),
                    (
                        "agents",
                        serde_json::to_value(&registry).unwrap_or_default(),
                    ),
                ]);
                let text = crate::approval::canonical_json(
                    &serde_json::to_value(effective).unwrap_or_default(),
                );
                format!(
                    "sha256:{}",
                    &hex::encode(Sha256::digest(text.as_bytes()))[..16]
                )
            }
        };
        Ok(Config {
            policy,
            agents: registry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[policy]
allowed_image_arns = ["arn:aws:lambda:us-east-1:111122223333:microvm-image:py"]
allowed_execution_role_arns = ["arn:aws:iam::111122223333:role/sandbox"]
production_execution_role_arns = ["arn:aws:iam::111122223333:role/prod"]
allowed_token_ports = [8080]

[[agents]]
id = "ci"
owner = "platform"
environment = "dev"
principal_arns = ["arn:aws:iam::111122223333:role/ci"]
bearer_token_sha256 = ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]
"#;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn file_loads_with_defaults_and_a_stable_version() {
        let c = Config::from_parts(FILE, &env(&[])).unwrap();
        assert_eq!(c.policy.max_auto_approve_duration_seconds, 900);
        assert_eq!(c.policy.default_required_role, "security");
        assert_eq!(c.agents.agents().len(), 1);
        assert!(c.policy.version.starts_with("sha256:"));
        let again = Config::from_parts(FILE, &env(&[])).unwrap();
        assert_eq!(c.policy.version, again.policy.version);
        let changed = Config::from_parts(FILE, &env(&[("MAX_TOKEN_TTL_SECONDS", "120")])).unwrap();
        assert_ne!(c.policy.version, changed.policy.version);
    }

    #[test]
    fn env_overrides_replace_file_values() {
        let c = Config::from_parts(
            FILE,
            &env(&[
                ("ALLOWED_TOKEN_PORTS", "80, 443"),
                ("MAX_AUTO_APPROVE_DURATION_SECONDS", "60"),
                ("DEFAULT_REQUIRED_ROLE", "secops"),
                ("DEFAULT_SLA_MINUTES", "5"),
                ("ALLOWED_AGENT_IDS", "ci"),
                ("POLICY_VERSION", "v7"),
            ]),
        )
        .unwrap();
        assert_eq!(c.policy.allowed_token_ports, vec![80, 443]);
        assert_eq!(c.policy.max_auto_approve_duration_seconds, 60);
        assert_eq!(c.policy.default_required_role, "secops");
        assert_eq!(c.policy.default_sla_minutes, 5);
        assert_eq!(c.policy.allowed_agent_ids, vec!["ci".to_string()]);
        assert_eq!(c.policy.version, "v7");
    }

    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);

    #[test]
    fn every_bad_value_names_its_key() {
        let cases: Vec<Case> = vec![
            (
                FILE,
                vec![("MAX_TOKEN_TTL_SECONDS", "ten")],
                "MAX_TOKEN_TTL_SECONDS",
            ),
            (
                FILE,
                vec![("ALLOWED_TOKEN_PORTS", "80,http")],
                "ALLOWED_TOKEN_PORTS",
            ),
            (
                FILE,
                vec![("ALLOWED_IMAGE_ARNS", "arn:aws:s3:::x")],
                "ALLOWED_IMAGE_ARNS",
            ),
            (
                FILE,
                vec![("ALLOWED_EXECUTION_ROLE_ARNS", "arn:aws:iam::1:user/x")],
                "ALLOWED_EXECUTION_ROLE_ARNS",
            ),
            (
                FILE,
                vec![("PRODUCTION_EXECUTION_ROLE_ARNS", "nope")],
                "PRODUCTION_EXECUTION_ROLE_ARNS",
            ),
            (
                FILE,
                vec![("ALLOWED_AGENT_IDS", "ghost")],
                "ALLOWED_AGENT_IDS",
            ),
            (
                FILE,
                vec![("MAX_AUTO_APPROVE_DURATION_SECONDS", "0")],
                "MAX_AUTO_APPROVE_DURATION_SECONDS",
            ),
            (
                FILE,
                vec![("DEFAULT_SLA_MINUTES", "0")],
                "DEFAULT_SLA_MINUTES",
            ),
            (
                FILE,
                vec![("DEFAULT_REQUIRED_ROLE", "")],
                "DEFAULT_REQUIRED_ROLE",
            ),
            (
                "[policy]\nallowed_image_arns = [\"x\"]\n",
                vec![],
                "policy.allowed_image_arns",
            ),
            ("[policy]\nmax_token_ttl = 5\n", vec![], "max_token_ttl"),
            (
                "[[agents]]\nid = \"a\"\nowner = \"o\"\nenvironment = \"dev\"\nbearer_token_sha256 = [\"abc\"]\n",
                vec![],
                "agents[0].bearer_token_sha256",
            ),
            (
                "[[agents]]\nid = \"a\"\nowner = \"\"\nenvironment = \"dev\"\n",
                vec![],
                "agents[0].owner",
            ),
            (
                "[[agents]]\nid = \"a\"\nowner = \"o\"\nenvironment = \"dev\"\n[[agents]]\nid = \"a\"\nowner = \"o\"\nenvironment = \"dev\"\n",
                vec![],
                "agents[1].id",
            ),
            (
                "[[agents]]\nid = \"a\"\nowner = \"o\"\nenvironment = \"dev\"\nprincipal_arns = [\"arn:aws:iam::111122223333:role/r\"]\n[[agents]]\nid = \"b\"\nowner = \"o\"\nenvironment = \"dev\"\nprincipal_arns = [\"arn:aws:iam::111122223333:role/r\"]\n",
                vec![],
                "agents[1].principal_arns",
            ),
            // Regression: the same role in another form (path, case) was a second principal.
            (
                "[[agents]]\nid = \"a\"\nowner = \"o\"\nenvironment = \"dev\"\nprincipal_arns = [\"arn:aws:iam::111122223333:role/r\"]\n[[agents]]\nid = \"b\"\nowner = \"o\"\nenvironment = \"dev\"\nprincipal_arns = [\"arn:aws:iam::111122223333:role/team/R\"]\n",
                vec![],
                "agents[1].principal_arns",
            ),
            (
                FILE,
                vec![(
                    "ALLOWED_EXECUTION_ROLE_ARNS",
                    "arn:aws:iam:us-east-1:111122223333:role/x",
                )],
                "ALLOWED_EXECUTION_ROLE_ARNS",
            ),
            (
                FILE,
                vec![(
                    "ALLOWED_IMAGE_ARNS",
                    "arn:aws:lambda:us-east-1:111122223333:microvm-image:py:latest",
                )],
                "ALLOWED_IMAGE_ARNS",
            ),
        ];
        for (file, e, key) in cases {
            let err = Config::from_parts(file, &env(&e)).unwrap_err().to_string();
            assert!(err.contains(key), "expected `{key}` in: {err}");
        }
    }

    #[test]
    fn toml_syntax_errors_carry_the_line() {
        let err = Config::from_parts("[policy\n", &env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::File { .. }));
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
