//! OCSF 1.4.0 Detection Finding (class_uid 2004, category 2 Findings).
//!
//! 1.4.0, not 1.3.0: it is the first version with `is_alert` on findings,
//! `http_request` in evidence (the caller's user agent) and a network
//! endpoint that may be named by `domain` alone (a service calling for a
//! principal records its name, not an address, in `sourceIPAddress`).
//!
//! The base-event attributes OCSF requires (`activity_id`, `category_uid`,
//! `class_uid`, `type_uid`, `time`, `severity_id`, `metadata` with
//! `version` and `product.vendor_name`) and the Finding's own
//! (`finding_info` with `uid` and `title`) are always present. The profile
//! attributes used are declared in `metadata.profiles`: `cloud` (`cloud`,
//! `api`, `resources[].region` and `cloud_partition`) and `host` (`actor`).
//! The CloudTrail record travels as evidence (`evidences[].data`),
//! credentials redacted, with who made the call (`actor`), the call (`api`),
//! the caller's address (`src_endpoint`) and user agent (`http_request`);
//! the MicroVM, image and changed resource are `resources`; what OCSF has no
//! place for is kept in `unmapped`. A line is at most
//! [`super::bound::LINE_MAX`] bytes (long texts cut with a marker).
//!
//! Checked in CI against the schema itself (`scripts/conformance/ocsf_validate.py`).

use super::{PRODUCT_NAME, VENDOR_NAME, console_url, epoch_ms, partition_of};
use crate::finding::{Finding, Severity};
use serde_json::{Map, Value, json};

/// The OCSF schema version these findings follow.
pub const OCSF_VERSION: &str = "1.4.0";
/// The profiles whose attributes the findings use.
pub const PROFILES: [&str; 2] = ["cloud", "host"];
pub const CLASS_UID: u32 = 2004;
pub const CATEGORY_UID: u32 = 2;
/// Activity 1: Create.
pub const ACTIVITY_CREATE: u32 = 1;

/// OCSF `severity_id` (1 Informational .. 5 Critical) and its caption.
pub fn severity(s: Severity) -> (u32, &'static str) {
    match s {
        Severity::Info => (1, "Informational"),
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

/// Insert `v` under `k` when it is a value (absent fields are left out, as
/// OCSF producers do).
fn put(m: &mut Map<String, Value>, k: &str, v: Option<Value>) {
    if let Some(v) = v.filter(|v| !v.is_null()) {
        m.insert(k.to_string(), v);
    }
}

fn obj(pairs: &[(&str, Option<Value>)]) -> Option<Value> {
    let mut m = Map::new();
    for (k, v) in pairs {
        put(&mut m, k, v.clone());
    }
    (!m.is_empty()).then_some(Value::Object(m))
}

fn s(v: &Option<String>) -> Option<Value> {
    v.as_ref().map(|s| Value::String(s.clone()))
}

/// The finding as an OCSF Detection Finding of at most
/// [`super::bound::LINE_MAX`] bytes. `now_ms` is when the finding was made
/// (`finding_info.created_time`); `time` is the event's time when known.
pub fn detection_finding(f: &Finding, now_ms: i64) -> Value {
    let mut v = unbounded(f, now_ms);
    super::bound::fit(&mut v, super::bound::LINE_MAX);
    v
}

fn unbounded(f: &Finding, now_ms: i64) -> Value {
    let (severity_id, severity_caption) = severity(f.severity);
    let event_ms = f.event_time.as_deref().and_then(epoch_ms);
    let ip = f
        .source_ip
        .as_deref()
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
    // A service calling on someone's behalf records its name, not an address.
    let domain = f.source_ip.as_deref().filter(|_| ip.is_none());
    let actor = obj(&[
        (
            "user",
            obj(&[
                ("uid", s(&f.principal_arn)),
                ("type", s(&f.identity_type)),
                ("credential_uid", s(&f.access_key_id)),
            ]),
        ),
        ("session", obj(&[("issuer", s(&f.session_issuer_arn))])),
        ("invoked_by", s(&f.invoked_by)),
    ]);
    let api = obj(&[
        ("operation", s(&f.event_name)),
        ("service", obj(&[("name", s(&f.event_source))])),
        ("request", obj(&[("uid", s(&f.aws_request_id))])),
        ("response", obj(&[("error", s(&f.error_code))])),
    ]);
    let src_endpoint = obj(&[
        ("ip", ip.map(|x| json!(x))),
        ("domain", domain.map(|x| json!(x))),
    ]);
    let mut resources = Vec::new();
    let resource = |uid: &str, kind: &str| {
        obj(&[
            ("uid", Some(json!(uid))),
            ("type", Some(json!(kind))),
            ("region", s(&f.region)),
            (
                "cloud_partition",
                f.region.as_deref().map(|r| json!(partition_of(r))),
            ),
        ])
    };
    if let Some(vm) = &f.microvm_id {
        resources.extend(resource(vm, "AWS::Lambda::MicroVM"));
    }
    if let Some(image) = &f.image_arn {
        resources.extend(resource(image, "AWS::Lambda::MicrovmImage"));
    }
    if let Some(r) = &f.resource {
        resources.extend(resource(r, "AWS::Resource"));
    }
    let http_request = obj(&[("user_agent", s(&f.user_agent))]);
    // OCSF requires evidence to name at least one of actor, api, endpoint or
    // data: the user agent alone is no evidence.
    let evidence =
        (actor.is_some() || api.is_some() || src_endpoint.is_some() || f.record.is_some())
            .then(|| {
                obj(&[
                    ("actor", actor.clone()),
                    ("api", api.clone()),
                    ("src_endpoint", src_endpoint),
                    ("http_request", http_request),
                    ("data", f.record.clone()),
                ])
            })
            .flatten();
    let mut m = Map::new();
    put(&mut m, "activity_id", Some(json!(ACTIVITY_CREATE)));
    put(&mut m, "activity_name", Some(json!("Create")));
    put(&mut m, "category_uid", Some(json!(CATEGORY_UID)));
    put(&mut m, "category_name", Some(json!("Findings")));
    put(&mut m, "class_uid", Some(json!(CLASS_UID)));
    put(&mut m, "class_name", Some(json!("Detection Finding")));
    put(
        &mut m,
        "type_uid",
        Some(json!(CLASS_UID * 100 + ACTIVITY_CREATE)),
    );
    put(
        &mut m,
        "type_name",
        Some(json!("Detection Finding: Create")),
    );
    put(&mut m, "severity_id", Some(json!(severity_id)));
    put(&mut m, "severity", Some(json!(severity_caption)));
    put(&mut m, "status_id", Some(json!(1)));
    put(&mut m, "status", Some(json!("New")));
    put(&mut m, "time", Some(json!(event_ms.unwrap_or(now_ms))));
    put(&mut m, "message", Some(json!(f.summary)));
    put(&mut m, "is_alert", Some(json!(true)));
    put(
        &mut m,
        "metadata",
        Some(json!({
            "version": OCSF_VERSION,
            "profiles": PROFILES,
            "product": {"name": PRODUCT_NAME, "vendor_name": VENDOR_NAME},
            "event_code": f.rule.as_str(),
            "log_name": f.event.as_str(),
            "correlation_uid": f.incident_key,
        })),
    );
    put(
        &mut m,
        "finding_info",
        obj(&[
            ("uid", Some(json!(f.uid()))),
            ("title", Some(json!(f.summary))),
            (
                "desc",
                s(&f.reason).or_else(|| Some(json!(f.recommended_action))),
            ),
            ("types", Some(json!([f.event.as_str()]))),
            (
                "analytic",
                Some(
                    json!({"uid": f.rule.as_str(), "name": f.rule.as_str(), "type_id": 1, "type": "Rule"}),
                ),
            ),
            ("created_time", Some(json!(now_ms))),
            ("first_seen_time", event_ms.map(|t| json!(t))),
            ("src_url", console_url(f).map(|u| json!(u))),
        ]),
    );
    put(
        &mut m,
        "cloud",
        obj(&[
            ("provider", Some(json!("AWS"))),
            ("region", s(&f.region)),
            ("account", obj(&[("uid", s(&f.account_id))])),
        ]),
    );
    put(&mut m, "actor", actor);
    put(&mut m, "api", api);
    put(
        &mut m,
        "resources",
        (!resources.is_empty()).then(|| json!(resources)),
    );
    put(&mut m, "evidences", evidence.map(|e| json!([e])));
    put(
        &mut m,
        "remediation",
        Some(json!({"desc": f.recommended_action})),
    );
    put(
        &mut m,
        "unmapped",
        obj(&[
            ("incident_key", Some(json!(f.incident_key))),
            ("outcome", f.outcome.map(|o| json!(o.as_str()))),
            ("microvm_state", s(&f.microvm_state)),
            ("image_version", s(&f.image_version)),
            ("execution_role_arn", s(&f.execution_role_arn)),
            (
                "network_connectors",
                (!f.network_connectors.is_empty()).then(|| json!(f.network_connectors)),
            ),
            ("on_behalf_of", s(&f.on_behalf_of)),
            (
                "contro1_request_id_claimed",
                s(&f.contro1_request_id_claimed),
            ),
            ("contro1_request_id_ledger", s(&f.contro1_request_id_ledger)),
            ("remediation_outcome", s(&f.remediation)),
            ("source", Some(json!(f.source))),
        ]),
    );
    Value::Object(m)
}
