//! CloudTrail log objects in S3.

use super::ctx;
use crate::lambda::ports::{ObjectBody, ObjectStore, PortError, PortResult};
use futures::FutureExt;

/// S3 GetObject, body streamed (`ByteStream::into_async_read`).
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
    fn open<'a>(&'a self, bucket: &'a str, key: &'a str) -> PortResult<'a, ObjectBody> {
        async move {
            let out = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| PortError::new("S3 GetObject", ctx(e)))?;
            Ok(Box::new(out.body.into_async_read()) as ObjectBody)
        }
        .boxed()
    }
}
