//! The resources the pipeline depends on (T4, T6, T7): ledger items written
//! by anyone but the launcher's role (where DynamoDB data events are
//! logged), and any mutating management call that names a protected resource
//! (the trail bucket's notification and policy, the tables, the detector's
//! rules, queues and topic, the integrity baseline, the allowed images).

use super::{Ctx, Hit, Verdict, find_string, read_only};
use crate::classify::{TamperConfig, principal_role};
use crate::finding::{Rule, Severity};
use crate::record::Record;
use serde_json::Value;

/// DynamoDB item writes (data events).
pub const LEDGER_WRITES: [&str; 7] = [
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
    "ExecuteStatement",
    "BatchExecuteStatement",
];

pub(crate) fn may_apply(service: &str, name: &str, r: &Record<'_>, cfg: &TamperConfig) -> bool {
    (service == "dynamodb.amazonaws.com"
        && LEDGER_WRITES.contains(&name)
        && !cfg.ledger_tables.is_empty())
        || (!cfg.protected_resources.is_empty() && !r.is_data_event() && !read_only(r, name))
}

pub(crate) fn check(ctx: &Ctx<'_>, whole: &Value) -> Verdict {
    let cfg = ctx.cfg();
    let account = ctx.account.as_deref();
    if ctx.service == "dynamodb.amazonaws.com" && LEDGER_WRITES.contains(&ctx.name) {
        let params = ctx.params?;
        let mut path = String::from("requestParameters");
        let mut hit_table = None;
        find_string(params, &mut path, &mut |s| {
            hit_table = cfg.ledger_tables.iter().find(|t| t.named_by(s, account));
            hit_table.is_some()
        })?;
        let table = hit_table?;
        if principal_role(ctx.r)
            .is_some_and(|role| ctx.c.is_launcher_role(&role, ctx.account.as_deref()))
        {
            return None;
        }
        return Some(Ok(Hit {
            rule: Rule::LedgerWrittenOutsideLauncher,
            severity: Severity::Critical,
            resource: table.given.clone(),
            reason: format!(
                "{} on the ledger by a principal that is not the launcher: a forged item can \
                 make a bypass look managed",
                ctx.name
            ),
            deployment_may: false,
            service_may: false,
        }));
    }
    if cfg.protected_resources.is_empty() || ctx.r.is_data_event() || read_only(ctx.r, ctx.name) {
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
        service_may: true,
    }))
}
