//! Smoke test of the moto helpers against the shared local moto server, and proof that a
//! missing `MOTO_ENDPOINT` fails loudly instead of skipping.

use aws_sdk_dynamodb::types::AttributeValue;
use testkit::{moto, unique_name};

#[tokio::test]
async fn dynamodb_table_put_then_get_round_trips_an_item() {
    let client = moto::dynamodb_client().await;
    let table = unique_name("smoke");
    moto::create_pk_table(&client, &table).await;
    client
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("run#1".into()))
        .item("owner", AttributeValue::S("team-a".into()))
        .send()
        .await
        .unwrap();
    let got = client
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("run#1".into()))
        .send()
        .await
        .unwrap();
    let item = got.item().expect("item stored");
    assert_eq!(item["owner"], AttributeValue::S("team-a".into()));
}

#[tokio::test]
async fn sns_publishes_arrive_in_the_subscribed_queue() {
    let sns = moto::sns_client().await;
    let sqs = moto::sqs_client().await;
    let (topic, queue) = moto::sns_topic_with_queue(&sns, &sqs, &unique_name("alerts")).await;
    sns.publish()
        .topic_arn(&topic)
        .subject("bypass")
        .message(r#"{"event":"aws.microvm.bypass.detected"}"#)
        .send()
        .await
        .unwrap();
    let messages = moto::drain_sns_messages(&sqs, &queue).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].subject.as_deref(), Some("bypass"));
    assert_eq!(
        messages[0].message,
        r#"{"event":"aws.microvm.bypass.detected"}"#
    );
    assert!(moto::drain_queue(&sqs, &queue).await.is_empty());
}

#[tokio::test]
async fn s3_bucket_accepts_and_returns_an_object() {
    let s3 = moto::s3_client().await;
    let bucket = unique_name("trail");
    moto::create_bucket(&s3, &bucket).await;
    s3.put_object()
        .bucket(&bucket)
        .key("AWSLogs/x.json.gz")
        .body(b"abc".to_vec().into())
        .send()
        .await
        .unwrap();
    let body = s3
        .get_object()
        .bucket(&bucket)
        .key("AWSLogs/x.json.gz")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(&body[..], b"abc");
}

/// Run only by `missing_moto_endpoint_fails_loudly` in a child process without MOTO_ENDPOINT.
#[test]
#[ignore = "probe run by missing_moto_endpoint_fails_loudly"]
fn probe_moto_endpoint() {
    let _ = moto::endpoint();
}

#[test]
fn missing_moto_endpoint_fails_loudly() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "probe_moto_endpoint", "--nocapture"])
        .env_remove(moto::ENDPOINT_ENV)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "probe passed without MOTO_ENDPOINT: {text}"
    );
    assert!(text.contains("MOTO_ENDPOINT is not set"), "{text}");
    assert!(text.contains("scripts/test.sh"), "{text}");
}
