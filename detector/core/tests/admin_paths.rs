//! The administrator's paths around the protected resources (THREAT-MODEL.md
//! T11–T19), each on its CloudTrail record as AWS documents the call
//! (field names and shapes from the service's "CloudTrail log entries" page,
//! cited beside each builder), with negative twins: the pipeline principal's
//! own deploy, the same call on an unrelated resource, the read-only call.
//!
//! Rules are compared by id (`f.rule.as_str()`), as every output carries it.

#![allow(clippy::needless_pass_by_value)] // json! builders read their arguments by reference

use detector_core::{Classification, Classifier, Finding, Severity};
use serde_json::{Value, json};

mod admin_common;
use admin_common::*;

fn verdict(v: &Value) -> Classification {
    classifier().classify_value(v, "test").unwrap()
}

#[track_caller]
fn finding(v: &Value, rule: &str) -> Finding {
    match verdict(v) {
        Classification::Finding(f) => {
            assert_eq!(f.rule.as_str(), rule, "{f:?}");
            assert_eq!(f.event.as_str(), "aws.microvm.governance.tampered");
            f
        }
        other => panic!(
            "{} {}: expected a `{rule}` finding, got {other:?}",
            v["eventSource"], v["eventName"]
        ),
    }
}

#[track_caller]
fn not_reported(v: &Value, why: &str) {
    match verdict(v) {
        Classification::NotGoverned | Classification::Exempt { .. } => {}
        other => panic!("{why}: expected no finding, got {other:?}"),
    }
}

fn _classifier_type_check(_: &Classifier) {}

// ---- T11: the governance stack -------------------------------------------

#[test]
fn updating_the_governance_stack_is_a_critical_finding_naming_who_started_it() {
    let f = finding(&update_stack(attacker(), STACK), "governance-stack-changed");
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(
        f.principal_arn.as_deref(),
        Some("arn:aws:iam::111122223333:user/mallory")
    );
    assert!(f.reason.as_deref().unwrap().contains("mallory"), "{f:?}");
}

#[test]
fn every_stack_operation_on_the_governance_stack_by_name_or_arn_is_a_finding() {
    for v in [
        cfn("DeleteStack", attacker(), json!({"stackName": STACK_ARN})),
        cfn(
            "CreateChangeSet",
            attacker(),
            json!({"stackName": STACK, "changeSetName": "widen-images", "changeSetType": "UPDATE",
                   "templateURL": "https://s3.amazonaws.com/mallory/template.yaml"}),
        ),
        cfn(
            "ExecuteChangeSet",
            attacker(),
            json!({"changeSetName": format!("arn:aws:cloudformation:us-east-1:{ACCT}:changeSet/widen-images/9edc39b0-ee18-440d-823e-EXAMPLE"),
                   "stackName": STACK}),
        ),
        cfn(
            "SetStackPolicy",
            attacker(),
            json!({"stackName": STACK, "stackPolicyBody": "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"Update:*\",\"Principal\":\"*\",\"Resource\":\"*\"}]}"}),
        ),
        cfn(
            "UpdateTerminationProtection",
            attacker(),
            json!({"stackName": STACK, "enableTerminationProtection": false}),
        ),
    ] {
        finding(&v, "governance-stack-changed");
    }
}

#[test]
fn the_deployment_roles_exemption_never_hides_who_started_a_stack_update() {
    // CloudFormation's service role is exempt from the other rules; the
    // stack operation it carries out is the only trace of who asked for it.
    let f = finding(&update_stack(deployer(), STACK), "governance-stack-changed");
    assert_eq!(f.principal_arn.as_deref(), Some(DEPLOYER_SESSION));
}

#[test]
fn the_pipeline_principals_own_deploy_another_stack_and_reads_are_not_reported() {
    not_reported(
        &update_stack(pipeline(), STACK),
        "the pipeline principal deploys the stack",
    );
    not_reported(&update_stack(attacker(), "some-app-stack"), "another stack");
    not_reported(
        &update_stack(
            attacker(),
            &format!("arn:aws:cloudformation:us-east-1:{ACCT}:stack/some-app-stack/1a2b"),
        ),
        "another stack by ARN",
    );
    let mut read = cfn("DescribeStacks", attacker(), json!({"stackName": STACK}));
    read["readOnly"] = json!(true);
    not_reported(&read, "reading the stack");
}

// ---- T12: the exempt roles and a break-glass session ----------------------

#[test]
fn changing_the_break_glass_or_deployment_roles_trust_or_policies_is_a_finding() {
    finding(
        &iam(
            "UpdateAssumeRolePolicy",
            attacker(),
            json!({"roleName": "gov-break-glass", "policyDocument": "{\"Statement\":[]}"}),
        ),
        "exempt-role-changed",
    );
    finding(
        &iam(
            "AttachRolePolicy",
            attacker(),
            json!({"roleName": "gov-deploy", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
        ),
        "exempt-role-changed",
    );
}

#[test]
fn creating_a_role_with_an_exempt_name_is_a_finding() {
    finding(
        &iam(
            "CreateRole",
            attacker(),
            json!({"roleName": "gov-break-glass", "path": "/",
                   "assumeRolePolicyDocument": "{\"Statement\":[]}"}),
        ),
        "exempt-role-changed",
    );
}

#[test]
fn a_break_glass_session_is_a_finding_by_assume_role_and_by_console_sign_in() {
    let f = finding(&assume_role(attacker(), BREAK_GLASS), "break-glass-session");
    assert_eq!(f.severity, Severity::High);
    finding(&console_login_as_break_glass(), "break-glass-session");
}

#[test]
fn other_roles_changes_reads_and_sessions_are_not_reported() {
    not_reported(
        &iam(
            "AttachRolePolicy",
            attacker(),
            json!({"roleName": "app-role", "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}),
        ),
        "an unrelated role",
    );
    let mut get = iam(
        "GetRole",
        attacker(),
        json!({"roleName": "gov-break-glass"}),
    );
    get["readOnly"] = json!(true);
    not_reported(&get, "reading the break-glass role");
    not_reported(
        &assume_role(attacker(), &format!("arn:aws:iam::{ACCT}:role/app-role")),
        "assuming an unrelated role",
    );
}

// ---- T13: the deny policy, the boundary, the SCP --------------------------

#[test]
fn new_versions_and_detachment_of_the_deny_policy_and_boundary_are_findings() {
    for v in [
        iam(
            "CreatePolicyVersion",
            attacker(),
            json!({"policyArn": DENY_POLICY, "policyDocument": "{\"Statement\":[]}", "setAsDefault": true}),
        ),
        iam(
            "SetDefaultPolicyVersion",
            attacker(),
            json!({"policyArn": DENY_POLICY, "versionId": "v1"}),
        ),
        iam(
            "DetachRolePolicy",
            attacker(),
            json!({"roleName": "app-role", "policyArn": DENY_POLICY}),
        ),
        iam("DeletePolicy", attacker(), json!({"policyArn": BOUNDARY})),
        iam(
            "DeleteRolePermissionsBoundary",
            attacker(),
            json!({"roleName": "app-role"}),
        ),
        iam(
            "DeleteUserPermissionsBoundary",
            attacker(),
            json!({"userName": "mallory"}),
        ),
    ] {
        let f = finding(&v, "prevention-policy-changed");
        assert_eq!(f.severity, Severity::Critical, "{f:?}");
    }
}

#[test]
fn replacing_a_boundary_with_another_policy_is_a_finding_setting_the_boundary_is_not() {
    // https://docs.aws.amazon.com/IAM/latest/APIReference/API_PutRolePermissionsBoundary.html
    let f = finding(
        &iam(
            "PutRolePermissionsBoundary",
            attacker(),
            json!({"roleName": "app-role",
                   "permissionsBoundary": "arn:aws:iam::aws:policy/AdministratorAccess"}),
        ),
        "prevention-policy-changed",
    );
    assert_eq!(f.severity, Severity::Critical);
    assert!(
        f.reason.as_deref().unwrap().contains("AdministratorAccess"),
        "{f:?}"
    );
    finding(
        &iam(
            "PutUserPermissionsBoundary",
            attacker(),
            json!({"userName": "mallory",
                   "permissionsBoundary": format!("arn:aws:iam::{ACCT}:policy/wide-open")}),
        ),
        "prevention-policy-changed",
    );
    not_reported(
        &iam(
            "PutRolePermissionsBoundary",
            attacker(),
            json!({"roleName": "app-role", "permissionsBoundary": BOUNDARY}),
        ),
        "the configured boundary set on a role",
    );
}

#[test]
fn scp_changes_are_findings_by_policy_id_and_by_arn() {
    finding(
        &orgs(
            "UpdatePolicy",
            attacker(),
            json!({"policyId": SCP_ID, "content": "{\"Statement\":[]}"}),
        ),
        "prevention-policy-changed",
    );
    finding(
        &orgs(
            "DetachPolicy",
            attacker(),
            json!({"policyId": SCP_ID, "targetId": "ou-ab12-cdef3456"}),
        ),
        "prevention-policy-changed",
    );
    finding(
        &orgs("DeletePolicy", attacker(), json!({"policyId": SCP_ID})),
        "prevention-policy-changed",
    );
}

#[test]
fn other_policies_and_reads_of_the_deny_policy_are_not_reported() {
    not_reported(
        &iam(
            "CreatePolicyVersion",
            attacker(),
            json!({"policyArn": format!("arn:aws:iam::{ACCT}:policy/app-policy"), "policyDocument": "{}"}),
        ),
        "another policy",
    );
    let mut get = iam(
        "GetPolicyVersion",
        attacker(),
        json!({"policyArn": DENY_POLICY, "versionId": "v2"}),
    );
    get["readOnly"] = json!(true);
    not_reported(&get, "reading the deny policy");
    not_reported(
        &orgs(
            "UpdatePolicy",
            attacker(),
            json!({"policyId": "p-otherpolicy", "content": "{}"}),
        ),
        "another SCP",
    );
    not_reported(
        &iam(
            "CreatePolicyVersion",
            deployer(),
            json!({"policyArn": DENY_POLICY, "policyDocument": "{}", "setAsDefault": true}),
        ),
        "the deployment role carrying out the pipeline's deploy",
    );
}

// ---- T14: the Contro1 secrets ----------------------------------------------

#[test]
fn writing_a_contro1_secret_is_a_finding_whichever_way_the_record_names_it() {
    // Configured by full ARN, written by name.
    finding(
        &secret("PutSecretValue", attacker(), "microvm-gov/contro1-api-key"),
        "contro1-secret-written",
    );
    // Configured by name, written by full ARN (random suffix) and by the
    // ARN without its suffix.
    finding(
        &secret(
            "UpdateSecret",
            attacker(),
            &format!(
                "arn:aws:secretsmanager:us-east-1:{ACCT}:secret:microvm-gov/contro1-webhook-Zx9Yw8"
            ),
        ),
        "contro1-secret-written",
    );
    finding(
        &secret(
            "PutResourcePolicy",
            attacker(),
            &format!("arn:aws:secretsmanager:us-east-1:{ACCT}:secret:microvm-gov/contro1-webhook"),
        ),
        "contro1-secret-written",
    );
    for name in [
        "DeleteResourcePolicy",
        "RotateSecret",
        "DeleteSecret",
        "UpdateSecretVersionStage",
    ] {
        finding(
            &secret(name, attacker(), API_KEY_SECRET),
            "contro1-secret-written",
        );
    }
}

#[test]
fn a_refused_secret_write_is_reported_at_low_severity() {
    let mut v = secret("PutSecretValue", attacker(), API_KEY_SECRET);
    v["errorCode"] = json!("AccessDenied");
    v["errorMessage"] = json!(
        "User: arn:aws:iam::111122223333:user/mallory is not authorized to perform: secretsmanager:PutSecretValue with an explicit deny"
    );
    assert_eq!(
        finding(&v, "contro1-secret-written").severity,
        Severity::Low
    );
}

#[test]
fn other_secrets_reads_and_the_pipelines_write_are_not_reported() {
    not_reported(
        &secret(
            "PutSecretValue",
            attacker(),
            "microvm-gov/contro1-api-keyring",
        ),
        "a secret whose name starts like ours",
    );
    not_reported(
        &secret(
            "PutSecretValue",
            attacker(),
            &format!("arn:aws:secretsmanager:us-east-1:{ACCT}:secret:app/db-password-AbCdEf"),
        ),
        "an unrelated secret",
    );
    let mut read = secret("GetSecretValue", attacker(), API_KEY_SECRET);
    read["readOnly"] = json!(true);
    not_reported(&read, "reading the secret");
    not_reported(
        &secret("PutSecretValue", pipeline(), API_KEY_SECRET),
        "the pipeline principal",
    );
}

// ---- T15: the alert topic and the detector's log group ---------------------

#[test]
fn unsubscribing_or_filtering_the_alert_topics_subscription_is_a_finding() {
    let sub = format!("{ALERT_TOPIC}:0a1b2c3d-4e5f-6789-abcd-ef0123456789");
    finding(
        &sns("Unsubscribe", attacker(), json!({"subscriptionArn": sub})),
        "alert-topic-changed",
    );
    finding(
        &sns(
            "SetSubscriptionAttributes",
            attacker(),
            json!({"subscriptionArn": sub, "attributeName": "FilterPolicy",
                   "attributeValue": "{\"never\":[\"matches\"]}"}),
        ),
        "alert-topic-changed",
    );
    finding(
        &sns(
            "Subscribe",
            attacker(),
            json!({"topicArn": ALERT_TOPIC, "protocol": "email", "endpoint": "mallory@example.com",
                   "returnSubscriptionArn": false}),
        ),
        "alert-topic-changed",
    );
    finding(
        &sns(
            "SetTopicAttributes",
            attacker(),
            json!({"topicArn": ALERT_TOPIC, "attributeName": "Policy", "attributeValue": "{}"}),
        ),
        "alert-topic-changed",
    );
    finding(
        &sns("DeleteTopic", attacker(), json!({"topicArn": ALERT_TOPIC})),
        "alert-topic-changed",
    );
}

#[test]
fn another_topics_subscription_and_reads_are_not_reported() {
    // A topic whose name starts with ours: its subscriptions are not ours.
    not_reported(
        &sns(
            "Unsubscribe",
            attacker(),
            json!({"subscriptionArn": format!("{ALERT_TOPIC}-archive:0a1b2c3d-4e5f-6789-abcd-ef0123456789")}),
        ),
        "another topic's subscription",
    );
    let mut read = sns(
        "ListSubscriptionsByTopic",
        attacker(),
        json!({"topicArn": ALERT_TOPIC}),
    );
    read["readOnly"] = json!(true);
    not_reported(&read, "listing the subscriptions");
}

#[test]
fn metric_filters_foreign_log_lines_and_deleting_the_detectors_log_group_are_findings() {
    finding(
        &logs(
            "PutMetricFilter",
            attacker(),
            json!({"logGroupName": LOG_GROUP, "filterName": "heartbeat",
                   "filterPattern": "\"objects_read\"", "metricTransformations": [{"metricName": "ObjectsRead", "metricNamespace": "MicrovmGov", "metricValue": "1"}]}),
        ),
        "detector-log-group-changed",
    );
    finding(
        &logs(
            "PutSubscriptionFilter",
            attacker(),
            json!({"logGroupName": LOG_GROUP, "filterName": "x", "filterPattern": "",
                   "destinationArn": "arn:aws:lambda:us-east-1:111122223333:function:drop"}),
        ),
        "detector-log-group-changed",
    );
    finding(
        &logs(
            "PutLogEvents",
            attacker(),
            json!({"logGroupName": LOG_GROUP, "logStreamName": "2026/11/20/[$LATEST]forged"}),
        ),
        "detector-log-group-changed",
    );
    finding(
        &logs(
            "DeleteLogGroup",
            attacker(),
            json!({"logGroupName": LOG_GROUP}),
        ),
        "detector-log-group-changed",
    );
}

#[test]
fn the_detectors_own_log_lines_and_other_log_groups_are_not_reported() {
    not_reported(
        &logs(
            "PutLogEvents",
            detector_role(),
            json!({"logGroupName": LOG_GROUP, "logStreamName": "2026/11/20/[$LATEST]abc"}),
        ),
        "the detector's own log lines",
    );
    not_reported(
        &logs(
            "PutMetricFilter",
            attacker(),
            json!({"logGroupName": "/aws/lambda/app", "filterName": "x", "filterPattern": ""}),
        ),
        "another log group",
    );
}

// ---- T17: the trail bucket -------------------------------------------------

#[test]
fn a_log_object_written_by_anyone_but_cloudtrail_is_a_finding() {
    for name in ["PutObject", "CopyObject", "DeleteObject"] {
        let f = finding(&s3_object(name, attacker()), "trail-object-written");
        assert_eq!(f.severity, Severity::Critical);
    }
}

#[test]
fn cloudtrails_own_delivery_and_other_buckets_are_not_reported() {
    not_reported(
        &s3_object("PutObject", cloudtrail_service()),
        "CloudTrail delivering",
    );
    let mut other = s3_object("PutObject", attacker());
    other["requestParameters"]["bucketName"] = json!("app-bucket");
    other["resources"] = json!([{"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::app-bucket/x.json"},
                                {"accountId": ACCT, "type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::app-bucket"}]);
    not_reported(&other, "another bucket");
    let mut get = s3_object("GetObject", attacker());
    get["readOnly"] = json!(true);
    not_reported(&get, "reading a log object");
}

// ---- T18: leaving the organization ------------------------------------------

#[test]
fn leaving_the_organization_is_a_finding_although_the_request_names_nothing() {
    let f = finding(&leave_organization(), "account-left-organization");
    assert_eq!(f.severity, Severity::Critical);
    finding(
        &orgs(
            "RemoveAccountFromOrganization",
            attacker(),
            json!({"accountId": "444455556666"}),
        ),
        "account-left-organization",
    );
    let mut read = orgs("DescribeOrganization", attacker(), Value::Null);
    read["readOnly"] = json!(true);
    not_reported(&read, "describing the organization");
}

// ---- T19: the allowed execution roles ----------------------------------------

#[test]
fn widening_an_allowed_execution_role_is_a_finding() {
    finding(
        &iam(
            "PutRolePolicy",
            attacker(),
            json!({"roleName": "microvm-exec-default", "policyName": "wide",
                   "policyDocument": "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}]}"}),
        ),
        "execution-role-changed",
    );
    finding(
        &iam(
            "UpdateAssumeRolePolicy",
            attacker(),
            json!({"roleName": "microvm-exec-default", "policyDocument": "{}"}),
        ),
        "execution-role-changed",
    );
    not_reported(
        &iam(
            "PutRolePolicy",
            pipeline(),
            json!({"roleName": "microvm-exec-default", "policyName": "p", "policyDocument": "{}"}),
        ),
        "the pipeline principal",
    );
}

// ---- T4 by PartiQL -------------------------------------------------------------

#[test]
fn a_partiql_insert_into_the_ledger_by_a_user_is_a_finding() {
    let f = finding(
        &partiql(
            "ExecuteStatement",
            attacker(),
            json!({"statement": "INSERT INTO \"gov-ledger\" value {'pk':'vm#mvm-forged','sk':***}"}),
        ),
        "ledger-written-outside-launcher",
    );
    assert_eq!(f.severity, Severity::Critical);
    finding(
        &partiql(
            "BatchExecuteStatement",
            attacker(),
            json!({"statements": [{"statement": "UPDATE \"gov-ledger\" SET status=*** WHERE pk='vm#x'"}]}),
        ),
        "ledger-written-outside-launcher",
    );
    finding(
        &partiql(
            "ExecuteTransaction",
            attacker(),
            json!({"transactStatements": [{"statement": "DELETE FROM \"gov-ledger\" WHERE pk='vm#x'"}]}),
        ),
        "ledger-written-outside-launcher",
    );
}

#[test]
fn a_partiql_select_the_launchers_insert_and_another_table_are_not_reported() {
    not_reported(
        &partiql(
            "ExecuteStatement",
            attacker(),
            json!({"statement": "SELECT * FROM \"gov-ledger\" WHERE pk='vm#x'"}),
        ),
        "a read",
    );
    not_reported(
        &partiql(
            "ExecuteStatement",
            launcher(),
            json!({"statement": "INSERT INTO \"gov-ledger\" value {'pk':***}"}),
        ),
        "the launcher",
    );
    let mut other = partiql(
        "ExecuteStatement",
        attacker(),
        json!({"statement": "INSERT INTO \"app-table\" value {'pk':***}"}),
    );
    other["resources"] = json!([{"accountId": ACCT, "type": "AWS::DynamoDB::Table",
                                 "ARN": format!("arn:aws:dynamodb:us-east-1:{ACCT}:table/app-table")}]);
    not_reported(&other, "another table");
}

// ---- AWS services acting for themselves ------------------------------------------

#[test]
fn kms_automatic_rotation_of_a_protected_key_is_not_reported() {
    // https://docs.aws.amazon.com/kms/latest/developerguide/ct-rotatekey.html
    not_reported(
        &kms_rotate_key(),
        "KMS rotating the key on its own schedule (account-only identity)",
    );
}

#[test]
fn every_documented_shape_of_a_service_acting_for_itself_is_exempt_on_a_protected_resource() {
    for (who, shape) in [
        (
            json!({"type": "AWSService", "invokedBy": "events.amazonaws.com"}),
            "type AWSService",
        ),
        (
            json!({"invokedBy": "events.amazonaws.com"}),
            "invokedBy a service principal",
        ),
        (
            json!({"accountId": ACCT, "invokedBy": "AWS Internal"}),
            "account-only identity",
        ),
        (service_linked_role(), "service-linked role"),
    ] {
        let v = mgmt(
            "events.amazonaws.com",
            "DisableRule",
            who,
            json!({"name": RULE_NAME}),
        );
        match verdict(&v) {
            Classification::Exempt { .. } => {}
            other => panic!("{shape}: expected the service exemption, got {other:?}"),
        }
    }
}

#[test]
fn a_person_acting_through_a_service_is_not_the_service_acting_for_itself() {
    // CloudFormation without a service role uses the caller's credentials:
    // the record is the caller's, with invokedBy the service.
    let mut who = attacker();
    who["invokedBy"] = json!("cloudformation.amazonaws.com");
    let v = mgmt(
        "events.amazonaws.com",
        "DisableRule",
        who,
        json!({"name": RULE_NAME}),
    );
    finding(&v, "protected-resource-changed");
}

// ---- configuration ------------------------------------------------------------

#[test]
fn a_kms_alias_among_the_protected_resources_is_refused_saying_why() {
    for alias in [
        "alias/gov-tokens",
        "arn:aws:kms:us-east-1:111122223333:alias/gov-tokens",
    ] {
        let err = detector_core::TamperConfig::parse(&[], &[], &[], &[alias.to_string()])
            .expect_err(alias);
        assert_eq!(err.list.env(), "PROTECTED_RESOURCES");
        assert!(err.to_string().contains("KMS alias"), "{err}");
        assert!(err.to_string().contains("key ARN"), "{err}");
    }
    detector_core::TamperConfig::parse(&[], &[], &[], &[KEY_ARN.to_string()]).unwrap();
}

#[test]
fn a_malformed_admin_list_value_is_refused_naming_its_variable_and_flag() {
    let err = detector_core::AdminConfig::parse(|l| {
        if l == detector_core::TamperList::Scps {
            vec!["gov-scp".into()]
        } else {
            Vec::new()
        }
    })
    .unwrap_err();
    assert_eq!(err.list.env(), "SCP_IDS");
    assert_eq!(err.list.flag(), "--scp");
    assert!(err.to_string().contains("gov-scp"), "{err}");
}
