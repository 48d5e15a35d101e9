//! Per-page analysis after decoding: barcodes, blank check, thumbnail, and
//! storing the page's blob durably in the cache.
use std::ops::Range;

use dangan_shared::BlobId;
use image::GrayImage;

use crate::barcode::{Barcode, Scanner};
use crate::cache::{BlobCache, CacheError};
use crate::decode::{BlobFormat, ColourMode, Frame};
use crate::raster::PageRaster;

/// What ingest records about one page.
#[derive(Debug, Clone)]
pub struct PageFacts {
    pub frame: u32,
    pub blob: BlobId,
    pub blob_size: u64,
    pub blob_format: BlobFormat,
    pub width: u32,
    pub height: u32,
    pub dpi: Option<u32>,
    pub colour: ColourMode,
    pub barcodes: Vec<Barcode>,
    pub blank: bool,
    pub ink_ratio: f64,
    /// Estimated skew in degrees (QC pre-check; None for blank pages and
    /// pages without line structure).
    pub skew_degrees: Option<f32>,
}

#[derive(Debug)]
pub struct Analyzer {
    scanner: Scanner,
    blank_max_ink_ratio: f64,
    thumbnail_width: u32,
}

impl Analyzer {
    pub fn new(scanner: Scanner, blank_max_ink_ratio: f64, thumbnail_width: u32) -> Self {
        Self {
            scanner,
            blank_max_ink_ratio,
            thumbnail_width,
        }
    }

    /// Analyses a decoded frame and stores its blob and thumbnail. The blob
    /// is durable when this returns. `source` is the file's bytes with their
    /// BLAKE3 id when the caller has hashed them already: a frame whose blob
    /// is the file itself (a JPEG page) then takes that id instead of hashing
    /// the same bytes again.
    pub fn analyze(
        &self,
        frame: Frame,
        cache: &BlobCache,
        source: Option<(&[u8], &BlobId)>,
    ) -> Result<PageFacts, CacheError> {
        let blob_id = match source {
            Some((bytes, id)) if bytes == frame.blob.as_slice() => *id,
            _ => BlobId::of(&frame.blob),
        };
        cache.put_blob(&blob_id, &frame.blob)?;
        let blob_size = frame.blob.len() as u64;
        let (index, width, height, dpi, colour, blob_format) = (
            frame.index,
            frame.width,
            frame.height,
            frame.dpi,
            frame.colour,
            frame.blob_format,
        );
        let raster = PageRaster::of_frame(frame);
        let barcodes = self.scanner.scan(&raster);
        let levels = InkLevels::of(&raster.reduced);
        let ink_ratio = levels.ratio();
        let thumbnail = thumbnail_jpeg(&raster.reduced, self.thumbnail_width);
        cache.put_thumbnail(&blob_id, &thumbnail)?;
        // A page whose barcodes were read is never blank, whatever its ink.
        let blank = barcodes.is_empty() && ink_ratio < self.blank_max_ink_ratio;
        let skew_degrees = if blank {
            None
        } else {
            crate::skew::estimate_skew_at(&raster.reduced, levels.threshold())
        };
        Ok(PageFacts {
            frame: index,
            blob: blob_id,
            blob_size,
            blob_format,
            width,
            height,
            dpi,
            colour,
            blank,
            barcodes,
            ink_ratio,
            skew_degrees,
        })
    }
}

/// The fraction of the page's inner area that is ink: pixels clearly darker
/// than the paper. The outer 4% on every side is left out, because scanners
/// put shadows and feeder marks there.
pub fn ink_ratio(page: &GrayImage) -> f64 {
    InkLevels::of(page).ratio()
}

/// The columns and rows of a `width`×`height` page's inner area: the outer
/// 4% on every side left out, because scanners put shadows and feeder marks
/// there. Shared by the ink ratio and the skew estimate.
pub fn inner_area(width: usize, height: usize) -> (Range<usize>, Range<usize>) {
    let (margin_x, margin_y) = (width / 25, height / 25);
    (
        margin_x..width.saturating_sub(margin_x),
        margin_y..height.saturating_sub(margin_y),
    )
}

/// The grey levels of a page's inner area (the outer 4% on every side left
/// out), from which both the ink ratio and the skew estimate's ink
/// threshold are read: one pass over the page serves both.
pub struct InkLevels {
    histogram: [u32; 256],
    total: u64,
}

impl InkLevels {
    /// Every other row and column: an unbiased estimate at a quarter of the
    /// cost (a pen stroke is several pixels wide even at 150 dpi).
    pub fn of(page: &GrayImage) -> Self {
        let (width, height) = (page.width() as usize, page.height() as usize);
        let (columns, rows) = inner_area(width, height);
        // Four partial histograms taken in turn: nearly every pixel is paper
        // of one grey, and a single histogram would make each count wait for
        // the one before it to be stored.
        let mut partial = [[0u32; 256]; 4];
        if !columns.is_empty() && !rows.is_empty() {
            for y in rows.step_by(2) {
                let row = &page.as_raw()[y * width..][columns.clone()];
                let (quads, rest) = row.as_chunks::<8>();
                for quad in quads {
                    partial[0][usize::from(quad[0])] += 1;
                    partial[1][usize::from(quad[2])] += 1;
                    partial[2][usize::from(quad[4])] += 1;
                    partial[3][usize::from(quad[6])] += 1;
                }
                for &value in rest.iter().step_by(2) {
                    partial[0][usize::from(value)] += 1;
                }
            }
        }
        let mut histogram = [0u32; 256];
        for (bin, value) in histogram.iter_mut().enumerate() {
            *value = partial.iter().map(|counts| counts[bin]).sum();
        }
        let total = histogram.iter().map(|&c| u64::from(c)).sum();
        Self { histogram, total }
    }

    /// The grey level below which a pixel is ink: well below the paper,
    /// which is the median brightness (even a dense form is mostly paper).
    /// Scanner noise and grey paper texture stay within a few tens of
    /// levels.
    pub fn threshold(&self) -> u8 {
        let mut seen = 0u64;
        let mut paper = 255u8;
        for (value, &count) in (0..=255u8).zip(&self.histogram) {
            seen += u64::from(count);
            if seen * 2 >= self.total {
                paper = value;
                break;
            }
        }
        paper.saturating_sub((paper / 4).max(48))
    }

    /// The fraction of the sampled pixels that are ink (0 for no pixels).
    pub fn ratio(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let threshold = usize::from(self.threshold());
        let ink: u64 = self.histogram[..threshold]
            .iter()
            .map(|&c| u64::from(c))
            .sum();
        ink as f64 / self.total as f64
    }
}

/// Thumbnails are made the same at the hub.
pub use dangan_shared::imaging::thumbnail_jpeg;

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    fn paper(width: u32, height: u32) -> GrayImage {
        GrayImage::from_fn(width, height, |x, y| {
            Luma([225 + ((x * 7 + y * 13) % 11) as u8])
        })
    }

    #[test]
    fn blank_paper_has_no_ink_and_text_does() {
        let mut page = paper(600, 800);
        assert!(ink_ratio(&page) < 0.0001);
        // A few dust specks stay under the default threshold.
        for (x, y) in [(100, 100), (300, 400), (500, 700)] {
            page.put_pixel(x, y, Luma([30]));
        }
        assert!(ink_ratio(&page) < 0.002);
        // Lines of "text" across the page do not.
        for line in 0..20 {
            for y in 100 + line * 30..104 + line * 30 {
                for x in 60..540 {
                    if (x / 7) % 3 != 0 {
                        page.put_pixel(x, y, Luma([40]));
                    }
                }
            }
        }
        assert!(ink_ratio(&page) > 0.01, "{}", ink_ratio(&page));
    }

    #[test]
    fn dark_edges_do_not_count() {
        let mut page = paper(600, 800);
        for y in 0..800 {
            for x in 0..20 {
                page.put_pixel(x, y, Luma([10]));
            }
        }
        assert!(ink_ratio(&page) < 0.0001);
    }
}
