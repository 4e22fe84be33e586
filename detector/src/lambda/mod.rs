//! The detector Lambda (ARCHITECTURE.md, "Detector"): every trigger a
//! customer's CloudTrail setup may use, the scheduled sweep with trail
//! health and optional remediation, and alert delivery with
//! de-duplication. The same code runs under `lambda_runtime` and behind
//! `detector sweep` / `detector handle --event FILE`.
//!
//! - [`config`]: environment → validated [`config::Config`].
//! - [`alert`]: what a finding says (SNS text, audit record, log line, dedupe key).
//! - [`alerter`]: dedupe → deliver → mark; [`alert_batch`]: one invocation's
//!   findings, each raised once, coalesced across its objects.
//! - [`sweep`], [`trail`], [`integrity`]: the CloudTrail-independent layer,
//!   trail health, and the functions compared with their recorded baseline.
//! - [`handler`]: decoding invocations, streaming objects, answering SQS;
//!   [`versions`]: each object read by the version its notification names,
//!   and an overwritten log file reported.
//! - [`ports`]: the traits at the edges; [`aws`] and [`contro1`] implement them.
//! - [`state`]: building [`handler::State`] once from the configuration.

pub mod alert;
pub mod alert_batch;
pub mod alerter;
pub mod aws;
pub mod config;
pub mod contro1;
pub mod counters;
pub mod handler;
pub mod integrity;
pub mod ports;
pub mod state;
pub mod sweep;
pub mod trail;
pub mod versions;

#[cfg(test)]
pub(crate) mod fakes;
