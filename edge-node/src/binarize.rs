//! A faster equivalent of rxing's `HybridBinarizer` for the 2D passes.
//!
//! The algorithm is ZXing's local thresholding, unchanged: a black point per
//! 8×8 block, each block thresholded at the average of the 5×5 blocks around
//! it, the last partial block shifted to end at the image edge. rxing sets
//! the resulting bits one pixel at a time, which made binarisation the most
//! expensive part of looking for a QR code on a page without one. Here the
//! thresholds are laid out per pixel row and the bits packed a word at a
//! time. The output is bit-for-bit the same matrix (tested against rxing).
use std::borrow::Cow;

use rxing::common::{
    BIT_FIELD_BASE_BITS, BitArray, BitMatrix, GlobalHistogramBinarizer, LineOrientation, Result,
};
use rxing::{Binarizer, LuminanceSource};

const BLOCK: usize = 8;
const MIN_DYNAMIC_RANGE: u8 = 24;

pub struct FastHybridBinarizer<LS: LuminanceSource> {
    global: GlobalHistogramBinarizer<LS>,
    /// None when the image is smaller than 5×5 blocks: rxing then falls back
    /// to the global histogram, and so does this.
    matrix: Option<BitMatrix>,
}

impl<LS: LuminanceSource> FastHybridBinarizer<LS> {
    pub fn new(source: LS) -> Self {
        let width = source.get_width();
        let height = source.get_height();
        let matrix = if width >= BLOCK * 5 && height >= BLOCK * 5 {
            black_matrix(&source.get_matrix(), width, height)
        } else {
            None
        };
        Self {
            global: GlobalHistogramBinarizer::new(source),
            matrix,
        }
    }
}

impl<LS: LuminanceSource> Binarizer for FastHybridBinarizer<LS> {
    type Source = LS;

    fn get_luminance_source(&self) -> &LS {
        self.global.get_luminance_source()
    }

    fn get_black_row(&self, y: usize) -> Result<Cow<'_, BitArray>> {
        self.global.get_black_row(y)
    }

    fn get_black_row_from_matrix(&self, y: usize) -> Result<Cow<'_, BitArray>> {
        match &self.matrix {
            Some(matrix) => Ok(Cow::Owned(matrix.getRow(y as u32))),
            None => self.get_black_row(y),
        }
    }

    fn get_black_matrix(&self) -> Result<&BitMatrix> {
        match &self.matrix {
            Some(matrix) => Ok(matrix),
            None => self.global.get_black_matrix(),
        }
    }

    fn get_black_line(&self, l: usize, lt: LineOrientation) -> Result<Cow<'_, BitArray>> {
        self.global.get_black_line(l, lt)
    }

    fn create_binarizer(&self, source: LS) -> Self {
        Self::new(source)
    }

    fn get_width(&self) -> usize {
        self.global.get_width()
    }

    fn get_height(&self) -> usize {
        self.global.get_height()
    }
}

/// Adds one 8-pixel row of a block to the block's sum, minimum and maximum.
#[inline]
fn accumulate(pixels: &[u8; BLOCK], sum: &mut u32, min: &mut u8, max: &mut u8) {
    *sum += pixels.iter().map(|&p| u32::from(p)).sum::<u32>();
    *min = pixels.iter().fold(*min, |m, &p| m.min(p));
    *max = pixels.iter().fold(*max, |m, &p| m.max(p));
}

/// ZXing's black point per 8×8 block (see `HybridBinarizer::calculateBlackPoints`).
fn black_points(
    lum: &[u8],
    width: usize,
    height: usize,
    sub_width: usize,
    sub_height: usize,
) -> Vec<u32> {
    let max_y = height - BLOCK;
    // Whole blocks along the row, then the last one shifted to end at the edge.
    let whole = width / BLOCK;
    let mut points = vec![0u32; sub_width * sub_height];
    let mut sums = vec![0u32; sub_width];
    let mut mins = vec![u8::MAX; sub_width];
    let mut maxs = vec![u8::MIN; sub_width];
    for y in 0..sub_height {
        let y_offset = (y * BLOCK).min(max_y);
        sums.fill(0);
        mins.fill(u8::MAX);
        maxs.fill(u8::MIN);
        for row in y_offset..y_offset + BLOCK {
            let pixels = &lum[row * width..(row + 1) * width];
            let (blocks, _) = pixels[..whole * BLOCK].as_chunks::<BLOCK>();
            for (((block, sum), min), max) in
                blocks.iter().zip(&mut sums).zip(&mut mins).zip(&mut maxs)
            {
                accumulate(block, sum, min, max);
            }
            if sub_width > whole
                && let Ok(block) = <&[u8; BLOCK]>::try_from(&pixels[width - BLOCK..])
            {
                accumulate(block, &mut sums[whole], &mut mins[whole], &mut maxs[whole]);
            }
        }
        for x in 0..sub_width {
            let (min, max) = (mins[x], maxs[x]);
            let mut average = sums[x] >> 6;
            if max - min <= MIN_DYNAMIC_RANGE {
                // A flat block: assume background, unless its neighbours say
                // it lies inside a dark area (ZXing's heuristic).
                average = u32::from(min) / 2;
                if y > 0 && x > 0 {
                    let neighbours = (points[(y - 1) * sub_width + x]
                        + 2 * points[y * sub_width + x - 1]
                        + points[(y - 1) * sub_width + x - 1])
                        / 4;
                    if u32::from(min) < neighbours {
                        average = neighbours;
                    }
                }
            }
            points[y * sub_width + x] = average;
        }
    }
    points
}

fn black_matrix(lum: &[u8], width: usize, height: usize) -> Option<BitMatrix> {
    let sub_width = width.div_ceil(BLOCK);
    let sub_height = height.div_ceil(BLOCK);
    let points = black_points(lum, width, height, sub_width, sub_height);
    // Each block's threshold: the average of the 5×5 blocks around it, the
    // window clamped inside the grid.
    let mut thresholds = vec![0u32; sub_width * sub_height];
    for y in 0..sub_height {
        let top = y.clamp(2, sub_height - 3);
        for x in 0..sub_width {
            let left = x.clamp(2, sub_width - 3);
            let mut sum = 0;
            for row in top - 2..=top + 2 {
                sum += points[row * sub_width + left - 2..=row * sub_width + left + 2]
                    .iter()
                    .sum::<u32>();
            }
            thresholds[y * sub_width + x] = sum / 25;
        }
    }
    let block_offset = |index: usize, limit: usize| (index * BLOCK).min(limit - BLOCK);
    let mut matrix = BitMatrix::new(width as u32, height as u32).ok()?;
    // Thresholds are averages of black points, which never exceed 255.
    let mut row_threshold = vec![0u8; width];
    let mut row_bits = BitArray::with_size(width);
    let mut covering: Vec<usize> = Vec::with_capacity(2);
    let mut last_covering: Vec<usize> = Vec::new();
    for py in 0..height {
        // Block rows whose (possibly shifted) 8 rows include this row: one,
        // or two where the last partial block overlaps its neighbour.
        covering.clear();
        let natural = py / BLOCK;
        for by in [natural.saturating_sub(1), natural, sub_height - 1] {
            if by < sub_height && !covering.contains(&by) {
                let offset = block_offset(by, height);
                if offset <= py && py < offset + BLOCK {
                    covering.push(by);
                }
            }
        }
        if covering != last_covering {
            row_threshold.fill(0);
            for &by in &covering {
                for bx in 0..sub_width {
                    let threshold = thresholds[by * sub_width + bx].min(255) as u8;
                    let offset = block_offset(bx, width);
                    for t in &mut row_threshold[offset..offset + BLOCK] {
                        *t = (*t).max(threshold);
                    }
                }
            }
            last_covering.clone_from(&covering);
        }
        // Pixels are black when at or below their threshold ("<=" so that
        // 0 is black even where the threshold is 0).
        let pixels = &lum[py * width..(py + 1) * width];
        row_bits.clear();
        for (word_index, (chunk, limits)) in pixels
            .chunks(BIT_FIELD_BASE_BITS)
            .zip(row_threshold.chunks(BIT_FIELD_BASE_BITS))
            .enumerate()
        {
            let word = black_bits(chunk, limits);
            if word != 0 {
                row_bits.setBulk(word_index * BIT_FIELD_BASE_BITS, word);
            }
        }
        matrix.setRow(py as u32, &row_bits);
    }
    Some(matrix)
}

/// Bit `i` set when `pixels[i] <= limits[i]` (up to one word of pixels).
/// The comparisons are made into a byte mask first, which LLVM vectorises,
/// and each 8 mask bytes (0 or 1) are gathered into 8 bits by one multiply:
/// byte `i` of the mask lands on bit `56 + i` of the product, and no two
/// partial products overlap, so nothing carries into the top byte.
fn black_bits(pixels: &[u8], limits: &[u8]) -> usize {
    const GATHER: u64 = 0x0102_0408_1020_4080;
    let mut mask = [0u8; BIT_FIELD_BASE_BITS];
    for ((m, &p), &t) in mask.iter_mut().zip(pixels).zip(limits) {
        *m = u8::from(p <= t);
    }
    let (bytes, _) = mask.as_chunks::<8>();
    bytes
        .iter()
        .enumerate()
        .fold(0usize, |word, (index, eight)| {
            let bits = u64::from_le_bytes(*eight).wrapping_mul(GATHER) >> 56;
            word | ((bits as usize) << (8 * index))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rxing::Luma8LuminanceSource;
    use rxing::common::HybridBinarizer;

    fn same_as_rxing(width: usize, height: usize, pixels: Vec<u8>) {
        let ours = FastHybridBinarizer::new(
            Luma8LuminanceSource::new(pixels.clone(), width as u32, height as u32).unwrap(),
        );
        let theirs = HybridBinarizer::new(
            Luma8LuminanceSource::new(pixels, width as u32, height as u32).unwrap(),
        );
        assert_eq!(
            ours.get_black_matrix().unwrap(),
            theirs.get_black_matrix().unwrap(),
            "{width}×{height}"
        );
    }

    #[test]
    fn matches_rxing_on_pages_and_odd_sizes() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Odd sizes exercise the shifted last blocks; flat areas the
        // neighbour heuristic; gradients the local thresholds.
        for (width, height) in [
            (40, 40),
            (41, 47),
            (64, 64),
            (100, 37 + 40),
            (257, 131),
            (333, 200),
        ] {
            let pixels = (0..width * height)
                .map(|i| {
                    let (x, y) = (i % width, i / width);
                    let r = (next() % 100) as usize;
                    if (x / 9 + y / 7) % 5 == 0 {
                        (r % 60) as u8
                    } else if x > width / 2 {
                        200 + (r % 40) as u8
                    } else {
                        (x * 255 / width) as u8
                    }
                })
                .collect();
            same_as_rxing(width, height, pixels);
        }
        let page =
            dangan_testkit::pages::render_page(&dangan_testkit::pages::PageSpec::with_codes(
                150,
                7,
                vec![dangan_testkit::pages::CodeSpec::new(
                    dangan_testkit::pages::Symbology::Qr,
                    "YW2026000001",
                    dangan_testkit::pages::Place::MidPage,
                )],
            ))
            .to_luma8();
        let (width, height) = page.dimensions();
        same_as_rxing(width as usize, height as usize, page.into_raw());
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    use rxing::Luma8LuminanceSource;
    use rxing::common::HybridBinarizer;

    /// `DANGAN_BINARIZE_TIMING=1 cargo test --release -p dangan-edge --lib binarize -- --nocapture`
    #[test]
    fn print_timing_when_asked() {
        if std::env::var_os("DANGAN_BINARIZE_TIMING").is_none() {
            return;
        }
        let page = dangan_testkit::pages::render_page(
            &dangan_testkit::pages::PageSpec::with_codes(150, 3, vec![]),
        )
        .to_luma8();
        let (width, height) = page.dimensions();
        let pixels = page.into_raw();
        let runs = 30;
        let started = std::time::Instant::now();
        for _ in 0..runs {
            let b = FastHybridBinarizer::new(
                Luma8LuminanceSource::new(pixels.clone(), width, height).unwrap(),
            );
            assert!(b.get_black_matrix().is_ok());
        }
        let ours = started.elapsed() / runs;
        let started = std::time::Instant::now();
        for _ in 0..runs {
            let b = HybridBinarizer::new(
                Luma8LuminanceSource::new(pixels.clone(), width, height).unwrap(),
            );
            assert!(b.get_black_matrix().is_ok());
        }
        let theirs = started.elapsed() / runs;
        let started = std::time::Instant::now();
        for _ in 0..runs {
            let source = Luma8LuminanceSource::new(pixels.clone(), width, height).unwrap();
            let global = GlobalHistogramBinarizer::new(source);
            assert!(global.get_width() > 0);
        }
        let setup = started.elapsed() / runs;
        let started = std::time::Instant::now();
        for _ in 0..runs {
            let source = Luma8LuminanceSource::new(pixels.clone(), width, height).unwrap();
            assert!(!source.get_matrix().is_empty());
        }
        let matrix = started.elapsed() / runs;
        let started = std::time::Instant::now();
        for _ in 0..runs {
            assert!(black_matrix(&pixels, width as usize, height as usize).is_some());
        }
        let bits = started.elapsed() / runs;
        eprintln!(
            "{width}x{height}: fast {ours:?}, rxing {theirs:?}, source+global {setup:?}, source+get_matrix {matrix:?}, black_matrix alone {bits:?}"
        );
    }
}
