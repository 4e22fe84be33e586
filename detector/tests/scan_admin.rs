//! `detector scan` on the administrator's paths (THREAT-MODEL.md T11–T19):
//! `fixtures/admin-paths/records.json` holds hand-made CloudTrail records
//! shaped as AWS documents each call (written by its `make.py`), labelled by
//! `eventID`: `pos-<rule>-<n>` must be reported under `<rule>`, `neg-<n>` must
//! not be. The scan runs with the flags of `flags.txt`, then with the same
//! lists given as the Lambda's environment variables.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/admin-paths")
}

/// Every environment variable a scan flag falls back to: none may leak in.
const ENVS: [&str; 16] = [
    "LAUNCHER_ROLE_ARNS",
    "LAUNCHER_SESSION_NAMES",
    "DEPLOYMENT_ROLE_ARNS",
    "PROTECTED_RESOURCES",
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
    "LEDGER_TABLE",
];

fn flags() -> Vec<String> {
    std::fs::read_to_string(dir().join("flags.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs the scan; answers `eventID -> (rule, severity)` and the stderr.
fn scan(args: &[String], env: &[(String, String)]) -> (BTreeMap<String, (String, String)>, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_detector"));
    for k in ENVS {
        c.env_remove(k);
    }
    let out = c
        .arg("scan")
        .args(args)
        .arg(dir().join("records.json"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{err}");
    let found = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| f[k].as_str().unwrap().to_string();
            (s("event_id"), (s("rule"), s("severity")))
        })
        .collect();
    (found, err)
}

fn labelled() -> Vec<(String, Option<String>)> {
    let v: Value =
        serde_json::from_slice(&std::fs::read(dir().join("records.json")).unwrap()).unwrap();
    v["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let id = r["eventID"].as_str().unwrap().to_string();
            let rule = id
                .strip_prefix("pos-")
                .map(|rest| rest.rsplit_once('-').unwrap().0.to_string());
            (id, rule)
        })
        .collect()
}

/// Every positive under its rule, no negative: answers (positives, negatives).
#[track_caller]
fn check(found: &BTreeMap<String, (String, String)>) -> (usize, usize) {
    let (mut pos, mut neg) = (0, 0);
    for (id, rule) in labelled() {
        match rule {
            Some(rule) => {
                pos += 1;
                let got = found.get(&id).map(|(r, _)| r.as_str());
                assert_eq!(got, Some(rule.as_str()), "{id} missed or misnamed");
            }
            None => {
                neg += 1;
                assert!(!found.contains_key(&id), "{id}: false positive {found:?}");
            }
        }
    }
    assert_eq!(found.len(), pos, "{found:?}");
    (pos, neg)
}

#[test]
fn every_administrators_path_is_reported_and_no_negative_twin_is() {
    let (found, err) = scan(&flags(), &[]);
    let (pos, neg) = check(&found);
    assert_eq!((pos, neg), (42, 31));
    assert!(err.contains(", 42 findings"), "{err}");
    // The deployment role's own UpdateStack is reported (who started it is
    // the only trace); KMS rotating its key is an AWS service's own change.
    assert!(err.contains("1 by an AWS service"), "{err}");
    // A refused LeaveOrganization is LOW; the one that went through CRITICAL.
    assert_eq!(found["pos-account-left-organization-1"].1, "critical");
    assert_eq!(found["pos-account-left-organization-2"].1, "low");
    // So is a refused DeleteStack of the governance stack.
    assert_eq!(found["pos-governance-stack-changed-7"].1, "low");
}

#[test]
fn the_same_lists_given_as_environment_variables_give_the_same_findings() {
    let mut args = Vec::new();
    let mut env: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in flags().chunks(2) {
        let var = match pair[0].as_str() {
            "--governance-stack" => "GOVERNANCE_STACKS",
            "--pipeline-principal-arn" => "PIPELINE_PRINCIPAL_ARNS",
            "--break-glass-role-arn" => "BREAK_GLASS_ROLE_ARNS",
            "--execution-role-arn" => "EXECUTION_ROLE_ARNS",
            "--prevention-policy-arn" => "PREVENTION_POLICY_ARNS",
            "--scp" => "SCP_IDS",
            "--contro1-secret" => "CONTRO1_SECRETS",
            "--alert-topic-arn" => "ALERT_TOPIC_ARN",
            "--detector-log-group" => "DETECTOR_LOG_GROUPS",
            "--detector-role-arn" => "DETECTOR_ROLE_ARNS",
            "--trail-bucket" => "TRAIL_BUCKETS",
            _ => {
                args.extend_from_slice(pair);
                continue;
            }
        };
        env.entry(var.into()).or_default().push(pair[1].clone());
    }
    assert_eq!(env.len(), 11, "every administrator's list is in flags.txt");
    let env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k, v.join(","))).collect();
    let (found, _) = scan(&args, &env);
    check(&found);
    assert_eq!(found, scan(&flags(), &[]).0);
}

#[test]
fn without_the_lists_only_leaving_the_organization_is_reported() {
    // The LeaveOrganization needs no configuration; every other rule
    // of the administrator's paths is off until its list is given.
    let (found, _) = scan(&[], &[]);
    let got: Vec<(&str, &str)> = found
        .iter()
        .map(|(id, (rule, _))| (id.as_str(), rule.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "pos-account-left-organization-1",
                "account-left-organization"
            ),
            (
                "pos-account-left-organization-2",
                "account-left-organization"
            ),
        ]
    );
}
