//! The ingest pipeline end to end: the real `dangan-edge` binary on
//! generated scans, real SQLite, real files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{Edge, pages, source_name, texts, without_times};
use dangan_testkit::containers;
use dangan_testkit::pages::{self as fixtures, CodeSpec, Place, Symbology};
use serde_json::Value;

/// An A4 page with text and the given codes, as JPEG bytes.
fn scan(dpi: u32, seed: u64, codes: Vec<CodeSpec>) -> Vec<u8> {
    let spec = fixtures::PageSpec {
        dpi,
        seed,
        codes,
        ..fixtures::PageSpec::default()
    };
    fixtures::encode_jpeg(&fixtures::render_page(&spec), 85, dpi)
}

fn code(symbology: Symbology, text: &str, place: Place) -> CodeSpec {
    CodeSpec::new(symbology, text, place)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).expect("write fixture");
    path
}

#[test]
fn separators_and_form_barcodes_group_pages_into_business_files() {
    let edge = Edge::new();
    let dir = edge.inputs("scans");
    // Scan order is natural name order: p2 before p10.
    let files = [
        ("p01.jpg", scan(300, 1, vec![])),
        (
            "p02.jpg",
            fixtures::encode_jpeg(
                &fixtures::render_page(&fixtures::separator_sheet(300, 2)),
                85,
                300,
            ),
        ),
        (
            "p03.jpg",
            scan(
                300,
                3,
                vec![code(Symbology::Code128, "YW2026000001", Place::TopRight)],
            ),
        ),
        ("p04.jpg", scan(200, 4, vec![])),
        (
            "p05.jpg",
            scan(
                300,
                5,
                vec![code(Symbology::Qr, "YW2026000001", Place::TopLeft)],
            ),
        ),
        (
            "p06.jpg",
            scan(
                300,
                6,
                vec![code(Symbology::Code39, "YW2026000002", Place::TopCentre)],
            ),
        ),
        (
            "p07.jpg",
            scan(
                300,
                7,
                vec![code(Symbology::Code128, "BOX-00000001", Place::BottomLeft)],
            ),
        ),
        (
            "p08.jpg",
            scan(
                300,
                8,
                vec![code(
                    Symbology::Qr,
                    "https://example.org/form/8",
                    Place::TopRight,
                )],
            ),
        ),
        (
            "p09.jpg",
            scan(
                300,
                9,
                vec![
                    code(Symbology::Code128, "YW2026000003", Place::TopRight),
                    code(Symbology::Code128, "YW2026000004", Place::BottomLeft),
                ],
            ),
        ),
        ("p10.jpg", scan(300, 10, vec![])),
    ];
    for (name, bytes) in &files {
        write(&dir, name, bytes);
    }
    let report = edge.ingest("grouping", &[&dir]);
    assert_eq!(report["pages"], 10, "{report}");
    assert_eq!(report["quarantined"], 0);
    assert_eq!(report["business_files"], 4);

    let show = edge.show("grouping");
    let groups: Vec<(Value, Vec<String>)> = show["business_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let names = f["pages"]
                .as_array()
                .unwrap()
                .iter()
                .map(source_name)
                .collect();
            (f["business_number"].clone(), names)
        })
        .collect();
    assert_eq!(
        groups,
        vec![
            (Value::Null, vec!["p01.jpg".to_owned()]),
            (
                Value::from("YW2026000001"),
                vec!["p02.jpg", "p03.jpg", "p04.jpg", "p05.jpg"]
                    .into_iter()
                    .map(String::from)
                    .collect()
            ),
            (
                Value::from("YW2026000002"),
                vec!["p06.jpg", "p07.jpg", "p08.jpg"]
                    .into_iter()
                    .map(String::from)
                    .collect()
            ),
            (
                Value::from("YW2026000003"),
                vec!["p09.jpg", "p10.jpg"]
                    .into_iter()
                    .map(String::from)
                    .collect()
            ),
        ]
    );
    let all = pages(&show);
    assert_eq!(
        all[1]["separator"], true,
        "the separator heads the file it opens"
    );
    assert!(all.iter().filter(|p| p["separator"] == true).count() == 1);
    assert!(texts(&all[1]).contains(&"PATCHT".to_owned()));
    assert_eq!(texts(&all[6]), vec!["BOX-00000001"]);
    assert_eq!(
        texts(&all[7]),
        vec!["https://example.org/form/8"],
        "unmatched codes stay on the page"
    );
    let formats: HashSet<&str> = all
        .iter()
        .flat_map(|p| {
            p["barcodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["format"].as_str().unwrap())
        })
        .collect();
    assert!(
        formats.contains("code128") && formats.contains("code39") && formats.contains("qr"),
        "{formats:?}"
    );
    assert_eq!(all[3]["dpi"], 200);
    assert_eq!(all[0]["dpi"], 300);
    assert_eq!(
        (all[0]["width"].as_u64(), all[0]["height"].as_u64()),
        (Some(2480), Some(3508))
    );
    for page in &all {
        assert_eq!(page["blob"].as_str().unwrap().len(), 64);
        assert_eq!(page["frame"], 0);
        assert_eq!(page["blank"], false);
    }

    // Exceptions: the page with two numbers, and the leading unnumbered file.
    let codes: Vec<&str> = show["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"multiple_business_numbers"), "{codes:?}");
    assert!(codes.contains(&"no_business_number"), "{codes:?}");
    assert_eq!(report["exceptions"].as_u64().unwrap() as usize, codes.len());

    // A business number already used by another open batch is an exception too.
    let dir2 = edge.inputs("scans2");
    write(
        &dir2,
        "a.jpg",
        &scan(
            300,
            11,
            vec![code(Symbology::Code128, "YW2026000002", Place::TopRight)],
        ),
    );
    let second = edge.ingest("second", &[&dir2]);
    assert_eq!(second["pages"], 1);
    let show2 = edge.show("second");
    let exception = &show2["exceptions"][0];
    assert_eq!(
        exception["code"], "business_number_in_other_batch",
        "{show2}"
    );
    assert!(exception["reason"].as_str().unwrap().contains("grouping"));
    assert_eq!(
        show2["business_files"][0]["business_number"],
        "YW2026000002"
    );
}

#[test]
fn identical_bytes_are_stored_once_and_reingest_adds_nothing() {
    let edge = Edge::new();
    let dir = edge.inputs("scans");
    let page = scan(
        300,
        21,
        vec![code(Symbology::Code128, "YW2026000100", Place::TopRight)],
    );
    write(&dir, "a.jpg", &page);
    write(&dir, "b-rescan.jpg", &page);
    write(&dir, "c.jpg", &scan(300, 22, vec![]));

    let first = edge.ingest("dedup", &[&dir]);
    assert_eq!(
        (first["pages"].as_u64(), first["duplicates"].as_u64()),
        (Some(3), Some(1)),
        "{first}"
    );
    let show = edge.show("dedup");
    let all = pages(&show);
    assert_eq!(all[0]["blob"], all[1]["blob"]);
    assert_ne!(all[0]["blob"], all[2]["blob"]);
    assert_eq!(all[1]["duplicate"], true);
    assert_eq!(
        all[0]["blob"].as_str().unwrap(),
        blake3::hash(&page).to_hex().as_str()
    );

    // The same command again adds nothing.
    let again = edge.ingest("dedup", &[&dir]);
    assert_eq!(
        (again["pages"].as_u64(), again["skipped"].as_u64()),
        (Some(0), Some(3)),
        "{again}"
    );
    assert_eq!(
        without_times(edge.show("dedup")),
        without_times(show.clone())
    );

    // The same bytes in another batch share the blob: still one file in the cache.
    let other = edge.inputs("other");
    write(&other, "copy.jpg", &page);
    let third = edge.ingest("other-batch", &[&other]);
    assert_eq!(
        (third["pages"].as_u64(), third["duplicates"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(blob_files(&edge.data()).len(), 2);

    let fsck = edge.json(&["fsck"]);
    assert_eq!(fsck["clean"], true, "{fsck}");
    assert_eq!(fsck["blobs_checked"], 2);
}

fn blob_files(data: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![data.join("cache/blobs")];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn bad_input_is_quarantined_with_its_reason_and_the_rest_goes_on() {
    let edge = Edge::new();
    let dir = edge.inputs("scans");
    let good = scan(200, 31, vec![]);
    write(&dir, "01-good.jpg", &good);
    write(&dir, "02-empty.jpg", b"");
    write(
        &dir,
        "03-truncated.jpg",
        &containers::truncate(&scan(200, 32, vec![]), 0.5),
    );
    write(
        &dir,
        "04-text.jpg",
        "这不是图像 — this is a text file\n".as_bytes(),
    );
    write(
        &dir,
        "05-animation.gif",
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
    );
    write(
        &dir,
        "06-bomb.png",
        &containers::png_header_only(60000, 60000),
    );
    write(
        &dir,
        "07-good.png",
        &fixtures::encode_png(
            &fixtures::render_page(&fixtures::PageSpec {
                dpi: 200,
                seed: 33,
                ..Default::default()
            }),
            200,
        ),
    );
    write(&dir, "notes.txt", b"operator notes, not a scan");

    let out = edge
        .command(&["ingest", "--batch", "bad", "--json"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "quarantine is not a failure: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["pages"], 2, "{report}");
    assert_eq!(report["quarantined"], 5);
    assert_eq!(
        report["ignored"].as_array().unwrap().len(),
        1,
        "the .txt file is left alone"
    );
    assert!(dir.join("notes.txt").exists());

    let show = edge.show("bad");
    let reasons: Vec<(String, String, String)> = show["quarantined"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                source_name(q),
                q["code"].as_str().unwrap().to_owned(),
                q["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = [
        ("02-empty.jpg", "empty", "empty"),
        ("03-truncated.jpg", "truncated", "truncated"),
        ("04-text.jpg", "not_an_image", "not an image"),
        ("05-animation.gif", "unsupported_format", "GIF"),
        ("06-bomb.png", "too_many_pixels", "60000"),
    ];
    assert_eq!(reasons.len(), expect.len(), "{reasons:?}");
    for ((name, code, reason), (want_name, want_code, want_word)) in reasons.iter().zip(expect) {
        assert_eq!((name.as_str(), code.as_str()), (want_name, want_code));
        assert!(reason.contains(want_word), "{name}: {reason}");
    }
    // Moved, not copied: gone from the scan folder, byte-identical in quarantine.
    for q in show["quarantined"].as_array().unwrap() {
        let source = Path::new(q["source"].as_str().unwrap());
        assert!(
            !source.exists(),
            "{} still in the scan folder",
            source.display()
        );
        assert!(Path::new(q["quarantine_path"].as_str().unwrap()).is_file());
    }
    let kept = fs::read(show["quarantined"][1]["quarantine_path"].as_str().unwrap()).unwrap();
    assert_eq!(kept.len(), scan(200, 32, vec![]).len() / 2);
    assert!(
        dir.join("01-good.jpg").exists(),
        "good sources stay where they are"
    );

    // Text output says it in Chinese by default.
    let text = std::process::Command::new(crate::common::bin())
        .args(["batch", "show", "bad", "--data"])
        .arg(edge.data())
        .env_remove("DANGAN_LANG")
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("隔离文件") && text.contains("空文件"),
        "{text}"
    );
}

#[test]
fn multi_page_tiff_and_pdf_become_one_page_per_frame() {
    let edge = Edge::new();
    let dir = edge.inputs("scans");
    let gray = |seed: u64, codes: Vec<CodeSpec>| {
        fixtures::render_page(&fixtures::PageSpec {
            dpi: 200,
            seed,
            codes,
            ..Default::default()
        })
        .to_luma8()
    };
    let tiff = containers::tiff_multipage(
        &[
            gray(
                41,
                vec![code(Symbology::Code128, "YW2026000201", Place::TopRight)],
            ),
            gray(42, vec![]),
            gray(43, vec![]),
        ],
        200,
    );
    write(&dir, "a-multi.tif", &tiff);
    let g4 = containers::tiff_g4(
        &[
            gray(
                44,
                vec![code(Symbology::Code128, "YW2026000202", Place::TopRight)],
            ),
            gray(45, vec![]),
        ],
        200,
    );
    write(&dir, "b-g4.tif", &g4);
    let jpeg_page = scan(
        200,
        46,
        vec![code(Symbology::Qr, "YW2026000203", Place::TopRight)],
    );
    let pdf = containers::pdf_with_images(
        &[
            containers::PdfPageImage::Jpeg {
                bytes: jpeg_page.clone(),
                width: 1654,
                height: 2339,
                gray: true,
            },
            containers::PdfPageImage::G4 {
                image: gray(47, vec![]),
            },
            containers::PdfPageImage::Flate {
                image: gray(48, vec![]),
            },
            containers::PdfPageImage::Jbig2Mmr {
                image: gray(49, vec![]),
            },
        ],
        200,
    );
    write(&dir, "c-scan.pdf", &pdf);

    let report = edge.ingest("frames", &[&dir]);
    assert_eq!(report["pages"], 9, "{report}");
    assert_eq!(report["quarantined"], 0);
    let show = edge.show("frames");
    let all = pages(&show);
    let frames: Vec<(String, u64)> = all
        .iter()
        .map(|p| (source_name(p), p["frame"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        frames,
        vec![
            ("a-multi.tif".into(), 0),
            ("a-multi.tif".into(), 1),
            ("a-multi.tif".into(), 2),
            ("b-g4.tif".into(), 0),
            ("b-g4.tif".into(), 1),
            ("c-scan.pdf".into(), 0),
            ("c-scan.pdf".into(), 1),
            ("c-scan.pdf".into(), 2),
            ("c-scan.pdf".into(), 3),
        ]
    );
    let numbers: Vec<Value> = show["business_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["business_number"].clone())
        .collect();
    assert_eq!(
        numbers,
        vec!["YW2026000201", "YW2026000202", "YW2026000203"]
    );
    assert_eq!(all[3]["colour"], "bilevel");
    assert_eq!(all[0]["colour"], "gray");
    // The PDF's JPEG page is stored as the embedded JPEG, not recompressed.
    assert_eq!(
        all[5]["blob"].as_str().unwrap(),
        blake3::hash(&jpeg_page).to_hex().as_str()
    );
    assert_eq!(all[5]["format"], "jpeg");
    for page in &all {
        assert_eq!(
            (page["width"].as_u64(), page["dpi"].as_u64()),
            (Some(1654), Some(200)),
            "{page}"
        );
    }
}

#[test]
fn blank_pages_are_flagged() {
    let edge = Edge::new();
    let dir = edge.inputs("scans");
    write(
        &dir,
        "1.png",
        &fixtures::encode_png(
            &image::DynamicImage::ImageLuma8(fixtures::blank_page(300, 51)),
            300,
        ),
    );
    write(&dir, "2.jpg", &scan(300, 52, vec![]));
    edge.ingest("blank", &[&dir]);
    let all = pages(&edge.show("blank"));
    assert_eq!(all[0]["blank"], true);
    assert_eq!(all[1]["blank"], false);
}

#[test]
fn data_flag_goes_before_or_after_the_subcommand_or_in_the_environment() {
    let edge = Edge::new();
    let dir = edge.inputs("scans");
    write(&dir, "a.jpg", &scan(200, 71, vec![]));
    let before = std::process::Command::new(crate::common::bin())
        .arg("--data")
        .arg(edge.data())
        .args(["--json", "ingest", "--batch", "flags"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        before.status.success(),
        "{}",
        String::from_utf8_lossy(&before.stderr)
    );
    let from_env = std::process::Command::new(crate::common::bin())
        .args(["batch", "list", "--json"])
        .env("DANGAN_EDGE_DATA", edge.data())
        .output()
        .unwrap();
    assert!(from_env.status.success());
    let list: Value = serde_json::from_slice(&from_env.stdout).unwrap();
    assert_eq!(list[0]["name"], "flags");
    assert_eq!(list[0]["pages"], 1);

    // Every command explains itself.
    for command in [
        &["--help"][..],
        &["init", "--help"],
        &["ingest", "--help"],
        &["watch", "--help"],
        &["batch", "show", "--help"],
        &["fsck", "--help"],
    ] {
        let out = std::process::Command::new(crate::common::bin())
            .args(command)
            .output()
            .unwrap();
        assert!(
            out.status.success() && !out.stdout.is_empty(),
            "{command:?}"
        );
    }

    // A missing batch or a missing data folder is a clear error, not a crash.
    let out = edge
        .command(&["batch", "show", "nope", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(error["error"].as_str().unwrap().contains("nope"), "{error}");
    let out = std::process::Command::new(crate::common::bin())
        .args(["ingest", "--data"])
        .arg(edge.root.path().join("no-such-folder"))
        .arg(&dir)
        .env("DANGAN_LANG", "en")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dangan-edge init"));
    // Initialising twice is refused and keeps the data.
    let out = edge.run(&["init", "--district", crate::common::DISTRICT]);
    assert!(!out.status.success());
    assert_eq!(edge.show("flags")["counts"]["pages"], 1);
}

/// Imports two business types whose templates override edge.toml's barcode
/// rules: T01 a business number of "ZZ" and four digits (too short for the
/// default pattern), T02 separator sheets coded "SEP-" and four digits
/// (which the default pattern takes for a business number).
fn import_barcode_templates(edge: &Edge) {
    let file = edge.root.path().join("templates.toml");
    fs::write(
        &file,
        r#"version = 1

[[template]]
business_type = "T01"
name = "短业务号"
category = "other"
retention = 10
[template.barcodes]
business_number = '^ZZ[0-9]{4}$'

[[template]]
business_type = "T02"
name = "自定义分隔页"
category = "other"
retention = 10
[template.barcodes]
separator = '^SEP-[0-9]{4}$'
"#,
    )
    .expect("write templates");
    let report = edge.json(&["template", "import", &file.display().to_string()]);
    assert_eq!(report["updated"], serde_json::json!(["T01", "T02"]));
}

/// Writes the same pages into a new folder `name` and returns it.
fn folder(edge: &Edge, name: &str, files: &[(&str, Vec<u8>)]) -> String {
    let dir = edge.inputs(name);
    for (file, bytes) in files {
        write(&dir, file, bytes);
    }
    dir.display().to_string()
}

/// The business files of a batch as (business number, page count).
fn grouping(edge: &Edge, batch: &str) -> Vec<(Option<String>, usize)> {
    edge.show(batch)["business_files"]
        .as_array()
        .expect("business files")
        .iter()
        .map(|f| {
            (
                f["business_number"].as_str().map(str::to_owned),
                f["pages"].as_array().expect("pages").len(),
            )
        })
        .collect()
}

#[test]
fn a_template_business_number_pattern_applies_to_its_batches_only() {
    let edge = Edge::new();
    import_barcode_templates(&edge);
    let files = [
        (
            "p1.jpg",
            scan(
                300,
                41,
                vec![code(Symbology::Code128, "ZZ1234", Place::TopRight)],
            ),
        ),
        ("p2.jpg", scan(300, 42, vec![])),
        (
            "p3.jpg",
            scan(
                300,
                43,
                vec![code(Symbology::Code128, "ZZ5678", Place::TopRight)],
            ),
        ),
    ];
    let bound = folder(&edge, "t01", &files);
    edge.json(&["ingest", "--batch", "T", "--business-type", "T01", &bound]);
    assert_eq!(
        grouping(&edge, "T"),
        [
            (Some("ZZ1234".to_owned()), 2),
            (Some("ZZ5678".to_owned()), 1)
        ]
    );

    // Without the template the same codes are read but mean nothing.
    let plain = folder(&edge, "plain", &files);
    edge.json(&["ingest", "--batch", "D", &plain]);
    assert_eq!(grouping(&edge, "D"), [(None, 3)]);
    assert_eq!(texts(&pages(&edge.show("D"))[0]), ["ZZ1234"]);
}

#[test]
fn a_template_separator_pattern_opens_business_files_at_its_sheets() {
    let edge = Edge::new();
    import_barcode_templates(&edge);
    let sheet = fixtures::PageSpec {
        text: false,
        codes: vec![
            code(Symbology::Code128, "SEP-0001", Place::MidPage)
                .module_px(6)
                .height_mm(25.0),
        ],
        ..fixtures::PageSpec::with_codes(300, 52, vec![])
    };
    let files = [
        (
            "p1.jpg",
            scan(
                300,
                51,
                vec![code(Symbology::Code128, "YW2026000001", Place::TopRight)],
            ),
        ),
        (
            "p2.jpg",
            fixtures::encode_jpeg(&fixtures::render_page(&sheet), 85, 300),
        ),
        ("p3.jpg", scan(300, 53, vec![])),
        (
            "p4.jpg",
            scan(
                300,
                54,
                vec![code(Symbology::Code128, "YW2026000002", Place::TopRight)],
            ),
        ),
    ];
    let bound = folder(&edge, "t02", &files);
    edge.json(&["ingest", "--batch", "T", "--business-type", "T02", &bound]);
    // The sheet opens a file, which the form behind it names.
    assert_eq!(
        grouping(&edge, "T"),
        [
            (Some("YW2026000001".to_owned()), 1),
            (Some("YW2026000002".to_owned()), 3)
        ]
    );
    assert_eq!(pages(&edge.show("T"))[1]["separator"], true);

    // edge.toml's rules take the sheet's code for a business number.
    let plain = folder(&edge, "plain", &files);
    edge.json(&["ingest", "--batch", "D", &plain]);
    assert_eq!(
        grouping(&edge, "D"),
        [
            (Some("YW2026000001".to_owned()), 1),
            (Some("SEP-0001".to_owned()), 2),
            (Some("YW2026000002".to_owned()), 1)
        ]
    );
    assert_eq!(pages(&edge.show("D"))[1]["separator"], false);
}
