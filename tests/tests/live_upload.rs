//! Street offices' live uploads against a real `dangan-hub serve`:
//!
//! - tus conformance with a standard client, tus-js-client under Node
//!   (`tests/browser/tus.mjs`): a large page interrupted and resumed from
//!   the hub's offset, an upload left past its expiry started again, and a
//!   termination; the pages that completed are in the hub's blob store and
//!   audit trail;
//! - the clerk's upload page in headless Chromium
//!   (`tests/browser/upload.mjs`) through a fault proxy that cuts and
//!   stalls uploads, with a reload in the middle of one, and a reviewer
//!   sending the file back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use anyhow::{Context, Result, ensure};
use dangan_shared::BlobId;
use dangan_testkit::procs::Hub;
use image::ImageEncoder;
use serde_json::{Value, json};

/// Seconds an unfinished upload lives in this test.
const EXPIRE_SECONDS: u64 = 3;

/// A scanned page of noise (incompressible): `width`×`height` gray PNG.
fn noise_png(width: u32, height: u32) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let page = image::GrayImage::from_fn(width, height, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        image::Luma([(state >> 56) as u8])
    });
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(page.as_raw(), width, height, image::ExtendedColorType::L8)
        .unwrap();
    out
}

/// A hub with cheap password hashing and short-lived unfinished uploads,
/// 西湖区 with its street office 西溪街道 and a clerk `xi` there.
fn street_office_hub(root: &std::path::Path) -> Result<Hub> {
    let hub = Hub::init(&root.join("hub"))?;
    hub.cheap_passwords()?;
    let config = hub.data.join("hub.toml");
    let text = std::fs::read_to_string(&config)?.replace(
        "expire_hours = 24",
        &format!("expire_hours = 24\nexpire_seconds = {EXPIRE_SECONDS}"),
    );
    std::fs::write(&config, text)?;
    hub.street_office_clerk("xi", "xi-password-1")?;
    Ok(hub)
}

#[test]
fn a_standard_tus_client_resumes_expires_and_terminates_uploads() -> Result<()> {
    let root = tempfile::tempdir()?;
    let mut hub = street_office_hub(root.path())?;
    hub.start("127.0.0.1:0")?;
    let session: Value = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/session", hub.url()))
        .json(&json!({ "username": "xi", "password": "xi-password-1" }))
        .send()?
        .error_for_status()?
        .json()?;
    let token = session["token"].as_str().context("token")?.to_owned();

    let pages = root.path().join("pages");
    std::fs::create_dir_all(&pages)?;
    // About 6 MiB: six chunks of the client's 1 MiB.
    let large = noise_png(2400, 2600);
    let small = noise_png(200, 240);
    std::fs::write(pages.join("large.png"), &large)?;
    std::fs::write(pages.join("small.png"), &small)?;

    let result = dangan_testkit::browser::run_node(
        "tus.mjs",
        &hub.url(),
        &[
            ("DANGAN_TOKEN", token),
            (
                "DANGAN_LARGE_PAGE",
                pages.join("large.png").display().to_string(),
            ),
            (
                "DANGAN_SMALL_PAGE",
                pages.join("small.png").display().to_string(),
            ),
            ("DANGAN_EXPIRE_SECONDS", EXPIRE_SECONDS.to_string()),
        ],
    )?;
    ensure!(result["ok"] == true, "{result}");

    // The two pages that finished are blobs named by their BLAKE3 hash.
    let stored = hub.stored_blobs()?;
    for page in [&large, &small] {
        let name = BlobId::of(page).to_hex();
        ensure!(stored.contains(&name), "{name} missing from {stored:?}");
    }
    // And pages of their live business files, recorded under the clerk.
    let entries = hub.json(&["audit", "list", "--actor", "xi"])?;
    let mut added: Vec<&str> = entries
        .as_array()
        .context("entries")?
        .iter()
        .filter(|e| e["action"] == "live.page.add")
        .filter_map(|e| e["target"].as_str())
        .collect();
    added.sort_unstable();
    assert_eq!(added, vec!["TUS-0001", "TUS-0002"]);
    Ok(())
}

#[test]
fn a_clerk_uploads_through_a_flaky_connection_in_the_browser() -> Result<()> {
    let root = tempfile::tempdir()?;
    let mut hub = street_office_hub(root.path())?;
    hub.with_password(
        &[
            "user", "add", "zhou", "--role", "reviewer", "--org", "330106",
        ],
        "zhou-password-1",
    )?;
    hub.start("127.0.0.1:0")?;
    let pages = root.path().join("pages");
    std::fs::create_dir_all(&pages)?;
    for (index, name) in ["page-1.png", "page-2.png", "page-3.png"]
        .iter()
        .enumerate()
    {
        std::fs::write(pages.join(name), noise_png(700, 900 + index as u32))?;
    }
    // About 2.5 MiB: ten of the page's 256 KiB chunks, stalled 0.4 s each.
    std::fs::write(pages.join("large.png"), noise_png(1500, 1700))?;

    // Between the browser and the hub: a line that cuts a quarter of the
    // uploads part way and stalls most of them.
    let runtime = tokio::runtime::Runtime::new()?;
    let upstream: std::net::SocketAddr = hub
        .url()
        .trim_start_matches("http://")
        .parse()
        .context("hub address")?;
    let proxy = runtime.block_on(dangan_testkit::faultproxy::FaultProxy::start(
        upstream,
        dangan_testkit::faultproxy::Faults {
            corrupt: 0.0,
            cut: 0.25,
            stall: 0.8,
            stall_for: std::time::Duration::from_millis(400),
            min_body: 64 * 1024,
        },
        7,
    ))?;
    let shots = dangan_testkit::browser::screenshots("upload");
    let result = dangan_testkit::browser::run(
        "upload.mjs",
        &proxy.url(),
        &shots,
        &[
            ("DANGAN_CLERK", "xi:xi-password-1".to_owned()),
            ("DANGAN_REVIEWER", "zhou:zhou-password-1".to_owned()),
            ("DANGAN_PAGES", pages.display().to_string()),
        ],
    )?;
    ensure!(result["ok"] == true, "{result}");
    let cuts = proxy.stats.cuts.load(std::sync::atomic::Ordering::Relaxed);
    ensure!(cuts > 0, "the proxy cut no upload: the test proved nothing");

    // Every page that reached the business file is whole: the blobs are
    // the files' exact bytes.
    let stored = hub.stored_blobs()?;
    for name in ["page-1.png", "page-2.png", "large.png"] {
        let blob = BlobId::of(&std::fs::read(pages.join(name))?).to_hex();
        ensure!(
            stored.contains(&blob),
            "{name} ({blob}) is not stored whole"
        );
    }
    drop(proxy);
    Ok(())
}
