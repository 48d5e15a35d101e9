//! The ingest pipeline: source files in, pages recorded.
//!
//! Workers (one per core) read, hash, decode and analyse source files in
//! parallel and store each page's blob durably; a single writer records the
//! results in scan order, one transaction per source file. Because results
//! are committed strictly in order, what a killed run has recorded is always
//! a prefix of the work list, and running the same command again skips that
//! prefix (same path, same bytes) and finishes with exactly the state an
//! uninterrupted run would have left.
//!
//! Quarantine is an outcome, not a failure: a file that cannot be read as a
//! page image is copied durably into the quarantine folder, recorded with its
//! reason, and then removed from where it was found.
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, mpsc};

use dangan_shared::BlobId;
use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;
use tracing::{debug, info, warn};

use crate::analyze::{Analyzer, PageFacts};
use crate::barcode::Scanner;
use crate::cache::{BlobCache, CacheError, sync_dir};
use crate::config::GroupingRules;
use crate::decode::{self, DecodeError, SourceFormat};
use crate::grouping::{self, OpenFile, Opener, PageCodes, Placement};
use crate::node::Node;
use crate::store::{BarcodeView, StoreError, now};
use crate::template::{self, ScanRules, TemplateError};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("cannot read input {path}: {source}")]
    Input {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot quarantine {path}: {source}")]
    Quarantine {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("a worker thread failed: {0}")]
    Worker(String),
}

/// What to ingest into, and how to report progress.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub batch: String,
    pub business_type: Option<String>,
    /// Show a progress bar on standard error.
    pub progress: bool,
    /// Remove source files once their pages are recorded (the hot folder).
    pub remove_ingested: bool,
    /// Who scans: recorded on every page (`pages.operator`), so that QC
    /// can count defects by operator.
    pub operator: String,
}

/// The outcome of one ingest run. Counts are of this run, except
/// `business_files` (the batch's total after it) and `exceptions` (the
/// batch's open exceptions after it).
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestReport {
    pub batch: String,
    /// Source files looked at (after de-duplicating paths).
    pub sources: usize,
    /// Pages recorded by this run.
    pub pages: usize,
    /// Of those, pages whose bytes were already in the cache.
    pub duplicates: usize,
    /// Source files (or frames) already recorded: same path, same bytes.
    pub skipped: usize,
    /// Source files moved to quarantine by this run.
    pub quarantined: usize,
    pub business_files: usize,
    pub exceptions: usize,
    /// Files in the given directory trees that are not page images and were left alone.
    pub ignored: Vec<String>,
    pub elapsed_seconds: f64,
}

/// Lists the source files under `paths` in scan order: the paths in the
/// order given, a directory's files in natural order (`p2` before `p10`),
/// hidden files and unknown extensions in directories left out (returned
/// separately). A path named twice is taken once.
pub fn enumerate(
    paths: &[PathBuf],
    extensions: &[String],
) -> Result<(Vec<PathBuf>, Vec<PathBuf>), IngestError> {
    let mut files = Vec::new();
    let mut ignored = Vec::new();
    let mut seen = HashSet::new();
    for path in paths {
        let path = std::path::absolute(path).map_err(|source| IngestError::Input {
            path: path.clone(),
            source,
        })?;
        let meta = fs::metadata(&path).map_err(|source| IngestError::Input {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(&path, &mut found)?;
            found.sort_by(|a, b| natural_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
            for file in found {
                let wanted = file
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| extensions.iter().any(|x| x.eq_ignore_ascii_case(e)));
                if !wanted {
                    ignored.push(file);
                } else if seen.insert(file.clone()) {
                    files.push(file);
                }
            }
        } else if seen.insert(path.clone()) {
            files.push(path);
        }
    }
    Ok((files, ignored))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), IngestError> {
    let entries = fs::read_dir(dir).map_err(|source| IngestError::Input {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| IngestError::Input {
            path: dir.to_owned(),
            source,
        })?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().map_err(|source| IngestError::Input {
            path: path.clone(),
            source,
        })?;
        if kind.is_dir() {
            walk(&path, out)?;
        } else if kind.is_file() || (kind.is_symlink() && path.is_file()) {
            // Symlinks to files are followed; symlinks to folders are not,
            // so a link loop cannot make the walk endless.
            out.push(path);
        }
    }
    Ok(())
}

/// Compares strings so that runs of digits compare by value: `p2` < `p10`.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let a_len = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let b_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let a_digits = trim_zeros(&a[..a_len]);
                let b_digits = trim_zeros(&b[..b_len]);
                let order = a_digits
                    .len()
                    .cmp(&b_digits.len())
                    .then_with(|| a_digits.cmp(b_digits))
                    .then_with(|| a_len.cmp(&b_len));
                if order != std::cmp::Ordering::Equal {
                    return order;
                }
                a = &a[a_len..];
                b = &b[b_len..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let start = digits
        .iter()
        .position(|d| *d != b'0')
        .unwrap_or(digits.len());
    &digits[start..]
}

/// Why a page image could not be turned into pages.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The image cannot be decoded (the file is at fault).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The cache could not store a blob or thumbnail (the node is at fault).
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// The analyser of a batch's pages: barcodes searched by `rules`, blank
/// threshold and thumbnail width from edge.toml.
pub fn analyzer(node: &Node, rules: &ScanRules) -> Analyzer {
    Analyzer::new(
        Scanner::new(&rules.barcodes),
        node.config.ingest.blank_max_ink_ratio,
        node.config.ingest.thumbnail_width,
    )
}

/// The page pipeline every page image goes through, whether ingested or
/// rescanned: each frame of an opened source is decoded, normalised to the
/// blob format the cache keeps, stored durably in the cache with its
/// thumbnail, and analysed (dpi, colour, barcodes, ink, blank, skew).
///
/// Frames are decoded and analysed one at a time, so a long PDF never holds
/// more than one decoded page. `decode::open` has already checked every
/// frame's header; should a frame still fail to decode, the error is
/// returned and blobs stored for earlier frames stay unreferenced until
/// `fsck --repair` (or the next ingest of the same file adopts them).
pub fn analyze_source(
    source: &decode::Source,
    analyzer: &Analyzer,
    cache: &BlobCache,
    file: Option<(&[u8], &BlobId)>,
) -> Result<Vec<PageFacts>, PageError> {
    let mut frames = Vec::with_capacity(source.frame_count as usize);
    for index in 0..source.frame_count {
        let frame = crate::raster::analysis_frame(source, index)?;
        frames.push(analyzer.analyze(frame, cache, file)?);
    }
    Ok(frames)
}

/// The quarantine code of a file that could not be read at all.
const UNREADABLE: &str = "unreadable";

/// What a worker made of one source file.
enum Outcome {
    /// Already recorded with the same bytes at the same path.
    Skipped {
        path: PathBuf,
        quarantine_path: Option<String>,
    },
    /// The file disappeared before it could be read (a hot folder race).
    Vanished,
    Pages {
        path: PathBuf,
        file_hash: BlobId,
        size: u64,
        format: SourceFormat,
        frames: Vec<PageFacts>,
    },
    Quarantine {
        path: PathBuf,
        file_hash: BlobId,
        bytes: Vec<u8>,
        code: &'static str,
        reason: String,
    },
}

/// The shared machinery of one ingest run.
struct Pipeline<'a> {
    node: &'a Node,
    analyzer: Analyzer,
}

impl Pipeline<'_> {
    fn process(&self, path: &Path, reader: &rusqlite::Connection) -> Result<Outcome, IngestError> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Outcome::Vanished),
            Err(err) => {
                warn!(path = %path.display(), error = %err, "cannot read source file");
                return Ok(Outcome::Quarantine {
                    path: path.to_owned(),
                    file_hash: BlobId::of(b""),
                    bytes: Vec::new(),
                    code: UNREADABLE,
                    reason: format!("unreadable file: {err}"),
                });
            }
        };
        let file_hash = BlobId::of(&bytes);
        let path_text = path.to_string_lossy();
        if let Some(row) = find_source(reader, &path_text, &file_hash)? {
            return Ok(Outcome::Skipped {
                path: path.to_owned(),
                quarantine_path: row,
            });
        }
        let limits = &self.node.config.ingest.limits;
        let source = match decode::open(&bytes, limits) {
            Ok(source) => source,
            Err(err) => return Ok(quarantine_outcome(path, file_hash, bytes, &err)),
        };
        // A frame that fails to decode quarantines the whole file.
        let frames = match analyze_source(
            &source,
            &self.analyzer,
            &self.node.cache,
            Some((&bytes, &file_hash)),
        ) {
            Ok(frames) => frames,
            Err(PageError::Decode(err)) => {
                drop(source);
                return Ok(quarantine_outcome(path, file_hash, bytes, &err));
            }
            Err(PageError::Cache(err)) => return Err(err.into()),
        };
        let format = source.format;
        drop(source);
        Ok(Outcome::Pages {
            path: path.to_owned(),
            file_hash,
            size: bytes.len() as u64,
            format,
            frames,
        })
    }
}

fn quarantine_outcome(
    path: &Path,
    file_hash: BlobId,
    bytes: Vec<u8>,
    err: &DecodeError,
) -> Outcome {
    Outcome::Quarantine {
        path: path.to_owned(),
        file_hash,
        bytes,
        code: err.code(),
        reason: err.to_string(),
    }
}

/// `Some(quarantine path or None)` when the source is recorded.
fn find_source(
    conn: &rusqlite::Connection,
    path: &str,
    file_hash: &BlobId,
) -> Result<Option<Option<String>>, IngestError> {
    Ok(conn
        .query_row(
            "SELECT quarantine_path FROM sources WHERE path = ?1 AND file_hash = ?2",
            params![path, file_hash.to_hex()],
            |row| row.get::<_, Option<String>>(0),
        )
        .optional()?)
}

/// Ingests `files` (already enumerated, in scan order) into a batch.
pub fn ingest_files(
    node: &Node,
    store: &mut crate::store::Store,
    files: &[PathBuf],
    options: &IngestOptions,
) -> Result<IngestReport, IngestError> {
    let started = std::time::Instant::now();
    let batch = store.open_batch(&options.batch, options.business_type.as_deref())?;
    let mut report = IngestReport {
        batch: batch.name.clone(),
        sources: files.len(),
        ..IngestReport::default()
    };
    let workers = node.config.ingest.workers.max(1);
    // How far workers may run ahead of the writer: enough to keep both busy,
    // small enough that waiting results stay a few pages' worth of memory.
    let window = workers * 2 + 2;
    let progress = progress_bar(options.progress, files.len());
    // The bound template's barcode rules override edge.toml's for this batch.
    let rules = template::scan_rules_for_batch(store.conn(), &node.config, batch.id)?;
    let analyzer = analyzer(node, &rules);
    let db_path = node.db_path();
    let node_ref: &Node = node;
    let pipeline = Pipeline {
        node: node_ref,
        analyzer,
    };
    let next_job = AtomicUsize::new(0);
    let written = Mutex::new(0usize);
    let advanced = Condvar::new();
    let abort = AtomicBool::new(false);
    let mut writer = Writer {
        batch_id: batch.id,
        batch_name: batch.name.clone(),
        rules: rules.grouping,
        quarantine_dir: node_ref.quarantine_dir(),
        remove_ingested: options.remove_ingested,
        operator: options.operator.clone(),
    };

    let result = std::thread::scope(|scope| -> Result<(), IngestError> {
        let (sender, receiver) =
            mpsc::sync_channel::<(usize, Result<Outcome, IngestError>)>(window);
        for worker in 0..workers {
            let sender = sender.clone();
            let (pipeline, next_job, written, advanced, abort, db_path) =
                (&pipeline, &next_job, &written, &advanced, &abort, &db_path);
            scope.spawn(move || {
                let reader = match rusqlite::Connection::open_with_flags(
                    db_path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                ) {
                    Ok(conn) => conn,
                    Err(err) => {
                        let _ = sender.send((usize::MAX, Err(err.into())));
                        return;
                    }
                };
                let _ = reader.busy_timeout(std::time::Duration::from_secs(30));
                loop {
                    let index = next_job.fetch_add(1, Ordering::SeqCst);
                    if index >= files.len() {
                        break;
                    }
                    {
                        let mut done = written.lock().unwrap_or_else(|e| e.into_inner());
                        while index >= *done + window && !abort.load(Ordering::SeqCst) {
                            done = advanced.wait(done).unwrap_or_else(|e| e.into_inner());
                        }
                    }
                    if abort.load(Ordering::SeqCst) {
                        break;
                    }
                    let path = &files[index];
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        pipeline.process(path, &reader)
                    }))
                    .unwrap_or_else(|panic| {
                        let message = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                            .unwrap_or_default();
                        Err(IngestError::Worker(format!(
                            "worker {worker} panicked on {}: {message}",
                            path.display()
                        )))
                    });
                    if sender.send((index, outcome)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);

        let mut pending: BTreeMap<usize, Result<Outcome, IngestError>> = BTreeMap::new();
        let mut next_write = 0usize;
        let outcome = (|| {
            for (index, outcome) in receiver.iter() {
                if index == usize::MAX {
                    outcome?;
                    continue;
                }
                pending.insert(index, outcome);
                while let Some(outcome) = pending.remove(&next_write) {
                    writer.write(store, outcome?, &mut report)?;
                    next_write += 1;
                    *written.lock().unwrap_or_else(|e| e.into_inner()) = next_write;
                    advanced.notify_all();
                    progress.inc(1);
                }
            }
            Ok(())
        })();
        if outcome.is_err() {
            abort.store(true, Ordering::SeqCst);
            advanced.notify_all();
            drop(receiver);
        }
        outcome
    });
    progress.finish_and_clear();
    result?;

    let (business_files, exceptions) = batch_totals(store.conn(), batch.id)?;
    report.business_files = business_files;
    report.exceptions = exceptions;
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    info!(
        batch = %report.batch,
        pages = report.pages,
        duplicates = report.duplicates,
        skipped = report.skipped,
        quarantined = report.quarantined,
        seconds = report.elapsed_seconds,
        "ingest finished"
    );
    Ok(report)
}

fn progress_bar(show: bool, total: usize) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] {pos}/{len} files  {per_sec}  ETA {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn batch_totals(conn: &rusqlite::Connection, batch_id: i64) -> Result<(usize, usize), IngestError> {
    let files: i64 = conn.query_row(
        "SELECT count(*) FROM business_files WHERE batch_id = ?1",
        [batch_id],
        |row| row.get(0),
    )?;
    let open = crate::exceptions::open_count(conn, batch_id)?;
    Ok((files as usize, open as usize))
}

/// Records outcomes in scan order.
struct Writer {
    batch_id: i64,
    batch_name: String,
    rules: GroupingRules,
    quarantine_dir: PathBuf,
    remove_ingested: bool,
    operator: String,
}

impl Writer {
    fn write(
        &mut self,
        store: &mut crate::store::Store,
        outcome: Outcome,
        report: &mut IngestReport,
    ) -> Result<(), IngestError> {
        // The writer is the only writer, so a source not recorded now stays
        // unrecorded until this outcome is written. One recorded since its
        // worker looked was reached twice (the same file in two rounds).
        if let Outcome::Pages {
            path, file_hash, ..
        }
        | Outcome::Quarantine {
            path, file_hash, ..
        } = &outcome
            && find_source(store.conn(), &path.to_string_lossy(), file_hash)?.is_some()
        {
            report.skipped += 1;
            return Ok(());
        }
        match outcome {
            Outcome::Vanished => {}
            Outcome::Skipped {
                path,
                quarantine_path,
            } => {
                report.skipped += 1;
                // A quarantine interrupted after it was recorded: finish the move.
                if quarantine_path.is_some() || self.remove_ingested {
                    remove_source(&path);
                }
            }
            Outcome::Quarantine {
                path,
                file_hash,
                bytes,
                code,
                reason,
            } => {
                let tx = store.transaction()?;
                // A file that cannot even be read cannot be copied or moved:
                // it is recorded where it is, for the operator to fix.
                let unreadable = code == UNREADABLE;
                let stored = if unreadable {
                    None
                } else {
                    Some(self.store_quarantined(&path, &file_hash, &bytes)?)
                };
                tx.execute(
                    "INSERT INTO sources(batch_id, path, file_hash, size, status, reason_code, reason,
                                         quarantine_path, recorded_at)
                     VALUES (?1, ?2, ?3, ?4, 'quarantined', ?5, ?6, ?7, ?8)",
                    params![
                        self.batch_id,
                        path.to_string_lossy(),
                        file_hash.to_hex(),
                        bytes.len() as i64,
                        code,
                        reason,
                        stored.as_ref().map(|p| p.to_string_lossy().into_owned()),
                        now()
                    ],
                )?;
                tx.commit()?;
                info!(path = %path.display(), code, %reason, "quarantined");
                report.quarantined += 1;
                if !unreadable {
                    remove_source(&path);
                }
            }
            Outcome::Pages {
                path,
                file_hash,
                size,
                format,
                frames,
            } => {
                let tx = store.transaction()?;
                tx.execute(
                    "INSERT INTO sources(batch_id, path, file_hash, size, status, format, frame_count, recorded_at)
                     VALUES (?1, ?2, ?3, ?4, 'ingested', ?5, ?6, ?7)",
                    params![
                        self.batch_id,
                        path.to_string_lossy(),
                        file_hash.to_hex(),
                        size as i64,
                        format_name(format),
                        frames.len() as i64,
                        now()
                    ],
                )?;
                let source_id = tx.last_insert_rowid();
                for facts in &frames {
                    let duplicate = self.record_page(&tx, source_id, facts)?;
                    report.pages += 1;
                    report.duplicates += usize::from(duplicate);
                }
                tx.commit()?;
                debug!(path = %path.display(), pages = frames.len(), "recorded");
                if self.remove_ingested {
                    remove_source(&path);
                }
            }
        }
        Ok(())
    }

    /// Records one page and places it in a business file. Returns whether its
    /// blob was already known.
    fn record_page(
        &self,
        tx: &Transaction<'_>,
        source_id: i64,
        facts: &PageFacts,
    ) -> Result<bool, IngestError> {
        let now = now();
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO blobs(id, size, format, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                facts.blob.to_hex(),
                facts.blob_size as i64,
                blob_format_name(facts.blob_format),
                now
            ],
        )?;
        let duplicate = inserted == 0;
        if duplicate {
            // The worker has just put the blob back in the cache if an
            // archived batch's eviction had removed it.
            tx.execute(
                "UPDATE blobs SET evicted_at = NULL WHERE id = ?1 AND evicted_at IS NOT NULL",
                [facts.blob.to_hex()],
            )?;
        }

        let open: Option<(i64, OpenFile)> = tx
            .query_row(
                "SELECT f.id, f.business_number, f.opened_by FROM pages p
                 JOIN business_files f ON f.id = p.business_file_id
                 WHERE p.batch_id = ?1 ORDER BY p.seq DESC LIMIT 1",
                [self.batch_id],
                |row| {
                    Ok((
                        row.get(0)?,
                        OpenFile {
                            business_number: row.get(1)?,
                            opened_by: Opener::parse(&row.get::<_, String>(2)?),
                        },
                    ))
                },
            )
            .optional()?;
        let codes = PageCodes::from_barcodes(&self.rules, &facts.barcodes);
        let decision = grouping::place(open.as_ref().map(|(_, f)| f), &codes);
        let (file_id, new_number) = match (&decision.placement, &open) {
            (Placement::Continue, Some((id, _))) => (*id, None),
            (Placement::LinkOpen { business_number }, Some((id, _))) => {
                tx.execute(
                    "UPDATE business_files SET business_number = ?1 WHERE id = ?2",
                    params![business_number, id],
                )?;
                (*id, Some(business_number.clone()))
            }
            (
                Placement::OpenNew {
                    business_number,
                    opened_by,
                },
                _,
            ) => {
                tx.execute(
                    "INSERT INTO business_files(batch_id, seq, business_number, opened_by, created_at)
                     VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM business_files WHERE batch_id = ?1), ?2, ?3, ?4)",
                    params![self.batch_id, business_number, opened_by.as_str(), now],
                )?;
                (tx.last_insert_rowid(), business_number.clone())
            }
            // `place` continues or links only when a file is open.
            (_, None) => {
                return Err(IngestError::Worker(
                    "grouping placed a page in a file that does not exist".into(),
                ));
            }
        };
        if let Some(number) = &new_number {
            // An export imported before the scan (著录) fills the file now.
            crate::index::fill_from_record(tx, file_id, number, &now)?;
        }
        let barcodes: Vec<BarcodeView> = facts.barcodes.iter().map(BarcodeView::from).collect();
        tx.execute(
            "INSERT INTO pages(batch_id, seq, business_file_id, source_id, frame, blob_id, duplicate, format,
                               width, height, dpi, colour, barcodes, separator, blank, ink_ratio, created_at,
                               skew_degrees, operator)
             VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM pages WHERE batch_id = ?1), ?2, ?3, ?4, ?5, ?6, ?7,
                     ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            params![
                self.batch_id,
                file_id,
                source_id,
                facts.frame,
                facts.blob.to_hex(),
                duplicate,
                blob_format_name(facts.blob_format),
                facts.width,
                facts.height,
                facts.dpi,
                colour_name(facts.colour),
                serde_json::to_string(&barcodes).unwrap_or_else(|_| "[]".into()),
                codes.separator,
                facts.blank,
                facts.ink_ratio,
                now,
                facts.skew_degrees,
                self.operator
            ],
        )?;
        let page_id = tx.last_insert_rowid();
        let exception = |code: &str, detail: String| {
            tx.execute(
                "INSERT INTO exceptions(batch_id, page_id, code, detail, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![self.batch_id, page_id, code, detail, now],
            )
        };
        if let Some(numbers) = &decision.multiple_numbers {
            exception(
                "multiple_business_numbers",
                format!(
                    "the page carries {} business numbers: {}; the first was used",
                    numbers.len(),
                    numbers.join(", ")
                ),
            )?;
        }
        if let Some(number) = new_number {
            let elsewhere: Option<String> = tx
                .query_row(
                    "SELECT b.name FROM business_files f JOIN batches b ON b.id = f.batch_id
                     WHERE f.business_number = ?1 AND b.id != ?2 AND b.state != 'archived' LIMIT 1",
                    params![number, self.batch_id],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(other) = elsewhere {
                exception(
                    "business_number_in_other_batch",
                    format!(
                        "business number {number} is already used in batch {other}, which is not yet archived"
                    ),
                )?;
            }
            let earlier: i64 = tx.query_row(
                "SELECT count(*) FROM business_files WHERE batch_id = ?1 AND business_number = ?2 AND id != ?3",
                params![self.batch_id, number, file_id],
                |row| row.get(0),
            )?;
            if earlier > 0 {
                exception(
                    "business_number_repeated",
                    format!(
                        "business number {number} opens a second business file in batch {}: pages of one file are not together",
                        self.batch_name
                    ),
                )?;
            }
        }
        Ok(duplicate)
    }

    /// Copies the file's bytes into the quarantine folder durably.
    fn store_quarantined(
        &self,
        path: &Path,
        file_hash: &BlobId,
        bytes: &[u8],
    ) -> Result<PathBuf, IngestError> {
        let err = |source| IngestError::Quarantine {
            path: path.to_owned(),
            source,
        };
        let dir = self.quarantine_dir.join(sanitize(&self.batch_name));
        fs::create_dir_all(&dir).map_err(err)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let target = dir.join(format!("{}-{}", file_hash.short(), sanitize(&name)));
        if !target.exists() {
            let temp = dir.join(format!(".{}.part", file_hash.short()));
            let mut file = fs::File::create(&temp).map_err(err)?;
            file.write_all(bytes).map_err(err)?;
            file.sync_all().map_err(err)?;
            drop(file);
            fs::rename(&temp, &target).map_err(err)?;
            sync_dir(&dir).map_err(err)?;
        }
        Ok(target)
    }
}

fn remove_source(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            warn!(path = %path.display(), error = %err, "cannot remove source file; it stays where it is")
        }
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

pub fn format_name(format: SourceFormat) -> &'static str {
    match format {
        SourceFormat::Jpeg => "jpeg",
        SourceFormat::Png => "png",
        SourceFormat::Tiff => "tiff",
        SourceFormat::Pdf => "pdf",
    }
}

/// The name recorded for what a blob's bytes are: "jpeg", "png" or "tiff".
pub fn blob_format_name(format: decode::BlobFormat) -> &'static str {
    match format {
        decode::BlobFormat::Jpeg => "jpeg",
        decode::BlobFormat::Png => "png",
        decode::BlobFormat::Tiff => "tiff",
    }
}

pub fn colour_name(colour: decode::ColourMode) -> &'static str {
    match colour {
        decode::ColourMode::Bilevel => "bilevel",
        decode::ColourMode::Gray => "gray",
        decode::ColourMode::Colour => "colour",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_puts_p2_before_p10() {
        let mut names = vec!["p10.tif", "p2.tif", "p1.tif", "p01.tif", "a.tif", "p2a.tif"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            vec!["a.tif", "p1.tif", "p01.tif", "p2.tif", "p2a.tif", "p10.tif"]
        );
    }
}
