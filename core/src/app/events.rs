//! The audit event that records each request transition, derived from the request
//! before and after, so every path through the application layer is described the same way.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::audit::{Action, NewEvent};
use crate::domain::RequestRecord;
use crate::domain::{EndReason, Request, RequestState};

/// The event for a new request (auto-approved ones say so).
pub(crate) fn submitted(stored: &RequestRecord, actor: &str, now: DateTime<Utc>) -> NewEvent {
    let r = &stored.request;
    NewEvent::new(Action::RequestSubmitted, actor, now)
        .request(r.id)
        .details(json!({
            "profile": r.profile,
            "account_id": r.account.as_str(),
            "os_user": r.os_user.as_str(),
            "run_as_mode": r.run_as_mode.as_str(),
            "duration_secs": r.duration.as_secs(),
            "reason": r.reason,
            "ticket": r.ticket,
            "principal_id": stored.principal_id,
            "permission_set_arn": stored.permission_set_arn,
            "state": r.state.name().as_str(),
            "auto_approved": matches!(r.state, RequestState::Approved { .. }),
        }))
}

/// The event for the step from `before` to `after`.
pub(crate) fn transition(
    before: &Request,
    after: &RequestRecord,
    actor: &str,
    comment: Option<String>,
    now: DateTime<Utc>,
) -> NewEvent {
    let r = &after.request;
    let mut details = json!({
        "from": before.state.name().as_str(),
        "to": r.state.name().as_str(),
    });
    let action = action_of(before, r, &mut details);
    if let (Some(comment), Value::Object(map)) = (comment, &mut details) {
        map.insert("comment".into(), Value::String(comment));
    }
    NewEvent::new(action, actor, now)
        .request(r.id)
        .details(details)
}

fn action_of(before: &Request, after: &Request, details: &mut Value) -> Action {
    let mut put = |key: &str, value: Value| {
        if let Value::Object(map) = details {
            map.insert(key.into(), value);
        }
    };
    match (&before.state, &after.state) {
        (RequestState::Pending, RequestState::Pending) => {
            put("approvals", json!(after.approvals.len()));
            Action::ApprovalRecorded
        }
        (_, RequestState::Approved { .. }) => Action::RequestApproved,
        (_, RequestState::Denied { .. }) => Action::RequestDenied,
        (_, RequestState::Cancelled { .. }) => Action::RequestCancelled,
        (_, RequestState::Lapsed { .. }) => Action::RequestLapsed,
        (_, RequestState::Failed { reason, .. }) => {
            put("reason", json!(reason));
            Action::RequestFailed
        }
        (
            _,
            RequestState::Ended {
                why: EndReason::Expired,
                ..
            },
        ) => Action::RequestExpired,
        (
            _,
            RequestState::Ended {
                why: EndReason::Revoked { .. },
                ..
            },
        ) => Action::RequestRevoked,
        (RequestState::Approved { .. }, RequestState::Active { expires_at, .. }) => {
            put("expires_at", json!(expires_at));
            Action::RequestActivated
        }
        (
            RequestState::Active {
                expires_at: old, ..
            },
            RequestState::Active {
                expires_at: new, ..
            },
        ) => {
            put("expires_at", json!(new));
            match (&before.extension, &after.extension) {
                (None, Some(ext)) => {
                    put("extra_secs", json!(ext.extra.as_secs()));
                    Action::ExtensionRequested
                }
                (Some(_), Some(ext)) => {
                    put("approvals", json!(ext.approvals.len()));
                    Action::ApprovalRecorded
                }
                _ if new != old => Action::ExtensionApproved,
                _ => Action::ExtensionDenied,
            }
        }
        // Every other pair is refused by the domain before it gets here.
        _ => Action::ApprovalRecorded,
    }
}
