//! `detector scan`'s output on stdout: one module-level writer for every
//! `--format`. Line formats (jsonl, ocsf, asff, csv) stream, one finding as
//! soon as it is read; the table is sorted by time, so it is written at the
//! end. The encodings themselves live in `detector_core::encode`.

use detector_core::Finding;
use detector_core::encode::{asff, csv, json_line, ocsf, table};
use detector_core::text::{FIELD_MAX, clean};
use std::io::{self, BufWriter, IsTerminal, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON finding per line (the detector's own schema).
    Jsonl,
    /// One OCSF 1.4.0 Detection Finding (class 2004) per line.
    Ocsf,
    /// One AWS Security Finding Format finding per line (BatchImportFindings).
    Asff,
    /// Comma-separated values with a header row.
    Csv,
    /// Aligned columns sorted by time, fitted to the terminal.
    Table,
}

/// Where ASFF findings are imported (`--security-hub-account`,
/// `--security-hub-region`); each defaults to the finding's own.
#[derive(Debug, Clone, Default)]
pub struct AsffTarget {
    pub account_id: Option<String>,
    pub region: Option<String>,
}

pub struct Output {
    format: Format,
    w: BufWriter<Box<dyn Write + Send>>,
    rows: Vec<Finding>,
    err: Option<io::Error>,
    asff: AsffTarget,
    /// Flush after every finding (`--follow`).
    flush_each: bool,
    now_ms: i64,
    now: String,
    /// Findings ASFF could not encode (no valid account or region).
    pub unplaced: u64,
}

fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// RFC 3339 UTC of a Unix time.
fn rfc3339(t: i64) -> String {
    let day = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // civil from days (Howard Hinnant)
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

impl Output {
    pub fn new(format: Format, asff: AsffTarget, flush_each: bool) -> Output {
        Output::to(Box::new(io::stdout()), format, asff, flush_each)
    }

    pub fn to(
        w: Box<dyn Write + Send>,
        format: Format,
        asff: AsffTarget,
        flush_each: bool,
    ) -> Output {
        let now = now_epoch();
        let mut out = Output {
            format,
            w: BufWriter::with_capacity(64 << 10, w),
            rows: Vec::new(),
            err: None,
            asff,
            flush_each,
            now_ms: now * 1000,
            now: rfc3339(now),
            unplaced: 0,
        };
        if format == Format::Csv {
            let header = csv::header();
            out.write(header.as_bytes());
        }
        out
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.err.is_some() {
            return;
        }
        let r = self.w.write_all(bytes).and_then(|()| {
            if self.flush_each {
                self.w.flush()
            } else {
                Ok(())
            }
        });
        if let Err(e) = r {
            self.err = Some(e);
        }
    }

    fn json_line(&mut self, v: &impl serde::Serialize) {
        match serde_json::to_vec(v) {
            Ok(mut line) => {
                line.push(b'\n');
                self.write(&line);
            }
            Err(e) => self.err = Some(e.into()),
        }
    }

    pub fn finding(&mut self, mut f: Finding) {
        match self.format {
            Format::Table => {
                f.record = None;
                self.rows.push(f);
            }
            Format::Jsonl => {
                let mut line = json_line(&f).into_bytes();
                line.push(b'\n');
                self.write(&line);
            }
            Format::Ocsf => {
                let v = ocsf::detection_finding(&f, self.now_ms);
                self.json_line(&v);
            }
            Format::Asff => {
                let importer = asff::Importer::for_finding(
                    &f,
                    self.asff.account_id.as_deref(),
                    self.asff.region.as_deref(),
                );
                match importer {
                    Ok(importer) => {
                        let v = asff::finding(&f, &importer, &self.now);
                        self.json_line(&v);
                    }
                    Err(e) => {
                        self.unplaced += 1;
                        eprintln!(
                            "error: finding {} cannot be encoded as ASFF: {e}; pass --security-hub-account and --security-hub-region to place it",
                            clean(&f.uid(), FIELD_MAX)
                        );
                    }
                }
            }
            Format::Csv => {
                let row = csv::row(&f);
                self.write(row.as_bytes());
            }
        }
    }

    pub fn finish(&mut self) -> io::Result<()> {
        if let Some(e) = self.err.take() {
            return Err(e);
        }
        if self.format == Format::Table {
            let stdout = io::stdout();
            let width = terminal_size::terminal_size_of(&stdout)
                .map(|(w, _)| usize::from(w.0))
                .or_else(|| std::env::var("COLUMNS").ok()?.parse().ok())
                .unwrap_or(160);
            let coloured = stdout.is_terminal() && colour_allowed(std::env::var_os("NO_COLOR"));
            let t = table::render(&self.rows, width, coloured);
            self.w.write_all(t.as_bytes())?;
        }
        self.w.flush()
    }
}

/// Colour unless `NO_COLOR` is set to a non-empty value (no-color.org: an
/// empty `NO_COLOR` does not turn colour off).
pub fn colour_allowed(no_color: Option<std::ffi::OsString>) -> bool {
    no_color.is_none_or(|v| v.is_empty())
}

/// Whether a write error only means that the reader went away (`| head`):
/// the scan then ends quietly.
pub fn reader_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

#[cfg(test)]
mod tests {
    use super::{colour_allowed, rfc3339};

    #[test]
    fn only_a_non_empty_no_color_turns_colour_off() {
        assert!(colour_allowed(None));
        assert!(colour_allowed(Some("".into())));
        assert!(!colour_allowed(Some("1".into())));
    }

    #[test]
    fn unix_times_print_as_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_759_413_931), "2025-10-02T14:05:31Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
