//! Districts, edge nodes and credentials: one-time enrolment codes, node
//! tokens and admin tokens (each a credential of a hub account, normally
//! the first system administrator `admin`), all stored as BLAKE3 hashes only.
//!
//! A district is created the first time an administrator enrols a node for
//! it. A node is named `<district>-<n>` (n counts the district's nodes from
//! 1), so a re-enrolled edge gets a new name and its old credential can be
//! revoked on its own.
use std::time::Duration;

use dangan_shared::OrgCode;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::store::{self, StoreError, write_tx};
use dangan_sync::{random_token, token_hash};

/// Prefixes make a leaked secret recognisable (and greppable in logs).
pub const NODE_TOKEN_PREFIX: &str = "dgn_";
pub const ENROLMENT_CODE_PREFIX: &str = "dgc_";
pub const ADMIN_TOKEN_PREFIX: &str = "dga_";

/// A freshly made enrolment code, shown to the administrator once.
#[derive(Debug, Clone, Serialize)]
pub struct EnrolmentCode {
    pub code: String,
    pub district: String,
    pub expires_at: String,
}

/// A node as `dangan-hub node list` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub district: String,
    pub enrolled_at: String,
    pub last_contact: Option<String>,
    pub revoked: bool,
    pub revoked_at: Option<String>,
}

/// A node resolved from its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub node_id: String,
    pub district: String,
    pub revoked: bool,
    pub last_contact: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error("unknown enrolment code")]
    UnknownCode,
    #[error("the enrolment code expired at {0}; ask the administrator for a new one")]
    Expired(String),
    #[error("the enrolment code was already used (by node {0})")]
    Used(String),
    #[error("the enrolment code is for district {code_district}, not {requested}")]
    WrongDistrict {
        code_district: String,
        requested: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for EnrolError {
    fn from(err: rusqlite::Error) -> Self {
        EnrolError::Store(err.into())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    #[error("no node named {0:?} (see `dangan-hub node list`)")]
    NoSuchNode(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Records `district` if the hub does not know it yet, and puts it in the
/// organisation tree ([`crate::orgs::ensure_district_org`]).
pub fn ensure_district(conn: &Connection, district: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR IGNORE INTO districts(code, created_at) VALUES (?1, ?2)",
        params![district, store::now()],
    )?;
    crate::orgs::ensure_district_org(conn, district)
}

/// Makes a one-time enrolment code for `district`, valid for `valid`.
pub fn create_enrolment_code(
    conn: &mut Connection,
    district: &OrgCode,
    valid: Duration,
) -> Result<EnrolmentCode, StoreError> {
    let code = random_token(ENROLMENT_CODE_PREFIX)?;
    let expires_at = store::time_after(valid);
    let tx = write_tx(conn)?;
    ensure_district(&tx, district.as_str())?;
    tx.execute(
        "INSERT INTO enrolment_codes(code_hash, district, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![
            token_hash(&code),
            district.as_str(),
            store::now(),
            expires_at
        ],
    )?;
    tx.commit()?;
    Ok(EnrolmentCode {
        code,
        district: district.to_string(),
        expires_at,
    })
}

/// Exchanges an enrolment code for a new node and its token (returned
/// once). The code is spent in the same transaction.
pub fn enrol(
    conn: &mut Connection,
    code: &str,
    district: &str,
) -> Result<(String, String), EnrolError> {
    let tx = write_tx(conn)?;
    let row: Option<(String, String, Option<String>, Option<String>)> = tx
        .query_row(
            "SELECT district, expires_at, used_at, node_id FROM enrolment_codes
             WHERE code_hash = ?1",
            [token_hash(code)],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()?;
    let Some((code_district, expires_at, used_at, used_by)) = row else {
        return Err(EnrolError::UnknownCode);
    };
    if used_at.is_some() {
        return Err(EnrolError::Used(used_by.unwrap_or_default()));
    }
    if expires_at <= store::now() {
        return Err(EnrolError::Expired(expires_at));
    }
    if code_district != district {
        return Err(EnrolError::WrongDistrict {
            code_district,
            requested: district.to_owned(),
        });
    }
    let count: i64 = tx.query_row(
        "SELECT COUNT(*) FROM nodes WHERE district = ?1",
        [district],
        |row| row.get(0),
    )?;
    let node_id = format!("{district}-{}", count + 1);
    let token = random_token(NODE_TOKEN_PREFIX).map_err(StoreError::from)?;
    let now = store::now();
    tx.execute(
        "INSERT INTO nodes(id, district, token_hash, enrolled_at, last_contact)
         VALUES (?1, ?2, ?3, ?4, ?4)",
        params![node_id, district, token_hash(&token), now],
    )?;
    tx.execute(
        "UPDATE enrolment_codes SET used_at = ?1, node_id = ?2 WHERE code_hash = ?3",
        params![now, node_id, token_hash(code)],
    )?;
    tx.commit()?;
    Ok((node_id, token))
}

/// Resolves a node token (revoked nodes included, so the caller can say so).
pub fn credential(conn: &Connection, token: &str) -> Result<Option<Credential>, StoreError> {
    // Cached: this runs for every request of every edge.
    Ok(conn
        .prepare_cached(
            "SELECT id, district, revoked_at IS NOT NULL, last_contact FROM nodes
             WHERE token_hash = ?1",
        )?
        .query_row([token_hash(token)], |row| {
            Ok(Credential {
                node_id: row.get(0)?,
                district: row.get(1)?,
                revoked: row.get(2)?,
                last_contact: row.get(3)?,
            })
        })
        .optional()?)
}

/// Records that the node was in contact now.
pub fn touch(conn: &Connection, node_id: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE nodes SET last_contact = ?1 WHERE id = ?2",
        params![store::now(), node_id],
    )?;
    Ok(())
}

/// The enrolled edge nodes (not the monthly close's pseudo-node
/// `DISTRICT-live`, which has no credential and no edge behind it).
pub fn list_nodes(conn: &Connection) -> Result<Vec<NodeInfo>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, district, enrolled_at, last_contact, revoked_at FROM nodes
         WHERE id NOT LIKE '%-live' ORDER BY district, enrolled_at, id",
    )?;
    let rows = stmt.query_map([], |row| {
        let revoked_at: Option<String> = row.get(4)?;
        Ok(NodeInfo {
            id: row.get(0)?,
            district: row.get(1)?,
            enrolled_at: row.get(2)?,
            last_contact: row.get(3)?,
            revoked: revoked_at.is_some(),
            revoked_at,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Revokes a node's credential; its next request is refused. Revoking a
/// revoked node changes nothing. Returns the node as it now stands.
pub fn revoke(conn: &mut Connection, node_id: &str) -> Result<NodeInfo, RevokeError> {
    let tx = write_tx(conn).map_err(StoreError::from)?;
    tx.execute(
        "UPDATE nodes SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
        params![store::now(), node_id],
    )
    .map_err(StoreError::from)?;
    tx.commit().map_err(StoreError::from)?;
    list_nodes(conn)?
        .into_iter()
        .find(|node| node.id == node_id)
        .ok_or_else(|| RevokeError::NoSuchNode(node_id.to_owned()))
}

/// Makes a new admin token (returned once) for the account `username`,
/// normally the first system administrator (`admin`, made by `init`): it
/// acts as that user in the API and is audited as them, with actor kind
/// `admin`. [`crate::users::admin_token_user`] resolves it.
pub fn create_admin_token(conn: &Connection, username: &str) -> Result<String, AdminTokenError> {
    let user_id: i64 = conn
        .query_row(
            "SELECT id FROM users WHERE username = ?1",
            [username],
            |row| row.get(0),
        )
        .optional()
        .map_err(StoreError::from)?
        .ok_or_else(|| AdminTokenError::NoSuchUser(username.to_owned()))?;
    let token = random_token(ADMIN_TOKEN_PREFIX).map_err(StoreError::from)?;
    conn.execute(
        "INSERT INTO admin_tokens(token_hash, created_at, user_id) VALUES (?1, ?2, ?3)",
        params![token_hash(&token), store::now(), user_id],
    )
    .map_err(StoreError::from)?;
    Ok(token)
}

#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    #[error(
        "no user {0:?} to issue the admin token for (create it: dangan-hub user add {0} --role system_admin --org CODE)"
    )]
    NoSuchUser(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Db;

    #[test]
    fn codes_are_single_use_district_bound_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(dir.path()).unwrap();
        let mut conn = db.get().unwrap();
        let district: OrgCode = "330106".parse().unwrap();
        let code = create_enrolment_code(&mut conn, &district, Duration::from_secs(3600)).unwrap();
        assert!(matches!(
            enrol(&mut conn, &code.code, "330102"),
            Err(EnrolError::WrongDistrict { .. })
        ));
        let (node_id, token) = enrol(&mut conn, &code.code, "330106").unwrap();
        assert_eq!(node_id, "330106-1");
        assert!(token.starts_with(NODE_TOKEN_PREFIX));
        assert!(matches!(
            enrol(&mut conn, &code.code, "330106"),
            Err(EnrolError::Used(by)) if by == "330106-1"
        ));
        assert!(matches!(
            enrol(&mut conn, "dgc_nonsense", "330106"),
            Err(EnrolError::UnknownCode)
        ));
        let expired = create_enrolment_code(&mut conn, &district, Duration::ZERO).unwrap();
        assert!(matches!(
            enrol(&mut conn, &expired.code, "330106"),
            Err(EnrolError::Expired(_))
        ));
        let found = credential(&conn, &token).unwrap().unwrap();
        assert_eq!(found.node_id, "330106-1");
        assert!(!found.revoked);
        // Only the hash is stored.
        let stored: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM nodes WHERE token_hash = ?1",
                [&token],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(stored, 0);
        let revoked = revoke(&mut conn, "330106-1").unwrap();
        assert!(revoked.revoked);
        assert!(credential(&conn, &token).unwrap().unwrap().revoked);
        assert!(matches!(
            revoke(&mut conn, "nobody"),
            Err(RevokeError::NoSuchNode(_))
        ));
    }

    #[test]
    fn admin_tokens_belong_to_an_account_and_check_by_hash() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(dir.path()).unwrap();
        let mut conn = db.get().unwrap();
        assert!(matches!(
            create_admin_token(&conn, "admin"),
            Err(AdminTokenError::NoSuchUser(_))
        ));
        crate::orgs::add(&mut conn, "330100", "杭州市", None).unwrap();
        let admin = crate::users::add_without_password(
            &conn,
            "admin",
            crate::users::Role::SystemAdmin,
            "330100",
        )
        .unwrap();
        let token = create_admin_token(&conn, "admin").unwrap();
        let owner = crate::users::admin_token_user(&conn, &token)
            .unwrap()
            .unwrap();
        assert_eq!(owner.id, admin.id);
        assert!(
            crate::users::admin_token_user(&conn, "dga_wrong")
                .unwrap()
                .is_none()
        );
        // A disabled account's admin tokens stop working.
        crate::users::set_disabled(&mut conn, "admin", true).unwrap();
        assert!(
            crate::users::admin_token_user(&conn, &token)
                .unwrap()
                .is_none()
        );
    }
}
