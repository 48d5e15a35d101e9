//! The archive room's web UI, served with the API by `dangan-edge serve`.
//!
//! Server-rendered pages (maud), Simplified Chinese by default with English
//! one click away (remembered per user). Reading pages render from the
//! library directly; the screens where operators and inspectors spend their
//! hours (QC, the exception queue, the page viewer) add a little plain
//! JavaScript (`assets/`) that calls the JSON API and keeps them keyboard
//! driven.
//!
//! - [`app`]: the API and the UI behind one router, with the CSRF guard.
//! - `pages`: login, batch list, batch page, page viewer, sync status,
//!   search, QC report.
//! - `work`: the QC screen and the exception queue.
//!
//! Sessions are the API's (`dangan_session` cookie, `HttpOnly`,
//! `SameSite=Strict`, `Secure` over HTTPS). Every state-changing request
//! that a browser authenticates with the cookie must carry the session's
//! CSRF token (header `X-CSRF-Token` or form field `csrf`), and a request
//! whose `Origin` is another site is refused.
mod pages;
mod warehouse;
mod work;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use dangan_sync::session::{self, CsrfPolicy};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::api::{self, ApiError, ApiState, cookie};
use crate::lifecycle::Role;
use crate::text::Lang;
use crate::users::{self, User};

/// The language cookie: the choice made before logging in.
const LANG_COOKIE: &str = "dangan_lang";

/// The whole HTTP surface of the edge: the JSON API under `/api/v1` and the
/// web UI, with the CSRF guard in front of both.
pub fn app(state: ApiState) -> Router {
    let ui = Router::new()
        .route("/", get(pages::batch_list))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/lang", post(pages::set_lang))
        .route("/sync", get(pages::sync_status))
        .route("/search", get(pages::search))
        .route("/batches", post(pages::batch_open))
        .route("/batches/{batch}", get(pages::batch_page))
        .route("/batches/{batch}/state", post(pages::batch_state))
        .route("/batches/{batch}/accept", post(pages::batch_accept))
        .route("/batches/{batch}/pages/{page}", get(pages::page_viewer))
        .route("/batches/{batch}/report", get(pages::qc_report))
        .route("/batches/{batch}/qc", get(work::qc_screen))
        .route("/batches/{batch}/qc/start", post(work::qc_start))
        .route("/batches/{batch}/exceptions", get(work::exception_queue))
        .route(
            "/batches/{batch}/exceptions/{exception}/resolve",
            post(work::exception_resolve),
        )
        .route("/warehouse", get(warehouse::overview))
        .route("/warehouse/rooms/{code}", get(warehouse::room))
        .route("/warehouse/locations/{code}", get(warehouse::location))
        .route("/warehouse/volumes/{code}", get(warehouse::volume))
        .route("/warehouse/shelve", get(warehouse::shelve))
        .route("/warehouse/loans", get(warehouse::loans))
        .route("/warehouse/checks", get(warehouse::checks))
        .route("/warehouse/checks/{id}", get(warehouse::check))
        .route("/warehouse/labels", get(warehouse::labels))
        .route("/static/{file}", get(asset))
        .with_state(state.clone());
    api::router(state)
        .merge(ui)
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            CSRF,
            session::csrf_guard,
        ))
        .layer(axum::middleware::map_response(security_headers))
}

async fn not_found(request: Request) -> Response {
    if request.uri().path().starts_with("/api/") {
        return ApiError::not_found("no such API route").into_response();
    }
    let lang = cookie(request.headers(), LANG_COOKIE)
        .and_then(|v| parse_lang(&v))
        .unwrap_or(Lang::Zh);
    message_page(
        lang,
        StatusCode::NOT_FOUND,
        lang.pick("页面不存在", "No such page"),
    )
}

/// Pages are not framed by other sites and say what they are.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    );
    response
}

/// The CSRF token of a session: derived from the session token, so it
/// needs no storage and dies with the session.
pub fn csrf_token(session_token: &str) -> String {
    CSRF.token(session_token)
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

/// The edge's CSRF guard ([`dangan_sync::session::csrf_guard`]): the
/// session cookie, the two login forms, and refusals as a JSON error under
/// `/api/` or a page in the visitor's language elsewhere.
const CSRF: CsrfPolicy = CsrfPolicy {
    cookie: api::COOKIE,
    context: "dangan-edge 2026-11 csrf token",
    login_paths: &["/login", "/api/v1/session"],
    refuse: csrf_refusal,
};

fn csrf_refusal(path: &str, headers: &HeaderMap, why: &str) -> Response {
    if path.starts_with("/api/") {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            format!("refused: {why} (send the session's CSRF token in X-CSRF-Token)"),
        )
        .into_response();
    }
    let lang = cookie(headers, LANG_COOKIE)
        .and_then(|v| parse_lang(&v))
        .unwrap_or(Lang::Zh);
    message_page(
        lang,
        StatusCode::FORBIDDEN,
        lang.pick(
            "请求被拒绝：页面已过期或来自其他网站。请刷新页面后重试。",
            "Request refused: the page is stale or came from another site. Reload the page and try again.",
        ),
    )
}

/// The logged-in user of a page, with their language and CSRF token. A
/// visitor without a session is sent to the login page, and back after.
pub struct Viewer {
    pub user: User,
    pub lang: Lang,
    pub csrf: String,
}

impl Viewer {
    /// Whether the user has one of `roles` (admins have every role).
    fn may(&self, roles: &[Role]) -> bool {
        self.user.role == Role::Admin || roles.contains(&self.user.role)
    }

    fn pick<'a>(&self, zh: &'a str, en: &'a str) -> &'a str {
        self.lang.pick(zh, en)
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
}

impl FromRequestParts<ApiState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Response> {
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
        let Some(token) = cookie(&parts.headers, api::COOKIE) else {
            return Err(to_login());
        };
        let lookup = token.clone();
        let found = state
            .db(move |_, store| {
                let Some(user) = users::session_user(store.conn(), &lookup)? else {
                    return Ok(None);
                };
                let lang = users::language(store.conn(), user.id)?;
                Ok(Some((user, lang)))
            })
            .await
            .map_err(IntoResponse::into_response)?;
        let Some((user, lang)) = found else {
            return Err(to_login());
        };
        let lang = lang
            .as_deref()
            .and_then(parse_lang)
            .or_else(|| cookie(&parts.headers, LANG_COOKIE).and_then(|v| parse_lang(&v)))
            .unwrap_or(Lang::Zh);
        Ok(Viewer {
            user,
            lang,
            csrf: csrf_token(&token),
        })
    }
}

/// The static files, embedded in the binary.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.css", "text/css", dangan_shared::web::APP_CSS),
    ("app.js", "text/javascript", include_str!("assets/app.js")),
    ("qc.js", "text/javascript", include_str!("assets/qc.js")),
    (
        "warehouse.js",
        "text/javascript",
        include_str!("assets/warehouse.js"),
    ),
    (
        "viewer.js",
        "text/javascript",
        dangan_shared::web::VIEWER_JS,
    ),
    (
        "exceptions.js",
        "text/javascript",
        include_str!("assets/exceptions.js"),
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

/// The frame of every page: header with navigation, search, the user, the
/// language switch and logout.
fn layout(viewer: &Viewer, title: &str, scripts: &[&str], body: Markup) -> Markup {
    let l = viewer.lang;
    html! {
        (DOCTYPE)
        html lang=(match l { Lang::Zh => "zh-CN", Lang::En => "en" }) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf-token" content=(viewer.csrf);
                meta name="lang" content=(lang_code(l));
                title { (title) " · " (l.pick("档案数字化 边缘节点", "Dangan edge")) }
                link rel="stylesheet" href=(asset_url("app.css"));
                script src=(asset_url("app.js")) defer {}
                @for script in scripts {
                    script src=(asset_url(script)) defer {}
                }
            }
            body {
                header.top {
                    a.brand href="/" { (l.pick("档案数字化 · 边缘节点", "Dangan · edge node")) }
                    nav {
                        a href="/" { (l.pick("批次", "Batches")) }
                        a href="/sync" { (l.pick("同步状态", "Sync status")) }
                        a href="/warehouse" { (l.pick("库房", "Warehouse")) }
                    }
                    form.search action="/search" method="get" {
                        input type="search" name="q" placeholder=(l.pick("业务流水号 / 身份证号 / 姓名", "Business no. / person id / name"));
                    }
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
        lang.pick("返回批次列表", "Back to the batches"),
    );
    (status, markup).into_response()
}

fn role_label(lang: Lang, role: Role) -> &'static str {
    match role {
        Role::Operator => lang.pick("扫描员", "operator"),
        Role::Inspector => lang.pick("质检员", "inspector"),
        Role::Admin => lang.pick("管理员", "admin"),
    }
}

/// A hidden CSRF field for a form.
fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// JSON for a `<script type="application/json">` block: `<` escaped so the
/// text can never close the element.
fn json_island(value: &impl serde::Serialize) -> PreEscaped<String> {
    PreEscaped(
        serde_json::to_string(value)
            .unwrap_or_else(|_| "null".to_owned())
            .replace('<', "\\u003c"),
    )
}

/// A URL path segment (batch names may hold any character but `/`).
fn segment(text: &str) -> String {
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

fn batch_url(batch: &str) -> String {
    format!("/batches/{}", segment(batch))
}

/// Redirects a form post back (303, so the browser GETs the page).
fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let a = csrf_token("session-a");
        assert_eq!(a, csrf_token("session-a"));
        assert_ne!(a, csrf_token("session-b"));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn url_segments_escape_everything_but_unreserved_characters() {
        assert_eq!(segment("2026-11 A/档"), "2026-11%20A%2F%E6%A1%A3");
        assert_eq!(batch_url("b_1.x~"), "/batches/b_1.x~");
    }

    #[test]
    fn json_islands_cannot_close_their_script_element() {
        let island = json_island(&"</script><b>");
        assert!(!island.0.contains("</"));
    }
}
