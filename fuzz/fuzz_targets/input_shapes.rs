//! Input-shape detection on arbitrary prefixes, plain and gzip-wrapped.
//!
//! The first two bytes choose a cut; the rest is the document. Checks:
//! - the document gzip-wrapped reads exactly like the plain document (gzip
//!   is detected by its magic bytes, whatever the read sizes);
//! - a prefix of the document emits a prefix of the document's records
//!   (nothing is emitted that the whole would not emit, in the same order);
//! - a truncated gzip stream is always an error, never a clean end.
#![no_main]

use detector_core::ScanOptions;
use libfuzzer_sys::fuzz_target;
use microvm_fuzz::{Chunked, Outcome, gzip, scan_checked};

/// The records (not the errors) an outcome emitted.
fn emitted(o: &Outcome) -> Vec<&String> {
    o.events
        .iter()
        .filter(|e| !e.starts_with("RecordError"))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let cut = usize::from(u16::from_le_bytes([data[0], data[1]]));
    let doc = &data[2..];
    let opts = ScanOptions::default;

    let plain = scan_checked(doc, opts());
    let gz = gzip(doc);
    let zipped = scan_checked(Chunked::new(&gz, cut as u32, 5), opts());
    assert_eq!(plain.events, zipped.events, "gzip changed the events");
    assert_eq!(plain.stats, zipped.stats, "gzip changed the counts");
    assert_eq!(
        plain.result.is_ok(),
        zipped.result.is_ok(),
        "plain {:?} vs gzip {:?}",
        plain.result,
        zipped.result
    );

    let k = cut % (doc.len() + 1);
    let prefix = scan_checked(&doc[..k], opts());
    let (p, w) = (emitted(&prefix), emitted(&plain));
    assert!(
        p.len() <= w.len() && p[..] == w[..p.len()],
        "prefix of {k} bytes emitted {p:?}, whole emitted {w:?}"
    );

    let gk = cut % gz.len();
    let truncated = scan_checked(&gz[..gk], opts());
    if gk >= 2 {
        let err = truncated
            .result
            .as_ref()
            .expect_err("truncated gzip read cleanly");
        // A document that is itself bad may fail on its own before the cut.
        assert!(
            err.contains("gzip") || plain.result.is_err(),
            "truncated gzip error does not say gzip: {err}"
        );
    }
    let t = emitted(&truncated);
    assert!(t.len() <= w.len() && t[..] == w[..t.len()]);
});
