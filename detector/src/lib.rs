//! The `detector` package: the `detector` command line (`scan`, `sweep`,
//! `handle`) and the detector Lambda. The pure parsing and classification
//! live in `detector-core`; this crate is the edge (AWS, Contro1, the Lambda
//! runtime).
#![forbid(unsafe_code)]

pub mod accounts;
pub mod lambda;
