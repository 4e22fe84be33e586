//! The launcher: the governed MicroVM launcher and token broker. The router
//! (`app`), the adapters that implement `launcher-core`'s ports over
//! DynamoDB, the MicroVMs SDK and Contro1, the `SIMULATE_AWS` simulator, and
//! the settings `main` reads once at cold start, token sealing, and the
//! Lambda entry point that tells HTTP events from the reconciler's schedule.
#![forbid(unsafe_code)]

pub mod adapters;
pub mod app;
pub mod bootstrap;
pub mod function_url;
pub mod lambda;
pub mod seal;
pub mod serve;
pub mod settings;
pub mod simulator;
pub mod store;

pub use app::{AppState, app};
