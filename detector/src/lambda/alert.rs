//! What the security team receives for a finding, in one place: the SNS
//! subject and text (read at a glance: what, who, when, which MicroVM, what to
//! do), the full JSON, the Contro1 audit record body, the structured log line,
//! and the key that de-duplicates it. Pure: built from the classifier's plain
//! types and the sweep's observations, tested without AWS.

use contro1::types::{
    AuditRecord, AuditResource, AuditSource, INTEGRATION, Outcome as AuditOutcome,
    RESOURCE_TYPE_MICROVM,
};
use detector_core::classify::{Finding, GovernedCall, Outcome, TrailChange};
use serde_json::{Value, json};
use shared_core::Event;

/// SNS rejects subjects longer than this.
pub const SUBJECT_MAX: usize = 100;

/// Rule of the finding raised when a launcher-role call is missing from the
/// ledger: the launcher's credentials were used outside the launcher.
pub const RULE_LAUNCHER_CREDENTIALS: &str = "launcher-credentials-outside-launcher";
/// Rule of the sweep's finding for a MicroVM absent from the ledger.
pub const RULE_NOT_IN_LEDGER: &str = "microvm-not-in-ledger";

/// How a finding is de-duplicated (ARCHITECTURE.md: by CloudTrail `eventID`
/// for bypasses, by MicroVM id per day for unmanaged MicroVMs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DedupeKey {
    /// One alert per CloudTrail event, whatever file or path delivered it.
    EventId(String),
    /// One alert per MicroVM per UTC day (`YYYY-MM-DD`).
    MicrovmDay { microvm_id: String, day: String },
    /// One alert per failing health check per UTC day.
    CheckDay { check: String, day: String },
}

impl DedupeKey {
    /// The item key in the dedupe table.
    pub fn as_key(&self) -> String {
        match self {
            DedupeKey::EventId(id) => format!("event#{id}"),
            DedupeKey::MicrovmDay { microvm_id, day } => format!("vm#{microvm_id}#{day}"),
            DedupeKey::CheckDay { check, day } => format!("check#{check}#{day}"),
        }
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
    pub event: Event,
    pub severity: String,
    pub rule: String,
    pub dedupe: DedupeKey,
    /// One line: what happened.
    pub what: String,
    /// The principal, when known.
    pub who: Option<String>,
    /// When it happened (CloudTrail eventTime, or when the sweep saw it).
    pub when: Option<String>,
    pub microvm_id: Option<String>,
    pub account_id: Option<String>,
    pub region: Option<String>,
    /// CloudTrail eventID, when the finding comes from a record.
    pub event_id: Option<String>,
    /// What the reader should do.
    pub todo: String,
    /// Everything we know, as JSON.
    pub details: Value,
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

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed => "failed (attempt)",
    }
}

/// Dedupe key of a record-based finding: its eventID, or, for a record that
/// lacks one (hand-made input), what identifies the call.
fn event_key(event_id: Option<&str>, fallback: &[Option<&str>]) -> DedupeKey {
    match event_id {
        Some(id) if !id.is_empty() => DedupeKey::EventId(id.to_string()),
        _ => DedupeKey::EventId(format!(
            "noid:{}",
            fallback
                .iter()
                .map(|s| s.unwrap_or("-"))
                .collect::<Vec<_>>()
                .join("|")
        )),
    }
}

impl Alert {
    /// A bypass from the classifier.
    pub fn from_bypass(f: &Finding) -> Alert {
        let what = format!(
            "{} {} outside the launcher ({})",
            f.event_name,
            outcome_word(f.outcome),
            f.rule.as_str()
        );
        let todo = match f.outcome {
            Outcome::Succeeded => format!(
                "Find out who holds {} and why it can call lambda:{} directly; \
                 if not expected, terminate the MicroVM and revoke the credentials. \
                 Only the launcher may make governed calls.",
                f.principal_arn.as_deref().unwrap_or("these credentials"),
                f.event_name
            ),
            Outcome::Failed => format!(
                "The call was refused ({}), but someone tried it: check who holds {} \
                 and tighten their IAM permissions.",
                f.error_code.as_deref().unwrap_or("error"),
                f.principal_arn.as_deref().unwrap_or("these credentials")
            ),
        };
        Alert {
            event: f.event,
            severity: f.severity.as_str().to_string(),
            rule: f.rule.as_str().to_string(),
            dedupe: event_key(
                f.event_id.as_deref(),
                &[
                    f.aws_request_id.as_deref(),
                    f.event_time.as_deref(),
                    Some(f.event_name.as_str()),
                    f.principal_arn.as_deref(),
                ],
            ),
            what,
            who: f.principal_arn.clone(),
            when: f.event_time.clone(),
            microvm_id: f.microvm_id.clone(),
            account_id: f.account_id.clone(),
            region: f.region.clone(),
            event_id: f.event_id.clone(),
            todo,
            details: serde_json::to_value(f).unwrap_or(Value::Null),
        }
    }

    /// A launcher-role call whose `requestID` is not in the ledger.
    pub fn from_unledgered_call(c: &GovernedCall, severity: &str) -> Alert {
        let mut details = serde_json::to_value(c).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut details {
            m.insert("event".into(), json!(Event::BypassDetected.as_str()));
            m.insert("rule".into(), json!(RULE_LAUNCHER_CREDENTIALS));
            m.insert("severity".into(), json!(severity));
        }
        Alert {
            event: Event::BypassDetected,
            severity: severity.to_string(),
            rule: RULE_LAUNCHER_CREDENTIALS.to_string(),
            dedupe: event_key(
                c.event_id.as_deref(),
                &[
                    c.request_id.as_deref(),
                    c.event_time.as_deref(),
                    Some(c.op.as_str()),
                ],
            ),
            what: format!(
                "{} {} with the launcher's role but is not in the launcher's ledger",
                c.op,
                outcome_word(c.outcome)
            ),
            who: c.principal_arn.clone(),
            when: c.event_time.clone(),
            microvm_id: c.microvm_id.clone(),
            account_id: None,
            region: None,
            event_id: c.event_id.clone(),
            todo: "The launcher's credentials were used outside the launcher: rotate the \
                   launcher role's sessions, review who can assume it, and terminate the \
                   MicroVM if it is not expected."
                .to_string(),
            details,
        }
    }

    /// A change to CloudTrail itself, which may blind the detector.
    pub fn from_trail_change(t: &TrailChange) -> Alert {
        let mut details = serde_json::to_value(t).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut details {
            m.insert("event".into(), json!(Event::DetectionDegraded.as_str()));
            m.insert("rule".into(), json!("cloudtrail-changed"));
        }
        let severity = match (t.event_name.as_str(), t.outcome) {
            (_, Outcome::Failed) => "low",
            ("StopLogging" | "DeleteTrail" | "DeleteEventDataStore", _) => "critical",
            _ => "high",
        };
        Alert {
            event: Event::DetectionDegraded,
            severity: severity.to_string(),
            rule: "cloudtrail-changed".to_string(),
            dedupe: event_key(
                t.event_id.as_deref(),
                &[
                    t.event_time.as_deref(),
                    Some(t.event_name.as_str()),
                    t.principal_arn.as_deref(),
                ],
            ),
            what: format!(
                "CloudTrail {} {} on trail {}",
                t.event_name,
                outcome_word(t.outcome),
                t.trail_name.as_deref().unwrap_or("(unnamed)")
            ),
            who: t.principal_arn.clone(),
            when: t.event_time.clone(),
            microvm_id: None,
            account_id: None,
            region: t.region.clone(),
            event_id: t.event_id.clone(),
            todo: "Check that a logging trail still selects AWS::Lambda::MicrovmImage data \
                   events; until it does, MicroVM calls made outside the launcher are not seen \
                   in CloudTrail (the sweep still runs)."
                .to_string(),
            details,
        }
    }

    /// A listed MicroVM that the launcher's ledger does not know.
    pub fn unmanaged(vm: &ListedMicrovm, now_epoch: i64) -> Alert {
        let started = vm.started_at.map(utc_timestamp);
        let details = json!({
            "event": Event::UnmanagedDetected.as_str(),
            "severity": "high",
            "rule": RULE_NOT_IN_LEDGER,
            "microvm_id": vm.microvm_id,
            "state": vm.state,
            "image_arn": vm.image_arn,
            "image_version": vm.image_version,
            "started_at": started,
            "observed_at": utc_timestamp(now_epoch),
        });
        Alert {
            event: Event::UnmanagedDetected,
            severity: "high".to_string(),
            rule: RULE_NOT_IN_LEDGER.to_string(),
            dedupe: DedupeKey::MicrovmDay {
                microvm_id: vm.microvm_id.clone(),
                day: utc_day(now_epoch),
            },
            what: format!(
                "MicroVM {} ({}, image {}) is running without a launcher record",
                vm.microvm_id,
                vm.state,
                vm.image_arn.as_deref().unwrap_or("unknown")
            ),
            who: None,
            when: started.or_else(|| Some(utc_timestamp(now_epoch))),
            microvm_id: Some(vm.microvm_id.clone()),
            account_id: None,
            region: None,
            event_id: None,
            todo: "Search CloudTrail for the RunMicrovm of this MicroVM to find who started \
                   it; terminate it if it is not expected (REMEDIATION can do this \
                   automatically after a grace period)."
                .to_string(),
            details,
        }
    }

    /// The detector cannot see what it must see (trail health).
    pub fn degraded(check: &str, reason: &str, now_epoch: i64, details: Value) -> Alert {
        let mut d = json!({
            "event": Event::DetectionDegraded.as_str(),
            "severity": "high",
            "rule": check,
            "reason": reason,
            "observed_at": utc_timestamp(now_epoch),
        });
        if let (Value::Object(m), Value::Object(extra)) = (&mut d, details) {
            m.extend(extra);
        }
        Alert {
            event: Event::DetectionDegraded,
            severity: "high".to_string(),
            rule: check.to_string(),
            dedupe: DedupeKey::CheckDay {
                check: check.to_string(),
                day: utc_day(now_epoch),
            },
            what: format!("MicroVM detection degraded: {reason}"),
            who: None,
            when: Some(utc_timestamp(now_epoch)),
            microvm_id: None,
            account_id: None,
            region: None,
            event_id: None,
            todo: "Make sure a logging trail has an advanced event selector with \
                   eventCategory = Data and resources.type = AWS::Lambda::MicrovmImage, and \
                   that it is logging."
                .to_string(),
            details: d,
        }
    }

    /// SNS subject: printable ASCII, one line, at most [`SUBJECT_MAX`] chars.
    pub fn subject(&self) -> String {
        let mut s = format!("[{}] {}", self.severity.to_uppercase(), self.what);
        if let Some(vm) = &self.microvm_id
            && !s.contains(vm.as_str())
        {
            s.push_str(&format!(" - {vm}"));
        }
        let clean: String = s
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if clean.len() <= SUBJECT_MAX {
            clean
        } else {
            format!("{}...", &clean[..SUBJECT_MAX - 3])
        }
    }

    /// The SNS message: a few lines a human reads at a glance, then the full
    /// JSON.
    pub fn message(&self) -> String {
        let dash = "-";
        let line = |k: &str, v: Option<&str>| format!("{k:<9}{}\n", v.unwrap_or(dash));
        let mut m = String::new();
        m.push_str(&format!("{} ({})\n\n", self.event.as_str(), self.severity));
        m.push_str(&line("What:", Some(&self.what)));
        m.push_str(&line("Who:", self.who.as_deref()));
        m.push_str(&line("When:", self.when.as_deref()));
        m.push_str(&line("MicroVM:", self.microvm_id.as_deref()));
        if self.account_id.is_some() || self.region.is_some() {
            m.push_str(&format!(
                "{:<9}{} / {}\n",
                "Where:",
                self.account_id.as_deref().unwrap_or(dash),
                self.region.as_deref().unwrap_or(dash)
            ));
        }
        m.push_str(&line("Event ID:", self.event_id.as_deref()));
        m.push_str(&line("Rule:", Some(&self.rule)));
        m.push_str(&format!("\nWhat to do: {}\n", self.todo));
        m.push_str("\n--- details (JSON) ---\n");
        m.push_str(&serde_json::to_string_pretty(&self.details).unwrap_or_default());
        m.push('\n');
        m
    }

    /// The Contro1 audit record (reference/contro1-api.md): the taxonomy
    /// event name, severity, resource and the CloudTrail eventID. The dedupe
    /// key is the `external_request_id`, so a record repeated after a failed
    /// delivery is recognisable as the same finding.
    pub fn audit_record(&self) -> AuditRecord {
        AuditRecord {
            action: self.event.as_str().to_string(),
            summary: Some(self.subject()),
            source: Some(AuditSource {
                integration: INTEGRATION.to_string(),
                workflow_id: Some("detector".to_string()),
            }),
            actor: None,
            resource: Some(AuditResource {
                resource_type: RESOURCE_TYPE_MICROVM.to_string(),
                id: self
                    .microvm_id
                    .clone()
                    .unwrap_or_else(|| "unknown".to_string()),
                uri: None,
            }),
            outcome: Some(AuditOutcome::Success),
            severity: Some(self.severity.clone()),
            correlation_id: None,
            external_request_id: Some(self.dedupe.as_key()),
            in_reply_to: None,
            metadata: Some(json!({
                "rule": self.rule,
                "cloudtrail_event_id": self.event_id,
                "principal_arn": self.who,
                "what": self.what,
                "what_to_do": self.todo,
                "finding": self.details,
            })),
        }
    }

    /// The structured log line (one per finding, whether alerted or
    /// suppressed as a duplicate).
    pub fn log_line(&self, status: &str) -> Value {
        json!({
            "log": "finding",
            "event": self.event.as_str(),
            "severity": self.severity,
            "rule": self.rule,
            "status": status,
            "dedupe_key": self.dedupe.as_key(),
            "event_id": self.event_id,
            "microvm_id": self.microvm_id,
            "principal_arn": self.who,
            "when": self.when,
            "what": self.what,
            "finding": self.details,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_day_and_timestamp_match_known_dates() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_timestamp(1_759_413_931), "2025-10-02T14:05:31Z");
        assert_eq!(utc_day(951_782_400), "2000-02-29");
        assert_eq!(utc_day(-1), "1969-12-31");
    }

    #[test]
    fn subject_is_ascii_and_at_most_100_chars() {
        let vm = ListedMicrovm {
            microvm_id: format!("ai-{}", "é".repeat(80)),
            state: "RUNNING".into(),
            image_arn: Some("arn:aws:lambda:us-east-1:111122223333:microvm-image:x".into()),
            image_version: None,
            started_at: Some(1_759_413_931),
        };
        let s = Alert::unmanaged(&vm, 1_759_413_999).subject();
        assert!(s.len() <= SUBJECT_MAX, "{} chars: {s}", s.len());
        assert!(s.chars().all(|c| c.is_ascii_graphic() || c == ' '), "{s}");
        assert!(s.starts_with("[HIGH] MicroVM ai-"), "{s}");
    }

    #[test]
    fn unmanaged_message_says_what_when_which_and_what_to_do() {
        let vm = ListedMicrovm {
            microvm_id: "ai-123".into(),
            state: "RUNNING".into(),
            image_arn: Some("arn:aws:lambda:us-east-1:111122223333:microvm-image:x".into()),
            image_version: Some("3".into()),
            started_at: Some(1_759_413_931),
        };
        let a = Alert::unmanaged(&vm, 1_759_414_000);
        let m = a.message();
        assert!(m.contains("aws.microvm.unmanaged.detected"), "{m}");
        assert!(m.contains("MicroVM: ai-123"), "{m}");
        assert!(m.contains("When:    2025-10-02T14:05:31Z"), "{m}");
        assert!(m.contains("What to do: "), "{m}");
        assert!(m.contains("\"image_version\": \"3\""), "{m}");
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
    fn the_same_vm_the_next_day_gets_a_new_dedupe_key() {
        let vm = ListedMicrovm {
            microvm_id: "ai-1".into(),
            state: "RUNNING".into(),
            image_arn: None,
            image_version: None,
            started_at: None,
        };
        let a = Alert::unmanaged(&vm, 1_759_413_931);
        let b = Alert::unmanaged(&vm, 1_759_413_931 + 86_400);
        assert_ne!(a.dedupe, b.dedupe);
        assert_eq!(a.dedupe, Alert::unmanaged(&vm, 1_759_413_932).dedupe);
    }
}
