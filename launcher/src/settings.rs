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
    /// The function qualifier (alias) whose Function URL is the public
    /// callback URL (`CALLBACK_FUNCTION_QUALIFIER`, default `contro1-webhook`).
    pub callback_qualifier: String,
    /// How long finished items are kept (`TOMBSTONE_RETENTION_SECONDS`).
    pub tombstone_retention_seconds: i64,
    /// After how long an `executing` item is stuck (`EXECUTING_TIMEOUT_SECONDS`).
    pub executing_timeout_seconds: i64,
    /// The sparse index over executing items (`PENDING_EXECUTING_INDEX`).
    pub executing_index: String,
    /// Approval requests per agent per minute (`APPROVAL_REQUESTS_PER_MINUTE`).
    pub approval_requests_per_minute: u32,
    /// KMS key sealing tokens at rest (`TOKEN_KMS_KEY_ID`); `None`: a key
    /// held in memory (only outside Lambda).
    pub token_kms_key_id: Option<String>,
    /// `AWS_REGION` (set by Lambda): the region of the function's URLs.
    pub region: Option<String>,
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

/// A URL the launcher sends secrets to (the Contro1 key) or tells Contro1 to
/// call, parsed by the parser the HTTP client itself uses (`reqwest::Url`,
/// the WHATWG `url` crate), so the host checked is the host connected to:
/// `https://` always; plain `http://` only outside Lambda (`serve`, tests)
/// or, inside Lambda, to a loopback host (nothing else can answer there).
/// A user name or password in the URL is refused (it would be sent to the
/// host, and it hides which host that is).
fn url(key: &str, value: &str, in_lambda: bool) -> Result<String, SettingsError> {
    let v = value.trim().trim_end_matches('/').to_string();
    let parsed =
        reqwest::Url::parse(&v).map_err(|e| err(key, format!("is not a URL ({e}): `{v}`")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(err(
            key,
            format!("must not carry a user name or password, got `{v}`"),
        ));
    }
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(v),
        "http" if parsed.host().is_some() && (!in_lambda || loopback) => Ok(v),
        "http" if parsed.host().is_some() => Err(err(
            key,
            format!(
                "must start with https:// inside Lambda (plain http:// only to a loopback host; this URL's host is `{}`), got `{v}`",
                parsed.host_str().unwrap_or_default()
            ),
        )),
        _ => Err(err(key, format!("must be an https:// URL, got `{v}`"))),
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
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| {
                err(
                    "LAUNCHER_PUBLIC_URL",
                    "is required: Contro1 posts callbacks to <it>/contro1/callback",
                )
            })?;
        let public = url("LAUNCHER_PUBLIC_URL", public, in_lambda)?;
        let webhook_window_seconds = num(
            env,
            "WEBHOOK_WINDOW_SECONDS",
            shared_core::webhook::DEFAULT_WINDOW_SECS,
        )?;
        let max_window = shared_core::webhook::MAX_WINDOW_SECS;
        if !(1..=max_window).contains(&webhook_window_seconds) {
            return Err(err(
                "WEBHOOK_WINDOW_SECONDS",
                format!("must be between 1 and {max_window}"),
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
        let callback_qualifier = env
            .get("CALLBACK_FUNCTION_QUALIFIER")
            .map_or("contro1-webhook", |v| v.trim())
            .to_string();
        if callback_qualifier.is_empty()
            || callback_qualifier == "$LATEST"
            || !callback_qualifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(err(
                "CALLBACK_FUNCTION_QUALIFIER",
                "must be an alias name (letters, digits, `-`, `_`), not $LATEST",
            ));
        }
        let retention = num(env, "TOMBSTONE_RETENTION_SECONDS", 30 * 24 * 3600)?;
        if retention < 24 * 3600 {
            return Err(err(
                "TOMBSTONE_RETENTION_SECONDS",
                "must be at least 86400 (a day): a tombstone must outlive Contro1's redeliveries",
            ));
        }
        let executing_timeout = num(env, "EXECUTING_TIMEOUT_SECONDS", 960)?;
        if !(60..=86_400).contains(&executing_timeout) {
            return Err(err(
                "EXECUTING_TIMEOUT_SECONDS",
                "must be between 60 and 86400 (at least the function's timeout)",
            ));
        }
        let per_minute = num(env, "APPROVAL_REQUESTS_PER_MINUTE", 30)?;
        if !(1..=10_000).contains(&per_minute) {
            return Err(err(
                "APPROVAL_REQUESTS_PER_MINUTE",
                "must be between 1 and 10000",
            ));
        }
        let token_kms_key_id = table("TOKEN_KMS_KEY_ID");
        if in_lambda && backend != Backend::Simulated && token_kms_key_id.is_none() {
            return Err(err(
                "TOKEN_KMS_KEY_ID",
                "is required inside Lambda: tokens are sealed with a KMS data key at rest",
            ));
        }
        Ok(Settings {
            callback_qualifier,
            tombstone_retention_seconds: i64::try_from(retention).unwrap_or(i64::MAX),
            executing_timeout_seconds: i64::try_from(executing_timeout).unwrap_or(i64::MAX),
            executing_index: table("PENDING_EXECUTING_INDEX")
                .unwrap_or_else(|| crate::store::DEFAULT_EXECUTING_INDEX.to_string()),
            approval_requests_per_minute: u32::try_from(per_minute).unwrap_or(u32::MAX),
            token_kms_key_id,
            region: table("AWS_REGION"),
            in_lambda,
            auth: if in_lambda {
                AuthMode::Iam
            } else {
                AuthMode::Bearer
            },
            backend,
            contro1_base_url: url(
                "CONTRO1_BASE_URL",
                env.get("CONTRO1_BASE_URL")
                    .map_or(contro1::DEFAULT_BASE_URL, String::as_str),
                in_lambda,
            )?,
            contro1_api_key: secret(env, "CONTRO1_API_KEY", "CONTRO1_API_KEY_SECRET_ARN")?,
            webhook_secret: secret(env, "CONTRO1_WEBHOOK_SECRET", "CONTRO1_WEBHOOK_SECRET_ARN")?,
            contro1_timeout_ms: num(env, "CONTRO1_TIMEOUT_MS", 3000)?,
            callback_url: format!("{public}/contro1/callback"),
            pending_table,
            ledger_table,
            webhook_window_seconds,
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
        let e = Settings::from_env(&env(&[("AWS_LAMBDA_FUNCTION_NAME", "launcher")])).unwrap_err();
        assert_eq!(e.key, "TOKEN_KMS_KEY_ID");
        let s = Settings::from_env(&env(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "launcher"),
            ("TOKEN_KMS_KEY_ID", "alias/launcher-tokens"),
        ]))
        .unwrap();
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
            // Regression: the window had no upper bound.
            ("WEBHOOK_WINDOW_SECONDS", "86400", "WEBHOOK_WINDOW_SECONDS"),
            ("WEBHOOK_WINDOW_SECONDS", "0", "WEBHOOK_WINDOW_SECONDS"),
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

    #[test]
    fn hardening_settings_have_safe_defaults_and_bounds() {
        let s = Settings::from_env(&env(&[])).unwrap();
        assert_eq!(s.callback_qualifier, "contro1-webhook");
        assert_eq!(s.tombstone_retention_seconds, 30 * 24 * 3600);
        assert_eq!(s.executing_timeout_seconds, 960);
        for (k, v) in [
            ("CALLBACK_FUNCTION_QUALIFIER", "$LATEST"),
            ("TOMBSTONE_RETENTION_SECONDS", "3600"),
            ("EXECUTING_TIMEOUT_SECONDS", "5"),
            ("APPROVAL_REQUESTS_PER_MINUTE", "0"),
        ] {
            assert_eq!(Settings::from_env(&env(&[(k, v)])).unwrap_err().key, k);
        }
    }

    /// Regression: `http://` was accepted for both URLs inside Lambda, where
    /// the Contro1 key and the callbacks would cross the network in clear.
    #[test]
    fn inside_lambda_both_urls_must_be_https_unless_loopback() {
        let lambda = ("AWS_LAMBDA_FUNCTION_NAME", "launcher");
        let kms = ("TOKEN_KMS_KEY_ID", "alias/k");
        for (k, v) in [
            ("LAUNCHER_PUBLIC_URL", "http://launcher.example.com"),
            ("CONTRO1_BASE_URL", "http://api.contro1.com/api/centcom/v1"),
            ("CONTRO1_BASE_URL", "http://127.0.0.1.nip.io:8700"),
            ("CONTRO1_BASE_URL", "http://localhost@evil.example:80"),
            ("CONTRO1_BASE_URL", "ftp://x"),
            // The host reqwest connects to is `contro1.example.com` (the
            // backslash ends it); a hand-written check saw `localhost`.
            (
                "CONTRO1_BASE_URL",
                "http://contro1.example.com\\@localhost:8700",
            ),
            (
                "LAUNCHER_PUBLIC_URL",
                "http://launcher.example.com\\@127.0.0.1",
            ),
            ("CONTRO1_BASE_URL", "http://contro1.example.com#@localhost"),
            ("CONTRO1_BASE_URL", "http://user:pw@localhost:8700"),
        ] {
            let e = Settings::from_env(&env(&[lambda, kms, (k, v)])).unwrap_err();
            assert_eq!(e.key, k, "{v}: {e}");
        }
        for (k, v) in [
            (
                "LAUNCHER_PUBLIC_URL",
                "https://abc.lambda-url.us-east-1.on.aws/",
            ),
            ("CONTRO1_BASE_URL", "http://127.0.0.1:8700"),
            ("CONTRO1_BASE_URL", "http://[::1]:8700"),
            ("CONTRO1_BASE_URL", "http://localhost:8700"),
        ] {
            let s = Settings::from_env(&env(&[lambda, kms, (k, v)]));
            assert!(s.is_ok(), "{k}={v}: {s:?}");
        }
        // Outside Lambda (`serve`, tests) plain http is allowed anywhere.
        let s = Settings::from_env(&env(&[("CONTRO1_BASE_URL", "http://contro1.lan:8700")]));
        assert!(s.is_ok(), "{s:?}");
    }
}
