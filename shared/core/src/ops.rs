//! The six governed MicroVM operations and eventName normalisation.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An operation that may only be performed through the launcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum GovernedOp {
    RunMicrovm,
    CreateMicrovmAuthToken,
    CreateMicrovmShellAuthToken,
    SuspendMicrovm,
    ResumeMicrovm,
    TerminateMicrovm,
}

/// Event sources under which MicroVM calls appear in CloudTrail. The second is
/// undocumented but tolerated.
pub const MICROVM_EVENT_SOURCES: [&str; 2] =
    ["lambda.amazonaws.com", "lambda-microvms.amazonaws.com"];

impl GovernedOp {
    pub const ALL: [GovernedOp; 6] = [
        GovernedOp::RunMicrovm,
        GovernedOp::CreateMicrovmAuthToken,
        GovernedOp::CreateMicrovmShellAuthToken,
        GovernedOp::SuspendMicrovm,
        GovernedOp::ResumeMicrovm,
        GovernedOp::TerminateMicrovm,
    ];

    /// The API operation name, as CloudTrail records it once normalised.
    pub fn as_str(self) -> &'static str {
        match self {
            GovernedOp::RunMicrovm => "RunMicrovm",
            GovernedOp::CreateMicrovmAuthToken => "CreateMicrovmAuthToken",
            GovernedOp::CreateMicrovmShellAuthToken => "CreateMicrovmShellAuthToken",
            GovernedOp::SuspendMicrovm => "SuspendMicrovm",
            GovernedOp::ResumeMicrovm => "ResumeMicrovm",
            GovernedOp::TerminateMicrovm => "TerminateMicrovm",
        }
    }

    /// The IAM action that authorises the operation.
    pub fn iam_action(self) -> &'static str {
        match self {
            GovernedOp::RunMicrovm => "lambda:RunMicrovm",
            GovernedOp::CreateMicrovmAuthToken => "lambda:CreateMicrovmAuthToken",
            GovernedOp::CreateMicrovmShellAuthToken => "lambda:CreateMicrovmShellAuthToken",
            GovernedOp::SuspendMicrovm => "lambda:SuspendMicrovm",
            GovernedOp::ResumeMicrovm => "lambda:ResumeMicrovm",
            GovernedOp::TerminateMicrovm => "lambda:TerminateMicrovm",
        }
    }

    /// Parse an exact operation name (no suffix).
    pub fn from_name(name: &str) -> Option<GovernedOp> {
        GovernedOp::ALL.into_iter().find(|op| op.as_str() == name)
    }

    /// Parse a CloudTrail `eventName`, accepting an optional date/version
    /// suffix `\d{8}(v\d+)?` (as older Lambda operations carry, e.g.
    /// `RunMicrovm20250909` or `RunMicrovm20250909v2`).
    pub fn from_event_name(event_name: &str) -> Option<GovernedOp> {
        GovernedOp::from_name(normalise_event_name(event_name))
    }
}

impl fmt::Display for GovernedOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Strip a trailing `\d{8}(v\d+)?` from a CloudTrail eventName. Names without
/// such a suffix are returned unchanged.
pub fn normalise_event_name(name: &str) -> &str {
    let b = name.as_bytes();
    let mut end = b.len();
    // optional trailing `v\d+`
    let digits_start = b
        .iter()
        .rposition(|c| !c.is_ascii_digit())
        .map_or(0, |p| p + 1);
    if digits_start < end && digits_start > 0 && b[digits_start - 1] == b'v' {
        end = digits_start - 1;
    }
    // exactly eight digits before `end`, after a non-empty, non-digit stem
    if end >= 9 {
        let stem_end = end - 8;
        if b[stem_end..end].iter().all(u8::is_ascii_digit) && !b[stem_end - 1].is_ascii_digit() {
            return &name[..stem_end];
        }
    }
    name
}

/// True when `source` is an eventSource under which MicroVM calls are logged.
pub fn is_microvm_event_source(source: &str) -> bool {
    MICROVM_EVENT_SOURCES.contains(&source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_parse() {
        for op in GovernedOp::ALL {
            assert_eq!(GovernedOp::from_event_name(op.as_str()), Some(op));
        }
    }

    #[test]
    fn date_and_version_suffixes_are_stripped() {
        assert_eq!(normalise_event_name("RunMicrovm20250909"), "RunMicrovm");
        assert_eq!(normalise_event_name("RunMicrovm20250909v2"), "RunMicrovm");
        assert_eq!(normalise_event_name("TagResource20170331v2"), "TagResource");
        assert_eq!(
            normalise_event_name("CreateFunction20150331"),
            "CreateFunction"
        );
        assert_eq!(
            GovernedOp::from_event_name("TerminateMicrovm20250909v12"),
            Some(GovernedOp::TerminateMicrovm)
        );
    }

    #[test]
    fn names_that_only_look_like_suffixes_are_kept() {
        assert_eq!(normalise_event_name("RunMicrovm"), "RunMicrovm");
        assert_eq!(normalise_event_name("Foo1234567"), "Foo1234567");
        // nine digits: not a date suffix
        assert_eq!(normalise_event_name("Run202509091"), "Run202509091");
        assert_eq!(normalise_event_name("RunMicrovmv2"), "RunMicrovmv2");
        assert_eq!(normalise_event_name("20250909"), "20250909");
        assert_eq!(normalise_event_name(""), "");
        assert_eq!(GovernedOp::from_event_name("GetMicrovm"), None);
        assert_eq!(GovernedOp::from_event_name("RunMicrovms"), None);
    }
}
