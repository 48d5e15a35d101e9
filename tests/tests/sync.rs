//! End to end: real `dangan-hub` and `dangan-edge` processes on loopback,
//! real SQLite files, real image files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dangan_testkit::faultproxy::{FaultProxy, Faults};
use dangan_testkit::procs::{Edge, Hub};
use dangan_testkit::sets::write_plain_pages;
use serde_json::Value;

const DISTRICT: &str = "330106";
const OTHER_DISTRICT: &str = "330108";

/// Quick retries so that tests do not wait on backoff.
const FAST_RETRIES: &str = "[sync]\nretry_base_seconds = 1\nretry_max_seconds = 2\ngive_up_after_seconds = 20\nrequest_timeout_seconds = 10\n";

struct Setup {
    root: tempfile::TempDir,
    hub: Hub,
}

fn hub() -> Result<Setup> {
    let root = tempfile::tempdir()?;
    let mut hub = Hub::init(&root.path().join("hub"))?;
    hub.start("127.0.0.1:0")?;
    Ok(Setup { root, hub })
}

impl Setup {
    fn edge(&self, name: &str, district: &str, config: &str) -> Result<Edge> {
        let edge = Edge::init(&self.root.path().join(name), district, config)?;
        let code = self.hub.enrol_code(district)?;
        edge.enrol(&self.hub.url(), &code)?;
        Ok(edge)
    }

    fn pages(&self, name: &str, count: usize, seed: u64, kib: usize) -> Result<std::path::PathBuf> {
        let dir = self.root.path().join(name);
        write_plain_pages(&dir, count, seed, kib)?;
        Ok(dir)
    }
}

/// Blob ids of every page of a batch at the edge.
fn edge_blobs(edge: &Edge, batch: &str) -> Result<BTreeSet<String>> {
    let show = edge.json(&["batch", "show", batch])?;
    Ok(show["business_files"]
        .as_array()
        .context("business_files")?
        .iter()
        .flat_map(|f| f["pages"].as_array().cloned().unwrap_or_default())
        .map(|p| p["blob"].as_str().unwrap_or_default().to_owned())
        .collect())
}

/// The reconcile entry of one batch.
fn reconciled(hub: &Hub, district: &str, batch: &str) -> Result<Value> {
    let report = hub.reconcile()?;
    let districts = report["districts"].as_array().context("districts")?;
    let entry = districts
        .iter()
        .find(|d| d["district"] == district)
        .with_context(|| format!("district {district} missing from {report}"))?;
    entry["batches"]
        .as_array()
        .context("batches")?
        .iter()
        .find(|b| b["batch"] == batch)
        .cloned()
        .with_context(|| format!("batch {batch} missing from {entry}"))
}

/// Every blob the hub stores is named by its hash and hashes to it.
fn assert_hub_blobs_verify(hub: &Hub, expected: &BTreeSet<String>) -> Result<()> {
    let stored: BTreeSet<String> = hub.stored_blobs()?.into_iter().collect();
    assert_eq!(
        &stored, expected,
        "the hub stores exactly the batches' blobs"
    );
    for name in &stored {
        let path = hub.data.join("blobs").join(&name[..2]).join(name);
        let bytes = std::fs::read(&path).with_context(|| path.display().to_string())?;
        assert_eq!(
            &blake3::hash(&bytes).to_hex().to_string(),
            name,
            "blob {name} verifies"
        );
    }
    Ok(())
}

#[test]
fn a_district_syncs_exactly_once_and_a_second_sync_sends_nothing() -> Result<()> {
    let setup = hub()?;
    let edge = setup.edge("edge", DISTRICT, FAST_RETRIES)?;
    let first = setup.pages("in1", 6, 1, 40)?;
    let second = setup.pages("in2", 4, 2, 40)?;
    // The same image in two batches: one page of the first set again.
    std::fs::copy(first.join("p0001.jpg"), second.join("again.jpg"))?;
    edge.ingest_and_accept("B-1", &first)?;
    edge.ingest_and_accept("B-2", &second)?;
    // Batches not accepted stay at the edge.
    let third = setup.pages("in3", 2, 3, 20)?;
    edge.json(&["ingest", "--batch", "B-open", &third.display().to_string()])?;

    let report = edge.json(&["sync"])?;
    let mut all = edge_blobs(&edge, "B-1")?;
    all.extend(edge_blobs(&edge, "B-2")?);
    assert_eq!(report["batches_committed"], 2, "{report}");
    assert_eq!(
        report["blobs_sent"],
        all.len(),
        "each distinct blob sent once: {report}"
    );
    let wire = report["bytes_sent"].as_u64().unwrap();
    let sizes: u64 = std::fs::read_dir(&first)?
        .chain(std::fs::read_dir(&second)?)
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum::<u64>();
    assert!(
        wire <= sizes,
        "no more than the images were sent: {wire} > {sizes}"
    );
    assert_eq!(edge.batch_state("B-1")?, "archived");
    assert_eq!(edge.batch_state("B-2")?, "archived");
    assert_eq!(edge.batch_state("B-open")?, "open");
    assert_hub_blobs_verify(&setup.hub, &all)?;

    for batch in ["B-1", "B-2"] {
        let entry = reconciled(&setup.hub, DISTRICT, batch)?;
        assert_eq!(entry["state"], "archived", "{entry}");
    }

    let again = edge.json(&["sync"])?;
    assert_eq!(again["batches_committed"], 0, "{again}");
    assert_eq!(again["blobs_sent"], 0, "{again}");
    assert_eq!(again["bytes_sent"], 0, "{again}");
    Ok(())
}

#[test]
fn the_same_image_from_two_districts_is_stored_once() -> Result<()> {
    let setup = hub()?;
    let pages = setup.pages("in", 3, 7, 30)?;
    let east = setup.edge("east", DISTRICT, FAST_RETRIES)?;
    let west = setup.edge("west", OTHER_DISTRICT, FAST_RETRIES)?;
    east.ingest_and_accept("E-1", &pages)?;
    west.ingest_and_accept("W-1", &pages)?;
    let first = east.json(&["sync"])?;
    let second = west.json(&["sync"])?;
    assert_eq!(first["blobs_sent"], 3, "{first}");
    assert_eq!(
        second["blobs_sent"], 0,
        "the hub already had them: {second}"
    );
    assert_eq!(second["batches_committed"], 1, "{second}");
    assert_hub_blobs_verify(&setup.hub, &edge_blobs(&east, "E-1")?)?;
    assert_eq!(
        reconciled(&setup.hub, OTHER_DISTRICT, "W-1")?["state"],
        "archived"
    );
    Ok(())
}

/// Sends a raw HTTP/1.1 request and returns the status and body.
fn http(addr: &str, request: &str) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn node_token(edge: &Edge) -> Result<String> {
    let enrolment: Value = serde_json::from_slice(&std::fs::read(edge.data.join("hub.json"))?)?;
    Ok(enrolment["token"].as_str().context("token")?.to_owned())
}

#[test]
fn bad_or_revoked_credentials_get_401_and_other_districts_403() -> Result<()> {
    let setup = hub()?;
    let edge = setup.edge("edge", DISTRICT, FAST_RETRIES)?;
    let addr = setup.hub.addr.unwrap().to_string();
    let get = |token: &str| {
        http(
            &addr,
            &format!(
                "GET /sync/v1/batches HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
            ),
        )
    };
    let token = node_token(&edge)?;
    assert_eq!(get(&token)?.0, 200);
    let (status, body) = get("dn_0000")?;
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("\"unauthorized\""),
        "machine-readable error: {body}"
    );

    // A manifest for another district, signed in with this district's node.
    let manifest = format!(
        r#"{{"accepted_at":"2026-11-25T00:00:00Z","batch":"X","business_files":[{{"business_number":null,"business_type":null,"category":null,"date":null,"employer_id":null,"organisation":"{OTHER_DISTRICT}","pages":[{{"barcodes":[],"blank":false,"blob":"{blob}","colour":"gray","dpi":200,"format":"jpeg","frame":0,"height":10,"separator":false,"seq":1,"size":1,"source":"a.jpg","width":10}}],"person_id":null,"person_name":null,"retention":null,"seq":1}}],"business_type":null,"bytes":1,"district":"{OTHER_DISTRICT}","format":"dangan-manifest/1","pages":1}}"#,
        blob = blake3::hash(b"x").to_hex()
    );
    let hash = blake3::hash(manifest.as_bytes()).to_hex();
    let (status, body) = http(
        &addr,
        &format!(
            "POST /sync/v1/offers HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {token}\r\nManifest-Hash: {hash}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{manifest}",
            manifest.len()
        ),
    )?;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("\"forbidden\""), "{body}");

    // Malformed JSON gets a 400 with a machine-readable error.
    let (status, body) = http(
        &addr,
        &format!(
            "POST /sync/v1/commit HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{{oops"
        ),
    )?;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"malformed\""), "{body}");

    // Revoked: the edge's sync is refused and says so.
    let nodes = setup.hub.json(&["node", "list"])?;
    let node = nodes.as_array().and_then(|n| n.first()).context("a node")?;
    let id = node["id"].as_str().context("node id")?;
    let out = setup.hub.command(&["node", "revoke", id])?.output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get(&token)?.0, 401);
    let pages = setup.pages("in", 1, 5, 10)?;
    edge.ingest_and_accept("B-1", &pages)?;
    let (ok, report) = edge.try_json(&["sync"])?;
    assert!(!ok, "sync with a revoked credential fails: {report}");
    assert!(report.to_string().contains("credential"), "{report}");
    assert_eq!(edge.batch_state("B-1")?, "accepted");
    Ok(())
}

#[test]
fn a_receipt_signed_with_another_key_leaves_the_batch_unarchived() -> Result<()> {
    let mut setup = hub()?;
    let edge = setup.edge("edge", DISTRICT, FAST_RETRIES)?;
    let pages = setup.pages("in", 2, 11, 20)?;
    edge.ingest_and_accept("B-1", &pages)?;
    // Another hub's key in place of this hub's: its receipts no longer
    // verify with the key the edge learned at enrolment.
    let impostor = Hub::init(&setup.root.path().join("impostor"))?;
    let key = setup.hub.data.join("hub.key");
    let genuine = std::fs::read(&key)?;
    std::fs::copy(impostor.data.join("hub.key"), &key)?;
    setup.hub.restart()?;
    let (ok, report) = edge.try_json(&["sync"])?;
    assert!(!ok, "{report}");
    assert!(
        report["failures"][0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("receipt"),
        "{report}"
    );
    assert_ne!(edge.batch_state("B-1")?, "archived");

    std::fs::write(&key, genuine)?;
    setup.hub.restart()?;
    let report = edge.json(&["sync"])?;
    assert_eq!(report["batches_committed"], 1, "{report}");
    assert_eq!(edge.batch_state("B-1")?, "archived");
    Ok(())
}

#[test]
fn corrupted_cut_and_stalled_transfers_end_in_a_verified_archive() -> Result<()> {
    let setup = hub()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let proxy = runtime.block_on(FaultProxy::start(
        setup.hub.addr.unwrap(),
        Faults {
            corrupt: 0.3,
            cut: 0.3,
            stall: 0.1,
            stall_for: Duration::from_secs(3),
            min_body: 8 << 10,
        },
        42,
    ))?;
    let edge = Edge::init(
        &setup.root.path().join("edge"),
        DISTRICT,
        "[sync]\nretry_base_seconds = 1\nretry_max_seconds = 1\ngive_up_after_seconds = 60\nrequest_timeout_seconds = 2\n",
    )?;
    edge.enrol(&proxy.url(), &setup.hub.enrol_code(DISTRICT)?)?;
    let pages = setup.pages("in", 20, 21, 60)?;
    edge.ingest_and_accept("B-1", &pages)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while edge.batch_state("B-1")? != "archived" {
        assert!(Instant::now() < deadline, "not archived within 2 minutes");
        let _ = edge.try_json(&["sync"])?;
    }
    let stats = &proxy.stats;
    use std::sync::atomic::Ordering::Relaxed;
    assert!(
        stats.corrupted.load(Relaxed) > 0,
        "some bodies were corrupted"
    );
    assert!(stats.cuts.load(Relaxed) > 0, "some connections were cut");
    assert_hub_blobs_verify(&setup.hub, &edge_blobs(&edge, "B-1")?)?;
    Ok(())
}

/// Waits until `check` holds, polling.
fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !check() {
        if Instant::now() > deadline {
            anyhow::bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn partial_bytes(hub: &Hub) -> u64 {
    std::fs::read_dir(hub.data.join("partial"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn killing_the_edge_mid_transfer_then_resuming_completes_the_archive() -> Result<()> {
    let setup = hub()?;
    // 512 KiB/s over 20 pages of about 100 KB: about 4 s of transfer, of which the
    // two kills below take at most about one second.
    let edge = setup.edge(
        "edge",
        DISTRICT,
        "[sync]\nbandwidth_limit_kib = 512\nparallel_uploads = 2\nretry_base_seconds = 1\nretry_max_seconds = 2\n",
    )?;
    let pages = setup.pages("in", 20, 31, 300)?;
    edge.ingest_and_accept("B-1", &pages)?;
    let all = edge_blobs(&edge, "B-1")?;
    let mut rng = dangan_testkit::pages::Rng::new(99);
    for round in 0..2 {
        let stored_before = setup.hub.stored_blobs()?.len();
        let partial_before = partial_bytes(&setup.hub);
        let mut child = edge
            .command(&["sync", "--json"])?
            .stdout(std::process::Stdio::null())
            .spawn()?;
        // Wait until this run has put bytes on the wire, then a random moment more.
        wait_for("upload progress", Duration::from_secs(30), || {
            setup.hub.stored_blobs().map(|b| b.len()).unwrap_or(0) > stored_before
                || partial_bytes(&setup.hub) > partial_before
        })?;
        std::thread::sleep(Duration::from_millis(u64::from(rng.range(50, 300))));
        let running = child.try_wait()?.is_none();
        child.kill()?;
        child.wait()?;
        assert!(
            running,
            "round {round}: the sync finished before it could be killed"
        );
        let stored = setup.hub.stored_blobs()?.len();
        assert!(
            stored < all.len(),
            "round {round}: every blob already stored"
        );
        assert_ne!(edge.batch_state("B-1")?, "archived", "round {round}");
    }
    let report = edge.json(&["sync"])?;
    assert_eq!(report["batches_committed"], 1, "{report}");
    assert_eq!(edge.batch_state("B-1")?, "archived");
    assert_hub_blobs_verify(&setup.hub, &all)?;
    assert!(
        !setup.hub.data.join("partial").read_dir()?.any(|_| true),
        "no partial uploads left"
    );
    assert_eq!(
        reconciled(&setup.hub, DISTRICT, "B-1")?["state"],
        "archived"
    );
    Ok(())
}

#[test]
fn a_hub_that_cannot_store_keeps_the_edge_waiting_and_nothing_lost() -> Result<()> {
    let setup = hub()?;
    let edge = setup.edge(
        "edge",
        DISTRICT,
        "[sync]\nretry_base_seconds = 1\nretry_max_seconds = 1\ngive_up_after_seconds = 3\n",
    )?;
    let pages = setup.pages("in", 3, 41, 30)?;
    edge.ingest_and_accept("B-1", &pages)?;
    // The blob store's folder replaced by a file: every write fails.
    let blobs = setup.hub.data.join("blobs");
    let aside = setup.hub.data.join("blobs.aside");
    std::fs::rename(&blobs, &aside)?;
    std::fs::write(&blobs, b"not a folder")?;
    let (ok, report) = edge.try_json(&["sync"])?;
    assert!(!ok, "{report}");
    assert_ne!(edge.batch_state("B-1")?, "archived");
    // Told as a hub that cannot take data for now, not as damage here.
    assert_eq!(report["failures"][0]["code"], "hub_unavailable", "{report}");
    // The edge keeps every image.
    let fsck = edge.json(&["fsck"])?;
    assert_eq!(fsck["consistent"], true, "{fsck}");
    std::fs::remove_file(&blobs)?;
    std::fs::rename(&aside, &blobs)?;
    let report = edge.json(&["sync"])?;
    assert_eq!(report["batches_committed"], 1, "{report}");
    assert_hub_blobs_verify(&setup.hub, &edge_blobs(&edge, "B-1")?)?;
    Ok(())
}

/// The peak resident memory (VmHWM) of a live process, in KiB.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Counts rows of the hub's index.
fn hub_count(hub: &Hub, sql: &str) -> Result<i64> {
    let db = rusqlite::Connection::open(hub.data.join("hub.db"))?;
    Ok(db.query_row(sql, [], |row| row.get(0))?)
}

#[test]
fn killing_the_hub_during_commit_leaves_no_partial_batch_and_the_retry_commits() -> Result<()> {
    let mut setup = hub()?;
    let edge = setup.edge(
        "edge",
        DISTRICT,
        "[sync]\nretry_base_seconds = 1\nretry_max_seconds = 1\ngive_up_after_seconds = 60\nrequest_timeout_seconds = 10\n",
    )?;
    let pages = setup.pages("in", 12, 31, 20)?;
    edge.ingest_and_accept("B-1", &pages)?;
    let marker = setup.root.path().join("commit-paused");
    let marker_text = marker.display().to_string();
    setup.hub.restart_with(
        &[],
        &[("DANGAN_HUB_TEST_PAUSE_BEFORE_COMMIT", &marker_text)],
    )?;
    let sync = edge
        .command(&["sync", "--json"])?
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    // The hub has written every row of the batch but not committed.
    wait_for(
        "the hub to reach its commit",
        Duration::from_secs(60),
        || marker.exists(),
    )?;
    setup.hub.kill();
    assert_eq!(hub_count(&setup.hub, "SELECT COUNT(*) FROM batches")?, 0);
    assert_eq!(hub_count(&setup.hub, "SELECT COUNT(*) FROM pages")?, 0);
    assert_eq!(
        hub_count(&setup.hub, "SELECT COUNT(*) FROM business_files")?,
        0
    );
    assert_ne!(edge.batch_state("B-1")?, "archived");

    // The same sync pass, still retrying, commits once the hub is back.
    setup.hub.restart_with(&[], &[])?;
    let out = sync.wait_with_output()?;
    let report: Value = serde_json::from_slice(&out.stdout)?;
    assert!(out.status.success(), "{report}");
    assert_eq!(report["batches_committed"], 1, "{report}");
    assert_eq!(edge.batch_state("B-1")?, "archived");
    assert_eq!(hub_count(&setup.hub, "SELECT COUNT(*) FROM batches")?, 1);
    assert_eq!(hub_count(&setup.hub, "SELECT COUNT(*) FROM pages")?, 12);
    assert_eq!(
        reconciled(&setup.hub, DISTRICT, "B-1")?["state"],
        "archived"
    );
    Ok(())
}

#[test]
fn https_with_a_custom_ca() -> Result<()> {
    let root = tempfile::tempdir()?;
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../central-hub/tests/fixtures");
    let path = |name: &str| fixtures.join(name).display().to_string();
    let mut hub = Hub::init(&root.path().join("hub"))?;
    hub.start_with(
        "127.0.0.1:0",
        &[
            "--tls-cert",
            &path("hub.pem"),
            "--tls-key",
            &path("hub.key.pem"),
        ],
        &[],
    )?;
    assert!(hub.url().starts_with("https://"));
    let edge = Edge::init(&root.path().join("edge"), DISTRICT, FAST_RETRIES)?;
    let code = hub.enrol_code(DISTRICT)?;
    // The system's roots do not trust the hub's certificate.
    let (ok, refused) = edge.try_json(&["enrol", "--hub", &hub.url(), "--code", &code])?;
    assert!(!ok, "{refused}");
    assert!(
        refused.to_string().to_lowercase().contains("certificate"),
        "{refused}"
    );
    edge.json(&[
        "enrol",
        "--hub",
        &hub.url(),
        "--code",
        &code,
        "--ca-cert",
        &path("ca.pem"),
    ])?;

    let pages = root.path().join("in");
    write_plain_pages(&pages, 3, 41, 16)?;
    edge.ingest_and_accept("B-1", &pages)?;
    let report = edge.json(&["sync"])?;
    assert_eq!(report["batches_committed"], 1, "{report}");
    assert_eq!(edge.batch_state("B-1")?, "archived");
    assert_eq!(reconciled(&hub, DISTRICT, "B-1")?["state"], "archived");
    Ok(())
}

/// A batch of 100,000 pages (10,000 business files) syncs with the edge's
/// and the hub's peak memory bounded. The pages are ingested for real once
/// (20 images) and then multiplied in the edge's database: the subject here
/// is the sync, not the scanner.
#[test]
fn a_100000_page_batch_syncs_in_bounded_memory() -> Result<()> {
    const PAGES: i64 = 100_000;
    const PER_FILE: i64 = 10;
    const LIMIT_KIB: u64 = 200 << 10;
    let setup = hub()?;
    let edge = setup.edge("edge", DISTRICT, FAST_RETRIES)?;
    let images = setup.pages("in", 20, 51, 8)?;
    edge.json(&["ingest", "--batch", "BIG", &images.display().to_string()])?;
    {
        let mut db = rusqlite::Connection::open(edge.data.join("edge.db"))?;
        let tx = db.transaction()?;
        let (batch, pages, files): (i64, i64, i64) = tx.query_row(
            "SELECT b.id, (SELECT MAX(seq) FROM pages WHERE batch_id = b.id),
                    (SELECT MAX(seq) FROM business_files WHERE batch_id = b.id)
             FROM batches b WHERE b.name = 'BIG'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        tx.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
             INSERT INTO business_files(batch_id, seq, business_number, opened_by, created_at)
             SELECT ?1, ?3 + i, printf('YL%010d', i),
                    (SELECT opened_by FROM business_files WHERE batch_id = ?1 LIMIT 1),
                    datetime('now')
             FROM n",
            rusqlite::params![batch, PAGES / PER_FILE, files],
        )?;
        tx.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?2 - 1)
             INSERT INTO pages(batch_id, seq, business_file_id, source_id, frame, blob_id,
                 duplicate, format, width, height, dpi, colour, barcodes, separator, blank,
                 ink_ratio, created_at)
             SELECT ?1, ?3 + 1 + i,
                    (SELECT id FROM business_files WHERE batch_id = ?1 AND seq = ?4 + 1 + i / ?5),
                    t.source_id, 100000 + i, t.blob_id, 1, t.format, t.width, t.height, t.dpi,
                    t.colour, '[]', 0, 0, t.ink_ratio, t.created_at
             FROM n JOIN pages t ON t.batch_id = ?1 AND t.seq = 1 + i % ?3",
            rusqlite::params![batch, PAGES, pages, files, PER_FILE],
        )?;
        tx.commit()?;
    }
    edge.json(&["batch", "accept", "BIG", "--reason", "test"])?;

    let mut sync = edge
        .command(&["sync", "--json"])?
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let stdout = sync.stdout.take().context("stdout")?;
    let reader = std::thread::spawn(move || -> Result<Value> {
        Ok(serde_json::from_reader(std::io::BufReader::new(stdout))?)
    });
    let mut edge_peak = 0;
    while sync.try_wait()?.is_none() {
        edge_peak = edge_peak.max(peak_kib(sync.id()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(10));
    }
    let report = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    let hub_peak = peak_kib(setup.hub.pid().context("hub pid")?).context("hub VmHWM")?;
    eprintln!("100,000 pages: edge peak {edge_peak} KiB, hub peak {hub_peak} KiB; {report}");
    assert_eq!(report["batches_committed"], 1, "{report}");
    assert_eq!(edge.batch_state("BIG")?, "archived");
    let total = PAGES + 20;
    assert_eq!(hub_count(&setup.hub, "SELECT COUNT(*) FROM pages")?, total);
    assert_eq!(reconciled(&setup.hub, DISTRICT, "BIG")?["pages"], total);
    assert!(
        edge_peak > 0 && edge_peak < LIMIT_KIB,
        "edge peak {edge_peak} KiB"
    );
    assert!(hub_peak < LIMIT_KIB, "hub peak {hub_peak} KiB");
    Ok(())
}

/// A sync window that is closed now and for the next twelve hours: one
/// minute, half a day from now in Asia/Shanghai (UTC+8, no summer time).
fn closed_window() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let shanghai = (secs / 60 + 8 * 60) % 1440;
    let start = (shanghai + 720) % 1440;
    let end = start + 1;
    format!(
        "daily {:02}:{:02}-{:02}:{:02}",
        start / 60,
        start % 60,
        end / 60,
        end % 60
    )
}

#[test]
fn outside_the_sync_window_nothing_moves_but_the_hub_sees_the_queue() -> Result<()> {
    let setup = hub()?;
    let config = format!("[sync]\nwindows = [\"{}\"]\n", closed_window());
    let edge = setup.edge("edge", DISTRICT, &config)?;
    let pages = setup.pages("in", 3, 61, 20)?;
    edge.ingest_and_accept("B-1", &pages)?;
    let report = edge.json(&["sync"])?;
    assert_eq!(report["outside_window"], true, "{report}");
    assert_eq!(report["bytes_sent"], 0, "{report}");
    assert_eq!(report["batches_queued"], 1, "{report}");
    assert_eq!(reconciled(&setup.hub, DISTRICT, "B-1")?["state"], "queued");
    assert!(setup.hub.stored_blobs()?.is_empty());
    // An operator may sync now, whatever the windows say.
    let report = edge.json(&["sync", "--now"])?;
    assert_eq!(report["batches_committed"], 1, "{report}");
    assert_eq!(
        reconciled(&setup.hub, DISTRICT, "B-1")?["state"],
        "archived"
    );
    Ok(())
}

#[test]
fn the_bandwidth_limit_paces_the_upload() -> Result<()> {
    let setup = hub()?;
    let limit_kib = 200;
    let config = format!("[sync]\nbandwidth_limit_kib = {limit_kib}\n");
    let edge = setup.edge("edge", DISTRICT, &config)?;
    let pages = setup.pages("in", 8, 71, 128)?;
    edge.ingest_and_accept("B-1", &pages)?;
    let started = Instant::now();
    let report = edge.json(&["sync"])?;
    let elapsed = started.elapsed().as_secs_f64();
    let sent = report["bytes_sent"].as_u64().unwrap() as f64;
    assert!(sent > 300_000.0, "{report}");
    // Paced, no burst: all but the last chunk wait their turn.
    let floor = (sent - 64.0 * 1024.0) / (limit_kib as f64 * 1024.0);
    assert!(
        elapsed >= floor,
        "{sent} bytes in {elapsed:.2} s at {limit_kib} KiB/s"
    );
    assert_eq!(report["batches_committed"], 1, "{report}");
    Ok(())
}

#[test]
fn the_cache_budget_evicts_only_archived_images_oldest_first() -> Result<()> {
    let setup = hub()?;
    let edge = setup.edge("edge", DISTRICT, "[cache]\nbudget_mib = 1\n")?;
    let old = setup.pages("old", 10, 81, 100)?;
    let newer = setup.pages("newer", 10, 82, 100)?;
    // About 40 KiB a page: 41 images in all, the budget holds about 25.
    let open = setup.pages("open", 20, 83, 100)?;
    edge.ingest_and_accept("B-old", &old)?;
    edge.json(&["sync"])?;
    edge.ingest_and_accept("B-new", &newer)?;
    // An image of the archived batch scanned again into an open batch.
    std::fs::copy(old.join("p0001.jpg"), open.join("again.jpg"))?;
    edge.json(&["ingest", "--batch", "B-open", &open.display().to_string()])?;
    let thumbs_before = count_files(&edge.data.join("cache/thumbs"))?;

    let report = edge.json(&["sync"])?;
    assert_eq!(report["batches_committed"], 1, "{report}");
    assert!(report["evicted_blobs"].as_u64().unwrap() > 0, "{report}");
    let status = edge.json(&["cache", "status"])?;
    let present = |dir: &std::path::Path, name: &str| -> Result<bool> {
        let blob = blake3::hash(&std::fs::read(dir.join(name))?)
            .to_hex()
            .to_string();
        Ok(edge
            .data
            .join("cache/blobs")
            .join(&blob[..2])
            .join(&blob[2..4])
            .join(&blob)
            .exists())
    };
    // The open batch keeps everything, the shared image included.
    for entry in std::fs::read_dir(&open)? {
        let name = entry?.file_name().into_string().unwrap();
        assert!(
            present(&open, &name)?,
            "open batch image {name} evicted: {status}"
        );
    }
    assert!(present(&old, "p0001.jpg")?);
    // The older archived batch went first.
    let evicted_old = (2..=10)
        .filter(|i| !present(&old, &format!("p{i:04}.jpg")).unwrap())
        .count();
    let evicted_new = (1..=10)
        .filter(|i| !present(&newer, &format!("p{i:04}.jpg")).unwrap())
        .count();
    assert_eq!(evicted_old, 9, "{status}");
    assert!(evicted_new > 0 && evicted_new < 10, "{status}");
    let (held, budget) = (status["bytes"].as_u64().unwrap(), 1 << 20);
    assert!(held <= budget, "{status}");
    assert_eq!(status["over_budget"], false, "{status}");
    assert_eq!(count_files(&edge.data.join("cache/thumbs"))?, thumbs_before);
    let fsck = edge.json(&["fsck"])?;
    assert_eq!(fsck["consistent"], true, "{fsck}");
    Ok(())
}

#[test]
fn a_damaged_cache_file_fails_only_its_batch_and_says_so() -> Result<()> {
    let setup = hub()?;
    let edge = setup.edge("edge", DISTRICT, FAST_RETRIES)?;
    let damaged = setup.pages("damaged", 3, 91, 40)?;
    let fine = setup.pages("fine", 3, 92, 40)?;
    edge.ingest_and_accept("B-damaged", &damaged)?;
    edge.ingest_and_accept("B-fine", &fine)?;
    // One cached image loses its second half (a bad sector, a careless
    // hand): it is no longer the blob its manifest names.
    let original = std::fs::read(damaged.join("p0002.jpg"))?;
    let blob = blake3::hash(&original).to_hex().to_string();
    let cached = edge
        .data
        .join("cache/blobs")
        .join(&blob[..2])
        .join(&blob[2..4])
        .join(&blob);
    let mut permissions = std::fs::metadata(&cached)?.permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(&cached, permissions)?;
    std::fs::write(&cached, &original[..original.len() / 2])?;

    let (_, report) = edge.try_json(&["sync"])?;
    assert_eq!(report["batches_committed"], 1, "{report}");
    let failures = report["failures"].as_array().context("failures")?;
    assert_eq!(failures.len(), 1, "{report}");
    assert_eq!(failures[0]["batch"], "B-damaged", "{report}");
    let error = failures[0]["error"].as_str().unwrap_or_default();
    // Named as local damage with what to do, not as a network failure
    // retried until the pass gives up.
    assert!(error.contains(&blob) && error.contains("fsck"), "{report}");
    assert_eq!(failures[0]["code"], "blob_damaged", "{report}");
    // An operator reading the pass in Chinese (the default) is told what
    // happened in Chinese, with the technical message after it.
    let out = edge.command(&["sync"])?.env("DANGAN_LANG", "zh").output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("缓存中的图像已损坏，请运行 dangan-edge fsck") && text.contains(&blob),
        "{text}"
    );
    assert_eq!(edge.batch_state("B-fine")?, "archived");
    assert_ne!(edge.batch_state("B-damaged")?, "archived");
    assert!(
        !setup.hub.stored_blobs()?.contains(&blob),
        "the hub stored nothing under the damaged blob's name"
    );

    // Nothing else was lost: with the image back, the batch archives.
    std::fs::write(&cached, &original)?;
    let again = edge.json(&["sync"])?;
    assert_eq!(again["batches_committed"], 1, "{again}");
    assert_eq!(edge.batch_state("B-damaged")?, "archived");
    let mut all = edge_blobs(&edge, "B-damaged")?;
    all.extend(edge_blobs(&edge, "B-fine")?);
    assert_hub_blobs_verify(&setup.hub, &all)
}

fn count_files(dir: &std::path::Path) -> Result<usize> {
    let mut count = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            count += count_files(&entry.path())?;
        } else {
            count += 1;
        }
    }
    Ok(count)
}

/// The hub's archive describes itself: business numbers read from the
/// barcodes, the business type and the organisation travel as values.
#[test]
fn the_archive_carries_the_business_metadata() -> Result<()> {
    let setup = hub()?;
    let edge = setup.edge("edge", DISTRICT, FAST_RETRIES)?;
    let folders = dangan_testkit::sets::write_district(&setup.root.path().join("scans"), 1, 6)?;
    let folder = folders[0].display().to_string();
    edge.json(&[
        "ingest",
        "--batch",
        "B-1",
        "--business-type",
        "D01",
        &folder,
    ])?;
    edge.json(&["batch", "accept", "B-1", "--reason", "test"])?;
    let expected: Vec<Option<String>> = edge.json(&["batch", "show", "B-1"])?["business_files"]
        .as_array()
        .context("business_files")?
        .iter()
        .map(|f| f["business_number"].as_str().map(str::to_owned))
        .collect();
    assert!(
        expected.len() >= 2 && expected.iter().all(Option::is_some),
        "{expected:?}"
    );
    edge.json(&["sync"])?;

    let db = rusqlite::Connection::open(setup.hub.data.join("hub.db"))?;
    let mut statement = db.prepare(
        "SELECT f.business_number, f.business_type, f.organisation, f.category, f.retention
         FROM business_files f
         JOIN batches b ON b.id = f.batch_id WHERE b.batch = 'B-1' ORDER BY f.seq",
    )?;
    type Row = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = statement
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let numbers: Vec<Option<String>> = rows.iter().map(|r| r.0.clone()).collect();
    assert_eq!(numbers, expected);
    // D01 (基本养老金核定) is a payment-category type kept permanently in the
    // shipped templates.
    for (_, business_type, organisation, category, retention) in &rows {
        assert_eq!(business_type.as_deref(), Some("D01"));
        assert_eq!(organisation.as_deref(), Some(DISTRICT));
        assert_eq!(category.as_deref(), Some("payment"));
        assert_eq!(retention.as_deref(), Some("permanent"));
    }
    Ok(())
}

/// The hub's dictionaries and templates reach an edge when it syncs; an
/// edge that cannot reach the hub keeps the versions it has and catches up
/// from its cursor when the hub is back.
#[test]
fn dictionary_versions_reach_an_edge_through_sync_and_an_offline_edge_keeps_its_copy() -> Result<()>
{
    let mut setup = hub()?;
    // Give up on an unreachable hub quickly.
    let config = "[sync]\nretry_base_seconds = 1\nretry_max_seconds = 1\ngive_up_after_seconds = 2\nrequest_timeout_seconds = 5\n";
    let edge = setup.edge("edge", DISTRICT, config)?;
    let before = edge.json(&["dictionary", "defects"])?;
    assert_eq!(before["source"], "shipped", "{before}");

    // An administrator retires one defect type, renames another, and
    // publishes a new version of template A01.
    let mut defects = setup.hub.json(&["dictionary", "show", "defects"])?;
    assert_eq!(defects["version"], 1, "{defects}");
    for entry in defects["entries"].as_array_mut().context("entries")? {
        match entry["code"].as_str() {
            Some("blur") => entry["active"] = Value::Bool(false),
            Some("skew") => entry["zh"] = Value::from("倾斜"),
            _ => {}
        }
    }
    let file = setup.root.path().join("defects.json");
    std::fs::write(&file, defects.to_string())?;
    let published =
        setup
            .hub
            .json(&["dictionary", "set", "defects", &file.display().to_string()])?;
    assert_eq!(published["version"], 2, "{published}");
    let seed = dangan_shared_seed();
    let a01 = seed.replacen(
        "name = \"单位参保登记\"",
        "name = \"单位参保登记（2027版）\"",
        1,
    );
    assert_ne!(a01, seed);
    let templates = setup.root.path().join("templates.toml");
    std::fs::write(&templates, &a01)?;
    let imported = setup
        .hub
        .json(&["template", "import", &templates.display().to_string()])?;
    let changed: Vec<&Value> = imported
        .as_array()
        .context("import report")?
        .iter()
        .filter(|t| t["changed"] == true)
        .collect();
    assert_eq!(changed.len(), 1, "{imported}");
    assert_eq!(changed[0]["business_type"], "A01");

    let report = edge.json(&["sync"])?;
    let updates = report["dictionary_updates"].to_string();
    assert!(
        updates.contains("defects v2") && updates.contains("template A01 v2"),
        "{report}"
    );
    let defects = edge.json(&["dictionary", "defects"])?;
    assert_eq!(defects["source"], "hub");
    assert_eq!(defects["version"], 2);
    let entry = |code: &str| {
        defects["entries"]
            .as_array()
            .and_then(|all| all.iter().find(|e| e["code"] == code))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(entry("blur")["active"], false, "{defects}");
    assert_eq!(entry("skew")["zh"], "倾斜", "{defects}");
    let template = edge.json(&["template", "show", "A01"])?;
    assert_eq!(template["name"], "单位参保登记（2027版）", "{template}");
    assert_eq!(template["source"], "hub v2", "{template}");
    // A second sync has nothing new to apply.
    let again = edge.json(&["sync"])?;
    assert_eq!(again["dictionary_updates"], Value::Array(vec![]), "{again}");

    // The hub goes away; meanwhile it publishes version 3 of A01.
    setup.hub.kill();
    let a01_v3 = a01.replacen(
        "name = \"单位参保登记（2027版）\"",
        "name = \"单位参保登记（2028版）\"",
        1,
    );
    std::fs::write(&templates, &a01_v3)?;
    setup
        .hub
        .json(&["template", "import", &templates.display().to_string()])?;
    let (_, offline) = edge.try_json(&["sync"])?;
    assert!(
        offline.to_string().contains("reach") || offline.get("dictionary_error").is_some(),
        "the edge says the hub is unreachable: {offline}"
    );
    // Offline, the edge keeps what it received: a new batch of business
    // type A01 is bound to the hub's version 2.
    let template = edge.json(&["template", "show", "A01"])?;
    assert_eq!(template["name"], "单位参保登记（2027版）", "{template}");
    assert_eq!(edge.json(&["dictionary", "defects"])?["version"], 2);
    let pages = setup.pages("in-a01", 2, 7, 20)?;
    edge.json(&[
        "ingest",
        "--batch",
        "A01-offline",
        "--business-type",
        "A01",
        &pages.display().to_string(),
    ])?;
    let batch = edge.json(&["batch", "show", "A01-offline"])?;
    let bound = template["version"].clone();
    assert_eq!(batch["template"]["version"], bound, "{batch}");

    // Back online, the edge catches up from its cursor.
    setup.hub.restart()?;
    let report = edge.json(&["sync"])?;
    assert!(
        report["dictionary_updates"]
            .to_string()
            .contains("template A01 v3"),
        "{report}"
    );
    let template = edge.json(&["template", "show", "A01"])?;
    assert_eq!(template["name"], "单位参保登记（2028版）", "{template}");
    // The batch scanned offline keeps the version it was bound to.
    let batch = edge.json(&["batch", "show", "A01-offline"])?;
    assert_eq!(batch["template"]["version"], bound, "{batch}");
    Ok(())
}

/// The shipped template file.
fn dangan_shared_seed() -> String {
    include_str!("../../shared/seed/templates.toml").to_owned()
}

/// `dangan-edge warehouse …` with `--json`.
fn warehouse(edge: &Edge, args: &[&str]) -> Result<Value> {
    let mut all = vec!["warehouse"];
    all.extend_from_slice(args);
    edge.json(&all)
}

/// The hub's warehouse feed history of a district: each event's seq and kind.
fn hub_events(hub: &Hub, district: &str) -> Result<Vec<(i64, String)>> {
    let db = rusqlite::Connection::open(hub.data.join("hub.db"))?;
    let mut stmt = db.prepare(
        "SELECT seq, kind FROM warehouse_events WHERE district = ?1 ORDER BY received_at, seq",
    )?;
    let rows = stmt
        .query_map([district], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The hub's view of a business file (`GET /api/v1/files/{id}`) as its
/// administrator.
fn hub_file(hub: &Hub, id: i64) -> Result<Value> {
    Ok(reqwest::blocking::Client::new()
        .get(format!("{}/api/v1/files/{id}", hub.url()))
        .bearer_auth(&hub.admin_token)
        .send()?
        .error_for_status()?
        .json()?)
}

#[test]
fn warehouse_events_reach_the_hub_in_order_and_a_previous_version_edge_still_syncs_batches()
-> Result<()> {
    let mut setup = hub()?;
    // Quick to give up on a hub that is down; first an edge still speaking
    // protocol version 1.
    let config = "[sync]\nretry_base_seconds = 1\nretry_max_seconds = 1\ngive_up_after_seconds = 2\nrequest_timeout_seconds = 5\n";
    let v1 = format!("{config}protocol = 1\n");
    let edge = setup.edge("edge", DISTRICT, &v1)?;
    let pages = setup.pages("in1", 4, 7, 20)?;
    edge.ingest_and_accept("B-1", &pages)?;
    // The archive room shelves a box and binds the batch's first file into
    // a volume in it.
    for (kind, code, name, parent) in [
        ("room", "K01", "一号库房", None),
        ("cabinet", "K01-L01", "第1列", Some("K01")),
        ("shelf", "K01-L01-S1", "第1层", Some("K01-L01")),
        ("shelf", "K01-L01-S2", "第2层", Some("K01-L01")),
        ("box", "BOX-0001", "2026 养老 1", None),
    ] {
        let mut args = vec!["location", "--kind", kind, "--code", code, "--name", name];
        if let Some(parent) = parent {
            args.extend(["--parent", parent]);
        }
        warehouse(&edge, &args)?;
    }
    warehouse(&edge, &["shelve", "BOX-0001", "K01-L01-S1"])?;
    warehouse(
        &edge,
        &[
            "volume",
            "--code",
            "VOL-0001",
            "--title",
            "2026年 待遇核定 第1卷",
            "--box",
            "BOX-0001",
        ],
    )?;
    warehouse(&edge, &["file", "B-1", "1", "VOL-0001"])?;
    let events_at_edge = 8;

    // Version 1: the batch is archived; the warehouse events wait, and the
    // report says why.
    let report = edge.json(&["sync"])?;
    assert_eq!(report["batches_committed"], 1, "{report}");
    assert_eq!(
        report["warehouse_events_pending"], events_at_edge,
        "{report}"
    );
    assert!(
        report["warehouse_error"]
            .as_str()
            .is_some_and(|e| e.contains("protocol is 1")),
        "{report}"
    );
    assert_eq!(edge.batch_state("B-1")?, "archived");
    assert_eq!(
        reconciled(&setup.hub, DISTRICT, "B-1")?["state"],
        "archived"
    );
    assert!(hub_events(&setup.hub, DISTRICT)?.is_empty());
    let file_id = hub_count(
        &setup.hub,
        "SELECT f.id FROM business_files f JOIN batches b ON b.id = f.batch_id
         WHERE b.batch = 'B-1' AND f.seq = 1",
    )?;
    assert!(hub_file(&setup.hub, file_id)?["original"].is_null());

    // Upgraded to version 2: every event reaches the hub, in order, once,
    // and the hub shows where the file's original is.
    std::fs::write(edge.data.join("edge.toml"), config)?;
    let report = edge.json(&["sync"])?;
    assert_eq!(report["warehouse_events_sent"], events_at_edge, "{report}");
    assert_eq!(report["warehouse_events_pending"], 0, "{report}");
    let seqs: Vec<i64> = hub_events(&setup.hub, DISTRICT)?
        .into_iter()
        .map(|(seq, _)| seq)
        .collect();
    assert_eq!(seqs, (1..=events_at_edge).collect::<Vec<_>>());
    let original = hub_file(&setup.hub, file_id)?["original"].clone();
    assert_eq!(original["volume"], "VOL-0001", "{original}");
    let path: Vec<&str> = original["path"]
        .as_array()
        .context("path")?
        .iter()
        .filter_map(|p| p["code"].as_str())
        .collect();
    assert_eq!(path, ["K01", "K01-L01", "K01-L01-S1", "BOX-0001"]);
    assert!(original["loan"].is_null(), "{original}");

    // A hub reviewer asks for the original; the edge receives the request
    // on its next sync, the archive admin approves and lends it, and the
    // hub sees it on loan.
    let due = "2099-01-31";
    reqwest::blocking::Client::new()
        .post(format!(
            "{}/api/v1/files/{file_id}/loan-requests",
            setup.hub.url()
        ))
        .bearer_auth(&setup.hub.admin_token)
        .json(&serde_json::json!({ "purpose": "待遇复核", "due_date": due }))
        .send()?
        .error_for_status()?;
    let report = edge.json(&["sync"])?;
    assert_eq!(report["loan_requests_received"], 1, "{report}");
    let loans = warehouse(&edge, &["loans"])?;
    assert_eq!(loans[0]["item"], "VOL-0001", "{loans}");
    assert!(loans[0]["hub_request"].as_u64().is_some(), "{loans}");
    let id = loans[0]["id"].to_string();
    warehouse(&edge, &["loan", &id, "approve"])?;
    warehouse(&edge, &["loan", &id, "lend"])?;

    // The hub is down while the edge syncs: nothing is lost, the three loan
    // events (requested, approved, lent) wait.
    setup.hub.kill();
    let (ok, report) = edge.try_json(&["sync"])?;
    assert!(!ok, "a sync with the hub down fails: {report}");
    let feed = warehouse(&edge, &["feed"])?;
    assert_eq!(
        feed["events"]
            .as_u64()
            .zip(feed["acked"].as_u64())
            .map(|(e, a)| e - a),
        Some(3),
        "{feed}"
    );
    setup.hub.restart()?;
    let report = edge.json(&["sync"])?;
    assert_eq!(report["warehouse_events_sent"], 3, "{report}");
    // A crash after the hub applied events but before the edge recorded it
    // (the edge's acknowledgement lost): the next sync asks the hub where it
    // stands and sends nothing twice.
    rusqlite::Connection::open(edge.data.join("edge.db"))?
        .execute("UPDATE warehouse_feed SET acked = 0", [])?;
    let report = edge.json(&["sync"])?;
    assert_eq!(report["warehouse_events_sent"], 0, "{report}");
    assert_eq!(report["warehouse_events_pending"], 0, "{report}");
    let seqs: Vec<i64> = hub_events(&setup.hub, DISTRICT)?
        .into_iter()
        .map(|(seq, _)| seq)
        .collect();
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "every event once, in order");
    let loan = hub_file(&setup.hub, file_id)?["original"]["loan"].clone();
    assert_eq!(loan["state"], "lent", "{loan}");
    assert_eq!(loan["overdue"], false, "{loan}");
    Ok(())
}

/// A hub of the previous release in front of this one: every `/sync/v2`
/// path is a bare 404 (as an old hub's router answers), everything else is
/// forwarded as it is.
async fn old_hub(upstream: String) -> Result<(String, tokio::task::JoinHandle<()>)> {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |request: Request| {
        let client = client.clone();
        let upstream = upstream.clone();
        async move {
            let path = request
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            if path.starts_with("/sync/v2") {
                return StatusCode::NOT_FOUND.into_response();
            }
            let (parts, body) = request.into_parts();
            let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
                return StatusCode::BAD_REQUEST.into_response();
            };
            let mut forward = client.request(parts.method, format!("{upstream}{path}"));
            for (name, value) in &parts.headers {
                if name != "host" {
                    forward = forward.header(name, value);
                }
            }
            match forward.body(body).send().await {
                Ok(answer) => {
                    let mut response = Response::builder().status(answer.status());
                    for (name, value) in answer.headers() {
                        response = response.header(name, value);
                    }
                    let bytes = answer.bytes().await.unwrap_or_default();
                    response
                        .body(Body::from(bytes))
                        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
                }
                Err(_) => StatusCode::BAD_GATEWAY.into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, task))
}

#[test]
fn an_edge_of_this_release_syncs_batches_with_a_hub_of_the_previous_one() -> Result<()> {
    let setup = hub()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let (old, task) = runtime.block_on(old_hub(setup.hub.url()))?;
    // Enrolled through the old hub's address (enrolment is a v1 exchange).
    let edge = Edge::init(&setup.root.path().join("edge"), DISTRICT, FAST_RETRIES)?;
    edge.enrol(&old, &setup.hub.enrol_code(DISTRICT)?)?;
    let pages = setup.pages("in1", 3, 11, 20)?;
    edge.ingest_and_accept("B-1", &pages)?;
    warehouse(
        &edge,
        &[
            "location",
            "--kind",
            "room",
            "--code",
            "K01",
            "--name",
            "一号库房",
        ],
    )?;
    // Protocol 2 is configured; the old hub's 404 makes the pass speak 1.
    let report = edge.json(&["sync"])?;
    assert_eq!(report["batches_committed"], 1, "{report}");
    assert_eq!(report["warehouse_events_pending"], 1, "{report}");
    assert!(
        report["warehouse_error"]
            .as_str()
            .is_some_and(|e| e.contains("protocol 1 only")),
        "{report}"
    );
    assert_eq!(edge.batch_state("B-1")?, "archived");
    assert_eq!(
        reconciled(&setup.hub, DISTRICT, "B-1")?["state"],
        "archived"
    );
    task.abort();
    Ok(())
}
