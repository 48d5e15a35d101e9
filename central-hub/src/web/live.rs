//! The street-office clerk's upload page (事中扫描, `/upload`): the
//! business number typed or scanned in, the scanned pages dropped or
//! selected (or the scanner's folder), each page's progress, the pages as
//! the hub has them with their order to fix, and the hand-in for review.
//! The work is done in the browser by `assets/upload.js` over the JSON API
//! and tus (`/api/v1/uploads`, with tus-js-client served by the hub).
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::{Viewer, layout, segment};
use crate::api::ApiError;
use crate::backend::HubBackend;
use crate::live;
use crate::text::Lang;
use crate::users::Role;

/// `GET /upload`.
pub(super) async fn upload(viewer: Viewer) -> Response {
    if !live::may_upload(viewer.user.role) {
        return viewer.forbidden();
    }
    let l = viewer.lang;
    let body = html! {
        h1 { (l.pick("前台扫描上传", "Upload scans during the transaction")) }
        form.filters #number-form {
            label {
                (l.pick("业务编号", "Business number"))
                input #business-number name="number" autofocus autocomplete="off" required
                    placeholder=(l.pick("输入或扫描业务编号后回车", "type or scan it, then Enter"));
            }
            button type="submit" { (l.pick("打开", "Open")) }
        }
        p #upload-message.warn role="status" {}
        section #live-file.upload hidden {
            h2 { (l.pick("业务件 ", "Business file ")) span #live-number {} }
            p { span #live-state.state {} }
            p #return-reason.error hidden {}
            div #drop-zone.drop-zone {
                p { (l.pick("把扫描好的页面拖到这里，或：", "Drop the scanned pages here, or:")) }
                label.button { (l.pick("选择图像文件", "Choose image files"))
                    input #files type="file" multiple accept="image/jpeg,image/png,image/tiff" hidden; }
                " "
                label.button { (l.pick("选择扫描仪文件夹", "Choose the scanner's folder"))
                    input #folder type="file" multiple webkitdirectory hidden; }
                p.muted { (l.pick(
                    "每个文件一页，按文件名顺序上传；网络中断或刷新页面后会自动续传。",
                    "One page per file, uploaded in file-name order; a dropped connection or a reload resumes by itself.",
                )) }
            }
            h3 { (l.pick("上传队列", "Uploads")) }
            ol #queue.uploads {}
            h3 { (l.pick("已上传的页面", "Pages at the hub")) }
            ol #pages.thumbs {}
            p { button #submit type="button" disabled { (l.pick("提交复核", "Hand in for review")) } }
        }
    };
    layout(
        &viewer,
        l.pick("前台扫描上传", "Upload"),
        &["tus.min.js", "upload.js"],
        body,
    )
    .into_response()
}

/// Reviewers, archive and system administrators decide on live files.
fn reviews(viewer: &Viewer) -> bool {
    viewer.is(&[Role::Reviewer, Role::ArchiveAdmin, Role::SystemAdmin])
}

fn state_label(l: Lang, state: &str) -> &'static str {
    match state {
        "open" => l.pick("上传中", "open"),
        "submitted" => l.pick("待复核", "submitted"),
        "returned" => l.pick("已退回", "returned"),
        "approved" => l.pick("已通过", "approved"),
        "archived" => l.pick("已归档", "archived"),
        _ => l.pick("未知", "unknown"),
    }
}

/// `GET /review`: the live files waiting for review in the viewer's scope.
pub(super) async fn queue(State(backend): State<Arc<HubBackend>>, viewer: Viewer) -> Response {
    if !reviews(&viewer) {
        return viewer.forbidden();
    }
    let user = viewer.user.clone();
    let files = match backend
        .db()
        .run(move |conn| live::list(conn, &user, Some("submitted"), 500).map_err(ApiError::from))
        .await
    {
        Ok(files) => files,
        Err(err) => return viewer.fail(err),
    };
    let l = viewer.lang;
    let body = html! {
        h1 { (l.pick("前台上传复核", "Review of live uploads")) }
        p.muted { (l.pick("街道经办员在办理业务时上传、已提交复核的业务件。", "Business files street offices uploaded during the transaction and handed in.")) }
        table #review-queue {
            thead { tr {
                th { (l.pick("业务编号", "Business number")) }
                th { (l.pick("姓名", "Name")) }
                th { (l.pick("经办机构", "Organisation")) }
                th { (l.pick("业务类型", "Business type")) }
                th.num { (l.pick("页数", "Pages")) }
                th { (l.pick("提交人", "Uploaded by")) }
                th { (l.pick("最近更新", "Last change")) }
            } }
            tbody {
                @if files.is_empty() {
                    tr { td colspan="7" .muted { (l.pick("没有待复核的业务件。", "Nothing waits for review.")) } }
                }
                @for file in &files {
                    tr.live data-number=(file.business_number) {
                        td { a href=(format!("/review/{}", segment(&file.business_number))) { (file.business_number) } }
                        td { (file.person_name.as_deref().unwrap_or("—")) }
                        td { (file.organisation_name.as_deref().unwrap_or(&file.organisation)) }
                        td { (file.business_type.as_deref().unwrap_or("—")) }
                        td.num { (file.pages) }
                        td { (file.created_by) }
                        td { (file.updated_at) }
                    }
                }
            }
        }
    };
    layout(&viewer, l.pick("复核", "Review"), &[], body).into_response()
}

/// `GET /review/{number}`: one live file with its pages, to approve or
/// send back with a reason.
pub(super) async fn review(
    State(backend): State<Arc<HubBackend>>,
    viewer: Viewer,
    Path(number): Path<String>,
) -> Response {
    if !reviews(&viewer) {
        return viewer.forbidden();
    }
    let user = viewer.user.clone();
    let lookup = number.clone();
    let found = backend
        .db()
        .run(move |conn| live::visible(conn, &user, &lookup).map_err(ApiError::from))
        .await;
    let l = viewer.lang;
    let file = match found {
        Ok(Some(file)) => file,
        Ok(None) => {
            return viewer.fail(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                l.pick(
                    "没有这个业务件，或它不在您的权限范围内。",
                    "No such business file, or it is outside your scope.",
                ),
            ));
        }
        Err(err) => return viewer.fail(err),
    };
    let base = format!("/api/v1/live/{}", segment(&file.business_number));
    let body = html! {
        p.crumbs { a href="/review" { (l.pick("复核", "Review")) } " › " (file.business_number) }
        h1 { (file.business_number) " " span #review-state .state data-state=(file.state) { (state_label(l, &file.state)) } }
        dl.file-meta {
            dt { (l.pick("姓名", "Name")) } dd { (file.person_name.as_deref().unwrap_or("—")) }
            dt { (l.pick("身份证号", "ID number")) } dd { (file.person_id.as_deref().unwrap_or("—")) }
            dt { (l.pick("单位编号", "Employer")) } dd { (file.employer_id.as_deref().unwrap_or("—")) }
            dt { (l.pick("业务类型", "Business type")) } dd { (file.business_type.as_deref().unwrap_or("—")) }
            dt { (l.pick("业务日期", "Date")) } dd { (file.date.as_deref().unwrap_or("—")) }
            dt { (l.pick("经办机构", "Organisation")) } dd { (file.organisation) }
            dt { (l.pick("上传人", "Uploaded by")) } dd { (file.created_by) }
            @if let Some(reason) = &file.return_reason {
                dt { (l.pick("上次退回原因", "Last sent back for")) } dd { (reason) }
            }
        }
        h2 { (l.pick("页面", "Pages")) " (" (file.pages.len()) ")" }
        ol.thumbs #review-pages {
            @for (index, page) in file.pages.iter().enumerate() {
                li.thumb {
                    a href=(format!("{base}/pages/{}/view", page.id)) target="_blank" {
                        img src=(format!("{base}/pages/{}/thumbnail", page.id)) loading="lazy"
                            alt=(page.filename.as_deref().unwrap_or(""));
                        br; span { (index + 1) ". " (page.filename.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
        @if file.state == "submitted" {
            div.actions {
                button.api #approve type="button" data-method="POST" data-url=(format!("{base}/approve")) {
                    (l.pick("通过复核", "Approve"))
                }
            }
            form.api #send-back data-method="POST" data-url=(format!("{base}/return")) {
                label { (l.pick("退回原因（经办员可见）", "Why it is sent back (the clerk sees this)"))
                    input name="reason" required size="50"; }
                button type="submit" { (l.pick("退回", "Send back")) }
                span.form-status {}
            }
        }
    };
    layout(&viewer, &file.business_number, &[], body).into_response()
}

/// The headers that let the configured business systems (and the hub
/// itself) frame a viewer link's pages, and nobody else.
fn embeddable(backend: &HubBackend, mut response: Response) -> Response {
    let mut policy = "frame-ancestors 'self'".to_owned();
    for origin in &backend.config().live.embed_origins {
        policy.push(' ');
        policy.push_str(origin);
    }
    if let Ok(value) = axum::http::HeaderValue::from_str(&policy) {
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// `GET /view/{token}`: a live file's pages, for a business system to
/// embed, through a short-lived link (`POST /api/v1/live/{number}/viewer-link`);
/// no login. An expired or unknown link is a 404 page.
pub(super) async fn linked(
    State(backend): State<Arc<HubBackend>>,
    Path(token): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let l = super::request_lang(&headers);
    let lookup = token.clone();
    let found = backend
        .db()
        .run(move |conn| {
            let Some((number, _, expires_at)) = live::viewer_link(conn, &lookup)? else {
                return Ok(None);
            };
            Ok::<_, ApiError>(live::get(conn, &number)?.map(|file| (file, expires_at)))
        })
        .await;
    let (file, expires_at) = match found {
        Ok(Some(found)) => found,
        Ok(None) => {
            return super::message_page(
                l,
                StatusCode::NOT_FOUND,
                l.pick(
                    "链接已过期或不存在。",
                    "This link has expired or does not exist.",
                ),
            );
        }
        Err(err) => return err.into_response(),
    };
    let total = file.pages.len();
    let markup = html! {
        (maud::DOCTYPE)
        html lang=(match l { Lang::Zh => "zh-CN", Lang::En => "en" }) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (file.business_number) }
                link rel="stylesheet" href=(super::asset_url("app.css"));
            }
            body {
                main.linked {
                    h1 { (file.business_number) " " span.muted { (file.person_name.as_deref().unwrap_or("")) } }
                    p.muted { (l.pick("链接有效期至 ", "Link valid until ")) (expires_at) }
                    @for (index, page) in file.pages.iter().enumerate() {
                        figure.linked-page {
                            img src=(format!("/view/{token}/pages/{}", page.id)) loading="lazy"
                                alt=(format!("{} / {total}", index + 1));
                            figcaption.muted { (index + 1) " / " (total) }
                        }
                    }
                }
            }
        }
    };
    embeddable(&backend, markup.into_response())
}

/// `GET /view/{token}/pages/{page}`: one page image of a viewer link.
pub(super) async fn linked_image(
    State(backend): State<Arc<HubBackend>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<dangan_sync::tls::PeerAddr>,
    Path((token, page)): Path<(String, i64)>,
    headers: axum::http::HeaderMap,
) -> Response {
    let answer = crate::api::pages::linked_page(&backend, &peer, &token, page, &headers).await;
    embeddable(&backend, answer.unwrap_or_else(IntoResponse::into_response))
}
