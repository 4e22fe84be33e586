//! Identifying an IAM role from the ARNs CloudTrail and Lambda give us.
//!
//! CloudTrail names a Lambda function's caller twice: `userIdentity.arn` is the
//! assumed-role ARN `arn:aws:sts::ACCOUNT:assumed-role/ROLE_NAME/SESSION` (the
//! role's **path is dropped**), and `sessionContext.sessionIssuer.arn` is the
//! role ARN `arn:aws:iam::ACCOUNT:role/PATH/ROLE_NAME` (path kept). A role is
//! therefore identified by partition + account + name, and by its path only when
//! both sides know it.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleRefError {
    #[error(
        "`{arn}` is not an IAM role ARN (expected arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME)"
    )]
    NotRoleArn { arn: String },
    #[error(
        "`{arn}` is not an assumed-role ARN (expected arn:PARTITION:sts::ACCOUNT:assumed-role/NAME/SESSION)"
    )]
    NotAssumedRoleArn { arn: String },
}

/// A role, as far as an ARN tells us.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RoleRef {
    pub partition: String,
    pub account: String,
    /// `Some("/")` for a role at the root path, `Some("/a/b/")` for a nested
    /// one, `None` when the ARN we learnt it from does not carry the path.
    pub path: Option<String>,
    pub name: String,
}

/// Splits `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE` into its parts.
fn split_arn(arn: &str) -> Option<(&str, &str, &str, &str)> {
    let mut it = arn.splitn(6, ':');
    if it.next()? != "arn" {
        return None;
    }
    let partition = it.next()?;
    let service = it.next()?;
    let _region = it.next()?;
    let account = it.next()?;
    let resource = it.next()?;
    if partition.is_empty() || account.is_empty() {
        return None;
    }
    Some((partition, service, account, resource))
}

impl RoleRef {
    /// Parse `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`.
    pub fn from_role_arn(arn: &str) -> Result<RoleRef, RoleRefError> {
        let err = || RoleRefError::NotRoleArn {
            arn: arn.to_string(),
        };
        let (partition, service, account, resource) = split_arn(arn).ok_or_else(err)?;
        if service != "iam" {
            return Err(err());
        }
        let rest = resource.strip_prefix("role/").ok_or_else(err)?;
        let (path, name) = match rest.rfind('/') {
            Some(i) => (format!("/{}", &rest[..=i]), &rest[i + 1..]),
            None => ("/".to_string(), rest),
        };
        if name.is_empty() {
            return Err(err());
        }
        Ok(RoleRef {
            partition: partition.to_string(),
            account: account.to_string(),
            path: Some(path),
            name: name.to_string(),
        })
    }

    /// Parse `arn:PARTITION:sts::ACCOUNT:assumed-role/NAME/SESSION` into the
    /// role (without path) and the session name.
    pub fn from_assumed_role_arn(arn: &str) -> Result<(RoleRef, String), RoleRefError> {
        let err = || RoleRefError::NotAssumedRoleArn {
            arn: arn.to_string(),
        };
        let (partition, service, account, resource) = split_arn(arn).ok_or_else(err)?;
        if service != "sts" {
            return Err(err());
        }
        let rest = resource.strip_prefix("assumed-role/").ok_or_else(err)?;
        let (name, session) = rest.split_once('/').ok_or_else(err)?;
        if name.is_empty() || session.is_empty() {
            return Err(err());
        }
        Ok((
            RoleRef {
                partition: partition.to_string(),
                account: account.to_string(),
                path: None,
                name: name.to_string(),
            },
            session.to_string(),
        ))
    }

    /// Same role: partition, account and name equal, and paths equal where
    /// both sides carry one.
    pub fn matches(&self, other: &RoleRef) -> bool {
        self.partition == other.partition
            && self.account == other.account
            && self.name == other.name
            && match (&self.path, &other.path) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl fmt::Display for RoleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.as_deref().unwrap_or("/");
        write!(
            f,
            "arn:{}:iam::{}:role{}{}",
            self.partition, self.account, path, self.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arn_with_and_without_path() {
        let r = RoleRef::from_role_arn("arn:aws:iam::111122223333:role/launcher").unwrap();
        assert_eq!(r.path.as_deref(), Some("/"));
        assert_eq!(r.name, "launcher");
        let r = RoleRef::from_role_arn("arn:aws:iam::111122223333:role/svc/gov/launcher").unwrap();
        assert_eq!(r.path.as_deref(), Some("/svc/gov/"));
        assert_eq!(r.name, "launcher");
        assert_eq!(
            r.to_string(),
            "arn:aws:iam::111122223333:role/svc/gov/launcher"
        );
    }

    #[test]
    fn assumed_role_arn_gives_role_and_session() {
        let (r, s) = RoleRef::from_assumed_role_arn(
            "arn:aws:sts::111122223333:assumed-role/launcher/microvm-launcher",
        )
        .unwrap();
        assert_eq!(r.path, None);
        assert_eq!(r.name, "launcher");
        assert_eq!(s, "microvm-launcher");
    }

    #[test]
    fn matching_ignores_path_only_when_one_side_lacks_it() {
        let with_path =
            RoleRef::from_role_arn("arn:aws:iam::111122223333:role/svc/launcher").unwrap();
        let root = RoleRef::from_role_arn("arn:aws:iam::111122223333:role/launcher").unwrap();
        let (assumed, _) =
            RoleRef::from_assumed_role_arn("arn:aws:sts::111122223333:assumed-role/launcher/x")
                .unwrap();
        assert!(with_path.matches(&assumed));
        assert!(root.matches(&assumed));
        assert!(!with_path.matches(&root));
        let other_account =
            RoleRef::from_role_arn("arn:aws:iam::444455556666:role/svc/launcher").unwrap();
        assert!(!with_path.matches(&other_account));
        let other_partition =
            RoleRef::from_role_arn("arn:aws-cn:iam::111122223333:role/svc/launcher").unwrap();
        assert!(!with_path.matches(&other_partition));
    }

    #[test]
    fn bad_arns_are_rejected_with_the_arn_named() {
        for bad in [
            "",
            "launcher",
            "arn:aws:iam::111122223333:user/alice",
            "arn:aws:iam::111122223333:role/",
            "arn:aws:sts::111122223333:role/launcher",
            "arn:aws:iam:::role/launcher",
        ] {
            let e = RoleRef::from_role_arn(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
        assert!(RoleRef::from_assumed_role_arn("arn:aws:sts::1:assumed-role/launcher").is_err());
        assert!(RoleRef::from_assumed_role_arn("arn:aws:iam::1:assumed-role/launcher/s").is_err());
    }
}
