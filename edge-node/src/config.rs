//! `edge.toml`: read into a raw struct with documented defaults, then
//! validated into the [`Config`] the rest of the node is built from.
//!
//! Every field has a default, so an empty file is a working embedded setup.
//! The example written by `init` ([`EXAMPLE`]) documents each field and what
//! goes wrong if it is set badly; keep the two in step.
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

use crate::barcode::BarcodeSettings;
use crate::decode::Limits;

/// The file name of the configuration inside the data folder.
pub const FILE_NAME: &str = "edge.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: grouping.{rule} is not a valid regular expression: {source}")]
    Pattern {
        path: PathBuf,
        rule: &'static str,
        source: regex::Error,
    },
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
    ingest: RawIngest,
    barcodes: BarcodeSettings,
    grouping: RawGrouping,
    watch: RawWatch,
    scanner: RawScanner,
    sync: RawSync,
    cache: RawCache,
    users: crate::users::PasswordCost,
    labels: LabelSettings,
}

/// Printing box, volume and location labels.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelSettings {
    /// A CJK TrueType/OpenType font (collection) the labels' Chinese text
    /// is set in; a subset is embedded in each PDF.
    pub font: std::path::PathBuf,
    /// Which font of a collection (`.ttc`).
    pub font_index: u32,
}

impl Default for LabelSettings {
    fn default() -> Self {
        Self {
            font: dangan_shared::pdf_font::DEFAULT_FONT.into(),
            font_index: dangan_shared::pdf_font::DEFAULT_FONT_INDEX,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawIngest {
    workers: usize,
    max_pixels: u64,
    pdf_render_dpi: u32,
    blank_max_ink_ratio: f64,
    thumbnail_width: u32,
    extensions: Vec<String>,
}

impl Default for RawIngest {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            workers: 0,
            max_pixels: limits.max_pixels,
            pdf_render_dpi: limits.pdf_render_dpi,
            blank_max_ink_ratio: 0.002,
            thumbnail_width: 320,
            extensions: DEFAULT_EXTENSIONS.iter().map(|e| (*e).to_owned()).collect(),
        }
    }
}

/// Extensions taken from a directory tree. Image formats Dangan does not read
/// are listed too, so that such files are quarantined with a reason instead
/// of silently passed over. Files named explicitly on the command line are
/// always taken, whatever their extension.
const DEFAULT_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "jpe", "jfif", "png", "tif", "tiff", "pdf", "gif", "bmp", "webp", "jp2", "j2k",
    "jpx", "jxl", "heic", "heif", "pnm", "pbm", "pgm", "ppm",
];

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawGrouping {
    separator: String,
    label: String,
    business_number: String,
}

impl Default for RawGrouping {
    fn default() -> Self {
        Self {
            separator: "^PATCHT$".into(),
            label: "^(BOX|VOL)-".into(),
            business_number: "^[0-9A-Z][0-9A-Z-]{7,31}$".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawWatch {
    settle_ms: u64,
    poll_ms: u64,
}

impl Default for RawWatch {
    fn default() -> Self {
        Self {
            settle_ms: 2000,
            poll_ms: 500,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawScanner {
    device: String,
    args: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawSync {
    parallel_uploads: usize,
    bandwidth_limit_kib: u64,
    windows: Vec<String>,
    time_zone: String,
    interval_seconds: u64,
    retry_base_seconds: u64,
    retry_max_seconds: u64,
    give_up_after_seconds: u64,
    request_timeout_seconds: u64,
    protocol: u32,
}

impl Default for RawSync {
    fn default() -> Self {
        Self {
            parallel_uploads: 8,
            bandwidth_limit_kib: 0,
            windows: Vec::new(),
            time_zone: "Asia/Shanghai".into(),
            interval_seconds: 60,
            retry_base_seconds: 1,
            retry_max_seconds: 300,
            give_up_after_seconds: 120,
            request_timeout_seconds: 300,
            protocol: 2,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawCache {
    budget_mib: u64,
}

/// How and when batches go to the hub.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Blobs uploaded at once.
    pub parallel_uploads: usize,
    /// Upload limit in bytes per second over all uploads; 0 = none.
    pub bandwidth_limit: u64,
    /// When sync may run; empty = any time.
    pub windows: Vec<crate::sync::window::Window>,
    pub time_zone: jiff::tz::TimeZone,
    pub time_zone_name: String,
    /// Pause between passes of the background loop in `serve`.
    pub interval: std::time::Duration,
    /// First retry delay after a failure; doubles up to `retry_max`.
    pub retry_base: std::time::Duration,
    pub retry_max: std::time::Duration,
    /// A one-off `dangan-edge sync` stops retrying an unreachable hub after
    /// this long (the batches stay queued).
    pub give_up_after: std::time::Duration,
    pub request_timeout: std::time::Duration,
    /// The sync protocol version spoken to the hub: 2 (batches, the
    /// dictionary feed and the warehouse feeds; a hub that knows only 1 is
    /// then spoken to in 1 for the pass) or 1, pinned (batches and
    /// dictionaries only; warehouse events wait).
    pub protocol: dangan_sync::ProtocolVersion,
}

/// How barcode values are classified; tried in this order.
#[derive(Debug, Clone)]
pub struct GroupingRules {
    pub separator: Regex,
    pub label: Regex,
    pub business_number: Regex,
}

#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub workers: usize,
    pub limits: Limits,
    pub blank_max_ink_ratio: f64,
    pub thumbnail_width: u32,
    pub extensions: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct WatchSettings {
    pub settle: std::time::Duration,
    pub poll: std::time::Duration,
}

#[derive(Debug, Clone)]
pub struct ScannerSettings {
    /// SANE device name; empty means no scanner is configured.
    pub device: String,
    pub args: Vec<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub ingest: IngestSettings,
    pub barcodes: BarcodeSettings,
    pub grouping: GroupingRules,
    pub watch: WatchSettings,
    pub scanner: ScannerSettings,
    pub sync: SyncSettings,
    /// Bytes of blobs the cache may hold before archived batches' blobs are
    /// evicted (oldest archived first); 0 = no limit.
    pub cache_budget: u64,
    /// Argon2id cost of new password hashes.
    pub password_cost: crate::users::PasswordCost,
    pub labels: LabelSettings,
}

impl Config {
    /// Reads `edge.toml` from the data folder; a missing file means defaults.
    pub fn load(data_dir: &Path) -> Result<Self, ConfigError> {
        let path = data_dir.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Self::parse(&text, &path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: path.to_owned(),
            message: err.to_string(),
        })?;
        Self::resolve(raw, path)
    }

    fn resolve(raw: RawConfig, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |field: &'static str, problem: &str| ConfigError::Invalid {
            path: path.to_owned(),
            field,
            problem: problem.to_owned(),
        };
        let pattern = |rule: &'static str, text: &str| {
            Regex::new(text).map_err(|source| ConfigError::Pattern {
                path: path.to_owned(),
                rule,
                source,
            })
        };
        let ingest = raw.ingest;
        if ingest.max_pixels < 1_000_000 {
            return Err(invalid(
                "ingest.max_pixels",
                "must be at least 1000000 (one megapixel)",
            ));
        }
        if !(50..=1200).contains(&ingest.pdf_render_dpi) {
            return Err(invalid(
                "ingest.pdf_render_dpi",
                "must be between 50 and 1200",
            ));
        }
        if !(0.0..0.5).contains(&ingest.blank_max_ink_ratio) {
            return Err(invalid("ingest.blank_max_ink_ratio", "must be in [0, 0.5)"));
        }
        if !(64..=1024).contains(&ingest.thumbnail_width) {
            return Err(invalid(
                "ingest.thumbnail_width",
                "must be between 64 and 1024",
            ));
        }
        if raw.users.memory_kib < 8 || raw.users.iterations == 0 {
            return Err(invalid(
                "users",
                "needs memory_kib of at least 8 and iterations of at least 1",
            ));
        }
        if raw.barcodes.formats.is_empty() {
            return Err(invalid(
                "barcodes.formats",
                "is empty: no barcode could be found, so no page could be grouped",
            ));
        }
        if raw.watch.poll_ms == 0 || raw.watch.settle_ms < raw.watch.poll_ms {
            return Err(invalid(
                "watch.settle_ms",
                "must be at least watch.poll_ms, which must be above 0",
            ));
        }
        let sync = raw.sync;
        if !(1..=64).contains(&sync.parallel_uploads) {
            return Err(invalid("sync.parallel_uploads", "must be between 1 and 64"));
        }
        let time_zone = jiff::tz::TimeZone::get(&sync.time_zone).map_err(|err| {
            invalid(
                "sync.time_zone",
                &format!("{:?} is not a known IANA time zone: {err}", sync.time_zone),
            )
        })?;
        let windows = sync
            .windows
            .iter()
            .map(|text| text.parse::<crate::sync::window::Window>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| invalid("sync.windows", &err.to_string()))?;
        if sync.retry_base_seconds == 0 || sync.retry_max_seconds < sync.retry_base_seconds {
            return Err(invalid(
                "sync.retry_max_seconds",
                "must be at least sync.retry_base_seconds, which must be above 0",
            ));
        }
        if sync.interval_seconds == 0 || sync.request_timeout_seconds == 0 {
            return Err(invalid(
                "sync.interval_seconds",
                "and sync.request_timeout_seconds must be above 0",
            ));
        }
        let protocol = match sync.protocol {
            1 => dangan_sync::ProtocolVersion::V1,
            2 => dangan_sync::ProtocolVersion::V2,
            _ => return Err(invalid("sync.protocol", "must be 1 or 2")),
        };
        let seconds = std::time::Duration::from_secs;
        let sync = SyncSettings {
            protocol,
            parallel_uploads: sync.parallel_uploads,
            bandwidth_limit: sync.bandwidth_limit_kib.saturating_mul(1024),
            windows,
            time_zone,
            time_zone_name: sync.time_zone,
            interval: seconds(sync.interval_seconds),
            retry_base: seconds(sync.retry_base_seconds),
            retry_max: seconds(sync.retry_max_seconds),
            give_up_after: seconds(sync.give_up_after_seconds),
            request_timeout: seconds(sync.request_timeout_seconds),
        };
        let workers = if ingest.workers == 0 {
            // One more than the cores: a worker waiting for its blob's fsync
            // leaves its core to the extra one.
            std::thread::available_parallelism().map_or(2, |n| n.get()) + 1
        } else {
            ingest.workers
        };
        Ok(Self {
            ingest: IngestSettings {
                workers,
                limits: Limits {
                    max_pixels: ingest.max_pixels,
                    pdf_render_dpi: ingest.pdf_render_dpi,
                },
                blank_max_ink_ratio: ingest.blank_max_ink_ratio,
                thumbnail_width: ingest.thumbnail_width,
                extensions: ingest
                    .extensions
                    .iter()
                    .map(|e| e.trim_start_matches('.').to_lowercase())
                    .collect(),
            },
            barcodes: raw.barcodes,
            grouping: GroupingRules {
                separator: pattern("separator", &raw.grouping.separator)?,
                label: pattern("label", &raw.grouping.label)?,
                business_number: pattern("business_number", &raw.grouping.business_number)?,
            },
            watch: WatchSettings {
                settle: std::time::Duration::from_millis(raw.watch.settle_ms),
                poll: std::time::Duration::from_millis(raw.watch.poll_ms),
            },
            scanner: ScannerSettings {
                device: raw.scanner.device,
                args: raw.scanner.args,
            },
            sync,
            cache_budget: raw.cache.budget_mib.saturating_mul(1 << 20),
            password_cost: raw.users,
            labels: raw.labels,
        })
    }
}

/// The commented `edge.toml` that `init` writes. Every value shown is the default.
pub const EXAMPLE: &str = r#"# Dangan edge node configuration.
#
# Every setting below shows its default; delete a line to go back to it.
# The district code and the database live in the data folder, not here.
# Secrets never go in this file (they come from environment variables).

[ingest]
# Worker threads for decoding, barcodes and thumbnails. 0 = one per CPU core
# plus one (a worker waiting on the disk leaves its core to another). More
# workers only add memory (each holds one decoded page, 10–30 MB).
workers = 0
# Largest image, in pixels (width × height), that will be decoded. Checked from
# the file header before decoding, so a "decompression bomb" is quarantined
# instead of exhausting memory. The default admits a 300-dpi A0 sheet
# (about 140 megapixels). Set it too low and real large-format scans are
# quarantined; too high and one hostile file can take the node's memory.
max_pixels = 150000000
# Resolution at which PDF pages that are not a single scanned image are
# rendered. Lower loses fine print; higher makes large, slow pages.
pdf_render_dpi = 300
# A page is blank when less than this fraction of its inner area is ink.
# Too high and pages with a few handwritten words count as blank; too low
# and dust and scanner noise make blank backs count as content.
blank_max_ink_ratio = 0.002
# Thumbnail width in pixels (64–1024).
thumbnail_width = 320
# File extensions taken when a whole directory tree is imported (lowercase,
# no dot). Unsupported image types are listed so that they are quarantined
# with a reason rather than skipped unseen; other files are ignored and
# reported. Files named on the command line are always taken.
extensions = ["jpg", "jpeg", "jpe", "jfif", "png", "tif", "tiff", "pdf", "gif", "bmp", "webp", "jp2", "j2k", "jpx", "jxl", "heic", "heif", "pnm", "pbm", "pgm", "ppm"]

[barcodes]
# Symbologies looked for: "code128", "code39", "qr", "data_matrix", "pdf417".
# Each extra format costs time on every page and adds a chance of a false
# read from text; leave out what your forms do not carry.
formats = ["code128", "code39", "qr"]
# Strips (fractions of the page height, 0 = top) searched first, where forms
# print their codes. Codes elsewhere are still found by the whole-page search,
# only later; an empty list skips the fast look.
fast_bands = [{ top = 0.0, bottom = 0.25 }, { top = 0.85, bottom = 1.0 }]
# Search the whole page after the bands. Turning it off is faster but misses
# every code outside the bands: mid-page separator sheets, pages fed sideways.
whole_page = true
# Find barcode-shaped regions and decode them at full resolution. Without it,
# bars thinner than about 3.5 px at 300 dpi and second 1D codes are missed.
detect_regions = true
# At most this many detected regions are decoded per page. Too low and a code
# on a page full of tables may be crowded out; too high and such pages are slow.
max_regions = 12
# Also run a 1D row scan over the whole page: catches very short or very
# blurred 1D codes, but roughly doubles the time spent on each page.
linear_page_pass = false
# Reads shorter than this are dropped (false reads from text are short). Set
# it above your shortest printed code and those codes are lost.
min_text_len = 4

[grouping]
# Regular expressions that classify a barcode's text, tried in this order:
# a separator sheet starts a new business file; a box or volume label is
# recorded and otherwise ignored; a business number (业务流水号) starts a
# business file linked to it. Text that matches none is kept on the page.
# A business-number pattern that is too loose turns stray codes into bogus
# business files; one that is too strict leaves files unlinked (exceptions).
separator = '^PATCHT$'
label = '^(BOX|VOL)-'
business_number = '^[0-9A-Z][0-9A-Z-]{7,31}$'

[watch]
# A file in the hot folder is taken only after its size and modification
# time have not changed for this long (milliseconds). Too short and a file
# the scanner is still writing is read half-written (and quarantined as
# truncated); too long only delays ingest.
settle_ms = 2000
# How often the hot folder is looked at (milliseconds).
poll_ms = 500

[scanner]
# SANE device for `dangan-edge watch --scan` (see `scanimage -L`), e.g.
# "fujitsu:fi-7160:12345". Empty: no scanner is driven by Dangan.
device = ""
# Extra arguments for scanimage, e.g. ["--source", "ADF Duplex", "--resolution", "300"].
args = []

[sync]
# The hub is set by `dangan-edge enrol`, not here. Only accepted batches sync.
# Blobs uploaded at the same time (1–64). More helps on a long, fat line;
# too many only adds memory and contention at the hub (on loopback, 8 moved
# 1.2 GB about 15% faster than 4, and 16 no faster than 4).
parallel_uploads = 8
# Upload limit over all uploads together, in KiB/s; 0 = no limit. Set it so
# that the district's other traffic still gets through; too low and a day's
# scans do not reach the hub within the night.
bandwidth_limit_kib = 0
# When sync may run, in sync.time_zone: day ranges and a time range, e.g.
# ["Mon-Fri 19:00-07:00", "Sat-Sun 00:00-24:00"]. A range that passes
# midnight belongs to the day it starts on. Empty = any time. Outside every
# window batches stay queued (and `dangan-edge sync --now` overrides it).
windows = []
# IANA time zone the windows are read in.
time_zone = "Asia/Shanghai"
# Seconds between passes of the background sync in `dangan-edge serve`.
interval_seconds = 60
# After a failure (hub unreachable, hub storage full) a retry waits
# retry_base_seconds, doubling each time up to retry_max_seconds, with random
# jitter. Too small a base hammers a hub that is down.
retry_base_seconds = 1
retry_max_seconds = 300
# A one-off `dangan-edge sync` keeps retrying an unreachable hub this long
# before it gives up (the batches stay queued for the next run).
give_up_after_seconds = 120
# Longest a single request may take (a blob on a slow line included).
request_timeout_seconds = 300
# Sync protocol version: 2, or 1 to pin the previous version. A hub of the
# previous release (version 1 only) is detected and spoken to in version 1
# anyway: batches and dictionaries still sync, and warehouse events wait
# here until the hub is upgraded.
protocol = 2

[labels]
# The CJK font box, volume and shelf labels are printed in (Debian's
# fonts-wqy-zenhei by default); a subset of it is embedded in each PDF.
font = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
# Which font of a collection (.ttc) to use.
font_index = 0

[cache]
# Most MiB of page images kept in the local cache; 0 = no limit. Above it,
# images of archived batches (the hub holds them) are removed, oldest
# archived first; thumbnails and every record stay. Images of batches not
# yet archived are never removed, so the cache may exceed a budget set too low.
budget_mib = 0

[users]
# Argon2id cost of password hashes: memory in KiB and passes (OWASP's
# recommendation by default). Existing hashes keep the cost they were made
# with; a changed cost applies to new and changed passwords.
memory_kib = 19456
iterations = 2
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses_to_the_defaults() {
        let example = Config::parse(EXAMPLE, Path::new("edge.toml")).unwrap();
        let empty = Config::parse("", Path::new("edge.toml")).unwrap();
        assert_eq!(
            example.ingest.limits.max_pixels,
            empty.ingest.limits.max_pixels
        );
        assert_eq!(example.ingest.extensions, empty.ingest.extensions);
        assert_eq!(
            example.grouping.business_number.as_str(),
            empty.grouping.business_number.as_str()
        );
        assert_eq!(example.barcodes.formats, empty.barcodes.formats);
        assert_eq!(example.barcodes.fast_bands, empty.barcodes.fast_bands);
        assert_eq!(example.barcodes.max_regions, empty.barcodes.max_regions);
        assert_eq!(example.barcodes.min_text_len, empty.barcodes.min_text_len);
        assert_eq!(example.watch.settle, empty.watch.settle);
    }

    #[test]
    fn bad_values_are_refused_with_the_field_named() {
        let err = Config::parse("[grouping]\nseparator = '('", Path::new("e.toml")).unwrap_err();
        assert!(err.to_string().contains("grouping.separator"), "{err}");
        let err = Config::parse("[ingest]\nmax_pixels = 5", Path::new("e.toml")).unwrap_err();
        assert!(err.to_string().contains("ingest.max_pixels"), "{err}");
        let err = Config::parse("[ingest]\nspeed = 5", Path::new("e.toml")).unwrap_err();
        assert!(err.to_string().contains("speed"), "{err}");
    }
}
