//! Checks the image cache against the database and says what it found.
//!
//! Problems, from worst to harmless:
//! - `missing_blob`: a blob the database references is not in the cache
//!   (blobs of archived batches evicted by the cache budget are expected
//!   to be absent and are not reported);
//! - `corrupt_blob`: a cached blob whose bytes no longer hash to its name;
//! - `page_without_blob_row`: a page points at a blob the database does not list;
//! - `missing_quarantine_file`: a quarantined file's copy is gone;
//! - `missing_thumbnail`: a page's thumbnail is gone (re-made on repair);
//! - `orphan_blob`: a cached blob no row references (left by a crash between
//!   storing a blob and recording its page; the next ingest of the same file
//!   adopts it, `--repair` removes it);
//! - `stray_file`, `temp_file`: files that are not blobs, interrupted writes.
use std::collections::HashSet;

use dangan_shared::BlobId;
use serde::Serialize;

use crate::analyze::thumbnail_jpeg;
use crate::cache::CacheError;
use crate::node::Node;
use crate::raster::PageRaster;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum FsckError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub kind: &'static str,
    /// The blob id or file the finding is about.
    pub subject: String,
    pub detail: String,
    /// Whether `--repair` fixed it.
    pub repaired: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct FsckReport {
    pub blobs_checked: usize,
    pub bytes_checked: u64,
    pub findings: Vec<Finding>,
    /// True when nothing is wrong that would lose or misattribute a page:
    /// orphans, temp files and thumbnails are tidiness, not damage.
    pub consistent: bool,
    pub clean: bool,
}

const DAMAGE: &[&str] = &[
    "missing_blob",
    "corrupt_blob",
    "page_without_blob_row",
    "missing_quarantine_file",
];

/// Checks everything; with `repair`, removes orphans, strays and temp
/// files and re-makes missing thumbnails. Damage is never "repaired" by
/// deleting records: it is reported for a person to decide.
pub fn fsck(node: &Node, store: &Store, repair: bool) -> Result<FsckReport, FsckError> {
    let cache = &node.cache;
    let mut findings = Vec::new();
    let rows = store.blob_rows()?;
    let known: HashSet<String> = rows.iter().map(|(id, _)| id.clone()).collect();
    // Blobs of archived batches evicted to keep the cache within its budget
    // are expected to be absent (the hub holds them).
    let evicted = store.evicted_blobs()?;
    let mut bytes_checked = 0u64;
    for (hex, size) in &rows {
        let Ok(id) = hex.parse::<BlobId>() else {
            findings.push(finding(
                "corrupt_blob",
                hex,
                "the database holds a malformed blob id".into(),
            ));
            continue;
        };
        match cache.read_blob(&id) {
            Err(_) if evicted.contains(hex) => {}
            Err(_) => findings.push(finding(
                "missing_blob",
                hex,
                format!("{} is missing", cache.blob_path(&id).display()),
            )),
            Ok(bytes) => {
                bytes_checked += bytes.len() as u64;
                if BlobId::of(&bytes) != id {
                    findings.push(finding(
                        "corrupt_blob",
                        hex,
                        "its bytes do not hash to its id".into(),
                    ));
                } else if bytes.len() as i64 != *size {
                    findings.push(finding(
                        "corrupt_blob",
                        hex,
                        format!("{} bytes on disk, {size} recorded", bytes.len()),
                    ));
                } else if !cache.thumbnail_path(&id).exists() {
                    let mut item =
                        finding("missing_thumbnail", hex, "the thumbnail is missing".into());
                    if repair {
                        item.repaired = remake_thumbnail(node, &id, &bytes).is_ok();
                    }
                    findings.push(item);
                }
            }
        }
    }
    for (batch, seq, blob) in store.pages_without_blob_row()? {
        findings.push(finding(
            "page_without_blob_row",
            &blob,
            format!("page {seq} of batch {batch} references a blob the database does not list"),
        ));
    }
    for path in store.quarantine_paths()? {
        if !std::path::Path::new(&path).exists() {
            findings.push(finding(
                "missing_quarantine_file",
                &path,
                "the quarantined copy is gone".into(),
            ));
        }
    }
    let (present, strays) = cache.blob_files()?;
    for id in present {
        let hex = id.to_hex();
        if !known.contains(&hex) {
            let mut item = finding("orphan_blob", &hex, "no page references this blob".into());
            if repair {
                item.repaired = std::fs::remove_file(cache.blob_path(&id)).is_ok();
                let _ = std::fs::remove_file(cache.thumbnail_path(&id));
            }
            findings.push(item);
        }
    }
    for path in strays {
        let mut item = finding(
            "stray_file",
            &path.display().to_string(),
            "not a blob".into(),
        );
        if repair {
            item.repaired = std::fs::remove_file(&path).is_ok();
        }
        findings.push(item);
    }
    for path in cache.temp_files()? {
        let mut item = finding(
            "temp_file",
            &path.display().to_string(),
            "an interrupted write".into(),
        );
        if repair {
            item.repaired = std::fs::remove_file(&path).is_ok();
        }
        findings.push(item);
    }
    let consistent = !findings.iter().any(|f| DAMAGE.contains(&f.kind));
    let clean = findings.iter().all(|f| f.repaired);
    Ok(FsckReport {
        blobs_checked: rows.len(),
        bytes_checked,
        findings,
        consistent,
        clean,
    })
}

fn finding(kind: &'static str, subject: &str, detail: String) -> Finding {
    Finding {
        kind,
        subject: subject.to_owned(),
        detail,
        repaired: false,
    }
}

fn remake_thumbnail(node: &Node, id: &BlobId, bytes: &[u8]) -> Result<(), CacheError> {
    let Ok(source) = crate::decode::open(bytes, &node.config.ingest.limits) else {
        return Ok(());
    };
    let Ok(frame) = source.frame(0) else {
        return Ok(());
    };
    let raster = PageRaster::new(frame.luma, frame.dpi);
    node.cache.put_thumbnail(
        id,
        &thumbnail_jpeg(&raster.reduced, node.config.ingest.thumbnail_width),
    )
}
