//! The hub's half of the protocol: an axum router that parses, limits and
//! validates every request and answers in the protocol's terms, calling a
//! [`Backend`] for everything that touches storage. The router has no
//! storage policy of its own; `dangan-hub` implements the backend.
//!
//! The router serves both protocol versions ([`ProtocolVersion`]): every
//! v1 endpoint under `/sync/v1` and `/sync/v2` alike, and the warehouse and
//! loan-request feeds under `/sync/v2` only.
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_compression::tokio::bufread::ZstdDecoder;
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::body::BodyDataStream;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, head, post};
use bytes::Bytes;
use dangan_shared::BlobId;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::io::StreamReader;
use tracing::Instrument;

use crate::ProtocolVersion;
use crate::jcs;
use crate::manifest::{is_hash_hex, validate_manifest};
use crate::wire::{
    BatchListing, BlobStatus, CommitRequest, DictionaryFeed, EnrolRequest, EnrolResponse,
    ErrorBody, ErrorCode, LoanRequestFeed, Manifest, OfferResponse, QueueReport, Receipt,
    WarehouseChange, WarehouseCursor, WarehouseEvents, header, is_feed_id,
};

/// Most batches one `GET /sync/v1/batches` page lists.
pub const BATCH_PAGE: u32 = 1000;
/// The most dictionary feed entries in one answer.
pub const FEED_PAGE: u32 = 200;
/// The most warehouse events one `POST /sync/v2/feeds/warehouse` may carry.
pub const WAREHOUSE_EVENTS_MAX: usize = 1000;
/// The most loan requests in one answer of the loan-request feed.
pub const LOAN_REQUEST_PAGE: u32 = 200;

/// What a warehouse location may be (`WarehouseChange::Location`).
pub const LOCATION_KINDS: [&str; 5] = ["room", "cabinet", "section", "shelf", "box"];
/// The states of a loan (`WarehouseChange::Loan`).
pub const LOAN_STATES: [&str; 5] = ["requested", "approved", "refused", "lent", "returned"];
/// The states of an inventory check (`WarehouseChange::Check`).
pub const CHECK_STATES: [&str; 2] = ["open", "finished"];

/// Who is calling: resolved from the `Authorization: Bearer` token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    pub node_id: String,
    pub district: String,
}

/// An error a backend returns; the router turns it into the status and
/// JSON body of its code.
///
/// Client errors (4xx) carry their message to the edge; server errors (5xx)
/// are logged with their message and answered with a generic one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
    /// For `OffsetMismatch`: the offset the hub holds (sent as `Upload-Offset`).
    pub offset: Option<u64>,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            offset: None,
        }
    }

    /// `409 offset_mismatch`: the hub holds `offset` bytes of the blob.
    pub fn offset_mismatch(offset: u64) -> Self {
        Self {
            code: ErrorCode::OffsetMismatch,
            message: format!("the hub holds {offset} bytes of this blob; send from there"),
            offset: Some(offset),
        }
    }

    /// `409 feed_gap`: the events of `feed` do not follow the hub's
    /// `cursor` (the first one after it is `first`).
    pub fn feed_gap(feed: &str, cursor: u64, first: u64) -> Self {
        Self::new(
            ErrorCode::FeedGap,
            format!(
                "the hub's cursor of warehouse feed {feed} is {cursor}; the events sent start \
                 at {first} after it, so send from {} on",
                cursor + 1
            ),
        )
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Malformed, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn storage_unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::StorageUnavailable, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for ProtocolError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status.is_server_error() {
            tracing::error!(code = %self.code, message = %self.message, "sync request failed");
            match self.code {
                ErrorCode::StorageUnavailable => "the hub's storage is unavailable; retry later",
                _ => "internal error at the hub; retry later",
            }
            .to_owned()
        } else {
            self.message
        };
        let body = ErrorBody {
            error: self.code,
            message,
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(offset) = self.offset {
            headers.insert(
                HeaderName::from_static(header::UPLOAD_OFFSET),
                HeaderValue::from(offset),
            );
        }
        response
    }
}

/// Limits the router enforces before a backend sees a request.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest manifest body accepted (after decompression), in bytes.
    pub max_manifest_bytes: u64,
    /// Largest blob accepted, in bytes.
    pub max_blob_bytes: u64,
    /// Largest other JSON body, in bytes.
    pub max_json_bytes: u64,
    /// Most missing blobs returned per page.
    pub missing_page: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_manifest_bytes: 256 << 20,
            max_blob_bytes: 2 << 30,
            max_json_bytes: 4 << 20,
            missing_page: 10_000,
        }
    }
}

/// Storage behind the sync endpoints. Every method is called only after the
/// router has authenticated the caller (except `enrol` and `authenticate`)
/// and validated the request's shape.
pub trait Backend: Send + Sync + 'static {
    /// Resolves a bearer token to a live node; `Unauthorized` otherwise.
    fn authenticate(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<NodeIdentity, ProtocolError>> + Send;

    /// Exchanges a one-time enrolment code for a node credential.
    fn enrol(
        &self,
        request: EnrolRequest,
    ) -> impl Future<Output = Result<EnrolResponse, ProtocolError>> + Send;

    /// Records the edge's queue (and the time of contact).
    fn report_queue(
        &self,
        node: &NodeIdentity,
        report: QueueReport,
    ) -> impl Future<Output = Result<(), ProtocolError>> + Send;

    /// Stages a manifest whose canonical encoding hashed to `manifest_hash`
    /// (the router has checked the hash, the format, the district and the
    /// manifest's internal consistency) and answers with the first
    /// `limit` missing blobs.
    fn offer(
        &self,
        node: &NodeIdentity,
        manifest: Manifest,
        manifest_hash: String,
        limit: u32,
    ) -> impl Future<Output = Result<OfferResponse, ProtocolError>> + Send;

    /// The next page of missing blobs of a staged offer, after `after`.
    fn missing(
        &self,
        node: &NodeIdentity,
        manifest_hash: &str,
        after: Option<BlobId>,
        limit: u32,
    ) -> impl Future<Output = Result<OfferResponse, ProtocolError>> + Send;

    /// What the hub holds of a blob (`NotFound` if nothing and not offered).
    fn blob_status(
        &self,
        node: &NodeIdentity,
        blob: BlobId,
    ) -> impl Future<Output = Result<BlobStatus, ProtocolError>> + Send;

    /// Appends `body` (already decompressed) to the blob's partial upload,
    /// which must currently hold exactly `offset` bytes, for a blob of
    /// `length` bytes in all. When the blob is complete, verifies its hash,
    /// makes it durable and marks it present; a mismatch discards the
    /// partial and returns `BlobHashMismatch`. A body cut short keeps what
    /// arrived (the edge resumes from the new offset).
    fn blob_write(
        &self,
        node: &NodeIdentity,
        blob: BlobId,
        offset: u64,
        length: u64,
        body: &mut BlobBody<'_>,
    ) -> impl Future<Output = Result<BlobStatus, ProtocolError>> + Send;

    /// Archives a staged manifest atomically and returns its signed receipt;
    /// the same manifest committed again returns the same receipt.
    fn commit(
        &self,
        node: &NodeIdentity,
        request: CommitRequest,
    ) -> impl Future<Output = Result<Receipt, ProtocolError>> + Send;

    /// The dictionary feed after cursor `after`: at most `limit` entries
    /// in `seq` order.
    fn dictionary_feed(
        &self,
        node: &NodeIdentity,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<DictionaryFeed, ProtocolError>> + Send;

    /// The node's district's batches at the hub, by name, after `after`.
    fn list_batches(
        &self,
        node: &NodeIdentity,
        after: Option<String>,
        limit: u32,
    ) -> impl Future<Output = Result<BatchListing, ProtocolError>> + Send;

    /// v2: how far the hub has applied the node's district's warehouse feed
    /// `feed` (a valid feed id); cursor 0 for a feed never seen.
    fn warehouse_cursor(
        &self,
        node: &NodeIdentity,
        feed: &str,
    ) -> impl Future<Output = Result<WarehouseCursor, ProtocolError>> + Send;

    /// v2: applies warehouse events to the node's district (never a district
    /// named in the body) and answers the new cursor. The router has checked
    /// the feed id, the count, and that the `seq`s start at 1 or later and
    /// rise by one. Events at or below the cursor are skipped; the first one
    /// after it must be cursor + 1 (else [`ProtocolError::feed_gap`]); the
    /// events and the new cursor are written in one transaction.
    fn warehouse_events(
        &self,
        node: &NodeIdentity,
        events: WarehouseEvents,
    ) -> impl Future<Output = Result<WarehouseCursor, ProtocolError>> + Send;

    /// v2: the hub's loan requests for originals of the node's district after
    /// cursor `after`: at most `limit` in `seq` order.
    fn loan_request_feed(
        &self,
        node: &NodeIdentity,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<LoanRequestFeed, ProtocolError>> + Send;
}

/// The routes of every protocol version over `backend`, at their absolute
/// paths, for the hub to merge into its app: the v1 endpoints under both
/// `/sync/v1` and `/sync/v2`, and the v2 feeds under `/sync/v2`.
pub fn router<B: Backend>(backend: Arc<B>, limits: Limits) -> Router {
    let shared = Arc::new(Shared { backend, limits });
    let mut router = Router::new();
    for version in ProtocolVersion::ALL {
        let at = |path: &str| format!("{}{path}", version.prefix());
        router = router
            .route(&at("/enrol"), post(enrol::<B>))
            .route(&at("/queue"), post(report_queue::<B>))
            .route(&at("/offers"), post(offer::<B>))
            .route(&at("/offers/{hash}/missing"), get(missing::<B>))
            .route(
                &at("/blobs/{id}"),
                head(blob_head::<B>).patch(blob_patch::<B>),
            )
            .route(&at("/commit"), post(commit::<B>))
            .route(&at("/batches"), get(list_batches::<B>))
            .route(&at("/feeds/dictionaries"), get(dictionary_feed::<B>));
        if version.has_warehouse_feeds() {
            router = router
                .route(
                    &at("/feeds/warehouse"),
                    get(warehouse_cursor::<B>).post(warehouse_events::<B>),
                )
                .route(&at("/feeds/loan-requests"), get(loan_request_feed::<B>));
        }
    }
    router.with_state(shared)
}

struct Shared<B> {
    backend: Arc<B>,
    limits: Limits,
}

type AppState<B> = State<Arc<Shared<B>>>;

async fn enrol<B: Backend>(
    State(shared): AppState<B>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<EnrolResponse>, ProtocolError> {
    let mut body = RawBody::new(body);
    let result = async {
        let request: EnrolRequest =
            read_json(&headers, &mut body, shared.limits.max_json_bytes).await?;
        Ok::<_, ProtocolError>(Json(shared.backend.enrol(request).await?))
    }
    .await;
    body.drain().await;
    result
}

async fn report_queue<B: Backend>(
    State(shared): AppState<B>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ProtocolError> {
    let mut body = RawBody::new(body);
    let result = async {
        let node = authenticate(&shared, &headers).await?;
        let report: QueueReport =
            read_json(&headers, &mut body, shared.limits.max_json_bytes).await?;
        shared.backend.report_queue(&node, report).await?;
        Ok::<_, ProtocolError>(StatusCode::NO_CONTENT)
    }
    .await;
    body.drain().await;
    result
}

async fn offer<B: Backend>(
    State(shared): AppState<B>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<OfferResponse>, ProtocolError> {
    let mut body = RawBody::new(body);
    let result = async {
        let node = authenticate(&shared, &headers).await?;
        let claimed_hash = header_text(&headers, header::MANIFEST_HASH)?
            .ok_or_else(|| ProtocolError::malformed("the Manifest-Hash header is required"))?;
        if !is_hash_hex(claimed_hash) {
            return Err(ProtocolError::malformed(
                "Manifest-Hash must be 64 lowercase hex digits",
            ));
        }
        let claimed_hash = claimed_hash.to_owned();
        let bytes = read_body(
            &headers,
            &mut body,
            shared.limits.max_manifest_bytes,
            "manifest",
        )
        .await?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|error| ProtocolError::malformed(format!("manifest: {error}")))?;
        let canonical = jcs::to_canonical(&manifest).map_err(|error| {
            ProtocolError::new(ErrorCode::InvalidManifest, format!("manifest: {error}"))
        })?;
        if canonical != bytes {
            return Err(ProtocolError::new(
                ErrorCode::InvalidManifest,
                "the manifest is not in canonical form (RFC 8785)",
            ));
        }
        drop(canonical);
        let hash = blake3::hash(&bytes).to_hex().to_string();
        drop(bytes);
        if hash != claimed_hash {
            return Err(ProtocolError::new(
                ErrorCode::InvalidManifest,
                format!("the manifest hashes to {hash}, not to the Manifest-Hash {claimed_hash}"),
            ));
        }
        validate_manifest(&manifest)
            .map_err(|message| ProtocolError::new(ErrorCode::InvalidManifest, message))?;
        if manifest.district != node.district {
            return Err(ProtocolError::forbidden(format!(
                "this node writes district {}'s batches, not district {}'s",
                node.district, manifest.district
            )));
        }
        let span = tracing::info_span!(
            "offer",
            node = %node.node_id,
            batch = %manifest.batch,
            manifest = %&hash[..12],
            pages = manifest.pages,
        );
        let response = shared
            .backend
            .offer(&node, manifest, hash, shared.limits.missing_page)
            .instrument(span)
            .await?;
        Ok::<_, ProtocolError>(Json(response))
    }
    .await;
    body.drain().await;
    result
}

#[derive(Deserialize)]
struct PageQuery {
    after: Option<String>,
    limit: Option<u32>,
}

async fn missing<B: Backend>(
    State(shared): AppState<B>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<OfferResponse>, ProtocolError> {
    let node = authenticate(&shared, &headers).await?;
    let Path(hash) = path.map_err(|rejection| ProtocolError::malformed(rejection.body_text()))?;
    if !is_hash_hex(&hash) {
        return Err(ProtocolError::malformed(
            "the manifest hash must be 64 lowercase hex digits",
        ));
    }
    let Query(query) =
        query.map_err(|rejection| ProtocolError::malformed(rejection.body_text()))?;
    let after = query
        .after
        .filter(|after| !after.is_empty())
        .map(|after| parse_blob_id(&after))
        .transpose()?;
    let limit = page_limit(query.limit, shared.limits.missing_page);
    let response = shared.backend.missing(&node, &hash, after, limit).await?;
    Ok(Json(response))
}

/// `HEAD` has no body, so its errors are a status alone.
async fn blob_head<B: Backend>(
    State(shared): AppState<B>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let status = async {
        let node = authenticate(&shared, &headers).await?;
        let blob = blob_from_path(path)?;
        shared.backend.blob_status(&node, blob).await
    }
    .await;
    match status {
        Ok(status) => blob_status_response(StatusCode::OK, status),
        Err(error) => {
            let mut response = error.status().into_response();
            if error.status().is_server_error() {
                tracing::error!(code = %error.code, message = %error.message, "blob status failed");
            }
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
    }
}

async fn blob_patch<B: Backend>(
    State(shared): AppState<B>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Response, ProtocolError> {
    let mut body = RawBody::new(body);
    let result = async {
        let node = authenticate(&shared, &headers).await?;
        let blob = blob_from_path(path)?;
        let offset = header_u64(&headers, header::UPLOAD_OFFSET)?
            .ok_or_else(|| ProtocolError::malformed("the Upload-Offset header is required"))?;
        let length = header_u64(&headers, header::UPLOAD_LENGTH)?
            .ok_or_else(|| ProtocolError::malformed("the Upload-Length header is required"))?;
        if length > shared.limits.max_blob_bytes {
            return Err(ProtocolError::new(
                ErrorCode::TooLarge,
                format!(
                    "a blob of {length} bytes is over the hub's limit of {} bytes",
                    shared.limits.max_blob_bytes
                ),
            ));
        }
        if offset > length {
            return Err(ProtocolError::malformed(format!(
                "Upload-Offset {offset} is beyond Upload-Length {length}"
            )));
        }
        let content_type = header_text(&headers, CONTENT_TYPE.as_str())?.unwrap_or_default();
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if !media_type.eq_ignore_ascii_case(header::OFFSET_OCTET_STREAM) {
            return Err(ProtocolError::new(
                ErrorCode::UnsupportedEncoding,
                format!(
                    "a blob body's Content-Type must be {}, not {content_type:?}",
                    header::OFFSET_OCTET_STREAM
                ),
            ));
        }
        let mut blob_body = blob_body(&headers, &mut body, length - offset)?;
        let span = tracing::info_span!(
            "blob_write",
            node = %node.node_id,
            blob = %blob.short(),
            offset,
            length,
        );
        let written = shared
            .backend
            .blob_write(&node, blob, offset, length, &mut blob_body)
            .instrument(span)
            .await;
        // A broken body explains whatever the backend made of it: the hub kept
        // what arrived, and `HEAD` tells the edge where to resume.
        if blob_body.overflowed() {
            return Err(ProtocolError::malformed(format!(
                "the body holds more than Upload-Length - Upload-Offset = {} bytes",
                length - offset
            )));
        }
        if let Some(error) = blob_body.error() {
            return Err(ProtocolError::malformed(format!(
                "the body broke off: {error}"
            )));
        }
        Ok::<_, ProtocolError>(blob_status_response(StatusCode::NO_CONTENT, written?))
    }
    .await;
    body.drain().await;
    result
}

async fn commit<B: Backend>(
    State(shared): AppState<B>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Receipt>, ProtocolError> {
    let mut body = RawBody::new(body);
    let result = async {
        let node = authenticate(&shared, &headers).await?;
        let request: CommitRequest =
            read_json(&headers, &mut body, shared.limits.max_json_bytes).await?;
        if !is_hash_hex(&request.manifest_hash) {
            return Err(ProtocolError::malformed(
                "manifest_hash must be 64 lowercase hex digits",
            ));
        }
        Ok::<_, ProtocolError>(Json(shared.backend.commit(&node, request).await?))
    }
    .await;
    body.drain().await;
    result
}

async fn list_batches<B: Backend>(
    State(shared): AppState<B>,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<BatchListing>, ProtocolError> {
    let node = authenticate(&shared, &headers).await?;
    let Query(query) =
        query.map_err(|rejection| ProtocolError::malformed(rejection.body_text()))?;
    let after = query.after.filter(|after| !after.is_empty());
    let limit = page_limit(query.limit, BATCH_PAGE);
    Ok(Json(
        shared.backend.list_batches(&node, after, limit).await?,
    ))
}

#[derive(Deserialize)]
struct FeedQuery {
    after: Option<u64>,
    limit: Option<u32>,
}

async fn dictionary_feed<B: Backend>(
    State(shared): AppState<B>,
    headers: HeaderMap,
    query: Result<Query<FeedQuery>, QueryRejection>,
) -> Result<Json<DictionaryFeed>, ProtocolError> {
    let node = authenticate(&shared, &headers).await?;
    let Query(query) =
        query.map_err(|rejection| ProtocolError::malformed(rejection.body_text()))?;
    let limit = page_limit(query.limit, FEED_PAGE);
    Ok(Json(
        shared
            .backend
            .dictionary_feed(&node, query.after.unwrap_or(0), limit)
            .await?,
    ))
}

#[derive(Deserialize)]
struct WarehouseQuery {
    feed: Option<String>,
}

fn check_feed_id(feed: &str) -> Result<(), ProtocolError> {
    if is_feed_id(feed) {
        Ok(())
    } else {
        Err(ProtocolError::malformed(format!(
            "a warehouse feed id is 1 to {} characters of 0-9, a-z and -, not {feed:?}",
            crate::wire::FEED_ID_MAX
        )))
    }
}

async fn warehouse_cursor<B: Backend>(
    State(shared): AppState<B>,
    headers: HeaderMap,
    query: Result<Query<WarehouseQuery>, QueryRejection>,
) -> Result<Json<WarehouseCursor>, ProtocolError> {
    let node = authenticate(&shared, &headers).await?;
    let Query(query) =
        query.map_err(|rejection| ProtocolError::malformed(rejection.body_text()))?;
    let feed = query
        .feed
        .ok_or_else(|| ProtocolError::malformed("the feed parameter is required"))?;
    check_feed_id(&feed)?;
    Ok(Json(shared.backend.warehouse_cursor(&node, &feed).await?))
}

/// The checks of a warehouse push that need no storage: the feed id, the
/// count, `seq`s from 1 up rising by exactly one, and the kinds and states
/// the hub's materialised view understands.
fn validate_warehouse_events(events: &WarehouseEvents) -> Result<(), ProtocolError> {
    check_feed_id(&events.feed)?;
    if events.events.len() > WAREHOUSE_EVENTS_MAX {
        return Err(ProtocolError::new(
            ErrorCode::TooLarge,
            format!(
                "{} warehouse events in one request; send at most {WAREHOUSE_EVENTS_MAX}",
                events.events.len()
            ),
        ));
    }
    let mut previous: Option<u64> = None;
    for event in &events.events {
        if event.seq == 0 {
            return Err(ProtocolError::malformed("warehouse event seqs start at 1"));
        }
        if let Some(previous) = previous
            && previous.checked_add(1) != Some(event.seq)
        {
            return Err(ProtocolError::malformed(format!(
                "warehouse event {} follows {previous}: seqs must rise by exactly one",
                event.seq
            )));
        }
        previous = Some(event.seq);
        let refuse = |what: &str| {
            Err(ProtocolError::malformed(format!(
                "warehouse event {}: {what}",
                event.seq
            )))
        };
        match &event.change {
            WarehouseChange::Location {
                code,
                location_kind,
                ..
            } => {
                if code.is_empty() {
                    return refuse("a location needs a code");
                }
                if !LOCATION_KINDS.contains(&location_kind.as_str()) {
                    return refuse(&format!(
                        "location_kind is one of {LOCATION_KINDS:?}, not {location_kind:?}"
                    ));
                }
            }
            WarehouseChange::Volume { code, .. } if code.is_empty() => {
                return refuse("a volume needs a code");
            }
            WarehouseChange::FileVolume { batch, .. } if batch.is_empty() => {
                return refuse("a file's volume needs its batch");
            }
            WarehouseChange::Loan { item, state, .. } => {
                if item.is_empty() {
                    return refuse("a loan needs an item");
                }
                if !LOAN_STATES.contains(&state.as_str()) {
                    return refuse(&format!(
                        "a loan's state is one of {LOAN_STATES:?}, not {state:?}"
                    ));
                }
            }
            WarehouseChange::Check { state, .. } if !CHECK_STATES.contains(&state.as_str()) => {
                return refuse(&format!(
                    "a check's state is one of {CHECK_STATES:?}, not {state:?}"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

async fn warehouse_events<B: Backend>(
    State(shared): AppState<B>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<WarehouseCursor>, ProtocolError> {
    let mut body = RawBody::new(body);
    let result = async {
        let node = authenticate(&shared, &headers).await?;
        let events: WarehouseEvents =
            read_json(&headers, &mut body, shared.limits.max_json_bytes).await?;
        validate_warehouse_events(&events)?;
        let span = tracing::info_span!(
            "warehouse_events",
            node = %node.node_id,
            feed = %events.feed,
            events = events.events.len(),
        );
        let cursor = shared
            .backend
            .warehouse_events(&node, events)
            .instrument(span)
            .await?;
        Ok::<_, ProtocolError>(Json(cursor))
    }
    .await;
    body.drain().await;
    result
}

async fn loan_request_feed<B: Backend>(
    State(shared): AppState<B>,
    headers: HeaderMap,
    query: Result<Query<FeedQuery>, QueryRejection>,
) -> Result<Json<LoanRequestFeed>, ProtocolError> {
    let node = authenticate(&shared, &headers).await?;
    let Query(query) =
        query.map_err(|rejection| ProtocolError::malformed(rejection.body_text()))?;
    let limit = page_limit(query.limit, LOAN_REQUEST_PAGE);
    Ok(Json(
        shared
            .backend
            .loan_request_feed(&node, query.after.unwrap_or(0), limit)
            .await?,
    ))
}

/// Resolves `Authorization: Bearer <token>` through the backend.
async fn authenticate<B: Backend>(
    shared: &Shared<B>,
    headers: &HeaderMap,
) -> Result<NodeIdentity, ProtocolError> {
    let value = headers.get(AUTHORIZATION).ok_or_else(|| {
        ProtocolError::unauthorized("an Authorization: Bearer credential is required")
    })?;
    let token = value
        .to_str()
        .ok()
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            ProtocolError::unauthorized("the Authorization header must be Bearer <token>")
        })?;
    shared.backend.authenticate(token).await
}

/// A page size the caller asked for, within 1..=`most`.
fn page_limit(requested: Option<u32>, most: u32) -> u32 {
    requested.unwrap_or(most).min(most).max(1)
}

fn parse_blob_id(text: &str) -> Result<BlobId, ProtocolError> {
    text.parse()
        .map_err(|error| ProtocolError::malformed(format!("{error}")))
}

fn blob_from_path(path: Result<Path<String>, PathRejection>) -> Result<BlobId, ProtocolError> {
    let Path(id) = path.map_err(|rejection| ProtocolError::malformed(rejection.body_text()))?;
    parse_blob_id(&id)
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ProtocolError> {
    headers
        .get(name)
        .map(|value| {
            value
                .to_str()
                .map(str::trim)
                .map_err(|_| ProtocolError::malformed(format!("the {name} header is not text")))
        })
        .transpose()
}

/// A header holding a decimal `u64`, if present.
fn header_u64(headers: &HeaderMap, name: &str) -> Result<Option<u64>, ProtocolError> {
    header_text(headers, name)?
        .map(|text| {
            if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(ProtocolError::malformed(format!(
                    "the {name} header must be a decimal number, not {text:?}"
                )));
            }
            text.parse::<u64>()
                .map_err(|_| ProtocolError::malformed(format!("the {name} header is out of range")))
        })
        .transpose()
}

fn blob_status_response(code: StatusCode, status: BlobStatus) -> Response {
    let mut response = code.into_response();
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        HeaderName::from_static(header::UPLOAD_OFFSET),
        HeaderValue::from(status.offset),
    );
    if let Some(length) = status.length {
        headers.insert(
            HeaderName::from_static(header::UPLOAD_LENGTH),
            HeaderValue::from(length),
        );
    }
    headers.insert(
        HeaderName::from_static(header::BLOB_COMPLETE),
        HeaderValue::from_static(if status.complete { "true" } else { "false" }),
    );
    response
}

/// Most bytes of an unread request body drained before an early answer.
const DRAIN_BYTES: usize = 8 << 20;
/// Longest time spent draining.
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// A request body as a stream of raw (possibly compressed) chunks.
///
/// A handler that answers before reading the whole body drains the rest
/// (within bounds): HTTP/1 clients write the whole body before they read
/// the answer, and a connection closed on unread data resets, losing the
/// answer (a `409` with the offset to resume from, a `413`).
struct RawBody(BodyDataStream);

impl RawBody {
    fn new(body: Body) -> Self {
        Self(body.into_data_stream())
    }

    async fn drain(&mut self) {
        let drain = async {
            let mut drained = 0;
            while let Some(Ok(chunk)) = self.0.next().await {
                drained += chunk.len();
                if drained > DRAIN_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    }
}

impl Stream for RawBody {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.0)
            .poll_next(cx)
            .map(|item| item.map(|chunk| chunk.map_err(io::Error::other)))
    }
}

type BodyReader<'a> = Pin<Box<dyn AsyncRead + Send + 'a>>;

/// Size of the chunks a zstd body is decoded into.
const DECODED_CHUNK: usize = 256 << 10;

/// Whether a body is zstd-compressed (`Content-Encoding: zstd`) or sent as
/// is; any other encoding is refused.
fn is_zstd(headers: &HeaderMap) -> Result<bool, ProtocolError> {
    let encoding = header_text(headers, CONTENT_ENCODING.as_str())?.unwrap_or_default();
    if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
        Ok(false)
    } else if encoding.eq_ignore_ascii_case("zstd") {
        Ok(true)
    } else {
        Err(ProtocolError::new(
            ErrorCode::UnsupportedEncoding,
            format!("Content-Encoding {encoding:?} is not supported; send zstd or nothing"),
        ))
    }
}

fn zstd_decoder(body: &mut RawBody) -> ZstdDecoder<StreamReader<&mut RawBody, Bytes>> {
    let mut decoder = ZstdDecoder::new(StreamReader::new(body));
    decoder.multiple_members(true);
    decoder
}

/// The request body as a byte stream, decompressed when it is
/// `Content-Encoding: zstd`; never buffered whole.
fn body_reader<'a>(
    headers: &HeaderMap,
    body: &'a mut RawBody,
) -> Result<BodyReader<'a>, ProtocolError> {
    Ok(if is_zstd(headers)? {
        Box::pin(zstd_decoder(body))
    } else {
        Box::pin(StreamReader::new(body))
    })
}

/// A blob upload's body as [`BlobBody`] chunks: the request's own buffers
/// when it is sent as is (no copy), else decoded from zstd.
fn blob_body<'a>(
    headers: &HeaderMap,
    body: &'a mut RawBody,
    remaining: u64,
) -> Result<BlobBody<'a>, ProtocolError> {
    Ok(if is_zstd(headers)? {
        BlobBody::new(
            tokio_util::io::ReaderStream::with_capacity(zstd_decoder(body), DECODED_CHUNK),
            remaining,
        )
    } else {
        BlobBody::new(body, remaining)
    })
}

/// Reads a whole (decompressed) body of at most `limit` bytes.
async fn read_body(
    headers: &HeaderMap,
    body: &mut RawBody,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>, ProtocolError> {
    let too_large = || {
        ProtocolError::new(
            ErrorCode::TooLarge,
            format!("the {what} is over the hub's limit of {limit} bytes"),
        )
    };
    if !is_zstd(headers)?
        && header_u64(headers, CONTENT_LENGTH.as_str())?.is_some_and(|length| length > limit)
    {
        return Err(too_large());
    }
    let reader = body_reader(headers, body)?;
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .await
        .map_err(|error| ProtocolError::malformed(format!("reading the {what}: {error}")))?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &mut RawBody,
    limit: u64,
) -> Result<T, ProtocolError> {
    let bytes = read_body(headers, body, limit, "body").await?;
    serde_json::from_slice(&bytes)
        .map_err(|error| ProtocolError::malformed(format!("body: {error}")))
}

/// The body of a blob upload, for [`Backend::blob_write`]: the bytes as
/// they arrive, in the chunks they arrive in, at most `remaining` bytes in
/// all. A body that goes on past them fails once they are taken (and
/// [`BlobBody::overflowed`] says so) rather than letting a backend take a
/// longer body for a complete blob. A read error is remembered
/// ([`BlobBody::error`]), so the router can answer for it.
pub struct BlobBody<'a> {
    chunks: Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'a>>,
    remaining: u64,
    overflowed: bool,
    error: Option<String>,
}

impl<'a> BlobBody<'a> {
    /// A body of `remaining` bytes from a stream of chunks.
    pub fn new(chunks: impl Stream<Item = io::Result<Bytes>> + Send + 'a, remaining: u64) -> Self {
        Self {
            chunks: Box::pin(chunks),
            remaining,
            overflowed: false,
            error: None,
        }
    }

    /// The next chunk (never empty), or `None` where the body ends. The
    /// chunk that reaches `remaining` is cut there; asking for one more
    /// then fails with `InvalidData` if the body goes on.
    pub async fn chunk(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            if self.overflowed {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the body is longer than Upload-Length - Upload-Offset",
                ));
            }
            match self.chunks.next().await {
                None => return Ok(None),
                Some(Err(error)) => {
                    if self.error.is_none() {
                        self.error = Some(error.to_string());
                    }
                    return Err(error);
                }
                Some(Ok(chunk)) if chunk.is_empty() => {}
                Some(Ok(mut chunk)) => {
                    if self.remaining == 0 {
                        self.overflowed = true;
                        continue;
                    }
                    if chunk.len() as u64 > self.remaining {
                        chunk.truncate(self.remaining as usize);
                        self.overflowed = true;
                    }
                    self.remaining -= chunk.len() as u64;
                    return Ok(Some(chunk));
                }
            }
        }
    }

    /// A body of `remaining` bytes read from `reader` (in tests and tools;
    /// the router hands over the request's own chunks).
    pub fn from_reader(reader: impl AsyncRead + Send + 'a, remaining: u64) -> Self {
        Self::new(tokio_util::io::ReaderStream::new(reader), remaining)
    }

    /// Bytes still to come before the body must end.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Whether the body held more bytes than it was allowed.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// The first read error, if the body broke off.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// Resolves on Ctrl-C or SIGTERM: the graceful-shutdown trigger of the
/// hub's server and the edge's background loop. Where a signal cannot be
/// watched, that signal never fires (rather than stopping at once).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(pieces: Vec<io::Result<&'static [u8]>>) -> impl Stream<Item = io::Result<Bytes>> {
        futures_util::stream::iter(
            pieces
                .into_iter()
                .map(|piece| piece.map(Bytes::from_static)),
        )
    }

    #[tokio::test]
    async fn a_blob_body_passes_its_bytes_and_refuses_one_more() {
        let mut body = BlobBody::new(chunks(vec![Ok(b"abc"), Ok(b""), Ok(b"defg")]), 5);
        assert_eq!(body.chunk().await.unwrap().unwrap(), &b"abc"[..]);
        // The chunk that reaches the end is cut there ...
        assert_eq!(body.chunk().await.unwrap().unwrap(), &b"de"[..]);
        assert_eq!(body.remaining(), 0);
        // ... and the body that goes on fails.
        let refused = body.chunk().await.unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::InvalidData);
        assert!(body.overflowed());
        assert_eq!(body.error(), None);

        // Exactly as long as allowed: it simply ends.
        let mut body = BlobBody::new(chunks(vec![Ok(b"abc")]), 3);
        assert_eq!(body.chunk().await.unwrap().unwrap(), &b"abc"[..]);
        assert!(body.chunk().await.unwrap().is_none());
        assert!(!body.overflowed());

        // A body that breaks off says why, and what came before is kept.
        let mut body = BlobBody::new(
            chunks(vec![Ok(b"ab"), Err(io::Error::other("connection reset"))]),
            10,
        );
        assert_eq!(body.chunk().await.unwrap().unwrap(), &b"ab"[..]);
        assert!(body.chunk().await.is_err());
        assert_eq!(body.error(), Some("connection reset"));
        assert_eq!(body.remaining(), 8);
        assert!(!body.overflowed());
    }
}
