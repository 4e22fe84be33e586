//! `detector scan`'s flags for the administrator's paths (THREAT-MODEL.md
//! T11–T19), one per [`TamperList::ADMIN`] list, each also read from the
//! environment variable the Lambda reads (comma-separated; flags win).

use detector_core::{AdminConfig, TamperList};

#[derive(Debug, Default, clap::Args)]
pub struct AdminArgs {
    /// A governance stack, by name or ARN (repeatable; env GOVERNANCE_STACKS).
    /// Stack operations on it by anyone but a pipeline principal are
    /// findings naming who started them.
    #[arg(
        long = "governance-stack",
        value_name = "NAME_OR_ARN",
        env = "GOVERNANCE_STACKS",
        value_delimiter = ','
    )]
    pub governance_stacks: Vec<String>,
    /// The principal (role or user ARN) that deploys the governance stacks
    /// (repeatable; env PIPELINE_PRINCIPAL_ARNS): its changes are counted.
    #[arg(
        long = "pipeline-principal-arn",
        value_name = "ARN",
        env = "PIPELINE_PRINCIPAL_ARNS",
        value_delimiter = ','
    )]
    pub pipeline_principals: Vec<String>,
    /// A break-glass role (repeatable; env BREAK_GLASS_ROLE_ARNS): every
    /// session and every IAM change to it is a finding.
    #[arg(
        long = "break-glass-role-arn",
        value_name = "ARN",
        env = "BREAK_GLASS_ROLE_ARNS",
        value_delimiter = ','
    )]
    pub break_glass_roles: Vec<String>,
    /// An execution role approved MicroVMs run with (repeatable; env
    /// EXECUTION_ROLE_ARNS): IAM changes to it are findings.
    #[arg(
        long = "execution-role-arn",
        value_name = "ARN",
        env = "EXECUTION_ROLE_ARNS",
        value_delimiter = ','
    )]
    pub execution_roles: Vec<String>,
    /// The deny policy or permissions boundary, by ARN (repeatable; env
    /// PREVENTION_POLICY_ARNS): new versions, detachment, deletion are findings.
    #[arg(
        long = "prevention-policy-arn",
        value_name = "ARN",
        env = "PREVENTION_POLICY_ARNS",
        value_delimiter = ','
    )]
    pub prevention_policies: Vec<String>,
    /// An SCP, by id (p-...) or ARN (repeatable; env SCP_IDS): updates,
    /// detachment and deletion are findings.
    #[arg(
        long = "scp",
        value_name = "ID_OR_ARN",
        env = "SCP_IDS",
        value_delimiter = ','
    )]
    pub scps: Vec<String>,
    /// A Contro1 secret, by name, full ARN or ARN without its suffix
    /// (repeatable; env CONTRO1_SECRETS): any write is a finding.
    #[arg(
        long = "contro1-secret",
        value_name = "NAME_OR_ARN",
        env = "CONTRO1_SECRETS",
        value_delimiter = ','
    )]
    pub contro1_secrets: Vec<String>,
    /// The alert topic (repeatable; env ALERT_TOPIC_ARN): changes to it and
    /// its subscriptions are findings.
    #[arg(
        long = "alert-topic-arn",
        value_name = "ARN",
        env = "ALERT_TOPIC_ARN",
        value_delimiter = ','
    )]
    pub alert_topics: Vec<String>,
    /// The detector's log group, by name or ARN (repeatable; env
    /// DETECTOR_LOG_GROUPS): filters, deletion and foreign log lines are findings.
    #[arg(
        long = "detector-log-group",
        value_name = "NAME_OR_ARN",
        env = "DETECTOR_LOG_GROUPS",
        value_delimiter = ','
    )]
    pub detector_log_groups: Vec<String>,
    /// The detector's own role (repeatable; env DETECTOR_ROLE_ARNS): its log
    /// lines in --detector-log-group are its own.
    #[arg(
        long = "detector-role-arn",
        value_name = "ARN",
        env = "DETECTOR_ROLE_ARNS",
        value_delimiter = ','
    )]
    pub detector_roles: Vec<String>,
    /// The trail's bucket (repeatable; env TRAIL_BUCKETS): object writes by
    /// anyone but CloudTrail are findings (S3 data events).
    #[arg(
        long = "trail-bucket",
        value_name = "BUCKET",
        env = "TRAIL_BUCKETS",
        value_delimiter = ','
    )]
    pub trail_buckets: Vec<String>,
}

impl AdminArgs {
    /// The values given for `list`.
    pub fn values(&self, list: TamperList) -> Vec<String> {
        match list {
            TamperList::GovernanceStacks => &self.governance_stacks,
            TamperList::PipelinePrincipals => &self.pipeline_principals,
            TamperList::BreakGlassRoles => &self.break_glass_roles,
            TamperList::ExecutionRoles => &self.execution_roles,
            TamperList::PreventionPolicies => &self.prevention_policies,
            TamperList::Scps => &self.scps,
            TamperList::Contro1Secrets => &self.contro1_secrets,
            TamperList::AlertTopics => &self.alert_topics,
            TamperList::DetectorLogGroups => &self.detector_log_groups,
            TamperList::DetectorRoles => &self.detector_roles,
            TamperList::TrailBuckets => &self.trail_buckets,
            TamperList::LauncherFunctions
            | TamperList::DetectorFunctions
            | TamperList::DeploymentRoles
            | TamperList::ProtectedResources => return Vec::new(),
        }
        .clone()
    }

    /// Parsed; an error names the flag.
    pub fn parse(&self) -> Result<AdminConfig, String> {
        AdminConfig::parse(|l| self.values(l)).map_err(|e| format!("{}: {e}", e.list.flag()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[derive(Debug, clap::Parser)]
    struct Only {
        #[command(flatten)]
        admin: AdminArgs,
    }

    #[test]
    fn every_admin_list_is_a_flag_named_and_read_from_the_env_as_documented() {
        let cmd = Only::command();
        for list in TamperList::ADMIN {
            let long = list.flag().trim_start_matches("--");
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .unwrap_or_else(|| panic!("no {} flag", list.flag()));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(list.env()),
                "{}",
                list.flag()
            );
        }
    }
}
