//! Page images (feature `imaging`): decoding a scanned file or a stored
//! page blob ([`decode`]), and the renditions both the edge node and the
//! central hub serve of a page: a view a browser can show
//! ([`browser_view`]) and a small JPEG thumbnail ([`thumbnail_jpeg`]).
//!
//! Everything here is CPU work on bytes in memory: call it off the async
//! runtime.
use std::borrow::Cow;

use image::GrayImage;

pub mod decode;

use decode::{ColourMode, DecodeError, Limits};

/// The widest view [`browser_view`] makes of a grey or colour page (a
/// 300-dpi A4 page is 2480 px wide; 2000 px still reads well zoomed in).
pub const VIEW_WIDTH: u32 = 2000;

/// What kind of image a rendition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendition {
    Jpeg,
    Png,
}

impl Rendition {
    pub fn mime(self) -> &'static str {
        match self {
            Rendition::Jpeg => "image/jpeg",
            Rendition::Png => "image/png",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Rendition::Jpeg => "jpg",
            Rendition::Png => "png",
        }
    }
}

/// A page blob a browser cannot show (TIFF) as one it can: a bilevel page
/// (fax, G4) as a 1-bit PNG at full resolution — sharper and several times
/// smaller than any JPEG of it — and a grey or colour page as a JPEG at most
/// `max_width` pixels wide. Decodes the first frame (a page blob has one).
pub fn browser_view(
    blob: Vec<u8>,
    limits: &Limits,
    max_width: u32,
) -> Result<(Rendition, Vec<u8>), DecodeError> {
    let source = decode::open_owned(blob, limits)?;
    let frame = source.frame(0)?;
    match frame.colour {
        ColourMode::Bilevel => Ok((
            Rendition::Png,
            decode::encode_png_bilevel(&frame.luma, frame.dpi)?,
        )),
        ColourMode::Colour => {
            // Frames carry luminance only; colour comes from `image`, with
            // the grey view as the fallback for what it cannot read.
            if let Some(jpeg) = colour_jpeg(&frame.blob, max_width) {
                return Ok((Rendition::Jpeg, jpeg));
            }
            Ok((Rendition::Jpeg, thumbnail_jpeg(&frame.luma, max_width)))
        }
        ColourMode::Gray => Ok((Rendition::Jpeg, thumbnail_jpeg(&frame.luma, max_width))),
    }
}

/// A small grey JPEG of a page blob, `width` pixels wide.
pub fn thumbnail(blob: Vec<u8>, limits: &Limits, width: u32) -> Result<Vec<u8>, DecodeError> {
    let source = decode::open_owned(blob, limits)?;
    let frame = source.frame(0)?;
    Ok(thumbnail_jpeg(&frame.luma, width))
}

fn colour_jpeg(blob: &[u8], max_width: u32) -> Option<Vec<u8>> {
    let image = std::panic::catch_unwind(|| image::load_from_memory(blob).ok())
        .ok()
        .flatten()?;
    let image = if image.width() > max_width {
        image.resize(max_width, u32::MAX, image::imageops::FilterType::Triangle)
    } else {
        image
    };
    let rgb = image.to_rgb8();
    // A JPEG's sides are 16-bit: anything taller than that cannot be one.
    if rgb.width() > u32::from(u16::MAX) || rgb.height() > u32::from(u16::MAX) {
        return None;
    }
    encode_jpeg(
        rgb.as_raw(),
        rgb.width() as usize,
        rgb.height() as usize,
        mozjpeg::ColorSpace::JCS_RGB,
        85,
    )
}

/// Encodes 8-bit gray or RGB pixels as a baseline JPEG with libjpeg-turbo's
/// plain settings (no MozJPEG trellis search: thumbnails and views are
/// made on every page, and these settings encode several times faster),
/// or None if libjpeg refuses (it reports errors by unwinding, caught here).
fn encode_jpeg(
    pixels: &[u8],
    width: usize,
    height: usize,
    colour: mozjpeg::ColorSpace,
    quality: u8,
) -> Option<Vec<u8>> {
    std::panic::catch_unwind(|| {
        let mut compress = mozjpeg::Compress::new(colour);
        compress.set_fastest_defaults();
        compress.set_size(width, height);
        compress.set_quality(f32::from(quality));
        let mut started = compress.start_compress(Vec::new()).ok()?;
        started.write_scanlines(pixels).ok()?;
        started.finish().ok()
    })
    .ok()
    .flatten()
}

/// A grey JPEG `width` pixels wide (never wider than the page).
pub fn thumbnail_jpeg(page: &GrayImage, width: u32) -> Vec<u8> {
    let (src_width, src_height) = page.dimensions();
    let width = width.min(src_width).max(1);
    let height =
        ((u64::from(src_height) * u64::from(width) / u64::from(src_width.max(1))) as u32).max(1);
    // Halve with a box filter while the page stays at least twice as wide as
    // the thumbnail (cheap, and a good anti-aliasing filter), then average
    // areas down to the exact size.
    let mut boxed = Cow::Borrowed(page);
    while boxed.width() >= 2 * width.max(1) {
        boxed = Cow::Owned(box_reduce(&boxed, 2));
    }
    let small = area_reduce(&boxed, width, height);
    encode_jpeg(
        small.as_raw(),
        small.width() as usize,
        small.height() as usize,
        mozjpeg::ColorSpace::JCS_GRAYSCALE,
        80,
    )
    .unwrap_or_default()
}

/// Shrinks a gray image to `width`×`height` (each at most the image's own,
/// at least 1) by area averaging: every output pixel is the mean of the
/// source area it covers, pixels cut by its edge weighted by the part inside.
/// Done as two separable passes in fixed point: rows first (whole rows at a
/// time, which vectorises), then columns, where each source pixel adds its
/// share to the one or two output pixels it overlaps.
fn area_reduce(image: &GrayImage, width: u32, height: u32) -> GrayImage {
    let (src_width, src_height) = image.dimensions();
    if src_width == 0 || src_height == 0 {
        return image.clone();
    }
    let (width, height) = (width.clamp(1, src_width), height.clamp(1, src_height));
    let src_width = src_width as usize;
    let spread = area_spread(&area_taps(src_width as u32, width));
    let width = width as usize;
    let src = image.as_raw();
    let mut out = Vec::with_capacity(width * height as usize);
    // One output row of the vertical pass, kept as value × 256 so that the
    // horizontal pass loses nothing to rounding.
    let mut tall = vec![0u32; src_width];
    let mut row = vec![0u16; src_width];
    let mut wide = vec![0u32; width + 1];
    for tap in area_taps(src_height, height) {
        tall.fill(0);
        for (dy, &w) in tap.weights.iter().enumerate() {
            let line = &src[(tap.start + dy) * src_width..][..src_width];
            for (sum, &v) in tall.iter_mut().zip(line) {
                *sum += u32::from(v) * w;
            }
        }
        for (value, &sum) in row.iter_mut().zip(&tall) {
            *value = ((sum + (1 << (AREA_BITS - 9))) >> (AREA_BITS - 8)) as u16;
        }
        wide.fill(0);
        for (&value, &(column, first, second)) in row.iter().zip(&spread) {
            let value = u32::from(value);
            wide[column] += value * first;
            wide[column + 1] += value * second;
        }
        let round = 1 << (AREA_BITS + 7);
        out.extend(
            wide[..width]
                .iter()
                .map(|&s| ((s + round) >> (AREA_BITS + 8)) as u8),
        );
    }
    GrayImage::from_raw(width as u32, height, out).unwrap_or_else(|| image.clone())
}

/// [`area_taps`] turned around: for each source pixel, the first output
/// pixel it overlaps and its weights there and in the next one (0 when it
/// lies inside one output pixel). Going from a larger size to a smaller one,
/// no source pixel overlaps more than two.
fn area_spread(taps: &[AreaTap]) -> Vec<(usize, u32, u32)> {
    let mut spread: Vec<(usize, u32, u32)> = Vec::new();
    for (column, tap) in taps.iter().enumerate() {
        for (k, &w) in tap.weights.iter().enumerate() {
            let source = tap.start + k;
            if source < spread.len() {
                spread[source].2 = w;
            } else {
                spread.push((column, w, 0));
            }
        }
    }
    spread
}

/// Weights of [`area_reduce`] in fixed point: each output pixel's weights
/// add up to exactly `1 << AREA_BITS`.
const AREA_BITS: u32 = 12;

/// The source pixels one output pixel covers: from `start`, one weight each.
struct AreaTap {
    start: usize,
    weights: Vec<u32>,
}

/// For `dst` output pixels spread over `src` source pixels (`dst <= src`):
/// output `i` covers source positions `[i·src/dst, (i+1)·src/dst)`. In units
/// of 1/dst of a source pixel, that is `[i·src, (i+1)·src)` and source pixel
/// `j` is `[j·dst, (j+1)·dst)`, so every overlap is an exact integer.
fn area_taps(src: u32, dst: u32) -> Vec<AreaTap> {
    let (src, dst) = (u64::from(src), u64::from(dst.clamp(1, src.max(1))));
    let one = 1u64 << AREA_BITS;
    (0..dst)
        .map(|i| {
            let (from, to) = (i * src, (i + 1) * src);
            let first = from / dst;
            let last = (to - 1) / dst;
            let mut weights: Vec<u32> = (first..=last)
                .map(|j| {
                    let overlap = to.min((j + 1) * dst) - from.max(j * dst);
                    (overlap * one / src) as u32
                })
                .collect();
            // Rounding down leaves a few units over: give them to the
            // heaviest tap so the weights add up to exactly one.
            let missing = one as u32 - weights.iter().sum::<u32>();
            if let Some(heaviest) = weights.iter_mut().max() {
                *heaviest += missing;
            }
            AreaTap {
                start: first as usize,
                weights,
            }
        })
        .collect()
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
    let out = if factor == 2 {
        // The common case (300 dpi → 150 dpi): two source rows at a time,
        // branch-free so that it vectorises. The output is built by extending
        // an empty buffer rather than filling a zeroed one: zeroing a page's
        // worth of bytes first is a measurable part of the cost.
        let mut out = Vec::with_capacity(width * height);
        for y in 0..height {
            let (top, _) = src[2 * y * src_width..][..2 * width].as_chunks::<2>();
            let (bottom, _) = src[(2 * y + 1) * src_width..][..2 * width].as_chunks::<2>();
            // Each pair of pixels read as one little-endian u16 lane: the
            // low byte is the left pixel, the high byte the right one. Lane
            // arithmetic on u16 is what LLVM vectorises well here.
            out.extend(top.iter().zip(bottom).map(|(a, b)| {
                let (a, b) = (u16::from_le_bytes(*a), u16::from_le_bytes(*b));
                let sum = (a & 0xff) + (a >> 8) + (b & 0xff) + (b >> 8);
                ((sum + 2) >> 2) as u8
            }));
        }
        out
    } else {
        let mut out = vec![0u8; width * height];
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
        out
    };
    // The buffer has exactly width × height bytes by construction.
    GrayImage::from_raw(width as u32, height as u32, out)
        .unwrap_or_else(|| GrayImage::new(width as u32, height as u32))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use image::{ImageEncoder, Luma};

    fn paper(width: u32, height: u32) -> GrayImage {
        GrayImage::from_fn(width, height, |x, y| {
            Luma([225 + ((x * 7 + y * 13) % 11) as u8])
        })
    }

    #[test]
    fn thumbnails_keep_the_aspect_ratio() {
        let mut page = paper(1240, 1754);
        for y in 400..800 {
            for x in 200..600 {
                page.put_pixel(x, y, Luma([20]));
            }
        }
        let jpeg = thumbnail_jpeg(&page, 320);
        let thumb = image::load_from_memory(&jpeg).unwrap().to_luma8();
        assert_eq!((thumb.width(), thumb.height()), (320, 452));
        // The paper stays light and the ink dark where they were.
        assert!(thumb.get_pixel(250, 50).0[0] > 200);
        assert!(thumb.get_pixel(103, 155).0[0] < 60);
        let tiny = thumbnail_jpeg(&paper(100, 50), 320);
        let tiny = image::load_from_memory(&tiny).unwrap();
        assert_eq!((tiny.width(), tiny.height()), (100, 50));
    }

    #[test]
    fn halves_by_averaging() {
        let mut full = GrayImage::new(5, 4);
        full.put_pixel(0, 0, Luma([0]));
        full.put_pixel(1, 0, Luma([100]));
        full.put_pixel(0, 1, Luma([200]));
        full.put_pixel(1, 1, Luma([100]));
        let reduced = box_reduce(&full, 2);
        assert_eq!(reduced.dimensions(), (2, 2));
        assert_eq!(reduced.get_pixel(0, 0).0[0], 100);
        assert_eq!(reduced.get_pixel(1, 1).0[0], 0);
    }

    #[test]
    fn reduces_by_three_and_drops_partial_blocks() {
        let full = GrayImage::from_fn(7, 4, |x, _| Luma([if x < 3 { 30 } else { 90 }]));
        let reduced = box_reduce(&full, 3);
        assert_eq!(reduced.dimensions(), (2, 1));
        assert_eq!(reduced.as_raw(), &vec![30, 90]);
    }

    #[test]
    fn area_reduction_averages_what_each_pixel_covers() {
        // Exactly half: the mean of each 2×2 block, as the box filter gives.
        let page = paper(8, 6);
        let half = area_reduce(&page, 4, 3);
        assert_eq!(half, box_reduce(&page, 2));
        // Five columns into three: each output covers 5/3 of a source
        // column, so the middle one takes the middle column whole and a
        // third of each neighbour.
        let stripes = GrayImage::from_fn(5, 2, |x, _| Luma([[0, 90, 180, 90, 255][x as usize]]));
        let three = area_reduce(&stripes, 3, 1);
        assert_eq!(three.as_raw(), &vec![36, 144, 189]);
        // Flat paper stays flat whatever the ratio; sizes are clamped.
        let flat = GrayImage::from_pixel(1003, 777, Luma([231]));
        let small = area_reduce(&flat, 311, 240);
        assert_eq!(small.dimensions(), (311, 240));
        assert!(small.pixels().all(|p| p.0[0] == 231));
        assert_eq!(area_reduce(&flat, 5000, 0).dimensions(), (1003, 1));
    }

    #[test]
    fn a_g4_page_is_viewed_as_a_full_size_one_bit_png() {
        let page = GrayImage::from_fn(1700, 2200, |x, y| {
            Luma([if (x / 9 + y / 13) % 5 == 0 { 0 } else { 255 }])
        });
        let tiff = dangan_testkit::containers::tiff_g4(std::slice::from_ref(&page), 200);
        let (rendition, png) = browser_view(tiff, &Limits::default(), VIEW_WIDTH).unwrap();
        assert_eq!(rendition, Rendition::Png);
        let shown = image::load_from_memory(&png).unwrap();
        assert_eq!((shown.width(), shown.height()), (1700, 2200));
        assert_eq!(shown.to_luma8(), page);
    }

    #[test]
    fn a_colour_tiff_is_viewed_in_colour_within_the_width() {
        let rgb =
            image::RgbImage::from_fn(2400, 300, |x, _| image::Rgb([(x % 256) as u8, 40, 200]));
        let mut tiff = Vec::new();
        image::codecs::tiff::TiffEncoder::new(std::io::Cursor::new(&mut tiff))
            .write_image(rgb.as_raw(), 2400, 300, image::ExtendedColorType::Rgb8)
            .unwrap();
        let (rendition, jpeg) = browser_view(tiff, &Limits::default(), VIEW_WIDTH).unwrap();
        assert_eq!(rendition, Rendition::Jpeg);
        let shown = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((shown.width(), shown.height()), (2000, 250));
        let pixel = shown.to_rgb8().get_pixel(1000, 100).0;
        assert!(pixel[2] > 150 && pixel[1] < 100, "{pixel:?}");
        let thumb = thumbnail(jpeg.clone(), &Limits::default(), 200).unwrap();
        assert_eq!(image::load_from_memory(&thumb).unwrap().width(), 200);
    }
}
