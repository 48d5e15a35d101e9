//! Argument parsing and output for `dangan-edge`.
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use dangan_edge::eviction::{self, CacheStatus};
use dangan_edge::fsck::{self, FsckReport};
use dangan_edge::ingest::{self, IngestOptions, IngestReport};
use dangan_edge::node::Node;
use dangan_edge::store::{BatchDetail, BatchSummary};
use dangan_edge::sync::{self as edge_sync, SyncReport};
use dangan_edge::watch::{self, WatchOptions};
use dangan_shared::OrgCode;
use dangan_shared::text::{pad, pad_left};

use dangan_edge::text::{Lang, code_label, state_label};

mod warehouse;

/// Dangan edge node: the district archive room's offline pre-archive.
///
/// Scans come in from files, directory trees, a hot folder or a SANE
/// scanner; every page is hashed, probed, searched for barcodes, checked for
/// blankness, thumbnailed, stored once in a content-addressed cache and
/// recorded in a local SQLite database, grouped into business files by its
/// barcodes. Nothing needs a network.
#[derive(Debug, Parser)]
#[command(
    name = "dangan-edge",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    /// The data folder (database, image cache, quarantine, edge.toml).
    /// Accepted before or after the subcommand.
    #[arg(long, global = true, env = "DANGAN_EDGE_DATA", value_name = "DIR")]
    data: Option<PathBuf>,

    /// Print one machine-readable JSON document on standard output instead
    /// of text (no progress bar). The fields are documented in the README.
    #[arg(long, global = true)]
    json: bool,

    /// Language of messages for people: zh (Simplified Chinese) or en.
    #[arg(
        long,
        global = true,
        env = "DANGAN_LANG",
        value_enum,
        default_value = "zh"
    )]
    lang: Lang,

    /// More log output on standard error (-v info, -vv debug). RUST_LOG
    /// overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new data folder: the SQLite pre-archive, the image cache, the
    /// quarantine folder and a commented edge.toml.
    Init {
        /// The district (区县) this node scans for: its 6-digit
        /// administrative division code, e.g. 330106.
        #[arg(long, value_name = "CODE")]
        district: OrgCode,
    },
    /// Import files and directory trees into a batch. Unreadable files are
    /// quarantined with their reason; that is an outcome, not a failure, so
    /// the exit status is 0 unless the import itself could not run.
    /// Running the same command again after an interruption finishes the job
    /// without recording anything twice.
    Ingest {
        /// Files or directories. Directories are read recursively in natural
        /// name order (p2 before p10); hidden files and files whose extension
        /// is not an image type (see ingest.extensions) are ignored there.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        target: BatchTarget,
    },
    /// Watch a hot folder that scanner software writes into and ingest each
    /// file once it has stopped growing; ingested files are removed from the
    /// folder (their pages are in the cache). Runs until stopped, unless --once.
    Watch {
        /// The hot folder (created if missing).
        #[arg(value_name = "HOTFOLDER")]
        hot_folder: PathBuf,
        #[command(flatten)]
        target: BatchTarget,
        /// Take what is in the folder (and what the scanner delivers, with
        /// --scan), then exit.
        #[arg(long)]
        once: bool,
        /// Leave ingested files in the hot folder instead of removing them.
        #[arg(long)]
        keep: bool,
        /// Also drive a SANE scanner: run `scanimage --batch` into the hot
        /// folder with the device from --scan-device or [scanner] in edge.toml.
        #[arg(long)]
        scan: bool,
        /// SANE device name for --scan (see `scanimage -L`), e.g. `test`.
        #[arg(long, value_name = "DEVICE", requires = "scan")]
        scan_device: Option<String>,
        /// An extra argument for scanimage, repeatable, e.g.
        /// --scan-arg=--batch-count=3 (added after [scanner] args).
        #[arg(
            long = "scan-arg",
            value_name = "ARG",
            allow_hyphen_values = true,
            requires = "scan"
        )]
        scan_args: Vec<String>,
    },
    /// Report batches, or accept one for archiving.
    Batch {
        #[command(subcommand)]
        command: BatchCommand,
    },
    /// Pages: rescan one (rework) or show its rescan history.
    Page {
        #[command(subcommand)]
        command: PageCommand,
    },
    /// Indexing (著录): import the business system's export of business-file
    /// metadata, keyed by business number.
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
    /// The exception queue (异常队列) of a batch: list what must be settled
    /// before it may be accepted, and resolve recorded exceptions.
    Exception {
        #[command(subcommand)]
        command: ExceptionCommand,
    },
    /// Edit a batch's business files: metadata (著录), the document
    /// checklist (材料清单) and the grouping (split, join, assign pages,
    /// reorder, separator sheets). Every edit is recorded with who and when
    /// (`batch edits`), and refused once the batch is accepted.
    File {
        #[command(subcommand)]
        command: FileCommand,
    },
    /// Quality spot-checks (质量抽查): start a round (draws the sample),
    /// record verdicts, finish (accepted or rework), report.
    Qc {
        #[command(subcommand)]
        command: QcCommand,
    },
    /// People who use the edge's API: operators, inspectors and edge
    /// admins. Passwords are read from standard input (one line), never
    /// from the command line.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Show the common dictionaries in force here (archive categories,
    /// retention periods, QC defect types): the versions last received from
    /// the hub with `sync` (the shipped ones before the first contact), and
    /// the position in the hub's dictionary feed.
    Dictionary {
        /// Only this dictionary: categories, retentions or defects.
        #[arg(value_name = "KIND")]
        kind: Option<dangan_shared::dictionary::DictionaryKind>,
    },
    /// The warehouse of paper originals (库房管理): locations, volumes,
    /// shelving (one box or a CSV), loans, label sheets and the feed to the
    /// hub. The web UI (`serve`) does the same with a handheld scanner.
    Warehouse {
        #[command(subcommand)]
        command: warehouse::WarehouseCommand,
    },
    /// Business-type templates: list them, show one, or import a new set
    /// (each changed template becomes its next version; batches keep the
    /// version they were bound to). The hub's templates arrive with `sync`
    /// (source "hub vN") and supersede a local import.
    Template {
        #[command(subcommand)]
        command: TemplateCommand,
    },
    /// Enrol this node with the central hub, using the one-time code an
    /// administrator made with `dangan-hub node enrol --district CODE`.
    /// Stores the node's credential and the hub's signing key in hub.json.
    Enrol {
        /// The hub's address, e.g. https://archive.example.gov.cn:8443.
        #[arg(long, value_name = "URL")]
        hub: String,
        /// The one-time enrolment code.
        #[arg(long, value_name = "CODE")]
        code: String,
        /// A PEM file with the certificate authority that signed the hub's
        /// TLS certificate, when it is a private one the system does not trust.
        #[arg(long, value_name = "PEM")]
        ca_cert: Option<PathBuf>,
        /// Replace an existing enrolment (a node moved to a new hub or
        /// re-issued credential).
        #[arg(long)]
        replace: bool,
    },
    /// Send accepted batches to the hub once: offer each manifest, upload the
    /// images the hub lacks (resuming interrupted ones), commit, and mark the
    /// batch archived on a verified receipt. Retries an unreachable hub with
    /// backoff for sync.give_up_after_seconds; exit status 1 when a batch
    /// could not be archived (it stays queued).
    Sync {
        /// Run now even outside the configured sync windows, and retry
        /// batches whose next attempt is not yet due.
        #[arg(long)]
        now: bool,
    },
    /// Run the edge's services until stopped (Ctrl-C or SIGTERM): the web
    /// UI for operators and inspectors at / and the JSON API under /api/v1
    /// (OpenAPI document at /api/v1/openapi.json; log in with a user made
    /// by `dangan-edge user add`), and a sync pass every
    /// sync.interval_seconds inside the sync windows.
    Serve {
        /// Address and port the UI and API listen on. The default only
        /// answers this machine; use 0.0.0.0:8720 to serve the archive
        /// room's LAN.
        #[arg(long, default_value = "127.0.0.1:8720")]
        listen: std::net::SocketAddr,
        /// PEM certificate chain to serve HTTPS (with --tls-key); session
        /// cookies are then marked Secure. Neither means plain HTTP.
        #[arg(long, value_name = "PEM", requires = "tls_key")]
        tls_cert: Option<std::path::PathBuf>,
        /// PEM private key for HTTPS (with --tls-cert).
        #[arg(long, value_name = "PEM", requires = "tls_cert")]
        tls_key: Option<std::path::PathBuf>,
    },
    /// The local image cache: its size against the budget in edge.toml.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Check the image cache against the database: every recorded blob
    /// present with the right hash, no unreferenced blobs, no interrupted
    /// writes. Exit status 0 when nothing is wrong, 1 otherwise.
    Fsck {
        /// Remove unreferenced blobs and interrupted writes and re-make
        /// missing thumbnails. Missing or corrupt blobs are only reported.
        #[arg(long)]
        repair: bool,
    },
}

#[derive(Debug, clap::Args)]
struct BatchTarget {
    /// The batch to add pages to (created if new). Default: the district
    /// code and today's date, e.g. 330106-20261125, so that repeating a
    /// command on the same day continues the same batch.
    #[arg(long, value_name = "NAME")]
    batch: Option<String>,
    /// Business type code (业务类型) of the batch's files, e.g. YL01.
    #[arg(long, value_name = "CODE")]
    business_type: Option<String>,
}

#[derive(Debug, Subcommand)]
enum BatchCommand {
    /// List batches with their state and counts.
    List,
    /// Show one batch: business files in scan order with their pages,
    /// quarantined files and exceptions.
    Show {
        /// The batch name.
        name: String,
    },
    /// The edge admin's override: accept a batch for archiving whatever
    /// its QC and exceptions say. It takes no more pages and joins the sync
    /// queue; the override is recorded with the local user and the reason.
    Accept {
        /// The batch name.
        name: String,
        /// Why the batch is accepted outside the normal QC path (recorded).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Mark an open batch as scanned (ready for QC).
    Scanned {
        /// The batch name.
        name: String,
    },
    /// Show a batch's lifecycle: every transition with who, when and why.
    Events {
        /// The batch name.
        name: String,
    },
    /// Show the edits made to a batch's business files (grouping,
    /// metadata, documents, resolutions) with who and when.
    Edits {
        /// The batch name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum PageCommand {
    /// Replace a page's image with a new scan (rework). Allowed while the
    /// batch is open, scanned or in rework. The new file goes through the
    /// same checks as ingest (barcodes, dpi, colour, blank, skew); a file
    /// that cannot be read is refused and changes nothing. The old image
    /// stays in the cache and in the page's history, with who and why.
    Rescan {
        /// The batch name.
        batch: String,
        /// The page number in scan order (from 1).
        page: i64,
        /// The new scan: one page (JPEG, PNG, TIFF or PDF).
        file: PathBuf,
        /// Why the page is rescanned (recorded), e.g. the QC defect.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Show a page's rescans, oldest first: old and new image, who, when, why.
    History {
        /// The batch name.
        batch: String,
        /// The page number in scan order (from 1).
        page: i64,
    },
}

#[derive(Debug, Subcommand)]
enum IndexCommand {
    /// Import a CSV (header row; English or Chinese column names such as
    /// 业务流水号, 社会保障号码, 姓名, 单位编号, 业务类型, 业务日期, 经办机构) or a
    /// JSON array of rows. Reports matched, unmatched, conflicting, duplicate
    /// and rejected rows (with row numbers); rows are kept for business
    /// files scanned later. All or nothing.
    Import {
        /// The export file (.csv or .json).
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ExceptionCommand {
    /// List a batch's open exceptions: recorded at ingest (ids like r17)
    /// and derived from its business files (ids like f3-metadata: no
    /// business number, missing metadata, missing documents).
    List {
        /// The batch name.
        batch: String,
        /// Also list recorded exceptions already resolved, with how.
        #[arg(long)]
        all: bool,
    },
    /// Resolve a recorded exception (r17) with a note saying what was done
    /// or why the page is right as it is. Derived exceptions close when the
    /// business file is fixed with `dangan-edge file ...`.
    Resolve {
        /// The batch name.
        batch: String,
        /// The exception id, as `exception list` shows it.
        id: String,
        /// What was done (recorded with the resolution).
        #[arg(long)]
        note: String,
    },
}

#[derive(Debug, Subcommand)]
enum FileCommand {
    /// Show a business file's metadata and document checklist.
    Show {
        /// The batch name.
        batch: String,
        /// The business file's number in the batch (from 1).
        file: i64,
    },
    /// Enter or correct a business file's metadata. Fields not given are
    /// kept; an empty value clears a field. Person ids must pass the
    /// checksum, dates must be dates (YYYY-MM-DD), business types must have
    /// a template.
    Set {
        /// The batch name.
        batch: String,
        /// The business file's number in the batch (from 1).
        file: i64,
        /// Business number (业务流水号); not one another file of the batch has.
        #[arg(long)]
        business_number: Option<String>,
        /// Person id (社会保障号码 / 身份证号).
        #[arg(long)]
        person_id: Option<String>,
        /// The person's name (姓名).
        #[arg(long)]
        person_name: Option<String>,
        /// Employer id (单位编号).
        #[arg(long)]
        employer_id: Option<String>,
        /// Business type code (业务类型), one with a template.
        #[arg(long)]
        business_type: Option<String>,
        /// Business date (业务日期), YYYY-MM-DD.
        #[arg(long)]
        business_date: Option<String>,
        /// Organisation that handled the business (经办机构).
        #[arg(long)]
        organisation: Option<String>,
    },
    /// Record the document checklist: documents the template lists
    /// confirmed present, or absent with a note (缺件说明).
    Documents {
        /// The batch name.
        batch: String,
        /// The business file's number in the batch (from 1).
        file: i64,
        /// A document confirmed present (repeat for several).
        #[arg(long)]
        present: Vec<String>,
        /// A document recorded absent, as DOCUMENT=NOTE (repeat for several).
        #[arg(long)]
        absent: Vec<String>,
    },
    /// Start a new business file at a page: it and the pages after it in
    /// its file move to a new file right after.
    Split {
        /// The batch name.
        batch: String,
        /// The business file's number in the batch.
        file: i64,
        /// The page (number in the batch) that opens the new file.
        #[arg(long)]
        at: i64,
    },
    /// Append a business file's pages to another file and remove it.
    Join {
        /// The batch name.
        batch: String,
        /// The business file whose pages move.
        file: i64,
        /// The business file that takes them.
        #[arg(long)]
        into: i64,
    },
    /// Move pages to the end of another business file.
    Assign {
        /// The batch name.
        batch: String,
        /// Page numbers in the batch, comma-separated (3,4,7).
        #[arg(long, value_delimiter = ',', required = true)]
        pages: Vec<i64>,
        /// The business file that takes them.
        #[arg(long)]
        to: i64,
    },
    /// Put a business file's pages in a new order (every page once).
    Reorder {
        /// The batch name.
        batch: String,
        /// The business file's number in the batch.
        file: i64,
        /// Its page numbers in the new order, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        pages: Vec<i64>,
    },
    /// Mark a page as a separator sheet (the pages after it in its file
    /// start a new business file), or unmark it with --unset.
    Separator {
        /// The batch name.
        batch: String,
        /// The page number in the batch.
        page: i64,
        /// Unmark the page.
        #[arg(long)]
        unset: bool,
    },
}

#[derive(Debug, Subcommand)]
enum QcCommand {
    /// Start a QC round on a scanned or reworked batch: draws the sample
    /// at the template's rate and floor (seeded; the seed is stored) and
    /// lists pre-check flags (below the template's dpi, a colour mode the
    /// template does not accept, suspected blanks, skewed by 1° or more).
    Start {
        /// The batch name.
        name: String,
        /// Use this seed instead of a random one (to repeat a sample).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Record the verdict on a sampled page: pass, or a defect (skew, blur,
    /// missing_page, wrong_order, blank, cropped, illegible, low_resolution).
    Check {
        /// The batch name.
        name: String,
        /// The page number in scan order (from 1).
        page: u32,
        /// pass or a defect.
        verdict: String,
        /// A remark for the rework.
        #[arg(long)]
        note: Option<String>,
    },
    /// Finish the round: accepted when the pass rate meets the template's
    /// threshold and no exception is open; else rework, defects listed.
    Finish {
        /// The batch name.
        name: String,
    },
    /// The QC report of a batch: every round, pass rate, defects by type
    /// and by operator (JSON with --json, CSV with --csv).
    Report {
        /// The batch name.
        name: String,
        /// CSV, one line per sampled page.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user; the password (at least 8 characters) is read from
    /// standard input.
    Add {
        /// Login name: letters, digits, '.', '-' or '_'.
        username: String,
        /// operator (扫描员), inspector (质检员) or admin (管理员).
        #[arg(long)]
        role: String,
        /// The name shown beside what the user did (default: the login name).
        #[arg(long, value_name = "NAME")]
        display_name: Option<String>,
    },
    /// List users (never their password hashes).
    List,
    /// Set a user's password, read from standard input.
    Passwd { username: String },
    /// Stop a user from logging in and end their sessions (what they did
    /// stays attributed to them).
    Disable { username: String },
    /// Let a disabled user log in again.
    Enable { username: String },
}

#[derive(Debug, Subcommand)]
enum TemplateCommand {
    /// List the current version of every template.
    List,
    /// Show one business type's template (the current version unless
    /// --template-version is given).
    Show {
        /// The business type code, e.g. C01.
        business_type: String,
        /// A past version of the template.
        #[arg(long, value_name = "N")]
        template_version: Option<u32>,
    },
    /// Import templates from a TOML file in the format of the shipped
    /// seed (shared/seed/templates.toml); all or nothing. For a local
    /// trial: the hub's next template version replaces it.
    Import {
        /// The template file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// Show what the cache holds, what may be evicted, and the budget.
    Status,
    /// Remove archived batches' images now until the cache is within budget.
    Evict,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let lang = cli.lang;
    let json = cli.json;
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            if json {
                let body = serde_json::json!({ "error": format!("{err:#}") });
                println!("{body}");
            } else {
                eprintln!("{}: {err:#}", lang.pick("错误", "error"));
            }
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn data_dir(cli: &Cli) -> Result<PathBuf> {
    match &cli.data {
        Some(dir) => Ok(dir.clone()),
        None => bail!(
            "{}",
            cli.lang.pick(
                "未指定数据目录：请使用 --data DIR 或设置 DANGAN_EDGE_DATA",
                "no data folder: give --data DIR or set DANGAN_EDGE_DATA"
            )
        ),
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let dir = data_dir(&cli)?;
    let lang = cli.lang;
    match &cli.command {
        Command::Init { district } => {
            Node::init(&dir, district)
                .with_context(|| format!("cannot initialise {}", dir.display()))?;
            if cli.json {
                print_json(&serde_json::json!({ "data": dir, "district": district }))?;
            } else {
                println!(
                    "{} {} ({} {})",
                    lang.pick("已创建数据目录", "created data folder"),
                    dir.display(),
                    lang.pick("区县", "district"),
                    district
                );
            }
        }
        Command::Ingest { paths, target } => {
            let (node, mut store) = Node::open(&dir)?;
            let _lock = node.lock_for_writing()?;
            node.cache.clear_temp()?;
            let options = ingest_options(&store, target, !cli.json, false)?;
            let (files, ignored) = ingest::enumerate(paths, &node.config.ingest.extensions)?;
            let mut report = ingest::ingest_files(&node, &mut store, &files, &options)?;
            report.ignored = ignored.iter().map(|p| p.display().to_string()).collect();
            print_ingest(&cli, &report)?;
        }
        Command::Watch {
            hot_folder,
            target,
            once,
            keep,
            scan,
            scan_device,
            scan_args,
        } => {
            let (node, mut store) = Node::open(&dir)?;
            let _lock = node.lock_for_writing()?;
            node.cache.clear_temp()?;
            let scan_device = scan.then(|| {
                scan_device
                    .clone()
                    .unwrap_or_else(|| node.config.scanner.device.clone())
            });
            let mut all_args = node.config.scanner.args.clone();
            all_args.extend(scan_args.iter().cloned());
            let options = WatchOptions {
                ingest: ingest_options(&store, target, false, !keep)?,
                once: *once,
                scan_device,
                scan_args: all_args,
            };
            let total = watch::watch(&node, &mut store, hot_folder, &options, |round| {
                if cli.json {
                    if let Ok(line) = serde_json::to_string(round) {
                        println!("{line}");
                    }
                } else {
                    println!(
                        "{}: {} {}, {} {}, {} {}",
                        round.batch,
                        round.pages,
                        lang.pick("页已入库", "pages recorded"),
                        round.quarantined,
                        lang.pick("个文件已隔离", "files quarantined"),
                        round.skipped,
                        lang.pick("个已跳过", "skipped")
                    );
                }
            })?;
            if !cli.json {
                print_ingest(&cli, &total)?;
            }
        }
        Command::Exception { command } => {
            let (_node, mut store) = Node::open(&dir)?;
            match command {
                ExceptionCommand::List { batch, all } => {
                    let list = dangan_edge::exceptions::list(store.conn(), batch, *all)?;
                    if cli.json {
                        print_json(&list)?;
                    } else if list.is_empty() {
                        println!("{}", lang.pick("没有未处理的异常", "no open exceptions"));
                    } else {
                        for e in &list {
                            let state = match &e.resolution {
                                Some(note) => {
                                    format!("  [{} {note}]", lang.pick("已处理：", "resolved:"))
                                }
                                None => String::new(),
                            };
                            println!(
                                "{:<14} {}: {}{state}",
                                e.id,
                                code_label(lang, &e.code),
                                e.reason
                            );
                        }
                    }
                }
                ExceptionCommand::Resolve { batch, id, note } => {
                    let resolved = dangan_edge::exceptions::resolve(
                        store.conn_mut(),
                        batch,
                        id,
                        note,
                        &local_admin(),
                    )?;
                    if cli.json {
                        print_json(&resolved)?;
                    } else {
                        println!("{} {id}", lang.pick("异常已处理", "exception resolved"));
                    }
                }
            }
        }
        Command::File { command } => {
            let (_node, mut store) = Node::open(&dir)?;
            file_command(&cli, lang, store.conn_mut(), command)?;
        }
        Command::Qc { command } => {
            let (_node, mut store) = Node::open(&dir)?;
            use dangan_edge::qc;
            let actor = local_admin();
            match command {
                QcCommand::Start { name, seed } => {
                    let round = qc::start(store.conn_mut(), name, &actor, *seed)?;
                    if cli.json {
                        print_json(&round)?;
                    } else {
                        println!(
                            "{} {} {}: {} {} / {} {}; {}: {:?}",
                            lang.pick("批次", "batch"),
                            name,
                            lang.pick(
                                &format!("第{}轮质检", round.round),
                                &format!("QC round {}", round.round)
                            ),
                            round.sample.len(),
                            lang.pick("页抽检", "pages sampled"),
                            round.pages,
                            lang.pick("页", "pages"),
                            lang.pick("抽检页", "sample"),
                            round.sample
                        );
                        for flag in &round.prechecks {
                            println!(
                                "  {} {}: {} ({})",
                                lang.pick("第", "page"),
                                flag.page,
                                flag.check,
                                flag.detail
                            );
                        }
                    }
                }
                QcCommand::Check {
                    name,
                    page,
                    verdict,
                    note,
                } => {
                    let verdict = qc::Verdict::parse(verdict)?;
                    qc::check(store.conn(), name, *page, verdict, note.as_deref(), &actor)?;
                    if cli.json {
                        print_json(
                            &serde_json::json!({ "batch": name, "page": page, "verdict": verdict }),
                        )?;
                    }
                }
                QcCommand::Finish { name } => {
                    let outcome = qc::finish(store.conn_mut(), name, &actor)?;
                    if cli.json {
                        print_json(&outcome)?;
                    } else {
                        println!(
                            "{} {}: {}/{} {} ({:.1}%), {}",
                            lang.pick("批次", "batch"),
                            name,
                            outcome.passed,
                            outcome.checked,
                            lang.pick("合格", "passed"),
                            outcome.pass_rate * 100.0,
                            outcome.state.as_str()
                        );
                        for defect in &outcome.defects {
                            println!(
                                "  {} {}: {}",
                                lang.pick("第", "page"),
                                defect.page,
                                defect.defect
                            );
                        }
                    }
                }
                QcCommand::Report { name, csv } => {
                    let report = qc::report(store.conn(), name)?;
                    if *csv {
                        print!("{}", qc::report_csv(&report));
                    } else {
                        print_json(&report)?;
                    }
                }
            }
        }
        Command::User { command } => {
            let (node, store) = Node::open(&dir)?;
            use dangan_edge::users;
            let cost = node.config.password_cost;
            match command {
                UserCommand::Add {
                    username,
                    role,
                    display_name,
                } => {
                    let role: dangan_edge::lifecycle::Role = role.parse()?;
                    let hash = users::hash_password(&read_password()?, cost)?;
                    let user = users::add(
                        store.conn(),
                        username,
                        display_name.as_deref().unwrap_or(username),
                        role,
                        &hash,
                    )?;
                    if cli.json {
                        print_json(&user)?;
                    } else {
                        println!(
                            "{} {username} ({})",
                            lang.pick("已添加用户", "user added"),
                            role.as_str()
                        );
                    }
                }
                UserCommand::List => {
                    let list = users::list(store.conn())?;
                    if cli.json {
                        print_json(&list)?;
                    } else {
                        for user in &list {
                            println!(
                                "{}  {}  {}{}",
                                user.username,
                                user.role.as_str(),
                                user.display_name,
                                if user.disabled {
                                    lang.pick("  [已停用]", "  [disabled]")
                                } else {
                                    ""
                                }
                            );
                        }
                    }
                }
                UserCommand::Passwd { username } => {
                    users::find(store.conn(), username)?
                        .ok_or_else(|| anyhow::anyhow!("no user {username:?}"))?;
                    let hash = users::hash_password(&read_password()?, cost)?;
                    users::set_password(store.conn(), username, &hash)?;
                    if !cli.json {
                        println!("{} {username}", lang.pick("已修改密码", "password changed"));
                    } else {
                        print_json(&serde_json::json!({ "username": username }))?;
                    }
                }
                UserCommand::Disable { username } | UserCommand::Enable { username } => {
                    let disable = matches!(command, UserCommand::Disable { .. });
                    users::set_disabled(store.conn(), username, disable)?;
                    if cli.json {
                        print_json(
                            &serde_json::json!({ "username": username, "disabled": disable }),
                        )?;
                    } else {
                        println!(
                            "{} {username}",
                            if disable {
                                lang.pick("已停用", "disabled")
                            } else {
                                lang.pick("已启用", "enabled")
                            }
                        );
                    }
                }
            }
        }
        Command::Page { command } => {
            let (node, mut store) = Node::open(&dir)?;
            use dangan_edge::rescan;
            match command {
                PageCommand::Rescan {
                    batch,
                    page,
                    file,
                    reason,
                } => {
                    let _lock = node.lock_for_writing()?;
                    let report = rescan::rescan_page(
                        &node,
                        &mut store,
                        batch,
                        *page,
                        file,
                        &local_admin(),
                        reason,
                    )?;
                    if cli.json {
                        print_json(&report)?;
                    } else {
                        println!(
                            "{} {} {} {}: {} → {}",
                            lang.pick("批次", "batch"),
                            batch,
                            lang.pick("已重扫第", "rescanned page"),
                            page,
                            &report.old_blob[..12.min(report.old_blob.len())],
                            &report.new_blob[..12.min(report.new_blob.len())]
                        );
                        println!(
                            "  {}x{} {}dpi {} {}",
                            report.width,
                            report.height,
                            report
                                .dpi
                                .map(|d| d.to_string())
                                .unwrap_or_else(|| "?".into()),
                            report.colour,
                            if report.blank {
                                lang.pick("空白页", "blank")
                            } else {
                                ""
                            }
                        );
                    }
                }
                PageCommand::History { batch, page } => {
                    let history = rescan::page_history(store.conn(), batch, *page)?;
                    if cli.json {
                        print_json(&history)?;
                    } else if history.is_empty() {
                        println!(
                            "{}",
                            lang.pick("该页没有重扫记录", "this page has not been rescanned")
                        );
                    } else {
                        for entry in &history {
                            println!(
                                "{}  {} → {}  {}  {}",
                                entry.at,
                                &entry.old_blob[..12.min(entry.old_blob.len())],
                                &entry.new_blob[..12.min(entry.new_blob.len())],
                                entry.actor,
                                entry.reason
                            );
                        }
                    }
                }
            }
        }
        Command::Warehouse { command } => {
            let (node, mut store) = Node::open(&dir)?;
            warehouse::run(
                command,
                &node,
                store.conn_mut(),
                &local_admin(),
                cli.json,
                lang,
            )?;
        }
        Command::Index { command } => {
            let (_node, mut store) = Node::open(&dir)?;
            match command {
                IndexCommand::Import { file } => {
                    let known: Vec<String> = dangan_edge::template::list(store.conn())?
                        .into_iter()
                        .map(|t| t.template.business_type)
                        .collect();
                    let actor = local_admin();
                    let report = dangan_edge::index::import_file(
                        store.conn_mut(),
                        file,
                        &known,
                        actor.name(),
                    )?;
                    if cli.json {
                        print_json(&report)?;
                    } else {
                        print_index_report(lang, &report);
                    }
                }
            }
        }
        Command::Dictionary { kind } => {
            let (_node, store) = Node::open(&dir)?;
            let all = dangan_edge::dictionaries::in_force(store.conn())?;
            let chosen: Vec<&dangan_edge::dictionaries::Stored> =
                [&all.categories, &all.retentions, &all.defects]
                    .into_iter()
                    .filter(|d| kind.is_none_or(|k| d.dictionary.kind == k))
                    .collect();
            if cli.json {
                match kind {
                    Some(_) => print_json(chosen[0])?,
                    None => print_json(&all)?,
                }
            } else {
                for stored in chosen {
                    print_dictionary(lang, stored);
                }
                println!(
                    "{}: {} ({})",
                    lang.pick("中心字典订阅位置", "hub dictionary feed cursor"),
                    all.cursor,
                    all.synced_at
                        .as_deref()
                        .unwrap_or(lang.pick("尚未同步", "never synced"))
                );
            }
        }
        Command::Template { command } => {
            let (_node, mut store) = Node::open(&dir)?;
            use dangan_edge::template;
            match command {
                TemplateCommand::List => {
                    let templates = template::list(store.conn())?;
                    if cli.json {
                        print_json(&templates)?;
                    } else {
                        for t in &templates {
                            println!(
                                "{}  v{}  {}  {}  {}",
                                t.template.business_type,
                                t.version,
                                t.template.name,
                                match lang {
                                    Lang::Zh => t.template.category.label_zh().to_owned(),
                                    Lang::En => t.template.category.to_string(),
                                },
                                match lang {
                                    Lang::Zh => t.template.retention.label_zh(),
                                    Lang::En => t.template.retention.to_string(),
                                }
                            );
                        }
                    }
                }
                TemplateCommand::Show {
                    business_type,
                    template_version,
                } => {
                    let found = match template_version {
                        Some(v) => template::version(store.conn(), business_type, *v)?,
                        None => template::current(store.conn(), business_type)?,
                    };
                    let found = found.ok_or_else(|| {
                        anyhow::anyhow!("no template for business type {business_type:?}")
                    })?;
                    print_json(&found)?;
                }
                TemplateCommand::Import { file } => {
                    let text = std::fs::read_to_string(file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    let templates = template::parse(&text)?;
                    let source = format!("import:{}", file.display());
                    let report = template::import(store.conn_mut(), &templates, &source)?;
                    if cli.json {
                        print_json(&report)?;
                    } else {
                        println!(
                            "{}: {}; {}: {}",
                            lang.pick("新版本", "new versions"),
                            report.updated.join(", "),
                            lang.pick("未变", "unchanged"),
                            report.unchanged.join(", ")
                        );
                    }
                }
            }
        }
        Command::Batch { command } => {
            let (_node, mut store) = Node::open(&dir)?;
            match command {
                BatchCommand::List => {
                    let batches = store.batches()?;
                    if cli.json {
                        print_json(&batches)?;
                    } else {
                        print_batch_list(lang, &batches);
                    }
                }
                BatchCommand::Accept { name, reason } => {
                    let entry = store.accept_batch(name, &local_admin(), reason)?;
                    if cli.json {
                        print_json(&entry)?;
                    } else {
                        println!(
                            "{} {}: {} {}, {}",
                            lang.pick("批次已通过", "batch accepted"),
                            name,
                            entry.pages,
                            lang.pick("页", "pages"),
                            lang.pick("已加入同步队列", "queued for sync")
                        );
                    }
                }
                BatchCommand::Scanned { name } => {
                    let batch = store
                        .batch(name)?
                        .ok_or_else(|| anyhow::anyhow!("no batch named {name:?}"))?;
                    let tx = store.transaction()?;
                    dangan_edge::lifecycle::transition(
                        &tx,
                        batch.id,
                        dangan_edge::lifecycle::BatchState::Scanned,
                        &local_admin(),
                        None,
                        false,
                    )?;
                    tx.commit()?;
                    if cli.json {
                        print_json(&serde_json::json!({ "batch": name, "state": "scanned" }))?;
                    } else {
                        println!("{} {name}", lang.pick("扫描完成", "scanned"));
                    }
                }
                BatchCommand::Edits { name } => {
                    store
                        .batch(name)?
                        .ok_or_else(|| anyhow::anyhow!("no batch named {name:?}"))?;
                    let edits = dangan_edge::files::edits(store.conn(), name)?;
                    if cli.json {
                        print_json(&edits)?;
                    } else {
                        for edit in &edits {
                            println!(
                                "{}  {}  {}  {}",
                                edit.at, edit.actor, edit.action, edit.detail
                            );
                        }
                    }
                }
                BatchCommand::Events { name } => {
                    let batch = store
                        .batch(name)?
                        .ok_or_else(|| anyhow::anyhow!("no batch named {name:?}"))?;
                    let events = dangan_edge::lifecycle::events(store.conn(), batch.id)?;
                    if cli.json {
                        print_json(&events)?;
                    } else {
                        for event in &events {
                            println!(
                                "{}  {} → {}  {}{}{}",
                                event.at,
                                event.from,
                                event.to,
                                event.actor,
                                if event.is_override {
                                    lang.pick("  [越权通过]", "  [override]")
                                } else {
                                    ""
                                },
                                event
                                    .reason
                                    .as_deref()
                                    .map(|r| format!("  {r}"))
                                    .unwrap_or_default()
                            );
                        }
                    }
                }
                BatchCommand::Show { name } => {
                    let detail = store.batch_detail(name)?;
                    if cli.json {
                        print_json(&detail)?;
                    } else {
                        print_batch(lang, &detail);
                    }
                }
            }
        }
        Command::Enrol {
            hub,
            code,
            ca_cert,
            replace,
        } => {
            let (node, store) = Node::open(&dir)?;
            let enrolment = runtime()?.block_on(edge_sync::enrol(
                &node,
                &store,
                hub,
                code,
                ca_cert.as_deref(),
                *replace,
            ))?;
            if cli.json {
                print_json(&serde_json::json!({
                    "node_id": enrolment.node_id,
                    "district": enrolment.district,
                    "hub": enrolment.hub_url,
                    "hub_id": enrolment.hub_id,
                }))?;
            } else {
                println!(
                    "{} {} ({} {}, {} {})",
                    lang.pick("已登记到中心", "enrolled with hub"),
                    enrolment.hub_url,
                    lang.pick("节点", "node"),
                    enrolment.node_id,
                    lang.pick("区县", "district"),
                    enrolment.district
                );
            }
        }
        Command::Sync { now } => {
            let (node, store) = Node::open(&dir)?;
            let store = std::sync::Mutex::new(store);
            let options = edge_sync::PassOptions {
                ignore_windows: *now,
                ignore_backoff: true,
                progress: !cli.json && std::io::stderr().is_terminal(),
            };
            let report = runtime()?.block_on(edge_sync::run_pass(&node, &store, &options))?;
            if cli.json {
                print_json(&report)?;
            } else {
                print_sync(lang, &report);
            }
            if !report.failures.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Serve {
            listen,
            tls_cert,
            tls_key,
        } => {
            let (node, store) = Node::open(&dir)?;
            let (api_node, api_store) = Node::open(&dir)?;
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => Some(dangan_sync::tls::TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            };
            runtime()?.block_on(serve(node, store, api_node, api_store, *listen, tls))?;
        }
        Command::Cache { command } => {
            let (node, store) = Node::open(&dir)?;
            if matches!(command, CacheCommand::Evict) {
                let _lock = node.lock_for_writing()?;
                let report = eviction::evict(&node, &store, node.config.cache_budget)?;
                if !cli.json {
                    println!(
                        "{} {} ({:.1} MB)",
                        lang.pick("已移出缓存的图像", "images evicted"),
                        report.evicted_blobs,
                        report.freed_bytes as f64 / 1e6
                    );
                }
            }
            let status = eviction::status(&node, &store)?;
            if cli.json {
                print_json(&status)?;
            } else {
                print_cache(lang, &status);
            }
        }
        Command::Fsck { repair } => {
            let (node, store) = Node::open(&dir)?;
            let _lock = node.lock_for_writing()?;
            let report = fsck::fsck(&node, &store, *repair)?;
            if cli.json {
                print_json(&report)?;
            } else {
                print_fsck(lang, &report);
            }
            return Ok(if report.clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ingest_options(
    store: &dangan_edge::store::Store,
    target: &BatchTarget,
    progress: bool,
    remove_ingested: bool,
) -> Result<IngestOptions> {
    let batch = match &target.batch {
        Some(name) if name.trim().is_empty() => bail!("the batch name is empty"),
        Some(name) => name.clone(),
        None => default_batch_name(&store.district()?),
    };
    Ok(IngestOptions {
        batch,
        business_type: target.business_type.clone(),
        progress: progress && std::io::stderr().is_terminal(),
        remove_ingested,
        operator: local_admin().name().to_owned(),
    })
}

fn default_batch_name(district: &OrgCode) -> String {
    let now = time::OffsetDateTime::now_local().unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let format = time::macros::format_description!("[year][month][day]");
    format!("{district}-{}", now.format(&format).unwrap_or_default())
}

fn file_command(
    cli: &Cli,
    lang: Lang,
    conn: &mut rusqlite::Connection,
    command: &FileCommand,
) -> Result<()> {
    use dangan_edge::files::{self, DocumentCheck, GroupingEdit, MetadataPatch};
    let actor = local_admin();
    let (batch, edit) = match command {
        FileCommand::Show { batch, file } => {
            let meta = files::metadata(conn, batch, *file)?;
            return print_json(&meta);
        }
        FileCommand::Set {
            batch,
            file,
            business_number,
            person_id,
            person_name,
            employer_id,
            business_type,
            business_date,
            organisation,
        } => {
            let patch = MetadataPatch {
                business_number: business_number.clone(),
                person_id: person_id.clone(),
                person_name: person_name.clone(),
                employer_id: employer_id.clone(),
                business_type: business_type.clone(),
                business_date: business_date.clone(),
                organisation: organisation.clone(),
            };
            let meta = files::set_metadata(conn, batch, *file, &patch, &actor)?;
            if cli.json {
                return print_json(&meta);
            }
            println!(
                "{} {batch} #{file}",
                lang.pick("著录已保存", "metadata saved")
            );
            return Ok(());
        }
        FileCommand::Documents {
            batch,
            file,
            present,
            absent,
        } => {
            let mut checks: Vec<DocumentCheck> = present
                .iter()
                .map(|d| DocumentCheck {
                    document: d.clone(),
                    present: true,
                    note: None,
                })
                .collect();
            for entry in absent {
                let (document, note) = entry.split_once('=').ok_or_else(|| {
                    anyhow::anyhow!(
                        "--absent takes DOCUMENT=NOTE (the note says why it is missing)"
                    )
                })?;
                checks.push(DocumentCheck {
                    document: document.to_owned(),
                    present: false,
                    note: Some(note.to_owned()),
                });
            }
            let meta = files::check_documents(conn, batch, *file, &checks, &actor)?;
            if cli.json {
                return print_json(&meta);
            }
            println!(
                "{} {batch} #{file}",
                lang.pick("材料清单已记录", "documents recorded")
            );
            return Ok(());
        }
        FileCommand::Split { batch, file, at } => (
            batch,
            GroupingEdit::Split {
                file: *file,
                at_page: *at,
            },
        ),
        FileCommand::Join { batch, file, into } => (
            batch,
            GroupingEdit::Join {
                file: *file,
                into_file: *into,
            },
        ),
        FileCommand::Assign { batch, pages, to } => (
            batch,
            GroupingEdit::Assign {
                pages: pages.clone(),
                to_file: *to,
            },
        ),
        FileCommand::Reorder { batch, file, pages } => (
            batch,
            GroupingEdit::Reorder {
                file: *file,
                pages: pages.clone(),
            },
        ),
        FileCommand::Separator { batch, page, unset } => (
            batch,
            GroupingEdit::Separator {
                page: *page,
                separator: !unset,
            },
        ),
    };
    let grouping = files::regroup(conn, batch, &edit, &actor)?;
    if cli.json {
        return print_json(&grouping);
    }
    for file in &grouping.business_files {
        println!(
            "{:>4}  {:<24} {} {:?}",
            file.seq,
            file.business_number.as_deref().unwrap_or("—"),
            lang.pick("页", "pages"),
            file.pages
        );
    }
    Ok(())
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn print_ingest(cli: &Cli, report: &IngestReport) -> Result<()> {
    if cli.json {
        return print_json(report);
    }
    let lang = cli.lang;
    println!("{} {}", lang.pick("批次", "batch"), report.batch);
    let rows = [
        (lang.pick("新增页面", "pages added"), report.pages),
        (
            lang.pick("其中重复内容", "of which duplicates"),
            report.duplicates,
        ),
        (
            lang.pick("已入库跳过", "already recorded, skipped"),
            report.skipped,
        ),
        (
            lang.pick("隔离文件", "quarantined files"),
            report.quarantined,
        ),
        (
            lang.pick("业务件（批次合计）", "business files (batch total)"),
            report.business_files,
        ),
        (
            lang.pick("异常（批次合计）", "exceptions (batch total)"),
            report.exceptions,
        ),
    ];
    for (label, value) in rows {
        println!("  {label}: {value}");
    }
    if !report.ignored.is_empty() {
        println!(
            "  {}: {}",
            lang.pick("忽略的非图像文件", "ignored non-image files"),
            report.ignored.len()
        );
    }
    if report.elapsed_seconds > 0.0 && report.pages > 0 {
        println!(
            "  {:.1} s, {:.1} {}",
            report.elapsed_seconds,
            report.pages as f64 / report.elapsed_seconds,
            lang.pick("页/秒", "pages/s")
        );
    }
    if report.quarantined > 0 || report.exceptions > 0 {
        println!(
            "  {} dangan-edge batch show {}",
            lang.pick("查看详情：", "details:"),
            report.batch
        );
    }
    Ok(())
}

fn print_batch_list(lang: Lang, batches: &[BatchSummary]) {
    if batches.is_empty() {
        println!("{}", lang.pick("还没有批次", "no batches yet"));
        return;
    }
    println!(
        "{} {} {} {} {} {}",
        pad(lang.pick("批次", "batch"), 24),
        pad(lang.pick("状态", "state"), 8),
        pad_left(lang.pick("页", "pages"), 7),
        pad_left(lang.pick("业务件", "files"), 7),
        pad_left(lang.pick("隔离", "quarant."), 7),
        pad_left(lang.pick("异常", "except."), 7)
    );
    for b in batches {
        println!(
            "{} {} {:>7} {:>7} {:>7} {:>7}",
            pad(&b.batch.name, 24),
            pad(&state_label(lang, &b.batch.state), 8),
            b.pages,
            b.business_files,
            b.quarantined,
            b.exceptions
        );
    }
}

fn print_batch(lang: Lang, detail: &BatchDetail) {
    let b = &detail.batch;
    println!(
        "{} {}  [{}]  {} {}",
        lang.pick("批次", "batch"),
        b.name,
        state_label(lang, &b.state),
        lang.pick("区县", "district"),
        b.district
    );
    println!(
        "  {} {}, {} {}, {} {}, {} {}",
        detail.counts.pages,
        lang.pick("页", "pages"),
        detail.counts.business_files,
        lang.pick("个业务件", "business files"),
        detail.counts.quarantined,
        lang.pick("个隔离文件", "quarantined"),
        detail.counts.exceptions,
        lang.pick("个异常", "exceptions")
    );
    for file in &detail.business_files {
        let number = file
            .business_number
            .as_deref()
            .unwrap_or(lang.pick("（无业务流水号）", "(no business number)"));
        println!(
            "\n  {} {}: {}",
            lang.pick("业务件", "business file"),
            file.seq,
            number
        );
        for page in &file.pages {
            let mut flags = Vec::new();
            if page.separator {
                flags.push(lang.pick("分隔页", "separator"));
            }
            if page.blank {
                flags.push(lang.pick("空白页", "blank"));
            }
            if page.duplicate {
                flags.push(lang.pick("重复内容", "duplicate"));
            }
            let codes: Vec<String> = page
                .barcodes
                .iter()
                .map(|c| format!("{}:{}", c.format, c.text))
                .collect();
            println!(
                "    #{:<5} {}[{}] {}x{} {}dpi {} {} {}",
                page.seq,
                page.source,
                page.frame,
                page.width,
                page.height,
                page.dpi
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "?".into()),
                &page.blob[..12],
                codes.join(" "),
                flags.join(" ")
            );
        }
    }
    if !detail.quarantined.is_empty() {
        println!("\n  {}", lang.pick("隔离文件：", "quarantined files:"));
        for q in &detail.quarantined {
            println!(
                "    {}: {} — {}",
                q.source,
                code_label(lang, &q.code),
                q.reason
            );
        }
    }
    if !detail.exceptions.is_empty() {
        println!("\n  {}", lang.pick("异常：", "exceptions:"));
        for e in &detail.exceptions {
            let page = e.page.map(|p| format!("#{p} ")).unwrap_or_default();
            println!("    {page}{}: {}", code_label(lang, &e.code), e.reason);
        }
    }
}

fn print_fsck(lang: Lang, report: &FsckReport) {
    println!(
        "{} {} {} ({:.1} MB)",
        lang.pick("已检查", "checked"),
        report.blobs_checked,
        lang.pick("个图像对象", "blobs"),
        report.bytes_checked as f64 / 1e6
    );
    if report.findings.is_empty() {
        println!(
            "{}",
            lang.pick(
                "缓存与数据库一致，未发现问题。",
                "cache and database agree; nothing found."
            )
        );
        return;
    }
    for f in &report.findings {
        let fixed = if f.repaired {
            lang.pick(" [已修复]", " [repaired]")
        } else {
            ""
        };
        println!("  {} {}: {}{}", f.kind, f.subject, f.detail, fixed);
    }
    if !report.consistent {
        println!(
            "{}",
            lang.pick(
                "发现损坏：有页面的图像缺失或不符。",
                "damage found: some pages' images are missing or wrong."
            )
        );
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The background loop of `serve`: a sync pass every interval (inside the
/// windows), until Ctrl-C or SIGTERM.
async fn serve(
    node: Node,
    store: dangan_edge::store::Store,
    api_node: Node,
    api_store: dangan_edge::store::Store,
    listen: std::net::SocketAddr,
    tls: Option<dangan_sync::tls::TlsFiles>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // A bad certificate or key fails here, before anything is served.
    if let Some(files) = &tls {
        dangan_sync::tls::server_config(files)?;
    }
    let state = dangan_edge::api::ApiState::new(api_node, api_store, tls.is_some());
    let app = dangan_edge::web::app(state);
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        dangan_sync::tls::serve(listener, app, tls.as_ref(), async {
            let _ = api_stopped.await;
        })
        .await
    });
    tracing::info!(url = %format!("{scheme}://{local}/"), "web UI and API listening");
    let store = std::sync::Mutex::new(store);
    let options = edge_sync::PassOptions {
        ignore_windows: false,
        ignore_backoff: false,
        progress: false,
    };
    let shutdown = dangan_sync::server::shutdown_signal();
    tokio::pin!(shutdown);
    tracing::info!(data = %node.data_dir.display(), "edge services running");
    loop {
        tokio::select! {
            result = edge_sync::run_pass(&node, &store, &options) => match result {
                Ok(report) if report.outside_window => {
                    tracing::debug!(queued = report.batches_queued, "outside the sync windows");
                }
                Ok(report) => tracing::info!(
                    committed = report.batches_committed,
                    blobs = report.blobs_sent,
                    bytes = report.bytes_sent,
                    failed = report.failures.len(),
                    queued = report.batches_queued,
                    "sync pass done"
                ),
                Err(err) => tracing::warn!(error = %err, "sync pass failed"),
            },
            () = &mut shutdown => break,
        }
        tokio::select! {
            () = tokio::time::sleep(node.config.sync.interval) => {}
            () = &mut shutdown => break,
        }
    }
    tracing::info!("stopping");
    let _ = stop_api.send(());
    server.await.context("the API server task failed")??;
    Ok(())
}

fn print_dictionary(lang: Lang, stored: &dangan_edge::dictionaries::Stored) {
    let kind = stored.dictionary.kind;
    let source = match stored.source {
        "hub" => lang.pick("中心下发", "from the hub"),
        _ => lang.pick("内置", "shipped"),
    };
    println!(
        "{} ({kind}) {} {} · {source}",
        lang.pick(kind.label_zh(), kind.as_str()),
        lang.pick("版本", "version"),
        stored.version,
    );
    for entry in &stored.dictionary.entries {
        let state = if entry.active {
            ""
        } else {
            lang.pick("（已停用）", " (retired)")
        };
        println!(
            "  {} {} {}{state}",
            pad(&entry.code, 16),
            pad(&entry.zh, 14),
            entry.en
        );
    }
}

fn print_sync(lang: Lang, report: &SyncReport) {
    if !report.dictionary_updates.is_empty() {
        println!(
            "{}: {}",
            lang.pick(
                "已应用中心下发的字典/模板",
                "dictionary updates from the hub applied"
            ),
            report.dictionary_updates.join(", ")
        );
    }
    if let Some(error) = &report.dictionary_error {
        println!(
            "{}: {error}",
            lang.pick(
                "未能更新字典（继续使用本地副本）",
                "dictionaries not updated (the local copy stays in force)"
            )
        );
    }
    if report.outside_window {
        println!(
            "{} ({} {})",
            lang.pick(
                "当前不在同步时段内，未同步（可用 --now 立即同步）",
                "outside the sync windows; nothing sent (use --now to sync anyway)"
            ),
            report.batches_queued,
            lang.pick("个批次排队中", "batches queued")
        );
        return;
    }
    println!(
        "{}: {}, {}: {}, {}: {:.1} MB, {}: {}",
        lang.pick("已归档批次", "batches archived"),
        report.batches_committed,
        lang.pick("发送图像", "images sent"),
        report.blobs_sent,
        lang.pick("发送数据", "data sent"),
        report.bytes_sent as f64 / 1e6,
        lang.pick("仍在排队", "still queued"),
        report.batches_queued
    );
    for failure in &report.failures {
        println!(
            "  {} {}: {}: {} ({} {})",
            lang.pick("批次", "batch"),
            failure.batch,
            dangan_edge::sync::failure_label(lang, &failure.code),
            failure.error,
            lang.pick("下次重试", "next attempt"),
            failure.next_attempt_at
        );
    }
    if report.evicted_blobs > 0 {
        println!(
            "  {} {} ({:.1} MB)",
            lang.pick("已移出缓存的图像", "images evicted from the cache"),
            report.evicted_blobs,
            report.evicted_bytes as f64 / 1e6
        );
    }
}

fn print_cache(lang: Lang, status: &CacheStatus) {
    let mb = |b: u64| b as f64 / 1e6;
    let budget = if status.budget_bytes == 0 {
        lang.pick("不限", "none").to_owned()
    } else {
        format!("{:.1} MB", mb(status.budget_bytes))
    };
    println!(
        "{}: {} {}, {:.1} MB ({}: {})",
        lang.pick("缓存", "cache"),
        status.blobs,
        lang.pick("个图像", "images"),
        mb(status.bytes),
        lang.pick("预算", "budget"),
        budget
    );
    println!(
        "  {}: {:.1} MB",
        lang.pick("可移出（已归档）", "evictable (archived)"),
        mb(status.evictable_bytes)
    );
    println!(
        "  {}: {} ({:.1} MB)",
        lang.pick("已移出（仅中心保存）", "evicted (held by the hub only)"),
        status.evicted_blobs,
        mb(status.evicted_bytes)
    );
    if status.over_budget {
        println!(
            "  {}",
            lang.pick(
                "超出预算：未归档批次的图像不会被移出",
                "over budget: images of batches not yet archived are never evicted"
            )
        );
    }
}

/// The actor of commands run on the data folder itself: the machine's
/// local administrator, named by the operating-system user.
fn local_admin() -> dangan_edge::lifecycle::Actor {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    dangan_edge::lifecycle::Actor::user(
        format!("local:{user}"),
        dangan_edge::lifecycle::Role::Admin,
    )
}

fn print_index_report(lang: Lang, report: &dangan_edge::index::ImportReport) {
    println!(
        "{} {}: {} {}, {} {}, {} {}, {} {}, {} {}",
        report.rows,
        lang.pick("行", "rows"),
        report.matched,
        lang.pick("已匹配", "matched"),
        report.unmatched,
        lang.pick(
            "未匹配（已保存，扫描后自动著录）",
            "unmatched (kept for later scans)"
        ),
        report.closed,
        lang.pick("批次已通过未改", "in accepted batches, not changed"),
        report.conflicts.len(),
        lang.pick("冲突", "conflicts"),
        report.rejected.len(),
        lang.pick("拒绝", "rejected")
    );
    for rejected in &report.rejected {
        println!(
            "  {} {}: {}",
            lang.pick("第", "row"),
            rejected.row,
            rejected.reason
        );
    }
    for duplicate in &report.duplicates {
        println!(
            "  {} {}: {} {:?}",
            lang.pick("重复的业务流水号", "duplicate business number"),
            duplicate.business_number,
            lang.pick("行", "rows"),
            duplicate.rows
        );
    }
    for conflict in &report.conflicts {
        println!(
            "  {} {} {} {}: {} {:?}, {} {:?}",
            lang.pick("第", "row"),
            conflict.row,
            conflict.business_number,
            conflict.field,
            lang.pick("保留", "kept"),
            conflict.existing,
            lang.pick("导入值", "imported"),
            conflict.imported
        );
    }
}

/// One line of standard input, without its line ending: a password.
fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Clap checks the definition (duplicate names, bad defaults) only when
    /// a command is parsed; this parses none, so check every one here.
    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
