//! SQL of singleton-job leases (the sweep runs on one replica at a time).

use chrono::{DateTime, Utc};

use super::sql::query;
use super::{Db, StoreError, to_millis};

/// Takes (or renews) the lease on job `name` for `owner` until `until`, if it is free,
/// expired or already ours. `true` when we hold it.
pub async fn try_lease(
    db: &Db,
    name: &str,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    let done = query(
        "INSERT INTO job_leases (name, owner, lease_until) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until \
         WHERE job_leases.lease_until < $4 OR job_leases.owner = excluded.owner",
    )
    .bind(name)
    .bind(owner)
    .bind(to_millis(until))
    .bind(to_millis(now))
    .execute(&mut tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Extends `owner`'s lease on job `name`; `false` when it is no longer ours.
pub async fn renew(
    db: &Db,
    name: &str,
    owner: &str,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = query("UPDATE job_leases SET lease_until = $1 WHERE name = $2 AND owner = $3")
        .bind(to_millis(until))
        .bind(name)
        .bind(owner)
        .execute(db.writer())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives up `owner`'s lease on job `name` once the job is done, so the next run (on any
/// replica) need not wait for it to expire.
pub async fn release(db: &Db, name: &str, owner: &str) -> Result<(), StoreError> {
    query("DELETE FROM job_leases WHERE name = $1 AND owner = $2")
        .bind(name)
        .bind(owner)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Releases the job leases taken under `prefix` (a node's lease-owner prefix), or all of
/// them with `None` (SQLite), at start-up: see `principals::release_leases_of`.
pub async fn release_leases_of(db: &Db, prefix: Option<&str>) -> Result<u64, StoreError> {
    let done = match prefix {
        Some(prefix) => {
            query("DELETE FROM job_leases WHERE substr(owner, 1, length($1)) = $1")
                .bind(prefix)
                .execute(db.writer())
                .await?
        }
        None => query("DELETE FROM job_leases").execute(db.writer()).await?,
    };
    Ok(done.rows_affected())
}
