//! Step-up (`step_up = true` on a profile): an approval counts only from someone who
//! authenticated at the identity provider moments ago, on the web. Slack shows a "Review
//! and approve" link instead of a button, a Slack click or an API call is refused, and
//! the web sends the approver to sign in again (`prompt=login`, `max_age=0`), checking
//! the ID token's `auth_time` before the approval counts.

use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{ProfileSpec, SLACK_APP_TOKEN, SLACK_BOT_TOKEN, SlackPeer, sign_in_from};
use crate::slack::{approve_click, latest, messages_when, wait_told};
use crate::world::{Backend, World, prod_profile};

#[tokio::test]
async fn a_step_up_profile_approves_only_after_a_fresh_sign_in() -> Result<()> {
    let peer = SlackPeer::start().await?;
    let section = format!(
        "[slack]\nuser_match = \"email\"\napp_token = \"{SLACK_APP_TOKEN}\"\n\
         bot_token = \"{SLACK_BOT_TOKEN}\"\napi_base_url = \"{}\"\nchannel = \"#access\"\n",
        peer.api_url()
    );
    let w = World::start_with_sign_in(Backend::Sqlite, |c| {
        c.profile(ProfileSpec {
            step_up: true,
            ..prod_profile()
        })
        .raw(&section)
    })
    .await?;
    peer.add_users(&[("UBOB", "bob@example.com")]).await?;
    // Bob signed in long ago as far as the provider says: his session is not fresh.
    w.oidc.tamper_next_id_token("stale_auth_time").await?;
    let (bob, _) = w.session_of("bob").await?;
    peer.wait_sockets(1, 1).await?;
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    let base = w.server.listen_url();
    let page = format!("/requests/{id}");

    // Slack links to the page instead of offering an Approve button.
    let posted = messages_when(&peer, "the request announced", |m| !m.is_empty()).await?;
    let shown = latest(&posted[0]);
    assert!(shown.contains("Review and approve"), "{shown}");
    assert!(
        shown.contains(&format!("{page}\"")),
        "the link is the page: {shown}"
    );
    assert!(!shown.contains("\"action_id\":\"approve\""), "{shown}");
    // A click that says approve anyway (an old message, a crafted payload) is refused.
    let click = approve_click("UBOB", &id.to_string(), &peer.response_url("step-up/bob"));
    assert_eq!(peer.push(&click, false).await?["acked"], true);
    let answers = wait_told(&peer, 1).await?;
    assert!(answers[0].contains("fresh sign-in"), "{answers:?}");
    // So is the API (a token proves no recent sign-in).
    let token = w.token_for("bob").await?;
    let api = reqwest::Client::new()
        .post(format!("{base}/api/v1/requests/{id}/approve"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await?;
    assert_eq!(api.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = api.json().await?;
    assert_eq!(body["error"]["code"], "step_up_required", "{body}");

    // On the web, bob's stale session is sent to sign in again, for this page (which
    // says so beside its Approve button).
    let html = bob
        .get(format!("{base}{page}"))
        .send()
        .await?
        .text()
        .await?;
    assert!(html.contains("id=\"step-up-note\""), "{html}");
    let csrf = csrf_on(&bob, &base, &page).await?;
    let approve = || {
        bob.post(format!("{base}{page}/approve"))
            .form(&[("csrf", csrf.as_str())])
            .send()
    };
    let answer = approve().await?;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let to = answer
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(to, format!("/login?step_up=1&return_to={page}"));
    assert_eq!(
        w.request(id).await?.request.state.name().as_str(),
        "pending"
    );
    assert!(w.audit_events("request.approved").await?.is_empty());
    // The provider is asked to authenticate him whatever session it holds.
    let asked = bob.get(format!("{base}{to}")).send().await?;
    let authorize = asked
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        authorize.contains("prompt=login") && authorize.contains("max_age=0"),
        "{authorize}"
    );
    // A provider answering with the old authentication is not a step-up.
    w.oidc.tamper_next_id_token("stale_auth_time").await?;
    let refused = sign_in_from(&bob, &base, &to, "bob").await?;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    // A fresh one brings him back to the page, where his approval now counts.
    let fresh = sign_in_from(&bob, &base, &to, "bob").await?;
    assert_eq!(fresh.status, StatusCode::SEE_OTHER, "{}", fresh.body);
    assert_eq!(fresh.location.as_deref(), Some(page.as_str()));
    let csrf = csrf_on(&bob, &base, &page).await?;
    let approved = bob
        .post(format!("{base}{page}/approve"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await?;
    assert_eq!(approved.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        approved
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok()),
        Some(page.as_str())
    );
    let events = w.audit_events("request.approved").await?;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor, "sub-bob");
    Ok(())
}

/// The CSRF token on `path` in `client`'s session.
async fn csrf_on(client: &reqwest::Client, base: &str, path: &str) -> Result<String> {
    let html = client
        .get(format!("{base}{path}"))
        .send()
        .await?
        .text()
        .await?;
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
        .context("no CSRF token on the page")
}
