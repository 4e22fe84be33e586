//! Arbitrary bytes through `Scanner::scan_reader`, as a CloudTrail file.
//!
//! Must never panic. Also checks, for every input:
//! - the counters reconcile with the events reported (`microvm_fuzz::scan_checked`);
//! - reading the same bytes in small, odd-sized pieces gives exactly the same
//!   events, errors (positions included) and counts as reading them at once
//!   (for corrupt gzip: both fail, and the whole read's events are a prefix
//!   of the piecewise read's);
//! - `scan_reader_pipelined` gives the same outcome as `scan_reader`;
//! - with tiny record/input caps the caps are enforced without a panic;
//! - the bytes cut into two or three inputs read with `scan_inputs` (two
//!   threads) give exactly what reading them one after another gives:
//!   events, input ends and counts;
//! - oracle: bytes that `serde_json` reads as an array of objects are read
//!   without an input error, one record per element, and (when no record
//!   is unreadable) report exactly the findings and managed calls the full
//!   parse does: each record classified from its parsed value, with no
//!   structural skip or prefilter.
#![no_main]

use detector_core::ScanOptions;
use libfuzzer_sys::fuzz_target;
use microvm_fuzz::{
    Chunked, scan_checked, scan_checked_with, scan_in_parallel, scan_serially, scan_values,
    tiny_limits,
};

fuzz_target!(|data: &[u8]| {
    let whole = scan_checked(data, ScanOptions::default());
    let seed = data.len() as u32 ^ u32::from(data.first().copied().unwrap_or(0));
    let pieces = scan_checked(Chunked::new(data, seed, 7), ScanOptions::default());
    if whole.result.as_ref().is_err_and(|e| e.contains("gzip")) {
        // flate2 drops the output of a read call that ends in corrupt data,
        // so how much came out before the corruption (records, or a syntax
        // error in them) depends on read sizes. Both reads must fail, and
        // the piecewise read sees at least what the whole read saw.
        assert!(pieces.result.is_err(), "{:?}", pieces.result);
        assert!(
            pieces.events.starts_with(&whole.events),
            "whole {:?} vs pieces {:?}",
            whole.events,
            pieces.events
        );
    } else {
        assert_eq!(whole, pieces, "reading in pieces changed the outcome");
    }

    // The pipelined reader (gzip on a second thread) gives the same outcome;
    // for corrupt gzip, both fail.
    let piped = scan_checked_with(Chunked::new(data, seed, 4096), ScanOptions::default(), true);
    if whole.result.as_ref().is_err_and(|e| e.contains("gzip")) {
        assert!(piped.result.is_err(), "{:?}", piped.result);
    } else {
        assert_eq!(whole, piped, "the pipelined reader changed the outcome");
    }

    let inputs = microvm_fuzz::pieces(data);
    assert_eq!(
        scan_in_parallel(&inputs, 2),
        scan_serially(&inputs),
        "reading the pieces in parallel changed the outcome"
    );

    let capped = scan_checked(Chunked::new(data, seed, 64), tiny_limits());
    if let Err(e) = &capped.result
        && e.contains("larger than the maximum")
    {
        // Caps are on uncompressed bytes; gzip can expand past them.
        assert!(
            data.len() > 300 || data.starts_with(&[0x1f, 0x8b]),
            "cap error on a {} byte input: {e}",
            data.len()
        );
    }

    if let Ok(serde_json::Value::Array(items)) = serde_json::from_slice(data)
        && items.iter().all(serde_json::Value::is_object)
    {
        let report = whole.result.as_ref().unwrap_or_else(|e| {
            panic!(
                "serde_json reads an array of {} objects; scanner failed: {e}",
                items.len()
            )
        });
        assert_eq!(report.records, items.len() as u64, "{:?}", whole.stats);
        if whole.stats.record_errors == 0
            && let Some(full) = scan_values(&items)
        {
            assert_eq!(
                whole.events, full,
                "the streamed scan and the full parse report different things"
            );
        }
    }
});
