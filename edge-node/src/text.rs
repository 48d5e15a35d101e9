//! Operator-facing text in Simplified Chinese (default) and English.
//!
//! Only what a person reads is translated; JSON output, logs and error codes
//! stay in English so that scripts and support staff see stable words.
use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Simplified Chinese (简体中文).
    Zh,
    /// English.
    En,
}

impl Lang {
    /// Picks the Chinese or the English text.
    pub fn pick<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
}

/// A short description of a quarantine or exception code.
pub fn code_label(lang: Lang, code: &str) -> String {
    let (zh, en) = match code {
        "empty" => ("空文件", "empty file"),
        "not_an_image" => ("不是图像文件", "not an image"),
        "unsupported_format" => ("不支持的格式", "unsupported format"),
        "truncated" => ("文件不完整（被截断）", "truncated file"),
        "too_many_pixels" => (
            "像素过多（疑似解压炸弹），已拒绝",
            "too many pixels (decompression bomb), refused",
        ),
        "corrupt" => ("图像已损坏", "corrupt image"),
        "unreadable" => ("无法读取", "unreadable"),
        "multiple_business_numbers" => (
            "同一页有多个业务流水号",
            "several business numbers on one page",
        ),
        "business_number_in_other_batch" => (
            "业务流水号已在其他未归档批次中使用",
            "business number used in another open batch",
        ),
        "business_number_repeated" => (
            "业务流水号在本批次中重复出现",
            "business number repeated in this batch",
        ),
        "no_business_number" => (
            "业务件没有业务流水号",
            "business file without business number",
        ),
        "missing_metadata" => (
            "业务件缺少必填著录项",
            "business file lacks required metadata",
        ),
        "missing_document" => (
            "业务件材料清单未核对（缺件需说明）",
            "required documents not checked off",
        ),
        other => (other, other),
    };
    lang.pick(zh, en).to_owned()
}

pub fn state_label(lang: Lang, state: &str) -> String {
    let zh = match state {
        "open" => "扫描中",
        "scanned" => "已扫描",
        "in_qc" => "质检中",
        "rework" => "返工",
        "accepted" => "已通过",
        "syncing" => "同步中",
        "archived" => "已归档",
        other => other,
    };
    lang.pick(zh, state).to_owned()
}
