//! The bypass rules: a governed MicroVM call is managed only when the
//! launcher's role made it (from the launcher's session, when session names
//! are configured), with a consistent Contro1 request id, and with a
//! CloudTrail `requestID` the ledger can be checked against. First matching
//! rule wins, in this order:
//!
//! 0. `account-outside-organization` — organization accounts are configured
//!    and the call was recorded for another account;
//! 1. `non-launcher-principal` — the caller's role is not a launcher role of
//!    the account the call was made in (a launcher role of another account
//!    is not: cross-account);
//! 2. `launcher-session-mismatch` — launcher role, another session;
//! 3. `missing-contro1-request-id` — launcher RunMicrovm whose visible
//!    `runHookPayload` is not an object with a non-empty `contro1_request_id`;
//! 4. `contro1-request-id-mismatch` — payload id and visible `clientToken` differ;
//! 5. `launcher-call-without-request-id` — nothing to check the ledger with.

use super::{Classification, Classifier, GovernedCall, principal_role, session_name};
use crate::evidence;
use crate::finding::{Finding, Rule, Severity};
use crate::record::{PayloadId, Record};
use shared_core::GovernedOp;

fn summary(op: GovernedOp, r: &Record<'_>, rule: Rule) -> String {
    let outcome = match evidence::outcome(r) {
        crate::finding::Outcome::Succeeded => "succeeded",
        crate::finding::Outcome::Failed => "failed (attempt)",
    };
    match rule {
        Rule::LauncherCredentialsOutsideLauncher => {
            format!("{op} {outcome} with the launcher's role but is not in the launcher's ledger")
        }
        _ => format!("{op} {outcome} outside the launcher ({rule})"),
    }
}

fn finding(op: GovernedOp, r: &Record<'_>, rule: Rule, source: &str) -> Finding {
    let severity = Severity::of(op, evidence::outcome(r));
    let mut f = Finding::new(rule, severity, summary(op, r, rule), source.to_string());
    evidence::fill(&mut f, r);
    f
}

pub(crate) fn classify(
    c: &Classifier,
    op: GovernedOp,
    r: &Record<'_>,
    source: &str,
) -> Classification {
    let cfg = c.config();
    let account = evidence::account(r);
    let role = principal_role(r);
    let is_launcher = role
        .as_ref()
        .is_some_and(|role| c.is_launcher_role(role, account.as_deref()));
    let foreign = role
        .as_ref()
        .and_then(|role| c.foreign_launcher_account(role, account.as_deref()));
    let outside_org = !cfg.organization_accounts.is_empty()
        && !account
            .as_deref()
            .is_some_and(|a| cfg.organization_accounts.iter().any(|o| o == a));
    let params = r.request_parameters.get();
    let payload_id = match (op, params) {
        (GovernedOp::RunMicrovm, Some(p)) => p.run_hook_payload.contro1_request_id(),
        _ => PayloadId::NotVisible,
    };
    let client_token = params.and_then(|p| p.client_token.visible());
    let request_id = r.request_id.as_str().filter(|id| !id.is_empty());

    let rule = if outside_org {
        Some(Rule::AccountOutsideOrganization)
    } else if !is_launcher {
        Some(Rule::NonLauncherPrincipal)
    } else if !cfg.launcher_session_names.is_empty()
        && !session_name(r).is_some_and(|s| cfg.launcher_session_names.iter().any(|n| n == s))
    {
        Some(Rule::LauncherSessionMismatch)
    } else if op == GovernedOp::RunMicrovm && payload_id == PayloadId::Invalid {
        Some(Rule::MissingContro1RequestId)
    } else if op == GovernedOp::RunMicrovm
        && matches!((&payload_id, client_token), (PayloadId::Id(id), Some(t)) if id != t)
    {
        Some(Rule::Contro1RequestIdMismatch)
    } else {
        None
    };
    let payload_id = match payload_id {
        PayloadId::Id(id) => Some(id),
        _ => None,
    };

    match (rule, request_id) {
        (rule, None) | (rule @ Some(_), _) => {
            let rule = rule.unwrap_or(Rule::LauncherCallWithoutRequestId);
            let mut f = finding(op, r, rule, source);
            f.contro1_request_id_claimed = payload_id;
            f.reason = match (rule, foreign) {
                (Rule::AccountOutsideOrganization, _) => Some(format!(
                    "the call was recorded for account {}, which is not one of the organization's accounts (ORGANIZATION_ACCOUNTS)",
                    account.as_deref().unwrap_or("(unknown)")
                )),
                (Rule::NonLauncherPrincipal, Some(theirs)) => Some(format!(
                    "cross-account: the launcher role of account {theirs} was used in account {}",
                    account.as_deref().unwrap_or("(unknown)")
                )),
                _ => None,
            };
            Classification::Finding(f)
        }
        (None, Some(request_id)) => {
            let contro1_request_id = payload_id.or_else(|| client_token.map(str::to_string));
            let mut f = finding(op, r, Rule::LauncherCredentialsOutsideLauncher, source);
            f.contro1_request_id_claimed = contro1_request_id.clone();
            Classification::Managed(GovernedCall {
                op,
                outcome: evidence::outcome(r),
                request_id: request_id.to_string(),
                microvm_id: evidence::microvm_id(r).map(str::to_string),
                contro1_request_id,
                if_not_in_ledger: f,
            })
        }
    }
}
