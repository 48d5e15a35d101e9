//! The batch lifecycle, enforced in this one place:
//!
//! ```text
//! open → scanned → in_qc → (rework → in_qc)* → accepted → syncing → archived
//! ```
//!
//! plus `scanned → open` (reopened to scan more) and the edge admin's
//! override straight to `accepted`, which needs a reason. Every transition
//! is recorded in `batch_events` with who, when and why.
use std::fmt;
use std::str::FromStr;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::store::{StoreError, now};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    Open,
    Scanned,
    InQc,
    Rework,
    Accepted,
    Syncing,
    Archived,
}

impl BatchState {
    pub const ALL: [BatchState; 7] = [
        BatchState::Open,
        BatchState::Scanned,
        BatchState::InQc,
        BatchState::Rework,
        BatchState::Accepted,
        BatchState::Syncing,
        BatchState::Archived,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Open => "open",
            BatchState::Scanned => "scanned",
            BatchState::InQc => "in_qc",
            BatchState::Rework => "rework",
            BatchState::Accepted => "accepted",
            BatchState::Syncing => "syncing",
            BatchState::Archived => "archived",
        }
    }
}

impl fmt::Display for BatchState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BatchState {
    type Err = LifecycleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        BatchState::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| LifecycleError::UnknownState(text.to_owned()))
    }
}

/// Who may do what at the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 扫描员: scans, groups pages, fills metadata, resolves exceptions.
    Operator,
    /// 质检员: runs QC.
    Inspector,
    /// 管理员: everything, and the override.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Inspector => "inspector",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = LifecycleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [Role::Operator, Role::Inspector, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| LifecycleError::UnknownRole(text.to_owned()))
    }
}

/// Who does something: a user with a role, or the edge itself (sync).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    User { name: String, role: Role },
    System,
}

impl Actor {
    pub fn user(name: impl Into<String>, role: Role) -> Self {
        Actor::User {
            name: name.into(),
            role,
        }
    }

    /// The name recorded with what the actor did.
    pub fn name(&self) -> &str {
        match self {
            Actor::User { name, .. } => name,
            Actor::System => "system",
        }
    }

    fn may(&self, roles: &[Role]) -> bool {
        match self {
            Actor::User { role, .. } => *role == Role::Admin || roles.contains(role),
            Actor::System => false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("unknown batch state {0:?}")]
    UnknownState(String),
    #[error("unknown role {0:?} (operator, inspector or admin)")]
    UnknownRole(String),
    #[error("no batch named {0:?}")]
    NoSuchBatch(String),
    #[error("batch {batch} is {from}; it cannot go to {to} (allowed from {from}: {allowed})")]
    Illegal {
        batch: String,
        from: BatchState,
        to: BatchState,
        allowed: String,
    },
    #[error("{actor} ({role}) may not move batch {batch} from {from} to {to}")]
    Forbidden {
        batch: String,
        actor: String,
        role: String,
        from: BatchState,
        to: BatchState,
    },
    #[error("an override needs a reason")]
    ReasonRequired,
    #[error("only an edge admin may override the lifecycle")]
    OverrideForbidden,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for LifecycleError {
    fn from(err: rusqlite::Error) -> Self {
        LifecycleError::Store(err.into())
    }
}

/// A legal step and the roles that may take it (admins may take any;
/// `system` steps are the sync's).
struct Step {
    from: BatchState,
    to: BatchState,
    roles: &'static [Role],
    system: bool,
}

const STEPS: &[Step] = &[
    Step {
        from: BatchState::Open,
        to: BatchState::Scanned,
        roles: &[Role::Operator],
        system: false,
    },
    Step {
        from: BatchState::Scanned,
        to: BatchState::Open,
        roles: &[Role::Operator],
        system: false,
    },
    Step {
        from: BatchState::Scanned,
        to: BatchState::InQc,
        roles: &[Role::Inspector],
        system: false,
    },
    Step {
        from: BatchState::InQc,
        to: BatchState::Rework,
        roles: &[Role::Inspector],
        system: false,
    },
    Step {
        from: BatchState::InQc,
        to: BatchState::Accepted,
        roles: &[Role::Inspector],
        system: false,
    },
    Step {
        from: BatchState::Rework,
        to: BatchState::InQc,
        roles: &[Role::Operator, Role::Inspector],
        system: false,
    },
    Step {
        from: BatchState::Accepted,
        to: BatchState::Syncing,
        roles: &[],
        system: true,
    },
    Step {
        from: BatchState::Syncing,
        to: BatchState::Archived,
        roles: &[],
        system: true,
    },
];

/// The states a batch may go to from `from`.
pub fn next_states(from: BatchState) -> Vec<BatchState> {
    STEPS
        .iter()
        .filter(|s| s.from == from)
        .map(|s| s.to)
        .collect()
}

/// Checks that `actor` may move `batch` from `from` to `to`. With
/// `override_reason`, an admin may accept a batch from any state before
/// `accepted`.
pub fn check(
    batch: &str,
    from: BatchState,
    to: BatchState,
    actor: &Actor,
    override_reason: Option<&str>,
) -> Result<(), LifecycleError> {
    if let Some(reason) = override_reason {
        if reason.trim().is_empty() {
            return Err(LifecycleError::ReasonRequired);
        }
        if !matches!(
            actor,
            Actor::User {
                role: Role::Admin,
                ..
            }
        ) {
            return Err(LifecycleError::OverrideForbidden);
        }
        let before_accepted = matches!(
            from,
            BatchState::Open | BatchState::Scanned | BatchState::InQc | BatchState::Rework
        );
        if to == BatchState::Accepted && before_accepted {
            return Ok(());
        }
        return Err(illegal(batch, from, to));
    }
    let Some(step) = STEPS.iter().find(|s| s.from == from && s.to == to) else {
        return Err(illegal(batch, from, to));
    };
    let allowed = if step.system {
        *actor == Actor::System
    } else {
        actor.may(step.roles)
    };
    if allowed {
        Ok(())
    } else {
        Err(LifecycleError::Forbidden {
            batch: batch.to_owned(),
            actor: actor.name().to_owned(),
            role: match actor {
                Actor::User { role, .. } => role.as_str().to_owned(),
                Actor::System => "system".to_owned(),
            },
            from,
            to,
        })
    }
}

fn illegal(batch: &str, from: BatchState, to: BatchState) -> LifecycleError {
    let next = next_states(from);
    LifecycleError::Illegal {
        batch: batch.to_owned(),
        from,
        to,
        allowed: if next.is_empty() {
            "nothing".to_owned()
        } else {
            next.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        },
    }
}

/// Moves a batch (by id) to `to` inside the caller's transaction, after
/// [`check`], and records the event. Returns the state it left.
pub fn transition(
    conn: &Connection,
    batch_id: i64,
    to: BatchState,
    actor: &Actor,
    reason: Option<&str>,
    is_override: bool,
) -> Result<BatchState, LifecycleError> {
    let (name, from): (String, String) = conn
        .query_row(
            "SELECT name, state FROM batches WHERE id = ?1",
            [batch_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?
        .ok_or_else(|| LifecycleError::NoSuchBatch(format!("#{batch_id}")))?;
    let from: BatchState = from.parse()?;
    check(
        &name,
        from,
        to,
        actor,
        is_override.then_some(reason.unwrap_or("")),
    )?;
    let now = now();
    conn.execute(
        "UPDATE batches SET state = ?1, updated_at = ?2 WHERE id = ?3",
        params![to.as_str(), now, batch_id],
    )?;
    conn.execute(
        "INSERT INTO batch_events(batch_id, from_state, to_state, actor, reason, override, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            batch_id,
            from.as_str(),
            to.as_str(),
            actor.name(),
            reason,
            is_override,
            now
        ],
    )?;
    Ok(from)
}

/// One recorded transition.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub from: String,
    pub to: String,
    pub actor: String,
    pub reason: Option<String>,
    #[serde(rename = "override")]
    pub is_override: bool,
    pub at: String,
}

/// A batch's transitions, oldest first.
pub fn events(conn: &Connection, batch_id: i64) -> Result<Vec<Event>, StoreError> {
    let mut statement = conn.prepare(
        "SELECT from_state, to_state, actor, reason, override, at FROM batch_events
         WHERE batch_id = ?1 ORDER BY id",
    )?;
    let rows = statement.query_map([batch_id], |row| {
        Ok(Event {
            from: row.get(0)?,
            to: row.get(1)?,
            actor: row.get(2)?,
            reason: row.get(3)?,
            is_override: row.get(4)?,
            at: row.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operator() -> Actor {
        Actor::user("li", Role::Operator)
    }
    fn inspector() -> Actor {
        Actor::user("wang", Role::Inspector)
    }
    fn admin() -> Actor {
        Actor::user("zhao", Role::Admin)
    }

    #[test]
    fn the_happy_path_is_legal_for_the_right_roles() {
        use BatchState::*;
        let path = [
            (Open, Scanned, operator()),
            (Scanned, InQc, inspector()),
            (InQc, Rework, inspector()),
            (Rework, InQc, operator()),
            (InQc, Accepted, inspector()),
            (Accepted, Syncing, Actor::System),
            (Syncing, Archived, Actor::System),
        ];
        for (from, to, actor) in path {
            check("B1", from, to, &actor, None)
                .unwrap_or_else(|err| panic!("{from} → {to} by {actor:?}: {err}"));
        }
    }

    #[test]
    fn illegal_steps_say_what_is_allowed() {
        use BatchState::*;
        let err = check("B1", Open, Accepted, &admin(), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "batch B1 is open; it cannot go to accepted (allowed from open: scanned)"
        );
        assert!(check("B1", Archived, Open, &admin(), None).is_err());
        assert!(check("B1", Scanned, Rework, &inspector(), None).is_err());
        // Users cannot fake the sync's steps, nor the sync a user's.
        assert!(check("B1", Accepted, Syncing, &admin(), None).is_err());
        assert!(check("B1", Open, Scanned, &Actor::System, None).is_err());
    }

    #[test]
    fn roles_are_enforced_and_admins_may_do_any_user_step() {
        use BatchState::*;
        assert!(matches!(
            check("B1", Scanned, InQc, &operator(), None),
            Err(LifecycleError::Forbidden { .. })
        ));
        assert!(matches!(
            check("B1", InQc, Accepted, &operator(), None),
            Err(LifecycleError::Forbidden { .. })
        ));
        assert!(check("B1", Open, Scanned, &inspector(), None).is_err());
        assert!(check("B1", InQc, Accepted, &admin(), None).is_ok());
    }

    #[test]
    fn the_override_needs_an_admin_and_a_reason_and_only_accepts() {
        use BatchState::*;
        assert!(check("B1", Open, Accepted, &admin(), Some("urgent transfer")).is_ok());
        assert!(check("B1", Rework, Accepted, &admin(), Some("rescanned on paper")).is_ok());
        assert!(matches!(
            check("B1", Open, Accepted, &admin(), Some("  ")),
            Err(LifecycleError::ReasonRequired)
        ));
        assert!(matches!(
            check("B1", Open, Accepted, &inspector(), Some("because")),
            Err(LifecycleError::OverrideForbidden)
        ));
        assert!(check("B1", Accepted, Archived, &admin(), Some("because")).is_err());
        assert!(check("B1", Open, Rework, &admin(), Some("because")).is_err());
    }
}
