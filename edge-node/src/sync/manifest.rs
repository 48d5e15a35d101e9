//! Builds a batch's sync manifest from the pre-archive.
//!
//! The manifest is a pure function of the accepted batch (no clock reads,
//! rows in scan order), so rebuilding it after a restart gives the same
//! bytes and the same hash.
use std::collections::HashMap;

use dangan_sync::wire::{MANIFEST_FORMAT, Manifest, ManifestBarcode, ManifestFile, ManifestPage};
use rusqlite::params;

use dangan_shared::Retention;

use crate::store::{BarcodeView, BatchRow, Store, StoreError};
use crate::template::{self, Template};

/// The manifest of `batch`, which must have been accepted.
pub fn build(store: &Store, batch: &BatchRow) -> Result<Manifest, StoreError> {
    let conn = store.conn();
    let accepted_at: Option<String> = conn.query_row(
        "SELECT accepted_at FROM batches WHERE id = ?1",
        [batch.id],
        |row| row.get(0),
    )?;
    let accepted_at = accepted_at.ok_or_else(|| {
        StoreError::Corrupt(format!("batch {} has no acceptance time", batch.name))
    })?;
    // Category and retention are values in the manifest, taken from the
    // template version the batch is bound to, so the archive stays
    // self-describing whatever later versions say.
    let template_version: Option<u32> = conn.query_row(
        "SELECT template_version FROM batches WHERE id = ?1",
        [batch.id],
        |row| row.get(0),
    )?;
    let mut templates: HashMap<String, Option<Template>> = HashMap::new();
    if let (Some(kind), Some(version)) = (&batch.business_type, template_version) {
        let bound = template::version(conn, kind, version)
            .map_err(|err| StoreError::Corrupt(err.to_string()))?
            .map(|v| v.template);
        templates.insert(kind.clone(), bound);
    }
    let mut files: Vec<ManifestFile> = Vec::new();
    let mut index: HashMap<i64, usize> = HashMap::new();
    {
        let mut statement = conn.prepare(
            "SELECT id, seq, business_number, person_id, person_name, employer_id,
                    business_type, business_date, organisation
             FROM business_files WHERE batch_id = ?1 ORDER BY seq",
        )?;
        let mut rows = statement.query([batch.id])?;
        while let Some(row) = rows.next()? {
            let business_type: Option<String> = row
                .get::<_, Option<String>>(6)?
                .or(batch.business_type.clone());
            // A business file of another type than its batch (from the
            // index import) takes that type's current template.
            let template = match &business_type {
                Some(kind) => {
                    if !templates.contains_key(kind) {
                        let current = template::current(conn, kind)
                            .map_err(|err| StoreError::Corrupt(err.to_string()))?
                            .map(|v| v.template);
                        templates.insert(kind.clone(), current);
                    }
                    templates.get(kind).cloned().flatten()
                }
                None => None,
            };
            index.insert(row.get(0)?, files.len());
            files.push(ManifestFile {
                business_number: row.get(2)?,
                business_type,
                category: template.as_ref().map(|t| t.category.code().to_owned()),
                date: row.get(7)?,
                employer_id: row.get(5)?,
                organisation: row
                    .get::<_, Option<String>>(8)?
                    .unwrap_or_else(|| batch.district.clone()),
                pages: Vec::new(),
                person_id: row.get(3)?,
                person_name: row.get(4)?,
                retention: template.as_ref().map(|t| match t.retention {
                    Retention::Permanent => "permanent".to_owned(),
                    Retention::Years(years) => format!("{years}y"),
                }),
                seq: row.get(1)?,
            });
        }
    }
    let mut pages = 0u64;
    let mut sizes: HashMap<String, u64> = HashMap::new();
    let mut statement = conn.prepare(
        "SELECT p.business_file_id, p.seq, p.blob_id, x.size, x.format, p.colour, p.dpi,
                p.frame, p.width, p.height, p.separator, p.blank, p.barcodes, s.path
         FROM pages p JOIN blobs x ON x.id = p.blob_id JOIN sources s ON s.id = p.source_id
         WHERE p.batch_id = ?1 ORDER BY p.seq",
    )?;
    let mut rows = statement.query(params![batch.id])?;
    while let Some(row) = rows.next()? {
        let file: i64 = row.get(0)?;
        let blob_hex: String = row.get(2)?;
        let blob = blob_hex
            .parse()
            .map_err(|err: dangan_shared::ParseBlobIdError| StoreError::Corrupt(err.to_string()))?;
        let size: i64 = row.get(3)?;
        let barcodes: Vec<BarcodeView> = serde_json::from_str(&row.get::<_, String>(12)?)
            .map_err(|err| StoreError::Corrupt(format!("page barcodes: {err}")))?;
        let page = ManifestPage {
            barcodes: barcodes
                .into_iter()
                .map(|b| ManifestBarcode {
                    format: b.format,
                    text: b.text,
                })
                .collect(),
            blank: row.get(11)?,
            blob,
            colour: row.get(5)?,
            dpi: row.get(6)?,
            format: row.get(4)?,
            frame: row.get(7)?,
            height: row.get(9)?,
            separator: row.get(10)?,
            seq: row.get(1)?,
            size: size as u64,
            source: row.get(13)?,
            width: row.get(8)?,
        };
        sizes.insert(blob_hex, size as u64);
        let slot = index.get(&file).copied().ok_or_else(|| {
            StoreError::Corrupt(format!("page {} has no business file", page.seq))
        })?;
        files[slot].pages.push(page);
        pages += 1;
    }
    Ok(Manifest {
        accepted_at,
        batch: batch.name.clone(),
        business_files: files,
        business_type: batch.business_type.clone(),
        bytes: sizes.values().sum(),
        district: batch.district.clone(),
        format: MANIFEST_FORMAT.to_owned(),
        pages,
    })
}
