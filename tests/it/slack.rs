//! Approving from Slack over HTTP interactions: payloads signed by slack_sdk (through
//! the Slack peer) posted to the real server. Only Slack's signature, fresh, over the
//! exact body is accepted; the clicker is matched by the email Slack has for them, and
//! the same rules as the web's apply (no self-approval, one approval per person).

use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{SLACK_BOT_TOKEN, SlackPeer, slack_form_body};
use crate::world::{Backend, World, prod_profile};

const SECRET: &str = "slack-signing-secret-for-tests";

fn payload(member: &str, request: &str, response_url: &str) -> String {
    slack_form_body(&json!({
        "type": "block_actions",
        "user": {"id": member},
        "actions": [{"action_id": "approve", "value": request}],
        "response_url": response_url,
    }))
}

/// A server with `[slack]` pointing at `peer`, where alice and bob have signed in once
/// (so jitgate knows their emails) and are Slack members UALICE and UBOB.
async fn slack_world(peer: &SlackPeer) -> Result<World> {
    let api = peer.api_url();
    let w = World::start_with_sign_in(Backend::Sqlite, |c| {
        c.profile(prod_profile()).raw(&format!(
            "[slack]\nsigning_secret = \"{SECRET}\"\nbot_token = \"{SLACK_BOT_TOKEN}\"\napi_base_url = \"{api}\"\n"
        ))
    })
    .await?;
    w.session_of("alice").await?;
    w.session_of("bob").await?;
    peer.add_users(&[("UALICE", "alice@example.com"), ("UBOB", "bob@example.com")])
        .await?;
    Ok(w)
}

async fn post(
    w: &World,
    body: &str,
    timestamp: Option<i64>,
    signature: Option<&str>,
) -> Result<StatusCode> {
    let mut request = reqwest::Client::new()
        .post(format!("{}/slack/interactions", w.server.listen_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned());
    if let Some(ts) = timestamp {
        request = request.header("x-slack-request-timestamp", ts.to_string());
    }
    if let Some(sig) = signature {
        request = request.header("x-slack-signature", sig);
    }
    Ok(request.send().await?.status())
}

/// The ephemeral answers the server sent to `response_url`s, oldest first.
async fn told(peer: &SlackPeer) -> Result<Vec<String>> {
    Ok(peer
        .calls()
        .await?
        .into_iter()
        .filter(|c| c["method"] == "response_url")
        .map(|c| c["body"]["text"].as_str().unwrap_or_default().to_owned())
        .collect())
}

async fn wait_told(peer: &SlackPeer, count: usize) -> Result<Vec<String>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answers = told(peer).await?;
        if answers.len() >= count || tokio::time::Instant::now() > deadline {
            return Ok(answers);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_signed_slack_click_approves_once_and_nothing_else_does() -> Result<()> {
    let peer = SlackPeer::start().await?;
    let w = slack_world(&peer).await?;
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    let pending = || async { Ok::<_, anyhow::Error>(w.request(id).await?.request.state.name()) };
    let now = chrono::Utc::now().timestamp();
    let body = payload("UBOB", &id.to_string(), &peer.response_url("T1/bob"));

    // Not Slack's: refused before anything is read, and nothing changes.
    let wrong_secret = peer.sign("not-the-secret", now, &body).await?;
    assert_eq!(
        post(&w, &body, Some(now), Some(&wrong_secret)).await?,
        StatusCode::UNAUTHORIZED
    );
    let signed = peer.sign(SECRET, now, &body).await?;
    let altered = body.replace("UBOB", "UALI");
    assert_eq!(
        post(&w, &altered, Some(now), Some(&signed)).await?,
        StatusCode::UNAUTHORIZED
    );
    let old = now - 6 * 60;
    let old_signature = peer.sign(SECRET, old, &body).await?;
    assert_eq!(
        post(&w, &body, Some(old), Some(&old_signature)).await?,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(&w, &body, None, Some(&signed)).await?,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(&w, &body, Some(now), None).await?,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(pending().await?.as_str(), "pending");
    assert!(w.audit_events("request.approved").await?.is_empty());

    // Alice's own click: the web's rule, told to her alone.
    let own = payload("UALICE", &id.to_string(), &peer.response_url("T1/alice"));
    let own_signature = peer.sign(SECRET, now, &own).await?;
    assert_eq!(
        post(&w, &own, Some(now), Some(&own_signature)).await?,
        StatusCode::OK
    );
    let answers = wait_told(&peer, 1).await?;
    assert!(answers[0].contains("own"), "{answers:?}");
    assert_eq!(pending().await?.as_str(), "pending");

    // Bob's click approves, recorded as his and as Slack's.
    assert_eq!(
        post(&w, &body, Some(now), Some(&signed)).await?,
        StatusCode::OK
    );
    let answers = wait_told(&peer, 2).await?;
    assert!(answers[1].contains("You approved"), "{answers:?}");
    w.wait_assignment("alice", "JitSsm", true, Duration::from_secs(10))
        .await?;
    let approved = w.audit_events("request.approved").await?;
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0].actor, "sub-bob");
    assert_eq!(approved[0].details["via"], "slack");
    assert_eq!(approved[0].details["slack_user_id"], "UBOB");

    // A double click (or Slack's retry of the same payload) approves once.
    let again = chrono::Utc::now().timestamp();
    let again_signature = peer.sign(SECRET, again, &body).await?;
    assert_eq!(
        post(&w, &body, Some(again), Some(&again_signature)).await?,
        StatusCode::OK
    );
    let answers = wait_told(&peer, 3).await?;
    assert!(!answers[2].contains("You approved"), "{answers:?}");
    assert_eq!(w.audit_events("request.approved").await?.len(), 1);
    let lookups: Vec<Value> = peer
        .calls()
        .await?
        .into_iter()
        .filter(|c| c["method"] == "users.info")
        .collect();
    assert!(
        lookups.iter().all(|c| c["body"]["user"].is_string()),
        "{lookups:?}"
    );
    let _ = lookups.first().context("users.info was asked")?;
    Ok(())
}

/// A signed `POST /slack/interactions` of `interaction`, as Slack sends it now.
async fn send(w: &World, peer: &SlackPeer, interaction: &Value) -> Result<reqwest::Response> {
    peer.post_signed(&w.server.listen_url(), SECRET, interaction)
        .await
}

fn deny_submission(member: &str, request: &str, reason: &str) -> Value {
    json!({
        "type": "view_submission",
        "user": {"id": member},
        "view": {
            "callback_id": "deny",
            "private_metadata": request,
            "state": {"values": {"reason": {"reason": {"type": "plain_text_input", "value": reason}}}},
        },
    })
}

#[tokio::test]
async fn deny_from_slack_asks_why_in_a_modal_and_records_it() -> Result<()> {
    let peer = SlackPeer::start().await?;
    let w = slack_world(&peer).await?;
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?
        .to_string();

    // The Deny button opens the modal for this request, with the click's trigger.
    let click = json!({
        "type": "block_actions",
        "user": {"id": "UBOB"},
        "trigger_id": "1337.42.abcd",
        "actions": [{"action_id": "deny", "value": id}],
        "response_url": peer.response_url("T1/deny"),
    });
    assert_eq!(send(&w, &peer, &click).await?.status(), StatusCode::OK);
    let opened: Vec<Value> = peer
        .calls()
        .await?
        .into_iter()
        .filter(|c| c["method"] == "views.open")
        .collect();
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0]["body"]["trigger_id"], "1337.42.abcd");
    assert_eq!(opened[0]["body"]["view"]["private_metadata"], id.as_str());

    // No reason: the modal stays open and says so; nothing changes.
    let blank = send(&w, &peer, &deny_submission("UBOB", &id, "  ")).await?;
    assert_eq!(blank.status(), StatusCode::OK);
    let answer: Value = blank.json().await?;
    assert_eq!(answer["response_action"], "errors");
    assert!(answer["errors"]["reason"].is_string(), "{answer}");
    // Alice may not deny her own request either: the refusal shows in the modal.
    let own = send(
        &w,
        &peer,
        &deny_submission("UALICE", &id, "changed my mind"),
    )
    .await?;
    let answer: Value = own.json().await?;
    assert_eq!(answer["response_action"], "errors", "{answer}");
    assert_eq!(
        w.request(id.parse()?).await?.request.state.name().as_str(),
        "pending"
    );

    // Bob's reason denies it; an empty 200 closes the modal.
    let denied = send(
        &w,
        &peer,
        &deny_submission("UBOB", &id, "not during the freeze"),
    )
    .await?;
    assert_eq!(denied.status(), StatusCode::OK);
    assert!(denied.text().await?.is_empty());
    let record = w.request(id.parse()?).await?;
    assert_eq!(record.request.state.name().as_str(), "denied");
    let events = w.audit_events("request.denied").await?;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor, "sub-bob");
    assert_eq!(events[0].details["comment"], "not during the freeze");
    assert_eq!(events[0].details["via"], "slack");
    assert_eq!(events[0].details["slack_user_id"], "UBOB");
    assert!(!w.has_assignment("alice", "JitSsm").await?);
    Ok(())
}
