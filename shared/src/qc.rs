//! Quality spot-checks (质量抽查): the sampling rule, the reproducible
//! sample, and the defects an inspector can record.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How many pages of a batch are checked and how many must pass.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingRule {
    /// Share of the batch's pages sampled, in (0, 1].
    pub rate: f64,
    /// At least this many pages (all of them when the batch has fewer).
    pub floor: u32,
    /// Share of sampled pages that must pass, in [0, 1].
    pub pass_threshold: f64,
}

impl Default for SamplingRule {
    fn default() -> Self {
        Self {
            rate: 0.05,
            floor: 10,
            pass_threshold: 0.95,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplingRuleError {
    #[error("the sampling rate must be above 0 and at most 1, not {0}")]
    Rate(f64),
    #[error("the pass threshold must be between 0 and 1, not {0}")]
    Threshold(f64),
}

impl SamplingRule {
    pub fn validate(&self) -> Result<(), SamplingRuleError> {
        if !(self.rate > 0.0 && self.rate <= 1.0) {
            return Err(SamplingRuleError::Rate(self.rate));
        }
        if !(0.0..=1.0).contains(&self.pass_threshold) {
            return Err(SamplingRuleError::Threshold(self.pass_threshold));
        }
        Ok(())
    }

    /// How many of `pages` pages are sampled: the rate rounded up, at
    /// least the floor, at most every page.
    pub fn sample_size(&self, pages: u32) -> u32 {
        let by_rate = (f64::from(pages) * self.rate).ceil() as u32;
        by_rate.max(self.floor).min(pages)
    }

    /// Whether `passed` of `checked` pages meet the threshold. An empty
    /// sample (an empty batch) passes.
    pub fn passes(&self, passed: u32, checked: u32) -> bool {
        checked == 0 || f64::from(passed) >= self.pass_threshold * f64::from(checked) - 1e-9
    }
}

/// The positions (0-based, ascending) of the pages sampled from `pages`
/// pages with `seed`. The same seed, count and rule always give the same
/// sample, on every machine and in every version: a page's rank is the
/// BLAKE3 hash of the seed and its position, and the lowest ranks win.
pub fn sample(pages: u32, seed: u64, rule: &SamplingRule) -> Vec<u32> {
    let size = rule.sample_size(pages) as usize;
    let mut ranked: Vec<([u8; 32], u32)> = (0..pages)
        .map(|position| {
            let mut hasher = blake3::Hasher::new();
            hasher.update(b"dangan qc sample v1");
            hasher.update(&seed.to_le_bytes());
            hasher.update(&position.to_le_bytes());
            (*hasher.finalize().as_bytes(), position)
        })
        .collect();
    ranked.sort_unstable();
    let mut chosen: Vec<u32> = ranked.into_iter().take(size).map(|(_, p)| p).collect();
    chosen.sort_unstable();
    chosen
}

/// What an inspector found wrong with a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Defect {
    /// 歪斜
    Skew,
    /// 模糊
    Blur,
    /// 缺页
    MissingPage,
    /// 顺序错误
    WrongOrder,
    /// 空白页
    Blank,
    /// 裁切不全
    Cropped,
    /// 字迹不清
    Illegible,
    /// 分辨率不足
    LowResolution,
}

impl Defect {
    pub const ALL: [Defect; 8] = [
        Defect::Skew,
        Defect::Blur,
        Defect::MissingPage,
        Defect::WrongOrder,
        Defect::Blank,
        Defect::Cropped,
        Defect::Illegible,
        Defect::LowResolution,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Defect::Skew => "skew",
            Defect::Blur => "blur",
            Defect::MissingPage => "missing_page",
            Defect::WrongOrder => "wrong_order",
            Defect::Blank => "blank",
            Defect::Cropped => "cropped",
            Defect::Illegible => "illegible",
            Defect::LowResolution => "low_resolution",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Defect::Skew => "歪斜",
            Defect::Blur => "模糊",
            Defect::MissingPage => "缺页",
            Defect::WrongOrder => "顺序错误",
            Defect::Blank => "空白页",
            Defect::Cropped => "裁切不全",
            Defect::Illegible => "字迹不清",
            Defect::LowResolution => "分辨率不足",
        }
    }
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown defect {0:?} (one of skew, blur, missing_page, wrong_order, blank, cropped, \
     illegible, low_resolution)"
)]
pub struct ParseDefectError(String);

impl FromStr for Defect {
    type Err = ParseDefectError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Defect::ALL
            .into_iter()
            .find(|d| d.code() == text || d.label_zh() == text)
            .ok_or_else(|| ParseDefectError(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_size_follows_rate_and_floor() {
        let rule = SamplingRule::default();
        // Fewer pages than the floor: all of them.
        assert_eq!(rule.sample_size(0), 0);
        assert_eq!(rule.sample_size(7), 7);
        assert_eq!(rule.sample_size(10), 10);
        // The floor until 5% is more.
        assert_eq!(rule.sample_size(100), 10);
        assert_eq!(rule.sample_size(200), 10);
        assert_eq!(rule.sample_size(201), 11);
        assert_eq!(rule.sample_size(2000), 100);
        let all = SamplingRule { rate: 1.0, ..rule };
        assert_eq!(all.sample_size(37), 37);
    }

    #[test]
    fn the_same_seed_gives_the_same_sample_and_another_seed_another() {
        let rule = SamplingRule::default();
        let first = sample(2000, 42, &rule);
        assert_eq!(first.len(), 100);
        assert_eq!(first, sample(2000, 42, &rule));
        assert!(first.windows(2).all(|w| w[0] < w[1]), "ascending, distinct");
        assert!(first.iter().all(|&p| p < 2000));
        assert_ne!(first, sample(2000, 43, &rule));
        // Golden: the ranking must not change between versions, or a
        // stored seed would no longer name the sample inspectors checked.
        assert_eq!(sample(30, 7, &rule), golden_30_7());
    }

    /// Computed independently with Python's `blake3` package:
    /// `sorted(p for _, p in sorted((blake3(b"dangan qc sample v1" +
    /// pack("<Q", 7) + pack("<I", p)).digest(), p) for p in range(30))[:10])`.
    fn golden_30_7() -> Vec<u32> {
        vec![1, 4, 10, 12, 13, 14, 16, 24, 28, 29]
    }

    #[test]
    fn pass_threshold() {
        let rule = SamplingRule::default();
        assert!(rule.passes(95, 100));
        assert!(!rule.passes(94, 100));
        assert!(rule.passes(19, 20));
        assert!(!rule.passes(9, 10));
        assert!(rule.passes(0, 0));
        assert!(SamplingRule { rate: 0.0, ..rule }.validate().is_err());
    }

    #[test]
    fn defects_parse_by_code_or_chinese_name() {
        assert_eq!("歪斜".parse::<Defect>(), Ok(Defect::Skew));
        assert_eq!(
            "low_resolution".parse::<Defect>(),
            Ok(Defect::LowResolution)
        );
        assert!("smudge".parse::<Defect>().is_err());
    }
}
