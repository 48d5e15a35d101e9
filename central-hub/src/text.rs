//! Operator-facing text in Simplified Chinese (default) and English.
//!
//! Only what a person reads is translated; JSON output, logs and error codes
//! stay in English so that scripts and support staff see stable words.
use clap::ValueEnum;
use dangan_sync::wire::ReconcileState;

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

    pub fn is_zh(self) -> bool {
        self == Lang::Zh
    }
}

pub fn reconcile_state_label(lang: Lang, state: ReconcileState) -> &'static str {
    match state {
        ReconcileState::Queued => lang.pick("排队中", "queued"),
        ReconcileState::InFlight => lang.pick("传输中", "in flight"),
        ReconcileState::Archived => lang.pick("已归档", "archived"),
        ReconcileState::Divergent => lang.pick("不一致", "divergent"),
    }
}

pub fn edge_state_label(lang: Lang, state: &str) -> String {
    let zh = match state {
        "queued" => "排队",
        "syncing" => "同步中",
        "archived" => "已归档",
        other => other,
    };
    lang.pick(zh, state).to_owned()
}
