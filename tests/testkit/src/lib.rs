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
//! - paths to the read-only real CloudTrail data beside the repository
//!   ([`shared_data_dir`], [`shared_dir`]) and unique resource names ([`unique_name`]).
//!
//! Helpers panic with a message saying what to do: a missing moto server or missing data is a
//! broken test environment, never a reason to skip a test silently.
#![forbid(unsafe_code)]

pub mod emulator;
pub mod fault_proxy;
pub mod lambda_control;
pub mod lambda_runtime;
pub mod moto;
pub mod sigv4_verify;

use std::path::{Path, PathBuf};

/// Environment variable that overrides where the shared read-only material lives.
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

/// The shared read-only material beside the repository (`../shared`: reference docs,
/// `tools/make-corpus.py`, `data/`). `MICROVM_SHARED_DIR` overrides it when it points at a
/// directory that has `data/cloudtrail` inside.
///
/// # Panics
/// When the directory does not exist, with a message naming the path and the variable.
pub fn shared_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(SHARED_DIR_ENV) {
        let dir = PathBuf::from(dir);
        if dir.join("data").join("cloudtrail").is_dir() {
            return dir;
        }
    }
    let dir = workspace_dir().join("..").join("shared");
    assert!(
        dir.is_dir(),
        "the shared directory {} does not exist: check out the shared material beside the \
         repository, or set {SHARED_DIR_ENV} to the directory that holds data/cloudtrail",
        dir.display()
    );
    dir
}

/// The real CloudTrail data used by tests and benchmarks (`../shared/data/cloudtrail`).
/// `MICROVM_SHARED_DIR` overrides it: it may name the shared root (with `data/cloudtrail`
/// inside) or the CloudTrail data directory itself.
///
/// # Panics
/// When the directory does not exist, with a message naming the path and the variable.
pub fn shared_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(SHARED_DIR_ENV) {
        let dir = PathBuf::from(dir);
        let nested = dir.join("data").join("cloudtrail");
        let chosen = if nested.is_dir() { nested } else { dir };
        assert!(
            chosen.is_dir(),
            "{SHARED_DIR_ENV}={} does not name a directory (expected the shared root with \
             data/cloudtrail inside, or the CloudTrail data directory itself)",
            chosen.display()
        );
        return chosen;
    }
    let dir = workspace_dir()
        .join("..")
        .join("shared")
        .join("data")
        .join("cloudtrail");
    assert!(
        dir.is_dir(),
        "the real CloudTrail data directory {} does not exist: check out the shared material \
         beside the repository, or set {SHARED_DIR_ENV} to it",
        dir.display()
    );
    dir
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
