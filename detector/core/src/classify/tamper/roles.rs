//! The launcher role assumed by anything but the Lambda service, or its trust
//! and permissions changed (T3).

use super::{Ctx, Hit, Verdict};
use crate::finding::{Rule, Severity};
use shared_core::RoleRef;

/// STS operations that hand out a role's credentials.
pub const ASSUME: [&str; 3] = [
    "AssumeRole",
    "AssumeRoleWithWebIdentity",
    "AssumeRoleWithSAML",
];

/// IAM operations that change a role's trust, permissions or existence.
pub const CHANGES: [&str; 12] = [
    "UpdateAssumeRolePolicy",
    "PutRolePolicy",
    "DeleteRolePolicy",
    "AttachRolePolicy",
    "DetachRolePolicy",
    "PutRolePermissionsBoundary",
    "DeleteRolePermissionsBoundary",
    "UpdateRole",
    "DeleteRole",
    "CreateRole",
    "AddRoleToInstanceProfile",
    "UpdateRoleDescription",
];

pub(crate) fn may_apply(service: &str, name: &str) -> bool {
    (service == "sts.amazonaws.com" && ASSUME.contains(&name))
        || (service == "iam.amazonaws.com" && CHANGES.contains(&name))
}

/// The Lambda service assuming the role for the function it runs.
fn by_lambda_service(ctx: &Ctx<'_>) -> bool {
    let ui = ctx.r.user_identity.get();
    ui.and_then(|u| u.identity_type.as_str()) == Some("AWSService")
        && ui.and_then(|u| u.invoked_by.as_str()) == Some("lambda.amazonaws.com")
}

pub(crate) fn check(ctx: &Ctx<'_>) -> Verdict {
    if !may_apply(ctx.service, ctx.name) {
        return None;
    }
    if ctx.service == "sts.amazonaws.com" {
        let arn = ctx.param("roleArn")?;
        let role = RoleRef::from_role_arn(arn).ok()?;
        if !ctx.c.is_launcher_role(&role, Some(role.account.as_str())) || by_lambda_service(ctx) {
            return None;
        }
        let who = ctx
            .r
            .user_identity
            .get()
            .and_then(|u| u.arn.as_str().or(u.identity_type.as_str()))
            .unwrap_or("an unknown principal");
        return Some(Ok(Hit {
            rule: Rule::LauncherRoleAssumed,
            severity: Severity::Critical,
            resource: arn.to_string(),
            reason: format!(
                "{who} obtained the launcher role's credentials ({}, session {}); only the \
                 Lambda service may assume it",
                ctx.name,
                ctx.param("roleSessionName").unwrap_or("unnamed")
            ),
            deployment_may: false,
            pipeline_only: false,
            service_may: false,
        }));
    }
    // IAM names the role by name; it is in the account the call was made in.
    let name = ctx.param("roleName")?;
    let launcher = ctx
        .c
        .config()
        .launcher_roles
        .iter()
        .find(|l| l.name == name && ctx.account.as_deref().is_none_or(|a| a == l.account))?;
    let detail = match ctx.name {
        "UpdateAssumeRolePolicy" => "its trust policy was replaced".to_string(),
        "AttachRolePolicy" | "DetachRolePolicy" => format!(
            "managed policy {} {}",
            ctx.param("policyArn").unwrap_or("(unnamed)"),
            if ctx.name == "AttachRolePolicy" {
                "attached"
            } else {
                "detached"
            }
        ),
        "PutRolePolicy" | "DeleteRolePolicy" => format!(
            "inline policy {} {}",
            ctx.param("policyName").unwrap_or("(unnamed)"),
            if ctx.name == "PutRolePolicy" {
                "written"
            } else {
                "deleted"
            }
        ),
        other => format!("{other} on the role"),
    };
    // A pattern (`arn:aws:iam::*:role/...`) names the role of this account.
    let resource = match ctx.account.as_deref() {
        Some(a) if launcher.account == crate::classify::ANY_ACCOUNT => RoleRef {
            account: a.to_string(),
            ..launcher.clone()
        }
        .to_string(),
        _ => launcher.to_string(),
    };
    Some(Ok(Hit {
        rule: Rule::LauncherRoleChanged,
        severity: Severity::Critical,
        resource,
        reason: detail,
        deployment_may: true,
        pipeline_only: false,
        service_may: false,
    }))
}
