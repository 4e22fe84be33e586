//! Writes to the Contro1 secrets (T14): with the API key and webhook secret
//! of a tenant the insider controls, approvals come from the insider. A
//! secret is matched by name, by full ARN and by ARN without its random
//! suffix, whichever way the configuration and the record name it.

use super::{Ctx, Hit, Verdict};
use crate::finding::{Rule, Severity};

/// Secrets Manager operations that change a secret's value, policy,
/// rotation, replication or existence.
pub const WRITES: [&str; 13] = [
    "PutSecretValue",
    "UpdateSecret",
    "UpdateSecretVersionStage",
    "PutResourcePolicy",
    "DeleteResourcePolicy",
    "RotateSecret",
    "CancelRotateSecret",
    "DeleteSecret",
    "RestoreSecret",
    "ReplicateSecretToRegions",
    "RemoveRegionsFromReplication",
    "StopReplicationToReplica",
    "CreateSecret",
];

pub(crate) fn may_apply(service: &str, name: &str, has_secrets: bool) -> bool {
    has_secrets && service == "secretsmanager.amazonaws.com" && WRITES.contains(&name)
}

pub(crate) fn check(ctx: &Ctx<'_>) -> Verdict {
    let secrets = &ctx.cfg().admin.contro1_secrets;
    if !may_apply(ctx.service, ctx.name, !secrets.is_empty()) {
        return None;
    }
    let account = ctx.account.as_deref();
    // CreateSecret names it `name`; every other operation `secretId`; the
    // record's `resources` carry the full ARN.
    let resources = ctx
        .whole
        .get("resources")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("ARN").and_then(|a| a.as_str()));
    let secret = ["secretId", "name"]
        .iter()
        .filter_map(|k| ctx.param(k))
        .chain(resources)
        .find_map(|v| secrets.iter().find(|s| s.named_by(v, account)))?;
    let what = match ctx.name {
        "PutSecretValue" | "UpdateSecret" => "a new value or key may have been written",
        "PutResourcePolicy" | "DeleteResourcePolicy" => "who may read or write it changed",
        "RotateSecret" | "CancelRotateSecret" => "its rotation changed",
        "DeleteSecret" => "it was scheduled for deletion",
        "CreateSecret" => "it was created again under its name",
        _ => "it changed",
    };
    Some(Ok(Hit {
        rule: Rule::Contro1SecretWritten,
        severity: Severity::Critical,
        resource: secret.given.clone(),
        reason: format!(
            "{} on a Contro1 secret: {what}; the launcher trusts whatever tenant these \
             credentials belong to",
            ctx.name
        ),
        deployment_may: true,
        pipeline_only: false,
        service_may: true,
    }))
}
