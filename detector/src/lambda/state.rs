//! Building the handler's [`State`] once per process from the validated
//! configuration and one SDK configuration: every client is created here and
//! nowhere else.

use super::alerter::Alerter;
use super::aws::{
    ChatChannel, DynamoDedupe, EventBusChannel, S3Objects, SdkFunctions, SdkMicrovms, SdkTargets,
    SdkTrails, SecurityHubChannel, SecurityHubConfig, SnsChannel, SqsSweepQueue, TargetsConfig,
};
use super::config::{ApiKeySource, Config};
use super::contro1::Contro1Channel;
use super::handler::State;
use super::ports::{AlertChannel, LogSink, StderrLog, SweepQueue, SystemClock, TargetPorts};
use detector_core::{Classifier, ScanOptions};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("reading the Contro1 API key from Secrets Manager ({arn}): {message}")]
    Secret { arn: String, message: String },
    #[error("Contro1 client: {0}")]
    Contro1(#[source] contro1::Contro1Error),
    #[error("{0}")]
    Destination(String),
}

/// Resolve the Contro1 API key (Secrets Manager when deployed).
async fn api_key(cfg: &Config, sdk: &aws_config::SdkConfig) -> Result<String, BuildError> {
    match &cfg.contro1_api_key {
        ApiKeySource::Plain(k) => Ok(k.clone()),
        ApiKeySource::SecretArn(arn) => {
            let client = aws_sdk_secretsmanager::Client::new(sdk);
            let out = client
                .get_secret_value()
                .secret_id(arn)
                .send()
                .await
                .map_err(|e| BuildError::Secret {
                    arn: arn.clone(),
                    message: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
                })?;
            out.secret_string()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| BuildError::Secret {
                    arn: arn.clone(),
                    message: "the secret has no string value".to_string(),
                })
        }
    }
}

/// Build the state: AWS clients from `sdk` (which honours
/// `AWS_ENDPOINT_URL`), the MicroVMs client pointed at
/// `MICROVMS_ENDPOINT_URL` when set, the Contro1 client, and the alerter.
pub async fn build(cfg: &Config, sdk: &aws_config::SdkConfig) -> Result<State, BuildError> {
    build_with_log(cfg, sdk, Arc::new(StderrLog)).await
}

/// [`build`] with another log sink (tests capture the log lines).
pub async fn build_with_log(
    cfg: &Config,
    sdk: &aws_config::SdkConfig,
    log: Arc<dyn LogSink>,
) -> Result<State, BuildError> {
    let key = api_key(cfg, sdk).await?;
    let contro1 = contro1::Contro1Client::new(contro1::Contro1Config::new(
        cfg.contro1_base_url.clone(),
        key,
    ))
    .map_err(BuildError::Contro1)?;
    let contro1 = Arc::new(Contro1Channel::new(contro1));
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    );
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let sns = aws_sdk_sns::Client::new(sdk);
    let mut mv = aws_sdk_lambdamicrovms::config::Builder::from(sdk);
    if let Some(url) = &cfg.microvms_endpoint_url {
        mv = mv.endpoint_url(url);
    }
    let microvms = aws_sdk_lambdamicrovms::Client::from_conf(mv.build());
    // Where the sweep runs, for the evidence of what it finds and for trail
    // health (a single-region trail covers only its home region).
    let region = sdk.region().map(|r| r.to_string());
    let account_id = match aws_sdk_sts::Client::new(sdk)
        .get_caller_identity()
        .send()
        .await
    {
        Ok(id) => id.account().map(str::to_string),
        Err(e) => {
            log.line(&serde_json::json!({
                "log": "warning",
                "warning": format!(
                    "STS GetCallerIdentity failed; findings of the sweep will not name the account: {}",
                    aws_sdk_sts::error::DisplayErrorContext(e)
                ),
            }));
            None
        }
    };
    let mut channels: Vec<Arc<dyn AlertChannel>> = vec![
        Arc::new(SnsChannel::new(sns.clone(), cfg.alert_topic_arn.clone())),
        contro1.clone(),
    ];
    let d = &cfg.destinations;
    if d.security_hub {
        let (Some(account_id), Some(region)) = (account_id.clone(), region.clone()) else {
            return Err(BuildError::Destination(
                "SECURITY_HUB=on needs the detector's account and region (STS GetCallerIdentity failed or no region is set)".into(),
            ));
        };
        let own = detector_core::encode::asff::Importer::new(&account_id, &region)
            .map_err(|e| BuildError::Destination(format!("SECURITY_HUB=on: {e}")))?;
        channels.push(Arc::new(SecurityHubChannel::new(
            sdk,
            SecurityHubConfig {
                own,
                role_name: d.security_hub_role_name.clone(),
            },
        )));
    }
    if let Some(bus) = &d.event_bus {
        channels.push(Arc::new(EventBusChannel::new(
            aws_sdk_eventbridge::Client::new(sdk),
            bus.clone(),
        )));
    }
    if let Some(topic) = &d.chat_topic_arn {
        channels.push(Arc::new(ChatChannel::new(sns.clone(), topic.clone())));
    }
    let dedupe = Arc::new(DynamoDedupe::new(dynamo.clone(), cfg.dedupe_table.clone()));
    let alerter = Alerter::new(dedupe.clone(), channels, log.clone(), Arc::new(SystemClock));
    let own = TargetPorts {
        microvms: Arc::new(SdkMicrovms::new(microvms)),
        ledger: Arc::new(shared_aws::DynamoLedger::new(
            dynamo,
            cfg.ledger_table.clone(),
        )),
    };
    let targets = Arc::new(SdkTargets::new(
        sdk,
        account_id.clone(),
        own,
        TargetsConfig {
            role_name: cfg.targets.role_name.clone(),
            ledger_table: cfg.ledger_table.clone(),
            ledger_region: cfg.targets.ledger_region.clone(),
            microvms_endpoints: cfg.targets.microvms_endpoints.clone(),
            microvms_endpoint: cfg.microvms_endpoint_url.clone(),
        },
    ));
    let sweep_queue = cfg.targets.fan_out_queue.as_ref().map(|url| {
        Arc::new(SqsSweepQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            url.clone(),
        )) as Arc<dyn SweepQueue>
    });
    let mut sweep = cfg.sweep.clone();
    sweep.trails.region.clone_from(&region);
    sweep.region = region;
    sweep.account_id = account_id;
    Ok(State {
        classifier: Classifier::new(cfg.classifier.clone()),
        scan_options: ScanOptions::default(),
        objects: Arc::new(S3Objects::new(s3)),
        targets,
        sweep_queue,
        trails: Arc::new(SdkTrails::new(sdk)),
        auditor: contro1,
        functions: Arc::new(SdkFunctions::new(sdk)),
        heartbeat: dedupe,
        alerter,
        function_name: cfg.function_name.clone(),
        sweep,
        // A full SQS batch (10) and more in progress; four objects streamed
        // at once (at most 4 × the 32 MiB record cap in buffers).
        message_concurrency: 64,
        read_concurrency: 4,
        coalesce_window: super::alert_batch::COALESCE_WINDOW,
    })
}
