//! `GET /requests/{id}`: a request shown to the agent that made it, and a
//! token handed over once.

use super::{RequestView, Service, ServiceError};
use crate::agents::Caller;
use crate::approval::{State, action_digest, token_binding};
use crate::request::Action;

impl Service {
    /// Show a request to the agent that made it; a token once.
    pub async fn get_request(
        &self,
        caller: &Caller,
        request_id: &str,
    ) -> Result<RequestView, ServiceError> {
        let agent = self
            .authenticate(caller)?
            .filter(|a| a.enabled)
            .ok_or(ServiceError::UnknownCaller)?;
        let not_found = || ServiceError::NotFound {
            request_id: request_id.to_string(),
        };
        let rec = self
            .ports
            .store
            .get(request_id)
            .await?
            .ok_or_else(not_found)?;
        if rec.agent_id != agent.id {
            return Err(not_found());
        }
        let token = if rec.has_token {
            // Opened under the asking agent and the action as stored now: a
            // token sealed for another agent or action does not open.
            let binding = token_binding(
                &agent.id,
                &rec.request_id,
                &action_digest(&agent.id, &rec.action),
            );
            self.ports
                .store
                .take_token_once(request_id, &binding)
                .await?
        } else {
            None
        };
        let issued_token = matches!(
            rec.action,
            Action::AuthToken { .. } | Action::ShellToken { .. }
        ) && rec.state == State::Executed;
        Ok(RequestView {
            request_id: rec.request_id,
            state: rec.state,
            operation: rec.action.op().as_str(),
            microvm_id: rec
                .action
                .target()
                .map(str::to_string)
                .or_else(|| rec.result.as_ref().and_then(|r| r.microvm_id.clone())),
            decision: rec.decision,
            result: rec.result,
            error: rec.error,
            token_already_returned: issued_token && token.is_none(),
            token,
        })
    }
}
