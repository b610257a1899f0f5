//! Hashing an event into the chain (verification of a stored chain: server/src/trail/verify.rs).

use hmac::Mac;
use serde_json::Value;
use sha2::{Digest, Sha256};

#[cfg(test)]
use super::GENESIS_HASH;
use super::key::AuditKey;

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
