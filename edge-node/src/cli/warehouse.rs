//! `dangan-edge warehouse …`: the warehouse from the command line, for
//! setting up a room in bulk, shelving from a handheld's CSV, printing
//! labels and listing loans in scripts. Run on the data folder as the local
//! administrator, like every command of this binary; the web UI is where
//! operators do the same by scanning.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use dangan_edge::lifecycle::Actor;
use dangan_edge::node::Node;
use dangan_edge::text::Lang;
use dangan_edge::warehouse::{self as wh, LoanFilter, NewLocation, NewVolume};

#[derive(Debug, Subcommand)]
pub enum WarehouseCommand {
    /// Add a location: a room (库房), cabinet or compact-shelving column
    /// (列), section (节), shelf (层) or box (盒).
    Location {
        /// room, cabinet, section, shelf or box.
        #[arg(long)]
        kind: String,
        /// The code its label carries: upper-case letters, digits and '-';
        /// boxes BOX-…, other locations not BOX-… or VOL-….
        #[arg(long)]
        code: String,
        /// A name people read, e.g. 一号库房 or 第3列.
        #[arg(long)]
        name: String,
        /// The enclosing location's code (cabinet: a room; section: a
        /// cabinet; shelf: a cabinet or section; box: a shelf, or none yet).
        #[arg(long)]
        parent: Option<String>,
        /// Most boxes a shelf holds, or volumes a box holds.
        #[arg(long)]
        capacity: Option<u32>,
    },
    /// Add a volume (案卷), optionally in a box.
    Volume {
        /// VOL-….
        #[arg(long)]
        code: String,
        /// The volume's title, e.g. 2019年度 基本养老金核定 第3卷.
        #[arg(long)]
        title: String,
        /// The box that holds it.
        #[arg(long = "box", value_name = "BOX")]
        box_code: Option<String>,
        /// Retention: permanent or a number of years such as 30y.
        #[arg(long)]
        retention: Option<String>,
    },
    /// Bind business file FILE of an accepted batch into a volume.
    File {
        batch: String,
        file: u32,
        volume: String,
    },
    /// Put a box on a shelf (moving it from wherever it was).
    Shelve {
        #[arg(value_name = "BOX")]
        box_code: String,
        shelf: String,
    },
    /// Shelve from a CSV of `box,shelf` lines; all or nothing.
    ShelveCsv { file: PathBuf },
    /// List locations (depth first) with what they hold.
    Locations,
    /// Ask to borrow a volume or a box (借阅申请).
    Borrow {
        /// The volume's or box's code.
        item: String,
        /// Who will hold it.
        #[arg(long)]
        borrower: String,
        /// What for.
        #[arg(long)]
        purpose: String,
        /// When it is due back (YYYY-MM-DD).
        #[arg(long)]
        due: String,
    },
    /// Take a loan a step on: approve, refuse (with --note), lend, return.
    Loan {
        /// The loan's number.
        id: i64,
        /// approve, refuse, lend or return.
        #[arg(value_parser = ["approve", "refuse", "lend", "return"])]
        step: String,
        /// Why (required to refuse).
        #[arg(long)]
        note: Option<String>,
    },
    /// List loans: open ones by default.
    Loans {
        /// Only loans past their due date.
        #[arg(long, conflicts_with = "all")]
        overdue: bool,
        /// Every loan ever, newest first.
        #[arg(long)]
        all: bool,
    },
    /// Print labels for boxes, volumes or locations to a PDF for A4 label
    /// stock (2 × 7 labels of 99.1 × 38.1 mm).
    Labels {
        /// The codes, in print order.
        #[arg(required = true)]
        codes: Vec<String>,
        /// Where to write the PDF.
        #[arg(long)]
        out: PathBuf,
        /// Positions already used on the first sheet (0–13).
        #[arg(long, default_value_t = 0)]
        start: usize,
    },
    /// The warehouse feed: how many events it holds and how many the hub
    /// has applied.
    Feed,
}

pub fn run(
    command: &WarehouseCommand,
    node: &Node,
    conn: &mut rusqlite::Connection,
    actor: &Actor,
    json: bool,
    lang: Lang,
) -> Result<()> {
    let today = wh::today(&node.config.sync.time_zone);
    let fail = |err: wh::WarehouseError| anyhow::anyhow!(err.text(lang));
    match command {
        WarehouseCommand::Location {
            kind,
            code,
            name,
            parent,
            capacity,
        } => {
            let new = NewLocation {
                code: code.to_uppercase(),
                kind: kind.clone(),
                name: name.clone(),
                parent: parent.as_ref().map(|p| p.to_uppercase()),
                capacity: *capacity,
            };
            let created = wh::create_location(conn, &new, actor).map_err(fail)?;
            print(json, &created, || {
                format!(
                    "{} {} {}",
                    lang.pick("已添加", "added"),
                    wh::kind_label(lang, kind),
                    created.code
                )
            })?;
        }
        WarehouseCommand::Volume {
            code,
            title,
            box_code,
            retention,
        } => {
            let new = NewVolume {
                code: code.to_uppercase(),
                title: title.clone(),
                box_code: box_code.as_ref().map(|b| b.to_uppercase()),
                retention: retention.clone(),
            };
            let created = wh::create_volume(conn, &new, actor).map_err(fail)?;
            print(json, &created, || {
                format!(
                    "{} {}",
                    lang.pick("已添加案卷", "added volume"),
                    created.code
                )
            })?;
        }
        WarehouseCommand::File {
            batch,
            file,
            volume,
        } => {
            wh::file_into_volume(conn, batch, *file, Some(&volume.to_uppercase()), actor)
                .map_err(fail)?;
            let bound = wh::volume(conn, &volume.to_uppercase()).map_err(fail)?;
            print(json, &bound, || {
                format!("{batch} #{file} → {}", volume.to_uppercase())
            })?;
        }
        WarehouseCommand::Shelve { box_code, shelf } => {
            let (box_code, shelf) = (box_code.to_uppercase(), shelf.to_uppercase());
            let moved = wh::shelve(conn, &box_code, &shelf, actor).map_err(fail)?;
            print(
                json,
                &serde_json::json!({ "moved": moved, "box": box_code, "shelf": shelf }),
                || format!("{box_code} → {shelf}"),
            )?;
        }
        WarehouseCommand::ShelveCsv { file } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let moved = wh::shelve_csv(conn, &text, actor).map_err(fail)?;
            print(json, &serde_json::json!({ "moved": moved }), || {
                format!("{moved} {}", lang.pick("盒已上架", "boxes shelved"))
            })?;
        }
        WarehouseCommand::Locations => {
            let all = wh::locations(conn).map_err(fail)?;
            print(json, &all, || {
                all.iter()
                    .map(|l| {
                        format!(
                            "{}\t{}\t{}\t{}{}",
                            l.code,
                            wh::kind_label(lang, &l.kind),
                            l.name,
                            l.held,
                            l.capacity.map(|c| format!("/{c}")).unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })?;
        }
        WarehouseCommand::Borrow {
            item,
            borrower,
            purpose,
            due,
        } => {
            let new = wh::NewLoan {
                item: item.clone(),
                borrower: borrower.clone(),
                purpose: purpose.clone(),
                due_date: due.clone(),
            };
            let loan = wh::request_loan(conn, &new, actor, &today).map_err(fail)?;
            print(json, &loan, || {
                format!("{} {}", lang.pick("借阅申请", "loan"), loan.id)
            })?;
        }
        WarehouseCommand::Loan { id, step, note } => {
            let step = match step.as_str() {
                "approve" => wh::LoanStep::Approve,
                "refuse" => wh::LoanStep::Refuse,
                "lend" => wh::LoanStep::Lend,
                _ => wh::LoanStep::Return,
            };
            let loan =
                wh::loan_step(conn, *id, step, note.as_deref(), actor, &today).map_err(fail)?;
            print(json, &loan, || {
                format!(
                    "{} {}: {}",
                    lang.pick("借阅", "loan"),
                    loan.id,
                    wh::loan_state_label(lang, &loan.state)
                )
            })?;
        }
        WarehouseCommand::Loans { overdue, all } => {
            let filter = if *overdue {
                LoanFilter::Overdue
            } else if *all {
                LoanFilter::All
            } else {
                LoanFilter::Open
            };
            let loans = wh::loans(conn, filter, None, &today).map_err(fail)?;
            print(json, &loans, || {
                loans
                    .iter()
                    .map(|l| {
                        format!(
                            "{}\t{}\t{}\t{}\t{}{}",
                            l.id,
                            l.item,
                            wh::loan_state_label(lang, &l.state),
                            l.borrower,
                            l.due_date,
                            if l.overdue {
                                lang.pick("\t已逾期", "\tOVERDUE")
                            } else {
                                ""
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })?;
        }
        WarehouseCommand::Labels { codes, out, start } => {
            let labels = codes
                .iter()
                .map(|code| wh::label_for(conn, &code.to_uppercase()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(fail)?;
            let settings = &node.config.labels;
            let font = dangan_edge::labels::font(&settings.font, settings.font_index)?;
            let pdf = dangan_edge::labels::render(
                &labels,
                &dangan_edge::labels::Layout::default(),
                &font,
                *start,
            )?;
            std::fs::write(out, pdf).with_context(|| format!("cannot write {}", out.display()))?;
            print(
                json,
                &serde_json::json!({ "labels": labels.len(), "out": out }),
                || {
                    format!(
                        "{} {} → {}",
                        labels.len(),
                        lang.pick("枚标签", "labels"),
                        out.display()
                    )
                },
            )?;
        }
        WarehouseCommand::Feed => {
            let (events, acked) = wh::feed_state(conn).map_err(fail)?;
            let feed = wh::feed_id(conn).map_err(fail)?;
            print(
                json,
                &serde_json::json!({ "feed": feed, "events": events, "acked": acked }),
                || {
                    format!(
                        "{feed}: {events} {}, {acked} {}",
                        lang.pick("条事件", "events"),
                        lang.pick("条已被中心接收", "applied by the hub")
                    )
                },
            )?;
        }
    }
    Ok(())
}

fn print<T: serde::Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", text());
    }
    Ok(())
}
