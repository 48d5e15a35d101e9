//! `/api/v1/users` and `/api/v1/grants`: system administrators add users,
//! disable or re-enable them, set their passwords, and grant or revoke
//! cross-organisation access. Each change commits with its audit entry.
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Admin, ApiError, Audit, Body};
use crate::audit::Outcome;
use crate::backend::HubBackend;
use crate::store;
use crate::users::{self, Role};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUser {
    username: String,
    #[serde(default)]
    display_name: Option<String>,
    role: String,
    org: String,
    password: String,
}

/// Adds a user (the password is hashed with the configured Argon2 cost).
pub(super) async fn user_add(
    State(backend): State<Arc<HubBackend>>,
    admin: Admin,
    Body(new): Body<NewUser>,
) -> Result<Response, ApiError> {
    let role: Role = new.role.parse().map_err(ApiError::from)?;
    let cost = backend.config().password_cost;
    let user = backend
        .db()
        .run(move |conn| {
            store::atomically(conn, |conn| {
                let user = users::add(
                    conn,
                    &new.username,
                    new.display_name.as_deref(),
                    role,
                    &new.org,
                    &new.password,
                    cost,
                )?;
                Audit {
                    actor: &admin.actor,
                    kind: admin.kind,
                    address: None,
                    action: "user.add",
                    target: &user.username,
                }
                .record(
                    conn,
                    Outcome::Ok,
                    serde_json::json!({ "role": user.role, "org": user.org }),
                )?;
                Ok::<_, ApiError>(user)
            })
        })
        .await?;
    tracing::info!(user = %user.username, role = user.role.as_str(), "user added");
    Ok((StatusCode::CREATED, axum::Json(user)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UserPatch {
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    password: Option<String>,
}

/// Disables or re-enables a user (disabling ends their sessions; enabling
/// lifts a lockout) and/or sets a new password (which ends their sessions).
pub(super) async fn user_update(
    State(backend): State<Arc<HubBackend>>,
    admin: Admin,
    Path(username): Path<String>,
    Body(patch): Body<UserPatch>,
) -> Result<Response, ApiError> {
    if patch.disabled.is_none() && patch.password.is_none() {
        return Err(ApiError::malformed(
            "nothing to change: give \"disabled\" and/or \"password\"",
        ));
    }
    let cost = backend.config().password_cost;
    let user = backend
        .db()
        .run(move |conn| {
            store::atomically(conn, |conn| {
                let mut user = None;
                if let Some(password) = &patch.password {
                    user = Some(users::set_password(conn, &username, password, cost)?);
                }
                if let Some(disabled) = patch.disabled {
                    user = Some(users::set_disabled(conn, &username, disabled)?);
                }
                let user = user.ok_or_else(|| ApiError::malformed("nothing to change"))?;
                let action = match (patch.disabled, patch.password.is_some()) {
                    (Some(true), _) => "user.disable",
                    (Some(false), _) => "user.enable",
                    (None, _) => "user.password",
                };
                Audit {
                    actor: &admin.actor,
                    kind: admin.kind,
                    address: None,
                    action,
                    target: &user.username,
                }
                .record(
                    conn,
                    Outcome::Ok,
                    serde_json::json!({
                        "disabled": user.disabled,
                        "password_set": patch.password.is_some(),
                    }),
                )?;
                Ok::<_, ApiError>(user)
            })
        })
        .await?;
    Ok(axum::Json(user).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GrantQuery {
    user: Option<String>,
}

pub(super) async fn grant_list(
    State(backend): State<Arc<HubBackend>>,
    _admin: Admin,
    Query(query): Query<GrantQuery>,
) -> Result<Response, ApiError> {
    let list = backend
        .db()
        .run(move |conn| users::grants(conn, query.user.as_deref()).map_err(ApiError::from))
        .await?;
    Ok(axum::Json(list).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewGrant {
    username: String,
    org: String,
    /// The last day (YYYY-MM-DD, UTC) the grant holds.
    until: String,
    reason: String,
}

/// Grants a user an organisation's subtree until the end of a day.
pub(super) async fn grant_add(
    State(backend): State<Arc<HubBackend>>,
    admin: Admin,
    Body(new): Body<NewGrant>,
) -> Result<Response, ApiError> {
    let grant = backend
        .db()
        .run(move |conn| {
            store::atomically(conn, |conn| {
                let grant = users::grant(
                    conn,
                    &new.username,
                    &new.org,
                    &new.until,
                    &new.reason,
                    &admin.actor,
                )?;
                Audit {
                    actor: &admin.actor,
                    kind: admin.kind,
                    address: None,
                    action: "grant.add",
                    target: &grant.username,
                }
                .record(
                    conn,
                    Outcome::Ok,
                    serde_json::json!({
                        "id": grant.id,
                        "org": grant.org,
                        "until": grant.expires_at,
                        "reason": grant.reason,
                    }),
                )?;
                Ok::<_, ApiError>(grant)
            })
        })
        .await?;
    tracing::info!(user = %grant.username, org = %grant.org, "grant added");
    Ok((StatusCode::CREATED, axum::Json(grant)).into_response())
}

/// Revokes a grant at once.
pub(super) async fn grant_revoke(
    State(backend): State<Arc<HubBackend>>,
    admin: Admin,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    backend
        .db()
        .run(move |conn| {
            store::atomically(conn, |conn| {
                if !users::revoke_grant(conn, id)? {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        format!("no live grant {id}"),
                    ));
                }
                Audit {
                    actor: &admin.actor,
                    kind: admin.kind,
                    address: None,
                    action: "grant.revoke",
                    target: &id.to_string(),
                }
                .record(conn, Outcome::Ok, serde_json::json!({}))?;
                Ok(())
            })
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
