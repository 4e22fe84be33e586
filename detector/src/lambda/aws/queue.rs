//! The sweep's fan-out queue (SQS): one `{"sweep_target": {...}}` message
//! per target, ten to a `SendMessageBatch`. A batch entry SQS refuses is an
//! error naming its target, so the schedule's invocation fails and the
//! targets are queued again on its retry (sweeping a target twice is
//! harmless: alerts are de-duplicated).

use super::ctx;
use crate::lambda::ports::{PortError, PortResult, SweepQueue, Target};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use futures::FutureExt;

/// SQS accepts at most ten entries per batch.
const BATCH: usize = 10;

pub struct SqsSweepQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsSweepQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String) -> SqsSweepQueue {
        SqsSweepQueue { client, queue_url }
    }
}

/// The message body for one target.
pub fn body(t: &Target) -> String {
    serde_json::json!({"sweep_target": {"account": t.account, "region": t.region}}).to_string()
}

impl SweepQueue for SqsSweepQueue {
    fn enqueue<'a>(&'a self, targets: &'a [Target]) -> PortResult<'a, ()> {
        async move {
            let mut refused = Vec::new();
            for chunk in targets.chunks(BATCH) {
                let entries = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(body(t))
                            .build()
                            .map_err(|e| PortError::new("SQS SendMessageBatch", e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let out = self
                    .client
                    .send_message_batch()
                    .queue_url(&self.queue_url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| {
                        PortError::new(format!("SQS SendMessageBatch {}", self.queue_url), ctx(e))
                    })?;
                for f in out.failed() {
                    let t = f
                        .id()
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| chunk.get(i))
                        .map_or_else(|| f.id().to_string(), Target::to_string);
                    refused.push(format!("{t}: {}: {}", f.code(), f.message().unwrap_or("")));
                }
            }
            if refused.is_empty() {
                Ok(())
            } else {
                Err(PortError::new(
                    format!("SQS SendMessageBatch {}", self.queue_url),
                    format!(
                        "{} target(s) not queued; first: {}",
                        refused.len(),
                        refused[0]
                    ),
                ))
            }
        }
        .boxed()
    }
}
