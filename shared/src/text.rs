//! Text for terminals: columns that line up when cells hold Chinese.

use unicode_width::UnicodeWidthStr;

/// `text` padded with spaces on the right to `width` terminal columns
/// (CJK characters take two). Longer text is returned unchanged.
pub fn pad(text: &str, width: usize) -> String {
    let shown = text.width();
    let mut out = String::with_capacity(text.len() + width.saturating_sub(shown));
    out.push_str(text);
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(shown)));
    out
}

/// `text` padded with spaces on the left to `width` terminal columns.
pub fn pad_left(text: &str, width: usize) -> String {
    let shown = text.width();
    let mut out: String = std::iter::repeat_n(' ', width.saturating_sub(shown)).collect();
    out.push_str(text);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_counts_two_columns() {
        assert_eq!(pad("批次", 6), "批次  ");
        assert_eq!(pad("batch", 6), "batch ");
        assert_eq!(pad_left("页", 4), "  页");
        assert_eq!(pad("已归档批次", 4), "已归档批次");
    }
}
