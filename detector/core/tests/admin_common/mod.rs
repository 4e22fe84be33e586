//! Names, identities and CloudTrail records shared by the tests of the
//! administrator's paths. Each record builder follows the record AWS
//! documents for the call (page cited beside it).

#![allow(dead_code)]

use detector_core::{
    AdminConfig, Classifier, ClassifierConfig, FunctionRef, ResourceRef, TamperConfig, TamperList,
};
use serde_json::{Value, json};
use shared_core::RoleRef;

pub const ACCT: &str = "111122223333";
pub const LAUNCHER_ROLE: &str =
    "arn:aws:iam::111122223333:role/microvm-gov/launcher/gov-launcher-role";
pub const DEPLOYER: &str = "arn:aws:iam::111122223333:role/gov-deploy";
pub const DEPLOYER_SESSION: &str =
    "arn:aws:sts::111122223333:assumed-role/gov-deploy/AWSCloudFormation";
pub const PIPELINE: &str = "arn:aws:iam::111122223333:role/gov-pipeline";
pub const BREAK_GLASS: &str = "arn:aws:iam::111122223333:role/gov-break-glass";
pub const EXEC_ROLE: &str = "arn:aws:iam::111122223333:role/microvm-exec-default";
pub const DETECTOR_ROLE: &str = "arn:aws:iam::111122223333:role/gov-detector-role";
pub const STACK: &str = "microvm-governance";
pub const STACK_ARN: &str = "arn:aws:cloudformation:us-east-1:111122223333:stack/microvm-governance/5b918d10-cd98-11ea-90d5-0a9cd3354c9c";
pub const DENY_POLICY: &str = "arn:aws:iam::111122223333:policy/microvm-gov/gov-deny";
pub const BOUNDARY: &str = "arn:aws:iam::111122223333:policy/microvm-gov/gov-boundary";
pub const SCP_ID: &str = "p-examplescp1";
pub const SCP_ARN: &str =
    "arn:aws:organizations::999988887777:policy/o-a1b2c3d4e5/service_control_policy/p-examplescp1";
pub const API_KEY_SECRET: &str =
    "arn:aws:secretsmanager:us-east-1:111122223333:secret:microvm-gov/contro1-api-key-AbCdEf";
pub const WEBHOOK_SECRET: &str = "microvm-gov/contro1-webhook";
pub const ALERT_TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:gov-alerts";
pub const LOG_GROUP: &str = "/aws/lambda/gov-detector";
pub const TRAIL_BUCKET: &str = "gov-trail-bucket";
pub const LEDGER: &str = "arn:aws:dynamodb:us-east-1:111122223333:table/gov-ledger";
pub const RULE_NAME: &str = "gov-microvm-api-calls";
pub const KEY_ARN: &str =
    "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn refs(values: &[&str]) -> Vec<ResourceRef> {
    values
        .iter()
        .map(|r| ResourceRef::parse(r).unwrap())
        .collect()
}

fn roles(values: &[&str]) -> Vec<RoleRef> {
    values
        .iter()
        .map(|r| RoleRef::from_role_arn(r).unwrap())
        .collect()
}

/// Each resource in the list the detector has for it.
pub fn config() -> ClassifierConfig {
    let admin = AdminConfig::parse(|list| {
        let v: &[&str] = match list {
            TamperList::GovernanceStacks => &[STACK_ARN],
            TamperList::PipelinePrincipals => &[PIPELINE],
            TamperList::BreakGlassRoles => &[BREAK_GLASS],
            TamperList::ExecutionRoles => &[EXEC_ROLE],
            TamperList::PreventionPolicies => &[DENY_POLICY, BOUNDARY],
            TamperList::Scps => &[SCP_ARN],
            TamperList::Contro1Secrets => &[API_KEY_SECRET, WEBHOOK_SECRET],
            TamperList::AlertTopics => &[ALERT_TOPIC],
            TamperList::DetectorLogGroups => &[LOG_GROUP],
            TamperList::DetectorRoles => &[DETECTOR_ROLE],
            TamperList::TrailBuckets => &[TRAIL_BUCKET],
            _ => &[],
        };
        v.iter().map(|s| s.to_string()).collect()
    })
    .unwrap();
    ClassifierConfig {
        launcher_roles: roles(&[LAUNCHER_ROLE]),
        launcher_session_names: vec!["gov-launcher".into()],
        tamper: TamperConfig {
            launcher_functions: vec![FunctionRef::parse("gov-launcher").unwrap()],
            detector_functions: vec![FunctionRef::parse("gov-detector").unwrap()],
            deployment_roles: roles(&[DEPLOYER]),
            protected_resources: refs(&[LEDGER, RULE_NAME, KEY_ARN, ALERT_TOPIC, TRAIL_BUCKET]),
            ledger_tables: refs(&[LEDGER]),
            trail_names: Vec::new(),
            admin,
        },
        organization_accounts: Vec::new(),
    }
}

pub fn classifier() -> Classifier {
    Classifier::new(config())
}

// ---- identities (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-user-identity.html)

pub fn attacker() -> Value {
    json!({"type": "IAMUser", "principalId": "AIDAJ45Q7YFFAREXAMPLE",
           "arn": format!("arn:aws:iam::{ACCT}:user/mallory"), "accountId": ACCT,
           "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "userName": "mallory"})
}

fn assumed(role_arn: &str, session: &str) -> Value {
    let name = role_arn.rsplit('/').next().unwrap();
    json!({"type": "AssumedRole", "principalId": format!("AROAEXAMPLE:{session}"),
           "arn": format!("arn:aws:sts::{ACCT}:assumed-role/{name}/{session}"),
           "accountId": ACCT, "accessKeyId": "ASIAEXAMPLE",
           "sessionContext": {"attributes": {"mfaAuthenticated": "false", "creationDate": "2026-11-20T11:00:00Z"},
               "sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE", "arn": role_arn,
                   "accountId": ACCT, "userName": name}}})
}

/// CloudFormation acting as the stack's service role.
pub fn deployer() -> Value {
    let mut v = assumed(DEPLOYER, "AWSCloudFormation");
    v["invokedBy"] = json!("cloudformation.amazonaws.com");
    v
}

pub fn pipeline() -> Value {
    assumed(PIPELINE, "codebuild-deploy")
}

pub fn launcher() -> Value {
    assumed(LAUNCHER_ROLE, "gov-launcher")
}

pub fn detector_role() -> Value {
    assumed(DETECTOR_ROLE, "gov-detector")
}

/// https://docs.aws.amazon.com/IAM/latest/UserGuide/using-service-linked-roles.html:
/// a service-linked role's path is `/aws-service-role/SERVICE/`.
pub fn service_linked_role() -> Value {
    assumed(
        &format!(
            "arn:aws:iam::{ACCT}:role/aws-service-role/events.amazonaws.com/AWSServiceRoleForCloudWatchEvents"
        ),
        "events",
    )
}

/// CloudTrail delivering log files (https://docs.aws.amazon.com/AmazonS3/latest/userguide/cloudtrail-logging-s3-info.html).
pub fn cloudtrail_service() -> Value {
    json!({"type": "AWSService", "invokedBy": "cloudtrail.amazonaws.com"})
}

// ---- records -----------------------------------------------------------

pub fn mgmt(source: &str, name: &str, who: Value, params: Value) -> Value {
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

/// https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cfn-api-logging-cloudtrail.html
pub fn cfn(name: &str, who: Value, params: Value) -> Value {
    mgmt("cloudformation.amazonaws.com", name, who, params)
}

pub fn update_stack(who: Value, stack: &str) -> Value {
    let mut v = cfn(
        "UpdateStack",
        who,
        json!({"stackName": stack, "templateURL": "https://s3.amazonaws.com/bucket/template.yaml",
               "capabilities": ["CAPABILITY_NAMED_IAM"],
               "parameters": [{"parameterKey": "AllowedImages", "parameterValue": "*"}]}),
    );
    let id = if stack.starts_with("arn:") {
        stack.to_string()
    } else {
        format!(
            "arn:aws:cloudformation:us-east-1:{ACCT}:stack/{stack}/5b918d10-cd98-11ea-90d5-0a9cd3354c9c"
        )
    };
    v["responseElements"] = json!({"stackId": id});
    v
}

/// https://docs.aws.amazon.com/IAM/latest/UserGuide/cloudtrail-integration.html
pub fn iam(name: &str, who: Value, params: Value) -> Value {
    let mut v = mgmt("iam.amazonaws.com", name, who, params);
    v["awsRegion"] = json!("us-east-1");
    v
}

pub fn assume_role(who: Value, role: &str) -> Value {
    let mut v = mgmt(
        "sts.amazonaws.com",
        "AssumeRole",
        who,
        json!({"roleArn": role, "roleSessionName": "incident", "durationSeconds": 3600}),
    );
    v["readOnly"] = json!(true);
    v["resources"] = json!([{"ARN": role, "accountId": ACCT, "type": "AWS::IAM::Role"}]);
    v
}

/// https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-aws-console-sign-in-events.html
pub fn console_login_as_break_glass() -> Value {
    json!({
        "eventVersion": "1.08", "userIdentity": assumed(BREAK_GLASS, "alice"),
        "eventTime": "2026-11-20T12:00:00Z", "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin", "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.9",
        "userAgent": "Mozilla/5.0", "requestParameters": null,
        "responseElements": {"ConsoleLogin": "Success"},
        "additionalEventData": {"MobileVersion": "No", "MFAUsed": "No"},
        "eventID": "ev-console", "readOnly": false, "eventType": "AwsConsoleSignIn",
        "managementEvent": true, "recipientAccountId": ACCT, "eventCategory": "Management"
    })
}

/// https://docs.aws.amazon.com/organizations/latest/userguide/orgs_cloudtrail-integration.html
pub fn orgs(name: &str, who: Value, params: Value) -> Value {
    mgmt("organizations.amazonaws.com", name, who, params)
}

pub fn leave_organization() -> Value {
    let mut v = orgs("LeaveOrganization", attacker(), Value::Null);
    v["recipientAccountId"] = json!(ACCT);
    v
}

/// https://docs.aws.amazon.com/secretsmanager/latest/userguide/cloudtrail_log_entries.html
pub fn secret(name: &str, who: Value, id: &str) -> Value {
    let mut v = mgmt(
        "secretsmanager.amazonaws.com",
        name,
        who,
        json!({"secretId": id, "clientRequestToken": "EXAMPLE1-90ab-cdef-fedc-ba987SECRET1"}),
    );
    v["resources"] = json!([{"accountId": ACCT, "type": "AWS::SecretsManager::Secret",
        "ARN": if id.starts_with("arn:") { id.to_string() } else {
            format!("arn:aws:secretsmanager:us-east-1:{ACCT}:secret:{id}-Qw3Er4") }}]);
    v
}

/// https://docs.aws.amazon.com/sns/latest/dg/sns-logging-using-cloudtrail.html
pub fn sns(name: &str, who: Value, params: Value) -> Value {
    mgmt("sns.amazonaws.com", name, who, params)
}

/// https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/logging_cw_api_calls.html
pub fn logs(name: &str, who: Value, params: Value) -> Value {
    mgmt("logs.amazonaws.com", name, who, params)
}

/// An S3 object-level (data) event
/// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/cloudtrail-logging-understanding-s3-entries.html).
pub fn s3_object(name: &str, who: Value) -> Value {
    let key = format!(
        "AWSLogs/{ACCT}/CloudTrail/us-east-1/2026/11/20/{ACCT}_CloudTrail_us-east-1_20261120T1200Z_abc.json.gz"
    );
    let mut v = mgmt(
        "s3.amazonaws.com",
        name,
        who,
        json!({"bucketName": TRAIL_BUCKET, "Host": format!("{TRAIL_BUCKET}.s3.us-east-1.amazonaws.com"), "key": key}),
    );
    v["managementEvent"] = json!(false);
    v["eventCategory"] = json!("Data");
    v["resources"] = json!([
        {"type": "AWS::S3::Object", "ARN": format!("arn:aws:s3:::{TRAIL_BUCKET}/{key}")},
        {"accountId": ACCT, "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{TRAIL_BUCKET}")}
    ]);
    v
}

/// A PartiQL data event
/// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/understanding-ddb-log-entries.html):
/// non-key attribute values are redacted.
pub fn partiql(name: &str, who: Value, params: Value) -> Value {
    let mut v = mgmt("dynamodb.amazonaws.com", name, who, params);
    v["managementEvent"] = json!(false);
    v["eventCategory"] = json!("Data");
    v["resources"] = json!([{"accountId": ACCT, "type": "AWS::DynamoDB::Table", "ARN": LEDGER}]);
    v
}

/// https://docs.aws.amazon.com/kms/latest/developerguide/ct-rotatekey.html
pub fn kms_rotate_key() -> Value {
    json!({
        "eventVersion": "1.11",
        "userIdentity": {"accountId": ACCT, "invokedBy": "AWS Internal"},
        "eventTime": "2025-05-20T20:44:37Z", "eventSource": "kms.amazonaws.com",
        "eventName": "RotateKey", "awsRegion": "us-west-2",
        "sourceIPAddress": "AWS Internal", "userAgent": "AWS Internal",
        "requestParameters": null, "responseElements": null,
        "eventID": "a24b3967-ddad-417f-9b22-2332b918db06", "readOnly": false,
        "resources": [{"accountId": ACCT, "type": "AWS::KMS::Key", "ARN": KEY_ARN}],
        "eventType": "AwsServiceEvent", "managementEvent": true, "recipientAccountId": ACCT,
        "serviceEventDetails": {"rotationType": "AUTOMATIC", "keyOrigin": "AWS_KMS"},
        "eventCategory": "Management"
    })
}
