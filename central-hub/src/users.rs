//! People at the hub and what they may see: users with a role, each bound
//! to an organisation; sessions; lockout after repeated failures; and
//! explicit cross-organisation grants that expire.
//!
//! A user sees their organisation's subtree (a city-level user the whole
//! city) plus the subtrees of their unexpired grants ([`Scope`]). Passwords
//! are Argon2id ([`dangan_shared::password`]); sessions are random tokens
//! kept as BLAKE3 hashes. Argon2 is slow on purpose: call [`authenticate`]
//! and [`add`] off the async runtime.
use std::time::Duration;

use dangan_shared::password::{self, PasswordCost, PasswordError};
use dangan_sync::{random_token, token_hash};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::orgs;
use crate::store::{self, StoreError, write_tx};

/// Prefix of session tokens, so a leaked one is recognisable.
pub const SESSION_PREFIX: &str = "dgs_";

/// How long a session lasts.
pub const SESSION_HOURS: u64 = 12;

/// Failed logins in a row that lock an account, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lockout {
    pub max_failures: u32,
    pub duration: Duration,
}

impl Default for Lockout {
    fn default() -> Self {
        Self {
            max_failures: 5,
            duration: Duration::from_secs(15 * 60),
        }
    }
}

/// What a hub user does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 系统管理员: users, organisations, dictionaries, everything.
    SystemAdmin,
    /// 档案管理员: the archive of their organisation.
    ArchiveAdmin,
    /// 复核员: retrieves files for back-office review.
    Reviewer,
    /// 稽核员: audits; reads the audit trail.
    Auditor,
    /// 街道经办员: uploads during the business transaction.
    Clerk,
    /// 只读: looks, changes nothing.
    ReadOnly,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::SystemAdmin,
        Role::ArchiveAdmin,
        Role::Reviewer,
        Role::Auditor,
        Role::Clerk,
        Role::ReadOnly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::SystemAdmin => "system_admin",
            Role::ArchiveAdmin => "archive_admin",
            Role::Reviewer => "reviewer",
            Role::Auditor => "auditor",
            Role::Clerk => "clerk",
            Role::ReadOnly => "read_only",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = UserError;

    fn from_str(text: &str) -> Result<Self, UserError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| UserError::BadRole(text.to_owned()))
    }
}

/// A user as shown (never with the hash).
#[derive(Clone, Debug, Serialize)]
pub struct User {
    #[serde(skip)]
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub org: String,
    pub disabled: bool,
    pub locked_until: Option<String>,
    pub created_at: String,
}

/// A cross-organisation grant.
#[derive(Clone, Debug, Serialize)]
pub struct Grant {
    pub id: i64,
    pub username: String,
    pub org: String,
    pub reason: String,
    pub granted_by: String,
    pub created_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user name {0:?}: 1–64 letters, digits, '.', '-' or '_'")]
    BadName(String),
    #[error("role {0:?}: one of system_admin, archive_admin, reviewer, auditor, clerk, read_only")]
    BadRole(String),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("user {0:?} already exists")]
    Exists(String),
    #[error("no user {0:?}")]
    NoSuchUser(String),
    #[error("no organisation {0} (see `dangan-hub org list`)")]
    NoSuchOrg(String),
    #[error("the grant needs a reason and an end date after today (YYYY-MM-DD), got {0:?}")]
    BadGrant(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for UserError {
    fn from(err: rusqlite::Error) -> Self {
        UserError::Store(err.into())
    }
}

/// Why a login did not open a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginRefused {
    /// Wrong user name or password, or a disabled user (not told apart).
    BadCredentials,
    /// Too many failures: locked until this time (RFC 3339 UTC).
    Locked { until: String },
}

const COLUMNS: &str = "id, username, display_name, role, org, disabled, locked_until, created_at";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let role: String = row.get(3)?;
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        display_name: row.get(2)?,
        role: role.parse().unwrap_or(Role::ReadOnly),
        org: row.get(4)?,
        disabled: row.get(5)?,
        locked_until: row.get(6)?,
        created_at: row.get(7)?,
    })
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Adds a user of `org` with `role`. Hashes the password (slow).
pub fn add(
    conn: &mut Connection,
    username: &str,
    display_name: Option<&str>,
    role: Role,
    org: &str,
    password: &str,
    cost: PasswordCost,
) -> Result<User, UserError> {
    if !valid_name(username) {
        return Err(UserError::BadName(username.to_owned()));
    }
    let hash = password::hash_password(password, cost)?;
    let tx = write_tx(conn)?;
    if orgs::get(&tx, org)
        .map_err(|err| UserError::Store(StoreError::Corrupt(err.to_string())))?
        .is_none()
    {
        return Err(UserError::NoSuchOrg(org.to_owned()));
    }
    if find(&tx, username)?.is_some() {
        return Err(UserError::Exists(username.to_owned()));
    }
    tx.execute(
        "INSERT INTO users(username, display_name, role, org, password_hash, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            username,
            display_name.unwrap_or(username),
            role.as_str(),
            org,
            hash,
            store::now()
        ],
    )?;
    tx.commit()?;
    find(conn, username)?.ok_or_else(|| UserError::NoSuchUser(username.to_owned()))
}

pub fn find(conn: &Connection, username: &str) -> Result<Option<User>, UserError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM users WHERE username = ?1"),
            [username],
            from_row,
        )
        .optional()?)
}

pub fn list(conn: &Connection) -> Result<Vec<User>, UserError> {
    let mut statement = conn.prepare(&format!("SELECT {COLUMNS} FROM users ORDER BY username"))?;
    let rows = statement.query_map([], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The stored password hash of an account that has no password yet: no
/// password verifies against it (it is not a PHC string).
pub const NO_PASSWORD: &str = "!";

/// The first system administrator's account, made by `dangan-hub init`.
pub const FIRST_ADMIN: &str = "admin";

/// Adds a user of `org` with `role` and no usable password: they cannot log
/// in until one is set with [`set_password`]. `init` makes the first system
/// administrator this way; the admin token is their credential meanwhile.
pub fn add_without_password(
    conn: &Connection,
    username: &str,
    role: Role,
    org: &str,
) -> Result<User, UserError> {
    if !valid_name(username) {
        return Err(UserError::BadName(username.to_owned()));
    }
    if orgs::get(conn, org)
        .map_err(|err| UserError::Store(StoreError::Corrupt(err.to_string())))?
        .is_none()
    {
        return Err(UserError::NoSuchOrg(org.to_owned()));
    }
    if find(conn, username)?.is_some() {
        return Err(UserError::Exists(username.to_owned()));
    }
    conn.execute(
        "INSERT INTO users(username, display_name, role, org, password_hash, created_at)
         VALUES (?1, ?1, ?2, ?3, ?4, ?5)",
        params![username, role.as_str(), org, NO_PASSWORD, store::now()],
    )?;
    find(conn, username)?.ok_or_else(|| UserError::NoSuchUser(username.to_owned()))
}

/// Sets a user's password (hashing it is slow), lifts a lockout and ends
/// their sessions, so whoever knew the old password is logged out.
pub fn set_password(
    conn: &mut Connection,
    username: &str,
    password: &str,
    cost: PasswordCost,
) -> Result<User, UserError> {
    let hash = password::hash_password(password, cost)?;
    let tx = write_tx(conn)?;
    let user = find(&tx, username)?.ok_or_else(|| UserError::NoSuchUser(username.to_owned()))?;
    tx.execute(
        "UPDATE users SET password_hash = ?2, failed_logins = 0, locked_until = NULL
         WHERE id = ?1",
        params![user.id, hash],
    )?;
    tx.execute("DELETE FROM sessions WHERE user_id = ?1", [user.id])?;
    tx.commit()?;
    find(conn, username)?.ok_or_else(|| UserError::NoSuchUser(username.to_owned()))
}

/// Disables or re-enables a user; disabling ends their sessions.
pub fn set_disabled(
    conn: &mut Connection,
    username: &str,
    disabled: bool,
) -> Result<User, UserError> {
    let tx = write_tx(conn)?;
    let user = find(&tx, username)?.ok_or_else(|| UserError::NoSuchUser(username.to_owned()))?;
    tx.execute(
        "UPDATE users SET disabled = ?2, failed_logins = 0, locked_until = NULL WHERE id = ?1",
        params![user.id, disabled],
    )?;
    if disabled {
        tx.execute("DELETE FROM sessions WHERE user_id = ?1", [user.id])?;
    }
    tx.commit()?;
    find(conn, username)?.ok_or_else(|| UserError::NoSuchUser(username.to_owned()))
}

/// Checks a password and opens a session: the session token (returned
/// once) and the user. Failures count; `lockout.max_failures` in a row lock
/// the account for `lockout.duration`, during which even the right password
/// is refused. Runs Argon2: call it off the async runtime.
pub fn authenticate(
    conn: &mut Connection,
    username: &str,
    password_text: &str,
    lockout: Lockout,
    address: Option<&str>,
) -> Result<Result<(String, User), LoginRefused>, UserError> {
    let found: Option<(i64, String, bool, i64, Option<String>)> = conn
        .query_row(
            "SELECT id, password_hash, disabled, failed_logins, locked_until FROM users
             WHERE username = ?1",
            [username],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            },
        )
        .optional()?;
    let Some((id, hash, disabled, failures, locked_until)) = found else {
        // Hash anyway, so an unknown name takes as long as a wrong password.
        let _ = password::verify_password(password_text, DUMMY_HASH);
        return Ok(Err(LoginRefused::BadCredentials));
    };
    let now = store::now();
    if let Some(until) = locked_until.filter(|until| *until > now) {
        return Ok(Err(LoginRefused::Locked { until }));
    }
    let matches = password::verify_password(password_text, &hash);
    let tx = write_tx(conn)?;
    if !matches || disabled {
        let failures = failures + 1;
        if failures >= i64::from(lockout.max_failures) {
            let until = store::time_after(lockout.duration);
            tx.execute(
                "UPDATE users SET failed_logins = 0, locked_until = ?2 WHERE id = ?1",
                params![id, until],
            )?;
            tx.commit()?;
            tracing::warn!(user = username, %until, "account locked after repeated failed logins");
            return Ok(Err(LoginRefused::Locked { until }));
        }
        tx.execute(
            "UPDATE users SET failed_logins = ?2 WHERE id = ?1",
            params![id, failures],
        )?;
        tx.commit()?;
        return Ok(Err(LoginRefused::BadCredentials));
    }
    tx.execute(
        "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = ?1",
        [id],
    )?;
    let token = random_token(SESSION_PREFIX).map_err(StoreError::from)?;
    tx.execute("DELETE FROM sessions WHERE expires_at < ?1", [&now])?;
    tx.execute(
        "INSERT INTO sessions(token_hash, user_id, created_at, expires_at, address)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            token_hash(&token),
            id,
            now,
            store::time_after(Duration::from_secs(SESSION_HOURS * 3600)),
            address
        ],
    )?;
    tx.commit()?;
    let user = find(conn, username)?.ok_or_else(|| UserError::NoSuchUser(username.to_owned()))?;
    Ok(Ok((token, user)))
}

/// A valid Argon2id hash of nothing anyone types, for constant-time misses.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$0WgHgF3MC3o5U4EBqMSEPbWb3n5rbuTm1NG3d9wQ7iE";

/// The user of a live session token.
pub fn session_user(conn: &Connection, token: &str) -> Result<Option<User>, UserError> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {} FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND u.disabled = 0",
                COLUMNS
                    .split(", ")
                    .map(|c| format!("u.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            params![token_hash(token), store::now()],
            from_row,
        )
        .optional()?)
}

/// The account an admin token (`dga_...`) belongs to, unless it is disabled.
pub fn admin_token_user(conn: &Connection, token: &str) -> Result<Option<User>, UserError> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {} FROM admin_tokens a JOIN users u ON u.id = a.user_id
                 WHERE a.token_hash = ?1 AND u.disabled = 0",
                COLUMNS
                    .split(", ")
                    .map(|c| format!("u.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            [token_hash(token)],
            from_row,
        )
        .optional()?)
}

/// Ends a session.
pub fn end_session(conn: &Connection, token: &str) -> Result<(), UserError> {
    conn.execute(
        "DELETE FROM sessions WHERE token_hash = ?1",
        [token_hash(token)],
    )?;
    Ok(())
}

/// Grants `username` the subtree of `org` until the end of `until`
/// (YYYY-MM-DD, a day after today at the earliest).
pub fn grant(
    conn: &mut Connection,
    username: &str,
    org: &str,
    until: &str,
    reason: &str,
    granted_by: &str,
) -> Result<Grant, UserError> {
    let valid_date = is_day(until);
    let expires_at = format!("{until}T23:59:59Z");
    if !valid_date || reason.trim().is_empty() || expires_at <= store::now() {
        return Err(UserError::BadGrant(until.to_owned()));
    }
    let tx = write_tx(conn)?;
    let user = find(&tx, username)?.ok_or_else(|| UserError::NoSuchUser(username.to_owned()))?;
    if orgs::get(&tx, org)
        .map_err(|err| UserError::Store(StoreError::Corrupt(err.to_string())))?
        .is_none()
    {
        return Err(UserError::NoSuchOrg(org.to_owned()));
    }
    tx.execute(
        "INSERT INTO grants(user_id, org, reason, granted_by, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            user.id,
            org,
            reason.trim(),
            granted_by,
            store::now(),
            expires_at
        ],
    )?;
    let id = tx.last_insert_rowid();
    tx.commit()?;
    grants(conn, Some(username))?
        .into_iter()
        .find(|g| g.id == id)
        .ok_or_else(|| UserError::NoSuchUser(username.to_owned()))
}

/// Whether `text` is a real calendar day written YYYY-MM-DD.
fn is_day(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    if text.len() != 10 || parts.len() != 3 {
        return false;
    }
    let (Ok(year), Ok(month), Ok(day)) = (
        parts[0].parse::<i32>(),
        parts[1].parse::<u8>(),
        parts[2].parse::<u8>(),
    ) else {
        return false;
    };
    time::Month::try_from(month)
        .ok()
        .and_then(|month| time::Date::from_calendar_date(year, month, day).ok())
        .is_some()
}

/// Grants, of one user or of everyone, newest first.
pub fn grants(conn: &Connection, username: Option<&str>) -> Result<Vec<Grant>, UserError> {
    let mut statement = conn.prepare(
        "SELECT g.id, u.username, g.org, g.reason, g.granted_by, g.created_at, g.expires_at,
                g.revoked_at
         FROM grants g JOIN users u ON u.id = g.user_id
         WHERE ?1 IS NULL OR u.username = ?1
         ORDER BY g.id DESC",
    )?;
    let rows = statement.query_map([username], |row| {
        Ok(Grant {
            id: row.get(0)?,
            username: row.get(1)?,
            org: row.get(2)?,
            reason: row.get(3)?,
            granted_by: row.get(4)?,
            created_at: row.get(5)?,
            expires_at: row.get(6)?,
            revoked_at: row.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Ends a grant now.
pub fn revoke_grant(conn: &Connection, id: i64) -> Result<bool, UserError> {
    Ok(conn.execute(
        "UPDATE grants SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, store::now()],
    )? > 0)
}

/// The organisations a user may see: their own subtree and those of their
/// live grants.
#[derive(Clone, Debug, Serialize)]
pub struct Scope {
    pub roots: Vec<String>,
}

impl Scope {
    pub fn of(conn: &Connection, user: &User) -> Result<Scope, UserError> {
        let mut roots = vec![user.org.clone()];
        let mut statement = conn.prepare_cached(
            "SELECT org FROM grants
             WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2",
        )?;
        let rows = statement.query_map(params![user.id, store::now()], |row| row.get(0))?;
        for row in rows {
            roots.push(row?);
        }
        Ok(Scope { roots })
    }

    /// Whether `org` lies in one of the scope's subtrees.
    pub fn allows(&self, conn: &Connection, org: &str) -> Result<bool, UserError> {
        for root in &self.roots {
            if orgs::is_within(conn, org, root)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Prefix of API tokens for systems.
pub const API_TOKEN_PREFIX: &str = "dgt_";

/// An API token as listed (never the token itself).
#[derive(Clone, Debug, Serialize)]
pub struct ApiToken {
    pub name: String,
    pub role: Role,
    pub org: String,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// Makes an API token for a system, scoped like a user of `role` in `org`;
/// returns the token (shown once) and its listing.
pub fn create_token(
    conn: &mut Connection,
    name: &str,
    role: Role,
    org: &str,
    valid: Option<Duration>,
    created_by: &str,
) -> Result<(String, ApiToken), UserError> {
    if !valid_name(name) {
        return Err(UserError::BadName(name.to_owned()));
    }
    let token = random_token(API_TOKEN_PREFIX).map_err(StoreError::from)?;
    let tx = write_tx(conn)?;
    if orgs::get(&tx, org)
        .map_err(|err| UserError::Store(StoreError::Corrupt(err.to_string())))?
        .is_none()
    {
        return Err(UserError::NoSuchOrg(org.to_owned()));
    }
    let exists: Option<i64> = tx
        .query_row("SELECT id FROM api_tokens WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    if exists.is_some() {
        return Err(UserError::Exists(name.to_owned()));
    }
    tx.execute(
        "INSERT INTO api_tokens(name, token_hash, role, org, created_by, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            name,
            token_hash(&token),
            role.as_str(),
            org,
            created_by,
            store::now(),
            valid.map(store::time_after)
        ],
    )?;
    tx.commit()?;
    let listed = tokens(conn)?
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| UserError::NoSuchUser(name.to_owned()))?;
    Ok((token, listed))
}

/// Every API token, by name.
pub fn tokens(conn: &Connection) -> Result<Vec<ApiToken>, UserError> {
    let mut statement = conn.prepare(
        "SELECT name, role, org, created_by, created_at, expires_at, revoked_at
         FROM api_tokens ORDER BY name",
    )?;
    let rows = statement.query_map([], |row| {
        let role: String = row.get(1)?;
        Ok(ApiToken {
            name: row.get(0)?,
            role: role.parse().unwrap_or(Role::ReadOnly),
            org: row.get(2)?,
            created_by: row.get(3)?,
            created_at: row.get(4)?,
            expires_at: row.get(5)?,
            revoked_at: row.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Revokes an API token by name; its next request is refused.
pub fn revoke_token(conn: &Connection, name: &str) -> Result<(), UserError> {
    let changed = conn.execute(
        "UPDATE api_tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
        params![name, store::now()],
    )?;
    if changed == 0 {
        return Err(UserError::NoSuchUser(name.to_owned()));
    }
    Ok(())
}

/// The principal of a live API token, as a user named `token:NAME` with
/// the token's role and organisation (and no grants).
pub fn token_user(conn: &Connection, token: &str) -> Result<Option<User>, UserError> {
    Ok(conn
        .query_row(
            "SELECT -id, 'token:' || name, name, role, org, 0, NULL, created_at FROM api_tokens
             WHERE token_hash = ?1 AND revoked_at IS NULL
               AND (expires_at IS NULL OR expires_at > ?2)",
            params![token_hash(token), store::now()],
            from_row,
        )
        .optional()?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const CHEAP: PasswordCost = PasswordCost {
        memory_kib: 8,
        iterations: 1,
    };

    fn hub() -> (tempfile::TempDir, crate::store::Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::Db::create(dir.path()).unwrap();
        {
            let mut conn = db.get().unwrap();
            orgs::add(&mut conn, "330100", "杭州市", None).unwrap();
            orgs::add(&mut conn, "330106", "西湖区", Some("330100")).unwrap();
            orgs::add(&mut conn, "330108", "滨江区", Some("330100")).unwrap();
            orgs::add(&mut conn, "330106001", "北山街道", Some("330106")).unwrap();
        }
        (dir, db)
    }

    #[test]
    fn the_dummy_hash_is_a_valid_phc_string() {
        assert!(argon2::password_hash::PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn repeated_failures_lock_the_account_even_against_the_right_password() {
        let (_dir, db) = hub();
        let mut conn = db.get().unwrap();
        add(
            &mut conn,
            "zhang",
            None,
            Role::Reviewer,
            "330106",
            "right-password",
            CHEAP,
        )
        .unwrap();
        let lockout = Lockout {
            max_failures: 3,
            duration: Duration::from_secs(600),
        };
        let login = |conn: &mut Connection, password: &str| {
            authenticate(conn, "zhang", password, lockout, None).unwrap()
        };
        assert_eq!(
            login(&mut conn, "wrong-1").unwrap_err(),
            LoginRefused::BadCredentials
        );
        // A success in between resets the count.
        assert!(login(&mut conn, "right-password").is_ok());
        assert_eq!(
            login(&mut conn, "wrong-1").unwrap_err(),
            LoginRefused::BadCredentials
        );
        assert_eq!(
            login(&mut conn, "wrong-2").unwrap_err(),
            LoginRefused::BadCredentials
        );
        assert!(matches!(
            login(&mut conn, "wrong-3").unwrap_err(),
            LoginRefused::Locked { .. }
        ));
        assert!(matches!(
            login(&mut conn, "right-password").unwrap_err(),
            LoginRefused::Locked { .. }
        ));
        // An administrator re-enabling the user lifts the lock.
        set_disabled(&mut conn, "zhang", false).unwrap();
        let (token, user) = login(&mut conn, "right-password").unwrap();
        assert_eq!(
            session_user(&conn, &token).unwrap().unwrap().username,
            user.username
        );
        // Disabling ends the session.
        set_disabled(&mut conn, "zhang", true).unwrap();
        assert!(session_user(&conn, &token).unwrap().is_none());
        assert_eq!(
            login(&mut conn, "right-password").unwrap_err(),
            LoginRefused::BadCredentials
        );
    }

    #[test]
    fn a_user_sees_their_subtree_and_unexpired_grants_only() {
        let (_dir, db) = hub();
        let mut conn = db.get().unwrap();
        let user = add(
            &mut conn,
            "li",
            None,
            Role::Auditor,
            "330106",
            "right-password",
            CHEAP,
        )
        .unwrap();
        let scope = Scope::of(&conn, &user).unwrap();
        assert!(scope.allows(&conn, "330106001").unwrap());
        assert!(!scope.allows(&conn, "330108").unwrap());
        assert!(!scope.allows(&conn, "330100").unwrap());
        // A grant until tomorrow opens 滨江区; one that expired does not count.
        let tomorrow = store::time_after(Duration::from_secs(86_400))[..10].to_owned();
        let made = grant(
            &mut conn,
            "li",
            "330108",
            &tomorrow,
            "audit 2026-11",
            "admin",
        )
        .unwrap();
        assert!(
            Scope::of(&conn, &user)
                .unwrap()
                .allows(&conn, "330108")
                .unwrap()
        );
        conn.execute(
            "UPDATE grants SET expires_at = '2020-01-01T23:59:59Z' WHERE id = ?1",
            [made.id],
        )
        .unwrap();
        assert!(
            !Scope::of(&conn, &user)
                .unwrap()
                .allows(&conn, "330108")
                .unwrap()
        );
        // Past dates, empty reasons and unknown organisations are refused.
        assert!(matches!(
            grant(&mut conn, "li", "330108", "2020-01-01", "x", "admin"),
            Err(UserError::BadGrant(_))
        ));
        assert!(matches!(
            grant(&mut conn, "li", "330108", &tomorrow, " ", "admin"),
            Err(UserError::BadGrant(_))
        ));
        assert!(matches!(
            grant(&mut conn, "li", "330199", &tomorrow, "x", "admin"),
            Err(UserError::NoSuchOrg(_))
        ));
        assert!(matches!(
            add(
                &mut conn,
                "x",
                None,
                Role::Clerk,
                "339999",
                "right-password",
                CHEAP
            ),
            Err(UserError::NoSuchOrg(_))
        ));
    }
}
