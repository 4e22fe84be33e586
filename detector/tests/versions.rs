//! A log object overwritten in the trail bucket (threat-model row T17),
//! through the real handler against moto's versioned S3: the detector reads
//! the object version the notification names (what CloudTrail wrote), not
//! the attacker's later copy under the same key, and reports the overwrite.
//!
//! moto's own S3 notifications carry no version id, so the notifications
//! here are built in the shapes AWS documents (S3 event message structure:
//! `s3.object.versionId`; EventBridge: `detail.object.version-id`).

mod common;

use common::{ACCOUNT, Rig, bypass_record, fixture, gz_log, log_key, uuid_like};
use detector::lambda::handler::handle;
use serde_json::{Value, json};

const FIXTURE_BUCKET: &str = "aws-cloudtrail-logs-111122223333-3f1a2b";

async fn versioned(rig: &Rig) {
    rig.s3
        .put_bucket_versioning()
        .bucket(&rig.bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("enable versioning");
}

/// Put `body` under `key`; the version id S3 gave it.
async fn put_version(rig: &Rig, key: &str, body: Vec<u8>) -> String {
    rig.s3
        .put_object()
        .bucket(&rig.bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .expect("put object")
        .version_id
        .expect("a versioned bucket returns a version id")
}

/// The S3 event of one `ObjectCreated:Put` of `key` (not form-encoded: the
/// keys here have no character that needs it), naming `version`.
fn s3_event_for(bucket: &str, key: &str, version: &str) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2025-10-02T14:05:31.512Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AROAEXAMPLE:regionalDeliverySession"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "detector",
               "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": key, "size": 1234, "eTag": "0123456789abcdef",
                          "versionId": version, "sequencer": "0066FD2A1B2C3D4E5F"}}
    }]})
}

/// Alerts of `rule` in what the alert topic received.
fn with_rule<'a>(
    alerts: &'a [testkit::moto::SnsMessage],
    rule: &str,
) -> Vec<&'a testkit::moto::SnsMessage> {
    alerts
        .iter()
        .filter(|a| a.envelope["MessageAttributes"]["rule"]["Value"] == rule)
        .collect()
}

#[tokio::test]
async fn a_log_object_overwritten_after_its_notification_is_read_as_cloudtrail_wrote_it() {
    let rig = Rig::new().await;
    versioned(&rig).await;
    let st = rig.state().await;
    let key = log_key(7);
    let event_id = format!("ev-{}", uuid_like());
    // CloudTrail delivers a file holding a bypass; S3 notifies its version.
    let original = put_version(&rig, &key, gz_log(&[bypass_record(&event_id)])).await;
    // Before the detector reads it, an insider with s3:PutObject replaces it
    // with a file that holds nothing.
    let overwrite = put_version(&rig, &key, gz_log(&[])).await;
    assert_ne!(original, overwrite);

    let answer = handle(&st, &s3_event_for(&rig.bucket, &key, &original))
        .await
        .expect("handled");
    assert_eq!(answer["counters"]["objects_read"], 1, "{answer}");
    assert_eq!(answer["counters"]["records_in"], 1, "{answer}");
    let alerts = rig.alerts().await;
    let bypass = with_rule(&alerts, "non-launcher-principal");
    assert_eq!(
        bypass.len(),
        1,
        "the bypass in the original version: {alerts:?}"
    );
    assert!(bypass[0].message.contains(&event_id));
}

#[tokio::test]
async fn a_notification_for_a_version_that_is_no_longer_the_latest_is_reported_as_an_overwrite() {
    let rig = Rig::new().await;
    versioned(&rig).await;
    let st = rig.state().await;
    let key = log_key(8);
    let original = put_version(&rig, &key, gz_log(&[])).await;
    let overwrite = put_version(&rig, &key, gz_log(&[])).await;

    let answer = handle(&st, &s3_event_for(&rig.bucket, &key, &original))
        .await
        .expect("handled");
    assert_eq!(answer["counters"]["objects_overwritten"], 1, "{answer}");
    let alerts = rig.alerts().await;
    let found = with_rule(&alerts, "trail-object-overwritten");
    assert_eq!(found.len(), 1, "{alerts:?}");
    let a = found[0];
    assert_eq!(
        a.envelope["MessageAttributes"]["event"]["Value"],
        "aws.microvm.governance.tampered"
    );
    assert!(
        a.message
            .contains(&format!("Resource: s3://{}/{key}", rig.bucket)),
        "{}",
        a.message
    );
    let why = a
        .message
        .lines()
        .find(|l| l.starts_with("Why:"))
        .expect("a Why: line");
    assert!(why.contains(&original) && why.contains(&overwrite), "{why}");

    // The same notification again (S3 and SQS deliver at least once): one alert.
    let answer = handle(&st, &s3_event_for(&rig.bucket, &key, &original))
        .await
        .expect("handled");
    assert_eq!(answer["counters"]["objects_overwritten"], 1, "{answer}");
    assert!(with_rule(&rig.alerts().await, "trail-object-overwritten").is_empty());
}

#[tokio::test]
async fn the_notification_of_the_latest_version_raises_no_overwrite() {
    let rig = Rig::new().await;
    versioned(&rig).await;
    let st = rig.state().await;
    let key = log_key(9);
    let only = put_version(&rig, &key, gz_log(&[])).await;
    let answer = handle(&st, &s3_event_for(&rig.bucket, &key, &only))
        .await
        .expect("handled");
    assert_eq!(answer["counters"]["objects_read"], 1, "{answer}");
    assert_eq!(answer["counters"]["objects_overwritten"], 0, "{answer}");
    assert_eq!(
        answer["counters"]["objects_read_unversioned"], 0,
        "{answer}"
    );
    assert!(with_rule(&rig.alerts().await, "trail-object-overwritten").is_empty());
}

#[tokio::test]
async fn an_eventbridge_object_created_event_is_read_by_its_version_id() {
    let rig = Rig::new().await;
    versioned(&rig).await;
    let st = rig.state().await;
    let key = log_key(10);
    let event_id = format!("ev-{}", uuid_like());
    let original = put_version(&rig, &key, gz_log(&[bypass_record(&event_id)])).await;
    put_version(&rig, &key, gz_log(&[])).await;
    let mut event: Value = serde_json::from_str(
        &fixture("eventbridge-object-created.json").replace(FIXTURE_BUCKET, &rig.bucket),
    )
    .unwrap();
    event["detail"]["object"]["key"] = json!(key);
    event["detail"]["object"]["version-id"] = json!(original);
    let answer = handle(&st, &event).await.expect("handled");
    assert_eq!(answer["counters"]["records_in"], 1, "{answer}");
    assert_eq!(answer["counters"]["objects_overwritten"], 1, "{answer}");
    let alerts = rig.alerts().await;
    assert_eq!(
        with_rule(&alerts, "non-launcher-principal").len(),
        1,
        "{alerts:?}"
    );
    assert_eq!(
        with_rule(&alerts, "trail-object-overwritten").len(),
        1,
        "{alerts:?}"
    );
}

#[tokio::test]
async fn cloudtrails_own_sns_message_names_no_version_so_the_latest_is_read_and_counted() {
    let rig = Rig::new().await;
    versioned(&rig).await;
    let st = rig.state().await;
    let key = log_key(11);
    put_version(&rig, &key, gz_log(&[])).await;
    let event = json!({"Records": [{
        "EventSource": "aws:sns", "EventVersion": "1.0",
        "EventSubscriptionArn": format!("arn:aws:sns:us-east-1:{ACCOUNT}:trail:sub"),
        "Sns": {"Type": "Notification", "MessageId": "m-1",
                "TopicArn": format!("arn:aws:sns:us-east-1:{ACCOUNT}:trail"),
                "Message": json!({"s3Bucket": rig.bucket, "s3ObjectKey": [key]}).to_string()}
    }]});
    let answer = handle(&st, &event).await.expect("handled");
    assert_eq!(answer["counters"]["objects_read"], 1, "{answer}");
    assert_eq!(
        answer["counters"]["objects_read_unversioned"], 1,
        "{answer}"
    );
    assert_eq!(answer["counters"]["objects_overwritten"], 0, "{answer}");
}

#[tokio::test]
async fn a_key_deleted_after_its_notification_is_still_read_by_version_and_reported() {
    let rig = Rig::new().await;
    versioned(&rig).await;
    let st = rig.state().await;
    let key = log_key(12);
    let event_id = format!("ev-{}", uuid_like());
    let original = put_version(&rig, &key, gz_log(&[bypass_record(&event_id)])).await;
    // A delete in a versioned bucket leaves a delete marker on top.
    rig.s3
        .delete_object()
        .bucket(&rig.bucket)
        .key(&key)
        .send()
        .await
        .expect("delete");
    let answer = handle(&st, &s3_event_for(&rig.bucket, &key, &original))
        .await
        .expect("handled");
    assert_eq!(answer["counters"]["records_in"], 1, "{answer}");
    assert_eq!(answer["counters"]["objects_latest_deleted"], 1, "{answer}");
    assert_eq!(answer["counters"]["objects_overwritten"], 0, "{answer}");
    let alerts = rig.alerts().await;
    let deleted = with_rule(&alerts, "trail-object-deleted");
    assert_eq!(deleted.len(), 1, "{alerts:?}");
    let why = deleted[0]
        .message
        .lines()
        .find(|l| l.starts_with("Why:"))
        .expect("a Why: line");
    assert!(
        why.contains(&original) && why.contains("no current object"),
        "{why}"
    );
    assert_eq!(with_rule(&alerts, "non-launcher-principal").len(), 1);
}

#[tokio::test]
async fn a_version_deleted_for_good_is_reported_and_the_message_still_fails_for_the_dlq() {
    let rig = Rig::new().await;
    versioned(&rig).await;
    let st = rig.state().await;
    let key = log_key(14);
    let original = put_version(&rig, &key, gz_log(&[bypass_record("ev-lost")])).await;
    // DeleteObject with the version id removes that version for good.
    rig.s3
        .delete_object()
        .bucket(&rig.bucket)
        .key(&key)
        .version_id(&original)
        .send()
        .await
        .expect("delete the version");
    let body = s3_event_for(&rig.bucket, &key, &original).to_string();
    let event = common::sqs_event(&[("m-gone", body)]);
    let answer = handle(&st, &event)
        .await
        .expect("the batch itself succeeds");
    assert_eq!(common::failed_ids(&answer), ["m-gone"], "{answer}");
    assert_eq!(answer["counters"]["objects_version_gone"], 1, "{answer}");
    assert_eq!(answer["counters"]["objects_read"], 0, "{answer}");
    let alerts = rig.alerts().await;
    let deleted = with_rule(&alerts, "trail-object-deleted");
    assert_eq!(deleted.len(), 1, "{alerts:?}");
    assert!(
        deleted[0].message.contains("deleted for good"),
        "{}",
        deleted[0].message
    );
    // Retried (as SQS would, before the DLQ): still failed, not alerted twice.
    let answer = handle(&st, &event)
        .await
        .expect("the batch itself succeeds");
    assert_eq!(common::failed_ids(&answer), ["m-gone"], "{answer}");
    assert!(with_rule(&rig.alerts().await, "trail-object-deleted").is_empty());
}

#[tokio::test]
async fn a_version_that_does_not_exist_fails_the_message_instead_of_reading_another() {
    let rig = Rig::new().await;
    versioned(&rig).await;
    let st = rig.state().await;
    let key = log_key(13);
    put_version(&rig, &key, gz_log(&[])).await;
    let body = s3_event_for(&rig.bucket, &key, "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY").to_string();
    let answer = handle(&st, &common::sqs_event(&[("m-forged", body)]))
        .await
        .expect("the batch itself succeeds");
    assert_eq!(common::failed_ids(&answer), ["m-forged"]);
    assert_eq!(answer["counters"]["objects_read"], 0, "{answer}");
    let errors = rig.lines.with("error");
    let e = errors
        .iter()
        .find(|l| l["key"] == json!(key))
        .expect("an error line naming the key");
    assert!(
        e["error"].as_str().unwrap().contains("GetObject (version"),
        "{e}"
    );
}
