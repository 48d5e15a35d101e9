//! Business-type templates (业务类型模板, a capture product's "batch
//! class"): per business type its archive category and retention, the
//! documents and metadata a complete business file has, the barcode rules,
//! the scanning minimums and the QC sampling rule.
//!
//! The template type itself is [`dangan_shared::template`] (the hub
//! validates and publishes the same type). Templates are versioned data.
//! The shipped defaults (`shared/seed/templates.toml`) are version 1; an
//! imported set (edited locally, or sent by the hub through the dictionary
//! feed) becomes the next version of each template it changes. A batch is
//! bound to the version current when its business type was set, and keeps
//! it: a template change never rewrites a batch already scanned or archived.
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::barcode::{self, BarcodeSettings, Symbology};
use crate::config::GroupingRules;
use crate::store::{StoreError, now};

pub use dangan_shared::template::{
    Band, BarcodeRules, ColourRule, METADATA_FIELDS, SEED, Template, parse,
};

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error(transparent)]
    Template(#[from] dangan_shared::template::TemplateError),
    #[error("no template for business type {0:?}")]
    Unknown(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TemplateError {
    fn parse(message: impl Into<String>) -> Self {
        TemplateError::Template(dangan_shared::template::TemplateError::Parse(
            message.into(),
        ))
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
    let report = import_within(&tx, templates, source)?;
    tx.commit().map_err(StoreError::from)?;
    Ok(report)
}

/// [`import`] within a transaction the caller holds (the dictionary feed
/// applies templates and moves its cursor together).
pub fn import_within(
    conn: &Connection,
    templates: &[Template],
    source: &str,
) -> Result<ImportReport, TemplateError> {
    let mut report = ImportReport::default();
    for template in templates {
        template.validate()?;
        let current = current(conn, &template.business_type)?;
        if current.as_ref().is_some_and(|c| c.template == *template) {
            report.unchanged.push(template.business_type.clone());
            continue;
        }
        let version = current.map_or(1, |c| c.version + 1);
        let body =
            serde_json::to_string(template).map_err(|err| TemplateError::parse(err.to_string()))?;
        conn.execute(
            "INSERT INTO templates(business_type, version, body, source, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![template.business_type, version, body, source, now()],
        )
        .map_err(StoreError::from)?;
        report.updated.push(template.business_type.clone());
    }
    Ok(report)
}

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(u32, String, String, String)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn decode(
    (version, body, source, recorded_at): (u32, String, String, String),
) -> Result<Versioned, TemplateError> {
    let template: Template = serde_json::from_str(&body)
        .map_err(|err| TemplateError::parse(format!("stored template unreadable: {err}")))?;
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
    fn templates_name_exactly_the_symbologies_the_decoder_knows() {
        let known: Vec<&str> = Symbology::ALL.map(Symbology::as_str).to_vec();
        assert_eq!(known, dangan_shared::template::SYMBOLOGIES.to_vec());
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
}
