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

pub use jitgate_core::audit::{
    Action, AuditEvent, EventFilter, NewEvent, SYSTEM_ACTOR, StoredAction,
};

/// Writes `event` as one structured log line (never secrets: events hold ids).
pub fn log(event: &AuditEvent) {
    tracing::info!(
        target: "jitgate::audit",
        seq = event.seq,
        action = %event.action,
        actor = %event.actor,
        request_id = event.request_id.as_deref().unwrap_or(""),
        details = %event.details,
        hash = %event.hash,
        "audit event"
    );
}

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
