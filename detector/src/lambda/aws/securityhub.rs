//! Security Hub, as a custom integration (`BatchImportFindings`, the ASFF
//! encoding of `detector_core::encode::asff`), in one account or across an
//! organization.
//!
//! With the default product ARN, `BatchImportFindings` must be called from
//! the account the finding's `AwsAccountId` names (Security Hub API
//! reference, `BatchImportFindings`; partner guide, "Guidelines for using
//! the BatchImportFindings API"). So a finding about a member account is
//! imported in that account, through the role `SECURITY_HUB_ROLE_NAME`
//! assumed there (allowed only `securityhub:BatchImportFindings`), in the
//! detector's region; Security Hub's cross-region aggregation and the
//! delegated administrator then see it as that account's finding. Without
//! the role, or for the detector's own account, the finding is imported in
//! the detector's account and names the member account in `ProductFields`
//! and its resource.
//!
//! A round of findings goes out as few calls as the limits allow: per
//! account, up to 100 findings and 6 MB a request, each finding at most
//! 240 KB (the ASFF encoder bounds it). Throttling (`LimitExceededException`,
//! 10 requests a second, burst 30) is retried by the SDK's standard retry
//! mode, at most [`MAX_ATTEMPTS`] attempts a request. Each finding Security
//! Hub refuses (`FailedFindings`, by `Id`) fails only the alert it came
//! from, so only that SQS message is retried.

use super::ctx;
use crate::lambda::alert::{Alert, JSON_FIELD_MAX};
use crate::lambda::ports::{AlertChannel, PortError, PortResult};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_securityhub::types as sh;
use detector_core::encode::{asff, is_account_id};
use futures::FutureExt;
use serde_json::Value;
use std::collections::HashMap;

/// Findings in one `BatchImportFindings` request (the API's limit).
pub const BATCH_FINDINGS: usize = 100;
/// Bytes of findings in one request: Security Hub takes 6 MB; this leaves
/// room for the request's own envelope.
pub const BATCH_BYTES: usize = 5 * 1024 * 1024;
/// Attempts per request, throttled or failed transiently, before the
/// findings of that request fail (and their messages are retried by SQS).
pub const MAX_ATTEMPTS: u32 = 5;
/// Requests in flight at once (different accounts, or one account's
/// requests when a round holds more than 100 of its findings).
const CONCURRENCY: usize = 3;

/// Where findings are imported.
#[derive(Debug, Clone)]
pub struct SecurityHubConfig {
    /// The detector's account and region.
    pub own: asff::Importer,
    /// `SECURITY_HUB_ROLE_NAME`: the role assumed in a finding's account to
    /// import it there.
    pub role_name: Option<String>,
}

pub struct SecurityHubChannel {
    sdk: aws_config::SdkConfig,
    cfg: SecurityHubConfig,
    /// One client per account (the assumed role's credentials refresh
    /// themselves).
    clients: tokio::sync::Mutex<HashMap<String, aws_sdk_securityhub::Client>>,
}

impl std::fmt::Debug for SecurityHubChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityHubChannel")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl SecurityHubChannel {
    pub fn new(sdk: &aws_config::SdkConfig, cfg: SecurityHubConfig) -> SecurityHubChannel {
        SecurityHubChannel {
            sdk: sdk.clone(),
            cfg,
            clients: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The importer of `alert`'s finding: its own account when the role is
    /// configured (and the account is a valid id), else the detector's.
    pub fn importer(&self, alert: &Alert) -> asff::Importer {
        let own = &self.cfg.own;
        match (&self.cfg.role_name, alert.finding.account_id.as_deref()) {
            (Some(_), Some(account)) if is_account_id(account) && account != own.account_id() => {
                asff::Importer::new(account, own.region()).unwrap_or_else(|_| own.clone())
            }
            _ => own.clone(),
        }
    }

    async fn client(&self, account: &str) -> aws_sdk_securityhub::Client {
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(account) {
            return c.clone();
        }
        let retry = self
            .sdk
            .retry_config()
            .cloned()
            .unwrap_or_else(aws_config::retry::RetryConfig::standard)
            .with_max_attempts(MAX_ATTEMPTS);
        let mut b = aws_sdk_securityhub::config::Builder::from(&self.sdk).retry_config(retry);
        if account != self.cfg.own.account_id()
            && let Some(role) = &self.cfg.role_name
        {
            let arn = format!(
                "arn:{}:iam::{account}:role/{role}",
                self.cfg.own.partition()
            );
            let provider = aws_config::sts::AssumeRoleProvider::builder(arn)
                .session_name("microvm-detector-securityhub")
                .configure(&self.sdk)
                .build()
                .await;
            b = b.credentials_provider(SharedCredentialsProvider::new(provider));
        }
        let c = aws_sdk_securityhub::Client::from_conf(b.build());
        clients.insert(account.to_string(), c.clone());
        c
    }

    /// One request: the findings of `group` (indexes into the round), all
    /// of one account. One result per index.
    async fn import(
        &self,
        account: &str,
        group: Vec<(usize, sh::AwsSecurityFinding)>,
    ) -> Vec<(usize, Result<(), PortError>)> {
        let what = format!("Security Hub BatchImportFindings in account {account}");
        let client = self.client(account).await;
        let ids: Vec<(usize, String)> = group
            .iter()
            .map(|(i, f)| (*i, f.id().unwrap_or_default().to_string()))
            .collect();
        let findings: Vec<sh::AwsSecurityFinding> = group.into_iter().map(|(_, f)| f).collect();
        // The SDK's request future is large; boxed, it stays off the
        // worker thread's stack.
        let sent = Box::pin(
            client
                .batch_import_findings()
                .set_findings(Some(findings))
                .send(),
        )
        .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) => {
                let e = PortError::new(&what, ctx(e));
                return ids.into_iter().map(|(i, _)| (i, Err(e.clone()))).collect();
            }
        };
        let failed: HashMap<&str, &sh::ImportFindingsError> = out
            .failed_findings()
            .iter()
            .filter_map(|f| Some((f.id()?, f)))
            .collect();
        ids.into_iter()
            .map(|(i, id)| match failed.get(id.as_str()) {
                Some(f) => (
                    i,
                    Err(PortError::new(
                        &what,
                        format!(
                            "finding {id}: {}: {}",
                            f.error_code().unwrap_or("Failed"),
                            f.error_message().unwrap_or("(no message)")
                        ),
                    )),
                ),
                None => (i, Ok(())),
            })
            .collect()
    }
}

/// Split one account's findings into requests within the API's limits.
fn requests(
    findings: Vec<(usize, sh::AwsSecurityFinding, usize)>,
) -> Vec<Vec<(usize, sh::AwsSecurityFinding)>> {
    let mut out: Vec<Vec<(usize, sh::AwsSecurityFinding)>> = Vec::new();
    let mut bytes = 0usize;
    for (i, f, size) in findings {
        match out.last_mut() {
            Some(g) if g.len() < BATCH_FINDINGS && bytes + size <= BATCH_BYTES => {
                g.push((i, f));
                bytes += size;
            }
            _ => {
                out.push(vec![(i, f)]);
                bytes = size;
            }
        }
    }
    out
}

impl AlertChannel for SecurityHubChannel {
    fn name(&self) -> &'static str {
        "securityhub"
    }

    fn deliver<'a>(&'a self, alert: &'a Alert) -> PortResult<'a, ()> {
        async move {
            self.deliver_batch(&[alert])
                .await
                .pop()
                .unwrap_or_else(|| Err(PortError::new("Security Hub", "no result")))
        }
        .boxed()
    }

    /// Per account, requests of up to 100 findings; one result per alert,
    /// in order.
    fn deliver_batch<'a>(
        &'a self,
        alerts: &'a [&'a Alert],
    ) -> futures::future::BoxFuture<'a, Vec<Result<(), PortError>>> {
        use futures::StreamExt;
        async move {
            let now = crate::lambda::alert::utc_timestamp(super::now_epoch());
            let mut results: Vec<Option<Result<(), PortError>>> =
                alerts.iter().map(|_| None).collect();
            let mut by_account: std::collections::BTreeMap<String, Vec<_>> =
                std::collections::BTreeMap::new();
            for (i, alert) in alerts.iter().enumerate() {
                let importer = self.importer(alert);
                let v = asff::finding(&alert.finding.bounded(JSON_FIELD_MAX), &importer, &now);
                let size = v.to_string().len();
                match sdk_finding(&v) {
                    Ok(f) => by_account
                        .entry(importer.account_id().to_string())
                        .or_default()
                        .push((i, f, size)),
                    Err(e) => results[i] = Some(Err(PortError::new("Security Hub finding", e))),
                }
            }
            let calls: Vec<_> = by_account
                .into_iter()
                .flat_map(|(account, fs)| {
                    requests(fs)
                        .into_iter()
                        .map(move |g| (account.clone(), g))
                        .collect::<Vec<_>>()
                })
                .map(|(account, g)| async move { self.import(&account, g).await })
                .collect();
            let done: Vec<Vec<(usize, Result<(), PortError>)>> = futures::stream::iter(calls)
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            for (i, r) in done.into_iter().flatten() {
                results[i] = Some(r);
            }
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(PortError::new("Security Hub", "no result"))))
                .collect()
        }
        .boxed()
    }
}

fn text<'v>(v: &'v Value, path: &str) -> Option<&'v str> {
    v.pointer(path).and_then(Value::as_str)
}

fn texts(v: &Value, path: &str) -> Vec<String> {
    v.pointer(path)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn severity(v: &Value, path: &str) -> sh::Severity {
    sh::Severity::builder()
        .set_label(text(v, &format!("{path}/Label")).map(sh::SeverityLabel::from))
        .set_original(text(v, &format!("{path}/Original")).map(str::to_string))
        .build()
}

/// The SDK's finding from the ASFF encoding (one source of truth for what
/// the finding says: `detector_core::encode::asff`).
pub fn sdk_finding(v: &Value) -> Result<sh::AwsSecurityFinding, String> {
    let s = |k: &str| text(v, &format!("/{k}")).map(str::to_string);
    let resources = v
        .pointer("/Resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            sh::Resource::builder()
                .set_type(text(r, "/Type").map(str::to_string))
                .set_id(text(r, "/Id").map(str::to_string))
                .set_partition(text(r, "/Partition").map(sh::Partition::from))
                .set_region(text(r, "/Region").map(str::to_string))
                .build()
        })
        .collect();
    let product_fields = v
        .pointer("/ProductFields")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, x)| Some((k.clone(), x.as_str()?.to_string())))
                .collect()
        });
    Ok(sh::AwsSecurityFinding::builder()
        .set_schema_version(s("SchemaVersion"))
        .set_id(s("Id"))
        .set_product_arn(s("ProductArn"))
        .set_product_name(s("ProductName"))
        .set_company_name(s("CompanyName"))
        .set_generator_id(s("GeneratorId"))
        .set_aws_account_id(s("AwsAccountId"))
        .set_types(Some(texts(v, "/Types")))
        .set_first_observed_at(s("FirstObservedAt"))
        .set_created_at(s("CreatedAt"))
        .set_updated_at(s("UpdatedAt"))
        .severity(severity(v, "/Severity"))
        .set_title(s("Title"))
        .set_description(s("Description"))
        .remediation(
            sh::Remediation::builder()
                .recommendation(
                    sh::Recommendation::builder()
                        .set_text(text(v, "/Remediation/Recommendation/Text").map(str::to_string))
                        .build(),
                )
                .build(),
        )
        .set_source_url(s("SourceUrl"))
        .set_product_fields(product_fields)
        .set_resources(Some(resources))
        .set_record_state(text(v, "/RecordState").map(sh::RecordState::from))
        .workflow(
            sh::Workflow::builder()
                .set_status(text(v, "/Workflow/Status").map(sh::WorkflowStatus::from))
                .build(),
        )
        .finding_provider_fields(
            sh::FindingProviderFields::builder()
                .severity(
                    sh::FindingProviderSeverity::builder()
                        .set_label(
                            text(v, "/FindingProviderFields/Severity/Label")
                                .map(sh::SeverityLabel::from),
                        )
                        .set_original(
                            text(v, "/FindingProviderFields/Severity/Original").map(str::to_string),
                        )
                        .build(),
                )
                .set_types(Some(texts(v, "/FindingProviderFields/Types")))
                .build(),
        )
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(i: usize) -> sh::AwsSecurityFinding {
        sh::AwsSecurityFinding::builder()
            .id(format!("f{i}"))
            .build()
    }

    #[test]
    fn requests_hold_at_most_100_findings_and_5_mib_in_order() {
        let small: Vec<_> = (0..250).map(|i| (i, finding(i), 1_000)).collect();
        let got: Vec<Vec<usize>> = requests(small)
            .into_iter()
            .map(|g| g.into_iter().map(|(i, _)| i).collect())
            .collect();
        assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [100, 100, 50]);
        assert_eq!(got.concat(), (0..250).collect::<Vec<_>>());
        // 240 KB findings: 21 fit in 5 MiB.
        let big: Vec<_> = (0..50).map(|i| (i, finding(i), 240_000)).collect();
        let sizes: Vec<usize> = requests(big).iter().map(Vec::len).collect();
        assert_eq!(sizes, [21, 21, 8]);
    }
}
