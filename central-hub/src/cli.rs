//! The `dangan-hub` command line: argument parsing and output. Text for
//! people in their language (Chinese by default), or one JSON document on
//! standard output with `--json`.
//!
//! The commands work on the data folder directly, as the local
//! administrator; they need no login and may run while `serve` does.
use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use dangan_shared::OrgCode;
use dangan_shared::text::{pad, pad_left};

mod dictionaries;

use crate::audit::{self, ActorKind, NewEntry, Outcome, ProblemKind, VerifyReport};
use crate::backend::HubBackend;
use crate::close;
use crate::http::{self, TlsFiles};
use crate::hub::{self, HubFolder};
use crate::nodes::{self, NodeInfo};
use crate::orgs::{self, Org, OrgNode};
use crate::reconcile::{self, Reconciliation};
use crate::text::{Lang, edge_state_label, reconcile_state_label};
use crate::users::{self, User};

/// Dangan central hub: the city archive that district edge nodes sync
/// their accepted batches to.
///
/// The hub keeps every page image once (content-addressed, verified,
/// durable), indexes every batch, business file and page, signs a receipt
/// for each archived batch, and shows per district what is queued, in
/// flight, archived or divergent.
#[derive(Debug, Parser)]
#[command(
    name = "dangan-hub",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    /// The data folder (hub.db, hub.key, hub.toml, blobs/, partial/).
    /// Accepted before or after the subcommand.
    #[arg(long, global = true, env = "DANGAN_HUB_DATA", value_name = "DIR")]
    data: Option<PathBuf>,

    /// Print one machine-readable JSON document on standard output instead
    /// of text. The fields are documented in central-hub/README.md.
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

    /// More log output on standard error (-v info, -vv debug: one line per
    /// request). RUST_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new hub data folder for a city: the index database
    /// (hub.db), the receipt-signing key (hub.key), a commented hub.toml
    /// and the blob folders. The city becomes the root of the organisation
    /// tree, and the first system administrator, user `admin`, is created
    /// in it without a password (set one with `user passwd admin`). Prints
    /// an admin token, a credential of `admin` for the API, once; only its
    /// hash is kept. Refuses a folder that already holds a hub.
    Init {
        /// The city the hub archives for: its 6-digit administrative
        /// division code ending in 00, e.g. 330100.
        #[arg(long, value_name = "CODE")]
        city: OrgCode,
        /// The city's name, e.g. 杭州市 (default: its code; change it later
        /// with `org set CODE --name NAME`).
        #[arg(long, value_name = "NAME")]
        city_name: Option<String>,
    },
    /// Run the hub: the /sync/v1 endpoints for edge nodes, the JSON API
    /// under /api/v1 (sessions, organisations, users, business files, the
    /// audit trail, reconciliation; OpenAPI document at
    /// /api/v1/openapi.json) and GET /healthz. Stops gracefully on Ctrl-C or
    /// SIGTERM. Prints the address it listens on once ready.
    Serve {
        /// Address and port to listen on, e.g. 0.0.0.0:8700 (port 0 picks a
        /// free port). Default: server.listen in hub.toml.
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// PEM certificate chain for HTTPS (with --tls-key). Default:
        /// server.tls_cert in hub.toml; neither means plain HTTP.
        #[arg(long, value_name = "PEM", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for HTTPS (with --tls-cert).
        #[arg(long, value_name = "PEM", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Manage district edge nodes and their credentials.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Organisations (机构管理): the city → district/county → street office
    /// tree that nodes, batches and users belong to. Districts enrolled
    /// with `node enrol` appear in it by themselves (named by their code
    /// until named here).
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// People who use the hub (复核员, 稽核员, 档案管理员, ...): each has a
    /// role and an organisation, and sees that organisation's subtree plus
    /// the organisations of their unexpired grants. Passwords are read from
    /// standard input (one line), never from the command line.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// API tokens for systems (the business system, scripts): each acts as
    /// a user with a role and an organisation. Shown once, kept as hashes.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Show, per district, the nodes' last contact and every batch's state
    /// (queued, in_flight, archived, divergent) with advice for those that
    /// need attention.
    Reconcile {
        /// Only this district (6-digit code).
        #[arg(long, value_name = "CODE")]
        district: Option<OrgCode>,
    },
    /// The monthly close (月结归档): archive every approved live-uploaded
    /// business file of MONTH (YYYY-MM, in `[live] time_zone`) into the
    /// archive proper, exactly once (one batch LIVE-YYYY-MM per district).
    /// Refuses, listing them, while any of the month's live files is not
    /// approved, unless --force gives a reason (recorded). Prints the close
    /// report: counts by organisation and business type, and what was left
    /// out and why. Running it again archives only what was approved since.
    CloseMonth {
        #[arg(value_name = "YYYY-MM")]
        month: String,
        /// Only this district's live files.
        #[arg(long, value_name = "CODE")]
        district: Option<OrgCode>,
        /// Close despite unapproved files, for this reason (recorded in the
        /// report and the audit trail).
        #[arg(long, value_name = "REASON")]
        force: Option<String>,
        /// Also write the report as CSV to this file.
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
    },
    /// Issue an additional admin token (printed once) for the first system
    /// administrator, user `admin`, e.g. when the one printed by init was
    /// lost. It acts as `admin` in the API and is audited as them.
    AdminToken,
    /// The common dictionaries (辅助管理): archive categories, retention
    /// periods and QC defect types, versioned here and applied by every
    /// edge when it syncs.
    Dictionary {
        #[command(subcommand)]
        command: dictionaries::DictionaryCommand,
    },
    /// Business-type templates (业务类型模板), versioned here and applied
    /// by every edge when it syncs.
    Template {
        #[command(subcommand)]
        command: dictionaries::TemplateCommand,
    },
    /// The tamper-evident audit trail (审计日志): verify it, checkpoint its
    /// head, list or export entries.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Recompute every entry's hash and link and check every signed
    /// checkpoint in DATA/audit/checkpoints.jsonl against the chain. Exits
    /// with status 1 when an entry was edited, inserted or deleted.
    Verify,
    /// Sign the chain head with the hub key and append it to
    /// DATA/audit/checkpoints.jsonl now (nothing is written when the head
    /// has not moved since the last checkpoint).
    Checkpoint,
    /// List entries, oldest first, or export them as CSV for auditors.
    List {
        /// Only entries by this actor.
        #[arg(long)]
        actor: Option<String>,
        /// Only this action, or a prefix ending in .* (e.g. node.*).
        #[arg(long)]
        action: Option<String>,
        /// Only entries on this target (district, node, batch, ...).
        #[arg(long)]
        target: Option<String>,
        /// Only entries at or after this UTC time, e.g. 2026-11-25 or
        /// 2026-11-25T08:00:00Z.
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// Only entries before this UTC time (exclusive).
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// At most N entries.
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// Skip the first N matching entries.
        #[arg(long, value_name = "N", default_value_t = 0)]
        offset: u32,
        /// Print CSV (RFC 4180, with a header row) instead of a table
        /// (takes precedence over --json).
        #[arg(long)]
        csv: bool,
    },
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// Print a one-time enrolment code for a district's edge node; the edge
    /// exchanges it for its own credential with `dangan-edge enrol --hub URL
    /// --code CODE`. Creates the district if the hub does not know it yet.
    Enrol {
        /// The district (区县): its 6-digit administrative division code,
        /// e.g. 330106.
        #[arg(long, value_name = "CODE")]
        district: OrgCode,
        /// Hours the code stays valid if unused.
        #[arg(long, value_name = "N", default_value_t = 72,
              value_parser = clap::value_parser!(u64).range(1..=8760))]
        valid_hours: u64,
    },
    /// List enrolled nodes: id, district, enrolment time, last contact and
    /// whether the credential is revoked.
    List,
    /// Revoke a node's credential: its next request is refused (401). The
    /// district's archive is kept; enrol a new node to continue syncing.
    Revoke {
        /// The node id, as `node list` shows it (e.g. 330106-1).
        #[arg(value_name = "NODE")]
        node: String,
    },
}

#[derive(Debug, Subcommand)]
enum OrgCommand {
    /// Show the organisation tree (or, with --json, the tree as JSON).
    List,
    /// Add an organisation. Its level comes from its code: 6 digits ending
    /// in 00 a city, other 6 digits a district or county, 9 digits a street
    /// office.
    Add {
        /// The administrative division code, e.g. 330100, 330106, 330106001.
        #[arg(value_name = "CODE")]
        code: String,
        /// The name people see, e.g. 西湖区.
        #[arg(long)]
        name: String,
        /// The organisation one level up (a district's city, a street
        /// office's district; required for a street office).
        #[arg(long, value_name = "CODE")]
        parent: Option<String>,
    },
    /// Change an organisation's name, parent or status.
    Set {
        #[arg(value_name = "CODE")]
        code: String,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        /// A new parent ("" detaches a district from its city).
        #[arg(long, value_name = "CODE")]
        parent: Option<String>,
        /// active or disabled (a disabled organisation keeps everything
        /// that belongs to it).
        #[arg(long)]
        status: Option<String>,
    },
    /// Remove an organisation nothing belongs to (no child, node or
    /// archived batch); otherwise disable it with `org set --status disabled`.
    Remove {
        #[arg(value_name = "CODE")]
        code: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a token (printed once): `Authorization: Bearer dgt_...`.
    Create {
        /// A name for the system, e.g. sib-business-system.
        #[arg(value_name = "NAME")]
        name: String,
        /// The role it acts with (as for users).
        #[arg(long)]
        role: String,
        /// The organisation whose subtree it may see.
        #[arg(long, value_name = "CODE")]
        org: String,
        /// Days until it expires (default: until revoked).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=3650))]
        days: Option<u64>,
    },
    /// List tokens (never the tokens themselves).
    List,
    /// Revoke a token by name: its next request is refused (401).
    Revoke {
        #[arg(value_name = "NAME")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        /// Login name: letters, digits, '.', '-', '_'.
        #[arg(value_name = "NAME")]
        username: String,
        /// system_admin, archive_admin, reviewer, auditor, clerk or
        /// read_only.
        #[arg(long)]
        role: String,
        /// The user's organisation (see `org list`).
        #[arg(long, value_name = "CODE")]
        org: String,
        /// The name people see (default: the login name).
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List users with role, organisation and lock state.
    List,
    /// Disable a user: their sessions end and they cannot log in.
    Disable {
        #[arg(value_name = "NAME")]
        username: String,
    },
    /// Enable a user again (also lifts a lockout after failed logins).
    Enable {
        #[arg(value_name = "NAME")]
        username: String,
    },
    /// Set a user's password, read from standard input (e.g. the first
    /// password of `admin`, made by init without one). Lifts a lockout and
    /// ends the user's sessions.
    Passwd {
        #[arg(value_name = "NAME")]
        username: String,
    },
    /// Let a user see another organisation's subtree until a date (e.g. an
    /// auditor granted a district for an audit).
    Grant {
        #[arg(value_name = "NAME")]
        username: String,
        /// The organisation granted.
        #[arg(long, value_name = "CODE")]
        org: String,
        /// Last day of the grant (YYYY-MM-DD, UTC); it ends at midnight after it.
        #[arg(long, value_name = "DATE")]
        until: String,
        /// Why (recorded with the grant).
        #[arg(long)]
        reason: String,
    },
    /// List grants (of one user, or all), newest first.
    Grants {
        #[arg(value_name = "NAME")]
        username: Option<String>,
    },
    /// End a grant now.
    RevokeGrant {
        /// The grant's id, as `user grants` shows it.
        #[arg(value_name = "ID")]
        id: i64,
    },
}

/// Runs `dangan-hub` with the process's arguments.
pub fn run() -> ExitCode {
    run_with(std::env::args_os())
}

/// Runs `dangan-hub` with `args` (the first is the program name).
pub fn run_with<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let serving = matches!(cli.command, Command::Serve { .. });
    init_tracing(cli.verbose, serving);
    let (lang, json) = (cli.lang, cli.json);
    match execute(cli) {
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

fn init_tracing(verbose: u8, serving: bool) {
    let default = match (verbose, serving) {
        (0, false) => "warn",
        (0, true) | (1, _) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn data_dir(cli: &Cli) -> Result<PathBuf> {
    match &cli.data {
        Some(dir) => Ok(dir.clone()),
        None => bail!(
            "{}",
            cli.lang.pick(
                "未指定数据目录：请使用 --data DIR 或设置 DANGAN_HUB_DATA",
                "no data folder: give --data DIR or set DANGAN_HUB_DATA"
            )
        ),
    }
}

fn execute(cli: Cli) -> Result<ExitCode> {
    let dir = data_dir(&cli)?;
    let lang = cli.lang;
    match &cli.command {
        Command::Init { city, city_name } => {
            let city = hub::City {
                code: city.clone(),
                name: city_name.clone(),
            };
            let made = hub::init(&dir, &city)
                .with_context(|| format!("cannot initialise {}", dir.display()))?;
            if cli.json {
                print_json(&made)?;
            } else {
                println!(
                    "{} {}",
                    lang.pick("已创建中心数据目录", "created hub data folder"),
                    dir.display()
                );
                println!("  {}: {}", lang.pick("中心标识", "hub id"), made.hub_id);
                println!(
                    "  {}: {}",
                    lang.pick("回执公钥", "receipt key"),
                    made.hub_key
                );
                println!(
                    "  {}: {}",
                    lang.pick("机构树根（市）", "root organisation (city)"),
                    made.city
                );
                println!(
                    "  {}: {}",
                    lang.pick("系统管理员账号", "system administrator account"),
                    made.admin_user
                );
                println!(
                    "  {}: {}",
                    lang.pick("管理令牌", "admin token"),
                    made.admin_token
                );
                println!(
                    "{}",
                    lang.pick(
                        "管理令牌是系统管理员 admin 的凭据（Authorization: Bearer，用于 /api/v1），只显示这一次，请妥善保存；用它所做的一切都以 admin 的名义记入审计日志。",
                        "The admin token is a credential of the system administrator admin (Authorization: Bearer, for /api/v1), shown only this once; keep it safe. Everything done with it is audited as admin."
                    )
                );
                println!(
                    "{}\n  dangan-hub user passwd {}",
                    lang.pick(
                        "admin 还没有密码，设置后才能登录：",
                        "admin has no password yet; set one to log in:"
                    ),
                    made.admin_user
                );
            }
        }
        Command::Serve {
            listen,
            tls_cert,
            tls_key,
        } => serve(&cli, &dir, *listen, tls_cert.clone(), tls_key.clone())?,
        Command::Node { command } => {
            let folder = HubFolder::open(&dir)?;
            let mut conn = folder.db.get()?;
            match command {
                NodeCommand::Enrol {
                    district,
                    valid_hours,
                } => {
                    if district.level() == dangan_shared::OrgLevel::StreetOffice {
                        bail!(
                            "{district} {}",
                            lang.pick(
                                "是街道代码；边缘节点按区县登记（6 位代码）",
                                "is a street office; edge nodes are enrolled per district (6 digits)"
                            )
                        );
                    }
                    let made = |conn: &mut rusqlite::Connection| {
                        nodes::create_enrolment_code(
                            conn,
                            district,
                            Duration::from_secs(valid_hours * 3600),
                        )
                    };
                    let code = audited(
                        &mut conn,
                        "node.enrol",
                        district.as_str(),
                        made,
                        |code| serde_json::json!({ "valid_hours": valid_hours, "expires_at": code.expires_at }),
                    )?;
                    if cli.json {
                        print_json(&code)?;
                    } else {
                        println!(
                            "{} {} {}:",
                            lang.pick("区县", "district"),
                            code.district,
                            lang.pick("的一次性登记码", "one-time enrolment code")
                        );
                        println!("  {}", code.code);
                        println!(
                            "{} {}",
                            lang.pick("有效期至（UTC）", "valid until (UTC)"),
                            code.expires_at
                        );
                        println!(
                            "{}\n  dangan-edge enrol --hub https://HUB:PORT --code {}",
                            lang.pick("在边缘节点上运行：", "run on the edge node:"),
                            code.code
                        );
                    }
                }
                NodeCommand::List => {
                    let list = nodes::list_nodes(&conn)?;
                    if cli.json {
                        print_json(&list)?;
                    } else {
                        print_nodes(lang, &list);
                    }
                }
                NodeCommand::Revoke { node } => {
                    let revoked = |conn: &mut rusqlite::Connection| nodes::revoke(conn, node);
                    let revoked = audited(
                        &mut conn,
                        "node.revoke",
                        node,
                        revoked,
                        |n| serde_json::json!({ "district": n.district }),
                    )?;
                    if cli.json {
                        print_json(&revoked)?;
                    } else {
                        println!(
                            "{} {} ({} {})",
                            lang.pick("已吊销节点", "revoked node"),
                            revoked.id,
                            lang.pick("区县", "district"),
                            revoked.district
                        );
                    }
                }
            }
        }
        Command::Dictionary { command } => dictionaries::dictionary(&cli, &dir, command)?,
        Command::Template { command } => dictionaries::template(&cli, &dir, command)?,
        Command::Org { command } => {
            let folder = HubFolder::open(&dir)?;
            let mut conn = folder.db.get()?;
            match command {
                OrgCommand::List => {
                    let tree = orgs::tree(&conn)?;
                    if cli.json {
                        print_json(&tree)?;
                    } else {
                        print_org_tree(lang, &tree, 0);
                        if tree.is_empty() {
                            println!("{}", lang.pick("（还没有机构）", "(no organisations yet)"));
                        }
                    }
                }
                OrgCommand::Add { code, name, parent } => {
                    let added = |conn: &mut rusqlite::Connection| {
                        orgs::add(conn, code, name, parent.as_deref())
                    };
                    let org = audited(
                        &mut conn,
                        "org.add",
                        code,
                        added,
                        |o| serde_json::json!({ "name": o.name, "parent": o.parent }),
                    )?;
                    print_org_change(cli.json, lang, lang.pick("已添加机构", "added"), &org)?;
                }
                OrgCommand::Set {
                    code,
                    name,
                    parent,
                    status,
                } => {
                    let patch = orgs::OrgPatch {
                        name: name.clone(),
                        parent: parent.clone(),
                        status: status.clone(),
                    };
                    let updated =
                        |conn: &mut rusqlite::Connection| orgs::update(conn, code, &patch);
                    let org = audited(
                        &mut conn,
                        "org.update",
                        code,
                        updated,
                        |o| serde_json::json!({ "name": o.name, "parent": o.parent, "status": o.status }),
                    )?;
                    print_org_change(cli.json, lang, lang.pick("已修改机构", "changed"), &org)?;
                }
                OrgCommand::Remove { code } => {
                    let removed = |conn: &mut rusqlite::Connection| orgs::remove(conn, code);
                    audited(&mut conn, "org.remove", code, removed, |_| {
                        serde_json::json!({})
                    })?;
                    if cli.json {
                        print_json(&serde_json::json!({ "removed": code }))?;
                    } else {
                        println!("{} {code}", lang.pick("已删除机构", "removed"));
                    }
                }
            }
        }
        Command::CloseMonth {
            month,
            district,
            force,
            csv,
        } => {
            let folder = HubFolder::open(&dir)?;
            let mut conn = folder.db.get()?;
            let request = close::CloseRequest {
                month: month.clone(),
                district: district.as_ref().map(|d| d.as_str().to_owned()),
                force: force.clone(),
                actor: "cli".to_owned(),
            };
            let hooks = folder.config.webhooks.is_some();
            let zone = folder.config.live.time_zone.clone();
            let closed = audited(
                &mut conn,
                "live.close",
                month,
                |conn| close::close(conn, &folder.key, &folder.hub_id, &zone, &request, hooks),
                |report| {
                    serde_json::json!({
                        "batches": report.batches,
                        "archived_files": report.archived_files,
                        "excluded": report.excluded.len(),
                        "forced": report.forced,
                    })
                },
            );
            let report = match closed {
                Ok(report) => report,
                Err(err) => {
                    if let Some(close::CloseError::Unapproved { unapproved, .. }) =
                        err.downcast_ref::<close::CloseError>()
                    {
                        if cli.json {
                            print_json(&serde_json::json!({
                                "error": err.to_string(),
                                "unapproved": unapproved,
                            }))?;
                        } else {
                            eprintln!(
                                "{}",
                                lang.pick(
                                    "月结被拒绝：以下业务件尚未通过复核",
                                    "Close refused: these business files are not approved yet"
                                )
                            );
                            for file in unapproved {
                                eprintln!(
                                    "  {}  {}  {}",
                                    file.business_number, file.organisation, file.reason
                                );
                            }
                        }
                        return Ok(ExitCode::from(1));
                    }
                    return Err(err);
                }
            };
            if let Some(path) = csv {
                std::fs::write(path, close::report_csv(&report))
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            if cli.json {
                print_json(&report)?;
            } else {
                println!(
                    "{} {}: {} {} / {} {}",
                    lang.pick("月结", "Closed"),
                    report.month,
                    report.archived_files,
                    lang.pick("件归档", "files archived"),
                    report.archived_pages,
                    lang.pick("页", "pages"),
                );
                for batch in &report.batches {
                    println!("  {} {batch}", lang.pick("批次", "batch"));
                }
                for count in &report.by_organisation {
                    println!(
                        "  {} {}: {} / {}",
                        count.key,
                        count.name.as_deref().unwrap_or(""),
                        count.files,
                        count.pages
                    );
                }
                for file in &report.excluded {
                    println!(
                        "  {} {}: {}",
                        lang.pick("未归档", "left out"),
                        file.business_number,
                        file.reason
                    );
                }
            }
        }
        Command::Reconcile { district } => {
            let folder = HubFolder::open(&dir)?;
            let conn = folder.db.get()?;
            let report = reconcile::reconcile(
                &conn,
                folder.config.stale_after,
                district.as_ref().map(OrgCode::as_str),
            )?;
            if cli.json {
                print_json(&report)?;
            } else {
                print_reconciliation(lang, &report);
            }
        }
        Command::User { command } => {
            let folder = HubFolder::open(&dir)?;
            let mut conn = folder.db.get()?;
            match command {
                UserCommand::Add {
                    username,
                    role,
                    org,
                    display_name,
                } => {
                    let role: users::Role = role.parse()?;
                    let password = read_password()?;
                    let added = |conn: &mut rusqlite::Connection| {
                        users::add(
                            conn,
                            username,
                            display_name.as_deref(),
                            role,
                            org,
                            &password,
                            folder.config.password_cost,
                        )
                    };
                    let user = audited(
                        &mut conn,
                        "user.add",
                        username,
                        added,
                        |u| serde_json::json!({ "role": u.role, "org": u.org }),
                    )?;
                    print_user_change(
                        cli.json,
                        lang,
                        lang.pick("已添加用户", "added user"),
                        &user,
                    )?;
                }
                UserCommand::List => {
                    let list = users::list(&conn)?;
                    if cli.json {
                        print_json(&list)?;
                    } else {
                        for user in &list {
                            print_user_change(false, lang, "", user)?;
                        }
                    }
                }
                UserCommand::Disable { username } | UserCommand::Enable { username } => {
                    let disable = matches!(command, UserCommand::Disable { .. });
                    let changed = |conn: &mut rusqlite::Connection| {
                        users::set_disabled(conn, username, disable)
                    };
                    let action = if disable {
                        "user.disable"
                    } else {
                        "user.enable"
                    };
                    let user = audited(&mut conn, action, username, changed, |_| {
                        serde_json::json!({})
                    })?;
                    let what = if disable {
                        lang.pick("已停用用户", "disabled user")
                    } else {
                        lang.pick("已启用用户", "enabled user")
                    };
                    print_user_change(cli.json, lang, what, &user)?;
                }
                UserCommand::Passwd { username } => {
                    let password = read_password()?;
                    let changed = |conn: &mut rusqlite::Connection| {
                        users::set_password(conn, username, &password, folder.config.password_cost)
                    };
                    let user = audited(&mut conn, "user.passwd", username, changed, |_| {
                        serde_json::json!({})
                    })?;
                    print_user_change(
                        cli.json,
                        lang,
                        lang.pick("已设置密码", "password set for"),
                        &user,
                    )?;
                }
                UserCommand::Grant {
                    username,
                    org,
                    until,
                    reason,
                } => {
                    let granted = |conn: &mut rusqlite::Connection| {
                        users::grant(conn, username, org, until, reason, "cli")
                    };
                    let grant = audited(
                        &mut conn,
                        "grant.add",
                        username,
                        granted,
                        |g| serde_json::json!({ "id": g.id, "org": g.org, "until": g.expires_at, "reason": g.reason }),
                    )?;
                    if cli.json {
                        print_json(&grant)?;
                    } else {
                        println!(
                            "{} {} → {} {} {} ({})",
                            lang.pick("已授权", "granted"),
                            grant.username,
                            grant.org,
                            lang.pick("至", "until"),
                            grant.expires_at,
                            grant.id
                        );
                    }
                }
                UserCommand::Grants { username } => {
                    let list = users::grants(&conn, username.as_deref())?;
                    if cli.json {
                        print_json(&list)?;
                    } else {
                        for g in &list {
                            println!(
                                "{:>4} {} → {} {} {}{} ({})",
                                g.id,
                                g.username,
                                g.org,
                                lang.pick("至", "until"),
                                g.expires_at,
                                if g.revoked_at.is_some() {
                                    lang.pick("（已撤销）", " (revoked)")
                                } else {
                                    ""
                                },
                                g.reason
                            );
                        }
                    }
                }
                UserCommand::RevokeGrant { id } => {
                    let revoked = |conn: &mut rusqlite::Connection| users::revoke_grant(conn, *id);
                    let revoked = audited(
                        &mut conn,
                        "grant.revoke",
                        &id.to_string(),
                        revoked,
                        |r| serde_json::json!({ "revoked": r }),
                    )?;
                    if !revoked {
                        bail!(
                            "{} {id}",
                            lang.pick("没有有效的授权", "no live grant with id")
                        );
                    }
                    if cli.json {
                        print_json(&serde_json::json!({ "revoked": id }))?;
                    } else {
                        println!("{} {id}", lang.pick("已撤销授权", "revoked grant"));
                    }
                }
            }
        }
        Command::Audit { command } => return audit_command(&cli, &dir, command),
        Command::Token { command } => {
            let folder = HubFolder::open(&dir)?;
            let mut conn = folder.db.get()?;
            match command {
                TokenCommand::Create {
                    name,
                    role,
                    org,
                    days,
                } => {
                    let role: users::Role = role.parse()?;
                    let valid = days.map(|d| Duration::from_secs(d * 86_400));
                    let made = |conn: &mut rusqlite::Connection| {
                        users::create_token(conn, name, role, org, valid, "cli")
                    };
                    let (token, listed) = audited(
                        &mut conn,
                        "token.create",
                        name,
                        made,
                        |(_, t)| serde_json::json!({ "role": t.role, "org": t.org, "expires_at": t.expires_at }),
                    )?;
                    if cli.json {
                        print_json(&serde_json::json!({ "token": token, "api_token": listed }))?;
                    } else {
                        println!(
                            "{} {} ({} {}):",
                            lang.pick("API 令牌", "API token"),
                            listed.name,
                            listed.role.as_str(),
                            listed.org
                        );
                        println!("  {token}");
                        println!(
                            "{}",
                            lang.pick("只显示这一次，请妥善保存。", "shown once; keep it safe.")
                        );
                    }
                }
                TokenCommand::List => {
                    let list = users::tokens(&conn)?;
                    if cli.json {
                        print_json(&list)?;
                    } else {
                        for t in &list {
                            println!(
                                "{} {} {}{}",
                                t.name,
                                t.role.as_str(),
                                t.org,
                                if t.revoked_at.is_some() {
                                    lang.pick("（已吊销）", " (revoked)")
                                } else {
                                    ""
                                }
                            );
                        }
                    }
                }
                TokenCommand::Revoke { name } => {
                    let revoked = |conn: &mut rusqlite::Connection| users::revoke_token(conn, name);
                    audited(&mut conn, "token.revoke", name, revoked, |_| {
                        serde_json::json!({})
                    })?;
                    if cli.json {
                        print_json(&serde_json::json!({ "revoked": name }))?;
                    } else {
                        println!("{} {name}", lang.pick("已吊销令牌", "revoked token"));
                    }
                }
            }
        }
        Command::AdminToken => {
            let folder = HubFolder::open(&dir)?;
            let mut conn = folder.db.get()?;
            let made = |conn: &mut rusqlite::Connection| {
                nodes::create_admin_token(conn, users::FIRST_ADMIN)
            };
            let token = audited(
                &mut conn,
                "admin_token.create",
                users::FIRST_ADMIN,
                made,
                |_| serde_json::json!({}),
            )?;
            if cli.json {
                print_json(
                    &serde_json::json!({ "admin_token": token, "user": users::FIRST_ADMIN }),
                )?;
            } else {
                println!("{token}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Makes a CLI change and records its outcome in the audit trail (actor
/// `cli`) in one transaction, then passes the outcome on: a change is never
/// kept without its entry, nor an entry written for a change that was not.
/// A failure is recorded with its error message.
fn audited<T, E>(
    conn: &mut rusqlite::Connection,
    action: &str,
    target: &str,
    change: impl FnOnce(&mut rusqlite::Connection) -> std::result::Result<T, E>,
    detail: impl FnOnce(&T) -> serde_json::Value,
) -> Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let outcome = crate::store::atomically(conn, |conn| -> Result<std::result::Result<T, E>> {
        // A failed change has rolled back its own savepoint by now.
        let outcome = change(conn);
        let (result, detail) = match &outcome {
            Ok(value) => (Outcome::Ok, detail(value)),
            Err(err) => (
                Outcome::Failed,
                serde_json::json!({ "error": err.to_string() }),
            ),
        };
        let entry = NewEntry {
            actor: "cli".to_owned(),
            actor_kind: ActorKind::Cli,
            address: None,
            action: action.to_owned(),
            target: Some(target.to_owned()),
            result,
            detail: Some(detail),
        };
        audit::append(conn, &entry).context("cannot record the audit entry")?;
        Ok(outcome)
    })?;
    Ok(outcome?)
}

fn audit_command(cli: &Cli, dir: &std::path::Path, command: &AuditCommand) -> Result<ExitCode> {
    let lang = cli.lang;
    let folder = HubFolder::open(dir)?;
    let conn = folder.db.get()?;
    let path = audit::checkpoints_path(dir);
    match command {
        AuditCommand::Verify => {
            let report = audit::verify(&conn, &audit::verifying_key(&folder.key), &path)?;
            if cli.json {
                print_json(&report)?;
            } else {
                print_verify_report(lang, &report, &path);
            }
            if !report.ok {
                return Ok(ExitCode::from(1));
            }
        }
        AuditCommand::Checkpoint => {
            let outcome = audit::checkpoint(&conn, &folder.key, &path)?;
            if cli.json {
                print_json(&outcome)?;
            } else {
                match &outcome {
                    audit::CheckpointOutcome::Written(cp) => println!(
                        "{} seq {} ({}) → {}",
                        lang.pick("已写入审计检查点", "audit checkpoint written at"),
                        cp.seq,
                        cp.at,
                        path.display()
                    ),
                    audit::CheckpointOutcome::Unchanged(cp) => println!(
                        "{} seq {} ({})",
                        lang.pick(
                            "审计日志自上次检查点以来没有新记录，未写入；上次检查点",
                            "no new audit entries since the last checkpoint; nothing written. Last checkpoint:"
                        ),
                        cp.seq,
                        cp.at
                    ),
                    audit::CheckpointOutcome::Empty => println!(
                        "{}",
                        lang.pick(
                            "审计日志还没有记录，未写入检查点",
                            "the audit trail has no entries yet; no checkpoint written"
                        )
                    ),
                }
            }
        }
        AuditCommand::List {
            actor,
            action,
            target,
            from,
            to,
            limit,
            offset,
            csv,
        } => {
            let filter = audit::Filter {
                actor: actor.clone(),
                action: action.clone(),
                from: from.clone(),
                to: to.clone(),
                target: target.clone(),
                limit: *limit,
                offset: *offset,
            };
            let entries = audit::query(&conn, &filter)?;
            if *csv {
                print!("{}", audit::csv(&entries)?);
            } else if cli.json {
                print_json(&entries)?;
            } else {
                print_audit_entries(lang, &entries);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_verify_report(lang: Lang, report: &VerifyReport, path: &std::path::Path) {
    if report.ok {
        println!(
            "{}: {} {}, {} {}",
            lang.pick("审计日志校验通过", "audit trail verified"),
            report.entries,
            lang.pick("条记录", "entries"),
            report.checkpoints,
            lang.pick("个检查点", "checkpoints"),
        );
    } else {
        println!(
            "{}: {} {}",
            lang.pick("审计日志校验失败", "audit trail verification FAILED"),
            report.problems.len(),
            lang.pick("个问题", "problems"),
        );
        for problem in &report.problems {
            let seq = problem.seq.map_or("-".to_owned(), |s| s.to_string());
            let text = match lang {
                Lang::En => problem.message.clone(),
                Lang::Zh => problem_zh(problem.kind, &seq, report.head_seq.unwrap_or(0)),
            };
            println!("  seq {seq}: {text}");
        }
    }
    match report.last_checkpoint_seq {
        Some(last) if Some(last) < report.head_seq => println!(
            "{} seq {last}{}",
            lang.pick("最近检查点位于", "the last checkpoint is at"),
            lang.pick(
                "；其后的记录在下一个检查点之前不能防止被删除",
                "; entries after it are not protected against deletion until the next checkpoint"
            )
        ),
        Some(_) => {}
        None if report.entries > 0 => println!(
            "{} {}",
            lang.pick(
                "还没有检查点（dangan-hub audit checkpoint 写入）；最新记录被删除将无法发现。检查点文件：",
                "no checkpoint yet (dangan-hub audit checkpoint writes one); deleting the newest entries would go unnoticed. Checkpoint file:"
            ),
            path.display()
        ),
        None => {}
    }
}

fn problem_zh(kind: ProblemKind, seq: &str, head: i64) -> String {
    match kind {
        ProblemKind::HashMismatch => format!("记录 {seq} 被修改：哈希与内容不符"),
        ProblemKind::BrokenLink => {
            format!("记录 {seq} 与前一条记录链接断裂：有记录被插入、删除或改写")
        }
        ProblemKind::SeqGap => format!("记录 {seq} 之前缺少记录：有记录被删除"),
        ProblemKind::Truncated => {
            format!("seq {head} 之后的记录缺失：检查点记录到 seq {seq}，最新记录被删除")
        }
        ProblemKind::CheckpointMismatch => {
            format!("记录 {seq} 与检查点签名时的记录不同：最新记录被改写")
        }
        ProblemKind::BadSignature => format!("seq {seq} 的检查点签名无效（不是本中心密钥所签）"),
        ProblemKind::MalformedCheckpoint => "检查点文件中有无法解析的行".to_owned(),
    }
}

fn print_audit_entries(lang: Lang, entries: &[audit::Entry]) {
    if entries.is_empty() {
        println!("{}", lang.pick("（没有审计记录）", "(no audit entries)"));
        return;
    }
    println!(
        "{} {} {} {} {} {} {}",
        pad_left("seq", 6),
        pad(lang.pick("时间（UTC）", "at (UTC)"), 20),
        pad(lang.pick("操作者", "actor"), 16),
        pad(lang.pick("操作", "action"), 16),
        pad(lang.pick("对象", "target"), 20),
        pad(lang.pick("结果", "result"), 8),
        lang.pick("地址", "address"),
    );
    for e in entries {
        let result = match e.result.as_str() {
            "ok" => lang.pick("成功", "ok"),
            "denied" => lang.pick("拒绝", "denied"),
            "failed" => lang.pick("失败", "failed"),
            other => other,
        };
        println!(
            "{:>6} {} {} {} {} {} {}",
            e.seq,
            pad(&e.at, 20),
            pad(&format!("{} ({})", e.actor, e.actor_kind), 16),
            pad(&e.action, 16),
            pad(e.target.as_deref().unwrap_or("-"), 20),
            pad(result, 8),
            e.address.as_deref().unwrap_or("-"),
        );
    }
}

fn serve(
    cli: &Cli,
    dir: &std::path::Path,
    listen: Option<SocketAddr>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
) -> Result<()> {
    let backend = Arc::new(HubBackend::open(dir)?);
    let config = backend.config().clone();
    let listen = listen.unwrap_or(config.listen);
    let tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => config.tls.map(|(cert, key)| TlsFiles { cert, key }),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let bound = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{bound}");
        if cli.json {
            let line = serde_json::json!({
                "listening": bound.to_string(),
                "url": url,
                "hub_id": backend.hub_id(),
                "hub_key": backend.hub_key(),
            });
            println!("{line}");
        } else {
            println!(
                "{} {url}",
                cli.lang.pick("中心服务已启动：", "hub listening on")
            );
        }
        let _ = std::io::stdout().flush();
        tracing::info!(%url, hub_id = backend.hub_id(), "serving");
        let shutdown = async {
            dangan_sync::server::shutdown_signal().await;
            tracing::info!("shutting down: finishing requests in progress");
        };
        http::serve(backend, listener, tls, shutdown).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn print_nodes(lang: Lang, list: &[NodeInfo]) {
    if list.is_empty() {
        println!(
            "{}",
            lang.pick(
                "还没有登记节点；用 dangan-hub node enrol --district CODE 生成登记码",
                "no nodes yet; make an enrolment code with dangan-hub node enrol --district CODE"
            )
        );
        return;
    }
    println!(
        "{} {} {} {} {}",
        pad(lang.pick("节点", "node"), 14),
        pad(lang.pick("区县", "district"), 8),
        pad(lang.pick("登记时间", "enrolled"), 22),
        pad(lang.pick("最近联系", "last contact"), 22),
        lang.pick("状态", "state")
    );
    for node in list {
        println!(
            "{:<14} {:<8} {:<22} {:<22} {}",
            node.id,
            node.district,
            node.enrolled_at,
            node.last_contact.as_deref().unwrap_or("-"),
            if node.revoked {
                lang.pick("已吊销", "revoked")
            } else {
                lang.pick("正常", "active")
            }
        );
    }
}

fn short(hash: &Option<String>) -> &str {
    hash.as_deref().map_or("-", |h| &h[..h.len().min(12)])
}

fn print_reconciliation(lang: Lang, report: &Reconciliation) {
    if report.districts.is_empty() {
        println!(
            "{}",
            lang.pick(
                "中心还没有任何区县；先用 dangan-hub node enrol --district CODE 登记节点",
                "the hub knows no district yet; enrol a node with dangan-hub node enrol --district CODE"
            )
        );
        return;
    }
    for (index, district) in report.districts.iter().enumerate() {
        if index > 0 {
            println!();
        }
        let stale = if district.stale {
            match district.last_contact {
                None => lang.pick("  [从未联系]", "  [never in contact]").to_owned(),
                Some(_) => format!(
                    "  [{} {} {}]",
                    lang.pick("超过", "no contact for over"),
                    report.stale_after_hours,
                    lang.pick("小时未联系", "hours")
                ),
            }
        } else {
            String::new()
        };
        println!(
            "{} {}  {} {}{stale}",
            lang.pick("区县", "district"),
            district.district,
            lang.pick("最近联系", "last contact"),
            district.last_contact.as_deref().unwrap_or("-"),
        );
        let nodes: Vec<String> = district
            .nodes
            .iter()
            .map(|n| {
                if n.revoked {
                    format!("{} ({})", n.node_id, lang.pick("已吊销", "revoked"))
                } else {
                    n.node_id.clone()
                }
            })
            .collect();
        println!(
            "  {}: {}",
            lang.pick("节点", "nodes"),
            if nodes.is_empty() {
                "-".to_owned()
            } else {
                nodes.join(", ")
            }
        );
        let c = &district.counts;
        println!(
            "  {} {}  {} {}  {} {}  {} {}",
            lang.pick("排队", "queued"),
            c.queued,
            lang.pick("传输中", "in flight"),
            c.in_flight,
            lang.pick("已归档", "archived"),
            c.archived,
            lang.pick("不一致", "divergent"),
            c.divergent
        );
        if district.batches.is_empty() {
            continue;
        }
        println!(
            "  {} {} {} {} {} {} {}",
            pad(lang.pick("批次", "batch"), 24),
            pad(lang.pick("状态", "state"), 8),
            pad(lang.pick("边缘", "edge"), 8),
            pad_left(lang.pick("页", "pages"), 8),
            pad(lang.pick("边缘清单", "edge hash"), 12),
            pad(lang.pick("中心清单", "hub hash"), 12),
            lang.pick("归档时间", "archived at"),
        );
        for batch in &district.batches {
            println!(
                "  {} {} {} {:>8} {:<12} {:<12} {}",
                pad(&batch.batch, 24),
                pad(reconcile_state_label(lang, batch.state), 8),
                pad(
                    &batch
                        .edge_state
                        .as_deref()
                        .map_or("-".to_owned(), |s| edge_state_label(lang, s)),
                    8
                ),
                batch.pages.map_or("-".to_owned(), |p| p.to_string()),
                short(&batch.edge_manifest_hash),
                short(&batch.hub_manifest_hash),
                batch.committed_at.as_deref().unwrap_or("-"),
            );
            if let Some(missing) = batch.missing_blobs {
                println!(
                    "    {}: {missing}",
                    lang.pick("中心仍缺图像数", "blobs still missing at the hub")
                );
            }
            if let Some(error) = &batch.last_error {
                println!(
                    "    {}: {error}",
                    lang.pick("边缘最近错误", "edge's last error")
                );
            }
            if let Some(advice) = batch.advice_code {
                println!(
                    "    {}: {}",
                    lang.pick("建议", "advice"),
                    advice.text(lang.is_zh())
                );
            }
        }
    }
}

fn org_level_label(lang: Lang, level: dangan_shared::OrgLevel) -> &'static str {
    match level {
        dangan_shared::OrgLevel::City => lang.pick("市", "city"),
        dangan_shared::OrgLevel::District => lang.pick("区县", "district"),
        dangan_shared::OrgLevel::StreetOffice => lang.pick("街道", "street office"),
    }
}

fn print_user_change(json: bool, lang: Lang, what: &str, user: &User) -> Result<()> {
    if json {
        return print_json(user);
    }
    let state = if user.disabled {
        lang.pick("（已停用）", " (disabled)")
    } else if user
        .locked_until
        .as_deref()
        .is_some_and(|t| t > crate::store::now().as_str())
    {
        lang.pick("（已锁定）", " (locked)")
    } else {
        ""
    };
    println!(
        "{what}{}{} ({}) {} {}{state}",
        if what.is_empty() { "" } else { " " },
        user.username,
        user.display_name,
        user.role.as_str(),
        user.org
    );
    Ok(())
}

fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn print_org_tree(lang: Lang, nodes: &[OrgNode], depth: usize) {
    for node in nodes {
        let org = &node.org;
        let disabled = if org.status == "disabled" {
            lang.pick("（已停用）", " (disabled)")
        } else {
            ""
        };
        println!(
            "{}{} {} [{}]{disabled}",
            "  ".repeat(depth),
            org.code,
            org.name,
            org_level_label(lang, org.level)
        );
        print_org_tree(lang, &node.children, depth + 1);
    }
}

fn print_org_change(json: bool, lang: Lang, what: &str, org: &Org) -> Result<()> {
    if json {
        return print_json(org);
    }
    println!(
        "{what} {} {} [{}]{}",
        org.code,
        org.name,
        org_level_label(lang, org.level),
        org.parent
            .as_deref()
            .map(|p| format!(" {} {p}", lang.pick("上级", "under")))
            .unwrap_or_default()
    );
    Ok(())
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
