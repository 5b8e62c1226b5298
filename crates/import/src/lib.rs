//! Customer data in bulk, between files and the store: the import pipeline (a
//! CSV in, customers in the store, a report out; this file), the export
//! ([`export`]: CSV or JSON lines, masked unless revealed) and segment
//! classification over every customer ([`segments`]), and do-not-call list
//! files ([`dnc`]).
//!
//! [`import_file`] (a path) and [`import_reader`] (any `Read`, e.g. an HTTP
//! body) run the same loop:
//!
//! ```text
//!  reader thread: Source::next_batch (decode, normalise; rayon) ─► seal_batch (rayon)
//!        │ bounded channel (2 batches)
//!        ▼
//!  calling task: Importer::write_sealed (one transaction per batch) ─► Progress
//!        ▼
//!  Importer::finish ─► rejects CSV (if any) ─► ImportReport
//! ```
//!
//! The reader thread keeps the CPU work for the next batch overlapping the
//! database work for the current one. Rejected rows are reported one by one to
//! the caller's [`Progress`] and written together to a CSV at the end
//! (default `<data_dir>/rejects/<file stem>-<import id>.csv`).
//!
//! Architecture invariant: no CSV rules here (`waihu-ingest` owns reading,
//! validating and normalising rows) and no SQL (`waihu-store` owns the
//! database); this crate only moves batches from one to the other, writes the
//! rejects file and reports progress. It prints nothing: front ends (the CLI,
//! the HTTP API) decide what the user sees.

pub mod dnc;
pub mod export;
pub mod segments;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use waihu_ingest::{ColumnMap, IngestError, Reject};
use waihu_store::{Store, StoreError};

/// Read-ahead buffer for files: large reads keep the decoder fed.
const READ_BUFFER: usize = 1 << 20;

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Region for numbers written without a country code (ISO 3166).
    pub region: String,
    /// YAML file mapping headers to fields (`columns: {客户电话: phone}`).
    pub map: Option<PathBuf>,
    /// Where to write rejected rows; default `<data_dir>/rejects/<stem>-<import>.csv`.
    pub rejects: Option<PathBuf>,
    /// Rows per store transaction (at least 1).
    pub batch: usize,
    /// 号段归属地 table: Chinese numbers are stored with their province/city
    /// as region (`广东/深圳`); without it, with the country (`CN`).
    pub geo: Option<Arc<waihu_geo::Table>>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            region: "CN".into(),
            map: None,
            rejects: None,
            batch: 5000,
            geo: None,
        }
    }
}

/// What an import did. Serialised as the `--json` line of `waihu customers
/// import` and the body of `POST /api/customers/import`: the field names and
/// order are part of both interfaces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    pub file: String,
    pub encoding: String,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    pub rejects_file: Option<String>,
    pub seconds: f64,
    pub rows_per_s: f64,
}

/// Where an import stands after a batch was committed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImportProgress {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    /// Input bytes consumed so far (approximate: the decoder reads ahead).
    pub bytes_read: u64,
    /// Input size, when known (files, HTTP bodies).
    pub bytes_total: Option<u64>,
    pub elapsed: Duration,
}

impl ImportProgress {
    /// Rows read so far, valid and rejected.
    pub fn rows(&self) -> u64 {
        self.created + self.updated + self.unchanged + self.rejected
    }

    pub fn rows_per_s(&self) -> f64 {
        self.rows() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Share of the input read, 0..=1, when its size is known.
    pub fn fraction(&self) -> Option<f64> {
        let total = self.bytes_total.filter(|t| *t > 0)?;
        Some((self.bytes_read as f64 / total as f64).min(1.0))
    }

    /// Time left at the rate so far, when the input size is known.
    pub fn eta(&self) -> Option<Duration> {
        let f = self.fraction()?;
        if f <= 0.0 {
            return None;
        }
        let secs = self.elapsed.as_secs_f64() * (1.0 - f) / f;
        Some(Duration::from_secs_f64(secs.max(0.0)))
    }
}

/// What the caller hears while an import runs. Both methods default to doing
/// nothing; `()` is the silent reporter.
pub trait Progress {
    /// A row was rejected (in file order; called before its batch is written).
    fn reject(&mut self, reject: &Reject) {
        let _ = reject;
    }

    /// A batch was committed.
    fn batch(&mut self, progress: &ImportProgress) {
        let _ = progress;
    }
}

impl Progress for () {}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("opening {path}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {path}")]
    ReadMap {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The CSV itself could not be read (no header, no phone column, broken input).
    #[error("reading {file}")]
    Read {
        file: String,
        #[source]
        source: IngestError,
    },
    /// An XLSX workbook that cannot be read.
    #[error("reading {file}: {message}")]
    Xlsx { file: String, message: String },
    /// Bad options: unknown region, bad column mapping.
    #[error(transparent)]
    Options(#[from] IngestError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("creating {path}")]
    Create {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}")]
    WriteRejects {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The installed 号段归属地 table is there but unreadable.
    #[error(transparent)]
    Geo(#[from] waihu_geo::FileError),
}

/// The 号段归属地 table installed by `scripts/deps/geo.sh` for this data
/// directory ([`waihu_geo::default_path`]), `None` when it is not installed:
/// imports then store the country as region.
pub fn installed_geo(data_dir: &Path) -> Result<Option<Arc<waihu_geo::Table>>, ImportError> {
    Ok(waihu_geo::read_installed(data_dir)?.map(Arc::new))
}

/// Import a CSV file (UTF-8 or GBK, Chinese or English headers). The report
/// names the file as `path` is displayed.
pub async fn import_file<P: Progress>(
    store: &Store,
    path: &Path,
    opts: &ImportOptions,
    progress: &mut P,
) -> Result<ImportReport, ImportError> {
    let started = Instant::now();
    if waihu_ingest::xlsx::named_xlsx(&path.display().to_string()) {
        let bytes = std::fs::read(path).map_err(|source| ImportError::Open {
            path: path.display().to_string(),
            source,
        })?;
        return import_bytes(store, &path.display().to_string(), bytes, opts, progress).await;
    }
    let file = std::fs::File::open(path).map_err(|source| ImportError::Open {
        path: path.display().to_string(),
        source,
    })?;
    let size = file.metadata().ok().map(|m| m.len());
    let input = std::io::BufReader::with_capacity(READ_BUFFER, file);
    run(
        store,
        path.display().to_string(),
        input,
        size,
        opts,
        progress,
        started,
    )
    .await
}

/// Import a whole file held in memory (an upload): an XLSX workbook (by its
/// ZIP signature) is read through its first worksheet, anything else as CSV.
pub async fn import_bytes<P: Progress>(
    store: &Store,
    name: &str,
    bytes: Vec<u8>,
    opts: &ImportOptions,
    progress: &mut P,
) -> Result<ImportReport, ImportError> {
    let bytes = if waihu_ingest::xlsx::looks_like_xlsx(&bytes) {
        waihu_ingest::xlsx::to_csv(&bytes).map_err(|message| ImportError::Xlsx {
            file: name.to_string(),
            message,
        })?
    } else {
        bytes
    };
    let size = bytes.len() as u64;
    import_reader(
        store,
        name,
        std::io::Cursor::new(bytes),
        Some(size),
        opts,
        progress,
    )
    .await
}

/// Import a CSV read from `input`, reported (and its default rejects file
/// named) as `name`. `size` is the input length when known, for the ETA.
pub async fn import_reader<R, P>(
    store: &Store,
    name: &str,
    input: R,
    size: Option<u64>,
    opts: &ImportOptions,
    progress: &mut P,
) -> Result<ImportReport, ImportError>
where
    R: Read + Send + 'static,
    P: Progress,
{
    run(
        store,
        name.to_string(),
        input,
        size,
        opts,
        progress,
        Instant::now(),
    )
    .await
}

/// Counts the bytes the decoder has pulled, for progress.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

async fn run<R, P>(
    store: &Store,
    file_name: String,
    input: R,
    size: Option<u64>,
    opts: &ImportOptions,
    progress: &mut P,
    started: Instant,
) -> Result<ImportReport, ImportError>
where
    R: Read + Send + 'static,
    P: Progress,
{
    let mut ingest = waihu_ingest::Options::new(&opts.region)?;
    if let Some(map) = &opts.map {
        let text = std::fs::read_to_string(map).map_err(|source| ImportError::ReadMap {
            path: map.display().to_string(),
            source,
        })?;
        ingest.map = ColumnMap::from_yaml(&text, &map.display().to_string())?;
    }
    ingest.schema = store.attr_schema().await?;
    ingest.geo = opts.geo.clone();
    let bytes_read = Arc::new(AtomicU64::new(0));
    let input = Counting {
        inner: input,
        read: bytes_read.clone(),
    };
    let src = waihu_ingest::Source::open(input, ingest).map_err(|source| ImportError::Read {
        file: file_name.clone(),
        source,
    })?;
    let headers = src.headers.clone();
    let encoding = src.encoding.to_string();
    let mut importer = store
        .begin_import(&file_name, &encoding, &src.kinds, Utc::now())
        .await?;

    let batch = opts.batch.max(1);
    // Reader thread: decode, normalise and seal (rayon inside), so the
    // database work below overlaps with the CPU work for the next batch.
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let vault = store.vault().clone();
    let reader = std::thread::spawn(move || {
        let mut src = src;
        loop {
            match src.next_batch(batch) {
                Ok(b) if b.is_empty() => break,
                Ok(b) => {
                    let (good, bad) = waihu_ingest::split_batch(b);
                    let sealed = waihu_store::seal_batch(&vault, &good);
                    if tx.blocking_send(Ok((sealed, bad))).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let mut rejects = Vec::new();
    let mut done = ImportProgress {
        created: 0,
        updated: 0,
        unchanged: 0,
        rejected: 0,
        bytes_read: 0,
        bytes_total: size,
        elapsed: Duration::ZERO,
    };
    while let Some(msg) = rx.recv().await {
        let (sealed, bad) = msg.map_err(|source| ImportError::Read {
            file: file_name.clone(),
            source,
        })?;
        for rej in bad {
            progress.reject(&rej);
            rejects.push(rej);
        }
        let s = importer.write_sealed(sealed, Utc::now()).await?;
        done.created += s.created;
        done.updated += s.updated;
        done.unchanged += s.unchanged;
        done.rejected = rejects.len() as u64;
        done.bytes_read = bytes_read.load(Ordering::Relaxed);
        done.elapsed = started.elapsed();
        progress.batch(&done);
    }
    let _ = reader.join();
    let import_id = importer.id().0;
    let stats = importer.finish(rejects.len() as u64, Utc::now()).await?;
    let rejects_file = if rejects.is_empty() {
        None
    } else {
        let p = match &opts.rejects {
            Some(p) => p.clone(),
            None => default_rejects_path(store.data_dir(), &file_name, import_id),
        };
        write_rejects_file(&p, &headers, &rejects)?;
        Some(p.display().to_string())
    };
    let seconds = started.elapsed().as_secs_f64();
    let total = stats.created + stats.updated + stats.unchanged + stats.rejected;
    Ok(ImportReport {
        file: file_name,
        encoding,
        created: stats.created,
        updated: stats.updated,
        unchanged: stats.unchanged,
        rejected: stats.rejected,
        rejects_file,
        seconds,
        rows_per_s: total as f64 / seconds.max(1e-9),
    })
}

/// `<data_dir>/rejects/<file stem>-<import id>.csv`. Only the last path
/// component of `file` is used, so a name sent over HTTP cannot leave the
/// rejects directory.
pub fn default_rejects_path(data_dir: &Path, file: &str, import_id: i64) -> PathBuf {
    let stem = Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "import".into());
    data_dir
        .join("rejects")
        .join(format!("{stem}-{import_id}.csv"))
}

fn write_rejects_file(p: &Path, headers: &[String], rejects: &[Reject]) -> Result<(), ImportError> {
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ImportError::Create {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let f = std::fs::File::create(p).map_err(|source| ImportError::Create {
        path: p.display().to_string(),
        source,
    })?;
    waihu_ingest::write_rejects(f, headers, rejects).map_err(|source| ImportError::WriteRejects {
        path: p.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_follows_the_rate_so_far() {
        let p = ImportProgress {
            created: 100,
            updated: 0,
            unchanged: 0,
            rejected: 0,
            bytes_read: 250,
            bytes_total: Some(1000),
            elapsed: Duration::from_secs(1),
        };
        assert_eq!(p.rows(), 100);
        assert_eq!(p.fraction(), Some(0.25));
        assert_eq!(p.eta(), Some(Duration::from_secs(3)));
        assert!((p.rows_per_s() - 100.0).abs() < 1e-9);
        let unknown = ImportProgress {
            bytes_total: None,
            ..p
        };
        assert_eq!(unknown.eta(), None);
    }

    #[test]
    fn default_rejects_path_stays_in_the_rejects_dir() {
        let d = Path::new("/data");
        assert_eq!(
            default_rejects_path(d, "examples/customers.csv", 3),
            Path::new("/data/rejects/customers-3.csv")
        );
        assert_eq!(
            default_rejects_path(d, "../../etc/passwd", 4),
            Path::new("/data/rejects/passwd-4.csv")
        );
        assert_eq!(
            default_rejects_path(d, "..", 5),
            Path::new("/data/rejects/import-5.csv")
        );
    }
}
