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
    // 2 MiB/s over 30 pages of ~200 KiB: about 3 s of transfer to kill into.
    let edge = setup.edge(
        "edge",
        DISTRICT,
        "[sync]\nbandwidth_limit_kib = 2048\nparallel_uploads = 2\nretry_base_seconds = 1\nretry_max_seconds = 2\n",
    )?;
    let pages = setup.pages("in", 30, 31, 200)?;
    edge.ingest_and_accept("B-1", &pages)?;
    let all = edge_blobs(&edge, "B-1")?;
    let mut rng = dangan_testkit::pages::Rng::new(99);
    let mut kills = 0;
    for round in 0..3 {
        let before = setup.hub.stored_blobs()?.len();
        let mut child = edge
            .command(&["sync", "--json"])?
            .stdout(std::process::Stdio::null())
            .spawn()?;
        // Wait until this run has put bytes on the wire, then a random moment more.
        wait_for("upload progress", Duration::from_secs(30), || {
            setup.hub.stored_blobs().map(|b| b.len()).unwrap_or(0) > before
                || partial_bytes(&setup.hub) > 0
        })?;
        std::thread::sleep(Duration::from_millis(u64::from(rng.range(50, 600))));
        let running = child.try_wait()?.is_none();
        child.kill()?;
        child.wait()?;
        let stored = setup.hub.stored_blobs()?.len();
        if running && stored < all.len() {
            kills += 1;
            assert_ne!(edge.batch_state("B-1")?, "archived", "round {round}");
        }
    }
    assert!(
        kills >= 2,
        "at least two kills landed mid-transfer ({kills})"
    );
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
