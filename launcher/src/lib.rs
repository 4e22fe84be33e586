//! The launcher: the governed MicroVM launcher and token broker. The router
//! (`app`), the adapters that implement `launcher-core`'s ports over
//! DynamoDB, the MicroVMs SDK and Contro1, the `SIMULATE_AWS` simulator, and
//! the settings `main` reads once at cold start.
#![forbid(unsafe_code)]

pub mod adapters;
pub mod app;
pub mod bootstrap;
pub mod settings;
pub mod simulator;
pub mod store;

pub use app::{AppState, app};
