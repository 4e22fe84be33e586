//! `detector completions SHELL`: the built binary prints a completion script
//! for each shell that names every subcommand, and the bash script, loaded
//! into a real bash, completes subcommands and `scan --format` values.

use std::process::{Command, Output};

const SUBCOMMANDS: [&str; 4] = ["scan", "sweep", "handle", "completions"];

fn completions(shell: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_detector"))
        .args(["completions", shell])
        .output()
        .unwrap()
}

fn script(shell: &str) -> String {
    let out = completions(shell);
    assert!(
        out.status.success(),
        "detector completions {shell} exited {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "detector completions {shell} wrote to stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What bash's programmable completion offers for `line` (the cursor at its
/// end), with the script from `detector completions bash` loaded.
fn bash_complete(line: &str) -> Vec<String> {
    let script = script("bash");
    let driver = format!(
        r#"{script}
read -r -a COMP_WORDS <<< "$LINE"
case "$LINE" in *" ") COMP_WORDS+=("") ;; esac
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="$LINE"
COMP_POINT=${{#LINE}}
prev=""
if (( COMP_CWORD > 0 )); then prev="${{COMP_WORDS[COMP_CWORD-1]}}"; fi
fn=$(complete -p detector | sed -E 's/.*-F ([^ ]+).*/\1/')
"$fn" detector "${{COMP_WORDS[COMP_CWORD]}}" "$prev"
printf '%s\n' "${{COMPREPLY[@]}}"
"#
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &driver])
        .env("LINE", line)
        .output()
        .expect("bash must be installed to test the bash completion script");
    assert!(
        out.status.success(),
        "bash failed on the completion script: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_zsh_and_fish_scripts_are_printed_and_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let s = script(shell);
        for sub in SUBCOMMANDS {
            assert!(
                s.contains(sub),
                "the {shell} script does not mention `{sub}`:\n{s}"
            );
        }
        assert!(
            s.contains("launcher-role-arn"),
            "the {shell} script does not know `scan --launcher-role-arn`"
        );
    }
}

#[test]
fn each_shell_gets_its_own_script() {
    let bash = script("bash");
    let zsh = script("zsh");
    let fish = script("fish");
    assert!(bash.contains("complete -F _detector"), "bash: {bash}");
    assert!(zsh.starts_with("#compdef detector"), "zsh: {zsh}");
    assert!(fish.contains("complete -c detector"), "fish: {fish}");
}

#[test]
fn bash_completes_the_subcommands_from_their_prefix() {
    assert_eq!(bash_complete("detector sc"), ["scan"]);
    assert_eq!(bash_complete("detector sw"), ["sweep"]);
    assert_eq!(bash_complete("detector ha"), ["handle"]);
    let all = bash_complete("detector ");
    for sub in SUBCOMMANDS {
        assert!(all.iter().any(|w| w == sub), "`{sub}` not offered: {all:?}");
    }
}

#[test]
fn bash_completes_scan_format_values_and_the_shells_of_completions() {
    let formats = bash_complete("detector scan --format ");
    for f in ["jsonl", "table", "ocsf", "asff", "csv"] {
        assert!(
            formats.iter().any(|w| w == f),
            "`{f}` not offered: {formats:?}"
        );
    }
    let shells = bash_complete("detector completions ");
    for s in ["bash", "zsh", "fish"] {
        assert!(
            shells.iter().any(|w| w == s),
            "`{s}` not offered: {shells:?}"
        );
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error_that_names_it_and_the_choices() {
    let out = completions("tcsh");
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(out.stdout.is_empty(), "a script was printed for tcsh");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'tcsh'"), "{err}");
    assert!(
        err.contains("bash") && err.contains("zsh") && err.contains("fish"),
        "{err}"
    );
}
