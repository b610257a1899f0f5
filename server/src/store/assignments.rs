//! SQL of the account assignments jitgate may have made in AWS.

use super::sql::{Row, query};
use chrono::{DateTime, Utc};

use super::{Db, StoreError, WriteTx, from_millis, to_millis};
pub use crate::aws::AssignmentKey;
use crate::aws::OpKind;
use crate::domain::{PermissionSetArn, PrincipalId};

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

/// An operation jitgate sent to IdC for an assignment and has not seen end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub kind: OpKind,
    /// IdC's request id, to follow with `DescribeAccountAssignment*Status`.
    pub request_id: String,
    pub started_at: DateTime<Utc>,
}

/// Failures in a row of the current operation on an assignment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Failures {
    pub count: i64,
    /// AWS's text, for admins and the audit trail only.
    pub last_error: Option<String>,
    /// Not tried again before this.
    pub retry_at: Option<DateTime<Utc>>,
}

/// An assignment as jitgate knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentRow {
    pub key: AssignmentKey,
    pub state: AssignmentState,
    pub in_flight: Option<InFlight>,
    pub failures: Failures,
}

const ROW_COLUMNS: &str = "principal_id, account_id, permission_set_arn, state, op_kind, \
     op_request_id, op_started_at, failures, last_error, retry_at";

/// The assignments recorded for one principal.
pub async fn of_principal(
    db: &Db,
    principal_id: &PrincipalId,
) -> Result<Vec<AssignmentRow>, StoreError> {
    let rows = query(&format!(
        "SELECT {ROW_COLUMNS} FROM assignments WHERE principal_id = $1"
    ))
    .bind(principal_id)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(row_from).collect()
}

/// Every recorded assignment (the drift check compares AWS with these).
pub async fn all(db: &Db) -> Result<Vec<(AssignmentKey, AssignmentState)>, StoreError> {
    let rows = query("SELECT principal_id, account_id, permission_set_arn, state FROM assignments")
        .fetch_all(db.scanner())
        .await?;
    rows.iter().map(from_row).collect()
}

/// Records an assignment's state, inserting it if new; an operation or failures
/// recorded for it are kept.
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

/// Whether jitgate records this assignment, inside `tx`.
pub async fn is_tracked(tx: &mut WriteTx, key: &AssignmentKey) -> Result<bool, StoreError> {
    let row = query(
        "SELECT state FROM assignments WHERE principal_id = $1 AND account_id = $2 \
         AND permission_set_arn = $3",
    )
    .bind(&key.principal_id)
    .bind(&key.account_id)
    .bind(&key.permission_set_arn)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.is_some())
}

/// Records the operation IdC accepted for an assignment (inserting the row, as
/// `creating`, if a crash or a takeover lost it: over-recording is always safe).
pub async fn op_started(
    tx: &mut WriteTx,
    key: &AssignmentKey,
    op: &InFlight,
) -> Result<(), StoreError> {
    query(
        "INSERT INTO assignments (principal_id, account_id, permission_set_arn, state, updated_at, \
         op_kind, op_request_id, op_started_at) VALUES ($1, $2, $3, 'creating', $4, $5, $6, $4) \
         ON CONFLICT (principal_id, account_id, permission_set_arn) DO UPDATE SET \
         op_kind = excluded.op_kind, op_request_id = excluded.op_request_id, \
         op_started_at = excluded.op_started_at, updated_at = excluded.updated_at",
    )
    .bind(&key.principal_id)
    .bind(&key.account_id)
    .bind(&key.permission_set_arn)
    .bind(to_millis(op.started_at))
    .bind(op.kind.as_str())
    .bind(&op.request_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Forgets the operation in progress on an assignment (it ended, or timed out).
pub async fn op_ended(tx: &mut WriteTx, key: &AssignmentKey) -> Result<(), StoreError> {
    query(
        "UPDATE assignments SET op_kind = NULL, op_request_id = NULL, op_started_at = NULL \
         WHERE principal_id = $1 AND account_id = $2 AND permission_set_arn = $3",
    )
    .bind(&key.principal_id)
    .bind(&key.account_id)
    .bind(&key.permission_set_arn)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records one more failure of operation `kind` on an assignment and when to try again;
/// returns the failures in a row of that kind (1 when the last failure was of the other
/// kind, or the count was restarted).
pub async fn failed(
    tx: &mut WriteTx,
    key: &AssignmentKey,
    kind: OpKind,
    error: &str,
    retry_at: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let row = query(
        "UPDATE assignments SET \
         failures = CASE WHEN failing_op = $1 THEN failures + 1 ELSE 1 END, \
         failing_op = $1, last_error = $2, retry_at = $3 \
         WHERE principal_id = $4 AND account_id = $5 AND permission_set_arn = $6 \
         RETURNING failures",
    )
    .bind(kind.as_str())
    .bind(error)
    .bind(to_millis(retry_at))
    .bind(&key.principal_id)
    .bind(&key.account_id)
    .bind(&key.permission_set_arn)
    .fetch_optional(&mut *tx)
    .await?;
    row.map(|r| r.try_get("failures"))
        .transpose()
        .map(|n| n.unwrap_or(1))
}

/// Sets when a failing assignment operation of `kind` is tried again.
pub async fn failed_retry_at(
    tx: &mut WriteTx,
    key: &AssignmentKey,
    kind: OpKind,
    retry_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    query(
        "UPDATE assignments SET retry_at = $1 WHERE principal_id = $2 AND account_id = $3 \
         AND permission_set_arn = $4 AND failing_op = $5",
    )
    .bind(to_millis(retry_at))
    .bind(&key.principal_id)
    .bind(&key.account_id)
    .bind(&key.permission_set_arn)
    .bind(kind.as_str())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Clears an assignment's failures once its operation went through.
pub async fn succeeded(tx: &mut WriteTx, key: &AssignmentKey) -> Result<(), StoreError> {
    query(
        "UPDATE assignments SET failures = 0, failing_op = NULL, last_error = NULL, retry_at = 0 \
         WHERE principal_id = $1 AND account_id = $2 AND permission_set_arn = $3",
    )
    .bind(&key.principal_id)
    .bind(&key.account_id)
    .bind(&key.permission_set_arn)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Restarts the count of an assignment's failures (the grants that waited on them were
/// failed; the next grant gets attempts of its own); its back-off and error stay.
pub async fn failures_reset(tx: &mut WriteTx, key: &AssignmentKey) -> Result<(), StoreError> {
    query(
        "UPDATE assignments SET failures = 0, failing_op = NULL \
         WHERE principal_id = $1 AND account_id = $2 AND permission_set_arn = $3",
    )
    .bind(&key.principal_id)
    .bind(&key.account_id)
    .bind(&key.permission_set_arn)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Assignment operations in progress, whoever sent them (the account-wide cap).
pub async fn in_flight_count(db: &Db) -> Result<i64, StoreError> {
    let row = query("SELECT COUNT(*) AS n FROM assignments WHERE op_kind IS NOT NULL")
        .fetch_one(db.reader())
        .await?;
    row.try_get("n")
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
            principal_id: PrincipalId(row.try_get("principal_id")?),
            account_id: row.try_get("account_id")?,
            permission_set_arn: PermissionSetArn(row.try_get("permission_set_arn")?),
        },
        AssignmentState::parse(&state)?,
    ))
}

fn row_from(row: &Row) -> Result<AssignmentRow, StoreError> {
    let (key, state) = from_row(row)?;
    let kind: Option<String> = row.try_get("op_kind")?;
    let request_id: Option<String> = row.try_get("op_request_id")?;
    let started_at: Option<i64> = row.try_get("op_started_at")?;
    let in_flight = match (kind.as_deref(), request_id, started_at) {
        (Some(kind), Some(request_id), Some(started_at)) => Some(InFlight {
            kind: match kind {
                "create" => OpKind::Create,
                "delete" => OpKind::Delete,
                other => return Err(StoreError::Corrupt(format!("operation kind `{other}`"))),
            },
            request_id,
            started_at: from_millis(started_at)?,
        }),
        _ => None,
    };
    let retry_at: i64 = row.try_get("retry_at")?;
    Ok(AssignmentRow {
        key,
        state,
        in_flight,
        failures: Failures {
            count: row.try_get("failures")?,
            last_error: row.try_get("last_error")?,
            retry_at: (retry_at > 0).then(|| from_millis(retry_at)).transpose()?,
        },
    })
}
