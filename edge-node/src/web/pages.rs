//! The reading pages of the web UI and their small forms: login, language,
//! batch list, batch page (with uploads and rescans), page viewer, sync
//! status, search and the QC report.
use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    LANG_COOKIE, Viewer, batch_url, cookie, csrf_field, json_island, lang_code, layout,
    message_page, parse_lang, see_other, segment,
};
use crate::api::{self, ApiError, ApiState};
use crate::lifecycle::{self, BatchState, Role};
use crate::qc;
use crate::store::{BatchDetail, BatchSummary, Store};
use crate::template;
use crate::text::{Lang, code_label, state_label};
use crate::users;

/// A local redirect target: a path on this server, never another site.
fn local_target(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") => path.to_owned(),
        _ => "/".to_owned(),
    }
}

#[derive(Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
    error: Option<String>,
}

fn request_lang(headers: &axum::http::HeaderMap) -> Lang {
    cookie(headers, LANG_COOKIE)
        .and_then(|v| parse_lang(&v))
        .unwrap_or(Lang::Zh)
}

pub(super) async fn login_form(
    headers: axum::http::HeaderMap,
    Query(query): Query<NextQuery>,
) -> Markup {
    let l = request_lang(&headers);
    let next = local_target(query.next.as_deref());
    html! {
        (maud::DOCTYPE)
        html lang=(match l { Lang::Zh => "zh-CN", Lang::En => "en" }) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (l.pick("登录 · 档案数字化边缘节点", "Log in · Dangan edge")) }
                link rel="stylesheet" href=(super::asset_url("app.css"));
            }
            body {
                main.login {
                    h1 { (l.pick("档案数字化 · 边缘节点", "Dangan · edge node")) }
                    @if query.error.is_some() {
                        p.error role="alert" { (l.pick("用户名或密码错误，或该用户已停用。", "Wrong user name or password, or the user is disabled.")) }
                    }
                    form method="post" action="/login" {
                        input type="hidden" name="next" value=(next);
                        label { (l.pick("用户名", "User name")) input name="username" autocomplete="username" required autofocus; }
                        label { (l.pick("密码", "Password")) input name="password" type="password" autocomplete="current-password" required; }
                        button type="submit" { (l.pick("登录", "Log in")) }
                    }
                    form method="post" action="/lang" {
                        input type="hidden" name="lang" value=(match l { Lang::Zh => "en", Lang::En => "zh" });
                        input type="hidden" name="next" value=(format!("/login?next={}", serde_urlencoded::to_string([("", next.as_str())]).unwrap_or_default().trim_start_matches('=')));
                        button #lang-switch.link type="submit" { (l.pick("English", "中文")) }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

pub(super) async fn login(State(state): State<ApiState>, Form(form): Form<LoginForm>) -> Response {
    let next = local_target(form.next.as_deref());
    let username = form.username.trim().to_owned();
    let outcome = state
        .db(move |_, store| {
            let Some(user) = users::authenticate(store.conn(), &username, &form.password)? else {
                return Ok(None);
            };
            let token = users::create_session(store.conn(), &user)?;
            let lang = users::language(store.conn(), user.id)?;
            tracing::info!(user = %user.username, "logged in (web)");
            Ok(Some((token, lang)))
        })
        .await;
    match outcome {
        Ok(Some((token, lang))) => {
            let mut response = see_other(&next);
            let session = state.cookie(api::COOKIE, &token, users::SESSION_HOURS * 3600, true);
            append_cookie(&mut response, &session);
            if let Some(lang) = lang {
                append_cookie(
                    &mut response,
                    &state.cookie(LANG_COOKIE, &lang, 365 * 86400, false),
                );
            }
            response
        }
        Ok(None) => {
            let query = serde_urlencoded::to_string([("next", next.as_str()), ("error", "1")])
                .unwrap_or_default();
            see_other(&format!("/login?{query}"))
        }
        Err(err) => err.into_response(),
    }
}

fn append_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

pub(super) async fn logout(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Some(token) = cookie(&headers, api::COOKIE) {
        let ended = state
            .db(move |_, store| Ok(users::end_session(store.conn(), &token)?))
            .await;
        if let Err(err) = ended {
            return err.into_response();
        }
    }
    let mut response = see_other("/login");
    append_cookie(&mut response, &state.cookie(api::COOKIE, "", 0, true));
    response
}

#[derive(Deserialize)]
pub(super) struct LangForm {
    lang: String,
    next: Option<String>,
}

/// Switches the language: remembered for the user (when logged in) and in
/// a cookie (for the login page).
pub(super) async fn set_lang(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    Form(form): Form<LangForm>,
) -> Response {
    let Some(lang) = parse_lang(&form.lang) else {
        return message_page(
            request_lang(&headers),
            StatusCode::BAD_REQUEST,
            "lang must be zh or en",
        );
    };
    if let Some(token) = cookie(&headers, api::COOKIE) {
        let code = lang_code(lang);
        let saved = state
            .db(move |_, store| {
                if let Some(user) = users::session_user(store.conn(), &token)? {
                    users::set_language(store.conn(), user.id, code)?;
                }
                Ok(())
            })
            .await;
        if let Err(err) = saved {
            return err.into_response();
        }
    }
    let back = form.next.clone().or_else(|| {
        headers
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(|r| r.find("://").map(|i| &r[i + 3..]))
            .and_then(|rest| rest.find('/').map(|i| rest[i..].to_owned()))
    });
    let mut response = see_other(&local_target(back.as_deref()));
    append_cookie(
        &mut response,
        &state.cookie(LANG_COOKIE, lang_code(lang), 365 * 86400, false),
    );
    response
}

/// How far along its way to the archive a batch is, in percent.
fn progress(state: &str) -> u32 {
    let step = match state {
        "open" => 1,
        "scanned" => 2,
        "in_qc" | "rework" => 3,
        "accepted" => 4,
        "syncing" => 5,
        "archived" => 6,
        _ => 0,
    };
    step * 100 / 6
}

/// A batch's place in the sync queue.
#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct SyncInfo {
    attempts: i64,
    next_attempt_at: Option<String>,
    error: Option<String>,
    archived_at: Option<String>,
    error_code: Option<String>,
}

fn sync_infos(store: &Store) -> Result<HashMap<String, SyncInfo>, ApiError> {
    let mut statement = store.conn().prepare(
        "SELECT name, sync_attempts, next_attempt_at, sync_error, archived_at, sync_error_code
         FROM batches
         WHERE state IN ('accepted', 'syncing', 'archived')",
    )?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            SyncInfo {
                attempts: row.get(1)?,
                next_attempt_at: row.get(2)?,
                error: row.get(3)?,
                archived_at: row.get(4)?,
                error_code: row.get(5)?,
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A sync failure for people: what happened, in their language, then the
/// technical message.
fn sync_error_text(l: Lang, code: Option<&str>, error: &str) -> String {
    match code {
        Some(code) => format!("{}: {error}", crate::sync::failure_label(l, code)),
        None => error.to_owned(),
    }
}

/// What the sync column says: queued, in flight, archived, or the last error.
fn sync_cell(l: Lang, state: &str, info: Option<&SyncInfo>) -> Markup {
    html! {
        @match (state, info) {
            ("archived", Some(info)) => span.sync.archived title=[info.archived_at.as_deref()] { (l.pick("已归档", "archived")) },
            ("syncing", Some(info)) => {
                span.sync.inflight { (l.pick("传输中", "in flight")) }
                @if let Some(error) = &info.error { " " span.sync.error title=(error) { (l.pick("上次出错", "last error")) ": " (sync_error_text(l, info.error_code.as_deref(), error)) } }
            }
            ("accepted", Some(info)) => {
                span.sync.queued { (l.pick("排队中", "queued")) }
                @if let Some(error) = &info.error { " " span.sync.error title=(error) { (l.pick("上次出错", "last error")) ": " (sync_error_text(l, info.error_code.as_deref(), error)) } }
                @if info.attempts > 0 { " " small { (l.pick("已尝试", "attempts")) " " (info.attempts) } }
            }
            _ => span.muted { "—" },
        }
    }
}

/// Batches on one page of the batch list. A thousand rows take a browser
/// on the archive room's PCs half a second to lay out; a hundred, well
/// under the 200 ms an operator notices.
const LIST_PAGE: usize = 100;

#[derive(Deserialize)]
pub(super) struct ListQuery {
    state: Option<String>,
    page: Option<usize>,
}

pub(super) async fn batch_list(
    State(state): State<ApiState>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> Response {
    let loaded = state
        .db(|node, store| {
            let batches = store.batches()?;
            let sync = sync_infos(store)?;
            let templates = template::list(store.conn())?;
            let today = crate::warehouse::today(&node.config.sync.time_zone);
            let overdue = crate::warehouse::loans(
                store.conn(),
                crate::warehouse::LoanFilter::Overdue,
                None,
                &today,
            )
            .map_err(|err| crate::api::warehouse::error(err, Lang::En))?;
            Ok((batches, sync, templates, overdue))
        })
        .await;
    let (mut batches, sync, templates, overdue) = match loaded {
        Ok(loaded) => loaded,
        Err(err) => return viewer.fail(err),
    };
    // Most recently active first: what the room is working on now.
    batches.sort_by(|a, b| {
        b.batch
            .updated_at
            .cmp(&a.batch.updated_at)
            .then(b.batch.id.cmp(&a.batch.id))
    });
    let total = batches.len();
    let mut by_state: HashMap<&str, usize> = HashMap::new();
    for b in &batches {
        *by_state.entry(b.batch.state.as_str()).or_default() += 1;
    }
    let filter = query.state.as_deref().filter(|s| by_state.contains_key(s));
    let shown: Vec<&BatchSummary> = batches
        .iter()
        .filter(|b| filter.is_none_or(|s| b.batch.state == s))
        .collect();
    let pages = shown.len().div_ceil(LIST_PAGE).max(1);
    let page = query.page.unwrap_or(1).clamp(1, pages);
    let shown = &shown[(page - 1) * LIST_PAGE..(page * LIST_PAGE).min(shown.len())];
    let link = |state: Option<&str>, page: usize| {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(state) = state {
            pairs.push(("state", state.to_owned()));
        }
        if page > 1 {
            pairs.push(("page", page.to_string()));
        }
        format!(
            "/?{}",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    };
    let l = viewer.lang;
    let title = l.pick("批次", "Batches");
    let body = html! {
        (super::warehouse::reminders(l, &overdue))
        h1 { (title) " " small #batch-total.muted { (total) } }
        nav.tabs {
            a.current[filter.is_none()] href="/" { (l.pick("全部", "All")) " " (total) }
            @for s in BatchState::ALL {
                @if let Some(n) = by_state.get(s.as_str()) {
                    a.current[filter == Some(s.as_str())] href=(link(Some(s.as_str()), 1)) data-state=(s.as_str()) { (state_label(l, s.as_str())) " " (n) }
                }
            }
        }
        @if viewer.may(&[Role::Operator]) {
            form.new-batch method="post" action="/batches" {
                (csrf_field(&viewer))
                label { (l.pick("新批次名称", "New batch name")) input name="name" required maxlength="128"; }
                label { (l.pick("业务类型", "Business type"))
                    select name="business_type" {
                        option value="" { (l.pick("（不指定）", "(none)")) }
                        @for t in &templates {
                            option value=(t.template.business_type) { (t.template.business_type) " " (t.template.name) }
                        }
                    }
                }
                button type="submit" { (l.pick("新建批次", "Open batch")) }
            }
        }
        table.batches {
            thead { tr {
                th { (l.pick("批次", "Batch")) }
                th { (l.pick("业务类型", "Type")) }
                th { (l.pick("状态", "State")) }
                th { (l.pick("进度", "Progress")) }
                th.num { (l.pick("页数", "Pages")) }
                th.num { (l.pick("业务件", "Files")) }
                th.num { (l.pick("待处理异常", "Open exceptions")) }
                th.num { (l.pick("隔离文件", "Quarantined")) }
                th { (l.pick("同步", "Sync")) }
                th { (l.pick("更新时间", "Updated")) }
            } }
            tbody {
                @for b in shown { (batch_row(l, b, sync.get(&b.batch.name))) }
            }
        }
        @if pages > 1 {
            nav.pager {
                @if page > 1 { a #page-prev.button href=(link(filter, page - 1)) { "← " (l.pick("上一页", "Newer")) } }
                " " span { (l.pick("第", "page ")) (page) " / " (pages) (l.pick("页", "")) } " "
                @if page < pages { a #page-next.button href=(link(filter, page + 1)) { (l.pick("下一页", "Older")) " →" } }
            }
        }
        @if batches.is_empty() {
            p.muted { (l.pick("还没有批次。扫描仪写入热文件夹、执行 dangan-edge ingest，或在上方新建批次后上传页面。", "No batches yet. Scanners writing to the hot folder, dangan-edge ingest, or a new batch above with uploaded pages make them.")) }
        }
    };
    layout(&viewer, title, &[], body).into_response()
}

fn batch_row(l: Lang, b: &BatchSummary, sync: Option<&SyncInfo>) -> Markup {
    let state = b.batch.state.as_str();
    html! {
        tr data-batch=(b.batch.name) data-state=(state) {
            td { a href=(batch_url(&b.batch.name)) { (b.batch.name) } }
            td { (b.batch.business_type.as_deref().unwrap_or("—")) }
            td { span class=(format!("state s-{state}")) { (state_label(l, state)) } }
            td { progress max="100" value=(progress(state)) {} }
            td.num { (b.pages) }
            td.num { (b.business_files) }
            td.num { @if b.exceptions > 0 { a.warn href=(format!("{}/exceptions", batch_url(&b.batch.name))) { (b.exceptions) } } @else { "0" } }
            td.num { (b.quarantined) }
            td { (sync_cell(l, state, sync)) }
            td.muted { (short_time(&b.batch.updated_at)) }
        }
    }
}

/// `2026-11-25T10:31:02Z` → `2026-11-25 10:31`.
fn short_time(rfc3339: &str) -> String {
    rfc3339.get(..16).unwrap_or(rfc3339).replace('T', " ")
}

#[derive(Deserialize)]
pub(super) struct NewBatchForm {
    name: String,
    business_type: Option<String>,
}

pub(super) async fn batch_open(
    State(state): State<ApiState>,
    viewer: Viewer,
    Form(form): Form<NewBatchForm>,
) -> Response {
    if !viewer.may(&[Role::Operator]) {
        return viewer.fail(ApiError::forbidden(
            viewer.pick("只有扫描员可以新建批次", "only operators open batches"),
        ));
    }
    let name = form.name.trim().to_owned();
    if name.is_empty() || name.len() > 128 || name.contains(['/', '\\']) {
        return viewer.fail(ApiError::invalid(viewer.pick(
            "批次名称为 1–128 个字符，不能包含 / 或 \\",
            "a batch name is 1–128 characters without '/' or '\\'",
        )));
    }
    let kind = form.business_type.filter(|t| !t.is_empty());
    let target = batch_url(&name);
    match state
        .db(move |_, store| Ok(store.open_batch(&name, kind.as_deref())?))
        .await
    {
        Ok(_) => see_other(&target),
        Err(err) => viewer.fail(err),
    }
}

/// What the batch page needs besides the detail.
struct BatchExtras {
    events: Vec<lifecycle::Event>,
    report: qc::Report,
    sync: Option<crate::sync::queue::QueueEntry>,
}

pub(super) async fn batch_page(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(batch): Path<String>,
) -> Response {
    let loaded = state
        .db(move |_, store| {
            let detail = store.batch_detail(&batch)?;
            let events = lifecycle::events(store.conn(), detail.batch.id)?;
            let report = qc::report(store.conn(), &batch)?;
            let sync = store.queue_entry(&batch)?;
            Ok((
                detail,
                BatchExtras {
                    events,
                    report,
                    sync,
                },
            ))
        })
        .await;
    match loaded {
        Ok((detail, extras)) => render_batch(&viewer, &detail, &extras).into_response(),
        Err(err) => viewer.fail(err),
    }
}

fn render_batch(viewer: &Viewer, detail: &BatchDetail, extras: &BatchExtras) -> Markup {
    let l = viewer.lang;
    let name = &detail.batch.name;
    let url = batch_url(name);
    let state = detail.batch.state.as_str();
    let parsed: Option<BatchState> = state.parse().ok();
    let defects: Vec<u32> = extras
        .report
        .rounds
        .last()
        .filter(|r| r.outcome.as_deref() == Some("rework"))
        .map(|r| {
            r.checks
                .iter()
                .filter(|c| c.verdict.as_deref().is_some_and(|v| v != "pass"))
                .map(|c| c.page)
                .collect()
        })
        .unwrap_or_default();
    let body = html! {
        p.crumbs { a href="/" { (l.pick("批次", "Batches")) } " › " (name) }
        h1 { (l.pick("批次", "Batch")) " " (name) " " span #batch-state class=(format!("state s-{state}")) data-state=(state) { (state_label(l, state)) } }
        p {
            progress max="100" value=(progress(state)) {}
            " " (detail.counts.pages) " " (l.pick("页", "pages")) " · "
            (detail.counts.business_files) " " (l.pick("个业务件", "business files")) " · "
            (detail.counts.quarantined) " " (l.pick("个隔离文件", "quarantined")) " · "
            (detail.counts.exceptions) " " (l.pick("个待处理异常", "open exceptions"))
            @if let Some(kind) = &detail.batch.business_type { " · " (l.pick("业务类型", "type")) " " (kind) }
        }
        nav.actions {
            a.button href=(format!("{url}/exceptions")) { (l.pick("异常处理", "Exception queue")) " (" (detail.counts.exceptions) ")" }
            @if matches!(parsed, Some(BatchState::InQc)) || !extras.report.rounds.is_empty() {
                a.button href=(format!("{url}/qc")) { (l.pick("质检", "QC")) }
            }
            @if !extras.report.rounds.is_empty() {
                a.button href=(format!("{url}/report")) { (l.pick("质检报告", "QC report")) }
            }
            @if parsed == Some(BatchState::Open) && viewer.may(&[Role::Operator]) && detail.counts.pages > 0 {
                (state_button(viewer, &url, "scanned", l.pick("扫描完成，提交质检", "Scanning done: hand to QC")))
            }
            @if parsed == Some(BatchState::Scanned) && viewer.may(&[Role::Operator]) {
                (state_button(viewer, &url, "open", l.pick("退回扫描", "Back to scanning")))
            }
            @if matches!(parsed, Some(BatchState::Scanned | BatchState::Rework)) && viewer.may(&[Role::Inspector]) {
                form.inline method="post" action=(format!("{url}/qc/start")) {
                    (csrf_field(viewer))
                    button #qc-start type="submit" { (l.pick("开始质检", "Start QC")) }
                }
            }
        }
        @if let Some(entry) = extras.sync.as_ref().filter(|_| matches!(parsed, Some(BatchState::Accepted | BatchState::Syncing | BatchState::Archived))) {
            section.sync-box {
                h2 { (l.pick("同步", "Sync")) }
                p {
                    (sync_cell(l, state, Some(&SyncInfo { attempts: entry.sync_attempts, next_attempt_at: entry.next_attempt_at.clone(), error: entry.sync_error.clone(), archived_at: entry.archived_at.clone(), error_code: entry.sync_error_code.clone() })))
                    @if let Some(next) = &entry.next_attempt_at { " · " (l.pick("下次尝试", "next attempt")) " " (short_time(next)) }
                    @if let Some(hash) = &entry.manifest_hash { " · " (l.pick("清单", "manifest")) " " code { (hash.get(..12).unwrap_or(hash)) } }
                }
            }
        }
        @if parsed == Some(BatchState::Open) && viewer.may(&[Role::Operator]) {
            section.upload {
                h2 { (l.pick("上传扫描页面", "Upload scanned pages")) }
                input #upload-files type="file" multiple accept=".jpg,.jpeg,.png,.tif,.tiff,.pdf" data-batch=(name);
                button #upload-start type="button" { (l.pick("上传", "Upload")) }
                span #upload-status role="status" {}
            }
        }
        @if parsed == Some(BatchState::Rework) && !defects.is_empty() {
            section.rework {
                h2 { (l.pick("返工：需要重扫的页面", "Rework: pages to rescan")) }
                ul {
                    @for page in &defects {
                        li {
                            a href=(format!("{url}/pages/{page}")) { (l.pick("第", "page ")) (page) (l.pick("页", "")) }
                            @if viewer.may(&[Role::Operator]) {
                                " " input.rescan-file type="file" accept=".jpg,.jpeg,.png,.tif,.tiff" data-batch=(name) data-page=(page);
                            }
                        }
                    }
                }
                span #rescan-status role="status" {}
            }
        }
        @if parsed.is_some_and(|s| matches!(s, BatchState::Open | BatchState::Scanned | BatchState::InQc | BatchState::Rework)) && viewer.may(&[]) {
            details.override {
                summary { (l.pick("管理员：强制通过", "Admin: accept anyway")) }
                form method="post" action=(format!("{url}/accept")) {
                    (csrf_field(viewer))
                    label { (l.pick("原因（必填，将被记录）", "Reason (required, recorded)")) input name="reason" required; }
                    button type="submit" { (l.pick("强制通过", "Accept")) }
                }
            }
        }
        h2 { (l.pick("业务件与页面", "Business files and pages")) }
        @for file in &detail.business_files {
            section.file data-file=(file.seq) {
                h3 {
                    (l.pick("业务件", "Business file")) " " (file.seq) " · "
                    @match &file.business_number { Some(n) => code { (n) }, None => span.warn { (l.pick("无业务流水号", "no business number")) } }
                    " · " (file.pages.len()) " " (l.pick("页", "pages"))
                }
                div.thumbs {
                    @for page in &file.pages {
                        a.thumb href=(format!("{url}/pages/{}", page.seq)) title=(page.source) {
                            img loading="lazy" src=(format!("/api/v1/batches/{}/pages/{}/thumbnail", segment(name), page.seq)) alt=(format!("{} {}", l.pick("第", "page"), page.seq));
                            span { (page.seq)
                                @if page.separator { " " (l.pick("分隔页", "separator")) }
                                @if page.blank { " " (l.pick("空白", "blank")) }
                            }
                        }
                    }
                }
            }
        }
        @if !detail.quarantined.is_empty() {
            h2 { (l.pick("隔离的文件", "Quarantined files")) }
            table {
                thead { tr { th { (l.pick("文件", "File")) } th { (l.pick("原因", "Reason")) } th { (l.pick("隔离位置", "Kept at")) } } }
                tbody {
                    @for q in &detail.quarantined {
                        tr { td { (q.source) } td { (code_label(l, &q.code)) ": " (q.reason) } td { code { (q.quarantine_path) } } }
                    }
                }
            }
        }
        h2 { (l.pick("批次记录", "History")) }
        table.events {
            tbody {
                @for e in &extras.events {
                    tr {
                        td.muted { (short_time(&e.at)) }
                        td { (state_label(l, &e.from)) " → " (state_label(l, &e.to)) }
                        td { (e.actor) }
                        td { @if e.is_override { strong { (l.pick("强制", "override")) } " " } (e.reason.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
        script #batch-data type="application/json" { (json_island(&serde_json::json!({ "batch": name }))) }
    };
    layout(viewer, name, &[], body)
}

fn state_button(viewer: &Viewer, url: &str, to: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action=(format!("{url}/state")) {
            (csrf_field(viewer))
            input type="hidden" name="to" value=(to);
            button type="submit" data-to=(to) { (label) }
        }
    }
}

#[derive(Deserialize)]
pub(super) struct StateForm {
    to: String,
    reason: Option<String>,
}

pub(super) async fn batch_state(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(batch): Path<String>,
    Form(form): Form<StateForm>,
) -> Response {
    let to: BatchState = match form.to.parse() {
        Ok(to) => to,
        Err(err) => return viewer.fail(ApiError::from(err)),
    };
    let actor = crate::lifecycle::Actor::user(viewer.user.username.clone(), viewer.user.role);
    let target = batch_url(&batch);
    let reason = form.reason.filter(|r| !r.trim().is_empty());
    let moved = state
        .db(move |_, store| {
            let row = store
                .batch(&batch)?
                .ok_or_else(|| ApiError::not_found(format!("no batch named {batch:?}")))?;
            let tx = store.transaction()?;
            lifecycle::transition(&tx, row.id, to, &actor, reason.as_deref(), false)?;
            tx.commit()?;
            Ok(())
        })
        .await;
    match moved {
        Ok(()) => see_other(&target),
        Err(err) => viewer.fail(err),
    }
}

#[derive(Deserialize)]
pub(super) struct ReasonForm {
    reason: String,
}

pub(super) async fn batch_accept(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(batch): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    let actor = crate::lifecycle::Actor::user(viewer.user.username.clone(), viewer.user.role);
    let target = batch_url(&batch);
    match state
        .db(move |_, store| Ok(store.accept_batch(&batch, &actor, &form.reason)?))
        .await
    {
        Ok(_) => see_other(&target),
        Err(err) => viewer.fail(err),
    }
}

/// One page of a batch, for the viewer.
#[derive(serde::Serialize)]
struct ViewedPage {
    seq: i64,
    file: i64,
    business_number: Option<String>,
    source: String,
    width: i64,
    height: i64,
    dpi: Option<i64>,
    colour: String,
    barcodes: Vec<String>,
}

pub(super) async fn page_viewer(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((batch, page)): Path<(String, i64)>,
) -> Response {
    let loaded = state
        .db(move |_, store| Ok(store.batch_detail(&batch)?))
        .await;
    let detail = match loaded {
        Ok(detail) => detail,
        Err(err) => return viewer.fail(err),
    };
    let l = viewer.lang;
    let pages: Vec<ViewedPage> = detail
        .business_files
        .iter()
        .flat_map(|f| {
            f.pages.iter().map(move |p| ViewedPage {
                seq: p.seq,
                file: f.seq,
                business_number: f.business_number.clone(),
                source: p.source.clone(),
                width: p.width,
                height: p.height,
                dpi: p.dpi,
                colour: p.colour.clone(),
                barcodes: p
                    .barcodes
                    .iter()
                    .map(|b| format!("{} {}", b.format, b.text))
                    .collect(),
            })
        })
        .collect();
    let Some(current) = pages.iter().find(|p| p.seq == page) else {
        return message_page(
            l,
            StatusCode::NOT_FOUND,
            l.pick("该批次没有这一页", "the batch has no such page"),
        );
    };
    let name = &detail.batch.name;
    let url = batch_url(name);
    let last = pages.iter().map(|p| p.seq).max().unwrap_or(page);
    let title = format!("{name} · {} {page}", l.pick("第", "page"));
    let body = html! {
        p.crumbs { a href="/" { (l.pick("批次", "Batches")) } " › " a href=(url) { (name) } " › " (l.pick("第", "page ")) (page) (l.pick("页", "")) " / " (last) }
        (dangan_shared::web::viewer_bar(
            l == Lang::Zh,
            (page > 1).then(|| format!("{url}/pages/{}", page - 1)).as_deref(),
            (page < last).then(|| format!("{url}/pages/{}", page + 1)).as_deref(),
        ))
        div.viewer-body {
            div #stage.stage {
                img #page-image src=(format!("/api/v1/batches/{}/pages/{page}/view", segment(name))) alt=(title) data-width=(current.width) data-height=(current.height);
            }
            aside.page-info {
                dl {
                    dt { (l.pick("业务件", "Business file")) } dd { (current.file) " " (current.business_number.as_deref().unwrap_or("—")) }
                    dt { (l.pick("源文件", "Source file")) } dd { (current.source) }
                    dt { (l.pick("尺寸", "Size")) } dd { (current.width) " × " (current.height) @if let Some(dpi) = current.dpi { " · " (dpi) " dpi" } }
                    dt { (l.pick("色彩", "Colour")) } dd { (current.colour) }
                    dt { (l.pick("条码", "Barcodes")) } dd { @for b in &current.barcodes { div { code { (b) } } } @if current.barcodes.is_empty() { "—" } }
                }
                (dangan_shared::web::viewer_keys(l == Lang::Zh))
            }
        }
    };
    layout(&viewer, &title, &["viewer.js"], body).into_response()
}

pub(super) async fn sync_status(State(state): State<ApiState>, viewer: Viewer) -> Response {
    let loaded = state.db(|_, store| Ok(store.sync_queue()?)).await;
    let mut queue = match loaded {
        Ok(queue) => queue,
        Err(err) => return viewer.fail(err),
    };
    // Everything still to send, and the most recently archived.
    let archived_total = queue.iter().filter(|e| e.batch.state == "archived").count();
    queue.sort_by(|a, b| b.archived_at.cmp(&a.archived_at));
    let mut archived_kept = 0;
    queue.retain(|e| {
        if e.batch.state != "archived" {
            return true;
        }
        archived_kept += 1;
        archived_kept <= LIST_PAGE
    });
    queue.sort_by(|a, b| {
        (a.batch.state == "archived")
            .cmp(&(b.batch.state == "archived"))
            .then(b.archived_at.cmp(&a.archived_at))
            .then(a.accepted_at.cmp(&b.accepted_at))
    });
    let l = viewer.lang;
    let title = l.pick("同步状态", "Sync status");
    let count = |s: &str| queue.iter().filter(|e| e.batch.state == s).count();
    let body = html! {
        h1 { (title) }
        p {
            (l.pick("排队中", "queued")) " " strong #queued { (count("accepted")) } " · "
            (l.pick("传输中", "in flight")) " " strong #inflight { (count("syncing")) } " · "
            (l.pick("已归档", "archived")) " " strong #archived { (archived_total) } " · "
            (l.pick("出错", "with errors")) " " strong #errors { (queue.iter().filter(|e| e.sync_error.is_some()).count()) }
        }
        table.sync {
            thead { tr {
                th { (l.pick("批次", "Batch")) } th { (l.pick("状态", "State")) } th.num { (l.pick("页数", "Pages")) }
                th.num { (l.pick("大小", "Size")) } th { (l.pick("通过时间", "Accepted")) } th.num { (l.pick("尝试次数", "Attempts")) }
                th { (l.pick("下次尝试", "Next attempt")) } th { (l.pick("上次错误", "Last error")) } th { (l.pick("归档时间", "Archived")) }
            } }
            tbody {
                @for e in &queue {
                    tr data-batch=(e.batch.name) {
                        td { a href=(batch_url(&e.batch.name)) { (e.batch.name) } }
                        td { (sync_cell(l, &e.batch.state, Some(&SyncInfo { attempts: e.sync_attempts, next_attempt_at: e.next_attempt_at.clone(), error: None, archived_at: e.archived_at.clone(), error_code: None }))) }
                        td.num { (e.pages) }
                        td.num { (human_bytes(e.bytes)) }
                        td.muted { (e.accepted_at.as_deref().map(short_time).unwrap_or_default()) }
                        td.num { (e.sync_attempts) }
                        td.muted { (e.next_attempt_at.as_deref().map(short_time).unwrap_or_default()) }
                        td.error { (e.sync_error.as_deref().map(|error| sync_error_text(l, e.sync_error_code.as_deref(), error)).unwrap_or_default()) }
                        td.muted { (e.archived_at.as_deref().map(short_time).unwrap_or_default()) }
                    }
                }
            }
        }
        @if queue.is_empty() { p.muted { (l.pick("还没有通过质检的批次。", "No batch has been accepted yet.")) } }
    };
    layout(&viewer, title, &[], body).into_response()
}

fn human_bytes(bytes: i64) -> String {
    let bytes = bytes as f64;
    if bytes >= 1e9 {
        format!("{:.1} GB", bytes / 1e9)
    } else if bytes >= 1e6 {
        format!("{:.1} MB", bytes / 1e6)
    } else {
        format!("{:.0} KB", bytes / 1e3)
    }
}

#[derive(Deserialize)]
pub(super) struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// One business file found by the local search.
struct Hit {
    batch: String,
    state: String,
    seq: i64,
    business_number: Option<String>,
    person_id: Option<String>,
    person_name: Option<String>,
    business_type: Option<String>,
    business_date: Option<String>,
    pages: i64,
    id: i64,
    /// The paper original: its volume, place and loan.
    original: Option<crate::warehouse::Original>,
}

/// The most hits one search shows.
const SEARCH_LIMIT: i64 = 200;

fn search_files(store: &Store, query: &str, today: &str) -> Result<Vec<Hit>, ApiError> {
    // Exact matches on the indexed numbers first, then names containing
    // the text (the edge holds a district's unarchived work: a scan of
    // business_files is milliseconds).
    let pattern = format!(
        "%{}%",
        query
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let mut statement = store.conn().prepare_cached(
        "SELECT b.name, b.state, f.seq, f.business_number, f.person_id, f.person_name,
                f.business_type, f.business_date,
                (SELECT count(*) FROM pages p WHERE p.business_file_id = f.id), f.id
         FROM business_files f JOIN batches b ON b.id = f.batch_id
         WHERE f.business_number = ?1 OR upper(f.person_id) = upper(?1)
            OR f.person_name LIKE ?2 ESCAPE '\\' OR f.business_number LIKE ?2 ESCAPE '\\'
         ORDER BY (f.business_number = ?1 OR upper(f.person_id) = upper(?1)) DESC,
                  b.created_at DESC, f.seq
         LIMIT ?3",
    )?;
    let rows = statement.query_map(rusqlite::params![query, pattern, SEARCH_LIMIT], |row| {
        Ok(Hit {
            batch: row.get(0)?,
            state: row.get(1)?,
            seq: row.get(2)?,
            business_number: row.get(3)?,
            person_id: row.get(4)?,
            person_name: row.get(5)?,
            business_type: row.get(6)?,
            business_date: row.get(7)?,
            pages: row.get(8)?,
            id: row.get(9)?,
            original: None,
        })
    })?;
    let mut hits: Vec<Hit> = rows.collect::<Result<_, _>>()?;
    for hit in &mut hits {
        hit.original = crate::warehouse::original_of_file(store.conn(), hit.id, today)
            .map_err(|err| crate::api::warehouse::error(err, Lang::En))?;
    }
    Ok(hits)
}

pub(super) async fn search(
    State(state): State<ApiState>,
    viewer: Viewer,
    Query(query): Query<SearchQuery>,
) -> Response {
    let text = query.q.trim().to_owned();
    let lookup = text.clone();
    let hits = if text.is_empty() {
        Vec::new()
    } else {
        let search = move |node: &crate::node::Node, store: &mut Store| {
            search_files(
                store,
                &lookup,
                &crate::warehouse::today(&node.config.sync.time_zone),
            )
        };
        match state.db(search).await {
            Ok(hits) => hits,
            Err(err) => return viewer.fail(err),
        }
    };
    let l = viewer.lang;
    let title = l.pick("查询", "Search");
    let body = html! {
        h1 { (title) }
        form.search-big action="/search" method="get" {
            input #search-q type="search" name="q" value=(text) autofocus placeholder=(l.pick("业务流水号 / 身份证号 / 姓名", "Business no. / person id / name"));
            button type="submit" { (l.pick("查询", "Search")) }
        }
        @if !text.is_empty() {
            p #search-count { (hits.len()) " " (l.pick("个业务件", "business files")) @if hits.len() as i64 == SEARCH_LIMIT { " " (l.pick("（仅显示前 200 个）", "(first 200 shown)")) } }
            table.hits {
                thead { tr { th { (l.pick("批次", "Batch")) } th { (l.pick("业务件", "File")) } th { (l.pick("业务流水号", "Business no.")) } th { (l.pick("身份证号", "Person id")) } th { (l.pick("姓名", "Name")) } th { (l.pick("业务类型", "Type")) } th { (l.pick("业务日期", "Date")) } th.num { (l.pick("页数", "Pages")) } th { (l.pick("纸质原件", "Paper original")) } } }
                tbody {
                    @for h in &hits {
                        tr {
                            td { a href=(batch_url(&h.batch)) { (h.batch) } " " span class=(format!("state s-{}", h.state)) { (state_label(l, &h.state)) } }
                            td { a href=(format!("{}/exceptions#file-{}", batch_url(&h.batch), h.seq)) { (h.seq) } }
                            td { (h.business_number.as_deref().unwrap_or("—")) }
                            td { (h.person_id.as_deref().unwrap_or("—")) }
                            td { (h.person_name.as_deref().unwrap_or("—")) }
                            td { (h.business_type.as_deref().unwrap_or("—")) }
                            td { (h.business_date.as_deref().unwrap_or("—")) }
                            td.num { (h.pages) }
                            td.original {
                                @match &h.original {
                                    None => span.muted { (l.pick("未组卷", "not in a volume")) },
                                    Some(o) => {
                                        a href=(format!("/warehouse/volumes/{}", super::segment(&o.volume.code))) { (o.volume.code) }
                                        " · " (o.path.last().map(|b| b.code.as_str()).unwrap_or("—")) " · "
                                        (super::warehouse::loan_markup(l, o.loan.as_ref()))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(&viewer, title, &[], body).into_response()
}

pub(super) async fn qc_report(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(batch): Path<String>,
) -> Response {
    let name = batch.clone();
    let (report, defects) = match state
        .db(move |_, store| {
            let defects = crate::dictionaries::current(
                store.conn(),
                dangan_shared::dictionary::DictionaryKind::Defects,
            )?;
            Ok((qc::report(store.conn(), &batch)?, defects.dictionary))
        })
        .await
    {
        Ok(loaded) => loaded,
        Err(err) => return viewer.fail(err),
    };
    let l = viewer.lang;
    let url = batch_url(&name);
    let title = format!("{} · {name}", l.pick("质检报告", "QC report"));
    let body = html! {
        p.crumbs { a href="/" { (l.pick("批次", "Batches")) } " › " a href=(url) { (name) } " › " (l.pick("质检报告", "QC report")) }
        h1 { (title) }
        p { a #csv.button href=(format!("/api/v1/batches/{}/qc/report.csv", segment(&name))) download { (l.pick("下载 CSV", "Download CSV")) } }
        @if report.rounds.is_empty() { p.muted { (l.pick("该批次还没有质检。", "No QC round yet.")) } }
        @for round in &report.rounds {
            section.round {
                h2 { (l.pick("第", "Round ")) (round.round) (l.pick("轮", "")) " · "
                    @match round.outcome.as_deref() {
                        Some("pass") => span.state.s-accepted { (l.pick("通过", "passed")) },
                        Some("rework") => span.state.s-rework { (l.pick("返工", "rework")) },
                        _ => span.state.s-in_qc { (l.pick("进行中", "in progress")) },
                    }
                }
                p {
                    (l.pick("抽检", "sampled")) " " (round.sampled) " / " (round.pages) " · "
                    (l.pick("已检", "checked")) " " (round.checked) " · "
                    (l.pick("合格", "passed")) " " (round.passed)
                    @if let Some(rate) = round.pass_rate { " · " (l.pick("合格率", "pass rate")) " " (format!("{:.1}%", rate * 100.0)) }
                    " · " (l.pick("种子", "seed")) " " code { (round.seed) }
                    " · " (l.pick("质检员", "inspector")) " " (round.started_by)
                }
                @if !round.defects_by_type.is_empty() {
                    p { (l.pick("缺陷类型", "Defects by type")) ": "
                        @for (kind, n) in &round.defects_by_type { span.tag { (defect_label(l, &defects, kind)) " " (n) } " " }
                    }
                }
                @if !round.defects_by_operator.is_empty() {
                    p { (l.pick("按扫描员", "Defects by operator")) ": "
                        @for (who, n) in &round.defects_by_operator { span.tag { (who) " " (n) } " " }
                    }
                }
                table.checks {
                    thead { tr { th.num { (l.pick("页", "Page")) } th { (l.pick("结论", "Verdict")) } th { (l.pick("备注", "Note")) } th { (l.pick("质检员", "Inspector")) } th { (l.pick("扫描员", "Operator")) } th { (l.pick("时间", "At")) } } }
                    tbody {
                        @for c in &round.checks {
                            tr {
                                td.num { a href=(format!("{url}/pages/{}", c.page)) { (c.page) } }
                                td { @match c.verdict.as_deref() { Some(v) => (defect_label(l, &defects, v)), None => span.muted { (l.pick("未检", "not checked")) } } }
                                td { (c.note.as_deref().unwrap_or("")) }
                                td { (c.inspector.as_deref().unwrap_or("")) }
                                td { (c.operator.as_deref().unwrap_or("")) }
                                td.muted { (c.checked_at.as_deref().map(short_time).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(&viewer, &title, &[], body).into_response()
}

/// A verdict's label: pass or a defect, as the defects dictionary names it.
pub(super) fn defect_label(
    l: Lang,
    defects: &dangan_shared::dictionary::Dictionary,
    code: &str,
) -> String {
    crate::dictionaries::verdict_label(defects, code, l == Lang::En)
}
