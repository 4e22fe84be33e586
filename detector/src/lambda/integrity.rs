//! The launcher integrity check: a layer that does not depend on CloudTrail.
//!
//! The deployment records what it deployed (an SSM parameter written by the
//! SAM/CDK stack, `INTEGRITY_BASELINE_PARAMETER`): for each governance
//! function, the published version its aliases must point at, its role, its
//! Function URLs and their auth types, its resource-policy grants, its event
//! source mappings and its reserved concurrency. Each sweep reads the live
//! functions (`GetFunction` of `$LATEST` and of the deployed version,
//! `ListAliases`, `GetFunctionUrlConfig`, `GetPolicy`,
//! `ListEventSourceMappings`, `GetFunctionConcurrency`) and compares:
//!
//! - code, role, environment and layers of `$LATEST` against the deployed
//!   (immutable) version — `UpdateFunctionCode` / `UpdateFunctionConfiguration`
//!   change `$LATEST` only;
//! - aliases against the recorded version (and no weighted routing);
//! - URLs, grants, mappings and concurrency against the record.
//!
//! Any difference is a `governance.tampered` finding naming the property.
//! Environment values are compared as SHA-256 digests and only their names
//! are ever shown. Pure: compared over plain values, tested without AWS.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// What the deployment recorded, as the stack writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Baseline {
    pub schema: u32,
    pub functions: Vec<FunctionBaseline>,
}

/// The qualifier key of a function's unqualified URL or grant.
pub const UNQUALIFIED: &str = "$LATEST";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FunctionBaseline {
    /// `launcher` or `detector`.
    pub kind: String,
    /// Unqualified function ARN.
    pub function_arn: String,
    /// The published version the deployment made (ARN or number).
    pub version_arn: String,
    pub execution_role_arn: String,
    /// Alias name → version number it must point at.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Qualifier (alias name, or `$LATEST` for the unqualified function) →
    /// Function URL auth type. No other URL may exist.
    #[serde(default)]
    pub url_auth_types: BTreeMap<String, String>,
    /// `null`: none reserved.
    #[serde(default)]
    pub reserved_concurrency: Option<i64>,
    /// Event source ARNs of the enabled mappings.
    #[serde(default)]
    pub event_source_arns: Vec<String>,
    /// The resource-policy grants the stack made.
    #[serde(default)]
    pub permissions: Vec<Permission>,
}

impl FunctionBaseline {
    /// The deployed version number (`...:function:NAME:7` or `7`).
    pub fn version(&self) -> &str {
        self.version_arn
            .rsplit(':')
            .next()
            .unwrap_or(&self.version_arn)
    }
}

/// One grant of a function's resource policy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub struct Permission {
    /// `*`, an account, an ARN, or a service principal.
    pub principal: String,
    pub action: String,
    /// The alias or version the grant is on; `None` for the function.
    #[serde(default)]
    pub qualifier: Option<String>,
}

/// Code and configuration of one version of a function.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub code_sha256: String,
    pub role: String,
    /// Variable name → SHA-256 of its value (values never leave the adapter).
    pub environment: BTreeMap<String, String>,
    pub layers: Vec<String>,
}

/// One alias as ListAliases shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AliasInfo {
    pub version: String,
    /// Weighted routing to another version.
    pub routing: Option<String>,
}

/// What the function looks like now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedFunction {
    pub latest: Snapshot,
    /// The deployed version; `None` when it no longer exists.
    pub deployed: Option<Snapshot>,
    pub aliases: BTreeMap<String, AliasInfo>,
    /// Qualifier (`$LATEST` for unqualified) → auth type.
    pub urls: BTreeMap<String, String>,
    pub permissions: BTreeSet<Permission>,
    /// Event source ARN → mapping state (`Enabled`, `Disabled`, ...).
    pub event_sources: BTreeMap<String, String>,
    pub reserved_concurrency: Option<i64>,
}

/// One property that differs from the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// `code`, `role`, `environment`, `layers`, `alias:NAME`, `url:QUALIFIER`,
    /// `permissions`, `event-source-mappings`, `concurrency`, `function`.
    pub property: String,
    pub detail: String,
}

fn drift(property: impl Into<String>, detail: impl Into<String>) -> Drift {
    Drift {
        property: property.into(),
        detail: detail.into(),
    }
}

/// Parse the baseline parameter's value.
pub fn parse_baseline(text: &str) -> Result<Baseline, String> {
    let b: Baseline = serde_json::from_str(text).map_err(|e| format!("not a baseline: {e}"))?;
    if b.schema != 1 {
        return Err(format!(
            "baseline schema {} is not supported (expected 1)",
            b.schema
        ));
    }
    if b.functions.is_empty() {
        return Err("the baseline names no function".into());
    }
    Ok(b)
}

fn list(items: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let v: Vec<String> = items.into_iter().map(|s| s.as_ref().to_string()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Every property of `o` that differs from `b`, in a stable order.
pub fn compare(b: &FunctionBaseline, o: &ObservedFunction) -> Vec<Drift> {
    let mut out = Vec::new();
    match &o.deployed {
        None => out.push(drift(
            "version",
            format!("the deployed version {} no longer exists", b.version()),
        )),
        Some(d) => {
            if o.latest.code_sha256 != d.code_sha256 {
                out.push(drift(
                    "code",
                    format!(
                        "$LATEST code {} is not the deployed version's {}",
                        o.latest.code_sha256, d.code_sha256
                    ),
                ));
            }
            if o.latest.environment != d.environment {
                let keys =
                    |m: &BTreeMap<String, String>| m.keys().cloned().collect::<BTreeSet<_>>();
                let (l, v) = (keys(&o.latest.environment), keys(&d.environment));
                let changed: Vec<&String> = l
                    .intersection(&v)
                    .filter(|k| o.latest.environment[*k] != d.environment[*k])
                    .collect();
                out.push(drift(
                    "environment",
                    format!(
                        "variables added: {}; removed: {}; changed: {}",
                        list(l.difference(&v)),
                        list(v.difference(&l)),
                        list(changed)
                    ),
                ));
            }
            if o.latest.layers != d.layers {
                out.push(drift(
                    "layers",
                    format!(
                        "$LATEST layers {} are not the deployed version's {}",
                        list(&o.latest.layers),
                        list(&d.layers)
                    ),
                ));
            }
        }
    }
    for (which, role) in [
        ("$LATEST", Some(&o.latest.role)),
        ("the deployed version", o.deployed.as_ref().map(|d| &d.role)),
    ] {
        if let Some(role) = role
            && *role != b.execution_role_arn
        {
            out.push(drift(
                "role",
                format!("{which} runs as {role}, not {}", b.execution_role_arn),
            ));
            break;
        }
    }
    for (name, want) in &b.aliases {
        match o.aliases.get(name) {
            None => out.push(drift(format!("alias:{name}"), "the alias is missing")),
            Some(a) if a.version != *want => out.push(drift(
                format!("alias:{name}"),
                format!("points at version {}, not {want}", a.version),
            )),
            Some(AliasInfo {
                routing: Some(r), ..
            }) => out.push(drift(
                format!("alias:{name}"),
                format!("routes traffic to other versions ({r})"),
            )),
            Some(_) => {}
        }
    }
    for name in o.aliases.keys().filter(|n| !b.aliases.contains_key(*n)) {
        out.push(drift(
            format!("alias:{name}"),
            format!(
                "an alias the deployment did not make (version {})",
                o.aliases[name].version
            ),
        ));
    }
    let qualifiers: BTreeSet<&String> = b.url_auth_types.keys().chain(o.urls.keys()).collect();
    for q in qualifiers {
        match (b.url_auth_types.get(q), o.urls.get(q)) {
            (Some(want), Some(got)) if want != got => out.push(drift(
                format!("url:{q}"),
                format!("auth type {got}, not {want}"),
            )),
            (Some(_), None) => out.push(drift(format!("url:{q}"), "the Function URL is missing")),
            (None, Some(got)) => out.push(drift(
                format!("url:{q}"),
                format!("a Function URL the deployment did not make (auth type {got})"),
            )),
            _ => {}
        }
    }
    let want: BTreeSet<&Permission> = b.permissions.iter().collect();
    let got: BTreeSet<&Permission> = o.permissions.iter().collect();
    let show = |p: &&Permission| {
        format!(
            "{} {} on {}",
            p.principal,
            p.action,
            p.qualifier.as_deref().unwrap_or("the function")
        )
    };
    let extra: Vec<String> = got.difference(&want).map(show).collect();
    let missing: Vec<String> = want.difference(&got).map(show).collect();
    if !extra.is_empty() || !missing.is_empty() {
        out.push(drift(
            "permissions",
            format!(
                "granted beyond the deployment: {}; missing: {}",
                list(extra),
                list(missing)
            ),
        ));
    }
    let enabled: BTreeSet<&String> = o
        .event_sources
        .iter()
        .filter(|(_, state)| {
            matches!(
                state.as_str(),
                "Enabled" | "Enabling" | "Updating" | "Creating"
            )
        })
        .map(|(arn, _)| arn)
        .collect();
    let expected: BTreeSet<&String> = b.event_source_arns.iter().collect();
    if enabled != expected {
        out.push(drift(
            "event-source-mappings",
            format!(
                "enabled: {}; expected: {}",
                list(enabled.iter().map(|s| s.as_str())),
                list(expected.iter().map(|s| s.as_str()))
            ),
        ));
    }
    if o.reserved_concurrency != b.reserved_concurrency {
        let show = |c: Option<i64>| c.map_or("none".to_string(), |c| c.to_string());
        out.push(drift(
            "concurrency",
            format!(
                "reserved concurrency {}, not {}{}",
                show(o.reserved_concurrency),
                show(b.reserved_concurrency),
                if o.reserved_concurrency == Some(0) {
                    " (the function can no longer run)"
                } else {
                    ""
                }
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(code: &str) -> Snapshot {
        Snapshot {
            code_sha256: code.into(),
            role: "arn:aws:iam::111122223333:role/gov/launcher".into(),
            environment: [("LEDGER_TABLE".to_string(), "h1".to_string())].into(),
            layers: vec![],
        }
    }

    fn baseline() -> FunctionBaseline {
        parse_baseline(
            r#"{"schema": 1, "functions": [{"kind": "launcher",
              "function_arn": "arn:aws:lambda:us-east-1:111122223333:function:gov-launcher",
              "version_arn": "arn:aws:lambda:us-east-1:111122223333:function:gov-launcher:7",
              "execution_role_arn": "arn:aws:iam::111122223333:role/gov/launcher",
              "aliases": {"live": "7", "contro1-webhook": "7"},
              "url_auth_types": {"live": "AWS_IAM", "contro1-webhook": "NONE"},
              "reserved_concurrency": 20,
              "event_source_arns": [],
              "permissions": [{"principal": "*", "action": "lambda:InvokeFunctionUrl", "qualifier": "contro1-webhook"}]}]}"#,
        )
        .unwrap()
        .functions
        .remove(0)
    }

    fn as_deployed() -> ObservedFunction {
        ObservedFunction {
            latest: snapshot("sha-A"),
            deployed: Some(snapshot("sha-A")),
            aliases: [
                (
                    "live".to_string(),
                    AliasInfo {
                        version: "7".into(),
                        routing: None,
                    },
                ),
                (
                    "contro1-webhook".to_string(),
                    AliasInfo {
                        version: "7".into(),
                        routing: None,
                    },
                ),
            ]
            .into(),
            urls: [
                ("live".to_string(), "AWS_IAM".to_string()),
                ("contro1-webhook".to_string(), "NONE".to_string()),
            ]
            .into(),
            permissions: [Permission {
                principal: "*".into(),
                action: "lambda:InvokeFunctionUrl".into(),
                qualifier: Some("contro1-webhook".into()),
            }]
            .into(),
            event_sources: BTreeMap::new(),
            reserved_concurrency: Some(20),
        }
    }

    fn properties(o: &ObservedFunction) -> Vec<String> {
        compare(&baseline(), o)
            .into_iter()
            .map(|d| d.property)
            .collect()
    }

    #[test]
    fn the_function_as_deployed_has_no_drift() {
        assert_eq!(compare(&baseline(), &as_deployed()), vec![]);
        assert_eq!(baseline().version(), "7");
    }

    #[test]
    fn replaced_code_changed_environment_and_a_new_layer_are_each_named() {
        let mut o = as_deployed();
        o.latest.code_sha256 = "sha-EVIL".into();
        o.latest
            .environment
            .insert("LEDGER_TABLE".into(), "h2".into());
        o.latest.environment.insert("EXTRA".into(), "h3".into());
        o.latest
            .layers
            .push("arn:aws:lambda:us-east-1:1:layer:x:1".into());
        let d = compare(&baseline(), &o);
        let props: Vec<&str> = d.iter().map(|d| d.property.as_str()).collect();
        assert_eq!(props, ["code", "environment", "layers"]);
        assert!(d[0].detail.contains("sha-EVIL"));
        assert_eq!(
            d[1].detail,
            "variables added: EXTRA; removed: none; changed: LEDGER_TABLE"
        );
    }

    #[test]
    fn aliases_urls_grants_mappings_and_concurrency_are_compared_with_the_record() {
        let mut o = as_deployed();
        o.aliases.get_mut("live").unwrap().version = "8".into();
        o.aliases.insert(
            "shadow".into(),
            AliasInfo {
                version: "9".into(),
                routing: None,
            },
        );
        o.urls.insert("live".into(), "NONE".into());
        o.permissions.insert(Permission {
            principal: "*".into(),
            action: "lambda:InvokeFunction".into(),
            qualifier: None,
        });
        o.event_sources
            .insert("arn:aws:sqs:us-east-1:1:evil".into(), "Enabled".into());
        o.reserved_concurrency = Some(0);
        assert_eq!(
            properties(&o),
            [
                "alias:live",
                "alias:shadow",
                "url:live",
                "permissions",
                "event-source-mappings",
                "concurrency"
            ]
        );
    }

    #[test]
    fn a_disabled_mapping_a_missing_version_and_another_role_are_drift() {
        let mut b = baseline();
        b.event_source_arns = vec!["arn:aws:sqs:us-east-1:1:q".into()];
        let mut o = as_deployed();
        o.event_sources
            .insert("arn:aws:sqs:us-east-1:1:q".into(), "Disabled".into());
        o.deployed = None;
        o.latest.role = "arn:aws:iam::111122223333:role/other".into();
        let props: Vec<String> = compare(&b, &o).into_iter().map(|d| d.property).collect();
        assert_eq!(props, ["version", "role", "event-source-mappings"]);
    }

    #[test]
    fn a_bad_baseline_is_refused_with_the_reason() {
        assert!(parse_baseline("{}").unwrap_err().contains("not a baseline"));
        assert!(
            parse_baseline(r#"{"schema": 2, "functions": []}"#)
                .unwrap_err()
                .contains("schema 2")
        );
        assert!(
            parse_baseline(r#"{"schema": 1, "functions": []}"#)
                .unwrap_err()
                .contains("no function")
        );
    }
}
