//! Rescanning a page (rework, 返工重扫): a new image replaces a page's
//! image, and the old one stays viewable in the page's history.
//!
//! The new image goes through the same page pipeline as ingest
//! ([`crate::ingest::analyze_source`]) with the batch's scan rules. A file
//! that cannot be decoded is refused at once and changes nothing: unlike
//! ingest it is not quarantined, because the operator who just scanned it is
//! there to be told. The page row and its `page_history` row are written in
//! one transaction, after the new blob is durable.
//!
//! The page keeps its place: its sequence number, business file and source
//! record stay, so grouping is not redone. The old blob stays in the cache
//! and in `blobs`: `page_history` references it, so `fsck` does not call it
//! an orphan, and eviction (which only removes blobs every page of which is
//! archived) never removes a blob that only history references.
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::cache::CacheError;
use crate::decode::{self, DecodeError};
use crate::ingest::{self, PageError, blob_format_name, colour_name};
use crate::lifecycle::{Actor, BatchState};
use crate::node::Node;
use crate::store::{BarcodeView, Store, StoreError, now};
use crate::template::{self, TemplateError};

/// The states in which a batch's pages may be rescanned.
pub const RESCAN_STATES: [BatchState; 3] =
    [BatchState::Open, BatchState::Scanned, BatchState::Rework];

#[derive(Debug, thiserror::Error)]
pub enum RescanError {
    #[error("no batch named {0:?}")]
    NoSuchBatch(String),
    #[error("batch {batch:?} has no page {page}")]
    NoSuchPage { batch: String, page: i64 },
    #[error(
        "batch {batch:?} is {state}; pages can only be rescanned while a batch is open, scanned \
         or in rework"
    )]
    WrongState { batch: String, state: String },
    #[error("a rescan needs a reason")]
    ReasonRequired,
    #[error("cannot read {path}: {source}")]
    Input {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} cannot be used as the page's image ({code}): {source}")]
    Undecodable {
        path: PathBuf,
        code: &'static str,
        source: DecodeError,
    },
    #[error("{path} holds {frames} pages; a rescan replaces exactly one page")]
    NotOnePage { path: PathBuf, frames: u32 },
    #[error("{path} is the page's current image (blob {blob}); nothing to replace")]
    Unchanged { path: PathBuf, blob: String },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for RescanError {
    fn from(err: rusqlite::Error) -> Self {
        RescanError::Store(err.into())
    }
}

/// What a rescan changed.
#[derive(Debug, Clone, Serialize)]
pub struct RescanReport {
    pub batch: String,
    /// The page's scan position in the batch (`seq`).
    pub page: i64,
    pub old_blob: String,
    pub new_blob: String,
    /// The new image's bytes were already in the cache.
    pub duplicate: bool,
    pub format: String,
    pub width: u32,
    pub height: u32,
    pub dpi: Option<u32>,
    pub colour: String,
    pub blank: bool,
    pub ink_ratio: f64,
    pub skew_degrees: Option<f32>,
    pub barcodes: Vec<BarcodeView>,
    pub reason: String,
    pub actor: String,
    pub at: String,
}

/// One rescan of a page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub old_blob: String,
    pub new_blob: String,
    pub reason: String,
    pub actor: String,
    pub at: String,
}

/// The batch's id and state, and the page's id and current blob.
fn locate(
    conn: &Connection,
    batch: &str,
    page_seq: i64,
) -> Result<(i64, String, i64, String), RescanError> {
    let (batch_id, state): (i64, String) = conn
        .query_row(
            "SELECT id, state FROM batches WHERE name = ?1",
            [batch],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?
        .ok_or_else(|| RescanError::NoSuchBatch(batch.to_owned()))?;
    let (page_id, blob): (i64, String) = conn
        .query_row(
            "SELECT id, blob_id FROM pages WHERE batch_id = ?1 AND seq = ?2",
            params![batch_id, page_seq],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?
        .ok_or_else(|| RescanError::NoSuchPage {
            batch: batch.to_owned(),
            page: page_seq,
        })?;
    Ok((batch_id, state, page_id, blob))
}

fn check_state(batch: &str, state: &str) -> Result<(), RescanError> {
    if RESCAN_STATES.iter().any(|s| s.as_str() == state) {
        Ok(())
    } else {
        Err(RescanError::WrongState {
            batch: batch.to_owned(),
            state: state.to_owned(),
        })
    }
}

/// Replaces page `page_seq` of `batch` with the image in `file`, recording
/// who did it and why. The caller holds the data folder's write lock.
pub fn rescan_page(
    node: &Node,
    store: &mut Store,
    batch: &str,
    page_seq: i64,
    file: &Path,
    actor: &Actor,
    reason: &str,
) -> Result<RescanReport, RescanError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(RescanError::ReasonRequired);
    }
    // Checked before anything is decoded or stored, so that a refused
    // rescan leaves nothing behind in the cache.
    let (batch_id, state, _, _) = locate(store.conn(), batch, page_seq)?;
    check_state(batch, &state)?;

    let bytes = std::fs::read(file).map_err(|source| RescanError::Input {
        path: file.to_owned(),
        source,
    })?;
    let undecodable = |source: DecodeError| RescanError::Undecodable {
        path: file.to_owned(),
        code: source.code(),
        source,
    };
    let source = decode::open(&bytes, &node.config.ingest.limits).map_err(undecodable)?;
    drop(bytes);
    if source.frame_count != 1 {
        return Err(RescanError::NotOnePage {
            path: file.to_owned(),
            frames: source.frame_count,
        });
    }
    let rules = template::scan_rules_for_batch(store.conn(), &node.config, batch_id)?;
    let analyzer = ingest::analyzer(node, &rules);
    let facts = match ingest::analyze_source(&source, &analyzer, &node.cache, None) {
        Ok(mut frames) => frames.remove(0),
        Err(PageError::Decode(err)) => return Err(undecodable(err)),
        Err(PageError::Cache(err)) => return Err(err.into()),
    };
    drop(source);

    // The new blob is durable; now the rows that point at it.
    let tx = store.transaction()?;
    let (_, state, page_id, old_blob) = locate(&tx, batch, page_seq)?;
    check_state(batch, &state)?;
    let new_blob = facts.blob.to_hex();
    if new_blob == old_blob {
        return Err(RescanError::Unchanged {
            path: file.to_owned(),
            blob: new_blob,
        });
    }
    let at = now();
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO blobs(id, size, format, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            new_blob,
            facts.blob_size as i64,
            blob_format_name(facts.blob_format),
            at
        ],
    )?;
    let duplicate = inserted == 0;
    if duplicate {
        // Analysing the page has just put the blob back in the cache if an
        // archived batch's eviction had removed it.
        tx.execute(
            "UPDATE blobs SET evicted_at = NULL WHERE id = ?1 AND evicted_at IS NOT NULL",
            [&new_blob],
        )?;
    }
    let barcodes: Vec<BarcodeView> = facts.barcodes.iter().map(BarcodeView::from).collect();
    tx.execute(
        "UPDATE pages SET blob_id = ?1, duplicate = ?2, format = ?3, width = ?4, height = ?5,
                dpi = ?6, colour = ?7, barcodes = ?8, blank = ?9, ink_ratio = ?10,
                skew_degrees = ?11, operator = ?12
         WHERE id = ?13",
        params![
            new_blob,
            duplicate,
            blob_format_name(facts.blob_format),
            facts.width,
            facts.height,
            facts.dpi,
            colour_name(facts.colour),
            serde_json::to_string(&barcodes).unwrap_or_else(|_| "[]".into()),
            facts.blank,
            facts.ink_ratio,
            facts.skew_degrees,
            actor.name(),
            page_id
        ],
    )?;
    tx.execute(
        "INSERT INTO page_history(page_id, old_blob_id, new_blob_id, reason, actor, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![page_id, old_blob, new_blob, reason, actor.name(), at],
    )?;
    tx.commit()?;
    tracing::info!(
        batch,
        page = page_seq,
        old = %old_blob.get(..12).unwrap_or(&old_blob),
        new = %facts.blob.short(),
        actor = actor.name(),
        "page rescanned"
    );
    Ok(RescanReport {
        batch: batch.to_owned(),
        page: page_seq,
        old_blob,
        new_blob,
        duplicate,
        format: blob_format_name(facts.blob_format).to_owned(),
        width: facts.width,
        height: facts.height,
        dpi: facts.dpi,
        colour: colour_name(facts.colour).to_owned(),
        blank: facts.blank,
        ink_ratio: facts.ink_ratio,
        skew_degrees: facts.skew_degrees,
        barcodes,
        reason: reason.to_owned(),
        actor: actor.name().to_owned(),
        at,
    })
}

/// Every rescan of page `page_seq` of `batch`, oldest first.
pub fn page_history(
    conn: &Connection,
    batch: &str,
    page_seq: i64,
) -> Result<Vec<HistoryEntry>, RescanError> {
    let (_, _, page_id, _) = locate(conn, batch, page_seq)?;
    let mut statement = conn.prepare(
        "SELECT old_blob_id, new_blob_id, reason, actor, at FROM page_history
         WHERE page_id = ?1 ORDER BY id",
    )?;
    let rows = statement.query_map([page_id], |row| {
        Ok(HistoryEntry {
            old_blob: row.get(0)?,
            new_blob: row.get(1)?,
            reason: row.get(2)?,
            actor: row.get(3)?,
            at: row.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
