//! The inputs `detector scan` reads, named in order: each path as given,
//! directories walked recursively in sorted order, S3 prefixes listed page
//! by page. Opening an input is left to the thread that reads it
//! ([`detector_core::parallel`]), so S3 objects are fetched in parallel too.
//! A prefix at the `CloudTrail/REGION/` level is listed only in the day
//! folders of the `--since` window.

use super::s3::{S3Source, parse_url};
use super::window::region_level;
use detector_core::parallel::{Input, Job};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Names read inside a directory or S3 prefix; others are counted as ignored.
const EXTENSIONS: [&str; 5] = [".json", ".json.gz", ".jsonl", ".ndjson", ".gz"];

fn wanted(name: &str) -> bool {
    EXTENSIONS.iter().any(|ext| name.ends_with(ext))
}

/// What the walk reports besides inputs, in its place in the order.
#[derive(Debug)]
pub enum Note {
    /// A path or prefix that could not be listed or opened.
    Failed {
        input: String,
        message: String,
    },
    /// A file inside a directory or prefix whose name is not read.
    Ignored,
    Warning(String),
}

type Emit<'e, 'a> = &'e mut dyn FnMut(Job<'a, Note>);

/// Emit every input `paths` name, in order. `s3` is the S3 client when some
/// path is an S3 URL; `days` the day folders (`YYYY/MM/DD/`) of the time
/// window, when it has a start.
pub fn produce<'a>(
    paths: &'a [String],
    s3: Option<&'a S3Source>,
    days: Option<&[String]>,
    emit: Emit<'_, 'a>,
) {
    for path in paths {
        if path == "-" {
            emit(Job::Input(Input {
                source: "-".to_string(),
                open: Box::new(|| Ok(Box::new(io::stdin()) as Box<dyn Read + Send>)),
                size: None,
            }));
        } else if let Some((bucket, prefix)) = parse_url(path) {
            match s3 {
                Some(src) => s3_url(src, bucket, prefix, days, emit),
                None => emit(Job::Note(Note::Failed {
                    input: path.clone(),
                    message: "no S3 client was made for this URL".to_string(),
                })),
            }
        } else {
            walk(Path::new(path), true, emit);
        }
    }
}

/// A path named on the command line (`named`) is always read; inside a
/// directory only the wanted extensions are.
fn walk(path: &Path, named: bool, emit: Emit<'_, '_>) {
    let failed = |e: io::Error| {
        Job::Note(Note::Failed {
            input: path.display().to_string(),
            message: e.to_string(),
        })
    };
    let meta = if named {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    };
    let meta = match meta {
        Ok(m) => m,
        Err(e) => return emit(failed(e)),
    };
    if meta.is_dir() {
        let entries = std::fs::read_dir(path).and_then(|rd| {
            rd.map(|e| e.map(|e| e.path()))
                .collect::<Result<Vec<_>, _>>()
        });
        let mut entries = match entries {
            Ok(v) => v,
            Err(e) => return emit(failed(e)),
        };
        entries.sort();
        for entry in entries {
            walk(&entry, false, emit);
        }
        return;
    }
    let name = path.display().to_string();
    if !named && (!meta.is_file() || !wanted(&name)) {
        return emit(Job::Note(Note::Ignored));
    }
    let path = path.to_path_buf();
    emit(Job::Input(Input {
        source: name,
        open: Box::new(move || {
            File::open(&path)
                .map(|f| Box::new(f) as Box<dyn Read + Send>)
                .map_err(|e| e.to_string())
        }),
        size: meta.is_file().then_some(meta.len()),
    }));
}

/// One `s3://` URL: the whole prefix, or only the window's day folders
/// under a `CloudTrail/REGION/` prefix.
fn s3_url<'a>(
    src: &'a S3Source,
    bucket: &str,
    prefix: &str,
    days: Option<&[String]>,
    emit: Emit<'_, 'a>,
) {
    let mut keys_seen = false;
    match (days, region_level(prefix)) {
        (Some(days), Some(base)) => {
            for day in days {
                keys_seen |= s3_prefix(src, bucket, &format!("{base}{day}"), false, emit);
            }
        }
        _ => keys_seen = s3_prefix(src, bucket, prefix, true, emit),
    }
    if !keys_seen {
        let within = if days.is_some() && region_level(prefix).is_some() {
            " in the days of --since/--until"
        } else {
            ""
        };
        emit(Job::Note(Note::Warning(format!(
            "no objects under s3://{bucket}/{prefix}{within}"
        ))));
    }
}

/// List one prefix and emit its objects; whether it held any. `named`: the
/// prefix was given as is (an object named exactly is read whatever its name).
fn s3_prefix<'a>(
    src: &'a S3Source,
    bucket: &str,
    prefix: &str,
    named: bool,
    emit: Emit<'_, 'a>,
) -> bool {
    let mut keys_seen = false;
    let listed = src.for_each_key(bucket, prefix, |key, size| {
        keys_seen = true;
        if !(wanted(key) || named && key == prefix) {
            return emit(Job::Note(Note::Ignored));
        }
        let (bucket, key) = (bucket.to_string(), key.to_string());
        emit(Job::Input(Input {
            source: format!("s3://{bucket}/{key}"),
            open: Box::new(move || {
                src.open(&bucket, &key)
                    .map(|body| Box::new(body) as Box<dyn Read + Send + 'a>)
            }),
            size,
        }));
    });
    if let Err(message) = listed {
        emit(Job::Note(Note::Failed {
            input: format!("s3://{bucket}/{prefix}"),
            message,
        }));
        // Failed, not empty: no second warning.
        return true;
    }
    keys_seen
}
