//! Organisations (机构管理): the city → district/county → street office
//! tree that every node, batch, business file and user belongs to.
//!
//! Codes are national administrative division codes ([`OrgCode`]); an
//! organisation's level is read from its code and its parent must be one
//! level up (a city has none). Districts that node enrolment creates on the
//! fly join the tree under the city whose code they start with, or stay
//! unattached until an administrator sets their parent. An organisation
//! that anything belongs to is disabled, never deleted.
use dangan_shared::{OrgCode, OrgLevel};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::store::{self, StoreError, write_tx};

/// One organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Org {
    pub code: String,
    pub name: String,
    pub level: OrgLevel,
    /// The organisation one level up; `None` for a city, and for a district
    /// not attached to a city yet.
    pub parent: Option<String>,
    /// `active` or `disabled`.
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

/// An organisation with its children, for the tree view.
#[derive(Debug, Clone, Serialize)]
pub struct OrgNode {
    #[serde(flatten)]
    pub org: Org,
    pub children: Vec<OrgNode>,
}

/// What may change about an organisation: fields given are set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgPatch {
    #[serde(default)]
    pub name: Option<String>,
    /// The new parent's code; an empty string detaches a district.
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    #[error(transparent)]
    Code(#[from] dangan_shared::ParseOrgCodeError),
    #[error("organisation {0} already exists")]
    Exists(String),
    #[error("no organisation {0} (see `dangan-hub org list`)")]
    NoSuch(String),
    #[error("a name is 1–100 characters")]
    Name,
    #[error(
        "{child} is a {child_level:?} and cannot be under {parent} (a {parent_level:?}): a street office belongs to a district, a district to a city, a city to nothing"
    )]
    Parent {
        child: String,
        child_level: OrgLevel,
        parent: String,
        parent_level: OrgLevel,
    },
    #[error("a {0:?} needs a parent organisation")]
    ParentRequired(OrgLevel),
    #[error("status is active or disabled, not {0:?}")]
    Status(String),
    #[error("organisation {code} still has {what}; disable it instead")]
    InUse { code: String, what: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for OrgError {
    fn from(err: rusqlite::Error) -> Self {
        OrgError::Store(err.into())
    }
}

const COLUMNS: &str = "code, name, level, parent, status, created_at, updated_at";

fn level_of(text: &str) -> OrgLevel {
    match text {
        "city" => OrgLevel::City,
        "street_office" => OrgLevel::StreetOffice,
        _ => OrgLevel::District,
    }
}

fn level_str(level: OrgLevel) -> &'static str {
    match level {
        OrgLevel::City => "city",
        OrgLevel::District => "district",
        OrgLevel::StreetOffice => "street_office",
    }
}

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Org> {
    Ok(Org {
        code: row.get(0)?,
        name: row.get(1)?,
        level: level_of(&row.get::<_, String>(2)?),
        parent: row.get(3)?,
        status: row.get(4)?,
        created_at: row.get(5)?,
        updated_at: row.get(6)?,
    })
}

/// The level an organisation's parent must have.
fn parent_level(level: OrgLevel) -> Option<OrgLevel> {
    match level {
        OrgLevel::City => None,
        OrgLevel::District => Some(OrgLevel::City),
        OrgLevel::StreetOffice => Some(OrgLevel::District),
    }
}

fn check_name(name: &str) -> Result<String, OrgError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(OrgError::Name);
    }
    Ok(name.to_owned())
}

/// Checks that `parent` exists and is one level above `code`.
fn check_parent(conn: &Connection, code: &OrgCode, parent: &str) -> Result<(), OrgError> {
    let found = get(conn, parent)?.ok_or_else(|| OrgError::NoSuch(parent.to_owned()))?;
    if parent_level(code.level()) != Some(found.level) {
        return Err(OrgError::Parent {
            child: code.to_string(),
            child_level: code.level(),
            parent: parent.to_owned(),
            parent_level: found.level,
        });
    }
    Ok(())
}

/// One organisation by code.
pub fn get(conn: &Connection, code: &str) -> Result<Option<Org>, OrgError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM orgs WHERE code = ?1"),
            [code],
            from_row,
        )
        .optional()?)
}

/// Every organisation, by code.
pub fn list(conn: &Connection) -> Result<Vec<Org>, OrgError> {
    let mut statement = conn.prepare(&format!("SELECT {COLUMNS} FROM orgs ORDER BY code"))?;
    let rows = statement.query_map([], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The organisations as a forest: cities with their districts and street
/// offices, then districts attached to no city.
pub fn tree(conn: &Connection) -> Result<Vec<OrgNode>, OrgError> {
    let all = list(conn)?;
    fn children_of(all: &[Org], parent: &str) -> Vec<OrgNode> {
        all.iter()
            .filter(|o| o.parent.as_deref() == Some(parent))
            .map(|o| OrgNode {
                org: o.clone(),
                children: children_of(all, &o.code),
            })
            .collect()
    }
    Ok(all
        .iter()
        .filter(|o| o.parent.is_none())
        .map(|o| OrgNode {
            org: o.clone(),
            children: children_of(&all, &o.code),
        })
        .collect())
}

/// Adds an organisation. A district or street office names its parent; a
/// district may be added without one (attached later).
pub fn add(
    conn: &mut Connection,
    code: &str,
    name: &str,
    parent: Option<&str>,
) -> Result<Org, OrgError> {
    let code: OrgCode = code.parse()?;
    let name = check_name(name)?;
    let tx = write_tx(conn)?;
    if get(&tx, code.as_str())?.is_some() {
        return Err(OrgError::Exists(code.to_string()));
    }
    match (parent.filter(|p| !p.is_empty()), code.level()) {
        (Some(parent), _) => check_parent(&tx, &code, parent)?,
        (None, OrgLevel::StreetOffice) => {
            return Err(OrgError::ParentRequired(OrgLevel::StreetOffice));
        }
        (None, _) => {}
    }
    let now = store::now();
    tx.execute(
        "INSERT INTO orgs(code, name, level, parent, status, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?5)",
        params![
            code.as_str(),
            name,
            level_str(code.level()),
            parent.filter(|p| !p.is_empty()),
            now
        ],
    )?;
    if code.level() == OrgLevel::District {
        crate::nodes::ensure_district(&tx, code.as_str())?;
    }
    tx.commit()?;
    get(conn, code.as_str())?.ok_or_else(|| OrgError::NoSuch(code.to_string()))
}

/// Changes an organisation's name, parent or status.
pub fn update(conn: &mut Connection, code: &str, patch: &OrgPatch) -> Result<Org, OrgError> {
    let tx = write_tx(conn)?;
    let current = get(&tx, code)?.ok_or_else(|| OrgError::NoSuch(code.to_owned()))?;
    let parsed: OrgCode = current.code.parse()?;
    let name = match &patch.name {
        Some(name) => check_name(name)?,
        None => current.name.clone(),
    };
    let parent = match &patch.parent {
        Some(parent) if parent.is_empty() => {
            if parsed.level() == OrgLevel::StreetOffice {
                return Err(OrgError::ParentRequired(OrgLevel::StreetOffice));
            }
            None
        }
        Some(parent) => {
            check_parent(&tx, &parsed, parent)?;
            Some(parent.clone())
        }
        None => current.parent.clone(),
    };
    let status = match patch.status.as_deref() {
        Some(status @ ("active" | "disabled")) => status.to_owned(),
        Some(other) => return Err(OrgError::Status(other.to_owned())),
        None => current.status.clone(),
    };
    tx.execute(
        "UPDATE orgs SET name = ?2, parent = ?3, status = ?4, updated_at = ?5 WHERE code = ?1",
        params![code, name, parent, status, store::now()],
    )?;
    tx.commit()?;
    get(conn, code)?.ok_or_else(|| OrgError::NoSuch(code.to_owned()))
}

/// Removes an organisation nothing belongs to (no child organisation, no
/// node, no batch); otherwise refuses and says what is left.
pub fn remove(conn: &mut Connection, code: &str) -> Result<(), OrgError> {
    let tx = write_tx(conn)?;
    get(&tx, code)?.ok_or_else(|| OrgError::NoSuch(code.to_owned()))?;
    let count =
        |sql: &str| -> Result<i64, OrgError> { Ok(tx.query_row(sql, [code], |r| r.get(0))?) };
    let uses = [
        (
            count("SELECT count(*) FROM orgs WHERE parent = ?1")?,
            "child organisations",
        ),
        (
            count("SELECT count(*) FROM nodes WHERE district = ?1")?,
            "enrolled nodes",
        ),
        (
            count("SELECT count(*) FROM batches WHERE district = ?1")?,
            "archived batches",
        ),
    ];
    if let Some((n, what)) = uses.iter().find(|(n, _)| *n > 0) {
        return Err(OrgError::InUse {
            code: code.to_owned(),
            what: format!("{n} {what}"),
        });
    }
    tx.execute("DELETE FROM enrolment_codes WHERE district = ?1", [code])?;
    tx.execute("DELETE FROM districts WHERE code = ?1", [code])?;
    tx.execute("DELETE FROM orgs WHERE code = ?1", [code])?;
    tx.commit()?;
    Ok(())
}

/// Puts a district that node enrolment (or a sync) names into the tree if
/// it is not there: named by its code until an administrator names it,
/// under the city whose code it starts with when the hub knows that city.
pub fn ensure_district_org(conn: &Connection, district: &str) -> Result<(), StoreError> {
    let city = format!("{}00", district.get(..4).unwrap_or_default());
    let now = store::now();
    conn.execute(
        "INSERT OR IGNORE INTO orgs(code, name, level, parent, status, created_at, updated_at)
         VALUES (?1, ?1, 'district',
                 (SELECT code FROM orgs WHERE code = ?2 AND level = 'city'),
                 'active', ?3, ?3)",
        params![district, city, now],
    )?;
    Ok(())
}

/// Whether `code` is `ancestor` or lies below it in the tree.
pub fn is_within(conn: &Connection, code: &str, ancestor: &str) -> Result<bool, StoreError> {
    let found: Option<i64> = conn
        .query_row(
            "WITH RECURSIVE up(code, parent) AS (
                 SELECT code, parent FROM orgs WHERE code = ?1
                 UNION ALL
                 SELECT o.code, o.parent FROM orgs o JOIN up ON o.code = up.parent
             )
             SELECT 1 FROM up WHERE code = ?2 LIMIT 1",
            params![code, ancestor],
            |row| row.get(0),
        )
        .optional()?;
    Ok(found.is_some())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn db() -> (tempfile::TempDir, crate::store::Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::Db::create(dir.path()).unwrap();
        (dir, db)
    }

    #[test]
    fn the_tree_has_three_levels_with_parents_one_level_up() {
        let (_dir, db) = db();
        let mut conn = db.get().unwrap();
        add(&mut conn, "330100", "杭州市", None).unwrap();
        add(&mut conn, "330106", "西湖区", Some("330100")).unwrap();
        add(&mut conn, "330106001", "北山街道", Some("330106")).unwrap();
        // A street office under a city, a district under a district, a
        // street office without a parent: refused.
        assert!(matches!(
            add(&mut conn, "330106002", "x", Some("330100")),
            Err(OrgError::Parent { .. })
        ));
        assert!(matches!(
            add(&mut conn, "330105", "x", Some("330106")),
            Err(OrgError::Parent { .. })
        ));
        assert!(matches!(
            add(&mut conn, "330106003", "x", None),
            Err(OrgError::ParentRequired(_))
        ));
        assert!(matches!(
            add(&mut conn, "330106", "again", Some("330100")),
            Err(OrgError::Exists(_))
        ));
        let tree = tree(&conn).unwrap();
        assert_eq!(tree.len(), 1);
        assert_eq!(tree[0].children[0].org.name, "西湖区");
        assert_eq!(tree[0].children[0].children[0].org.code, "330106001");
        assert!(is_within(&conn, "330106001", "330100").unwrap());
        assert!(!is_within(&conn, "330100", "330106").unwrap());
    }

    #[test]
    fn enrolled_districts_join_their_city_and_in_use_orgs_are_not_removed() {
        let (_dir, db) = db();
        let mut conn = db.get().unwrap();
        // Before the city exists: unattached; after: under it.
        ensure_district_org(&conn, "330108").unwrap();
        add(&mut conn, "330100", "杭州市", None).unwrap();
        ensure_district_org(&conn, "330106").unwrap();
        assert_eq!(get(&conn, "330108").unwrap().unwrap().parent, None);
        assert_eq!(
            get(&conn, "330106").unwrap().unwrap().parent.as_deref(),
            Some("330100")
        );
        let attached = update(
            &mut conn,
            "330108",
            &OrgPatch {
                parent: Some("330100".into()),
                name: Some("滨江区".into()),
                ..OrgPatch::default()
            },
        )
        .unwrap();
        assert_eq!(attached.name, "滨江区");
        assert!(matches!(
            remove(&mut conn, "330100"),
            Err(OrgError::InUse { .. })
        ));
        let disabled = update(
            &mut conn,
            "330100",
            &OrgPatch {
                status: Some("disabled".into()),
                ..OrgPatch::default()
            },
        )
        .unwrap();
        assert_eq!(disabled.status, "disabled");
        remove(&mut conn, "330108").unwrap();
        assert!(get(&conn, "330108").unwrap().is_none());
    }
}
