//! The sync queue in the pre-archive: accepted batches waiting for the hub,
//! their retry state, and what the hub's receipts said. It lives in the
//! database so that it outlives the process.
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::lifecycle::{self, Actor, BatchState, LifecycleError};
use crate::store::{BatchRow, Store, StoreError, now};

/// A batch in the sync queue (accepted, syncing or archived).
#[derive(Debug, Clone, Serialize)]
pub struct QueueEntry {
    #[serde(flatten)]
    pub batch: BatchRow,
    pub accepted_at: Option<String>,
    pub manifest_hash: Option<String>,
    pub archived_at: Option<String>,
    pub sync_error: Option<String>,
    /// The kind of the last failure (see `sync::failure_label`).
    pub sync_error_code: Option<String>,
    pub sync_attempts: i64,
    pub next_attempt_at: Option<String>,
    pub pages: i64,
    pub bytes: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no batch named {0:?}")]
    NoSuchBatch(String),
    #[error("batch {name:?} has no pages; there is nothing to archive")]
    Empty { name: String },
    #[error("batch {name:?} is already {state}")]
    AlreadyAccepted { name: String, state: String },
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
}

impl From<rusqlite::Error> for AcceptError {
    fn from(err: rusqlite::Error) -> Self {
        Self::Store(StoreError::Sqlite(err))
    }
}

const ENTRY_COLUMNS: &str = "b.id, b.name, b.district, b.business_type, b.state, b.created_at,
    b.updated_at, b.accepted_at, b.manifest_hash, b.archived_at, b.sync_error, b.sync_attempts,
    b.next_attempt_at, b.sync_error_code,
    (SELECT count(*) FROM pages p WHERE p.batch_id = b.id),
    (SELECT coalesce(sum(x.size), 0) FROM blobs x
       WHERE x.id IN (SELECT blob_id FROM pages p WHERE p.batch_id = b.id))";

fn entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<QueueEntry> {
    Ok(QueueEntry {
        batch: BatchRow::from_row(row)?,
        accepted_at: row.get(7)?,
        manifest_hash: row.get(8)?,
        archived_at: row.get(9)?,
        sync_error: row.get(10)?,
        sync_attempts: row.get(11)?,
        next_attempt_at: row.get(12)?,
        sync_error_code: row.get(13)?,
        pages: row.get(14)?,
        bytes: row.get(15)?,
    })
}

impl Store {
    /// The edge admin's override: accepts a batch whatever its QC and
    /// exceptions say, recorded with `actor` and `reason`. It takes no more
    /// pages and joins the sync queue.
    pub fn accept_batch(
        &mut self,
        name: &str,
        actor: &Actor,
        reason: &str,
    ) -> Result<QueueEntry, AcceptError> {
        if reason.trim().is_empty() {
            return Err(lifecycle::LifecycleError::ReasonRequired.into());
        }
        let tx = self.transaction()?;
        let found: Option<(i64, String, i64)> = tx
            .query_row(
                "SELECT id, state, (SELECT count(*) FROM pages p WHERE p.batch_id = b.id)
                 FROM batches b WHERE name = ?1",
                [name],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        let Some((id, state, pages)) = found else {
            return Err(AcceptError::NoSuchBatch(name.to_owned()));
        };
        if matches!(state.as_str(), "accepted" | "syncing" | "archived") {
            return Err(AcceptError::AlreadyAccepted {
                name: name.to_owned(),
                state,
            });
        }
        if pages == 0 {
            return Err(AcceptError::Empty {
                name: name.to_owned(),
            });
        }
        lifecycle::transition(&tx, id, BatchState::Accepted, actor, Some(reason), true)?;
        tx.execute(
            "UPDATE batches SET accepted_at = ?1, sync_error = NULL, sync_error_code = NULL,
                 sync_attempts = 0,
                 next_attempt_at = NULL
             WHERE id = ?2",
            params![now(), id],
        )?;
        tx.commit()?;
        self.queue_entry(name)?
            .ok_or_else(|| AcceptError::NoSuchBatch(name.to_owned()))
    }

    pub fn queue_entry(&self, name: &str) -> Result<Option<QueueEntry>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {ENTRY_COLUMNS} FROM batches b WHERE b.name = ?1"),
                [name],
                entry,
            )
            .optional()?)
    }

    /// Every batch that is accepted or later, oldest accepted first.
    pub fn sync_queue(&self) -> Result<Vec<QueueEntry>, StoreError> {
        let mut statement = self.conn().prepare(&format!(
            "SELECT {ENTRY_COLUMNS} FROM batches b
             WHERE b.state IN ('accepted', 'syncing', 'archived')
             ORDER BY b.accepted_at, b.id"
        ))?;
        let rows = statement.query_map([], entry)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The batch has been offered with this manifest hash.
    pub fn mark_syncing(&mut self, id: i64, manifest_hash: &str) -> Result<(), StoreError> {
        let tx = self.transaction()?;
        let state: String =
            tx.query_row("SELECT state FROM batches WHERE id = ?1", [id], |row| {
                row.get(0)
            })?;
        // A batch already syncing (an earlier pass) only gets the new hash.
        if state == BatchState::Accepted.as_str() {
            lifecycle::transition(&tx, id, BatchState::Syncing, &Actor::System, None, false)
                .map_err(lifecycle_store_error)?;
        }
        tx.execute(
            "UPDATE batches SET manifest_hash = ?1, updated_at = ?2
             WHERE id = ?3 AND state = 'syncing'",
            params![manifest_hash, now(), id],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Records a failed attempt and when the next one is due.
    pub fn record_sync_failure(
        &self,
        id: i64,
        code: &str,
        error: &str,
        next_attempt_at: &str,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE batches SET sync_error = ?1, sync_error_code = ?2,
                 sync_attempts = sync_attempts + 1, next_attempt_at = ?3, updated_at = ?4
             WHERE id = ?5",
            params![error, code, next_attempt_at, now(), id],
        )?;
        Ok(())
    }

    /// Archives the batch on a verified receipt (kept as the hub's proof).
    pub fn mark_archived(&mut self, id: i64, receipt_json: &str) -> Result<(), StoreError> {
        let tx = self.transaction()?;
        lifecycle::transition(&tx, id, BatchState::Archived, &Actor::System, None, false)
            .map_err(lifecycle_store_error)?;
        tx.execute(
            "UPDATE batches SET receipt = ?1, archived_at = ?2, sync_error = NULL,
                 sync_error_code = NULL,
                 next_attempt_at = NULL
             WHERE id = ?3",
            params![receipt_json, now(), id],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The stored receipt of an archived batch, as the hub sent it.
    pub fn receipt(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT receipt FROM batches WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
            .optional()?
            .flatten())
    }
}

/// The sync's own transitions fail only on a broken database or a batch
/// moved under it; both are store errors to the sync.
fn lifecycle_store_error(err: LifecycleError) -> StoreError {
    match err {
        LifecycleError::Store(err) => err,
        other => StoreError::Corrupt(other.to_string()),
    }
}
