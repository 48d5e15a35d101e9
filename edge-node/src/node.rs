//! A data folder: the database, the image cache, the quarantine folder and
//! `edge.toml`, and the lock that keeps two writers out of it.
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use dangan_shared::OrgCode;

use crate::cache::{BlobCache, CacheError};
use crate::config::{self, Config, ConfigError};
use crate::store::{self, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is in use by another dangan-edge process (ingest, watch or fsck); wait for it to finish"
    )]
    Busy { path: PathBuf },
}

/// An opened data folder (without its database connection, which the
/// caller holds separately so workers can share the node immutably).
#[derive(Debug)]
pub struct Node {
    pub data_dir: PathBuf,
    pub config: Config,
    pub cache: BlobCache,
}

/// Held while a process writes into the data folder.
#[derive(Debug)]
pub struct WriteLock {
    _file: File,
}

impl Node {
    /// Creates a new data folder for `district`: database, cache, quarantine
    /// folder and a commented `edge.toml` (kept if one is already there).
    pub fn init(data_dir: &Path, district: &OrgCode) -> Result<(Node, Store), NodeError> {
        fs::create_dir_all(data_dir).map_err(|source| NodeError::Io {
            action: "create",
            path: data_dir.to_owned(),
            source,
        })?;
        let config_path = data_dir.join(config::FILE_NAME);
        if !config_path.exists() && !data_dir.join(store::DB_FILE).exists() {
            fs::write(&config_path, config::EXAMPLE).map_err(|source| NodeError::Io {
                action: "write",
                path: config_path.clone(),
                source,
            })?;
        }
        // Refuse a bad edge.toml before creating anything else.
        Config::load(data_dir)?;
        drop(Store::create(data_dir, district)?);
        let quarantine = data_dir.join("quarantine");
        fs::create_dir_all(&quarantine).map_err(|source| NodeError::Io {
            action: "create",
            path: quarantine,
            source,
        })?;
        Self::open(data_dir)
    }

    pub fn open(data_dir: &Path) -> Result<(Node, Store), NodeError> {
        let store = Store::open(data_dir)?;
        let config = Config::load(data_dir)?;
        let cache = BlobCache::new(data_dir.join("cache"));
        cache.create()?;
        Ok((
            Node {
                data_dir: data_dir.to_owned(),
                config,
                cache,
            },
            store,
        ))
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join(store::DB_FILE)
    }

    pub fn quarantine_dir(&self) -> PathBuf {
        self.data_dir.join("quarantine")
    }

    /// Takes the data folder's write lock, failing at once if another
    /// process holds it. Leftover temporary files of an interrupted run are
    /// cleared once the lock is held.
    pub fn lock_for_writing(&self) -> Result<WriteLock, NodeError> {
        let path = self.data_dir.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| NodeError::Io {
                action: "open",
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(NodeError::Busy {
                    path: self.data_dir.clone(),
                });
            }
            Err(fs::TryLockError::Error(source)) => {
                return Err(NodeError::Io {
                    action: "lock",
                    path,
                    source,
                });
            }
        }
        Ok(WriteLock { _file: file })
    }
}
