//! The hub's web UI in a real browser (headless Debian Chromium through
//! `tests/browser/hub.mjs` and `hub_review.mjs`) against a real
//! `dangan-hub serve`: the administrator's pages and the reconciliation
//! screen going stale live; then, once a district's batch has been archived
//! over the sync protocol, a reviewer's search, file page, viewer and PDF,
//! an auditor's view of it, and a reviewer of another district who finds
//! nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use anyhow::{Context, Result, ensure};
use dangan_shared::BlobId;
use dangan_sync::client::{Client, ClientOptions, file_body};
use dangan_sync::wire::{
    CommitRequest, EnrolRequest, Manifest, ManifestFile, ManifestPage, WarehouseChange,
    WarehouseEvent, WarehouseEvents,
};
use dangan_testkit::pages::{CodeSpec, PageSpec, Place, Symbology, encode_jpeg, render_page};
use dangan_testkit::procs::Hub;
use serde_json::{Value, json};

/// The administrator's password, set with `dangan-hub user passwd admin`.
const ADMIN_PASSWORD: &str = "admin-password-1";

/// Seconds without contact after which a district is stale in this test.
const STALE_SECONDS: u64 = 8;

fn configure(hub: &Hub) -> Result<()> {
    hub.cheap_passwords()?;
    let path = hub.data.join("hub.toml");
    let text = std::fs::read_to_string(&path)?.replace(
        "stale_after_hours = 24",
        &format!("stale_after_hours = 24\nstale_after_seconds = {STALE_SECONDS}"),
    );
    std::fs::write(&path, text)?;
    Ok(())
}

fn set_password(hub: &Hub, user: &str, password: &str) -> Result<()> {
    hub.with_password(&["user", "passwd", user], password)
}

/// A node of `district` enrols and reports its queue: the hub hears from it.
fn node_contact(hub: &Hub, district: &str) -> Result<String> {
    let code = hub.enrol_code(district)?;
    let client = reqwest::blocking::Client::new();
    let enrolled: Value = client
        .post(format!("{}/sync/v1/enrol", hub.url()))
        .json(&json!({ "code": code, "district": district }))
        .send()?
        .error_for_status()?
        .json()?;
    let token = enrolled["token"].as_str().context("node token")?.to_owned();
    client
        .post(format!("{}/sync/v1/queue", hub.url()))
        .bearer_auth(&token)
        .json(&json!({ "batches": [] }))
        .send()?
        .error_for_status()?;
    Ok(token)
}

/// One business file to archive: business number, person, id number and
/// its number of pages.
struct FileSpec {
    number: &'static str,
    person: &'static str,
    person_id: &'static str,
    pages: u32,
}

/// Archives one batch of `district` at the hub the way an edge does, over
/// HTTP with the sync client: enrol with a fresh code, offer the manifest,
/// upload the missing blobs, commit. Pages are rendered A4 scans (150 dpi
/// JPEG) with the business number as a Code 128 barcode.
fn archive_batch(
    hub: &Hub,
    district: &str,
    batch: &str,
    files: &[FileSpec],
    warehouse: &[WarehouseChange],
) -> Result<()> {
    let code = hub.enrol_code(district)?;
    let scratch = tempfile::tempdir()?;
    let mut blobs: Vec<(BlobId, std::path::PathBuf, u64)> = Vec::new();
    let mut manifest_files = Vec::new();
    // Pages of different batches differ (the hub stores equal bytes once).
    let mut seed = batch.bytes().map(u64::from).sum::<u64>() * 1000;
    let mut seq = 0;
    for (index, file) in files.iter().enumerate() {
        let mut pages = Vec::new();
        for page in 1..=file.pages {
            // Pages are numbered through the batch, as an edge numbers them.
            seed += 1;
            seq += 1;
            let codes = if page == 1 {
                vec![CodeSpec::new(
                    Symbology::Code128,
                    file.number,
                    Place::TopRight,
                )]
            } else {
                Vec::new()
            };
            let spec = PageSpec::with_codes(150, seed, codes);
            let image = render_page(&spec);
            let bytes = encode_jpeg(&image, 80, 150);
            let blob = BlobId::of(&bytes);
            let path = scratch.path().join(blob.to_hex());
            std::fs::write(&path, &bytes)?;
            blobs.push((blob, path, bytes.len() as u64));
            pages.push(ManifestPage {
                barcodes: Vec::new(),
                blank: false,
                blob,
                colour: "gray".into(),
                dpi: Some(150),
                format: "jpeg".into(),
                frame: 0,
                height: image.height(),
                separator: false,
                seq,
                size: bytes.len() as u64,
                source: format!("扫描/{}-{page}.jpg", file.number),
                width: image.width(),
            });
        }
        manifest_files.push(ManifestFile {
            business_number: Some(file.number.into()),
            business_type: Some("D01".into()),
            category: Some("payment".into()),
            date: Some("2026-11-20".into()),
            employer_id: None,
            organisation: district.into(),
            pages,
            person_id: Some(file.person_id.into()),
            person_name: Some(file.person.into()),
            retention: Some("permanent".into()),
            seq: index as u32 + 1,
        });
    }
    let manifest = Manifest {
        accepted_at: "2026-11-21T09:00:00Z".into(),
        batch: batch.into(),
        business_files: manifest_files,
        business_type: Some("D01".into()),
        bytes: blobs.iter().map(|(_, _, size)| size).sum(),
        district: district.into(),
        format: dangan_sync::wire::MANIFEST_FORMAT.into(),
        pages: blobs.len() as u64,
    };
    let (canonical, hash) = dangan_sync::manifest_hash(&manifest)?;
    let url = hub.url();
    tokio::runtime::Runtime::new()?.block_on(async move {
        let client = Client::new(&url, ClientOptions::default())?;
        let enrolled = client
            .enrol(&EnrolRequest {
                code,
                district: district.into(),
            })
            .await?;
        let client = client.with_token(&enrolled.token)?;
        let offer = client.offer(canonical, &hash).await?;
        ensure!(offer.missing.len() == blobs.len(), "{offer:?}");
        for (blob, path, size) in &blobs {
            let body = file_body(path, 0, *size, false).await?;
            client.upload_blob(*blob, 0, *size, false, body).await?;
        }
        client
            .commit(&CommitRequest {
                batch: batch.into(),
                manifest_hash: hash,
            })
            .await?;
        // Then the district's warehouse feed, as the edge sends it after.
        if !warehouse.is_empty() {
            let events = warehouse
                .iter()
                .enumerate()
                .map(|(i, change)| WarehouseEvent {
                    seq: i as u64 + 1,
                    recorded_at: "2026-11-22T08:00:00Z".into(),
                    actor: "archivist".into(),
                    change: change.clone(),
                })
                .collect();
            let cursor = client
                .push_warehouse(&WarehouseEvents {
                    feed: format!("feed-{district}"),
                    events,
                })
                .await?;
            ensure!(cursor.cursor == warehouse.len() as u64, "{cursor:?}");
        }
        anyhow::Ok(())
    })
}

/// A district's warehouse as its edge reports it: room K01 › cabinet L01 ›
/// shelf S1 › box BOX-0001 holding volume VOL-0001, into which business
/// file `file_seq` of `batch` is bound.
fn shelved_volume(batch: &str, file_seq: u32) -> Vec<WarehouseChange> {
    let location =
        |code: &str, kind: &str, name: &str, parent: Option<&str>| WarehouseChange::Location {
            code: code.into(),
            location_kind: kind.into(),
            name: name.into(),
            parent: parent.map(str::to_owned),
            capacity: None,
        };
    vec![
        location("K01", "room", "一号库房", None),
        location("K01-L01", "cabinet", "第1列", Some("K01")),
        location("K01-L01-S1", "shelf", "第1层", Some("K01-L01")),
        location("BOX-0001", "box", "2026 养老 第1盒", Some("K01-L01-S1")),
        WarehouseChange::Volume {
            code: "VOL-0001".into(),
            title: "2026年 待遇核定 第1卷".into(),
            box_code: Some("BOX-0001".into()),
            retention: Some("permanent".into()),
            date_from: None,
            date_to: None,
        },
        WarehouseChange::FileVolume {
            batch: batch.into(),
            file_seq,
            business_number: None,
            volume: Some("VOL-0001".into()),
        },
    ]
}

/// Runs a command-line tool and returns what it printed.
fn output_of(program: &str, args: &[&str]) -> Result<String> {
    let output = Command::new(program).args(args).output()?;
    ensure!(output.status.success(), "{program} {args:?} failed");
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn hub_users_do_their_jobs_in_the_browser() -> Result<()> {
    let root = tempfile::tempdir()?;
    let mut hub = Hub::init(&root.path().join("hub"))?;
    configure(&hub)?;
    set_password(&hub, "admin", ADMIN_PASSWORD)?;
    // 西湖区 (330106) in the organisation tree, an auditor of the city and a
    // reviewer of 西湖区.
    hub.json(&[
        "org",
        "add",
        "330106",
        "--name",
        "西湖区",
        "--parent",
        "330100",
    ])?;
    for (user, role, org, name) in [
        ("zhao", "auditor", "330100", "赵稽核"),
        ("wang", "reviewer", "330106", "王复核"),
    ] {
        hub.with_password(
            &[
                "user",
                "add",
                user,
                "--role",
                role,
                "--org",
                org,
                "--display-name",
                name,
            ],
            &format!("{user}-password-1"),
        )?;
    }
    hub.start("127.0.0.1:0")?;
    // 西湖区's edge is in contact; the browser watches it go stale.
    node_contact(&hub, "330106")?;

    let shots = dangan_testkit::browser::screenshots("hub");
    let result = dangan_testkit::browser::run(
        "hub.mjs",
        &hub.url(),
        &shots,
        &[
            ("DANGAN_ADMIN", format!("admin:{ADMIN_PASSWORD}")),
            ("DANGAN_STALE_SECONDS", STALE_SECONDS.to_string()),
        ],
    )?;
    ensure!(result["ok"] == true, "{result}");

    // 滨江区 (330108, added in the browser) archives a batch: 张三丰 with
    // three pages and 张三 with one; 西湖区 one of 王五.
    archive_batch(
        &hub,
        "330108",
        "330108-20261121-01",
        &[
            FileSpec {
                number: "YL2026108001",
                person: "张三丰",
                person_id: "330108194501010017",
                pages: 3,
            },
            FileSpec {
                number: "YL2026108002",
                person: "张三",
                person_id: "33010819800101003X",
                pages: 1,
            },
        ],
        &shelved_volume("330108-20261121-01", 1),
    )?;
    archive_batch(
        &hub,
        "330106",
        "330106-20261121-01",
        &[FileSpec {
            number: "YL2026106001",
            person: "王五",
            person_id: "330106197001010012",
            pages: 2,
        }],
        &[],
    )?;
    let review = dangan_testkit::browser::run(
        "hub_review.mjs",
        &hub.url(),
        &shots,
        &[
            ("DANGAN_REVIEWER", "li:li-password-1".to_owned()),
            ("DANGAN_OTHER_REVIEWER", "wang:wang-password-1".to_owned()),
            ("DANGAN_AUDITOR", "zhao:zhao-password-1".to_owned()),
        ],
    )?;
    ensure!(review["ok"] == true, "{review}");

    // The PDF the reviewer downloaded: every page, watermarked with their
    // name (poppler reads the text back).
    let pdf = shots.join("YL2026108001.pdf");
    let pdf_path = pdf.to_str().context("path")?;
    let info = output_of("pdfinfo", &[pdf_path])?;
    ensure!(
        info.lines()
            .any(|l| l.starts_with("Pages:") && l.trim_end().ends_with(" 3")),
        "{info}"
    );
    let text = output_of("pdftotext", &[pdf_path, "-"])?;
    ensure!(
        text.matches("李四 (li)").count() >= 3,
        "watermark missing from some page: {text}"
    );
    // What the reviewer did is in the audit trail under their name.
    let entries = hub.json(&["audit", "list", "--actor", "li"])?;
    let done: Vec<&str> = entries
        .as_array()
        .context("entries")?
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "search",
        "file.view",
        "page.view",
        "file.download",
        "original.request",
    ] {
        ensure!(done.contains(&action), "{action} missing from {done:?}");
    }

    // What the administrator did in the browser is in the audit trail,
    // under their name.
    let entries = hub.json(&["audit", "list", "--actor", "admin"])?;
    let actions: Vec<&str> = entries
        .as_array()
        .context("entries")?
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "login",
        "org.add",
        "user.add",
        "grant.add",
        "dictionary.publish",
        "audit.query",
    ] {
        ensure!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    // The reviewer added in the browser exists with the right organisation.
    let users = hub.json(&["user", "list"])?;
    let li = users
        .as_array()
        .context("users")?
        .iter()
        .find(|u| u["username"] == "li")
        .context("user li")?;
    assert_eq!(li["org"], "330108");
    assert_eq!(li["role"], "reviewer");
    for shot in ["reconcile", "users", "audit"] {
        let path = shots.join(format!("{shot}.png"));
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        ensure!(
            size > 10_000,
            "screenshot {} is missing or empty",
            path.display()
        );
    }
    Ok(())
}
