//! Sync benchmark: real `dangan-edge` and `dangan-hub` processes on loopback,
//! one batch of scanned pages, compared in the same run with the peer
//! baselines of `shared/bench/bench_transfer.sh` (rsync daemon, rclone → S3).
//!
//! ```text
//! cargo build --release -p dangan-edge -p dangan-hub
//! cargo bench -p dangan-testkit --bench sync_transfer -- --pages-dir /tmp/dangan-bench/pages-2000
//! ```
//!
//! `cargo bench` does not build other packages' binaries, so the first line
//! is needed; the bench refuses binaries older than the edge's or hub's
//! sources (`--allow-stale` overrides). Without `--pages-dir` it generates
//! 2,000 pages with `gen_pages.py` into a temporary folder.
//!
//! Figures:
//! 1. setup (not in the sync figures): hub and edge init, ingest, accept;
//! 2. full sync, three times (a fresh hub and edge copy each; median): wall
//!    time of `dangan-edge sync --json` after a `sync(1)` of setup's writes,
//!    MB/s over the batch's bytes, peak RSS of the edge (VmHWM polled every 2 ms) and of
//!    the hub (its VmHWM, exact, read while it still runs);
//! 3. a second sync with nothing to send;
//! 4. two SIGKILLs (at 35% and 70% of the batch's bytes on the wire) against a
//!    fresh hub through a counting proxy, then a run to the end: client bytes
//!    on the wire ÷ batch bytes (headers and manifests included);
//! 5. the peer script on the same folder; 6. a table of the lot.
//!
//! Under `cargo test` (no `--bench` argument) it only says how to run it.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use dangan_testkit::faultproxy::{FaultProxy, Faults};
use dangan_testkit::procs::{self, Edge, Hub};
use serde_json::Value;

const DISTRICT: &str = "330106";
const BATCH: &str = "BENCH-1";
const BUILD: &str = "cargo build --release -p dangan-edge -p dangan-hub";
/// Full syncs run (median reported, like the peers' hyperfine medians of 3).
const FULL_RUNS: u32 = 3;
/// Kill points, as cumulative client bytes on the wire ÷ batch bytes.
const KILL_AT: [f64; 2] = [0.35, 0.70];
/// From shared/bench/PEERS.md (2026-11-25): wire ÷ S with two kills. The
/// peer script does not measure this, so it is quoted, not re-run.
const PEER_KILL_RSYNC: f64 = 1.0004;
const PEER_KILL_RCLONE: f64 = 1.0059;

const USAGE: &str = "\
usage: cargo bench -p dangan-testkit --bench sync_transfer -- [OPTIONS]
  --pages-dir DIR   pages to sync (default: generate 2000 with gen_pages.py)
  --work-dir DIR    where hubs, edges and peer targets go (default: a temp dir, removed)
  --peers 'S...'    bench_transfer.sh sections (default: 'rsync s3'); '' skips the peers
  --no-kill         skip the kill/resume run
  --allow-stale     run binaries older than the sources
build the binaries first: cargo build --release -p dangan-edge -p dangan-hub";

#[derive(Debug)]
struct Args {
    pages_dir: Option<PathBuf>,
    work_dir: Option<PathBuf>,
    peers: String,
    kill: bool,
    allow_stale: bool,
}

/// `None` when not run by `cargo bench` (which passes `--bench`).
fn parse_args() -> Result<Option<Args>> {
    let mut args = Args {
        pages_dir: None,
        work_dir: None,
        peers: "rsync s3".into(),
        kill: true,
        allow_stale: false,
    };
    let mut bench = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--bench" => bench = true,
            "--pages-dir" => args.pages_dir = Some(value("--pages-dir")?.into()),
            "--work-dir" => args.work_dir = Some(value("--work-dir")?.into()),
            "--peers" => args.peers = value("--peers")?,
            "--no-kill" => args.kill = false,
            "--allow-stale" => args.allow_stale = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other if bench => bail!("unknown argument {other:?}\n{USAGE}"),
            _ => {}
        }
    }
    Ok(bench.then_some(args))
}

fn main() -> Result<()> {
    let Some(args) = parse_args()? else {
        println!(
            "sync_transfer is a benchmark; run it with `{BUILD}` then \
             `cargo bench -p dangan-testkit --bench sync_transfer -- --pages-dir DIR`"
        );
        return Ok(());
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace folder")?
        .to_owned();
    check_binaries(&workspace, args.allow_stale)?;

    let temp = match &args.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            tempfile::Builder::new()
                .prefix("sync-bench-")
                .tempdir_in(dir)?
        }
        None => tempfile::Builder::new().prefix("sync-bench-").tempdir()?,
    };
    let root = temp.path();
    let shared_bench = workspace
        .parent()
        .context("folder above the workspace")?
        .join("shared/bench");
    let pages = match &args.pages_dir {
        Some(dir) => dir.clone(),
        None => generate_pages(&shared_bench, &root.join("pages"))?,
    };
    let set = PageSet::read(&pages)?;
    println!("== Dangan sync benchmark ==");
    println!(
        "pages: {}  files={}  S={} B ({:.1} MB)  unique content={} B ({} exact duplicates)",
        pages.display(),
        set.files,
        set.bytes,
        set.bytes as f64 / 1e6,
        set.unique_bytes,
        set.files - set.unique_files
    );
    println!(
        "binaries: {} and {}",
        procs::binary("dangan-edge")?.display(),
        procs::binary("dangan-hub")?.display()
    );
    println!("work folder: {}", root.display());

    // 1. Setup.
    println!("\n-- 1. setup (not timed into the sync figures)");
    let started = Instant::now();
    let mut hub = Hub::init(&root.join("hub"))?;
    hub.start("127.0.0.1:0")?;
    let hub_pid = hub.pid().context("hub pid")?;
    println!(
        "hub init + start (embedded: SQLite + local blob folder): {:.2} s",
        secs(started.elapsed())
    );
    let edge = Edge::init(&root.join("edge"), DISTRICT, "")?;
    let started = Instant::now();
    let ingest = edge.json(&["ingest", "--batch", BATCH, &pages.display().to_string()])?;
    let ingest_time = started.elapsed();
    println!(
        "ingest: {:.1} s ({:.1} pages/s): pages={} duplicates={} quarantined={} skipped={}",
        secs(ingest_time),
        set.files as f64 / secs(ingest_time),
        ingest["pages"],
        ingest["duplicates"],
        ingest["quarantined"],
        ingest["skipped"]
    );
    let started = Instant::now();
    edge.json(&["batch", "accept", BATCH, "--reason", "benchmark"])?;
    println!("accept: {:.2} s", secs(started.elapsed()));
    let kill_edge_dir = root.join("edge-kill");
    if args.kill {
        let started = Instant::now();
        copy_dir(&edge.data, &kill_edge_dir)?;
        println!(
            "cp -a of the edge folder for the kill run (before any enrolment): {:.1} s",
            secs(started.elapsed())
        );
    }
    // Fresh edges for the repeated full syncs, copied before any enrolment.
    let extra_edges: Vec<PathBuf> = (2..=FULL_RUNS)
        .map(|run| root.join(format!("edge-full-{run}")))
        .collect();
    for dir in &extra_edges {
        copy_dir(&edge.data, dir)?;
    }
    edge.enrol(&hub.url(), &hub.enrol_code(DISTRICT)?)?;

    // 2. Full sync.
    println!(
        "\n-- 2. full sync (edge → hub direct, loopback), {FULL_RUNS} runs, each a fresh hub and \
         a fresh copy of the edge"
    );
    println!("load average before: {}", loadavg());
    let first = timed_sync(&edge)?;
    let mut hub_peak_kib = procs::vm_hwm_kib(hub_pid).context("hub VmHWM")?;
    let mut walls = vec![secs(first.wall)];
    let mut edge_peak_kib = first.peak_kib;
    report_full(1, &first, &set)?;
    for (run, dir) in (2..).zip(&extra_edges) {
        let mut run_hub = Hub::init(&root.join(format!("hub-full-{run}")))?;
        run_hub.start("127.0.0.1:0")?;
        let run_edge = Edge { data: dir.clone() };
        run_edge.enrol(&run_hub.url(), &run_hub.enrol_code(DISTRICT)?)?;
        let result = timed_sync(&run_edge)?;
        let pid = run_hub.pid().context("hub pid")?;
        hub_peak_kib = hub_peak_kib.max(procs::vm_hwm_kib(pid).context("hub VmHWM")?);
        edge_peak_kib = edge_peak_kib.max(result.peak_kib);
        report_full(run, &result, &set)?;
        walls.push(secs(result.wall));
        run_hub.kill();
    }
    let full_wall = median(&mut walls.clone());
    let full_mbs = set.bytes as f64 / 1e6 / full_wall;
    println!(
        "median of {FULL_RUNS}: {full_wall:.3} s  {full_mbs:.1} MB/s  (runs: {})",
        walls
            .iter()
            .map(|t| format!("{t:.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let full = SyncRun {
        wall: Duration::from_secs_f64(full_wall),
        report: first.report,
        peak_kib: edge_peak_kib,
    };
    let edge_state = edge.batch_state(BATCH)?;
    println!(
        "peak RSS: edge {:.1} MiB (VmHWM polled every 2 ms), hub {:.1} MiB (VmHWM over its life so far)",
        full.peak_kib as f64 / 1024.0,
        hub_peak_kib as f64 / 1024.0
    );
    println!(
        "batch state at the edge: {edge_state}; hub stores {} blobs",
        hub.stored_blobs()?.len()
    );

    // 3. No change.
    println!("\n-- 3. no-change re-sync");
    let mut noops = Vec::new();
    for _ in 0..5 {
        let run = timed_sync(&edge)?;
        if run.report["bytes_sent"] != 0 || run.report["blobs_sent"] != 0 {
            println!("  !! a no-change sync sent data: {}", run.report);
        }
        noops.push(run);
    }
    let mut noop_times: Vec<f64> = noops.iter().map(|r| secs(r.wall)).collect();
    let noop = median(&mut noop_times);
    let noop_peak = noops.iter().map(|r| r.peak_kib).max().unwrap_or(0);
    println!(
        "wall median of 5: {noop:.3} s (runs: {})  bytes_sent={}  edge peak RSS {:.1} MiB",
        noop_times
            .iter()
            .map(|t| format!("{t:.3}"))
            .collect::<Vec<_>>()
            .join(" "),
        noops
            .last()
            .map_or(Value::Null, |r| r.report["bytes_sent"].clone()),
        noop_peak as f64 / 1024.0
    );
    let hub_peak_kib = procs::vm_hwm_kib(hub_pid).map_or(hub_peak_kib, |kib| kib.max(hub_peak_kib));
    hub.kill();

    // 4. Kill and resume.
    let kill = if args.kill {
        println!("\n-- 4. two SIGKILLs, then to the end (fresh hub, through a counting proxy)");
        Some(kill_run(root, &kill_edge_dir, &set)?)
    } else {
        None
    };

    // 5. Peers.
    let peers = if args.peers.trim().is_empty() {
        Peers::default()
    } else {
        println!(
            "\n-- 5. peers: SRC={} bash {}/bench_transfer.sh {}",
            pages.display(),
            shared_bench.display(),
            args.peers
        );
        run_peers(&shared_bench, &pages, &root.join("peers"), &args.peers)?
    };
    let durable_rsync = if args.peers.trim().is_empty() {
        None
    } else {
        let durable = rsync_durable(&pages, &root.join("rsync-fsync"))?;
        if let Some(wall) = durable {
            println!("rsync -a --fsync to a local folder (one run): {wall:.3} s");
        }
        durable
    };

    // 6. Table.
    println!(
        "\n-- 6. summary (S = {} B; MB = 10^6 B); load average now: {}",
        set.bytes,
        loadavg()
    );
    println!(
        "| {:<26} | {:>8} | {:>7} | {:>8} | {:>19} | {:>21} |",
        "", "full s", "MB/s", "no-op s", "wire ÷ S, 2 kills", "peak RSS MiB cli/srv"
    );
    println!(
        "|{:-<28}|{:->10}|{:->9}|{:->10}|{:->21}|{:->23}|",
        "", "", "", "", "", ""
    );
    println!(
        "| {:<26} | {:>8.3} | {:>7.1} | {:>8.3} | {:>19} | {:>21} |",
        "dangan sync",
        secs(full.wall),
        full_mbs,
        noop,
        kill.as_ref()
            .map_or("-".into(), |k| format!("{:.4}", k.ratio)),
        format!(
            "{:.1} / {:.1}",
            full.peak_kib as f64 / 1024.0,
            hub_peak_kib as f64 / 1024.0
        )
    );
    for (label, full_row, noop_row, kill_ratio) in [
        (
            "rsync -a → rsyncd",
            &peers.rsync_full,
            &peers.rsync_noop,
            PEER_KILL_RSYNC,
        ),
        (
            peers.rclone_label.as_str(),
            &peers.rclone_full,
            &peers.rclone_noop,
            PEER_KILL_RCLONE,
        ),
    ] {
        println!(
            "| {:<26} | {:>8} | {:>7} | {:>8} | {:>19} | {:>21} |",
            label,
            full_row
                .as_ref()
                .map_or("-".into(), |r| format!("{:.3}", r.0)),
            full_row.as_ref().map_or("-".into(), |r| r.1.clone()),
            noop_row
                .as_ref()
                .map_or("-".into(), |r| format!("{:.3}", r.0)),
            format!("{kill_ratio:.4} (PEERS.md)"),
            "not measured"
        );
    }
    if let Some(wall) = durable_rsync {
        println!(
            "| {:<26} | {:>8.3} | {:>7.1} | {:>8} | {:>19} | {:>21} |",
            "rsync -a --fsync (local)",
            wall,
            set.bytes as f64 / 1e6 / wall,
            "-",
            "-",
            "not measured"
        );
    }
    println!(
        "notes: peer figures are hyperfine medians of 3 (rsync no-op: 5) from this run; ours are \
         medians of {FULL_RUNS} (no-op: of 5); rsync --fsync is one run. Wire ratios for the peers are quoted from PEERS.md, not \
         re-run. The hub syncs every blob (file and folder, in rounds) to disk before it counts as \
         stored and before the commit's receipt; the peers do not sync inside their timed region."
    );

    // Targets.
    println!("\ntargets:");
    let mut misses = 0;
    let mut target = |ok: bool, what: String| {
        if !ok {
            misses += 1;
        }
        println!("  [{}] {what}", if ok { " ok " } else { "MISS" });
    };
    if let Some(rsync) = &peers.rsync_full {
        target(
            secs(full.wall) <= rsync.0,
            format!(
                "full sync {:.3} s ≤ rsync {:.3} s",
                secs(full.wall),
                rsync.0
            ),
        );
    }
    if let Some(rsync) = &peers.rsync_noop {
        target(
            noop <= rsync.0,
            format!("no-op {noop:.3} s ≤ rsync no-op {:.3} s", rsync.0),
        );
    }
    if let Some(k) = &kill {
        target(
            k.ratio <= 1.01,
            format!("wire ÷ S after two kills {:.4} ≤ 1.01", k.ratio),
        );
    }
    let peak_mib = full.peak_kib.max(hub_peak_kib) as f64 / 1024.0;
    target(
        peak_mib <= 200.0,
        format!(
            "peak RSS edge {:.1} MiB, hub {:.1} MiB ≤ 200 MiB",
            full.peak_kib as f64 / 1024.0,
            hub_peak_kib as f64 / 1024.0
        ),
    );
    println!("{misses} target(s) missed");
    if args.work_dir.is_some() {
        // Leave nothing behind in a caller's folder either.
        temp.close()?;
    }
    Ok(())
}

/// `/proc/loadavg`: other work on the machine skews the timings.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The binaries exist and are newer than every source file they are built
/// from; otherwise say which command builds them.
fn check_binaries(workspace: &Path, allow_stale: bool) -> Result<()> {
    for (name, crate_dir) in [("dangan-edge", "edge-node"), ("dangan-hub", "central-hub")] {
        let mut sources = vec![workspace.join("Cargo.toml")];
        for dir in ["shared", "sync-protocol", crate_dir] {
            collect_sources(&workspace.join(dir), &mut sources)?;
        }
        let mut newest = (SystemTime::UNIX_EPOCH, PathBuf::new());
        for path in sources {
            let modified = std::fs::metadata(&path)?.modified()?;
            if modified > newest.0 {
                newest = (modified, path);
            }
        }
        let path = procs::binary(name).with_context(|| {
            format!("{name} is not built for this profile; run `{BUILD}` first")
        })?;
        let built = std::fs::metadata(&path)?.modified()?;
        if built < newest.0 {
            let message = format!(
                "{} is older than {}; run `{BUILD}` first (or pass --allow-stale)",
                path.display(),
                newest.1.display()
            );
            if allow_stale {
                println!("warning: {message}");
            } else {
                bail!(message);
            }
        }
    }
    Ok(())
}

fn collect_sources(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            if entry.file_name() != "target" {
                collect_sources(&path, out)?;
            }
        } else if path.extension().is_some_and(|e| e == "rs" || e == "sql")
            || entry.file_name() == "Cargo.toml"
        {
            out.push(path);
        }
    }
    Ok(())
}

fn generate_pages(shared_bench: &Path, out: &Path) -> Result<PathBuf> {
    let script = shared_bench.join("gen_pages.py");
    println!(
        "generating 2000 pages: python3 {} -n 2000 -o {}",
        script.display(),
        out.display()
    );
    let status = Command::new("python3")
        .arg(&script)
        .args(["-n", "2000", "-o"])
        .arg(out)
        .status()
        .context("python3 gen_pages.py")?;
    if !status.success() {
        bail!("gen_pages.py failed: {status}");
    }
    Ok(out.to_owned())
}

/// The page folder's size, and how much of it is distinct content.
struct PageSet {
    files: u64,
    bytes: u64,
    unique_files: u64,
    unique_bytes: u64,
}

impl PageSet {
    fn read(dir: &Path) -> Result<Self> {
        let mut set = PageSet {
            files: 0,
            bytes: 0,
            unique_files: 0,
            unique_bytes: 0,
        };
        let mut seen = std::collections::HashSet::new();
        for entry in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
            let entry = entry?;
            // Markers such as gen_pages.py's empty `.complete` are no pages.
            if !entry.file_type()?.is_file() || entry.file_name().to_string_lossy().starts_with('.')
            {
                continue;
            }
            let bytes = std::fs::read(entry.path())?;
            set.files += 1;
            set.bytes += bytes.len() as u64;
            if seen.insert(blake3::hash(&bytes)) {
                set.unique_files += 1;
                set.unique_bytes += bytes.len() as u64;
            }
        }
        if set.files == 0 {
            bail!("no files in {}", dir.display());
        }
        Ok(set)
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status()?;
    if !status.success() {
        bail!("cp -a {} {} failed", from.display(), to.display());
    }
    Ok(())
}

/// Polls a process's VmHWM until stopped. VmHWM only grows, so the last
/// reading before the process exits is its peak, give or take what it
/// touched in its last 2 ms.
struct PeakWatch {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl PeakWatch {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            let peak = peak.clone();
            move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kib) = procs::vm_hwm_kib(pid) {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        Self { stop, peak, thread }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.peak.load(Ordering::Relaxed)
    }
}

struct SyncRun {
    wall: Duration,
    report: Value,
    peak_kib: u64,
}

/// `dangan-edge sync --json`, timed from spawn to exit.
fn timed_sync(edge: &Edge) -> Result<SyncRun> {
    // Setup's own writes (ingest, folder copies) still on their way to the
    // disk would compete with the hub's: flush them first, untimed.
    let _ = Command::new("sync").status();
    let mut command = edge.command(&["sync", "--json"])?;
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let child = command.spawn().context("start dangan-edge sync")?;
    let watch = PeakWatch::start(child.id());
    let out = child.wait_with_output()?;
    let wall = started.elapsed();
    let peak_kib = watch.finish();
    if !out.status.success() {
        bail!(
            "dangan-edge sync failed ({}): {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let report = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "sync printed no JSON: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    Ok(SyncRun {
        wall,
        report,
        peak_kib,
    })
}

/// Prints one full sync's figures; fails unless it committed the batch.
fn report_full(run: u32, full: &SyncRun, set: &PageSet) -> Result<()> {
    println!(
        "run {run}: wall {:.3} s  {:.1} MB/s  {:.0} pages/s  batches_committed={} blobs_sent={} \
         bytes_sent={}  edge peak RSS {:.1} MiB",
        secs(full.wall),
        set.bytes as f64 / 1e6 / secs(full.wall),
        set.files as f64 / secs(full.wall),
        full.report["batches_committed"],
        full.report["blobs_sent"],
        full.report["bytes_sent"],
        full.peak_kib as f64 / 1024.0
    );
    if full.report["batches_committed"] != 1 {
        bail!("the full sync did not commit the batch: {}", full.report);
    }
    Ok(())
}

/// `rsync -a --fsync` from the pages to a local folder: what rsync takes
/// when it too makes every file durable (one run; `None` without rsync or
/// without `--fsync`, which needs rsync 3.2.3).
fn rsync_durable(pages: &Path, target: &Path) -> Result<Option<f64>> {
    let mut source = pages.as_os_str().to_owned();
    source.push("/");
    let started = Instant::now();
    let status = Command::new("rsync")
        .arg("-a")
        .arg("--fsync")
        .arg(&source)
        .arg(target)
        .stderr(Stdio::null())
        .status();
    Ok(match status {
        Ok(status) if status.success() => Some(secs(started.elapsed())),
        _ => None,
    })
}

struct KillRun {
    ratio: f64,
}

fn kill_run(root: &Path, edge_dir: &Path, set: &PageSet) -> Result<KillRun> {
    let runtime = tokio::runtime::Runtime::new()?;
    let mut hub = Hub::init(&root.join("hub-kill"))?;
    hub.start("127.0.0.1:0")?;
    let upstream = hub.addr.context("hub address")?;
    let proxy = runtime.block_on(FaultProxy::start(upstream, Faults::none(), 1))?;
    let edge = Edge {
        data: edge_dir.to_owned(),
    };
    edge.enrol(&proxy.url(), &hub.enrol_code(DISTRICT)?)?;
    let base = proxy.client_bytes();
    let mut summed = Duration::ZERO;
    let mut last = Value::Null;
    for attempt in 0..=KILL_AT.len() {
        let stdout = root.join(format!("kill-attempt-{attempt}.json"));
        let stderr = root.join(format!("kill-attempt-{attempt}.log"));
        let mut child = edge
            .command(&["sync", "--json"])?
            .stdout(std::fs::File::create(&stdout)?)
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()?;
        let started = Instant::now();
        let at_start = proxy.client_bytes() - base;
        if let Some(frac) = KILL_AT.get(attempt) {
            let threshold = (frac * set.bytes as f64) as u64;
            loop {
                if let Some(status) = child.try_wait()? {
                    println!(
                        "attempt {}: finished ({status}) before the kill point {frac:.2}·S",
                        attempt + 1
                    );
                    break;
                }
                let sent = proxy.client_bytes() - base;
                if sent >= threshold {
                    child.kill()?;
                    child.wait()?;
                    println!(
                        "attempt {}: SIGKILL at {:.4}·S after {:.2} s (this attempt sent {:.1} MB)",
                        attempt + 1,
                        sent as f64 / set.bytes as f64,
                        secs(started.elapsed()),
                        (sent - at_start) as f64 / 1e6
                    );
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            summed += started.elapsed();
            // As the peers' driver did: 2 s before the restart.
            std::thread::sleep(Duration::from_secs(2));
        } else {
            let status = child.wait()?;
            summed += started.elapsed();
            last = serde_json::from_slice(&std::fs::read(&stdout)?).unwrap_or(Value::Null);
            println!(
                "attempt {}: ran to the end ({status}) in {:.2} s, this attempt sent {:.1} MB: {last}",
                attempt + 1,
                secs(started.elapsed()),
                (proxy.client_bytes() - base - at_start) as f64 / 1e6
            );
            if !status.success() {
                bail!(
                    "the last attempt failed: {}",
                    std::fs::read_to_string(&stderr)?
                );
            }
        }
    }
    let wire = proxy.client_bytes() - base;
    let ratio = wire as f64 / set.bytes as f64;
    let state = edge.batch_state(BATCH)?;
    // The hub's store afterwards: one file per distinct page, each hashing
    // to its name.
    let stored = hub.stored_blobs()?;
    let mut bad = 0;
    for name in &stored {
        let path = hub
            .data
            .join("blobs")
            .join(name.get(..2).unwrap_or(""))
            .join(name);
        let bytes = std::fs::read(&path).with_context(|| path.display().to_string())?;
        if blake3::hash(&bytes).to_hex().as_str() != name {
            bad += 1;
        }
    }
    println!(
        "wire (client → hub, headers and manifests included): {wire} B = {ratio:.4}·S = {:.4}× unique content; \
         summed attempt time {:.2} s (without the 2 s pauses)",
        wire as f64 / set.unique_bytes as f64,
        secs(summed)
    );
    println!(
        "after: batch {state} at the edge, batches_committed={} in the last attempt; hub stores {} blobs \
         (distinct pages: {}), {bad} failing their hash",
        last["batches_committed"],
        stored.len(),
        set.unique_files
    );
    drop(proxy);
    hub.kill();
    Ok(KillRun { ratio })
}

#[derive(Default)]
struct Peers {
    /// (median s, MB/s) per figure.
    rsync_full: Option<(f64, String)>,
    rsync_noop: Option<(f64, String)>,
    rclone_full: Option<(f64, String)>,
    rclone_noop: Option<(f64, String)>,
    rclone_label: String,
}

fn run_peers(shared_bench: &Path, pages: &Path, work: &Path, sections: &str) -> Result<Peers> {
    let mut peers = Peers {
        rclone_label: "rclone copy → S3".into(),
        ..Peers::default()
    };
    let missing: Vec<&str> = ["hyperfine", "jq", "rsync", "rclone"]
        .into_iter()
        .filter(|tool| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool} >/dev/null")])
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if !missing.is_empty() {
        println!(
            "  peers skipped: {} not installed (apt-get install rsync rclone hyperfine jq; \
             s3s-fs: cargo install s3s-fs@0.14.1 --features binary --locked)",
            missing.join(" ")
        );
        return Ok(peers);
    }
    std::fs::create_dir_all(work)?;
    let mut child = Command::new("bash")
        .arg(shared_bench.join("bench_transfer.sh"))
        .args(sections.split_whitespace())
        .env("SRC", pages)
        .env("W", work)
        .stdout(Stdio::piped())
        .spawn()
        .context("start bench_transfer.sh")?;
    let stdout = child.stdout.take().context("peer script stdout")?;
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("  | {line}");
        lines.push(line);
    }
    let status = child.wait()?;
    if !status.success() {
        println!("  peer script exited with {status}");
    }
    for line in &lines {
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, median, mbs, ..] = fields.as_slice() else {
            continue;
        };
        let Ok(median) = median.parse::<f64>() else {
            continue;
        };
        let row = Some((median, (*mbs).to_owned()));
        match *name {
            "rsync_full" => peers.rsync_full = row,
            "rsync_noop" => peers.rsync_noop = row,
            _ => {
                if let Some(server) = name
                    .strip_prefix("rclone_")
                    .and_then(|n| n.strip_suffix("_full"))
                {
                    peers.rclone_label = format!("rclone copy → {server}");
                    peers.rclone_full = row;
                } else if name.starts_with("rclone_") && name.ends_with("_noop") {
                    peers.rclone_noop = row;
                }
            }
        }
    }
    Ok(peers)
}
