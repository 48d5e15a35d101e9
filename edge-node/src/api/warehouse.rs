//! The warehouse (库房管理) under `/api/v1/warehouse`: locations and the
//! room grid, shelving (one box or a CSV), volumes and the business files
//! bound into them, label sheets as PDF, loans and inventory checks. The
//! rules are [`crate::warehouse`]'s; errors come in the language the
//! caller's `Accept-Language` asks for (Chinese for `zh…`, else English),
//! so the keyboard-wedge screens can show them to operators as they are.
use axum::extract::{FromRequestParts, Path as UrlPath, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiState, Body, Caller};
use crate::labels::{self, Layout};
use crate::lifecycle::Role;
use crate::node::Node;
use crate::text::Lang;
use crate::warehouse::{
    self as wh, LoanFilter, LoanStep, NewLoan, NewLocation, NewVolume, ResolveAction,
    WarehouseError,
};

/// The caller's language for error messages, from `Accept-Language`.
pub struct ApiLang(pub Lang);

impl<S: Send + Sync> FromRequestParts<S> for ApiLang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let zh = parts
            .headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("zh"));
        Ok(ApiLang(if zh { Lang::Zh } else { Lang::En }))
    }
}

/// A warehouse error as a 4xx (or 500) in `lang`.
pub fn error(err: WarehouseError, lang: Lang) -> ApiError {
    use WarehouseError as E;
    let message = err.text(lang);
    match err {
        E::Unknown(_) | E::NoSuchLoan(_) | E::NoSuchCheck(_) | E::NoSuchFile { .. } => {
            ApiError::not_found(message)
        }
        E::Exists(_)
        | E::Full { .. }
        | E::AlreadyOnLoan { .. }
        | E::LoanState { .. }
        | E::CheckFinished(_)
        | E::BatchNotAccepted { .. } => ApiError::conflict(message),
        E::Forbidden { .. } => ApiError::forbidden(message),
        E::Store(err) => err.into(),
        _ => ApiError::invalid(message),
    }
}

fn today(node: &Node) -> String {
    wh::today(&node.config.sync.time_zone)
}

fn require(caller: &Caller, roles: &[Role], what: &str, lang: Lang) -> Result<(), ApiError> {
    caller.require(roles, what).map_err(|err| {
        if lang == Lang::Zh {
            ApiError::forbidden(format!(
                "{} 无权{}",
                caller.user.username,
                wh::forbidden_zh(what)
            ))
        } else {
            err
        }
    })
}

/// Runs warehouse work on the database with errors in `lang`.
async fn run<T: Send + 'static>(
    state: &ApiState,
    lang: Lang,
    work: impl FnOnce(&Node, &mut Connection) -> Result<T, WarehouseError> + Send + 'static,
) -> Result<T, ApiError> {
    state
        .db(move |node, store| work(node, store.conn_mut()).map_err(|err| error(err, lang)))
        .await
}

fn json<T: Serialize>(value: T) -> Response {
    axum::Json(value).into_response()
}

// ---------------------------------------------------------------- locations

pub async fn location_list(
    State(state): State<ApiState>,
    _caller: Caller,
    ApiLang(lang): ApiLang,
) -> Result<Response, ApiError> {
    Ok(json(
        run(&state, lang, |_, conn| wh::locations(conn)).await?,
    ))
}

pub async fn location_create(
    State(state): State<ApiState>,
    caller: Caller,
    ApiLang(lang): ApiLang,
    Body(mut new): Body<NewLocation>,
) -> Result<Response, ApiError> {
    // Boxes are everyday work; the tree above them is the admin's.
    if new.kind != "box" {
        require(&caller, &[], "set up warehouse locations", lang)?;
    } else {
        require(&caller, &[Role::Operator], "shelve boxes", lang)?;
    }
    new.code = new.code.trim().to_uppercase();
    let actor = caller.actor();
    let created = run(&state, lang, move |_, conn| {
        wh::create_location(conn, &new, &actor)
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

/// A location with its place, what it holds and its history.
#[derive(Serialize)]
pub struct LocationDetail {
    pub location: wh::Location,
    pub path: Vec<wh::Location>,
    pub children: Vec<wh::Location>,
    pub volumes: Vec<wh::Volume>,
    pub loan: Option<wh::Loan>,
    pub history: Vec<dangan_sync::wire::WarehouseEvent>,
}

pub fn location_detail(
    conn: &Connection,
    code: &str,
    today: &str,
) -> Result<LocationDetail, WarehouseError> {
    let location = wh::location(conn, code)?.ok_or_else(|| WarehouseError::Unknown(code.into()))?;
    let children = wh::locations(conn)?
        .into_iter()
        .filter(|l| l.parent.as_deref() == Some(code))
        .collect();
    let volumes = if location.kind == "box" {
        wh::volumes(conn, Some(code))?
    } else {
        Vec::new()
    };
    let loan = wh::loans(conn, LoanFilter::Open, Some(code), today)?
        .into_iter()
        .next();
    Ok(LocationDetail {
        path: wh::path(conn, code)?,
        history: wh::history(conn, code)?,
        location,
        children,
        volumes,
        loan,
    })
}

pub async fn location_show(
    State(state): State<ApiState>,
    _caller: Caller,
    ApiLang(lang): ApiLang,
    UrlPath(code): UrlPath<String>,
) -> Result<Response, ApiError> {
    let detail = run(&state, lang, move |node, conn| {
        location_detail(conn, &code, &today(node))
    })
    .await?;
    Ok(json(detail))
}

pub async fn room_grid(
    State(state): State<ApiState>,
    _caller: Caller,
    ApiLang(lang): ApiLang,
    UrlPath(code): UrlPath<String>,
) -> Result<Response, ApiError> {
    Ok(json(
        run(&state, lang, move |_, conn| wh::room_grid(conn, &code)).await?,
    ))
}

#[derive(Deserialize)]
pub struct Shelving {
    #[serde(rename = "box")]
    pub box_code: String,
    pub shelf: String,
}

pub async fn shelve(
    State(state): State<ApiState>,
    caller: Caller,
    ApiLang(lang): ApiLang,
    Body(body): Body<Shelving>,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Operator], "shelve boxes", lang)?;
    let actor = caller.actor();
    let (box_code, shelf) = (
        body.box_code.trim().to_uppercase(),
        body.shelf.trim().to_uppercase(),
    );
    let moved = run(&state, lang, move |_, conn| {
        let moved = wh::shelve(conn, &box_code, &shelf, &actor)?;
        let location = wh::location(conn, &box_code)?;
        Ok(serde_json::json!({ "moved": moved, "box": location, "path": wh::path(conn, &box_code)? }))
    })
    .await?;
    Ok(json(moved))
}

pub async fn shelve_csv(
    State(state): State<ApiState>,
    caller: Caller,
    ApiLang(lang): ApiLang,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Operator], "shelve boxes", lang)?;
    let text = String::from_utf8(body.to_vec()).map_err(|_| {
        ApiError::invalid(lang.pick("CSV 须为 UTF-8 文本", "the CSV must be UTF-8 text"))
    })?;
    let actor = caller.actor();
    let moved = run(&state, lang, move |_, conn| {
        wh::shelve_csv(conn, &text, &actor)
    })
    .await?;
    Ok(json(serde_json::json!({ "moved": moved })))
}

// ------------------------------------------------------------------ volumes

#[derive(Deserialize)]
pub struct VolumeQuery {
    #[serde(rename = "box")]
    pub box_code: Option<String>,
}

pub async fn volume_list(
    State(state): State<ApiState>,
    _caller: Caller,
    ApiLang(lang): ApiLang,
    Query(query): Query<VolumeQuery>,
) -> Result<Response, ApiError> {
    Ok(json(
        run(&state, lang, move |_, conn| {
            wh::volumes(conn, query.box_code.as_deref())
        })
        .await?,
    ))
}

pub async fn volume_create(
    State(state): State<ApiState>,
    caller: Caller,
    ApiLang(lang): ApiLang,
    Body(mut new): Body<NewVolume>,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Operator], "manage volumes", lang)?;
    new.code = new.code.trim().to_uppercase();
    new.box_code = new.box_code.map(|b| b.trim().to_uppercase());
    let actor = caller.actor();
    let created = run(&state, lang, move |_, conn| {
        wh::create_volume(conn, &new, &actor)
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

/// A business file bound into a volume.
#[derive(Serialize)]
pub struct VolumeFile {
    pub batch: String,
    pub file: u32,
    pub business_number: Option<String>,
    pub person_name: Option<String>,
    pub date: Option<String>,
}

#[derive(Serialize)]
pub struct VolumeDetail {
    pub volume: wh::Volume,
    pub path: Vec<wh::Location>,
    pub loan: Option<wh::Loan>,
    pub files: Vec<VolumeFile>,
    pub loans: Vec<wh::Loan>,
    pub history: Vec<dangan_sync::wire::WarehouseEvent>,
}

pub fn volume_detail(
    conn: &Connection,
    code: &str,
    today: &str,
) -> Result<VolumeDetail, WarehouseError> {
    let original = wh::original_of_volume(conn, code, today)?
        .ok_or_else(|| WarehouseError::Unknown(code.into()))?;
    let mut stmt = conn.prepare(
        "SELECT b.name, f.seq, f.business_number, f.person_name, f.business_date
         FROM volume_files vf JOIN volumes v ON v.id = vf.volume_id
         JOIN business_files f ON f.id = vf.business_file_id JOIN batches b ON b.id = f.batch_id
         WHERE v.code = ?1 ORDER BY f.business_date, b.name, f.seq",
    )?;
    let files = stmt
        .query_map([code], |row| {
            Ok(VolumeFile {
                batch: row.get(0)?,
                file: row.get(1)?,
                business_number: row.get(2)?,
                person_name: row.get(3)?,
                date: row.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(VolumeDetail {
        loans: wh::loans(conn, LoanFilter::All, Some(code), today)?,
        history: wh::history(conn, code)?,
        path: original.path,
        loan: original.loan,
        volume: original.volume,
        files,
    })
}

pub async fn volume_show(
    State(state): State<ApiState>,
    _caller: Caller,
    ApiLang(lang): ApiLang,
    UrlPath(code): UrlPath<String>,
) -> Result<Response, ApiError> {
    Ok(json(
        run(&state, lang, move |node, conn| {
            volume_detail(conn, &code, &today(node))
        })
        .await?,
    ))
}

#[derive(Deserialize)]
pub struct BoxVolume {
    #[serde(rename = "box")]
    pub box_code: String,
}

pub async fn volume_box(
    State(state): State<ApiState>,
    caller: Caller,
    ApiLang(lang): ApiLang,
    UrlPath(code): UrlPath<String>,
    Body(body): Body<BoxVolume>,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Operator], "manage volumes", lang)?;
    let actor = caller.actor();
    let moved = run(&state, lang, move |_, conn| {
        wh::box_volume(conn, &code, &body.box_code.trim().to_uppercase(), &actor)
    })
    .await?;
    Ok(json(serde_json::json!({ "moved": moved })))
}

#[derive(Deserialize)]
pub struct FileRef {
    pub batch: String,
    pub file: u32,
}

pub async fn volume_file_add(
    State(state): State<ApiState>,
    caller: Caller,
    ApiLang(lang): ApiLang,
    UrlPath(code): UrlPath<String>,
    Body(body): Body<FileRef>,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Operator], "manage volumes", lang)?;
    let actor = caller.actor();
    let detail = run(&state, lang, move |node, conn| {
        wh::file_into_volume(conn, &body.batch, body.file, Some(&code), &actor)?;
        volume_detail(conn, &code, &today(node))
    })
    .await?;
    Ok(json(detail))
}

pub async fn volume_file_remove(
    State(state): State<ApiState>,
    caller: Caller,
    ApiLang(lang): ApiLang,
    UrlPath((code, batch, file)): UrlPath<(String, String, u32)>,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Operator], "manage volumes", lang)?;
    let actor = caller.actor();
    let detail = run(&state, lang, move |node, conn| {
        let bound: Option<String> = conn
            .query_row(
                "SELECT v.code FROM volume_files vf JOIN volumes v ON v.id = vf.volume_id
                 JOIN business_files f ON f.id = vf.business_file_id
                 JOIN batches b ON b.id = f.batch_id WHERE b.name = ?1 AND f.seq = ?2",
                rusqlite::params![batch, file],
                |row| row.get(0),
            )
            .optional()?;
        if bound.as_deref() != Some(code.as_str()) {
            return Err(WarehouseError::NoSuchFile { batch, file });
        }
        wh::file_into_volume(conn, &batch, file, None, &actor)?;
        volume_detail(conn, &code, &today(node))
    })
    .await?;
    Ok(json(detail))
}

// ------------------------------------------------------------------- labels

#[derive(Deserialize)]
pub struct LabelRequest {
    /// Codes of boxes, volumes or locations, in print order.
    pub codes: Vec<String>,
    /// Positions already used on the first sheet.
    #[serde(default)]
    pub start: usize,
}

pub async fn label_sheet(
    State(state): State<ApiState>,
    _caller: Caller,
    ApiLang(lang): ApiLang,
    Body(body): Body<LabelRequest>,
) -> Result<Response, ApiError> {
    if body.codes.is_empty() || body.codes.len() > 2000 {
        return Err(ApiError::invalid(lang.pick(
            "请给出 1 至 2000 个要打印的编号",
            "give between 1 and 2000 codes to print",
        )));
    }
    let pdf = state
        .db(move |node, store| {
            let conn = store.conn();
            let mut list = Vec::new();
            for code in &body.codes {
                let code = code.trim().to_uppercase();
                if code.is_empty() {
                    continue;
                }
                list.push(wh::label_for(conn, &code).map_err(|err| error(err, lang))?);
            }
            let settings = &node.config.labels;
            let font = labels::font(&settings.font, settings.font_index)
                .map_err(|err| ApiError::internal(err.to_string()))?;
            labels::render(&list, &Layout::default(), &font, body.start)
                .map_err(|err| ApiError::invalid(err.to_string()))
        })
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf"),
            (
                header::CONTENT_DISPOSITION,
                "inline; filename=\"labels.pdf\"",
            ),
        ],
        pdf,
    )
        .into_response())
}

// -------------------------------------------------------------------- loans

#[derive(Deserialize)]
pub struct LoanQuery {
    #[serde(default)]
    pub filter: LoanFilter,
    pub item: Option<String>,
}

pub async fn loan_list(
    State(state): State<ApiState>,
    _caller: Caller,
    ApiLang(lang): ApiLang,
    Query(query): Query<LoanQuery>,
) -> Result<Response, ApiError> {
    Ok(json(
        run(&state, lang, move |node, conn| {
            wh::loans(conn, query.filter, query.item.as_deref(), &today(node))
        })
        .await?,
    ))
}

pub async fn loan_request(
    State(state): State<ApiState>,
    caller: Caller,
    ApiLang(lang): ApiLang,
    Body(new): Body<NewLoan>,
) -> Result<Response, ApiError> {
    let actor = caller.actor();
    let loan = run(&state, lang, move |node, conn| {
        wh::request_loan(conn, &new, &actor, &today(node))
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(loan)).into_response())
}

#[derive(Deserialize)]
pub struct StepBody {
    pub step: LoanStep,
    #[serde(default)]
    pub note: Option<String>,
}

pub async fn loan_step(
    State(state): State<ApiState>,
    caller: Caller,
    ApiLang(lang): ApiLang,
    UrlPath(id): UrlPath<i64>,
    Body(body): Body<StepBody>,
) -> Result<Response, ApiError> {
    let actor = caller.actor();
    let loan = run(&state, lang, move |node, conn| {
        wh::loan_step(
            conn,
            id,
            body.step,
            body.note.as_deref(),
            &actor,
            &today(node),
        )
    })
    .await?;
    Ok(json(loan))
}

// ------------------------------------------------------------------- checks

pub async fn check_list(
    State(state): State<ApiState>,
    _caller: Caller,
    ApiLang(lang): ApiLang,
) -> Result<Response, ApiError> {
    Ok(json(run(&state, lang, |_, conn| wh::checks(conn)).await?))
}

#[derive(Deserialize)]
pub struct NewCheck {
    pub root: String,
}

pub async fn check_start(
    State(state): State<ApiState>,
    caller: Caller,
    ApiLang(lang): ApiLang,
    Body(body): Body<NewCheck>,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Operator], "run inventory checks", lang)?;
    let actor = caller.actor();
    let check = run(&state, lang, move |_, conn| {
        wh::start_check(conn, &body.root.trim().to_uppercase(), &actor)
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(check)).into_response())
}

pub async fn check_show(
    State(state): State<ApiState>,
    _caller: Caller,
    ApiLang(lang): ApiLang,
    UrlPath(id): UrlPath<i64>,
) -> Result<Response, ApiError> {
    Ok(json(
        run(&state, lang, move |node, conn| {
            wh::check_report(conn, id, &today(node))
        })
        .await?,
    ))
}

#[derive(Deserialize)]
pub struct Scans {
    /// Codes in the order they were scanned (a handheld's file, one per line,
    /// is sent as this list).
    pub codes: Vec<String>,
}

pub async fn check_scan(
    State(state): State<ApiState>,
    caller: Caller,
    ApiLang(lang): ApiLang,
    UrlPath(id): UrlPath<i64>,
    Body(body): Body<Scans>,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Operator], "run inventory checks", lang)?;
    if body.codes.len() > 100_000 {
        return Err(ApiError::invalid("at most 100000 codes at once"));
    }
    let actor = caller.actor();
    let outcomes = run(&state, lang, move |_, conn| {
        wh::scan(conn, id, &body.codes, &actor)
    })
    .await?;
    Ok(json(outcomes))
}

#[derive(Deserialize)]
pub struct ResolveBody {
    pub item: String,
    pub action: ResolveAction,
    #[serde(default)]
    pub note: String,
}

pub async fn check_resolve(
    State(state): State<ApiState>,
    caller: Caller,
    ApiLang(lang): ApiLang,
    UrlPath(id): UrlPath<i64>,
    Body(body): Body<ResolveBody>,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Operator], "run inventory checks", lang)?;
    let actor = caller.actor();
    let report = run(&state, lang, move |node, conn| {
        wh::resolve(
            conn,
            id,
            &body.item,
            body.action,
            &body.note,
            &actor,
            &today(node),
        )
    })
    .await?;
    Ok(json(report))
}

pub async fn check_finish(
    State(state): State<ApiState>,
    caller: Caller,
    ApiLang(lang): ApiLang,
    UrlPath(id): UrlPath<i64>,
) -> Result<Response, ApiError> {
    require(&caller, &[Role::Operator], "run inventory checks", lang)?;
    let actor = caller.actor();
    let report = run(&state, lang, move |node, conn| {
        wh::finish_check(conn, id, &actor, &today(node))
    })
    .await?;
    Ok(json(report))
}

/// How far the hub has applied the warehouse feed.
pub async fn feed_status(
    State(state): State<ApiState>,
    _caller: Caller,
    ApiLang(lang): ApiLang,
) -> Result<Response, ApiError> {
    let status = run(&state, lang, |_, conn| {
        let (events, acked) = wh::feed_state(conn)?;
        Ok(serde_json::json!({ "feed": wh::feed_id(conn)?, "events": events, "acked": acked }))
    })
    .await?;
    Ok(json(status))
}
