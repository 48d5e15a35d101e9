//! Edits operators make to a batch's business files: the grouping (assign
//! pages, split, join, reorder, mark a separator), the metadata (著录) and
//! the document checklist (材料清单).
//!
//! Every edit runs in one transaction, is refused once the batch is
//! accepted, and is recorded in `edits` with who, when and what. Grouping
//! edits rewrite the batch's numbering so that it stays what the sync
//! manifest requires: business files numbered 1..n in order, none empty,
//! and pages numbered 1..N through the files in order. A page keeps its
//! identity (QC verdicts, history) through renumbering; a business file
//! emptied by an edit is removed and its metadata history moves to the file
//! that took its pages.
use std::collections::HashMap;

use dangan_shared::PersonId;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::index::FIELDS;
use crate::lifecycle::{Actor, BatchState};
use crate::store::{StoreError, now};

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("no batch named {0:?}")]
    NoSuchBatch(String),
    #[error("batch {batch:?} has no business file {file}")]
    NoSuchFile { batch: String, file: i64 },
    #[error("batch {batch:?} has no page {page}")]
    NoSuchPage { batch: String, page: i64 },
    #[error(
        "batch {batch:?} is {state}; its business files cannot be edited now (grouping changes \
         wait until QC ends; nothing changes once accepted)"
    )]
    Closed { batch: String, state: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for EditError {
    fn from(err: rusqlite::Error) -> Self {
        EditError::Store(err.into())
    }
}

/// A batch as edits and the exception queue need it.
pub(crate) struct BatchRef {
    pub id: i64,
    pub name: String,
    pub state: String,
    pub business_type: Option<String>,
    pub template_version: Option<u32>,
}

/// Looks a batch up by name.
pub(crate) fn batch_ref(conn: &Connection, batch: &str) -> Result<BatchRef, EditError> {
    conn.query_row(
        "SELECT id, state, business_type, template_version FROM batches WHERE name = ?1",
        [batch],
        |row| {
            Ok(BatchRef {
                id: row.get(0)?,
                name: batch.to_owned(),
                state: row.get(1)?,
                business_type: row.get(2)?,
                template_version: row.get(3)?,
            })
        },
    )
    .optional()?
    .ok_or_else(|| EditError::NoSuchBatch(batch.to_owned()))
}

/// The batch an edit applies to, checked to be still editable.
pub(crate) fn editable(conn: &Connection, batch: &str) -> Result<BatchRef, EditError> {
    let target = batch_ref(conn, batch)?;
    let closed = target
        .state
        .parse::<BatchState>()
        .map(|s| {
            matches!(
                s,
                BatchState::Accepted | BatchState::Syncing | BatchState::Archived
            )
        })
        .unwrap_or(true);
    if closed {
        return Err(EditError::Closed {
            batch: batch.to_owned(),
            state: target.state,
        });
    }
    Ok(target)
}

/// Records an edit in `edits`.
fn record(
    conn: &Connection,
    batch: &BatchRef,
    action: &str,
    detail: serde_json::Value,
    actor: &Actor,
) -> Result<(), EditError> {
    conn.execute(
        "INSERT INTO edits(batch_id, action, detail, actor, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![batch.id, action, detail.to_string(), actor.name(), now()],
    )?;
    conn.execute(
        "UPDATE batches SET updated_at = ?1 WHERE id = ?2",
        params![now(), batch.id],
    )?;
    Ok(())
}

/// A business file in a layout: its row id (`None` for one an edit
/// creates) and its page ids in order.
#[derive(Debug, Clone)]
struct Slot {
    id: Option<i64>,
    pages: Vec<i64>,
}

/// The grouping of a batch: business files in order, each with its pages.
#[derive(Debug)]
struct Layout {
    files: Vec<Slot>,
    /// Page seq → page id, as numbered before the edit.
    page_ids: HashMap<i64, i64>,
    /// Business file seq → index in `files`, as numbered before the edit.
    file_index: HashMap<i64, usize>,
}

impl Layout {
    fn load(conn: &Connection, batch_id: i64) -> Result<Self, EditError> {
        let mut files = Vec::new();
        let mut file_index = HashMap::new();
        let mut by_id = HashMap::new();
        let mut statement =
            conn.prepare("SELECT id, seq FROM business_files WHERE batch_id = ?1 ORDER BY seq")?;
        let rows = statement.query_map([batch_id], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (id, seq) = row?;
            file_index.insert(seq, files.len());
            by_id.insert(id, files.len());
            files.push(Slot {
                id: Some(id),
                pages: Vec::new(),
            });
        }
        let mut page_ids = HashMap::new();
        let mut statement = conn.prepare(
            "SELECT id, seq, business_file_id FROM pages WHERE batch_id = ?1 ORDER BY seq",
        )?;
        let rows = statement.query_map([batch_id], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (id, seq, file) = row?;
            page_ids.insert(seq, id);
            if let Some(&index) = by_id.get(&file) {
                files[index].pages.push(id);
            }
        }
        Ok(Self {
            files,
            page_ids,
            file_index,
        })
    }

    fn file(&self, batch: &str, seq: i64) -> Result<usize, EditError> {
        self.file_index
            .get(&seq)
            .copied()
            .ok_or_else(|| EditError::NoSuchFile {
                batch: batch.to_owned(),
                file: seq,
            })
    }

    fn page(&self, batch: &str, seq: i64) -> Result<i64, EditError> {
        self.page_ids
            .get(&seq)
            .copied()
            .ok_or_else(|| EditError::NoSuchPage {
                batch: batch.to_owned(),
                page: seq,
            })
    }

    /// Takes `page` out of whichever file holds it.
    fn remove_page(&mut self, page: i64) {
        for file in &mut self.files {
            file.pages.retain(|&p| p != page);
        }
    }

    /// Writes the layout back: new files inserted, empty files removed
    /// (their history moved to `heir`), everything renumbered.
    fn save(self, conn: &Connection, batch_id: i64, heir: Option<i64>) -> Result<(), EditError> {
        let now = now();
        // Out of the way of the UNIQUE (batch_id, seq) constraints first.
        conn.execute(
            "UPDATE pages SET seq = -seq WHERE batch_id = ?1",
            [batch_id],
        )?;
        conn.execute(
            "UPDATE business_files SET seq = -seq WHERE batch_id = ?1",
            [batch_id],
        )?;
        let mut emptied = Vec::new();
        let mut file_seq = 0i64;
        let mut page_seq = 0i64;
        for slot in self.files {
            if slot.pages.is_empty() {
                emptied.extend(slot.id);
                continue;
            }
            file_seq += 1;
            let id = match slot.id {
                Some(id) => {
                    conn.execute(
                        "UPDATE business_files SET seq = ?1 WHERE id = ?2",
                        params![file_seq, id],
                    )?;
                    id
                }
                None => {
                    conn.execute(
                        "INSERT INTO business_files(batch_id, seq, business_number, opened_by, created_at)
                         VALUES (?1, ?2, NULL, 'manual', ?3)",
                        params![batch_id, file_seq, now],
                    )?;
                    conn.last_insert_rowid()
                }
            };
            let mut update = conn
                .prepare_cached("UPDATE pages SET seq = ?1, business_file_id = ?2 WHERE id = ?3")?;
            for page in slot.pages {
                page_seq += 1;
                update.execute(params![page_seq, id, page])?;
            }
        }
        for id in emptied {
            // Only assign and join empty a file, and both name the file
            // that took its pages.
            let heir = heir.ok_or_else(|| {
                EditError::Store(StoreError::Corrupt(format!(
                    "business file #{id} emptied without a file taking its pages"
                )))
            })?;
            for table in ["metadata_changes", "exceptions"] {
                // Fixed table names, never input.
                conn.execute(
                    &format!(
                        "UPDATE {table} SET business_file_id = ?1 WHERE business_file_id = ?2"
                    ),
                    params![heir, id],
                )?;
            }
            conn.execute(
                "DELETE FROM file_documents WHERE business_file_id = ?1",
                [id],
            )?;
            conn.execute("DELETE FROM business_files WHERE id = ?1", [id])?;
        }
        Ok(())
    }
}

/// What a grouping edit left: the batch's business files with their pages,
/// as numbered now.
#[derive(Debug, Clone, Serialize)]
pub struct Grouping {
    pub batch: String,
    pub business_files: Vec<GroupedFile>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupedFile {
    pub seq: i64,
    pub business_number: Option<String>,
    pub pages: Vec<i64>,
    /// Pages marked as separator sheets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub separators: Vec<i64>,
}

/// The batch's grouping as numbered now.
pub fn grouping(conn: &Connection, batch: &str) -> Result<Grouping, EditError> {
    let batch_id = batch_ref(conn, batch)?.id;
    let mut files: Vec<GroupedFile> = Vec::new();
    let mut index = HashMap::new();
    let mut statement = conn.prepare(
        "SELECT id, seq, business_number FROM business_files WHERE batch_id = ?1 ORDER BY seq",
    )?;
    let rows = statement.query_map([batch_id], |row| {
        Ok((row.get::<_, i64>(0)?, row.get(1)?, row.get(2)?))
    })?;
    for row in rows {
        let (id, seq, business_number) = row?;
        index.insert(id, files.len());
        files.push(GroupedFile {
            seq,
            business_number,
            pages: Vec::new(),
            separators: Vec::new(),
        });
    }
    let mut statement = conn.prepare(
        "SELECT business_file_id, seq, separator FROM pages WHERE batch_id = ?1 ORDER BY seq",
    )?;
    let rows = statement.query_map([batch_id], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, bool>(2)?,
        ))
    })?;
    for row in rows {
        let (file, seq, separator) = row?;
        if let Some(&i) = index.get(&file) {
            files[i].pages.push(seq);
            if separator {
                files[i].separators.push(seq);
            }
        }
    }
    Ok(Grouping {
        batch: batch.to_owned(),
        business_files: files,
    })
}

/// One grouping edit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum GroupingEdit {
    /// Moves pages (by seq) to the end of another business file, in their
    /// current order.
    Assign { pages: Vec<i64>, to_file: i64 },
    /// Starts a new business file at `at_page`: it and the pages after it
    /// in its file move to a new file right after.
    Split { file: i64, at_page: i64 },
    /// Appends the pages of `file` to `into_file` and removes `file`.
    Join { file: i64, into_file: i64 },
    /// Puts a business file's pages in the given order (all of them, by seq).
    Reorder { file: i64, pages: Vec<i64> },
    /// Marks a page as a separator sheet (the pages after it in its file
    /// start a new business file), or unmarks it.
    Separator { page: i64, separator: bool },
}

impl GroupingEdit {
    fn name(&self) -> &'static str {
        match self {
            GroupingEdit::Assign { .. } => "assign",
            GroupingEdit::Split { .. } => "split",
            GroupingEdit::Join { .. } => "join",
            GroupingEdit::Reorder { .. } => "reorder",
            GroupingEdit::Separator { .. } => "separator",
        }
    }
}

/// Applies a grouping edit in its own transaction.
pub fn regroup(
    conn: &mut Connection,
    batch: &str,
    edit: &GroupingEdit,
    actor: &Actor,
) -> Result<Grouping, EditError> {
    let tx = conn.transaction()?;
    let target = editable(&tx, batch)?;
    // A QC round's sample names pages by number; renumbering under the
    // inspector would change what they look at.
    if target.state == BatchState::InQc.as_str() {
        return Err(EditError::Closed {
            batch: batch.to_owned(),
            state: target.state,
        });
    }
    let mut layout = Layout::load(&tx, target.id)?;
    let mut heir = None;
    match edit {
        GroupingEdit::Assign { pages, to_file } => {
            if pages.is_empty() {
                return Err(EditError::Invalid("no pages to assign".into()));
            }
            let to = layout.file(batch, *to_file)?;
            let mut ids = pages
                .iter()
                .map(|&seq| Ok((seq, layout.page(batch, seq)?)))
                .collect::<Result<Vec<_>, EditError>>()?;
            ids.sort_unstable();
            ids.dedup();
            for &(_, id) in &ids {
                layout.remove_page(id);
            }
            layout.files[to].pages.extend(ids.iter().map(|&(_, id)| id));
            heir = layout.files[to].id;
        }
        GroupingEdit::Split { file, at_page } => {
            let index = layout.file(batch, *file)?;
            let page = layout.page(batch, *at_page)?;
            let position = layout.files[index]
                .pages
                .iter()
                .position(|&p| p == page)
                .ok_or_else(|| {
                    EditError::Invalid(format!("page {at_page} is not in business file {file}"))
                })?;
            if position == 0 {
                return Err(EditError::Invalid(format!(
                    "page {at_page} already opens business file {file}"
                )));
            }
            let rest = layout.files[index].pages.split_off(position);
            layout.files.insert(
                index + 1,
                Slot {
                    id: None,
                    pages: rest,
                },
            );
        }
        GroupingEdit::Join { file, into_file } => {
            if file == into_file {
                return Err(EditError::Invalid(
                    "a business file cannot be joined to itself".into(),
                ));
            }
            let from = layout.file(batch, *file)?;
            let into = layout.file(batch, *into_file)?;
            let numbers: (Option<String>, Option<String>) = tx.query_row(
                "SELECT (SELECT business_number FROM business_files WHERE id = ?1),
                        (SELECT business_number FROM business_files WHERE id = ?2)",
                params![layout.files[from].id, layout.files[into].id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            match numbers {
                (Some(a), Some(b)) if a != b => {
                    return Err(EditError::Invalid(format!(
                        "business file {file} ({a}) and business file {into_file} ({b}) have different business numbers; move single pages with assign instead"
                    )));
                }
                (Some(number), None) => {
                    tx.execute(
                        "UPDATE business_files SET business_number = ?1 WHERE id = ?2",
                        params![number, layout.files[into].id],
                    )?;
                }
                _ => {}
            }
            let pages = std::mem::take(&mut layout.files[from].pages);
            layout.files[into].pages.extend(pages);
            heir = layout.files[into].id;
        }
        GroupingEdit::Reorder { file, pages } => {
            let index = layout.file(batch, *file)?;
            let ids = pages
                .iter()
                .map(|&seq| layout.page(batch, seq))
                .collect::<Result<Vec<_>, _>>()?;
            let mut given = ids.clone();
            given.sort_unstable();
            let mut current = layout.files[index].pages.clone();
            current.sort_unstable();
            if given != current {
                return Err(EditError::Invalid(format!(
                    "the new order must name every page of business file {file} once"
                )));
            }
            layout.files[index].pages = ids;
        }
        GroupingEdit::Separator { page, separator } => {
            let id = layout.page(batch, *page)?;
            tx.execute(
                "UPDATE pages SET separator = ?1 WHERE id = ?2",
                params![separator, id],
            )?;
            if *separator {
                let index = layout
                    .files
                    .iter()
                    .position(|f| f.pages.contains(&id))
                    .ok_or_else(|| {
                        EditError::Store(StoreError::Corrupt("page without file".into()))
                    })?;
                let position = layout.files[index]
                    .pages
                    .iter()
                    .position(|&p| p == id)
                    .unwrap_or_default();
                if position + 1 < layout.files[index].pages.len() {
                    let rest = layout.files[index].pages.split_off(position + 1);
                    layout.files.insert(
                        index + 1,
                        Slot {
                            id: None,
                            pages: rest,
                        },
                    );
                }
            }
        }
    }
    layout.save(&tx, target.id, heir)?;
    record(
        &tx,
        &target,
        edit.name(),
        serde_json::to_value(edit).unwrap_or_default(),
        actor,
    )?;
    let result = grouping(&tx, batch)?;
    tx.commit()?;
    Ok(result)
}

/// A change to a business file's metadata: fields given are set (an empty
/// string clears one), fields left out are kept.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation: Option<String>,
}

impl MetadataPatch {
    fn values(&self) -> [&Option<String>; 6] {
        [
            &self.person_id,
            &self.person_name,
            &self.employer_id,
            &self.business_type,
            &self.business_date,
            &self.organisation,
        ]
    }
}

/// A business file's metadata as it stands.
#[derive(Debug, Clone, Serialize)]
pub struct FileMetadata {
    pub batch: String,
    pub seq: i64,
    pub business_number: Option<String>,
    pub person_id: Option<String>,
    pub person_name: Option<String>,
    pub employer_id: Option<String>,
    pub business_type: Option<String>,
    pub business_date: Option<String>,
    pub organisation: Option<String>,
    /// Where the metadata last came from: barcode, import or manual.
    pub metadata_source: Option<String>,
    pub metadata_by: Option<String>,
    pub metadata_at: Option<String>,
    /// The retention period of the file's template: "permanent" or "30y".
    pub retention: Option<String>,
    /// The first day the file may be appraised for disposal: 1 January of
    /// the year after its business date plus the period (none when
    /// permanent or when the date is not known yet).
    pub retention_until: Option<String>,
    pub documents: Vec<DocumentEntry>,
}

/// Reads a business file's metadata and document checklist.
pub fn metadata(conn: &Connection, batch: &str, file: i64) -> Result<FileMetadata, EditError> {
    let found = conn
        .query_row(
            "SELECT f.id, f.business_number, f.person_id, f.person_name, f.employer_id,
                    f.business_type, f.business_date, f.organisation, f.metadata_source,
                    f.metadata_by, f.metadata_at
             FROM business_files f JOIN batches b ON b.id = f.batch_id
             WHERE b.name = ?1 AND f.seq = ?2",
            params![batch, file],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    FileMetadata {
                        batch: batch.to_owned(),
                        seq: file,
                        business_number: row.get(1)?,
                        person_id: row.get(2)?,
                        person_name: row.get(3)?,
                        employer_id: row.get(4)?,
                        business_type: row.get(5)?,
                        business_date: row.get(6)?,
                        organisation: row.get(7)?,
                        metadata_source: row.get(8)?,
                        metadata_by: row.get(9)?,
                        metadata_at: row.get(10)?,
                        retention: None,
                        retention_until: None,
                        documents: Vec::new(),
                    },
                ))
            },
        )
        .optional()?;
    let Some((id, mut meta)) = found else {
        batch_ref(conn, batch)?;
        return Err(EditError::NoSuchFile {
            batch: batch.to_owned(),
            file,
        });
    };
    let template = match &meta.business_type {
        Some(kind) => crate::template::current(conn, kind)
            .map_err(|err| EditError::Store(StoreError::Corrupt(err.to_string())))?
            .map(|v| v.template),
        None => batch_template(conn, &batch_ref(conn, batch)?)?,
    };
    if let Some(template) = template {
        meta.retention = Some(match template.retention {
            dangan_shared::Retention::Permanent => "permanent".to_owned(),
            dangan_shared::Retention::Years(years) => format!("{years}y"),
        });
        meta.retention_until = meta
            .business_date
            .as_deref()
            .and_then(|d| d.parse::<jiff::civil::Date>().ok())
            .and_then(|d| template.retention.expires(d))
            .map(|d| d.to_string());
    }
    let mut statement = conn.prepare(
        "SELECT document, present, note, actor, at FROM file_documents
         WHERE business_file_id = ?1 ORDER BY document",
    )?;
    meta.documents = statement
        .query_map([id], |row| {
            Ok(DocumentEntry {
                document: row.get(0)?,
                present: row.get(1)?,
                note: row.get(2)?,
                actor: row.get(3)?,
                at: row.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(meta)
}

fn file_id(conn: &Connection, batch: &BatchRef, file: i64) -> Result<i64, EditError> {
    conn.query_row(
        "SELECT id FROM business_files WHERE batch_id = ?1 AND seq = ?2",
        params![batch.id, file],
        |row| row.get(0),
    )
    .optional()?
    .ok_or_else(|| EditError::NoSuchFile {
        batch: batch.name.clone(),
        file,
    })
}

/// Checks and normalises a metadata value: person ids must pass the
/// checksum, dates must be dates, business types must have a template.
fn normalise(conn: &Connection, field: &str, value: &str) -> Result<String, EditError> {
    let value = value.trim();
    match field {
        "person_id" => value
            .parse::<PersonId>()
            .map(|id| id.to_string())
            .map_err(|err| EditError::Invalid(format!("person id {value}: {err}"))),
        "business_date" => crate::index::parse_date(value).ok_or_else(|| {
            EditError::Invalid(format!(
                "business date {value:?} is not a date (YYYY-MM-DD)"
            ))
        }),
        "business_type" => {
            let known = crate::template::current(conn, value)
                .map_err(|err| EditError::Invalid(err.to_string()))?
                .is_some();
            if known {
                Ok(value.to_owned())
            } else {
                Err(EditError::Invalid(format!(
                    "business type {value:?} has no template"
                )))
            }
        }
        _ => Ok(value.to_owned()),
    }
}

/// Enters or corrects a business file's metadata (著录 by hand). Each
/// changed field is recorded in `metadata_changes` with source `manual`.
/// A new business number must not be used by another business file of the
/// batch (join them instead); once set, a stored export row for it fills
/// the fields still empty.
pub fn set_metadata(
    conn: &mut Connection,
    batch: &str,
    file: i64,
    patch: &MetadataPatch,
    actor: &Actor,
) -> Result<FileMetadata, EditError> {
    let tx = conn.transaction()?;
    let target = editable(&tx, batch)?;
    let id = file_id(&tx, &target, file)?;
    let now = now();
    let mut changed = Vec::new();
    let mut set =
        |field: &str, old: Option<String>, new: Option<String>| -> Result<(), EditError> {
            if old == new {
                return Ok(());
            }
            // FIELDS and business_number are fixed column names, never input.
            tx.execute(
                &format!("UPDATE business_files SET {field} = ?1 WHERE id = ?2"),
                params![new, id],
            )?;
            tx.execute(
            "INSERT INTO metadata_changes(business_file_id, field, old_value, new_value, source,
                 actor, at)
             VALUES (?1, ?2, ?3, ?4, 'manual', ?5, ?6)",
            params![id, field, old, new, actor.name(), now],
        )?;
            changed.push(field.to_owned());
            Ok(())
        };
    let current: [Option<String>; 7] = tx.query_row(
        "SELECT business_number, person_id, person_name, employer_id, business_type,
                business_date, organisation
         FROM business_files WHERE id = ?1",
        [id],
        |row| {
            Ok([
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
            ])
        },
    )?;
    let mut new_number = None;
    if let Some(number) = &patch.business_number {
        let number = number.trim();
        let number = (!number.is_empty()).then(|| number.to_owned());
        if let Some(number) = &number {
            let other: Option<i64> = tx
                .query_row(
                    "SELECT seq FROM business_files WHERE batch_id = ?1 AND business_number = ?2 AND id != ?3",
                    params![target.id, number, id],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(other) = other {
                return Err(EditError::Invalid(format!(
                    "business number {number} is already business file {other}'s in this batch; join the two files instead"
                )));
            }
        }
        if number != current[0] {
            new_number.clone_from(&number);
        }
        set("business_number", current[0].clone(), number)?;
    }
    for ((field, value), old) in FIELDS.iter().zip(patch.values()).zip(&current[1..]) {
        let Some(value) = value else { continue };
        let new = if value.trim().is_empty() {
            None
        } else {
            Some(normalise(&tx, field, value)?)
        };
        set(field, old.clone(), new)?;
    }
    if !changed.is_empty() {
        tx.execute(
            "UPDATE business_files SET metadata_source = 'manual', metadata_by = ?1, metadata_at = ?2
             WHERE id = ?3",
            params![actor.name(), now, id],
        )?;
    }
    if let Some(number) = new_number {
        crate::index::fill_from_record(&tx, id, &number, &now)?;
    }
    if !changed.is_empty() {
        record(
            &tx,
            &target,
            "metadata",
            serde_json::json!({ "file": file, "fields": changed }),
            actor,
        )?;
    }
    let result = metadata(&tx, batch, file)?;
    tx.commit()?;
    Ok(result)
}

/// One line of a business file's document checklist.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocumentEntry {
    pub document: String,
    /// Confirmed present (true) or recorded absent (false, with a note).
    pub present: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default)]
    pub actor: String,
    #[serde(default)]
    pub at: String,
}

/// What an operator states about one document of a business file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentCheck {
    pub document: String,
    pub present: bool,
    #[serde(default)]
    pub note: Option<String>,
}

/// Records documents of a business file as present, or as absent with a
/// note (缺件说明). Documents must be ones the batch's template lists.
pub fn check_documents(
    conn: &mut Connection,
    batch: &str,
    file: i64,
    checks: &[DocumentCheck],
    actor: &Actor,
) -> Result<FileMetadata, EditError> {
    let tx = conn.transaction()?;
    let target = editable(&tx, batch)?;
    let id = file_id(&tx, &target, file)?;
    let required = batch_template(&tx, &target)?
        .map(|t| t.required_documents)
        .unwrap_or_default();
    if checks.is_empty() {
        return Err(EditError::Invalid("no documents given".into()));
    }
    let now = now();
    for check in checks {
        if !required.contains(&check.document) {
            return Err(EditError::Invalid(format!(
                "{:?} is not a document the batch's template lists ({})",
                check.document,
                if required.is_empty() {
                    "it lists none".to_owned()
                } else {
                    required.join(", ")
                }
            )));
        }
        let note = check
            .note
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty());
        if !check.present && note.is_none() {
            return Err(EditError::Invalid(format!(
                "a note is needed to record {:?} as absent",
                check.document
            )));
        }
        tx.execute(
            "INSERT INTO file_documents(business_file_id, document, present, note, actor, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (business_file_id, document)
             DO UPDATE SET present = excluded.present, note = excluded.note,
                           actor = excluded.actor, at = excluded.at",
            params![id, check.document, check.present, note, actor.name(), now],
        )?;
    }
    record(
        &tx,
        &target,
        "documents",
        serde_json::json!({ "file": file, "documents": checks }),
        actor,
    )?;
    let result = metadata(&tx, batch, file)?;
    tx.commit()?;
    Ok(result)
}

/// The template version a batch is bound to, if any.
pub(crate) fn batch_template(
    conn: &Connection,
    batch: &BatchRef,
) -> Result<Option<crate::template::Template>, EditError> {
    Ok(crate::template::bound(
        conn,
        batch.business_type.as_deref(),
        batch.template_version,
    )?)
}

/// One recorded edit.
#[derive(Debug, Clone, Serialize)]
pub struct Edit {
    pub action: String,
    pub detail: serde_json::Value,
    pub actor: String,
    pub at: String,
}

/// A batch's edits, oldest first.
pub fn edits(conn: &Connection, batch: &str) -> Result<Vec<Edit>, EditError> {
    let mut statement = conn.prepare(
        "SELECT e.action, e.detail, e.actor, e.at FROM edits e JOIN batches b ON b.id = e.batch_id
         WHERE b.name = ?1 ORDER BY e.id",
    )?;
    let rows = statement.query_map([batch], |row| {
        let detail: String = row.get(1)?;
        Ok(Edit {
            action: row.get(0)?,
            detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
            actor: row.get(2)?,
            at: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
