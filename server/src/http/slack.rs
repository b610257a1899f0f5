//! `POST /slack/interactions`: a click on a jitgate message in Slack. The signature is
//! checked before anything in the body is read (`slack::signature`); the clicking Slack
//! member is matched to a jitgate user by the email Slack has for them, whose groups
//! are confirmed as for any sign-in, and the action goes through the same use case as
//! the web's, recorded `via: slack`. The answer to the clicker is an ephemeral message
//! through the interaction's `response_url`, sent after Slack has its 200.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::{AppState, WebError};
use crate::broker::{Action, Stale, Via};
use crate::domain::{RequestId, UserId};
use crate::slack::SlackApi;
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

/// `POST /slack/interactions`: 401 unless Slack signed it; 200 once handled.
pub(super) async fn interactions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let Some(slack) = state.slack.clone() else {
        return StatusCode::NOT_FOUND;
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
        return StatusCode::UNAUTHORIZED;
    }
    let payload = form_urlencoded::parse(&body)
        .find(|(key, _)| key == "payload")
        .map(|(_, value)| value.into_owned());
    let Some(interaction) = payload.and_then(|p| serde_json::from_str::<Interaction>(&p).ok())
    else {
        return StatusCode::BAD_REQUEST;
    };
    if interaction.kind != "block_actions" {
        return StatusCode::OK;
    }
    let answer = decide(&state, &slack, &interaction).await;
    if let Some(url) = interaction.response_url {
        // After the 200: Slack wants its answer within 3 seconds.
        tokio::spawn(async move {
            if let Err(e) = slack.tell(&url, &answer).await {
                tracing::warn!(error = %e, "could not answer the Slack click");
            }
        });
    }
    StatusCode::OK
}

/// Applies the click; answers what to tell the clicker.
async fn decide(state: &AppState, slack: &Arc<SlackApi>, interaction: &Interaction) -> String {
    let member = &interaction.user.id;
    let Some(click) = interaction.actions.first() else {
        return "Nothing to do.".into();
    };
    let action = match click.action_id.as_str() {
        "approve" => Action::Approve,
        other => return format!("jitgate does not know the action `{other}`."),
    };
    let Ok(id) = click.value.parse::<RequestId>() else {
        return "This button names no request jitgate knows.".into();
    };
    let email = match slack.email_of(member).await {
        Ok(Some(email)) => email,
        Ok(None) => {
            return "Slack has no email for your account, so jitgate cannot tell who you are; \
                    approve on the request's web page."
                .into();
        }
        Err(e) => {
            tracing::warn!(error = %e, member = %member, "users.info failed");
            return "jitgate could not ask Slack who you are; try again, or approve on the web."
                .into();
        }
    };
    let person = match state.broker.person_by_email(&email).await {
        Ok(Some(person)) => person,
        Ok(None) => {
            return format!(
                "No one jitgate knows has the email {email} (or several do): sign in to jitgate \
                 on the web once, then click again."
            );
        }
        Err(e) => return refusal(WebError::from(e)),
    };
    let person = match state.broker.confirmed(person, &state.oidc).await {
        Ok(person) => person,
        Err(Stale::SignInAgain(why)) => return format!("{why}: sign in to jitgate on the web."),
        Err(Stale::Unavailable(why)) => return why,
        Err(Stale::Failed(e)) => return refusal(WebError::from(e)),
    };
    let actor = state
        .broker
        .rules()
        .actor(UserId::new(person.id.clone()), person.groups.clone());
    let via = Via::Slack {
        user_id: member.clone(),
    };
    match state.broker.act_via(&actor, id, action, &via).await {
        Ok(record) => {
            let r = &record.request;
            format!(
                "You approved {}'s request for {} as {} ({}): it is now {}.",
                r.requester,
                r.profile,
                r.os_user,
                r.id,
                r.state.name().as_str()
            )
        }
        Err(e) => refusal(WebError::from(e)),
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
