//! The optional destinations security teams route findings through, each
//! a channel with its own delivery mark: Security Hub (its own module,
//! [`super::securityhub`]), a custom EventBridge bus (`PutEvents`,
//! `detail-type` = the finding event, `detail` = the finding, the entry at
//! most 256 KiB), and an SNS topic for AWS Chatbot (the custom notification
//! schema, so Slack and Teams show title, severity, who, what and a link).

use super::ctx;
use crate::lambda::alert::{Alert, JSON_FIELD_MAX};
use crate::lambda::ports::{AlertChannel, PortError, PortResult};
use detector_core::encode::{bound, chat};
use futures::FutureExt;

/// `Source` of the events the detector puts on the bus.
pub const EVENT_SOURCE: &str = "microvm-governance.detector";

/// EventBridge refuses an entry larger than 256 KiB (`Source`,
/// `DetailType`, `Detail` and `Resources` in UTF-8, plus 14 bytes for a
/// `Time`); the detail is fitted to what the rest leaves, with room to spare.
pub const EVENT_ENTRY_MAX: usize = 256 * 1024;

/// The event's `detail`: the finding as JSON, fitted so that the whole
/// entry stays under [`EVENT_ENTRY_MAX`] (long texts cut with a marker).
pub fn event_detail(alert: &Alert) -> String {
    let budget = EVENT_ENTRY_MAX - EVENT_SOURCE.len() - alert.finding.event.as_str().len() - 1024;
    let mut v = serde_json::to_value(alert.finding.bounded(JSON_FIELD_MAX))
        .unwrap_or(serde_json::Value::Null);
    bound::fit(&mut v, budget);
    v.to_string()
}

/// The chat message: Chatbot's custom notification, at most the SNS limit.
pub fn chat_message(alert: &Alert) -> String {
    let mut v = chat::notification(&alert.finding.bounded(JSON_FIELD_MAX));
    bound::fit(&mut v, crate::lambda::alert::SNS_MESSAGE_MAX);
    v.to_string()
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
            let detail = event_detail(alert);
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
            let message = chat_message(alert);
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
