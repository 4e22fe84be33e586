//! No code: this crate's dependencies give every build of the workspace the same features
//! (see its Cargo.toml), so the README's commands share one build of each dependency.
#![forbid(unsafe_code)]
