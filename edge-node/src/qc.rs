//! Quality spot-checks (质量抽查) of a batch.
//!
//! `start` moves a scanned (or reworked) batch into QC and draws the
//! round's sample: reproducibly, from a seed stored with the round, at the
//! rate and floor of the batch's template version (shared rule:
//! [`dangan_shared::qc`]). Pre-checks flag pages below the template's dpi,
//! pages in a colour mode the template does not accept (a bilevel scan
//! under `gray`, a gray one under `colour`), suspected blanks and pages
//! skewed by a degree or more (estimated at ingest, [`crate::skew`]) before
//! anyone looks. An inspector records pass or
//! a defect for each sampled page (`check`); `finish` computes the pass
//! rate and sends the batch to rework (defects listed) or accepts it —
//! unless exceptions are still open, which keeps it in QC.
use std::collections::BTreeMap;

use dangan_shared::dictionary::DictionaryKind;
use dangan_shared::qc::{self, Defect, SamplingRule};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::lifecycle::{self, Actor, BatchState, LifecycleError};
use crate::store::{StoreError, now};
use crate::template::{self, ColourRule};

#[derive(Debug, thiserror::Error)]
pub enum QcError {
    #[error("no batch named {0:?}")]
    NoSuchBatch(String),
    #[error("batch {0:?} has no QC round in progress; start one with `qc start`")]
    NoRound(String),
    #[error("page {page} of batch {batch:?} is not in this round's sample")]
    NotSampled { batch: String, page: u32 },
    #[error("{count} sampled pages of batch {batch:?} are not checked yet: {pages}")]
    Unchecked {
        batch: String,
        count: usize,
        pages: String,
    },
    #[error(
        "batch {batch:?} passed QC but has {open} open exceptions; resolve them, then finish QC \
         again"
    )]
    OpenExceptions { batch: String, open: i64 },
    #[error("unknown verdict {0:?}: pass, or a defect ({1})")]
    Verdict(String, String),
    #[error("defect type {0:?} is retired in the defects dictionary from the hub")]
    Retired(String),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for QcError {
    fn from(err: rusqlite::Error) -> Self {
        QcError::Store(err.into())
    }
}

/// A page's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Defect(Defect),
}

impl Verdict {
    pub fn parse(text: &str) -> Result<Self, QcError> {
        if text == "pass" || text == "合格" {
            return Ok(Verdict::Pass);
        }
        text.parse::<Defect>().map(Verdict::Defect).map_err(|_| {
            QcError::Verdict(text.to_owned(), Defect::ALL.map(|d| d.code()).join(", "))
        })
    }

    fn code(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Defect(defect) => defect.code(),
        }
    }
}

/// A page flagged by the automatic pre-checks.
#[derive(Clone, Debug, Serialize)]
pub struct Flag {
    pub page: u32,
    /// `skew`, `low_resolution`, `colour` or `blank`.
    pub check: String,
    pub detail: String,
}

/// Pages estimated more skewed than this are flagged before QC.
pub const SKEW_FLAG_DEGREES: f32 = 1.0;

/// id, seq, dpi, blank, skew_degrees, colour of a page.
type PageRow = (i64, u32, Option<u32>, bool, Option<f32>, String);

/// What `start` drew.
#[derive(Clone, Debug, Serialize)]
pub struct Round {
    pub batch: String,
    pub round: u32,
    pub seed: u64,
    pub rule: SamplingRule,
    pub pages: u32,
    /// Page numbers (scan order, from 1) to check.
    pub sample: Vec<u32>,
    pub prechecks: Vec<Flag>,
}

fn batch(conn: &Connection, name: &str) -> Result<(i64, Option<String>, Option<u32>), QcError> {
    conn.query_row(
        "SELECT id, business_type, template_version FROM batches WHERE name = ?1",
        [name],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )
    .optional()?
    .ok_or_else(|| QcError::NoSuchBatch(name.to_owned()))
}

/// What QC takes from the batch's template version.
struct Rules {
    sampling: SamplingRule,
    min_dpi: u32,
    colour: ColourRule,
}

/// The batch's template version's QC rule, minimum dpi and colour rule
/// (defaults, any colour accepted, when the batch has no business type).
fn rule(conn: &Connection, kind: Option<&str>, version: Option<u32>) -> Result<Rules, QcError> {
    let bound = match (kind, version) {
        (Some(kind), Some(version)) => template::version(conn, kind, version)
            .map_err(|err| StoreError::Corrupt(err.to_string()))?,
        _ => None,
    };
    Ok(bound.map_or(
        Rules {
            sampling: SamplingRule::default(),
            min_dpi: 200,
            colour: ColourRule::Any,
        },
        |t| Rules {
            sampling: t.template.qc,
            min_dpi: t.template.min_dpi,
            colour: t.template.colour,
        },
    ))
}

/// Starts a QC round: the batch goes to `in_qc` and the sample is drawn
/// with `seed` (a random one when `None`), stored with the round.
pub fn start(
    conn: &mut Connection,
    name: &str,
    actor: &Actor,
    seed: Option<u64>,
) -> Result<Round, QcError> {
    let tx = conn.transaction()?;
    let (id, kind, version) = batch(&tx, name)?;
    let Rules {
        sampling: rule,
        min_dpi,
        colour: colour_rule,
    } = rule(&tx, kind.as_deref(), version)?;
    lifecycle::transition(&tx, id, BatchState::InQc, actor, None, false)?;
    let seed = match seed {
        Some(seed) => seed,
        None => {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes)
                .map_err(|err| StoreError::Corrupt(format!("no randomness: {err}")))?;
            // SQLite integers are signed: keep seeds below 2^63.
            u64::from_le_bytes(bytes) >> 1
        }
    };
    let pages: Vec<PageRow> = tx
        .prepare(
            "SELECT id, seq, dpi, blank, skew_degrees, colour FROM pages WHERE batch_id = ?1
             ORDER BY seq",
        )?
        .query_map([id], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let count = pages.len() as u32;
    let positions = qc::sample(count, seed, &rule);
    let round: u32 = tx.query_row(
        "SELECT coalesce(max(round), 0) + 1 FROM qc_rounds WHERE batch_id = ?1",
        [id],
        |row| row.get(0),
    )?;
    let now = now();
    tx.execute(
        "INSERT INTO qc_rounds(batch_id, round, seed, rate, floor, pass_threshold, pages, sampled,
             started_by, started_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            id,
            round,
            seed as i64,
            rule.rate,
            rule.floor,
            rule.pass_threshold,
            count,
            positions.len() as u32,
            actor.name(),
            now
        ],
    )?;
    let round_id = tx.last_insert_rowid();
    let mut sample = Vec::with_capacity(positions.len());
    for position in positions {
        let (page_id, seq, ..) = pages[position as usize];
        tx.execute(
            "INSERT INTO qc_checks(round_id, page_id) VALUES (?1, ?2)",
            params![round_id, page_id],
        )?;
        sample.push(seq);
    }
    let mut prechecks = Vec::new();
    for (_, seq, dpi, blank, skew, colour) in &pages {
        if let Some(skew) = skew
            && skew.abs() >= SKEW_FLAG_DEGREES
        {
            prechecks.push(Flag {
                page: *seq,
                check: "skew".into(),
                detail: format!("estimated skew {skew:+.1}°"),
            });
        }
        if let Some(dpi) = dpi
            && *dpi < min_dpi
        {
            prechecks.push(Flag {
                page: *seq,
                check: "low_resolution".into(),
                detail: format!("{dpi} dpi, the template asks for at least {min_dpi}"),
            });
        }
        if !colour_rule.accepts(colour) {
            prechecks.push(Flag {
                page: *seq,
                check: "colour".into(),
                detail: format!(
                    "scanned {colour}, the template accepts {} (rescan the page)",
                    colour_rule.describe()
                ),
            });
        }
        if *blank {
            prechecks.push(Flag {
                page: *seq,
                check: "blank".into(),
                detail: "suspected blank page".into(),
            });
        }
    }
    tx.commit()?;
    Ok(Round {
        batch: name.to_owned(),
        round,
        seed,
        rule,
        pages: count,
        sample,
        prechecks,
    })
}

/// The batch's open round: (round id, round number).
fn open_round(conn: &Connection, name: &str) -> Result<(i64, i64, u32), QcError> {
    let (id, _, _) = batch(conn, name)?;
    let found: Option<(i64, u32)> = conn
        .query_row(
            "SELECT id, round FROM qc_rounds WHERE batch_id = ?1 AND finished_at IS NULL
             ORDER BY round DESC LIMIT 1",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let (round_id, round) = found.ok_or_else(|| QcError::NoRound(name.to_owned()))?;
    Ok((id, round_id, round))
}

/// Records an inspector's verdict on a sampled page (again: replaces it).
pub fn check(
    conn: &Connection,
    name: &str,
    page: u32,
    verdict: Verdict,
    note: Option<&str>,
    actor: &Actor,
) -> Result<(), QcError> {
    let (batch_id, round_id, _) = open_round(conn, name)?;
    if let Verdict::Defect(defect) = verdict {
        let defects = crate::dictionaries::current(conn, DictionaryKind::Defects)?;
        if !defects.dictionary.is_active(defect.code()) {
            return Err(QcError::Retired(defect.code().to_owned()));
        }
    }
    let changed = conn.execute(
        "UPDATE qc_checks SET verdict = ?1, note = ?2, inspector = ?3, checked_at = ?4
         WHERE round_id = ?5
           AND page_id = (SELECT id FROM pages WHERE batch_id = ?6 AND seq = ?7)",
        params![
            verdict.code(),
            note,
            actor.name(),
            now(),
            round_id,
            batch_id,
            page
        ],
    )?;
    if changed == 0 {
        return Err(QcError::NotSampled {
            batch: name.to_owned(),
            page,
        });
    }
    Ok(())
}

/// How a round ended.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub batch: String,
    pub round: u32,
    pub checked: u32,
    pub passed: u32,
    pub pass_rate: f64,
    pub pass_threshold: f64,
    /// `accepted` or `rework`.
    pub state: BatchState,
    /// Defective pages (for the rework).
    pub defects: Vec<PageDefect>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PageDefect {
    pub page: u32,
    pub defect: String,
    pub note: Option<String>,
}

/// Ends the open round: accepted when the pass rate meets the threshold
/// and no exception is open, rework when it does not.
pub fn finish(conn: &mut Connection, name: &str, actor: &Actor) -> Result<Outcome, QcError> {
    let tx = conn.transaction()?;
    let (batch_id, round_id, round) = open_round(&tx, name)?;
    let threshold: f64 = tx.query_row(
        "SELECT pass_threshold FROM qc_rounds WHERE id = ?1",
        [round_id],
        |row| row.get(0),
    )?;
    let checks: Vec<(u32, Option<String>, Option<String>)> = tx
        .prepare(
            "SELECT p.seq, c.verdict, c.note FROM qc_checks c JOIN pages p ON p.id = c.page_id
             WHERE c.round_id = ?1 ORDER BY p.seq",
        )?
        .query_map([round_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    let unchecked: Vec<String> = checks
        .iter()
        .filter(|(_, verdict, _)| verdict.is_none())
        .map(|(seq, _, _)| seq.to_string())
        .collect();
    if !unchecked.is_empty() {
        return Err(QcError::Unchecked {
            batch: name.to_owned(),
            count: unchecked.len(),
            pages: unchecked.join(", "),
        });
    }
    let checked = checks.len() as u32;
    let defects: Vec<PageDefect> = checks
        .iter()
        .filter_map(|(seq, verdict, note)| {
            let verdict = verdict.as_deref()?;
            (verdict != "pass").then(|| PageDefect {
                page: *seq,
                defect: verdict.to_owned(),
                note: note.clone(),
            })
        })
        .collect();
    let passed = checked - defects.len() as u32;
    let rule = SamplingRule {
        pass_threshold: threshold,
        ..SamplingRule::default()
    };
    let passes = rule.passes(passed, checked);
    let state = if passes {
        let open = crate::exceptions::open_count(&tx, batch_id)?;
        if open > 0 {
            return Err(QcError::OpenExceptions {
                batch: name.to_owned(),
                open,
            });
        }
        BatchState::Accepted
    } else {
        BatchState::Rework
    };
    let reason = format!(
        "QC round {round}: {passed} of {checked} sampled pages passed (threshold {:.0}%)",
        threshold * 100.0
    );
    lifecycle::transition(&tx, batch_id, state, actor, Some(&reason), false)?;
    let now = now();
    if state == BatchState::Accepted {
        tx.execute(
            "UPDATE batches SET accepted_at = ?1, sync_error = NULL, sync_error_code = NULL,
                 sync_attempts = 0,
                 next_attempt_at = NULL
             WHERE id = ?2",
            params![now, batch_id],
        )?;
    }
    tx.execute(
        "UPDATE qc_rounds SET finished_by = ?1, finished_at = ?2, passed = ?3, outcome = ?4
         WHERE id = ?5",
        params![
            actor.name(),
            now,
            passed,
            if passes { "pass" } else { "rework" },
            round_id
        ],
    )?;
    tx.commit()?;
    Ok(Outcome {
        batch: name.to_owned(),
        round,
        checked,
        passed,
        pass_rate: if checked == 0 {
            1.0
        } else {
            f64::from(passed) / f64::from(checked)
        },
        pass_threshold: threshold,
        state,
        defects,
    })
}

/// A batch's QC report over all its rounds.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub batch: String,
    pub rounds: Vec<RoundReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RoundReport {
    pub round: u32,
    pub seed: u64,
    pub pages: u32,
    pub sampled: u32,
    pub checked: u32,
    pub passed: u32,
    pub pass_rate: Option<f64>,
    pub outcome: Option<String>,
    pub started_by: String,
    pub finished_by: Option<String>,
    pub defects_by_type: BTreeMap<String, u32>,
    /// Defects by the operator who scanned the page.
    pub defects_by_operator: BTreeMap<String, u32>,
    pub checks: Vec<CheckRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckRow {
    pub page: u32,
    pub verdict: Option<String>,
    pub note: Option<String>,
    pub inspector: Option<String>,
    pub operator: Option<String>,
    pub checked_at: Option<String>,
}

/// id, round, seed, pages, sampled, outcome, started_by, finished_by.
type RoundRow = (
    i64,
    u32,
    i64,
    u32,
    u32,
    Option<String>,
    String,
    Option<String>,
);

pub fn report(conn: &Connection, name: &str) -> Result<Report, QcError> {
    let (batch_id, _, _) = batch(conn, name)?;
    let rounds: Vec<RoundRow> = conn
        .prepare(
            "SELECT id, round, seed, pages, sampled, outcome, started_by, finished_by
             FROM qc_rounds WHERE batch_id = ?1 ORDER BY round",
        )?
        .query_map([batch_id], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
                row.get(7)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(rounds.len());
    for (round_id, round, seed, pages, sampled, outcome, started_by, finished_by) in rounds {
        let checks: Vec<CheckRow> = conn
            .prepare(
                "SELECT p.seq, c.verdict, c.note, c.inspector, p.operator, c.checked_at
                 FROM qc_checks c JOIN pages p ON p.id = c.page_id
                 WHERE c.round_id = ?1 ORDER BY p.seq",
            )?
            .query_map([round_id], |row| {
                Ok(CheckRow {
                    page: row.get(0)?,
                    verdict: row.get(1)?,
                    note: row.get(2)?,
                    inspector: row.get(3)?,
                    operator: row.get(4)?,
                    checked_at: row.get(5)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut by_type = BTreeMap::new();
        let mut by_operator = BTreeMap::new();
        let mut checked = 0;
        let mut passed = 0;
        for check in &checks {
            let Some(verdict) = &check.verdict else {
                continue;
            };
            checked += 1;
            if verdict == "pass" {
                passed += 1;
            } else {
                *by_type.entry(verdict.clone()).or_insert(0) += 1;
                let operator = check.operator.clone().unwrap_or_else(|| "unknown".into());
                *by_operator.entry(operator).or_insert(0) += 1;
            }
        }
        out.push(RoundReport {
            round,
            seed: seed as u64,
            pages,
            sampled,
            checked,
            passed,
            pass_rate: (checked > 0).then(|| f64::from(passed) / f64::from(checked)),
            outcome,
            started_by,
            finished_by,
            defects_by_type: by_type,
            defects_by_operator: by_operator,
            checks,
        });
    }
    Ok(Report {
        batch: name.to_owned(),
        rounds: out,
    })
}

/// The report as CSV: one line per sampled page of every round.
pub fn report_csv(report: &Report) -> String {
    let mut out = String::from("batch,round,page,verdict,note,inspector,operator,checked_at\n");
    let field = |text: &str| {
        if text.contains([',', '"', '\n']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_owned()
        }
    };
    for round in &report.rounds {
        for check in &round.checks {
            let line = [
                field(&report.batch),
                round.round.to_string(),
                check.page.to_string(),
                field(check.verdict.as_deref().unwrap_or("")),
                field(check.note.as_deref().unwrap_or("")),
                field(check.inspector.as_deref().unwrap_or("")),
                field(check.operator.as_deref().unwrap_or("")),
                field(check.checked_at.as_deref().unwrap_or("")),
            ]
            .join(",");
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}
