//! One detector for an organization, against real parts: moto holding
//! three accounts (the detector's own and two reached by assuming the sweep
//! role there, each with its own ledger table), one MicroVMs emulator per
//! account and region, and the handler built from the environment a
//! security-account deployment sets. Needs `MOTO_ENDPOINT`.

mod common;

use common::{
    ACCOUNT, IMAGE, Rig, gz_log, ledger_entry, s3_event, scheduled, sqs_event, uuid_like,
};
use detector::lambda::handler::handle;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use testkit::emulator::{Emulator, MicrovmState};
use testkit::moto;

const B: &str = "111111111111";
const C: &str = "222222222222";
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
const SWEEP_ROLE: &str = "microvm-sweep";
const LAUNCHER_PATTERN: &str = "arn:aws:iam::*:role/svc/microvm-launcher";

/// The ledger table of `account` (same name as the detector's own, in that
/// account), created there first when `create`.
async fn ledger_in(account: &str, table: &str, create: bool) -> shared_aws::DynamoLedger {
    let ddb = if account == ACCOUNT {
        moto::dynamodb_client().await
    } else {
        aws_sdk_dynamodb::Client::new(&moto::sdk_config_in(account, "setup").await)
    };
    if create && account != ACCOUNT {
        moto::create_pk_table(&ddb, table).await;
    }
    shared_aws::DynamoLedger::new(ddb, table.to_string())
}

/// Three accounts × two regions, each with one managed MicroVM (in its
/// account's ledger) and one unmanaged; C/eu-west-1 refuses every call.
struct Org {
    rig: Rig,
    emulators: BTreeMap<String, Emulator>,
    /// `account/region` → the unmanaged MicroVM there.
    unmanaged: BTreeMap<String, String>,
    failing: String,
}

async fn org() -> Org {
    let mut rig = Rig::new().await;
    moto::organization_trail(&rig.cloudtrail, &rig.trail_name, &rig.bucket).await;
    let table = rig.env["LEDGER_TABLE"].clone();
    let mut emulators = BTreeMap::new();
    let mut unmanaged = BTreeMap::new();
    let mut endpoints = serde_json::Map::new();
    for account in [ACCOUNT, B, C] {
        let ledger = ledger_in(account, &table, true).await;
        for region in REGIONS {
            let key = format!("{account}/{region}");
            let em = Emulator::start().await;
            let managed = em.seed_microvms(1, IMAGE, MicrovmState::Running);
            let stray = em.seed_microvms(1, IMAGE, MicrovmState::Running);
            em.age_microvms(3600);
            ledger
                .record(&ledger_entry(&format!("req-{}", uuid_like()), &managed[0]))
                .await
                .unwrap();
            endpoints.insert(key.clone(), json!(em.base_url()));
            unmanaged.insert(key.clone(), stray[0].clone());
            emulators.insert(key, em);
        }
    }
    let failing = format!("{C}/eu-west-1");
    emulators[&failing].fail_next(1000, 403, "AccessDeniedException");
    for (k, v) in [
        ("SWEEP_ACCOUNTS", format!("{ACCOUNT},{B},{C}")),
        ("SWEEP_REGIONS", REGIONS.join(",")),
        ("SWEEP_ROLE_NAME", SWEEP_ROLE.to_string()),
        ("MICROVMS_ENDPOINTS", Value::Object(endpoints).to_string()),
        ("LAUNCHER_ROLE_ARNS", LAUNCHER_PATTERN.to_string()),
    ] {
        rig.env.insert(k.into(), v);
    }
    Org {
        rig,
        emulators,
        unmanaged,
        failing,
    }
}

/// The `details` JSON of each alert.
fn details(alerts: &[moto::SnsMessage]) -> Vec<Value> {
    alerts
        .iter()
        .map(|a| {
            let d = a.message.split("--- details (JSON) ---").nth(1).unwrap();
            serde_json::from_str(d.trim()).unwrap()
        })
        .collect()
}

/// The unmanaged MicroVMs alerted, as `account/region` → MicroVM.
fn unmanaged_alerted(details: &[Value]) -> BTreeMap<String, String> {
    details
        .iter()
        .filter(|d| d["rule"] == "microvm-not-in-ledger")
        .map(|d| {
            (
                format!(
                    "{}/{}",
                    d["account_id"].as_str().unwrap(),
                    d["region"].as_str().unwrap()
                ),
                d["microvm_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn expected_unmanaged(o: &Org) -> BTreeMap<String, String> {
    o.unmanaged
        .iter()
        .filter(|(k, _)| **k != o.failing)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[tokio::test]
async fn the_sweep_covers_three_accounts_by_two_regions_and_a_failing_one_is_reported_not_fatal() {
    let o = org().await;
    let st = o.rig.state().await;
    let answer = handle(&st, &scheduled()).await.unwrap();
    let c = &answer["counters"];
    assert_eq!(c["sweep_targets"], 6, "{c}");
    assert_eq!(c["sweep_targets_failed"], 1, "{c}");
    assert_eq!(c["microvms_listed"], 10, "{c}");
    let d = details(&o.rig.alerts().await);
    // The organization trail covers every swept account and region.
    assert!(
        d.iter()
            .all(|d| d["rule"] != "no-trail-logs-microvm-data-events"),
        "{d:?}"
    );
    assert_eq!(c["sweeps_completed"], 1);
    // Exactly the unmanaged MicroVM of each reachable account-region, named
    // where it runs; the managed ones were found in their own account's
    // ledger.
    assert_eq!(unmanaged_alerted(&d), expected_unmanaged(&o));
    let degraded: Vec<&Value> = d
        .iter()
        .filter(|d| d["rule"] == "sweep-target-unavailable")
        .collect();
    assert_eq!(degraded.len(), 1, "{d:?}");
    let summary = degraded[0]["summary"].as_str().unwrap();
    assert!(
        summary.contains(&o.failing) && summary.contains("AccessDenied"),
        "{summary}"
    );
    assert_eq!(degraded[0]["account_id"], C);
    assert_eq!(degraded[0]["region"], "eu-west-1");
    // The other accounts were read with the sweep role's credentials, not
    // the detector's own.
    for (key, em) in &o.emulators {
        let keys: BTreeSet<String> = em
            .calls()
            .into_iter()
            .filter_map(|c| c.access_key_id)
            .collect();
        let own = keys.len() == 1 && keys.contains(moto::test_credentials().access_key_id());
        assert_eq!(own, key.starts_with(ACCOUNT), "{key}: signed with {keys:?}");
    }
}

#[tokio::test]
async fn fanned_out_the_schedule_queues_one_message_per_target_and_each_message_sweeps_it() {
    let mut o = org().await;
    let queue = moto::create_queue(&o.rig.sqs, &testkit::unique_name("sweep")).await;
    o.rig.env.insert("SWEEP_QUEUE_URL".into(), queue.clone());
    let st = o.rig.state().await;
    let answer = handle(&st, &scheduled()).await.unwrap();
    assert_eq!(answer["counters"]["sweep_targets_enqueued"], 6);
    assert_eq!(answer["counters"]["microvms_listed"], 0);
    let bodies = moto::drain_queue(&o.rig.sqs, &queue).await;
    assert_eq!(bodies.len(), 6);
    // The schedule's own invocation swept nothing; the messages do.
    assert!(unmanaged_alerted(&details(&o.rig.alerts().await)).is_empty());
    let messages: Vec<(String, String)> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, b)| (format!("m{i}"), b))
        .collect();
    let refs: Vec<(&str, String)> = messages
        .iter()
        .map(|(id, b)| (id.as_str(), b.clone()))
        .collect();
    let answer = handle(&st, &sqs_event(&refs)).await.unwrap();
    // Exactly the failing target's message is retried.
    let failed = common::failed_ids(&answer);
    assert_eq!(failed.len(), 1, "{answer}");
    let failed_body = &messages.iter().find(|(id, _)| *id == failed[0]).unwrap().1;
    assert!(failed_body.contains(C) && failed_body.contains("eu-west-1"));
    let d = details(&o.rig.alerts().await);
    assert_eq!(unmanaged_alerted(&d), expected_unmanaged(&o));
    assert_eq!(
        d.iter()
            .filter(|d| d["rule"] == "sweep-target-unavailable")
            .count(),
        1
    );
}

/// A launcher-role call in `account` with that account's launcher role (or
/// `role_account`'s), recorded as EventBridge delivers it.
fn launcher_call(account: &str, role_account: &str, request_id: &str) -> Value {
    let role = format!("arn:aws:iam::{role_account}:role/svc/microvm-launcher");
    json!({"version": "0", "id": uuid_like(), "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.lambda", "account": account, "time": "2025-10-02T14:03:11Z",
        "region": "us-east-1", "resources": [], "detail": {
        "eventVersion": "1.11",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLE:microvm-launcher",
            "arn": format!("arn:aws:sts::{role_account}:assumed-role/microvm-launcher/microvm-launcher"),
            "accountId": role_account,
            "sessionContext": {"sessionIssuer": {"type": "Role", "arn": role, "accountId": role_account}}
        },
        "eventTime": "2025-10-02T14:03:11Z",
        "eventSource": "lambda.amazonaws.com",
        "eventName": "TerminateMicrovm",
        "awsRegion": "us-east-1",
        "requestParameters": {"microvmIdentifier": "ai-launcher-vm"},
        "requestID": request_id,
        "eventID": format!("ev-{}", uuid_like()),
        "eventType": "AwsApiCall",
        "managementEvent": false,
        "eventCategory": "Data",
        "recipientAccountId": account
    }})
}

#[tokio::test]
async fn each_launcher_call_is_judged_by_its_own_accounts_role_and_ledger() {
    let o = org().await;
    let table = o.rig.env["LEDGER_TABLE"].clone();
    let st = o.rig.state().await;
    let (in_b, in_own) = (
        format!("req-{}", uuid_like()),
        format!("req-{}", uuid_like()),
    );
    ledger_in(B, &table, false)
        .await
        .record(&ledger_entry(&in_b, "ai-launcher-vm"))
        .await
        .unwrap();
    o.rig
        .ledger
        .record(&ledger_entry(&in_own, "ai-launcher-vm"))
        .await
        .unwrap();

    // B's launcher, in B, with a requestID in B's ledger: governed.
    handle(&st, &launcher_call(B, B, &in_b)).await.unwrap();
    assert!(o.rig.alerts().await.is_empty());

    // B's launcher, in B, with a requestID only the detector account's
    // ledger holds: B's launcher never made this call.
    let answer = handle(&st, &launcher_call(B, B, &in_own)).await.unwrap();
    assert_eq!(answer["counters"]["ledger_checked_calls"], 1);
    let d = details(&o.rig.alerts().await);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["rule"], "launcher-credentials-outside-launcher");
    assert_eq!(d[0]["account_id"], B);

    // B's launcher role used in the detector's account: cross-account.
    handle(&st, &launcher_call(ACCOUNT, B, &in_own))
        .await
        .unwrap();
    let d = details(&o.rig.alerts().await);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["rule"], "non-launcher-principal");
    assert!(
        d[0]["reason"].as_str().unwrap().contains("cross-account"),
        "{}",
        d[0]["reason"]
    );
}

#[tokio::test]
async fn without_a_sweep_role_a_launcher_call_of_another_account_is_reported_ledger_unreachable_not_retried_forever()
 {
    // A trail holding another account's launcher calls, read by a detector
    // that may not assume a role there: the call cannot be checked. Failing
    // the message would retry it into the DLQ for a gap no retry closes.
    let mut rig = Rig::new().await;
    rig.env
        .insert("LAUNCHER_ROLE_ARNS".into(), LAUNCHER_PATTERN.to_string());
    let st = rig.state().await;
    let call = |request_id: &str| launcher_call(B, B, request_id);
    let answer = handle(&st, &call(&format!("req-{}", uuid_like())))
        .await
        .unwrap();
    assert_eq!(
        answer["counters"]["ledger_unreachable_calls"], 1,
        "{answer}"
    );
    let d = details(&rig.alerts().await);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["rule"], "ledger-unreachable");
    assert_eq!(d[0]["event"], "aws.microvm.detection.degraded");
    assert_eq!(d[0]["account_id"], B);
    assert!(
        d[0]["reason"].as_str().unwrap().contains("SWEEP_ROLE_NAME"),
        "{}",
        d[0]["reason"]
    );
    // The next such call the same day: counted, not alerted again.
    handle(&st, &call(&format!("req-{}", uuid_like())))
        .await
        .unwrap();
    assert!(rig.alerts().await.is_empty());
}

#[tokio::test]
async fn an_organization_trail_log_file_is_read_end_to_end() {
    let o = org().await;
    let st = o.rig.state().await;
    let mut record = common::bypass_record(&format!("ev-{}", uuid_like()));
    record["recipientAccountId"] = json!(B);
    record["awsRegion"] = json!("eu-west-1");
    let key = format!(
        "AWSLogs/o-a1b2c3d4e5/{B}/CloudTrail/eu-west-1/2025/10/02/{B}_CloudTrail_eu-west-1_20251002T1405Z_{}.json.gz",
        uuid_like()
    );
    o.rig.put(&key, gz_log(&[record])).await;
    let answer = handle(&st, &s3_event(&o.rig.bucket, &key)).await.unwrap();
    assert_eq!(answer["counters"]["objects_read"], 1, "{answer}");
    let d = details(&o.rig.alerts().await);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["rule"], "non-launcher-principal");
    assert_eq!(
        (&d[0]["account_id"], &d[0]["region"]),
        (&json!(B), &json!("eu-west-1"))
    );
}
