//! Empty: it makes this crate's build-dependencies part of the build (see Cargo.toml).
#![forbid(unsafe_code)]

fn main() {}
