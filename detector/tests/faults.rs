//! Fault injection for the detector Lambda's handler: S3, SNS and DynamoDB
//! failing (moto behind `testkit::fault_proxy`, which answers chosen calls
//! with the service's own error shape, through the real SDK clients and
//! their default retry policy) and the MicroVMs API failing during the sweep
//! (the testkit emulator, `Emulator::fail_next`).
//!
//! The promise under test (ARCHITECTURE.md): a finding is never lost
//! silently. A message whose object cannot be read, or whose finding cannot
//! be delivered, is reported in `batchItemFailures` (SQS retries it, then
//! the DLQ holds it); a direct invocation fails (Lambda retries it). After
//! the fault clears, the redelivery raises each finding exactly once.
//!
//! The unfaulted behaviour (every trigger shape, corrupt objects, a missing
//! SNS topic) is in `tests/lambda.rs`. Needs `MOTO_ENDPOINT`.

mod common;

use common::{IMAGE, bypass_record, failed_ids, gz_log, log_key, s3_event, scheduled, sqs_event};
use detector::lambda::handler::{State, handle};
use serde_json::{Value, json};
use std::ops::Deref;
use testkit::emulator::MicrovmState;
use testkit::fault_proxy::{Fault, FaultProxy, Matcher, SDK_MAX_ATTEMPTS};
use testkit::moto;

/// The SDK's attempts per call (default standard retry mode), as a count.
const ATTEMPTS: usize = SDK_MAX_ATTEMPTS as usize;

/// One test's resources in the shared moto, the proxy the detector's AWS
/// clients go through, the MicroVMs emulator and the Contro1 stand-in.
struct Rig {
    /// The resources; its clients go straight to moto (setup and inspection
    /// never go through the proxy).
    moto: common::Rig,
    proxy: FaultProxy,
    state: State,
}

impl Deref for Rig {
    type Target = common::Rig;

    fn deref(&self) -> &common::Rig {
        &self.moto
    }
}

impl Rig {
    async fn new() -> Rig {
        let proxy = FaultProxy::start().await;
        let moto = common::Rig::new().await;
        let state = moto.state_with(&proxy.sdk_config().await).await;
        Rig { moto, proxy, state }
    }

    /// A CloudTrail file holding one bypass per event id; its key.
    async fn log_file(&self, event_ids: &[&str]) -> String {
        let key = log_key(5);
        let records: Vec<Value> = event_ids.iter().map(|id| bypass_record(id)).collect();
        self.put(&key, gz_log(&records)).await;
        key
    }

    /// True when `channel` (`sns`, `contro1`) has delivered `key`.
    async fn marked_on(&self, key: &str, channel: &str) -> bool {
        self.dedupe_item(key)
            .await
            .is_some_and(|item| item.contains_key(&format!("ch_{channel}")))
    }

    /// True when every channel has delivered `key`.
    async fn marked(&self, key: &str) -> bool {
        self.marked_on(key, "sns").await && self.marked_on(key, "contro1").await
    }

    /// Alert marks in the dedupe table (the heartbeat item, which shares
    /// the table, is not one).
    async fn marks(&self) -> usize {
        self.ddb
            .scan()
            .table_name(&self.dedupe_table)
            .consistent_read(true)
            .send()
            .await
            .expect("scan dedupe table")
            .items
            .unwrap_or_default()
            .iter()
            .filter(|item| {
                item.get("pk")
                    .and_then(|k| k.as_s().ok())
                    .is_some_and(|k| !k.starts_with("heartbeat#"))
            })
            .count()
    }

    /// The SQS message `id` carrying the S3 notification of `key`.
    fn sqs(&self, id: &str, key: &str) -> Value {
        sqs_event(&[(id, s3_event(&self.bucket, key).to_string())])
    }
}

fn fresh_id(prefix: &str) -> String {
    testkit::unique_name(prefix)
}

/// How many alerts name each event id, in order.
fn per_event(alerts: &[moto::SnsMessage], event_ids: &[&str]) -> Vec<usize> {
    event_ids
        .iter()
        .map(|id| alerts.iter().filter(|a| a.message.contains(id)).count())
        .collect()
}

#[tokio::test]
async fn s3_no_such_key_fails_the_message_and_the_invocation_naming_bucket_and_key() {
    let rig = Rig::new().await;
    // One object deleted after its notification, one that never existed.
    let deleted = rig.log_file(&[&fresh_id("ev")]).await;
    rig.s3
        .delete_object()
        .bucket(&rig.bucket)
        .key(&deleted)
        .send()
        .await
        .unwrap();
    let never = log_key(5);
    let event = sqs_event(&[
        ("m-deleted", s3_event(&rig.bucket, &deleted).to_string()),
        ("m-never", s3_event(&rig.bucket, &never).to_string()),
    ]);
    let answer = handle(&rig.state, &event).await.expect("the batch answers");
    // Not acknowledged: both go back to the queue (retry, then the DLQ).
    assert_eq!(failed_ids(&answer), ["m-deleted", "m-never"]);
    assert_eq!(answer["counters"]["messages_failed"], 2);
    assert_eq!(answer["counters"]["objects_failed"], 2);
    assert_eq!(answer["counters"]["objects_read"], 0);
    for key in [&deleted, &never] {
        let line = rig
            .lines
            .with("error")
            .into_iter()
            .find(|l| l["key"] == json!(key))
            .unwrap_or_else(|| panic!("no error line for {key}"));
        assert_eq!(line["bucket"], json!(rig.bucket));
        let error = line["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("s3://{}/{key}", rig.bucket)) && error.contains("NoSuchKey"),
            "{error}"
        );
        // A 404 is final for the SDK: one GetObject per delivery, no retry storm.
        assert_eq!(
            rig.proxy
                .count(&Matcher::s3_object("GET", &rig.bucket, key)),
            1
        );
    }
    // A direct S3 invocation fails (Lambda retries it) with the same message.
    let err = handle(&rig.state, &s3_event(&rig.bucket, &never))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("s3://{}/{never}", rig.bucket)) && err.contains("NoSuchKey"),
        "{err}"
    );
    assert!(rig.alerts().await.is_empty());
    assert_eq!(rig.marks().await, 0);
}

#[tokio::test]
async fn s3_no_such_key_for_an_object_not_yet_readable_fails_the_message_and_the_retry_alerts_once()
{
    let rig = Rig::new().await;
    let ev = fresh_id("ev");
    let key = rig.log_file(&[&ev]).await;
    let get = Matcher::s3_object("GET", &rig.bucket, &key);
    rig.proxy
        .fail_next(1, get.clone(), Fault::s3_no_such_key(&key));
    let answer = handle(&rig.state, &rig.sqs("m1", &key)).await.unwrap();
    assert_eq!(failed_ids(&answer), ["m1"]);
    assert!(rig.alerts().await.is_empty());
    // SQS redelivers: read, alerted once.
    let answer = handle(&rig.state, &rig.sqs("m1", &key)).await.unwrap();
    assert_eq!(failed_ids(&answer), Vec::<String>::new());
    let alerts = rig.alerts().await;
    assert_eq!(per_event(&alerts, &[&ev]), [1]);
    assert_eq!(alerts.len(), 1);
    assert_eq!((rig.proxy.count(&get), rig.proxy.faulted(&get)), (2, 1));
}

#[tokio::test]
async fn transient_sns_throttling_is_retried_by_the_sdk_and_each_finding_is_alerted_once() {
    let rig = Rig::new().await;
    let (a, b) = (fresh_id("ev"), fresh_id("ev"));
    let key = rig.log_file(&[&a, &b]).await;
    // The object's two findings go out in one PublishBatch.
    let publish = Matcher::sns("PublishBatch");
    rig.proxy
        .fail_next(2, publish.clone(), Fault::sns_throttling());
    let answer = handle(&rig.state, &rig.sqs("m1", &key)).await.unwrap();
    assert_eq!(failed_ids(&answer), Vec::<String>::new());
    assert_eq!(answer["counters"]["alerted"], 2);
    // Two throttles, then delivered.
    assert_eq!(
        (rig.proxy.count(&publish), rig.proxy.faulted(&publish)),
        (3, 2)
    );
    let alerts = rig.alerts().await;
    assert_eq!(per_event(&alerts, &[&a, &b]), [1, 1]);
    assert_eq!(alerts.len(), 2);
    assert!(rig.marked(&format!("event#{a}")).await && rig.marked(&format!("event#{b}")).await);
    assert_eq!(rig.contro1.state().audit_records().len(), 2);
}

#[tokio::test]
async fn a_round_of_25_findings_goes_out_in_three_publish_batches_at_once_each_alerted_once() {
    let rig = Rig::new().await;
    let ids: Vec<String> = (0..25).map(|_| fresh_id("ev")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let key = rig.log_file(&refs).await;
    let publish = Matcher::sns("PublishBatch");
    let answer = handle(&rig.state, &rig.sqs("m1", &key)).await.unwrap();
    assert_eq!(failed_ids(&answer), Vec::<String>::new(), "{answer}");
    assert_eq!(answer["counters"]["alerted"], 25);
    // 10 + 10 + 5 entries, the three requests in flight together.
    assert_eq!(rig.proxy.count(&publish), 3);
    assert_eq!(rig.proxy.count(&Matcher::sns("Publish")), 0);
    let alerts = rig.alerts().await;
    assert_eq!(per_event(&alerts, &refs), vec![1; 25]);
    assert_eq!(alerts.len(), 25);
    for ev in &refs {
        assert!(rig.marked_on(&format!("event#{ev}"), "sns").await, "{ev}");
    }
    // Every request failing past the SDK's retries fails every finding,
    // each request retried on its own.
    rig.proxy
        .fail_always(publish.clone(), Fault::sns_internal_error());
    let more: Vec<String> = (0..25).map(|_| fresh_id("ev")).collect();
    let more_refs: Vec<&str> = more.iter().map(String::as_str).collect();
    let key = rig.log_file(&more_refs).await;
    let answer = handle(&rig.state, &rig.sqs("m2", &key)).await.unwrap();
    assert_eq!(failed_ids(&answer), ["m2"]);
    assert_eq!(answer["counters"]["alert_failures"], 25, "{answer}");
    assert_eq!(rig.proxy.count(&publish), 3 + 3 * ATTEMPTS);
    for ev in &more_refs {
        assert!(!rig.marked_on(&format!("event#{ev}"), "sns").await, "{ev}");
    }
}

#[tokio::test]
async fn sns_failure_past_the_sdk_retries_fails_the_message_and_the_redelivery_completes_without_duplicates()
 {
    let mut rig = Rig::new().await;
    // One message at a time, so each object's findings are a round of their
    // own, raised at once: the faults hit the first one's Publish only.
    rig.state.message_concurrency = 1;
    rig.state.coalesce_window = std::time::Duration::ZERO;
    let (a, b) = (fresh_id("ev"), fresh_id("ev"));
    let (key_a, key_b) = (rig.log_file(&[&a]).await, rig.log_file(&[&b]).await);
    let batch_of_two = || {
        sqs_event(&[
            ("m1", s3_event(&rig.bucket, &key_a).to_string()),
            ("m2", s3_event(&rig.bucket, &key_b).to_string()),
        ])
    };
    let publish = Matcher::sns("Publish");
    // Every attempt of the first finding's Publish fails; the second's succeeds.
    rig.proxy.fail_next(
        ATTEMPTS as u32,
        publish.clone(),
        Fault::sns_internal_error(),
    );
    let answer = handle(&rig.state, &batch_of_two()).await.unwrap();
    assert_eq!(failed_ids(&answer), ["m1"]);
    assert_eq!(answer["counters"]["alert_failures"], 1);
    assert_eq!(answer["counters"]["alerted"], 1);
    let first = rig.alerts().await;
    assert_eq!(per_event(&first, &[&a, &b]), [0, 1]);
    assert!(!rig.marked_on(&format!("event#{a}"), "sns").await);
    assert!(rig.marked_on(&format!("event#{a}"), "contro1").await);
    assert!(rig.marked(&format!("event#{b}")).await);
    let failed = rig.lines.with("message-failed");
    assert_eq!(failed.len(), 1);
    let error = failed[0]["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("event#{a}"))
            && error.contains("sns")
            && error.contains("InternalError"),
        "{error}"
    );
    // The redelivery raises the missing one on SNS only and suppresses the
    // delivered one.
    let answer = handle(&rig.state, &batch_of_two()).await.unwrap();
    assert_eq!(failed_ids(&answer), Vec::<String>::new());
    assert_eq!(answer["counters"]["alerted"], 1);
    assert_eq!(answer["counters"]["suppressed"], 1);
    assert_eq!(rig.contro1.state().audit_records().len(), 2);
    let second = rig.alerts().await;
    assert_eq!(per_event(&second, &[&a, &b]), [1, 0]);
    assert_eq!(first.len() + second.len(), 2);
    assert_eq!(rig.contro1.state().audit_records().len(), 2);
}

#[tokio::test]
async fn findings_of_messages_read_together_share_one_publish_batch_and_its_failure_fails_exactly_those_messages()
 {
    let mut rig = Rig::new().await;
    // A window far longer than reading two small objects takes, so both
    // objects' findings are raised together whatever the machine's load.
    rig.state.coalesce_window = std::time::Duration::from_secs(1);
    let (a, b, c) = (fresh_id("ev"), fresh_id("ev"), fresh_id("ev"));
    let (key_a, key_b) = (rig.log_file(&[&a]).await, rig.log_file(&[&b, &c]).await);
    let batch = || {
        sqs_event(&[
            ("m1", s3_event(&rig.bucket, &key_a).to_string()),
            ("m2", s3_event(&rig.bucket, &key_b).to_string()),
        ])
    };
    let publish_batch = Matcher::sns("PublishBatch");
    rig.proxy
        .fail_always(publish_batch.clone(), Fault::sns_internal_error());
    let answer = handle(&rig.state, &batch()).await.unwrap();
    let mut failed = failed_ids(&answer);
    failed.sort();
    assert_eq!(failed, ["m1", "m2"], "{answer}");
    assert_eq!(answer["counters"]["alert_failures"], 3, "{answer}");
    // One PublishBatch for the three findings of both objects, through
    // every SDK attempt; no Publish of its own.
    assert_eq!(rig.proxy.count(&publish_batch), ATTEMPTS);
    assert_eq!(rig.proxy.count(&Matcher::sns("Publish")), 0);
    assert!(rig.alerts().await.is_empty());
    // Contro1 delivered each: the redelivery goes to SNS only, once.
    assert_eq!(rig.contro1.state().audit_records().len(), 3);
    rig.proxy.clear();
    let answer = handle(&rig.state, &batch()).await.unwrap();
    assert_eq!(failed_ids(&answer), Vec::<String>::new(), "{answer}");
    assert_eq!(rig.proxy.count(&publish_batch), ATTEMPTS + 1);
    assert_eq!(per_event(&rig.alerts().await, &[&a, &b, &c]), [1, 1, 1]);
    assert_eq!(rig.contro1.state().audit_records().len(), 3);
    for ev in [&a, &b, &c] {
        assert!(rig.marked(&format!("event#{ev}")).await);
    }
}

#[tokio::test]
async fn contro1_unreachable_across_three_receives_sends_exactly_one_sns_alert_and_the_record_once_it_recovers()
 {
    // Before delivery was recorded per channel, each of the three receives
    // re-sent the SNS alert because the Contro1 record had failed.
    let rig = Rig::new().await;
    let ev = fresh_id("ev");
    let key = rig.log_file(&[&ev]).await;
    let batch = || sqs_event(&[("m1", s3_event(&rig.bucket, &key).to_string())]);
    rig.contro1.state().fail_next(1000, 503);
    for receive in 1..=3 {
        let answer = handle(&rig.state, &batch()).await.unwrap();
        assert_eq!(failed_ids(&answer), ["m1"], "receive {receive}: {answer}");
    }
    let during = rig.alerts().await;
    assert_eq!(per_event(&during, &[&ev]), [1], "{during:?}");
    assert!(rig.contro1.state().audit_records().is_empty());
    assert!(rig.marked_on(&format!("event#{ev}"), "sns").await);
    assert!(!rig.marked_on(&format!("event#{ev}"), "contro1").await);
    // Contro1 is back: the next receive completes the Contro1 record only.
    rig.contro1.state().fail_next(0, 503);
    let answer = handle(&rig.state, &batch()).await.unwrap();
    assert_eq!(failed_ids(&answer), Vec::<String>::new(), "{answer}");
    assert!(rig.alerts().await.is_empty());
    assert_eq!(rig.contro1.state().audit_records().len(), 1);
}

#[tokio::test]
async fn persistent_sns_failure_fails_every_delivery_writes_no_mark_and_the_first_good_redelivery_alerts_each_finding_once()
 {
    let rig = Rig::new().await;
    let (a, b) = (fresh_id("ev"), fresh_id("ev"));
    let key = rig.log_file(&[&a, &b]).await;
    let publish = Matcher::sns("PublishBatch");
    rig.proxy
        .fail_always(publish.clone(), Fault::sns_throttling());
    rig.proxy
        .fail_always(Matcher::sns("Publish"), Fault::sns_throttling());
    for round in 1..=2 {
        let answer = handle(&rig.state, &rig.sqs("m1", &key)).await.unwrap();
        assert_eq!(failed_ids(&answer), ["m1"], "round {round}");
        assert_eq!(answer["counters"]["alert_failures"], 2, "round {round}");
        // Both findings in one batch, every SDK attempt, each round.
        assert_eq!(rig.proxy.count(&publish), ATTEMPTS * round);
    }
    // A direct invocation fails with the SNS error.
    let err = handle(&rig.state, &s3_event(&rig.bucket, &key))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("SNS PublishBatch") && err.contains("Throttling"),
        "{err}"
    );
    assert!(rig.alerts().await.is_empty());
    // Each channel is marked on its own: Contro1 delivered both findings on
    // the first round and was never sent them again; SNS has no mark.
    assert_eq!(rig.contro1.state().audit_records().len(), 2);
    for ev in [&a, &b] {
        assert!(rig.marked_on(&format!("event#{ev}"), "contro1").await);
        assert!(!rig.marked_on(&format!("event#{ev}"), "sns").await);
    }
    // The fault clears; the next redelivery alerts each finding once on SNS
    // (only), and the one after that nothing.
    rig.proxy.clear();
    let answer = handle(&rig.state, &rig.sqs("m1", &key)).await.unwrap();
    assert_eq!(failed_ids(&answer), Vec::<String>::new());
    let alerts = rig.alerts().await;
    assert_eq!(per_event(&alerts, &[&a, &b]), [1, 1]);
    assert_eq!(alerts.len(), 2);
    assert_eq!(rig.marks().await, 2);
    assert!(rig.marked(&format!("event#{a}")).await && rig.marked(&format!("event#{b}")).await);
    assert_eq!(rig.contro1.state().audit_records().len(), 2);
    let answer = handle(&rig.state, &rig.sqs("m1", &key)).await.unwrap();
    assert_eq!(answer["counters"]["suppressed"], 2);
    assert!(rig.alerts().await.is_empty());
}

#[tokio::test]
async fn transient_throttling_on_the_dedupe_write_is_retried_and_alerts_once() {
    let rig = Rig::new().await;
    let ev = fresh_id("ev");
    let key = rig.log_file(&[&ev]).await;
    let marks = Matcher::dynamodb_on("BatchWriteItem", &rig.dedupe_table);
    rig.proxy
        .fail_next(2, marks.clone(), Fault::dynamodb_throughput_exceeded());
    let answer = handle(&rig.state, &rig.sqs("m1", &key)).await.unwrap();
    assert_eq!(failed_ids(&answer), Vec::<String>::new());
    // The finding's mark (both channels in one put of one batched write):
    // two throttles, then written.
    assert_eq!((rig.proxy.count(&marks), rig.proxy.faulted(&marks)), (3, 2));
    assert!(rig.marked(&format!("event#{ev}")).await);
    let alerts = rig.alerts().await;
    assert_eq!(per_event(&alerts, &[&ev]), [1]);
    assert_eq!(alerts.len(), 1);
    // A redelivery is suppressed by the mark.
    handle(&rig.state, &rig.sqs("m1", &key)).await.unwrap();
    assert!(rig.alerts().await.is_empty());
}

#[tokio::test]
async fn persistent_throttling_on_the_dedupe_read_fails_before_delivery_and_the_retry_alerts_once()
{
    let rig = Rig::new().await;
    let ev = fresh_id("ev");
    let key = rig.log_file(&[&ev]).await;
    // The object's marks are read in one BatchGetItem (the only one here:
    // no launcher call, so no ledger read).
    let reads = Matcher::dynamodb("BatchGetItem");
    rig.proxy
        .fail_always(reads.clone(), Fault::dynamodb_throughput_exceeded());
    let answer = handle(&rig.state, &rig.sqs("m1", &key)).await.unwrap();
    assert_eq!(failed_ids(&answer), ["m1"]);
    assert_eq!(rig.proxy.count(&reads), ATTEMPTS);
    let error = rig.lines.with("message-failed")[0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("dedupe table")
            && error.contains("BatchGetItem")
            && error.contains("ProvisionedThroughputExceededException"),
        "{error}"
    );
    // Nothing was delivered, so nothing is duplicated by the retry.
    assert!(rig.alerts().await.is_empty());
    assert!(rig.contro1.state().audit_records().is_empty());
    assert_eq!(rig.proxy.count(&Matcher::sns("Publish")), 0);
    rig.proxy.clear();
    let answer = handle(&rig.state, &rig.sqs("m1", &key)).await.unwrap();
    assert_eq!(failed_ids(&answer), Vec::<String>::new());
    let alerts = rig.alerts().await;
    assert_eq!(per_event(&alerts, &[&ev]), [1]);
    assert_eq!(alerts.len(), 1);
    assert!(rig.marked(&format!("event#{ev}")).await);
}

/// Pins today's behaviour, reported as a finding: a mark that cannot be
/// written *after* a successful delivery fails the message, so every retry
/// delivers the same finding again (at-least-once: never lost, but one
/// duplicate per failed attempt).
#[tokio::test]
async fn persistent_throttling_on_the_dedupe_write_after_delivery_is_logged_and_the_message_is_not_retried()
 {
    // The finding was delivered: failing the message would re-deliver it on
    // every retry and park a delivered finding in the DLQ. The failed mark is
    // logged and counted instead; a later copy may alert once more.
    let rig = Rig::new().await;
    let ev = fresh_id("ev");
    let key = rig.log_file(&[&ev]).await;
    let marks = Matcher::dynamodb_on("BatchWriteItem", &rig.dedupe_table);
    rig.proxy
        .fail_always(marks.clone(), Fault::dynamodb_throughput_exceeded());
    let answer = handle(&rig.state, &rig.sqs("m1", &key)).await.unwrap();
    assert_eq!(failed_ids(&answer), Vec::<String>::new(), "{answer}");
    assert_eq!(answer["counters"]["alerted"], 1, "{answer}");
    assert_eq!(answer["counters"]["dedupe_mark_failures"], 1, "{answer}");
    // The finding's mark, through every SDK attempt.
    assert_eq!(rig.proxy.count(&marks), ATTEMPTS);
    let logged = rig.lines.with("dedupe-mark-failed");
    assert_eq!(logged.len(), 1, "{logged:?}");
    let error = logged[0]["error"].as_str().unwrap();
    assert!(
        error.contains("writing the sns, contro1 mark") && error.contains("BatchWriteItem"),
        "{error}"
    );
    assert_eq!(per_event(&rig.alerts().await, &[&ev]), [1]);
    assert!(!rig.marked(&format!("event#{ev}")).await);
    assert_eq!(rig.contro1.state().audit_records().len(), 1);
    // The same finding again (another path, a redelivery), throttling over:
    // the one duplicate the log line warned of, then marked.
    rig.proxy.clear();
    let answer = handle(&rig.state, &rig.sqs("m1", &key)).await.unwrap();
    assert_eq!(failed_ids(&answer), Vec::<String>::new());
    assert_eq!(per_event(&rig.alerts().await, &[&ev]), [1]);
    assert!(rig.marked(&format!("event#{ev}")).await);
    // From then on, suppressed.
    handle(&rig.state, &rig.sqs("m1", &key)).await.unwrap();
    assert!(rig.alerts().await.is_empty());
}

#[tokio::test]
async fn a_heartbeat_that_cannot_be_written_is_logged_and_counted_and_the_message_is_not_retried() {
    // The heartbeat (when a log object was last read) is an UpdateItem on
    // the dedupe table; the marks are batched puts, not faulted here.
    let rig = Rig::new().await;
    let ev = fresh_id("ev");
    let key = rig.log_file(&[&ev]).await;
    let beat = Matcher::dynamodb_on("UpdateItem", &rig.dedupe_table);
    rig.proxy
        .fail_always(beat.clone(), Fault::dynamodb_throughput_exceeded());
    let answer = handle(&rig.state, &rig.sqs("m1", &key)).await.unwrap();
    assert_eq!(failed_ids(&answer), Vec::<String>::new(), "{answer}");
    assert_eq!(answer["counters"]["alerted"], 1, "{answer}");
    assert_eq!(answer["counters"]["heartbeat_failures"], 1, "{answer}");
    assert_eq!(rig.proxy.count(&beat), ATTEMPTS);
    let logged = rig.lines.with("heartbeat-failed");
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(
        logged[0]["error"]
            .as_str()
            .unwrap()
            .contains("ProvisionedThroughputExceededException"),
        "{logged:?}"
    );
    assert!(rig.marked(&format!("event#{ev}")).await);
}

#[tokio::test]
async fn transient_list_microvms_throttling_and_5xx_are_retried_and_the_sweep_reports_exactly_the_unmanaged_vms()
 {
    let rig = Rig::new().await;
    rig.trail(true).await;
    let managed = rig.emulator.seed_microvms(3, IMAGE, MicrovmState::Running);
    let mut unmanaged = rig.emulator.seed_microvms(2, IMAGE, MicrovmState::Running);
    rig.emulator.age_microvms(3600);
    unmanaged.sort();
    for id in &managed {
        rig.ledger_vm(id).await;
    }
    let lists = || {
        rig.emulator
            .calls()
            .into_iter()
            .filter(|c| c.operation == "ListMicrovms")
            .collect::<Vec<_>>()
    };
    rig.emulator.fail_next(2, 429, "ThrottlingException");
    let answer = handle(&rig.state, &scheduled()).await.unwrap();
    assert_eq!(answer["counters"]["microvms_listed"], 5);
    assert_eq!(answer["counters"]["unmanaged"], 2);
    let statuses: Vec<u16> = lists().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [429, 429, 200]);
    let mut alerted: Vec<String> = rig
        .alerts()
        .await
        .iter()
        .map(|a| {
            assert_eq!(
                a.envelope["MessageAttributes"]["event"]["Value"],
                "aws.microvm.unmanaged.detected"
            );
            unmanaged
                .iter()
                .find(|id| a.message.contains(id.as_str()))
                .unwrap_or_else(|| panic!("alert names no unmanaged VM: {}", a.message))
                .clone()
        })
        .collect();
    alerted.sort();
    assert_eq!(alerted, unmanaged);
    // A 5xx on the next sweep: retried, the same two found (already alerted
    // today, so suppressed).
    rig.emulator.fail_next(2, 500, "InternalServerException");
    let answer = handle(&rig.state, &scheduled()).await.unwrap();
    assert_eq!(answer["counters"]["unmanaged"], 2);
    assert_eq!(answer["counters"]["suppressed"], 2);
    assert_eq!(lists().len(), 6);
    assert!(rig.alerts().await.is_empty());
}

#[tokio::test]
async fn persistent_list_microvms_failure_fails_the_sweep_naming_list_microvms_instead_of_reporting_an_empty_sweep()
 {
    let rig = Rig::new().await;
    rig.trail(true).await;
    rig.emulator.seed_microvms(2, IMAGE, MicrovmState::Running);
    rig.emulator.age_microvms(3600);
    for (status, error_type) in [
        (429, "ThrottlingException"),
        (503, "ServiceUnavailableException"),
    ] {
        let before = rig.emulator.calls().len();
        rig.emulator.fail_next(100, status, error_type);
        let err = handle(&rig.state, &scheduled())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sweep")
                && err.contains("ListMicrovms")
                && err.contains(error_type)
                && err.contains("page 1"),
            "{err}"
        );
        let calls = rig.emulator.calls();
        assert_eq!(calls.len() - before, ATTEMPTS, "{error_type}");
        assert!(
            calls[before..]
                .iter()
                .all(|c| c.operation == "ListMicrovms")
        );
        let logged = rig.lines.with("error");
        assert!(
            logged
                .iter()
                .any(|l| l["error"].as_str().unwrap().contains(error_type)),
            "{logged:?}"
        );
    }
    // Nothing was claimed about the VMs (no alert, no "0 unmanaged"): the
    // failed invocation is what surfaces (Lambda retry, the Errors alarm).
    assert!(rig.alerts().await.is_empty());
    assert_eq!(rig.marks().await, 0);
    // API healthy again: the next sweep finds both.
    rig.emulator.fail_next(0, 200, "");
    let answer = handle(&rig.state, &scheduled()).await.unwrap();
    assert_eq!(answer["counters"]["unmanaged"], 2);
    assert_eq!(rig.alerts().await.len(), 2);
}
