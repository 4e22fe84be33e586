//! The MicroVMs API through `aws-sdk-lambdamicrovms`, and the launcher's
//! ledger (read side).

use super::ctx;
use crate::lambda::alert::ListedMicrovm;
use crate::lambda::ports::{LedgerReader, MicrovmPage, MicrovmsApi, PortError, PortResult};
use futures::FutureExt;
use std::collections::HashSet;

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
