//! What the use-case tests share: a launcher over the in-memory ports, its
//! agents (`ci`, `other`) and the actions they send.
#![allow(dead_code)]

use launcher_core::agents::{Caller, token_sha256_hex};
use launcher_core::fakes::*;
use launcher_core::request::*;
use launcher_core::{Action, CallbackOutcome, Config, PortSet, Resolution, Service, Submitted};
use std::collections::HashMap;
use std::sync::Arc;

pub const IMAGE: &str = "arn:aws:lambda:us-east-1:111122223333:microvm-image:py";
pub const SANDBOX: &str = "arn:aws:iam::111122223333:role/sandbox";

pub struct World {
    pub svc: Arc<Service>,
    pub store: Arc<MemoryStore>,
    pub ledger: Arc<MemoryLedger>,
    pub vms: Arc<RecordingMicrovms>,
    pub c1: Arc<MemoryApprovals>,
    pub clock: Arc<ManualClock>,
}

pub fn world() -> World {
    let file = format!(
        r#"
[policy]
allowed_image_arns = ["{IMAGE}"]
allowed_execution_role_arns = ["{SANDBOX}"]
allowed_token_ports = [8080]
approval_ttl_seconds = 600
[[agents]]
id = "ci"
owner = "platform"
environment = "dev"
bearer_token_sha256 = ["{}"]
[[agents]]
id = "other"
owner = "platform"
environment = "dev"
bearer_token_sha256 = ["{}"]
"#,
        token_sha256_hex("ci-token"),
        token_sha256_hex("other-token")
    );
    let config = Config::from_parts(&file, &HashMap::new()).unwrap();
    let store = Arc::new(MemoryStore::new());
    let ledger = Arc::new(MemoryLedger::default());
    let vms = Arc::new(RecordingMicrovms::default());
    let c1 = Arc::new(MemoryApprovals::default());
    let clock = Arc::new(ManualClock::at(1_000_000));
    let ports = PortSet {
        store: store.clone(),
        ledger: ledger.clone(),
        microvms: vms.clone(),
        approvals: c1.clone(),
        clock: clock.clone(),
    };
    World {
        svc: Arc::new(Service::new(
            config,
            ports,
            "http://launcher/contro1/callback",
        )),
        store,
        ledger,
        vms,
        c1,
        clock,
    }
}

pub fn ci() -> Caller {
    Caller::Bearer {
        token: "ci-token".into(),
    }
}

pub fn run(f: impl FnOnce(&mut RunRequest)) -> Action {
    let mut r = RunRequest {
        agent_id: None,
        owner: Some("team-a".into()),
        reason: "tests".into(),
        environment: None,
        image_arn: IMAGE.into(),
        image_version: None,
        execution_role_arn: SANDBOX.into(),
        duration_seconds: 600,
        network_egress: NetworkEgress::None,
        shell_access: false,
        correlation_id: Some("case-1".into()),
        metadata: serde_json::json!({}),
    };
    f(&mut r);
    Action::Run(r)
}

pub fn shell(vm: &str) -> Action {
    Action::ShellToken {
        microvm_id: vm.into(),
        request: ShellTokenRequest {
            agent_id: None,
            owner: Some("team-a".into()),
            reason: "debug".into(),
            environment: None,
            token_ttl_seconds: 300,
            correlation_id: None,
            metadata: serde_json::json!({}),
        },
    }
}

pub async fn pending_id(w: &World, action: Action) -> String {
    match w.svc.submit(&ci(), action).await.unwrap() {
        Submitted::Pending { request_id, .. } => request_id,
        other => panic!("expected pending, got {other:?}"),
    }
}

/// A reviewer approves `id` in Contro1, and its callback arrives.
pub async fn approve(w: &World, id: &str) -> CallbackOutcome {
    w.c1.decide(id, Resolution::Approved);
    w.svc.on_callback(id, Resolution::Approved).await.unwrap()
}

/// Start a MicroVM through the launcher (auto-approved); its id.
pub async fn managed_vm(w: &World) -> String {
    let Submitted::Executed { result, .. } = w.svc.submit(&ci(), run(|_| {})).await.unwrap() else {
        panic!("not executed")
    };
    result.microvm_id.unwrap()
}
