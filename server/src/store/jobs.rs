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
