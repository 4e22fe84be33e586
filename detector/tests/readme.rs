//! The README's `detector scan` examples, run as written on the bundled
//! fixtures: every `cargo run -q -p detector -- scan ...` command in README.md
//! is run with the built binary, and what it prints is compared with what
//! the README shows (the abridged finding lines, the stderr summary, and the
//! "prints N findings" of the inline examples).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const CARGO_RUN: &str = "cargo run -q -p detector -- ";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

/// Runs a README command line (`[cat FILE |] cargo run -q -p detector -- ARGS`)
/// from the repository root, with the built binary in place of `cargo run`.
fn run(line: &str) -> Output {
    let (stdin_file, cmd) = match line.split_once(" | ") {
        Some((cat, cmd)) => (Some(cat.strip_prefix("cat ").unwrap().trim()), cmd),
        None => (None, line),
    };
    let args = cmd
        .trim()
        .strip_prefix(CARGO_RUN.trim_end())
        .unwrap_or_else(|| panic!("not a README detector command: {line}"))
        .split_whitespace();
    let mut c = Command::new(env!("CARGO_BIN_EXE_detector"));
    c.args(args)
        .current_dir(root())
        .env_remove("LAUNCHER_ROLE_ARNS")
        .env_remove("LAUNCHER_SESSION_NAMES");
    match stdin_file {
        Some(f) => c.stdin(std::fs::File::open(root().join(f)).unwrap()),
        None => c.stdin(Stdio::null()),
    };
    c.output().unwrap()
}

/// The fenced blocks of `text`, in order, each as its lines.
fn blocks(text: &str) -> Vec<Vec<&str>> {
    let mut out = Vec::new();
    let mut cur: Option<Vec<&str>> = None;
    for line in text.lines() {
        if line.starts_with("```") {
            match cur.take() {
                Some(b) => out.push(b),
                None => cur = Some(Vec::new()),
            }
        } else if let Some(b) = cur.as_mut() {
            b.push(line);
        }
    }
    out
}

#[test]
fn quick_start_1_prints_the_findings_and_the_summary_the_readme_shows() {
    let text = readme();
    let section = text
        .split("## Quick start 1")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    let b = blocks(section);
    let [cmd, shown_findings, shown_summary] = &b[..3] else {
        panic!("the quick start has a command, its findings and its summary: {b:?}")
    };
    assert_eq!(cmd.len(), 1, "{cmd:?}");
    let out = run(cmd[0]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();

    // `... (N lines)` gives the count; each shown line is an abridged finding:
    // its ` ... `-separated pieces appear in that line, in order.
    let (count_line, abridged) = shown_findings.split_last().unwrap();
    let n: usize = count_line
        .strip_prefix("... (")
        .and_then(|r| r.strip_suffix(" lines)"))
        .unwrap_or_else(|| panic!("last shown line names the count: {count_line}"))
        .parse()
        .unwrap();
    assert_eq!(lines.len(), n, "{stdout}");
    for (i, shown) in abridged.iter().enumerate() {
        let actual = lines[i];
        let mut at = 0;
        for piece in shown.split(" ... ") {
            // The line's own `{`, `, ...}` and the separators' commas are the README's.
            let piece = piece
                .trim_start_matches('{')
                .trim_end_matches(['}', '.', ' ', ',']);
            let found = actual[at..].find(piece).unwrap_or_else(|| {
                panic!("README line {i}: {piece:?} not in (the rest of) {actual}")
            });
            at += found + piece.len();
        }
    }

    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim_end(), shown_summary.join("\n").trim_end());
}

#[test]
fn every_inline_scan_example_prints_the_number_of_findings_the_readme_names() {
    // The prose only (fenced blocks left out), as one line.
    let mut fenced = false;
    let text = readme()
        .lines()
        .filter(|l| {
            if l.starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mut checked = 0;
    let mut rest = text.as_str();
    // `COMMAND` ... prints N findings (the sentence around an inline example).
    while let Some(start) = rest.find('`') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('`') else { break };
        let code = &after[..end];
        rest = &after[end + 1..];
        if !code.contains(CARGO_RUN) {
            continue;
        }
        let Some(claim) = rest.trim_start().strip_prefix("prints ") else {
            continue;
        };
        let words: Vec<&str> = claim.split_whitespace().take(2).collect();
        let want: usize = match words[0] {
            "nothing" => 0,
            w => w.parse().unwrap_or_else(|_| panic!("prints {claim:.40}")),
        };
        let out = run(code);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{code}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = String::from_utf8(out.stdout).unwrap().lines().count();
        assert_eq!(got, want, "{code}");
        checked += 1;
    }
    assert!(
        checked >= 2,
        "the README's inline examples were found ({checked})"
    );
}
