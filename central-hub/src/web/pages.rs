//! Login, logout, the language switch and the start page.
use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dangan_sync::session;
use dangan_sync::tls::PeerAddr;
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    LANG_COOKIE, Secure, Viewer, append_cookie, asset_url, lang_code, layout, local_target,
    message_page, parse_lang, request_lang, see_other,
};
use crate::api::{self, ApiError};
use crate::backend::HubBackend;
use crate::text::Lang;
use crate::users::{self, LoginRefused, Role};

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    next: Option<String>,
    error: Option<String>,
}

pub(super) async fn login_form(headers: HeaderMap, Query(query): Query<LoginQuery>) -> Markup {
    let l = request_lang(&headers);
    let next = local_target(query.next.as_deref());
    let error = match query.error.as_deref() {
        Some("locked") => Some(l.pick(
            "登录失败次数过多，账户已暂时锁定，请稍后再试或联系管理员。",
            "Too many failed logins: the account is locked for a while. Try later or ask an administrator.",
        )),
        Some(_) => Some(l.pick(
            "用户名或密码错误，或该用户已停用。",
            "Wrong user name or password, or the user is disabled.",
        )),
        None => None,
    };
    html! {
        (maud::DOCTYPE)
        html lang=(match l { Lang::Zh => "zh-CN", Lang::En => "en" }) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (l.pick("登录 · 档案数字化中心", "Log in · Dangan hub")) }
                link rel="stylesheet" href=(asset_url("app.css"));
            }
            body {
                main.login {
                    h1 { (l.pick("档案数字化 · 中心", "Dangan · hub")) }
                    @if let Some(error) = error { p.error role="alert" { (error) } }
                    form method="post" action="/login" {
                        input type="hidden" name="next" value=(next);
                        label { (l.pick("用户名", "User name")) input name="username" autocomplete="username" required autofocus; }
                        label { (l.pick("密码", "Password")) input name="password" type="password" autocomplete="current-password" required; }
                        button type="submit" { (l.pick("登录", "Log in")) }
                    }
                    form method="post" action="/lang" {
                        input type="hidden" name="lang" value=(match l { Lang::Zh => "en", Lang::En => "zh" });
                        input type="hidden" name="next" value=(format!("/login?{}", serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default()));
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

/// Logs in through the same path as `POST /api/v1/session` (lockout,
/// audit), then sets the session cookie.
pub(super) async fn login(
    State(backend): State<Arc<HubBackend>>,
    axum::Extension(Secure(secure)): axum::Extension<Secure>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = local_target(form.next.as_deref());
    let username = form.username.trim().to_owned();
    let outcome =
        api::login_audited(&backend, username, form.password, peer.0.ip().to_string()).await;
    let refused = |why: &str| {
        let query = serde_urlencoded::to_string([("next", next.as_str()), ("error", why)])
            .unwrap_or_default();
        see_other(&format!("/login?{query}"))
    };
    match outcome {
        Ok(Ok((token, user))) => {
            tracing::info!(user = %user.username, "logged in (web)");
            let mut response = see_other(&next);
            let lifetime = users::SESSION_HOURS * 3600;
            append_cookie(
                &mut response,
                &session::set_cookie(api::COOKIE, &token, lifetime, true, secure),
            );
            response
        }
        Ok(Err(LoginRefused::BadCredentials)) => refused("1"),
        Ok(Err(LoginRefused::Locked { .. })) => refused("locked"),
        Err(err) => err.into_response(),
    }
}

pub(super) async fn logout(
    State(backend): State<Arc<HubBackend>>,
    axum::Extension(Secure(secure)): axum::Extension<Secure>,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = session::cookie(&headers, api::COOKIE) {
        let ended = backend
            .db()
            .run(move |conn| users::end_session(conn, &token).map_err(ApiError::from))
            .await;
        if let Err(err) = ended {
            return err.into_response();
        }
    }
    let mut response = see_other("/login");
    append_cookie(
        &mut response,
        &session::set_cookie(api::COOKIE, "", 0, true, secure),
    );
    response
}

#[derive(Deserialize)]
pub(super) struct LangForm {
    lang: String,
    next: Option<String>,
}

/// Switches the language (kept in a cookie for a year).
pub(super) async fn set_lang(
    axum::Extension(Secure(secure)): axum::Extension<Secure>,
    headers: HeaderMap,
    Form(form): Form<LangForm>,
) -> Response {
    let Some(lang) = parse_lang(&form.lang) else {
        return message_page(
            request_lang(&headers),
            StatusCode::BAD_REQUEST,
            "lang must be zh or en",
        );
    };
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
        &session::set_cookie(LANG_COOKIE, lang_code(lang), 365 * 86400, false, secure),
    );
    response
}

/// The start page: where each role begins.
pub(super) async fn home(viewer: Viewer) -> Response {
    let l = viewer.lang;
    let links: Vec<(&str, &str, &str)> = match viewer.user.role {
        Role::SystemAdmin => vec![
            (
                "/reconcile",
                l.pick("对账", "Reconciliation"),
                l.pick(
                    "各区县已发送、在途、已归档与缺失的批次",
                    "what every district has sent, in flight, archived and missing",
                ),
            ),
            (
                "/admin/orgs",
                l.pick("机构管理", "Organisations"),
                l.pick(
                    "市、区县、街道的机构树",
                    "the city, district and street office tree",
                ),
            ),
            (
                "/admin/users",
                l.pick("用户与授权", "Users and grants"),
                l.pick(
                    "用户、角色与跨区授权",
                    "users, roles and cross-district grants",
                ),
            ),
            (
                "/admin/dictionaries",
                l.pick("字典与模板", "Dictionaries and templates"),
                l.pick(
                    "门类、保管期限、缺陷类型与业务类型模板",
                    "categories, retention periods, defect types and templates",
                ),
            ),
            (
                "/audit",
                l.pick("审计日志", "Audit trail"),
                l.pick("查询与导出", "query and export"),
            ),
        ],
        Role::ArchiveAdmin => vec![(
            "/reconcile",
            l.pick("对账", "Reconciliation"),
            l.pick(
                "各区县已发送、在途、已归档与缺失的批次",
                "what every district has sent, in flight, archived and missing",
            ),
        )],
        Role::Auditor => vec![(
            "/audit",
            l.pick("审计日志", "Audit trail"),
            l.pick(
                "谁在何时查看、下载、修改了什么",
                "who looked at, downloaded or changed what, and when",
            ),
        )],
        // A clerk's work is uploading during the transaction; reviewers and
        // read-only users find files: they start at the search.
        Role::Clerk => return see_other("/upload"),
        Role::Reviewer | Role::ReadOnly => return see_other("/search"),
    };
    let search = (
        "/search",
        l.pick("档案查询", "Search the archive"),
        l.pick(
            "按姓名、身份证号、业务编号等查找业务件，调阅与下载",
            "find business files by name, ID number, business number and more; view and download",
        ),
    );
    let links: Vec<_> = std::iter::once(search).chain(links).collect();
    let body = html! {
        h1 { (l.pick("欢迎，", "Welcome, ")) (viewer.user.display_name) }
        ul.start {
            @for (href, name, what) in &links {
                li { a href=(href) { (name) } " — " span.muted { (what) } }
            }
        }
    };
    layout(&viewer, l.pick("首页", "Start"), &[], body).into_response()
}
