//! Ingest benchmark: whole pipeline and barcode stage on A4 300-dpi pages,
//! beside the peer decoders (zbarimg, zxing-cpp) measured in the same run.
//!
//! ```text
//! cargo bench -p dangan-edge --bench ingest -- [--pages N] [--work DIR] [--python PY] [--no-peers] [--stages-only]
//! ```
//!
//! Data sets (made once under the work folder, default /tmp/dangan-bench):
//! - `pages`: N plain pages from ../shared/bench/gen_pages.py (no barcodes,
//!   the slowest case for a decoder);
//! - `barcodes`: 50 Code 128 + 50 QR labelled pages from gen_barcode_pages.py;
//! - `hard`: the hard barcode fixtures of dangan-testkit (thin bars, blur,
//!   skew, rotation, low contrast, mid-page), as JPEG with labels.tsv.
//!
//! Python with Pillow, numpy, python-barcode, qrcode and zxing-cpp is needed
//! for the generators and the peers (see README, "Benchmarks").
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dangan_edge::barcode::{BarcodeSettings, Scanner, Symbology};
use dangan_edge::decode::{self, Limits};
use dangan_edge::raster::{PageRaster, analysis_frame};

struct Args {
    pages: usize,
    work: PathBuf,
    python: String,
    peers: bool,
    /// Only the per-stage breakdown (quick, for tuning).
    stages_only: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        pages: 2000,
        work: PathBuf::from("/tmp/dangan-bench"),
        python: std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()),
        peers: true,
        stages_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--pages" => args.pages = it.next().and_then(|v| v.parse().ok()).unwrap_or(args.pages),
            "--work" => args.work = it.next().map(PathBuf::from).unwrap_or(args.work),
            "--python" => args.python = it.next().unwrap_or(args.python),
            "--no-peers" => args.peers = false,
            "--stages-only" => args.stages_only = true,
            _ => {} // cargo bench passes --bench
        }
    }
    args
}

fn shared_bench() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench")
}

fn ensure_set(args: &Args, name: &str, generator: &str, extra: &[&str]) -> PathBuf {
    let dir = args.work.join(name);
    let marker = dir.join(".complete");
    if marker.exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("generating {name} with {generator} ...");
    let status = Command::new(&args.python)
        .arg(shared_bench().join(generator))
        .args(extra)
        .arg("-o")
        .arg(&dir)
        .status()
        .expect("run the python generator");
    assert!(status.success(), "{generator} failed");
    std::fs::write(&marker, b"").expect("marker");
    dir
}

fn write_hard_set(args: &Args) -> PathBuf {
    let dir = args.work.join("hard");
    dangan_testkit::sets::write_hard(&dir).expect("write the hard fixtures");
    dir
}

/// Runs the release `dangan-edge ingest` on a folder; returns pages, seconds, peak RSS in MiB.
/// Where run `run` keeps its data folder. Every run gets a fresh folder and
/// they are all removed only at the end ([`remove_runs`]): ext4 makes file
/// creation several times dearer for a few minutes after thousands of files
/// were deleted (each free inode it considers is checked for a recent
/// deletion), and that cost belongs to the benchmark's clean-up, not to an
/// edge ingesting into its cache.
fn run_dir(args: &Args, run: usize) -> PathBuf {
    args.work.join(format!("data-run-{run}"))
}

fn remove_runs(args: &Args) {
    for run in 0..=WHOLE_RUNS {
        let _ = std::fs::remove_dir_all(run_dir(args, run));
    }
}

fn run_ingest(args: &Args, dir: &Path, run: usize) -> (u64, f64, f64) {
    let data = run_dir(args, run);
    let _ = std::fs::remove_dir_all(&data);
    let bin = env!("CARGO_BIN_EXE_dangan-edge");
    let status = Command::new(bin)
        .args(["init", "--district", "330106", "--data"])
        .arg(&data)
        .stdout(Stdio::null())
        .status()
        .expect("init");
    assert!(status.success());
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(["ingest", "--batch", "bench", "--json", "--data"])
        .arg(&data)
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("ingest");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    while child.try_wait().expect("wait").is_none() {
        if let Ok(text) = std::fs::read_to_string(&status_path)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kib: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            peak_kib = peak_kib.max(kib);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let seconds = started.elapsed().as_secs_f64();
    let output = child.wait_with_output().expect("output");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("ingest json");
    let pages = report["pages"].as_u64().unwrap_or(0);
    (pages, seconds, peak_kib as f64 / 1024.0)
}

fn image_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jpg" || e == "jpeg"))
        .collect();
    files.sort();
    files
}

fn labels(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(dir.join("labels.tsv")).unwrap_or_default();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let file_col = header.iter().position(|h| *h == "file").unwrap_or(0);
    let text_col = header.iter().position(|h| *h == "text").unwrap_or(2);
    lines
        .filter_map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let expected = cols
                .get(text_col)?
                .split('|')
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect();
            Some((cols.get(file_col)?.to_string(), expected))
        })
        .collect()
}

/// Barcode stage alone, one core: returns (pages/s, pages where every expected text was found, pages with expectations).
fn barcode_stage(dir: &Path, scanner: &Scanner) -> (f64, usize, usize, usize) {
    let expected = labels(dir);
    let mut elapsed = Duration::ZERO;
    let (mut found, mut labelled, mut false_reads) = (0, 0, 0);
    let files = image_files(dir);
    for file in &files {
        let bytes = std::fs::read(file).expect("read");
        let source = decode::open(&bytes, &Limits::default()).expect("decode");
        // As ingest decodes it: a 300-dpi JPEG straight to half size, the
        // full page only if a thin 1D code needs it (timed, inside scan).
        let frame = analysis_frame(&source, 0).expect("frame");
        let raster = PageRaster::of_frame(frame);
        let started = Instant::now();
        let codes = scanner.scan(&raster);
        elapsed += started.elapsed();
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match expected.get(&name) {
            Some(want) if !want.is_empty() => {
                labelled += 1;
                if want.iter().all(|w| codes.iter().any(|c| &c.text == w)) {
                    found += 1;
                }
            }
            _ => false_reads += usize::from(!codes.is_empty()),
        }
    }
    (
        files.len() as f64 / elapsed.as_secs_f64(),
        found,
        labelled,
        false_reads,
    )
}

/// Per-stage cost on one core, over the first `limit` pages of `dir`.
fn stage_breakdown(dir: &Path, scanner: &Scanner, limit: usize) {
    let cache_dir = tempfile::tempdir().expect("temp cache");
    let cache = dangan_edge::cache::BlobCache::new(cache_dir.path());
    cache.create().expect("cache");
    let names = [
        "read + BLAKE3",
        "decode (open + frame; a JPEG straight to 150 dpi)",
        "reduce to 150 dpi (pages decoded in full only)",
        "barcodes",
        "ink ratio",
        "thumbnail",
        "store blob (fsync)",
    ];
    let mut totals = [Duration::ZERO; 7];
    let files: Vec<PathBuf> = image_files(dir).into_iter().take(limit).collect();
    for file in &files {
        let mut lap = Instant::now();
        let mut mark = |stage: usize, totals: &mut [Duration; 7]| {
            totals[stage] += lap.elapsed();
            lap = Instant::now();
        };
        let bytes = std::fs::read(file).expect("read");
        let id = dangan_shared::BlobId::of(&bytes);
        mark(0, &mut totals);
        let source = decode::open(&bytes, &Limits::default()).expect("decode");
        let frame = analysis_frame(&source, 0).expect("frame");
        mark(1, &mut totals);
        let raster = PageRaster::of_frame(frame);
        mark(2, &mut totals);
        let _ = scanner.scan(&raster);
        mark(3, &mut totals);
        let _ = dangan_edge::analyze::ink_ratio(&raster.reduced);
        mark(4, &mut totals);
        let thumbnail = dangan_edge::analyze::thumbnail_jpeg(&raster.reduced, 320);
        mark(5, &mut totals);
        cache.put_blob(&id, &bytes).expect("blob");
        cache.put_thumbnail(&id, &thumbnail).expect("thumbnail");
        mark(6, &mut totals);
    }
    println!(
        "\n| stage (one core, {} plain pages) | ms/page |",
        files.len()
    );
    println!("|---|---|");
    let mut sum = 0.0;
    for (name, total) in names.iter().zip(totals) {
        let ms = total.as_secs_f64() * 1000.0 / files.len() as f64;
        sum += ms;
        println!("| {name} | {ms:.1} |");
    }
    println!("| total | {sum:.1} |");
}

const ZXING_HARD: &str = r#"
import csv, os, sys, time
import zxingcpp
from PIL import Image
d = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(d, "labels.tsv")), delimiter="\t"))
ok = total = 0
t = 0.0
for r in rows:
    want = [x for x in r["text"].split("|") if x]
    if not want:
        continue
    total += 1
    im = Image.open(os.path.join(d, r["file"])); im.load()
    t0 = time.perf_counter()
    res = zxingcpp.read_barcodes(im)
    t += time.perf_counter() - t0
    if all(any(x.text == w for x in res) for w in want):
        ok += 1
print(f"{ok}\t{total}\t{total / t if t else 0:.2f}")
"#;

/// Whole-pipeline runs over the plain set (the median is the figure).
const WHOLE_RUNS: usize = 3;

fn main() {
    let args = parse_args();
    std::fs::create_dir_all(&args.work).expect("work dir");
    let pages_arg = args.pages.to_string();
    let plain = ensure_set(
        &args,
        &format!("pages-{}", args.pages),
        "gen_pages.py",
        &["-n", &pages_arg],
    );
    let labelled = ensure_set(
        &args,
        "barcodes",
        "gen_barcode_pages.py",
        &["--code128", "50", "--qr", "50"],
    );
    let hard = write_hard_set(&args);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("## Dangan ingest benchmark ({cores} cores)\n");

    let defaults = Scanner::new(&BarcodeSettings::default());
    if args.stages_only {
        stage_breakdown(&plain, &defaults, 100);
        return;
    }
    println!("| set | pages | seconds | pages/s | peak RSS MiB |");
    println!("|---|---|---|---|---|");
    // The plain set three times, reported as each run and their median: one
    // run's rate moves by several pages/s with the machine's speed (the
    // same job's CPU time varies by a fifth over tens of minutes here).
    let mut plain_runs = Vec::new();
    for run in 1..=WHOLE_RUNS {
        let (pages, seconds, peak) = run_ingest(&args, &plain, run);
        println!(
            "| plain, run {run} (whole pipeline, `dangan-edge ingest`) | {pages} | {seconds:.2} | {:.1} | {peak:.0} |",
            pages as f64 / seconds
        );
        plain_runs.push((pages as f64 / seconds, pages, seconds, peak));
    }
    plain_runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (rate, pages, seconds, peak) = plain_runs[plain_runs.len() / 2];
    println!(
        "| **plain, median of {WHOLE_RUNS}** | {pages} | {seconds:.2} | **{rate:.1}** | {peak:.0} |"
    );
    let (pages, seconds, peak) = run_ingest(&args, &labelled, 0);
    remove_runs(&args);
    println!(
        "| labelled (whole pipeline, `dangan-edge ingest`) | {pages} | {seconds:.2} | {:.1} | {peak:.0} |",
        pages as f64 / seconds
    );

    let all_formats = Scanner::new(&BarcodeSettings {
        formats: vec![
            Symbology::Code128,
            Symbology::Code39,
            Symbology::Qr,
            Symbology::DataMatrix,
            Symbology::Pdf417,
        ],
        ..BarcodeSettings::default()
    });
    stage_breakdown(&plain, &defaults, 100);
    println!(
        "\n| barcode stage alone, one core | pages/s | pages found / labelled | false reads on unlabelled pages |"
    );
    println!("|---|---|---|---|");
    for (name, dir, scanner) in [
        ("plain, default formats", &plain, &defaults),
        ("labelled, default formats", &labelled, &defaults),
        ("hard fixtures, all formats", &hard, &all_formats),
    ] {
        let (rate, found, labelled, false_reads) = barcode_stage(dir, scanner);
        println!("| {name} | {rate:.1} | {found}/{labelled} | {false_reads} |");
    }

    if !args.peers {
        return;
    }
    println!("\n### Peers, same run\n");
    let script = args.work.join("zxing_hard.py");
    std::fs::write(&script, ZXING_HARD).expect("script");
    match Command::new(&args.python).arg(&script).arg(&hard).output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let cols: Vec<&str> = text.trim().split('\t').collect();
            println!(
                "zxing-cpp read_barcodes (all formats) on the hard fixtures: {}/{} pages found, {} pages/s decode only\n",
                cols.first().unwrap_or(&"?"),
                cols.get(1).unwrap_or(&"?"),
                cols.get(2).unwrap_or(&"?")
            );
        }
        Ok(out) => println!(
            "zxing-cpp hard run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(err) => println!("zxing-cpp hard run failed: {err}"),
    }
    let status = Command::new(&args.python)
        .arg(shared_bench().join("bench_barcodes.py"))
        .arg(&labelled)
        .args(["--runs", "3"])
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        println!("bench_barcodes.py failed (needs zbar-tools and the zxing-cpp Python package)");
    }
}
