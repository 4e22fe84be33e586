//! The bad input table: malformed CloudTrail input and malformed
//! notifications, each with the error it must produce. Every error names what
//! was wrong and where (input name, line/column/byte, field), and the good
//! records around a bad one are still read: nothing is lost, nothing is
//! skipped silently. docs/bad-input.md lists these rows.

use detector_core::notification::{Invocation, decode_invocation, decode_message_body};
use detector_core::{
    Classifier, ClassifierConfig, InputReport, ReadError, ScanEvent, ScanOptions, Scanner,
};
use serde_json::{Value, json};
use shared_core::RoleRef;
use std::io::{self, Read, Write};

const ACCOUNT: &str = "111122223333";
const LAUNCHER_ROLE: &str = "arn:aws:iam::111122223333:role/microvm-launcher";
const IMAGE: &str = "arn:aws:lambda:us-east-1:111122223333:microvm-image:agent-sandbox";
const NAME: &str = "bad.json";

fn scanner(opts: ScanOptions) -> Scanner {
    Scanner::new(
        Classifier::new(ClassifierConfig {
            launcher_roles: vec![RoleRef::from_role_arn(LAUNCHER_ROLE).unwrap()],
            ..ClassifierConfig::default()
        }),
        opts,
    )
}

/// A governed call by the launcher, in the real format (a data event names
/// the `AWS::Lambda::MicrovmImage` resource). The rows break one field of it.
fn governed() -> Value {
    json!({
        "eventVersion": "1.11",
        "userIdentity": {
            "type": "AssumedRole",
            "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/microvm-launcher/microvm-launcher"),
            "accountId": ACCOUNT,
            "sessionContext": {"sessionIssuer": {"type": "Role", "arn": LAUNCHER_ROLE}}
        },
        "eventTime": "2026-11-20T10:02:11Z",
        "eventSource": "lambda.amazonaws.com",
        "eventName": "RunMicrovm",
        "awsRegion": "us-east-1",
        "errorCode": null,
        "sourceIPAddress": "198.51.100.24",
        "userAgent": "aws-sdk-rust/1.3",
        "requestParameters": {
            "clientToken": "c1-req-7",
            "imageIdentifier": IMAGE,
            "microvmIdentifier": null,
            "microvmImageArn": null,
            "runHookPayload": "{\"contro1_request_id\":\"c1-req-7\"}"
        },
        "responseElements": {"microvmId": "ai-7", "imageArn": IMAGE, "microvmImageArn": null},
        "requestID": "req-7",
        "eventID": "bad-7",
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Data",
        "resources": [{"accountId": ACCOUNT, "type": "AWS::Lambda::MicrovmImage", "ARN": IMAGE}]
    })
}

/// A bypass (RunMicrovm by an IAM user): one finding with this eventID.
fn good(id: &str) -> String {
    json!({
        "eventVersion": "1.11",
        "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::{ACCOUNT}:user/alice"), "accountId": ACCOUNT},
        "eventTime": "2026-11-20T10:05:00Z",
        "eventSource": "lambda.amazonaws.com",
        "eventName": "RunMicrovm",
        "awsRegion": "us-east-1",
        "requestParameters": {"imageIdentifier": IMAGE},
        "responseElements": {"microvmId": format!("ai-{id}")},
        "requestID": format!("req-{id}"),
        "eventID": id,
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT
    })
    .to_string()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

struct Scanned {
    result: Result<InputReport, ReadError>,
    findings: Vec<String>,
    record_errors: Vec<String>,
}

fn scan_with(scanner: &mut Scanner, input: impl Read) -> Scanned {
    let mut findings = Vec::new();
    let mut record_errors = Vec::new();
    let result = scanner.scan_reader(input, NAME, |ev| match ev {
        ScanEvent::Finding(f) => findings.push(f.event_id.unwrap_or_default()),
        ScanEvent::RecordError(e) => record_errors.push(e.to_string()),
        ScanEvent::Managed(_) => {}
    });
    Scanned {
        result,
        findings,
        record_errors,
    }
}

/// After a bad input, the same scanner reads the next input normally.
fn assert_scanner_still_reads(scanner: &mut Scanner, row: &str) {
    let next = format!("{{\"Records\":[{}]}}", good("after"));
    let s = scan_with(scanner, next.as_bytes());
    assert!(s.result.is_ok(), "{row}: next input failed: {:?}", s.result);
    assert_eq!(s.findings, ["after"], "{row}: next input lost its finding");
}

/// Produces `head`, then `len` bytes of `fill`, then `tail`, without holding
/// them; counts what was pulled.
struct Generated {
    head: Vec<u8>,
    fill: u8,
    len: u64,
    tail: Vec<u8>,
    pos: u64,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let h = self.head.len() as u64;
        let total = h + self.len + self.tail.len() as u64;
        if self.pos >= total || buf.is_empty() {
            return Ok(0);
        }
        let n = if self.pos < h {
            let src = &self.head[self.pos as usize..];
            let n = src.len().min(buf.len());
            buf[..n].copy_from_slice(&src[..n]);
            n
        } else if self.pos < h + self.len {
            let n = (h + self.len - self.pos).min(buf.len() as u64) as usize;
            buf[..n].fill(self.fill);
            n
        } else {
            let src = &self.tail[(self.pos - h - self.len) as usize..];
            let n = src.len().min(buf.len());
            buf[..n].copy_from_slice(&src[..n]);
            n
        };
        self.pos += n as u64;
        Ok(n)
    }
}

/// A gzip bomb: `head`, then `mib` MiB of spaces, as a multi-member gzip
/// stream (one compressed MiB repeated: cheap to build, about 1000:1).
fn gzip_bomb(head: &[u8], mib: usize) -> Vec<u8> {
    let member = gzip(&vec![b' '; 1 << 20]);
    let mut out = gzip(head);
    for _ in 0..mib {
        out.extend_from_slice(&member);
    }
    out
}

/// Inputs that cannot be read to the end: the scan fails with an error
/// naming the input and where, the records before the failure are reported,
/// and the scanner reads the next input normally.
#[test]
fn bad_inputs_fail_with_an_error_naming_the_input_and_where() {
    let g1 = good("good-1");
    let records = format!("{{\"Records\":[{g1},{}]}}", good("good-2"));
    let mut corrupt = gzip(records.as_bytes());
    let mid = corrupt.len() / 2;
    corrupt[mid..mid + 8].copy_from_slice(&[0xff; 8]);
    let cut = gzip(records.as_bytes());
    let cut = cut[..cut.len() - 12].to_vec();
    let rec_start = 12 + g1.len() + 1; // `{"Records":[` + good-1 + `,`
    let deep = "[".repeat(100_000);
    let small_cap = ScanOptions {
        max_record_bytes: 1 << 20,
        max_input_bytes: 8 << 20,
    };
    let big_record = || Generated {
        head: format!("{{\"Records\":[{g1},{{\"eventName\":\"RunMicrovm\",\"pad\":\"").into_bytes(),
        fill: b'x',
        len: 100 << 20,
        tail: b"\"}]}".to_vec(),
        pos: 0,
    };

    type Row = (
        &'static str,
        Box<dyn Read>,
        ScanOptions,
        Vec<String>,
        Option<&'static [&'static str]>,
    );
    let d = ScanOptions::default;
    let rows: Vec<Row> = vec![
        (
            "empty file",
            Box::new(&b""[..]),
            d(),
            vec![format!("{NAME}: input is empty")],
            Some(&[]),
        ),
        (
            "whitespace only",
            Box::new(&b" \n\t\r\n"[..]),
            d(),
            vec![format!("{NAME}: input is empty")],
            Some(&[]),
        ),
        (
            "empty gzip member",
            Box::new(io::Cursor::new(gzip(b""))),
            d(),
            vec![format!("{NAME}: input is empty")],
            Some(&[]),
        ),
        (
            "truncated gzip",
            Box::new(io::Cursor::new(cut)),
            d(),
            vec![format!("{NAME}: truncated gzip stream at byte ")],
            None,
        ),
        (
            "corrupt gzip data",
            Box::new(io::Cursor::new(corrupt)),
            d(),
            vec![format!("{NAME}: invalid gzip data at byte ")],
            None,
        ),
        (
            "gzip bomb past the uncompressed cap",
            Box::new(io::Cursor::new(gzip_bomb(
                format!("{{\"Records\":[{g1},").as_bytes(),
                64,
            ))),
            small_cap.clone(),
            vec![format!(
                "{NAME}: input is larger than the maximum of 8388608 uncompressed bytes"
            )],
            Some(&["good-1"]),
        ),
        (
            "100 MB single record past the record cap",
            Box::new(big_record()),
            small_cap,
            vec![format!(
                "{NAME}: record at byte {rec_start} is larger than the maximum record size of 1048576 bytes"
            )],
            Some(&["good-1"]),
        ),
        (
            "`Records` is an object",
            Box::new(&br#"{"Records": {}}"#[..]),
            d(),
            vec![format!(
                "{NAME}: expected `Records` to be an array of records at line 1 column 13 (byte 12)"
            )],
            Some(&[]),
        ),
        (
            "`Records` is null",
            Box::new(&b"{\n  \"Records\": null\n}"[..]),
            d(),
            vec![format!(
                "{NAME}: expected `Records` to be an array of records at line 2 column 14 (byte 15)"
            )],
            Some(&[]),
        ),
        (
            "`Events` (lookup-events) is a string",
            Box::new(&br#"{"Events":"none"}"#[..]),
            d(),
            vec![format!(
                "{NAME}: expected `Events` to be an array of lookup-events entries at line 1 column 11"
            )],
            Some(&[]),
        ),
        (
            "100k nested `[` at the top",
            Box::new(io::Cursor::new(deep.into_bytes())),
            d(),
            vec![format!(
                "{NAME}: expected JSON object at line 1 column 2 (byte 1)"
            )],
            Some(&[]),
        ),
        (
            "a record that is not an object",
            Box::new(io::Cursor::new(
                format!("{{\"Records\":[{g1},42]}}").into_bytes(),
            )),
            d(),
            vec![format!(
                "{NAME}: expected JSON object at line 1 column {} (byte {})",
                rec_start + 1,
                rec_start
            )],
            Some(&["good-1"]),
        ),
        (
            "non-UTF-8 byte between records",
            Box::new(io::Cursor::new(
                [format!("{{\"Records\":[{g1},").as_bytes(), b"\xff\xfe]}"].concat(),
            )),
            d(),
            vec![format!(
                "{NAME}: expected JSON object at line 1 column {}",
                rec_start + 1
            )],
            Some(&["good-1"]),
        ),
        (
            "truncated plain JSON inside a string",
            Box::new(io::Cursor::new(
                format!("{{\"Records\":[{g1},{{\"eventName\":\"RunMic").into_bytes(),
            )),
            d(),
            vec![
                format!(
                    "{NAME}: unexpected end of input at line 1 column {}",
                    rec_start + 21
                ),
                format!(
                    "JSON string starting at byte {} is incomplete",
                    rec_start + 13
                ),
            ],
            Some(&["good-1"]),
        ),
        (
            "truncated plain JSON between records",
            Box::new(io::Cursor::new(
                format!("{{\"Records\":[{g1},").into_bytes(),
            )),
            d(),
            vec![
                format!(
                    "{NAME}: unexpected end of input at line 1 column {}",
                    rec_start + 1
                ),
                "JSON array starting at byte 11 is incomplete".to_string(),
            ],
            Some(&["good-1"]),
        ),
        (
            "a top-level scalar",
            Box::new(&b"\n\n  42"[..]),
            d(),
            vec![format!(
                "{NAME}: expected JSON object at line 3 column 3 (byte 4)"
            )],
            Some(&[]),
        ),
    ];
    let n = rows.len();
    for (row, input, opts, expected, before) in rows {
        let mut sc = scanner(opts);
        let s = scan_with(&mut sc, input);
        let err = match s.result {
            Ok(r) => panic!("{row}: read without an error: {r:?}"),
            Err(e) => e.to_string(),
        };
        for want in &expected {
            assert!(err.contains(want.as_str()), "{row}: {err:?} lacks {want:?}");
        }
        if let Some(before) = before {
            assert_eq!(s.findings, before, "{row}: findings before the failure");
        }
        assert!(s.record_errors.is_empty(), "{row}: {:?}", s.record_errors);
        assert_eq!(sc.stats().input_errors, 1, "{row}");
        assert_scanner_still_reads(&mut sc, row);
    }
    assert!(n >= 16);
}

/// Sets `path` (dot-separated) in `v` to `value`.
fn set(v: &mut Value, path: &str, value: Value) {
    let mut cur = v;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        cur = cur
            .get_mut(*p)
            .unwrap_or_else(|| panic!("no {p} in {path}"));
    }
    cur[parts[parts.len() - 1]] = value;
}

/// Records that cannot be read: each is reported as a record error naming
/// the field and where the record starts, and the good records before and
/// after it are still classified. The input itself is read to the end.
#[test]
fn bad_records_are_reported_with_the_field_and_position_and_the_rest_is_read() {
    let type_rows: &[(&str, Value, &str)] = &[
        ("eventName", json!(5), "a number"),
        ("eventSource", json!(["lambda.amazonaws.com"]), "an array"),
        ("eventType", json!({"t": 1}), "an object"),
        ("eventID", json!(7), "a number"),
        ("eventTime", json!(1763632931), "a number"),
        ("awsRegion", json!(true), "a boolean"),
        ("errorCode", json!({"code": "AccessDenied"}), "an object"),
        ("sourceIPAddress", json!(3232235777u32), "a number"),
        ("userAgent", json!(["cli"]), "an array"),
        ("requestID", json!(1), "a number"),
        ("recipientAccountId", json!(111122223333u64), "a number"),
        ("userIdentity", json!("alice"), "a string"),
        ("userIdentity.type", json!(1), "a number"),
        ("userIdentity.arn", json!({"arn": "x"}), "an object"),
        ("userIdentity.accountId", json!(111122223333u64), "a number"),
        ("userIdentity.sessionContext", json!("ctx"), "a string"),
        (
            "userIdentity.sessionContext.sessionIssuer",
            json!([LAUNCHER_ROLE]),
            "an array",
        ),
        (
            "userIdentity.sessionContext.sessionIssuer.arn",
            json!({"arn": LAUNCHER_ROLE}),
            "an object",
        ),
        ("requestParameters", json!([1, 2]), "an array"),
        ("requestParameters.clientToken", json!(12), "a number"),
        (
            "requestParameters.microvmIdentifier",
            json!(["ai-7"]),
            "an array",
        ),
        (
            "requestParameters.imageIdentifier",
            json!({"arn": IMAGE}),
            "an object",
        ),
        (
            "requestParameters.microvmImageArn",
            json!(false),
            "a boolean",
        ),
        ("responseElements", json!("ok"), "a string"),
        ("responseElements.microvmId", json!(7), "a number"),
        ("responseElements.imageArn", json!([IMAGE]), "an array"),
        ("responseElements.microvmImageArn", json!(true), "a boolean"),
    ];
    let mut rows: Vec<(String, Vec<u8>, String)> = Vec::new();
    for (field, value, found) in type_rows {
        let mut r = governed();
        set(&mut r, field, value.clone());
        let objects = [
            "userIdentity",
            "userIdentity.sessionContext",
            "userIdentity.sessionContext.sessionIssuer",
            "requestParameters",
            "responseElements",
        ];
        let expected = if objects.contains(field) {
            format!("field `{field}`: expected an object or null, found {found}")
        } else {
            format!("field `{field}`: expected a string or null, found {found}")
        };
        rows.push((
            format!("{field} is {found}"),
            r.to_string().into_bytes(),
            expected,
        ));
    }
    // A trail change reads `requestParameters.name`.
    let mut stop = governed();
    set(&mut stop, "eventSource", json!("cloudtrail.amazonaws.com"));
    set(&mut stop, "eventName", json!("StopLogging"));
    set(
        &mut stop,
        "requestParameters",
        json!({"name": ["org-trail"]}),
    );
    rows.push((
        "StopLogging requestParameters.name is an array".into(),
        stop.to_string().into_bytes(),
        "field `requestParameters.name`: expected a string or null, found an array".into(),
    ));
    let with = |raw: &str| {
        let s = governed().to_string();
        s.replacen("\"eventVersion\":\"1.11\"", raw, 1).into_bytes()
    };
    // A byte that is not UTF-8 inside a string value.
    let s = governed().to_string();
    let i = s.find("aws-sdk-rust").unwrap();
    let mut bytes = s.into_bytes();
    bytes[i] = 0xff;
    rows.push((
        "non-UTF-8 byte inside userAgent".into(),
        bytes,
        "invalid unicode code point at line 1 column".into(),
    ));
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut r = governed().to_string();
    r = r.replacen("\"aws-sdk-rust/1.3\"", &deep, 1);
    rows.push((
        "100k nested arrays as userAgent".into(),
        r.into_bytes(),
        "field `userAgent`: expected a string or null, found an array".into(),
    ));
    let r = governed().to_string().replacen(
        "\"{\\\"contro1_request_id\\\":\\\"c1-req-7\\\"}\"",
        &deep,
        1,
    );
    rows.push((
        "100k nested arrays as runHookPayload".into(),
        r.into_bytes(),
        "recursion limit exceeded at line 1 column".into(),
    ));
    let nested_objects = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    let r = governed().to_string().replacen(
        "\"{\\\"contro1_request_id\\\":\\\"c1-req-7\\\"}\"",
        &nested_objects,
        1,
    );
    rows.push((
        "100k nested objects as runHookPayload".into(),
        r.into_bytes(),
        "recursion limit exceeded at line 1 column".into(),
    ));
    rows.push((
        "duplicate eventName".into(),
        with("\"eventName\":\"TerminateMicrovm\""),
        "duplicate field `eventName`".into(),
    ));
    rows.push((
        "invalid JSON inside a record".into(),
        with("\"eventVersion\":tru"),
        "expected ident at line 1 column".into(),
    ));

    let g1 = good("good-1");
    let start = 12 + g1.len() + 1;
    let n = rows.len();
    for (row, bad, expected) in rows {
        let input = [
            format!("{{\"Records\":[{g1},").as_bytes(),
            &bad,
            format!(",{}]}}", good("good-2")).as_bytes(),
        ]
        .concat();
        let mut sc = scanner(ScanOptions::default());
        let s = scan_with(&mut sc, &input[..]);
        let report = s
            .result
            .unwrap_or_else(|e| panic!("{row}: the input failed: {e}"));
        assert_eq!(s.record_errors.len(), 1, "{row}: {:?}", s.record_errors);
        let err = &s.record_errors[0];
        let at = format!(
            "{NAME}: record at line 1 column {} (byte {start}): ",
            start + 1
        );
        assert!(err.starts_with(&at), "{row}: {err:?} does not start {at:?}");
        assert!(err.contains(&expected), "{row}: {err:?} lacks {expected:?}");
        assert_eq!(
            s.findings,
            ["good-1", "good-2"],
            "{row}: lost a good record"
        );
        assert_eq!((report.records, report.record_errors), (3, 1), "{row}");
    }
    assert!(n >= 30, "{n} rows");
}

/// lookup-events output holds each record as a JSON document in a string.
#[test]
fn bad_lookup_events_entries_name_cloudtrail_event_and_the_rest_is_read() {
    let entry = |v: Value| json!({"EventId": "x", "EventName": "RunMicrovm", "CloudTrailEvent": v});
    let rows: Vec<(&str, Value, &str)> = vec![
        (
            "CloudTrailEvent is an object, not a JSON string",
            entry(serde_json::from_str(&good("inline")).unwrap()),
            "lookup-events entry: `CloudTrailEvent` must be a string holding the record's JSON, found an object",
        ),
        (
            "CloudTrailEvent is a number",
            entry(json!(5)),
            "`CloudTrailEvent` must be a string holding the record's JSON, found a number",
        ),
        (
            "CloudTrailEvent is missing",
            json!({"EventId": "x", "EventName": "RunMicrovm"}),
            "lookup-events entry has no `CloudTrailEvent`",
        ),
        (
            "CloudTrailEvent string is not JSON",
            entry(json!("{\"eventName\": RunMicrovm}")),
            "the `CloudTrailEvent` string is not a JSON record (position inside the string): expected value at line 1 column 15",
        ),
        (
            "CloudTrailEvent record has a wrong-typed field",
            entry(json!(good("typed").replace("\"req-typed\"", "42"))),
            "field `requestID`: expected a string or null, found a number",
        ),
    ];
    for (row, bad, expected) in rows {
        let input =
            json!({"Events": [entry(json!(good("good-1"))), bad, entry(json!(good("good-2")))]})
                .to_string();
        let mut sc = scanner(ScanOptions::default());
        let s = scan_with(&mut sc, input.as_bytes());
        assert!(s.result.is_ok(), "{row}: {:?}", s.result);
        assert_eq!(s.record_errors.len(), 1, "{row}: {:?}", s.record_errors);
        let err = &s.record_errors[0];
        assert!(
            err.starts_with(&format!("{NAME}: record at line 1 column ")),
            "{row}: {err}"
        );
        assert!(err.contains(expected), "{row}: {err:?} lacks {expected:?}");
        assert_eq!(
            s.findings,
            ["good-1", "good-2"],
            "{row}: lost a good record"
        );
    }
}

/// `runHookPayload` of the wrong type is not a reading error: the launcher
/// always writes a JSON string, so anything else on a launcher RunMicrovm is
/// reported as a bypass (fail closed), never passed as managed.
#[test]
fn wrong_typed_run_hook_payload_is_a_missing_request_id_finding() {
    for (what, payload) in [
        ("a number", json!(42)),
        ("an array", json!(["c1-req-7"])),
        ("a string that is not JSON", json!("c1-req-7")),
        (
            "an object without contro1_request_id",
            json!({"agent_id": "a"}),
        ),
    ] {
        let mut r = governed();
        set(&mut r, "requestParameters.runHookPayload", payload);
        let mut sc = scanner(ScanOptions::default());
        let mut rules = Vec::new();
        let input = format!("{{\"Records\":[{r}]}}");
        sc.scan_reader(input.as_bytes(), NAME, |ev| {
            if let ScanEvent::Finding(f) = ev {
                rules.push(f.rule.as_str());
            }
        })
        .unwrap();
        assert_eq!(rules, ["missing-contro1-request-id"], "payload {what}");
    }
}

/// 100k nested arrays or objects in a field the detector does not read
/// (`tlsDetails`, say) do not overflow the stack and do not fail the record:
/// it is classified like any other.
#[test]
fn deep_nesting_in_an_unread_field_is_read_without_recursion() {
    for deep in [
        format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000)),
        format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000)),
    ] {
        let r = governed().to_string().replacen(
            "\"eventVersion\":\"1.11\"",
            &format!("\"tlsDetails\":{deep}"),
            1,
        );
        let input = format!("{{\"Records\":[{r}]}}");
        let mut sc = scanner(ScanOptions::default());
        let s = scan_with(&mut sc, input.as_bytes());
        assert!(s.result.is_ok(), "{:?}", s.result);
        assert!(s.record_errors.is_empty(), "{:?}", s.record_errors);
        assert_eq!((sc.stats().managed, sc.stats().records), (1, 1));
    }
}

/// Reading a record far past the default record cap (32 MiB) pulls only a
/// little more than the cap from the input before failing: the reader never
/// holds a whole oversized record. The input here is 1 GiB and is never
/// materialised.
#[test]
fn a_1_gib_record_at_the_default_cap_is_refused_after_reading_about_the_cap() {
    struct Counted<R>(R, std::rc::Rc<std::cell::Cell<u64>>);
    impl<R: Read> Read for Counted<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1.set(self.1.get() + n as u64);
            Ok(n)
        }
    }
    let pulled = std::rc::Rc::new(std::cell::Cell::new(0));
    let input = Counted(
        Generated {
            head: b"{\"Records\":[{\"eventName\":\"RunMicrovm\",\"pad\":\"".to_vec(),
            fill: b'x',
            len: 1 << 30,
            tail: b"\"}]}".to_vec(),
            pos: 0,
        },
        pulled.clone(),
    );
    let opts = ScanOptions::default();
    let cap = opts.max_record_bytes as u64;
    let mut sc = scanner(opts);
    let err = sc.scan_reader(input, NAME, |_| {}).unwrap_err().to_string();
    assert!(
        err.contains("record at byte 12 is larger than the maximum record size of 33554432 bytes"),
        "{err}"
    );
    // The cap, plus at most one 256 KiB read chunk and the read-ahead buffer.
    let pulled = pulled.get();
    assert!(
        pulled <= cap + (2 << 20),
        "pulled {pulled} bytes for a cap of {cap}"
    );
}

/// Notifications that cannot be decoded name the shape and the field.
#[test]
fn bad_notifications_are_refused_with_an_error_naming_the_field() {
    let s3 = |key: &str| {
        json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "trail-bucket"}, "object": {"key": key, "size": 10}}}]})
    };
    let sns = |message: &str| {
        json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0",
            "Sns": {"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:111122223333:t",
                    "Message": message}}]})
    };
    let rows: Vec<(&str, Value, &str)> = vec![
        (
            "S3 key with an invalid %-escape",
            s3("AWSLogs/%G1.json.gz"),
            "S3 object key `AWSLogs/%G1.json.gz` is not valid form-encoding: invalid escape `%G1` at byte 8",
        ),
        (
            "S3 key with a truncated %-escape",
            s3("AWSLogs/x.json.gz%2"),
            "S3 object key `AWSLogs/x.json.gz%2` is not valid form-encoding: truncated escape at byte 17",
        ),
        (
            "S3 key decoding to invalid UTF-8",
            s3("AWSLogs/%FF.json.gz"),
            "S3 object key `AWSLogs/%FF.json.gz` is not valid form-encoding: decodes to invalid UTF-8 at byte 8",
        ),
        (
            "S3 record without the bucket name",
            json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {}, "object": {"key": "k"}}}]}),
            "S3 event: missing or non-string field `s3.bucket.name`",
        ),
        (
            "SNS Message not JSON",
            sns("this is not json"),
            "SNS event `Sns.Message`: not JSON: expected ident at line 1 column 2",
        ),
        (
            "SNS record without Sns",
            json!({"Records": [{"EventSource": "aws:sns"}]}),
            "SNS event: missing or non-object field `Sns`",
        ),
        (
            "CloudTrail SNS message with s3ObjectKey not an array",
            sns(r#"{"s3Bucket":"trail-bucket","s3ObjectKey":"AWSLogs/x.json.gz"}"#),
            "CloudTrail SNS message: missing or non-array field `s3ObjectKey`",
        ),
        (
            "CloudTrail SNS message with a non-string key",
            sns(r#"{"s3Bucket":"trail-bucket","s3ObjectKey":[42]}"#),
            "CloudTrail SNS message: missing or non-string field `s3ObjectKey[]`",
        ),
        (
            "SQS record without body",
            json!({"Records": [{"eventSource": "aws:sqs", "messageId": "m-1"}]}),
            "SQS event: missing or non-string field `body`",
        ),
        (
            "EventBridge API call whose detail is a string",
            json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.lambda", "detail": "{}"}),
            "EventBridge event: missing or non-object field `detail`",
        ),
        (
            "payload that is an array",
            json!([1, 2]),
            "unrecognised notification shape: expected a JSON object, got an array",
        ),
        (
            "payload of an unknown shape",
            json!({"hello": "world"}),
            "unrecognised notification shape: object with keys [hello]",
        ),
    ];
    for (row, payload, expected) in rows {
        let err = decode_invocation(&payload)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{row}: {err:?} lacks {expected:?}");
    }
}

/// One bad message in an SQS batch fails only itself: the batch decodes, and
/// every other body still decodes (the Lambda reports just that message in
/// `batchItemFailures`).
#[test]
fn bad_sqs_bodies_fail_only_their_own_message() {
    let s3_body = |key: &str| {
        json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "b"}, "object": {"key": key}}}]})
        .to_string()
    };
    let envelope = |message: &str| {
        json!({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:111122223333:t",
               "Message": message})
        .to_string()
    };
    let rows: Vec<(&str, String, &str)> = vec![
        (
            "SQS body not JSON",
            "AWSLogs/x.json.gz".to_string(),
            "message body: not JSON: expected value at line 1 column 1",
        ),
        (
            "SQS body with a bad key escape",
            s3_body("AWSLogs/%zz"),
            "S3 object key `AWSLogs/%zz` is not valid form-encoding: invalid escape `%zz` at byte 8",
        ),
        (
            "SNS envelope whose Message is not JSON",
            envelope("{not json"),
            "SNS envelope `Message`: not JSON: key must be a string at line 1 column 2",
        ),
    ];
    for (row, bad, expected) in rows {
        let batch = json!({"Records": [
            {"eventSource": "aws:sqs", "messageId": "m-1", "body": s3_body("AWSLogs/a.json.gz")},
            {"eventSource": "aws:sqs", "messageId": "m-2", "body": bad},
            {"eventSource": "aws:sqs", "messageId": "m-3", "body": s3_body("AWSLogs/b.json.gz")},
        ]});
        let Ok(Invocation::Sqs(messages)) = decode_invocation(&batch) else {
            panic!("{row}: the batch itself did not decode");
        };
        let results: Vec<_> = messages
            .iter()
            .map(|m| (m.message_id.as_str(), decode_message_body(&m.body)))
            .collect();
        assert!(
            results[0].1.is_ok() && results[2].1.is_ok(),
            "{row}: {results:?}"
        );
        let err = results[1].1.as_ref().unwrap_err().to_string();
        assert_eq!(results[1].0, "m-2");
        assert!(err.contains(expected), "{row}: {err:?} lacks {expected:?}");
    }
}

#[test]
fn a_top_level_object_without_any_cloudtrail_record_key_is_counted_apart_not_read_as_a_record() {
    let mut scanner = Scanner::new(
        Classifier::new(ClassifierConfig::default()),
        ScanOptions::default(),
    );
    let jsonl = concat!(
        r#"{"not":"cloudtrail"}"#,
        "\n",
        r#"{"eventVersion":"1.11","eventSource":"s3.amazonaws.com","eventName":"GetObject","eventID":"a"}"#,
        "\n",
        // An escaped key may spell a record's key: read as a record.
        r#"{"event\u004eame":"GetObject","eventID":"b"}"#,
        "\n",
        "{}\n",
    );
    let report = scanner
        .scan_reader(jsonl.as_bytes(), "mixed.jsonl", |_| {})
        .unwrap();
    assert_eq!(report.not_cloudtrail, 2);
    assert_eq!(report.records, 2);
    assert_eq!(report.record_errors, 0);
    assert_eq!(scanner.stats().not_cloudtrail, 2);
}
