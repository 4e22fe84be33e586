//! Log objects in the trail bucket written by anyone but CloudTrail (T17):
//! an object overwritten, copied over or deleted before the detector reads
//! it. S3 object-level (data) events; CloudTrail's own delivery carries
//! `invokedBy: cloudtrail.amazonaws.com`.

use super::{Ctx, Hit, Verdict};
use crate::finding::{Rule, Severity};

/// S3 operations that write or remove an object.
pub const WRITES: [&str; 8] = [
    "PutObject",
    "CopyObject",
    "CompleteMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "DeleteObject",
    "DeleteObjects",
    "RestoreObject",
];

const CLOUDTRAIL: &str = "cloudtrail.amazonaws.com";

pub(crate) fn may_apply(service: &str, name: &str, has_buckets: bool) -> bool {
    has_buckets && service == "s3.amazonaws.com" && WRITES.contains(&name)
}

pub(crate) fn check(ctx: &Ctx<'_>) -> Verdict {
    let buckets = &ctx.cfg().admin.trail_buckets;
    if !may_apply(ctx.service, ctx.name, !buckets.is_empty()) {
        return None;
    }
    let bucket = buckets
        .iter()
        .find(|b| ctx.param("bucketName") == Some(b.as_str()))?;
    let ui = ctx.r.user_identity.get();
    if ui.and_then(|u| u.invoked_by.as_str()) == Some(CLOUDTRAIL) {
        return None;
    }
    let key = ctx.param("key").unwrap_or("(no key)");
    Some(Ok(Hit {
        rule: Rule::TrailObjectWritten,
        severity: Severity::Critical,
        resource: format!("s3://{bucket}/{key}"),
        reason: format!(
            "{} in the trail bucket by a principal that is not CloudTrail: a log object may \
             have been replaced or removed before the detector read it",
            ctx.name
        ),
        deployment_may: false,
        pipeline_only: false,
        service_may: false,
    }))
}
