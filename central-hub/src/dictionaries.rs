//! The common dictionaries and business-type templates (辅助管理), held
//! authoritative at the hub and versioned.
//!
//! Every published version is one row of `dictionary_versions`, never
//! changed afterwards; the row's `seq` is its place in the feed that edges
//! read from their cursor when they sync (`GET /sync/v1/feeds/dictionaries`).
//! A new hub starts with the shipped dictionaries and templates as
//! version 1. Publishing content equal to the current version changes nothing, so a
//! repeated import is harmless and an edge is never sent a no-op.
use dangan_shared::dictionary::{self, Dictionary, DictionaryKind};
use dangan_shared::template::{self, Template};
use dangan_sync::wire::{DictionaryFeed, FeedEntry, FeedItem};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;

use crate::store::{StoreError, now};

#[derive(Debug, thiserror::Error)]
pub enum DictionaryError {
    #[error(transparent)]
    Dictionary(#[from] dictionary::DictionaryError),
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    #[error("no template for business type {0:?}")]
    NoTemplate(String),
    #[error("{what} has no version {version}")]
    NoVersion { what: String, version: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for DictionaryError {
    fn from(err: rusqlite::Error) -> Self {
        DictionaryError::Store(err.into())
    }
}

/// The author of the shipped version 1.
pub const SEED_AUTHOR: &str = "seed";

const TEMPLATE: &str = "template";

/// One stored version, with who published it and when.
#[derive(Clone, Debug, Serialize)]
pub struct Published<T> {
    pub version: u32,
    pub author: String,
    pub recorded_at: String,
    #[serde(flatten)]
    pub content: T,
}

/// What a publication did.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Outcome {
    /// The version now current.
    pub version: u32,
    /// False when the content equalled the current version (nothing stored).
    pub changed: bool,
}

/// Loads version 1 (the shipped dictionaries and templates) into a hub
/// that has none yet.
pub fn seed(conn: &mut Connection) -> Result<(), StoreError> {
    let count: i64 = conn.query_row("SELECT count(*) FROM dictionary_versions", [], |row| {
        row.get(0)
    })?;
    if count > 0 {
        return Ok(());
    }
    let templates = template::parse(template::SEED)
        .map_err(|err| StoreError::Corrupt(format!("shipped templates: {err}")))?;
    let tx = conn.transaction()?;
    for kind in DictionaryKind::ALL {
        insert(
            &tx,
            kind.as_str(),
            kind.as_str(),
            1,
            &body(&Dictionary::builtin(kind))?,
            SEED_AUTHOR,
        )?;
    }
    for template in &templates {
        insert(
            &tx,
            TEMPLATE,
            &template.business_type,
            1,
            &body(template)?,
            SEED_AUTHOR,
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn body<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|err| StoreError::Corrupt(err.to_string()))
}

fn insert(
    conn: &Connection,
    kind: &str,
    code: &str,
    version: u32,
    body: &str,
    author: &str,
) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO dictionary_versions(kind, code, version, body, author, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![kind, code, version, body, author, now()],
    )?;
    Ok(conn.last_insert_rowid())
}

type Row = (u32, String, String, String);

fn row(
    conn: &Connection,
    kind: &str,
    code: &str,
    version: Option<u32>,
) -> Result<Option<Row>, StoreError> {
    let map = |row: &rusqlite::Row<'_>| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?));
    let found = match version {
        Some(version) => conn
            .query_row(
                "SELECT version, body, author, recorded_at FROM dictionary_versions
                 WHERE kind = ?1 AND code = ?2 AND version = ?3",
                params![kind, code, version],
                map,
            )
            .optional()?,
        None => conn
            .query_row(
                "SELECT version, body, author, recorded_at FROM dictionary_versions
                 WHERE kind = ?1 AND code = ?2 ORDER BY version DESC LIMIT 1",
                params![kind, code],
                map,
            )
            .optional()?,
    };
    Ok(found)
}

fn decode<T: serde::de::DeserializeOwned>(
    (version, body, author, recorded_at): Row,
) -> Result<Published<T>, StoreError> {
    let content = serde_json::from_str(&body)
        .map_err(|err| StoreError::Corrupt(format!("a stored dictionary version: {err}")))?;
    Ok(Published {
        version,
        author,
        recorded_at,
        content,
    })
}

/// A dictionary's current version (or version `version`).
pub fn dictionary(
    conn: &Connection,
    kind: DictionaryKind,
    version: Option<u32>,
) -> Result<Published<Dictionary>, DictionaryError> {
    match row(conn, kind.as_str(), kind.as_str(), version)? {
        Some(found) => Ok(decode(found)?),
        None => Err(DictionaryError::NoVersion {
            what: format!("dictionary {kind}"),
            version: version.unwrap_or(1),
        }),
    }
}

/// A business type's current template (or version `version`).
pub fn template(
    conn: &Connection,
    business_type: &str,
    version: Option<u32>,
) -> Result<Published<Template>, DictionaryError> {
    match row(conn, TEMPLATE, business_type, version)? {
        Some(found) => Ok(decode(found)?),
        None if version.is_some() && row(conn, TEMPLATE, business_type, None)?.is_some() => {
            Err(DictionaryError::NoVersion {
                what: format!("template {business_type}"),
                version: version.unwrap_or(1),
            })
        }
        None => Err(DictionaryError::NoTemplate(business_type.to_owned())),
    }
}

/// The current template of every business type.
pub fn templates(conn: &Connection) -> Result<Vec<Published<Template>>, DictionaryError> {
    let mut statement = conn.prepare(
        "SELECT d.version, d.body, d.author, d.recorded_at FROM dictionary_versions d
         WHERE d.kind = 'template' AND d.version = (
             SELECT MAX(version) FROM dictionary_versions
             WHERE kind = 'template' AND code = d.code)
         ORDER BY d.code",
    )?;
    let rows = statement
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<Result<Vec<Row>, _>>()?;
    rows.into_iter()
        .map(|found| decode(found).map_err(DictionaryError::from))
        .collect()
}

/// Opens the transaction a publication (and its audit entry) runs in.
pub fn begin(conn: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

/// Publishes a dictionary as its next version, unless it equals the
/// current one, within `tx` (the caller commits, with its audit entry).
/// Templates in force must not use an entry the new version retires
/// (retire a category or retention only after moving the templates off it).
pub fn publish_dictionary(
    tx: &Transaction<'_>,
    new: &Dictionary,
    author: &str,
) -> Result<Outcome, DictionaryError> {
    new.validate()?;
    let current = dictionary(tx, new.kind, None)?;
    if current.content == *new {
        return Ok(Outcome {
            version: current.version,
            changed: false,
        });
    }
    let (categories, retentions) = match new.kind {
        DictionaryKind::Categories => (
            new.clone(),
            dictionary(tx, DictionaryKind::Retentions, None)?.content,
        ),
        DictionaryKind::Retentions => (
            dictionary(tx, DictionaryKind::Categories, None)?.content,
            new.clone(),
        ),
        DictionaryKind::Defects => {
            let categories = dictionary(tx, DictionaryKind::Categories, None)?.content;
            let retentions = dictionary(tx, DictionaryKind::Retentions, None)?.content;
            (categories, retentions)
        }
    };
    for template in templates(tx)? {
        dictionary::check_template(&template.content, &categories, &retentions)?;
    }
    let version = current.version + 1;
    insert(
        tx,
        new.kind.as_str(),
        new.kind.as_str(),
        version,
        &body(new)?,
        author,
    )?;
    Ok(Outcome {
        version,
        changed: true,
    })
}

/// Publishes templates within `tx`, each as the next version of its
/// business type unless it equals the current one (all or nothing once the
/// caller commits). A template must use categories and retentions in force.
pub fn publish_templates(
    tx: &Transaction<'_>,
    new: &[Template],
    author: &str,
) -> Result<Vec<(String, Outcome)>, DictionaryError> {
    let categories = dictionary(tx, DictionaryKind::Categories, None)?.content;
    let retentions = dictionary(tx, DictionaryKind::Retentions, None)?.content;
    let mut outcomes = Vec::with_capacity(new.len());
    for template in new {
        template.validate()?;
        dictionary::check_template(template, &categories, &retentions)?;
        let current = match row(tx, TEMPLATE, &template.business_type, None)? {
            Some(found) => Some(decode::<Template>(found)?),
            None => None,
        };
        if let Some(current) = current.as_ref().filter(|c| c.content == *template) {
            outcomes.push((
                template.business_type.clone(),
                Outcome {
                    version: current.version,
                    changed: false,
                },
            ));
            continue;
        }
        let version = current.map_or(1, |c| c.version + 1);
        insert(
            tx,
            TEMPLATE,
            &template.business_type,
            version,
            &body(template)?,
            author,
        )?;
        outcomes.push((
            template.business_type.clone(),
            Outcome {
                version,
                changed: true,
            },
        ));
    }
    Ok(outcomes)
}

/// The feed after cursor `after`: at most `limit` versions in `seq` order.
pub fn feed(conn: &Connection, after: u64, limit: u32) -> Result<DictionaryFeed, StoreError> {
    let mut statement = conn.prepare(
        "SELECT seq, kind, version, body, recorded_at FROM dictionary_versions
         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = statement
        .query_map(params![after as i64, i64::from(limit) + 1], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, u32>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let more = rows.len() > limit as usize;
    let mut entries = Vec::with_capacity(rows.len().min(limit as usize));
    for (seq, kind, version, body, recorded_at) in rows.into_iter().take(limit as usize) {
        let corrupt = |err: serde_json::Error| {
            StoreError::Corrupt(format!("dictionary version {seq}: {err}"))
        };
        let item = if kind == TEMPLATE {
            FeedItem::Template {
                template: serde_json::from_str(&body).map_err(corrupt)?,
            }
        } else {
            FeedItem::Dictionary {
                dictionary: serde_json::from_str(&body).map_err(corrupt)?,
            }
        };
        entries.push(FeedEntry {
            seq: seq as u64,
            version,
            recorded_at,
            item,
        });
    }
    let next = entries.last().map_or(after, |entry| entry.seq);
    Ok(DictionaryFeed {
        entries,
        next,
        more,
    })
}

/// Every dictionary and template in force, for `GET /api/v1/dictionaries`
/// and `dangan-hub dictionary show`.
#[derive(Debug, Serialize)]
pub struct InForce {
    pub categories: Published<Dictionary>,
    pub retentions: Published<Dictionary>,
    pub defects: Published<Dictionary>,
    pub templates: Vec<Published<Template>>,
    /// The feed position of the newest version (what an edge that is up
    /// to date has as its cursor).
    pub feed_head: u64,
}

pub fn in_force(conn: &Connection) -> Result<InForce, DictionaryError> {
    let feed_head: i64 = conn.query_row(
        "SELECT COALESCE(MAX(seq), 0) FROM dictionary_versions",
        [],
        |row| row.get(0),
    )?;
    Ok(InForce {
        categories: dictionary(conn, DictionaryKind::Categories, None)?,
        retentions: dictionary(conn, DictionaryKind::Retentions, None)?,
        defects: dictionary(conn, DictionaryKind::Defects, None)?,
        templates: templates(conn)?,
        feed_head: feed_head as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub_db() -> (tempfile::TempDir, crate::store::Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::Db::create(dir.path()).unwrap();
        (dir, db)
    }

    #[test]
    fn a_new_hub_holds_the_shipped_version_1() {
        let (_dir, db) = hub_db();
        let conn = db.get().unwrap();
        let all = in_force(&conn).unwrap();
        assert_eq!(all.defects.version, 1);
        assert_eq!(all.defects.author, SEED_AUTHOR);
        assert_eq!(
            all.templates.len(),
            template::parse(template::SEED).unwrap().len()
        );
        let feed = feed(&conn, 0, 1000).unwrap();
        assert_eq!(feed.entries.len() as u64, all.feed_head);
        assert!(!feed.more);
    }

    #[test]
    fn publishing_makes_the_next_version_and_equal_content_changes_nothing() {
        let (_dir, db) = hub_db();
        let mut conn = db.get().unwrap();
        let mut defects = Dictionary::builtin(DictionaryKind::Defects);
        let publish = |conn: &mut Connection, defects: &Dictionary| {
            let tx = begin(conn).unwrap();
            let outcome = publish_dictionary(&tx, defects, "admin").unwrap();
            tx.commit().unwrap();
            outcome
        };
        let same = publish(&mut conn, &defects);
        assert_eq!(
            same,
            Outcome {
                version: 1,
                changed: false
            }
        );
        defects.entries[0].zh = "倾斜".into();
        let next = publish(&mut conn, &defects);
        assert_eq!(
            next,
            Outcome {
                version: 2,
                changed: true
            }
        );
        assert_eq!(
            dictionary(&conn, DictionaryKind::Defects, Some(1))
                .unwrap()
                .content,
            Dictionary::builtin(DictionaryKind::Defects)
        );
        let head = in_force(&conn).unwrap().feed_head;
        let after = feed(&conn, head - 1, 10).unwrap();
        assert_eq!(after.entries.len(), 1);
        assert_eq!(after.entries[0].version, 2);
        // Stored versions cannot be rewritten.
        assert!(
            conn.execute("UPDATE dictionary_versions SET body = '{}'", [])
                .is_err()
        );
    }

    #[test]
    fn a_retirement_that_would_strand_a_template_is_refused() {
        let (_dir, db) = hub_db();
        let mut conn = db.get().unwrap();
        let mut retentions = Dictionary::builtin(DictionaryKind::Retentions);
        for entry in &mut retentions.entries {
            if entry.code == "permanent" {
                entry.active = false;
            }
        }
        let err = publish_dictionary(&begin(&mut conn).unwrap(), &retentions, "admin").unwrap_err();
        assert!(err.to_string().contains("retired"), "{err}");
        assert_eq!(
            dictionary(&conn, DictionaryKind::Retentions, None)
                .unwrap()
                .version,
            1
        );
    }

    #[test]
    fn templates_publish_all_or_nothing() {
        let (_dir, db) = hub_db();
        let mut conn = db.get().unwrap();
        let mut seed = template::parse(template::SEED).unwrap();
        seed[0].name = "单位参保登记（2027版）".into();
        seed[1].min_dpi = 10;
        let tx = begin(&mut conn).unwrap();
        let err = publish_templates(&tx, &seed[..2], "admin").unwrap_err();
        assert!(err.to_string().contains("min_dpi"), "{err}");
        drop(tx);
        assert_eq!(
            template(&conn, &seed[0].business_type, None)
                .unwrap()
                .version,
            1
        );
        let tx = begin(&mut conn).unwrap();
        let outcomes = publish_templates(&tx, &seed[..1], "admin").unwrap();
        tx.commit().unwrap();
        assert_eq!(
            outcomes[0].1,
            Outcome {
                version: 2,
                changed: true
            }
        );
        assert!(matches!(
            template(&conn, "ZZ9", None),
            Err(DictionaryError::NoTemplate(_))
        ));
    }
}
