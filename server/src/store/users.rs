//! SQL of people who signed in.

use super::sql::{Row, query};
use chrono::{DateTime, Utc};

use super::{Db, StoreError, WriteTx, from_millis, to_millis};
use crate::domain::{IdcLookup, PrincipalId, UserId};
pub use crate::domain::{RefreshToken, User};

/// Records a sign-in: creates the user or refreshes what the provider said about them.
pub async fn upsert(tx: &mut WriteTx, user: &User) -> Result<(), StoreError> {
    let groups =
        serde_json::to_string(&user.groups).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let at = to_millis(user.last_login);
    let lookup = match &user.idc_lookup {
        Some(l) => Some(serde_json::to_string(l).map_err(|e| StoreError::Corrupt(e.to_string()))?),
        None => None,
    };
    query(
        "INSERT INTO users (id, issuer, user_name, email, name, groups, first_seen, \
         last_login, idc_lookup, claims_at, refresh_token) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $7, $9) ON CONFLICT (id) DO UPDATE SET \
         issuer = excluded.issuer, user_name = excluded.user_name, email = excluded.email, \
         name = excluded.name, groups = excluded.groups, last_login = excluded.last_login, \
         idc_lookup = excluded.idc_lookup, claims_at = excluded.claims_at, \
         refresh_token = excluded.refresh_token",
    )
    .bind(user.id.as_str())
    .bind(&user.issuer)
    .bind(&user.user_name)
    .bind(user.email.as_deref())
    .bind(user.name.as_deref())
    .bind(groups)
    .bind(at)
    .bind(lookup)
    .bind(user.refresh_token.as_ref().map(|t| t.0.as_str()))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// [`upsert`] in a transaction of its own, with no audit event: for people who act in
/// process without signing in (unit tests, the demo's and benchmark's drivers).
pub async fn save(db: &Db, user: &User) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    upsert(&mut tx, user).await?;
    tx.commit().await?;
    Ok(())
}

/// A user found in IdC by `user_name`, as the in-process drivers use them.
pub fn by_user_name(id: &str, user_name: &str, groups: Vec<String>, now: DateTime<Utc>) -> User {
    User {
        id: UserId::new(id),
        issuer: "in-process".into(),
        user_name: user_name.to_owned(),
        email: None,
        name: None,
        groups,
        last_login: now,
        idc_lookup: Some(IdcLookup::UserName {
            user_name: user_name.to_owned(),
        }),
        idc_user_id: None,
        claims_at: Some(now),
        refresh_token: None,
        cut_off_at: None,
    }
}

/// The columns [`from_row`] reads, from `users` under the alias `u` (prefixed, so they
/// can sit beside another table's in a join).
pub(crate) const COLUMNS: &str = "u.id AS u_id, u.issuer AS u_issuer, u.user_name AS u_user_name, \
     u.email AS u_email, u.name AS u_name, u.groups AS u_groups, u.last_login AS u_last_login, \
     u.idc_lookup AS u_idc_lookup, u.idc_user_id AS u_idc_user_id, u.claims_at AS u_claims_at, \
     u.refresh_token AS u_refresh_token, u.cut_off_at AS u_cut_off_at";

/// The user with this id.
pub async fn get(db: &Db, id: &str) -> Result<Option<User>, StoreError> {
    let row = query(&format!("SELECT {COLUMNS} FROM users u WHERE u.id = $1"))
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Up to two people whose email is `email` (any case): two mean it names no one person.
pub async fn by_email(db: &Db, email: &str) -> Result<Vec<User>, StoreError> {
    let rows = query(&format!(
        "SELECT {COLUMNS} FROM users u WHERE lower(u.email) = lower($1) LIMIT 2"
    ))
    .bind(email)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(from_row).collect()
}

/// A user from a row holding [`COLUMNS`].
pub(crate) fn from_row(row: &Row) -> Result<User, StoreError> {
    let groups: String = row.try_get("u_groups")?;
    Ok(User {
        id: UserId::new(row.try_get::<String>("u_id")?),
        issuer: row.try_get("u_issuer")?,
        user_name: row.try_get("u_user_name")?,
        email: row.try_get("u_email")?,
        name: row.try_get("u_name")?,
        groups: serde_json::from_str(&groups)
            .map_err(|e| StoreError::Corrupt(format!("user groups: {e}")))?,
        last_login: from_millis(row.try_get("u_last_login")?)?,
        // A lookup this release cannot read is as good as none: the next sign-in rewrites it.
        idc_lookup: row
            .try_get::<Option<String>>("u_idc_lookup")?
            .and_then(|text| serde_json::from_str(&text).ok()),
        idc_user_id: row.try_get("u_idc_user_id")?,
        claims_at: row
            .try_get::<Option<i64>>("u_claims_at")?
            .map(from_millis)
            .transpose()?,
        refresh_token: row
            .try_get::<Option<String>>("u_refresh_token")?
            .map(RefreshToken),
        cut_off_at: row
            .try_get::<Option<i64>>("u_cut_off_at")?
            .map(from_millis)
            .transpose()?,
    })
}

/// Records claims the provider confirmed again at `at`: the groups, and the refresh
/// token when the provider rotated it.
pub async fn confirm_claims(
    tx: &mut WriteTx,
    user_id: &str,
    groups: &[String],
    refresh_token: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let groups = serde_json::to_string(groups).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    query(
        "UPDATE users SET groups = $2, claims_at = $3, \
         refresh_token = COALESCE($4, refresh_token) WHERE id = $1",
    )
    .bind(user_id)
    .bind(groups)
    .bind(to_millis(at))
    .bind(refresh_token)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The provider no longer accepts the person: sessions from before `at` end, and the
/// refresh token is dropped (their API tokens are revoked by the caller, same `tx`).
/// Only if `rejected` is still their refresh token: `false` when a sign-in or another
/// replica's refresh replaced it meanwhile (then the rejection says nothing of them).
pub async fn cut_off(
    tx: &mut WriteTx,
    user_id: &str,
    at: DateTime<Utc>,
    rejected: &RefreshToken,
) -> Result<bool, StoreError> {
    let done = query(
        "UPDATE users SET cut_off_at = $2, refresh_token = NULL \
         WHERE id = $1 AND refresh_token = $3",
    )
    .bind(user_id)
    .bind(to_millis(at))
    .bind(rejected.0.as_str())
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A person's groups and when they were confirmed, read under the row's lock (inside
/// `tx`), so a change of groups is compared with what is stored, once.
pub async fn claims_for_update(
    tx: &mut WriteTx,
    user_id: &str,
) -> Result<Option<(Vec<String>, Option<DateTime<Utc>>)>, StoreError> {
    let lock = tx.row_lock();
    let row = query(&format!(
        "SELECT groups, claims_at FROM users WHERE id = $1{lock}"
    ))
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let groups: String = row.try_get("groups")?;
    let groups = serde_json::from_str(&groups)
        .map_err(|e| StoreError::Corrupt(format!("user groups: {e}")))?;
    let at = row
        .try_get::<Option<i64>>("claims_at")?
        .map(from_millis)
        .transpose()?;
    Ok(Some((groups, at)))
}

pub use jitgate_core::app::ports::Binding;

/// Binds `idc_user_id` to person `user_id` unless either is bound otherwise. Inside the
/// caller's transaction, so the binding lands with the change that needed it.
pub async fn bind_idc(
    tx: &mut WriteTx,
    user_id: &str,
    idc_user_id: &PrincipalId,
) -> Result<Binding, StoreError> {
    // The person's row first: two first requests of one person queue here, and the
    // second sees the first's binding once it commits.
    let lock = tx.row_lock();
    let current = query(&format!(
        "SELECT idc_user_id FROM users WHERE id = $1{lock}"
    ))
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    let current: Option<String> = match current {
        Some(row) => row.try_get("idc_user_id")?,
        None => return Err(StoreError::Corrupt(format!("no user {user_id} to bind"))),
    };
    match current {
        Some(bound) if bound == idc_user_id.as_str() => return Ok(Binding::Same),
        Some(bound) => return Ok(Binding::Other(bound)),
        None => {}
    }
    let holder = query("SELECT id FROM users WHERE idc_user_id = $1")
        .bind(idc_user_id)
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(holder) = holder {
        return Ok(Binding::Taken(holder.try_get("id")?));
    }
    let bound = query("UPDATE users SET idc_user_id = $2 WHERE id = $1")
        .bind(user_id)
        .bind(idc_user_id)
        .execute(&mut *tx)
        .await;
    match bound {
        Ok(_) => Ok(Binding::New),
        // Another person's first request bound the same IdC user a moment ago (the unique
        // index users_idc_user_id caught what the check above could not see yet).
        Err(e) if e.to_string().contains("idc_user_id") => {
            Ok(Binding::Taken("(bound concurrently)".into()))
        }
        Err(e) => Err(e),
    }
}

/// Removes person `user_id`'s binding; returns the IdC user they were bound to.
pub async fn unbind_idc(tx: &mut WriteTx, user_id: &str) -> Result<Option<String>, StoreError> {
    let lock = tx.row_lock();
    let row = query(&format!(
        "SELECT idc_user_id FROM users WHERE id = $1{lock}"
    ))
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let was: Option<String> = row.try_get("idc_user_id")?;
    query("UPDATE users SET idc_user_id = NULL WHERE id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    Ok(was)
}
