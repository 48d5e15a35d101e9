//! The hub's web UI in a real browser (headless Debian Chromium through
//! `tests/browser/hub.mjs`) against a real `dangan-hub serve`: the
//! administrator's pages and the reconciliation screen going stale live.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::Stdio;

use anyhow::{Context, Result, ensure};
use dangan_testkit::procs::Hub;
use serde_json::{Value, json};

/// The administrator's password, set with `dangan-hub user passwd admin`.
const ADMIN_PASSWORD: &str = "admin-password-1";

/// Seconds without contact after which a district is stale in this test.
const STALE_SECONDS: u64 = 8;

fn configure(hub: &Hub) -> Result<()> {
    let path = hub.data.join("hub.toml");
    let text = std::fs::read_to_string(&path)?
        .replace("memory_kib = 19456", "memory_kib = 8")
        .replace("iterations = 2", "iterations = 1")
        .replace(
            "stale_after_hours = 24",
            &format!("stale_after_hours = 24\nstale_after_seconds = {STALE_SECONDS}"),
        );
    std::fs::write(&path, text)?;
    Ok(())
}

fn set_password(hub: &Hub, user: &str, password: &str) -> Result<()> {
    let mut child = hub
        .command(&["user", "passwd", user])?
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    writeln!(child.stdin.take().context("stdin")?, "{password}")?;
    ensure!(child.wait()?.success(), "user passwd {user} failed");
    Ok(())
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

#[test]
fn administrators_work_in_the_browser_and_reconciliation_shows_a_node_going_stale() -> Result<()> {
    let root = tempfile::tempdir()?;
    let mut hub = Hub::init(&root.path().join("hub"))?;
    configure(&hub)?;
    set_password(&hub, "admin", ADMIN_PASSWORD)?;
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
