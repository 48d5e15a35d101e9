//! Finds barcodes on a scanned page with rxing.
//!
//! Search order, cheapest first (see [`Scanner::scan`]):
//! 1. the fast bands (where forms print their codes) on the reduced image;
//! 2. the whole reduced image, one rxing pass per reader;
//! 3. barcode-like regions found by a gradient detector on the reduced
//!    image, decoded at full resolution. This is what finds fine bars
//!    (3 px at 300 dpi) that the 150-dpi copy no longer resolves, and a
//!    second or third 1D code on the same page, since one rxing pass only
//!    ever returns one code.
//!
//! Every rxing pass uses one reader restricted to the configured formats
//! with try-harder on: restricting formats is what keeps rxing fast and
//! stops text from decoding as a barcode, and try-harder is what finds a
//! code near a page edge (and, for 1D codes, on a page turned by 90°).
use std::collections::HashSet;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::GrayImage;
use rxing::common::BitMatrix;
use rxing::common::HybridBinarizer;
use rxing::datamatrix::DataMatrixReader;
use rxing::oned::MultiFormatOneDReader;
use rxing::pdf417::PDF417Reader;
use rxing::qrcode::QRCodeReader;
use rxing::qrcode::detector::FinderPatternFinder;
use rxing::{BarcodeFormat, BinaryBitmap, DecodeHints, Luma8Source, RXingResult, Reader};
use serde::{Deserialize, Serialize};

use crate::binarize::FastHybridBinarizer;
use crate::raster::PageRaster;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Symbology {
    Code128,
    Code39,
    Qr,
    DataMatrix,
    Pdf417,
}

impl Symbology {
    pub const ALL: [Symbology; 5] = [
        Symbology::Code128,
        Symbology::Code39,
        Symbology::Qr,
        Symbology::DataMatrix,
        Symbology::Pdf417,
    ];

    /// The serialised name: `code128`, `code39`, `qr`, `data_matrix`, `pdf417`.
    pub fn as_str(self) -> &'static str {
        match self {
            Symbology::Code128 => "code128",
            Symbology::Code39 => "code39",
            Symbology::Qr => "qr",
            Symbology::DataMatrix => "data_matrix",
            Symbology::Pdf417 => "pdf417",
        }
    }

    fn rxing_format(self) -> BarcodeFormat {
        match self {
            Symbology::Code128 => BarcodeFormat::CODE_128,
            Symbology::Code39 => BarcodeFormat::CODE_39,
            Symbology::Qr => BarcodeFormat::QR_CODE,
            Symbology::DataMatrix => BarcodeFormat::DATA_MATRIX,
            Symbology::Pdf417 => BarcodeFormat::PDF_417,
        }
    }

    fn from_rxing(format: &BarcodeFormat) -> Option<Self> {
        Symbology::ALL
            .into_iter()
            .find(|s| s.rxing_format() == *format)
    }

    fn is_linear(self) -> bool {
        matches!(self, Symbology::Code128 | Symbology::Code39)
    }
}

impl fmt::Display for Symbology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A horizontal strip of the page, as fractions of its height (0 = top).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Band {
    pub top: f32,
    pub bottom: f32,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(default, deny_unknown_fields)]
pub struct BarcodeSettings {
    /// Symbologies to look for. Each one costs a pass: Code 128 and Code 39
    /// share one, QR, Data Matrix and PDF417 take one each (Data Matrix and
    /// PDF417 about twice what QR costs). A format missing here is never
    /// reported, so a form whose code is not listed is not grouped; listing
    /// formats nobody prints wastes time and invites false reads from text.
    pub formats: Vec<Symbology>,
    /// Strips searched first, on the reduced image, where forms print their
    /// codes (default: top 25% and bottom 15%). A code outside every band is
    /// still found by the whole-page search, only later; an empty list skips
    /// the fast look.
    pub fast_bands: Vec<Band>,
    /// Search the whole page too (rxing on the reduced image plus the region
    /// detector at full resolution). Turning it off saves most of the time on
    /// pages without a code but misses every code outside the bands: mid-page
    /// separator sheets, codes on pages fed sideways, fine bars.
    pub whole_page: bool,
    /// Look for barcode-shaped regions (strong gradient across bars, weak
    /// along them) and decode them at full resolution. Without it, codes with
    /// bars under about 3.5 px at 300 dpi and the second 1D code of a page
    /// are missed.
    pub detect_regions: bool,
    /// At most this many detected regions are decoded per page, largest and
    /// strongest first. Too low and a code on a page full of tables or
    /// vertical rules may be crowded out; too high and such pages take longer.
    pub max_regions: usize,
    /// Also run rxing's own 1D row scan over the bands and the rest of the
    /// reduced page (always done when `detect_regions` is off). It catches
    /// 1D codes the region detector misses (shorter than about 10 mm, or
    /// blurred to mush) but roughly doubles the time spent on a page
    /// without a code, which breaks the ingest budget.
    pub linear_page_pass: bool,
    /// Reads with fewer characters are dropped. Short reads are where false
    /// positives from text live (Code 39 has no checksum); set it above the
    /// shortest code actually printed and those codes are lost.
    pub min_text_len: usize,
}

impl Default for BarcodeSettings {
    fn default() -> Self {
        Self {
            formats: vec![Symbology::Code128, Symbology::Code39, Symbology::Qr],
            fast_bands: vec![
                Band {
                    top: 0.0,
                    bottom: 0.25,
                },
                Band {
                    top: 0.85,
                    bottom: 1.0,
                },
            ],
            whole_page: true,
            detect_regions: true,
            max_regions: 12,
            linear_page_pass: false,
            min_text_len: 4,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Barcode {
    pub format: Symbology,
    pub text: String,
    /// Centre in full-resolution pixels, for reading order.
    #[serde(skip)]
    pub position: (u32, u32),
}

/// A configured barcode search. Holds no per-page state, so one scanner can
/// serve several worker threads.
#[derive(Clone)]
pub struct Scanner {
    settings: BarcodeSettings,
    /// 1D formats, read together by one `MultiFormatOneDReader` pass.
    linear: HashSet<BarcodeFormat>,
    /// 2D formats, one reader each, sharing one binarised image.
    matrix: Vec<Symbology>,
    linear_hints: DecodeHints,
    region_hints: DecodeHints,
    matrix_hints: DecodeHints,
}

impl fmt::Debug for Scanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scanner")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Where a decodable image sits on the page, to map rxing's points back to
/// full-resolution pixels.
#[derive(Clone, Copy, Debug)]
struct Placement {
    left: f32,
    top: f32,
    scale: f32,
}

/// Results gathered across passes, deduplicated by (format, text).
#[derive(Default)]
struct Found {
    codes: Vec<Barcode>,
}

impl Found {
    fn add(&mut self, result: &RXingResult, placement: Placement, min_len: usize) {
        let Some(format) = Symbology::from_rxing(result.getBarcodeFormat()) else {
            return;
        };
        let text = result.getText();
        if text.chars().count() < min_len {
            return;
        }
        if self
            .codes
            .iter()
            .any(|c| c.format == format && c.text == text)
        {
            return;
        }
        let points = result.getPoints();
        let (sum_x, sum_y) = points
            .iter()
            .fold((0.0f32, 0.0f32), |(x, y), p| (x + p.x, y + p.y));
        let count = points.len().max(1) as f32;
        let x = placement.left + sum_x / count * placement.scale;
        let y = placement.top + sum_y / count * placement.scale;
        self.codes.push(Barcode {
            format,
            text: text.to_string(),
            position: (x.max(0.0) as u32, y.max(0.0) as u32),
        });
    }

    fn has(&self, format: Symbology) -> bool {
        self.codes.iter().any(|c| c.format == format)
    }

    /// Reading order: rows of codes top to bottom (codes whose centres are
    /// within `line` pixels of the row's first code share a row), each row
    /// left to right.
    fn into_reading_order(mut self, line: u32) -> Vec<Barcode> {
        self.codes.sort_by_key(|c| (c.position.1, c.position.0));
        let mut ordered = Vec::with_capacity(self.codes.len());
        let mut row: Vec<Barcode> = Vec::new();
        for code in self.codes {
            if let Some(first) = row.first()
                && code.position.1 > first.position.1 + line
            {
                row.sort_by_key(|c| c.position.0);
                ordered.append(&mut row);
            }
            row.push(code);
        }
        row.sort_by_key(|c| c.position.0);
        ordered.append(&mut row);
        ordered
    }
}

impl Scanner {
    pub fn new(settings: &BarcodeSettings) -> Self {
        let linear: HashSet<BarcodeFormat> = settings
            .formats
            .iter()
            .filter(|s| s.is_linear())
            .map(|s| s.rxing_format())
            .collect();
        let mut matrix: Vec<Symbology> = Vec::new();
        for format in &settings.formats {
            if !format.is_linear() && !matrix.contains(format) {
                matrix.push(*format);
            }
        }
        let linear_hints = DecodeHints {
            TryHarder: Some(true),
            PossibleFormats: Some(linear.clone()),
            ..DecodeHints::default()
        };
        let region_hints = DecodeHints {
            TryHarder: Some(false),
            PossibleFormats: Some(linear.clone()),
            ..DecodeHints::default()
        };
        let matrix_hints = DecodeHints {
            TryHarder: Some(true),
            ..DecodeHints::default()
        };
        Self {
            settings: settings.clone(),
            linear,
            matrix,
            linear_hints,
            region_hints,
            matrix_hints,
        }
    }

    pub fn settings(&self) -> &BarcodeSettings {
        &self.settings
    }

    /// Every distinct (format, text) on the page once, in reading order.
    ///
    /// The fast look covers the bands: detected 1D regions whose centre
    /// lies in a band (decoded at full resolution) and one rxing pass per 2D
    /// format over each band of the reduced image. The whole-page search
    /// then decodes the remaining regions and runs the 2D passes over the
    /// rest of the page (with an overlap into the bands, so a code across a
    /// band's edge is whole in one of the two), skipping a 2D format the
    /// fast look already found: the 2D passes are the expensive ones and a
    /// page carries at most one code of each 2D kind in practice. 1D codes
    /// are never skipped that way, because a page can carry a separator
    /// code mid-page and a form number at the top.
    pub fn scan(&self, page: &PageRaster) -> Vec<Barcode> {
        let mut found = Found::default();
        let reduced = &page.reduced;
        let height = reduced.height();
        if reduced.width() == 0 || height == 0 {
            return Vec::new();
        }
        let fast: Vec<(u32, u32)> = self
            .settings
            .fast_bands
            .iter()
            .map(|band| band_rows(*band, height))
            .filter(|(top, bottom)| bottom > top)
            .collect();
        let overlap = (page.dpi as f32 / page.factor.max(1) as f32 / 25.4 * OVERLAP_MM) as u32;
        let rest = if self.settings.whole_page {
            complement(&fast, height, overlap)
        } else {
            Vec::new()
        };
        let use_regions = self.settings.detect_regions
            && (!self.linear.is_empty() || self.matrix.contains(&Symbology::Pdf417));
        let mut regions = if use_regions {
            detect_linear_regions(reduced, self.settings.max_regions)
        } else {
            Vec::new()
        };
        let linear_strips = !self.linear.is_empty()
            && (!self.settings.detect_regions || self.settings.linear_page_pass);

        // The fast look.
        let in_fast = |region: &Region| {
            let centre = region.centre_row();
            fast.iter()
                .any(|(top, bottom)| centre >= *top && centre < *bottom)
        };
        let (fast_regions, rest_regions): (Vec<Region>, Vec<Region>) =
            regions.drain(..).partition(|r| in_fast(r));
        // 1D regions first, those in the bands before the rest. The decoded
        // codes are then blanked out for the 2D passes: a 1D code's bars
        // look like rows of QR finder patterns and make the QR search
        // several milliseconds slower.
        let mut decoded = Vec::new();
        for region in &fast_regions {
            if self.decode_region(page, region, &mut found) {
                decoded.push(*region);
            }
        }
        if self.settings.whole_page {
            for region in &rest_regions {
                if self.decode_region(page, region, &mut found) {
                    decoded.push(*region);
                }
            }
        }
        let blanked;
        let image = if decoded.is_empty() || self.matrix.is_empty() {
            reduced
        } else {
            let mut copy = reduced.clone();
            for region in &decoded {
                region.blank(&mut copy);
            }
            blanked = copy;
            &blanked
        };
        for (top, bottom) in &fast {
            self.decode_strip(page, image, *top, *bottom, &mut found, linear_strips, true);
        }
        for (top, bottom) in &rest {
            self.decode_strip(page, image, *top, *bottom, &mut found, linear_strips, false);
        }

        let line = (page.dpi as f32 / 25.4 * 5.0) as u32; // 5 mm
        found.into_reading_order(line)
    }

    /// rxing passes over rows `top..bottom` of the reduced image: one per 2D
    /// format (sharing one binarisation) and, if asked, one 1D pass. In the
    /// fast look every format runs; afterwards a 2D format already found is
    /// skipped.
    #[allow(clippy::too_many_arguments)]
    fn decode_strip(
        &self,
        page: &PageRaster,
        reduced: &GrayImage,
        top: u32,
        bottom: u32,
        found: &mut Found,
        linear: bool,
        fast: bool,
    ) {
        let width = reduced.width();
        let data = rows_slice(reduced, top, bottom);
        let height = bottom - top;
        let scale = page.factor.max(1) as f32;
        let placement = Placement {
            left: 0.0,
            top: top as f32 * scale,
            scale,
        };
        if linear && let Some(result) = self.decode_linear(data, width, height, true) {
            found.add(&result, placement, self.settings.min_text_len);
        }
        let pending: Vec<Symbology> = self
            .matrix
            .iter()
            .copied()
            .filter(|s| fast || !found.has(*s))
            .collect();
        if pending.is_empty() {
            return;
        }
        let Ok(source) = Luma8Source::new_with_slice(data, width, height) else {
            return;
        };
        // Local (hybrid) binarisation: rxing's global one samples only four
        // rows for its threshold and fails outright on a strip that is mostly
        // margin. `FastHybridBinarizer` gives the same bits as rxing's
        // `HybridBinarizer` at a fraction of the cost.
        let mut bitmap = BinaryBitmap::new(FastHybridBinarizer::new(source));
        for format in pending {
            // A panic counts as a candidate: rxing's own pass (guarded) then
            // decides.
            if format == Symbology::Qr
                && !catch_unwind(AssertUnwindSafe(|| {
                    qr_finder_candidate(bitmap.get_black_matrix())
                }))
                .unwrap_or(true)
            {
                continue;
            }
            let hints = &self.matrix_hints;
            let result = guarded(|| match format {
                Symbology::Qr => QRCodeReader.decode_with_hints(&mut bitmap, hints),
                Symbology::DataMatrix => DataMatrixReader.decode_with_hints(&mut bitmap, hints),
                _ => PDF417Reader.decode_with_hints(&mut bitmap, hints),
            });
            if let Some(result) = result {
                found.add(&result, placement, self.settings.min_text_len);
            }
        }
    }

    /// One 1D pass. `try_harder` scans rows over the whole image and retries
    /// turned by 90°; a detected region is already cropped and turned, so
    /// its middle rows are enough.
    fn decode_linear(
        &self,
        data: &[u8],
        width: u32,
        height: u32,
        try_harder: bool,
    ) -> Option<RXingResult> {
        let source = Luma8Source::new_with_slice(data, width, height).ok()?;
        let mut bitmap = BinaryBitmap::new(HybridBinarizer::new(source));
        let hints = if try_harder {
            &self.linear_hints
        } else {
            &self.region_hints
        };
        let mut reader = MultiFormatOneDReader::new(hints);
        guarded(|| reader.decode_with_hints(&mut bitmap, hints))
    }

    /// Decodes one detected 1D region, on the reduced copy or else at full
    /// resolution, unless a code already found lies inside it or it does
    /// not look like bars. Returns whether a code was read.
    fn decode_region(&self, page: &PageRaster, region: &Region, found: &mut Found) -> bool {
        let (left, top, right, bottom) = region.full_res_crop(page.factor.max(1), page.full_size());
        if right <= left || bottom <= top {
            return false;
        }
        let already = found.codes.iter().any(|c| {
            c.format.is_linear()
                && c.position.0 >= left
                && c.position.0 < right
                && c.position.1 >= top
                && c.position.1 < bottom
        });
        if already {
            return false;
        }
        // PDF417 is stacked: its rows differ, so the bar check does not
        // apply to it, but the detector finds it all the same.
        let bars = !self.linear.is_empty() && region.looks_like_bars(&page.reduced);
        let pdf417 = self.matrix.contains(&Symbology::Pdf417) && !found.has(Symbology::Pdf417);
        if !bars && !pdf417 {
            return false;
        }
        // The reduced copy first, middle rows only: ordinary bars read
        // there, and a page decoded reduced then never needs its full
        // resolution. Anything it misses gets every chance in full.
        let factor = page.factor.max(1);
        let (reduced_right, reduced_bottom) = (
            right.div_ceil(factor).min(page.reduced.width()),
            bottom.div_ceil(factor).min(page.reduced.height()),
        );
        let reduced =
            if bars && factor > 1 && reduced_right > left / factor && reduced_bottom > top / factor
            {
                let (crop, width, height) = crop_for_reading(
                    &page.reduced,
                    left / factor,
                    top / factor,
                    reduced_right,
                    reduced_bottom,
                    region.vertical,
                );
                self.decode_linear(&crop, width, height, false)
            } else {
                None
            };
        let (result, scale) = match reduced {
            Some(result) => (result, factor),
            None => {
                let crop = (left, top, right, bottom);
                let Some(result) = self.decode_full_crop(page, crop, region.vertical, bars, pdf417)
                else {
                    return false;
                };
                (result, 1)
            }
        };
        // A turned crop's points are not mapped back; its centre will do
        // for reading order.
        let placement = if region.vertical {
            Placement {
                left: (left + right) as f32 / 2.0,
                top: (top + bottom) as f32 / 2.0,
                scale: 0.0,
            }
        } else {
            Placement {
                left: (left / scale * scale) as f32,
                top: (top / scale * scale) as f32,
                scale: scale as f32,
            }
        };
        found.add(&result, placement, self.settings.min_text_len);
        true
    }

    /// Reads a region's full-resolution crop: as bars (the middle rows,
    /// then all rows), then as PDF417 if that is still wanted.
    fn decode_full_crop(
        &self,
        page: &PageRaster,
        (left, top, right, bottom): (u32, u32, u32, u32),
        vertical: bool,
        bars: bool,
        pdf417: bool,
    ) -> Option<RXingResult> {
        let (crop, width, height) =
            crop_for_reading(page.full(), left, top, right, bottom, vertical);
        let mut result = None;
        if bars {
            result = self
                .decode_linear(&crop, width, height, false)
                .or_else(|| self.decode_linear(&crop, width, height, true));
        }
        if result.is_none() && pdf417 {
            result = Luma8Source::new_with_slice(&crop, width, height)
                .ok()
                .and_then(|source| {
                    let mut bitmap = BinaryBitmap::new(HybridBinarizer::new(source));
                    guarded(|| PDF417Reader.decode_with_hints(&mut bitmap, &self.matrix_hints))
                });
        }
        result
    }
}

/// Whether rxing's QR search (try-harder on) would confirm at least one
/// finder-pattern candidate on `matrix`; when it would not, its QR reader
/// can only fail there, so the pass is skipped. Most pages carry no QR code,
/// and rxing walks the scanned rows pixel by pixel; this walks the same rows
/// (every third, from the third) a run at a time, tests every
/// black-white-black-white-black run window with rxing's own 1:1:3:1:1
/// test, and hands each match to rxing's own cross checks, stopping at the
/// first confirmed candidate. Same rows, same windows, same tests: the
/// answer is rxing's, at a fraction of the cost on a page of text.
fn qr_finder_candidate(matrix: &BitMatrix) -> bool {
    let (width, height) = (matrix.getWidth() as usize, matrix.getHeight());
    let mut finder = FinderPatternFinder::new(matrix);
    let step = FinderPatternFinder::MIN_SKIP;
    let mut y = step - 1;
    while y < height {
        let row = matrix.getRow(y);
        // The last five runs, oldest first, starting with a black one.
        let mut window = [0u32; 5];
        let mut runs = 0;
        let mut x = row.getNextSet(0);
        while x < width {
            let white = row.getNextUnset(x).min(width);
            let next_black = row.getNextSet(white).min(width);
            window[runs] = (white - x) as u32;
            runs += 1;
            if runs == 5 {
                if FinderPatternFinder::foundPatternCross(&window, finder.min_module_size)
                    && finder.handlePossibleCenter(&window, y, white as u32)
                {
                    return true;
                }
                window.copy_within(2.., 0);
                runs = 3;
            }
            if white < width {
                window[runs] = (next_black - white) as u32;
                runs += 1;
            }
            x = next_black;
        }
        y += step;
    }
    false
}

/// How far the whole-page strips reach into the bands, so that a 2D code
/// lying across a band's edge is whole in one of the passes.
const OVERLAP_MM: f32 = 15.0;

/// The rows not covered by `bands`, each strip widened by `overlap` rows on
/// both sides.
fn complement(bands: &[(u32, u32)], height: u32, overlap: u32) -> Vec<(u32, u32)> {
    let mut sorted = bands.to_vec();
    sorted.sort_unstable();
    let mut strips = Vec::new();
    let mut cursor = 0u32;
    for (top, bottom) in sorted {
        if top > cursor {
            strips.push((cursor.saturating_sub(overlap), (top + overlap).min(height)));
        }
        cursor = cursor.max(bottom);
    }
    if cursor < height {
        strips.push((cursor.saturating_sub(overlap), height));
    }
    strips
}

/// Runs an rxing call, turning an error or a panic into `None`: rxing has
/// panicked on odd input before, and one bad page must not stop a batch.
fn guarded<F>(call: F) -> Option<RXingResult>
where
    F: FnOnce() -> rxing::common::Result<RXingResult>,
{
    catch_unwind(AssertUnwindSafe(call)).ok()?.ok()
}

fn band_rows(band: Band, height: u32) -> (u32, u32) {
    let clamp = |f: f32| (f.clamp(0.0, 1.0) * height as f32).round() as u32;
    (clamp(band.top), clamp(band.bottom).min(height))
}

fn rows_slice(image: &GrayImage, top: u32, bottom: u32) -> &[u8] {
    let width = image.width() as usize;
    &image.as_raw()[top as usize * width..bottom as usize * width]
}

/// Copies a rectangle of the full-resolution page, turned by 90° when the
/// bars run horizontally so that rxing's row scan crosses them.
fn crop_for_reading(
    full: &GrayImage,
    left: u32,
    top: u32,
    right: u32,
    bottom: u32,
    vertical: bool,
) -> (Vec<u8>, u32, u32) {
    let width = (right - left) as usize;
    let height = (bottom - top) as usize;
    let stride = full.width() as usize;
    let raw = full.as_raw();
    let mut out = vec![0u8; width * height];
    if vertical {
        // out is height wide and width tall: out(x', y') = in(left + y', bottom - 1 - x').
        for y in 0..height {
            let row = &raw[(top as usize + y) * stride + left as usize..][..width];
            let column = height - 1 - y;
            for (x, value) in row.iter().enumerate() {
                out[x * height + column] = *value;
            }
        }
        (out, height as u32, width as u32)
    } else {
        for (y, dst) in out.chunks_exact_mut(width).enumerate() {
            let start = (top as usize + y) * stride + left as usize;
            dst.copy_from_slice(&raw[start..start + width]);
        }
        (out, width as u32, height as u32)
    }
}

/// Side of the detector's square blocks, in reduced pixels (~1.4 mm at
/// 150 dpi): small enough for an 8 mm-tall code to span several blocks.
const BLOCK: u32 = 8;
/// Mean absolute gradient across the bars, per pixel, for a block to count
/// as barcode-like; noise on paper stays under about 4, low-contrast bars
/// (grey 110 on 200) reach about 20.
const MIN_GRADIENT: u32 = 6;
/// How much stronger the gradient across the bars must be than along them.
/// Text strokes run both ways, so text blocks stay below this.
const MIN_ANISOTROPY: u32 = 3;

/// Normalised correlation two lines across a barcode reach at least; text
/// lines cut at different heights correlate much less.
const MIN_CORRELATION: f32 = 0.6;

/// The highest normalised cross-correlation of `a` and `b` over shifts of
/// up to `max_shift` samples.
fn best_correlation(a: &[f32], b: &[f32], max_shift: i32) -> f32 {
    let n = a.len().min(b.len());
    let mut best = -1.0f32;
    for shift in -max_shift..=max_shift {
        let (a_part, b_part) = if shift >= 0 {
            let s = (shift as usize).min(n);
            (&a[s..n], &b[..n - s])
        } else {
            let s = (-shift as usize).min(n);
            (&a[..n - s], &b[s..n])
        };
        if a_part.len() < 16 {
            continue;
        }
        let len = a_part.len() as f32;
        let mean_a = a_part.iter().sum::<f32>() / len;
        let mean_b = b_part.iter().sum::<f32>() / len;
        let (mut ab, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
        for (x, y) in a_part.iter().zip(b_part) {
            let (dx, dy) = (x - mean_a, y - mean_b);
            ab += dx * dy;
            aa += dx * dx;
            bb += dy * dy;
        }
        if aa > 0.0 && bb > 0.0 {
            best = best.max(ab / (aa * bb).sqrt());
        }
    }
    best
}

/// A barcode-like rectangle on the reduced image, in blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Region {
    left: u32,
    top: u32,
    right: u32,
    bottom: u32,
    /// Bars run horizontally (the code is read top to bottom).
    vertical: bool,
    score: u64,
}

impl Region {
    /// Paints the region white on the reduced image.
    fn blank(&self, reduced: &mut GrayImage) {
        let (width, height) = reduced.dimensions();
        let (x0, x1) = (
            (self.left * BLOCK).min(width),
            (self.right * BLOCK).min(width),
        );
        let (y0, y1) = (
            (self.top * BLOCK).min(height),
            (self.bottom * BLOCK).min(height),
        );
        let stride = width as usize;
        let buffer: &mut [u8] = reduced;
        for y in y0..y1 {
            let start = y as usize * stride;
            buffer[start + x0 as usize..start + x1 as usize].fill(255);
        }
    }

    /// The region's centre row on the reduced image.
    fn centre_row(&self) -> u32 {
        (self.top + self.bottom) * BLOCK / 2
    }

    /// Bars repeat across the code's height: three lines across the bars
    /// (at a quarter, half and three quarters of the region) must match
    /// each other, allowing a few pixels of shift for skew. Text rarely
    /// does, so this keeps most text out of the costly full-resolution
    /// decode.
    fn looks_like_bars(&self, reduced: &GrayImage) -> bool {
        let (x0, y0) = (self.left * BLOCK, self.top * BLOCK);
        let (x1, y1) = (
            (self.right * BLOCK).min(reduced.width()),
            (self.bottom * BLOCK).min(reduced.height()),
        );
        if x1 <= x0 || y1 <= y0 {
            return false;
        }
        let (span, length) = if self.vertical {
            (x1 - x0, y1 - y0)
        } else {
            (y1 - y0, x1 - x0)
        };
        let line = |fraction: u32| -> Vec<f32> {
            let offset = span * fraction / 4;
            (0..length)
                .map(|i| {
                    let (x, y) = if self.vertical {
                        (x0 + offset, y0 + i)
                    } else {
                        (x0 + i, y0 + offset)
                    };
                    f32::from(reduced.get_pixel(x, y).0[0])
                })
                .collect()
        };
        let lines = [line(1), line(2), line(3)];
        // Skew of up to 5° over a quarter of the span, plus one pixel.
        let shift = (span as f32 / 4.0 * 0.0875).ceil() as i32 + 1;
        best_correlation(&lines[0], &lines[1], shift) >= MIN_CORRELATION
            && best_correlation(&lines[1], &lines[2], shift) >= MIN_CORRELATION
    }

    /// The region in full-resolution pixels, widened by a quiet zone along
    /// the reading direction and a little across it.
    fn full_res_crop(&self, factor: u32, (width, height): (u32, u32)) -> (u32, u32, u32, u32) {
        let unit = BLOCK * factor;
        let (along, across) = (3 * unit, unit);
        let (pad_x, pad_y) = if self.vertical {
            (across, along)
        } else {
            (along, across)
        };
        let left = (self.left * unit).saturating_sub(pad_x);
        let top = (self.top * unit).saturating_sub(pad_y);
        let right = (self.right * unit + pad_x).min(width);
        let bottom = (self.bottom * unit + pad_y).min(height);
        (left, top, right, bottom)
    }
}

/// Finds 1D-barcode-like regions: blocks where the gradient across one axis
/// is strong and much stronger than across the other, grouped into
/// connected rectangles big enough to be a code. Returns the best
/// `limit` by score.
fn detect_linear_regions(reduced: &GrayImage, limit: usize) -> Vec<Region> {
    let (width, height) = reduced.dimensions();
    let blocks_x = width / BLOCK;
    let blocks_y = height / BLOCK;
    if blocks_x < 4 || blocks_y < 4 || limit == 0 {
        return Vec::new();
    }
    let (sum_x, sum_y) = block_gradients(reduced, blocks_x, blocks_y);
    let area = BLOCK * BLOCK;
    let mut regions = Vec::new();
    for vertical in [false, true] {
        // Mask of blocks whose bars run in this orientation.
        let mask: Vec<bool> = sum_x
            .iter()
            .zip(&sum_y)
            .map(|(&gx, &gy)| {
                let (across, along) = if vertical { (gy, gx) } else { (gx, gy) };
                across >= MIN_GRADIENT * area && across >= MIN_ANISOTROPY * along
            })
            .collect();
        regions.extend(components(
            &mask, blocks_x, blocks_y, vertical, &sum_x, &sum_y,
        ));
    }
    regions.sort_by_key(|r| std::cmp::Reverse(r.score));
    regions.truncate(limit);
    regions
}

/// Per-block sums of |dx| and |dy| over the reduced image. Written as
/// straight slice loops so that the compiler vectorises them; this runs on
/// every page.
fn block_gradients(image: &GrayImage, blocks_x: u32, blocks_y: u32) -> (Vec<u32>, Vec<u32>) {
    let width = image.width() as usize;
    let raw = image.as_raw();
    let count = (blocks_x * blocks_y) as usize;
    let mut sum_x = vec![0u32; count];
    let mut sum_y = vec![0u32; count];
    let block = BLOCK as usize;
    let used = blocks_x as usize * block;
    let last_row = image.height() as usize - 1;
    // Eight rows of differences fit in u16 (8 × 255).
    let mut acc_x = vec![0u16; used];
    let mut acc_y = vec![0u16; used];
    for by in 0..blocks_y as usize {
        acc_x.fill(0);
        acc_y.fill(0);
        for dy in 0..block {
            let y = by * block + dy;
            let row = &raw[y * width..(y + 1) * width];
            let next_y = (y + 1).min(last_row);
            let next = &raw[next_y * width..(next_y + 1) * width];
            // `used` < width whenever the image is wider than whole blocks;
            // otherwise the last column's right neighbour is itself.
            let right_end = (used + 1).min(width);
            let (left_part, right_part) = (&row[..right_end - 1], &row[1..right_end]);
            for ((acc, a), b) in acc_x.iter_mut().zip(left_part).zip(right_part) {
                *acc += u16::from(a.abs_diff(*b));
            }
            for ((acc, a), b) in acc_y.iter_mut().zip(&row[..used]).zip(&next[..used]) {
                *acc += u16::from(a.abs_diff(*b));
            }
        }
        let out = by * blocks_x as usize;
        for (bx, (cx, cy)) in acc_x
            .chunks_exact(block)
            .zip(acc_y.chunks_exact(block))
            .enumerate()
        {
            sum_x[out + bx] = cx.iter().map(|&v| u32::from(v)).sum();
            sum_y[out + bx] = cy.iter().map(|&v| u32::from(v)).sum();
        }
    }
    (sum_x, sum_y)
}

/// Connected groups of marked blocks, bridging one-block gaps along the
/// reading direction (a wide bar can fill a block), kept when they are
/// large enough to be a code: about 4 mm across the bars' length and
/// 10 mm along the reading direction at 150 dpi.
fn components(
    mask: &[bool],
    blocks_x: u32,
    blocks_y: u32,
    vertical: bool,
    sum_x: &[u32],
    sum_y: &[u32],
) -> Vec<Region> {
    let (w, h) = (blocks_x as usize, blocks_y as usize);
    // Bridge single-block gaps along the reading direction.
    let mut bridged = mask.to_vec();
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if mask[i] {
                continue;
            }
            let (before, after) = if vertical {
                (y > 0 && mask[i - w], y + 1 < h && mask[i + w])
            } else {
                (x > 0 && mask[i - 1], x + 1 < w && mask[i + 1])
            };
            bridged[i] = before && after;
        }
    }
    let mut label = vec![false; w * h];
    let mut stack = Vec::new();
    let mut regions = Vec::new();
    for start in 0..w * h {
        if !bridged[start] || label[start] {
            continue;
        }
        label[start] = true;
        stack.push(start);
        let (mut left, mut top, mut right, mut bottom) = (w, h, 0, 0);
        let mut cells = 0u64;
        let mut score = 0u64;
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            left = left.min(x);
            right = right.max(x + 1);
            top = top.min(y);
            bottom = bottom.max(y + 1);
            cells += 1;
            score += u64::from(if vertical { sum_y[i] } else { sum_x[i] });
            let mut visit = |j: usize| {
                if bridged[j] && !label[j] {
                    label[j] = true;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < w {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - w);
            }
            if y + 1 < h {
                visit(i + w);
            }
        }
        let (along, across) = if vertical {
            (bottom - top, right - left)
        } else {
            (right - left, bottom - top)
        };
        let filled = cells as usize * 2 >= (right - left) * (bottom - top);
        if along >= 7 && across >= 4 && filled {
            regions.push(Region {
                left: left as u32,
                top: top as u32,
                right: right as u32,
                bottom: bottom as u32,
                vertical,
                score,
            });
        }
    }
    regions
}

#[cfg(test)]
mod tests {
    use super::*;
    use dangan_testkit::pages::{self, CodeSpec, PageSpec, Place};
    use std::time::Instant;

    fn raster(spec: &PageSpec) -> PageRaster {
        PageRaster::new(pages::render_page(spec).to_luma8(), Some(spec.dpi))
    }

    /// The page as ingest sees a scanner's JPEG: decoded straight to the
    /// reduced size (300-dpi pages), the full page decoded only on demand.
    fn jpeg_raster(spec: &PageSpec) -> PageRaster {
        let jpeg = pages::encode_jpeg(&pages::render_page(spec), 90, spec.dpi);
        let source = crate::decode::open(&jpeg, &crate::decode::Limits::default()).expect("opens");
        let frame = crate::raster::analysis_frame(&source, 0).expect("decodes");
        let expected_scale = if spec.dpi == 300 { 2 } else { frame.luma_scale };
        assert_eq!(frame.luma_scale, expected_scale, "{} dpi", spec.dpi);
        PageRaster::of_frame(frame)
    }

    fn to_edge(symbology: pages::Symbology) -> Symbology {
        match symbology {
            pages::Symbology::Code128 => Symbology::Code128,
            pages::Symbology::Code39 => Symbology::Code39,
            pages::Symbology::Qr => Symbology::Qr,
            pages::Symbology::DataMatrix => Symbology::DataMatrix,
            pages::Symbology::Pdf417 => Symbology::Pdf417,
        }
    }

    fn all_formats() -> BarcodeSettings {
        BarcodeSettings {
            formats: Symbology::ALL.to_vec(),
            ..BarcodeSettings::default()
        }
    }

    #[test]
    fn serialises_symbologies_in_snake_case() {
        for symbology in Symbology::ALL {
            let json = serde_json::to_string(&symbology).expect("serialises");
            assert_eq!(json, format!("\"{symbology}\""));
        }
        let settings: BarcodeSettings =
            serde_json::from_str(r#"{"formats":["data_matrix","pdf417"]}"#).expect("parses");
        assert_eq!(
            settings.formats,
            vec![Symbology::DataMatrix, Symbology::Pdf417]
        );
        assert!(settings.whole_page);
        assert!(serde_json::from_str::<BarcodeSettings>(r#"{"format":[]}"#).is_err());
    }

    #[test]
    fn finds_every_hard_fixture() {
        let default_scanner = Scanner::new(&BarcodeSettings::default());
        let all_scanner = Scanner::new(&all_formats());
        let mut failures = Vec::new();
        let mut decoded_in_full = Vec::new();
        for (name, spec, expected) in pages::hard_fixtures() {
            let needs_all = spec.codes.iter().any(|c| {
                !to_edge(c.symbology).is_linear() && to_edge(c.symbology) != Symbology::Qr
            });
            let scanner = if needs_all {
                &all_scanner
            } else {
                &default_scanner
            };
            let wanted: Vec<(Symbology, String)> = spec
                .codes
                .iter()
                .map(|c| (to_edge(c.symbology), c.text.clone()))
                .collect();
            assert_eq!(expected.len(), wanted.len());
            // The rendered pixels, and the page as a JPEG the way ingest
            // decodes it.
            for (how, page) in [("pixels", raster(&spec)), ("jpeg", jpeg_raster(&spec))] {
                let found = scanner.scan(&page);
                if how == "jpeg" && page.has_full() {
                    decoded_in_full.push(name.clone());
                }
                let got: Vec<(Symbology, String)> =
                    found.iter().map(|b| (b.format, b.text.clone())).collect();
                let mut missing: Vec<_> = wanted.iter().filter(|w| !got.contains(w)).collect();
                missing.dedup();
                let extra: Vec<_> = got.iter().filter(|g| !wanted.contains(g)).collect();
                if !missing.is_empty() || !extra.is_empty() {
                    failures.push(format!(
                        "{name} ({how}): missing {missing:?}, extra {extra:?}"
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
        // The thin bars are read at full resolution, decoded on demand.
        assert!(
            decoded_in_full.iter().any(|name| name.contains("3px_bars")),
            "{decoded_in_full:?}"
        );
    }

    #[test]
    fn no_false_positives_on_text_pages() {
        let scanner = Scanner::new(&all_formats());
        for seed in 0..10 {
            let spec = PageSpec {
                dpi: if seed % 3 == 0 { 200 } else { 300 },
                skew_degrees: if seed % 2 == 0 { 0.0 } else { 1.0 },
                ..PageSpec::with_codes(300, 9000 + seed, Vec::new())
            };
            let found = scanner.scan(&raster(&spec));
            assert!(found.is_empty(), "seed {seed}: {found:?}");
        }
    }

    #[test]
    fn reports_codes_in_reading_order() {
        let spec = PageSpec::with_codes(
            300,
            21,
            vec![
                CodeSpec::new(pages::Symbology::Code128, "MIDDLE-0001", Place::MidPage),
                CodeSpec::new(pages::Symbology::Code39, "RIGHT-0002", Place::TopRight),
                CodeSpec::new(pages::Symbology::Code128, "LEFT-00003", Place::TopLeft),
                CodeSpec::new(pages::Symbology::Code128, "BOTTOM-0004", Place::BottomLeft),
            ],
        );
        let scanner = Scanner::new(&BarcodeSettings::default());
        for page in [raster(&spec), jpeg_raster(&spec)] {
            let found = scanner.scan(&page);
            let texts: Vec<&str> = found.iter().map(|b| b.text.as_str()).collect();
            assert_eq!(
                texts,
                ["LEFT-00003", "RIGHT-0002", "MIDDLE-0001", "BOTTOM-0004"]
            );
            assert_eq!(found[1].format, Symbology::Code39);
        }
        // Ordinary bars read on the reduced copy: the JPEG page was never
        // decoded at full resolution.
        let page = jpeg_raster(&spec);
        assert_eq!(scanner.scan(&page).len(), 4);
        assert!(!page.has_full(), "the full page was decoded");
    }

    #[test]
    fn disabled_formats_are_not_reported() {
        let spec = PageSpec::with_codes(
            300,
            22,
            vec![
                CodeSpec::new(pages::Symbology::Code128, "YW2026000123", Place::TopRight),
                CodeSpec::new(pages::Symbology::Qr, "QR-CONTENT-1", Place::BottomLeft).module_px(6),
            ],
        );
        let page = raster(&spec);
        let only_qr = Scanner::new(&BarcodeSettings {
            formats: vec![Symbology::Qr],
            ..BarcodeSettings::default()
        });
        let found = only_qr.scan(&page);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].format, Symbology::Qr);
        let only_39 = Scanner::new(&BarcodeSettings {
            formats: vec![Symbology::Code39],
            ..BarcodeSettings::default()
        });
        assert!(only_39.scan(&page).is_empty());
    }

    #[test]
    fn survives_tiny_and_empty_pages() {
        let scanner = Scanner::new(&all_formats());
        for (w, h) in [(1, 1), (7, 3), (40, 40), (300, 20)] {
            let page = PageRaster::new(GrayImage::new(w, h), Some(300));
            assert!(scanner.scan(&page).is_empty());
        }
    }

    #[test]
    fn scanner_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Scanner>();
    }

    /// The QR pre-check must say exactly what rxing's own finder search
    /// would: a page it turns away is a page rxing could not have read.
    /// Checked on pages of text alone, with 1D codes (whose bars make
    /// 1:1:3:1:1 runs) and with QR codes of several sizes, turned and
    /// skewed.
    #[test]
    fn qr_precheck_agrees_with_rxings_finder_search() {
        let hints = DecodeHints {
            TryHarder: Some(true),
            ..DecodeHints::default()
        };
        let mut specs = Vec::new();
        for seed in 0..6 {
            specs.push(PageSpec::with_codes(
                [300, 200][seed as usize % 2],
                50 + seed,
                vec![],
            ));
        }
        for (k, symbology) in [
            pages::Symbology::Qr,
            pages::Symbology::Qr,
            pages::Symbology::Qr,
            pages::Symbology::Code128,
            pages::Symbology::Code39,
        ]
        .into_iter()
        .enumerate()
        {
            let place = [Place::TopRight, Place::MidPage, Place::BottomLeft][k % 3];
            let code =
                CodeSpec::new(symbology, &format!("YW2026{k:06}"), place).module_px(4 + k as u32);
            specs.push(PageSpec {
                skew_degrees: k as f32 - 2.0,
                rotate: [pages::Rotation::None, pages::Rotation::Cw90][k % 2],
                ..PageSpec::with_codes(300, 60 + k as u64, vec![code])
            });
        }
        let mut answers = Vec::new();
        for spec in &specs {
            let page = jpeg_raster(spec);
            let reduced = &page.reduced;
            let source =
                Luma8Source::new_with_slice(reduced.as_raw(), reduced.width(), reduced.height())
                    .expect("source");
            let bitmap = BinaryBitmap::new(FastHybridBinarizer::new(source));
            let matrix = bitmap.get_black_matrix();
            let mut finder = FinderPatternFinder::new(matrix);
            let _ = finder.find(&hints);
            let rxing = !finder.getPossibleCenters().is_empty();
            assert_eq!(qr_finder_candidate(matrix), rxing, "seed {}", spec.seed);
            answers.push(rxing);
        }
        // Both answers occur, and every QR page has a candidate.
        assert!(answers.contains(&false), "{answers:?}");
        assert!(answers[6..9].iter().all(|&a| a), "{answers:?}");
    }

    /// Random pages with one or two codes under random defects; prints
    /// what was missed. `DANGAN_BARCODE_SWEEP=<pages>` (release build).
    #[test]
    fn sweep() {
        let Ok(count) = std::env::var("DANGAN_BARCODE_SWEEP") else {
            return;
        };
        let count: u64 = count.parse().unwrap_or(50);
        let scanner = Scanner::new(&all_formats());
        let mut rng = pages::Rng::new(77);
        let mut missed = 0;
        let mut wanted_total = 0;
        for seed in 0..count {
            let symbology = [
                pages::Symbology::Code128,
                pages::Symbology::Code128,
                pages::Symbology::Code39,
                pages::Symbology::Qr,
                pages::Symbology::DataMatrix,
                pages::Symbology::Pdf417,
            ][rng.range(0, 6) as usize];
            let place = [
                Place::TopRight,
                Place::TopLeft,
                Place::TopCentre,
                Place::BottomLeft,
                Place::MidPage,
                Place::At {
                    x_mm: 30.0 + rng.unit() * 100.0,
                    y_mm: 60.0 + rng.unit() * 150.0,
                },
            ][rng.range(0, 6) as usize];
            let linear = matches!(
                symbology,
                pages::Symbology::Code128 | pages::Symbology::Code39
            );
            let module = if linear {
                rng.range(3, 6)
            } else {
                rng.range(4, 8)
            };
            let low = rng.unit() < 0.2;
            let code = CodeSpec::new(
                symbology,
                &format!("YW2026{:06}", rng.range(0, 999_999)),
                place,
            )
            .module_px(if symbology == pages::Symbology::Pdf417 {
                module.min(4)
            } else {
                module
            })
            .height_mm(8.0 + rng.unit() * 10.0)
            .colours(if low { 110 } else { 20 }, if low { 200 } else { 250 });
            let spec = PageSpec {
                skew_degrees: (rng.unit() - 0.5) * 6.0,
                blur_sigma: if rng.unit() < 0.3 { 1.5 } else { 0.0 },
                noise: 2.0 + rng.unit() * 4.0,
                rotate: [
                    pages::Rotation::None,
                    pages::Rotation::None,
                    pages::Rotation::Cw90,
                    pages::Rotation::Cw180,
                    pages::Rotation::Cw270,
                ][rng.range(0, 5) as usize],
                ..PageSpec::with_codes(
                    if rng.unit() < 0.2 { 200 } else { 300 },
                    4000 + seed,
                    vec![code.clone()],
                )
            };
            let found = scanner.scan(&raster(&spec));
            wanted_total += 1;
            if !found
                .iter()
                .any(|b| b.text == code.text && b.format == to_edge(symbology))
            {
                missed += 1;
                println!(
                    "missed {:?} module {} dpi {} skew {:.1} blur {} rot {:?} low {low} {:?}: got {found:?}",
                    symbology,
                    code.module_px,
                    spec.dpi,
                    spec.skew_degrees,
                    spec.blur_sigma,
                    spec.rotate,
                    code.place
                );
            }
        }
        println!("missed {missed} of {wanted_total}");
    }

    /// `DANGAN_BARCODE_TIMING=1 cargo test --release -p dangan-edge --lib barcode -- --nocapture`
    #[test]
    fn timing() {
        if std::env::var("DANGAN_BARCODE_TIMING").as_deref() != Ok("1") {
            return;
        }
        let scanner = Scanner::new(&BarcodeSettings::default());
        // CPU time of this thread (utime + stime, in 10 ms ticks), so that
        // other work on a shared machine does not inflate the figures.
        let cpu_ms = || -> f64 {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            let tick = |i: usize| {
                fields
                    .get(i)
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            (tick(11) + tick(12)) * 10.0
        };
        let time = |label: &str, rasters: &[PageRaster]| {
            let rounds = if rasters.len() == 1 { 10 } else { 1 };
            let start = Instant::now();
            let cpu_start = cpu_ms();
            let mut codes = 0;
            for _ in 0..rounds {
                for page in rasters {
                    codes += scanner.scan(page).len();
                }
            }
            let pages = (rasters.len() * rounds) as f64;
            let cpu = (cpu_ms() - cpu_start) / pages;
            let codes = codes / rounds;
            let ms = start.elapsed().as_secs_f64() * 1000.0 / pages;
            println!(
                "{label:<28} {ms:6.2} ms/page wall, {cpu:5.1} ms CPU ({codes} codes on {} pages)",
                rasters.len()
            );
        };
        let start = Instant::now();
        for seed in 0..10 {
            let _ = pages::render_page(&PageSpec::with_codes(300, 700 + seed, Vec::new()));
        }
        println!(
            "render_page, 300 dpi text    {:6.2} ms/page",
            start.elapsed().as_secs_f64() * 100.0
        );
        let plain: Vec<PageRaster> = (0..20)
            .map(|seed| raster(&PageSpec::with_codes(300, 500 + seed, Vec::new())))
            .collect();
        time("plain 300 dpi", &plain);
        let band: Vec<PageRaster> = (0..20)
            .map(|seed| {
                raster(&PageSpec::with_codes(
                    300,
                    600 + seed,
                    vec![CodeSpec::new(
                        pages::Symbology::Code128,
                        "YW2026000123",
                        Place::TopRight,
                    )],
                ))
            })
            .collect();
        time("code 128 in top band", &band);
        for (name, spec, _) in pages::hard_fixtures() {
            time(&name, &[raster(&spec)]);
        }
    }
}
