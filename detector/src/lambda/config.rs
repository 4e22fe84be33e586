//! The detector Lambda's configuration: a pure function of the environment
//! (`from_parts`), validated once at cold start; only `main` reads the
//! process environment. Every error names the variable that is wrong.

use super::sweep::{Accounts, Regions, Remediation, RemediationLimits, SweepConfig};
use super::trail::TrailExpectations;
use detector_core::{AdminConfig, ClassifierConfig, ResourceRef, TamperConfig, TamperList};
use shared_core::RoleRef;
use std::collections::HashMap;

pub const DEFAULT_CONTRO1_BASE_URL: &str = "https://api.contro1.com/api/centcom/v1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{key} is required but not set")]
    Missing { key: &'static str },
    #[error("{key} is invalid: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// How the Contro1 API key is obtained. Its value is never logged.
#[derive(Clone, PartialEq, Eq)]
pub enum ApiKeySource {
    /// `CONTRO1_API_KEY` (local runs).
    Plain(String),
    /// `CONTRO1_API_KEY_SECRET_ARN` (deployed): read from Secrets Manager at
    /// cold start.
    SecretArn(String),
}

impl std::fmt::Debug for ApiKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiKeySource::Plain(_) => f.write_str("Plain(<redacted>)"),
            ApiKeySource::SecretArn(arn) => write!(f, "SecretArn({arn})"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub ledger_table: String,
    pub dedupe_table: String,
    pub alert_topic_arn: String,
    pub classifier: ClassifierConfig,
    pub contro1_base_url: String,
    pub contro1_api_key: ApiKeySource,
    /// Endpoint of the MicroVMs client only (emulator); `AWS_ENDPOINT_URL`
    /// is read by the SDK itself.
    pub microvms_endpoint_url: Option<String>,
    pub sweep: SweepConfig,
    /// The detector function's name (`AWS_LAMBDA_FUNCTION_NAME` in Lambda),
    /// the dimension of its metrics.
    pub function_name: String,
    /// Optional destinations beside SNS and Contro1.
    pub destinations: Destinations,
    /// How other accounts and regions are reached.
    pub targets: TargetsEnv,
}

/// How the sweep reaches accounts and regions other than its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetsEnv {
    /// `SWEEP_ROLE_NAME`: the role assumed in every other account.
    pub role_name: Option<String>,
    /// `LEDGER_REGION`: where each account's ledger table is (default: the
    /// detector's region).
    pub ledger_region: Option<String>,
    /// `MICROVMS_ENDPOINTS`: `{"ACCOUNT/REGION": "URL"}` (emulators).
    pub microvms_endpoints: HashMap<String, String>,
    /// `SWEEP_QUEUE_URL`: when set, the schedule queues one message per
    /// target there and each is swept in its own invocation.
    pub fan_out_queue: Option<String>,
}

/// Where findings go besides the alert topic and Contro1; each optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Destinations {
    /// `SECURITY_HUB=on`: BatchImportFindings (custom integration) in the
    /// detector's region.
    pub security_hub: bool,
    /// `SECURITY_HUB_ROLE_NAME`: the role assumed in the account a finding
    /// names to import it there, as Security Hub requires of the default
    /// product ARN; unset, every finding is imported in the detector's
    /// account.
    pub security_hub_role_name: Option<String>,
    /// `EVENT_BUS_NAME`: a custom EventBridge bus (name or ARN).
    pub event_bus: Option<String>,
    /// `CHAT_TOPIC_ARN`: an SNS topic AWS Chatbot subscribes to.
    pub chat_topic_arn: Option<String>,
}

fn list(v: Option<&String>) -> Vec<String> {
    v.map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

impl Config {
    /// Build and validate from environment variables (names as in
    /// DEVELOPERS.md).
    pub fn from_parts(env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let get = |k: &str| env.get(k).filter(|v| !v.trim().is_empty());
        let required = |key: &'static str| {
            get(key)
                .map(|v| v.trim().to_string())
                .ok_or(ConfigError::Missing { key })
        };
        let ledger_table = required("LEDGER_TABLE")?;
        let dedupe_table = required("DEDUPE_TABLE")?;
        let alert_topic_arn = required("ALERT_TOPIC_ARN")?;
        if !alert_topic_arn.starts_with("arn:") || !alert_topic_arn.contains(":sns:") {
            return Err(ConfigError::Invalid {
                key: "ALERT_TOPIC_ARN",
                reason: format!("`{alert_topic_arn}` is not an SNS topic ARN"),
            });
        }
        let role_arns = list(get("LAUNCHER_ROLE_ARNS"));
        if role_arns.is_empty() {
            // Without it every governed call would be a bypass: refuse.
            return Err(ConfigError::Missing {
                key: "LAUNCHER_ROLE_ARNS",
            });
        }
        let launcher_roles = role_arns
            .iter()
            .map(|a| RoleRef::from_role_arn(a))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::Invalid {
                key: "LAUNCHER_ROLE_ARNS",
                reason: e.to_string(),
            })?;
        let mut tamper = TamperConfig::parse(
            &list(get("LAUNCHER_FUNCTIONS")),
            &list(get("DETECTOR_FUNCTIONS")),
            &list(get("DEPLOYMENT_ROLE_ARNS")),
            &list(get("PROTECTED_RESOURCES")),
        )
        .map_err(|e| ConfigError::Invalid {
            key: e.list.env(),
            reason: e.to_string(),
        })?;
        // The detector's own tables and topic are always protected, and the
        // ledger's items may be written by the launcher only.
        let ledger = ResourceRef::parse(&ledger_table).ok_or(ConfigError::Missing {
            key: "LEDGER_TABLE",
        })?;
        tamper.ledger_tables.push(ledger.clone());
        tamper.protected_resources.push(ledger);
        tamper.protected_resources.extend(
            [&dedupe_table, &alert_topic_arn]
                .iter()
                .filter_map(|r| ResourceRef::parse(r)),
        );
        let trail_names = list(get("TRAIL_NAMES"));
        let security_hub = match get("SECURITY_HUB").map(|s| s.trim()) {
            None | Some("off") => false,
            Some("on") => true,
            Some(v) => {
                return Err(ConfigError::Invalid {
                    key: "SECURITY_HUB",
                    reason: format!("`{v}`: expected on or off"),
                });
            }
        };
        let security_hub_role_name = get("SECURITY_HUB_ROLE_NAME").map(|s| s.trim().to_string());
        if let Some(name) = &security_hub_role_name
            && !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
        {
            return Err(ConfigError::Invalid {
                key: "SECURITY_HUB_ROLE_NAME",
                reason: format!("`{name}` is not an IAM role name"),
            });
        }
        let chat_topic_arn = get("CHAT_TOPIC_ARN").map(|s| s.trim().to_string());
        if let Some(arn) = &chat_topic_arn
            && (!arn.starts_with("arn:") || !arn.contains(":sns:"))
        {
            return Err(ConfigError::Invalid {
                key: "CHAT_TOPIC_ARN",
                reason: format!("`{arn}` is not an SNS topic ARN"),
            });
        }
        tamper.trail_names.clone_from(&trail_names);
        // The administrator's paths: every list by its variable; the alert
        // topics are the detector's own (and the chat topic) besides, and the
        // API key secret it reads is a Contro1 secret.
        let api_key_secret = get("CONTRO1_API_KEY_SECRET_ARN").map(|s| s.trim().to_string());
        tamper.admin = AdminConfig::parse(|l| {
            let mut values = list(get(l.env()));
            match l {
                TamperList::AlertTopics => values.extend(chat_topic_arn.clone()),
                TamperList::Contro1Secrets => values.extend(api_key_secret.clone()),
                _ => {}
            }
            values
        })
        .map_err(|e| ConfigError::Invalid {
            key: e.list.env(),
            reason: e.to_string(),
        })?;
        let organization_accounts = crate::accounts::parse(&list(get("ORGANIZATION_ACCOUNTS")))
            .map_err(|reason| ConfigError::Invalid {
                key: "ORGANIZATION_ACCOUNTS",
                reason,
            })?;
        let classifier = ClassifierConfig {
            launcher_roles,
            launcher_session_names: list(get("LAUNCHER_SESSION_NAMES")),
            organization_accounts,
            tamper,
        };
        let contro1_base_url = get("CONTRO1_BASE_URL")
            .map(|s| s.trim().trim_end_matches('/').to_string())
            .unwrap_or_else(|| DEFAULT_CONTRO1_BASE_URL.to_string());
        if !(contro1_base_url.starts_with("https://") || contro1_base_url.starts_with("http://")) {
            return Err(ConfigError::Invalid {
                key: "CONTRO1_BASE_URL",
                reason: format!("`{contro1_base_url}` is not an http(s) URL"),
            });
        }
        let contro1_api_key = match (get("CONTRO1_API_KEY"), get("CONTRO1_API_KEY_SECRET_ARN")) {
            (Some(k), _) => ApiKeySource::Plain(k.trim().to_string()),
            (None, Some(arn)) => ApiKeySource::SecretArn(arn.trim().to_string()),
            (None, None) => {
                return Err(ConfigError::Missing {
                    key: "CONTRO1_API_KEY (or CONTRO1_API_KEY_SECRET_ARN)",
                });
            }
        };
        let remediation = match get("REMEDIATION") {
            None => Remediation::Off,
            Some(v) => Remediation::parse(v.trim()).ok_or_else(|| ConfigError::Invalid {
                key: "REMEDIATION",
                reason: format!("`{v}`: expected off, dry-run, suspend or terminate"),
            })?,
        };
        let number = |key: &'static str, default: i64, min: i64, max: i64| match get(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| ConfigError::Invalid {
                    key,
                    reason: format!("`{v}`: expected an integer from {min} to {max}"),
                }),
        };
        // A MicroVM whose ledger write is in flight must never be reported,
        // let alone remediated: the minimum age has a floor of 60 s, and the
        // grace period before remediation is at least the minimum age.
        let min_age_seconds = number("UNMANAGED_MIN_AGE_SECONDS", 300, 60, 86_400)?;
        let grace_seconds = number("REMEDIATION_GRACE_SECONDS", 900, 60, 7 * 86_400)?;
        if grace_seconds < min_age_seconds {
            return Err(ConfigError::Invalid {
                key: "REMEDIATION_GRACE_SECONDS",
                reason: format!(
                    "`{grace_seconds}`: must be at least UNMANAGED_MIN_AGE_SECONDS ({min_age_seconds})"
                ),
            });
        }
        let max_per_sweep = number("REMEDIATION_MAX_PER_SWEEP", 10, 1, 10_000)? as u64;
        let max_fleet_percent = number("REMEDIATION_MAX_FLEET_PERCENT", 20, 1, 100)? as u64;
        let concurrency = number("SWEEP_CONCURRENCY", 8, 1, 64)? as usize;
        // 0 turns the heartbeat off; otherwise at least 5 minutes (CloudTrail
        // delivers a log file about every 5 minutes).
        let heartbeat = number("HEARTBEAT_MAX_SILENCE_SECONDS", 1800, 0, 7 * 86_400)?;
        if (1..300).contains(&heartbeat) {
            return Err(ConfigError::Invalid {
                key: "HEARTBEAT_MAX_SILENCE_SECONDS",
                reason: format!(
                    "`{heartbeat}`: at least 300 (CloudTrail delivers about every 5 minutes), or 0 for off"
                ),
            });
        }
        let check_trails = match get("TRAIL_HEALTH").map(|s| s.trim()) {
            None | Some("on") => true,
            Some("off") => false,
            Some(v) => {
                return Err(ConfigError::Invalid {
                    key: "TRAIL_HEALTH",
                    reason: format!("`{v}`: expected on or off"),
                });
            }
        };
        let (accounts, regions, targets) = sweep_targets(&get)?;
        let target_concurrency = number("SWEEP_TARGET_CONCURRENCY", 16, 1, 256)? as usize;
        Ok(Config {
            targets,
            ledger_table,
            dedupe_table,
            alert_topic_arn,
            classifier,
            contro1_base_url,
            contro1_api_key,
            microvms_endpoint_url: get("MICROVMS_ENDPOINT_URL").map(|s| s.trim().to_string()),
            sweep: SweepConfig {
                remediation,
                limits: RemediationLimits {
                    grace_seconds,
                    max_per_sweep,
                    max_fleet_percent,
                },
                min_age_seconds,
                concurrency,
                check_trails,
                trails: TrailExpectations {
                    names: trail_names,
                    buckets: list(get("TRAIL_BUCKETS")),
                    ..TrailExpectations::default()
                },
                account_id: None,
                region: None,
                integrity_parameter: get("INTEGRITY_BASELINE_PARAMETER")
                    .map(|s| s.trim().to_string()),
                heartbeat_max_silence: (heartbeat > 0).then_some(heartbeat),
                accounts,
                regions,
                target_concurrency,
            },
            destinations: Destinations {
                security_hub,
                security_hub_role_name,
                event_bus: get("EVENT_BUS_NAME").map(|s| s.trim().to_string()),
                chat_topic_arn,
            },
            function_name: get("AWS_LAMBDA_FUNCTION_NAME")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|| "local".to_string()),
        })
    }
}

fn is_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.split('-').count() >= 3
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `SWEEP_ACCOUNTS` (ids or files, or `organization`), `SWEEP_REGIONS`
/// (names, or `enabled`), and how the targets are reached.
fn sweep_targets<'a>(
    get: &impl Fn(&str) -> Option<&'a String>,
) -> Result<(Accounts, Regions, TargetsEnv), ConfigError> {
    let accounts = match get("SWEEP_ACCOUNTS").map(|s| s.trim()) {
        None => Accounts::Own,
        Some("organization") => Accounts::Organization,
        Some(v) => Accounts::List(crate::accounts::parse(&list(Some(&v.to_string()))).map_err(
            |reason| ConfigError::Invalid {
                key: "SWEEP_ACCOUNTS",
                reason,
            },
        )?),
    };
    let regions = match get("SWEEP_REGIONS").map(|s| s.trim()) {
        None => Regions::Own,
        Some("enabled") => Regions::Enabled,
        Some(v) => {
            let l = list(Some(&v.to_string()));
            if let Some(bad) = l.iter().find(|r| !is_region(r)) {
                return Err(ConfigError::Invalid {
                    key: "SWEEP_REGIONS",
                    reason: format!("`{bad}` is not a region name (or use `enabled`)"),
                });
            }
            Regions::List(l)
        }
    };
    let role_name = get("SWEEP_ROLE_NAME").map(|s| s.trim().to_string());
    if let Some(r) = &role_name
        && (r.contains(':') || r.contains('/') || r.len() > 64)
    {
        return Err(ConfigError::Invalid {
            key: "SWEEP_ROLE_NAME",
            reason: format!("`{r}`: a role name, not an ARN or path"),
        });
    }
    if role_name.is_none() && accounts != Accounts::Own {
        return Err(ConfigError::Invalid {
            key: "SWEEP_ACCOUNTS",
            reason: "other accounts are swept through SWEEP_ROLE_NAME, which is not set".into(),
        });
    }
    let ledger_region = get("LEDGER_REGION").map(|s| s.trim().to_string());
    if let Some(r) = ledger_region.as_deref().filter(|r| !is_region(r)) {
        return Err(ConfigError::Invalid {
            key: "LEDGER_REGION",
            reason: format!("`{r}` is not a region name"),
        });
    }
    let microvms_endpoints = match get("MICROVMS_ENDPOINTS") {
        None => HashMap::new(),
        Some(v) => serde_json::from_str::<HashMap<String, String>>(v).map_err(|e| {
            ConfigError::Invalid {
                key: "MICROVMS_ENDPOINTS",
                reason: format!("expected a JSON object of \"ACCOUNT/REGION\": \"URL\": {e}"),
            }
        })?,
    };
    let fan_out_queue = get("SWEEP_QUEUE_URL").map(|s| s.trim().to_string());
    if let Some(q) = fan_out_queue.as_deref().filter(|q| !q.starts_with("http")) {
        return Err(ConfigError::Invalid {
            key: "SWEEP_QUEUE_URL",
            reason: format!("`{q}` is not a queue URL"),
        });
    }
    Ok((
        accounts,
        regions,
        TargetsEnv {
            role_name,
            ledger_region,
            microvms_endpoints,
            fan_out_queue,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> HashMap<String, String> {
        [
            ("LEDGER_TABLE", "ledger"),
            ("DEDUPE_TABLE", "dedupe"),
            ("ALERT_TOPIC_ARN", "arn:aws:sns:us-east-1:111122223333:alerts"),
            (
                "LAUNCHER_ROLE_ARNS",
                "arn:aws:iam::111122223333:role/svc/launcher, arn:aws:iam::444455556666:role/launcher",
            ),
            ("CONTRO1_API_KEY", "sk-test-secret"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn defaults_are_remediation_off_and_trail_health_on() {
        let c = Config::from_parts(&base()).unwrap();
        assert_eq!(c.sweep.remediation, Remediation::Off);
        assert_eq!(c.sweep.limits, RemediationLimits::default());
        assert_eq!(c.sweep.min_age_seconds, 300);
        assert!(c.sweep.check_trails);
        assert_eq!(c.classifier.launcher_roles.len(), 2);
        assert_eq!(c.contro1_base_url, DEFAULT_CONTRO1_BASE_URL);
    }

    #[test]
    fn sweep_targets_are_the_own_account_by_default_else_lists_or_the_organization() {
        let c = Config::from_parts(&base()).unwrap();
        assert_eq!(
            (c.sweep.accounts, c.sweep.regions),
            (Accounts::Own, Regions::Own)
        );
        let mut env = base();
        for (k, v) in [
            ("SWEEP_ACCOUNTS", "111122223333, 444455556666"),
            ("SWEEP_REGIONS", "eu-west-1,us-east-1"),
            ("SWEEP_ROLE_NAME", "microvm-sweep"),
            (
                "SWEEP_QUEUE_URL",
                "https://sqs.us-east-1.amazonaws.com/111122223333/sweep",
            ),
        ] {
            env.insert(k.into(), v.into());
        }
        let c = Config::from_parts(&env).unwrap();
        assert_eq!(
            c.sweep.accounts,
            Accounts::List(vec!["111122223333".into(), "444455556666".into()])
        );
        assert_eq!(
            c.sweep.regions,
            Regions::List(vec!["eu-west-1".into(), "us-east-1".into()])
        );
        assert_eq!(c.targets.role_name.as_deref(), Some("microvm-sweep"));
        assert!(c.targets.fan_out_queue.is_some());
        env.insert("SWEEP_ACCOUNTS".into(), "organization".into());
        env.insert("SWEEP_REGIONS".into(), "enabled".into());
        let c = Config::from_parts(&env).unwrap();
        assert_eq!(
            (c.sweep.accounts, c.sweep.regions),
            (Accounts::Organization, Regions::Enabled)
        );
    }

    #[test]
    fn every_bad_value_names_its_variable() {
        for (key, value) in [
            ("REMEDIATION", "kill"),
            ("REMEDIATION_GRACE_SECONDS", "-5"),
            // Regression: 0 was accepted and terminated a MicroVM started 0 s
            // earlier, whose ledger write was in flight.
            ("REMEDIATION_GRACE_SECONDS", "0"),
            ("REMEDIATION_GRACE_SECONDS", "120"),
            ("UNMANAGED_MIN_AGE_SECONDS", "10"),
            ("REMEDIATION_MAX_PER_SWEEP", "0"),
            ("REMEDIATION_MAX_FLEET_PERCENT", "101"),
            ("HEARTBEAT_MAX_SILENCE_SECONDS", "60"),
            ("SWEEP_CONCURRENCY", "0"),
            ("LAUNCHER_ROLE_ARNS", "arn:aws:iam::1:user/alice"),
            ("ALERT_TOPIC_ARN", "alerts"),
            ("CONTRO1_BASE_URL", "ftp://x"),
            ("TRAIL_HEALTH", "maybe"),
            ("SECURITY_HUB", "yes"),
            ("CHAT_TOPIC_ARN", "slack-channel"),
            (
                "SECURITY_HUB_ROLE_NAME",
                "arn:aws:iam::111122223333:role/import",
            ),
            ("SECURITY_HUB_ROLE_NAME", "import role"),
            ("SWEEP_ACCOUNTS", "1234"),
            ("SWEEP_ACCOUNTS", "organization"),
            ("SWEEP_REGIONS", "mars"),
            ("SWEEP_ROLE_NAME", "arn:aws:iam::111122223333:role/sweep"),
            ("LEDGER_REGION", "EU"),
            ("MICROVMS_ENDPOINTS", "http://x"),
            ("SWEEP_QUEUE_URL", "sweep-queue"),
            ("SWEEP_TARGET_CONCURRENCY", "0"),
        ] {
            let mut env = base();
            env.insert(key.to_string(), value.to_string());
            let e = Config::from_parts(&env).unwrap_err();
            assert!(e.to_string().starts_with(key), "{key}: {e}");
        }
        for key in [
            "LEDGER_TABLE",
            "DEDUPE_TABLE",
            "ALERT_TOPIC_ARN",
            "LAUNCHER_ROLE_ARNS",
        ] {
            let mut env = base();
            env.remove(key);
            let e = Config::from_parts(&env).unwrap_err();
            assert_eq!(e, ConfigError::Missing { key }, "{key}");
        }
    }

    #[test]
    fn the_administrators_paths_are_read_from_their_variables() {
        let mut env = base();
        for (k, v) in [
            (
                "GOVERNANCE_STACKS",
                "arn:aws:cloudformation:us-east-1:111122223333:stack/gov/1a2b3c",
            ),
            (
                "PIPELINE_PRINCIPAL_ARNS",
                "arn:aws:iam::111122223333:role/pipeline",
            ),
            (
                "BREAK_GLASS_ROLE_ARNS",
                "arn:aws:iam::111122223333:role/break-glass",
            ),
            (
                "EXECUTION_ROLE_ARNS",
                "arn:aws:iam::111122223333:role/vm-a,arn:aws:iam::111122223333:role/vm-b",
            ),
            (
                "PREVENTION_POLICY_ARNS",
                "arn:aws:iam::111122223333:policy/gov-deny",
            ),
            ("SCP_IDS", "p-abc123"),
            ("CONTRO1_SECRETS", "gov-contro1-webhook"),
            (
                "CONTRO1_API_KEY_SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:gov-contro1-api-key-AbCdEf",
            ),
            ("CHAT_TOPIC_ARN", "arn:aws:sns:us-east-1:111122223333:chat"),
            ("DETECTOR_LOG_GROUPS", "/aws/lambda/gov-detector"),
            (
                "DETECTOR_ROLE_ARNS",
                "arn:aws:iam::111122223333:role/gov/detector/d",
            ),
            ("TRAIL_BUCKETS", "gov-trail"),
        ] {
            env.insert(k.into(), v.into());
        }
        env.remove("CONTRO1_API_KEY");
        let a = Config::from_parts(&env).unwrap().classifier.tamper.admin;
        assert_eq!(a.governance_stacks[0].name, "gov");
        assert_eq!(a.pipeline_principals.len(), 1);
        assert_eq!(a.break_glass_roles.len(), 1);
        assert_eq!(a.execution_roles.len(), 2);
        assert_eq!(a.prevention_policies.len(), 1);
        assert_eq!(a.scps, ["p-abc123"]);
        // The configured secret and the API key secret the detector reads.
        let secrets: Vec<&str> = a.contro1_secrets.iter().map(|s| s.given.as_str()).collect();
        assert_eq!(
            secrets,
            [
                "gov-contro1-webhook",
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:gov-contro1-api-key-AbCdEf"
            ]
        );
        // The alert topic and the chat topic.
        assert_eq!(
            a.alert_topics,
            [
                "arn:aws:sns:us-east-1:111122223333:alerts",
                "arn:aws:sns:us-east-1:111122223333:chat"
            ]
        );
        assert_eq!(a.detector_log_groups, ["/aws/lambda/gov-detector"]);
        assert_eq!(a.detector_roles.len(), 1);
        assert_eq!(a.trail_buckets, ["gov-trail"]);
        // Unset, every list is empty but the detector's own topic.
        let a = Config::from_parts(&base()).unwrap().classifier.tamper.admin;
        assert!(a.governance_stacks.is_empty() && a.contro1_secrets.is_empty());
        assert_eq!(a.alert_topics.len(), 1);
    }

    #[test]
    fn a_bad_administrators_path_value_names_its_variable() {
        for (key, value) in [
            ("GOVERNANCE_STACKS", "arn:aws:s3:::gov"),
            ("PIPELINE_PRINCIPAL_ARNS", "pipeline"),
            (
                "BREAK_GLASS_ROLE_ARNS",
                "arn:aws:iam::111122223333:user/bob",
            ),
            ("EXECUTION_ROLE_ARNS", "vm-role"),
            ("PREVENTION_POLICY_ARNS", "gov-deny"),
            ("SCP_IDS", "FullAWSAccess"),
            (
                "CONTRO1_SECRETS",
                "arn:aws:ssm:us-east-1:111122223333:parameter/x",
            ),
            ("DETECTOR_ROLE_ARNS", "detector"),
        ] {
            let mut env = base();
            env.insert(key.to_string(), value.to_string());
            let e = Config::from_parts(&env).unwrap_err();
            assert!(e.to_string().starts_with(key), "{key}: {e}");
            assert!(e.to_string().contains(value), "{key}: {e}");
        }
    }

    #[test]
    fn the_api_key_is_never_printed() {
        let c = Config::from_parts(&base()).unwrap();
        assert!(!format!("{c:?}").contains("sk-test-secret"));
    }
}
