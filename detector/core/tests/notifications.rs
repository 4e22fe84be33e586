//! Every trigger shape the detector Lambda accepts, decoded from hand-written
//! real-format fixtures in `detector/fixtures/notifications/`.

use detector_core::notification::{
    Invocation, NotificationError, ObjectKind, ObjectRef, Trigger, decode_invocation,
    decode_message_body,
};
use serde_json::Value;
use std::path::PathBuf;

const BUCKET: &str = "aws-cloudtrail-logs-111122223333-3f1a2b";
const KEY: &str = "AWSLogs/o-a1b2c3d4e5/111122223333/CloudTrail/us-east-1/2025/10/02/111122223333_CloudTrail_us-east-1_20251002T1405Z_Xn3kQ9bT7pLmWv2R.json.gz";

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/notifications")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn direct(name: &str) -> Vec<Trigger> {
    match decode_invocation(&fixture(name)).unwrap() {
        Invocation::Direct(t) => t,
        other => panic!("{name}: expected a direct invocation, got {other:?}"),
    }
}

fn sqs(name: &str) -> Vec<(String, Result<Trigger, NotificationError>)> {
    match decode_invocation(&fixture(name)).unwrap() {
        Invocation::Sqs(msgs) => msgs
            .into_iter()
            .map(|m| (m.message_id, decode_message_body(&m.body)))
            .collect(),
        other => panic!("{name}: expected an SQS batch, got {other:?}"),
    }
}

fn objects(t: &Trigger) -> &[ObjectRef] {
    match t {
        Trigger::Objects { objects, .. } => objects,
        other => panic!("expected objects, got {other:?}"),
    }
}

#[test]
fn s3_event_key_is_form_decoded_and_size_kept() {
    let t = direct("s3-put.json");
    assert_eq!(t.len(), 1);
    let o = objects(&t[0]);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].bucket, BUCKET);
    assert_eq!(o[0].key, format!("security logs/{KEY}"));
    assert_eq!(o[0].size, Some(48213));
    assert_eq!(o[0].kind(), ObjectKind::Log);
}

#[test]
fn s3_event_counts_removed_records_and_recognises_digest_keys() {
    let t = direct("s3-mixed-digest-removed.json");
    let Trigger::Objects {
        objects,
        ignored_records,
    } = &t[0]
    else {
        panic!("{t:?}")
    };
    assert_eq!(*ignored_records, 1);
    let kinds: Vec<ObjectKind> = objects.iter().map(ObjectRef::kind).collect();
    assert_eq!(kinds, vec![ObjectKind::Log, ObjectKind::Digest]);
}

#[test]
fn s3_test_event_is_recognised_directly_and_inside_sqs() {
    assert_eq!(direct("s3-test-event.json"), vec![Trigger::TestEvent]);
    let msgs = sqs("sqs-s3.json");
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].0, "059f36b4-87a3-44ab-83d2-661975830a7d");
    assert_eq!(
        objects(msgs[0].1.as_ref().unwrap())[0].key,
        format!("security logs/{KEY}")
    );
    assert_eq!(msgs[1].0, "2e1424d4-f796-459a-8184-9c92662be6da");
    assert_eq!(msgs[1].1.as_ref().unwrap(), &Trigger::TestEvent);
}

#[test]
fn sns_envelope_inside_sqs_is_unwrapped_to_the_s3_event() {
    let msgs = sqs("sqs-sns-s3.json");
    let o = objects(msgs[0].1.as_ref().unwrap());
    assert_eq!(o[0].key, format!("security logs/{KEY}"));
}

#[test]
fn cloudtrail_sns_message_lists_every_key_unencoded() {
    for (name, via_sqs) in [
        ("sqs-cloudtrail-sns.json", true),
        ("sqs-cloudtrail-raw.json", true),
        ("sns-cloudtrail.json", false),
    ] {
        let t = if via_sqs {
            sqs(name).remove(0).1.unwrap()
        } else {
            direct(name).remove(0)
        };
        let o = objects(&t);
        assert_eq!(o.len(), 2, "{name}");
        assert_eq!(o[0].bucket, BUCKET);
        assert_eq!(o[0].key, KEY);
        assert_eq!(o[0].size, None);
        assert!(o[1].key.contains("Qq7RtY2uI9oP4aSd"), "{name}");
    }
}

#[test]
fn sns_direct_s3_event_is_unwrapped() {
    let t = direct("sns-s3.json");
    assert_eq!(objects(&t[0])[0].key, format!("security logs/{KEY}"));
}

#[test]
fn eventbridge_object_created_key_is_taken_as_is() {
    let t = direct("eventbridge-object-created.json");
    let o = objects(&t[0]);
    // A `+` would stay a `+`: EventBridge keys are not form-encoded.
    assert_eq!(o[0].key, format!("security logs/{KEY}"));
    assert_eq!(o[0].size, Some(48213));
}

#[test]
fn eventbridge_api_call_yields_the_cloudtrail_record() {
    let t = direct("eventbridge-api-call-run-microvm.json");
    let Trigger::ApiCall(record) = &t[0] else {
        panic!("{t:?}")
    };
    assert_eq!(record["eventName"], "RunMicrovm");
    assert_eq!(record["eventID"], "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b");
}

#[test]
fn eventbridge_schedule_runs_the_sweep() {
    assert_eq!(direct("eventbridge-schedule.json"), vec![Trigger::Schedule]);
}

#[test]
fn bad_key_fails_only_its_own_sqs_message_and_names_the_key() {
    let msgs = sqs("sqs-bad-key.json");
    let err = msgs[0].1.as_ref().unwrap_err().to_string();
    assert!(err.contains("bad%G1name.json.gz"), "{err}");
    assert!(err.contains("%G1"), "{err}");
    assert!(msgs[1].1.is_ok());
}

#[test]
fn sns_subscription_confirmation_is_ignored_with_a_reason() {
    let msgs = sqs("sqs-sns-subscription-confirmation.json");
    match msgs[0].1.as_ref().unwrap() {
        Trigger::Ignored(why) => assert!(why.contains("SubscriptionConfirmation"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_fixture_decodes_without_error_except_the_bad_key() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/notifications");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let inv = decode_invocation(&fixture(&name)).unwrap();
        if let Invocation::Sqs(msgs) = inv {
            for m in msgs {
                let r = decode_message_body(&m.body);
                assert_eq!(r.is_err(), m.body.contains("%G1"), "{name}: {r:?}");
            }
        }
        n += 1;
    }
    assert!(n >= 14, "only {n} fixtures found in {}", dir.display());
}

#[test]
fn unknown_shapes_are_errors_not_silent_skips() {
    let e = decode_invocation(&serde_json::json!({"hello": "world"})).unwrap_err();
    assert!(e.to_string().contains("hello"), "{e}");
    let e = decode_message_body(r#"{"s3Bucket":"b"}"#).unwrap_err();
    assert!(e.to_string().contains("s3ObjectKey"), "{e}");
}

#[test]
fn object_keys_are_told_apart_by_the_cloudtrail_key_grammar() {
    let log = "AWSLogs/111122223333/CloudTrail/us-east-1/2025/10/02/111122223333_CloudTrail_us-east-1_20251002T1405Z_Xn3kQ9bT7pLmWv2R.json.gz";
    for (key, want) in [
        (log.to_string(), ObjectKind::Log),
        (format!("security logs/{log}"), ObjectKind::Log),
        (
            "AWSLogs/o-a1b2c3d4e5/111122223333/CloudTrail/eu-west-1/2025/10/02/111122223333_CloudTrail_eu-west-1_20251002T1405Z_Ab9z.json.gz".to_string(),
            ObjectKind::Log,
        ),
        (
            "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2025/10/02/111122223333_CloudTrail-Digest_us-east-1_org-trail_us-east-1_20251002T140512Z.json.gz".to_string(),
            ObjectKind::Digest,
        ),
        (
            "AWSLogs/111122223333/CloudTrail-Insight/us-east-1/2025/10/02/111122223333_CloudTrail-Insight_us-east-1_20251002T1405Z_Q.json.gz".to_string(),
            ObjectKind::Insight,
        ),
        ("AWSLogs/111122223333/CloudTrail/us-east-1/".to_string(), ObjectKind::Folder),
        // AWS Config writes beside CloudTrail in shared buckets.
        ("AWSLogs/111122223333/Config/ConfigWritabilityCheckFile".to_string(), ObjectKind::NotCloudTrail),
        (
            "AWSLogs/111122223333/Config/us-east-1/2025/10/2/ConfigSnapshot/111122223333_Config_us-east-1_ConfigSnapshot_20251002T140512Z_abc.json.gz".to_string(),
            ObjectKind::NotCloudTrail,
        ),
        ("ConfigWritabilityCheckFile".to_string(), ObjectKind::NotCloudTrail),
        // Wrong account, wrong depth, wrong file name.
        (log.replace("111122223333/CloudTrail/", "1111/CloudTrail/"), ObjectKind::NotCloudTrail),
        (log.replace("/2025/10/02/", "/2025/10/"), ObjectKind::NotCloudTrail),
        (log.replace("_20251002T1405Z_", "_notastamp_"), ObjectKind::NotCloudTrail),
        (log.replace(".json.gz", ".txt"), ObjectKind::NotCloudTrail),
    ] {
        assert_eq!(ObjectKind::of_key(&key), want, "{key}");
    }
}

#[test]
fn every_real_cloudtrail_file_name_in_the_bundled_data_is_a_log() {
    // The invictus-ir files keep CloudTrail's own names, stored un-gzipped:
    // delivered, each is the same name with `.gz`.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/cloudtrail/invictus-ir-aws-dataset/CloudTrail");
    let mut n = 0;
    for e in std::fs::read_dir(&root).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        if !name.ends_with(".json") {
            continue;
        }
        let region = name.split('_').nth(2).unwrap().to_string();
        let day = &name.split('_').nth(3).unwrap()[..8];
        let key = format!(
            "AWSLogs/218007301253/CloudTrail/{region}/{}/{}/{}/{name}.gz",
            &day[..4],
            &day[4..6],
            &day[6..]
        );
        assert_eq!(ObjectKind::of_key(&key), ObjectKind::Log, "{key}");
        n += 1;
    }
    assert_eq!(n, 55);
}

mod shared_tier {
    use super::*;

    #[test]
    #[ignore = "shared data tier: scripts/test.sh runs it when ../shared or MICROVM_SHARED_DIR has data/cloudtrail"]
    fn every_real_cloudtrail_file_name_in_the_shared_data_is_a_log() {
        // The sans504 data keeps CloudTrail's own file names and day folders.
        let root = shared_data().join("sans504-s3-ransomware-lab");
        let mut n = 0;
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.to_string_lossy().ends_with(".json.gz") {
                    let name = p.file_name().unwrap().to_string_lossy().to_string();
                    let region = name.split('_').nth(2).unwrap().to_string();
                    let key = format!("AWSLogs/342082656213/CloudTrail/{region}/2021/07/29/{name}");
                    assert_eq!(ObjectKind::of_key(&key), ObjectKind::Log, "{key}");
                    n += 1;
                }
            }
        }
        assert!(n > 3000, "{n} files");
    }

    /// `<shared root>/data/cloudtrail`, the shared root being
    /// `$MICROVM_SHARED_DIR` or `../shared` beside the repository (as
    /// `testkit::shared_data_dir`, which this pure crate does not depend on).
    fn shared_data() -> std::path::PathBuf {
        let root = std::env::var_os("MICROVM_SHARED_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
            });
        let data = root.join("data/cloudtrail");
        assert!(
            data.is_dir(),
            "the shared data tier needs the shared root, a directory with data/cloudtrail/ \
             inside; {} has none. Set MICROVM_SHARED_DIR to the shared root or put the shared \
             checkout at ../shared beside the repository",
            root.display()
        );
        data
    }
}

#[test]
fn a_versioned_s3_event_names_the_object_version_it_was_sent_for() {
    let o = objects(&direct("s3-put-versioned.json")[0]).to_vec();
    assert_eq!(
        o[0].version_id.as_deref(),
        Some("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"),
        "a version id is not form-decoded (its `+` stays)"
    );
    assert_eq!(o[0].key, format!("security logs/{KEY}"));
    // An unversioned bucket's event has no versionId (or null): none.
    assert_eq!(objects(&direct("s3-put.json")[0])[0].version_id, None);
    let mut v = fixture("s3-put-versioned.json");
    v["Records"][0]["s3"]["object"]["versionId"] = Value::Null;
    assert_eq!(objects(&direct_value(&v)[0])[0].version_id, None);
}

#[test]
fn an_eventbridge_object_created_event_names_its_version_id() {
    let o = objects(&direct("eventbridge-object-created-versioned.json")[0]).to_vec();
    assert_eq!(
        o[0].version_id.as_deref(),
        Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e")
    );
    assert_eq!(
        objects(&direct("eventbridge-object-created.json")[0])[0].version_id,
        None
    );
}

#[test]
fn cloudtrails_own_sns_message_names_no_version() {
    for o in objects(&direct("sns-cloudtrail.json")[0]) {
        assert_eq!(o.version_id, None);
    }
}

#[test]
fn a_malformed_version_id_is_an_error_naming_the_field() {
    let mut v = fixture("s3-put-versioned.json");
    v["Records"][0]["s3"]["object"]["versionId"] = serde_json::json!(7);
    let e = decode_invocation(&v).unwrap_err().to_string();
    assert!(e.contains("`versionId`"), "{e}");
    v["Records"][0]["s3"]["object"]["versionId"] = serde_json::json!("");
    let e = decode_invocation(&v).unwrap_err().to_string();
    assert!(e.contains("empty object version id `versionId`"), "{e}");
    let mut v = fixture("eventbridge-object-created-versioned.json");
    v["detail"]["object"]["version-id"] = serde_json::json!(["a"]);
    let e = decode_invocation(&v).unwrap_err().to_string();
    assert!(e.contains("`version-id`"), "{e}");
}

fn direct_value(v: &Value) -> Vec<Trigger> {
    match decode_invocation(v).unwrap() {
        Invocation::Direct(t) => t,
        other => panic!("expected a direct invocation, got {other:?}"),
    }
}
