//! Label sheets for the paper archive (issue 9): box (盒), volume (案卷) and
//! location (库房/列/节/层) labels printed on A4 label stock, stuck on, and
//! later read back with a handheld Code 128 scanner.
//!
//! Each label carries, from the top: the barcode of its code, the code in
//! plain text under the bars, a title (e.g. `2019年度 基本养老金核定 第3卷`)
//! and up to a few smaller lines (retention, date range). The bars are
//! filled vector rectangles, so they print crisp at any printer resolution;
//! the text embeds a subset of a CJK font (`[labels] font` in `edge.toml`).
//!
//! A sheet fills row by row, left to right; `start` skips positions already
//! used on the first sheet, so a half-used sheet can be fed again. The same
//! input always gives the same PDF, byte for byte, so a damaged label can be
//! printed again exactly.
//!
//! Text is measured with a per-character width estimate (no shaping), on the
//! generous side for WenQuanYi Zen Hei and Noto Sans CJK; everything a label
//! draws is also clipped to the label, so an underestimate can never print
//! onto the neighbouring label.
use std::path::Path;

use dangan_shared::pdf_font::{self, FontError, FontSetting};
use krilla::Document;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::paint::{Fill, FillRule};
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};
use rxing::oned::{Code128Writer, OneDimensionalCodeWriter};

/// Where the edge's label font is set.
pub const FONT_SETTING: FontSetting = FontSetting {
    section: "labels",
    config_file: "edge.toml",
};

/// The label font (`[labels] font` and `font_index` in `edge.toml`), read on
/// first use and kept. Blocking I/O.
pub fn font(path: &Path, index: u32) -> Result<Font, FontError> {
    pdf_font::load(path, index, FONT_SETTING)
}

/// Light margins either side of the bars, in modules (ISO/IEC 15417 asks
/// for at least ten).
pub const QUIET_ZONE_MODULES: u32 = 10;
/// The narrowest bar [`render`] prints; a code that needs narrower ones to
/// fit the label is refused. Below this, office laser printers and handheld
/// scanners stop being reliable.
pub const MIN_MODULE_MM: f32 = 0.19;

const PT_PER_MM: f32 = 72.0 / 25.4;
/// One dot of a 300-dpi printer. Bars a whole number of dots wide print
/// evenly on 300- and 600-dpi printers alike.
const DOT_MM: f32 = 25.4 / 300.0;
/// Module widths of 3 to 5 dots (0.254–0.423 mm, 10–17 mil): the classic
/// X-dimensions for labels read with a handheld scanner.
const MIN_DOTS: f32 = 3.0;
const MAX_DOTS: f32 = 5.0;

/// Font sizes in points, and line heights as a multiple of the size.
const CODE_SIZE: f32 = 9.0;
const TITLE_SIZES: [f32; 3] = [11.0, 10.0, 9.0];
const LINE_SIZE: f32 = 7.5;
const CODE_LEADING: f32 = 1.2;
const TITLE_LEADING: f32 = 1.25;
const LINE_LEADING: f32 = 1.3;
/// Gap between the bars and the code under them.
const BAR_TEXT_GAP_MM: f32 = 0.6;
/// Where the baseline sits in a text row, as a multiple of the size.
const BASELINE: f32 = 0.88;

const ELLIPSIS: char = '…';

/// One label: what its barcode carries and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// What the barcode encodes and the scanner types: printable ASCII
    /// (Code 128 code set B, `' '..='~'`), not starting or ending with a
    /// space. Printed in plain text under the bars.
    pub code: String,
    /// The title, e.g. `2019年度 基本养老金核定 第3卷`. Shrunk a little, then
    /// cut short with "…", when it is too wide for the label.
    pub title: String,
    /// Smaller lines under the title, e.g. `保管期限：永久`,
    /// `2019-01-03 至 2019-12-28`; each cut short with "…" when too wide.
    /// [`Layout::line_capacity`] says how many fit (3 on the default stock).
    pub lines: Vec<String>,
}

/// A sheet of label stock: page size, the grid of labels on it, and how a
/// label is laid out. All lengths in millimetres.
///
/// The default is A4 with 2 columns × 7 rows of 99.1 × 38.1 mm labels
/// (Avery L7163, and the common Chinese 14-up stock).
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub page_width_mm: f32,
    pub page_height_mm: f32,
    pub columns: u32,
    pub rows: u32,
    pub label_width_mm: f32,
    pub label_height_mm: f32,
    /// From the top edge of the sheet to the top of the first row.
    pub top_margin_mm: f32,
    /// From the left edge of the sheet to the left of the first column.
    pub left_margin_mm: f32,
    /// Between two columns of labels.
    pub column_gap_mm: f32,
    /// Between two rows of labels.
    pub row_gap_mm: f32,
    /// Kept clear inside each label's edge: labels have rounded corners and
    /// printers place the page a millimetre or so off.
    pub padding_mm: f32,
    /// Height of the bars.
    pub bar_height_mm: f32,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            page_width_mm: 210.0,
            page_height_mm: 297.0,
            columns: 2,
            rows: 7,
            label_width_mm: 99.1,
            label_height_mm: 38.1,
            top_margin_mm: 15.15,
            left_margin_mm: 4.65,
            column_gap_mm: 2.5,
            row_gap_mm: 0.0,
            padding_mm: 3.0,
            bar_height_mm: 12.0,
        }
    }
}

impl Layout {
    /// Labels on one sheet.
    pub fn labels_per_sheet(&self) -> usize {
        self.columns as usize * self.rows as usize
    }

    /// How many of a label's [`Label::lines`] fit under its title.
    pub fn line_capacity(&self) -> usize {
        let room = self.label_height_mm - self.padding_mm - self.title_bottom_mm();
        let line_height = mm(LINE_SIZE * LINE_LEADING);
        if room <= 0.0 {
            0
        } else {
            (room / line_height).floor() as usize
        }
    }

    /// The top left corner (mm from the sheet's top left) of the label at
    /// `position` on a sheet, counting row by row from 0.
    pub fn label_origin_mm(&self, position: usize) -> (f32, f32) {
        let columns = self.columns.max(1) as usize;
        let (row, column) = (position / columns, position % columns);
        (
            self.left_margin_mm + column as f32 * (self.label_width_mm + self.column_gap_mm),
            self.top_margin_mm + row as f32 * (self.label_height_mm + self.row_gap_mm),
        )
    }

    /// Bottom of the code's text row, from the label's top.
    fn code_bottom_mm(&self) -> f32 {
        self.padding_mm + self.bar_height_mm + BAR_TEXT_GAP_MM + mm(CODE_SIZE * CODE_LEADING)
    }

    /// Bottom of the title's row, from the label's top.
    fn title_bottom_mm(&self) -> f32 {
        self.code_bottom_mm() + mm(TITLE_SIZES[0] * TITLE_LEADING)
    }

    fn validate(&self) -> Result<(), LabelError> {
        let lengths = [
            ("page_width_mm", self.page_width_mm),
            ("page_height_mm", self.page_height_mm),
            ("label_width_mm", self.label_width_mm),
            ("label_height_mm", self.label_height_mm),
            ("bar_height_mm", self.bar_height_mm),
        ];
        if let Some((name, value)) = lengths.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            return Err(LabelError::Layout(format!(
                "{name} is {value}, not a length"
            )));
        }
        let offsets = [
            ("top_margin_mm", self.top_margin_mm),
            ("left_margin_mm", self.left_margin_mm),
            ("column_gap_mm", self.column_gap_mm),
            ("row_gap_mm", self.row_gap_mm),
            ("padding_mm", self.padding_mm),
        ];
        if let Some((name, value)) = offsets.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
            return Err(LabelError::Layout(format!(
                "{name} is {value}, not a length"
            )));
        }
        if self.columns == 0 || self.rows == 0 {
            return Err(LabelError::Layout(format!(
                "{} columns × {} rows holds no labels",
                self.columns, self.rows
            )));
        }
        let (left, top) = self.label_origin_mm(self.labels_per_sheet() - 1);
        let (right, bottom) = (left + self.label_width_mm, top + self.label_height_mm);
        // A hundredth of a millimetre of slack for the stock's rounded figures.
        if right > self.page_width_mm + 0.01 || bottom > self.page_height_mm + 0.01 {
            return Err(LabelError::Layout(format!(
                "{} × {} labels of {} × {} mm end at {right:.2} × {bottom:.2} mm, off the {} × {} mm page",
                self.columns,
                self.rows,
                self.label_width_mm,
                self.label_height_mm,
                self.page_width_mm,
                self.page_height_mm
            )));
        }
        if self.title_bottom_mm() + self.padding_mm > self.label_height_mm {
            return Err(LabelError::Layout(format!(
                "a {} mm high label has no room for {} mm bars, the code and a title",
                self.label_height_mm, self.bar_height_mm
            )));
        }
        if self.label_width_mm <= 2.0 * self.padding_mm {
            return Err(LabelError::Layout(format!(
                "a {} mm wide label is all padding ({} mm each side)",
                self.label_width_mm, self.padding_mm
            )));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("no labels to print")]
    NoLabels,
    #[error("label {number} (title {title:?}) has an empty code")]
    EmptyCode { number: usize, title: String },
    #[error(
        "label code {code:?} has {character:?}, which a Code 128 label cannot carry: use printable ASCII (letters, digits, punctuation), not starting or ending with a space"
    )]
    BadCharacter { code: String, character: char },
    #[error(
        "label code {code:?} is too long for the label: its barcode is {modules} modules wide, which needs bars narrower than {MIN_MODULE_MM} mm to fit {width_mm:.1} mm"
    )]
    TooLong {
        code: String,
        modules: u32,
        width_mm: f32,
    },
    #[error("label code {code:?} has {lines} lines under its title; the label has room for {room}")]
    TooManyLines {
        code: String,
        lines: usize,
        room: usize,
    },
    #[error("label code {code:?} cannot be made into a Code 128 barcode: {message}")]
    Encode { code: String, message: String },
    #[error("start position {start} is not on the sheet: it holds {per_sheet} labels (0–{})", .per_sheet.saturating_sub(1))]
    StartOffSheet { start: usize, per_sheet: usize },
    #[error("the label layout is unusable: {0}")]
    Layout(String),
    #[error("the label PDF cannot be written: {0}")]
    Write(String),
}

/// Writes the labels on as many sheets (A4 pages) as they need, starting at
/// position `start` of the first sheet (0 = top left; positions count row
/// by row). Every label is checked before anything is drawn. CPU work: call
/// it off the async runtime.
pub fn render(
    labels: &[Label],
    layout: &Layout,
    font: &Font,
    start: usize,
) -> Result<Vec<u8>, LabelError> {
    layout.validate()?;
    let per_sheet = layout.labels_per_sheet();
    if start >= per_sheet {
        return Err(LabelError::StartOffSheet { start, per_sheet });
    }
    if labels.is_empty() {
        return Err(LabelError::NoLabels);
    }
    let prepared = labels
        .iter()
        .enumerate()
        .map(|(index, label)| Prepared::new(index + 1, label, layout))
        .collect::<Result<Vec<_>, _>>()?;

    let mut document = Document::new();
    document.set_metadata(
        Metadata::new()
            .title("Dangan labels".to_owned())
            .creator("Dangan edge node".to_owned())
            .language("zh-CN".to_owned()),
    );
    let (page_width, page_height) = (pt(layout.page_width_mm), pt(layout.page_height_mm));
    let end = start + prepared.len();
    for sheet_start in (0..end).step_by(per_sheet) {
        let settings = PageSettings::from_wh(page_width, page_height).ok_or_else(|| {
            LabelError::Layout(format!(
                "page size {} × {} mm",
                layout.page_width_mm, layout.page_height_mm
            ))
        })?;
        let mut page = document.start_page_with(settings);
        let mut surface = page.surface();
        for position in sheet_start.max(start)..end.min(sheet_start + per_sheet) {
            let origin = layout.label_origin_mm(position - sheet_start);
            prepared[position - start].draw(&mut surface, font, layout, origin);
        }
        surface.finish();
        page.finish();
    }
    document
        .finish()
        .map_err(|err| LabelError::Write(format!("{err:?}")))
}

/// A checked label, ready to draw.
#[derive(Debug)]
struct Prepared {
    code: String,
    /// Runs of bars: first module and width in modules, quiet zone excluded.
    bars: Vec<(u32, u32)>,
    modules: u32,
    module_mm: f32,
    title: String,
    title_size: f32,
    lines: Vec<String>,
}

impl Prepared {
    fn new(number: usize, label: &Label, layout: &Layout) -> Result<Self, LabelError> {
        let code = &label.code;
        if code.is_empty() {
            return Err(LabelError::EmptyCode {
                number,
                title: label.title.clone(),
            });
        }
        let bad = code
            .chars()
            .find(|c| !(' '..='~').contains(c))
            .or_else(|| code.starts_with(' ').then_some(' '))
            .or_else(|| code.ends_with(' ').then_some(' '));
        if let Some(character) = bad {
            return Err(LabelError::BadCharacter {
                code: code.clone(),
                character,
            });
        }
        let room = layout.line_capacity();
        if label.lines.len() > room {
            return Err(LabelError::TooManyLines {
                code: code.clone(),
                lines: label.lines.len(),
                room,
            });
        }
        let pattern = Code128Writer
            .encode_oned(code)
            .map_err(|err| LabelError::Encode {
                code: code.clone(),
                message: err.to_string(),
            })?;
        let bars = runs(&pattern);
        let modules = pattern.len() as u32;
        let width_mm = layout.label_width_mm - 2.0 * layout.padding_mm;
        let module_mm = module_width(width_mm, modules).ok_or_else(|| LabelError::TooLong {
            code: code.clone(),
            modules: modules + 2 * QUIET_ZONE_MODULES,
            width_mm,
        })?;

        let text_width = pt(width_mm);
        let title = clean(&label.title);
        let (title, title_size) = TITLE_SIZES
            .iter()
            .find(|size| estimated_width(&title, **size) <= text_width)
            .map(|size| (title.clone(), *size))
            .unwrap_or_else(|| {
                let size = TITLE_SIZES[TITLE_SIZES.len() - 1];
                (truncate(&title, size, text_width), size)
            });
        let lines = label
            .lines
            .iter()
            .map(|line| truncate(&clean(line), LINE_SIZE, text_width))
            .collect();
        Ok(Self {
            code: code.clone(),
            bars,
            modules,
            module_mm,
            title,
            title_size,
            lines,
        })
    }

    /// Draws the label with its top left corner at `origin` (mm).
    fn draw(&self, surface: &mut Surface<'_>, font: &Font, layout: &Layout, origin: (f32, f32)) {
        let (left, top) = origin;
        let (width, height) = (layout.label_width_mm, layout.label_height_mm);
        let centre = pt(left + width / 2.0);
        let mut clip = PathBuilder::new();
        if let Some(rect) = Rect::from_xywh(pt(left), pt(top), pt(width), pt(height)) {
            clip.push_rect(rect);
        }
        let Some(clip) = clip.finish() else {
            return;
        };
        surface.push_clip_path(&clip, &FillRule::NonZero);
        surface.set_fill(Some(Fill::default()));
        surface.set_stroke(None);

        let bars_left = left + (width - self.modules as f32 * self.module_mm) / 2.0;
        let bars_top = top + layout.padding_mm;
        let mut bars = PathBuilder::new();
        for &(first, run) in &self.bars {
            if let Some(rect) = Rect::from_xywh(
                pt(bars_left + first as f32 * self.module_mm),
                pt(bars_top),
                pt(run as f32 * self.module_mm),
                pt(layout.bar_height_mm),
            ) {
                bars.push_rect(rect);
            }
        }
        if let Some(path) = bars.finish() {
            surface.draw_path(&path);
        }

        let mut row_top = bars_top + layout.bar_height_mm + BAR_TEXT_GAP_MM;
        let mut text = |text: &str, size: f32, leading: f32| {
            if !text.is_empty() {
                let x = centre - estimated_width(text, size) / 2.0;
                let baseline = pt(row_top) + size * BASELINE;
                surface.draw_text(
                    Point::from_xy(x, baseline),
                    font.clone(),
                    size,
                    text,
                    false,
                    TextDirection::Auto,
                );
            }
            row_top += mm(size * leading);
        };
        text(&self.code, CODE_SIZE, CODE_LEADING);
        // The title row is as high as the largest title size, whatever size
        // this title was shrunk to, so that lines align across labels.
        let title_row = TITLE_SIZES[0] * TITLE_LEADING / self.title_size;
        text(&self.title, self.title_size, title_row);
        for line in &self.lines {
            text(line, LINE_SIZE, LINE_LEADING);
        }
        surface.pop();
    }
}

/// The module width (mm) for a barcode of `modules` modules plus quiet
/// zones in `width_mm`: whole 300-dpi dots from 3 to 5 when it fits, else
/// the exact fit down to [`MIN_MODULE_MM`]; `None` below that.
fn module_width(width_mm: f32, modules: u32) -> Option<f32> {
    let fit = width_mm / (modules + 2 * QUIET_ZONE_MODULES) as f32;
    let dots = (fit / DOT_MM).floor().min(MAX_DOTS);
    if dots >= MIN_DOTS {
        Some(dots * DOT_MM)
    } else if fit >= MIN_MODULE_MM {
        Some(fit)
    } else {
        None
    }
}

/// Runs of dark modules in a bar pattern: (first module, width).
fn runs(pattern: &[bool]) -> Vec<(u32, u32)> {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    let mut previous = false;
    for (index, &dark) in pattern.iter().enumerate() {
        if dark {
            match runs.last_mut() {
                Some(run) if previous => run.1 += 1,
                _ => runs.push((index as u32, 1)),
            }
        }
        previous = dark;
    }
    runs
}

/// Text on one line: control characters (line breaks, tabs) become spaces.
fn clean(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    text.trim().to_owned()
}

/// `text` cut short with "…" to fit `max_width` points at `size`.
fn truncate(text: &str, size: f32, max_width: f32) -> String {
    if estimated_width(text, size) <= max_width {
        return text.to_owned();
    }
    let mut width = char_width(ELLIPSIS) * size;
    let mut kept = String::new();
    for c in text.chars() {
        width += char_width(c) * size;
        if width > max_width {
            break;
        }
        kept.push(c);
    }
    let mut kept = kept.trim_end().to_owned();
    kept.push(ELLIPSIS);
    kept
}

/// Width of `text` in points at `size`, from [`char_width`].
fn estimated_width(text: &str, size: f32) -> f32 {
    text.chars().map(char_width).sum::<f32>() * size
}

/// Advance of a character in ems, rounded up from WenQuanYi Zen Hei's
/// proportional Latin: CJK and other non-ASCII characters are one em.
fn char_width(c: char) -> f32 {
    match c {
        'M' | 'W' | 'm' | 'w' | '@' | '%' | '&' => 0.83,
        ' ' | '!' | '\'' | '(' | ')' | ',' | '-' | '.' | ':' | ';' | '[' | ']' | '{' | '}'
        | '|' | 'I' | 'i' | 'j' | 'l' | 'f' | 'r' | 't' | '`' | '"' => 0.47,
        c if c.is_ascii() => 0.67,
        _ => 1.0,
    }
}

fn pt(mm: f32) -> f32 {
    mm * PT_PER_MM
}

fn mm(pt: f32) -> f32 {
    pt / PT_PER_MM
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::process::Command;

    use image::GrayImage;
    use rxing::{BarcodeFormat, DecodeHints};

    use super::*;

    const DPI: f32 = 200.0;

    fn test_font() -> Font {
        font(Path::new(pdf_font::DEFAULT_FONT), 0).unwrap()
    }

    fn label(code: &str, title: &str) -> Label {
        Label {
            code: code.to_owned(),
            title: title.to_owned(),
            lines: vec![
                "保管期限：永久".to_owned(),
                "2019-01-03 至 2019-12-28".to_owned(),
            ],
        }
    }

    /// Sixteen labels of all three kinds: more than one 14-label sheet.
    fn sixteen() -> Vec<Label> {
        let mut labels = Vec::new();
        for volume in 1..=10 {
            labels.push(label(
                &format!("V-440305-2019-{volume:04}"),
                &format!("2019年度 基本养老金核定 第{volume}卷"),
            ));
        }
        for number in 1..=4 {
            labels.push(label(
                &format!("B2019{number:05}"),
                &format!("2019年度 失业保险 第{number}盒"),
            ));
        }
        labels.push(Label {
            code: "L-01-03-2-4".to_owned(),
            title: "第一库房 3列 2节 4层".to_owned(),
            lines: Vec::new(),
        });
        labels.push(Label {
            code: "L-01-03-2-5".to_owned(),
            title: "第一库房 3列 2节 5层".to_owned(),
            lines: vec!["保管期限：30年".to_owned()],
        });
        labels
    }

    /// Each page of the PDF as a 200-dpi grey image (poppler's pdftoppm).
    fn rasterise(pdf: &[u8]) -> Vec<GrayImage> {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("labels.pdf");
        std::fs::write(&input, pdf).unwrap();
        let status = Command::new("pdftoppm")
            .args(["-r", "200", "-gray", "-png"])
            .arg(&input)
            .arg(dir.path().join("page"))
            .status()
            .expect("pdftoppm (poppler-utils) runs");
        assert!(status.success());
        let mut pages: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "png"))
            .collect();
        pages.sort();
        pages
            .iter()
            .map(|path| image::open(path).unwrap().into_luma8())
            .collect()
    }

    fn text_of(pdf: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("labels.pdf");
        std::fs::write(&input, pdf).unwrap();
        let output = Command::new("pdftotext")
            .arg(&input)
            .arg("-")
            .output()
            .expect("pdftotext (poppler-utils) runs");
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    }

    /// The Code 128 code read from the label cell at `position` of a sheet.
    fn read_cell(page: &GrayImage, layout: &Layout, position: usize) -> Option<String> {
        let px = |mm: f32| (mm * DPI / 25.4).round() as u32;
        let (left, top) = layout.label_origin_mm(position);
        let (x, y) = (px(left), px(top));
        let (w, h) = (px(layout.label_width_mm), px(layout.label_height_mm));
        let w = w.min(page.width() - x);
        let h = h.min(page.height() - y);
        let cell = image::imageops::crop_imm(page, x, y, w, h).to_image();
        let mut hints = DecodeHints {
            TryHarder: Some(true),
            ..Default::default()
        };
        rxing::helpers::detect_in_luma_with_hints(
            cell.into_raw(),
            w,
            h,
            Some(BarcodeFormat::CODE_128),
            &mut hints,
        )
        .ok()
        .map(|result| result.getText().to_owned())
    }

    #[test]
    fn every_code_reads_back_from_its_own_cell_and_no_other() {
        let layout = Layout::default();
        let labels = sixteen();
        let pdf = render(&labels, &layout, &test_font(), 0).unwrap();
        let pages = rasterise(&pdf);
        assert_eq!(pages.len(), 2, "16 labels take two 14-label sheets");
        for (sheet, page) in pages.iter().enumerate() {
            assert_eq!((page.width(), page.height()), (1654, 2339), "A4 at 200 dpi");
            for position in 0..layout.labels_per_sheet() {
                let expected = labels
                    .get(sheet * layout.labels_per_sheet() + position)
                    .map(|label| label.code.clone());
                assert_eq!(
                    read_cell(page, &layout, position),
                    expected,
                    "sheet {sheet} position {position}"
                );
            }
        }
    }

    #[test]
    fn the_chinese_text_is_in_the_pdf() {
        let pdf = render(&sixteen(), &Layout::default(), &test_font(), 0).unwrap();
        let text = text_of(&pdf);
        for expected in [
            "2019年度 基本养老金核定 第3卷",
            "2019年度 失业保险 第4盒",
            "第一库房 3列 2节 5层",
            "保管期限：永久",
            "保管期限：30年",
            "2019-01-03 至 2019-12-28",
            "V-440305-2019-0010",
        ] {
            assert!(text.contains(expected), "{expected:?} not in {text}");
        }
    }

    #[test]
    fn the_same_labels_give_the_same_pdf() {
        let font = test_font();
        let first = render(&sixteen(), &Layout::default(), &font, 5).unwrap();
        let second = render(&sixteen(), &Layout::default(), &font, 5).unwrap();
        assert!(first == second, "rendering is deterministic");
    }

    #[test]
    fn start_skips_used_positions_of_the_first_sheet() {
        let layout = Layout::default();
        let labels = vec![
            label("BOX-0001", "2019年度 第1盒"),
            label("BOX-0002", "第2盒"),
        ];
        // Thirteen positions used: the first label takes the last one and
        // the second starts a new sheet at the top left.
        let pdf = render(&labels, &layout, &test_font(), 13).unwrap();
        let pages = rasterise(&pdf);
        assert_eq!(pages.len(), 2);
        for position in 0..layout.labels_per_sheet() {
            let first = read_cell(&pages[0], &layout, position);
            let second = read_cell(&pages[1], &layout, position);
            assert_eq!(first.as_deref(), (position == 13).then_some("BOX-0001"));
            assert_eq!(second.as_deref(), (position == 0).then_some("BOX-0002"));
        }
        let pdf = render(&labels[..1], &layout, &test_font(), 3).unwrap();
        let pages = rasterise(&pdf);
        assert_eq!(pages.len(), 1);
        assert_eq!(
            read_cell(&pages[0], &layout, 3).as_deref(),
            Some("BOX-0001")
        );
        assert_eq!(read_cell(&pages[0], &layout, 0), None);

        let err = render(&labels, &layout, &test_font(), 14).unwrap_err();
        assert!(matches!(
            err,
            LabelError::StartOffSheet {
                start: 14,
                per_sheet: 14
            }
        ));
    }

    #[test]
    fn bad_codes_are_refused_naming_the_code() {
        let font = test_font();
        let layout = Layout::default();
        let render_one = |code: &str| render(&[label(code, "标题")], &layout, &font, 0);
        let err = render_one("卷-0001").unwrap_err();
        assert!(matches!(
            err,
            LabelError::BadCharacter {
                character: '卷',
                ..
            }
        ));
        assert!(err.to_string().contains("\"卷-0001\""), "{err}");
        assert!(matches!(
            render_one("A\tB").unwrap_err(),
            LabelError::BadCharacter {
                character: '\t',
                ..
            }
        ));
        assert!(matches!(
            render_one(" A1").unwrap_err(),
            LabelError::BadCharacter { character: ' ', .. }
        ));
        let err = render_one("").unwrap_err();
        assert!(
            matches!(err, LabelError::EmptyCode { number: 1, .. }),
            "{err}"
        );
        let long = "ABCDEFGHIJKLMNOPQRSTUVWXYZ-abcdefghijklmnopqrstuvwxyz";
        let err = render_one(long).unwrap_err();
        assert!(matches!(err, LabelError::TooLong { .. }), "{err}");
        assert!(err.to_string().contains(long), "{err}");
        // A good label after a bad one: nothing is printed at all.
        let mixed = [label("OK-1", "好"), label("坏", "坏")];
        assert!(render(&mixed, &layout, &font, 0).is_err());
        assert!(matches!(
            render(&[], &layout, &font, 0).unwrap_err(),
            LabelError::NoLabels
        ));
    }

    #[test]
    fn bars_are_whole_printer_dots_with_quiet_zones_inside_the_label() {
        let layout = Layout::default();
        let width = layout.label_width_mm - 2.0 * layout.padding_mm;
        for code in ["B201900001", "V-440305-2019-0010", "L-01-03-2-4"] {
            let prepared = Prepared::new(1, &label(code, "x"), &layout).unwrap();
            assert!(prepared.module_mm >= 0.25, "{code}: {}", prepared.module_mm);
            let dots = prepared.module_mm / DOT_MM;
            assert!((dots - dots.round()).abs() < 1e-3, "{code}: {dots} dots");
            let total = (prepared.modules + 2 * QUIET_ZONE_MODULES) as f32 * prepared.module_mm;
            assert!(total <= width + 1e-3, "{code}: {total} mm");
        }
        // Between 0.19 and 0.25 mm: printed at the exact fit.
        let long = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123";
        let prepared = Prepared::new(1, &label(long, "x"), &layout).unwrap();
        assert!(
            (MIN_MODULE_MM..0.254).contains(&prepared.module_mm),
            "{}",
            prepared.module_mm
        );
    }

    #[test]
    fn long_text_is_cut_short_and_too_many_lines_refused() {
        let layout = Layout::default();
        assert_eq!(layout.line_capacity(), 3);
        let title = "2019年度 基本养老金核定 某某区社会保险事业管理中心 城镇职工基本养老保险待遇核定表 第3卷";
        let prepared = Prepared::new(1, &label("V-1", title), &layout).unwrap();
        assert!(prepared.title.ends_with('…'), "{}", prepared.title);
        assert!(title.starts_with(prepared.title.trim_end_matches('…')));
        assert_eq!(prepared.title_size, 9.0);
        let width = pt(layout.label_width_mm - 2.0 * layout.padding_mm);
        assert!(estimated_width(&prepared.title, prepared.title_size) <= width);
        let short = Prepared::new(1, &label("V-1", "第3卷"), &layout).unwrap();
        assert_eq!((short.title.as_str(), short.title_size), ("第3卷", 11.0));

        let pdf = render(&[label("V-1", title)], &layout, &test_font(), 0).unwrap();
        let text = text_of(&pdf);
        assert!(
            text.contains(&prepared.title),
            "the cut title is printed: {text}"
        );

        let mut crowded = label("V-2", "第4卷");
        crowded.lines = vec!["一".into(), "二".into(), "三".into(), "四".into()];
        let err = render(&[crowded], &layout, &test_font(), 0).unwrap_err();
        assert!(
            matches!(
                err,
                LabelError::TooManyLines {
                    lines: 4,
                    room: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("V-2"), "{err}");
    }

    #[test]
    fn layouts_off_the_page_are_refused() {
        let font = test_font();
        let labels = [label("A1", "甲")];
        let wide = Layout {
            columns: 3,
            ..Layout::default()
        };
        assert!(matches!(
            render(&labels, &wide, &font, 0).unwrap_err(),
            LabelError::Layout(_)
        ));
        let low = Layout {
            label_height_mm: 20.0,
            ..Layout::default()
        };
        assert!(matches!(
            render(&labels, &low, &font, 0).unwrap_err(),
            LabelError::Layout(_)
        ));
    }

    #[test]
    fn runs_group_adjacent_dark_modules() {
        assert_eq!(
            runs(&[true, true, false, true, false, false, true, true, true]),
            vec![(0, 2), (3, 1), (6, 3)]
        );
        assert_eq!(runs(&[]), Vec::<(u32, u32)>::new());
    }
}
