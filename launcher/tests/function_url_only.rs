//! Only what a Function URL delivers is served on the agent surface.
//!
//! Regression: the launcher took the caller from whatever event arrived. A
//! direct `Invoke` with a hand-made event naming another agent's ARN (an
//! API Gateway REST event with `identity.userArn`, an HTTP API event, a
//! Function URL event with a forged domain or an incomplete IAM authorizer)
//! was served as that agent. The IAM condition `lambda:InvokedViaFunctionUrl`
//! is what makes such an invocation impossible; this shape check is defence
//! in depth behind it. The events go through `launcher::lambda::handle`, the
//! Lambda entry point itself.

mod common;

use serde_json::{Value, json};

const FIXTURE: &str = include_str!("fixtures/function_url_iam_run_request.json");
const FUNCTION: &str = "arn:aws:lambda:us-east-1:111122223333:function:launcher";

type Rig = common::MemoryRig;

fn rig() -> Rig {
    common::memory_rig(&[("AWS_REGION", "us-east-1")])
}

async fn invoke(r: &Rig, event: Value) -> Result<Value, String> {
    use lambda_http::lambda_runtime::LambdaEvent;
    let mut ctx = lambda_http::Context::default();
    ctx.invoked_function_arn = format!("{FUNCTION}:live");
    launcher::lambda::handle(
        r.state.clone(),
        r.router.clone(),
        LambdaEvent::new(event, ctx),
    )
    .await
    .map_err(|e| e.to_string())
}

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).unwrap()
}

/// An API Gateway REST (payload 1.0) event for the same ask, with the
/// agent's ARN where that format puts the IAM caller.
fn rest_api_event() -> Value {
    let f = fixture();
    json!({
        "resource": "/{proxy+}",
        "path": "/microvms/run-request",
        "httpMethod": "POST",
        "headers": {"content-type": "application/json"},
        "multiValueHeaders": {"content-type": ["application/json"]},
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": {"proxy": "microvms/run-request"},
        "stageVariables": null,
        "requestContext": {
            "accountId": "111122223333",
            "resourceId": "abc123",
            "stage": "prod",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {
                "accountId": "111122223333",
                "userArn": "arn:aws:sts::111122223333:assumed-role/ci-bot/ci-session",
                "sourceIp": "203.0.113.10",
                "user": "AROAEXAMPLEID:ci-session"
            },
            "resourcePath": "/{proxy+}",
            "httpMethod": "POST",
            "apiId": "1234567890",
            "path": "/prod/microvms/run-request"
        },
        "body": f["body"],
        "isBase64Encoded": false
    })
}

#[tokio::test]
async fn events_a_function_url_does_not_produce_are_refused_before_anything_is_done() {
    let r = rig();
    let mut http_api = fixture();
    http_api["requestContext"]["domainName"] =
        json!("abcdef1234.execute-api.us-east-1.amazonaws.com");
    http_api["requestContext"]["domainPrefix"] = json!("abcdef1234");
    http_api["requestContext"]["apiId"] = json!("abcdef1234");
    let mut forged: Vec<(&str, Value)> = vec![("HTTP API event", http_api)];
    forged.push(("API Gateway REST event", rest_api_event()));
    let mut other_region = fixture();
    other_region["requestContext"]["domainName"] =
        json!("abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws");
    forged.push(("a Function URL of another region", other_region));
    let mut api_id = fixture();
    api_id["requestContext"]["apiId"] = json!("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz");
    forged.push(("apiId that is not the URL id", api_id));
    let mut lookalike = fixture();
    lookalike["requestContext"]["domainName"] =
        json!("abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws.evil.example");
    forged.push(("a look-alike domain", lookalike));
    let mut bare_arn = fixture();
    bare_arn["requestContext"]["authorizer"]["iam"] =
        json!({"userArn": "arn:aws:sts::111122223333:assumed-role/ci-bot/ci-session"});
    forged.push(("an IAM authorizer with only a userArn", bare_arn));
    let mut account = fixture();
    account["requestContext"]["authorizer"]["iam"]["accountId"] = json!("444455556666");
    forged.push(("an IAM accountId that is not the ARN's", account));
    let mut version = fixture();
    version["version"] = json!("1.0");
    forged.push(("payload version 1.0", version));
    let mut path = fixture();
    path["requestContext"]["http"]["path"] = json!("/healthz");
    forged.push(("http.path that is not rawPath", path));

    for (what, event) in forged {
        let out = invoke(&r, event).await;
        let err = out.expect_err(&format!("{what}: served"));
        assert!(
            err.contains("not a Function URL event"),
            "{what}: the refusal names why: {err}"
        );
    }
    assert!(r.vms.calls().is_empty(), "a forged event reached AWS");
    assert!(r.c1.audits().is_empty(), "a forged event reached Contro1");
    assert!(r.c1.requests.lock().unwrap().is_empty());

    // The genuine Function URL event is served as before.
    let out = invoke(&r, fixture()).await.unwrap();
    assert_eq!(out["statusCode"], 200, "{out}");
    assert_eq!(r.vms.calls().len(), 1);
}

#[tokio::test]
async fn an_agent_url_with_auth_type_none_answers_401_and_serves_nothing() {
    let r = rig();
    // What a Function URL with AuthType NONE delivers: no authorizer, an anonymous account.
    let mut open = fixture();
    let ctx = open["requestContext"].as_object_mut().unwrap();
    ctx.remove("authorizer");
    ctx.insert("accountId".into(), json!("anonymous"));
    let out = invoke(&r, open).await.unwrap();
    assert_eq!(out["statusCode"], 401, "{out}");
    let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated", "{body}");
    assert!(
        r.vms.calls().is_empty(),
        "an unauthenticated event reached AWS"
    );
    assert!(r.c1.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_schedule_runs_the_reconciler_and_nothing_else_passes_for_it() {
    let r = rig();
    let sched = json!({"version": "0", "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
        "detail-type": "Scheduled Event", "source": "aws.events", "account": "111122223333",
        "time": "2026-12-07T00:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:111122223333:rule/launcher-reconcile"], "detail": {}});
    let out = invoke(&r, sched.clone()).await.unwrap();
    assert_eq!(out["examined"], 0, "{out}");
    // A schedule-looking event carrying an HTTP request is neither.
    let mut both = fixture();
    both["source"] = json!("aws.events");
    both["detail-type"] = json!("Scheduled Event");
    let err = invoke(&r, both).await.unwrap_err();
    assert!(err.contains("not a Function URL event"), "{err}");
    assert!(r.vms.calls().is_empty());
}
