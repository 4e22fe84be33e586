//! The detector's pure core: reads CloudTrail in every shape people hold it
//! in, as a stream, and classifies each governed MicroVM call as managed or a
//! bypass. No AWS dependency (CI checks this with `cargo tree`), so it runs on
//! plain files, in the Lambda, and in tests alike.
//!
//! - [`record`]: the fields of a record the classifier reads.
//! - [`classify`]: the rules ([`Classifier`]): governed calls that bypassed
//!   the launcher, and changes to the control plane (tamper rules).
//! - [`finding`], [`evidence`]: one evidence schema for every finding;
//!   [`encode`]: its encodings (OCSF, ASFF, CSV, table, chat).
//! - [`selectors`]: do a trail's event selectors log the MicroVM data events?
//! - [`targets`]: functions and resources as configured and as records name them.
//! - [`text`]: attacker-controlled text made safe for human-readable outputs.
//! - [`reader`]: input shapes, gzip, limits and errors.
//! - [`notification`]: the Lambda trigger shapes (S3, SQS, SNS, EventBridge).
//! - [`scan`]: [`Scanner`], which puts them together with counting and
//!   de-duplication.
//! - [`parallel`]: several inputs read at once, merged in input order.
#![forbid(unsafe_code)]

pub mod classify;
pub mod encode;
pub mod evidence;
pub mod finding;
pub mod notification;
pub mod parallel;
mod prefilter;
pub mod reader;
pub mod record;
pub mod scan;
pub mod selectors;
pub mod targets;
pub mod text;

pub use classify::{
    AdminConfig, Classification, Classifier, ClassifierConfig, Exemption, GovernedCall,
    PrincipalRef, SecretRef, StackRef, TamperConfig, TamperConfigError, TamperList,
};
pub use finding::{Finding, Outcome, Rule, Severity};
pub use reader::{Position, ReadError, RecordError, ScanOptions};
pub use record::{FieldTypeError, Record};
pub use scan::{InputReport, ScanEvent, ScanStats, Scanner};
pub use targets::{FunctionRef, ResourceRef};
