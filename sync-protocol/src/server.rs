//! The hub's half of the protocol: an axum router that parses, limits and
//! validates every request and answers in the protocol's terms, calling a
//! [`Backend`] for everything that touches storage. The router has no
//! storage policy of its own; `dangan-hub` implements the backend.
use std::future::Future;

use dangan_shared::BlobId;
use tokio::io::AsyncRead;

use crate::wire::{
    BatchListing, BlobStatus, CommitRequest, EnrolRequest, EnrolResponse, ErrorCode, Manifest,
    OfferResponse, QueueReport, Receipt,
};

/// Who is calling: resolved from the `Authorization: Bearer` token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    pub node_id: String,
    pub district: String,
}

/// An error a backend returns; the router turns it into the status and
/// JSON body of its code.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
    /// For `OffsetMismatch`: the offset the hub holds (sent as `Upload-Offset`).
    pub offset: Option<u64>,
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
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> impl Future<Output = Result<BlobStatus, ProtocolError>> + Send;

    /// Archives a staged manifest atomically and returns its signed receipt;
    /// the same manifest committed again returns the same receipt.
    fn commit(
        &self,
        node: &NodeIdentity,
        request: CommitRequest,
    ) -> impl Future<Output = Result<Receipt, ProtocolError>> + Send;

    /// The node's district's batches at the hub, by name, after `after`.
    fn list_batches(
        &self,
        node: &NodeIdentity,
        after: Option<String>,
        limit: u32,
    ) -> impl Future<Output = Result<BatchListing, ProtocolError>> + Send;
}

/// The `/sync/v1` routes over `backend`. (Skeleton: routes land with the protocol crate.)
pub fn router<B: Backend>(backend: std::sync::Arc<B>, limits: Limits) -> axum::Router {
    let _ = (backend, limits);
    axum::Router::new()
}
