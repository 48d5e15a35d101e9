//! Reads a scanned source file (JPEG, PNG, TIFF, PDF) into page frames.
//!
//! [`open`] sniffs the format from magic bytes (never the file name) and
//! validates everything it can without decoding pixels: headers, frame
//! count, that the file is complete, and that no frame exceeds
//! [`Limits::max_pixels`]. [`Source::frame`] then decodes one frame at a
//! time, so a 300-page PDF never holds more than one page in memory.
//!
//! A frame carries the full-resolution luminance for barcode reading and
//! blank-page detection, and the bytes to store as the page's blob. A
//! single-frame JPEG, PNG or TIFF is stored as the original file so identical
//! files dedupe and nothing is recompressed; a PDF page that is one
//! DCTDecode image is stored as that JPEG; everything else becomes a PNG
//! written with fixed settings so the same frame always gives the same bytes.
//!
//! Decoders can panic on hostile input, so every pixel decode runs inside
//! `catch_unwind` and a panic becomes [`DecodeError::Corrupt`].

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use hayro::hayro_interpret::{
    self, BlendMode, ClipPath, Context, Device, DrawMode, DrawProps, Image, ImageDrawProps,
    InterpreterCache, InterpreterSettings, Paint, RectExt, SoftMask, font::GlyphRun,
};
use hayro::hayro_syntax::page::Page;
use hayro::hayro_syntax::{Filter, LoadPdfError, Pdf};
use hayro::kurbo::{Affine, BezPath, Rect};
use image::{DynamicImage, GrayImage, ImageDecoder};
use serde::{Deserialize, Serialize};

/// Bounds applied to every source before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest width×height accepted for any frame, image or rendered page.
    pub max_pixels: u64,
    /// Resolution at which PDF pages that are not a single image are rendered.
    pub pdf_render_dpi: u32,
}

impl Default for Limits {
    fn default() -> Self {
        // 150 MP admits a 300-dpi A0 sheet (about 140 MP) and refuses a
        // 60000×60000 header.
        Self {
            max_pixels: 150_000_000,
            pdf_render_dpi: 300,
        }
    }
}

/// The container format of a source file, from its magic bytes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    Jpeg,
    Png,
    Tiff,
    Pdf,
}

/// The colour mode of a frame's content.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ColourMode {
    /// One bit per pixel: fax, G4, JBIG2, thresholded scans.
    Bilevel,
    /// Gray levels (including palettes and alpha images whose colours are gray).
    Gray,
    /// Anything with real colour.
    Colour,
}

/// What a frame's stored blob bytes are.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum BlobFormat {
    Jpeg,
    Png,
    Tiff,
}

impl BlobFormat {
    /// File extension without the dot.
    pub fn extension(&self) -> &'static str {
        match self {
            BlobFormat::Jpeg => "jpg",
            BlobFormat::Png => "png",
            BlobFormat::Tiff => "tif",
        }
    }

    /// MIME type.
    pub fn mime(&self) -> &'static str {
        match self {
            BlobFormat::Jpeg => "image/jpeg",
            BlobFormat::Png => "image/png",
            BlobFormat::Tiff => "image/tiff",
        }
    }
}

/// One decoded frame (page) of a source file.
#[derive(Clone)]
pub struct Frame {
    /// 0-based frame (page) index within the source file.
    pub index: u32,
    pub width: u32,
    pub height: u32,
    /// Resolution in dots per inch, if the file records it. For PDF image
    /// pages: image pixels / (page size in points / 72); for rendered pages
    /// the render resolution.
    pub dpi: Option<u32>,
    pub colour: ColourMode,
    /// Luminance, alpha composited over white: at full resolution unless
    /// `luma_scale` says otherwise.
    pub luma: GrayImage,
    /// How many full-resolution pixels one `luma` pixel spans per axis: 1,
    /// except for a JPEG page decoded reduced by [`Source::frame_reduced`].
    pub luma_scale: u32,
    /// The bytes to store as this page's blob.
    pub blob: Vec<u8>,
    pub blob_format: BlobFormat,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("index", &self.index)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("dpi", &self.dpi)
            .field("colour", &self.colour)
            .field("blob_len", &self.blob.len())
            .field("blob_format", &self.blob_format)
            .finish()
    }
}

/// Why a source file cannot be read. Every variant has a stable
/// [`code`](DecodeError::code) for the quarantine record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty file (0 bytes)")]
    Empty,
    #[error("not an image: content is not JPEG, PNG, TIFF or PDF")]
    NotAnImage,
    #[error("unsupported format: {0}")]
    UnsupportedFormat(String),
    #[error("truncated image: {0}")]
    Truncated(String),
    #[error(
        "decompression bomb refused: {width}×{height} = {pixels} pixels exceeds the limit of {limit} pixels"
    )]
    TooManyPixels {
        width: u64,
        height: u64,
        pixels: u64,
        limit: u64,
    },
    #[error("corrupt image: {0}")]
    Corrupt(String),
    #[error("frame {index} does not exist: the source has {frame_count} frames")]
    NoSuchFrame { index: u32, frame_count: u32 },
}

impl DecodeError {
    /// A stable snake_case code for this kind of failure.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty",
            DecodeError::NotAnImage => "not_an_image",
            DecodeError::UnsupportedFormat(_) => "unsupported_format",
            DecodeError::Truncated(_) => "truncated",
            DecodeError::TooManyPixels { .. } => "too_many_pixels",
            DecodeError::Corrupt(_) => "corrupt",
            DecodeError::NoSuchFrame { .. } => "no_such_frame",
        }
    }
}

fn corrupt(message: impl std::fmt::Display) -> DecodeError {
    DecodeError::Corrupt(message.to_string())
}

fn check_pixels(width: u64, height: u64, limits: &Limits) -> Result<(), DecodeError> {
    let pixels = width.saturating_mul(height);
    if pixels > limits.max_pixels {
        return Err(DecodeError::TooManyPixels {
            width,
            height,
            pixels,
            limit: limits.max_pixels,
        });
    }
    Ok(())
}

/// Runs a pixel decode, turning a panic inside a decoder into `Corrupt`.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, DecodeError>) -> Result<T, DecodeError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "decoder panicked".to_string());
            Err(corrupt(format!("{what}: decoder failed ({detail})")))
        }
    }
}

/// A source file opened and validated, ready to decode frame by frame.
pub struct Source {
    pub format: SourceFormat,
    pub frame_count: u32,
    limits: Limits,
    inner: Inner,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("format", &self.format)
            .field("frame_count", &self.frame_count)
            .finish()
    }
}

enum Inner {
    Jpeg {
        bytes: Vec<u8>,
        info: JpegInfo,
    },
    Png {
        bytes: Vec<u8>,
        info: PngInfo,
    },
    Tiff {
        bytes: Vec<u8>,
        frames: Vec<TiffFrameInfo>,
    },
    Pdf {
        pdf: Pdf,
    },
}

/// Opens a source file from its bytes (copied once into the [`Source`]).
pub fn open(bytes: &[u8], limits: &Limits) -> Result<Source, DecodeError> {
    open_owned(bytes.to_vec(), limits)
}

/// Like [`open`], taking ownership of the bytes to avoid a copy.
pub fn open_owned(bytes: Vec<u8>, limits: &Limits) -> Result<Source, DecodeError> {
    let format = sniff(&bytes)?;
    let limits = *limits;
    let (frame_count, inner) = match format {
        SourceFormat::Jpeg => {
            let info = parse_jpeg(&bytes)?;
            check_pixels(info.width.into(), info.height.into(), &limits)?;
            (1, Inner::Jpeg { bytes, info })
        }
        SourceFormat::Png => {
            let info = parse_png(&bytes)?;
            check_pixels(info.width.into(), info.height.into(), &limits)?;
            (1, Inner::Png { bytes, info })
        }
        SourceFormat::Tiff => {
            let frames = guarded("TIFF", || parse_tiff(&bytes, &limits))?;
            (frames.len() as u32, Inner::Tiff { bytes, frames })
        }
        SourceFormat::Pdf => {
            let (pdf, count) = guarded("PDF", || open_pdf(bytes, &limits))?;
            (count, Inner::Pdf { pdf })
        }
    };
    Ok(Source {
        format,
        frame_count,
        limits,
        inner,
    })
}

impl Source {
    /// Decodes frame `index` (0-based).
    pub fn frame(&self, index: u32) -> Result<Frame, DecodeError> {
        if index >= self.frame_count {
            return Err(DecodeError::NoSuchFrame {
                index,
                frame_count: self.frame_count,
            });
        }
        match &self.inner {
            Inner::Jpeg { bytes, info } => guarded("JPEG", || decode_jpeg(bytes, info)),
            Inner::Png { bytes, info } => guarded("PNG", || decode_png(bytes, info)),
            Inner::Tiff { bytes, frames } => guarded("TIFF", || {
                decode_tiff_frame(bytes, frames, index, &self.limits)
            }),
            Inner::Pdf { pdf } => guarded(&format!("PDF page {}", index + 1), || {
                decode_pdf_page(pdf, index, &self.limits)
            }),
        }
    }

    /// Decodes every frame in order.
    pub fn frames(&self) -> impl Iterator<Item = Result<Frame, DecodeError>> + '_ {
        (0..self.frame_count).map(|index| self.frame(index))
    }

    /// Like [`frame`](Self::frame), for a caller that wants the luminance
    /// reduced by `factor(dpi)` per axis (`dpi` as the file records it).
    /// A gray or YCbCr JPEG page is then decoded straight to that size when
    /// the factor is 2, 4 or 8: the decoder's scaled inverse DCT skips most
    /// of a full-size decode, and the full page never exists in memory.
    /// Any other frame, or a JPEG the scaled decoder cannot read, comes back
    /// at full resolution (`luma_scale` 1); so does everything when
    /// `factor` asks for 1.
    pub fn frame_reduced(
        &self,
        index: u32,
        factor: impl FnOnce(Option<u32>) -> u32,
    ) -> Result<Frame, DecodeError> {
        if let Inner::Jpeg { bytes, info } = &self.inner
            && index == 0
            && matches!(info.components, 1 | 3)
        {
            let scale = factor(info.dpi);
            if scale > 1
                && let Some(luma) = jpeg_luma_scaled(bytes, scale)
            {
                return Ok(Frame {
                    index,
                    width: u32::from(info.width),
                    height: u32::from(info.height),
                    dpi: info.dpi,
                    colour: jpeg_colour(info),
                    luma,
                    luma_scale: scale,
                    blob: bytes.clone(),
                    blob_format: BlobFormat::Jpeg,
                });
            }
        }
        self.frame(index)
    }
}

// ---------------------------------------------------------------------------
// Sniffing

fn sniff(bytes: &[u8]) -> Result<SourceFormat, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        return Ok(SourceFormat::Jpeg);
    }
    if starts(b"\x89PNG\r\n\x1a\n") {
        return Ok(SourceFormat::Png);
    }
    if starts(b"II\x2a\x00")
        || starts(b"MM\x00\x2a")
        || starts(b"II\x2b\x00")
        || starts(b"MM\x00\x2b")
    {
        return Ok(SourceFormat::Tiff);
    }
    // The PDF header may follow some junk; readers accept it within 1 KiB.
    let head = &bytes[..bytes.len().min(1024)];
    if head.windows(5).any(|w| w == b"%PDF-") {
        return Ok(SourceFormat::Pdf);
    }
    let unsupported = |name: &str| Err(DecodeError::UnsupportedFormat(name.to_string()));
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return unsupported("GIF");
    }
    if bytes.len() >= 12 && starts(b"RIFF") && &bytes[8..12] == b"WEBP" {
        return unsupported("WebP");
    }
    if starts(&[
        0, 0, 0, 0x0C, b'j', b'P', b' ', b' ', 0x0D, 0x0A, 0x87, 0x0A,
    ]) || starts(&[0xFF, 0x4F, 0xFF, 0x51])
    {
        return unsupported("JPEG 2000");
    }
    if starts(&[0xFF, 0x0A])
        || starts(&[
            0, 0, 0, 0x0C, b'J', b'X', b'L', b' ', 0x0D, 0x0A, 0x87, 0x0A,
        ])
    {
        return unsupported("JPEG XL");
    }
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        let brand = &bytes[8..12];
        if brand == b"avif" || brand == b"avis" {
            return unsupported("AVIF");
        }
        if [
            b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1",
        ]
        .iter()
        .any(|b| brand == *b)
        {
            return unsupported("HEIC");
        }
    }
    if bytes.len() >= 18 && starts(b"BM") {
        let header_size = u32::from_le_bytes([bytes[14], bytes[15], bytes[16], bytes[17]]);
        if [12, 40, 52, 56, 64, 108, 124].contains(&header_size) {
            return unsupported("BMP");
        }
    }
    Err(DecodeError::NotAnImage)
}

// ---------------------------------------------------------------------------
// JPEG

#[derive(Debug, Clone, Copy)]
struct JpegInfo {
    width: u16,
    height: u16,
    components: u8,
    dpi: Option<u32>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

fn positive_dpi(value: f64) -> Option<u32> {
    (1.0..1_000_000.0)
        .contains(&value)
        .then(|| value.round() as u32)
}

/// Walks the JPEG markers up to the first scan: size and density from the
/// header, and the end-of-image marker must follow the scan data (decoders
/// silently fill a truncated scan with gray).
fn parse_jpeg(b: &[u8]) -> Result<JpegInfo, DecodeError> {
    let truncated = || DecodeError::Truncated("JPEG ends inside its header".to_string());
    let mut pos = 2;
    let mut size: Option<(u16, u16, u8)> = None;
    let mut jfif_dpi = None;
    let mut exif_dpi = None;
    let scan_start = loop {
        // Markers may be preceded by fill bytes.
        while b.get(pos) == Some(&0xFF) && b.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        match b.get(pos) {
            None => return Err(truncated()),
            Some(0xFF) => {}
            Some(_) => return Err(corrupt("JPEG marker expected")),
        }
        let marker = *b.get(pos + 1).ok_or_else(truncated)?;
        if marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            pos += 2;
            continue;
        }
        if marker == 0xD9 {
            return Err(corrupt("JPEG has no scan data"));
        }
        let length = be16(b, pos + 2).ok_or_else(truncated)? as usize;
        if length < 2 {
            return Err(corrupt("JPEG segment length below 2"));
        }
        let end = pos + 2 + length;
        if end > b.len() {
            return Err(truncated());
        }
        let segment = &b[pos + 4..end];
        match marker {
            0xE0 if segment.starts_with(b"JFIF\0") && segment.len() >= 12 => {
                let units = segment[7];
                let density = f64::from(be16(segment, 8).unwrap_or(0));
                jfif_dpi = match units {
                    1 => positive_dpi(density),
                    2 => positive_dpi(density * 2.54),
                    _ => None,
                };
            }
            0xE1 if segment.starts_with(b"Exif\0\0") => {
                exif_dpi = exif_resolution(&segment[6..]);
            }
            0xC0..=0xCF if marker != 0xC4 && marker != 0xC8 && marker != 0xCC => {
                if segment.len() < 6 {
                    return Err(corrupt("JPEG frame header too short"));
                }
                let height = be16(segment, 1).unwrap_or(0);
                let width = be16(segment, 3).unwrap_or(0);
                size = Some((width, height, segment[5]));
            }
            0xDA => break end,
            _ => {}
        }
        pos = end;
    };
    let (width, height, components) =
        size.ok_or_else(|| corrupt("JPEG has no frame header (SOF) before its scan"))?;
    if width == 0 || height == 0 {
        return Err(corrupt(format!(
            "JPEG declares a {width}×{height} frame (a DNL height is not supported)"
        )));
    }
    if !b[scan_start..].windows(2).rev().any(|w| w == [0xFF, 0xD9]) {
        return Err(DecodeError::Truncated(
            "JPEG ends before its end-of-image marker (FF D9)".to_string(),
        ));
    }
    Ok(JpegInfo {
        width,
        height,
        components,
        dpi: jfif_dpi.or(exif_dpi),
    })
}

/// XResolution/ResolutionUnit from the IFD0 of an EXIF block.
fn exif_resolution(tiff: &[u8]) -> Option<u32> {
    let little = match tiff.get(..2)? {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let bytes = [*tiff.get(at)?, *tiff.get(at + 1)?];
        Some(if little {
            u16::from_le_bytes(bytes)
        } else {
            u16::from_be_bytes(bytes)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let bytes = [
            *tiff.get(at)?,
            *tiff.get(at + 1)?,
            *tiff.get(at + 2)?,
            *tiff.get(at + 3)?,
        ];
        Some(if little {
            u32::from_le_bytes(bytes)
        } else {
            u32::from_be_bytes(bytes)
        })
    };
    let ifd = u32_at(4)? as usize;
    let count = u16_at(ifd)? as usize;
    let mut resolution = None;
    let mut unit = 2;
    for i in 0..count.min(256) {
        let entry = ifd + 2 + i * 12;
        match u16_at(entry)? {
            282 => {
                let at = u32_at(entry + 8)? as usize;
                let (n, d) = (u32_at(at)?, u32_at(at + 4)?);
                if d != 0 {
                    resolution = Some(f64::from(n) / f64::from(d));
                }
            }
            296 => unit = u16_at(entry + 8)?,
            _ => {}
        }
    }
    match unit {
        2 => positive_dpi(resolution?),
        3 => positive_dpi(resolution? * 2.54),
        _ => None,
    }
}

fn jpeg_colour(info: &JpegInfo) -> ColourMode {
    if info.components == 1 {
        ColourMode::Gray
    } else {
        ColourMode::Colour
    }
}

fn decode_jpeg(bytes: &[u8], info: &JpegInfo) -> Result<Frame, DecodeError> {
    let colour = jpeg_colour(info);
    // Gray and YCbCr JPEGs are decoded straight to luminance: for a colour
    // page that skips chroma upsampling and colour conversion altogether.
    // Anything else (CMYK, Adobe RGB) goes through `image`.
    let luma = match info.components {
        1 | 3 => decode_jpeg_luma(bytes),
        _ => None,
    };
    let luma = match luma {
        Some(luma) => luma,
        None => {
            let decoder = image::codecs::jpeg::JpegDecoder::new(Cursor::new(bytes))
                .map_err(|e| corrupt(format!("JPEG: {e}")))?;
            let image =
                DynamicImage::from_decoder(decoder).map_err(|e| corrupt(format!("JPEG: {e}")))?;
            luma_over_white(image)
        }
    };
    Ok(Frame {
        index: 0,
        width: luma.width(),
        height: luma.height(),
        dpi: info.dpi,
        colour,
        luma,
        luma_scale: 1,
        blob: bytes.to_vec(),
        blob_format: BlobFormat::Jpeg,
    })
}

/// Decodes a gray or YCbCr JPEG to its luminance channel with zune-jpeg, or
/// None when zune cannot (the caller falls back to `image`).
fn decode_jpeg_luma(bytes: &[u8]) -> Option<GrayImage> {
    use zune_core::bytestream::ZCursor;
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    // The pixel limit is enforced before decoding; zune's own size cap
    // (16384 per side) would refuse large-format scans the limit admits.
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::Luma)
        .set_max_width(1 << 20)
        .set_max_height(1 << 20);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let pixels = decoder.decode().ok()?;
    let info = decoder.info()?;
    GrayImage::from_raw(u32::from(info.width), u32::from(info.height), pixels)
}

/// Decodes a gray or YCbCr JPEG's luminance reduced by `factor` per axis
/// (1, 2, 4 or 8; None for any other) with libjpeg-turbo's scaled inverse
/// DCT, or None when libjpeg cannot read the file. The output is
/// `ceil(width / factor)` by `ceil(height / factor)`; each pixel is the
/// low-pass average of the block it stands for. Corrupt entropy data is
/// filled with grey as zune-jpeg does, with a warning libjpeg keeps silent.
pub fn jpeg_luma_scaled(bytes: &[u8], factor: u32) -> Option<GrayImage> {
    let numerator = match factor {
        1 => 8,
        2 => 4,
        4 => 2,
        8 => 1,
        _ => return None,
    };
    // libjpeg reports a fatal error by unwinding out of the C library (the
    // mozjpeg crate's error manager); it must not reach the caller.
    std::panic::catch_unwind(|| {
        let mut decompress = mozjpeg::Decompress::with_markers(&[])
            .from_mem(bytes)
            .ok()?;
        decompress.scale(numerator);
        let mut started = decompress.grayscale().ok()?;
        let (width, height) = (started.width(), started.height());
        let pixels: Vec<u8> = started.read_scanlines().ok()?;
        GrayImage::from_raw(
            u32::try_from(width).ok()?,
            u32::try_from(height).ok()?,
            pixels,
        )
    })
    .ok()
    .flatten()
}

// ---------------------------------------------------------------------------
// PNG

#[derive(Debug, Clone, Copy)]
struct PngInfo {
    width: u32,
    height: u32,
    dpi: Option<u32>,
    colour: ColourMode,
}

/// Walks the PNG chunks: IHDR first, every chunk inside the file, IEND at
/// the end (a truncated PNG stops before it).
fn parse_png(b: &[u8]) -> Result<PngInfo, DecodeError> {
    let truncated = || DecodeError::Truncated("PNG ends before its IEND chunk".to_string());
    let mut pos = 8;
    let mut header: Option<(u32, u32, u8, u8)> = None;
    let mut dpi = None;
    let mut palette_gray: Option<(bool, bool)> = None;
    loop {
        let length = be32(b, pos).ok_or_else(truncated)? as usize;
        let kind = b.get(pos + 4..pos + 8).ok_or_else(truncated)?;
        let end = pos
            .checked_add(12)
            .and_then(|p| p.checked_add(length))
            .ok_or_else(|| corrupt("PNG chunk length overflows"))?;
        if end > b.len() {
            return Err(truncated());
        }
        let data = &b[pos + 8..pos + 8 + length];
        if header.is_none() && kind != b"IHDR" {
            return Err(corrupt("PNG does not start with an IHDR chunk"));
        }
        match kind {
            b"IHDR" => {
                if length != 13 {
                    return Err(corrupt("PNG IHDR chunk has the wrong length"));
                }
                header = Some((
                    be32(data, 0).unwrap_or(0),
                    be32(data, 4).unwrap_or(0),
                    data[8],
                    data[9],
                ));
            }
            b"pHYs" if length == 9 && data[8] == 1 => {
                // Pixels per metre.
                dpi = positive_dpi(f64::from(be32(data, 0).unwrap_or(0)) * 0.0254);
            }
            b"PLTE" => {
                let entries: Vec<&[u8]> = data.chunks_exact(3).collect();
                let gray = entries.iter().all(|c| c[0] == c[1] && c[1] == c[2]);
                let black_white = entries.iter().all(|c| c[0] == 0 || c[0] == 255);
                palette_gray = Some((gray, gray && black_white));
            }
            b"IEND" => break,
            _ => {}
        }
        pos = end;
    }
    let (width, height, bit_depth, colour_type) =
        header.ok_or_else(|| corrupt("PNG has no IHDR chunk"))?;
    if width == 0 || height == 0 {
        return Err(corrupt(format!("PNG declares a {width}×{height} image")));
    }
    let colour = match colour_type {
        0 if bit_depth == 1 => ColourMode::Bilevel,
        0 | 4 => ColourMode::Gray,
        3 => match palette_gray {
            Some((true, true)) => ColourMode::Bilevel,
            Some((true, false)) => ColourMode::Gray,
            _ => ColourMode::Colour,
        },
        _ => ColourMode::Colour,
    };
    Ok(PngInfo {
        width,
        height,
        dpi,
        colour,
    })
}

fn decode_png(bytes: &[u8], info: &PngInfo) -> Result<Frame, DecodeError> {
    let mut decoder = image::codecs::png::PngDecoder::new(Cursor::new(bytes))
        .map_err(|e| corrupt(format!("PNG: {e}")))?;
    decoder
        .set_limits(image::Limits::no_limits())
        .map_err(|e| corrupt(format!("PNG: {e}")))?;
    let image = DynamicImage::from_decoder(decoder).map_err(|e| corrupt(format!("PNG: {e}")))?;
    let luma = luma_over_white(image);
    Ok(Frame {
        index: 0,
        width: luma.width(),
        height: luma.height(),
        dpi: info.dpi,
        colour: info.colour,
        luma,
        luma_scale: 1,
        blob: bytes.to_vec(),
        blob_format: BlobFormat::Png,
    })
}

// ---------------------------------------------------------------------------
// Pixel helpers

/// Rec. 601 luma in integer arithmetic (weights sum to 256).
#[inline]
fn rgb_luma(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 77 + u32::from(g) * 150 + u32::from(b) * 29 + 128) >> 8) as u8
}

/// Composites a gray value with alpha over white.
#[inline]
fn over_white(value: u8, alpha: u8) -> u8 {
    let (v, a) = (u32::from(value), u32::from(alpha));
    ((v * a + 255 * (255 - a) + 127) / 255) as u8
}

fn luma_over_white(image: DynamicImage) -> GrayImage {
    match image {
        DynamicImage::ImageLuma8(gray) => gray,
        DynamicImage::ImageLumaA8(_) | DynamicImage::ImageLumaA16(_) => {
            let gray_alpha = image.into_luma_alpha8();
            let (width, height) = gray_alpha.dimensions();
            let data = gray_alpha
                .as_raw()
                .chunks_exact(2)
                .map(|p| over_white(p[0], p[1]))
                .collect();
            GrayImage::from_raw(width, height, data).unwrap_or_default()
        }
        image if image.color().has_alpha() => {
            let rgba = image.into_rgba8();
            let (width, height) = rgba.dimensions();
            let data = rgba
                .as_raw()
                .chunks_exact(4)
                .map(|p| over_white(rgb_luma(p[0], p[1], p[2]), p[3]))
                .collect();
            GrayImage::from_raw(width, height, data).unwrap_or_default()
        }
        image @ (DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgb16(_)) => {
            let rgb = image.into_rgb8();
            let (width, height) = rgb.dimensions();
            let data = rgb
                .as_raw()
                .chunks_exact(3)
                .map(|p| rgb_luma(p[0], p[1], p[2]))
                .collect();
            GrayImage::from_raw(width, height, data).unwrap_or_default()
        }
        image => image.into_luma8(),
    }
}

/// A decoded frame's pixels before the blob is chosen.
enum Pixels {
    /// 0 or 255 only.
    Bilevel(GrayImage),
    Gray(GrayImage),
    Colour {
        rgb: Vec<u8>,
        luma: GrayImage,
    },
}

impl Pixels {
    fn colour_mode(&self) -> ColourMode {
        match self {
            Pixels::Bilevel(_) => ColourMode::Bilevel,
            Pixels::Gray(_) => ColourMode::Gray,
            Pixels::Colour { .. } => ColourMode::Colour,
        }
    }

    /// Builds pixels from RGB, falling back to gray when every pixel is
    /// neutral (a gray palette expanded to RGB).
    fn from_rgb(width: u32, height: u32, rgb: Vec<u8>) -> Result<Pixels, DecodeError> {
        let neutral = rgb.chunks_exact(3).all(|p| p[0] == p[1] && p[1] == p[2]);
        let luma: Vec<u8> = rgb
            .chunks_exact(3)
            .map(|p| rgb_luma(p[0], p[1], p[2]))
            .collect();
        let luma = GrayImage::from_raw(width, height, luma)
            .ok_or_else(|| corrupt("pixel buffer has the wrong size"))?;
        Ok(if neutral {
            Pixels::Gray(luma)
        } else {
            Pixels::Colour { rgb, luma }
        })
    }

    /// Stores the pixels as a deterministic PNG and returns the frame.
    fn into_png_frame(self, index: u32, dpi: Option<u32>) -> Result<Frame, DecodeError> {
        let colour = self.colour_mode();
        let (blob, luma) = match self {
            Pixels::Bilevel(luma) => (encode_png_bilevel(&luma, dpi)?, luma),
            Pixels::Gray(luma) => (
                encode_png(
                    luma.as_raw(),
                    luma.width(),
                    luma.height(),
                    image::ExtendedColorType::L8,
                    dpi,
                )?,
                luma,
            ),
            Pixels::Colour { rgb, luma } => (
                encode_png(
                    &rgb,
                    luma.width(),
                    luma.height(),
                    image::ExtendedColorType::Rgb8,
                    dpi,
                )?,
                luma,
            ),
        };
        Ok(Frame {
            index,
            width: luma.width(),
            height: luma.height(),
            dpi,
            colour,
            luma,
            luma_scale: 1,
            blob,
            blob_format: BlobFormat::Png,
        })
    }
}

// ---------------------------------------------------------------------------
// PNG writing

fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::LazyLock<[u32; 256]> = std::sync::LazyLock::new(|| {
        let mut table = [0u32; 256];
        for (n, entry) in table.iter_mut().enumerate() {
            let mut c = n as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *entry = c;
        }
        table
    });
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc = TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 12);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[4..]);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Encodes with `image`'s PNG encoder (fixed compression and filter, so the
/// output is deterministic) and inserts a pHYs chunk after IHDR. If
/// `bilevel_width` is set, the data are packed 1-bit rows encoded as an
/// 8-bit image of the row stride, and IHDR is rewritten to declare a 1-bit
/// image of that width: the filtered bytes mean the same in both, because
/// PNG filters work on whole bytes.
fn encode_png_raw(
    data: &[u8],
    width: u32,
    height: u32,
    colour: image::ExtendedColorType,
    dpi: Option<u32>,
    bilevel_width: Option<u32>,
) -> Result<Vec<u8>, DecodeError> {
    use image::ImageEncoder;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let mut encoded = Vec::new();
    let compression = if bilevel_width.is_some() {
        CompressionType::Default
    } else {
        CompressionType::Fast
    };
    PngEncoder::new_with_quality(&mut encoded, compression, FilterType::Adaptive)
        .write_image(data, width, height, colour)
        .map_err(|e| corrupt(format!("cannot encode page as PNG: {e}")))?;
    // Signature (8) + IHDR chunk (25).
    if encoded.len() < 33 || &encoded[12..16] != b"IHDR" {
        return Err(corrupt("PNG encoder wrote an unexpected header"));
    }
    let mut ihdr: Vec<u8> = encoded[16..29].to_vec();
    if let Some(real_width) = bilevel_width {
        ihdr[0..4].copy_from_slice(&real_width.to_be_bytes());
        ihdr[8] = 1;
    }
    let mut out = Vec::with_capacity(encoded.len() + 21);
    out.extend_from_slice(&encoded[..8]);
    out.extend_from_slice(&png_chunk(b"IHDR", &ihdr));
    if let Some(dpi) = dpi {
        let per_metre = (f64::from(dpi) / 0.0254).round() as u32;
        let mut phys = Vec::with_capacity(9);
        phys.extend_from_slice(&per_metre.to_be_bytes());
        phys.extend_from_slice(&per_metre.to_be_bytes());
        phys.push(1);
        out.extend_from_slice(&png_chunk(b"pHYs", &phys));
    }
    out.extend_from_slice(&encoded[33..]);
    Ok(out)
}

fn encode_png(
    data: &[u8],
    width: u32,
    height: u32,
    colour: image::ExtendedColorType,
    dpi: Option<u32>,
) -> Result<Vec<u8>, DecodeError> {
    encode_png_raw(data, width, height, colour, dpi, None)
}

/// A 1-bit gray PNG (0 = black) of a 0/255 luma image.
pub fn encode_png_bilevel(luma: &GrayImage, dpi: Option<u32>) -> Result<Vec<u8>, DecodeError> {
    let (width, height) = luma.dimensions();
    let stride = width.div_ceil(8) as usize;
    let mut packed = vec![0u8; stride * height as usize];
    for (row, out) in luma
        .as_raw()
        .chunks_exact(width as usize)
        .zip(packed.chunks_exact_mut(stride))
    {
        for (x, &value) in row.iter().enumerate() {
            if value >= 128 {
                out[x / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    encode_png_raw(
        &packed,
        stride as u32,
        height,
        image::ExtendedColorType::L8,
        dpi,
        Some(width),
    )
}

// ---------------------------------------------------------------------------
// TIFF

#[derive(Debug, Clone, Copy)]
struct TiffFrameInfo {
    dpi: Option<u32>,
}

fn tiff_error(error: tiff::TiffError) -> DecodeError {
    use tiff::TiffError;
    match error {
        TiffError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            DecodeError::Truncated("TIFF ends inside its data".to_string())
        }
        TiffError::UnsupportedError(e) => DecodeError::UnsupportedFormat(format!("TIFF {e}")),
        other => corrupt(format!("TIFF: {other}")),
    }
}

fn tiff_decoder<'a>(
    bytes: &'a [u8],
    limits: &Limits,
) -> Result<tiff::decoder::Decoder<Cursor<&'a [u8]>>, DecodeError> {
    let mut tiff_limits = tiff::decoder::Limits::default();
    // Room for the largest admitted frame at 16-bit RGBA.
    tiff_limits.decoding_buffer_size =
        usize::try_from(limits.max_pixels.saturating_mul(8)).unwrap_or(usize::MAX);
    tiff_limits.intermediate_buffer_size = tiff_limits.decoding_buffer_size;
    Ok(tiff::decoder::Decoder::new(Cursor::new(bytes))
        .map_err(tiff_error)?
        .with_limits(tiff_limits))
}

/// Upper bound on TIFF directories, against IFD chains built to loop.
const MAX_TIFF_FRAMES: usize = 10_000;

fn parse_tiff(bytes: &[u8], limits: &Limits) -> Result<Vec<TiffFrameInfo>, DecodeError> {
    use tiff::tags::Tag;
    let mut decoder = tiff_decoder(bytes, limits)?;
    let mut frames = Vec::new();
    loop {
        let (width, height) = decoder.dimensions().map_err(tiff_error)?;
        if width == 0 || height == 0 {
            return Err(corrupt(format!(
                "TIFF frame {} is {width}×{height}",
                frames.len() + 1
            )));
        }
        check_pixels(width.into(), height.into(), limits)?;
        decoder.colortype().map_err(tiff_error)?;
        let (offsets, counts) = match decoder.find_tag_unsigned_vec::<u64>(Tag::StripOffsets) {
            Ok(Some(offsets)) => (
                offsets,
                decoder.find_tag_unsigned_vec::<u64>(Tag::StripByteCounts),
            ),
            _ => (
                decoder
                    .find_tag_unsigned_vec::<u64>(Tag::TileOffsets)
                    .map_err(tiff_error)?
                    .unwrap_or_default(),
                decoder.find_tag_unsigned_vec::<u64>(Tag::TileByteCounts),
            ),
        };
        let counts = counts.map_err(tiff_error)?.unwrap_or_default();
        if offsets.is_empty() {
            return Err(corrupt("TIFF frame has no strip or tile offsets"));
        }
        for (offset, count) in offsets.iter().zip(&counts) {
            if offset.saturating_add(*count) > bytes.len() as u64 {
                return Err(DecodeError::Truncated(format!(
                    "TIFF image data at {offset}+{count} lies beyond the end of the {}-byte file",
                    bytes.len()
                )));
            }
        }
        frames.push(TiffFrameInfo {
            dpi: tiff_dpi(&mut decoder),
        });
        if !decoder.more_images() {
            break;
        }
        if frames.len() >= MAX_TIFF_FRAMES {
            return Err(corrupt(format!(
                "TIFF has more than {MAX_TIFF_FRAMES} frames"
            )));
        }
        decoder.next_image().map_err(tiff_error)?;
    }
    Ok(frames)
}

fn tiff_dpi(decoder: &mut tiff::decoder::Decoder<Cursor<&[u8]>>) -> Option<u32> {
    use tiff::decoder::ifd::Value;
    use tiff::tags::Tag;
    let resolution = match decoder.find_tag(Tag::XResolution).ok()?? {
        Value::Rational(n, d) if d != 0 => f64::from(n) / f64::from(d),
        Value::Float(f) => f64::from(f),
        Value::Double(f) => f,
        other => f64::from(other.into_u32().ok()?),
    };
    let unit = decoder
        .find_tag_unsigned::<u16>(Tag::ResolutionUnit)
        .ok()
        .flatten()
        .unwrap_or(2);
    match unit {
        2 => positive_dpi(resolution),
        3 => positive_dpi(resolution * 2.54),
        _ => None,
    }
}

fn decode_tiff_frame(
    bytes: &[u8],
    frames: &[TiffFrameInfo],
    index: u32,
    limits: &Limits,
) -> Result<Frame, DecodeError> {
    use tiff::ColorType;
    use tiff::decoder::DecodingResult;
    let info = frames
        .get(index as usize)
        .ok_or_else(|| corrupt("TIFF frame index out of range"))?;
    let mut decoder = tiff_decoder(bytes, limits)?;
    decoder.seek_to_image(index as usize).map_err(tiff_error)?;
    let (width, height) = decoder.dimensions().map_err(tiff_error)?;
    check_pixels(width.into(), height.into(), limits)?;
    let colour_type = decoder.colortype().map_err(tiff_error)?;
    let palette = if matches!(colour_type, ColorType::Palette(_)) {
        Some(
            decoder
                .get_tag_u16_vec(tiff::tags::Tag::ColorMap)
                .map_err(tiff_error)?,
        )
    } else {
        None
    };
    let result = decoder.read_image().map_err(tiff_error)?;
    let pixel_count = width as usize * height as usize;
    let to_u8 = |result: DecodingResult| -> Result<Vec<u8>, DecodeError> {
        match result {
            DecodingResult::U8(v) => Ok(v),
            DecodingResult::U16(v) => Ok(v.into_iter().map(|x| (x >> 8) as u8).collect()),
            _ => Err(DecodeError::UnsupportedFormat(format!(
                "TIFF with sample type of {colour_type:?}"
            ))),
        }
    };
    let gray = |data: Vec<u8>| -> Result<GrayImage, DecodeError> {
        GrayImage::from_raw(width, height, data)
            .ok_or_else(|| corrupt("TIFF frame has less data than its size"))
    };
    let pixels = match colour_type {
        ColorType::Gray(bits @ (1 | 2 | 4)) => {
            let packed = to_u8(result)?;
            let levels = unpack_samples(&packed, width, height, bits)?;
            let max = (1u16 << bits) - 1;
            let data = levels
                .into_iter()
                .map(|v| (u16::from(v) * 255 / max) as u8)
                .collect();
            if bits == 1 {
                Pixels::Bilevel(gray(data)?)
            } else {
                Pixels::Gray(gray(data)?)
            }
        }
        ColorType::Gray(8 | 16) => Pixels::Gray(gray(to_u8(result)?)?),
        ColorType::GrayA(8 | 16) => {
            let data = to_u8(result)?
                .chunks_exact(2)
                .map(|p| over_white(p[0], p[1]))
                .collect();
            Pixels::Gray(gray(data)?)
        }
        ColorType::RGB(8 | 16) => {
            let rgb = to_u8(result)?;
            Pixels::from_rgb(width, height, rgb)?
        }
        ColorType::RGBA(8 | 16) => {
            let rgb = to_u8(result)?
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]].map(|c| over_white(c, p[3])))
                .collect();
            Pixels::from_rgb(width, height, rgb)?
        }
        ColorType::CMYK(8) => {
            let rgb = to_u8(result)?
                .chunks_exact(4)
                .flat_map(|p| {
                    let k = 255 - u32::from(p[3]);
                    [p[0], p[1], p[2]].map(|c| ((255 - u32::from(c)) * k / 255) as u8)
                })
                .collect();
            Pixels::from_rgb(width, height, rgb)?
        }
        ColorType::YCbCr(8) => {
            // Y is the luminance; keep the colour as RGB for the blob.
            let ycbcr = to_u8(result)?;
            let rgb = ycbcr
                .chunks_exact(3)
                .flat_map(|p| {
                    let y = f32::from(p[0]);
                    let cb = f32::from(p[1]) - 128.0;
                    let cr = f32::from(p[2]) - 128.0;
                    [
                        (y + 1.402 * cr).clamp(0.0, 255.0) as u8,
                        (y - 0.344_136 * cb - 0.714_136 * cr).clamp(0.0, 255.0) as u8,
                        (y + 1.772 * cb).clamp(0.0, 255.0) as u8,
                    ]
                })
                .collect();
            Pixels::from_rgb(width, height, rgb)?
        }
        ColorType::Palette(bits @ (1 | 2 | 4 | 8)) => {
            let map = palette.unwrap_or_default();
            let entries = 1usize << bits;
            if map.len() < 3 * entries {
                return Err(corrupt("TIFF palette image has a short ColorMap"));
            }
            let packed = to_u8(result)?;
            let indices = if bits == 8 {
                packed
            } else {
                unpack_samples(&packed, width, height, bits)?
            };
            let rgb = indices
                .iter()
                .flat_map(|&i| {
                    let i = i as usize;
                    [map[i], map[entries + i], map[2 * entries + i]].map(|c| (c >> 8) as u8)
                })
                .collect();
            Pixels::from_rgb(width, height, rgb)?
        }
        other => {
            return Err(DecodeError::UnsupportedFormat(format!(
                "TIFF with colour type {other:?}"
            )));
        }
    };
    if let Pixels::Gray(g) | Pixels::Bilevel(g) | Pixels::Colour { luma: g, .. } = &pixels
        && g.as_raw().len() != pixel_count
    {
        return Err(corrupt("TIFF frame has less data than its size"));
    }
    if frames.len() == 1 {
        // A single-frame file is stored as it came.
        let colour = pixels.colour_mode();
        let luma = match pixels {
            Pixels::Bilevel(g) | Pixels::Gray(g) | Pixels::Colour { luma: g, .. } => g,
        };
        return Ok(Frame {
            index,
            width,
            height,
            dpi: info.dpi,
            colour,
            luma,
            luma_scale: 1,
            blob: bytes.to_vec(),
            blob_format: BlobFormat::Tiff,
        });
    }
    pixels.into_png_frame(index, info.dpi)
}

/// Unpacks 1/2/4-bit samples (rows padded to a byte) into one byte each.
fn unpack_samples(
    packed: &[u8],
    width: u32,
    height: u32,
    bits: u8,
) -> Result<Vec<u8>, DecodeError> {
    let width = width as usize;
    let stride = (width * bits as usize).div_ceil(8);
    if packed.len() < stride * height as usize {
        return Err(corrupt("image has less data than its size"));
    }
    let mask = (1u8 << bits) - 1;
    let per_byte = 8 / bits as usize;
    let mut out = Vec::with_capacity(width * height as usize);
    for row in packed.chunks_exact(stride).take(height as usize) {
        for x in 0..width {
            let byte = row[x / per_byte];
            let shift = 8 - bits as usize * (x % per_byte + 1);
            out.push((byte >> shift) & mask);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// PDF

fn open_pdf(bytes: Vec<u8>, limits: &Limits) -> Result<(Pdf, u32), DecodeError> {
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    if !tail.windows(5).any(|w| w == b"%%EOF") {
        return Err(DecodeError::Truncated(
            "PDF ends before its %%EOF marker".to_string(),
        ));
    }
    let pdf = match Pdf::new(Arc::new(bytes)) {
        Ok(pdf) => pdf,
        Err(LoadPdfError::Decryption(e)) => {
            return Err(DecodeError::UnsupportedFormat(format!(
                "encrypted PDF ({e:?}); remove the password before import"
            )));
        }
        Err(LoadPdfError::Invalid) => {
            return Err(corrupt(
                "PDF structure (xref table or page tree) is unreadable",
            ));
        }
    };
    let pages = pdf.pages();
    if pages.is_empty() {
        return Err(corrupt("PDF has no pages"));
    }
    for page in pages.iter() {
        let images = page_image_sizes(page);
        for (width, height) in &images {
            check_pixels((*width).into(), (*height).into(), limits)?;
        }
        // A page that is not one image will be rendered: its render size
        // must pass too. (A single-image page is extracted, not rendered.)
        if images.len() != 1 {
            render_size(page, limits)?;
        }
    }
    let count = u32::try_from(pages.len()).map_err(|_| corrupt("PDF has too many pages"))?;
    Ok((pdf, count))
}

/// Width and height of every image XObject in a page's resources (and one
/// level of form XObjects), read from the dictionaries without decoding.
fn page_image_sizes(page: &Page<'_>) -> Vec<(u32, u32)> {
    use hayro::hayro_syntax::object::{Dict, Name, Stream};
    fn collect(x_objects: &Dict<'_>, depth: u32, out: &mut Vec<(u32, u32)>) {
        for key in x_objects.keys() {
            let Some(stream) = x_objects.get::<Stream<'_>>(&key) else {
                continue;
            };
            let dict = stream.dict();
            let subtype = dict.get::<Name<'_>>(b"Subtype");
            match subtype.as_deref() {
                Some(b"Image") => {
                    let width = dict
                        .get::<u32>(b"Width")
                        .or_else(|| dict.get::<u32>(b"W"))
                        .unwrap_or(0);
                    let height = dict
                        .get::<u32>(b"Height")
                        .or_else(|| dict.get::<u32>(b"H"))
                        .unwrap_or(0);
                    out.push((width, height));
                }
                Some(b"Form") if depth < 4 => {
                    if let Some(inner) = dict
                        .get::<Dict<'_>>(b"Resources")
                        .and_then(|r| r.get::<Dict<'_>>(b"XObject"))
                    {
                        collect(&inner, depth + 1, out);
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    collect(&page.resources().x_objects, 0, &mut out);
    out
}

/// The pixel size of a page rendered at `pdf_render_dpi`, refused if over
/// the limit.
fn render_size(page: &Page<'_>, limits: &Limits) -> Result<(u32, u32, f32), DecodeError> {
    let (width_pt, height_pt) = page.render_dimensions();
    let scale = limits.pdf_render_dpi as f32 / 72.0;
    let width = (width_pt * scale).ceil();
    let height = (height_pt * scale).ceil();
    if !(width.is_finite() && height.is_finite() && width >= 1.0 && height >= 1.0) {
        return Err(corrupt(format!(
            "PDF page size {width_pt}×{height_pt} pt is not usable"
        )));
    }
    check_pixels(width as u64, height as u64, limits)?;
    // The renderer addresses pixels with 16-bit coordinates.
    if width > f32::from(u16::MAX) || height > f32::from(u16::MAX) {
        return Err(DecodeError::TooManyPixels {
            width: width as u64,
            height: height as u64,
            pixels: (width as u64).saturating_mul(height as u64),
            limit: limits.max_pixels,
        });
    }
    Ok((width as u32, height as u32, scale))
}

/// What a page draws, seen by interpreting it without decoding images.
#[derive(Default)]
struct PageSurvey {
    /// Per image: device-space bounding box, width, height.
    images: Vec<(Rect, u32, u32, Affine)>,
    /// Visible paths and glyph runs.
    other_marks: usize,
}

impl<'a> Device<'a> for PageSurvey {
    fn draw_path(&mut self, _: &BezPath, _: DrawProps<'a>, mode: &DrawMode) {
        if !matches!(mode, DrawMode::Invisible) {
            self.other_marks += 1;
        }
    }
    fn push_clip_path(&mut self, _: &ClipPath) {}
    fn push_transparency_group(&mut self, _: f32, _: Option<SoftMask<'a>>, _: BlendMode) {}
    fn draw_glyph_run(&mut self, _: &GlyphRun<'_, 'a>, _: DrawProps<'a>, mode: &DrawMode) {
        // OCR layers are invisible text over the scan: they do not count.
        if !matches!(mode, DrawMode::Invisible) {
            self.other_marks += 1;
        }
    }
    fn draw_image(&mut self, image: Image<'a, '_>, props: ImageDrawProps<'a>) {
        let (width, height) = (image.width(), image.height());
        let bbox = props.transform.transform_rect_bbox(Rect::new(
            0.0,
            0.0,
            f64::from(width),
            f64::from(height),
        ));
        self.images.push((bbox, width, height, props.transform));
    }
    fn pop_clip(&mut self) {}
    fn pop_transparency_group(&mut self) {}
}

/// A page image's pixels, and its JPEG bytes when it is stored as is.
type CapturedImage = (Pixels, Option<Vec<u8>>);

/// Captures the pixels of the first image a page draws.
struct ImageCapture {
    result: Option<Result<CapturedImage, DecodeError>>,
}

impl ImageCapture {
    fn capture_raster(&mut self, raster: &hayro_interpret::RasterImage<'_>) {
        use hayro::hayro_syntax::object::{Array, Name, Object};
        let stream = raster.stream();
        let dict = stream.dict();
        let filters = stream.filters();
        let colour_space = dict
            .get::<Object<'_>>(b"ColorSpace")
            .or_else(|| dict.get::<Object<'_>>(b"CS"));
        let indexed = match &colour_space {
            Some(Object::Array(array)) => array
                .iter::<Name<'_>>()
                .next()
                .is_some_and(|n| matches!(n.as_ref(), b"Indexed" | b"I")),
            _ => false,
        };
        let cmyk = matches!(&colour_space, Some(Object::Name(n)) if n.as_ref() == b"DeviceCMYK");
        let bilevel = dict
            .get::<u8>(b"BitsPerComponent")
            .or_else(|| dict.get::<u8>(b"BPC"))
            == Some(1)
            && !indexed
            || filters
                .iter()
                .any(|f| matches!(f, Filter::CcittFaxDecode | Filter::Jbig2Decode));
        // A JPEG is kept as stored only when it shows as the PDF shows it:
        // no decode array, no mask, no CMYK inversion.
        let jpeg_passthrough = filters.as_slice() == [Filter::DctDecode]
            && dict.get::<Array<'_>>(b"Decode").is_none()
            && dict.get::<Array<'_>>(b"D").is_none()
            && !dict.contains_key(b"SMask")
            && !dict.contains_key(b"Mask")
            && !cmyk;
        let passthrough = jpeg_passthrough.then(|| stream.raw_data().to_vec());
        let mut outcome = None;
        raster.with_rgba(
            |data, alpha| {
                outcome = Some(pixels_from_hayro(data, alpha, bilevel));
            },
            None,
        );
        self.result = Some(match outcome {
            Some(Ok(pixels)) => Ok((pixels, passthrough)),
            Some(Err(e)) => Err(e),
            None => Err(corrupt("the page image could not be decoded")),
        });
    }

    fn capture_stencil(&mut self, stencil: &hayro_interpret::StencilImage<'_, '_>) {
        let mut outcome = None;
        stencil.with_stencil(
            |mask, paint| {
                let ink = match paint {
                    Paint::Color(colour) => {
                        let [r, g, b, _] = colour.to_rgba().to_rgba8();
                        rgb_luma(r, g, b)
                    }
                    Paint::Pattern(_) => 0,
                };
                let data: Vec<u8> = mask
                    .data
                    .iter()
                    .map(|&coverage| {
                        let c = u32::from(coverage);
                        ((u32::from(ink) * c + 255 * (255 - c) + 127) / 255) as u8
                    })
                    .collect();
                outcome = Some(
                    GrayImage::from_raw(mask.width, mask.height, data)
                        .map(Pixels::Bilevel)
                        .ok_or_else(|| corrupt("image mask has the wrong size")),
                );
            },
            None,
        );
        self.result = Some(match outcome {
            Some(Ok(pixels)) => Ok((pixels, None)),
            Some(Err(e)) => Err(e),
            None => Err(corrupt("the page image mask could not be decoded")),
        });
    }
}

fn pixels_from_hayro(
    data: hayro_interpret::ImageData,
    alpha: Option<hayro_interpret::LumaData>,
    bilevel: bool,
) -> Result<Pixels, DecodeError> {
    use hayro_interpret::ImageData;
    let (width, height) = (data.width(), data.height());
    // An alpha mask may have its own resolution: sample it nearest-neighbour.
    let alpha_at = |x: u32, y: u32| -> u8 {
        match &alpha {
            Some(a) if a.width > 0 && a.height > 0 => {
                let ax = (u64::from(x) * u64::from(a.width) / u64::from(width)) as usize;
                let ay = (u64::from(y) * u64::from(a.height) / u64::from(height)) as usize;
                a.data
                    .get(ay * a.width as usize + ax)
                    .copied()
                    .unwrap_or(255)
            }
            _ => 255,
        }
    };
    match data {
        ImageData::Luma(luma) => {
            let mut values = luma.data;
            if alpha.is_some() {
                for (i, v) in values.iter_mut().enumerate() {
                    let (x, y) = (i as u32 % width, i as u32 / width);
                    *v = over_white(*v, alpha_at(x, y));
                }
            }
            let image = GrayImage::from_raw(width, height, values)
                .ok_or_else(|| corrupt("decoded image has the wrong size"))?;
            Ok(if bilevel && alpha.is_none() {
                Pixels::Bilevel(image)
            } else {
                Pixels::Gray(image)
            })
        }
        ImageData::Rgb(rgb) => {
            let mut values = rgb.data;
            if alpha.is_some() {
                for (i, p) in values.chunks_exact_mut(3).enumerate() {
                    let a = alpha_at(i as u32 % width, i as u32 / width);
                    for c in p {
                        *c = over_white(*c, a);
                    }
                }
            }
            let pixels = Pixels::from_rgb(width, height, values)?;
            Ok(match pixels {
                Pixels::Gray(g) if bilevel && g.iter().all(|&v| v == 0 || v == 255) => {
                    Pixels::Bilevel(g)
                }
                other => other,
            })
        }
    }
}

impl<'a> Device<'a> for ImageCapture {
    fn draw_path(&mut self, _: &BezPath, _: DrawProps<'a>, _: &DrawMode) {}
    fn push_clip_path(&mut self, _: &ClipPath) {}
    fn push_transparency_group(&mut self, _: f32, _: Option<SoftMask<'a>>, _: BlendMode) {}
    fn draw_glyph_run(&mut self, _: &GlyphRun<'_, 'a>, _: DrawProps<'a>, _: &DrawMode) {}
    fn draw_image(&mut self, image: Image<'a, '_>, _: ImageDrawProps<'a>) {
        if self.result.is_some() {
            return;
        }
        match &image {
            Image::Raster(raster) => self.capture_raster(raster),
            Image::Stencil(stencil) => self.capture_stencil(stencil),
        }
    }
    fn pop_clip(&mut self) {}
    fn pop_transparency_group(&mut self) {}
}

/// Whether an image's device-space box covers the page box, allowing 1%
/// (and at least 2 pt) of slack for rounding in scanner software.
fn covers_page(image: Rect, page: Rect) -> bool {
    let slack_x = (page.width() * 0.01).max(2.0);
    let slack_y = (page.height() * 0.01).max(2.0);
    (image.x0 - page.x0).abs() <= slack_x
        && (image.x1 - page.x1).abs() <= slack_x
        && (image.y0 - page.y0).abs() <= slack_y
        && (image.y1 - page.y1).abs() <= slack_y
}

fn interpret_with<'a>(page: &Page<'a>, cache: &InterpreterCache<'a>, device: &mut impl Device<'a>) {
    let settings = InterpreterSettings {
        render_content: hayro_interpret::RenderContent::PAGE,
        ..InterpreterSettings::default()
    };
    let bbox = page.intersected_crop_box().to_kurbo();
    let mut context = Context::new(Affine::IDENTITY, bbox, cache, page.xref(), settings);
    hayro_interpret::interpret_page(page, &mut context, device);
}

fn decode_pdf_page(pdf: &Pdf, index: u32, limits: &Limits) -> Result<Frame, DecodeError> {
    let pages = pdf.pages();
    let page = pages
        .get(index as usize)
        .ok_or_else(|| corrupt("PDF page index out of range"))?;
    let cache = InterpreterCache::new();
    let mut survey = PageSurvey::default();
    interpret_with(page, &cache, &mut survey);
    for (_, width, height, _) in &survey.images {
        check_pixels((*width).into(), (*height).into(), limits)?;
    }
    let page_box = page.intersected_crop_box().to_kurbo();
    let single_image = match survey.images.as_slice() {
        [(bbox, _, _, transform)] if survey.other_marks == 0 => {
            let [a, b, c, d, _, _] = transform.as_coeffs();
            // Upright, not mirrored: image rows run top to bottom on the page.
            let upright = b == 0.0 && c == 0.0 && a > 0.0 && d < 0.0;
            upright
                && covers_page(*bbox, page_box)
                && matches!(page.rotation(), hayro::hayro_syntax::page::Rotation::None)
        }
        _ => false,
    };
    if single_image {
        let mut capture = ImageCapture { result: None };
        interpret_with(page, &cache, &mut capture);
        let (pixels, passthrough) = capture
            .result
            .unwrap_or_else(|| Err(corrupt("the page image was not drawn")))?;
        let width = match &pixels {
            Pixels::Bilevel(g) | Pixels::Gray(g) | Pixels::Colour { luma: g, .. } => g.width(),
        };
        let dpi = (page_box.width() > 0.0)
            .then(|| f64::from(width) * 72.0 / page_box.width())
            .and_then(positive_dpi);
        if let Some(jpeg) = passthrough {
            let colour = pixels.colour_mode();
            let luma = match pixels {
                Pixels::Bilevel(g) | Pixels::Gray(g) | Pixels::Colour { luma: g, .. } => g,
            };
            return Ok(Frame {
                index,
                width: luma.width(),
                height: luma.height(),
                dpi,
                colour,
                luma,
                luma_scale: 1,
                blob: jpeg,
                blob_format: BlobFormat::Jpeg,
            });
        }
        return pixels.into_png_frame(index, dpi);
    }
    render_pdf_page(page, index, limits)
}

fn render_pdf_page(page: &Page<'_>, index: u32, limits: &Limits) -> Result<Frame, DecodeError> {
    use hayro::vello_cpu::color::palette::css::WHITE;
    let (_, _, scale) = render_size(page, limits)?;
    let cache = hayro::RenderCache::new();
    let pixmap = hayro::render(
        page,
        &cache,
        &InterpreterSettings::default(),
        &hayro::RenderSettings::default(),
        &hayro::PixmapSettings {
            x_scale: scale,
            y_scale: scale,
            bg_color: WHITE,
        },
    );
    let (width, height) = (u32::from(pixmap.width()), u32::from(pixmap.height()));
    if width == 0 || height == 0 {
        return Err(corrupt("PDF page renders to an empty image"));
    }
    // The background is opaque white, so premultiplied RGBA is plain RGBA.
    let rgb: Vec<u8> = pixmap
        .data_as_u8_slice()
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    Pixels::from_rgb(width, height, rgb)?.into_png_frame(index, Some(limits.pdf_render_dpi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dangan_testkit::containers::{self, PdfPageImage};
    use image::{ImageEncoder, Luma};

    fn text_page(width: u32, height: u32, seed: u32) -> GrayImage {
        GrayImage::from_fn(width, height, |x, y| {
            if (x / 7 + y / 5 + seed).is_multiple_of(3) {
                Luma([0])
            } else {
                Luma([255])
            }
        })
    }

    fn gradient(width: u32, height: u32) -> GrayImage {
        GrayImage::from_fn(width, height, |x, y| Luma([((x * 3 + y * 5) % 256) as u8]))
    }

    fn jpeg_gray(image: &GrayImage, dpi: u16) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
        encoder.set_pixel_density(image::codecs::jpeg::PixelDensity::dpi(dpi));
        encoder
            .write_image(
                image.as_raw(),
                image.width(),
                image.height(),
                image::ExtendedColorType::L8,
            )
            .expect("encode");
        out
    }

    fn jpeg_rgb(width: u32, height: u32) -> Vec<u8> {
        let rgb = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .write_image(rgb.as_raw(), width, height, image::ExtendedColorType::Rgb8)
            .expect("encode");
        out
    }

    fn png_plain(
        data: &[u8],
        width: u32,
        height: u32,
        colour: image::ExtendedColorType,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(data, width, height, colour)
            .expect("encode");
        out
    }

    fn open_default(bytes: &[u8]) -> Result<Source, DecodeError> {
        open(bytes, &Limits::default())
    }

    fn single(bytes: &[u8]) -> Frame {
        let source = open_default(bytes).expect("opens");
        assert_eq!(source.frame_count, 1);
        source.frame(0).expect("decodes")
    }

    fn same_bilevel(a: &GrayImage, b: &GrayImage) -> bool {
        a.dimensions() == b.dimensions()
            && a.pixels()
                .zip(b.pixels())
                .all(|(p, q)| (p.0[0] < 128) == (q.0[0] < 128))
    }

    #[test]
    fn gray_jpeg_decodes_with_dpi_and_original_blob() {
        let page = gradient(120, 80);
        let bytes = jpeg_gray(&page, 300);
        let source = open_default(&bytes).expect("opens");
        assert_eq!(source.format, SourceFormat::Jpeg);
        let frame = source.frame(0).expect("decodes");
        assert_eq!((frame.width, frame.height), (120, 80));
        assert_eq!(frame.dpi, Some(300));
        assert_eq!(frame.colour, ColourMode::Gray);
        assert_eq!(frame.blob, bytes);
        assert_eq!(frame.blob_format, BlobFormat::Jpeg);
        let diff = frame
            .luma
            .pixels()
            .zip(page.pixels())
            .map(|(a, b)| (i32::from(a.0[0]) - i32::from(b.0[0])).abs())
            .max()
            .unwrap_or(0);
        assert!(diff < 40, "jpeg luma close to the source, max diff {diff}");
    }

    #[test]
    fn rgb_jpeg_is_colour() {
        let frame = single(&jpeg_rgb(64, 48));
        assert_eq!(frame.colour, ColourMode::Colour);
        assert_eq!((frame.width, frame.height), (64, 48));
        assert_eq!(frame.dpi, None);
    }

    #[test]
    fn jpeg_pages_decode_reduced_on_request_and_other_frames_do_not() {
        // An odd-sized gray page: the reduced luma is ceil(size / 2), each
        // pixel close to the average of the 2×2 block it stands for, and
        // the frame keeps its full size, dpi and the file as its blob.
        let page = gradient(121, 81);
        let bytes = jpeg_gray(&page, 300);
        let source = open_default(&bytes).expect("opens");
        let mut asked = None;
        let frame = source
            .frame_reduced(0, |dpi| {
                asked = dpi;
                2
            })
            .expect("decodes");
        assert_eq!(asked, Some(300));
        assert_eq!(frame.luma_scale, 2);
        assert_eq!(frame.luma.dimensions(), (61, 41));
        assert_eq!((frame.width, frame.height), (121, 81));
        assert_eq!((frame.dpi, frame.colour), (Some(300), ColourMode::Gray));
        assert_eq!(frame.blob, bytes);
        let full = source.frame(0).expect("decodes").luma;
        assert_eq!(full.dimensions(), (121, 81));
        // Over `a`, which may be a pixel short of `b` (the box filter drops
        // an odd last row and column).
        let strays = |a: &GrayImage, b: &GrayImage| {
            a.enumerate_pixels()
                .map(|(x, y, p)| p.0[0].abs_diff(b.get_pixel(x, y).0[0]))
                .max()
                .unwrap_or(0)
        };
        let worst = strays(&crate::imaging::box_reduce(&full, 2), &frame.luma);
        assert!(
            worst <= 24,
            "reduced decode strays {worst} levels from the box average"
        );
        // Full size gives the ordinary decoder's pixels, within rounding.
        let unscaled = jpeg_luma_scaled(&bytes, 1).expect("decodes");
        assert_eq!(unscaled.dimensions(), full.dimensions());
        assert!(strays(&unscaled, &full) <= 2);
        // A colour JPEG gives its luminance; 4 and 8 work too.
        let colour = open_default(&jpeg_rgb(64, 48)).expect("opens");
        let frame = colour.frame_reduced(0, |_| 4).expect("decodes");
        assert_eq!((frame.luma_scale, frame.luma.dimensions()), (4, (16, 12)));
        assert_eq!(frame.colour, ColourMode::Colour);
        // A factor the decoder cannot scale by, or 1, decodes in full; so
        // does a PNG, whatever is asked.
        for factor in [1, 3] {
            let frame = source.frame_reduced(0, |_| factor).expect("decodes");
            assert_eq!((frame.luma_scale, frame.luma.dimensions()), (1, (121, 81)));
        }
        let png = encode_png(
            page.as_raw(),
            121,
            81,
            image::ExtendedColorType::L8,
            Some(300),
        )
        .expect("png");
        let frame = open_default(&png)
            .expect("opens")
            .frame_reduced(0, |_| 2)
            .expect("decodes");
        assert_eq!((frame.luma_scale, &frame.luma), (1, &page));
        // Garbage is refused, not a panic.
        assert_eq!(jpeg_luma_scaled(b"\xFF\xD8\xFF\xE0 not a jpeg", 2), None);
    }

    #[test]
    fn png_colour_modes_and_alpha() {
        // Gray 8-bit with pHYs (written by our own encoder).
        let page = gradient(50, 40);
        let gray = encode_png(
            page.as_raw(),
            50,
            40,
            image::ExtendedColorType::L8,
            Some(200),
        )
        .expect("png");
        let frame = single(&gray);
        assert_eq!(frame.colour, ColourMode::Gray);
        assert_eq!(frame.dpi, Some(200));
        assert_eq!(frame.luma, page);
        assert_eq!(frame.blob, gray);

        // 1-bit.
        let bilevel_page = text_page(37, 21, 0);
        let bilevel = encode_png_bilevel(&bilevel_page, Some(300)).expect("png");
        let frame = single(&bilevel);
        assert_eq!(frame.colour, ColourMode::Bilevel);
        assert_eq!(frame.luma, bilevel_page);
        assert_eq!(frame.dpi, Some(300));

        // Gray + alpha: transparent pixels composite to white.
        let la: Vec<u8> = (0..20 * 10)
            .flat_map(|i| [0u8, if i % 2 == 0 { 0 } else { 255 }])
            .collect();
        let frame = single(&png_plain(&la, 20, 10, image::ExtendedColorType::La8));
        assert_eq!(frame.colour, ColourMode::Gray);
        assert_eq!(frame.luma.get_pixel(0, 0).0[0], 255);
        assert_eq!(frame.luma.get_pixel(1, 0).0[0], 0);

        // RGBA.
        let rgba: Vec<u8> = (0..16 * 8).flat_map(|_| [255u8, 0, 0, 255]).collect();
        let frame = single(&png_plain(&rgba, 16, 8, image::ExtendedColorType::Rgba8));
        assert_eq!(frame.colour, ColourMode::Colour);

        // 16-bit gray.
        let l16: Vec<u8> = (0..10 * 10)
            .flat_map(|i: u16| (i * 600).to_be_bytes())
            .collect();
        let frame = single(&png_plain(&l16, 10, 10, image::ExtendedColorType::L16));
        assert_eq!(frame.colour, ColourMode::Gray);
        assert_eq!((frame.width, frame.height), (10, 10));
    }

    #[test]
    fn gray_palette_png_is_gray() {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&4u32.to_be_bytes());
        ihdr.extend_from_slice(&2u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 3, 0, 0, 0]);
        png.extend(png_chunk(b"IHDR", &ihdr));
        png.extend(png_chunk(b"PLTE", &[0, 0, 0, 128, 128, 128, 255, 255, 255]));
        let raw = [0, 0, 1, 2, 0, 0, 2, 1, 0, 0];
        png.extend(png_chunk(b"IDAT", &containers::zlib_stored(&raw)));
        png.extend(png_chunk(b"IEND", &[]));
        let frame = single(&png);
        assert_eq!(frame.colour, ColourMode::Gray);
        assert_eq!(frame.luma.as_raw(), &vec![0, 128, 255, 0, 255, 128, 0, 0]);
    }

    #[test]
    fn multipage_tiff_gives_distinct_frames() {
        let pages = [gradient(40, 30), text_page(40, 30, 1), text_page(40, 30, 2)];
        let bytes = containers::tiff_multipage(&pages, 300);
        let source = open_default(&bytes).expect("opens");
        assert_eq!(source.format, SourceFormat::Tiff);
        assert_eq!(source.frame_count, 3);
        for (index, page) in pages.iter().enumerate() {
            let frame = source.frame(index as u32).expect("decodes");
            assert_eq!(frame.index, index as u32);
            assert_eq!(&frame.luma, page);
            assert_eq!(frame.dpi, Some(300));
            assert_eq!(frame.colour, ColourMode::Gray);
            assert_eq!(frame.blob_format, BlobFormat::Png);
            let stored = image::load_from_memory(&frame.blob)
                .expect("png")
                .into_luma8();
            assert_eq!(&stored, page);
        }
        assert_eq!(
            source.frame(3).map_err(|e| e.code()).err(),
            Some("no_such_frame")
        );
        // The same frame always gives the same bytes.
        assert_eq!(
            source.frame(1).expect("decodes").blob,
            source.frame(1).expect("decodes").blob
        );
    }

    #[test]
    fn g4_tiff_decodes_bilevel_pixels() {
        let pages = [text_page(203, 57, 0), text_page(203, 57, 1)];
        let bytes = containers::tiff_g4(&pages, 200);
        let source = open_default(&bytes).expect("opens");
        assert_eq!(source.frame_count, 2);
        for (index, page) in pages.iter().enumerate() {
            let frame = source.frame(index as u32).expect("decodes");
            assert_eq!(frame.colour, ColourMode::Bilevel);
            assert_eq!(frame.dpi, Some(200));
            assert_eq!(&frame.luma, page);
            let stored = image::load_from_memory(&frame.blob)
                .expect("png")
                .into_luma8();
            assert_eq!(&stored, page, "1-bit PNG blob holds the page");
        }
        // A single-page G4 TIFF is stored as it came.
        let one = containers::tiff_g4(&pages[..1], 300);
        let frame = single(&one);
        assert_eq!(frame.blob, one);
        assert_eq!(frame.blob_format, BlobFormat::Tiff);
        assert_eq!(&frame.luma, &pages[0]);
        // Uncompressed 1-bit too.
        let raw = containers::tiff_bilevel_uncompressed(&pages[1], 300);
        assert_eq!(&single(&raw).luma, &pages[1]);
    }

    #[test]
    fn image_only_pdfs_give_the_image_back() {
        let photo = gradient(150, 100);
        let jpeg = jpeg_gray(&photo, 150);
        let g4 = text_page(160, 90, 0);
        let flate = gradient(70, 50);
        let jbig2 = text_page(64, 40, 2);
        let pdf = containers::pdf_with_images(
            &[
                PdfPageImage::Jpeg {
                    bytes: jpeg.clone(),
                    width: 150,
                    height: 100,
                    gray: true,
                },
                PdfPageImage::G4 { image: g4.clone() },
                PdfPageImage::Flate {
                    image: flate.clone(),
                },
                PdfPageImage::Jbig2Mmr {
                    image: jbig2.clone(),
                },
            ],
            300,
        );
        let source = open_default(&pdf).expect("opens");
        assert_eq!(source.format, SourceFormat::Pdf);
        assert_eq!(source.frame_count, 4);

        let frame = source.frame(0).expect("jpeg page");
        assert_eq!(frame.blob, jpeg);
        assert_eq!(frame.blob_format, BlobFormat::Jpeg);
        assert_eq!(frame.colour, ColourMode::Gray);
        assert_eq!((frame.width, frame.height), (150, 100));
        assert_eq!(frame.dpi, Some(300));

        let frame = source.frame(1).expect("g4 page");
        assert_eq!(frame.colour, ColourMode::Bilevel);
        assert!(same_bilevel(&frame.luma, &g4));
        assert_eq!(frame.blob_format, BlobFormat::Png);
        assert_eq!(frame.dpi, Some(300));

        let frame = source.frame(2).expect("flate page");
        assert_eq!(frame.colour, ColourMode::Gray);
        assert_eq!(frame.luma, flate);

        let frame = source.frame(3).expect("jbig2 page");
        assert_eq!(frame.colour, ColourMode::Bilevel);
        assert!(same_bilevel(&frame.luma, &jbig2));
    }

    #[test]
    fn vector_pdf_page_is_rendered() {
        let pdf = containers::pdf_vector_page(200.0, 300.0);
        let limits = Limits {
            pdf_render_dpi: 144,
            ..Limits::default()
        };
        let source = open(&pdf, &limits).expect("opens");
        let frame = source.frame(0).expect("renders");
        assert_eq!((frame.width, frame.height), (400, 600));
        assert_eq!(frame.dpi, Some(144));
        assert_eq!(frame.blob_format, BlobFormat::Png);
        let dark = frame.luma.pixels().filter(|p| p.0[0] < 64).count();
        assert!(dark > 1000, "frame and box are drawn: {dark} dark pixels");
        assert!(dark < 400 * 600 / 2, "most of the page stays white");
        // The filled box at (72,72)-(216,144) pt is black.
        assert!(frame.luma.get_pixel(200, 600 - 200).0[0] < 64);
    }

    fn code_of(bytes: &[u8]) -> &'static str {
        match open_default(bytes).and_then(|s| s.frame(0)) {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn bad_inputs_are_refused_with_reasons() {
        let empty = open_default(b"").expect_err("empty");
        assert_eq!(empty.code(), "empty");
        assert_eq!(empty.to_string(), "empty file (0 bytes)");

        let text = open_default(b"hello, this is not a picture\n").expect_err("text");
        assert_eq!(text.code(), "not_an_image");
        assert_eq!(
            text.to_string(),
            "not an image: content is not JPEG, PNG, TIFF or PDF"
        );

        let gif = open_default(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;").expect_err("gif");
        assert_eq!(gif.code(), "unsupported_format");
        assert_eq!(gif.to_string(), "unsupported format: GIF");
        let mut webp = b"RIFF\0\0\0\0WEBPVP8 ".to_vec();
        webp.extend_from_slice(&[0; 16]);
        assert_eq!(code_of(&webp), "unsupported_format");
        let mut bmp = b"BM".to_vec();
        bmp.extend_from_slice(&[0; 12]);
        bmp.extend_from_slice(&40u32.to_le_bytes());
        bmp.extend_from_slice(&[0; 40]);
        assert_eq!(code_of(&bmp), "unsupported_format");
        assert_eq!(
            code_of(b"\0\0\0\x0cjP  \r\n\x87\n\0\0"),
            "unsupported_format"
        );
        assert_eq!(code_of(b"\0\0\0\x18ftypheic\0\0\0\0"), "unsupported_format");
        assert_eq!(code_of(b"\xff\x0a\xfa\x7f"), "unsupported_format");

        let bomb = open_default(&containers::png_header_only(60_000, 60_000)).expect_err("bomb");
        assert_eq!(bomb.code(), "too_many_pixels");
        assert_eq!(
            bomb.to_string(),
            "decompression bomb refused: 60000×60000 = 3600000000 pixels exceeds the limit of 150000000 pixels"
        );
        assert_eq!(
            code_of(&containers::jpeg_header_only(60_000, 60_000)),
            "too_many_pixels"
        );
        // A 300-dpi A0 sheet is admitted by the header check.
        assert!(check_pixels(9933, 14043, &Limits::default()).is_ok());

        let jpeg = jpeg_gray(&gradient(200, 200), 300);
        let cut = containers::truncate(&jpeg, 0.6);
        let error = open_default(&cut).expect_err("truncated jpeg");
        assert_eq!(error.code(), "truncated");
        assert!(error.to_string().starts_with("truncated image: "));
        let png = encode_png(
            gradient(64, 64).as_raw(),
            64,
            64,
            image::ExtendedColorType::L8,
            None,
        )
        .expect("png");
        assert_eq!(code_of(&containers::truncate(&png, 0.5)), "truncated");
        let tiff = containers::tiff_multipage(&[gradient(64, 64)], 300);
        assert_eq!(code_of(&containers::truncate(&tiff, 0.5)), "truncated");
        let pdf = containers::pdf_vector_page(100.0, 100.0);
        assert_eq!(code_of(&containers::truncate(&pdf, 0.5)), "truncated");

        // A PNG whose pixel data is garbage.
        let mut broken = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&8u32.to_be_bytes());
        ihdr.extend_from_slice(&8u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
        broken.extend(png_chunk(b"IHDR", &ihdr));
        broken.extend(png_chunk(b"IDAT", b"this is not zlib"));
        broken.extend(png_chunk(b"IEND", &[]));
        let error = open_default(&broken)
            .and_then(|s| s.frame(0))
            .expect_err("corrupt");
        assert_eq!(error.code(), "corrupt");
        assert!(error.to_string().starts_with("corrupt image: "));

        let encrypted = open_default(&containers::pdf_encrypted()).expect_err("encrypted");
        assert!(
            matches!(encrypted.code(), "unsupported_format" | "corrupt"),
            "{encrypted}"
        );
        let no_pages = open_default(&containers::pdf_no_pages()).expect_err("no pages");
        assert_eq!(no_pages.code(), "corrupt");
        assert!(no_pages.to_string().contains("no pages"), "{no_pages}");
    }

    #[test]
    fn truncation_at_many_offsets_never_panics() {
        let jpeg = jpeg_gray(&gradient(96, 64), 300);
        let png = encode_png(
            gradient(48, 48).as_raw(),
            48,
            48,
            image::ExtendedColorType::L8,
            None,
        )
        .expect("png");
        let tiff = containers::tiff_g4(&[text_page(64, 32, 0), text_page(64, 32, 1)], 200);
        let pdf = containers::pdf_with_images(
            &[
                PdfPageImage::G4 {
                    image: text_page(64, 32, 0),
                },
                PdfPageImage::Flate {
                    image: gradient(32, 32),
                },
            ],
            200,
        );
        for file in [&jpeg, &png, &tiff, &pdf] {
            for step in 0..=60 {
                let cut = containers::truncate(file, f64::from(step) / 60.0);
                match open_default(&cut) {
                    Ok(source) => {
                        for frame in source.frames().flatten() {
                            assert!(frame.width > 0 && frame.height > 0);
                        }
                    }
                    Err(error) => assert!(!error.code().is_empty()),
                }
            }
            // Flipped bytes in the middle must not panic either.
            for position in (8..file.len()).step_by((file.len() / 25).max(1)) {
                let mut damaged = file.clone();
                damaged[position] ^= 0x5A;
                if let Ok(source) = open_default(&damaged) {
                    for frame in source.frames() {
                        let _ = frame;
                    }
                }
            }
        }
    }

    /// Decode time of a 300-dpi A4 gray JPEG; run with
    /// `DANGAN_BENCH=1 cargo test --release -p dangan-edge --lib decode::tests::a4 -- --nocapture`.
    #[test]
    fn a4_gray_jpeg_decode_time() {
        if std::env::var_os("DANGAN_BENCH").is_none() {
            return;
        }
        let page = GrayImage::from_fn(2480, 3508, |x, y| {
            if (x / 40 + y / 60).is_multiple_of(7) {
                Luma([20])
            } else {
                Luma([235])
            }
        });
        let bytes = jpeg_gray(&page, 300);
        let runs = 20;
        let start = std::time::Instant::now();
        for _ in 0..runs {
            let frame = open_default(&bytes)
                .and_then(|s| s.frame(0))
                .expect("decodes");
            assert_eq!(frame.width, 2480);
        }
        let per = start.elapsed() / runs;
        println!(
            "300-dpi A4 gray JPEG ({} bytes): {per:?} per open+frame",
            bytes.len()
        );
    }

    #[test]
    fn source_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Frame>();
        assert_send::<Source>();
        assert_send::<DecodeError>();
    }
}
