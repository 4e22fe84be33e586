//! Operations on the governance stacks (T11). CloudFormation carries out a
//! stack update as the stack's service role, which every deny and the
//! deployment-role exemption let through: the operation that started it is
//! the only record of who asked. It is reported with that principal unless
//! the principal is a pipeline principal; the deployment role itself is not
//! exempt here.

use super::{Ctx, Hit, Verdict};
use crate::finding::{Rule, Severity};

/// CloudFormation operations that change, execute, delete or unprotect a
/// stack or StackSet.
pub const CHANGES: [&str; 16] = [
    "CreateStack",
    "UpdateStack",
    "DeleteStack",
    "CreateChangeSet",
    "ExecuteChangeSet",
    "SetStackPolicy",
    "UpdateTerminationProtection",
    "CancelUpdateStack",
    "ContinueUpdateRollback",
    "RollbackStack",
    "ImportStacksToStackSet",
    "UpdateStackSet",
    "DeleteStackSet",
    "CreateStackInstances",
    "UpdateStackInstances",
    "DeleteStackInstances",
];

/// Operations that change what runs, or remove what protects it.
const CRITICAL: [&str; 8] = [
    "CreateStack",
    "UpdateStack",
    "DeleteStack",
    "ExecuteChangeSet",
    "SetStackPolicy",
    "UpdateStackSet",
    "DeleteStackSet",
    "DeleteStackInstances",
];

pub(crate) fn may_apply(service: &str, name: &str, has_stacks: bool) -> bool {
    has_stacks && service == "cloudformation.amazonaws.com" && CHANGES.contains(&name)
}

pub(crate) fn check(ctx: &Ctx<'_>) -> Verdict {
    let stacks = &ctx.cfg().admin.governance_stacks;
    if !may_apply(ctx.service, ctx.name, !stacks.is_empty()) {
        return None;
    }
    let account = ctx.account.as_deref();
    let named = ["stackName", "stackSetName", "stackId"]
        .iter()
        .filter_map(|k| ctx.param(k))
        .chain(ctx.response_str("stackId"))
        .find_map(|v| stacks.iter().find(|s| s.named_by(v, account)))?;
    let who = ctx
        .r
        .user_identity
        .get()
        .and_then(|u| u.arn.as_str().or(u.identity_type.as_str()))
        .unwrap_or("an unknown principal");
    let service_role = ctx
        .param("roleARN")
        .map(|r| format!(", carried out as {r}"))
        .unwrap_or_default();
    Some(Ok(Hit {
        rule: Rule::GovernanceStackChanged,
        severity: if CRITICAL.contains(&ctx.name) {
            Severity::Critical
        } else {
            Severity::High
        },
        resource: named.given.clone(),
        reason: format!(
            "{} on the governance stack {} started by {who}{service_role}: the changes \
             CloudFormation then makes as the stack's role are exempt from the other rules, \
             so this is the record of who asked for them",
            ctx.name, named.name
        ),
        deployment_may: false,
        pipeline_only: true,
        service_may: false,
    }))
}
