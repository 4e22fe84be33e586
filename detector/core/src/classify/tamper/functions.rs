//! Changes to the launcher and detector functions (T1), and the launcher role
//! given to any other function (T2).
//!
//! A function is named by `requestParameters.functionName` (a name, a partial
//! or full ARN, with or without a qualifier) or, for event source mappings
//! updated or deleted by UUID, by `responseElements.functionArn`.

use super::{Ctx, Hit, Verdict};
use crate::finding::{Rule, Severity};
use crate::targets::FunctionRef;
use shared_core::RoleRef;

/// Lambda operations that change a function, its code, configuration, URL,
/// permissions, aliases and versions, concurrency, event source mappings or
/// asynchronous invocation settings (eventNames without their date suffix).
pub const CHANGES: [&str; 28] = [
    "CreateFunction",
    "UpdateFunctionCode",
    "UpdateFunctionConfiguration",
    "DeleteFunction",
    "PublishVersion",
    "CreateAlias",
    "UpdateAlias",
    "DeleteAlias",
    "AddPermission",
    "RemovePermission",
    "CreateFunctionUrlConfig",
    "UpdateFunctionUrlConfig",
    "DeleteFunctionUrlConfig",
    "PutFunctionConcurrency",
    "DeleteFunctionConcurrency",
    "PutProvisionedConcurrencyConfig",
    "DeleteProvisionedConcurrencyConfig",
    "CreateEventSourceMapping",
    "UpdateEventSourceMapping",
    "DeleteEventSourceMapping",
    "PutFunctionEventInvokeConfig",
    "UpdateFunctionEventInvokeConfig",
    "DeleteFunctionEventInvokeConfig",
    "PutFunctionCodeSigningConfig",
    "DeleteFunctionCodeSigningConfig",
    "PutRuntimeManagementConfig",
    "PutFunctionRecursionConfig",
    "PutFunctionScalingConfig",
];

pub(crate) fn may_apply(service: &str, name: &str) -> bool {
    service == "lambda.amazonaws.com" && CHANGES.contains(&name)
}

/// The function the call changes, with the record's account and region
/// filled in where the request named it by name only.
fn target(ctx: &Ctx<'_>) -> Option<FunctionRef> {
    let named = ctx
        .param("functionName")
        .or_else(|| ctx.response_str("functionArn"))
        .or_else(|| ctx.response_str("functionName"))?;
    let mut f = FunctionRef::parse(named)?;
    if f.account.is_none() {
        f.account.clone_from(&ctx.account);
    }
    if f.region.is_none() {
        f.region = ctx.r.aws_region.as_str().map(str::to_string);
    }
    Some(f)
}

/// What the change did, in words, without any value that could be a secret
/// (environment variables are named by key only).
fn what_changed(ctx: &Ctx<'_>) -> String {
    let keys = |skip: &[&str]| -> Vec<String> {
        ctx.params
            .and_then(|p| p.as_object())
            .map(|m| {
                m.keys()
                    .filter(|k| !skip.contains(&k.as_str()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    match ctx.name {
        "UpdateFunctionCode" => match ctx.response_str("codeSha256") {
            Some(sha) => format!("the function's code was replaced (new codeSha256 {sha})"),
            None => "the function's code was replaced".into(),
        },
        "UpdateFunctionConfiguration" => {
            let mut what = keys(&["functionName", "fullyQualifiedArn"]);
            if let Some(env) = ctx
                .params
                .and_then(|p| p.pointer("/environment/variables"))
                .and_then(|v| v.as_object())
            {
                let names: Vec<&str> = env.keys().map(String::as_str).collect();
                what.push(format!("environment variables now {}", names.join(", ")));
            }
            format!("configuration changed: {}", what.join(", "))
        }
        "AddPermission" => format!(
            "resource policy now grants {} to {}",
            ctx.param("action").unwrap_or("an action"),
            ctx.param("principal").unwrap_or("a principal")
        ),
        "PutFunctionConcurrency" => {
            let n = ctx
                .params
                .and_then(|p| p.get("reservedConcurrentExecutions"))
                .and_then(|v| v.as_i64());
            match n {
                Some(0) => "reserved concurrency set to 0: the function can no longer run".into(),
                Some(n) => format!("reserved concurrency set to {n}"),
                None => "reserved concurrency changed".into(),
            }
        }
        "UpdateEventSourceMapping" | "DeleteEventSourceMapping" => {
            let enabled = ctx
                .params
                .and_then(|p| p.get("enabled"))
                .and_then(|v| v.as_bool());
            format!(
                "event source mapping {} {}{}",
                ctx.param("uUID")
                    .or_else(|| ctx.response_str("uUID"))
                    .unwrap_or("(unknown id)"),
                if ctx.name == "DeleteEventSourceMapping" {
                    "deleted"
                } else {
                    "updated"
                },
                if enabled == Some(false) {
                    " (disabled: its events no longer reach the function)"
                } else {
                    ""
                }
            )
        }
        other => format!("{other} on the function"),
    }
}

pub(crate) fn check(ctx: &Ctx<'_>) -> Verdict {
    if !may_apply(ctx.service, ctx.name) {
        return None;
    }
    let cfg = ctx.cfg();
    let target = target(ctx);
    let is = |fns: &[FunctionRef]| {
        target
            .as_ref()
            .is_some_and(|t| fns.iter().any(|f| f.matches(t)))
    };
    let resource = target
        .as_ref()
        .map_or_else(|| "(unnamed function)".to_string(), ToString::to_string);
    let hit = |rule, severity, reason| {
        Some(Ok(Hit {
            rule,
            severity,
            resource: resource.clone(),
            reason,
            deployment_may: true,
            pipeline_only: false,
            service_may: true,
        }))
    };
    if is(&cfg.launcher_functions) {
        return hit(
            Rule::LauncherFunctionChanged,
            Severity::Critical,
            what_changed(ctx),
        );
    }
    if is(&cfg.detector_functions) {
        return hit(
            Rule::DetectorFunctionChanged,
            Severity::High,
            what_changed(ctx),
        );
    }
    // The launcher role given to some other function: its code runs as the
    // launcher, with the launcher's permissions.
    if matches!(ctx.name, "CreateFunction" | "UpdateFunctionConfiguration")
        && let Some(role_arn) = ctx.param("role")
        && let Ok(role) = RoleRef::from_role_arn(role_arn)
        && ctx.c.is_launcher_role(&role, Some(role.account.as_str()))
    {
        return hit(
            Rule::LauncherRolePassedToFunction,
            Severity::Critical,
            format!("the function now runs as the launcher role {role_arn}"),
        );
    }
    None
}
