//! Business-type templates (业务类型模板, a capture product's "batch
//! class"): per business type its archive category and retention, the
//! documents and metadata a complete business file has, the barcode rules,
//! the scanning minimums and the QC sampling rule.
//!
//! The hub holds the authoritative, versioned set and feeds it to the edges
//! (see [`crate::dictionary`]); an edge stores each version it receives and
//! binds every batch to the version current when its business type was set.
//! The shipped defaults ([`SEED`]) are version 1 on both sides.
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::qc::SamplingRule;
use crate::{Category, Retention};

/// The shipped defaults (TOML; the format `parse` reads).
pub const SEED: &str = include_str!("../seed/templates.toml");

/// The barcode symbologies a template may name (the edge's decoder knows
/// each of them).
pub const SYMBOLOGIES: [&str; 5] = ["code128", "code39", "qr", "data_matrix", "pdf417"];

/// Metadata fields a template may require of a business file.
pub const METADATA_FIELDS: [&str; 5] = [
    "person_id",
    "person_name",
    "employer_id",
    "business_date",
    "organisation",
];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("templates: {0}")]
    Parse(String),
    #[error("template {business_type}: {message}")]
    Invalid {
        business_type: String,
        message: String,
    },
}

/// Which pages' colour modes a template accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColourRule {
    /// Gray or colour (a bilevel scan loses stamps and faint writing).
    Gray,
    /// Colour only (stamps, receipts).
    Colour,
    /// Anything, bilevel included.
    Any,
}

impl ColourRule {
    /// Whether a page of this colour mode (`bilevel`, `gray` or `colour`,
    /// as `pages.colour` records it) is accepted.
    pub fn accepts(self, colour: &str) -> bool {
        match self {
            ColourRule::Gray => colour == "gray" || colour == "colour",
            ColourRule::Colour => colour == "colour",
            ColourRule::Any => true,
        }
    }

    /// What the rule accepts, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            ColourRule::Gray => "gray or colour",
            ColourRule::Colour => "colour only",
            ColourRule::Any => "any colour mode",
        }
    }
}

/// Barcode rules of a business type, over the edge's `[barcodes]` and
/// `[grouping]` settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BarcodeRules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formats: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_bands: Option<Vec<Band>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub top: f64,
    pub bottom: f64,
}

/// One business type's template (one version of it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub business_type: String,
    pub name: String,
    pub category: Category,
    pub retention: Retention,
    #[serde(default)]
    pub required_documents: Vec<String>,
    #[serde(default)]
    pub required_metadata: Vec<String>,
    #[serde(default = "default_min_dpi")]
    pub min_dpi: u32,
    #[serde(default = "default_colour")]
    pub colour: ColourRule,
    #[serde(default)]
    pub barcodes: BarcodeRules,
    #[serde(default)]
    pub qc: SamplingRule,
}

fn default_min_dpi() -> u32 {
    200
}

fn default_colour() -> ColourRule {
    ColourRule::Gray
}

/// A template file: a set of templates.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    #[allow(dead_code)]
    version: u32,
    #[serde(rename = "template", default)]
    templates: Vec<Template>,
}

impl Template {
    /// An error about this template.
    pub fn invalid(&self, message: impl Into<String>) -> TemplateError {
        TemplateError::Invalid {
            business_type: self.business_type.clone(),
            message: message.into(),
        }
    }

    pub fn validate(&self) -> Result<(), TemplateError> {
        let code_ok = !self.business_type.is_empty()
            && self.business_type.len() <= 32
            && self
                .business_type
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !code_ok {
            return Err(
                self.invalid("the business type code must be 1–32 letters, digits, '-' or '_'")
            );
        }
        if self.name.trim().is_empty() {
            return Err(self.invalid("the name is empty"));
        }
        for field in &self.required_metadata {
            if !METADATA_FIELDS.contains(&field.as_str()) {
                return Err(self.invalid(format!(
                    "unknown required metadata {field:?} (one of {})",
                    METADATA_FIELDS.join(", ")
                )));
            }
        }
        if !(50..=1200).contains(&self.min_dpi) {
            return Err(self.invalid(format!("min_dpi {} is not 50–1200", self.min_dpi)));
        }
        self.qc
            .validate()
            .map_err(|err| self.invalid(err.to_string()))?;
        if let Some(formats) = &self.barcodes.formats {
            if formats.is_empty() {
                return Err(self.invalid(
                    "barcodes.formats is empty: no barcode could be found, so no page could be grouped",
                ));
            }
            for format in formats {
                if !SYMBOLOGIES.contains(&format.as_str()) {
                    return Err(self.invalid(format!(
                        "barcodes.formats: unknown symbology {format:?} (one of {})",
                        SYMBOLOGIES.join(", ")
                    )));
                }
            }
        }
        for band in self.barcodes.fast_bands.iter().flatten() {
            if !(0.0 <= band.top && band.top < band.bottom && band.bottom <= 1.0) {
                return Err(self.invalid(format!(
                    "barcodes.fast_bands: {{ top = {}, bottom = {} }} is not a strip of the page \
                     (0 ≤ top < bottom ≤ 1)",
                    band.top, band.bottom
                )));
            }
        }
        for (name, pattern) in [
            ("business_number", &self.barcodes.business_number),
            ("separator", &self.barcodes.separator),
        ] {
            if let Some(pattern) = pattern {
                regex::Regex::new(pattern).map_err(|err| {
                    self.invalid(format!(
                        "barcodes.{name} is not a regular expression: {err}"
                    ))
                })?;
            }
        }
        Ok(())
    }
}

/// Parses and validates a template file (TOML, the seed's format).
pub fn parse(text: &str) -> Result<Vec<Template>, TemplateError> {
    let file: TemplateFile =
        toml::from_str(text).map_err(|err| TemplateError::Parse(err.to_string()))?;
    let mut seen = BTreeSet::new();
    for template in &file.templates {
        template.validate()?;
        if !seen.insert(template.business_type.clone()) {
            return Err(template.invalid("appears twice in the file"));
        }
    }
    Ok(file.templates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_parses_and_covers_every_category() {
        let templates = parse(SEED).expect("seed");
        assert!(templates.len() >= 5);
        for category in Category::ALL {
            assert!(
                templates.iter().any(|t| t.category == category),
                "no default template of category {category}"
            );
        }
        assert!(
            templates
                .iter()
                .any(|t| t.retention == Retention::Permanent)
        );
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        let bad = SEED.replacen("min_dpi = 200", "min_dpi = 20", 1);
        assert!(parse(&bad).unwrap_err().to_string().contains("min_dpi 20"));
        let bad = SEED.replacen("\"employer_id\"", "\"shoe_size\"", 1);
        assert!(parse(&bad).unwrap_err().to_string().contains("shoe_size"));
        let bad = SEED.replacen("retention = 30", "retention = 25", 1);
        assert!(parse(&bad).unwrap_err().to_string().contains("25"));
        let bad = SEED.replacen("business_type = \"A02\"", "business_type = \"A01\"", 1);
        assert!(parse(&bad).unwrap_err().to_string().contains("twice"));
        let bad = SEED.replacen(
            "colour = \"gray\"\n",
            "colour = \"gray\"\nbarcodes = { formats = [\"ean13\"] }\n",
            1,
        );
        assert!(parse(&bad).unwrap_err().to_string().contains("ean13"));
    }

    #[test]
    fn colour_rules_accept_what_they_say() {
        assert!(ColourRule::Gray.accepts("gray") && ColourRule::Gray.accepts("colour"));
        assert!(!ColourRule::Gray.accepts("bilevel"));
        assert!(ColourRule::Colour.accepts("colour") && !ColourRule::Colour.accepts("gray"));
        assert!(ColourRule::Any.accepts("bilevel"));
    }
}
