//! The roles every deny exempts, and the roles approved MicroVMs run with
//! (T12, T19): IAM changes to the deployment, pipeline and break-glass roles
//! (a `CreateRole` of one of their names included: a deleted exempt role's
//! name can be claimed), IAM changes to the allowed execution roles, and
//! every break-glass session (`AssumeRole` of the role, a console sign-in or
//! role switch into it).

use super::{Ctx, Hit, Verdict, roles};
use crate::classify::admin::PrincipalRef;
use crate::classify::{ANY_ACCOUNT, principal_role};
use crate::finding::{Rule, Severity};
use shared_core::RoleRef;

/// Console events that start a session.
const SIGN_IN: [&str; 2] = ["ConsoleLogin", "SwitchRole"];

pub(crate) fn may_apply(service: &str, name: &str, cfg: &crate::classify::TamperConfig) -> bool {
    let a = &cfg.admin;
    let exempt_or_exec = !cfg.deployment_roles.is_empty()
        || !a.break_glass_roles.is_empty()
        || !a.execution_roles.is_empty()
        || !a.pipeline_principals.is_empty();
    (exempt_or_exec && service == "iam.amazonaws.com" && roles::CHANGES.contains(&name))
        || (!a.break_glass_roles.is_empty()
            && ((service == "sts.amazonaws.com" && roles::ASSUME.contains(&name))
                || (service == "signin.amazonaws.com" && SIGN_IN.contains(&name))))
}

/// The role of `roles` that IAM names `name` in `account`.
fn named<'r>(roles: &'r [RoleRef], name: &str, account: Option<&str>) -> Option<&'r RoleRef> {
    roles.iter().find(|r| {
        r.name == name && (r.account == ANY_ACCOUNT || account.is_none_or(|a| a == r.account))
    })
}

fn who(ctx: &Ctx<'_>) -> String {
    ctx.r
        .user_identity
        .get()
        .and_then(|u| u.arn.as_str().or(u.identity_type.as_str()))
        .unwrap_or("an unknown principal")
        .to_string()
}

fn break_glass_session(ctx: &Ctx<'_>) -> Verdict {
    let glass = &ctx.cfg().admin.break_glass_roles;
    let role = if ctx.service == "sts.amazonaws.com" {
        let arn = ctx.param("roleArn")?;
        let role = RoleRef::from_role_arn(arn).ok()?;
        glass.iter().find(|g| g.matches(&role))?.clone()
    } else {
        let switched_to = ctx
            .whole
            .pointer("/additionalEventData/SwitchTo")
            .and_then(|v| v.as_str())
            .and_then(|a| RoleRef::from_role_arn(a).ok());
        let role = switched_to.or_else(|| principal_role(ctx.r))?;
        glass.iter().find(|g| g.matches(&role))?.clone()
    };
    Some(Ok(Hit {
        rule: Rule::BreakGlassSession,
        severity: Severity::High,
        resource: role.to_string(),
        reason: format!(
            "{} by {}: a break-glass session is exempt from every deny; confirm it is a \
             declared emergency",
            ctx.name,
            who(ctx)
        ),
        deployment_may: false,
        pipeline_only: false,
        service_may: false,
    }))
}

pub(crate) fn check(ctx: &Ctx<'_>) -> Verdict {
    if !may_apply(ctx.service, ctx.name, ctx.cfg()) {
        return None;
    }
    if ctx.service != "iam.amazonaws.com" {
        return break_glass_session(ctx);
    }
    let name = ctx.param("roleName")?;
    let account = ctx.account.as_deref();
    let cfg = ctx.cfg();
    let pipeline_roles: Vec<RoleRef> = cfg
        .admin
        .pipeline_principals
        .iter()
        .filter_map(|p| match p {
            PrincipalRef::Role(r) => Some(r.clone()),
            PrincipalRef::User(_) => None,
        })
        .collect();
    let (rule, what, role) = if let Some(r) = named(&cfg.deployment_roles, name, account)
        .or_else(|| named(&cfg.admin.break_glass_roles, name, account))
        .or_else(|| named(&pipeline_roles, name, account))
    {
        (
            Rule::ExemptRoleChanged,
            "a role every deny exempts",
            r.clone(),
        )
    } else if let Some(r) = named(&cfg.admin.execution_roles, name, account) {
        (
            Rule::ExecutionRoleChanged,
            "an execution role approved MicroVMs run with",
            r.clone(),
        )
    } else {
        return None;
    };
    let detail = match ctx.name {
        "CreateRole" => "created with this name (an exempt or allowed name claimed)".to_string(),
        "UpdateAssumeRolePolicy" => "its trust policy was replaced".to_string(),
        "AttachRolePolicy" | "DetachRolePolicy" | "PutRolePolicy" | "DeleteRolePolicy" => format!(
            "{} {}",
            ctx.name,
            ctx.param("policyArn")
                .or_else(|| ctx.param("policyName"))
                .unwrap_or("(unnamed policy)")
        ),
        other => format!("{other} on the role"),
    };
    let resource = if role.account == ANY_ACCOUNT {
        format!("{name} (in {})", account.unwrap_or("the call's account"))
    } else {
        role.to_string()
    };
    Some(Ok(Hit {
        rule,
        severity: Severity::Critical,
        resource,
        reason: format!("{what}: {detail}, by {}", who(ctx)),
        deployment_may: true,
        pipeline_only: false,
        service_may: false,
    }))
}
