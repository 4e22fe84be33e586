//! Every input shape, skipping, de-duplication, limits and errors of the
//! streaming scanner.

use detector_core::{
    Classifier, ClassifierConfig, Finding, ReadError, ScanEvent, ScanOptions, ScanStats, Scanner,
};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use shared_core::RoleRef;
use std::io::{Read, Write};

fn scanner() -> Scanner {
    scanner_with(ScanOptions::default())
}

fn scanner_with(opts: ScanOptions) -> Scanner {
    let cfg = ClassifierConfig {
        launcher_roles: vec![
            RoleRef::from_role_arn("arn:aws:iam::111122223333:role/microvm-launcher").unwrap(),
        ],
        ..ClassifierConfig::default()
    };
    Scanner::new(Classifier::new(cfg), opts)
}

fn bypass(id: &str) -> Value {
    json!({"eventID": id, "eventSource": "lambda.amazonaws.com", "eventName": "RunMicrovm",
           "eventTime": "2026-11-20T10:00:00Z", "awsRegion": "us-east-1",
           "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice"},
           "requestParameters": {"imageIdentifier": "img"}})
}

fn other(id: &str) -> Value {
    json!({"eventID": id, "eventSource": "s3.amazonaws.com", "eventName": "GetObject",
           "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice"},
           "requestParameters": {"bucketName": "b", "key": "k}{\"[" }})
}

struct Outcome {
    findings: Vec<Finding>,
    record_errors: Vec<String>,
    result: Result<(), ReadError>,
}

fn scan(s: &mut Scanner, bytes: &[u8]) -> Outcome {
    let mut findings = Vec::new();
    let mut record_errors = Vec::new();
    let result = s
        .scan_reader(bytes, "input", |ev| match ev {
            ScanEvent::Finding(f) => findings.push(f),
            ScanEvent::RecordError(e) => record_errors.push(e.to_string()),
            _ => {}
        })
        .map(|_| ());
    Outcome {
        findings,
        record_errors,
        result,
    }
}

fn ids(o: &Outcome) -> Vec<String> {
    o.findings
        .iter()
        .map(|f| f.event_id.clone().unwrap())
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn check(bytes: &[u8], want: &[&str], records: u64) -> ScanStats {
    let mut s = scanner();
    let o = scan(&mut s, bytes);
    o.result.as_ref().unwrap();
    assert!(o.record_errors.is_empty(), "{:?}", o.record_errors);
    assert_eq!(ids(&o), want);
    assert_eq!(s.stats().records, records);
    s.stats().clone()
}

fn records_doc() -> Vec<u8> {
    serde_json::to_vec(&json!({"Records": [other("o1"), bypass("b1"), other("o2"), bypass("b2")]}))
        .unwrap()
}

#[test]
fn cloudtrail_records_file_plain_and_gzip() {
    check(&records_doc(), &["b1", "b2"], 4);
    check(&gzip(&records_doc()), &["b1", "b2"], 4);
}

#[test]
fn multi_member_gzip_is_read_to_the_end() {
    let mut two = gzip(&records_doc()[..10]);
    two.extend(gzip(&records_doc()[10..]));
    check(&two, &["b1", "b2"], 4);
}

#[test]
fn other_top_level_keys_around_records_are_tolerated() {
    let doc = format!(
        r#"{{"version":"1","meta":{{"Records":"no","x":[1,{{"y":"}}"}}]}}, "Records" : [ {} ] , "trailer": null, "n": -1.5e3}}"#,
        bypass("b1")
    );
    check(doc.as_bytes(), &["b1"], 1);
}

#[test]
fn bare_array_of_records() {
    let doc = serde_json::to_vec_pretty(&json!([other("o1"), bypass("b1")])).unwrap();
    check(&doc, &["b1"], 2);
    check(b"[]", &[], 0);
}

#[test]
fn json_lines_one_record_per_line() {
    let doc = format!("{}\n{}\r\n\n{}\n", other("o1"), bypass("b1"), bypass("b2"));
    check(doc.as_bytes(), &["b1", "b2"], 3);
    check(gzip(doc.as_bytes()).as_slice(), &["b1", "b2"], 3);
}

#[test]
fn lookup_events_output_with_records_in_strings() {
    let doc = json!({"Events": [
        {"EventId": "b1", "CloudTrailEvent": bypass("b1").to_string()},
        {"EventId": "o1", "CloudTrailEvent": other("o1").to_string()},
    ], "NextToken": "x"});
    check(doc.to_string().as_bytes(), &["b1"], 2);
}

#[test]
fn eventbridge_envelope_detail_is_one_record() {
    let doc = json!({"version": "0", "id": "e", "detail-type": "AWS API Call via CloudTrail",
                     "source": "aws.lambda", "detail": bypass("b1"), "resources": []});
    check(
        serde_json::to_vec_pretty(&doc).unwrap().as_slice(),
        &["b1"],
        1,
    );
}

#[test]
fn digest_files_are_skipped_and_counted() {
    let doc = json!({"awsAccountId": "1", "digestStartTime": "t", "logFiles": [{"s3Object": "RunMicrovm"}]});
    let stats = check(&gzip(doc.to_string().as_bytes()), &[], 0);
    assert_eq!(stats.skipped_digest_files, 1);
    assert_eq!(stats.files, 1);
}

#[test]
fn insight_records_are_skipped_and_counted() {
    let insight = json!({"eventID": "i1", "eventType": "AwsCloudTrailInsight",
        "eventSource": "lambda.amazonaws.com", "eventName": "RunMicrovm",
        "insightDetails": {"eventSource": "lambda.amazonaws.com", "eventName": "RunMicrovm"}});
    let doc = json!({"Records": [insight, bypass("b1")]});
    let stats = check(doc.to_string().as_bytes(), &["b1"], 2);
    assert_eq!(stats.skipped_insight_records, 1);
}

#[test]
fn the_same_event_id_in_two_inputs_yields_one_finding() {
    let mut s = scanner();
    let a = scan(&mut s, &records_doc());
    let envelope = json!({"detail-type": "AWS API Call via CloudTrail", "detail": bypass("b2")});
    let b = scan(&mut s, envelope.to_string().as_bytes());
    assert_eq!(ids(&a), ["b1", "b2"]);
    assert!(b.findings.is_empty());
    assert_eq!(s.stats().duplicates, 1);
    assert_eq!(s.stats().governed, 2);
    let mut seen = Vec::new();
    s.scan_value(&bypass("b1"), "eventbridge", |e| seen.push(e))
        .unwrap();
    assert!(seen.is_empty());
    assert_eq!(s.stats().duplicates, 2);
}

#[test]
fn unicode_escaped_event_names_are_not_missed_by_the_prefilter() {
    let doc = r#"{"Records":[{"eventID":"b1","eventSource":"lambda.amazonaws.com","eventName":"Run\u004dicrovm","userIdentity":{"type":"Root"}}]}"#;
    check(doc.as_bytes(), &["b1"], 1);
}

#[test]
fn escaped_keys_and_slashes_are_not_missed_by_the_structural_skip() {
    // The key itself spelt with an escape, and braces in strings around it.
    let doc = r#"{"Records":[{"k":"}{","event\u004eame":"Run\u004dicrovm","eventID":"b1","eventSource":"lambda.amazonaws.com","userIdentity":{"type":"Root"}},
        {"eventID":"b2","eventSource":"lambda.amazonaws.com","eventName":"TerminateMicrovm","userIdentity":{"type":"Root"},"x":"\\\"}"}]}"#;
    check(doc.as_bytes(), &["b1", "b2"], 2);
    // The launcher's role named with escaped slashes is still the launcher.
    let launcher = r#"{"Records":[{"eventID":"m1","eventSource":"lambda.amazonaws.com","eventName":"TerminateMicrovm","requestID":"r1",
        "userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::111122223333:assumed-role\/microvm-launcher\/s",
        "sessionContext":{"sessionIssuer":{"arn":"arn:aws:iam::111122223333:role\/microvm-launcher"}}}}]}"#;
    let stats = check(launcher.as_bytes(), &[], 1);
    assert_eq!(stats.managed, 1);
}

#[test]
fn odd_whitespace_between_and_inside_records_is_read() {
    let doc = format!(
        "{{\r\n\t\"Records\" :\t[ \r\n {} \t,\r\n\t{} ]\n}}",
        serde_json::to_string_pretty(&bypass("b1"))
            .unwrap()
            .replace('\n', "\r\n\t"),
        other("o1")
    );
    check(doc.as_bytes(), &["b1"], 2);
}

#[test]
fn a_byte_order_mark_is_accepted() {
    let mut doc = vec![0xEF, 0xBB, 0xBF];
    doc.extend(records_doc());
    check(&doc, &["b1", "b2"], 4);
}

#[test]
fn records_split_across_tiny_reads_are_found() {
    // A reader that hands out 7 bytes at a time.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    for doc in [records_doc(), gzip(&records_doc())] {
        let mut s = scanner();
        let mut n = 0;
        s.scan_reader(Trickle(&doc), "t", |e| {
            if let ScanEvent::Finding(_) = e {
                n += 1;
            }
        })
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(s.stats().records, 4);
    }
}

#[test]
fn truncated_gzip_is_an_error_naming_the_input_after_the_records_before_it() {
    // Big enough that records are emitted before the cut.
    let recs: Vec<Value> = (0..3000)
        .map(|i| {
            if i == 5 {
                bypass("b-early")
            } else {
                other(&format!("o{i}"))
            }
        })
        .collect();
    let gz = gzip(&serde_json::to_vec(&json!({ "Records": recs })).unwrap());
    let cut = &gz[..gz.len() * 2 / 3];
    let mut s = scanner();
    let o = scan(&mut s, cut);
    let e = o.result.as_ref().unwrap_err().to_string();
    assert!(
        e.starts_with("input: truncated gzip stream at byte "),
        "{e}"
    );
    assert_eq!(ids(&o), ["b-early"]);
    assert_eq!(s.stats().input_errors, 1);
}

#[test]
fn malformed_json_names_line_and_column() {
    let doc = format!("{}\n{}\nnot json\n", other("o1"), bypass("b1"));
    let mut s = scanner();
    let o = scan(&mut s, doc.as_bytes());
    let e = o.result.as_ref().unwrap_err().to_string();
    assert!(e.contains("expected JSON object at line 3 column 1"), "{e}");
    assert_eq!(ids(&o), ["b1"]);
}

#[test]
fn structural_errors_inside_a_records_array_are_reported() {
    for (doc, want) in [
        (r#"{"Records":[{"a":1} {"b":2}]}"#, "expected `,` or `]`"),
        (
            r#"{"Records":[1,2]}"#,
            "expected JSON object at line 1 column 13",
        ),
        (
            r#"{"Records":[{"a":"unterminated}]}"#,
            "unexpected end of input",
        ),
        (r#"{"Records":[{"a":1}"#, "unexpected end of input"),
    ] {
        let e = scan(&mut scanner(), doc.as_bytes())
            .result
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{doc}: {e}");
    }
}

#[test]
fn a_bad_candidate_record_is_a_record_error_and_the_input_goes_on() {
    let doc = format!(
        r#"{{"Records":[{{"eventSource":"lambda.amazonaws.com","eventName":"RunMicrovm","eventID":"x", "bad": tru}}, {}]}}"#,
        bypass("b1")
    );
    let mut s = scanner();
    let o = scan(&mut s, doc.as_bytes());
    o.result.as_ref().unwrap();
    assert_eq!(ids(&o), ["b1"]);
    assert_eq!(o.record_errors.len(), 1);
    assert!(
        o.record_errors[0].starts_with("input: record at line 1 column 13"),
        "{:?}",
        o.record_errors
    );
    assert_eq!(s.stats().record_errors, 1);
}

#[test]
fn wrong_field_types_are_record_errors_naming_the_field() {
    let mut r = bypass("b1");
    r["errorCode"] = json!(["AccessDenied"]);
    let doc = json!({"Records": [r]});
    let o = scan(&mut scanner(), doc.to_string().as_bytes());
    assert!(o.findings.is_empty());
    assert!(
        o.record_errors[0].contains("field `errorCode`: expected a string or null, found an array"),
        "{:?}",
        o.record_errors
    );
    let doc = json!({"Records": [{"eventSource": 5, "eventName": "x"}]});
    let o = scan(&mut scanner(), doc.to_string().as_bytes());
    assert!(
        o.record_errors.is_empty(),
        "only candidate records are parsed: {:?}",
        o.record_errors
    );
    let doc =
        json!({"Records": [{"eventSource": "lambda.amazonaws.com", "eventName": {"Microvm": 1}}]});
    let o = scan(&mut scanner(), doc.to_string().as_bytes());
    assert!(
        o.record_errors[0].contains("field `eventName`"),
        "{:?}",
        o.record_errors
    );
}

#[test]
fn records_over_the_size_limit_are_refused_with_their_offset() {
    let big = json!({"Records": [other("o1"), {"eventID": "big", "pad": "x".repeat(3 << 20)}]});
    let opts = ScanOptions {
        max_record_bytes: 1 << 20,
        ..ScanOptions::default()
    };
    let e = scan(&mut scanner_with(opts), big.to_string().as_bytes())
        .result
        .unwrap_err();
    assert!(matches!(e, ReadError::RecordTooLarge { .. }), "{e}");
    let offset = big.to_string().find(r#"{"eventID":"big""#).unwrap();
    assert!(
        e.to_string().contains(&format!("record at byte {offset}")),
        "{e}"
    );
}

#[test]
fn inputs_over_the_total_limit_are_refused() {
    let opts = ScanOptions {
        max_input_bytes: 100,
        ..ScanOptions::default()
    };
    let e = scan(&mut scanner_with(opts), &records_doc())
        .result
        .unwrap_err();
    assert!(
        e.to_string().contains("larger than the maximum of 100"),
        "{e}"
    );
}

#[test]
fn empty_input_is_an_error_not_a_clean_file() {
    for doc in [&b""[..], b"  \n"] {
        let e = scan(&mut scanner(), doc).result.unwrap_err().to_string();
        assert!(e.contains("input is empty"), "{e}");
    }
}

#[test]
fn pipelined_scan_gives_the_same_findings_counts_and_errors() {
    let recs: Vec<Value> = (0..4000)
        .map(|i| {
            if i % 997 == 0 {
                bypass(&format!("b{i}"))
            } else {
                other(&format!("o{i}"))
            }
        })
        .collect();
    let gz = gzip(&serde_json::to_vec(&json!({ "Records": recs })).unwrap());
    let mut multi = gz.clone();
    multi.extend(gzip(
        &serde_json::to_vec(&json!({ "Records": [bypass("tail")] })).unwrap(),
    ));
    for input in [&gz[..], &multi[..], &gz[..gz.len() / 2], &records_doc()[..]] {
        let mut a = scanner();
        let mut b = scanner();
        let (mut fa, mut fb) = (Vec::new(), Vec::new());
        let ra = a.scan_reader(input, "x", |e| fa.push(format!("{e:?}")));
        let rb = b.scan_reader_pipelined(input, "x", |e| fb.push(format!("{e:?}")));
        assert_eq!(fa, fb);
        assert_eq!(a.stats(), b.stats());
        assert_eq!(ra.map_err(|e| e.to_string()), rb.map_err(|e| e.to_string()));
    }
}

/// Inputs read in parallel, the first much longer than the second: the
/// second finishes first, but the first holds the first occurrence of a
/// shared eventID and reports it, and findings come in input order.
#[test]
fn in_parallel_the_first_occurrence_in_input_order_wins_whichever_input_ends_first() {
    use detector_core::parallel::{Delivery, Input, Job};
    let mut long = vec![other("o")];
    long.extend((0..20_000).map(|i| other(&format!("o{i}"))));
    long.push(bypass("shared"));
    long.push(bypass("a-last"));
    let inputs = [
        gzip(&serde_json::to_vec(&json!({ "Records": long })).unwrap()),
        serde_json::to_vec(&json!({"Records": [bypass("b-first"), bypass("shared")]})).unwrap(),
    ];
    let mut s = scanner();
    let mut got = Vec::new();
    s.scan_inputs::<()>(
        2,
        |emit| {
            for (i, bytes) in inputs.iter().enumerate() {
                let bytes: &[u8] = bytes;
                emit(Job::Input(Input {
                    source: format!("input-{i}"),
                    open: Box::new(move || Ok(Box::new(bytes) as Box<dyn Read + Send>)),
                    size: Some(1 << 30),
                }));
            }
        },
        |d| match d {
            Delivery::Event(ScanEvent::Finding(f)) => {
                got.push(format!("{} {}", f.source, f.event_id.unwrap()));
            }
            Delivery::Done { source, result } => {
                got.push(format!("done {source} {}", result.is_ok()));
            }
            other => panic!("{other:?}"),
        },
    );
    assert_eq!(
        got,
        [
            "input-0 shared",
            "input-0 a-last",
            "done input-0 true",
            "input-1 b-first",
            "done input-1 true"
        ]
    );
    assert_eq!(s.stats().duplicates, 1);
    assert_eq!(s.stats().records, 20_005);
    assert_eq!(s.stats().files, 2);
}

#[test]
fn parallel_reading_is_bounded_by_memory_as_well_as_cores() {
    use detector_core::parallel::{MEMORY_BUDGET, threads_for};
    let huge = ScanOptions {
        max_record_bytes: MEMORY_BUDGET,
        ..ScanOptions::default()
    };
    assert_eq!(threads_for(&huge), 1);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert!((1..=cores).contains(&threads_for(&ScanOptions::default())));
}
