//! What the audit trail records: the typed actions and the event the application layer
//! hands the store to append in the transaction of the change it records. The chain
//! that makes the stored trail tamper-evident is the server's (server/src/audit/).

use chrono::{DateTime, Utc};
use serde_json::Value;

/// What happened, as recorded in the trail.
// Each variant is documented by its stored name (`Action::as_str`).
#[allow(missing_docs)]
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
    SessionTerminated,
    SessionsClosed,
    SessionCloseFailed,
    SlackLinkOffered,
    SlackLinked,
    SlackUnlinked,
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
        Action::SessionTerminated,
        Action::SessionsClosed,
        Action::SessionCloseFailed,
        Action::SlackLinkOffered,
        Action::SlackLinked,
        Action::SlackUnlinked,
    ];

    /// The action a stored name stands for; `None` for a name this release does not know
    /// (written by a later release, or edited: `audit verify` then names the event).
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.iter().copied().find(|a| a.as_str() == name)
    }

    /// The name stored in the trail and shown in exports.
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
            Action::SessionTerminated => "ssm.session_terminated",
            Action::SessionsClosed => "ssm.sessions_closed",
            Action::SessionCloseFailed => "ssm.session_close_failed",
            Action::SlackLinkOffered => "auth.slack_link_offered",
            Action::SlackLinked => "auth.slack_linked",
            Action::SlackUnlinked => "auth.slack_unlinked",
        }
    }
}

/// An action as read back from the trail: one this release knows, or the stored name
/// of one it does not (written by a later release, or edited: `audit verify` then
/// names the event). It is stored, hashed and shown by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredAction {
    /// An action this release knows.
    Known(Action),
    /// A name this release does not know.
    Unknown(String),
}

impl StoredAction {
    /// The action the stored `name` stands for.
    pub fn parse(name: &str) -> Self {
        Action::parse(name).map_or_else(
            || StoredAction::Unknown(name.to_owned()),
            StoredAction::Known,
        )
    }

    /// The stored name.
    pub fn as_str(&self) -> &str {
        match self {
            StoredAction::Known(action) => action.as_str(),
            StoredAction::Unknown(name) => name,
        }
    }

    /// The action, when this release knows it.
    pub fn known(&self) -> Option<Action> {
        match self {
            StoredAction::Known(action) => Some(*action),
            StoredAction::Unknown(_) => None,
        }
    }
}

impl From<Action> for StoredAction {
    fn from(action: Action) -> Self {
        StoredAction::Known(action)
    }
}

impl std::fmt::Display for StoredAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for StoredAction {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl PartialEq<Action> for StoredAction {
    fn eq(&self, other: &Action) -> bool {
        self.known() == Some(*other)
    }
}

impl PartialEq<&str> for StoredAction {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

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
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEvent {
    /// Its place in the chain, from 1.
    pub seq: i64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who did it: a jitgate user id, or [`SYSTEM_ACTOR`].
    pub actor: String,
    /// What happened, read back typed (an unknown name is kept as stored).
    pub action: StoredAction,
    /// The request it is about, if any.
    pub request_id: Option<String>,
    /// What else it records.
    pub details: Value,
    /// The hash of the event before it.
    pub prev_hash: String,
    /// Its hash, chained after `prev_hash`.
    pub hash: String,
    /// The key the hash is keyed with; `None` for a plain hash (before keying).
    pub key_id: Option<String>,
}

impl AuditEvent {
    /// The action, when this release knows it.
    pub fn kind(&self) -> Option<Action> {
        self.action.known()
    }
}

/// The actor recorded for what jitgate does on its own (timers, provisioning).
pub const SYSTEM_ACTOR: &str = "jitgate";

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who did it: a jitgate user id, or [`SYSTEM_ACTOR`].
    pub actor: String,
    /// What happened.
    pub action: Action,
    /// The request it is about, if any.
    pub request_id: Option<String>,
    /// What else it records (a JSON object).
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

    /// The request the event is about.
    pub fn request(mut self, id: impl ToString) -> Self {
        self.request_id = Some(id.to_string());
        self
    }

    /// What else the event records.
    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

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
        assert_eq!(
            StoredAction::parse("request.teleported").as_str(),
            "request.teleported",
            "an unknown name reads back as it was stored"
        );
        assert_eq!(
            StoredAction::parse("request.approved"),
            Action::RequestApproved
        );
    }
}
