//! Search and retrieval for reviewers (and everyone whose scope holds
//! archived files): the search page, a business file's page with its
//! metadata and thumbnails, and the page viewer.
//!
//! Every page goes through the API's audited paths (`search`, `file.view`;
//! the images themselves record `page.view`, the PDF `file.download`), with
//! the same scope rules: a file outside the viewer's scope is the same 404
//! as a file that does not exist.
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dangan_shared::dictionary::Dictionary;
use dangan_shared::web::{viewer_bar, viewer_keys};
use dangan_sync::tls::PeerAddr;
use maud::{Markup, html};

use super::{Viewer, layout, message_page};
use crate::api::{self, ApiError, FileLook, FileView};
use crate::audit::ActorKind;
use crate::backend::HubBackend;
use crate::dictionaries;
use crate::orgs;
use crate::search::{
    Hit, MAX_PER_PAGE, MIN_NAME_CHARS, SearchError, SearchPage, SearchQuery, Sort,
};
use crate::text::Lang;
use crate::warehouse::{Original, Place};

/// Labels for the codes a business file carries: categories, retention
/// periods and business types, in the viewer's language.
struct Labels {
    categories: Dictionary,
    retentions: Dictionary,
    /// Business type code and name.
    types: Vec<(String, String)>,
}

impl Labels {
    async fn load(backend: &Arc<HubBackend>) -> Result<Labels, ApiError> {
        backend
            .db()
            .run(|conn| {
                let in_force = dictionaries::in_force(conn).map_err(|err| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        err.to_string(),
                    )
                })?;
                Ok::<_, ApiError>(Labels {
                    categories: in_force.categories.content,
                    retentions: in_force.retentions.content,
                    types: in_force
                        .templates
                        .into_iter()
                        .map(|t| (t.content.business_type, t.content.name))
                        .collect(),
                })
            })
            .await
    }

    fn entry(l: Lang, dictionary: &Dictionary, code: Option<&str>) -> String {
        match code {
            None => "—".to_owned(),
            Some(code) => match dictionary.get(code) {
                Some(entry) => l.pick(&entry.zh, &entry.en).to_owned(),
                None => code.to_owned(),
            },
        }
    }

    fn category(&self, l: Lang, code: Option<&str>) -> String {
        Self::entry(l, &self.categories, code)
    }

    fn retention(&self, l: Lang, code: Option<&str>) -> String {
        Self::entry(l, &self.retentions, code)
    }

    /// "YL01 养老保险待遇申领", or the bare code of an unknown type.
    fn business_type(&self, code: Option<&str>) -> String {
        match code {
            None => "—".to_owned(),
            Some(code) => match self.types.iter().find(|(c, _)| c == code) {
                Some((_, name)) => format!("{code} {name}"),
                None => code.to_owned(),
            },
        }
    }
}

fn address(peer: &PeerAddr) -> String {
    peer.0.ip().to_string()
}

/// Whether the form asked for anything (a first visit asks for nothing and
/// is not a search).
fn asks_anything(query: &SearchQuery) -> bool {
    [
        &query.person_id,
        &query.name,
        &query.business_number,
        &query.employer_id,
        &query.business_type,
        &query.category,
        &query.org,
        &query.date_from,
        &query.date_to,
    ]
    .into_iter()
    .flatten()
    .any(|value| !value.trim().is_empty())
}

/// A refused query, said in the viewer's language.
fn search_error_text(l: Lang, err: &SearchError) -> String {
    match (l, err) {
        (Lang::Zh, SearchError::NoCriterion) => "请至少填写一个查询条件。".to_owned(),
        (Lang::Zh, SearchError::NameTooShort(_)) => {
            format!("姓名至少输入 {MIN_NAME_CHARS} 个字：一个字匹配的人太多。")
        }
        (Lang::Zh, SearchError::BadDate { value, .. }) => {
            format!("日期应为 年-月-日（如 2026-11-25），而不是 “{value}”。")
        }
        (Lang::Zh, SearchError::DatesReversed { from, to }) => {
            format!("起始日期 {from} 晚于截止日期 {to}。")
        }
        (Lang::Zh, SearchError::BadOrg(_)) => "机构代码应为 6 位或 9 位数字。".to_owned(),
        (Lang::Zh, SearchError::BadPage) => "页码从 1 开始。".to_owned(),
        (Lang::Zh, SearchError::BadPerPage(_)) => {
            format!("每页条数应在 1 到 {MAX_PER_PAGE} 之间。")
        }
        (Lang::Zh, SearchError::BeyondCap { .. }) => {
            "结果太多，无法翻到这一页：请缩小范围（日期、机构）。".to_owned()
        }
        (_, err) => err.to_string(),
    }
}

/// `GET /search`: the search form and, when it asked for something, a
/// page of hits in the viewer's scope.
pub(super) async fn search(
    State(backend): State<Arc<HubBackend>>,
    viewer: Viewer,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    query: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let l = viewer.lang;
    let (query, refused) = match query {
        Ok(Query(query)) => (query, None),
        Err(rejection) => (SearchQuery::default(), Some(rejection.body_text())),
    };
    let labels = match Labels::load(&backend).await {
        Ok(labels) => labels,
        Err(err) => return viewer.fail(err),
    };
    let outcome = if refused.is_none() && asks_anything(&query) {
        let ran = api::search_audited(
            &backend,
            viewer.user.clone(),
            ActorKind::User,
            address(&peer),
            query.clone(),
        )
        .await;
        match ran {
            Ok(outcome) => Some(outcome),
            Err(err) => return viewer.fail(err),
        }
    } else {
        None
    };
    let body = html! {
        h1 { (l.pick("档案查询", "Search the archive")) }
        (search_form(l, &labels, &query))
        @if let Some(reason) = &refused { p.error role="alert" { (reason) } }
        @match &outcome {
            None => {}
            Some(Err(err)) => p.error role="alert" { (search_error_text(l, err)) },
            Some(Ok(page)) => (hits(l, &labels, &query, page)),
        }
    };
    layout(&viewer, l.pick("档案查询", "Search"), &[], body).into_response()
}

fn search_form(l: Lang, labels: &Labels, query: &SearchQuery) -> Markup {
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let sorts = [
        (
            Sort::DateDesc,
            "date_desc",
            l.pick("业务日期（新→旧）", "Newest first"),
        ),
        (
            Sort::DateAsc,
            "date_asc",
            l.pick("业务日期（旧→新）", "Oldest first"),
        ),
        (
            Sort::BusinessNumber,
            "business_number",
            l.pick("业务编号", "Business number"),
        ),
    ];
    html! {
        form.filters #search method="get" action="/search" {
            label { (l.pick("姓名", "Name")) " "
                input name="name" value=(value(&query.name)) autofocus
                    placeholder=(l.pick("姓名的一部分，至少两个字", "part of the name, two characters or more")); }
            label { (l.pick("身份证号", "ID number")) " " input name="person_id" value=(value(&query.person_id)) maxlength="18" size="20"; }
            label { (l.pick("业务编号", "Business number")) " " input name="business_number" value=(value(&query.business_number)) placeholder=(l.pick("以 * 结尾按前缀查", "end with * for a prefix")); }
            label { (l.pick("单位编号", "Employer")) " " input name="employer_id" value=(value(&query.employer_id)); }
            label { (l.pick("业务类型", "Business type")) " "
                select name="business_type" {
                    option value="" { (l.pick("全部", "any")) }
                    @for (code, name) in &labels.types {
                        option value=(code) selected[query.business_type.as_deref() == Some(code.as_str())] { (code) " " (name) }
                    }
                }
            }
            label { (l.pick("门类", "Category")) " "
                select name="category" {
                    option value="" { (l.pick("全部", "any")) }
                    @for entry in &labels.categories.entries {
                        option value=(entry.code) selected[query.category.as_deref() == Some(entry.code.as_str())] { (l.pick(&entry.zh, &entry.en)) }
                    }
                }
            }
            label { (l.pick("机构代码", "Organisation")) " " input name="org" value=(value(&query.org)) size="10" placeholder=(l.pick("含下级", "and below")); }
            label { (l.pick("业务日期从", "Date from")) " " input name="from" type="date" value=(value(&query.date_from)); }
            label { (l.pick("至", "to")) " " input name="to" type="date" value=(value(&query.date_to)); }
            label { (l.pick("排序", "Sort")) " "
                select name="sort" {
                    @for (sort, code, text) in sorts {
                        option value=(code) selected[query.sort == sort] { (text) }
                    }
                }
            }
            button type="submit" { (l.pick("查询", "Search")) }
        }
    }
}

/// The link to another page of the same search.
fn page_link(query: &SearchQuery, page: u32) -> String {
    let mut query = query.clone();
    query.page = Some(page);
    format!(
        "/search?{}",
        serde_urlencoded::to_string(&query).unwrap_or_default()
    )
}

fn hits(l: Lang, labels: &Labels, query: &SearchQuery, page: &SearchPage) -> Markup {
    let last = page.total.div_ceil(u64::from(page.per_page.max(1))).max(1) as u32;
    html! {
        p #search-total.muted {
            (l.pick("共 ", "")) (page.total) @if page.total_capped { "+" }
            (l.pick(" 件", " business files"))
            @if page.total_capped { (l.pick("（结果过多，请缩小范围）", " (too many: narrow the search)")) }
        }
        @if page.hits.is_empty() {
            p #no-hits { (l.pick("在您的权限范围内没有找到符合条件的业务件。", "Nothing found within your scope.")) }
        } @else {
            table #hits {
                thead { tr {
                    th { (l.pick("业务编号", "Business number")) }
                    th { (l.pick("姓名", "Name")) }
                    th { (l.pick("身份证号", "ID number")) }
                    th { (l.pick("业务类型", "Business type")) }
                    th { (l.pick("门类", "Category")) }
                    th { (l.pick("机构", "Organisation")) }
                    th { (l.pick("业务日期", "Date")) }
                    th.num { (l.pick("页数", "Pages")) }
                } }
                tbody {
                    @for hit in &page.hits { (hit_row(l, labels, hit)) }
                }
            }
            nav.pager {
                @if page.page > 1 { a #prev-hits href=(page_link(query, page.page - 1)) { "← " (l.pick("上一页", "Previous")) } }
                span.muted { " " (page.page) " / " (last) " " }
                @if page.page < last { a #next-hits href=(page_link(query, page.page + 1)) { (l.pick("下一页", "Next")) " →" } }
            }
        }
    }
}

fn hit_row(l: Lang, labels: &Labels, hit: &Hit) -> Markup {
    let href = format!("/files/{}", hit.id);
    html! {
        tr.hit data-id=(hit.id) {
            td { a href=(href) { (hit.business_number.as_deref().unwrap_or(l.pick("（无编号）", "(no number)"))) } }
            td { a href=(href) { (hit.person_name.as_deref().unwrap_or("—")) } }
            td { (hit.person_id.as_deref().unwrap_or("—")) }
            td { (labels.business_type(hit.business_type.as_deref())) }
            td { (labels.category(l, hit.category.as_deref())) }
            td { (hit.organisation_name.as_deref().unwrap_or(&hit.organisation)) }
            td { (hit.date.as_deref().unwrap_or("—")) }
            td.num { (hit.pages) }
        }
    }
}

/// The organisation's name, or its code when the hub does not know it.
async fn org_name(backend: &Arc<HubBackend>, code: String) -> Result<String, ApiError> {
    backend
        .db()
        .run(move |conn| {
            let org = orgs::get(conn, &code).map_err(ApiError::from)?;
            Ok::<_, ApiError>(org.map_or(code, |org| org.name))
        })
        .await
}

/// A file the viewer may see, or the page that says why not.
async fn open_file(
    backend: &Arc<HubBackend>,
    viewer: &Viewer,
    peer: &PeerAddr,
    id: i64,
    look: FileLook,
) -> Result<FileView, Response> {
    let found = api::file_for(
        backend,
        viewer.user.clone(),
        ActorKind::User,
        address(peer),
        id,
        look,
    )
    .await;
    found.map_err(|err| {
        if err.status == StatusCode::NOT_FOUND {
            message_page(
                viewer.lang,
                StatusCode::NOT_FOUND,
                viewer.pick(
                    "没有这个业务件，或它不在您的权限范围内。",
                    "No such business file, or it is outside your scope.",
                ),
            )
        } else {
            viewer.fail(err)
        }
    })
}

/// `GET /files/{id}`: a business file's metadata, its pages as
/// thumbnails, and its PDF.
pub(super) async fn file(
    State(backend): State<Arc<HubBackend>>,
    viewer: Viewer,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(id): Path<i64>,
) -> Response {
    let file = match open_file(&backend, &viewer, &peer, id, FileLook::Audited).await {
        Ok(file) => file,
        Err(page) => return page,
    };
    let (labels, organisation) = match tokio::try_join!(
        Labels::load(&backend),
        org_name(&backend, file.organisation.clone())
    ) {
        Ok(found) => found,
        Err(err) => return viewer.fail(err),
    };
    let l = viewer.lang;
    let number = file
        .business_number
        .clone()
        .unwrap_or_else(|| l.pick("（无编号）", "(no number)").to_owned());
    let body = html! {
        p.crumbs { a href="/search" { (l.pick("档案查询", "Search")) } " › " (number) }
        h1 { (number) " " span.muted { (file.person_name.as_deref().unwrap_or("")) } }
        nav.actions {
            a #download-pdf.button href=(format!("/api/v1/files/{id}/pdf")) download=(format!("{number}.pdf")) {
                (l.pick("下载 PDF（带水印）", "Download PDF (watermarked)"))
            }
            @if let Some(first) = file.pages.first() {
                a #open-viewer.button href=(format!("/files/{id}/pages/{}", first.seq)) { (l.pick("逐页查看", "View the pages")) }
            }
        }
        dl.file-meta {
            dt { (l.pick("姓名", "Name")) } dd #person-name { (file.person_name.as_deref().unwrap_or("—")) }
            dt { (l.pick("身份证号", "ID number")) } dd { (file.person_id.as_deref().unwrap_or("—")) }
            dt { (l.pick("单位编号", "Employer")) } dd { (file.employer_id.as_deref().unwrap_or("—")) }
            dt { (l.pick("业务类型", "Business type")) } dd { (labels.business_type(file.business_type.as_deref())) }
            dt { (l.pick("门类", "Category")) } dd { (labels.category(l, file.category.as_deref())) }
            dt { (l.pick("保管期限", "Retention")) } dd { (labels.retention(l, file.retention.as_deref())) }
            dt { (l.pick("业务日期", "Date")) } dd { (file.date.as_deref().unwrap_or("—")) }
            dt { (l.pick("经办机构", "Organisation")) } dd { (organisation) " (" (file.organisation) ")" }
            dt { (l.pick("批次", "Batch")) } dd { (file.batch) " · " (l.pick("第 ", "file ")) (file.seq) (l.pick(" 件", "")) " · " (file.district) }
            dt { (l.pick("页数", "Pages")) } dd #page-count { (file.pages.len()) }
            dt { (l.pick("纸质原件", "Paper original")) }
            dd #original { (original(&viewer, id, file.original.as_ref())) }
        }
        h2 { (l.pick("页面", "Pages")) }
        ol.thumbs #thumbs {
            @for (index, page) in file.pages.iter().enumerate() {
                li.thumb {
                    a href=(format!("/files/{id}/pages/{}", page.seq)) {
                        img src=(format!("/api/v1/files/{id}/pages/{}/thumbnail", page.seq)) loading="lazy"
                            alt=(format!("{} {}", l.pick("第", "page"), index + 1));
                        br; span { (index + 1) }
                    }
                }
            }
        }
    };
    layout(&viewer, &number, &[], body).into_response()
}

/// A place of the warehouse as the path shows it: a room by name and code,
/// a box by its code, everything between by name.
fn place_text(l: Lang, place: &Place) -> String {
    match place.kind.as_str() {
        "room" => format!("{} ({})", place.name, place.code),
        "box" => format!("{} {}", l.pick("盒", "box"), place.code),
        _ => place.name.clone(),
    }
}

/// Where the paper original is (room › … › box › volume), whether it is
/// out, the hub's open requests, and the form to ask for it.
fn original(viewer: &Viewer, id: i64, original: Option<&Original>) -> Markup {
    let l = viewer.lang;
    let Some(original) = original else {
        return html! {
            span.muted { (l.pick("库房尚未登记该业务件的纸质原件。", "The district has not recorded this file's paper original yet.")) }
        };
    };
    let mut place: Vec<String> = original.path.iter().map(|p| place_text(l, p)).collect();
    if original.path.is_empty()
        && let Some(code) = &original.box_code
    {
        place.push(format!("{} {code}", l.pick("盒", "box")));
    }
    place.push(format!("{} {}", l.pick("卷", "volume"), original.volume));
    let may_request = crate::api::may_request_loans(viewer.user.role);
    html! {
        div #original-place {
            (place.join(" › "))
            @if let Some(title) = &original.volume_title { " " span.muted { "（" (title) "）" } }
        }
        div #original-loan {
            @match &original.loan {
                None => span.in-store { (l.pick("在库", "In the warehouse")) },
                Some(loan) if loan.overdue => strong.error.overdue {
                    (l.pick("已逾期：", "Overdue: ")) (l.pick("借阅人 ", "borrowed by ")) (loan.borrower)
                    (l.pick("，应还日期 ", ", due ")) (loan.due_date)
                },
                Some(loan) if loan.state == "lent" => span.lent {
                    (l.pick("借出中：", "On loan: ")) (l.pick("借阅人 ", "borrowed by ")) (loan.borrower)
                    (l.pick("，应还日期 ", ", due ")) (loan.due_date)
                },
                Some(loan) if loan.state == "approved" => span.approved {
                    (l.pick("已批准待出库：", "Approved, not yet handed out: ")) (loan.borrower)
                    (l.pick("，应还日期 ", ", due ")) (loan.due_date)
                },
                Some(loan) => span.requested {
                    (l.pick("已申请待批：", "Requested, awaiting approval: ")) (loan.borrower)
                    (l.pick("，应还日期 ", ", due ")) (loan.due_date)
                },
            }
        }
        @if !original.requests.is_empty() {
            ul #original-requests {
                @for request in &original.requests {
                    li.requested {
                        (l.pick("已申请待批（中心第 ", "Requested at the hub (no. ")) (request.seq) (l.pick(" 号）：", "): "))
                        (request.borrower) (l.pick("，用途 ", ", for ")) (request.purpose)
                        (l.pick("，应还日期 ", ", due ")) (request.due_date)
                    }
                }
            }
        }
        @if may_request {
            form.api #loan-request data-method="POST" data-url=(format!("/api/v1/files/{id}/loan-requests")) {
                label { (l.pick("借阅用途", "Purpose")) " "
                    input name="purpose" required maxlength="200" placeholder=(l.pick("如：待遇复核", "e.g. benefit review")); }
                label { (l.pick("应还日期", "Due back")) " "
                    input name="due_date" type="date" required; }
                button type="submit" { (l.pick("申请借阅原件", "Request the original")) }
                span.form-status {}
            }
        }
    }
}

/// `GET /files/{id}/pages/{seq}`: one page large, with zoom, rotation and
/// the keyboard (the shared viewer script), streamed from the object store.
pub(super) async fn page(
    State(backend): State<Arc<HubBackend>>,
    viewer: Viewer,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path((id, seq)): Path<(i64, i64)>,
) -> Response {
    let file = match open_file(&backend, &viewer, &peer, id, FileLook::Quiet).await {
        Ok(file) => file,
        Err(page) => return page,
    };
    let l = viewer.lang;
    // Page numbers (`seq`) run through the batch; the viewer counts within
    // the file.
    let Some(index) = file.pages.iter().position(|p| p.seq == seq) else {
        return message_page(
            l,
            StatusCode::NOT_FOUND,
            l.pick(
                "该业务件没有这一页。",
                "The business file has no such page.",
            ),
        );
    };
    let current = &file.pages[index];
    let neighbour = |at: Option<usize>| {
        at.and_then(|i| file.pages.get(i))
            .map(|p| format!("/files/{id}/pages/{}", p.seq))
    };
    let prev = neighbour(index.checked_sub(1));
    let next = neighbour(Some(index + 1));
    let number = file
        .business_number
        .clone()
        .unwrap_or_else(|| l.pick("（无编号）", "(no number)").to_owned());
    let url = format!("/files/{id}");
    let title = format!("{number} · {} {}", l.pick("第", "page"), index + 1);
    let body = html! {
        p.crumbs {
            a href="/search" { (l.pick("档案查询", "Search")) } " › "
            a href=(url) { (number) } " › "
            span #page-position { (l.pick("第 ", "page ")) (index + 1) (l.pick(" 页", "")) " / " (file.pages.len()) }
        }
        (viewer_bar(l == Lang::Zh, prev.as_deref(), next.as_deref()))
        div.viewer-body {
            div #stage.stage {
                img #page-image src=(format!("/api/v1/files/{id}/pages/{seq}/view")) alt=(title)
                    data-width=(current.width) data-height=(current.height);
            }
            aside.page-info {
                dl {
                    dt { (l.pick("业务件", "Business file")) } dd { (number) " " (file.person_name.as_deref().unwrap_or("")) }
                    dt { (l.pick("尺寸", "Size")) } dd { (current.width) " × " (current.height) }
                    dt { (l.pick("格式", "Format")) } dd { (current.format) }
                }
                p {
                    a href=(format!("/api/v1/files/{id}/pages/{seq}")) download { (l.pick("下载原图", "Download the original")) }
                }
                (viewer_keys(l == Lang::Zh))
            }
        }
    };
    layout(&viewer, &title, &["viewer.js"], body).into_response()
}
