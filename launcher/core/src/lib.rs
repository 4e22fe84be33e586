//! The launcher's pure core: policy, the approval state machine and Contro1
//! webhook verification, over plain types. No AWS dependency.
#![forbid(unsafe_code)]
