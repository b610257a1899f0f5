//! Linking a Slack account on `/settings/slack` (`[slack] user_match = "link"`, the
//! default): a click from a Slack member nobody linked is refused; a person links their
//! account by typing back the code jitgate DMs that member (through the Slack peer), and
//! only then do their clicks count as theirs. Offering, linking and unlinking are audited.

use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::StatusCode;

use crate::harness::{SLACK_APP_TOKEN, SLACK_BOT_TOKEN, SlackPeer};
use crate::slack::{approve_click, wait_told};
use crate::world::{Backend, World, prod_profile};

/// The 8-digit code in the latest DM to `channel`.
async fn code_sent_to(peer: &SlackPeer, channel: &str) -> Result<String> {
    let messages = peer.messages().await?;
    let dm = messages
        .iter()
        .rev()
        .find(|m| m["channel"] == channel)
        .with_context(|| format!("no DM to {channel}: {messages:?}"))?;
    let text = dm["versions"][0]["text"].as_str().unwrap_or_default();
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 8)
        .map(str::to_owned)
        .with_context(|| format!("no code in {text}"))
}

#[tokio::test]
async fn a_slack_account_counts_only_once_linked_by_its_code() -> Result<()> {
    linking(Backend::Sqlite).await
}

#[tokio::test]
async fn linking_works_the_same_on_postgres() -> Result<()> {
    linking(Backend::Postgres).await
}

async fn linking(backend: Backend) -> Result<()> {
    let peer = SlackPeer::start().await?;
    let section = format!(
        "[slack]\napp_token = \"{SLACK_APP_TOKEN}\"\nbot_token = \"{SLACK_BOT_TOKEN}\"\n\
         api_base_url = \"{}\"\n",
        peer.api_url()
    );
    let w = World::start_with_sign_in(backend, |c| c.profile(prod_profile()).raw(&section)).await?;
    peer.add_users(&[("UALICE", "alice@example.com"), ("UBOB", "bob@example.com")])
        .await?;
    let (bob, csrf) = w.session_of("bob").await?;
    let base = w.server.listen_url();
    peer.wait_sockets(1, 1).await?;
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?;

    // Not linked: the email Slack has for bob is not enough by default.
    let click = approve_click("UBOB", &id.to_string(), &peer.response_url("L/bob"));
    assert_eq!(peer.push(&click, false).await?["acked"], true);
    let answers = wait_told(&peer, 1).await?;
    assert!(answers[0].contains("/settings/slack"), "{answers:?}");
    assert!(w.audit_events("request.approved").await?.is_empty());

    // Without the CSRF token nothing is sent.
    let forged = bob
        .post(format!("{base}/settings/slack/link"))
        .form(&[("who", "UBOB")])
        .send()
        .await?;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(peer.messages().await?.is_empty());
    // Not a member id nor an email: said so.
    let junk = bob
        .post(format!("{base}/settings/slack/link"))
        .form(&[("csrf", csrf.as_str()), ("who", "bob")])
        .send()
        .await?;
    assert_eq!(junk.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(junk.text().await?.contains("member id"));

    // Bob names himself by email; the code goes to that member's DMs.
    let asked = bob
        .post(format!("{base}/settings/slack/link"))
        .form(&[("csrf", csrf.as_str()), ("who", "bob@example.com")])
        .send()
        .await?;
    assert_eq!(
        asked.status(),
        StatusCode::SEE_OTHER,
        "{}",
        asked.text().await?
    );
    let code = code_sent_to(&peer, "DUBOB").await?;
    let page = bob
        .get(format!("{base}/settings/slack"))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        page.contains("sent a code to Slack member <code>UBOB</code>"),
        "{page}"
    );
    let wrong = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    let refused = bob
        .post(format!("{base}/settings/slack/confirm"))
        .form(&[("csrf", csrf.as_str()), ("code", wrong)])
        .send()
        .await?;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await?.contains("4 tries left"));
    let linked = bob
        .post(format!("{base}/settings/slack/confirm"))
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await?;
    assert_eq!(linked.status(), StatusCode::SEE_OTHER);
    let page = bob
        .get(format!("{base}/settings/slack"))
        .send()
        .await?
        .text()
        .await?;
    assert!(page.contains("id=\"slack-linked\""), "{page}");
    let events = w.audit_events("auth.slack_linked").await?;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor, "sub-bob");
    assert_eq!(events[0].details["slack_user_id"], "UBOB");
    assert_eq!(w.audit_events("auth.slack_link_offered").await?.len(), 1);

    // Now bob's click is his.
    assert_eq!(peer.push(&click, false).await?["acked"], true);
    let answers = wait_told(&peer, 2).await?;
    assert!(answers[1].contains("You approved"), "{answers:?}");
    let approved = w.audit_events("request.approved").await?;
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0].actor, "sub-bob");

    // Unlinked, audited: the next click is refused again.
    let unlinked = bob
        .post(format!("{base}/settings/slack/unlink"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await?;
    assert_eq!(unlinked.status(), StatusCode::SEE_OTHER);
    assert_eq!(w.audit_events("auth.slack_unlinked").await?.len(), 1);
    let other = w
        .submit("dave", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    let click = approve_click("UBOB", &other.to_string(), &peer.response_url("L/bob2"));
    assert_eq!(peer.push(&click, false).await?["acked"], true);
    let answers = wait_told(&peer, 3).await?;
    assert!(answers[2].contains("/settings/slack"), "{answers:?}");
    assert_eq!(w.audit_events("request.approved").await?.len(), 1);
    Ok(())
}
