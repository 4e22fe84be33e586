//! The agent's side of the launcher: `microvm`, a command line and an MCP
//! server that make the governed path (ask the launcher, wait for a human)
//! as short as the direct AWS call it replaces.
//!
//! * [`config`]: where the launcher is and how to authenticate (flags,
//!   environment, profile file), as a pure function.
//! * [`sign`]: SigV4 for the launcher's `AWS_IAM` Function URL.
//! * [`client`]: one request per ask, answers as [`outcome::Outcome`]s,
//!   waiting for an approval.
//! * [`outcome`]: the outcomes a CI job branches on and their exit codes.
//! * [`cli`]: the `microvm` subcommands' flags, turned into the launcher's
//!   request types.
//! * [`mcp`]: the same operations as MCP tools (`microvm mcp`).
#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod config;
pub mod mcp;
pub mod outcome;
pub mod sign;

pub use client::{Client, ClientError};
pub use outcome::{Kind, Outcome};
