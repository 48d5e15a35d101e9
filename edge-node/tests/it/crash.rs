//! `kill -9` at random points during ingest, then the same command again:
//! the final state must equal an uninterrupted run's, page for page.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{Edge, without_times};
use dangan_testkit::containers;
use dangan_testkit::pages::{self as fixtures, CodeSpec, Place, Symbology};
use serde_json::Value;

fn page_count(data: &Path) -> i64 {
    let Ok(conn) = rusqlite::Connection::open_with_flags(
        data.join("edge.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return 0;
    };
    conn.query_row("SELECT count(*) FROM pages", [], |row| row.get(0))
        .unwrap_or(0)
}

/// A small xorshift generator: the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn make_inputs(dir: &Path) {
    for i in 0..36u64 {
        let codes = match i % 6 {
            0 => vec![CodeSpec::new(
                Symbology::Code128,
                &format!("YW20260{:05}", i / 6),
                Place::TopRight,
            )],
            3 if i % 12 == 3 => vec![CodeSpec::new(Symbology::Code128, "PATCHT", Place::MidPage)],
            _ => vec![],
        };
        let spec = fixtures::PageSpec {
            dpi: 200,
            seed: 900 + i,
            codes,
            ..fixtures::PageSpec::default()
        };
        let bytes = fixtures::encode_jpeg(&fixtures::render_page(&spec), 85, 200);
        fs::write(dir.join(format!("page-{i:03}.jpg")), &bytes).unwrap();
        if i == 10 {
            // A rescan with identical bytes, and a broken file, in the middle.
            fs::write(dir.join(format!("page-{i:03}-again.jpg")), &bytes).unwrap();
            fs::write(
                dir.join("page-011-broken.jpg"),
                containers::truncate(&bytes, 0.4),
            )
            .unwrap();
        }
    }
    let tiff_pages: Vec<_> = (0..4)
        .map(|i| {
            fixtures::render_page(&fixtures::PageSpec {
                dpi: 200,
                seed: 990 + i,
                ..fixtures::PageSpec::default()
            })
            .to_luma8()
        })
        .collect();
    fs::write(
        dir.join("page-020-multi.tif"),
        containers::tiff_multipage(&tiff_pages, 200),
    )
    .unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// The batch with data-folder-specific paths reduced to file names.
fn comparable(show: Value) -> Value {
    let mut show = without_times(show);
    for q in show["quarantined"].as_array_mut().unwrap() {
        let name = Path::new(q["quarantine_path"].as_str().unwrap())
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        q["quarantine_path"] = Value::from(name);
    }
    show
}

#[test]
fn killed_ingest_resumes_to_the_same_state_as_an_uninterrupted_run() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill schedule seed: {seed}");
    let mut rng = Rng(seed);

    let reference = Edge::new();
    let pristine = reference.inputs("pristine");
    make_inputs(&pristine);
    let scans = reference.root.path().join("scans");

    copy_dir(&pristine, &scans);
    let uninterrupted = reference.ingest("crash", &[&scans]);
    let expected = comparable(reference.show("crash"));
    let total = expected["counts"]["pages"].as_i64().unwrap();
    assert_eq!(total, 41, "{uninterrupted}");
    assert_eq!(expected["counts"]["quarantined"], 1);

    // Same input paths again (quarantine moved the broken file away).
    copy_dir(&pristine, &scans);
    let killed = Edge::new();
    let mut kills = 0;
    let mut attempts = 0;
    while kills < 4 && attempts < 12 {
        attempts += 1;
        let before = page_count(&killed.data());
        let mut child = killed
            .command(&["ingest", "--batch", "crash", "--json"])
            .arg(&scans)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until this attempt has recorded something, then a little more.
        let started = Instant::now();
        let mut progressed = false;
        while started.elapsed() < Duration::from_secs(60) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if page_count(&killed.data()) > before {
                progressed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.below(120)));
        let still_running = child.try_wait().unwrap().is_none();
        child.kill().unwrap();
        child.wait().unwrap();
        let after = page_count(&killed.data());
        if progressed && still_running && after < total {
            kills += 1;
            eprintln!("kill {kills}: {before} → {after} of {total} pages recorded");
            assert!(after >= before);
        } else if after >= total {
            break;
        }
    }
    assert!(
        kills >= 3,
        "only {kills} kills landed while ingest was working"
    );

    let last = killed.ingest("crash", &[&scans]);
    assert!(
        last["skipped"].as_u64().unwrap() > 0,
        "the rerun must skip what was done: {last}"
    );
    assert_eq!(comparable(killed.show("crash")), expected);

    // No row points at a missing blob and no orphan blob is left.
    let fsck = killed.json(&["fsck"]);
    assert_eq!(fsck["clean"], true, "{fsck}");
    assert_eq!(fsck["findings"].as_array().unwrap().len(), 0, "{fsck}");
}
