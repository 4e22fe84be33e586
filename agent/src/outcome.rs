//! What became of an ask, as one of the outcomes a CI job branches on,
//! with the exit code `microvm` ends with, and the JSON it prints.
//!
//! | outcome | exit code | meaning |
//! | --- | --- | --- |
//! | `executed` | 0 | the AWS call was made (auto-approved, or approved and run) |
//! | `error` | 1 | nothing is known to have happened: bad input, config, credentials, network, launcher error |
//! | (usage) | 2 | the command line is wrong (clap) |
//! | `pending` | 3 | a human has not decided yet (`--wait` not given, or its `--timeout` passed) |
//! | `denied` | 4 | a reviewer denied it (or it was cancelled) |
//! | `blocked` | 5 | the launcher's policy refused it; no human was asked |
//! | `expired` | 6 | nobody decided in time |
//! | `failed` | 7 | approved, but the AWS call failed |

use serde_json::{Value, json};

/// The outcomes, in the order of the table above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Executed,
    Error,
    Pending,
    Denied,
    Blocked,
    Expired,
    Failed,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Executed => "executed",
            Kind::Error => "error",
            Kind::Pending => "pending",
            Kind::Denied => "denied",
            Kind::Blocked => "blocked",
            Kind::Expired => "expired",
            Kind::Failed => "failed",
        }
    }

    /// The process exit code for this outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Executed => 0,
            Kind::Error => 1,
            Kind::Pending => 3,
            Kind::Denied => 4,
            Kind::Blocked => 5,
            Kind::Expired => 6,
            Kind::Failed => 7,
        }
    }

    /// Whether nothing more will happen to the request.
    pub fn is_final(self) -> bool {
        self != Kind::Pending
    }

    /// The outcome of a launcher request state (`GET /requests/{id}`'s
    /// `state`, or the `status` of a `202`).
    pub fn of_state(state: &str) -> Option<Kind> {
        Some(match state {
            "pending" | "executing" => Kind::Pending,
            "executed" => Kind::Executed,
            "failed" => Kind::Failed,
            "denied" | "cancelled" => Kind::Denied,
            "expired" => Kind::Expired,
            _ => return None,
        })
    }
}

/// An ask's outcome and the launcher's last answer about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub kind: Kind,
    /// The Contro1 request id (`req_…`), when the launcher gave one.
    pub request_id: Option<String>,
    /// The launcher's JSON answer, as it came.
    pub answer: Value,
}

impl Outcome {
    /// The token in the answer, if any (a token is handed out once).
    pub fn token(&self) -> Option<&str> {
        self.answer.get("token").and_then(Value::as_str)
    }

    /// The answer with `outcome` and `exit_code` added: what `--json`
    /// prints and what an MCP tool returns. With `redact_token`, the token
    /// is replaced by `"token_saved_to": PATH`.
    pub fn to_json(&self, token_saved_to: Option<&str>) -> Value {
        let mut v = match &self.answer {
            Value::Object(m) => Value::Object(m.clone()),
            other => json!({ "answer": other }),
        };
        v["outcome"] = json!(self.kind.as_str());
        v["exit_code"] = json!(self.kind.exit_code());
        if let Some(id) = &self.request_id {
            v["request_id"] = json!(id);
        }
        if let Some(path) = token_saved_to
            && let Some(m) = v.as_object_mut()
            && m.remove("token").is_some()
        {
            m.insert("token_saved_to".into(), json!(path));
        }
        v
    }

    /// The policy rule that decided, when the answer names one.
    pub fn rule_id(&self) -> Option<&str> {
        self.answer
            .pointer("/decision/rule_id")
            .or_else(|| self.answer.pointer("/error/rule_id"))
            .and_then(Value::as_str)
    }

    /// The policy's or the launcher's reason, when the answer gives one.
    pub fn reason(&self) -> Option<&str> {
        self.answer
            .pointer("/error/message")
            .or_else(|| self.answer.pointer("/decision/reason"))
            .and_then(Value::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_launcher_state_has_an_outcome_and_the_exit_codes_are_distinct() {
        for s in launcher_core::State::ALL {
            assert!(Kind::of_state(s.as_str()).is_some(), "{}", s.as_str());
        }
        let kinds = [
            Kind::Executed,
            Kind::Error,
            Kind::Pending,
            Kind::Denied,
            Kind::Blocked,
            Kind::Expired,
            Kind::Failed,
        ];
        let mut codes: Vec<u8> = kinds.iter().map(|k| k.exit_code()).collect();
        codes.push(2); // clap's usage error
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), kinds.len() + 1);
    }

    #[test]
    fn a_saved_token_is_not_in_the_json() {
        let o = Outcome {
            kind: Kind::Executed,
            request_id: Some("req_1".into()),
            answer: json!({"status": "executed", "token": "tok-secret"}),
        };
        let v = o.to_json(Some("/tmp/t"));
        assert!(!v.to_string().contains("tok-secret"));
        assert_eq!(v["token_saved_to"], "/tmp/t");
        assert_eq!(o.to_json(None)["token"], "tok-secret");
    }
}
