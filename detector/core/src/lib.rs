//! The detector's pure core: reads CloudTrail in every shape people hold it
//! in, as a stream, and classifies each governed MicroVM call as managed or a
//! bypass. No AWS dependency (CI checks this with `cargo tree`), so it runs on
//! plain files, in the Lambda, and in tests alike.
#![forbid(unsafe_code)]
pub mod notification;
