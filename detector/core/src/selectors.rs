//! Do a trail's event selectors log every governed MicroVM call?
//!
//! The six governed operations are CloudTrail **data events**, logged only
//! when a trail has an advanced event selector with `eventCategory = Data`
//! and `resources.type = AWS::Lambda::MicrovmImage`
//! (reference/microvms-and-cloudtrail.md). One function decides it, used by
//! the sweep's trail-health check (selectors read with GetEventSelectors) and
//! by the rule on `PutEventSelectors` records (the selectors the call set).

use serde_json::Value;
use shared_core::GovernedOp;

/// The resource type MicroVM data events are selected by.
pub const MICROVM_RESOURCE_TYPE: &str = "AWS::Lambda::MicrovmImage";

/// One advanced event selector field condition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldCondition {
    pub field: String,
    pub equals: Vec<String>,
    pub not_equals: Vec<String>,
    pub starts_with: Vec<String>,
    pub not_starts_with: Vec<String>,
    pub ends_with: Vec<String>,
    pub not_ends_with: Vec<String>,
}

/// Does this advanced selector log every governed call on every MicroVM
/// image? Conditions are ANDed; anything that narrows the selection
/// (read-only only, some event names, some image ARNs) means a bypass can
/// fall outside. `Err` says why not.
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

/// The verdict over a trail's whole set of selectors.
pub fn selectors_cover(
    advanced: &[Vec<FieldCondition>],
    basic_selectors: usize,
) -> Result<String, String> {
    if advanced.is_empty() {
        return Err(if basic_selectors > 0 {
            "only basic event selectors, which cannot select MicroVM data events".into()
        } else {
            "no advanced event selector".into()
        });
    }
    let mut reasons = Vec::new();
    for (i, s) in advanced.iter().enumerate() {
        match selector_covers(s) {
            Ok(()) => return Ok(format!("advanced selector #{} selects them", i + 1)),
            Err(r) => reasons.push(format!("selector #{}: {r}", i + 1)),
        }
    }
    Err(reasons.join("; "))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The advanced selectors of a `PutEventSelectors` request
/// (`requestParameters.advancedEventSelectors[].fieldSelectors[]`), and the
/// number of basic selectors (`eventSelectors`).
pub fn from_request_parameters(params: &Value) -> (Vec<Vec<FieldCondition>>, usize) {
    let advanced = params
        .get("advancedEventSelectors")
        .and_then(Value::as_array)
        .map(|sels| {
            sels.iter()
                .map(|s| {
                    s.get("fieldSelectors")
                        .and_then(Value::as_array)
                        .map(|fs| {
                            fs.iter()
                                .map(|f| FieldCondition {
                                    field: f
                                        .get("field")
                                        .and_then(Value::as_str)
                                        .unwrap_or_default()
                                        .to_string(),
                                    equals: strings(f.get("equals")),
                                    not_equals: strings(f.get("notEquals")),
                                    starts_with: strings(f.get("startsWith")),
                                    not_starts_with: strings(f.get("notStartsWith")),
                                    ends_with: strings(f.get("endsWith")),
                                    not_ends_with: strings(f.get("notEndsWith")),
                                })
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    let basic = params
        .get("eventSelectors")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    (advanced, basic)
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
    fn put_event_selectors_parameters_are_read_with_their_cloudtrail_names() {
        let params = serde_json::json!({
            "trailName": "t",
            "advancedEventSelectors": [
                {"name": "mgmt", "fieldSelectors": [{"field": "eventCategory", "equals": ["Management"]}]},
                {"name": "mvm", "fieldSelectors": [
                    {"field": "eventCategory", "equals": ["Data"]},
                    {"field": "resources.type", "equals": [MICROVM_RESOURCE_TYPE]},
                    {"field": "readOnly", "equals": ["true"]}]}
            ]
        });
        let (adv, basic) = from_request_parameters(&params);
        assert_eq!((adv.len(), basic), (2, 0));
        let e = selectors_cover(&adv, basic).unwrap_err();
        assert!(e.contains("selector #2: readOnly = true"), "{e}");
        let basic_only = serde_json::json!({"eventSelectors": [{"readWriteType": "All"}]});
        let (adv, basic) = from_request_parameters(&basic_only);
        assert!(
            selectors_cover(&adv, basic)
                .unwrap_err()
                .contains("only basic")
        );
    }
}
