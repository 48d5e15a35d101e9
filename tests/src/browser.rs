//! Runs a browser scenario from `tests/browser/` (headless Debian Chromium
//! driven by playwright-core through `harness.mjs`) and returns its result.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

/// The folder of browser scenarios (`tests/browser`).
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// `npm ci` in tests/browser when playwright-core or tus-js-client is not
/// installed yet.
pub fn ensure_playwright() -> Result<()> {
    let dir = dir();
    let installed = ["playwright-core", "tus-js-client"].iter().all(|package| {
        dir.join(format!("node_modules/{package}/package.json"))
            .is_file()
    });
    if installed {
        return Ok(());
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .context("npm is needed for the browser tests (Node.js 18 or later)")?;
    ensure!(status.success(), "npm ci in {} failed", dir.display());
    Ok(())
}

/// The browser: `DANGAN_CHROMIUM`, else Debian's Chromium.
pub fn chromium() -> Result<String> {
    let path = std::env::var("DANGAN_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    ensure!(
        Path::new(&path).is_file(),
        "the browser tests need Chromium at {path}: `apt-get install chromium` (.ci/run does), or set DANGAN_CHROMIUM"
    );
    Ok(path)
}

/// Where a scenario's screenshots go: `DANGAN_SCREENSHOTS`, else
/// `tests/browser/screenshots/NAME`.
pub fn screenshots(name: &str) -> PathBuf {
    std::env::var("DANGAN_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| dir().join("screenshots").join(name))
}

/// Runs `node SCRIPT` against `base_url` with `envs`, and returns the
/// scenario's `DANGAN-RESULT` line; fails with its output (and where the
/// screenshots are) when it did not pass.
pub fn run(script: &str, base_url: &str, shots: &Path, envs: &[(&str, String)]) -> Result<Value> {
    let browser = chromium()?;
    let mut all = vec![
        ("DANGAN_CHROMIUM", browser),
        ("DANGAN_SCREENSHOTS", shots.display().to_string()),
    ];
    all.extend(envs.iter().map(|(k, v)| (*k, v.clone())));
    run_node(script, base_url, &all).with_context(|| format!("screenshots in {}", shots.display()))
}

/// Runs a Node scenario from `tests/browser/` that needs no browser (the
/// tus client), the same way: its `DANGAN-RESULT` line, or its output.
pub fn run_node(script: &str, base_url: &str, envs: &[(&str, String)]) -> Result<Value> {
    ensure_playwright()?;
    let output = Command::new("node")
        .arg(script)
        .current_dir(dir())
        .env("DANGAN_BASE_URL", base_url)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .context("node is needed for the browser tests")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let result: Value = stdout
        .lines()
        .find_map(|line| line.strip_prefix("DANGAN-RESULT "))
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or(Value::Null);
    ensure!(
        output.status.success() && result["ok"] == true,
        "the Node scenario {script} failed:\n{stderr}\n{stdout}"
    );
    Ok(result)
}
