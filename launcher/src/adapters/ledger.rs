//! The ledger port over the shared DynamoDB ledger, with a bounded retry on
//! top of the SDK's own: a write lost after an AWS call is what the
//! reconciler would otherwise have to repair.

use launcher_core::ports::{BoxFut, Ledger, LedgerError};
use shared_core::LedgerEntry;
use std::time::Duration;

/// Extra tries of a ledger write after the SDK's own attempts.
pub const LEDGER_RETRIES: u32 = 2;
/// Wait before the first extra try; doubled for the next.
pub const LEDGER_RETRY_WAIT: Duration = Duration::from_millis(100);

/// The ledger port over the shared DynamoDB ledger.
#[derive(Debug, Clone)]
pub struct LedgerAdapter(pub shared_aws::DynamoLedger);

impl Ledger for LedgerAdapter {
    fn record<'a>(
        &'a self,
        entry: &'a LedgerEntry,
        attempt_request_ids: &'a [String],
    ) -> BoxFut<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            let mut wait = LEDGER_RETRY_WAIT;
            let mut tries = 0;
            loop {
                match self.0.record_attempts(entry, attempt_request_ids).await {
                    Ok(()) => return Ok(()),
                    Err(e) if tries < LEDGER_RETRIES => {
                        tries += 1;
                        tracing::warn!(error = %e, tries, "ledger write failed; retrying");
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                    Err(e) => {
                        return Err(LedgerError {
                            message: e.to_string(),
                        });
                    }
                }
            }
        })
    }

    fn microvm<'a>(
        &'a self,
        microvm_id: &'a str,
    ) -> BoxFut<'a, Result<Option<LedgerEntry>, LedgerError>> {
        Box::pin(async move {
            self.0.microvm(microvm_id).await.map_err(|e| LedgerError {
                message: e.to_string(),
            })
        })
    }
}
