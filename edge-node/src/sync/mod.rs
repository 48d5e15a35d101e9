//! Sync: accepted batches go to the hub over `/sync/v1`, exactly once,
//! whatever the line does.
//!
//! One pass ([`run_pass`]) reports the queue to the hub, then for each
//! accepted batch: builds its manifest (a pure function of the batch) and
//! offers it; uploads the blobs the hub lacks, several at once, each
//! resuming from the offset the hub holds; commits; and archives the batch
//! only on a receipt that verifies with the hub's key from enrolment and
//! names the manifest hash it offered. Every step is idempotent at the hub,
//! so a pass killed at any moment is finished by the next one. Retry state
//! lives in the database (see [`queue`]).
pub mod enrolment;
pub mod manifest;
pub mod queue;
pub mod window;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dangan_shared::BlobId;
use dangan_sync::client::{Client, ClientError, ClientOptions};
use dangan_sync::wire::{
    CommitRequest, EdgeBatchState, ErrorCode, MissingBlob, QueueReport, QueuedBatch,
};
use futures_util::{Stream, StreamExt, TryStreamExt};
use serde::Serialize;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::node::Node;
use crate::store::{Store, StoreError};
use crate::text::Lang;
use enrolment::{Enrolment, EnrolmentError};
use queue::QueueEntry;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Enrolment(#[from] EnrolmentError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot reach the hub at {url}: {source}")]
    Unreachable { url: String, source: ClientError },
    #[error("the hub refused this node's credential (revoked?): {0}")]
    Refused(ClientError),
    #[error("cannot set up the connection to the hub: {0}")]
    Client(ClientError),
    #[error("this node is already enrolled with {hub}; add --replace to enrol again")]
    AlreadyEnrolled { hub: String },
    #[error("the hub refused the enrolment: {0}")]
    EnrolmentRefused(ClientError),
    #[error("the hub enrolled this node for district {hub}, but it was initialised for {edge}")]
    WrongDistrict { hub: String, edge: String },
    #[error("cannot read the CA certificate {path}: {source}")]
    CaCert {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// What a batch's attempt ended with, when it did not end archived.
#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Hub(ClientError),
    #[error("cannot read blob {blob} from the cache: {source}")]
    LocalBlob {
        blob: String,
        source: std::io::Error,
    },
    #[error("blob {blob} in the cache no longer matches its hash; run `dangan-edge fsck`")]
    LocalBlobCorrupt { blob: String },
    #[error("the hub's receipt does not verify: {0}")]
    Receipt(String),
    #[error("cannot encode the manifest: {0}")]
    Manifest(String),
}

impl BatchError {
    /// Whether the hub could not be reached at all (stop the pass, the
    /// other batches would fail the same way).
    fn unreachable(&self) -> bool {
        matches!(self, BatchError::Hub(err) if err.is_retryable())
    }

    /// A stable name of the kind of failure, stored beside the message so
    /// that people are told what happened in their language
    /// ([`failure_label`]); the message itself stays technical.
    fn code(&self) -> &'static str {
        match self {
            BatchError::Store(_) => "store",
            // Unreachable, or answering "later" (full disk, 5xx, busy).
            BatchError::Hub(err) if err.is_retryable() => "hub_unavailable",
            BatchError::Hub(ClientError::Hub { .. }) => "hub_refused",
            BatchError::Hub(_) => "hub_error",
            BatchError::LocalBlob { .. } => "blob_unreadable",
            BatchError::LocalBlobCorrupt { .. } => "blob_damaged",
            BatchError::Receipt(_) => "receipt_invalid",
            BatchError::Manifest(_) => "manifest",
        }
    }
}

/// What a failed sync attempt's code ([`BatchFailure::code`]) means, for
/// the people who read it.
pub fn failure_label(lang: Lang, code: &str) -> &'static str {
    match code {
        "store" => lang.pick("本地数据库出错", "the local database failed"),
        "hub_unavailable" => lang.pick(
            "中心暂时无法连接或无法接收（将自动重试）",
            "the hub cannot be reached or cannot take data for now (retried automatically)",
        ),
        "hub_refused" => lang.pick("中心拒绝了请求", "the hub refused the request"),
        "hub_error" => lang.pick("与中心通信出错", "talking to the hub failed"),
        "blob_unreadable" => lang.pick("无法读取缓存中的图像", "a cached image cannot be read"),
        "blob_damaged" => lang.pick(
            "缓存中的图像已损坏，请运行 dangan-edge fsck",
            "a cached image is damaged; run dangan-edge fsck",
        ),
        "receipt_invalid" => lang.pick(
            "中心回执验证失败，批次未归档",
            "the hub's receipt did not verify; the batch is not archived",
        ),
        "manifest" => lang.pick("无法生成批次清单", "the batch manifest cannot be made"),
        _ => lang.pick("同步出错", "sync failed"),
    }
}

#[derive(Debug, Clone)]
pub struct PassOptions {
    /// Run even outside the configured sync windows.
    pub ignore_windows: bool,
    /// Try batches whose retry is not yet due (a person asked for it).
    pub ignore_backoff: bool,
    /// A progress bar on the terminal.
    pub progress: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    /// The pass did nothing because no sync window is open.
    pub outside_window: bool,
    pub batches_committed: u64,
    pub blobs_sent: u64,
    /// Bytes of blob data put on the wire in this pass (after compression).
    pub bytes_sent: u64,
    /// Batches still waiting (accepted or syncing) after the pass.
    pub batches_queued: u64,
    pub failures: Vec<BatchFailure>,
    pub evicted_blobs: u64,
    pub evicted_bytes: u64,
    /// Dictionary and template versions received from the hub and applied
    /// in this pass, e.g. `defects v2`, `template A01 v3`.
    pub dictionary_updates: Vec<String>,
    /// Why the dictionary feed could not be read or applied (the local
    /// copy stays in force; the next pass tries again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dictionary_error: Option<String>,
    /// Warehouse events (shelving, loans, checks) the hub applied in this pass.
    pub warehouse_events_sent: u64,
    /// Warehouse events the hub has not applied yet (after the pass).
    pub warehouse_events_pending: u64,
    /// Loan requests of hub reviewers received in this pass.
    pub loan_requests_received: u64,
    /// Why the warehouse feeds could not be exchanged (they stay queued;
    /// the next pass tries again), or that the hub speaks protocol 1 only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warehouse_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchFailure {
    pub batch: String,
    /// The kind of failure ([`failure_label`] says it in words).
    pub code: String,
    pub error: String,
    pub next_attempt_at: String,
}

/// Everything one pass shares between its uploads.
struct Pass<'a> {
    node: &'a Node,
    client: Client,
    enrolment: Enrolment,
    throttle: Option<Arc<Throttle>>,
    bytes_sent: Arc<AtomicU64>,
    blobs_sent: AtomicU64,
    started: Instant,
    progress: Option<indicatif::ProgressBar>,
}

/// Builds the protocol client from the node's enrolment, speaking the
/// configured protocol version.
pub fn client_for(node: &Node, enrolment: &Enrolment) -> Result<Client, SyncError> {
    client_speaking(node, enrolment, node.config.sync.protocol)
}

fn client_speaking(
    node: &Node,
    enrolment: &Enrolment,
    protocol: dangan_sync::ProtocolVersion,
) -> Result<Client, SyncError> {
    let settings = &node.config.sync;
    Client::new(
        &enrolment.hub_url,
        ClientOptions {
            token: Some(enrolment.token.clone()),
            ca_cert_pem: enrolment.ca_cert_pem()?,
            connect_timeout: Duration::from_secs(10),
            request_timeout: settings.request_timeout,
            user_agent: format!("dangan-edge/{}", env!("CARGO_PKG_VERSION")),
            protocol,
        },
    )
    .map_err(SyncError::Client)
}

/// Exchanges a one-time enrolment code for this node's credential and
/// stores it with the hub's public key.
pub async fn enrol(
    node: &Node,
    store: &Store,
    hub_url: &str,
    code: &str,
    ca_cert: Option<&std::path::Path>,
    replace: bool,
) -> Result<Enrolment, SyncError> {
    match Enrolment::load(&node.data_dir) {
        Ok(existing) if !replace => {
            return Err(SyncError::AlreadyEnrolled {
                hub: existing.hub_url,
            });
        }
        Ok(_) | Err(EnrolmentError::NotEnrolled) => {}
        Err(_) if replace => {}
        Err(err) => return Err(err.into()),
    }
    let ca_cert = ca_cert
        .map(|path| {
            std::path::absolute(path).map_err(|source| SyncError::CaCert {
                path: path.to_owned(),
                source,
            })
        })
        .transpose()?;
    let ca_cert_pem = ca_cert
        .as_ref()
        .map(|path| {
            std::fs::read(path).map_err(|source| SyncError::CaCert {
                path: path.clone(),
                source,
            })
        })
        .transpose()?;
    let client_for = |protocol| {
        Client::new(
            hub_url,
            ClientOptions {
                token: None,
                ca_cert_pem: ca_cert_pem.clone(),
                connect_timeout: Duration::from_secs(10),
                request_timeout: node.config.sync.request_timeout,
                user_agent: format!("dangan-edge/{}", env!("CARGO_PKG_VERSION")),
                protocol,
            },
        )
        .map_err(SyncError::Client)
    };
    let district = store.district()?.to_string();
    let request = dangan_sync::wire::EnrolRequest {
        code: code.trim().to_owned(),
        district: district.clone(),
    };
    let protocol = node.config.sync.protocol;
    let mut answer = client_for(protocol)?.enrol(&request).await;
    // A hub of the previous release knows only /sync/v1 (a bare 404).
    if protocol != dangan_sync::ProtocolVersion::V1
        && answer.as_ref().is_err_and(ClientError::is_unknown_route)
    {
        answer = client_for(dangan_sync::ProtocolVersion::V1)?
            .enrol(&request)
            .await;
    }
    let response = answer.map_err(|err| {
        if err.is_retryable() {
            SyncError::Unreachable {
                url: hub_url.to_owned(),
                source: err,
            }
        } else {
            SyncError::EnrolmentRefused(err)
        }
    })?;
    if response.district != district {
        return Err(SyncError::WrongDistrict {
            hub: response.district,
            edge: district,
        });
    }
    let enrolment = Enrolment {
        hub_url: hub_url.trim_end_matches('/').to_owned(),
        node_id: response.node_id,
        district,
        token: response.token,
        hub_id: response.hub_id,
        hub_key: response.hub_key,
        ca_cert,
        enrolled_at: crate::store::now(),
    };
    enrolment.save(&node.data_dir)?;
    Ok(enrolment)
}

/// One sync pass. `store` is locked only for short database steps, so
/// ingest may run beside it.
pub async fn run_pass(
    node: &Node,
    store: &std::sync::Mutex<Store>,
    options: &PassOptions,
) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport::default();
    let settings = &node.config.sync;
    let now = jiff::Zoned::now();
    let outside =
        !options.ignore_windows && !window::open_now(&settings.windows, &now, &settings.time_zone);
    let enrolment = match Enrolment::load(&node.data_dir) {
        Ok(enrolment) => enrolment,
        Err(_) if outside => {
            report.outside_window = true;
            report.batches_queued = pending(&lock(store).sync_queue()?).count() as u64;
            return Ok(report);
        }
        Err(err) => return Err(err.into()),
    };
    let client = client_for(node, &enrolment)?;
    let mut pass = Pass {
        node,
        client,
        throttle: (settings.bandwidth_limit > 0)
            .then(|| Arc::new(Throttle::new(settings.bandwidth_limit))),
        enrolment,
        bytes_sent: Arc::new(AtomicU64::new(0)),
        blobs_sent: AtomicU64::new(0),
        started: Instant::now(),
        progress: None,
    };
    let span = info_span!("sync_pass", node = %pass.enrolment.node_id);
    async {
        if outside {
            // Outside the windows no image moves, but the hub still hears
            // what is queued here (a few hundred bytes) so that its
            // reconciliation is current; an unreachable hub is no error.
            if let Err(err) = pass.first_contact(store).await {
                debug!(error = %err, "queue report outside the sync window failed");
            } else {
                pass.pull_dictionaries(store, &mut report).await;
                pass.sync_warehouse(store, &mut report).await;
            }
            report.outside_window = true;
            return Ok(());
        }
        pass.first_contact(store).await?;
        pass.pull_dictionaries(store, &mut report).await;
        pass.sync_warehouse(store, &mut report).await;
        let queue = lock(store).sync_queue()?;
        let now_text = crate::store::now();
        let mut pass = pass;
        if options.progress {
            let total: i64 = pending(&queue).map(|e| e.bytes).sum();
            pass.progress = Some(progress_bar(total as u64));
        }
        for entry in pending(&queue) {
            let due = entry
                .next_attempt_at
                .as_deref()
                .is_none_or(|at| at <= now_text.as_str());
            if !due && !options.ignore_backoff {
                continue;
            }
            let name = entry.batch.name.clone();
            match pass
                .sync_batch(store, entry)
                .instrument(info_span!("batch", batch = %name))
                .await
            {
                Ok(()) => report.batches_committed += 1,
                Err(err) => {
                    let attempts = entry.sync_attempts.max(0) as u32;
                    let delay = backoff(settings.retry_base, settings.retry_max, attempts);
                    let next = (jiff::Timestamp::now()
                        + jiff::SignedDuration::try_from(delay).unwrap_or_default())
                    .strftime("%Y-%m-%dT%H:%M:%SZ")
                    .to_string();
                    warn!(batch = %name, error = %err, "batch not archived in this pass");
                    let failure = BatchFailure {
                        batch: name,
                        code: err.code().to_owned(),
                        error: err.to_string(),
                        next_attempt_at: next,
                    };
                    lock(store).record_sync_failure(
                        entry.batch.id,
                        &failure.code,
                        &failure.error,
                        &failure.next_attempt_at,
                    )?;
                    report.failures.push(failure);
                    if err.unreachable() {
                        break;
                    }
                }
            }
        }
        if let Some(bar) = &pass.progress {
            bar.finish_and_clear();
        }
        // Tell the hub what changed; a failure here is not worth failing
        // the pass for (the next contact reports again).
        if let Err(err) = pass.report_queue(store).await {
            warn!(error = %err, "cannot report the queue after the pass");
        }
        report.blobs_sent = pass.blobs_sent.load(Ordering::Relaxed);
        report.bytes_sent = pass.bytes_sent.load(Ordering::Relaxed);
        Ok::<_, SyncError>(())
    }
    .instrument(span)
    .await?;
    let store = lock(store);
    report.batches_queued = pending(&store.sync_queue()?).count() as u64;
    if let Ok((last, acked)) = crate::warehouse::feed_state(store.conn()) {
        report.warehouse_events_pending = last.saturating_sub(acked);
    }
    if node.config.cache_budget > 0 {
        // Eviction needs the write lock (no ingest reusing a blob meanwhile);
        // if an ingest holds it, the next pass evicts.
        if let Ok(_lock) = node.lock_for_writing() {
            let evicted = crate::eviction::evict(node, &store, node.config.cache_budget)?;
            report.evicted_blobs = evicted.evicted_blobs;
            report.evicted_bytes = evicted.freed_bytes;
        }
    }
    Ok(report)
}

fn lock(store: &std::sync::Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    // A panic while holding the lock leaves SQLite consistent (every step
    // is its own transaction), so a poisoned lock is safe to reuse.
    store
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn pending(queue: &[QueueEntry]) -> impl Iterator<Item = &QueueEntry> {
    queue
        .iter()
        .filter(|e| matches!(e.batch.state.as_str(), "accepted" | "syncing"))
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Capped exponential backoff with full jitter.
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    dangan_sync::client::full_jitter_backoff(attempt, base, max)
}

impl Pass<'_> {
    /// Retries `step` while the hub is unreachable or busy, with backoff,
    /// for at most `sync.give_up_after` in this pass.
    async fn retrying<T, F, Fut>(&self, what: &str, mut step: F) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let settings = &self.node.config.sync;
        let mut attempt = 0;
        loop {
            match step().await {
                Err(err)
                    if err.is_retryable() && self.started.elapsed() < settings.give_up_after =>
                {
                    let delay = backoff(settings.retry_base, settings.retry_max, attempt);
                    warn!(step = what, error = %err, retry_in_ms = delay.as_millis() as u64, "hub not reachable; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Reads the hub's dictionary feed from the stored cursor and applies
    /// it page by page. A failure leaves the local copy as it is and is
    /// reported, not fatal: batches still sync.
    async fn pull_dictionaries(&self, store: &std::sync::Mutex<Store>, report: &mut SyncReport) {
        loop {
            let cursor = match crate::dictionaries::cursor(lock(store).conn()) {
                Ok((cursor, _)) => cursor,
                Err(err) => {
                    report.dictionary_error = Some(err.to_string());
                    return;
                }
            };
            let feed = match self
                .retrying("dictionary feed", || self.client.dictionary_feed(cursor))
                .await
            {
                Ok(feed) => feed,
                Err(err) => {
                    warn!(error = %err, "cannot read the hub's dictionary feed");
                    report.dictionary_error = Some(err.to_string());
                    return;
                }
            };
            match crate::dictionaries::apply(lock(store).conn_mut(), &feed) {
                Ok(applied) => {
                    for update in &applied.updated {
                        info!(update = %update, "dictionary update from the hub applied");
                    }
                    report.dictionary_updates.extend(applied.updated);
                }
                Err(err) => {
                    warn!(error = %err, "cannot apply the hub's dictionary feed");
                    report.dictionary_error = Some(err.to_string());
                    return;
                }
            }
            if !feed.more || feed.entries.is_empty() {
                return;
            }
        }
    }

    /// Sends the warehouse events the hub has not applied, from the cursor
    /// the hub reports, and reads its reviewers' loan requests from ours.
    /// A failure leaves both feeds where they were (every step is
    /// idempotent) and is reported, not fatal: batches still sync.
    async fn sync_warehouse(&self, store: &std::sync::Mutex<Store>, report: &mut SyncReport) {
        if self.client.protocol() == dangan_sync::ProtocolVersion::V1 {
            report.warehouse_error = Some(
                if self.node.config.sync.protocol == dangan_sync::ProtocolVersion::V1 {
                    "sync.protocol is 1: warehouse events wait until the hub speaks protocol 2"
                        .into()
                } else {
                    "the hub speaks sync protocol 1 only: warehouse events wait until it is upgraded"
                    .into()
                },
            );
            return;
        }
        if let Err(err) = self.push_warehouse(store, report).await {
            warn!(error = %err, "cannot send the warehouse feed");
            report.warehouse_error = Some(err);
            return;
        }
        if let Err(err) = self.pull_loan_requests(store, report).await {
            warn!(error = %err, "cannot read the hub's loan requests");
            report.warehouse_error = Some(err);
        }
    }

    async fn push_warehouse(
        &self,
        store: &std::sync::Mutex<Store>,
        report: &mut SyncReport,
    ) -> Result<(), String> {
        const PAGE: u32 = 500;
        let text = |err: &dyn std::fmt::Display| err.to_string();
        let mut gaps = 0;
        loop {
            let feed = crate::warehouse::feed_id(lock(store).conn()).map_err(|e| text(&e))?;
            let hub = self
                .retrying("warehouse cursor", || self.client.warehouse_cursor(&feed))
                .await
                .map_err(|e| text(&e))?;
            let (last, _) =
                crate::warehouse::feed_state(lock(store).conn()).map_err(|e| text(&e))?;
            if hub.cursor > last {
                // The hub has applied more of this feed than this database
                // holds (restored from an older backup): start a new feed
                // and send everything, so nothing new is taken for a repeat.
                warn!(
                    hub = hub.cursor,
                    edge = last,
                    "warehouse feed behind the hub; starting a new feed"
                );
                crate::warehouse::renew_feed(lock(store).conn()).map_err(|e| text(&e))?;
                continue;
            }
            let mut cursor = hub.cursor;
            crate::warehouse::set_acked(lock(store).conn(), cursor).map_err(|e| text(&e))?;
            loop {
                let events = crate::warehouse::events_after(lock(store).conn(), cursor, PAGE)
                    .map_err(|e| text(&e))?;
                if events.is_empty() {
                    return Ok(());
                }
                let body = dangan_sync::wire::WarehouseEvents {
                    feed: feed.clone(),
                    events,
                };
                match self
                    .retrying("warehouse events", || self.client.push_warehouse(&body))
                    .await
                {
                    Ok(answer) => {
                        report.warehouse_events_sent += answer.cursor.saturating_sub(cursor);
                        cursor = answer.cursor;
                        crate::warehouse::set_acked(lock(store).conn(), cursor)
                            .map_err(|e| text(&e))?;
                    }
                    Err(err) if err.code() == Some(ErrorCode::FeedGap) && gaps < 3 => {
                        gaps += 1;
                        break; // ask the hub where it stands again
                    }
                    Err(err) => return Err(text(&err)),
                }
            }
        }
    }

    async fn pull_loan_requests(
        &self,
        store: &std::sync::Mutex<Store>,
        report: &mut SyncReport,
    ) -> Result<(), String> {
        let today = crate::warehouse::today(&self.node.config.sync.time_zone);
        loop {
            let after = crate::warehouse::loan_request_cursor(lock(store).conn())
                .map_err(|e| e.to_string())?;
            let feed = self
                .retrying("loan requests", || self.client.loan_requests(after))
                .await
                .map_err(|e| e.to_string())?;
            let added = crate::warehouse::apply_loan_requests(
                lock(store).conn_mut(),
                &feed.entries,
                feed.next,
                &today,
            )
            .map_err(|e| e.to_string())?;
            report.loan_requests_received += added as u64;
            if !feed.more || feed.entries.is_empty() {
                return Ok(());
            }
        }
    }

    /// The pass's first request, the queue report. A hub of the previous
    /// release answers every `/sync/v2` path with a bare 404: the pass then
    /// speaks version 1 (batches and dictionaries sync; the warehouse
    /// events wait for an upgraded hub).
    async fn first_contact(&mut self, store: &std::sync::Mutex<Store>) -> Result<(), SyncError> {
        match self.report_queue(store).await {
            Err(SyncError::Unreachable { source, .. })
                if source.is_unknown_route()
                    && self.client.protocol() != dangan_sync::ProtocolVersion::V1 =>
            {
                warn!("the hub does not speak sync protocol 2; this pass uses protocol 1");
                self.client =
                    client_speaking(self.node, &self.enrolment, dangan_sync::ProtocolVersion::V1)?;
                self.report_queue(store).await
            }
            other => other,
        }
    }

    async fn report_queue(&self, store: &std::sync::Mutex<Store>) -> Result<(), SyncError> {
        let queue = lock(store).sync_queue()?;
        let report = QueueReport {
            batches: queue
                .iter()
                .map(|e| QueuedBatch {
                    batch: e.batch.name.clone(),
                    state: match e.batch.state.as_str() {
                        "archived" => EdgeBatchState::Archived,
                        "syncing" => EdgeBatchState::Syncing,
                        _ => EdgeBatchState::Queued,
                    },
                    manifest_hash: e.manifest_hash.clone(),
                    pages: e.pages as u64,
                    bytes: e.bytes as u64,
                    last_error: e.sync_error.clone(),
                })
                .collect(),
        };
        self.retrying("report queue", || self.client.report_queue(&report))
            .await
            .map_err(|err| self.connection_error(err))
    }

    fn connection_error(&self, err: ClientError) -> SyncError {
        if err.code() == Some(ErrorCode::Unauthorized) {
            SyncError::Refused(err)
        } else {
            SyncError::Unreachable {
                url: self.enrolment.hub_url.clone(),
                source: err,
            }
        }
    }

    async fn sync_batch(
        &self,
        store: &std::sync::Mutex<Store>,
        entry: &QueueEntry,
    ) -> Result<(), BatchError> {
        let manifest = manifest::build(&lock(store), &entry.batch)?;
        let (canonical, hash) = dangan_sync::manifest_hash(&manifest)
            .map_err(|e| BatchError::Manifest(e.to_string()))?;
        drop(manifest);
        lock(store).mark_syncing(entry.batch.id, &hash)?;
        info!(manifest_hash = %hash, "offering");
        let mut offer = self
            .retrying("offer", || self.client.offer(canonical.clone(), &hash))
            .await
            .map_err(BatchError::Hub)?;
        drop(canonical);
        let request = CommitRequest {
            batch: entry.batch.name.clone(),
            manifest_hash: hash.clone(),
        };
        let mut walks = 0;
        let receipt = loop {
            if !offer.committed {
                loop {
                    self.upload_all(std::mem::take(&mut offer.missing)).await?;
                    let Some(after) = offer.next else { break };
                    offer = self
                        .retrying("missing", || self.client.missing(&hash, Some(after)))
                        .await
                        .map_err(BatchError::Hub)?;
                }
            }
            match self
                .retrying("commit", || self.client.commit(&request))
                .await
            {
                // Blobs the hub had verified but lost before syncing them
                // (it restarted): walk the missing list again.
                Err(err) if err.code() == Some(ErrorCode::MissingBlobs) && walks < 3 => {
                    walks += 1;
                    warn!(error = %err, "the hub lacks blobs at commit; sending them again");
                    offer = self
                        .retrying("missing", || self.client.missing(&hash, None))
                        .await
                        .map_err(BatchError::Hub)?;
                }
                other => break other.map_err(BatchError::Hub)?,
            }
        };
        dangan_sync::verify_receipt(&receipt, &self.enrolment.hub_key, &hash)
            .map_err(|e| BatchError::Receipt(e.to_string()))?;
        if receipt.body.batch != entry.batch.name || receipt.body.district != entry.batch.district {
            return Err(BatchError::Receipt(format!(
                "it names batch {} of district {}",
                receipt.body.batch, receipt.body.district
            )));
        }
        let json =
            serde_json::to_string(&receipt).map_err(|e| BatchError::Receipt(e.to_string()))?;
        lock(store).mark_archived(entry.batch.id, &json)?;
        info!(manifest_hash = %hash, "archived");
        Ok(())
    }

    async fn upload_all(&self, missing: Vec<MissingBlob>) -> Result<(), BatchError> {
        let parallel = self.node.config.sync.parallel_uploads;
        futures_util::stream::iter(missing)
            .map(|blob| {
                let span = info_span!("blob", blob = %blob.blob.short());
                self.upload(blob).instrument(span)
            })
            .buffer_unordered(parallel)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Sends one blob, resuming from what the hub holds, until the hub has
    /// verified it.
    async fn upload(&self, missing: MissingBlob) -> Result<(), BatchError> {
        let settings = &self.node.config.sync;
        let id = missing.blob;
        let path = self.node.cache.blob_path(&id);
        let zstd = worth_compressing(&path).map_err(|source| BatchError::LocalBlob {
            blob: id.to_hex(),
            source,
        })?;
        let mut offset = missing.offset;
        let mut attempt = 0u32;
        let mut mismatches = 0;
        loop {
            let body = self.body(&path, offset, missing.size, zstd, &id).await?;
            // The client puts no total timeout on an upload (a blob takes
            // what the line allows); a stalled hub must not hang the pass.
            let allowance = self.node.config.sync.request_timeout
                + match self.node.config.sync.bandwidth_limit {
                    0 => Duration::ZERO,
                    limit => Duration::from_secs(missing.size.div_ceil(limit)),
                };
            let result = tokio::time::timeout(
                allowance,
                self.client
                    .upload_blob(id, offset, missing.size, zstd, body),
            )
            .await
            .unwrap_or_else(|_| {
                Err(ClientError::Transport(format!(
                    "no answer within {} s",
                    allowance.as_secs()
                )))
            });
            match result {
                Ok(status) if status.complete => {
                    self.blobs_sent.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Ok(status) => offset = status.offset,
                Err(err) if err.code() == Some(ErrorCode::BlobHashMismatch) => {
                    // Corrupted on the way, or our copy is damaged.
                    if BlobId::of(&std::fs::read(&path).map_err(|source| {
                        BatchError::LocalBlob {
                            blob: id.to_hex(),
                            source,
                        }
                    })?) != id
                    {
                        return Err(BatchError::LocalBlobCorrupt { blob: id.to_hex() });
                    }
                    mismatches += 1;
                    if mismatches > 5 {
                        return Err(BatchError::Hub(err));
                    }
                    warn!("hub rejected the blob's bytes (corrupted in transit); sending again");
                    offset = 0;
                }
                Err(ClientError::Hub {
                    code: Some(ErrorCode::OffsetMismatch),
                    offset: Some(held),
                    ..
                }) => offset = held,
                Err(err) if err.code() == Some(ErrorCode::OffsetMismatch) => {
                    offset = self.held(id).await?;
                }
                Err(err)
                    if err.is_retryable() && self.started.elapsed() < settings.give_up_after =>
                {
                    let delay = backoff(settings.retry_base, settings.retry_max, attempt);
                    warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "upload interrupted; resuming");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                    offset = self.held(id).await?;
                    if offset >= missing.size {
                        // The hub holds it all: ask whether it is verified.
                        if let Some(status) = self
                            .retrying("blob status", || self.client.blob_status(id))
                            .await
                            .map_err(BatchError::Hub)?
                            && status.complete
                        {
                            self.blobs_sent.fetch_add(1, Ordering::Relaxed);
                            return Ok(());
                        }
                        offset = 0;
                    }
                }
                Err(err) => return Err(BatchError::Hub(err)),
            }
        }
    }

    /// How much of a blob the hub holds now.
    async fn held(&self, id: BlobId) -> Result<u64, BatchError> {
        let status = self
            .retrying("blob status", || self.client.blob_status(id))
            .await
            .map_err(BatchError::Hub)?;
        Ok(status.map_or(0, |s| {
            if s.complete {
                s.length.unwrap_or(s.offset)
            } else {
                s.offset
            }
        }))
    }

    /// The blob's bytes from `offset`, throttled and counted.
    async fn body(
        &self,
        path: &std::path::Path,
        offset: u64,
        length: u64,
        zstd: bool,
        id: &BlobId,
    ) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static, BatchError> {
        let stream = dangan_sync::client::file_body(path, offset, length, zstd)
            .await
            .map_err(|source| match source.kind() {
                // Not the length the manifest gives: the copy is damaged.
                std::io::ErrorKind::InvalidData => {
                    BatchError::LocalBlobCorrupt { blob: id.to_hex() }
                }
                _ => BatchError::LocalBlob {
                    blob: id.to_hex(),
                    source,
                },
            })?;
        let counter = self.bytes_sent.clone();
        let throttle = self.throttle.clone();
        let bar = self.progress.clone();
        Ok(stream.then(move |chunk| {
            let counter = counter.clone();
            let throttle = throttle.clone();
            let bar = bar.clone();
            async move {
                let chunk = chunk?;
                if let Some(throttle) = throttle {
                    throttle.take(chunk.len() as u64).await;
                }
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                if let Some(bar) = bar {
                    bar.inc(chunk.len() as u64);
                }
                Ok(chunk)
            }
        }))
    }
}

/// Whether zstd makes this blob smaller: JPEG and other compressed images
/// gain nothing (zstd on JPEG pages: ratio 1.04), raw and TIFF pages do.
/// A JPEG is known by its first two bytes (all that is read of it); other
/// files are decided on their first 128 KiB.
fn worth_compressing(path: &std::path::Path) -> std::io::Result<bool> {
    use std::io::Read;
    const SAMPLE: u64 = 128 << 10;
    let mut file = std::fs::File::open(path)?;
    let mut sample = Vec::new();
    (&mut file).take(2).read_to_end(&mut sample)?;
    if sample.starts_with(&[0xff, 0xd8]) {
        return Ok(false);
    }
    file.take(SAMPLE - sample.len() as u64)
        .read_to_end(&mut sample)?;
    if sample.len() < 4096 {
        return Ok(false);
    }
    let compressed = zstd::bulk::compress(&sample, 1).map_or(sample.len(), |c| c.len());
    Ok(compressed * 10 < sample.len() * 9)
}

/// Shares an upload rate between all uploads of a pass: each chunk books
/// its slot on a virtual clock and waits for it.
struct Throttle {
    bytes_per_second: u64,
    next_free: tokio::sync::Mutex<Instant>,
}

impl Throttle {
    fn new(bytes_per_second: u64) -> Self {
        Self {
            bytes_per_second,
            next_free: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    async fn take(&self, bytes: u64) {
        let wait_until = {
            let mut next = self.next_free.lock().await;
            let start = (*next).max(Instant::now());
            *next = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_second as f64);
            start
        };
        tokio::time::sleep_until(wait_until.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_only_where_it_pays() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        std::fs::write(&raw, vec![200u8; 200_000]).unwrap();
        assert!(worth_compressing(&raw).unwrap());
        let jpeg = dir.path().join("jpeg");
        let mut bytes = vec![0xff, 0xd8];
        bytes.extend(std::iter::repeat_n(7u8, 100_000));
        std::fs::write(&jpeg, bytes).unwrap();
        assert!(!worth_compressing(&jpeg).unwrap());
        let noise = dir.path().join("noise");
        let mut state = 1u64;
        let random: Vec<u8> = (0..200_000)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 56) as u8
            })
            .collect();
        std::fs::write(&noise, random).unwrap();
        assert!(!worth_compressing(&noise).unwrap());
    }
}
