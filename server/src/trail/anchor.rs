//! Anchoring the chain outside the database: the key in use is recorded in the chain
//! itself, and the head is written to the log at intervals, so an export (or the live
//! database) can be checked against a copy kept elsewhere (`audit verify --head`).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::audit::{Action, AuditEvent, NewEvent, SYSTEM_ACTOR};
use crate::store::{Db, StoreError, audit as stored};

/// Appends `audit.key_changed` when the chain's last event is not signed with this
/// handle's key: at the first start with a key, and after each rotation. The event
/// names both key ids (never a key), and is itself signed with the new key.
pub async fn record_key(db: &Db, at: DateTime<Utc>) -> Result<Option<AuditEvent>, StoreError> {
    let Some(key) = db.audit_key() else {
        return Ok(None);
    };
    let mut tx = db.begin().await?;
    let last = stored::last_key_id(&mut tx).await?;
    if last.as_deref() == Some(key.id()) {
        return Ok(None);
    }
    let event = NewEvent::new(Action::AuditKeyChanged, SYSTEM_ACTOR, at)
        .details(serde_json::json!({ "from": last, "to": key.id() }));
    let event = stored::append(&mut tx, event).await?;
    tx.commit().await?;
    Ok(Some(event))
}

/// Logs the chain head now and every `every`, for as long as the server runs.
pub async fn log_head_every(db: Db, every: Duration) {
    loop {
        match stored::head(&db).await {
            Ok((seq, hash)) => {
                tracing::info!(target: "jitgate::audit", seq, hash = %hash, "audit chain head");
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the audit chain head"),
        }
        tokio::time::sleep(every).await;
    }
}
