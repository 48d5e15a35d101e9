//! Embeds the browser libraries the hub serves from its own static assets
//! (so browsers need no internet): tus-js-client's bundle for the clerks'
//! resumable uploads, from `web/node_modules` as `web/package-lock.json`
//! pins it. When it is missing, runs `npm ci` in `web/` first (Node.js and
//! npm from the distribution; `.ci/run` and the packaging do the same).
//! `DANGAN_TUS_JS=/path/to/tus.min.js` supplies the file instead, for
//! builds without npm.
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=web/package-lock.json");
    println!("cargo:rerun-if-env-changed=DANGAN_TUS_JS");
    let bundle = match std::env::var_os("DANGAN_TUS_JS") {
        Some(path) => PathBuf::from(path),
        None => {
            let web = Path::new("web");
            let bundle = web.join("node_modules/tus-js-client/dist/tus.min.js");
            if !bundle.is_file() {
                let status = Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                    .current_dir(web)
                    .status()
                    .map_err(|err| {
                        format!("the hub's build needs npm to install tus-js-client (apt install npm), or DANGAN_TUS_JS: {err}")
                    })?;
                if !status.success() {
                    return Err(format!("npm ci in {} failed ({status})", web.display()).into());
                }
            }
            bundle
        }
    };
    println!("cargo:rerun-if-changed={}", bundle.display());
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("tus.min.js");
    std::fs::copy(&bundle, &out)
        .map_err(|err| format!("cannot copy {}: {err}", bundle.display()))?;
    Ok(())
}
