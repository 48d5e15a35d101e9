//! The hub's pre-archive of street offices' live uploads (前台扫描预归档库).
//!
//! While the applicant is at the counter, a clerk scans their papers and
//! the pages arrive over tus (`api/tus.rs`) as pages of a *live business
//! file*, keyed by its business number. A live file belongs to the
//! organisation that opened it (usually a street office) and is managed by
//! that organisation's district (移交给所辖区管理). Its state:
//!
//! - `open`: the clerk is adding pages;
//! - `submitted`: waiting for a reviewer;
//! - `returned`: sent back with a reason; the clerk adds or fixes pages;
//! - `approved`: ready for the monthly close;
//! - `archived`: moved into the archive proper by the monthly close.
//!
//! Pages can be added while a file is `open` or `returned`.
use dangan_shared::OrgLevel;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::orgs;
use crate::store::{self, StoreError};
use crate::users::{self, Role, User, UserError};

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("a business number is 1 to 64 visible characters, not {0:?}")]
    BadNumber(String),
    #[error("{user} ({role}) may not upload pages of business files")]
    NotAllowed { user: String, role: &'static str },
    #[error(
        "business file {number} belongs to organisation {organisation}, outside what {user} may manage"
    )]
    OutOfScope {
        number: String,
        organisation: String,
        user: String,
    },
    #[error("no organisation {0}")]
    NoSuchOrg(String),
    #[error(
        "live uploads belong to a district or a street office, not to {0}; say which (metadata `organisation`)"
    )]
    NotLocal(String),
    #[error("no live business file {0}")]
    NoSuchFile(String),
    #[error("business file {number} is {state}: no pages can be added to it now")]
    Closed { number: String, state: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    User(#[from] UserError),
}

impl From<rusqlite::Error> for LiveError {
    fn from(err: rusqlite::Error) -> Self {
        LiveError::Store(err.into())
    }
}

/// States in which pages may still be added.
const ADDING: [&str; 2] = ["open", "returned"];

/// The roles that upload pages: street-office clerks (and business systems
/// with a clerk's token), and the archive and system administrators who
/// manage live uploads.
pub fn may_upload(role: Role) -> bool {
    matches!(role, Role::Clerk | Role::ArchiveAdmin | Role::SystemAdmin)
}

fn valid_number(number: &str) -> bool {
    (1..=64).contains(&number.chars().count())
        && number
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace())
}

/// The district that manages `org`'s live uploads: the district itself, or
/// a street office's parent.
pub fn district_of(conn: &Connection, org: &str) -> Result<String, LiveError> {
    let found = orgs::get(conn, org)
        .map_err(|err| StoreError::Corrupt(err.to_string()))?
        .ok_or_else(|| LiveError::NoSuchOrg(org.to_owned()))?;
    match found.level {
        OrgLevel::District => Ok(found.code),
        OrgLevel::StreetOffice => found
            .parent
            .ok_or_else(|| LiveError::NotLocal(org.to_owned())),
        OrgLevel::City => Err(LiveError::NotLocal(org.to_owned())),
    }
}

/// The live business file an upload of `user` adds a page to: the one with
/// `number`, or a new one opened in `organisation` (default: the user's
/// own). The user must be allowed to upload, the file's organisation must
/// lie in their scope, and the file must still take pages. Returns its id.
pub fn file_for_upload(
    conn: &Connection,
    user: &User,
    number: &str,
    organisation: Option<&str>,
) -> Result<i64, LiveError> {
    let number = number.trim();
    if !valid_number(number) {
        return Err(LiveError::BadNumber(number.to_owned()));
    }
    if !may_upload(user.role) {
        return Err(LiveError::NotAllowed {
            user: user.username.clone(),
            role: user.role.as_str(),
        });
    }
    let scope = users::Scope::of(conn, user)?;
    let existing: Option<(i64, String, String)> = conn
        .query_row(
            "SELECT id, organisation, state FROM live_files WHERE business_number = ?1",
            [number],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    if let Some((id, organisation, state)) = existing {
        if !scope.allows(conn, &organisation)? {
            return Err(LiveError::OutOfScope {
                number: number.to_owned(),
                organisation,
                user: user.username.clone(),
            });
        }
        if !ADDING.contains(&state.as_str()) {
            return Err(LiveError::Closed {
                number: number.to_owned(),
                state,
            });
        }
        return Ok(id);
    }
    let organisation = organisation
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .unwrap_or(&user.org);
    let district = district_of(conn, organisation)?;
    if !scope.allows(conn, organisation)? {
        return Err(LiveError::OutOfScope {
            number: number.to_owned(),
            organisation: organisation.to_owned(),
            user: user.username.clone(),
        });
    }
    let now = store::now();
    conn.execute(
        "INSERT INTO live_files(business_number, organisation, district, created_by, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![number, organisation, district, user.username, now],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The id of the existing live file `number` whose pages `user` may
/// change (it must take pages and lie in their scope).
fn editable(conn: &Connection, user: &User, number: &str) -> Result<i64, LiveError> {
    let exists: Option<i64> = conn
        .query_row(
            "SELECT id FROM live_files WHERE business_number = ?1",
            [number.trim()],
            |row| row.get(0),
        )
        .optional()?;
    if exists.is_none() {
        return Err(LiveError::NoSuchFile(number.to_owned()));
    }
    file_for_upload(conn, user, number, None)
}

/// A page about to be added to a live file.
#[derive(Debug, Clone)]
pub struct NewPage {
    pub blob: String,
    pub size: u64,
    pub format: &'static str,
    pub width: u32,
    pub height: u32,
    pub dpi: Option<u32>,
    /// `bilevel`, `gray` or `colour`.
    pub colour: &'static str,
    pub filename: Option<String>,
    pub uploaded_by: String,
}

/// Appends a page to live file `file` (after its last page) if the file
/// still takes pages. Returns the page's id and the file's business number.
pub fn add_page(conn: &Connection, file: i64, page: &NewPage) -> Result<(i64, String), LiveError> {
    let (number, state): (String, String) = conn.query_row(
        "SELECT business_number, state FROM live_files WHERE id = ?1",
        [file],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    if !ADDING.contains(&state.as_str()) {
        return Err(LiveError::Closed { number, state });
    }
    let now = store::now();
    conn.execute(
        "INSERT INTO live_pages(live_file_id, position, blob, size, format, width, height, dpi,
                                colour, filename, uploaded_by, uploaded_at)
         VALUES (?1, (SELECT COALESCE(MAX(position), 0) + 1 FROM live_pages WHERE live_file_id = ?1),
                 ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            file,
            page.blob,
            page.size,
            page.format,
            page.width,
            page.height,
            page.dpi,
            page.colour,
            page.filename,
            page.uploaded_by,
            now
        ],
    )?;
    let id = conn.last_insert_rowid();
    conn.execute(
        "UPDATE live_files SET updated_at = ?2 WHERE id = ?1",
        params![file, now],
    )?;
    Ok((id, number))
}

/// A live business file with its pages in order.
#[derive(Debug, Clone, Serialize)]
pub struct LiveFile {
    pub id: i64,
    pub business_number: String,
    pub organisation: String,
    pub district: String,
    pub person_id: Option<String>,
    pub person_name: Option<String>,
    pub employer_id: Option<String>,
    pub business_type: Option<String>,
    pub date: Option<String>,
    pub state: String,
    pub return_reason: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub pages: Vec<LivePage>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LivePage {
    pub id: i64,
    pub position: i64,
    pub blob: String,
    pub size: u64,
    pub format: String,
    pub width: u32,
    pub height: u32,
    pub dpi: Option<u32>,
    pub filename: Option<String>,
    pub uploaded_by: String,
    pub uploaded_at: String,
}

/// The live business file with `number`, if there is one.
pub fn get(conn: &Connection, number: &str) -> Result<Option<LiveFile>, LiveError> {
    let found = conn
        .query_row(
            "SELECT id, business_number, organisation, district, person_id, person_name,
                    employer_id, business_type, date, state, return_reason, created_by,
                    created_at, updated_at
             FROM live_files WHERE business_number = ?1",
            [number.trim()],
            |row| {
                Ok(LiveFile {
                    id: row.get(0)?,
                    business_number: row.get(1)?,
                    organisation: row.get(2)?,
                    district: row.get(3)?,
                    person_id: row.get(4)?,
                    person_name: row.get(5)?,
                    employer_id: row.get(6)?,
                    business_type: row.get(7)?,
                    date: row.get(8)?,
                    state: row.get(9)?,
                    return_reason: row.get(10)?,
                    created_by: row.get(11)?,
                    created_at: row.get(12)?,
                    updated_at: row.get(13)?,
                    pages: Vec::new(),
                })
            },
        )
        .optional()?;
    let Some(mut file) = found else {
        return Ok(None);
    };
    let mut statement = conn.prepare_cached(
        "SELECT id, position, blob, size, format, width, height, dpi, filename, uploaded_by,
                uploaded_at
         FROM live_pages WHERE live_file_id = ?1 ORDER BY position",
    )?;
    let pages = statement.query_map([file.id], |row| {
        Ok(LivePage {
            id: row.get(0)?,
            position: row.get(1)?,
            blob: row.get(2)?,
            size: row.get(3)?,
            format: row.get(4)?,
            width: row.get(5)?,
            height: row.get(6)?,
            dpi: row.get(7)?,
            filename: row.get(8)?,
            uploaded_by: row.get(9)?,
            uploaded_at: row.get(10)?,
        })
    })?;
    for page in pages {
        file.pages.push(page?);
    }
    Ok(Some(file))
}

/// What a business system (or the clerk's page) says about a transaction.
/// Fields left out keep their value; an empty string clears one.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub person_id: Option<String>,
    pub person_name: Option<String>,
    pub employer_id: Option<String>,
    pub business_type: Option<String>,
    /// The business date, YYYY-MM-DD.
    pub date: Option<String>,
    /// Only when the file is new: the organisation it belongs to (default:
    /// the caller's).
    pub organisation: Option<String>,
}

/// A metadata value the archive cannot take.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("person_id: {0}")]
    PersonId(#[from] dangan_shared::ParsePersonIdError),
    #[error("date is YYYY-MM-DD, not {0:?}")]
    Date(String),
    #[error("business_type {0:?} has no template (see GET /api/v1/templates)")]
    BusinessType(String),
    #[error("{field} is at most 200 characters")]
    TooLong { field: &'static str },
}

impl Metadata {
    /// Checks every value given; returns them normalised (trimmed, the
    /// identity number upper-case, empty strings as clearing).
    fn checked(&self, conn: &Connection) -> Result<Metadata, MetadataError> {
        let clean = |field: &'static str, value: &Option<String>| {
            value
                .as_ref()
                .map(|v| {
                    let v = v.trim().to_owned();
                    if v.chars().count() > 200 {
                        Err(MetadataError::TooLong { field })
                    } else {
                        Ok(v)
                    }
                })
                .transpose()
        };
        let person_id = match clean("person_id", &self.person_id)? {
            Some(id) if !id.is_empty() => {
                Some(id.parse::<dangan_shared::PersonId>()?.as_str().to_owned())
            }
            other => other,
        };
        let date = clean("date", &self.date)?;
        if let Some(date) = date.as_deref().filter(|d| !d.is_empty())
            && (date.len() != 10 || date.parse::<jiff::civil::Date>().is_err())
        {
            return Err(MetadataError::Date(date.to_owned()));
        }
        let business_type = clean("business_type", &self.business_type)?;
        if let Some(code) = business_type.as_deref().filter(|c| !c.is_empty())
            && crate::dictionaries::template(conn, code, None).is_err()
        {
            return Err(MetadataError::BusinessType(code.to_owned()));
        }
        Ok(Metadata {
            person_id,
            person_name: clean("person_name", &self.person_name)?,
            employer_id: clean("employer_id", &self.employer_id)?,
            business_type,
            date,
            organisation: clean("organisation", &self.organisation)?,
        })
    }
}

/// Registers a business transaction or updates its metadata (the business
/// system's `PUT /api/v1/live/{number}`): opens the live file if there is
/// none (like a first upload), else updates it while it is not approved.
/// Returns the file and whether it was created.
pub fn register(
    conn: &Connection,
    user: &User,
    number: &str,
    metadata: &Metadata,
) -> Result<Result<(LiveFile, bool), MetadataError>, LiveError> {
    let checked = match metadata.checked(conn) {
        Ok(checked) => checked,
        Err(err) => return Ok(Err(err)),
    };
    let existed = get(conn, number)?;
    let id = match &existed {
        Some(file) => {
            let scope = users::Scope::of(conn, user)?;
            if !may_upload(user.role) {
                return Err(LiveError::NotAllowed {
                    user: user.username.clone(),
                    role: user.role.as_str(),
                });
            }
            if !scope.allows(conn, &file.organisation)? {
                return Err(LiveError::OutOfScope {
                    number: file.business_number.clone(),
                    organisation: file.organisation.clone(),
                    user: user.username.clone(),
                });
            }
            if matches!(file.state.as_str(), "approved" | "archived") {
                return Err(LiveError::Closed {
                    number: file.business_number.clone(),
                    state: file.state.clone(),
                });
            }
            file.id
        }
        None => file_for_upload(conn, user, number, checked.organisation.as_deref())?,
    };
    let set = |column: &str, value: &Option<String>| -> Result<(), LiveError> {
        if let Some(value) = value {
            let value = (!value.is_empty()).then_some(value.as_str());
            conn.execute(
                &format!("UPDATE live_files SET {column} = ?2 WHERE id = ?1"),
                params![id, value],
            )?;
        }
        Ok(())
    };
    set("person_id", &checked.person_id)?;
    set("person_name", &checked.person_name)?;
    set("employer_id", &checked.employer_id)?;
    set("business_type", &checked.business_type)?;
    set("date", &checked.date)?;
    conn.execute(
        "UPDATE live_files SET updated_at = ?2 WHERE id = ?1",
        params![id, store::now()],
    )?;
    let file = get(conn, number)?.ok_or_else(|| {
        LiveError::Store(StoreError::Corrupt(format!("live file {number} vanished")))
    })?;
    Ok(Ok((file, existed.is_none())))
}

/// The live file with `number` if `user`'s scope holds it (else `None`,
/// the same as no such file).
pub fn visible(
    conn: &Connection,
    user: &User,
    number: &str,
) -> Result<Option<LiveFile>, LiveError> {
    let Some(file) = get(conn, number)? else {
        return Ok(None);
    };
    let scope = users::Scope::of(conn, user)?;
    if scope.allows(conn, &file.organisation)? || scope.allows(conn, &file.district)? {
        Ok(Some(file))
    } else {
        Ok(None)
    }
}

/// A live file in a list (the review queue, a street office's files).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub business_number: String,
    pub organisation: String,
    pub organisation_name: Option<String>,
    pub district: String,
    pub person_name: Option<String>,
    pub business_type: Option<String>,
    pub date: Option<String>,
    pub state: String,
    pub return_reason: Option<String>,
    pub pages: u64,
    pub created_by: String,
    pub updated_at: String,
}

/// Live files in `user`'s scope, newest change first, optionally in one
/// state; at most `limit`.
pub fn list(
    conn: &Connection,
    user: &User,
    state: Option<&str>,
    limit: u32,
) -> Result<Vec<Summary>, LiveError> {
    let scope = users::Scope::of(conn, user)?;
    let mut statement = conn.prepare_cached(
        "SELECT f.business_number, f.organisation, o.name, f.district, f.person_name,
                f.business_type, f.date, f.state, f.return_reason,
                (SELECT count(*) FROM live_pages p WHERE p.live_file_id = f.id),
                f.created_by, f.updated_at
         FROM live_files f LEFT JOIN orgs o ON o.code = f.organisation
         WHERE ?1 IS NULL OR f.state = ?1
         ORDER BY f.updated_at DESC, f.id DESC",
    )?;
    let rows = statement.query_map(params![state], |row| {
        Ok(Summary {
            business_number: row.get(0)?,
            organisation: row.get(1)?,
            organisation_name: row.get(2)?,
            district: row.get(3)?,
            person_name: row.get(4)?,
            business_type: row.get(5)?,
            date: row.get(6)?,
            state: row.get(7)?,
            return_reason: row.get(8)?,
            pages: row.get(9)?,
            created_by: row.get(10)?,
            updated_at: row.get(11)?,
        })
    })?;
    let mut found = Vec::new();
    for row in rows {
        let row = row?;
        if scope.allows(conn, &row.organisation)? || scope.allows(conn, &row.district)? {
            found.push(row);
            if found.len() >= limit as usize {
                break;
            }
        }
    }
    Ok(found)
}

/// A step of a live file's review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The clerk hands the file in for review (open or returned → submitted).
    Submit,
    /// A reviewer approves it (submitted → approved).
    Approve,
    /// A reviewer sends it back with a reason (submitted → returned).
    Return,
}

impl Step {
    pub fn action(self) -> &'static str {
        match self {
            Step::Submit => "live.submit",
            Step::Approve => "live.approve",
            Step::Return => "live.return",
        }
    }

    fn allowed(self, role: Role) -> bool {
        match self {
            Step::Submit => may_upload(role),
            Step::Approve | Step::Return => {
                matches!(
                    role,
                    Role::Reviewer | Role::ArchiveAdmin | Role::SystemAdmin
                )
            }
        }
    }
}

/// Why a step cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("business file {number} is {state}; {step} needs it {needs}")]
    WrongState {
        number: String,
        state: String,
        step: &'static str,
        needs: &'static str,
    },
    #[error("business file {0} has no pages to hand in")]
    NoPages(String),
    #[error("sending a business file back needs a reason the clerk can act on")]
    NoReason,
}

/// Takes `step` on the live file with `number` for `user`; returns the
/// file as it now is. `Ok(Err(..))` is a step the file's state refuses.
pub fn take_step(
    conn: &Connection,
    user: &User,
    number: &str,
    step: Step,
    reason: Option<&str>,
) -> Result<Result<LiveFile, StepError>, LiveError> {
    let Some(file) = visible(conn, user, number)? else {
        return Err(LiveError::NoSuchFile(number.to_owned()));
    };
    if !step.allowed(user.role) {
        return Err(LiveError::NotAllowed {
            user: user.username.clone(),
            role: user.role.as_str(),
        });
    }
    let (from, to, needs): (&[&str], &str, &str) = match step {
        Step::Submit => (&ADDING, "submitted", "open or returned"),
        Step::Approve => (&["submitted"], "approved", "submitted"),
        Step::Return => (&["submitted"], "returned", "submitted"),
    };
    if !from.contains(&file.state.as_str()) {
        return Ok(Err(StepError::WrongState {
            number: file.business_number,
            state: file.state,
            step: step.action(),
            needs,
        }));
    }
    if step == Step::Submit && file.pages.is_empty() {
        return Ok(Err(StepError::NoPages(file.business_number)));
    }
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if step == Step::Return && reason.is_none() {
        return Ok(Err(StepError::NoReason));
    }
    let return_reason = match step {
        Step::Return => reason,
        Step::Submit => None,
        // An approval keeps the last reason on record.
        Step::Approve => file.return_reason.as_deref(),
    };
    conn.execute(
        "UPDATE live_files SET state = ?2, return_reason = ?3, updated_at = ?4 WHERE id = ?1",
        params![file.id, to, return_reason, store::now()],
    )?;
    let now = get(conn, number)?.ok_or_else(|| {
        LiveError::Store(StoreError::Corrupt(format!("live file {number} vanished")))
    })?;
    Ok(Ok(now))
}

/// Removes page `page` from a live file that still takes pages (the clerk
/// before handing it in); the pages after it move up. The blob stays (it
/// may be shared). Returns whether there was such a page.
pub fn remove_page(
    conn: &Connection,
    user: &User,
    number: &str,
    page: i64,
) -> Result<bool, LiveError> {
    let id = editable(conn, user, number)?;
    let position: Option<i64> = conn
        .query_row(
            "SELECT position FROM live_pages WHERE live_file_id = ?1 AND id = ?2",
            params![id, page],
            |row| row.get(0),
        )
        .optional()?;
    let Some(position) = position else {
        return Ok(false);
    };
    conn.execute(
        "UPDATE uploads SET page_id = NULL WHERE page_id = ?1",
        [page],
    )?;
    conn.execute("DELETE FROM live_pages WHERE id = ?1", [page])?;
    conn.execute(
        "UPDATE live_pages SET position = position - 1 WHERE live_file_id = ?1 AND position > ?2",
        params![id, position],
    )?;
    conn.execute(
        "UPDATE live_files SET updated_at = ?2 WHERE id = ?1",
        params![id, store::now()],
    )?;
    Ok(true)
}

/// Puts a live file's pages in the order `pages` (every page id once).
pub fn reorder(
    conn: &Connection,
    user: &User,
    number: &str,
    pages: &[i64],
) -> Result<Result<(), String>, LiveError> {
    let id = editable(conn, user, number)?;
    let mut statement =
        conn.prepare_cached("SELECT id FROM live_pages WHERE live_file_id = ?1 ORDER BY id")?;
    let mut held: Vec<i64> = statement
        .query_map([id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut given = pages.to_vec();
    given.sort_unstable();
    held.sort_unstable();
    if given != held {
        return Ok(Err(format!(
            "give every page of {number} once: it has pages {held:?}"
        )));
    }
    // Two passes so that no two pages hold one position at any moment.
    conn.execute(
        "UPDATE live_pages SET position = -position WHERE live_file_id = ?1",
        [id],
    )?;
    for (index, page) in pages.iter().enumerate() {
        conn.execute(
            "UPDATE live_pages SET position = ?2 WHERE id = ?1",
            params![page, index as i64 + 1],
        )?;
    }
    conn.execute(
        "UPDATE live_files SET updated_at = ?2 WHERE id = ?1",
        params![id, store::now()],
    )?;
    Ok(Ok(()))
}

/// The longest a viewer link lives.
pub const MAX_LINK_MINUTES: u32 = 24 * 60;

/// Makes a short-lived link to the live file `number`'s pages for a
/// business system to embed (the caller must see the file). Returns the
/// token (shown once; only its hash is kept) and when it expires.
pub fn create_viewer_link(
    conn: &Connection,
    user: &User,
    number: &str,
    minutes: u32,
) -> Result<(String, String), LiveError> {
    let Some(file) = visible(conn, user, number)? else {
        return Err(LiveError::NoSuchFile(number.to_owned()));
    };
    let mut random = [0u8; 24];
    getrandom::fill(&mut random)
        .map_err(|err| LiveError::Store(StoreError::Corrupt(format!("no randomness: {err}"))))?;
    let token: String = std::iter::once("dgv_".to_owned())
        .chain(random.iter().map(|b| format!("{b:02x}")))
        .collect();
    let minutes = minutes.clamp(1, MAX_LINK_MINUTES);
    let expires_at = store::time_after(std::time::Duration::from_secs(u64::from(minutes) * 60));
    conn.execute(
        "INSERT INTO viewer_links(token_hash, business_number, created_by, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            link_hash(&token),
            file.business_number,
            user.username,
            store::now(),
            expires_at
        ],
    )?;
    Ok((token, expires_at))
}

fn link_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// A viewer link that has not expired: its file's number, who made it and
/// until when it holds.
pub fn viewer_link(
    conn: &Connection,
    token: &str,
) -> Result<Option<(String, String, String)>, LiveError> {
    Ok(conn
        .query_row(
            "SELECT business_number, created_by, expires_at FROM viewer_links
             WHERE token_hash = ?1 AND expires_at > ?2",
            params![link_hash(token), store::now()],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?)
}
