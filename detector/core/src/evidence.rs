//! Filling a [`Finding`] with what one CloudTrail record says: when, what,
//! where, who, and the MicroVM it names. Shared by every rule family, so a
//! bypass and a tamper finding carry the same evidence under the same names.

use crate::finding::{Finding, Outcome};
use crate::record::Record;
use shared_core::ops::normalise_event_name;

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_string)
}

/// `failed` when the record carries an `errorCode`.
pub fn outcome(r: &Record<'_>) -> Outcome {
    if r.error_code.as_str().is_some() {
        Outcome::Failed
    } else {
        Outcome::Succeeded
    }
}

/// The account the call was made in: `recipientAccountId`, else the
/// principal's account.
pub fn account(r: &Record<'_>) -> Option<String> {
    owned(
        r.recipient_account_id
            .as_str()
            .or_else(|| r.user_identity.get().and_then(|u| u.account_id.as_str())),
    )
}

/// The MicroVM a governed call names: the request's identifier, else the
/// one RunMicrovm's response gives.
pub fn microvm_id<'r>(r: &'r Record<'_>) -> Option<&'r str> {
    r.request_parameters
        .get()
        .and_then(|p| p.microvm_identifier.visible())
        .or_else(|| {
            r.response_elements
                .get()
                .and_then(|e| e.microvm_id.visible())
        })
}

/// The image a governed call names (request first, then response; both the
/// API's and the documentation's field names).
pub fn image_arn<'r>(r: &'r Record<'_>) -> Option<&'r str> {
    r.request_parameters
        .get()
        .and_then(|p| {
            p.image_identifier
                .visible()
                .or(p.microvm_image_arn.visible())
        })
        .or_else(|| {
            r.response_elements
                .get()
                .and_then(|e| e.image_arn.visible().or(e.microvm_image_arn.visible()))
        })
}

/// Copy the record's evidence into `f`, then derive its incident key.
pub fn fill(f: &mut Finding, r: &Record<'_>) {
    let ui = r.user_identity.get();
    let params = r.request_parameters.get();
    let response = r.response_elements.get();
    f.event_time = owned(r.event_time.as_str());
    f.event_id = owned(r.event_id.as_str());
    f.event_name = r
        .event_name
        .as_str()
        .map(|n| normalise_event_name(n).to_string());
    f.event_source = owned(r.event_source.as_str());
    f.aws_request_id = owned(r.request_id.as_str());
    f.outcome = Some(outcome(r));
    f.error_code = owned(r.error_code.as_str());
    f.account_id = account(r);
    f.region = owned(r.aws_region.as_str());
    f.principal_arn = owned(ui.and_then(|u| u.arn.as_str()));
    f.identity_type = owned(ui.and_then(|u| u.identity_type.as_str()));
    f.access_key_id = owned(ui.and_then(|u| u.access_key_id.as_str()));
    f.session_issuer_arn = owned(
        ui.and_then(|u| u.session_context.get())
            .and_then(|c| c.session_issuer.get())
            .and_then(|i| i.arn.as_str()),
    );
    f.on_behalf_of = ui.and_then(|u| u.on_behalf_of.get()).and_then(|o| {
        let user = o.user_id.as_str()?;
        Some(match o.identity_store_arn.as_str() {
            Some(store) => format!("{user} ({store})"),
            None => user.to_string(),
        })
    });
    f.invoked_by = owned(ui.and_then(|u| u.invoked_by.as_str()));
    f.source_ip = owned(r.source_ip_address.as_str());
    f.user_agent = owned(r.user_agent.as_str());
    f.microvm_id = owned(microvm_id(r));
    f.microvm_state = owned(response.and_then(|e| e.state.as_str().or(e.microvm_state.as_str())));
    f.image_arn = owned(image_arn(r));
    f.image_version = owned(
        params
            .and_then(|p| p.image_version.as_str())
            .or_else(|| response.and_then(|e| e.image_version.as_str())),
    );
    f.execution_role_arn = owned(
        params
            .and_then(|p| p.execution_role_arn.as_str())
            .or_else(|| response.and_then(|e| e.execution_role_arn.as_str())),
    );
    f.network_connectors = params
        .map(|p| {
            p.ingress_network_connectors
                .0
                .iter()
                .chain(&p.egress_network_connectors.0)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    f.incident_key = crate::finding::incident_key(f);
}

/// Keys whose values are secrets wherever they appear in a record
/// (AssumeRole's `responseElements.credentials`, tokens of any API).
const SECRET_KEYS: [&str; 6] = [
    "secretaccesskey",
    "sessiontoken",
    "credentials",
    "password",
    "authtoken",
    "x-aws-proxy-auth",
];

/// Largest record kept as evidence, serialised.
pub const RECORD_EVIDENCE_MAX: usize = 64 * 1024;

fn redact(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                if SECRET_KEYS.contains(&k.to_ascii_lowercase().as_str()) {
                    *v = serde_json::Value::String("REDACTED".into());
                } else {
                    redact(v);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The record as evidence: credentials and tokens redacted; a record larger
/// than [`RECORD_EVIDENCE_MAX`] serialised is replaced by a note with its
/// eventID (the finding's own fields still carry the evidence).
pub fn record_evidence(record: &serde_json::Value) -> serde_json::Value {
    let mut v = record.clone();
    redact(&mut v);
    let size = serde_json::to_vec(&v).map_or(usize::MAX, |b| b.len());
    if size > RECORD_EVIDENCE_MAX {
        return serde_json::json!({
            "truncated": true,
            "reason": format!("the record is {size} bytes, over {RECORD_EVIDENCE_MAX}"),
            "eventID": record.get("eventID"),
        });
    }
    v
}
