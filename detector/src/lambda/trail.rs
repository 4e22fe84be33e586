//! Trail health: is some trail recording the MicroVM data events, for this
//! region, into the bucket the detector reads, and delivering them?
//!
//! Each trail gets a verdict naming the first property that fails: it could
//! not be read, it is not logging, it logs another region only, its
//! selectors do not select the data events (decided by
//! [`detector_core::selectors`], the same code that judges a
//! `PutEventSelectors` record), it delivers to another bucket, or its last
//! delivery failed. Detection is healthy when at least one trail covers.
//! Pure: decided over [`TrailInfo`] values, tested without AWS.

use super::ports::TrailInfo;
use detector_core::selectors::selectors_cover;
use serde::Serialize;

pub use detector_core::selectors::MICROVM_RESOURCE_TYPE;

/// What the deployment expects of a covering trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrailExpectations {
    /// Only these trails (names or ARNs) count; all trails when empty.
    pub names: Vec<String>,
    /// A covering trail must deliver to one of these buckets; any bucket
    /// when empty.
    pub buckets: Vec<String>,
    /// The region the detector watches: a single-region trail homed
    /// elsewhere does not cover it.
    pub region: Option<String>,
    /// Further regions the sweep covers; with `every_region`, all of them
    /// (only a multi-region trail covers).
    pub regions: Vec<String>,
    pub every_region: bool,
    /// The sweep covers accounts other than the detector's own: only an
    /// organization trail records their calls.
    pub other_accounts: bool,
}

/// Why one trail does or does not cover the governed calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrailVerdict {
    pub trail: String,
    pub covers: bool,
    /// The property that decided: `readable`, `logging`, `region`,
    /// `selectors`, `bucket`, `delivery` (or `covers`).
    pub property: &'static str,
    pub reason: String,
}

/// One trail's verdict.
pub fn assess_trail(t: &TrailInfo, want: &TrailExpectations) -> TrailVerdict {
    let verdict = |covers: bool, property: &'static str, reason: String| TrailVerdict {
        trail: if t.arn.is_empty() {
            t.name.clone()
        } else {
            t.arn.clone()
        },
        covers,
        property,
        reason,
    };
    if let Some(e) = &t.read_error {
        return verdict(false, "readable", format!("cannot be read: {e}"));
    }
    if !t.is_logging {
        return verdict(false, "logging", "not logging".into());
    }
    if want.other_accounts && !t.is_organization_trail {
        return verdict(
            false,
            "organization",
            "records its own account only, and the sweep covers other accounts: an \
             organization trail is needed"
                .into(),
        );
    }
    if !t.is_multi_region
        && let Some(home) = &t.home_region
    {
        if want.every_region {
            return verdict(
                false,
                "region",
                format!("single-region trail of {home}, and the sweep covers every enabled region"),
            );
        }
        let outside: Vec<&str> = want
            .region
            .iter()
            .chain(&want.regions)
            .map(String::as_str)
            .filter(|r| r != home)
            .collect();
        if !outside.is_empty() {
            return verdict(
                false,
                "region",
                format!("single-region trail of {home}, not {}", outside.join(", ")),
            );
        }
    }
    let selectors = match selectors_cover(&t.advanced_selectors, t.basic_selectors) {
        Ok(why) => why,
        Err(why) => return verdict(false, "selectors", why),
    };
    if !want.buckets.is_empty() {
        let bucket = t.s3_bucket_name.as_deref().unwrap_or("(none)");
        if !want.buckets.iter().any(|b| b == bucket) {
            return verdict(
                false,
                "bucket",
                format!(
                    "delivers to bucket {bucket}, not to {}",
                    want.buckets.join(" or ")
                ),
            );
        }
    }
    if let Some(e) = &t.latest_delivery_error {
        return verdict(false, "delivery", format!("last log delivery failed: {e}"));
    }
    if let Some(e) = &t.latest_digest_delivery_error {
        return verdict(
            false,
            "delivery",
            format!("last digest delivery failed: {e}"),
        );
    }
    verdict(true, "covers", selectors)
}

/// The result of a health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrailHealth {
    pub healthy: bool,
    pub verdicts: Vec<TrailVerdict>,
    /// Trails named in the configuration that CloudTrail does not know.
    pub missing: Vec<String>,
}

/// Health over all trails, or only over `want.names` when given.
pub fn assess(trails: &[TrailInfo], want: &TrailExpectations) -> TrailHealth {
    let named = |t: &TrailInfo, n: &str| n == t.name || n == t.arn;
    let verdicts: Vec<TrailVerdict> = trails
        .iter()
        .filter(|t| want.names.is_empty() || want.names.iter().any(|n| named(t, n)))
        .map(|t| assess_trail(t, want))
        .collect();
    let missing = want
        .names
        .iter()
        .filter(|n| !trails.iter().any(|t| named(t, n)))
        .cloned()
        .collect();
    TrailHealth {
        healthy: verdicts.iter().any(|v| v.covers),
        verdicts,
        missing,
    }
}

impl TrailHealth {
    /// A one-line reason for the alert, naming each trail's failing property.
    pub fn reason(&self) -> String {
        if self.verdicts.is_empty() {
            if self.missing.is_empty() {
                return "no CloudTrail trail exists".into();
            }
            return format!("configured trail(s) not found: {}", self.missing.join(", "));
        }
        format!(
            "no trail records {MICROVM_RESOURCE_TYPE} data events for the detector ({})",
            self.verdicts
                .iter()
                .map(|v| format!("{} [{}]: {}", v.trail, v.property, v.reason))
                .collect::<Vec<_>>()
                .join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lambda::ports::FieldCondition;

    fn cond(field: &str, equals: &[&str]) -> FieldCondition {
        FieldCondition {
            field: field.into(),
            equals: equals.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn good() -> Vec<FieldCondition> {
        vec![
            cond("eventCategory", &["Data"]),
            cond("resources.type", &[MICROVM_RESOURCE_TYPE]),
        ]
    }

    fn trail(logging: bool, selectors: Vec<Vec<FieldCondition>>) -> TrailInfo {
        TrailInfo {
            name: "org-trail".into(),
            arn: "arn:aws:cloudtrail:us-east-1:111122223333:trail/org-trail".into(),
            home_region: Some("us-east-1".into()),
            is_multi_region: true,
            s3_bucket_name: Some("gov-trail-bucket".into()),
            is_logging: logging,
            advanced_selectors: selectors,
            ..TrailInfo::default()
        }
    }

    fn any() -> TrailExpectations {
        TrailExpectations::default()
    }

    #[test]
    fn a_logging_trail_with_the_microvm_data_selector_is_healthy() {
        let h = assess(&[trail(true, vec![good()])], &any());
        assert!(h.healthy, "{h:?}");
    }

    #[test]
    fn a_stopped_trail_is_not_enough() {
        let h = assess(&[trail(false, vec![good()])], &any());
        assert!(!h.healthy);
        assert!(
            h.reason().contains("[logging]: not logging"),
            "{}",
            h.reason()
        );
    }

    #[test]
    fn management_events_only_is_degraded() {
        let h = assess(
            &[trail(
                true,
                vec![vec![cond("eventCategory", &["Management"])]],
            )],
            &any(),
        );
        assert!(!h.healthy);
        assert!(
            h.reason()
                .contains("[selectors]: selector #1: eventCategory is not Data"),
            "{}",
            h.reason()
        );
    }

    #[test]
    fn only_the_configured_trails_count_and_missing_ones_are_named() {
        let t = trail(true, vec![good()]);
        let only = |n: &str| TrailExpectations {
            names: vec![n.into()],
            ..any()
        };
        let h = assess(std::slice::from_ref(&t), &only("other-trail"));
        assert!(!h.healthy);
        assert_eq!(h.missing, vec!["other-trail".to_string()]);
        assert!(h.reason().contains("other-trail"));
        assert!(assess(&[t], &only("org-trail")).healthy);
    }

    #[test]
    fn a_trail_redirected_to_another_bucket_does_not_cover() {
        let mut t = trail(true, vec![good()]);
        t.s3_bucket_name = Some("attacker-bucket".into());
        let want = TrailExpectations {
            buckets: vec!["gov-trail-bucket".into()],
            ..any()
        };
        let v = assess_trail(&t, &want);
        assert_eq!((v.covers, v.property), (false, "bucket"));
        assert!(v.reason.contains("attacker-bucket"), "{}", v.reason);
    }

    #[test]
    fn delivery_errors_and_unreadable_trails_are_named_and_never_hide_a_good_trail() {
        let mut failing = trail(true, vec![good()]);
        failing.latest_delivery_error = Some("AccessDenied".into());
        let v = assess_trail(&failing, &any());
        assert_eq!((v.covers, v.property), (false, "delivery"));
        let mut digest = trail(true, vec![good()]);
        digest.latest_digest_delivery_error = Some("NoSuchBucket".into());
        assert_eq!(assess_trail(&digest, &any()).property, "delivery");
        let mut unreadable = trail(true, vec![good()]);
        unreadable.name = "locked".into();
        unreadable.arn = "arn:aws:cloudtrail:eu-west-1:111122223333:trail/locked".into();
        unreadable.read_error = Some("GetTrailStatus: AccessDenied".into());
        let h = assess(&[unreadable.clone(), trail(true, vec![good()])], &any());
        assert!(h.healthy, "the readable trail still covers: {h:?}");
        let h = assess(&[unreadable], &any());
        assert!(!h.healthy);
        assert!(h.reason().contains("[readable]"), "{}", h.reason());
    }

    #[test]
    fn a_single_region_trail_covers_only_its_home_region() {
        let mut t = trail(true, vec![good()]);
        t.is_multi_region = false;
        let want = |r: &str| TrailExpectations {
            region: Some(r.into()),
            ..any()
        };
        assert!(assess_trail(&t, &want("us-east-1")).covers);
        let v = assess_trail(&t, &want("eu-west-1"));
        assert_eq!((v.covers, v.property), (false, "region"));
        // The sweep's other regions count too.
        let swept = TrailExpectations {
            regions: vec!["us-east-1".into(), "ap-south-1".into()],
            ..want("us-east-1")
        };
        let v = assess_trail(&t, &swept);
        assert_eq!((v.covers, v.property), (false, "region"));
        assert!(v.reason.ends_with("not ap-south-1"), "{}", v.reason);
        let every = TrailExpectations {
            every_region: true,
            ..want("us-east-1")
        };
        assert_eq!(assess_trail(&t, &every).property, "region");
        t.is_multi_region = true;
        assert!(assess_trail(&t, &every).covers);
    }

    #[test]
    fn sweeping_other_accounts_needs_an_organization_trail() {
        let mut t = trail(true, vec![good()]);
        let want = TrailExpectations {
            other_accounts: true,
            ..any()
        };
        let v = assess_trail(&t, &want);
        assert_eq!((v.covers, v.property), (false, "organization"));
        t.is_organization_trail = true;
        assert!(assess_trail(&t, &want).covers);
    }
}
