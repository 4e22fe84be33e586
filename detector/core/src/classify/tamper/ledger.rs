//! Ledger items written by anyone but the launcher's role (T4), where
//! DynamoDB data events are logged: the item API names the table in
//! `requestParameters`; PartiQL (`ExecuteStatement`, `BatchExecuteStatement`,
//! `ExecuteTransaction`) names it in the statement and in `resources`, with
//! non-key values redacted.

use super::{Ctx, Hit, Verdict, find_string};
use crate::classify::{TamperConfig, principal_role};
use crate::finding::{Rule, Severity};
use crate::targets::ResourceRef;
use serde_json::Value;

/// DynamoDB item writes (data events), PartiQL included.
pub const WRITES: [&str; 8] = [
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
    "ExecuteStatement",
    "BatchExecuteStatement",
    "ExecuteTransaction",
];

const PARTIQL: [&str; 3] = [
    "ExecuteStatement",
    "BatchExecuteStatement",
    "ExecuteTransaction",
];

pub(crate) fn may_apply(service: &str, name: &str, cfg: &TamperConfig) -> bool {
    service == "dynamodb.amazonaws.com" && WRITES.contains(&name) && !cfg.ledger_tables.is_empty()
}

/// Every `statement` string under `v`.
fn statements<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
    match v {
        Value::Object(m) => {
            for (k, item) in m {
                match (k.as_str(), item) {
                    ("statement", Value::String(s)) => out.push(s),
                    _ => statements(item, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| statements(i, out)),
        _ => {}
    }
}

/// The table a PartiQL write names (`INSERT INTO t`, `UPDATE t`,
/// `DELETE FROM t`, the name quoted or not), or `None` for a read.
/// `Some(None)`: a write whose table could not be read.
fn write_target(statement: &str) -> Option<Option<String>> {
    let words: Vec<&str> = statement.split_whitespace().collect();
    let verb = words.first()?.to_ascii_uppercase();
    let rest_at = match verb.as_str() {
        "INSERT" | "DELETE" => 2,
        "UPDATE" => 1,
        _ => return None,
    };
    // The text after the verb (and INTO / FROM).
    let mut rest = statement.trim_start();
    for _ in 0..rest_at {
        rest = rest.trim_start();
        rest = &rest[rest.find(char::is_whitespace).unwrap_or(rest.len())..];
    }
    let rest = rest.trim_start();
    let name = if let Some(q) = rest.strip_prefix('"') {
        q.split('"').next()
    } else {
        rest.split(|c: char| c.is_whitespace() || c == '.' || c == '(')
            .next()
    };
    Some(name.filter(|n| !n.is_empty()).map(str::to_string))
}

/// The ledger table a PartiQL call writes, if it writes one.
fn partiql_target<'c>(ctx: &Ctx<'_>, tables: &'c [ResourceRef]) -> Option<&'c ResourceRef> {
    let account = ctx.account.as_deref();
    let mut stmts = Vec::new();
    if let Some(p) = ctx.params {
        statements(p, &mut stmts);
    }
    let in_resources = ctx
        .whole
        .get("resources")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("ARN").and_then(|a| a.as_str()))
        .find_map(|arn| tables.iter().find(|t| t.named_by(arn, account)));
    if stmts.is_empty() {
        // No statement in the record: judged by the table it names.
        return in_resources;
    }
    stmts
        .iter()
        .filter_map(|s| write_target(s))
        .find_map(|target| match target {
            Some(name) => tables.iter().find(|t| t.named_by(&name, account)),
            None => in_resources,
        })
}

pub(crate) fn check(ctx: &Ctx<'_>) -> Verdict {
    let cfg = ctx.cfg();
    if !may_apply(ctx.service, ctx.name, cfg) {
        return None;
    }
    let account = ctx.account.as_deref();
    let table = if PARTIQL.contains(&ctx.name) {
        partiql_target(ctx, &cfg.ledger_tables)?
    } else {
        let params = ctx.params?;
        let mut path = String::from("requestParameters");
        let mut hit_table = None;
        find_string(params, &mut path, &mut |s| {
            hit_table = cfg.ledger_tables.iter().find(|t| t.named_by(s, account));
            hit_table.is_some()
        })?;
        hit_table?
    };
    if principal_role(ctx.r).is_some_and(|role| ctx.c.is_launcher_role(&role, account)) {
        return None;
    }
    Some(Ok(Hit {
        rule: Rule::LedgerWrittenOutsideLauncher,
        severity: Severity::Critical,
        resource: table.given.clone(),
        reason: format!(
            "{} on the ledger by a principal that is not the launcher: a forged item can make a \
             bypass look managed",
            ctx.name
        ),
        deployment_may: false,
        pipeline_only: false,
        service_may: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::write_target;

    #[test]
    fn partiql_writes_name_their_table_and_reads_are_not_writes() {
        let t = |s: &str| write_target(s).flatten();
        assert_eq!(
            t("INSERT INTO \"gov-ledger\" value {'pk':***}").as_deref(),
            Some("gov-ledger")
        );
        assert_eq!(
            t("insert into gov_ledger value {'pk':***}").as_deref(),
            Some("gov_ledger")
        );
        assert_eq!(
            t("UPDATE \"gov-ledger\" SET a=*** WHERE pk='x'").as_deref(),
            Some("gov-ledger")
        );
        assert_eq!(
            t("DELETE FROM \"gov-ledger\" WHERE pk='x'").as_deref(),
            Some("gov-ledger")
        );
        assert_eq!(write_target("SELECT * FROM \"gov-ledger\""), None);
        assert_eq!(write_target("EXISTS(SELECT * FROM t)"), None);
    }
}
