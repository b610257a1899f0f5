//! The tamper-evident audit trail's events and their keyed hash chain, pure: no I/O.
//! The stored trail (verify, export, anchoring) is `crate::trail`.
//! Each event's `hash = HMAC-SHA256(key, prev_hash || canonical event)` under a key kept
//! outside the database (`key`), so changing, removing or reordering any stored event
//! breaks every hash after it, and someone who can write the database cannot recompute
//! them. Storage is `store::audit`; events are appended inside the transaction of the
//! state change they record.

mod chain;
mod key;

pub use chain::Hashed;
pub use key::{AuditKey, AuditKeys, MIN_KEY_CHARS};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

pub use jitgate_core::audit::{Action, NewEvent, SYSTEM_ACTOR, StoredAction};

/// What an audit search matches; `None` matches anything.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventFilter<'a> {
    /// Only the events of this request.
    pub request_id: Option<&'a str>,
    /// A user id, or `jitgate` for what jitgate did on its own.
    pub actor: Option<&'a str>,
    /// An action (`request.approved`) or its beginning (`aws.`).
    pub action_prefix: Option<&'a str>,
    /// Only events at or after this time.
    pub since_millis: i64,
}

/// An event as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// What happened, read back typed (an unknown name is kept as stored).
    pub action: StoredAction,
    pub request_id: Option<String>,
    pub details: Value,
    pub prev_hash: String,
    pub hash: String,
    /// The key the hash is keyed with; `None` for a plain hash (before keying).
    pub key_id: Option<String>,
}

impl AuditEvent {
    /// The action, when this release knows it.
    pub fn kind(&self) -> Option<Action> {
        self.action.known()
    }

    /// Writes the event as one structured log line (never secrets: events hold ids).
    pub fn log(&self) {
        tracing::info!(
            target: "jitgate::audit",
            seq = self.seq,
            action = %self.action,
            actor = %self.actor,
            request_id = self.request_id.as_deref().unwrap_or(""),
            details = %self.details,
            hash = %self.hash,
            "audit event"
        );
    }
}

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
