//! The monthly close (月结归档): every approved live business file of a
//! month moves from the pre-archive into the archive proper, exactly once.
//!
//! A live file belongs to the month in which it was opened (its first
//! upload or registration), in the hub's time zone (`[live] time_zone`,
//! Asia/Shanghai by default). A close refuses while any of that month's
//! live files is not yet approved (open, submitted or returned), listing
//! them, unless forced with a reason, which is recorded; the files left out
//! are listed in the report with why. Each district's approved files become
//! one archived batch `LIVE-YYYY-MM` (`-2`, `-3`… for files approved after
//! an earlier close of the month), written exactly as an edge's committed
//! batch is — manifest hash, a receipt signed with the hub's key, business
//! files and pages in the index — in one transaction with the files'
//! change to `archived`, the audit entry and the webhook events. A file is
//! archived once: closing a month again archives only what was approved
//! since, and nothing twice.
//!
//! The batches are committed in the name of the district's pseudo-node
//! `DISTRICT-live` (revoked from the start: it holds no credential).
use std::collections::BTreeMap;

use dangan_shared::BlobId;
use dangan_sync::HubKey;
use dangan_sync::wire::{Manifest, ManifestFile, ManifestPage, ReceiptBody};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::archive;
use crate::store::{self, StoreError};
use crate::webhooks;

#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    #[error("a month is YYYY-MM, not {0:?}")]
    BadMonth(String),
    #[error("{0} has not ended yet in {1}; close it once it has")]
    NotEnded(String, String),
    #[error(
        "{month} has {} business files not approved yet; approve or send them back first, or force the close with a reason",
        .unapproved.len()
    )]
    Unapproved {
        month: String,
        unapproved: Vec<Excluded>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot archive the month: {0}")]
    Archive(String),
}

impl From<rusqlite::Error> for CloseError {
    fn from(err: rusqlite::Error) -> Self {
        CloseError::Store(err.into())
    }
}

/// A live file the close leaves out, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Excluded {
    pub business_number: String,
    pub organisation: String,
    pub state: String,
    pub reason: String,
}

/// One line of the report's counts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Count {
    pub key: String,
    pub name: Option<String>,
    pub files: u64,
    pub pages: u64,
}

/// What a close did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloseReport {
    pub month: String,
    pub time_zone: String,
    /// Only this district's files (an archive administrator's close), or all.
    pub district: Option<String>,
    pub closed_at: String,
    pub closed_by: String,
    /// The reason given to close despite unapproved files.
    pub forced: Option<String>,
    /// The batches written by this close.
    pub batches: Vec<String>,
    pub archived_files: u64,
    pub archived_pages: u64,
    /// Files of the month archived by earlier closes.
    pub archived_before: u64,
    pub by_organisation: Vec<Count>,
    pub by_business_type: Vec<Count>,
    pub excluded: Vec<Excluded>,
}

/// The UTC instants (as stored) at which `month` starts and ends in `tz`.
pub fn month_range(month: &str, tz: &jiff::tz::TimeZone) -> Result<(String, String), CloseError> {
    let bad = || CloseError::BadMonth(month.to_owned());
    let (year, number) = month.split_once('-').ok_or_else(bad)?;
    if year.len() != 4 || number.len() != 2 {
        return Err(bad());
    }
    let year: i16 = year.parse().map_err(|_| bad())?;
    let number: i8 = number.parse().map_err(|_| bad())?;
    let first = jiff::civil::Date::new(year, number, 1).map_err(|_| bad())?;
    let next = first
        .checked_add(jiff::Span::new().months(1))
        .map_err(|_| bad())?;
    let instant = |date: jiff::civil::Date| -> Result<String, CloseError> {
        let zoned = date.to_zoned(tz.clone()).map_err(|_| bad())?;
        Ok(zoned.timestamp().strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
    };
    Ok((instant(first)?, instant(next)?))
}

/// What is asked of a close.
#[derive(Debug, Clone)]
pub struct CloseRequest {
    pub month: String,
    /// Only this district's live files (`None`: every district).
    pub district: Option<String>,
    /// Close despite unapproved files, for this reason.
    pub force: Option<String>,
    pub actor: String,
}

#[derive(Debug)]
struct LiveRow {
    id: i64,
    number: String,
    organisation: String,
    organisation_name: Option<String>,
    district: String,
    person_id: Option<String>,
    person_name: Option<String>,
    employer_id: Option<String>,
    business_type: Option<String>,
    date: Option<String>,
    state: String,
    return_reason: Option<String>,
    created_at: String,
}

fn month_files(
    conn: &Connection,
    start: &str,
    end: &str,
    district: Option<&str>,
) -> Result<Vec<LiveRow>, StoreError> {
    let mut statement = conn.prepare(
        "SELECT f.id, f.business_number, f.organisation, o.name, f.district, f.person_id,
                f.person_name, f.employer_id, f.business_type, f.date, f.state, f.return_reason,
                f.created_at
         FROM live_files f LEFT JOIN orgs o ON o.code = f.organisation
         WHERE f.created_at >= ?1 AND f.created_at < ?2 AND (?3 IS NULL OR f.district = ?3)
         ORDER BY f.district, f.created_at, f.id",
    )?;
    let rows = statement.query_map(params![start, end, district], |row| {
        Ok(LiveRow {
            id: row.get(0)?,
            number: row.get(1)?,
            organisation: row.get(2)?,
            organisation_name: row.get(3)?,
            district: row.get(4)?,
            person_id: row.get(5)?,
            person_name: row.get(6)?,
            employer_id: row.get(7)?,
            business_type: row.get(8)?,
            date: row.get(9)?,
            state: row.get(10)?,
            return_reason: row.get(11)?,
            created_at: row.get(12)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn why_not(state: &str, return_reason: Option<&str>) -> String {
    match state {
        "open" => "not handed in for review yet (open)".to_owned(),
        "submitted" => "waiting for review (submitted)".to_owned(),
        "returned" => format!(
            "sent back to the clerk (returned: {})",
            return_reason.unwrap_or("no reason given")
        ),
        other => format!("in state {other}"),
    }
}

/// The pseudo-node a district's monthly batches are committed as.
fn close_node(conn: &Connection, district: &str) -> Result<String, StoreError> {
    let id = format!("{district}-live");
    let now = store::now();
    conn.execute(
        "INSERT OR IGNORE INTO districts(code, created_at) VALUES (?1, ?2)",
        params![district, now],
    )?;
    // Revoked from the start and with a hash no token has: never a credential.
    conn.execute(
        "INSERT OR IGNORE INTO nodes(id, district, token_hash, enrolled_at, revoked_at)
         VALUES (?1, ?2, ?3, ?4, ?4)",
        params![id, district, format!("monthly-close:{id}"), now],
    )?;
    Ok(id)
}

/// The first free batch name for `month` in `district`.
fn batch_name(conn: &Connection, district: &str, month: &str) -> Result<String, StoreError> {
    let mut name = format!("LIVE-{month}");
    let mut n = 1;
    while archive::committed(conn, district, &name)?.is_some() {
        n += 1;
        name = format!("LIVE-{month}-{n}");
    }
    Ok(name)
}

/// Closes a month (see the module's description). `hooks`: whether webhook
/// events are written.
pub fn close(
    conn: &mut Connection,
    key: &HubKey,
    hub_id: &str,
    time_zone: &jiff::tz::TimeZone,
    request: &CloseRequest,
    hooks: bool,
) -> Result<CloseReport, CloseError> {
    let zone_name = time_zone.iana_name().unwrap_or("UTC").to_owned();
    let (start, end) = month_range(&request.month, time_zone)?;
    if end > store::now() {
        return Err(CloseError::NotEnded(request.month.clone(), zone_name));
    }
    let force = request
        .force
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let tx = store::write_tx(conn)?;
    let files = month_files(&tx, &start, &end, request.district.as_deref())?;
    let excluded: Vec<Excluded> = files
        .iter()
        .filter(|f| matches!(f.state.as_str(), "open" | "submitted" | "returned"))
        .map(|f| Excluded {
            business_number: f.number.clone(),
            organisation: f.organisation.clone(),
            state: f.state.clone(),
            reason: why_not(&f.state, f.return_reason.as_deref()),
        })
        .collect();
    if !excluded.is_empty() && force.is_none() {
        return Err(CloseError::Unapproved {
            month: request.month.clone(),
            unapproved: excluded,
        });
    }
    let archived_before = files.iter().filter(|f| f.state == "archived").count() as u64;
    let mut by_district: BTreeMap<&str, Vec<&LiveRow>> = BTreeMap::new();
    for file in files.iter().filter(|f| f.state == "approved") {
        by_district.entry(&file.district).or_default().push(file);
    }
    let closed_at = store::now();
    let mut batches = Vec::new();
    let mut by_organisation: BTreeMap<String, Count> = BTreeMap::new();
    let mut by_business_type: BTreeMap<String, Count> = BTreeMap::new();
    let (mut archived_files, mut archived_pages) = (0u64, 0u64);
    for (district, group) in by_district {
        let node = close_node(&tx, district)?;
        let name = batch_name(&tx, district, &request.month)?;
        let mut manifest_files = Vec::new();
        let mut seq = 0u32;
        let mut blobs = BTreeMap::new();
        for (index, file) in group.iter().enumerate() {
            let template = file
                .business_type
                .as_deref()
                .and_then(|code| crate::dictionaries::template(&tx, code, None).ok());
            let pages = live_pages(&tx, file.id)?;
            let mut manifest_pages = Vec::new();
            for page in &pages {
                seq += 1;
                blobs.insert(page.blob, page.size);
                manifest_pages.push(ManifestPage {
                    barcodes: Vec::new(),
                    blank: false,
                    blob: page.blob,
                    colour: page.colour.clone(),
                    dpi: page.dpi,
                    format: page.format.clone(),
                    frame: 0,
                    height: page.height,
                    separator: false,
                    seq,
                    size: page.size,
                    source: page.source.clone(),
                    width: page.width,
                });
            }
            let pages_count = pages.len() as u64;
            archived_files += 1;
            archived_pages += pages_count;
            for (map, key, name) in [
                (
                    &mut by_organisation,
                    file.organisation.clone(),
                    file.organisation_name.clone(),
                ),
                (
                    &mut by_business_type,
                    file.business_type.clone().unwrap_or_default(),
                    template.as_ref().map(|t| t.content.name.clone()),
                ),
            ] {
                let count = map.entry(key.clone()).or_insert(Count {
                    key,
                    name,
                    files: 0,
                    pages: 0,
                });
                count.files += 1;
                count.pages += pages_count;
            }
            manifest_files.push(ManifestFile {
                business_number: Some(file.number.clone()),
                business_type: file.business_type.clone(),
                category: template
                    .as_ref()
                    .map(|t| t.content.category.code().to_owned()),
                date: file
                    .date
                    .clone()
                    .or_else(|| Some(local_date(&file.created_at, time_zone))),
                employer_id: file.employer_id.clone(),
                organisation: file.organisation.clone(),
                pages: manifest_pages,
                person_id: file.person_id.clone(),
                person_name: file.person_name.clone(),
                retention: template.as_ref().map(|t| t.content.retention.code()),
                seq: index as u32 + 1,
            });
        }
        let manifest = Manifest {
            accepted_at: closed_at.clone(),
            batch: name.clone(),
            business_files: manifest_files,
            business_type: None,
            bytes: blobs.values().sum(),
            district: district.to_owned(),
            format: dangan_sync::wire::MANIFEST_FORMAT.to_owned(),
            pages: u64::from(seq),
        };
        let (_, manifest_hash) = dangan_sync::manifest_hash(&manifest)
            .map_err(|err| CloseError::Archive(err.to_string()))?;
        let body = ReceiptBody {
            batch: name.clone(),
            blobs: blobs.len() as u64,
            bytes: manifest.bytes,
            committed_at: closed_at.clone(),
            district: district.to_owned(),
            format: dangan_sync::wire::RECEIPT_FORMAT.to_owned(),
            hub_id: hub_id.to_owned(),
            manifest_hash: manifest_hash.clone(),
            node_id: node.clone(),
            pages: manifest.pages,
        };
        let receipt = dangan_sync::receipt::sign_receipt(key, body)
            .map_err(|err| CloseError::Archive(err.to_string()))?;
        archive::insert_batch(&tx, &manifest, &manifest_hash, &node, &receipt)
            .map_err(|err| CloseError::Archive(err.to_string()))?;
        for file in &group {
            tx.execute(
                "UPDATE live_files SET state = 'archived', updated_at = ?2 WHERE id = ?1",
                params![file.id, closed_at],
            )?;
            webhooks::enqueue(
                &tx,
                hooks,
                webhooks::Event::Archived,
                &file.number,
                serde_json::json!({ "batch": name, "district": district, "month": request.month }),
            )?;
        }
        batches.push(name);
    }
    let report = CloseReport {
        month: request.month.clone(),
        time_zone: zone_name,
        district: request.district.clone(),
        closed_at,
        closed_by: request.actor.clone(),
        forced: force.map(str::to_owned),
        batches,
        archived_files,
        archived_pages,
        archived_before,
        by_organisation: by_organisation.into_values().collect(),
        by_business_type: by_business_type.into_values().collect(),
        excluded,
    };
    let body =
        serde_json::to_string(&report).map_err(|err| StoreError::Corrupt(err.to_string()))?;
    tx.execute(
        "INSERT INTO live_closes(month, district, closed_at, closed_by, forced, report)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            report.month,
            report.district,
            report.closed_at,
            report.closed_by,
            report.forced,
            body
        ],
    )?;
    tx.commit()?;
    Ok(report)
}

/// The latest close report of `month` (for `district`, or of every one).
pub fn last_report(
    conn: &Connection,
    month: &str,
    district: Option<&str>,
) -> Result<Option<CloseReport>, StoreError> {
    let body: Option<String> = conn
        .query_row(
            "SELECT report FROM live_closes WHERE month = ?1 AND district IS ?2
             ORDER BY id DESC LIMIT 1",
            params![month, district],
            |row| row.get(0),
        )
        .optional()?;
    body.map(|body| {
        serde_json::from_str(&body)
            .map_err(|err| StoreError::Corrupt(format!("close report: {err}")))
    })
    .transpose()
}

struct PageRow {
    blob: BlobId,
    size: u64,
    format: String,
    width: u32,
    height: u32,
    dpi: Option<u32>,
    colour: String,
    source: String,
}

fn live_pages(conn: &Connection, file: i64) -> Result<Vec<PageRow>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT blob, size, format, width, height, dpi, colour, COALESCE(filename, ''), id
         FROM live_pages WHERE live_file_id = ?1 ORDER BY position",
    )?;
    let rows = statement.query_map([file], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, u64>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, u32>(3)?,
            row.get::<_, u32>(4)?,
            row.get::<_, Option<u32>>(5)?,
            row.get::<_, String>(6)?,
            row.get::<_, String>(7)?,
            row.get::<_, i64>(8)?,
        ))
    })?;
    let mut pages = Vec::new();
    for row in rows {
        let (blob, size, format, width, height, dpi, colour, filename, id) = row?;
        let blob = blob
            .parse()
            .map_err(|err| StoreError::Corrupt(format!("live page {id}: blob {blob:?}: {err}")))?;
        pages.push(PageRow {
            blob,
            size,
            format,
            width,
            height,
            dpi,
            colour,
            source: format!("live/{id}/{filename}"),
        });
    }
    Ok(pages)
}

/// The report as CSV (RFC 4180, a header row): one line per count and per
/// file left out.
pub fn report_csv(report: &CloseReport) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    let _ = out.write_record([
        "section", "key", "name", "files", "pages", "state", "reason",
    ]);
    for (section, counts) in [
        ("organisation", &report.by_organisation),
        ("business_type", &report.by_business_type),
    ] {
        for count in counts {
            let _ = out.write_record([
                section,
                &count.key,
                count.name.as_deref().unwrap_or(""),
                &count.files.to_string(),
                &count.pages.to_string(),
                "",
                "",
            ]);
        }
    }
    for file in &report.excluded {
        let _ = out.write_record([
            "excluded",
            &file.business_number,
            &file.organisation,
            "",
            "",
            &file.state,
            &file.reason,
        ]);
    }
    String::from_utf8(out.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// A month's live files before a close: how many in each state, and the
/// ones a close would refuse for.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub month: String,
    pub time_zone: String,
    pub ended: bool,
    /// (state, files) for every state present.
    pub states: Vec<(String, u64)>,
    pub unapproved: Vec<Excluded>,
}

/// What closing `month` (for `district`, or every one) would find now.
pub fn preview(
    conn: &Connection,
    month: &str,
    district: Option<&str>,
    time_zone: &jiff::tz::TimeZone,
) -> Result<Preview, CloseError> {
    let (start, end) = month_range(month, time_zone)?;
    let files = month_files(conn, &start, &end, district)?;
    let mut states: BTreeMap<String, u64> = BTreeMap::new();
    for file in &files {
        *states.entry(file.state.clone()).or_default() += 1;
    }
    Ok(Preview {
        month: month.to_owned(),
        time_zone: time_zone.iana_name().unwrap_or("UTC").to_owned(),
        ended: end <= store::now(),
        states: states.into_iter().collect(),
        unapproved: files
            .iter()
            .filter(|f| matches!(f.state.as_str(), "open" | "submitted" | "returned"))
            .map(|f| Excluded {
                business_number: f.number.clone(),
                organisation: f.organisation.clone(),
                state: f.state.clone(),
                reason: why_not(&f.state, f.return_reason.as_deref()),
            })
            .collect(),
    })
}

/// The date (YYYY-MM-DD) of an RFC 3339 instant in the hub's time zone: the
/// business date of a live file that was given none is the day it was
/// opened there, as the close's month is (a file opened at 00:30 in
/// Shanghai belongs to that day, not to the UTC day before).
fn local_date(instant: &str, zone: &jiff::tz::TimeZone) -> String {
    instant
        .parse::<jiff::Timestamp>()
        .map(|at| at.to_zoned(zone.clone()).date().to_string())
        .unwrap_or_else(|_| instant.chars().take(10).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_a_date_takes_the_day_it_was_opened_in_the_time_zone() {
        let shanghai = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        // 00:30 on 1 December in Shanghai is still 30 November in UTC.
        assert_eq!(local_date("2026-11-30T16:30:00Z", &shanghai), "2026-12-01");
        assert_eq!(local_date("2026-11-30T15:30:00Z", &shanghai), "2026-11-30");
        assert_eq!(
            local_date("2026-11-30T16:30:00Z", &jiff::tz::TimeZone::UTC),
            "2026-11-30"
        );
    }

    #[test]
    fn months_are_cut_in_the_time_zone() {
        let shanghai = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        assert_eq!(
            month_range("2026-11", &shanghai).unwrap(),
            (
                "2026-10-31T16:00:00Z".to_owned(),
                "2026-11-30T16:00:00Z".to_owned()
            )
        );
        assert_eq!(
            month_range("2026-12", &shanghai).unwrap().1,
            "2026-12-31T16:00:00Z"
        );
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", ""] {
            assert!(month_range(bad, &shanghai).is_err(), "{bad}");
        }
    }
}
