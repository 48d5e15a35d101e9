//! The districts' warehouses of paper originals (库房), as their edges report
//! them over the sync v2 warehouse feed, and the hub reviewers' requests to
//! borrow an original (借阅申请), which the edges read from the loan-request
//! feed.
//!
//! An edge's feed is a sequence of [`WarehouseEvent`]s numbered from 1.
//! [`apply`] keeps every event whole (`warehouse_events`, append-only),
//! folds it into the current state (`wh_locations`, `wh_volumes`,
//! `wh_file_volumes`, `wh_loans`, `wh_checks`) and moves the feed's cursor,
//! all in one transaction, so a feed is applied exactly once however often
//! its events are sent. Everything is keyed by the district of the node
//! that sent it and by the edge's own names (location and volume codes,
//! batch names and file numbers), never by hub ids: a volume may be bound
//! before its batch is archived here.
//!
//! [`original`] answers where a business file's paper original is: the
//! file's volume, the volume's box and the box's places up to the room,
//! and whether it is out on loan (overdue counts in the hub's `[live]
//! time_zone`, see [`today`]).
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use dangan_sync::wire::{
    LoanRequest, LoanRequestFeed, WarehouseChange, WarehouseEvent, WarehouseEvents,
};

use crate::store::{self, StoreError};

/// Why a push of warehouse events was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The first event after the cursor is not `cursor + 1`.
    #[error("warehouse feed {feed}: the hub is at {cursor}, the events go on from {first}")]
    Gap {
        feed: String,
        cursor: u64,
        first: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ApplyError {
    fn from(err: rusqlite::Error) -> Self {
        ApplyError::Store(err.into())
    }
}

/// The outcome of [`apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The feed's cursor afterwards.
    pub cursor: u64,
    /// How many of the events were new.
    pub new_events: usize,
}

/// Today's date (`YYYY-MM-DD`) in `time_zone`: what a due date is compared
/// with.
pub fn today(time_zone: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::now()
        .to_zoned(time_zone.clone())
        .date()
        .to_string()
}

/// How far the hub has applied `district`'s feed `feed` (0: never seen).
pub fn cursor(conn: &Connection, district: &str, feed: &str) -> Result<u64, StoreError> {
    Ok(conn
        .query_row(
            "SELECT cursor FROM warehouse_feeds WHERE district = ?1 AND feed = ?2",
            params![district, feed],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

/// Applies `events` of one feed to `district`: skips those at or below the
/// cursor, refuses a gap after it, and writes the new events, the state
/// they change and the cursor in one transaction.
pub fn apply(
    conn: &mut Connection,
    district: &str,
    events: &WarehouseEvents,
) -> Result<Applied, ApplyError> {
    let tx = store::write_tx(conn)?;
    let current = cursor(&tx, district, &events.feed)?;
    let mut expected = current + 1;
    let mut new_events = 0;
    let received_at = store::now();
    for event in events.events.iter().filter(|event| event.seq > current) {
        if event.seq != expected {
            return Err(ApplyError::Gap {
                feed: events.feed.clone(),
                cursor: current,
                first: event.seq,
            });
        }
        record(&tx, district, &events.feed, event, &received_at)?;
        fold(&tx, district, &events.feed, event)?;
        expected += 1;
        new_events += 1;
    }
    let cursor = expected - 1;
    if new_events > 0 {
        tx.execute(
            "INSERT INTO warehouse_feeds(district, feed, cursor, updated_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(district, feed) DO UPDATE
             SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            params![district, events.feed, cursor, received_at],
        )?;
    }
    tx.commit()?;
    Ok(Applied { cursor, new_events })
}

fn kind_of(change: &WarehouseChange) -> &'static str {
    match change {
        WarehouseChange::Location { .. } => "location",
        WarehouseChange::Volume { .. } => "volume",
        WarehouseChange::FileVolume { .. } => "file_volume",
        WarehouseChange::Loan { .. } => "loan",
        WarehouseChange::Check { .. } => "check",
    }
}

/// Appends the event to the feed's history, as it arrived.
fn record(
    conn: &Connection,
    district: &str,
    feed: &str,
    event: &WarehouseEvent,
    received_at: &str,
) -> Result<(), ApplyError> {
    let body = serde_json::to_string(event)
        .map_err(|err| StoreError::Corrupt(format!("warehouse event {}: {err}", event.seq)))?;
    conn.prepare_cached(
        "INSERT INTO warehouse_events(district, feed, seq, kind, body, actor, recorded_at,
                                      received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        district,
        feed,
        event.seq,
        kind_of(&event.change),
        body,
        event.actor,
        event.recorded_at,
        received_at
    ])?;
    Ok(())
}

/// Folds one event into the current state: each kind carries the whole new
/// state of its record, so this is an upsert (or, for a file taken out of
/// its volume, a delete).
fn fold(
    conn: &Connection,
    district: &str,
    feed: &str,
    event: &WarehouseEvent,
) -> Result<(), ApplyError> {
    let at = &event.recorded_at;
    match &event.change {
        WarehouseChange::Location {
            code,
            location_kind,
            name,
            parent,
            capacity,
        } => {
            conn.prepare_cached(
                "INSERT INTO wh_locations(district, code, kind, name, parent, capacity, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(district, code) DO UPDATE SET
                     kind = excluded.kind, name = excluded.name, parent = excluded.parent,
                     capacity = excluded.capacity, updated_at = excluded.updated_at",
            )?
            .execute(params![
                district,
                code,
                location_kind,
                name,
                parent,
                capacity,
                at
            ])?;
        }
        WarehouseChange::Volume {
            code,
            title,
            box_code,
            retention,
            date_from,
            date_to,
        } => {
            conn.prepare_cached(
                "INSERT INTO wh_volumes(district, code, title, box_code, retention, date_from,
                                        date_to, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(district, code) DO UPDATE SET
                     title = excluded.title, box_code = excluded.box_code,
                     retention = excluded.retention, date_from = excluded.date_from,
                     date_to = excluded.date_to, updated_at = excluded.updated_at",
            )?
            .execute(params![
                district, code, title, box_code, retention, date_from, date_to, at
            ])?;
        }
        WarehouseChange::FileVolume {
            batch,
            file_seq,
            business_number,
            volume: Some(volume),
        } => {
            conn.prepare_cached(
                "INSERT INTO wh_file_volumes(district, batch, file_seq, business_number, volume)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(district, batch, file_seq) DO UPDATE SET
                     business_number = excluded.business_number, volume = excluded.volume",
            )?
            .execute(params![district, batch, file_seq, business_number, volume])?;
        }
        WarehouseChange::FileVolume {
            batch,
            file_seq,
            volume: None,
            ..
        } => {
            conn.prepare_cached(
                "DELETE FROM wh_file_volumes WHERE district = ?1 AND batch = ?2 AND file_seq = ?3",
            )?
            .execute(params![district, batch, file_seq])?;
        }
        WarehouseChange::Loan {
            loan,
            item,
            state,
            borrower,
            purpose,
            due_date,
            requested_by,
            approved_by,
            lent_at,
            returned_at,
            hub_request,
        } => {
            conn.prepare_cached(
                "INSERT INTO wh_loans(district, feed, loan, item, state, borrower, purpose,
                                      due_date, requested_by, approved_by, lent_at, returned_at,
                                      hub_request, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 ON CONFLICT(district, feed, loan) DO UPDATE SET
                     item = excluded.item, state = excluded.state, borrower = excluded.borrower,
                     purpose = excluded.purpose, due_date = excluded.due_date,
                     requested_by = excluded.requested_by, approved_by = excluded.approved_by,
                     lent_at = excluded.lent_at, returned_at = excluded.returned_at,
                     hub_request = excluded.hub_request, updated_at = excluded.updated_at",
            )?
            .execute(params![
                district,
                feed,
                loan,
                item,
                state,
                borrower,
                purpose,
                due_date,
                requested_by,
                approved_by,
                lent_at,
                returned_at,
                hub_request,
                at
            ])?;
        }
        WarehouseChange::Check {
            check,
            root,
            state,
            started_at,
            finished_at,
            missing,
            unexpected,
            misplaced,
            resolved,
        } => {
            conn.prepare_cached(
                r#"INSERT INTO wh_checks(district, feed, "check", root, state, started_at,
                                       finished_at, missing, unexpected, misplaced, resolved)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT(district, feed, "check") DO UPDATE SET
                     root = excluded.root, state = excluded.state,
                     started_at = excluded.started_at, finished_at = excluded.finished_at,
                     missing = excluded.missing, unexpected = excluded.unexpected,
                     misplaced = excluded.misplaced, resolved = excluded.resolved"#,
            )?
            .execute(params![
                district,
                feed,
                check,
                root,
                state,
                started_at,
                finished_at,
                missing,
                unexpected,
                misplaced,
                resolved
            ])?;
        }
    }
    Ok(())
}

/// Where a business file's paper original is, as `GET /api/v1/files/{id}`
/// shows it (`original`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Original {
    /// The code of the volume (案卷) the file is bound into.
    pub volume: String,
    /// Its title; `None` until the volume itself is reported.
    pub volume_title: Option<String>,
    /// The code of the box that holds the volume, if it is in one.
    #[serde(rename = "box")]
    pub box_code: Option<String>,
    /// The places from the room down to the box (empty when the box is not
    /// shelved or not reported).
    pub path: Vec<Place>,
    /// The loan of the volume or its box that is current (requested,
    /// approved or lent at the edge), if any.
    pub loan: Option<CurrentLoan>,
    /// The hub's requests to borrow this file's original that the edge
    /// has not yet answered with a loan.
    pub requests: Vec<LoanRequest>,
}

/// One place of a warehouse: a room, cabinet, section, shelf or box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Place {
    pub code: String,
    pub kind: String,
    pub name: String,
}

/// A loan of an original that is not over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CurrentLoan {
    /// The volume or box lent.
    pub item: String,
    /// `requested`, `approved` or `lent`.
    pub state: String,
    pub borrower: String,
    pub due_date: String,
    /// Lent and due before today.
    pub overdue: bool,
}

/// The most levels a box's places are followed up (a guard against a
/// parent cycle in what an edge reported).
const MAX_DEPTH: usize = 16;

/// The volume a district's business file (batch name, file number) is
/// bound into, if any.
pub fn volume_of_file(
    conn: &Connection,
    district: &str,
    batch: &str,
    file_seq: i64,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT volume FROM wh_file_volumes
             WHERE district = ?1 AND batch = ?2 AND file_seq = ?3",
            params![district, batch, file_seq],
            |row| row.get(0),
        )
        .optional()?)
}

/// Where the paper original of business file `file_id` (file `file_seq` of
/// `district`'s batch `batch`) is, or `None` when the district has not
/// bound it into a volume. `today` (`YYYY-MM-DD`) decides what is overdue.
pub fn original(
    conn: &Connection,
    district: &str,
    batch: &str,
    file_seq: i64,
    file_id: i64,
    today: &str,
) -> Result<Option<Original>, StoreError> {
    let Some(volume) = volume_of_file(conn, district, batch, file_seq)? else {
        return Ok(None);
    };
    let (volume_title, box_code) = conn
        .query_row(
            "SELECT title, box_code FROM wh_volumes WHERE district = ?1 AND code = ?2",
            params![district, volume],
            |row| Ok((Some(row.get(0)?), row.get(1)?)),
        )
        .optional()?
        .unwrap_or((None, None));
    let mut path = Vec::new();
    let mut next = box_code.clone();
    while let Some(code) = next.take() {
        if path.len() >= MAX_DEPTH || path.iter().any(|place: &Place| place.code == code) {
            break;
        }
        let found = conn
            .prepare_cached(
                "SELECT kind, name, parent FROM wh_locations WHERE district = ?1 AND code = ?2",
            )?
            .query_row(params![district, code], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?;
        let Some((kind, name, parent)) = found else {
            break;
        };
        path.push(Place { code, kind, name });
        next = parent;
    }
    path.reverse();
    let loan = conn
        .query_row(
            "SELECT item, state, borrower, due_date FROM wh_loans
             WHERE district = ?1 AND item IN (?2, ?3)
               AND state IN ('requested', 'approved', 'lent')
             ORDER BY CASE state WHEN 'lent' THEN 0 WHEN 'approved' THEN 1 ELSE 2 END,
                      updated_at DESC
             LIMIT 1",
            params![district, volume, box_code],
            |row| {
                let state: String = row.get(1)?;
                let due_date: String = row.get(3)?;
                Ok(CurrentLoan {
                    item: row.get(0)?,
                    overdue: state == "lent" && due_date.as_str() < today,
                    state,
                    borrower: row.get(2)?,
                    due_date,
                })
            },
        )
        .optional()?;
    let mut statement = conn.prepare_cached(
        "SELECT r.seq, r.item, r.borrower, r.purpose, r.due_date, r.requested_by, r.requested_at
         FROM loan_requests r
         WHERE r.district = ?1 AND r.file_id = ?2
           AND NOT EXISTS (SELECT 1 FROM wh_loans l
                           WHERE l.district = r.district AND l.hub_request = r.seq)
         ORDER BY r.seq",
    )?;
    let requests = statement
        .query_map(params![district, file_id], loan_request_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Original {
        volume,
        volume_title,
        box_code,
        path,
        loan,
        requests,
    }))
}

fn loan_request_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<LoanRequest> {
    Ok(LoanRequest {
        seq: row.get(0)?,
        item: row.get(1)?,
        borrower: row.get(2)?,
        purpose: row.get(3)?,
        due_date: row.get(4)?,
        requested_by: row.get(5)?,
        requested_at: row.get(6)?,
    })
}

/// A hub reviewer's request to borrow an original, before it has a number.
#[derive(Debug, Clone)]
pub struct NewLoanRequest {
    pub district: String,
    /// The volume asked for.
    pub item: String,
    pub borrower: String,
    pub purpose: String,
    pub due_date: String,
    pub requested_by: String,
    /// The business file the request was made from.
    pub file_id: Option<i64>,
}

/// Records a loan request for the district's edge to read; its `seq` is
/// its number and its place in the loan-request feed.
pub fn request_loan(conn: &Connection, new: &NewLoanRequest) -> Result<LoanRequest, StoreError> {
    let requested_at = store::now();
    conn.execute(
        "INSERT INTO loan_requests(district, item, borrower, purpose, due_date, requested_by,
                                   requested_at, file_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            new.district,
            new.item,
            new.borrower,
            new.purpose,
            new.due_date,
            new.requested_by,
            requested_at,
            new.file_id
        ],
    )?;
    Ok(LoanRequest {
        seq: conn.last_insert_rowid() as u64,
        item: new.item.clone(),
        borrower: new.borrower.clone(),
        purpose: new.purpose.clone(),
        due_date: new.due_date.clone(),
        requested_by: new.requested_by.clone(),
        requested_at,
    })
}

/// `district`'s loan requests after `after`, at most `limit`, in order.
pub fn loan_request_feed(
    conn: &Connection,
    district: &str,
    after: u64,
    limit: u32,
) -> Result<LoanRequestFeed, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT seq, item, borrower, purpose, due_date, requested_by, requested_at
         FROM loan_requests WHERE district = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let mut entries = statement
        .query_map(
            params![district, after, i64::from(limit) + 1],
            loan_request_row,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    let next = entries.last().map_or(after, |entry| entry.seq);
    Ok(LoanRequestFeed {
        entries,
        next,
        more,
    })
}

/// An original out on loan, for the administrators' list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoanOut {
    pub district: String,
    pub loan: u64,
    pub item: String,
    /// The volume's title, when the item is a reported volume.
    pub title: Option<String>,
    pub borrower: String,
    pub purpose: String,
    pub due_date: String,
    pub lent_at: Option<String>,
    pub overdue: bool,
}

/// Every original lent and not returned, overdue ones first, then by
/// district and due date.
pub fn loans_out(conn: &Connection, today: &str) -> Result<Vec<LoanOut>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT l.district, l.loan, l.item, v.title, l.borrower, l.purpose, l.due_date, l.lent_at
         FROM wh_loans l
         LEFT JOIN wh_volumes v ON v.district = l.district AND v.code = l.item
         WHERE l.state = 'lent'
         ORDER BY l.due_date < ?1 DESC, l.district, l.due_date, l.item",
    )?;
    let rows = statement.query_map([today], |row| {
        let due_date: String = row.get(6)?;
        Ok(LoanOut {
            district: row.get(0)?,
            loan: row.get(1)?,
            item: row.get(2)?,
            title: row.get(3)?,
            borrower: row.get(4)?,
            purpose: row.get(5)?,
            overdue: due_date.as_str() < today,
            due_date,
            lent_at: row.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, change: WarehouseChange) -> WarehouseEvent {
        WarehouseEvent {
            seq,
            recorded_at: format!("2026-11-26T08:00:{seq:02}Z"),
            actor: "wang".to_owned(),
            change,
        }
    }

    fn place(seq: u64, code: &str, kind: &str, parent: Option<&str>) -> WarehouseEvent {
        event(
            seq,
            WarehouseChange::Location {
                code: code.to_owned(),
                location_kind: kind.to_owned(),
                name: format!("{kind} {code}"),
                parent: parent.map(str::to_owned),
                capacity: None,
            },
        )
    }

    fn count(conn: &Connection, table: &str) -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .unwrap()
    }

    #[test]
    fn a_feed_folds_into_the_state_once_and_refuses_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let db = store::Db::create(dir.path()).unwrap();
        let mut conn = db.get().unwrap();
        let feed = |events: Vec<WarehouseEvent>| WarehouseEvents {
            feed: "f1".to_owned(),
            events,
        };
        let all = vec![
            place(1, "K01", "room", None),
            place(2, "C03", "cabinet", Some("K01")),
            place(3, "BOX-1", "box", Some("C03")),
            event(
                4,
                WarehouseChange::Volume {
                    code: "VOL-1".to_owned(),
                    title: "2026年养老".to_owned(),
                    box_code: Some("BOX-1".to_owned()),
                    retention: None,
                    date_from: None,
                    date_to: None,
                },
            ),
            event(
                5,
                WarehouseChange::FileVolume {
                    batch: "B1".to_owned(),
                    file_seq: 2,
                    business_number: None,
                    volume: Some("VOL-1".to_owned()),
                },
            ),
        ];
        let applied = apply(&mut conn, "330106", &feed(all[..3].to_vec())).unwrap();
        assert_eq!(
            applied,
            Applied {
                cursor: 3,
                new_events: 3
            }
        );
        let applied = apply(&mut conn, "330106", &feed(all.clone())).unwrap();
        assert_eq!(
            applied,
            Applied {
                cursor: 5,
                new_events: 2
            }
        );
        let applied = apply(&mut conn, "330106", &feed(all.clone())).unwrap();
        assert_eq!(
            applied,
            Applied {
                cursor: 5,
                new_events: 0
            }
        );
        assert_eq!(count(&conn, "warehouse_events"), 5);
        let gap = apply(
            &mut conn,
            "330106",
            &feed(vec![place(7, "K02", "room", None)]),
        );
        assert!(matches!(
            gap,
            Err(ApplyError::Gap {
                cursor: 5,
                first: 7,
                ..
            })
        ));
        assert_eq!(cursor(&conn, "330106", "f1").unwrap(), 5);
        assert_eq!(cursor(&conn, "330108", "f1").unwrap(), 0);

        let found = original(&conn, "330106", "B1", 2, 1, "2026-11-26")
            .unwrap()
            .unwrap();
        let codes: Vec<&str> = found.path.iter().map(|p| p.code.as_str()).collect();
        assert_eq!(codes, ["K01", "C03", "BOX-1"]);
        assert_eq!(found.volume_title.as_deref(), Some("2026年养老"));
        assert_eq!(found.loan, None);
        assert!(
            original(&conn, "330108", "B1", 2, 1, "2026-11-26")
                .unwrap()
                .is_none()
        );

        // A cycle among the places ends the walk instead of looping.
        apply(
            &mut conn,
            "330106",
            &feed(vec![place(6, "K01", "room", Some("BOX-1"))]),
        )
        .unwrap();
        let found = original(&conn, "330106", "B1", 2, 1, "2026-11-26")
            .unwrap()
            .unwrap();
        assert_eq!(found.path.len(), 3);

        // Taken out of its volume: nothing recorded any more.
        apply(
            &mut conn,
            "330106",
            &feed(vec![event(
                7,
                WarehouseChange::FileVolume {
                    batch: "B1".to_owned(),
                    file_seq: 2,
                    business_number: None,
                    volume: None,
                },
            )]),
        )
        .unwrap();
        assert!(
            original(&conn, "330106", "B1", 2, 1, "2026-11-26")
                .unwrap()
                .is_none()
        );
        assert_eq!(count(&conn, "warehouse_events"), 7);
    }
}
