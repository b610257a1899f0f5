//! SQL of the Slack outbox (migration 0016): each request's channel message, owed an
//! update by every transaction that files or changes the request (store/requests.rs),
//! claimed with a lease by scheduler/slack.rs, marked with the version Slack shows.

use chrono::{DateTime, Utc};

use super::sql::query;
use super::{Backend, Db, StoreError, WriteTx, from_millis, to_millis};
use crate::domain::RequestId;

/// A claimed message to post or update.
#[derive(Debug, Clone)]
pub struct Post {
    pub request_id: RequestId,
    /// The change the message is to show (compare-and-set when recording it shown).
    pub wanted: i64,
    /// Where it was posted, once it was.
    pub channel: Option<String>,
    pub ts: Option<String>,
    pub attempts: i64,
}

/// Owes the new request `id` its channel message, inside the transaction that files it.
pub async fn owe_new(
    tx: &mut WriteTx,
    id: RequestId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    query(
        "INSERT INTO slack_posts (request_id, wanted, next_attempt_at) VALUES ($1, 1, $2) \
         ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(id.to_string())
    .bind(to_millis(now))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Where request `id`'s channel message is, once posted.
pub async fn message_of(db: &Db, id: RequestId) -> Result<Option<(String, String)>, StoreError> {
    let row = query("SELECT channel, ts FROM slack_posts WHERE request_id = $1")
        .bind(id.to_string())
        .fetch_optional(db.reader())
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let channel: Option<String> = row.try_get("channel")?;
    let ts: Option<String> = row.try_get("ts")?;
    Ok(channel.zip(ts))
}

/// Owes request `id`'s channel message an update, inside the transaction that changes it.
/// Only requests announced since `[slack]` was on have one: turning Slack on does not
/// post old requests as they end.
pub async fn owe(tx: &mut WriteTx, id: RequestId, now: DateTime<Utc>) -> Result<(), StoreError> {
    query(
        "UPDATE slack_posts SET wanted = wanted + 1, next_attempt_at = $2, attempts = 0 \
         WHERE request_id = $1",
    )
    .bind(id.to_string())
    .bind(to_millis(now))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Claims up to `limit` messages Slack does not show as they are owed, due and not
/// leased, for `owner` until `lease_until` (`SKIP LOCKED` on Postgres: replicas never
/// take the same one, so each change is posted once).
pub async fn claim(
    db: &Db,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Post>, StoreError> {
    let lock = match db.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE slack_posts SET lease_owner = $1, lease_until = $2 WHERE request_id IN (\
           SELECT request_id FROM slack_posts \
           WHERE shown < wanted AND next_attempt_at <= $3 \
             AND (lease_until IS NULL OR lease_until < $3) \
           ORDER BY next_attempt_at LIMIT $4{lock}) \
         RETURNING request_id, wanted, channel, ts, attempts"
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
            Ok(Post {
                request_id: id
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("slack_posts: id {id}")))?,
                wanted: r.try_get("wanted")?,
                channel: r.try_get("channel")?,
                ts: r.try_get("ts")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .collect()
}

/// Records that Slack shows change `wanted` of the message at `channel`/`ts`, if
/// `owner` still holds the lease. A change owed meanwhile stays owed.
pub async fn shown(
    db: &Db,
    post: &Post,
    owner: &str,
    channel: &str,
    ts: &str,
) -> Result<bool, StoreError> {
    let done = query(
        "UPDATE slack_posts SET shown = $1, channel = $2, ts = $3, attempts = 0, \
         last_error = NULL, lease_owner = NULL, lease_until = NULL \
         WHERE request_id = $4 AND lease_owner = $5",
    )
    .bind(post.wanted)
    .bind(channel)
    .bind(ts)
    .bind(post.request_id.to_string())
    .bind(owner)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records that the message needs no post: nowhere to post it (no channel configured).
pub async fn nothing_to_post(db: &Db, post: &Post, owner: &str) -> Result<(), StoreError> {
    query(
        "UPDATE slack_posts SET shown = $1, lease_owner = NULL, lease_until = NULL \
         WHERE request_id = $2 AND lease_owner = $3",
    )
    .bind(post.wanted)
    .bind(post.request_id.to_string())
    .bind(owner)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Extends `owner`'s lease on the message of `id` while it is being sent.
pub async fn renew(
    db: &Db,
    id: RequestId,
    owner: &str,
    lease_until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    super::leases::renew(
        db,
        super::leases::Leased::SlackPosts,
        &id.to_string(),
        owner,
        lease_until,
    )
    .await
}

/// Records a failed attempt and when to try again.
pub async fn failed(
    db: &Db,
    post: &Post,
    owner: &str,
    error: &str,
    retry_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    query(
        "UPDATE slack_posts SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2, \
         lease_owner = NULL, lease_until = NULL WHERE request_id = $3 AND lease_owner = $4",
    )
    .bind(error)
    .bind(to_millis(retry_at))
    .bind(post.request_id.to_string())
    .bind(owner)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// When the next owed message nobody holds is due, if any.
pub async fn next_due(db: &Db, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
    let row = query(
        "SELECT MIN(next_attempt_at) AS due FROM slack_posts \
         WHERE shown < wanted AND (lease_until IS NULL OR lease_until < $1)",
    )
    .bind(to_millis(now))
    .fetch_one(db.reader())
    .await?;
    let due: Option<i64> = row.try_get("due")?;
    due.map(from_millis).transpose()
}

/// Messages Slack does not show as they are, and how many of them failed at least once
/// (readiness and the log: a delivery problem must be visible).
pub async fn behind(db: &Db) -> Result<(i64, i64), StoreError> {
    let row = query(
        "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END), 0) \
         AS failing FROM slack_posts WHERE shown < wanted",
    )
    .fetch_one(db.reader())
    .await?;
    Ok((row.try_get("n")?, row.try_get("failing")?))
}

/// Releases the leases taken under `prefix`, or all with `None` (SQLite), at start-up:
/// see `leases::release_of`.
pub async fn release_leases_of(db: &Db, prefix: Option<&str>) -> Result<u64, StoreError> {
    super::leases::release_of(db, super::leases::Leased::SlackPosts, prefix).await
}
