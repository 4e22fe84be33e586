//! Tampering with the control plane, through the real handler against moto:
//! the integrity check reads real Lambda control-plane calls (moto serves
//! them) and an SSM baseline; tamper records arriving as EventBridge
//! API-call events (configured by the Lambda's variables) reach SNS; the
//! heartbeat lives in the real dedupe table.

mod common;

use common::{ACCOUNT, Rig};
use detector::lambda::aws::DynamoDedupe;
use detector::lambda::handler::handle;
use detector::lambda::ports::HeartbeatStore;
use serde_json::{Value, json};
use testkit::lambda_control::{self, DeployedFunction};
use testkit::moto;

fn scheduled() -> Value {
    json!({"version": "0", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
}

async fn launcher_function() -> DeployedFunction {
    let sdk = moto::sdk_config().await;
    let role = lambda_control::iam_role(
        &moto::endpoint(),
        &testkit::unique_name("launcher-role"),
        "/gov/launcher/",
    )
    .await;
    let name = testkit::unique_name("gov-launcher");
    lambda_control::deploy_function(&sdk, &name, &role, b"the launcher", 20).await
}

fn integrity_alerts(alerts: &[moto::SnsMessage]) -> Vec<&moto::SnsMessage> {
    alerts
        .iter()
        .filter(|a| a.envelope["MessageAttributes"]["rule"]["Value"] == "function-integrity-drift")
        .collect()
}

#[tokio::test]
async fn the_launchers_replaced_code_is_reported_by_the_next_sweep_once_a_day() {
    let mut rig = Rig::new().await;
    rig.trail(true).await;
    let sdk = moto::sdk_config().await;
    let launcher = launcher_function().await;
    let parameter = format!("/{}/integrity-baseline", testkit::unique_name("gov"));
    lambda_control::write_baseline(&sdk, &parameter, &[("launcher", &launcher)]).await;
    rig.env
        .insert("INTEGRITY_BASELINE_PARAMETER".into(), parameter.clone());
    let st = rig.state().await;

    // As deployed: the sweep checks it and finds nothing.
    let answer = handle(&st, &scheduled()).await.unwrap();
    assert_eq!(answer["counters"]["integrity_checks"], 1);
    assert_eq!(answer["counters"]["integrity_drifts"], 0, "{answer}");
    assert!(integrity_alerts(&rig.alerts().await).is_empty());

    // Someone with lambda:UpdateFunctionCode replaces the launcher's code.
    let new_sha = lambda_control::replace_code(&sdk, &launcher.name, b"attacker code").await;
    let answer = handle(&st, &scheduled()).await.unwrap();
    assert_eq!(answer["counters"]["integrity_drifts"], 1, "{answer}");
    let alerts = rig.alerts().await;
    let drift = integrity_alerts(&alerts);
    assert_eq!(drift.len(), 1, "{alerts:?}");
    let a = drift[0];
    assert_eq!(
        a.envelope["MessageAttributes"]["event"]["Value"],
        "aws.microvm.governance.tampered"
    );
    assert_eq!(
        a.envelope["MessageAttributes"]["severity"]["Value"],
        "critical"
    );
    assert!(a.message.contains(&new_sha), "{}", a.message);
    assert!(
        a.message.contains(&format!("Resource: {}", launcher.arn)),
        "{}",
        a.message
    );
    assert!(
        a.message
            .contains(&format!("Where:    {ACCOUNT} / us-east-1"))
    );

    // The same drift the same day: de-duplicated.
    handle(&st, &scheduled()).await.unwrap();
    assert!(integrity_alerts(&rig.alerts().await).is_empty());
}

#[tokio::test]
async fn concurrency_set_to_zero_and_a_public_grant_are_each_named_by_the_integrity_check() {
    let mut rig = Rig::new().await;
    rig.trail(true).await;
    let sdk = moto::sdk_config().await;
    let launcher = launcher_function().await;
    let parameter = format!("/{}/integrity-baseline", testkit::unique_name("gov"));
    lambda_control::write_baseline(&sdk, &parameter, &[("launcher", &launcher)]).await;
    rig.env
        .insert("INTEGRITY_BASELINE_PARAMETER".into(), parameter);
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    lambda
        .put_function_concurrency()
        .function_name(&launcher.name)
        .reserved_concurrent_executions(0)
        .send()
        .await
        .unwrap();
    lambda
        .add_permission()
        .function_name(&launcher.name)
        .statement_id("backdoor")
        .action("lambda:InvokeFunction")
        .principal("*")
        .send()
        .await
        .unwrap();
    let st = rig.state().await;
    handle(&st, &scheduled()).await.unwrap();
    let alerts = rig.alerts().await;
    let mut reasons: Vec<String> = integrity_alerts(&alerts)
        .iter()
        .map(|a| {
            let details = a.message.split("--- details (JSON) ---").nth(1).unwrap();
            let v: Value = serde_json::from_str(details.trim()).unwrap();
            v["reason"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    reasons.sort_unstable();
    assert_eq!(reasons, ["concurrency", "permissions"], "{alerts:?}");
}

#[tokio::test]
async fn an_unreadable_baseline_is_reported_as_degraded_not_ignored() {
    let mut rig = Rig::new().await;
    rig.trail(true).await;
    rig.env.insert(
        "INTEGRITY_BASELINE_PARAMETER".into(),
        format!("/{}/missing", testkit::unique_name("gov")),
    );
    let st = rig.state().await;
    handle(&st, &scheduled()).await.unwrap();
    let alerts = rig.alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        alerts[0].envelope["MessageAttributes"]["rule"]["Value"],
        "integrity-check-unavailable"
    );
    assert!(
        alerts[0].message.contains("SSM GetParameter"),
        "{}",
        alerts[0].message
    );
}

#[tokio::test]
async fn update_function_code_on_the_launcher_arriving_from_eventbridge_reaches_sns() {
    let mut rig = Rig::new().await;
    let launcher_arn = format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:gov-launcher");
    rig.env
        .insert("LAUNCHER_FUNCTIONS".into(), launcher_arn.clone());
    let st = rig.state().await;
    let record = |fname: &str, who: Value| {
        json!({"version": "0", "source": "aws.lambda", "detail-type": "AWS API Call via CloudTrail",
        "detail": {
            "eventVersion": "1.09", "userIdentity": who, "eventTime": "2026-11-20T12:00:00Z",
            "eventSource": "lambda.amazonaws.com", "eventName": "UpdateFunctionCode20150331v2",
            "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.9", "userAgent": "aws-cli/2.17.0",
            "requestParameters": {"functionName": fname, "publish": false, "dryRun": false},
            "responseElements": {"functionName": "gov-launcher", "codeSha256": "c2hhLW9mLWF0dGFja2VyLWNvZGU="},
            "requestID": "r-1", "eventID": format!("ev-{}", testkit::unique_name("x")),
            "readOnly": false, "eventType": "AwsApiCall", "managementEvent": true,
            "recipientAccountId": ACCOUNT, "eventCategory": "Management"}})
    };
    let mallory = json!({"type": "IAMUser", "arn": format!("arn:aws:iam::{ACCOUNT}:user/mallory"),
                         "accountId": ACCOUNT, "accessKeyId": "AKIAMALLORY"});
    // Another function: nothing.
    handle(&st, &record("unrelated-fn", mallory.clone()))
        .await
        .unwrap();
    assert!(rig.alerts().await.is_empty());
    handle(&st, &record(&launcher_arn, mallory)).await.unwrap();
    let alerts = rig.alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].envelope["MessageAttributes"]["rule"]["Value"],
        "launcher-function-changed"
    );
    assert!(alerts[0].message.contains("(access key AKIAMALLORY)"));
    assert!(alerts[0].message.contains("c2hhLW9mLWF0dGFja2VyLWNvZGU="));
}

#[tokio::test]
async fn the_heartbeat_keeps_the_latest_read_and_the_first_check_in_the_dedupe_table() {
    let rig = Rig::new().await;
    let hb = DynamoDedupe::new(moto::dynamodb_client().await, rig.dedupe_table.clone());
    // Never read: the first check is remembered.
    assert_eq!(hb.last_beat(1_000).await.unwrap(), (None, 1_000));
    assert_eq!(hb.last_beat(2_000).await.unwrap(), (None, 1_000));
    hb.beat(5_000).await.unwrap();
    // An older invocation finishing late does not move it back.
    hb.beat(4_000).await.unwrap();
    assert_eq!(hb.last_beat(6_000).await.unwrap(), (Some(5_000), 1_000));
}

/// An EventBridge "AWS API Call via CloudTrail" envelope around `detail`.
#[allow(clippy::needless_pass_by_value)] // json! reads its arguments by reference
fn api_call(source: &str, detail: Value) -> Value {
    json!({"version": "0", "source": source, "detail-type": "AWS API Call via CloudTrail",
           "detail": detail})
}

#[allow(clippy::needless_pass_by_value)] // json! reads its arguments by reference
fn management(source: &str, name: &str, who: Value, params: Value) -> Value {
    json!({
        "eventVersion": "1.09", "userIdentity": who, "eventTime": "2026-11-20T12:00:00Z",
        "eventSource": source, "eventName": name, "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.9", "userAgent": "aws-cli/2.17.0",
        "requestParameters": params, "responseElements": null,
        "requestID": testkit::unique_name("r"), "eventID": testkit::unique_name("ev"),
        "readOnly": false, "eventType": "AwsApiCall", "managementEvent": true,
        "recipientAccountId": ACCOUNT, "eventCategory": "Management"})
}

#[tokio::test]
async fn the_administrators_paths_configured_by_environment_reach_sns_from_the_handler() {
    let mut rig = Rig::new().await;
    let stack = format!(
        "arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/gov/5b918d10-cd98-11ea-90d5-0a9cd3354c9c"
    );
    let pipeline = format!("arn:aws:iam::{ACCOUNT}:role/gov-pipeline");
    rig.env.insert("GOVERNANCE_STACKS".into(), stack.clone());
    rig.env
        .insert("PIPELINE_PRINCIPAL_ARNS".into(), pipeline.clone());
    let topic = rig.env["ALERT_TOPIC_ARN"].clone();
    let st = rig.state().await;
    let mallory = json!({"type": "IAMUser", "arn": format!("arn:aws:iam::{ACCOUNT}:user/mallory"),
                         "accountId": ACCOUNT, "accessKeyId": "AKIAMALLORY"});
    let pipeline_session = json!({"type": "AssumedRole",
        "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/gov-pipeline/codebuild"),
        "accountId": ACCOUNT, "sessionContext": {"sessionIssuer": {"type": "Role", "arn": pipeline,
            "accountId": ACCOUNT, "userName": "gov-pipeline"}}});
    let update = |who: Value| {
        api_call(
            "aws.cloudformation",
            management(
                "cloudformation.amazonaws.com",
                "UpdateStack",
                who,
                json!({"stackName": "gov", "usePreviousTemplate": true}),
            ),
        )
    };
    // The pipeline's own deploy: counted, not alerted.
    handle(&st, &update(pipeline_session)).await.unwrap();
    assert!(rig.alerts().await.is_empty());
    // Anyone else's, by name: alerted, naming who started it.
    handle(&st, &update(mallory.clone())).await.unwrap();
    // The alert topic's subscription, named only by its ARN: alerted.
    let unsubscribe = api_call(
        "aws.sns",
        management(
            "sns.amazonaws.com",
            "Unsubscribe",
            mallory,
            json!({"subscriptionArn": format!("{topic}:0b7f2f4e-7c2f-4f0a-9b1c-1a2b3c4d5e6f")}),
        ),
    );
    handle(&st, &unsubscribe).await.unwrap();
    let alerts = rig.alerts().await;
    let rule = |a: &moto::SnsMessage| {
        a.envelope["MessageAttributes"]["rule"]["Value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let mut rules: Vec<String> = alerts.iter().map(rule).collect();
    rules.sort();
    assert_eq!(
        rules,
        ["alert-topic-changed", "governance-stack-changed"],
        "{alerts:?}"
    );
    let stack_alert = alerts
        .iter()
        .find(|a| rule(a) == "governance-stack-changed")
        .unwrap();
    assert!(
        stack_alert.message.contains("mallory"),
        "{}",
        stack_alert.message
    );
    for a in &alerts {
        assert_eq!(
            a.envelope["MessageAttributes"]["severity"]["Value"],
            "critical"
        );
    }
}
