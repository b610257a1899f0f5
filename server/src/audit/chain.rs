//! Hashing and verifying the chain.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{AuditEvent, GENESIS_HASH};
use crate::store::{Db, StoreError, audit as stored};

/// `sha256(prev_hash || canonical(event))` as lowercase hex. The canonical form is JSON
/// with object keys sorted at every depth and the time in epoch milliseconds, so it does
/// not depend on how a backend or a JSON library orders or formats anything.
pub fn event_hash(
    prev_hash: &str,
    seq: i64,
    at_millis: i64,
    actor: &str,
    action: &str,
    request_id: Option<&str>,
    details: &Value,
) -> String {
    let event = serde_json::json!({
        "action": action,
        "actor": actor,
        "at": at_millis,
        "details": details,
        "request_id": request_id,
        "seq": seq,
    });
    let mut canonical = String::new();
    write_canonical(&event, &mut canonical);
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(canonical.as_bytes());
    hex::encode(hasher.finalize())
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// A chain that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub events: i64,
    pub head_hash: String,
}

/// Where and why the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at event {seq}: {why}")]
pub struct Broken {
    pub seq: i64,
    pub why: String,
}

/// Walks every event in order, recomputing each hash, up to the chain head read first
/// (so appends made meanwhile by a running server are not mistaken for tampering); the
/// head must match the last event, so removing events from the end is caught too.
pub async fn verify(db: &Db) -> Result<Result<Verified, Broken>, StoreError> {
    const PAGE: i64 = 1000;
    let (head_seq, head_hash) = stored::head(db).await?;
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut expected_seq = 1;
    while expected_seq <= head_seq {
        let page = stored::page_since(db, i64::MIN, expected_seq - 1, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for event in page.into_iter().take_while(|e| e.seq <= head_seq) {
            if let Err(why) = check_event(&event, expected_seq, &prev_hash) {
                return Ok(Err(Broken {
                    seq: event.seq,
                    why,
                }));
            }
            prev_hash = event.hash;
            expected_seq += 1;
        }
    }
    let last = expected_seq - 1;
    if head_seq != last || head_hash != prev_hash {
        return Ok(Err(Broken {
            seq: last + 1,
            why: format!(
                "the chain head says {head_seq} events ending in {head_hash}, but {last} \
                 events end in {prev_hash}: events were removed"
            ),
        }));
    }
    Ok(Ok(Verified {
        events: last,
        head_hash: prev_hash,
    }))
}

fn check_event(event: &AuditEvent, expected_seq: i64, prev_hash: &str) -> Result<(), String> {
    if event.seq != expected_seq {
        return Err(format!(
            "expected event {expected_seq} next, found {}: events were removed",
            event.seq
        ));
    }
    if event.prev_hash != prev_hash {
        return Err(format!(
            "prev_hash {} does not match the hash of event {} ({prev_hash})",
            event.prev_hash,
            expected_seq - 1
        ));
    }
    let hash = event_hash(
        prev_hash,
        event.seq,
        event.at.timestamp_millis(),
        &event.actor,
        &event.action,
        event.request_id.as_deref(),
        &event.details,
    );
    if hash != event.hash {
        return Err(format!(
            "its content does not match its hash (action {}, actor {}): it was changed",
            event.action, event.actor
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"d":2,"c":3}],"x":"s"}}"#)
            .unwrap_or_default();
        let b: Value = serde_json::from_str(r#"{"a":{"x":"s","y":[1,{"c":3,"d":2}]},"b":1}"#)
            .unwrap_or_default();
        assert_eq!(
            event_hash(GENESIS_HASH, 1, 5, "x", "y", None, &a),
            event_hash(GENESIS_HASH, 1, 5, "x", "y", None, &b)
        );
    }

    #[test]
    fn every_field_is_covered_by_the_hash() {
        let d = serde_json::json!({"k": "v"});
        let base = event_hash(
            GENESIS_HASH,
            1,
            5,
            "alice",
            "request.submitted",
            Some("r"),
            &d,
        );
        let changed = [
            event_hash("1", 1, 5, "alice", "request.submitted", Some("r"), &d),
            event_hash(
                GENESIS_HASH,
                2,
                5,
                "alice",
                "request.submitted",
                Some("r"),
                &d,
            ),
            event_hash(
                GENESIS_HASH,
                1,
                6,
                "alice",
                "request.submitted",
                Some("r"),
                &d,
            ),
            event_hash(
                GENESIS_HASH,
                1,
                5,
                "mallory",
                "request.submitted",
                Some("r"),
                &d,
            ),
            event_hash(GENESIS_HASH, 1, 5, "alice", "request.denied", Some("r"), &d),
            event_hash(GENESIS_HASH, 1, 5, "alice", "request.submitted", None, &d),
            event_hash(
                GENESIS_HASH,
                1,
                5,
                "alice",
                "request.submitted",
                Some("r"),
                &serde_json::json!({"k": "w"}),
            ),
        ];
        for c in changed {
            assert_ne!(c, base);
        }
    }
}
