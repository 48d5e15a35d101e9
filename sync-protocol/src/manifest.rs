//! The manifest's hash and its internal consistency, which both sides check:
//! the edge before it offers a batch, the hub before it stages one.
use std::collections::HashMap;

use dangan_shared::BlobId;

use crate::jcs::{self, JcsError};
use crate::wire::{MANIFEST_FORMAT, Manifest};

/// Longest batch name, in characters.
pub const MAX_BATCH_NAME_CHARS: usize = 128;

/// The manifest's canonical encoding (RFC 8785) and the lowercase hex BLAKE3
/// of those bytes: the manifest hash that offers, commits and receipts name.
pub fn manifest_hash(manifest: &Manifest) -> Result<(Vec<u8>, String), JcsError> {
    let bytes = jcs::to_canonical(manifest)?;
    let hash = blake3::hash(&bytes).to_hex().to_string();
    Ok((bytes, hash))
}

/// True for 64 lowercase hex digits, the form of every hash on the wire.
pub fn is_hash_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// Checks that a manifest is consistent in itself; the message says what is
/// wrong and where.
///
/// - `format` is [`MANIFEST_FORMAT`]; `district` is not empty;
/// - the batch name is 1 to 128 characters with no control characters;
/// - there is at least one business file, and none is empty;
/// - business files are numbered 1..n in order, pages 1..n in order across
///   the whole batch;
/// - `pages` is the number of pages;
/// - a blob has the same size wherever it appears, and `bytes` is the sum of
///   the distinct blobs' sizes.
pub fn validate_manifest(manifest: &Manifest) -> Result<(), String> {
    if manifest.format != MANIFEST_FORMAT {
        return Err(format!(
            "format is {:?}, expected {MANIFEST_FORMAT:?}",
            manifest.format
        ));
    }
    if manifest.district.is_empty() {
        return Err("district is empty".to_owned());
    }
    validate_batch_name(&manifest.batch)?;
    if manifest.business_files.is_empty() {
        return Err("the manifest has no business files".to_owned());
    }

    let mut sizes: HashMap<BlobId, u64> = HashMap::new();
    let mut distinct_bytes: u64 = 0;
    let mut page_count: u64 = 0;
    for (file_index, file) in manifest.business_files.iter().enumerate() {
        let expected_file_seq = file_index + 1;
        if usize::try_from(file.seq).ok() != Some(expected_file_seq) {
            return Err(format!(
                "business file {expected_file_seq} has seq {}",
                file.seq
            ));
        }
        if file.pages.is_empty() {
            return Err(format!("business file {} has no pages", file.seq));
        }
        for page in &file.pages {
            page_count += 1;
            if u64::from(page.seq) != page_count {
                return Err(format!(
                    "business file {}: page {page_count} of the batch has seq {}",
                    file.seq, page.seq
                ));
            }
            match sizes.get(&page.blob) {
                Some(&size) if size != page.size => {
                    return Err(format!(
                        "page {}: blob {} has size {}, but {size} on an earlier page",
                        page.seq, page.blob, page.size
                    ));
                }
                Some(_) => {}
                None => {
                    sizes.insert(page.blob, page.size);
                    distinct_bytes = distinct_bytes
                        .checked_add(page.size)
                        .ok_or_else(|| "the sum of the blob sizes overflows 64 bits".to_owned())?;
                }
            }
        }
    }
    if manifest.pages != page_count {
        return Err(format!(
            "pages is {}, but the business files hold {page_count}",
            manifest.pages
        ));
    }
    if manifest.bytes != distinct_bytes {
        return Err(format!(
            "bytes is {}, but the distinct blobs add up to {distinct_bytes}",
            manifest.bytes
        ));
    }
    Ok(())
}

fn validate_batch_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("batch name is empty".to_owned());
    }
    if name.chars().count() > MAX_BATCH_NAME_CHARS {
        return Err(format!(
            "batch name is longer than {MAX_BATCH_NAME_CHARS} characters"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("batch name {name:?} contains a control character"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jcs::canonicalize_value;
    use crate::wire::{ManifestBarcode, ManifestFile, ManifestPage};

    fn page(seq: u32, content: &[u8], size: u64) -> ManifestPage {
        ManifestPage {
            barcodes: Vec::new(),
            blank: false,
            blob: BlobId::of(content),
            colour: "gray".to_owned(),
            dpi: Some(300),
            format: "jpeg".to_owned(),
            frame: 0,
            height: 3508,
            separator: false,
            seq,
            size,
            source: format!("scan-{seq:04}.jpg"),
            width: 2480,
        }
    }

    /// The golden manifest: two business files, three pages, Chinese text,
    /// barcodes and a Windows path that needs escaping.
    fn golden() -> Manifest {
        let mut first = page(1, b"dangan golden page 1", 183_211);
        first.barcodes = vec![ManifestBarcode {
            format: "code128".to_owned(),
            text: "沪社保2024-000017".to_owned(),
        }];
        first.separator = true;
        let second = page(2, b"dangan golden page 2", 176_002);
        let mut third = page(3, b"dangan golden page 3", 9_120);
        third.blank = true;
        third.colour = "bilevel".to_owned();
        third.dpi = None;
        third.format = "tiff".to_owned();
        third.frame = 1;
        third.source = "D:\\扫描\\批次 1\\0003.tif".to_owned();
        third.barcodes = vec![ManifestBarcode {
            format: "qr_code".to_owned(),
            text: "https://example.invalid/f?id=\"7\"&n=1".to_owned(),
        }];
        Manifest {
            accepted_at: "2024-05-06T07:08:09Z".to_owned(),
            batch: "310104-2024-0001".to_owned(),
            business_files: vec![
                ManifestFile {
                    business_number: Some("沪社保2024-000017".to_owned()),
                    business_type: Some("pension_transfer".to_owned()),
                    category: Some("records".to_owned()),
                    date: Some("2024-05-06".to_owned()),
                    employer_id: Some("E31010400017".to_owned()),
                    organisation: "310104001".to_owned(),
                    pages: vec![first, second],
                    person_id: Some("31010419900307123X".to_owned()),
                    person_name: Some("张三".to_owned()),
                    retention: Some("permanent".to_owned()),
                    seq: 1,
                },
                ManifestFile {
                    business_number: None,
                    business_type: None,
                    category: None,
                    date: None,
                    employer_id: None,
                    organisation: "310104".to_owned(),
                    pages: vec![third],
                    person_id: None,
                    person_name: None,
                    retention: None,
                    seq: 2,
                },
            ],
            business_type: None,
            bytes: 183_211 + 176_002 + 9_120,
            district: "310104".to_owned(),
            format: MANIFEST_FORMAT.to_owned(),
            pages: 3,
        }
    }

    /// Also in PROTOCOL.md; any implementation must produce these bytes.
    const GOLDEN_CANONICAL: &str = r#"{"accepted_at":"2024-05-06T07:08:09Z","batch":"310104-2024-0001","business_files":[{"business_number":"沪社保2024-000017","business_type":"pension_transfer","category":"records","date":"2024-05-06","employer_id":"E31010400017","organisation":"310104001","pages":[{"barcodes":[{"format":"code128","text":"沪社保2024-000017"}],"blank":false,"blob":"081230f3a903126a4e1f0f10c0feefdf9b051cc17a36f3cefcb48907239eb7db","colour":"gray","dpi":300,"format":"jpeg","frame":0,"height":3508,"separator":true,"seq":1,"size":183211,"source":"scan-0001.jpg","width":2480},{"barcodes":[],"blank":false,"blob":"7d2914335afddfefc0c6477213addb9984ced7d82cc0ca3d7672d8f902760a35","colour":"gray","dpi":300,"format":"jpeg","frame":0,"height":3508,"separator":false,"seq":2,"size":176002,"source":"scan-0002.jpg","width":2480}],"person_id":"31010419900307123X","person_name":"张三","retention":"permanent","seq":1},{"business_number":null,"business_type":null,"category":null,"date":null,"employer_id":null,"organisation":"310104","pages":[{"barcodes":[{"format":"qr_code","text":"https://example.invalid/f?id=\"7\"&n=1"}],"blank":true,"blob":"55e4b5ab1b05d140a0b3ef1c75c388b43c2567ec5f64dbaaaf808336255b22bd","colour":"bilevel","dpi":null,"format":"tiff","frame":1,"height":3508,"separator":false,"seq":3,"size":9120,"source":"D:\\扫描\\批次 1\\0003.tif","width":2480}],"person_id":null,"person_name":null,"retention":null,"seq":2}],"business_type":null,"bytes":368333,"district":"310104","format":"dangan-manifest/1","pages":3}"#;
    const GOLDEN_HASH: &str = "fbd8d513ca2c3b31043e3b0c5144e08467cc12a957f955ba3a39395dc0b02093";

    #[test]
    fn golden_vector() {
        let manifest = golden();
        validate_manifest(&manifest).unwrap();
        let (bytes, hash) = manifest_hash(&manifest).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(text, GOLDEN_CANONICAL);
        assert_eq!(hash, GOLDEN_HASH);
        // The literal hashes to the literal, independently of the encoder.
        assert_eq!(
            blake3::hash(GOLDEN_CANONICAL.as_bytes()).to_hex().as_str(),
            GOLDEN_HASH
        );
        // And the streaming encoder agrees with the tree canonicalizer.
        let value = serde_json::to_value(&manifest).unwrap();
        assert_eq!(canonicalize_value(&value).unwrap(), bytes);
        // The canonical bytes read back to the same manifest.
        assert_eq!(
            serde_json::from_slice::<Manifest>(&bytes).unwrap(),
            manifest
        );
    }

    const TRICKY: &[&str] = &[
        "",
        "\u{0}\u{1}\u{7}\u{8}\t\n\u{b}\u{c}\r\u{1b}\u{1f}",
        "\"quoted\" and \\backslashed\\ and /slashed/",
        "张三 沪社保 档案",
        "😀 \u{1f600}\u{10ffff}",
        "\u{2028}\u{2029}\u{7f}\u{80}\u{9f}\u{fb33}\u{feff}",
        "</script><!-- & ' -->",
    ];

    /// The streaming encoder and the tree canonicalizer agree on every
    /// canonical wire type, whatever the strings hold.
    #[test]
    fn to_canonical_matches_canonicalize_value_for_tricky_strings() {
        use crate::wire::{CommitRequest, RECEIPT_FORMAT, Receipt, ReceiptBody};

        fn agree<T: serde::Serialize>(value: &T) {
            let tree = serde_json::to_value(value).unwrap();
            assert_eq!(
                jcs::to_canonical(value).unwrap(),
                canonicalize_value(&tree).unwrap(),
                "{tree}"
            );
        }

        for text in TRICKY {
            let text = (*text).to_owned();
            let mut manifest = golden();
            manifest.accepted_at = text.clone();
            manifest.batch = text.clone();
            manifest.business_type = Some(text.clone());
            manifest.district = text.clone();
            manifest.format = text.clone();
            for file in &mut manifest.business_files {
                file.business_number = Some(text.clone());
                file.person_name = Some(text.clone());
                file.organisation = text.clone();
                for page in &mut file.pages {
                    page.source = text.clone();
                    page.colour = text.clone();
                    page.barcodes.push(ManifestBarcode {
                        format: text.clone(),
                        text: text.clone(),
                    });
                }
            }
            agree(&manifest);
            let (bytes, _) = manifest_hash(&manifest).unwrap();
            assert_eq!(
                serde_json::from_slice::<Manifest>(&bytes).unwrap(),
                manifest
            );

            let body = ReceiptBody {
                batch: text.clone(),
                blobs: 3,
                bytes: u64::from(u32::MAX) * 4,
                committed_at: text.clone(),
                district: text.clone(),
                format: RECEIPT_FORMAT.to_owned(),
                hub_id: text.clone(),
                manifest_hash: text.clone(),
                node_id: text.clone(),
                pages: 0,
            };
            agree(&body);
            agree(&Receipt {
                body,
                signature: text.clone(),
            });
            agree(&CommitRequest {
                batch: text.clone(),
                manifest_hash: text,
            });
        }
    }

    #[test]
    fn numbers_beyond_2_pow_53_have_no_canonical_form() {
        let mut manifest = golden();
        manifest.bytes = (1 << 53) + 1;
        assert!(matches!(
            manifest_hash(&manifest),
            Err(JcsError::UnsafeInteger(_))
        ));
    }

    fn invalid(change: impl FnOnce(&mut Manifest)) -> String {
        let mut manifest = golden();
        change(&mut manifest);
        validate_manifest(&manifest).unwrap_err()
    }

    #[test]
    fn validation_rejects_inconsistent_manifests() {
        assert!(invalid(|m| m.format = "dangan-manifest/2".to_owned()).contains("format"));
        assert!(invalid(|m| m.district.clear()).contains("district"));
        assert!(invalid(|m| m.batch.clear()).contains("empty"));
        assert!(invalid(|m| m.batch = "a\tb".to_owned()).contains("control"));
        assert!(invalid(|m| m.batch = "a\u{85}b".to_owned()).contains("control"));
        assert!(invalid(|m| m.batch = "批".repeat(129)).contains("longer"));
        assert!(invalid(|m| m.pages = 4).contains("pages is 4"));
        assert!(invalid(|m| m.bytes += 1).contains("bytes"));
        assert!(invalid(|m| m.business_files.clear()).contains("no business files"));
        assert!(invalid(|m| m.business_files[1].pages.clear()).contains("no pages"));
        assert!(invalid(|m| m.business_files[1].seq = 3).contains("business file 2 has seq 3"));
        assert!(invalid(|m| m.business_files.swap(0, 1)).contains("seq"));
        assert!(invalid(|m| m.business_files[0].pages[1].seq = 3).contains("seq 3"));
        assert!(invalid(|m| m.business_files[1].pages[0].seq = 1).contains("seq 1"));
        // The same blob twice with different sizes.
        assert!(
            invalid(|m| {
                let first = m.business_files[0].pages[0].clone();
                let page = &mut m.business_files[0].pages[1];
                page.blob = first.blob;
                page.size = first.size + 1;
            })
            .contains("size")
        );
    }

    #[test]
    fn validation_accepts_edges() {
        validate_manifest(&golden()).unwrap();
        // A blob on two pages counts once in `bytes`.
        let mut manifest = golden();
        let first = manifest.business_files[0].pages[0].clone();
        let page = &mut manifest.business_files[0].pages[1];
        page.blob = first.blob;
        page.size = first.size;
        manifest.bytes = 183_211 + 9_120;
        validate_manifest(&manifest).unwrap();
        // Names of exactly 128 characters, Chinese included; empty blobs.
        manifest.batch = "批".repeat(128);
        validate_manifest(&manifest).unwrap();
        // One page of an empty blob.
        let mut single = golden();
        single.business_files.truncate(1);
        single.business_files[0].pages.truncate(1);
        single.business_files[0].pages[0].size = 0;
        single.pages = 1;
        single.bytes = 0;
        validate_manifest(&single).unwrap();
    }
}
