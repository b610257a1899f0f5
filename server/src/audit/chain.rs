//! Hashing and verifying the chain.

use hmac::Mac;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::key::{AuditKey, AuditKeys};
use super::{AuditEvent, GENESIS_HASH};
use crate::store::{Db, StoreError, audit as stored};

/// What an event's hash covers: everything about it, and the hash before it.
#[derive(Debug, Clone, Copy)]
pub struct Hashed<'a> {
    pub prev_hash: &'a str,
    pub seq: i64,
    pub at_millis: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub request_id: Option<&'a str>,
    pub details: &'a Value,
}

impl Hashed<'_> {
    /// `HMAC-SHA256(key, prev_hash || canonical(event, key id))` as lowercase hex; with
    /// no key (events from before the chain was keyed), `sha256(prev_hash || canonical)`.
    /// The canonical form is JSON with object keys sorted at every depth and the time in
    /// epoch milliseconds, so it does not depend on how a backend or a JSON library
    /// orders or formats anything.
    pub fn hash(&self, key: Option<&AuditKey>) -> String {
        let mut event = serde_json::json!({
            "action": self.action,
            "actor": self.actor,
            "at": self.at_millis,
            "details": self.details,
            "request_id": self.request_id,
            "seq": self.seq,
        });
        if let (Some(key), Some(map)) = (key, event.as_object_mut()) {
            map.insert("key".into(), Value::String(key.id().to_owned()));
        }
        let mut canonical = String::new();
        write_canonical(&event, &mut canonical);
        match key {
            Some(key) => {
                let mut mac = key.mac();
                mac.update(self.prev_hash.as_bytes());
                mac.update(canonical.as_bytes());
                hex::encode(mac.finalize().into_bytes())
            }
            None => {
                let mut hasher = Sha256::new();
                hasher.update(self.prev_hash.as_bytes());
                hasher.update(canonical.as_bytes());
                hex::encode(hasher.finalize())
            }
        }
    }
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
    /// The first keyed event; events before it have plain hashes (written before the
    /// chain was keyed), protected only by the keyed event that follows them.
    pub keyed_from: Option<i64>,
}

/// Where and why the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at event {seq}: {why}")]
pub struct Broken {
    pub seq: i64,
    pub why: String,
}

/// Walks every event in order, recomputing each hash with the key it names, up to the
/// chain head read first (so appends made meanwhile by a running server are not mistaken
/// for tampering); the head must match the last event, so removing events from the end
/// is caught too. Once one event is keyed every later one must be, and with a current
/// key the last event must be keyed (a running server records its key in the chain at
/// start): a chain rewritten with plain hashes is caught.
pub async fn verify(db: &Db, keys: &AuditKeys) -> Result<Result<Verified, Broken>, StoreError> {
    const PAGE: i64 = 1000;
    let (head_seq, head_hash) = stored::head(db).await?;
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut expected_seq = 1;
    let mut keyed_from = None;
    while expected_seq <= head_seq {
        let page = stored::page_since(db, i64::MIN, expected_seq - 1, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for event in page.into_iter().take_while(|e| e.seq <= head_seq) {
            let checked = check_event(&event, expected_seq, &prev_hash, keys, keyed_from);
            if let Err(why) = checked {
                return Ok(Err(Broken {
                    seq: event.seq,
                    why,
                }));
            }
            if event.key_id.is_some() && keyed_from.is_none() {
                keyed_from = Some(event.seq);
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
    if last > 0 && keyed_from.is_none() && keys.current().is_some() {
        return Ok(Err(Broken {
            seq: last,
            why: "no event is keyed, though a key is configured: the chain was rewritten \
                  without the key (or no server has started with this key yet: start one, \
                  it records the key in the chain, and verify again)"
                .into(),
        }));
    }
    Ok(Ok(Verified {
        events: last,
        head_hash: prev_hash,
        keyed_from,
    }))
}

fn check_event(
    event: &AuditEvent,
    expected_seq: i64,
    prev_hash: &str,
    keys: &AuditKeys,
    keyed_from: Option<i64>,
) -> Result<(), String> {
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
    let key = match (&event.key_id, keyed_from) {
        (None, Some(first)) => {
            return Err(format!(
                "it has a plain hash, but the chain is keyed from event {first} on: it \
                 was rewritten without the key"
            ));
        }
        (None, None) => None,
        (Some(id), _) => Some(keys.find(id).ok_or_else(|| {
            format!(
                "it is signed with key {id}, which is not among the keys given (set the \
                 current key in JITGATE_AUDIT_KEY and earlier ones in \
                 JITGATE_AUDIT_PREVIOUS_KEYS)"
            )
        })?),
    };
    let hash = Hashed {
        prev_hash,
        seq: event.seq,
        at_millis: event.at.timestamp_millis(),
        actor: &event.actor,
        action: &event.action,
        request_id: event.request_id.as_deref(),
        details: &event.details,
    }
    .hash(key);
    if !bool::from(hash.as_bytes().ct_eq(event.hash.as_bytes())) {
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

    fn event<'a>(details: &'a Value) -> Hashed<'a> {
        Hashed {
            prev_hash: GENESIS_HASH,
            seq: 1,
            at_millis: 5,
            actor: "alice",
            action: "request.submitted",
            request_id: Some("r"),
            details,
        }
    }

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"d":2,"c":3}],"x":"s"}}"#)
            .unwrap_or_default();
        let b: Value = serde_json::from_str(r#"{"a":{"x":"s","y":[1,{"c":3,"d":2}]},"b":1}"#)
            .unwrap_or_default();
        assert_eq!(event(&a).hash(None), event(&b).hash(None));
    }

    #[test]
    fn every_field_and_the_key_are_covered_by_the_hash() {
        let d = serde_json::json!({"k": "v"});
        let other = serde_json::json!({"k": "w"});
        let key = AuditKey::new("0123456789abcdef0123456789abcdef");
        let base = event(&d);
        let changed = [
            Hashed {
                prev_hash: "1",
                ..base
            },
            Hashed { seq: 2, ..base },
            Hashed {
                at_millis: 6,
                ..base
            },
            Hashed {
                actor: "mallory",
                ..base
            },
            Hashed {
                action: "request.denied",
                ..base
            },
            Hashed {
                request_id: None,
                ..base
            },
            Hashed {
                details: &other,
                ..base
            },
        ];
        for c in changed {
            assert_ne!(c.hash(None), base.hash(None));
            assert_ne!(c.hash(Some(&key)), base.hash(Some(&key)));
        }
        let keyed = base.hash(Some(&key));
        assert_ne!(keyed, base.hash(None), "a keyed hash is not the plain one");
        let other_key = AuditKey::new("fedcba9876543210fedcba9876543210");
        assert_ne!(keyed, base.hash(Some(&other_key)));
    }
}
