//! Lambda and SSM for the integrity check: the recorded baseline (an SSM
//! parameter) and the live state of each governance function. Environment
//! values are hashed here and never leave this module.

use super::ctx;
use crate::lambda::integrity::{
    AliasInfo, FunctionBaseline, ObservedFunction, Permission, Snapshot, UNQUALIFIED,
};
use crate::lambda::ports::{FunctionsApi, PortError, PortResult};
use futures::FutureExt;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Functions are read by name with a client for the region their ARN names
/// (a client per region, made once).
#[derive(Debug)]
pub struct SdkFunctions {
    sdk: aws_config::SdkConfig,
    lambda: aws_sdk_lambda::Client,
    by_region: std::sync::Mutex<std::collections::HashMap<String, aws_sdk_lambda::Client>>,
    ssm: aws_sdk_ssm::Client,
}

/// `arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME` → (NAME, REGION).
fn name_and_region(arn: &str) -> (&str, Option<&str>) {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "lambda", region, _, "function", name, ..] => {
            (name, Some(*region).filter(|r| !r.is_empty()))
        }
        _ => (arn, None),
    }
}

impl SdkFunctions {
    pub fn new(sdk: &aws_config::SdkConfig) -> SdkFunctions {
        SdkFunctions {
            sdk: sdk.clone(),
            lambda: aws_sdk_lambda::Client::new(sdk),
            by_region: std::sync::Mutex::new(std::collections::HashMap::new()),
            ssm: aws_sdk_ssm::Client::new(sdk),
        }
    }

    fn client_for(&self, region: Option<&str>) -> aws_sdk_lambda::Client {
        let Some(region) = region.filter(|r| Some(*r) != self.sdk.region().map(|x| x.as_ref()))
        else {
            return self.lambda.clone();
        };
        let mut map = self.by_region.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(region.to_string())
            .or_insert_with(|| {
                aws_sdk_lambda::Client::from_conf(
                    aws_sdk_lambda::config::Builder::from(&self.sdk)
                        .region(aws_config::Region::new(region.to_string()))
                        .build(),
                )
            })
            .clone()
    }

    /// Code and configuration of one version (`None`: `$LATEST`).
    async fn snapshot(
        &self,
        lambda: &aws_sdk_lambda::Client,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<Option<Snapshot>, PortError> {
        let what = || {
            format!(
                "Lambda GetFunction {function}:{}",
                qualifier.unwrap_or(UNQUALIFIED)
            )
        };
        let out = match lambda
            .get_function()
            .function_name(function)
            .set_qualifier(qualifier.map(str::to_string))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(PortError::new(what(), ctx(e))),
        };
        let c = out
            .configuration()
            .ok_or_else(|| PortError::new(what(), "the response has no configuration"))?;
        let environment = c
            .environment()
            .and_then(|e| e.variables())
            .map(|vars| {
                vars.iter()
                    .map(|(k, v)| (k.clone(), hex::encode(Sha256::digest(v.as_bytes()))))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(Snapshot {
            code_sha256: c.code_sha256().unwrap_or_default().to_string(),
            role: c.role().unwrap_or_default().to_string(),
            environment,
            layers: c
                .layers()
                .iter()
                .filter_map(|l| l.arn().map(str::to_string))
                .collect(),
        }))
    }

    async fn aliases(
        &self,
        lambda: &aws_sdk_lambda::Client,
        function: &str,
    ) -> Result<BTreeMap<String, AliasInfo>, PortError> {
        let mut out = BTreeMap::new();
        let mut marker = None;
        loop {
            let page = lambda
                .list_aliases()
                .function_name(function)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| PortError::new(format!("Lambda ListAliases {function}"), ctx(e)))?;
            for a in page.aliases() {
                let routing = a
                    .routing_config()
                    .and_then(|r| r.additional_version_weights())
                    .filter(|w| !w.is_empty())
                    .map(|w| {
                        w.iter()
                            .map(|(v, weight)| format!("version {v} at {weight}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    });
                out.insert(
                    a.name().unwrap_or_default().to_string(),
                    AliasInfo {
                        version: a.function_version().unwrap_or_default().to_string(),
                        routing,
                    },
                );
            }
            match page.next_marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// The URL asked for by one qualifier (`None` for the unqualified
    /// function), as (the qualifier its `FunctionArn` names, auth type): a
    /// URL is attributed to what the service says it belongs to.
    async fn url(
        &self,
        lambda: &aws_sdk_lambda::Client,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<Option<(String, String)>, PortError> {
        match lambda
            .get_function_url_config()
            .function_name(function)
            .set_qualifier(qualifier.map(str::to_string))
            .send()
            .await
        {
            Ok(out) => {
                let owner = out
                    .function_arn()
                    .split_once(":function:")
                    .and_then(|(_, rest)| rest.split_once(':'))
                    .map_or(UNQUALIFIED, |(_, q)| q)
                    .to_string();
                Ok(Some((owner, out.auth_type().as_str().to_string())))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(PortError::new(
                format!(
                    "Lambda GetFunctionUrlConfig {function}:{}",
                    qualifier.unwrap_or(UNQUALIFIED)
                ),
                ctx(e),
            )),
        }
    }

    /// The grants of one qualifier's resource policy.
    async fn grants(
        &self,
        lambda: &aws_sdk_lambda::Client,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<Vec<Permission>, PortError> {
        let policy = match lambda
            .get_policy()
            .function_name(function)
            .set_qualifier(qualifier.map(str::to_string))
            .send()
            .await
        {
            Ok(out) => out.policy().unwrap_or_default().to_string(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(Vec::new());
            }
            Err(e) => {
                return Err(PortError::new(
                    format!("Lambda GetPolicy {function}"),
                    ctx(e),
                ));
            }
        };
        parse_policy(&policy).map_err(|e| PortError::new(format!("Lambda GetPolicy {function}"), e))
    }

    async fn event_sources(
        &self,
        lambda: &aws_sdk_lambda::Client,
        function: &str,
    ) -> Result<BTreeMap<String, String>, PortError> {
        let mut out = BTreeMap::new();
        let mut marker = None;
        loop {
            let page = lambda
                .list_event_source_mappings()
                .function_name(function)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| {
                    PortError::new(format!("Lambda ListEventSourceMappings {function}"), ctx(e))
                })?;
            for m in page.event_source_mappings() {
                if let Some(arn) = m.event_source_arn() {
                    out.insert(arn.to_string(), m.state().unwrap_or("Unknown").to_string());
                }
            }
            match page.next_marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => return Ok(out),
            }
        }
    }
}

/// The grants of a resource policy: principal (`*`, a service, an account
/// or ARN), each action, and the qualifier the statement's resource names.
pub fn parse_policy(policy: &str) -> Result<Vec<Permission>, String> {
    let doc: Value =
        serde_json::from_str(policy).map_err(|e| format!("the policy is not JSON: {e}"))?;
    let mut out = Vec::new();
    let as_list = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        }
    };
    for st in doc
        .get("Statement")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if st.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        let principals: Vec<String> = match st.get("Principal") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Object(m)) => m.values().flat_map(|v| as_list(Some(v))).collect(),
            _ => vec!["(none)".to_string()],
        };
        let qualifier = st
            .get("Resource")
            .and_then(Value::as_str)
            .and_then(|r| r.split_once(":function:"))
            .and_then(|(_, rest)| rest.split_once(':'))
            .map(|(_, q)| q.to_string());
        for principal in &principals {
            for action in as_list(st.get("Action")) {
                out.push(Permission {
                    principal: principal.clone(),
                    action,
                    qualifier: qualifier.clone(),
                });
            }
        }
    }
    Ok(out)
}

impl FunctionsApi for SdkFunctions {
    fn baseline<'a>(&'a self, parameter: &'a str) -> PortResult<'a, String> {
        async move {
            let out = self
                .ssm
                .get_parameter()
                .name(parameter)
                .send()
                .await
                .map_err(|e| PortError::new(format!("SSM GetParameter {parameter}"), ctx(e)))?;
            out.parameter()
                .and_then(|p| p.value())
                .map(str::to_string)
                .ok_or_else(|| {
                    PortError::new(
                        format!("SSM GetParameter {parameter}"),
                        "the parameter has no value",
                    )
                })
        }
        .boxed()
    }

    fn observe<'a>(&'a self, b: &'a FunctionBaseline) -> PortResult<'a, Option<ObservedFunction>> {
        async move {
            let (f, region) = name_and_region(&b.function_arn);
            let lambda = self.client_for(region);
            let l = &lambda;
            let Some(latest) = self.snapshot(l, f, None).await? else {
                return Ok(None);
            };
            let deployed = self.snapshot(l, f, Some(b.version())).await?;
            let aliases = self.aliases(l, f).await?;
            // URLs and grants live on the function and on each alias.
            let qualifiers: Vec<Option<&str>> = std::iter::once(None)
                .chain(aliases.keys().map(|a| Some(a.as_str())))
                .collect();
            let mut urls = BTreeMap::new();
            let mut permissions = BTreeSet::new();
            for q in qualifiers {
                if let Some((owner, auth)) = self.url(l, f, q).await? {
                    urls.insert(owner, auth);
                }
                permissions.extend(self.grants(l, f, q).await?);
            }
            let event_sources = self.event_sources(l, f).await?;
            let reserved_concurrency = lambda
                .get_function_concurrency()
                .function_name(f)
                .send()
                .await
                .map_err(|e| PortError::new(format!("Lambda GetFunctionConcurrency {f}"), ctx(e)))?
                .reserved_concurrent_executions()
                .map(i64::from);
            Ok(Some(ObservedFunction {
                latest,
                deployed,
                aliases,
                urls,
                permissions,
                event_sources,
                reserved_concurrency,
            }))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_statements_become_grants_with_their_qualifier() {
        let p = r#"{"Version":"2012-10-17","Id":"default","Statement":[
          {"Sid":"a","Effect":"Allow","Principal":"*","Action":"lambda:InvokeFunctionUrl",
           "Resource":"arn:aws:lambda:us-east-1:1:function:gov-launcher:contro1-webhook",
           "Condition":{"StringEquals":{"lambda:FunctionUrlAuthType":"NONE"}}},
          {"Sid":"b","Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},
           "Action":["lambda:InvokeFunction"],"Resource":"arn:aws:lambda:us-east-1:1:function:gov-detector"},
          {"Sid":"c","Effect":"Deny","Principal":"*","Action":"lambda:*","Resource":"*"}]}"#;
        let g = parse_policy(p).unwrap();
        assert_eq!(
            g,
            vec![
                Permission {
                    principal: "*".into(),
                    action: "lambda:InvokeFunctionUrl".into(),
                    qualifier: Some("contro1-webhook".into())
                },
                Permission {
                    principal: "events.amazonaws.com".into(),
                    action: "lambda:InvokeFunction".into(),
                    qualifier: None
                },
            ]
        );
        assert!(parse_policy("not json").is_err());
    }
}
