//! Test support shared by every crate's integration tests.
//!
//! It exists so that tests exercise real parts instead of mocks:
//! - [`moto`]: SDK configuration and tiny resource helpers for the local moto server
//!   (S3, DynamoDB, SNS, SQS, CloudTrail trails), started by `scripts/test.sh` or `scripts/moto.sh start`;
//! - [`emulator`]: an axum emulator of the Lambda MicroVMs REST API, driven through the real
//!   `aws-sdk-lambdamicrovms` client, which also writes the CloudTrail records the calls
//!   would produce;
//! - [`fault_proxy`]: a reverse proxy in front of moto that answers chosen requests with
//!   AWS-shaped errors (DynamoDB throttling, SNS failures, S3 `NoSuchKey`), for the fault
//!   injection tests;
//! - [`lambda_control`]: governance functions deployed into moto's Lambda control plane,
//!   with the integrity baseline the stack records for them;
//! - [`lambda_runtime`]: the Lambda Runtime API and a Function URL front, to run the built
//!   `launcher` and `detector` binaries as Lambda runs them;
//! - [`corpus`]: a large, realistic CloudTrail corpus resampled from real records, with the
//!   findings `detector scan` must report on it;
//! - paths to the real CloudTrail data: the redistributable sets in the repository
//!   ([`test_data_dir`]) and the shared data tier beside it ([`shared_data_dir`],
//!   [`shared_dir`]), and unique resource names ([`unique_name`]).
//!
//! Helpers panic with a message saying what to do: a missing moto server or missing data is a
//! broken test environment, never a reason to skip a test silently.
#![forbid(unsafe_code)]

pub mod corpus;
pub mod emulator;
pub mod fault_proxy;
pub mod lambda_control;
pub mod lambda_runtime;
pub mod moto;

use std::path::{Path, PathBuf};

/// Environment variable naming the shared root of the extra data tier: the directory with
/// `data/cloudtrail/` inside (by default `../shared` beside the repository).
pub const SHARED_DIR_ENV: &str = "MICROVM_SHARED_DIR";

/// A fresh name: `prefix` (lower-cased, reduced to `[a-z0-9-]`) + `-` + 12 hex characters of
/// a random UUID, at most 63 characters. Valid as a DynamoDB table, S3 bucket, SQS queue and
/// SNS topic name, so tests sharing one moto server never collide.
pub fn unique_name(prefix: &str) -> String {
    const SUFFIX_LEN: usize = 12;
    const MAX: usize = 63;
    let mut clean: String = prefix
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    clean.truncate(MAX - SUFFIX_LEN - 1);
    let clean = clean.trim_matches('-');
    let clean = if clean.is_empty() { "t" } else { clean };
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{clean}-{}", &suffix[..SUFFIX_LEN])
}

/// The repository root (the Cargo workspace), located from this crate's manifest directory.
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/testkit has two parents")
        .to_path_buf()
}

/// The redistributable real CloudTrail data in the repository (`tests/data/cloudtrail`: the
/// invictus-ir, Stratus Red Team and EventBridge-envelope sets, each with its SOURCE.md and
/// NOTICE). Every test that needs real data by default reads it from here.
///
/// # Panics
/// When the directory is missing (a broken checkout), naming it.
pub fn test_data_dir() -> PathBuf {
    let dir = workspace_dir()
        .join("tests")
        .join("data")
        .join("cloudtrail");
    assert!(
        dir.is_dir(),
        "the bundled CloudTrail data {} is missing: it is part of the repository, restore it \
         with `git checkout -- tests/data`",
        dir.display()
    );
    dir
}

/// Where the shared data tier's material would be: `$MICROVM_SHARED_DIR` when set, otherwise
/// `../shared` beside the repository. Either names the shared root, the directory that holds
/// `data/cloudtrail/` (with the non-redistributable `sans504-s3-ransomware-lab` and
/// `digest-sample` sets) and `reference/`.
pub fn shared_dir_candidate() -> PathBuf {
    std::env::var_os(SHARED_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("..").join("shared"))
}

/// Whether the shared data tier can run: [`shared_dir_candidate`] has `data/cloudtrail/`.
pub fn shared_tier_present() -> bool {
    shared_dir_candidate()
        .join("data")
        .join("cloudtrail")
        .is_dir()
}

/// The shared root of the extra data tier (see [`shared_dir_candidate`]). Only the tests of
/// that tier (in `shared_tier` modules, `#[ignore]`d by default; `scripts/test.sh` runs them
/// when the data is present) call it.
///
/// # Panics
/// When the root has no `data/cloudtrail/`, with a message naming the path and the variable.
pub fn shared_dir() -> PathBuf {
    let dir = shared_dir_candidate();
    let how = if std::env::var_os(SHARED_DIR_ENV).is_some() {
        format!("{SHARED_DIR_ENV} is set to {}", dir.display())
    } else {
        format!(
            "{SHARED_DIR_ENV} is not set and ../shared is {}",
            dir.display()
        )
    };
    assert!(
        dir.join("data").join("cloudtrail").is_dir(),
        "the shared data tier needs the shared root, a directory with data/cloudtrail/ inside; \
         {how}, which has no data/cloudtrail/. Set {SHARED_DIR_ENV} to the shared root or put \
         the shared checkout at ../shared beside the repository"
    );
    dir
}

/// All the real CloudTrail data of the shared tier (`<shared root>/data/cloudtrail`: the
/// bundled sets plus sans504 and the digest sample).
///
/// # Panics
/// As [`shared_dir`].
pub fn shared_data_dir() -> PathBuf {
    shared_dir().join("data").join("cloudtrail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_valid_resource_names_and_differ() {
        let a = unique_name("Ledger_Table");
        let b = unique_name("Ledger_Table");
        assert_ne!(a, b);
        assert!(a.starts_with("ledger-table-"), "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        let long = unique_name(&"x".repeat(200));
        assert!(long.len() <= 63, "{} chars", long.len());
        let empty = unique_name("__");
        assert!(empty.starts_with("t-"), "{empty}");
    }

    #[test]
    fn the_bundled_data_has_each_source_with_its_notice_and_no_unlicensed_set() {
        let dir = test_data_dir();
        let mut sets: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        sets.sort();
        assert_eq!(
            sets,
            [
                "eventbridge-api-call-envelopes",
                "invictus-ir-aws-dataset",
                "stratus-red-team-detonation-logs"
            ]
        );
        for set in &sets {
            let notice = std::fs::read_to_string(dir.join(set).join("NOTICE")).unwrap();
            let source = std::fs::read_to_string(dir.join(set).join("SOURCE.md")).unwrap();
            let licence = if set.starts_with("invictus") {
                "MIT License"
            } else {
                "Apache License"
            };
            assert!(notice.contains(licence), "{set}: {licence}");
            assert!(notice.contains("Copyright"), "{set}");
            // The NOTICE names the same upstream commit as SOURCE.md.
            let commit = source
                .split_whitespace()
                .find(|w| w.len() == 40 && w.chars().all(|c| c.is_ascii_hexdigit()))
                .unwrap();
            assert!(notice.contains(commit), "{set}: {commit}");
        }
    }

    mod shared_tier {
        use super::super::*;

        #[test]
        #[ignore = "shared data tier: scripts/test.sh runs it when ../shared or MICROVM_SHARED_DIR has data/cloudtrail"]
        fn shared_data_dir_holds_the_real_cloudtrail_data() {
            let dir = shared_data_dir();
            assert!(
                dir.join("sans504-s3-ransomware-lab").is_dir(),
                "{}",
                dir.display()
            );
            assert!(shared_dir().join("reference").is_dir());
        }
    }
}
