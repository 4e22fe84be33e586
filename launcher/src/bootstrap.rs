//! Cold start: turn validated settings and policy into the one `AppState`
//! every request shares. Secrets are read here, once; clients are built here,
//! once.

use crate::adapters::{Connectors, Contro1Approvals, LedgerAdapter, SdkMicrovms};
use crate::app::AppState;
use crate::seal::{KmsSealer, LocalSealer, Sealer};
use crate::settings::{Backend, SecretSource, Settings};
use crate::simulator::SimulatedMicrovms;
use crate::store::DynamoPendingStore;
use launcher_core::fakes::{MemoryLedger, MemoryStore};
use launcher_core::ports::{Clock, Ledger, MicrovmApi, PendingStore, SystemClock};
use launcher_core::{Config, Options, PortSet, Service};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("reading secret {arn}: {message}")]
    Secret { arn: String, message: String },
    #[error("Contro1 client: {0}")]
    Contro1(#[from] contro1::Contro1Error),
    #[error("{0} needs AWS configuration, but none was loaded")]
    NoAws(&'static str),
}

/// Does this configuration talk to AWS at all?
pub fn needs_aws(s: &Settings) -> bool {
    matches!(s.backend, Backend::Aws { .. })
        || s.pending_table.is_some()
        || s.ledger_table.is_some()
        || matches!(s.contro1_api_key, SecretSource::SecretArn(_))
        || matches!(s.webhook_secret, SecretSource::SecretArn(_))
        || s.token_kms_key_id.is_some()
}

/// How tokens are sealed at rest: KMS when `TOKEN_KMS_KEY_ID` is set, else
/// a key in this process's memory (refused inside Lambda by the settings).
pub fn sealer(
    settings: &Settings,
    sdk: Option<&aws_config::SdkConfig>,
) -> Result<Arc<dyn Sealer>, BootstrapError> {
    match &settings.token_kms_key_id {
        Some(key) => {
            let sdk = sdk.ok_or(BootstrapError::NoAws("TOKEN_KMS_KEY_ID"))?;
            Ok(Arc::new(KmsSealer::new(aws_sdk_kms::Client::new(sdk), key)))
        }
        None => {
            tracing::warn!(
                "TOKEN_KMS_KEY_ID is not set: tokens are sealed with a key held in this process only"
            );
            Ok(Arc::new(LocalSealer::random()))
        }
    }
}

async fn read_secret(
    sdk: Option<&aws_config::SdkConfig>,
    src: &SecretSource,
) -> Result<String, BootstrapError> {
    match src {
        SecretSource::Plain(v) => Ok(v.clone()),
        SecretSource::SecretArn(arn) => {
            let sdk = sdk.ok_or(BootstrapError::NoAws("a *_SECRET_ARN"))?;
            let client = aws_sdk_secretsmanager::Client::new(sdk);
            let out = client
                .get_secret_value()
                .secret_id(arn)
                .send()
                .await
                .map_err(|e| BootstrapError::Secret {
                    arn: arn.clone(),
                    message: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
                })?;
            out.secret_string()
                .map(str::to_string)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| BootstrapError::Secret {
                    arn: arn.clone(),
                    message: "the secret has no string value".into(),
                })
        }
    }
}

/// Build the shared state. `sdk` must be `Some` when [`needs_aws`].
pub async fn build_state(
    settings: &Settings,
    config: Config,
    sdk: Option<&aws_config::SdkConfig>,
) -> Result<Arc<AppState>, BootstrapError> {
    let api_key = read_secret(sdk, &settings.contro1_api_key).await?;
    let webhook_secret = read_secret(sdk, &settings.webhook_secret).await?;
    let dynamo = sdk.map(aws_sdk_dynamodb::Client::new);
    let store: Arc<dyn PendingStore> = match &settings.pending_table {
        Some(t) => Arc::new(
            DynamoPendingStore::new(
                dynamo
                    .clone()
                    .ok_or(BootstrapError::NoAws("PENDING_TABLE"))?,
                t,
                sealer(settings, sdk)?,
            )
            .with_retention(settings.tombstone_retention_seconds)
            .with_executing_index(&settings.executing_index),
        ),
        None => Arc::new(MemoryStore::new()),
    };
    let ledger: Arc<dyn Ledger> = match &settings.ledger_table {
        Some(t) => Arc::new(LedgerAdapter(shared_aws::DynamoLedger::new(
            dynamo.ok_or(BootstrapError::NoAws("LEDGER_TABLE"))?,
            t,
        ))),
        None => Arc::new(MemoryLedger::default()),
    };
    let microvms: Arc<dyn MicrovmApi> = match &settings.backend {
        Backend::Simulated => {
            tracing::warn!("SIMULATE_AWS=true: MicroVM calls go to the in-process simulator");
            Arc::new(SimulatedMicrovms::new())
        }
        Backend::Aws { endpoint_url } => {
            let sdk = sdk.ok_or(BootstrapError::NoAws("the MicroVMs API"))?;
            let mut b = aws_sdk_lambdamicrovms::config::Builder::from(sdk);
            if let Some(url) = endpoint_url {
                b = b.endpoint_url(url);
            }
            let region = sdk
                .region()
                .map_or_else(|| "us-east-1".to_string(), ToString::to_string);
            Arc::new(SdkMicrovms::new(
                aws_sdk_lambdamicrovms::Client::from_conf(b.build()),
                region,
                Connectors {
                    vpc_egress_arn: settings.vpc_egress_connector_arn.clone(),
                    private_egress_arn: settings.private_egress_connector_arn.clone(),
                },
            ))
        }
    };
    let mut c1 = contro1::Contro1Config::new(settings.contro1_base_url.clone(), api_key);
    c1.timeout = Duration::from_millis(settings.contro1_timeout_ms.max(1));
    let approvals = Arc::new(Contro1Approvals(contro1::Contro1Client::new(c1)?));
    Ok(from_ports(
        settings,
        config,
        PortSet {
            store,
            ledger,
            microvms,
            approvals,
            clock: Arc::new(SystemClock),
        },
        webhook_secret.into_bytes(),
    ))
}

/// The state over explicit ports (tests build their own).
pub fn from_ports(
    settings: &Settings,
    config: Config,
    ports: PortSet,
    webhook_secret: Vec<u8>,
) -> Arc<AppState> {
    let clock: Arc<dyn Clock> = ports.clock.clone();
    let options = Options {
        callback_url: settings.callback_url.clone(),
        approval_requests_per_minute: settings.approval_requests_per_minute,
        executing_timeout_seconds: settings.executing_timeout_seconds,
        ..Options::default()
    };
    Arc::new(AppState {
        service: Service::with_options(config, ports, options),
        auth: settings.auth,
        webhook_secret,
        webhook_window_seconds: settings.webhook_window_seconds,
        callback_qualifier: settings.callback_qualifier.clone(),
        region: settings.region.clone(),
        clock,
    })
}
