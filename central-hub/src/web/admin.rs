//! The administrators' and auditors' pages: reconciliation, paper originals
//! out on loan, organisations, users and grants, dictionaries, the audit
//! trail.
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;

use super::{Viewer, layout, role_label, segment};
use crate::api::{self, ApiError};
use crate::audit::{ActorKind, Filter};
use crate::backend::HubBackend;
use crate::dictionaries;
use crate::orgs::{self, OrgNode};
use crate::reconcile::{DistrictReport, Reconciliation};
use crate::text::{Lang, edge_state_label, reconcile_state_label};
use crate::users::{self, Role};
use dangan_shared::OrgLevel;

#[derive(Deserialize)]
pub(super) struct FragmentQuery {
    /// `1`: only the table, for the page's live refresh.
    fragment: Option<String>,
}

/// Central administrators (system and archive administrators).
fn central(viewer: &Viewer) -> bool {
    viewer.is(&[Role::SystemAdmin, Role::ArchiveAdmin])
}

/// Per district: nodes' last contact, queued, in flight, archived and
/// divergent batches; stale districts highlighted. The table refreshes
/// itself every few seconds (hub.js asks for `?fragment=1`).
pub(super) async fn reconcile(
    State(backend): State<Arc<HubBackend>>,
    viewer: Viewer,
    Query(query): Query<FragmentQuery>,
) -> Response {
    if !central(&viewer) {
        return viewer.forbidden();
    }
    let report = match backend.reconcile(None).await {
        Ok(report) => report,
        Err(err) => return viewer.fail(err.into()),
    };
    let table = districts_table(viewer.lang, &report);
    if query.fragment.is_some() {
        return table.into_response();
    }
    let l = viewer.lang;
    let body = html! {
        h1 { (l.pick("对账：各区县的归档情况", "Reconciliation: what every district has sent")) }
        p.muted {
            (l.pick("超过 ", "Districts without contact for more than "))
            (duration_text(l, report.stale_after_seconds))
            (l.pick("未联系的区县以红色标出。本表每 5 秒自动刷新。", " are marked in red. The table refreshes itself every 5 seconds."))
        }
        div #reconcile data-refresh="/reconcile?fragment=1" data-every="5" { (table) }
        p.muted #reconcile-updated {}
    };
    layout(&viewer, l.pick("对账", "Reconciliation"), &[], body).into_response()
}

/// `GET /originals`: the paper originals lent out in the districts'
/// warehouses (as their edges report) that the viewer's scope holds (a
/// district's archive admin sees their district, the city's every
/// district), overdue loans first.
pub(super) async fn originals(State(backend): State<Arc<HubBackend>>, viewer: Viewer) -> Response {
    if !central(&viewer) {
        return viewer.forbidden();
    }
    let today = crate::warehouse::today(&backend.config().live.time_zone);
    let on = today.clone();
    let user = viewer.user.clone();
    let loans = backend
        .db()
        .run(move |conn| {
            let scope = crate::users::Scope::of(conn, &user).map_err(ApiError::from)?;
            let mut loans = crate::warehouse::loans_out(conn, &on).map_err(ApiError::from)?;
            let mut kept = Vec::with_capacity(loans.len());
            for loan in loans.drain(..) {
                if scope.allows(conn, &loan.district).map_err(ApiError::from)? {
                    kept.push(loan);
                }
            }
            Ok(kept)
        })
        .await;
    let loans = match loans {
        Ok(loans) => loans,
        Err(err) => return viewer.fail(err),
    };
    let l = viewer.lang;
    let overdue = loans.iter().filter(|loan| loan.overdue).count();
    let body = html! {
        h1 { (l.pick("借出的纸质原件", "Paper originals on loan")) }
        p.muted #originals-summary {
            (l.pick("共 ", "")) (loans.len()) (l.pick(" 件借出，其中 ", " on loan, "))
            (overdue) (l.pick(" 件已逾期（截至 ", " overdue (as of ")) (today) (l.pick("）。", ")."))
        }
        @if loans.is_empty() {
            p #no-loans { (l.pick("目前没有借出的原件。", "Nothing is on loan.")) }
        } @else {
            table #loans-out {
                thead { tr {
                    th { (l.pick("区县", "District")) }
                    th { (l.pick("卷/盒", "Volume or box")) }
                    th { (l.pick("借阅人", "Borrower")) }
                    th { (l.pick("用途", "Purpose")) }
                    th { (l.pick("借出时间", "Lent")) }
                    th { (l.pick("应还日期", "Due")) }
                } }
                tbody {
                    @for loan in &loans {
                        tr.overdue[loan.overdue] data-district=(loan.district) {
                            td { (loan.district) }
                            td { (loan.item) @if let Some(title) = &loan.title { " " span.muted { (title) } } }
                            td { (loan.borrower) }
                            td { (loan.purpose) }
                            td { (loan.lent_at.as_deref().unwrap_or("—")) }
                            td {
                                @if loan.overdue { strong.error { (loan.due_date) " " (l.pick("已逾期", "overdue")) } }
                                @else { (loan.due_date) }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(&viewer, l.pick("借出原件", "Originals on loan"), &[], body).into_response()
}

/// A threshold in the largest whole unit: "24 小时", "90 seconds".
fn duration_text(l: Lang, seconds: u64) -> String {
    let (n, zh, en) = if seconds.is_multiple_of(3600) {
        (seconds / 3600, " 小时", " hours")
    } else if seconds.is_multiple_of(60) {
        (seconds / 60, " 分钟", " minutes")
    } else {
        (seconds, " 秒", " seconds")
    };
    format!("{n}{}", l.pick(zh, en))
}

fn districts_table(l: Lang, report: &Reconciliation) -> Markup {
    html! {
        table #districts data-generated=(report.generated_at) {
            thead { tr {
                th { (l.pick("区县", "District")) }
                th { (l.pick("最近联系", "Last contact")) }
                th.num { (l.pick("排队中", "Queued")) }
                th.num { (l.pick("传输中", "In flight")) }
                th.num { (l.pick("已归档", "Archived")) }
                th.num { (l.pick("不一致", "Divergent")) }
                th { (l.pick("需处理", "Needs attention")) }
                th { (l.pick("前台上传", "Live uploads")) }
            } }
            tbody {
                @if report.districts.is_empty() {
                    tr { td colspan="8" .muted { (l.pick("还没有区县登记节点。", "No district has enrolled a node yet.")) } }
                }
                @for district in &report.districts {
                    (district_row(l, district))
                }
            }
        }
    }
}

fn district_row(l: Lang, district: &DistrictReport) -> Markup {
    let attention = district
        .batches
        .iter()
        .filter(|b| b.advice_code.is_some())
        .count();
    html! {
        tr.district.stale[district.stale] data-district=(district.district) data-stale=(district.stale) {
            td {
                a href=(format!("/reconcile/{}", segment(&district.district))) { (district.district) }
                @if let Some(name) = &district.name { " " span.muted { (name) } }
            }
            td {
                (district.last_contact.as_deref().unwrap_or(l.pick("从未", "never")))
                @if district.stale { " " span.state.s-rework { (l.pick("失联", "stale")) } }
            }
            td.num { (district.counts.queued) }
            td.num { (district.counts.in_flight) }
            td.num { (district.counts.archived) }
            td.num.error[district.counts.divergent > 0] { (district.counts.divergent) }
            td { @if attention > 0 { span.warn { (attention) } } @else { span.muted { "—" } } }
            td.live {
                @if district.live.total() == 0 { span.muted { "—" } }
                @else {
                    @if district.live.submitted > 0 { span.warn { (l.pick("待复核 ", "to review ")) (district.live.submitted) } " " }
                    @if district.live.open + district.live.returned > 0 { span { (l.pick("上传中 ", "open ")) (district.live.open + district.live.returned) } " " }
                    @if district.live.approved > 0 { span { (l.pick("待月结 ", "to close ")) (district.live.approved) } " " }
                    @if district.live.archived > 0 { span.muted { (l.pick("已归档 ", "archived ")) (district.live.archived) } }
                }
            }
        }
    }
}

/// One district: its nodes and every batch with its state, error and advice.
pub(super) async fn reconcile_district(
    State(backend): State<Arc<HubBackend>>,
    viewer: Viewer,
    Path(district): Path<String>,
) -> Response {
    if !central(&viewer) {
        return viewer.forbidden();
    }
    let report = match backend.reconcile(Some(district.clone())).await {
        Ok(report) => report,
        Err(err) => return viewer.fail(err.into()),
    };
    let l = viewer.lang;
    let Some(found) = report.districts.iter().find(|d| d.district == district) else {
        return viewer.fail(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            l.pick(
                "没有该区县的对账记录。",
                "No reconciliation for that district.",
            ),
        ));
    };
    let title = format!("{} · {district}", l.pick("对账", "Reconciliation"));
    let body = html! {
        p.crumbs { a href="/reconcile" { (l.pick("对账", "Reconciliation")) } " › " (district) }
        h1 { (title) @if let Some(name) = &found.name { " " (name) } @if found.stale { " " span.state.s-rework { (l.pick("失联", "stale")) } } }
        h2 { (l.pick("节点", "Nodes")) }
        table { thead { tr {
            th { (l.pick("节点", "Node")) } th { (l.pick("登记时间", "Enrolled")) }
            th { (l.pick("最近联系", "Last contact")) } th { (l.pick("状态", "Status")) }
        } } tbody {
            @for node in &found.nodes {
                tr {
                    td { (node.node_id) } td { (node.enrolled_at) }
                    td { (node.last_contact.as_deref().unwrap_or(l.pick("从未", "never"))) }
                    td { @if node.revoked { span.error { (l.pick("已吊销", "revoked")) } } @else { (l.pick("有效", "active")) } }
                }
            }
        } }
        h2 { (l.pick("批次", "Batches")) }
        table #batches { thead { tr {
            th { (l.pick("批次", "Batch")) } th { (l.pick("中心状态", "At the hub")) }
            th { (l.pick("边缘状态", "At the edge")) } th.num { (l.pick("页数", "Pages")) }
            th { (l.pick("归档时间", "Archived at")) } th { (l.pick("错误与建议", "Error and advice")) }
        } } tbody {
            @if found.batches.is_empty() { tr { td colspan="6" .muted { (l.pick("没有批次。", "No batches.")) } } }
            @for batch in &found.batches {
                tr data-batch=(batch.batch) {
                    td { (batch.batch) }
                    td { span class=(format!("state s-{}", serde_json::to_value(batch.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())) { (reconcile_state_label(l, batch.state)) } }
                    td { (batch.edge_state.as_deref().map(|s| edge_state_label(l, s)).unwrap_or_default()) }
                    td.num { (batch.pages.map(|p| p.to_string()).unwrap_or_default()) }
                    td { (batch.committed_at.as_deref().unwrap_or("")) }
                    td {
                        @if let Some(error) = &batch.last_error { div.error { (error) } }
                        @if let Some(advice) = batch.advice_code { div.warn { (advice.text(l == Lang::Zh)) } }
                    }
                }
            }
        } }
    };
    layout(&viewer, &title, &[], body).into_response()
}

/// The organisation tree, with a form to add one and buttons to disable or
/// enable (through `/api/v1/orgs`).
pub(super) async fn orgs(State(backend): State<Arc<HubBackend>>, viewer: Viewer) -> Response {
    if !viewer.is(&[Role::SystemAdmin]) {
        return viewer.forbidden();
    }
    let tree = match backend
        .db()
        .run(|conn| orgs::tree(conn).map_err(ApiError::from))
        .await
    {
        Ok(tree) => tree,
        Err(err) => return viewer.fail(err),
    };
    let l = viewer.lang;
    let body = html! {
        h1 { (l.pick("机构管理", "Organisations")) }
        table #orgs { thead { tr {
            th { (l.pick("代码", "Code")) } th { (l.pick("名称", "Name")) }
            th { (l.pick("层级", "Level")) } th { (l.pick("状态", "Status")) } th {}
        } } tbody { @for node in &tree { (org_rows(l, node, 0)) } } }
        h2 { (l.pick("新增机构", "Add an organisation")) }
        form.api #org-add data-method="POST" data-url="/api/v1/orgs" {
            label { (l.pick("代码", "Code")) " " input name="code" required pattern="[0-9]{6}([0-9]{3})?" placeholder="330106"; }
            label { (l.pick("名称", "Name")) " " input name="name" required placeholder=(l.pick("西湖区", "Xihu District")); }
            label { (l.pick("上级", "Parent")) " " input name="parent" placeholder="330100"; }
            button type="submit" { (l.pick("添加", "Add")) }
            span.form-status role="status" {}
        }
    };
    layout(&viewer, l.pick("机构管理", "Organisations"), &[], body).into_response()
}

fn org_rows(l: Lang, node: &OrgNode, depth: usize) -> Markup {
    let org = &node.org;
    let active = org.status == "active";
    let patch = if active {
        r#"{"status":"disabled"}"#
    } else {
        r#"{"status":"active"}"#
    };
    html! {
        tr data-org=(org.code) {
            td { (PreEscaped("&nbsp;&nbsp;".repeat(depth))) (org.code) }
            td { (org.name) }
            td { (match org.level { OrgLevel::City => l.pick("市", "city"), OrgLevel::District => l.pick("区县", "district"), OrgLevel::StreetOffice => l.pick("街道", "street office") }) }
            td { @if active { (l.pick("启用", "active")) } @else { span.muted { (l.pick("停用", "disabled")) } } }
            td { button.api type="button" data-method="PATCH" data-url=(format!("/api/v1/orgs/{}", org.code)) data-body=(patch) {
                @if active { (l.pick("停用", "Disable")) } @else { (l.pick("启用", "Enable")) }
            } }
        }
        @for child in &node.children { (org_rows(l, child, depth + 1)) }
    }
}

/// Users with their roles, the grants, and forms for both (through
/// `/api/v1/users` and `/api/v1/grants`).
pub(super) async fn users(State(backend): State<Arc<HubBackend>>, viewer: Viewer) -> Response {
    if !viewer.is(&[Role::SystemAdmin]) {
        return viewer.forbidden();
    }
    let loaded = backend
        .db()
        .run(|conn| {
            let list = users::list(conn)?;
            let grants = users::grants(conn, None)?;
            Ok::<_, ApiError>((list, grants))
        })
        .await;
    let (list, grants) = match loaded {
        Ok(loaded) => loaded,
        Err(err) => return viewer.fail(err),
    };
    let l = viewer.lang;
    let now = crate::store::now();
    let roles = [
        Role::Reviewer,
        Role::Auditor,
        Role::Clerk,
        Role::ArchiveAdmin,
        Role::ReadOnly,
        Role::SystemAdmin,
    ];
    let body = html! {
        h1 { (l.pick("用户与授权", "Users and grants")) }
        table #users { thead { tr {
            th { (l.pick("用户名", "User name")) } th { (l.pick("姓名", "Name")) }
            th { (l.pick("角色", "Role")) } th { (l.pick("机构", "Organisation")) }
            th { (l.pick("状态", "Status")) } th {}
        } } tbody { @for user in &list {
            tr data-user=(user.username) {
                td { (user.username) } td { (user.display_name) }
                td { (role_label(l, user.role)) } td { (user.org) }
                td {
                    @if user.disabled { span.muted { (l.pick("停用", "disabled")) } }
                    @else if user.locked_until.as_deref().is_some_and(|t| t > now.as_str()) { span.warn { (l.pick("已锁定", "locked")) } }
                    @else { (l.pick("启用", "active")) }
                }
                td { button.api type="button" data-method="PATCH" data-url=(format!("/api/v1/users/{}", segment(&user.username)))
                    data-body=(if user.disabled { r#"{"disabled":false}"# } else { r#"{"disabled":true}"# }) {
                    @if user.disabled { (l.pick("启用", "Enable")) } @else { (l.pick("停用", "Disable")) }
                } }
            }
        } } }
        h2 { (l.pick("新增用户", "Add a user")) }
        form.api #user-add data-method="POST" data-url="/api/v1/users" {
            label { (l.pick("用户名", "User name")) " " input name="username" required; }
            label { (l.pick("姓名", "Name")) " " input name="display_name"; }
            label { (l.pick("角色", "Role")) " " select name="role" {
                @for role in roles { option value=(role.as_str()) { (role_label(l, role)) } }
            } }
            label { (l.pick("机构代码", "Organisation code")) " " input name="org" required placeholder="330106"; }
            label { (l.pick("初始密码", "Initial password")) " " input name="password" type="password" required minlength="8" autocomplete="new-password"; }
            button type="submit" { (l.pick("添加", "Add")) }
            span.form-status role="status" {}
        }
        h2 { (l.pick("跨区授权", "Cross-district grants")) }
        table #grants { thead { tr {
            th { (l.pick("用户", "User")) } th { (l.pick("机构", "Organisation")) }
            th { (l.pick("至", "Until")) } th { (l.pick("事由", "Reason")) }
            th { (l.pick("授权人", "Granted by")) } th {}
        } } tbody { @for grant in &grants {
            @let live = grant.revoked_at.is_none() && grant.expires_at.as_str() > now.as_str();
            tr data-grant=(grant.id) .muted[!live] {
                td { (grant.username) } td { (grant.org) } td { (grant.expires_at) }
                td { (grant.reason) } td { (grant.granted_by) }
                td {
                    @if live { button.api type="button" data-method="DELETE" data-url=(format!("/api/v1/grants/{}", grant.id)) { (l.pick("撤销", "Revoke")) } }
                    @else if grant.revoked_at.is_some() { (l.pick("已撤销", "revoked")) }
                    @else { (l.pick("已过期", "expired")) }
                }
            }
        } } }
        form.api #grant-add data-method="POST" data-url="/api/v1/grants" {
            label { (l.pick("用户名", "User name")) " " input name="username" required; }
            label { (l.pick("机构代码", "Organisation code")) " " input name="org" required; }
            label { (l.pick("截止日期", "Last day")) " " input name="until" type="date" required; }
            label { (l.pick("事由", "Reason")) " " input name="reason" required; }
            button type="submit" { (l.pick("授权", "Grant")) }
            span.form-status role="status" {}
        }
    };
    layout(&viewer, l.pick("用户与授权", "Users and grants"), &[], body).into_response()
}

/// The dictionaries and templates in force, each with its version.
pub(super) async fn dictionaries(
    State(backend): State<Arc<HubBackend>>,
    viewer: Viewer,
) -> Response {
    if !viewer.is(&[Role::SystemAdmin]) {
        return viewer.forbidden();
    }
    let all = match backend
        .db()
        .run(|conn| dictionaries::in_force(conn).map_err(ApiError::from))
        .await
    {
        Ok(all) => all,
        Err(err) => return viewer.fail(err),
    };
    let l = viewer.lang;
    let body = html! {
        h1 { (l.pick("字典与模板", "Dictionaries and templates")) }
        p.muted { (l.pick(
            "修改后生成新版本，各区县边缘节点在下次同步时应用。可改名称与启用状态；代码由软件确定。",
            "A change makes a new version, which every district's edge applies when it next syncs. Labels and use can change; the codes are fixed by the software."
        )) }
        @for published in [&all.categories, &all.retentions, &all.defects] {
            @let kind = published.content.kind;
            section.file data-dictionary=(kind.as_str()) {
                h2 { (l.pick(kind.label_zh(), kind.as_str())) " · " (l.pick("版本", "version")) " " (published.version) }
                form.api.dictionary data-method="PUT" data-url=(format!("/api/v1/dictionaries/{kind}")) data-shape="entries" {
                    table { thead { tr { th { (l.pick("代码", "Code")) } th { "中文" } th { "English" } th { (l.pick("启用", "In use")) } } }
                    tbody { @for entry in &published.content.entries {
                        tr.entry data-code=(entry.code) {
                            td { code { (entry.code) } }
                            td { input name="zh" value=(entry.zh) required; }
                            td { input name="en" value=(entry.en) required; }
                            td { input name="active" type="checkbox" checked[entry.active]; }
                        }
                    } } }
                    button type="submit" { (l.pick("发布新版本", "Publish a new version")) }
                    span.form-status role="status" {}
                }
            }
        }
        h2 { (l.pick("业务类型模板", "Business-type templates")) }
        table #templates { thead { tr {
            th { (l.pick("业务类型", "Type")) } th { (l.pick("名称", "Name")) } th { (l.pick("门类", "Category")) }
            th { (l.pick("保管期限", "Retention")) } th { (l.pick("版本", "Version")) } th { (l.pick("发布人", "By")) }
        } } tbody { @for t in &all.templates {
            tr {
                td { (t.content.business_type) } td { (t.content.name) }
                td { (l.pick(t.content.category.label_zh(), t.content.category.code())) }
                td { (match l { Lang::Zh => t.content.retention.label_zh(), Lang::En => t.content.retention.to_string() }) }
                td.num { (t.version) } td { (t.author) }
            }
        } } }
        p.muted { (l.pick("模板用 dangan-hub template import 或 PUT /api/v1/templates/{业务类型} 发布。", "Templates are published with dangan-hub template import or PUT /api/v1/templates/{type}.")) }
    };
    layout(&viewer, l.pick("字典与模板", "Dictionaries"), &[], body).into_response()
}

#[derive(Deserialize)]
pub(super) struct AuditForm {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// Audit queries for auditors and system administrators: the newest 500
/// matching entries, and a CSV export of the same query. Reading is
/// audited like any other retrieval.
pub(super) async fn audit(
    State(backend): State<Arc<HubBackend>>,
    viewer: Viewer,
    Query(form): Query<AuditForm>,
) -> Response {
    if !viewer.is(&[Role::SystemAdmin, Role::Auditor]) {
        return viewer.forbidden();
    }
    let given = |v: &Option<String>| {
        v.as_ref()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
    };
    let filter = Filter {
        actor: given(&form.actor),
        action: given(&form.action),
        target: given(&form.target),
        from: given(&form.from),
        to: given(&form.to),
        limit: None,
        offset: 0,
    };
    let query: Vec<(&str, String)> = [
        ("actor", &filter.actor),
        ("action", &filter.action),
        ("target", &filter.target),
        ("from", &filter.from),
        ("to", &filter.to),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
    .collect();
    let csv_url = format!(
        "/api/v1/audit?{}",
        serde_urlencoded::to_string(
            query
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .chain([("format", "csv"), ("limit", "10000")])
                .collect::<Vec<_>>()
        )
        .unwrap_or_default()
    );
    let mut entries =
        match api::query_audited(&backend, viewer.user.clone(), ActorKind::User, filter).await {
            Ok(entries) => entries,
            Err(err) => return viewer.fail(err),
        };
    entries.reverse();
    entries.truncate(500);
    let l = viewer.lang;
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let body = html! {
        h1 { (l.pick("审计日志", "Audit trail")) }
        form.filters #audit-query method="get" action="/audit" {
            label { (l.pick("操作人", "Who")) " " input name="actor" value=(value(&form.actor)); }
            label { (l.pick("操作", "Action")) " " input name="action" value=(value(&form.action)) placeholder="file.* / search / login"; }
            label { (l.pick("对象", "Target")) " " input name="target" value=(value(&form.target)); }
            label { (l.pick("起", "From")) " " input name="from" type="date" value=(value(&form.from)); }
            label { (l.pick("止", "To")) " " input name="to" type="date" value=(value(&form.to)); }
            button type="submit" { (l.pick("查询", "Search")) }
            a.button #audit-csv href=(csv_url) download { (l.pick("导出 CSV", "Export CSV")) }
        }
        p.muted { (l.pick("最新的在前，最多显示 500 条；导出包含全部匹配项（至多 10000 条）。", "Newest first, at most 500 shown; the export holds every match (up to 10,000).")) }
        table #audit { thead { tr {
            th.num { "#" } th { (l.pick("时间", "When")) } th { (l.pick("操作人", "Who")) }
            th { (l.pick("地址", "From")) } th { (l.pick("操作", "Action")) } th { (l.pick("对象", "Target")) }
            th { (l.pick("结果", "Result")) } th { (l.pick("详情", "Detail")) }
        } } tbody { @for e in &entries {
            tr data-action=(e.action) {
                td.num { (e.seq) } td { (e.at) } td { (e.actor) " " span.muted { (e.actor_kind) } }
                td { (e.address.as_deref().unwrap_or("")) } td { code { (e.action) } }
                td { (e.target.as_deref().unwrap_or("")) }
                td.error[e.result != "ok"] { (e.result) }
                td { code.detail { (e.detail.as_deref().unwrap_or("")) } }
            }
        } } }
    };
    layout(&viewer, l.pick("审计日志", "Audit trail"), &[], body).into_response()
}
