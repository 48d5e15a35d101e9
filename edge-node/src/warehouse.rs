//! Warehouse management (库房管理) of the paper originals: the location tree
//! (room 库房 → cabinet or compact-shelving column 列 → section 节 → shelf 层
//! → box 盒), volumes (案卷) in boxes, business files bound into volumes,
//! shelving, loans (借阅) and inventory checks (盘点).
//!
//! Rules kept here, whatever the caller:
//! - Codes are what the labels carry and handheld scanners type: upper-case
//!   letters, digits and `-`. Boxes are `BOX-…`, volumes `VOL-…`, and no
//!   other location may start with either, so a scanned code says what it is.
//! - Each location has one parent of the kind above it (a shelf may sit in
//!   a section or straight in a cabinet), so a box is in one place only;
//!   shelving moves it. A shelf's capacity counts boxes, a box's volumes;
//!   neither is ever exceeded.
//! - One loan at a time per volume or box, and none of a volume whose box
//!   is out (or of a box one of whose volumes is out).
//! - Every change is one transaction that also appends its event to
//!   `warehouse_events`, the feed the hub reads after sync
//!   ([`dangan_sync::wire::WarehouseChange`]); the feed is also the history.
use std::collections::{BTreeMap, HashMap, HashSet};

use dangan_sync::wire::{LoanRequest, WarehouseChange, WarehouseEvent};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::lifecycle::{Actor, Role};
use crate::store::{StoreError, now};
use crate::text::Lang;

/// The kinds of location, outermost first.
pub const KINDS: [&str; 5] = ["room", "cabinet", "section", "shelf", "box"];

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("{0:?} is not a valid code: use 2 to 32 upper-case letters, digits or '-'")]
    BadCode(String),
    #[error("{code:?}: a {kind} code must {rule}")]
    CodePrefix {
        code: String,
        kind: String,
        rule: &'static str,
    },
    #[error("unknown location kind {0:?}: use room, cabinet, section, shelf or box")]
    BadKind(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("nothing has the code {0:?}")]
    Unknown(String),
    #[error("a {kind} cannot be placed in {parent} (a {parent_kind})")]
    WrongParent {
        kind: String,
        parent: String,
        parent_kind: String,
    },
    #[error("a {kind} needs a parent location")]
    ParentRequired { kind: String },
    #[error("{code} is full: it holds {held} of {capacity}")]
    Full {
        code: String,
        held: u32,
        capacity: u32,
    },
    #[error("{0} is not a box")]
    NotABox(String),
    #[error("{0} is not a shelf: boxes are shelved on shelves")]
    NotAShelf(String),
    #[error("{0} is not a volume")]
    NotAVolume(String),
    #[error("{0} is not a volume or a box")]
    NotLendable(String),
    #[error("batch {batch:?} has no business file {file}")]
    NoSuchFile { batch: String, file: u32 },
    #[error("batch {batch:?} is {state}: only files of accepted batches can be bound into volumes")]
    BatchNotAccepted { batch: String, state: String },
    #[error("{item} is already on loan or requested (loan {loan})")]
    AlreadyOnLoan { item: String, loan: i64 },
    #[error("no loan {0}")]
    NoSuchLoan(i64),
    #[error("loan {loan} is {state}; it cannot be {action}")]
    LoanState {
        loan: i64,
        state: String,
        action: &'static str,
    },
    #[error("{who} ({role}) may not {what}")]
    Forbidden {
        who: String,
        role: String,
        what: &'static str,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("no inventory check {0}")]
    NoSuchCheck(i64),
    #[error("inventory check {0} is finished")]
    CheckFinished(i64),
    #[error("scan a location label before the boxes found there ({0})")]
    NoLocationYet(String),
    #[error("{item} is not a discrepancy of check {check}")]
    NotADiscrepancy { check: i64, item: String },
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for WarehouseError {
    fn from(err: rusqlite::Error) -> Self {
        WarehouseError::Store(err.into())
    }
}

impl WarehouseError {
    /// The message for an operator in `lang` (the `Display` text is English).
    pub fn text(&self, lang: Lang) -> String {
        if lang == Lang::En {
            return self.to_string();
        }
        use WarehouseError as E;
        match self {
            E::BadCode(code) => format!("“{code}”不是有效编号：须为 2–32 位大写字母、数字或“-”"),
            E::CodePrefix { code, kind, rule } => format!(
                "“{code}”：{}编号{}",
                kind_label(Lang::Zh, kind),
                match *rule {
                    "start with BOX-" => "须以 BOX- 开头",
                    "start with VOL-" => "须以 VOL- 开头",
                    _ => "不得以 BOX- 或 VOL- 开头",
                }
            ),
            E::BadKind(kind) => format!("未知的位置类型“{kind}”"),
            E::Exists(code) => format!("{code} 已存在"),
            E::Unknown(code) => format!("没有编号为“{code}”的库房位置、盒或卷"),
            E::WrongParent {
                kind,
                parent,
                parent_kind,
            } => format!(
                "{}不能放在{}（{}）中",
                kind_label(Lang::Zh, kind),
                kind_label(Lang::Zh, parent_kind),
                parent
            ),
            E::ParentRequired { kind } => format!("{}须指定上级位置", kind_label(Lang::Zh, kind)),
            E::Full {
                code,
                held,
                capacity,
            } => format!("{code} 已满：已放 {held}，容量 {capacity}"),
            E::NotABox(code) => format!("{code} 不是盒"),
            E::NotAShelf(code) => format!("{code} 不是层：盒只能上架到层"),
            E::NotAVolume(code) => format!("{code} 不是案卷"),
            E::NotLendable(code) => format!("{code} 不是案卷或盒，不能借阅"),
            E::NoSuchFile { batch, file } => format!("批次“{batch}”没有第 {file} 件"),
            E::BatchNotAccepted { batch, .. } => {
                format!("批次“{batch}”尚未验收通过，其业务件不能组卷")
            }
            E::AlreadyOnLoan { item, loan } => {
                format!("{item} 已借出或已有借阅申请（第 {loan} 号）")
            }
            E::NoSuchLoan(loan) => format!("没有第 {loan} 号借阅"),
            E::LoanState {
                loan,
                state,
                action,
            } => format!(
                "第 {loan} 号借阅当前为“{}”，不能{}",
                loan_state_label(Lang::Zh, state),
                match *action {
                    "approved" => "批准",
                    "refused" => "拒绝",
                    "lent" => "出借",
                    _ => "归还",
                }
            ),
            E::Forbidden { who, what, .. } => format!("{who} 无权{}", forbidden_zh(what)),
            E::Invalid(message) => message.clone(),
            E::NoSuchCheck(check) => format!("没有第 {check} 号盘点"),
            E::CheckFinished(check) => format!("第 {check} 号盘点已结束"),
            E::NoLocationYet(code) => format!("请先扫描位置标签，再扫描在该处找到的盒（{code}）"),
            E::NotADiscrepancy { check, item } => format!("{item} 不是第 {check} 号盘点的差异项"),
            E::Line { line, message } => format!("第 {line} 行：{message}"),
            E::Store(err) => err.to_string(),
        }
    }
}

/// What a refused caller may not do, in Chinese (the English text is the
/// `what` the checks name, here and in the API).
pub(crate) fn forbidden_zh(what: &str) -> &'static str {
    match what {
        "approve or refuse loans" => "审批借阅",
        "lend or take back originals" => "办理出借或归还",
        "set up warehouse locations" => "设置库房位置",
        "shelve boxes" => "上架",
        "manage volumes" => "管理案卷",
        "run inventory checks" => "盘点",
        _ => "执行此操作",
    }
}

/// A kind's name for people.
pub fn kind_label(lang: Lang, kind: &str) -> &'static str {
    match kind {
        "room" => lang.pick("库房", "room"),
        "cabinet" => lang.pick("列（柜）", "cabinet"),
        "section" => lang.pick("节", "section"),
        "shelf" => lang.pick("层", "shelf"),
        "box" => lang.pick("盒", "box"),
        "volume" => lang.pick("案卷", "volume"),
        _ => lang.pick("位置", "location"),
    }
}

/// A loan state's name for people.
pub fn loan_state_label(lang: Lang, state: &str) -> &'static str {
    match state {
        "requested" => lang.pick("待审批", "requested"),
        "approved" => lang.pick("已批准待出借", "approved"),
        "refused" => lang.pick("已拒绝", "refused"),
        "lent" => lang.pick("借出中", "on loan"),
        "returned" => lang.pick("已归还", "returned"),
        _ => lang.pick("未知", "unknown"),
    }
}

/// Checks a label code's shape and its prefix for `kind` (`volume` or a
/// location kind).
pub fn check_code(code: &str, kind: &str) -> Result<(), WarehouseError> {
    let shape = (2..=32).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        && !code.starts_with('-');
    if !shape {
        return Err(WarehouseError::BadCode(code.to_owned()));
    }
    let rule = match kind {
        "box" if !code.starts_with("BOX-") => Some("start with BOX-"),
        "volume" if !code.starts_with("VOL-") => Some("start with VOL-"),
        "box" | "volume" => None,
        _ if code.starts_with("BOX-") || code.starts_with("VOL-") => {
            Some("not start with BOX- or VOL-")
        }
        _ => None,
    };
    match rule {
        Some(rule) => Err(WarehouseError::CodePrefix {
            code: code.to_owned(),
            kind: kind.to_owned(),
            rule,
        }),
        None => Ok(()),
    }
}

/// The kinds a location of `kind` may be placed in.
fn parent_kinds(kind: &str) -> &'static [&'static str] {
    match kind {
        "cabinet" => &["room"],
        "section" => &["cabinet"],
        "shelf" => &["cabinet", "section"],
        "box" => &["shelf"],
        _ => &[],
    }
}

fn actor_name(actor: &Actor) -> String {
    match actor {
        Actor::User { name, .. } => name.clone(),
        Actor::System => "system".into(),
    }
}

fn require(actor: &Actor, roles: &[Role], what: &'static str) -> Result<(), WarehouseError> {
    match actor {
        Actor::System => Ok(()),
        Actor::User { role, .. } if *role == Role::Admin || roles.contains(role) => Ok(()),
        Actor::User { name, role } => Err(WarehouseError::Forbidden {
            who: name.clone(),
            role: role.as_str().into(),
            what,
        }),
    }
}

/// Appends one change to the warehouse feed (in the caller's transaction).
fn emit(
    tx: &Transaction<'_>,
    actor: &Actor,
    change: &WarehouseChange,
) -> Result<(), WarehouseError> {
    let body = serde_json::to_string(change)
        .map_err(|err| StoreError::Corrupt(format!("warehouse event: {err}")))?;
    let kind = serde_json::to_value(change)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
        .unwrap_or_default();
    tx.execute(
        "INSERT INTO warehouse_events(kind, body, actor, recorded_at) VALUES (?1, ?2, ?3, ?4)",
        params![kind, body, actor_name(actor), now()],
    )?;
    Ok(())
}

// ---------------------------------------------------------------- locations

/// One location as stored.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Location {
    pub code: String,
    pub kind: String,
    pub name: String,
    pub parent: Option<String>,
    pub capacity: Option<u32>,
    /// Boxes on a shelf, volumes in a box, child locations otherwise.
    pub held: u32,
}

/// What a new location is.
#[derive(Debug, Clone, Deserialize)]
pub struct NewLocation {
    pub code: String,
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub capacity: Option<u32>,
}

struct LocRow {
    id: i64,
    kind: String,
    name: String,
    parent_id: Option<i64>,
    capacity: Option<u32>,
}

fn loc_row(conn: &Connection, code: &str) -> Result<Option<LocRow>, WarehouseError> {
    Ok(conn
        .query_row(
            "SELECT id, kind, name, parent_id, capacity FROM locations WHERE code = ?1",
            [code],
            |row| {
                Ok(LocRow {
                    id: row.get(0)?,
                    kind: row.get(1)?,
                    name: row.get(2)?,
                    parent_id: row.get(3)?,
                    capacity: row.get(4)?,
                })
            },
        )
        .optional()?)
}

fn loc_code(conn: &Connection, id: i64) -> Result<String, WarehouseError> {
    Ok(
        conn.query_row("SELECT code FROM locations WHERE id = ?1", [id], |row| {
            row.get(0)
        })?,
    )
}

fn children_count(conn: &Connection, id: i64) -> Result<u32, WarehouseError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM locations WHERE parent_id = ?1",
        [id],
        |row| row.get(0),
    )?)
}

fn volumes_in(conn: &Connection, box_id: i64) -> Result<u32, WarehouseError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM volumes WHERE box_id = ?1",
        [box_id],
        |row| row.get(0),
    )?)
}

fn location_event(conn: &Connection, id: i64) -> Result<WarehouseChange, WarehouseError> {
    Ok(conn.query_row(
        "SELECT l.code, l.kind, l.name, p.code, l.capacity FROM locations l
         LEFT JOIN locations p ON p.id = l.parent_id WHERE l.id = ?1",
        [id],
        |row| {
            Ok(WarehouseChange::Location {
                code: row.get(0)?,
                location_kind: row.get(1)?,
                name: row.get(2)?,
                parent: row.get(3)?,
                capacity: row.get(4)?,
            })
        },
    )?)
}

/// Creates a location. A box may be created without a parent (not shelved
/// yet); every other kind but a room needs one of the kind above it.
pub fn create_location(
    conn: &mut Connection,
    new: &NewLocation,
    actor: &Actor,
) -> Result<Location, WarehouseError> {
    let kind = new.kind.as_str();
    if !KINDS.contains(&kind) {
        return Err(WarehouseError::BadKind(new.kind.clone()));
    }
    check_code(&new.code, kind)?;
    let name = new.name.trim();
    if name.chars().count() > 100 {
        return Err(WarehouseError::Invalid(
            "a location name is at most 100 characters".into(),
        ));
    }
    if new.capacity == Some(0) {
        return Err(WarehouseError::Invalid(
            "a capacity must be at least 1".into(),
        ));
    }
    let tx = conn.transaction()?;
    if loc_row(&tx, &new.code)?.is_some() {
        return Err(WarehouseError::Exists(new.code.clone()));
    }
    let parent_id = match new.parent.as_deref().filter(|p| !p.is_empty()) {
        None if kind == "room" || kind == "box" => None,
        None => {
            return Err(WarehouseError::ParentRequired { kind: kind.into() });
        }
        Some(parent) => {
            let row =
                loc_row(&tx, parent)?.ok_or_else(|| WarehouseError::Unknown(parent.into()))?;
            check_parent(&tx, kind, parent, &row, None)?;
            Some(row.id)
        }
    };
    let at = now();
    tx.execute(
        "INSERT INTO locations(code, kind, name, parent_id, capacity, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![new.code, kind, name, parent_id, new.capacity, at],
    )?;
    let id = tx.last_insert_rowid();
    emit(&tx, actor, &location_event(&tx, id)?)?;
    tx.commit()?;
    location(conn, &new.code)?.ok_or_else(|| WarehouseError::Unknown(new.code.clone()))
}

/// Whether a `kind` may go into `parent` now (kind rule and capacity);
/// `moving` is the id of a location being moved (not counted twice).
fn check_parent(
    conn: &Connection,
    kind: &str,
    parent_code: &str,
    parent: &LocRow,
    moving: Option<i64>,
) -> Result<(), WarehouseError> {
    if !parent_kinds(kind).contains(&parent.kind.as_str()) {
        return Err(if kind == "box" {
            WarehouseError::NotAShelf(parent_code.into())
        } else {
            WarehouseError::WrongParent {
                kind: kind.into(),
                parent: parent_code.into(),
                parent_kind: parent.kind.clone(),
            }
        });
    }
    if let Some(capacity) = parent.capacity {
        let held = children_count(conn, parent.id)?;
        let already_there = match moving {
            Some(id) => {
                conn.query_row(
                    "SELECT parent_id FROM locations WHERE id = ?1",
                    [id],
                    |row| row.get::<_, Option<i64>>(0),
                )? == Some(parent.id)
            }
            None => false,
        };
        if !already_there && held >= capacity {
            return Err(WarehouseError::Full {
                code: parent_code.into(),
                held,
                capacity,
            });
        }
    }
    Ok(())
}

/// One location with what it holds.
pub fn location(conn: &Connection, code: &str) -> Result<Option<Location>, WarehouseError> {
    let Some(row) = loc_row(conn, code)? else {
        return Ok(None);
    };
    let parent = row.parent_id.map(|id| loc_code(conn, id)).transpose()?;
    let held = if row.kind == "box" {
        volumes_in(conn, row.id)?
    } else {
        children_count(conn, row.id)?
    };
    Ok(Some(Location {
        code: code.to_owned(),
        kind: row.kind,
        name: row.name,
        parent,
        capacity: row.capacity,
        held,
    }))
}

/// Every location, parents before children, siblings by code.
pub fn locations(conn: &Connection) -> Result<Vec<Location>, WarehouseError> {
    let mut stmt = conn.prepare(
        "SELECT l.code, l.kind, l.name, p.code, l.capacity,
                CASE l.kind WHEN 'box' THEN (SELECT count(*) FROM volumes v WHERE v.box_id = l.id)
                            ELSE (SELECT count(*) FROM locations c WHERE c.parent_id = l.id) END
         FROM locations l LEFT JOIN locations p ON p.id = l.parent_id ORDER BY l.code",
    )?;
    let all = stmt
        .query_map([], |row| {
            Ok(Location {
                code: row.get(0)?,
                kind: row.get(1)?,
                name: row.get(2)?,
                parent: row.get(3)?,
                capacity: row.get(4)?,
                held: row.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    // Depth-first from the roots (rooms and unshelved boxes).
    let mut by_parent: BTreeMap<Option<String>, Vec<Location>> = BTreeMap::new();
    for loc in all {
        by_parent.entry(loc.parent.clone()).or_default().push(loc);
    }
    let mut out = Vec::new();
    let mut stack: Vec<Location> = by_parent.remove(&None).unwrap_or_default();
    stack.reverse();
    while let Some(loc) = stack.pop() {
        if let Some(mut children) = by_parent.remove(&Some(loc.code.clone())) {
            children.reverse();
            stack.extend(children);
        }
        out.push(loc);
    }
    Ok(out)
}

/// The chain of locations from the room down to `code` (inclusive).
pub fn path(conn: &Connection, code: &str) -> Result<Vec<Location>, WarehouseError> {
    let mut chain = Vec::new();
    let mut next = Some(code.to_owned());
    while let Some(code) = next {
        let Some(loc) = location(conn, &code)? else {
            break;
        };
        next = loc.parent.clone();
        chain.push(loc);
        if chain.len() > KINDS.len() {
            break;
        }
    }
    chain.reverse();
    Ok(chain)
}

/// Puts a box on a shelf (scanning its label, then the shelf's). Moving it
/// from where it was is the same act; shelving it where it already is
/// changes nothing. Returns whether anything changed.
pub fn shelve(
    conn: &mut Connection,
    box_code: &str,
    shelf_code: &str,
    actor: &Actor,
) -> Result<bool, WarehouseError> {
    let tx = conn.transaction()?;
    let changed = shelve_in(&tx, box_code, shelf_code, actor)?;
    tx.commit()?;
    Ok(changed)
}

fn shelve_in(
    tx: &Transaction<'_>,
    box_code: &str,
    shelf_code: &str,
    actor: &Actor,
) -> Result<bool, WarehouseError> {
    let boxed = loc_row(tx, box_code)?.ok_or_else(|| WarehouseError::Unknown(box_code.into()))?;
    if boxed.kind != "box" {
        return Err(WarehouseError::NotABox(box_code.into()));
    }
    let shelf =
        loc_row(tx, shelf_code)?.ok_or_else(|| WarehouseError::Unknown(shelf_code.into()))?;
    if boxed.parent_id == Some(shelf.id) {
        return Ok(false);
    }
    check_parent(tx, "box", shelf_code, &shelf, Some(boxed.id))?;
    tx.execute(
        "UPDATE locations SET parent_id = ?1, updated_at = ?2 WHERE id = ?3",
        params![shelf.id, now(), boxed.id],
    )?;
    emit(tx, actor, &location_event(tx, boxed.id)?)?;
    Ok(true)
}

/// Shelving from a CSV of `box,shelf` lines (a header line is allowed;
/// blank lines and `#` comments are skipped). All or nothing: one bad line
/// changes nothing and names the line. Returns how many boxes moved.
pub fn shelve_csv(
    conn: &mut Connection,
    csv: &str,
    actor: &Actor,
) -> Result<usize, WarehouseError> {
    let tx = conn.transaction()?;
    let mut moved = 0;
    for (index, line) in csv.lines().enumerate() {
        let line_no = index + 1;
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split([',', '\t', ';']).map(str::trim).collect();
        let [box_code, shelf_code] = fields[..] else {
            return Err(WarehouseError::Line {
                line: line_no,
                message: format!("expected two fields, box,shelf; found {}", fields.len()),
            });
        };
        if line_no == 1 && !box_code.starts_with("BOX-") {
            continue; // a header
        }
        let (box_code, shelf_code) = (box_code.to_uppercase(), shelf_code.to_uppercase());
        match shelve_in(&tx, &box_code, &shelf_code, actor) {
            Ok(changed) => moved += usize::from(changed),
            Err(err) => {
                return Err(WarehouseError::Line {
                    line: line_no,
                    message: err.to_string(),
                });
            }
        }
    }
    tx.commit()?;
    Ok(moved)
}

/// A room as a grid: one column per cabinet, one cell per shelf, top down.
#[derive(Debug, Clone, Serialize)]
pub struct RoomGrid {
    pub room: Location,
    pub columns: Vec<GridColumn>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GridColumn {
    pub cabinet: Location,
    pub cells: Vec<GridCell>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GridCell {
    /// The section the shelf is in, if any.
    pub section: Option<String>,
    pub shelf: Location,
    /// The boxes on the shelf, by code.
    pub boxes: Vec<String>,
}

/// The grid of a room, for the occupancy view.
pub fn room_grid(conn: &Connection, room: &str) -> Result<RoomGrid, WarehouseError> {
    let room_loc = location(conn, room)?.ok_or_else(|| WarehouseError::Unknown(room.into()))?;
    if room_loc.kind != "room" {
        return Err(WarehouseError::Invalid(format!("{room} is not a room")));
    }
    let all = locations(conn)?;
    let children = |code: &str| -> Vec<&Location> {
        all.iter()
            .filter(|l| l.parent.as_deref() == Some(code))
            .collect()
    };
    let mut columns = Vec::new();
    for cabinet in children(room) {
        let mut cells = Vec::new();
        for child in children(&cabinet.code) {
            let shelves: Vec<(Option<String>, &Location)> = match child.kind.as_str() {
                "section" => children(&child.code)
                    .into_iter()
                    .map(|s| (Some(child.code.clone()), s))
                    .collect(),
                _ => vec![(None, child)],
            };
            for (section, shelf) in shelves {
                if shelf.kind != "shelf" {
                    continue;
                }
                let boxes = children(&shelf.code)
                    .into_iter()
                    .map(|b| b.code.clone())
                    .collect();
                cells.push(GridCell {
                    section,
                    shelf: shelf.clone(),
                    boxes,
                });
            }
        }
        columns.push(GridColumn {
            cabinet: cabinet.clone(),
            cells,
        });
    }
    Ok(RoomGrid {
        room: room_loc,
        columns,
    })
}

// ------------------------------------------------------------------ volumes

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Volume {
    pub code: String,
    pub title: String,
    #[serde(rename = "box")]
    pub box_code: Option<String>,
    pub retention: Option<String>,
    pub date_from: Option<String>,
    pub date_to: Option<String>,
    pub files: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NewVolume {
    pub code: String,
    pub title: String,
    #[serde(default, rename = "box")]
    pub box_code: Option<String>,
    #[serde(default)]
    pub retention: Option<String>,
}

const VOLUME_COLUMNS: &str = "v.code, v.title, b.code, v.retention, v.date_from, v.date_to,
    (SELECT count(*) FROM volume_files f WHERE f.volume_id = v.id)";

fn volume_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<Volume> {
    Ok(Volume {
        code: row.get(0)?,
        title: row.get(1)?,
        box_code: row.get(2)?,
        retention: row.get(3)?,
        date_from: row.get(4)?,
        date_to: row.get(5)?,
        files: row.get(6)?,
    })
}

pub fn volume(conn: &Connection, code: &str) -> Result<Option<Volume>, WarehouseError> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {VOLUME_COLUMNS} FROM volumes v LEFT JOIN locations b ON b.id = v.box_id
                 WHERE v.code = ?1"
            ),
            [code],
            volume_from,
        )
        .optional()?)
}

/// Volumes, by code; only those in `box_code` when given.
pub fn volumes(conn: &Connection, box_code: Option<&str>) -> Result<Vec<Volume>, WarehouseError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {VOLUME_COLUMNS} FROM volumes v LEFT JOIN locations b ON b.id = v.box_id
         WHERE ?1 IS NULL OR b.code = ?1 ORDER BY v.code"
    ))?;
    Ok(stmt
        .query_map([box_code], volume_from)?
        .collect::<Result<Vec<_>, _>>()?)
}

fn volume_event(conn: &Connection, code: &str) -> Result<WarehouseChange, WarehouseError> {
    let v = volume(conn, code)?.ok_or_else(|| WarehouseError::Unknown(code.into()))?;
    Ok(WarehouseChange::Volume {
        code: v.code,
        title: v.title,
        box_code: v.box_code,
        retention: v.retention,
        date_from: v.date_from,
        date_to: v.date_to,
    })
}

fn box_for_volume(tx: &Transaction<'_>, box_code: &str) -> Result<i64, WarehouseError> {
    let boxed = loc_row(tx, box_code)?.ok_or_else(|| WarehouseError::Unknown(box_code.into()))?;
    if boxed.kind != "box" {
        return Err(WarehouseError::NotABox(box_code.into()));
    }
    if let Some(capacity) = boxed.capacity {
        let held = volumes_in(tx, boxed.id)?;
        if held >= capacity {
            return Err(WarehouseError::Full {
                code: box_code.into(),
                held,
                capacity,
            });
        }
    }
    Ok(boxed.id)
}

pub fn create_volume(
    conn: &mut Connection,
    new: &NewVolume,
    actor: &Actor,
) -> Result<Volume, WarehouseError> {
    check_code(&new.code, "volume")?;
    let title = new.title.trim();
    if title.is_empty() || title.chars().count() > 100 {
        return Err(WarehouseError::Invalid(
            "a volume needs a title of at most 100 characters".into(),
        ));
    }
    let tx = conn.transaction()?;
    if volume(&tx, &new.code)?.is_some() {
        return Err(WarehouseError::Exists(new.code.clone()));
    }
    let box_id = match new.box_code.as_deref().filter(|b| !b.is_empty()) {
        Some(code) => Some(box_for_volume(&tx, code)?),
        None => None,
    };
    let at = now();
    tx.execute(
        "INSERT INTO volumes(code, title, box_id, retention, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![new.code, title, box_id, new.retention, at],
    )?;
    emit(&tx, actor, &volume_event(&tx, &new.code)?)?;
    tx.commit()?;
    volume(conn, &new.code)?.ok_or_else(|| WarehouseError::Unknown(new.code.clone()))
}

/// Puts a volume into a box (scanning the volume's label, then the box's).
pub fn box_volume(
    conn: &mut Connection,
    volume_code: &str,
    box_code: &str,
    actor: &Actor,
) -> Result<bool, WarehouseError> {
    let tx = conn.transaction()?;
    let current =
        volume(&tx, volume_code)?.ok_or_else(|| WarehouseError::Unknown(volume_code.into()))?;
    if current.box_code.as_deref() == Some(box_code) {
        return Ok(false);
    }
    let box_id = box_for_volume(&tx, box_code)?;
    tx.execute(
        "UPDATE volumes SET box_id = ?1, updated_at = ?2 WHERE code = ?3",
        params![box_id, now(), volume_code],
    )?;
    emit(&tx, actor, &volume_event(&tx, volume_code)?)?;
    tx.commit()?;
    Ok(true)
}

/// Binds business file `file` of `batch` into a volume (or takes it out
/// with `None`). Only files of accepted batches: their numbering is final
/// and is what the hub archives. The volume's date range follows its files.
pub fn file_into_volume(
    conn: &mut Connection,
    batch: &str,
    file: u32,
    volume_code: Option<&str>,
    actor: &Actor,
) -> Result<(), WarehouseError> {
    let tx = conn.transaction()?;
    let state: Option<String> = tx
        .query_row(
            "SELECT state FROM batches WHERE name = ?1",
            [batch],
            |row| row.get(0),
        )
        .optional()?;
    let Some(state) = state else {
        return Err(WarehouseError::NoSuchFile {
            batch: batch.into(),
            file,
        });
    };
    if !matches!(state.as_str(), "accepted" | "syncing" | "archived") {
        return Err(WarehouseError::BatchNotAccepted {
            batch: batch.into(),
            state,
        });
    }
    let found: Option<(i64, Option<String>)> = tx
        .query_row(
            "SELECT f.id, f.business_number FROM business_files f JOIN batches b ON b.id = f.batch_id
             WHERE b.name = ?1 AND f.seq = ?2",
            params![batch, file],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let (file_id, business_number) = found.ok_or_else(|| WarehouseError::NoSuchFile {
        batch: batch.into(),
        file,
    })?;
    let before: Option<String> = tx
        .query_row(
            "SELECT v.code FROM volume_files f JOIN volumes v ON v.id = f.volume_id
             WHERE f.business_file_id = ?1",
            [file_id],
            |row| row.get(0),
        )
        .optional()?;
    if before.as_deref() == volume_code {
        return Ok(());
    }
    tx.execute(
        "DELETE FROM volume_files WHERE business_file_id = ?1",
        [file_id],
    )?;
    if let Some(code) = volume_code {
        let volume_id: i64 = tx
            .query_row("SELECT id FROM volumes WHERE code = ?1", [code], |row| {
                row.get(0)
            })
            .optional()?
            .ok_or_else(|| WarehouseError::NotAVolume(code.into()))?;
        tx.execute(
            "INSERT INTO volume_files(business_file_id, volume_id, actor, at) VALUES (?1, ?2, ?3, ?4)",
            params![file_id, volume_id, actor_name(actor), now()],
        )?;
    }
    for code in before.iter().chain(volume_code.map(str::to_owned).iter()) {
        let changed = tx.execute(
            "UPDATE volumes SET
                date_from = (SELECT min(f.business_date) FROM volume_files vf
                             JOIN business_files f ON f.id = vf.business_file_id WHERE vf.volume_id = volumes.id),
                date_to = (SELECT max(f.business_date) FROM volume_files vf
                           JOIN business_files f ON f.id = vf.business_file_id WHERE vf.volume_id = volumes.id),
                updated_at = ?2
             WHERE code = ?1 AND (date_from IS NOT (SELECT min(f.business_date) FROM volume_files vf
                             JOIN business_files f ON f.id = vf.business_file_id WHERE vf.volume_id = volumes.id)
                  OR date_to IS NOT (SELECT max(f.business_date) FROM volume_files vf
                           JOIN business_files f ON f.id = vf.business_file_id WHERE vf.volume_id = volumes.id))",
            params![code, now()],
        )?;
        if changed > 0 {
            emit(&tx, actor, &volume_event(&tx, code)?)?;
        }
    }
    emit(
        &tx,
        actor,
        &WarehouseChange::FileVolume {
            batch: batch.into(),
            file_seq: file,
            business_number,
            volume: volume_code.map(str::to_owned),
        },
    )?;
    tx.commit()?;
    Ok(())
}

/// Where a business file's paper original is: its volume, the volume's box
/// and the box's place, and the current loan of any of them.
#[derive(Debug, Clone, Serialize)]
pub struct Original {
    pub volume: Volume,
    /// From the room down to the box.
    pub path: Vec<Location>,
    pub loan: Option<Loan>,
}

/// The original of business file `file_id` (the edge's row id), if bound.
pub fn original_of_file(
    conn: &Connection,
    file_id: i64,
    today: &str,
) -> Result<Option<Original>, WarehouseError> {
    let code: Option<String> = conn
        .query_row(
            "SELECT v.code FROM volume_files f JOIN volumes v ON v.id = f.volume_id
             WHERE f.business_file_id = ?1",
            [file_id],
            |row| row.get(0),
        )
        .optional()?;
    code.map(|code| original_of_volume(conn, &code, today))
        .transpose()
        .map(Option::flatten)
}

pub fn original_of_volume(
    conn: &Connection,
    code: &str,
    today: &str,
) -> Result<Option<Original>, WarehouseError> {
    let Some(volume) = volume(conn, code)? else {
        return Ok(None);
    };
    let path = match &volume.box_code {
        Some(box_code) => path(conn, box_code)?,
        None => Vec::new(),
    };
    let loan = current_loan(conn, code, volume.box_code.as_deref(), today)?;
    Ok(Some(Original { volume, path, loan }))
}

// -------------------------------------------------------------------- loans

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Loan {
    pub id: i64,
    pub item: String,
    pub state: String,
    pub borrower: String,
    pub purpose: String,
    pub due_date: String,
    pub requested_by: String,
    pub requested_at: String,
    pub approved_by: Option<String>,
    pub approved_at: Option<String>,
    pub lent_by: Option<String>,
    pub lent_at: Option<String>,
    pub returned_to: Option<String>,
    pub returned_at: Option<String>,
    pub note: Option<String>,
    pub hub_request: Option<u64>,
    /// Lent and past its due date (in the edge's time zone).
    pub overdue: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NewLoan {
    pub item: String,
    pub borrower: String,
    pub purpose: String,
    pub due_date: String,
}

const LOAN_COLUMNS: &str = "id, item, state, borrower, purpose, due_date, requested_by,
    requested_at, approved_by, approved_at, lent_by, lent_at, returned_to, returned_at, note,
    hub_request";

fn loan_from(row: &rusqlite::Row<'_>, today: &str) -> rusqlite::Result<Loan> {
    let state: String = row.get(2)?;
    let due_date: String = row.get(5)?;
    Ok(Loan {
        id: row.get(0)?,
        item: row.get(1)?,
        overdue: state == "lent" && due_date.as_str() < today,
        state,
        borrower: row.get(3)?,
        purpose: row.get(4)?,
        due_date,
        requested_by: row.get(6)?,
        requested_at: row.get(7)?,
        approved_by: row.get(8)?,
        approved_at: row.get(9)?,
        lent_by: row.get(10)?,
        lent_at: row.get(11)?,
        returned_to: row.get(12)?,
        returned_at: row.get(13)?,
        note: row.get(14)?,
        hub_request: row.get::<_, Option<i64>>(15)?.map(|v| v as u64),
    })
}

pub fn loan(conn: &Connection, id: i64, today: &str) -> Result<Loan, WarehouseError> {
    conn.query_row(
        &format!("SELECT {LOAN_COLUMNS} FROM loans WHERE id = ?1"),
        [id],
        |row| loan_from(row, today),
    )
    .optional()?
    .ok_or(WarehouseError::NoSuchLoan(id))
}

/// Which loans to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LoanFilter {
    /// Requested, approved or lent.
    #[default]
    Open,
    /// Lent past the due date.
    Overdue,
    /// Every loan ever, newest first.
    All,
}

pub fn loans(
    conn: &Connection,
    filter: LoanFilter,
    item: Option<&str>,
    today: &str,
) -> Result<Vec<Loan>, WarehouseError> {
    let condition = match filter {
        LoanFilter::Open => "state IN ('requested','approved','lent')",
        LoanFilter::Overdue => "state = 'lent' AND due_date < ?2",
        LoanFilter::All => "1",
    };
    let order = match filter {
        LoanFilter::Overdue => "due_date, id",
        _ => "id DESC",
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT {LOAN_COLUMNS} FROM loans WHERE {condition} AND (?1 IS NULL OR item = ?1)
         AND ?2 = ?2 ORDER BY {order}"
    ))?;
    Ok(stmt
        .query_map(params![item, today], |row| loan_from(row, today))?
        .collect::<Result<Vec<_>, _>>()?)
}

/// The open loan of a volume, or of the box it is in.
fn current_loan(
    conn: &Connection,
    item: &str,
    other: Option<&str>,
    today: &str,
) -> Result<Option<Loan>, WarehouseError> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {LOAN_COLUMNS} FROM loans WHERE item IN (?1, ?2)
                 AND state IN ('requested','approved','lent') ORDER BY id LIMIT 1"
            ),
            params![item, other],
            |row| loan_from(row, today),
        )
        .optional()?)
}

/// The open loan of `item` itself or of anything it contains or is in: a
/// box's volumes, a volume's box.
fn blocking_loan(tx: &Connection, item: &str, today: &str) -> Result<Option<Loan>, WarehouseError> {
    let related: Vec<String> = if item.starts_with("BOX-") {
        let mut stmt = tx.prepare(
            "SELECT v.code FROM volumes v JOIN locations b ON b.id = v.box_id WHERE b.code = ?1",
        )?;
        stmt.query_map([item], |row| row.get(0))?
            .collect::<Result<_, _>>()?
    } else {
        volume(tx, item)?
            .and_then(|v| v.box_code)
            .into_iter()
            .collect()
    };
    if let Some(loan) = current_loan(tx, item, None, today)? {
        return Ok(Some(loan));
    }
    for other in related {
        if let Some(loan) = current_loan(tx, &other, None, today)? {
            return Ok(Some(loan));
        }
    }
    Ok(None)
}

fn loan_event(conn: &Connection, id: i64) -> Result<WarehouseChange, WarehouseError> {
    let l = loan(conn, id, "")?;
    Ok(WarehouseChange::Loan {
        loan: u64::try_from(l.id).unwrap_or_default(),
        item: l.item,
        state: l.state,
        borrower: l.borrower,
        purpose: l.purpose,
        due_date: l.due_date,
        requested_by: l.requested_by,
        approved_by: l.approved_by,
        lent_at: l.lent_at,
        returned_at: l.returned_at,
        hub_request: l.hub_request,
    })
}

fn valid_date(text: &str) -> bool {
    text.len() == 10 && text.parse::<jiff::civil::Date>().is_ok()
}

/// Asks to borrow a volume or a box. Any archive-room user may ask.
pub fn request_loan(
    conn: &mut Connection,
    new: &NewLoan,
    actor: &Actor,
    today: &str,
) -> Result<Loan, WarehouseError> {
    let tx = conn.transaction()?;
    let id = insert_loan(&tx, new, &actor_name(actor), None, today)?;
    emit(&tx, actor, &loan_event(&tx, id)?)?;
    tx.commit()?;
    loan(conn, id, today)
}

fn insert_loan(
    tx: &Transaction<'_>,
    new: &NewLoan,
    requested_by: &str,
    hub_request: Option<u64>,
    today: &str,
) -> Result<i64, WarehouseError> {
    let item = new.item.trim().to_uppercase();
    let known = if item.starts_with("VOL-") {
        volume(tx, &item)?.is_some()
    } else if item.starts_with("BOX-") {
        loc_row(tx, &item)?.is_some()
    } else {
        return Err(WarehouseError::NotLendable(item));
    };
    if !known {
        return Err(WarehouseError::Unknown(item));
    }
    let borrower = new.borrower.trim();
    let purpose = new.purpose.trim();
    if borrower.is_empty() || purpose.is_empty() {
        return Err(WarehouseError::Invalid(
            "a loan needs a borrower and a purpose (借阅人、借阅目的)".into(),
        ));
    }
    if !valid_date(&new.due_date) || new.due_date.as_str() < today {
        return Err(WarehouseError::Invalid(format!(
            "the due date {:?} must be a date (YYYY-MM-DD) no earlier than today, {today}",
            new.due_date
        )));
    }
    if let Some(open) = blocking_loan(tx, &item, today)? {
        return Err(WarehouseError::AlreadyOnLoan {
            item,
            loan: open.id,
        });
    }
    tx.execute(
        "INSERT INTO loans(item, state, borrower, purpose, due_date, requested_by, requested_at, hub_request)
         VALUES (?1, 'requested', ?2, ?3, ?4, ?5, ?6, ?7)",
        params![item, borrower, purpose, new.due_date, requested_by, now(), hub_request.map(|v| v as i64)],
    )?;
    Ok(tx.last_insert_rowid())
}

/// A step of a loan's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoanStep {
    /// The district's archive admin approves (审批).
    Approve,
    /// … or refuses, with a note.
    Refuse,
    /// The original is handed over (出借).
    Lend,
    /// The original is back (归还).
    Return,
}

/// Takes a loan one step on. Approving and refusing are the archive
/// admin's; lending and taking back are operators' and admins'.
pub fn loan_step(
    conn: &mut Connection,
    id: i64,
    step: LoanStep,
    note: Option<&str>,
    actor: &Actor,
    today: &str,
) -> Result<Loan, WarehouseError> {
    let (from, to, action) = match step {
        LoanStep::Approve => ("requested", "approved", "approved"),
        LoanStep::Refuse => ("requested", "refused", "refused"),
        LoanStep::Lend => ("approved", "lent", "lent"),
        LoanStep::Return => ("lent", "returned", "returned"),
    };
    match step {
        LoanStep::Approve | LoanStep::Refuse => require(actor, &[], "approve or refuse loans")?,
        LoanStep::Lend | LoanStep::Return => {
            require(actor, &[Role::Operator], "lend or take back originals")?;
        }
    }
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    if step == LoanStep::Refuse && note.is_none() {
        return Err(WarehouseError::Invalid(
            "say why the loan is refused (拒绝须说明理由)".into(),
        ));
    }
    let tx = conn.transaction()?;
    let current = loan(&tx, id, today)?;
    if current.state != from {
        return Err(WarehouseError::LoanState {
            loan: id,
            state: current.state,
            action,
        });
    }
    let who = actor_name(actor);
    let at = now();
    let column = match step {
        LoanStep::Approve | LoanStep::Refuse => "approved",
        LoanStep::Lend => "lent",
        LoanStep::Return => "returned",
    };
    let (by, when) = match column {
        "approved" => ("approved_by", "approved_at"),
        "lent" => ("lent_by", "lent_at"),
        _ => ("returned_to", "returned_at"),
    };
    tx.execute(
        &format!(
            "UPDATE loans SET state = ?1, {by} = ?2, {when} = ?3, note = coalesce(?4, note) WHERE id = ?5"
        ),
        params![to, who, at, note, id],
    )?;
    emit(&tx, actor, &loan_event(&tx, id)?)?;
    tx.commit()?;
    loan(conn, id, today)
}

/// Records the hub reviewers' loan requests read from the hub's feed, and
/// the cursor, in one transaction; a request seen before adds nothing.
/// A request that cannot be recorded as asked (unknown item, already out)
/// is recorded refused, with the reason, so the hub learns the outcome.
pub fn apply_loan_requests(
    conn: &mut Connection,
    requests: &[LoanRequest],
    next: u64,
    today: &str,
) -> Result<usize, WarehouseError> {
    let tx = conn.transaction()?;
    let mut added = 0;
    for request in requests {
        let seen: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM loans WHERE hub_request = ?1)",
            [request.seq as i64],
            |row| row.get(0),
        )?;
        if seen {
            continue;
        }
        let actor = Actor::System;
        let new = NewLoan {
            item: request.item.clone(),
            borrower: request.borrower.clone(),
            purpose: request.purpose.clone(),
            due_date: request.due_date.clone(),
        };
        let requested_by = format!("hub:{}", request.requested_by);
        let id = match insert_loan(&tx, &new, &requested_by, Some(request.seq), today) {
            Ok(id) => id,
            Err(err) => {
                tx.execute(
                    "INSERT INTO loans(item, state, borrower, purpose, due_date, requested_by,
                                       requested_at, hub_request, note, approved_by, approved_at)
                     VALUES (?1, 'refused', ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'system', ?6)",
                    params![
                        request.item,
                        request.borrower,
                        request.purpose,
                        request.due_date,
                        requested_by,
                        now(),
                        request.seq as i64,
                        err.text(Lang::Zh)
                    ],
                )?;
                tx.last_insert_rowid()
            }
        };
        emit(&tx, &actor, &loan_event(&tx, id)?)?;
        added += 1;
    }
    tx.execute(
        "INSERT INTO feed_cursors(feed, cursor, updated_at) VALUES ('loan_requests', ?1, ?2)
         ON CONFLICT(feed) DO UPDATE SET cursor = max(cursor, excluded.cursor), updated_at = excluded.updated_at",
        params![next as i64, now()],
    )?;
    tx.commit()?;
    Ok(added)
}

/// Where the hub's loan-request feed was last read to.
pub fn loan_request_cursor(conn: &Connection) -> Result<u64, WarehouseError> {
    Ok(conn
        .query_row(
            "SELECT cursor FROM feed_cursors WHERE feed = 'loan_requests'",
            [],
            |row| row.get::<_, i64>(0),
        )
        .optional()?
        .map_or(0, |v| v as u64))
}

// --------------------------------------------------------- inventory checks

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: i64,
    pub root: String,
    pub state: String,
    pub started_by: String,
    pub started_at: String,
    pub finished_by: Option<String>,
    pub finished_at: Option<String>,
    /// The location label scanned last (boxes scanned next are found there).
    pub current_location: Option<String>,
    /// The box label scanned last (volumes scanned next are found in it).
    pub current_box: Option<String>,
    pub scans: u32,
}

/// One discrepancy of a check.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Discrepancy {
    /// `missing`, `unexpected`, `misplaced` or `on_loan` (expected, not
    /// found, but out on loan: not a discrepancy to resolve).
    pub kind: String,
    pub item: String,
    /// Where the system has it (None: nowhere, or unknown code).
    pub expected: Option<String>,
    /// Where it was scanned.
    pub found: Option<String>,
    pub resolution: Option<Resolution>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Resolution {
    pub action: String,
    pub note: String,
    pub by: String,
    pub at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub check: Check,
    /// How many items the system expected in the subtree.
    pub expected: u32,
    /// How many of them were found where expected.
    pub found: u32,
    pub discrepancies: Vec<Discrepancy>,
}

/// What a scan did, for the operator's screen.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ScanOutcome {
    pub code: String,
    /// `location`, `box`, `volume` or `unknown`.
    pub kind: String,
    /// Where the item was found (for a box or volume).
    pub found: Option<String>,
    /// Where the system has it.
    pub expected: Option<String>,
}

fn check_row(conn: &Connection, id: i64) -> Result<Check, WarehouseError> {
    conn.query_row(
        "SELECT c.id, r.code, c.state, c.started_by, c.started_at, c.finished_by, c.finished_at,
                c.current_location, c.current_box,
                (SELECT count(*) FROM check_scans s WHERE s.check_id = c.id)
         FROM checks c JOIN locations r ON r.id = c.root_id WHERE c.id = ?1",
        [id],
        |row| {
            Ok(Check {
                id: row.get(0)?,
                root: row.get(1)?,
                state: row.get(2)?,
                started_by: row.get(3)?,
                started_at: row.get(4)?,
                finished_by: row.get(5)?,
                finished_at: row.get(6)?,
                current_location: row.get(7)?,
                current_box: row.get(8)?,
                scans: row.get(9)?,
            })
        },
    )
    .optional()?
    .ok_or(WarehouseError::NoSuchCheck(id))
}

pub fn checks(conn: &Connection) -> Result<Vec<Check>, WarehouseError> {
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM checks ORDER BY id DESC LIMIT 200")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    ids.into_iter().map(|id| check_row(conn, id)).collect()
}

/// Starts an inventory check of `root` and everything under it: what the
/// system expects there is taken now (each box with its shelf, each volume
/// with its box), so moves during the check do not change the question.
pub fn start_check(
    conn: &mut Connection,
    root: &str,
    actor: &Actor,
) -> Result<Check, WarehouseError> {
    let tx = conn.transaction()?;
    let root_row = loc_row(&tx, root)?.ok_or_else(|| WarehouseError::Unknown(root.into()))?;
    tx.execute(
        "INSERT INTO checks(root_id, state, started_by, started_at) VALUES (?1, 'open', ?2, ?3)",
        params![root_row.id, actor_name(actor), now()],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute(
        "WITH RECURSIVE sub(id) AS (SELECT ?2 UNION ALL
             SELECT l.id FROM locations l JOIN sub ON l.parent_id = sub.id)
         INSERT INTO check_expected(check_id, item, kind, location)
         SELECT ?1, b.code, 'box', p.code FROM locations b JOIN sub ON sub.id = b.id
             JOIN locations p ON p.id = b.parent_id WHERE b.kind = 'box' AND b.id != ?2
         UNION ALL
         SELECT ?1, v.code, 'volume', b.code FROM volumes v JOIN locations b ON b.id = v.box_id
             JOIN sub ON sub.id = b.id",
        params![id, root_row.id],
    )?;
    emit(&tx, actor, &check_event(&tx, id)?)?;
    tx.commit()?;
    check_row(conn, id)
}

/// Records scanned codes in order, as a handheld types them or as its file
/// lists them: a location label says where the next boxes are, a box label
/// records the box there (and the volumes scanned next are in it), a volume
/// label records the volume in the current box.
pub fn scan(
    conn: &mut Connection,
    check: i64,
    codes: &[String],
    actor: &Actor,
) -> Result<Vec<ScanOutcome>, WarehouseError> {
    let tx = conn.transaction()?;
    let current = check_row(&tx, check)?;
    if current.state != "open" {
        return Err(WarehouseError::CheckFinished(check));
    }
    let mut location_ctx = current.current_location;
    let mut box_ctx = current.current_box;
    let mut outcomes = Vec::new();
    let who = actor_name(actor);
    for raw in codes {
        let code = raw.trim().to_uppercase();
        if code.is_empty() {
            continue;
        }
        let (kind, found, expected) = if code.starts_with("VOL-") {
            let expected = volume(&tx, &code)?.map(|v| v.box_code);
            let found = box_ctx.clone().or_else(|| location_ctx.clone());
            if found.is_none() {
                return Err(WarehouseError::NoLocationYet(code));
            }
            match expected {
                Some(expected) => ("volume", found, expected),
                None => ("unknown", found, None),
            }
        } else {
            match loc_row(&tx, &code)? {
                Some(row) if row.kind == "box" => {
                    let Some(found) = location_ctx.clone() else {
                        return Err(WarehouseError::NoLocationYet(code));
                    };
                    box_ctx = Some(code.clone());
                    let expected = row.parent_id.map(|id| loc_code(&tx, id)).transpose()?;
                    ("box", Some(found), expected)
                }
                Some(_) => {
                    location_ctx = Some(code.clone());
                    box_ctx = None;
                    ("location", None, None)
                }
                None => {
                    // An unknown code that is not a volume's is taken for a box.
                    let found = location_ctx.clone();
                    if found.is_none() {
                        return Err(WarehouseError::NoLocationYet(code));
                    }
                    ("unknown", found, None)
                }
            }
        };
        tx.execute(
            "INSERT INTO check_scans(check_id, code, kind, found, scanned_by, scanned_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![check, code, kind, found, who, now()],
        )?;
        outcomes.push(ScanOutcome {
            code,
            kind: kind.into(),
            found,
            expected,
        });
    }
    tx.execute(
        "UPDATE checks SET current_location = ?1, current_box = ?2 WHERE id = ?3",
        params![location_ctx, box_ctx, check],
    )?;
    tx.commit()?;
    Ok(outcomes)
}

/// The check's report: what was expected, what was found, and the
/// discrepancies with their resolutions.
pub fn check_report(
    conn: &Connection,
    id: i64,
    today: &str,
) -> Result<CheckReport, WarehouseError> {
    let check = check_row(conn, id)?;
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    {
        let mut stmt =
            conn.prepare("SELECT item, location FROM check_expected WHERE check_id = ?1")?;
        for row in stmt.query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))? {
            let (item, location) = row?;
            expected.insert(item, location);
        }
    }
    // The last place each item was scanned.
    let mut found: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT code, kind, found FROM check_scans WHERE check_id = ?1 AND kind != 'location'
             ORDER BY id",
        )?;
        for row in stmt.query_map([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))? {
            let (code, kind, place): (String, String, Option<String>) = row?;
            found.insert(code, (kind, place));
        }
    }
    let mut resolutions: HashMap<String, Resolution> = HashMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT item, action, note, actor, at FROM check_resolutions WHERE check_id = ?1",
        )?;
        for row in stmt.query_map([id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                Resolution {
                    action: row.get(1)?,
                    note: row.get(2)?,
                    by: row.get(3)?,
                    at: row.get(4)?,
                },
            ))
        })? {
            let (item, resolution) = row?;
            resolutions.insert(item, resolution);
        }
    }
    let mut discrepancies = Vec::new();
    let mut matched = 0u32;
    for (item, place) in &expected {
        match found.get(item) {
            Some((_, Some(at))) if at == place => matched += 1,
            Some((_, at)) => discrepancies.push(Discrepancy {
                kind: "misplaced".into(),
                item: item.clone(),
                expected: Some(place.clone()),
                found: at.clone(),
                resolution: resolutions.get(item).cloned(),
            }),
            None => {
                let on_loan = blocking_loan(conn, item, today)?.is_some_and(|l| l.state == "lent");
                discrepancies.push(Discrepancy {
                    kind: if on_loan { "on_loan" } else { "missing" }.into(),
                    item: item.clone(),
                    expected: Some(place.clone()),
                    found: None,
                    resolution: resolutions.get(item).cloned(),
                });
            }
        }
    }
    let expected_items: HashSet<&String> = expected.keys().collect();
    for (item, (kind, at)) in &found {
        if expected_items.contains(item) {
            continue;
        }
        let recorded = match kind.as_str() {
            "box" => loc_row(conn, item)?
                .and_then(|r| r.parent_id)
                .map(|p| loc_code(conn, p))
                .transpose()?,
            "volume" => volume(conn, item)?.and_then(|v| v.box_code),
            _ => None,
        };
        discrepancies.push(Discrepancy {
            kind: "unexpected".into(),
            item: item.clone(),
            expected: recorded,
            found: at.clone(),
            resolution: resolutions.get(item).cloned(),
        });
    }
    Ok(CheckReport {
        check,
        expected: u32::try_from(expected.len()).unwrap_or(u32::MAX),
        found: matched,
        discrepancies,
    })
}

/// How a discrepancy is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolveAction {
    /// The system is corrected to where the item was found (a box is
    /// shelved there, a volume put in that box).
    Relocate,
    /// Recorded with a note only (found later, reported lost, …).
    Note,
}

pub fn resolve(
    conn: &mut Connection,
    check: i64,
    item: &str,
    action: ResolveAction,
    note: &str,
    actor: &Actor,
    today: &str,
) -> Result<CheckReport, WarehouseError> {
    let report = check_report(conn, check, today)?;
    let discrepancy = report
        .discrepancies
        .iter()
        .find(|d| d.item == item && d.kind != "on_loan")
        .ok_or_else(|| WarehouseError::NotADiscrepancy {
            check,
            item: item.into(),
        })?;
    let note = note.trim();
    if action == ResolveAction::Note && note.is_empty() {
        return Err(WarehouseError::Invalid(
            "a resolution without a move needs a note (说明处理结果)".into(),
        ));
    }
    let tx = conn.transaction()?;
    if action == ResolveAction::Relocate {
        let Some(found) = discrepancy.found.clone() else {
            return Err(WarehouseError::Invalid(format!(
                "{item} was not found anywhere; it cannot be relocated"
            )));
        };
        if item.starts_with("BOX-") {
            shelve_in(&tx, item, &found, actor)?;
        } else if item.starts_with("VOL-") && volume(&tx, item)?.is_some() {
            let box_id = box_for_volume(&tx, &found)?;
            tx.execute(
                "UPDATE volumes SET box_id = ?1, updated_at = ?2 WHERE code = ?3",
                params![box_id, now(), item],
            )?;
            emit(&tx, actor, &volume_event(&tx, item)?)?;
        } else {
            return Err(WarehouseError::Unknown(item.into()));
        }
    }
    let action_text = match action {
        ResolveAction::Relocate => "relocate",
        ResolveAction::Note => "note",
    };
    tx.execute(
        "INSERT INTO check_resolutions(check_id, item, action, note, actor, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(check_id, item) DO UPDATE SET action = excluded.action, note = excluded.note,
             actor = excluded.actor, at = excluded.at",
        params![check, item, action_text, note, actor_name(actor), now()],
    )?;
    let event = check_event_with(&tx, check, today)?;
    emit(&tx, actor, &event)?;
    tx.commit()?;
    check_report(conn, check, today)
}

/// Ends a check: no more scans; the report stays.
pub fn finish_check(
    conn: &mut Connection,
    check: i64,
    actor: &Actor,
    today: &str,
) -> Result<CheckReport, WarehouseError> {
    let tx = conn.transaction()?;
    let current = check_row(&tx, check)?;
    if current.state != "open" {
        return Err(WarehouseError::CheckFinished(check));
    }
    tx.execute(
        "UPDATE checks SET state = 'finished', finished_by = ?1, finished_at = ?2 WHERE id = ?3",
        params![actor_name(actor), now(), check],
    )?;
    let event = check_event_with(&tx, check, today)?;
    emit(&tx, actor, &event)?;
    tx.commit()?;
    check_report(conn, check, today)
}

fn check_event(conn: &Connection, check: i64) -> Result<WarehouseChange, WarehouseError> {
    check_event_with(conn, check, "")
}

fn check_event_with(
    conn: &Connection,
    check: i64,
    today: &str,
) -> Result<WarehouseChange, WarehouseError> {
    let report = check_report(conn, check, today)?;
    let count = |kind: &str| {
        u32::try_from(
            report
                .discrepancies
                .iter()
                .filter(|d| d.kind == kind)
                .count(),
        )
        .unwrap_or(u32::MAX)
    };
    Ok(WarehouseChange::Check {
        check: u64::try_from(check).unwrap_or_default(),
        root: report.check.root.clone(),
        state: report.check.state.clone(),
        started_at: report.check.started_at.clone(),
        finished_at: report.check.finished_at.clone(),
        missing: count("missing"),
        unexpected: count("unexpected"),
        misplaced: count("misplaced"),
        resolved: u32::try_from(
            report
                .discrepancies
                .iter()
                .filter(|d| d.resolution.is_some())
                .count(),
        )
        .unwrap_or(u32::MAX),
    })
}

// ------------------------------------------------------------------- labels

fn retention_text(lang: Lang, retention: Option<&str>) -> Option<String> {
    let retention = retention?;
    Some(match retention {
        "permanent" => lang
            .pick("保管期限：永久", "Retention: permanent")
            .to_owned(),
        other => match other.strip_suffix('y') {
            Some(years) => match lang {
                Lang::Zh => format!("保管期限：{years}年"),
                Lang::En => format!("Retention: {years} years"),
            },
            None => other.to_owned(),
        },
    })
}

/// The label of one code: a volume's title, retention and date range; a
/// box's name and the range of its volumes; a location's kind and name.
pub fn label_for(conn: &Connection, code: &str) -> Result<crate::labels::Label, WarehouseError> {
    let lang = Lang::Zh;
    let range = |from: Option<String>, to: Option<String>| match (from, to) {
        (Some(from), Some(to)) if from == to => Some(from),
        (Some(from), Some(to)) => Some(format!("{from} 至 {to}")),
        _ => None,
    };
    if let Some(volume) = volume(conn, code)? {
        let mut lines = Vec::new();
        lines.extend(retention_text(lang, volume.retention.as_deref()));
        lines.extend(range(volume.date_from, volume.date_to));
        return Ok(crate::labels::Label {
            code: volume.code,
            title: volume.title,
            lines,
        });
    }
    let location = location(conn, code)?.ok_or_else(|| WarehouseError::Unknown(code.into()))?;
    let mut lines = Vec::new();
    if location.kind == "box" {
        let volumes = volumes(conn, Some(code))?;
        let from = volumes.iter().filter_map(|v| v.date_from.clone()).min();
        let to = volumes.iter().filter_map(|v| v.date_to.clone()).max();
        let longest = volumes
            .iter()
            .filter_map(|v| v.retention.as_deref())
            .max_by_key(|r| {
                if *r == "permanent" {
                    u32::MAX
                } else {
                    r.trim_end_matches('y').parse().unwrap_or(0)
                }
            });
        lines.extend(retention_text(lang, longest));
        lines.extend(range(from, to));
        if lines.is_empty() {
            lines.push(format!("盒 · {} 卷", volumes.len()));
        }
    } else {
        let path: Vec<String> = path(conn, code)?.into_iter().map(|l| l.name).collect();
        lines.push(format!(
            "{} · {}",
            kind_label(lang, &location.kind),
            path.join(" › ")
        ));
    }
    Ok(crate::labels::Label {
        code: location.code,
        title: location.name,
        lines,
    })
}

// --------------------------------------------------------------------- feed

/// This database's warehouse feed id (made once, at migration).
pub fn feed_id(conn: &Connection) -> Result<String, WarehouseError> {
    Ok(conn.query_row("SELECT feed FROM warehouse_feed", [], |row| row.get(0))?)
}

/// Up to `limit` events after `after`, in order.
pub fn events_after(
    conn: &Connection,
    after: u64,
    limit: u32,
) -> Result<Vec<WarehouseEvent>, WarehouseError> {
    read_events(
        conn,
        "SELECT seq, body, actor, recorded_at FROM warehouse_events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        params![after as i64, limit],
    )
}

/// The events a query selects (seq, body, actor, recorded_at), decoded.
fn read_events(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<WarehouseEvent>, WarehouseError> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt
        .query_map(params, |row| {
            Ok((
                row.get::<_, i64>(0)? as u64,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(seq, body, actor, recorded_at)| {
            let change = serde_json::from_str(&body)
                .map_err(|err| StoreError::Corrupt(format!("warehouse event {seq}: {err}")))?;
            Ok(WarehouseEvent {
                seq,
                recorded_at,
                actor,
                change,
            })
        })
        .collect()
}

/// The feed's length and how far the hub has acknowledged it.
pub fn feed_state(conn: &Connection) -> Result<(u64, u64), WarehouseError> {
    Ok(conn.query_row(
        "SELECT (SELECT coalesce(max(seq), 0) FROM warehouse_events), acked FROM warehouse_feed",
        [],
        |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64)),
    )?)
}

/// Starts a new feed id and sends everything again under it (the hub's
/// state is keyed by codes and loan numbers, so a replay converges).
pub fn renew_feed(conn: &Connection) -> Result<(), WarehouseError> {
    conn.execute(
        "UPDATE warehouse_feed SET feed = lower(hex(randomblob(16))), acked = 0",
        [],
    )?;
    Ok(())
}

/// Records how far the hub has applied the feed.
pub fn set_acked(conn: &Connection, cursor: u64) -> Result<(), WarehouseError> {
    conn.execute("UPDATE warehouse_feed SET acked = ?1", [cursor as i64])?;
    Ok(())
}

/// Every event about one item (location, volume or loan), oldest first:
/// the item's history.
pub fn history(conn: &Connection, code: &str) -> Result<Vec<WarehouseEvent>, WarehouseError> {
    read_events(
        conn,
        "SELECT seq, body, actor, recorded_at FROM warehouse_events WHERE body LIKE ?1 ORDER BY seq",
        [format!("%\"{code}\"%")],
    )
}

/// Today's date in `zone` (YYYY-MM-DD), against which due dates are read.
pub fn today(zone: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::now()
        .to_zoned(zone.clone())
        .date()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, crate::store::Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::create(dir.path(), &"330106".parse().unwrap()).unwrap();
        (dir, store)
    }

    fn admin() -> Actor {
        Actor::user("wang", Role::Admin)
    }

    fn operator() -> Actor {
        Actor::user("zhao", Role::Operator)
    }

    fn add(
        conn: &mut Connection,
        code: &str,
        kind: &str,
        parent: Option<&str>,
        capacity: Option<u32>,
    ) {
        create_location(
            conn,
            &NewLocation {
                code: code.into(),
                kind: kind.into(),
                name: format!("{kind} {code}"),
                parent: parent.map(str::to_owned),
                capacity,
            },
            &admin(),
        )
        .unwrap();
    }

    /// Room K01 → cabinet K01-L01 → section K01-L01-J1 → shelves S1 (2 boxes)
    /// (1 box) and S2; boxes BOX-0001 (on S1, 2 volumes, full) and BOX-0002 (on S2).
    fn seeded() -> (tempfile::TempDir, crate::store::Store) {
        let (dir, mut store) = store();
        let conn = store.conn_mut();
        add(conn, "K01", "room", None, None);
        add(conn, "K01-L01", "cabinet", Some("K01"), None);
        add(conn, "K01-L01-J1", "section", Some("K01-L01"), None);
        add(conn, "K01-L01-J1-S1", "shelf", Some("K01-L01-J1"), Some(1));
        add(conn, "K01-L01-J1-S2", "shelf", Some("K01-L01-J1"), None);
        add(conn, "BOX-0001", "box", Some("K01-L01-J1-S1"), Some(2));
        add(conn, "BOX-0002", "box", Some("K01-L01-J1-S2"), None);
        for (code, boxed) in [
            ("VOL-0001", "BOX-0001"),
            ("VOL-0002", "BOX-0001"),
            ("VOL-0003", "BOX-0002"),
        ] {
            create_volume(
                conn,
                &NewVolume {
                    code: code.into(),
                    title: format!("2019年度 养老 {code}"),
                    box_code: Some(boxed.into()),
                    retention: Some("permanent".into()),
                },
                &admin(),
            )
            .unwrap();
        }
        (dir, store)
    }

    #[test]
    fn codes_say_what_they_label() {
        assert!(check_code("BOX-0001", "box").is_ok());
        assert!(matches!(
            check_code("K01", "box"),
            Err(WarehouseError::CodePrefix { .. })
        ));
        assert!(matches!(
            check_code("BOX-9", "shelf"),
            Err(WarehouseError::CodePrefix { .. })
        ));
        assert!(matches!(
            check_code("k01", "room"),
            Err(WarehouseError::BadCode(_))
        ));
        assert!(matches!(
            check_code("K 01", "room"),
            Err(WarehouseError::BadCode(_))
        ));
    }

    #[test]
    fn the_tree_keeps_its_kinds_and_a_box_is_in_one_place() {
        let (_dir, mut store) = seeded();
        let conn = store.conn_mut();
        let wrong = create_location(
            conn,
            &NewLocation {
                code: "K01-X".into(),
                kind: "shelf".into(),
                name: "x".into(),
                parent: Some("K01".into()),
                capacity: None,
            },
            &admin(),
        );
        assert!(
            matches!(wrong, Err(WarehouseError::WrongParent { .. })),
            "{wrong:?}"
        );
        let again = create_location(
            conn,
            &NewLocation {
                code: "BOX-0001".into(),
                kind: "box".into(),
                name: "again".into(),
                parent: None,
                capacity: None,
            },
            &admin(),
        );
        assert!(matches!(again, Err(WarehouseError::Exists(_))));
        // Boxes go on shelves only.
        assert!(matches!(
            shelve(conn, "BOX-0002", "K01-L01", &operator()),
            Err(WarehouseError::NotAShelf(_))
        ));
        // Shelving moves the box: afterwards it is on S1 and no longer on S2.
        add(conn, "BOX-0003", "box", None, None);
        assert!(
            shelve(conn, "BOX-0002", "K01-L01-J1-S1", &operator()).is_err(),
            "S1 is full"
        );
        assert!(shelve(conn, "BOX-0003", "K01-L01-J1-S2", &operator()).unwrap());
        assert!(
            !shelve(conn, "BOX-0003", "K01-L01-J1-S2", &operator()).unwrap(),
            "already there"
        );
        let s2: Vec<String> = room_grid(conn, "K01").unwrap().columns[0].cells[1]
            .boxes
            .clone();
        assert_eq!(s2, ["BOX-0002", "BOX-0003"]);
        assert!(shelve(conn, "BOX-0003", "K01-L01-J1-S1", &operator()).is_err());
        let grid = room_grid(conn, "K01").unwrap();
        let cells = &grid.columns[0].cells;
        assert_eq!(cells[0].boxes, ["BOX-0001"]);
        assert_eq!(cells[0].shelf.capacity, Some(1));
        assert_eq!(
            path(conn, "BOX-0001")
                .unwrap()
                .iter()
                .map(|l| l.code.as_str())
                .collect::<Vec<_>>(),
            ["K01", "K01-L01", "K01-L01-J1", "K01-L01-J1-S1", "BOX-0001"]
        );
        // The box's capacity counts volumes.
        let full = create_volume(
            conn,
            &NewVolume {
                code: "VOL-0009".into(),
                title: "t".into(),
                box_code: Some("BOX-0001".into()),
                retention: None,
            },
            &admin(),
        );
        assert!(
            matches!(
                full,
                Err(WarehouseError::Full {
                    held: 2,
                    capacity: 2,
                    ..
                })
            ),
            "{full:?}"
        );
    }

    #[test]
    fn a_csv_shelves_all_or_nothing() {
        let (_dir, mut store) = seeded();
        let conn = store.conn_mut();
        add(conn, "BOX-0003", "box", None, None);
        add(conn, "BOX-0004", "box", None, None);
        let bad = shelve_csv(
            conn,
            "box,shelf\nBOX-0003,K01-L01-J1-S2\nBOX-0004,K01-L01\n",
            &operator(),
        );
        assert!(
            matches!(bad, Err(WarehouseError::Line { line: 3, .. })),
            "{bad:?}"
        );
        assert_eq!(location(conn, "BOX-0003").unwrap().unwrap().parent, None);
        let moved = shelve_csv(
            conn,
            "box,shelf\nBOX-0003,K01-L01-J1-S2\nbox-0004,k01-l01-j1-s2\n",
            &operator(),
        )
        .unwrap();
        assert_eq!(moved, 2);
        assert_eq!(
            location(conn, "BOX-0004")
                .unwrap()
                .unwrap()
                .parent
                .as_deref(),
            Some("K01-L01-J1-S2")
        );
    }

    #[test]
    fn a_loan_goes_requested_approved_lent_returned_and_shows_overdue() {
        let (_dir, mut store) = seeded();
        let conn = store.conn_mut();
        let today = "2026-12-06";
        let new = NewLoan {
            item: "VOL-0001".into(),
            borrower: "区法院 张法官".into(),
            purpose: "诉讼调卷".into(),
            due_date: "2026-12-20".into(),
        };
        let loan = request_loan(conn, &new, &operator(), today).unwrap();
        assert_eq!(loan.state, "requested");
        // One loan at a time, the box included.
        let box_loan = NewLoan {
            item: "BOX-0001".into(),
            ..new.clone()
        };
        assert!(matches!(
            request_loan(conn, &box_loan, &operator(), today),
            Err(WarehouseError::AlreadyOnLoan { .. })
        ));
        // Operators do not approve; lending needs approval first.
        assert!(matches!(
            loan_step(conn, loan.id, LoanStep::Approve, None, &operator(), today),
            Err(WarehouseError::Forbidden { .. })
        ));
        assert!(matches!(
            loan_step(conn, loan.id, LoanStep::Lend, None, &operator(), today),
            Err(WarehouseError::LoanState { .. })
        ));
        loan_step(conn, loan.id, LoanStep::Approve, None, &admin(), today).unwrap();
        let lent = loan_step(conn, loan.id, LoanStep::Lend, None, &operator(), today).unwrap();
        assert_eq!(lent.state, "lent");
        assert!(!lent.overdue);
        // Seen from the volume's business files and as overdue after the due date.
        let later = "2026-12-21";
        let original = original_of_volume(conn, "VOL-0001", later)
            .unwrap()
            .unwrap();
        assert_eq!(original.loan.as_ref().map(|l| l.overdue), Some(true));
        assert_eq!(
            loans(conn, LoanFilter::Overdue, None, later).unwrap().len(),
            1
        );
        assert!(
            loans(conn, LoanFilter::Overdue, None, today)
                .unwrap()
                .is_empty()
        );
        let back = loan_step(conn, loan.id, LoanStep::Return, None, &operator(), later).unwrap();
        assert_eq!(back.state, "returned");
        assert_eq!(back.lent_by.as_deref(), Some("zhao"));
        assert_eq!(back.approved_by.as_deref(), Some("wang"));
        assert!(
            loans(conn, LoanFilter::Overdue, None, later)
                .unwrap()
                .is_empty()
        );
        assert!(
            original_of_volume(conn, "VOL-0001", later)
                .unwrap()
                .unwrap()
                .loan
                .is_none()
        );
        // The whole history is in the feed.
        let states: Vec<String> = history(conn, "VOL-0001")
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.change {
                WarehouseChange::Loan { state, .. } => Some(state),
                _ => None,
            })
            .collect();
        assert_eq!(states, ["requested", "approved", "lent", "returned"]);
        // A past due date is refused.
        let past = NewLoan {
            due_date: "2026-12-01".into(),
            ..new
        };
        assert!(matches!(
            request_loan(conn, &past, &operator(), today),
            Err(WarehouseError::Invalid(_))
        ));
    }

    #[test]
    fn hub_loan_requests_are_recorded_once() {
        let (_dir, mut store) = seeded();
        let conn = store.conn_mut();
        let request = LoanRequest {
            seq: 7,
            item: "VOL-0003".into(),
            borrower: "李四 (330000)".into(),
            purpose: "稽核".into(),
            due_date: "2026-12-30".into(),
            requested_by: "li".into(),
            requested_at: "2026-12-06T01:00:00Z".into(),
        };
        let unknown = LoanRequest {
            seq: 8,
            item: "VOL-9999".into(),
            ..request.clone()
        };
        let added =
            apply_loan_requests(conn, &[request.clone(), unknown], 8, "2026-12-06").unwrap();
        assert_eq!(added, 2);
        assert_eq!(
            apply_loan_requests(conn, &[request], 8, "2026-12-06").unwrap(),
            0
        );
        assert_eq!(loan_request_cursor(conn).unwrap(), 8);
        let all = loans(conn, LoanFilter::All, None, "2026-12-06").unwrap();
        let states: Vec<(&str, Option<u64>)> = all
            .iter()
            .map(|l| (l.state.as_str(), l.hub_request))
            .collect();
        assert_eq!(states, [("refused", Some(8)), ("requested", Some(7))]);
    }

    #[test]
    fn an_inventory_check_finds_missing_unexpected_and_misplaced() {
        let (_dir, mut store) = seeded();
        let conn = store.conn_mut();
        add(conn, "K02", "room", None, None);
        add(conn, "K02-L01", "cabinet", Some("K02"), None);
        add(conn, "K02-L01-S1", "shelf", Some("K02-L01"), None);
        add(conn, "BOX-0100", "box", Some("K02-L01-S1"), None);
        let today = "2026-12-06";
        add(conn, "BOX-0003", "box", Some("K01-L01-J1-S2"), None);
        let check = start_check(conn, "K01", &operator()).unwrap();
        // A box before any location label is refused.
        assert!(matches!(
            scan(conn, check.id, &["BOX-0001".into()], &operator()),
            Err(WarehouseError::NoLocationYet(_))
        ));
        // S1: BOX-0001 with VOL-0002; S2: BOX-0002 with VOL-0003 and VOL-0001
        // (which belongs in BOX-0001), BOX-0100 from the other room and an
        // unknown box; BOX-0003 (on S2) is not found.
        let codes: Vec<String> = [
            "K01-L01-J1-S1",
            "BOX-0001",
            "VOL-0002",
            "K01-L01-J1-S2",
            "BOX-0002",
            "VOL-0003",
            "VOL-0001",
            "BOX-0100",
            "BOX-7777",
        ]
        .map(str::to_owned)
        .to_vec();
        let outcomes = scan(conn, check.id, &codes, &operator()).unwrap();
        assert_eq!(outcomes[6].found.as_deref(), Some("BOX-0002"));
        assert_eq!(outcomes[6].expected.as_deref(), Some("BOX-0001"));
        assert_eq!(outcomes[8].found.as_deref(), Some("K01-L01-J1-S2"));
        let report = check_report(conn, check.id, today).unwrap();
        let mut kinds: Vec<(String, String)> = report
            .discrepancies
            .iter()
            .map(|d| (d.kind.clone(), d.item.clone()))
            .collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [
                ("misplaced".into(), "VOL-0001".into()),
                ("missing".into(), "BOX-0003".into()),
                ("unexpected".into(), "BOX-0100".into()),
                ("unexpected".into(), "BOX-7777".into()),
            ]
        );
        assert_eq!(report.expected, 6);
        assert_eq!(report.found, 4);
        // Relocating the misplaced volume corrects the system.
        let report = resolve(
            conn,
            check.id,
            "VOL-0001",
            ResolveAction::Relocate,
            "",
            &admin(),
            today,
        )
        .unwrap();
        assert_eq!(
            volume(conn, "VOL-0001")
                .unwrap()
                .unwrap()
                .box_code
                .as_deref(),
            Some("BOX-0002")
        );
        let resolved = report
            .discrepancies
            .iter()
            .find(|d| d.item == "VOL-0001")
            .unwrap();
        assert_eq!(resolved.resolution.as_ref().unwrap().by, "wang");
        assert!(matches!(
            resolve(
                conn,
                check.id,
                "BOX-0003",
                ResolveAction::Note,
                " ",
                &admin(),
                today
            ),
            Err(WarehouseError::Invalid(_))
        ));
        resolve(
            conn,
            check.id,
            "BOX-0003",
            ResolveAction::Note,
            "在修裱室",
            &admin(),
            today,
        )
        .unwrap();
        // A box lent out is not missing.
        let lent = request_loan(
            conn,
            &NewLoan {
                item: "BOX-0003".into(),
                borrower: "b".into(),
                purpose: "p".into(),
                due_date: today.into(),
            },
            &operator(),
            today,
        )
        .unwrap();
        loan_step(conn, lent.id, LoanStep::Approve, None, &admin(), today).unwrap();
        loan_step(conn, lent.id, LoanStep::Lend, None, &admin(), today).unwrap();
        let report = check_report(conn, check.id, today).unwrap();
        assert!(
            report
                .discrepancies
                .iter()
                .any(|d| d.item == "BOX-0003" && d.kind == "on_loan")
        );
        let finished = finish_check(conn, check.id, &operator(), today).unwrap();
        assert_eq!(finished.check.state, "finished");
        assert!(scan(conn, check.id, &["K01".into()], &operator()).is_err());
    }

    #[test]
    fn every_change_is_one_feed_event_in_order() {
        let (_dir, mut store) = seeded();
        let conn = store.conn_mut();
        let events = events_after(conn, 0, 100).unwrap();
        // 7 locations and 3 volumes.
        assert_eq!(events.len(), 10);
        assert!(
            events
                .iter()
                .enumerate()
                .all(|(i, e)| e.seq == i as u64 + 1)
        );
        assert!(
            matches!(&events[5].change, WarehouseChange::Location { code, parent: Some(p), .. }
            if code == "BOX-0001" && p == "K01-L01-J1-S1")
        );
        assert_eq!(events_after(conn, 8, 100).unwrap().len(), 2);
        assert_eq!(feed_state(conn).unwrap(), (10, 0));
        set_acked(conn, 10).unwrap();
        let feed = feed_id(conn).unwrap();
        assert_eq!(feed.len(), 32);
        renew_feed(conn).unwrap();
        assert_ne!(feed_id(conn).unwrap(), feed);
        assert_eq!(feed_state(conn).unwrap(), (10, 0));
    }
}
