//! SQL of the CLI login's one-time codes.

use super::sql::query;
use chrono::{DateTime, Utc};

use super::{Db, StoreError, WriteTx, to_millis};
pub use crate::domain::CliLogin;
use crate::domain::UserId;

/// Stores a new code by its hash.
pub async fn insert(
    tx: &mut WriteTx,
    code_hash: &str,
    login: &CliLogin,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    query(
        "INSERT INTO cli_login_codes (code_hash, user_id, code_challenge, token_name, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(code_hash)
    .bind(&login.user_id)
    .bind(&login.code_challenge)
    .bind(&login.token_name)
    .bind(to_millis(expires_at))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Deletes login codes that expired before `before` (used or not): they can never be
/// redeemed, and each holds a hash and a PKCE challenge.
pub async fn purge_expired(db: &Db, before: DateTime<Utc>) -> Result<u64, StoreError> {
    let done = query("DELETE FROM cli_login_codes WHERE expires_at < $1")
        .bind(to_millis(before))
        .execute(db.writer())
        .await?;
    Ok(done.rows_affected())
}

/// Uses up the code: returns what it stands for if it exists, is unexpired and was
/// not used before. A second redemption (a replayed code) finds nothing.
pub async fn redeem(
    db: &Db,
    code_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<CliLogin>, StoreError> {
    let row = query(
        "UPDATE cli_login_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL AND expires_at > $1 \
         RETURNING user_id, code_challenge, token_name",
    )
    .bind(to_millis(now))
    .bind(code_hash)
    .fetch_optional(db.writer())
    .await?;
    row.map(|r| {
        Ok(CliLogin {
            user_id: UserId::new(r.try_get::<String>("user_id")?),
            code_challenge: r.try_get("code_challenge")?,
            token_name: r.try_get("token_name")?,
        })
    })
    .transpose()
}
