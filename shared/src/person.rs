//! Person ids: the 18-character citizen identity number (公民身份号码,
//! GB 11643-1999), which is also the social security number (社会保障号码).
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A validated 18-character identity number: 17 digits and a check
/// character (`0`–`9` or `X`, ISO 7064 MOD 11-2). Stored upper-case.
///
/// The 15-digit numbers issued before 1999 have no check character; they
/// are refused (the business systems converted them long ago), so a typo
/// cannot slip through as an "old" number.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersonId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParsePersonIdError {
    #[error("an identity number has 18 characters, not {0}")]
    Length(usize),
    #[error("an identity number is 17 digits and a check character (digit or X)")]
    Characters,
    #[error("the check character is {found}, but the first 17 digits give {expected}")]
    Checksum { found: char, expected: char },
    #[error("the birth date {0} in the identity number is not a date")]
    BirthDate(String),
}

/// Weights of the 17 digits, 2^(17-i) mod 11.
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character for each remainder of the weighted sum mod 11.
const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

impl PersonId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The check character the first 17 digits call for.
    pub fn check_character(digits: &str) -> Option<char> {
        if digits.len() != 17 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let sum: u32 = digits
            .bytes()
            .zip(WEIGHTS)
            .map(|(b, w)| u32::from(b - b'0') * w)
            .sum();
        Some(CHECK[(sum % 11) as usize])
    }

    /// The birth date the number carries, as `YYYYMMDD`.
    pub fn birth_date(&self) -> &str {
        &self.0[6..14]
    }
}

fn valid_date(yyyymmdd: &str) -> bool {
    let (Ok(year), Ok(month), Ok(day)) = (
        yyyymmdd[..4].parse::<u32>(),
        yyyymmdd[4..6].parse::<u32>(),
        yyyymmdd[6..].parse::<u32>(),
    ) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1850..=2200).contains(&year) && (1..=days).contains(&day)
}

impl FromStr for PersonId {
    type Err = ParsePersonIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim().to_ascii_uppercase();
        let count = text.chars().count();
        if count != 18 {
            return Err(ParsePersonIdError::Length(count));
        }
        let (digits, check) = text.split_at(17);
        if !digits.bytes().all(|b| b.is_ascii_digit())
            || !check.bytes().all(|b| b.is_ascii_digit() || b == b'X')
        {
            return Err(ParsePersonIdError::Characters);
        }
        let expected = Self::check_character(digits).ok_or(ParsePersonIdError::Characters)?;
        let found = check.chars().next().ok_or(ParsePersonIdError::Characters)?;
        if found != expected {
            return Err(ParsePersonIdError::Checksum { found, expected });
        }
        if !valid_date(&text[6..14]) {
            return Err(ParsePersonIdError::BirthDate(text[6..14].to_owned()));
        }
        Ok(Self(text))
    }
}

impl fmt::Display for PersonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PersonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonId({})", self.0)
    }
}

impl Serialize for PersonId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PersonId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends the right check character to 17 digits.
    fn complete(digits: &str) -> String {
        format!("{digits}{}", PersonId::check_character(digits).unwrap())
    }

    #[test]
    fn the_standard_example_validates() {
        // The worked example of GB 11643-1999.
        let id: PersonId = "11010519491231002X".parse().unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
        assert_eq!(id.birth_date(), "19491231");
        // Lower-case x and surrounding blanks are accepted and normalised.
        let id: PersonId = " 11010519491231002x ".parse().unwrap();
        assert_eq!(id.to_string(), "11010519491231002X");
    }

    #[test]
    fn a_wrong_check_character_is_refused_with_the_right_one() {
        assert_eq!(
            "110105194912310021".parse::<PersonId>(),
            Err(ParsePersonIdError::Checksum {
                found: '1',
                expected: 'X'
            })
        );
        // One mistyped digit changes the check character.
        let good = complete("33010619800101123");
        let mut typo = good.clone().into_bytes();
        typo[10] = if typo[10] == b'9' { b'8' } else { typo[10] + 1 };
        let typo = String::from_utf8(typo).unwrap();
        assert!(good.parse::<PersonId>().is_ok());
        assert!(matches!(
            typo.parse::<PersonId>(),
            Err(ParsePersonIdError::Checksum { .. })
        ));
    }

    #[test]
    fn malformed_numbers_say_what_is_wrong() {
        assert_eq!(
            "330106800101123".parse::<PersonId>(),
            Err(ParsePersonIdError::Length(15))
        );
        assert_eq!(
            "3301061980010112A3".parse::<PersonId>(),
            Err(ParsePersonIdError::Characters)
        );
        let bad_date = complete("33010619801301123");
        assert_eq!(
            bad_date.parse::<PersonId>(),
            Err(ParsePersonIdError::BirthDate("19801301".into()))
        );
        let leap = complete("33010620000229123");
        assert!(leap.parse::<PersonId>().is_ok());
        let not_leap = complete("33010619000229123");
        assert!(not_leap.parse::<PersonId>().is_err());
    }
}
