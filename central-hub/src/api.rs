//! The hub's JSON API under `/api/v1` for administrators and systems:
//! reconciliation and organisations (机构管理). Until user accounts exist
//! every call takes an admin token (`Authorization: Bearer dga_...`, printed
//! by `dangan-hub init` or `dangan-hub admin-token`).
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
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde::Deserialize;

use crate::backend::HubBackend;
use crate::orgs::{self, OrgError, OrgPatch};
use crate::store::StoreError;

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// An error answered as `{"error": code, "message": text}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "admin API request failed");
        }
        let message = if self.status.is_server_error() {
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

/// A caller holding an admin token.
pub struct Admin;

impl FromRequestParts<Arc<HubBackend>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        backend: &Arc<HubBackend>,
    ) -> Result<Self, ApiError> {
        let unauthorized = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "an admin token is required (Authorization: Bearer TOKEN)",
            )
        };
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(unauthorized)?;
        if backend.is_admin(token.trim()).await? {
            Ok(Admin)
        } else {
            Err(unauthorized())
        }
    }
}

/// The API's routes: method, path (OpenAPI syntax) and handler.
pub fn routes() -> Vec<(Method, &'static str, MethodRouter<Arc<HubBackend>>)> {
    vec![
        (Method::GET, "/api/v1/openapi.json", get(openapi)),
        (Method::GET, "/api/v1/reconcile", get(reconcile)),
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
    ]
}

/// The API router over `backend`.
pub fn router(backend: Arc<HubBackend>) -> Router {
    let mut router = Router::new();
    for (_, path, handler) in routes() {
        // A path listed once per method: axum merges the method routers.
        router = router.route(path, handler);
    }
    router.with_state(backend)
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
    _admin: Admin,
    Body(new): Body<NewOrg>,
) -> Result<Response, ApiError> {
    let org = backend
        .db()
        .run(move |conn| {
            orgs::add(conn, &new.code, &new.name, new.parent.as_deref()).map_err(ApiError::from)
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
    _admin: Admin,
    Path(code): Path<String>,
    Body(patch): Body<OrgPatch>,
) -> Result<Response, ApiError> {
    let org = backend
        .db()
        .run(move |conn| orgs::update(conn, &code, &patch).map_err(ApiError::from))
        .await?;
    tracing::info!(code = %org.code, status = %org.status, "organisation changed");
    Ok(axum::Json(org).into_response())
}

async fn org_remove(
    State(backend): State<Arc<HubBackend>>,
    _admin: Admin,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let removed = code.clone();
    backend
        .db()
        .run(move |conn| orgs::remove(conn, &code).map_err(ApiError::from))
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
