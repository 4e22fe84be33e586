//! Contro1 as an alert channel (one audit record per finding) and as the
//! auditor of remediation actions, through the shared `contro1` client
//! (bounded retries, short timeout, fails closed).

use super::alert::Alert;
use super::ports::{AlertChannel, Auditor, PortError, PortResult};
use contro1::{AuditRecord, Contro1Client};
use futures::FutureExt;

#[derive(Debug, Clone)]
pub struct Contro1Channel {
    client: Contro1Client,
}

impl Contro1Channel {
    pub fn new(client: Contro1Client) -> Contro1Channel {
        Contro1Channel { client }
    }

    async fn post(&self, record: &AuditRecord) -> Result<(), PortError> {
        self.client
            .create_audit_record(record)
            .await
            .map(|_| ())
            .map_err(|e| PortError::new("Contro1 POST /audit-records", e.to_string()))
    }
}

impl AlertChannel for Contro1Channel {
    fn name(&self) -> &'static str {
        "contro1"
    }

    fn deliver<'a>(&'a self, alert: &'a Alert) -> PortResult<'a, ()> {
        async move { self.post(&alert.audit_record()).await }.boxed()
    }
}

impl Auditor for Contro1Channel {
    fn audit<'a>(&'a self, record: &'a AuditRecord) -> PortResult<'a, ()> {
        async move { self.post(record).await }.boxed()
    }
}
