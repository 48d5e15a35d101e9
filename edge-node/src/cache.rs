//! The content-addressed image cache: every blob stored once under its
//! BLAKE3 hash, with its thumbnail beside it.
//!
//! Layout under the cache folder:
//! - `blobs/ab/cd/<64 hex>`: the page bytes, never modified once written;
//! - `thumbs/ab/<64 hex>.jpg`: the page's thumbnail, keyed by the blob id;
//! - `tmp/`: files being written. A leftover here is an interrupted write.
//!
//! Invariant: a file exists under `blobs/` only with its full content, and
//! is durable before the database row that references it commits (write to
//! `tmp/`, fsync, rename, fsync the directory).
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use dangan_shared::BlobId;

#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {path}: {source}")]
pub struct CacheError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

#[derive(Debug, Clone)]
pub struct BlobCache {
    root: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl BlobCache {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the folder layout.
    pub fn create(&self) -> Result<(), CacheError> {
        for sub in ["blobs", "thumbs", "tmp"] {
            let path = self.root.join(sub);
            fs::create_dir_all(&path).map_err(|source| CacheError {
                action: "create",
                path,
                source,
            })?;
        }
        Ok(())
    }

    pub fn blob_path(&self, id: &BlobId) -> PathBuf {
        let hex = id.to_hex();
        self.root
            .join("blobs")
            .join(&hex[..2])
            .join(&hex[2..4])
            .join(hex)
    }

    pub fn thumbnail_path(&self, id: &BlobId) -> PathBuf {
        let hex = id.to_hex();
        self.root
            .join("thumbs")
            .join(&hex[..2])
            .join(format!("{hex}.jpg"))
    }

    pub fn temp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Stores `bytes` as blob `id` durably. Returns false when the blob was
    /// already present (its bytes are then not written again).
    pub fn put_blob(&self, id: &BlobId, bytes: &[u8]) -> Result<bool, CacheError> {
        let path = self.blob_path(id);
        if path.exists() {
            return Ok(false);
        }
        self.write_file(&path, bytes, true)?;
        Ok(true)
    }

    /// Stores a thumbnail. Thumbnails are derived data (`fsck --repair`
    /// re-makes a missing one), so they are renamed into place whole but not
    /// fsynced: that would double the disk flushes of every page.
    pub fn put_thumbnail(&self, id: &BlobId, jpeg: &[u8]) -> Result<(), CacheError> {
        let path = self.thumbnail_path(id);
        if path.exists() {
            return Ok(());
        }
        self.write_file(&path, jpeg, false)
    }

    pub fn read_blob(&self, id: &BlobId) -> Result<Vec<u8>, CacheError> {
        let path = self.blob_path(id);
        fs::read(&path).map_err(|source| CacheError {
            action: "read",
            path,
            source,
        })
    }

    /// Writes to a temporary file and renames it into place, so that the file
    /// is either absent or whole. With `durable`, the file is synced before the
    /// rename and the directory after it, so that this holds after a power cut.
    fn write_file(&self, path: &Path, bytes: &[u8], durable: bool) -> Result<(), CacheError> {
        let err = |action: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| CacheError {
                action,
                path,
                source,
            }
        };
        let dir = path.parent().unwrap_or(&self.root);
        // A stat is much cheaper than a failing mkdir, and the fan-out
        // folders exist after the first few hundred blobs.
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(err("create", dir))?;
        }
        let temp = self.temp_dir().join(format!(
            "{}-{}.part",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut file = File::create(&temp).map_err(err("create", &temp))?;
        file.write_all(bytes).map_err(err("write", &temp))?;
        if durable {
            file.sync_all().map_err(err("sync", &temp))?;
        }
        drop(file);
        fs::rename(&temp, path).map_err(err("rename into", path))?;
        if durable {
            sync_dir(dir).map_err(err("sync", dir))?;
        }
        Ok(())
    }

    /// Removes interrupted writes. Only safe while no other process writes
    /// into this cache (ingest holds the data folder's lock).
    pub fn clear_temp(&self) -> Result<usize, CacheError> {
        let mut removed = 0;
        for path in self.temp_files()? {
            fs::remove_file(&path).map_err(|source| CacheError {
                action: "remove",
                path,
                source,
            })?;
            removed += 1;
        }
        Ok(removed)
    }

    pub fn temp_files(&self) -> Result<Vec<PathBuf>, CacheError> {
        list_files(&self.temp_dir())
    }

    /// Every blob id present in the cache, and any file under `blobs/` whose
    /// name is not a blob id.
    pub fn blob_files(&self) -> Result<(Vec<BlobId>, Vec<PathBuf>), CacheError> {
        let mut ids = Vec::new();
        let mut strays = Vec::new();
        for path in walk_files(&self.root.join("blobs"))? {
            match path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<BlobId>().ok())
            {
                Some(id) if self.blob_path(&id) == path => ids.push(id),
                _ => strays.push(path),
            }
        }
        ids.sort();
        Ok((ids, strays))
    }
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn list_files(dir: &Path) -> Result<Vec<PathBuf>, CacheError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CacheError {
                action: "list",
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| CacheError {
            action: "list",
            path: dir.to_owned(),
            source,
        })?;
        files.push(entry.path());
    }
    files.sort();
    Ok(files)
}

fn walk_files(dir: &Path) -> Result<Vec<PathBuf>, CacheError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for path in list_files(&dir)? {
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_a_blob_once_and_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        cache.create().unwrap();
        let bytes = b"scanned page".to_vec();
        let id = BlobId::of(&bytes);
        assert!(cache.put_blob(&id, &bytes).unwrap());
        assert!(!cache.put_blob(&id, &bytes).unwrap());
        assert_eq!(cache.read_blob(&id).unwrap(), bytes);
        let (ids, strays) = cache.blob_files().unwrap();
        assert_eq!(ids, vec![id]);
        assert!(strays.is_empty());
        assert!(cache.temp_files().unwrap().is_empty());
    }

    #[test]
    fn empty_blob_is_a_blob() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        cache.create().unwrap();
        let id = BlobId::of(b"");
        assert!(cache.put_blob(&id, b"").unwrap());
        assert_eq!(cache.read_blob(&id).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn leftovers_are_found_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        cache.create().unwrap();
        fs::write(cache.temp_dir().join("1-0.part"), b"half").unwrap();
        fs::create_dir_all(dir.path().join("blobs/zz")).unwrap();
        fs::write(dir.path().join("blobs/zz/not-a-blob"), b"x").unwrap();
        assert_eq!(cache.temp_files().unwrap().len(), 1);
        assert_eq!(cache.blob_files().unwrap().1.len(), 1);
        assert_eq!(cache.clear_temp().unwrap(), 1);
        assert!(cache.temp_files().unwrap().is_empty());
    }
}
