//! Archive classification: the categories (档案门类) of social-insurance
//! business archives and retention periods (保管期限).
use std::fmt;
use std::str::FromStr;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

/// The category of a business type's archives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// 管理类
    Management,
    /// 征缴类
    Collection,
    /// 记录类
    Records,
    /// 支付类
    Payment,
    /// 其他类
    Other,
}

impl Category {
    pub const ALL: [Category; 5] = [
        Category::Management,
        Category::Collection,
        Category::Records,
        Category::Payment,
        Category::Other,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Category::Management => "management",
            Category::Collection => "collection",
            Category::Records => "records",
            Category::Payment => "payment",
            Category::Other => "other",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Category::Management => "管理类",
            Category::Collection => "征缴类",
            Category::Records => "记录类",
            Category::Payment => "支付类",
            Category::Other => "其他类",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown archive category {0:?} (one of management, collection, records, payment, other)")]
pub struct ParseCategoryError(String);

impl FromStr for Category {
    type Err = ParseCategoryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Category::ALL
            .into_iter()
            .find(|c| c.code() == text || c.label_zh() == text)
            .ok_or_else(|| ParseCategoryError(text.to_owned()))
    }
}

/// How long a business file is kept: permanently, or a number of years
/// counted from 1 January of the year after the file's date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Retention {
    Permanent,
    Years(u16),
}

/// The periods the archive rules allow.
pub const RETENTION_YEARS: [u16; 4] = [10, 30, 50, 100];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown retention period {0:?} (permanent, or 10, 30, 50 or 100 years)")]
pub struct ParseRetentionError(String);

impl Retention {
    /// The first day the file is no longer due to be kept: 1 January of the
    /// year `years + 1` after the year of `date`. `None` when permanent.
    ///
    /// A file dated 2020-06-15 kept 30 years is due until 2050-12-31; it
    /// may be appraised for disposal from 2051-01-01.
    pub fn expires(self, date: Date) -> Option<Date> {
        match self {
            Retention::Permanent => None,
            Retention::Years(years) => {
                let year = i32::from(date.year()) + 1 + i32::from(years);
                i16::try_from(year)
                    .ok()
                    .and_then(|year| Date::new(year, 1, 1).ok())
            }
        }
    }

    /// `permanent` or the number of years, as stored and shown in JSON.
    pub fn code(self) -> String {
        match self {
            Retention::Permanent => "permanent".to_owned(),
            Retention::Years(years) => years.to_string(),
        }
    }

    pub fn label_zh(self) -> String {
        match self {
            Retention::Permanent => "永久".to_owned(),
            Retention::Years(years) => format!("{years}年"),
        }
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code())
    }
}

impl FromStr for Retention {
    type Err = ParseRetentionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if trimmed == "permanent" || trimmed == "永久" {
            return Ok(Retention::Permanent);
        }
        let number = trimmed.strip_suffix('年').unwrap_or(trimmed);
        number
            .parse::<u16>()
            .ok()
            .filter(|years| RETENTION_YEARS.contains(years))
            .map(Retention::Years)
            .ok_or_else(|| ParseRetentionError(text.to_owned()))
    }
}

impl Serialize for Retention {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Retention::Permanent => serializer.serialize_str("permanent"),
            Retention::Years(years) => serializer.serialize_u16(*years),
        }
    }
}

impl<'de> Deserialize<'de> for Retention {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Years(u64),
        }
        let text = match Raw::deserialize(deserializer)? {
            Raw::Text(text) => text,
            Raw::Years(years) => years.to_string(),
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn retention_counts_from_the_first_of_january_after_the_file_date() {
        let thirty: Retention = "30".parse().unwrap();
        assert_eq!(thirty.expires(date(2020, 6, 15)), Some(date(2051, 1, 1)));
        // The first and last day of a year give the same answer.
        assert_eq!(thirty.expires(date(2020, 1, 1)), Some(date(2051, 1, 1)));
        assert_eq!(thirty.expires(date(2020, 12, 31)), Some(date(2051, 1, 1)));
        let ten: Retention = "10年".parse().unwrap();
        assert_eq!(ten.expires(date(1999, 3, 2)), Some(date(2010, 1, 1)));
        assert_eq!(Retention::Permanent.expires(date(2020, 6, 15)), None);
        assert_eq!("永久".parse::<Retention>(), Ok(Retention::Permanent));
    }

    #[test]
    fn only_the_allowed_periods_parse() {
        for bad in ["20", "0", "-10", "forever", ""] {
            assert!(bad.parse::<Retention>().is_err(), "{bad}");
        }
        let json: Vec<Retention> = serde_json::from_str(r#"["permanent", 50, "100"]"#).unwrap();
        assert_eq!(
            json,
            vec![
                Retention::Permanent,
                Retention::Years(50),
                Retention::Years(100)
            ]
        );
        assert_eq!(
            serde_json::to_string(&json).unwrap(),
            r#"["permanent",50,100]"#
        );
    }

    #[test]
    fn categories_parse_by_code_or_chinese_name() {
        assert_eq!("征缴类".parse::<Category>(), Ok(Category::Collection));
        assert_eq!("payment".parse::<Category>(), Ok(Category::Payment));
        assert!("misc".parse::<Category>().is_err());
        for category in Category::ALL {
            assert_eq!(category.code().parse::<Category>(), Ok(category));
        }
    }
}
