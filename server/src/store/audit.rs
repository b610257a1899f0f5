//! SQL of the audit trail: append (inside the state change's transaction) and reads.
//! There is no update or delete here, by design.

use super::sql::{Row, query};

use super::{Db, StoreError, WriteTx, from_millis, to_millis};
use crate::audit::EventFilter;
use crate::audit::{AuditEvent, Hashed, NewEvent, StoredAction};

/// Appends `event` to the chain inside `tx`. Taking the head row's lock first makes
/// concurrent writers (other transactions, other replicas) queue up, one chain in order.
pub async fn append(tx: &mut WriteTx, event: NewEvent) -> Result<AuditEvent, StoreError> {
    let head = query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut *tx)
        .await?;
    let seq: i64 = head.try_get("seq")?;
    let prev_hash: String = head.try_get("hash")?;
    let at_millis = to_millis(event.at);
    let action = event.action.as_str();
    let key = tx.audit_key.clone();
    let hash = Hashed {
        prev_hash: &prev_hash,
        seq,
        at_millis,
        actor: &event.actor,
        action,
        request_id: event.request_id.as_deref(),
        details: &event.details,
    }
    .hash(key.as_ref());
    let key_id = key.as_ref().map(|k| k.id().to_owned());
    query(
        "INSERT INTO audit_events \
         (seq, at, actor, action, request_id, details, prev_hash, hash, key_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(seq)
    .bind(at_millis)
    .bind(&event.actor)
    .bind(action)
    .bind(event.request_id.as_deref())
    .bind(event.details.to_string())
    .bind(&prev_hash)
    .bind(&hash)
    .bind(key_id.as_deref())
    .execute(&mut *tx)
    .await?;
    // The head takes `hash` from the insert (trigger of migration 0006).
    let stored = AuditEvent {
        seq,
        at: from_millis(at_millis)?,
        actor: event.actor,
        action: event.action.into(),
        request_id: event.request_id,
        details: event.details,
        prev_hash,
        hash,
        key_id,
    };
    tx.events.push(stored.clone());
    Ok(stored)
}

const COLUMNS: &str = "seq, at, actor, action, request_id, details, prev_hash, hash, key_id";

/// Up to `limit` events with `seq > after_seq` and `at >= since_millis`, in order.
pub async fn page_since(
    db: &Db,
    since_millis: i64,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<AuditEvent>, StoreError> {
    let rows = query(&format!(
        "SELECT {COLUMNS} FROM audit_events WHERE seq > $1 AND at >= $2 ORDER BY seq LIMIT $3"
    ))
    .bind(after_seq)
    .bind(since_millis)
    .bind(limit)
    .fetch_all(db.scanner())
    .await?;
    rows.iter().map(event_from_row).collect()
}

/// Up to `limit` events matching `filter` with `after_seq < seq <= upto_seq`, in order.
/// The range bounds the work of a search for something rare: the caller continues
/// from `upto_seq` when it found too few.
pub async fn search(
    db: &Db,
    filter: &EventFilter<'_>,
    after_seq: i64,
    upto_seq: i64,
    limit: i64,
) -> Result<Vec<AuditEvent>, StoreError> {
    // Built from fixed SQL fragments; every value is a bound parameter.
    let mut sql =
        format!("SELECT {COLUMNS} FROM audit_events WHERE seq > $1 AND seq <= $2 AND at >= $3");
    let mut binds: Vec<&str> = Vec::new();
    if let Some(request_id) = filter.request_id {
        binds.push(request_id);
        sql.push_str(&format!(" AND request_id = ${}", binds.len() + 3));
    }
    if let Some(actor) = filter.actor {
        binds.push(actor);
        sql.push_str(&format!(" AND actor = ${}", binds.len() + 3));
    }
    if let Some(prefix) = filter.action_prefix {
        binds.push(prefix);
        let n = binds.len() + 3;
        sql.push_str(&format!(" AND substr(action, 1, length(${n})) = ${n}"));
    }
    sql.push_str(&format!(" ORDER BY seq LIMIT ${}", binds.len() + 4));
    let mut q = query(&sql)
        .bind(after_seq)
        .bind(upto_seq)
        .bind(filter.since_millis);
    for value in binds {
        q = q.bind(value);
    }
    let rows = q.bind(limit).fetch_all(db.scanner()).await?;
    rows.iter().map(event_from_row).collect()
}

/// The sequence number of the first event at or after `since_millis`, if any: where a
/// search of recent events starts, instead of at the beginning of the trail.
pub async fn first_seq_since(db: &Db, since_millis: i64) -> Result<Option<i64>, StoreError> {
    query("SELECT MIN(seq) AS first FROM audit_events WHERE at >= $1")
        .bind(since_millis)
        .fetch_one(db.scanner())
        .await?
        .try_get("first")
}

/// Every event about one request, oldest first.
pub async fn for_request(db: &Db, request_id: &str) -> Result<Vec<AuditEvent>, StoreError> {
    let rows = query(&format!(
        "SELECT {COLUMNS} FROM audit_events WHERE request_id = $1 ORDER BY seq"
    ))
    .bind(request_id)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(event_from_row).collect()
}

/// The key id of the last event in the chain (`None`: no event, or a plain-hashed
/// one), read under the head's lock so that replicas starting together with a new key
/// record it once.
pub async fn last_key_id(tx: &mut WriteTx) -> Result<Option<String>, StoreError> {
    let lock = tx.row_lock();
    let head = query(&format!("SELECT seq FROM audit_head WHERE id = 1{lock}"))
        .fetch_one(&mut *tx)
        .await?;
    let seq: i64 = head.try_get("seq")?;
    let last = query("SELECT key_id FROM audit_events WHERE seq = $1")
        .bind(seq)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(match last {
        Some(row) => row.try_get("key_id")?,
        None => None,
    })
}

/// The hash of event `seq`, if there is one.
pub async fn hash_of(db: &Db, seq: i64) -> Result<Option<String>, StoreError> {
    let row = query("SELECT hash FROM audit_events WHERE seq = $1")
        .bind(seq)
        .fetch_optional(db.reader())
        .await?;
    Ok(match row {
        Some(row) => Some(row.try_get("hash")?),
        None => None,
    })
}

/// The chain head: the last sequence number and its hash.
pub async fn head(db: &Db) -> Result<(i64, String), StoreError> {
    let row = query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(db.reader())
        .await?;
    Ok((row.try_get("seq")?, row.try_get("hash")?))
}

fn event_from_row(row: &Row) -> Result<AuditEvent, StoreError> {
    let details: String = row.try_get("details")?;
    Ok(AuditEvent {
        seq: row.try_get("seq")?,
        at: from_millis(row.try_get("at")?)?,
        actor: row.try_get("actor")?,
        action: StoredAction::parse(&row.try_get::<String>("action")?),
        request_id: row.try_get("request_id")?,
        // Unparseable details (edited by hand) stay visible as text and fail the hash
        // check in `audit verify`, which then names the event.
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
        key_id: row.try_get("key_id")?,
    })
}
