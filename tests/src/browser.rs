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

/// `npm ci` in tests/browser when playwright-core is not installed yet.
pub fn ensure_playwright() -> Result<()> {
    let dir = dir();
    if dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
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
    ensure_playwright()?;
    let browser = chromium()?;
    let output = Command::new("node")
        .arg(script)
        .current_dir(dir())
        .env("DANGAN_BASE_URL", base_url)
        .env("DANGAN_CHROMIUM", &browser)
        .env("DANGAN_SCREENSHOTS", shots)
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
        "the browser test {script} failed (screenshots in {}):\n{stderr}\n{stdout}",
        shots.display()
    );
    Ok(result)
}
