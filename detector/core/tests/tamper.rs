//! The tamper rules, on records shaped like real CloudTrail management events
//! (eventNames with their Lambda date suffixes, `requestParameters` field
//! names as CloudTrail writes them; compare `../shared/data/cloudtrail`),
//! each with its negative twins: the same call by the deployment role, the
//! same call on an unrelated resource, the benign form of the call.

#![allow(clippy::needless_pass_by_value)] // json! builders read their arguments by reference

use detector_core::{
    Classification, Classifier, ClassifierConfig, Exemption, Finding, FunctionRef, ResourceRef,
    Rule, Severity, TamperConfig,
};
use serde_json::{Value, json};
use shared_core::RoleRef;

const ACCT: &str = "111122223333";
const LAUNCHER_ROLE: &str = "arn:aws:iam::111122223333:role/microvm-gov/launcher/gov-launcher-role";
const DEPLOYER: &str = "arn:aws:iam::111122223333:role/cdk-deploy";
const LAUNCHER_FN: &str = "arn:aws:lambda:us-east-1:111122223333:function:gov-launcher";
const DETECTOR_FN: &str = "gov-detector";
const BUCKET: &str = "gov-trail-bucket";
const LEDGER: &str = "arn:aws:dynamodb:us-east-1:111122223333:table/gov-ledger";
const QUEUE: &str = "arn:aws:sqs:us-east-1:111122223333:gov-detector-queue";
const RULE_NAME: &str = "gov-microvm-api-calls";

fn classifier_with(trail_names: &[&str]) -> Classifier {
    Classifier::new(ClassifierConfig {
        launcher_roles: vec![RoleRef::from_role_arn(LAUNCHER_ROLE).unwrap()],
        launcher_session_names: vec!["gov-launcher".into()],
        tamper: TamperConfig {
            launcher_functions: vec![FunctionRef::parse(LAUNCHER_FN).unwrap()],
            detector_functions: vec![FunctionRef::parse(DETECTOR_FN).unwrap()],
            deployment_roles: vec![RoleRef::from_role_arn(DEPLOYER).unwrap()],
            protected_resources: [BUCKET, LEDGER, QUEUE, RULE_NAME]
                .iter()
                .map(|r| ResourceRef::parse(r).unwrap())
                .collect(),
            ledger_tables: vec![ResourceRef::parse(LEDGER).unwrap()],
            trail_names: trail_names.iter().map(|s| s.to_string()).collect(),
            admin: Default::default(),
        },
        organization_accounts: Vec::new(),
    })
}

fn classifier() -> Classifier {
    classifier_with(&[])
}

fn attacker() -> Value {
    json!({"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": format!("arn:aws:iam::{ACCT}:user/mallory"),
           "accountId": ACCT, "accessKeyId": "AKIAEXAMPLEMALLORY", "userName": "mallory"})
}

fn deployer() -> Value {
    json!({"type": "AssumedRole", "principalId": "AROADEPLOY:AWSCloudFormation",
           "arn": format!("arn:aws:sts::{ACCT}:assumed-role/cdk-deploy/AWSCloudFormation"),
           "accountId": ACCT, "accessKeyId": "ASIADEPLOY",
           "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROADEPLOY",
               "arn": DEPLOYER, "accountId": ACCT, "userName": "cdk-deploy"}},
           "invokedBy": "cloudformation.amazonaws.com"})
}

fn launcher() -> Value {
    json!({"type": "AssumedRole", "principalId": "AROALAUNCH:gov-launcher",
           "arn": format!("arn:aws:sts::{ACCT}:assumed-role/gov-launcher-role/gov-launcher"),
           "accountId": ACCT,
           "sessionContext": {"sessionIssuer": {"type": "Role", "arn": LAUNCHER_ROLE, "accountId": ACCT}}})
}

fn mgmt(source: &str, name: &str, who: Value, params: Value) -> Value {
    json!({
        "eventVersion": "1.09", "userIdentity": who, "eventTime": "2026-11-20T12:00:00Z",
        "eventSource": source, "eventName": name, "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.9", "userAgent": "aws-cli/2.17.0",
        "requestParameters": params, "responseElements": null,
        "requestID": format!("req-{name}"), "eventID": format!("ev-{name}"),
        "readOnly": false, "eventType": "AwsApiCall", "managementEvent": true,
        "recipientAccountId": ACCT, "eventCategory": "Management"
    })
}

fn verdict(v: &Value) -> Classification {
    classifier().classify_value(v, "test").unwrap()
}

fn finding(v: &Value) -> Finding {
    match verdict(v) {
        Classification::Finding(f) => f,
        other => panic!("expected a finding, got {other:?}"),
    }
}

fn assert_not_reported(v: &Value, why: &str) {
    match verdict(v) {
        Classification::NotGoverned | Classification::Exempt { .. } => {}
        other => panic!("{why}: expected no finding, got {other:?}"),
    }
}

fn assert_exempt_by_deployment(mut v: Value) {
    v["userIdentity"] = deployer();
    match verdict(&v) {
        Classification::Exempt {
            why: Exemption::Deployment,
            ..
        } => {}
        other => panic!("the deployment role's change must be counted, not reported: {other:?}"),
    }
}

// ---- the launcher and detector functions (T1) --------------------------

fn update_code(function: &str) -> Value {
    let mut v = mgmt(
        "lambda.amazonaws.com",
        "UpdateFunctionCode20150331v2",
        attacker(),
        json!({"fullyQualifiedArn": {"arnPrefix": {"partition": "aws", "region": "us-east-1", "account": ACCT},
                   "relativeId": {"functionName": function}, "functionQualifier": {}},
               "functionName": format!("arn:aws:lambda:us-east-1:{ACCT}:function:{function}"),
               "publish": true, "dryRun": false}),
    );
    v["responseElements"] = json!({"functionName": function,
        "functionArn": format!("arn:aws:lambda:us-east-1:{ACCT}:function:{function}:7"),
        "role": LAUNCHER_ROLE, "codeSha256": "Pt1c8vVaBygmNtAeSyjlpdy7r8nHRqJAAL++HEGlQkc=",
        "version": "7"});
    v
}

#[test]
fn replacing_the_launchers_code_is_a_critical_finding_naming_the_function_and_new_code() {
    let f = finding(&update_code("gov-launcher"));
    assert_eq!(f.rule, Rule::LauncherFunctionChanged);
    assert_eq!(f.event.as_str(), "aws.microvm.governance.tampered");
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.event_name.as_deref(), Some("UpdateFunctionCode"));
    assert_eq!(f.resource.as_deref(), Some(LAUNCHER_FN));
    assert!(f.reason.as_deref().unwrap().contains("Pt1c8vVa"), "{f:?}");
    assert_eq!(f.access_key_id.as_deref(), Some("AKIAEXAMPLEMALLORY"));
    assert_eq!(f.account_id.as_deref(), Some(ACCT));
    assert_eq!(f.incident_key, "event:ev-UpdateFunctionCode20150331v2");
}

#[test]
fn the_same_code_change_by_the_deployment_role_or_on_another_function_is_not_reported() {
    assert_exempt_by_deployment(update_code("gov-launcher"));
    assert_eq!(
        verdict(&update_code("some-other-function")),
        Classification::NotGoverned
    );
    // Same name in another account: not our launcher.
    let mut v = update_code("gov-launcher");
    v["requestParameters"]["functionName"] =
        json!("arn:aws:lambda:us-east-1:444455556666:function:gov-launcher");
    v["recipientAccountId"] = json!("444455556666");
    assert_eq!(verdict(&v), Classification::NotGoverned);
}

#[test]
fn detector_configuration_concurrency_and_event_source_mapping_changes_are_findings() {
    let mut cfg = mgmt(
        "lambda.amazonaws.com",
        "UpdateFunctionConfiguration20150331v2",
        attacker(),
        json!({"functionName": "gov-detector", "environment": {"variables": {"LEDGER_TABLE": "empty-table"}},
               "layers": ["arn:aws:lambda:us-east-1:111122223333:layer:x:1"]}),
    );
    cfg["responseElements"] = json!({"functionName": "gov-detector"});
    let f = finding(&cfg);
    assert_eq!(f.rule, Rule::DetectorFunctionChanged);
    assert_eq!(f.severity, Severity::High);
    let reason = f.reason.unwrap();
    assert!(reason.contains("LEDGER_TABLE"), "{reason}");
    assert!(
        !reason.contains("empty-table"),
        "environment values are never copied: {reason}"
    );

    let zero = mgmt(
        "lambda.amazonaws.com",
        "PutFunctionConcurrency20171031",
        attacker(),
        json!({"functionName": "gov-detector", "reservedConcurrentExecutions": 0}),
    );
    let f = finding(&zero);
    assert_eq!(f.rule, Rule::DetectorFunctionChanged);
    assert!(f.reason.unwrap().contains("set to 0"));

    // Deleted by UUID: only the response names the function.
    let mut esm = mgmt(
        "lambda.amazonaws.com",
        "DeleteEventSourceMapping20150331",
        attacker(),
        json!({"uUID": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"}),
    );
    esm["responseElements"] = json!({"uUID": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111",
        "eventSourceArn": QUEUE, "state": "Deleting",
        "functionArn": format!("arn:aws:lambda:us-east-1:{ACCT}:function:gov-detector")});
    let f = finding(&esm);
    assert_eq!(f.rule, Rule::DetectorFunctionChanged);
    assert!(f.reason.unwrap().contains("deleted"));
    let mut other = esm.clone();
    other["responseElements"]["functionArn"] = json!(format!(
        "arn:aws:lambda:us-east-1:{ACCT}:function:unrelated"
    ));
    assert_eq!(verdict(&other), Classification::NotGoverned);
    assert_exempt_by_deployment(esm);
}

#[test]
fn a_public_permission_on_the_launcher_is_a_finding_naming_the_principal() {
    let v = mgmt(
        "lambda.amazonaws.com",
        "AddPermission20150331v2",
        attacker(),
        json!({"functionName": "gov-launcher", "statementId": "backdoor",
               "action": "lambda:InvokeFunction", "principal": "*"}),
    );
    let f = finding(&v);
    assert_eq!(f.rule, Rule::LauncherFunctionChanged);
    assert!(
        f.reason
            .unwrap()
            .contains("grants lambda:InvokeFunction to *")
    );
}

// ---- the launcher role (T2, T3) -----------------------------------------

fn create_function(name: &str, role: &str) -> Value {
    mgmt(
        "lambda.amazonaws.com",
        "CreateFunction20150331",
        attacker(),
        json!({"functionName": name, "runtime": "provided.al2023", "role": role,
               "handler": "bootstrap", "code": {"s3Bucket": "b", "s3Key": "k.zip"}, "publish": false}),
    )
}

#[test]
fn the_launcher_role_given_to_another_function_is_a_critical_finding() {
    let f = finding(&create_function("evil", LAUNCHER_ROLE));
    assert_eq!(f.rule, Rule::LauncherRolePassedToFunction);
    assert_eq!(f.severity, Severity::Critical);
    assert!(f.resource.unwrap().contains("evil"));
    let mut update = mgmt(
        "lambda.amazonaws.com",
        "UpdateFunctionConfiguration20150331v2",
        attacker(),
        json!({"functionName": "evil", "role": LAUNCHER_ROLE}),
    );
    assert_eq!(finding(&update).rule, Rule::LauncherRolePassedToFunction);
    update["requestParameters"]["role"] = json!("arn:aws:iam::111122223333:role/plain");
    assert_eq!(verdict(&update), Classification::NotGoverned);
    assert_eq!(
        verdict(&create_function(
            "fine",
            "arn:aws:iam::111122223333:role/plain"
        )),
        Classification::NotGoverned
    );
}

fn assume(who: Value, role: &str) -> Value {
    let mut v = mgmt(
        "sts.amazonaws.com",
        "AssumeRole",
        who,
        json!({"roleArn": role, "roleSessionName": "laptop", "durationSeconds": 3600}),
    );
    v["responseElements"] = json!({"credentials": {"accessKeyId": "ASIASECRETKEY",
        "sessionToken": "IQoJb3JpZ2luX2VjEXAMPLE", "expiration": "Nov 20, 2026, 1:00:00 PM"}});
    v
}

#[test]
fn the_launcher_role_assumed_from_a_laptop_is_critical_but_not_by_the_lambda_service() {
    let f = finding(&assume(attacker(), LAUNCHER_ROLE));
    assert_eq!(f.rule, Rule::LauncherRoleAssumed);
    assert_eq!(f.severity, Severity::Critical);
    assert!(
        f.reason.as_deref().unwrap().contains("user/mallory"),
        "{f:?}"
    );
    let j = serde_json::to_string(&f).unwrap();
    assert!(
        !j.contains("IQoJb3JpZ2lu"),
        "credentials are never evidence: {j}"
    );
    let lambda = json!({"type": "AWSService", "invokedBy": "lambda.amazonaws.com"});
    assert_eq!(
        verdict(&assume(lambda, LAUNCHER_ROLE)),
        Classification::NotGoverned
    );
    assert_eq!(
        verdict(&assume(attacker(), "arn:aws:iam::111122223333:role/other")),
        Classification::NotGoverned
    );
    // Even the deployment role has no business assuming it.
    assert!(matches!(
        verdict(&assume(deployer(), LAUNCHER_ROLE)),
        Classification::Finding(_)
    ));
}

#[test]
fn the_launcher_roles_trust_and_policies_changed_is_a_finding_in_its_own_account_only() {
    let trust = mgmt(
        "iam.amazonaws.com",
        "UpdateAssumeRolePolicy",
        attacker(),
        json!({"roleName": "gov-launcher-role",
               "policyDocument": "{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"*\"},\"Action\":\"sts:AssumeRole\"}]}"}),
    );
    let f = finding(&trust);
    assert_eq!(f.rule, Rule::LauncherRoleChanged);
    assert!(f.reason.unwrap().contains("trust policy"));
    let attach = mgmt(
        "iam.amazonaws.com",
        "AttachRolePolicy",
        attacker(),
        json!({"roleName": "gov-launcher-role", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
    );
    assert!(
        finding(&attach)
            .reason
            .unwrap()
            .contains("AdministratorAccess")
    );
    let mut other = trust.clone();
    other["requestParameters"]["roleName"] = json!("some-role");
    assert_eq!(verdict(&other), Classification::NotGoverned);
    let mut foreign = trust.clone();
    foreign["recipientAccountId"] = json!("444455556666");
    assert_eq!(verdict(&foreign), Classification::NotGoverned);
    assert_exempt_by_deployment(trust);
}

// ---- the pipeline's resources and the ledger (T4, T6, T7) -------------

#[test]
fn removing_the_trail_buckets_notification_is_a_finding_but_reading_it_is_not() {
    let v = mgmt(
        "s3.amazonaws.com",
        "PutBucketNotificationConfiguration",
        attacker(),
        json!({"bucketName": BUCKET, "NotificationConfiguration": {"xmlns": "http://s3.amazonaws.com/doc/2006-03-01/"},
               "notification": ""}),
    );
    let f = finding(&v);
    assert_eq!(f.rule, Rule::ProtectedResourceChanged);
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.resource.as_deref(), Some(BUCKET));
    assert!(f.reason.unwrap().contains("requestParameters.bucketName"));
    let mut other = v.clone();
    other["requestParameters"]["bucketName"] = json!("someone-elses-bucket");
    assert_eq!(verdict(&other), Classification::NotGoverned);
    let mut read = v.clone();
    read["eventName"] = json!("GetBucketNotification");
    read["readOnly"] = json!(true);
    assert_eq!(verdict(&read), Classification::NotGoverned);
    assert_exempt_by_deployment(v);
}

#[test]
fn disabling_the_rule_purging_the_queue_and_deleting_the_ledger_are_findings() {
    let disable = mgmt(
        "events.amazonaws.com",
        "DisableRule",
        attacker(),
        json!({"name": RULE_NAME}),
    );
    assert_eq!(finding(&disable).rule, Rule::ProtectedResourceChanged);
    let purge = mgmt(
        "sqs.amazonaws.com",
        "PurgeQueue",
        attacker(),
        json!({"queueUrl": format!("https://sqs.us-east-1.amazonaws.com/{ACCT}/gov-detector-queue")}),
    );
    assert_eq!(finding(&purge).resource.as_deref(), Some(QUEUE));
    let delete = mgmt(
        "dynamodb.amazonaws.com",
        "DeleteTable",
        attacker(),
        json!({"tableName": "gov-ledger"}),
    );
    assert_eq!(finding(&delete).resource.as_deref(), Some(LEDGER));
    let policy = mgmt(
        "dynamodb.amazonaws.com",
        "PutResourcePolicy",
        attacker(),
        json!({"resourceArn": LEDGER, "policy": "{}"}),
    );
    assert_eq!(finding(&policy).rule, Rule::ProtectedResourceChanged);
}

fn put_item(who: Value, table: &str) -> Value {
    let mut v = mgmt(
        "dynamodb.amazonaws.com",
        "PutItem",
        who,
        json!({"tableName": table, "key": {"pk": "HIDDEN_DUE_TO_SECURITY_REASONS"}}),
    );
    v["eventCategory"] = json!("Data");
    v["managementEvent"] = json!(false);
    v["resources"] = json!([{"accountId": ACCT, "type": "AWS::DynamoDB::Table", "ARN": LEDGER}]);
    v
}

#[test]
fn a_ledger_item_written_by_anyone_but_the_launcher_is_a_critical_finding() {
    let f = finding(&put_item(attacker(), "gov-ledger"));
    assert_eq!(f.rule, Rule::LedgerWrittenOutsideLauncher);
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(
        verdict(&put_item(launcher(), "gov-ledger")),
        Classification::NotGoverned
    );
    assert_eq!(
        verdict(&put_item(attacker(), "another-table")),
        Classification::NotGoverned,
        "a data event on an unrelated table, even one whose resources name nothing protected"
    );
    let batch = mgmt(
        "dynamodb.amazonaws.com",
        "BatchWriteItem",
        attacker(),
        json!({"requestItems": {"gov-ledger": [{"putRequest": {"item": {}}}]}}),
    );
    let mut batch = batch;
    batch["eventCategory"] = json!("Data");
    assert_eq!(finding(&batch).rule, Rule::LedgerWrittenOutsideLauncher);
}

// ---- CloudTrail itself (T5) ----------------------------------------------

fn trail_call(name: &str, who: Value, params: Value) -> Value {
    mgmt("cloudtrail.amazonaws.com", name, who, params)
}

#[test]
fn stopping_or_deleting_the_trail_is_critical_and_a_refused_attempt_is_low() {
    let stop = trail_call(
        "StopLogging",
        attacker(),
        json!({"name": "arn:aws:cloudtrail:us-east-1:111122223333:trail/gov-trail"}),
    );
    let f = finding(&stop);
    assert_eq!(
        (f.rule, f.severity),
        (Rule::TrailStopped, Severity::Critical)
    );
    assert_eq!(
        f.resource.as_deref(),
        Some("arn:aws:cloudtrail:us-east-1:111122223333:trail/gov-trail")
    );
    let mut refused = stop.clone();
    refused["errorCode"] = json!("AccessDenied");
    assert_eq!(finding(&refused).severity, Severity::Low);
    let delete = trail_call("DeleteTrail", attacker(), json!({"name": "gov-trail"}));
    assert_eq!(finding(&delete).rule, Rule::TrailDeleted);
    assert_exempt_by_deployment(stop);
}

fn selectors(advanced: Value) -> Value {
    trail_call(
        "PutEventSelectors",
        attacker(),
        json!({"trailName": "gov-trail", "advancedEventSelectors": advanced}),
    )
}

#[test]
fn put_event_selectors_is_judged_by_the_selectors_it_sets() {
    let dropped = selectors(json!([
        {"name": "Management events", "fieldSelectors": [{"field": "eventCategory", "equals": ["Management"]}]}
    ]));
    let f = finding(&dropped);
    assert_eq!(f.rule, Rule::TrailSelectorsChanged);
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(
        f.resource.as_deref(),
        Some("gov-trail"),
        "named from trailName"
    );
    assert!(
        f.reason
            .unwrap()
            .contains("MicroVM data events are no longer selected")
    );
    let read_only = selectors(json!([
        {"name": "MicroVMs", "fieldSelectors": [
            {"field": "eventCategory", "equals": ["Data"]},
            {"field": "resources.type", "equals": ["AWS::Lambda::MicrovmImage"]},
            {"field": "readOnly", "equals": ["true"]}]}
    ]));
    assert!(
        finding(&read_only)
            .reason
            .unwrap()
            .contains("readOnly = true")
    );
    let kept = selectors(json!([
        {"name": "Management events", "fieldSelectors": [{"field": "eventCategory", "equals": ["Management"]}]},
        {"name": "MicroVMs", "fieldSelectors": [
            {"field": "eventCategory", "equals": ["Data"]},
            {"field": "resources.type", "equals": ["AWS::Lambda::MicrovmImage"]}]}
    ]));
    assert_eq!(
        verdict(&kept),
        Classification::Exempt {
            rule: Rule::TrailSelectorsChanged,
            why: Exemption::CoverageKept
        }
    );
    // Basic selectors cannot select MicroVM data events (the stratus-red-team shape).
    let basic = trail_call(
        "PutEventSelectors",
        attacker(),
        json!({"trailName": "gov-trail", "eventSelectors": [{"readWriteType": "ReadOnly",
            "includeManagementEvents": false, "dataResources": [{"type": "AWS::S3::Object", "values": []}]}]}),
    );
    assert!(finding(&basic).reason.unwrap().contains("only basic"));
}

#[test]
fn update_trail_says_what_it_changed_and_a_redirect_is_high() {
    let redirect = trail_call(
        "UpdateTrail",
        attacker(),
        json!({"name": "gov-trail", "s3BucketName": "attacker-bucket"}),
    );
    let f = finding(&redirect);
    assert_eq!((f.rule, f.severity), (Rule::TrailUpdated, Severity::High));
    assert!(f.reason.unwrap().contains("attacker-bucket"));
    let same_bucket = trail_call(
        "UpdateTrail",
        attacker(),
        json!({"name": "gov-trail", "s3BucketName": BUCKET}),
    );
    assert_eq!(finding(&same_bucket).severity, Severity::Medium);
    let cw = trail_call(
        "UpdateTrail",
        attacker(),
        json!({"name": "gov-trail", "cloudWatchLogsLogGroupArn": "arn:aws:logs:us-east-1:111122223333:log-group:x:*"}),
    );
    let f = finding(&cw);
    assert_eq!(f.severity, Severity::Medium);
    assert!(f.reason.unwrap().contains("cloudWatchLogsLogGroupArn"));
    let single = trail_call(
        "UpdateTrail",
        attacker(),
        json!({"name": "gov-trail", "isMultiRegionTrail": false}),
    );
    assert_eq!(finding(&single).severity, Severity::High);
}

#[test]
fn with_trail_names_configured_only_their_changes_count() {
    let c = classifier_with(&["arn:aws:cloudtrail:us-east-1:111122223333:trail/gov-trail"]);
    let ours = trail_call("StopLogging", attacker(), json!({"name": "gov-trail"}));
    assert!(matches!(
        c.classify_value(&ours, "t").unwrap(),
        Classification::Finding(_)
    ));
    let theirs = trail_call("StopLogging", attacker(), json!({"name": "team-x-trail"}));
    assert_eq!(
        c.classify_value(&theirs, "t").unwrap(),
        Classification::NotGoverned
    );
}

#[test]
fn start_logging_and_create_trail_are_not_tampering() {
    for name in ["StartLogging", "CreateTrail", "DescribeTrails"] {
        let mut v = trail_call(name, attacker(), json!({"name": "gov-trail"}));
        if name == "DescribeTrails" {
            v["readOnly"] = json!(true);
        }
        assert_not_reported(&v, name);
    }
}

// ---- an organization: one role name in every account ---------------------

fn stackset_exec(account: &str) -> Value {
    let role = format!("arn:aws:iam::{account}:role/stacksets-exec-microvm-gov");
    json!({"type": "AssumedRole", "principalId": "AROASTACKSET:CloudFormation",
           "arn": format!("arn:aws:sts::{account}:assumed-role/stacksets-exec-microvm-gov/CloudFormation"),
           "accountId": account,
           "sessionContext": {"sessionIssuer": {"type": "Role", "arn": role, "accountId": account}}})
}

#[test]
fn a_deployment_role_with_any_account_exempts_that_role_in_the_account_of_the_call_only() {
    // StackSets deploy the same stack into every member account with the
    // same execution role name: `arn:aws:iam::*:role/NAME` names it once.
    let member = "999988887777";
    let c = Classifier::new(ClassifierConfig {
        tamper: TamperConfig {
            detector_functions: vec![FunctionRef::parse(DETECTOR_FN).unwrap()],
            deployment_roles: vec![
                RoleRef::from_role_arn("arn:aws:iam::*:role/stacksets-exec-microvm-gov").unwrap(),
            ],
            ..TamperConfig::default()
        },
        ..ClassifierConfig::default()
    });
    let change = |who: Value| {
        let mut v = mgmt(
            "lambda.amazonaws.com",
            "UpdateFunctionConfiguration20150331v2",
            who,
            json!({"functionName": DETECTOR_FN, "environment": {}}),
        );
        v["recipientAccountId"] = json!(member);
        v
    };
    match c
        .classify_value(&change(stackset_exec(member)), "t")
        .unwrap()
    {
        Classification::Exempt {
            why: Exemption::Deployment,
            ..
        } => {}
        other => panic!("the member's own execution role deploys: {other:?}"),
    }
    // The same role name of another account acting in this one is not the
    // deployment of this account.
    match c.classify_value(&change(stackset_exec(ACCT)), "t").unwrap() {
        Classification::Finding(f) => assert_eq!(f.rule, Rule::DetectorFunctionChanged),
        other => panic!("another account's role: {other:?}"),
    }
}
