//! AWS adapters of the detector's ports: DynamoDB (dedupe table, ledger via
//! `shared_aws::DynamoLedger`), SNS (alerts), the MicroVMs API (sweep and
//! remediation) and CloudTrail (trail health). Each is a thin translation;
//! every error keeps the SDK's full context (`DisplayErrorContext`).

use super::alert::{Alert, ListedMicrovm};
use super::ports::{
    AlertChannel, DedupeStore, FieldCondition, LedgerReader, MicrovmPage, MicrovmsApi, ObjectBody,
    ObjectStore, PortError, PortResult, TrailInfo, TrailsApi,
};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sns::types::MessageAttributeValue;
use futures::FutureExt;
use std::collections::HashSet;

/// A service error as `Code: message` (the raw HTTP response the SDK's
/// `DisplayErrorContext` would add is noise in a log line); transport and
/// other errors with their full context.
fn ctx<E>(e: E) -> String
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error,
{
    match e.code() {
        Some(code) => format!("{code}: {}", e.message().unwrap_or("(no message)")),
        None => aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
    }
}

fn ctx_plain(e: impl std::error::Error) -> String {
    aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()
}

/// The dedupe table: partition key `pk` (string), TTL attribute `expires_at`.
#[derive(Debug, Clone)]
pub struct DynamoDedupe {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDedupe {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> DynamoDedupe {
        DynamoDedupe {
            client,
            table: table.into(),
        }
    }

    fn what(&self, op: &str) -> String {
        format!("dedupe table `{}`: {op}", self.table)
    }
}

fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl DedupeStore for DynamoDedupe {
    fn is_marked<'a>(&'a self, key: &'a str) -> PortResult<'a, bool> {
        async move {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key.to_string()))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| PortError::new(self.what("GetItem"), ctx(e)))?;
            let Some(item) = out.item() else {
                return Ok(false);
            };
            // TTL deletion is lazy (up to two days late): an expired mark is
            // no mark.
            let expires = item
                .get("expires_at")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok());
            Ok(expires.is_none_or(|t| t > now_epoch()))
        }
        .boxed()
    }

    fn mark<'a>(&'a self, key: &'a str, expires_at: i64) -> PortResult<'a, ()> {
        async move {
            let res = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", AttributeValue::S(key.to_string()))
                .item("expires_at", AttributeValue::N(expires_at.to_string()))
                .item("alerted_at", AttributeValue::N(now_epoch().to_string()))
                .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
                .expression_attribute_values(":now", AttributeValue::N(now_epoch().to_string()))
                .send()
                .await;
            match res {
                Ok(_) => Ok(()),
                // Someone else alerted and marked it concurrently: fine.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                {
                    Ok(())
                }
                Err(e) => Err(PortError::new(self.what("PutItem"), ctx(e))),
            }
        }
        .boxed()
    }
}

/// Alerts to the security team's SNS topic. The subject and the first lines
/// of the message are for a human; the full JSON follows in the message, and
/// `event`, `severity` and `rule` are message attributes (for subscription
/// filter policies).
#[derive(Debug, Clone)]
pub struct SnsChannel {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsChannel {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> SnsChannel {
        SnsChannel {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

fn string_attr(v: &str) -> Result<MessageAttributeValue, PortError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .map_err(|e| PortError::new("SNS message attribute", ctx_plain(e)))
}

impl AlertChannel for SnsChannel {
    fn name(&self) -> &'static str {
        "sns"
    }

    fn deliver<'a>(&'a self, alert: &'a Alert) -> PortResult<'a, ()> {
        async move {
            self.client
                .publish()
                .topic_arn(&self.topic_arn)
                .subject(alert.subject())
                .message(alert.message())
                .message_attributes("event", string_attr(alert.finding.event.as_str())?)
                .message_attributes("severity", string_attr(alert.severity().as_str())?)
                .message_attributes("rule", string_attr(alert.rule().as_str())?)
                .send()
                .await
                .map_err(|e| {
                    PortError::new(format!("SNS Publish to `{}`", self.topic_arn), ctx(e))
                })?;
            Ok(())
        }
        .boxed()
    }
}

/// The launcher's ledger (batched reads, 100 keys a request).
impl LedgerReader for shared_aws::DynamoLedger {
    fn known_microvms<'a>(&'a self, ids: &'a [String]) -> PortResult<'a, HashSet<String>> {
        async move {
            shared_aws::DynamoLedger::known_microvms(self, ids)
                .await
                .map_err(|e| PortError::new("ledger", e.to_string()))
        }
        .boxed()
    }

    fn known_requests<'a>(&'a self, request_ids: &'a [String]) -> PortResult<'a, HashSet<String>> {
        async move {
            shared_aws::DynamoLedger::known_requests(self, request_ids)
                .await
                .map_err(|e| PortError::new("ledger", e.to_string()))
        }
        .boxed()
    }
}

/// The MicroVMs API through `aws-sdk-lambdamicrovms`.
#[derive(Debug, Clone)]
pub struct SdkMicrovms {
    client: aws_sdk_lambdamicrovms::Client,
}

impl SdkMicrovms {
    pub fn new(client: aws_sdk_lambdamicrovms::Client) -> SdkMicrovms {
        SdkMicrovms { client }
    }
}

impl MicrovmsApi for SdkMicrovms {
    fn list_page<'a>(
        &'a self,
        next_token: Option<&'a str>,
        max_results: i32,
    ) -> PortResult<'a, MicrovmPage> {
        async move {
            let out = self
                .client
                .list_microvms()
                .max_results(max_results)
                .set_next_token(next_token.map(str::to_string))
                .send()
                .await
                .map_err(|e| PortError::new("MicroVMs ListMicrovms", ctx(e)))?;
            Ok(MicrovmPage {
                items: out
                    .items()
                    .iter()
                    .map(|i| ListedMicrovm {
                        microvm_id: i.microvm_id().to_string(),
                        state: i.state().as_str().to_string(),
                        image_arn: Some(i.image_arn().to_string()).filter(|s| !s.is_empty()),
                        image_version: Some(i.image_version().to_string())
                            .filter(|s| !s.is_empty()),
                        started_at: Some(i.started_at().secs()),
                    })
                    .collect(),
                next_token: out.next_token().map(str::to_string),
            })
        }
        .boxed()
    }

    fn suspend<'a>(&'a self, microvm_id: &'a str) -> PortResult<'a, ()> {
        async move {
            self.client
                .suspend_microvm()
                .microvm_identifier(microvm_id)
                .send()
                .await
                .map_err(|e| {
                    PortError::new(format!("MicroVMs SuspendMicrovm {microvm_id}"), ctx(e))
                })?;
            Ok(())
        }
        .boxed()
    }

    fn terminate<'a>(&'a self, microvm_id: &'a str) -> PortResult<'a, ()> {
        async move {
            self.client
                .terminate_microvm()
                .microvm_identifier(microvm_id)
                .send()
                .await
                .map_err(|e| {
                    PortError::new(format!("MicroVMs TerminateMicrovm {microvm_id}"), ctx(e))
                })?;
            Ok(())
        }
        .boxed()
    }
}

/// CloudTrail through `aws-sdk-cloudtrail`: DescribeTrails in the
/// detector's region (shadow trails included, so a multi-region or
/// organization trail homed elsewhere counts), then GetTrailStatus and
/// GetEventSelectors for each trail **in its home region** (a client per
/// region, made once). A trail that cannot be read carries its error; the
/// others are still read.
#[derive(Debug)]
pub struct SdkTrails {
    sdk: aws_config::SdkConfig,
    client: aws_sdk_cloudtrail::Client,
    by_region: std::sync::Mutex<std::collections::HashMap<String, aws_sdk_cloudtrail::Client>>,
}

impl SdkTrails {
    pub fn new(sdk: &aws_config::SdkConfig) -> SdkTrails {
        SdkTrails {
            sdk: sdk.clone(),
            client: aws_sdk_cloudtrail::Client::new(sdk),
            by_region: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn client_for(&self, region: Option<&str>) -> aws_sdk_cloudtrail::Client {
        let Some(region) = region.filter(|r| Some(*r) != self.sdk.region().map(|x| x.as_ref()))
        else {
            return self.client.clone();
        };
        let mut map = self.by_region.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(region.to_string())
            .or_insert_with(|| {
                aws_sdk_cloudtrail::Client::from_conf(
                    aws_sdk_cloudtrail::config::Builder::from(&self.sdk)
                        .region(aws_config::Region::new(region.to_string()))
                        .build(),
                )
            })
            .clone()
    }

    async fn read_trail(&self, t: &aws_sdk_cloudtrail::types::Trail) -> Result<TrailInfo, String> {
        let name = t.name().unwrap_or_default().to_string();
        let arn = t.trail_arn().unwrap_or_default().to_string();
        let id = if arn.is_empty() {
            name.clone()
        } else {
            arn.clone()
        };
        let client = self.client_for(t.home_region());
        let status = client
            .get_trail_status()
            .name(&id)
            .send()
            .await
            .map_err(|e| format!("GetTrailStatus: {}", ctx(e)))?;
        let sel = client
            .get_event_selectors()
            .trail_name(&id)
            .send()
            .await
            .map_err(|e| format!("GetEventSelectors: {}", ctx(e)))?;
        let nonempty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_string);
        Ok(TrailInfo {
            name,
            arn,
            home_region: t.home_region().map(str::to_string),
            is_multi_region: t.is_multi_region_trail().unwrap_or(false),
            is_organization_trail: t.is_organization_trail().unwrap_or(false),
            s3_bucket_name: t.s3_bucket_name().map(str::to_string),
            is_logging: status.is_logging().unwrap_or(false),
            advanced_selectors: sel
                .advanced_event_selectors()
                .iter()
                .map(|s| {
                    s.field_selectors()
                        .iter()
                        .map(|f| FieldCondition {
                            field: f.field().to_string(),
                            equals: f.equals().to_vec(),
                            not_equals: f.not_equals().to_vec(),
                            starts_with: f.starts_with().to_vec(),
                            not_starts_with: f.not_starts_with().to_vec(),
                            ends_with: f.ends_with().to_vec(),
                            not_ends_with: f.not_ends_with().to_vec(),
                        })
                        .collect()
                })
                .collect(),
            basic_selectors: sel.event_selectors().len(),
            latest_delivery_error: nonempty(status.latest_delivery_error()),
            latest_digest_delivery_error: nonempty(status.latest_digest_delivery_error()),
            read_error: None,
        })
    }
}

impl TrailsApi for SdkTrails {
    fn trails(&self) -> PortResult<'_, Vec<TrailInfo>> {
        async move {
            let out = self
                .client
                .describe_trails()
                .include_shadow_trails(true)
                .send()
                .await
                .map_err(|e| PortError::new("CloudTrail DescribeTrails", ctx(e)))?;
            let reads = out.trail_list().iter().map(|t| async move {
                match self.read_trail(t).await {
                    Ok(info) => info,
                    Err(e) => TrailInfo {
                        name: t.name().unwrap_or_default().to_string(),
                        arn: t.trail_arn().unwrap_or_default().to_string(),
                        home_region: t.home_region().map(str::to_string),
                        read_error: Some(e),
                        ..TrailInfo::default()
                    },
                }
            });
            Ok(futures::future::join_all(reads).await)
        }
        .boxed()
    }
}

/// S3 GetObject, body streamed (`ByteStream::into_async_read`).
#[derive(Debug, Clone)]
pub struct S3Objects {
    client: aws_sdk_s3::Client,
}

impl S3Objects {
    pub fn new(client: aws_sdk_s3::Client) -> S3Objects {
        S3Objects { client }
    }
}

impl ObjectStore for S3Objects {
    fn open<'a>(&'a self, bucket: &'a str, key: &'a str) -> PortResult<'a, ObjectBody> {
        async move {
            let out = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| PortError::new("S3 GetObject", ctx(e)))?;
            Ok(Box::new(out.body.into_async_read()) as ObjectBody)
        }
        .boxed()
    }
}
