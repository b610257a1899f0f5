//! SQL of people who signed in.

use super::sql::{Row, query};
use chrono::{DateTime, Utc};

use super::{Db, StoreError, WriteTx, from_millis, to_millis};

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
pub async fn upsert(tx: &mut WriteTx, user: &User) -> Result<(), StoreError> {
    let groups =
        serde_json::to_string(&user.groups).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let at = to_millis(user.last_login);
    query(
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
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The columns [`from_row`] reads, from `users` under the alias `u` (prefixed, so they
/// can sit beside another table's in a join).
pub(crate) const COLUMNS: &str = "u.id AS u_id, u.issuer AS u_issuer, u.user_name AS u_user_name, \
     u.email AS u_email, u.name AS u_name, u.groups AS u_groups, u.last_login AS u_last_login";

/// The user with this id.
pub async fn get(db: &Db, id: &str) -> Result<Option<User>, StoreError> {
    let row = query(&format!("SELECT {COLUMNS} FROM users u WHERE u.id = $1"))
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// A user from a row holding [`COLUMNS`].
pub(crate) fn from_row(row: &Row) -> Result<User, StoreError> {
    let groups: String = row.try_get("u_groups")?;
    Ok(User {
        id: row.try_get("u_id")?,
        issuer: row.try_get("u_issuer")?,
        user_name: row.try_get("u_user_name")?,
        email: row.try_get("u_email")?,
        name: row.try_get("u_name")?,
        groups: serde_json::from_str(&groups)
            .map_err(|e| StoreError::Corrupt(format!("user groups: {e}")))?,
        last_login: from_millis(row.try_get("u_last_login")?)?,
    })
}
