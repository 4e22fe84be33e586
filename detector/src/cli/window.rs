//! `--since` / `--until`: the time window findings are kept in, by the
//! record's `eventTime` (since inclusive, until exclusive). A bound is RFC
//! 3339 with any offset, or a span counted back from now (`90s`, `15m`,
//! `24h`, `7d`). A record whose `eventTime` is missing or unparsable is kept
//! (and counted), never dropped: an attacker must not be able to hide a call
//! from a hunt by mangling its time.
//!
//! For `s3://` prefixes at the `CloudTrail/REGION/` level the window also
//! names the `YYYY/MM/DD/` day folders worth listing ([`Window::days`]).

use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime};

/// Where a finding's `eventTime` falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    Inside,
    Outside,
    /// No `eventTime`, or one that is not RFC 3339: kept.
    Undated,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

/// Parse one bound. `flag` names it in the error.
pub fn parse_bound(flag: &str, value: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let v = value.trim();
    let bad = |why: &str| {
        format!(
            "{flag} `{value}`: {why} (expected RFC 3339 such as 2026-11-20T10:00:00Z or \
             2026-11-20T12:00:00+02:00, or a span back from now such as 90s, 15m, 24h, 7d)"
        )
    };
    if let Some(unit) = v.chars().last().filter(|c| "smhd".contains(*c))
        && v.len() > 1
        && v[..v.len() - 1].bytes().all(|b| b.is_ascii_digit())
    {
        let n: i64 = v[..v.len() - 1]
            .parse()
            .map_err(|_| bad("the number is too large"))?;
        let secs = match unit {
            's' => Some(n),
            'm' => n.checked_mul(60),
            'h' => n.checked_mul(3600),
            _ => n.checked_mul(86_400),
        };
        return secs
            .and_then(|s| now.checked_sub(Duration::seconds(s)))
            .ok_or_else(|| bad("the span reaches past the earliest date supported"));
    }
    OffsetDateTime::parse(v, &Rfc3339).map_err(|e| bad(&e.to_string()))
}

impl Window {
    /// The window from the flags' values; `since` must come before `until`.
    pub fn from_flags(
        since: Option<&str>,
        until: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Window, String> {
        let since = since.map(|v| parse_bound("--since", v, now)).transpose()?;
        let until = until.map(|v| parse_bound("--until", v, now)).transpose()?;
        if let (Some(s), Some(u)) = (since, until)
            && s >= u
        {
            return Err(format!(
                "--since ({}) must be earlier than --until ({}): the window is empty",
                rfc3339(s),
                rfc3339(u)
            ));
        }
        Ok(Window { since, until })
    }

    pub fn is_open(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }

    /// Where `event_time` (a record's `eventTime`) falls.
    pub fn place(&self, event_time: Option<&str>) -> Placement {
        if self.is_open() {
            return Placement::Inside;
        }
        let Some(t) = event_time.and_then(|t| OffsetDateTime::parse(t.trim(), &Rfc3339).ok())
        else {
            return Placement::Undated;
        };
        let after_since = self.since.is_none_or(|s| t >= s);
        let before_until = self.until.is_none_or(|u| t < u);
        if after_since && before_until {
            Placement::Inside
        } else {
            Placement::Outside
        }
    }

    /// The UTC days whose CloudTrail folders can hold records of the window,
    /// first to last, or `None` when every day can (no `--since`). CloudTrail
    /// files are filed under the day they were written, minutes after their
    /// records; a day's margin on each side also covers files written across
    /// midnight. `now` ends a window without `--until`.
    pub fn days(&self, now: OffsetDateTime) -> Option<Vec<Date>> {
        let since = self.since?.to_offset(time::UtcOffset::UTC).date();
        let until = self.until.unwrap_or(now).to_offset(time::UtcOffset::UTC);
        let first = since.previous_day().unwrap_or(since);
        let last = until.date().next_day().unwrap_or(until.date());
        let mut days = Vec::new();
        let mut d = first;
        while d <= last {
            days.push(d);
            match d.next_day() {
                Some(n) => d = n,
                None => break,
            }
        }
        Some(days)
    }
}

/// `t` as RFC 3339 (for messages).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// The CloudTrail day folder of `d` (`YYYY/MM/DD/`).
pub fn day_folder(d: Date) -> String {
    format!("{:04}/{:02}/{:02}/", d.year(), u8::from(d.month()), d.day())
}

/// Whether `prefix` ends at the `CloudTrail/REGION/` level of a CloudTrail
/// key (`.../AWSLogs/[o-ORG/]ACCOUNT/CloudTrail/REGION/`), where the next
/// level is the year. The prefix with a trailing `/` when it does.
pub fn region_level(prefix: &str) -> Option<String> {
    let p = prefix.strip_suffix('/').unwrap_or(prefix);
    let (rest, region) = p.rsplit_once('/')?;
    let valid_region = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    (valid_region && (rest == "CloudTrail" || rest.ends_with("/CloudTrail")))
        .then(|| format!("{p}/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    const NOW: OffsetDateTime = datetime!(2026-11-20 12:00:00 UTC);

    #[test]
    fn relative_spans_count_back_from_now() {
        for (v, want) in [
            ("90s", datetime!(2026-11-20 11:58:30 UTC)),
            ("15m", datetime!(2026-11-20 11:45:00 UTC)),
            ("24h", datetime!(2026-11-19 12:00:00 UTC)),
            ("7d", datetime!(2026-11-13 12:00:00 UTC)),
        ] {
            assert_eq!(parse_bound("--since", v, NOW), Ok(want), "{v}");
        }
    }

    #[test]
    fn rfc3339_bounds_take_any_offset() {
        assert_eq!(
            parse_bound("--since", "2026-11-20T12:00:00+02:00", NOW),
            Ok(datetime!(2026-11-20 10:00:00 UTC))
        );
    }

    #[test]
    fn bad_bounds_name_the_flag_and_the_value() {
        for v in [
            "yesterday",
            "24",
            "h",
            "-5m",
            "2026-11-20",
            "99999999999999999999d",
        ] {
            let e = parse_bound("--until", v, NOW).unwrap_err();
            assert!(e.starts_with(&format!("--until `{v}`: ")), "{e}");
        }
    }

    #[test]
    fn since_is_inclusive_until_exclusive_and_undated_records_are_kept() {
        let w = Window::from_flags(
            Some("2026-11-20T10:00:00Z"),
            Some("2026-11-20T11:00:00Z"),
            NOW,
        )
        .unwrap();
        assert_eq!(w.place(Some("2026-11-20T10:00:00Z")), Placement::Inside);
        assert_eq!(
            w.place(Some("2026-11-20T12:59:59+02:00")),
            Placement::Inside
        );
        assert_eq!(w.place(Some("2026-11-20T11:00:00Z")), Placement::Outside);
        assert_eq!(w.place(Some("2026-11-20T09:59:59Z")), Placement::Outside);
        assert_eq!(w.place(None), Placement::Undated);
        assert_eq!(w.place(Some("last tuesday")), Placement::Undated);
    }

    #[test]
    fn an_empty_window_is_refused() {
        let e = Window::from_flags(Some("1h"), Some("2h"), NOW).unwrap_err();
        assert!(e.contains("must be earlier than --until"), "{e}");
    }

    #[test]
    fn days_cover_the_window_with_a_day_either_side() {
        let w = Window::from_flags(Some("2026-11-19T23:30:00-01:00"), None, NOW).unwrap();
        let days = w.days(NOW).unwrap();
        assert_eq!(days.first(), Some(&date!(2026 - 11 - 19)));
        assert_eq!(days.last(), Some(&date!(2026 - 11 - 21)));
        assert_eq!(days.len(), 3);
        assert_eq!(day_folder(date!(2026 - 01 - 05)), "2026/01/05/");
        assert_eq!(Window::default().days(NOW), None);
    }

    #[test]
    fn only_a_prefix_at_the_region_level_is_listed_by_day() {
        assert_eq!(
            region_level("logs/AWSLogs/o-abc/111122223333/CloudTrail/us-east-1/").as_deref(),
            Some("logs/AWSLogs/o-abc/111122223333/CloudTrail/us-east-1/")
        );
        assert_eq!(
            region_level("AWSLogs/111122223333/CloudTrail/eu-west-1").as_deref(),
            Some("AWSLogs/111122223333/CloudTrail/eu-west-1/")
        );
        for p in [
            "AWSLogs/111122223333/CloudTrail/",
            "AWSLogs/111122223333/CloudTrail/us-east-1/2026/",
            "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/",
            "",
        ] {
            assert_eq!(region_level(p), None, "{p}");
        }
    }
}
