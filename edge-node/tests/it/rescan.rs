//! Rescanning a page (rework) through the CLI: the page takes the new
//! image, the old one stays in the cache and in the page's history, and a
//! file that cannot be used changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{Edge, pages};
use dangan_testkit::pages::{PageSpec, encode_jpeg, render_page};
use serde_json::Value;

/// A 300-dpi text page as JPEG bytes.
fn page_bytes(seed: u64) -> Vec<u8> {
    encode_jpeg(
        &render_page(&PageSpec::with_codes(300, seed, vec![])),
        85,
        300,
    )
}

/// Ingests `count` pages into `batch` (business type C01).
fn scanned(edge: &Edge, batch: &str, count: u64) {
    let scans = edge.inputs(&format!("scans-{batch}"));
    for seed in 1..=count {
        std::fs::write(scans.join(format!("p{seed}.jpg")), page_bytes(seed)).expect("write page");
    }
    edge.json(&[
        "ingest",
        "--batch",
        batch,
        "--business-type",
        "C01",
        &scans.display().to_string(),
    ]);
}

/// Batch R1, three pages, sent to rework by QC (page 2 blurred).
fn batch_in_rework(edge: &Edge) {
    scanned(edge, "R1", 3);
    edge.json(&["batch", "scanned", "R1"]);
    edge.json(&["qc", "start", "R1", "--seed", "1"]);
    for (page, verdict) in [("1", "pass"), ("2", "blur"), ("3", "pass")] {
        edge.json(&["qc", "check", "R1", page, verdict]);
    }
    assert_eq!(edge.json(&["qc", "finish", "R1"])["state"], "rework");
}

fn rescan(edge: &Edge, batch: &str, page: &str, file: &Path, reason: &str) -> Output {
    edge.command(&[
        "page",
        "rescan",
        batch,
        page,
        &file.display().to_string(),
        "--reason",
        reason,
        "--json",
    ])
    .env("USER", "zhao")
    .output()
    .expect("run dangan-edge")
}

fn blob_path(edge: &Edge, blob: &str) -> PathBuf {
    edge.data()
        .join("cache")
        .join("blobs")
        .join(&blob[..2])
        .join(&blob[2..4])
        .join(blob)
}

fn blobs(show: &Value) -> Vec<String> {
    pages(show)
        .iter()
        .map(|p| p["blob"].as_str().expect("blob").to_owned())
        .collect()
}

#[test]
fn a_rework_page_is_rescanned_and_its_old_image_stays_in_its_history() {
    let edge = Edge::new();
    batch_in_rework(&edge);
    let before = blobs(&edge.show("R1"));
    let file = edge.inputs("rescans").join("p2-again.jpg");
    std::fs::write(&file, page_bytes(12)).expect("write page");

    let out = rescan(&edge, "R1", "2", &file, "blurred (QC round 1)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["old_blob"], before[1].as_str());
    let new_blob = report["new_blob"].as_str().expect("new blob").to_owned();
    assert_ne!(new_blob, before[1]);
    assert_eq!(report["colour"], "gray");
    assert_eq!(report["dpi"], 300);

    // Only page 2 changed, in place, and it names who rescanned it.
    let show = edge.show("R1");
    assert_eq!(
        blobs(&show),
        [before[0].clone(), new_blob.clone(), before[2].clone()]
    );
    let page = &pages(&show)[1];
    assert_eq!(page["seq"], 2);
    assert_eq!(page["operator"], "local:zhao");
    assert_eq!(page["width"], 2480);

    let mut history = edge.json(&["page", "history", "R1", "2"]);
    let at = history[0]
        .as_object_mut()
        .and_then(|entry| entry.remove("at"));
    assert!(at.is_some_and(|at| at.as_str().is_some_and(|at| !at.is_empty())));
    assert_eq!(
        history,
        serde_json::json!([{
            "old_blob": before[1],
            "new_blob": new_blob,
            "reason": "blurred (QC round 1)",
            "actor": "local:zhao",
        }])
    );
    assert_eq!(
        edge.json(&["page", "history", "R1", "1"]),
        serde_json::json!([])
    );

    // The old image is still there, and fsck counts it as referenced.
    assert!(blob_path(&edge, &before[1]).is_file());
    assert!(blob_path(&edge, &new_blob).is_file());
    let fsck = edge.json(&["fsck"]);
    assert_eq!(fsck["clean"], true, "{fsck}");
    assert_eq!(fsck["findings"], serde_json::json!([]), "{fsck}");

    // The reworked batch goes back to QC.
    edge.json(&["qc", "start", "R1", "--seed", "2"]);
}

#[test]
fn an_unusable_rescan_is_refused_and_changes_nothing() {
    let edge = Edge::new();
    batch_in_rework(&edge);
    let before = edge.show("R1");
    let dir = edge.inputs("rescans");
    let broken = dir.join("p2-broken.jpg");
    std::fs::write(&broken, b"this is not a scan").expect("write");
    let truncated = dir.join("p2-truncated.jpg");
    std::fs::write(
        &truncated,
        dangan_testkit::containers::truncate(&page_bytes(12), 0.3),
    )
    .expect("write");

    for file in [&broken, &truncated] {
        let out = rescan(&edge, "R1", "2", file, "blurred");
        assert!(!out.status.success(), "{} was taken", file.display());
        let error = String::from_utf8_lossy(&out.stdout);
        assert!(
            error.contains(&*file.file_name().unwrap().to_string_lossy()),
            "{error}"
        );
        // Not quarantined: the file stays where the operator put it.
        assert!(file.is_file());
    }
    // A rescan needs a reason.
    let good = dir.join("p2-good.jpg");
    std::fs::write(&good, page_bytes(12)).expect("write");
    let out = rescan(&edge, "R1", "2", &good, "  ");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("reason"));
    // No such page.
    assert!(!rescan(&edge, "R1", "4", &good, "x").status.success());

    assert_eq!(edge.show("R1"), before);
    assert_eq!(
        edge.json(&["page", "history", "R1", "2"]),
        serde_json::json!([])
    );
    let quarantined = std::fs::read_dir(edge.data().join("quarantine"))
        .expect("quarantine folder")
        .count();
    assert_eq!(quarantined, 0);
    // Nothing was left behind in the cache either.
    let fsck = edge.json(&["fsck"]);
    assert_eq!(fsck["findings"], serde_json::json!([]), "{fsck}");
}

#[test]
fn a_rescan_of_an_accepted_batch_is_refused_naming_its_state() {
    let edge = Edge::new();
    scanned(&edge, "A1", 2);
    edge.json(&["batch", "accept", "A1", "--reason", "QC done on paper"]);
    let before = edge.show("A1");
    let file = edge.inputs("rescans").join("p1-again.jpg");
    std::fs::write(&file, page_bytes(11)).expect("write page");

    let out = rescan(&edge, "A1", "1", &file, "stain");
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stdout);
    assert!(error.contains("accepted"), "{error}");
    assert_eq!(edge.show("A1"), before);
    assert_eq!(
        edge.json(&["page", "history", "A1", "1"]),
        serde_json::json!([])
    );
}
