//! Walking the stored chain: every event's keyed hash recomputed, in order, up to the head.

use subtle::ConstantTimeEq;

use crate::audit::{AuditEvent, AuditKeys, GENESIS_HASH, Hashed};
use crate::store::{Db, StoreError, audit as stored};

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

/// How long after a key rotation (`audit.key_changed`, itself signed with the new key)
/// events signed with the old key are still accepted: replicas restart one after another,
/// and those not yet restarted keep signing with the old key for a while.
pub const ROTATION_GRACE_MILLIS: i64 = 15 * 60 * 1000;

/// What the walk has learnt so far about the keys of the chain.
#[derive(Default)]
struct Keys {
    /// The first keyed event.
    keyed_from: Option<i64>,
    /// Whether an event is signed with the current key.
    current_seen: bool,
    /// Keys rotated out, with the time and number of the rotation event.
    retired: std::collections::HashMap<String, (i64, i64)>,
}

/// Walks every event in order, recomputing each hash with the key it names, up to the
/// chain head read first (so appends made meanwhile by a running server are not mistaken
/// for tampering); the head must match the last event, so removing events from the end
/// is caught too. Once one event is keyed every later one must be; a key rotated out is
/// not accepted after its grace; with a current key some event must be signed with it (a
/// running server records its key in the chain at start). So a chain rewritten with plain
/// hashes, or re-signed with a retired (perhaps leaked) key, is caught.
pub async fn verify(db: &Db, keys: &AuditKeys) -> Result<Result<Verified, Broken>, StoreError> {
    const PAGE: i64 = 1000;
    let (head_seq, head_hash) = stored::head(db).await?;
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut expected_seq = 1;
    let mut seen = Keys::default();
    while expected_seq <= head_seq {
        let page = stored::page_since(db, i64::MIN, expected_seq - 1, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for event in page.into_iter().take_while(|e| e.seq <= head_seq) {
            let checked = check_event(&event, expected_seq, &prev_hash, keys, &seen)
                .and_then(|()| seen.learn(&event, keys));
            if let Err(why) = checked {
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
    if last > 0 && keys.current().is_some() && !seen.current_seen {
        return Ok(Err(Broken {
            seq: last,
            why: "no event is signed with the current key: the chain was rewritten without \
                  it (or no server has started with this key yet: start one, it records the \
                  key in the chain, and verify again)"
                .into(),
        }));
    }
    Ok(Ok(Verified {
        events: last,
        head_hash: prev_hash,
        keyed_from: seen.keyed_from,
    }))
}

impl Keys {
    /// Takes in a verified event: the first keyed one, the current key, rotations.
    fn learn(&mut self, event: &AuditEvent, keys: &AuditKeys) -> Result<(), String> {
        let Some(id) = &event.key_id else {
            return Ok(());
        };
        self.keyed_from.get_or_insert(event.seq);
        if keys.current().is_some_and(|k| k.id() == id) {
            self.current_seen = true;
        }
        if event.kind() == Some(crate::audit::Action::AuditKeyChanged) {
            let to = event.details.get("to").and_then(|v| v.as_str());
            if to != Some(id.as_str()) {
                return Err(format!(
                    "it records a change to key {} but is signed with key {id}",
                    to.unwrap_or("(none)")
                ));
            }
            if let Some(from) = event.details.get("from").and_then(|v| v.as_str()) {
                self.retired
                    .insert(from.to_owned(), (event.at.timestamp_millis(), event.seq));
            }
            self.retired.remove(id);
        }
        Ok(())
    }
}

fn check_event(
    event: &AuditEvent,
    expected_seq: i64,
    prev_hash: &str,
    keys: &AuditKeys,
    seen: &Keys,
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
    let key = match (&event.key_id, seen.keyed_from) {
        (None, Some(first)) => {
            return Err(format!(
                "it has a plain hash, but the chain is keyed from event {first} on: it \
                 was rewritten without the key"
            ));
        }
        (None, None) => None,
        (Some(id), _) => {
            if let Some((at, rotated)) = seen.retired.get(id)
                && event.at.timestamp_millis() - at > ROTATION_GRACE_MILLIS
            {
                return Err(format!(
                    "it is signed with key {id}, which event {rotated} rotated out more than \
                     15 minutes before: it was written with a retired key"
                ));
            }
            Some(keys.find(id).ok_or_else(|| {
                format!(
                    "it is signed with key {id}, which is not among the keys given (set the \
                     current key in JITGATE_AUDIT_KEY and earlier ones in \
                     JITGATE_AUDIT_PREVIOUS_KEYS)"
                )
            })?)
        }
    };
    let hash = Hashed {
        prev_hash,
        seq: event.seq,
        at_millis: event.at.timestamp_millis(),
        actor: &event.actor,
        action: event.action.as_str(),
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
