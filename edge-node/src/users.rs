//! People at the edge: operators (扫描员), inspectors (质检员) and edge
//! admins (管理员). Passwords are hashed with Argon2id (PHC strings, so the
//! cost travels with each hash); API sessions are random bearer tokens kept
//! as BLAKE3 hashes. Hashing is slow on purpose: callers on an async
//! runtime run [`hash_password`] and [`verify_password`] on a blocking
//! thread.
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::lifecycle::Role;
use crate::store::{StoreError, now};
pub use dangan_shared::password::{MIN_PASSWORD, PasswordCost, verify_password};

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user name {0:?}: 1–64 letters, digits, '.', '-' or '_'")]
    BadName(String),
    #[error("a password needs at least {MIN_PASSWORD} characters")]
    WeakPassword,
    #[error("user {0:?} already exists")]
    Exists(String),
    #[error("no user {0:?}")]
    NoSuchUser(String),
    #[error("password hashing: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for UserError {
    fn from(err: rusqlite::Error) -> Self {
        UserError::Store(err.into())
    }
}

/// A user as shown (never with the hash).
#[derive(Clone, Debug, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: String,
}

/// An Argon2id PHC string for `password` ([`dangan_shared::password`]).
pub fn hash_password(password: &str, cost: PasswordCost) -> Result<String, UserError> {
    dangan_shared::password::hash_password(password, cost).map_err(|err| match err {
        dangan_shared::password::PasswordError::TooShort => UserError::WeakPassword,
        dangan_shared::password::PasswordError::Hash(message) => UserError::Hash(message),
    })
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Adds a user with an already hashed password.
pub fn add(
    conn: &Connection,
    username: &str,
    display_name: &str,
    role: Role,
    password_hash: &str,
) -> Result<User, UserError> {
    if !valid_name(username) {
        return Err(UserError::BadName(username.to_owned()));
    }
    if find(conn, username)?.is_some() {
        return Err(UserError::Exists(username.to_owned()));
    }
    conn.execute(
        "INSERT INTO users(username, display_name, role, password_hash, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![username, display_name, role.as_str(), password_hash, now()],
    )?;
    find(conn, username)?.ok_or_else(|| UserError::NoSuchUser(username.to_owned()))
}

const COLUMNS: &str = "id, username, display_name, role, disabled, created_at";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let role: String = row.get(3)?;
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        display_name: row.get(2)?,
        role: role
            .parse()
            .map_err(|err: crate::lifecycle::LifecycleError| {
                rusqlite::Error::FromSqlConversionFailure(
                    3,
                    rusqlite::types::Type::Text,
                    err.into(),
                )
            })?,
        disabled: row.get(4)?,
        created_at: row.get(5)?,
    })
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

/// Checks a user's password; the user when it matches and the user is not
/// disabled. Runs Argon2: call it off the async runtime.
pub fn authenticate(
    conn: &Connection,
    username: &str,
    password: &str,
) -> Result<Option<User>, UserError> {
    let found: Option<String> = conn
        .query_row(
            "SELECT password_hash FROM users WHERE username = ?1 AND disabled = 0",
            [username],
            |row| row.get(0),
        )
        .optional()?;
    match found {
        Some(hash) if verify_password(password, &hash) => find(conn, username),
        _ => Ok(None),
    }
}

/// How long a session lasts: one working day and a bit.
pub const SESSION_HOURS: i64 = 12;

fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// Opens a session for a user: a random token (returned once, stored only
/// as its hash).
pub fn create_session(conn: &Connection, user: &User) -> Result<String, UserError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|err| UserError::Hash(err.to_string()))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::hours(SESSION_HOURS))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let created = now();
    conn.execute("DELETE FROM sessions WHERE expires_at < ?1", [&created])?;
    conn.execute(
        "INSERT INTO sessions(token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![token_hash(&token), user.id, created, expires],
    )?;
    Ok(token)
}

/// The user of a live session token.
pub fn session_user(conn: &Connection, token: &str) -> Result<Option<User>, UserError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {} FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND u.disabled = 0",
            COLUMNS
                .split(", ")
                .map(|c| format!("u.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))?
        .query_row(params![token_hash(token), now()], from_row)
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

/// Replaces a user's password hash.
pub fn set_password(conn: &Connection, username: &str, hash: &str) -> Result<(), UserError> {
    let changed = conn.execute(
        "UPDATE users SET password_hash = ?1 WHERE username = ?2",
        params![hash, username],
    )?;
    if changed == 0 {
        return Err(UserError::NoSuchUser(username.to_owned()));
    }
    Ok(())
}

/// Disables or re-enables a user (users are never deleted: their names
/// stay attached to what they did). Disabling ends their sessions.
pub fn set_disabled(conn: &Connection, username: &str, disabled: bool) -> Result<(), UserError> {
    let user = find(conn, username)?.ok_or_else(|| UserError::NoSuchUser(username.to_owned()))?;
    conn.execute(
        "UPDATE users SET disabled = ?1 WHERE id = ?2",
        params![disabled, user.id],
    )?;
    if disabled {
        conn.execute("DELETE FROM sessions WHERE user_id = ?1", [user.id])?;
    }
    Ok(())
}

/// The language a user chose in the web UI (`zh` or `en`), if any.
pub fn language(conn: &Connection, user_id: i64) -> Result<Option<String>, UserError> {
    Ok(conn
        .query_row("SELECT lang FROM users WHERE id = ?1", [user_id], |row| {
            row.get(0)
        })
        .optional()?
        .flatten())
}

/// Remembers a user's language (`zh` or `en`).
pub fn set_language(conn: &Connection, user_id: i64, lang: &str) -> Result<(), UserError> {
    conn.execute(
        "UPDATE users SET lang = ?2 WHERE id = ?1",
        params![user_id, lang],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: PasswordCost = PasswordCost {
        memory_kib: 8,
        iterations: 1,
    };

    #[test]
    fn a_password_verifies_and_a_wrong_one_does_not() {
        let hash = hash_password("correct horse", CHEAP).expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct hors", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        // Salted: the same password hashes differently each time.
        assert_ne!(hash, hash_password("correct horse", CHEAP).expect("hash"));
        assert!(matches!(
            hash_password("short", CHEAP),
            Err(UserError::WeakPassword)
        ));
    }
}
