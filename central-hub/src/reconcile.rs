//! Reconciliation: per district, what its edge has queued, what is in
//! flight, what is archived and what diverges, with the last contact and
//! advice for anything that needs a person. Shared by `dangan-hub
//! reconcile` and `GET /api/v1/reconcile`.
//!
//! A batch is known from the edge's last queue report, from an open offer
//! or from a commit. Its state:
//! - `archived`: committed, and the edge reports the same manifest hash
//!   (or no hash, or does not report the batch);
//! - `divergent`: committed with a different hash than the edge reports, or
//!   reported archived by the edge but unknown to the hub;
//! - `in_flight`: offered and not committed, or the edge says it is syncing;
//! - `queued`: only reported, queued, by the edge.
use std::collections::BTreeMap;
use std::time::Duration;

use dangan_sync::wire::ReconcileState;
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use crate::archive;
use crate::store::{self, StoreError};

/// Why a batch needs a person, and what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Advice {
    /// The edge's manifest of an archived batch differs from the hub's.
    Divergent,
    /// The edge holds the batch as archived; the hub has no record of it.
    MissingAtHub,
    /// Queued at the edge for longer than the stale threshold.
    QueuedLong,
    /// In flight for longer than the stale threshold.
    InFlightLong,
    /// The edge reports an error for the batch.
    EdgeError,
}

impl Advice {
    pub fn text(self, zh: bool) -> &'static str {
        match (self, zh) {
            (Advice::Divergent, false) => {
                "the district changed an archived batch: compare the edge's manifest with the \
                 hub's (manifests/<hash>.json in the hub's data folder), then rename the batch \
                 at the edge and accept it again so that it is archived as a new batch, or \
                 restore the edge's copy to match the archive"
            }
            (Advice::Divergent, true) => {
                "区县修改了已归档的批次：请比对边缘节点与中心的清单（中心数据目录下 \
                 manifests/<哈希>.json），然后在边缘节点将该批次改名并重新验收，作为新批次归档；\
                 或将边缘节点的副本恢复为与档案一致"
            }
            (Advice::MissingAtHub, false) => {
                "the edge holds a receipt for this batch but the hub has no record of it (was \
                 hub.db restored from an older backup?): restore the hub from a newer backup, or \
                 have the edge offer the batch again; the edge must keep its images until then"
            }
            (Advice::MissingAtHub, true) => {
                "边缘节点持有该批次的回执，但中心没有记录（hub.db 是否从较旧的备份恢复？）：\
                 请从较新的备份恢复中心，或让边缘节点重新提交该批次；在此之前边缘节点须保留图像"
            }
            (Advice::QueuedLong, false) => {
                "queued at the edge for a long time: check the node's network connection, its \
                 sync window (edge.toml) and that `dangan-edge serve` is running"
            }
            (Advice::QueuedLong, true) => {
                "在边缘节点排队时间过长：请检查该节点的网络连接、同步时间窗（edge.toml），\
                 以及 dangan-edge serve 是否在运行"
            }
            (Advice::InFlightLong, false) => {
                "the transfer has not finished for a long time: check the edge's last error, \
                 the network, and the hub's free disk space"
            }
            (Advice::InFlightLong, true) => {
                "传输长时间未完成：请检查边缘节点的最近错误、网络以及中心的剩余磁盘空间"
            }
            (Advice::EdgeError, false) => {
                "the edge reports an error for this batch (see last_error); it retries by \
                 itself, fix the cause if the error persists"
            }
            (Advice::EdgeError, true) => {
                "边缘节点报告该批次出错（见最近错误）；节点会自动重试，若错误持续请排除原因"
            }
        }
    }
}

impl Serialize for AdviceText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.text(false))
    }
}

/// Advice as English text in JSON (scripts see stable words; people get
/// their language from the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdviceText(pub Advice);

#[derive(Debug, Clone, Serialize)]
pub struct Reconciliation {
    pub generated_at: String,
    pub stale_after_hours: u64,
    /// The same threshold to the second (`reconcile.stale_after_seconds`).
    pub stale_after_seconds: u64,
    pub districts: Vec<DistrictReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DistrictReport {
    pub district: String,
    /// The district's name in the organisation tree, when it has one.
    pub name: Option<String>,
    pub nodes: Vec<NodeContact>,
    /// The latest contact of any of its live nodes.
    pub last_contact: Option<String>,
    /// No live node has been in contact within the stale threshold (or ever).
    pub stale: bool,
    pub counts: Counts,
    pub batches: Vec<BatchReport>,
    /// The district's street offices' live uploads (its pre-archive), by
    /// state: handed over to the district to manage.
    pub live: LiveCounts,
}

/// Live business files of a district by state.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct LiveCounts {
    pub open: u64,
    pub submitted: u64,
    pub returned: u64,
    pub approved: u64,
    pub archived: u64,
}

impl LiveCounts {
    pub fn total(&self) -> u64 {
        self.open + self.submitted + self.returned + self.approved + self.archived
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeContact {
    pub node_id: String,
    pub enrolled_at: String,
    pub last_contact: Option<String>,
    pub revoked: bool,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub queued: u64,
    pub in_flight: u64,
    pub archived: u64,
    pub divergent: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchReport {
    pub batch: String,
    pub state: ReconcileState,
    /// What the edge last reported: `queued`, `syncing` or `archived`.
    pub edge_state: Option<String>,
    pub edge_manifest_hash: Option<String>,
    /// The committed manifest's hash, or the latest offered one in flight.
    pub hub_manifest_hash: Option<String>,
    pub pages: Option<u64>,
    pub bytes: Option<u64>,
    pub committed_at: Option<String>,
    pub offered_at: Option<String>,
    /// Blobs the hub still needs for the offer (in flight only).
    pub missing_blobs: Option<u64>,
    pub reported_at: Option<String>,
    /// Since when the edge has reported its current state.
    pub edge_state_since: Option<String>,
    pub last_error: Option<String>,
    /// What to do, for batches that need a person (English).
    pub advice: Option<AdviceText>,
    /// The same as a stable code.
    pub advice_code: Option<Advice>,
}

#[derive(Default)]
struct Known {
    committed: Option<(String, u64, u64, String)>,
    offer: Option<(String, u64, u64, String)>,
    edge: Option<EdgeRow>,
}

struct EdgeRow {
    state: String,
    manifest_hash: Option<String>,
    pages: u64,
    bytes: u64,
    last_error: Option<String>,
    state_since: String,
    reported_at: String,
}

/// Computes the reconciliation of every district, or of `only`.
pub fn reconcile(
    conn: &Connection,
    stale_after: Duration,
    only: Option<&str>,
) -> Result<Reconciliation, StoreError> {
    let stale_cutoff = store::time_ago(stale_after);
    let filter = only.unwrap_or("");
    let mut districts: BTreeMap<String, (Vec<NodeContact>, BTreeMap<String, Known>)> =
        BTreeMap::new();
    let mut live: BTreeMap<String, LiveCounts> = BTreeMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT district, state, count(*) FROM live_files
             WHERE ?1 = '' OR district = ?1 GROUP BY district, state",
        )?;
        let rows = stmt.query_map([filter], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, u64>(2)?,
            ))
        })?;
        for row in rows {
            let (district, state, count) = row?;
            districts.entry(district.clone()).or_default();
            let counts = live.entry(district).or_default();
            match state.as_str() {
                "open" => counts.open += count,
                "submitted" => counts.submitted += count,
                "returned" => counts.returned += count,
                "approved" => counts.approved += count,
                _ => counts.archived += count,
            }
        }
    }
    {
        let mut stmt =
            conn.prepare("SELECT code FROM districts WHERE ?1 = '' OR code = ?1 ORDER BY code")?;
        for code in stmt.query_map([filter], |row| row.get::<_, String>(0))? {
            districts.entry(code?).or_default();
        }
    }
    {
        let mut stmt = conn.prepare(
            "SELECT district, id, enrolled_at, last_contact, revoked_at IS NOT NULL FROM nodes
             WHERE (?1 = '' OR district = ?1) AND id NOT LIKE '%-live'
             ORDER BY enrolled_at, id",
        )?;
        let rows = stmt.query_map([filter], |row| {
            Ok((
                row.get::<_, String>(0)?,
                NodeContact {
                    node_id: row.get(1)?,
                    enrolled_at: row.get(2)?,
                    last_contact: row.get(3)?,
                    revoked: row.get(4)?,
                },
            ))
        })?;
        for row in rows {
            let (district, node) = row?;
            districts.entry(district).or_default().0.push(node);
        }
    }
    {
        let mut stmt = conn.prepare(
            "SELECT district, batch, manifest_hash, pages, bytes, committed_at FROM batches
             WHERE ?1 = '' OR district = ?1",
        )?;
        let rows = stmt.query_map([filter], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                (row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?),
            ))
        })?;
        for row in rows {
            let (district, batch, committed) = row?;
            let known = districts.entry(district).or_default().1.entry(batch);
            known.or_default().committed = Some(committed);
        }
    }
    {
        let mut stmt = conn.prepare(
            "SELECT district, batch, manifest_hash, pages, bytes, MAX(offered_at) FROM offers
             WHERE ?1 = '' OR district = ?1 GROUP BY district, batch",
        )?;
        let rows = stmt.query_map([filter], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                (row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?),
            ))
        })?;
        for row in rows {
            let (district, batch, offer) = row?;
            let known = districts.entry(district).or_default().1.entry(batch);
            known.or_default().offer = Some(offer);
        }
    }
    {
        let mut stmt = conn.prepare(
            "SELECT district, batch, state, manifest_hash, pages, bytes, last_error, state_since,
                    reported_at
             FROM edge_reports WHERE ?1 = '' OR district = ?1",
        )?;
        let rows = stmt.query_map([filter], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                EdgeRow {
                    state: row.get(2)?,
                    manifest_hash: row.get(3)?,
                    pages: row.get(4)?,
                    bytes: row.get(5)?,
                    last_error: row.get(6)?,
                    state_since: row.get(7)?,
                    reported_at: row.get(8)?,
                },
            ))
        })?;
        for row in rows {
            let (district, batch, edge) = row?;
            let known = districts.entry(district).or_default().1.entry(batch);
            known.or_default().edge = Some(edge);
        }
    }

    let mut reports = Vec::with_capacity(districts.len());
    for (district, (nodes, batches)) in districts {
        let last_contact = nodes
            .iter()
            .filter(|n| !n.revoked)
            .filter_map(|n| n.last_contact.clone())
            .max();
        let live_counts = live.remove(&district).unwrap_or_default();
        // A district known only by its street offices' live uploads has no
        // edge to lose contact with.
        let edgeless = nodes.is_empty() && live_counts.total() > 0;
        let stale = !edgeless && last_contact.as_ref().is_none_or(|at| *at < stale_cutoff);
        let mut counts = Counts::default();
        let mut rows = Vec::with_capacity(batches.len());
        for (batch, known) in batches {
            let row = classify(conn, batch, known, &stale_cutoff, stale)?;
            match row.state {
                ReconcileState::Queued => counts.queued += 1,
                ReconcileState::InFlight => counts.in_flight += 1,
                ReconcileState::Archived => counts.archived += 1,
                ReconcileState::Divergent => counts.divergent += 1,
            }
            rows.push(row);
        }
        let name = conn
            .query_row(
                "SELECT name FROM orgs WHERE code = ?1",
                [&district],
                |row| row.get(0),
            )
            .optional()?;
        reports.push(DistrictReport {
            live: live_counts,
            name,
            district,
            nodes,
            last_contact,
            stale,
            counts,
            batches: rows,
        });
    }
    Ok(Reconciliation {
        generated_at: store::now(),
        stale_after_hours: stale_after.as_secs() / 3600,
        stale_after_seconds: stale_after.as_secs(),
        districts: reports,
    })
}

fn classify(
    conn: &Connection,
    batch: String,
    known: Known,
    stale_cutoff: &str,
    district_stale: bool,
) -> Result<BatchReport, StoreError> {
    let edge = known.edge.as_ref();
    let edge_hash = edge.and_then(|e| e.manifest_hash.clone());
    let edge_state = edge.map(|e| e.state.as_str());
    let last_error = edge.and_then(|e| e.last_error.clone());
    let mut report = BatchReport {
        batch,
        state: ReconcileState::Queued,
        edge_state: edge_state.map(str::to_owned),
        edge_manifest_hash: edge_hash.clone(),
        hub_manifest_hash: None,
        pages: edge.map(|e| e.pages),
        bytes: edge.map(|e| e.bytes),
        committed_at: None,
        offered_at: None,
        missing_blobs: None,
        reported_at: edge.map(|e| e.reported_at.clone()),
        edge_state_since: edge.map(|e| e.state_since.clone()),
        last_error: last_error.clone(),
        advice: None,
        advice_code: None,
    };
    let advice = if let Some((hash, pages, bytes, committed_at)) = known.committed {
        let divergent = edge_hash.as_ref().is_some_and(|e| *e != hash);
        report.hub_manifest_hash = Some(hash);
        report.pages = Some(pages);
        report.bytes = Some(bytes);
        report.committed_at = Some(committed_at);
        if divergent {
            report.state = ReconcileState::Divergent;
            Some(Advice::Divergent)
        } else {
            report.state = ReconcileState::Archived;
            None
        }
    } else if known.offer.is_some() || edge_state == Some("syncing") {
        report.state = ReconcileState::InFlight;
        let mut since = edge.map(|e| e.state_since.clone());
        if let Some((hash, pages, bytes, offered_at)) = known.offer {
            report.missing_blobs = Some(archive::missing_count(conn, &hash)?);
            report.hub_manifest_hash = Some(hash);
            report.pages = Some(pages);
            report.bytes = Some(bytes);
            since = Some(offered_at.clone());
            report.offered_at = Some(offered_at);
        }
        if last_error.is_some() {
            Some(Advice::EdgeError)
        } else if since.is_some_and(|at| *at < *stale_cutoff) {
            Some(Advice::InFlightLong)
        } else {
            None
        }
    } else if edge_state == Some("archived") {
        report.state = ReconcileState::Divergent;
        Some(Advice::MissingAtHub)
    } else {
        report.state = ReconcileState::Queued;
        let long = edge.is_some_and(|e| *e.state_since < *stale_cutoff);
        if last_error.is_some() {
            Some(Advice::EdgeError)
        } else if long || district_stale {
            Some(Advice::QueuedLong)
        } else {
            None
        }
    };
    report.advice = advice.map(AdviceText);
    report.advice_code = advice;
    Ok(report)
}
