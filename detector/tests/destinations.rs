//! The optional destinations, through the real handler against moto:
//! Security Hub (BatchImportFindings), a custom EventBridge bus (a rule
//! forwards the detector's events to a queue we read), and the chat topic
//! (AWS Chatbot's custom notification). Each is marked on its own: one that
//! fails is retried alone.

mod common;

use common::{ACCOUNT, Rig};
use detector::lambda::handler::handle;
use serde_json::{Value, json};
use testkit::moto;

fn bypass_event(event_id: &str) -> Value {
    json!({"version": "0", "source": "aws.lambda", "detail-type": "AWS API Call via CloudTrail",
    "detail": {
        "eventVersion": "1.11", "eventSource": "lambda.amazonaws.com", "eventName": "RunMicrovm",
        "eventID": event_id, "eventTime": "2026-11-20T10:00:00Z", "awsRegion": "us-east-1",
        "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::{ACCOUNT}:user/mallory"),
                         "accountId": ACCOUNT, "accessKeyId": "AKIAMALLORY"},
        "requestParameters": {"imageIdentifier": format!("arn:aws:lambda:us-east-1:{ACCOUNT}:microvm-image:x")},
        "responseElements": {"microvmId": "ai-dest-1", "state": "PENDING"},
        "requestID": "r-1", "eventType": "AwsApiCall", "recipientAccountId": ACCOUNT,
        "eventCategory": "Data", "managementEvent": false, "readOnly": false}})
}

/// A custom bus whose rule sends the detector's events to a new queue.
async fn bus_with_queue(name: &str) -> (String, String) {
    let sdk = moto::sdk_config().await;
    let eb = aws_sdk_eventbridge::Client::new(&sdk);
    let sqs = moto::sqs_client().await;
    eb.create_event_bus().name(name).send().await.unwrap();
    let queue = moto::create_queue(&sqs, &testkit::unique_name("bus-events")).await;
    let arn = moto::queue_arn(&sqs, &queue).await;
    eb.put_rule()
        .name(testkit::unique_name("findings"))
        .event_bus_name(name)
        .event_pattern(json!({"source": ["microvm-governance.detector"]}).to_string())
        .send()
        .await
        .unwrap();
    let rules = eb.list_rules().event_bus_name(name).send().await.unwrap();
    let rule = rules.rules()[0].name().unwrap().to_string();
    eb.put_targets()
        .rule(&rule)
        .event_bus_name(name)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    (name.to_string(), queue)
}

#[tokio::test]
async fn a_finding_reaches_security_hub_the_event_bus_and_the_chat_topic_once_each() {
    let mut rig = Rig::new().await;
    let sqs = moto::sqs_client().await;
    let sns = moto::sns_client().await;
    let (bus, bus_queue) = bus_with_queue(&testkit::unique_name("governance")).await;
    let (chat_topic, chat_queue) =
        moto::sns_topic_with_queue(&sns, &sqs, &testkit::unique_name("chat")).await;
    rig.env.insert("SECURITY_HUB".into(), "on".into());
    rig.env.insert("EVENT_BUS_NAME".into(), bus.clone());
    rig.env.insert("CHAT_TOPIC_ARN".into(), chat_topic);
    let st = rig.state().await;
    let event_id = format!("ev-{}", testkit::unique_name("dest"));
    handle(&st, &bypass_event(&event_id)).await.unwrap();
    // Again (a redelivery): every channel is marked, nothing is re-sent.
    let answer = handle(&st, &bypass_event(&event_id)).await.unwrap();
    assert_eq!(answer["counters"]["suppressed"], 1, "{answer}");

    assert_eq!(rig.alerts().await.len(), 1, "SNS");
    let events: Vec<Value> = moto::drain_queue(&sqs, &bus_queue)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail-type"], "aws.microvm.bypass.detected");
    assert_eq!(events[0]["source"], "microvm-governance.detector");
    assert_eq!(events[0]["detail"]["rule"], "non-launcher-principal");
    assert_eq!(events[0]["detail"]["event_id"], event_id.as_str());

    let chats = moto::drain_sns_messages(&sqs, &chat_queue).await;
    assert_eq!(chats.len(), 1);
    let chat: Value = serde_json::from_str(&chats[0].message).unwrap();
    assert_eq!(chat["version"], "1.0");
    assert_eq!(chat["source"], "custom");
    let d = chat["content"]["description"].as_str().unwrap();
    assert!(
        d.contains("`ai-dest-1`") && d.contains("user/mallory"),
        "{d}"
    );

    let found = moto::rest_json("securityhub", "POST", "/findings", &json!({})).await;
    let ours: Vec<&Value> = found["Findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["Id"].as_str().is_some_and(|id| id.contains(&event_id)))
        .collect();
    assert_eq!(ours.len(), 1, "{found}");
    assert_eq!(ours[0]["GeneratorId"], "non-launcher-principal");
    assert_eq!(
        ours[0]["ProductArn"],
        format!("arn:aws:securityhub:us-east-1:{ACCOUNT}:product/{ACCOUNT}/default")
    );
    assert_eq!(ours[0]["Severity"]["Label"], "HIGH");
}

#[tokio::test]
async fn a_missing_bus_fails_only_its_channel_and_the_retry_goes_to_it_alone() {
    let mut rig = Rig::new().await;
    rig.env
        .insert("EVENT_BUS_NAME".into(), testkit::unique_name("no-such-bus"));
    let st = rig.state().await;
    let event_id = format!("ev-{}", testkit::unique_name("dest"));
    let err = handle(&st, &bypass_event(&event_id)).await.unwrap_err();
    assert!(err.to_string().contains("EventBridge PutEvents"), "{err}");
    assert_eq!(rig.alerts().await.len(), 1, "SNS delivered and marked");
    assert_eq!(rig.contro1.state().audit_records().len(), 1);
    let item = rig.dedupe_item(&format!("event#{event_id}")).await.unwrap();
    assert!(
        item.contains_key("ch_sns") && item.contains_key("ch_contro1"),
        "{item:?}"
    );
    assert!(!item.contains_key("ch_eventbridge"));
    // The retry fails again on the bus alone; SNS and Contro1 see nothing new.
    handle(&st, &bypass_event(&event_id)).await.unwrap_err();
    assert!(rig.alerts().await.is_empty());
    assert_eq!(rig.contro1.state().audit_records().len(), 1);
}

/// The findings in `account`'s Security Hub whose `Id` contains `needle`.
async fn security_hub_findings(account: &str, needle: &str) -> Vec<Value> {
    let sdk = if account == ACCOUNT {
        moto::sdk_config().await
    } else {
        moto::sdk_config_in(account, "reader").await
    };
    let out = aws_sdk_securityhub::Client::new(&sdk)
        .get_findings()
        .max_results(100)
        .send()
        .await
        .unwrap();
    out.findings()
        .iter()
        .filter(|f| f.id().is_some_and(|id| id.contains(needle)))
        .map(|f| {
            json!({"Id": f.id(), "AwsAccountId": f.aws_account_id(), "ProductArn": f.product_arn(),
                   "Partition": f.resources()[0].partition().map(|p| p.as_str().to_string())})
        })
        .collect()
}

/// A bypass `RunMicrovm` recorded in `account`.
fn bypass_in(account: &str, event_id: &str) -> Value {
    let mut ev = bypass_event(event_id);
    let d = &mut ev["detail"];
    d["recipientAccountId"] = json!(account);
    d["userIdentity"]["accountId"] = json!(account);
    d["userIdentity"]["arn"] = json!(format!("arn:aws:iam::{account}:user/mallory"));
    d["responseElements"]["microvmId"] = json!(format!("ai-{event_id}"));
    ev
}

#[tokio::test]
async fn organization_findings_are_imported_in_the_account_each_names() {
    const MEMBER_A: &str = "444455556666";
    const MEMBER_B: &str = "777788889999";
    let mut rig = Rig::new().await;
    rig.env.insert("SECURITY_HUB".into(), "on".into());
    rig.env.insert(
        "SECURITY_HUB_ROLE_NAME".into(),
        "microvm-securityhub-import".into(),
    );
    let st = rig.state().await;
    let run = testkit::unique_name("org");
    for (account, n) in [(MEMBER_A, 1), (MEMBER_B, 2), (ACCOUNT, 3)] {
        handle(&st, &bypass_in(account, &format!("ev-{run}-{n}")))
            .await
            .unwrap();
    }
    // Each finding is in the Security Hub of the account it is about, with
    // that account in AwsAccountId and in the product ARN (as the API
    // requires of the default product ARN), and nowhere else.
    for (account, n) in [(MEMBER_A, 1), (MEMBER_B, 2), (ACCOUNT, 3)] {
        let needle = format!("ev-{run}-{n}");
        let here = security_hub_findings(account, &needle).await;
        assert_eq!(here.len(), 1, "{account}: {here:?}");
        assert_eq!(here[0]["AwsAccountId"], account);
        assert_eq!(
            here[0]["ProductArn"],
            format!("arn:aws:securityhub:us-east-1:{account}:product/{account}/default")
        );
        assert_eq!(here[0]["Partition"], "aws");
        for other in [MEMBER_A, MEMBER_B, ACCOUNT]
            .into_iter()
            .filter(|o| *o != account)
        {
            assert!(
                security_hub_findings(other, &needle).await.is_empty(),
                "{needle} also in {other}"
            );
        }
    }
}

#[tokio::test]
async fn without_the_import_role_every_finding_is_imported_in_the_detector_account() {
    const MEMBER: &str = "121212121212";
    let mut rig = Rig::new().await;
    rig.env.insert("SECURITY_HUB".into(), "on".into());
    let st = rig.state().await;
    let needle = format!("ev-{}", testkit::unique_name("single"));
    handle(&st, &bypass_in(MEMBER, &needle)).await.unwrap();
    let here = security_hub_findings(ACCOUNT, &needle).await;
    assert_eq!(here.len(), 1, "{here:?}");
    assert_eq!(here[0]["AwsAccountId"], ACCOUNT);
    assert!(security_hub_findings(MEMBER, &needle).await.is_empty());
}

#[test]
fn a_multi_megabyte_record_fits_every_channel_limit() {
    use detector::lambda::alert::{Alert, SNS_MESSAGE_MAX};
    use detector::lambda::aws::{EVENT_SOURCE, chat_message, event_detail};
    let mut f = detector_core::Finding::new(
        detector_core::Rule::NonLauncherPrincipal,
        detector_core::Severity::High,
        "RunMicrovm succeeded outside the launcher".into(),
        "big".into(),
    );
    f.event_id = Some("ev-big".into());
    f.user_agent = Some("\u{1}".repeat(1_900_000));
    f.principal_arn = Some("arn:aws:iam::123456789012:user/".to_string() + &"m".repeat(900_000));
    f.reason = Some("r".repeat(900_000));
    // Each kept connector is clipped to 4 KiB of control characters, six
    // bytes each in JSON: 64 of them are 1.5 MB before fitting.
    f.network_connectors = (0..10_000).map(|_| "\u{1}".repeat(8192)).collect();
    let alert = Alert::from_finding(f.with_incident_key());
    let detail = event_detail(&alert);
    let entry = EVENT_SOURCE.len() + alert.finding.event.as_str().len() + detail.len();
    assert!(entry <= 256 * 1024, "EventBridge entry {entry} bytes");
    assert!(detail.contains("...[truncated "), "no marker");
    serde_json::from_str::<Value>(&detail).expect("the detail is still JSON");
    let chat = chat_message(&alert);
    assert!(chat.len() <= SNS_MESSAGE_MAX, "chat {} bytes", chat.len());
    let message = alert.message();
    assert!(
        message.len() + alert.subject().len() <= SNS_MESSAGE_MAX,
        "SNS message {} bytes",
        message.len()
    );
}
