//! A slow, obvious oracle checked against the fast path: the whole input is
//! parsed into one `serde_json::Value`, the shape is recognised by looking at
//! it, and the bypass rules and a subset of the tamper rules are applied with
//! JSON pointers. The streaming scanner (byte-level splitter and structural
//! skip, prefilter, borrowed struct, tamper rules on the parsed value) must
//! agree on every generated input: findings, managed calls and counts. The
//! inputs spell names with `\u` and `\/` escapes (keys included) and use
//! odd whitespace, where a byte-level skip could go wrong.
//!
//! Reading several inputs at once must give exactly what reading them one
//! after another gives: events in the same order, the same counts.

use detector_core::parallel::{Delivery, Input, Job};
use detector_core::targets::FunctionRef;
use detector_core::{
    Classifier, ClassifierConfig, InputReport, ResourceRef, ScanEvent, ScanOptions, Scanner,
    TamperConfig,
};
use flate2::Compression;
use flate2::write::GzEncoder;
use proptest::prelude::*;
use serde_json::{Value, json};
use shared_core::ops::normalise_event_name;
use shared_core::{GovernedOp, RoleRef};
use std::collections::HashSet;
use std::io::Write;

const LAUNCHER: &str = "arn:aws:iam::111122223333:role/gov/microvm-launcher";
const SESSION: &str = "microvm-launcher";
const LAUNCHER_FN: &str = "gov-launcher";
const DEPLOYER: &str = "arn:aws:iam::111122223333:role/deployer";
const BUCKET: &str = "gov-trail-bucket";

/// What either path reports for one input: findings and managed calls as
/// comparable tuples, plus counts.
#[derive(Debug, Default, PartialEq, Eq)]
struct Report {
    /// (event_id, rule, severity, event_name, outcome, microvm_id, contro1_request_id, principal)
    findings: Vec<[Option<String>; 8]>,
    /// (event_id, contro1_request_id, microvm_id); findings and managed calls
    /// are de-duplicated together by event_id.
    managed: Vec<[Option<String>; 3]>,
    records: u64,
    insight: u64,
    digest: u64,
    duplicates: u64,
    trail_changes: u64,
    by_deployment: u64,
}

fn s(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_string)
}

fn visible(v: Option<&Value>) -> Option<String> {
    s(v).filter(|x| x != "HIDDEN_DUE_TO_SECURITY_REASONS")
}

// ---- the oracle -------------------------------------------------------

fn oracle(bytes: &[u8]) -> Report {
    let text = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(bytes), &mut out)
            .unwrap();
        out
    } else {
        bytes.to_vec()
    };
    let mut report = Report::default();
    let mut seen = HashSet::new();
    let mut records = Vec::new();
    // JSON Lines (and a single document) = a stream of top-level values.
    for top in serde_json::Deserializer::from_slice(&text).into_iter::<Value>() {
        let top = top.unwrap();
        match &top {
            Value::Array(items) => records.extend(items.iter().cloned()),
            Value::Object(o) if o.get("Records").is_some_and(Value::is_array) => {
                records.extend(o["Records"].as_array().unwrap().iter().cloned());
            }
            Value::Object(o) if o.get("Events").is_some_and(Value::is_array) => {
                for e in o["Events"].as_array().unwrap() {
                    records.push(
                        serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap(),
                    );
                }
            }
            Value::Object(o) if o.contains_key("digestStartTime") || o.contains_key("logFiles") => {
                report.digest += 1;
            }
            Value::Object(o)
                if o.contains_key("detail-type")
                    && o.get("detail").is_some_and(Value::is_object) =>
            {
                records.push(o["detail"].clone());
            }
            _ => records.push(top),
        }
    }
    let launcher = RoleRef::from_role_arn(LAUNCHER).unwrap();
    let deployer = RoleRef::from_role_arn(DEPLOYER).unwrap();
    for r in records {
        report.records += 1;
        if r["eventType"] == "AwsCloudTrailInsight" {
            report.insight += 1;
            continue;
        }
        let source = r["eventSource"].as_str().unwrap_or("");
        let name = normalise_event_name(r["eventName"].as_str().unwrap_or(""));
        let event_id = s(r.get("eventID"));
        let principal = s(r.pointer("/userIdentity/arn"));
        let assumed = principal
            .as_deref()
            .and_then(|p| RoleRef::from_assumed_role_arn(p).ok());
        let role = match r
            .pointer("/userIdentity/sessionContext/sessionIssuer/arn")
            .and_then(Value::as_str)
        {
            Some(issuer) => RoleRef::from_role_arn(issuer).ok(),
            None => assumed.as_ref().map(|a| a.0.clone()),
        };
        let failed = r.get("errorCode").is_some_and(Value::is_string);
        let microvm = visible(r.pointer("/requestParameters/microvmIdentifier"))
            .or_else(|| visible(r.pointer("/responseElements/microvmId")));
        let mut first_time =
            |id: &Option<String>| id.as_ref().is_none_or(|id| seen.insert(id.clone()));

        let governed = GovernedOp::from_name(name).filter(|_| {
            source == "lambda.amazonaws.com" || source == "lambda-microvms.amazonaws.com"
        });
        let Some(op) = governed else {
            if source == "cloudtrail.amazonaws.com"
                && [
                    "StopLogging",
                    "DeleteTrail",
                    "UpdateTrail",
                    "PutEventSelectors",
                ]
                .contains(&name)
            {
                report.trail_changes += 1;
            }
            if let Some((rule, severity, deployment_ok, service_ok)) =
                tamper_oracle(&r, source, name, &launcher)
            {
                if deployment_ok && role.as_ref().is_some_and(|r| deployer.matches(r)) {
                    report.by_deployment += 1;
                    continue;
                }
                if service_ok && r.pointer("/userIdentity/type") == Some(&json!("AWSService")) {
                    continue;
                }
                if !first_time(&event_id) {
                    report.duplicates += 1;
                    continue;
                }
                report.findings.push([
                    event_id,
                    Some(rule.into()),
                    Some(if failed { "low" } else { severity }.into()),
                    Some(name.into()),
                    Some(if failed { "failed" } else { "succeeded" }.into()),
                    microvm,
                    None,
                    principal,
                ]);
            }
            continue;
        };
        let session = assumed.map(|a| a.1.rsplit('/').next().unwrap().to_string());
        let is_launcher = role.is_some_and(|r| launcher.matches(&r));
        let payload = r.pointer("/requestParameters/runHookPayload");
        // None = not visible; Some(None) = visible without a usable id.
        let payload_id: Option<Option<String>> = match payload {
            _ if op != GovernedOp::RunMicrovm => None,
            None | Some(Value::Null) => None,
            Some(Value::String(p)) if p == "HIDDEN_DUE_TO_SECURITY_REASONS" => None,
            Some(Value::String(p)) => Some(
                serde_json::from_str::<Value>(p)
                    .ok()
                    .and_then(|v| s(v.get("contro1_request_id")))
                    .filter(|id| !id.is_empty()),
            ),
            Some(v) => Some(s(v.get("contro1_request_id")).filter(|id| !id.is_empty())),
        };
        let token = visible(r.pointer("/requestParameters/clientToken"));
        let request_id = s(r.get("requestID")).filter(|id| !id.is_empty());
        let rule = if !is_launcher {
            Some("non-launcher-principal")
        } else if session.as_deref() != Some(SESSION) {
            Some("launcher-session-mismatch")
        } else if payload_id == Some(None) {
            Some("missing-contro1-request-id")
        } else if let (Some(Some(id)), Some(t)) = (&payload_id, &token)
            && id != t
        {
            Some("contro1-request-id-mismatch")
        } else if request_id.is_none() {
            Some("launcher-call-without-request-id")
        } else {
            None
        };
        let id = payload_id.flatten();
        if !first_time(&event_id) {
            report.duplicates += 1;
            continue;
        }
        match rule {
            None => report.managed.push([event_id, id.or(token), microvm]),
            Some(rule) => {
                let severity = match (failed, op) {
                    (false, GovernedOp::CreateMicrovmShellAuthToken) => "critical",
                    (false, GovernedOp::RunMicrovm | GovernedOp::CreateMicrovmAuthToken) => "high",
                    (false, _) => "medium",
                    (true, GovernedOp::CreateMicrovmShellAuthToken) => "medium",
                    (true, _) => "low",
                };
                report.findings.push([
                    event_id,
                    Some(rule.into()),
                    Some(severity.into()),
                    Some(op.as_str().into()),
                    Some(if failed { "failed" } else { "succeeded" }.into()),
                    microvm,
                    id,
                    principal,
                ]);
            }
        }
    }
    report
}

/// The tamper rules the generator exercises, written plainly: (rule,
/// severity if it succeeded, whether a deployment role, whether an AWS
/// service may make the change unreported).
fn tamper_oracle(
    r: &Value,
    source: &str,
    name: &str,
    launcher: &RoleRef,
) -> Option<(&'static str, &'static str, bool, bool)> {
    let param = |k: &str| {
        r.pointer(&format!("/requestParameters/{k}"))
            .and_then(Value::as_str)
    };
    match (source, name) {
        ("cloudtrail.amazonaws.com", "StopLogging") => {
            return Some(("trail-stopped", "critical", true, false));
        }
        ("cloudtrail.amazonaws.com", "DeleteTrail") => {
            return Some(("trail-deleted", "critical", true, false));
        }
        _ => {}
    }
    if source == "lambda.amazonaws.com"
        && name == "UpdateFunctionCode"
        && param("functionName").is_some_and(|f| {
            f == LAUNCHER_FN
                || f == format!("arn:aws:lambda:us-east-1:111122223333:function:{LAUNCHER_FN}")
        })
    {
        return Some(("launcher-function-changed", "critical", true, true));
    }
    if source == "sts.amazonaws.com"
        && name == "AssumeRole"
        && param("roleArn")
            .and_then(|a| RoleRef::from_role_arn(a).ok())
            .is_some_and(|role| launcher.matches(&role))
        && !(r.pointer("/userIdentity/type") == Some(&json!("AWSService"))
            && r.pointer("/userIdentity/invokedBy") == Some(&json!("lambda.amazonaws.com")))
    {
        return Some(("launcher-role-assumed", "critical", false, false));
    }
    let read_only = [
        "Get", "List", "Describe", "Head", "Lookup", "BatchGet", "Query", "Scan",
    ]
    .iter()
    .any(|v| name.starts_with(v));
    fn names_bucket(v: &Value) -> bool {
        let hit = |s: &str| {
            s == BUCKET || s.ends_with(&format!("/{BUCKET}")) || s.ends_with(&format!(":{BUCKET}"))
        };
        match v {
            Value::String(s) => hit(s),
            Value::Array(a) => a.iter().any(names_bucket),
            Value::Object(m) => m.iter().any(|(k, v)| hit(k) || names_bucket(v)),
            _ => false,
        }
    }
    if !read_only && r.get("requestParameters").is_some_and(names_bucket) {
        return Some(("protected-resource-changed", "high", true, true));
    }
    None
}

// ---- the fast path ----------------------------------------------------

fn fast(bytes: &[u8]) -> Report {
    let single = fast_with(bytes, false);
    let piped = fast_with(bytes, true);
    assert_eq!(
        single, piped,
        "pipelined scan differs from the single-threaded one"
    );
    single
}

fn config() -> ClassifierConfig {
    ClassifierConfig {
        launcher_roles: vec![RoleRef::from_role_arn(LAUNCHER).unwrap()],
        launcher_session_names: vec![SESSION.into()],
        tamper: TamperConfig {
            launcher_functions: vec![FunctionRef::parse(LAUNCHER_FN).unwrap()],
            deployment_roles: vec![RoleRef::from_role_arn(DEPLOYER).unwrap()],
            protected_resources: vec![ResourceRef::parse(BUCKET).unwrap()],
            ..TamperConfig::default()
        },
        ..ClassifierConfig::default()
    }
}

fn fast_with(bytes: &[u8], pipelined: bool) -> Report {
    let mut scanner = Scanner::new(Classifier::new(config()), ScanOptions::default());
    let mut report = Report::default();
    let on_event = |ev| match ev {
        ScanEvent::Finding(f) => {
            let j = serde_json::to_value(&f).unwrap();
            report.findings.push(
                [
                    "event_id",
                    "rule",
                    "severity",
                    "event_name",
                    "outcome",
                    "microvm_id",
                    "contro1_request_id_claimed",
                    "principal_arn",
                ]
                .map(|k| s(j.get(k))),
            );
        }
        ScanEvent::Managed(m) => {
            report.managed.push([
                m.if_not_in_ledger.event_id,
                m.contro1_request_id,
                m.microvm_id,
            ]);
        }
        ScanEvent::RecordError(e) => panic!("record error on generated input: {e}"),
    };
    if pipelined {
        scanner
            .scan_reader_pipelined(bytes, "gen", on_event)
            .unwrap();
    } else {
        scanner.scan_reader(bytes, "gen", on_event).unwrap();
    }
    let st = scanner.stats();
    report.records = st.records;
    report.insight = st.skipped_insight_records;
    report.digest = st.skipped_digest_files;
    report.duplicates = st.duplicates;
    report.trail_changes = st.trail_changes;
    report.by_deployment = st.changes_by_deployment;
    report
}

// ---- generators -------------------------------------------------------

fn identity() -> impl Strategy<Value = Value> {
    let launcher = |issuer: Option<&str>, acct: &str, session: &str| {
        let mut v = json!({"type": "AssumedRole",
            "arn": format!("arn:aws:sts::{acct}:assumed-role/microvm-launcher/{session}"),
            "accountId": acct});
        if let Some(i) = issuer {
            v["sessionContext"] = json!({"sessionIssuer": {"type": "Role", "arn": i, "accountId": acct},
                                         "attributes": {"mfaAuthenticated": "false"}});
        }
        v
    };
    prop_oneof![
        4 => Just(launcher(Some(LAUNCHER), "111122223333", SESSION)),
        1 => Just(launcher(None, "111122223333", SESSION)),
        1 => Just(launcher(Some("arn:aws:iam::111122223333:role/microvm-launcher"), "111122223333", SESSION)),
        1 => Just(launcher(Some("arn:aws:iam::444455556666:role/gov/microvm-launcher"), "444455556666", SESSION)),
        1 => Just(launcher(Some(LAUNCHER), "111122223333", "alice")),
        1 => Just(json!({"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice", "userName": "alice"})),
        1 => Just(json!({"type": "Root", "arn": "arn:aws:iam::111122223333:root"})),
        1 => Just(json!({"type": "AWSService", "invokedBy": "lambda.amazonaws.com"})),
        1 => Just(json!({"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/deployer/cfn",
                          "sessionContext": {"sessionIssuer": {"type": "Role", "arn": DEPLOYER}}})),
        1 => Just(json!({"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/Other/microvm-launcher",
                          "sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::111122223333:role/Other"}}})),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("plain".to_string()),
        Just("with \"quotes\" and \\ backslash".to_string()),
        Just("braces } { ] [ , :".to_string()),
        Just("tab\tnew\nline \u{1F600} é \u{0001}".to_string()),
        Just("Microvm in text".to_string()),
        "[a-zA-Z0-9{}\\[\\]\",:\\\\ ]{0,20}",
    ]
}

prop_compose! {
    fn record()(
        source in prop_oneof![4 => Just("lambda.amazonaws.com"), 1 => Just("lambda-microvms.amazonaws.com"),
                              1 => Just("s3.amazonaws.com"), 1 => Just("cloudtrail.amazonaws.com"),
                              1 => Just("sts.amazonaws.com")],
        name in prop_oneof![
            Just("RunMicrovm"), Just("CreateMicrovmAuthToken"), Just("CreateMicrovmShellAuthToken"),
            Just("SuspendMicrovm"), Just("ResumeMicrovm"), Just("TerminateMicrovm"),
            Just("GetMicrovm"), Just("ListMicrovms"), Just("GetObject"), Just("StopLogging"),
            Just("DeleteTrail"), Just("UpdateFunctionCode"), Just("PutBucketPolicy"), Just("AssumeRole")],
        target in prop::option::of(prop_oneof![
            Just(("functionName", LAUNCHER_FN.to_string())),
            Just(("functionName", format!("arn:aws:lambda:us-east-1:111122223333:function:{LAUNCHER_FN}"))),
            Just(("functionName", "other-fn".to_string())),
            Just(("bucketName", BUCKET.to_string())),
            Just(("bucketName", format!("arn:aws:s3:::{BUCKET}"))),
            Just(("bucketName", "other-bucket".to_string())),
            Just(("roleArn", LAUNCHER.to_string())),
            Just(("roleArn", "arn:aws:iam::111122223333:role/other".to_string())),
        ]),
        suffix in prop_oneof![4 => Just(""), 1 => Just("20250909"), 1 => Just("20250909v2")],
        who in identity(),
        id in 0u8..40,
        token in prop::option::of(prop_oneof![Just("c1"), Just("c2"), Just("HIDDEN_DUE_TO_SECURITY_REASONS")]),
        payload in prop::option::of(prop_oneof![
            Just(json!("HIDDEN_DUE_TO_SECURITY_REASONS")),
            Just(json!(json!({"contro1_request_id": "c1", "agent_id": "a"}).to_string())),
            Just(json!(json!({"contro1_request_id": "c2"}).to_string())),
            Just(json!(json!({"agent_id": "a"}).to_string())),
            Just(json!(json!({"contro1_request_id": ""}).to_string())),
            Just(json!("not json")),
            Just(json!(null)),
            Just(json!({"contro1_request_id": "c1"})),
        ]),
        vm in prop::option::of("vm-[a-z0-9]{1,6}"),
        vm_in_response in any::<bool>(),
        failed in prop::bool::weighted(0.2),
        insight in prop::bool::weighted(0.05),
        has_request_id in prop::bool::weighted(0.9),
        junk in text(),
    ) -> Value {
        let mut params = json!({"note": junk});
        if let Some((k, v)) = target { params[k] = json!(v); }
        if let Some(t) = token { params["clientToken"] = json!(t); }
        if let Some(p) = payload { params["runHookPayload"] = p; }
        let mut resp = Value::Null;
        if let Some(vm) = vm {
            if vm_in_response { resp = json!({"microvmId": vm, "state": "PENDING"}); }
            else { params["microvmIdentifier"] = json!(vm); }
        }
        let mut r = json!({"eventVersion": "1.11", "eventID": format!("ev-{id}"), "eventTime": "2026-11-20T10:00:00Z",
            "eventSource": source, "eventName": format!("{name}{suffix}"), "awsRegion": "us-east-1",
            "userIdentity": who, "requestParameters": params, "responseElements": resp,
            "additionalEventData": {"x": [junk, {"deep": [[{}]]}]},
            "eventType": if insight { "AwsCloudTrailInsight" } else { "AwsApiCall" }});
        if failed { r["errorCode"] = json!("AccessDenied"); }
        if has_request_id { r["requestID"] = json!("r"); }
        r
    }
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    Records,
    RecordsWithExtraKeys,
    BareArray,
    JsonLines,
    LookupEvents,
    EventBridge,
}

/// Whitespace between tokens.
#[derive(Debug, Clone, Copy)]
enum Layout {
    Compact,
    Pretty,
    /// Tabs and spaces for indentation, CR LF line ends.
    Odd,
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        Just(Layout::Compact),
        Just(Layout::Pretty),
        Just(Layout::Odd)
    ]
}

fn encode(shape: Shape, records: &[Value], layout: Layout, escape: bool, gz: bool) -> Vec<u8> {
    let ser = |v: &Value| {
        let t = match layout {
            Layout::Compact => v.to_string(),
            Layout::Pretty => serde_json::to_string_pretty(v).unwrap(),
            Layout::Odd => {
                let mut out = Vec::new();
                let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t ");
                let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
                serde::Serialize::serialize(v, &mut ser).unwrap();
                // A raw newline is never inside a JSON string.
                String::from_utf8(out).unwrap().replace('\n', "\r\n")
            }
        };
        // Escapes where a byte-level test would look for plain text: names
        // in values and keys, and every slash (there is none outside
        // strings).
        if escape {
            t.replace("Microvm", "\\u004dicrovm")
                .replace("gov-", "\\u0067ov-")
                .replace("\"eventName\"", "\"event\\u004eame\"")
                .replace('/', "\\/")
        } else {
            t
        }
    };
    let text = match shape {
        Shape::Records => ser(&json!({"Records": records})),
        Shape::RecordsWithExtraKeys => {
            ser(&json!({"a": {"Records": 1}, "Records": records, "z": [1, "]"]}))
        }
        Shape::BareArray => ser(&Value::Array(records.to_vec())),
        Shape::JsonLines => records.iter().map(|r| ser(r) + "\n").collect(),
        Shape::LookupEvents => ser(&json!({"Events": records.iter()
            .map(|r| json!({"EventId": r["eventID"], "CloudTrailEvent": r.to_string()})).collect::<Vec<_>>()})),
        Shape::EventBridge => ser(
            &json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.lambda",
                                         "detail": records.first().cloned().unwrap_or(json!({}))}),
        ),
    };
    if gz {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    } else {
        text.into_bytes()
    }
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Records),
        Just(Shape::RecordsWithExtraKeys),
        Just(Shape::BareArray),
        Just(Shape::JsonLines),
        Just(Shape::LookupEvents),
        Just(Shape::EventBridge)
    ]
}

/// One input of a multi-input scan.
#[derive(Debug, Clone)]
enum Generated {
    Good(Vec<u8>),
    /// Cut off half way: an input error (gzip) or a syntax error.
    Cut(Vec<u8>),
    /// Cannot be opened.
    Missing,
}

prop_compose! {
    fn generated()(
        records in prop::collection::vec(record(), 0..12),
        shape in shape(),
        layout in layout(),
        escape in prop::bool::weighted(0.2),
        gz in any::<bool>(),
        what in 0u8..10,
    ) -> Generated {
        let bytes = encode(shape, &records, layout, escape, gz);
        match what {
            0 => Generated::Missing,
            1 => Generated::Cut(bytes[..bytes.len() / 2].to_vec()),
            _ => Generated::Good(bytes),
        }
    }
}

/// Everything a scan of several inputs hands back, in order.
fn line(ev: &ScanEvent) -> String {
    format!("{ev:?}")
}

fn done(source: &str, result: &Result<InputReport, String>) -> String {
    format!("done {source}: {result:?}")
}

/// Read the inputs one after another with `scan_reader`.
fn serial(inputs: &[Generated]) -> (Vec<String>, detector_core::ScanStats) {
    let mut scanner = Scanner::new(Classifier::new(config()), ScanOptions::default());
    let mut out = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let source = format!("input-{i}");
        if i % 3 == 1 {
            out.push(format!("note {i}"));
        }
        let result = match input {
            Generated::Missing => Err("no such input".to_string()),
            Generated::Good(bytes) | Generated::Cut(bytes) => scanner
                .scan_reader(&bytes[..], &source, |ev| out.push(line(&ev)))
                .map_err(|e| e.to_string()),
        };
        out.push(done(&source, &result));
    }
    (out, scanner.stats().clone())
}

/// Read the same inputs with `scan_inputs`, `threads` at a time.
fn parallel(inputs: &[Generated], threads: usize) -> (Vec<String>, detector_core::ScanStats) {
    let mut scanner = Scanner::new(Classifier::new(config()), ScanOptions::default());
    let mut out = Vec::new();
    scanner.scan_inputs(
        threads,
        |emit| {
            for (i, input) in inputs.iter().enumerate() {
                if i % 3 == 1 {
                    emit(Job::Note(i));
                }
                let source = format!("input-{i}");
                // Sizes that batch some inputs together and not others.
                let size = match input {
                    Generated::Missing => None,
                    Generated::Good(b) | Generated::Cut(b) => {
                        Some(b.len() as u64 * (i as u64 % 3) * 50_000)
                    }
                };
                emit(Job::Input(Input {
                    source,
                    open: Box::new(move || match input {
                        Generated::Missing => Err("no such input".to_string()),
                        Generated::Good(bytes) | Generated::Cut(bytes) => {
                            Ok(Box::new(&bytes[..]) as Box<dyn std::io::Read + Send>)
                        }
                    }),
                    size,
                }));
            }
        },
        |d| match d {
            Delivery::Event(ev) => out.push(line(&ev)),
            Delivery::Done { source, result } => {
                out.push(done(&source, &result.map_err(|e| e.to_string())));
            }
            Delivery::Note(i) => out.push(format!("note {i}")),
        },
    );
    (out, scanner.stats().clone())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn reading_inputs_in_parallel_gives_what_reading_them_one_after_another_gives(
        inputs in prop::collection::vec(generated(), 1..7),
        threads in 1usize..5,
    ) {
        let (want, want_stats) = serial(&inputs);
        let (got, got_stats) = parallel(&inputs, threads);
        prop_assert_eq!(got, want);
        prop_assert_eq!(got_stats, want_stats);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn fast_path_equals_the_whole_file_oracle(
        records in prop::collection::vec(record(), 1..25),
        shape in shape(),
        layout in layout(),
        escape in prop::bool::weighted(0.2),
        gz in any::<bool>(),
    ) {
        let bytes = encode(shape, &records, layout, escape, gz);
        let want = oracle(&bytes);
        let got = fast(&bytes);
        prop_assert_eq!(got, want);
    }
}

#[test]
fn the_oracle_itself_sees_findings_in_generated_shapes() {
    // Guards against an oracle and a fast path that agree on nothing.
    let r = json!({"eventID": "e", "eventSource": "lambda.amazonaws.com", "eventName": "RunMicrovm",
                   "userIdentity": {"type": "Root", "arn": "arn:aws:iam::1:root"}});
    for shape in [
        Shape::Records,
        Shape::BareArray,
        Shape::JsonLines,
        Shape::LookupEvents,
        Shape::EventBridge,
    ] {
        let bytes = encode(shape, std::slice::from_ref(&r), Layout::Compact, true, true);
        assert_eq!(oracle(&bytes).findings.len(), 1, "{shape:?}");
        assert_eq!(fast(&bytes).findings.len(), 1, "{shape:?}");
    }
}
