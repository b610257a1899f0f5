//! Sending requesters their Slack DMs from the outbox (store/slack_dms.rs): that their
//! grant is active (and until when, and how to connect), ended, denied, failed, lapsed,
//! or approved while it is being set up. Each is owed in the transaction of the change,
//! claimed with a lease, retried like the channel messages (scheduler/slack.rs) and sent
//! once. The requester is found in Slack by the email jitgate has for them
//! (`users.lookupByEmail`); no member with it, and the DM is recorded as not sent. A DM
//! whose step the request has moved past is skipped: the later one says what matters.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use tokio::sync::watch;

use super::lease::{Heartbeat, lease_until};
use super::slack::backoff;
use super::{LeaseHolder, stopping};
use crate::aws::IdentityCenter;
use crate::broker::Broker;
use crate::slack::{SlackApi, SlackError, messages};
use crate::store::slack_dms::{self, Dm};
use crate::store::{requests, slack_posts, users};

/// Delivers the requesters' DMs (store/slack_dms.rs), like the channel messages: claimed
/// with a lease, retried with back-off, each sent once.
pub(super) async fn run<I: IdentityCenter>(
    broker: Broker<I>,
    slack: Arc<SlackApi>,
    holder: LeaseHolder,
    mut stopped: watch::Receiver<bool>,
) {
    let poll = broker.config().scheduler.poll_interval.get();
    let lease = broker.config().scheduler.lease.get();
    loop {
        if *stopped.borrow() {
            break;
        }
        let now = broker.now();
        if let Some(lead) = broker
            .config()
            .slack
            .as_ref()
            .map(|s| s.expiring_soon.get())
            && let Err(e) = slack_dms::owe_expiring(broker.db(), now, lead).await
        {
            tracing::error!(error = %e, "looking for grants about to end failed");
        }
        if let Some(slack_config) = broker.config().slack.as_ref()
            && let Some(after) = &slack_config.remind_after
            && let Err(e) = slack_dms::owe_reminders(
                broker.db(),
                now,
                after.get(),
                slack_config.escalation_channel.is_some(),
            )
            .await
        {
            tracing::error!(error = %e, "looking for requests to remind approvers of failed");
        }
        let token = holder.next_token();
        // One at a time: each takes up to three Slack calls under its lease.
        match slack_dms::claim(broker.db(), &token, now, lease_until(now, lease), 1).await {
            Ok(dms) if !dms.is_empty() => {
                for dm in dms {
                    send_dm(&broker, &slack, &token, dm).await;
                }
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "claiming Slack DMs failed"),
        }
        let wait = match slack_dms::next_due(broker.db(), broker.now()).await {
            Ok(Some(due)) => (due - broker.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(poll)
                .max(Duration::from_millis(50)),
            _ => poll,
        };
        tokio::select! {
            _ = broker.wakers().slack_dms.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stopping(&mut stopped) => break,
        }
    }
}

/// Sends one DM: the requester found in Slack by the email jitgate has for them.
async fn send_dm<I: IdentityCenter>(broker: &Broker<I>, slack: &SlackApi, owner: &str, dm: Dm) {
    let db = broker.db();
    let id = dm.request_id;
    let _heartbeat = Heartbeat::start(
        format!("Slack DM {id}"),
        broker.config().scheduler.lease.get(),
        broker.clock(),
        {
            let (db, owner) = (db.clone(), owner.to_owned());
            move |until| {
                let (db, owner) = (db.clone(), owner.clone());
                async move { slack_dms::renew(&db, id, &owner, until).await }
            }
        },
    );
    let record = match requests::get(db, id).await {
        Ok(Some(record)) => record,
        Ok(None) => {
            let _ = slack_dms::done(db, &dm, owner, broker.now(), Some("no such request")).await;
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, request = %id, "reading a request for its Slack DM failed");
            return;
        }
    };
    if dm.event == "remind" || dm.event == "escalate" {
        let sent = remind(broker, slack, &dm, &record).await;
        return record_outcome(broker, owner, &dm, sent).await;
    }
    let requester = record.request.requester.as_str();
    let email = match users::get(db, requester).await {
        Ok(user) => user.and_then(|u| u.email),
        Err(e) => {
            tracing::error!(error = %e, request = %id, "reading the requester for a Slack DM failed");
            return;
        }
    };
    let Some(email) = email else {
        let _ = slack_dms::done(
            db,
            &dm,
            owner,
            broker.now(),
            Some("jitgate has no email for the requester"),
        )
        .await;
        return;
    };
    let sent = async {
        let Some(member) = slack.member_by_email(&email).await? else {
            return Ok(Some("no Slack member has the requester's email"));
        };
        let channel = slack.open_dm(&member).await?;
        let mut names = messages::Names::new();
        for person in messages::people(&record) {
            if let Ok(Some(user)) = users::get(db, person.as_str()).await {
                names.insert(person.as_str().to_owned(), user.user_name);
            }
        }
        let page = format!(
            "{}/requests/{id}",
            broker.config().server.public_url.trim_end_matches('/')
        );
        let Some(text) = messages::dm_text(&record, &dm.event, &page, &names) else {
            return Ok(Some("superseded: the request moved on before it was sent"));
        };
        let text = messages::fit(text);
        let blocks =
            serde_json::json!([{"type": "section", "text": {"type": "mrkdwn", "text": text}}]);
        slack.post_message(&channel, &text, &blocks).await?;
        Ok::<_, SlackError>(None)
    }
    .await;
    record_outcome(broker, owner, &dm, sent).await;
}

/// Records a DM's (or reminder's) outcome: sent, not to be sent, or to be retried.
async fn record_outcome<I: IdentityCenter>(
    broker: &Broker<I>,
    owner: &str,
    dm: &Dm,
    sent: Result<Option<&'static str>, SlackError>,
) {
    let db = broker.db();
    let id = dm.request_id;
    let outcome = match sent {
        Ok(why_not) => slack_dms::done(db, dm, owner, broker.now(), why_not).await,
        Err(SlackError::Refused(why)) if super::slack::is_permanent(&why) => {
            tracing::error!(request = %id, event = %dm.event, error = %why, "Slack refused the DM; not retrying");
            slack_dms::done(db, dm, owner, broker.now(), Some(&why)).await
        }
        Err(e) => {
            let wait = match &e {
                SlackError::RateLimited(wait) => *wait,
                _ => backoff(dm.attempts),
            };
            tracing::warn!(error = %e, request = %id, event = %dm.event, attempts = dm.attempts + 1, "Slack DM not delivered; retrying");
            let retry_at =
                broker.now() + TimeDelta::from_std(wait).unwrap_or(TimeDelta::seconds(60));
            slack_dms::failed(db, dm, owner, &e.to_string(), retry_at).await
        }
    };
    if let Err(e) = outcome {
        tracing::error!(error = %e, request = %id, "recording a Slack DM failed; its lease runs out");
    }
}

/// A reminder in the request's thread, or its escalation: only while nobody has decided.
async fn remind<I: IdentityCenter>(
    broker: &Broker<I>,
    slack: &SlackApi,
    dm: &Dm,
    record: &crate::domain::RequestRecord,
) -> Result<Option<&'static str>, SlackError> {
    if !matches!(record.request.state, crate::domain::RequestState::Pending) {
        return Ok(Some("decided before the reminder went out"));
    }
    let config = broker.config();
    let Some(slack_config) = config.slack.as_ref() else {
        return Ok(Some("Slack is not configured"));
    };
    let Some(after) = slack_config.remind_after.as_ref().map(|a| a.get()) else {
        return Ok(Some("reminders are off"));
    };
    let db = broker.db();
    let id = record.request.id;
    let profile = config.profile(&record.request.profile);
    let required = profile.map_or(1, |p| p.approvals_required);
    let mut names = messages::Names::new();
    for person in messages::people(record) {
        if let Ok(Some(user)) = users::get(db, person.as_str()).await {
            names.insert(person.as_str().to_owned(), user.user_name);
        }
    }
    let page = format!(
        "{}/requests/{id}",
        config.server.public_url.trim_end_matches('/')
    );
    let escalate = dm.event == "escalate";
    let waited = if escalate { after * 2 } else { after };
    let text = messages::reminder_text(record, required, &page, &names, waited, escalate);
    let blocks = serde_json::json!([{"type": "section", "text": {"type": "mrkdwn", "text": text}}]);
    if escalate {
        let Some(channel) = &slack_config.escalation_channel else {
            return Ok(Some("no escalation channel"));
        };
        slack.post_message(channel, &text, &blocks).await?;
        return Ok(None);
    }
    let Ok(Some((channel, ts))) = slack_posts::message_of(db, id).await else {
        return Ok(Some("the request has no channel message to remind in"));
    };
    let at = crate::slack::api::MessageRef { channel, ts };
    slack.post_broadcast_reply(&at, &text, &blocks).await?;
    Ok(None)
}
