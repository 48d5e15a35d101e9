//! The exception queue of a batch: what a person must settle before the
//! batch may be accepted.
//!
//! Two kinds:
//! - **recorded** at ingest (a page with two business numbers, a business
//!   number repeated in the batch or used by another batch): each stays open
//!   until someone resolves it with a note saying what was done;
//! - **derived** from the business files as they are now: a file without a
//!   business number (pages the barcode rules could not place), a file
//!   missing metadata the batch's template requires, a file whose required
//!   documents are neither confirmed present nor recorded absent. These
//!   close by themselves once the file is fixed (assign, split, join,
//!   metadata, document checklist; see [`crate::files`]).
//!
//! Ids are stable strings: `r17` for recorded exception 17, `f3-metadata`
//! for business file 3's missing metadata (derived ids follow the file's
//! current number).
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::files::{EditError, batch_ref, batch_template, editable};
use crate::lifecycle::Actor;
use crate::store::{StoreError, now};
use crate::template::Template;

/// One exception.
#[derive(Debug, Clone, Serialize)]
pub struct Exception {
    pub id: String,
    pub code: String,
    pub reason: String,
    /// The page's position in the batch (`seq`), when it is about a page.
    pub page: Option<i64>,
    pub source: Option<String>,
    pub frame: Option<i64>,
    /// The business file's position in the batch (`seq`).
    pub business_file: Option<i64>,
    pub business_number: Option<String>,
    /// Metadata fields or documents missing (derived exceptions).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// Recorded exceptions only: how it was resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
}

/// A business file's state as the derived checks see it.
struct FileState {
    seq: i64,
    business_number: Option<String>,
    /// `business_files.missing`: bit 0 the business number, bits 1.. the
    /// metadata fields in METADATA_FIELDS order (see [`field_mask`]).
    missing: u32,
    documents: Vec<String>,
    pages: i64,
    first_page: Option<(i64, String, i64)>,
}

fn missing_metadata(template: Option<&Template>, missing: u32) -> Vec<String> {
    let required = template.map_or(0, field_mask);
    crate::template::METADATA_FIELDS
        .iter()
        .enumerate()
        .filter(|(bit, _)| missing & required & 1 << (bit + 1) != 0)
        .map(|(_, field)| (*field).to_owned())
        .collect()
}

fn missing_documents(template: Option<&Template>, checked: &[String]) -> Vec<String> {
    template
        .map(|t| {
            t.required_documents
                .iter()
                .filter(|d| !checked.contains(d))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The exceptions of a batch: open ones, and with `resolved` also the
/// recorded ones already resolved.
pub fn list(conn: &Connection, batch: &str, resolved: bool) -> Result<Vec<Exception>, EditError> {
    let target = batch_ref(conn, batch)?;
    let template = batch_template(conn, &target)?;
    let mut statement = conn.prepare_cached(
        "SELECT e.id, e.code, e.detail, p.seq, s.path, p.frame, f.seq, f.business_number,
                e.resolved_at, e.resolved_by, e.resolution
         FROM exceptions e
         LEFT JOIN pages p ON p.id = e.page_id
         LEFT JOIN sources s ON s.id = p.source_id
         LEFT JOIN business_files f ON f.id = coalesce(p.business_file_id, e.business_file_id)
         WHERE e.batch_id = ?1 AND (?2 OR e.resolved_at IS NULL) ORDER BY e.id",
    )?;
    let rows = statement.query_map(params![target.id, resolved], |row| {
        Ok(Exception {
            id: format!("r{}", row.get::<_, i64>(0)?),
            code: row.get(1)?,
            reason: row.get(2)?,
            page: row.get(3)?,
            source: row.get(4)?,
            frame: row.get(5)?,
            business_file: row.get(6)?,
            business_number: row.get(7)?,
            missing: Vec::new(),
            resolved_at: row.get(8)?,
            resolved_by: row.get(9)?,
            resolution: row.get(10)?,
        })
    })?;
    let mut exceptions: Vec<Exception> = rows.collect::<Result<_, _>>()?;
    for file in file_states(conn, target.id)? {
        let derived = |code: &str, suffix: &str, reason: String, missing: Vec<String>| Exception {
            id: format!("f{}-{suffix}", file.seq),
            code: code.to_owned(),
            reason,
            page: file.first_page.as_ref().map(|p| p.0),
            source: file.first_page.as_ref().map(|p| p.1.clone()),
            frame: file.first_page.as_ref().map(|p| p.2),
            business_file: Some(file.seq),
            business_number: file.business_number.clone(),
            missing,
            resolved_at: None,
            resolved_by: None,
            resolution: None,
        };
        if file.business_number.is_none() {
            exceptions.push(derived(
                "no_business_number",
                "number",
                format!(
                    "business file {} ({} pages) has no business number: no barcode linked it",
                    file.seq, file.pages
                ),
                Vec::new(),
            ));
        }
        let fields = missing_metadata(template.as_ref(), file.missing);
        if !fields.is_empty() {
            exceptions.push(derived(
                "missing_metadata",
                "metadata",
                format!(
                    "business file {} lacks required metadata: {}",
                    file.seq,
                    fields.join(", ")
                ),
                fields,
            ));
        }
        let documents = missing_documents(template.as_ref(), &file.documents);
        if !documents.is_empty() {
            exceptions.push(derived(
                "missing_document",
                "documents",
                format!(
                    "business file {}: required documents neither confirmed present nor recorded absent: {}",
                    file.seq,
                    documents.join("、")
                ),
                documents,
            ));
        }
    }
    Ok(exceptions)
}

fn file_states(conn: &Connection, batch_id: i64) -> Result<Vec<FileState>, EditError> {
    let mut statement = conn.prepare_cached(
        "SELECT f.seq, f.business_number, f.missing,
                (SELECT group_concat(d.document, char(31)) FROM file_documents d
                 WHERE d.business_file_id = f.id),
                (SELECT count(*) FROM pages p WHERE p.business_file_id = f.id),
                p.seq, s.path, p.frame
         FROM business_files f
         LEFT JOIN pages p ON p.id = (SELECT id FROM pages x WHERE x.business_file_id = f.id
                                      ORDER BY x.seq LIMIT 1)
         LEFT JOIN sources s ON s.id = p.source_id
         WHERE f.batch_id = ?1 ORDER BY f.seq",
    )?;
    let rows = statement.query_map([batch_id], |row| {
        let documents: Option<String> = row.get(3)?;
        let page: Option<i64> = row.get(5)?;
        Ok(FileState {
            seq: row.get(0)?,
            business_number: row.get(1)?,
            missing: row.get(2)?,
            documents: documents
                .map(|d| d.split('\u{1f}').map(str::to_owned).collect())
                .unwrap_or_default(),
            pages: row.get(4)?,
            first_page: match page {
                Some(seq) => Some((seq, row.get(6)?, row.get(7)?)),
                None => None,
            },
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How many exceptions of a batch are open. Cheaper than [`list`]: it
/// counts in SQL.
pub fn open_count(conn: &Connection, batch_id: i64) -> Result<i64, StoreError> {
    let template = crate::template::for_batch(conn, batch_id)
        .map_err(|err| match err {
            crate::template::TemplateError::Store(err) => err,
            other => StoreError::Corrupt(other.to_string()),
        })?
        .map(|v| v.template);
    let required = template.as_ref().map_or(0, field_mask);
    // Files without a business number, and files missing required metadata.
    let mut count: i64 = conn
        .prepare_cached(
            "SELECT (SELECT count(*) FROM exceptions WHERE batch_id = ?1 AND resolved_at IS NULL)
                  + count(*) FILTER (WHERE missing & 1)
                  + count(*) FILTER (WHERE missing & ?2 != 0)
             FROM business_files WHERE batch_id = ?1",
        )?
        .query_row(params![batch_id, required], |row| row.get(0))?;
    let Some(template) = template else {
        return Ok(count);
    };
    let documents = template.required_documents.len() as i64;
    if documents > 0 {
        let list = serde_json::to_string(&template.required_documents).unwrap_or_default();
        count += conn
            .prepare_cached(
                "SELECT count(*) FROM business_files f WHERE f.batch_id = ?1
                 AND (SELECT count(*) FROM file_documents d WHERE d.business_file_id = f.id
                      AND d.document IN (SELECT value FROM json_each(?2))) < ?3",
            )?
            .query_row(params![batch_id, list, documents], |row| {
                row.get::<_, i64>(0)
            })?;
    }
    Ok(count)
}

/// Bit of each template-required metadata field in [`open_counts`]' masks,
/// in [`crate::template::METADATA_FIELDS`] order (bit 0 is the business
/// number).
fn field_mask(template: &Template) -> u32 {
    crate::template::METADATA_FIELDS
        .iter()
        .enumerate()
        .filter(|(_, field)| template.required_metadata.iter().any(|r| r == *field))
        .fold(0, |mask, (bit, _)| mask | 1 << (bit + 1))
}

/// A batch's business files and open exceptions, as the batch list shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub business_files: i64,
    pub open: i64,
}

/// Business files and open exceptions of every batch, by batch id: what
/// [`open_count`] says for each, in a few set-wide queries (the batch list
/// shows them all).
pub fn open_counts(
    conn: &Connection,
) -> Result<std::collections::HashMap<i64, BatchCounts>, StoreError> {
    use std::collections::HashMap;
    let mut counts: HashMap<i64, i64> = HashMap::new();
    let mut templates: HashMap<(Option<String>, Option<u32>), Option<Template>> = HashMap::new();
    let mut batch_template: HashMap<i64, Option<Template>> = HashMap::new();
    {
        let mut statement =
            conn.prepare_cached("SELECT id, business_type, template_version FROM batches")?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, Option<u32>>(2)?,
            ))
        })?;
        for row in rows {
            let (id, kind, version) = row?;
            counts.insert(id, 0);
            let key = (kind, version);
            if !templates.contains_key(&key) {
                let found = crate::template::bound(conn, key.0.as_deref(), key.1)?;
                templates.insert(key.clone(), found);
            }
            let template = templates.get(&key).cloned().flatten();
            batch_template.insert(id, template);
        }
    }
    let mut statement = conn.prepare_cached(
        "SELECT batch_id, count(*) FROM exceptions WHERE resolved_at IS NULL GROUP BY batch_id",
    )?;
    for row in statement.query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))? {
        let (batch, open) = row?;
        *counts.entry(batch).or_default() += open;
    }
    // One row per batch and pattern of missing fields (the generated,
    // indexed column `missing`, bits as in `field_mask`).
    let mut statement = conn.prepare_cached(
        "SELECT batch_id, missing, count(*) FROM business_files GROUP BY batch_id, missing",
    )?;
    let mut files: HashMap<i64, i64> = HashMap::new();
    for row in statement.query_map([], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, u32>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })? {
        let (batch, missing, count) = row?;
        *files.entry(batch).or_default() += count;
        let required = batch_template
            .get(&batch)
            .and_then(Option::as_ref)
            .map_or(0, field_mask);
        let entry = counts.entry(batch).or_default();
        if missing & 1 != 0 {
            *entry += count;
        }
        if missing & required != 0 {
            *entry += count;
        }
    }
    // Business files whose checklist covers every required document.
    let mut statement = conn.prepare_cached(
        "SELECT f.batch_id, group_concat(d.document, char(31))
         FROM file_documents d JOIN business_files f ON f.id = d.business_file_id
         GROUP BY d.business_file_id",
    )?;
    let mut complete: HashMap<i64, i64> = HashMap::new();
    for row in statement.query_map([], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
    })? {
        let (batch, documents) = row?;
        let checked: Vec<&str> = documents.split('\u{1f}').collect();
        let covered = batch_template
            .get(&batch)
            .and_then(Option::as_ref)
            .is_some_and(|t| {
                t.required_documents
                    .iter()
                    .all(|d| checked.contains(&d.as_str()))
            });
        if covered {
            *complete.entry(batch).or_default() += 1;
        }
    }
    for (batch, template) in &batch_template {
        if template
            .as_ref()
            .is_some_and(|t| !t.required_documents.is_empty())
        {
            let missing =
                files.get(batch).copied().unwrap_or(0) - complete.get(batch).copied().unwrap_or(0);
            *counts.entry(*batch).or_default() += missing;
        }
    }
    Ok(counts
        .into_iter()
        .map(|(batch, open)| {
            let business_files = files.get(&batch).copied().unwrap_or(0);
            (
                batch,
                BatchCounts {
                    business_files,
                    open,
                },
            )
        })
        .collect())
}

/// Resolves a recorded exception (`r17`) with a note saying what was done
/// or why the page is right as it is. Derived exceptions close by fixing
/// the business file instead; asking to resolve one says how.
pub fn resolve(
    conn: &mut Connection,
    batch: &str,
    id: &str,
    note: &str,
    actor: &Actor,
) -> Result<Exception, EditError> {
    let note = note.trim();
    if note.is_empty() {
        return Err(EditError::Invalid(
            "a note is needed to resolve an exception".into(),
        ));
    }
    let tx = conn.transaction()?;
    let target = editable(&tx, batch)?;
    let Some(number) = id.strip_prefix('r').and_then(|n| n.parse::<i64>().ok()) else {
        let how = if id.ends_with("-number") {
            "give the business file its business number, or assign its pages to another file"
        } else if id.ends_with("-metadata") {
            "fill in the business file's missing metadata"
        } else if id.ends_with("-documents") {
            "confirm each required document present, or record it absent with a note"
        } else {
            "exception ids look like r17 or f3-metadata"
        };
        return Err(EditError::Invalid(format!(
            "exception {id:?} is not resolved by a note: {how}"
        )));
    };
    let found: Option<Option<String>> = tx
        .query_row(
            "SELECT resolved_at FROM exceptions WHERE id = ?1 AND batch_id = ?2",
            params![number, target.id],
            |row| row.get(0),
        )
        .optional()?;
    match found {
        None => {
            return Err(EditError::Invalid(format!(
                "batch {batch:?} has no exception {id}"
            )));
        }
        Some(Some(at)) => {
            return Err(EditError::Invalid(format!(
                "exception {id} was already resolved at {at}"
            )));
        }
        Some(None) => {}
    }
    tx.execute(
        "UPDATE exceptions SET resolved_at = ?1, resolved_by = ?2, resolution = ?3 WHERE id = ?4",
        params![now(), actor.name(), note, number],
    )?;
    tx.execute(
        "INSERT INTO edits(batch_id, action, detail, actor, at) VALUES (?1, 'resolve', ?2, ?3, ?4)",
        params![
            target.id,
            serde_json::json!({ "exception": id, "note": note }).to_string(),
            actor.name(),
            now()
        ],
    )?;
    let resolved = list(&tx, batch, true)?
        .into_iter()
        .find(|e| e.id == id)
        .ok_or_else(|| EditError::Store(StoreError::Corrupt(format!("exception {id} vanished"))))?;
    tx.commit()?;
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated `business_files.missing` column and [`field_mask`]
    /// agree on which bit is which field.
    #[test]
    fn the_missing_bits_name_the_missing_fields() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::create(dir.path(), &"330106".parse().unwrap()).unwrap();
        let conn = store.conn();
        conn.execute(
            "INSERT INTO batches(id, name, district, created_at, updated_at)
             VALUES (1, 'B', '330106', 'now', 'now')",
            [],
        )
        .unwrap();
        for (field, bit) in [
            ("business_number", 0),
            ("person_id", 1),
            ("person_name", 2),
            ("employer_id", 3),
            ("business_date", 4),
            ("organisation", 5),
        ] {
            conn.execute("DELETE FROM business_files", []).unwrap();
            conn.execute(
                "INSERT INTO business_files(batch_id, seq, business_number, opened_by, created_at,
                     person_id, person_name, employer_id, business_date, organisation)
                 VALUES (1, 1, 'N', 'start', 'now', 'p', 'n', 'e', 'd', 'o')",
                [],
            )
            .unwrap();
            conn.execute(&format!("UPDATE business_files SET {field} = NULL"), [])
                .unwrap();
            let missing: u32 = conn
                .query_row("SELECT missing FROM business_files", [], |row| row.get(0))
                .unwrap();
            assert_eq!(missing, 1 << bit, "{field}");
        }
        let mut template = crate::template::parse(crate::template::SEED)
            .unwrap()
            .into_iter()
            .find(|t| t.business_type == "C01")
            .unwrap();
        template.required_metadata = vec!["employer_id".into(), "organisation".into()];
        assert_eq!(field_mask(&template), 1 << 3 | 1 << 5);
        assert_eq!(
            missing_metadata(Some(&template), 1 << 5 | 1 << 2 | 1),
            ["organisation"]
        );
    }
}
