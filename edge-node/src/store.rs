//! The pre-archive database (SQLite, WAL): batches, business files, pages,
//! sources, blobs, quarantine and exceptions.
//!
//! Schema changes are numbered migrations applied in order and recorded in
//! `PRAGMA user_version`; a database newer than this binary is refused.
//!
//! Invariants:
//! - a `blobs` row exists only for a blob already durable in the cache;
//! - every page belongs to exactly one business file of its batch, and pages
//!   of a batch are numbered by scan order (`seq`) without gaps;
//! - a source (path + content hash) is recorded once, so ingesting it again
//!   adds nothing.
use std::path::Path;

use dangan_shared::{BlobId, OrgCode};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use crate::barcode::Barcode;

pub const DB_FILE: &str = "edge.db";

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE batches (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    district      TEXT NOT NULL,
    business_type TEXT,
    state         TEXT NOT NULL DEFAULT 'open'
                  CHECK (state IN ('open','scanned','in_qc','rework','accepted','syncing','archived')),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE TABLE blobs (
    id         TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    format     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE sources (
    id              INTEGER PRIMARY KEY,
    batch_id        INTEGER NOT NULL REFERENCES batches(id),
    path            TEXT NOT NULL,
    file_hash       TEXT NOT NULL,
    size            INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('ingested','quarantined')),
    format          TEXT,
    frame_count     INTEGER,
    reason_code     TEXT,
    reason          TEXT,
    quarantine_path TEXT,
    recorded_at     TEXT NOT NULL,
    UNIQUE (path, file_hash)
);
CREATE INDEX sources_batch ON sources(batch_id, status);
CREATE TABLE business_files (
    id              INTEGER PRIMARY KEY,
    batch_id        INTEGER NOT NULL REFERENCES batches(id),
    seq             INTEGER NOT NULL,
    business_number TEXT,
    opened_by       TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    UNIQUE (batch_id, seq)
);
CREATE INDEX business_files_number ON business_files(business_number);
CREATE TABLE pages (
    id               INTEGER PRIMARY KEY,
    batch_id         INTEGER NOT NULL REFERENCES batches(id),
    seq              INTEGER NOT NULL,
    business_file_id INTEGER NOT NULL REFERENCES business_files(id),
    source_id        INTEGER NOT NULL REFERENCES sources(id),
    frame            INTEGER NOT NULL,
    blob_id          TEXT NOT NULL REFERENCES blobs(id),
    duplicate        INTEGER NOT NULL,
    format           TEXT NOT NULL,
    width            INTEGER NOT NULL,
    height           INTEGER NOT NULL,
    dpi              INTEGER,
    colour           TEXT NOT NULL,
    barcodes         TEXT NOT NULL,
    separator        INTEGER NOT NULL,
    blank            INTEGER NOT NULL,
    ink_ratio        REAL NOT NULL,
    created_at       TEXT NOT NULL,
    UNIQUE (batch_id, seq),
    UNIQUE (source_id, frame)
);
CREATE INDEX pages_business_file ON pages(business_file_id, seq);
CREATE INDEX pages_blob ON pages(blob_id);
CREATE TABLE exceptions (
    id               INTEGER PRIMARY KEY,
    batch_id         INTEGER NOT NULL REFERENCES batches(id),
    page_id          INTEGER REFERENCES pages(id),
    code             TEXT NOT NULL,
    detail           TEXT NOT NULL,
    created_at       TEXT NOT NULL
);
CREATE INDEX exceptions_batch ON exceptions(batch_id);
"#,
    r#"
-- 2: sync to the hub. The sync queue is the accepted and syncing batches;
-- its retry state lives here so that it outlives the process.
ALTER TABLE batches ADD COLUMN accepted_at TEXT;
ALTER TABLE batches ADD COLUMN manifest_hash TEXT;
ALTER TABLE batches ADD COLUMN receipt TEXT;
ALTER TABLE batches ADD COLUMN archived_at TEXT;
ALTER TABLE batches ADD COLUMN sync_error TEXT;
ALTER TABLE batches ADD COLUMN sync_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN next_attempt_at TEXT;
-- Set when an archived batch's blob was removed from the cache to keep it
-- within its budget (the hub holds it; the thumbnail stays).
ALTER TABLE blobs ADD COLUMN evicted_at TEXT;
"#,
    r#"
-- 3: the archive room's workflow. Business-type templates (versioned: a
-- batch keeps the version it was bound to), users, every batch transition,
-- business-file metadata (著录) with its history, QC rounds and checks,
-- page rescans, and resolutions of exceptions.
CREATE TABLE templates (
    business_type TEXT NOT NULL,
    version       INTEGER NOT NULL,
    body          TEXT NOT NULL,
    source        TEXT NOT NULL,
    recorded_at   TEXT NOT NULL,
    PRIMARY KEY (business_type, version)
);
ALTER TABLE batches ADD COLUMN template_version INTEGER;
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('operator','inspector','admin')),
    password_hash TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE batch_events (
    id         INTEGER PRIMARY KEY,
    batch_id   INTEGER NOT NULL REFERENCES batches(id),
    from_state TEXT NOT NULL,
    to_state   TEXT NOT NULL,
    actor      TEXT NOT NULL,
    reason     TEXT,
    override   INTEGER NOT NULL DEFAULT 0,
    at         TEXT NOT NULL
);
CREATE INDEX batch_events_batch ON batch_events(batch_id, id);
ALTER TABLE business_files ADD COLUMN person_id TEXT;
ALTER TABLE business_files ADD COLUMN person_name TEXT;
ALTER TABLE business_files ADD COLUMN employer_id TEXT;
ALTER TABLE business_files ADD COLUMN business_type TEXT;
ALTER TABLE business_files ADD COLUMN business_date TEXT;
ALTER TABLE business_files ADD COLUMN organisation TEXT;
-- barcode | import | manual: where the metadata last came from.
ALTER TABLE business_files ADD COLUMN metadata_source TEXT;
ALTER TABLE business_files ADD COLUMN metadata_by TEXT;
ALTER TABLE business_files ADD COLUMN metadata_at TEXT;
-- Rows of the business system's export (index import), keyed by business
-- number: applied to business files that have the number now, and kept for
-- those scanned later.
CREATE TABLE index_records (
    business_number TEXT PRIMARY KEY,
    person_id       TEXT,
    person_name     TEXT,
    employer_id     TEXT,
    business_type   TEXT,
    business_date   TEXT,
    organisation    TEXT,
    source          TEXT NOT NULL,
    imported_at     TEXT NOT NULL
);
CREATE TABLE metadata_changes (
    id               INTEGER PRIMARY KEY,
    business_file_id INTEGER NOT NULL REFERENCES business_files(id),
    field            TEXT NOT NULL,
    old_value        TEXT,
    new_value        TEXT,
    source           TEXT NOT NULL,
    actor            TEXT NOT NULL,
    at               TEXT NOT NULL
);
CREATE INDEX metadata_changes_file ON metadata_changes(business_file_id, id);
CREATE TABLE qc_rounds (
    id             INTEGER PRIMARY KEY,
    batch_id       INTEGER NOT NULL REFERENCES batches(id),
    round          INTEGER NOT NULL,
    seed           INTEGER NOT NULL,
    rate           REAL NOT NULL,
    floor          INTEGER NOT NULL,
    pass_threshold REAL NOT NULL,
    pages          INTEGER NOT NULL,
    sampled        INTEGER NOT NULL,
    started_by     TEXT NOT NULL,
    started_at     TEXT NOT NULL,
    finished_by    TEXT,
    finished_at    TEXT,
    passed         INTEGER,
    outcome        TEXT CHECK (outcome IS NULL OR outcome IN ('pass','rework')),
    UNIQUE (batch_id, round)
);
CREATE TABLE qc_checks (
    round_id   INTEGER NOT NULL REFERENCES qc_rounds(id),
    page_id    INTEGER NOT NULL REFERENCES pages(id),
    verdict    TEXT,
    note       TEXT,
    inspector  TEXT,
    checked_at TEXT,
    PRIMARY KEY (round_id, page_id)
);
CREATE TABLE page_history (
    id          INTEGER PRIMARY KEY,
    page_id     INTEGER NOT NULL REFERENCES pages(id),
    old_blob_id TEXT NOT NULL,
    new_blob_id TEXT NOT NULL,
    reason      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX page_history_page ON page_history(page_id, id);
-- Estimated skew of the page in degrees (QC pre-check), and who scanned it.
ALTER TABLE pages ADD COLUMN skew_degrees REAL;
ALTER TABLE pages ADD COLUMN operator TEXT;
ALTER TABLE exceptions ADD COLUMN business_file_id INTEGER REFERENCES business_files(id);
ALTER TABLE exceptions ADD COLUMN resolved_at TEXT;
ALTER TABLE exceptions ADD COLUMN resolved_by TEXT;
ALTER TABLE exceptions ADD COLUMN resolution TEXT;
CREATE INDEX exceptions_open ON exceptions(batch_id) WHERE resolved_at IS NULL;
"#,
    r#"
-- 4: the batch list counts business files without a business number per
-- batch; a covering index spares it reading every business file row.
CREATE INDEX business_files_batch_number ON business_files(batch_id, business_number);
"#,
    r#"
-- 5: the exception queue. The document checklist of a business file
-- (材料清单: each required document confirmed present, or recorded absent
-- with a note), and every grouping or metadata edit an operator makes.
CREATE TABLE file_documents (
    business_file_id INTEGER NOT NULL REFERENCES business_files(id),
    document         TEXT NOT NULL,
    present          INTEGER NOT NULL,
    note             TEXT,
    actor            TEXT NOT NULL,
    at               TEXT NOT NULL,
    PRIMARY KEY (business_file_id, document)
);
CREATE TABLE edits (
    id       INTEGER PRIMARY KEY,
    batch_id INTEGER NOT NULL REFERENCES batches(id),
    action   TEXT NOT NULL,
    detail   TEXT NOT NULL,
    actor    TEXT NOT NULL,
    at       TEXT NOT NULL
);
CREATE INDEX edits_batch ON edits(batch_id, id);
-- Which of a business file's number and metadata are missing, as bits
-- (see exceptions::open_counts); indexed so that the batch list counts
-- incomplete files per batch from the index alone. (SQLite gives | and <<
-- the same precedence: every shift needs its parentheses.)
ALTER TABLE business_files ADD COLUMN missing INTEGER GENERATED ALWAYS AS (
    (business_number IS NULL) | ((person_id IS NULL) << 1) | ((person_name IS NULL) << 2)
    | ((employer_id IS NULL) << 3) | ((business_date IS NULL) << 4)
    | ((organisation IS NULL) << 5)
) VIRTUAL;
DROP INDEX business_files_batch_number;
CREATE INDEX business_files_missing ON business_files(batch_id, missing);
"#,
    r#"
-- 6: the web UI. Each user's language (zh or en; NULL: the default),
-- remembered across sessions and machines; search by person and name.
ALTER TABLE users ADD COLUMN lang TEXT CHECK (lang IS NULL OR lang IN ('zh','en'));
CREATE INDEX business_files_person ON business_files(person_id);
"#,
    r#"
-- 7: the hub's dictionaries as received through the dictionary feed (see
-- dictionaries.rs; templates go to `templates`), and feed cursors.
CREATE TABLE dictionaries (
    kind        TEXT NOT NULL CHECK (kind IN ('categories','retentions','defects')),
    version     INTEGER NOT NULL,
    body        TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (kind, version)
);
CREATE TABLE feed_cursors (
    feed       TEXT PRIMARY KEY,
    cursor     INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
"#,
    r#"
-- 8: the warehouse (库房管理, see warehouse.rs): locations from room to box,
-- volumes in boxes, business files bound into volumes, loans, inventory
-- checks, and the warehouse feed the hub reads (its random id, how far the
-- hub has acknowledged it, and the events, which are also the history).
CREATE TABLE locations (
    id         INTEGER PRIMARY KEY,
    code       TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL CHECK (kind IN ('room','cabinet','section','shelf','box')),
    name       TEXT NOT NULL,
    parent_id  INTEGER REFERENCES locations(id),
    capacity   INTEGER CHECK (capacity IS NULL OR capacity > 0),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX locations_parent ON locations(parent_id);
CREATE TABLE volumes (
    id         INTEGER PRIMARY KEY,
    code       TEXT NOT NULL UNIQUE,
    title      TEXT NOT NULL,
    box_id     INTEGER REFERENCES locations(id),
    retention  TEXT,
    date_from  TEXT,
    date_to    TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX volumes_box ON volumes(box_id);
CREATE TABLE volume_files (
    business_file_id INTEGER PRIMARY KEY REFERENCES business_files(id),
    volume_id        INTEGER NOT NULL REFERENCES volumes(id),
    actor            TEXT NOT NULL,
    at               TEXT NOT NULL
);
CREATE INDEX volume_files_volume ON volume_files(volume_id);
CREATE TABLE loans (
    id           INTEGER PRIMARY KEY,
    item         TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('requested','approved','refused','lent','returned')),
    borrower     TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    due_date     TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    approved_by  TEXT,
    approved_at  TEXT,
    lent_by      TEXT,
    lent_at      TEXT,
    returned_to  TEXT,
    returned_at  TEXT,
    note         TEXT,
    hub_request  INTEGER UNIQUE
);
CREATE INDEX loans_item ON loans(item, state);
CREATE INDEX loans_open ON loans(state, due_date);
CREATE TABLE checks (
    id               INTEGER PRIMARY KEY,
    root_id          INTEGER NOT NULL REFERENCES locations(id),
    state            TEXT NOT NULL CHECK (state IN ('open','finished')),
    started_by       TEXT NOT NULL,
    started_at       TEXT NOT NULL,
    finished_by      TEXT,
    finished_at      TEXT,
    current_location TEXT,
    current_box      TEXT
);
CREATE TABLE check_expected (
    check_id INTEGER NOT NULL REFERENCES checks(id),
    item     TEXT NOT NULL,
    kind     TEXT NOT NULL,
    location TEXT NOT NULL,
    PRIMARY KEY (check_id, item)
);
CREATE TABLE check_scans (
    id         INTEGER PRIMARY KEY,
    check_id   INTEGER NOT NULL REFERENCES checks(id),
    code       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    found      TEXT,
    scanned_by TEXT NOT NULL,
    scanned_at TEXT NOT NULL
);
CREATE INDEX check_scans_check ON check_scans(check_id, id);
CREATE TABLE check_resolutions (
    check_id INTEGER NOT NULL REFERENCES checks(id),
    item     TEXT NOT NULL,
    action   TEXT NOT NULL,
    note     TEXT NOT NULL,
    actor    TEXT NOT NULL,
    at       TEXT NOT NULL,
    PRIMARY KEY (check_id, item)
);
CREATE TABLE warehouse_feed (
    feed  TEXT NOT NULL,
    acked INTEGER NOT NULL
);
INSERT INTO warehouse_feed(feed, acked) VALUES (lower(hex(randomblob(16))), 0);
CREATE TABLE warehouse_events (
    seq         INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
"#,
    r#"
-- 9: the kind of a batch's last sync failure (sync::BatchError::code), so
-- that it is shown in the reader's language beside the technical message.
ALTER TABLE batches ADD COLUMN sync_error_code TEXT;
"#,
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{path} is not a Dangan edge data folder (no {DB_FILE}); run `dangan-edge init` first")]
    NotInitialised { path: String },
    #[error("{path} is already initialised (for district {district})")]
    AlreadyInitialised { path: String, district: String },
    #[error(
        "the database was written by a newer dangan-edge (schema {found}, this binary knows {known})"
    )]
    TooNew { found: i64, known: i64 },
    #[error("no batch named {0:?}")]
    NoSuchBatch(String),
    #[error("batch {name:?} is {state}; pages can only be added to an open batch")]
    BatchNotOpen { name: String, state: String },
    #[error("batch {name:?} exists with business type {existing:?}, not {requested:?}")]
    BusinessTypeMismatch {
        name: String,
        existing: String,
        requested: String,
    },
    #[error("unknown business type {requested:?}; the templates know: {known}")]
    UnknownBusinessType { requested: String, known: String },
    #[error("the database holds a malformed value: {0}")]
    Corrupt(String),
}

pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub struct Store {
    conn: Connection,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a committed page survives a power cut, not only a process crash.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew {
            found: version,
            known,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Loads the shipped templates into a pre-archive that has none yet (a new
/// one, or one made before templates existed).
fn seed_templates(conn: &mut Connection) -> Result<(), StoreError> {
    let count: i64 = conn.query_row("SELECT count(*) FROM templates", [], |row| row.get(0))?;
    if count == 0 {
        let seed = crate::template::parse(crate::template::SEED)
            .map_err(|err| StoreError::Corrupt(format!("shipped templates: {err}")))?;
        crate::template::import(conn, &seed, "seed")
            .map_err(|err| StoreError::Corrupt(format!("shipped templates: {err}")))?;
    }
    Ok(())
}

/// The current template version of `business_type`, or the error naming
/// the known types.
fn bind_template(conn: &Connection, business_type: &str) -> Result<u32, StoreError> {
    match crate::template::current(conn, business_type) {
        Ok(Some(found)) => Ok(found.version),
        Ok(None) => {
            let known = crate::template::list(conn)
                .map_err(|err| StoreError::Corrupt(err.to_string()))?
                .into_iter()
                .map(|t| format!("{} {}", t.template.business_type, t.template.name))
                .collect::<Vec<_>>()
                .join(", ");
            Err(StoreError::UnknownBusinessType {
                requested: business_type.to_owned(),
                known,
            })
        }
        Err(err) => Err(StoreError::Corrupt(err.to_string())),
    }
}

impl Store {
    /// Creates a new database for `district`. Refuses an existing one.
    pub fn create(dir: &Path, district: &OrgCode) -> Result<Self, StoreError> {
        let path = dir.join(DB_FILE);
        if path.exists() {
            let existing = Self::open(dir)?;
            return Err(StoreError::AlreadyInitialised {
                path: dir.display().to_string(),
                district: existing.district()?.to_string(),
            });
        }
        let mut conn = Connection::open(&path)?;
        configure(&conn)?;
        migrate(&mut conn)?;
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('district', ?1), ('created_at', ?2)",
            params![district.as_str(), now()],
        )?;
        seed_templates(&mut conn)?;
        Ok(Self { conn })
    }

    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(DB_FILE);
        if !path.is_file() {
            return Err(StoreError::NotInitialised {
                path: dir.display().to_string(),
            });
        }
        let mut conn = Connection::open(&path)?;
        configure(&conn)?;
        migrate(&mut conn)?;
        seed_templates(&mut conn)?;
        Ok(Self { conn })
    }

    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn transaction(&mut self) -> rusqlite::Result<Transaction<'_>> {
        self.conn.transaction()
    }

    pub fn district(&self) -> Result<OrgCode, StoreError> {
        let text: String =
            self.conn
                .query_row("SELECT value FROM meta WHERE key = 'district'", [], |row| {
                    row.get(0)
                })?;
        text.parse()
            .map_err(|err: dangan_shared::ParseOrgCodeError| StoreError::Corrupt(err.to_string()))
    }

    /// Finds the batch, creating it when it does not exist. Pages may only be
    /// added to a batch that is still open.
    pub fn open_batch(
        &mut self,
        name: &str,
        business_type: Option<&str>,
    ) -> Result<BatchRow, StoreError> {
        let district = self.district()?;
        if let Some(batch) = self.batch(name)? {
            if batch.state != "open" {
                return Err(StoreError::BatchNotOpen {
                    name: name.to_owned(),
                    state: batch.state,
                });
            }
            if let (Some(existing), Some(requested)) = (&batch.business_type, business_type)
                && existing != requested
            {
                return Err(StoreError::BusinessTypeMismatch {
                    name: name.to_owned(),
                    existing: existing.clone(),
                    requested: requested.to_owned(),
                });
            }
            if let (None, Some(business_type)) = (&batch.business_type, business_type) {
                let version = bind_template(&self.conn, business_type)?;
                self.conn.execute(
                    "UPDATE batches SET business_type = ?1, template_version = ?2, updated_at = ?3
                     WHERE id = ?4",
                    params![business_type, version, now(), batch.id],
                )?;
                return self
                    .batch(name)?
                    .ok_or_else(|| StoreError::NoSuchBatch(name.to_owned()));
            }
            return Ok(batch);
        }
        let version = business_type
            .map(|t| bind_template(&self.conn, t))
            .transpose()?;
        let now = now();
        self.conn.execute(
            "INSERT INTO batches(name, district, business_type, template_version, state,
                                 created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?5)",
            params![name, district.as_str(), business_type, version, now],
        )?;
        self.batch(name)?
            .ok_or_else(|| StoreError::NoSuchBatch(name.to_owned()))
    }

    pub fn batch(&self, name: &str) -> Result<Option<BatchRow>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, name, district, business_type, state, created_at, updated_at
                 FROM batches WHERE name = ?1",
                [name],
                BatchRow::from_row,
            )
            .optional()?)
    }

    /// A source already recorded with these exact bytes at this path.
    pub fn find_source(
        &self,
        path: &str,
        file_hash: &BlobId,
    ) -> Result<Option<SourceRow>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT s.id, b.name, s.status, s.quarantine_path FROM sources s
                 JOIN batches b ON b.id = s.batch_id WHERE s.path = ?1 AND s.file_hash = ?2",
                params![path, file_hash.to_hex()],
                |row| {
                    Ok(SourceRow {
                        id: row.get(0)?,
                        batch: row.get(1)?,
                        status: row.get(2)?,
                        quarantine_path: row.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn batches(&self) -> Result<Vec<BatchSummary>, StoreError> {
        let mut statement = self.conn.prepare(
            "SELECT b.id, b.name, b.district, b.business_type, b.state, b.created_at, b.updated_at,
                (SELECT count(*) FROM pages p WHERE p.batch_id = b.id),
                (SELECT count(*) FROM sources s WHERE s.batch_id = b.id AND s.status = 'quarantined')
             FROM batches b ORDER BY b.created_at, b.id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(BatchSummary {
                batch: BatchRow::from_row(row)?,
                pages: row.get(7)?,
                business_files: 0,
                quarantined: row.get(8)?,
                exceptions: 0,
            })
        })?;
        let mut batches: Vec<BatchSummary> = rows.collect::<Result<_, _>>()?;
        let counts = crate::exceptions::open_counts(&self.conn)?;
        for summary in &mut batches {
            let count = counts.get(&summary.batch.id).copied().unwrap_or_default();
            summary.business_files = count.business_files;
            summary.exceptions = count.open;
        }
        Ok(batches)
    }

    /// Everything about one batch, in scan order.
    pub fn batch_detail(&self, name: &str) -> Result<BatchDetail, StoreError> {
        let batch = self
            .batch(name)?
            .ok_or_else(|| StoreError::NoSuchBatch(name.to_owned()))?;
        let template = crate::template::for_batch(&self.conn, batch.id)
            .map_err(|err| StoreError::Corrupt(err.to_string()))?
            .map(|bound| BoundTemplate {
                version: bound.version,
                name: bound.template.name,
                source: bound.source,
            });
        let mut files: Vec<BusinessFileView> = Vec::new();
        // Business file id → its index in `files` (a batch may hold thousands).
        let mut file_index: std::collections::HashMap<i64, usize> =
            std::collections::HashMap::new();
        {
            let mut statement = self.conn.prepare(
                "SELECT id, seq, business_number, opened_by FROM business_files
                 WHERE batch_id = ?1 ORDER BY seq",
            )?;
            let rows = statement.query_map([batch.id], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    BusinessFileView {
                        seq: row.get(1)?,
                        business_number: row.get(2)?,
                        opened_by: row.get(3)?,
                        pages: Vec::new(),
                    },
                ))
            })?;
            for row in rows {
                let (id, file) = row?;
                file_index.insert(id, files.len());
                files.push(file);
            }
        }
        let mut statement = self.conn.prepare(
            "SELECT p.business_file_id, p.seq, p.blob_id, s.path, p.frame, p.format, p.width, p.height,
                    p.dpi, p.colour, p.barcodes, p.separator, p.blank, p.duplicate, b.size, p.operator
             FROM pages p JOIN sources s ON s.id = p.source_id JOIN blobs b ON b.id = p.blob_id
             WHERE p.batch_id = ?1 ORDER BY p.seq",
        )?;
        let rows = statement.query_map([batch.id], |row| {
            let barcodes: String = row.get(10)?;
            Ok((
                row.get::<_, i64>(0)?,
                PageView {
                    seq: row.get(1)?,
                    blob: row.get(2)?,
                    source: row.get(3)?,
                    frame: row.get(4)?,
                    format: row.get(5)?,
                    width: row.get(6)?,
                    height: row.get(7)?,
                    dpi: row.get(8)?,
                    colour: row.get(9)?,
                    barcodes: serde_json::from_str(&barcodes).unwrap_or_default(),
                    separator: row.get(11)?,
                    blank: row.get(12)?,
                    duplicate: row.get(13)?,
                    size: row.get(14)?,
                    operator: row.get(15)?,
                },
            ))
        })?;
        for row in rows {
            let (file_id, page) = row?;
            if let Some(&index) = file_index.get(&file_id) {
                files[index].pages.push(page);
            }
        }
        let quarantined = self.quarantined(batch.id)?;
        let exceptions =
            crate::exceptions::list(&self.conn, &batch.name, false).map_err(|err| match err {
                crate::files::EditError::Store(err) => err,
                other => StoreError::Corrupt(other.to_string()),
            })?;
        let page_count = files.iter().map(|f| f.pages.len()).sum();
        Ok(BatchDetail {
            counts: Counts {
                pages: page_count,
                business_files: files.len(),
                quarantined: quarantined.len(),
                exceptions: exceptions.len(),
            },
            batch,
            template,
            business_files: files,
            quarantined,
            exceptions,
        })
    }

    fn quarantined(&self, batch_id: i64) -> Result<Vec<QuarantineView>, StoreError> {
        let mut statement = self.conn.prepare(
            "SELECT path, reason_code, reason, quarantine_path, recorded_at FROM sources
             WHERE batch_id = ?1 AND status = 'quarantined' ORDER BY id",
        )?;
        let rows = statement.query_map([batch_id], |row| {
            Ok(QuarantineView {
                source: row.get(0)?,
                code: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                reason: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                quarantine_path: row.get::<_, Option<String>>(3)?.unwrap_or_default(),
                recorded_at: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every blob id the database references, with its recorded size.
    pub fn blob_rows(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut statement = self
            .conn
            .prepare("SELECT id, size FROM blobs ORDER BY id")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Ids of blobs evicted from the cache (expected to be absent from it).
    pub fn evicted_blobs(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut statement = self
            .conn
            .prepare("SELECT id FROM blobs WHERE evicted_at IS NOT NULL")?;
        let rows = statement.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Pages whose blob has no `blobs` row (never expected; fsck reports it).
    pub fn pages_without_blob_row(&self) -> Result<Vec<(String, i64, String)>, StoreError> {
        let mut statement = self.conn.prepare(
            "SELECT b.name, p.seq, p.blob_id FROM pages p JOIN batches b ON b.id = p.batch_id
             WHERE NOT EXISTS (SELECT 1 FROM blobs x WHERE x.id = p.blob_id) ORDER BY b.name, p.seq",
        )?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Quarantine files the database expects to exist.
    pub fn quarantine_paths(&self) -> Result<Vec<String>, StoreError> {
        let mut statement = self.conn.prepare(
            "SELECT quarantine_path FROM sources WHERE status = 'quarantined' ORDER BY id",
        )?;
        let rows = statement.query_map([], |row| row.get::<_, Option<String>>(0))?;
        Ok(rows
            .filter_map(|r| r.transpose())
            .collect::<Result<_, _>>()?)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchRow {
    #[serde(skip)]
    pub id: i64,
    pub name: String,
    pub district: String,
    pub business_type: Option<String>,
    pub state: String,
    pub created_at: String,
    pub updated_at: String,
}

impl BatchRow {
    /// Reads the batch from columns 0..=6 (`id, name, district,
    /// business_type, state, created_at, updated_at`).
    pub(crate) fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            name: row.get(1)?,
            district: row.get(2)?,
            business_type: row.get(3)?,
            state: row.get(4)?,
            created_at: row.get(5)?,
            updated_at: row.get(6)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct SourceRow {
    pub id: i64,
    pub batch: String,
    pub status: String,
    pub quarantine_path: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchSummary {
    #[serde(flatten)]
    pub batch: BatchRow,
    pub pages: i64,
    pub business_files: i64,
    pub quarantined: i64,
    pub exceptions: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    pub pages: usize,
    pub business_files: usize,
    pub quarantined: usize,
    pub exceptions: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchDetail {
    #[serde(flatten)]
    pub batch: BatchRow,
    /// The template version the batch is bound to (None without a
    /// business type).
    pub template: Option<BoundTemplate>,
    pub counts: Counts,
    pub business_files: Vec<BusinessFileView>,
    pub quarantined: Vec<QuarantineView>,
    pub exceptions: Vec<crate::exceptions::Exception>,
}

/// Which template version a batch follows.
#[derive(Debug, Clone, Serialize)]
pub struct BoundTemplate {
    pub version: u32,
    pub name: String,
    /// `seed`, `import` or `hub vN` (see `template list`).
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BusinessFileView {
    pub seq: i64,
    pub business_number: Option<String>,
    pub opened_by: String,
    pub pages: Vec<PageView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PageView {
    pub seq: i64,
    pub blob: String,
    pub size: i64,
    pub source: String,
    pub frame: i64,
    pub format: String,
    pub width: i64,
    pub height: i64,
    pub dpi: Option<i64>,
    pub colour: String,
    pub barcodes: Vec<BarcodeView>,
    pub separator: bool,
    pub blank: bool,
    pub duplicate: bool,
    /// Who scanned the page (or rescanned it last); None for pages
    /// recorded before operators were.
    pub operator: Option<String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct BarcodeView {
    pub format: String,
    pub text: String,
}

impl From<&Barcode> for BarcodeView {
    fn from(barcode: &Barcode) -> Self {
        Self {
            format: barcode.format.to_string(),
            text: barcode.text.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct QuarantineView {
    pub source: String,
    pub code: String,
    pub reason: String,
    pub quarantine_path: String,
    pub recorded_at: String,
}
