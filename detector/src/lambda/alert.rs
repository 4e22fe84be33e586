//! What the security team receives for a finding, in one place: the SNS
//! subject and text (read at a glance: what, who, when, where, which MicroVM,
//! what to do), the full JSON, the Contro1 audit record body, the structured
//! log line, and the key that de-duplicates it. Pure: built from the core's
//! [`Finding`] and the sweep's observations, tested without AWS.
//!
//! Every value shown as text goes through [`detector_core::text::clean`]:
//! a MicroVM id or a session name is chosen by whoever made the call, and
//! must never be able to forge a line of the alert.

use contro1::types::{
    AuditRecord, AuditResource, AuditSource, INTEGRATION, Outcome as AuditOutcome,
    RESOURCE_TYPE_MICROVM,
};
use detector_core::text::{FIELD_MAX, clean, clip};
use detector_core::{Finding, Rule, Severity};
use serde_json::{Value, json};

/// SNS rejects subjects longer than this.
pub const SUBJECT_MAX: usize = 100;
/// SNS refuses a message over 256 KiB (the subject and attributes count).
pub const SNS_MESSAGE_MAX: usize = 256 * 1024;
/// The JSON details of an SNS message are fitted well below it.
pub const DETAILS_MAX: usize = 200 * 1024;
/// Longest dedupe key kept as it is.
pub const DEDUPE_KEY_MAX: usize = 1024;
/// Longest text field of a finding in a log line or a JSON body.
pub const JSON_FIELD_MAX: usize = 4096;
/// Contro1 resource type of a finding about something else than a MicroVM.
pub const RESOURCE_TYPE_AWS: &str = "aws.resource";

/// How a finding is de-duplicated (ARCHITECTURE.md: by CloudTrail `eventID`
/// for record findings, by MicroVM id per day for unmanaged MicroVMs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DedupeKey {
    /// One alert per CloudTrail event, whatever file or path delivered it.
    EventId(String),
    /// One alert per MicroVM per UTC day (`YYYY-MM-DD`).
    MicrovmDay { microvm_id: String, day: String },
    /// One alert per failing check per UTC day.
    CheckDay { check: String, day: String },
}

impl DedupeKey {
    /// The item key in the dedupe table. A key longer than
    /// [`DEDUPE_KEY_MAX`] bytes (DynamoDB allows 2048 for a partition key;
    /// ids come from records and API responses) keeps its kind and is
    /// replaced by the SHA-256 of the whole.
    pub fn as_key(&self) -> String {
        let key = match self {
            DedupeKey::EventId(id) => format!("event#{id}"),
            DedupeKey::MicrovmDay { microvm_id, day } => format!("vm#{microvm_id}#{day}"),
            DedupeKey::CheckDay { check, day } => format!("check#{check}#{day}"),
        };
        if key.len() <= DEDUPE_KEY_MAX {
            return key;
        }
        use sha2::Digest;
        let kind = key.split('#').next().unwrap_or("key");
        format!(
            "{kind}#sha256:{}",
            hex::encode(sha2::Sha256::digest(key.as_bytes()))
        )
    }

    /// How long the mark must live. CloudTrail and S3 redeliver within hours
    /// and SQS keeps messages up to 14 days, so event marks outlive that; a
    /// day mark only has to outlive its day.
    pub fn ttl_seconds(&self) -> i64 {
        match self {
            DedupeKey::EventId(_) => 15 * 86_400,
            DedupeKey::MicrovmDay { .. } | DedupeKey::CheckDay { .. } => 2 * 86_400,
        }
    }
}

/// A MicroVM as `ListMicrovms` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedMicrovm {
    pub microvm_id: String,
    pub state: String,
    pub image_arn: Option<String>,
    pub image_version: Option<String>,
    /// Unix seconds.
    pub started_at: Option<i64>,
}

/// One finding ready to be delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub finding: Finding,
    pub dedupe: DedupeKey,
}

/// UTC `YYYY-MM-DD` of a Unix time.
pub fn utc_day(epoch_seconds: i64) -> String {
    let (y, m, d) = civil_from_days(epoch_seconds.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// RFC 3339 UTC timestamp of a Unix time (`2025-10-02T14:05:31Z`).
pub fn utc_timestamp(epoch_seconds: i64) -> String {
    let secs = epoch_seconds.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        utc_day(epoch_seconds),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl Alert {
    /// A finding from a CloudTrail record: one alert per `eventID`, or, for a
    /// record that lacks one (hand-made input), per what identifies the call.
    pub fn from_finding(finding: Finding) -> Alert {
        let dedupe = match finding.event_id.as_deref() {
            Some(id) if !id.is_empty() => DedupeKey::EventId(id.to_string()),
            _ => DedupeKey::EventId(format!(
                "noid:{}",
                [
                    finding.aws_request_id.as_deref(),
                    finding.event_time.as_deref(),
                    finding.event_name.as_deref(),
                    finding.principal_arn.as_deref(),
                ]
                .map(|s| s.unwrap_or("-"))
                .join("|")
            )),
        };
        Alert { finding, dedupe }
    }

    /// A listed MicroVM that the launcher's ledger does not know.
    pub fn unmanaged(
        vm: &ListedMicrovm,
        now_epoch: i64,
        account_id: Option<&str>,
        region: Option<&str>,
    ) -> Alert {
        let started = vm.started_at.map(utc_timestamp);
        let mut f = Finding::new(
            Rule::MicrovmNotInLedger,
            Severity::High,
            format!(
                "MicroVM {} ({}, image {}) has no launcher record",
                vm.microvm_id,
                vm.state,
                vm.image_arn.as_deref().unwrap_or("unknown")
            ),
            "ListMicrovms".to_string(),
        );
        f.event_time = started.or_else(|| Some(utc_timestamp(now_epoch)));
        f.microvm_id = Some(vm.microvm_id.clone());
        f.microvm_state = Some(vm.state.clone());
        f.image_arn.clone_from(&vm.image_arn);
        f.image_version.clone_from(&vm.image_version);
        f.account_id = account_id.map(str::to_string);
        f.region = region.map(str::to_string);
        let finding = f.with_incident_key();
        Alert {
            dedupe: DedupeKey::MicrovmDay {
                microvm_id: vm.microvm_id.clone(),
                day: utc_day(now_epoch),
            },
            finding,
        }
    }

    /// The detector cannot see what it must see. One alert per check (and
    /// resource, when given) per day.
    pub fn degraded(rule: Rule, reason: &str, now_epoch: i64, resource: Option<&str>) -> Alert {
        let mut f = Finding::new(
            rule,
            Severity::High,
            format!("MicroVM detection degraded: {reason}"),
            "detector".to_string(),
        );
        f.event_time = Some(utc_timestamp(now_epoch));
        f.reason = Some(reason.to_string());
        f.resource = resource.map(str::to_string);
        let finding = f.with_incident_key();
        Alert::checked(finding, resource.unwrap_or(""), now_epoch)
    }

    /// A finding of a periodic check (not of a CloudTrail event): one alert
    /// per rule, `subject` (what it is about) and UTC day while it lasts.
    pub fn checked(finding: Finding, subject: &str, now_epoch: i64) -> Alert {
        let check = if subject.is_empty() {
            finding.rule.as_str().to_string()
        } else {
            format!("{}#{subject}", finding.rule.as_str())
        };
        Alert {
            finding,
            dedupe: DedupeKey::CheckDay {
                check,
                day: utc_day(now_epoch),
            },
        }
    }

    pub fn rule(&self) -> Rule {
        self.finding.rule
    }

    pub fn severity(&self) -> Severity {
        self.finding.severity
    }

    /// SNS subject: printable ASCII, one line, at most [`SUBJECT_MAX`] chars.
    pub fn subject(&self) -> String {
        let f = &self.finding;
        let mut s = format!("[{}] {}", f.severity.as_str().to_uppercase(), f.summary);
        if let Some(vm) = &f.microvm_id
            && !s.contains(vm.as_str())
        {
            s.push_str(&format!(" - {vm}"));
        }
        let ascii: String = s
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if ascii.len() <= SUBJECT_MAX {
            ascii
        } else {
            format!("{}...", &ascii[..SUBJECT_MAX - 3])
        }
    }

    /// Who, in words: the principal, for whom, through which service.
    fn who(&self) -> Option<String> {
        let f = &self.finding;
        let mut who = f
            .principal_arn
            .clone()
            .or_else(|| f.identity_type.clone())?;
        if let Some(user) = &f.on_behalf_of {
            who.push_str(&format!(" on behalf of {user}"));
        }
        if let Some(service) = &f.invoked_by {
            who.push_str(&format!(" via {service}"));
        }
        if let Some(key) = &f.access_key_id {
            who.push_str(&format!(" (access key {key})"));
        }
        Some(who)
    }

    /// The SNS message: a few lines a human reads at a glance, then the full
    /// JSON. Every value is cleaned: one line each, bounded.
    pub fn message(&self) -> String {
        let f = &self.finding;
        let mut m = String::new();
        let mut line = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                m.push_str(&format!("{k:<10}{}\n", clean(v, FIELD_MAX)));
            }
        };
        line("What:", Some(&f.summary));
        line("Who:", self.who().as_deref().or(Some("-")));
        line("When:", f.event_time.as_deref().or(Some("-")));
        if f.account_id.is_some() || f.region.is_some() {
            line(
                "Where:",
                Some(&format!(
                    "{} / {}",
                    f.account_id.as_deref().unwrap_or("-"),
                    f.region.as_deref().unwrap_or("-")
                )),
            );
        }
        let microvm = f.microvm_id.as_ref().map(|vm| {
            let mut s = vm.clone();
            if let Some(state) = &f.microvm_state {
                s.push_str(&format!(" ({state})"));
            }
            if let Some(image) = &f.image_arn {
                s.push_str(&format!(", image {image}"));
            }
            s
        });
        line("MicroVM:", microvm.as_deref());
        line("Resource:", f.resource.as_deref());
        line("Why:", f.reason.as_deref());
        line("Done:", f.remediation.as_deref());
        line("Event ID:", f.event_id.as_deref());
        line("Rule:", Some(f.rule.as_str()));
        line("Incident:", Some(&f.incident_key));
        let mut out = format!("{} ({})\n\n", f.event.as_str(), f.severity.as_str());
        out.push_str(&m);
        out.push_str(&format!(
            "\nWhat to do: {}\n",
            clean(&f.recommended_action, 2 * FIELD_MAX)
        ));
        out.push_str("\n--- details (JSON) ---\n");
        // Fitted as compact JSON with room for the pretty printer's
        // whitespace (at most 4 bytes a field), so it stays valid JSON.
        let mut details = serde_json::to_value(f.bounded(JSON_FIELD_MAX)).unwrap_or(Value::Null);
        detector_core::encode::bound::fit(&mut details, DETAILS_MAX - 4096);
        out.push_str(&serde_json::to_string_pretty(&details).unwrap_or_default());
        out.push('\n');
        out
    }

    /// The Contro1 audit record (reference/contro1-api.md): the taxonomy
    /// event name, severity, resource and the CloudTrail eventID. The dedupe
    /// key is the `external_request_id`, so a record repeated after a failed
    /// delivery is recognisable as the same finding.
    pub fn audit_record(&self) -> AuditRecord {
        let f = &self.finding;
        let resource = match (&f.microvm_id, &f.resource) {
            (Some(vm), _) => AuditResource {
                resource_type: RESOURCE_TYPE_MICROVM.to_string(),
                id: clip(vm, FIELD_MAX),
                uri: None,
            },
            (None, Some(r)) => AuditResource {
                resource_type: RESOURCE_TYPE_AWS.to_string(),
                id: clip(r, FIELD_MAX),
                uri: None,
            },
            (None, None) => AuditResource {
                resource_type: RESOURCE_TYPE_MICROVM.to_string(),
                id: "unknown".to_string(),
                uri: None,
            },
        };
        AuditRecord {
            action: f.event.as_str().to_string(),
            summary: Some(self.subject()),
            source: Some(AuditSource {
                integration: INTEGRATION.to_string(),
                workflow_id: Some("detector".to_string()),
            }),
            actor: None,
            resource: Some(resource),
            outcome: Some(AuditOutcome::Success),
            severity: Some(f.severity.as_str().to_string()),
            correlation_id: Some(clip(&f.incident_key, FIELD_MAX)),
            external_request_id: Some(self.dedupe.as_key()),
            in_reply_to: None,
            metadata: Some({
                let b = f.bounded(JSON_FIELD_MAX);
                json!({
                    "rule": b.rule,
                    "cloudtrail_event_id": b.event_id,
                    "principal_arn": b.principal_arn,
                    "what": b.summary,
                    "what_to_do": b.recommended_action,
                    "finding": b,
                })
            }),
        }
    }

    /// The structured log line (one per finding, whether alerted or
    /// suppressed as a duplicate).
    pub fn log_line(&self, status: &str) -> Value {
        let f = &self.finding;
        json!({
            "log": "finding",
            "event": f.event.as_str(),
            "severity": f.severity,
            "rule": f.rule,
            "status": status,
            "dedupe_key": self.dedupe.as_key(),
            "event_id": f.event_id.as_deref().map(|s| clip(s, JSON_FIELD_MAX)),
            "microvm_id": f.microvm_id.as_deref().map(|s| clip(s, JSON_FIELD_MAX)),
            "principal_arn": f.principal_arn.as_deref().map(|s| clip(s, JSON_FIELD_MAX)),
            "when": f.event_time.as_deref().map(|s| clip(s, JSON_FIELD_MAX)),
            "what": clip(&f.summary, 2 * FIELD_MAX),
            "finding": f.bounded(JSON_FIELD_MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(id: &str, state: &str) -> ListedMicrovm {
        ListedMicrovm {
            microvm_id: id.into(),
            state: state.into(),
            image_arn: Some("arn:aws:lambda:us-east-1:111122223333:microvm-image:x".into()),
            image_version: Some("3".into()),
            started_at: Some(1_759_413_931),
        }
    }

    #[test]
    fn utc_day_and_timestamp_match_known_dates() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_timestamp(1_759_413_931), "2025-10-02T14:05:31Z");
        assert_eq!(utc_day(951_782_400), "2000-02-29");
        assert_eq!(utc_day(-1), "1969-12-31");
    }

    #[test]
    fn subject_is_ascii_and_at_most_100_chars() {
        let v = vm(&format!("ai-{}", "é".repeat(80)), "RUNNING");
        let s = Alert::unmanaged(&v, 1_759_413_999, None, None).subject();
        assert!(s.len() <= SUBJECT_MAX, "{} chars: {s}", s.len());
        assert!(s.chars().all(|c| c.is_ascii_graphic() || c == ' '), "{s}");
        assert!(s.starts_with("[HIGH] MicroVM ai-"), "{s}");
    }

    #[test]
    fn unmanaged_message_says_what_when_which_state_where_and_what_to_do() {
        let a = Alert::unmanaged(
            &vm("ai-123", "SUSPENDED"),
            1_759_414_000,
            Some("111122223333"),
            Some("us-east-1"),
        );
        let m = a.message();
        assert!(m.contains("aws.microvm.unmanaged.detected"), "{m}");
        assert!(m.contains("MicroVM:  ai-123 (SUSPENDED)"), "{m}");
        assert!(m.contains("SUSPENDED, image"), "{m}");
        assert!(m.contains("When:     2025-10-02T14:05:31Z"), "{m}");
        assert!(m.contains("Where:    111122223333 / us-east-1"), "{m}");
        assert!(m.contains("What to do: "), "{m}");
        assert!(m.contains("\"image_version\": \"3\""), "{m}");
        assert!(
            m.contains("Incident: microvm:111122223333:us-east-1:ai-123"),
            "{m}"
        );
        assert_eq!(a.dedupe.as_key(), "vm#ai-123#2025-10-02");
        let rec = a.audit_record();
        assert_eq!(rec.action, "aws.microvm.unmanaged.detected");
        assert_eq!(rec.resource.unwrap().id, "ai-123");
        assert_eq!(
            rec.external_request_id.as_deref(),
            Some("vm#ai-123#2025-10-02")
        );
    }

    #[test]
    fn a_newline_in_a_microvm_id_cannot_forge_lines_of_the_message() {
        // Regression: the body used to print the id raw, so newlines in it
        // forged "Rule:" and "What to do:" lines.
        let forged = "ai-1\nRule:     nothing\nWhat to do: ignore this alert";
        let a = Alert::unmanaged(&vm(forged, "RUNNING"), 1_759_414_000, None, None);
        let m = a.message();
        let text = m.split("--- details (JSON) ---").next().unwrap();
        assert_eq!(
            text.lines().filter(|l| l.starts_with("Rule:")).count(),
            1,
            "{m}"
        );
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("What to do:"))
                .count(),
            1,
            "{m}"
        );
        assert!(text.contains("ai-1\\nRule:"), "{m}");
        let s = a.subject();
        assert!(!s.contains('\n'), "{s}");
    }

    #[test]
    fn an_oversized_value_is_bounded_in_the_message_the_audit_record_and_the_log() {
        let huge = format!("ai-{}", "x".repeat(100_000));
        let a = Alert::unmanaged(&vm(&huge, "RUNNING"), 1_759_414_000, None, None);
        assert!(a.message().len() < 40_000, "{}", a.message().len());
        let log = a.log_line("alerting").to_string();
        assert!(log.len() < 40_000, "{}", log.len());
        let rec = serde_json::to_string(&a.audit_record()).unwrap();
        assert!(rec.len() < 40_000, "{}", rec.len());
        assert!(a.subject().len() <= SUBJECT_MAX);
        let key = a.dedupe.as_key();
        assert!(key.starts_with("vm#sha256:") && key.len() < 100, "{key}");
        let other = Alert::unmanaged(
            &vm(&format!("{huge}y"), "RUNNING"),
            1_759_414_000,
            None,
            None,
        );
        assert_ne!(other.dedupe.as_key(), key);
    }

    #[test]
    fn the_same_vm_the_next_day_gets_a_new_dedupe_key() {
        let v = vm("ai-1", "RUNNING");
        let a = Alert::unmanaged(&v, 1_759_413_931, None, None);
        let b = Alert::unmanaged(&v, 1_759_413_931 + 86_400, None, None);
        assert_ne!(a.dedupe, b.dedupe);
        assert_eq!(
            a.dedupe,
            Alert::unmanaged(&v, 1_759_413_932, None, None).dedupe
        );
    }
}
