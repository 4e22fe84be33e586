//! The accounts and regions of an organization: for each target, the
//! MicroVMs API of that account and region and the ledger of that account,
//! read with the sweep role assumed there (`SWEEP_ROLE_NAME`; credentials
//! cached until shortly before they expire). The detector's own account and
//! region use its own clients. Organizations `ListAccounts` and Account
//! `ListRegions` list the organization's accounts and the enabled regions.
//!
//! Ledgers are per account (the launcher of each account writes its own;
//! no account can write another's), all with the same table name
//! (`LEDGER_TABLE`), in `LEDGER_REGION` (default: the detector's region).

use super::ctx;
use crate::lambda::aws::SdkMicrovms;
use crate::lambda::ports::{LedgerReader, PortError, PortResult, Target, TargetPorts, TargetsApi};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use futures::FutureExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How the targets are reached.
#[derive(Debug, Clone, Default)]
pub struct TargetsConfig {
    /// The role assumed in every other account (`SWEEP_ROLE_NAME`).
    pub role_name: Option<String>,
    pub ledger_table: String,
    /// Where each account's ledger lives (`LEDGER_REGION`).
    pub ledger_region: Option<String>,
    /// `account/region` → MicroVMs endpoint (`MICROVMS_ENDPOINTS`, for
    /// emulators); else `MICROVMS_ENDPOINT_URL` for every target.
    pub microvms_endpoints: HashMap<String, String>,
    pub microvms_endpoint: Option<String>,
}

/// Assumed-role credentials are refreshed this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(120);

pub struct SdkTargets {
    sdk: aws_config::SdkConfig,
    own_account: Option<String>,
    own: TargetPorts,
    cfg: TargetsConfig,
    creds: tokio::sync::Mutex<HashMap<String, Credentials>>,
}

impl std::fmt::Debug for SdkTargets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdkTargets")
            .field("own_account", &self.own_account)
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl SdkTargets {
    pub fn new(
        sdk: &aws_config::SdkConfig,
        own_account: Option<String>,
        own: TargetPorts,
        cfg: TargetsConfig,
    ) -> SdkTargets {
        SdkTargets {
            sdk: sdk.clone(),
            own_account,
            own,
            cfg,
            creds: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Whether `account` is the detector's own. When its own account is
    /// unknown (STS failed at start) and no sweep role is set, every account
    /// is read with its own credentials, as a single-account deployment does.
    fn is_own(&self, account: &str) -> bool {
        match &self.own_account {
            Some(own) => own == account,
            None => self.cfg.role_name.is_none(),
        }
    }

    fn own_region(&self) -> Option<&str> {
        self.sdk.region().map(|r| r.as_ref())
    }

    /// The SDK configuration for `account` in `region`: the detector's own
    /// credentials in its account, the sweep role's elsewhere.
    async fn config(
        &self,
        account: &str,
        region: &str,
    ) -> Result<aws_config::SdkConfig, PortError> {
        let mut b = self
            .sdk
            .to_builder()
            .region(aws_config::Region::new(region.to_string()));
        if !self.is_own(account) {
            b = b.credentials_provider(SharedCredentialsProvider::new(self.assume(account).await?));
        }
        Ok(b.build())
    }

    async fn assume(&self, account: &str) -> Result<Credentials, PortError> {
        let Some(role) = &self.cfg.role_name else {
            return Err(PortError::new(
                format!("account {account}"),
                "SWEEP_ROLE_NAME is not set: the detector can read only its own account",
            ));
        };
        let mut cache = self.creds.lock().await;
        if let Some(c) = cache.get(account)
            && c.expiry()
                .is_some_and(|e| e > SystemTime::now() + REFRESH_MARGIN)
        {
            return Ok(c.clone());
        }
        let partition =
            detector_core::encode::partition_of(self.own_region().unwrap_or("us-east-1"));
        let arn = format!("arn:{partition}:iam::{account}:role/{role}");
        let out = aws_sdk_sts::Client::new(&self.sdk)
            .assume_role()
            .role_arn(&arn)
            .role_session_name("microvm-detector-sweep")
            .send()
            .await
            .map_err(|e| PortError::new(format!("STS AssumeRole {arn}"), ctx(e)))?;
        let c = out.credentials().ok_or_else(|| {
            PortError::new(format!("STS AssumeRole {arn}"), "no credentials returned")
        })?;
        let creds = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            SystemTime::try_from(*c.expiration()).ok(),
            "microvm-detector-sweep-role",
        );
        cache.insert(account.to_string(), creds.clone());
        Ok(creds)
    }

    async fn ledger_for(&self, account: &str) -> Result<Arc<dyn LedgerReader>, PortError> {
        if self.is_own(account) {
            return Ok(self.own.ledger.clone());
        }
        let region = self
            .cfg
            .ledger_region
            .clone()
            .or_else(|| self.own_region().map(str::to_string))
            .unwrap_or_else(|| "us-east-1".into());
        let conf = self.config(account, &region).await?;
        Ok(Arc::new(shared_aws::DynamoLedger::new(
            aws_sdk_dynamodb::Client::new(&conf),
            self.cfg.ledger_table.clone(),
        )))
    }
}

impl TargetsApi for SdkTargets {
    fn ports<'a>(&'a self, t: &'a Target) -> PortResult<'a, TargetPorts> {
        async move {
            if self.is_own(&t.account)
                && self.own_region() == Some(t.region.as_str())
                && !self.cfg.microvms_endpoints.contains_key(&t.to_string())
            {
                return Ok(self.own.clone());
            }
            let conf = self.config(&t.account, &t.region).await?;
            let mut mv = aws_sdk_lambdamicrovms::config::Builder::from(&conf);
            if let Some(url) = self
                .cfg
                .microvms_endpoints
                .get(&t.to_string())
                .or(self.cfg.microvms_endpoint.as_ref())
            {
                mv = mv.endpoint_url(url);
            }
            Ok(TargetPorts {
                microvms: Arc::new(SdkMicrovms::new(aws_sdk_lambdamicrovms::Client::from_conf(
                    mv.build(),
                ))),
                ledger: self.ledger_for(&t.account).await?,
            })
        }
        .boxed()
    }

    fn ledger<'a>(&'a self, account: &'a str) -> PortResult<'a, Arc<dyn LedgerReader>> {
        self.ledger_for(account).boxed()
    }

    fn reaches(&self, account: &str) -> bool {
        self.is_own(account) || self.cfg.role_name.is_some()
    }

    fn organization_accounts(&self) -> PortResult<'_, Vec<String>> {
        async move {
            let client = aws_sdk_organizations::Client::new(&self.sdk);
            let mut out = Vec::new();
            let mut token = None;
            loop {
                let page = client
                    .list_accounts()
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| PortError::new("Organizations ListAccounts", ctx(e)))?;
                for a in page.accounts() {
                    let active = a.state().is_some_and(|s| s.as_str() == "ACTIVE")
                        || a.status().is_some_and(|s| s.as_str() == "ACTIVE");
                    if let (true, Some(id)) = (active, a.id()) {
                        out.push(id.to_string());
                    }
                }
                match page.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
            out.sort();
            Ok(out)
        }
        .boxed()
    }

    fn enabled_regions(&self) -> PortResult<'_, Vec<String>> {
        async move {
            use aws_sdk_account::types::RegionOptStatus;
            let client = aws_sdk_account::Client::new(&self.sdk);
            let mut out = Vec::new();
            let mut token = None;
            loop {
                let page = client
                    .list_regions()
                    .region_opt_status_contains(RegionOptStatus::Enabled)
                    .region_opt_status_contains(RegionOptStatus::EnabledByDefault)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| PortError::new("Account ListRegions", ctx(e)))?;
                out.extend(
                    page.regions()
                        .iter()
                        .filter_map(|r| r.region_name().map(str::to_string)),
                );
                match page.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
            out.sort();
            Ok(out)
        }
        .boxed()
    }
}
