//! Strict grammars for the identifiers an agent (or the policy file) gives
//! the launcher: MicroVM ids, image ARNs and versions, IAM role and user
//! ARNs. Each parser accepts exactly the documented shape and names what is
//! wrong otherwise; nothing is "probably fine".
//!
//! Why strict: a MicroVM id becomes a URL path segment of the MicroVMs API
//! (`..` must never get there); the policy compares ARNs, so two spellings of
//! one role (a region in an IAM ARN, a case difference) must not pass as two
//! roles, or as an allowed one.
//!
//! Sources: IAM identifiers (role and user names `[\w+=,.@-]{1,64}`, paths of
//! printable ASCII between slashes, IAM ARNs carry no region), the Lambda
//! MicroVMs model (MicroVM ids at most 256 characters, image ARNs
//! `arn:PARTITION:lambda:REGION:ACCOUNT:microvm-image:NAME`, AWS-owned images
//! under the account `aws`).

use serde::{Serialize, Serializer};
use shared_core::RoleRef;

/// Longest MicroVM id the API accepts.
pub const MAX_MICROVM_ID_LEN: usize = 256;
/// Longest MicroVM image name accepted.
pub const MAX_IMAGE_NAME_LEN: usize = 140;
/// Longest IAM role or user name (IAM's limit).
pub const MAX_IAM_NAME_LEN: usize = 64;
/// Longest IAM path (IAM's limit).
pub const MAX_IAM_PATH_LEN: usize = 512;

/// AWS partitions.
pub const PARTITIONS: &[&str] = &[
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];

/// A MicroVM id: 1..=256 characters, an ASCII letter or digit first, then
/// letters, digits, `-` and `_`. No `.`, `/`, `%` or space can reach the
/// MicroVMs API's URL path.
pub fn microvm_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_MICROVM_ID_LEN {
        return Err(format!("must be 1..={MAX_MICROVM_ID_LEN} characters"));
    }
    let first_ok = id.as_bytes()[0].is_ascii_alphanumeric();
    let rest_ok = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !(first_ok && rest_ok) {
        return Err(
            "must start with a letter or digit and contain only letters, digits, `-` and `_`"
                .into(),
        );
    }
    Ok(())
}

fn partition(p: &str) -> Result<(), String> {
    if PARTITIONS.contains(&p) {
        Ok(())
    } else {
        Err(format!("`{p}` is not an AWS partition"))
    }
}

fn account(a: &str, allow_aws: bool) -> Result<(), String> {
    if (a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())) || (allow_aws && a == "aws") {
        Ok(())
    } else if allow_aws {
        Err(format!("account `{a}` is neither 12 digits nor `aws`"))
    } else {
        Err(format!("account `{a}` is not 12 digits"))
    }
}

/// `us-east-1`, `us-gov-west-1`, `eu-isoe-west-1`, `ap-southeast-2`.
fn region(r: &str) -> Result<(), String> {
    let parts: Vec<&str> = r.split('-').collect();
    let ok = parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[0].len() == 2
        && parts
            .last()
            .is_some_and(|n| (1..=2).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(format!("`{r}` is not an AWS region"))
    }
}

/// A MicroVM image ARN without a version:
/// `arn:PARTITION:lambda:REGION:ACCOUNT:microvm-image:NAME`, ACCOUNT 12
/// digits or `aws`, NAME 1..=140 of letters, digits, `-`, `_`, `.` starting
/// with a letter or digit.
pub fn image_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() != 7 || parts[0] != "arn" || parts[2] != "lambda" || parts[5] != "microvm-image"
    {
        return Err(format!(
            "`{arn}` is not a MicroVM image ARN (arn:PARTITION:lambda:REGION:ACCOUNT:microvm-image:NAME)"
        ));
    }
    partition(parts[1])?;
    region(parts[3])?;
    account(parts[4], true)?;
    image_name(parts[6])
}

fn image_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_IMAGE_NAME_LEN
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "image name `{name}` must be 1..={MAX_IMAGE_NAME_LEN} letters, digits, `-`, `_` or `.`, starting with a letter or digit"
        ))
    }
}

/// An image version: a positive whole number (`1`, `42`), at most 10 digits.
pub fn image_version(v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.len() <= 10
        && v.bytes().all(|b| b.is_ascii_digit())
        && !v.starts_with('0');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{v}` is not an image version (a positive whole number)"
        ))
    }
}

/// Which versions of an allowed image the policy accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionRule {
    /// `ARN`: only a request that names no version (the image's default).
    Default,
    /// `ARN:N`: exactly version N.
    Exact(String),
    /// `ARN:*`: any version (an explicit choice in the policy).
    Any,
}

/// One entry of an image allow-list: `ARN`, `ARN:VERSION` or `ARN:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRule {
    pub arn: String,
    pub version: VersionRule,
}

impl ImageRule {
    pub fn parse(entry: &str) -> Result<ImageRule, String> {
        let (arn, version) = match entry.matches(':').count() {
            6 => (entry, VersionRule::Default),
            7 => {
                let (arn, v) = entry.rsplit_once(':').unwrap_or((entry, ""));
                let rule = if v == "*" {
                    VersionRule::Any
                } else {
                    image_version(v)?;
                    VersionRule::Exact(v.to_string())
                };
                (arn, rule)
            }
            _ => {
                return Err(format!(
                    "`{entry}` is not a MicroVM image ARN, optionally with `:VERSION` or `:*`"
                ));
            }
        };
        image_arn(arn)?;
        Ok(ImageRule {
            arn: arn.to_string(),
            version,
        })
    }

    /// Same image, any version.
    pub fn names(&self, arn: &str) -> bool {
        self.arn == arn
    }

    /// Does this entry allow `arn` at `version` (`None`: the default)?
    pub fn allows(&self, arn: &str, version: Option<&str>) -> bool {
        self.names(arn)
            && match &self.version {
                VersionRule::Default => version.is_none(),
                VersionRule::Exact(v) => version == Some(v.as_str()),
                VersionRule::Any => true,
            }
    }
}

impl std::fmt::Display for ImageRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.version {
            VersionRule::Default => f.write_str(&self.arn),
            VersionRule::Exact(v) => write!(f, "{}:{v}", self.arn),
            VersionRule::Any => write!(f, "{}:*", self.arn),
        }
    }
}

impl Serialize for ImageRule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn iam_name(kind: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_IAM_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{kind} name `{name}` must be 1..={MAX_IAM_NAME_LEN} of letters, digits and `_+=,.@-`"
        ))
    }
}

/// `arn:PARTITION:iam::ACCOUNT:{kind}/[PATH/]NAME`, strictly: no region,
/// 12-digit account, IAM path and name characters. Returns (partition,
/// account, path with its slashes, name).
fn iam_arn<'a>(arn: &'a str, kind: &str) -> Result<(&'a str, &'a str, &'a str, &'a str), String> {
    let shape = || {
        format!("`{arn}` is not an IAM {kind} ARN (arn:PARTITION:iam::ACCOUNT:{kind}/[PATH/]NAME)")
    };
    let mut it = arn.splitn(6, ':');
    let (Some("arn"), Some(p), Some("iam"), Some(r), Some(a), Some(res)) = (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) else {
        return Err(shape());
    };
    partition(p)?;
    if !r.is_empty() {
        return Err(format!(
            "`{arn}`: IAM ARNs have no region, found `{r}` (IAM is global)"
        ));
    }
    account(a, false)?;
    let rest = res
        .strip_prefix(kind)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(shape)?;
    let (path, name) = match rest.rfind('/') {
        Some(i) => (&rest[..=i], &rest[i + 1..]),
        None => ("", rest),
    };
    if path.len() > MAX_IAM_PATH_LEN
        || path.contains("//")
        || path.starts_with('/')
        || !path.bytes().all(|b| (0x21..=0x7e).contains(&b))
    {
        return Err(format!(
            "`{arn}`: the path must be printable ASCII segments"
        ));
    }
    iam_name(kind, name)?;
    Ok((p, a, path, name))
}

/// A strict IAM role ARN, parsed.
pub fn role_arn(arn: &str) -> Result<RoleRef, String> {
    iam_arn(arn, "role")?;
    RoleRef::from_role_arn(arn).map_err(|e| e.to_string())
}

/// A strict IAM user ARN.
pub fn user_arn(arn: &str) -> Result<(), String> {
    iam_arn(arn, "user").map(drop)
}

/// The identity of a principal ARN for duplicate detection: two ARNs with
/// the same key are one principal to the launcher. A role is known to a
/// caller only by partition, account and name (the assumed-role ARN drops
/// the path), and IAM names are unique regardless of case, so the path is
/// left out and the name lower-cased; the same holds for users.
pub fn principal_key(arn: &str) -> Result<String, String> {
    for kind in ["role", "user"] {
        if let Ok((p, a, _path, name)) = iam_arn(arn, kind) {
            return Ok(format!("{kind}:{p}:{a}:{}", name.to_ascii_lowercase()));
        }
    }
    // Neither shape: say what is wrong with the closest one.
    let kind = if arn.contains(":user/") {
        "user"
    } else {
        "role"
    };
    iam_arn(arn, kind).map(|_| String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microvm_ids_accept_the_seen_shapes_and_refuse_dots_slashes_and_escapes() {
        for ok in [
            "microvm-0f3a",
            "ai-6b1f0c1e-2d3c-4e5f-8a9b-0c1d2e3f4a5b",
            "vm_1",
            "A",
        ] {
            assert_eq!(microvm_id(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "..", ".", "a.b", "../x", "a/b", "%2e%2e", "-a", "_a", "a b", "a\u{0}",
        ] {
            assert!(microvm_id(bad).is_err(), "{bad:?}");
        }
        assert!(microvm_id(&"a".repeat(256)).is_ok());
        assert!(microvm_id(&"a".repeat(257)).is_err());
    }

    #[test]
    fn image_arns_are_checked_field_by_field() {
        for ok in [
            "arn:aws:lambda:us-east-1:111122223333:microvm-image:py",
            "arn:aws:lambda:us-east-1:aws:microvm-image:al2023-1",
            "arn:aws-us-gov:lambda:us-gov-west-1:111122223333:microvm-image:python3.12_x",
        ] {
            assert_eq!(image_arn(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("arn:aws:s3:::bucket", "not a MicroVM image ARN"),
            (
                "arn:aws:lambda:us-east-1:1111:microvm-image:py",
                "12 digits",
            ),
            (
                "arn:aws:lambda:useast1:111122223333:microvm-image:py",
                "not an AWS region",
            ),
            (
                "arn:aws:lambda::111122223333:microvm-image:py",
                "not an AWS region",
            ),
            (
                "arn:awz:lambda:us-east-1:111122223333:microvm-image:py",
                "partition",
            ),
            (
                "arn:aws:lambda:us-east-1:111122223333:microvm-image:py:3",
                "not a MicroVM image ARN",
            ),
            (
                "arn:aws:lambda:us-east-1:111122223333:microvm-image:",
                "image name",
            ),
            (
                "arn:aws:lambda:us-east-1:111122223333:microvm-image:a/b",
                "image name",
            ),
        ] {
            let e = image_arn(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn image_rules_pin_a_version_allow_any_or_only_the_default() {
        let base = "arn:aws:lambda:us-east-1:111122223333:microvm-image:py";
        let default = ImageRule::parse(base).unwrap();
        let pinned = ImageRule::parse(&format!("{base}:3")).unwrap();
        let any = ImageRule::parse(&format!("{base}:*")).unwrap();
        assert!(default.allows(base, None) && !default.allows(base, Some("3")));
        assert!(pinned.allows(base, Some("3")) && !pinned.allows(base, Some("4")));
        assert!(!pinned.allows(base, None));
        assert!(any.allows(base, Some("77")) && any.allows(base, None));
        assert!(!any.allows(
            "arn:aws:lambda:us-east-1:111122223333:microvm-image:other",
            None
        ));
        assert_eq!(pinned.to_string(), format!("{base}:3"));
        assert!(ImageRule::parse(&format!("{base}:v3")).is_err());
        assert!(ImageRule::parse(&format!("{base}:03")).is_err());
    }

    #[test]
    fn role_arns_with_a_region_or_a_short_account_are_refused() {
        assert!(role_arn("arn:aws:iam::111122223333:role/x").is_ok());
        assert!(role_arn("arn:aws:iam::111122223333:role/team/a/x").is_ok());
        let e = role_arn("arn:aws:iam:us-east-1:111122223333:role/x").unwrap_err();
        assert!(e.contains("no region"), "{e}");
        assert!(role_arn("arn:aws:iam::1:role/x").is_err());
        assert!(role_arn("arn:aws:iam::111122223333:role/").is_err());
        assert!(role_arn("arn:aws:iam::111122223333:role/a b").is_err());
        assert!(role_arn("arn:aws:iam::111122223333:role//x").is_err());
        assert!(role_arn("arn:aws:iam::111122223333:user/x").is_err());
        assert!(
            role_arn(&format!(
                "arn:aws:iam::111122223333:role/{}",
                "r".repeat(65)
            ))
            .is_err()
        );
    }

    #[test]
    fn principal_keys_ignore_path_and_case_but_not_account_or_kind() {
        let k = |a: &str| principal_key(a).unwrap();
        assert_eq!(
            k("arn:aws:iam::111122223333:role/ci"),
            k("arn:aws:iam::111122223333:role/team/CI")
        );
        assert_ne!(
            k("arn:aws:iam::111122223333:role/ci"),
            k("arn:aws:iam::444455556666:role/ci")
        );
        assert_ne!(
            k("arn:aws:iam::111122223333:role/ci"),
            k("arn:aws:iam::111122223333:user/ci")
        );
        assert!(principal_key("arn:aws:iam:us-east-1:111122223333:role/ci").is_err());
    }
}
