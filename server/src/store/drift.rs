//! SQL of drift the sweep has seen: assignments on jitgate's permission sets that
//! jitgate did not make. Each is reported once, across restarts, and again only if it
//! goes away and comes back.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::sql::query;
use super::{Db, StoreError, WriteTx, to_millis};
use crate::aws::PrincipalKind;

/// One drifted assignment: a user's or a group's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct DriftKey {
    pub principal_type: PrincipalKind,
    pub principal_id: String,
    pub account_id: String,
    pub permission_set_arn: String,
}

fn kind_str(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => "user",
        PrincipalKind::Group => "group",
    }
}

/// Every drift seen and not yet gone.
pub async fn seen(db: &Db) -> Result<HashSet<DriftKey>, StoreError> {
    let rows = query(
        "SELECT principal_type, principal_id, account_id, permission_set_arn FROM drift_seen",
    )
    .fetch_all(db.scanner())
    .await?;
    rows.iter()
        .map(|r| {
            let kind: String = r.try_get("principal_type")?;
            Ok(DriftKey {
                principal_type: match kind.as_str() {
                    "user" => PrincipalKind::User,
                    "group" => PrincipalKind::Group,
                    other => {
                        return Err(StoreError::Corrupt(format!("principal type `{other}`")));
                    }
                },
                principal_id: r.try_get("principal_id")?,
                account_id: r.try_get("account_id")?,
                permission_set_arn: r.try_get("permission_set_arn")?,
            })
        })
        .collect()
}

/// Records a drift as seen (with its audit event, in the same `tx`).
pub async fn record(
    tx: &mut WriteTx,
    key: &DriftKey,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    query(
        "INSERT INTO drift_seen (principal_type, principal_id, account_id, permission_set_arn, \
         first_seen_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(kind_str(key.principal_type))
    .bind(&key.principal_id)
    .bind(&key.account_id)
    .bind(&key.permission_set_arn)
    .bind(to_millis(now))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Forgets a drift that is gone, so it is reported again if it comes back.
pub async fn forget(db: &Db, key: &DriftKey) -> Result<(), StoreError> {
    query(
        "DELETE FROM drift_seen WHERE principal_type = $1 AND principal_id = $2 \
         AND account_id = $3 AND permission_set_arn = $4",
    )
    .bind(kind_str(key.principal_type))
    .bind(&key.principal_id)
    .bind(&key.account_id)
    .bind(&key.permission_set_arn)
    .execute(db.writer())
    .await?;
    Ok(())
}
