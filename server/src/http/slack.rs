//! `POST /slack/interactions`: a click on a jitgate message in Slack. The signature is
//! checked before anything in the body is read (`slack::signature`); the clicking Slack
//! member is matched to a jitgate user by the email Slack has for them, whose groups
//! are confirmed as for any sign-in, and the action goes through the same use case as
//! the web's, recorded `via: slack`. Approve answers the clicker with an ephemeral
//! message through the interaction's `response_url`; Deny opens a modal asking why.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, WebError};
use crate::broker::{Action, Stale, Via};
use crate::domain::RequestId;
use crate::slack::SlackApi;
use crate::slack::api::{DENY_CALLBACK, REASON_BLOCK, REASON_INPUT};
use crate::slack::signature;

/// The part of an interaction payload jitgate reads
/// (https://api.slack.com/reference/interaction-payloads/block-actions).
#[derive(Debug, Deserialize)]
struct Interaction {
    #[serde(rename = "type")]
    kind: String,
    user: SlackMember,
    #[serde(default)]
    actions: Vec<BlockAction>,
    response_url: Option<String>,
    trigger_id: Option<String>,
    /// The modal, in a `view_submission`.
    view: Option<View>,
}

#[derive(Debug, Deserialize)]
struct View {
    callback_id: String,
    #[serde(default)]
    private_metadata: String,
    state: ViewState,
}

#[derive(Debug, Deserialize)]
struct ViewState {
    values: std::collections::HashMap<String, std::collections::HashMap<String, InputValue>>,
}

#[derive(Debug, Deserialize)]
struct InputValue {
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SlackMember {
    id: String,
}

#[derive(Debug, Deserialize)]
struct BlockAction {
    action_id: String,
    #[serde(default)]
    value: String,
}

/// `POST /slack/interactions`: 401 unless Slack signed it. Slack wants an answer within
/// 3 seconds: a button's work goes on after the 200 (its outcome reaches the clicker
/// through `response_url`); the deny modal is opened at once (its `trigger_id` lasts 3
/// seconds) and its submission decided before answering, so a refusal shows in the modal.
pub(super) async fn interactions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(slack) = state.slack.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(why) = signature::verify(
        slack.signing_secret(),
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        &body,
        state.broker.now(),
    ) {
        tracing::warn!(reason = %why, "Slack interaction refused: not signed by Slack");
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let payload = form_urlencoded::parse(&body)
        .find(|(key, _)| key == "payload")
        .map(|(_, value)| value.into_owned());
    let Some(interaction) = payload.and_then(|p| serde_json::from_str::<Interaction>(&p).ok())
    else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match interaction.kind.as_str() {
        "block_actions" => clicked(state, slack, interaction).await,
        "view_submission" => submitted(&state, &slack, interaction).await,
        _ => StatusCode::OK.into_response(),
    }
}

/// A button: Approve runs after the 200; Deny opens the modal that asks why.
async fn clicked(state: AppState, slack: Arc<SlackApi>, interaction: Interaction) -> Response {
    let Some(click) = interaction.actions.first() else {
        return StatusCode::OK.into_response();
    };
    if click.action_id == "deny" {
        if let Some(trigger) = &interaction.trigger_id
            && let Err(e) = slack.open_deny_modal(trigger, &click.value).await
        {
            tracing::warn!(error = %e, "could not open the deny modal");
        }
        return StatusCode::OK.into_response();
    }
    tokio::spawn(async move {
        let answer = match click_action(&interaction) {
            Ok((id, action)) => decide(&state, &slack, &interaction.user.id, id, action).await,
            Err(why) => why,
        };
        if let Some(url) = interaction.response_url
            && let Err(e) = slack.tell(&url, &answer).await
        {
            tracing::warn!(error = %e, "could not answer the Slack click");
        }
    });
    StatusCode::OK.into_response()
}

/// The deny modal submitted: decided now; a refusal is shown under the reason field.
async fn submitted(state: &AppState, slack: &Arc<SlackApi>, interaction: Interaction) -> Response {
    let Some(view) = interaction.view else {
        return StatusCode::OK.into_response();
    };
    if view.callback_id != DENY_CALLBACK {
        return StatusCode::OK.into_response();
    }
    let reason = view
        .state
        .values
        .get(REASON_BLOCK)
        .and_then(|b| b.get(REASON_INPUT))
        .and_then(|v| v.value.clone())
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    let Some(reason) = reason else {
        return modal_error("Say why, for the requester.");
    };
    let Ok(id) = view.private_metadata.parse::<RequestId>() else {
        return modal_error("This form names no request jitgate knows.");
    };
    let action = Action::Deny {
        comment: Some(reason),
    };
    match decide_checked(state, slack, &interaction.user.id, id, action).await {
        // An empty 200 closes the modal.
        Ok(_) => StatusCode::OK.into_response(),
        Err(why) => modal_error(&why),
    }
}

/// The modal's answer that keeps it open with `why` under the reason field.
fn modal_error(why: &str) -> Response {
    Json(json!({"response_action": "errors", "errors": {REASON_BLOCK: why}})).into_response()
}

fn click_action(interaction: &Interaction) -> Result<(RequestId, Action), String> {
    let Some(click) = interaction.actions.first() else {
        return Err("Nothing to do.".into());
    };
    let action = match click.action_id.as_str() {
        "approve" => Action::Approve,
        other => return Err(format!("jitgate does not know the action `{other}`.")),
    };
    let id = click
        .value
        .parse::<RequestId>()
        .map_err(|_| "This button names no request jitgate knows.".to_owned())?;
    Ok((id, action))
}

/// Applies `action` as Slack member `member`; answers what to tell them.
async fn decide(
    state: &AppState,
    slack: &Arc<SlackApi>,
    member: &str,
    id: RequestId,
    action: Action,
) -> String {
    match decide_checked(state, slack, member, id, action).await {
        Ok(done) | Err(done) => done,
    }
}

/// Applies `action` as Slack member `member`: `Ok` with what was done, `Err` with why not.
async fn decide_checked(
    state: &AppState,
    slack: &Arc<SlackApi>,
    member: &str,
    id: RequestId,
    action: Action,
) -> Result<String, String> {
    let email = match slack.email_of(member).await {
        Ok(Some(email)) => email,
        Ok(None) => {
            return Err(
                "Slack has no email for your account, so jitgate cannot tell who you \
                        are; decide on the request's web page."
                    .into(),
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, member = %member, "users.info failed");
            return Err(
                "jitgate could not ask Slack who you are; try again, or decide on the web.".into(),
            );
        }
    };
    let person = match state.broker.person_by_email(&email).await {
        Ok(Some(person)) => person,
        Ok(None) => {
            return Err(format!(
                "No one jitgate knows has the email {email} (or several do): sign in to \
                 jitgate on the web once, then try again."
            ));
        }
        Err(e) => return Err(refusal(WebError::from(e))),
    };
    let person = match state.broker.confirmed(person, &state.oidc).await {
        Ok(person) => person,
        Err(Stale::SignInAgain(why)) => {
            return Err(format!("{why}: sign in to jitgate on the web."));
        }
        Err(Stale::Unavailable(why)) => return Err(why),
        Err(Stale::Failed(e)) => return Err(refusal(WebError::from(e))),
    };
    let actor = state
        .broker
        .rules()
        .actor(person.id.clone(), person.groups.clone());
    let via = Via::Slack {
        user_id: member.to_owned(),
    };
    let verb = match action {
        Action::Approve => "approved",
        Action::Deny { .. } => "denied",
        _ => "acted on",
    };
    match state.broker.act_via(&actor, id, action, &via).await {
        Ok(record) => {
            let r = &record.request;
            Ok(format!(
                "You {verb} {}'s request for {} as {} ({}): it is now {}.",
                r.requester,
                r.profile,
                r.os_user,
                r.id,
                r.state.name().as_str()
            ))
        }
        Err(e) => Err(refusal(WebError::from(e))),
    }
}

/// What to tell the clicker of a refusal: the reason, or for a failure of jitgate its
/// reference only (the detail is logged).
fn refusal(e: WebError) -> String {
    let (message, reference) = e.public_message();
    match reference {
        Some(id) => format!("{message} (reference {id})"),
        None => message,
    }
}
