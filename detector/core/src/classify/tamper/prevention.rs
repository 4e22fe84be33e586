//! The prevention itself (T13): a new version, default version, deletion or
//! detachment of the deny policy or the permissions boundary, a boundary
//! removed from a role or user, and changes to the organization's SCPs.
//!
//! `Delete{Role,User}PermissionsBoundary` names only the role or user, not
//! the boundary it removes: with a boundary configured, every one is
//! reported (it cannot be told apart). `DisablePolicyType` of SCPs turns
//! every SCP off at a root and names none of them: reported with any SCP
//! configured.

use super::{Ctx, Hit, Verdict};
use crate::finding::{Rule, Severity};

/// IAM operations that change or detach a managed policy (by `policyArn`).
pub const POLICY_CHANGES: [&str; 7] = [
    "CreatePolicyVersion",
    "SetDefaultPolicyVersion",
    "DeletePolicyVersion",
    "DeletePolicy",
    "DetachRolePolicy",
    "DetachUserPolicy",
    "DetachGroupPolicy",
];

/// IAM operations that remove a boundary (naming only the principal).
pub const BOUNDARY_REMOVALS: [&str; 2] = [
    "DeleteRolePermissionsBoundary",
    "DeleteUserPermissionsBoundary",
];

/// IAM operations that set a principal's boundary (`permissionsBoundary`):
/// one that is not a configured prevention policy replaces the boundary.
pub const BOUNDARY_SETS: [&str; 2] = ["PutRolePermissionsBoundary", "PutUserPermissionsBoundary"];

/// Organizations operations that change, detach or delete an SCP (by
/// `policyId`).
pub const SCP_CHANGES: [&str; 3] = ["UpdatePolicy", "DetachPolicy", "DeletePolicy"];

pub(crate) fn may_apply(service: &str, name: &str, cfg: &crate::classify::TamperConfig) -> bool {
    let a = &cfg.admin;
    (!a.prevention_policies.is_empty()
        && service == "iam.amazonaws.com"
        && (POLICY_CHANGES.contains(&name)
            || BOUNDARY_REMOVALS.contains(&name)
            || BOUNDARY_SETS.contains(&name)))
        || (!a.scps.is_empty()
            && service == "organizations.amazonaws.com"
            && (SCP_CHANGES.contains(&name) || name == "DisablePolicyType"))
}

pub(crate) fn check(ctx: &Ctx<'_>) -> Verdict {
    let cfg = ctx.cfg();
    if !may_apply(ctx.service, ctx.name, cfg) {
        return None;
    }
    let a = &cfg.admin;
    let (resource, reason) = if ctx.service == "iam.amazonaws.com" {
        if BOUNDARY_REMOVALS.contains(&ctx.name) {
            let who = ctx
                .param("roleName")
                .map(|r| format!("role {r}"))
                .or_else(|| ctx.param("userName").map(|u| format!("user {u}")))
                .unwrap_or_else(|| "(unnamed)".into());
            (
                who.clone(),
                format!(
                    "the permissions boundary of {who} was removed (the record does not name \
                     which boundary; the configured one may be it)"
                ),
            )
        } else if BOUNDARY_SETS.contains(&ctx.name) {
            let set = ctx.param("permissionsBoundary")?;
            if a.prevention_policies.iter().any(|p| p == set) {
                return None;
            }
            let who = ctx
                .param("roleName")
                .map(|r| format!("role {r}"))
                .or_else(|| ctx.param("userName").map(|u| format!("user {u}")))
                .unwrap_or_else(|| "(unnamed)".into());
            (
                who.clone(),
                format!(
                    "the permissions boundary of {who} was replaced by {set}, which is not a \
                     configured prevention policy"
                ),
            )
        } else {
            let arn = ctx.param("policyArn")?;
            let policy = a.prevention_policies.iter().find(|p| *p == arn)?;
            let what = match ctx.name {
                "CreatePolicyVersion" => {
                    let default = ctx
                        .params
                        .and_then(|p| p.get("setAsDefault"))
                        .and_then(|v| v.as_bool())
                        == Some(true);
                    format!(
                        "a new version was written{}",
                        if default { " and made the default" } else { "" }
                    )
                }
                "SetDefaultPolicyVersion" => format!(
                    "the default version is now {}",
                    ctx.param("versionId").unwrap_or("(unnamed)")
                ),
                "DetachRolePolicy" | "DetachUserPolicy" | "DetachGroupPolicy" => format!(
                    "detached from {}",
                    ctx.param("roleName")
                        .or_else(|| ctx.param("userName"))
                        .or_else(|| ctx.param("groupName"))
                        .unwrap_or("(unnamed)")
                ),
                other => format!("{other} on the policy"),
            };
            (
                policy.clone(),
                format!("the deny policy or boundary: {what}"),
            )
        }
    } else if ctx.name == "DisablePolicyType" {
        if ctx.param("policyType") != Some("SERVICE_CONTROL_POLICY") {
            return None;
        }
        (
            ctx.param("rootId").unwrap_or("(unnamed root)").to_string(),
            "SCPs were disabled at the root: every SCP, the configured ones included, stops \
             applying"
                .to_string(),
        )
    } else {
        let id = ctx
            .param("policyId")
            .and_then(crate::classify::admin::scp_id)?;
        let scp = a.scps.iter().find(|s| *s == id)?;
        (
            scp.clone(),
            format!(
                "the SCP: {}{}",
                ctx.name,
                ctx.param("targetId")
                    .map(|t| format!(" from {t}"))
                    .unwrap_or_default()
            ),
        )
    };
    Some(Ok(Hit {
        rule: Rule::PreventionPolicyChanged,
        severity: Severity::Critical,
        resource,
        reason,
        deployment_may: true,
        pipeline_only: false,
        service_may: false,
    }))
}
