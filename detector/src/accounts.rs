//! AWS account lists as operators give them (`--organization-accounts`,
//! `ORGANIZATION_ACCOUNTS`, `--account`, `SWEEP_ACCOUNTS`): account ids
//! separated by commas or whitespace, or files holding them — one per line,
//! or the JSON `aws organizations list-accounts` prints.

use std::path::Path;

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Every account id in `values` (each an id, a list of ids, or a file),
/// sorted and de-duplicated. The error names the value that is neither.
pub fn parse(values: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for v in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        if Path::new(v).is_file() {
            let text = std::fs::read_to_string(v).map_err(|e| format!("`{v}`: {e}"))?;
            out.extend(from_text(&text).map_err(|e| format!("`{v}`: {e}"))?);
        } else {
            for id in v.split([',', ' ', '\n', '\t']).filter(|s| !s.is_empty()) {
                if !is_account(id) {
                    return Err(format!(
                        "`{id}` is neither a 12-digit account id nor a readable file"
                    ));
                }
                out.push(id.to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The account ids of a file's text: `list-accounts` JSON, or ids one per
/// line (blank lines and `#` comments ignored).
fn from_text(text: &str) -> Result<Vec<String>, String> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text)
        && let Some(accounts) = v.get("Accounts").and_then(|a| a.as_array())
    {
        return accounts
            .iter()
            .map(|a| {
                a.get("Id")
                    .and_then(|i| i.as_str())
                    .filter(|i| is_account(i))
                    .map(str::to_string)
                    .ok_or_else(|| format!("an entry of `Accounts` has no 12-digit `Id`: {a}"))
            })
            .collect();
    }
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(n, l)| {
            is_account(l)
                .then(|| l.to_string())
                .ok_or_else(|| format!("line {}: `{l}` is not a 12-digit account id", n + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_lists_and_files_in_both_shapes_are_read() {
        let dir = std::env::temp_dir().join(format!("accounts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lines = dir.join("accounts.txt");
        std::fs::write(&lines, "# prod\n111122223333\n\n444455556666 # dev\n").unwrap();
        let json = dir.join("list-accounts.json");
        std::fs::write(
            &json,
            r#"{"Accounts": [{"Id": "777788889999", "Name": "x"}, {"Id": "111122223333"}]}"#,
        )
        .unwrap();
        let got = parse(&[
            "222233334444, 111122223333".into(),
            lines.display().to_string(),
            json.display().to_string(),
        ])
        .unwrap();
        assert_eq!(
            got,
            [
                "111122223333",
                "222233334444",
                "444455556666",
                "777788889999"
            ]
        );
        let e = parse(&["12345".into()]).unwrap_err();
        assert!(e.contains("`12345`"), "{e}");
        std::fs::write(&lines, "111122223333\nnope\n").unwrap();
        let e = parse(&[lines.display().to_string()]).unwrap_err();
        assert!(e.contains("line 2: `nope`"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
