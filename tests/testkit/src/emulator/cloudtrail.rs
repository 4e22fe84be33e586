//! CloudTrail records for the calls the emulator served, in the real format.
//!
//! Shapes follow real records (see `../shared/data/cloudtrail`, e.g. the EventBridge envelopes
//! for `userIdentity` of assumed roles and the sans504 data events) and
//! `reference/microvms-and-cloudtrail.md`: the six governed operations are data events
//! (`eventCategory: Data`, `managementEvent: false`, `resources` = the image ARN as
//! `AWS::Lambda::MicrovmImage`); GetMicrovm and ListMicrovms are read-only management events.
//! Token values never appear in a record.

use super::{ACCOUNT_ID, CallerIdentity, ServedCall};
use serde_json::{Map, Value, json};
use std::io::Write;
use std::time::SystemTime;

const EVENT_VERSION: &str = "1.11";

fn iso8601(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    dt.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .expect("formatting a UTC time cannot fail")
}

fn last_segment(arn: &str) -> &str {
    arn.rsplit(['/', ':']).next().unwrap_or(arn)
}

fn user_identity(
    access_key_id: &str,
    identity: Option<&CallerIdentity>,
    event_time: &str,
) -> Value {
    let Some(id) = identity else {
        // Not registered: an IAM user named after the access key.
        return json!({
            "type": "IAMUser",
            "principalId": format!("AIDA{access_key_id}"),
            "arn": format!("arn:aws:iam::{ACCOUNT_ID}:user/{access_key_id}"),
            "accountId": ACCOUNT_ID,
            "accessKeyId": access_key_id,
            "userName": access_key_id,
        });
    };
    let mut o = Map::new();
    o.insert("type".into(), json!(id.type_));
    o.insert("principalId".into(), json!(id.principal_id));
    o.insert("arn".into(), json!(id.arn));
    o.insert("accountId".into(), json!(id.account_id));
    o.insert("accessKeyId".into(), json!(access_key_id));
    match id.type_.as_str() {
        "IAMUser" => {
            o.insert("userName".into(), json!(last_segment(&id.arn)));
        }
        "AssumedRole" | "FederatedUser" => {
            let mut ctx = Map::new();
            if let Some(issuer) = &id.session_issuer_arn {
                let role_id = id
                    .principal_id
                    .split(':')
                    .next()
                    .unwrap_or(&id.principal_id);
                ctx.insert(
                    "sessionIssuer".into(),
                    json!({
                        "type": if id.type_ == "AssumedRole" { "Role" } else { "IAMUser" },
                        "principalId": role_id,
                        "arn": issuer,
                        "accountId": id.account_id,
                        "userName": last_segment(issuer),
                    }),
                );
            }
            ctx.insert("webIdFederationData".into(), json!({}));
            ctx.insert(
                "attributes".into(),
                json!({ "creationDate": event_time, "mfaAuthenticated": "false" }),
            );
            o.insert("sessionContext".into(), Value::Object(ctx));
        }
        _ => {}
    }
    Value::Object(o)
}

fn is_governed(operation: &str) -> bool {
    matches!(
        operation,
        "RunMicrovm"
            | "CreateMicrovmAuthToken"
            | "CreateMicrovmShellAuthToken"
            | "SuspendMicrovm"
            | "ResumeMicrovm"
            | "TerminateMicrovm"
    )
}

fn request_parameters(call: &ServedCall) -> Value {
    match call.operation.as_str() {
        // As sent: clientToken, imageIdentifier, executionRoleArn, runHookPayload, ...
        "RunMicrovm" => call.request.clone(),
        "ListMicrovms" => {
            if call.request.as_object().is_some_and(Map::is_empty) {
                Value::Null
            } else {
                call.request.clone()
            }
        }
        _ => {
            let mut o = call.request.as_object().cloned().unwrap_or_default();
            if let Some(id) = &call.microvm_id {
                o.insert("microvmIdentifier".into(), json!(id));
            }
            Value::Object(o)
        }
    }
}

fn response_elements(call: &ServedCall) -> Value {
    if !call.succeeded() || !is_governed(&call.operation) {
        return Value::Null;
    }
    let state = match call.operation.as_str() {
        "SuspendMicrovm" => Some("SUSPENDED"),
        "ResumeMicrovm" => Some("RUNNING"),
        "TerminateMicrovm" => Some("TERMINATED"),
        _ => None,
    };
    let mut o = Map::new();
    if let Some(id) = &call.microvm_id {
        o.insert("microvmId".into(), json!(id));
    }
    match state {
        Some(s) => {
            o.insert("state".into(), json!(s));
        }
        None => {
            if let Some(s) = call.response.get("state") {
                o.insert("state".into(), s.clone());
            }
        }
    }
    if let Some(arn) = &call.image_arn {
        o.insert("imageArn".into(), json!(arn));
    }
    Value::Object(o)
}

/// The CloudTrail record of one served call (`None` for a route the API does not have).
pub(super) fn record(call: &ServedCall, identity: Option<&CallerIdentity>) -> Option<Value> {
    if call.operation == "UnknownOperation" {
        return None;
    }
    let access_key_id = call.access_key_id.as_deref()?;
    let event_time = iso8601(call.time);
    let governed = is_governed(&call.operation);
    let mut r = Map::new();
    r.insert("eventVersion".into(), json!(EVENT_VERSION));
    r.insert(
        "userIdentity".into(),
        user_identity(access_key_id, identity, &event_time),
    );
    r.insert("eventTime".into(), json!(event_time));
    r.insert("eventSource".into(), json!("lambda.amazonaws.com"));
    r.insert("eventName".into(), json!(call.operation));
    r.insert("awsRegion".into(), json!(call.region));
    r.insert("sourceIPAddress".into(), json!(call.source_ip));
    r.insert(
        "userAgent".into(),
        json!(call.user_agent.as_deref().unwrap_or("unknown")),
    );
    if let Some(code) = &call.error_type {
        r.insert("errorCode".into(), json!(code));
        r.insert(
            "errorMessage".into(),
            json!(call.error_message.as_deref().unwrap_or_default()),
        );
    }
    r.insert("requestParameters".into(), request_parameters(call));
    r.insert("responseElements".into(), response_elements(call));
    r.insert("requestID".into(), json!(call.request_id));
    r.insert(
        "eventID".into(),
        json!(
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, call.request_id.as_bytes()).to_string()
        ),
    );
    r.insert("readOnly".into(), json!(!governed));
    if governed && let Some(arn) = &call.image_arn {
        r.insert(
            "resources".into(),
            json!([{ "accountId": ACCOUNT_ID, "type": "AWS::Lambda::MicrovmImage", "ARN": arn }]),
        );
    }
    r.insert("eventType".into(), json!("AwsApiCall"));
    r.insert("managementEvent".into(), json!(!governed));
    r.insert("recipientAccountId".into(), json!(ACCOUNT_ID));
    r.insert(
        "eventCategory".into(),
        json!(if governed { "Data" } else { "Management" }),
    );
    Some(Value::Object(r))
}

/// gzip of `{"Records":[...]}`, as CloudTrail writes log files.
pub(super) fn log_file_gz(records: &[Value]) -> Vec<u8> {
    let body = serde_json::to_vec(&json!({ "Records": records })).expect("serialise records");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&body).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

/// `AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/ACCOUNT_CloudTrail_REGION_YYYYMMDDTHHMMZ_X.json.gz`.
pub(super) fn object_key(account: &str, region: &str, t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    let day = dt
        .format(time::macros::format_description!("[year]/[month]/[day]"))
        .expect("format date");
    let stamp = dt
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute]Z"
        ))
        .expect("format stamp");
    let unique = &uuid::Uuid::new_v4().simple().to_string()[..16];
    format!(
        "AWSLogs/{account}/CloudTrail/{region}/{day}/{account}_CloudTrail_{region}_{stamp}_{unique}.json.gz"
    )
}
