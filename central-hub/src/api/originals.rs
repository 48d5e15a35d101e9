//! Paper originals: `POST /api/v1/files/{id}/loan-requests`, a request to
//! borrow the original of an archived business file from its district's
//! warehouse (借阅申请). Where the original is comes with the file itself
//! (`original` in `GET /api/v1/files/{id}`, see [`crate::warehouse`]).
//!
//! Reviewers, archive administrators and system administrators may ask,
//! for a file in their scope (the same 404 as viewing it otherwise). The
//! request names the file's volume; the district's edge reads it from its
//! loan-request feed (sync v2) and answers it with a loan. The request and
//! its audit entry (`original.request`) commit together; refusals are
//! audited too.
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dangan_sync::tls::PeerAddr;
use dangan_sync::wire::LoanRequest;
use serde::Deserialize;

use super::{ApiError, Audit, Body, Caller, load_file, pages};
use crate::audit::Outcome;
use crate::backend::HubBackend;
use crate::orgs;
use crate::store;
use crate::users::Role;
use crate::warehouse::{self, NewLoanRequest};

/// The most characters of a loan's purpose.
const PURPOSE_MAX: usize = 200;

/// Whether a role may ask to borrow paper originals.
pub(crate) fn may_request_loans(role: Role) -> bool {
    matches!(
        role,
        Role::Reviewer | Role::ArchiveAdmin | Role::SystemAdmin
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewRequest {
    purpose: String,
    /// YYYY-MM-DD, today or later.
    due_date: String,
}

/// Checks the body against `today`: a purpose, and a real date not in the
/// past. Returns the trimmed purpose.
fn validate(new: &NewRequest, today: &str) -> Result<String, ApiError> {
    let purpose = new.purpose.trim();
    if purpose.is_empty() {
        return Err(ApiError::malformed(
            "purpose: say what the original is needed for",
        ));
    }
    if purpose.chars().count() > PURPOSE_MAX {
        return Err(ApiError::malformed(format!(
            "purpose: at most {PURPOSE_MAX} characters"
        )));
    }
    let due = new.due_date.trim();
    if due.len() != 10 || due.parse::<jiff::civil::Date>().is_err() {
        return Err(ApiError::malformed(format!(
            "due_date: a date YYYY-MM-DD, not {due:?}"
        )));
    }
    if due < today {
        return Err(ApiError::malformed(format!(
            "due_date {due} is in the past (today is {today})"
        )));
    }
    Ok(purpose.to_owned())
}

pub(super) async fn request_loan(
    State(backend): State<Arc<HubBackend>>,
    caller: Caller,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(id): Path<i64>,
    Body(new): Body<NewRequest>,
) -> Result<Response, ApiError> {
    let today = warehouse::today(&backend.config().live.time_zone);
    let purpose = validate(&new, &today)?;
    let due_date = new.due_date.trim().to_owned();
    let address = peer.0.ip().to_string();
    let (user, kind) = (caller.user, caller.kind);
    let outcome = backend
        .db()
        .run(move |conn| {
            store::atomically(conn, |conn| {
                let target = id.to_string();
                let audit = Audit {
                    actor: &user.username,
                    kind,
                    address: Some(&address),
                    action: "original.request",
                    target: &target,
                };
                // Refusals are recorded and committed; the caller gets the
                // inner error.
                let refuse = |conn: &mut rusqlite::Connection,
                              result: Outcome,
                              reason: &str,
                              err: ApiError| {
                    audit.record(conn, result, serde_json::json!({ "reason": reason }))?;
                    Ok::<Result<LoanRequest, ApiError>, ApiError>(Err(err))
                };
                let file = load_file(conn, id)?;
                let visible = match &file {
                    Some(file) => pages::in_scope(conn, &user, &file.organisation, &file.district)?,
                    None => false,
                };
                let Some(file) = file.filter(|_| visible) else {
                    return refuse(
                        conn,
                        Outcome::Denied,
                        "not_found",
                        ApiError::new(
                            StatusCode::NOT_FOUND,
                            "not_found",
                            format!("no business file {id}"),
                        ),
                    );
                };
                if !may_request_loans(user.role) {
                    return refuse(
                        conn,
                        Outcome::Denied,
                        "role",
                        ApiError::new(
                            StatusCode::FORBIDDEN,
                            "forbidden",
                            format!(
                                "{} ({}) may not borrow paper originals",
                                user.username,
                                user.role.as_str()
                            ),
                        ),
                    );
                }
                let Some(volume) =
                    warehouse::volume_of_file(conn, &file.district, &file.batch, file.seq)?
                else {
                    return refuse(
                        conn,
                        Outcome::Failed,
                        "no_volume",
                        ApiError::new(
                            StatusCode::CONFLICT,
                            "no_original",
                            format!(
                                "district {} has not recorded a volume for business file {id}; \
                                 its paper original cannot be requested yet",
                                file.district
                            ),
                        ),
                    );
                };
                let org = orgs::get(conn, &user.org)?.map_or(user.org.clone(), |org| org.name);
                let request = warehouse::request_loan(
                    conn,
                    &NewLoanRequest {
                        district: file.district.clone(),
                        item: volume,
                        borrower: format!("{} ({org})", user.display_name),
                        purpose,
                        due_date,
                        requested_by: user.username.clone(),
                        file_id: Some(id),
                    },
                )?;
                audit.record(
                    conn,
                    Outcome::Ok,
                    serde_json::json!({
                        "request": request.seq,
                        "district": file.district,
                        "item": request.item,
                        "due_date": request.due_date,
                        "purpose": request.purpose,
                    }),
                )?;
                Ok(Ok(request))
            })
        })
        .await??;
    tracing::info!(request = outcome.seq, item = %outcome.item, file = id, "loan of an original requested");
    Ok((StatusCode::CREATED, axum::Json(outcome)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_need_a_purpose_and_a_due_date_not_in_the_past() {
        let ask = |purpose: &str, due_date: &str| {
            validate(
                &NewRequest {
                    purpose: purpose.to_owned(),
                    due_date: due_date.to_owned(),
                },
                "2026-11-26",
            )
        };
        assert_eq!(ask(" 复核 ", "2026-11-26").unwrap(), "复核");
        assert!(ask("复核", "2026-12-31").is_ok());
        for (purpose, due_date) in [
            ("", "2026-12-31"),
            ("复核", "2026-11-25"),
            ("复核", "2026-02-30"),
            ("复核", "2026-1-5"),
            ("复核", "tomorrow"),
        ] {
            assert!(ask(purpose, due_date).is_err(), "{purpose:?} {due_date:?}");
        }
        assert!(ask(&"长".repeat(PURPOSE_MAX + 1), "2026-12-31").is_err());
    }
}
