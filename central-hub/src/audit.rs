//! The hub's tamper-evident audit trail: who did what, when, from which
//! address and with what result.
//!
//! Entries live in the `audit_log` table, append-only (triggers refuse
//! UPDATE and DELETE) and hash-chained: each entry's `hash` is BLAKE3 over
//! the canonical encoding of its fields and the previous entry's hash
//! ([`entry_hash`]); the first entry's `prev_hash` is [`GENESIS_HASH`].
//!
//! A chain alone does not reveal that its newest entries were deleted or
//! rewritten (the rest still links up), so the chain head is signed with the
//! hub's key and appended to `DATA/audit/checkpoints.jsonl`, a file outside
//! the database, at least every [`CHECKPOINT_EVERY`] while the hub serves
//! and whenever `dangan-hub audit checkpoint` runs. [`verify`] recomputes
//! every hash and link and checks every checkpoint against the chain.
//!
//! Canonical encoding of an entry (the bytes [`entry_hash`] hashes):
//!
//! ```text
//! "dangan.audit.v1\n"                      16 ASCII bytes (domain)
//! seq                                      8 bytes, unsigned big-endian
//! then for each of at, actor, actor_kind, address, action, target,
//! result, detail, prev_hash, in this order:
//!   0x00                                   the field is NULL, or
//!   0x01, length (8 bytes big-endian), the field's UTF-8 bytes
//! ```
//!
//! A checkpoint's signature is Ed25519 over
//! `"dangan.audit.checkpoint.v1\nseq=<seq>\nhash=<hash>\nat=<at>\n"`
//! ([`checkpoint_message`]), as 128 lowercase hex digits.
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use dangan_sync::HubKey;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::store::{self, StoreError, write_tx};

/// The folder of the audit files in the hub data folder.
pub const AUDIT_DIR: &str = "audit";
/// The checkpoint file in [`AUDIT_DIR`]: one JSON [`Checkpoint`] a line.
pub const CHECKPOINTS_FILE: &str = "checkpoints.jsonl";
/// The previous hash of the first entry: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The longest time a moved chain head goes without a checkpoint while the
/// hub serves.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(600);

const ENTRY_DOMAIN: &[u8; 16] = b"dangan.audit.v1\n";
const CHECKPOINT_DOMAIN: &str = "dangan.audit.checkpoint.v1";

/// Why an audit operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the detail of an audit entry is not JSON: {0}")]
    Detail(#[from] serde_json::Error),
    #[error("cannot write CSV: {0}")]
    Csv(String),
}

impl From<rusqlite::Error> for AuditError {
    fn from(err: rusqlite::Error) -> Self {
        AuditError::Store(StoreError::Sqlite(err))
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> AuditError {
    let path = path.to_owned();
    move |source| AuditError::Io {
        action,
        path,
        source,
    }
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A person logged in to the hub.
    User,
    /// A node or API token.
    Token,
    /// An administrator (admin token).
    Admin,
    /// The hub itself (housekeeping).
    System,
    /// The local `dangan-hub` command line.
    Cli,
}

impl ActorKind {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Token => "token",
            ActorKind::Admin => "admin",
            ActorKind::System => "system",
            ActorKind::Cli => "cli",
        }
    }
}

/// How the action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// Refused for lack of permission.
    Denied,
    /// Permitted but failed.
    Failed,
}

impl Outcome {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// An entry to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    pub actor: String,
    pub actor_kind: ActorKind,
    /// The client's network address, when there is one.
    pub address: Option<String>,
    /// What was done, dotted, e.g. `node.enrol`, `search`, `page.view`.
    pub action: String,
    /// What it was done to, e.g. a district, node or batch.
    pub target: Option<String>,
    pub result: Outcome,
    /// Further facts as JSON (never credentials).
    pub detail: Option<serde_json::Value>,
}

/// A stored entry, exactly as hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: i64,
    /// RFC 3339 UTC, as [`store::now`] writes it.
    pub at: String,
    pub actor: String,
    /// user, token, admin, system or cli.
    pub actor_kind: String,
    pub address: Option<String>,
    pub action: String,
    pub target: Option<String>,
    /// ok, denied or failed.
    pub result: String,
    /// JSON text, exactly as stored and hashed.
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

const COLUMNS: &str =
    "seq, at, actor, actor_kind, address, action, target, result, detail, prev_hash, hash";

fn entry_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok(Entry {
        seq: row.get(0)?,
        at: row.get(1)?,
        actor: row.get(2)?,
        actor_kind: row.get(3)?,
        address: row.get(4)?,
        action: row.get(5)?,
        target: row.get(6)?,
        result: row.get(7)?,
        detail: row.get(8)?,
        prev_hash: row.get(9)?,
        hash: row.get(10)?,
    })
}

/// The canonical encoding of `entry` without its own hash (see the module
/// documentation).
pub fn canonical_bytes(entry: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(ENTRY_DOMAIN);
    out.extend_from_slice(&(entry.seq as u64).to_be_bytes());
    let fields: [Option<&str>; 9] = [
        Some(&entry.at),
        Some(&entry.actor),
        Some(&entry.actor_kind),
        entry.address.as_deref(),
        Some(&entry.action),
        entry.target.as_deref(),
        Some(&entry.result),
        entry.detail.as_deref(),
        Some(&entry.prev_hash),
    ];
    for field in fields {
        match field {
            None => out.push(0),
            Some(text) => {
                out.push(1);
                out.extend_from_slice(&(text.len() as u64).to_be_bytes());
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
    out
}

/// The hash `entry` must carry: BLAKE3 of [`canonical_bytes`], 64
/// lowercase hex digits. `entry.hash` itself is ignored.
pub fn entry_hash(entry: &Entry) -> String {
    blake3::hash(&canonical_bytes(entry)).to_hex().to_string()
}

/// The newest entry's (seq, hash), if any.
pub fn head(conn: &Connection) -> Result<Option<(i64, String)>, AuditError> {
    Ok(conn
        .query_row(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?)
}

/// Appends `entry` inside the caller's transaction (`conn` must be in a
/// write transaction), so that an audited change and its entry commit
/// together.
pub fn append(conn: &Connection, entry: &NewEntry) -> Result<Entry, AuditError> {
    let (seq, prev_hash) = match head(conn)? {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS_HASH.to_owned()),
    };
    let detail = entry
        .detail
        .as_ref()
        .map(serde_json::to_string)
        .transpose()?;
    let mut stored = Entry {
        seq,
        at: store::now(),
        actor: entry.actor.clone(),
        actor_kind: entry.actor_kind.as_str().to_owned(),
        address: entry.address.clone(),
        action: entry.action.clone(),
        target: entry.target.clone(),
        result: entry.result.as_str().to_owned(),
        detail,
        prev_hash,
        hash: String::new(),
    };
    stored.hash = entry_hash(&stored);
    conn.execute(
        &format!(
            "INSERT INTO audit_log({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ),
        params![
            stored.seq,
            stored.at,
            stored.actor,
            stored.actor_kind,
            stored.address,
            stored.action,
            stored.target,
            stored.result,
            stored.detail,
            stored.prev_hash,
            stored.hash
        ],
    )?;
    Ok(stored)
}

/// Appends `entry` in a write transaction of its own.
pub fn record(conn: &mut Connection, entry: &NewEntry) -> Result<Entry, AuditError> {
    let tx = write_tx(conn)?;
    let stored = append(&tx, entry)?;
    tx.commit()?;
    Ok(stored)
}

/// Which entries [`query`] returns. Every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub actor: Option<String>,
    /// An action, or a prefix ending in `.*` (e.g. `node.*`).
    pub action: Option<String>,
    /// Entries at or after this time (stored form, compared as text; a
    /// date alone means its start).
    pub from: Option<String>,
    /// Entries before this time (exclusive, compared as text).
    pub to: Option<String>,
    pub target: Option<String>,
    /// At most this many entries (all when `None`).
    pub limit: Option<u32>,
    /// Skip this many matching entries first.
    pub offset: u32,
}

/// The entries matching `filter`, oldest first.
pub fn query(conn: &Connection, filter: &Filter) -> Result<Vec<Entry>, AuditError> {
    let mut sql = format!("SELECT {COLUMNS} FROM audit_log WHERE 1 = 1");
    let mut args: Vec<String> = Vec::new();
    let mut condition = |sql: &mut String, clause: &str, value: String| {
        args.push(value);
        sql.push_str(&format!(" AND {clause} ?{}", args.len()));
    };
    if let Some(actor) = &filter.actor {
        condition(&mut sql, "actor =", actor.clone());
    }
    if let Some(action) = &filter.action {
        match action.strip_suffix(".*") {
            Some(prefix) => {
                // substr keeps LIKE's wildcards in the prefix literal.
                let prefix = format!("{prefix}.");
                let len = prefix.chars().count();
                condition(&mut sql, &format!("substr(action, 1, {len}) ="), prefix);
            }
            None => condition(&mut sql, "action =", action.clone()),
        }
    }
    if let Some(from) = &filter.from {
        condition(&mut sql, "at >=", from.clone());
    }
    if let Some(to) = &filter.to {
        condition(&mut sql, "at <", to.clone());
    }
    if let Some(target) = &filter.target {
        condition(&mut sql, "target =", target.clone());
    }
    let limit = filter.limit.map_or(-1, i64::from);
    sql.push_str(&format!(
        " ORDER BY seq LIMIT {limit} OFFSET {}",
        filter.offset
    ));
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(rusqlite::params_from_iter(args.iter()), entry_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// `entries` as CSV (RFC 4180: a header row, CRLF line ends, fields quoted
/// when needed); NULL fields are empty.
pub fn csv(entries: &[Entry]) -> Result<String, AuditError> {
    let mut writer = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let fail = |err: ::csv::Error| AuditError::Csv(err.to_string());
    writer
        .write_record([
            "seq",
            "at",
            "actor",
            "actor_kind",
            "address",
            "action",
            "target",
            "result",
            "detail",
            "prev_hash",
            "hash",
        ])
        .map_err(fail)?;
    for e in entries {
        let seq = e.seq.to_string();
        writer
            .write_record([
                seq.as_str(),
                &e.at,
                &e.actor,
                &e.actor_kind,
                e.address.as_deref().unwrap_or(""),
                &e.action,
                e.target.as_deref().unwrap_or(""),
                &e.result,
                e.detail.as_deref().unwrap_or(""),
                &e.prev_hash,
                &e.hash,
            ])
            .map_err(fail)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|err| AuditError::Csv(err.to_string()))?;
    String::from_utf8(bytes).map_err(|err| AuditError::Csv(err.to_string()))
}

/// A signed statement that the chain's entry `seq` had hash `hash` at `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    pub at: String,
    /// Ed25519 over [`checkpoint_message`], 128 lowercase hex digits.
    pub signature: String,
}

/// What [`checkpoint`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "checkpoint", rename_all = "snake_case")]
pub enum CheckpointOutcome {
    /// A new checkpoint was appended.
    Written(Checkpoint),
    /// The head has not moved since this, the last checkpoint.
    Unchanged(Checkpoint),
    /// The trail has no entries yet.
    Empty,
}

/// The bytes a checkpoint's signature covers.
pub fn checkpoint_message(seq: i64, hash: &str, at: &str) -> Vec<u8> {
    format!("{CHECKPOINT_DOMAIN}\nseq={seq}\nhash={hash}\nat={at}\n").into_bytes()
}

/// `DATA/audit/checkpoints.jsonl`.
pub fn checkpoints_path(data_dir: &Path) -> PathBuf {
    data_dir.join(AUDIT_DIR).join(CHECKPOINTS_FILE)
}

/// The public half of the hub key, which verifies checkpoints.
pub fn verifying_key(key: &HubKey) -> VerifyingKey {
    SigningKey::from_bytes(&key.to_bytes()).verifying_key()
}

/// The last checkpoint in the file at `path`, if any (read from its end).
pub fn last_checkpoint(path: &Path) -> Result<Option<Checkpoint>, AuditError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io_err("open", path)(err)),
    };
    let len = file.metadata().map_err(io_err("read", path))?.len();
    // A line is about 300 bytes; 8 KiB holds the last whole one.
    let start = len.saturating_sub(8192);
    file.seek(SeekFrom::Start(start))
        .map_err(io_err("read", path))?;
    let mut tail = String::new();
    file.read_to_string(&mut tail)
        .map_err(io_err("read", path))?;
    Ok(tail
        .lines()
        .rev()
        .filter(|line| !line.trim().is_empty())
        .find_map(|line| serde_json::from_str(line).ok()))
}

/// Signs the chain head and appends it to the checkpoint file at `path`
/// (creating its folder), unless the head has not moved since the last
/// checkpoint there or the trail is empty.
pub fn checkpoint(
    conn: &Connection,
    key: &HubKey,
    path: &Path,
) -> Result<CheckpointOutcome, AuditError> {
    let Some((seq, hash)) = head(conn)? else {
        return Ok(CheckpointOutcome::Empty);
    };
    if let Some(last) = last_checkpoint(path)?
        && last.seq == seq
        && last.hash == hash
    {
        return Ok(CheckpointOutcome::Unchanged(last));
    }
    let at = store::now();
    let signing = SigningKey::from_bytes(&key.to_bytes());
    let signature = to_hex(
        &signing
            .sign(&checkpoint_message(seq, &hash, &at))
            .to_bytes(),
    );
    let made = Checkpoint {
        seq,
        hash,
        at,
        signature,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    }
    let mut line = serde_json::to_string(&made)?;
    line.push('\n');
    let mut file = File::options()
        .append(true)
        .create(true)
        .open(path)
        .map_err(io_err("open", path))?;
    file.write_all(line.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_err("write", path))?;
    Ok(CheckpointOutcome::Written(made))
}

/// [`checkpoint`] if the last checkpoint at `path` is older than `max_age`
/// (or there is none); `None` when it is recent enough.
pub fn checkpoint_if_due(
    conn: &Connection,
    key: &HubKey,
    path: &Path,
    max_age: Duration,
) -> Result<Option<CheckpointOutcome>, AuditError> {
    if let Some(last) = last_checkpoint(path)?
        && last.at > store::time_ago(max_age)
    {
        return Ok(None);
    }
    checkpoint(conn, key, path).map(Some)
}

/// What is wrong with the trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The entry's fields do not give its hash: it was edited.
    HashMismatch,
    /// The entry's prev_hash is not the previous entry's hash: an entry
    /// was inserted, deleted or rewritten before it.
    BrokenLink,
    /// Sequence numbers are missing before this entry: entries were deleted.
    SeqGap,
    /// A checkpoint names an entry the chain no longer has: the newest
    /// entries were deleted.
    Truncated,
    /// The chain's entry at a checkpoint's seq has another hash: it was
    /// rewritten.
    CheckpointMismatch,
    /// A checkpoint's signature does not verify with the hub key.
    BadSignature,
    /// A line of the checkpoint file is not a checkpoint.
    MalformedCheckpoint,
}

/// One finding of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The entry (or checkpointed seq) concerned, when there is one.
    pub seq: Option<i64>,
    pub kind: ProblemKind,
    /// In English, for logs and JSON.
    pub message: String,
}

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Entries read.
    pub entries: u64,
    /// Checkpoints read (well-formed lines).
    pub checkpoints: u64,
    /// The newest entry's seq.
    pub head_seq: Option<i64>,
    /// The newest checkpoint's seq: entries after it are protected only by
    /// the chain, not yet against deletion.
    pub last_checkpoint_seq: Option<i64>,
    /// No problem found.
    pub ok: bool,
    /// Every problem found, chain problems in seq order first.
    pub problems: Vec<Problem>,
}

/// Recomputes every entry's hash and link, and checks every checkpoint in
/// the file at `checkpoints_path` (a missing file means no checkpoint yet):
/// its signature with `public_key`, and that the chain still holds the
/// checkpointed (seq, hash).
pub fn verify(
    conn: &Connection,
    public_key: &VerifyingKey,
    checkpoints_path: &Path,
) -> Result<VerifyReport, AuditError> {
    let mut problems = Vec::new();
    let mut checkpoint_problems = Vec::new();
    // seq → the checkpoints naming it.
    let mut wanted: HashMap<i64, Vec<Checkpoint>> = HashMap::new();
    let mut checkpoints = 0_u64;
    let mut last_checkpoint_seq = None;
    match File::open(checkpoints_path) {
        Ok(file) => {
            for (index, line) in BufReader::new(file).lines().enumerate() {
                let line = line.map_err(io_err("read", checkpoints_path))?;
                if line.trim().is_empty() {
                    continue;
                }
                let Ok(cp) = serde_json::from_str::<Checkpoint>(&line) else {
                    checkpoint_problems.push(Problem {
                        seq: None,
                        kind: ProblemKind::MalformedCheckpoint,
                        message: format!(
                            "line {} of the checkpoint file is not a checkpoint",
                            index + 1
                        ),
                    });
                    continue;
                };
                checkpoints += 1;
                if !signature_ok(public_key, &cp) {
                    checkpoint_problems.push(Problem {
                        seq: Some(cp.seq),
                        kind: ProblemKind::BadSignature,
                        message: format!(
                            "the checkpoint of {} (seq {}) is not signed by this hub's key",
                            cp.at, cp.seq
                        ),
                    });
                    continue;
                }
                last_checkpoint_seq = last_checkpoint_seq.max(Some(cp.seq));
                wanted.entry(cp.seq).or_default().push(cp);
            }
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(io_err("open", checkpoints_path)(err)),
    }

    let mut entries = 0_u64;
    let mut expected_seq = 1_i64;
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut head_seq = None;
    let mut statement = conn.prepare(&format!("SELECT {COLUMNS} FROM audit_log ORDER BY seq"))?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let entry = entry_from_row(row)?;
        entries += 1;
        head_seq = Some(entry.seq);
        if entry.seq != expected_seq {
            problems.push(Problem {
                seq: Some(entry.seq),
                kind: ProblemKind::SeqGap,
                message: if entry.seq > expected_seq {
                    format!(
                        "entries {expected_seq}..{} are missing before entry {}",
                        entry.seq - 1,
                        entry.seq
                    )
                } else {
                    format!(
                        "entry {} is out of sequence (expected {expected_seq})",
                        entry.seq
                    )
                },
            });
        }
        if entry.prev_hash != prev_hash {
            problems.push(Problem {
                seq: Some(entry.seq),
                kind: ProblemKind::BrokenLink,
                message: format!(
                    "entry {} does not link to the entry before it: an entry was inserted, deleted or rewritten",
                    entry.seq
                ),
            });
        }
        if entry_hash(&entry) != entry.hash {
            problems.push(Problem {
                seq: Some(entry.seq),
                kind: ProblemKind::HashMismatch,
                message: format!(
                    "entry {} was edited: its hash does not match its fields",
                    entry.seq
                ),
            });
        }
        if let Some(cps) = wanted.remove(&entry.seq) {
            for cp in cps.iter().filter(|cp| cp.hash != entry.hash) {
                problems.push(Problem {
                    seq: Some(entry.seq),
                    kind: ProblemKind::CheckpointMismatch,
                    message: format!(
                        "entry {} is not the one checkpointed at {}: it or entries before it were rewritten",
                        entry.seq, cp.at
                    ),
                });
            }
        }
        expected_seq = entry.seq + 1;
        prev_hash = entry.hash;
    }
    // Checkpoints naming entries the chain lacks.
    let mut missing: Vec<Checkpoint> = wanted.into_values().flatten().collect();
    missing.sort_by_key(|cp| cp.seq);
    let head = head_seq.unwrap_or(0);
    for cp in missing {
        let message = if cp.seq > head {
            format!(
                "entries after seq {head} are missing: the checkpoint of {} records seq {}",
                cp.at, cp.seq
            )
        } else {
            format!(
                "entry {} is missing: the checkpoint of {} records it",
                cp.seq, cp.at
            )
        };
        problems.push(Problem {
            seq: Some(cp.seq),
            kind: ProblemKind::Truncated,
            message,
        });
    }
    problems.extend(checkpoint_problems);
    Ok(VerifyReport {
        entries,
        checkpoints,
        head_seq,
        last_checkpoint_seq,
        ok: problems.is_empty(),
        problems,
    })
}

fn signature_ok(public_key: &VerifyingKey, cp: &Checkpoint) -> bool {
    let Some(bytes) = from_hex::<64>(&cp.signature) else {
        return false;
    };
    public_key
        .verify(
            &checkpoint_message(cp.seq, &cp.hash, &cp.at),
            &Signature::from_bytes(&bytes),
        )
        .is_ok()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0_u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::Db;

    fn fixed() -> Entry {
        Entry {
            seq: 1,
            at: "2026-11-25T10:00:00Z".to_owned(),
            actor: "cli".to_owned(),
            actor_kind: "cli".to_owned(),
            address: None,
            action: "node.enrol".to_owned(),
            target: Some("330106".to_owned()),
            result: "ok".to_owned(),
            detail: Some(r#"{"valid_hours":72}"#.to_owned()),
            prev_hash: GENESIS_HASH.to_owned(),
            hash: String::new(),
        }
    }

    fn new(action: &str) -> NewEntry {
        NewEntry {
            actor: "alice".to_owned(),
            actor_kind: ActorKind::User,
            address: Some("10.0.0.7".to_owned()),
            action: action.to_owned(),
            target: Some("330106/B1".to_owned()),
            result: Outcome::Ok,
            detail: Some(serde_json::json!({ "q": "张三, \"x\"" })),
        }
    }

    #[test]
    fn the_encoding_and_hash_are_pinned() {
        let entry = fixed();
        let bytes = canonical_bytes(&entry);
        assert!(bytes.starts_with(
            b"dangan.audit.v1\n\0\0\0\0\0\0\0\x01\x01\0\0\0\0\0\0\0\x142026-11-25T10:00:00Z"
        ));
        // address is NULL: a single 0x00 between actor_kind and action.
        let kind_then_null = b"\x01\0\0\0\0\0\0\0\x03cli\0\x01\0\0\0\0\0\0\0\x0anode.enrol";
        assert!(
            bytes
                .windows(kind_then_null.len())
                .any(|w| w == kind_then_null)
        );
        assert_eq!(
            bytes.len(),
            16 + 8 + 9 + 8 * 8 + 20 + 3 + 3 + 10 + 6 + 2 + 18 + 64
        );
        assert_eq!(
            entry_hash(&entry),
            "8a0316d7828aeac155914c8394677869addf7707428c91fb0fb54d66626756f9"
        );
        // NULL and empty differ.
        let mut empty = entry.clone();
        empty.address = Some(String::new());
        assert_ne!(entry_hash(&empty), entry_hash(&entry));
    }

    #[test]
    fn a_chain_of_three_verifies_and_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(dir.path()).unwrap();
        let mut conn = db.get().unwrap();
        let key = HubKey::from_bytes(&[7; 32]);
        let path = checkpoints_path(dir.path());
        assert_eq!(
            checkpoint(&conn, &key, &path).unwrap(),
            CheckpointOutcome::Empty
        );
        let a = record(&mut conn, &new("search")).unwrap();
        let b = record(&mut conn, &new("page.view")).unwrap();
        let c = record(&mut conn, &new("node.enrol")).unwrap();
        assert_eq!((a.seq, b.seq, c.seq), (1, 2, 3));
        assert_eq!(a.prev_hash, GENESIS_HASH);
        assert_eq!(b.prev_hash, a.hash);
        assert_eq!(c.prev_hash, b.hash);
        let CheckpointOutcome::Written(cp) = checkpoint(&conn, &key, &path).unwrap() else {
            panic!("no checkpoint written");
        };
        assert_eq!((cp.seq, cp.hash.as_str()), (3, c.hash.as_str()));
        assert_eq!(
            checkpoint(&conn, &key, &path).unwrap(),
            CheckpointOutcome::Unchanged(cp.clone())
        );
        assert_eq!(
            checkpoint_if_due(&conn, &key, &path, CHECKPOINT_EVERY).unwrap(),
            None
        );
        let report = verify(&conn, &verifying_key(&key), &path).unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!((report.entries, report.checkpoints), (3, 1));
        assert_eq!(report.last_checkpoint_seq, Some(3));

        // Queries and CSV.
        let all = query(&conn, &Filter::default()).unwrap();
        assert_eq!(all, vec![a.clone(), b.clone(), c.clone()]);
        let nodes = query(
            &conn,
            &Filter {
                action: Some("node.*".to_owned()),
                ..Filter::default()
            },
        )
        .unwrap();
        assert_eq!(nodes, vec![c.clone()]);
        let paged = query(
            &conn,
            &Filter {
                actor: Some("alice".to_owned()),
                limit: Some(1),
                offset: 1,
                ..Filter::default()
            },
        )
        .unwrap();
        assert_eq!(paged, vec![b.clone()]);
        let text = csv(&all).unwrap();
        let lines: Vec<&str> = text.split_terminator("\r\n").collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("seq,at,actor,actor_kind,address,action"));
        assert!(
            lines[1].contains(r#",ok,"{""q"":""张三, \""x\""""}",000"#),
            "{}",
            lines[1]
        );

        // The table refuses edits; a wrong key's checkpoints are refused.
        assert!(
            conn.execute("DELETE FROM audit_log WHERE seq = 3", [])
                .is_err()
        );
        let other = HubKey::from_bytes(&[8; 32]);
        let report = verify(&conn, &verifying_key(&other), &path).unwrap();
        assert!(!report.ok);
        assert_eq!(report.problems[0].kind, ProblemKind::BadSignature);
    }
}
