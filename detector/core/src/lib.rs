//! The detector's pure core: reads CloudTrail in every shape people hold it
//! in, as a stream, and classifies each governed MicroVM call as managed or a
//! bypass. No AWS dependency (CI checks this with `cargo tree`), so it runs on
//! plain files, in the Lambda, and in tests alike.
//!
//! - [`record`]: the fields of a record the classifier reads.
//! - [`classify`]: the bypass rules ([`Classifier`]).
//! - [`reader`]: input shapes, gzip, limits and errors.
//! - [`notification`]: the Lambda trigger shapes (S3, SQS, SNS, EventBridge).
//! - [`scan`]: [`Scanner`], which puts them together with counting and
//!   de-duplication.
#![forbid(unsafe_code)]

pub mod classify;
pub mod notification;
pub mod reader;
pub mod record;
pub mod scan;

pub use classify::{
    Classification, Classifier, ClassifierConfig, Finding, GovernedCall, Outcome, Rule, Severity,
    TRAIL_CHANGE_EVENTS, TrailChange,
};
pub use reader::{Position, ReadError, RecordError, ScanOptions};
pub use record::{FieldTypeError, Record};
pub use scan::{InputReport, ScanEvent, ScanStats, Scanner};
