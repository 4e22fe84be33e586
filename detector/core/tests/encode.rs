//! The encodings of a finding: golden files for each format over the
//! bundled examples, and the required fields and value types of the
//! published schemas, written out here — OCSF 1.4.0 (base event, Finding,
//! Detection Finding class 2004) and ASFF 2018-10-08 (the attributes
//! `BatchImportFindings` requires, with Security Hub's limits). The
//! schemas themselves judge the same outputs in
//! `scripts/conformance/check.sh` (docs/outputs.md). `detector/README.md`'s
//! field table and example line name exactly the finding's fields.
//!
//! `UPDATE_GOLDEN=1 cargo test -p detector-core --test encode` rewrites the
//! golden files after an intended change (review the diff).

use detector_core::encode::{asff, chat, csv, ocsf, table};
use detector_core::{Classifier, ClassifierConfig, Finding, ScanEvent, ScanOptions, Scanner};
use serde_json::Value;
use shared_core::RoleRef;
use std::path::{Path, PathBuf};

const NOW_MS: i64 = 1_764_590_400_000; // 2025-12-01T12:00:00Z
const NOW: &str = "2025-12-01T12:00:00Z";

fn importer() -> asff::Importer {
    asff::Importer::new("111122223333", "us-east-1").unwrap()
}

/// The bundled examples' findings, in a stable order.
fn findings() -> Vec<Finding> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/examples");
    let mut files = Vec::new();
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.to_string_lossy().ends_with(".md") {
                files.push(p);
            }
        }
    }
    files.sort();
    let cfg = ClassifierConfig {
        launcher_roles: vec![
            RoleRef::from_role_arn("arn:aws:iam::111122223333:role/microvm-launcher").unwrap(),
        ],
        launcher_session_names: vec!["microvm-launcher".into()],
        ..ClassifierConfig::default()
    };
    let mut scanner = Scanner::new(Classifier::new(cfg), ScanOptions::default());
    let mut out = Vec::new();
    for f in files {
        let name = f
            .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .unwrap()
            .display()
            .to_string();
        scanner
            .scan_reader(std::fs::File::open(&f).unwrap(), &name, |ev| {
                if let ScanEvent::Finding(f) = ev {
                    out.push(f);
                }
            })
            .unwrap();
    }
    assert_eq!(out.len(), 10, "the examples' findings");
    out
}

fn golden(name: &str, got: &str) {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to write it)",
            path.display()
        )
    });
    assert_eq!(got, want, "{name} differs from its golden file");
}

fn lines(values: impl Iterator<Item = Value>) -> String {
    values.map(|v| v.to_string() + "\n").collect()
}

#[test]
fn each_format_matches_its_golden_file() {
    let fs = findings();
    golden(
        "examples.jsonl",
        &lines(fs.iter().map(|f| serde_json::to_value(f).unwrap())),
    );
    golden(
        "examples.ocsf.jsonl",
        &lines(fs.iter().map(|f| ocsf::detection_finding(f, NOW_MS))),
    );
    golden(
        "examples.asff.jsonl",
        &lines(fs.iter().map(|f| asff::finding(f, &importer(), NOW))),
    );
    golden(
        "examples.csv",
        &(csv::header() + &fs.iter().map(csv::row).collect::<String>()),
    );
    golden("examples.table", &table::render(&fs, 160, false));
    golden(
        "examples.chat.jsonl",
        &lines(fs.iter().map(chat::notification)),
    );
}

// ---- OCSF 1.4.0 --------------------------------------------------------

fn int(v: &Value, path: &str) -> i64 {
    v.pointer(path)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("{path}: required integer, got {:?}", v.pointer(path)))
}

fn string<'v>(v: &'v Value, path: &str) -> &'v str {
    v.pointer(path)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{path}: required string, got {:?}", v.pointer(path)))
}

#[test]
fn ocsf_detection_findings_carry_every_required_attribute_with_its_type() {
    for f in findings() {
        let v = ocsf::detection_finding(&f, NOW_MS);
        // Base event (required): activity_id, category_uid, class_uid,
        // metadata, severity_id, time, type_uid.
        assert_eq!(int(&v, "/activity_id"), 1);
        assert_eq!(int(&v, "/category_uid"), 2);
        assert_eq!(int(&v, "/class_uid"), 2004);
        assert_eq!(int(&v, "/type_uid"), 2004 * 100 + 1);
        let sev = int(&v, "/severity_id");
        assert!((0..=6).contains(&sev) || sev == 99, "{sev}");
        assert!(
            int(&v, "/time") > 1_500_000_000_000,
            "time is epoch milliseconds"
        );
        // metadata (required): version, product (vendor_name required).
        assert_eq!(string(&v, "/metadata/version"), "1.4.0");
        string(&v, "/metadata/product/vendor_name");
        string(&v, "/metadata/product/name");
        // Finding (required): finding_info with uid and title.
        assert!(!string(&v, "/finding_info/uid").is_empty());
        assert!(!string(&v, "/finding_info/title").is_empty());
        int(&v, "/finding_info/created_time");
        // Recommended attributes, when present, have their types.
        string(&v, "/message");
        string(&v, "/severity");
        assert_eq!(int(&v, "/status_id"), 1);
        assert_eq!(v["is_alert"], Value::Bool(true));
        string(&v, "/cloud/provider");
        if let Some(ip) = v.pointer("/evidences/0/src_endpoint/ip") {
            ip.as_str()
                .unwrap()
                .parse::<std::net::IpAddr>()
                .expect("src_endpoint.ip is an IP address");
        }
        for r in v["resources"].as_array().into_iter().flatten() {
            string(r, "/uid");
            string(r, "/type");
        }
        // The CloudTrail record travels as evidence.
        let data = v.pointer("/evidences/0/data").expect("evidences[0].data");
        assert_eq!(data["eventID"].as_str(), f.event_id.as_deref());
    }
}

// ---- ASFF 2018-10-08 -----------------------------------------------------

/// Namespaces of ASFF finding types.
const TYPE_NAMESPACES: [&str; 5] = [
    "Software and Configuration Checks",
    "TTPs",
    "Effects",
    "Unusual Behaviors",
    "Sensitive Data Identifications",
];
const LABELS: [&str; 5] = ["INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"];

fn rfc3339(v: &Value, path: &str) {
    let t = string(v, path);
    assert!(
        detector_core::encode::epoch_ms(t).is_some(),
        "{path}: not an RFC 3339 UTC time: {t}"
    );
}

#[test]
fn asff_findings_carry_every_attribute_batch_import_findings_requires() {
    for f in findings() {
        let v = asff::finding(&f, &importer(), NOW);
        assert_eq!(string(&v, "/SchemaVersion"), "2018-10-08");
        let id = string(&v, "/Id");
        assert!(!id.is_empty() && id.len() <= 512);
        assert_eq!(
            string(&v, "/ProductArn"),
            "arn:aws:securityhub:us-east-1:111122223333:product/111122223333/default"
        );
        let gen_id = string(&v, "/GeneratorId");
        assert!(!gen_id.is_empty() && gen_id.len() <= 512);
        let acct = string(&v, "/AwsAccountId");
        assert!(
            acct.len() == 12 && acct.bytes().all(|b| b.is_ascii_digit()),
            "{acct}"
        );
        let types = v["Types"].as_array().expect("Types is an array");
        assert!(!types.is_empty() && types.len() <= 50);
        for t in types {
            let t = t.as_str().unwrap();
            let parts: Vec<&str> = t.split('/').collect();
            assert!(
                parts.len() <= 3 && TYPE_NAMESPACES.contains(&parts[0]),
                "{t}"
            );
        }
        rfc3339(&v, "/CreatedAt");
        rfc3339(&v, "/UpdatedAt");
        assert!(LABELS.contains(&string(&v, "/Severity/Label")));
        assert!(LABELS.contains(&string(&v, "/FindingProviderFields/Severity/Label")));
        let title = string(&v, "/Title");
        assert!(!title.is_empty() && title.chars().count() <= 256);
        let desc = string(&v, "/Description");
        assert!(!desc.is_empty() && desc.chars().count() <= 1024);
        let resources = v["Resources"].as_array().expect("Resources is an array");
        assert!(!resources.is_empty() && resources.len() <= 32);
        for r in resources {
            assert!(!string(r, "/Type").is_empty());
            assert!(!string(r, "/Id").is_empty());
        }
        let fields = v["ProductFields"].as_object().unwrap();
        assert!(fields.len() <= 50);
        assert!(
            fields
                .values()
                .all(|x| x.as_str().is_some_and(|s| s.len() <= 2048))
        );
        assert!(string(&v, "/Remediation/Recommendation/Text").len() <= 512);
    }
}

#[test]
fn asff_refuses_an_account_or_region_that_is_not_one_and_escapes_it() {
    let e = asff::Importer::new("11112222333", "us-east-1").unwrap_err();
    assert_eq!(e, asff::AsffError::Account("11112222333".into()));
    let e = asff::Importer::new("111122223333", "us-east-1\n\u{1b}[31m").unwrap_err();
    let msg = e.to_string();
    assert!(!msg.contains('\n') && !msg.contains('\u{1b}'), "{msg:?}");
    // A finding naming a bad region is not placed without a Security Hub region...
    let mut f = findings().remove(0);
    f.region = Some("us-east-1\narn:evil".into());
    assert!(asff::Importer::for_finding(&f, None, None).is_err());
    // ... and with one, its resource takes the importer's region, not the record's.
    let imp = asff::Importer::for_finding(&f, Some("111122223333"), Some("eu-west-1")).unwrap();
    let v = asff::finding(&f, &imp, NOW);
    assert_eq!(v["Resources"][0]["Region"], "eu-west-1");
    assert_eq!(
        v["ProductArn"],
        "arn:aws:securityhub:eu-west-1:111122223333:product/111122223333/default"
    );
}

#[test]
fn asff_takes_event_time_only_when_it_is_a_timestamp() {
    let mut f = findings().remove(0);
    f.event_time = Some("yesterday\u{7}".into());
    let v = asff::finding(&f, &importer(), NOW);
    assert_eq!(v["CreatedAt"], NOW);
    assert!(v.get("FirstObservedAt").is_none(), "{v}");
    assert_eq!(
        v["ProductFields"]["microvm-governance/event_time"],
        "yesterday\u{7}"
    );
}

#[test]
fn asff_partition_follows_the_region() {
    let mut f = findings().remove(0);
    f.region = Some("us-gov-west-1".into());
    for (region, partition) in [("us-gov-west-1", "aws-us-gov"), ("cn-north-1", "aws-cn")] {
        f.region = Some(region.into());
        let imp = asff::Importer::for_finding(&f, Some("111122223333"), None).unwrap();
        let v = asff::finding(&f, &imp, NOW);
        assert_eq!(
            v["ProductArn"],
            format!(
                "arn:{partition}:securityhub:{region}:111122223333:product/111122223333/default"
            )
        );
        assert_eq!(v["Resources"][0]["Partition"], partition);
    }
}

#[test]
fn a_huge_record_gives_bounded_lines_in_every_format_with_markers() {
    use detector_core::encode::{bound, json_line};
    let mut f = findings().remove(0);
    f.user_agent = Some("A".repeat(1_900_000));
    f.summary = "\u{1}".repeat(400_000);
    f.network_connectors = (0..40_000)
        .map(|i| format!("arn:aws:lambda:us-east-1:111122223333:nc:{i}"))
        .collect();
    f.record = Some(serde_json::json!({"userAgent": "B".repeat(2_000_000)}));
    let o = ocsf::detection_finding(&f, NOW_MS);
    let a = asff::finding(&f, &importer(), NOW);
    let j: Value = serde_json::from_str(&json_line(&f)).unwrap();
    for (name, v, max) in [
        ("ocsf", &o, bound::LINE_MAX),
        ("asff", &a, asff::FINDING_MAX),
        ("jsonl", &j, bound::LINE_MAX),
    ] {
        let n = bound::json_len(v);
        assert!(n <= max, "{name}: {n} > {max}");
        // ASFF clips each of its fields to Security Hub's own limits first
        // and carries neither the record nor the user agent.
        if name != "asff" {
            assert!(
                v.to_string().contains("...[truncated "),
                "{name}: no marker"
            );
        }
    }
    // The identifying fields survive the cut.
    assert_eq!(
        o["finding_info"]["uid"],
        ocsf::detection_finding(&findings().remove(0), NOW_MS)["finding_info"]["uid"]
    );
    assert_eq!(j["event_id"], serde_json::json!(f.event_id));
    // A line within the limit keeps the fields in their declared order.
    let small = json_line(&findings()[0]);
    assert!(small.starts_with("{\"event\":"), "{small}");
}

// ---- attacker-controlled text ------------------------------------------

fn hostile() -> Finding {
    let mut f = findings().remove(0);
    f.microvm_id = Some("vm-1\n[click](https://evil.example) `x` =cmd|' /C calc'!A0".into());
    f.principal_arn = Some("=HYPERLINK(\"https://evil.example\")".into());
    f
}

#[test]
fn chat_messages_put_every_record_value_in_an_inert_code_span() {
    let n = chat::notification(&hostile());
    let d = n["content"]["description"].as_str().unwrap();
    assert!(!d.contains("\n[click]"), "{d}");
    assert!(
        d.contains("`vm-1\\n[click](https://evil.example) 'x' =cmd|' /C calc'!A0`"),
        "{d}"
    );
    assert_eq!(n["version"], "1.0");
    assert_eq!(n["source"], "custom");
}

#[test]
fn csv_cells_are_one_line_and_never_formulas() {
    let row = csv::row(&hostile());
    assert_eq!(row.matches('\n').count(), 1, "{row}");
    assert!(
        row.contains("\"'=HYPERLINK(\"\"https://evil.example\"\")\""),
        "{row}"
    );
    assert_eq!(
        csv::header().trim_end().split(',').count(),
        csv::HEADER.len()
    );
}

#[test]
fn the_table_fits_the_width_sorts_by_time_and_colours_only_when_asked() {
    let fs = findings();
    let t = table::render(&fs, 100, false);
    for l in t.lines() {
        assert!(l.chars().count() <= 100, "{} > 100: {l}", l.chars().count());
    }
    assert!(!t.contains('\x1b'));
    let times: Vec<&str> = t
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("total"))
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_unstable();
    assert_eq!(times, sorted);
    assert!(table::render(&fs, 100, true).contains("\x1b[1;31mcritical\x1b[0m"));
}

// ---- detector/README.md ------------------------------------------------

/// The names in backticks at the start of each row of the README's
/// `## Evidence` table (`| `a`, `b` | ...`).
fn readme_table_fields(readme: &str) -> std::collections::BTreeSet<String> {
    let section = readme
        .split("\n## Evidence")
        .nth(1)
        .expect("detector/README.md has an `## Evidence` section");
    let section = section.split("\n## ").next().unwrap();
    let mut out = std::collections::BTreeSet::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split('|').nth(1).unwrap();
        for name in first.split('`').skip(1).step_by(2) {
            out.insert(name.to_string());
        }
    }
    out
}

#[test]
fn the_readme_names_exactly_the_fields_of_a_finding() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let f = &findings()[0];
    let want: std::collections::BTreeSet<String> = serde_json::to_value(f)
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let table = readme_table_fields(&readme);
    assert_eq!(
        table, want,
        "the README's field table (left) and a finding's fields (right) differ"
    );
    // The example line: a JSON object with exactly the finding's fields.
    let example = readme
        .lines()
        .find(|l| l.starts_with('{') && l.contains("\"event\":\"aws.microvm."))
        .expect("detector/README.md shows a JSON Lines finding");
    let example: Value = serde_json::from_str(example).unwrap();
    let shown: std::collections::BTreeSet<String> =
        example.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        shown, want,
        "the README's example line (left) and a finding's fields (right)"
    );
}
