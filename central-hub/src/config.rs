//! `hub.toml`: read into a raw struct with documented defaults, then
//! validated into the [`Config`] the hub is built from.
//!
//! Every field has a default, so an empty file is a working embedded setup
//! (SQLite and a local blob folder inside the data folder). The example
//! written by `init` ([`EXAMPLE`]) documents each field and what goes wrong
//! if it is set badly; keep the two in step.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dangan_sync::server::Limits;
use serde::Deserialize;

/// The file name of the configuration inside the data folder.
pub const FILE_NAME: &str = "hub.toml";

/// The default listen address: loopback only, so a fresh hub is not exposed
/// before an administrator decides where it should listen.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8700";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {field} {problem}")]
    Invalid {
        path: PathBuf,
        field: &'static str,
        problem: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    storage: RawStorage,
    uploads: RawUploads,
    limits: RawLimits,
    reconcile: RawReconcile,
    users: RawUsers,
    pdf: RawPdf,
    live: RawLive,
    webhooks: RawWebhooks,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawWebhooks {
    url: String,
    secret_file: String,
    max_attempts: u32,
}

impl Default for RawWebhooks {
    fn default() -> Self {
        Self {
            url: String::new(),
            secret_file: "webhook.secret".to_owned(),
            max_attempts: 15,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawLive {
    time_zone: String,
    embed_origins: Vec<String>,
    max_page_mib: u64,
    expire_hours: u64,
    /// Finer than hours, for tests; overrides `expire_hours`.
    expire_seconds: Option<u64>,
}

impl Default for RawLive {
    fn default() -> Self {
        Self {
            time_zone: "Asia/Shanghai".to_owned(),
            embed_origins: Vec::new(),
            max_page_mib: 100,
            expire_hours: 24,
            expire_seconds: None,
        }
    }
}

/// Debian's fonts-wqy-zenhei (文泉驿正黑), which `.ci/run` and the package install.
pub const DEFAULT_PDF_FONT: &str = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc";

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawPdf {
    font: String,
    font_index: u32,
    time_zone: String,
}

impl Default for RawPdf {
    fn default() -> Self {
        Self {
            font: DEFAULT_PDF_FONT.into(),
            font_index: 0,
            time_zone: String::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawUsers {
    memory_kib: u32,
    iterations: u32,
    max_failed_logins: u32,
    lockout_minutes: u64,
}

impl Default for RawUsers {
    fn default() -> Self {
        let cost = dangan_shared::password::PasswordCost::default();
        Self {
            memory_kib: cost.memory_kib,
            iterations: cost.iterations,
            max_failed_logins: 5,
            lockout_minutes: 15,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawServer {
    listen: String,
    tls_cert: String,
    tls_key: String,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.into(),
            tls_cert: String::new(),
            tls_key: String::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawStorage {
    backend: String,
    path: String,
    s3: RawS3,
}

impl Default for RawStorage {
    fn default() -> Self {
        Self {
            backend: "local".into(),
            path: "blobs".into(),
            s3: RawS3::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawS3 {
    endpoint: String,
    bucket: String,
    region: String,
    prefix: String,
    allow_http: bool,
}

impl Default for RawS3 {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            bucket: String::new(),
            region: "us-east-1".into(),
            prefix: String::new(),
            allow_http: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawUploads {
    partial_expiry_hours: u64,
}

impl Default for RawUploads {
    fn default() -> Self {
        Self {
            partial_expiry_hours: 24,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawLimits {
    max_manifest_mib: u64,
    max_blob_mib: u64,
    max_json_kib: u64,
    missing_page: u32,
}

impl Default for RawLimits {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            max_manifest_mib: limits.max_manifest_bytes >> 20,
            max_blob_mib: limits.max_blob_bytes >> 20,
            max_json_kib: limits.max_json_bytes >> 10,
            missing_page: limits.missing_page,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawReconcile {
    stale_after_hours: u64,
    /// Overrides `stale_after_hours` with a finer threshold (drills, tests).
    stale_after_seconds: Option<u64>,
}

impl Default for RawReconcile {
    fn default() -> Self {
        Self {
            stale_after_hours: 24,
            stale_after_seconds: None,
        }
    }
}

/// Where complete blobs are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// A folder (absolute, or resolved against the data folder).
    Local { path: PathBuf },
    /// An S3-compatible bucket. Credentials come from the environment
    /// (`DANGAN_HUB_S3_ACCESS_KEY_ID`, `DANGAN_HUB_S3_SECRET_ACCESS_KEY`).
    S3 {
        endpoint: String,
        bucket: String,
        region: String,
        prefix: String,
        allow_http: bool,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Certificate chain and private key (PEM) for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub storage: Storage,
    /// Partial uploads untouched for this long are deleted.
    pub partial_expiry: Duration,
    pub limits: Limits,
    /// A district whose nodes have not been in contact for this long is
    /// flagged stale in the reconciliation.
    pub stale_after: Duration,
    /// Argon2id cost of new password hashes.
    pub password_cost: dangan_shared::password::PasswordCost,
    /// Failed logins in a row that lock an account, and for how long.
    pub lockout: crate::users::Lockout,
    /// How business files are written as PDFs.
    pub pdf: PdfConfig,
    /// Street offices' live uploads (tus).
    pub live: LiveConfig,
    /// The business system's webhook, when one is configured.
    pub webhooks: Option<WebhookConfig>,
}

/// `[webhooks]`: where live-upload events are POSTed.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    /// The shared HMAC secret (made on first start when missing).
    pub secret_file: PathBuf,
    /// Attempts before an event is given up.
    pub max_attempts: u32,
}

/// `[live]`: street offices' live uploads over tus.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// The time zone months are closed in (月结).
    pub time_zone: jiff::tz::TimeZone,
    /// Origins (e.g. `https://biz.example`) whose pages may frame a viewer
    /// link (`frame-ancestors`), besides the hub's own.
    pub embed_origins: Vec<String>,
    /// The largest page image one upload may carry (`Tus-Max-Size`).
    pub max_page_bytes: u64,
    /// An unfinished upload untouched for this long expires.
    pub expire_after: Duration,
}

/// `[pdf]`: the watermarked PDF downloads.
#[derive(Debug, Clone)]
pub struct PdfConfig {
    /// A CJK TrueType/OpenType font or collection, embedded as a subset.
    pub font: PathBuf,
    /// Which font of a collection (`.ttc`).
    pub font_index: u32,
    /// The time zone of the watermark's time.
    pub time_zone: jiff::tz::TimeZone,
}

const HOUR: u64 = 3600;
const MIB: u64 = 1024 * 1024;

impl Config {
    /// Reads `hub.toml` from the data folder; a missing file means defaults.
    pub fn load(data_dir: &Path) -> Result<Self, ConfigError> {
        let path = data_dir.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Self::parse(&text, &path, data_dir)
    }

    /// Parses `text` (read from `path`); relative paths resolve against `data_dir`.
    pub fn parse(text: &str, path: &Path, data_dir: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: path.to_owned(),
            message: err.to_string(),
        })?;
        Self::resolve(raw, path, data_dir)
    }

    fn resolve(raw: RawConfig, path: &Path, data_dir: &Path) -> Result<Self, ConfigError> {
        let invalid = |field: &'static str, problem: &str| ConfigError::Invalid {
            path: path.to_owned(),
            field,
            problem: problem.to_owned(),
        };
        let listen: SocketAddr = raw.server.listen.parse().map_err(|_| {
            invalid(
                "server.listen",
                "must be an IP address and port, e.g. 0.0.0.0:8700",
            )
        })?;
        let tls = match (
            raw.server.tls_cert.is_empty(),
            raw.server.tls_key.is_empty(),
        ) {
            (true, true) => None,
            (false, false) => Some((
                data_dir.join(&raw.server.tls_cert),
                data_dir.join(&raw.server.tls_key),
            )),
            _ => {
                return Err(invalid(
                    "server.tls_cert",
                    "and server.tls_key must be given together",
                ));
            }
        };
        let storage = match raw.storage.backend.as_str() {
            "local" => {
                if raw.storage.path.trim().is_empty() {
                    return Err(invalid("storage.path", "is empty"));
                }
                Storage::Local {
                    path: data_dir.join(&raw.storage.path),
                }
            }
            "s3" => {
                let s3 = raw.storage.s3;
                if s3.bucket.is_empty() {
                    return Err(invalid("storage.s3.bucket", "is required for backend s3"));
                }
                Storage::S3 {
                    endpoint: s3.endpoint,
                    bucket: s3.bucket,
                    region: s3.region,
                    prefix: s3.prefix,
                    allow_http: s3.allow_http,
                }
            }
            _ => return Err(invalid("storage.backend", "must be \"local\" or \"s3\"")),
        };
        if raw.uploads.partial_expiry_hours == 0 {
            return Err(invalid(
                "uploads.partial_expiry_hours",
                "must be at least 1: a running upload would be deleted under the edge",
            ));
        }
        let limits = raw.limits;
        if limits.max_manifest_mib == 0 || limits.max_blob_mib == 0 || limits.max_json_kib == 0 {
            return Err(invalid("limits", "values must be above 0"));
        }
        if !(100..=100_000).contains(&limits.missing_page) {
            return Err(invalid(
                "limits.missing_page",
                "must be between 100 and 100000",
            ));
        }
        if raw.reconcile.stale_after_hours == 0 {
            return Err(invalid("reconcile.stale_after_hours", "must be at least 1"));
        }
        if raw.reconcile.stale_after_seconds == Some(0) {
            return Err(invalid(
                "reconcile.stale_after_seconds",
                "must be at least 1",
            ));
        }
        if raw.users.max_failed_logins == 0 || raw.users.lockout_minutes == 0 {
            return Err(invalid(
                "users",
                "max_failed_logins and lockout_minutes must be at least 1",
            ));
        }
        if let Some(bad) = raw.live.embed_origins.iter().find(|o| {
            !(o.starts_with("https://") || o.starts_with("http://"))
                || o.contains(|c: char| c.is_whitespace() || c == ';' || c == '\'')
        }) {
            return Err(invalid(
                "live.embed_origins",
                &format!("{bad:?} is not an origin like https://biz.example"),
            ));
        }
        if !(1..=4096).contains(&raw.live.max_page_mib) {
            return Err(invalid("live.max_page_mib", "must be between 1 and 4096"));
        }
        if raw.live.expire_hours == 0 || raw.live.expire_seconds == Some(0) {
            return Err(invalid("live.expire_hours", "must be at least 1"));
        }
        let hook = raw.webhooks.url.trim();
        if !(hook.is_empty() || hook.starts_with("http://") || hook.starts_with("https://")) {
            return Err(invalid(
                "webhooks.url",
                "must be an http:// or https:// URL",
            ));
        }
        if raw.webhooks.max_attempts == 0 {
            return Err(invalid("webhooks.max_attempts", "must be at least 1"));
        }
        if raw.pdf.font.trim().is_empty() {
            return Err(invalid("pdf.font", "is empty"));
        }
        let time_zone = if raw.pdf.time_zone.is_empty() {
            jiff::tz::TimeZone::system()
        } else {
            jiff::tz::TimeZone::get(&raw.pdf.time_zone).map_err(|_| {
                invalid(
                    "pdf.time_zone",
                    "is not a known time zone (e.g. \"Asia/Shanghai\")",
                )
            })?
        };
        Ok(Self {
            listen,
            tls,
            storage,
            partial_expiry: Duration::from_secs(raw.uploads.partial_expiry_hours * HOUR),
            limits: Limits {
                max_manifest_bytes: limits.max_manifest_mib << 20,
                max_blob_bytes: limits.max_blob_mib << 20,
                max_json_bytes: limits.max_json_kib << 10,
                missing_page: limits.missing_page,
            },
            stale_after: Duration::from_secs(
                raw.reconcile
                    .stale_after_seconds
                    .unwrap_or(raw.reconcile.stale_after_hours * HOUR),
            ),
            password_cost: dangan_shared::password::PasswordCost {
                memory_kib: raw.users.memory_kib,
                iterations: raw.users.iterations,
            },
            lockout: crate::users::Lockout {
                max_failures: raw.users.max_failed_logins,
                duration: Duration::from_secs(raw.users.lockout_minutes * 60),
            },
            pdf: PdfConfig {
                font: data_dir.join(&raw.pdf.font),
                font_index: raw.pdf.font_index,
                time_zone,
            },
            webhooks: (!raw.webhooks.url.trim().is_empty()).then(|| WebhookConfig {
                url: raw.webhooks.url.trim().to_owned(),
                secret_file: data_dir.join(&raw.webhooks.secret_file),
                max_attempts: raw.webhooks.max_attempts,
            }),
            live: LiveConfig {
                embed_origins: raw.live.embed_origins.clone(),
                time_zone: jiff::tz::TimeZone::get(&raw.live.time_zone).map_err(|_| {
                    invalid(
                        "live.time_zone",
                        "is not a known time zone name (e.g. Asia/Shanghai)",
                    )
                })?,
                max_page_bytes: raw.live.max_page_mib * MIB,
                expire_after: Duration::from_secs(
                    raw.live
                        .expire_seconds
                        .unwrap_or(raw.live.expire_hours.saturating_mul(HOUR)),
                ),
            },
        })
    }
}

/// The commented `hub.toml` that `init` writes. Every value shown is the default.
pub const EXAMPLE: &str = r#"# Dangan central hub configuration.
#
# Every setting below shows its default; delete a line to go back to it.
# Relative paths are relative to the data folder. Secrets never go in this
# file: the admin token and node credentials live (hashed) in hub.db, the
# signing key in hub.key, S3 keys in environment variables.

[server]
# Address and port `dangan-hub serve` listens on (--listen overrides it).
# The default answers only on this machine; use 0.0.0.0:8700 (with TLS) to
# let district edges connect. A port another program holds makes serve fail.
listen = "127.0.0.1:8700"
# HTTPS: a PEM certificate chain and its PEM private key (--tls-cert and
# --tls-key override them). Both empty: plain HTTP, which exposes node
# credentials and images to anyone on the path, so only use it on loopback
# or a trusted network. Edges must trust the certificate's CA.
tls_cert = ""
tls_key = ""

[storage]
# Where complete, verified images (blobs) are kept: "local" (a folder) or
# "s3" (an S3-compatible bucket, see [storage.s3]). Changing it on a hub
# that already holds blobs does not move them: copy them over first, or
# the hub believes it has blobs it cannot find.
backend = "local"
# The folder for backend "local". Each blob is one uncompressed file named
# by its BLAKE3 id under a two-hex-digit fan-out folder (ab/abcd...). Put it
# on a disk with room for the whole archive; a full disk makes uploads fail
# (the edges keep their data and retry).
path = "blobs"

[storage.s3]
# For backend "s3". The endpoint of an S3-compatible server, e.g.
# "https://s3.example.org" (empty: AWS itself); buckets are addressed by
# path (endpoint/bucket/key). Credentials come from the environment
# variables DANGAN_HUB_S3_ACCESS_KEY_ID and DANGAN_HUB_S3_SECRET_ACCESS_KEY
# (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), never from this file.
# Partial uploads stay in the data folder's partial/ until verified; each
# verified blob is then uploaded (in 8 MiB parts when larger).
endpoint = ""
bucket = ""
region = "us-east-1"
# Key prefix inside the bucket, e.g. "dangan/blobs".
prefix = ""
# Allow plain http:// endpoints (a test server on loopback). Never in production.
allow_http = false

[uploads]
# A partial upload (a blob an edge started sending) not touched for this
# many hours is deleted; the edge then sends that blob again from the start.
# Too short and a slow or paused edge loses its progress over and over; too
# long and abandoned partials fill the disk.
partial_expiry_hours = 24

[limits]
# Largest batch manifest accepted, in MiB (after decompression). A
# 100,000-page batch has a manifest of roughly 40 MiB. Too low and large
# batches can never sync; too high and one request can take much memory.
max_manifest_mib = 256
# Largest single blob (image file) accepted, in MiB.
max_blob_mib = 2048
# Largest other JSON request (queue reports, commits), in KiB.
max_json_kib = 4096
# Most missing blobs listed in one answer (100–100000); the edge pages
# through the rest.
missing_page = 10000

[reconcile]
# A district none of whose nodes has contacted the hub for this many hours
# is flagged stale in `dangan-hub reconcile`, and batches queued at its edge
# for longer than this get advice. Too short and ordinary sync windows (e.g.
# nights only) look like outages; too long and a dead edge goes unnoticed.
stale_after_hours = 24
# stale_after_seconds = 600   # optional: a finer threshold, overrides the hours

[users]
# Argon2id cost of people's password hashes: memory in KiB and passes
# (OWASP's recommendation by default). Lower is faster to guess; existing
# hashes keep the cost they were made with.
memory_kib = 19456
iterations = 2
# Failed logins in a row that lock an account, and for how many minutes.
# Too few and typing mistakes lock people out; too many and passwords can be
# guessed. `dangan-hub user enable NAME` lifts a lock at once.
max_failed_logins = 5
lockout_minutes = 15

[live]
# The time zone of the monthly close (月结归档): a live business file
# belongs to the month, in this zone, in which it was opened.
time_zone = "Asia/Shanghai"
# Origins of the business systems whose pages may embed (frame) a viewer
# link (POST /api/v1/live/NUMBER/viewer-link), e.g. ["https://biz.example"].
# Empty: only the hub's own pages may frame them.
embed_origins = []
# Street offices upload the pages of a business transaction while the
# applicant is at the counter (tus resumable uploads, /api/v1/uploads).
# The largest page image accepted, in MiB: a 600-dpi colour A4 scan is
# about 30 MiB as PNG. Too low and big scans are refused; too high and one
# upload can fill the disk.
max_page_mib = 100
# An unfinished upload not touched for this many hours expires and its
# bytes are deleted; the clerk's page then starts that page again. Too short
# and a clerk who pauses loses progress; too long and abandoned uploads
# fill the disk.
expire_hours = 24

[webhooks]
# The business system's URL for events about street offices' live uploads
# (live.pages_uploaded, live.accepted, live.archived), POSTed as JSON and
# signed (X-Dangan-Signature: sha256=HMAC of "TIMESTAMP.BODY"). Empty: no
# webhook. Events wait in the hub until delivered, so a receiver that is
# down loses nothing.
url = ""
# The shared HMAC secret, in the data folder unless absolute; made (random,
# readable by the hub's user only) on first start when missing. Give its
# content to the business system.
secret_file = "webhook.secret"
# Attempts (5 s doubling to an hour between them, about a day in all)
# before an event is given up and logged as failed.
max_attempts = 15

[pdf]
# A business file downloads as one PDF (GET /api/v1/files/ID/pdf) with a
# watermark in Chinese on every page, so the PDF embeds (a subset of) a CJK
# font: this TrueType/OpenType file or collection. The default is Debian's
# fonts-wqy-zenhei (apt install fonts-wqy-zenhei); fonts-noto-cjk's
# "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc" works too. A
# missing or unreadable file makes every PDF download fail (503 naming this
# setting); page views are not affected.
font = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
# Which font of a collection (.ttc) to use: 0 is the first (WenQuanYi Zen
# Hei in wqy-zenhei.ttc). A number past the end fails like a missing font.
font_index = 0
# Time zone of the download time in the watermark, e.g. "Asia/Shanghai".
# Empty: the machine's (TZ, /etc/localtime). A name jiff does not know is
# refused when the hub starts.
time_zone = ""
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses_to_the_defaults() {
        let data = Path::new("/data");
        let example = Config::parse(EXAMPLE, Path::new("hub.toml"), data).unwrap();
        let empty = Config::parse("", Path::new("hub.toml"), data).unwrap();
        assert_eq!(example.listen, empty.listen);
        assert_eq!(example.tls, None);
        assert_eq!(example.storage, empty.storage);
        assert_eq!(
            example.storage,
            Storage::Local {
                path: data.join("blobs")
            }
        );
        assert_eq!(example.partial_expiry, Duration::from_secs(24 * 3600));
        assert_eq!(example.stale_after, empty.stale_after);
        let defaults = Limits::default();
        assert_eq!(example.limits.max_blob_bytes, defaults.max_blob_bytes);
        assert_eq!(
            example.limits.max_manifest_bytes,
            defaults.max_manifest_bytes
        );
        assert_eq!(example.limits.max_json_bytes, defaults.max_json_bytes);
        assert_eq!(example.limits.missing_page, defaults.missing_page);
        assert_eq!(example.pdf.font, Path::new(DEFAULT_PDF_FONT));
        assert_eq!(example.pdf.font, empty.pdf.font);
        assert_eq!(example.pdf.font_index, 0);
    }

    #[test]
    fn bad_values_are_refused_with_the_field_named() {
        let parse = |text: &str| {
            Config::parse(text, Path::new("hub.toml"), Path::new("/d"))
                .unwrap_err()
                .to_string()
        };
        assert!(parse("[server]\nlisten = 'x'").contains("server.listen"));
        assert!(parse("[server]\ntls_cert = 'c.pem'").contains("server.tls_cert"));
        assert!(parse("[storage]\nbackend = 'ftp'").contains("storage.backend"));
        assert!(parse("[storage]\nbackend = 's3'").contains("storage.s3.bucket"));
        assert!(parse("[uploads]\npartial_expiry_hours = 0").contains("partial_expiry_hours"));
        assert!(parse("[limits]\nmissing_page = 5").contains("limits.missing_page"));
        assert!(parse("[server]\nport = 5").contains("port"));
        assert!(parse("[pdf]\ntime_zone = 'Mars/Olympus'").contains("pdf.time_zone"));
        assert!(parse("[pdf]\nfont = ''").contains("pdf.font"));
    }
}
