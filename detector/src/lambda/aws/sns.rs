//! Alerts to the security team's SNS topic.

use super::{ctx, ctx_plain};
use crate::lambda::alert::Alert;
use crate::lambda::ports::{AlertChannel, PortError, PortResult};
use aws_sdk_sns::types::MessageAttributeValue;
use futures::FutureExt;

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
