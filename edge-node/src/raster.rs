//! A page's pixels at two resolutions, shared by every analysis step.
//!
//! Barcode search, blank detection and thumbnails all work on a reduced copy
//! near 150 dpi (a 2×2 box average of a 300-dpi scan), which is four times
//! cheaper to scan than the full page and still resolves ordinary barcodes;
//! the full-resolution page stays available for the barcode fallback that
//! needs fine bars.
use image::GrayImage;

/// The resolution the reduced copy aims at.
pub const REDUCED_DPI: u32 = 150;

/// DPI assumed for a page whose file does not say (scanner software nearly
/// always records it; A4 at 300 dpi is the common case).
pub const ASSUMED_DPI: u32 = 300;

#[derive(Debug, Clone)]
pub struct PageRaster {
    /// Luminance at full resolution.
    pub full: GrayImage,
    /// Luminance reduced by `factor` in both directions (a box average).
    pub reduced: GrayImage,
    /// How many full-resolution pixels one reduced pixel spans per axis (≥ 1).
    pub factor: u32,
    /// The page's resolution as recorded in its file, or [`ASSUMED_DPI`].
    pub dpi: u32,
}

impl PageRaster {
    pub fn new(full: GrayImage, dpi: Option<u32>) -> Self {
        let dpi = dpi.filter(|d| *d > 0).unwrap_or(ASSUMED_DPI);
        let factor = ((dpi + REDUCED_DPI / 2) / REDUCED_DPI).max(1);
        let reduced = box_reduce(&full, factor);
        Self {
            full,
            reduced,
            factor,
            dpi,
        }
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
