//! The monthly close page for archive administrators (`/close`): a month's
//! live files by state, the ones not yet approved, the close button (with
//! a reason to force it), and the month's latest close report with its CSV.
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::{Viewer, layout, segment};
use crate::api::ApiError;
use crate::backend::HubBackend;
use crate::close;
use crate::live;
use crate::text::Lang;
use crate::users::Role;

#[derive(Deserialize)]
pub(super) struct MonthQuery {
    month: Option<String>,
}

/// The month before this one in `zone`, YYYY-MM.
fn last_month(zone: &jiff::tz::TimeZone) -> String {
    let today = jiff::Timestamp::now().to_zoned(zone.clone()).date();
    let first = today.first_of_month();
    first
        .yesterday()
        .map(|day| day.strftime("%Y-%m").to_string())
        .unwrap_or_default()
}

fn state_name(l: Lang, state: &str) -> &'static str {
    match state {
        "open" => l.pick("上传中", "open"),
        "submitted" => l.pick("待复核", "submitted"),
        "returned" => l.pick("已退回", "returned"),
        "approved" => l.pick("已通过（待归档）", "approved (to archive)"),
        "archived" => l.pick("已归档", "archived"),
        _ => l.pick("其他", "other"),
    }
}

/// `GET /close[?month=YYYY-MM]`.
pub(super) async fn page(
    State(backend): State<Arc<HubBackend>>,
    viewer: Viewer,
    Query(query): Query<MonthQuery>,
) -> Response {
    if !viewer.is(&[Role::ArchiveAdmin, Role::SystemAdmin]) {
        return viewer.forbidden();
    }
    let zone = backend.config().live.time_zone.clone();
    let month = query
        .month
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| last_month(&zone));
    let user = viewer.user.clone();
    let asked = month.clone();
    let loaded = backend
        .db()
        .run(move |conn| {
            let district = match user.role {
                Role::ArchiveAdmin => live::district_of(conn, &user.org).ok(),
                _ => None,
            };
            let preview = close::preview(conn, &asked, district.as_deref(), &zone)
                .map_err(|err| ApiError::malformed(err.to_string()))?;
            let report = close::last_report(conn, &asked, district.as_deref())?;
            Ok::<_, ApiError>((district, preview, report))
        })
        .await;
    let (district, preview, report) = match loaded {
        Ok(found) => found,
        Err(err) => return viewer.fail(err),
    };
    let l = viewer.lang;
    let csv_url = {
        let mut url = format!("/api/v1/closes/{}?format=csv", segment(&month));
        if let Some(district) = &district {
            url.push_str(&format!("&district={district}"));
        }
        url
    };
    let body = html! {
        h1 { (l.pick("月结归档", "Monthly close")) }
        form.filters #month-form method="get" action="/close" {
            label { (l.pick("月份", "Month")) input name="month" type="month" value=(month); }
            button type="submit" { (l.pick("查看", "Show")) }
        }
        p.muted {
            (l.pick("按 ", "Months in ")) (preview.time_zone) (l.pick(" 时区计算月份；", "; "))
            @match &district {
                Some(code) => { (l.pick("本区县：", "district ")) (code) }
                None => { (l.pick("全部区县", "every district")) }
            }
        }
        table #month-states {
            thead { tr { th { (l.pick("状态", "State")) } th.num { (l.pick("业务件", "Files")) } } }
            tbody {
                @if preview.states.is_empty() {
                    tr { td colspan="2" .muted { (l.pick("这个月没有前台上传的业务件。", "No live uploads this month.")) } }
                }
                @for (state, count) in &preview.states {
                    tr data-state=(state) { td { (state_name(l, state)) } td.num { (count) } }
                }
            }
        }
        @if !preview.unapproved.is_empty() {
            h2 { (l.pick("尚未通过复核", "Not approved yet")) }
            table #unapproved {
                thead { tr { th { (l.pick("业务编号", "Business number")) } th { (l.pick("机构", "Organisation")) } th { (l.pick("原因", "Why")) } } }
                tbody {
                    @for file in &preview.unapproved {
                        tr { td { (file.business_number) } td { (file.organisation) } td { (file.reason) } }
                    }
                }
            }
        }
        @if preview.ended {
            form.api #close-form data-method="POST" data-url="/api/v1/closes" {
                input type="hidden" name="month" value=(month);
                @if !preview.unapproved.is_empty() {
                    label { (l.pick("强制月结的理由（将被记录）", "Reason to close anyway (recorded)"))
                        input name="force" size="40"; }
                }
                button type="submit" { (l.pick("执行月结归档", "Close the month")) }
                span.form-status {}
            }
        } @else {
            p.muted { (l.pick("该月尚未结束，结束后才能月结。", "The month has not ended; it can be closed once it has.")) }
        }
        @if let Some(report) = &report {
            h2 { (l.pick("月结报告", "Close report")) }
            p #close-summary {
                (report.closed_at) " · " (report.closed_by) " · "
                (l.pick("归档 ", "archived ")) (report.archived_files) (l.pick(" 件 / ", " files / "))
                (report.archived_pages) (l.pick(" 页", " pages"))
                @if report.archived_before > 0 { " · " (l.pick("此前已归档 ", "earlier ")) (report.archived_before) }
                @for batch in &report.batches { " · " code { (batch) } }
                @if let Some(reason) = &report.forced { " · " span.warn { (l.pick("强制：", "forced: ")) (reason) } }
            }
            table #close-report {
                thead { tr { th { (l.pick("机构 / 业务类型", "Organisation / business type")) } th.num { (l.pick("业务件", "Files")) } th.num { (l.pick("页", "Pages")) } } }
                tbody {
                    @for count in &report.by_organisation {
                        tr { td { (count.key) " " (count.name.as_deref().unwrap_or("")) } td.num { (count.files) } td.num { (count.pages) } }
                    }
                    @for count in &report.by_business_type {
                        tr { td { (count.key) " " (count.name.as_deref().unwrap_or("")) } td.num { (count.files) } td.num { (count.pages) } }
                    }
                }
            }
            @if !report.excluded.is_empty() {
                h3 { (l.pick("未归档的业务件", "Left out")) }
                ul { @for file in &report.excluded { li { (file.business_number) " — " (file.reason) } } }
            }
            p { a.button #close-csv href=(csv_url) download { (l.pick("导出 CSV", "Export CSV")) } }
        }
    };
    layout(&viewer, l.pick("月结归档", "Monthly close"), &[], body).into_response()
}
