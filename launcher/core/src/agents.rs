//! The agent registry: who may call the launcher, and as whom.
//!
//! A caller is identified by the platform, never by the body: in Lambda by the
//! IAM principal of the Function URL request (an assumed-role ARN for a role,
//! matched to a registered role with [`RoleRef::matches`] because the
//! assumed-role ARN drops the role's path; an IAM user ARN matched exactly),
//! locally by a bearer token whose SHA-256 is stored in the config (compared
//! in constant time against every registered hash).

use serde::Serialize;
use sha2::{Digest, Sha256};
use shared_core::RoleRef;
use subtle::ConstantTimeEq;

/// A principal that identifies an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "arn", rename_all = "snake_case")]
pub enum Principal {
    /// `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`; matches the role's
    /// assumed-role sessions.
    Role(RoleRef),
    /// `arn:PARTITION:iam::ACCOUNT:user/[PATH/]NAME`, matched exactly.
    User(String),
}

impl Principal {
    /// Parse a role or user ARN ([`crate::grammar`]'s strict forms).
    pub fn parse(arn: &str) -> Result<Principal, String> {
        if arn.contains(":user/") {
            crate::grammar::user_arn(arn)?;
            return Ok(Principal::User(arn.to_string()));
        }
        if arn.contains(":role/") {
            return crate::grammar::role_arn(arn).map(Principal::Role);
        }
        Err(format!(
            "`{arn}` is neither an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME) nor an IAM user ARN (arn:aws:iam::ACCOUNT:user/NAME)"
        ))
    }

    /// Does the caller ARN (as the platform reports it) belong to this principal?
    pub fn matches_caller(&self, caller_arn: &str) -> bool {
        match self {
            Principal::Role(role) => {
                if let Ok((assumed, _session)) = RoleRef::from_assumed_role_arn(caller_arn) {
                    role.matches(&assumed)
                } else if let Ok(r) = RoleRef::from_role_arn(caller_arn) {
                    role.matches(&r)
                } else {
                    false
                }
            }
            Principal::User(arn) => arn == caller_arn,
        }
    }
}

/// A registered agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agent {
    pub id: String,
    pub owner: String,
    pub environment: String,
    pub enabled: bool,
    pub principals: Vec<Principal>,
    /// SHA-256 of each bearer token this agent may use locally. Never logged.
    #[serde(skip)]
    pub token_sha256: Vec<[u8; 32]>,
    /// Empty: the global allow-list applies alone.
    pub allowed_image_arns: Vec<crate::grammar::ImageRule>,
    /// Empty: the global allow-list applies alone.
    pub allowed_execution_roles: Vec<RoleRef>,
}

/// How the platform identified the caller.
#[derive(Clone, PartialEq, Eq)]
pub enum Caller {
    /// The IAM principal ARN of a Function URL request with `AWS_IAM` auth.
    Iam { arn: String },
    /// A local-mode bearer token (the raw value; hashed before comparison).
    Bearer { token: String },
    /// Nothing identified the caller.
    Anonymous,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Caller {
    /// A description safe to log and audit (never the token).
    pub fn describe(&self) -> String {
        match self {
            Caller::Iam { arn } => format!("iam:{arn}"),
            Caller::Bearer { .. } => "bearer:<unrecognised token>".to_string(),
            Caller::Anonymous => "anonymous".to_string(),
        }
    }
}

/// SHA-256 of a bearer token, lowercase hex, as it is written in the config.
pub fn token_sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// All registered agents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Registry {
    agents: Vec<Agent>,
}

impl Registry {
    /// Build a registry; the caller (config loading) has validated uniqueness.
    pub fn new(agents: Vec<Agent>) -> Registry {
        Registry { agents }
    }

    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }

    pub fn get(&self, id: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.id == id)
    }

    /// The agent the platform-identified caller is, if any (enabled or not:
    /// the policy blocks a disabled agent, so that the block is audited).
    pub fn resolve(&self, caller: &Caller) -> Option<&Agent> {
        match caller {
            Caller::Iam { arn } => self
                .agents
                .iter()
                .find(|a| a.principals.iter().any(|p| p.matches_caller(arn))),
            Caller::Bearer { token } => {
                let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                // Compare against every hash so timing does not reveal which matched.
                let mut found = None;
                for a in &self.agents {
                    for h in &a.token_sha256 {
                        if bool::from(h.ct_eq(&digest)) && found.is_none() {
                            found = Some(a);
                        }
                    }
                }
                found
            }
            Caller::Anonymous => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, principals: &[&str], tokens: &[&str]) -> Agent {
        Agent {
            id: id.into(),
            owner: "team".into(),
            environment: "dev".into(),
            enabled: true,
            principals: principals
                .iter()
                .map(|p| Principal::parse(p).unwrap())
                .collect(),
            token_sha256: tokens
                .iter()
                .map(|t| Sha256::digest(t.as_bytes()).into())
                .collect(),
            allowed_image_arns: vec![],
            allowed_execution_roles: vec![],
        }
    }

    #[test]
    fn assumed_role_session_resolves_to_the_agent_of_its_role_even_with_a_path() {
        let reg = Registry::new(vec![
            agent("ci", &["arn:aws:iam::111122223333:role/agents/ci-bot"], &[]),
            agent("alice", &["arn:aws:iam::111122223333:user/alice"], &[]),
        ]);
        let ci = reg.resolve(&Caller::Iam {
            arn: "arn:aws:sts::111122223333:assumed-role/ci-bot/session-1".into(),
        });
        assert_eq!(ci.map(|a| a.id.as_str()), Some("ci"));
        let alice = reg.resolve(&Caller::Iam {
            arn: "arn:aws:iam::111122223333:user/alice".into(),
        });
        assert_eq!(alice.map(|a| a.id.as_str()), Some("alice"));
        for other in [
            "arn:aws:sts::444455556666:assumed-role/ci-bot/session-1",
            "arn:aws:sts::111122223333:assumed-role/ci-bot2/s",
            "arn:aws:iam::111122223333:user/alice2",
        ] {
            assert!(
                reg.resolve(&Caller::Iam { arn: other.into() }).is_none(),
                "{other}"
            );
        }
    }

    #[test]
    fn bearer_tokens_resolve_by_hash_only() {
        let reg = Registry::new(vec![
            agent("a", &[], &["token-a"]),
            agent("b", &[], &["token-b"]),
        ]);
        let who = |t: &str| {
            reg.resolve(&Caller::Bearer {
                token: t.to_string(),
            })
            .map(|a| a.id.clone())
        };
        assert_eq!(who("token-b").as_deref(), Some("b"));
        assert_eq!(who("token-a").as_deref(), Some("a"));
        assert_eq!(who("token-c"), None);
        assert_eq!(reg.resolve(&Caller::Anonymous), None);
    }

    #[test]
    fn caller_debug_never_shows_the_token() {
        let c = Caller::Bearer {
            token: "s3cr3t-token".into(),
        };
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
