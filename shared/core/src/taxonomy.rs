//! The event taxonomy (ARCHITECTURE.md, "Event taxonomy"). These names are what
//! Contro1 audit records carry in `action`, what structured log lines carry in
//! `event`, and what the security team filters on.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Event {
    #[serde(rename = "aws.microvm.run.requested")]
    RunRequested,
    #[serde(rename = "aws.microvm.run.approved")]
    RunApproved,
    #[serde(rename = "aws.microvm.run.denied")]
    RunDenied,
    #[serde(rename = "aws.microvm.run.created")]
    RunCreated,
    #[serde(rename = "aws.microvm.auth_token.requested")]
    AuthTokenRequested,
    #[serde(rename = "aws.microvm.auth_token.issued")]
    AuthTokenIssued,
    #[serde(rename = "aws.microvm.shell_token.requested")]
    ShellTokenRequested,
    #[serde(rename = "aws.microvm.shell_token.approved")]
    ShellTokenApproved,
    #[serde(rename = "aws.microvm.shell_token.denied")]
    ShellTokenDenied,
    #[serde(rename = "aws.microvm.suspend.requested")]
    SuspendRequested,
    #[serde(rename = "aws.microvm.resume.requested")]
    ResumeRequested,
    #[serde(rename = "aws.microvm.terminate.requested")]
    TerminateRequested,
    #[serde(rename = "aws.microvm.bypass.detected")]
    BypassDetected,
    #[serde(rename = "aws.microvm.unmanaged.detected")]
    UnmanagedDetected,
    #[serde(rename = "aws.microvm.detection.degraded")]
    DetectionDegraded,
    /// The control plane itself was changed: the launcher or detector
    /// function, the launcher role, the trail or a protected resource.
    #[serde(rename = "aws.microvm.governance.tampered")]
    GovernanceTampered,
}

impl Event {
    pub const ALL: [Event; 16] = [
        Event::RunRequested,
        Event::RunApproved,
        Event::RunDenied,
        Event::RunCreated,
        Event::AuthTokenRequested,
        Event::AuthTokenIssued,
        Event::ShellTokenRequested,
        Event::ShellTokenApproved,
        Event::ShellTokenDenied,
        Event::SuspendRequested,
        Event::ResumeRequested,
        Event::TerminateRequested,
        Event::BypassDetected,
        Event::UnmanagedDetected,
        Event::DetectionDegraded,
        Event::GovernanceTampered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::RunRequested => "aws.microvm.run.requested",
            Event::RunApproved => "aws.microvm.run.approved",
            Event::RunDenied => "aws.microvm.run.denied",
            Event::RunCreated => "aws.microvm.run.created",
            Event::AuthTokenRequested => "aws.microvm.auth_token.requested",
            Event::AuthTokenIssued => "aws.microvm.auth_token.issued",
            Event::ShellTokenRequested => "aws.microvm.shell_token.requested",
            Event::ShellTokenApproved => "aws.microvm.shell_token.approved",
            Event::ShellTokenDenied => "aws.microvm.shell_token.denied",
            Event::SuspendRequested => "aws.microvm.suspend.requested",
            Event::ResumeRequested => "aws.microvm.resume.requested",
            Event::TerminateRequested => "aws.microvm.terminate.requested",
            Event::BypassDetected => "aws.microvm.bypass.detected",
            Event::UnmanagedDetected => "aws.microvm.unmanaged.detected",
            Event::DetectionDegraded => "aws.microvm.detection.degraded",
            Event::GovernanceTampered => "aws.microvm.governance.tampered",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_match_as_str() {
        for e in Event::ALL {
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(json, format!("\"{}\"", e.as_str()));
            let back: Event = serde_json::from_str(&json).unwrap();
            assert_eq!(back, e);
        }
    }
}
