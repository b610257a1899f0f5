//! `POST /requests/{id}/{approve,deny,cancel,revoke,extend}`: the request page's forms.
//! Each checks the CSRF token, then the request's visibility (an invisible request is
//! "not found"), then hands the decision to the broker. Done: 303 back to the request
//! page. Refused: the request page again, with the message and what was typed.

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use tower_sessions::Session;

use super::request_page::{self, Refusal, visible};
use super::view::{non_blank, parse_duration};
use super::{OrPage, PageResult, Viewer};
use crate::broker::Action as BrokerAction;
use crate::http::session::check_csrf;
use crate::http::{AppState, WebError};

/// The fields any action form may carry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct ActionForm {
    csrf: Option<String>,
    /// Deny and revoke.
    comment: String,
    /// Extend: how much more time.
    duration: String,
    /// Extend: why.
    reason: String,
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Approve,
    Deny,
    Cancel,
    Revoke,
    Extend,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Deny => "deny",
            Action::Cancel => "cancel",
            Action::Revoke => "revoke",
            Action::Extend => "extend",
        }
    }
}

/// Approves the request, or its pending extension.
pub(super) async fn approve(
    state: State<AppState>,
    viewer: Viewer,
    session: Session,
    id: Path<String>,
    form: Form<ActionForm>,
) -> PageResult {
    act(state, viewer, session, id, form, Action::Approve).await
}

/// Denies the request, or drops its pending extension, with an optional comment.
pub(super) async fn deny(
    state: State<AppState>,
    viewer: Viewer,
    session: Session,
    id: Path<String>,
    form: Form<ActionForm>,
) -> PageResult {
    act(state, viewer, session, id, form, Action::Deny).await
}

/// Withdraws a request that is not active yet.
pub(super) async fn cancel(
    state: State<AppState>,
    viewer: Viewer,
    session: Session,
    id: Path<String>,
    form: Form<ActionForm>,
) -> PageResult {
    act(state, viewer, session, id, form, Action::Cancel).await
}

/// Ends a grant early, with an optional comment.
pub(super) async fn revoke(
    state: State<AppState>,
    viewer: Viewer,
    session: Session,
    id: Path<String>,
    form: Form<ActionForm>,
) -> PageResult {
    act(state, viewer, session, id, form, Action::Revoke).await
}

/// Asks for more time on an active grant.
pub(super) async fn extend(
    state: State<AppState>,
    viewer: Viewer,
    session: Session,
    id: Path<String>,
    form: Form<ActionForm>,
) -> PageResult {
    act(state, viewer, session, id, form, Action::Extend).await
}

async fn act(
    State(state): State<AppState>,
    viewer: Viewer,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
    action: Action,
) -> PageResult {
    check_csrf(&session, form.csrf.as_deref())
        .await
        .or_page(&viewer)?;
    let stored = visible(&state, &viewer.user, &id).await.or_page(&viewer)?;
    let id = stored.request.id;
    let comment = non_blank(&form.comment);
    // The form's duration is parsed here so its error lands next to the field.
    let outcome = match to_broker_action(action, comment, &form) {
        Ok(act) => state
            .broker
            .act(&viewer.user.actor, id, act, state.broker.now())
            .await
            .map_err(Into::into),
        Err(e) => Err(e),
    };
    let error: WebError = match outcome {
        Ok(_) => return Ok(Redirect::to(&format!("/requests/{id}")).into_response()),
        // A step-up profile: sign in again at the provider, come back here, approve.
        Err(WebError::StepUpRequired(_)) => {
            return Ok(
                Redirect::to(&format!("/login?step_up=1&return_to=/requests/{id}")).into_response(),
            );
        }
        Err(e) if e.is_refusal() => e,
        Err(e) => return Err(viewer.refuse(e)),
    };
    // Show the request as it is now: the refusal may be about a change made meanwhile.
    let current = visible(&state, &viewer.user, &id.to_string())
        .await
        .or_page(&viewer)?;
    let status = error.status();
    let (message, _) = error.public_message();
    let refusal = Refusal {
        action: action.name(),
        field: error.field(),
        message,
        comment: form.comment,
        duration: form.duration,
        reason: form.reason,
    };
    request_page::page(&state, &viewer, &current, Some(refusal), status).await
}

/// The broker's action for a page action and its form.
fn to_broker_action(
    action: Action,
    comment: Option<String>,
    form: &ActionForm,
) -> Result<BrokerAction, WebError> {
    Ok(match action {
        Action::Approve => BrokerAction::Approve,
        Action::Deny => BrokerAction::Deny { comment },
        Action::Cancel => BrokerAction::Cancel,
        Action::Revoke => BrokerAction::Revoke { comment },
        Action::Extend => BrokerAction::Extend {
            extra: parse_duration("duration", &form.duration)?,
            reason: form.reason.clone(),
        },
    })
}
