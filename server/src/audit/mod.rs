//! The tamper-evident audit trail: events, their hash chain, verification and export.
//! Each event's `hash = HMAC-SHA256(key, prev_hash || canonical event)` under a key kept
//! outside the database (`key`), so changing, removing or reordering any stored event
//! breaks every hash after it, and someone who can write the database cannot recompute
//! them. Storage is `store::audit`;
//! events are appended inside the transaction of the state change they record.

mod chain;
mod export;
mod head;
mod key;

pub use crate::store::audit::hash_of;
pub use chain::{Broken, Hashed, Verified, verify};
pub use export::{ExportFormat, export};
pub use head::{log_head_every, record_key};
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
