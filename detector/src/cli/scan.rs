//! `detector scan`: the CLI contract of issue 2. Reads files, directories
//! (recursively), stdin and S3 prefixes, prints one finding per line (jsonl)
//! or a table on stdout, a summary (and progress, on a terminal) on stderr.
//! Exit 0 when every input was read, 2 when any could not be, 64 on usage.

use super::inputs::{self, Note};
use super::output::{AsffTarget, Format, Output};
use super::s3::{S3Source, parse_url};
use super::{EXIT_BAD_INPUT, EXIT_USAGE};
use detector_core::parallel::{self, Delivery, InputError};
use detector_core::text::{FIELD_MAX, clean};
use detector_core::{
    Classifier, ClassifierConfig, ResourceRef, ScanEvent, ScanOptions, ScanStats, Scanner,
    TamperConfig,
};
use shared_core::RoleRef;
use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// IAM role ARN the launcher runs as (repeatable; env LAUNCHER_ROLE_ARNS,
    /// comma-separated; flags win).
    #[arg(
        long = "launcher-role-arn",
        value_name = "ARN",
        env = "LAUNCHER_ROLE_ARNS",
        value_delimiter = ','
    )]
    pub launcher_role_arns: Vec<String>,
    /// Session name the launcher uses (repeatable; env LAUNCHER_SESSION_NAMES,
    /// comma-separated; flags win). When set, other sessions of the launcher
    /// role are findings.
    #[arg(
        long = "launcher-session-name",
        value_name = "NAME",
        env = "LAUNCHER_SESSION_NAMES",
        value_delimiter = ','
    )]
    pub launcher_session_names: Vec<String>,
    /// The launcher function, by name or ARN (repeatable; env
    /// LAUNCHER_FUNCTIONS). Any change to it is a finding.
    #[arg(
        long = "launcher-function",
        value_name = "NAME_OR_ARN",
        env = "LAUNCHER_FUNCTIONS",
        value_delimiter = ','
    )]
    pub launcher_functions: Vec<String>,
    /// The detector function, by name or ARN (repeatable; env
    /// DETECTOR_FUNCTIONS). Any change to it is a finding.
    #[arg(
        long = "detector-function",
        value_name = "NAME_OR_ARN",
        env = "DETECTOR_FUNCTIONS",
        value_delimiter = ','
    )]
    pub detector_functions: Vec<String>,
    /// A role whose control-plane changes are expected (the deployment role;
    /// repeatable; env DEPLOYMENT_ROLE_ARNS): counted, not reported.
    #[arg(
        long = "deployment-role-arn",
        value_name = "ARN",
        env = "DEPLOYMENT_ROLE_ARNS",
        value_delimiter = ','
    )]
    pub deployment_role_arns: Vec<String>,
    /// A resource the pipeline depends on, by name or ARN (repeatable; env
    /// PROTECTED_RESOURCES): any mutating call naming it is a finding.
    #[arg(
        long = "protected-resource",
        value_name = "NAME_OR_ARN",
        env = "PROTECTED_RESOURCES",
        value_delimiter = ','
    )]
    pub protected_resources: Vec<String>,
    /// The launcher's ledger table (repeatable; env LEDGER_TABLE): item
    /// writes by anyone but the launcher role are findings (where DynamoDB
    /// data events are logged); it is also a protected resource.
    #[arg(
        long = "ledger-table",
        value_name = "NAME_OR_ARN",
        env = "LEDGER_TABLE",
        value_delimiter = ','
    )]
    pub ledger_tables: Vec<String>,
    /// Only changes to these trails are findings (repeatable; env
    /// TRAIL_NAMES); all trails when not given.
    #[arg(
        long = "trail-name",
        value_name = "NAME_OR_ARN",
        env = "TRAIL_NAMES",
        value_delimiter = ','
    )]
    pub trail_names: Vec<String>,
    /// The organization's accounts (repeatable; ids, comma-separated ids, or
    /// a file of ids or of `aws organizations list-accounts` JSON; env
    /// ORGANIZATION_ACCOUNTS). Governed calls recorded for any other account
    /// are `account-outside-organization` findings.
    #[arg(
        long = "organization-accounts",
        value_name = "FILE|ID,...",
        env = "ORGANIZATION_ACCOUNTS",
        value_delimiter = ','
    )]
    pub organization_accounts: Vec<String>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// With --format asff: the Security Hub account the findings go to
    /// (default: each finding's own account).
    #[arg(long, value_name = "ACCOUNT_ID")]
    pub security_hub_account: Option<String>,
    /// With --format asff: the Security Hub region (default: each finding's
    /// own region).
    #[arg(long, value_name = "REGION")]
    pub security_hub_region: Option<String>,
    /// Largest record accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = ScanOptions::default().max_record_bytes)]
    pub max_record_bytes: usize,
    /// Largest input accepted, in uncompressed bytes.
    #[arg(long, value_name = "BYTES", default_value_t = ScanOptions::default().max_input_bytes)]
    pub max_input_bytes: u64,
    /// Files, directories (recursive), `-` for stdin, or s3://bucket/prefix.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<String>,
}

/// The classifier configuration from the flags (or env), validated.
pub fn classifier_config(args: &ScanArgs) -> Result<ClassifierConfig, String> {
    let mut launcher_roles = Vec::new();
    for arn in args.launcher_role_arns.iter().map(|s| s.trim()) {
        if arn.is_empty() {
            continue;
        }
        launcher_roles
            .push(RoleRef::from_role_arn(arn).map_err(|e| format!("--launcher-role-arn: {e}"))?);
    }
    let launcher_session_names = args
        .launcher_session_names
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut tamper = TamperConfig::parse(
        &args.launcher_functions,
        &args.detector_functions,
        &args.deployment_role_arns,
        &args.protected_resources,
    )
    .map_err(|e| format!("{}: {e}", e.list.flag()))?;
    for table in args
        .ledger_tables
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        let table = ResourceRef::parse(table)
            .ok_or_else(|| format!("--ledger-table: `{table}` is not a table name or ARN"))?;
        tamper.ledger_tables.push(table.clone());
        tamper.protected_resources.push(table);
    }
    tamper.trail_names = args
        .trail_names
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let organization_accounts = detector::accounts::parse(&args.organization_accounts)
        .map_err(|e| format!("--organization-accounts: {e}"))?;
    Ok(ClassifierConfig {
        launcher_roles,
        launcher_session_names,
        organization_accounts,
        tamper,
    })
}

pub fn run(args: &ScanArgs) -> ExitCode {
    let cfg = match classifier_config(args) {
        Ok(cfg) => cfg,
        Err(msg) => {
            eprintln!("detector scan: {msg}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    for p in &args.paths {
        if p.starts_with("s3://") && parse_url(p).is_none() {
            eprintln!("detector scan: `{p}` is not an s3://bucket/prefix URL");
            return ExitCode::from(EXIT_USAGE);
        }
    }
    if cfg.launcher_roles.is_empty() {
        eprintln!(
            "detector scan: warning: no launcher role given (--launcher-role-arn or LAUNCHER_ROLE_ARNS); every governed call will be reported"
        );
    }
    let opts = ScanOptions {
        max_record_bytes: args.max_record_bytes,
        max_input_bytes: args.max_input_bytes,
    };
    let s3 = args
        .paths
        .iter()
        .any(|p| p.starts_with("s3://"))
        .then(|| S3Source::new().map_err(|e| format!("{e:#}")));
    let threads = parallel::threads_for(&opts);
    let mut scanner = Scanner::new(Classifier::new(cfg), opts);
    let mut run = Run {
        out: Output::new(
            args.format,
            AsffTarget {
                account_id: args.security_hub_account.clone(),
                region: args.security_hub_region.clone(),
            },
            false,
        ),
        ignored: 0,
        bad_inputs: 0,
        progress: io::stderr()
            .is_terminal()
            .then(|| (Instant::now(), Progress::default())),
    };
    scanner.scan_inputs(
        threads,
        |emit| inputs::produce(&args.paths, s3.as_ref(), emit),
        |d| run.deliver(d),
    );
    run.finish(scanner.stats())
}

/// Counts for the progress line.
#[derive(Default)]
struct Progress {
    files: u64,
    records: u64,
    findings: u64,
}

/// What the scan hands back, in input order: findings to stdout, errors and
/// the summary to stderr.
struct Run {
    out: Output,
    ignored: u64,
    bad_inputs: u64,
    /// Last progress line and its counts, when stderr is a terminal.
    progress: Option<(Instant, Progress)>,
}

impl Run {
    fn input_failed(&mut self, input: &str, what: &str) {
        self.bad_inputs += 1;
        eprintln!("error: {input}: {what}");
    }

    fn deliver(&mut self, d: Delivery<Note>) {
        match d {
            Delivery::Event(ScanEvent::Finding(f)) => {
                if let Some((_, p)) = &mut self.progress {
                    p.findings += 1;
                }
                self.out.finding(f);
            }
            Delivery::Event(ScanEvent::RecordError(e)) => eprintln!("error: {e}"),
            Delivery::Event(ScanEvent::Managed(_)) => {}
            Delivery::Done { source, result } => {
                match result {
                    Ok(report) => {
                        if report.record_errors > 0 {
                            self.bad_inputs += 1;
                        }
                        if report.not_cloudtrail > 0 {
                            eprintln!(
                                "detector scan: warning: {}: {} JSON object(s) that are not CloudTrail records (no eventVersion, eventSource, eventName, eventID or eventTime): skipped",
                                clean(&source, FIELD_MAX),
                                report.not_cloudtrail
                            );
                        }
                        if let Some((_, p)) = &mut self.progress {
                            p.files += 1;
                            p.records += report.records;
                        }
                    }
                    Err(InputError::Open(what)) => self.input_failed(&source, &what),
                    Err(InputError::Read(e)) => {
                        self.bad_inputs += 1;
                        eprintln!("error: {e}");
                    }
                }
                self.tick();
            }
            Delivery::Note(Note::Failed { input, message }) => self.input_failed(&input, &message),
            Delivery::Note(Note::Ignored) => self.ignored += 1,
            Delivery::Note(Note::Warning(w)) => eprintln!("detector scan: warning: {w}"),
        }
    }

    fn tick(&mut self) {
        if let Some((last, p)) = &mut self.progress
            && last.elapsed() > Duration::from_millis(250)
        {
            eprint!(
                "\r\x1b[Kscanning: {} files, {} records, {} findings",
                p.files, p.records, p.findings
            );
            *last = Instant::now();
        }
    }

    fn finish(mut self, stats: &ScanStats) -> ExitCode {
        if self.progress.is_some() {
            eprint!("\r\x1b[K");
        }
        let write_result = self.out.finish();
        eprint!("{}", summary(stats, self.ignored, self.bad_inputs));
        if let Err(e) = write_result {
            eprintln!("error: writing findings to stdout: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        if self.bad_inputs > 0 {
            ExitCode::from(EXIT_BAD_INPUT)
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// `name N` for each non-zero count, joined.
fn nonzero(items: &[(&str, u64)]) -> String {
    items
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{n} {name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The stderr summary: the totals, then only the counters that are not zero.
pub fn summary(s: &ScanStats, ignored: u64, bad_inputs: u64) -> String {
    let mut out = format!(
        "detector scan: {} files read ({} ignored), {} records ({} MB), {} governed calls ({} managed), {} control-plane changes, {} findings\n",
        s.files,
        ignored,
        s.records,
        s.bytes / 1_000_000,
        s.governed,
        s.managed,
        s.control_plane,
        s.total_findings()
    );
    if !s.findings.is_empty() {
        let by_rule: Vec<String> = s
            .findings
            .iter()
            .map(|(rule, n)| format!("{rule} {n}"))
            .collect();
        out += &format!("  findings by rule: {}\n", by_rule.join(", "));
    }
    let not_reported = nonzero(&[
        ("by a deployment role", s.changes_by_deployment),
        ("by an AWS service", s.changes_by_aws_service),
        (
            "selector changes keeping MicroVM coverage",
            s.selector_changes_keeping_coverage,
        ),
    ]);
    if !not_reported.is_empty() {
        out += &format!("  changes not reported: {not_reported}\n");
    }
    let skipped = nonzero(&[
        ("digest files", s.skipped_digest_files),
        ("insight records", s.skipped_insight_records),
        ("JSON objects not CloudTrail", s.not_cloudtrail),
        ("duplicate events", s.duplicates),
    ]);
    if !skipped.is_empty() {
        out += &format!("  skipped: {skipped}\n");
    }
    let errors = nonzero(&[
        ("inputs unreadable", s.input_errors),
        ("records unreadable", s.record_errors),
        ("inputs with errors", bad_inputs),
    ]);
    if !errors.is_empty() {
        out += &format!("  errors: {errors}\n");
    }
    out
}
