//! What the tamper rules protect, as the configuration names it (a name or
//! an ARN) and as CloudTrail records name it (a name, a partial or full ARN,
//! a queue URL): functions and other resources, and how the two are matched.

use std::fmt;

/// Splits `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
fn split_arn(s: &str) -> Option<[&str; 5]> {
    let mut it = s.splitn(6, ':');
    if it.next()? != "arn" {
        return None;
    }
    let partition = it.next()?;
    let service = it.next()?;
    let region = it.next()?;
    let account = it.next()?;
    let resource = it.next()?;
    Some([partition, service, region, account, resource])
}

/// A Lambda function: its name, and its account and region when an ARN
/// gave them. Qualifiers (`:alias`, `:7`) are dropped: a change to any
/// version or alias of the function is a change to the function.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FunctionRef {
    pub name: String,
    pub account: Option<String>,
    pub region: Option<String>,
}

fn valid_function_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 140
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl FunctionRef {
    /// Parse a function as the Lambda API accepts it: `NAME`, `NAME:QUALIFIER`,
    /// `ACCOUNT:function:NAME[:QUALIFIER]` or
    /// `arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`.
    pub fn parse(s: &str) -> Option<FunctionRef> {
        let s = s.trim();
        if let Some([_, service, region, account, resource]) = split_arn(s) {
            let rest = resource.strip_prefix("function:")?;
            let name = rest.split(':').next()?;
            return (service == "lambda" && valid_function_name(name)).then(|| FunctionRef {
                name: name.to_string(),
                account: Some(account.to_string()).filter(|a| !a.is_empty()),
                region: Some(region.to_string()).filter(|r| !r.is_empty()),
            });
        }
        let parts: Vec<&str> = s.split(':').collect();
        let (account, name) = match parts.as_slice() {
            [name] | [name, _] => (None, *name),
            [account, "function", name] | [account, "function", name, _] => {
                (Some(account.to_string()), *name)
            }
            _ => return None,
        };
        valid_function_name(name).then(|| FunctionRef {
            name: name.to_string(),
            account,
            region: None,
        })
    }

    /// Same function: names equal, and account and region equal where both
    /// sides know them.
    pub fn matches(&self, other: &FunctionRef) -> bool {
        let agree = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        self.name == other.name
            && agree(&self.account, &other.account)
            && agree(&self.region, &other.region)
    }
}

impl fmt::Display for FunctionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.region, &self.account) {
            (Some(r), Some(a)) => write!(f, "arn:aws:lambda:{r}:{a}:function:{}", self.name),
            _ => f.write_str(&self.name),
        }
    }
}

/// Resource-type words that prefix a resource in an ARN (`table/NAME`,
/// `parameter/PATH`, `rule/NAME`, ...).
const TYPE_PREFIXES: [&str; 12] = [
    "table/",
    "parameter/",
    "rule/",
    "trail/",
    "function:",
    "role/",
    "microvm-image:",
    "event-bus/",
    "log-group:",
    "key/",
    "secret:",
    "stream/",
];

/// A resource the detection pipeline depends on, named by name or ARN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceRef {
    /// As configured.
    pub given: String,
    /// The name a request parameter would carry: the ARN's resource part
    /// without its type word (`microvm-gov-ledger`, `microvm-gov/baseline`).
    pub name: String,
    /// The account of an ARN, when it names one.
    pub account: Option<String>,
}

impl ResourceRef {
    pub fn parse(s: &str) -> Option<ResourceRef> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        let (name, account) = match split_arn(s) {
            Some([_, _, _, account, resource]) => {
                let name = TYPE_PREFIXES
                    .iter()
                    .find_map(|p| resource.strip_prefix(p))
                    .unwrap_or(resource);
                (
                    name.trim_start_matches('/').to_string(),
                    Some(account.to_string()).filter(|a| !a.is_empty()),
                )
            }
            None => (s.trim_start_matches('/').to_string(), None),
        };
        (!name.is_empty()).then(|| ResourceRef {
            given: s.to_string(),
            name,
            account,
        })
    }

    /// The bytes a record naming this resource must contain: the last
    /// segment of its name (slashes may be written `\/` in JSON; a record
    /// with escapes is parsed anyway).
    pub fn needle(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }

    /// Does `value` (a string found in a record, made in `record_account`)
    /// name this resource? The full ARN; the bare name; or an ARN, path or
    /// URL ending in `/name` or `:name`. An ARN or queue URL of another
    /// account than the configured ARN's does not match.
    pub fn named_by(&self, value: &str, record_account: Option<&str>) -> bool {
        if value == self.given {
            return true;
        }
        let ends = value == self.name
            || value
                .strip_suffix(self.name.as_str())
                .is_some_and(|head| head.ends_with('/') || head.ends_with(':'));
        if !ends {
            return false;
        }
        let Some(want) = &self.account else {
            return true;
        };
        let named_account = match split_arn(value) {
            Some([_, _, _, account, _]) if !account.is_empty() => Some(account),
            Some(_) => None,
            None => value
                .strip_prefix("https://")
                .and_then(|rest| rest.split('/').nth(1))
                .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())),
        };
        match named_account.or(record_account) {
            Some(a) => a == want,
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_refs_parse_every_form_the_api_accepts() {
        let arn =
            FunctionRef::parse("arn:aws:lambda:us-east-1:111122223333:function:gov-launcher:live")
                .unwrap();
        assert_eq!(arn.name, "gov-launcher");
        assert_eq!(arn.account.as_deref(), Some("111122223333"));
        for s in [
            "gov-launcher",
            "gov-launcher:live",
            "111122223333:function:gov-launcher",
            "111122223333:function:gov-launcher:7",
        ] {
            let f = FunctionRef::parse(s).unwrap();
            assert!(arn.matches(&f), "{s}");
        }
        let other_account =
            FunctionRef::parse("arn:aws:lambda:us-east-1:444455556666:function:gov-launcher")
                .unwrap();
        assert!(!arn.matches(&other_account));
        for bad in ["", "arn:aws:iam::1:role/x", "a b", "1:layer:x"] {
            assert!(FunctionRef::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn resources_match_names_arns_and_queue_urls_of_their_account_only() {
        let table =
            ResourceRef::parse("arn:aws:dynamodb:us-east-1:111122223333:table/gov-ledger").unwrap();
        assert_eq!(table.name, "gov-ledger");
        assert!(table.named_by("gov-ledger", Some("111122223333")));
        assert!(table.named_by("gov-ledger", None));
        assert!(!table.named_by("gov-ledger", Some("444455556666")));
        assert!(!table.named_by("gov-ledger-copy", None));
        assert!(!table.named_by("other-gov-ledger", None));
        let queue =
            ResourceRef::parse("arn:aws:sqs:us-east-1:111122223333:gov-detector-q").unwrap();
        assert!(queue.named_by(
            "https://sqs.us-east-1.amazonaws.com/111122223333/gov-detector-q",
            None
        ));
        assert!(!queue.named_by(
            "https://sqs.us-east-1.amazonaws.com/444455556666/gov-detector-q",
            Some("111122223333")
        ));
        let param = ResourceRef::parse("arn:aws:ssm:us-east-1:111122223333:parameter/gov/baseline")
            .unwrap();
        assert_eq!(param.name, "gov/baseline");
        assert_eq!(param.needle(), "baseline");
        assert!(param.named_by("/gov/baseline", None));
        let bucket = ResourceRef::parse("gov-trail-bucket").unwrap();
        assert!(bucket.named_by("arn:aws:s3:::gov-trail-bucket", None));
        assert!(bucket.named_by("gov-trail-bucket", Some("999999999999")));
    }
}
