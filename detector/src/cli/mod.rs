//! The `detector` command line: one clap `Subcommand` per job. `scan` reads
//! CloudTrail from files, stdin or S3 and prints bypass findings; the Lambda
//! jobs (`sweep`, `handle`) slot in beside it as further variants, and
//! `completions` prints a shell completion script.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub mod admin_flags;
pub mod completions;
pub mod inputs;
pub mod lambda;
pub mod output;
pub mod s3;
pub mod scan;
pub mod summary;
pub mod window;

/// Exit status for a usage error (BSD `EX_USAGE`).
pub const EXIT_USAGE: u8 = 64;
/// Exit status when some input could not be read or parsed.
pub const EXIT_BAD_INPUT: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "detector",
    version,
    about = "Finds Lambda MicroVM calls that bypassed the governed launcher"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan CloudTrail logs (files, directories, `-`, s3://bucket/prefix)
    /// and print one finding per bypassing MicroVM call.
    Scan(scan::ScanArgs),
    /// Run the detector Lambda's scheduled sweep once (ListMicrovms against
    /// the ledger, remediation if configured, trail health); see LAMBDA.md.
    Sweep(lambda::SweepArgs),
    /// Run the detector Lambda's handler once on an invocation payload (any
    /// trigger shape); see LAMBDA.md.
    Handle(lambda::HandleArgs),
    /// Print every rule `detector scan` can report, one a line, with the
    /// event it is reported as.
    Rules,
    /// Print a shell completion script (bash, zsh, fish, elvish,
    /// powershell) on stdout; see docs/install.md.
    Completions(completions::CompletionsArgs),
}

/// Parse the command line and run the chosen job.
pub fn main() -> ExitCode {
    // Inside Lambda, without arguments: the runtime loop.
    if lambda::in_lambda() && std::env::args_os().len() <= 1 {
        return lambda::exit(lambda::run_lambda().map(|()| 0));
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS // --help, --version
            };
        }
    };
    match cli.command {
        Command::Scan(args) => scan::run(&args),
        Command::Sweep(args) => lambda::exit(lambda::sweep(&args)),
        Command::Handle(args) => lambda::exit(lambda::handle_file(&args)),
        Command::Rules => {
            for rule in detector_core::Rule::FROM_RECORDS {
                println!("{rule}\t{}", rule.event());
            }
            ExitCode::SUCCESS
        }
        Command::Completions(args) => completions::run(&args),
    }
}
