//! AWS Security Finding Format (ASFF, schema 2018-10-08), ready for
//! Security Hub `BatchImportFindings` as a custom integration.
//!
//! Every attribute ASFF requires is present — `SchemaVersion`, `Id`,
//! `ProductArn`, `GeneratorId`, `AwsAccountId`, `Types`, `CreatedAt`,
//! `UpdatedAt`, `Severity`, `Title`, `Description`, `Resources` — with the
//! limits Security Hub enforces (Title ≤ 256 and Description ≤ 1024
//! characters, `ProductFields` values ≤ 2048, a finding ≤ 240 KB), plus
//! `FindingProviderFields`, `Remediation`, `SourceUrl`, `RecordState` and
//! `Workflow`. The CloudTrail record itself is not carried (ASFF has no
//! place for it); its fields are.
//!
//! With the default product ARN, `BatchImportFindings` must be called from
//! the account the finding's `AwsAccountId` names, and the product ARN
//! names that account too (API reference, `BatchImportFindings`). So the
//! [`Importer`] — the account and region the call is made in — sets both,
//! and a finding about another account says so in `ProductFields`
//! (`microvm-governance/account_id`) and in its resource.
//!
//! What a record says is validated before it is used: the account must be
//! 12 digits and the region a region name ([`Importer::new`] refuses
//! anything else, naming it), `CreatedAt` and `FirstObservedAt` come from
//! `eventTime` only when it is an RFC 3339 UTC timestamp (otherwise the
//! time of encoding, with the raw value in `ProductFields`), a resource's
//! region is the record's only when it is a region name.

use super::{
    PRODUCT_NAME, VENDOR_NAME, console_url, epoch_ms, is_account_id, is_region, partition_of,
};
use crate::finding::{Finding, Severity};
use crate::text::{FIELD_MAX, clean, clip};
use serde_json::{Map, Value, json};
use shared_core::Event;

pub const SCHEMA_VERSION: &str = "2018-10-08";

/// Security Hub refuses a finding larger than 240 KB.
pub const FINDING_MAX: usize = 240_000;

/// A value ASFF cannot carry where the finding would need it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AsffError {
    #[error("account id `{0}` is not 12 digits")]
    Account(String),
    #[error("region `{0}` is not a region name")]
    Region(String),
    #[error("no account id: the finding names none (give the Security Hub account)")]
    NoAccount,
    #[error("no region: the finding names none (give the Security Hub region)")]
    NoRegion,
}

/// Where the findings are imported: the account `BatchImportFindings` is
/// called from (the findings' `AwsAccountId`) and its region. The product
/// ARN of a custom integration is
/// `arn:PARTITION:securityhub:REGION:ACCOUNT:product/ACCOUNT/default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Importer {
    partition: &'static str,
    region: String,
    account_id: String,
}

impl Importer {
    /// Validated: `account_id` 12 digits, `region` a region name; the
    /// partition follows from the region. Values in errors are escaped.
    pub fn new(account_id: &str, region: &str) -> Result<Importer, AsffError> {
        if !is_account_id(account_id) {
            return Err(AsffError::Account(clean(account_id, FIELD_MAX)));
        }
        if !is_region(region) {
            return Err(AsffError::Region(clean(region, FIELD_MAX)));
        }
        Ok(Importer {
            partition: partition_of(region),
            region: region.to_string(),
            account_id: account_id.to_string(),
        })
    }

    /// The importer for `f`: `account` and `region` when given (the
    /// Security Hub account and region), else the finding's own.
    pub fn for_finding(
        f: &Finding,
        account: Option<&str>,
        region: Option<&str>,
    ) -> Result<Importer, AsffError> {
        let account = account
            .or(f.account_id.as_deref())
            .ok_or(AsffError::NoAccount)?;
        let region = region.or(f.region.as_deref()).ok_or(AsffError::NoRegion)?;
        Importer::new(account, region)
    }

    pub fn partition(&self) -> &'static str {
        self.partition
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn account_id(&self) -> &str {
        &self.account_id
    }

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
    let region = f
        .region
        .as_deref()
        .filter(|r| is_region(r))
        .unwrap_or(region);
    json!({
        "Type": kind,
        "Id": clip(&id, 512),
        "Partition": partition_of(region),
        "Region": region,
    })
}

/// The finding as an ASFF finding imported by `importer`, at most
/// [`FINDING_MAX`] bytes. `now` is RFC 3339 UTC (`UpdatedAt`, and
/// `CreatedAt` when the event's time is not a timestamp).
pub fn finding(f: &Finding, importer: &Importer, now: &str) -> Value {
    let mut v = unbounded(f, importer, now);
    super::bound::fit(&mut v, FINDING_MAX);
    v
}

fn unbounded(f: &Finding, importer: &Importer, now: &str) -> Value {
    let sev = json!({"Label": label(f.severity), "Original": f.severity.as_str()});
    let types = json!([finding_type(f)]);
    let account = importer.account_id.as_str();
    let event_time = f.event_time.as_deref().filter(|t| epoch_ms(t).is_some());
    let created = event_time.unwrap_or(now);
    let other_account = f.account_id.clone().filter(|a| a != account);
    let bad_time = f.event_time.clone().filter(|_| event_time.is_none());
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
        ("account_id", other_account),
        ("event_time", bad_time),
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
    if let Some(t) = event_time {
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
