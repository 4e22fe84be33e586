//! One CSV row per finding under a header row (RFC 4180 quoting). Cells
//! are cleaned like any human-readable output, and a cell that a
//! spreadsheet would run as a formula (`=`, `+`, `-`, `@`) is prefixed with
//! `'`.

use crate::finding::Finding;
use crate::text::{FIELD_MAX, clean};

/// The columns, in order.
pub const HEADER: [&str; 30] = [
    "event_time",
    "severity",
    "event",
    "rule",
    "summary",
    "event_name",
    "event_source",
    "outcome",
    "error_code",
    "account_id",
    "region",
    "principal_arn",
    "identity_type",
    "access_key_id",
    "session_issuer_arn",
    "on_behalf_of",
    "invoked_by",
    "source_ip",
    "user_agent",
    "microvm_id",
    "microvm_state",
    "image_arn",
    "execution_role_arn",
    "network_connectors",
    "contro1_request_id_claimed",
    "resource",
    "reason",
    "remediation",
    "incident_key",
    "event_id",
];

/// One cell: cleaned, formula-safe, quoted when it must be.
pub fn cell(v: &str) -> String {
    let mut c = clean(v, FIELD_MAX);
    if c.starts_with(['=', '+', '-', '@']) {
        c.insert(0, '\'');
    }
    if c.contains([',', '"', ';']) || c.starts_with(' ') || c.ends_with(' ') {
        format!("\"{}\"", c.replace('"', "\"\""))
    } else {
        c
    }
}

/// The header line.
pub fn header() -> String {
    HEADER.join(",") + "\n"
}

/// One finding's line.
pub fn row(f: &Finding) -> String {
    let o = |v: &Option<String>| v.as_deref().unwrap_or("").to_string();
    let values: [String; 30] = [
        o(&f.event_time),
        f.severity.as_str().into(),
        f.event.as_str().into(),
        f.rule.as_str().into(),
        f.summary.clone(),
        o(&f.event_name),
        o(&f.event_source),
        f.outcome
            .map(|x| x.as_str().to_string())
            .unwrap_or_default(),
        o(&f.error_code),
        o(&f.account_id),
        o(&f.region),
        o(&f.principal_arn),
        o(&f.identity_type),
        o(&f.access_key_id),
        o(&f.session_issuer_arn),
        o(&f.on_behalf_of),
        o(&f.invoked_by),
        o(&f.source_ip),
        o(&f.user_agent),
        o(&f.microvm_id),
        o(&f.microvm_state),
        o(&f.image_arn),
        o(&f.execution_role_arn),
        f.network_connectors.join(" "),
        o(&f.contro1_request_id_claimed),
        o(&f.resource),
        o(&f.reason),
        o(&f.remediation),
        f.incident_key.clone(),
        o(&f.event_id),
    ];
    values.iter().map(|v| cell(v)).collect::<Vec<_>>().join(",") + "\n"
}
