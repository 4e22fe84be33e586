//! Test support shared by every crate's integration tests.
#![forbid(unsafe_code)]
