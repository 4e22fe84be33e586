//! The policy engine: a pure function from (policy, agent, action, what the
//! ledger knows of the target MicroVM) to a [`Decision`]. It implements the
//! policy table of ARCHITECTURE.md; the first matching rule wins, blocks
//! before approvals before auto-approval.
//!
//! | decision | rule ids |
//! | --- | --- |
//! | block | `agent.unknown`, `agent.disabled`, `agent.not_allowed`, `owner.missing`, `role.not_allowed`, `shell.production_role`, `target.unmanaged` |
//! | terminate | `terminate.owner_emergency` (auto, owning agent), `terminate.not_owner` (approval) |
//! | not the owner (approval, before any other approval rule) | `shell.not_owner`, `token.not_owner`, `lifecycle.not_owner`, `terminate.not_owner` |
//! | require approval | `shell.token`, `run.shell_access`, `role.production`, `image.unregistered`, `image.version_not_allowed`, `network.private_egress`, `network.internet_egress`, `duration.long`, `token.all_ports`, `token.broad_ports`, `token.long_lived`, `lifecycle.suspend`, `lifecycle.resume` |
//! | auto-approve | `auto.run`, `auto.auth_token` |
//!
//! "Bypass indicators on the target MicroVM" is read as: the target is not in
//! the ledger (the launcher never started it, so it was started around it).

use crate::agents::Agent;
use crate::config::PolicyConfig;
use crate::request::{Action, Lifecycle, NetworkEgress, PortSpec, Ports};
use serde::{Deserialize, Serialize};
use shared_core::{LedgerEntry, RoleRef};

/// What to do with an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    AutoApprove,
    RequireApproval,
    Block,
}

/// Contro1's risk levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    Low,
    Medium,
    High,
    Critical,
}

impl RiskLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
            RiskLevel::Critical => "critical",
        }
    }
}

/// A policy decision, versioned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub decision: Verdict,
    pub risk_level: RiskLevel,
    pub rule_id: String,
    pub reason: String,
    pub policy_version: String,
}

/// What the ledger says about the MicroVM an action targets.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// The action starts a MicroVM (RunMicrovm).
    NotApplicable,
    /// The launcher started it: its `vm#` ledger item.
    Managed(&'a LedgerEntry),
    /// No ledger item: not started through the launcher.
    Unmanaged,
}

fn role_in(list: &[RoleRef], arn: &str) -> bool {
    RoleRef::from_role_arn(arn).is_ok_and(|r| list.iter().any(|l| l.matches(&r)))
}

/// Classify one action.
pub fn evaluate(
    policy: &PolicyConfig,
    agent: Option<&Agent>,
    action: &Action,
    target: Target<'_>,
) -> Decision {
    let d = |decision, risk_level, rule_id: &str, reason: String| Decision {
        decision,
        risk_level,
        rule_id: rule_id.to_string(),
        reason,
        policy_version: policy.version.clone(),
    };
    use RiskLevel::*;
    use Verdict::*;

    // --- block: who is asking
    let Some(agent) = agent else {
        return d(
            Block,
            Critical,
            "agent.unknown",
            "caller is not a registered agent".into(),
        );
    };
    if !agent.enabled {
        return d(
            Block,
            High,
            "agent.disabled",
            format!("agent `{}` is disabled", agent.id),
        );
    }
    if !policy.allowed_agent_ids.is_empty() && !policy.allowed_agent_ids.contains(&agent.id) {
        return d(
            Block,
            High,
            "agent.not_allowed",
            format!("agent `{}` is not in ALLOWED_AGENT_IDS", agent.id),
        );
    }
    if action.owner().is_none() {
        return d(Block, High, "owner.missing", "request has no owner".into());
    }

    let is_production = |arn: &str| role_in(&policy.production_execution_roles, arn);
    let target_role = match target {
        Target::Managed(e) => e.execution_role_arn.as_deref(),
        _ => None,
    };
    let owned = matches!(target, Target::Managed(e) if e.agent_id == agent.id);
    // The agent that started the target, when it is not the asker: every
    // action on it is its own rule, before any other approval rule, so the
    // reviewer sees first that the MicroVM is someone else's.
    let other_owner = match target {
        Target::Managed(e) if e.agent_id != agent.id => Some(e.agent_id.as_str()),
        _ => None,
    };

    match action {
        Action::Run(r) => {
            let globally_allowed = role_in(&policy.allowed_execution_roles, &r.execution_role_arn)
                || is_production(&r.execution_role_arn);
            let agent_allowed = agent.allowed_execution_roles.is_empty()
                || role_in(&agent.allowed_execution_roles, &r.execution_role_arn);
            if !globally_allowed || !agent_allowed {
                return d(
                    Block,
                    High,
                    "role.not_allowed",
                    format!(
                        "execution role `{}` is outside the allowed set",
                        r.execution_role_arn
                    ),
                );
            }
            if r.shell_access && is_production(&r.execution_role_arn) {
                return d(
                    Block,
                    Critical,
                    "shell.production_role",
                    "shell access to a MicroVM with a production execution role".into(),
                );
            }
            if r.shell_access {
                return d(
                    RequireApproval,
                    High,
                    "run.shell_access",
                    "MicroVM with shell ingress".into(),
                );
            }
            if is_production(&r.execution_role_arn) {
                return d(
                    RequireApproval,
                    High,
                    "role.production",
                    format!(
                        "execution role `{}` is a production role",
                        r.execution_role_arn
                    ),
                );
            }
            let version = r.image_version.as_deref();
            let allowed_by = |rules: &[crate::grammar::ImageRule]| {
                rules.iter().any(|i| i.allows(&r.image_arn, version))
            };
            let known_by =
                |rules: &[crate::grammar::ImageRule]| rules.iter().any(|i| i.names(&r.image_arn));
            let agent_rules = &agent.allowed_image_arns;
            let image_ok = allowed_by(&policy.allowed_image_arns)
                && (agent_rules.is_empty() || allowed_by(agent_rules));
            let image_known = known_by(&policy.allowed_image_arns)
                && (agent_rules.is_empty() || known_by(agent_rules));
            if !image_ok && image_known {
                return d(
                    RequireApproval,
                    Medium,
                    "image.version_not_allowed",
                    format!(
                        "image `{}` is registered, but not at version {}",
                        r.image_arn,
                        version.unwrap_or("(default)")
                    ),
                );
            }
            if !image_ok {
                return d(
                    RequireApproval,
                    Medium,
                    "image.unregistered",
                    format!("image `{}` is not in the image registry", r.image_arn),
                );
            }
            match r.network_egress {
                NetworkEgress::Vpc | NetworkEgress::Private => {
                    return d(
                        RequireApproval,
                        High,
                        "network.private_egress",
                        format!("network egress `{}`", r.network_egress),
                    );
                }
                NetworkEgress::Internet => {
                    return d(
                        RequireApproval,
                        Medium,
                        "network.internet_egress",
                        "network egress `internet`".into(),
                    );
                }
                NetworkEgress::None => {}
            }
            if r.duration_seconds > policy.max_auto_approve_duration_seconds {
                return d(
                    RequireApproval,
                    Medium,
                    "duration.long",
                    format!(
                        "duration {} s exceeds the auto-approve limit of {} s",
                        r.duration_seconds, policy.max_auto_approve_duration_seconds
                    ),
                );
            }
            d(
                AutoApprove,
                Low,
                "auto.run",
                "allowed image, constrained role, no shell, no egress, short duration".into(),
            )
        }
        Action::Lifecycle {
            op: Lifecycle::Terminate,
            ..
        } => {
            if owned {
                d(
                    AutoApprove,
                    Medium,
                    "terminate.owner_emergency",
                    "the owning agent may always terminate its MicroVM (audited)".into(),
                )
            } else {
                d(
                    RequireApproval,
                    High,
                    "terminate.not_owner",
                    other_owner.map_or_else(
                        || "MicroVM was not started through the launcher".to_string(),
                        |o| format!("terminate of a MicroVM started by agent `{o}`"),
                    ),
                )
            }
        }
        _ if matches!(target, Target::Unmanaged) => d(
            Block,
            Critical,
            "target.unmanaged",
            "target MicroVM is not in the ledger (started outside the launcher)".into(),
        ),
        Action::ShellToken { .. } => {
            if target_role.is_some_and(is_production) {
                return d(
                    Block,
                    Critical,
                    "shell.production_role",
                    "shell token for a MicroVM with a production execution role".into(),
                );
            }
            if let Some(owner) = other_owner {
                return d(
                    RequireApproval,
                    High,
                    "shell.not_owner",
                    format!("shell token into a MicroVM started by agent `{owner}`"),
                );
            }
            d(
                RequireApproval,
                High,
                "shell.token",
                "shell tokens always need approval".into(),
            )
        }
        Action::Lifecycle { op, .. } => {
            if let Some(owner) = other_owner {
                return d(
                    RequireApproval,
                    High,
                    "lifecycle.not_owner",
                    format!("{op:?} of a MicroVM started by agent `{owner}`").to_lowercase(),
                );
            }
            let (rule, what) = match op {
                Lifecycle::Suspend => ("lifecycle.suspend", "suspend"),
                _ => ("lifecycle.resume", "resume"),
            };
            d(
                RequireApproval,
                Medium,
                rule,
                format!("{what} always needs approval"),
            )
        }
        Action::AuthToken { request, .. } => {
            if let Some(owner) = other_owner {
                return d(
                    RequireApproval,
                    High,
                    "token.not_owner",
                    format!("token for a MicroVM started by agent `{owner}`"),
                );
            }
            match &request.ports {
                Ports::All(_) => {
                    return d(
                        RequireApproval,
                        High,
                        "token.all_ports",
                        "token for all ports".into(),
                    );
                }
                Ports::Listed(list) => {
                    let allowed = |p: u16| policy.allowed_token_ports.contains(&p);
                    let broad = list.iter().any(|s| match *s {
                        PortSpec::Port(p) => !allowed(p),
                        PortSpec::Range { start, end } => !(start..=end).all(allowed),
                    });
                    if broad {
                        return d(
                            RequireApproval,
                            Medium,
                            "token.broad_ports",
                            "token for ports outside ALLOWED_TOKEN_PORTS".into(),
                        );
                    }
                }
            }
            if request.token_ttl_seconds > policy.max_token_ttl_seconds {
                return d(
                    RequireApproval,
                    Medium,
                    "token.long_lived",
                    format!(
                        "token TTL {} s exceeds {} s",
                        request.token_ttl_seconds, policy.max_token_ttl_seconds
                    ),
                );
            }
            d(
                AutoApprove,
                Low,
                "auto.auth_token",
                "short-lived token scoped to allowed ports on the agent's own MicroVM".into(),
            )
        }
    }
}
