//! The common dictionaries (辅助管理) every district files by: archive
//! categories, retention periods and QC defect types.
//!
//! The hub holds them authoritative and versioned and feeds each new
//! version to the edges with the business-type templates. A dictionary
//! lists every code the software knows for its kind, each with its Chinese
//! and English label and whether it is in use: administrators rename
//! entries and retire or restore them, but cannot invent a code that no
//! edge would know how to act on (a new code is a software release).
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::qc::Defect;
use crate::{Category, RETENTION_YEARS, Retention};

/// Which dictionary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DictionaryKind {
    /// 档案门类
    Categories,
    /// 保管期限
    Retentions,
    /// 质检缺陷类型
    Defects,
}

impl DictionaryKind {
    pub const ALL: [DictionaryKind; 3] = [
        DictionaryKind::Categories,
        DictionaryKind::Retentions,
        DictionaryKind::Defects,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DictionaryKind::Categories => "categories",
            DictionaryKind::Retentions => "retentions",
            DictionaryKind::Defects => "defects",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            DictionaryKind::Categories => "档案门类",
            DictionaryKind::Retentions => "保管期限",
            DictionaryKind::Defects => "质检缺陷类型",
        }
    }

    /// The codes the software knows for this kind, in display order.
    pub fn known_codes(self) -> Vec<String> {
        match self {
            DictionaryKind::Categories => Category::ALL.iter().map(|c| c.code().into()).collect(),
            DictionaryKind::Retentions => std::iter::once(Retention::Permanent)
                .chain(RETENTION_YEARS.iter().map(|&y| Retention::Years(y)))
                .map(Retention::code)
                .collect(),
            DictionaryKind::Defects => Defect::ALL.iter().map(|d| d.code().into()).collect(),
        }
    }
}

impl fmt::Display for DictionaryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dictionary {0:?} (one of categories, retentions, defects)")]
pub struct ParseDictionaryKindError(String);

impl FromStr for DictionaryKind {
    type Err = ParseDictionaryKindError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        DictionaryKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text.trim())
            .ok_or_else(|| ParseDictionaryKindError(text.to_owned()))
    }
}

/// One entry of a dictionary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub code: String,
    /// The Chinese label (shown by default).
    pub zh: String,
    /// The English label.
    pub en: String,
    /// Whether the entry is in use; a retired one stays readable on old
    /// records but is offered for nothing new.
    #[serde(default = "active_by_default")]
    pub active: bool,
}

fn active_by_default() -> bool {
    true
}

/// One version of a dictionary's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dictionary {
    pub kind: DictionaryKind,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dictionary {kind}: {message}")]
pub struct DictionaryError {
    pub kind: DictionaryKind,
    pub message: String,
}

impl Dictionary {
    /// The shipped version 1 of a dictionary.
    pub fn builtin(kind: DictionaryKind) -> Self {
        let entries = match kind {
            DictionaryKind::Categories => Category::ALL
                .iter()
                .map(|c| entry(c.code(), c.label_zh(), category_en(*c)))
                .collect(),
            DictionaryKind::Retentions => std::iter::once(Retention::Permanent)
                .chain(RETENTION_YEARS.iter().map(|&y| Retention::Years(y)))
                .map(|r| {
                    let en = match r {
                        Retention::Permanent => "Permanent".to_owned(),
                        Retention::Years(years) => format!("{years} years"),
                    };
                    entry(&r.code(), &r.label_zh(), &en)
                })
                .collect(),
            DictionaryKind::Defects => Defect::ALL
                .iter()
                .map(|d| entry(d.code(), d.label_zh(), defect_en(*d)))
                .collect(),
        };
        Dictionary { kind, entries }
    }

    fn invalid(&self, message: impl Into<String>) -> DictionaryError {
        DictionaryError {
            kind: self.kind,
            message: message.into(),
        }
    }

    /// Checks that the dictionary lists every known code of its kind once,
    /// with both labels, and keeps at least one entry in use.
    pub fn validate(&self) -> Result<(), DictionaryError> {
        let known = self.kind.known_codes();
        let mut seen = BTreeSet::new();
        for entry in &self.entries {
            if !known.contains(&entry.code) {
                return Err(self.invalid(format!(
                    "unknown code {:?} (the codes are {}; a new code needs a new release)",
                    entry.code,
                    known.join(", ")
                )));
            }
            if !seen.insert(entry.code.as_str()) {
                return Err(self.invalid(format!("code {:?} appears twice", entry.code)));
            }
            if entry.zh.trim().is_empty() || entry.en.trim().is_empty() {
                return Err(self.invalid(format!(
                    "code {:?} needs both a Chinese and an English label",
                    entry.code
                )));
            }
            if entry.zh.chars().count() > 40 || entry.en.chars().count() > 60 {
                return Err(self.invalid(format!("the labels of {:?} are too long", entry.code)));
            }
        }
        let missing: Vec<&str> = known
            .iter()
            .map(String::as_str)
            .filter(|code| !seen.contains(code))
            .collect();
        if !missing.is_empty() {
            return Err(self.invalid(format!(
                "missing {} (retire an entry with \"active\": false instead of leaving it out)",
                missing.join(", ")
            )));
        }
        if !self.entries.iter().any(|e| e.active) {
            return Err(self.invalid("at least one entry must stay in use"));
        }
        Ok(())
    }

    /// The entry of `code`, if listed.
    pub fn get(&self, code: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.code == code)
    }

    /// Whether `code` is listed and in use.
    pub fn is_active(&self, code: &str) -> bool {
        self.get(code).is_some_and(|e| e.active)
    }
}

fn entry(code: &str, zh: &str, en: &str) -> Entry {
    Entry {
        code: code.to_owned(),
        zh: zh.to_owned(),
        en: en.to_owned(),
        active: true,
    }
}

fn category_en(category: Category) -> &'static str {
    match category {
        Category::Management => "Management",
        Category::Collection => "Contribution collection",
        Category::Records => "Records",
        Category::Payment => "Payment",
        Category::Other => "Other",
    }
}

fn defect_en(defect: Defect) -> &'static str {
    match defect {
        Defect::Skew => "Skewed",
        Defect::Blur => "Blurred",
        Defect::MissingPage => "Missing page",
        Defect::WrongOrder => "Wrong order",
        Defect::Blank => "Blank page",
        Defect::Cropped => "Cropped",
        Defect::Illegible => "Illegible",
        Defect::LowResolution => "Low resolution",
    }
}

/// Checks a template against the dictionaries in force: its category and
/// retention must be entries in use.
pub fn check_template(
    template: &crate::template::Template,
    categories: &Dictionary,
    retentions: &Dictionary,
) -> Result<(), crate::template::TemplateError> {
    let category = template.category.code();
    if !categories.is_active(category) {
        return Err(template.invalid(format!(
            "category {category} is retired in the categories dictionary"
        )));
    }
    let retention = template.retention.code();
    if !retentions.is_active(&retention) {
        return Err(template.invalid(format!(
            "retention {retention} is retired in the retentions dictionary"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_dictionaries_are_valid_and_complete() {
        for kind in DictionaryKind::ALL {
            let dictionary = Dictionary::builtin(kind);
            dictionary.validate().unwrap();
            assert_eq!(dictionary.entries.len(), kind.known_codes().len());
        }
        let retentions = Dictionary::builtin(DictionaryKind::Retentions);
        assert_eq!(retentions.get("permanent").unwrap().zh, "永久");
        assert_eq!(retentions.get("30").unwrap().zh, "30年");
    }

    #[test]
    fn a_bad_dictionary_is_refused_with_the_reason() {
        let mut defects = Dictionary::builtin(DictionaryKind::Defects);
        defects.entries[0].code = "coffee_stain".into();
        let err = defects.validate().unwrap_err().to_string();
        assert!(err.contains("coffee_stain"), "{err}");

        let mut defects = Dictionary::builtin(DictionaryKind::Defects);
        defects.entries.pop();
        let err = defects.validate().unwrap_err().to_string();
        assert!(err.contains("missing low_resolution"), "{err}");

        let mut defects = Dictionary::builtin(DictionaryKind::Defects);
        defects.entries[1].zh = " ".into();
        assert!(defects.validate().is_err());

        let mut categories = Dictionary::builtin(DictionaryKind::Categories);
        for entry in &mut categories.entries {
            entry.active = false;
        }
        assert!(categories.validate().is_err());
    }

    #[test]
    fn a_template_may_not_use_a_retired_entry() {
        let template = crate::template::parse(crate::template::SEED)
            .unwrap()
            .remove(0);
        let mut categories = Dictionary::builtin(DictionaryKind::Categories);
        let retentions = Dictionary::builtin(DictionaryKind::Retentions);
        check_template(&template, &categories, &retentions).unwrap();
        for entry in &mut categories.entries {
            if entry.code == template.category.code() {
                entry.active = false;
            }
        }
        let err = check_template(&template, &categories, &retentions).unwrap_err();
        assert!(err.to_string().contains("retired"), "{err}");
    }

    #[test]
    fn kinds_parse_from_their_names() {
        for kind in DictionaryKind::ALL {
            assert_eq!(kind.as_str().parse::<DictionaryKind>().unwrap(), kind);
        }
        assert!("colours".parse::<DictionaryKind>().is_err());
    }
}
