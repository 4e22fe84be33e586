//! `detector`: command-line entry point. Everything lives in [`cli`]; this
//! file only hands over the exit status.
#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
