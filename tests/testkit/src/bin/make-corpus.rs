//! `make-corpus OUT [--records N] [--per-file M] [--microvm-every K] [--seed S] [--source DIR]`:
//! writes a CloudTrail corpus resampled from real records (testkit::corpus), with
//! `expected-findings.jsonl` and `corpus.json` beside it, and prints the summary.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use testkit::corpus::{CorpusOptions, generate};

const USAGE: &str = "usage: make-corpus OUT [--records N] [--per-file M] [--microvm-every K] \
[--seed S] [--source DIR]
  Resamples the real CloudTrail records under DIR (default: the repository's tests/data/cloudtrail)
  into gzip log files under OUT/AWSLogs/, and writes OUT/expected-findings.jsonl (every finding
  `detector scan` must report) and OUT/corpus.json. Same arguments, same bytes.
  Defaults: --records 200000 --per-file 2000 --microvm-every 5000 --seed 7";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("make-corpus: {e}");
            ExitCode::from(64)
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut opts = CorpusOptions::default();
    let mut out = None;
    let mut source = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        let number = |name: &str, v: String| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n > 0 || name == "--seed")
                .ok_or(format!("{name} {v:?}: expected a positive whole number"))
        };
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "--records" => opts.records = number(&a, value(&a)?)?,
            "--per-file" => opts.per_file = number(&a, value(&a)?)?,
            "--microvm-every" => opts.microvm_every = number(&a, value(&a)?)?,
            "--seed" => opts.seed = number(&a, value(&a)?)?,
            "--source" => source = Some(PathBuf::from(value(&a)?)),
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}")),
            _ if out.is_none() => out = Some(PathBuf::from(a)),
            _ => {
                return Err(format!(
                    "one output directory only, got a second: {a}\n{USAGE}"
                ));
            }
        }
    }
    let out = out.ok_or(format!("missing OUT\n{USAGE}"))?;
    let source = source.unwrap_or_else(testkit::test_data_dir);
    let summary = generate(&out, &source, &opts).map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string(&summary).map_err(|e| e.to_string())?
    );
    Ok(())
}
