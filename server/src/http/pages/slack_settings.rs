//! `/settings/slack`: linking the viewer's Slack account, so their clicks in Slack count
//! as theirs (`[slack] user_match = "link"` or `"both"`). They name their Slack member
//! (id, or the email Slack has for them); jitgate sends that member a one-time code in a
//! Slack DM; typing it back here makes the link (`jitgate_core::app::slack_links`).

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::json;
use tower_sessions::Session;

use super::view::when;
use super::{OrPage, PageResult, Viewer, render};
use crate::broker::is_member_id;
use crate::http::session::{UserView, check_csrf};
use crate::http::{AppState, WebError};
use crate::slack::SlackApi;

#[derive(Template)]
#[template(path = "slack_settings.html")]
struct SlackSettingsPage {
    user: Option<UserView>,
    /// The linked member and since when.
    linked: Option<(String, String)>,
    /// The member a code was sent to, and until when it works.
    pending: Option<(String, String)>,
    /// Whether Slack clicks are matched by link at all.
    by_link: bool,
    /// What went wrong with the last form, and what was typed.
    error: Option<String>,
    who: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct LinkForm {
    csrf: Option<String>,
    /// A Slack member id (U0123ABCD) or the email Slack has for the person.
    who: String,
    /// The code typed back.
    code: String,
}

fn slack_of(state: &AppState) -> Result<&std::sync::Arc<SlackApi>, WebError> {
    state
        .slack
        .as_ref()
        .ok_or_else(|| WebError::NotFound("Slack is not set up in this jitgate".into()))
}

/// `GET /settings/slack`.
pub(super) async fn show(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    slack_of(&state).or_page(&viewer)?;
    page(&state, &viewer, StatusCode::OK, None, String::new()).await
}

async fn page(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    error: Option<String>,
    who: String,
) -> PageResult {
    let link = state
        .broker
        .slack_link(&viewer.user.actor)
        .await
        .or_page(viewer)?;
    let by_link = state
        .config
        .slack
        .as_ref()
        .is_some_and(|s| s.user_match.by_link());
    let page = SlackSettingsPage {
        user: Some(viewer.view.clone()),
        linked: link.linked.map(|l| (l.member, when(l.linked_at))),
        pending: link.pending.map(|p| (p.member, when(p.expires_at))),
        by_link,
        error,
        who,
    };
    render(status, &page).or_page(viewer)
}

/// `POST /settings/slack/link`: sends a code to the member named.
pub(super) async fn link(
    State(state): State<AppState>,
    viewer: Viewer,
    session: Session,
    Form(form): Form<LinkForm>,
) -> PageResult {
    check_csrf(&session, form.csrf.as_deref())
        .await
        .or_page(&viewer)?;
    let slack = slack_of(&state).or_page(&viewer)?.clone();
    let who = form.who.trim().to_owned();
    let refused = |why: String| async {
        page(
            &state,
            &viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(why),
            who.clone(),
        )
        .await
    };
    if let Err(e) = state.broker.may_offer_slack_link(&viewer.user.actor).await {
        return refused(WebError::from(e).public_message().0).await;
    }
    let member = if who.contains('@') {
        match slack.member_by_email(&who).await {
            Ok(Some(member)) => member,
            Ok(None) => {
                return refused(format!(
                    "Slack has no member with the email {who}: give your member id instead"
                ))
                .await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "users.lookupByEmail failed");
                return refused("jitgate could not ask Slack; try again in a minute".into()).await;
            }
        }
    } else if is_member_id(&who) {
        who.clone()
    } else {
        return refused(
            "give your Slack member id (in Slack: your profile, ⋮, Copy member ID) or the \
             email of your Slack account"
                .into(),
        )
        .await;
    };
    let code = match state
        .broker
        .offer_slack_link(&viewer.user.actor, &member)
        .await
    {
        Ok(code) => code,
        Err(e) => return refused(WebError::from(e).public_message().0).await,
    };
    let asker = viewer.view.display.clone();
    let url = state.config.server.public_url.clone();
    if let Err(e) = send_code(&slack, &member, &code, &asker, &url).await {
        tracing::warn!(error = %e, member = %member, "could not DM a Slack link code");
        return refused(format!(
            "Slack did not deliver the code to {member} ({e}); check the member id and that \
             the jitgate app is installed in your workspace"
        ))
        .await;
    }
    Ok(Redirect::to("/settings/slack").into_response())
}

/// The DM with the code: who asked, and what to do if it was not them.
async fn send_code(
    slack: &SlackApi,
    member: &str,
    code: &str,
    asker: &str,
    public_url: &str,
) -> Result<(), crate::slack::SlackError> {
    let url = format!("{}/settings/slack", public_url.trim_end_matches('/'));
    let text = format!(
        "jitgate user *{}* asked to link this Slack account to theirs. If that is you, type \
         *{code}* at {url}; it works for 10 minutes. Never give this code to anyone: whoever \
         types it has your Slack approvals counted as theirs. If it was not you, ignore this \
         message (nothing is linked without the code) and tell your jitgate administrator.",
        crate::slack::messages::escape(asker)
    );
    dm(slack, member, &text).await
}

async fn dm(slack: &SlackApi, member: &str, text: &str) -> Result<(), crate::slack::SlackError> {
    let channel = slack.open_dm(member).await?;
    let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": text}}]);
    slack.post_message(&channel, text, &blocks).await.map(drop)
}

/// `POST /settings/slack/confirm`: the code typed back.
pub(super) async fn confirm(
    State(state): State<AppState>,
    viewer: Viewer,
    session: Session,
    Form(form): Form<LinkForm>,
) -> PageResult {
    check_csrf(&session, form.csrf.as_deref())
        .await
        .or_page(&viewer)?;
    slack_of(&state).or_page(&viewer)?;
    let code: String = form.code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 8 || !code.chars().all(|c| c.is_ascii_digit()) {
        return page(
            &state,
            &viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("the code is the 8 digits jitgate sent you in Slack".into()),
            String::new(),
        )
        .await;
    }
    match state
        .broker
        .confirm_slack_link(&viewer.user.actor, &code)
        .await
    {
        Ok(member) => {
            // Told in Slack too: a code given away shows up there.
            let text = format!(
                "This Slack account is now linked to jitgate user *{}*: its Approve and Deny \
                 clicks count as theirs. If that is not you, unlink it at {}/settings/slack \
                 and tell your jitgate administrator.",
                crate::slack::messages::escape(&viewer.view.display),
                state.config.server.public_url.trim_end_matches('/')
            );
            if let Some(slack) = &state.slack
                && let Err(e) = dm(slack, &member, &text).await
            {
                tracing::warn!(error = %e, "could not confirm a Slack link by DM");
            }
            Ok(Redirect::to("/settings/slack").into_response())
        }
        Err(e) => {
            let e = WebError::from(e);
            let status = e.status();
            page(
                &state,
                &viewer,
                status,
                Some(e.public_message().0),
                String::new(),
            )
            .await
        }
    }
}

/// `POST /settings/slack/unlink`.
pub(super) async fn unlink(
    State(state): State<AppState>,
    viewer: Viewer,
    session: Session,
    Form(form): Form<LinkForm>,
) -> PageResult {
    check_csrf(&session, form.csrf.as_deref())
        .await
        .or_page(&viewer)?;
    slack_of(&state).or_page(&viewer)?;
    state
        .broker
        .unlink_slack(&viewer.user.actor)
        .await
        .or_page(&viewer)?;
    Ok(Redirect::to("/settings/slack").into_response())
}
