//! Group durability for received blobs.
//!
//! A blob whose bytes hashed to its id is *landed*: in the archive's folder,
//! answered as complete to the edge, but not yet known to be on disk. One
//! background thread makes landed blobs durable in rounds — `fdatasync` of
//! every file of the round, one sync per folder, then the blobs' index rows
//! in one transaction — while uploads go on. A blob counts (has an index
//! row, may be committed) only after its round; a commit first waits for
//! every blob landed before it ([`Landing::settle`]).
//!
//! Syncing each blob before answering its upload made the edge wait for the
//! disk once per blob; in rounds the disk writes overlap the transfer (and
//! [`crate::blobs`] starts each file's write-back as it completes), so a
//! round's syncs find little left to write.
//!
//! A crash loses only landed blobs without rows: they are offered as missing
//! and uploaded again, and the new file replaces the old.
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dangan_shared::BlobId;
use tokio::sync::watch;

use crate::archive;
use crate::blobs::{self, BlobError};
use crate::store::{Db, StoreError};

/// Most blobs made durable in one round.
const ROUND: usize = 512;
/// How long a round gathers blobs after its first.
const GATHER: Duration = Duration::from_millis(50);
/// Files of a round synced at the same time.
const SYNC_THREADS: usize = 4;

/// A blob waiting for its round.
struct Landed {
    seq: u64,
    blob: BlobId,
    size: u64,
    /// The file to sync; `None` when the store is durable by itself
    /// (a remote object store acknowledges a write once it is stored).
    path: Option<PathBuf>,
}

struct Queue {
    /// Landed blobs without an index row yet, with their sizes.
    pending: HashMap<BlobId, u64>,
    /// Sequence number of the last blob landed.
    last_seq: u64,
    sender: mpsc::Sender<Landed>,
}

/// Why [`Landing::settle`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("the blob sync thread has stopped")]
    Stopped,
    #[error("blobs were not synced to disk within {0:?}")]
    TimedOut(Duration),
}

pub struct Landing {
    queue: Mutex<Queue>,
    /// Sequence number through which every landed blob has been dealt with
    /// (recorded, or dropped after a failed sync).
    settled: watch::Receiver<u64>,
    /// The sync thread, to cut its gathering short when a commit waits
    /// (and sets `hurry`).
    thread: std::sync::OnceLock<std::thread::Thread>,
    hurry: Arc<AtomicBool>,
}

impl std::fmt::Debug for Landing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Landing")
            .field("settled", &*self.settled.borrow())
            .finish_non_exhaustive()
    }
}

impl Landing {
    /// Starts the sync thread, which records rows in `db`.
    pub fn start(db: Arc<Db>) -> Arc<Self> {
        let (sender, receiver) = mpsc::channel();
        let (settled_tx, settled) = watch::channel(0);
        let landing = Arc::new(Self {
            queue: Mutex::new(Queue {
                pending: HashMap::new(),
                last_seq: 0,
                sender,
            }),
            settled,
            thread: std::sync::OnceLock::new(),
            hurry: Arc::new(AtomicBool::new(false)),
        });
        let weak = Arc::downgrade(&landing);
        let hurry = Arc::clone(&landing.hurry);
        let spawned = std::thread::Builder::new()
            .name("blob-sync".to_owned())
            .spawn(move || {
                while let Ok(first) = receiver.recv() {
                    // Gather for a moment (asleep, not woken by each blob):
                    // a round's syncs overlap, and nobody waits for a
                    // blob's round but a commit, which hurries the thread.
                    let deadline = Instant::now() + GATHER;
                    loop {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() || hurry.swap(false, Ordering::AcqRel) {
                            break;
                        }
                        std::thread::park_timeout(left);
                    }
                    let mut round = vec![first];
                    round.extend(receiver.try_iter().take(ROUND - 1));
                    let last = round.iter().map(|l| l.seq).max().unwrap_or(0);
                    let done = make_durable(&db, round);
                    if let Some(landing) = weak.upgrade() {
                        let mut queue = landing.lock();
                        for blob in done {
                            queue.pending.remove(&blob);
                        }
                    }
                    settled_tx.send_replace(last);
                }
            });
        match spawned {
            Ok(handle) => {
                let _ = landing.thread.set(handle.thread().clone());
            }
            Err(err) => tracing::error!(%err, "cannot start the blob sync thread"),
        }
        landing
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hands a verified blob in the archive to the sync thread.
    pub fn land(&self, blob: BlobId, size: u64, path: Option<PathBuf>) {
        // Numbered and sent under one lock: the thread sees blobs in order.
        let mut queue = self.lock();
        queue.last_seq += 1;
        let seq = queue.last_seq;
        queue.pending.insert(blob, size);
        if queue
            .sender
            .send(Landed {
                seq,
                blob,
                size,
                path,
            })
            .is_err()
        {
            tracing::error!("the blob sync thread has stopped; the blob will be uploaded again");
            queue.pending.remove(&blob);
        }
    }

    /// The size of a landed blob still waiting for its round.
    pub fn pending(&self, blob: &BlobId) -> Option<u64> {
        self.lock().pending.get(blob).copied()
    }

    /// Waits until every blob landed so far has had its round.
    pub async fn settle(&self, within: Duration) -> Result<(), SettleError> {
        let target = self.lock().last_seq;
        if *self.settled.borrow() < target
            && let Some(thread) = self.thread.get()
        {
            self.hurry.store(true, Ordering::Release);
            thread.unpark();
        }
        let mut settled = self.settled.clone();
        match tokio::time::timeout(within, settled.wait_for(|seq| *seq >= target)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(SettleError::Stopped),
            Err(_) => Err(SettleError::TimedOut(within)),
        }
    }
}

/// Syncs a round's files and folders and records the blobs that made it.
/// Returns every blob of the round (recorded or not: none is pending any
/// more; one not recorded is missing, and its upload is asked for again).
///
/// Each file is synced on its own (`fdatasync`), a few at a time, never the
/// whole file system: `syncfs` would also wait for everything else dirty on
/// it (another program's gigabytes of copies cost a round seconds), while a
/// file's own sync waits only for its pages, whose write-back began when it
/// landed. A flush per file costs little next to the data.
fn make_durable(db: &Db, round: Vec<Landed>) -> Vec<BlobId> {
    let all: Vec<BlobId> = round.iter().map(|l| l.blob).collect();
    let mut failed_dirs = BTreeSet::new();
    let mut durable = Vec::with_capacity(round.len());
    let mut dirs = BTreeSet::new();
    let synced = sync_files(&round);
    for (landed, result) in round.iter().zip(synced) {
        if let Err(err) = result {
            drop_blob(landed, &err);
            continue;
        }
        if let Some(dir) = landed.path.as_deref().and_then(Path::parent) {
            dirs.insert(dir.to_owned());
        }
        durable.push(landed);
    }
    for dir in &dirs {
        if let Err(err) = blobs::sync_dir(dir) {
            tracing::warn!(%err, "cannot sync a blob folder");
            failed_dirs.insert(dir.clone());
        }
    }
    let recorded: Vec<&Landed> = durable
        .into_iter()
        .filter(|landed| {
            let in_failed_dir = landed
                .path
                .as_deref()
                .and_then(Path::parent)
                .is_some_and(|dir| failed_dirs.contains(dir));
            !in_failed_dir
        })
        .collect();
    if let Err(err) = record(db, &recorded) {
        tracing::warn!(%err, blobs = recorded.len(), "cannot record synced blobs; they will be uploaded again");
    } else {
        tracing::debug!(blobs = recorded.len(), "blobs durable");
    }
    all
}

/// Syncs the local files of a round, in up to [`SYNC_THREADS`] parts at a
/// time (several syncs in flight keep the device busy); a blob without a
/// file (a remote store's) needs none. The results are in the round's order.
fn sync_files(round: &[Landed]) -> Vec<Result<(), BlobError>> {
    fn sync(part: &[Landed]) -> Vec<Result<(), BlobError>> {
        part.iter()
            .map(|landed| landed.path.as_deref().map_or(Ok(()), blobs::sync_file))
            .collect()
    }
    let size = round.len().div_ceil(SYNC_THREADS).max(1);
    if size == round.len() {
        return sync(round);
    }
    std::thread::scope(|scope| {
        let parts: Vec<_> = round
            .chunks(size)
            .map(|part| {
                let thread = std::thread::Builder::new()
                    .name("blob-sync-part".to_owned())
                    .spawn_scoped(scope, move || sync(part));
                (part, thread)
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|(part, thread)| match thread {
                Ok(thread) => thread.join().unwrap_or_else(|_| panicked(part)),
                // No thread to spare: this part is synced here.
                Err(_) => sync(part),
            })
            .collect()
    })
}

/// A failure for every blob of a part whose sync thread panicked.
fn panicked(part: &[Landed]) -> Vec<Result<(), BlobError>> {
    part.iter()
        .map(|landed| {
            Err(BlobError::Io {
                action: "sync",
                path: landed.path.clone().unwrap_or_default(),
                source: std::io::Error::other("the sync thread panicked"),
            })
        })
        .collect()
}

fn drop_blob(landed: &Landed, err: &BlobError) {
    tracing::warn!(blob = %landed.blob.short(), %err, "cannot sync a blob to disk; it will be uploaded again");
    if let Some(path) = &landed.path {
        let _ = std::fs::remove_file(path);
    }
}

fn record(db: &Db, landed: &[&Landed]) -> Result<(), StoreError> {
    if landed.is_empty() {
        return Ok(());
    }
    let mut conn = db.get()?;
    // The rows need no fsync of their own: a batch commit (synchronous =
    // FULL) syncs the write-ahead log with every row before it, and a row
    // lost to a power cut only means the blob is uploaded again.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let result = (|| {
        let tx = conn.transaction()?;
        for landed in landed {
            archive::record_blob(&tx, &landed.blob, landed.size)?;
        }
        tx.commit()?;
        Ok(())
    })();
    conn.pragma_update(None, "synchronous", "FULL")?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(db: &Db, blob: &BlobId) -> Option<u64> {
        let conn = db.get().expect("connection");
        archive::blob_size(&conn, blob).expect("lookup")
    }

    #[tokio::test]
    async fn a_landed_blob_counts_once_synced_and_a_failed_one_never() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Arc::new(Db::create(dir.path()).expect("database"));
        let landing = Landing::start(Arc::clone(&db));

        let file = dir.path().join("blob");
        std::fs::write(&file, b"page").expect("write");
        let good = BlobId::of(b"page");
        // Its file is gone before the sync thread gets to it: the sync
        // fails, so it must not count.
        let gone = BlobId::of(b"gone");
        let remote = BlobId::of(b"stored remotely");
        landing.land(good, 4, Some(file.clone()));
        landing.land(gone, 4, Some(dir.path().join("no such file")));
        landing.land(remote, 15, None);
        // Complete for uploads at once, before any row exists.
        assert_eq!(landing.pending(&good), Some(4));

        landing
            .settle(Duration::from_secs(10))
            .await
            .expect("settled");
        assert_eq!(recorded(&db, &good), Some(4));
        assert_eq!(recorded(&db, &remote), Some(15));
        assert_eq!(recorded(&db, &gone), None, "an unsynced blob counted");
        for blob in [good, gone, remote] {
            assert_eq!(landing.pending(&blob), None);
        }
        assert!(file.exists());
    }

    #[tokio::test]
    async fn a_large_round_is_synced_file_by_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Arc::new(Db::create(dir.path()).expect("database"));
        let landing = Landing::start(Arc::clone(&db));
        let blobs: Vec<BlobId> = (0..SYNC_THREADS * 5)
            .map(|i| {
                let bytes = format!("page {i}");
                let path = dir.path().join(format!("blob{i}"));
                std::fs::write(&path, &bytes).expect("write");
                let id = BlobId::of(bytes.as_bytes());
                landing.land(id, bytes.len() as u64, Some(path));
                id
            })
            .collect();
        landing
            .settle(Duration::from_secs(10))
            .await
            .expect("settled");
        for blob in &blobs {
            assert!(recorded(&db, blob).is_some());
        }
    }
}
