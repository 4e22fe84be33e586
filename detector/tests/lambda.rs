//! The detector Lambda's handler against real parts: moto (S3, SQS, SNS,
//! DynamoDB, CloudTrail), the MicroVMs emulator through the real SDK, and the
//! Contro1 stand-in. Needs `MOTO_ENDPOINT` (./scripts/test.sh sets it).

mod common;

use common::{
    ACCOUNT, IMAGE, LAUNCHER_ROLE, Rig, bypass_record, failed_ids, fixture, gz_bytes, gz_log,
    log_key, s3_event, scheduled, sqs_event, uuid_like,
};
use detector::lambda::handler::handle;
use detector_core::notification::{Invocation, Trigger, decode_invocation, decode_message_body};
use serde_json::{Value, json};
use testkit::emulator::{CallerIdentity, Emulator, MicrovmState};

const FIXTURE_BUCKET: &str = "aws-cloudtrail-logs-111122223333-3f1a2b";

/// A governed call by the launcher role (session `microvm-launcher`).
fn launcher_record(event_id: &str, request_id: &str) -> Value {
    json!({
        "eventVersion": "1.11",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLE:microvm-launcher",
            "arn": "arn:aws:sts::123456789012:assumed-role/microvm-launcher/microvm-launcher",
            "accountId": ACCOUNT,
            "sessionContext": {"sessionIssuer": {"type": "Role", "arn": LAUNCHER_ROLE, "accountId": ACCOUNT}}
        },
        "eventTime": "2025-10-02T14:03:11Z",
        "eventSource": "lambda.amazonaws.com",
        "eventName": "TerminateMicrovm",
        "awsRegion": "us-east-1",
        "requestParameters": {"microvmIdentifier": "ai-launcher-vm"},
        "responseElements": null,
        "requestID": request_id,
        "eventID": event_id,
        "eventType": "AwsApiCall",
        "managementEvent": false,
        "eventCategory": "Data",
        "recipientAccountId": ACCOUNT
    })
}

#[tokio::test]
async fn every_trigger_shape_reads_the_object_and_the_finding_is_alerted_once() {
    let rig = Rig::new().await;
    let st = rig.state().await;
    let event_id = format!("ev-{}", uuid_like());
    let log = gz_log(&[bypass_record(&event_id)]);
    let shapes = [
        "s3-put.json",
        "sqs-s3.json",
        "sqs-sns-s3.json",
        "sqs-cloudtrail-sns.json",
        "sqs-cloudtrail-raw.json",
        "sns-s3.json",
        "sns-cloudtrail.json",
        "eventbridge-object-created.json",
    ];
    let mut reads = 0;
    for name in shapes {
        // The fixture as delivered, pointed at this test's bucket; the object
        // is stored under every key the shape decodes to (a key with a space
        // proves the form-decoding against real S3).
        let text = fixture(name).replace(FIXTURE_BUCKET, &rig.bucket);
        let event: Value = serde_json::from_str(&text).unwrap();
        let triggers = match decode_invocation(&event).unwrap() {
            Invocation::Direct(t) => t,
            Invocation::Sqs(m) => m
                .iter()
                .map(|m| decode_message_body(&m.body).unwrap())
                .collect(),
        };
        let mut expected = 0;
        for t in triggers {
            if let Trigger::Objects { objects, .. } = t {
                for o in objects {
                    rig.put(&o.key, log.clone()).await;
                    expected += 1;
                }
            }
        }
        let answer = handle(&st, &event)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Some(f) = answer.get("batchItemFailures") {
            assert_eq!(f, &json!([]), "{name}");
        }
        assert_eq!(
            answer["counters"]["objects_read"],
            json!(expected),
            "{name}"
        );
        reads += expected;
    }
    assert!(reads >= 10, "{reads}");
    // One finding, delivered by eight shapes and ten objects: one alert.
    let alerts = rig.alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let subject = alerts[0].subject.clone().unwrap();
    assert!(
        subject.starts_with("[HIGH] RunMicrovm succeeded outside the launcher"),
        "{subject}"
    );
    assert!(subject.len() <= 100);
    assert!(
        alerts[0]
            .message
            .contains("Who:      arn:aws:iam::111122223333:user/alice")
    );
    assert!(
        alerts[0]
            .message
            .contains("MicroVM:  ai-4b1f6c2e-8d3a-4e9b-a7c5-1d2e3f4a5b6c")
    );
    assert!(alerts[0].message.contains("What to do:"));
    assert_eq!(
        alerts[0].envelope["MessageAttributes"]["event"]["Value"],
        "aws.microvm.bypass.detected"
    );
    let audits = rig.contro1.state().audit_records();
    assert_eq!(audits.len(), 1, "{audits:?}");
    assert_eq!(audits[0]["action"], "aws.microvm.bypass.detected");
    assert_eq!(
        audits[0]["metadata"]["cloudtrail_event_id"],
        json!(event_id)
    );
    let item = rig
        .dedupe_item(&format!("event#{event_id}"))
        .await
        .expect("dedupe mark");
    let expires: i64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    assert!(expires > 1_700_000_000);
    // One JSON log line per finding: alerted once, suppressed thereafter.
    let findings = rig.lines.with("finding");
    assert_eq!(
        findings
            .iter()
            .filter(|l| l["status"] == "alerting")
            .count(),
        1
    );
    assert!(
        findings
            .iter()
            .filter(|l| l["status"] == "suppressed-duplicate")
            .count()
            >= 7
    );
    for inv in rig.lines.with("invocation") {
        assert_eq!(inv["reconciles"], true, "{inv}");
    }
}

#[tokio::test]
async fn sqs_batch_reports_exactly_the_failed_message_ids_and_never_acks_a_corrupt_object() {
    let rig = Rig::new().await;
    let st = rig.state().await;
    let good = log_key(1);
    rig.put(
        &good,
        gz_log(&[bypass_record(&format!("ev-{}", uuid_like()))]),
    )
    .await;
    let truncated_key = log_key(2);
    let full = gz_log(&vec![bypass_record("x"); 50]);
    rig.put(&truncated_key, full[..full.len() / 2].to_vec())
        .await;
    let bad_json_key = log_key(3);
    // A governed record whose JSON is broken (the scanner's prefilter skips
    // parsing records that cannot be governed calls, so the broken one must
    // look like one).
    rig.put(
        &bad_json_key,
        br#"{"Records":[{"eventSource":"lambda.amazonaws.com","eventName":"RunMicrovm","eventID": }]}"#
            .to_vec(),
    )
    .await;
    let missing_key = log_key(4);
    let body = |k: &str| s3_event(&rig.bucket, k).to_string();
    let event = sqs_event(&[
        ("m-good", body(&good)),
        ("m-truncated", body(&truncated_key)),
        ("m-bad-json", body(&bad_json_key)),
        ("m-missing", body(&missing_key)),
        ("m-not-json", "this is not a notification".to_string()),
        ("m-test-event", fixture("s3-test-event.json")),
    ]);
    let answer = handle(&st, &event)
        .await
        .expect("the batch itself succeeds");
    assert_eq!(
        failed_ids(&answer),
        ["m-bad-json", "m-missing", "m-not-json", "m-truncated"]
    );
    assert_eq!(answer["counters"]["messages"], 6);
    assert_eq!(answer["counters"]["messages_failed"], 4);
    // Each failed object is logged with its bucket, key and the error.
    let errors = rig.lines.with("error");
    let truncated = errors
        .iter()
        .find(|l| l["key"] == json!(truncated_key))
        .expect("log line for the truncated object");
    assert_eq!(truncated["bucket"], json!(rig.bucket));
    assert!(
        truncated["error"].as_str().unwrap().contains("gzip"),
        "{truncated}"
    );
    let missing = errors
        .iter()
        .find(|l| l["key"] == json!(missing_key))
        .expect("log line for the missing object");
    assert!(
        missing["error"].as_str().unwrap().contains("NoSuchKey"),
        "{missing}"
    );
    let failed: Vec<Value> = rig.lines.with("message-failed");
    assert_eq!(failed.len(), 4);
}

#[tokio::test]
async fn alert_delivery_failure_fails_the_invocation_and_writes_no_mark_for_that_channel() {
    let mut rig = Rig::new().await;
    rig.env.insert(
        "ALERT_TOPIC_ARN".into(),
        format!(
            "arn:aws:sns:us-east-1:{ACCOUNT}:{}",
            testkit::unique_name("no-such-topic")
        ),
    );
    let st = rig.state().await;
    let event_id = format!("ev-{}", uuid_like());
    let key = log_key(5);
    rig.put(&key, gz_log(&[bypass_record(&event_id)])).await;
    let err = handle(&st, &s3_event(&rig.bucket, &key)).await.unwrap_err();
    assert!(err.to_string().contains("sns"), "{err}");
    // Contro1 delivered and is marked; SNS failed and is not.
    let sns_marked = |item: Option<std::collections::HashMap<String, _>>| {
        item.is_some_and(|i| i.contains_key("ch_sns"))
    };
    let item = rig.dedupe_item(&format!("event#{event_id}")).await;
    assert!(item.as_ref().is_some_and(|i| i.contains_key("ch_contro1")));
    assert!(!sns_marked(item));
    // In an SQS batch the same failure fails exactly that message.
    let answer = handle(
        &st,
        &sqs_event(&[("m1", s3_event(&rig.bucket, &key).to_string())]),
    )
    .await
    .unwrap();
    assert_eq!(failed_ids(&answer), ["m1"]);
    assert!(!sns_marked(
        rig.dedupe_item(&format!("event#{event_id}")).await
    ));
    // Contro1 was not sent the finding a second time.
    assert_eq!(rig.contro1.state().audit_records().len(), 1);
}

#[tokio::test]
async fn eventbridge_api_call_is_classified_at_once_and_launcher_calls_are_checked_against_the_ledger()
 {
    let rig = Rig::new().await;
    let st = rig.state().await;
    let envelope = |detail: Value| {
        json!({"version": "0", "id": "x", "detail-type": "AWS API Call via CloudTrail",
               "source": "aws.lambda", "account": ACCOUNT, "time": "2025-10-02T14:03:11Z",
               "region": "us-east-1", "resources": [], "detail": detail})
    };
    // A launcher call the ledger knows: nothing to report.
    let known = format!("req-{}", uuid_like());
    rig.ledger_call("c1-req", "TerminateMicrovm", "ai-launcher-vm", &known)
        .await;
    handle(
        &st,
        &envelope(launcher_record(&format!("ev-{}", uuid_like()), &known)),
    )
    .await
    .unwrap();
    assert!(rig.alerts().await.is_empty());
    // The launcher's role, a requestID the ledger has never seen.
    let unknown_event = format!("ev-{}", uuid_like());
    let answer = handle(
        &st,
        &envelope(launcher_record(
            &unknown_event,
            &format!("req-{}", uuid_like()),
        )),
    )
    .await
    .unwrap();
    assert_eq!(answer["counters"]["ledger_checked_calls"], 1);
    let alerts = rig.alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].envelope["MessageAttributes"]["rule"]["Value"],
        "launcher-credentials-outside-launcher"
    );
    // A bypass by an IAM user.
    handle(
        &st,
        &envelope(bypass_record(&format!("ev-{}", uuid_like()))),
    )
    .await
    .unwrap();
    let alerts = rig.alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].envelope["MessageAttributes"]["rule"]["Value"],
        "non-launcher-principal"
    );
}

#[tokio::test]
async fn stop_logging_in_the_record_stream_reports_governance_tampered() {
    let rig = Rig::new().await;
    let st = rig.state().await;
    let stop = |trail: &str| {
        json!({"version": "0", "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.cloudtrail", "detail": {
            "eventVersion": "1.09", "eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging",
            "eventID": format!("ev-{}", uuid_like()), "eventTime": "2025-10-02T14:00:00Z", "awsRegion": "us-east-1",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/mallory", "accountId": ACCOUNT},
            "requestParameters": {"name": trail}, "responseElements": null,
            "requestID": "r", "eventType": "AwsApiCall", "managementEvent": true, "recipientAccountId": ACCOUNT}})
    };
    // A trail outside TRAIL_NAMES is none of the detector's business.
    handle(&st, &stop("someone-elses-trail")).await.unwrap();
    assert!(rig.alerts().await.is_empty());
    handle(&st, &stop(&rig.trail_name)).await.unwrap();
    let alerts = rig.alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].envelope["MessageAttributes"]["event"]["Value"],
        "aws.microvm.governance.tampered"
    );
    assert_eq!(
        alerts[0].envelope["MessageAttributes"]["rule"]["Value"],
        "trail-stopped"
    );
    assert!(
        alerts[0]
            .message
            .contains(&format!("Resource: {}", rig.trail_name)),
        "{}",
        alerts[0].message
    );
    assert!(
        alerts[0]
            .subject
            .as_deref()
            .unwrap()
            .contains("StopLogging")
    );
    assert!(alerts[0].message.contains("mallory"));
}

#[tokio::test]
async fn sweep_finds_exactly_the_unmanaged_vms_among_managed_ones_over_multiple_pages() {
    let rig = Rig::new().await;
    rig.trail(true).await;
    let managed = rig
        .emulator
        .seed_microvms(110, IMAGE, MicrovmState::Running);
    let unmanaged = rig.emulator.seed_microvms(7, IMAGE, MicrovmState::Running);
    let terminated = rig
        .emulator
        .seed_microvms(5, IMAGE, MicrovmState::Terminated);
    rig.emulator.age_microvms(3600);
    for id in &managed {
        rig.ledger_vm(id).await;
    }
    let st = rig.state().await;
    let answer = handle(&st, &scheduled()).await.unwrap();
    assert_eq!(answer["counters"]["microvms_listed"], 122);
    assert_eq!(answer["counters"]["unmanaged"], 7);
    let alerts = rig.alerts().await;
    let mut alerted: Vec<String> = alerts
        .iter()
        .map(|a| {
            assert_eq!(
                a.envelope["MessageAttributes"]["event"]["Value"], "aws.microvm.unmanaged.detected",
                "{}",
                a.message
            );
            let details = a.message.split("--- details (JSON) ---").nth(1).unwrap();
            let v: Value = serde_json::from_str(details.trim()).unwrap();
            assert_eq!(v["image_arn"], IMAGE);
            assert_eq!(v["microvm_state"], "RUNNING");
            assert!(v["event_time"].as_str().unwrap().ends_with('Z'));
            // The sweep names where it found the MicroVM.
            assert_eq!(v["account_id"], ACCOUNT);
            assert_eq!(v["region"], "us-east-1");
            v["microvm_id"].as_str().unwrap().to_string()
        })
        .collect();
    alerted.sort();
    let mut expected = unmanaged.clone();
    expected.sort();
    assert_eq!(alerted, expected);
    assert!(terminated.iter().all(|t| !alerted.contains(t)));
    // Every page was read (122 VMs / 50 a page = 3 pages), and remediation is
    // off by default: no suspend or terminate reached the API.
    let calls = rig.emulator.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.operation == "ListMicrovms")
            .count(),
        3
    );
    assert!(
        calls
            .iter()
            .all(|c| c.operation != "SuspendMicrovm" && c.operation != "TerminateMicrovm")
    );
    assert_eq!(rig.contro1.state().audit_records().len(), 7);
    // The next sweep the same day alerts nothing new.
    handle(&st, &scheduled()).await.unwrap();
    assert!(rig.alerts().await.is_empty());
}

#[tokio::test]
async fn remediation_terminate_acts_only_on_unmanaged_vms_and_audits_each_action() {
    let mut rig = Rig::new().await;
    rig.trail(true).await;
    rig.env.insert("REMEDIATION".into(), "terminate".into());
    rig.env
        .insert("REMEDIATION_GRACE_SECONDS".into(), "600".into());
    // 2 of 5 is 40% of the fleet: allow it here (the cap is tested below).
    rig.env
        .insert("REMEDIATION_MAX_FLEET_PERCENT".into(), "50".into());
    let managed = rig.emulator.seed_microvms(3, IMAGE, MicrovmState::Running);
    let mut unmanaged = rig.emulator.seed_microvms(2, IMAGE, MicrovmState::Running);
    rig.emulator.age_microvms(3600);
    for id in &managed {
        rig.ledger_vm(id).await;
    }
    let st = rig.state().await;
    handle(&st, &scheduled()).await.unwrap();
    let mut terminated: Vec<String> = rig
        .emulator
        .calls()
        .into_iter()
        .filter(|c| c.operation == "TerminateMicrovm")
        .map(|c| c.microvm_id.unwrap())
        .collect();
    terminated.sort();
    unmanaged.sort();
    assert_eq!(terminated, unmanaged);
    for id in &managed {
        assert_eq!(
            rig.emulator.microvm(id).unwrap().state,
            MicrovmState::Running
        );
    }
    let audits = rig.contro1.state().audit_records();
    let actions: Vec<&str> = audits
        .iter()
        .filter(|a| a["action"] == "aws.microvm.terminate.requested")
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["success", "success"]);
}

#[tokio::test]
async fn with_a_wrong_ledger_table_terminate_halts_instead_of_terminating_the_fleet() {
    // Regression: LEDGER_TABLE pointed at an existing but empty table with
    // REMEDIATION=terminate terminated 60 of 60 MicroVMs and exited 0.
    let mut rig = Rig::new().await;
    rig.trail(true).await;
    rig.env.insert("REMEDIATION".into(), "terminate".into());
    let fleet = rig.emulator.seed_microvms(60, IMAGE, MicrovmState::Running);
    rig.emulator.age_microvms(7200);
    let st = rig.state().await;
    let answer = handle(&st, &scheduled()).await.unwrap();
    assert_eq!(answer["counters"]["unmanaged"], 60);
    assert_eq!(answer["counters"]["remediations"], 0);
    assert_eq!(answer["counters"]["remediations_halted"], 60);
    let calls = rig.emulator.calls();
    assert!(
        calls
            .iter()
            .all(|c| c.operation != "TerminateMicrovm" && c.operation != "SuspendMicrovm")
    );
    assert!(
        fleet
            .iter()
            .all(|id| rig.emulator.microvm(id).unwrap().state == MicrovmState::Running)
    );
    let alerts = rig.alerts().await;
    let halted: Vec<_> = alerts
        .iter()
        .filter(|a| a.envelope["MessageAttributes"]["rule"]["Value"] == "remediation-halted")
        .collect();
    assert_eq!(halted.len(), 1, "{alerts:?}");
    assert!(halted[0].message.contains("60 of 60 active MicroVMs"));
    assert_eq!(alerts.len(), 61);
}

#[tokio::test]
async fn degraded_detection_when_the_trail_does_not_select_microvm_data_events() {
    let rig = Rig::new().await;
    rig.trail(false).await;
    let st = rig.state().await;
    let answer = handle(&st, &scheduled()).await.unwrap();
    assert_eq!(answer["counters"]["trails_checked"], 1);
    let alerts = rig.alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        alerts[0].envelope["MessageAttributes"]["event"]["Value"],
        "aws.microvm.detection.degraded"
    );
    assert!(
        alerts[0].message.contains("eventCategory is not Data"),
        "{}",
        alerts[0].message
    );
    // With the selector in place, the same check passes.
    let good = Rig::new().await;
    good.trail(true).await;
    handle(&good.state().await, &scheduled()).await.unwrap();
    assert!(good.alerts().await.is_empty());
}

#[tokio::test]
async fn launcher_activity_at_the_emulator_fed_back_as_cloudtrail_is_told_apart_from_a_bypass() {
    // End to end: the launcher's role and an IAM user both call the MicroVMs
    // API; the emulator writes the CloudTrail log AWS would; only the calls
    // the ledger does not account for are reported.
    let rig = Rig::new().await;
    rig.emulator.register_identity(
        "AKIALAUNCHER",
        CallerIdentity::assumed_role(LAUNCHER_ROLE, "microvm-launcher"),
    );
    rig.emulator
        .register_identity("AKIAALICE", CallerIdentity::iam_user(ACCOUNT, "alice"));
    let launcher = rig.emulator.client("AKIALAUNCHER");
    let alice = rig.emulator.client("AKIAALICE");
    let seeded = rig.emulator.seed_microvms(2, IMAGE, MicrovmState::Running);
    let out = launcher
        .suspend_microvm()
        .microvm_identifier(&seeded[0])
        .send()
        .await
        .unwrap();
    let _ = out;
    let launcher_req = rig
        .emulator
        .calls()
        .last()
        .map(|c| c.request_id.clone())
        .unwrap();
    rig.ledger_call("c1-x", "SuspendMicrovm", &seeded[0], &launcher_req)
        .await;
    alice
        .terminate_microvm()
        .microvm_identifier(&seeded[1])
        .send()
        .await
        .unwrap();
    let key = Emulator::cloudtrail_object_key(std::time::SystemTime::now());
    rig.put(&key, rig.emulator.cloudtrail_log_gz()).await;
    let st = rig.state().await;
    let answer = handle(&st, &s3_event(&rig.bucket, &key)).await.unwrap();
    assert_eq!(answer["counters"]["governed"], 2, "{answer}");
    let alerts = rig.alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].message.contains("user/alice"));
    assert!(alerts[0].message.contains(&seeded[1]));
}

#[tokio::test]
async fn a_folder_marker_key_is_ignored_not_read_and_its_message_is_acknowledged() {
    // The S3 console and sync tools create empty `.../` objects; they are
    // never CloudTrail files and must not send their message to the DLQ.
    let rig = Rig::new().await;
    let st = rig.state().await;
    let folder = "AWSLogs/123456789012/CloudTrail/us-east-1/";
    rig.put(folder, Vec::new()).await;
    let good = log_key(7);
    let ev = format!("ev-{}", uuid_like());
    rig.put(&good, gz_log(&[bypass_record(&ev)])).await;
    let event = sqs_event(&[
        ("m-folder", s3_event(&rig.bucket, folder).to_string()),
        ("m-good", s3_event(&rig.bucket, &good).to_string()),
    ]);
    let answer = handle(&st, &event).await.unwrap();
    assert_eq!(failed_ids(&answer), Vec::<String>::new(), "{answer}");
    assert_eq!(answer["counters"]["s3_records_ignored"], 1, "{answer}");
    assert_eq!(answer["counters"]["objects_read"], 1, "{answer}");
    assert_eq!(rig.alerts().await.len(), 1);
}

#[tokio::test]
async fn a_config_snapshot_under_a_cloudtrail_key_is_a_counted_error_not_a_record_and_the_message_is_acknowledged()
 {
    // An AWS Config snapshot (or any JSON) written under the trail's
    // prefix with a log file's name: JSON, but not CloudTrail. It must not
    // count as a record, must be reported, and must not send the message
    // to the DLQ (a retry would read the same bytes).
    let rig = Rig::new().await;
    let st = rig.state().await;
    let snapshot = json!({
        "fileVersion": "1.0",
        "configSnapshotId": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        "configurationItems": [{"resourceType": "AWS::S3::Bucket", "resourceId": "b"}]
    });
    let key = log_key(8);
    rig.put(&key, gz_bytes(snapshot.to_string().as_bytes()))
        .await;
    let event = sqs_event(&[("m-config", s3_event(&rig.bucket, &key).to_string())]);
    let answer = handle(&st, &event).await.unwrap();
    assert_eq!(failed_ids(&answer), Vec::<String>::new(), "{answer}");
    assert_eq!(answer["counters"]["records_in"], 0, "{answer}");
    assert_eq!(answer["counters"]["json_not_cloudtrail"], 1, "{answer}");
    assert!(rig.alerts().await.is_empty());
    let errors = rig.lines.with("error");
    assert!(
        errors.iter().any(|l| {
            let e = l["error"].as_str().unwrap_or_default();
            e.contains(&key) && e.contains("not CloudTrail")
        }),
        "{errors:?}"
    );
}
