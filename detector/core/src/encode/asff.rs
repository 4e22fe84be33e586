//! AWS Security Finding Format (ASFF, schema 2018-10-08), ready for
//! Security Hub `BatchImportFindings` as a custom integration.
//!
//! Every attribute ASFF requires is present — `SchemaVersion`, `Id`,
//! `ProductArn`, `GeneratorId`, `AwsAccountId`, `Types`, `CreatedAt`,
//! `UpdatedAt`, `Severity`, `Title`, `Description`, `Resources` — with the
//! limits Security Hub enforces (Title ≤ 256 and Description ≤ 1024
//! characters, `ProductFields` values ≤ 2048), plus
//! `FindingProviderFields`, `Remediation`, `SourceUrl`, `RecordState` and
//! `Workflow`.

use super::{PRODUCT_NAME, VENDOR_NAME, console_url};
use crate::finding::{Finding, Severity};
use crate::text::clip;
use serde_json::{Map, Value, json};
use shared_core::Event;

pub const SCHEMA_VERSION: &str = "2018-10-08";

/// Where the findings are imported: the Security Hub account and region.
/// The product ARN of a custom integration is
/// `arn:PARTITION:securityhub:REGION:ACCOUNT:product/ACCOUNT/default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Importer {
    pub partition: String,
    pub region: String,
    pub account_id: String,
}

impl Importer {
    pub fn product_arn(&self) -> String {
        format!(
            "arn:{}:securityhub:{}:{}:product/{}/default",
            self.partition, self.region, self.account_id, self.account_id
        )
    }
}

/// ASFF severity label.
pub fn label(s: Severity) -> &'static str {
    match s {
        Severity::Info => "INFORMATIONAL",
        Severity::Low => "LOW",
        Severity::Medium => "MEDIUM",
        Severity::High => "HIGH",
        Severity::Critical => "CRITICAL",
    }
}

/// The finding type, `namespace/category/classifier` from ASFF's taxonomy.
pub fn finding_type(f: &Finding) -> &'static str {
    match f.event {
        Event::BypassDetected => {
            "Unusual Behaviors/User/MicroVM call outside the governed launcher"
        }
        Event::GovernanceTampered => {
            "TTPs/Defense Evasion/MicroVM governance control plane changed"
        }
        Event::UnmanagedDetected => "Unusual Behaviors/VM/MicroVM without a launcher record",
        _ => {
            "Software and Configuration Checks/AWS Security Best Practices/MicroVM detection degraded"
        }
    }
}

/// A resource of the finding: the MicroVM, else the changed resource, else
/// the principal, else the detector itself.
fn resource(f: &Finding, region: &str) -> Value {
    let (kind, id) = if let Some(vm) = &f.microvm_id {
        ("Other", vm.clone())
    } else if let Some(r) = &f.resource {
        let kind = if r.contains(":function:") {
            "AwsLambdaFunction"
        } else if r.contains(":role/") {
            "AwsIamRole"
        } else if r.contains(":trail/") {
            "AwsCloudTrailTrail"
        } else {
            "Other"
        };
        (kind, r.clone())
    } else if let Some(p) = &f.principal_arn {
        ("Other", p.clone())
    } else {
        ("Other", f.source.clone())
    };
    json!({
        "Type": kind,
        "Id": clip(&id, 512),
        "Partition": "aws",
        "Region": f.region.as_deref().unwrap_or(region),
    })
}

/// The finding as an ASFF finding. `now` is RFC 3339 (`UpdatedAt`, and
/// `CreatedAt` when the event's time is unknown).
pub fn finding(f: &Finding, importer: &Importer, now: &str) -> Value {
    let sev = json!({"Label": label(f.severity), "Original": f.severity.as_str()});
    let types = json!([finding_type(f)]);
    let account = f
        .account_id
        .as_deref()
        .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or(&importer.account_id);
    let created = f.event_time.as_deref().unwrap_or(now);
    let mut product_fields = Map::new();
    for (k, v) in [
        ("event", Some(f.event.as_str().to_string())),
        ("rule", Some(f.rule.as_str().to_string())),
        ("incident_key", Some(f.incident_key.clone())),
        ("event_id", f.event_id.clone()),
        ("event_name", f.event_name.clone()),
        ("principal_arn", f.principal_arn.clone()),
        ("access_key_id", f.access_key_id.clone()),
        ("source_ip", f.source_ip.clone()),
        ("microvm_state", f.microvm_state.clone()),
        ("image_arn", f.image_arn.clone()),
        ("remediation_outcome", f.remediation.clone()),
        ("source", Some(f.source.clone())),
    ] {
        if let Some(v) = v {
            product_fields.insert(format!("microvm-governance/{k}"), json!(clip(&v, 2048)));
        }
    }
    let description = match &f.reason {
        Some(r) => format!("{}. {r}", f.summary),
        None => f.summary.clone(),
    };
    let mut m = Map::new();
    m.insert("SchemaVersion".into(), json!(SCHEMA_VERSION));
    m.insert(
        "Id".into(),
        json!(clip(
            &format!(
                "{}/{}/microvm-governance/{}",
                importer.region,
                account,
                f.uid()
            ),
            512
        )),
    );
    m.insert("ProductArn".into(), json!(importer.product_arn()));
    m.insert("ProductName".into(), json!(PRODUCT_NAME));
    m.insert("CompanyName".into(), json!(VENDOR_NAME));
    m.insert("GeneratorId".into(), json!(f.rule.as_str()));
    m.insert("AwsAccountId".into(), json!(account));
    m.insert("Types".into(), types.clone());
    if let Some(t) = &f.event_time {
        m.insert("FirstObservedAt".into(), json!(t));
    }
    m.insert("CreatedAt".into(), json!(created));
    m.insert("UpdatedAt".into(), json!(now));
    m.insert("Severity".into(), sev.clone());
    m.insert("Title".into(), json!(clip(&f.summary, 256)));
    m.insert("Description".into(), json!(clip(&description, 1024)));
    m.insert(
        "Remediation".into(),
        json!({"Recommendation": {"Text": clip(&f.recommended_action, 512)}}),
    );
    if let Some(url) = console_url(f) {
        m.insert("SourceUrl".into(), json!(url));
    }
    m.insert("ProductFields".into(), Value::Object(product_fields));
    m.insert("Resources".into(), json!([resource(f, &importer.region)]));
    m.insert("RecordState".into(), json!("ACTIVE"));
    m.insert("Workflow".into(), json!({"Status": "NEW"}));
    m.insert(
        "FindingProviderFields".into(),
        json!({"Severity": sev, "Types": types}),
    );
    Value::Object(m)
}
