//! `s3://bucket/prefix` inputs for `detector scan`: list the prefix with
//! ListObjectsV2 (page by page) and stream each object through a blocking
//! `Read` (`SyncIoBridge`), so an object is never held in memory whole.
//! `--region` / `--profile` go to the SDK's config loader as the `aws` CLI
//! uses them (`--profile` reads `~/.aws/config` and `~/.aws/credentials`);
//! `AWS_ENDPOINT_URL` (moto, local stacks) gets path-style addressing.
//! Every error is one line naming what to do, never an SDK dump.

use aws_config::BehaviorVersion;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::Region;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;
use std::io::Read;
use tokio::runtime::Runtime;
use tokio_util::io::SyncIoBridge;

/// An S3 client with the runtime it needs. The scan itself runs on the
/// calling thread, outside the runtime.
pub struct S3Source {
    rt: Runtime,
    client: Client,
}

/// Where the SDK should look for its settings (`--region`, `--profile`).
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    pub region: Option<String>,
    pub profile: Option<String>,
}

/// `s3://bucket/prefix` split into bucket and prefix.
pub fn parse_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then_some((bucket, prefix))
}

/// An error and its sources on one line.
fn one_line(e: &dyn std::error::Error) -> String {
    let text = DisplayErrorContext(e).to_string();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One line for a failed S3 call: access denied names the IAM action and
/// the resource it was refused on.
fn describe<E>(e: &SdkError<E, HttpResponse>, action: &str, resource: &str) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    match (e.code(), status) {
        (Some("AccessDenied" | "AllAccessDisabled"), _) | (None, Some(403)) => format!(
            "access denied: {action} on {resource} (the caller's IAM policy, the bucket policy or an SCP refuses it)"
        ),
        (Some("NoSuchBucket"), _) => format!("{resource}: the bucket does not exist"),
        (Some("NoSuchKey"), _) => {
            format!("{resource}: the object does not exist (deleted since it was listed?)")
        }
        (Some("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken"), _) => format!(
            "{action} on {resource}: the credentials were refused ({}); check --profile or AWS_PROFILE",
            e.code().unwrap_or_default()
        ),
        (Some(code), _) => format!(
            "{action} on {resource}: {code}: {}",
            e.message().unwrap_or("no message")
        ),
        (None, _) => format!("{action} on {resource}: {}", one_line(e)),
    }
}

impl S3Source {
    /// The client, with the region and credentials resolved up front, so that
    /// a missing one is one line before anything is read.
    pub fn new(aws: &AwsOptions) -> Result<S3Source, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime for S3: {e}"))?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(p) = &aws.profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = &aws.region {
            loader = loader.region(Region::new(r.clone()));
        }
        let conf = rt.block_on(loader.load());
        if conf.region().is_none() {
            return Err(match &aws.profile {
                Some(p) => format!(
                    "no AWS region: pass --region, set AWS_REGION, or set `region` in profile `{p}` of ~/.aws/config"
                ),
                None => "no AWS region: pass --region or set AWS_REGION".to_string(),
            });
        }
        let profile = aws
            .profile
            .as_ref()
            .map(|p| format!(" for profile `{p}`"))
            .unwrap_or_default();
        let no_credentials = || {
            match &aws.profile {
            Some(p) => format!(
                "no AWS credentials for profile `{p}`: is it defined, with credentials, in ~/.aws/config or ~/.aws/credentials? (--profile, AWS_PROFILE)"
            ),
            None => "no AWS credentials: pass --profile or set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)".to_string(),
        }
        };
        let provider = conf.credentials_provider().ok_or_else(no_credentials)?;
        match rt.block_on(provider.provide_credentials()) {
            Ok(_) => {}
            Err(CredentialsError::CredentialsNotLoaded(_)) => return Err(no_credentials()),
            Err(e) => {
                return Err(format!(
                    "cannot load AWS credentials{profile}: {}",
                    one_line(&e)
                ));
            }
        }
        let mut s3 = aws_sdk_s3::config::Builder::from(&conf);
        if conf.endpoint_url().is_some() {
            s3 = s3.force_path_style(true);
        }
        Ok(S3Source {
            rt,
            client: Client::from_conf(s3.build()),
        })
    }

    /// Call `f` with every key under `prefix` and its size when listed, page
    /// by page.
    pub fn for_each_key(
        &self,
        bucket: &str,
        prefix: &str,
        mut f: impl FnMut(&str, Option<u64>),
    ) -> Result<(), String> {
        let mut token: Option<String> = None;
        loop {
            let page = self
                .rt
                .block_on(
                    self.client
                        .list_objects_v2()
                        .bucket(bucket)
                        .prefix(prefix)
                        .set_continuation_token(token.take())
                        .send(),
                )
                .map_err(|e| {
                    describe(
                        &e,
                        "s3:ListBucket",
                        &format!("bucket `{bucket}` (prefix `{prefix}`)"),
                    )
                })?;
            for obj in page.contents() {
                if let Some(key) = obj.key() {
                    f(key, obj.size().and_then(|n| u64::try_from(n).ok()));
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => return Ok(()),
            }
        }
    }

    /// A blocking reader over one object's body.
    pub fn open(&self, bucket: &str, key: &str) -> Result<impl Read + use<>, String> {
        let out = self
            .rt
            .block_on(self.client.get_object().bucket(bucket).key(key).send())
            .map_err(|e| describe(&e, "s3:GetObject", &format!("s3://{bucket}/{key}")))?;
        Ok(SyncIoBridge::new_with_handle(
            out.body.into_async_read(),
            self.rt.handle().clone(),
        ))
    }
}
