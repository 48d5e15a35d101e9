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
//! to its id. In the local folder it is not yet durable when it gets there:
//! [`BlobStore::publish`] returns the file to sync, and the caller
//! ([`crate::landing`]) syncs it and its folder before recording the blob as
//! present. Partials are never synced: a resumed upload is verified whole,
//! so bytes a power cut damaged fail the hash and are sent again.
//!
//! In the local folder a verified partial is renamed into place instead of
//! copied through `ObjectStore::put` (same file, same key layout as
//! object_store's `LocalFileSystem`, half the disk writes); other stores get
//! a streamed multipart upload.
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dangan_shared::BlobId;
use futures_util::stream::BoxStream;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::config::Storage;

/// Bytes read from a request before each write to the partial.
const WRITE_BUFFER: usize = 1 << 20;
/// Write buffers kept for reuse (two per upload in flight).
const MAX_POOLED_BUFFERS: usize = 16;
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
    /// Write buffers of finished uploads, for the next ones (fresh megabyte
    /// buffers cost a page fault and zeroing per page, per upload).
    buffers: std::sync::Mutex<Vec<AlignedBuf>>,
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
                create_prefix_dirs(path)?;
                let store = LocalFileSystem::new_with_prefix(path)?.with_fsync(true);
                Ok(Self {
                    backend: Backend::Local { store },
                    partial_dir: partial_dir.to_owned(),
                    buffers: Default::default(),
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
            buffers: Default::default(),
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
    /// which the caller has checked holds `offset` bytes. Storage failures
    /// are errors; a failing body is an outcome ([`Appended::BodyFailed`])
    /// because what arrived is kept.
    ///
    /// Double-buffered: while one chunk is written and hashed on a blocking
    /// thread, the next is read from the body, and no byte is copied in
    /// user space on its way from the request to the file.
    pub async fn append(
        &self,
        id: &BlobId,
        offset: u64,
        remaining: u64,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<Appended, BlobError> {
        let path = self.partial_path(id);
        let opened = path.clone();
        let writer = spawn_io(move || {
            // A resumed upload hashes what it already holds first, once.
            let hasher = if offset > 0 {
                hash_file(&opened)?
            } else {
                blake3::Hasher::new()
            };
            // A fresh upload is written around the page cache, straight to
            // the disk (see `ChunkWriter`); a resumed one at an unaligned
            // offset cannot be.
            let direct = offset == 0 && direct_io::available();
            let mut options = fs::OpenOptions::new();
            options.create(true).append(true);
            let file = match direct.then(|| direct_io::open(&options, &opened)) {
                Some(Ok(file)) => Some(file),
                _ => None,
            };
            let direct = file.is_some();
            let file = match file {
                Some(file) => file,
                None => options
                    .open(&opened)
                    .map_err(BlobError::io("open", &opened))?,
            };
            Ok(ChunkWriter {
                file,
                hasher,
                path: opened,
                direct,
            })
        })
        .await?;
        let mut writing: Option<
            tokio::task::JoinHandle<Result<(ChunkWriter, AlignedBuf), BlobError>>,
        > = None;
        let mut idle = Some(writer);
        let mut spare = self.take_buffer();
        let mut written = 0u64;
        let mut body_failed = false;
        let mut ended = false;
        while written < remaining && !ended && !body_failed {
            let want = WRITE_BUFFER.min((remaining - written) as usize);
            let mut filled = 0;
            while filled < want {
                match body.read(&mut spare.as_mut()[filled..want]).await {
                    Ok(0) => {
                        ended = true;
                        break;
                    }
                    Ok(read) => filled += read,
                    Err(err) => {
                        tracing::debug!(blob = %id.short(), %err, "upload body failed");
                        body_failed = true;
                        break;
                    }
                }
            }
            let (mut writer, chunk) = match writing.take() {
                Some(handle) => {
                    let (writer, buffer) = join_io(handle).await?;
                    (writer, std::mem::replace(&mut spare, buffer))
                }
                None => match idle.take() {
                    Some(writer) => (writer, std::mem::replace(&mut spare, self.take_buffer())),
                    None => break,
                },
            };
            writing = Some(tokio::task::spawn_blocking(move || {
                writer.write(&chunk, filled)?;
                Ok((writer, chunk))
            }));
            written += filled as u64;
        }
        let writer = match writing.take() {
            Some(handle) => {
                let (writer, buffer) = join_io(handle).await?;
                self.give_back(buffer);
                writer
            }
            None => idle.take().ok_or_else(|| BlobError::Io {
                action: "write",
                path: path.clone(),
                source: io::Error::other("no writer"),
            })?,
        };
        let mut too_long = false;
        if written == remaining && !body_failed {
            // One more byte would mean the edge sent more than the blob holds.
            too_long = matches!(body.read(&mut spare.as_mut()[..1]).await, Ok(n) if n > 0);
        }
        self.give_back(spare);
        let complete = !too_long && !body_failed && written == remaining;
        let hash = spawn_io(move || {
            if too_long {
                writer
                    .file
                    .set_len(offset)
                    .map_err(BlobError::io("truncate", &writer.path))?;
            } else if complete {
                // Start writing it to disk now, so that the sync before it
                // counts finds little left to do.
                start_writeback(&writer.file);
            }
            Ok(BlobId::from_hash(writer.hasher.finalize()))
        })
        .await?;
        Ok(if too_long {
            Appended::TooLong { offset }
        } else if body_failed {
            Appended::BodyFailed {
                offset: offset + written,
            }
        } else {
            Appended::Stopped {
                offset: offset + written,
                hash,
            }
        })
    }

    fn take_buffer(&self) -> AlignedBuf {
        let pooled = self.buffers.lock().ok().and_then(|mut pool| pool.pop());
        pooled.unwrap_or_else(AlignedBuf::new)
    }

    fn give_back(&self, buffer: AlignedBuf) {
        if let Ok(mut pool) = self.buffers.lock()
            && pool.len() < MAX_POOLED_BUFFERS
        {
            pool.push(buffer);
        }
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

    /// Moves a verified partial into the object store and removes the
    /// partial. Returns the file that still has to be synced (with
    /// [`sync_file`] and [`sync_dir`] on its folder) before the blob may
    /// count, or `None` when the store made it durable already.
    pub async fn publish(&self, id: &BlobId) -> Result<Option<PathBuf>, BlobError> {
        let partial = self.partial_path(id);
        let key = Self::key(id);
        match &self.backend {
            Backend::Local { store } => {
                let dest = store.path_to_filesystem(&key)?;
                let target = dest.clone();
                let renamed = spawn_io(move || rename_into(&partial, &target)).await?;
                if renamed {
                    return Ok(Some(dest));
                }
                // Another file system: copy through the store (which syncs,
                // see `with_fsync`), then drop the partial.
                upload(store, &key, &self.partial_path(id)).await?;
                self.remove_partial(id)?;
            }
            Backend::Remote(store) => {
                upload(store.as_ref(), &key, &partial).await?;
                self.remove_partial(id)?;
            }
        }
        Ok(None)
    }

    /// Bytes `range` of a complete blob (all of it with `None`) as a stream
    /// of chunks, for answering a download without holding the blob in
    /// memory: the object store's ranged get (a local file read chunk by
    /// chunk, or one S3 `GET` with `Range`). A range past the end is cut at
    /// the end.
    pub async fn read_stream(
        &self,
        id: &BlobId,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<BoxStream<'static, object_store::Result<bytes::Bytes>>, BlobError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let got = self
            .object_store()
            .get_opts(&Self::key(id), options)
            .await?;
        Ok(got.into_stream())
    }

    /// A complete blob, whole (to decode it).
    pub async fn read(&self, id: &BlobId) -> Result<bytes::Bytes, BlobError> {
        Ok(self
            .object_store()
            .get(&Self::key(id))
            .await?
            .bytes()
            .await?)
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

/// A [`WRITE_BUFFER`]-byte buffer whose start is aligned for direct I/O.
struct AlignedBuf {
    bytes: Vec<u8>,
    start: usize,
}

impl AlignedBuf {
    fn new() -> Self {
        let bytes = vec![0u8; WRITE_BUFFER + direct_io::ALIGN];
        // The heap block never moves with the Vec, so neither does this.
        let start = bytes.as_ptr().align_offset(direct_io::ALIGN);
        Self { bytes, start }
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[self.start..self.start + WRITE_BUFFER]
    }
}

impl AsMut<[u8]> for AlignedBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..self.start + WRITE_BUFFER]
    }
}

/// A partial being appended to, with the hash of everything it holds.
///
/// A fresh upload's file is opened for direct I/O: whole aligned blocks go
/// from the request's buffer to the disk without a copy into the page
/// cache (the hub never reads them back soon) and are on the device when
/// the write returns, which leaves the sync before the blob counts little
/// to do. The last partial block, and anything after a write the device
/// refuses, goes through the page cache.
struct ChunkWriter {
    file: File,
    hasher: blake3::Hasher,
    path: PathBuf,
    direct: bool,
}

impl ChunkWriter {
    /// Appends the first `len` bytes of `buffer`: whole blocks directly,
    /// when the file is open for that, and the rest through the page cache.
    fn write(&mut self, buffer: &AlignedBuf, len: usize) -> Result<(), BlobError> {
        let chunk = &buffer.as_ref()[..len];
        let mut start = 0;
        if self.direct {
            let aligned = len / direct_io::ALIGN * direct_io::ALIGN;
            let before = self.hasher.count();
            match (&self.file).write_all(&chunk[..aligned]) {
                Ok(()) => start = aligned,
                Err(err) => {
                    // Nothing or a prefix was written: the file's length
                    // says how much.
                    tracing::debug!(%err, "direct write refused; writing through the page cache");
                    let held = self
                        .file
                        .metadata()
                        .map_err(BlobError::io("inspect", &self.path))?
                        .len();
                    start = match held.checked_sub(before) {
                        Some(written) if written <= aligned as u64 => written as usize,
                        _ => {
                            return Err(BlobError::Io {
                                action: "write",
                                path: self.path.clone(),
                                source: io::Error::other(format!(
                                    "the partial holds {held} bytes after a failed write \
                                     from {before}"
                                )),
                            });
                        }
                    };
                }
            }
            if start < len {
                self.buffered()?;
            }
        }
        self.file
            .write_all(&chunk[start..])
            .map_err(BlobError::io("write", &self.path))?;
        self.hasher.update(chunk);
        Ok(())
    }

    /// Switches the file to writes through the page cache.
    fn buffered(&mut self) -> Result<(), BlobError> {
        if self.direct {
            direct_io::clear(&self.file).map_err(BlobError::io("write", &self.path))?;
            self.direct = false;
        }
        Ok(())
    }
}

/// Direct I/O (`O_DIRECT`): Linux only; elsewhere every write is buffered.
mod direct_io {
    use std::fs::{File, OpenOptions};
    use std::io;
    use std::path::Path;

    /// Alignment of buffers, offsets and lengths (a page: enough for any
    /// logical block size in use).
    pub const ALIGN: usize = 4096;

    /// `DANGAN_HUB_DIRECT_IO=0` turns direct I/O off.
    pub fn available() -> bool {
        cfg!(target_os = "linux") && std::env::var("DANGAN_HUB_DIRECT_IO").as_deref() != Ok("0")
    }

    #[cfg(target_os = "linux")]
    pub fn open(options: &OpenOptions, path: &Path) -> io::Result<File> {
        use nix::fcntl::OFlag;
        use std::os::unix::fs::OpenOptionsExt;
        let mut options = options.clone();
        options.custom_flags(OFlag::O_DIRECT.bits());
        options.open(path)
    }

    #[cfg(target_os = "linux")]
    pub fn clear(file: &File) -> io::Result<()> {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        let flags = fcntl(file, FcntlArg::F_GETFL).map_err(io::Error::from)?;
        let flags = OFlag::from_bits_truncate(flags) - OFlag::O_DIRECT;
        fcntl(file, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    pub fn open(_: &OpenOptions, _: &Path) -> io::Result<File> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    #[cfg(not(target_os = "linux"))]
    pub fn clear(_: &File) -> io::Result<()> {
        Ok(())
    }
}

async fn join_io<T>(handle: tokio::task::JoinHandle<Result<T, BlobError>>) -> Result<T, BlobError> {
    handle.await.map_err(|err| BlobError::Io {
        action: "run",
        path: PathBuf::from("(blocking task)"),
        source: io::Error::other(err.to_string()),
    })?
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

/// Renames `from` to `to`, creating `to`'s folder (durably: a new folder
/// is rare). Returns false (and leaves `from` alone) when they are on
/// different file systems. The caller syncs `to` and its folder; should the
/// rename's removal from partial/ be lost in a power cut, a stale partial
/// reappears beside the archived blob, which is harmless (it expires).
fn rename_into(from: &Path, to: &Path) -> Result<bool, BlobError> {
    let dir = to.parent().unwrap_or(Path::new("/"));
    if !dir.is_dir() {
        fs::create_dir_all(dir).map_err(BlobError::io("create", dir))?;
        if let Some(root) = dir.parent() {
            sync_dir(root)?;
        }
    }
    match fs::rename(from, to) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::CrossesDevices => Ok(false),
        Err(source) => Err(BlobError::Io {
            action: "move into the archive",
            path: to.to_owned(),
            source,
        }),
    }
}

/// Creates the 256 folders `00` … `ff` of the local layout that do not
/// exist yet, with one sync of `root` for them all (instead of one each as
/// blobs first land in them).
fn create_prefix_dirs(root: &Path) -> Result<(), BlobError> {
    let mut created = false;
    for prefix in 0..=255u8 {
        let dir = root.join(format!("{prefix:02x}"));
        match fs::create_dir(&dir) {
            Ok(()) => created = true,
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(BlobError::Io {
                    action: "create",
                    path: dir,
                    source,
                });
            }
        }
    }
    if created {
        sync_dir(root)?;
    }
    Ok(())
}

/// Syncs a file's data (and size) to disk.
pub fn sync_file(path: &Path) -> Result<(), BlobError> {
    File::open(path)
        .and_then(|f| f.sync_data())
        .map_err(BlobError::io("sync", path))
}

/// Syncs the whole file system holding `path` (Linux `syncfs`). Returns
/// false where that is not available.
pub fn sync_filesystem(path: &Path) -> Result<bool, BlobError> {
    #[cfg(target_os = "linux")]
    {
        let file = File::open(path).map_err(BlobError::io("open", path))?;
        nix::unistd::syncfs(&file)
            .map_err(io::Error::from)
            .map_err(BlobError::io("sync the file system of", path))?;
        Ok(true)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        Ok(false)
    }
}

pub fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(BlobError::io("sync", dir))
}

/// Asks the kernel to start writing `file`'s dirty pages to disk, without
/// waiting. On Linux `POSIX_FADV_DONTNEED` does that (and drops the pages
/// once clean: the hub does not read a blob back soon); elsewhere the later
/// sync does all the work.
fn start_writeback(file: &File) {
    #[cfg(target_os = "linux")]
    {
        use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
        if let Err(err) = posix_fadvise(file, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED) {
            tracing::debug!(%err, "posix_fadvise failed; the blob is synced later anyway");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
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
    join_io(tokio::task::spawn_blocking(work)).await
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
