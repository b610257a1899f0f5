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

/// What happened, as recorded in the trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    RequestSubmitted,
    RequestApproved,
    ApprovalRecorded,
    RequestDenied,
    RequestCancelled,
    RequestLapsed,
    RequestActivated,
    RequestExpired,
    RequestRevoked,
    RequestFailed,
    ExtensionRequested,
    ExtensionApproved,
    ExtensionDenied,
    AttributeSet,
    AttributeCleared,
    AssignmentCreated,
    AssignmentDeleted,
    AssignmentKept,
    ConvergeFailed,
    DriftFound,
    DriftRemoved,
    SignedIn,
    TokenIssued,
    TokenRevoked,
    CliLoginApproved,
    AuditKeyChanged,
    IdcBound,
    IdcBindingRefused,
    IdcUnbound,
    RolesChanged,
    AccessWithdrawn,
}

impl Action {
    /// Every action, for reading stored names back (a new action goes here too).
    pub const ALL: &[Action] = &[
        Action::RequestSubmitted,
        Action::RequestApproved,
        Action::ApprovalRecorded,
        Action::RequestDenied,
        Action::RequestCancelled,
        Action::RequestLapsed,
        Action::RequestActivated,
        Action::RequestExpired,
        Action::RequestRevoked,
        Action::RequestFailed,
        Action::ExtensionRequested,
        Action::ExtensionApproved,
        Action::ExtensionDenied,
        Action::AttributeSet,
        Action::AttributeCleared,
        Action::AssignmentCreated,
        Action::AssignmentDeleted,
        Action::AssignmentKept,
        Action::ConvergeFailed,
        Action::DriftFound,
        Action::DriftRemoved,
        Action::SignedIn,
        Action::TokenIssued,
        Action::TokenRevoked,
        Action::CliLoginApproved,
        Action::AuditKeyChanged,
        Action::IdcBound,
        Action::IdcBindingRefused,
        Action::IdcUnbound,
        Action::RolesChanged,
        Action::AccessWithdrawn,
    ];

    /// The action a stored name stands for; `None` for a name this release does not know
    /// (written by a later release, or edited: `audit verify` then names the event).
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.iter().copied().find(|a| a.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::RequestSubmitted => "request.submitted",
            Action::RequestApproved => "request.approved",
            Action::ApprovalRecorded => "request.approval_recorded",
            Action::RequestDenied => "request.denied",
            Action::RequestCancelled => "request.cancelled",
            Action::RequestLapsed => "request.lapsed",
            Action::RequestActivated => "request.activated",
            Action::RequestExpired => "request.expired",
            Action::RequestRevoked => "request.revoked",
            Action::RequestFailed => "request.failed",
            Action::ExtensionRequested => "extension.requested",
            Action::ExtensionApproved => "extension.approved",
            Action::ExtensionDenied => "extension.denied",
            Action::AttributeSet => "aws.run_as_attribute_set",
            Action::AttributeCleared => "aws.run_as_attribute_cleared",
            Action::AssignmentCreated => "aws.assignment_created",
            Action::AssignmentDeleted => "aws.assignment_deleted",
            Action::AssignmentKept => "aws.assignment_kept",
            Action::ConvergeFailed => "aws.converge_failed",
            Action::DriftFound => "aws.drift_found",
            Action::DriftRemoved => "aws.drift_removed",
            Action::SignedIn => "auth.signed_in",
            Action::TokenIssued => "auth.token_issued",
            Action::TokenRevoked => "auth.token_revoked",
            Action::CliLoginApproved => "auth.cli_login_approved",
            Action::AuditKeyChanged => "audit.key_changed",
            Action::IdcBound => "auth.idc_bound",
            Action::IdcBindingRefused => "auth.idc_binding_refused",
            Action::IdcUnbound => "auth.idc_unbound",
            Action::RolesChanged => "auth.roles_changed",
            Action::AccessWithdrawn => "auth.access_withdrawn",
        }
    }
}

/// The actor recorded for what jitgate does on its own (timers, provisioning).
pub const SYSTEM_ACTOR: &str = "jitgate";

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: Action,
    pub request_id: Option<String>,
    pub details: Value,
}

impl NewEvent {
    /// An event by `actor` at `at` with no request and empty details.
    pub fn new(action: Action, actor: impl Into<String>, at: DateTime<Utc>) -> Self {
        Self {
            at,
            actor: actor.into(),
            action,
            request_id: None,
            details: Value::Object(Default::default()),
        }
    }

    pub fn request(mut self, id: impl ToString) -> Self {
        self.request_id = Some(id.to_string());
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// An event as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub request_id: Option<String>,
    pub details: Value,
    pub prev_hash: String,
    pub hash: String,
    /// The key the hash is keyed with; `None` for a plain hash (before keying).
    pub key_id: Option<String>,
}

impl AuditEvent {
    /// The stored action name read back as the typed action.
    pub fn kind(&self) -> Option<Action> {
        Action::parse(&self.action)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_reads_back_from_its_stored_name() {
        let mut names = std::collections::HashSet::new();
        for action in Action::ALL {
            assert!(names.insert(action.as_str()), "{} twice", action.as_str());
            assert_eq!(Action::parse(action.as_str()), Some(*action));
        }
        assert_eq!(Action::parse("request.teleported"), None);
    }
}
