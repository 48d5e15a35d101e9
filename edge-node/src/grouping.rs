//! Grouping pages into business files by their barcodes.
//!
//! Pure decisions, no storage: given the business file that is open and the
//! codes found on the next page, say where the page goes. The rules (DESIGN.md
//! "Ingest", and the issue that introduced them):
//! - a separator sheet opens a new business file and is itself its first
//!   page, flagged; if it also carries a business number, the file takes it;
//! - a business-number barcode opens a file linked to that number, unless it
//!   repeats the number of the open file (the page continues it), or the open
//!   file was opened by a separator and has no number yet (the file takes it:
//!   the form behind a separator sheet names the file the sheet opened);
//! - any other page continues the open file; pages before any number form a
//!   file whose number is null;
//! - two different business numbers on one page: the first in reading order
//!   is used and the page is flagged as an exception.
use crate::barcode::Barcode;
use crate::config::GroupingRules;

/// What a barcode's text means, by the configured rules tried in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Separator,
    Label,
    BusinessNumber,
    Other,
}

pub fn classify(rules: &GroupingRules, text: &str) -> Role {
    if rules.separator.is_match(text) {
        Role::Separator
    } else if rules.label.is_match(text) {
        Role::Label
    } else if rules.business_number.is_match(text) {
        Role::BusinessNumber
    } else {
        Role::Other
    }
}

/// The codes of one page, sorted out by role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageCodes {
    pub separator: bool,
    /// Box and volume labels, in reading order.
    pub labels: Vec<String>,
    /// Distinct business numbers, in reading order.
    pub business_numbers: Vec<String>,
}

impl PageCodes {
    pub fn from_barcodes(rules: &GroupingRules, barcodes: &[Barcode]) -> Self {
        let mut codes = Self::default();
        for barcode in barcodes {
            match classify(rules, &barcode.text) {
                Role::Separator => codes.separator = true,
                Role::Label => push_distinct(&mut codes.labels, &barcode.text),
                Role::BusinessNumber => push_distinct(&mut codes.business_numbers, &barcode.text),
                Role::Other => {}
            }
        }
        codes
    }
}

fn push_distinct(list: &mut Vec<String>, text: &str) {
    if !list.iter().any(|t| t == text) {
        list.push(text.to_owned());
    }
}

/// Why a business file was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opener {
    /// The first pages of a batch, before any barcode said anything.
    Start,
    Separator,
    BusinessNumber,
}

impl Opener {
    pub fn as_str(self) -> &'static str {
        match self {
            Opener::Start => "start",
            Opener::Separator => "separator",
            Opener::BusinessNumber => "business_number",
        }
    }

    pub fn parse(text: &str) -> Self {
        match text {
            "separator" => Opener::Separator,
            "business_number" => Opener::BusinessNumber,
            _ => Opener::Start,
        }
    }
}

/// The business file pages currently go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFile {
    pub business_number: Option<String>,
    pub opened_by: Opener,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// The page joins the open file.
    Continue,
    /// The page joins the open file, which takes this business number.
    LinkOpen { business_number: String },
    /// The page opens a new file.
    OpenNew {
        business_number: Option<String>,
        opened_by: Opener,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub placement: Placement,
    /// Set when the page carries more than one business number: all of them,
    /// the first (used) included.
    pub multiple_numbers: Option<Vec<String>>,
}

pub fn place(open: Option<&OpenFile>, codes: &PageCodes) -> Decision {
    let multiple_numbers =
        (codes.business_numbers.len() > 1).then(|| codes.business_numbers.clone());
    let number = codes.business_numbers.first().cloned();
    let placement = if codes.separator {
        Placement::OpenNew {
            business_number: number,
            opened_by: Opener::Separator,
        }
    } else if let Some(number) = number {
        match open {
            Some(file) if file.business_number.as_deref() == Some(number.as_str()) => {
                Placement::Continue
            }
            Some(OpenFile {
                business_number: None,
                opened_by: Opener::Separator,
            }) => Placement::LinkOpen {
                business_number: number,
            },
            _ => Placement::OpenNew {
                business_number: Some(number),
                opened_by: Opener::BusinessNumber,
            },
        }
    } else if open.is_some() {
        Placement::Continue
    } else {
        Placement::OpenNew {
            business_number: None,
            opened_by: Opener::Start,
        }
    };
    Decision {
        placement,
        multiple_numbers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn rules() -> GroupingRules {
        GroupingRules {
            separator: Regex::new("^PATCHT$").unwrap(),
            label: Regex::new("^(BOX|VOL)-").unwrap(),
            business_number: Regex::new("^[0-9A-Z][0-9A-Z-]{7,31}$").unwrap(),
        }
    }

    fn codes(texts: &[&str]) -> PageCodes {
        let barcodes: Vec<Barcode> = texts
            .iter()
            .map(|t| Barcode {
                format: crate::barcode::Symbology::Code128,
                text: (*t).to_owned(),
                position: (0, 0),
            })
            .collect();
        PageCodes::from_barcodes(&rules(), &barcodes)
    }

    /// Runs pages through `place` and returns the files as (number, pages).
    fn group(pages: &[&[&str]]) -> Vec<(Option<String>, usize)> {
        let mut files: Vec<(OpenFile, usize)> = Vec::new();
        for page in pages {
            let decision = place(files.last().map(|(f, _)| f), &codes(page));
            match decision.placement {
                Placement::Continue => files.last_mut().unwrap().1 += 1,
                Placement::LinkOpen { business_number } => {
                    let last = files.last_mut().unwrap();
                    last.0.business_number = Some(business_number);
                    last.1 += 1;
                }
                Placement::OpenNew {
                    business_number,
                    opened_by,
                } => files.push((
                    OpenFile {
                        business_number,
                        opened_by,
                    },
                    1,
                )),
            }
        }
        files
            .into_iter()
            .map(|(f, n)| (f.business_number, n))
            .collect()
    }

    #[test]
    fn rules_are_tried_in_order() {
        let rules = rules();
        assert_eq!(classify(&rules, "PATCHT"), Role::Separator);
        assert_eq!(classify(&rules, "BOX-00000001"), Role::Label);
        assert_eq!(classify(&rules, "VOL-2026-0001"), Role::Label);
        assert_eq!(classify(&rules, "YW2026000123"), Role::BusinessNumber);
        assert_eq!(
            classify(&rules, "https://example.org/form?id=1"),
            Role::Other
        );
        assert_eq!(classify(&rules, "short"), Role::Other);
    }

    #[test]
    fn separators_and_form_numbers_group_pages() {
        let files = group(&[
            &[],
            &["PATCHT"],
            &["YW2026000001"],
            &[],
            &["YW2026000001"],
            &["PATCHT"],
            &["YW2026000002"],
            &["YW2026000003"],
            &["BOX-00000001"],
            &["https://example.org"],
        ]);
        assert_eq!(
            files,
            vec![
                (None, 1),
                (Some("YW2026000001".into()), 4),
                (Some("YW2026000002".into()), 2),
                (Some("YW2026000003".into()), 3),
            ]
        );
    }

    #[test]
    fn a_separator_after_a_numbered_file_opens_an_unnumbered_one() {
        let files = group(&[
            &["YW2026000001"],
            &["PATCHT"],
            &[],
            &["PATCHT", "YW2026000009"],
        ]);
        assert_eq!(
            files,
            vec![
                (Some("YW2026000001".into()), 1),
                (None, 2),
                (Some("YW2026000009".into()), 1)
            ]
        );
    }

    #[test]
    fn two_numbers_on_a_page_use_the_first_and_flag_it() {
        let decision = place(None, &codes(&["YW2026000001", "YW2026000002"]));
        assert_eq!(
            decision.multiple_numbers,
            Some(vec!["YW2026000001".to_owned(), "YW2026000002".to_owned()])
        );
        assert_eq!(
            decision.placement,
            Placement::OpenNew {
                business_number: Some("YW2026000001".into()),
                opened_by: Opener::BusinessNumber
            }
        );
        assert_eq!(
            place(None, &codes(&["YW2026000001", "YW2026000001"])).multiple_numbers,
            None
        );
    }
}
