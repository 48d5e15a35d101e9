//! The edge's half of the protocol: a typed HTTP client for `/sync/v2`
//! (or, set up with [`ProtocolVersion::V1`], for a hub of the previous
//! release, which has no warehouse feeds).
//!
//! It speaks the protocol and nothing else: which batches to offer, when,
//! and how often to retry are the edge's policy. [`ClientError::is_retryable`]
//! and [`full_jitter_backoff`] help with the last.
use std::io::{self, Cursor, SeekFrom};
use std::path::Path;
use std::time::Duration;

use async_compression::Level;
use async_compression::tokio::bufread::ZstdEncoder;
use bytes::Bytes;
use dangan_shared::BlobId;
use futures_util::future::Either;
use futures_util::{Stream, StreamExt};
use reqwest::header::{
    AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncSeekExt, BufReader};
use tokio_util::io::ReaderStream;

use crate::ProtocolVersion;
use crate::manifest::is_hash_hex;
use crate::wire::{
    BatchListing, BlobStatus, CommitRequest, DictionaryFeed, EnrolRequest, EnrolResponse,
    ErrorBody, ErrorCode, LoanRequestFeed, OfferResponse, QueueReport, Receipt, WarehouseCursor,
    WarehouseEvents, header, is_feed_id,
};

/// Size of the chunks of compressed bodies.
pub const FILE_CHUNK: usize = 64 * 1024;
/// Piece size of an uncompressed upload body.
pub const RAW_CHUNK: usize = 1 << 20;

/// The zstd level offers and [`file_body`] compress with: fast, and most of
/// what higher levels would gain on JSON.
pub const ZSTD_LEVEL: i32 = 3;

/// How a [`Client`] connects.
#[derive(Clone)]
pub struct ClientOptions {
    /// The node's credential from enrolment; `None` only for enrolling.
    pub token: Option<String>,
    /// An extra trusted root certificate (PEM, one or more) for a hub whose
    /// certificate a private CA issued; the system's roots stay trusted.
    pub ca_cert_pem: Option<Vec<u8>>,
    pub connect_timeout: Duration,
    /// Bounds every exchange except a blob upload, whose length depends on
    /// the blob and the line (the caller's body stream bounds that one).
    pub request_timeout: Duration,
    pub user_agent: String,
    /// The protocol version to speak: [`ProtocolVersion::V2`] (the
    /// default) to a hub of this release, [`ProtocolVersion::V1`] to one of
    /// the previous release (every v1 exchange works; the warehouse feeds
    /// answer [`ClientError::Unsupported`] without asking).
    pub protocol: ProtocolVersion,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            token: None,
            ca_cert_pem: None,
            connect_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(120),
            user_agent: format!("dangan-sync/{}", env!("CARGO_PKG_VERSION")),
            protocol: ProtocolVersion::default(),
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_cert_pem", &self.ca_cert_pem.as_ref().map(Vec::len))
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("user_agent", &self.user_agent)
            .field("protocol", &self.protocol)
            .finish()
    }
}

/// What went wrong talking to the hub.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The hub answered with an error status. `code` and `message` come from
    /// its `ErrorBody` when it sent one; `offset` from `Upload-Offset` (on
    /// `409 offset_mismatch`, where to resume).
    #[error("hub answered {status}{}: {message}", code.map(|code| format!(" {code}")).unwrap_or_default())]
    Hub {
        status: u16,
        code: Option<ErrorCode>,
        message: String,
        offset: Option<u64>,
    },
    /// No answer: connection refused or reset, timeout, body cut.
    #[error("transport: {0}")]
    Transport(String),
    /// An answer this client cannot read.
    #[error("unreadable answer: {0}")]
    Decode(String),
    /// The client is set up wrong (base URL, certificate, token).
    #[error("client configuration: {0}")]
    Config(String),
    /// The protocol version the client speaks has no such exchange (the
    /// warehouse feeds under v1); nothing was sent.
    #[error("the hub protocol {version} has no {what}")]
    Unsupported {
        version: ProtocolVersion,
        what: &'static str,
    },
}

impl ClientError {
    /// True when the same request may succeed later: transport failures,
    /// server errors (5xx), `429`, and `409 blob_busy`.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Hub { status, code, .. } => {
                *status >= 500 || *status == 429 || *code == Some(ErrorCode::BlobBusy)
            }
            Self::Decode(_) | Self::Config(_) | Self::Unsupported { .. } => false,
        }
    }

    /// True for a `404` without the protocol's error body: the hub has no
    /// such route at all, as a hub of the previous release answers every
    /// `/sync/v2` path. (A protocol `404 not_found` carries its code.)
    pub fn is_unknown_route(&self) -> bool {
        matches!(
            self,
            Self::Hub {
                status: 404,
                code: None,
                ..
            }
        )
    }

    /// The protocol's error code, when the hub sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Hub { code, .. } => *code,
            _ => None,
        }
    }
}

/// A suggested wait before retry number `attempt` (from 0): exponential
/// backoff with full jitter, uniformly random in `[0, min(cap, base × 2^attempt)]`.
pub fn full_jitter_backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base
        .checked_mul(1_u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(cap)
        .min(cap);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    // A failed random source only loses the jitter, never the wait.
    let random = getrandom::u64().unwrap_or(u64::MAX);
    Duration::from_millis(random % millis.saturating_add(1))
}

/// A typed client of one hub's `/sync/v2` (or `/sync/v1`, see
/// [`ClientOptions::protocol`]).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The hub's base URL without a trailing slash, e.g. `https://hub:8443`.
    base: String,
    authorization: Option<HeaderValue>,
    request_timeout: Duration,
    protocol: ProtocolVersion,
}

// The exchanges below name their paths as `/sync/vN/...`: `N` is the
// client's protocol version (every v1 exchange is the same in v2).

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("authorised", &self.authorization.is_some())
            .field("protocol", &self.protocol)
            .finish()
    }
}

impl Client {
    /// A client of the hub at `base_url` (`https://host:port`, optionally
    /// with a path the hub's routes sit under).
    pub fn new(base_url: &str, options: ClientOptions) -> Result<Self, ClientError> {
        let url = Url::parse(base_url)
            .map_err(|error| ClientError::Config(format!("hub URL {base_url:?}: {error}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ClientError::Config(format!(
                "hub URL {base_url:?} is not http or https"
            )));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ClientError::Config(format!(
                "hub URL {base_url:?} has a query or fragment"
            )));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .tcp_keepalive(Duration::from_secs(30))
            .user_agent(options.user_agent);
        if let Some(pem) = &options.ca_cert_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|error| ClientError::Config(format!("CA certificate: {error}")))?;
            if certificates.is_empty() {
                return Err(ClientError::Config(
                    "CA certificate: no certificate in the PEM".to_owned(),
                ));
            }
            builder = builder.tls_certs_merge(certificates);
        }
        let http = builder
            .build()
            .map_err(|error| ClientError::Config(error_chain(&error)))?;
        let authorization = options.token.map(|token| bearer(&token)).transpose()?;
        Ok(Self {
            http,
            base: url.as_str().trim_end_matches('/').to_owned(),
            authorization,
            request_timeout: options.request_timeout,
            protocol: options.protocol,
        })
    }

    /// The protocol version this client speaks.
    pub fn protocol(&self) -> ProtocolVersion {
        self.protocol
    }

    /// The same client with another credential (after enrolment).
    pub fn with_token(mut self, token: &str) -> Result<Self, ClientError> {
        self.authorization = Some(bearer(token)?);
        Ok(self)
    }

    /// `POST /sync/vN/enrol`: exchanges a one-time code for a credential.
    pub async fn enrol(&self, request: &EnrolRequest) -> Result<EnrolResponse, ClientError> {
        let builder = self.request(Method::POST, "/enrol", false)?;
        let response = self.send(json_body(builder, request)?).await?;
        decode(response).await
    }

    /// `POST /sync/vN/queue`: reports the edge's queue.
    pub async fn report_queue(&self, report: &QueueReport) -> Result<(), ClientError> {
        let builder = self.request(Method::POST, "/queue", true)?;
        self.send(json_body(builder, report)?).await?;
        Ok(())
    }

    /// `POST /sync/vN/offers`: offers a manifest, given as its canonical
    /// bytes and their hash; sent zstd-compressed.
    pub async fn offer(
        &self,
        canonical_manifest: Vec<u8>,
        manifest_hash: &str,
    ) -> Result<OfferResponse, ClientError> {
        let hash = HeaderValue::from_str(manifest_hash)
            .map_err(|_| ClientError::Config(format!("manifest hash {manifest_hash:?}")))?;
        let encoder =
            ZstdEncoder::with_quality(Cursor::new(canonical_manifest), Level::Precise(ZSTD_LEVEL));
        let body = reqwest::Body::wrap_stream(ReaderStream::with_capacity(encoder, FILE_CHUNK));
        let builder = self
            .request(Method::POST, "/offers", true)?
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_ENCODING, "zstd")
            .header(header::MANIFEST_HASH, hash)
            .body(body);
        decode(self.send(builder).await?).await
    }

    /// `GET /sync/vN/offers/{hash}/missing`: the next page of missing blobs
    /// of an offer, after `after` (the previous page's `next`).
    pub async fn missing(
        &self,
        manifest_hash: &str,
        after: Option<BlobId>,
    ) -> Result<OfferResponse, ClientError> {
        if !is_hash_hex(manifest_hash) {
            return Err(ClientError::Config(format!(
                "{manifest_hash:?} is not a manifest hash"
            )));
        }
        let mut url = self.url(&format!("/offers/{manifest_hash}/missing"))?;
        if let Some(after) = after {
            url.query_pairs_mut().append_pair("after", &after.to_hex());
        }
        let builder = self.request_url(Method::GET, url, true)?;
        decode(self.send(builder).await?).await
    }

    /// `HEAD /sync/vN/blobs/{id}`: what the hub holds of a blob; `None` when
    /// it knows nothing of it.
    pub async fn blob_status(&self, blob: BlobId) -> Result<Option<BlobStatus>, ClientError> {
        let builder = self.request(Method::HEAD, &format!("/blobs/{blob}"), true)?;
        let response = builder
            .timeout(self.request_timeout)
            .send()
            .await
            .map_err(transport)?;
        match response.status() {
            status if status.is_success() => parse_blob_status(response.headers()).map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            status => Err(ClientError::Hub {
                status: status.as_u16(),
                code: None,
                message: format!("HEAD of blob {} answered {status}", blob.short()),
                offset: None,
            }),
        }
    }

    /// `PATCH /sync/vN/blobs/{id}`: sends a blob of `length` bytes from
    /// `offset`. The caller builds `body` (see [`file_body`]), so it owns
    /// bandwidth limits and byte counts, and says whether it is
    /// zstd-compressed; an uncompressed body must hold exactly `length -
    /// offset` bytes (it is sent with that Content-Length). An error in
    /// `body` aborts the request; the hub keeps what arrived, and
    /// [`Client::blob_status`] says where to resume.
    pub async fn upload_blob<S>(
        &self,
        blob: BlobId,
        offset: u64,
        length: u64,
        zstd: bool,
        body: S,
    ) -> Result<BlobStatus, ClientError>
    where
        S: Stream<Item = io::Result<Bytes>> + Send + 'static,
    {
        let mut builder = self
            .request(Method::PATCH, &format!("/blobs/{blob}"), true)?
            .header(header::UPLOAD_OFFSET, offset)
            .header(header::UPLOAD_LENGTH, length)
            .header(CONTENT_TYPE, header::OFFSET_OCTET_STREAM);
        if zstd {
            builder = builder.header(CONTENT_ENCODING, "zstd");
        } else {
            // The body's length is known: sent with it rather than chunked,
            // the hub knows the body has ended with its last byte.
            builder = builder.header(CONTENT_LENGTH, length.saturating_sub(offset));
        }
        // No total timeout: a large blob on a slow line takes what it takes.
        let request = builder
            .body(reqwest::Body::wrap_stream(body))
            .build()
            .map_err(|error| ClientError::Config(error_chain(&error)))?;
        let response = self.http.execute(request).await.map_err(transport)?;
        let response = check(response).await?;
        parse_blob_status(response.headers())
    }

    /// `POST /sync/vN/commit`: archives an offered manifest; the answer is
    /// the hub's signed receipt (the same one for a repeated commit).
    pub async fn commit(&self, request: &CommitRequest) -> Result<Receipt, ClientError> {
        let builder = self.request(Method::POST, "/commit", true)?;
        decode(self.send(json_body(builder, request)?).await?).await
    }

    /// `GET /sync/vN/batches`: one page of the node's district's batches at
    /// the hub, after the batch named `after` (the previous page's `next`).
    pub async fn list_batches(&self, after: Option<&str>) -> Result<BatchListing, ClientError> {
        let mut url = self.url("/batches")?;
        if let Some(after) = after {
            url.query_pairs_mut().append_pair("after", after);
        }
        let builder = self.request_url(Method::GET, url, true)?;
        decode(self.send(builder).await?).await
    }

    /// `GET /sync/vN/feeds/dictionaries`: the dictionary and template
    /// versions published after cursor `after`.
    pub async fn dictionary_feed(&self, after: u64) -> Result<DictionaryFeed, ClientError> {
        let mut url = self.url("/feeds/dictionaries")?;
        url.query_pairs_mut()
            .append_pair("after", &after.to_string());
        let builder = self.request_url(Method::GET, url, true)?;
        decode(self.send(builder).await?).await
    }

    /// `GET /sync/v2/feeds/warehouse?feed=ID`: how far the hub has applied
    /// this node's warehouse feed `feed` (0 for a feed it never saw).
    pub async fn warehouse_cursor(&self, feed: &str) -> Result<WarehouseCursor, ClientError> {
        self.require_warehouse_feeds("warehouse feed")?;
        if !is_feed_id(feed) {
            return Err(ClientError::Config(format!(
                "{feed:?} is not a warehouse feed id"
            )));
        }
        let mut url = self.url("/feeds/warehouse")?;
        url.query_pairs_mut().append_pair("feed", feed);
        let builder = self.request_url(Method::GET, url, true)?;
        decode(self.send(builder).await?).await
    }

    /// `POST /sync/v2/feeds/warehouse`: sends the next events of a warehouse
    /// feed (at most [`crate::server::WAREHOUSE_EVENTS_MAX`], `seq`s rising
    /// by one); the answer is the hub's cursor after applying them. Events
    /// the hub applied already are skipped there, so sending from a stale
    /// cursor is harmless; events that leave a gap after the hub's cursor
    /// are `409 feed_gap` ([`ErrorCode::FeedGap`]): ask
    /// [`Client::warehouse_cursor`] and send from there.
    pub async fn push_warehouse(
        &self,
        events: &WarehouseEvents,
    ) -> Result<WarehouseCursor, ClientError> {
        self.require_warehouse_feeds("warehouse feed")?;
        let builder = self.request(Method::POST, "/feeds/warehouse", true)?;
        decode(self.send(json_body(builder, events)?).await?).await
    }

    /// `GET /sync/v2/feeds/loan-requests`: the hub reviewers' requests to
    /// borrow originals of this node's district, after cursor `after`.
    pub async fn loan_requests(&self, after: u64) -> Result<LoanRequestFeed, ClientError> {
        self.require_warehouse_feeds("loan-request feed")?;
        let mut url = self.url("/feeds/loan-requests")?;
        url.query_pairs_mut()
            .append_pair("after", &after.to_string());
        let builder = self.request_url(Method::GET, url, true)?;
        decode(self.send(builder).await?).await
    }

    fn require_warehouse_feeds(&self, what: &'static str) -> Result<(), ClientError> {
        if self.protocol.has_warehouse_feeds() {
            Ok(())
        } else {
            Err(ClientError::Unsupported {
                version: self.protocol,
                what,
            })
        }
    }

    fn url(&self, path: &str) -> Result<Url, ClientError> {
        let text = format!("{}{}{path}", self.base, self.protocol.prefix());
        Url::parse(&text).map_err(|error| ClientError::Config(format!("URL {text:?}: {error}")))
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        authorised: bool,
    ) -> Result<RequestBuilder, ClientError> {
        self.request_url(method, self.url(path)?, authorised)
    }

    fn request_url(
        &self,
        method: Method,
        url: Url,
        authorised: bool,
    ) -> Result<RequestBuilder, ClientError> {
        let builder = self.http.request(method, url);
        if !authorised {
            return Ok(builder);
        }
        let authorization = self.authorization.clone().ok_or_else(|| {
            ClientError::Config("this client has no token; enrol first".to_owned())
        })?;
        Ok(builder.header(AUTHORIZATION, authorization))
    }

    async fn send(&self, builder: RequestBuilder) -> Result<Response, ClientError> {
        let response = builder
            .timeout(self.request_timeout)
            .send()
            .await
            .map_err(transport)?;
        check(response).await
    }
}

/// A file's bytes from `offset` to its end as a body for
/// [`Client::upload_blob`]: zstd-compressed on the fly in 64 KiB chunks
/// when `zstd` is set, else read in [`RAW_CHUNK`] pieces, each with one
/// blocking read straight into the buffer that goes on the wire.
///
/// `length` is the blob's length as its manifest gives it. A file of any
/// other length is refused at once with [`io::ErrorKind::InvalidData`]: it
/// is not the blob, and sending it would only end in an aborted body (or a
/// hash mismatch) on every retry.
pub async fn file_body(
    path: impl AsRef<Path>,
    offset: u64,
    length: u64,
    zstd: bool,
) -> io::Result<impl Stream<Item = io::Result<Bytes>> + Send + 'static> {
    if zstd {
        let mut file = tokio::fs::File::open(path).await?;
        check_length(file.metadata().await?.len(), length)?;
        file.seek(SeekFrom::Start(offset)).await?;
        let reader = BufReader::with_capacity(FILE_CHUNK, file);
        let encoder = ZstdEncoder::with_quality(reader, Level::Precise(ZSTD_LEVEL));
        return Ok(Either::Left(ReaderStream::with_capacity(
            encoder, FILE_CHUNK,
        )));
    }
    let path = path.as_ref().to_owned();
    // The first chunk is read with the opening: a page (usually one chunk)
    // costs one trip to a blocking thread.
    let (first, rest) = blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        check_length(file.metadata()?.len(), length)?;
        std::io::Seek::seek(&mut file, SeekFrom::Start(offset))?;
        let left = length.saturating_sub(offset);
        let first = read_chunk(&file, left)?;
        let read = first.as_ref().map_or(0, |chunk| chunk.len() as u64);
        Ok((first, (file, left - read)))
    })
    .await?;
    let rest = futures_util::stream::try_unfold(rest, |(file, left)| async move {
        if left == 0 {
            // The body ends now, without another trip to a blocking thread.
            return Ok(None);
        }
        blocking(move || {
            Ok(read_chunk(&file, left)?.map(|chunk| {
                let read = chunk.len() as u64;
                (chunk, (file, left - read))
            }))
        })
        .await
    });
    Ok(Either::Right(
        futures_util::stream::iter(first.map(Ok::<_, io::Error>)).chain(rest),
    ))
}

fn check_length(actual: u64, expected: u64) -> io::Result<()> {
    if actual == expected {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the file holds {actual} bytes where the blob has {expected}"),
    ))
}

/// Up to [`RAW_CHUNK`] of the `left` bytes still to read from `file`, with
/// one read straight into the buffer that goes on the wire; `None` when
/// nothing is left.
fn read_chunk(mut file: &std::fs::File, left: u64) -> io::Result<Option<Bytes>> {
    if left == 0 {
        return Ok(None);
    }
    let want = left.min(RAW_CHUNK as u64);
    let mut chunk = Vec::with_capacity(want as usize);
    let read = std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, want), &mut chunk)?;
    if read == 0 {
        // Shorter than its length said: it shrank while read.
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file ended early",
        ));
    }
    Ok(Some(Bytes::from(chunk)))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| io::Error::other(err.to_string()))?
}

fn bearer(token: &str) -> Result<HeaderValue, ClientError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| ClientError::Config("the token is not a valid header value".to_owned()))?;
    value.set_sensitive(true);
    Ok(value)
}

fn json_body<T: Serialize>(
    builder: RequestBuilder,
    body: &T,
) -> Result<RequestBuilder, ClientError> {
    let bytes = serde_json::to_vec(body)
        .map_err(|error| ClientError::Config(format!("encoding the request: {error}")))?;
    Ok(builder.header(CONTENT_TYPE, "application/json").body(bytes))
}

/// Passes a success through; turns an error status into [`ClientError::Hub`].
async fn check(response: Response) -> Result<Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let offset = response
        .headers()
        .get(header::UPLOAD_OFFSET)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse().ok());
    let body = response.bytes().await.unwrap_or_default();
    let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(error) => (Some(error.error), error.message),
        Err(_) => {
            let text = String::from_utf8_lossy(&body);
            let text: String = text.trim().chars().take(500).collect();
            let message = if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                text
            };
            (None, message)
        }
    };
    Err(ClientError::Hub {
        status: status.as_u16(),
        code,
        message,
        offset,
    })
}

async fn decode<T: DeserializeOwned>(response: Response) -> Result<T, ClientError> {
    let body = response.bytes().await.map_err(transport)?;
    serde_json::from_slice(&body).map_err(|error| ClientError::Decode(error.to_string()))
}

fn parse_blob_status(headers: &HeaderMap) -> Result<BlobStatus, ClientError> {
    fn text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ClientError> {
        headers
            .get(name)
            .map(|value| {
                value
                    .to_str()
                    .map(str::trim)
                    .map_err(|_| ClientError::Decode(format!("{name} is not text")))
            })
            .transpose()
    }
    fn number(headers: &HeaderMap, name: &str) -> Result<Option<u64>, ClientError> {
        text(headers, name)?
            .map(|text| {
                text.parse()
                    .map_err(|_| ClientError::Decode(format!("{name} {text:?} is not a number")))
            })
            .transpose()
    }
    let offset = number(headers, header::UPLOAD_OFFSET)?
        .ok_or_else(|| ClientError::Decode("no Upload-Offset in the answer".to_owned()))?;
    let length = number(headers, header::UPLOAD_LENGTH)?;
    let complete = match text(headers, header::BLOB_COMPLETE)? {
        Some("true") => true,
        Some("false") => false,
        other => {
            return Err(ClientError::Decode(format!(
                "Blob-Complete is {other:?}, not true or false"
            )));
        }
    };
    Ok(BlobStatus {
        offset,
        length,
        complete,
    })
}

fn transport(error: reqwest::Error) -> ClientError {
    if error.is_builder() {
        ClientError::Config(error_chain(&error))
    } else {
        ClientError::Transport(error_chain(&error))
    }
}

/// An error and its causes on one line, e.g. "error sending request: connection refused".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_errors() {
        let hub = |status, code| ClientError::Hub {
            status,
            code,
            message: String::new(),
            offset: None,
        };
        assert!(ClientError::Transport("reset".to_owned()).is_retryable());
        assert!(hub(503, Some(ErrorCode::StorageUnavailable)).is_retryable());
        assert!(hub(500, None).is_retryable());
        assert!(hub(429, None).is_retryable());
        assert!(hub(409, Some(ErrorCode::BlobBusy)).is_retryable());
        assert!(!hub(409, Some(ErrorCode::MissingBlobs)).is_retryable());
        assert!(!hub(422, Some(ErrorCode::BlobHashMismatch)).is_retryable());
        assert!(!hub(401, Some(ErrorCode::Unauthorized)).is_retryable());
        assert!(!ClientError::Decode("x".to_owned()).is_retryable());
        let unsupported = ClientError::Unsupported {
            version: ProtocolVersion::V1,
            what: "warehouse feed",
        };
        assert!(!unsupported.is_retryable());
        assert_eq!(
            unsupported.to_string(),
            "the hub protocol v1 has no warehouse feed"
        );
        assert!(hub(404, None).is_unknown_route());
        assert!(!hub(404, Some(ErrorCode::NotFound)).is_unknown_route());
        assert_eq!(
            hub(409, Some(ErrorCode::BlobBusy)).code(),
            Some(ErrorCode::BlobBusy)
        );
    }

    #[tokio::test]
    async fn a_file_body_is_read_from_its_offset_and_only_at_its_length() {
        use futures_util::TryStreamExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let bytes: Vec<u8> = (0..RAW_CHUNK + 1000).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let length = bytes.len() as u64;
        let sent = async |offset, zstd| -> Vec<u8> {
            let body: Vec<Bytes> = file_body(&path, offset, length, zstd)
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            let body = body.concat();
            if zstd {
                zstd::decode_all(&body[..]).unwrap()
            } else {
                body
            }
        };
        assert_eq!(sent(0, false).await, bytes);
        assert_eq!(sent(0, true).await, bytes);
        assert_eq!(sent(5000, false).await, bytes[5000..]);
        // A file of another length is not the blob: refused before any byte.
        for zstd in [false, true] {
            let Err(refused) = file_body(&path, 0, length + 1, zstd).await else {
                panic!("a longer blob was read from a shorter file");
            };
            assert_eq!(refused.kind(), io::ErrorKind::InvalidData);
        }
    }

    #[test]
    fn backoff_stays_under_its_ceiling() {
        let base = Duration::from_millis(500);
        let cap = Duration::from_secs(60);
        for attempt in [0, 1, 5, 31, 32, 1000] {
            let ceiling = base.saturating_mul(2_u32.saturating_pow(attempt)).min(cap);
            assert!(full_jitter_backoff(attempt, base, cap) <= ceiling);
        }
        assert_eq!(full_jitter_backoff(3, Duration::ZERO, cap), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_v1_client_has_no_warehouse_feeds_and_sends_nothing() {
        // Nothing listens at this address: an attempt would be a transport error.
        let options = ClientOptions {
            token: Some("dn_x".to_owned()),
            protocol: ProtocolVersion::V1,
            ..ClientOptions::default()
        };
        let client = Client::new("http://127.0.0.1:9", options).unwrap();
        assert_eq!(client.protocol(), ProtocolVersion::V1);
        assert_eq!(client.url("/commit").unwrap().path(), "/sync/v1/commit");
        let refused = client.warehouse_cursor("feed-1").await.unwrap_err();
        assert!(
            matches!(refused, ClientError::Unsupported { .. }),
            "{refused:?}"
        );
        let refused = client.loan_requests(0).await.unwrap_err();
        assert!(
            matches!(refused, ClientError::Unsupported { .. }),
            "{refused:?}"
        );
        let v2 = Client::new("http://127.0.0.1:9/base/", ClientOptions::default()).unwrap();
        assert_eq!(v2.url("/commit").unwrap().path(), "/base/sync/v2/commit");
    }

    #[test]
    fn bad_configuration_is_reported() {
        assert!(matches!(
            Client::new("ftp://hub", ClientOptions::default()),
            Err(ClientError::Config(_))
        ));
        assert!(matches!(
            Client::new("not a url", ClientOptions::default()),
            Err(ClientError::Config(_))
        ));
        let options = ClientOptions {
            ca_cert_pem: Some(b"no certificate here".to_vec()),
            ..ClientOptions::default()
        };
        assert!(matches!(
            Client::new("https://hub", options),
            Err(ClientError::Config(_))
        ));
        let options = ClientOptions {
            token: Some("line\nbreak".to_owned()),
            ..ClientOptions::default()
        };
        assert!(matches!(
            Client::new("https://hub", options),
            Err(ClientError::Config(_))
        ));
    }
}
