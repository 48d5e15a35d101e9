//! tus 1.0 resumable uploads of street offices' live pages
//! (`/api/v1/uploads`), so that standard tus clients (tus-js-client, Uppy)
//! work unchanged: core, creation, creation-with-upload, expiration,
//! termination and checksum (`sha256`; a failing checksum is answered 460
//! and the offset stays where it was).
//!
//! One upload is one page image. `Upload-Metadata` carries
//! `business_number` (required), `organisation` (optional: a new live file
//! opens in the uploader's own organisation) and the client's `filename`
//! and `filetype`. The uploader must be allowed to upload and the live
//! file's organisation must lie in their scope (see `live.rs`); an upload
//! is visible to the account that created it only.
//!
//! Bytes go to `uploads/<id>` in the data folder and are synced before the
//! offset that counts them is recorded, so a crash never loses an
//! acknowledged byte. When the last byte arrives the image is checked (a
//! JPEG, PNG or one-page TIFF that decodes), stored as a content-addressed
//! blob (BLAKE3, whatever checksum the client used) like every archived
//! page, and added to its live business file in one transaction with the
//! upload's completion. An image that does not decode is refused (422 with
//! the reason) and its bytes are kept in `uploads/refused/`. A crash
//! between the last byte and the page is finished by the next HEAD or PATCH.
use std::collections::HashSet;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use dangan_shared::BlobId;
use dangan_shared::imaging::decode::{self, SourceFormat};
use dangan_sync::tls::PeerAddr;
use futures_util::StreamExt;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::Digest;
use tokio::io::AsyncWriteExt;

use super::{ApiError, Audit, Caller};
use crate::audit::{ActorKind, Outcome};
use crate::backend::HubBackend;
use crate::live::{self, LiveError, NewPage};
use crate::store::{self, StoreError};
use crate::webhooks;

/// The protocol version spoken (`Tus-Resumable`, `Tus-Version`).
pub const VERSION: &str = "1.0.0";
const EXTENSIONS: &str = "creation,creation-with-upload,expiration,termination,checksum";
const CHECKSUMS: &str = "sha256";
const OFFSET_STREAM: &str = "application/offset+octet-stream";
/// The data folder's folder of upload bytes (`refused/` inside it).
pub const UPLOADS_DIR: &str = "uploads";
const REFUSED_DIR: &str = "refused";

const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
const TUS_VERSION: HeaderName = HeaderName::from_static("tus-version");
const TUS_EXTENSION: HeaderName = HeaderName::from_static("tus-extension");
const TUS_MAX_SIZE: HeaderName = HeaderName::from_static("tus-max-size");
const TUS_CHECKSUM_ALGORITHM: HeaderName = HeaderName::from_static("tus-checksum-algorithm");
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
const UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");
const UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");
const UPLOAD_CHECKSUM: HeaderName = HeaderName::from_static("upload-checksum");
const UPLOAD_DEFER_LENGTH: HeaderName = HeaderName::from_static("upload-defer-length");

/// 460 Checksum Mismatch, the checksum extension's status.
fn checksum_mismatch() -> StatusCode {
    StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST)
}

/// In front of every tus route: refuses a request in another protocol
/// version (412 with `Tus-Version`; `OPTIONS` is exempt, it is how a client
/// finds the version out), and marks every answer with `Tus-Resumable`.
pub(super) async fn protocol(request: Request, next: Next) -> Response {
    let refusal = if request.method() == Method::OPTIONS {
        None
    } else {
        refuse_version(request.headers())
    };
    let mut response = match refusal {
        Some(refusal) => refusal,
        None => next.run(request).await,
    };
    response
        .headers_mut()
        .insert(TUS_RESUMABLE, HeaderValue::from_static(VERSION));
    response
}

/// `OPTIONS`: what this server supports (no authentication needed).
pub(super) async fn options(State(backend): State<Arc<HubBackend>>) -> Response {
    let max = backend.config().live.max_page_bytes;
    (
        StatusCode::NO_CONTENT,
        [
            (TUS_VERSION, VERSION.to_owned()),
            (TUS_EXTENSION, EXTENSIONS.to_owned()),
            (TUS_MAX_SIZE, max.to_string()),
            (TUS_CHECKSUM_ALGORITHM, CHECKSUMS.to_owned()),
        ],
    )
        .into_response()
}

/// A request in another protocol version is refused with 412 and the
/// version this server speaks.
fn refuse_version(headers: &HeaderMap) -> Option<Response> {
    let given = headers.get(&TUS_RESUMABLE).and_then(|v| v.to_str().ok());
    if given == Some(VERSION) {
        return None;
    }
    let mut response = ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        "tus_version",
        format!(
            "Tus-Resumable {} is not supported; this server speaks {VERSION}",
            given.unwrap_or("(missing)")
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(TUS_VERSION, HeaderValue::from_static(VERSION));
    Some(response)
}

fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

impl From<LiveError> for ApiError {
    fn from(err: LiveError) -> Self {
        let (status, code) = match &err {
            LiveError::BadNumber(_) | LiveError::NotLocal(_) | LiveError::NoSuchOrg(_) => {
                (StatusCode::BAD_REQUEST, "malformed")
            }
            LiveError::NotAllowed { .. } | LiveError::OutOfScope { .. } => {
                (StatusCode::FORBIDDEN, "forbidden")
            }
            LiveError::Closed { .. } => (StatusCode::CONFLICT, "closed"),
            LiveError::NoSuchFile(_) => (StatusCode::NOT_FOUND, "not_found"),
            LiveError::Store(_) | LiveError::User(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        ApiError::new(status, code, err.to_string())
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::malformed(format!("{name} is not ASCII text")))
        })
        .transpose()
}

fn header_u64(headers: &HeaderMap, name: &HeaderName) -> Result<Option<u64>, ApiError> {
    header_text(headers, name)?
        .map(|text| {
            text.trim().parse::<u64>().map_err(|_| {
                ApiError::malformed(format!("{name} is a number of bytes, not {text:?}"))
            })
        })
        .transpose()
}

/// `Upload-Metadata`: comma-separated `key base64(value)` pairs, the value
/// optional. Keys are unique; values must be UTF-8.
fn parse_metadata(text: &str) -> Result<Vec<(String, Option<String>)>, ApiError> {
    let mut pairs: Vec<(String, Option<String>)> = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = match pair.split_once(' ') {
            Some((key, value)) => (key, Some(value.trim())),
            None => (pair, None),
        };
        if key.is_empty() || pairs.iter().any(|(k, _)| k == key) {
            return Err(ApiError::malformed(format!(
                "Upload-Metadata has an empty or repeated key in {pair:?}"
            )));
        }
        let value = value
            .map(|encoded| {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|_| {
                        ApiError::malformed(format!("Upload-Metadata value of {key} is not Base64"))
                    })?;
                String::from_utf8(bytes).map_err(|_| {
                    ApiError::malformed(format!("Upload-Metadata value of {key} is not UTF-8"))
                })
            })
            .transpose()?;
        pairs.push((key.to_owned(), value));
    }
    Ok(pairs)
}

fn metadata<'a>(pairs: &'a [(String, Option<String>)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.as_deref())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// `Upload-Checksum: sha256 <base64 digest>` of one request's body.
fn parse_checksum(headers: &HeaderMap) -> Result<Option<Vec<u8>>, ApiError> {
    let Some(text) = header_text(headers, &UPLOAD_CHECKSUM)? else {
        return Ok(None);
    };
    let (algorithm, encoded) = text
        .trim()
        .split_once(' ')
        .ok_or_else(|| ApiError::malformed("Upload-Checksum is `ALGORITHM BASE64-DIGEST`"))?;
    if !algorithm.eq_ignore_ascii_case("sha256") {
        return Err(ApiError::malformed(format!(
            "checksum algorithm {algorithm:?} is not supported (Tus-Checksum-Algorithm: {CHECKSUMS})"
        )));
    }
    let digest = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| ApiError::malformed("the Upload-Checksum digest is not Base64"))?;
    if digest.len() != 32 {
        return Err(ApiError::malformed(
            "a sha256 Upload-Checksum digest is 32 bytes",
        ));
    }
    Ok(Some(digest))
}

fn upload_path(data_dir: &FsPath, id: &str) -> PathBuf {
    data_dir.join(UPLOADS_DIR).join(id)
}

/// `Upload-Expires` as an HTTP date.
fn http_date(stored: &str) -> Option<String> {
    let at: jiff::Timestamp = stored.parse().ok()?;
    Some(httpdate::fmt_http_date(SystemTime::from(at)))
}

/// One upload as recorded.
#[derive(Debug, Clone)]
struct Upload {
    id: String,
    owner: String,
    live_file_id: i64,
    length: u64,
    received: u64,
    metadata: String,
    expires_at: String,
    completed: bool,
    refusal: Option<String>,
}

impl Upload {
    fn expired(&self) -> bool {
        !self.completed && self.refusal.is_none() && self.expires_at < store::now()
    }
}

fn load(conn: &Connection, id: &str) -> Result<Option<Upload>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, owner, live_file_id, length, received, metadata, expires_at,
                    completed_at IS NOT NULL, refusal
             FROM uploads WHERE id = ?1",
            [id],
            |row| {
                Ok(Upload {
                    id: row.get(0)?,
                    owner: row.get(1)?,
                    live_file_id: row.get(2)?,
                    length: row.get(3)?,
                    received: row.get(4)?,
                    metadata: row.get(5)?,
                    expires_at: row.get(6)?,
                    completed: row.get(7)?,
                    refusal: row.get(8)?,
                })
            },
        )
        .optional()?)
}

/// Uploads with a request in progress: a second request on one of them is
/// answered 423 Locked (clients retry) instead of interleaving bytes.
static ACTIVE: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

struct Busy(String);

impl Busy {
    fn claim(id: &str) -> Result<Busy, ApiError> {
        let claimed = ACTIVE
            .lock()
            .map(|mut active| active.insert(id.to_owned()))
            .unwrap_or(false);
        if claimed {
            Ok(Busy(id.to_owned()))
        } else {
            Err(ApiError::new(
                StatusCode::LOCKED,
                "locked",
                "another request is writing this upload; retry when it has finished",
            ))
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Ok(mut active) = ACTIVE.lock() {
            active.remove(&self.0);
        }
    }
}

/// Who is asking, for the audit trail and ownership.
struct Actor {
    username: String,
    kind: ActorKind,
    address: String,
}

impl Actor {
    fn of(caller: &Caller, peer: &PeerAddr) -> Actor {
        Actor {
            username: caller.user.username.clone(),
            kind: caller.kind,
            address: peer.0.ip().to_string(),
        }
    }
}

/// The caller's own upload `id`; anyone else's is the same 404 as none.
async fn owned(backend: &Arc<HubBackend>, actor: &Actor, id: &str) -> Result<Upload, ApiError> {
    let lookup = id.to_owned();
    let found = backend
        .db()
        .run(move |conn| load(conn, &lookup).map_err(ApiError::from))
        .await?;
    found
        .filter(|upload| upload.owner == actor.username)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no upload {id}"),
            )
        })
}

fn gone(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        "expired",
        format!("upload {id} expired before it was finished; start the page again"),
    )
}

fn refused(reason: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_a_page",
        format!("the file is not a page image the archive takes: {reason}"),
    )
}

/// `POST /api/v1/uploads`: creates an upload (creation), with its first
/// bytes when the body is `application/offset+octet-stream`
/// (creation-with-upload).
pub(super) async fn create(
    State(backend): State<Arc<HubBackend>>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let actor = Actor::of(&caller, &peer);
    respond(create_upload(&backend, caller, actor, &headers, body).await)
}

async fn create_upload(
    backend: &Arc<HubBackend>,
    caller: Caller,
    actor: Actor,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let live_config = &backend.config().live;
    if headers.contains_key(&UPLOAD_DEFER_LENGTH) {
        return Err(ApiError::malformed(
            "Upload-Defer-Length is not supported: send Upload-Length",
        ));
    }
    let length = header_u64(headers, &UPLOAD_LENGTH)?
        .ok_or_else(|| ApiError::malformed("Upload-Length is required"))?;
    if length == 0 {
        return Err(ApiError::malformed("an empty file is not a page"));
    }
    if length > live_config.max_page_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "a page image of {length} bytes is larger than the {} bytes allowed (Tus-Max-Size)",
                live_config.max_page_bytes
            ),
        ));
    }
    let raw_metadata = header_text(headers, &UPLOAD_METADATA)?
        .unwrap_or_default()
        .to_owned();
    let pairs = parse_metadata(&raw_metadata)?;
    let number = metadata(&pairs, "business_number")
        .ok_or_else(|| ApiError::malformed("Upload-Metadata needs business_number"))?
        .to_owned();
    let organisation = metadata(&pairs, "organisation").map(str::to_owned);
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).map_err(|err| ApiError::internal(err.to_string()))?;
    let id: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let expires_at = store::time_after(live_config.expire_after);

    let dir = backend.data_dir().join(UPLOADS_DIR);
    let path = upload_path(backend.data_dir(), &id);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|err| ApiError::internal(format!("{}: {err}", dir.display())))?;
    tokio::fs::File::create(&path)
        .await
        .map_err(|err| ApiError::internal(format!("{}: {err}", path.display())))?;

    let user = caller.user;
    let row = Upload {
        id: id.clone(),
        owner: user.username.clone(),
        live_file_id: 0,
        length,
        received: 0,
        metadata: raw_metadata,
        expires_at: expires_at.clone(),
        completed: false,
        refusal: None,
    };
    let (address, kind) = (actor.address.clone(), actor.kind);
    let insert = row.clone();
    let upload = backend
        .db()
        .run(move |conn| {
            let file = match live::file_for_upload(conn, &user, &number, organisation.as_deref()) {
                Ok(file) => file,
                Err(err) => {
                    if matches!(
                        err,
                        LiveError::OutOfScope { .. } | LiveError::NotAllowed { .. }
                    ) {
                        Audit {
                            actor: &user.username,
                            kind,
                            address: Some(&address),
                            action: "live.upload",
                            target: &number,
                        }
                        .record(
                            conn,
                            Outcome::Denied,
                            serde_json::json!({ "reason": err.to_string() }),
                        )?;
                    }
                    return Err(ApiError::from(err));
                }
            };
            conn.execute(
                "INSERT INTO uploads(id, owner, live_file_id, length, metadata, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    insert.id,
                    insert.owner,
                    file,
                    insert.length,
                    insert.metadata,
                    store::now(),
                    insert.expires_at
                ],
            )
            .map_err(StoreError::from)?;
            Ok::<_, ApiError>(Upload {
                live_file_id: file,
                ..insert
            })
        })
        .await;
    let upload = match upload {
        Ok(upload) => upload,
        Err(err) => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(err);
        }
    };
    tracing::debug!(upload = %id, bytes = length, "upload created");

    let mut response = StatusCode::CREATED.into_response();
    let with_body = header_text(headers, &header::CONTENT_TYPE)?
        .is_some_and(|t| t.eq_ignore_ascii_case(OFFSET_STREAM));
    if with_body {
        let checksum = parse_checksum(headers)?;
        let _busy = Busy::claim(&id)?;
        let offset = receive(backend, &actor, &upload, checksum, body).await?;
        set_header(&mut response, UPLOAD_OFFSET, offset.to_string());
    }
    set_header(
        &mut response,
        header::LOCATION,
        format!("/api/v1/uploads/{id}"),
    );
    if let Some(date) = http_date(&expires_at) {
        set_header(&mut response, UPLOAD_EXPIRES, date);
    }
    Ok(response)
}

fn set_header(response: &mut Response, name: HeaderName, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(name, value);
    }
}

/// `HEAD /api/v1/uploads/{id}`: how many bytes the hub holds.
pub(super) async fn status(
    State(backend): State<Arc<HubBackend>>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(id): Path<String>,
) -> Response {
    let actor = Actor::of(&caller, &peer);
    respond(upload_status(&backend, &actor, &id).await)
}

async fn upload_status(
    backend: &Arc<HubBackend>,
    actor: &Actor,
    id: &str,
) -> Result<Response, ApiError> {
    let mut upload = owned(backend, actor, id).await?;
    if let Some(reason) = &upload.refusal {
        return Err(refused(reason));
    }
    if upload.expired() {
        return Err(gone(id));
    }
    if !upload.completed && upload.received == upload.length {
        // The last byte arrived but the page was not recorded (a crash).
        let _busy = Busy::claim(id)?;
        finish(backend, actor, &upload).await?;
        upload.completed = true;
    }
    let mut response = StatusCode::OK.into_response();
    set_header(&mut response, UPLOAD_OFFSET, upload.received.to_string());
    set_header(&mut response, UPLOAD_LENGTH, upload.length.to_string());
    if !upload.metadata.is_empty() {
        set_header(&mut response, UPLOAD_METADATA, upload.metadata.clone());
    }
    if !upload.completed
        && let Some(date) = http_date(&upload.expires_at)
    {
        set_header(&mut response, UPLOAD_EXPIRES, date);
    }
    set_header(&mut response, header::CACHE_CONTROL, "no-store".to_owned());
    Ok(response)
}

/// `PATCH /api/v1/uploads/{id}`: bytes from `Upload-Offset` on.
pub(super) async fn append(
    State(backend): State<Arc<HubBackend>>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let actor = Actor::of(&caller, &peer);
    respond(append_bytes(&backend, &actor, &id, &headers, body).await)
}

async fn append_bytes(
    backend: &Arc<HubBackend>,
    actor: &Actor,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let content_type = header_text(headers, &header::CONTENT_TYPE)?;
    if !content_type.is_some_and(|t| t.eq_ignore_ascii_case(OFFSET_STREAM)) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("a PATCH sends Content-Type: {OFFSET_STREAM}"),
        ));
    }
    let offset = header_u64(headers, &UPLOAD_OFFSET)?
        .ok_or_else(|| ApiError::malformed("Upload-Offset is required"))?;
    let checksum = parse_checksum(headers)?;
    let _busy = Busy::claim(id)?;
    let upload = owned(backend, actor, id).await?;
    if let Some(reason) = &upload.refusal {
        return Err(refused(reason));
    }
    if upload.expired() {
        return Err(gone(id));
    }
    let done = |offset: u64| {
        let mut response = StatusCode::NO_CONTENT.into_response();
        set_header(&mut response, UPLOAD_OFFSET, offset.to_string());
        response
    };
    if offset != upload.received {
        let mut response = ApiError::new(
            StatusCode::CONFLICT,
            "offset_mismatch",
            format!(
                "the hub holds {} bytes of this upload, not {offset}; resume from there",
                upload.received
            ),
        )
        .into_response();
        set_header(&mut response, UPLOAD_OFFSET, upload.received.to_string());
        return Ok(response);
    }
    if upload.completed {
        return Ok(done(upload.length));
    }
    if upload.received == upload.length {
        finish(backend, actor, &upload).await?;
        return Ok(done(upload.length));
    }
    let received = receive(backend, actor, &upload, checksum, body).await?;
    let mut response = done(received);
    if received < upload.length {
        let expires = store::time_after(backend.config().live.expire_after);
        if let Some(date) = http_date(&expires) {
            set_header(&mut response, UPLOAD_EXPIRES, date);
        }
    }
    Ok(response)
}

/// Writes a request body at the upload's offset, verifies its checksum if
/// one was sent, syncs it, records the new offset, and finishes the page
/// when the last byte is in. Returns the new offset. Bytes of a body that
/// broke off are kept (the client resumes after them) unless a checksum
/// was sent, which they cannot match; bytes that fail their checksum or
/// run past `Upload-Length` are dropped.
async fn receive(
    backend: &Arc<HubBackend>,
    actor: &Actor,
    upload: &Upload,
    checksum: Option<Vec<u8>>,
    body: Body,
) -> Result<u64, ApiError> {
    let offset = upload.received;
    let remaining = upload.length - offset;
    let path = upload_path(backend.data_dir(), &upload.id);
    let io = |err: std::io::Error| ApiError::internal(format!("{}: {err}", path.display()));
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&path)
        .await
        .map_err(io)?;
    let held = file.metadata().await.map_err(io)?.len();
    if held < offset {
        return Err(ApiError::internal(format!(
            "{} holds {held} bytes, fewer than the {offset} recorded",
            path.display()
        )));
    }
    // Bytes past the recorded offset were never acknowledged: drop them.
    file.set_len(offset).await.map_err(io)?;
    tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(offset))
        .await
        .map_err(io)?;

    let mut hasher = checksum.as_ref().map(|_| sha2::Sha256::new());
    let mut stream = body.into_data_stream();
    let mut written: u64 = 0;
    let mut refusal: Option<ApiError> = None;
    let mut broken = false;
    while let Some(chunk) = stream.next().await {
        let Ok(bytes) = chunk else {
            broken = true;
            break;
        };
        if written + bytes.len() as u64 > remaining {
            refusal = Some(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the body runs past Upload-Length ({} bytes)", upload.length),
            ));
            break;
        }
        file.write_all(&bytes).await.map_err(io)?;
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(&bytes);
        }
        written += bytes.len() as u64;
    }
    if refusal.is_none()
        && !broken
        && let (Some(expected), Some(hasher)) = (&checksum, hasher)
        && hasher.finalize().as_slice() != expected.as_slice()
    {
        refusal = Some(ApiError::new(
            checksum_mismatch(),
            "checksum_mismatch",
            format!(
                "the {written} bytes sent do not match their Upload-Checksum; they were dropped, send them again from offset {offset}"
            ),
        ));
    }
    if refusal.is_none() && broken && checksum.is_some() {
        refusal = Some(ApiError::malformed(
            "the body broke off before its checksum could be verified; send it again",
        ));
    }
    if let Some(refusal) = refusal {
        file.set_len(offset).await.map_err(io)?;
        return Err(refusal);
    }
    file.sync_data().await.map_err(io)?;
    drop(file);
    let received = offset + written;
    let expires_at = store::time_after(backend.config().live.expire_after);
    let id = upload.id.clone();
    backend
        .db()
        .run(move |conn| {
            conn.execute(
                "UPDATE uploads SET received = ?2, expires_at = ?3 WHERE id = ?1",
                params![id, received, expires_at],
            )
            .map_err(StoreError::from)
        })
        .await?;
    if broken {
        tracing::info!(upload = %upload.id, received, "upload broke off; kept what arrived");
        return Err(ApiError::malformed(format!(
            "the body broke off; {received} bytes are held, resume from there"
        )));
    }
    if received == upload.length {
        finish(backend, actor, upload).await?;
    }
    Ok(received)
}

/// What a finished upload's bytes are as a page.
struct Probe {
    format: &'static str,
    colour: &'static str,
    width: u32,
    height: u32,
    dpi: Option<u32>,
}

fn probe(bytes: Vec<u8>) -> Result<Probe, String> {
    let source =
        decode::open_owned(bytes, &decode::Limits::default()).map_err(|err| err.to_string())?;
    let format = match source.format {
        SourceFormat::Jpeg => "jpeg",
        SourceFormat::Png => "png",
        SourceFormat::Tiff => "tiff",
        SourceFormat::Pdf => {
            return Err(
                "a PDF is not one page image; upload each page as a JPEG, PNG or TIFF".to_owned(),
            );
        }
    };
    if source.frame_count != 1 {
        return Err(format!(
            "a TIFF of {} pages; upload one page per file",
            source.frame_count
        ));
    }
    let frame = source.frame(0).map_err(|err| err.to_string())?;
    Ok(Probe {
        format,
        colour: match frame.colour {
            decode::ColourMode::Bilevel => "bilevel",
            decode::ColourMode::Gray => "gray",
            decode::ColourMode::Colour => "colour",
        },
        width: frame.width,
        height: frame.height,
        dpi: frame.dpi,
    })
}

/// Turns a complete upload into a page of its live business file: checks
/// the image, stores its blob, and records the page and the upload's
/// completion in one transaction (idempotent: a finished upload is left
/// alone). A file that is not a page image is refused and kept.
async fn finish(backend: &Arc<HubBackend>, actor: &Actor, upload: &Upload) -> Result<(), ApiError> {
    let path = upload_path(backend.data_dir(), &upload.id);
    let read = path.clone();
    let (blob, size, probed) = tokio::task::spawn_blocking(move || {
        let bytes = std::fs::read(&read)?;
        let blob = BlobId::of(&bytes);
        let size = bytes.len() as u64;
        Ok::<_, std::io::Error>((blob, size, probe(bytes)))
    })
    .await
    .map_err(|err| ApiError::internal(err.to_string()))?
    .map_err(|err| ApiError::internal(format!("{}: {err}", path.display())))?;
    let filename = parse_metadata(&upload.metadata)
        .ok()
        .and_then(|pairs| metadata(&pairs, "filename").map(str::to_owned));
    let (id, actor_name, kind, address) = (
        upload.id.clone(),
        actor.username.clone(),
        actor.kind,
        actor.address.clone(),
    );
    let file = upload.live_file_id;
    let probed = match probed {
        Ok(probed) => probed,
        Err(reason) => {
            let refused_dir = backend.data_dir().join(UPLOADS_DIR).join(REFUSED_DIR);
            let kept = refused_dir.join(&upload.id);
            let moved =
                std::fs::create_dir_all(&refused_dir).and_then(|()| std::fs::rename(&path, &kept));
            if let Err(err) = moved {
                tracing::warn!(%err, upload = %upload.id, "cannot move a refused upload aside");
            }
            let why = reason.clone();
            backend
                .db()
                .run(move |conn| {
                    conn.execute(
                        "UPDATE uploads SET refusal = ?2 WHERE id = ?1",
                        params![id, why],
                    )
                    .map_err(StoreError::from)?;
                    let number: String = conn
                        .query_row(
                            "SELECT business_number FROM live_files WHERE id = ?1",
                            [file],
                            |row| row.get(0),
                        )
                        .map_err(StoreError::from)?;
                    Audit {
                        actor: &actor_name,
                        kind,
                        address: Some(&address),
                        action: "live.upload",
                        target: &number,
                    }
                    .record(
                        conn,
                        Outcome::Failed,
                        serde_json::json!({ "upload": id, "filename": filename, "reason": why }),
                    )
                })
                .await?;
            tracing::info!(upload = %upload.id, %reason, "upload refused: not a page image");
            return Err(refused(&reason));
        }
    };
    backend
        .store_blob_from(&path, blob, size)
        .await
        .map_err(|err| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                err.message,
            )
        })?;
    let uploaded_by = upload.owner.clone();
    let hooks = backend.config().webhooks.is_some();
    backend
        .db()
        .run(move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(StoreError::from)?;
            let done: bool = tx
                .query_row(
                    "SELECT completed_at IS NOT NULL FROM uploads WHERE id = ?1",
                    [&id],
                    |row| row.get(0),
                )
                .map_err(StoreError::from)?;
            if done {
                return Ok(());
            }
            let page = NewPage {
                blob: blob.to_hex(),
                size,
                format: probed.format,
                width: probed.width,
                height: probed.height,
                dpi: probed.dpi,
                colour: probed.colour,
                filename: filename.clone(),
                uploaded_by,
            };
            let (page_id, number) = live::add_page(&tx, file, &page)?;
            let pages: i64 = tx
                .query_row(
                    "SELECT count(*) FROM live_pages WHERE live_file_id = ?1",
                    [file],
                    |row| row.get(0),
                )
                .map_err(StoreError::from)?;
            webhooks::enqueue(
                &tx,
                hooks,
                webhooks::Event::PagesUploaded,
                &number,
                serde_json::json!({
                    "page": page_id,
                    "blob": page.blob,
                    "filename": filename,
                    "pages": pages,
                    "uploaded_by": page.uploaded_by,
                }),
            )?;
            tx.execute(
                "UPDATE uploads SET completed_at = ?2, page_id = ?3 WHERE id = ?1",
                params![id, store::now(), page_id],
            )
            .map_err(StoreError::from)?;
            Audit {
                actor: &actor_name,
                kind,
                address: Some(&address),
                action: "live.page.add",
                target: &number,
            }
            .record(
                &tx,
                Outcome::Ok,
                serde_json::json!({
                    "upload": id,
                    "page": page_id,
                    "blob": page.blob,
                    "filename": filename,
                }),
            )?;
            tx.commit().map_err(StoreError::from)?;
            Ok::<_, ApiError>(())
        })
        .await?;
    if let Err(err) = tokio::fs::remove_file(&path).await {
        tracing::warn!(%err, upload = %upload.id, "cannot remove a finished upload's bytes");
    }
    tracing::info!(upload = %upload.id, blob = %blob.short(), "live page added");
    Ok(())
}

/// `DELETE /api/v1/uploads/{id}`: terminates an upload and deletes its
/// bytes. A finished upload's page stays in its business file (pages are
/// removed from the file, not through tus).
pub(super) async fn terminate(
    State(backend): State<Arc<HubBackend>>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(id): Path<String>,
) -> Response {
    let actor = Actor::of(&caller, &peer);
    respond(terminate_upload(&backend, &actor, &id).await)
}

async fn terminate_upload(
    backend: &Arc<HubBackend>,
    actor: &Actor,
    id: &str,
) -> Result<Response, ApiError> {
    let _busy = Busy::claim(id)?;
    let upload = owned(backend, actor, id).await?;
    let gone_id = upload.id.clone();
    backend
        .db()
        .run(move |conn| {
            conn.execute("DELETE FROM uploads WHERE id = ?1", [gone_id])
                .map_err(StoreError::from)
        })
        .await?;
    let path = upload_path(backend.data_dir(), id);
    if let Err(err) = tokio::fs::remove_file(&path).await
        && err.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(%err, upload = %id, "cannot remove a terminated upload's bytes");
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Deletes unfinished uploads past their expiry and their bytes
/// (housekeeping). Returns how many.
pub fn expire(conn: &Connection, data_dir: &FsPath) -> Result<usize, StoreError> {
    let mut statement = conn.prepare(
        "SELECT id FROM uploads
         WHERE completed_at IS NULL AND refusal IS NULL AND expires_at < ?1",
    )?;
    let ids = statement
        .query_map([store::now()], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut removed = 0;
    for id in ids {
        let Ok(_busy) = Busy::claim(&id) else {
            continue;
        };
        conn.execute(
            "DELETE FROM uploads WHERE id = ?1 AND completed_at IS NULL",
            [&id],
        )?;
        match std::fs::remove_file(upload_path(data_dir, &id)) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => tracing::warn!(%err, upload = %id, "cannot remove an expired upload"),
        }
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_pairs_decode_and_repeats_are_refused() {
        let pairs =
            parse_metadata("business_number WUwyMDI2MDE=,filename 5omr5o+PLmpwZw==,flag").unwrap();
        assert_eq!(metadata(&pairs, "business_number"), Some("YL202601"));
        assert_eq!(metadata(&pairs, "filename"), Some("扫描.jpg"));
        assert_eq!(metadata(&pairs, "flag"), None);
        assert!(parse_metadata("a YQ==,a Yg==").is_err());
        assert!(parse_metadata("a !!!").is_err());
    }
}
