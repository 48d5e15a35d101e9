use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The code of an organisation: a city, a district or county, or a street office.
///
/// Codes follow the national administrative division code (GB/T 2260): six
/// digits for a city or district (`330100`, `330106`), extended with three more
/// digits for a street office (`330106001`). The level is read from the code.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgCode(String);

/// The level of an organisation in the city → district → street office tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgLevel {
    City,
    District,
    StreetOffice,
}

impl OrgCode {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn level(&self) -> OrgLevel {
        if self.0.len() == 9 {
            OrgLevel::StreetOffice
        } else if self.0.ends_with("00") {
            OrgLevel::City
        } else {
            OrgLevel::District
        }
    }
}

impl fmt::Display for OrgCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OrgCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrgCode({})", self.0)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "not an organisation code: {0:?} (expected 6 digits for a city or district, e.g. 330106, or 9 for a street office)"
)]
pub struct ParseOrgCodeError(String);

impl FromStr for OrgCode {
    type Err = ParseOrgCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = matches!(s.len(), 6 | 9)
            && s.bytes().all(|b| b.is_ascii_digit())
            && !s.starts_with("00");
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseOrgCodeError(s.to_owned()))
        }
    }
}

impl Serialize for OrgCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for OrgCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_levels() {
        assert_eq!("330100".parse::<OrgCode>().unwrap().level(), OrgLevel::City);
        assert_eq!(
            "330106".parse::<OrgCode>().unwrap().level(),
            OrgLevel::District
        );
        assert_eq!(
            "330106001".parse::<OrgCode>().unwrap().level(),
            OrgLevel::StreetOffice
        );
    }

    #[test]
    fn rejects_malformed_codes() {
        for bad in ["", "33010", "3301060", "33010a", "000000", "３３０１０６"] {
            assert!(bad.parse::<OrgCode>().is_err(), "{bad} accepted");
        }
    }
}
