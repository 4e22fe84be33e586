//! End-to-end tests of the whole pipeline live in `tests/`; this crate has no library code.
//!
//! `tests/pipeline.rs` starts the built `launcher` and `detector` binaries under a local
//! Lambda Runtime API (`testkit::lambda_runtime`), with moto (S3, SQS, SNS, DynamoDB,
//! EventBridge, CloudTrail), the MicroVMs emulator and the Contro1 stand-in, and plays the
//! governed-and-bypass scenario of the README's demo (`scripts/demo.sh`).
//!
//! The binaries must be built first: `cargo test --workspace` (what `scripts/test.sh` runs)
//! builds them; alone, run `cargo build -p launcher -p detector --bins` before
//! `cargo test -p e2e`. A stale binary fails the test with that command.
#![forbid(unsafe_code)]
