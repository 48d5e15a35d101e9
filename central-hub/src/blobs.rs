//! The archive's blob storage: complete, verified images in an object store
//! (a local folder by default), and the partial uploads they grow from.
//!
//! Layout:
//! - object key `<first two hex digits>/<64 hex digits>`: one complete blob,
//!   uncompressed, named by its BLAKE3 id (in the local folder that is the
//!   file `blobs/ab/abcd…`);
//! - `partial/<64 hex digits>.partial`: the bytes received so far of a blob
//!   being uploaded; its length is the offset an edge resumes from.
//!
//! Invariant: a blob reaches the object store only after its bytes hashed
//! to its id, and is durable there (file and directory synced) before the
//! caller records it as present.
//!
//! In the local folder a verified partial is renamed into place instead of
//! copied through `ObjectStore::put` (same file, same key layout as
//! object_store's `LocalFileSystem`, half the disk writes); other stores get
//! a streamed multipart upload.
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dangan_shared::BlobId;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::config::Storage;

/// Bytes read from a request and buffered before each write to the partial.
const WRITE_BUFFER: usize = 1 << 20;
/// Environment variables with the S3 credentials (never in hub.toml).
pub const S3_KEY_ID_VAR: &str = "DANGAN_HUB_S3_ACCESS_KEY_ID";
pub const S3_SECRET_VAR: &str = "DANGAN_HUB_S3_SECRET_ACCESS_KEY";

/// Part size of uploads to a remote object store (S3 needs at least 5 MiB).
const REMOTE_PART: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
}

impl BlobError {
    fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BlobError {
        let path = path.to_owned();
        move |source| BlobError::Io {
            action,
            path,
            source,
        }
    }
}

/// How an append ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The body ended; the partial now holds this many bytes, whose BLAKE3
    /// hash is `hash` (computed while writing, so a complete blob needs no
    /// second read to verify).
    Stopped { offset: u64, hash: BlobId },
    /// The body failed after this many bytes of the partial were written
    /// and synced; the edge resumes from there.
    BodyFailed { offset: u64 },
    /// The body carried more bytes than the blob has; nothing was kept of
    /// this request.
    TooLong { offset: u64 },
}

enum Backend {
    Local { store: LocalFileSystem },
    Remote(Arc<dyn ObjectStore>),
}

pub struct BlobStore {
    backend: Backend,
    partial_dir: PathBuf,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.backend {
            Backend::Local { store } => store.to_string(),
            Backend::Remote(store) => store.to_string(),
        };
        f.debug_struct("BlobStore")
            .field("store", &kind)
            .field("partial_dir", &self.partial_dir)
            .finish()
    }
}

impl BlobStore {
    /// Opens the configured storage; the local folder must exist.
    pub fn open(storage: &Storage, partial_dir: &Path) -> Result<Self, BlobError> {
        match storage {
            Storage::Local { path } => {
                let store = LocalFileSystem::new_with_prefix(path)?.with_fsync(true);
                Ok(Self {
                    backend: Backend::Local { store },
                    partial_dir: partial_dir.to_owned(),
                })
            }
            Storage::S3 {
                endpoint,
                bucket,
                region,
                prefix,
                allow_http,
            } => {
                // AWS_* variables (and instance credentials) apply unless
                // the hub's own variables are set.
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_allow_http(*allow_http);
                if !endpoint.is_empty() {
                    builder = builder.with_endpoint(endpoint);
                }
                if let Ok(key_id) = std::env::var(S3_KEY_ID_VAR) {
                    builder = builder.with_access_key_id(key_id);
                }
                if let Ok(secret) = std::env::var(S3_SECRET_VAR) {
                    builder = builder.with_secret_access_key(secret);
                }
                let s3: Arc<dyn ObjectStore> = Arc::new(builder.build()?);
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    s3
                } else {
                    Arc::new(PrefixStore::new(s3, prefix.as_str()))
                };
                Ok(Self::with_object_store(store, partial_dir))
            }
        }
    }

    /// Uses any object store for complete blobs (tests, and remote stores).
    pub fn with_object_store(store: Arc<dyn ObjectStore>, partial_dir: &Path) -> Self {
        Self {
            backend: Backend::Remote(store),
            partial_dir: partial_dir.to_owned(),
        }
    }

    pub fn object_store(&self) -> &dyn ObjectStore {
        match &self.backend {
            Backend::Local { store } => store,
            Backend::Remote(store) => store.as_ref(),
        }
    }

    /// The object key of a complete blob.
    pub fn key(id: &BlobId) -> ObjectPath {
        let hex = id.to_hex();
        ObjectPath::from(format!("{}/{hex}", &hex[..2]))
    }

    /// Where a complete blob lives on disk, for the local backend.
    pub fn local_path(&self, id: &BlobId) -> Option<PathBuf> {
        match &self.backend {
            Backend::Local { store } => store.path_to_filesystem(&Self::key(id)).ok(),
            Backend::Remote(_) => None,
        }
    }

    pub fn partial_dir(&self) -> &Path {
        &self.partial_dir
    }

    pub fn partial_path(&self, id: &BlobId) -> PathBuf {
        self.partial_dir.join(format!("{}.partial", id.to_hex()))
    }

    /// Bytes held of a partial upload (0 when there is none).
    pub fn partial_len(&self, id: &BlobId) -> Result<u64, BlobError> {
        let path = self.partial_path(id);
        match fs::metadata(&path) {
            Ok(meta) => Ok(meta.len()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(source) => Err(BlobError::Io {
                action: "inspect",
                path,
                source,
            }),
        }
    }

    /// Appends at most `remaining` bytes of `body` to the blob's partial,
    /// which the caller has checked holds `offset` bytes, and syncs them.
    /// Storage failures are errors; a failing body is an outcome
    /// ([`Appended::BodyFailed`]) because what arrived is kept.
    pub async fn append(
        &self,
        id: &BlobId,
        offset: u64,
        remaining: u64,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<Appended, BlobError> {
        let path = self.partial_path(id);
        // A resumed upload hashes what it already holds first, once.
        let mut hasher = if offset > 0 {
            let held = path.clone();
            spawn_io(move || hash_file(&held)).await?
        } else {
            blake3::Hasher::new()
        };
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(BlobError::io("open", &path))?;
        let mut writer = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut buffer = vec![0u8; 256 << 10];
        let mut written = 0u64;
        let mut body_failed = false;
        while written < remaining {
            let want = buffer.len().min((remaining - written) as usize);
            let read = match body.read(&mut buffer[..want]).await {
                Ok(0) => break,
                Ok(read) => read,
                Err(err) => {
                    tracing::debug!(blob = %id.short(), %err, "upload body failed");
                    body_failed = true;
                    break;
                }
            };
            writer
                .write_all(&buffer[..read])
                .await
                .map_err(BlobError::io("write", &path))?;
            hasher.update(&buffer[..read]);
            written += read as u64;
        }
        let mut too_long = false;
        if written == remaining && !body_failed {
            // One more byte would mean the edge sent more than the blob holds.
            too_long = matches!(body.read(&mut buffer[..1]).await, Ok(n) if n > 0);
        }
        writer
            .flush()
            .await
            .map_err(BlobError::io("write", &path))?;
        let file = writer.into_inner();
        if too_long {
            file.set_len(offset)
                .await
                .map_err(BlobError::io("truncate", &path))?;
        }
        // The data and the size: all a reader of the file needs.
        file.sync_data()
            .await
            .map_err(BlobError::io("sync", &path))?;
        Ok(if too_long {
            Appended::TooLong { offset }
        } else if body_failed {
            Appended::BodyFailed {
                offset: offset + written,
            }
        } else {
            Appended::Stopped {
                offset: offset + written,
                hash: BlobId::from_hash(hasher.finalize()),
            }
        })
    }

    /// Whether the complete partial hashes to `id`.
    pub async fn partial_matches(&self, id: &BlobId) -> Result<bool, BlobError> {
        let path = self.partial_path(id);
        let id = *id;
        spawn_io(move || Ok(BlobId::from_hash(hash_file(&path)?.finalize()) == id)).await
    }

    pub fn remove_partial(&self, id: &BlobId) -> Result<(), BlobError> {
        let path = self.partial_path(id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(BlobError::Io {
                action: "remove",
                path,
                source,
            }),
        }
    }

    /// Moves a verified partial into the object store, durably, and removes
    /// the partial.
    pub async fn publish(&self, id: &BlobId) -> Result<(), BlobError> {
        let partial = self.partial_path(id);
        let key = Self::key(id);
        match &self.backend {
            Backend::Local { store } => {
                let dest = store.path_to_filesystem(&key)?;
                let renamed = spawn_io(move || rename_durably(&partial, &dest)).await?;
                if !renamed {
                    // Another file system: copy through the store (which
                    // syncs, see `with_fsync`), then drop the partial.
                    upload(store, &key, &self.partial_path(id)).await?;
                    self.remove_partial(id)?;
                }
            }
            Backend::Remote(store) => {
                upload(store.as_ref(), &key, &partial).await?;
                self.remove_partial(id)?;
            }
        }
        Ok(())
    }

    /// Deletes partial uploads not modified for `max_age`, except those
    /// `busy` says are being written. Returns how many were deleted.
    pub fn expire_partials(
        &self,
        max_age: Duration,
        busy: impl Fn(&BlobId) -> bool,
    ) -> Result<usize, BlobError> {
        let dir = &self.partial_dir;
        let entries = fs::read_dir(dir).map_err(BlobError::io("list", dir))?;
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(BlobError::io("list", dir))?;
            let path = entry.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".partial"))
                .and_then(|hex| hex.parse::<BlobId>().ok())
            else {
                continue;
            };
            let age = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .unwrap_or_default();
            if age >= max_age && !busy(&id) {
                self.remove_partial(&id)?;
                tracing::info!(blob = %id.short(), age_s = age.as_secs(), "expired a partial upload");
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A hasher fed with the whole content of `path`.
fn hash_file(path: &Path) -> Result<blake3::Hasher, BlobError> {
    let mut file = File::open(path).map_err(BlobError::io("open", path))?;
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; 256 << 10];
    loop {
        let read = file
            .read(&mut buffer)
            .map_err(BlobError::io("read", path))?;
        if read == 0 {
            return Ok(hasher);
        }
        hasher.update(&buffer[..read]);
    }
}

/// Renames `from` to `to`, creating `to`'s folder, and syncs the folder.
/// Returns false (and leaves `from` alone) when they are on different file
/// systems.
fn rename_durably(from: &Path, to: &Path) -> Result<bool, BlobError> {
    let dir = to.parent().unwrap_or(Path::new("/"));
    if !dir.is_dir() {
        fs::create_dir_all(dir).map_err(BlobError::io("create", dir))?;
        if let Some(root) = dir.parent() {
            sync_dir(root)?;
        }
    }
    match fs::rename(from, to) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::CrossesDevices => return Ok(false),
        Err(source) => {
            return Err(BlobError::Io {
                action: "move into the archive",
                path: to.to_owned(),
                source,
            });
        }
    }
    // Only the destination folder is synced: should the rename's removal
    // from partial/ be lost in a power cut, a stale partial reappears
    // beside the archived blob, which is harmless (it expires).
    sync_dir(dir)?;
    Ok(true)
}

pub fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(BlobError::io("sync", dir))
}

/// Copies a file into `store` under `key`: in one request when small, else
/// streamed in parts.
async fn upload(store: &dyn ObjectStore, key: &ObjectPath, path: &Path) -> Result<(), BlobError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(BlobError::io("open", path))?;
    let size = file
        .metadata()
        .await
        .map_err(BlobError::io("inspect", path))?
        .len();
    if size <= REMOTE_PART as u64 {
        let mut bytes = Vec::with_capacity(size as usize);
        file.read_to_end(&mut bytes)
            .await
            .map_err(BlobError::io("read", path))?;
        store.put(key, bytes.into()).await?;
        return Ok(());
    }
    let upload = store.put_multipart(key).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, REMOTE_PART);
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = match file.read(&mut buffer).await {
            Ok(read) => read,
            Err(source) => {
                let _ = writer.abort().await;
                return Err(BlobError::Io {
                    action: "read",
                    path: path.to_owned(),
                    source,
                });
            }
        };
        if read == 0 {
            break;
        }
        writer.wait_for_capacity(4).await?;
        writer.write(&buffer[..read]);
    }
    writer.finish().await?;
    Ok(())
}

async fn spawn_io<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| BlobError::Io {
            action: "run",
            path: PathBuf::from("(blocking task)"),
            source: io::Error::other(err.to_string()),
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(dir: &Path) -> BlobStore {
        fs::create_dir_all(dir.join("blobs")).unwrap();
        fs::create_dir_all(dir.join("partial")).unwrap();
        BlobStore::open(
            &Storage::Local {
                path: dir.join("blobs"),
            },
            &dir.join("partial"),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn appends_resumes_verifies_and_publishes() {
        let dir = tempfile::tempdir().unwrap();
        let store = local(dir.path());
        let bytes = b"a scanned page, in two parts".to_vec();
        let id = BlobId::of(&bytes);
        let total = bytes.len() as u64;
        let mut first = &bytes[..10];
        let got = store.append(&id, 0, total, &mut first).await.unwrap();
        assert_eq!(
            got,
            Appended::Stopped {
                offset: 10,
                hash: BlobId::of(&bytes[..10])
            }
        );
        assert_eq!(store.partial_len(&id).unwrap(), 10);
        let mut rest = &bytes[10..];
        let got = store.append(&id, 10, total - 10, &mut rest).await.unwrap();
        // The hash covers the resumed prefix too.
        assert_eq!(
            got,
            Appended::Stopped {
                offset: total,
                hash: id
            }
        );
        assert!(store.partial_matches(&id).await.unwrap());
        store.publish(&id).await.unwrap();
        let path = store.local_path(&id).unwrap();
        assert_eq!(fs::read(&path).unwrap(), bytes);
        assert_eq!(path.file_name().unwrap().to_str().unwrap(), id.to_hex());
        assert!(!store.partial_path(&id).exists());
    }

    #[tokio::test]
    async fn too_long_a_body_keeps_nothing_of_the_request() {
        let dir = tempfile::tempdir().unwrap();
        let store = local(dir.path());
        let id = BlobId::of(b"abc");
        let mut body: &[u8] = b"abcd";
        let got = store.append(&id, 0, 3, &mut body).await.unwrap();
        assert_eq!(got, Appended::TooLong { offset: 0 });
        assert_eq!(store.partial_len(&id).unwrap(), 0);
    }

    #[tokio::test]
    async fn a_remote_store_receives_blobs_whole_or_in_parts() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("partial")).unwrap();
        let memory = Arc::new(object_store::memory::InMemory::new());
        let store = BlobStore::with_object_store(memory.clone(), &dir.path().join("partial"));
        for size in [0, 1, REMOTE_PART, REMOTE_PART * 2 + 17] {
            let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let id = BlobId::of(&bytes);
            let mut body = &bytes[..];
            store
                .append(&id, 0, bytes.len() as u64, &mut body)
                .await
                .unwrap();
            assert!(store.partial_matches(&id).await.unwrap());
            store.publish(&id).await.unwrap();
            let stored = memory
                .get(&BlobStore::key(&id))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert_eq!(stored.as_ref(), &bytes[..], "size {size}");
            assert!(!store.partial_path(&id).exists());
        }
    }

    #[test]
    fn old_partials_expire_unless_busy() {
        let dir = tempfile::tempdir().unwrap();
        let store = local(dir.path());
        let (a, b) = (BlobId::of(b"a"), BlobId::of(b"b"));
        fs::write(store.partial_path(&a), b"x").unwrap();
        fs::write(store.partial_path(&b), b"y").unwrap();
        fs::write(store.partial_dir().join("notes.txt"), b"z").unwrap();
        assert_eq!(
            store
                .expire_partials(Duration::from_secs(3600), |_| false)
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .expire_partials(Duration::ZERO, |id| *id == b)
                .unwrap(),
            1
        );
        assert!(!store.partial_path(&a).exists());
        assert!(store.partial_path(&b).exists());
        assert!(store.partial_dir().join("notes.txt").exists());
    }
}
