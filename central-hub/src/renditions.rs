//! Derived images of page blobs, made on demand and kept on disk: the view
//! a browser can show of a page it cannot (a TIFF), and every page's
//! thumbnail. Both come from [`dangan_shared::imaging`], the code the edge
//! node serves its pages with.
//!
//! Layout under `DATA/derived/`:
//! - `view/ab/<64 hex>.png|jpg`: the browser view of blob `ab…` (a bilevel
//!   page as a 1-bit PNG, others as a JPEG at most 2000 px wide);
//! - `thumbnail/ab/<64 hex>.jpg`: its thumbnail, [`THUMBNAIL_WIDTH`] wide;
//! - `tmp/`: renditions being written.
//!
//! Everything here is derived data: a file is written to `tmp/`, synced and
//! renamed into place, so it is whole or absent, and the whole folder may
//! be deleted at any time (the next request makes a file again). Blobs
//! never change, so neither does a rendition; after changing how
//! renditions are made, delete the folder.
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use dangan_shared::BlobId;
use dangan_shared::imaging::decode::{DecodeError, Limits};
use dangan_shared::imaging::{self, Rendition};

/// The folder under the data folder.
pub const DERIVED_DIR: &str = "derived";
/// Width of thumbnails in pixels.
pub const THUMBNAIL_WIDTH: u32 = 200;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, thiserror::Error)]
pub enum RenditionError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("blob {blob} cannot be decoded: {source}")]
    Decode {
        blob: BlobId,
        #[source]
        source: DecodeError,
    },
}

/// Which rendition of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    View,
    Thumbnail,
}

impl Kind {
    fn folder(self) -> &'static str {
        match self {
            Kind::View => "view",
            Kind::Thumbnail => "thumbnail",
        }
    }
}

/// The derived-image folder of a hub.
#[derive(Debug, Clone)]
pub struct Renditions {
    root: PathBuf,
    limits: Limits,
}

impl Renditions {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join(DERIVED_DIR),
            limits: Limits::default(),
        }
    }

    fn path(&self, kind: Kind, blob: &BlobId, rendition: Rendition) -> PathBuf {
        let hex = blob.to_hex();
        self.root
            .join(kind.folder())
            .join(&hex[..2])
            .join(format!("{hex}.{}", rendition.extension()))
    }

    /// The rendition made earlier, if there is one.
    pub fn cached(
        &self,
        kind: Kind,
        blob: &BlobId,
    ) -> Result<Option<(Rendition, Vec<u8>)>, RenditionError> {
        for rendition in [Rendition::Jpeg, Rendition::Png] {
            let path = self.path(kind, blob, rendition);
            match fs::read(&path) {
                Ok(bytes) if !bytes.is_empty() => return Ok(Some((rendition, bytes))),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(RenditionError::Io {
                        action: "read",
                        path,
                        source,
                    });
                }
            }
        }
        Ok(None)
    }

    /// Makes the rendition of `blob` (its bytes) and keeps it. CPU work:
    /// call it off the async runtime.
    pub fn make(
        &self,
        kind: Kind,
        blob: &BlobId,
        bytes: Vec<u8>,
    ) -> Result<(Rendition, Vec<u8>), RenditionError> {
        let decode = |source| RenditionError::Decode {
            blob: *blob,
            source,
        };
        let (rendition, image) = match kind {
            Kind::View => {
                imaging::browser_view(bytes, &self.limits, imaging::VIEW_WIDTH).map_err(decode)?
            }
            Kind::Thumbnail => (
                Rendition::Jpeg,
                imaging::thumbnail(bytes, &self.limits, THUMBNAIL_WIDTH).map_err(decode)?,
            ),
        };
        self.write(&self.path(kind, blob, rendition), &image)?;
        Ok((rendition, image))
    }

    /// Writes a file whole: to `tmp/`, synced, renamed into place. The
    /// folder is not synced: after a power cut the file may be missing,
    /// which only means making it again.
    fn write(&self, path: &Path, bytes: &[u8]) -> Result<(), RenditionError> {
        let io = |action: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| RenditionError::Io {
                action,
                path,
                source,
            }
        };
        let temp_dir = self.root.join("tmp");
        fs::create_dir_all(&temp_dir).map_err(io("create", &temp_dir))?;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io("create", dir))?;
        }
        let temp = temp_dir.join(format!(
            "{}-{}.part",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = File::create(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()
        })();
        if let Err(source) = written {
            let _ = fs::remove_file(&temp);
            return Err(RenditionError::Io {
                action: "write",
                path: temp,
                source,
            });
        }
        fs::rename(&temp, path).map_err(io("rename into", path))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_rendition_is_kept_and_found_again_and_may_be_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let renditions = Renditions::new(dir.path());
        let page = image::GrayImage::from_fn(600, 300, |x, _| image::Luma([(x % 256) as u8]));
        let mut png = Vec::new();
        image::DynamicImage::ImageLuma8(page)
            .write_to(&mut io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let blob = BlobId::of(&png);
        assert!(renditions.cached(Kind::Thumbnail, &blob).unwrap().is_none());
        let (rendition, made) = renditions.make(Kind::Thumbnail, &blob, png).unwrap();
        assert_eq!(rendition, Rendition::Jpeg);
        let thumb = image::load_from_memory(&made).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (200, 100));
        let cached = renditions.cached(Kind::Thumbnail, &blob).unwrap().unwrap();
        assert_eq!(cached, (Rendition::Jpeg, made));
        assert!(
            fs::read_dir(dir.path().join("derived/tmp"))
                .unwrap()
                .next()
                .is_none()
        );
        fs::remove_dir_all(dir.path().join("derived")).unwrap();
        assert!(renditions.cached(Kind::Thumbnail, &blob).unwrap().is_none());
    }
}
