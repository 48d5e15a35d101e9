//! The hot folder: scanner software (or Dangan's own `scanimage` run) writes
//! page files into a folder; each file is ingested once it has stopped
//! growing, and removed from the folder once its pages are recorded.
//!
//! The folder is polled rather than watched through inotify: polling works
//! the same on network shares, which scanner PCs often write to, and a file
//! must be seen unchanged for a while anyway before it may be read.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Instant, SystemTime};

use tracing::{info, warn};

use crate::ingest::{self, IngestError, IngestOptions, IngestReport};
use crate::node::Node;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error("hot folder {path} cannot be used: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start scanimage (is sane-utils installed?): {0}")]
    Scanner(std::io::Error),
    #[error("no scanner is configured: give --scan-device or set [scanner] device in edge.toml")]
    NoScanner,
}

#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub ingest: IngestOptions,
    /// Stop once the folder has nothing left to take (and the scanner, if
    /// any, has finished), instead of watching forever.
    pub once: bool,
    /// Run `scanimage --batch` into the hot folder with this device.
    pub scan_device: Option<String>,
    pub scan_args: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    size: u64,
    modified: Option<SystemTime>,
}

/// Watches `hot_folder`, calling `on_round` after every ingest round.
pub fn watch(
    node: &Node,
    store: &mut Store,
    hot_folder: &Path,
    options: &WatchOptions,
    mut on_round: impl FnMut(&IngestReport),
) -> Result<IngestReport, WatchError> {
    std::fs::create_dir_all(hot_folder).map_err(|source| WatchError::Folder {
        path: hot_folder.to_owned(),
        source,
    })?;
    let hot_folder = std::path::absolute(hot_folder).map_err(|source| WatchError::Folder {
        path: hot_folder.to_owned(),
        source,
    })?;
    let mut scanner = match &options.scan_device {
        Some(device) => Some(start_scanner(&hot_folder, device, &options.scan_args)?),
        None => None,
    };
    let settle = node.config.watch.settle;
    let poll = node.config.watch.poll;
    // What each candidate looked like last time, and since when.
    let mut seen: HashMap<PathBuf, (Seen, Instant)> = HashMap::new();
    // Files kept in the folder (`--keep`) that were already handled.
    let mut handled: HashMap<PathBuf, Seen> = HashMap::new();
    let mut total = IngestReport {
        batch: options.ingest.batch.clone(),
        ..IngestReport::default()
    };
    info!(folder = %hot_folder.display(), batch = %options.ingest.batch, "watching hot folder");
    loop {
        let scanner_done = match &mut scanner {
            None => true,
            Some(child) => match child.try_wait() {
                Ok(Some(status)) => {
                    // scanimage exits non-zero (7) when the feeder runs out of
                    // paper, which is how a batch scan normally ends.
                    info!(%status, "scanimage finished");
                    scanner = None;
                    true
                }
                Ok(None) => false,
                Err(err) => {
                    warn!(error = %err, "cannot query scanimage");
                    false
                }
            },
        };
        let (candidates, _) = ingest::enumerate(
            std::slice::from_ref(&hot_folder),
            &node.config.ingest.extensions,
        )?;
        let now = Instant::now();
        let mut ready = Vec::new();
        let mut waiting = 0usize;
        seen.retain(|path, _| candidates.contains(path));
        for path in candidates {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let current = Seen {
                size: meta.len(),
                modified: meta.modified().ok(),
            };
            if handled.get(&path) == Some(&current) {
                continue;
            }
            match seen.get(&path) {
                Some((previous, since)) if *previous == current => {
                    if now.duration_since(*since) >= settle {
                        ready.push((path, current));
                    } else {
                        waiting += 1;
                    }
                }
                _ => {
                    seen.insert(path, (current, now));
                    waiting += 1;
                }
            }
        }
        if !ready.is_empty() {
            let files: Vec<PathBuf> = ready.iter().map(|(p, _)| p.clone()).collect();
            let report = ingest::ingest_files(node, store, &files, &options.ingest)?;
            for (path, state) in ready {
                seen.remove(&path);
                if !options.ingest.remove_ingested {
                    handled.insert(path, state);
                }
            }
            total.sources += report.sources;
            total.pages += report.pages;
            total.duplicates += report.duplicates;
            total.skipped += report.skipped;
            total.quarantined += report.quarantined;
            total.business_files = report.business_files;
            total.exceptions = report.exceptions;
            total.elapsed_seconds += report.elapsed_seconds;
            on_round(&report);
            continue;
        }
        if options.once && scanner_done && waiting == 0 {
            return Ok(total);
        }
        std::thread::sleep(poll);
    }
}

fn start_scanner(hot_folder: &Path, device: &str, args: &[String]) -> Result<Child, WatchError> {
    if device.is_empty() {
        return Err(WatchError::NoScanner);
    }
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let pattern = hot_folder.join(format!("scan-{stamp}-%04d.tif"));
    let mut command = Command::new("scanimage");
    command
        .arg("--device-name")
        .arg(device)
        .arg("--format=tiff")
        .arg(format!("--batch={}", pattern.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    info!(?command, "starting scanner");
    command.spawn().map_err(WatchError::Scanner)
}
