//! Per-invocation counters, logged as one JSON line at the end of every
//! invocation. They reconcile, so a record or a finding can never disappear
//! without showing up somewhere:
//!
//! - `records_in = governed + control_plane + not_governed + skipped_records
//!   + parse_errors` (trail changes are counted in `control_plane` or
//!   `not_governed`, and again in `trail_changes`);
//! - `findings = alerted + suppressed`.

use serde::Serialize;

/// CloudWatch namespace of the detector's metrics (the alarms watch it).
pub const METRICS_NAMESPACE: &str = "MicrovmGovernance";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// SQS messages in the batch (0 for other triggers).
    pub messages: u64,
    /// SQS messages reported in `batchItemFailures`.
    pub messages_failed: u64,
    /// Notifications that asked for nothing (test events, subscription
    /// confirmations, other EventBridge events).
    pub notifications_ignored: u64,
    /// S3 event records that were not ObjectCreated, and "folder" keys
    /// ending in `/`.
    pub s3_records_ignored: u64,
    pub objects_read: u64,
    pub objects_failed: u64,
    pub objects_skipped_digest: u64,
    pub objects_skipped_insight: u64,
    /// Objects whose key is not a CloudTrail log file's (AWS Config's files
    /// in a shared bucket, ...): not read.
    pub objects_not_cloudtrail: u64,
    /// Objects read without a version id because the notification named
    /// none (CloudTrail's own SNS message, an unversioned bucket): the
    /// key's current object was read.
    pub objects_read_unversioned: u64,
    /// Objects whose named version is no longer the key's current one
    /// (reported as `trail-object-overwritten`).
    pub objects_overwritten: u64,
    /// Objects whose key had no current object after the named version was
    /// read (a delete marker or an expiry; reported as
    /// `trail-object-deleted`).
    pub objects_latest_deleted: u64,
    /// Objects whose named version S3 no longer has, so it could not be read
    /// (reported as `trail-object-deleted`; the message still fails).
    pub objects_version_gone: u64,
    /// JSON objects found in an object with a CloudTrail key that are not
    /// CloudTrail records (an error: something else writes under the trail's
    /// prefix); skipped, the message is not failed for them.
    pub json_not_cloudtrail: u64,
    /// Uncompressed bytes of records read.
    pub bytes_read: u64,
    pub records_in: u64,
    pub governed: u64,
    /// Records a tamper rule matched (findings, and changes by a deployment
    /// role or an AWS service).
    pub control_plane: u64,
    pub not_governed: u64,
    /// Insight records and governed records seen again (same eventID).
    pub skipped_records: u64,
    pub parse_errors: u64,
    pub trail_changes: u64,
    /// Control-plane changes made by a deployment role (counted, not alerted).
    pub changes_by_deployment: u64,
    /// Managed calls checked against the ledger by requestID.
    pub ledger_checked_calls: u64,
    /// Launcher-role calls of an account the detector cannot reach (no
    /// sweep role): reported as `ledger-unreachable`, not checked.
    pub ledger_unreachable_calls: u64,
    pub findings: u64,
    pub alerted: u64,
    pub suppressed: u64,
    /// Findings whose delivery failed (the invocation fails and retries).
    pub alert_failures: u64,
    /// Findings delivered whose dedupe mark could not be written afterwards
    /// (logged; a later copy of the same finding may alert again).
    pub dedupe_mark_failures: u64,
    pub microvms_listed: u64,
    pub microvms_active: u64,
    pub unmanaged: u64,
    /// Listed MicroVMs missing from the ledger but younger than the minimum
    /// age: not reported this sweep.
    pub microvms_too_young: u64,
    pub remediations: u64,
    pub remediation_failures: u64,
    /// Candidates a cap stopped remediation for (nothing was done).
    pub remediations_halted: u64,
    /// Actions a dry run reported without doing them.
    pub remediations_dry_run: u64,
    pub trails_checked: u64,
    /// Sweeps that ran to the end without an error (the `SweepRuns` metric).
    pub sweeps_completed: u64,
    /// Account-regions swept, and those that could not be.
    pub sweep_targets: u64,
    pub sweep_targets_failed: u64,
    /// Account-regions handed out as SQS messages (fan-out).
    pub sweep_targets_enqueued: u64,
    /// Integrity checks run, and drifted properties found.
    pub integrity_checks: u64,
    pub integrity_drifts: u64,
    /// Heartbeat writes that failed (logged; the heartbeat alarm may fire).
    pub heartbeat_failures: u64,
}

impl Counters {
    /// True when both equations of the module doc hold.
    pub fn reconciles(&self) -> bool {
        self.records_in
            == self.governed
                + self.control_plane
                + self.not_governed
                + self.skipped_records
                + self.parse_errors
            && self.findings == self.alerted + self.suppressed
    }

    /// Add another set of counters into this one.
    pub fn add(&mut self, o: &Counters) {
        macro_rules! add {
            ($($f:ident),*) => { $( self.$f += o.$f; )* };
        }
        add!(
            messages,
            messages_failed,
            notifications_ignored,
            s3_records_ignored,
            objects_read,
            objects_failed,
            objects_skipped_digest,
            objects_skipped_insight,
            objects_not_cloudtrail,
            objects_read_unversioned,
            objects_overwritten,
            objects_latest_deleted,
            objects_version_gone,
            json_not_cloudtrail,
            bytes_read,
            records_in,
            governed,
            control_plane,
            not_governed,
            skipped_records,
            parse_errors,
            trail_changes,
            changes_by_deployment,
            ledger_checked_calls,
            ledger_unreachable_calls,
            findings,
            alerted,
            suppressed,
            alert_failures,
            dedupe_mark_failures,
            microvms_listed,
            microvms_active,
            unmanaged,
            microvms_too_young,
            remediations,
            remediation_failures,
            remediations_halted,
            remediations_dry_run,
            trails_checked,
            sweeps_completed,
            sweep_targets,
            sweep_targets_failed,
            sweep_targets_enqueued,
            integrity_checks,
            integrity_drifts,
            heartbeat_failures
        );
    }

    /// The log line. It carries the CloudWatch Embedded Metric Format block
    /// for the heartbeat alarms (`LogObjectsRead` when objects were read,
    /// `SweepRuns` when a sweep completed), with the detector function's name
    /// as the `DetectorFunction` dimension; CloudWatch turns it into metrics
    /// with no API call and no permission.
    pub fn log_line(&self, trigger: &str, function: &str, now_ms: i64) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("log".into(), "invocation".into());
            m.insert("trigger".into(), trigger.into());
            m.insert("reconciles".into(), self.reconciles().into());
            let metrics: Vec<(&str, u64)> = [
                ("LogObjectsRead", self.objects_read),
                ("SweepRuns", self.sweeps_completed),
            ]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
            if !metrics.is_empty() {
                m.insert(
                    "_aws".into(),
                    serde_json::json!({
                        "Timestamp": now_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": METRICS_NAMESPACE,
                            "Dimensions": [["DetectorFunction"]],
                            "Metrics": metrics.iter()
                                .map(|(name, _)| serde_json::json!({"Name": name, "Unit": "Count"}))
                                .collect::<Vec<_>>(),
                        }],
                    }),
                );
                m.insert("DetectorFunction".into(), function.into());
                for (name, n) in metrics {
                    m.insert(name.into(), n.into());
                }
            }
        }
        v
    }
}
