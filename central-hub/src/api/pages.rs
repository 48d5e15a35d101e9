//! The pages of an archived business file for a viewer, and the file as a
//! watermarked PDF:
//!
//! - `GET /api/v1/files/{id}/pages/{seq}`: the page's blob as archived,
//!   streamed from the object store;
//! - `…/pages/{seq}/view`: an image a browser shows (JPEG and PNG blobs as
//!   they are, TIFF rendered, see [`crate::renditions`]);
//! - `…/pages/{seq}/thumbnail`: a JPEG 200 px wide;
//! - `GET /api/v1/files/{id}/pdf`: the whole file as one PDF, watermarked
//!   with the caller's name and the time ([`crate::pdf`]).
//!
//! A page image never changes (blobs are content-addressed), so the images
//! carry a strong `ETag` and `Cache-Control: private, max-age=…, immutable`
//! (private: they are only for users whose scope holds the file), answer
//! `If-None-Match` with 304 and a single `Range` with 206 (416 when it lies
//! past the end); several ranges get the whole image.
//!
//! Scope as for `GET /api/v1/files/{id}`: out of scope is the same 404 as
//! no such file or page. Audit: `page.view` for each delivery of an
//! original or a view — not for a 304 (nothing delivered; the browser's
//! copy was recorded when it was sent) nor for a range that continues an
//! earlier one (the same delivery) — and `file.download` for each PDF.
//! Thumbnails are not recorded when served: a file's page list shows all of
//! them at once (tens of entries per look, already recorded as the
//! `file.view` of the file), and at 200 px they are not legible. Every
//! refusal is recorded, thumbnails included.
use std::ops::Range;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use dangan_shared::BlobId;
use dangan_shared::imaging::Rendition;
use dangan_sync::tls::PeerAddr;
use rusqlite::{Connection, OptionalExtension};

use super::{ApiError, Audit, Caller};
use crate::audit::{ActorKind, Outcome};
use crate::backend::HubBackend;
use crate::pdf::{self, PageImage, PdfError, PdfFile, PdfPage};
use crate::renditions::{Kind, RenditionError, Renditions};
use crate::store::StoreError;
use crate::users::{self, User};

/// How long a browser may keep a page image (a year: it never changes).
const MAX_AGE_SECONDS: u64 = 365 * 24 * 3600;

/// An archived page as the `pages` table has it.
#[derive(Debug, Clone)]
struct PageRow {
    seq: i64,
    blob: BlobId,
    format: String,
    size: u64,
    width: u32,
    height: u32,
    dpi: Option<u32>,
}

impl PageRow {
    fn browser_shows_it(&self) -> bool {
        matches!(self.format.as_str(), "jpeg" | "png")
    }

    fn mime(&self) -> &'static str {
        match self.format.as_str() {
            "jpeg" => "image/jpeg",
            "png" => "image/png",
            "tiff" => "image/tiff",
            _ => "application/octet-stream",
        }
    }
}

/// The rendition a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Asked {
    Original,
    View,
    Thumbnail,
}

impl Asked {
    fn name(self) -> &'static str {
        match self {
            Asked::Original => "original",
            Asked::View => "view",
            Asked::Thumbnail => "thumbnail",
        }
    }

    /// The strong validator of what this request answers with: the blob id
    /// for the blob's own bytes, marked for a rendition of it.
    fn etag(self, page: &PageRow) -> String {
        let hex = page.blob.to_hex();
        match self {
            Asked::Original => format!("\"{hex}\""),
            Asked::View if page.browser_shows_it() => format!("\"{hex}\""),
            Asked::View => format!("\"{hex}-view\""),
            Asked::Thumbnail => format!("\"{hex}-thumbnail\""),
        }
    }
}

/// Whether the caller's scope holds a file of `organisation` in `district`.
pub(super) fn in_scope(
    conn: &Connection,
    user: &User,
    organisation: &str,
    district: &str,
) -> Result<bool, ApiError> {
    let scope = users::Scope::of(conn, user)?;
    Ok(scope.allows(conn, organisation)? || scope.allows(conn, district)?)
}

/// A business file's organisation, district and business number.
fn file_head(conn: &Connection, id: i64) -> Result<Option<(String, String, String)>, ApiError> {
    Ok(conn
        .query_row(
            "SELECT f.organisation, b.district, COALESCE(f.business_number, '')
             FROM business_files f JOIN batches b ON b.id = f.batch_id WHERE f.id = ?1",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .map_err(StoreError::from)?)
}

fn page_rows(conn: &Connection, id: i64, seq: Option<i64>) -> Result<Vec<PageRow>, ApiError> {
    let mut statement = conn
        .prepare_cached(
            "SELECT seq, blob, format, size, width, height, dpi FROM pages
             WHERE business_file_id = ?1 AND (?2 IS NULL OR seq = ?2) ORDER BY seq",
        )
        .map_err(StoreError::from)?;
    let rows = statement
        .query_map(rusqlite::params![id, seq], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, u64>(3)?,
                row.get::<_, u32>(4)?,
                row.get::<_, u32>(5)?,
                row.get::<_, Option<u32>>(6)?,
            ))
        })
        .map_err(StoreError::from)?;
    let mut pages = Vec::new();
    for row in rows {
        let (seq, blob, format, size, width, height, dpi) = row.map_err(StoreError::from)?;
        let blob = blob.parse::<BlobId>().map_err(|err| {
            ApiError::internal(format!("page {seq} of file {id}: blob id {blob:?}: {err}"))
        })?;
        pages.push(PageRow {
            seq,
            blob,
            format,
            size,
            width,
            height,
            dpi,
        });
    }
    Ok(pages)
}

fn not_found(id: i64, seq: Option<i64>) -> ApiError {
    let message = match seq {
        Some(seq) => format!("no page {seq} of business file {id}"),
        None => format!("no business file {id}"),
    };
    ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
}

/// What the request's conditional and range headers ask for.
#[derive(Debug, Clone, Default)]
struct Conditions {
    if_none_match: Option<String>,
    range: Option<String>,
    if_range: Option<String>,
}

impl Conditions {
    fn of(headers: &HeaderMap) -> Self {
        let text = |name| {
            headers
                .get(name)
                .and_then(|value: &HeaderValue| value.to_str().ok())
                .map(str::to_owned)
        };
        Self {
            if_none_match: text(header::IF_NONE_MATCH),
            range: text(header::RANGE),
            if_range: text(header::IF_RANGE),
        }
    }

    /// `If-None-Match` names `etag` (weak comparison, as RFC 9110 asks).
    fn not_modified(&self, etag: &str) -> bool {
        self.if_none_match.as_deref().is_some_and(|list| {
            list.split(',')
                .map(str::trim)
                .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
        })
    }

    /// The range to answer for a body of `size` bytes with validator `etag`.
    fn range(&self, size: u64, etag: &str) -> Ranged {
        if self.if_range.as_deref().is_some_and(|tag| tag != etag) {
            return Ranged::Whole;
        }
        self.range
            .as_deref()
            .map_or(Ranged::Whole, |range| parse_range(range, size))
    }

    /// Whether answering delivers the image afresh (not a 304, not the rest
    /// of a range begun before): the deliveries the audit trail records.
    fn delivers(&self, etag: &str, size: u64) -> bool {
        if self.not_modified(etag) {
            return false;
        }
        match self.range(size, etag) {
            Ranged::Part(range) => range.start == 0,
            Ranged::Whole => true,
            Ranged::Unsatisfiable => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ranged {
    Whole,
    Part(Range<u64>),
    Unsatisfiable,
}

/// One byte range (`bytes=a-b`, `bytes=a-`, `bytes=-n`) of `size` bytes.
/// Several ranges, other units and malformed values are ignored (the whole
/// body is sent), as RFC 9110 allows.
fn parse_range(header: &str, size: u64) -> Ranged {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let number = |text: &str| text.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), number(first), number(last)) {
        // bytes=-n: the last n bytes.
        (true, _, Some(suffix)) => {
            if suffix == 0 || size == 0 {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part(size.saturating_sub(suffix)..size)
            }
        }
        (false, Some(start), end) if last.trim().is_empty() || end.is_some() => {
            if end.is_some_and(|end| end < start) {
                return Ranged::Whole;
            }
            if start >= size {
                return Ranged::Unsatisfiable;
            }
            let end = end.map_or(size, |end| end.saturating_add(1).min(size));
            Ranged::Part(start..end)
        }
        _ => Ranged::Whole,
    }
}

/// The headers every image answer carries.
fn image_headers(content_type: &str, etag: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut put = |name, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    put(header::CONTENT_TYPE, content_type);
    put(header::ETAG, etag);
    put(
        header::CACHE_CONTROL,
        &format!("private, max-age={MAX_AGE_SECONDS}, immutable"),
    );
    put(header::ACCEPT_RANGES, "bytes");
    put(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    headers
}

/// 304, 416, 206 or 200 for a body of `size` bytes; `body` gives the bytes
/// of a range (or of everything with `None`).
async fn answer<F, Fut>(
    conditions: &Conditions,
    content_type: &str,
    etag: &str,
    size: u64,
    body: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(Option<Range<u64>>) -> Fut,
    Fut: std::future::Future<Output = Result<Body, ApiError>>,
{
    let mut headers = image_headers(content_type, etag);
    if conditions.not_modified(etag) {
        headers.remove(header::CONTENT_TYPE);
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    match conditions.range(size, etag) {
        Ranged::Unsatisfiable => {
            headers.remove(header::CONTENT_TYPE);
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                headers.insert(header::CONTENT_RANGE, value);
            }
            let error = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the image has {size} bytes"),
            );
            Ok((headers, error).into_response())
        }
        Ranged::Part(range) => {
            let content_range = format!("bytes {}-{}/{size}", range.start, range.end - 1);
            if let Ok(value) = HeaderValue::from_str(&content_range) {
                headers.insert(header::CONTENT_RANGE, value);
            }
            headers.insert(header::CONTENT_LENGTH, (range.end - range.start).into());
            let body = body(Some(range)).await?;
            Ok((StatusCode::PARTIAL_CONTENT, headers, body).into_response())
        }
        Ranged::Whole => {
            headers.insert(header::CONTENT_LENGTH, size.into());
            let body = body(None).await?;
            Ok((StatusCode::OK, headers, body).into_response())
        }
    }
}

/// Answers with bytes held in memory (a rendition).
async fn answer_bytes(
    conditions: &Conditions,
    content_type: &str,
    etag: &str,
    bytes: bytes::Bytes,
) -> Result<Response, ApiError> {
    let size = bytes.len() as u64;
    answer(conditions, content_type, etag, size, |range| async move {
        Ok(Body::from(match range {
            // The range lies within the body (checked by `parse_range`).
            Some(range) => bytes.slice(range.start as usize..range.end as usize),
            None => bytes,
        }))
    })
    .await
}

/// Which page a request names: page `seq` of archived business file `id`,
/// or page `id` of the live business file with a business number.
#[derive(Debug, Clone)]
pub(super) enum PageKey {
    Archived(i64, i64),
    Live(String, i64),
}

/// A looked-at file's organisation and district (if it exists), and the
/// page asked for (if the file has it).
type Found = (Option<(String, String)>, Option<PageRow>);

impl PageKey {
    /// The looked-at file's organisation and district, and the page.
    fn find(&self, conn: &Connection) -> Result<Found, ApiError> {
        match self {
            PageKey::Archived(id, seq) => {
                let head = file_head(conn, *id)?;
                let page = match &head {
                    Some(_) => page_rows(conn, *id, Some(*seq))?.into_iter().next(),
                    None => None,
                };
                Ok((head.map(|(o, d, _)| (o, d)), page))
            }
            PageKey::Live(number, page) => {
                let head: Option<(i64, String, String)> = conn
                    .query_row(
                        "SELECT id, organisation, district FROM live_files WHERE business_number = ?1",
                        [number],
                        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                    )
                    .optional()
                    .map_err(StoreError::from)?;
                let Some((file, organisation, district)) = head else {
                    return Ok((None, None));
                };
                let row = conn
                    .query_row(
                        "SELECT position, blob, format, size, width, height, dpi FROM live_pages
                         WHERE live_file_id = ?1 AND id = ?2",
                        rusqlite::params![file, page],
                        |row| {
                            Ok((
                                row.get::<_, i64>(0)?,
                                row.get::<_, String>(1)?,
                                row.get::<_, String>(2)?,
                                row.get::<_, u64>(3)?,
                                row.get::<_, u32>(4)?,
                                row.get::<_, u32>(5)?,
                                row.get::<_, Option<u32>>(6)?,
                            ))
                        },
                    )
                    .optional()
                    .map_err(StoreError::from)?;
                let page = match row {
                    Some((seq, blob, format, size, width, height, dpi)) => Some(PageRow {
                        seq,
                        blob: blob.parse::<BlobId>().map_err(|err| {
                            ApiError::internal(format!("live page {page}: blob id {blob:?}: {err}"))
                        })?,
                        format,
                        size,
                        width,
                        height,
                        dpi,
                    }),
                    None => None,
                };
                Ok((Some((organisation, district)), page))
            }
        }
    }

    /// The audit entry's action and target.
    fn audit(&self) -> (&'static str, String) {
        match self {
            PageKey::Archived(id, _) => ("page.view", id.to_string()),
            PageKey::Live(number, _) => ("live.page.view", number.clone()),
        }
    }

    fn page_number(&self) -> i64 {
        match self {
            PageKey::Archived(_, seq) => *seq,
            PageKey::Live(_, page) => *page,
        }
    }

    fn not_found(&self) -> ApiError {
        match self {
            PageKey::Archived(id, seq) => not_found(*id, Some(*seq)),
            PageKey::Live(number, page) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no page {page} of live business file {number}"),
            ),
        }
    }
}

/// Looks the page up for the caller: 404 when out of scope or missing,
/// either way recorded; a delivery of `asked` recorded (`page.view`, or
/// `live.page.view` for a live page) unless it is a thumbnail or not a
/// delivery ([`Conditions::delivers`]).
async fn open_page(
    backend: &Arc<HubBackend>,
    caller: Caller,
    address: String,
    key: PageKey,
    asked: Asked,
    conditions: Conditions,
) -> Result<PageRow, ApiError> {
    backend
        .db()
        .run(move |conn| {
            let (user, kind) = (caller.user, caller.kind);
            let (head, page) = key.find(conn)?;
            let visible = match &head {
                Some((organisation, district)) => in_scope(conn, &user, organisation, district)?,
                None => false,
            };
            let (action, target) = key.audit();
            let audit = Audit {
                actor: &user.username,
                kind,
                address: Some(&address),
                action,
                target: &target,
            };
            let detail = |exists: bool| {
                serde_json::json!({ "seq": key.page_number(), "rendition": asked.name(), "exists": exists })
            };
            let Some(page) = page.filter(|_| visible) else {
                audit.record(conn, Outcome::Denied, detail(head.is_some()))?;
                return Err(key.not_found());
            };
            let size = if asked == Asked::Original || page.browser_shows_it() {
                page.size
            } else {
                // A rendition's size is unknown here; only the range's start matters.
                u64::MAX
            };
            if asked != Asked::Thumbnail && conditions.delivers(&asked.etag(&page), size) {
                audit.record(conn, Outcome::Ok, detail(true))?;
            }
            Ok(page)
        })
        .await
}

/// Answers a page image request: the original, the browser view or the
/// thumbnail of the page `key` names.
async fn serve_page(
    backend: &Arc<HubBackend>,
    caller: Caller,
    peer: &PeerAddr,
    key: PageKey,
    asked: Asked,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let conditions = Conditions::of(headers);
    let page = open_page(
        backend,
        caller,
        peer_address(peer),
        key,
        asked,
        conditions.clone(),
    )
    .await?;
    match asked {
        Asked::Original => stream_blob(backend, &conditions, &page).await,
        Asked::View if page.browser_shows_it() => stream_blob(backend, &conditions, &page).await,
        _ => serve_rendition(backend, &conditions, &page, asked).await,
    }
}

fn peer_address(peer: &PeerAddr) -> String {
    peer.0.ip().to_string()
}

/// The route of an archived page's image: `GET /api/v1/files/{id}/pages/{seq}`
/// (the blob as archived), `…/view` (as a browser shows it) or
/// `…/thumbnail` (a small JPEG), as `asked`.
pub(super) fn archived_page(asked: Asked) -> MethodRouter<Arc<HubBackend>> {
    get(
        move |State(backend): State<Arc<HubBackend>>,
              caller: Caller,
              ConnectInfo(peer): ConnectInfo<PeerAddr>,
              Path((id, seq)): Path<(i64, i64)>,
              headers: HeaderMap| async move {
            let key = PageKey::Archived(id, seq);
            serve_page(&backend, caller, &peer, key, asked, &headers).await
        },
    )
}

/// The route of a live page's image: `GET /api/v1/live/{number}/pages/{page}`
/// and its `/view` and `/thumbnail`, as `asked`.
pub(super) fn live_page(asked: Asked) -> MethodRouter<Arc<HubBackend>> {
    get(
        move |State(backend): State<Arc<HubBackend>>,
              caller: Caller,
              ConnectInfo(peer): ConnectInfo<PeerAddr>,
              Path((number, page)): Path<(String, i64)>,
              headers: HeaderMap| async move {
            let key = PageKey::Live(number, page);
            serve_page(&backend, caller, &peer, key, asked, &headers).await
        },
    )
}

/// Answers the browser view of page `page` of the live file a viewer link
/// opens (`/view/{token}/pages/{page}`), as the link's maker would see it;
/// recorded as `live.page.view` by `link:MAKER`. An expired or unknown
/// link is the same 404 as a missing page.
pub(crate) async fn linked_page(
    backend: &Arc<HubBackend>,
    peer: &PeerAddr,
    token: &str,
    page: i64,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let lookup = token.to_owned();
    let link = backend
        .db()
        .run(move |conn| {
            let Some((number, maker, _)) = crate::live::viewer_link(conn, &lookup)? else {
                return Ok(None);
            };
            let organisation: String = conn
                .query_row(
                    "SELECT organisation FROM live_files WHERE business_number = ?1",
                    [&number],
                    |row| row.get(0),
                )
                .map_err(StoreError::from)?;
            Ok::<_, ApiError>(Some((number, maker, organisation)))
        })
        .await?;
    let Some((number, maker, organisation)) = link else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "this viewer link has expired or does not exist",
        ));
    };
    // The link's reader, seeing exactly the file's organisation.
    let reader = Caller {
        user: User {
            id: 0,
            username: format!("link:{maker}"),
            display_name: format!("link:{maker}"),
            role: users::Role::ReadOnly,
            org: organisation,
            disabled: false,
            locked_until: None,
            created_at: String::new(),
        },
        token: String::new(),
        kind: ActorKind::Token,
    };
    let key = PageKey::Live(number, page);
    serve_page(backend, reader, peer, key, Asked::View, headers).await
}

/// Streams a blob (or a range of it) from the object store.
async fn stream_blob(
    backend: &Arc<HubBackend>,
    conditions: &Conditions,
    page: &PageRow,
) -> Result<Response, ApiError> {
    let blob = page.blob;
    let etag = Asked::Original.etag(page);
    answer(
        conditions,
        page.mime(),
        &etag,
        page.size,
        |range| async move {
            let stream = backend
                .blob_store()
                .read_stream(&blob, range)
                .await
                .map_err(|err| ApiError::internal(format!("blob {blob}: {err}")))?;
            Ok(Body::from_stream(stream))
        },
    )
    .await
}

async fn serve_rendition(
    backend: &Arc<HubBackend>,
    conditions: &Conditions,
    page: &PageRow,
    asked: Asked,
) -> Result<Response, ApiError> {
    let etag = asked.etag(page);
    if conditions.not_modified(&etag) {
        // Nothing to make: the answer is a 304 whatever the bytes are.
        return answer_bytes(conditions, "image/jpeg", &etag, bytes::Bytes::new()).await;
    }
    let kind = if asked == Asked::Thumbnail {
        Kind::Thumbnail
    } else {
        Kind::View
    };
    let (rendition, bytes) = rendition(backend, kind, page).await?;
    answer_bytes(conditions, rendition.mime(), &etag, bytes.into()).await
}

/// A rendition of a page: kept from before, or made now and kept.
async fn rendition(
    backend: &Arc<HubBackend>,
    kind: Kind,
    page: &PageRow,
) -> Result<(Rendition, Vec<u8>), ApiError> {
    let renditions = Renditions::new(backend.data_dir());
    let blob = page.blob;
    let seq = page.seq;
    let failed = move |err: RenditionError| ApiError::internal(format!("page {seq}: {err}"));
    let lookup = renditions.clone();
    if let Some(kept) = blocking(move || lookup.cached(kind, &blob))
        .await?
        .map_err(failed)?
    {
        return Ok(kept);
    }
    let bytes = backend
        .blob_store()
        .read(&blob)
        .await
        .map_err(|err| ApiError::internal(format!("blob {blob}: {err}")))?;
    blocking(move || renditions.make(kind, &blob, bytes.to_vec()))
        .await?
        .map_err(failed)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ApiError::internal(format!("worker thread: {err}")))
}

/// `GET /api/v1/files/{id}/pdf`: the business file as one PDF, each page
/// watermarked with the caller's name and the time. Recorded as
/// `file.download` with its outcome.
pub(super) async fn file_pdf(
    State(backend): State<Arc<HubBackend>>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let address = peer_address(&peer);
    let (user, kind) = (caller.user, caller.kind);
    let viewer = user.clone();
    let found = {
        let address = address.clone();
        backend
            .db()
            .run(move |conn| {
                let head = file_head(conn, id)?;
                let visible = match &head {
                    Some((organisation, district, _)) => {
                        in_scope(conn, &viewer, organisation, district)?
                    }
                    None => false,
                };
                let exists = head.is_some();
                match head.filter(|_| visible) {
                    Some((_, _, number)) => Ok(Some((number, page_rows(conn, id, None)?))),
                    None => {
                        Audit {
                            actor: &viewer.username,
                            kind,
                            address: Some(&address),
                            action: "file.download",
                            target: &id.to_string(),
                        }
                        .record(
                            conn,
                            Outcome::Denied,
                            serde_json::json!({ "format": "pdf", "exists": exists }),
                        )?;
                        Ok::<_, ApiError>(None)
                    }
                }
            })
            .await?
    };
    let Some((number, pages)) = found else {
        return Err(not_found(id, None));
    };
    let watermark = watermark_text(&user, &backend.config().pdf.time_zone);
    let made = make_pdf(&backend, id, &number, pages, &watermark).await;
    let detail = match &made {
        Ok((bytes, pages)) => {
            serde_json::json!({ "format": "pdf", "pages": pages, "bytes": bytes.len(), "watermark": watermark })
        }
        Err(err) => serde_json::json!({ "format": "pdf", "error": err.message() }),
    };
    let outcome = if made.is_ok() {
        Outcome::Ok
    } else {
        Outcome::Failed
    };
    record(&backend, &user, kind, address, id, outcome, detail).await?;
    let (bytes, _) = made?;
    let name = if number.is_empty() {
        format!("file-{id}")
    } else {
        number
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Ok(value) = HeaderValue::from_str(&attachment(&format!("{name}.pdf"))) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok((headers, bytes).into_response())
}

async fn record(
    backend: &Arc<HubBackend>,
    user: &User,
    kind: ActorKind,
    address: String,
    id: i64,
    outcome: Outcome,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    let actor = user.username.clone();
    backend
        .db()
        .run(move |conn| {
            Audit {
                actor: &actor,
                kind,
                address: Some(&address),
                action: "file.download",
                target: &id.to_string(),
            }
            .record(conn, outcome, detail)
        })
        .await
}

/// "张三 (zhang) · 2026-11-26 15:04 · 仅供查阅": who, when (in the
/// configured time zone), and that the copy is for reference only.
fn watermark_text(user: &User, time_zone: &jiff::tz::TimeZone) -> String {
    let now = jiff::Timestamp::now().to_zoned(time_zone.clone());
    let who = if user.display_name.trim().is_empty() || user.display_name == user.username {
        user.username.clone()
    } else {
        format!("{} ({})", user.display_name.trim(), user.username)
    };
    format!("{who} · {} · 仅供查阅", now.strftime("%Y-%m-%d %H:%M"))
}

/// Gathers the page images (renditions for TIFF pages) and writes the PDF
/// on a blocking thread. Returns it with its page count.
async fn make_pdf(
    backend: &Arc<HubBackend>,
    id: i64,
    number: &str,
    pages: Vec<PageRow>,
    watermark: &str,
) -> Result<(Vec<u8>, usize), ApiError> {
    let mut pdf_pages = Vec::with_capacity(pages.len());
    for page in &pages {
        let image = if page.browser_shows_it() {
            let bytes = backend
                .blob_store()
                .read(&page.blob)
                .await
                .map_err(|err| ApiError::internal(format!("blob {}: {err}", page.blob)))?
                .to_vec();
            if page.format == "jpeg" {
                PageImage::Jpeg(bytes)
            } else {
                PageImage::Png(bytes)
            }
        } else {
            match rendition(backend, Kind::View, page).await? {
                (Rendition::Jpeg, bytes) => PageImage::Jpeg(bytes),
                (Rendition::Png, bytes) => PageImage::Png(bytes),
            }
        };
        pdf_pages.push(PdfPage {
            seq: page.seq,
            image,
            width: page.width,
            height: page.height,
            dpi: page.dpi,
        });
    }
    let count = pdf_pages.len();
    let file = PdfFile {
        title: if number.is_empty() {
            format!("business file {id}")
        } else {
            number.to_owned()
        },
        pages: pdf_pages,
        watermark: watermark.to_owned(),
    };
    let settings = backend.config().pdf.clone();
    let written = blocking(move || {
        let font = pdf::font(&settings.font, settings.font_index)?;
        pdf::render(file, &font)
    })
    .await?;
    match written {
        Ok(bytes) => Ok((bytes, count)),
        Err(err @ (PdfError::FontMissing { .. } | PdfError::FontInvalid { .. })) => {
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "pdf_font_missing",
                err.to_string(),
            ))
        }
        Err(err) => Err(ApiError::internal(format!("business file {id}: {err}"))),
    }
}

/// `Content-Disposition: attachment` with an ASCII fallback name and the
/// real (UTF-8) one.
fn attachment(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        assert_eq!(parse_range("bytes=0-99", 1000), Ranged::Part(0..100));
        assert_eq!(parse_range("bytes=900-", 1000), Ranged::Part(900..1000));
        assert_eq!(parse_range("bytes=-100", 1000), Ranged::Part(900..1000));
        assert_eq!(parse_range("bytes=-5000", 1000), Ranged::Part(0..1000));
        assert_eq!(parse_range("bytes=990-2000", 1000), Ranged::Part(990..1000));
        assert_eq!(parse_range("bytes=999-999", 1000), Ranged::Part(999..1000));
        assert_eq!(parse_range("bytes=1000-", 1000), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Ranged::Whole);
        assert_eq!(parse_range("bytes=9-3", 1000), Ranged::Whole);
        assert_eq!(parse_range("items=0-1", 1000), Ranged::Whole);
        assert_eq!(parse_range("bytes=x-1", 1000), Ranged::Whole);
    }

    #[test]
    fn conditions_tell_deliveries_from_revalidations_and_continuations() {
        let etag = "\"abc\"";
        let with =
            |none_match: Option<&str>, range: Option<&str>, if_range: Option<&str>| Conditions {
                if_none_match: none_match.map(str::to_owned),
                range: range.map(str::to_owned),
                if_range: if_range.map(str::to_owned),
            };
        assert!(with(None, None, None).delivers(etag, 10));
        assert!(with(None, Some("bytes=0-3"), None).delivers(etag, 10));
        assert!(!with(None, Some("bytes=4-"), None).delivers(etag, 10));
        assert!(!with(Some("\"x\", W/\"abc\""), None, None).delivers(etag, 10));
        assert!(with(Some("\"x\""), None, None).delivers(etag, 10));
        // A range for another version of the body gets the whole body.
        assert_eq!(
            with(None, Some("bytes=4-"), Some("\"old\"")).range(10, etag),
            Ranged::Whole
        );
    }

    #[test]
    fn download_names_keep_chinese_and_have_an_ascii_fallback() {
        assert_eq!(
            attachment("YL2026 档案.pdf"),
            "attachment; filename=\"YL2026___.pdf\"; filename*=UTF-8''YL2026%20%E6%A1%A3%E6%A1%88.pdf"
        );
    }
}
