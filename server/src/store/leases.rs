//! What the lease-holding tables (principals, session_closings, slack_posts, slack_dms)
//! share: each row may carry `lease_owner` / `lease_until`.

use super::sql::query;
use super::{Db, StoreError};

/// The tables whose rows carry a `lease_owner` and a `lease_until`.
#[derive(Debug, Clone, Copy)]
pub enum Leased {
    Principals,
    SessionClosings,
    SlackPosts,
    SlackDms,
}

impl Leased {
    pub(super) fn table(self) -> &'static str {
        match self {
            Leased::Principals => "principals",
            Leased::SessionClosings => "session_closings",
            Leased::SlackPosts => "slack_posts",
            Leased::SlackDms => "slack_dms",
        }
    }
}

/// Releases every lease on `table` taken under `prefix` (a node's lease-owner prefix, see
/// `scheduler::LeaseHolder`), so a restarted process takes back its own unfinished work at
/// once instead of waiting out the leases of the process it replaces. With `prefix`
/// `None`, every lease is released (SQLite: one process by design). Returns how many.
pub async fn release_of(db: &Db, table: Leased, prefix: Option<&str>) -> Result<u64, StoreError> {
    // The table name comes from the enum above, never from input.
    let table = table.table();
    let done = match prefix {
        Some(prefix) => {
            let sql = format!(
                "UPDATE {table} SET lease_owner = NULL, lease_until = NULL \
                 WHERE lease_owner IS NOT NULL AND substr(lease_owner, 1, length($1)) = $1"
            );
            query(&sql).bind(prefix).execute(db.writer()).await?
        }
        None => {
            let sql = format!(
                "UPDATE {table} SET lease_owner = NULL, lease_until = NULL \
                 WHERE lease_owner IS NOT NULL"
            );
            query(&sql).execute(db.writer()).await?
        }
    };
    Ok(done.rows_affected())
}

/// Extends `owner`'s lease on the row `key_column = key` of `table`; `false` when it is
/// no longer theirs.
pub async fn renew(
    db: &Db,
    table: Leased,
    key: &str,
    owner: &str,
    lease_until: chrono::DateTime<chrono::Utc>,
) -> Result<bool, StoreError> {
    let sql = format!(
        "UPDATE {} SET lease_until = $1 WHERE request_id = $2 AND lease_owner = $3",
        table.table()
    );
    let done = query(&sql)
        .bind(super::to_millis(lease_until))
        .bind(key)
        .bind(owner)
        .execute(db.writer())
        .await?;
    Ok(done.rows_affected() >= 1)
}
