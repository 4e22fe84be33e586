//! A large, realistic CloudTrail corpus for scale tests and benchmarks, built from real records.
//!
//! Real records (by default the bundled `tests/data/cloudtrail`) are resampled with a new
//! `eventID`, `requestID` and `eventTime`, and written as gzip CloudTrail log files under the
//! organization-trail key layout. Governed MicroVM calls are mixed in at a known rate, some by
//! the launcher's role and session (managed), some by other principals (bypasses). Beside the
//! files, `expected-findings.jsonl` lists every finding `detector scan` must report on the
//! corpus, and `corpus.json` the counts and sizes ([`CorpusSummary`]).
//!
//! The same options and the same source data give the same bytes: the random source is a
//! seeded SplitMix64, the source files are read in sorted order, and the gzip header carries no
//! time or name. `cargo run -p testkit --bin make-corpus -- --help` runs it by hand.

use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Serialize;
use serde_json::{Value, json};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The account every generated log file is delivered for.
pub const ACCOUNT: &str = "111122223333";
/// The region of every generated log file and governed call.
pub const REGION: &str = "us-east-1";
/// The launcher role the managed governed calls are made by (`--launcher-role-arn`).
pub const LAUNCHER_ROLE_ARN: &str = "arn:aws:iam::111122223333:role/Contro1MicrovmLauncher";
/// The launcher's session name (`--launcher-session-name`).
pub const LAUNCHER_SESSION: &str = "contro1-microvm-launcher";
const IMAGE: &str = "arn:aws:lambda:us-east-1:111122223333:microvm-image:agent-sandbox";
const EXEC_ROLE: &str = "arn:aws:iam::111122223333:role/MicrovmSandboxExecutionRole";
/// 2026-11-01T00:00:00Z, the first generated record's time.
const START_UNIX: i64 = 1_793_491_200;

/// The file of expected findings written beside the corpus.
pub const EXPECTED_FINDINGS: &str = "expected-findings.jsonl";
/// The summary written beside the corpus.
pub const SUMMARY: &str = "corpus.json";

/// What to generate.
#[derive(Debug, Clone)]
pub struct CorpusOptions {
    /// Records in the whole corpus.
    pub records: u64,
    /// Records per log file (the last file may hold fewer).
    pub per_file: u64,
    /// One governed MicroVM call every this many records (at least 1).
    pub microvm_every: u64,
    /// Seed of the random source.
    pub seed: u64,
}

impl Default for CorpusOptions {
    fn default() -> Self {
        Self {
            records: 200_000,
            per_file: 2_000,
            microvm_every: 5_000,
            seed: 7,
        }
    }
}

/// `corpus.json`: what was written.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct CorpusSummary {
    pub records: u64,
    pub files: u64,
    pub governed_calls: u64,
    /// Lines in `expected-findings.jsonl`.
    pub expected_findings: u64,
    /// Of those, `aws.microvm.bypass.detected`.
    pub expected_bypass: u64,
    pub uncompressed_bytes: u64,
    pub gzip_bytes: u64,
    pub launcher_role_arn: String,
    pub launcher_session_name: String,
    pub seed: u64,
}

/// One line of `expected-findings.jsonl`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpectedFinding {
    pub event_id: String,
    pub event_name: String,
    /// `aws.microvm.bypass.detected` or `aws.microvm.governance.tampered`.
    pub event: String,
    pub rule: String,
}

/// Reads `expected-findings.jsonl` from a corpus directory.
pub fn read_expected(out: &Path) -> io::Result<Vec<ExpectedFinding>> {
    std::fs::read_to_string(out.join(EXPECTED_FINDINGS))?
        .lines()
        .map(|l| serde_json::from_str(l).map_err(io::Error::other))
        .collect()
}

/// The rule `detector scan` reports a CloudTrail trail change under, for the trail changes
/// the source data holds (none of its `PutEventSelectors` selects MicroVM data events).
pub fn trail_change_rule(event_source: &str, event_name: &str) -> Option<&'static str> {
    if event_source != "cloudtrail.amazonaws.com" {
        return None;
    }
    match event_name {
        "StopLogging" => Some("trail-stopped"),
        "DeleteTrail" => Some("trail-deleted"),
        "UpdateTrail" => Some("trail-updated"),
        "PutEventSelectors" => Some("trail-selectors-changed"),
        _ => None,
    }
}

/// The rule `detector scan` reports a change of the source data under with only a launcher
/// role configured: a trail change ([`trail_change_rule`]) or leaving the organization
/// (`account-left-organization` needs no configuration; the data's detonations were refused).
pub fn unconfigured_change_rule(event_source: &str, event_name: &str) -> Option<&'static str> {
    trail_change_rule(event_source, event_name).or_else(|| {
        (event_source == "organizations.amazonaws.com"
            && matches!(
                event_name,
                "LeaveOrganization" | "RemoveAccountFromOrganization" | "DeleteOrganization"
            ))
        .then_some("account-left-organization")
    })
}

/// Every CloudTrail record under `dir`, files in sorted path order: `{"Records":[...]}`
/// documents (gzip or plain), bare arrays and EventBridge envelopes (their `detail`).
/// Digest files and files that are not JSON are left out.
pub fn real_records(dir: &Path) -> io::Result<Vec<Value>> {
    let mut paths = Vec::new();
    walk(dir, &mut paths)?;
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let name = p.to_string_lossy();
        if name.contains("Digest") || !(name.ends_with(".json") || name.ends_with(".json.gz")) {
            continue;
        }
        let raw = std::fs::read(&p)?;
        let text = if name.ends_with(".gz") {
            let mut s = Vec::new();
            io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&raw[..]), &mut s)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
            s
        } else {
            raw
        };
        let Ok(doc) = serde_json::from_slice::<Value>(&text) else {
            continue;
        };
        match doc {
            Value::Array(items) => out.extend(items.into_iter().filter(Value::is_object)),
            Value::Object(mut o) => {
                if let Some(Value::Array(rs)) = o.remove("Records") {
                    out.extend(rs);
                } else if let Some(d @ Value::Object(_)) = o.remove("detail") {
                    out.push(d);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for e in std::fs::read_dir(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?
    {
        let p = e?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// SplitMix64: small, fast, and the same sequence on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn uuid(&mut self) -> uuid::Uuid {
        uuid::Uuid::from_u128((u128::from(self.next()) << 64) | u128::from(self.next()))
    }

    fn hex(&mut self, len: usize) -> String {
        let mut s = self.uuid().simple().to_string();
        s.truncate(len);
        s
    }
}

fn timestamp(secs_after_start: u64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(START_UNIX + secs_after_start as i64)
        .expect("corpus times stay within the calendar")
}

fn iso(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[derive(Clone, Copy, PartialEq)]
enum Caller {
    Launcher,
    Agent,
    User,
}

fn identity(who: Caller, rng: &mut Rng) -> Value {
    match who {
        Caller::Launcher => json!({
            "type": "AssumedRole",
            "principalId": format!("AROAEXAMPLELAUNCHER:{LAUNCHER_SESSION}"),
            "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/Contro1MicrovmLauncher/{LAUNCHER_SESSION}"),
            "accountId": ACCOUNT,
            "accessKeyId": format!("ASIAEXAMPLE{:08}", rng.below(100_000_000)),
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": "AROAEXAMPLELAUNCHER",
                    "arn": LAUNCHER_ROLE_ARN,
                    "accountId": ACCOUNT,
                    "userName": "Contro1MicrovmLauncher"
                },
                "attributes": {"creationDate": "2026-11-01T00:00:00Z", "mfaAuthenticated": "false"}
            }
        }),
        Caller::Agent => json!({
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLEAGENT:agent-ci-run",
            "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/AgentCiRole/agent-ci-run"),
            "accountId": ACCOUNT,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "arn": format!("arn:aws:iam::{ACCOUNT}:role/AgentCiRole"),
                    "accountId": ACCOUNT,
                    "userName": "AgentCiRole"
                }
            }
        }),
        Caller::User => json!({
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLEDEV",
            "arn": format!("arn:aws:iam::{ACCOUNT}:user/dev-alice"),
            "accountId": ACCOUNT,
            "userName": "dev-alice"
        }),
    }
}

/// One governed call at `when`, and the finding it must raise when it is a bypass.
fn governed_call(rng: &mut Rng, when: &str) -> (Value, Option<ExpectedFinding>) {
    const OPS: [&str; 7] = [
        "RunMicrovm",
        "RunMicrovm",
        "CreateMicrovmAuthToken",
        "CreateMicrovmShellAuthToken",
        "SuspendMicrovm",
        "ResumeMicrovm",
        "TerminateMicrovm",
    ];
    const WHO: [Caller; 5] = [
        Caller::Launcher,
        Caller::Launcher,
        Caller::Launcher,
        Caller::Agent,
        Caller::User,
    ];
    let op = *rng.pick(&OPS);
    let who = *rng.pick(&WHO);
    let vm = format!("microvm-{}", rng.hex(20));
    let request_id = format!("req_{}", rng.hex(16));
    let params = if op == "RunMicrovm" {
        let client_token = if who == Caller::Launcher {
            request_id.clone()
        } else {
            rng.uuid().to_string()
        };
        let mut p = json!({
            "imageIdentifier": IMAGE,
            "imageVersion": "1.0",
            "executionRoleArn": EXEC_ROLE,
            "clientToken": client_token,
        });
        if who == Caller::Launcher {
            p["runHookPayload"] = Value::String(
                json!({"contro1_request_id": request_id, "agent_id": "agent-ci"}).to_string(),
            );
        }
        p
    } else if op.ends_with("AuthToken") {
        json!({"microvmIdentifier": vm, "expirationInMinutes": 15})
    } else {
        json!({"microvmIdentifier": vm})
    };
    // Three in ten direct calls are denied: a denied bypass attempt is still reported.
    let failed = who != Caller::Launcher && rng.below(10) < 3;
    let response = if failed || op != "RunMicrovm" {
        Value::Null
    } else {
        json!({
            "microvmId": vm,
            "state": "PENDING",
            "imageArn": IMAGE,
            "imageVersion": "1.0",
            "endpoint": format!("{vm}.lambda-microvm.{REGION}.on.aws"),
        })
    };
    let mut rec = json!({
        "eventVersion": "1.11",
        "userIdentity": identity(who, rng),
        "eventTime": when,
        "eventSource": "lambda.amazonaws.com",
        "eventName": op,
        "awsRegion": REGION,
        "sourceIPAddress": format!("203.0.113.{}", 1 + rng.below(254)),
        "userAgent": "aws-sdk-rust/1.3 os/linux lang/rust/1.95",
        "requestParameters": params,
        "responseElements": response,
        "requestID": rng.uuid().to_string(),
        "eventID": rng.uuid().to_string(),
        "readOnly": false,
        "resources": [{"type": "AWS::Lambda::MicrovmImage", "ARN": IMAGE}],
        "eventType": "AwsApiCall",
        "managementEvent": false,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Data",
    });
    if failed {
        rec["errorCode"] = json!("AccessDenied");
        rec["errorMessage"] = json!(format!("User is not authorized to perform: lambda:{op}"));
    }
    let expected = (who != Caller::Launcher).then(|| ExpectedFinding {
        event_id: rec["eventID"].as_str().unwrap().to_string(),
        event_name: op.to_string(),
        event: "aws.microvm.bypass.detected".to_string(),
        rule: "non-launcher-principal".to_string(),
    });
    (rec, expected)
}

/// Writes the corpus into `out` (created if missing) from the records under `source`.
///
/// # Errors
/// When `source` holds no CloudTrail record, or a file cannot be read or written; the message
/// names the path.
pub fn generate(out: &Path, source: &Path, opts: &CorpusOptions) -> io::Result<CorpusSummary> {
    let pool = real_records(source)?;
    if pool.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no CloudTrail records found under {}", source.display()),
        ));
    }
    let every = opts.microvm_every.max(1);
    let per_file = opts.per_file.max(1);
    let mut rng = Rng(opts.seed);
    let mut expected = Vec::new();
    let mut s = CorpusSummary {
        records: opts.records,
        files: 0,
        governed_calls: 0,
        expected_findings: 0,
        expected_bypass: 0,
        uncompressed_bytes: 0,
        gzip_bytes: 0,
        launcher_role_arn: LAUNCHER_ROLE_ARN.to_string(),
        launcher_session_name: LAUNCHER_SESSION.to_string(),
        seed: opts.seed,
    };
    let mut n = 0;
    while n < opts.records {
        let count = per_file.min(opts.records - n);
        let mut batch = Vec::with_capacity(count as usize);
        for i in n..n + count {
            let when = iso(timestamp(i / 10));
            if i % every == every - 1 {
                let (rec, finding) = governed_call(&mut rng, &when);
                s.governed_calls += 1;
                expected.extend(finding);
                batch.push(rec);
            } else {
                let mut rec = rng.pick(&pool).clone();
                rec["eventID"] = json!(rng.uuid().to_string());
                rec["requestID"] = json!(rng.uuid().to_string());
                rec["eventTime"] = json!(when);
                let source = rec["eventSource"].as_str().unwrap_or_default();
                let name = rec["eventName"].as_str().unwrap_or_default();
                if let Some(rule) = unconfigured_change_rule(source, name) {
                    expected.push(ExpectedFinding {
                        event_id: rec["eventID"].as_str().unwrap().to_string(),
                        event_name: name.to_string(),
                        event: "aws.microvm.governance.tampered".to_string(),
                        rule: rule.to_string(),
                    });
                }
                batch.push(rec);
            }
        }
        let body = serde_json::to_vec(&json!({ "Records": batch }))?;
        let first = timestamp(n / 10);
        let day = format!(
            "{:04}/{:02}/{:02}",
            first.year(),
            u8::from(first.month()),
            first.day()
        );
        let dir = out
            .join("AWSLogs/o-example")
            .join(ACCOUNT)
            .join("CloudTrail")
            .join(REGION)
            .join(day);
        std::fs::create_dir_all(&dir)?;
        let stamp = format!(
            "{:04}{:02}{:02}T{:02}{:02}Z",
            first.year(),
            u8::from(first.month()),
            first.day(),
            first.hour(),
            first.minute()
        );
        let name = format!(
            "{ACCOUNT}_CloudTrail_{REGION}_{stamp}_{}.json.gz",
            rng.hex(16)
        );
        let mut gz = GzEncoder::new(Vec::new(), Compression::new(6));
        gz.write_all(&body)?;
        let gz = gz.finish()?;
        std::fs::write(dir.join(name), &gz)?;
        s.files += 1;
        s.uncompressed_bytes += body.len() as u64;
        s.gzip_bytes += gz.len() as u64;
        n += count;
    }
    let mut lines = String::new();
    for e in &expected {
        lines.push_str(&serde_json::to_string(e)?);
        lines.push('\n');
    }
    std::fs::write(out.join(EXPECTED_FINDINGS), lines)?;
    s.expected_findings = expected.len() as u64;
    s.expected_bypass = expected
        .iter()
        .filter(|e| e.event == "aws.microvm.bypass.detected")
        .count() as u64;
    std::fs::write(out.join(SUMMARY), serde_json::to_string_pretty(&s)? + "\n")?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut paths = Vec::new();
        walk(dir, &mut paths).unwrap();
        paths.sort();
        paths
            .into_iter()
            .map(|p| {
                (
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn the_same_options_write_the_same_bytes_and_another_seed_does_not() {
        let base = std::env::temp_dir().join(crate::unique_name("corpus-det"));
        let opts = CorpusOptions {
            records: 3_000,
            per_file: 700,
            microvm_every: 40,
            seed: 3,
        };
        let a = generate(&base.join("a"), &crate::test_data_dir(), &opts).unwrap();
        let b = generate(&base.join("b"), &crate::test_data_dir(), &opts).unwrap();
        let c = generate(
            &base.join("c"),
            &crate::test_data_dir(),
            &CorpusOptions { seed: 4, ..opts },
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.files, 5);
        assert_eq!(a.governed_calls, 75);
        let fa = files_under(&base.join("a"));
        assert_eq!(fa, files_under(&base.join("b")));
        assert_ne!(fa, files_under(&base.join("c")));
        assert_ne!(a.expected_bypass, 0);
        assert!(c.expected_findings > 0);
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn a_source_without_records_is_an_error_naming_it() {
        let empty = std::env::temp_dir().join(crate::unique_name("corpus-empty"));
        std::fs::create_dir_all(&empty).unwrap();
        let err = generate(&empty.join("out"), &empty, &CorpusOptions::default()).unwrap_err();
        assert!(err.to_string().contains(&*empty.to_string_lossy()), "{err}");
        let _ = std::fs::remove_dir_all(empty);
    }
}
