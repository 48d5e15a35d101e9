//! The real router on a real socket, driven by the real client, over an
//! in-memory test double of the hub's storage.
// Test helpers outside `#[test]` functions may panic too.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use dangan_shared::BlobId;
use dangan_sync::client::{Client, ClientError, ClientOptions, file_body};
use dangan_sync::server::{Backend, BlobBody, Limits, NodeIdentity, ProtocolError, router};
use dangan_sync::wire::{
    BatchListing, BlobStatus, CommitRequest, DictionaryFeed, EdgeBatchState, EnrolRequest,
    EnrolResponse, ErrorBody, ErrorCode, FeedEntry, FeedItem, ListedBatch, LoanRequest,
    LoanRequestFeed, MANIFEST_FORMAT, Manifest, ManifestBarcode, ManifestFile, ManifestPage,
    MissingBlob, OfferResponse, QueueReport, QueuedBatch, RECEIPT_FORMAT, Receipt, ReceiptBody,
    ReconcileState, WarehouseChange, WarehouseCursor, WarehouseEvent, WarehouseEvents,
};
use dangan_sync::{
    HubKey, ProtocolVersion, manifest_hash, random_token, sign_receipt, token_hash, verify_receipt,
};
use futures_util::{StreamExt, stream};

const DISTRICT: &str = "310104";

// ---------------------------------------------------------------- backend

/// The hub's storage as a test double: everything in memory, one lock.
struct MemoryBackend {
    key: HubKey,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// One-time enrolment codes and their districts.
    codes: HashMap<String, String>,
    /// Token hashes and their nodes.
    nodes: HashMap<String, NodeIdentity>,
    queue: HashMap<String, Vec<QueuedBatch>>,
    offers: HashMap<String, Manifest>,
    blobs: HashMap<BlobId, Vec<u8>>,
    partials: HashMap<BlobId, Vec<u8>>,
    busy: HashSet<BlobId>,
    receipts: HashMap<String, Receipt>,
    /// (district, batch) → committed manifest hash and time.
    archived: BTreeMap<(String, String), (String, String)>,
    /// Published dictionary and template versions, in `seq` order.
    feed: Vec<FeedEntry>,
    /// (district, feed) → the warehouse events applied, in `seq` order.
    warehouse: HashMap<(String, String), Vec<WarehouseEvent>>,
    /// Hub reviewers' loan requests and their districts, in `seq` order.
    loan_requests: Vec<(String, LoanRequest)>,
}

/// Releases a blob's upload slot however the write ends, a dropped future included.
struct BusyGuard<'a> {
    backend: &'a MemoryBackend,
    blob: BlobId,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.backend.lock().busy.remove(&self.blob);
    }
}

impl MemoryBackend {
    fn new() -> Self {
        Self {
            key: HubKey::generate().unwrap(),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    fn add_code(&self, code: &str, district: &str) {
        self.lock()
            .codes
            .insert(code.to_owned(), district.to_owned());
    }

    fn partial_len(&self, blob: BlobId) -> usize {
        self.lock().partials.get(&blob).map_or(0, Vec::len)
    }

    fn offered_size(state: &State, blob: BlobId) -> Option<u64> {
        state.offers.values().find_map(|manifest| {
            manifest
                .business_files
                .iter()
                .flat_map(|file| &file.pages)
                .find(|page| page.blob == blob)
                .map(|page| page.size)
        })
    }

    fn missing_page(
        state: &State,
        hash: &str,
        after: Option<BlobId>,
        limit: u32,
    ) -> Result<OfferResponse, ProtocolError> {
        let manifest = state
            .offers
            .get(hash)
            .ok_or_else(|| ProtocolError::not_found(format!("no offer {hash}")))?;
        let mut sizes = BTreeMap::new();
        for page in manifest.business_files.iter().flat_map(|file| &file.pages) {
            sizes.insert(page.blob, page.size);
        }
        let missing: Vec<MissingBlob> = sizes
            .into_iter()
            .filter(|(blob, _)| !state.blobs.contains_key(blob))
            .map(|(blob, size)| MissingBlob {
                blob,
                size,
                offset: state
                    .partials
                    .get(&blob)
                    .map_or(0, |bytes| bytes.len() as u64),
            })
            .collect();
        let total = missing.len() as u64;
        let page: Vec<MissingBlob> = missing
            .into_iter()
            .filter(|missing| after.is_none_or(|after| missing.blob > after))
            .take(limit as usize + 1)
            .collect();
        let (page, next) = if page.len() > limit as usize {
            let page = page[..limit as usize].to_vec();
            let next = page.last().map(|missing| missing.blob);
            (page, next)
        } else {
            (page, None)
        };
        Ok(OfferResponse {
            manifest_hash: hash.to_owned(),
            batch: manifest.batch.clone(),
            committed: state.receipts.contains_key(hash),
            missing: page,
            next,
            missing_total: total,
        })
    }
}

impl Backend for MemoryBackend {
    async fn authenticate(&self, token: &str) -> Result<NodeIdentity, ProtocolError> {
        self.lock()
            .nodes
            .get(&token_hash(token))
            .cloned()
            .ok_or_else(|| ProtocolError::unauthorized("unknown credential"))
    }

    async fn enrol(&self, request: EnrolRequest) -> Result<EnrolResponse, ProtocolError> {
        let mut state = self.lock();
        let district = state
            .codes
            .get(&request.code)
            .cloned()
            .ok_or_else(|| ProtocolError::unauthorized("unknown enrolment code"))?;
        if district != request.district {
            return Err(ProtocolError::forbidden("the code is for another district"));
        }
        state.codes.remove(&request.code);
        let token = random_token("dn_").unwrap();
        let node_id = format!("node-{}", state.nodes.len() + 1);
        let node = NodeIdentity {
            node_id: node_id.clone(),
            district: district.clone(),
        };
        state.nodes.insert(token_hash(&token), node);
        Ok(EnrolResponse {
            node_id,
            token,
            district,
            hub_id: "test-hub".to_owned(),
            hub_key: self.key.public_hex(),
        })
    }

    async fn report_queue(
        &self,
        node: &NodeIdentity,
        report: QueueReport,
    ) -> Result<(), ProtocolError> {
        self.lock()
            .queue
            .insert(node.node_id.clone(), report.batches);
        Ok(())
    }

    async fn offer(
        &self,
        _node: &NodeIdentity,
        manifest: Manifest,
        manifest_hash: String,
        limit: u32,
    ) -> Result<OfferResponse, ProtocolError> {
        let mut state = self.lock();
        state.offers.insert(manifest_hash.clone(), manifest);
        Self::missing_page(&state, &manifest_hash, None, limit)
    }

    async fn missing(
        &self,
        _node: &NodeIdentity,
        manifest_hash: &str,
        after: Option<BlobId>,
        limit: u32,
    ) -> Result<OfferResponse, ProtocolError> {
        Self::missing_page(&self.lock(), manifest_hash, after, limit)
    }

    async fn blob_status(
        &self,
        _node: &NodeIdentity,
        blob: BlobId,
    ) -> Result<BlobStatus, ProtocolError> {
        let state = self.lock();
        if let Some(bytes) = state.blobs.get(&blob) {
            let length = bytes.len() as u64;
            return Ok(BlobStatus {
                offset: length,
                length: Some(length),
                complete: true,
            });
        }
        let size = Self::offered_size(&state, blob)
            .ok_or_else(|| ProtocolError::not_found("no offer names this blob"))?;
        Ok(BlobStatus {
            offset: state
                .partials
                .get(&blob)
                .map_or(0, |bytes| bytes.len() as u64),
            length: Some(size),
            complete: false,
        })
    }

    async fn blob_write(
        &self,
        _node: &NodeIdentity,
        blob: BlobId,
        offset: u64,
        length: u64,
        body: &mut BlobBody<'_>,
    ) -> Result<BlobStatus, ProtocolError> {
        {
            let mut state = self.lock();
            if let Some(bytes) = state.blobs.get(&blob) {
                let length = bytes.len() as u64;
                return Ok(BlobStatus {
                    offset: length,
                    length: Some(length),
                    complete: true,
                });
            }
            if Self::offered_size(&state, blob) != Some(length) {
                return Err(ProtocolError::not_found(
                    "no offer names this blob at this length",
                ));
            }
            if !state.busy.insert(blob) {
                return Err(ProtocolError::new(
                    ErrorCode::BlobBusy,
                    "another upload is running",
                ));
            }
        }
        let _guard = BusyGuard {
            backend: self,
            blob,
        };
        let held = self.partial_len(blob) as u64;
        if held != offset {
            return Err(ProtocolError::offset_mismatch(held));
        }
        // A cut body keeps what arrived.
        while let Ok(Some(chunk)) = body.chunk().await {
            self.lock()
                .partials
                .entry(blob)
                .or_default()
                .extend_from_slice(&chunk);
        }
        let mut state = self.lock();
        let held = state.partials.get(&blob).map_or(0, Vec::len) as u64;
        if held < length {
            return Ok(BlobStatus {
                offset: held,
                length: Some(length),
                complete: false,
            });
        }
        let bytes = state.partials.remove(&blob).unwrap_or_default();
        if BlobId::of(&bytes) != blob {
            return Err(ProtocolError::new(
                ErrorCode::BlobHashMismatch,
                "the bytes do not hash to the blob id",
            ));
        }
        state.blobs.insert(blob, bytes);
        Ok(BlobStatus {
            offset: length,
            length: Some(length),
            complete: true,
        })
    }

    async fn commit(
        &self,
        node: &NodeIdentity,
        request: CommitRequest,
    ) -> Result<Receipt, ProtocolError> {
        let mut state = self.lock();
        if let Some(receipt) = state.receipts.get(&request.manifest_hash) {
            return Ok(receipt.clone());
        }
        let manifest = state
            .offers
            .get(&request.manifest_hash)
            .cloned()
            .ok_or_else(|| ProtocolError::not_found("no such offer"))?;
        if manifest.batch != request.batch {
            return Err(ProtocolError::malformed("the offer is of another batch"));
        }
        let mut distinct = HashSet::new();
        for page in manifest.business_files.iter().flat_map(|file| &file.pages) {
            if !state.blobs.contains_key(&page.blob) {
                return Err(ProtocolError::new(
                    ErrorCode::MissingBlobs,
                    format!("blob {} is missing", page.blob),
                ));
            }
            distinct.insert(page.blob);
        }
        let key = (node.district.clone(), manifest.batch.clone());
        if let Some((hash, _)) = state.archived.get(&key)
            && *hash != request.manifest_hash
        {
            return Err(ProtocolError::new(
                ErrorCode::BatchConflict,
                "archived with another manifest",
            ));
        }
        let committed_at = "2024-05-07T01:02:03Z".to_owned();
        let receipt = sign_receipt(
            &self.key,
            ReceiptBody {
                batch: manifest.batch.clone(),
                blobs: distinct.len() as u64,
                bytes: manifest.bytes,
                committed_at: committed_at.clone(),
                district: node.district.clone(),
                format: RECEIPT_FORMAT.to_owned(),
                hub_id: "test-hub".to_owned(),
                manifest_hash: request.manifest_hash.clone(),
                node_id: node.node_id.clone(),
                pages: manifest.pages,
            },
        )
        .map_err(|error| ProtocolError::internal(error.to_string()))?;
        state
            .archived
            .insert(key, (request.manifest_hash.clone(), committed_at));
        state
            .receipts
            .insert(request.manifest_hash, receipt.clone());
        Ok(receipt)
    }

    async fn dictionary_feed(
        &self,
        _node: &NodeIdentity,
        after: u64,
        limit: u32,
    ) -> Result<DictionaryFeed, ProtocolError> {
        let state = self.lock();
        let mut entries: Vec<FeedEntry> = state
            .feed
            .iter()
            .filter(|entry| entry.seq > after)
            .take(limit as usize + 1)
            .cloned()
            .collect();
        let more = entries.len() > limit as usize;
        entries.truncate(limit as usize);
        let next = entries.last().map_or(after, |entry| entry.seq);
        Ok(DictionaryFeed {
            entries,
            next,
            more,
        })
    }

    async fn warehouse_cursor(
        &self,
        node: &NodeIdentity,
        feed: &str,
    ) -> Result<WarehouseCursor, ProtocolError> {
        let state = self.lock();
        let applied = state
            .warehouse
            .get(&(node.district.clone(), feed.to_owned()))
            .map_or(0, Vec::len);
        Ok(WarehouseCursor {
            feed: feed.to_owned(),
            cursor: applied as u64,
        })
    }

    async fn warehouse_events(
        &self,
        node: &NodeIdentity,
        events: WarehouseEvents,
    ) -> Result<WarehouseCursor, ProtocolError> {
        let mut state = self.lock();
        let applied = state
            .warehouse
            .entry((node.district.clone(), events.feed.clone()))
            .or_default();
        let cursor = applied.len() as u64;
        let fresh: Vec<WarehouseEvent> = events
            .events
            .into_iter()
            .filter(|event| event.seq > cursor)
            .collect();
        if let Some(first) = fresh.first()
            && first.seq != cursor + 1
        {
            return Err(ProtocolError::feed_gap(&events.feed, cursor, first.seq));
        }
        applied.extend(fresh);
        Ok(WarehouseCursor {
            feed: events.feed,
            cursor: applied.len() as u64,
        })
    }

    async fn loan_request_feed(
        &self,
        node: &NodeIdentity,
        after: u64,
        limit: u32,
    ) -> Result<LoanRequestFeed, ProtocolError> {
        let state = self.lock();
        let mut entries: Vec<LoanRequest> = state
            .loan_requests
            .iter()
            .filter(|(district, request)| *district == node.district && request.seq > after)
            .map(|(_, request)| request.clone())
            .take(limit as usize + 1)
            .collect();
        let more = entries.len() > limit as usize;
        entries.truncate(limit as usize);
        let next = entries.last().map_or(after, |request| request.seq);
        Ok(LoanRequestFeed {
            entries,
            next,
            more,
        })
    }

    async fn list_batches(
        &self,
        node: &NodeIdentity,
        after: Option<String>,
        limit: u32,
    ) -> Result<BatchListing, ProtocolError> {
        let state = self.lock();
        let mut batches: Vec<ListedBatch> = state
            .archived
            .iter()
            .filter(|((district, batch), _)| {
                *district == node.district && after.as_ref().is_none_or(|after| batch > after)
            })
            .map(|((_, batch), (hash, committed_at))| ListedBatch {
                batch: batch.clone(),
                state: ReconcileState::Archived,
                manifest_hash: Some(hash.clone()),
                committed_at: Some(committed_at.clone()),
            })
            .take(limit as usize + 1)
            .collect();
        let next = if batches.len() > limit as usize {
            batches.truncate(limit as usize);
            batches.last().map(|batch| batch.batch.clone())
        } else {
            None
        };
        Ok(BatchListing {
            district: node.district.clone(),
            batches,
            next,
        })
    }
}

// ---------------------------------------------------------------- harness

struct Hub {
    backend: Arc<MemoryBackend>,
    url: String,
}

async fn start_hub(limits: Limits) -> Hub {
    let backend = Arc::new(MemoryBackend::new());
    let app = router(backend.clone(), limits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Hub { backend, url }
}

fn options(token: Option<String>) -> ClientOptions {
    ClientOptions {
        token,
        request_timeout: Duration::from_secs(20),
        ..ClientOptions::default()
    }
}

/// Enrols a node of `district` and returns its client and enrolment.
async fn enrolled(hub: &Hub, district: &str) -> (Client, EnrolResponse) {
    let code = format!("code-{}", random_token("").unwrap());
    hub.backend.add_code(&code, district);
    let anonymous = Client::new(&hub.url, options(None)).unwrap();
    let enrolment = anonymous
        .enrol(&EnrolRequest {
            code,
            district: district.to_owned(),
        })
        .await
        .unwrap();
    let client = anonymous.with_token(&enrolment.token).unwrap();
    (client, enrolment)
}

/// Deterministic bytes: `compressible` ones repeat a short phrase, others
/// come from a xorshift generator.
fn content(seed: u64, size: usize, compressible: bool) -> Vec<u8> {
    if compressible {
        return b"dangan scan line "
            .iter()
            .copied()
            .cycle()
            .skip(seed as usize % 7)
            .take(size)
            .collect();
    }
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn page(seq: u32, bytes: &[u8]) -> ManifestPage {
    ManifestPage {
        barcodes: Vec::new(),
        blank: bytes.is_empty(),
        blob: BlobId::of(bytes),
        colour: "gray".to_owned(),
        dpi: Some(300),
        format: "jpeg".to_owned(),
        frame: 0,
        height: 3508,
        separator: false,
        seq,
        size: bytes.len() as u64,
        source: format!("扫描/{seq:04}.jpg"),
        width: 2480,
    }
}

/// A consistent manifest of `district` with one business file per blob,
/// one page each.
fn manifest_of(district: &str, batch: &str, blobs: &[Vec<u8>]) -> Manifest {
    let mut distinct = HashSet::new();
    let mut bytes = 0;
    let business_files = blobs
        .iter()
        .enumerate()
        .map(|(index, blob)| {
            let seq = index as u32 + 1;
            if distinct.insert(BlobId::of(blob)) {
                bytes += blob.len() as u64;
            }
            let mut page = page(seq, blob);
            page.barcodes.push(ManifestBarcode {
                format: "code128".to_owned(),
                text: format!("沪社保-{seq}"),
            });
            ManifestFile {
                business_number: Some(format!("沪社保-{seq}")),
                business_type: None,
                category: Some("records".to_owned()),
                date: Some("2024-05-06".to_owned()),
                employer_id: None,
                organisation: district.to_owned(),
                pages: vec![page],
                person_id: None,
                person_name: Some("李四".to_owned()),
                retention: Some("30y".to_owned()),
                seq,
            }
        })
        .collect();
    Manifest {
        accepted_at: "2024-05-06T07:08:09Z".to_owned(),
        batch: batch.to_owned(),
        business_files,
        business_type: None,
        bytes,
        district: district.to_owned(),
        format: MANIFEST_FORMAT.to_owned(),
        pages: blobs.len() as u64,
    }
}

fn write_blob(dir: &Path, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(BlobId::of(bytes).to_hex());
    std::fs::write(&path, bytes).unwrap();
    path
}

fn hub_error(
    result: Result<impl std::fmt::Debug, ClientError>,
) -> (u16, Option<ErrorCode>, String) {
    match result {
        Err(ClientError::Hub {
            status,
            code,
            message,
            ..
        }) => (status, code, message),
        other => panic!("expected a hub error, got {other:?}"),
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn offer_transfer_commit_round_trip() {
    let limits = Limits {
        missing_page: 2,
        ..Limits::default()
    };
    let hub = start_hub(limits).await;
    let (client, enrolment) = enrolled(&hub, DISTRICT).await;
    assert_eq!(enrolment.district, DISTRICT);

    client
        .report_queue(&QueueReport {
            batches: vec![QueuedBatch {
                batch: "B-1".to_owned(),
                state: EdgeBatchState::Queued,
                manifest_hash: None,
                pages: 6,
                bytes: 0,
                last_error: None,
            }],
        })
        .await
        .unwrap();
    assert_eq!(hub.backend.lock().queue[&enrolment.node_id].len(), 1);

    // Sizes at the edges: empty, one byte, one chunk, a chunk plus one,
    // and two compressible blobs; the last page repeats the first blob.
    let blobs = vec![
        content(1, 0, false),
        content(2, 1, false),
        content(3, 64 * 1024, false),
        content(4, 64 * 1024 + 1, false),
        content(5, 300_000, true),
        content(1, 0, false),
    ];
    let manifest = manifest_of(DISTRICT, "B-1", &blobs);
    let (canonical, hash) = manifest_hash(&manifest).unwrap();
    let first = client.offer(canonical.clone(), &hash).await.unwrap();
    assert_eq!(first.manifest_hash, hash);
    assert_eq!(first.batch, "B-1");
    assert!(!first.committed);
    assert_eq!(first.missing_total, 5);
    assert_eq!(first.missing.len(), 2);

    // Walk the pages of missing blobs.
    let mut missing = first.missing.clone();
    let mut next = first.next;
    while let Some(after) = next {
        let page = client.missing(&hash, Some(after)).await.unwrap();
        assert!(page.missing.len() <= 2);
        missing.extend(page.missing);
        next = page.next;
    }
    assert_eq!(missing.len(), 5);
    assert!(missing.windows(2).all(|pair| pair[0].blob < pair[1].blob));

    // Committing early names the missing blobs.
    let early = client
        .commit(&CommitRequest {
            batch: "B-1".to_owned(),
            manifest_hash: hash.clone(),
        })
        .await;
    assert_eq!(hub_error(early).1, Some(ErrorCode::MissingBlobs));

    let dir = tempfile::tempdir().unwrap();
    for (index, wanted) in missing.iter().enumerate() {
        let bytes = blobs
            .iter()
            .find(|bytes| BlobId::of(bytes) == wanted.blob)
            .unwrap();
        let path = write_blob(dir.path(), bytes);
        let zstd = index % 2 == 0;
        let status = client
            .upload_blob(
                wanted.blob,
                0,
                wanted.size,
                zstd,
                file_body(&path, 0, wanted.size, zstd).await.unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            status,
            BlobStatus {
                offset: wanted.size,
                length: Some(wanted.size),
                complete: true
            }
        );
        let head = client.blob_status(wanted.blob).await.unwrap().unwrap();
        assert!(head.complete);
        assert_eq!(hub.backend.lock().blobs[&wanted.blob], *bytes);
    }
    // A blob no offer names is unknown.
    assert_eq!(
        client.blob_status(BlobId::of(b"stranger")).await.unwrap(),
        None
    );

    let request = CommitRequest {
        batch: "B-1".to_owned(),
        manifest_hash: hash.clone(),
    };
    let receipt = client.commit(&request).await.unwrap();
    verify_receipt(&receipt, &enrolment.hub_key, &hash).unwrap();
    assert_eq!(receipt.body.pages, 6);
    assert_eq!(receipt.body.blobs, 5);
    assert_eq!(receipt.body.node_id, enrolment.node_id);
    // Committing again gives the same receipt.
    assert_eq!(client.commit(&request).await.unwrap(), receipt);

    // Offering again: committed, nothing missing.
    let again = client.offer(canonical, &hash).await.unwrap();
    assert!(again.committed);
    assert!(again.missing.is_empty());
    assert_eq!(again.next, None);

    let listing = client.list_batches(None).await.unwrap();
    assert_eq!(listing.district, DISTRICT);
    assert_eq!(listing.batches.len(), 1);
    assert_eq!(
        listing.batches[0].manifest_hash.as_deref(),
        Some(hash.as_str())
    );
    assert_eq!(listing.next, None);
    assert!(
        client
            .list_batches(Some("B-1"))
            .await
            .unwrap()
            .batches
            .is_empty()
    );
}

/// Offers `blobs` as batch `batch` and returns the manifest hash.
async fn offer_blobs(client: &Client, batch: &str, blobs: &[Vec<u8>]) -> String {
    let manifest = manifest_of(DISTRICT, batch, blobs);
    let (canonical, hash) = manifest_hash(&manifest).unwrap();
    client.offer(canonical, &hash).await.unwrap();
    hash
}

/// Sends a blob from `offset`, retrying while the hub still finishes an
/// earlier, cut upload of it.
async fn upload_from(
    client: &Client,
    path: &Path,
    blob: BlobId,
    offset: u64,
    length: u64,
    zstd: bool,
) -> BlobStatus {
    for _ in 0..200 {
        let body = file_body(path, offset, length, zstd).await.unwrap();
        match client.upload_blob(blob, offset, length, zstd, body).await {
            Err(error) if error.code() == Some(ErrorCode::BlobBusy) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => return other.unwrap(),
        }
    }
    panic!("the blob stayed busy");
}

#[tokio::test]
async fn resume_after_a_cut_with_and_without_zstd() {
    let hub = start_hub(Limits::default()).await;
    let (client, _) = enrolled(&hub, DISTRICT).await;
    let dir = tempfile::tempdir().unwrap();
    for (round, zstd_resume) in [true, false].into_iter().enumerate() {
        let bytes = content(20 + round as u64, 150_000, round == 0);
        let blob = BlobId::of(&bytes);
        offer_blobs(
            &client,
            &format!("B-resume-{round}"),
            std::slice::from_ref(&bytes),
        )
        .await;
        let path = write_blob(dir.path(), &bytes);
        let length = bytes.len() as u64;

        let sent = 70_000;
        let head = Bytes::copy_from_slice(&bytes[..sent]);
        let backend = hub.backend.clone();
        let body = stream::iter([Ok(head)]).chain(stream::once(async move {
            for _ in 0..2000 {
                if backend.partial_len(blob) >= sent {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "line dropped",
            ))
        }));
        let error = client
            .upload_blob(blob, 0, length, false, body)
            .await
            .unwrap_err();
        assert!(error.is_retryable(), "{error:?}");

        let status = client.blob_status(blob).await.unwrap().unwrap();
        assert_eq!(
            status,
            BlobStatus {
                offset: sent as u64,
                length: Some(length),
                complete: false
            }
        );

        // From the wrong offset: 409 with the hub's offset.
        let body = file_body(&path, 0, length, false).await.unwrap();
        match client.upload_blob(blob, 0, length, false, body).await {
            Err(ClientError::Hub {
                status: 409,
                code: Some(ErrorCode::OffsetMismatch),
                offset: Some(offset),
                ..
            }) => assert_eq!(offset, sent as u64),
            // The hub may still be finishing the cut request.
            Err(error) if error.code() == Some(ErrorCode::BlobBusy) => {}
            other => panic!("expected offset_mismatch, got {other:?}"),
        }

        let done = upload_from(&client, &path, blob, status.offset, length, zstd_resume).await;
        assert!(done.complete);
        assert_eq!(hub.backend.lock().blobs[&blob], bytes);
    }
}

#[tokio::test]
async fn a_corrupted_blob_is_rejected_and_sent_again() {
    let hub = start_hub(Limits::default()).await;
    let (client, _) = enrolled(&hub, DISTRICT).await;
    let bytes = content(9, 5_000, false);
    let blob = BlobId::of(&bytes);
    offer_blobs(&client, "B-corrupt", std::slice::from_ref(&bytes)).await;

    let mut corrupted = bytes.clone();
    corrupted[4_321] ^= 0x01;
    let body = stream::iter([Ok(Bytes::from(corrupted))]);
    let result = client
        .upload_blob(blob, 0, bytes.len() as u64, false, body)
        .await;
    let (status, code, _) = hub_error(result);
    assert_eq!((status, code), (422, Some(ErrorCode::BlobHashMismatch)));
    // The partial is gone: the edge starts again from 0.
    assert_eq!(client.blob_status(blob).await.unwrap().unwrap().offset, 0);

    let body = stream::iter([Ok(Bytes::from(bytes.clone()))]);
    let status = client
        .upload_blob(blob, 0, bytes.len() as u64, false, body)
        .await
        .unwrap();
    assert!(status.complete);
}

#[tokio::test]
async fn manifests_the_hub_refuses() {
    let limits = Limits {
        max_manifest_bytes: 4_096,
        ..Limits::default()
    };
    let hub = start_hub(limits).await;
    let (client, _) = enrolled(&hub, DISTRICT).await;
    let blobs = vec![content(1, 10, false), content(2, 20, false)];

    // Not canonical: pretty-printed, but hashed honestly.
    let manifest = manifest_of(DISTRICT, "B-pretty", &blobs);
    let pretty = serde_json::to_vec_pretty(&manifest).unwrap();
    let pretty_hash = blake3::hash(&pretty).to_hex().to_string();
    let (status, code, message) = hub_error(client.offer(pretty, &pretty_hash).await);
    assert_eq!((status, code), (422, Some(ErrorCode::InvalidManifest)));
    assert!(message.contains("canonical"), "{message}");

    // The hash header does not match the bytes.
    let (canonical, _) = manifest_hash(&manifest).unwrap();
    let (status, code, _) = hub_error(client.offer(canonical.clone(), &"0".repeat(64)).await);
    assert_eq!((status, code), (422, Some(ErrorCode::InvalidManifest)));

    // Not a hash at all.
    let (status, code, _) = hub_error(client.offer(canonical, "nope").await);
    assert_eq!((status, code), (400, Some(ErrorCode::Malformed)));

    // Inconsistent: page count off.
    let mut inconsistent = manifest.clone();
    inconsistent.pages = 3;
    let (canonical, hash) = manifest_hash(&inconsistent).unwrap();
    let (status, code, message) = hub_error(client.offer(canonical, &hash).await);
    assert_eq!((status, code), (422, Some(ErrorCode::InvalidManifest)));
    assert!(message.contains("pages"), "{message}");

    // Not a manifest.
    let junk = br#"{"batch":"x"}"#.to_vec();
    let junk_hash = blake3::hash(&junk).to_hex().to_string();
    let (status, code, message) = hub_error(client.offer(junk, &junk_hash).await);
    assert_eq!((status, code), (400, Some(ErrorCode::Malformed)));
    assert!(message.contains("missing field"), "{message}");

    // Another district's batch.
    let foreign = manifest_of("310105", "B-foreign", &blobs);
    let (canonical, hash) = manifest_hash(&foreign).unwrap();
    let (status, code, _) = hub_error(client.offer(canonical, &hash).await);
    assert_eq!((status, code), (403, Some(ErrorCode::Forbidden)));

    // Over the limit after decompression (it travels compressed).
    let many: Vec<Vec<u8>> = (0..40).map(|seed| content(seed, 8, false)).collect();
    let large = manifest_of(DISTRICT, "B-large", &many);
    let (canonical, hash) = manifest_hash(&large).unwrap();
    assert!(canonical.len() > 4_096);
    let (status, code, _) = hub_error(client.offer(canonical, &hash).await);
    assert_eq!((status, code), (413, Some(ErrorCode::TooLarge)));
}

#[tokio::test]
async fn credentials_are_checked() {
    let hub = start_hub(Limits::default()).await;
    let (_, _) = enrolled(&hub, DISTRICT).await;
    let report = QueueReport { batches: vec![] };

    let stranger = Client::new(&hub.url, options(Some("dn_bogus".to_owned()))).unwrap();
    let (status, code, _) = hub_error(stranger.report_queue(&report).await);
    assert_eq!((status, code), (401, Some(ErrorCode::Unauthorized)));
    // HEAD answers with the status alone.
    match stranger.blob_status(BlobId::of(b"x")).await {
        Err(ClientError::Hub { status: 401, .. }) => {}
        other => panic!("expected 401, got {other:?}"),
    }

    // No credential at all, over plain HTTP.
    let response = reqwest::Client::new()
        .post(format!("{}/sync/v1/queue", hub.url))
        .body("{\"batches\":[]}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: ErrorBody = response.json().await.unwrap();
    assert_eq!(body.error, ErrorCode::Unauthorized);

    // An enrolment code for another district, and one used twice.
    hub.backend.add_code("once", DISTRICT);
    let anonymous = Client::new(&hub.url, options(None)).unwrap();
    let wrong = anonymous
        .enrol(&EnrolRequest {
            code: "once".to_owned(),
            district: "310105".to_owned(),
        })
        .await;
    assert_eq!(hub_error(wrong).0, 403);
    let request = EnrolRequest {
        code: "once".to_owned(),
        district: DISTRICT.to_owned(),
    };
    anonymous.enrol(&request).await.unwrap();
    assert_eq!(hub_error(anonymous.enrol(&request).await).0, 401);
    // A client without a token cannot even ask.
    assert!(matches!(
        anonymous.report_queue(&report).await,
        Err(ClientError::Config(_))
    ));
}

#[tokio::test]
async fn the_dictionary_feed_reads_from_a_cursor() {
    let hub = start_hub(Limits::default()).await;
    let (client, enrolment) = enrolled(&hub, DISTRICT).await;
    let mut template = dangan_shared::template::parse(dangan_shared::template::SEED)
        .unwrap()
        .remove(0);
    template.name = "单位参保登记（新）".to_owned();
    let mut defects = dangan_shared::dictionary::Dictionary::builtin(
        dangan_shared::dictionary::DictionaryKind::Defects,
    );
    defects.entries[1].active = false;
    hub.backend.lock().feed = vec![
        FeedEntry {
            seq: 4,
            version: 2,
            recorded_at: "2026-11-26T10:00:00Z".to_owned(),
            item: FeedItem::Template {
                template: template.clone(),
            },
        },
        FeedEntry {
            seq: 9,
            version: 2,
            recorded_at: "2026-11-26T10:01:00Z".to_owned(),
            item: FeedItem::Dictionary {
                dictionary: defects.clone(),
            },
        },
    ];
    let feed = client.dictionary_feed(0).await.unwrap();
    assert_eq!(feed.next, 9);
    assert!(!feed.more);
    assert_eq!(feed.entries.len(), 2);
    assert_eq!(feed.entries[0].item, FeedItem::Template { template });
    assert_eq!(
        feed.entries[1].item,
        FeedItem::Dictionary {
            dictionary: defects
        }
    );
    // From the cursor on, nothing is sent again.
    let rest = client.dictionary_feed(4).await.unwrap();
    assert_eq!(rest.entries.len(), 1);
    let none = client.dictionary_feed(9).await.unwrap();
    assert!(none.entries.is_empty());
    assert_eq!(none.next, 9);

    // A node credential is required, and the cursor is a number.
    let stranger = Client::new(&hub.url, options(Some("dn_bogus".to_owned()))).unwrap();
    assert_eq!(hub_error(stranger.dictionary_feed(0).await).0, 401);
    let response = reqwest::Client::new()
        .get(format!("{}/sync/v1/feeds/dictionaries?after=last", hub.url))
        .bearer_auth(&enrolment.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: ErrorBody = response.json().await.unwrap();
    assert_eq!(body.error, ErrorCode::Malformed);
}

#[tokio::test]
async fn malformed_requests_get_json_errors() {
    let limits = Limits {
        max_json_bytes: 1_024,
        max_blob_bytes: 1 << 20,
        ..Limits::default()
    };
    let hub = start_hub(limits).await;
    let (client, enrolment) = enrolled(&hub, DISTRICT).await;
    let bytes = content(11, 1_000, false);
    let blob = BlobId::of(&bytes);
    let hash = offer_blobs(&client, "B-malformed", std::slice::from_ref(&bytes)).await;
    let http = reqwest::Client::new();
    let bearer = format!("Bearer {}", enrolment.token);
    let url = |path: &str| format!("{}/sync/v1{path}", hub.url);

    async fn error_of(response: reqwest::Response) -> (u16, ErrorBody) {
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        let error = serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("not an ErrorBody: {:?}", String::from_utf8_lossy(&body)));
        (status, error)
    }

    // Bad JSON, with and without a credential.
    for (path, auth) in [("/queue", true), ("/commit", true), ("/enrol", false)] {
        let mut request = http.post(url(path)).body("{\"batch");
        if auth {
            request = request.header("authorization", &bearer);
        }
        let (status, error) = error_of(request.send().await.unwrap()).await;
        assert_eq!((status, error.error), (400, ErrorCode::Malformed), "{path}");
        assert!(error.message.contains("EOF"), "{}", error.message);
    }

    // A JSON body over the limit.
    let big = format!("{{\"batches\":[],\"pad\":\"{}\"}}", "x".repeat(2_000));
    let response = http
        .post(url("/queue"))
        .header("authorization", &bearer)
        .body(big)
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!((status, error.error), (413, ErrorCode::TooLarge));

    // A bad blob id in the path, and a bad `after`.
    let response = http
        .patch(url("/blobs/not-a-blob"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(response).await.0, 400);
    let response = http
        .get(url(&format!("/offers/{hash}/missing?after=zz&limit=5")))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(response).await.0, 400);
    let response = http
        .get(url(&format!("/offers/{hash}/missing?limit=many")))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(response).await.0, 400);
    let response = http
        .get(url(&format!("/offers/{}/missing", "f".repeat(64))))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(response).await.0, 404);

    let patch = |headers: &[(&str, String)], body: Vec<u8>| {
        let mut request = http
            .patch(url(&format!("/blobs/{blob}")))
            .header("authorization", &bearer)
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.send()
    };
    let length = bytes.len().to_string();
    let octets = ("content-type", "application/offset+octet-stream".to_owned());

    // Unknown Content-Encoding.
    let response = patch(
        &[
            ("upload-offset", "0".to_owned()),
            ("upload-length", length.clone()),
            octets.clone(),
            ("content-encoding", "gzip".to_owned()),
        ],
        bytes.clone(),
    )
    .await
    .unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!((status, error.error), (415, ErrorCode::UnsupportedEncoding));

    // Wrong Content-Type.
    let response = patch(
        &[
            ("upload-offset", "0".to_owned()),
            ("upload-length", length.clone()),
            ("content-type", "application/json".to_owned()),
        ],
        bytes.clone(),
    )
    .await
    .unwrap();
    assert_eq!(error_of(response).await.0, 415);

    // Missing and unreadable offsets.
    let response = patch(
        &[("upload-length", length.clone()), octets.clone()],
        bytes.clone(),
    )
    .await
    .unwrap();
    assert_eq!(error_of(response).await.1.error, ErrorCode::Malformed);
    let response = patch(
        &[
            ("upload-offset", "-1".to_owned()),
            ("upload-length", length.clone()),
            octets.clone(),
        ],
        bytes.clone(),
    )
    .await
    .unwrap();
    assert_eq!(error_of(response).await.1.error, ErrorCode::Malformed);

    // Over the blob limit.
    let response = patch(
        &[
            ("upload-offset", "0".to_owned()),
            ("upload-length", (2_u64 << 20).to_string()),
            octets.clone(),
        ],
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(error_of(response).await.0, 413);

    // A zstd body that is not zstd.
    let response = patch(
        &[
            ("upload-offset", "0".to_owned()),
            ("upload-length", length.clone()),
            octets.clone(),
            ("content-encoding", "zstd".to_owned()),
        ],
        b"this is not zstd".to_vec(),
    )
    .await
    .unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!((status, error.error), (400, ErrorCode::Malformed));

    // A body longer than it said.
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"extra");
    let response = patch(
        &[
            ("upload-offset", "0".to_owned()),
            ("upload-length", length.clone()),
            octets.clone(),
        ],
        longer,
    )
    .await
    .unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!((status, error.error), (400, ErrorCode::Malformed));
    assert!(error.message.contains("more than"), "{}", error.message);
}

/// DESIGN.md: "a manifest of 100,000 pages must work". It is encoded,
/// hashed, offered compressed and paged through.
#[tokio::test]
async fn a_manifest_of_100000_pages() {
    let hub = start_hub(Limits::default()).await;
    let (client, _) = enrolled(&hub, DISTRICT).await;
    let pages_per_file = 100;
    let mut manifest = manifest_of(DISTRICT, "B-huge", &[]);
    let mut seq = 0;
    for file_seq in 1..=1_000 {
        let mut pages = Vec::with_capacity(pages_per_file);
        for _ in 0..pages_per_file {
            seq += 1;
            let mut page = page(seq, &[]);
            page.blob = BlobId::of(&seq.to_le_bytes());
            page.size = 100_000 + u64::from(seq);
            page.blank = false;
            manifest.bytes += page.size;
            pages.push(page);
        }
        manifest.business_files.push(ManifestFile {
            business_number: Some(format!("沪社保-{file_seq:06}")),
            business_type: Some("pension_transfer".to_owned()),
            category: Some("records".to_owned()),
            date: Some("2024-05-06".to_owned()),
            employer_id: None,
            organisation: DISTRICT.to_owned(),
            pages,
            person_id: Some("31010419900307123X".to_owned()),
            person_name: Some("王五".to_owned()),
            retention: Some("permanent".to_owned()),
            seq: file_seq,
        });
    }
    manifest.pages = u64::from(seq);
    let (canonical, hash) = manifest_hash(&manifest).unwrap();
    assert!(canonical.len() > 20_000_000, "{}", canonical.len());

    let first = client.offer(canonical, &hash).await.unwrap();
    assert_eq!(first.missing_total, 100_000);
    assert_eq!(first.missing.len(), 10_000);
    let mut seen = first.missing.len();
    let mut next = first.next;
    let mut pages = 1;
    while let Some(after) = next {
        let page = client.missing(&hash, Some(after)).await.unwrap();
        seen += page.missing.len();
        next = page.next;
        pages += 1;
    }
    assert_eq!((seen, pages), (100_000, 10));
}

// ------------------------------------------------------ protocol versions

/// An edge of the previous release speaks `/sync/v1`: enrolment, queue
/// report, offer, upload, commit and the receipt all work as before, and
/// its client refuses the v2 feeds without asking.
#[tokio::test]
async fn a_v1_client_syncs_a_batch_as_before() {
    let hub = start_hub(Limits::default()).await;
    let code = format!("code-{}", random_token("").unwrap());
    hub.backend.add_code(&code, DISTRICT);
    let v1 = ClientOptions {
        protocol: ProtocolVersion::V1,
        ..options(None)
    };
    let anonymous = Client::new(&hub.url, v1).unwrap();
    let enrolment = anonymous
        .enrol(&EnrolRequest {
            code,
            district: DISTRICT.to_owned(),
        })
        .await
        .unwrap();
    let client = anonymous.with_token(&enrolment.token).unwrap();
    assert_eq!(client.protocol(), ProtocolVersion::V1);
    client
        .report_queue(&QueueReport { batches: vec![] })
        .await
        .unwrap();
    let blobs = vec![content(41, 5000, false), content(42, 70_000, true)];
    let manifest = manifest_of(DISTRICT, "V1-1", &blobs);
    let (canonical, hash) = manifest_hash(&manifest).unwrap();
    let offer = client.offer(canonical, &hash).await.unwrap();
    assert_eq!(offer.missing_total, 2);
    let dir = tempfile::tempdir().unwrap();
    for wanted in &offer.missing {
        let bytes = blobs.iter().find(|b| BlobId::of(b) == wanted.blob).unwrap();
        let path = write_blob(dir.path(), bytes);
        let status = client
            .upload_blob(
                wanted.blob,
                0,
                wanted.size,
                true,
                file_body(&path, 0, wanted.size, true).await.unwrap(),
            )
            .await
            .unwrap();
        assert!(status.complete);
    }
    let receipt = client
        .commit(&CommitRequest {
            batch: "V1-1".to_owned(),
            manifest_hash: hash.clone(),
        })
        .await
        .unwrap();
    verify_receipt(&receipt, &enrolment.hub_key, &hash).unwrap();
    let listing = client.list_batches(None).await.unwrap();
    assert_eq!(listing.batches.len(), 1);
    client.dictionary_feed(0).await.unwrap();
    // The v2 feeds are not part of v1: refused before anything is sent.
    for refused in [
        client.warehouse_cursor("feed-a").await.map(|_| ()),
        client.loan_requests(0).await.map(|_| ()),
        client
            .push_warehouse(&WarehouseEvents {
                feed: "feed-a".to_owned(),
                events: vec![],
            })
            .await
            .map(|_| ()),
    ] {
        assert!(
            matches!(
                refused,
                Err(ClientError::Unsupported {
                    version: ProtocolVersion::V1,
                    ..
                })
            ),
            "{refused:?}"
        );
    }
    // And the hub has no warehouse route under /sync/v1.
    let raw = reqwest::Client::new()
        .get(format!("{}/sync/v1/feeds/warehouse?feed=feed-a", hub.url))
        .bearer_auth(&enrolment.token)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 404);
}

fn location(seq: u64, code: &str, kind: &str, parent: Option<&str>) -> WarehouseEvent {
    WarehouseEvent {
        seq,
        recorded_at: "2026-11-26T08:00:00Z".to_owned(),
        actor: "库管员王五".to_owned(),
        change: WarehouseChange::Location {
            code: code.to_owned(),
            location_kind: kind.to_owned(),
            name: format!("{code} 名称"),
            parent: parent.map(str::to_owned),
            capacity: None,
        },
    }
}

fn events(feed: &str, seqs: std::ops::RangeInclusive<u64>) -> WarehouseEvents {
    WarehouseEvents {
        feed: feed.to_owned(),
        events: seqs
            .map(|seq| location(seq, &format!("K{seq:02}"), "room", None))
            .collect(),
    }
}

/// The warehouse feed: a cursor from 0, resends skipped, a gap after the
/// cursor refused with the cursor named, and the router's checks of a body
/// (the feed id, the count, seqs rising by one, kinds) before the backend.
#[tokio::test]
async fn the_warehouse_feed_applies_in_order_and_refuses_what_is_wrong() {
    let hub = start_hub(Limits::default()).await;
    let (client, _) = enrolled(&hub, DISTRICT).await;
    let (other, _) = enrolled(&hub, "310105").await;
    let feed = "0f3c2d1e-aaaa-4bbb-8ccc-123456789abc";
    assert_eq!(
        client.warehouse_cursor(feed).await.unwrap(),
        WarehouseCursor {
            feed: feed.to_owned(),
            cursor: 0
        }
    );
    assert_eq!(
        client
            .push_warehouse(&events(feed, 1..=3))
            .await
            .unwrap()
            .cursor,
        3
    );
    // A resend overlapping the cursor applies only what is new.
    assert_eq!(
        client
            .push_warehouse(&events(feed, 2..=5))
            .await
            .unwrap()
            .cursor,
        5
    );
    assert_eq!(
        client
            .push_warehouse(&events(feed, 1..=5))
            .await
            .unwrap()
            .cursor,
        5
    );
    assert_eq!(
        hub.backend.lock().warehouse[&(DISTRICT.to_owned(), feed.to_owned())].len(),
        5
    );
    // An empty push just reports the cursor.
    assert_eq!(
        client
            .push_warehouse(&WarehouseEvents {
                feed: feed.to_owned(),
                events: vec![],
            })
            .await
            .unwrap()
            .cursor,
        5
    );
    // Another district's feed of the same id is its own.
    assert_eq!(other.warehouse_cursor(feed).await.unwrap().cursor, 0);

    // A gap after the cursor: 409 feed_gap naming the cursor.
    let (status, code, message) = hub_error(client.push_warehouse(&events(feed, 7..=8)).await);
    assert_eq!((status, code), (409, Some(ErrorCode::FeedGap)));
    assert!(message.contains("cursor of warehouse feed"), "{message}");
    assert!(message.contains(" 5"), "{message}");
    assert_eq!(client.warehouse_cursor(feed).await.unwrap().cursor, 5);

    // A gap inside the body, a seq 0, a repeated seq: 400 malformed.
    let mut gapped = events(feed, 6..=9);
    gapped.events.remove(2);
    let mut zero = events(feed, 0..=2);
    zero.events.truncate(2);
    let mut repeated = events(feed, 6..=7);
    repeated.events[1].seq = 6;
    let mut unknown_kind = events(feed, 6..=6);
    unknown_kind.events[0] = location(6, "X", "drawer", None);
    for bad in [gapped, zero, repeated, unknown_kind] {
        let (status, code, _) = hub_error(client.push_warehouse(&bad).await);
        assert_eq!((status, code), (400, Some(ErrorCode::Malformed)));
    }
    // More than 1000 events: 413 too_large.
    let (status, code, _) = hub_error(client.push_warehouse(&events(feed, 6..=1006)).await);
    assert_eq!((status, code), (413, Some(ErrorCode::TooLarge)));
    assert_eq!(
        client
            .push_warehouse(&events(feed, 6..=1005))
            .await
            .unwrap()
            .cursor,
        1005
    );

    // A bad feed id: 400, from the router (the client checks its own GETs,
    // so ask over raw HTTP there).
    for feed in ["", "Feed", "feed_1", &"f".repeat(65)] {
        let (status, code, _) = hub_error(client.push_warehouse(&events(feed, 1..=1)).await);
        assert_eq!(
            (status, code),
            (400, Some(ErrorCode::Malformed)),
            "{feed:?}"
        );
    }
    assert!(matches!(
        client.warehouse_cursor("Feed").await,
        Err(ClientError::Config(_))
    ));
    let (_, raw_node) = enrolled(&hub, DISTRICT).await;
    let token = raw_node.token;
    for query in ["feed=Feed", "feed=", ""] {
        let raw = reqwest::Client::new()
            .get(format!("{}/sync/v2/feeds/warehouse?{query}", hub.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(raw.status().as_u16(), 400, "{query}");
        let body: ErrorBody = raw.json().await.unwrap();
        assert_eq!(body.error, ErrorCode::Malformed);
    }
    // Unauthenticated: 401.
    let raw = reqwest::Client::new()
        .get(format!("{}/sync/v2/feeds/warehouse?feed=a", hub.url))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 401);
}

/// The loan-request feed reads the node's own district from a cursor, in
/// pages.
#[tokio::test]
async fn the_loan_request_feed_is_per_district_and_paged() {
    let hub = start_hub(Limits::default()).await;
    let (client, _) = enrolled(&hub, DISTRICT).await;
    let (other, _) = enrolled(&hub, "310105").await;
    {
        let mut state = hub.backend.lock();
        for seq in 1..=250_u64 {
            let district = if seq % 5 == 0 { "310105" } else { DISTRICT };
            state.loan_requests.push((
                district.to_owned(),
                LoanRequest {
                    seq,
                    item: format!("VOL-{seq:04}"),
                    borrower: "复核员张三（西湖区社保中心）".to_owned(),
                    purpose: "待遇复核".to_owned(),
                    due_date: "2026-12-31".to_owned(),
                    requested_by: "zhang".to_owned(),
                    requested_at: "2026-11-26T08:00:00Z".to_owned(),
                },
            ));
        }
    }
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = client.loan_requests(after).await.unwrap();
        assert!(page.entries.len() <= 200);
        seen.extend(page.entries.iter().map(|entry| entry.seq));
        after = page.next;
        if !page.more {
            break;
        }
    }
    assert_eq!(seen.len(), 200);
    assert!(seen.iter().all(|seq| seq % 5 != 0));
    assert_eq!(after, 249);
    let again = client.loan_requests(after).await.unwrap();
    assert!(again.entries.is_empty() && !again.more && again.next == after);
    let theirs = other.loan_requests(0).await.unwrap();
    assert_eq!(theirs.entries.len(), 50);
    assert!(theirs.entries.iter().all(|entry| entry.seq % 5 == 0));
}
