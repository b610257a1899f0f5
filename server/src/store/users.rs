//! SQL of people who signed in.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Db, StoreError, from_millis, to_millis};

/// A person as the provider last described them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub issuer: String,
    pub user_name: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub last_login: DateTime<Utc>,
}

/// Records a sign-in: creates the user or refreshes what the provider said about them.
pub async fn upsert(db: &Db, user: &User) -> Result<(), StoreError> {
    let groups =
        serde_json::to_string(&user.groups).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let at = to_millis(user.last_login);
    sqlx::query(
        "INSERT INTO users (id, issuer, user_name, email, name, groups, first_seen, last_login) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (id) DO UPDATE SET \
         issuer = excluded.issuer, user_name = excluded.user_name, email = excluded.email, \
         name = excluded.name, groups = excluded.groups, last_login = excluded.last_login",
    )
    .bind(&user.id)
    .bind(&user.issuer)
    .bind(&user.user_name)
    .bind(user.email.as_deref())
    .bind(user.name.as_deref())
    .bind(groups)
    .bind(at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The user with this id.
pub async fn get(db: &Db, id: &str) -> Result<Option<User>, StoreError> {
    let row = sqlx::query(
        "SELECT id, issuer, user_name, email, name, groups, last_login FROM users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let groups: String = row.try_get("groups")?;
    Ok(Some(User {
        id: row.try_get("id")?,
        issuer: row.try_get("issuer")?,
        user_name: row.try_get("user_name")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        groups: serde_json::from_str(&groups)
            .map_err(|e| StoreError::Corrupt(format!("user groups: {e}")))?,
        last_login: from_millis(row.try_get("last_login")?)?,
    }))
}
