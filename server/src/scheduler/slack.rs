//! Delivering each request's Slack channel message from the outbox
//! (store/slack_posts.rs). Each change of a request owes its message an update in the
//! change's own transaction; this task claims owed messages with a lease (replicas never
//! take the same one), renders the request as it is now (slack/messages.rs), posts it to
//! the profile's channel (`slack_channel`, else `[slack] channel`) or, once posted,
//! updates it in place, and records the change Slack shows. Slack being slow or down
//! blocks nothing: the use cases only wrote a row; a failure is retried with back-off
//! (Slack's `Retry-After` on 429), logged, and counted for readiness, and a message
//! owed several changes during an outage is sent once, showing the latest.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::lease::{Heartbeat, lease_until};
use super::{LeaseHolder, stopping};
use crate::aws::IdentityCenter;
use crate::broker::Broker;
use crate::slack::api::MessageRef;
use crate::slack::{SlackApi, SlackError, messages};
use crate::store::slack_posts::{self, Post};
use crate::store::{requests, users};

/// Messages sent at once by one process (Slack allows about one post per second per
/// channel; bursts beyond that get 429 and wait as told).
const CONCURRENT: usize = 4;
/// Back-off ceiling between attempts while Slack fails.
const MAX_RETRY: Duration = Duration::from_secs(60);

pub(super) async fn run<I: IdentityCenter>(
    broker: Broker<I>,
    slack: Arc<SlackApi>,
    holder: LeaseHolder,
    mut stopped: watch::Receiver<bool>,
) {
    let poll = broker.config().scheduler.poll_interval.get();
    let lease = broker.config().scheduler.lease.get();
    let mut running: JoinSet<()> = JoinSet::new();
    loop {
        if *stopped.borrow() {
            break;
        }
        let free = CONCURRENT.saturating_sub(running.len());
        if free > 0 {
            let now = broker.now();
            let token = holder.next_token();
            match slack_posts::claim(
                broker.db(),
                &token,
                now,
                lease_until(now, lease),
                free as i64,
            )
            .await
            {
                Ok(posts) if !posts.is_empty() => {
                    for post in posts {
                        running.spawn(deliver(broker.clone(), slack.clone(), token.clone(), post));
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "claiming Slack messages failed"),
            }
        }
        let wait = match slack_posts::next_due(broker.db(), broker.now()).await {
            Ok(Some(due)) if free > 0 => (due - broker.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(poll)
                .max(Duration::from_millis(50)),
            _ => poll,
        };
        tokio::select! {
            _ = broker.wakers().slack.notified() => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stopping(&mut stopped) => break,
        }
    }
    while running.join_next().await.is_some() {}
}

/// Posts or updates one claimed message.
async fn deliver<I: IdentityCenter>(
    broker: Broker<I>,
    slack: Arc<SlackApi>,
    owner: String,
    post: Post,
) {
    let id = post.request_id;
    let db = broker.db();
    let _heartbeat = Heartbeat::start(
        format!("Slack message {id}"),
        broker.config().scheduler.lease.get(),
        broker.clock(),
        {
            let (db, owner) = (db.clone(), owner.clone());
            move |until| {
                let (db, owner) = (db.clone(), owner.clone());
                async move { slack_posts::renew(&db, id, &owner, until).await }
            }
        },
    );
    let record = match requests::get(db, id).await {
        Ok(Some(record)) => record,
        Ok(None) => {
            // Nothing to show; never owed again unless the request reappears.
            let _ = slack_posts::nothing_to_post(db, &post, &owner).await;
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, request = %id, "reading a request for its Slack message failed");
            return;
        }
    };
    let config = broker.config();
    let profile = config.profile(&record.request.profile);
    let channel = post.channel.clone().or_else(|| {
        profile
            .and_then(|p| p.slack_channel.clone())
            .or_else(|| config.slack.as_ref().and_then(|s| s.channel.clone()))
    });
    let Some(channel) = channel else {
        let _ = slack_posts::nothing_to_post(db, &post, &owner).await;
        return;
    };
    let required = profile.map_or(1, |p| p.approvals_required);
    let step_up = profile.is_some_and(|p| p.step_up);
    let page = format!(
        "{}/requests/{id}",
        config.server.public_url.trim_end_matches('/')
    );
    let mut names = messages::Names::new();
    for id in messages::people(&record) {
        if let Ok(Some(user)) = users::get(db, id.as_str()).await {
            names.insert(id.as_str().to_owned(), user.user_name);
        }
    }
    let (text, blocks) = messages::request_message(&record, required, step_up, &page, &names);
    let sent = match &post.ts {
        Some(ts) => {
            let at = MessageRef {
                channel: channel.clone(),
                ts: ts.clone(),
            };
            match slack.update_message(&at, &text, &blocks).await {
                // Deleted in Slack: post it again rather than lose the news.
                Err(SlackError::Refused(why)) if why == "message_not_found" => {
                    slack.post_message(&channel, &text, &blocks).await
                }
                other => other,
            }
        }
        None => slack.post_message(&channel, &text, &blocks).await,
    };
    let outcome = match sent {
        Ok(at) => slack_posts::shown(db, &post, &owner, &at.channel, &at.ts)
            .await
            .map(|_| ()),
        Err(SlackError::Refused(why)) if is_permanent(&why) => {
            // Retrying cannot help (a channel the app is not in, blocks Slack rejects):
            // recorded for the admin and the log, and given up until the next change.
            tracing::error!(request = %id, error = %why, channel = %channel, "Slack refused the message; not retrying");
            slack_posts::failed(
                db,
                &post,
                &owner,
                &why,
                broker.now() + TimeDelta::days(3650),
            )
            .await
        }
        Err(e) => {
            let wait = match &e {
                SlackError::RateLimited(wait) => *wait,
                _ => backoff(post.attempts),
            };
            tracing::warn!(
                error = %e,
                request = %id,
                attempts = post.attempts + 1,
                retry_in_ms = wait.as_millis() as u64,
                "Slack message not delivered; retrying"
            );
            let retry_at =
                broker.now() + TimeDelta::from_std(wait).unwrap_or(TimeDelta::seconds(60));
            slack_posts::failed(db, &post, &owner, &e.to_string(), retry_at).await
        }
    };
    if let Err(e) = outcome {
        tracing::error!(error = %e, request = %id, "recording a Slack delivery failed; its lease runs out");
    }
}

/// Slack's answers that no retry changes.
pub(super) fn is_permanent(error: &str) -> bool {
    matches!(
        error,
        "channel_not_found"
            | "not_in_channel"
            | "is_archived"
            | "invalid_blocks"
            | "msg_too_long"
            | "invalid_auth"
            | "account_inactive"
            | "missing_scope"
            | "cant_update_message"
    )
}

/// 1 s, 2 s, 4 s ... up to [`MAX_RETRY`].
pub(super) fn backoff(attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 6)).unwrap_or(6);
    Duration::from_secs(1u64 << exp).min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_minute() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(50), MAX_RETRY);
    }
}
