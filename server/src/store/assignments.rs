//! SQL of the account assignments jitgate may have made in AWS.

use super::sql::{Row, query};
use chrono::{DateTime, Utc};

use super::{Db, StoreError, WriteTx, to_millis};

/// One account assignment: a permission set on an account for a principal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct AssignmentKey {
    pub principal_id: String,
    pub account_id: String,
    pub permission_set_arn: String,
}

/// Where an assignment stands as far as jitgate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentState {
    /// A create was (or is about to be) sent; it may or may not exist in AWS.
    Creating,
    /// The create succeeded.
    Present,
}

impl AssignmentState {
    fn as_str(self) -> &'static str {
        match self {
            AssignmentState::Creating => "creating",
            AssignmentState::Present => "present",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "creating" => Ok(AssignmentState::Creating),
            "present" => Ok(AssignmentState::Present),
            other => Err(StoreError::Corrupt(format!("assignment state `{other}`"))),
        }
    }
}

/// The assignments recorded for one principal.
pub async fn of_principal(
    db: &Db,
    principal_id: &str,
) -> Result<Vec<(AssignmentKey, AssignmentState)>, StoreError> {
    let rows = query(
        "SELECT principal_id, account_id, permission_set_arn, state FROM assignments WHERE principal_id = $1",
    )
    .bind(principal_id)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Every recorded assignment (the drift check compares AWS with these).
pub async fn all(db: &Db) -> Result<Vec<(AssignmentKey, AssignmentState)>, StoreError> {
    let rows = query("SELECT principal_id, account_id, permission_set_arn, state FROM assignments")
        .fetch_all(db.scanner())
        .await?;
    rows.iter().map(from_row).collect()
}

/// Records an assignment's state, inserting it if new.
pub async fn put(
    tx: &mut WriteTx,
    key: &AssignmentKey,
    state: AssignmentState,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    query(
        "INSERT INTO assignments (principal_id, account_id, permission_set_arn, state, updated_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (principal_id, account_id, permission_set_arn) \
         DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
    )
    .bind(&key.principal_id)
    .bind(&key.account_id)
    .bind(&key.permission_set_arn)
    .bind(state.as_str())
    .bind(to_millis(now))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Forgets an assignment once AWS confirmed it is gone.
pub async fn remove(tx: &mut WriteTx, key: &AssignmentKey) -> Result<(), StoreError> {
    query("DELETE FROM assignments WHERE principal_id = $1 AND account_id = $2 AND permission_set_arn = $3")
        .bind(&key.principal_id)
        .bind(&key.account_id)
        .bind(&key.permission_set_arn)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

fn from_row(row: &Row) -> Result<(AssignmentKey, AssignmentState), StoreError> {
    let state: String = row.try_get("state")?;
    Ok((
        AssignmentKey {
            principal_id: row.try_get("principal_id")?,
            account_id: row.try_get("account_id")?,
            permission_set_arn: row.try_get("permission_set_arn")?,
        },
        AssignmentState::parse(&state)?,
    ))
}
