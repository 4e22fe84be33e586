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

/// Entries in one PublishBatch request, and the request's total payload
/// (SNS limits: 10 entries, 256 KiB).
const BATCH_ENTRIES: usize = 10;
const BATCH_BYTES: usize = 256 * 1024;

/// PublishBatch requests in flight at once for one round of findings.
const PUBLISH_CONCURRENCY: usize = 4;

impl SnsChannel {
    fn entry(
        &self,
        id: usize,
        alert: &Alert,
    ) -> Result<aws_sdk_sns::types::PublishBatchRequestEntry, PortError> {
        aws_sdk_sns::types::PublishBatchRequestEntry::builder()
            .id(id.to_string())
            .subject(alert.subject())
            .message(alert.message())
            .message_attributes("event", string_attr(alert.finding.event.as_str())?)
            .message_attributes("severity", string_attr(alert.severity().as_str())?)
            .message_attributes("rule", string_attr(alert.rule().as_str())?)
            .build()
            .map_err(|e| PortError::new("SNS PublishBatch entry", ctx_plain(e)))
    }

    /// One PublishBatch request; one result per alert of `group`.
    async fn publish_group(&self, group: &[(usize, &Alert)]) -> Vec<Result<(), PortError>> {
        let what = || format!("SNS PublishBatch to `{}`", self.topic_arn);
        let entries: Result<Vec<_>, PortError> =
            group.iter().map(|(i, a)| self.entry(*i, a)).collect();
        let entries = match entries {
            Ok(e) => e,
            Err(e) => return group.iter().map(|_| Err(e.clone())).collect(),
        };
        let out = match self
            .client
            .publish_batch()
            .topic_arn(&self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let e = PortError::new(what(), ctx(e));
                return group.iter().map(|_| Err(e.clone())).collect();
            }
        };
        group
            .iter()
            .map(|(i, _)| {
                let id = i.to_string();
                match out.failed().iter().find(|f| f.id() == id) {
                    Some(f) => Err(PortError::new(
                        what(),
                        format!("{}: {}", f.code(), f.message().unwrap_or("(no message)")),
                    )),
                    None if out.successful().iter().any(|s| s.id() == Some(id.as_str())) => Ok(()),
                    None => Err(PortError::new(
                        what(),
                        format!("entry {id}: no result returned"),
                    )),
                }
            })
            .collect()
    }
}

impl AlertChannel for SnsChannel {
    fn name(&self) -> &'static str {
        "sns"
    }

    /// PublishBatch: up to 10 alerts and 256 KiB a request, a few
    /// requests at once; one result per alert, in order.
    fn deliver_batch<'a>(
        &'a self,
        alerts: &'a [&'a Alert],
    ) -> futures::future::BoxFuture<'a, Vec<Result<(), PortError>>> {
        use futures::StreamExt;
        async move {
            if alerts.len() == 1 {
                return vec![self.deliver(alerts[0]).await];
            }
            let mut groups: Vec<Vec<(usize, &Alert)>> = Vec::new();
            let mut bytes = 0usize;
            for (i, a) in alerts.iter().enumerate() {
                let size = a.message().len() + a.subject().len() + 512;
                match groups.last_mut() {
                    Some(g) if g.len() < BATCH_ENTRIES && bytes + size <= BATCH_BYTES => {
                        g.push((i, a));
                        bytes += size;
                    }
                    _ => {
                        groups.push(vec![(i, a)]);
                        bytes = size;
                    }
                }
            }
            // Built before they are streamed: a closure in the stream makes
            // the boxed future fail the compiler's higher-ranked lifetime
            // check.
            let requests: Vec<_> = groups.iter().map(|g| self.publish_group(g)).collect();
            let results: Vec<Vec<Result<(), PortError>>> = futures::stream::iter(requests)
                .buffered(PUBLISH_CONCURRENCY)
                .collect()
                .await;
            results.into_iter().flatten().collect()
        }
        .boxed()
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
