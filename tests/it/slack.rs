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

/// The `[slack]` section of a server pointed at the Slack peer's `api`, with `extra` keys:
/// HTTP interactions, the clicker known by the email Slack has for them.
fn slack_section(api: &str, extra: &str) -> String {
    format!(
        "[slack]\nmode = \"http\"\nuser_match = \"email\"\nsigning_secret = \"{SECRET}\"\n\
         bot_token = \"{SLACK_BOT_TOKEN}\"\napi_base_url = \"{api}\"\n{extra}"
    )
}

/// A server with `[slack]` pointing at `peer`, where alice and bob have signed in once
/// (so jitgate knows their emails) and are Slack members UALICE and UBOB.
async fn slack_world(peer: &SlackPeer) -> Result<World> {
    let api = peer.api_url();
    let w = World::start_with_sign_in(Backend::Sqlite, |c| {
        c.profile(prod_profile()).raw(&slack_section(&api, ""))
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

/// A second server on `w`'s config and database (Postgres), on another port.
pub(crate) async fn second_replica(w: &World) -> Result<crate::harness::ServerProcess> {
    let toml = w
        .config_toml
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("listen") {
                crate::harness::free_port().map(|p| format!("listen = \"127.0.0.1:{p}\""))
            } else {
                Ok(l.to_owned())
            }
        })
        .collect::<Result<Vec<_>>>()?
        .join("\n");
    crate::harness::ServerProcess::spawn(&toml).await
}

/// A Slack "Approve" click on `request` by `member`, answered through `response_url`.
pub(crate) fn approve_click(member: &str, request: &str, response_url: &str) -> Value {
    json!({
        "type": "block_actions",
        "user": {"id": member},
        "actions": [{"action_id": "approve", "value": request}],
        "response_url": response_url,
    })
}

/// The ephemeral answers the server sent to `response_url`s, oldest first.
pub(crate) async fn told(peer: &SlackPeer) -> Result<Vec<String>> {
    Ok(peer
        .calls()
        .await?
        .into_iter()
        .filter(|c| c["method"] == "response_url")
        .map(|c| c["body"]["text"].as_str().unwrap_or_default().to_owned())
        .collect())
}

pub(crate) async fn wait_told(peer: &SlackPeer, count: usize) -> Result<Vec<String>> {
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

pub(crate) fn deny_submission(member: &str, request: &str, reason: &str) -> Value {
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

/// The channel messages the peer holds, oldest first.
pub(crate) async fn messages_when(
    peer: &SlackPeer,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Result<Vec<Value>> {
    crate::harness::wait_for(
        what,
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let all = peer.messages().await?;
            Ok(done(&all).then_some(all))
        },
    )
    .await
}

/// The text of a message's latest version, blocks included.
pub(crate) fn latest(message: &Value) -> String {
    message["versions"]
        .as_array()
        .and_then(|v| v.last())
        .map(Value::to_string)
        .unwrap_or_default()
}

/// A new request is announced in its profile's channel with buttons and its approvals so
/// far; the same message is updated in place as it moves on (buttons gone once decided).
#[tokio::test]
async fn a_request_is_announced_and_its_message_follows_it() -> Result<()> {
    let peer = SlackPeer::start().await?;
    let api = peer.api_url();
    let two = crate::harness::ProfileSpec {
        approvals_required: 2,
        ..prod_profile()
    };
    let w = World::start_with_sign_in(Backend::Sqlite, |c| {
        c.profile(two)
            .raw(&slack_section(&api, "channel = \"#access\"\n"))
    })
    .await?;
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    let posted = messages_when(&peer, "the request to be announced", |m| m.len() == 1).await?;
    let message = &posted[0];
    assert_eq!(message["channel"], "CACCESS");
    let shown = latest(message);
    assert!(shown.contains("alice") && shown.contains("prod-web") && shown.contains("`app`"));
    assert!(shown.contains("0 of 2 approvals"), "{shown}");
    assert!(
        shown.contains(&format!("/requests/{id}")),
        "a link to its page"
    );
    assert!(
        shown.contains("\"action_id\":\"approve\"") && shown.contains("\"action_id\":\"deny\"")
    );

    w.approve_as("bob", id).await?;
    let moved = messages_when(&peer, "the message to show bob's approval", |m| {
        m.first()
            .is_some_and(|m| latest(m).contains("1 of 2 approvals: bob"))
    })
    .await?;
    assert_eq!(moved.len(), 1, "updated in place, not posted again");
    w.approve_as("carol", id).await?;
    let active = messages_when(&peer, "the message to show the grant active", |m| {
        m.first()
            .is_some_and(|m| latest(m).contains("Active until"))
    })
    .await?;
    assert_eq!(active.len(), 1);
    let shown = latest(&active[0]);
    assert!(shown.contains("approved by bob, carol"), "{shown}");
    assert!(
        !shown.contains("\"action_id\":\"approve\""),
        "nothing left to decide: {shown}"
    );
    assert_eq!(active[0]["ts"], message["ts"]);
    Ok(())
}

/// Slack down, then rate limiting: the web goes on, nothing is lost, and the message
/// that goes out afterwards shows where the request is by then, once.
#[tokio::test]
async fn slack_down_blocks_nothing_and_loses_nothing() -> Result<()> {
    let peer = SlackPeer::start().await?;
    let api = peer.api_url();
    let w = World::start_with_sign_in(Backend::Sqlite, |c| {
        c.profile(crate::harness::ProfileSpec {
            slack_channel: Some("C0PRODWEB".into()),
            ..prod_profile()
        })
        .raw(&slack_section(&api, ""))
    })
    .await?;
    // Slack failing with 500s, as in an incident.
    peer.faults(&json!({"outage": true, "outage_status": 500}))
        .await?;
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    w.approve_as("bob", id).await?;
    w.wait_state(
        id,
        jitgate_server::domain::StateName::Active,
        Duration::from_secs(30),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(peer.messages().await?.is_empty(), "Slack is down");
    // The admin sees that something is held back.
    let (carol, _) = w.session_of("carol").await?;
    let admin = carol
        .get(format!("{}/admin/requests", w.server.listen_url()))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        admin.contains("id=\"slack-behind\"") && admin.contains("1 Slack message(s)"),
        "{admin}"
    );
    // Back, but rate limiting the first calls: jitgate waits as told.
    peer.faults(&json!({"outage": false, "rate_limited": 2, "retry_after": 1}))
        .await?;
    let posted = messages_when(&peer, "the message once Slack is back", |m| !m.is_empty()).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let posted_later = peer.messages().await?;
    assert_eq!(posted_later.len(), 1, "posted once: {posted_later:?}");
    assert_eq!(posted[0]["channel"], "C0PRODWEB", "the profile's channel");
    let shown = latest(&posted_later[0]);
    assert!(
        shown.contains("Active until"),
        "the present, not a stale step: {shown}"
    );
    Ok(())
}

/// Two replicas on one Postgres database, both delivering Slack messages: each request
/// is posted once (the outbox's lease), never twice.
#[tokio::test]
async fn two_replicas_post_each_message_once() -> Result<()> {
    let peer = SlackPeer::start().await?;
    let api = peer.api_url();
    let w = World::start_with_sign_in(Backend::Postgres, |c| {
        c.profile(prod_profile())
            .raw(&slack_section(&api, "channel = \"C0ACCESS\"\n"))
    })
    .await?;
    let _second = second_replica(&w).await?;
    let people = crate::world::DEVELOPERS;
    for who in people {
        w.submit(who, "prod-web", "app", Duration::from_secs(3600))
            .await?;
    }
    messages_when(&peer, "every request to be announced", |m| {
        m.len() >= people.len()
    })
    .await?;
    // Time for a second post of any of them, had one been claimed twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let posts = peer
        .calls()
        .await?
        .into_iter()
        .filter(|c| c["method"] == "chat.postMessage")
        .count();
    assert_eq!(posts, people.len(), "one post per request");
    assert_eq!(peer.messages().await?.len(), people.len());
    Ok(())
}

/// The requester hears in a DM when their grant is active and when it ended (and that it
/// was approved, if that lasted), each once; someone Slack does not know gets none, and
/// nothing is retried for them.
#[tokio::test]
async fn the_requester_gets_a_dm_at_each_step() -> Result<()> {
    let peer = SlackPeer::start().await?;
    let w = slack_world(&peer).await?;
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    w.approve_as("bob", id).await?;
    w.wait_state(
        id,
        jitgate_server::domain::StateName::Active,
        Duration::from_secs(30),
    )
    .await?;
    let dms = |all: &[Value]| -> Vec<String> {
        all.iter()
            .filter(|m| m["channel"] == "DUALICE")
            .map(latest)
            .collect()
    };
    messages_when(&peer, "alice's DM that access is active", |m| {
        dms(m).iter().any(|d| d.contains("is active until"))
    })
    .await?;
    w.revoke_as("bob", id).await?;
    let all = messages_when(&peer, "alice's DM that it ended", |m| {
        dms(m).iter().any(|d| d.contains("was ended early by bob"))
    })
    .await?;
    let said = dms(&all);
    // Approved and active may come in the same second: the approval's DM is skipped when
    // the grant is active by the time it goes out (the active one says more).
    let (approved, rest): (Vec<&String>, Vec<&String>) =
        said.iter().partition(|d| d.contains("was approved by bob"));
    assert!(approved.len() <= 1, "{said:?}");
    assert_eq!(rest.len(), 2, "{said:?}");
    assert!(
        rest[0].contains("is active until") && rest[0].contains("jitgate ssh"),
        "{said:?}"
    );
    assert!(rest[1].contains("was ended early by bob"), "{said:?}");
    assert!(said.iter().all(|m| m.contains(&format!("/requests/{id}"))));

    // dave signed in, but no Slack member has his email: no DM, no retry.
    w.session_of("dave").await?;
    let other = w
        .submit("dave", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    w.approve_as("bob", other).await?;
    w.wait_state(
        other,
        jitgate_server::domain::StateName::Active,
        Duration::from_secs(30),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let lookups = peer
        .calls()
        .await?
        .into_iter()
        .filter(|c| {
            c["method"] == "users.lookupByEmail" && c["body"]["email"] == "dave@example.com"
        })
        .count();
    assert_eq!(
        lookups, 2,
        "one look-up per DM (approved, active), none again"
    );
    assert_eq!(
        dms(&peer.messages().await?).len(),
        said.len(),
        "none for dave"
    );
    Ok(())
}

/// A grant nearing its end (within the default 10 minutes) tells its requester once, with
/// how to extend it.
#[tokio::test]
async fn the_requester_is_told_before_the_grant_ends() -> Result<()> {
    let peer = SlackPeer::start().await?;
    let w = slack_world(&peer).await?;
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    w.approve_as("bob", id).await?;
    w.wait_state(
        id,
        jitgate_server::domain::StateName::Active,
        Duration::from_secs(30),
    )
    .await?;
    // Five minutes left, as if it had run 55 of its 60.
    let ends = chrono::Utc::now() + chrono::TimeDelta::minutes(5);
    let mut tx = w.db.begin().await?;
    let mut stored = jitgate_server::store::requests::lock(&mut tx, id)
        .await?
        .context("request vanished")?;
    let jitgate_server::domain::RequestState::Active { activated_at, .. } = stored.request.state
    else {
        anyhow::bail!("not active");
    };
    stored.request.state = jitgate_server::domain::RequestState::Active {
        activated_at,
        expires_at: ends,
    };
    jitgate_server::store::requests::save(&mut tx, &stored, chrono::Utc::now()).await?;
    tx.commit().await?;
    let expiring = |all: &[Value]| -> Vec<String> {
        all.iter()
            .filter(|m| m["channel"] == "DUALICE")
            .map(latest)
            .filter(|d| d.contains(" ends at "))
            .collect()
    };
    let all = messages_when(&peer, "alice's DM that her access ends soon", |m| {
        !expiring(m).is_empty()
    })
    .await?;
    let told = expiring(&all);
    assert!(
        told[0].contains(&format!("jitgate extend {id} --for 1h")),
        "{told:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(expiring(&peer.messages().await?).len(), 1, "told once");

    // Extended by two minutes: still within the lead time, so she is told again, of the
    // new end.
    w.extend_as("alice", id, Duration::from_secs(120)).await?;
    w.approve_as("bob", id).await?;
    let all = messages_when(&peer, "alice's DM of the new end", |m| {
        expiring(m).len() >= 2
    })
    .await?;
    let told = expiring(&all);
    let new_end = ends + chrono::TimeDelta::minutes(2);
    assert!(
        told[1].contains(&new_end.format("%H:%M").to_string()),
        "the new end, {new_end}: {told:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(expiring(&peer.messages().await?).len(), 2, "once per end");
    Ok(())
}

/// A request nobody decides is re-announced in its message's thread after
/// `remind_after`, then posted to the escalation channel after twice that; a decided one
/// is not.
#[tokio::test]
async fn an_undecided_request_is_reminded_then_escalated() -> Result<()> {
    let peer = SlackPeer::start().await?;
    let api = peer.api_url();
    let w = World::start_with_sign_in(Backend::Sqlite, |c| {
        c.profile(prod_profile()).raw(&slack_section(
            &api,
            "channel = \"C0ACCESS\"\nremind_after = \"1m\"\nescalation_channel = \"C0ONCALL\"\n",
        ))
    })
    .await?;
    let waiting = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    let decided = w
        .submit("dave", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    w.approve_as("bob", decided).await?;
    let announced = messages_when(&peer, "both requests announced", |m| m.len() >= 2).await?;
    let message_of = |id: &str| {
        announced
            .iter()
            .find(|m| latest(m).contains(id))
            .and_then(|m| m["ts"].as_str())
            .map(str::to_owned)
    };
    let ts = message_of(&waiting.to_string()).context("no message for the waiting request")?;
    let all = crate::harness::wait_for(
        "the reminder, then the escalation",
        Duration::from_secs(180),
        Duration::from_millis(500),
        || async {
            let all = peer.messages().await?;
            Ok(all
                .iter()
                .any(|m| m["channel"] == "C0ONCALL")
                .then_some(all))
        },
    )
    .await?;
    let reminders: Vec<&Value> = all
        .iter()
        .filter(|m| m.get("thread_ts").is_some())
        .collect();
    assert_eq!(reminders.len(), 1, "one reminder: {reminders:?}");
    assert_eq!(reminders[0]["thread_ts"], ts.as_str());
    assert_eq!(reminders[0]["reply_broadcast"], true);
    assert!(latest(reminders[0]).contains("Still waiting after 1m"));
    let escalated: Vec<String> = all
        .iter()
        .filter(|m| m["channel"] == "C0ONCALL")
        .map(latest)
        .collect();
    assert_eq!(escalated.len(), 1, "{escalated:?}");
    assert!(escalated[0].contains("Nobody has decided") && escalated[0].contains("for 2m"));
    assert!(escalated[0].contains(&format!("/requests/{waiting}")));
    assert!(
        !escalated[0].contains(&decided.to_string()),
        "the decided request is neither reminded nor escalated"
    );
    Ok(())
}

/// Slack down for ten minutes, its Web API and its WebSocket, as users would meet it:
/// approvals go on meanwhile; once Slack is back each request's message goes out once,
/// showing where the request is by then, and Socket Mode is connected again, so a click
/// lands.
#[tokio::test]
async fn ten_minutes_of_slack_down_lose_nothing_and_block_nothing() -> Result<()> {
    let peer = SlackPeer::start().await?;
    let section = format!(
        "[slack]\nuser_match = \"email\"\napp_token = \"{}\"\nbot_token = \"{SLACK_BOT_TOKEN}\"\n\
         api_base_url = \"{}\"\nchannel = \"C0ACCESS\"\n",
        crate::harness::SLACK_APP_TOKEN,
        peer.api_url()
    );
    let w = World::start_with_sign_in(Backend::Sqlite, |c| c.profile(prod_profile()).raw(&section))
        .await?;
    w.session_of("bob").await?;
    peer.add_users(&[("UBOB", "bob@example.com")]).await?;
    peer.wait_sockets(1, 1).await?;

    peer.faults(&json!({"outage": true})).await?;
    peer.disconnect(true).await?;
    let granted = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    w.approve_as("bob", granted).await?;
    let waiting = w
        .submit("dave", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    w.wait_state(
        granted,
        jitgate_server::domain::StateName::Active,
        Duration::from_secs(30),
    )
    .await?;
    let down = tokio::time::Instant::now();
    while down.elapsed() < Duration::from_secs(600) {
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(peer.messages().await?.is_empty(), "Slack is down");
        assert_eq!(
            peer.sockets().await?.0,
            0,
            "no connection while Slack is down"
        );
    }

    peer.faults(&json!({"outage": false})).await?;
    // Within a minute (the back-off's ceiling) and a pass.
    let channel = |all: &[Value]| -> Vec<Value> {
        all.iter()
            .filter(|m| m["channel"] == "C0ACCESS")
            .cloned()
            .collect()
    };
    let posted = crate::harness::wait_for(
        "both messages once Slack is back",
        Duration::from_secs(120),
        Duration::from_millis(250),
        || async {
            let all = channel(&peer.messages().await?);
            Ok((all.len() >= 2).then_some(all))
        },
    )
    .await?;
    let shown: Vec<String> = posted.iter().map(latest).collect();
    assert!(
        shown.iter().any(|m| m.contains("Active until")),
        "the granted request as it is now: {shown:?}"
    );
    assert!(
        shown
            .iter()
            .any(|m| m.contains("\"action_id\":\"approve\"") && m.contains("0 of 1 approvals")),
        "the waiting one, still to decide: {shown:?}"
    );
    crate::harness::wait_for(
        "Socket Mode connected again",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || async { Ok((peer.sockets().await?.0 == 1).then_some(())) },
    )
    .await?;
    let click = approve_click(
        "UBOB",
        &waiting.to_string(),
        &peer.response_url("after-outage/bob"),
    );
    assert_eq!(peer.push(&click, false).await?["acked"], true);
    let answers = wait_told(&peer, 1).await?;
    assert!(answers[0].contains("You approved"), "{answers:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let posts = peer
        .calls()
        .await?
        .into_iter()
        .filter(|c| c["method"] == "chat.postMessage" && c["body"]["channel"] == "C0ACCESS")
        .count();
    assert_eq!(posts, 2, "each request posted once, not once per change");
    Ok(())
}
