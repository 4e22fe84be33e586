//! The optional destinations security teams route findings through, each
//! a channel with its own delivery mark: Security Hub
//! (`BatchImportFindings`, the ASFF encoding), a custom EventBridge bus
//! (`PutEvents`, `detail-type` = the finding event, `detail` = the finding),
//! and an SNS topic for AWS Chatbot (the custom notification schema, so
//! Slack and Teams show title, severity, who, what and a link).

use super::ctx;
use crate::lambda::alert::{Alert, JSON_FIELD_MAX};
use crate::lambda::ports::{AlertChannel, PortError, PortResult};
use aws_sdk_securityhub::types as sh;
use detector_core::encode::{asff, chat};
use futures::FutureExt;
use serde_json::Value;

/// `Source` of the events the detector puts on the bus.
pub const EVENT_SOURCE: &str = "microvm-governance.detector";

/// Security Hub, as a custom integration of the detector's account.
#[derive(Debug, Clone)]
pub struct SecurityHubChannel {
    client: aws_sdk_securityhub::Client,
    importer: asff::Importer,
}

impl SecurityHubChannel {
    pub fn new(
        client: aws_sdk_securityhub::Client,
        importer: asff::Importer,
    ) -> SecurityHubChannel {
        SecurityHubChannel { client, importer }
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

impl AlertChannel for SecurityHubChannel {
    fn name(&self) -> &'static str {
        "securityhub"
    }

    fn deliver<'a>(&'a self, alert: &'a Alert) -> PortResult<'a, ()> {
        async move {
            let what = "Security Hub BatchImportFindings";
            let now = crate::lambda::alert::utc_timestamp(super::now_epoch());
            let v = asff::finding(&alert.finding.bounded(JSON_FIELD_MAX), &self.importer, &now);
            // The SDK's finding type and request future are large; on the heap
            // they stay off the worker thread's stack.
            let finding = Box::new(sdk_finding(&v).map_err(|e| PortError::new(what, e))?);
            let out = Box::pin(
                self.client
                    .batch_import_findings()
                    .findings(*finding)
                    .send(),
            )
            .await
            .map_err(|e| PortError::new(what, ctx(e)))?;
            if let Some(failed) = out.failed_findings().first() {
                return Err(PortError::new(
                    what,
                    format!(
                        "{}: {}",
                        failed.error_code().unwrap_or("Failed"),
                        failed.error_message().unwrap_or("(no message)")
                    ),
                ));
            }
            Ok(())
        }
        .boxed()
    }
}

/// A custom EventBridge bus: teams route findings with rules on
/// `detail-type` (the finding event) and `detail.rule` / `detail.severity`.
#[derive(Debug, Clone)]
pub struct EventBusChannel {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBusChannel {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> EventBusChannel {
        EventBusChannel {
            client,
            bus: bus.into(),
        }
    }
}

impl AlertChannel for EventBusChannel {
    fn name(&self) -> &'static str {
        "eventbridge"
    }

    fn deliver<'a>(&'a self, alert: &'a Alert) -> PortResult<'a, ()> {
        async move {
            let what = format!("EventBridge PutEvents to `{}`", self.bus);
            let detail = serde_json::to_string(&alert.finding.bounded(JSON_FIELD_MAX))
                .map_err(|e| PortError::new(&what, e.to_string()))?;
            let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .source(EVENT_SOURCE)
                .detail_type(alert.finding.event.as_str())
                .detail(detail)
                .event_bus_name(&self.bus)
                .build();
            let out = self
                .client
                .put_events()
                .entries(entry)
                .send()
                .await
                .map_err(|e| PortError::new(&what, ctx(e)))?;
            if out.failed_entry_count() > 0 {
                let e = out.entries().first();
                return Err(PortError::new(
                    &what,
                    format!(
                        "{}: {}",
                        e.and_then(|e| e.error_code()).unwrap_or("Failed"),
                        e.and_then(|e| e.error_message()).unwrap_or("(no message)")
                    ),
                ));
            }
            Ok(())
        }
        .boxed()
    }
}

/// An SNS topic AWS Chatbot subscribes to: the message is a Chatbot custom
/// notification.
#[derive(Debug, Clone)]
pub struct ChatChannel {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl ChatChannel {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> ChatChannel {
        ChatChannel {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

impl AlertChannel for ChatChannel {
    fn name(&self) -> &'static str {
        "chat"
    }

    fn deliver<'a>(&'a self, alert: &'a Alert) -> PortResult<'a, ()> {
        async move {
            let what = format!("SNS Publish (chat) to `{}`", self.topic_arn);
            let message = chat::notification(&alert.finding.bounded(JSON_FIELD_MAX)).to_string();
            self.client
                .publish()
                .topic_arn(&self.topic_arn)
                .message(message)
                .send()
                .await
                .map_err(|e| PortError::new(&what, ctx(e)))?;
            Ok(())
        }
        .boxed()
    }
}
