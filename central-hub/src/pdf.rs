//! A business file as one PDF for download (krilla): each page's image on a
//! page of its own at its physical size (from its dpi; fitted into A4 when
//! the scan does not say), watermarked on every page with who downloaded
//! it and when — three faint diagonal lines across the image and one small
//! line at the foot of the page — so that a printed or forwarded copy names
//! its source.
//!
//! The watermark is Chinese, so the PDF embeds a CJK font: the one set by
//! `[pdf] font` in `hub.toml` (Debian's fonts-wqy-zenhei by default), as a
//! subset of the glyphs used. The font file is read once and kept
//! ([`dangan_shared::pdf_font`], shared with the edge's label sheets).
use std::path::Path;

use dangan_shared::pdf_font::{self, FontError, FontSetting};
use krilla::Document;
use krilla::color::rgb;
use krilla::geom::{Point, Size, Transform};
use krilla::image::Image;
use krilla::metadata::Metadata;
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::Fill;
use krilla::text::{Font, TextDirection};

/// A4 in points, for pages whose resolution is unknown.
const A4: (f32, f32) = (595.28, 841.89);
/// Largest page side a PDF viewer must accept (200 inches).
const MAX_SIDE: f32 = 14_400.0;

/// Where the hub's PDF font is set.
pub const FONT_SETTING: FontSetting = FontSetting {
    section: "pdf",
    config_file: "hub.toml",
};

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// The font file cannot be read (always [`FontError::Missing`]).
    #[error(transparent)]
    FontMissing(FontError),
    /// The font file holds no font at the index (always [`FontError::Invalid`]).
    #[error(transparent)]
    FontInvalid(FontError),
    #[error("page {seq}: its image cannot be put in a PDF: {message}")]
    Image { seq: i64, message: String },
    #[error("the PDF cannot be written: {0}")]
    Write(String),
}

/// A page's image as it goes into the PDF.
#[derive(Debug)]
pub enum PageImage {
    Jpeg(Vec<u8>),
    Png(Vec<u8>),
}

/// One page: its image and what the archive knows of its size.
#[derive(Debug)]
pub struct PdfPage {
    pub seq: i64,
    pub image: PageImage,
    /// Pixel size of the scan (the image may be a smaller rendition).
    pub width: u32,
    pub height: u32,
    pub dpi: Option<u32>,
}

/// What to write.
#[derive(Debug)]
pub struct PdfFile {
    /// Document title (the business number).
    pub title: String,
    pub pages: Vec<PdfPage>,
    /// The watermark line, e.g. "张三 · 2026-11-26 15:04 · 仅供查阅".
    pub watermark: String,
}

impl From<FontError> for PdfError {
    fn from(err: FontError) -> Self {
        match err {
            FontError::Missing { .. } => PdfError::FontMissing(err),
            FontError::Invalid { .. } => PdfError::FontInvalid(err),
        }
    }
}

/// The configured font, read on first use and kept (a failure is not kept,
/// so installing the font later needs no restart). Blocking I/O.
pub fn font(path: &Path, index: u32) -> Result<Font, PdfError> {
    Ok(pdf_font::load(path, index, FONT_SETTING)?)
}

/// Writes the PDF. CPU work: call it off the async runtime.
pub fn render(file: PdfFile, font: &Font) -> Result<Vec<u8>, PdfError> {
    let mut document = Document::new();
    document.set_metadata(
        Metadata::new()
            .title(file.title.clone())
            .creator("Dangan central hub".to_owned())
            .description(file.watermark.clone())
            .language("zh-CN".to_owned()),
    );
    let count = file.pages.len();
    for (index, page) in file.pages.into_iter().enumerate() {
        let seq = page.seq;
        let image = match page.image {
            PageImage::Jpeg(bytes) => Image::from_jpeg(bytes.into(), true),
            PageImage::Png(bytes) => Image::from_png(bytes.into(), true),
        }
        .map_err(|message| PdfError::Image { seq, message })?;
        let (page_width, page_height, placed) = layout(page.width, page.height, page.dpi);
        let settings =
            PageSettings::from_wh(page_width, page_height).ok_or_else(|| PdfError::Image {
                seq,
                message: format!("page size {page_width}×{page_height} pt"),
            })?;
        let mut pdf_page = document.start_page_with(settings);
        let mut surface = pdf_page.surface();
        let (x, y, width, height) = placed;
        let size = Size::from_wh(width, height).ok_or_else(|| PdfError::Image {
            seq,
            message: format!("image size {width}×{height} pt"),
        })?;
        surface.push_transform(&Transform::from_translate(x, y));
        surface.draw_image(image, size);
        surface.pop();
        watermark(&mut surface, font, &file.watermark, page_width, page_height);
        let footer = format!("{} · {}/{count}", file.watermark, index + 1);
        surface.set_fill(Some(fill((110, 0, 0), 0.75)));
        let footer_size = (page_width / 70.0).clamp(5.0, 9.0);
        surface.draw_text(
            Point::from_xy(footer_size, page_height - footer_size * 0.8),
            font.clone(),
            footer_size,
            &footer,
            false,
            TextDirection::Auto,
        );
        surface.finish();
        pdf_page.finish();
    }
    document
        .finish()
        .map_err(|err| PdfError::Write(format!("{err:?}")))
}

/// The page size in points and where the image goes on it (x, y, width,
/// height): the physical size when the dpi is known, else fitted into A4
/// turned to the image's orientation.
fn layout(width: u32, height: u32, dpi: Option<u32>) -> (f32, f32, (f32, f32, f32, f32)) {
    let (width, height) = (width.max(1) as f32, height.max(1) as f32);
    if let Some(dpi) = dpi.filter(|dpi| *dpi >= 50) {
        let (w, h) = (width * 72.0 / dpi as f32, height * 72.0 / dpi as f32);
        if w <= MAX_SIDE && h <= MAX_SIDE {
            return (w, h, (0.0, 0.0, w, h));
        }
    }
    let (page_w, page_h) = if width > height { (A4.1, A4.0) } else { A4 };
    let scale = (page_w / width).min(page_h / height);
    let (w, h) = (width * scale, height * scale);
    (
        page_w,
        page_h,
        ((page_w - w) / 2.0, (page_h - h) / 2.0, w, h),
    )
}

fn fill((r, g, b): (u8, u8, u8), opacity: f32) -> Fill {
    Fill {
        paint: rgb::Color::new(r, g, b).into(),
        opacity: NormalizedF32::new(opacity).unwrap_or(NormalizedF32::ONE),
        rule: Default::default(),
    }
}

/// Three faint lines from the lower left to the upper right, the middle
/// one through the centre of the page.
fn watermark(surface: &mut krilla::surface::Surface<'_>, font: &Font, text: &str, w: f32, h: f32) {
    let diagonal = (w * w + h * h).sqrt();
    // Chinese characters are one em wide, Latin letters and digits about half.
    let ems: f32 = text
        .chars()
        .map(|c| if c.is_ascii() { 0.55 } else { 1.0 })
        .sum::<f32>()
        .max(1.0);
    let size = (diagonal * 0.5 / ems).clamp(8.0, 48.0);
    let text_width = ems * size;
    let angle = -h.atan2(w);
    let (sin, cos) = angle.sin_cos();
    surface.set_fill(Some(fill((150, 20, 20), 0.2)));
    surface.push_transform(&Transform::from_row(cos, sin, -sin, cos, w / 2.0, h / 2.0));
    for offset in [-diagonal / 5.0, 0.0, diagonal / 5.0] {
        surface.draw_text(
            Point::from_xy(-text_width / 2.0, offset + size * 0.35),
            font.clone(),
            size,
            text,
            false,
            TextDirection::Auto,
        );
    }
    surface.pop();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_missing_font_names_the_file_and_the_setting() {
        let message = font(Path::new("/nonexistent/cjk.ttc"), 0)
            .unwrap_err()
            .to_string();
        assert!(message.contains("/nonexistent/cjk.ttc"), "{message}");
        assert!(message.contains("[pdf] font"), "{message}");
        assert!(message.contains("fonts-wqy-zenhei"), "{message}");
    }

    #[test]
    fn pages_have_their_physical_size_or_fit_a4() {
        let (w, h, placed) = layout(2480, 3508, Some(300));
        assert!((w - 595.2).abs() < 0.1 && (h - 841.9).abs() < 0.1);
        assert_eq!(placed.0, 0.0);
        let (w, h, (x, y, iw, ih)) = layout(2000, 1000, None);
        assert_eq!((w, h), (A4.1, A4.0));
        assert!((iw - A4.1).abs() < 0.01 && (ih - A4.1 / 2.0).abs() < 0.01);
        assert!(x.abs() < 0.01 && (y - (A4.0 - ih) / 2.0).abs() < 0.01);
        let (w, _, _) = layout(100, 100, Some(1));
        assert_eq!(w, A4.0, "an absurd dpi counts as unknown");
    }
}
