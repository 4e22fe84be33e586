//! The approval state machine and the idempotency key of an action.
//!
//! ```text
//! pending ──approved──▶ executing ──▶ executed | failed
//!    └──────▶ denied | expired | cancelled
//! ```
//! `pending → executing` is the one transition that leads to an AWS call; the
//! store performs it as a conditional write, so of any number of concurrent or
//! replayed callbacks exactly one wins and the rest see "lost the race".

use crate::request::Action;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Where a pending action is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Executing,
    Executed,
    Failed,
    Denied,
    Expired,
    Cancelled,
}

impl State {
    pub const ALL: [State; 7] = [
        State::Pending,
        State::Executing,
        State::Executed,
        State::Failed,
        State::Denied,
        State::Expired,
        State::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Executing => "executing",
            State::Executed => "executed",
            State::Failed => "failed",
            State::Denied => "denied",
            State::Expired => "expired",
            State::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// No transition leaves a terminal state.
    pub fn is_terminal(self) -> bool {
        !matches!(self, State::Pending | State::Executing)
    }

    /// The transitions the machine allows.
    pub fn can_transition(self, to: State) -> bool {
        use State::*;
        matches!(
            (self, to),
            (Pending, Executing | Denied | Expired | Cancelled) | (Executing, Executed | Failed)
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What Contro1 decided, as read from a verified callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    Approved,
    Denied,
    Expired,
    Cancelled,
}

impl Resolution {
    /// The state a pending item moves to.
    pub fn next_state(self) -> State {
        match self {
            Resolution::Approved => State::Executing,
            Resolution::Denied => State::Denied,
            Resolution::Expired => State::Expired,
            Resolution::Cancelled => State::Cancelled,
        }
    }
}

/// JSON with object keys sorted at every depth and no insignificant
/// whitespace: the same value always gives the same bytes.
pub fn canonical_json(v: &serde_json::Value) -> String {
    fn write(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&m[k], out);
                }
                out.push('}');
            }
            serde_json::Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    write(v, &mut s);
    s
}

/// The idempotency key of an action: SHA-256 (hex) over the agent, the
/// operation, the target, the canonical JSON of the input (with the
/// body's `agent_id` claim removed) and the correlation id. The same ask
/// retried gives the same key, so Contro1 returns the same request.
pub fn idempotency_key(agent_id: &str, action: &Action) -> String {
    let mut input = serde_json::to_value(action).unwrap_or_default();
    if let Some(obj) = input.get_mut("input") {
        // `agent_id` may or may not have been claimed; it does not change the action.
        if let Some(m) = obj.as_object_mut() {
            m.remove("agent_id");
            if let Some(r) = m.get_mut("request").and_then(|r| r.as_object_mut()) {
                r.remove("agent_id");
            }
        }
    }
    let mut h = Sha256::new();
    for part in [
        agent_id,
        action.op().as_str(),
        action.target().unwrap_or(""),
        &canonical_json(&input),
        action.common().correlation_id.unwrap_or(""),
    ] {
        // Length-prefixed, so no two different tuples give the same bytes.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    format!("mvl-{}", hex::encode(h.finalize()))
}

/// The digest of the canonical action and the agent that asks: the same
/// value as [`idempotency_key`] (agent, operation, target, canonical input,
/// correlation id). Contro1's request carries it; the callback and the
/// reconciler recompute it from the stored item and refuse a mismatch.
pub fn action_digest(agent_id: &str, action: &Action) -> String {
    idempotency_key(agent_id, action)
}

/// What a sealed token is bound to (the AEAD's associated data): the agent
/// it is for, the request and the digest of the action that issued it.
pub fn token_binding(agent_id: &str, request_id: &str, action_digest: &str) -> String {
    let mut h = Sha256::new();
    for part in ["token-binding", agent_id, request_id, action_digest] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    format!("req#{request_id}|{}", hex::encode(h.finalize()))
}

/// The id under which an agent's `Idempotency-Key` is stored: SHA-256 (hex)
/// over the agent and the key, so one agent's key never answers another's
/// request and the raw key is not kept.
pub fn idempotency_key_id(agent_id: &str, key: &str) -> String {
    let mut h = Sha256::new();
    for part in ["idempotency-key", agent_id, key] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    format!("idem-{}", hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{LifecycleRequest, RunRequest};
    use serde_json::json;

    #[test]
    fn only_the_documented_transitions_are_allowed() {
        let allowed = [
            (State::Pending, State::Executing),
            (State::Pending, State::Denied),
            (State::Pending, State::Expired),
            (State::Pending, State::Cancelled),
            (State::Executing, State::Executed),
            (State::Executing, State::Failed),
        ];
        for from in State::ALL {
            for to in State::ALL {
                assert_eq!(
                    from.can_transition(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
            assert_eq!(State::parse(from.as_str()), Some(from));
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let a = json!({"b": 1, "a": {"y": [1, {"q": 1, "p": 2}], "x": null}});
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":null,"y":[1,{"p":2,"q":1}]},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":null,"y":[1,{"p":2,"q":1}]},"b":1}"#
        );
    }

    fn run(correlation: &str, metadata: serde_json::Value) -> Action {
        Action::Run(RunRequest {
            agent_id: None,
            owner: Some("o".into()),
            reason: "r".into(),
            environment: None,
            image_arn: "arn:aws:lambda:us-east-1:1:microvm-image:x".into(),
            image_version: None,
            execution_role_arn: "arn:aws:iam::1:role/r".into(),
            duration_seconds: 60,
            network_egress: Default::default(),
            shell_access: false,
            correlation_id: Some(correlation.into()),
            metadata,
        })
    }

    #[test]
    fn idempotency_key_is_deterministic_and_sensitive_to_every_part() {
        let base = idempotency_key("a", &run("c1", json!({"x": 1, "y": 2})));
        // Same action, keys in another order, agent_id claimed: same key.
        let mut claimed = run("c1", json!({"y": 2, "x": 1}));
        if let Action::Run(r) = &mut claimed {
            r.agent_id = Some("a".into());
        }
        assert_eq!(base, idempotency_key("a", &claimed));
        assert_ne!(
            base,
            idempotency_key("b", &run("c1", json!({"x": 1, "y": 2})))
        );
        assert_ne!(
            base,
            idempotency_key("a", &run("c2", json!({"x": 1, "y": 2})))
        );
        assert_ne!(base, idempotency_key("a", &run("c1", json!({"x": 1}))));
        let l = |id: &str| Action::Lifecycle {
            microvm_id: id.into(),
            op: crate::request::Lifecycle::Suspend,
            request: LifecycleRequest {
                agent_id: None,
                owner: Some("o".into()),
                reason: "r".into(),
                environment: None,
                correlation_id: None,
                metadata: json!({}),
            },
        };
        assert_ne!(
            idempotency_key("a", &l("vm-1")),
            idempotency_key("a", &l("vm-2"))
        );
        assert!(base.starts_with("mvl-") && base.len() == 4 + 64);
    }

    #[test]
    fn stored_actions_round_trip_through_json() {
        let a = run("c1", json!({"k": "v"}));
        let text = serde_json::to_string(&a).unwrap();
        let back: Action = serde_json::from_str(&text).unwrap();
        assert_eq!(a, back);
    }
}
