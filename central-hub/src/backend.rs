//! [`HubBackend`]: the hub's storage behind the sync router (`/sync/v1` and
//! `/sync/v2`; the warehouse feeds through [`crate::warehouse`]) — who may
//! do what, and what to answer — over the index ([`crate::archive`],
//! [`crate::nodes`]) and the blob storage ([`crate::blobs`]).
//!
//! Every database call runs on a blocking thread; blob bytes stream from
//! the request to the partial file without being held in memory.
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dangan_shared::{BlobId, OrgCode};
use dangan_sync::server::{Backend, BlobBody, NodeIdentity, ProtocolError};
use dangan_sync::wire::{
    BatchListing, BlobStatus, CommitRequest, DictionaryFeed, EnrolRequest, EnrolResponse,
    ErrorCode, LoanRequestFeed, Manifest, MissingBlob, OfferResponse, QueueReport, Receipt,
    WarehouseCursor, WarehouseEvents,
};
use rusqlite::OptionalExtension;

use crate::archive::{self, CommitError, Offer};
use crate::blobs::{Appended, BlobError, BlobStore};
use crate::config::Config;
use crate::hub::{self, HubError, HubFolder};
use crate::landing::Landing;
use crate::nodes::{self, EnrolError};
use crate::reconcile::{self, Reconciliation};
use crate::store::{self, Db, StoreError};
use crate::warehouse::{self, ApplyError};
use dangan_sync::HubKey;

static TEMP_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A node's last contact is written at most this often.
const CONTACT_RESOLUTION: Duration = Duration::from_secs(30);
/// Longest a commit waits for received blobs to reach the disk.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

fn error(code: ErrorCode, message: impl Into<String>) -> ProtocolError {
    ProtocolError {
        code,
        message: message.into(),
        offset: None,
    }
}

impl From<StoreError> for ProtocolError {
    fn from(err: StoreError) -> Self {
        if err.is_disk_full() {
            tracing::warn!(%err, "index database full");
            error(
                ErrorCode::StorageUnavailable,
                "the hub's storage is full; retry later",
            )
        } else {
            tracing::error!(%err, "index database failed");
            error(ErrorCode::Internal, "internal error")
        }
    }
}

fn storage_error(err: BlobError) -> ProtocolError {
    tracing::warn!(%err, "blob storage failed");
    error(
        ErrorCode::StorageUnavailable,
        "the hub's blob storage failed; retry later",
    )
}

/// The hub's storage behind the sync protocol, plus the administrators'
/// reconciliation.
pub struct HubBackend {
    data_dir: PathBuf,
    config: Config,
    db: Arc<Db>,
    key: Arc<HubKey>,
    hub_id: String,
    blobs: BlobStore,
    /// Blobs being uploaded right now: one upload per blob at a time.
    uploads: Mutex<HashSet<BlobId>>,
    /// Verified blobs on their way to disk and into the index.
    landing: Arc<Landing>,
}

impl std::fmt::Debug for HubBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubBackend")
            .field("data_dir", &self.data_dir)
            .field("hub_id", &self.hub_id)
            .finish_non_exhaustive()
    }
}

/// See [`HubBackend::known_blob`]; the sizes are in bytes.
enum KnownBlob {
    Complete(u64),
    Offered(u64),
}

/// Holds a blob's upload slot; releases it when dropped.
struct UploadSlot<'a> {
    uploads: &'a Mutex<HashSet<BlobId>>,
    blob: BlobId,
}

impl Drop for UploadSlot<'_> {
    fn drop(&mut self) {
        if let Ok(mut uploads) = self.uploads.lock() {
            uploads.remove(&self.blob);
        }
    }
}

impl HubBackend {
    /// Opens the data folder with its configured blob storage.
    pub fn open(data_dir: &Path) -> Result<Self, HubError> {
        let folder = HubFolder::open(data_dir)?;
        let blobs = BlobStore::open(&folder.config.storage, &data_dir.join(hub::PARTIAL_DIR))
            .map_err(|err| HubError::Io {
                action: "open the blob storage of",
                path: data_dir.to_owned(),
                source: std::io::Error::other(err.to_string()),
            })?;
        Ok(Self::from_parts(folder, blobs))
    }

    /// Opens the data folder with `blobs` as its blob storage.
    pub fn from_parts(folder: HubFolder, blobs: BlobStore) -> Self {
        let db = Arc::new(folder.db);
        Self {
            landing: Landing::start(Arc::clone(&db)),
            data_dir: folder.data_dir,
            config: folder.config,
            db,
            key: Arc::new(folder.key),
            hub_id: folder.hub_id,
            blobs,
            uploads: Mutex::new(HashSet::new()),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn hub_id(&self) -> &str {
        &self.hub_id
    }

    /// The key receipts are signed with (the monthly close signs its own).
    pub fn signing_key(&self) -> Arc<HubKey> {
        Arc::clone(&self.key)
    }

    pub fn hub_key(&self) -> String {
        self.key.public_hex()
    }

    pub fn blob_store(&self) -> &BlobStore {
        &self.blobs
    }

    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// The reconciliation of every district (or one).
    pub async fn reconcile(&self, district: Option<String>) -> Result<Reconciliation, StoreError> {
        let stale_after = self.config.stale_after;
        self.db
            .run(move |conn| reconcile::reconcile(conn, stale_after, district.as_deref()))
            .await
    }

    /// Writes an audit checkpoint if the last one is older than `max_age`
    /// and the chain head has moved since (see [`crate::audit`]).
    pub async fn audit_checkpoint_if_due(
        &self,
        max_age: Duration,
    ) -> Result<Option<crate::audit::CheckpointOutcome>, crate::audit::AuditError> {
        let key = Arc::clone(&self.key);
        let path = crate::audit::checkpoints_path(&self.data_dir);
        self.db
            .run(move |conn| crate::audit::checkpoint_if_due(conn, &key, &path, max_age))
            .await
    }

    /// Housekeeping run periodically by `serve`: deletes partial uploads
    /// older than the configured expiry and staged manifests no offer refers
    /// to, and files the manifests of batches committed just before a crash.
    pub async fn maintain(self: &Arc<Self>) -> Result<(), ProtocolError> {
        let this = Arc::clone(self);
        let expiry = self.config.partial_expiry;
        tokio::task::spawn_blocking(move || {
            let removed = this
                .blobs
                .expire_partials(expiry, |id| {
                    this.uploads.lock().map(|u| u.contains(id)).unwrap_or(true)
                })
                .map_err(storage_error)?;
            if removed > 0 {
                tracing::info!(removed, "expired partial uploads");
            }
            let conn = this.db.get()?;
            let expired = crate::api::tus::expire(&conn, &this.data_dir)?;
            if expired > 0 {
                tracing::info!(expired, "expired unfinished live uploads");
            }
            drop(conn);
            this.tidy_offers(expiry)
        })
        .await
        .map_err(|err| error(ErrorCode::Internal, err.to_string()))?
    }

    fn tidy_offers(&self, expiry: Duration) -> Result<(), ProtocolError> {
        let dir = self.data_dir.join(hub::OFFERS_DIR);
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(());
        };
        let conn = self.db.get()?;
        for entry in entries.flatten() {
            let path = entry.path();
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age >= expiry);
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".tmp") {
                // An interrupted staging write.
                if old {
                    let _ = fs::remove_file(&path);
                }
                continue;
            }
            let Some(hash) = name.strip_suffix(".json") else {
                continue;
            };
            if archive::offer(&conn, hash)?.is_some() {
                continue;
            }
            let committed: bool = conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM batches WHERE manifest_hash = ?1)",
                    [hash],
                    |row| row.get(0),
                )
                .map_err(StoreError::from)?;
            if committed {
                self.file_manifest(hash);
            } else if old {
                let _ = fs::remove_file(&path);
            }
        }
        Ok(())
    }

    fn staged_path(&self, manifest_hash: &str) -> String {
        format!("{}/{manifest_hash}.json", hub::OFFERS_DIR)
    }

    /// Moves an archived batch's staged manifest to `manifests/`.
    fn file_manifest(&self, manifest_hash: &str) {
        let from = self.data_dir.join(self.staged_path(manifest_hash));
        let to_dir = self.data_dir.join(hub::MANIFESTS_DIR);
        let to = to_dir.join(format!("{manifest_hash}.json"));
        match fs::rename(&from, &to) {
            Ok(()) => {
                let _ = crate::blobs::sync_dir(&to_dir);
            }
            Err(err) => {
                tracing::warn!(%err, from = %from.display(), "cannot file an archived manifest")
            }
        }
    }

    /// Stores `file`, whose bytes hash to `blob`, as that blob, durably,
    /// unless the archive holds it already: for page images that arrive
    /// other than over the sync protocol (street offices' live uploads).
    /// The file is linked (or copied) into place, so the caller still owns
    /// it. Returns once the blob counts (its index row is written).
    pub async fn store_blob_from(
        &self,
        file: &Path,
        blob: BlobId,
        size: u64,
    ) -> Result<(), ProtocolError> {
        let hex = blob.to_hex();
        let known = self
            .db
            .run(move |conn| {
                conn.query_row("SELECT 1 FROM blobs WHERE id = ?1", [hex], |_| Ok(()))
                    .optional()
                    .map_err(StoreError::from)
            })
            .await?
            .is_some();
        if known {
            return Ok(());
        }
        if self.landing.pending(&blob).is_none() {
            let Some(_slot) = self.claim_upload(blob) else {
                return Err(error(
                    ErrorCode::BlobBusy,
                    "the same image is being received right now; retry in a moment",
                ));
            };
            let partial = self.blobs.partial_path(&blob);
            let source = file.to_owned();
            let target = partial.clone();
            tokio::task::spawn_blocking(move || {
                let _ = fs::remove_file(&target);
                if fs::hard_link(&source, &target).is_err() {
                    fs::copy(&source, &target)?;
                }
                Ok::<_, std::io::Error>(())
            })
            .await
            .map_err(|err| error(ErrorCode::Internal, err.to_string()))?
            .map_err(|source| {
                storage_error(BlobError::Io {
                    action: "link a live page into",
                    path: partial,
                    source,
                })
            })?;
            let unsynced = self.blobs.publish(&blob).await.map_err(storage_error)?;
            self.landing.land(blob, size, unsynced);
        }
        self.landing.settle(SETTLE_TIMEOUT).await.map_err(|err| {
            tracing::warn!(%err, "a live page's blob is not durable in time");
            error(
                ErrorCode::StorageUnavailable,
                "the hub's blob storage is slow to sync; retry later",
            )
        })
    }

    fn claim_upload(&self, blob: BlobId) -> Option<UploadSlot<'_>> {
        let claimed = self.uploads.lock().ok()?.insert(blob);
        // Built only once the lock is released: a slot's drop takes it.
        claimed.then(|| UploadSlot {
            uploads: &self.uploads,
            blob,
        })
    }

    async fn missing_page(
        &self,
        manifest_hash: String,
        batch: String,
        after: Option<BlobId>,
        limit: u32,
    ) -> Result<OfferResponse, ProtocolError> {
        let limit = limit.clamp(1, self.config.limits.missing_page);
        let hash = manifest_hash.clone();
        let page = self
            .db
            .run(move |conn| archive::missing(conn, &hash, after.as_ref(), limit))
            .await?;
        let mut missing = Vec::with_capacity(page.blobs.len());
        let mut landed = 0;
        for (blob, size) in page.blobs {
            if self.landing.pending(&blob).is_some() {
                // Received and verified, on its way to disk: not missing.
                landed += 1;
                continue;
            }
            let offset = self.blobs.partial_len(&blob).map_err(storage_error)?;
            missing.push(MissingBlob {
                blob,
                size,
                offset: offset.min(size),
            });
        }
        let next = if page.more {
            missing.last().map(|m| m.blob)
        } else {
            None
        };
        Ok(OfferResponse {
            manifest_hash,
            batch,
            committed: false,
            missing,
            next,
            missing_total: page.total.saturating_sub(landed),
        })
    }

    fn complete(size: u64) -> BlobStatus {
        BlobStatus {
            offset: size,
            length: Some(size),
            complete: true,
        }
    }

    /// Verifies a complete partial (`hashed`: its hash, if the upload
    /// computed it while writing; else it is read again) and moves it into
    /// the archive.
    async fn finish_blob(
        &self,
        blob: BlobId,
        length: u64,
        hashed: Option<BlobId>,
    ) -> Result<BlobStatus, ProtocolError> {
        let matches = match hashed {
            Some(hash) => hash == blob,
            None => self
                .blobs
                .partial_matches(&blob)
                .await
                .map_err(storage_error)?,
        };
        if !matches {
            self.blobs.remove_partial(&blob).map_err(storage_error)?;
            tracing::warn!(blob = %blob.short(), "uploaded bytes do not hash to the blob id; discarded");
            return Err(error(
                ErrorCode::BlobHashMismatch,
                format!(
                    "the uploaded bytes do not hash to {blob}; send the blob again from offset 0"
                ),
            ));
        }
        let unsynced = self.blobs.publish(&blob).await.map_err(storage_error)?;
        Ok(self.land(blob, length, unsynced))
    }

    /// What the hub knows of a blob the node asks about: complete (stored,
    /// or landed and waiting for its sync), or part of one of its
    /// district's open offers; anything else is not found.
    async fn known_blob(
        &self,
        node: &NodeIdentity,
        blob: BlobId,
    ) -> Result<KnownBlob, ProtocolError> {
        let district = node.district.clone();
        let (present, offered) = self
            .db
            .run(move |conn| {
                Ok::<_, StoreError>((
                    archive::blob_size(conn, &blob)?,
                    archive::offered_size(conn, &district, &blob)?,
                ))
            })
            .await?;
        if let Some(size) = present.or_else(|| self.landing.pending(&blob)) {
            return Ok(KnownBlob::Complete(size));
        }
        offered.map(KnownBlob::Offered).ok_or_else(|| {
            error(
                ErrorCode::NotFound,
                format!(
                    "blob {blob} is not part of an open offer of district {}",
                    node.district
                ),
            )
        })
    }

    /// Hands a published blob to the sync thread. Complete for the edge
    /// now; it counts once the sync thread has made it durable and recorded
    /// it (a commit waits for that).
    fn land(&self, blob: BlobId, length: u64, unsynced: Option<PathBuf>) -> BlobStatus {
        self.landing.land(blob, length, unsynced);
        tracing::debug!(blob = %blob.short(), bytes = length, "blob landed");
        Self::complete(length)
    }
}

impl Backend for HubBackend {
    async fn authenticate(&self, token: &str) -> Result<NodeIdentity, ProtocolError> {
        let token = token.to_owned();
        let found = self
            .db
            .run(move |conn| {
                let Some(credential) = nodes::credential(conn, &token)? else {
                    return Ok(None);
                };
                let recent = credential
                    .last_contact
                    .as_deref()
                    .is_some_and(|at| *at >= *store::time_ago(CONTACT_RESOLUTION));
                if !credential.revoked
                    && !recent
                    && let Err(err) = nodes::touch(conn, &credential.node_id)
                {
                    // Losing a contact time must not refuse the request.
                    tracing::warn!(%err, node = %credential.node_id, "cannot record contact");
                }
                Ok::<_, ProtocolError>(Some(credential))
            })
            .await?;
        match found {
            None => Err(error(ErrorCode::Unauthorized, "unknown credential")),
            Some(c) if c.revoked => Err(error(
                ErrorCode::Unauthorized,
                format!("the credential of node {} was revoked", c.node_id),
            )),
            Some(c) => Ok(NodeIdentity {
                node_id: c.node_id,
                district: c.district,
            }),
        }
    }

    async fn enrol(&self, request: EnrolRequest) -> Result<EnrolResponse, ProtocolError> {
        let district: OrgCode =
            request
                .district
                .parse()
                .map_err(|err: dangan_shared::ParseOrgCodeError| {
                    error(ErrorCode::Malformed, err.to_string())
                })?;
        let code = request.code;
        let district_code = district.to_string();
        let enrolled = self
            .db
            .run(move |conn| nodes::enrol(conn, &code, &district_code))
            .await;
        let (node_id, token) = match enrolled {
            Ok(done) => done,
            Err(EnrolError::Store(err)) => return Err(err.into()),
            Err(err @ EnrolError::WrongDistrict { .. }) => {
                return Err(error(ErrorCode::Forbidden, err.to_string()));
            }
            Err(err) => return Err(error(ErrorCode::Unauthorized, err.to_string())),
        };
        tracing::info!(node = %node_id, %district, "node enrolled");
        Ok(EnrolResponse {
            node_id,
            token,
            district: district.to_string(),
            hub_id: self.hub_id.clone(),
            hub_key: self.key.public_hex(),
        })
    }

    async fn report_queue(
        &self,
        node: &NodeIdentity,
        report: QueueReport,
    ) -> Result<(), ProtocolError> {
        let node = node.clone();
        self.db
            .run(move |conn| {
                archive::record_report(conn, &node.district, &node.node_id, &report)?;
                nodes::touch(conn, &node.node_id)
            })
            .await?;
        Ok(())
    }

    async fn offer(
        &self,
        node: &NodeIdentity,
        manifest: Manifest,
        manifest_hash: String,
        limit: u32,
    ) -> Result<OfferResponse, ProtocolError> {
        if manifest.district != node.district {
            return Err(error(
                ErrorCode::Forbidden,
                format!(
                    "node {} writes for district {}, not {}",
                    node.node_id, node.district, manifest.district
                ),
            ));
        }
        dangan_sync::validate_manifest(&manifest)
            .map_err(|err| error(ErrorCode::InvalidManifest, err))?;
        let batch = manifest.batch.clone();
        let (district, name) = (node.district.clone(), batch.clone());
        let done = self
            .db
            .run(move |conn| archive::committed(conn, &district, &name))
            .await?;
        if let Some(done) = done {
            if done.manifest_hash == manifest_hash {
                return Ok(OfferResponse {
                    manifest_hash,
                    batch,
                    committed: true,
                    missing: Vec::new(),
                    next: None,
                    missing_total: 0,
                });
            }
            return Err(error(
                ErrorCode::BatchConflict,
                format!(
                    "batch {batch:?} is already archived with manifest {} (divergent); \
                     rename the batch at the edge to archive this version",
                    done.manifest_hash
                ),
            ));
        }
        let offer = Offer {
            manifest_hash: manifest_hash.clone(),
            district: node.district.clone(),
            batch: batch.clone(),
            node_id: node.node_id.clone(),
            path: self.staged_path(&manifest_hash),
            pages: 0,
            blobs: 0,
            bytes: 0,
        };
        let staged = self.data_dir.join(&offer.path);
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            let known = archive::offer(&*db.get()?, &offer.manifest_hash)?;
            if let Some(known) = &known
                && known.district != offer.district
            {
                // A manifest names its district, so this cannot happen
                // unless the hash collides; refuse rather than mix districts.
                return Err(error(ErrorCode::Forbidden, "offer of another district"));
            }
            if known.is_none() {
                let bytes = dangan_sync::jcs::to_canonical(&manifest)
                    .map_err(|err| error(ErrorCode::InvalidManifest, err.to_string()))?;
                let hash = blake3::hash(&bytes).to_hex();
                if hash.as_str() != offer.manifest_hash {
                    return Err(error(
                        ErrorCode::InvalidManifest,
                        format!(
                            "the manifest's canonical encoding hashes to {hash}, not {}",
                            offer.manifest_hash
                        ),
                    ));
                }
                write_durably(&staged, &bytes).map_err(storage_error)?;
            }
            let mut conn = db.get()?;
            archive::record_offer(&mut conn, &offer, &manifest)?;
            Ok(())
        })
        .await
        .map_err(|err| error(ErrorCode::Internal, err.to_string()))??;
        tracing::info!(hash = %&manifest_hash[..manifest_hash.len().min(12)], "offer staged");
        self.missing_page(manifest_hash, batch, None, limit).await
    }

    async fn missing(
        &self,
        node: &NodeIdentity,
        manifest_hash: &str,
        after: Option<BlobId>,
        limit: u32,
    ) -> Result<OfferResponse, ProtocolError> {
        let (hash, district) = (manifest_hash.to_owned(), node.district.clone());
        let (offer, committed_batch) = self
            .db
            .run(move |conn| {
                let offer = archive::offer(conn, &hash)?;
                let committed: Option<String> = conn
                    .query_row(
                        "SELECT batch FROM batches WHERE manifest_hash = ?1 AND district = ?2",
                        rusqlite::params![hash, district],
                        |row| row.get(0),
                    )
                    .ok();
                Ok::<_, ProtocolError>((offer, committed))
            })
            .await?;
        if let Some(batch) = committed_batch {
            return Ok(OfferResponse {
                manifest_hash: manifest_hash.to_owned(),
                batch,
                committed: true,
                missing: Vec::new(),
                next: None,
                missing_total: 0,
            });
        }
        match offer {
            None => Err(error(
                ErrorCode::NotFound,
                format!("no open offer {manifest_hash}; offer the manifest again"),
            )),
            Some(offer) if offer.district != node.district => Err(error(
                ErrorCode::Forbidden,
                "the offer belongs to another district",
            )),
            Some(offer) => {
                self.missing_page(offer.manifest_hash, offer.batch, after, limit)
                    .await
            }
        }
    }

    async fn blob_status(
        &self,
        node: &NodeIdentity,
        blob: BlobId,
    ) -> Result<BlobStatus, ProtocolError> {
        let size = match self.known_blob(node, blob).await? {
            KnownBlob::Complete(size) => return Ok(Self::complete(size)),
            KnownBlob::Offered(size) => size,
        };
        let held = self.blobs.partial_len(&blob).map_err(storage_error)?;
        Ok(BlobStatus {
            offset: held.min(size),
            length: Some(size),
            complete: false,
        })
    }

    async fn blob_write(
        &self,
        node: &NodeIdentity,
        blob: BlobId,
        offset: u64,
        length: u64,
        body: &mut BlobBody<'_>,
    ) -> Result<BlobStatus, ProtocolError> {
        // Claimed before the lookup, so that no upload of the same blob
        // can finish between the lookup and the write.
        let slot = self.claim_upload(blob);
        let size = match self.known_blob(node, blob).await? {
            KnownBlob::Complete(size) => return Ok(Self::complete(size)),
            KnownBlob::Offered(size) => size,
        };
        if size != length {
            return Err(error(
                ErrorCode::Malformed,
                format!("blob {blob} is offered with {size} bytes, not {length}"),
            ));
        }
        let Some(_slot) = slot else {
            return Err(error(
                ErrorCode::BlobBusy,
                format!("blob {blob} is being uploaded by another request; retry later"),
            ));
        };
        let mut held = self.blobs.partial_len(&blob).map_err(storage_error)?;
        if held > length {
            // Cannot be a prefix of the blob: start over.
            self.blobs.remove_partial(&blob).map_err(storage_error)?;
            held = 0;
        }
        if offset != held {
            return Err(ProtocolError {
                code: ErrorCode::OffsetMismatch,
                message: format!("the hub holds {held} bytes of blob {blob}, not {offset}"),
                offset: Some(held),
            });
        }
        let (reached, hashed) = if held < length || length == 0 {
            match self
                .blobs
                .append(&blob, held, length - held, body)
                .await
                .map_err(storage_error)?
            {
                Appended::Published { path } => return Ok(self.land(blob, length, Some(path))),
                Appended::Stopped { offset, hash } => (offset, Some(hash)),
                Appended::BodyFailed { offset } => {
                    return Err(ProtocolError {
                        code: ErrorCode::Malformed,
                        message: format!(
                            "the request body failed after byte {offset} of blob {blob}; \
                             resume from there"
                        ),
                        offset: Some(offset),
                    });
                }
                Appended::TooLong { offset } => {
                    return Err(ProtocolError {
                        code: ErrorCode::Malformed,
                        message: format!(
                            "the body runs past the end of blob {blob} ({length} bytes)"
                        ),
                        offset: Some(offset),
                    });
                }
            }
        } else {
            (held, None)
        };
        if reached < length {
            return Ok(BlobStatus {
                offset: reached,
                length: Some(length),
                complete: false,
            });
        }
        self.finish_blob(blob, length, hashed).await
    }

    #[tracing::instrument(skip_all, fields(node = %node.node_id, batch = %request.batch))]
    async fn commit(
        &self,
        node: &NodeIdentity,
        request: CommitRequest,
    ) -> Result<Receipt, ProtocolError> {
        let (district, batch, hash) = (
            node.district.clone(),
            request.batch.clone(),
            request.manifest_hash.clone(),
        );
        let (done, offer) = self
            .db
            .run(move |conn| {
                Ok::<_, StoreError>((
                    archive::committed(conn, &district, &batch)?,
                    archive::offer(conn, &hash)?,
                ))
            })
            .await?;
        if let Some(done) = done {
            if done.manifest_hash != request.manifest_hash {
                return Err(error(
                    ErrorCode::BatchConflict,
                    format!(
                        "batch {:?} is already archived with manifest {} (divergent)",
                        request.batch, done.manifest_hash
                    ),
                ));
            }
            let stored: Receipt = serde_json::from_str(&done.receipt).map_err(|err| {
                tracing::error!(%err, "stored receipt unreadable");
                error(ErrorCode::Internal, "internal error")
            })?;
            // The same body, signed with the key the hub holds now: Ed25519
            // is deterministic, so this is the stored receipt unless the key
            // was replaced, and then the edge gets one it can verify.
            return dangan_sync::sign_receipt(&self.key, stored.body).map_err(|err| {
                tracing::error!(%err, "stored receipt body cannot be encoded");
                error(ErrorCode::Internal, "internal error")
            });
        }
        let offer = match offer {
            None => {
                return Err(error(
                    ErrorCode::NotFound,
                    format!(
                        "no open offer {}; offer the manifest first",
                        request.manifest_hash
                    ),
                ));
            }
            Some(offer) if offer.district != node.district => {
                return Err(error(
                    ErrorCode::Forbidden,
                    format!(
                        "node {} may only commit batches of district {}",
                        node.node_id, node.district
                    ),
                ));
            }
            Some(offer) if offer.batch != request.batch => {
                return Err(error(
                    ErrorCode::Malformed,
                    format!(
                        "manifest {} is of batch {:?}, not {:?}",
                        offer.manifest_hash, offer.batch, request.batch
                    ),
                ));
            }
            Some(mut offer) => {
                // The receipt names the node that commits.
                offer.node_id = node.node_id.clone();
                offer
            }
        };
        // Every blob received so far counts only once it is durable.
        self.landing.settle(SETTLE_TIMEOUT).await.map_err(|err| {
            tracing::warn!(%err, "blobs not durable in time for a commit");
            error(
                ErrorCode::StorageUnavailable,
                "the hub's blob storage is slow to sync; retry later",
            )
        })?;
        let staged = self.data_dir.join(&offer.path);
        let db = Arc::clone(&self.db);
        let key = Arc::clone(&self.key);
        let hub_id = self.hub_id.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let bytes = fs::read(&staged).map_err(|err| {
                tracing::error!(%err, path = %staged.display(), "staged manifest unreadable");
                error(
                    ErrorCode::StorageUnavailable,
                    "the staged manifest is unreadable; offer it again",
                )
            })?;
            let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|err| {
                tracing::error!(%err, path = %staged.display(), "staged manifest unparsable");
                error(ErrorCode::Internal, "internal error")
            })?;
            drop(bytes);
            let mut conn = db.get()?;
            // A receipt goes out only once the batch is on disk.
            conn.pragma_update(None, "synchronous", "FULL")
                .map_err(StoreError::from)?;
            archive::commit(&mut conn, &offer, &manifest, &hub_id, |body| {
                dangan_sync::sign_receipt(&key, body)
                    .map_err(|err| StoreError::Corrupt(format!("receipt encoding: {err}")))
            })
            .map_err(|err| match err {
                CommitError::Conflict { .. } => error(ErrorCode::BatchConflict, err.to_string()),
                CommitError::MissingBlobs(_) => error(ErrorCode::MissingBlobs, err.to_string()),
                CommitError::NoOffer(_) => error(ErrorCode::NotFound, err.to_string()),
                CommitError::Inconsistent(_) => error(ErrorCode::InvalidManifest, err.to_string()),
                CommitError::Store(err) => err.into(),
            })
        })
        .await
        .map_err(|err| error(ErrorCode::Internal, err.to_string()))??;
        if outcome.archived_now {
            tracing::info!(pages = outcome.receipt.body.pages, "batch archived");
            let own = self.staged_path(&request.manifest_hash);
            for path in &outcome.settled_paths {
                if *path == own {
                    self.file_manifest(&request.manifest_hash);
                } else {
                    let _ = fs::remove_file(self.data_dir.join(path));
                }
            }
        }
        Ok(outcome.receipt)
    }

    async fn list_batches(
        &self,
        node: &NodeIdentity,
        after: Option<String>,
        limit: u32,
    ) -> Result<BatchListing, ProtocolError> {
        let district = node.district.clone();
        let limit = limit.clamp(1, 10_000);
        Ok(self
            .db
            .run(move |conn| archive::list_batches(conn, &district, after.as_deref(), limit))
            .await?)
    }

    async fn dictionary_feed(
        &self,
        node: &NodeIdentity,
        after: u64,
        limit: u32,
    ) -> Result<DictionaryFeed, ProtocolError> {
        let feed = self
            .db
            .run(move |conn| crate::dictionaries::feed(conn, after, limit))
            .await?;
        if !feed.entries.is_empty() {
            tracing::info!(
                node = %node.node_id,
                after,
                entries = feed.entries.len(),
                "dictionary feed read"
            );
        }
        Ok(feed)
    }

    async fn warehouse_cursor(
        &self,
        node: &NodeIdentity,
        feed: &str,
    ) -> Result<WarehouseCursor, ProtocolError> {
        let (district, id) = (node.district.clone(), feed.to_owned());
        let cursor = self
            .db
            .run(move |conn| warehouse::cursor(conn, &district, &id))
            .await?;
        Ok(WarehouseCursor {
            feed: feed.to_owned(),
            cursor,
        })
    }

    async fn warehouse_events(
        &self,
        node: &NodeIdentity,
        events: WarehouseEvents,
    ) -> Result<WarehouseCursor, ProtocolError> {
        // The events are the node's district's, whatever they name.
        let district = node.district.clone();
        let feed = events.feed.clone();
        let sent = events.events.len();
        let applied = self
            .db
            .run(move |conn| warehouse::apply(conn, &district, &events))
            .await
            .map_err(|err| match err {
                ApplyError::Gap {
                    feed,
                    cursor,
                    first,
                } => ProtocolError::feed_gap(&feed, cursor, first),
                ApplyError::Store(err) => err.into(),
            })?;
        if applied.new_events > 0 {
            tracing::info!(
                node = %node.node_id,
                feed = %feed,
                sent,
                new = applied.new_events,
                cursor = applied.cursor,
                "warehouse events applied"
            );
        }
        Ok(WarehouseCursor {
            feed,
            cursor: applied.cursor,
        })
    }

    async fn loan_request_feed(
        &self,
        node: &NodeIdentity,
        after: u64,
        limit: u32,
    ) -> Result<LoanRequestFeed, ProtocolError> {
        let district = node.district.clone();
        Ok(self
            .db
            .run(move |conn| warehouse::loan_request_feed(conn, &district, after, limit))
            .await?)
    }
}

/// Writes a file whole and durably: temporary file, fsync, rename, fsync
/// the folder.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), BlobError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    // Unique per write: two offers of one manifest may stage at once.
    let temp = path.with_extension(format!(
        "{}-{}.tmp",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let io = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| BlobError::Io {
            action,
            path,
            source,
        }
    };
    let mut file = fs::File::create(&temp).map_err(io("create", &temp))?;
    file.write_all(bytes).map_err(io("write", &temp))?;
    file.sync_all().map_err(io("sync", &temp))?;
    drop(file);
    fs::rename(&temp, path).map_err(io("rename into", path))?;
    crate::blobs::sync_dir(dir)
}
