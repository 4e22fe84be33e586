//! `detector scan` end to end: the built binary, its stdout/stderr and its
//! exit status, on the bundled examples, the real CloudTrail data (the
//! bundled tests/data, and the shared data tier), a generated corpus
//! (testkit::corpus), broken inputs, stdin and an S3 prefix (moto).

use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const ROLE: &str = "arn:aws:iam::111122223333:role/microvm-launcher";
const SESSION: &str = "microvm-launcher";

fn detector() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_detector"));
    c.env_remove("LAUNCHER_ROLE_ARNS")
        .env_remove("LAUNCHER_SESSION_NAMES");
    // The administrator's-path lists fall back to the Lambda's variables.
    for var in [
        "GOVERNANCE_STACKS",
        "PIPELINE_PRINCIPAL_ARNS",
        "BREAK_GLASS_ROLE_ARNS",
        "EXECUTION_ROLE_ARNS",
        "PREVENTION_POLICY_ARNS",
        "SCP_IDS",
        "CONTRO1_SECRETS",
        "ALERT_TOPIC_ARN",
        "DETECTOR_LOG_GROUPS",
        "DETECTOR_ROLE_ARNS",
        "TRAIL_BUCKETS",
    ] {
        c.env_remove(var);
    }
    c
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/examples")
}

fn scan(args: &[&str]) -> Output {
    detector().arg("scan").args(args).output().unwrap()
}

fn stdout_findings(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(testkit::unique_name(name));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn triples(findings: &[Value]) -> BTreeSet<(String, String, String)> {
    findings
        .iter()
        .map(|f| {
            (
                f["event_id"].as_str().unwrap().to_string(),
                f["rule"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn bundled_examples_give_exactly_the_documented_findings() {
    let ex = examples();
    let out = scan(&[
        "--launcher-role-arn",
        ROLE,
        "--launcher-session-name",
        SESSION,
        ex.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let findings = stdout_findings(&out);
    let want: BTreeSet<(String, String, String)> = [
        (
            "5b0f1c0e-5d1d-4c57-9a51-1f6c2b7d0a05",
            "non-launcher-principal",
            "high",
        ),
        (
            "5b0f1c0e-5d1d-4c57-9a51-1f6c2b7d0a06",
            "non-launcher-principal",
            "critical",
        ),
        (
            "5b0f1c0e-5d1d-4c57-9a51-1f6c2b7d0a07",
            "non-launcher-principal",
            "low",
        ),
        (
            "5b0f1c0e-5d1d-4c57-9a51-1f6c2b7d0a08",
            "non-launcher-principal",
            "high",
        ),
        (
            "6c1a2d1f-6e2e-4d68-8b62-2a7d3c8e1b01",
            "launcher-session-mismatch",
            "medium",
        ),
        (
            "6c1a2d1f-6e2e-4d68-8b62-2a7d3c8e1b02",
            "missing-contro1-request-id",
            "high",
        ),
        (
            "7d2b3e20-7f3f-4e79-9c73-3b8e4d9f2c01",
            "contro1-request-id-mismatch",
            "high",
        ),
        (
            "8e3c4f31-8a4a-4f8a-8d84-4c9f5e0a3d01",
            "non-launcher-principal",
            "medium",
        ),
        (
            "9f4d5a42-9b5b-4a9b-9e95-5d0a6f1b4e01",
            "non-launcher-principal",
            "high",
        ),
        (
            "5b0f1c0e-5d1d-4c57-9a51-1f6c2b7d0a11",
            "trail-stopped",
            "critical",
        ),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(
        findings.len(),
        10,
        "one finding per event, duplicate dropped"
    );
    assert_eq!(triples(&findings), want);
    let suffixed = findings
        .iter()
        .find(|f| f["event_id"] == "5b0f1c0e-5d1d-4c57-9a51-1f6c2b7d0a08")
        .unwrap();
    assert_eq!(suffixed["event_name"], "RunMicrovm");
    let failed = findings
        .iter()
        .find(|f| f["event_id"] == "5b0f1c0e-5d1d-4c57-9a51-1f6c2b7d0a07")
        .unwrap();
    assert_eq!(failed["outcome"], "failed");
    assert!(failed["source"].as_str().unwrap().ends_with(".json.gz"));
    let err = stderr(&out);
    assert!(err.contains("7 files read (1 ignored)"), "{err}");
    assert!(err.contains("13 governed calls (4 managed)"), "{err}");
    assert!(
        err.contains("1 control-plane changes, 10 findings"),
        "{err}"
    );
    assert!(
        err.contains("findings by rule: non-launcher-principal 6, launcher-session-mismatch 1, missing-contro1-request-id 1, contro1-request-id-mismatch 1, trail-stopped 1"),
        "{err}"
    );
    assert!(
        !err.contains("errors:"),
        "zero counters are not shown: {err}"
    );
    assert!(
        err.contains("1 digest files, 1 insight records, 1 duplicate events"),
        "{err}"
    );
}

#[test]
fn table_format_aligns_findings_and_ends_with_a_total_line() {
    let ex = examples();
    let out = scan(&[
        "--format",
        "table",
        "--launcher-role-arn",
        ROLE,
        ex.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("SEVERITY"));
    // without session names, the hand-assumed launcher session is managed:
    // 8 bypass findings and the trail stopped
    assert_eq!(*lines.last().unwrap(), "total: 9 findings");
    assert_eq!(lines.len(), 11);
    let col = lines[0].find("RULE").unwrap();
    for l in &lines[1..lines.len() - 1] {
        assert_eq!(&l[col - 2..col], "  ", "{l}");
    }
}

#[test]
fn launcher_settings_come_from_the_environment_and_flags_win() {
    let ex = examples();
    let from_env = detector()
        .args(["scan", ex.to_str().unwrap()])
        .env(
            "LAUNCHER_ROLE_ARNS",
            format!("arn:aws:iam::1:role/x,{ROLE}"),
        )
        .env("LAUNCHER_SESSION_NAMES", SESSION)
        .output()
        .unwrap();
    assert_eq!(stdout_findings(&from_env).len(), 10);
    let flag_wins = detector()
        .args([
            "scan",
            "--launcher-role-arn",
            "arn:aws:iam::1:role/x",
            ex.to_str().unwrap(),
        ])
        .env("LAUNCHER_ROLE_ARNS", ROLE)
        .output()
        .unwrap();
    // the flag names another role: every governed call (13) is a finding,
    // and the trail stopped
    assert_eq!(stdout_findings(&flag_wins).len(), 14);
}

/// Every CloudTrail record under `dir`, read plainly (whole files, any of
/// the shapes the shared data holds).
fn records_under(dir: &Path, out: &mut Vec<Value>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            records_under(&p, out);
            continue;
        }
        let name = p.to_string_lossy();
        if !(name.ends_with(".json") || name.ends_with(".gz")) || name.contains("Digest") {
            continue;
        }
        let raw = std::fs::read(&p).unwrap();
        let mut text = Vec::new();
        if raw.starts_with(&[0x1f, 0x8b]) {
            std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&raw[..]), &mut text)
                .unwrap();
        } else {
            text = raw;
        }
        let Ok(doc) = serde_json::from_slice::<Value>(&text) else {
            continue;
        };
        match doc {
            Value::Array(items) => out.extend(items),
            Value::Object(mut o) => {
                if let Some(Value::Array(rs)) = o.remove("Records") {
                    out.extend(rs);
                } else if let Some(d) = o.remove("detail") {
                    out.push(d);
                }
            }
            _ => {}
        }
    }
}

/// The changes among `records` a scan with only a launcher role reports,
/// each as (eventID, the rule it must raise), read plainly: each CloudTrail
/// StopLogging / DeleteTrail / UpdateTrail / PutEventSelectors record once
/// per eventID (none of the data's PutEventSelectors selects MicroVM data
/// events), and each LeaveOrganization (detonations, refused: reported LOW).
fn trail_changes(records: &[Value]) -> BTreeSet<(String, String)> {
    records
        .iter()
        .filter_map(|r| {
            Some((
                r["eventID"].as_str()?.to_string(),
                testkit::corpus::unconfigured_change_rule(
                    r["eventSource"].as_str()?,
                    r["eventName"].as_str()?,
                )?
                .to_string(),
            ))
        })
        .collect()
}

/// Scans `data` and checks that its trail changes (and attempts to leave the
/// organization), and nothing else, are
/// the findings, with exit 0; answers the scan's stderr.
fn real_data_gives_exactly_its_trail_changes(data: &Path, findings_n: usize) -> String {
    let out = scan(&["--launcher-role-arn", ROLE, data.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let mut records = Vec::new();
    records_under(data, &mut records);
    let want = trail_changes(&records);
    let findings = stdout_findings(&out);
    let got: BTreeSet<(String, String)> = findings
        .iter()
        .map(|f| {
            (
                f["event_id"].as_str().unwrap().to_string(),
                f["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(findings.len(), findings_n, "{err}");
    assert!(
        findings
            .iter()
            .all(|f| f["event"] == "aws.microvm.governance.tampered"),
        "no other finding in the real data"
    );
    assert!(err.contains(&format!(", {findings_n} findings")), "{err}");
    err
}

#[test]
fn the_bundled_real_cloudtrail_data_gives_exactly_the_trail_changes_it_holds_and_exit_0() {
    let err = real_data_gives_exactly_its_trail_changes(&testkit::test_data_dir(), 13);
    assert!(err.contains("3220 records"), "{err}");
}

mod shared_tier {
    use super::*;

    #[test]
    #[ignore = "shared data tier: scripts/test.sh runs it when ../shared or MICROVM_SHARED_DIR has data/cloudtrail"]
    fn all_real_cloudtrail_data_gives_exactly_the_trail_changes_it_holds_and_exit_0() {
        let err = real_data_gives_exactly_its_trail_changes(&testkit::shared_data_dir(), 18);
        assert!(err.contains("33697 records"), "{err}");
        assert!(err.contains("1 digest files"), "{err}");
    }
}

#[test]
fn a_generated_corpus_gives_exactly_the_findings_its_expected_file_lists() {
    use testkit::corpus::{CorpusOptions, generate, read_expected};
    let dir = temp_dir("corpus");
    let opts = CorpusOptions {
        records: 6000,
        per_file: 700,
        microvm_every: 37,
        seed: 11,
    };
    let summary = generate(&dir, &testkit::test_data_dir(), &opts).unwrap();
    let out = scan(&[
        "--launcher-role-arn",
        &summary.launcher_role_arn,
        "--launcher-session-name",
        &summary.launcher_session_name,
        dir.join("AWSLogs").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let findings = stdout_findings(&out);
    let got: BTreeSet<(String, String, String, String)> = findings
        .iter()
        .map(|f| {
            (
                f["event_id"].as_str().unwrap().into(),
                f["event_name"].as_str().unwrap().into(),
                f["event"].as_str().unwrap().into(),
                f["rule"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, String, String)> = read_expected(&dir)
        .unwrap()
        .into_iter()
        .map(|e| (e.event_id, e.event_name, e.event, e.rule))
        .collect();
    assert!(summary.expected_bypass > 0, "{summary:?}");
    assert!(
        summary.expected_findings > summary.expected_bypass,
        "{summary:?}"
    );
    assert_eq!(got, want);
    assert_eq!(findings.len() as u64, summary.expected_findings);
    // The expected file is the generator's word; the trail changes among
    // the records it wrote, read plainly, must agree with it.
    let mut records = Vec::new();
    records_under(&dir, &mut records);
    let tampered: BTreeSet<(String, String)> = findings
        .iter()
        .filter(|f| f["event"] == "aws.microvm.governance.tampered")
        .map(|f| {
            (
                f["event_id"].as_str().unwrap().to_string(),
                f["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(tampered, trail_changes(&records));
    assert!(stderr(&out).contains("6000 records"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn broken_inputs_exit_2_naming_each_while_the_others_are_still_scanned() {
    let dir = temp_dir("broken");
    // a good file with one finding
    std::fs::write(
        dir.join("a-good.json"),
        r#"{"Records":[{"eventID":"good-1","eventSource":"lambda.amazonaws.com","eventName":"RunMicrovm","userIdentity":{"type":"Root","arn":"arn:aws:iam::111122223333:root"}}]}"#,
    )
    .unwrap();
    // a truncated gzip
    let mut big = String::from(r#"{"Records":["#);
    for i in 0..5000 {
        big += &format!(
            r#"{{"eventID":"o{i}","eventSource":"s3.amazonaws.com","eventName":"GetObject","n":{i}}},"#
        );
    }
    big += "{}]}";
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(big.as_bytes()).unwrap();
    let gz = e.finish().unwrap();
    std::fs::write(dir.join("b-truncated.json.gz"), &gz[..gz.len() / 2]).unwrap();
    // malformed JSON Lines
    std::fs::write(
        dir.join("c-bad.jsonl"),
        "{\"eventID\":\"x\"}\n{\"eventID\":\"y\"}\noops\n",
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
    let out = scan(&["--launcher-role-arn", ROLE, dir.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(triples(&stdout_findings(&out)).len(), 1);
    assert!(
        err.contains("b-truncated.json.gz: truncated gzip stream at byte"),
        "{err}"
    );
    assert!(
        err.contains("c-bad.jsonl: expected JSON object at line 3 column 1"),
        "{err}"
    );
    assert!(err.contains("(1 ignored)"), "{err}");
    // a missing path is an unreadable input too
    let out = scan(&[
        dir.join("nope.json").to_str().unwrap(),
        dir.join("a-good.json").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout_findings(&out).len(), 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_file_named_on_the_command_line_is_read_whatever_its_name() {
    let dir = temp_dir("named");
    let f = dir.join("export.txt");
    std::fs::write(&f, r#"[{"eventID":"n1","eventSource":"lambda.amazonaws.com","eventName":"TerminateMicrovm","userIdentity":{"type":"Root"}}]"#).unwrap();
    let out = scan(&[f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout_findings(&out).len(), 1);
    let out = scan(&[dir.to_str().unwrap()]);
    assert_eq!(stdout_findings(&out).len(), 0);
    assert!(stderr(&out).contains("(1 ignored)"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn stdin_is_read_for_a_dash() {
    let bytes = std::fs::read(examples().join("siem-export.jsonl")).unwrap();
    let mut child = detector()
        .args(["scan", "--launcher-role-arn", ROLE, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let f = stdout_findings(&out);
    assert_eq!(f.len(), 2);
    assert!(f.iter().all(|f| f["source"] == "-"));
}

#[test]
fn usage_errors_exit_64_with_a_message() {
    for args in [
        vec!["scan"],
        vec!["scan", "--format", "xml", "x"],
        vec![
            "scan",
            "--launcher-role-arn",
            "arn:aws:iam::1:user/alice",
            "x",
        ],
        vec!["scan", "s3://"],
        vec!["frobnicate"],
    ] {
        let out = detector().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    let out = detector()
        .args([
            "scan",
            "--launcher-role-arn",
            "arn:aws:iam::1:user/alice",
            "x",
        ])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("`arn:aws:iam::1:user/alice` is not an IAM role ARN"));
}

#[tokio::test]
async fn an_s3_prefix_is_listed_and_streamed_through_aws_endpoint_url() {
    let endpoint = testkit::moto::ensure_running().await;
    let s3 = testkit::moto::s3_client().await;
    let bucket = testkit::unique_name("scan-cli");
    testkit::moto::create_bucket(&s3, &bucket).await;
    let ex = examples();
    let gz = std::fs::read_dir(
        ex.join("cloudtrail/AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/20"),
    )
    .unwrap()
    .next()
    .unwrap()
    .unwrap()
    .path();
    for (key, path) in [
        ("logs/AWSLogs/111122223333/CloudTrail/a.json.gz", gz),
        ("logs/bare-array.json", ex.join("bare-array.json")),
        ("logs/README.md", ex.join("README.md")),
        ("other/siem-export.jsonl", ex.join("siem-export.jsonl")),
    ] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(std::fs::read(path).unwrap().into())
            .send()
            .await
            .unwrap();
    }
    let url = format!("s3://{bucket}/logs/");
    let out = tokio::task::spawn_blocking(move || {
        detector()
            .args([
                "scan",
                "--launcher-role-arn",
                ROLE,
                "--launcher-session-name",
                SESSION,
                &url,
            ])
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let findings = stdout_findings(&out);
    assert_eq!(
        findings.len(),
        7,
        "4 bypasses and the trail stopped in the gzip log + 2 in the bare array"
    );
    assert!(
        findings.iter().any(|f| f["source"]
            == format!("s3://{bucket}/logs/AWSLogs/111122223333/CloudTrail/a.json.gz"))
    );
    assert!(err.contains("2 files read (1 ignored)"), "{err}");
}

#[test]
fn every_format_writes_one_entry_per_finding() {
    let ex = examples();
    let run = |format: &str| {
        let out = scan(&[
            "--format",
            format,
            "--launcher-role-arn",
            ROLE,
            "--launcher-session-name",
            SESSION,
            ex.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{format}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    for format in ["ocsf", "asff"] {
        let text = run(format);
        let values: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(values.len(), 10, "{format}");
        if format == "ocsf" {
            assert!(values.iter().all(|v| v["class_uid"] == 2004));
        } else {
            assert!(values.iter().all(|v| v["SchemaVersion"] == "2018-10-08"));
        }
    }
    let csv = run("csv");
    assert_eq!(csv.lines().count(), 11, "header + 10 rows");
    assert!(csv.starts_with("event_time,severity,event,rule,"));
    let table = run("table");
    assert!(table.ends_with("total: 10 findings\n"), "{table}");
    assert!(
        !table.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
}

/// Files that take longer to read come first, so that with several read at
/// once the later ones finish earlier: the output still follows the inputs'
/// order (then the records'), and of two files holding the same eventID the
/// first in that order reports it, as a serial scan does.
#[test]
fn findings_come_out_in_input_order_whatever_order_the_inputs_finish_in() {
    let dir = temp_dir("order");
    let bypass = |id: &str| {
        format!(
            r#"{{"eventID":"{id}","eventSource":"lambda.amazonaws.com","eventName":"RunMicrovm","userIdentity":{{"type":"Root","arn":"arn:aws:iam::111122223333:root"}}}}"#
        )
    };
    let filler = |i: usize, k: usize| {
        format!(
            r#"{{"eventID":"o{i}-{k}","eventSource":"s3.amazonaws.com","eventName":"GetObject","requestParameters":{{"bucketName":"b","key":"k}}{{\"["}}}}"#
        )
    };
    let mut want = Vec::new();
    for i in 0..24 {
        let name = format!("f{i:02}.json");
        let n = (24 - i) * 300;
        let mut records: Vec<String> = (0..n / 2).map(|k| filler(i, k)).collect();
        // Files 2k and 2k+1 share an eventID: file 2k reports it.
        let shared = format!("shared-{}", i / 2);
        for id in [format!("a-{i}"), shared.clone(), format!("b-{i}")] {
            records.push(bypass(&id));
            if id != shared || i % 2 == 0 {
                want.push(format!("{name} {id}"));
            }
        }
        records.extend((n / 2..n).map(|k| filler(i, k)));
        records.push(bypass(&format!("c-{i}")));
        want.push(format!("{name} c-{i}"));
        let text = format!(r#"{{"Records":[{}]}}"#, records.join(","));
        std::fs::write(dir.join(&name), text).unwrap();
    }
    let out = scan(&["--launcher-role-arn", ROLE, dir.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let got: Vec<String> = stdout_findings(&out)
        .iter()
        .map(|f| {
            let source = Path::new(f["source"].as_str().unwrap());
            let name = source.file_name().unwrap().to_string_lossy();
            format!("{name} {}", f["event_id"].as_str().unwrap())
        })
        .collect();
    assert_eq!(got, want);
    assert!(err.contains("skipped: 12 duplicate events"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn json_that_is_not_cloudtrail_is_a_warning_naming_the_input_and_not_a_record() {
    // `{"not":"cloudtrail"}` used to pass as "1 records"; a Config snapshot
    // was read as one record too.
    let dir = temp_dir("not-cloudtrail");
    let stray = dir.join("stray.json");
    std::fs::write(&stray, r#"{"not":"cloudtrail"}"#).unwrap();
    let config = dir.join("config-snapshot.json");
    std::fs::write(
        &config,
        r#"{"fileVersion":"1.0","configSnapshotId":"s","configurationItems":[{"resourceType":"AWS::S3::Bucket"}]}"#,
    )
    .unwrap();
    let out = scan(&[
        "--launcher-role-arn",
        ROLE,
        stray.to_str().unwrap(),
        config.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(out.stdout.is_empty());
    for input in [&stray, &config] {
        assert!(
            err.contains(&format!(
                "warning: {}: 1 JSON object(s) that are not CloudTrail records",
                input.display()
            )),
            "{err}"
        );
    }
    assert!(err.contains("2 files read, 0 records, 0 findings"), "{err}");
    assert!(err.contains("2 JSON objects not CloudTrail"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_reader_that_goes_away_ends_the_scan_quietly_with_exit_0() {
    // `detector scan ... | head -0`: stdout is closed before anything is written.
    let mut child = detector()
        .args([
            "scan",
            "--launcher-role-arn",
            ROLE,
            "--launcher-session-name",
            SESSION,
        ])
        .arg(examples())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("error"), "{err}");
}

#[test]
fn asff_names_each_finding_it_cannot_place_escaped_and_exits_2() {
    let dir = temp_dir("asff-bad-region");
    let rec = serde_json::json!({"Records": [{
        "eventVersion": "1.11", "eventSource": "lambda.amazonaws.com", "eventName": "RunMicrovm",
        "eventID": "ev-\u{1b}[31mred", "eventTime": "2026-11-20T10:00:00Z",
        "awsRegion": "us-east-1\nevil", "eventType": "AwsApiCall", "recipientAccountId": "111122223333",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/m",
                         "accountId": "111122223333"},
        "requestParameters": {"imageIdentifier": "arn:aws:lambda:us-east-1:111122223333:microvm-image:x"},
        "responseElements": {"microvmId": "ai-1", "state": "PENDING"}}]});
    let path = dir.join("bad.json");
    std::fs::write(&path, rec.to_string()).unwrap();
    let out = detector()
        .args(["scan", "--format", "asff"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot be encoded as ASFF"), "{err}");
    assert!(!err.contains('\u{1b}'), "raw escape on stderr: {err:?}");
    assert!(out.stdout.is_empty());
    // With a Security Hub account and region it is placed there.
    let out = detector()
        .args([
            "scan",
            "--format",
            "asff",
            "--security-hub-account",
            "999988887777",
            "--security-hub-region",
            "eu-west-1",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["AwsAccountId"], "999988887777");
    assert_eq!(v["Resources"][0]["Region"], "eu-west-1");
}
