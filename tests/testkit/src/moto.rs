//! The local moto server: SDK configuration pointing at it and tiny resource helpers.
//!
//! moto is started by `./scripts/test.sh` (or `scripts/moto.sh start`), which exports
//! `MOTO_ENDPOINT`. Every helper here panics with a message saying how to start it when the
//! variable is unset or the server does not answer: a test that needs AWS resources must never
//! pass by skipping. Tests share one server, so they never reset it and always use
//! [`crate::unique_name`] for resource names.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use std::time::Duration;

/// Environment variable holding the moto endpoint, e.g. `http://127.0.0.1:5000`.
pub const ENDPOINT_ENV: &str = "MOTO_ENDPOINT";
/// Region used for every moto resource.
pub const REGION: &str = "us-east-1";
/// The account id moto uses for every resource (its default).
pub const ACCOUNT_ID: &str = "123456789012";

const HOW_TO_START: &str = "run the tests with ./scripts/test.sh, or start moto with \
     `scripts/moto.sh start` and `export MOTO_ENDPOINT=$(scripts/moto.sh endpoint)`";

/// The moto endpoint from `MOTO_ENDPOINT`.
///
/// # Panics
/// When `MOTO_ENDPOINT` is unset or empty (tests never skip silently).
pub fn endpoint() -> String {
    match std::env::var(ENDPOINT_ENV) {
        Ok(v) if !v.trim().is_empty() => v.trim().trim_end_matches('/').to_string(),
        _ => panic!(
            "{ENDPOINT_ENV} is not set: this test needs the local moto server; {HOW_TO_START}"
        ),
    }
}

/// Checks that something answers HTTP at [`endpoint`].
///
/// # Panics
/// When `MOTO_ENDPOINT` is unset or nothing answers there within 5 seconds.
pub async fn ensure_running() -> String {
    let endpoint = endpoint();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("build reqwest client");
    if let Err(e) = client.get(format!("{endpoint}/moto-api/")).send().await {
        panic!("moto does not answer at {ENDPOINT_ENV}={endpoint} ({e}); {HOW_TO_START}");
    }
    endpoint
}

/// Static credentials accepted by moto.
pub fn test_credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "testkit-moto")
}

/// SDK configuration for moto: region us-east-1, static test credentials, `endpoint_url` =
/// [`endpoint`]. Build service clients from it (use [`s3_client`] for S3: moto needs
/// path-style addressing).
///
/// # Panics
/// When moto is not configured or not answering (see [`ensure_running`]).
pub async fn sdk_config() -> SdkConfig {
    let endpoint = ensure_running().await;
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(test_credentials())
        .endpoint_url(endpoint)
        .load()
        .await
}

/// SDK configuration for moto acting in another `account`: the credentials
/// of an STS `AssumeRole` into `arn:aws:iam::ACCOUNT:role/ROLE` (moto keeps
/// each account's resources apart by the credentials that made them, so
/// tables and buckets created with this configuration belong to `account`).
///
/// # Panics
/// When moto is not running or refuses the AssumeRole.
pub async fn sdk_config_in(account: &str, role: &str) -> SdkConfig {
    let base = sdk_config().await;
    let arn = format!("arn:aws:iam::{account}:role/{role}");
    let out = aws_sdk_sts::Client::new(&base)
        .assume_role()
        .role_arn(&arn)
        .role_session_name("testkit")
        .send()
        .await
        .unwrap_or_else(|e| panic!("moto AssumeRole {arn}: {e:?}"));
    let c = out.credentials().expect("AssumeRole credentials");
    base.to_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_string()),
                None,
                "testkit-moto-assumed",
            )),
        )
        .build()
}

/// DynamoDB client for moto.
pub async fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&sdk_config().await)
}

/// S3 client for moto, with path-style addressing (bucket names are not resolvable hosts).
pub async fn s3_client() -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(&sdk_config().await)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// SNS client for moto.
pub async fn sns_client() -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::new(&sdk_config().await)
}

/// KMS client for moto.
pub async fn kms_client() -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::new(&sdk_config().await)
}

/// SQS client for moto.
pub async fn sqs_client() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&sdk_config().await)
}

/// Creates an on-demand DynamoDB table whose only key is the string partition key `pk` (the
/// ledger, pending and dedupe tables all use this design).
///
/// # Panics
/// When the table cannot be created.
pub async fn create_pk_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute definition"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("key schema"),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create DynamoDB table {name}: {e:?}"));
}

/// Creates the launcher's pending-approvals table as the templates do: the string partition
/// key `pk` and the sparse global secondary index `index` (hash `executing` S, range
/// `executing_since` N, keys only) its reconciler queries.
///
/// # Panics
/// When the table cannot be created.
pub async fn create_pending_table(client: &aws_sdk_dynamodb::Client, name: &str, index: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType,
    };
    let attr = |n: &str, t| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(t)
            .build()
            .expect("attribute definition")
    };
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .expect("key schema")
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk", ScalarAttributeType::S))
        .attribute_definitions(attr("executing", ScalarAttributeType::S))
        .attribute_definitions(attr("executing_since", ScalarAttributeType::N))
        .key_schema(key("pk", KeyType::Hash))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index)
                .key_schema(key("executing", KeyType::Hash))
                .key_schema(key("executing_since", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .expect("global secondary index"),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create DynamoDB table {name}: {e:?}"));
}

/// Creates a symmetric KMS key (`ENCRYPT_DECRYPT`) and returns its ARN.
///
/// # Panics
/// When the key cannot be created.
pub async fn create_kms_key(client: &aws_sdk_kms::Client, description: &str) -> String {
    let out = client
        .create_key()
        .description(description)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create KMS key {description}: {e:?}"));
    out.key_metadata()
        .and_then(|m| m.arn())
        .unwrap_or_else(|| panic!("CreateKey answered without a key ARN: {out:?}"))
        .to_string()
}

/// Creates an S3 bucket (us-east-1, so no location constraint). Use [`s3_client`].
///
/// # Panics
/// When the bucket cannot be created.
pub async fn create_bucket(client: &aws_sdk_s3::Client, name: &str) {
    client
        .create_bucket()
        .bucket(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create S3 bucket {name}: {e:?}"));
}

/// Creates an SQS queue and returns its URL.
///
/// # Panics
/// When the queue cannot be created.
pub async fn create_queue(client: &aws_sdk_sqs::Client, name: &str) -> String {
    client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create SQS queue {name}: {e:?}"))
        .queue_url
        .unwrap_or_else(|| panic!("create SQS queue {name}: no queue URL returned"))
}

/// The ARN of an SQS queue, from its URL.
///
/// # Panics
/// When the attribute cannot be read.
pub async fn queue_arn(client: &aws_sdk_sqs::Client, queue_url: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get attributes of SQS queue {queue_url}: {e:?}"))
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .unwrap_or_else(|| panic!("SQS queue {queue_url} has no QueueArn"))
}

/// Creates an SNS topic named `name` and an SQS queue of the same name subscribed to it, so a
/// test can read what was published with [`drain_sns_messages`] (or the raw SNS envelopes
/// with [`drain_queue`]). Returns `(topic_arn, queue_url)`.
///
/// # Panics
/// When any of the resources cannot be created.
pub async fn sns_topic_with_queue(
    sns: &aws_sdk_sns::Client,
    sqs: &aws_sdk_sqs::Client,
    name: &str,
) -> (String, String) {
    let topic_arn = sns
        .create_topic()
        .name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create SNS topic {name}: {e:?}"))
        .topic_arn
        .unwrap_or_else(|| panic!("create SNS topic {name}: no ARN returned"));
    let queue_url = create_queue(sqs, name).await;
    let arn = queue_arn(sqs, &queue_url).await;
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(arn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("subscribe queue {name} to topic {topic_arn}: {e:?}"));
    (topic_arn, queue_url)
}

/// Creates the CloudTrail trail `name` delivering to `bucket`, starts its logging and gives it
/// one advanced event selector: with `microvm_data_events`, the MicroVM data events
/// (`eventCategory` = `Data`, `resources.type` = `AWS::Lambda::MicrovmImage`, the selector the
/// detector's trail check wants); without, management events only (the check reports
/// detection degraded).
///
/// # Panics
/// When the trail cannot be created, started or given its selector.
pub async fn logging_trail(
    client: &aws_sdk_cloudtrail::Client,
    name: &str,
    bucket: &str,
    microvm_data_events: bool,
) {
    trail_of(client, name, bucket, microvm_data_events, false).await;
}

/// [`logging_trail`] as an organization trail, multi-region, selecting the MicroVM data events
/// (what a detector sweeping other accounts needs).
///
/// # Panics
/// When the trail cannot be created, started or given its selector.
pub async fn organization_trail(client: &aws_sdk_cloudtrail::Client, name: &str, bucket: &str) {
    trail_of(client, name, bucket, true, true).await;
}

async fn trail_of(
    client: &aws_sdk_cloudtrail::Client,
    name: &str,
    bucket: &str,
    microvm_data_events: bool,
    organization: bool,
) {
    use aws_sdk_cloudtrail::types::{AdvancedEventSelector, AdvancedFieldSelector};
    client
        .create_trail()
        .name(name)
        .s3_bucket_name(bucket)
        .is_organization_trail(organization)
        .is_multi_region_trail(organization)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create CloudTrail trail {name}: {e:?}"));
    client
        .start_logging()
        .name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("start logging on CloudTrail trail {name}: {e:?}"));
    let field = |f: &str, v: &str| {
        AdvancedFieldSelector::builder()
            .field(f)
            .equals(v)
            .build()
            .expect("advanced field selector")
    };
    let selector = if microvm_data_events {
        AdvancedEventSelector::builder()
            .name("microvm data events")
            .field_selectors(field("eventCategory", "Data"))
            .field_selectors(field("resources.type", "AWS::Lambda::MicrovmImage"))
    } else {
        AdvancedEventSelector::builder()
            .name("management events")
            .field_selectors(field("eventCategory", "Management"))
    }
    .build()
    .expect("advanced event selector");
    client
        .put_event_selectors()
        .trail_name(name)
        .advanced_event_selectors(selector)
        .send()
        .await
        .unwrap_or_else(|e| panic!("put event selectors on CloudTrail trail {name}: {e:?}"));
}

/// Receives and deletes every message currently in the queue and returns their bodies in
/// receive order. Stops at the first empty receive (moto delivers SNS → SQS synchronously,
/// so a published message is already there).
///
/// # Panics
/// When a receive or delete fails.
pub async fn drain_queue(client: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let out = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .unwrap_or_else(|e| panic!("receive from SQS queue {queue_url}: {e:?}"));
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return bodies;
        }
        for m in messages {
            if let Some(handle) = m.receipt_handle {
                client
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("delete from SQS queue {queue_url}: {e:?}"));
            }
            bodies.push(m.body.unwrap_or_default());
        }
    }
}

/// One SNS notification read back from a subscribed queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsMessage {
    /// `Subject`, when the publisher set one.
    pub subject: Option<String>,
    /// `Message`: the published text.
    pub message: String,
    /// The whole SNS envelope, for anything else (message attributes, topic ARN).
    pub envelope: serde_json::Value,
}

/// [`drain_queue`] on a queue made by [`sns_topic_with_queue`], unwrapping each SNS envelope.
///
/// # Panics
/// When a body is not an SNS notification envelope.
pub async fn drain_sns_messages(client: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<SnsMessage> {
    drain_queue(client, queue_url)
        .await
        .into_iter()
        .map(|body| {
            let envelope: serde_json::Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("SQS body is not an SNS envelope ({e}): {body}"));
            let message = envelope["Message"]
                .as_str()
                .unwrap_or_else(|| panic!("SNS envelope without Message: {body}"))
                .to_string();
            let subject = envelope["Subject"].as_str().map(str::to_string);
            SnsMessage {
                subject,
                message,
                envelope,
            }
        })
        .collect()
}

/// A REST-JSON call straight to moto, for reads whose SDK response types
/// are too large for a test thread's stack (Security Hub's `GetFindings`
/// deserialises every resource-details builder). moto routes by the
/// credential scope's service and checks no signature.
pub async fn rest_json(
    service: &str,
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> serde_json::Value {
    let url = format!("{}{path}", endpoint());
    let resp = reqwest::Client::new()
        .request(method.parse().expect("an HTTP method"), &url)
        .header(
            "Authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=testing/20261201/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
            ),
        )
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("moto {service} {method} {path}: {e}"));
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "moto {service} {method} {path}: {status} {text}"
    );
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("moto {service} {path}: not JSON ({e}): {text}"))
}
