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
use std::io::{self, IoSlice, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use dangan_shared::BlobId;
use dangan_sync::server::BlobBody;
use futures_util::stream::BoxStream;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::AsyncReadExt;

use crate::config::Storage;

/// Bytes of a request gathered for each write to the partial.
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// The blob is whole, hashed to its id and renamed into its place in
    /// the local folder by the call that wrote its last bytes; `path` still
    /// has to be synced (with its folder) before the blob counts, as for
    /// [`BlobStore::publish`].
    Published { path: PathBuf },
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
                create_prefix_dirs(path)?;
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
    /// which the caller has checked holds `offset` bytes. Storage failures
    /// are errors; a failing body is an outcome ([`Appended::BodyFailed`])
    /// because what arrived is kept.
    ///
    /// The request's own buffers are written, up to [`WRITE_BUFFER`] bytes
    /// with each `writev`, without copying them first. Double-buffered:
    /// while one batch of chunks is written and hashed on a blocking thread,
    /// the next is taken from the body. The partial is opened by the first
    /// write and a complete one is finished by the last, so a blob of one
    /// batch costs one trip to a blocking thread.
    pub async fn append(
        &self,
        id: &BlobId,
        offset: u64,
        remaining: u64,
        body: &mut BlobBody<'_>,
    ) -> Result<Appended, BlobError> {
        let mut slot = Slot::Idle(Box::new(ChunkWriter::new(self.partial_path(id), offset)));
        // Where a complete blob goes, when that is a rename away.
        let place = self.local_path(id);
        let id = *id;
        let mut written = 0u64;
        loop {
            let mut batch = Vec::new();
            let mut filled = 0u64;
            let mut ended = false;
            let mut body_failed = false;
            let mut too_long = false;
            while filled < WRITE_BUFFER as u64 && written + filled < remaining {
                match body.chunk().await {
                    Ok(Some(chunk)) => {
                        filled += chunk.len() as u64;
                        batch.push(chunk);
                    }
                    Ok(None) => {
                        ended = true;
                        break;
                    }
                    Err(_) if body.overflowed() => {
                        too_long = true;
                        break;
                    }
                    Err(err) => {
                        tracing::debug!(blob = %id.short(), %err, "upload body failed");
                        body_failed = true;
                        break;
                    }
                }
            }
            let reached = written + filled;
            let complete = reached == remaining && !body_failed && !too_long;
            // One more byte would mean the edge sent more than the blob
            // holds: then nothing of this request is kept.
            let too_long =
                too_long || (complete && body.chunk().await.is_err() && body.overflowed());
            let finish = if too_long {
                Finish::Truncate
            } else if complete {
                Finish::Complete
            } else if ended || body_failed {
                Finish::Stopped
            } else {
                Finish::No
            };
            let mut writer = match slot {
                Slot::Idle(writer) => writer,
                Slot::Writing(handle) => join_io(handle).await?.0,
            };
            let place = place.clone().filter(|_| finish == Finish::Complete);
            let handle = tokio::task::spawn_blocking(move || {
                if finish != Finish::Truncate {
                    writer.write(&batch)?;
                }
                writer.finish(finish)?;
                let published = match place {
                    Some(place) => writer.publish(id, place)?,
                    None => None,
                };
                Ok((writer, published))
            });
            if finish == Finish::No {
                slot = Slot::Writing(handle);
                written = reached;
                continue;
            }
            let (writer, published) = join_io(handle).await?;
            return Ok(match finish {
                _ if let Some(path) = published => Appended::Published { path },
                Finish::Truncate => Appended::TooLong { offset },
                _ if body_failed => Appended::BodyFailed {
                    offset: offset + reached,
                },
                _ => Appended::Stopped {
                    offset: offset + reached,
                    hash: BlobId::from_hash(writer.hasher.finalize()),
                },
            });
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

/// Where [`BlobStore::append`]'s writer is: waiting for its first chunk,
/// or writing one (and handing back its buffer).
enum Slot {
    Idle(Box<ChunkWriter>),
    Writing(tokio::task::JoinHandle<Result<Written, BlobError>>),
}

/// A writer back from writing a batch of chunks, with where the blob was
/// published, if it was.
type Written = (Box<ChunkWriter>, Option<PathBuf>);

/// What a chunk's write does after writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finish {
    /// Nothing: more chunks follow.
    No,
    /// Nothing: the body ended (or failed) before the blob's end.
    Stopped,
    /// The blob is whole: start writing it to disk, so that the sync before
    /// it counts finds little left to do.
    Complete,
    /// The body was too long: write nothing and cut the partial back to
    /// where this request began.
    Truncate,
}

/// A partial being appended to, with the hash of everything it holds.
/// The file is opened (and, for a resumed upload, what it holds hashed,
/// once) by the first write.
struct ChunkWriter {
    path: PathBuf,
    /// Bytes the partial held when this request began.
    start: u64,
    file: Option<File>,
    hasher: blake3::Hasher,
}

impl ChunkWriter {
    fn new(path: PathBuf, start: u64) -> Self {
        Self {
            path,
            start,
            file: None,
            hasher: blake3::Hasher::new(),
        }
    }

    fn file(&mut self) -> Result<&File, BlobError> {
        if self.file.is_none() {
            if self.start > 0 {
                self.hasher = hash_file(&self.path)?;
            }
            let file = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(BlobError::io("open", &self.path))?;
            self.file = Some(file);
        }
        self.file.as_ref().ok_or_else(|| BlobError::Io {
            action: "open",
            path: self.path.clone(),
            source: io::Error::other("not open"),
        })
    }

    /// Appends `chunks` to the partial and hashes them.
    fn write(&mut self, chunks: &[Bytes]) -> Result<(), BlobError> {
        if chunks.is_empty() {
            // Nothing arrived (a resumed request cut at once): no reason to
            // open the partial and hash what it holds.
            return Ok(());
        }
        write_all_vectored(self.file()?, chunks).map_err(BlobError::io("write", &self.path))?;
        for chunk in chunks {
            self.hasher.update(chunk);
        }
        Ok(())
    }

    /// Renames the whole partial to `place` if it hashes to `id`; returns
    /// `place` if it did (and `None` when `place` is on another file system
    /// or the bytes are wrong, which the caller then deals with).
    fn publish(&mut self, id: BlobId, place: PathBuf) -> Result<Option<PathBuf>, BlobError> {
        if BlobId::from_hash(self.hasher.finalize()) != id {
            return Ok(None);
        }
        self.file = None;
        Ok(rename_into(&self.path, &place)?.then_some(place))
    }

    fn finish(&mut self, finish: Finish) -> Result<(), BlobError> {
        match finish {
            Finish::No | Finish::Stopped => {}
            Finish::Complete => release_pages(self.file()?),
            Finish::Truncate => {
                let start = self.start;
                self.file()?
                    .set_len(start)
                    .map_err(BlobError::io("truncate", &self.path))?;
            }
        }
        Ok(())
    }
}

/// Writes all of `chunks`, with as few `writev` calls as the kernel allows.
fn write_all_vectored(mut file: &File, chunks: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|chunk| IoSlice::new(chunk)).collect();
    let mut left = &mut slices[..];
    while !left.is_empty() {
        match file.write_vectored(left) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut left, written),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
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

/// Syncs a file's data (and size) to disk, then drops its pages from the
/// page cache (see [`release_pages`]).
pub fn sync_file(path: &Path) -> Result<(), BlobError> {
    let file = File::open(path).map_err(BlobError::io("open", path))?;
    file.sync_data().map_err(BlobError::io("sync", path))?;
    release_pages(&file);
    Ok(())
}

pub fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(BlobError::io("sync", dir))
}

/// Asks the kernel to start writing `file`'s dirty pages to disk, without
/// waiting, and to drop those already clean. On Linux `POSIX_FADV_DONTNEED`
/// does both; elsewhere the later sync does all the work. A blob's pages are
/// dropped once it is synced too: the hub does not read a blob back soon,
/// and an archive's worth of them must not crowd out what it does read.
fn release_pages(file: &File) {
    #[cfg(target_os = "linux")]
    {
        use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
        if let Err(err) = posix_fadvise(file, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED) {
            tracing::debug!(%err, "posix_fadvise failed (only the page cache is affected)");
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

    /// A request body that brings `bytes` in pieces of at most 100,000
    /// bytes, then ends (or breaks off, with `breaks`).
    fn body(bytes: &[u8], breaks: bool) -> BlobBody<'static> {
        let mut pieces: Vec<io::Result<Bytes>> = bytes
            .chunks(100_000)
            .map(|piece| Ok(Bytes::copy_from_slice(piece)))
            .collect();
        if breaks {
            pieces.push(Err(io::Error::other("connection reset")));
        }
        // Lengths are checked by the store, not by the body.
        BlobBody::new(futures_util::stream::iter(pieces), u64::MAX)
    }

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
        let got = store
            .append(&id, 0, total, &mut body(&bytes[..10], false))
            .await
            .unwrap();
        assert_eq!(
            got,
            Appended::Stopped {
                offset: 10,
                hash: BlobId::of(&bytes[..10])
            }
        );
        assert_eq!(store.partial_len(&id).unwrap(), 10);
        let got = store
            .append(&id, 10, total - 10, &mut body(&bytes[10..], false))
            .await
            .unwrap();
        // The hash covers the resumed prefix too: the blob went into place
        // in the same call.
        let path = store.local_path(&id).unwrap();
        assert_eq!(got, Appended::Published { path: path.clone() });
        assert_eq!(fs::read(&path).unwrap(), bytes);
        assert_eq!(path.file_name().unwrap().to_str().unwrap(), id.to_hex());
        assert!(!store.partial_path(&id).exists());
    }

    #[tokio::test]
    async fn wrong_bytes_stay_a_partial_with_their_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = local(dir.path());
        let id = BlobId::of(b"the page the edge meant");
        let got = store
            .append(&id, 0, 23, &mut body(b"the page that arrived!!", false))
            .await
            .unwrap();
        assert_eq!(
            got,
            Appended::Stopped {
                offset: 23,
                hash: BlobId::of(b"the page that arrived!!")
            }
        );
        assert!(!store.partial_matches(&id).await.unwrap());
        assert!(!store.local_path(&id).unwrap().exists());
    }

    #[tokio::test]
    async fn a_blob_of_several_chunks_survives_a_broken_body_and_an_empty_one_lands() {
        let dir = tempfile::tempdir().unwrap();
        let store = local(dir.path());
        let bytes: Vec<u8> = (0..WRITE_BUFFER * 5 / 2)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let id = BlobId::of(&bytes);
        let total = bytes.len() as u64;
        let cut = WRITE_BUFFER * 3 / 2 + 17;
        let got = store
            .append(&id, 0, total, &mut body(&bytes[..cut], true))
            .await
            .unwrap();
        assert_eq!(got, Appended::BodyFailed { offset: cut as u64 });
        assert_eq!(store.partial_len(&id).unwrap(), cut as u64);
        let got = store
            .append(
                &id,
                cut as u64,
                total - cut as u64,
                &mut body(&bytes[cut..], false),
            )
            .await
            .unwrap();
        let path = store.local_path(&id).unwrap();
        assert_eq!(got, Appended::Published { path: path.clone() });
        assert_eq!(fs::read(&path).unwrap(), bytes);

        let empty = BlobId::of(b"");
        let got = store
            .append(&empty, 0, 0, &mut body(b"", false))
            .await
            .unwrap();
        let path = store.local_path(&empty).unwrap();
        assert_eq!(got, Appended::Published { path: path.clone() });
        assert_eq!(fs::read(&path).unwrap(), b"");
    }

    #[tokio::test]
    async fn too_long_a_body_keeps_nothing_of_the_request() {
        let dir = tempfile::tempdir().unwrap();
        let store = local(dir.path());
        let id = BlobId::of(b"abc");
        // As the router hands it over: capped at the three bytes left.
        let mut capped = BlobBody::new(
            futures_util::stream::iter([Ok(Bytes::from_static(b"abcd"))]),
            3,
        );
        let got = store.append(&id, 0, 3, &mut capped).await.unwrap();
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
            store
                .append(&id, 0, bytes.len() as u64, &mut body(&bytes, false))
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
