//! `detector completions SHELL`: the shell completion script for the whole
//! command line, generated from the same clap definition the binary parses,
//! so it never falls out of step with the subcommands and flags.

use clap::CommandFactory;
use clap_complete::Shell;
use std::io::{self, Write};
use std::process::ExitCode;

/// Exit status when the script could not be written to stdout.
pub const EXIT_WRITE_FAILED: u8 = 1;

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to write the completion script for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// The completion script for `shell`, for a binary named `detector`.
pub fn script(shell: Shell) -> Vec<u8> {
    let mut cmd = super::Cli::command();
    let mut buf = Vec::new();
    // Generating into memory cannot fail; writing to stdout can, and is
    // reported below instead of panicking inside the generator.
    clap_complete::generate(shell, &mut cmd, "detector", &mut buf);
    buf
}

/// Print the script on stdout.
pub fn run(args: &CompletionsArgs) -> ExitCode {
    let mut out = io::stdout().lock();
    match out
        .write_all(&script(args.shell))
        .and_then(|()| out.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "detector completions: writing the {} script to stdout: {e}",
                args.shell
            );
            ExitCode::from(EXIT_WRITE_FAILED)
        }
    }
}
