//! Approving from Slack over Socket Mode, the default: the server opens its WebSocket
//! to the Slack peer (`apps.connections.open`, then the peer's `websockets` server), the
//! peer pushes interaction envelopes as Slack does, and each is acknowledged within
//! Slack's 3 seconds, applied once, and survives the connection being refreshed or cut.

use std::time::Duration;

use anyhow::Result;

use crate::harness::{SLACK_APP_TOKEN, SLACK_BOT_TOKEN, SlackPeer};
use crate::slack::{approve_click, deny_submission, wait_told};
use crate::world::{Backend, World, prod_profile};

/// `[slack]` in Socket Mode (no `mode`: it is the default) against `peer`.
fn socket_section(peer: &SlackPeer) -> String {
    format!(
        "[slack]\nuser_match = \"email\"\napp_token = \"{SLACK_APP_TOKEN}\"\n\
         bot_token = \"{SLACK_BOT_TOKEN}\"\napi_base_url = \"{}\"\n",
        peer.api_url()
    )
}

async fn socket_world(peer: &SlackPeer, backend: Backend) -> Result<World> {
    let section = socket_section(peer);
    let w = World::start_with_sign_in(backend, |c| c.profile(prod_profile()).raw(&section)).await?;
    w.session_of("alice").await?;
    w.session_of("bob").await?;
    peer.add_users(&[("UALICE", "alice@example.com"), ("UBOB", "bob@example.com")])
        .await?;
    Ok(w)
}

#[tokio::test]
async fn socket_mode_acks_in_time_applies_clicks_and_reconnects() -> Result<()> {
    let peer = SlackPeer::start().await?;
    let w = socket_world(&peer, Backend::Sqlite).await?;
    peer.wait_sockets(1, 1).await?;
    // Nothing listens for Slack over HTTP in Socket Mode.
    let http = reqwest::Client::new()
        .post(format!("{}/slack/interactions", w.server.listen_url()))
        .body("payload=%7B%7D")
        .send()
        .await?;
    assert_eq!(http.status(), reqwest::StatusCode::NOT_FOUND);

    // Bob's click arrives as an envelope: acknowledged within 3 s, then applied.
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    let pushed = peer
        .push(
            &approve_click("UBOB", &id.to_string(), &peer.response_url("S1/bob")),
            false,
        )
        .await?;
    assert_eq!(pushed["acked"], true, "{pushed}");
    assert_eq!(pushed["ack"]["envelope_id"], pushed["envelope_id"]);
    let answers = wait_told(&peer, 1).await?;
    assert!(answers[0].contains("You approved"), "{answers:?}");
    w.wait_assignment("alice", "JitSsm", true, Duration::from_secs(10))
        .await?;
    let approved = w.audit_events("request.approved").await?;
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0].details["via"], "slack");
    assert_eq!(approved[0].details["slack_user_id"], "UBOB");

    // The deny modal's submission is answered in the acknowledgement itself.
    let other = w
        .submit("dave", "prod-web", "app", Duration::from_secs(3600))
        .await?
        .to_string();
    let blank = peer
        .push(&deny_submission("UBOB", &other, " "), false)
        .await?;
    assert_eq!(blank["acked"], true, "{blank}");
    assert_eq!(blank["ack"]["payload"]["response_action"], "errors");

    // The connection cut without a word: the server opens another and goes on.
    peer.disconnect(true).await?;
    peer.wait_sockets(1, 2).await?;
    let denied = peer
        .push(&deny_submission("UBOB", &other, "not now"), false)
        .await?;
    assert_eq!(denied["acked"], true, "{denied}");
    assert!(denied["ack"].get("payload").is_none(), "{denied}");
    let record = w.request(other.parse()?).await?;
    assert_eq!(record.request.state.name().as_str(), "denied");

    // Slack's own `disconnect` (a refresh): a new connection at once.
    peer.disconnect(false).await?;
    peer.wait_sockets(1, 3).await?;
    let opens = peer
        .calls()
        .await?
        .into_iter()
        .filter(|c| c["method"] == "apps.connections.open")
        .count();
    assert_eq!(opens, 3, "one apps.connections.open per connection");
    Ok(())
}

/// Two replicas each hold a connection; an envelope Slack delivers to both (its retry
/// after a missed acknowledgement) approves once.
#[tokio::test]
async fn two_replicas_given_the_same_click_approve_once() -> Result<()> {
    let peer = SlackPeer::start().await?;
    let w = socket_world(&peer, Backend::Postgres).await?;
    let _second = crate::slack::second_replica(&w).await?;
    peer.wait_sockets(2, 2).await?;
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    let pushed = peer
        .push(
            &approve_click("UBOB", &id.to_string(), &peer.response_url("S2/bob")),
            true,
        )
        .await?;
    assert_eq!(pushed["acks"], 2, "both replicas acknowledge: {pushed}");
    let answers = wait_told(&peer, 2).await?;
    assert_eq!(
        answers
            .iter()
            .filter(|a| a.contains("You approved"))
            .count(),
        1,
        "{answers:?}"
    );
    w.wait_assignment("alice", "JitSsm", true, Duration::from_secs(10))
        .await?;
    assert_eq!(w.audit_events("request.approved").await?.len(), 1);
    Ok(())
}

/// A decision slower than Slack's 3 seconds (here Slack's own `users.info` is slow) is
/// acknowledged bare, so the modal closes; a refusal that comes after still reaches the
/// clicker, by DM.
#[tokio::test]
async fn a_refusal_after_the_ack_reaches_the_clicker_by_dm() -> Result<()> {
    let peer = SlackPeer::start().await?;
    let w = socket_world(&peer, Backend::Sqlite).await?;
    peer.wait_sockets(1, 1).await?;
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?
        .to_string();
    peer.faults(&serde_json::json!({"users_info_delay": 4}))
        .await?;
    let pushed = peer
        .push(&deny_submission("UALICE", &id, "changed my mind"), false)
        .await?;
    assert_eq!(pushed["acked"], true, "{pushed}");
    assert!(
        pushed["ack"].get("payload").is_none(),
        "acked bare: {pushed}"
    );
    let told = crate::harness::wait_for(
        "alice told by DM",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let dms: Vec<String> = peer
                .messages()
                .await?
                .iter()
                .filter(|m| m["channel"] == "DUALICE")
                .map(crate::slack::latest)
                .filter(|t| t.contains("not applied"))
                .collect();
            Ok((!dms.is_empty()).then_some(dms))
        },
    )
    .await?;
    assert!(told[0].contains("own"), "says why: {told:?}");
    assert_eq!(
        w.request(id.parse()?).await?.request.state.name().as_str(),
        "pending"
    );
    Ok(())
}
