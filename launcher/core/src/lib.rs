//! The launcher's pure core: request types and their validation, the agent
//! registry, the policy engine, the approval state machine, the ports
//! (traits) the launcher needs from AWS, Contro1 and the clock, and the use
//! cases written over those ports. No AWS dependency: the `launcher` crate
//! supplies the adapters.
#![forbid(unsafe_code)]

pub mod agents;
pub mod approval;
pub mod config;
pub mod fakes;
pub mod grammar;
pub mod policy;
pub mod ports;
pub mod request;
pub mod service;

pub use agents::{Agent, Caller, Registry};
pub use approval::{Resolution, State};
pub use config::{Config, ConfigError, PolicyConfig};
pub use policy::{Decision, RiskLevel, Target, Verdict};
pub use request::{Action, FieldError};
pub use service::{
    CallbackOutcome, Options, PortSet, ReconcileReport, RequestView, Service, ServiceError,
    Submitted,
};
