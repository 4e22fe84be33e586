//! `s3://bucket/prefix` inputs for `detector scan`: list the prefix with
//! ListObjectsV2 (page by page) and stream each object through a blocking
//! `Read` (`SyncIoBridge`), so an object is never held in memory whole.
//! Honours `AWS_ENDPOINT_URL` (moto, local stacks) with path-style addressing.

use anyhow::Context;
use aws_sdk_s3::Client;
use std::io::Read;
use tokio::runtime::Runtime;
use tokio_util::io::SyncIoBridge;

/// An S3 client with the runtime it needs. The scan itself runs on the
/// calling thread, outside the runtime.
pub struct S3Source {
    rt: Runtime,
    client: Client,
}

/// `s3://bucket/prefix` split into bucket and prefix.
pub fn parse_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then_some((bucket, prefix))
}

impl S3Source {
    pub fn new() -> anyhow::Result<S3Source> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("cannot start the async runtime for S3")?;
        let conf = rt.block_on(shared_aws::load_sdk_config());
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
    ) -> anyhow::Result<()> {
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
                .map_err(aws_sdk_s3::Error::from)
                .with_context(|| format!("cannot list s3://{bucket}/{prefix}"))?;
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
    pub fn open(&self, bucket: &str, key: &str) -> anyhow::Result<impl Read + use<>> {
        let out = self
            .rt
            .block_on(self.client.get_object().bucket(bucket).key(key).send())
            .map_err(aws_sdk_s3::Error::from)
            .with_context(|| format!("cannot read s3://{bucket}/{key}"))?;
        Ok(SyncIoBridge::new_with_handle(
            out.body.into_async_read(),
            self.rt.handle().clone(),
        ))
    }
}
