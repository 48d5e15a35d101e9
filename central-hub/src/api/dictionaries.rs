//! `/api/v1/dictionaries` and `/api/v1/templates`: the common dictionaries
//! and business-type templates (辅助管理). Every logged-in caller reads
//! them; system administrators publish new versions, each audited.
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dangan_shared::dictionary::{Dictionary, DictionaryKind, Entry};
use dangan_shared::template::Template;
use serde::Deserialize;

use super::{Admin, ApiError, Audit, Body, Caller};
use crate::audit::Outcome as AuditOutcome;
use crate::backend::HubBackend;
use crate::dictionaries::{self, DictionaryError};
use crate::store::StoreError;

impl From<DictionaryError> for ApiError {
    fn from(err: DictionaryError) -> Self {
        match err {
            DictionaryError::Store(err) => err.into(),
            DictionaryError::NoTemplate(_) | DictionaryError::NoVersion { .. } => {
                Self::new(StatusCode::NOT_FOUND, "not_found", err.to_string())
            }
            DictionaryError::Dictionary(_) | DictionaryError::Template(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", err.to_string())
            }
        }
    }
}

fn kind_of(text: &str) -> Result<DictionaryKind, ApiError> {
    text.parse::<DictionaryKind>()
        .map_err(|err| ApiError::new(StatusCode::NOT_FOUND, "not_found", err.to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VersionQuery {
    version: Option<u32>,
}

/// Everything in force, with the feed head.
pub(super) async fn in_force(
    State(backend): State<Arc<HubBackend>>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let all = backend
        .db()
        .run(|conn| dictionaries::in_force(conn).map_err(ApiError::from))
        .await?;
    Ok(axum::Json(all).into_response())
}

pub(super) async fn dictionary_show(
    State(backend): State<Arc<HubBackend>>,
    _caller: Caller,
    Path(kind): Path<String>,
    Query(query): Query<VersionQuery>,
) -> Result<Response, ApiError> {
    let kind = kind_of(&kind)?;
    let found = backend
        .db()
        .run(move |conn| {
            dictionaries::dictionary(conn, kind, query.version).map_err(ApiError::from)
        })
        .await?;
    Ok(axum::Json(found).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewDictionary {
    entries: Vec<Entry>,
}

/// Publishes the next version of a dictionary (system administrators).
pub(super) async fn dictionary_publish(
    State(backend): State<Arc<HubBackend>>,
    admin: Admin,
    Path(kind): Path<String>,
    Body(new): Body<NewDictionary>,
) -> Result<Response, ApiError> {
    let kind = kind_of(&kind)?;
    let dictionary = Dictionary {
        kind,
        entries: new.entries,
    };
    let outcome = backend
        .db()
        .run(move |conn| {
            let tx = dictionaries::begin(conn)?;
            let outcome = dictionaries::publish_dictionary(&tx, &dictionary, &admin.actor)?;
            if outcome.changed {
                Audit {
                    actor: &admin.actor,
                    kind: admin.kind,
                    address: None,
                    action: "dictionary.publish",
                    target: kind.as_str(),
                }
                .record(
                    &tx,
                    AuditOutcome::Ok,
                    serde_json::json!({ "version": outcome.version }),
                )?;
            }
            tx.commit().map_err(StoreError::from)?;
            Ok::<_, ApiError>(outcome)
        })
        .await?;
    if outcome.changed {
        tracing::info!(dictionary = %kind, version = outcome.version, "dictionary published");
    }
    Ok(axum::Json(outcome).into_response())
}

pub(super) async fn template_list(
    State(backend): State<Arc<HubBackend>>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let all = backend
        .db()
        .run(|conn| dictionaries::templates(conn).map_err(ApiError::from))
        .await?;
    Ok(axum::Json(all).into_response())
}

pub(super) async fn template_show(
    State(backend): State<Arc<HubBackend>>,
    _caller: Caller,
    Path(business_type): Path<String>,
    Query(query): Query<VersionQuery>,
) -> Result<Response, ApiError> {
    let found = backend
        .db()
        .run(move |conn| {
            dictionaries::template(conn, &business_type, query.version).map_err(ApiError::from)
        })
        .await?;
    Ok(axum::Json(found).into_response())
}

/// Publishes the next version of a business type's template (system
/// administrators); a new business type starts at version 1.
pub(super) async fn template_publish(
    State(backend): State<Arc<HubBackend>>,
    admin: Admin,
    Path(business_type): Path<String>,
    Body(template): Body<Template>,
) -> Result<Response, ApiError> {
    if template.business_type != business_type {
        return Err(ApiError::malformed(format!(
            "the body is the template of {:?}, the path names {business_type:?}",
            template.business_type
        )));
    }
    let outcome = backend
        .db()
        .run(move |conn| {
            let tx = dictionaries::begin(conn)?;
            let (_, outcome) = dictionaries::publish_templates(
                &tx,
                std::slice::from_ref(&template),
                &admin.actor,
            )?
            .remove(0);
            if outcome.changed {
                Audit {
                    actor: &admin.actor,
                    kind: admin.kind,
                    address: None,
                    action: "template.publish",
                    target: &template.business_type,
                }
                .record(
                    &tx,
                    AuditOutcome::Ok,
                    serde_json::json!({ "version": outcome.version, "name": template.name }),
                )?;
            }
            tx.commit().map_err(StoreError::from)?;
            Ok::<_, ApiError>(outcome)
        })
        .await?;
    let status = if outcome.changed && outcome.version == 1 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(outcome)).into_response())
}
