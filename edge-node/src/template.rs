//! Business-type templates (业务类型模板, a capture product's "batch
//! class"): per business type its archive category and retention, the
//! documents and metadata a complete business file has, the barcode rules,
//! the scanning minimums and the QC sampling rule.
//!
//! Templates are versioned data. The shipped defaults (`seed/templates.toml`)
//! are version 1; an imported set (edited locally, or later sent by the
//! hub) becomes the next version of each template it changes. A batch is
//! bound to the version current when its business type was set, and keeps
//! it: a template change never rewrites a batch already scanned or archived.
use std::collections::BTreeSet;

use dangan_shared::qc::SamplingRule;
use dangan_shared::{Category, Retention};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::barcode::{self, BarcodeSettings, Symbology};
use crate::config::GroupingRules;
use crate::store::{StoreError, now};

/// The shipped defaults.
pub const SEED: &str = include_str!("../seed/templates.toml");

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
    #[error("no template for business type {0:?}")]
    Unknown(String),
    #[error(transparent)]
    Store(#[from] StoreError),
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
    fn invalid(&self, message: impl Into<String>) -> TemplateError {
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
                symbology(format).ok_or_else(|| {
                    self.invalid(format!(
                        "barcodes.formats: unknown symbology {format:?} (one of {})",
                        Symbology::ALL.map(Symbology::as_str).join(", ")
                    ))
                })?;
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

fn symbology(name: &str) -> Option<Symbology> {
    Symbology::ALL.into_iter().find(|s| s.as_str() == name)
}

/// How a batch's pages are searched for barcodes and what the codes mean:
/// edge.toml's `[barcodes]` and `[grouping]`, with the bound template's
/// barcode rules over them.
#[derive(Debug, Clone)]
pub struct ScanRules {
    pub barcodes: BarcodeSettings,
    pub grouping: GroupingRules,
}

impl ScanRules {
    /// edge.toml's settings alone (a batch without a business type).
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            barcodes: config.barcodes.clone(),
            grouping: config.grouping.clone(),
        }
    }

    /// These rules with a template's barcode rules over them: every field
    /// the template sets wins, the others stay. The box and volume label
    /// pattern is the edge's alone.
    pub fn with_template(mut self, template: &Template) -> Result<Self, TemplateError> {
        let rules = &template.barcodes;
        if let Some(formats) = &rules.formats {
            self.barcodes.formats = formats
                .iter()
                .map(|name| {
                    symbology(name).ok_or_else(|| {
                        template.invalid(format!("barcodes.formats: unknown symbology {name:?}"))
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(bands) = &rules.fast_bands {
            self.barcodes.fast_bands = bands
                .iter()
                .map(|band| barcode::Band {
                    top: band.top as f32,
                    bottom: band.bottom as f32,
                })
                .collect();
        }
        let pattern = |name: &str, text: &str| {
            regex::Regex::new(text).map_err(|err| {
                template.invalid(format!(
                    "barcodes.{name} is not a regular expression: {err}"
                ))
            })
        };
        if let Some(text) = &rules.business_number {
            self.grouping.business_number = pattern("business_number", text)?;
        }
        if let Some(text) = &rules.separator {
            self.grouping.separator = pattern("separator", text)?;
        }
        Ok(self)
    }
}

/// The scan rules of a batch: edge.toml's, with the barcode rules of the
/// template version the batch is bound to (if any) over them.
pub fn scan_rules_for_batch(
    conn: &Connection,
    config: &crate::config::Config,
    batch_id: i64,
) -> Result<ScanRules, TemplateError> {
    let rules = ScanRules::from_config(config);
    match for_batch(conn, batch_id)? {
        Some(bound) => rules.with_template(&bound.template),
        None => Ok(rules),
    }
}

/// The template version a batch is bound to (None for a batch without a
/// business type).
pub fn for_batch(conn: &Connection, batch_id: i64) -> Result<Option<Versioned>, TemplateError> {
    let bound: Option<(Option<String>, Option<u32>)> = conn
        .query_row(
            "SELECT business_type, template_version FROM batches WHERE id = ?1",
            [batch_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(StoreError::from)?;
    match bound {
        Some((Some(kind), Some(number))) => {
            let found = version(conn, &kind, number)?;
            if found.is_none() {
                return Err(TemplateError::Store(StoreError::Corrupt(format!(
                    "a batch is bound to template {kind} version {number}, which is not stored"
                ))));
            }
            Ok(found)
        }
        _ => Ok(None),
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

/// A stored template version.
#[derive(Clone, Debug, Serialize)]
pub struct Versioned {
    pub version: u32,
    pub source: String,
    pub recorded_at: String,
    #[serde(flatten)]
    pub template: Template,
}

/// What an import changed.
#[derive(Debug, Default, Serialize)]
pub struct ImportReport {
    /// Business types that got a new version (new ones included).
    pub updated: Vec<String>,
    /// Business types whose template was identical to the current one.
    pub unchanged: Vec<String>,
}

/// Stores each template as the next version of its business type, unless
/// it equals the current version. One transaction.
pub fn import(
    conn: &mut Connection,
    templates: &[Template],
    source: &str,
) -> Result<ImportReport, TemplateError> {
    let tx = conn.transaction().map_err(StoreError::from)?;
    let mut report = ImportReport::default();
    for template in templates {
        template.validate()?;
        let current = current(&tx, &template.business_type)?;
        if current.as_ref().is_some_and(|c| c.template == *template) {
            report.unchanged.push(template.business_type.clone());
            continue;
        }
        let version = current.map_or(1, |c| c.version + 1);
        let body =
            serde_json::to_string(template).map_err(|err| TemplateError::Parse(err.to_string()))?;
        tx.execute(
            "INSERT INTO templates(business_type, version, body, source, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![template.business_type, version, body, source, now()],
        )
        .map_err(StoreError::from)?;
        report.updated.push(template.business_type.clone());
    }
    tx.commit().map_err(StoreError::from)?;
    Ok(report)
}

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(u32, String, String, String)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn decode(
    (version, body, source, recorded_at): (u32, String, String, String),
) -> Result<Versioned, TemplateError> {
    let template: Template = serde_json::from_str(&body)
        .map_err(|err| TemplateError::Parse(format!("stored template unreadable: {err}")))?;
    Ok(Versioned {
        version,
        source,
        recorded_at,
        template,
    })
}

/// The latest version of a business type's template.
pub fn current(conn: &Connection, business_type: &str) -> Result<Option<Versioned>, TemplateError> {
    let row = conn
        .query_row(
            "SELECT version, body, source, recorded_at FROM templates
             WHERE business_type = ?1 ORDER BY version DESC LIMIT 1",
            [business_type],
            from_row,
        )
        .optional()
        .map_err(StoreError::from)?;
    row.map(decode).transpose()
}

/// One version of a business type's template.
pub fn version(
    conn: &Connection,
    business_type: &str,
    version: u32,
) -> Result<Option<Versioned>, TemplateError> {
    let row = conn
        .query_row(
            "SELECT version, body, source, recorded_at FROM templates
             WHERE business_type = ?1 AND version = ?2",
            params![business_type, version],
            from_row,
        )
        .optional()
        .map_err(StoreError::from)?;
    row.map(decode).transpose()
}

/// The template version a batch is bound to (`batches.business_type` and
/// `template_version`), if it is bound to one.
pub fn bound(
    conn: &Connection,
    business_type: Option<&str>,
    version: Option<u32>,
) -> Result<Option<Template>, StoreError> {
    let (Some(kind), Some(number)) = (business_type, version) else {
        return Ok(None);
    };
    Ok(self::version(conn, kind, number)
        .map_err(|err| StoreError::Corrupt(err.to_string()))?
        .map(|v| v.template))
}

/// The current version of every template, by business type.
pub fn list(conn: &Connection) -> Result<Vec<Versioned>, TemplateError> {
    let mut statement = conn
        .prepare(
            "SELECT t.version, t.body, t.source, t.recorded_at FROM templates t
             WHERE t.version = (SELECT MAX(version) FROM templates
                                WHERE business_type = t.business_type)
             ORDER BY t.business_type",
        )
        .map_err(StoreError::from)?;
    let rows = statement
        .query_map([], from_row)
        .map_err(StoreError::from)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::from)?;
    rows.into_iter().map(decode).collect()
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
    fn template_barcode_rules_win_over_the_edge_settings() {
        let config = crate::config::Config::parse("", std::path::Path::new("edge.toml")).unwrap();
        let mut template = parse(SEED).unwrap().remove(0);
        let plain = ScanRules::from_config(&config)
            .with_template(&template)
            .unwrap();
        assert_eq!(plain.barcodes.formats, config.barcodes.formats);
        assert_eq!(
            plain.grouping.business_number.as_str(),
            config.grouping.business_number.as_str()
        );
        template.barcodes = BarcodeRules {
            formats: Some(vec!["data_matrix".into()]),
            fast_bands: Some(vec![Band {
                top: 0.5,
                bottom: 0.75,
            }]),
            business_number: Some("^ZZ[0-9]{4}$".into()),
            separator: None,
        };
        let merged = ScanRules::from_config(&config)
            .with_template(&template)
            .unwrap();
        assert_eq!(merged.barcodes.formats, vec![Symbology::DataMatrix]);
        assert_eq!(
            merged.barcodes.fast_bands,
            vec![barcode::Band {
                top: 0.5,
                bottom: 0.75
            }]
        );
        assert_eq!(merged.grouping.business_number.as_str(), "^ZZ[0-9]{4}$");
        // What the template leaves out stays as edge.toml says.
        assert_eq!(
            merged.grouping.separator.as_str(),
            config.grouping.separator.as_str()
        );
        assert_eq!(merged.barcodes.min_text_len, config.barcodes.min_text_len);
    }

    #[test]
    fn colour_rules_accept_what_they_say() {
        assert!(ColourRule::Gray.accepts("gray") && ColourRule::Gray.accepts("colour"));
        assert!(!ColourRule::Gray.accepts("bilevel"));
        assert!(ColourRule::Colour.accepts("colour") && !ColourRule::Colour.accepts("gray"));
        assert!(ColourRule::Any.accepts("bilevel"));
    }
}
