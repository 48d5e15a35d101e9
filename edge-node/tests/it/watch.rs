//! The hot folder and the SANE scanner source, with the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use crate::common::{Edge, pages};
use dangan_testkit::pages::{self as fixtures};
use serde_json::Value;

const FAST_WATCH: &str = "[watch]\nsettle_ms = 400\npoll_ms = 50\n";

fn last_json_line(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("one JSON report per line"))
        .collect()
}

#[test]
fn a_file_is_taken_only_once_it_has_stopped_growing() {
    let edge = Edge::new();
    edge.write_config(FAST_WATCH);
    let hot = edge.inputs("hot");
    let bytes = fixtures::encode_jpeg(
        &fixtures::render_page(&fixtures::PageSpec {
            dpi: 200,
            seed: 61,
            ..Default::default()
        }),
        85,
        200,
    );
    // The scanner has started writing when the watcher starts.
    let path = hot.join("scan-0001.jpg");
    let mut file = fs::File::create(&path).unwrap();
    let chunks: Vec<&[u8]> = bytes.chunks(bytes.len() / 8 + 1).collect();
    file.write_all(chunks[0]).unwrap();
    file.flush().unwrap();
    let child = edge
        .command(&["watch", "--batch", "hot", "--once", "--json"])
        .arg(&hot)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Keep writing slowly, pausing less than the settle time.
    for chunk in &chunks[1..] {
        std::thread::sleep(Duration::from_millis(120));
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
    }
    drop(file);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let rounds = last_json_line(&out.stdout);
    let pages_added: u64 = rounds.iter().map(|r| r["pages"].as_u64().unwrap()).sum();
    let quarantined: u64 = rounds
        .iter()
        .map(|r| r["quarantined"].as_u64().unwrap())
        .sum();
    assert_eq!((pages_added, quarantined), (1, 0), "{rounds:?}");
    assert!(!path.exists(), "an ingested file leaves the hot folder");
    let show = edge.show("hot");
    assert_eq!(
        pages(&show)[0]["blob"].as_str().unwrap(),
        blake3::hash(&bytes).to_hex().as_str()
    );
}

#[test]
fn sane_test_backend_scans_into_a_batch() {
    if which("scanimage").is_none() {
        assert!(
            std::env::var_os("DANGAN_REQUIRE_SCANNER").is_none(),
            "scanimage is required here (DANGAN_REQUIRE_SCANNER is set): install sane-utils"
        );
        eprintln!("skipped: scanimage is not installed (sane-utils)");
        return;
    }
    let edge = Edge::new();
    edge.write_config(FAST_WATCH);
    // Debian ships the test backend disabled; enable it in a private config.
    let sane = edge.inputs("sane.d");
    fs::write(sane.join("dll.conf"), "test\n").unwrap();
    if let Ok(conf) = fs::read("/etc/sane.d/test.conf") {
        fs::write(sane.join("test.conf"), conf).unwrap();
    }
    let hot = edge.inputs("hot");
    let out = edge
        .command(&[
            "watch",
            "--batch",
            "sane",
            "--once",
            "--json",
            "--scan",
            "--scan-device",
            "test",
            "--scan-arg=--batch-count=3",
        ])
        .arg(&hot)
        .env("SANE_CONFIG_DIR", &sane)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let show = edge.show("sane");
    let all = pages(&show);
    assert_eq!(all.len(), 3, "{show}");
    assert_eq!(show["counts"]["quarantined"], 0);
    for page in &all {
        assert_eq!(page["format"], "tiff");
        assert!(page["width"].as_u64().unwrap() > 0);
    }
    assert_eq!(
        fs::read_dir(&hot).unwrap().count(),
        0,
        "the hot folder is emptied"
    );
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}
