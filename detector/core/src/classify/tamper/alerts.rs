//! The alert plumbing beside the protected resources (T15): the alert
//! topic's subscriptions and attributes (a subscription ARN is
//! `<topic-arn>:<id>`, so a protected topic covers its subscriptions), and
//! the detector's log group: metric and subscription filters, its deletion
//! or retention, and log lines written by anyone but the detector's role (a
//! forged heartbeat).

use super::{Ctx, Hit, Verdict};
use crate::classify::admin::{log_group_name, topic_covers};
use crate::classify::principal_role;
use crate::finding::{Rule, Severity};

/// SNS operations on a topic or its subscriptions.
pub const TOPIC_CHANGES: [&str; 10] = [
    "Subscribe",
    "Unsubscribe",
    "SetSubscriptionAttributes",
    "SetTopicAttributes",
    "DeleteTopic",
    "AddPermission",
    "RemovePermission",
    "PutDataProtectionPolicy",
    "UntagResource",
    "TagResource",
];

/// CloudWatch Logs operations on a log group.
pub const LOG_CHANGES: [&str; 14] = [
    "PutMetricFilter",
    "DeleteMetricFilter",
    "PutSubscriptionFilter",
    "DeleteSubscriptionFilter",
    "PutLogEvents",
    "CreateLogStream",
    "DeleteLogStream",
    "DeleteLogGroup",
    "PutRetentionPolicy",
    "DeleteRetentionPolicy",
    "AssociateKmsKey",
    "DisassociateKmsKey",
    "PutDataProtectionPolicy",
    "DeleteDataProtectionPolicy",
];

/// Log lines the detector's own role writes.
const OWN_WRITES: [&str; 2] = ["PutLogEvents", "CreateLogStream"];

pub(crate) fn may_apply(service: &str, name: &str, cfg: &crate::classify::TamperConfig) -> bool {
    let a = &cfg.admin;
    (!a.alert_topics.is_empty() && service == "sns.amazonaws.com" && TOPIC_CHANGES.contains(&name))
        || (!a.detector_log_groups.is_empty()
            && service == "logs.amazonaws.com"
            && LOG_CHANGES.contains(&name))
}

fn topic(ctx: &Ctx<'_>) -> Verdict {
    let topics = &ctx.cfg().admin.alert_topics;
    let (topic, named) = ["topicArn", "subscriptionArn", "resourceArn"]
        .iter()
        .filter_map(|k| ctx.param(k))
        .find_map(|v| topics.iter().find(|t| topic_covers(t, v)).map(|t| (t, v)))?;
    let what = match ctx.name {
        "Subscribe" => format!(
            "a new {} subscription to {}",
            ctx.param("protocol").unwrap_or("(unknown protocol)"),
            ctx.param("endpoint").unwrap_or("(unnamed endpoint)")
        ),
        "Unsubscribe" => format!("subscription {named} removed: its alerts stop"),
        "SetSubscriptionAttributes" => format!(
            "subscription {named}: {} changed (a filter policy can drop every alert)",
            ctx.param("attributeName").unwrap_or("an attribute")
        ),
        "SetTopicAttributes" => format!(
            "topic {} changed",
            ctx.param("attributeName").unwrap_or("attribute")
        ),
        "DeleteTopic" => "the topic was deleted: no alert is delivered".into(),
        other => format!("{other} on the topic"),
    };
    Some(Ok(Hit {
        rule: Rule::AlertTopicChanged,
        severity: if matches!(
            ctx.name,
            "Unsubscribe" | "SetSubscriptionAttributes" | "DeleteTopic" | "SetTopicAttributes"
        ) {
            Severity::Critical
        } else {
            Severity::High
        },
        resource: topic.clone(),
        reason: what,
        deployment_may: true,
        pipeline_only: false,
        service_may: true,
    }))
}

fn log_group(ctx: &Ctx<'_>) -> Verdict {
    let cfg = ctx.cfg();
    let group = ["logGroupName", "logGroupIdentifier", "resourceArn"]
        .iter()
        .filter_map(|k| ctx.param(k))
        .map(log_group_name)
        .find_map(|g| cfg.admin.detector_log_groups.iter().find(|d| *d == g))?;
    let account = ctx.account.as_deref();
    if OWN_WRITES.contains(&ctx.name)
        && principal_role(ctx.r).is_some_and(|role| {
            cfg.admin
                .detector_roles
                .iter()
                .any(|d| d.matches(&role) && account.is_none_or(|a| a == role.account))
        })
    {
        return None;
    }
    let what = match ctx.name {
        "PutLogEvents" | "CreateLogStream" => {
            "log lines written by a principal that is not the detector: they can forge its \
             heartbeat or findings"
        }
        "PutMetricFilter" | "DeleteMetricFilter" => {
            "a metric filter changed: the detector's alarms count what it matches"
        }
        "PutSubscriptionFilter" | "DeleteSubscriptionFilter" => {
            "a subscription filter changed: the detector's logs go elsewhere"
        }
        "DeleteLogGroup" | "DeleteLogStream" => "the detector's logs were deleted",
        _ => "the log group's settings changed",
    };
    Some(Ok(Hit {
        rule: Rule::DetectorLogGroupChanged,
        severity: Severity::High,
        resource: group.clone(),
        reason: format!("{}: {what}", ctx.name),
        deployment_may: true,
        pipeline_only: false,
        service_may: true,
    }))
}

pub(crate) fn check(ctx: &Ctx<'_>) -> Verdict {
    if !may_apply(ctx.service, ctx.name, ctx.cfg()) {
        return None;
    }
    if ctx.service == "sns.amazonaws.com" {
        topic(ctx)
    } else {
        log_group(ctx)
    }
}
