//! The edge's JSON API under `/api/v1`, served by `dangan-edge serve`.
//!
//! Everything the archive room does through the CLI is here for the web UI
//! and for scripts: sessions (login with a user's password, then a bearer
//! token or the session cookie), batches and their lifecycle, page uploads
//! (ingest), business-file grouping edits, metadata (著录), the document
//! checklist, the exception queue, QC rounds and the QC report, the index
//! import, templates and users. Every action runs as the logged-in user and
//! is recorded with their name.
//!
//! The routes are one table ([`routes`]); the router is built from it, and a
//! test compares it with the OpenAPI document served at
//! `/api/v1/openapi.json` (`edge-node/openapi.json`), so neither drifts.
//! Errors are JSON: `{"error": {"code": "...", "message": "..."}}` with a
//! 4xx status for anything the caller can fix.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{
    DefaultBodyLimit, FromRequest, FromRequestParts, Path as UrlPath, Query, Request, State,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::exceptions;
use crate::files::{self, DocumentCheck, EditError, GroupingEdit, MetadataPatch};
use crate::index::{self, IndexError};
use crate::ingest::{IngestError, IngestOptions};
use crate::lifecycle::{self, Actor, BatchState, LifecycleError, Role};
use crate::node::Node;
use crate::qc::{self, QcError, Verdict};
use crate::rescan::{self, RescanError};
use crate::store::{Store, StoreError};
use crate::sync::queue::AcceptError;
use crate::template::{self, TemplateError};
use crate::users::{self, User, UserError};
use dangan_shared::BlobId;
pub mod warehouse;

/// A cookie's value from the request headers (shared with the hub).
pub(crate) use dangan_sync::session::cookie;

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The session cookie's name.
pub const COOKIE: &str = "dangan_session";

/// The largest page image (or index export) a request may carry.
const MAX_UPLOAD: usize = 512 * 1024 * 1024;

struct Inner {
    node: Node,
    db: Mutex<Store>,
    /// Served over HTTPS: cookies carry `Secure`.
    secure_cookies: bool,
}

/// Shared by every request: the data folder and one database connection.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

impl ApiState {
    /// `secure_cookies`: the server is reached over HTTPS, so the session
    /// and language cookies are marked `Secure`.
    pub fn new(node: Node, store: Store, secure_cookies: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                node,
                db: Mutex::new(store),
                secure_cookies,
            }),
        }
    }

    /// A `Set-Cookie` value for this server (`Secure` over HTTPS). `value`
    /// empty with `max_age` 0 deletes the cookie.
    pub(crate) fn cookie(&self, name: &str, value: &str, max_age: i64, http_only: bool) -> String {
        dangan_sync::session::set_cookie(
            name,
            value,
            u64::try_from(max_age).unwrap_or(0),
            http_only,
            self.inner.secure_cookies,
        )
    }

    /// Runs `work` on a blocking thread with the database.
    pub(crate) async fn db<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Node, &mut Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut store = inner
                .db
                .lock()
                .map_err(|_| ApiError::internal("the database lock was poisoned"))?;
            work(&inner.node, &mut store)
        })
        .await
        .map_err(|err| ApiError::internal(format!("request task failed: {err}")))?
    }
}

/// An error answered as JSON.
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

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "API request failed");
        }
        (
            self.status,
            axum::Json(json!({ "error": { "code": self.code, "message": self.message } })),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NoSuchBatch(_) => Self::not_found(err.to_string()),
            StoreError::BatchNotOpen { .. } | StoreError::BusinessTypeMismatch { .. } => {
                Self::conflict(err.to_string())
            }
            StoreError::UnknownBusinessType { .. } => Self::invalid(err.to_string()),
            other => Self::internal(other.to_string()),
        }
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError::from(err).into()
    }
}

impl From<EditError> for ApiError {
    fn from(err: EditError) -> Self {
        match err {
            EditError::NoSuchBatch(_)
            | EditError::NoSuchFile { .. }
            | EditError::NoSuchPage { .. } => Self::not_found(err.to_string()),
            EditError::Closed { .. } => Self::conflict(err.to_string()),
            EditError::Invalid(message) => Self::invalid(message),
            EditError::Store(err) => err.into(),
        }
    }
}

impl From<LifecycleError> for ApiError {
    fn from(err: LifecycleError) -> Self {
        match err {
            LifecycleError::NoSuchBatch(_) => Self::not_found(err.to_string()),
            LifecycleError::Illegal { .. } => Self::conflict(err.to_string()),
            LifecycleError::Forbidden { .. } | LifecycleError::OverrideForbidden => {
                Self::forbidden(err.to_string())
            }
            LifecycleError::ReasonRequired
            | LifecycleError::UnknownState(_)
            | LifecycleError::UnknownRole(_) => Self::invalid(err.to_string()),
            LifecycleError::Store(err) => err.into(),
        }
    }
}

impl From<QcError> for ApiError {
    fn from(err: QcError) -> Self {
        match err {
            QcError::NoSuchBatch(_) => Self::not_found(err.to_string()),
            QcError::Lifecycle(err) => err.into(),
            QcError::Store(err) => err.into(),
            QcError::Verdict(..) | QcError::NotSampled { .. } | QcError::Retired(_) => {
                Self::invalid(err.to_string())
            }
            _ => Self::conflict(err.to_string()),
        }
    }
}

impl From<UserError> for ApiError {
    fn from(err: UserError) -> Self {
        match err {
            UserError::BadName(_) | UserError::WeakPassword => Self::invalid(err.to_string()),
            UserError::Exists(_) => Self::conflict(err.to_string()),
            UserError::NoSuchUser(_) => Self::not_found(err.to_string()),
            UserError::Hash(_) => Self::internal(err.to_string()),
            UserError::Store(err) => err.into(),
        }
    }
}

impl From<TemplateError> for ApiError {
    fn from(err: TemplateError) -> Self {
        match err {
            TemplateError::Unknown(_) => Self::not_found(err.to_string()),
            TemplateError::Store(err) => err.into(),
            other => Self::invalid(other.to_string()),
        }
    }
}

impl From<IndexError> for ApiError {
    fn from(err: IndexError) -> Self {
        match err {
            IndexError::Store(err) => err.into(),
            other => Self::invalid(other.to_string()),
        }
    }
}

impl From<AcceptError> for ApiError {
    fn from(err: AcceptError) -> Self {
        match err {
            AcceptError::NoSuchBatch(_) => Self::not_found(err.to_string()),
            AcceptError::Store(err) => err.into(),
            AcceptError::Lifecycle(err) => err.into(),
            other => Self::conflict(other.to_string()),
        }
    }
}

impl From<RescanError> for ApiError {
    fn from(err: RescanError) -> Self {
        match err {
            RescanError::NoSuchBatch(_) | RescanError::NoSuchPage { .. } => {
                Self::not_found(err.to_string())
            }
            RescanError::WrongState { .. } => Self::conflict(err.to_string()),
            RescanError::Store(err) => err.into(),
            RescanError::Cache(_) | RescanError::Input { .. } => Self::internal(err.to_string()),
            other => Self::invalid(other.to_string()),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(err: IngestError) -> Self {
        match err {
            IngestError::Store(err) => err.into(),
            other => Self::internal(other.to_string()),
        }
    }
}

/// A JSON request body; a malformed one is a 400 with the parser's message.
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
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))
    }
}

/// The logged-in user of a request (bearer token or session cookie).
pub struct Caller {
    pub user: User,
    pub token: String,
}

impl Caller {
    pub(crate) fn actor(&self) -> Actor {
        Actor::user(self.user.username.clone(), self.user.role)
    }

    /// Refuses the request unless the caller has one of `roles` (admins
    /// may do everything).
    pub(crate) fn require(&self, roles: &[Role], what: &str) -> Result<(), ApiError> {
        if self.user.role == Role::Admin || roles.contains(&self.user.role) {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "{} ({}) may not {what}",
            self.user.username,
            self.user.role.as_str()
        )))
    }
}

pub(crate) fn token_of(headers: &HeaderMap) -> Option<String> {
    dangan_sync::session::bearer(headers).or_else(|| cookie(headers, COOKIE))
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let unauthorised = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorised",
                "log in first: POST /api/v1/session with a user name and password",
            )
        };
        let token = token_of(&parts.headers).ok_or_else(unauthorised)?;
        let lookup = token.clone();
        let user = state
            .db(move |_, store| Ok(users::session_user(store.conn(), &lookup)?))
            .await?
            .ok_or_else(unauthorised)?;
        Ok(Caller { user, token })
    }
}

/// The API's routes: method, path (OpenAPI syntax) and handler. The router
/// is built from this table and the OpenAPI test reads it.
pub fn routes() -> Vec<(Method, &'static str, MethodRouter<ApiState>)> {
    use warehouse as wh;
    vec![
        (Method::GET, "/api/v1/openapi.json", get(openapi)),
        (
            Method::GET,
            "/api/v1/warehouse/locations",
            get(wh::location_list),
        ),
        (
            Method::POST,
            "/api/v1/warehouse/locations",
            post(wh::location_create),
        ),
        (
            Method::GET,
            "/api/v1/warehouse/locations/{code}",
            get(wh::location_show),
        ),
        (
            Method::GET,
            "/api/v1/warehouse/rooms/{code}/grid",
            get(wh::room_grid),
        ),
        (
            Method::POST,
            "/api/v1/warehouse/shelvings",
            post(wh::shelve),
        ),
        (
            Method::POST,
            "/api/v1/warehouse/shelvings/csv",
            post(wh::shelve_csv),
        ),
        (
            Method::GET,
            "/api/v1/warehouse/volumes",
            get(wh::volume_list),
        ),
        (
            Method::POST,
            "/api/v1/warehouse/volumes",
            post(wh::volume_create),
        ),
        (
            Method::GET,
            "/api/v1/warehouse/volumes/{code}",
            get(wh::volume_show),
        ),
        (
            Method::POST,
            "/api/v1/warehouse/volumes/{code}/box",
            post(wh::volume_box),
        ),
        (
            Method::POST,
            "/api/v1/warehouse/volumes/{code}/files",
            post(wh::volume_file_add),
        ),
        (
            Method::DELETE,
            "/api/v1/warehouse/volumes/{code}/files/{batch}/{file}",
            delete(wh::volume_file_remove),
        ),
        (
            Method::POST,
            "/api/v1/warehouse/labels",
            post(wh::label_sheet),
        ),
        (Method::GET, "/api/v1/warehouse/loans", get(wh::loan_list)),
        (
            Method::POST,
            "/api/v1/warehouse/loans",
            post(wh::loan_request),
        ),
        (
            Method::POST,
            "/api/v1/warehouse/loans/{id}/steps",
            post(wh::loan_step),
        ),
        (Method::GET, "/api/v1/warehouse/checks", get(wh::check_list)),
        (
            Method::POST,
            "/api/v1/warehouse/checks",
            post(wh::check_start),
        ),
        (
            Method::GET,
            "/api/v1/warehouse/checks/{id}",
            get(wh::check_show),
        ),
        (
            Method::POST,
            "/api/v1/warehouse/checks/{id}/scans",
            post(wh::check_scan),
        ),
        (
            Method::POST,
            "/api/v1/warehouse/checks/{id}/resolutions",
            post(wh::check_resolve),
        ),
        (
            Method::POST,
            "/api/v1/warehouse/checks/{id}/finish",
            post(wh::check_finish),
        ),
        (Method::GET, "/api/v1/warehouse/feed", get(wh::feed_status)),
        (Method::POST, "/api/v1/session", post(login)),
        (Method::GET, "/api/v1/session", get(whoami)),
        (Method::DELETE, "/api/v1/session", delete(logout)),
        (Method::GET, "/api/v1/users", get(user_list)),
        (Method::POST, "/api/v1/users", post(user_add)),
        (Method::GET, "/api/v1/templates", get(template_list)),
        (
            Method::GET,
            "/api/v1/templates/{business_type}",
            get(template_show),
        ),
        (Method::POST, "/api/v1/index/imports", post(index_import)),
        (Method::GET, "/api/v1/batches", get(batch_list)),
        (Method::POST, "/api/v1/batches", post(batch_open)),
        (Method::GET, "/api/v1/batches/{batch}", get(batch_show)),
        (
            Method::POST,
            "/api/v1/batches/{batch}/pages",
            post(page_upload),
        ),
        (
            Method::GET,
            "/api/v1/batches/{batch}/pages/{page}/image",
            get(page_image),
        ),
        (
            Method::PUT,
            "/api/v1/batches/{batch}/pages/{page}/image",
            put(page_rescan),
        ),
        (
            Method::GET,
            "/api/v1/batches/{batch}/pages/{page}/view",
            get(page_view),
        ),
        (
            Method::GET,
            "/api/v1/batches/{batch}/pages/{page}/thumbnail",
            get(page_thumbnail),
        ),
        (
            Method::GET,
            "/api/v1/batches/{batch}/pages/{page}/history",
            get(page_history),
        ),
        (
            Method::POST,
            "/api/v1/batches/{batch}/state",
            post(batch_state),
        ),
        (
            Method::POST,
            "/api/v1/batches/{batch}/accept",
            post(batch_accept),
        ),
        (
            Method::GET,
            "/api/v1/batches/{batch}/events",
            get(batch_events),
        ),
        (
            Method::GET,
            "/api/v1/batches/{batch}/exceptions",
            get(exception_list),
        ),
        (
            Method::POST,
            "/api/v1/batches/{batch}/exceptions/{exception}/resolve",
            post(exception_resolve),
        ),
        (
            Method::GET,
            "/api/v1/batches/{batch}/grouping",
            get(grouping_show),
        ),
        (
            Method::POST,
            "/api/v1/batches/{batch}/grouping",
            post(grouping_edit),
        ),
        (Method::GET, "/api/v1/batches/{batch}/edits", get(edit_list)),
        (
            Method::GET,
            "/api/v1/batches/{batch}/files/{file}",
            get(file_show),
        ),
        (
            Method::PATCH,
            "/api/v1/batches/{batch}/files/{file}",
            patch(file_metadata),
        ),
        (
            Method::PUT,
            "/api/v1/batches/{batch}/files/{file}/documents",
            put(file_documents),
        ),
        (Method::POST, "/api/v1/batches/{batch}/qc", post(qc_start)),
        (Method::GET, "/api/v1/batches/{batch}/qc", get(qc_report)),
        (
            Method::PUT,
            "/api/v1/batches/{batch}/qc/pages/{page}",
            put(qc_check),
        ),
        (
            Method::POST,
            "/api/v1/batches/{batch}/qc/finish",
            post(qc_finish),
        ),
        (
            Method::GET,
            "/api/v1/batches/{batch}/qc/report.csv",
            get(qc_report_csv),
        ),
    ]
}

/// The API's routes over `state`, without a fallback: [`crate::web::app`]
/// merges them with the web UI and answers unknown `/api/` paths as JSON.
pub fn router(state: ApiState) -> Router {
    let mut router = Router::new();
    for (_, path, handler) in routes() {
        router = router.route(path, handler);
    }
    router
        .layer(DefaultBodyLimit::max(MAX_UPLOAD))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

/// Answers axum's own refusals (a malformed path or query parameter, a
/// body over the limit, a wrong method) in the API's JSON error shape.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() || is_json {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_owned();
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::NOT_FOUND => "not_found",
        _ => "invalid",
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("bad request")
            .to_owned()
    } else {
        text
    };
    ApiError::new(status, code, message).into_response()
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
}

#[derive(Serialize)]
struct SessionView {
    token: String,
    user: User,
    expires_in_seconds: i64,
}

async fn login(
    State(state): State<ApiState>,
    Body(login): Body<Login>,
) -> Result<Response, ApiError> {
    let session = state
        .db(move |_, store| {
            let user = users::authenticate(store.conn(), &login.username, &login.password)?
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "bad_credentials",
                        "wrong user name or password, or the user is disabled",
                    )
                })?;
            let token = users::create_session(store.conn(), &user)?;
            tracing::info!(user = %user.username, "logged in");
            Ok(SessionView {
                token,
                user,
                expires_in_seconds: users::SESSION_HOURS * 3600,
            })
        })
        .await?;
    let cookie = state.cookie(COOKIE, &session.token, session.expires_in_seconds, true);
    let mut response = (StatusCode::CREATED, axum::Json(&session)).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

async fn whoami(caller: Caller) -> axum::Json<User> {
    axum::Json(caller.user)
}

async fn logout(State(state): State<ApiState>, caller: Caller) -> Result<Response, ApiError> {
    let token = caller.token.clone();
    state
        .db(move |_, store| Ok(users::end_session(store.conn(), &token)?))
        .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&state.cookie(COOKIE, "", 0, true)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

async fn user_list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<Vec<User>>, ApiError> {
    caller.require(&[], "list users")?;
    Ok(axum::Json(
        state.db(|_, store| Ok(users::list(store.conn())?)).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    #[serde(default)]
    display_name: Option<String>,
    role: Role,
    password: String,
}

async fn user_add(
    State(state): State<ApiState>,
    caller: Caller,
    Body(new): Body<NewUser>,
) -> Result<(StatusCode, axum::Json<User>), ApiError> {
    caller.require(&[], "add users")?;
    let user = state
        .db(move |node, store| {
            let hash = users::hash_password(&new.password, node.config.password_cost)?;
            let display = new.display_name.unwrap_or_else(|| new.username.clone());
            Ok(users::add(
                store.conn(),
                &new.username,
                &display,
                new.role,
                &hash,
            )?)
        })
        .await?;
    tracing::info!(by = %caller.user.username, user = %user.username, "user added");
    Ok((StatusCode::CREATED, axum::Json(user)))
}

async fn template_list(
    State(state): State<ApiState>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let list = state
        .db(|_, store| Ok(template::list(store.conn())?))
        .await?;
    Ok(axum::Json(list).into_response())
}

#[derive(Deserialize)]
struct VersionQuery {
    version: Option<u32>,
}

async fn template_show(
    State(state): State<ApiState>,
    _caller: Caller,
    UrlPath(kind): UrlPath<String>,
    Query(query): Query<VersionQuery>,
) -> Result<Response, ApiError> {
    let found = state
        .db(move |_, store| {
            let found = match query.version {
                Some(v) => template::version(store.conn(), &kind, v)?,
                None => template::current(store.conn(), &kind)?,
            };
            found.ok_or_else(|| {
                ApiError::not_found(format!("no template for business type {kind:?}"))
            })
        })
        .await?;
    Ok(axum::Json(found).into_response())
}

async fn index_import(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Operator, Role::Inspector], "import index data")?;
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::invalid("the export is not UTF-8 text"))?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let actor = caller.user.username.clone();
    let report = state
        .db(move |_, store| {
            let known: Vec<String> = template::list(store.conn())?
                .into_iter()
                .map(|t| t.template.business_type)
                .collect();
            let name = format!("api:{actor}");
            Ok(index::import_text(
                store.conn_mut(),
                &text,
                &name,
                json,
                &known,
                &actor,
            )?)
        })
        .await?;
    Ok(axum::Json(report).into_response())
}

async fn batch_list(State(state): State<ApiState>, _caller: Caller) -> Result<Response, ApiError> {
    let list = state.db(|_, store| Ok(store.batches()?)).await?;
    Ok(axum::Json(list).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBatch {
    name: String,
    #[serde(default)]
    business_type: Option<String>,
}

async fn batch_open(
    State(state): State<ApiState>,
    caller: Caller,
    Body(new): Body<NewBatch>,
) -> Result<(StatusCode, Response), ApiError> {
    caller.require(&[Role::Operator], "open batches")?;
    if new.name.trim().is_empty() || new.name.len() > 128 || new.name.contains(['/', '\\']) {
        return Err(ApiError::invalid(
            "a batch name is 1–128 characters without '/' or '\\'",
        ));
    }
    let detail = state
        .db(move |_, store| {
            store.open_batch(&new.name, new.business_type.as_deref())?;
            Ok(store.batch_detail(&new.name)?)
        })
        .await?;
    Ok((StatusCode::CREATED, axum::Json(detail).into_response()))
}

async fn batch_show(
    State(state): State<ApiState>,
    _caller: Caller,
    UrlPath(batch): UrlPath<String>,
) -> Result<Response, ApiError> {
    let detail = state
        .db(move |_, store| Ok(store.batch_detail(&batch)?))
        .await?;
    Ok(axum::Json(detail).into_response())
}

#[derive(Deserialize)]
struct UploadQuery {
    /// The page file's name as the scanner wrote it (p0001.jpg).
    filename: String,
    #[serde(default)]
    business_type: Option<String>,
}

/// A file name safe to write into the upload folder: its last component,
/// with nothing that could climb out of the folder.
fn safe_file_name(name: &str) -> Result<String, ApiError> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if base.is_empty() || base.starts_with('.') || base.len() > 200 || base.contains('\0') {
        return Err(ApiError::invalid(format!(
            "filename {name:?} is not a usable file name"
        )));
    }
    Ok(base.to_owned())
}

/// Ingests one uploaded page file into a batch, as `dangan-edge ingest`
/// would: the same file (name and bytes) sent twice is taken once.
async fn page_upload(
    State(state): State<ApiState>,
    caller: Caller,
    UrlPath(batch): UrlPath<String>,
    Query(query): Query<UploadQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Operator], "add pages")?;
    if body.is_empty() {
        return Err(ApiError::invalid(
            "the request body (the page file) is empty",
        ));
    }
    let name = safe_file_name(&query.filename)?;
    let inner = Arc::clone(&state.inner);
    let operator = caller.user.username.clone();
    let report = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let node = &inner.node;
        let path = upload_folder(&node.data_dir, &batch).join(&name);
        let (_lock, mut store) = spool_for_writing(node, &path, &body)?;
        let options = IngestOptions {
            batch: batch.clone(),
            business_type: query.business_type.clone(),
            progress: false,
            remove_ingested: true,
            operator,
        };
        Ok(crate::ingest::ingest_files(
            node,
            &mut store,
            &[path],
            &options,
        )?)
    })
    .await
    .map_err(|err| ApiError::internal(format!("ingest task failed: {err}")))??;
    Ok((StatusCode::CREATED, axum::Json(report)).into_response())
}

/// Writes an uploaded file to `path`, then takes the data folder's write
/// lock (409 while a CLI ingest or watch holds it) and opens a connection
/// of the request's own, so that a long ingest or rescan does not hold up
/// other requests.
fn spool_for_writing(
    node: &Node,
    path: &Path,
    body: &[u8],
) -> Result<(crate::node::WriteLock, Store), ApiError> {
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).map_err(|err| {
            ApiError::internal(format!("cannot create {}: {err}", folder.display()))
        })?;
    }
    std::fs::write(path, body)
        .map_err(|err| ApiError::internal(format!("cannot write {}: {err}", path.display())))?;
    let lock = node
        .lock_for_writing()
        .map_err(|err| ApiError::conflict(err.to_string()))?;
    Ok((lock, Store::open(&node.data_dir)?))
}

/// A batch by name; 404 when there is none.
fn batch_row(store: &Store, name: &str) -> Result<crate::store::BatchRow, ApiError> {
    Ok(store
        .batch(name)?
        .ok_or_else(|| StoreError::NoSuchBatch(name.to_owned()))?)
}

/// Where uploaded page files wait for ingest (removed once recorded;
/// quarantined ones are moved to the quarantine folder by ingest).
fn upload_folder(data: &Path, batch: &str) -> PathBuf {
    let digest = blake3::hash(batch.as_bytes()).to_hex();
    data.join("uploads").join(&digest.as_str()[..16])
}

/// The blob id and stored format of a batch's page.
fn page_blob(store: &Store, batch: &str, page: i64) -> Result<(BlobId, String), ApiError> {
    let found: Option<(String, String)> =
        rusqlite::OptionalExtension::optional(store.conn().query_row(
            "SELECT p.blob_id, p.format FROM pages p JOIN batches b ON b.id = p.batch_id
             WHERE b.name = ?1 AND p.seq = ?2",
            rusqlite::params![batch, page],
            |row| Ok((row.get(0)?, row.get(1)?)),
        ))?;
    let (blob, format) =
        found.ok_or_else(|| ApiError::not_found(format!("batch {batch:?} has no page {page}")))?;
    let id = blob
        .parse()
        .map_err(|_| ApiError::internal("malformed blob id"))?;
    Ok((id, format))
}

fn image_response(content_type: &'static str, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        bytes,
    )
        .into_response()
}

fn mime_of(format: &str) -> &'static str {
    match format {
        "jpeg" => "image/jpeg",
        "png" => "image/png",
        "tiff" => "image/tiff",
        _ => "application/octet-stream",
    }
}

/// The page's image as scanned (the stored blob).
async fn page_image(
    State(state): State<ApiState>,
    _caller: Caller,
    UrlPath((batch, page)): UrlPath<(String, i64)>,
) -> Result<Response, ApiError> {
    let (bytes, format) = state
        .db(move |node, store| {
            let (id, format) = page_blob(store, &batch, page)?;
            let bytes = node
                .cache
                .read_blob(&id)
                .map_err(|err| ApiError::new(StatusCode::GONE, "not_cached", err.to_string()))?;
            Ok((bytes, format))
        })
        .await?;
    Ok(image_response(mime_of(&format), bytes))
}

/// The page as a browser shows it: JPEG and PNG blobs as stored; TIFF (which
/// browsers do not display) rendered by [`dangan_shared::imaging::browser_view`]
/// (a bilevel page as a 1-bit PNG, others as a JPEG at most 2000 px wide).
/// When the blob has left the cache (archived and evicted), the thumbnail.
async fn page_view(
    State(state): State<ApiState>,
    _caller: Caller,
    UrlPath((batch, page)): UrlPath<(String, i64)>,
) -> Result<Response, ApiError> {
    let (content_type, bytes) = state
        .db(move |node, store| {
            let (id, format) = page_blob(store, &batch, page)?;
            let bytes = match node.cache.read_blob(&id) {
                Ok(bytes) => bytes,
                Err(_) => {
                    let thumbnail =
                        std::fs::read(node.cache.thumbnail_path(&id)).map_err(|err| {
                            ApiError::new(StatusCode::GONE, "not_cached", err.to_string())
                        })?;
                    return Ok(("image/jpeg", thumbnail));
                }
            };
            if format == "jpeg" || format == "png" {
                return Ok((mime_of(&format), bytes));
            }
            let (rendition, view) = dangan_shared::imaging::browser_view(
                bytes,
                &node.config.ingest.limits,
                dangan_shared::imaging::VIEW_WIDTH,
            )
            .map_err(|err| ApiError::internal(format!("page {page}: {err}")))?;
            Ok((rendition.mime(), view))
        })
        .await?;
    Ok(image_response(content_type, bytes))
}

/// The page's thumbnail (JPEG), made at ingest.
async fn page_thumbnail(
    State(state): State<ApiState>,
    _caller: Caller,
    UrlPath((batch, page)): UrlPath<(String, i64)>,
) -> Result<Response, ApiError> {
    let bytes = state
        .db(move |node, store| {
            let (id, _) = page_blob(store, &batch, page)?;
            std::fs::read(node.cache.thumbnail_path(&id))
                .map_err(|err| ApiError::new(StatusCode::GONE, "not_cached", err.to_string()))
        })
        .await?;
    Ok(image_response("image/jpeg", bytes))
}

#[derive(Deserialize)]
struct RescanQuery {
    reason: String,
    #[serde(default)]
    filename: Option<String>,
}

/// Replaces a page's image with a rescan (rework): the body is the new
/// page file; the old image stays in the page's history.
async fn page_rescan(
    State(state): State<ApiState>,
    caller: Caller,
    UrlPath((batch, page)): UrlPath<(String, i64)>,
    Query(query): Query<RescanQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Operator], "rescan pages")?;
    if body.is_empty() {
        return Err(ApiError::invalid(
            "the request body (the new page file) is empty",
        ));
    }
    let name = safe_file_name(query.filename.as_deref().unwrap_or("rescan.bin"))?;
    let actor = caller.actor();
    let inner = Arc::clone(&state.inner);
    let report = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let node = &inner.node;
        let path = upload_folder(&node.data_dir, &batch)
            .join("rescans")
            .join(format!("{page}-{name}"));
        let (_lock, mut store) = spool_for_writing(node, &path, &body)?;
        let result =
            rescan::rescan_page(node, &mut store, &batch, page, &path, &actor, &query.reason);
        // The upload was only the carrier: the cache holds the image now,
        // and a refused file is the caller's to fix and send again.
        let _ = std::fs::remove_file(&path);
        Ok(result?)
    })
    .await
    .map_err(|err| ApiError::internal(format!("rescan task failed: {err}")))??;
    Ok(axum::Json(report).into_response())
}

async fn page_history(
    State(state): State<ApiState>,
    _caller: Caller,
    UrlPath((batch, page)): UrlPath<(String, i64)>,
) -> Result<Response, ApiError> {
    let history = state
        .db(move |_, store| Ok(rescan::page_history(store.conn(), &batch, page)?))
        .await?;
    Ok(axum::Json(history).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateChange {
    to: BatchState,
    #[serde(default)]
    reason: Option<String>,
}

/// Moves a batch along its lifecycle (scanned, back to open, to rework):
/// the steps without their own endpoint. QC rounds move batches into and
/// out of `in_qc`; `accept` is the admin's override.
async fn batch_state(
    State(state): State<ApiState>,
    caller: Caller,
    UrlPath(batch): UrlPath<String>,
    Body(change): Body<StateChange>,
) -> Result<Response, ApiError> {
    let actor = caller.actor();
    let events = state
        .db(move |_, store| {
            let row = batch_row(store, &batch)?;
            let tx = store.transaction()?;
            lifecycle::transition(
                &tx,
                row.id,
                change.to,
                &actor,
                change.reason.as_deref(),
                false,
            )?;
            tx.commit()?;
            Ok(json!({ "batch": batch, "state": change.to }))
        })
        .await?;
    Ok(axum::Json(events).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Override {
    reason: String,
}

async fn batch_accept(
    State(state): State<ApiState>,
    caller: Caller,
    UrlPath(batch): UrlPath<String>,
    Body(body): Body<Override>,
) -> Result<Response, ApiError> {
    let actor = caller.actor();
    let entry = state
        .db(move |_, store| Ok(store.accept_batch(&batch, &actor, &body.reason)?))
        .await?;
    Ok(axum::Json(entry).into_response())
}

async fn batch_events(
    State(state): State<ApiState>,
    _caller: Caller,
    UrlPath(batch): UrlPath<String>,
) -> Result<Response, ApiError> {
    let events = state
        .db(move |_, store| {
            let row = batch_row(store, &batch)?;
            Ok(lifecycle::events(store.conn(), row.id)?)
        })
        .await?;
    Ok(axum::Json(events).into_response())
}

#[derive(Deserialize)]
struct ExceptionQuery {
    #[serde(default)]
    all: bool,
}

async fn exception_list(
    State(state): State<ApiState>,
    _caller: Caller,
    UrlPath(batch): UrlPath<String>,
    Query(query): Query<ExceptionQuery>,
) -> Result<Response, ApiError> {
    let list = state
        .db(move |_, store| Ok(exceptions::list(store.conn(), &batch, query.all)?))
        .await?;
    Ok(axum::Json(list).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Resolution {
    note: String,
}

async fn exception_resolve(
    State(state): State<ApiState>,
    caller: Caller,
    UrlPath((batch, id)): UrlPath<(String, String)>,
    Body(body): Body<Resolution>,
) -> Result<Response, ApiError> {
    let actor = caller.actor();
    let resolved = state
        .db(move |_, store| {
            Ok(exceptions::resolve(
                store.conn_mut(),
                &batch,
                &id,
                &body.note,
                &actor,
            )?)
        })
        .await?;
    Ok(axum::Json(resolved).into_response())
}

async fn grouping_show(
    State(state): State<ApiState>,
    _caller: Caller,
    UrlPath(batch): UrlPath<String>,
) -> Result<Response, ApiError> {
    let grouping = state
        .db(move |_, store| Ok(files::grouping(store.conn(), &batch)?))
        .await?;
    Ok(axum::Json(grouping).into_response())
}

async fn grouping_edit(
    State(state): State<ApiState>,
    caller: Caller,
    UrlPath(batch): UrlPath<String>,
    Body(edit): Body<GroupingEdit>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Operator, Role::Inspector], "change the grouping")?;
    let actor = caller.actor();
    let grouping = state
        .db(move |_, store| Ok(files::regroup(store.conn_mut(), &batch, &edit, &actor)?))
        .await?;
    Ok(axum::Json(grouping).into_response())
}

async fn edit_list(
    State(state): State<ApiState>,
    _caller: Caller,
    UrlPath(batch): UrlPath<String>,
) -> Result<Response, ApiError> {
    let edits = state
        .db(move |_, store| {
            batch_row(store, &batch)?;
            Ok(files::edits(store.conn(), &batch)?)
        })
        .await?;
    Ok(axum::Json(edits).into_response())
}

async fn file_show(
    State(state): State<ApiState>,
    _caller: Caller,
    UrlPath((batch, file)): UrlPath<(String, i64)>,
) -> Result<Response, ApiError> {
    let meta = state
        .db(move |_, store| Ok(files::metadata(store.conn(), &batch, file)?))
        .await?;
    Ok(axum::Json(meta).into_response())
}

async fn file_metadata(
    State(state): State<ApiState>,
    caller: Caller,
    UrlPath((batch, file)): UrlPath<(String, i64)>,
    Body(patch): Body<MetadataPatch>,
) -> Result<Response, ApiError> {
    let actor = caller.actor();
    let meta = state
        .db(move |_, store| {
            Ok(files::set_metadata(
                store.conn_mut(),
                &batch,
                file,
                &patch,
                &actor,
            )?)
        })
        .await?;
    Ok(axum::Json(meta).into_response())
}

async fn file_documents(
    State(state): State<ApiState>,
    caller: Caller,
    UrlPath((batch, file)): UrlPath<(String, i64)>,
    Body(checks): Body<Vec<DocumentCheck>>,
) -> Result<Response, ApiError> {
    let actor = caller.actor();
    let meta = state
        .db(move |_, store| {
            Ok(files::check_documents(
                store.conn_mut(),
                &batch,
                file,
                &checks,
                &actor,
            )?)
        })
        .await?;
    Ok(axum::Json(meta).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct QcStart {
    #[serde(default)]
    seed: Option<u64>,
}

async fn qc_start(
    State(state): State<ApiState>,
    caller: Caller,
    UrlPath(batch): UrlPath<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Inspector], "run QC")?;
    let seed = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<QcStart>(&body)
            .map_err(|err| ApiError::invalid(format!("QC start: {err}")))?
            .seed
    };
    let actor = caller.actor();
    let round = state
        .db(move |_, store| Ok(qc::start(store.conn_mut(), &batch, &actor, seed)?))
        .await?;
    Ok((StatusCode::CREATED, axum::Json(round)).into_response())
}

async fn qc_report(
    State(state): State<ApiState>,
    _caller: Caller,
    UrlPath(batch): UrlPath<String>,
) -> Result<Response, ApiError> {
    let report = state
        .db(move |_, store| Ok(qc::report(store.conn(), &batch)?))
        .await?;
    Ok(axum::Json(report).into_response())
}

async fn qc_report_csv(
    State(state): State<ApiState>,
    _caller: Caller,
    UrlPath(batch): UrlPath<String>,
) -> Result<Response, ApiError> {
    let name = batch.clone();
    let csv = state
        .db(move |_, store| Ok(qc::report_csv(&qc::report(store.conn(), &batch)?)))
        .await?;
    let disposition = format!(
        "attachment; filename=\"qc-{}.csv\"",
        name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
    );
    let mut response = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response();
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QcVerdict {
    verdict: String,
    #[serde(default)]
    note: Option<String>,
}

async fn qc_check(
    State(state): State<ApiState>,
    caller: Caller,
    UrlPath((batch, page)): UrlPath<(String, u32)>,
    Body(body): Body<QcVerdict>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Inspector], "record QC verdicts")?;
    let verdict = Verdict::parse(&body.verdict)?;
    let actor = caller.actor();
    state
        .db(move |_, store| {
            qc::check(
                store.conn(),
                &batch,
                page,
                verdict,
                body.note.as_deref(),
                &actor,
            )?;
            Ok(())
        })
        .await?;
    Ok(axum::Json(json!({ "page": page, "verdict": body.verdict })).into_response())
}

async fn qc_finish(
    State(state): State<ApiState>,
    caller: Caller,
    UrlPath(batch): UrlPath<String>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Inspector], "finish QC rounds")?;
    let actor = caller.actor();
    let outcome = state
        .db(move |_, store| Ok(qc::finish(store.conn_mut(), &batch, &actor)?))
        .await?;
    Ok(axum::Json(outcome).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The router's routes and the OpenAPI document's operations are the
    /// same set, and every operation documents its answers.
    #[test]
    fn the_openapi_document_matches_the_router() {
        let document: serde_json::Value =
            serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(document["openapi"], "3.1.0");
        let mut documented = std::collections::BTreeSet::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                if method == "parameters" {
                    continue;
                }
                assert!(
                    operation["responses"]
                        .as_object()
                        .is_some_and(|r| !r.is_empty()),
                    "{method} {path} documents no responses"
                );
                assert!(
                    operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
                    "{method} {path} has no summary"
                );
                documented.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
        let routed: std::collections::BTreeSet<String> = routes()
            .iter()
            .map(|(method, path, _)| format!("{method} {path}"))
            .collect();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty() && unrouted.is_empty(),
            "routes missing from openapi.json: {undocumented:?}; documented but not routed: {unrouted:?}"
        );
    }

    #[test]
    fn file_names_cannot_climb_out_of_the_upload_folder() {
        assert_eq!(safe_file_name("p0001.jpg").unwrap(), "p0001.jpg");
        assert_eq!(safe_file_name("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(safe_file_name("C:\\scans\\p2.tif").unwrap(), "p2.tif");
        for bad in ["", "..", "../", ".hidden", "a/"] {
            assert!(safe_file_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tokens_come_from_the_bearer_header_or_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; dangan_session=abc"),
        );
        assert_eq!(token_of(&headers).as_deref(), Some("abc"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer xyz"),
        );
        assert_eq!(token_of(&headers).as_deref(), Some("xyz"));
        assert_eq!(token_of(&HeaderMap::new()), None);
    }
}
