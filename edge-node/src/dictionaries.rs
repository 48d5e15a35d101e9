//! The edge's copy of the hub's common dictionaries (categories, retention
//! periods, QC defect types) and the cursor of the dictionary feed.
//!
//! Each sync pass reads the hub's feed from the stored cursor and applies
//! what it gets: a dictionary version is stored as received, a template
//! becomes the next local version of its business type (source `hub vN`,
//! see [`crate::template`]). A page of the feed and the cursor after it
//! are one transaction, so a crash never applies half a page or skips one,
//! and reading a page again changes nothing. Nothing is ever deleted: an
//! edge that cannot reach the hub keeps working with the versions it has.
//! Before the first contact the shipped dictionaries are in force.
use dangan_shared::dictionary::{Dictionary, DictionaryKind};
use dangan_sync::wire::{DictionaryFeed, FeedItem};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::store::{StoreError, now};
use crate::template::{self, TemplateError};

/// The feed of dictionaries and templates from the hub.
pub const FEED: &str = "dictionaries";

/// A dictionary in force at this edge.
#[derive(Clone, Debug, Serialize)]
pub struct Stored {
    /// The hub's version (1: the shipped dictionary).
    pub version: u32,
    /// `hub` (received) or `shipped` (no version received yet).
    pub source: &'static str,
    /// When it was received (None for the shipped one).
    pub received_at: Option<String>,
    #[serde(flatten)]
    pub dictionary: Dictionary,
}

/// The dictionary of `kind` in force: the newest received, else the
/// shipped one.
pub fn current(conn: &Connection, kind: DictionaryKind) -> Result<Stored, StoreError> {
    let row: Option<(u32, String, String)> = conn
        .query_row(
            "SELECT version, body, received_at FROM dictionaries
             WHERE kind = ?1 ORDER BY version DESC LIMIT 1",
            [kind.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    match row {
        Some((version, body, received_at)) => Ok(Stored {
            version,
            source: "hub",
            received_at: Some(received_at),
            dictionary: serde_json::from_str(&body)
                .map_err(|err| StoreError::Corrupt(format!("stored dictionary {kind}: {err}")))?,
        }),
        None => Ok(Stored {
            version: 1,
            source: "shipped",
            received_at: None,
            dictionary: Dictionary::builtin(kind),
        }),
    }
}

/// All three dictionaries in force and the feed cursor.
#[derive(Debug, Serialize)]
pub struct InForce {
    pub categories: Stored,
    pub retentions: Stored,
    pub defects: Stored,
    /// The position in the hub's feed this edge has applied up to.
    pub cursor: u64,
    /// When the feed was last read from the hub (None: never).
    pub synced_at: Option<String>,
}

pub fn in_force(conn: &Connection) -> Result<InForce, StoreError> {
    let (cursor, synced_at) = cursor(conn)?;
    Ok(InForce {
        categories: current(conn, DictionaryKind::Categories)?,
        retentions: current(conn, DictionaryKind::Retentions)?,
        defects: current(conn, DictionaryKind::Defects)?,
        cursor,
        synced_at,
    })
}

/// The feed cursor and when it last moved.
pub fn cursor(conn: &Connection) -> Result<(u64, Option<String>), StoreError> {
    let row: Option<(i64, String)> = conn
        .query_row(
            "SELECT cursor, updated_at FROM feed_cursors WHERE feed = ?1",
            [FEED],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(row.map_or((0, None), |(cursor, at)| (cursor as u64, Some(at))))
}

/// What applying a page of the feed changed.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Applied {
    /// e.g. `defects v2`, `template A01 v3`.
    pub updated: Vec<String>,
    pub cursor: u64,
}

/// Applies one page of the feed and moves the cursor, in one transaction.
/// Entries at or before the stored cursor are skipped (a page read twice).
pub fn apply(conn: &mut Connection, feed: &DictionaryFeed) -> Result<Applied, TemplateError> {
    let tx = conn.transaction().map_err(StoreError::from)?;
    let (start, _) = cursor(&tx)?;
    let mut applied = Applied {
        cursor: start,
        ..Applied::default()
    };
    for entry in feed.entries.iter().filter(|e| e.seq > start) {
        match &entry.item {
            FeedItem::Dictionary { dictionary } => {
                dictionary.validate().map_err(|err| {
                    TemplateError::Store(StoreError::Corrupt(format!(
                        "the hub sent an invalid dictionary: {err}"
                    )))
                })?;
                let body = serde_json::to_string(dictionary)
                    .map_err(|err| StoreError::Corrupt(err.to_string()))?;
                let inserted = tx
                    .execute(
                        "INSERT OR IGNORE INTO dictionaries(kind, version, body, received_at)
                         VALUES (?1, ?2, ?3, ?4)",
                        params![dictionary.kind.as_str(), entry.version, body, now()],
                    )
                    .map_err(StoreError::from)?;
                if inserted > 0 {
                    applied
                        .updated
                        .push(format!("{} v{}", dictionary.kind, entry.version));
                }
            }
            FeedItem::Template { template: t } => {
                let report = template::import_within(
                    &tx,
                    std::slice::from_ref(t),
                    &format!("hub v{}", entry.version),
                )?;
                if !report.updated.is_empty() {
                    applied
                        .updated
                        .push(format!("template {} v{}", t.business_type, entry.version));
                }
            }
        }
        applied.cursor = entry.seq;
    }
    tx.execute(
        "INSERT INTO feed_cursors(feed, cursor, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(feed) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
        params![FEED, applied.cursor as i64, now()],
    )
    .map_err(StoreError::from)?;
    tx.commit().map_err(StoreError::from)?;
    Ok(applied)
}

/// The label of a QC verdict (`pass` or a defect code) in the defects
/// dictionary in force.
pub fn verdict_label(defects: &Dictionary, code: &str, english: bool) -> String {
    if code == "pass" {
        return if english { "pass" } else { "合格" }.to_owned();
    }
    match defects.get(code) {
        Some(entry) if english => entry.en.clone(),
        Some(entry) => entry.zh.clone(),
        None => code.to_owned(),
    }
}
