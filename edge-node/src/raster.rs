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

/// Averages `factor`×`factor` blocks; a partial block at the right or bottom
/// edge is dropped (at most `factor - 1` pixels of margin).
pub fn box_reduce(image: &GrayImage, factor: u32) -> GrayImage {
    if factor <= 1 || image.width() < factor || image.height() < factor {
        return image.clone();
    }
    let width = (image.width() / factor) as usize;
    let height = (image.height() / factor) as usize;
    let factor = factor as usize;
    let src_width = image.width() as usize;
    let src = image.as_raw();
    let area = (factor * factor) as u32;
    let mut out = vec![0u8; width * height];
    if factor == 2 {
        // The common case (300 dpi → 150 dpi): two source rows at a time,
        // branch-free so that it vectorises.
        for (y, out_row) in out.chunks_exact_mut(width).enumerate() {
            let (top, _) = src[2 * y * src_width..][..2 * width].as_chunks::<2>();
            let (bottom, _) = src[(2 * y + 1) * src_width..][..2 * width].as_chunks::<2>();
            // Each pair of pixels read as one little-endian u16 lane: the
            // low byte is the left pixel, the high byte the right one. Lane
            // arithmetic on u16 is what LLVM vectorises well here.
            for ((dst, a), b) in out_row.iter_mut().zip(top).zip(bottom) {
                let (a, b) = (u16::from_le_bytes(*a), u16::from_le_bytes(*b));
                let sum = (a & 0xff) + (a >> 8) + (b & 0xff) + (b >> 8);
                *dst = ((sum + 2) >> 2) as u8;
            }
        }
    } else {
        let mut sums = vec![0u32; width];
        for (y, out_row) in out.chunks_exact_mut(width).enumerate() {
            sums.fill(0);
            for dy in 0..factor {
                let start = (y * factor + dy) * src_width;
                let row = &src[start..start + width * factor];
                for (sum, block) in sums.iter_mut().zip(row.chunks_exact(factor)) {
                    *sum += block.iter().map(|&v| u32::from(v)).sum::<u32>();
                }
            }
            for (dst, sum) in out_row.iter_mut().zip(&sums) {
                *dst = ((sum + area / 2) / area) as u8;
            }
        }
    }
    // The buffer has exactly width × height bytes by construction.
    GrayImage::from_raw(width as u32, height as u32, out)
        .unwrap_or_else(|| GrayImage::new(width as u32, height as u32))
}

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
    fn reduces_by_three_and_drops_partial_blocks() {
        let full = GrayImage::from_fn(7, 4, |x, _| image::Luma([if x < 3 { 30 } else { 90 }]));
        let reduced = box_reduce(&full, 3);
        assert_eq!(reduced.dimensions(), (2, 1));
        assert_eq!(reduced.as_raw(), &vec![30, 90]);
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
