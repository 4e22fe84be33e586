//! The resources the pipeline depends on (T6, T7): any mutating management
//! call that names a protected resource (the trail bucket's notification
//! and policy, the tables, the detector's rules, queues and topic, the
//! integrity baseline, the allowed images).

use super::{Ctx, Hit, Verdict, find_string, read_only};
use crate::classify::TamperConfig;
use crate::finding::{Rule, Severity};
use crate::record::Record;
use serde_json::Value;

pub(crate) fn may_apply(r: &Record<'_>, name: &str, cfg: &TamperConfig) -> bool {
    !cfg.protected_resources.is_empty() && !r.is_data_event() && !read_only(r, name)
}

pub(crate) fn check(ctx: &Ctx<'_>, whole: &Value) -> Verdict {
    let cfg = ctx.cfg();
    let account = ctx.account.as_deref();
    // A ledger item write is the ledger rule's to judge (the launcher's
    // own writes included).
    if !may_apply(ctx.r, ctx.name, cfg)
        || (ctx.service == "dynamodb.amazonaws.com" && super::ledger::WRITES.contains(&ctx.name))
    {
        return None;
    }
    let mut hit_resource = None;
    let mut pred = |s: &str| {
        hit_resource = cfg
            .protected_resources
            .iter()
            .find(|p| p.named_by(s, account));
        hit_resource.is_some()
    };
    let mut path = String::from("requestParameters");
    let found = ctx
        .params
        .and_then(|p| find_string(p, &mut path, &mut pred))
        .is_some()
        || {
            path = String::from("resources");
            whole
                .get("resources")
                .and_then(|r| find_string(r, &mut path, &mut pred))
                .is_some()
        };
    if !found {
        return None;
    }
    let resource = hit_resource?;
    Some(Ok(Hit {
        rule: Rule::ProtectedResourceChanged,
        severity: Severity::High,
        resource: resource.given.clone(),
        reason: format!(
            "{} ({}) names the protected resource at {path}",
            ctx.name, ctx.service
        ),
        deployment_may: true,
        pipeline_only: false,
        service_may: true,
    }))
}
