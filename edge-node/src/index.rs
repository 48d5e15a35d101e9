//! Indexing (著录) from the business system: `dangan-edge index import FILE`.
//!
//! The file is an export keyed by business number (业务流水号), CSV with a
//! header row or a JSON array of objects. Each row is checked (a person id
//! must pass its checksum, a date must be a date, a business type must have
//! a template) and then:
//! - kept in `index_records`, so a business file scanned later gets it too;
//! - applied to every business file with that number in a batch not yet
//!   accepted: empty fields are filled, fields that came from an earlier
//!   import are updated, and a field someone entered or a barcode gave
//!   that differs is left alone and reported as a conflict.
//!
//! A business number that appears twice in one file is applied neither
//! time (which row is right is for a person to say). The whole import is
//! one transaction.
use std::collections::HashMap;
use std::path::Path;

use dangan_shared::PersonId;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::store::{StoreError, now};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for IndexError {
    fn from(err: rusqlite::Error) -> Self {
        IndexError::Store(err.into())
    }
}

/// The metadata fields of a business file, in their column order.
pub const FIELDS: [&str; 6] = [
    "person_id",
    "person_name",
    "employer_id",
    "business_type",
    "business_date",
    "organisation",
];

/// Header names accepted for each column (English or the business
/// system's Chinese).
const ALIASES: [(&str, &[&str]); 7] = [
    (
        "business_number",
        &["business_number", "业务流水号", "流水号"],
    ),
    (
        "person_id",
        &[
            "person_id",
            "社会保障号码",
            "身份证号",
            "公民身份号码",
            "证件号码",
        ],
    ),
    ("person_name", &["person_name", "name", "姓名"]),
    ("employer_id", &["employer_id", "单位编号", "单位编码"]),
    (
        "business_type",
        &["business_type", "业务类型", "业务类型代码"],
    ),
    (
        "business_date",
        &["business_date", "date", "业务日期", "办理日期"],
    ),
    (
        "organisation",
        &["organisation", "organization", "经办机构"],
    ),
];

/// One row as read, before checks. `line` is the row's number in the file
/// (CSV: its line, the header being line 1; JSON: 1-based element index).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct RawRow {
    #[serde(skip)]
    line: usize,
    business_number: Option<String>,
    person_id: Option<String>,
    person_name: Option<String>,
    employer_id: Option<String>,
    business_type: Option<String>,
    business_date: Option<String>,
    organisation: Option<String>,
}

/// A checked row: the business number and the non-empty fields.
#[derive(Debug, Clone)]
struct Row {
    line: usize,
    business_number: String,
    values: [Option<String>; 6],
}

#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    pub row: usize,
    pub business_number: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Conflict {
    pub row: usize,
    pub business_number: String,
    pub batch: String,
    pub field: String,
    /// What the business file has (kept).
    pub existing: String,
    /// What the row says (not applied).
    pub imported: String,
    /// Where the existing value came from: barcode or manual.
    pub existing_source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Duplicate {
    pub business_number: String,
    pub rows: Vec<usize>,
}

/// What an import did.
#[derive(Debug, Default, Serialize)]
pub struct ImportReport {
    pub rows: usize,
    /// Rows applied to at least one business file.
    pub matched: usize,
    /// Business files that got at least one field.
    pub business_files_updated: usize,
    /// Rows with no business file yet (kept for when it is scanned).
    pub unmatched: usize,
    /// Rows whose business files are accepted or archived already (kept,
    /// not applied: accepted metadata is not rewritten).
    pub closed: usize,
    pub conflicts: Vec<Conflict>,
    pub duplicates: Vec<Duplicate>,
    pub rejected: Vec<Rejected>,
}

/// Reads, checks and applies an export file. `known_types` are the
/// business types that have a template.
pub fn import_file(
    conn: &mut Connection,
    path: &Path,
    known_types: &[String],
    actor: &str,
) -> Result<ImportReport, IndexError> {
    let text = std::fs::read_to_string(path).map_err(|source| IndexError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let is_json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    import_text(
        conn,
        &text,
        &path.display().to_string(),
        is_json,
        known_types,
        actor,
    )
}

/// Like [`import_file`], for an export already read (the API's upload).
/// `name` is what the import is recorded as coming from; a text starting
/// with `[` is read as JSON whatever `json` says.
pub fn import_text(
    conn: &mut Connection,
    text: &str,
    name: &str,
    json: bool,
    known_types: &[String],
    actor: &str,
) -> Result<ImportReport, IndexError> {
    let raw = if json || text.trim_start().starts_with('[') {
        read_json(text)
    } else {
        read_csv(text)
    }
    .map_err(|message| IndexError::Format {
        path: name.to_owned(),
        message,
    })?;
    let source = format!("import:{name}");
    apply(conn, raw, known_types, &source, actor)
}

fn read_json(text: &str) -> Result<Vec<RawRow>, String> {
    let values: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|err| format!("not a JSON array of rows: {err}"))?;
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            let mut row: RawRow = match value {
                serde_json::Value::Object(map) => {
                    let mut renamed = serde_json::Map::new();
                    for (key, value) in map {
                        let key = canonical(&key).map_or(key, str::to_owned);
                        let value = match value {
                            serde_json::Value::Number(n) => {
                                serde_json::Value::String(n.to_string())
                            }
                            other => other,
                        };
                        renamed.insert(key, value);
                    }
                    serde_json::from_value(serde_json::Value::Object(renamed)).unwrap_or_default()
                }
                _ => RawRow::default(),
            };
            row.line = index + 1;
            row
        })
        .collect())
}

fn canonical(header: &str) -> Option<&'static str> {
    let header = header.trim().trim_start_matches('\u{feff}');
    ALIASES
        .iter()
        .find(|(_, names)| names.iter().any(|n| n.eq_ignore_ascii_case(header)))
        .map(|(name, _)| *name)
}

fn read_csv(text: &str) -> Result<Vec<RawRow>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|err| format!("no header row: {err}"))?
        .clone();
    let columns: Vec<Option<&'static str>> = headers.iter().map(canonical).collect();
    if !columns.contains(&Some("business_number")) {
        return Err(format!(
            "the header has no business number column (业务流水号 / business_number): {}",
            headers.iter().collect::<Vec<_>>().join(",")
        ));
    }
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let line = index + 2;
        let mut row = RawRow {
            line,
            ..RawRow::default()
        };
        match record {
            Ok(record) => {
                for (column, value) in columns.iter().zip(record.iter()) {
                    let value = Some(value.to_owned());
                    match column {
                        Some("business_number") => row.business_number = value,
                        Some("person_id") => row.person_id = value,
                        Some("person_name") => row.person_name = value,
                        Some("employer_id") => row.employer_id = value,
                        Some("business_type") => row.business_type = value,
                        Some("business_date") => row.business_date = value,
                        Some("organisation") => row.organisation = value,
                        _ => {}
                    }
                }
            }
            Err(_) => {
                // Left empty: reported as malformed below.
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// `YYYY-MM-DD`, `YYYY/MM/DD`, `YYYY.MM.DD` or `YYYYMMDD` → `YYYY-MM-DD`.
pub(crate) fn parse_date(text: &str) -> Option<String> {
    let digits: String = text.chars().filter(|c| c.is_ascii_digit()).collect();
    let separated = text.contains(['-', '/', '.']);
    let (y, m, d) = if separated {
        let parts: Vec<&str> = text.split(['-', '/', '.']).collect();
        let [y, m, d] = parts.as_slice() else {
            return None;
        };
        (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
    } else if digits.len() == 8 && digits.len() == text.len() {
        (
            digits[..4].parse().ok()?,
            digits[4..6].parse().ok()?,
            digits[6..].parse().ok()?,
        )
    } else {
        return None;
    };
    let date = jiff::civil::Date::new(y, m, d).ok()?;
    (1900..=2200)
        .contains(&date.year())
        .then(|| date.to_string())
}

fn check(raw: RawRow, known_types: &[String]) -> Result<Row, Rejected> {
    let reject = |number: Option<String>, reason: String| Rejected {
        row: raw.line,
        business_number: number,
        reason,
    };
    let clean = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let Some(number) = clean(&raw.business_number) else {
        return Err(reject(None, "no business number".into()));
    };
    let person_id = match clean(&raw.person_id) {
        Some(text) => match text.parse::<PersonId>() {
            Ok(id) => Some(id.to_string()),
            Err(err) => {
                return Err(reject(Some(number), format!("person id {text}: {err}")));
            }
        },
        None => None,
    };
    let business_date = match clean(&raw.business_date) {
        Some(text) => match parse_date(&text) {
            Some(date) => Some(date),
            None => {
                return Err(reject(
                    Some(number),
                    format!("business date {text:?} is not a date (YYYY-MM-DD)"),
                ));
            }
        },
        None => None,
    };
    let business_type = clean(&raw.business_type);
    if let Some(kind) = &business_type
        && !known_types.contains(kind)
    {
        return Err(reject(
            Some(number),
            format!("business type {kind:?} has no template"),
        ));
    }
    Ok(Row {
        line: raw.line,
        business_number: number,
        values: [
            person_id,
            clean(&raw.person_name),
            clean(&raw.employer_id),
            business_type,
            business_date,
            clean(&raw.organisation),
        ],
    })
}

fn apply(
    conn: &mut Connection,
    raw: Vec<RawRow>,
    known_types: &[String],
    source: &str,
    actor: &str,
) -> Result<ImportReport, IndexError> {
    let mut report = ImportReport {
        rows: raw.len(),
        ..ImportReport::default()
    };
    let mut rows = Vec::with_capacity(raw.len());
    for row in raw {
        match check(row, known_types) {
            Ok(row) => rows.push(row),
            Err(rejected) => report.rejected.push(rejected),
        }
    }
    let mut by_number: HashMap<String, Vec<usize>> = HashMap::new();
    for (index, row) in rows.iter().enumerate() {
        by_number
            .entry(row.business_number.clone())
            .or_default()
            .push(index);
    }
    let mut duplicates: Vec<Duplicate> = by_number
        .iter()
        .filter(|(_, indexes)| indexes.len() > 1)
        .map(|(number, indexes)| Duplicate {
            business_number: number.clone(),
            rows: indexes.iter().map(|&i| rows[i].line).collect(),
        })
        .collect();
    duplicates.sort_by_key(|d| d.rows[0]);
    report.duplicates = duplicates;

    let now = now();
    let tx = conn.transaction()?;
    {
        let mut keep = tx.prepare(
            "INSERT INTO index_records(business_number, person_id, person_name, employer_id,
                 business_type, business_date, organisation, source, imported_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT(business_number) DO UPDATE SET
                 person_id = excluded.person_id, person_name = excluded.person_name,
                 employer_id = excluded.employer_id, business_type = excluded.business_type,
                 business_date = excluded.business_date, organisation = excluded.organisation,
                 source = excluded.source, imported_at = excluded.imported_at",
        )?;
        let mut files = tx.prepare_cached(
            "SELECT f.id, b.name, b.state, f.person_id, f.person_name, f.employer_id,
                    f.business_type, f.business_date, f.organisation, f.metadata_source
             FROM business_files f JOIN batches b ON b.id = f.batch_id
             WHERE f.business_number = ?1",
        )?;
        for row in &rows {
            if by_number
                .get(&row.business_number)
                .is_some_and(|i| i.len() > 1)
            {
                continue;
            }
            let v = &row.values;
            keep.execute(params![
                row.business_number,
                v[0],
                v[1],
                v[2],
                v[3],
                v[4],
                v[5],
                source,
                now
            ])?;
            let found: Vec<FileFields> = files
                .query_map([&row.business_number], FileFields::from_row)?
                .collect::<Result<_, _>>()?;
            if found.is_empty() {
                report.unmatched += 1;
                continue;
            }
            let mut applied = false;
            let mut closed = false;
            for file in found {
                if matches!(file.state.as_str(), "accepted" | "syncing" | "archived") {
                    closed = true;
                    continue;
                }
                let changed = apply_to_file(&tx, row, &file, source, actor, &now, &mut report)?;
                applied = true;
                if changed {
                    report.business_files_updated += 1;
                }
            }
            if applied {
                report.matched += 1;
            } else if closed {
                report.closed += 1;
            }
        }
    }
    tx.commit()?;
    Ok(report)
}

/// The six metadata columns ([`FIELDS`] order) starting at column `first`.
fn metadata_values(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<[Option<String>; 6]> {
    Ok([
        row.get(first)?,
        row.get(first + 1)?,
        row.get(first + 2)?,
        row.get(first + 3)?,
        row.get(first + 4)?,
        row.get(first + 5)?,
    ])
}

struct FileFields {
    id: i64,
    batch: String,
    state: String,
    values: [Option<String>; 6],
    source: Option<String>,
}

impl FileFields {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            batch: row.get(1)?,
            state: row.get(2)?,
            values: metadata_values(row, 3)?,
            source: row.get(9)?,
        })
    }
}

/// Sets a row's fields on one business file; returns whether any changed.
fn apply_to_file(
    tx: &Connection,
    row: &Row,
    file: &FileFields,
    source: &str,
    actor: &str,
    now: &str,
    report: &mut ImportReport,
) -> Result<bool, IndexError> {
    // Values from an earlier import may be replaced by a newer export;
    // values a person entered (or a barcode gave) are not.
    let replaceable = file
        .source
        .as_deref()
        .is_none_or(|s| s.starts_with("import"));
    let mut changed = false;
    for (index, field) in FIELDS.iter().enumerate() {
        let Some(new) = &row.values[index] else {
            continue;
        };
        let old = &file.values[index];
        if old.as_deref() == Some(new.as_str()) {
            continue;
        }
        if let Some(existing) = old
            && !replaceable
        {
            report.conflicts.push(Conflict {
                row: row.line,
                business_number: row.business_number.clone(),
                batch: file.batch.clone(),
                field: (*field).to_owned(),
                existing: existing.clone(),
                imported: new.clone(),
                existing_source: file.source.clone().unwrap_or_default(),
            });
            continue;
        }
        // FIELDS are fixed column names, never input.
        // Cached: an import runs these for every matched file.
        tx.prepare_cached(&format!(
            "UPDATE business_files SET {field} = ?1 WHERE id = ?2"
        ))?
        .execute(params![new, file.id])?;
        tx.prepare_cached(
            "INSERT INTO metadata_changes(business_file_id, field, old_value, new_value, source,
                 actor, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![file.id, field, old, new, source, actor, now])?;
        changed = true;
    }
    if changed && replaceable {
        tx.prepare_cached(
            "UPDATE business_files SET metadata_source = ?1, metadata_by = ?2, metadata_at = ?3
             WHERE id = ?4",
        )?
        .execute(params![source, actor, now, file.id])?;
    }
    Ok(changed)
}

/// Fills the empty metadata of a business file that has just been linked
/// to `business_number` from the stored export row, if there is one (the
/// export was imported before the pages were scanned). Returns whether it
/// found one.
pub fn fill_from_record(
    conn: &Connection,
    file_id: i64,
    business_number: &str,
    now: &str,
) -> Result<bool, StoreError> {
    let found: Option<([Option<String>; 6], String)> = conn
        .prepare_cached(
            "SELECT person_id, person_name, employer_id, business_type, business_date,
                    organisation, source
             FROM index_records WHERE business_number = ?1",
        )?
        .query_row([business_number], |row| {
            Ok((metadata_values(row, 0)?, row.get(6)?))
        })
        .optional()?;
    let Some((values, source)) = found else {
        return Ok(false);
    };
    for (field, value) in FIELDS.iter().zip(&values) {
        let Some(value) = value else { continue };
        // FIELDS are fixed column names, never input.
        let set = conn.execute(
            &format!("UPDATE business_files SET {field} = ?1 WHERE id = ?2 AND {field} IS NULL"),
            params![value, file_id],
        )?;
        if set > 0 {
            conn.execute(
                "INSERT INTO metadata_changes(business_file_id, field, old_value, new_value,
                     source, actor, at)
                 VALUES (?1, ?2, NULL, ?3, ?4, 'system', ?5)",
                params![file_id, field, value, source, now],
            )?;
        }
    }
    conn.execute(
        "UPDATE business_files SET metadata_source = coalesce(metadata_source, ?1),
             metadata_by = coalesce(metadata_by, 'system'), metadata_at = coalesce(metadata_at, ?2)
         WHERE id = ?3",
        params![source, now, file_id],
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_the_usual_forms() {
        assert_eq!(parse_date("2021-03-04").as_deref(), Some("2021-03-04"));
        assert_eq!(parse_date("2021/3/4").as_deref(), Some("2021-03-04"));
        assert_eq!(parse_date("20210304").as_deref(), Some("2021-03-04"));
        assert_eq!(parse_date("2021.12.31").as_deref(), Some("2021-12-31"));
        for bad in [
            "2021-02-30",
            "2021-13-01",
            "210304",
            "yesterday",
            "1800-01-01",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn chinese_headers_are_understood() {
        let rows = read_csv(
            "业务流水号,社会保障号码,姓名,办理日期\nYW001,11010519491231002X,张三,2020-01-02\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].business_number.as_deref(), Some("YW001"));
        assert_eq!(rows[0].person_name.as_deref(), Some("张三"));
        assert!(
            read_csv("name,date\nx,y\n")
                .unwrap_err()
                .contains("business number")
        );
    }
}
