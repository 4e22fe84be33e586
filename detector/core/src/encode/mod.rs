//! One finding model ([`Finding`]), many encodings, one module each. The
//! same functions serve `detector scan --format` and the Lambda's
//! destinations, so a finding reads the same wherever a team looks:
//!
//! - [`ocsf`]: OCSF 1.4.0 Detection Finding (class 2004), for SIEMs;
//! - [`asff`]: AWS Security Finding Format, for Security Hub
//!   `BatchImportFindings`;
//! - [`csv`]: one row per finding under a header row;
//! - [`table`]: aligned columns for a terminal;
//! - [`chat`]: an AWS Chatbot custom notification (Slack, Teams).
//!
//! JSON Lines is the finding itself ([`json_line`]). Every text a human
//! reads is cleaned ([`crate::text`]); every encoding is bounded to its
//! channel's size limit ([`bound`]).

pub mod asff;
pub mod bound;
pub mod chat;
pub mod csv;
pub mod ocsf;
pub mod table;

use crate::finding::Finding;

/// The product name encodings give the findings.
pub const PRODUCT_NAME: &str = "MicroVM governance detector";
/// The vendor (company) name encodings give.
pub const VENDOR_NAME: &str = "MicroVM governance";

/// The finding in the detector's own JSON schema, fields in their declared
/// order, at most [`bound::LINE_MAX`] bytes (a longer one is fitted: long
/// texts cut with a marker, its fields then in alphabetical order).
pub fn json_line(f: &Finding) -> String {
    let line = serde_json::to_string(f).unwrap_or_default();
    if line.len() <= bound::LINE_MAX {
        return line;
    }
    let mut v = serde_json::to_value(f).unwrap_or(serde_json::Value::Null);
    bound::fit(&mut v, bound::LINE_MAX);
    v.to_string()
}

/// The AWS partition a region belongs to (`aws-cn` for China, `aws-us-gov`
/// for GovCloud, `aws-iso*` for the isolated regions, else `aws`).
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("eu-isoe-") {
        "aws-iso-e"
    } else if region.starts_with("us-isof-") {
        "aws-iso-f"
    } else {
        "aws"
    }
}

/// An AWS account id: exactly 12 ASCII digits.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// An AWS region name (`us-east-1`, `us-gov-west-1`, `eu-isoe-west-1`):
/// lowercase words joined by `-`, ending in a number, at most 32 bytes.
pub fn is_region(s: &str) -> bool {
    let mut parts = s.split('-');
    let Some(last) = parts.next_back() else {
        return false;
    };
    let words: Vec<&str> = parts.collect();
    s.len() <= 32
        && words.len() >= 2
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && !last.is_empty()
        && last.len() <= 2
        && last.bytes().all(|b| b.is_ascii_digit())
}

/// Milliseconds since the Unix epoch of an RFC 3339 UTC timestamp as
/// CloudTrail writes them (`2026-11-20T10:00:00Z`, optional fraction).
pub fn epoch_ms(rfc3339: &str) -> Option<i64> {
    let b = rfc3339.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { rfc3339.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let rest = &rfc3339[19..];
    let (frac, tz) = match rest.strip_prefix('.') {
        Some(r) => {
            let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            (&r[..end], &r[end..])
        }
        None => ("", rest),
    };
    if tz != "Z" {
        return None;
    }
    let ms = format!("{frac:0<3}").get(..3)?.parse::<i64>().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400) + h * 3600 + mi * 60 + s) * 1000 + ms)
}

/// The CloudTrail console page of the finding's event, when it has one.
pub fn console_url(f: &Finding) -> Option<String> {
    let region = f.region.as_deref()?;
    let id = f.event_id.as_deref()?;
    let safe = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (safe(region) && safe(id)).then(|| {
        format!(
            "https://{region}.console.aws.amazon.com/cloudtrailv2/home?region={region}#/events/{id}"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_accounts_and_regions_are_recognised() {
        assert_eq!(partition_of("us-east-1"), "aws");
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
        assert!(is_account_id("111122223333"));
        for bad in ["11112222333", "1111222233334", "11112222333x", ""] {
            assert!(!is_account_id(bad), "{bad}");
        }
        for good in [
            "us-east-1",
            "ap-southeast-4",
            "us-gov-west-1",
            "eu-isoe-west-1",
        ] {
            assert!(is_region(good), "{good}");
        }
        for bad in [
            "",
            "us-east",
            "US-EAST-1",
            "us-east-1\n",
            "us-east-1\u{1b}",
            "east-1",
            "us--1",
        ] {
            assert!(!is_region(bad), "{bad:?}");
        }
    }

    #[test]
    fn rfc3339_timestamps_become_epoch_milliseconds() {
        assert_eq!(epoch_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(epoch_ms("2025-10-02T14:05:31Z"), Some(1_759_413_931_000));
        assert_eq!(epoch_ms("2025-10-02T14:05:31.5Z"), Some(1_759_413_931_500));
        assert_eq!(
            epoch_ms("2000-02-29T00:00:00.123456Z"),
            Some(951_782_400_123)
        );
        for bad in [
            "",
            "2025-10-02",
            "2025-13-02T00:00:00Z",
            "2025-10-02T14:05:31+02:00",
            "x025-10-02T14:05:31Z",
        ] {
            assert_eq!(epoch_ms(bad), None, "{bad}");
        }
    }
}
