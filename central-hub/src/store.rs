//! The hub's index database (SQLite, WAL): districts, nodes and their
//! credentials, blobs present, staged offers, archived batches with their
//! business files and pages, and what each edge last reported.
//!
//! Schema changes are numbered migrations applied in order and recorded in
//! `PRAGMA user_version`; a database newer than this binary is refused.
//!
//! Connections come from a small pool ([`Db`]) and are used on blocking
//! threads ([`Db::run`]). Every transaction that writes begins IMMEDIATE, so
//! concurrent writers (the server and a CLI command in another process) wait
//! for each other through the busy timeout instead of failing.
//!
//! Invariants:
//! - a `blobs` row exists only for a blob that is durable in the object store;
//! - a `batches` row and its business files and pages are written in one
//!   transaction, and only when every page's blob has a `blobs` row;
//! - credentials (node tokens, enrolment codes, admin tokens, sessions, API
//!   tokens) are stored only as BLAKE3 hashes;
//! - an admin token belongs to a hub account (`admin_tokens.user_id`);
//! - an administrator's change and its audit entry commit together
//!   ([`atomically`]);
//! - `name_bigrams` holds exactly the character bigrams of every business
//!   file's person name (triggers on `business_files`; see `search.rs`);
//! - a warehouse feed's events, the state they fold into and its cursor
//!   are written in one transaction; `warehouse_events` is append-only
//!   (see `warehouse.rs`).
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

pub const DB_FILE: &str = "hub.db";

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE districts (
    code       TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
CREATE TABLE nodes (
    id           TEXT PRIMARY KEY,
    district     TEXT NOT NULL REFERENCES districts(code),
    token_hash   TEXT NOT NULL UNIQUE,
    enrolled_at  TEXT NOT NULL,
    revoked_at   TEXT,
    last_contact TEXT
);
CREATE INDEX nodes_district ON nodes(district);
CREATE TABLE enrolment_codes (
    code_hash  TEXT PRIMARY KEY,
    district   TEXT NOT NULL REFERENCES districts(code),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT,
    node_id    TEXT
);
CREATE TABLE admin_tokens (
    token_hash TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
CREATE TABLE blobs (
    id        TEXT PRIMARY KEY,
    size      INTEGER NOT NULL,
    stored_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE offers (
    manifest_hash TEXT PRIMARY KEY,
    district      TEXT NOT NULL REFERENCES districts(code),
    batch         TEXT NOT NULL,
    node_id       TEXT NOT NULL REFERENCES nodes(id),
    path          TEXT NOT NULL,
    pages         INTEGER NOT NULL,
    blobs         INTEGER NOT NULL,
    bytes         INTEGER NOT NULL,
    offered_at    TEXT NOT NULL
);
CREATE INDEX offers_batch ON offers(district, batch);
CREATE TABLE offer_blobs (
    manifest_hash TEXT NOT NULL REFERENCES offers(manifest_hash) ON DELETE CASCADE,
    blob          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    PRIMARY KEY (manifest_hash, blob)
) WITHOUT ROWID;
CREATE INDEX offer_blobs_blob ON offer_blobs(blob);
CREATE TABLE batches (
    id            INTEGER PRIMARY KEY,
    district      TEXT NOT NULL REFERENCES districts(code),
    batch         TEXT NOT NULL,
    manifest_hash TEXT NOT NULL,
    business_type TEXT,
    accepted_at   TEXT NOT NULL,
    node_id       TEXT NOT NULL REFERENCES nodes(id),
    pages         INTEGER NOT NULL,
    blobs         INTEGER NOT NULL,
    bytes         INTEGER NOT NULL,
    committed_at  TEXT NOT NULL,
    receipt       TEXT NOT NULL,
    UNIQUE (district, batch)
);
CREATE INDEX batches_hash ON batches(manifest_hash);
CREATE TABLE business_files (
    id              INTEGER PRIMARY KEY,
    batch_id        INTEGER NOT NULL REFERENCES batches(id),
    seq             INTEGER NOT NULL,
    business_number TEXT,
    business_type   TEXT,
    category        TEXT,
    retention       TEXT,
    date            TEXT,
    organisation    TEXT NOT NULL,
    person_id       TEXT,
    person_name     TEXT,
    employer_id     TEXT,
    UNIQUE (batch_id, seq)
);
CREATE INDEX business_files_number ON business_files(business_number);
CREATE INDEX business_files_person ON business_files(person_id);
CREATE INDEX business_files_employer ON business_files(employer_id);
CREATE TABLE pages (
    id               INTEGER PRIMARY KEY,
    batch_id         INTEGER NOT NULL REFERENCES batches(id),
    business_file_id INTEGER NOT NULL REFERENCES business_files(id),
    seq              INTEGER NOT NULL,
    blob             TEXT NOT NULL REFERENCES blobs(id),
    size             INTEGER NOT NULL,
    format           TEXT NOT NULL,
    width            INTEGER NOT NULL,
    height           INTEGER NOT NULL,
    dpi              INTEGER,
    colour           TEXT NOT NULL,
    barcodes         TEXT NOT NULL,
    separator        INTEGER NOT NULL,
    blank            INTEGER NOT NULL,
    source           TEXT NOT NULL,
    frame            INTEGER NOT NULL,
    UNIQUE (batch_id, seq)
);
CREATE INDEX pages_business_file ON pages(business_file_id, seq);
CREATE INDEX pages_blob ON pages(blob);
CREATE TABLE edge_reports (
    district      TEXT NOT NULL REFERENCES districts(code),
    batch         TEXT NOT NULL,
    node_id       TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('queued','syncing','archived')),
    manifest_hash TEXT,
    pages         INTEGER NOT NULL,
    bytes         INTEGER NOT NULL,
    last_error    TEXT,
    state_since   TEXT NOT NULL,
    reported_at   TEXT NOT NULL,
    PRIMARY KEY (district, batch)
);
"#,
    r#"
-- 2: organisations (机构管理), the city -> district -> street office tree.
-- The districts known so far (from node enrolment) join it, each under the
-- city its code starts with once that city is added.
CREATE TABLE orgs (
    code       TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    level      TEXT NOT NULL CHECK (level IN ('city','district','street_office')),
    parent     TEXT REFERENCES orgs(code),
    status     TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active','disabled')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX orgs_parent ON orgs(parent);
INSERT INTO orgs(code, name, level, parent, status, created_at, updated_at)
    SELECT code, code, 'district', NULL, 'active', created_at, created_at FROM districts;
"#,
    r#"
-- 3: hub users (a role, an organisation), their sessions (token hashes),
-- lockout state, and cross-organisation grants that expire.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('system_admin','archive_admin','reviewer',
                                                 'auditor','clerk','read_only')),
    org           TEXT NOT NULL REFERENCES orgs(code),
    password_hash TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  TEXT,
    created_at    TEXT NOT NULL
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    address    TEXT
);
CREATE TABLE grants (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    org        TEXT NOT NULL REFERENCES orgs(code),
    reason     TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX grants_user ON grants(user_id);
"#,
    r#"
-- 4: audit trail (see audit.rs): append-only, hash-chained entries of who
-- did what, when, from where and with what result. The triggers keep the
-- hub's own code from changing or deleting entries; tampering by other
-- means is what `dangan-hub audit verify` detects.
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    actor_kind TEXT NOT NULL CHECK (actor_kind IN ('user','token','admin','system','cli')),
    address    TEXT,
    action     TEXT NOT NULL,
    target     TEXT,
    result     TEXT NOT NULL CHECK (result IN ('ok','denied','failed')),
    detail     TEXT,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX audit_log_actor ON audit_log(actor, seq);
CREATE INDEX audit_log_action ON audit_log(action, seq);
CREATE INDEX audit_log_target ON audit_log(target, seq);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
"#,
    r#"
-- 5: API tokens for systems (the business system, scripts): random, kept
-- as BLAKE3 hashes, with a role and an organisation like a user.
CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    role       TEXT NOT NULL CHECK (role IN ('system_admin','archive_admin','reviewer',
                                              'auditor','clerk','read_only')),
    org        TEXT NOT NULL REFERENCES orgs(code),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);
"#,
    r#"
-- 6: an admin token is a credential of a hub account: the first system
-- administrator `admin`, which `init` now makes. A hub made before gets
-- that account here (no usable password until `dangan-hub user passwd
-- admin`), bound to the root of the organisation tree: the first city, or,
-- when the tree has districts but no city yet, the city of the first
-- district (named by its code, like districts made by enrolment). A hub
-- with no organisation at all keeps its tokens unattached, and they are
-- refused until `dangan-hub admin-token` issues one for an account.
ALTER TABLE admin_tokens ADD COLUMN user_id INTEGER REFERENCES users(id);
INSERT OR IGNORE INTO orgs(code, name, level, parent, status, created_at, updated_at)
    SELECT substr(min(code), 1, 4) || '00', substr(min(code), 1, 4) || '00', 'city', NULL,
           'active', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
    FROM orgs
    WHERE level = 'district'
      AND NOT EXISTS (SELECT 1 FROM orgs WHERE level = 'city')
      AND EXISTS (SELECT 1 FROM admin_tokens)
      AND NOT EXISTS (SELECT 1 FROM users WHERE username = 'admin')
    HAVING count(*) > 0;
INSERT INTO users(username, display_name, role, org, password_hash, created_at)
    SELECT 'admin', 'admin', 'system_admin', code, '!', strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
    FROM (SELECT code FROM orgs WHERE level = 'city' ORDER BY code LIMIT 1)
    WHERE EXISTS (SELECT 1 FROM admin_tokens)
      AND NOT EXISTS (SELECT 1 FROM users WHERE username = 'admin');
UPDATE admin_tokens SET user_id = (SELECT id FROM users WHERE username = 'admin');
"#,
    r#"
-- 7: the common dictionaries and business-type templates (see
-- dictionaries.rs), versioned: every published version is a row, never
-- changed; `seq` orders the feed the edges read from a cursor.
CREATE TABLE dictionary_versions (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('template','categories','retentions','defects')),
    code        TEXT NOT NULL,
    version     INTEGER NOT NULL CHECK (version >= 1),
    body        TEXT NOT NULL,
    author      TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    UNIQUE (kind, code, version)
);
CREATE TRIGGER dictionary_versions_no_update BEFORE UPDATE ON dictionary_versions
BEGIN
    SELECT RAISE(ABORT, 'dictionary versions are never changed; publish a new one');
END;
CREATE TRIGGER dictionary_versions_no_delete BEFORE DELETE ON dictionary_versions
BEGIN
    SELECT RAISE(ABORT, 'dictionary versions are never deleted; publish a new one');
END;
"#,
    r#"
-- 8: search (see search.rs). A person's name is found by any substring of
-- at least two characters through its character bigrams (张三丰: 张三,
-- 三丰). Each entry also carries what a search by name filters and sorts
-- on without reading the file: its business date ('' when it has none),
-- organisation and batch district. Triggers keep the entries in the same
-- statement as the business file, so no writer can leave them out;
-- existing files are indexed here. Triggers cannot use WITH RECURSIVE:
-- json_each over "[0,0,...,0]" (length - 1 elements) numbers the
-- positions instead. Dates and organisations get indexes for range
-- searches sorted by date.
CREATE TABLE name_bigrams (
    bigram           TEXT NOT NULL,
    date             TEXT NOT NULL,
    business_file_id INTEGER NOT NULL,
    organisation     TEXT NOT NULL,
    district         TEXT,
    PRIMARY KEY (bigram, date, business_file_id)
) WITHOUT ROWID;
CREATE TRIGGER business_files_name_insert AFTER INSERT ON business_files
WHEN length(NEW.person_name) >= 2
BEGIN
    INSERT OR IGNORE INTO name_bigrams(bigram, date, business_file_id, organisation, district)
    SELECT substr(NEW.person_name, key + 1, 2), coalesce(NEW.date, ''), NEW.id,
           NEW.organisation, (SELECT district FROM batches WHERE id = NEW.batch_id)
    FROM json_each('[' || replace(hex(zeroblob(length(NEW.person_name) - 2)), '00', '0,') || '0]');
END;
CREATE TRIGGER business_files_name_update
AFTER UPDATE OF person_name, date, organisation, batch_id ON business_files
BEGIN
    DELETE FROM name_bigrams
    WHERE business_file_id = OLD.id AND date = coalesce(OLD.date, '')
      AND bigram IN (SELECT substr(OLD.person_name, key + 1, 2) FROM json_each('[' || replace(hex(zeroblob(length(OLD.person_name) - 2)), '00', '0,') || '0]'));
    INSERT OR IGNORE INTO name_bigrams(bigram, date, business_file_id, organisation, district)
    SELECT substr(NEW.person_name, key + 1, 2), coalesce(NEW.date, ''), NEW.id,
           NEW.organisation, (SELECT district FROM batches WHERE id = NEW.batch_id)
    FROM json_each('[' || replace(hex(zeroblob(length(NEW.person_name) - 2)), '00', '0,') || '0]')
    WHERE length(NEW.person_name) >= 2;
END;
CREATE TRIGGER business_files_name_delete AFTER DELETE ON business_files
WHEN length(OLD.person_name) >= 2
BEGIN
    DELETE FROM name_bigrams
    WHERE business_file_id = OLD.id AND date = coalesce(OLD.date, '')
      AND bigram IN (SELECT substr(OLD.person_name, key + 1, 2) FROM json_each('[' || replace(hex(zeroblob(length(OLD.person_name) - 2)), '00', '0,') || '0]'));
END;
INSERT OR IGNORE INTO name_bigrams(bigram, date, business_file_id, organisation, district)
    SELECT substr(f.person_name, p.key + 1, 2), coalesce(f.date, ''), f.id, f.organisation,
           (SELECT district FROM batches WHERE id = f.batch_id)
    FROM business_files f,
         json_each('[' || replace(hex(zeroblob(length(f.person_name) - 2)), '00', '0,') || '0]') p
    WHERE length(f.person_name) >= 2;
CREATE INDEX business_files_date ON business_files(date);
CREATE INDEX business_files_org_date ON business_files(organisation, date);
"#,
    r#"
-- 9: street offices' live uploads (事中扫描) into the hub's pre-archive
-- (前台扫描预归档库), see live.rs, and the tus uploads that bring their
-- pages, see tus.rs. A live business file belongs to the organisation that
-- uploaded it (a street office) and is managed by that organisation's
-- district. Pages are content-addressed blobs like archived pages; their
-- order is `position`.
CREATE TABLE live_files (
    id              INTEGER PRIMARY KEY,
    business_number TEXT NOT NULL UNIQUE,
    organisation    TEXT NOT NULL REFERENCES orgs(code),
    district        TEXT NOT NULL,
    person_id       TEXT,
    person_name     TEXT,
    employer_id     TEXT,
    business_type   TEXT,
    date            TEXT,
    state           TEXT NOT NULL DEFAULT 'open'
                    CHECK (state IN ('open', 'submitted', 'approved', 'returned', 'archived')),
    return_reason   TEXT,
    created_by      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX live_files_org ON live_files(organisation, state);
CREATE INDEX live_files_district ON live_files(district, state);
CREATE TABLE live_pages (
    id           INTEGER PRIMARY KEY,
    live_file_id INTEGER NOT NULL REFERENCES live_files(id),
    position     INTEGER NOT NULL,
    blob         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    format       TEXT NOT NULL,
    width        INTEGER NOT NULL,
    height       INTEGER NOT NULL,
    dpi          INTEGER,
    colour       TEXT NOT NULL,
    filename     TEXT,
    uploaded_by  TEXT NOT NULL,
    uploaded_at  TEXT NOT NULL
);
CREATE INDEX live_pages_file ON live_pages(live_file_id, position);
-- One tus upload (one page image). `received` bytes of `length` are in
-- uploads/<id>; complete ones point at their page, refused ones say why
-- (their bytes are kept in uploads/refused/).
CREATE TABLE uploads (
    id              TEXT PRIMARY KEY,
    owner           TEXT NOT NULL,
    live_file_id    INTEGER NOT NULL REFERENCES live_files(id),
    length          INTEGER NOT NULL,
    received        INTEGER NOT NULL DEFAULT 0,
    metadata        TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    completed_at    TEXT,
    page_id         INTEGER REFERENCES live_pages(id),
    refusal         TEXT
) WITHOUT ROWID;
CREATE INDEX uploads_expiry ON uploads(expires_at) WHERE completed_at IS NULL;
-- Every monthly close (close.rs): who, when, forced why, and its report.
CREATE TABLE live_closes (
    id        INTEGER PRIMARY KEY,
    month     TEXT NOT NULL,
    district  TEXT,
    closed_at TEXT NOT NULL,
    closed_by TEXT NOT NULL,
    forced    TEXT,
    report    TEXT NOT NULL
);
CREATE INDEX live_closes_month ON live_closes(month, district);
"#,
    r#"
-- 10: events for the business system's webhook (see webhooks.rs), written
-- in the transaction of the change they report and delivered from here.
CREATE TABLE webhook_outbox (
    id              INTEGER PRIMARY KEY,
    event           TEXT NOT NULL,
    business_number TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_at         TEXT NOT NULL,
    delivered_at    TEXT,
    failed_at       TEXT,
    last_error      TEXT
);
CREATE INDEX webhook_outbox_due ON webhook_outbox(next_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
-- Short-lived links to a live business file's pages that a business system
-- embeds (live.rs): only the token's hash is kept.
CREATE TABLE viewer_links (
    token_hash      TEXT PRIMARY KEY,
    business_number TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL
) WITHOUT ROWID;
"#,
    r#"
-- 11: the districts' warehouses (库房) of paper originals, from the edges'
-- warehouse feeds (sync v2, see warehouse.rs). Each edge feed has a cursor
-- per district; its events are kept whole (append-only history) and folded
-- into the current state below, in the transaction that moves the cursor.
-- Everything is keyed by the district's names (codes, batch names), not
-- hub ids: events may arrive before the batch they name is archived here.
CREATE TABLE warehouse_feeds (
    district   TEXT NOT NULL,
    feed       TEXT NOT NULL,
    cursor     INTEGER NOT NULL CHECK (cursor >= 0),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (district, feed)
) WITHOUT ROWID;
CREATE TABLE warehouse_events (
    district    TEXT NOT NULL,
    feed        TEXT NOT NULL,
    seq         INTEGER NOT NULL CHECK (seq >= 1),
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (district, feed, seq)
) WITHOUT ROWID;
CREATE TRIGGER warehouse_events_no_update BEFORE UPDATE ON warehouse_events
BEGIN
    SELECT RAISE(ABORT, 'warehouse_events is append-only');
END;
CREATE TRIGGER warehouse_events_no_delete BEFORE DELETE ON warehouse_events
BEGIN
    SELECT RAISE(ABORT, 'warehouse_events is append-only');
END;
CREATE TABLE wh_locations (
    district   TEXT NOT NULL,
    code       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    parent     TEXT,
    capacity   INTEGER,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (district, code)
) WITHOUT ROWID;
CREATE TABLE wh_volumes (
    district   TEXT NOT NULL,
    code       TEXT NOT NULL,
    title      TEXT NOT NULL,
    box_code   TEXT,
    retention  TEXT,
    date_from  TEXT,
    date_to    TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (district, code)
) WITHOUT ROWID;
CREATE TABLE wh_file_volumes (
    district        TEXT NOT NULL,
    batch           TEXT NOT NULL,
    file_seq        INTEGER NOT NULL,
    business_number TEXT,
    volume          TEXT NOT NULL,
    PRIMARY KEY (district, batch, file_seq)
) WITHOUT ROWID;
CREATE TABLE wh_loans (
    district     TEXT NOT NULL,
    feed         TEXT NOT NULL,
    loan         INTEGER NOT NULL,
    item         TEXT NOT NULL,
    state        TEXT NOT NULL,
    borrower     TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    due_date     TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    approved_by  TEXT,
    lent_at      TEXT,
    returned_at  TEXT,
    hub_request  INTEGER,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (district, feed, loan)
) WITHOUT ROWID;
CREATE INDEX wh_loans_item ON wh_loans(district, item, state);
CREATE INDEX wh_loans_state ON wh_loans(state, due_date);
CREATE INDEX wh_loans_hub_request ON wh_loans(hub_request) WHERE hub_request IS NOT NULL;
CREATE TABLE wh_checks (
    district    TEXT NOT NULL,
    feed        TEXT NOT NULL,
    "check"     INTEGER NOT NULL,
    root        TEXT NOT NULL,
    state       TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    missing     INTEGER NOT NULL,
    unexpected  INTEGER NOT NULL,
    misplaced   INTEGER NOT NULL,
    resolved    INTEGER NOT NULL,
    PRIMARY KEY (district, feed, "check")
) WITHOUT ROWID;
-- Hub reviewers' requests to borrow an original (a volume), read by the
-- district's edge from its loan-request feed; the edge's loan that answers
-- one names it (wh_loans.hub_request).
CREATE TABLE loan_requests (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    district     TEXT NOT NULL,
    item         TEXT NOT NULL,
    borrower     TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    due_date     TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    file_id      INTEGER REFERENCES business_files(id)
);
CREATE INDEX loan_requests_district ON loan_requests(district, seq);
CREATE INDEX loan_requests_file ON loan_requests(file_id);
"#,
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{path} is not a Dangan hub data folder (no {DB_FILE}); run `dangan-hub init` first")]
    NotInitialised { path: String },
    #[error(
        "the database was written by a newer dangan-hub (schema {found}, this binary knows {known})"
    )]
    TooNew { found: i64, known: i64 },
    #[error("the database holds a malformed value: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Random(#[from] dangan_sync::receipt::RandomError),
}

impl StoreError {
    /// The disk (or the database's quota) is full: retrying later may work.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DiskFull)
    }
}

/// Current time as stored: RFC 3339 in UTC with whole seconds and a `Z`,
/// so that stored times compare correctly as strings.
pub fn now() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

pub fn format_time(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    at.format(&format).unwrap_or_default()
}

/// The stored form of `now - age` (or `now + age` with a negative age).
pub fn time_ago(age: Duration) -> String {
    format_time(time::OffsetDateTime::now_utc() - age)
}

pub fn time_after(delay: Duration) -> String {
    format_time(time::OffsetDateTime::now_utc() + delay)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a committed batch survives a power cut, not only a process crash.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(Duration::from_secs(30))?;
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
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    crate::dictionaries::seed(conn)?;
    Ok(())
}

/// Idle connections kept for reuse; more are opened when all are busy.
const POOL_IDLE: usize = 8;

/// A pool of connections to `hub.db`.
pub struct Db {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

/// A connection borrowed from the pool; it goes back when dropped.
pub struct PooledConnection<'a> {
    db: &'a Db,
    conn: Option<Connection>,
}

impl std::ops::Deref for PooledConnection<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // Present from creation until drop.
        #[allow(clippy::unwrap_used)]
        self.conn.as_ref().unwrap()
    }
}

impl std::ops::DerefMut for PooledConnection<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        // Present from creation until drop.
        #[allow(clippy::unwrap_used)]
        self.conn.as_mut().unwrap()
    }
}

impl Drop for PooledConnection<'_> {
    fn drop(&mut self) {
        // A connection left inside a transaction (work that panicked in
        // `atomically`) is closed, which rolls it back, not reused.
        if let Some(conn) = self.conn.take()
            && conn.is_autocommit()
            && let Ok(mut idle) = self.db.idle.lock()
            && idle.len() < POOL_IDLE
        {
            idle.push(conn);
        }
    }
}

impl Db {
    /// Creates `hub.db` in `dir` (which must not have one yet) with the
    /// current schema.
    pub fn create(dir: &Path) -> Result<Db, StoreError> {
        let path = dir.join(DB_FILE);
        let mut conn = Connection::open(&path)?;
        configure(&conn)?;
        migrate(&mut conn)?;
        Ok(Db {
            path,
            idle: Mutex::new(vec![conn]),
        })
    }

    /// Opens an existing `hub.db`, applying pending migrations.
    pub fn open(dir: &Path) -> Result<Db, StoreError> {
        let path = dir.join(DB_FILE);
        if !path.is_file() {
            return Err(StoreError::NotInitialised {
                path: dir.display().to_string(),
            });
        }
        let mut conn = Connection::open(&path)?;
        configure(&conn)?;
        migrate(&mut conn)?;
        Ok(Db {
            path,
            idle: Mutex::new(vec![conn]),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Borrows a connection, opening a new one when none is idle.
    pub fn get(&self) -> Result<PooledConnection<'_>, StoreError> {
        let reused = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match reused {
            Some(conn) => conn,
            None => {
                let conn = Connection::open(&self.path)?;
                configure(&conn)?;
                conn
            }
        };
        Ok(PooledConnection {
            db: self,
            conn: Some(conn),
        })
    }

    /// Runs `work` with a connection on a blocking thread.
    pub async fn run<T, E, F>(self: &Arc<Self>, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        let db = Arc::clone(self);
        let joined = tokio::task::spawn_blocking(move || {
            let mut conn = db.get()?;
            work(&mut conn)
        })
        .await;
        match joined {
            Ok(result) => result,
            // The closure panicked: report it as a database failure rather
            // than taking the server down.
            Err(err) => Err(E::from(StoreError::Corrupt(format!(
                "database task failed: {err}"
            )))),
        }
    }
}

/// A write transaction, or a savepoint within the one [`atomically`] opened.
pub enum WriteTx<'a> {
    Outer(rusqlite::Transaction<'a>),
    Nested(rusqlite::Savepoint<'a>),
}

impl std::ops::Deref for WriteTx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            WriteTx::Outer(tx) => tx,
            WriteTx::Nested(savepoint) => savepoint,
        }
    }
}

impl WriteTx<'_> {
    /// Commits (a savepoint: releases it into the enclosing transaction).
    /// Dropped without it, everything done in it is rolled back.
    pub fn commit(self) -> rusqlite::Result<()> {
        match self {
            WriteTx::Outer(tx) => tx.commit(),
            WriteTx::Nested(savepoint) => savepoint.commit(),
        }
    }
}

/// Begins a transaction that takes the write lock at once; inside
/// [`atomically`], a savepoint, so the work joins the enclosing transaction.
pub fn write_tx(conn: &mut Connection) -> rusqlite::Result<WriteTx<'_>> {
    if conn.is_autocommit() {
        Ok(WriteTx::Outer(conn.transaction_with_behavior(
            TransactionBehavior::Immediate,
        )?))
    } else {
        Ok(WriteTx::Nested(conn.savepoint()?))
    }
}

/// Runs `work` in one write transaction: a change and its audit entry
/// commit together or not at all. The library functions `work` calls that
/// begin their own transaction ([`write_tx`]) become savepoints in it.
pub fn atomically<T, E: From<StoreError>>(
    conn: &mut Connection,
    work: impl FnOnce(&mut Connection) -> Result<T, E>,
) -> Result<T, E> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|err| E::from(err.into()))?;
    match work(conn) {
        Ok(value) => match conn.execute_batch("COMMIT") {
            Ok(()) => Ok(value),
            Err(err) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(E::from(err.into()))
            }
        },
        Err(err) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(err)
        }
    }
}

pub fn meta(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()?)
}

pub fn set_meta(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_times_sort_as_strings() {
        let earlier = format_time(time::macros::datetime!(2026-11-25 09:59:59.9 UTC));
        let later = format_time(time::macros::datetime!(2026-11-25 10:00:00 UTC));
        assert_eq!(earlier, "2026-11-25T09:59:59Z");
        assert_eq!(later, "2026-11-25T10:00:00Z");
        assert!(earlier < later);
    }

    /// A hub made before admin tokens belonged to an account: its tokens
    /// are attached to a new `admin` system administrator bound to the root
    /// of its organisation tree, and keep working.
    #[test]
    fn old_admin_tokens_become_the_admin_accounts() {
        for (orgs, root) in [
            (&["330106", "330108"][..], Some("330100")),
            (&["330200", "330106"][..], Some("330200")),
            (&[][..], None),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(DB_FILE);
            let token = "dga_0123456789abcdef";
            {
                let mut conn = Connection::open(&path).unwrap();
                configure(&conn).unwrap();
                for (index, sql) in MIGRATIONS.iter().enumerate().take(5) {
                    conn.execute_batch(sql).unwrap();
                    conn.pragma_update(None, "user_version", index as i64 + 1)
                        .unwrap();
                }
                let tx = write_tx(&mut conn).unwrap();
                for code in orgs {
                    let level = if code.ends_with("00") {
                        "city"
                    } else {
                        "district"
                    };
                    tx.execute(
                        "INSERT INTO orgs(code, name, level, created_at, updated_at)
                         VALUES (?1, ?1, ?2, 'then', 'then')",
                        params![code, level],
                    )
                    .unwrap();
                }
                tx.execute(
                    "INSERT INTO admin_tokens(token_hash, created_at) VALUES (?1, 'then')",
                    [dangan_sync::token_hash(token)],
                )
                .unwrap();
                tx.commit().unwrap();
            }
            let db = Db::open(dir.path()).unwrap();
            let conn = db.get().unwrap();
            let owner = crate::users::admin_token_user(&conn, token).unwrap();
            match root {
                Some(root) => {
                    let owner = owner.unwrap();
                    assert_eq!(owner.username, "admin");
                    assert_eq!(owner.role, crate::users::Role::SystemAdmin);
                    assert_eq!(owner.org, root);
                }
                None => assert!(owner.is_none()),
            }
        }
    }

    /// Business files archived before the name index (migration 8) are
    /// indexed by it.
    #[test]
    fn the_name_index_is_built_for_files_archived_before_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
            // Only the business files matter here, not their batches.
            conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
            for (index, sql) in MIGRATIONS.iter().enumerate().take(7) {
                conn.execute_batch(sql).unwrap();
                conn.pragma_update(None, "user_version", index as i64 + 1)
                    .unwrap();
            }
            let tx = write_tx(&mut conn).unwrap();
            for (id, name) in [(1, Some("张三丰")), (2, Some("李")), (3, None)] {
                tx.execute(
                    "INSERT INTO business_files(id, batch_id, seq, organisation, person_name)
                     VALUES (?1, 1, ?1, '330106', ?2)",
                    params![id, name],
                )
                .unwrap();
            }
            tx.commit().unwrap();
        }
        let db = Db::open(dir.path()).unwrap();
        let conn = db.get().unwrap();
        let mut statement = conn
            .prepare("SELECT bigram, business_file_id FROM name_bigrams ORDER BY bigram")
            .unwrap();
        let rows: Vec<(String, i64)> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut expected = vec![("三丰".to_owned(), 1), ("张三".to_owned(), 1)];
        expected.sort();
        assert_eq!(rows, expected);
    }

    #[test]
    fn atomically_commits_all_or_nothing_with_nested_write_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(dir.path()).unwrap();
        let mut conn = db.get().unwrap();
        let set = |conn: &mut Connection, key: &str| -> Result<(), StoreError> {
            let tx = write_tx(conn)?;
            set_meta(&tx, key, "v")?;
            tx.commit()?;
            Ok(())
        };
        let failed: Result<(), StoreError> = atomically(&mut conn, |conn| {
            set(conn, "a")?;
            Err(StoreError::Corrupt("the audit entry failed".into()))
        });
        assert!(failed.is_err());
        assert!(conn.is_autocommit());
        assert_eq!(meta(&conn, "a").unwrap(), None);
        atomically(&mut conn, |conn| {
            set(conn, "a")?;
            // A nested step that fails rolls back only itself.
            let tx = write_tx(conn)?;
            set_meta(&tx, "b", "v")?;
            drop(tx);
            set(conn, "c")
        })
        .unwrap();
        assert_eq!(meta(&conn, "a").unwrap().as_deref(), Some("v"));
        assert_eq!(meta(&conn, "b").unwrap(), None);
        assert_eq!(meta(&conn, "c").unwrap().as_deref(), Some("v"));
    }

    #[test]
    fn creates_migrates_and_pools() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(dir.path()).unwrap();
        set_meta(&db.get().unwrap(), "hub_id", "h").unwrap();
        let first = db.get().unwrap();
        let second = db.get().unwrap();
        assert_eq!(meta(&second, "hub_id").unwrap().as_deref(), Some("h"));
        drop((first, second));
        drop(db);
        let db = Db::open(dir.path()).unwrap();
        let version: i64 = db
            .get()
            .unwrap()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        assert!(matches!(
            Db::open(&dir.path().join("nowhere")),
            Err(StoreError::NotInitialised { .. })
        ));
    }
}
