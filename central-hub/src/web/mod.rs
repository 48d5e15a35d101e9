//! The hub's web UI, served with the JSON API by `dangan-hub serve`: for
//! central administrators (reconciliation, organisations, users, grants,
//! dictionaries), auditors (the audit trail) and reviewers.
//!
//! Server-rendered pages (maud), Simplified Chinese by default with English
//! one click away, in the same look as the edge's UI (the stylesheet and
//! the page viewer's script are `dangan_shared::web`). Forms that change
//! something call the JSON API from a little plain JavaScript
//! (`assets/hub.js`), so every change takes the API's path: the same
//! checks, the same audit entries.
//!
//! Sessions are the API's (`dangan_hub_session` cookie, `HttpOnly`,
//! `SameSite=Strict`, `Secure` over HTTPS); the CSRF guard in front of the
//! pages is the API's policy with the login form added.
mod admin;
mod archive;
mod close;
mod live;
mod pages;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use dangan_sync::session::{self, CsrfPolicy};
use maud::{DOCTYPE, Markup, html};

use crate::api::{self, ApiError};
use crate::backend::HubBackend;
use crate::text::Lang;
use crate::users::{self, Role, User};

/// The language cookie (the hub keeps the choice per browser).
const LANG_COOKIE: &str = "dangan_lang";

/// The pages, behind the CSRF guard; merged with the API by `http::app`.
pub fn router(backend: Arc<HubBackend>, secure_cookies: bool) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/lang", post(pages::set_lang))
        .route("/reconcile", get(admin::reconcile))
        .route("/reconcile/{district}", get(admin::reconcile_district))
        .route("/originals", get(admin::originals))
        .route("/admin/orgs", get(admin::orgs))
        .route("/admin/users", get(admin::users))
        .route("/admin/dictionaries", get(admin::dictionaries))
        .route("/audit", get(admin::audit))
        .route("/search", get(archive::search))
        .route("/files/{id}", get(archive::file))
        .route("/files/{id}/pages/{seq}", get(archive::page))
        .route("/upload", get(live::upload))
        .route("/review", get(live::queue))
        .route("/review/{number}", get(live::review))
        .route("/close", get(close::page))
        .route("/view/{token}", get(live::linked))
        .route("/view/{token}/pages/{page}", get(live::linked_image))
        .route("/static/{file}", get(asset))
        .with_state(backend)
        .layer(axum::Extension(Secure(secure_cookies)))
        .layer(axum::middleware::from_fn_with_state(
            CSRF,
            session::csrf_guard,
        ))
        .layer(axum::middleware::map_response(security_headers))
}

/// Whether cookies are marked `Secure` (served over HTTPS).
#[derive(Clone, Copy, Debug)]
struct Secure(bool);

/// The pages' CSRF guard: the API's cookie and key context (one session,
/// one CSRF token), with the login form as the one place a visitor without
/// a session may post, and refusals as a page.
const CSRF: CsrfPolicy = CsrfPolicy {
    cookie: api::COOKIE,
    context: api::CSRF_CONTEXT,
    login_paths: &["/login", "/lang"],
    refuse: csrf_refusal,
};

fn csrf_refusal(_path: &str, headers: &HeaderMap, _why: &str) -> Response {
    message_page(
        request_lang(headers),
        StatusCode::FORBIDDEN,
        request_lang(headers).pick(
            "请求被拒绝：页面已过期或来自其他网站。请刷新页面后重试。",
            "Request refused: the page is stale or came from another site. Reload the page and try again.",
        ),
    )
}

/// Pages are not framed by other sites (unless a page says who may frame
/// it: a viewer link's) and say what they are.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn parse_lang(text: &str) -> Option<Lang> {
    match text {
        "zh" => Some(Lang::Zh),
        "en" => Some(Lang::En),
        _ => None,
    }
}

fn lang_code(lang: Lang) -> &'static str {
    match lang {
        Lang::Zh => "zh",
        Lang::En => "en",
    }
}

/// The visitor's language: the cookie, else Chinese.
fn request_lang(headers: &HeaderMap) -> Lang {
    session::cookie(headers, LANG_COOKIE)
        .and_then(|v| parse_lang(&v))
        .unwrap_or(Lang::Zh)
}

/// The logged-in user of a page, with their language and CSRF token. A
/// visitor without a session is sent to the login page, and back after.
pub struct Viewer {
    pub user: User,
    pub lang: Lang,
    pub csrf: String,
}

impl Viewer {
    fn pick<'a>(&self, zh: &'a str, en: &'a str) -> &'a str {
        self.lang.pick(zh, en)
    }

    /// A page refusing a user whose role does not allow it.
    fn forbidden(&self) -> Response {
        message_page(
            self.lang,
            StatusCode::FORBIDDEN,
            self.pick(
                "您的角色无权访问此页面。",
                "Your role does not allow this page.",
            ),
        )
    }

    /// An error page for a failed request, in the viewer's language.
    fn fail(&self, err: ApiError) -> Response {
        if err.status.is_server_error() {
            tracing::error!(code = err.code, message = %err.message, "page failed");
            return message_page(
                self.lang,
                err.status,
                self.pick(
                    "服务器内部错误，已记录日志。",
                    "Internal error; it has been logged.",
                ),
            );
        }
        message_page(self.lang, err.status, &err.message)
    }

    fn is(&self, roles: &[Role]) -> bool {
        roles.contains(&self.user.role)
    }
}

impl FromRequestParts<Arc<HubBackend>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        backend: &Arc<HubBackend>,
    ) -> Result<Self, Response> {
        let target = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let to_login = move || {
            let query =
                serde_urlencoded::to_string([("next", target.as_str())]).unwrap_or_default();
            Redirect::to(&format!("/login?{query}")).into_response()
        };
        let Some(token) = session::cookie(&parts.headers, api::COOKIE) else {
            return Err(to_login());
        };
        let lookup = token.clone();
        let user = backend
            .db()
            .run(move |conn| users::session_user(conn, &lookup).map_err(ApiError::from))
            .await
            .map_err(IntoResponse::into_response)?;
        let Some(user) = user else {
            return Err(to_login());
        };
        Ok(Viewer {
            user,
            lang: request_lang(&parts.headers),
            csrf: api::csrf_token(&token),
        })
    }
}

/// The static files, embedded in the binary.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.css", "text/css", dangan_shared::web::APP_CSS),
    (
        "viewer.js",
        "text/javascript",
        dangan_shared::web::VIEWER_JS,
    ),
    ("hub.js", "text/javascript", include_str!("assets/hub.js")),
    (
        "upload.js",
        "text/javascript",
        include_str!("assets/upload.js"),
    ),
    // tus-js-client's browser bundle, pinned by central-hub/web/package-lock.json
    // and copied in by build.rs.
    (
        "tus.min.js",
        "text/javascript",
        include_str!(concat!(env!("OUT_DIR"), "/tus.min.js")),
    ),
];

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A static file's URL, versioned by the build so a new release is fetched.
fn asset_url(file: &str) -> String {
    format!("/static/{file}?v={}", env!("CARGO_PKG_VERSION"))
}

fn role_label(lang: Lang, role: Role) -> &'static str {
    match role {
        Role::SystemAdmin => lang.pick("系统管理员", "system administrator"),
        Role::ArchiveAdmin => lang.pick("档案管理员", "archive administrator"),
        Role::Reviewer => lang.pick("复核员", "reviewer"),
        Role::Auditor => lang.pick("稽核员", "auditor"),
        Role::Clerk => lang.pick("经办员", "clerk"),
        Role::ReadOnly => lang.pick("只读", "read-only"),
    }
}

/// The frame of every page: header with the navigation the user's role
/// allows, the user, the language switch and logout.
fn layout(viewer: &Viewer, title: &str, scripts: &[&str], body: Markup) -> Markup {
    let l = viewer.lang;
    let admin = viewer.is(&[Role::SystemAdmin]);
    let central = viewer.is(&[Role::SystemAdmin, Role::ArchiveAdmin]);
    let auditor = viewer.is(&[Role::SystemAdmin, Role::Auditor]);
    let uploads = crate::live::may_upload(viewer.user.role);
    let reviews = viewer.is(&[Role::Reviewer, Role::ArchiveAdmin, Role::SystemAdmin]);
    html! {
        (DOCTYPE)
        html lang=(match l { Lang::Zh => "zh-CN", Lang::En => "en" }) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf-token" content=(viewer.csrf);
                meta name="lang" content=(lang_code(l));
                title { (title) " · " (l.pick("档案数字化 中心", "Dangan hub")) }
                link rel="stylesheet" href=(asset_url("app.css"));
                script src=(asset_url("hub.js")) defer {}
                @for script in scripts {
                    script src=(asset_url(script)) defer {}
                }
            }
            body {
                header.top {
                    a.brand href="/" { (l.pick("档案数字化 · 中心", "Dangan · hub")) }
                    nav {
                        @if uploads { a href="/upload" { (l.pick("前台上传", "Upload")) } }
                        a href="/search" { (l.pick("查询", "Search")) }
                        @if reviews { a href="/review" { (l.pick("复核", "Review")) } }
                        @if central { a href="/close" { (l.pick("月结", "Monthly close")) } }
                        @if central { a href="/reconcile" { (l.pick("对账", "Reconciliation")) } }
                        @if central { a href="/originals" { (l.pick("借出原件", "Originals on loan")) } }
                        @if admin {
                            a href="/admin/orgs" { (l.pick("机构", "Organisations")) }
                            a href="/admin/users" { (l.pick("用户与授权", "Users and grants")) }
                            a href="/admin/dictionaries" { (l.pick("字典", "Dictionaries")) }
                        }
                        @if auditor { a href="/audit" { (l.pick("审计日志", "Audit trail")) } }
                    }
                    span.spacer {}
                    span.user {
                        (viewer.user.display_name) " (" (role_label(l, viewer.user.role)) ")"
                    }
                    (dangan_shared::web::session_forms(l == Lang::Zh, &viewer.csrf))
                }
                main { (body) }
            }
        }
    }
}

/// A page with one message (errors, refusals), outside the layout so it
/// works without a session.
fn message_page(lang: Lang, status: StatusCode, message: &str) -> Response {
    let markup = dangan_shared::web::message_markup(
        status.as_u16(),
        status.canonical_reason().unwrap_or_default(),
        message,
        &asset_url("app.css"),
        lang.pick("返回首页", "Back to the start page"),
    );
    (status, markup).into_response()
}

/// A local path to go back to after login (never another site).
fn local_target(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn append_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Redirects a form post (303, so the browser GETs the page).
fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A URL path segment.
pub(crate) fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_targets_are_followed_after_login() {
        assert_eq!(local_target(Some("/audit?x=1")), "/audit?x=1");
        assert_eq!(local_target(Some("//evil.example/")), "/");
        assert_eq!(local_target(Some("https://evil.example/")), "/");
        assert_eq!(local_target(Some("/\\evil.example")), "/");
        assert_eq!(local_target(None), "/");
    }

    #[test]
    fn url_segments_escape_everything_but_unreserved_characters() {
        assert_eq!(segment("330106 A/档"), "330106%20A%2F%E6%A1%A3");
    }
}
