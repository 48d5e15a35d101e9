//! A hub data folder: `hub.db`, `hub.key`, `hub.toml`, the blob folder,
//! partial uploads, staged offers and archived manifests.
//!
//! ```text
//! DATA/
//!   hub.toml        configuration (commented, written by init)
//!   hub.db          the index (SQLite, WAL: also hub.db-wal, hub.db-shm)
//!   hub.key         the Ed25519 receipt-signing key (hex, mode 0600)
//!   blobs/ab/ab…    complete blobs (local storage backend)
//!   partial/        partial uploads, <hex>.partial
//!   offers/         staged manifests of open offers, <manifest hash>.json
//!   manifests/      canonical manifests of archived batches, <manifest hash>.json
//! ```
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{self, Config, ConfigError, Storage};
use crate::store::{self, Db, StoreError};
use crate::{nodes, users};
use dangan_sync::{HubKey, random_token};

pub const KEY_FILE: &str = "hub.key";
pub const PARTIAL_DIR: &str = "partial";
pub const OFFERS_DIR: &str = "offers";
pub const MANIFESTS_DIR: &str = "manifests";

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is already a hub data folder (hub id {hub_id}); refusing to initialise it again"
    )]
    AlreadyInitialised { path: PathBuf, hub_id: String },
    #[error("{path} is not a valid hub key (64 hex digits expected)")]
    BadKey { path: PathBuf },
    #[error("{0} has no hub id; the database is damaged")]
    NoHubId(PathBuf),
    #[error("{0} is not a city code (6 digits ending in 00, e.g. 330100)")]
    NotACity(String),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HubError {
    let path = path.to_owned();
    move |source| HubError::Io {
        action,
        path,
        source,
    }
}

/// What `init` created; the admin token is shown once and stored hashed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Initialised {
    pub data: PathBuf,
    pub hub_id: String,
    pub hub_key: String,
    /// The root of the organisation tree: the city the hub archives for.
    pub city: String,
    /// The first system administrator's account (`admin`), bound to the
    /// city, without a usable password until `dangan-hub user passwd`.
    pub admin_user: String,
    /// A credential of `admin_user` for the API.
    pub admin_token: String,
}

/// The city a new hub archives for: the root of its organisation tree.
#[derive(Debug, Clone)]
pub struct City {
    /// Its administrative division code (6 digits ending in 00).
    pub code: dangan_shared::OrgCode,
    /// The name people see (default: the code).
    pub name: Option<String>,
}

/// An opened data folder.
#[derive(Debug)]
pub struct HubFolder {
    pub data_dir: PathBuf,
    pub config: Config,
    pub db: Db,
    pub key: HubKey,
    pub hub_id: String,
}

/// Creates a hub data folder for `city`, with the city as the root of the
/// organisation tree and the first system administrator `admin` bound to
/// it, holding the admin token returned. Refuses a folder that already has
/// a database.
pub fn init(data_dir: &Path, city: &City) -> Result<Initialised, HubError> {
    if city.code.level() != dangan_shared::OrgLevel::City {
        return Err(HubError::NotACity(city.code.to_string()));
    }
    fs::create_dir_all(data_dir).map_err(io_err("create", data_dir))?;
    if data_dir.join(store::DB_FILE).exists() {
        let folder = HubFolder::open(data_dir)?;
        return Err(HubError::AlreadyInitialised {
            path: data_dir.to_owned(),
            hub_id: folder.hub_id,
        });
    }
    let config_path = data_dir.join(config::FILE_NAME);
    if !config_path.exists() {
        fs::write(&config_path, config::EXAMPLE).map_err(io_err("write", &config_path))?;
    }
    // Refuse a bad hub.toml before creating anything else.
    let config = Config::load(data_dir)?;
    let mut dirs = vec![
        data_dir.join(PARTIAL_DIR),
        data_dir.join(OFFERS_DIR),
        data_dir.join(MANIFESTS_DIR),
    ];
    if let Storage::Local { path } = &config.storage {
        dirs.push(path.clone());
    }
    for dir in &dirs {
        fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    }
    // A key without a database is left from an interrupted init: no receipt
    // can have been signed with it, and keeping it is harmless.
    let key_path = data_dir.join(KEY_FILE);
    let key = if key_path.exists() {
        read_key(&key_path)?
    } else {
        let key = HubKey::generate().map_err(StoreError::from)?;
        write_key(&key_path, &key)?;
        key
    };
    let db = Db::create(data_dir)?;
    let mut conn = db.get()?;
    let hub_id = random_token("hub-").map_err(StoreError::from)?[..20].to_owned();
    // One transaction: a crash leaves no hub id without its administrator.
    let tx = store::write_tx(&mut conn).map_err(StoreError::from)?;
    store::set_meta(&tx, "hub_id", &hub_id)?;
    store::set_meta(&tx, "created_at", &store::now())?;
    let name = city.name.as_deref().unwrap_or(city.code.as_str());
    let now = store::now();
    tx.execute(
        "INSERT INTO orgs(code, name, level, parent, status, created_at, updated_at)
         VALUES (?1, ?2, 'city', NULL, 'active', ?3, ?3)",
        rusqlite::params![city.code.as_str(), name.trim(), now],
    )
    .map_err(StoreError::from)?;
    let admin = users::add_without_password(
        &tx,
        users::FIRST_ADMIN,
        users::Role::SystemAdmin,
        city.code.as_str(),
    )
    .map_err(|err| StoreError::Corrupt(err.to_string()))?;
    let admin_token = nodes::create_admin_token(&tx, &admin.username)
        .map_err(|err| StoreError::Corrupt(err.to_string()))?;
    tx.commit().map_err(StoreError::from)?;
    crate::blobs::sync_dir(data_dir).map_err(|err| HubError::Io {
        action: "sync",
        path: data_dir.to_owned(),
        source: std::io::Error::other(err.to_string()),
    })?;
    Ok(Initialised {
        data: data_dir.to_owned(),
        hub_id,
        hub_key: key.public_hex(),
        city: city.code.to_string(),
        admin_user: admin.username,
        admin_token,
    })
}

impl HubFolder {
    pub fn open(data_dir: &Path) -> Result<Self, HubError> {
        let db = Db::open(data_dir)?;
        let config = Config::load(data_dir)?;
        let key = read_key(&data_dir.join(KEY_FILE))?;
        let hub_id = store::meta(&*db.get()?, "hub_id")?
            .ok_or_else(|| HubError::NoHubId(db.path().to_owned()))?;
        for dir in [PARTIAL_DIR, OFFERS_DIR, MANIFESTS_DIR] {
            let dir = data_dir.join(dir);
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        }
        Ok(Self {
            data_dir: data_dir.to_owned(),
            config,
            db,
            key,
            hub_id,
        })
    }
}

fn read_key(path: &Path) -> Result<HubKey, HubError> {
    let text = fs::read_to_string(path).map_err(io_err("read", path))?;
    let text = text.trim();
    let bad = || HubError::BadKey {
        path: path.to_owned(),
    };
    if text.len() != 64 {
        return Err(bad());
    }
    let mut secret = [0u8; 32];
    for (i, byte) in secret.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(HubKey::from_bytes(&secret))
}

fn write_key(path: &Path, key: &HubKey) -> Result<(), HubError> {
    let mut options = File::options();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_err("create", path))?;
    let hex: String = key.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    file.write_all(format!("{hex}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_err("write", path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_creates_the_folder_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("hub");
        let city = City {
            code: "330100".parse().unwrap(),
            name: Some("杭州市".into()),
        };
        let made = init(&data, &city).unwrap();
        assert!(made.admin_token.starts_with(nodes::ADMIN_TOKEN_PREFIX));
        assert_eq!(
            (made.city.as_str(), made.admin_user.as_str()),
            ("330100", "admin")
        );
        for name in [
            "hub.db", "hub.key", "hub.toml", "blobs", "partial", "offers",
        ] {
            assert!(data.join(name).exists(), "{name} missing");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(data.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let folder = HubFolder::open(&data).unwrap();
        assert_eq!(folder.hub_id, made.hub_id);
        assert_eq!(folder.key.public_hex(), made.hub_key);
        {
            let mut conn = folder.db.get().unwrap();
            let admin = users::admin_token_user(&conn, &made.admin_token)
                .unwrap()
                .unwrap();
            assert_eq!(admin.role, users::Role::SystemAdmin);
            assert_eq!(admin.org, "330100");
            assert_eq!(
                crate::orgs::get(&conn, "330100").unwrap().unwrap().name,
                "杭州市"
            );
            // No password opens the account until one is set.
            for password in ["", "!"] {
                let outcome =
                    users::authenticate(&mut conn, "admin", password, Default::default(), None);
                assert!(outcome.unwrap().is_err());
            }
        }
        assert!(matches!(
            init(&data, &city),
            Err(HubError::AlreadyInitialised { .. })
        ));
        let district = City {
            code: "330106".parse().unwrap(),
            name: None,
        };
        assert!(matches!(
            init(&dir.path().join("other"), &district),
            Err(HubError::NotACity(_))
        ));
    }
}
