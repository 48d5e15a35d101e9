//! Wire types of `/sync/v1` and `/sync/v2`. Every JSON body of the protocol
//! is one of these; v2 adds the warehouse and loan-request feeds' types at
//! the end (before the header names).
//!
//! Manifest and receipt structs declare their fields in sorted key order and
//! carry no floating-point numbers, so that serde_json's compact output of
//! them *is* their RFC 8785 canonical form (see [`crate::jcs`]).
use dangan_shared::BlobId;
use serde::{Deserialize, Serialize};

/// `format` of every manifest this version writes and accepts.
pub const MANIFEST_FORMAT: &str = "dangan-manifest/1";
/// `format` of every receipt body this version writes and accepts.
pub const RECEIPT_FORMAT: &str = "dangan-receipt/1";

/// Everything the hub archives for one batch: its business files, their
/// metadata as values, and every page with the blob that holds its image.
///
/// The manifest is a pure function of the accepted batch at the edge, so it
/// hashes the same however often it is rebuilt.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// When the batch was accepted at the edge (RFC 3339, UTC).
    pub accepted_at: String,
    /// The batch name, unique within its district.
    pub batch: String,
    pub business_files: Vec<ManifestFile>,
    /// The batch's business type code, if the operator gave one.
    pub business_type: Option<String>,
    /// Sum of the distinct blobs' sizes.
    pub bytes: u64,
    /// Code of the district that owns the batch.
    pub district: String,
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// Number of pages over all business files.
    pub pages: u64,
}

/// One business file (业务件) of a batch, with its metadata as values.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// 业务流水号, or null for pages before the first number in a batch.
    pub business_number: Option<String>,
    pub business_type: Option<String>,
    /// 档案门类 code (management, collection, records, payment, other).
    pub category: Option<String>,
    /// Business date (YYYY-MM-DD).
    pub date: Option<String>,
    pub employer_id: Option<String>,
    /// Code of the organisation that owns the business file.
    pub organisation: String,
    pub pages: Vec<ManifestPage>,
    pub person_id: Option<String>,
    pub person_name: Option<String>,
    /// `permanent` or a number of years such as `30y`.
    pub retention: Option<String>,
    /// Position of the business file in the batch, from 1.
    pub seq: u32,
}

/// One scanned page.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ManifestPage {
    pub barcodes: Vec<ManifestBarcode>,
    pub blank: bool,
    pub blob: BlobId,
    /// `gray`, `colour` or `bilevel`.
    pub colour: String,
    pub dpi: Option<u32>,
    /// Format of the blob's bytes (`jpeg`, `png`, `tiff`, `pdf`, ...).
    pub format: String,
    /// Page within a multi-page source file, from 0.
    pub frame: u32,
    pub height: u32,
    pub separator: bool,
    /// Position of the page in the batch, from 1.
    pub seq: u32,
    /// Size of the blob in bytes.
    pub size: u64,
    /// The source file the page came from, as recorded at the edge.
    pub source: String,
    pub width: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ManifestBarcode {
    pub format: String,
    pub text: String,
}

/// `POST /sync/v1/enrol`: a new edge exchanges its one-time code.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    pub code: String,
    /// The district the edge was initialised for; must match the code's.
    pub district: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct EnrolResponse {
    pub node_id: String,
    /// The node's credential, shown once; the hub keeps only its hash.
    pub token: String,
    pub district: String,
    /// Identifies the hub (receipts name it).
    pub hub_id: String,
    /// The hub's Ed25519 public key, 64 hex digits; receipts verify with it.
    pub hub_key: String,
}

/// The state of a batch as the edge sees it, reported on every contact.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum EdgeBatchState {
    /// Accepted, waiting for its turn (or for a sync window).
    Queued,
    /// Offered to the hub; blobs or the commit still outstanding.
    Syncing,
    /// A verified receipt is held.
    Archived,
}

/// `POST /sync/v1/queue`: the edge's view of every batch that is accepted or later.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QueueReport {
    pub batches: Vec<QueuedBatch>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QueuedBatch {
    pub batch: String,
    pub state: EdgeBatchState,
    /// Known once the batch has been offered.
    pub manifest_hash: Option<String>,
    pub pages: u64,
    pub bytes: u64,
    /// The last sync error for this batch, as the edge logged it.
    pub last_error: Option<String>,
}

/// A blob the hub still needs, and how much of it the hub already holds.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct MissingBlob {
    pub blob: BlobId,
    pub size: u64,
    /// Bytes of a partial upload the hub holds; the edge resumes from here.
    pub offset: u64,
}

/// Answer to an offer (`POST /sync/v1/offers`) and to each page of
/// `GET /sync/v1/offers/{hash}/missing`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct OfferResponse {
    pub manifest_hash: String,
    pub batch: String,
    /// True when this manifest is already committed: nothing to send, commit
    /// again to get the receipt.
    pub committed: bool,
    /// Missing blobs in blob-id order, at most one page of them.
    pub missing: Vec<MissingBlob>,
    /// Pass as `after` to get the next page; null on the last page.
    pub next: Option<BlobId>,
    /// How many blobs are missing in all.
    pub missing_total: u64,
}

/// `HEAD`/`PATCH /sync/v1/blobs/{id}` state, carried in headers
/// (`Upload-Offset`, `Upload-Length`, `Blob-Complete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobStatus {
    /// Bytes held (all of them when complete).
    pub offset: u64,
    /// Total length, when the hub knows it.
    pub length: Option<u64>,
    /// Present, verified and durable.
    pub complete: bool,
}

/// `POST /sync/v1/commit`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    pub batch: String,
    pub manifest_hash: String,
}

/// What the hub signs when it archives a batch.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReceiptBody {
    pub batch: String,
    /// Distinct blobs in the batch.
    pub blobs: u64,
    /// Sum of the distinct blobs' sizes.
    pub bytes: u64,
    /// When the batch was committed (RFC 3339, UTC).
    pub committed_at: String,
    pub district: String,
    /// Always [`RECEIPT_FORMAT`].
    pub format: String,
    pub hub_id: String,
    pub manifest_hash: String,
    /// The node that committed it.
    pub node_id: String,
    pub pages: u64,
}

/// A receipt: the body and the hub's Ed25519 signature over the body's
/// canonical encoding, as 128 hex digits.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub body: ReceiptBody,
    pub signature: String,
}

/// The hub's state of one batch, in `GET /sync/v1/batches` (the node's own
/// district) and in the administrators' reconciliation.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ReconcileState {
    /// Reported by the edge, not yet offered.
    Queued,
    /// Offered; blobs or the commit outstanding.
    InFlight,
    /// Committed at the hub with the manifest hash the edge reports.
    Archived,
    /// The hub's archived manifest hash differs from the edge's.
    Divergent,
}

/// One page of `GET /sync/v1/batches?after=NAME&limit=N`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BatchListing {
    pub district: String,
    pub batches: Vec<ListedBatch>,
    pub next: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ListedBatch {
    pub batch: String,
    pub state: ReconcileState,
    /// The hub's committed (or offered) manifest hash.
    pub manifest_hash: Option<String>,
    pub committed_at: Option<String>,
}

/// One page of `GET /sync/v1/feeds/dictionaries?after=SEQ&limit=N`: the
/// dictionary and template versions the hub published after `SEQ`, in
/// publication order.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct DictionaryFeed {
    pub entries: Vec<FeedEntry>,
    /// The cursor to ask from next: the last entry's `seq`, or the `after`
    /// asked for when there was nothing new.
    pub next: u64,
    /// Whether more entries follow (ask again from `next` at once).
    pub more: bool,
}

/// One published version: applying it twice changes nothing.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct FeedEntry {
    /// Position in the hub's feed (strictly increasing).
    pub seq: u64,
    /// The hub's version number of this dictionary or business type.
    pub version: u32,
    pub recorded_at: String,
    #[serde(flatten)]
    pub item: FeedItem,
}

/// What a feed entry publishes.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeedItem {
    /// A business type's template.
    Template {
        template: dangan_shared::template::Template,
    },
    /// A whole dictionary (categories, retentions or defects).
    Dictionary {
        dictionary: dangan_shared::dictionary::Dictionary,
    },
}

/// Body of every error response: a stable machine-readable code and a
/// human-readable message (English; clients translate by code).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
}

/// Every error the protocol can answer with, and its HTTP status.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: not JSON, wrong fields, bad header, bad blob id.
    Malformed,
    /// 401: no credential, unknown or revoked credential.
    Unauthorized,
    /// 403: a node writing another district's batch; an enrolment code for another district.
    Forbidden,
    /// 404: unknown offer, blob not part of any open offer of this node.
    NotFound,
    /// 409: `Upload-Offset` is not what the hub holds (it answers with the right one).
    OffsetMismatch,
    /// 409: another upload of the same blob is running; retry later.
    BlobBusy,
    /// 409: commit before every blob is present.
    MissingBlobs,
    /// 409: the district already archived this batch with a different manifest.
    BatchConflict,
    /// 409: warehouse events that do not follow the hub's cursor of their
    /// feed (the answer carries the cursor; send from there).
    FeedGap,
    /// 413: manifest or blob over the hub's limit.
    TooLarge,
    /// 415: unknown `Content-Encoding`, or a blob body whose `Content-Type`
    /// is not `application/offset+octet-stream`.
    UnsupportedEncoding,
    /// 422: the manifest's hash is not the hash of its canonical encoding,
    /// or its content is inconsistent (counts, sums, duplicate sequence numbers).
    InvalidManifest,
    /// 422: the uploaded bytes do not hash to the blob id; the partial is
    /// discarded and the edge sends the blob again from offset 0.
    BlobHashMismatch,
    /// 503: the hub's storage failed (disk full, object store down); retry later.
    StorageUnavailable,
    /// 500: a bug; retry later.
    Internal,
}

impl ErrorCode {
    /// The HTTP status every response with this code carries.
    pub fn status(self) -> u16 {
        match self {
            Self::Malformed => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::OffsetMismatch
            | Self::BlobBusy
            | Self::MissingBlobs
            | Self::BatchConflict
            | Self::FeedGap => 409,
            Self::TooLarge => 413,
            Self::UnsupportedEncoding => 415,
            Self::InvalidManifest | Self::BlobHashMismatch => 422,
            Self::StorageUnavailable => 503,
            Self::Internal => 500,
        }
    }

    /// The code as it appears on the wire (`offset_mismatch`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::OffsetMismatch => "offset_mismatch",
            Self::BlobBusy => "blob_busy",
            Self::MissingBlobs => "missing_blobs",
            Self::BatchConflict => "batch_conflict",
            Self::FeedGap => "feed_gap",
            Self::TooLarge => "too_large",
            Self::UnsupportedEncoding => "unsupported_encoding",
            Self::InvalidManifest => "invalid_manifest",
            Self::BlobHashMismatch => "blob_hash_mismatch",
            Self::StorageUnavailable => "storage_unavailable",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `GET /sync/v2/feeds/warehouse?feed=ID` and the answer to every
/// `POST /sync/v2/feeds/warehouse`: how far the hub has applied one edge
/// feed. The edge sends the events after `cursor` next.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WarehouseCursor {
    /// The feed's id (the edge database's random feed id).
    pub feed: String,
    /// The `seq` of the last event the hub applied; 0 when none.
    pub cursor: u64,
}

/// `POST /sync/v2/feeds/warehouse`: the next events of the edge's warehouse
/// feed, in `seq` order without gaps. Events at or below the hub's cursor
/// are skipped (sending again is harmless); a gap after it is refused with
/// `feed_gap` and the hub's cursor.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct WarehouseEvents {
    /// The feed's id: random, made once per edge database, so a rebuilt
    /// edge's feed (which counts from 1 again) is never mistaken for the
    /// one the hub has applied.
    pub feed: String,
    pub events: Vec<WarehouseEvent>,
}

/// One change in an edge's warehouse (库房): applying it twice changes
/// nothing, and applying a feed's events in order gives the edge's state.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct WarehouseEvent {
    /// Position in the edge's feed, from 1, strictly increasing by one.
    pub seq: u64,
    /// When the change happened at the edge (RFC 3339, UTC).
    pub recorded_at: String,
    /// The edge user who made it.
    pub actor: String,
    #[serde(flatten)]
    pub change: WarehouseChange,
}

/// What changed. Each kind carries the whole new state of one record, keyed
/// by its code or id within the district.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WarehouseChange {
    /// A location (room 库房, cabinet 列, section 节, shelf 层 or box 盒) was
    /// created, renamed, or moved: a box shelved elsewhere is this event
    /// with its new `parent`.
    Location {
        code: String,
        /// `room`, `cabinet`, `section`, `shelf` or `box`.
        location_kind: String,
        name: String,
        /// The code of the enclosing location; `None` for a room and for a
        /// box not on a shelf.
        parent: Option<String>,
        /// The most boxes a shelf or volumes a box may hold.
        capacity: Option<u32>,
    },
    /// A volume (案卷) was created or changed, or moved to another box.
    Volume {
        code: String,
        title: String,
        /// The box that holds it; `None` when it is in no box yet.
        box_code: Option<String>,
        /// `permanent` or a number of years such as `30y`.
        retention: Option<String>,
        /// The earliest and latest business date of its files (YYYY-MM-DD).
        date_from: Option<String>,
        date_to: Option<String>,
    },
    /// A business file of an accepted batch was bound into a volume, or
    /// taken out of one (`volume` `None`).
    FileVolume {
        batch: String,
        /// The file's `seq` in the batch's manifest.
        file_seq: u32,
        business_number: Option<String>,
        volume: Option<String>,
    },
    /// A loan (借阅) of a volume or a box was requested, approved, refused,
    /// lent or returned.
    Loan {
        /// The edge's loan number.
        loan: u64,
        /// The code of the volume or box lent.
        item: String,
        /// `requested`, `approved`, `refused`, `lent` or `returned`.
        state: String,
        borrower: String,
        purpose: String,
        /// The date it is due back (YYYY-MM-DD).
        due_date: String,
        requested_by: String,
        approved_by: Option<String>,
        lent_at: Option<String>,
        returned_at: Option<String>,
        /// The hub's loan request this loan came from, if a hub reviewer
        /// asked for it.
        hub_request: Option<u64>,
    },
    /// An inventory check (盘点) was started, scanned, finished or had a
    /// discrepancy resolved.
    Check {
        /// The edge's check number.
        check: u64,
        /// The code of the location whose subtree is checked.
        root: String,
        /// `open` or `finished`.
        state: String,
        started_at: String,
        finished_at: Option<String>,
        missing: u32,
        unexpected: u32,
        misplaced: u32,
        /// How many discrepancies have been resolved.
        resolved: u32,
    },
}

/// One page of `GET /sync/v2/feeds/loan-requests?after=SEQ&limit=N`: loans
/// of the node's district's originals that hub reviewers asked for after
/// `SEQ`, in order.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LoanRequestFeed {
    pub entries: Vec<LoanRequest>,
    /// The cursor to ask from next.
    pub next: u64,
    /// Whether more entries follow.
    pub more: bool,
}

/// A hub reviewer's request to borrow a paper original.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LoanRequest {
    /// Position in the hub's request feed; also the request's number.
    pub seq: u64,
    /// The code of the volume or box asked for.
    pub item: String,
    /// Who will hold it: the reviewer's display name and organisation.
    pub borrower: String,
    pub purpose: String,
    /// YYYY-MM-DD.
    pub due_date: String,
    /// The reviewer's hub user name.
    pub requested_by: String,
    pub requested_at: String,
}

/// The most characters of a warehouse feed id.
pub const FEED_ID_MAX: usize = 64;

/// Whether `feed` is a warehouse feed id: 1 to [`FEED_ID_MAX`] characters
/// of `0-9`, `a-z` and `-` (a UUID in lowercase is one).
pub fn is_feed_id(feed: &str) -> bool {
    (1..=FEED_ID_MAX).contains(&feed.len())
        && feed
            .bytes()
            .all(|byte| byte.is_ascii_digit() || byte.is_ascii_lowercase() || byte == b'-')
}

/// Header names of the protocol (lowercase, as HTTP/2 sends them; HTTP
/// header names are case-insensitive).
pub mod header {
    /// Bytes of a blob the hub holds (`HEAD`, `PATCH` answers, `409`), or the
    /// offset a `PATCH` body starts at.
    pub const UPLOAD_OFFSET: &str = "upload-offset";
    /// A blob's total uncompressed length.
    pub const UPLOAD_LENGTH: &str = "upload-length";
    /// `true` once a blob is present, verified and durable, else `false`.
    pub const BLOB_COMPLETE: &str = "blob-complete";
    /// The lowercase hex BLAKE3 of an offer's body (the canonical manifest).
    pub const MANIFEST_HASH: &str = "manifest-hash";
    /// The `Content-Type` of a `PATCH` body, as in tus.
    pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_ids() {
        assert!(is_feed_id("3f2c9a1e-7b4d-4c2a-9e1f-0a1b2c3d4e5f"));
        assert!(is_feed_id("a"));
        assert!(is_feed_id(&"a".repeat(FEED_ID_MAX)));
        for bad in ["", "A", "a_b", "a b", "库房", &"a".repeat(FEED_ID_MAX + 1)] {
            assert!(!is_feed_id(bad), "{bad:?}");
        }
    }

    /// The shape of every warehouse change on the wire: the kind beside the
    /// event's own members.
    #[test]
    fn warehouse_events_are_flat_objects_with_a_kind() {
        let event = WarehouseEvent {
            seq: 7,
            recorded_at: "2026-11-26T08:00:00Z".to_owned(),
            actor: "wang".to_owned(),
            change: WarehouseChange::FileVolume {
                batch: "310104-2026-0001".to_owned(),
                file_seq: 3,
                business_number: Some("YL2026000003".to_owned()),
                volume: None,
            },
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "seq": 7, "recorded_at": "2026-11-26T08:00:00Z", "actor": "wang",
                "kind": "file_volume", "batch": "310104-2026-0001", "file_seq": 3,
                "business_number": "YL2026000003", "volume": null
            })
        );
        let back: WarehouseEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn error_codes_name_themselves_as_serde_does() {
        let all = [
            ErrorCode::Malformed,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::OffsetMismatch,
            ErrorCode::BlobBusy,
            ErrorCode::MissingBlobs,
            ErrorCode::BatchConflict,
            ErrorCode::FeedGap,
            ErrorCode::TooLarge,
            ErrorCode::UnsupportedEncoding,
            ErrorCode::InvalidManifest,
            ErrorCode::BlobHashMismatch,
            ErrorCode::StorageUnavailable,
            ErrorCode::Internal,
        ];
        for code in all {
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                format!("\"{}\"", code.as_str())
            );
            assert!((400..600).contains(&code.status()));
        }
    }
}
