//! Trail health: is some logging trail recording the MicroVM data events?
//!
//! The six governed operations are CloudTrail **data events**, logged only
//! when a trail has an advanced event selector with `eventCategory = Data`
//! and `resources.type = AWS::Lambda::MicrovmImage`
//! (reference/microvms-and-cloudtrail.md). Without one, the CloudTrail layer
//! of the detector is blind, so the sweep checks it every run and reports
//! `aws.microvm.detection.degraded` when no trail qualifies. Pure: decided
//! over [`TrailInfo`] values, tested without AWS.

use super::ports::{FieldCondition, TrailInfo};
use serde::Serialize;
use shared_core::GovernedOp;

/// The resource type MicroVM data events are selected by.
pub const MICROVM_RESOURCE_TYPE: &str = "AWS::Lambda::MicrovmImage";

/// Rule names of the degraded findings.
pub const CHECK_NO_TRAIL: &str = "no-trail-logs-microvm-data-events";

/// Why one trail does not cover the governed calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrailVerdict {
    pub trail: String,
    pub covers: bool,
    pub reason: String,
}

/// Does this advanced selector log every governed call on every MicroVM
/// image? Conditions are ANDed; anything that narrows the selection (read-only
/// only, some event names, some image ARNs) means a bypass can fall outside.
pub fn selector_covers(fields: &[FieldCondition]) -> Result<(), String> {
    let get = |name: &str| fields.iter().find(|f| f.field == name);
    let category = get("eventCategory").ok_or("no eventCategory condition")?;
    if !category.equals.iter().any(|v| v == "Data") {
        return Err("eventCategory is not Data".into());
    }
    let rtype = get("resources.type").ok_or("no resources.type condition")?;
    if !rtype.equals.iter().any(|v| v == MICROVM_RESOURCE_TYPE) {
        return Err(format!(
            "resources.type does not include {MICROVM_RESOURCE_TYPE}"
        ));
    }
    for f in fields {
        match f.field.as_str() {
            "eventCategory" | "resources.type" => {}
            "readOnly" => {
                if f.equals.iter().any(|v| v == "true") {
                    return Err("readOnly = true excludes the governed (write) calls".into());
                }
            }
            "eventName" => {
                for op in GovernedOp::ALL {
                    let name = op.as_str();
                    let excluded = (!f.equals.is_empty() && !f.equals.iter().any(|v| v == name))
                        || f.not_equals.iter().any(|v| v == name)
                        || (!f.starts_with.is_empty()
                            && !f.starts_with.iter().any(|p| name.starts_with(p.as_str())))
                        || f.not_starts_with
                            .iter()
                            .any(|p| name.starts_with(p.as_str()))
                        || (!f.ends_with.is_empty()
                            && !f.ends_with.iter().any(|s| name.ends_with(s.as_str())))
                        || f.not_ends_with.iter().any(|s| name.ends_with(s.as_str()));
                    if excluded {
                        return Err(format!("eventName condition excludes {name}"));
                    }
                }
            }
            other => {
                return Err(format!(
                    "condition on `{other}` narrows the selection (calls on other images or by \
                     other principals would not be logged)"
                ));
            }
        }
    }
    Ok(())
}

/// One trail's verdict.
pub fn assess_trail(t: &TrailInfo) -> TrailVerdict {
    let verdict = |covers: bool, reason: String| TrailVerdict {
        trail: if t.arn.is_empty() {
            t.name.clone()
        } else {
            t.arn.clone()
        },
        covers,
        reason,
    };
    if !t.is_logging {
        return verdict(false, "not logging".into());
    }
    if t.advanced_selectors.is_empty() {
        return verdict(
            false,
            if t.basic_selectors > 0 {
                "only basic event selectors, which cannot select MicroVM data events".into()
            } else {
                "no advanced event selector".into()
            },
        );
    }
    let mut reasons = Vec::new();
    for (i, s) in t.advanced_selectors.iter().enumerate() {
        match selector_covers(s) {
            Ok(()) => return verdict(true, format!("advanced selector #{} selects them", i + 1)),
            Err(r) => reasons.push(format!("selector #{}: {r}", i + 1)),
        }
    }
    verdict(false, reasons.join("; "))
}

/// The result of a health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrailHealth {
    pub healthy: bool,
    pub verdicts: Vec<TrailVerdict>,
    /// Trails named in the configuration that CloudTrail does not know.
    pub missing: Vec<String>,
}

/// Health over all trails, or only over `only` (names or ARNs) when given.
pub fn assess(trails: &[TrailInfo], only: &[String]) -> TrailHealth {
    let wanted =
        |t: &TrailInfo| only.is_empty() || only.iter().any(|n| *n == t.name || *n == t.arn);
    let verdicts: Vec<TrailVerdict> = trails
        .iter()
        .filter(|t| wanted(t))
        .map(assess_trail)
        .collect();
    let missing = only
        .iter()
        .filter(|n| !trails.iter().any(|t| t.name == **n || t.arn == **n))
        .cloned()
        .collect();
    TrailHealth {
        healthy: verdicts.iter().any(|v| v.covers),
        verdicts,
        missing,
    }
}

impl TrailHealth {
    /// A one-line reason for the alert.
    pub fn reason(&self) -> String {
        if self.verdicts.is_empty() {
            if self.missing.is_empty() {
                return "no CloudTrail trail exists".into();
            }
            return format!("configured trail(s) not found: {}", self.missing.join(", "));
        }
        format!(
            "no logging trail selects {MICROVM_RESOURCE_TYPE} data events ({})",
            self.verdicts
                .iter()
                .map(|v| format!("{}: {}", v.trail, v.reason))
                .collect::<Vec<_>>()
                .join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            is_logging: logging,
            advanced_selectors: selectors,
            basic_selectors: 0,
        }
    }

    #[test]
    fn a_logging_trail_with_the_microvm_data_selector_is_healthy() {
        let h = assess(&[trail(true, vec![good()])], &[]);
        assert!(h.healthy, "{h:?}");
    }

    #[test]
    fn a_stopped_trail_is_not_enough() {
        let h = assess(&[trail(false, vec![good()])], &[]);
        assert!(!h.healthy);
        assert!(h.reason().contains("not logging"), "{}", h.reason());
    }

    #[test]
    fn management_events_only_is_degraded() {
        let h = assess(
            &[trail(
                true,
                vec![vec![cond("eventCategory", &["Management"])]],
            )],
            &[],
        );
        assert!(!h.healthy);
        assert!(
            h.reason().contains("eventCategory is not Data"),
            "{}",
            h.reason()
        );
    }

    #[test]
    fn narrowing_conditions_are_not_coverage() {
        let mut read_only = good();
        read_only.push(cond("readOnly", &["true"]));
        assert!(selector_covers(&read_only).is_err());
        let mut some_names = good();
        some_names.push(cond("eventName", &["RunMicrovm"]));
        let e = selector_covers(&some_names).unwrap_err();
        assert!(e.contains("CreateMicrovmAuthToken"), "{e}");
        let mut not_shell = good();
        not_shell.push(FieldCondition {
            field: "eventName".into(),
            not_equals: vec!["CreateMicrovmShellAuthToken".into()],
            ..Default::default()
        });
        assert!(selector_covers(&not_shell).is_err());
        let mut one_image = good();
        one_image.push(FieldCondition {
            field: "resources.ARN".into(),
            starts_with: vec!["arn:aws:lambda:us-east-1:111122223333:microvm-image:a".into()],
            ..Default::default()
        });
        assert!(selector_covers(&one_image).is_err());
        let mut writes = good();
        writes.push(cond("readOnly", &["false"]));
        assert!(selector_covers(&writes).is_ok());
        let mut all_names = good();
        all_names.push(cond("eventName", &GovernedOp::ALL.map(GovernedOp::as_str)));
        assert!(selector_covers(&all_names).is_ok());
    }

    #[test]
    fn only_the_configured_trails_count_and_missing_ones_are_named() {
        let t = trail(true, vec![good()]);
        let h = assess(std::slice::from_ref(&t), &["other-trail".into()]);
        assert!(!h.healthy);
        assert_eq!(h.missing, vec!["other-trail".to_string()]);
        assert!(h.reason().contains("other-trail"));
        assert!(assess(&[t], &["org-trail".into()]).healthy);
    }
}
