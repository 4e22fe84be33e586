//! `detector scan` for hunters, end to end on the built binary: the time
//! window (`--since`/`--until`, by day on S3), `--follow` on stdin,
//! `--region`/`--profile` and their one-line errors, the record-size
//! warning and the summary's counters.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const ROLE: &str = "arn:aws:iam::111122223333:role/microvm-launcher";

/// The binary with no launcher or AWS settings inherited from the shell.
fn detector() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_detector"));
    for var in [
        "LAUNCHER_ROLE_ARNS",
        "LAUNCHER_SESSION_NAMES",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
    ] {
        c.env_remove(var);
    }
    c
}

fn examples() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/examples").to_string()
}

fn scan(args: &[&str]) -> Output {
    detector()
        .args(["scan", "--launcher-role-arn", ROLE])
        .args(args)
        .output()
        .unwrap()
}

fn findings(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn event_ids(out: &Output) -> Vec<String> {
    let mut ids: Vec<String> = findings(out)
        .iter()
        .map(|f| f["event_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(testkit::unique_name(name));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A RunMicrovm by an IAM user (a `non-launcher-principal` finding), with
/// `event_time` as its `eventTime` (none when `None`).
fn bypass(event_id: &str, event_time: Option<&str>) -> String {
    let mut r = json!({
        "eventVersion": "1.11",
        "eventID": event_id,
        "eventSource": "lambda.amazonaws.com",
        "eventName": "RunMicrovm",
        "awsRegion": "us-east-1",
        "recipientAccountId": "111122223333",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/dev-alice",
                         "accountId": "111122223333"},
        "requestParameters": {"imageIdentifier": "arn:aws:lambda:us-east-1:111122223333:microvm-image:x"},
        "responseElements": {"microvmId": format!("ai-{event_id}")},
    });
    if let Some(t) = event_time {
        r["eventTime"] = json!(t);
    }
    r.to_string()
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn since_is_inclusive_and_until_exclusive_on_the_records_event_time() {
    // The examples' findings are at 10:03:12 .. 14:00:00 on 2026-11-20.
    let out = scan(&[
        "--since",
        "2026-11-20T10:04:45Z",
        "--until",
        "2026-11-20T13:00:00+00:00",
        &examples(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let times: Vec<String> = findings(&out)
        .iter()
        .map(|f| f["event_time"].as_str().unwrap().to_string())
        .collect();
    assert!(!times.is_empty());
    assert!(
        times.contains(&"2026-11-20T10:04:45Z".to_string()),
        "since is inclusive: {times:?}"
    );
    assert!(
        times
            .iter()
            .all(|t| t.as_str() >= "2026-11-20T10:04:45Z" && t.as_str() < "2026-11-20T13:00:00Z"),
        "{times:?}"
    );
    let all = findings(&scan(&[&examples()])).len();
    let err = stderr(&out);
    let hidden = all - times.len();
    assert!(hidden > 0);
    assert!(
        err.contains(&format!(
            "time window: {hidden} findings outside --since/--until not shown"
        )),
        "{err}"
    );
    // An offset other than Z means the same instant: 13:00+00:00 = 15:00+02:00.
    let same = scan(&[
        "--since",
        "2026-11-20T12:04:45+02:00",
        "--until",
        "2026-11-20T15:00:00+02:00",
        &examples(),
    ]);
    assert_eq!(event_ids(&same), event_ids(&out));
}

#[test]
fn relative_since_counts_back_from_now() {
    let now = time::OffsetDateTime::now_utc();
    let dir = temp_dir("scan-relative");
    let file = dir.join("recent.jsonl");
    let lines = [
        bypass("recent", Some(&rfc3339(now - Duration::from_secs(10 * 60)))),
        bypass("old", Some(&rfc3339(now - Duration::from_secs(3 * 3600)))),
        bypass(
            "older",
            Some(&rfc3339(now - Duration::from_secs(3 * 86_400))),
        ),
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let path = file.to_str().unwrap();
    for (since, want) in [
        ("30m", vec!["recent"]),
        ("1800s", vec!["recent"]),
        ("4h", vec!["old", "recent"]),
        ("2d", vec!["old", "recent"]),
        ("7d", vec!["old", "older", "recent"]),
    ] {
        let out = scan(&["--since", since, path]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(event_ids(&out), want, "--since {since}");
    }
    let out = scan(&["--until", "1h", path]);
    assert_eq!(event_ids(&out), ["old", "older"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_finding_with_a_missing_or_unparsable_event_time_is_kept_and_counted() {
    let dir = temp_dir("scan-undated");
    let file = dir.join("undated.jsonl");
    let lines = [
        bypass("inside", Some("2026-11-20T10:00:00Z")),
        bypass("outside", Some("2020-01-01T00:00:00Z")),
        bypass("no-time", None),
        bypass("bad-time", Some("last tuesday")),
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = scan(&["--since", "2026-01-01T00:00:00Z", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(event_ids(&out), ["bad-time", "inside", "no-time"]);
    let err = stderr(&out);
    assert!(
        err.contains("time window: 1 findings outside --since/--until not shown, 2 findings kept with no usable eventTime"),
        "{err}"
    );
    assert!(err.contains(", 3 findings\n"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_time_values_are_usage_errors_naming_the_flag_and_the_value() {
    for (flag, value) in [
        ("--since", "yesterday"),
        ("--until", "24"),
        ("--since", "2026-11-20"),
        ("--until", "-5m"),
        ("--since", "5w"),
    ] {
        let out = scan(&[flag, value, &examples()]);
        assert_eq!(out.status.code(), Some(64), "{flag} {value}");
        let err = stderr(&out);
        assert!(err.contains(&format!("{flag} `{value}`")), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(out.stdout.is_empty());
    }
    let out = scan(&["--since", "1h", "--until", "2h", &examples()]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr(&out).contains("--since (") && stderr(&out).contains("must be earlier than --until")
    );
}

/// Reads the child's stdout lines on a thread, so that the test can wait
/// for one with a bound.
fn lines_of(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

const FOLLOW_WAIT: Duration = Duration::from_secs(30);

/// `detector scan --follow -` with `flags`, its stdin, and its stdout lines.
fn follow(flags: &[&str]) -> (Child, ChildStdin, mpsc::Receiver<String>) {
    let mut child = detector()
        .args(["scan", "--launcher-role-arn", ROLE, "--follow"])
        .args(flags)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let rx = lines_of(child.stdout.take().unwrap());
    (child, stdin, rx)
}

#[test]
fn follow_prints_each_finding_before_the_next_line_is_written() {
    let (mut child, mut stdin, rx) = follow(&[]);
    for id in ["first", "second"] {
        writeln!(stdin, "{}", bypass(id, Some("2026-11-20T10:00:00Z"))).unwrap();
        stdin.flush().unwrap();
        let line = rx.recv_timeout(FOLLOW_WAIT).unwrap_or_else(|e| {
            let _ = child.kill();
            panic!(
                "no finding on stdout {FOLLOW_WAIT:?} after the `{id}` line was written \
                 (stdin still open): {e}"
            )
        });
        let f: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(f["event_id"], id);
        assert_eq!(f["source"], "-");
    }
    // A line that is not a finding prints nothing; the stream goes on.
    writeln!(
        stdin,
        r#"{{"eventID":"n","eventSource":"s3.amazonaws.com","eventName":"GetObject"}}"#
    )
    .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(rx.recv_timeout(FOLLOW_WAIT).is_err(), "no third finding");
    let err = stderr(&out);
    assert!(err.contains("1 files read, 3 records"), "{err}");
    assert!(err.contains(", 2 findings\n"), "{err}");
}

#[test]
fn follow_applies_the_time_window_as_it_goes() {
    let (child, mut stdin, rx) = follow(&["--since", "2026-01-01T00:00:00Z", "--format", "csv"]);
    let header = rx.recv_timeout(FOLLOW_WAIT).expect("csv header");
    assert!(header.starts_with("event_time,"), "{header}");
    writeln!(stdin, "{}", bypass("old", Some("2025-01-01T00:00:00Z"))).unwrap();
    writeln!(stdin, "{}", bypass("new", Some("2026-11-20T10:00:00Z"))).unwrap();
    stdin.flush().unwrap();
    let row = rx
        .recv_timeout(FOLLOW_WAIT)
        .expect("a row for the new record");
    assert!(
        row.ends_with(",new"),
        "the old record is outside the window: {row}"
    );
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn follow_is_refused_with_a_table_or_a_path_other_than_stdin() {
    for (args, needle) in [
        (vec!["--follow", "--format", "table", "-"], "--format table"),
        (vec!["--follow", "x.jsonl"], "`-` as the only PATH"),
        (vec!["--follow", "-", "-"], "`-` as the only PATH"),
    ] {
        let out = scan(&args);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn a_record_over_max_record_bytes_warns_naming_the_flag_its_value_and_the_way_to_raise_it() {
    let dir = temp_dir("scan-big");
    let small = bypass("small", Some("2026-11-20T10:00:00Z"));
    let mut big = bypass("big", Some("2026-11-20T10:00:00Z"));
    // Past the reader's 256 KiB read-ahead, where the cap is checked (a
    // record the reader holds whole within one read is not refused).
    big.insert_str(1, &format!("\"pad\":\"{}\",", "x".repeat(600 << 10)));
    std::fs::write(dir.join("a.jsonl"), format!("{small}\n{big}\n{small}\n")).unwrap();
    std::fs::write(dir.join("b.jsonl"), format!("{big}\n")).unwrap();
    let out = scan(&["--max-record-bytes", "4096", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "an input not read to its end");
    let err = stderr(&out);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 2, "one per input: {err}");
    for w in warnings {
        assert!(
            w.contains("1 record larger than --max-record-bytes 4096")
                && w.contains("--max-record-bytes 16384"),
            "{w}"
        );
    }
    assert!(
        err.contains("2 inputs stopped at a record over --max-record-bytes"),
        "{err}"
    );
    assert_eq!(event_ids(&out), ["small"], "the record before the big one");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_summary_shows_only_non_zero_counters() {
    let dir = temp_dir("scan-summary");
    let file = dir.join("one.jsonl");
    std::fs::write(
        &file,
        r#"{"eventID":"n","eventSource":"s3.amazonaws.com","eventName":"GetObject"}"#,
    )
    .unwrap();
    let out = scan(&[file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    // Regression: the summary printed "(0 ignored)", "(0 MB)", "0 governed
    // calls (0 managed)" and "0 control-plane changes" for a clean input.
    assert_eq!(
        stderr(&out).lines().last(),
        Some("detector scan: 1 files read, 1 records, 0 findings")
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The binary in an empty environment: no AWS variable, HOME an empty
/// directory (no ~/.aws), the instance metadata service off.
fn bare_env(home: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_detector"));
    c.env_clear()
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

#[test]
fn no_region_in_an_empty_environment_is_one_line_naming_the_flag() {
    let home = temp_dir("scan-empty-home");
    for (flags, want) in [
        (&[][..], "no AWS region: pass --region or set AWS_REGION"),
        (
            &["--region", "us-east-1"][..],
            "no AWS credentials: pass --profile or set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
        ),
        (
            &["--region", "us-east-1", "--profile", "hunter"][..],
            "no AWS credentials for profile `hunter`: is it defined, with credentials, in ~/.aws/config or ~/.aws/credentials? (--profile, AWS_PROFILE)",
        ),
    ] {
        let out = bare_env(&home)
            .args(["scan", "--launcher-role-arn", ROLE])
            .args(flags)
            .arg("s3://some-bucket/AWSLogs/")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{flags:?}");
        assert_eq!(
            stderr(&out),
            format!("detector scan: {want}\n"),
            "{flags:?}"
        );
    }
    let _ = std::fs::remove_dir_all(home);
}

/// A bucket on moto holding one CloudTrail file per day over `days`, each
/// with one bypass at noon of its day, under the region-level prefix it
/// returns (`s3://bucket/AWSLogs/111122223333/CloudTrail/us-east-1/`).
async fn trail_bucket(days: &[&str]) -> String {
    testkit::moto::ensure_running().await;
    let s3 = testkit::moto::s3_client().await;
    let bucket = testkit::unique_name("scan-hunt");
    testkit::moto::create_bucket(&s3, &bucket).await;
    let base = "AWSLogs/111122223333/CloudTrail/us-east-1/";
    for day in days {
        let body = format!(
            "{{\"Records\":[{}]}}",
            bypass(&format!("e-{day}"), Some(&format!("{day}T12:00:00Z")))
        );
        let key = format!(
            "{base}{}/111122223333_CloudTrail_us-east-1_{}T1205Z_x.json",
            day.replace('-', "/"),
            day.replace('-', "")
        );
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(body.into_bytes().into())
            .send()
            .await
            .unwrap();
    }
    // A broken file in a day far outside any window used below: read, it
    // would fail the scan (exit 2).
    s3.put_object()
        .bucket(&bucket)
        .key(format!("{base}2019/03/04/broken.json"))
        .body(b"{\"Records\":[{".to_vec().into())
        .send()
        .await
        .unwrap();
    format!("s3://{bucket}/{base}")
}

async fn run_blocking(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn an_s3_region_prefix_is_listed_only_in_the_days_of_the_window() {
    let url = trail_bucket(&[
        "2026-11-18",
        "2026-11-19",
        "2026-11-20",
        "2026-11-21",
        "2026-11-25",
    ])
    .await;
    let mut c = detector();
    c.args([
        "scan",
        "--launcher-role-arn",
        ROLE,
        "--since",
        "2026-11-20T00:00:00Z",
        "--until",
        "2026-11-21T00:00:00Z",
        &url,
    ])
    .env("AWS_ENDPOINT_URL", testkit::moto::endpoint())
    .env("AWS_ACCESS_KEY_ID", "testing")
    .env("AWS_SECRET_ACCESS_KEY", "testing")
    .env("AWS_REGION", "us-east-1");
    let out = run_blocking(c).await;
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the 2019 folder was not read: {err}"
    );
    assert_eq!(event_ids(&out), ["e-2026-11-20"]);
    // The 19th, 20th and 21st (a day's margin each side); not the 18th or 25th.
    assert!(err.contains("3 files read"), "{err}");
    assert!(err.contains("time window: 2 findings outside"), "{err}");
}

#[tokio::test]
async fn region_and_profile_flags_reach_the_sdk_config_loader() {
    let url = trail_bucket(&["2026-11-20"]).await;
    let home = temp_dir("scan-profile-home");
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    std::fs::write(
        home.join(".aws/config"),
        "[profile hunter]\nregion = us-east-1\n",
    )
    .unwrap();
    std::fs::write(
        home.join(".aws/credentials"),
        "[hunter]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .unwrap();
    let endpoint = testkit::moto::endpoint();
    let since = ["--since", "2026-11-20T00:00:00Z"];
    // Without the flag the same environment has neither region nor credentials.
    let mut c = bare_env(&home);
    c.args(["scan", "--launcher-role-arn", ROLE])
        .args(since)
        .arg(&url)
        .env("AWS_ENDPOINT_URL", &endpoint);
    let out = run_blocking(c).await;
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    let mut c = bare_env(&home);
    c.args(["scan", "--launcher-role-arn", ROLE, "--profile", "hunter"])
        .args(since)
        .arg(&url)
        .env("AWS_ENDPOINT_URL", &endpoint);
    let out = run_blocking(c).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(event_ids(&out), ["e-2026-11-20"]);
    // --region with credentials from the environment.
    let mut c = bare_env(&home);
    c.args(["scan", "--launcher-role-arn", ROLE, "--region", "us-east-1"])
        .args(since)
        .arg(&url)
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing");
    let out = run_blocking(c).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(event_ids(&out), ["e-2026-11-20"]);
    let _ = std::fs::remove_dir_all(home);
}

/// An endpoint that answers every request as S3 answers a caller its
/// policies refuse: 403 with an `AccessDenied` error document. (Moto does
/// not enforce IAM or bucket policies.) Serves `n` requests.
fn access_denied_endpoint(n: usize) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>R1</RequestId><HostId>H1</HostId></Error>";
            let _ = write!(
                stream,
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn access_denied_names_the_bucket_and_the_iam_action() {
    let endpoint = access_denied_endpoint(8);
    let out = detector()
        .args([
            "scan",
            "--launcher-role-arn",
            ROLE,
            "--region",
            "us-east-1",
            "s3://hunt-bucket/AWSLogs/",
        ])
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(
        line,
        "error: s3://hunt-bucket/AWSLogs/: access denied: s3:ListBucket on bucket `hunt-bucket` (prefix `AWSLogs/`) (the caller's IAM policy, the bucket policy or an SCP refuses it)"
    );
}
