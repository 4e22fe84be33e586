//! What a Function URL delivers, checked before the router sees it.
//!
//! In Lambda the caller is whatever `requestContext.authorizer.iam` the
//! event carries, so an event that did not come through a Function URL
//! (a direct `Invoke` with a hand-made payload) could name any principal.
//! What makes such an invocation impossible is IAM: the agents' grants and
//! the launcher's resource policy allow `lambda:InvokeFunction` only with
//! the condition `lambda:InvokedViaFunctionUrl = true`, and nobody but the
//! schedule may invoke it directly. This check is defence in depth behind
//! that condition: an event without the shape AWS documents for a Function
//! URL (payload format 2.0) is refused and logged, never served.
//!
//! Checked: `version` `2.0`; `routeKey`, `requestContext.routeKey` and
//! `stage` `$default`; `requestContext.domainName` is
//! `<apiId>.lambda-url.<AWS_REGION>.on.aws` with `domainPrefix` = `apiId`
//! (a URL id is lowercase letters and digits); `http.method` and
//! `http.path` present, the path equal to `rawPath`. On the agent surface
//! (`AuthType: AWS_IAM`) `authorizer.iam` must carry `accessKey`,
//! `accountId`, `userArn` and `userId`/`callerId`, with the ARN an IAM or
//! STS ARN of that account. On the callback surface (`AuthType: NONE`)
//! there is no authorizer and `accountId` is `anonymous`.

use crate::app::Surface;
use serde_json::Value;

/// Why an event is not what a Function URL delivers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Function URL event: {0}")]
pub struct NotFunctionUrl(pub String);

/// The top-level keys of a Function URL payload (format 2.0).
const TOP_LEVEL: [&str; 12] = [
    "version",
    "routeKey",
    "rawPath",
    "rawQueryString",
    "cookies",
    "headers",
    "queryStringParameters",
    "pathParameters",
    "stageVariables",
    "requestContext",
    "body",
    "isBase64Encoded",
];

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, k| v.get(*k))
        .and_then(Value::as_str)
}

fn url_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Check `event` against the Function URL payload of `surface`; `region`
/// is the function's `AWS_REGION` (the URL's region).
pub fn check(event: &Value, surface: Surface, region: Option<&str>) -> Result<(), NotFunctionUrl> {
    let bad = |why: String| Err(NotFunctionUrl(why));
    let want = |path: &[&str], value: &str| -> Result<(), NotFunctionUrl> {
        match text(event, path) {
            Some(v) if v == value => Ok(()),
            other => Err(NotFunctionUrl(format!(
                "`{}` is {}, expected {value:?}",
                path.join("."),
                other.map_or_else(
                    || "missing".to_string(),
                    |v| format!("`{}`", shared_core::text::clean(v, 64))
                )
            ))),
        }
    };
    let Some(top) = event.as_object() else {
        return bad("the event is not a JSON object".into());
    };
    if let Some(k) = top.keys().find(|k| !TOP_LEVEL.contains(&k.as_str())) {
        return bad(format!(
            "top-level key `{}` is not in a Function URL payload",
            shared_core::text::clean(k, 64)
        ));
    }
    want(&["version"], "2.0")?;
    want(&["routeKey"], "$default")?;
    want(&["requestContext", "routeKey"], "$default")?;
    want(&["requestContext", "stage"], "$default")?;
    let ctx = &event["requestContext"];
    let Some(api_id) = text(ctx, &["apiId"]).filter(|id| url_id_ok(id)) else {
        return bad("`requestContext.apiId` is not a Function URL id".into());
    };
    want(&["requestContext", "domainPrefix"], api_id)?;
    let Some(domain) = text(ctx, &["domainName"]) else {
        return bad("`requestContext.domainName` is missing".into());
    };
    let Some(url_region) = domain
        .strip_prefix(api_id)
        .and_then(|d| d.strip_prefix(".lambda-url."))
        .and_then(|d| d.strip_suffix(".on.aws"))
    else {
        return bad(format!(
            "`requestContext.domainName` is not `{api_id}.lambda-url.<region>.on.aws`"
        ));
    };
    if let Some(region) = region
        && url_region != region
    {
        return bad(format!(
            "`requestContext.domainName` names region `{}`, the function runs in `{region}`",
            shared_core::text::clean(url_region, 32)
        ));
    }
    if text(ctx, &["http", "method"]).is_none_or(str::is_empty) {
        return bad("`requestContext.http.method` is missing".into());
    }
    let raw_path = text(event, &["rawPath"]).unwrap_or_default();
    if text(ctx, &["http", "path"]) != Some(raw_path) || !raw_path.starts_with('/') {
        return bad("`requestContext.http.path` is not `rawPath`".into());
    }
    let iam = ctx.get("authorizer").filter(|a| !a.is_null());
    match surface {
        Surface::Callback => {
            if iam.is_some() {
                return bad("the callback URL has no authorizer (AuthType NONE)".into());
            }
            want(&["requestContext", "accountId"], "anonymous")
        }
        Surface::Agent => {
            let Some(iam) = iam.and_then(|a| a.get("iam")).filter(|i| i.is_object()) else {
                return bad("`requestContext.authorizer.iam` is missing (AuthType AWS_IAM)".into());
            };
            for field in ["accessKey", "accountId", "userArn"] {
                if text(iam, &[field]).is_none_or(str::is_empty) {
                    return bad(format!(
                        "`requestContext.authorizer.iam.{field}` is missing"
                    ));
                }
            }
            if text(iam, &["userId"])
                .or(text(iam, &["callerId"]))
                .is_none_or(str::is_empty)
            {
                return bad("`requestContext.authorizer.iam.userId` is missing".into());
            }
            let account = text(iam, &["accountId"]).unwrap_or_default();
            let arn = text(iam, &["userArn"]).unwrap_or_default();
            let parts: Vec<&str> = arn.splitn(6, ':').collect();
            let arn_ok = parts.len() == 6
                && parts[0] == "arn"
                && parts[1].starts_with("aws")
                && matches!(parts[2], "iam" | "sts")
                && parts[3].is_empty()
                && parts[4] == account
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit());
            if !arn_ok {
                return bad(
                    "`requestContext.authorizer.iam.userArn` is not an IAM or STS ARN of its `accountId`"
                        .into(),
                );
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_passes_and_a_url_id_with_dots_or_capitals_does_not() {
        let f: Value = serde_json::from_str(include_str!(
            "../tests/fixtures/function_url_iam_run_request.json"
        ))
        .unwrap();
        assert_eq!(check(&f, Surface::Agent, Some("us-east-1")), Ok(()));
        assert!(check(&f, Surface::Callback, Some("us-east-1")).is_err());
        assert!(!url_id_ok("a.b") && !url_id_ok("ABC") && !url_id_ok(""));
    }
}
