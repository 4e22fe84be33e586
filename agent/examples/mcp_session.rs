//! An MCP session with `microvm mcp` through the `rmcp` SDK's own client,
//! printed as it goes: initialize, tools/list, run_microvm, then
//! create_shell_token (pending) and get_request_status every 2 s until a
//! human decides in Contro1 (approve it with `launcher contro1-dev approve
//! ID`). The child gets this process's environment (MICROVM_URL, ...).
//!
//! `cargo run -p agent --example mcp_session -- IMAGE_ARN ROLE_ARN`
//! (`MICROVM_BIN` names the binary; default `target/debug/microvm`).

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

fn call(name: &'static str, args: &Value) -> CallToolRequestParams {
    println!(">> tools/call {name} {args}");
    CallToolRequestParams::new(name).with_arguments(args.as_object().cloned().unwrap_or_default())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut argv = std::env::args().skip(1);
    let (Some(image), Some(role)) = (argv.next(), argv.next()) else {
        anyhow::bail!("usage: mcp_session IMAGE_ARN ROLE_ARN");
    };
    let bin = std::env::var("MICROVM_BIN").unwrap_or_else(|_| "target/debug/microvm".into());
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("mcp");
    println!(">> initialize (spawned `microvm mcp`)");
    let client = ().serve(TokioChildProcess::new(cmd)?).await?;
    let info = client.peer_info();
    println!(
        "<< server {:?}, protocol {:?}",
        info.as_ref()
            .and_then(|i| i.server_info.as_ref())
            .map(|s| format!("{} {}", s.name, s.version)),
        info.as_ref().map(|i| i.protocol_version.to_string())
    );
    println!(">> tools/list");
    for t in client.list_all_tools().await? {
        println!("<< {}: {}", t.name, t.description.as_deref().unwrap_or(""));
    }
    let show = |r: &rmcp::model::CallToolResult| {
        println!(
            "<< isError={:?} {}",
            r.is_error,
            r.structured_content.clone().unwrap_or(Value::Null)
        );
    };
    let r = client
        .call_tool(call(
            "run_microvm",
            &json!({"reason": "MCP session", "image_arn": image, "execution_role_arn": role,
                   "duration_seconds": 600}),
        ))
        .await?;
    show(&r);
    let vm = r
        .structured_content
        .as_ref()
        .and_then(|v| v.pointer("/result/microvm_id"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let r = client
        .call_tool(call(
            "create_shell_token",
            &json!({"microvm_id": vm, "reason": "debug a failing build", "token_ttl_seconds": 300}),
        ))
        .await?;
    show(&r);
    let id = r
        .structured_content
        .as_ref()
        .and_then(|v| v["request_id"].as_str())
        .unwrap_or_default()
        .to_string();
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let r = client
            .call_tool(call("get_request_status", &json!({"request_id": id})))
            .await?;
        show(&r);
        let outcome = r
            .structured_content
            .as_ref()
            .and_then(|v| v["outcome"].as_str())
            .unwrap_or("error")
            .to_string();
        if outcome != "pending" {
            break;
        }
    }
    client.cancel().await?;
    Ok(())
}
