//! The bypass rules, one behaviour per test (the tamper rules are in
//! `tamper.rs`).

#![allow(clippy::needless_pass_by_value)] // json! builders read their arguments by reference

use detector_core::{Classification, Classifier, ClassifierConfig, Outcome, Rule, Severity};
use serde_json::{Value, json};
use shared_core::{GovernedOp, RoleRef};

const ACCT: &str = "111122223333";

fn launcher_identity(role_path: &str, session: &str, acct: &str) -> Value {
    json!({
        "type": "AssumedRole",
        "principalId": format!("AROAEXAMPLE:{session}"),
        "arn": format!("arn:aws:sts::{acct}:assumed-role/microvm-launcher/{session}"),
        "accountId": acct,
        "sessionContext": {"sessionIssuer": {
            "type": "Role",
            "arn": format!("arn:aws:iam::{acct}:role{role_path}microvm-launcher"),
            "accountId": acct, "userName": "microvm-launcher"}}
    })
}

fn launcher() -> Value {
    launcher_identity("/", "microvm-launcher", ACCT)
}

fn user() -> Value {
    json!({"type": "IAMUser", "arn": format!("arn:aws:iam::{ACCT}:user/alice"), "accountId": ACCT})
}

fn record(name: &str, identity: Value, params: Value) -> Value {
    json!({
        "eventVersion": "1.11", "eventID": format!("id-{name}"), "eventTime": "2026-11-20T10:00:00Z",
        "eventSource": "lambda.amazonaws.com", "eventName": name, "awsRegion": "us-east-1",
        "userIdentity": identity, "requestParameters": params, "responseElements": null,
        "requestID": "req-1", "recipientAccountId": ACCT, "eventType": "AwsApiCall",
        "sourceIPAddress": "198.51.100.1", "userAgent": "test"
    })
}

fn run_params(token: Option<&str>, payload: Option<Value>) -> Value {
    let mut p = json!({"imageIdentifier": "arn:aws:lambda:us-east-1:111122223333:microvm-image:x"});
    if let Some(t) = token {
        p["clientToken"] = json!(t);
    }
    if let Some(pl) = payload {
        p["runHookPayload"] = pl;
    }
    p
}

fn payload(id: &str) -> Value {
    json!(json!({"contro1_request_id": id, "agent_id": "a"}).to_string())
}

fn classifier(roles: &[&str], sessions: &[&str]) -> Classifier {
    Classifier::new(ClassifierConfig {
        launcher_roles: roles
            .iter()
            .map(|r| RoleRef::from_role_arn(r).unwrap())
            .collect(),
        launcher_session_names: sessions.iter().map(|s| s.to_string()).collect(),
        ..ClassifierConfig::default()
    })
}

fn standard() -> Classifier {
    classifier(
        &["arn:aws:iam::111122223333:role/microvm-launcher"],
        &["microvm-launcher"],
    )
}

fn classify(c: &Classifier, v: &Value) -> Classification {
    c.classify_value(v, "test").unwrap()
}

fn rule(c: &Classifier, v: &Value) -> Option<Rule> {
    match classify(c, v) {
        Classification::Finding(f) => Some(f.rule),
        Classification::Managed(_) => None,
        other => panic!("not a governed call: {other:?}"),
    }
}

#[test]
fn launcher_run_with_matching_payload_and_client_token_is_managed_with_its_ids() {
    let v = record(
        "RunMicrovm",
        launcher(),
        run_params(Some("c1r_1"), Some(payload("c1r_1"))),
    );
    let mut v = v;
    v["responseElements"] = json!({"microvmId": "vm-9", "state": "PENDING"});
    match classify(&standard(), &v) {
        Classification::Managed(call) => {
            assert_eq!(call.op, GovernedOp::RunMicrovm);
            assert_eq!(call.contro1_request_id.as_deref(), Some("c1r_1"));
            assert_eq!(call.request_id, "req-1");
            assert_eq!(call.microvm_id.as_deref(), Some("vm-9"));
            assert_eq!(
                call.if_not_in_ledger.event_id.as_deref(),
                Some("id-RunMicrovm")
            );
            assert_eq!(
                call.if_not_in_ledger.rule,
                Rule::LauncherCredentialsOutsideLauncher
            );
            assert_eq!(call.outcome, Outcome::Succeeded);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_identity_type_other_than_the_launcher_role_is_non_launcher_principal() {
    let c = standard();
    let identities = [
        user(),
        json!({"type": "Root", "arn": format!("arn:aws:iam::{ACCT}:root"), "accountId": ACCT}),
        json!({"type": "AWSService", "invokedBy": "lambda.amazonaws.com"}),
        json!({"type": "FederatedUser", "arn": format!("arn:aws:sts::{ACCT}:federated-user/bob"),
               "sessionContext": {"sessionIssuer": {"type": "IAMUser", "arn": format!("arn:aws:iam::{ACCT}:user/bob")}}}),
        json!({"type": "AssumedRole", "arn": format!("arn:aws:sts::{ACCT}:assumed-role/other-role/microvm-launcher"),
               "sessionContext": {"sessionIssuer": {"type": "Role", "arn": format!("arn:aws:iam::{ACCT}:role/other-role")}}}),
        // same role name, another account
        launcher_identity("/", "microvm-launcher", "444455556666"),
        json!(null),
    ];
    for id in identities {
        let v = record(
            "TerminateMicrovm",
            id.clone(),
            json!({"microvmIdentifier": "vm-1"}),
        );
        assert_eq!(rule(&c, &v), Some(Rule::NonLauncherPrincipal), "{id}");
    }
}

#[test]
fn launcher_role_in_an_unlisted_session_is_launcher_session_mismatch() {
    let c = standard();
    let v = record(
        "TerminateMicrovm",
        launcher_identity("/", "alice", ACCT),
        json!({"microvmIdentifier": "vm-1"}),
    );
    assert_eq!(rule(&c, &v), Some(Rule::LauncherSessionMismatch));
    // without configured session names any session of the role is the launcher
    let any = classifier(&["arn:aws:iam::111122223333:role/microvm-launcher"], &[]);
    assert_eq!(rule(&any, &v), None);
}

#[test]
fn launcher_run_with_a_visible_payload_lacking_a_usable_id_is_missing_contro1_request_id() {
    let c = standard();
    for bad in [
        json!("{\"agent_id\":\"a\"}"),
        json!("{\"contro1_request_id\":\"\"}"),
        json!("{\"contro1_request_id\":7}"),
        json!("not json at all"),
        json!("[\"c1r_1\"]"),
        json!(""),
    ] {
        let v = record(
            "RunMicrovm",
            launcher(),
            run_params(Some("c1r_1"), Some(bad.clone())),
        );
        assert_eq!(rule(&c, &v), Some(Rule::MissingContro1RequestId), "{bad}");
    }
}

#[test]
fn hidden_or_absent_payload_is_not_a_finding_and_the_id_comes_from_client_token() {
    let c = standard();
    for p in [
        Some(json!("HIDDEN_DUE_TO_SECURITY_REASONS")),
        None,
        Some(json!(null)),
    ] {
        let v = record("RunMicrovm", launcher(), run_params(Some("c1r_2"), p));
        match classify(&c, &v) {
            Classification::Managed(call) => {
                assert_eq!(call.contro1_request_id.as_deref(), Some("c1r_2"));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn payload_id_differing_from_client_token_is_contro1_request_id_mismatch() {
    let c = standard();
    let v = record(
        "RunMicrovm",
        launcher(),
        run_params(Some("c1r_A"), Some(payload("c1r_B"))),
    );
    assert_eq!(rule(&c, &v), Some(Rule::Contro1RequestIdMismatch));
    // a hidden client token cannot contradict the payload
    let v = record(
        "RunMicrovm",
        launcher(),
        run_params(
            Some("HIDDEN_DUE_TO_SECURITY_REASONS"),
            Some(payload("c1r_B")),
        ),
    );
    assert_eq!(rule(&c, &v), None);
}

#[test]
fn first_matching_rule_wins() {
    let c = standard();
    // wrong session AND a bad payload: the session rule comes first
    let v = record(
        "RunMicrovm",
        launcher_identity("/", "alice", ACCT),
        run_params(Some("x"), Some(json!("{}"))),
    );
    assert_eq!(rule(&c, &v), Some(Rule::LauncherSessionMismatch));
    // a non-launcher with a payload mismatch is still non-launcher-principal
    let v = record(
        "RunMicrovm",
        user(),
        run_params(Some("a"), Some(payload("b"))),
    );
    assert_eq!(rule(&c, &v), Some(Rule::NonLauncherPrincipal));
}

#[test]
fn role_paths_must_agree_where_both_sides_carry_one() {
    let with_path = classifier(
        &["arn:aws:iam::111122223333:role/governance/microvm-launcher"],
        &[],
    );
    let v = record(
        "TerminateMicrovm",
        launcher_identity("/governance/", "s", ACCT),
        json!({}),
    );
    assert_eq!(rule(&with_path, &v), None);
    let v_root = record(
        "TerminateMicrovm",
        launcher_identity("/", "s", ACCT),
        json!({}),
    );
    assert_eq!(rule(&with_path, &v_root), Some(Rule::NonLauncherPrincipal));
    // no sessionIssuer: only the assumed-role ARN, which has no path, so it matches
    let mut v_no_issuer = v_root;
    v_no_issuer["userIdentity"]
        .as_object_mut()
        .unwrap()
        .remove("sessionContext");
    assert_eq!(rule(&with_path, &v_no_issuer), None);
    let other_account = classifier(
        &["arn:aws:iam::999999999999:role/governance/microvm-launcher"],
        &[],
    );
    assert_eq!(
        rule(&other_account, &v_no_issuer),
        Some(Rule::NonLauncherPrincipal)
    );
}

#[test]
fn session_name_is_the_last_segment_of_the_assumed_role_arn() {
    let c = standard();
    let mut id = launcher();
    id["arn"] = json!("arn:aws:sts::111122223333:assumed-role/microvm-launcher/microvm-launcher");
    let v = record("SuspendMicrovm", id, json!({}));
    assert_eq!(rule(&c, &v), None);
    let mut id = launcher();
    id["arn"] = json!("arn:aws:iam::111122223333:role/microvm-launcher");
    let v = record("SuspendMicrovm", id, json!({}));
    assert_eq!(rule(&c, &v), Some(Rule::LauncherSessionMismatch));
}

#[test]
fn severity_follows_the_table() {
    let c = standard();
    let cases = [
        ("CreateMicrovmShellAuthToken", false, Severity::Critical),
        ("RunMicrovm", false, Severity::High),
        ("CreateMicrovmAuthToken", false, Severity::High),
        ("SuspendMicrovm", false, Severity::Medium),
        ("ResumeMicrovm", false, Severity::Medium),
        ("TerminateMicrovm", false, Severity::Medium),
        ("CreateMicrovmShellAuthToken", true, Severity::Medium),
        ("RunMicrovm", true, Severity::Low),
        ("CreateMicrovmAuthToken", true, Severity::Low),
        ("TerminateMicrovm", true, Severity::Low),
    ];
    for (name, failed, want) in cases {
        let mut v = record(name, user(), json!({"microvmIdentifier": "vm"}));
        if failed {
            v["errorCode"] = json!("AccessDenied");
            v["errorMessage"] = json!("denied");
        }
        match classify(&c, &v) {
            Classification::Finding(f) => {
                assert_eq!(f.severity, want, "{name} failed={failed}");
                assert_eq!(
                    f.outcome,
                    Some(if failed {
                        Outcome::Failed
                    } else {
                        Outcome::Succeeded
                    })
                );
                assert_eq!(f.error_code.is_some(), failed);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn suffixed_event_names_are_matched_and_reported_normalised() {
    let c = standard();
    for name in ["RunMicrovm20250909", "RunMicrovm20250909v2"] {
        match classify(&c, &record(name, user(), json!({}))) {
            Classification::Finding(f) => assert_eq!(f.event_name.as_deref(), Some("RunMicrovm")),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn other_operations_and_sources_are_not_governed() {
    let c = standard();
    for name in [
        "GetMicrovm",
        "ListMicrovms",
        "CreateMicrovmImage",
        "CreateFunction20150331",
        "RunMicrovms",
    ] {
        assert_eq!(
            classify(&c, &record(name, user(), json!({}))),
            Classification::NotGoverned
        );
    }
    let mut v = record("RunMicrovm", user(), json!({}));
    v["eventSource"] = json!("ec2.amazonaws.com");
    assert_eq!(classify(&c, &v), Classification::NotGoverned);
    v["eventSource"] = json!("lambda-microvms.amazonaws.com");
    assert!(matches!(classify(&c, &v), Classification::Finding(_)));
}

#[test]
fn documentation_field_names_are_accepted_for_image_and_microvm_id() {
    let c = standard();
    let mut v = record(
        "RunMicrovm",
        user(),
        json!({"microvmImageArn": "arn:img:doc"}),
    );
    v["responseElements"] = json!({"microvmId": "vm-doc", "microvmState": "PENDING"});
    match classify(&c, &v) {
        Classification::Finding(f) => {
            assert_eq!(f.image_arn.as_deref(), Some("arn:img:doc"));
            assert_eq!(f.microvm_id.as_deref(), Some("vm-doc"));
        }
        other => panic!("{other:?}"),
    }
    let mut v = record("RunMicrovm", user(), json!({}));
    v["responseElements"] = json!({"microvmId": "vm-api", "imageArn": "arn:img:api"});
    match classify(&c, &v) {
        Classification::Finding(f) => {
            assert_eq!(f.image_arn.as_deref(), Some("arn:img:api"));
            assert_eq!(f.microvm_id.as_deref(), Some("vm-api"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn finding_serialises_with_the_contract_fields() {
    let c = standard();
    let mut v = record(
        "RunMicrovm",
        user(),
        run_params(Some("tok"), Some(payload("c1r_9"))),
    );
    v["responseElements"] = json!({"microvmId": "vm-1"});
    let Classification::Finding(f) = classify(&c, &v) else {
        panic!()
    };
    let j = serde_json::to_value(&f).unwrap();
    for key in [
        "event",
        "severity",
        "rule",
        "event_id",
        "event_name",
        "event_time",
        "outcome",
        "principal_arn",
        "account_id",
        "region",
        "microvm_id",
        "contro1_request_id_claimed",
        "contro1_request_id_ledger",
        "source",
        "aws_request_id",
        "identity_type",
        "access_key_id",
        "session_issuer_arn",
        "on_behalf_of",
        "invoked_by",
        "source_ip",
        "user_agent",
        "error_code",
        "image_arn",
        "image_version",
        "execution_role_arn",
        "network_connectors",
        "microvm_state",
        "incident_key",
        "recommended_action",
        "summary",
        "resource",
        "reason",
        "remediation",
    ] {
        assert!(j.get(key).is_some(), "missing {key} in {j}");
    }
    assert_eq!(j["event"], "aws.microvm.bypass.detected");
    assert_eq!(j["rule"], "non-launcher-principal");
    assert_eq!(j["severity"], "high");
    assert_eq!(j["outcome"], "succeeded");
    assert_eq!(j["contro1_request_id_claimed"], "c1r_9");
    assert_eq!(j["incident_key"], format!("microvm:{ACCT}:us-east-1:vm-1"));
    assert_eq!(j["account_id"], ACCT);
    assert_eq!(j["error_code"], Value::Null);
}

#[test]
fn a_governed_record_with_a_field_of_the_wrong_type_is_an_error_naming_the_field() {
    let c = standard();
    let mut v = record("RunMicrovm", user(), json!({}));
    v["userIdentity"]["arn"] = json!(42);
    let e = c.classify_value(&v, "t").unwrap_err().to_string();
    assert!(e.contains("userIdentity.arn"), "{e}");
    assert!(e.contains("number"), "{e}");
    // the same oddity on a record that is not governed is none of our business
    let mut v = record("GetObject", user(), json!({}));
    v["eventSource"] = json!("s3.amazonaws.com");
    v["userIdentity"]["arn"] = json!(42);
    assert_eq!(
        c.classify_value(&v, "t").unwrap(),
        Classification::NotGoverned
    );
}

// ---- organizations: launcher role patterns and trusted accounts ---------

fn in_account(mut v: Value, acct: &str) -> Value {
    v["recipientAccountId"] = json!(acct);
    v
}

#[test]
fn a_launcher_role_pattern_matches_the_role_in_the_account_of_the_call() {
    let c = classifier(
        &["arn:aws:iam::*:role/microvm-launcher"],
        &["microvm-launcher"],
    );
    for acct in [ACCT, "444455556666"] {
        let v = in_account(
            record(
                "TerminateMicrovm",
                launcher_identity("/", "microvm-launcher", acct),
                json!({"microvmIdentifier": "vm-1"}),
            ),
            acct,
        );
        assert_eq!(rule(&c, &v), None, "account {acct}: managed");
    }
}

#[test]
fn another_accounts_launcher_role_used_here_is_a_cross_account_non_launcher_principal() {
    for pattern in [
        "arn:aws:iam::*:role/microvm-launcher",
        "arn:aws:iam::444455556666:role/microvm-launcher",
    ] {
        let c = classifier(&[pattern], &["microvm-launcher"]);
        // Account B's launcher role, call recorded in account A.
        let v = in_account(
            record(
                "TerminateMicrovm",
                launcher_identity("/", "microvm-launcher", "444455556666"),
                json!({"microvmIdentifier": "vm-1"}),
            ),
            ACCT,
        );
        let Classification::Finding(f) = classify(&c, &v) else {
            panic!("{pattern}: expected a finding")
        };
        assert_eq!(f.rule, Rule::NonLauncherPrincipal, "{pattern}");
        let reason = f.reason.unwrap();
        assert!(
            reason.contains("cross-account")
                && reason.contains("444455556666")
                && reason.contains(ACCT),
            "{reason}"
        );
    }
}

#[test]
fn a_call_recorded_for_an_account_outside_the_organization_has_its_own_rule() {
    let mut cfg = ClassifierConfig {
        launcher_roles: vec![
            RoleRef::from_role_arn("arn:aws:iam::*:role/microvm-launcher").unwrap(),
        ],
        launcher_session_names: vec!["microvm-launcher".into()],
        ..ClassifierConfig::default()
    };
    cfg.organization_accounts = vec![ACCT.to_string()];
    let c = Classifier::new(cfg);
    let inside = in_account(
        record(
            "TerminateMicrovm",
            launcher(),
            json!({"microvmIdentifier": "vm-1"}),
        ),
        ACCT,
    );
    assert_eq!(rule(&c, &inside), None);
    let outside = in_account(
        record(
            "TerminateMicrovm",
            launcher_identity("/", "microvm-launcher", "999988887777"),
            json!({"microvmIdentifier": "vm-1"}),
        ),
        "999988887777",
    );
    assert_eq!(rule(&c, &outside), Some(Rule::AccountOutsideOrganization));
}
