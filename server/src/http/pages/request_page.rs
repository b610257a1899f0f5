//! `GET /requests/{id}`: one request, its audit timeline, and the actions the viewer
//! may take on it now. A request the viewer may not see is "not found", exactly like
//! one that does not exist, so ids cannot be probed.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde_json::Value;

use super::view::{self, People, people_of, time_left, when};
use super::{OrPage, PageResult, Viewer, render};
use crate::broker::BrokerError;
use crate::domain::RequestRecord;
use crate::domain::{Approval, EndReason, RequestId, RequestState, RunAsMode};
use crate::http::session::UserView;
use crate::http::{AppState, CurrentUser, WebError};
use jitgate_core::app::AppError;

/// One line of the details list.
struct Fact {
    label: &'static str,
    value: String,
}

/// One audit event, as the timeline shows it.
struct TimelineEntry {
    at: String,
    actor: String,
    action: String,
    details: String,
}

/// Which action forms the page shows (the rules' [`Actions`]). The domain still decides
/// when one is posted.
pub(super) use jitgate_core::app::Actions;

/// A refused action, shown on the page with what was typed.
pub(super) struct Refusal {
    /// The action's path segment: "approve", "deny", ...
    pub action: &'static str,
    pub field: Option<&'static str>,
    pub message: String,
    pub comment: String,
    pub duration: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "request.html")]
struct RequestPage {
    user: Option<UserView>,
    id: String,
    state: &'static str,
    status: String,
    facts: Vec<Fact>,
    timeline: Vec<TimelineEntry>,
    can: Actions,
    refusal: Option<Refusal>,
    /// For a failed request: what to do next, for this viewer.
    next_steps: Option<String>,
    /// For an active grant: the instances it reaches and how to connect to each.
    reaches: Vec<Reach>,
    /// The profile takes approvals only after a fresh sign-in.
    step_up: bool,
}

/// An instance an active grant reaches, with the command that connects to it.
struct Reach {
    name: String,
    instance_id: String,
    region: String,
    ping: String,
    /// `jitgate ssh ...`: signs in, gets the credentials, runs the plugin.
    jitgate: String,
    /// The same with the AWS CLI, for those signed in with `aws sso login`.
    command: String,
}

/// The instances an active grant reaches; nothing for any other state.
fn reaches(state: &AppState, stored: &RequestRecord) -> Vec<Reach> {
    let r = &stored.request;
    if !matches!(r.state, RequestState::Active { .. }) {
        return Vec::new();
    }
    let document = match r.run_as_mode {
        RunAsMode::SessionDocument => format!(
            " --document-name {}",
            crate::http::api::session_document(r.os_user.as_str())
        ),
        RunAsMode::PrincipalTag => String::new(),
    };
    state
        .broker
        .reached_by(r)
        .into_iter()
        .map(|t| Reach {
            // The id, not the Name tag: a tag may be shared or hold shell characters.
            jitgate: format!("jitgate ssh {} --as {}", t.instance_id, r.os_user),
            command: format!(
                "aws ssm start-session --region {} --target {} --reason {}{document}",
                t.region, t.instance_id, r.id
            ),
            name: t.name.unwrap_or_else(|| "-".into()),
            instance_id: t.instance_id,
            region: t.region,
            ping: t.ping.unwrap_or_else(|| "no agent".into()),
        })
        .collect()
}

impl RequestPage {
    /// The session's CSRF token, for the action forms.
    fn csrf(&self) -> &str {
        self.user.as_ref().map_or("", |u| u.csrf.as_str())
    }

    /// The refusal's message next to `field` of `action`'s form.
    fn error_for(&self, action: &str, field: &str) -> Option<&str> {
        self.refusal
            .as_ref()
            .filter(|r| r.action == action && r.field == Some(field))
            .map(|r| r.message.as_str())
    }

    /// What was typed into `field` of `action`'s form before it was refused.
    fn kept(&self, action: &str, field: &str) -> &str {
        match &self.refusal {
            Some(r) if r.action == action => match field {
                "comment" => &r.comment,
                "duration" => &r.duration,
                "reason" => &r.reason,
                _ => "",
            },
            _ => "",
        }
    }
}

/// `GET /requests/{id}`.
pub(super) async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let stored = visible(&state, &viewer.user, &id).await.or_page(&viewer)?;
    page(&state, &viewer, &stored, None, StatusCode::OK).await
}

/// The request `id` if `user` may see it; "not found" otherwise, whatever the reason.
pub(super) async fn visible(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
) -> Result<RequestRecord, WebError> {
    let not_found = || {
        WebError::NotFound(format!(
            "there is no request {id}, or it is not one you may see (your own, or one of a \
             profile you approve)"
        ))
    };
    let Ok(parsed) = id.parse::<RequestId>() else {
        return Err(not_found());
    };
    match state.broker.request(&user.actor, parsed).await {
        Err(BrokerError::App(AppError::NotFound(_))) => Err(not_found()),
        found => Ok(found?),
    }
}

/// Renders the page of `stored` with `status`, showing `refusal` if an action was refused.
pub(super) async fn page(
    state: &AppState,
    viewer: &Viewer,
    stored: &RequestRecord,
    refusal: Option<Refusal>,
    status: StatusCode,
) -> PageResult {
    let now = state.broker.now();
    let events = state
        .broker
        .request_events(&viewer.user.actor, stored.request.id)
        .await
        .or_page(viewer)?;
    let mut ids = people_of(std::slice::from_ref(stored));
    ids.extend(stored.request.approvals.iter().map(|a| a.by.as_str()));
    if let Some(extension) = &stored.request.extension {
        ids.extend(extension.approvals.iter().map(|a| a.by.as_str()));
    }
    ids.extend(events.iter().map(|e| e.actor.as_str()));
    let people = People::load(state, ids).await.or_page(viewer)?;
    let page = RequestPage {
        user: Some(viewer.view.clone()),
        id: stored.request.id.to_string(),
        state: stored.request.state.name().as_str(),
        status: view::status(stored, &people, &state.config, now),
        facts: facts(stored, &people, now),
        timeline: events
            .iter()
            .map(|e| TimelineEntry {
                at: when(e.at),
                actor: people.name(&e.actor),
                action: e.action.to_string(),
                details: details(&shown_details(e, viewer.user.actor.is_admin)),
            })
            .collect(),
        can: actions(stored, &viewer.user, state),
        refusal,
        next_steps: next_steps(stored, &events, viewer.user.actor.is_admin),
        reaches: reaches(state, stored),
        step_up: state
            .config
            .profile(&stored.request.profile)
            .is_some_and(|p| p.step_up),
    };
    render(status, &page).or_page(viewer)
}

/// The actions that make sense for `user` on `stored` in its current state (the
/// application layer's rules decide; the page shows them).
pub(super) fn actions(stored: &RequestRecord, user: &CurrentUser, state: &AppState) -> Actions {
    state.broker.rules().actions(&user.actor, &stored.request)
}

fn facts(stored: &RequestRecord, people: &People, now: chrono::DateTime<Utc>) -> Vec<Fact> {
    let r = &stored.request;
    let mut facts = vec![
        fact("Requester", people.name(r.requester.as_str())),
        fact("Profile", r.profile.clone()),
        fact("Account", r.account.to_string()),
        fact("OS user", r.os_user.to_string()),
        fact("Duration", view::duration(r.duration)),
        fact("Reason", r.reason.clone()),
    ];
    if let Some(ticket) = &r.ticket {
        facts.push(fact("Ticket", ticket.clone()));
    }
    facts.push(fact("Requested", when(r.created_at)));
    if !r.approvals.is_empty() {
        facts.push(fact("Approved by", approvers(&r.approvals, people)));
    }
    match &r.state {
        RequestState::Approved { approved_at } => {
            facts.push(fact("Approved", when(*approved_at)));
        }
        RequestState::Active {
            activated_at,
            expires_at,
        } => {
            facts.push(fact("Active since", when(*activated_at)));
            facts.push(fact(
                "Ends",
                format!("{} ({})", when(*expires_at), time_left(*expires_at, now)),
            ));
        }
        RequestState::Ended {
            activated_at,
            ended_at,
            why,
        } => {
            if let Some(at) = activated_at {
                facts.push(fact("Active since", when(*at)));
            }
            facts.push(fact("Ended", when(*ended_at)));
            if let EndReason::Revoked {
                comment: Some(c), ..
            } = why
            {
                facts.push(fact("Revoke comment", c.clone()));
            }
        }
        RequestState::Denied {
            comment: Some(c), ..
        } => facts.push(fact("Deny comment", c.clone())),
        RequestState::Failed { reason, .. } => facts.push(fact("What failed", reason.clone())),
        _ => {}
    }
    if let Some(e) = &r.extension {
        let mut text = format!(
            "+{} asked {}: {}",
            view::duration(e.extra),
            when(e.requested_at),
            e.reason
        );
        if !e.approvals.is_empty() {
            text.push_str(&format!(
                "; approved by {}",
                approvers(&e.approvals, people)
            ));
        }
        facts.push(fact("Extension waiting", text));
    }
    facts
}

fn fact(label: &'static str, value: String) -> Fact {
    Fact { label, value }
}

fn approvers(approvals: &[Approval], people: &People) -> String {
    approvals
        .iter()
        .map(|a| format!("{} ({})", people.name(a.by.as_str()), when(a.at)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an event's details show this viewer: AWS's own error text is for admins (it
/// names roles, accounts and policies); others read what was attempted.
fn shown_details(event: &crate::audit::AuditEvent, is_admin: bool) -> Value {
    let mut details = event.details.clone();
    if !is_admin
        && event.action.as_str().starts_with("aws.")
        && let Value::Object(map) = &mut details
    {
        map.remove("error");
    }
    details
}

/// What to do about a failed request: for its requester (and approvers) whom to ask;
/// for an admin where the AWS detail is and, when AWS refused jitgate's role, which
/// permission to add.
fn next_steps(
    stored: &RequestRecord,
    events: &[crate::audit::AuditEvent],
    is_admin: bool,
) -> Option<String> {
    if !matches!(stored.request.state, RequestState::Failed { .. }) {
        return None;
    }
    if !is_admin {
        return Some(format!(
            "Nothing was granted. Ask your jitgate administrator to look at request {} \
             (the detail is in its audit trail); once they have fixed the cause, request \
             access again.",
            stored.request.id
        ));
    }
    let last = events
        .iter()
        .rev()
        .find(|e| e.action == "aws.converge_failed")?;
    let error = last
        .details
        .get("error")
        .and_then(|e| e.as_str())
        .unwrap_or_default();
    let permission = error
        .split("not authorized to perform: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next());
    Some(match permission {
        Some(action) => format!(
            "AWS refused jitgate's role the action {action}: add it to the policy of the \
             role jitgate's server runs as, then ask the requester to request again. The \
             full error is in event #{} below.",
            last.seq
        ),
        None => format!(
            "The AWS error is in event #{} below (aws.converge_failed). Fix the cause, then \
             ask the requester to request again.",
            last.seq
        ),
    })
}

/// An event's details as `key: value` pairs; nested values stay JSON.
fn details(details: &Value) -> String {
    match details {
        Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
