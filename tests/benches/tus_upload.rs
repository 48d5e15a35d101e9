//! Live-upload benchmark: many street-office clerks uploading at once.
//!
//! ```text
//! cargo build --release -p dangan-hub
//! cargo bench -p dangan-testkit --bench tus_upload [-- --uploads 200 --page-kb 500]
//! ```
//!
//! Starts the release `dangan-hub serve` on loopback with a clerk, makes
//! `--uploads` distinct page images of about `--page-kb` KB each (gray noise
//! PNGs, which do not compress), and sends them all at once as tus uploads
//! (creation, then one PATCH with a sha256 checksum) from one client with as
//! many connections as uploads, each into a business file of its own.
//! Reports: uploads done and failed, wall time, MB/s over the page bytes,
//! p50/p99/max time to complete one page (from its POST to its last PATCH's
//! answer), and the hub's peak resident memory (VmHWM, read at the end).
//!
//! Under `cargo test` (no `--bench` argument) it only says how to run it.
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use dangan_testkit::procs::{self, Hub};
use image::ImageEncoder;
use sha2::Digest;

const USAGE: &str = "\
usage: cargo bench -p dangan-testkit --bench tus_upload -- [--uploads N] [--page-kb K]
  --uploads N    concurrent uploads (default 200)
  --page-kb K    size of each page image in KB (default 500)
build the hub first: cargo build --release -p dangan-hub";

struct Args {
    uploads: usize,
    page_kb: usize,
}

fn parse_args() -> Result<Option<Args>> {
    let mut args = Args {
        uploads: 200,
        page_kb: 500,
    };
    let mut bench = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> Result<usize> {
            it.next()
                .with_context(|| format!("{name} needs a value"))?
                .parse()
                .with_context(|| format!("{name} is a number"))
        };
        match arg.as_str() {
            "--bench" => bench = true,
            "--uploads" => args.uploads = value("--uploads")?,
            "--page-kb" => args.page_kb = value("--page-kb")?,
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

/// A gray noise PNG of about `kb` KB (one byte a pixel, incompressible).
fn page(kb: usize, seed: u64) -> Vec<u8> {
    let side = ((kb * 1000) as f64).sqrt() as u32;
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let image = image::GrayImage::from_fn(side, side, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        image::Luma([(state >> 56) as u8])
    });
    let mut out = Vec::new();
    let _ = image::codecs::png::PngEncoder::new(&mut out).write_image(
        image.as_raw(),
        side,
        side,
        image::ExtendedColorType::L8,
    );
    out
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One page uploaded: creation, then the bytes with their checksum.
async fn upload(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    number: &str,
    bytes: Vec<u8>,
) -> Result<Duration> {
    let started = Instant::now();
    let created = client
        .post(format!("{base}/api/v1/uploads"))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", bytes.len().to_string())
        .header(
            "Upload-Metadata",
            format!(
                "business_number {},filename {}",
                b64(number.as_bytes()),
                b64(b"page.png")
            ),
        )
        .send()
        .await?;
    if created.status() != reqwest::StatusCode::CREATED {
        bail!("creation answered {}", created.status());
    }
    let location = created
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .context("no Location")?
        .to_owned();
    let checksum = format!("sha256 {}", b64(&sha2::Sha256::digest(&bytes)));
    let sent = client
        .patch(format!("{base}{location}"))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", "0")
        .header("Upload-Checksum", checksum)
        .header("Content-Type", "application/offset+octet-stream")
        .body(bytes)
        .send()
        .await?;
    if sent.status() != reqwest::StatusCode::NO_CONTENT {
        bail!(
            "PATCH answered {}: {}",
            sent.status(),
            sent.text().await.unwrap_or_default()
        );
    }
    Ok(started.elapsed())
}

fn main() -> Result<()> {
    let Some(args) = parse_args()? else {
        println!(
            "tus_upload is a benchmark; run it with `cargo build --release -p dangan-hub` then \
             `cargo bench -p dangan-testkit --bench tus_upload`"
        );
        return Ok(());
    };
    println!("hub: {}", procs::binary("dangan-hub")?.display());
    let root = tempfile::Builder::new().prefix("tus-bench-").tempdir()?;
    let mut hub = Hub::init(&root.path().join("hub"))?;
    hub.cheap_passwords()?;
    hub.street_office_clerk("xi", "xi-password-1")?;
    hub.start("127.0.0.1:0")?;
    let pid = hub.pid().context("hub pid")?;
    let base = hub.url();

    let pages: Vec<Vec<u8>> = (0..args.uploads)
        .map(|i| page(args.page_kb, i as u64 + 1))
        .collect();
    let total: usize = pages.iter().map(Vec::len).sum();
    println!(
        "{} uploads of {:.0} KB (total {:.1} MB), all at once",
        args.uploads,
        total as f64 / args.uploads as f64 / 1000.0,
        total as f64 / 1e6
    );
    let runtime = tokio::runtime::Runtime::new()?;
    let (wall, results) = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(args.uploads)
            .build()?;
        let session: serde_json::Value = client
            .post(format!("{base}/api/v1/session"))
            .json(&serde_json::json!({ "username": "xi", "password": "xi-password-1" }))
            .send()
            .await?
            .json()
            .await?;
        let token: Arc<str> = session["token"].as_str().context("token")?.into();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (i, bytes) in pages.into_iter().enumerate() {
            let (client, base, token) = (client.clone(), base.clone(), Arc::clone(&token));
            tasks.push(tokio::spawn(async move {
                upload(&client, &base, &token, &format!("BENCH-{i:04}"), bytes).await
            }));
        }
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.map_err(anyhow::Error::from).and_then(|r| r));
        }
        anyhow::Ok((started.elapsed(), results))
    })?;
    let peak = procs::vm_hwm_kib(pid).context("hub VmHWM")?;
    let mut times: Vec<Duration> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    times.sort();
    let quantile = |q: f64| {
        times
            .get(((times.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!("done: {} ok, {} failed", times.len(), failed.len());
    for error in failed.iter().take(5) {
        println!("  failure: {error}");
    }
    println!(
        "wall {:.2} s, {:.1} MB/s over the page bytes",
        wall.as_secs_f64(),
        total as f64 / 1e6 / wall.as_secs_f64()
    );
    println!(
        "time to complete one page: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        quantile(0.50),
        quantile(0.99),
        quantile(1.0)
    );
    println!("hub peak memory (VmHWM): {:.1} MiB", peak as f64 / 1024.0);
    hub.kill();
    if !failed.is_empty() {
        bail!("{} uploads failed", failed.len());
    }
    Ok(())
}
