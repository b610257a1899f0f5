//! SQL of the duty to end an ended grant's live Session Manager sessions (migration
//! 0015): owed in the transaction that ends the request, claimed with a lease, closed
//! with its audit event. scheduler/sessions.rs does the work.

use chrono::{DateTime, Utc};

use super::sql::query;
use super::{Backend, Db, StoreError, WriteTx, from_millis, to_millis};
use crate::domain::RequestId;

/// A claimed duty: the request whose sessions are to be ended, and how many attempts
/// failed before this one.
#[derive(Debug, Clone)]
pub struct Owed {
    pub request_id: RequestId,
    pub attempts: i64,
    pub owed_at: DateTime<Utc>,
}

/// Records, inside the transaction that ends request `id`, that its sessions are to be
/// ended. Recording it again changes nothing (a closed duty stays closed).
pub async fn owe(tx: &mut WriteTx, id: RequestId, now: DateTime<Utc>) -> Result<(), StoreError> {
    query(
        "INSERT INTO session_closings (request_id, owed_at, next_attempt_at) VALUES ($1, $2, $2) \
         ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(id.to_string())
    .bind(to_millis(now))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Claims up to `limit` owed duties that are due and not leased, for `owner` until
/// `lease_until` (`SKIP LOCKED` on Postgres, so replicas never take the same one).
pub async fn claim(
    db: &Db,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Owed>, StoreError> {
    let lock = match db.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE session_closings SET lease_owner = $1, lease_until = $2 WHERE request_id IN (\
           SELECT request_id FROM session_closings \
           WHERE closed_at IS NULL AND next_attempt_at <= $3 \
             AND (lease_until IS NULL OR lease_until < $3) \
           ORDER BY next_attempt_at LIMIT $4{lock}) \
         RETURNING request_id, attempts, owed_at"
    );
    let mut tx = db.begin().await?;
    let rows = query(&sql)
        .bind(owner)
        .bind(to_millis(lease_until))
        .bind(to_millis(now))
        .bind(limit)
        .fetch_all(&mut tx)
        .await?;
    tx.commit().await?;
    rows.iter()
        .map(|r| {
            let id: String = r.try_get("request_id")?;
            Ok(Owed {
                request_id: id
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("session_closings: id {id}")))?,
                attempts: r.try_get("attempts")?,
                owed_at: from_millis(r.try_get("owed_at")?)?,
            })
        })
        .collect()
}

/// Extends `owner`'s lease; `false` when it is no longer ours.
pub async fn renew(
    db: &Db,
    id: RequestId,
    owner: &str,
    lease_until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = query(
        "UPDATE session_closings SET lease_until = $1 WHERE request_id = $2 AND lease_owner = $3",
    )
    .bind(to_millis(lease_until))
    .bind(id.to_string())
    .bind(owner)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Checks inside `tx` that `owner` still holds the duty's lease, so only the worker
/// entitled to it records an outcome.
pub async fn holds_lease(tx: &mut WriteTx, id: RequestId, owner: &str) -> Result<bool, StoreError> {
    let sql = format!(
        "SELECT lease_owner FROM session_closings WHERE request_id = $1{}",
        tx.row_lock()
    );
    let row = query(&sql)
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
    Ok(match row {
        Some(row) => row.try_get::<Option<String>>("lease_owner")?.as_deref() == Some(owner),
        None => false,
    })
}

/// Records that every session was ended: the duty is done.
pub async fn closed(tx: &mut WriteTx, id: RequestId, now: DateTime<Utc>) -> Result<(), StoreError> {
    query(
        "UPDATE session_closings SET closed_at = $1, lease_owner = NULL, lease_until = NULL, \
         last_error = NULL WHERE request_id = $2",
    )
    .bind(to_millis(now))
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records a failed attempt and when to try again; the attempts so far.
pub async fn failed(
    tx: &mut WriteTx,
    id: RequestId,
    error: &str,
    retry_at: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let row = query(
        "UPDATE session_closings SET attempts = attempts + 1, last_error = $1, \
         next_attempt_at = $2, lease_owner = NULL, lease_until = NULL \
         WHERE request_id = $3 RETURNING attempts",
    )
    .bind(error)
    .bind(to_millis(retry_at))
    .bind(id.to_string())
    .fetch_one(&mut *tx)
    .await?;
    row.try_get("attempts")
}

/// When the next owed duty nobody holds is due, if any.
pub async fn next_due(db: &Db, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
    let row = query(
        "SELECT MIN(next_attempt_at) AS due FROM session_closings \
         WHERE closed_at IS NULL AND (lease_until IS NULL OR lease_until < $1)",
    )
    .bind(to_millis(now))
    .fetch_one(db.reader())
    .await?;
    let due: Option<i64> = row.try_get("due")?;
    due.map(from_millis).transpose()
}

/// Duties not yet done, with the oldest's owed time (readiness, metrics, the benchmark).
pub async fn outstanding(db: &Db) -> Result<(i64, Option<DateTime<Utc>>), StoreError> {
    let row = query(
        "SELECT COUNT(*) AS n, MIN(owed_at) AS oldest FROM session_closings WHERE closed_at IS NULL",
    )
    .fetch_one(db.reader())
    .await?;
    let oldest: Option<i64> = row.try_get("oldest")?;
    Ok((row.try_get("n")?, oldest.map(from_millis).transpose()?))
}

/// Releases the leases taken under `prefix`, or all with `None` (SQLite), at start-up:
/// see `leases::release_of`.
pub async fn release_leases_of(db: &Db, prefix: Option<&str>) -> Result<u64, StoreError> {
    super::leases::release_of(db, super::leases::Leased::SessionClosings, prefix).await
}
