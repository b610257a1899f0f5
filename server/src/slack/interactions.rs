//! A Slack interaction (a button click, the deny modal submitted), whichever way it
//! came: Socket Mode (`slack/socket.rs`) or HTTP (`http/slack.rs`, after the signature
//! check). It is an edge like the web's: the clicking Slack member is matched to a
//! jitgate user (`[slack] user_match`), whose groups are confirmed as for any sign-in,
//! and the action goes through the broker's use case, recorded `via: slack`. Approve
//! answers the clicker with an ephemeral message through the interaction's
//! `response_url`; Deny opens a modal asking why.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::SlackApi;
use super::api::{DENY_CALLBACK, REASON_BLOCK, REASON_INPUT};
use crate::aws::IdcClient;
use crate::broker::{Action, Broker, BrokerError, Stale, Via};
use crate::config::UserMatch;
use crate::domain::{RequestId, User};
use crate::oidc::Provider;

/// What an interaction needs: the same broker and sign-in provider as the web's.
#[derive(Clone)]
pub struct Interactions {
    pub broker: Broker<IdcClient>,
    pub oidc: Provider,
    pub slack: Arc<SlackApi>,
    pub user_match: UserMatch,
}

/// The answer Slack gets, within its 3 seconds.
#[derive(Debug, PartialEq)]
pub enum Reply {
    /// Received; nothing to show (closes a modal).
    Ack,
    /// A body Slack reads: the modal's errors.
    Body(Value),
}

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
    values: HashMap<String, HashMap<String, InputValue>>,
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

/// The payload is not an interaction jitgate can read.
#[derive(Debug, thiserror::Error)]
#[error("not a Slack interaction payload: {0}")]
pub struct Unreadable(#[from] serde_json::Error);

impl Interactions {
    /// Handles `payload`, already known to come from Slack. A button's work goes on after
    /// the answer (its outcome reaches the clicker through `response_url`); the deny modal
    /// is opened at once (its `trigger_id` lasts 3 seconds) and its submission decided
    /// before answering, so a refusal shows in the modal.
    pub async fn handle(&self, payload: Value) -> Result<Reply, Unreadable> {
        let interaction: Interaction = serde_json::from_value(payload)?;
        Ok(match interaction.kind.as_str() {
            "block_actions" => self.clicked(interaction).await,
            "view_submission" => self.submitted(interaction).await,
            _ => Reply::Ack,
        })
    }

    /// A button: Approve runs after the answer; Deny opens the modal that asks why.
    async fn clicked(&self, interaction: Interaction) -> Reply {
        let Some(click) = interaction.actions.first() else {
            return Reply::Ack;
        };
        // A link button (a step-up profile's "Review and approve"): Slack opened the page.
        if click.action_id == "review" {
            return Reply::Ack;
        }
        if click.action_id == "deny" {
            if let Some(trigger) = &interaction.trigger_id
                && let Err(e) = self.slack.open_deny_modal(trigger, &click.value).await
            {
                tracing::warn!(error = %e, "could not open the deny modal");
            }
            return Reply::Ack;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let answer = match click_action(&interaction) {
                Ok((id, action)) => match this.decide(&interaction.user.id, id, action).await {
                    Ok(done) | Err(done) => done,
                },
                Err(why) => why,
            };
            if let Some(url) = interaction.response_url
                && let Err(e) = this.slack.tell(&url, &answer).await
            {
                tracing::warn!(error = %e, "could not answer the Slack click");
            }
        });
        Reply::Ack
    }

    /// The deny modal submitted: decided now; a refusal is shown under the reason field.
    async fn submitted(&self, interaction: Interaction) -> Reply {
        let Some(view) = interaction.view else {
            return Reply::Ack;
        };
        if view.callback_id != DENY_CALLBACK {
            return Reply::Ack;
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
        match self.decide(&interaction.user.id, id, action).await {
            Ok(_) => Reply::Ack,
            Err(why) => modal_error(&why),
        }
    }

    /// Applies `action` as Slack member `member`: `Ok` with what was done, `Err` with why not.
    async fn decide(&self, member: &str, id: RequestId, action: Action) -> Result<String, String> {
        let person = self.who(member).await?;
        let person = match self.broker.confirmed(person, &self.oidc).await {
            Ok(person) => person,
            Err(Stale::SignInAgain(why)) => {
                return Err(format!("{why}: sign in to jitgate on the web."));
            }
            Err(Stale::Unavailable(why)) => return Err(why),
            Err(Stale::Failed(e)) => return Err(refusal(e)),
        };
        let actor = self
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
        match self.broker.act_via(&actor, id, action, &via).await {
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
            Err(e) => Err(refusal(e)),
        }
    }

    /// The jitgate user Slack member `member` is, by `[slack] user_match`.
    async fn who(&self, member: &str) -> Result<User, String> {
        if self.user_match.by_link() {
            match self.broker.person_by_slack_member(member).await {
                Ok(Some(person)) => return Ok(person),
                Ok(None) => {}
                Err(e) => return Err(refusal(e)),
            }
        }
        if self.user_match.by_email() {
            return self.by_email(member).await;
        }
        Err(format!(
            "jitgate does not know who you are in Slack: link your Slack account at \
             {}/settings/slack, then try again.",
            self.broker.config().server.public_url.trim_end_matches('/')
        ))
    }

    /// The one jitgate user with the email Slack has for `member`.
    async fn by_email(&self, member: &str) -> Result<User, String> {
        let email = match self.slack.email_of(member).await {
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
                    "jitgate could not ask Slack who you are; try again, or decide on the web."
                        .into(),
                );
            }
        };
        match self.broker.person_by_email(&email).await {
            Ok(Some(person)) => Ok(person),
            Ok(None) => Err(format!(
                "No one jitgate knows has the email {email} (or several do): sign in to \
                 jitgate on the web once, then try again."
            )),
            Err(e) => Err(refusal(e)),
        }
    }
}

/// The modal's answer that keeps it open with `why` under the reason field.
fn modal_error(why: &str) -> Reply {
    Reply::Body(json!({"response_action": "errors", "errors": {REASON_BLOCK: why}}))
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

/// What to tell the clicker of a refusal: the use case's reason, or for a failure of
/// jitgate or its peers a reference only (the detail is logged under it), as the web's
/// error page does (`http/error.rs`).
fn refusal(e: BrokerError) -> String {
    match e {
        BrokerError::App(e) => e.to_string(),
        other => {
            let reference = uuid::Uuid::new_v4().simple().to_string();
            tracing::error!(reference = %reference, error = %other, "Slack action failed");
            format!(
                "jitgate could not complete this; try again in a minute, or on the web \
                 (reference {reference})"
            )
        }
    }
}
