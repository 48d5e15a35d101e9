//! Estimates how far a scanned page is rotated from upright, as a QC
//! pre-check (a crooked feed is a reason to rescan or deskew).
//!
//! The projection-profile method: the page is binarised, and for each
//! candidate angle the ink is counted per row after shearing the rows by that
//! angle. When the shear cancels the skew, every text line falls into a narrow
//! band of rows and the gaps between lines into empty rows, so the profile
//! alternates sharply; at any other angle the lines smear across each other and
//! the profile flattens. The sharpness is scored as the sum of squared
//! differences between adjacent rows, searched coarse to fine.
//!
//! For speed the ink is first counted in vertical strips [`STRIP_WIDTH`]
//! pixels wide, once; a sheared profile is then the sum of the strips' row
//! counts, each shifted by a whole number of rows. A search costs a pass over
//! the pixels plus a few dozen cheap sums over the strips.
//!
//! Sign convention: a positive angle means the text lines rise to the right
//! as the page is displayed (its content is turned counter-clockwise); to
//! deskew, turn the page clockwise by the angle.
use image::GrayImage;

use crate::analyze::InkLevels;

/// Candidate angles span ±this many degrees. A page fed more crooked than
/// that is found at the edge of the range or not at all.
const MAX_SKEW_DEGREES: f32 = 5.0;

/// Step of the first pass over the whole range. A text line of height `h` on a
/// page `w` wide stays sharp within about `h / w` radians of the true angle
/// (0.6° for 12-pixel lines across 1,100 pixels), so this step cannot step
/// over the peak.
const COARSE_STEP_DEGREES: f32 = 0.25;

/// Step of the second pass, one coarse step either side of the coarse best.
const FINE_STEP_DEGREES: f32 = 0.05;

/// Width in pixels of the strips whose row counts are shifted as one. Within
/// a strip the shear is rounded away: at 5° a 16-pixel strip blurs a line by
/// 1.4 rows, well below a text line's height.
const STRIP_WIDTH: usize = 16;

/// Below this fraction of ink in the inner page there is nothing to align
/// (a blank page, dust). Lower than the blank-page default so that a page with
/// only a few lines is still measured.
const MIN_INK_RATIO: f64 = 0.0005;

/// The best score must beat the median score over the whole range by this
/// factor. On pages of text, even of five lines, the peak is 20 to 80 times
/// the median; on noise or a photo-like page the scores stay within about 30%
/// of each other.
const MIN_PEAK_RATIO: f64 = 3.0;

/// The estimated skew of a page in degrees, positive when the text lines rise
/// to the right as displayed (see the module documentation), or `None` when
/// the page has too little content to tell: blank, too small, or no line
/// structure (noise, a photo).
///
/// `gray` is the page's reduced copy near 150 dpi
/// ([`PageRaster::reduced`](crate::raster::PageRaster::reduced)); at that
/// resolution the search takes a few milliseconds.
pub fn estimate_skew(gray: &GrayImage) -> Option<f32> {
    estimate_skew_at(gray, InkLevels::of(gray).threshold())
}

/// [`estimate_skew`] with the page's ink threshold already read from its
/// [`InkLevels`] (ingest reads them once for the ink ratio and the skew).
pub fn estimate_skew_at(gray: &GrayImage, threshold: u8) -> Option<f32> {
    let strips = InkStrips::of(gray, threshold)?;
    let mut profile = Profile::new(&strips);

    let coarse: Vec<(f32, f64)> = angles(0.0, MAX_SKEW_DEGREES, COARSE_STEP_DEGREES)
        .map(|angle| (angle, profile.score(&strips, angle)))
        .collect();
    let (coarse_angle, best_score) = coarse[best(&coarse)?];
    let mut scores: Vec<f64> = coarse.iter().map(|&(_, score)| score).collect();
    scores.sort_by(f64::total_cmp);
    let median = scores[scores.len() / 2];
    if best_score <= MIN_PEAK_RATIO * median {
        return None;
    }

    let fine: Vec<(f32, f64)> = angles(coarse_angle, COARSE_STEP_DEGREES, FINE_STEP_DEGREES)
        .filter(|angle| angle.abs() <= MAX_SKEW_DEGREES + FINE_STEP_DEGREES / 2.0)
        .map(|angle| (angle, profile.score(&strips, angle)))
        .collect();
    let index = best(&fine)?;
    Some(fine[index].0 + refine(&fine, index))
}

/// `centre - half_span ..= centre + half_span` in steps of `step`, counted in
/// whole steps so that rounding does not accumulate.
fn angles(centre: f32, half_span: f32, step: f32) -> impl Iterator<Item = f32> {
    let steps = (half_span / step).round() as i32;
    (-steps..=steps).map(move |index| centre + index as f32 * step)
}

/// The index of the highest score (the first of equals), `None` when empty.
fn best(scores: &[(f32, f64)]) -> Option<usize> {
    (0..scores.len()).reduce(|best, next| {
        if scores[next].1 > scores[best].1 {
            next
        } else {
            best
        }
    })
}

/// A sub-step correction to the angle at `index` from a parabola through its
/// score and its neighbours' (zero at either end of the list, or when the
/// three do not form a peak).
fn refine(scores: &[(f32, f64)], index: usize) -> f32 {
    if index == 0 || index + 1 >= scores.len() {
        return 0.0;
    }
    let (left, middle, right) = (scores[index - 1].1, scores[index].1, scores[index + 1].1);
    let curvature = left - 2.0 * middle + right;
    if curvature >= 0.0 {
        return 0.0;
    }
    let offset = (0.5 * (left - right) / curvature).clamp(-0.5, 0.5);
    offset as f32 * FINE_STEP_DEGREES
}

/// Ink counted per row in vertical strips of the page's inner area.
struct InkStrips {
    /// Rows of the inner area.
    height: usize,
    /// Strip-major: `counts[strip * height + row]` is the number of ink pixels
    /// in that strip's part of the row (at most [`STRIP_WIDTH`]).
    counts: Vec<u8>,
    /// Each strip's centre, in pixels from the middle of the inner area.
    centres: Vec<f32>,
}

impl InkStrips {
    /// Binarises the inner page at `threshold` (pixels below it are ink)
    /// and counts its ink; `None` when there is too little page or too
    /// little ink.
    fn of(gray: &GrayImage, threshold: u8) -> Option<Self> {
        let (width, height) = (gray.width() as usize, gray.height() as usize);
        // The outer 4% on every side is left out, as for the ink ratio:
        // scanners put shadows and feeder marks there, and a shadow along the
        // top edge would pull the estimate towards the scanner's axes.
        let (columns, rows) = crate::analyze::inner_area(width, height);
        let (left, right, top, bottom) = (columns.start, columns.end, rows.start, rows.end);
        if right.saturating_sub(left) < 4 * STRIP_WIDTH || bottom.saturating_sub(top) < 32 {
            return None;
        }
        let raw = gray.as_raw();

        let inner_width = right - left;
        let inner_height = bottom - top;
        let strip_count = inner_width.div_ceil(STRIP_WIDTH);
        let mut counts = vec![0u8; strip_count * inner_height];
        let mut ink = 0u64;
        for (row_index, y) in (top..bottom).enumerate() {
            let row = &raw[y * width + left..y * width + right];
            for (strip, pixels) in row.chunks(STRIP_WIDTH).enumerate() {
                let count: u8 = pixels.iter().map(|&v| u8::from(v < threshold)).sum();
                counts[strip * inner_height + row_index] = count;
                ink += u64::from(count);
            }
        }
        if (ink as f64) < MIN_INK_RATIO * (inner_width * inner_height) as f64 {
            return None;
        }

        let middle = inner_width as f32 / 2.0;
        let centres = (0..strip_count)
            .map(|strip| {
                let start = strip * STRIP_WIDTH;
                let end = (start + STRIP_WIDTH).min(inner_width);
                (start + end) as f32 / 2.0 - middle
            })
            .collect();
        Some(Self {
            height: inner_height,
            counts,
            centres,
        })
    }
}

/// The sheared projection profile, reused from one angle to the next.
struct Profile {
    /// Rows added above and below the page so that no shift falls outside.
    pad: usize,
    /// Ink per sheared row. u16 lanes, twice as many per vector instruction
    /// as u32: a row holds at most the inner width's pixels, under 65,536 for
    /// any real page at ~150 dpi (the sum saturates beyond that).
    rows: Vec<u16>,
}

impl Profile {
    fn new(strips: &InkStrips) -> Self {
        let widest = strips
            .centres
            .iter()
            .fold(0.0f32, |widest, centre| widest.max(centre.abs()));
        let steepest = (MAX_SKEW_DEGREES + COARSE_STEP_DEGREES).to_radians().tan();
        let pad = (widest * steepest).ceil() as usize + 1;
        Self {
            pad,
            rows: vec![0; strips.height + 2 * pad],
        }
    }

    /// The sum of squared differences between adjacent rows of the profile
    /// sheared by `degrees`: row `y` of a strip centred `x` pixels from the
    /// middle lands in row `y + x·tan(degrees)`, which levels a line that
    /// rises to the right at that angle.
    fn score(&mut self, strips: &InkStrips, degrees: f32) -> f64 {
        let slope = degrees.to_radians().tan();
        let max_shift = self.pad as isize;
        self.rows.fill(0);
        for (counts, centre) in strips
            .counts
            .chunks_exact(strips.height)
            .zip(&strips.centres)
        {
            let shift = ((centre * slope).round() as isize).clamp(-max_shift, max_shift);
            let start = self.pad.saturating_add_signed(shift);
            for (row, &count) in self.rows[start..start + strips.height]
                .iter_mut()
                .zip(counts)
            {
                *row = row.saturating_add(u16::from(count));
            }
        }
        let sum: u64 = self
            .rows
            .windows(2)
            .map(|pair| {
                let difference = u64::from(pair[0].abs_diff(pair[1]));
                difference * difference
            })
            .sum();
        sum as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dangan_testkit::pages::{PageSpec, Rng, render_page};
    use image::Luma;

    const PAPER: u8 = 235;
    const INK: u8 = 30;
    const WIDTH: u32 = 1240;
    const HEIGHT: u32 = 1754;

    fn fill(page: &mut GrayImage, x: u32, y: u32, width: u32, height: u32) {
        for yy in y..(y + height).min(page.height()) {
            for xx in x..(x + width).min(page.width()) {
                page.put_pixel(xx, yy, Luma([INK]));
            }
        }
    }

    /// An A4 page at 150 dpi with `lines` lines of "words": black rectangles
    /// 12 pixels high of random widths with gaps, inside wide margins.
    fn text_page(lines: u32, seed: u64) -> GrayImage {
        let mut rng = Rng::new(seed);
        let mut page = GrayImage::from_pixel(WIDTH, HEIGHT, Luma([PAPER]));
        let (left, right, top, pitch) = (110, WIDTH - 110, 160, 40);
        for line in 0..lines {
            let y = top + line * pitch;
            // Some lines end early, like the last line of a paragraph.
            let end = if rng.unit() < 0.2 {
                left + rng.range(200, right - left)
            } else {
                right
            };
            let mut x = left + if rng.unit() < 0.15 { 40 } else { 0 };
            while x < end {
                let word = rng.range(15, 110).min(end - x);
                fill(&mut page, x, y, word, 12);
                x += word + rng.range(8, 22);
            }
        }
        page
    }

    /// `page` turned counter-clockwise by `degrees` as displayed (its lines
    /// then rise to the right), about its centre, by bilinear inverse mapping;
    /// corners that come from outside are paper.
    fn rotate(page: &GrayImage, degrees: f32) -> GrayImage {
        let (sin, cos) = degrees.to_radians().sin_cos();
        let (cx, cy) = (page.width() as f32 / 2.0, page.height() as f32 / 2.0);
        let sample = |x: i64, y: i64| -> f32 {
            if x < 0 || y < 0 || x >= i64::from(page.width()) || y >= i64::from(page.height()) {
                f32::from(PAPER)
            } else {
                f32::from(page.get_pixel(x as u32, y as u32).0[0])
            }
        };
        GrayImage::from_fn(page.width(), page.height(), |x, y| {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            // Output (dx, dy) comes from the source point turned back
            // clockwise; in y-down coordinates that is this matrix.
            let sx = dx * cos - dy * sin + cx - 0.5;
            let sy = dx * sin + dy * cos + cy - 0.5;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let top = sample(x0, y0) * (1.0 - fx) + sample(x0 + 1, y0) * fx;
            let bottom = sample(x0, y0 + 1) * (1.0 - fx) + sample(x0 + 1, y0 + 1) * fx;
            Luma([(top * (1.0 - fy) + bottom * fy).round() as u8])
        })
    }

    fn assert_near(estimate: Option<f32>, truth: f32, what: &str) {
        let estimate = estimate.unwrap_or_else(|| panic!("{what}: no estimate, expected {truth}"));
        eprintln!(
            "{what}: truth {truth:+.2}°, estimate {estimate:+.3}°, error {:+.3}°",
            estimate - truth
        );
        assert!(
            (estimate - truth).abs() <= 0.3,
            "{what}: estimate {estimate}, expected {truth}"
        );
    }

    #[test]
    fn finds_known_skews() {
        let page = text_page(35, 7);
        for truth in [0.0, 1.5, -2.0, 3.7, -0.4, 4.9, -4.9] {
            let skewed = rotate(&page, truth);
            assert_near(estimate_skew(&skewed), truth, "35 lines");
        }
    }

    #[test]
    fn positive_means_lines_rise_to_the_right() {
        // Drawn sheared rather than rotated, so the convention does not
        // depend on the test's own rotation.
        let mut page = GrayImage::from_pixel(WIDTH, HEIGHT, Luma([PAPER]));
        let slope = 2.0f32.to_radians().tan();
        for line in 0..30u32 {
            let baseline = 200 + line * 45;
            for x in (100..WIDTH - 100).filter(|x| (x / 40) % 5 != 4) {
                let rise = (x as f32 * slope).round() as u32;
                fill(&mut page, x, baseline + 40 - rise, 1, 12);
            }
        }
        assert_near(estimate_skew(&page), 2.0, "rising lines");
        assert_near(
            estimate_skew(&image::imageops::flip_horizontal(&page)),
            -2.0,
            "falling lines",
        );
    }

    #[test]
    fn a_few_lines_are_enough() {
        let page = text_page(5, 11);
        for truth in [0.0, 2.5, -1.2] {
            assert_near(estimate_skew(&rotate(&page, truth)), truth, "5 lines");
        }
    }

    #[test]
    fn agrees_with_the_testkit_pages() {
        // The testkit's skew is clockwise, so its lines fall to the right;
        // the page goes through the same 2×2 reduction as at ingest.
        for (seed, skew) in [(3, 2.0f32), (4, -1.0)] {
            let spec = PageSpec {
                seed,
                skew_degrees: skew,
                ..PageSpec::with_codes(300, seed, vec![])
            };
            let raster = crate::raster::PageRaster::new(render_page(&spec).to_luma8(), Some(300));
            assert_near(estimate_skew(&raster.reduced), -skew, "testkit page");
        }
    }

    #[test]
    fn blank_pages_have_no_skew() {
        let paper = GrayImage::from_pixel(WIDTH, HEIGHT, Luma([PAPER]));
        assert_eq!(estimate_skew(&paper), None);
        let blank = dangan_testkit::pages::blank_page(150, 5);
        assert_eq!(estimate_skew(&blank), None);
        // A few specks of dust are not content either.
        let mut dusty = paper.clone();
        for (x, y) in [(300, 300), (800, 900), (500, 1500)] {
            fill(&mut dusty, x, y, 3, 3);
        }
        assert_eq!(estimate_skew(&dusty), None);
    }

    #[test]
    fn noise_and_photos_have_no_skew() {
        let mut rng = Rng::new(9);
        let noise = GrayImage::from_fn(WIDTH, HEIGHT, |_, _| Luma([rng.range(0, 256) as u8]));
        assert_eq!(estimate_skew(&noise), None);
        // A photo-like page: a large dark disc with soft shading.
        let photo = GrayImage::from_fn(WIDTH, HEIGHT, |x, y| {
            let (dx, dy) = (x as f32 - 620.0, y as f32 - 800.0);
            let distance = (dx * dx + dy * dy).sqrt();
            Luma([(40.0 + distance * 0.4).min(230.0) as u8])
        });
        assert_eq!(estimate_skew(&photo), None);
    }

    #[test]
    fn tiny_images_have_no_skew() {
        for (width, height) in [(0, 0), (1, 1), (10, 10), (64, 64), (2000, 20)] {
            let page = GrayImage::from_pixel(width, height, Luma([INK]));
            assert_eq!(estimate_skew(&page), None, "{width}×{height}");
        }
    }

    /// `DANGAN_SKEW_TIMING=1 cargo test --release -p dangan-edge --lib skew -- --nocapture`
    #[test]
    fn print_timing_when_asked() {
        if std::env::var_os("DANGAN_SKEW_TIMING").is_none() {
            return;
        }
        let page = rotate(&text_page(35, 7), 1.5);
        let runs = 50;
        let started = std::time::Instant::now();
        for _ in 0..runs {
            assert!(estimate_skew(std::hint::black_box(&page)).is_some());
        }
        eprintln!(
            "estimate_skew on a {}×{} page: {:?} per page",
            page.width(),
            page.height(),
            started.elapsed() / runs
        );
    }
}
