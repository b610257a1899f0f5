//! SQL of the Slack accounts people linked, and of the one-time codes that prove them
//! (the use cases: `jitgate_core::app::slack_links`).

use super::sql::query;
use chrono::{DateTime, Utc};

use super::{Db, StoreError, WriteTx, from_millis, to_millis};
use crate::domain::UserId;
use jitgate_core::app::{PendingSlackLink, SlackLink};

pub async fn link_of(db: &Db, user: &str) -> Result<Option<SlackLink>, StoreError> {
    let row = query("SELECT slack_member, linked_at FROM slack_links WHERE user_id = $1")
        .bind(user)
        .fetch_optional(db.reader())
        .await?;
    row.map(|r| {
        Ok(SlackLink {
            member: r.try_get("slack_member")?,
            linked_at: from_millis(r.try_get("linked_at")?)?,
        })
    })
    .transpose()
}

pub async fn person_of(db: &Db, member: &str) -> Result<Option<UserId>, StoreError> {
    let row = query("SELECT user_id FROM slack_links WHERE slack_member = $1")
        .bind(member)
        .fetch_optional(db.reader())
        .await?;
    row.map(|r| Ok(UserId::new(r.try_get::<String>("user_id")?)))
        .transpose()
}

pub async fn pending(db: &Db, user: &str) -> Result<Option<PendingSlackLink>, StoreError> {
    let row =
        query("SELECT slack_member, expires_at, tries FROM slack_link_codes WHERE user_id = $1")
            .bind(user)
            .fetch_optional(db.reader())
            .await?;
    row.map(|r| {
        Ok(PendingSlackLink {
            member: r.try_get("slack_member")?,
            expires_at: from_millis(r.try_get("expires_at")?)?,
            tries: r.try_get("tries")?,
        })
    })
    .transpose()
}

/// The pending code and its hash, under the row's lock.
pub async fn pending_for_update(
    tx: &mut WriteTx,
    user: &str,
) -> Result<Option<(PendingSlackLink, String)>, StoreError> {
    let lock = tx.row_lock();
    let row = query(&format!(
        "SELECT slack_member, expires_at, tries, code_hash FROM slack_link_codes \
         WHERE user_id = $1{lock}"
    ))
    .bind(user)
    .fetch_optional(&mut *tx)
    .await?;
    row.map(|r| {
        Ok((
            PendingSlackLink {
                member: r.try_get("slack_member")?,
                expires_at: from_millis(r.try_get("expires_at")?)?,
                tries: r.try_get("tries")?,
            },
            r.try_get("code_hash")?,
        ))
    })
    .transpose()
}

pub async fn put_pending(
    tx: &mut WriteTx,
    user: &str,
    pending: &PendingSlackLink,
    hash: &str,
) -> Result<(), StoreError> {
    query(
        "INSERT INTO slack_link_codes (user_id, slack_member, code_hash, expires_at, tries) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO UPDATE SET \
         slack_member = excluded.slack_member, code_hash = excluded.code_hash, \
         expires_at = excluded.expires_at, tries = excluded.tries",
    )
    .bind(user)
    .bind(&pending.member)
    .bind(hash)
    .bind(to_millis(pending.expires_at))
    .bind(pending.tries)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub async fn drop_pending(tx: &mut WriteTx, user: &str) -> Result<(), StoreError> {
    query("DELETE FROM slack_link_codes WHERE user_id = $1")
        .bind(user)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Links `user` to `member`, taking `member` from whoever had it; answers who that was.
pub async fn link(
    tx: &mut WriteTx,
    user: &str,
    member: &str,
    now: DateTime<Utc>,
) -> Result<Option<UserId>, StoreError> {
    let before = query(
        "DELETE FROM slack_links WHERE slack_member = $1 AND user_id <> $2 RETURNING user_id",
    )
    .bind(member)
    .bind(user)
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| r.try_get::<String>("user_id").map(UserId::new))
    .transpose()?;
    query(
        "INSERT INTO slack_links (user_id, slack_member, linked_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO UPDATE SET slack_member = excluded.slack_member, \
         linked_at = excluded.linked_at",
    )
    .bind(user)
    .bind(member)
    .bind(to_millis(now))
    .execute(&mut *tx)
    .await?;
    Ok(before)
}

pub async fn unlink(tx: &mut WriteTx, user: &str) -> Result<Option<String>, StoreError> {
    let row = query("DELETE FROM slack_links WHERE user_id = $1 RETURNING slack_member")
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?;
    row.map(|r| r.try_get("slack_member")).transpose()
}
