//! The hub's JSON API under `/api/v1` for administrators and systems:
//! sessions of hub users, reconciliation and organisations (机构管理),
//! archived business files, their page images and PDFs ([`pages`]).
//! Administration takes the credential of a `system_admin` account: a
//! session (`POST /api/v1/session`, then `Bearer dgs_...` or the
//! `dangan_hub_session` cookie), an admin token (`Bearer dga_...`, printed
//! by `dangan-hub init` or `dangan-hub admin-token`, acting as the account
//! `admin`) or an API token.
//!
//! A browser's session cookie is `HttpOnly`, `SameSite=Strict` and `Secure`
//! over HTTPS; a change it authenticates must carry the session's CSRF
//! token (`X-CSRF-Token`, from the login answer or `GET /api/v1/session`),
//! and a change from another site is refused ([`dangan_sync::session`]).
//!
//! The routes are one table ([`routes`]); the router is built from it and a
//! test compares it with the OpenAPI document served at
//! `/api/v1/openapi.json` (`central-hub/openapi.json`). Errors are
//! `{"error": code, "message": text}` with a 4xx status for anything the
//! caller can fix.
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use dangan_sync::session::{self, CsrfPolicy};
use rusqlite::{Connection, OptionalExtension};
use serde::Deserialize;

mod accounts;
mod dictionaries;
mod live;
mod originals;
pub(crate) use originals::may_request_loans;
pub(crate) mod pages;
pub(crate) mod tus;

use crate::audit::{self, ActorKind, NewEntry, Outcome};
use crate::backend::HubBackend;
use crate::nodes;
use crate::orgs::{self, OrgError, OrgPatch};
use crate::search::{SearchError, SearchQuery};
use crate::store::{self, StoreError};
use crate::users::{self, LoginRefused, Role, User, UserError};

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// An error answered as `{"error": code, "message": text}`.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed", message)
    }

    /// A failure of the hub (logged; the caller sees "internal error").
    fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "admin API request failed");
        }
        // A 503 says what the operator must fix (e.g. a missing font); other
        // server errors may carry paths and ids, which stay in the log.
        let message = if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            "internal error".to_owned()
        } else {
            self.message
        };
        let body = serde_json::json!({ "error": self.code, "message": message });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            err.to_string(),
        )
    }
}

impl From<UserError> for ApiError {
    fn from(err: UserError) -> Self {
        match err {
            UserError::Store(err) => err.into(),
            UserError::NoSuchUser(_) => {
                Self::new(StatusCode::NOT_FOUND, "not_found", err.to_string())
            }
            UserError::Exists(_) => Self::new(StatusCode::CONFLICT, "conflict", err.to_string()),
            other => Self::malformed(other.to_string()),
        }
    }
}

impl From<OrgError> for ApiError {
    fn from(err: OrgError) -> Self {
        let (status, code) = match &err {
            OrgError::NoSuch(_) => (StatusCode::NOT_FOUND, "not_found"),
            OrgError::Exists(_) | OrgError::InUse { .. } => (StatusCode::CONFLICT, "conflict"),
            OrgError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            _ => (StatusCode::BAD_REQUEST, "malformed"),
        };
        Self::new(status, code, err.to_string())
    }
}

/// A JSON body; a malformed one is a 400 in the API's error shape.
pub struct Body<T>(pub T);

impl<T, S> FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|axum::Json(value)| Body(value))
            .map_err(|rejection| ApiError::malformed(rejection.body_text()))
    }
}

/// The session cookie's name (the edge's is `dangan_session`).
pub const COOKIE: &str = "dangan_hub_session";

/// The hub's CSRF guard ([`dangan_sync::session::csrf_guard`]): its own
/// cookie and key-derivation context (an edge session's token never passes
/// here), the login `POST`, and refusals in the API's error shape.
const CSRF: CsrfPolicy = CsrfPolicy {
    cookie: COOKIE,
    context: CSRF_CONTEXT,
    login_paths: &["/api/v1/session"],
    refuse: csrf_refusal,
};

fn csrf_refusal(_path: &str, _headers: &HeaderMap, why: &str) -> Response {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "csrf",
        format!("refused: {why} (send the session's csrf_token in X-CSRF-Token)"),
    )
    .into_response()
}

/// The key-derivation context of the hub's CSRF tokens (the web pages'
/// guard uses it too: one session, one token).
pub(crate) const CSRF_CONTEXT: &str = "dangan-hub 2026-11 csrf token";

/// The CSRF token of a hub session token.
pub fn csrf_token(session_token: &str) -> String {
    CSRF.token(session_token)
}

/// How the API's `Set-Cookie` headers are made (`Secure` over HTTPS).
#[derive(Clone, Copy, Debug)]
struct Cookies {
    secure: bool,
}

impl Cookies {
    fn session(self, token: &str, max_age: u64) -> HeaderValue {
        let value = session::set_cookie(COOKIE, token, max_age, true, self.secure);
        // Tokens and the cookie name are ASCII letters, digits and '_'.
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The token of a request: `Authorization: Bearer`, else the session cookie.
fn token_of(parts: &Parts) -> Option<String> {
    session::bearer(&parts.headers).or_else(|| session::cookie(&parts.headers, COOKIE))
}

fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a token is required (Authorization: Bearer TOKEN, or the session cookie from POST /api/v1/session): a session, an API token or an admin token",
    )
}

/// Who makes a request: a logged-in hub user (a session from `POST
/// /api/v1/session`, as a bearer token or the session cookie), the account
/// an admin token belongs to (`dangan-hub init` / `admin-token`: normally
/// `admin`), or a system with an API token (`dangan-hub token create`),
/// which acts as a user named `token:NAME` with the token's role and
/// organisation.
pub struct Caller {
    pub user: User,
    pub token: String,
    /// `User` for a session, `Admin` for an admin token, `Token` for an
    /// API token (audit trail).
    pub kind: ActorKind,
}

impl Caller {
    /// The session token, when the caller logged in (not an API or admin token).
    fn session(&self) -> Option<&str> {
        (self.kind == ActorKind::User).then_some(self.token.as_str())
    }
}

impl FromRequestParts<Arc<HubBackend>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        backend: &Arc<HubBackend>,
    ) -> Result<Self, ApiError> {
        let token = token_of(parts).ok_or_else(unauthorized)?;
        let kind = if token.starts_with(users::API_TOKEN_PREFIX) {
            ActorKind::Token
        } else if token.starts_with(nodes::ADMIN_TOKEN_PREFIX) {
            ActorKind::Admin
        } else {
            ActorKind::User
        };
        let lookup = token.clone();
        let user = backend
            .db()
            .run(move |conn| {
                match kind {
                    ActorKind::Token => users::token_user(conn, &lookup),
                    ActorKind::Admin => users::admin_token_user(conn, &lookup),
                    _ => users::session_user(conn, &lookup),
                }
                .map_err(ApiError::from)
            })
            .await?
            .ok_or_else(unauthorized)?;
        Ok(Caller { user, token, kind })
    }
}

/// A system administrator: a caller whose account has the `system_admin`
/// role (with a session, an admin token or an API token). Names who it is
/// for the audit trail.
pub struct Admin {
    pub actor: String,
    pub kind: ActorKind,
}

impl FromRequestParts<Arc<HubBackend>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        backend: &Arc<HubBackend>,
    ) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, backend).await?;
        if caller.user.role == Role::SystemAdmin {
            return Ok(Admin {
                actor: caller.user.username,
                kind: caller.kind,
            });
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} ({}) is not a system administrator",
                caller.user.username,
                caller.user.role.as_str()
            ),
        ))
    }
}

/// The API's routes: method, path (OpenAPI syntax) and handler.
pub fn routes() -> Vec<(Method, &'static str, MethodRouter<Arc<HubBackend>>)> {
    vec![
        (Method::GET, "/api/v1/openapi.json", get(openapi)),
        (Method::GET, "/api/v1/reconcile", get(reconcile)),
        (Method::POST, "/api/v1/session", axum::routing::post(login)),
        (Method::GET, "/api/v1/session", get(whoami)),
        (
            Method::DELETE,
            "/api/v1/session",
            axum::routing::delete(logout),
        ),
        (Method::GET, "/api/v1/users", get(user_list)),
        (
            Method::POST,
            "/api/v1/users",
            axum::routing::post(accounts::user_add),
        ),
        (
            Method::PATCH,
            "/api/v1/users/{username}",
            axum::routing::patch(accounts::user_update),
        ),
        (Method::GET, "/api/v1/grants", get(accounts::grant_list)),
        (
            Method::POST,
            "/api/v1/grants",
            axum::routing::post(accounts::grant_add),
        ),
        (
            Method::DELETE,
            "/api/v1/grants/{id}",
            axum::routing::delete(accounts::grant_revoke),
        ),
        (Method::GET, "/api/v1/search", get(search)),
        (Method::GET, "/api/v1/files/{id}", get(file_show)),
        (Method::GET, "/api/v1/files/{id}/pdf", get(pages::file_pdf)),
        (
            Method::POST,
            "/api/v1/files/{id}/loan-requests",
            axum::routing::post(originals::request_loan),
        ),
        (
            Method::GET,
            "/api/v1/files/{id}/pages/{seq}",
            pages::archived_page(pages::Asked::Original),
        ),
        (
            Method::GET,
            "/api/v1/files/{id}/pages/{seq}/view",
            pages::archived_page(pages::Asked::View),
        ),
        (
            Method::GET,
            "/api/v1/files/{id}/pages/{seq}/thumbnail",
            pages::archived_page(pages::Asked::Thumbnail),
        ),
        (
            Method::POST,
            "/api/v1/uploads",
            axum::routing::post(tus::create).layer(axum::middleware::from_fn(tus::protocol)),
        ),
        (
            Method::OPTIONS,
            "/api/v1/uploads",
            axum::routing::options(tus::options).layer(axum::middleware::from_fn(tus::protocol)),
        ),
        (
            Method::HEAD,
            "/api/v1/uploads/{id}",
            axum::routing::head(tus::status).layer(axum::middleware::from_fn(tus::protocol)),
        ),
        (
            Method::PATCH,
            "/api/v1/uploads/{id}",
            axum::routing::patch(tus::append).layer(axum::middleware::from_fn(tus::protocol)),
        ),
        (
            Method::DELETE,
            "/api/v1/uploads/{id}",
            axum::routing::delete(tus::terminate).layer(axum::middleware::from_fn(tus::protocol)),
        ),
        (
            Method::OPTIONS,
            "/api/v1/uploads/{id}",
            axum::routing::options(tus::options).layer(axum::middleware::from_fn(tus::protocol)),
        ),
        (Method::GET, "/api/v1/live", get(live::list)),
        (
            Method::POST,
            "/api/v1/closes",
            axum::routing::post(live::close_month),
        ),
        (
            Method::GET,
            "/api/v1/closes/{month}",
            get(live::close_report),
        ),
        (Method::GET, "/api/v1/live/{number}", get(live::show)),
        (
            Method::PUT,
            "/api/v1/live/{number}",
            axum::routing::put(live::register),
        ),
        (
            Method::POST,
            "/api/v1/live/{number}/submit",
            live::step_route(crate::live::Step::Submit),
        ),
        (
            Method::POST,
            "/api/v1/live/{number}/approve",
            live::step_route(crate::live::Step::Approve),
        ),
        (
            Method::POST,
            "/api/v1/live/{number}/return",
            axum::routing::post(live::send_back),
        ),
        (
            Method::POST,
            "/api/v1/live/{number}/viewer-link",
            axum::routing::post(live::viewer_link),
        ),
        (
            Method::PUT,
            "/api/v1/live/{number}/order",
            axum::routing::put(live::reorder),
        ),
        (
            Method::GET,
            "/api/v1/live/{number}/pages/{page}",
            pages::live_page(pages::Asked::Original),
        ),
        (
            Method::DELETE,
            "/api/v1/live/{number}/pages/{page}",
            axum::routing::delete(live::remove_page),
        ),
        (
            Method::GET,
            "/api/v1/live/{number}/pages/{page}/view",
            pages::live_page(pages::Asked::View),
        ),
        (
            Method::GET,
            "/api/v1/live/{number}/pages/{page}/thumbnail",
            pages::live_page(pages::Asked::Thumbnail),
        ),
        (Method::GET, "/api/v1/audit", get(audit_list)),
        (Method::GET, "/api/v1/orgs", get(org_tree)),
        (Method::POST, "/api/v1/orgs", axum::routing::post(org_add)),
        (Method::GET, "/api/v1/orgs/{code}", get(org_show)),
        (
            Method::PATCH,
            "/api/v1/orgs/{code}",
            axum::routing::patch(org_update),
        ),
        (
            Method::DELETE,
            "/api/v1/orgs/{code}",
            axum::routing::delete(org_remove),
        ),
        (
            Method::GET,
            "/api/v1/dictionaries",
            get(dictionaries::in_force),
        ),
        (
            Method::GET,
            "/api/v1/dictionaries/{kind}",
            get(dictionaries::dictionary_show),
        ),
        (
            Method::PUT,
            "/api/v1/dictionaries/{kind}",
            axum::routing::put(dictionaries::dictionary_publish),
        ),
        (
            Method::GET,
            "/api/v1/templates",
            get(dictionaries::template_list),
        ),
        (
            Method::GET,
            "/api/v1/templates/{business_type}",
            get(dictionaries::template_show),
        ),
        (
            Method::PUT,
            "/api/v1/templates/{business_type}",
            axum::routing::put(dictionaries::template_publish),
        ),
    ]
}

/// The API router over `backend`, behind the CSRF guard.
/// `secure_cookies`: the hub is reached over HTTPS, so the session cookie
/// is marked `Secure`.
pub fn router(backend: Arc<HubBackend>, secure_cookies: bool) -> Router {
    let mut router = Router::new();
    for (_, path, handler) in routes() {
        // A path listed once per method: axum merges the method routers.
        router = router.route(path, handler);
    }
    router
        .with_state(backend)
        .layer(axum::Extension(Cookies {
            secure: secure_cookies,
        }))
        .layer(axum::middleware::from_fn_with_state(
            CSRF,
            session::csrf_guard,
        ))
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct ReconcileQuery {
    district: Option<String>,
}

async fn reconcile(
    State(backend): State<Arc<HubBackend>>,
    _admin: Admin,
    Query(query): Query<ReconcileQuery>,
) -> Result<Response, ApiError> {
    if let Some(district) = &query.district {
        district
            .parse::<dangan_shared::OrgCode>()
            .map_err(|err| ApiError::malformed(err.to_string()))?;
    }
    let report = backend.reconcile(query.district).await?;
    Ok(axum::Json(report).into_response())
}

/// One audit entry, appended on the connection that made the change.
struct Audit<'a> {
    actor: &'a str,
    kind: ActorKind,
    address: Option<&'a str>,
    action: &'a str,
    target: &'a str,
}

impl Audit<'_> {
    fn record(
        &self,
        conn: &Connection,
        result: Outcome,
        detail: serde_json::Value,
    ) -> Result<(), ApiError> {
        let entry = NewEntry {
            actor: self.actor.to_owned(),
            actor_kind: self.kind,
            address: self.address.map(str::to_owned),
            action: self.action.to_owned(),
            target: Some(self.target.to_owned()),
            result,
            detail: Some(detail),
        };
        audit::append(conn, &entry).map(|_| ()).map_err(|err| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                err.to_string(),
            )
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
}

/// Logs a user in: a session for `SESSION_HOURS`, as a token (bearer) and
/// as the session cookie, with the CSRF token a browser sends back with
/// every change. Repeated failures lock the account (423 with the time it
/// opens again).
async fn login(
    State(backend): State<Arc<HubBackend>>,
    axum::Extension(cookies): axum::Extension<Cookies>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<dangan_sync::tls::PeerAddr>,
    Body(login): Body<Login>,
) -> Result<Response, ApiError> {
    let address = peer.0.ip().to_string();
    let outcome = login_audited(&backend, login.username, login.password, address).await?;
    match outcome {
        Ok((token, user)) => {
            tracing::info!(user = %user.username, "logged in");
            let lifetime = users::SESSION_HOURS * 3600;
            let body = serde_json::json!({
                "token": token,
                "csrf_token": csrf_token(&token),
                "user": user,
                "expires_in_seconds": lifetime,
            });
            Ok((
                StatusCode::CREATED,
                [(header::SET_COOKIE, cookies.session(&token, lifetime))],
                axum::Json(body),
            )
                .into_response())
        }
        Err(LoginRefused::BadCredentials) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
            "wrong user name or password, or the user is disabled",
        )),
        Err(LoginRefused::Locked { until }) => Err(ApiError::new(
            StatusCode::LOCKED,
            "locked",
            format!("too many failed logins: the account is locked until {until} (UTC)"),
        )),
    }
}

/// Checks a user name and password (lockout included), records the
/// attempt in the audit trail, and on success opens a session: its token
/// and the user. Shared by `POST /api/v1/session` and the web login form.
pub(crate) async fn login_audited(
    backend: &Arc<HubBackend>,
    username: String,
    password: String,
    address: String,
) -> Result<Result<(String, User), LoginRefused>, ApiError> {
    let lockout = backend.config().lockout;
    backend
        .db()
        .run(move |conn| {
            let outcome = users::authenticate(conn, &username, &password, lockout, Some(&address))?;
            let (result, detail) = match &outcome {
                Ok(_) => (Outcome::Ok, serde_json::json!({})),
                Err(LoginRefused::BadCredentials) => (
                    Outcome::Denied,
                    serde_json::json!({ "reason": "bad_credentials" }),
                ),
                Err(LoginRefused::Locked { until }) => (
                    Outcome::Denied,
                    serde_json::json!({ "reason": "locked", "until": until }),
                ),
            };
            Audit {
                actor: &username,
                kind: ActorKind::User,
                address: Some(&address),
                action: "login",
                target: &username,
            }
            .record(conn, result, detail)?;
            Ok::<_, ApiError>(outcome)
        })
        .await
}

/// The caller's account, with the session's CSRF token when they logged in.
async fn whoami(caller: Caller) -> Response {
    let csrf = caller.session().map(csrf_token);
    let mut body = serde_json::to_value(&caller.user).unwrap_or_default();
    if let (Some(fields), Some(csrf)) = (body.as_object_mut(), csrf) {
        fields.insert("csrf_token".to_owned(), csrf.into());
    }
    axum::Json(body).into_response()
}

/// Ends the caller's session and clears the session cookie.
async fn logout(
    State(backend): State<Arc<HubBackend>>,
    axum::Extension(cookies): axum::Extension<Cookies>,
    caller: Caller,
) -> Result<Response, ApiError> {
    if let Some(token) = caller.session().map(str::to_owned) {
        backend
            .db()
            .run(move |conn| users::end_session(conn, &token).map_err(ApiError::from))
            .await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, cookies.session("", 0))],
    )
        .into_response())
}

async fn user_list(
    State(backend): State<Arc<HubBackend>>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    let list = backend
        .db()
        .run(|conn| users::list(conn).map_err(ApiError::from))
        .await?;
    Ok(axum::Json(list).into_response())
}

/// An archived business file as a user entitled to it sees it.
#[derive(Debug, serde::Serialize)]
pub(crate) struct FileView {
    pub id: i64,
    pub district: String,
    pub batch: String,
    pub seq: i64,
    pub business_number: Option<String>,
    pub business_type: Option<String>,
    pub category: Option<String>,
    pub retention: Option<String>,
    pub date: Option<String>,
    pub organisation: String,
    pub person_id: Option<String>,
    pub person_name: Option<String>,
    pub employer_id: Option<String>,
    pub pages: Vec<PageView>,
    /// Where the paper original is, as the district's edge reported it;
    /// `None` (null) while it is in no volume.
    pub original: Option<crate::warehouse::Original>,
}

#[derive(Debug, serde::Serialize)]
pub(crate) struct PageView {
    pub seq: i64,
    pub blob: String,
    pub format: String,
    pub width: i64,
    pub height: i64,
}

fn load_file(conn: &Connection, id: i64) -> Result<Option<FileView>, ApiError> {
    let found = conn
        .query_row(
            "SELECT f.id, b.district, b.batch, f.seq, f.business_number, f.business_type,
                    f.category, f.retention, f.date, f.organisation, f.person_id,
                    f.person_name, f.employer_id
             FROM business_files f JOIN batches b ON b.id = f.batch_id WHERE f.id = ?1",
            [id],
            |row| {
                Ok(FileView {
                    id: row.get(0)?,
                    district: row.get(1)?,
                    batch: row.get(2)?,
                    seq: row.get(3)?,
                    business_number: row.get(4)?,
                    business_type: row.get(5)?,
                    category: row.get(6)?,
                    retention: row.get(7)?,
                    date: row.get(8)?,
                    organisation: row.get(9)?,
                    person_id: row.get(10)?,
                    person_name: row.get(11)?,
                    employer_id: row.get(12)?,
                    pages: Vec::new(),
                    original: None,
                })
            },
        )
        .optional()
        .map_err(StoreError::from)?;
    let Some(mut file) = found else {
        return Ok(None);
    };
    let mut statement = conn
        .prepare("SELECT seq, blob, format, width, height FROM pages WHERE business_file_id = ?1 ORDER BY seq")
        .map_err(StoreError::from)?;
    let pages = statement
        .query_map([id], |row| {
            Ok(PageView {
                seq: row.get(0)?,
                blob: row.get(1)?,
                format: row.get(2)?,
                width: row.get(3)?,
                height: row.get(4)?,
            })
        })
        .map_err(StoreError::from)?;
    for page in pages {
        file.pages.push(page.map_err(StoreError::from)?);
    }
    Ok(Some(file))
}

/// How a look at a business file is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileLook {
    /// Opening the file: `file.view` in the audit trail.
    Audited,
    /// Paging through a file already opened (the page images record
    /// `page.view` themselves).
    Quiet,
}

/// One archived business file, with where its paper original is, for a
/// user whose scope (their organisation's subtree and live grants) holds it. Anything else — out of scope or no
/// such id — is the same 404, so ids cannot be probed. An audited look is
/// recorded whether it was allowed or not. Shared by `GET
/// /api/v1/files/{id}` and the web UI's file and viewer pages.
pub(crate) async fn file_for(
    backend: &Arc<HubBackend>,
    user: User,
    kind: ActorKind,
    address: String,
    id: i64,
    look: FileLook,
) -> Result<FileView, ApiError> {
    let today = crate::warehouse::today(&backend.config().live.time_zone);
    backend
        .db()
        .run(move |conn| {
            let mut file = load_file(conn, id)?;
            let visible = match &file {
                Some(file) => pages::in_scope(conn, &user, &file.organisation, &file.district)?,
                None => false,
            };
            if look == FileLook::Audited || !visible {
                let result = if visible {
                    Outcome::Ok
                } else {
                    Outcome::Denied
                };
                Audit {
                    actor: &user.username,
                    kind,
                    address: Some(&address),
                    action: "file.view",
                    target: &id.to_string(),
                }
                .record(
                    conn,
                    result,
                    serde_json::json!({ "exists": file.is_some() }),
                )?;
            }
            if let Some(file) = file.as_mut().filter(|_| visible) {
                file.original = crate::warehouse::original(
                    conn,
                    &file.district,
                    &file.batch,
                    file.seq,
                    file.id,
                    &today,
                )?;
            }
            Ok::<_, ApiError>(file.filter(|_| visible))
        })
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no business file {id}"),
            )
        })
}

async fn file_show(
    State(backend): State<Arc<HubBackend>>,
    caller: Caller,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<dangan_sync::tls::PeerAddr>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let address = peer.0.ip().to_string();
    let file = file_for(
        &backend,
        caller.user,
        caller.kind,
        address,
        id,
        FileLook::Audited,
    )
    .await?;
    Ok(axum::Json(file).into_response())
}

/// Runs a search in `user`'s scope and records it (`search`: the criteria
/// and the number of hits, or why the query was refused); the audit target
/// is the person id or business number searched for, so an auditor finds
/// who looked a person up. The outer error is the hub's, the inner one the
/// query's fault. Shared by `GET /api/v1/search` and the web search page.
pub(crate) async fn search_audited(
    backend: &Arc<HubBackend>,
    user: User,
    kind: ActorKind,
    address: String,
    query: SearchQuery,
) -> Result<Result<crate::search::SearchPage, SearchError>, ApiError> {
    backend
        .db()
        .run(move |conn| {
            let scope = users::Scope::of(conn, &user)?;
            let found = crate::search::search(conn, &scope, &query);
            let criteria = serde_json::to_value(&query).unwrap_or_default();
            let (result, detail) = match &found {
                Ok(page) => (
                    Outcome::Ok,
                    serde_json::json!({
                        "criteria": criteria,
                        "hits": page.total,
                        "capped": page.total_capped,
                    }),
                ),
                Err(err) => (
                    Outcome::Failed,
                    serde_json::json!({ "criteria": criteria, "reason": err.to_string() }),
                ),
            };
            let target = [&query.person_id, &query.business_number]
                .into_iter()
                .flatten()
                .map(|value| value.trim())
                .find(|value| !value.is_empty())
                .unwrap_or("business_files");
            Audit {
                actor: &user.username,
                kind,
                address: Some(&address),
                action: "search",
                target,
            }
            .record(conn, result, detail)?;
            match found {
                Err(SearchError::Store(err)) => Err(ApiError::from(err)),
                other => Ok(other),
            }
        })
        .await
}

/// Business files in the caller's scope (their organisation's subtree and
/// live grants) that match every criterion given: a page of hits, sorted,
/// with the total up to [`crate::search::TOTAL_CAP`]. Every search is
/// audited, a malformed query string included.
async fn search(
    State(backend): State<Arc<HubBackend>>,
    caller: Caller,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<dangan_sync::tls::PeerAddr>,
    query: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let address = peer.0.ip().to_string();
    let (user, kind) = (caller.user, caller.kind);
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => {
            let reason = rejection.body_text();
            let detail = serde_json::json!({ "reason": reason });
            backend
                .db()
                .run(move |conn| {
                    Audit {
                        actor: &user.username,
                        kind,
                        address: Some(&address),
                        action: "search",
                        target: "business_files",
                    }
                    .record(conn, Outcome::Failed, detail)
                })
                .await?;
            return Err(ApiError::malformed(reason));
        }
    };
    let page = search_audited(&backend, user, kind, address, query).await??;
    Ok(axum::Json(page).into_response())
}

impl From<SearchError> for ApiError {
    fn from(err: SearchError) -> Self {
        match err {
            SearchError::Store(err) => err.into(),
            invalid => Self::malformed(invalid.to_string()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<u32>,
    #[serde(default)]
    offset: u32,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// The audit trail, for auditors and system administrators: filtered,
/// paged, as JSON or CSV. Reading it is itself recorded.
/// Reads the audit trail for an auditor or system administrator, and
/// records that they did (`audit.query`). Shared by the API and the web UI.
pub(crate) async fn query_audited(
    backend: &Arc<HubBackend>,
    user: User,
    kind: ActorKind,
    filter: audit::Filter,
) -> Result<Vec<audit::Entry>, ApiError> {
    backend
        .db()
        .run(move |conn| {
            let entries = audit::query(conn, &filter).map_err(|err| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    err.to_string(),
                )
            })?;
            Audit {
                actor: &user.username,
                kind,
                address: None,
                action: "audit.query",
                target: "audit_log",
            }
            .record(
                conn,
                Outcome::Ok,
                serde_json::json!({ "entries": entries.len() }),
            )?;
            Ok::<_, ApiError>(entries)
        })
        .await
}

async fn audit_list(
    State(backend): State<Arc<HubBackend>>,
    caller: Caller,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    if !matches!(caller.user.role, Role::Auditor | Role::SystemAdmin) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} ({}) may not read the audit trail",
                caller.user.username,
                caller.user.role.as_str()
            ),
        ));
    }
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::malformed(format!(
                "format is json or csv, not {other:?}"
            )));
        }
    };
    let filter = audit::Filter {
        actor: query.actor,
        action: query.action,
        from: query.from,
        to: query.to,
        target: query.target,
        limit: Some(query.limit.unwrap_or(1000).min(10_000)),
        offset: query.offset,
    };
    let entries = query_audited(&backend, caller.user, caller.kind, filter).await?;
    if csv {
        let text = audit::csv(&entries).map_err(|err| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                err.to_string(),
            )
        })?;
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"audit.csv\"",
                ),
            ],
            text,
        )
            .into_response());
    }
    Ok(axum::Json(entries).into_response())
}

async fn org_tree(
    State(backend): State<Arc<HubBackend>>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    let tree = backend
        .db()
        .run(|conn| orgs::tree(conn).map_err(ApiError::from))
        .await?;
    Ok(axum::Json(tree).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    code: String,
    name: String,
    #[serde(default)]
    parent: Option<String>,
}

async fn org_add(
    State(backend): State<Arc<HubBackend>>,
    admin: Admin,
    Body(new): Body<NewOrg>,
) -> Result<Response, ApiError> {
    let org = backend
        .db()
        .run(move |conn| {
            store::atomically(conn, |conn| {
                let org = orgs::add(conn, &new.code, &new.name, new.parent.as_deref())?;
                Audit {
                    actor: &admin.actor,
                    kind: admin.kind,
                    address: None,
                    action: "org.add",
                    target: &org.code,
                }
                .record(
                    conn,
                    Outcome::Ok,
                    serde_json::json!({ "name": org.name, "parent": org.parent }),
                )?;
                Ok::<_, ApiError>(org)
            })
        })
        .await?;
    tracing::info!(code = %org.code, name = %org.name, "organisation added");
    Ok((StatusCode::CREATED, axum::Json(org)).into_response())
}

async fn org_show(
    State(backend): State<Arc<HubBackend>>,
    _admin: Admin,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let org = backend
        .db()
        .run(move |conn| {
            orgs::get(conn, &code)?.ok_or_else(|| ApiError::from(OrgError::NoSuch(code.clone())))
        })
        .await?;
    Ok(axum::Json(org).into_response())
}

async fn org_update(
    State(backend): State<Arc<HubBackend>>,
    admin: Admin,
    Path(code): Path<String>,
    Body(patch): Body<OrgPatch>,
) -> Result<Response, ApiError> {
    let org = backend
        .db()
        .run(move |conn| {
            store::atomically(conn, |conn| {
                let org = orgs::update(conn, &code, &patch)?;
                Audit {
                actor: &admin.actor,
                kind: admin.kind,
                address: None,
                action: "org.update",
                target: &org.code,
            }
            .record(
                conn,
                Outcome::Ok,
                serde_json::json!({ "name": org.name, "parent": org.parent, "status": org.status }),
            )?;
                Ok::<_, ApiError>(org)
            })
        })
        .await?;
    tracing::info!(code = %org.code, status = %org.status, "organisation changed");
    Ok(axum::Json(org).into_response())
}

async fn org_remove(
    State(backend): State<Arc<HubBackend>>,
    admin: Admin,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let removed = code.clone();
    backend
        .db()
        .run(move |conn| {
            store::atomically(conn, |conn| {
                orgs::remove(conn, &code)?;
                Audit {
                    actor: &admin.actor,
                    kind: admin.kind,
                    address: None,
                    action: "org.remove",
                    target: &code,
                }
                .record(conn, Outcome::Ok, serde_json::json!({}))
            })
        })
        .await?;
    tracing::info!(code = %removed, "organisation removed");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The router's routes and the OpenAPI document's operations are the
    /// same set, and every operation documents its answers.
    #[test]
    fn the_openapi_document_matches_the_router() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                assert!(
                    operation["responses"]
                        .as_object()
                        .is_some_and(|r| !r.is_empty()),
                    "{method} {path} documents no responses"
                );
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
        let mut routed: Vec<(String, String)> = routes()
            .into_iter()
            .map(|(method, path, _)| (method.to_string(), path.to_owned()))
            .collect();
        documented.sort();
        routed.sort();
        assert_eq!(documented, routed);
    }
}
