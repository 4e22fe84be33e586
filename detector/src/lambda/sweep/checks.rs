//! The sweep's checks of the detection pipeline itself: trail health, the
//! governance functions against their recorded baseline (integrity), and the
//! heartbeat (a CloudTrail log object read recently). Each returns the
//! alerts to raise; none stops the others.

use super::{SweepConfig, SweepError, SweepPorts, SweepReport};
use crate::lambda::alert::{Alert, utc_timestamp};
use crate::lambda::counters::Counters;
use crate::lambda::integrity::{self, Drift, FunctionBaseline};
use crate::lambda::trail;
use detector_core::{Finding, Rule, Severity};

/// Trail health: degraded when no trail covers, or when the trails cannot
/// be listed at all.
pub(super) async fn trail_health(
    ports: &SweepPorts<'_>,
    cfg: &SweepConfig,
    report: &mut SweepReport,
    now: i64,
    counters: &mut Counters,
) -> Option<Alert> {
    if !cfg.check_trails {
        return None;
    }
    counters.trails_checked += 1;
    match ports.trails.trails().await {
        Ok(trails) => {
            let health = trail::assess(&trails, &expectations(cfg));
            let alert = (!health.healthy).then(|| {
                Alert::degraded(
                    Rule::NoTrailLogsMicrovmDataEvents,
                    &health.reason(),
                    now,
                    None,
                )
            });
            report.trail_health = Some(health);
            alert
        }
        Err(e) => Some(Alert::degraded(
            Rule::TrailHealthUnavailable,
            &format!("cannot read CloudTrail configuration: {e}"),
            now,
            None,
        )),
    }
}

/// What a covering trail must record: the configured expectations, and
/// every account and region the sweep covers.
fn expectations(cfg: &SweepConfig) -> trail::TrailExpectations {
    let mut want = cfg.trails.clone();
    want.other_accounts = match &cfg.accounts {
        super::Accounts::Own => false,
        super::Accounts::List(l) => l.iter().any(|a| Some(a) != cfg.account_id.as_ref()),
        super::Accounts::Organization => true,
    };
    match &cfg.regions {
        super::Regions::Own => {}
        super::Regions::List(l) => want.regions.clone_from(l),
        super::Regions::Enabled => want.every_region = true,
    }
    want
}

/// `arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME` → (account, region).
fn arn_account_region(arn: &str) -> (Option<&str>, Option<&str>) {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, _, region, account, _] => (
            Some(*account).filter(|a| !a.is_empty()),
            Some(*region).filter(|r| !r.is_empty()),
        ),
        _ => (None, None),
    }
}

/// One drifted property of a governance function: a tamper finding, raised
/// once per function, property and day while the drift lasts.
pub fn drift_alert(f: &FunctionBaseline, d: &Drift, now: i64) -> Alert {
    let severity = if f.kind == "launcher" {
        Severity::Critical
    } else {
        Severity::High
    };
    let mut finding = Finding::new(
        Rule::FunctionIntegrityDrift,
        severity,
        format!(
            "the {} function differs from its deployment ({})",
            f.kind, d.property
        ),
        "integrity-check".to_string(),
    );
    let (account, region) = arn_account_region(&f.function_arn);
    finding.account_id = account.map(str::to_string);
    finding.region = region.map(str::to_string);
    finding.event_time = Some(utc_timestamp(now));
    finding.resource = Some(f.function_arn.clone());
    finding.reason = Some(format!("{}: {}", d.property, d.detail));
    let finding = finding.with_incident_key();
    Alert::checked(finding, &format!("{}#{}", f.function_arn, d.property), now)
}

/// Compare each function of the recorded baseline with what it is now.
/// Unreadable baseline or function: `integrity-check-unavailable`.
pub(super) async fn integrity(
    ports: &SweepPorts<'_>,
    cfg: &SweepConfig,
    now: i64,
    counters: &mut Counters,
) -> Vec<Alert> {
    let Some(parameter) = &cfg.integrity_parameter else {
        return Vec::new();
    };
    counters.integrity_checks += 1;
    let unavailable = |reason: String, resource: &str| {
        Alert::degraded(
            Rule::IntegrityCheckUnavailable,
            &reason,
            now,
            Some(resource),
        )
    };
    let baseline = match ports.functions.baseline(parameter).await {
        Ok(text) => match integrity::parse_baseline(&text) {
            Ok(b) => b,
            Err(e) => {
                return vec![unavailable(
                    format!("the integrity baseline {parameter} is unusable: {e}"),
                    parameter,
                )];
            }
        },
        Err(e) => {
            return vec![unavailable(
                format!("cannot read the integrity baseline: {e}"),
                parameter,
            )];
        }
    };
    let mut alerts = Vec::new();
    for f in &baseline.functions {
        match ports.functions.observe(f).await {
            Ok(Some(observed)) => {
                let drifts = integrity::compare(f, &observed);
                counters.integrity_drifts += drifts.len() as u64;
                alerts.extend(drifts.iter().map(|d| drift_alert(f, d, now)));
            }
            Ok(None) => {
                counters.integrity_drifts += 1;
                let gone = Drift {
                    property: "function".into(),
                    detail: "the function no longer exists".into(),
                };
                alerts.push(drift_alert(f, &gone, now));
            }
            Err(e) => alerts.push(unavailable(
                format!("cannot read the {} function: {e}", f.kind),
                &f.function_arn,
            )),
        }
    }
    alerts
}

/// The heartbeat: `no-log-objects-read` when no CloudTrail log object has
/// been read for longer than allowed (counted from the first sweep when none
/// ever was). An unreadable heartbeat fails the sweep (the error alarm).
pub(super) async fn heartbeat(
    ports: &SweepPorts<'_>,
    cfg: &SweepConfig,
    now: i64,
) -> Result<Option<Alert>, SweepError> {
    let Some(max) = cfg.heartbeat_max_silence else {
        return Ok(None);
    };
    let (last, first) = ports
        .heartbeat
        .last_beat(now)
        .await
        .map_err(SweepError::Heartbeat)?;
    let since = last.unwrap_or(first);
    if now - since <= max {
        return Ok(None);
    }
    let reason = match last {
        Some(t) => format!(
            "no CloudTrail log object was read since {} ({} min ago; at most {} min allowed)",
            utc_timestamp(t),
            (now - t) / 60,
            max / 60
        ),
        None => format!(
            "no CloudTrail log object has been read since the sweep first ran at {} ({} min; at most {} min allowed)",
            utc_timestamp(first),
            (now - first) / 60,
            max / 60
        ),
    };
    Ok(Some(Alert::degraded(
        Rule::NoLogObjectsRead,
        &reason,
        now,
        None,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lambda::fakes::{FakeFunctions, FakeHeartbeat};

    const NOW: i64 = 1_759_413_931;

    fn baseline_json(version: &str) -> String {
        format!(
            r#"{{"schema": 1, "functions": [{{"kind": "launcher",
              "function_arn": "arn:aws:lambda:us-east-1:111122223333:function:gov-launcher",
              "version_arn": "arn:aws:lambda:us-east-1:111122223333:function:gov-launcher:{version}",
              "execution_role_arn": "arn:aws:iam::111122223333:role/launcher",
              "aliases": {{"live": "{version}"}}, "url_auth_types": {{"live": "AWS_IAM"}},
              "reserved_concurrency": 10,
              "permissions": [{{"principal": "*", "action": "lambda:InvokeFunctionUrl", "qualifier": "live", "source_arn": null}}]}}]}}"#
        )
    }

    #[test]
    fn a_drift_alert_names_the_function_property_account_and_region() {
        let b = integrity::parse_baseline(&baseline_json("3")).unwrap();
        let d = Drift {
            property: "code".into(),
            detail: "$LATEST code X is not the deployed version's Y".into(),
        };
        let a = drift_alert(&b.functions[0], &d, NOW);
        assert_eq!(a.finding.rule, Rule::FunctionIntegrityDrift);
        assert_eq!(a.finding.event.as_str(), "aws.microvm.governance.tampered");
        assert_eq!(a.finding.severity, Severity::Critical);
        assert_eq!(a.finding.account_id.as_deref(), Some("111122223333"));
        assert_eq!(a.finding.region.as_deref(), Some("us-east-1"));
        assert!(a.finding.reason.as_deref().unwrap().starts_with("code: "));
        assert_eq!(
            a.dedupe.as_key(),
            "check#function-integrity-drift#arn:aws:lambda:us-east-1:111122223333:function:gov-launcher#code#2025-10-02"
        );
    }

    #[tokio::test]
    async fn an_unreadable_baseline_or_function_is_integrity_check_unavailable_not_silence() {
        let funcs = FakeFunctions::default();
        let hb = FakeHeartbeat::default();
        let cfg = SweepConfig {
            integrity_parameter: Some("/gov/baseline".into()),
            ..SweepConfig::default()
        };
        let ports = crate::lambda::fakes::ports_with(&funcs, &hb);
        let mut c = Counters::default();
        let alerts = integrity(&ports.ports(), &cfg, NOW, &mut c).await;
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].finding.rule, Rule::IntegrityCheckUnavailable);
        *funcs.baseline.lock().unwrap() = Some("{not json".into());
        let alerts = integrity(&ports.ports(), &cfg, NOW, &mut c).await;
        assert!(
            alerts[0]
                .finding
                .reason
                .as_deref()
                .unwrap()
                .contains("unusable")
        );
        *funcs.baseline.lock().unwrap() = Some(baseline_json("3"));
        funcs
            .fail_observe
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let alerts = integrity(&ports.ports(), &cfg, NOW, &mut c).await;
        assert_eq!(alerts[0].finding.rule, Rule::IntegrityCheckUnavailable);
        assert!(
            alerts[0]
                .finding
                .reason
                .as_deref()
                .unwrap()
                .contains("launcher function")
        );
    }

    #[tokio::test]
    async fn a_deleted_function_is_a_drift_and_an_intact_one_raises_nothing() {
        let funcs = FakeFunctions::default();
        let hb = FakeHeartbeat::default();
        *funcs.baseline.lock().unwrap() = Some(baseline_json("3"));
        let cfg = SweepConfig {
            integrity_parameter: Some("/gov/baseline".into()),
            ..SweepConfig::default()
        };
        let ports = crate::lambda::fakes::ports_with(&funcs, &hb);
        let mut c = Counters::default();
        let alerts = integrity(&ports.ports(), &cfg, NOW, &mut c).await;
        assert_eq!(alerts.len(), 1);
        assert!(
            alerts[0]
                .finding
                .reason
                .as_deref()
                .unwrap()
                .starts_with("function: ")
        );
        let b = integrity::parse_baseline(&baseline_json("3")).unwrap();
        let intact = FakeFunctions::intact(&b.functions[0]);
        *intact.baseline.lock().unwrap() = Some(baseline_json("3"));
        let ports = crate::lambda::fakes::ports_with(&intact, &hb);
        let alerts = integrity(&ports.ports(), &cfg, NOW, &mut Counters::default()).await;
        assert!(alerts.is_empty(), "{alerts:?}");
    }

    #[tokio::test]
    async fn silence_longer_than_allowed_is_degraded_counted_from_the_first_sweep() {
        let hb = FakeHeartbeat::default();
        let funcs = FakeFunctions::default();
        let ports = crate::lambda::fakes::ports_with(&funcs, &hb);
        let cfg = SweepConfig {
            heartbeat_max_silence: Some(1800),
            ..SweepConfig::default()
        };
        // First sweep: nothing read yet, but nothing overdue either.
        assert!(
            heartbeat(&ports.ports(), &cfg, NOW)
                .await
                .unwrap()
                .is_none()
        );
        // 31 minutes later, still nothing read: degraded.
        let a = heartbeat(&ports.ports(), &cfg, NOW + 31 * 60)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.finding.rule, Rule::NoLogObjectsRead);
        assert!(
            a.finding
                .reason
                .as_deref()
                .unwrap()
                .contains("since the sweep first ran")
        );
        // An object is read: quiet again until the silence is too long.
        *hb.last.lock().unwrap() = Some(NOW + 40 * 60);
        assert!(
            heartbeat(&ports.ports(), &cfg, NOW + 60 * 60)
                .await
                .unwrap()
                .is_none()
        );
        let a = heartbeat(&ports.ports(), &cfg, NOW + 80 * 60)
            .await
            .unwrap()
            .unwrap();
        assert!(a.finding.reason.as_deref().unwrap().contains("40 min ago"));
        hb.fail.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(heartbeat(&ports.ports(), &cfg, NOW).await.is_err());
    }
}
