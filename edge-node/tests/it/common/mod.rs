//! Helpers for tests that run the real `dangan-edge` binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub mod server;

pub const DISTRICT: &str = "330106";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dangan-edge")
}

/// A data folder initialised for [`DISTRICT`], plus a scratch folder for inputs.
pub struct Edge {
    pub root: tempfile::TempDir,
}

impl Edge {
    pub fn new() -> Self {
        let edge = Self {
            root: tempfile::tempdir().expect("temp dir"),
        };
        let out = edge.run(&["init", "--district", DISTRICT]);
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        edge
    }

    pub fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// A folder for input files (created).
    pub fn inputs(&self, name: &str) -> PathBuf {
        let dir = self.root.path().join(name);
        std::fs::create_dir_all(&dir).expect("create inputs");
        dir
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(bin());
        command
            .args(args)
            .arg("--data")
            .arg(self.data())
            .env("DANGAN_LANG", "en");
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run dangan-edge")
    }

    /// Runs with `--json`, asserts success and parses standard output.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self
            .command(args)
            .arg("--json")
            .output()
            .expect("run dangan-edge");
        assert!(
            out.status.success(),
            "dangan-edge {args:?} failed ({}): {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|err| {
            panic!("not JSON ({err}): {}", String::from_utf8_lossy(&out.stdout))
        })
    }

    pub fn ingest(&self, batch: &str, paths: &[&Path]) -> Value {
        let mut args = vec!["ingest".to_owned(), "--batch".to_owned(), batch.to_owned()];
        args.extend(paths.iter().map(|p| p.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.json(&args)
    }

    pub fn show(&self, batch: &str) -> Value {
        self.json(&["batch", "show", batch])
    }

    pub fn write_config(&self, extra: &str) {
        std::fs::write(self.data().join("edge.toml"), extra).expect("write edge.toml");
    }
}

/// Every page of a `batch show` document, in scan order.
pub fn pages(show: &Value) -> Vec<Value> {
    show["business_files"]
        .as_array()
        .expect("business_files")
        .iter()
        .flat_map(|f| f["pages"].as_array().expect("pages").clone())
        .collect()
}

/// The texts of the barcodes on a page.
pub fn texts(page: &Value) -> Vec<String> {
    page["barcodes"]
        .as_array()
        .expect("barcodes")
        .iter()
        .map(|b| b["text"].as_str().expect("text").to_owned())
        .collect()
}

/// The file name of a page's source.
pub fn source_name(page: &Value) -> String {
    Path::new(page["source"].as_str().expect("source"))
        .file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

/// Removes keys that differ between otherwise identical runs (timestamps).
pub fn without_times(mut value: Value) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.retain(|k, _| !k.ends_with("_at"));
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut value);
    value
}
