//! Every row of the policy table in ARCHITECTURE.md, one rule id each.

use launcher_core::agents::Agent;
use launcher_core::policy::{Target, Verdict, evaluate};
use launcher_core::request::*;
use launcher_core::{Action, Config};
use shared_core::LedgerEntry;
use std::collections::HashMap;

const CONFIG: &str = r#"
[policy]
version = "test-1"
allowed_image_arns = ["arn:aws:lambda:us-east-1:111122223333:microvm-image:py"]
allowed_execution_role_arns = ["arn:aws:iam::111122223333:role/sandbox"]
production_execution_role_arns = ["arn:aws:iam::111122223333:role/prod"]
allowed_token_ports = [8080, 8081]
max_auto_approve_duration_seconds = 900
max_token_ttl_seconds = 900

[[agents]]
id = "ci"
owner = "platform"
environment = "dev"

[[agents]]
id = "off"
owner = "platform"
environment = "dev"
enabled = false

[[agents]]
id = "narrow"
owner = "platform"
environment = "dev"
allowed_execution_role_arns = ["arn:aws:iam::111122223333:role/other"]
"#;

const IMAGE: &str = "arn:aws:lambda:us-east-1:111122223333:microvm-image:py";
const SANDBOX: &str = "arn:aws:iam::111122223333:role/sandbox";
const PROD: &str = "arn:aws:iam::111122223333:role/prod";

fn config(env: &[(&str, &str)]) -> Config {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_parts(CONFIG, &env).unwrap()
}

fn run(f: impl FnOnce(&mut RunRequest)) -> Action {
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
        correlation_id: None,
        metadata: serde_json::json!({}),
    };
    f(&mut r);
    Action::Run(r)
}

fn token(ports: Ports, ttl: u32) -> Action {
    Action::AuthToken {
        microvm_id: "vm-1".into(),
        request: AuthTokenRequest {
            agent_id: None,
            owner: Some("team-a".into()),
            reason: "r".into(),
            environment: None,
            ports,
            token_ttl_seconds: ttl,
            correlation_id: None,
            metadata: serde_json::json!({}),
        },
    }
}

fn shell() -> Action {
    Action::ShellToken {
        microvm_id: "vm-1".into(),
        request: ShellTokenRequest {
            agent_id: None,
            owner: Some("team-a".into()),
            reason: "r".into(),
            environment: None,
            token_ttl_seconds: 300,
            correlation_id: None,
            metadata: serde_json::json!({}),
        },
    }
}

fn lifecycle(op: Lifecycle) -> Action {
    Action::Lifecycle {
        microvm_id: "vm-1".into(),
        op,
        request: LifecycleRequest {
            agent_id: None,
            owner: Some("team-a".into()),
            reason: "r".into(),
            environment: None,
            correlation_id: None,
            metadata: serde_json::json!({}),
        },
    }
}

fn vm(agent: &str, role: &str) -> LedgerEntry {
    LedgerEntry {
        contro1_request_id: "rq".into(),
        operation: "RunMicrovm".into(),
        microvm_id: Some("vm-1".into()),
        aws_request_id: Some("a".into()),
        agent_id: agent.into(),
        owner: "team-a".into(),
        correlation_id: None,
        image_arn: Some(IMAGE.into()),
        execution_role_arn: Some(role.into()),
        outcome: "succeeded".into(),
        time_epoch: 0,
    }
}

fn check(
    c: &Config,
    agent: Option<&str>,
    action: &Action,
    target: Target<'_>,
) -> (Verdict, String) {
    let a: Option<&Agent> = agent.map(|id| c.agents.get(id).unwrap());
    let d = evaluate(&c.policy, a, action, target);
    assert_eq!(d.policy_version, "test-1");
    assert!(!d.reason.is_empty());
    (d.decision, d.rule_id)
}

#[test]
fn every_policy_row_gives_its_decision_and_rule() {
    use Verdict::*;
    let c = config(&[]);
    let own = vm("ci", SANDBOX);
    let other = vm("narrow", SANDBOX);
    let prod_vm = vm("ci", PROD);
    let m = Target::Managed(&own);
    let na = Target::NotApplicable;
    let listed = |p: &[u16]| Ports::Listed(p.iter().map(|p| PortSpec::Port(*p)).collect());
    let rows: Vec<(Option<&str>, Action, Target<'_>, Verdict, &str)> = vec![
        // auto-approve
        (Some("ci"), run(|_| {}), na, AutoApprove, "auto.run"),
        (
            Some("ci"),
            token(listed(&[8080]), 300),
            m,
            AutoApprove,
            "auto.auth_token",
        ),
        // require approval
        (Some("ci"), shell(), m, RequireApproval, "shell.token"),
        (
            Some("ci"),
            run(|r| r.shell_access = true),
            na,
            RequireApproval,
            "run.shell_access",
        ),
        (
            Some("ci"),
            token(Ports::All(AllPorts::All), 300),
            m,
            RequireApproval,
            "token.all_ports",
        ),
        (
            Some("ci"),
            token(listed(&[22]), 300),
            m,
            RequireApproval,
            "token.broad_ports",
        ),
        (
            Some("ci"),
            token(
                Ports::Listed(vec![PortSpec::Range {
                    start: 8080,
                    end: 8090,
                }]),
                300,
            ),
            m,
            RequireApproval,
            "token.broad_ports",
        ),
        (
            Some("ci"),
            token(listed(&[8080]), 3600),
            m,
            RequireApproval,
            "token.long_lived",
        ),
        (
            Some("ci"),
            token(listed(&[8080]), 300),
            Target::Managed(&other),
            RequireApproval,
            "token.not_owner",
        ),
        (
            Some("ci"),
            run(|r| r.network_egress = NetworkEgress::Vpc),
            na,
            RequireApproval,
            "network.private_egress",
        ),
        (
            Some("ci"),
            run(|r| r.network_egress = NetworkEgress::Private),
            na,
            RequireApproval,
            "network.private_egress",
        ),
        (
            Some("ci"),
            run(|r| r.network_egress = NetworkEgress::Internet),
            na,
            RequireApproval,
            "network.internet_egress",
        ),
        (
            Some("ci"),
            run(|r| r.execution_role_arn = PROD.into()),
            na,
            RequireApproval,
            "role.production",
        ),
        (
            Some("ci"),
            run(|r| r.duration_seconds = 901),
            na,
            RequireApproval,
            "duration.long",
        ),
        (
            Some("ci"),
            run(|r| {
                r.image_arn = "arn:aws:lambda:us-east-1:111122223333:microvm-image:other".into();
            }),
            na,
            RequireApproval,
            "image.unregistered",
        ),
        // Regression: `image_version` was never checked; an allowed image at
        // any version (a new, unreviewed one included) was auto-approved.
        (
            Some("ci"),
            run(|r| r.image_version = Some("7".into())),
            na,
            RequireApproval,
            "image.version_not_allowed",
        ),
        (
            Some("ci"),
            lifecycle(Lifecycle::Suspend),
            m,
            RequireApproval,
            "lifecycle.suspend",
        ),
        (
            Some("ci"),
            lifecycle(Lifecycle::Resume),
            m,
            RequireApproval,
            "lifecycle.resume",
        ),
        // block
        (None, run(|_| {}), na, Block, "agent.unknown"),
        (Some("off"), run(|_| {}), na, Block, "agent.disabled"),
        (
            Some("ci"),
            run(|r| r.owner = None),
            na,
            Block,
            "owner.missing",
        ),
        (
            Some("ci"),
            run(|r| r.owner = Some("   ".into())),
            na,
            Block,
            "owner.missing",
        ),
        (
            Some("ci"),
            run(|r| {
                r.shell_access = true;
                r.execution_role_arn = PROD.into();
            }),
            na,
            Block,
            "shell.production_role",
        ),
        (
            Some("ci"),
            shell(),
            Target::Managed(&prod_vm),
            Block,
            "shell.production_role",
        ),
        (
            Some("ci"),
            run(|r| r.execution_role_arn = "arn:aws:iam::111122223333:role/admin".into()),
            na,
            Block,
            "role.not_allowed",
        ),
        // the agent's own role list narrows the global one
        (Some("narrow"), run(|_| {}), na, Block, "role.not_allowed"),
        (
            Some("ci"),
            shell(),
            Target::Unmanaged,
            Block,
            "target.unmanaged",
        ),
        (
            Some("ci"),
            token(listed(&[8080]), 300),
            Target::Unmanaged,
            Block,
            "target.unmanaged",
        ),
        (
            Some("ci"),
            lifecycle(Lifecycle::Suspend),
            Target::Unmanaged,
            Block,
            "target.unmanaged",
        ),
        // terminate
        (
            Some("ci"),
            lifecycle(Lifecycle::Terminate),
            m,
            AutoApprove,
            "terminate.owner_emergency",
        ),
        (
            Some("ci"),
            lifecycle(Lifecycle::Terminate),
            Target::Managed(&other),
            RequireApproval,
            "terminate.not_owner",
        ),
        (
            Some("ci"),
            lifecycle(Lifecycle::Terminate),
            Target::Unmanaged,
            RequireApproval,
            "terminate.not_owner",
        ),
    ];
    for (agent, action, target, verdict, rule) in rows {
        let got = check(&c, agent, &action, target);
        assert_eq!(got, (verdict, rule.to_string()), "{agent:?} {action:?}");
    }
}

#[test]
fn allowed_agent_ids_blocks_registered_agents_outside_the_list() {
    let c = config(&[("ALLOWED_AGENT_IDS", "narrow")]);
    assert_eq!(
        check(&c, Some("ci"), &run(|_| {}), Target::NotApplicable),
        (Verdict::Block, "agent.not_allowed".to_string())
    );
}

#[test]
fn env_overrides_change_the_decision() {
    let c = config(&[
        ("MAX_AUTO_APPROVE_DURATION_SECONDS", "1200"),
        ("ALLOWED_TOKEN_PORTS", "22"),
    ]);
    assert_eq!(
        check(
            &c,
            Some("ci"),
            &run(|r| r.duration_seconds = 1000),
            Target::NotApplicable
        )
        .0,
        Verdict::AutoApprove
    );
    let own = vm("ci", SANDBOX);
    assert_eq!(
        check(
            &c,
            Some("ci"),
            &token(Ports::Listed(vec![PortSpec::Port(8080)]), 300),
            Target::Managed(&own)
        )
        .1,
        "token.broad_ports"
    );
}

#[test]
fn pinned_and_wildcard_image_versions_are_honoured() {
    use Verdict::*;
    let c = config(&[(
        "ALLOWED_IMAGE_ARNS",
        &format!("{IMAGE}:3, arn:aws:lambda:us-east-1:111122223333:microvm-image:any:*"),
    )]);
    let na = Target::NotApplicable;
    let any = "arn:aws:lambda:us-east-1:111122223333:microvm-image:any";
    let rows: Vec<(Action, Verdict, &str)> = vec![
        (
            run(|r| r.image_version = Some("3".into())),
            AutoApprove,
            "auto.run",
        ),
        (
            run(|r| r.image_version = Some("4".into())),
            RequireApproval,
            "image.version_not_allowed",
        ),
        (run(|_| {}), RequireApproval, "image.version_not_allowed"),
        (
            run(|r| {
                r.image_arn = any.into();
                r.image_version = Some("12".into());
            }),
            AutoApprove,
            "auto.run",
        ),
        (run(|r| r.image_arn = any.into()), AutoApprove, "auto.run"),
    ];
    for (action, verdict, rule) in rows {
        let got = check(&c, Some("ci"), &action, na);
        assert_eq!(got, (verdict, rule.to_string()), "{action:?}");
    }
}
