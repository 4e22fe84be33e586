//! `detector scan`: reads files, directories (recursively), stdin and S3
//! prefixes, prints one finding per line (jsonl and the other line formats)
//! or a table on stdout, a summary (and progress, on a terminal) on stderr.
//! `--since`/`--until` keep the findings of a time window, `--follow` prints
//! each finding from stdin as soon as its record is read. Exit 0 when every
//! input was read, 2 when any could not be, 64 on usage.

use super::inputs::{self, Note};
use super::output::{AsffTarget, Format, Output};
use super::s3::{AwsOptions, S3Source, parse_url};
use super::summary::{Counts, summary};
use super::window::{Placement, Window, day_folder};
use super::{EXIT_BAD_INPUT, EXIT_USAGE};
use detector_core::parallel::{self, Delivery, InputError};
use detector_core::text::{FIELD_MAX, clean};
use detector_core::{
    Classifier, ClassifierConfig, ReadError, ResourceRef, ScanEvent, ScanOptions, ScanStats,
    Scanner, TamperConfig,
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
    #[command(flatten)]
    pub admin: super::admin_flags::AdminArgs,
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
    /// Only findings whose record's eventTime is at or after TIME: RFC 3339
    /// with any offset (2026-11-20T10:00:00Z) or a span back from now (90s,
    /// 15m, 24h, 7d). Records with no usable eventTime are kept and counted.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,
    /// Only findings whose record's eventTime is before TIME (exclusive);
    /// same forms as --since.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Read `-` (stdin, JSON Lines) as a stream and print each finding, and
    /// flush it, as soon as its record is read. Not with --format table.
    #[arg(long)]
    pub follow: bool,
    /// AWS region for s3:// inputs (default: AWS_REGION, then the profile's).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Named profile (~/.aws/config, ~/.aws/credentials) for s3:// inputs
    /// (default: AWS_PROFILE, then the default chain).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Largest record accepted, in bytes. An input holding a larger record
    /// is read up to it, with a warning naming this flag (exit status 2).
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
    tamper.admin = args.admin.parse()?;
    let organization_accounts = detector::accounts::parse(&args.organization_accounts)
        .map_err(|e| format!("--organization-accounts: {e}"))?;
    Ok(ClassifierConfig {
        launcher_roles,
        launcher_session_names,
        organization_accounts,
        tamper,
    })
}

/// The flags that must agree with each other and with the paths.
fn check_usage(args: &ScanArgs) -> Result<(), String> {
    for p in &args.paths {
        if p.starts_with("s3://") && parse_url(p).is_none() {
            return Err(format!("`{p}` is not an s3://bucket/prefix URL"));
        }
    }
    if args.follow && args.paths != ["-"] {
        return Err(format!(
            "--follow reads stdin only: give `-` as the only PATH (got {})",
            args.paths.join(" ")
        ));
    }
    if args.follow && args.format == Format::Table {
        return Err(
            "--follow prints each finding as it is read, --format table needs every row first: use --format jsonl, ocsf, asff or csv"
                .to_string(),
        );
    }
    Ok(())
}

pub fn run(args: &ScanArgs) -> ExitCode {
    let usage = |msg: String| {
        eprintln!("detector scan: {msg}");
        ExitCode::from(EXIT_USAGE)
    };
    let cfg = match classifier_config(args) {
        Ok(cfg) => cfg,
        Err(msg) => return usage(msg),
    };
    if let Err(msg) = check_usage(args) {
        return usage(msg);
    }
    let now = time::OffsetDateTime::now_utc();
    let window = match Window::from_flags(args.since.as_deref(), args.until.as_deref(), now) {
        Ok(w) => w,
        Err(msg) => return usage(msg),
    };
    let any_s3 = args.paths.iter().any(|p| p.starts_with("s3://"));
    if !any_s3 {
        for (flag, given) in [("--region", &args.region), ("--profile", &args.profile)] {
            if given.is_some() {
                eprintln!(
                    "detector scan: warning: {flag} applies to s3:// inputs only; none given"
                );
            }
        }
    }
    let s3 = if any_s3 {
        let aws = AwsOptions {
            region: args.region.clone(),
            profile: args.profile.clone(),
        };
        match S3Source::new(&aws) {
            Ok(s3) => Some(s3),
            Err(msg) => return usage(msg),
        }
    } else {
        None
    };
    if cfg.launcher_roles.is_empty() {
        eprintln!(
            "detector scan: warning: no launcher role given (--launcher-role-arn or LAUNCHER_ROLE_ARNS); every governed call will be reported"
        );
    }
    let opts = ScanOptions {
        max_record_bytes: args.max_record_bytes,
        max_input_bytes: args.max_input_bytes,
    };
    let threads = parallel::threads_for(&opts);
    let mut scanner = Scanner::new(Classifier::new(cfg), opts);
    let mut run = Run {
        out: Output::new(
            args.format,
            AsffTarget {
                account_id: args.security_hub_account.clone(),
                region: args.security_hub_region.clone(),
            },
            args.follow,
        ),
        window,
        counts: Counts::default(),
        progress: (io::stderr().is_terminal() && !args.follow)
            .then(|| (Instant::now(), Progress::default())),
    };
    if args.follow {
        // On this thread, record by record: the parallel reader would hold
        // findings back in bundles until its input ends.
        let result = scanner.scan_reader(io::stdin().lock(), "-", |ev| {
            run.deliver(Delivery::Event(ev));
        });
        run.deliver(Delivery::Done {
            source: "-".to_string(),
            result: result.map_err(InputError::Read),
        });
    } else {
        let days: Option<Vec<String>> = window
            .days(now)
            .map(|days| days.into_iter().map(day_folder).collect());
        scanner.scan_inputs(
            threads,
            |emit| inputs::produce(&args.paths, s3.as_ref(), days.as_deref(), emit),
            |d| run.deliver(d),
        );
    }
    run.finish(scanner.stats())
}

/// A message on one line, attacker-controlled parts (keys, paths, record
/// text in errors) escaped.
fn line(s: &str) -> String {
    clean(s, 4096)
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
    window: Window,
    counts: Counts,
    /// Last progress line and its counts, when stderr is a terminal.
    progress: Option<(Instant, Progress)>,
}

impl Run {
    fn input_failed(&mut self, input: &str, what: &str) {
        self.counts.bad_inputs += 1;
        eprintln!("error: {}", line(&format!("{input}: {what}")));
    }

    fn deliver(&mut self, d: Delivery<Note>) {
        match d {
            Delivery::Event(ScanEvent::Finding(f)) => {
                match self.window.place(f.event_time.as_deref()) {
                    Placement::Outside => {
                        self.counts.outside_window += 1;
                        return;
                    }
                    Placement::Undated => self.counts.undated += 1,
                    Placement::Inside => {}
                }
                if let Some((_, p)) = &mut self.progress {
                    p.findings += 1;
                }
                self.out.finding(f);
            }
            Delivery::Event(ScanEvent::RecordError(e)) => {
                eprintln!("error: {}", line(&e.to_string()));
            }
            Delivery::Event(ScanEvent::Managed(_)) => {}
            Delivery::Done { source, result } => {
                match result {
                    Ok(report) => {
                        if report.record_errors > 0 {
                            self.counts.bad_inputs += 1;
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
                    Err(InputError::Read(ReadError::RecordTooLarge {
                        input,
                        offset,
                        limit,
                    })) => {
                        self.counts.bad_inputs += 1;
                        self.counts.too_large += 1;
                        let suggest = limit.saturating_mul(4);
                        eprintln!(
                            "detector scan: warning: {}",
                            line(&format!(
                                "{input}: 1 record larger than --max-record-bytes {limit} (at byte {offset}); the rest of this input was not read: rerun with a larger value, e.g. --max-record-bytes {suggest}"
                            ))
                        );
                    }
                    Err(InputError::Read(e)) => {
                        self.counts.bad_inputs += 1;
                        eprintln!("error: {}", line(&e.to_string()));
                    }
                }
                self.tick();
            }
            Delivery::Note(Note::Failed { input, message }) => self.input_failed(&input, &message),
            Delivery::Note(Note::Ignored) => self.counts.ignored += 1,
            Delivery::Note(Note::Warning(w)) => {
                eprintln!("detector scan: warning: {}", line(&w));
            }
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
        if let Err(e) = &write_result
            && super::output::reader_gone(e)
        {
            // `detector scan ... | head`: the reader has what it wanted.
            return ExitCode::SUCCESS;
        }
        eprint!("{}", summary(stats, &self.counts));
        if let Err(e) = write_result {
            eprintln!("error: writing findings to stdout: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        if self.out.unplaced > 0 {
            eprintln!(
                "error: {} finding(s) could not be encoded as ASFF (named above)",
                self.out.unplaced
            );
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        if self.counts.bad_inputs > 0 {
            ExitCode::from(EXIT_BAD_INPUT)
        } else {
            ExitCode::SUCCESS
        }
    }
}
