//! `microvm mcp` driven by an MCP client this project did not write: the
//! official Rust SDK's own client (`rmcp`, feature `client`), spawning
//! `microvm mcp` as a child process over stdio, against `launcher serve` and
//! the Contro1 stand-in: initialize, tools/list, tools/call.

mod common;

use common::{IMAGE, ROLE, Rig};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn args(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("tool arguments must be an object, not {other}"),
    }
}

fn structured(r: &CallToolResult) -> Value {
    let v = r.structured_content.clone().expect("structuredContent");
    // The text content carries the same JSON, for clients that read only text.
    let text = r
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .expect("text content");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_client_initializes_lists_the_tools_and_calls_them_through_an_approval() {
    let rig = Rig::start().await;
    let transport = TokioChildProcess::new(rig.microvm(&["mcp"])).expect("spawn microvm mcp");
    let client = ().serve(transport).await.expect("initialize");

    let info = client.peer_info().expect("the server's initialize result");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("microvm")
    );
    assert!(info.capabilities.tools.is_some());

    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "create_auth_token",
            "create_shell_token",
            "get_request_status",
            "resume_microvm",
            "run_microvm",
            "suspend_microvm",
            "terminate_microvm"
        ]
    );
    for t in &tools {
        assert!(
            t.description.as_ref().is_some_and(|d| d.len() > 40),
            "{} has no useful description",
            t.name
        );
    }
    let run = tools.iter().find(|t| t.name == "run_microvm").unwrap();
    let schema = Value::Object((*run.input_schema).clone());
    let mut required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort_unstable();
    assert_eq!(
        required,
        [
            "duration_seconds",
            "execution_role_arn",
            "image_arn",
            "reason"
        ]
    );
    assert!(
        schema.to_string().contains("internet"),
        "egress choices in the schema: {schema}"
    );

    // Within policy: executed at once.
    let r = client
        .call_tool(
            CallToolRequestParams::new("run_microvm").with_arguments(args(json!({
                "reason": "mcp test", "image_arn": IMAGE, "execution_role_arn": ROLE,
                "duration_seconds": 600
            }))),
        )
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(false));
    let v = structured(&r);
    assert_eq!(v["outcome"], "executed");
    let vm = v["result"]["microvm_id"].as_str().unwrap().to_string();

    // A shell token needs a human: the call answers pending at once.
    let started = Instant::now();
    let r = client
        .call_tool(
            CallToolRequestParams::new("create_shell_token").with_arguments(args(
                json!({"microvm_id": vm, "reason": "debug", "token_ttl_seconds": 300}),
            )),
        )
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "the call hung");
    assert_eq!(r.is_error, Some(false));
    let v = structured(&r);
    assert_eq!(v["outcome"], "pending");
    let id = v["request_id"].as_str().unwrap().to_string();
    assert!(
        v["next_step"]
            .as_str()
            .unwrap()
            .contains(&format!("get_request_status with request_id \"{id}\"")),
        "{v}"
    );
    let status = |id: String| {
        CallToolRequestParams::new("get_request_status")
            .with_arguments(args(json!({ "request_id": id })))
    };
    let v = structured(&client.call_tool(status(id.clone())).await.unwrap());
    assert_eq!(v["outcome"], "pending");

    rig.contro1
        .approve(&id, "reviewer@example.com")
        .await
        .unwrap();
    let r = client.call_tool(status(id.clone())).await.unwrap();
    let v = structured(&r);
    assert_eq!(v["outcome"], "executed", "{v}");
    assert!(v["token"].is_string(), "the token is handed over: {v}");
    let v = structured(&client.call_tool(status(id.clone())).await.unwrap());
    assert!(v.get("token").is_none(), "only once: {v}");
    assert_eq!(v["token_already_returned"], true);

    // A policy block is an error result naming the rule.
    let r = client
        .call_tool(
            CallToolRequestParams::new("run_microvm").with_arguments(args(json!({
                "reason": "mcp test", "image_arn": IMAGE,
                "execution_role_arn": "arn:aws:iam::111122223333:role/admin",
                "duration_seconds": 600
            }))),
        )
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    let v = structured(&r);
    assert_eq!(v["outcome"], "blocked");
    assert!(
        v["next_step"]
            .as_str()
            .unwrap()
            .contains("role.not_allowed")
    );

    // Bad input is an error result naming the field.
    let r = client
        .call_tool(
            CallToolRequestParams::new("create_auth_token").with_arguments(args(json!({
                "microvm_id": vm, "reason": "r", "ports": "http", "token_ttl_seconds": 300
            }))),
        )
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    assert_eq!(structured(&r)["error"]["field"], "ports");

    client.cancel().await.unwrap();
}
