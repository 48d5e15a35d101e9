//! Synthetic scanned pages: A4 paper with text-like lines, barcodes placed
//! like real forms, and the defects scanners add (skew, blur, noise, pages
//! fed sideways or upside down).
//!
//! Every page is a pure function of its [`PageSpec`], so a failing test can
//! be reproduced from the spec alone. Barcodes are drawn from rxing's writers
//! with exact integer module scaling, so `module_px` is the narrow bar (or 2D
//! module) width in pixels before any page-level effect.
//!
//! The generator is meant to be cheap (tens of milliseconds for a clean
//! 300-dpi page) because benchmarks render thousands of pages.
use std::io::Cursor;

use image::codecs::jpeg::{JpegEncoder, PixelDensity};
use image::{DynamicImage, GrayImage, ImageEncoder, Luma, Rgb, RgbImage};
use imageproc::geometric_transformations::{Interpolation, rotate_about_center};
use rxing::common::BitMatrix;
use rxing::{BarcodeFormat, Writer};

/// A4 in millimetres.
pub const A4_MM: (f32, f32) = (210.0, 297.0);

/// The barcode symbologies the fixtures can draw (testkit's own enum, so the
/// testkit does not depend on the edge node).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Symbology {
    Code128,
    Code39,
    Qr,
    DataMatrix,
    Pdf417,
}

impl Symbology {
    /// The snake-case name the edge node serialises (`"code128"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Symbology::Code128 => "code128",
            Symbology::Code39 => "code39",
            Symbology::Qr => "qr",
            Symbology::DataMatrix => "data_matrix",
            Symbology::Pdf417 => "pdf417",
        }
    }

    fn is_linear(self) -> bool {
        matches!(self, Symbology::Code128 | Symbology::Code39)
    }
}

/// An exact rotation of the whole scanned image, clockwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Rotation {
    #[default]
    None,
    Cw90,
    Cw180,
    Cw270,
}

/// Where a code's label sits on the unrotated page.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Place {
    /// Top right corner, 15 mm from the top edge (inside a top 25% band).
    TopRight,
    TopLeft,
    TopCentre,
    /// Bottom left, ending 15 mm above the bottom edge (inside a bottom 15% band).
    BottomLeft,
    /// Centred on the page, outside both usual bands.
    MidPage,
    /// Top-left corner of the label, in millimetres from the page's top-left.
    At {
        x_mm: f32,
        y_mm: f32,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct CodeSpec {
    pub symbology: Symbology,
    pub text: String,
    pub place: Place,
    /// Narrow bar (1D) or module (2D) width in pixels at the page's dpi.
    pub module_px: u32,
    /// Bar height for 1D codes; 2D codes are as tall as their modules make them.
    pub height_mm: f32,
    /// Grey level of bars and dark modules.
    pub ink: u8,
    /// Grey level of the label (the quiet zone around the code).
    pub paper: u8,
}

impl CodeSpec {
    /// A crisp black-on-white code: 4-pixel bars (0.34 mm at 300 dpi) and
    /// 12 mm tall for 1D codes, 6-pixel modules (0.5 mm) for 2D codes, the
    /// sizes forms commonly print.
    pub fn new(symbology: Symbology, text: &str, place: Place) -> Self {
        Self {
            symbology,
            text: text.to_string(),
            place,
            module_px: if symbology.is_linear() { 4 } else { 6 },
            height_mm: 12.0,
            ink: 20,
            paper: 250,
        }
    }

    pub fn module_px(mut self, module_px: u32) -> Self {
        self.module_px = module_px.max(1);
        self
    }

    pub fn height_mm(mut self, height_mm: f32) -> Self {
        self.height_mm = height_mm;
        self
    }

    pub fn colours(mut self, ink: u8, paper: u8) -> Self {
        self.ink = ink;
        self.paper = paper;
        self
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PageSpec {
    /// 200 or 300 (any positive value works; the page is always A4).
    pub dpi: u32,
    /// Rgb8 with slightly tinted paper instead of Luma8.
    pub colour: bool,
    /// Drives text layout, noise and dust; same spec, same pixels.
    pub seed: u64,
    /// Text-like lines (glyph-sized strokes, Latin and CJK-like) and a few
    /// form rules.
    pub text: bool,
    pub codes: Vec<CodeSpec>,
    pub rotate: Rotation,
    /// Small skew applied before `rotate`, positive clockwise.
    pub skew_degrees: f32,
    /// Gaussian blur in pixels at the page's dpi (0 = none).
    pub blur_sigma: f32,
    /// Standard deviation of per-pixel sensor noise in grey levels.
    pub noise: f32,
    /// Grey level of the paper.
    pub paper: u8,
}

impl Default for PageSpec {
    fn default() -> Self {
        Self {
            dpi: 300,
            colour: false,
            seed: 1,
            text: true,
            codes: Vec::new(),
            rotate: Rotation::None,
            skew_degrees: 0.0,
            blur_sigma: 0.0,
            noise: 3.0,
            paper: 232,
        }
    }
}

impl PageSpec {
    /// A text page at `dpi` with the given codes and no other defect.
    pub fn with_codes(dpi: u32, seed: u64, codes: Vec<CodeSpec>) -> Self {
        Self {
            dpi,
            seed,
            codes,
            ..Self::default()
        }
    }

    /// Pixel size of the unrotated page.
    pub fn size_px(&self) -> (u32, u32) {
        a4_px(self.dpi)
    }
}

/// A4 in pixels: 2480×3508 at 300 dpi, 1654×2339 at 200 dpi.
pub fn a4_px(dpi: u32) -> (u32, u32) {
    let px = |mm: f32| (mm / 25.4 * dpi as f32).round() as u32;
    (px(A4_MM.0), px(A4_MM.1))
}

/// SplitMix64: tiny, fast and good enough for layout and noise.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1A4_F87B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        if hi <= lo {
            return lo;
        }
        lo + (self.next_u64() % u64::from(hi - lo)) as u32
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Renders the page. Luma8 unless `spec.colour`.
pub fn render_page(spec: &PageSpec) -> DynamicImage {
    let (width, height) = spec.size_px();
    let mut rng = Rng::new(spec.seed);
    let mut page = paper(width, height, spec.paper, &mut rng);
    let labels = layout_codes(spec);
    if spec.text {
        draw_text(&mut page, spec.dpi, &labels, &mut rng);
    }
    for (code, label) in spec.codes.iter().zip(&labels) {
        if let Some(matrix) = encode(code) {
            draw_code(&mut page, code, &matrix, *label, spec.dpi);
        }
    }
    dust(&mut page, &mut rng, 6);
    if spec.skew_degrees != 0.0 {
        page = rotate_about_center(
            &page,
            spec.skew_degrees.to_radians(),
            Interpolation::Bilinear,
            Luma([spec.paper]),
        );
    }
    if spec.blur_sigma > 0.0 {
        page = imageproc::filter::gaussian_blur_f32(&page, spec.blur_sigma);
    }
    if spec.noise > 0.0 {
        add_noise(&mut page, spec.noise, &mut rng);
    }
    page = match spec.rotate {
        Rotation::None => page,
        Rotation::Cw90 => image::imageops::rotate90(&page),
        Rotation::Cw180 => image::imageops::rotate180(&page),
        Rotation::Cw270 => image::imageops::rotate270(&page),
    };
    if spec.colour {
        DynamicImage::ImageRgb8(tint(&page))
    } else {
        DynamicImage::ImageLuma8(page)
    }
}

/// Paper texture, light noise and a few dust specks, no ink: a blank-page
/// detector must call this blank.
pub fn blank_page(dpi: u32, seed: u64) -> GrayImage {
    let (width, height) = a4_px(dpi);
    let mut rng = Rng::new(seed);
    let mut page = paper(width, height, 232, &mut rng);
    dust(&mut page, &mut rng, 8);
    add_noise(&mut page, 3.0, &mut rng);
    page
}

/// The PATCH T separator convention: a large Code 128 "PATCHT" in mid-page
/// on an otherwise empty sheet.
pub fn separator_sheet(dpi: u32, seed: u64) -> PageSpec {
    let module_px = (dpi as f32 * 0.5 / 25.4).round().max(2.0) as u32; // 0.5 mm bars
    PageSpec {
        dpi,
        seed,
        text: false,
        codes: vec![
            CodeSpec::new(Symbology::Code128, "PATCHT", Place::MidPage)
                .module_px(module_px)
                .height_mm(25.0),
        ],
        ..PageSpec::default()
    }
}

/// The hard cases every barcode search must survive, as
/// (name, page, expected texts). All at 300 dpi unless the name says so.
pub fn hard_fixtures() -> Vec<(String, PageSpec, Vec<String>)> {
    let form_number = "YW2026000123";
    let c128 = |place| CodeSpec::new(Symbology::Code128, form_number, place);
    let page = |seed, codes| PageSpec::with_codes(300, seed, codes);
    let mut fixtures = vec![
        ("code128_top_right", page(101, vec![c128(Place::TopRight)])),
        (
            "code39_box_label",
            page(
                102,
                vec![CodeSpec::new(
                    Symbology::Code39,
                    "BOX-00000001",
                    Place::TopLeft,
                )],
            ),
        ),
        (
            "qr_top_right",
            page(
                103,
                vec![CodeSpec::new(Symbology::Qr, form_number, Place::TopRight).module_px(6)],
            ),
        ),
        (
            "data_matrix_top_left",
            page(
                104,
                vec![
                    CodeSpec::new(Symbology::DataMatrix, form_number, Place::TopLeft).module_px(6),
                ],
            ),
        ),
        (
            "pdf417_bottom_left",
            page(
                105,
                vec![CodeSpec::new(Symbology::Pdf417, form_number, Place::BottomLeft).module_px(3)],
            ),
        ),
        (
            "code128_3px_bars",
            page(106, vec![c128(Place::TopRight).module_px(3).height_mm(8.0)]),
        ),
        (
            "code128_3px_bars_mid_page",
            page(
                116,
                vec![
                    c128(Place::At {
                        x_mm: 60.0,
                        y_mm: 170.0,
                    })
                    .module_px(3)
                    .height_mm(8.0),
                ],
            ),
        ),
        (
            "code128_blur_1_5",
            PageSpec {
                blur_sigma: 1.5,
                ..page(107, vec![c128(Place::TopRight)])
            },
        ),
        (
            "code128_skew_3deg",
            PageSpec {
                skew_degrees: 3.0,
                noise: 6.0,
                ..page(108, vec![c128(Place::TopRight)])
            },
        ),
        (
            "code128_rotated_90",
            PageSpec {
                rotate: Rotation::Cw90,
                ..page(109, vec![c128(Place::TopRight)])
            },
        ),
        (
            "code128_rotated_180",
            PageSpec {
                rotate: Rotation::Cw180,
                ..page(110, vec![c128(Place::TopRight)])
            },
        ),
        (
            "code128_low_contrast",
            PageSpec {
                paper: 200,
                ..page(111, vec![c128(Place::TopRight).colours(110, 200)])
            },
        ),
        ("code128_mid_page", page(112, vec![c128(Place::MidPage)])),
        ("separator_sheet", separator_sheet(300, 113)),
        (
            "separator_and_form_number",
            page(
                114,
                vec![
                    c128(Place::TopRight),
                    CodeSpec::new(Symbology::Code128, "PATCHT", Place::MidPage)
                        .module_px(6)
                        .height_mm(25.0),
                ],
            ),
        ),
        ("plain_text", page(115, Vec::new())),
        (
            "code128_200dpi_colour",
            PageSpec {
                colour: true,
                ..PageSpec::with_codes(200, 117, vec![c128(Place::TopRight).module_px(3)])
            },
        ),
    ];
    fixtures
        .drain(..)
        .map(|(name, spec)| {
            let expected = spec.codes.iter().map(|c| c.text.clone()).collect();
            (name.to_string(), spec, expected)
        })
        .collect()
}

/// JFIF-wrapped JPEG whose APP0 density says `dpi` dots per inch.
pub fn encode_jpeg(img: &DynamicImage, quality: u8, dpi: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100));
    encoder.set_pixel_density(PixelDensity::dpi(dpi.min(u32::from(u16::MAX)) as u16));
    // Gray and RGB 8-bit images always encode; anything else is converted.
    let result = match img {
        DynamicImage::ImageLuma8(gray) => encoder.encode_image(gray),
        DynamicImage::ImageRgb8(rgb) => encoder.encode_image(rgb),
        other => encoder.encode_image(&other.to_rgb8()),
    };
    if result.is_err() {
        out.clear();
    }
    out
}

/// PNG with a pHYs chunk recording `dpi`.
pub fn encode_png(img: &DynamicImage, dpi: u32) -> Vec<u8> {
    let mut plain = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(Cursor::new(&mut plain));
    let result = match img {
        DynamicImage::ImageLuma8(gray) => encoder.write_image(
            gray.as_raw(),
            gray.width(),
            gray.height(),
            image::ExtendedColorType::L8,
        ),
        DynamicImage::ImageRgb8(rgb) => encoder.write_image(
            rgb.as_raw(),
            rgb.width(),
            rgb.height(),
            image::ExtendedColorType::Rgb8,
        ),
        other => {
            let rgb = other.to_rgb8();
            encoder.write_image(
                rgb.as_raw(),
                rgb.width(),
                rgb.height(),
                image::ExtendedColorType::Rgb8,
            )
        }
    };
    if result.is_err() {
        return Vec::new();
    }
    insert_phys(&plain, dpi)
}

/// Inserts a pHYs chunk right after IHDR (signature 8 bytes + IHDR 25 bytes).
fn insert_phys(png: &[u8], dpi: u32) -> Vec<u8> {
    const AFTER_IHDR: usize = 8 + 4 + 4 + 13 + 4;
    if png.len() < AFTER_IHDR {
        return png.to_vec();
    }
    let pixels_per_metre = (f64::from(dpi) / 0.0254).round() as u32;
    let mut chunk = Vec::with_capacity(21);
    chunk.extend_from_slice(&9u32.to_be_bytes());
    chunk.extend_from_slice(b"pHYs");
    chunk.extend_from_slice(&pixels_per_metre.to_be_bytes());
    chunk.extend_from_slice(&pixels_per_metre.to_be_bytes());
    chunk.push(1); // unit: metre
    let crc = crc32(&chunk[4..]);
    chunk.extend_from_slice(&crc.to_be_bytes());
    let mut out = Vec::with_capacity(png.len() + chunk.len());
    out.extend_from_slice(&png[..AFTER_IHDR]);
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&png[AFTER_IHDR..]);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

fn paper(width: u32, height: u32, level: u8, rng: &mut Rng) -> GrayImage {
    // Paper texture: a gentle brightness drift per band of rows plus fibres
    // (short faint streaks). Cheap on purpose.
    let mut page = GrayImage::from_pixel(width, height, Luma([level]));
    let band = 64;
    for (index, rows) in page.chunks_mut(width as usize * band).enumerate() {
        let drift = ((index as f32 * 0.7).sin() * 1.5).round() as i16;
        if drift != 0 {
            for value in rows.iter_mut() {
                *value = (i16::from(*value) + drift).clamp(0, 255) as u8;
            }
        }
    }
    let fibres = (width as u64 * height as u64 / 40_000) as u32;
    for _ in 0..fibres {
        let x = rng.range(0, width);
        let y = rng.range(0, height);
        let length = rng.range(4, 14);
        let shade = level.saturating_sub(rng.range(4, 10) as u8);
        let horizontal = rng.unit() < 0.5;
        for step in 0..length {
            let (px, py) = if horizontal {
                (x + step, y)
            } else {
                (x, y + step)
            };
            if px < width && py < height {
                page.put_pixel(px, py, Luma([shade]));
            }
        }
    }
    page
}

fn dust(page: &mut GrayImage, rng: &mut Rng, count: u32) {
    let (width, height) = page.dimensions();
    for _ in 0..count {
        let cx = rng.range(0, width);
        let cy = rng.range(0, height);
        let radius = rng.range(1, 3);
        let shade = rng.range(60, 140) as u8;
        fill_rect(
            page,
            cx.saturating_sub(radius),
            cy.saturating_sub(radius),
            radius * 2,
            radius * 2,
            shade,
        );
    }
}

fn add_noise(page: &mut GrayImage, sigma: f32, rng: &mut Rng) {
    // Sum of four uniforms ≈ Gaussian; one 64-bit draw feeds four pixels' worth
    // of 16-bit uniforms, each pixel using two of them (Irwin–Hall n=2 scaled).
    let scale = sigma * 2.449; // sqrt(6): variance of the sum of two U(-.5,.5) is 1/6
    let mut bits = 0u64;
    let mut left = 0;
    for value in page.iter_mut() {
        if left == 0 {
            bits = rng.next_u64();
            left = 2;
        }
        let a = (bits & 0xFFFF) as f32 / 65536.0;
        let b = ((bits >> 16) & 0xFFFF) as f32 / 65536.0;
        bits >>= 32;
        left -= 1;
        let delta = (a + b - 1.0) * scale;
        *value = (f32::from(*value) + delta).round().clamp(0.0, 255.0) as u8;
    }
}

fn tint(page: &GrayImage) -> RgbImage {
    let (width, height) = page.dimensions();
    let mut out = RgbImage::new(width, height);
    for (src, dst) in page.iter().zip(out.pixels_mut()) {
        let g = f32::from(*src);
        // Ink stays neutral; paper turns slightly cream.
        let warm = g / 255.0;
        *dst = Rgb([
            g as u8,
            (g - 3.0 * warm).max(0.0) as u8,
            (g - 12.0 * warm).max(0.0) as u8,
        ]);
    }
    out
}

fn fill_rect(page: &mut GrayImage, x: u32, y: u32, width: u32, height: u32, shade: u8) {
    let (page_width, page_height) = page.dimensions();
    let x_end = (x + width).min(page_width);
    let y_end = (y + height).min(page_height);
    if x >= x_end || y >= y_end {
        return;
    }
    let stride = page_width as usize;
    let buffer: &mut [u8] = page;
    for row in y..y_end {
        let start = row as usize * stride;
        buffer[start + x as usize..start + x_end as usize].fill(shade);
    }
}

/// A label rectangle in page pixels: (x, y, width, height).
type Rect = (u32, u32, u32, u32);

fn mm_to_px(mm: f32, dpi: u32) -> u32 {
    (mm.max(0.0) / 25.4 * dpi as f32).round() as u32
}

fn label_size(code: &CodeSpec, matrix: &BitMatrix, dpi: u32) -> (u32, u32) {
    let module = code.module_px;
    if code.symbology.is_linear() {
        let quiet = 10 * module;
        (
            matrix.width() * module + 2 * quiet,
            mm_to_px(code.height_mm, dpi) + 2 * linear_quiet_y(code, dpi),
        )
    } else {
        let quiet = 2 * module;
        (
            matrix.width() * module + 2 * quiet,
            matrix.height() * module + 2 * quiet,
        )
    }
}

fn layout_codes(spec: &PageSpec) -> Vec<Rect> {
    let (page_width, page_height) = spec.size_px();
    let margin_x = mm_to_px(20.0, spec.dpi);
    let margin_top = mm_to_px(15.0, spec.dpi);
    spec.codes
        .iter()
        .map(|code| {
            let (width, height) = encode(code)
                .map(|m| label_size(code, &m, spec.dpi))
                .unwrap_or((0, 0));
            let (x, y) = match code.place {
                Place::TopRight => (page_width.saturating_sub(margin_x + width), margin_top),
                Place::TopLeft => (margin_x, margin_top),
                Place::TopCentre => (page_width.saturating_sub(width) / 2, margin_top),
                Place::BottomLeft => (margin_x, page_height.saturating_sub(margin_top + height)),
                Place::MidPage => (
                    page_width.saturating_sub(width) / 2,
                    page_height.saturating_sub(height) / 2,
                ),
                Place::At { x_mm, y_mm } => (mm_to_px(x_mm, spec.dpi), mm_to_px(y_mm, spec.dpi)),
            };
            (x, y, width, height)
        })
        .collect()
}

fn encode(code: &CodeSpec) -> Option<BitMatrix> {
    use rxing::datamatrix::DataMatrixWriter;
    use rxing::oned::{Code39Writer, Code128Writer, OneDimensionalCodeWriter};
    use rxing::pdf417::PDF417Writer;
    use rxing::qrcode::QRCodeWriter;
    let linear = |bars: rxing::common::Result<Vec<bool>>| -> Option<BitMatrix> {
        let bars = bars.ok()?;
        let mut matrix = BitMatrix::new(bars.len() as u32, 1).ok()?;
        for (x, bar) in bars.iter().enumerate() {
            if *bar {
                matrix.set(x as u32, 0);
            }
        }
        Some(matrix)
    };
    // rxing's writers can panic on odd input; a fixture without its code is
    // better than a test run that aborts.
    std::panic::catch_unwind(|| match code.symbology {
        Symbology::Code128 => linear(Code128Writer.encode_oned(&code.text)),
        Symbology::Code39 => linear(Code39Writer.encode_oned(&code.text)),
        Symbology::Qr => QRCodeWriter
            .encode(&code.text, &BarcodeFormat::QR_CODE, 0, 0)
            .ok(),
        Symbology::DataMatrix => DataMatrixWriter
            .encode(&code.text, &BarcodeFormat::DATA_MATRIX, 0, 0)
            .ok(),
        Symbology::Pdf417 => PDF417Writer
            .encode(&code.text, &BarcodeFormat::PDF_417, 0, 0)
            .ok(),
    })
    .ok()
    .flatten()
}

fn draw_code(page: &mut GrayImage, code: &CodeSpec, matrix: &BitMatrix, label: Rect, dpi: u32) {
    let (x, y, width, height) = label;
    fill_rect(page, x, y, width, height, code.paper);
    let module = code.module_px;
    let content_width = matrix.width() * module;
    let left = x + (width.saturating_sub(content_width)) / 2;
    if code.symbology.is_linear() {
        let quiet_y = linear_quiet_y(code, dpi);
        let inner_height = height.saturating_sub(2 * quiet_y);
        let top = y + quiet_y;
        for column in 0..matrix.width() {
            if matrix.get(column, 0) {
                fill_rect(
                    page,
                    left + column * module,
                    top,
                    module,
                    inner_height,
                    code.ink,
                );
            }
        }
    } else {
        let content_height = matrix.height() * module;
        let top = y + (height.saturating_sub(content_height)) / 2;
        for row in 0..matrix.height() {
            for column in 0..matrix.width() {
                if matrix.get(column, row) {
                    fill_rect(
                        page,
                        left + column * module,
                        top + row * module,
                        module,
                        module,
                        code.ink,
                    );
                }
            }
        }
    }
}

/// The white margin above and below a 1D code's bars.
fn linear_quiet_y(code: &CodeSpec, dpi: u32) -> u32 {
    (10 * code.module_px).min(mm_to_px(3.0, dpi))
}

/// Text-like ink: lines of Latin words (thin strokes) and CJK-like square
/// glyphs (several crossing strokes), a few form rules, never over a label.
fn draw_text(page: &mut GrayImage, dpi: u32, labels: &[Rect], rng: &mut Rng) {
    let (width, height) = page.dimensions();
    let px = |mm: f32| mm_to_px(mm, dpi).max(1);
    let left = px(20.0);
    let right = width.saturating_sub(px(20.0));
    let stroke = px(0.3);
    let keep_out: Vec<Rect> = labels
        .iter()
        .map(|&(x, y, w, h)| {
            let pad = px(3.0);
            (
                x.saturating_sub(pad),
                y.saturating_sub(pad),
                w + 2 * pad,
                h + 2 * pad,
            )
        })
        .collect();
    let blocked = |x: u32, y: u32, w: u32, h: u32| {
        keep_out
            .iter()
            .any(|&(kx, ky, kw, kh)| x < kx + kw && kx < x + w && y < ky + kh && ky < y + h)
    };
    let mut y = px(12.0) + rng.range(0, px(8.0));
    let bottom = height.saturating_sub(px(15.0));
    while y + px(5.0) < bottom {
        let cjk = rng.unit() < 0.5;
        let glyph_height = if cjk { px(3.5) } else { px(2.6) };
        let line_end = if rng.unit() < 0.2 {
            left + (right - left) * rng.range(20, 80) / 100
        } else {
            right
        };
        let ink = rng.range(15, 70) as u8;
        if rng.unit() < 0.04 {
            // A form rule across the line.
            if !blocked(left, y, line_end - left, stroke) {
                fill_rect(
                    page,
                    left,
                    y + glyph_height / 2,
                    line_end - left,
                    stroke,
                    ink,
                );
            }
            y += px(6.0);
            continue;
        }
        let mut x = left + if rng.unit() < 0.15 { px(8.0) } else { 0 };
        while x + glyph_height < line_end {
            let glyph_width = if cjk {
                glyph_height
            } else {
                px(1.2) + rng.range(0, px(1.6))
            };
            if !blocked(x, y, glyph_width, glyph_height + px(1.0)) {
                if cjk {
                    cjk_glyph(page, x, y, glyph_width, glyph_height, stroke, ink, rng);
                } else {
                    latin_glyph(page, x, y, glyph_width, glyph_height, stroke, ink, rng);
                }
            }
            x += glyph_width + stroke * 2;
            if !cjk && rng.unit() < 0.18 {
                x += px(2.0); // word gap
            }
        }
        y += if cjk { px(7.0) } else { px(5.5) };
        if rng.unit() < 0.08 {
            y += px(8.0); // paragraph gap
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn latin_glyph(
    page: &mut GrayImage,
    x: u32,
    y: u32,
    w: u32,
    h: u32,
    stroke: u32,
    ink: u8,
    rng: &mut Rng,
) {
    let x_height = h * 6 / 10;
    let top = y + h - x_height;
    match rng.range(0, 5) {
        0 => {
            // Ascender letter: a tall stem plus a bowl.
            fill_rect(page, x, y, stroke, h, ink);
            fill_rect(page, x, top, w, stroke, ink);
            fill_rect(page, x, y + h - stroke, w, stroke, ink);
            fill_rect(page, x + w - stroke, top, stroke, x_height, ink);
        }
        1 => {
            // "o"-like ring.
            fill_rect(page, x, top, w, stroke, ink);
            fill_rect(page, x, y + h - stroke, w, stroke, ink);
            fill_rect(page, x, top, stroke, x_height, ink);
            fill_rect(page, x + w - stroke, top, stroke, x_height, ink);
        }
        2 => {
            // "n"/"m"-like stems.
            fill_rect(page, x, top, stroke, x_height, ink);
            fill_rect(page, x, top, w, stroke, ink);
            fill_rect(page, x + w - stroke, top, stroke, x_height, ink);
        }
        3 => {
            // "e"/"s"-like horizontals.
            fill_rect(page, x, top, w, stroke, ink);
            fill_rect(page, x, top + x_height / 2, w, stroke, ink);
            fill_rect(page, x, y + h - stroke, w, stroke, ink);
            fill_rect(page, x, top, stroke, x_height / 2, ink);
        }
        _ => {
            // "i"/"l"-like single stem.
            fill_rect(
                page,
                x + w / 2,
                if rng.unit() < 0.5 { y } else { top },
                stroke,
                h,
                ink,
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn cjk_glyph(
    page: &mut GrayImage,
    x: u32,
    y: u32,
    w: u32,
    h: u32,
    stroke: u32,
    ink: u8,
    rng: &mut Rng,
) {
    let strokes = rng.range(3, 8);
    for _ in 0..strokes {
        if rng.unit() < 0.55 {
            let sy = y + rng.range(0, h - stroke);
            let sx = x + rng.range(0, w / 3);
            let length = rng.range(w / 3, w - (sx - x)).max(stroke);
            fill_rect(page, sx, sy, length, stroke, ink);
        } else {
            let sx = x + rng.range(0, w - stroke);
            let sy = y + rng.range(0, h / 3);
            let length = rng.range(h / 3, h - (sy - y)).max(stroke);
            fill_rect(page, sx, sy, stroke, length, ink);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a4_sizes() {
        assert_eq!(a4_px(300), (2480, 3508));
        assert_eq!(a4_px(200), (1654, 2339));
        let page = render_page(&PageSpec::with_codes(200, 3, Vec::new()));
        assert_eq!((page.width(), page.height()), (1654, 2339));
        let rotated = render_page(&PageSpec {
            rotate: Rotation::Cw90,
            text: false,
            ..PageSpec::with_codes(200, 3, Vec::new())
        });
        assert_eq!((rotated.width(), rotated.height()), (2339, 1654));
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        let spec = PageSpec::with_codes(
            200,
            7,
            vec![CodeSpec::new(
                Symbology::Code128,
                "YW2026000123",
                Place::TopRight,
            )],
        );
        let first = render_page(&spec);
        assert_eq!(first, render_page(&spec));
        let other = render_page(&PageSpec { seed: 8, ..spec });
        assert_ne!(first, other);
    }

    #[test]
    fn colour_pages_are_rgb_with_warm_paper() {
        let page = render_page(&PageSpec {
            colour: true,
            text: false,
            noise: 0.0,
            ..PageSpec::with_codes(200, 1, Vec::new())
        });
        let rgb = page.as_rgb8().expect("colour page is Rgb8");
        let pixel = rgb.get_pixel(800, 1200);
        assert!(pixel.0[0] > pixel.0[2], "{pixel:?}");
    }

    #[test]
    fn every_symbology_encodes() {
        for symbology in [
            Symbology::Code128,
            Symbology::Code39,
            Symbology::Qr,
            Symbology::DataMatrix,
            Symbology::Pdf417,
        ] {
            let code = CodeSpec::new(symbology, "BOX-00000001", Place::TopLeft);
            assert!(encode(&code).is_some(), "{symbology:?}");
        }
    }

    #[test]
    fn code_is_drawn_with_exact_modules() {
        let spec = PageSpec {
            text: false,
            noise: 0.0,
            ..PageSpec::with_codes(
                300,
                1,
                vec![
                    CodeSpec::new(
                        Symbology::Code128,
                        "AB",
                        Place::At {
                            x_mm: 10.0,
                            y_mm: 10.0,
                        },
                    )
                    .module_px(3),
                ],
            )
        };
        let page = render_page(&spec).to_luma8();
        let row = mm_to_px(16.0, 300);
        let dark: Vec<u32> = (0..page.width())
            .filter(|&x| page.get_pixel(x, row).0[0] < 128)
            .collect();
        // Code 128 starts with a 2-module bar.
        let first = dark[0];
        assert_eq!(&dark[..6], &(first..first + 6).collect::<Vec<_>>()[..]);
        assert!(!dark.contains(&(first + 6)));
    }

    #[test]
    fn blank_pages_have_no_ink() {
        let page = blank_page(200, 4);
        let dark = page.iter().filter(|&&v| v < 150).count();
        assert!(dark < 200, "{dark} dark pixels");
    }

    #[test]
    fn jpeg_and_png_record_dpi() {
        let page = DynamicImage::ImageLuma8(blank_page(200, 1));
        let jpeg = encode_jpeg(&page, 85, 200);
        // JFIF APP0: "JFIF\0", version, units = 1 (dpi), x density, y density.
        let jfif = jpeg
            .windows(5)
            .position(|w| w == b"JFIF\0")
            .expect("JFIF header");
        assert_eq!(jpeg[jfif + 7], 1);
        assert_eq!(u16::from_be_bytes([jpeg[jfif + 8], jpeg[jfif + 9]]), 200);
        let png = encode_png(&page, 300);
        let phys = png
            .windows(4)
            .position(|w| w == b"pHYs")
            .expect("pHYs chunk");
        let ppm = u32::from_be_bytes([png[phys + 4], png[phys + 5], png[phys + 6], png[phys + 7]]);
        assert_eq!(ppm, 11811);
        let decoded = image::load_from_memory(&png).expect("png decodes");
        assert_eq!(decoded.width(), page.width());
    }

    #[test]
    fn hard_fixtures_cover_the_list() {
        let fixtures = hard_fixtures();
        assert!(fixtures.len() >= 15);
        let plain = fixtures
            .iter()
            .find(|f| f.0 == "plain_text")
            .expect("plain page");
        assert!(plain.2.is_empty());
    }
}
