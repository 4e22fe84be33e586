//! Decoding every notification that can invoke the detector Lambda.
//!
//! A customer's CloudTrail bucket may already have its one S3 notification
//! configuration taken, so the detector accepts every delivery path
//! (../shared/reference/cloudtrail-delivery.md): S3 → Lambda, S3 → SQS,
//! S3 → SNS (→ SQS), CloudTrail's own SNS message, EventBridge S3
//! "Object Created", EventBridge "AWS API Call via CloudTrail" and the
//! EventBridge schedule that runs the sweep. This module turns any of them
//! into a [`Trigger`]; it is pure (no AWS, no I/O) so every shape is tested on
//! hand-written fixtures.
//!
//! Keys: S3 notifications (direct, via SQS or via SNS) carry object keys
//! form-encoded (`+` for space, `%XX` for the rest), so they are decoded here,
//! strictly: a malformed `%` sequence is an error naming the key. EventBridge
//! "Object Created" events and CloudTrail's own SNS message carry the key as
//! is.
//!
//! Versions: in a versioned bucket, S3 event notifications name the object
//! version they were sent for (`s3.object.versionId`) and EventBridge
//! "Object Created" events do too (`detail.object.version-id`); it is kept in
//! [`ObjectRef::version_id`] so the detector reads that version, the one
//! CloudTrail wrote, and not a later object under the same key (threat-model
//! row T17). CloudTrail's own SNS message names keys only, never versions.
//! Sources: Amazon S3 User Guide, "Event message structure" (`versionId`:
//! "object version if bucket is versioning-enabled, otherwise null"),
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html>,
//! and "EventBridge event message structure" (the "Object Created" example's
//! `detail.object.version-id`),
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html>.

use serde_json::Value;
use std::fmt;

/// Why a notification could not be decoded. Every variant names the shape
/// and the field that was wrong.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error("{context}: not JSON: {source}")]
    NotJson {
        context: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{context}: missing or non-{expected} field `{field}`")]
    Field {
        context: &'static str,
        field: &'static str,
        expected: &'static str,
    },
    #[error("S3 object key `{key}` is not valid form-encoding: {reason}")]
    BadKey { key: String, reason: String },
    #[error("unrecognised notification shape: {what}")]
    Unrecognised { what: String },
}

/// What an S3 object under a CloudTrail prefix holds, judged by its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A CloudTrail log file: read it.
    Log,
    /// `.../CloudTrail-Digest/...`: integrity digest, no records. Skipped.
    Digest,
    /// `.../CloudTrail-Insight/...`: Insights events. Skipped.
    Insight,
    /// A key ending in `/`: a "folder" marker made by the S3 console or a
    /// sync tool, never a CloudTrail file. Skipped (reading it would fail on
    /// empty input and send the message to the DLQ for nothing).
    Folder,
    /// Not a CloudTrail file by its key (AWS Config's
    /// `ConfigWritabilityCheckFile` and snapshots in a shared bucket, anything
    /// outside the CloudTrail key grammar). Skipped and counted, never read,
    /// never a failed message.
    NotCloudTrail,
}

/// `ACCOUNT_CloudTrail_REGION_YYYYMMDDTHHMMZ_RANDOM.json[.gz]` (the log
/// file name CloudTrail writes; reference/cloudtrail-delivery.md).
fn is_log_file_name(name: &str) -> bool {
    let Some(stem) = name
        .strip_suffix(".json.gz")
        .or_else(|| name.strip_suffix(".json"))
    else {
        return false;
    };
    let parts: Vec<&str> = stem.split('_').collect();
    let [account, "CloudTrail", region, stamp, random] = parts.as_slice() else {
        return false;
    };
    // Bytes, not `str` slices: a key may hold any UTF-8, and a slice inside
    // a multibyte character panics.
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let stamp = stamp.as_bytes();
    account.len() == 12
        && digits(account.as_bytes())
        && !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && stamp.len() == 14
        && digits(&stamp[..8])
        && stamp[8] == b'T'
        && digits(&stamp[9..13])
        && stamp[13] == b'Z'
        && !random.is_empty()
        && random.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl ObjectKind {
    /// What a key is, by the CloudTrail key grammar:
    /// `[prefix/]AWSLogs/[o-ORGID/]ACCOUNT/CloudTrail[-Digest|-Insight]/REGION/YYYY/MM/DD/FILE`.
    pub fn of_key(key: &str) -> ObjectKind {
        if key.ends_with('/') {
            return ObjectKind::Folder;
        }
        let Some(rest) = key
            .strip_prefix("AWSLogs/")
            .or_else(|| key.split_once("/AWSLogs/").map(|(_, r)| r))
        else {
            return ObjectKind::NotCloudTrail;
        };
        let mut segments: Vec<&str> = rest.split('/').collect();
        if segments.first().is_some_and(|s| s.starts_with("o-")) {
            segments.remove(0);
        }
        let [account, kind, _region, _y, _m, _d, file] = segments.as_slice() else {
            return ObjectKind::NotCloudTrail;
        };
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return ObjectKind::NotCloudTrail;
        }
        match *kind {
            "CloudTrail" if is_log_file_name(file) => ObjectKind::Log,
            "CloudTrail-Digest" => ObjectKind::Digest,
            "CloudTrail-Insight" => ObjectKind::Insight,
            _ => ObjectKind::NotCloudTrail,
        }
    }
}

/// One S3 object a notification points at, key already decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
    /// Size in bytes when the notification says (S3 and EventBridge do,
    /// CloudTrail's SNS message does not).
    pub size: Option<u64>,
    /// The object version the notification was sent for, when the bucket is
    /// versioned and the shape carries it (S3 events, EventBridge); `None`
    /// for CloudTrail's SNS message and unversioned buckets.
    pub version_id: Option<String>,
}

impl ObjectRef {
    pub fn kind(&self) -> ObjectKind {
        ObjectKind::of_key(&self.key)
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// What one notification asks the detector to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// Read these objects. `ignored_records` counts S3 event records that are
    /// not `ObjectCreated:*` (e.g. `ObjectRemoved`), which are skipped.
    Objects {
        objects: Vec<ObjectRef>,
        ignored_records: usize,
    },
    /// One CloudTrail record from EventBridge: classify it now.
    ApiCall(Value),
    /// The scheduled sweep.
    Schedule,
    /// Sweep one account and region: a message the scheduled sweep queued
    /// for itself when it fans out (`{"sweep_target": {"account", "region"}}`).
    SweepTarget { account: String, region: String },
    /// `s3:TestEvent` sent when a notification configuration is saved.
    TestEvent,
    /// A well-formed notification that asks for nothing (SNS subscription
    /// confirmation, an EventBridge event of another kind). Counted.
    Ignored(String),
}

/// One SQS message of a batch, kept apart so that a failure is reported for
/// exactly this message (`batchItemFailures`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsMessage {
    pub message_id: String,
    pub body: String,
}

/// A whole Lambda invocation payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// An SQS batch: decode each body with [`decode_message_body`].
    Sqs(Vec<SqsMessage>),
    /// Any other trigger: S3 direct (one trigger), SNS direct (one per
    /// record), EventBridge (one).
    Direct(Vec<Trigger>),
}

const SQS: &str = "SQS event";
const SNS: &str = "SNS event";
const S3: &str = "S3 event";
const EB: &str = "EventBridge event";
const CT_SNS: &str = "CloudTrail SNS message";
const SNS_ENVELOPE: &str = "SNS envelope";

fn field<'a>(
    v: &'a Value,
    context: &'static str,
    name: &'static str,
) -> Result<&'a str, NotificationError> {
    v.get(name)
        .and_then(Value::as_str)
        .ok_or(NotificationError::Field {
            context,
            field: name,
            expected: "string",
        })
}

/// Decode the payload a Lambda invocation received.
pub fn decode_invocation(event: &Value) -> Result<Invocation, NotificationError> {
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        let first_source = records
            .first()
            .and_then(|r| r.get("eventSource").or_else(|| r.get("EventSource")))
            .and_then(Value::as_str);
        match first_source {
            Some("aws:sqs") => {
                let mut out = Vec::with_capacity(records.len());
                for r in records {
                    out.push(SqsMessage {
                        message_id: field(r, SQS, "messageId")?.to_string(),
                        body: field(r, SQS, "body")?.to_string(),
                    });
                }
                return Ok(Invocation::Sqs(out));
            }
            Some("aws:sns") => {
                let mut out = Vec::with_capacity(records.len());
                for r in records {
                    let sns = r.get("Sns").ok_or(NotificationError::Field {
                        context: SNS,
                        field: "Sns",
                        expected: "object",
                    })?;
                    out.push(decode_json_text(
                        field(sns, SNS, "Message")?,
                        "SNS event `Sns.Message`",
                    )?);
                }
                return Ok(Invocation::Direct(out));
            }
            _ => return Ok(Invocation::Direct(vec![decode_value(event)?])),
        }
    }
    Ok(Invocation::Direct(vec![decode_value(event)?]))
}

/// Decode one message body: an SQS body or an SNS `Message`. It may be an S3
/// event, an `s3:TestEvent`, an SNS envelope (SNS → SQS without raw delivery),
/// CloudTrail's own SNS message, or an EventBridge event (EventBridge → SQS).
pub fn decode_message_body(body: &str) -> Result<Trigger, NotificationError> {
    decode_json_text(body, "message body")
}

/// Decode a notification held as JSON text; `context` names where the text
/// was in a "not JSON" error.
fn decode_json_text(text: &str, context: &'static str) -> Result<Trigger, NotificationError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|source| NotificationError::NotJson { context, source })?;
    decode_value(&v)
}

/// Decode one JSON notification of any supported shape.
pub fn decode_value(v: &Value) -> Result<Trigger, NotificationError> {
    let Some(obj) = v.as_object() else {
        return Err(NotificationError::Unrecognised {
            what: format!("expected a JSON object, got {}", type_name(v)),
        });
    };
    // SNS envelope (inside SQS without raw message delivery).
    if obj.get("Type").and_then(Value::as_str).is_some() && obj.contains_key("TopicArn") {
        let ty = field(v, SNS_ENVELOPE, "Type")?;
        return match ty {
            "Notification" => {
                decode_json_text(field(v, SNS_ENVELOPE, "Message")?, "SNS envelope `Message`")
            }
            other => Ok(Trigger::Ignored(format!("SNS message of Type `{other}`"))),
        };
    }
    // s3:TestEvent
    if obj.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Trigger::TestEvent);
    }
    // CloudTrail's own SNS delivery message.
    if obj.contains_key("s3Bucket") || obj.contains_key("s3ObjectKey") {
        return decode_cloudtrail_sns(v);
    }
    // S3 event notification.
    if let Some(records) = obj.get("Records").and_then(Value::as_array) {
        return decode_s3_records(records);
    }
    // EventBridge.
    if obj.contains_key("detail-type") {
        return decode_eventbridge(v);
    }
    if let Some(t) = obj.get("sweep_target") {
        return decode_sweep_target(t);
    }
    Err(NotificationError::Unrecognised {
        what: format!(
            "object with keys [{}]",
            obj.keys().take(8).cloned().collect::<Vec<_>>().join(", ")
        ),
    })
}

const SWEEP: &str = "sweep target message";

/// `{"account": "123456789012", "region": "eu-west-1"}`, both checked so
/// that a malformed message fails here and not as a role ARN or endpoint.
fn decode_sweep_target(t: &Value) -> Result<Trigger, NotificationError> {
    let account = field(t, SWEEP, "account")?;
    let region = field(t, SWEEP, "region")?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NotificationError::Unrecognised {
            what: format!(
                "{SWEEP}: account `{}` is not 12 digits",
                crate::text::clip(account, 40)
            ),
        });
    }
    let region_ok = !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !region_ok {
        return Err(NotificationError::Unrecognised {
            what: format!(
                "{SWEEP}: `{}` is not a region name",
                crate::text::clip(region, 40)
            ),
        });
    }
    Ok(Trigger::SweepTarget {
        account: account.to_string(),
        region: region.to_string(),
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn decode_cloudtrail_sns(v: &Value) -> Result<Trigger, NotificationError> {
    let bucket = field(v, CT_SNS, "s3Bucket")?;
    let keys = v
        .get("s3ObjectKey")
        .and_then(Value::as_array)
        .ok_or(NotificationError::Field {
            context: CT_SNS,
            field: "s3ObjectKey",
            expected: "array",
        })?;
    let mut objects = Vec::with_capacity(keys.len());
    for k in keys {
        let key = k.as_str().ok_or(NotificationError::Field {
            context: CT_SNS,
            field: "s3ObjectKey[]",
            expected: "string",
        })?;
        objects.push(ObjectRef {
            bucket: bucket.to_string(),
            key: key.to_string(),
            size: None,
            version_id: None,
        });
    }
    Ok(Trigger::Objects {
        objects,
        ignored_records: 0,
    })
}

fn decode_s3_records(records: &[Value]) -> Result<Trigger, NotificationError> {
    let mut objects = Vec::new();
    let mut ignored_records = 0;
    for r in records {
        let source = field(r, S3, "eventSource")?;
        let name = field(r, S3, "eventName")?;
        if source != "aws:s3" || !name.starts_with("ObjectCreated:") {
            ignored_records += 1;
            continue;
        }
        let s3 = r.get("s3").ok_or(NotificationError::Field {
            context: S3,
            field: "s3",
            expected: "object",
        })?;
        let bucket = s3
            .get("bucket")
            .and_then(|b| b.get("name"))
            .and_then(Value::as_str)
            .ok_or(NotificationError::Field {
                context: S3,
                field: "s3.bucket.name",
                expected: "string",
            })?;
        let object = s3.get("object").ok_or(NotificationError::Field {
            context: S3,
            field: "s3.object",
            expected: "object",
        })?;
        let raw_key = field(object, S3, "key")?;
        objects.push(ObjectRef {
            bucket: bucket.to_string(),
            key: form_decode(raw_key)?,
            size: object.get("size").and_then(Value::as_u64),
            version_id: version_id(object, S3, "versionId")?,
        });
    }
    if objects.is_empty() {
        return Ok(Trigger::Ignored(format!(
            "S3 event with {ignored_records} record(s), none ObjectCreated"
        )));
    }
    Ok(Trigger::Objects {
        objects,
        ignored_records,
    })
}

fn decode_eventbridge(v: &Value) -> Result<Trigger, NotificationError> {
    let detail_type = field(v, EB, "detail-type")?;
    let source = v.get("source").and_then(Value::as_str).unwrap_or("");
    match detail_type {
        "Scheduled Event" => Ok(Trigger::Schedule),
        "AWS API Call via CloudTrail" => {
            let detail =
                v.get("detail")
                    .filter(|d| d.is_object())
                    .ok_or(NotificationError::Field {
                        context: EB,
                        field: "detail",
                        expected: "object",
                    })?;
            Ok(Trigger::ApiCall(detail.clone()))
        }
        "Object Created" if source == "aws.s3" => {
            let detail = v.get("detail").ok_or(NotificationError::Field {
                context: EB,
                field: "detail",
                expected: "object",
            })?;
            let bucket = detail
                .get("bucket")
                .and_then(|b| b.get("name"))
                .and_then(Value::as_str)
                .ok_or(NotificationError::Field {
                    context: EB,
                    field: "detail.bucket.name",
                    expected: "string",
                })?;
            let object = detail.get("object").ok_or(NotificationError::Field {
                context: EB,
                field: "detail.object",
                expected: "object",
            })?;
            Ok(Trigger::Objects {
                objects: vec![ObjectRef {
                    bucket: bucket.to_string(),
                    key: field(object, EB, "key")?.to_string(),
                    size: object.get("size").and_then(Value::as_u64),
                    version_id: version_id(object, EB, "version-id")?,
                }],
                ignored_records: 0,
            })
        }
        other => Ok(Trigger::Ignored(format!(
            "EventBridge event `{other}` from `{source}`"
        ))),
    }
}

/// The object version a notification names: absent or `null` when the
/// bucket is not versioned (S3 documents `null` for an unversioned bucket),
/// a non-empty string otherwise. Anything else is an error: reading another
/// version than the one named would be the very substitution the field
/// guards against. A version id is not form-encoded (S3 version ids are URL
/// safe; the literal `null` names the version of an object written while
/// versioning was suspended, and is passed on as it is).
fn version_id(
    object: &Value,
    context: &'static str,
    name: &'static str,
) -> Result<Option<String>, NotificationError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(v)) if v.is_empty() => Err(NotificationError::Unrecognised {
            what: format!("{context}: empty object version id `{name}`"),
        }),
        Some(Value::String(v)) => Ok(Some(v.clone())),
        Some(_) => Err(NotificationError::Field {
            context,
            field: name,
            expected: "string",
        }),
    }
}

/// Decode an S3 notification key: `+` is a space, `%XX` a byte; the result
/// must be UTF-8. Strict: `%` not followed by two hex digits is an error.
pub fn form_decode(key: &str) -> Result<String, NotificationError> {
    let bad = |reason: String| NotificationError::BadKey {
        key: key.to_string(),
        reason,
    };
    let b = key.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = b.get(i + 1..i + 3).ok_or_else(|| {
                    bad(format!(
                        "truncated escape at byte {i} (`%` needs two hex digits)"
                    ))
                })?;
                let hi = hex_val(hex[0]);
                let lo = hex_val(hex[1]);
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => {
                        return Err(bad(format!(
                            "invalid escape `%{}` at byte {i}",
                            String::from_utf8_lossy(hex)
                        )));
                    }
                }
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|e| {
        bad(format!(
            "decodes to invalid UTF-8 at byte {}",
            e.utf8_error().valid_up_to()
        ))
    })
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_turns_plus_into_space_and_escapes_into_bytes() {
        assert_eq!(form_decode("a+b%3Ac%2Fd").unwrap(), "a b:c/d");
        assert_eq!(form_decode("caf%C3%A9").unwrap(), "café");
        assert_eq!(
            form_decode("plain/key.json.gz").unwrap(),
            "plain/key.json.gz"
        );
        assert_eq!(form_decode("%2B").unwrap(), "+");
    }

    #[test]
    fn malformed_escapes_are_errors_naming_the_key() {
        for bad in ["logs/%G1.json.gz", "logs/x%2", "logs/%", "logs/%FF.gz"] {
            let e = form_decode(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
    }

    #[test]
    fn regression_fuzz_notification_decoder_a_multibyte_char_in_the_time_stamp_is_not_a_log_file() {
        // Found by the notification_decoder fuzz target: the stamp was
        // sliced by byte index and panicked inside a two-byte character.
        let k = "AWSLogs/o-a1b2c3d4e5/111122223333/CloudTrail/us-east-1/2025/10/02/111122223333_CloudTrail_us-east-1_2025100\u{42b}1405Z_Qq7RtY2uI9oP4aSd.json.gz";
        assert_eq!(ObjectKind::of_key(k), ObjectKind::NotCloudTrail);
        assert!(!is_log_file_name(
            "111122223333_CloudTrail_us-east-1_20251002T14\u{e9}5Z_x.json"
        ));
    }

    #[test]
    fn digest_and_insight_keys_are_recognised() {
        let k = "AWSLogs/o-abc/111122223333/CloudTrail-Digest/us-east-1/2025/01/01/111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20250101T000000Z.json.gz";
        assert_eq!(ObjectKind::of_key(k), ObjectKind::Digest);
        let k = "AWSLogs/111122223333/CloudTrail-Insight/us-east-1/2025/01/01/x.json.gz";
        assert_eq!(ObjectKind::of_key(k), ObjectKind::Insight);
        let k = "AWSLogs/111122223333/CloudTrail/us-east-1/2025/01/01/111122223333_CloudTrail_us-east-1_20250101T0000Z_x1.json.gz";
        assert_eq!(ObjectKind::of_key(k), ObjectKind::Log);
        // Outside the file-name grammar: not CloudTrail's.
        let k = "AWSLogs/111122223333/CloudTrail/us-east-1/2025/01/01/x.json.gz";
        assert_eq!(ObjectKind::of_key(k), ObjectKind::NotCloudTrail);
        assert_eq!(
            ObjectKind::of_key("AWSLogs/111122223333/CloudTrail/"),
            ObjectKind::Folder
        );
        assert_eq!(ObjectKind::of_key("CloudTrail-Digest/"), ObjectKind::Folder);
    }

    #[test]
    fn a_non_object_payload_is_unrecognised() {
        assert!(matches!(
            decode_value(&serde_json::json!([1, 2])),
            Err(NotificationError::Unrecognised { .. })
        ));
        assert!(matches!(
            decode_message_body("not json"),
            Err(NotificationError::NotJson { .. })
        ));
    }

    #[test]
    fn a_sweep_target_message_names_one_account_and_region_and_is_checked() {
        assert_eq!(
            decode_message_body(
                r#"{"sweep_target":{"account":"111122223333","region":"eu-west-1"}}"#
            )
            .unwrap(),
            Trigger::SweepTarget {
                account: "111122223333".into(),
                region: "eu-west-1".into()
            }
        );
        for (body, says) in [
            (
                r#"{"sweep_target":{"account":"1111","region":"eu-west-1"}}"#,
                "not 12 digits",
            ),
            (
                r#"{"sweep_target":{"account":"111122223333","region":"eu/../x"}}"#,
                "not a region name",
            ),
            (r#"{"sweep_target":{"region":"eu-west-1"}}"#, "`account`"),
        ] {
            let e = decode_message_body(body).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }
}
