//! Keeps the image cache within its budget by removing the images of
//! archived batches (the hub holds them), oldest archived first. Thumbnails
//! and every record stay; a blob any batch not yet archived still uses is
//! never removed.
use rusqlite::params;
use serde::Serialize;

use crate::node::Node;
use crate::store::{Store, StoreError, now};

#[derive(Debug, Clone, Serialize)]
pub struct CacheStatus {
    /// The configured budget in bytes; 0 = no limit.
    pub budget_bytes: u64,
    /// Blobs held in the cache and their bytes.
    pub blobs: u64,
    pub bytes: u64,
    /// Of those, bytes only archived batches use (removable).
    pub evictable_bytes: u64,
    /// Blobs removed earlier (held by the hub only).
    pub evicted_blobs: u64,
    pub evicted_bytes: u64,
    pub over_budget: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct EvictionReport {
    pub evicted_blobs: u64,
    pub freed_bytes: u64,
}

/// Blobs every page of which belongs to an archived batch, oldest archive first.
const EVICTABLE: &str = "SELECT x.id, x.size FROM blobs x
    JOIN pages p ON p.blob_id = x.id JOIN batches b ON b.id = p.batch_id
    WHERE x.evicted_at IS NULL
    GROUP BY x.id HAVING min(b.state = 'archived') = 1
    ORDER BY max(b.archived_at), x.id";

pub fn status(node: &Node, store: &Store) -> Result<CacheStatus, StoreError> {
    let conn = store.conn();
    let (blobs, bytes): (i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(sum(size), 0) FROM blobs WHERE evicted_at IS NULL",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let (evicted_blobs, evicted_bytes): (i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(sum(size), 0) FROM blobs WHERE evicted_at IS NOT NULL",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let evictable: i64 = conn.query_row(
        &format!("SELECT coalesce(sum(size), 0) FROM ({EVICTABLE})"),
        [],
        |row| row.get(0),
    )?;
    let budget = node.config.cache_budget;
    Ok(CacheStatus {
        budget_bytes: budget,
        blobs: blobs as u64,
        bytes: bytes as u64,
        evictable_bytes: evictable as u64,
        evicted_blobs: evicted_blobs as u64,
        evicted_bytes: evicted_bytes as u64,
        over_budget: budget > 0 && bytes as u64 > budget,
    })
}

/// Removes archived batches' blobs until the cache is within `budget`
/// bytes (0 = no limit: nothing is removed). The caller holds the data
/// folder's write lock, so no ingest can be reusing a blob meanwhile.
pub fn evict(node: &Node, store: &Store, budget: u64) -> Result<EvictionReport, StoreError> {
    let mut report = EvictionReport::default();
    if budget == 0 {
        return Ok(report);
    }
    let mut held = status(node, store)?.bytes;
    if held <= budget {
        return Ok(report);
    }
    let candidates: Vec<(String, i64)> = {
        let mut statement = store.conn().prepare(EVICTABLE)?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (hex, size) in candidates {
        if held <= budget {
            break;
        }
        let Ok(id) = hex.parse::<dangan_shared::BlobId>() else {
            continue;
        };
        // Recorded first: a crash before the file goes leaves a file marked
        // evicted (harmless), never a missing blob that is not marked.
        store.conn().execute(
            "UPDATE blobs SET evicted_at = ?1 WHERE id = ?2",
            params![now(), hex],
        )?;
        match std::fs::remove_file(node.cache.blob_path(&id)) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                tracing::warn!(blob = %id.short(), %err, "cannot evict blob");
                store
                    .conn()
                    .execute("UPDATE blobs SET evicted_at = NULL WHERE id = ?1", [&hex])?;
                continue;
            }
        }
        held = held.saturating_sub(size as u64);
        report.evicted_blobs += 1;
        report.freed_bytes += size as u64;
    }
    Ok(report)
}
