//! Changes to CloudTrail that blind the detector (T5): logging stopped, the
//! trail deleted, redirected or narrowed, selectors that no longer log the
//! MicroVM data events. A `PutEventSelectors` is judged by the selectors it
//! sets, with the same code as the sweep's trail-health check
//! ([`crate::selectors`]); one that keeps full coverage is not a finding.

use super::{Ctx, Hit, Verdict};
use crate::classify::Exemption;
use crate::finding::{Rule, Severity};
use crate::selectors;

/// The CloudTrail operations these rules read.
pub const EVENTS: [&str; 4] = [
    "StopLogging",
    "DeleteTrail",
    "UpdateTrail",
    "PutEventSelectors",
];

pub(crate) fn may_apply(service: &str, name: &str) -> bool {
    service == "cloudtrail.amazonaws.com" && EVENTS.contains(&name)
}

/// The trail a call names (`name` for most operations, `trailName` for
/// PutEventSelectors), and whether it is one of the configured trails.
fn trail<'c>(ctx: &'c Ctx<'_>) -> Option<&'c str> {
    ctx.param("name").or_else(|| ctx.param("trailName"))
}

fn trail_matches(configured: &str, named: &str) -> bool {
    let short = |s: &str| s.rsplit_once(":trail/").map_or(s, |(_, n)| n).to_string();
    configured == named || short(configured) == short(named)
}

pub(crate) fn check(ctx: &Ctx<'_>) -> Verdict {
    if !may_apply(ctx.service, ctx.name) {
        return None;
    }
    let name = trail(ctx).unwrap_or("(unnamed trail)");
    let wanted = &ctx.cfg().trail_names;
    if !wanted.is_empty() && !wanted.iter().any(|w| trail_matches(w, name)) {
        return None;
    }
    let hit = |rule, severity, reason: String| {
        Some(Ok(Hit {
            rule,
            severity,
            resource: name.to_string(),
            reason,
            deployment_may: true,
            pipeline_only: false,
            service_may: false,
        }))
    };
    match ctx.name {
        "StopLogging" => hit(
            Rule::TrailStopped,
            Severity::Critical,
            "the trail stopped logging: no event, MicroVM data events included, is recorded".into(),
        ),
        "DeleteTrail" => hit(
            Rule::TrailDeleted,
            Severity::Critical,
            "the trail was deleted".into(),
        ),
        "UpdateTrail" => {
            let mut changes = Vec::new();
            let mut severe = false;
            if let Some(bucket) = ctx.param("s3BucketName") {
                let ours = ctx
                    .cfg()
                    .protected_resources
                    .iter()
                    .any(|p| p.named_by(bucket, ctx.account.as_deref()));
                if !ours {
                    severe = true;
                }
                changes.push(format!(
                    "now delivers to bucket {bucket}{}",
                    if ours {
                        ""
                    } else {
                        " (not a protected bucket)"
                    }
                ));
            }
            for (key, what) in [
                (
                    "isMultiRegionTrail",
                    "single-region: other regions are no longer logged",
                ),
                (
                    "includeGlobalServiceEvents",
                    "global service events (IAM, STS) are no longer logged",
                ),
            ] {
                if ctx
                    .params
                    .and_then(|p| p.get(key))
                    .and_then(|v| v.as_bool())
                    == Some(false)
                {
                    severe = true;
                    changes.push(what.to_string());
                }
            }
            let others: Vec<&str> = ctx
                .params
                .and_then(|p| p.as_object())
                .map(|m| {
                    m.keys()
                        .map(String::as_str)
                        .filter(|k| {
                            !matches!(
                                *k,
                                "name"
                                    | "s3BucketName"
                                    | "isMultiRegionTrail"
                                    | "includeGlobalServiceEvents"
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if !others.is_empty() {
                changes.push(format!("also set: {}", others.join(", ")));
            }
            if changes.is_empty() {
                changes.push("no property named in the request".into());
            }
            hit(
                Rule::TrailUpdated,
                if severe {
                    Severity::High
                } else {
                    Severity::Medium
                },
                format!(
                    "{}; MicroVM data event selectors are not changed by UpdateTrail",
                    changes.join("; ")
                ),
            )
        }
        "PutEventSelectors" => {
            let Some(params) = ctx.params else {
                return hit(
                    Rule::TrailSelectorsChanged,
                    Severity::High,
                    "the request parameters are not in the record: the new selectors cannot be \
                     evaluated"
                        .into(),
                );
            };
            let (advanced, basic) = selectors::from_request_parameters(params);
            match selectors::selectors_cover(&advanced, basic) {
                Ok(_) => Some(Err((Rule::TrailSelectorsChanged, Exemption::CoverageKept))),
                Err(why) => hit(
                    Rule::TrailSelectorsChanged,
                    Severity::Critical,
                    format!("MicroVM data events are no longer selected: {why}"),
                ),
            }
        }
        _ => None,
    }
}
