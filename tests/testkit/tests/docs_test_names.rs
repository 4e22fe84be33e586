//! Every test a document names exists: in the repository's Markdown, a code
//! span `path/to/file.rs::name` (or `file.rs::module::name`) must name a file
//! that defines `fn name`, and a following span `::other` on the same line
//! names another function of that file. A renamed test leaves its document
//! pointing at nothing; this keeps the claims in docs/guarantees.md and the
//! READMEs attached to the tests that prove them.

use std::path::{Path, PathBuf};
use testkit::workspace_dir as root;

/// The Markdown files a user reads: the READMEs at the top and one level
/// down, and everything under docs/.
fn documents() -> Vec<PathBuf> {
    let root = root();
    let mut out = vec![root.join("README.md"), root.join("DEVELOPERS.md")];
    for dir in [
        "docs", "launcher", "detector", "infra", "agent", "tests", "shared",
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    out.retain(|p| p.is_file());
    out.sort();
    out
}

/// The code spans of one line of Markdown.
fn spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The (document line, file, function) references of one document.
fn references(doc: &Path) -> Vec<(usize, String, String)> {
    let text = std::fs::read_to_string(doc).unwrap();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut file: Option<String> = None;
        for span in spans(line) {
            if let Some((path, rest)) = span.split_once(".rs::") {
                let name = rest.rsplit("::").next().unwrap_or_default();
                if is_ident(name) && !path.contains(' ') {
                    let f = format!("{path}.rs");
                    out.push((n + 1, f.clone(), name.to_string()));
                    file = Some(f);
                    continue;
                }
            }
            match (span.strip_prefix("::"), &file) {
                (Some(name), Some(f)) if is_ident(name) => {
                    out.push((n + 1, f.clone(), name.to_string()));
                }
                _ => file = None,
            }
        }
    }
    out
}

#[test]
fn every_test_a_document_names_is_defined_in_the_file_it_names() {
    let root = root();
    let mut checked = 0;
    let mut missing = Vec::new();
    for doc in documents() {
        let shown = doc
            .strip_prefix(&root)
            .unwrap_or(&doc)
            .display()
            .to_string();
        for (line, file, name) in references(&doc) {
            checked += 1;
            let source = std::fs::read_to_string(root.join(&file)).unwrap_or_default();
            let defined = source.lines().any(|l| {
                let l = l.trim_start();
                ["fn ", "async fn ", "pub fn ", "pub async fn "]
                    .iter()
                    .any(|p| {
                        l.strip_prefix(p)
                            .is_some_and(|r| r.starts_with(&format!("{name}(")))
                    })
            });
            if !defined {
                missing.push(format!("{shown}:{line}: {file} defines no `fn {name}`"));
            }
        }
    }
    assert!(
        checked >= 50,
        "only {checked} test references found: is the parser still reading the documents?"
    );
    assert!(
        missing.is_empty(),
        "{} of {checked} named tests do not exist:\n{}",
        missing.len(),
        missing.join("\n")
    );
}

#[test]
fn the_reference_parser_reads_a_file_then_its_siblings() {
    let dir = std::env::temp_dir().join(format!("docs-test-names-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let doc = dir.join("x.md");
    std::fs::write(
        &doc,
        "| a | `launcher/tests/http.rs::one`, `::two` and `crate::path` |\n| b | `x.rs::m::three` `::` |\n",
    )
    .unwrap();
    let refs = references(&doc);
    std::fs::remove_dir_all(&dir).unwrap();
    let want = |l: usize, f: &str, n: &str| (l, f.to_string(), n.to_string());
    assert_eq!(
        refs,
        vec![
            want(1, "launcher/tests/http.rs", "one"),
            want(1, "launcher/tests/http.rs", "two"),
            want(2, "x.rs", "three"),
        ]
    );
}
