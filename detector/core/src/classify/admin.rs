//! What the administrator's-path rules protect (THREAT-MODEL.md T11–T19),
//! as configured, and how each is matched against what CloudTrail records
//! name: a stack by name or ARN, a secret by name, full ARN or ARN without
//! its random suffix, an SCP by ARN or id, a topic and its subscriptions, a
//! log group by name or ARN, a bucket by name.

use super::{TamperConfigError, TamperList};
use shared_core::RoleRef;

/// The lists, as configured. Every list is optional; an empty list turns
/// its rule off (LeaveOrganization needs none).
#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    /// `GOVERNANCE_STACKS`: stack operations on them are findings unless
    /// made by a pipeline principal.
    pub governance_stacks: Vec<StackRef>,
    /// `PIPELINE_PRINCIPAL_ARNS`: the one principal (role or user) that
    /// deploys the governance stacks.
    pub pipeline_principals: Vec<PrincipalRef>,
    /// `BREAK_GLASS_ROLE_ARNS`: a session is a finding; so is any IAM
    /// change to them.
    pub break_glass_roles: Vec<RoleRef>,
    /// `EXECUTION_ROLE_ARNS`: the roles approved MicroVMs run with.
    pub execution_roles: Vec<RoleRef>,
    /// `PREVENTION_POLICY_ARNS`: the deny policy and the permissions
    /// boundary (IAM managed policies).
    pub prevention_policies: Vec<String>,
    /// `SCP_IDS`: the organization's SCPs, as `p-...` ids.
    pub scps: Vec<String>,
    /// `CONTRO1_SECRETS`: the Contro1 API key and webhook secrets.
    pub contro1_secrets: Vec<SecretRef>,
    /// `ALERT_TOPIC_ARN` (and the chat topic): their subscriptions too.
    pub alert_topics: Vec<String>,
    /// `DETECTOR_LOG_GROUPS`.
    pub detector_log_groups: Vec<String>,
    /// `DETECTOR_ROLE_ARNS`: whose log lines in those groups are the
    /// detector's own.
    pub detector_roles: Vec<RoleRef>,
    /// `TRAIL_BUCKETS`: objects written there by anyone but CloudTrail.
    pub trail_buckets: Vec<String>,
}

/// Splits `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
pub(crate) fn split_arn(s: &str) -> Option<[&str; 5]> {
    let mut it = s.splitn(6, ':');
    if it.next()? != "arn" {
        return None;
    }
    Some([it.next()?, it.next()?, it.next()?, it.next()?, it.next()?])
}

/// A CloudFormation stack (or StackSet), by name or ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackRef {
    pub given: String,
    pub name: String,
    pub account: Option<String>,
}

impl StackRef {
    /// `NAME`, `arn:...:cloudformation:R:A:stack/NAME/ID` or
    /// `arn:...:stackset/NAME:ID`.
    pub fn parse(s: &str) -> Option<StackRef> {
        let s = s.trim();
        let (name, account) = match split_arn(s) {
            Some([_, "cloudformation", _, account, resource]) => {
                let rest = resource
                    .strip_prefix("stack/")
                    .or_else(|| resource.strip_prefix("stackset/"))?;
                let name = rest.split(['/', ':']).next()?;
                (name, Some(account.to_string()).filter(|a| !a.is_empty()))
            }
            Some(_) => return None,
            None => (s, None),
        };
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| StackRef {
            given: s.to_string(),
            name: name.to_string(),
            account,
        })
    }

    /// Does `value` (a stack name or ARN in a record made in `account`)
    /// name this stack?
    pub fn named_by(&self, value: &str, account: Option<&str>) -> bool {
        let Some(other) = StackRef::parse(value) else {
            return false;
        };
        let theirs = other.account.as_deref().or(account);
        other.name == self.name
            && match (self.account.as_deref(), theirs) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// A principal by ARN: a role (matched as its sessions' issuer) or an IAM
/// user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalRef {
    Role(RoleRef),
    User(String),
}

impl PrincipalRef {
    pub fn parse(s: &str) -> Result<PrincipalRef, String> {
        let s = s.trim();
        if let Ok(role) = RoleRef::from_role_arn(s) {
            return Ok(PrincipalRef::Role(role));
        }
        match split_arn(s) {
            Some([_, "iam", _, account, resource])
                if !account.is_empty() && resource.starts_with("user/") =>
            {
                Ok(PrincipalRef::User(s.to_string()))
            }
            _ => Err(
                "not an IAM role or user ARN (arn:aws:iam::ACCOUNT:role/NAME or arn:aws:iam::ACCOUNT:user/NAME)"
                    .into(),
            ),
        }
    }
}

/// A Secrets Manager secret. Its full ARN ends in `-` and six random
/// characters that its name does not have; records name it by name, by
/// full ARN or by the ARN without that suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub given: String,
    /// The name as configured (a full ARN's name keeps its suffix here).
    pub name: String,
    /// The name without the random suffix, when given as a full ARN.
    pub base: Option<String>,
    pub account: Option<String>,
}

/// `name` without a trailing `-XXXXXX` (six ASCII letters or digits).
fn strip_random_suffix(name: &str) -> Option<&str> {
    let (head, tail) = name.rsplit_once('-')?;
    (tail.len() == 6 && tail.bytes().all(|b| b.is_ascii_alphanumeric()) && !head.is_empty())
        .then_some(head)
}

impl SecretRef {
    pub fn parse(s: &str) -> Result<SecretRef, String> {
        let s = s.trim();
        let (name, account) = match split_arn(s) {
            Some([_, "secretsmanager", _, account, resource]) => (
                resource
                    .strip_prefix("secret:")
                    .ok_or("a Secrets Manager ARN names a secret after `secret:`")?,
                Some(account.to_string()).filter(|a| !a.is_empty()),
            ),
            Some(_) => return Err("not a Secrets Manager secret name or ARN".into()),
            None => (s, None),
        };
        if name.is_empty() {
            return Err("empty secret name".into());
        }
        Ok(SecretRef {
            given: s.to_string(),
            name: name.to_string(),
            base: account
                .is_some()
                .then(|| strip_random_suffix(name).map(str::to_string))
                .flatten(),
            account,
        })
    }

    /// Does `value` (a `secretId` or resource ARN of a record made in
    /// `account`) name this secret? A name is compared as it is; an ARN's
    /// name with and without its random suffix.
    pub fn named_by(&self, value: &str, account: Option<&str>) -> bool {
        let (names, theirs): (Vec<&str>, Option<&str>) = match split_arn(value) {
            Some([_, "secretsmanager", _, a, resource]) => {
                let Some(n) = resource.strip_prefix("secret:") else {
                    return false;
                };
                let mut names = vec![n];
                names.extend(strip_random_suffix(n));
                (names, Some(a).filter(|a| !a.is_empty()))
            }
            Some(_) => return false,
            None => (vec![value], None),
        };
        let ours = [Some(self.name.as_str()), self.base.as_deref()];
        let same = names.iter().any(|n| ours.contains(&Some(*n)));
        same && match (self.account.as_deref(), theirs.or(account)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }
}

/// An SCP's id (`p-...`) from its id or ARN
/// (`arn:aws:organizations::MGMT:policy/o-.../service_control_policy/p-...`).
pub fn scp_id(s: &str) -> Option<&str> {
    let s = s.trim();
    let id = match split_arn(s) {
        Some([_, "organizations", _, _, resource]) => resource.rsplit('/').next()?,
        Some(_) => return None,
        None => s,
    };
    (id.starts_with("p-") && id.len() > 2).then_some(id)
}

/// The subscription ARN of a topic's subscription: `<topic-arn>:<id>`.
pub fn topic_covers(topic: &str, value: &str) -> bool {
    value == topic
        || value
            .strip_prefix(topic)
            .and_then(|rest| rest.strip_prefix(':'))
            .is_some_and(|id| !id.is_empty() && !id.contains(':'))
}

/// A log group named by name or ARN (`arn:...:logs:R:A:log-group:NAME[:*]`).
pub fn log_group_name(value: &str) -> &str {
    match split_arn(value) {
        Some([_, "logs", _, _, resource]) => {
            let name = resource.strip_prefix("log-group:").unwrap_or(resource);
            name.strip_suffix(":*").unwrap_or(name)
        }
        _ => value,
    }
}

impl AdminConfig {
    /// Parse every list; `values(list)` gives what is configured for it.
    pub fn parse(
        values: impl Fn(TamperList) -> Vec<String>,
    ) -> Result<AdminConfig, TamperConfigError> {
        fn each<T>(
            list: TamperList,
            values: &dyn Fn(TamperList) -> Vec<String>,
            parse: impl Fn(&str) -> Result<T, String>,
        ) -> Result<Vec<T>, TamperConfigError> {
            values(list)
                .iter()
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(|v| {
                    parse(v).map_err(|reason| TamperConfigError {
                        list,
                        value: v.to_string(),
                        reason,
                    })
                })
                .collect()
        }
        let values: &dyn Fn(TamperList) -> Vec<String> = &values;
        let role = |v: &str| RoleRef::from_role_arn(v).map_err(|e| e.to_string());
        let arn_of = |service: &'static str, what: &'static str| {
            move |v: &str| match split_arn(v) {
                Some([_, s, _, _, _]) if s == service => Ok(v.to_string()),
                _ => Err(format!("not {what}")),
            }
        };
        Ok(AdminConfig {
            governance_stacks: each(TamperList::GovernanceStacks, values, |v| {
                StackRef::parse(v).ok_or_else(|| {
                    "not a CloudFormation stack name or stack/StackSet ARN".to_string()
                })
            })?,
            pipeline_principals: each(TamperList::PipelinePrincipals, values, PrincipalRef::parse)?,
            break_glass_roles: each(TamperList::BreakGlassRoles, values, role)?,
            execution_roles: each(TamperList::ExecutionRoles, values, role)?,
            prevention_policies: each(
                TamperList::PreventionPolicies,
                values,
                |v| match split_arn(v) {
                    Some([_, "iam", _, _, r]) if r.starts_with("policy/") => Ok(v.to_string()),
                    _ => Err(
                        "not an IAM managed policy ARN (arn:aws:iam::ACCOUNT:policy/NAME)"
                            .to_string(),
                    ),
                },
            )?,
            scps: each(TamperList::Scps, values, |v| {
                scp_id(v)
                    .map(str::to_string)
                    .ok_or_else(|| "not an SCP id (p-...) or organizations policy ARN".to_string())
            })?,
            contro1_secrets: each(TamperList::Contro1Secrets, values, SecretRef::parse)?,
            alert_topics: each(
                TamperList::AlertTopics,
                values,
                arn_of("sns", "an SNS topic ARN"),
            )?,
            detector_log_groups: each(TamperList::DetectorLogGroups, values, |v| {
                Ok(log_group_name(v).to_string())
            })?,
            detector_roles: each(TamperList::DetectorRoles, values, role)?,
            trail_buckets: each(TamperList::TrailBuckets, values, |v| {
                let name = v.strip_prefix("arn:aws:s3:::").unwrap_or(v);
                if name.contains('/') || name.contains(':') {
                    Err("not an S3 bucket name".into())
                } else {
                    Ok(name.to_string())
                }
            })?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_matches_by_name_full_arn_and_arn_without_suffix_both_ways() {
        let full = "arn:aws:secretsmanager:us-east-1:111122223333:secret:gov/api-key-AbCdEf";
        let partial = "arn:aws:secretsmanager:us-east-1:111122223333:secret:gov/api-key";
        for configured in [full, partial, "gov/api-key"] {
            let s = SecretRef::parse(configured).unwrap();
            for named in [full, partial, "gov/api-key"] {
                assert!(s.named_by(named, None), "{configured} by {named}");
            }
            assert!(!s.named_by("gov/api-keyring", None), "{configured}");
            assert!(
                !s.named_by(
                    "arn:aws:secretsmanager:us-east-1:444455556666:secret:gov/api-key-AbCdEf",
                    None
                ) || configured == "gov/api-key",
                "{configured}: another account's secret"
            );
        }
    }

    #[test]
    fn stacks_scps_topics_and_log_groups_match_as_cloudtrail_names_them() {
        let s = StackRef::parse("arn:aws:cloudformation:us-east-1:111122223333:stack/gov/1a2b")
            .unwrap();
        assert!(s.named_by("gov", Some("111122223333")));
        assert!(!s.named_by("gov", Some("444455556666")));
        assert!(!s.named_by("gov-app", None));
        assert_eq!(
            scp_id("arn:aws:organizations::999988887777:policy/o-a1/service_control_policy/p-abc1"),
            Some("p-abc1")
        );
        assert_eq!(scp_id("p-abc1"), Some("p-abc1"));
        assert_eq!(scp_id("gov-scp"), None);
        let t = "arn:aws:sns:us-east-1:111122223333:alerts";
        assert!(topic_covers(t, &format!("{t}:0a1b-2c3d")));
        assert!(!topic_covers(t, &format!("{t}-archive:0a1b-2c3d")));
        assert_eq!(
            log_group_name("arn:aws:logs:us-east-1:111122223333:log-group:/aws/lambda/d:*"),
            "/aws/lambda/d"
        );
    }
}
