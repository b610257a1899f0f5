//! SQL of principals, the unit of convergence, and their work leases.

use super::sql::query;
use crate::domain::PrincipalId;
use chrono::{DateTime, Utc};

use super::assignments::Failures;
use super::{Backend, Db, StoreError, WriteTx, from_millis, to_millis};

/// A principal claimed for convergence: the generation of its desired state we saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub principal_id: PrincipalId,
    pub generation: i64,
    pub attempts: i64,
}

/// Marks that `principal_id`'s desired state changed, inside the transaction that
/// changed it; the principal is created on first use. A pending retry delay and the
/// failure count are dropped: a new decision (a revoke, say) is worked on at once.
///
/// The back-off of each failing cause (an assignment, the run-as attribute) is dropped
/// too, so it is tried again with the new decision (which may be what it needed, such as
/// a new grant after an administrator fixed a permission); its count of failures stays.
pub async fn touch(tx: &mut WriteTx, principal_id: &PrincipalId) -> Result<(), StoreError> {
    query(
        "INSERT INTO principals (principal_id) VALUES ($1) \
         ON CONFLICT (principal_id) DO UPDATE SET generation = principals.generation + 1, \
         next_attempt_at = 0, attempts = 0, run_as_retry_at = 0",
    )
    .bind(principal_id)
    .execute(&mut *tx)
    .await?;
    query("UPDATE assignments SET retry_at = 0 WHERE principal_id = $1 AND retry_at > 0")
        .bind(principal_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The generation of a principal's desired state (0 if jitgate never saw them).
pub async fn generation(db: &Db, principal_id: &PrincipalId) -> Result<i64, StoreError> {
    let row = query("SELECT generation FROM principals WHERE principal_id = $1")
        .bind(principal_id)
        .fetch_optional(db.reader())
        .await?;
    row.map(|r| r.try_get("generation"))
        .transpose()
        .map(|g| g.unwrap_or(0))
}

/// Whether AWS is known to match what a principal's grants want (nothing pending).
pub async fn is_converged(db: &Db, principal_id: &PrincipalId) -> Result<bool, StoreError> {
    let row =
        query("SELECT generation, converged_generation FROM principals WHERE principal_id = $1")
            .bind(principal_id)
            .fetch_optional(db.reader())
            .await?;
    match row {
        Some(r) => Ok(r.try_get::<i64>("generation")? <= r.try_get::<i64>("converged_generation")?),
        None => Ok(true),
    }
}

/// Who holds a principal's lease, if anyone (for tests and diagnostics).
pub async fn lease_owner(
    db: &Db,
    principal_id: &PrincipalId,
) -> Result<Option<String>, StoreError> {
    let row = query("SELECT lease_owner FROM principals WHERE principal_id = $1")
        .bind(principal_id)
        .fetch_optional(db.reader())
        .await?;
    Ok(match row {
        Some(r) => r.try_get("lease_owner")?,
        None => None,
    })
}

/// Claims up to `limit` principals whose desired state is not converged and whose lease
/// is free or expired, leasing them to `owner` until `lease_until`. On Postgres,
/// `SKIP LOCKED` lets replicas claim side by side without waiting on each other.
pub async fn claim(
    db: &Db,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Claim>, StoreError> {
    let lock = match db.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE principals SET lease_owner = $1, lease_until = $2 WHERE principal_id IN (\
           SELECT principal_id FROM principals \
           WHERE generation > converged_generation AND next_attempt_at <= $3 \
             AND (lease_until IS NULL OR lease_until < $3) \
           ORDER BY next_attempt_at LIMIT $4{lock}) \
         RETURNING principal_id, generation, attempts"
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
            Ok(Claim {
                principal_id: PrincipalId(r.try_get("principal_id")?),
                generation: r.try_get("generation")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .collect()
}

/// Extends our lease; `false` when it is no longer ours (it expired and was taken).
pub async fn renew(
    db: &Db,
    principal_id: &PrincipalId,
    owner: &str,
    lease_until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = query(
        "UPDATE principals SET lease_until = $1 WHERE principal_id = $2 AND lease_owner = $3",
    )
    .bind(to_millis(lease_until))
    .bind(principal_id)
    .bind(owner)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Checks inside `tx` that we still hold the lease, so a result is only recorded by the
/// worker entitled to it.
pub async fn holds_lease(
    tx: &mut WriteTx,
    principal_id: &PrincipalId,
    owner: &str,
) -> Result<bool, StoreError> {
    let sql = format!(
        "SELECT lease_owner FROM principals WHERE principal_id = $1{}",
        tx.row_lock()
    );
    let row = query(&sql)
        .bind(principal_id)
        .fetch_optional(&mut *tx)
        .await?;
    let holder: Option<String> = match row {
        Some(r) => r.try_get("lease_owner")?,
        None => None,
    };
    Ok(holder.as_deref() == Some(owner))
}

/// Records that the desired state of `generation` is now real and releases the lease.
pub async fn converged(
    tx: &mut WriteTx,
    principal_id: &PrincipalId,
    owner: &str,
    generation: i64,
) -> Result<(), StoreError> {
    query(
        "UPDATE principals SET converged_generation = $1, lease_owner = NULL, lease_until = NULL, \
         attempts = 0, last_error = NULL WHERE principal_id = $2 AND lease_owner = $3",
    )
    .bind(generation)
    .bind(principal_id)
    .bind(owner)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Ends a pass that left work for later (operations in progress, causes backing off):
/// releases the lease, records a summary of what is outstanding and when to look
/// again. `None` when the lease was not ours.
pub async fn postpone(
    tx: &mut WriteTx,
    principal_id: &PrincipalId,
    owner: &str,
    outstanding: &str,
    next_attempt_at: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    let row = query(
        "UPDATE principals SET lease_owner = NULL, lease_until = NULL, attempts = attempts + 1, \
         last_error = $1, next_attempt_at = $2 WHERE principal_id = $3 AND lease_owner = $4 \
         RETURNING attempts",
    )
    .bind(outstanding)
    .bind(to_millis(next_attempt_at))
    .bind(principal_id)
    .bind(owner)
    .fetch_optional(&mut *tx)
    .await?;
    row.map(|r| r.try_get("attempts")).transpose()
}

/// Releases the leases taken under `prefix`, or all with `None` (SQLite), at start-up:
/// see `leases::release_of`.
pub async fn release_leases_of(db: &Db, prefix: Option<&str>) -> Result<u64, StoreError> {
    super::leases::release_of(db, super::leases::Leased::Principals, prefix).await
}

/// Releases a lease without recording anything (shutdown).
pub async fn release(db: &Db, principal_id: &PrincipalId, owner: &str) -> Result<(), StoreError> {
    query("UPDATE principals SET lease_owner = NULL, lease_until = NULL WHERE principal_id = $1 AND lease_owner = $2")
        .bind(principal_id)
        .bind(owner)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// The run-as attribute as jitgate knows it: what it may have written (intent recorded
/// before the call), what IdC confirmed, and failures in a row of writing or clearing it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunAs {
    pub written: Option<String>,
    pub confirmed: Option<String>,
    pub failures: Failures,
}

/// The run-as attribute state of a principal.
pub async fn run_as(db: &Db, principal_id: &PrincipalId) -> Result<RunAs, StoreError> {
    let row = query(
        "SELECT run_as_written, run_as_confirmed, run_as_failures, run_as_error, run_as_retry_at \
         FROM principals WHERE principal_id = $1",
    )
    .bind(principal_id)
    .fetch_optional(db.reader())
    .await?;
    match row {
        Some(r) => {
            let retry_at: i64 = r.try_get("run_as_retry_at")?;
            Ok(RunAs {
                written: r.try_get("run_as_written")?,
                confirmed: r.try_get("run_as_confirmed")?,
                failures: Failures {
                    count: r.try_get("run_as_failures")?,
                    last_error: r.try_get("run_as_error")?,
                    retry_at: (retry_at > 0).then(|| from_millis(retry_at)).transpose()?,
                },
            })
        }
        None => Ok(RunAs::default()),
    }
}

/// Records, before the call, that the run-as attribute may now hold `value`; the
/// confirmation is dropped until IdC answers.
pub async fn run_as_intent(
    tx: &mut WriteTx,
    principal_id: &PrincipalId,
    value: &str,
) -> Result<(), StoreError> {
    query("UPDATE principals SET run_as_written = $1, run_as_confirmed = NULL WHERE principal_id = $2")
        .bind(value)
        .bind(principal_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Takes back an intent after IdC refused the write outright (nothing was written):
/// the attribute holds what it held before, `written`.
pub async fn run_as_refused(
    tx: &mut WriteTx,
    principal_id: &PrincipalId,
    written: Option<&str>,
) -> Result<(), StoreError> {
    query("UPDATE principals SET run_as_written = $1 WHERE principal_id = $2")
        .bind(written)
        .bind(principal_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Records IdC's answer: the attribute holds `value` (or, with `None`, is clear); the
/// failures of writing it are over.
pub async fn run_as_confirmed(
    tx: &mut WriteTx,
    principal_id: &PrincipalId,
    value: Option<&str>,
) -> Result<(), StoreError> {
    query(
        "UPDATE principals SET run_as_written = $1, run_as_confirmed = $1, run_as_failures = 0, \
         run_as_failing = NULL, run_as_error = NULL, run_as_retry_at = 0 WHERE principal_id = $2",
    )
    .bind(value)
    .bind(principal_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Restarts the count of failures to write the attribute (the grants that waited on
/// them were failed; the next grant gets attempts of its own). The error is kept.
pub async fn run_as_failures_reset(
    tx: &mut WriteTx,
    principal_id: &PrincipalId,
) -> Result<(), StoreError> {
    query(
        "UPDATE principals SET run_as_failures = 0, run_as_failing = NULL WHERE principal_id = $1",
    )
    .bind(principal_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Sets when the failing attribute write or clear is tried again.
pub async fn run_as_retry_at(
    tx: &mut WriteTx,
    principal_id: &PrincipalId,
    retry_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    query("UPDATE principals SET run_as_retry_at = $1 WHERE principal_id = $2")
        .bind(to_millis(retry_at))
        .bind(principal_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Records one more failure to write (`"write"`) or clear (`"clear"`) the attribute and
/// when to try again; returns the failures in a row of that kind.
pub async fn run_as_failed(
    tx: &mut WriteTx,
    principal_id: &PrincipalId,
    kind: &str,
    error: &str,
    retry_at: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let row = query(
        "UPDATE principals SET \
         run_as_failures = CASE WHEN run_as_failing = $1 THEN run_as_failures + 1 ELSE 1 END, \
         run_as_failing = $1, run_as_error = $2, run_as_retry_at = $3 \
         WHERE principal_id = $4 RETURNING run_as_failures",
    )
    .bind(kind)
    .bind(error)
    .bind(to_millis(retry_at))
    .bind(principal_id)
    .fetch_optional(&mut *tx)
    .await?;
    row.map(|r| r.try_get("run_as_failures"))
        .transpose()
        .map(|n| n.unwrap_or(1))
}

/// Locks a principal's row for the rest of `tx`, creating it (converged, nothing to do)
/// on first sight. Every transaction that touches a person's requests takes this lock
/// first, so they queue per person in one order: principal, then request, then the
/// audit head (no deadlocks on Postgres), and checks across a person's requests (one
/// OS user at a time) see each other.
///
/// One statement: on Postgres the no-op update of an existing row takes its row lock;
/// on SQLite `BEGIN IMMEDIATE` already holds the database's one write lock, so an
/// existing row is left untouched.
pub async fn lock(tx: &mut WriteTx, principal_id: &PrincipalId) -> Result<(), StoreError> {
    let on_conflict = match tx.backend {
        Backend::Sqlite => "DO NOTHING",
        Backend::Postgres => "DO UPDATE SET principal_id = excluded.principal_id",
    };
    query(&format!(
        "INSERT INTO principals (principal_id, generation, converged_generation) VALUES ($1, 0, 0) \
         ON CONFLICT (principal_id) {on_conflict}"
    ))
    .bind(principal_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Leases one principal to `owner` (for work outside the workers, such as removing
/// drift) if no one holds it; creates the row if jitgate never saw the person.
pub async fn try_lease(
    db: &Db,
    principal_id: &PrincipalId,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    lock(&mut tx, principal_id).await?;
    let done = query(
        "UPDATE principals SET lease_owner = $1, lease_until = $2 \
         WHERE principal_id = $3 AND (lease_until IS NULL OR lease_until < $4)",
    )
    .bind(owner)
    .bind(to_millis(until))
    .bind(principal_id)
    .bind(to_millis(now))
    .execute(&mut tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// The earliest time a principal's pending work may be claimed (an unconverged one
/// whose lease is free or expired), so workers wake for a retry when it is due rather
/// than at their next poll.
pub async fn next_claim_due(
    db: &Db,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let row = query(
        "SELECT MIN(next_attempt_at) AS due FROM principals \
         WHERE generation > converged_generation AND (lease_until IS NULL OR lease_until < $1)",
    )
    .bind(to_millis(now))
    .fetch_one(db.reader())
    .await?;
    let due: Option<i64> = row.try_get("due")?;
    due.map(from_millis).transpose()
}

/// Principals not yet converged (for readiness and the benchmark).
pub async fn unconverged_count(db: &Db) -> Result<i64, StoreError> {
    let row = query("SELECT COUNT(*) AS n FROM principals WHERE generation > converged_generation")
        .fetch_one(db.reader())
        .await?;
    row.try_get("n")
}
