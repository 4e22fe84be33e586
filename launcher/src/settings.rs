//! Process settings read from the environment by `main` — as a pure function
//! over a map, so every rule (and every refusal) is testable.

use std::collections::HashMap;

/// Where MicroVM calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The real API (`aws-sdk-lambdamicrovms`; `MICROVMS_ENDPOINT_URL` may
    /// point it at an emulator).
    Aws { endpoint_url: Option<String> },
    /// The in-process simulator. Only produced when `SIMULATE_AWS=true`.
    Simulated,
}

/// A secret given directly (local) or by Secrets Manager ARN (deployed).
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    Plain(String),
    SecretArn(String),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Plain(_) => f.write_str("Plain(<redacted>)"),
            SecretSource::SecretArn(a) => write!(f, "SecretArn({a})"),
        }
    }
}

/// How callers are identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Function URL with `AWS_IAM`: the request context's IAM principal.
    Iam,
    /// Local mode: `Authorization: Bearer` matched against hashed tokens.
    Bearer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub in_lambda: bool,
    pub auth: AuthMode,
    pub backend: Backend,
    pub contro1_base_url: String,
    pub contro1_api_key: SecretSource,
    pub webhook_secret: SecretSource,
    pub contro1_timeout_ms: u64,
    /// `LAUNCHER_PUBLIC_URL` + `/contro1/callback`.
    pub callback_url: String,
    /// `None`: in-memory store (only with the simulator).
    pub pending_table: Option<String>,
    pub ledger_table: Option<String>,
    pub webhook_window_seconds: u64,
    pub vpc_egress_connector_arn: Option<String>,
    pub private_egress_connector_arn: Option<String>,
    /// Path of the policy file (`LAUNCHER_CONFIG`), if any.
    pub config_path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable `{key}`: {message}")]
pub struct SettingsError {
    pub key: String,
    pub message: String,
}

fn err(key: &str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        key: key.to_string(),
        message: message.into(),
    }
}

fn flag(env: &HashMap<String, String>, key: &str) -> Result<bool, SettingsError> {
    match env.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v.is_empty() || v == "false" || v == "0" => Ok(false),
        Some(v) if v == "true" || v == "1" => Ok(true),
        Some(v) => Err(err(key, format!("`{v}` is not true or false"))),
    }
}

fn secret(
    env: &HashMap<String, String>,
    plain: &str,
    arn: &str,
) -> Result<SecretSource, SettingsError> {
    match (
        env.get(plain).filter(|v| !v.is_empty()),
        env.get(arn).filter(|v| !v.is_empty()),
    ) {
        (Some(_), Some(_)) => Err(err(plain, format!("set either {plain} or {arn}, not both"))),
        (Some(v), None) => Ok(SecretSource::Plain(v.clone())),
        (None, Some(a)) if a.starts_with("arn:") => Ok(SecretSource::SecretArn(a.clone())),
        (None, Some(_)) => Err(err(arn, "must be a Secrets Manager ARN")),
        (None, None) => Err(err(plain, format!("is required (or {arn})"))),
    }
}

fn num(env: &HashMap<String, String>, key: &str, default: u64) -> Result<u64, SettingsError> {
    env.get(key).map_or(Ok(default), |v| {
        v.trim()
            .parse()
            .map_err(|_| err(key, format!("`{v}` is not a whole number")))
    })
}

impl Settings {
    pub fn from_env(env: &HashMap<String, String>) -> Result<Settings, SettingsError> {
        let in_lambda = env.contains_key("AWS_LAMBDA_FUNCTION_NAME")
            || env.contains_key("AWS_LAMBDA_RUNTIME_API");
        let simulate = flag(env, "SIMULATE_AWS")?;
        if simulate && in_lambda && !flag(env, "LAUNCHER_ALLOW_SIMULATION_IN_LAMBDA")? {
            return Err(err(
                "SIMULATE_AWS",
                "refusing to simulate AWS inside Lambda (set LAUNCHER_ALLOW_SIMULATION_IN_LAMBDA=true to insist)",
            ));
        }
        let backend = if simulate {
            Backend::Simulated
        } else {
            Backend::Aws {
                endpoint_url: env.get("MICROVMS_ENDPOINT_URL").cloned(),
            }
        };
        let public = env
            .get("LAUNCHER_PUBLIC_URL")
            .map(|v| v.trim().trim_end_matches('/').to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                err(
                    "LAUNCHER_PUBLIC_URL",
                    "is required: Contro1 posts callbacks to <it>/contro1/callback",
                )
            })?;
        if !(public.starts_with("https://") || public.starts_with("http://")) {
            return Err(err(
                "LAUNCHER_PUBLIC_URL",
                "must start with https:// or http://",
            ));
        }
        let table = |k: &str| env.get(k).filter(|v| !v.trim().is_empty()).cloned();
        let pending_table = table("PENDING_TABLE");
        let ledger_table = table("LEDGER_TABLE");
        if backend != Backend::Simulated {
            if pending_table.is_none() {
                return Err(err("PENDING_TABLE", "is required unless SIMULATE_AWS=true"));
            }
            if ledger_table.is_none() {
                return Err(err("LEDGER_TABLE", "is required unless SIMULATE_AWS=true"));
            }
        }
        Ok(Settings {
            in_lambda,
            auth: if in_lambda {
                AuthMode::Iam
            } else {
                AuthMode::Bearer
            },
            backend,
            contro1_base_url: env
                .get("CONTRO1_BASE_URL")
                .cloned()
                .unwrap_or_else(|| contro1::DEFAULT_BASE_URL.to_string()),
            contro1_api_key: secret(env, "CONTRO1_API_KEY", "CONTRO1_API_KEY_SECRET_ARN")?,
            webhook_secret: secret(env, "CONTRO1_WEBHOOK_SECRET", "CONTRO1_WEBHOOK_SECRET_ARN")?,
            contro1_timeout_ms: num(env, "CONTRO1_TIMEOUT_MS", 3000)?,
            callback_url: format!("{public}/contro1/callback"),
            pending_table,
            ledger_table,
            webhook_window_seconds: num(
                env,
                "WEBHOOK_WINDOW_SECONDS",
                shared_core::webhook::DEFAULT_WINDOW_SECS,
            )?,
            vpc_egress_connector_arn: table("MICROVM_VPC_EGRESS_CONNECTOR_ARN"),
            private_egress_connector_arn: table("MICROVM_PRIVATE_EGRESS_CONNECTOR_ARN"),
            config_path: table("LAUNCHER_CONFIG"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = [
            ("LAUNCHER_PUBLIC_URL", "http://127.0.0.1:8080"),
            ("CONTRO1_API_KEY", "k"),
            ("CONTRO1_WEBHOOK_SECRET", "s"),
            ("PENDING_TABLE", "p"),
            ("LEDGER_TABLE", "l"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            m.insert(k.to_string(), v.to_string());
        }
        m
    }

    #[test]
    fn simulator_is_built_only_when_the_flag_is_set() {
        let s = Settings::from_env(&env(&[])).unwrap();
        assert!(matches!(s.backend, Backend::Aws { .. }));
        let s = Settings::from_env(&env(&[("SIMULATE_AWS", "true")])).unwrap();
        assert_eq!(s.backend, Backend::Simulated);
    }

    #[test]
    fn simulation_inside_lambda_is_refused_unless_insisted_on() {
        let e = Settings::from_env(&env(&[
            ("SIMULATE_AWS", "true"),
            ("AWS_LAMBDA_FUNCTION_NAME", "launcher"),
        ]))
        .unwrap_err();
        assert_eq!(e.key, "SIMULATE_AWS");
        let s = Settings::from_env(&env(&[("AWS_LAMBDA_FUNCTION_NAME", "launcher")])).unwrap();
        assert!(matches!(s.backend, Backend::Aws { .. }));
        assert_eq!(s.auth, AuthMode::Iam);
        let s = Settings::from_env(&env(&[
            ("SIMULATE_AWS", "true"),
            ("AWS_LAMBDA_FUNCTION_NAME", "launcher"),
            ("LAUNCHER_ALLOW_SIMULATION_IN_LAMBDA", "true"),
        ]))
        .unwrap();
        assert_eq!(s.backend, Backend::Simulated);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (k, v, key) in [
            ("SIMULATE_AWS", "yes", "SIMULATE_AWS"),
            ("LAUNCHER_PUBLIC_URL", "ftp://x", "LAUNCHER_PUBLIC_URL"),
            ("WEBHOOK_WINDOW_SECONDS", "soon", "WEBHOOK_WINDOW_SECONDS"),
            ("PENDING_TABLE", "", "PENDING_TABLE"),
            (
                "CONTRO1_WEBHOOK_SECRET_ARN",
                "arn:aws:secretsmanager:x",
                "CONTRO1_WEBHOOK_SECRET",
            ),
        ] {
            let e = Settings::from_env(&env(&[(k, v)])).unwrap_err();
            assert_eq!(e.key, key, "{e}");
        }
        assert!(
            format!("{:?}", SecretSource::Plain("hunter2".into()))
                .find("hunter2")
                .is_none()
        );
    }
}
