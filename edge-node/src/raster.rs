//! A page's pixels at two resolutions, shared by every analysis step.
//!
//! Barcode search, blank detection and thumbnails all work on a reduced copy
//! near 150 dpi (half a 300-dpi scan per axis), which is four times cheaper
//! to scan than the full page and still resolves ordinary barcodes; the
//! full-resolution page stays available for the barcode fallback that needs
//! fine bars. A JPEG page (nearly every scan) is decoded straight to the
//! reduced size, which costs a third less than a full decode plus the
//! reduction, and decoded in full only if that fallback runs.
use std::cell::OnceCell;

use image::GrayImage;

use crate::decode::{self, DecodeError, Frame, Source};

/// The resolution the reduced copy aims at.
pub const REDUCED_DPI: u32 = 150;

/// DPI assumed for a page whose file does not say (scanner software nearly
/// always records it; A4 at 300 dpi is the common case).
pub const ASSUMED_DPI: u32 = 300;

#[derive(Debug, Clone)]
pub struct PageRaster {
    /// Luminance at full resolution, decoded from `jpeg` when first asked
    /// for if the page was decoded reduced (see [`PageRaster::full`]).
    full: OnceCell<GrayImage>,
    /// The JPEG file a reduced-only page was decoded from.
    jpeg: Option<Vec<u8>>,
    /// Luminance reduced by `factor` in both directions (a box average, or
    /// the JPEG decoder's scaled inverse DCT).
    pub reduced: GrayImage,
    /// How many full-resolution pixels one reduced pixel spans per axis (≥ 1).
    pub factor: u32,
    /// The page's resolution as recorded in its file, or [`ASSUMED_DPI`].
    pub dpi: u32,
    /// The full page's width and height.
    full_size: (u32, u32),
}

/// The page's resolution (or [`ASSUMED_DPI`]) and the factor that brings
/// it nearest to [`REDUCED_DPI`].
pub fn reduction(dpi: Option<u32>) -> (u32, u32) {
    let dpi = dpi.filter(|d| *d > 0).unwrap_or(ASSUMED_DPI);
    (dpi, ((dpi + REDUCED_DPI / 2) / REDUCED_DPI).max(1))
}

/// Decodes frame `index` of `source` for analysis: a JPEG page straight to
/// the reduced size when its reduction factor is one the JPEG decoder can
/// scale by (2, 4 or 8; 300-dpi pages are 2), anything else at full
/// resolution. [`PageRaster::of_frame`] takes it from there.
pub fn analysis_frame(source: &Source, index: u32) -> Result<Frame, DecodeError> {
    source.frame_reduced(index, |dpi| reduction(dpi).1)
}

impl PageRaster {
    pub fn new(full: GrayImage, dpi: Option<u32>) -> Self {
        let (dpi, factor) = reduction(dpi);
        let reduced = box_reduce(&full, factor);
        Self {
            full_size: full.dimensions(),
            full: OnceCell::from(full),
            jpeg: None,
            reduced,
            factor,
            dpi,
        }
    }

    /// The raster of a decoded frame. A frame decoded reduced keeps its
    /// JPEG bytes (the blob) to decode the full page from should a barcode
    /// need it; otherwise the blob is dropped here.
    pub fn of_frame(frame: Frame) -> Self {
        if frame.luma_scale <= 1 {
            return Self::new(frame.luma, frame.dpi);
        }
        Self {
            full: OnceCell::new(),
            jpeg: Some(frame.blob),
            reduced: frame.luma,
            factor: frame.luma_scale,
            dpi: reduction(frame.dpi).0,
            full_size: (frame.width, frame.height),
        }
    }

    /// The full page's width and height, without decoding it.
    pub fn full_size(&self) -> (u32, u32) {
        self.full_size
    }

    /// Whether the full-resolution page is in memory (always, unless the
    /// page was decoded reduced and nothing has asked for it yet).
    pub fn has_full(&self) -> bool {
        self.full.get().is_some()
    }

    /// Luminance at full resolution. A page decoded reduced is decoded again
    /// in full the first time this is called (only a thin 1D code needs it);
    /// should that fail, the reduced copy is scaled up instead.
    pub fn full(&self) -> &GrayImage {
        self.full.get_or_init(|| {
            self.jpeg
                .as_deref()
                .and_then(|jpeg| decode::jpeg_luma_scaled(jpeg, 1))
                .unwrap_or_else(|| {
                    image::imageops::resize(
                        &self.reduced,
                        self.reduced.width() * self.factor,
                        self.reduced.height() * self.factor,
                        image::imageops::FilterType::Triangle,
                    )
                })
        })
    }
}

/// The box filter, shared with the hub's renditions.
pub use dangan_shared::imaging::box_reduce;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_a_300_dpi_page_by_averaging() {
        let mut full = GrayImage::new(5, 4);
        full.put_pixel(0, 0, image::Luma([0]));
        full.put_pixel(1, 0, image::Luma([100]));
        full.put_pixel(0, 1, image::Luma([200]));
        full.put_pixel(1, 1, image::Luma([100]));
        let raster = PageRaster::new(full, Some(300));
        assert_eq!(raster.factor, 2);
        assert_eq!(raster.reduced.dimensions(), (2, 2));
        assert_eq!(raster.reduced.get_pixel(0, 0).0[0], 100);
        assert_eq!(raster.reduced.get_pixel(1, 1).0[0], 0);
    }

    #[test]
    fn keeps_low_resolution_pages_as_they_are() {
        let full = GrayImage::new(7, 9);
        let raster = PageRaster::new(full, Some(150));
        assert_eq!(raster.factor, 1);
        assert_eq!(raster.reduced.dimensions(), (7, 9));
        let unknown = PageRaster::new(GrayImage::new(8, 8), None);
        assert_eq!((unknown.dpi, unknown.factor), (ASSUMED_DPI, 2));
    }
}
