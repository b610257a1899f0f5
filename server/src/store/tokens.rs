//! SQL of API bearer tokens (stored as SHA-256 hashes).

use super::sql::{Row, query};
use chrono::{DateTime, Utc};

use super::users::{self, COLUMNS as USER_COLUMNS, User};
use super::{Db, StoreError, WriteTx, from_millis, to_millis};
pub use crate::domain::ApiToken;
use crate::domain::UserId;

const COLUMNS: &str = "id, user_id, name, created_at, expires_at, last_used_at, revoked_at";
/// [`COLUMNS`] read through the alias `t`, beside `users` in a join.
const TOKEN_COLUMNS: &str =
    "t.id, t.user_id, t.name, t.created_at, t.expires_at, t.last_used_at, t.revoked_at";

/// Stores a new token by its hash.
pub async fn insert(
    tx: &mut WriteTx,
    token: &ApiToken,
    token_hash: &str,
) -> Result<(), StoreError> {
    query(
        "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&token.id)
    .bind(&token.user_id)
    .bind(&token.name)
    .bind(token_hash)
    .bind(to_millis(token.created_at))
    .bind(to_millis(token.expires_at))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// How stale `last_used_at` may get: recording every use would make each API call a
/// database write.
const LAST_USED_GRANULARITY_MILLIS: i64 = 60_000;

/// The live token with this hash (not revoked, not expired at `now`) and its owner,
/// recording its use (to the minute). One query: this runs on every API call.
pub async fn authenticate(
    db: &Db,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<(ApiToken, User)>, StoreError> {
    let row = query(&format!(
        "SELECT {TOKEN_COLUMNS}, {USER_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2"
    ))
    .bind(token_hash)
    .bind(to_millis(now))
    .fetch_optional(db.reader())
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let token = from_row(&row)?;
    let user = users::from_row(&row)?;
    let stale = token
        .last_used_at
        .is_none_or(|at| to_millis(now) - to_millis(at) >= LAST_USED_GRANULARITY_MILLIS);
    if stale {
        query("UPDATE api_tokens SET last_used_at = $1 WHERE token_hash = $2")
            .bind(to_millis(now))
            .bind(token_hash)
            .execute(db.writer())
            .await?;
    }
    Ok(Some((token, user)))
}

/// A person's tokens, newest first.
pub async fn of_user(db: &Db, user_id: &str) -> Result<Vec<ApiToken>, StoreError> {
    let rows = query(&format!(
        "SELECT {COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC"
    ))
    .bind(user_id)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(from_row).collect()
}

/// How many of `user_id`'s tokens are live (not revoked, not expired at `now`), inside `tx`.
pub async fn live_count(
    tx: &mut WriteTx,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let row = query(
        "SELECT COUNT(*) AS n FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL \
         AND expires_at > $2",
    )
    .bind(user_id)
    .bind(to_millis(now))
    .fetch_one(&mut *tx)
    .await?;
    row.try_get("n")
}

/// Revokes every live token of the person; returns how many.
pub async fn revoke_all(
    tx: &mut WriteTx,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let done =
        query("UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(to_millis(now))
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
    Ok(done.rows_affected())
}

/// Revokes one of the person's tokens; `false` when they have no such live token.
pub async fn revoke(
    tx: &mut WriteTx,
    user_id: &str,
    id: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = query(
        "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
    )
    .bind(to_millis(now))
    .bind(id)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

fn from_row(row: &Row) -> Result<ApiToken, StoreError> {
    let last_used: Option<i64> = row.try_get("last_used_at")?;
    let revoked: Option<i64> = row.try_get("revoked_at")?;
    Ok(ApiToken {
        id: row.try_get("id")?,
        user_id: UserId::new(row.try_get::<String>("user_id")?),
        name: row.try_get("name")?,
        created_at: from_millis(row.try_get("created_at")?)?,
        expires_at: from_millis(row.try_get("expires_at")?)?,
        last_used_at: last_used.map(from_millis).transpose()?,
        revoked_at: revoked.map(from_millis).transpose()?,
    })
}
