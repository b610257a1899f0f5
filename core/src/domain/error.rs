//! [`DomainError`]: what the domain refused, and why, in words a requester or
//! approver can act on.
//!
//! Use it for every refusal by policy or the state machine. The HTTP layer maps
//! [`DomainError::kind`] to a status code in one place and shows the message
//! next to the form input named by [`DomainError::field`]. Store, AWS and Slack
//! failures have their own error types in their own layers.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use super::ids::{RequestId, UserId};
use super::request::StateName;

/// The broad class of a [`DomainError`], so the HTTP layer can pick a status
/// code (422 / 403 / 409) without matching every variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input is malformed or outside what the profile allows: fix the input (422).
    Invalid,
    /// The input is fine but this actor may not do this (403).
    Forbidden,
    /// The request's current state does not allow this now (409).
    Conflict,
}

/// Everything the domain refuses. Each message says what went wrong and how to fix it.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DomainError {
    /// A request id that is not a UUID.
    #[error(
        "`{value}` is not a request id; request ids are UUIDs such as 0b9e4f6c-2d1a-4c52-9a53-3f0e8a7d1c42"
    )]
    InvalidRequestId {
        /// The text that failed to parse.
        value: String,
    },

    /// An AWS account id that is not exactly 12 ASCII digits.
    #[error(
        "`{value}` is not an AWS account id: it must be exactly 12 digits, leading zeros included (e.g. 012345678901)"
    )]
    InvalidAccountId {
        /// The text that failed to parse.
        value: String,
    },

    /// An OS user name that breaks `^[a-z_][a-z0-9_-]{0,31}$` or is `root`.
    #[error("OS user `{value}` is not valid: {why}")]
    InvalidOsUser {
        /// The name as given.
        value: String,
        /// Which rule failed and how to fix it.
        why: String,
    },

    /// A run-as mode spelling that is neither `principal-tag` nor `session-document`.
    #[error("`{value}` is not a run-as mode; use one of: principal-tag, session-document")]
    InvalidRunAsMode {
        /// The text that failed to parse.
        value: String,
    },

    /// A state name that is not one of the request states.
    #[error(
        "`{value}` is not a request state; use one of: pending, approved, active, ended, denied, cancelled, lapsed, failed"
    )]
    InvalidStateName {
        /// The text that failed to parse.
        value: String,
    },

    /// The draft names a different profile than the policy it was checked against.
    #[error(
        "the request is for profile `{asked}` but was checked against profile `{profile}`; pick the profile from the list of profiles you may request"
    )]
    WrongProfile {
        /// The profile the draft names.
        asked: String,
        /// The profile of the policy given.
        profile: String,
    },

    /// The actor is in none of the profile's requester groups.
    #[error(
        "you may not request profile `{profile}`: it is open to members of {}; ask an admin to add you to one of these groups",
        list(.groups)
    )]
    NotRequester {
        /// The profile asked for.
        profile: String,
        /// The profile's requester groups.
        groups: Vec<String>,
    },

    /// The account is not one of the profile's accounts.
    #[error(
        "account {account} is not part of profile `{profile}`; allowed: {}",
        list(.allowed)
    )]
    AccountNotInProfile {
        /// The account asked for.
        account: String,
        /// The profile asked for.
        profile: String,
        /// The profile's accounts.
        allowed: Vec<String>,
    },

    /// The OS user is valid but not in the profile's allowed list.
    #[error("OS user `{os_user}` is not allowed by profile `{profile}`; allowed: {}", list(.allowed))]
    OsUserNotAllowed {
        /// The OS user asked for.
        os_user: String,
        /// The profile asked for.
        profile: String,
        /// The profile's allowed OS users.
        allowed: Vec<String>,
    },

    /// A duration (or an extension) of zero.
    #[error("the duration must be more than zero; ask for e.g. 1h")]
    DurationZero,

    /// The duration (or an extension's extra time) is under the profile's minimum.
    #[error(
        "{} is shorter than the profile's minimum of {}; ask for at least {}",
        human(.asked),
        human(.min),
        human(.min)
    )]
    DurationTooShort {
        /// The duration asked for.
        asked: Duration,
        /// The profile's minimum.
        min: Duration,
    },

    /// The duration, or the grant's total with an extension, is over the profile's maximum.
    #[error(
        "{} is longer than the profile's maximum of {}; ask for at most {} in total",
        human(.asked),
        human(.max),
        human(.max)
    )]
    DurationTooLong {
        /// The duration asked for (for an extension: the grant's new total).
        asked: Duration,
        /// The profile's maximum.
        max: Duration,
    },

    /// A duration too large to add to a timestamp (only reachable with absurd config).
    #[error("a duration of {} is too large to compute an end time; ask for a shorter one", human(.asked))]
    DurationOutOfRange {
        /// The duration that overflowed.
        asked: Duration,
    },

    /// The reason is missing or blank.
    #[error("a reason is required: say what you need the access for")]
    ReasonRequired,

    /// The reason is over the length limit.
    #[error(
        "the reason is {len} characters long; keep it to {max} or fewer and put details in the ticket"
    )]
    ReasonTooLong {
        /// Characters given (after trimming).
        len: usize,
        /// The limit.
        max: usize,
    },

    /// The ticket reference is over the length limit.
    #[error(
        "the ticket is {len} characters long; give just the ticket id or URL ({max} characters at most)"
    )]
    TicketTooLong {
        /// Characters given (after trimming).
        len: usize,
        /// The limit.
        max: usize,
    },

    /// A text holds a control or bidirectional-formatting character: invisible, it can
    /// make a reason or a comment read differently from what it says (a bidi override can
    /// reverse what follows) or break the lines of a log or an export.
    #[error(
        "the {field} contains an invisible control or text-direction character ({code}); remove it"
    )]
    InvisibleCharacter {
        /// The input: "reason", "ticket" or "comment".
        field: &'static str,
        /// The character, as `U+XXXX`.
        code: String,
    },

    /// A deny or revoke comment is over the length limit.
    #[error("the comment is {len} characters long; keep it to {max} or fewer")]
    CommentTooLong {
        /// Characters given (after trimming).
        len: usize,
        /// The limit.
        max: usize,
    },

    /// In principal-tag mode the person already has an open grant with another OS user.
    #[error(
        "you already have request {open} as OS user `{os_user}` open; one principal-tag OS user per person at a time: end it or ask for `{os_user}`"
    )]
    RunAsConflict {
        /// The open request holding the person's OS user attribute.
        open: RequestId,
        /// The OS user of that open request.
        os_user: String,
    },

    /// The approver is the requester (admins included).
    #[error("you cannot approve your own request; ask another approver of the profile")]
    SelfApproval,

    /// The actor is neither an admin nor in the profile's approver groups.
    #[error(
        "you are not an approver for profile `{profile}`: approvers are admins and members of {}",
        list(.groups)
    )]
    NotEligibleApprover {
        /// The request's profile.
        profile: String,
        /// The profile's approver groups.
        groups: Vec<String>,
    },

    /// This approver has already approved; N-of-M needs distinct people.
    #[error("`{by}` has already approved this; each approval must come from a different approver")]
    AlreadyApproved {
        /// The approver who tried again.
        by: UserId,
    },

    /// The actor may not perform this action on this request.
    #[error("you may not {action} this request: {why}")]
    NotAllowed {
        /// The action refused, e.g. "cancel".
        action: &'static str,
        /// Who may, instead.
        why: String,
    },

    /// A timed transition (expire, lapse) asked for before its time.
    #[error(
        "not due yet: due at {}; try again then",
        .expires_at.to_rfc3339_opts(SecondsFormat::Secs, true)
    )]
    NotDue {
        /// When the transition becomes due: the grant's end for `expire`,
        /// the approval deadline for `lapse`.
        expires_at: DateTime<Utc>,
    },

    /// An extension is already waiting for approval on this grant.
    #[error(
        "an extension is already waiting for approval on this grant; wait until it is approved or denied before asking again"
    )]
    ExtensionPending,

    /// Approve or deny was aimed at an active grant's extension, but none is pending.
    #[error(
        "there is no extension waiting for approval on this grant; the requester has to ask for one first"
    )]
    NoExtensionPending,

    /// The action does not apply to a request in this state.
    #[error("cannot {action} a request that is {state}; reload it to see what changed")]
    InvalidTransition {
        /// The action attempted, e.g. "approve".
        action: &'static str,
        /// The request's current state.
        state: StateName,
    },
}

impl DomainError {
    /// The input field at fault, so a form can show the message next to it;
    /// `None` when the error is not about one input.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            DomainError::InvalidAccountId { .. } | DomainError::AccountNotInProfile { .. } => {
                Some("account")
            }
            DomainError::InvalidOsUser { .. }
            | DomainError::OsUserNotAllowed { .. }
            | DomainError::RunAsConflict { .. } => Some("os_user"),
            DomainError::DurationZero
            | DomainError::DurationTooShort { .. }
            | DomainError::DurationTooLong { .. }
            | DomainError::DurationOutOfRange { .. } => Some("duration"),
            DomainError::ReasonRequired | DomainError::ReasonTooLong { .. } => Some("reason"),
            DomainError::InvisibleCharacter { field, .. } => Some(field),
            DomainError::TicketTooLong { .. } => Some("ticket"),
            DomainError::CommentTooLong { .. } => Some("comment"),
            DomainError::WrongProfile { .. } => Some("profile"),
            DomainError::InvalidRequestId { .. }
            | DomainError::InvalidRunAsMode { .. }
            | DomainError::InvalidStateName { .. }
            | DomainError::NotRequester { .. }
            | DomainError::SelfApproval
            | DomainError::NotEligibleApprover { .. }
            | DomainError::AlreadyApproved { .. }
            | DomainError::NotAllowed { .. }
            | DomainError::NotDue { .. }
            | DomainError::ExtensionPending
            | DomainError::NoExtensionPending
            | DomainError::InvalidTransition { .. } => None,
        }
    }

    /// The class of error, for the HTTP status: Invalid 422, Forbidden 403, Conflict 409.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DomainError::InvalidRequestId { .. }
            | DomainError::InvalidAccountId { .. }
            | DomainError::InvalidOsUser { .. }
            | DomainError::InvalidRunAsMode { .. }
            | DomainError::InvalidStateName { .. }
            | DomainError::WrongProfile { .. }
            | DomainError::AccountNotInProfile { .. }
            | DomainError::OsUserNotAllowed { .. }
            | DomainError::DurationZero
            | DomainError::DurationTooShort { .. }
            | DomainError::DurationTooLong { .. }
            | DomainError::DurationOutOfRange { .. }
            | DomainError::ReasonRequired
            | DomainError::ReasonTooLong { .. }
            | DomainError::InvisibleCharacter { .. }
            | DomainError::TicketTooLong { .. }
            | DomainError::CommentTooLong { .. } => ErrorKind::Invalid,
            DomainError::NotRequester { .. }
            | DomainError::SelfApproval
            | DomainError::NotEligibleApprover { .. }
            | DomainError::NotAllowed { .. } => ErrorKind::Forbidden,
            // A run-as conflict is about other open grants, not the input's shape:
            // it clears once those end, like the other state conflicts.
            DomainError::RunAsConflict { .. }
            | DomainError::AlreadyApproved { .. }
            | DomainError::NotDue { .. }
            | DomainError::ExtensionPending
            | DomainError::NoExtensionPending
            | DomainError::InvalidTransition { .. } => ErrorKind::Conflict,
        }
    }
}

/// Renders a duration the way people write it in config and forms: 90 min -> "1h30m".
fn human(d: &Duration) -> String {
    let total = d.as_secs();
    if total == 0 {
        let millis = d.subsec_millis();
        return match (millis, d.subsec_nanos()) {
            (0, 0) => "0s".to_owned(),
            (0, _) => "<1ms".to_owned(),
            (ms, _) => format!("{ms}ms"),
        };
    }
    let (hours, minutes, seconds) = (total / 3600, total % 3600 / 60, total % 60);
    let mut out = String::new();
    for (value, unit) in [(hours, 'h'), (minutes, 'm'), (seconds, 's')] {
        if value > 0 {
            out.push_str(&value.to_string());
            out.push(unit);
        }
    }
    out
}

/// Joins names for a message; says so plainly when the list is empty, since an
/// empty list in a message ("allowed: ") reads like a bug.
fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none configured)".to_owned()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        let cases = [
            (Duration::from_secs(90 * 60), "1h30m"),
            (Duration::from_secs(8 * 3600), "8h"),
            (Duration::from_secs(45 * 60), "45m"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(3600 + 30), "1h30s"),
            (Duration::from_secs(36 * 3600 + 61), "36h1m1s"),
            (Duration::ZERO, "0s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_nanos(10), "<1ms"),
        ];
        for (d, want) in cases {
            assert_eq!(human(&d), want, "{d:?}");
        }
    }

    #[test]
    fn duration_too_long_message_uses_human_units() {
        let err = DomainError::DurationTooLong {
            asked: Duration::from_secs(12 * 3600),
            max: Duration::from_secs(8 * 3600),
        };
        assert_eq!(
            err.to_string(),
            "12h is longer than the profile's maximum of 8h; ask for at most 8h in total"
        );
        assert_eq!(err.field(), Some("duration"));
        assert_eq!(err.kind(), ErrorKind::Invalid);
    }

    #[test]
    fn empty_lists_read_as_none_configured() {
        let err = DomainError::NotRequester {
            profile: "p".into(),
            groups: vec![],
        };
        assert!(err.to_string().contains("members of (none configured)"));
        let err = DomainError::OsUserNotAllowed {
            os_user: "x".into(),
            profile: "p".into(),
            allowed: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            err.to_string(),
            "OS user `x` is not allowed by profile `p`; allowed: a, b"
        );
    }

    #[test]
    fn not_due_shows_rfc3339_time() {
        let at = DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default();
        let err = DomainError::NotDue { expires_at: at };
        assert_eq!(
            err.to_string(),
            "not due yet: due at 2026-01-01T00:00:00Z; try again then"
        );
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert_eq!(err.field(), None);
    }

    #[test]
    fn kinds_and_fields_of_each_class() {
        assert_eq!(DomainError::SelfApproval.kind(), ErrorKind::Forbidden);
        assert_eq!(
            DomainError::NotAllowed {
                action: "cancel",
                why: "x".into()
            }
            .kind(),
            ErrorKind::Forbidden
        );
        assert_eq!(DomainError::ExtensionPending.kind(), ErrorKind::Conflict);
        assert_eq!(DomainError::ReasonRequired.field(), Some("reason"));
        assert_eq!(
            DomainError::TicketTooLong { len: 201, max: 200 }.field(),
            Some("ticket")
        );
        let err = DomainError::InvalidTransition {
            action: "approve",
            state: StateName::Ended,
        };
        assert_eq!(
            err.to_string(),
            "cannot approve a request that is ended; reload it to see what changed"
        );
        assert_eq!(err.kind(), ErrorKind::Conflict);
    }
}
