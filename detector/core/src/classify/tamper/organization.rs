//! An account taken out of the organization (T18): out from under the SCP
//! and the organization trail. `LeaveOrganization` names nothing in its
//! request (the caller's account is the one leaving): every one is a
//! finding, as is `RemoveAccountFromOrganization` and `DeleteOrganization`.

use super::{Ctx, Hit, Verdict};
use crate::finding::{Rule, Severity};

pub const EVENTS: [&str; 3] = [
    "LeaveOrganization",
    "RemoveAccountFromOrganization",
    "DeleteOrganization",
];

pub(crate) fn may_apply(service: &str, name: &str) -> bool {
    service == "organizations.amazonaws.com" && EVENTS.contains(&name)
}

pub(crate) fn check(ctx: &Ctx<'_>) -> Verdict {
    if !may_apply(ctx.service, ctx.name) {
        return None;
    }
    let account = match ctx.name {
        "RemoveAccountFromOrganization" => ctx.param("accountId").map(str::to_string),
        "DeleteOrganization" => None,
        _ => ctx.account.clone(),
    };
    let resource = account.unwrap_or_else(|| "the organization".to_string());
    Some(Ok(Hit {
        rule: Rule::AccountLeftOrganization,
        severity: Severity::Critical,
        resource: resource.clone(),
        reason: format!(
            "{}: {resource} is no longer governed by the organization's SCPs nor logged by its \
             trail",
            ctx.name
        ),
        deployment_may: false,
        pipeline_only: false,
        service_may: false,
    }))
}
