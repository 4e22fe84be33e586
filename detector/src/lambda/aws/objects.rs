//! CloudTrail log objects in S3.

use super::ctx;
use crate::lambda::ports::{LatestVersion, ObjectBody, ObjectStore, PortError, PortResult};
use futures::FutureExt;

/// S3 GetObject, body streamed (`ByteStream::into_async_read`), by the
/// version a notification names; HeadObject for the key's current version.
#[derive(Debug, Clone)]
pub struct S3Objects {
    client: aws_sdk_s3::Client,
}

impl S3Objects {
    pub fn new(client: aws_sdk_s3::Client) -> S3Objects {
        S3Objects { client }
    }
}

impl ObjectStore for S3Objects {
    fn open<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: Option<&'a str>,
    ) -> PortResult<'a, ObjectBody> {
        async move {
            let out = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .set_version_id(version_id.map(str::to_string))
                .send()
                .await
                .map_err(|e| {
                    let what = match version_id {
                        Some(v) => format!("S3 GetObject (version {v})"),
                        None => "S3 GetObject".to_string(),
                    };
                    PortError::new(what, ctx(e))
                })?;
            Ok(Box::new(out.body.into_async_read()) as ObjectBody)
        }
        .boxed()
    }

    fn latest<'a>(&'a self, bucket: &'a str, key: &'a str) -> PortResult<'a, LatestVersion> {
        async move {
            match self
                .client
                .head_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
            {
                Ok(out) => Ok(match out.version_id {
                    Some(v) if !v.is_empty() => LatestVersion::Id(v),
                    _ => LatestVersion::Unversioned,
                }),
                // HEAD has no error body: a missing key (or a delete marker
                // as the current version) is a bare 404.
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {
                    Ok(LatestVersion::Absent)
                }
                Err(e) => Err(PortError::new("S3 HeadObject", ctx(e))),
            }
        }
        .boxed()
    }

    fn has_version<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: &'a str,
    ) -> PortResult<'a, bool> {
        async move {
            match self
                .client
                .head_object()
                .bucket(bucket)
                .key(key)
                .version_id(version_id)
                .send()
                .await
            {
                Ok(_) => Ok(true),
                // 404: no such version (deleted for good, or never there);
                // 405: the version is a delete marker. Both need the role's
                // s3:ListBucket, without which S3 answers 403 instead.
                Err(e)
                    if matches!(
                        e.raw_response().map(|r| r.status().as_u16()),
                        Some(404 | 405)
                    ) =>
                {
                    Ok(false)
                }
                Err(e) => Err(PortError::new(
                    format!("S3 HeadObject (version {version_id})"),
                    ctx(e),
                )),
            }
        }
        .boxed()
    }
}
