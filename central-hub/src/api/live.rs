//! The live business files of street offices (`/api/v1/live`), for the
//! clerk's page and for business systems (系统接口) with an API token:
//!
//! - `PUT /api/v1/live/{number}`: register a transaction or update its
//!   metadata (person, employer, business type, date; the organisation when
//!   it is new);
//! - `GET /api/v1/live/{number}`: the file with its pages and their links;
//! - `GET /api/v1/live?state=…`: the files in the caller's scope (the
//!   reviewers' queue is `state=submitted`);
//! - `POST …/submit`, `…/approve`, `…/return` (with a reason): the review;
//! - `DELETE …/pages/{page}`, `PUT …/order`: the clerk fixes the pages
//!   before handing the file in;
//! - `GET …/pages/{page}[/view|/thumbnail]`: the page images (see
//!   `pages.rs`).
//!
//! Scope and roles as in `live.rs`; a file outside the caller's scope is
//! the same 404 as none. Every change is audited under the file's number.
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use dangan_sync::tls::PeerAddr;
use serde::{Deserialize, Serialize};

use super::{ApiError, Audit, Body as JsonBody, Caller};
use crate::audit::Outcome;
use crate::backend::HubBackend;
use crate::close;
use crate::live::{self, LiveFile, LivePage, Metadata, MetadataError, Step, StepError};
use crate::store::StoreError;
use crate::users::Role;
use crate::web::segment;
use crate::webhooks;

/// A live page with the URLs of its images.
#[derive(Debug, Serialize)]
struct PageView {
    #[serde(flatten)]
    page: LivePage,
    image: String,
    view: String,
    thumbnail: String,
}

/// A live file as the API shows it: its pages with links.
#[derive(Debug, Serialize)]
struct FileView {
    #[serde(flatten)]
    file: LiveFile,
}

fn with_links(mut file: LiveFile) -> serde_json::Value {
    let base = format!("/api/v1/live/{}/pages", segment(&file.business_number));
    let pages: Vec<PageView> = std::mem::take(&mut file.pages)
        .into_iter()
        .map(|page| {
            let image = format!("{base}/{}", page.id);
            PageView {
                view: format!("{image}/view"),
                thumbnail: format!("{image}/thumbnail"),
                image,
                page,
            }
        })
        .collect();
    let mut value = serde_json::to_value(FileView { file }).unwrap_or_default();
    value["pages"] = serde_json::to_value(pages).unwrap_or_default();
    value
}

impl From<MetadataError> for ApiError {
    fn from(err: MetadataError) -> Self {
        ApiError::malformed(err.to_string())
    }
}

impl From<StepError> for ApiError {
    fn from(err: StepError) -> Self {
        match err {
            StepError::NoReason => ApiError::malformed(err.to_string()),
            other => ApiError::new(StatusCode::CONFLICT, "wrong_state", other.to_string()),
        }
    }
}

/// Records `action` on live file `number` with its outcome.
fn record(
    conn: &rusqlite::Connection,
    caller: &Caller,
    address: &str,
    action: &str,
    number: &str,
    result: Outcome,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    Audit {
        actor: &caller.user.username,
        kind: caller.kind,
        address: Some(address),
        action,
        target: number,
    }
    .record(conn, result, detail)
}

/// The outcome of a refusal for the audit trail.
fn refusal(err: &ApiError) -> Outcome {
    if matches!(err.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) {
        Outcome::Denied
    } else {
        Outcome::Failed
    }
}

/// `PUT /api/v1/live/{number}`: registers the transaction or updates it.
pub(super) async fn register(
    State(backend): State<Arc<HubBackend>>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(number): Path<String>,
    JsonBody(metadata): JsonBody<Metadata>,
) -> Result<Response, ApiError> {
    let address = peer.0.ip().to_string();
    let (file, created) = backend
        .db()
        .run(move |conn| {
            let outcome = live::register(conn, &caller.user, &number, &metadata)
                .map_err(ApiError::from)
                .and_then(|checked| checked.map_err(ApiError::from));
            let detail = serde_json::json!({
                "person_id": metadata.person_id,
                "business_type": metadata.business_type,
                "date": metadata.date,
            });
            match outcome {
                Ok((file, created)) => {
                    let detail = serde_json::json!({ "created": created, "given": detail });
                    record(
                        conn,
                        &caller,
                        &address,
                        "live.register",
                        &number,
                        Outcome::Ok,
                        detail,
                    )?;
                    Ok((file, created))
                }
                Err(err) => {
                    let detail = serde_json::json!({ "reason": err.message, "given": detail });
                    record(
                        conn,
                        &caller,
                        &address,
                        "live.register",
                        &number,
                        refusal(&err),
                        detail,
                    )?;
                    Err(err)
                }
            }
        })
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(with_links(file))).into_response())
}

/// `GET /api/v1/live/{number}`: the file with its pages and their links.
pub(super) async fn show(
    State(backend): State<Arc<HubBackend>>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(number): Path<String>,
) -> Result<Response, ApiError> {
    let address = peer.0.ip().to_string();
    let file = backend
        .db()
        .run(move |conn| {
            let file = live::visible(conn, &caller.user, &number)?;
            let result = if file.is_some() {
                Outcome::Ok
            } else {
                Outcome::Denied
            };
            record(
                conn,
                &caller,
                &address,
                "live.view",
                &number,
                result,
                serde_json::json!({}),
            )?;
            file.ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no live business file {number}"),
                )
            })
        })
        .await?;
    Ok(axum::Json(with_links(file)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    state: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/v1/live`: live files in the caller's scope, newest first.
pub(super) async fn list(
    State(backend): State<Arc<HubBackend>>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    const STATES: [&str; 5] = ["open", "submitted", "returned", "approved", "archived"];
    if let Some(state) = &query.state
        && !STATES.contains(&state.as_str())
    {
        return Err(ApiError::malformed(format!(
            "state is one of {}, not {state:?}",
            STATES.join(", ")
        )));
    }
    let limit = query.limit.unwrap_or(200).clamp(1, 1000);
    let files = backend
        .db()
        .run(move |conn| {
            live::list(conn, &caller.user, query.state.as_deref(), limit).map_err(ApiError::from)
        })
        .await?;
    Ok(axum::Json(serde_json::json!({ "files": files })).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StepBody {
    /// Why the file is sent back (required for `return`).
    reason: Option<String>,
}

async fn step(
    backend: Arc<HubBackend>,
    caller: Caller,
    peer: PeerAddr,
    number: String,
    step: Step,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let address = peer.0.ip().to_string();
    let hooks = backend.config().webhooks.is_some();
    let file = backend
        .db()
        .run(move |conn| {
            // The step, its audit entry and its webhook event, or none.
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(StoreError::from)?;
            let outcome = live::take_step(&tx, &caller.user, &number, step, reason.as_deref())
                .map_err(ApiError::from)
                .and_then(|taken| taken.map_err(ApiError::from));
            let (result, detail) = match &outcome {
                Ok(file) => (
                    Outcome::Ok,
                    serde_json::json!({ "state": file.state, "reason": reason }),
                ),
                Err(err) => (refusal(err), serde_json::json!({ "reason": err.message })),
            };
            record(
                &tx,
                &caller,
                &address,
                step.action(),
                &number,
                result,
                detail,
            )?;
            if let Ok(file) = &outcome
                && step == Step::Approve
            {
                webhooks::enqueue(
                    &tx,
                    hooks,
                    webhooks::Event::Accepted,
                    &number,
                    serde_json::json!({
                        "organisation": file.organisation,
                        "pages": file.pages.len(),
                        "approved_by": caller.user.username,
                    }),
                )?;
            }
            tx.commit().map_err(StoreError::from)?;
            outcome
        })
        .await?;
    Ok(axum::Json(with_links(file)).into_response())
}

/// The route of a step without a body: `POST /api/v1/live/{number}/submit`
/// (the clerk hands the file in) or `…/approve` (a reviewer approves it).
pub(super) fn step_route(taken: Step) -> MethodRouter<Arc<HubBackend>> {
    post(
        move |State(backend): State<Arc<HubBackend>>,
              caller: Caller,
              ConnectInfo(peer): ConnectInfo<PeerAddr>,
              Path(number): Path<String>| async move {
            step(backend, caller, peer, number, taken, None).await
        },
    )
}

/// `POST /api/v1/live/{number}/return`: a reviewer sends it back.
pub(super) async fn send_back(
    State(backend): State<Arc<HubBackend>>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(number): Path<String>,
    JsonBody(body): JsonBody<StepBody>,
) -> Result<Response, ApiError> {
    step(backend, caller, peer, number, Step::Return, body.reason).await
}

/// `DELETE /api/v1/live/{number}/pages/{page}`: removes a page.
pub(super) async fn remove_page(
    State(backend): State<Arc<HubBackend>>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path((number, page)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    let address = peer.0.ip().to_string();
    backend
        .db()
        .run(move |conn| {
            let outcome =
                live::remove_page(conn, &caller.user, &number, page).map_err(ApiError::from);
            let detail = serde_json::json!({ "page": page });
            match outcome {
                Ok(true) => {
                    record(
                        conn,
                        &caller,
                        &address,
                        "live.page.remove",
                        &number,
                        Outcome::Ok,
                        detail,
                    )?;
                    Ok(())
                }
                Ok(false) => Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no page {page} in live business file {number}"),
                )),
                Err(err) => {
                    record(
                        conn,
                        &caller,
                        &address,
                        "live.page.remove",
                        &number,
                        refusal(&err),
                        detail,
                    )?;
                    Err(err)
                }
            }
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OrderBody {
    /// Every page id of the file, in the order wanted.
    pages: Vec<i64>,
}

/// `PUT /api/v1/live/{number}/order`: puts the pages in a new order.
pub(super) async fn reorder(
    State(backend): State<Arc<HubBackend>>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(number): Path<String>,
    JsonBody(body): JsonBody<OrderBody>,
) -> Result<Response, ApiError> {
    let address = peer.0.ip().to_string();
    let file = backend
        .db()
        .run(move |conn| {
            let outcome = live::reorder(conn, &caller.user, &number, &body.pages)
                .map_err(ApiError::from)
                .and_then(|done| done.map_err(ApiError::malformed));
            let detail = serde_json::json!({ "pages": body.pages });
            match outcome {
                Ok(()) => {
                    record(
                        conn,
                        &caller,
                        &address,
                        "live.reorder",
                        &number,
                        Outcome::Ok,
                        detail,
                    )?;
                }
                Err(err) => {
                    record(
                        conn,
                        &caller,
                        &address,
                        "live.reorder",
                        &number,
                        refusal(&err),
                        detail,
                    )?;
                    return Err(err);
                }
            }
            live::get(conn, &number)?.ok_or_else(|| ApiError::internal("the file vanished"))
        })
        .await?;
    Ok(axum::Json(with_links(file)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CloseBody {
    /// YYYY-MM, in the hub's `[live] time_zone`.
    month: String,
    /// Close despite unapproved files, for this reason.
    force: Option<String>,
    /// A system administrator may close one district only.
    district: Option<String>,
}

/// The district an archive administrator closes: their own (a street
/// office's), or every one for one of the city.
fn closing_district(
    conn: &rusqlite::Connection,
    caller: &Caller,
    asked: Option<String>,
) -> Result<Option<String>, ApiError> {
    match caller.user.role {
        Role::SystemAdmin => Ok(asked),
        Role::ArchiveAdmin => match live::district_of(conn, &caller.user.org) {
            Ok(district) => Ok(Some(district)),
            Err(live::LiveError::NotLocal(_)) => Ok(asked),
            Err(err) => Err(err.into()),
        },
        role => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} ({}) may not close a month: archive administrators do",
                caller.user.username,
                role.as_str()
            ),
        )),
    }
}

/// `POST /api/v1/closes`: the monthly close (月结归档) of the caller's
/// district (an archive administrator) or of every district.
pub(super) async fn close_month(
    State(backend): State<Arc<HubBackend>>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    JsonBody(body): JsonBody<CloseBody>,
) -> Result<Response, ApiError> {
    let address = peer.0.ip().to_string();
    let key = backend.signing_key();
    let hub_id = backend.hub_id().to_owned();
    let zone = backend.config().live.time_zone.clone();
    let hooks = backend.config().webhooks.is_some();
    let outcome = backend
        .db()
        .run(move |conn| {
            let district = closing_district(conn, &caller, body.district.clone())?;
            let request = close::CloseRequest {
                month: body.month.clone(),
                district: district.clone(),
                force: body.force.clone(),
                actor: caller.user.username.clone(),
            };
            let closed = close::close(conn, &key, &hub_id, &zone, &request, hooks);
            let (result, detail) = match &closed {
                Ok(report) => (
                    Outcome::Ok,
                    serde_json::json!({
                        "district": district,
                        "batches": report.batches,
                        "archived_files": report.archived_files,
                        "excluded": report.excluded.len(),
                        "forced": report.forced,
                    }),
                ),
                Err(err) => (
                    Outcome::Failed,
                    serde_json::json!({ "district": district, "reason": err.to_string() }),
                ),
            };
            record(
                conn,
                &caller,
                &address,
                "live.close",
                &body.month,
                result,
                detail,
            )?;
            Ok::<_, ApiError>(closed)
        })
        .await?;
    match outcome {
        Ok(report) => Ok(axum::Json(report).into_response()),
        Err(close::CloseError::Unapproved { month, unapproved }) => {
            let message = format!(
                "{month} has {} business files not approved yet; approve or send them back, or force the close with a reason",
                unapproved.len()
            );
            let body = serde_json::json!({
                "error": "unapproved",
                "message": message,
                "unapproved": unapproved,
            });
            Ok((StatusCode::CONFLICT, axum::Json(body)).into_response())
        }
        Err(err @ (close::CloseError::BadMonth(_) | close::CloseError::NotEnded(..))) => {
            Err(ApiError::malformed(err.to_string()))
        }
        Err(err) => Err(ApiError::internal(err.to_string())),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportQuery {
    district: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// `GET /api/v1/closes/{month}`: the month's latest close report, as JSON
/// or CSV.
pub(super) async fn close_report(
    State(backend): State<Arc<HubBackend>>,
    caller: Caller,
    Path(month): Path<String>,
    Query(query): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::malformed(format!(
                "format is json or csv, not {other:?}"
            )));
        }
    };
    let report = backend
        .db()
        .run(move |conn| {
            let district = closing_district(conn, &caller, query.district)?;
            close::last_report(conn, &month, district.as_deref())
                .map_err(ApiError::from)?
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        format!("{month} has not been closed"),
                    )
                })
        })
        .await?;
    if csv {
        let name = format!("close-{}.csv", report.month);
        return Ok((
            [
                (
                    axum::http::header::CONTENT_TYPE,
                    "text/csv; charset=utf-8".to_owned(),
                ),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}\""),
                ),
            ],
            close::report_csv(&report),
        )
            .into_response());
    }
    Ok(axum::Json(report).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LinkBody {
    /// How long the link holds, in minutes (default 15, at most a day).
    minutes: Option<u32>,
}

/// `POST /api/v1/live/{number}/viewer-link`: a short-lived link to the
/// file's pages that a business system can embed (`/view/{token}`).
pub(super) async fn viewer_link(
    State(backend): State<Arc<HubBackend>>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(number): Path<String>,
    JsonBody(body): JsonBody<LinkBody>,
) -> Result<Response, ApiError> {
    let address = peer.0.ip().to_string();
    let minutes = body.minutes.unwrap_or(15);
    let (token, expires_at) = backend
        .db()
        .run(move |conn| {
            let made = live::create_viewer_link(conn, &caller.user, &number, minutes)
                .map_err(ApiError::from);
            let (result, detail) = match &made {
                Ok((_, expires_at)) => {
                    (Outcome::Ok, serde_json::json!({ "expires_at": expires_at }))
                }
                Err(err) => (refusal(err), serde_json::json!({ "reason": err.message })),
            };
            record(
                conn,
                &caller,
                &address,
                "live.viewer_link",
                &number,
                result,
                detail,
            )?;
            made
        })
        .await?;
    let url = format!("/view/{token}");
    Ok((
        StatusCode::CREATED,
        axum::Json(serde_json::json!({ "url": url, "expires_at": expires_at })),
    )
        .into_response())
}
