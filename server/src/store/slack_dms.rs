//! SQL of the requester's Slack DMs (migration 0017): one per request and event, owed in
//! the transaction that moves the request (store/requests.rs), claimed with a lease and
//! delivered by scheduler/slack.rs.

use chrono::{DateTime, Utc};

use super::sql::query;
use super::{Backend, Db, StoreError, WriteTx, from_millis, to_millis};
use crate::domain::{RequestId, RequestState};

/// A claimed DM.
#[derive(Debug, Clone)]
pub struct Dm {
    pub request_id: RequestId,
    pub event: String,
    pub attempts: i64,
}

/// The event a state is worth a DM for: what the requester waits to hear.
pub fn event_of(state: &RequestState) -> Option<&'static str> {
    match state {
        RequestState::Approved { .. } => Some("approved"),
        RequestState::Active { .. } => Some("active"),
        RequestState::Ended { .. } => Some("ended"),
        RequestState::Denied { .. } => Some("denied"),
        RequestState::Failed { .. } => Some("failed"),
        RequestState::Lapsed { .. } => Some("lapsed"),
        RequestState::Pending | RequestState::Cancelled { .. } => None,
    }
}

/// Owes the requester of `id` a DM about `event`, once (saving the same state again, as
/// an extension does, owes nothing new).
pub async fn owe(
    tx: &mut WriteTx,
    id: RequestId,
    event: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    query(
        "INSERT INTO slack_dms (request_id, event, owed_at, next_attempt_at) \
         VALUES ($1, $2, $3, $3) ON CONFLICT (request_id, event) DO NOTHING",
    )
    .bind(id.to_string())
    .bind(event)
    .bind(to_millis(now))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Owes an "expiring" DM to each active grant that ends within `lead` of `now` and
/// lasts longer than `lead` (a grant shorter than that would be told at once); once per
/// grant and end time (`expiring@<expires_at millis>`), so a grant extended after its DM
/// is told again before its new end.
pub async fn owe_expiring(
    db: &Db,
    now: DateTime<Utc>,
    lead: std::time::Duration,
) -> Result<u64, StoreError> {
    let lead_ms = i64::try_from(lead.as_millis()).unwrap_or(i64::MAX);
    let mut tx = db.begin().await?;
    let done = query(
        "INSERT INTO slack_dms (request_id, event, owed_at, next_attempt_at)          SELECT id, 'expiring@' || CAST(expires_at AS TEXT), $1, $1 FROM requests          WHERE state = 'active' AND expires_at > $1 AND expires_at <= $2            AND duration_secs * 1000 > $3          ON CONFLICT (request_id, event) DO NOTHING",
    )
    .bind(to_millis(now))
    .bind(to_millis(now).saturating_add(lead_ms))
    .bind(lead_ms)
    .execute(&mut tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Owes a reminder (`remind`) to each pending request filed at least `after` ago, and an
/// escalation (`escalate`) to those filed twice that ago when `escalate` is on; once each.
pub async fn owe_reminders(
    db: &Db,
    now: DateTime<Utc>,
    after: std::time::Duration,
    escalate: bool,
) -> Result<u64, StoreError> {
    let after_ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
    let mut tx = db.begin().await?;
    let mut owed = 0;
    let steps: &[(&str, i64)] = if escalate {
        &[("remind", 1), ("escalate", 2)]
    } else {
        &[("remind", 1)]
    };
    for (event, times) in steps {
        let done = query(
            "INSERT INTO slack_dms (request_id, event, owed_at, next_attempt_at) \
             SELECT id, $1, $2, $2 FROM requests WHERE state = 'pending' AND created_at <= $3 \
             ON CONFLICT (request_id, event) DO NOTHING",
        )
        .bind(*event)
        .bind(to_millis(now))
        .bind(to_millis(now).saturating_sub(after_ms.saturating_mul(*times)))
        .execute(&mut tx)
        .await?;
        owed += done.rows_affected();
    }
    tx.commit().await?;
    Ok(owed)
}

/// Claims up to `limit` owed DMs that are due and not leased, oldest first.
pub async fn claim(
    db: &Db,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Dm>, StoreError> {
    let lock = match db.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE slack_dms SET lease_owner = $1, lease_until = $2 \
         WHERE (request_id, event) IN (\
           SELECT request_id, event FROM slack_dms \
           WHERE done_at IS NULL AND next_attempt_at <= $3 \
             AND (lease_until IS NULL OR lease_until < $3) \
           ORDER BY owed_at LIMIT $4{lock}) \
         RETURNING request_id, event, attempts"
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
            Ok(Dm {
                request_id: id
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("slack_dms: id {id}")))?,
                event: r.try_get("event")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .collect()
}

/// Records the DM sent, or not to be sent (`why`: e.g. no Slack member for the person).
pub async fn done(
    db: &Db,
    dm: &Dm,
    owner: &str,
    now: DateTime<Utc>,
    why: Option<&str>,
) -> Result<(), StoreError> {
    query(
        "UPDATE slack_dms SET done_at = $1, last_error = $2, lease_owner = NULL, \
         lease_until = NULL WHERE request_id = $3 AND event = $4 AND lease_owner = $5",
    )
    .bind(to_millis(now))
    .bind(why)
    .bind(dm.request_id.to_string())
    .bind(&dm.event)
    .bind(owner)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Extends `owner`'s lease on the DMs of `id` while one is being sent.
pub async fn renew(
    db: &Db,
    id: RequestId,
    owner: &str,
    lease_until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    super::leases::renew(
        db,
        super::leases::Leased::SlackDms,
        &id.to_string(),
        owner,
        lease_until,
    )
    .await
}

/// Records a failed attempt and when to try again.
pub async fn failed(
    db: &Db,
    dm: &Dm,
    owner: &str,
    error: &str,
    retry_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    query(
        "UPDATE slack_dms SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2, \
         lease_owner = NULL, lease_until = NULL \
         WHERE request_id = $3 AND event = $4 AND lease_owner = $5",
    )
    .bind(error)
    .bind(to_millis(retry_at))
    .bind(dm.request_id.to_string())
    .bind(&dm.event)
    .bind(owner)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// When the next owed DM nobody holds is due, if any.
pub async fn next_due(db: &Db, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
    let row = query(
        "SELECT MIN(next_attempt_at) AS due FROM slack_dms \
         WHERE done_at IS NULL AND (lease_until IS NULL OR lease_until < $1)",
    )
    .bind(to_millis(now))
    .fetch_one(db.reader())
    .await?;
    let due: Option<i64> = row.try_get("due")?;
    due.map(from_millis).transpose()
}

/// Releases the leases taken under `prefix`, or all with `None` (SQLite), at start-up:
/// see `leases::release_of`.
pub async fn release_leases_of(db: &Db, prefix: Option<&str>) -> Result<u64, StoreError> {
    super::leases::release_of(db, super::leases::Leased::SlackDms, prefix).await
}
