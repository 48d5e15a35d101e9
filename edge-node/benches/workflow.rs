//! Workflow benchmark: the archive room's lists and the index import on a
//! full-sized pre-archive (issue 4).
//!
//! ```text
//! cargo bench -p dangan-edge --bench workflow -- [--batches N] [--work-dir DIR] [--analyze]
//! ```
//!
//! Targets: listing the batches and one batch's detail (its business files,
//! pages and exceptions) each stay under 100 ms with 1,000 batches and
//! 500,000 pages; an index import of 100,000 rows finishes in under 10 s.
//!
//! 1. setup (not a target): a pre-archive made with `Store::create`, then
//!    rows generated with SQL in one transaction — N batches of business
//!    type C01 (60% open, 20% scanned, 10% accepted, 10% archived), each of
//!    500 pages in 100 business files of 5 pages (numbered `YW00000000`
//!    on), one source and one blob row per page, 5 `unplaced_page`
//!    exceptions per batch. The store is then reopened, as a server would
//!    open it, so the figures use its own connection settings;
//! 2. `Store::batches`: one warm-up, then 10 runs, median and max;
//! 3. `Store::batch_detail` of the middle batch, the same way;
//! 4. `index::import_file` of a CSV export with one row per business file
//!    (one run; rows of accepted or archived batches count as closed);
//! 5. a table of the lot against the targets; a list query is ok when its
//!    slowest run is under the target ("stays under 100 ms").
//!
//! The edge never runs ANALYZE, so by default neither does the bench.
//! `--analyze` shows what statistics would do: the bundled SQLite is built
//! with STAT4, under which a statement whose plan could depend on a bound
//! value is prepared again for each new value — the index import's
//! per-row statements among them.
//!
//! Without `--work-dir` the data folder is a temporary one, removed at the
//! end; with it, the database is kept there for a look with `sqlite3`.
//! Under `cargo test` (no `--bench` argument) it only says how to run it.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use dangan_edge::barcode::Symbology;
use dangan_edge::store::{DB_FILE, Store};
use dangan_shared::{BlobId, OrgCode, PersonId};
use rusqlite::params;

const DISTRICT: &str = "330106";
const BUSINESS_TYPE: &str = "C01";
const PAGES_PER_BATCH: usize = 500;
const PAGES_PER_FILE: usize = 5;
const FILES_PER_BATCH: usize = PAGES_PER_BATCH / PAGES_PER_FILE;
const EXCEPTIONS_PER_BATCH: usize = 5;
/// Timed runs of each list query, after one warm-up.
const RUNS: usize = 10;
const LIST_TARGET: Duration = Duration::from_millis(100);
const IMPORT_TARGET: Duration = Duration::from_secs(10);

const USAGE: &str = "\
usage: cargo bench -p dangan-edge --bench workflow -- [OPTIONS]
  --batches N      batches to generate, 500 pages each (default 1000: 500,000 pages)
  --work-dir DIR   make the data folder in DIR and keep it (default: a temp dir, removed)
  --analyze        run ANALYZE after generating (the edge itself never does)";

#[derive(Debug)]
struct Args {
    batches: usize,
    work_dir: Option<PathBuf>,
    analyze: bool,
}

/// `None` when not run by `cargo bench` (which passes `--bench`).
fn parse_args() -> Result<Option<Args>> {
    let mut args = Args {
        batches: 1000,
        work_dir: None,
        analyze: false,
    };
    let mut bench = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--bench" => bench = true,
            "--batches" => {
                args.batches = value("--batches")?
                    .parse()
                    .context("--batches takes a number")?;
            }
            "--work-dir" => args.work_dir = Some(value("--work-dir")?.into()),
            "--analyze" => args.analyze = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other if bench => bail!("unknown argument {other:?}\n{USAGE}"),
            _ => {}
        }
    }
    ensure!(args.batches > 0, "--batches must be at least 1");
    Ok(bench.then_some(args))
}

/// RFC 3339 time `seconds` after 2025-01-01T00:00:00Z, as `store::now` writes it.
fn timestamp(seconds: i64) -> Result<String> {
    Ok(jiff::Timestamp::from_second(1_735_689_600 + seconds)
        .context("timestamp")?
        .to_string())
}

fn business_number(file: impl std::fmt::Display) -> String {
    format!("YW{file:08}")
}

/// Batch state by position: 6 in 10 open, 2 scanned, 1 accepted, 1 archived.
fn batch_state(batch: i64) -> &'static str {
    match batch % 10 {
        0..=5 => "open",
        6 | 7 => "scanned",
        8 => "accepted",
        _ => "archived",
    }
}

struct Generated {
    pages: usize,
    business_files: usize,
    open_files: usize,
    closed_files: usize,
    seconds: f64,
}

/// Fills the pre-archive with `batches` batches, in one transaction.
fn generate(store: &mut Store, batches: usize, analyze: bool) -> Result<Generated> {
    let started = Instant::now();
    let conn = store.conn_mut();
    // Setup only: the timed figures run on a freshly opened store.
    conn.pragma_update(None, "cache_size", -262_144)?;
    let template_version: i64 = conn.query_row(
        "SELECT max(version) FROM templates WHERE business_type = ?1",
        [BUSINESS_TYPE],
        |row| row.get(0),
    )?;
    let barcode_format = Symbology::Code128.as_str();
    // SQLite integers are i64; the layout constants are small.
    let (pages_per_batch, pages_per_file, files_per_batch, exceptions_per_batch) = (
        PAGES_PER_BATCH as i64,
        PAGES_PER_FILE as i64,
        FILES_PER_BATCH as i64,
        EXCEPTIONS_PER_BATCH as i64,
    );
    let (mut open_files, mut closed_files) = (0, 0);
    let tx = conn.transaction()?;
    {
        let mut insert_batch = tx.prepare(
            "INSERT INTO batches(id, name, district, business_type, template_version, state,
                                 created_at, updated_at, accepted_at, archived_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        let mut insert_file = tx.prepare(
            "INSERT INTO business_files(id, batch_id, seq, business_number, opened_by, created_at)
             VALUES (?1, ?2, ?3, ?4, 'business_number', ?5)",
        )?;
        let mut insert_blob = tx.prepare(
            "INSERT INTO blobs(id, size, format, created_at) VALUES (?1, ?2, 'jpeg', ?3)",
        )?;
        let mut insert_source = tx.prepare(
            "INSERT INTO sources(id, batch_id, path, file_hash, size, status, format, frame_count,
                                 recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'ingested', 'jpeg', 1, ?6)",
        )?;
        let mut insert_page = tx.prepare(
            "INSERT INTO pages(id, batch_id, seq, business_file_id, source_id, frame, blob_id,
                               duplicate, format, width, height, dpi, colour, barcodes, separator,
                               blank, ink_ratio, created_at, operator)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, 0, 'jpeg', 2480, 3508, 300, 'gray', ?7, 0, 0,
                     ?8, ?9, 'bench')",
        )?;
        let mut insert_exception = tx.prepare(
            "INSERT INTO exceptions(batch_id, page_id, business_file_id, code, detail, created_at)
             VALUES (?1, ?2, ?3, 'unplaced_page', ?4, ?5)",
        )?;
        for batch in 0..i64::try_from(batches)? {
            let batch_id = batch + 1;
            let name = format!("BENCH-{batch_id:04}");
            let state = batch_state(batch);
            let created_at = timestamp(batch * 3600)?;
            let updated_at = timestamp(batch * 3600 + 1800)?;
            let closed = matches!(state, "accepted" | "archived");
            let archived = state == "archived";
            insert_batch.execute(params![
                batch_id,
                name,
                DISTRICT,
                BUSINESS_TYPE,
                template_version,
                state,
                created_at,
                updated_at,
                closed.then_some(&updated_at),
                archived.then_some(&updated_at),
            ])?;
            for file_seq in 1..=files_per_batch {
                let file_id = batch * files_per_batch + file_seq;
                let number = business_number(file_id - 1);
                insert_file.execute(params![file_id, batch_id, file_seq, number, created_at])?;
                if closed {
                    closed_files += 1;
                } else {
                    open_files += 1;
                }
                let first_page = (file_seq - 1) * pages_per_file + 1;
                for seq in first_page..first_page + pages_per_file {
                    let page_id = batch * pages_per_batch + seq;
                    let blob = BlobId::of(&page_id.to_le_bytes()).to_hex();
                    let size = 400_000 + page_id % 200_000;
                    insert_blob.execute(params![blob, size, created_at])?;
                    let path = format!("/scans/{name}/{seq:05}.jpg");
                    insert_source
                        .execute(params![page_id, batch_id, path, blob, size, created_at])?;
                    // The business number is on the first page of each file.
                    let barcodes = if seq == first_page {
                        format!(r#"[{{"format":"{barcode_format}","text":"{number}"}}]"#)
                    } else {
                        "[]".to_owned()
                    };
                    let ink_ratio = 0.02 + (page_id % 50) as f64 / 1000.0;
                    insert_page.execute(params![
                        page_id, batch_id, seq, file_id, page_id, blob, barcodes, ink_ratio,
                        created_at
                    ])?;
                }
            }
            for index in 0..exceptions_per_batch {
                let seq = index * (pages_per_batch / exceptions_per_batch) + 3;
                let page_id = batch * pages_per_batch + seq;
                let file_id = batch * files_per_batch + (seq - 1) / pages_per_file + 1;
                insert_exception.execute(params![
                    batch_id,
                    page_id,
                    file_id,
                    format!("page {seq} could not be placed in a business file"),
                    created_at
                ])?;
            }
        }
    }
    tx.commit()?;
    if analyze {
        conn.execute_batch("ANALYZE")?;
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    Ok(Generated {
        pages: batches * PAGES_PER_BATCH,
        business_files: batches * FILES_PER_BATCH,
        open_files,
        closed_files,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A valid 18-character identity number for person `n` (Hangzhou area code,
/// a real birth date, a sequence number and its check character).
fn person_id(n: usize) -> Result<String> {
    let digits = format!(
        "330106{:04}{:02}{:02}{:03}",
        1950 + n % 50,
        1 + n % 12,
        1 + n % 28,
        n % 1000
    );
    let check = PersonId::check_character(&digits).context("17 digits")?;
    let id = format!("{digits}{check}");
    // The import refuses a bad id; fail here, where the cause is plain.
    id.parse::<PersonId>()
        .with_context(|| format!("generated person id {id}"))?;
    Ok(id)
}

/// Writes the business system's export: one row per generated business file.
fn write_export(path: &Path, rows: usize) -> Result<()> {
    const SURNAMES: [&str; 10] = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周"];
    const GIVEN: [&str; 10] = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军"];
    let mut writer = csv::Writer::from_path(path)
        .with_context(|| format!("create the export {}", path.display()))?;
    writer.write_record(["业务流水号", "社会保障号码", "姓名", "单位编号", "业务日期"])?;
    for n in 0..rows {
        let name = format!("{}{}", SURNAMES[n % 10], GIVEN[(n / 10) % 10]);
        let employer = format!("DW{:06}", n % 5000);
        let date = format!("{}-{:02}-{:02}", 2015 + n % 10, 1 + n % 12, 1 + n % 28);
        writer.write_record([
            business_number(n).as_str(),
            &person_id(n)?,
            &name,
            &employer,
            &date,
        ])?;
    }
    writer.flush().context("write the export")?;
    Ok(())
}

/// Median and max of `RUNS` runs of `run`, after one warm-up.
fn time_runs<T>(mut run: impl FnMut() -> Result<T>) -> Result<(Duration, Duration, T)> {
    let warm = run()?;
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let _ = std::hint::black_box(run()?);
        times.push(started.elapsed());
    }
    times.sort();
    let median = (times[(RUNS - 1) / 2] + times[RUNS / 2]) / 2;
    Ok((median, times[RUNS - 1], warm))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn verdict(figure: Duration, target: Duration) -> &'static str {
    if figure < target { "ok" } else { "MISS" }
}

fn main() -> Result<()> {
    let Some(args) = parse_args()? else {
        println!(
            "workflow is a benchmark; run it with `cargo bench -p dangan-edge --bench workflow`"
        );
        return Ok(());
    };
    let temp = match &args.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("create the work folder {}", dir.display()))?;
            tempfile::Builder::new()
                .prefix("workflow-bench-")
                .tempdir_in(dir)?
        }
        None => tempfile::Builder::new()
            .prefix("workflow-bench-")
            .tempdir()?,
    };
    let data = temp.path().to_owned();
    let district: OrgCode = DISTRICT.parse()?;

    println!("## Dangan workflow benchmark\n");
    let generated = {
        let mut store = Store::create(&data, &district).context("create the pre-archive")?;
        generate(&mut store, args.batches, args.analyze).context("generate the rows")?
    };
    let db_bytes = std::fs::metadata(data.join(DB_FILE))
        .context("database size")?
        .len();
    println!(
        "setup: {} batches, {} business files, {} pages, {} exceptions generated in {:.1} s \
         (not a target); database {:.0} MB; {}\n",
        args.batches,
        generated.business_files,
        generated.pages,
        args.batches * EXCEPTIONS_PER_BATCH,
        generated.seconds,
        db_bytes as f64 / 1e6,
        if args.analyze {
            "ANALYZE run (STAT4 statistics)"
        } else {
            "no ANALYZE, as on an edge"
        }
    );

    let mut store = Store::open(&data).context("reopen the pre-archive")?;
    // Open exceptions per batch: the recorded ones, plus one per business
    // file for missing metadata and one for unchecked documents when the
    // template requires them (the generated files have neither yet).
    let template = dangan_edge::template::current(store.conn(), BUSINESS_TYPE)?
        .context("the bench's business type has a template")?
        .template;
    let expected_exceptions = EXCEPTIONS_PER_BATCH
        + FILES_PER_BATCH * usize::from(!template.required_metadata.is_empty())
        + FILES_PER_BATCH * usize::from(!template.required_documents.is_empty());
    let (list_median, list_max, list) = time_runs(|| Ok(store.batches()?))?;
    ensure!(
        list.len() == args.batches,
        "the batch list has {} entries, not {}",
        list.len(),
        args.batches
    );
    ensure!(
        list.iter().all(
            |b| b.pages == PAGES_PER_BATCH as i64 && b.exceptions == expected_exceptions as i64
        ),
        "the batch list's counts are not the generated ones"
    );

    let middle = format!("BENCH-{:04}", args.batches / 2 + 1);
    let (detail_median, detail_max, detail) = time_runs(|| Ok(store.batch_detail(&middle)?))?;
    ensure!(
        detail.counts.pages == PAGES_PER_BATCH
            && detail.counts.business_files == FILES_PER_BATCH
            && detail.counts.exceptions == expected_exceptions,
        "batch {middle} has {:?}, not the generated counts",
        detail.counts
    );
    let (queue_median, queue_max, queue) =
        time_runs(|| Ok(dangan_edge::exceptions::list(store.conn(), &middle, false)?))?;
    ensure!(
        queue.len() == expected_exceptions,
        "the exception queue of {middle} has {} entries, not {expected_exceptions}",
        queue.len()
    );

    let export = temp.path().join("export.csv");
    write_export(&export, generated.business_files)?;
    let started = Instant::now();
    let report = dangan_edge::index::import_file(
        store.conn_mut(),
        &export,
        &[BUSINESS_TYPE.to_owned()],
        "bench",
    )
    .context("index import")?;
    let import_time = started.elapsed();
    ensure!(
        report.rejected.is_empty(),
        "the import rejected {} rows, the first: {:?}",
        report.rejected.len(),
        report.rejected.first()
    );
    ensure!(
        report.matched == generated.open_files
            && report.closed == generated.closed_files
            && report.matched + report.closed == generated.business_files,
        "the import matched {} and found {} closed, expected {} and {}",
        report.matched,
        report.closed,
        generated.open_files,
        generated.closed_files
    );
    let import_seconds = import_time.as_secs_f64();

    println!("| figure | median | max | target | |");
    println!("|---|---|---|---|---|");
    println!(
        "| batch list (`Store::batches`, {} batches, {RUNS} runs) | {:.1} ms | {:.1} ms | < {} ms | {} |",
        args.batches,
        ms(list_median),
        ms(list_max),
        LIST_TARGET.as_millis(),
        verdict(list_max, LIST_TARGET)
    );
    println!(
        "| exception queue (`exceptions::list` {middle}: {expected_exceptions} open; {RUNS} runs) \
         | {:.1} ms | {:.1} ms | < {} ms | {} |",
        ms(queue_median),
        ms(queue_max),
        LIST_TARGET.as_millis(),
        verdict(queue_max, LIST_TARGET)
    );
    println!(
        "| batch detail (`Store::batch_detail` {middle}: {PAGES_PER_BATCH} pages, \
         {FILES_PER_BATCH} files, {expected_exceptions} open exceptions; {RUNS} runs) \
         | {:.1} ms | {:.1} ms | < {} ms | {} |",
        ms(detail_median),
        ms(detail_max),
        LIST_TARGET.as_millis(),
        verdict(detail_max, LIST_TARGET)
    );
    println!(
        "| index import (`index::import_file`, {} rows: {} matched, {} closed; one run) \
         | {import_seconds:.2} s ({:.0} rows/s) | | < {} s | {} |",
        report.rows,
        report.matched,
        report.closed,
        report.rows as f64 / import_seconds,
        IMPORT_TARGET.as_secs(),
        verdict(import_time, IMPORT_TARGET)
    );
    if args.work_dir.is_some() {
        let kept = temp.keep();
        println!("\ndata folder kept: {}", kept.display());
    }
    Ok(())
}
