//! Linking a person's Slack account to jitgate (`[slack] user_match = "link"`), as use
//! cases. The person names a Slack member on the web; jitgate sends that member a
//! one-time code in Slack, and the link is made only when the person types the code
//! back: so it proves they read that member's DMs, not just that they know an id.
//! Codes are stored as hashes, live [`CODE_LIFETIME`] and allow [`MAX_TRIES`] wrong
//! guesses, after which the person must wait for the lockout to pass. Offering,
//! linking and unlinking are each one transaction with its audit event.

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::credentials::secret_hash;
use super::error::AppError;
use super::ports::{PortFailure, Store, Transaction};
use crate::audit::{Action, NewEvent};
use crate::domain::{Actor, UserId};
pub use crate::domain::{PendingSlackLink, SlackLink};

/// How long a code may be typed back, and how long a lockout lasts.
pub const CODE_LIFETIME: TimeDelta = TimeDelta::minutes(10);
/// Wrong codes allowed per offer window.
pub const MAX_TRIES: i64 = 5;
/// The least time between two codes for one person: each is a DM to someone in Slack.
pub const RESEND_AFTER: TimeDelta = TimeDelta::seconds(30);

/// Where a person's link stands, for their settings page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlackLinkStatus {
    /// The link made, if any.
    pub linked: Option<SlackLink>,
    /// A code on its way, unexpired.
    pub pending: Option<PendingSlackLink>,
}

/// The Slack-link use cases over store `S`.
#[derive(Clone)]
pub struct SlackLinks<S> {
    store: S,
}

fn store_err(e: PortFailure) -> AppError {
    AppError::Store(e)
}

/// An 8-digit code: short enough to type, and with [`MAX_TRIES`] guesses per
/// [`CODE_LIFETIME`] a guess has a 1 in 20 million chance per window.
fn new_code() -> String {
    format!("{:08}", rand::rng().random_range(0..100_000_000u32))
}

/// Refuses a new code while a lockout lasts or within [`RESEND_AFTER`] of the last.
fn too_soon(p: &PendingSlackLink, now: DateTime<Utc>) -> Result<(), AppError> {
    if p.tries >= MAX_TRIES {
        return Err(AppError::Limit(format!(
            "too many wrong codes: ask for a new one after {} UTC",
            p.expires_at.format("%H:%M")
        )));
    }
    if now < p.expires_at - CODE_LIFETIME + RESEND_AFTER {
        return Err(AppError::Limit(
            "a code was sent less than 30 seconds ago: wait for it, or a moment before \
             asking again"
                .into(),
        ));
    }
    Ok(())
}

/// Slack member ids: `U` or `W` then upper-case letters and digits.
pub fn is_member_id(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some('U' | 'W'))
        && (2..=32).contains(&text.len())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

impl<S: Store> SlackLinks<S> {
    /// The use cases over `store`.
    pub fn new(store: S) -> Self {
        SlackLinks { store }
    }

    /// Where `actor`'s link stands at `now`.
    pub async fn status(
        &self,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<SlackLinkStatus, AppError> {
        let linked = self
            .store
            .slack_link_of(&actor.user)
            .await
            .map_err(store_err)?;
        let pending = self
            .store
            .pending_slack_link(&actor.user)
            .await
            .map_err(store_err)?
            .filter(|p| p.expires_at > now && p.tries < MAX_TRIES);
        Ok(SlackLinkStatus { linked, pending })
    }

    /// Whether `actor` may ask for a code now (not locked out, none sent in the last
    /// [`RESEND_AFTER`]): checked before looking anyone up in Slack on their behalf.
    pub async fn may_offer(&self, actor: &Actor, now: DateTime<Utc>) -> Result<(), AppError> {
        let earlier = self
            .store
            .pending_slack_link(&actor.user)
            .await
            .map_err(store_err)?;
        match earlier {
            Some(p) if p.expires_at > now => too_soon(&p, now),
            _ => Ok(()),
        }
    }

    /// `actor` says they are Slack member `member`: answers the code to send that member
    /// (the caller sends it). Refused while a lockout from wrong codes lasts.
    pub async fn offer(
        &self,
        actor: &Actor,
        member: &str,
        now: DateTime<Utc>,
    ) -> Result<String, AppError> {
        if !is_member_id(member) {
            return Err(AppError::NoSuch(format!(
                "`{member}` is not a Slack member id (U0123ABCD): in Slack, open your profile, \
                 then ⋮ → Copy member ID"
            )));
        }
        let mut tx = self.store.begin().await.map_err(store_err)?;
        let earlier = tx
            .pending_slack_link(&actor.user)
            .await
            .map_err(store_err)?;
        let tries = match earlier {
            Some((p, _)) if p.expires_at > now => {
                too_soon(&p, now)?;
                // Asking again does not buy more guesses.
                p.tries
            }
            _ => 0,
        };
        let code = new_code();
        let pending = PendingSlackLink {
            member: member.to_owned(),
            expires_at: now + CODE_LIFETIME,
            tries,
        };
        tx.put_pending_slack_link(&actor.user, &pending, &secret_hash(&code))
            .await
            .map_err(store_err)?;
        tx.append(
            NewEvent::new(Action::SlackLinkOffered, actor.user.as_str(), now)
                .details(json!({ "slack_user_id": member })),
        )
        .await
        .map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        Ok(code)
    }

    /// `actor` typed `code`: links the member it was sent to. A member linked to someone
    /// else before moves to `actor` (the code proves they hold that Slack account now).
    pub async fn confirm(
        &self,
        actor: &Actor,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<SlackLink, AppError> {
        let mut tx = self.store.begin().await.map_err(store_err)?;
        let Some((pending, hash)) = tx
            .pending_slack_link(&actor.user)
            .await
            .map_err(store_err)?
            .filter(|(p, _)| p.expires_at > now)
        else {
            return Err(AppError::NoSuch(
                "no code is waiting for you (or it expired): ask for one again".into(),
            ));
        };
        if pending.tries >= MAX_TRIES {
            return Err(AppError::Limit(format!(
                "too many wrong codes: ask for a new one after {} UTC",
                pending.expires_at.format("%H:%M")
            )));
        }
        let typed = secret_hash(code.trim());
        if !bool::from(typed.as_bytes().ct_eq(hash.as_bytes())) {
            let tried = PendingSlackLink {
                tries: pending.tries + 1,
                ..pending
            };
            tx.put_pending_slack_link(&actor.user, &tried, &hash)
                .await
                .map_err(store_err)?;
            tx.commit().await.map_err(store_err)?;
            let left = MAX_TRIES - tried.tries;
            return Err(AppError::Forbidden(format!(
                "that is not the code jitgate sent; {left} tries left"
            )));
        }
        tx.drop_pending_slack_link(&actor.user)
            .await
            .map_err(store_err)?;
        let replaced = tx
            .link_slack(&actor.user, &pending.member, now)
            .await
            .map_err(store_err)?;
        let details = match &replaced {
            Some(other) => json!({ "slack_user_id": pending.member, "taken_from": other.as_str() }),
            None => json!({ "slack_user_id": pending.member }),
        };
        tx.append(NewEvent::new(Action::SlackLinked, actor.user.as_str(), now).details(details))
            .await
            .map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        Ok(SlackLink {
            member: pending.member,
            linked_at: now,
        })
    }

    /// Removes `actor`'s link; `false` when there was none.
    pub async fn unlink(&self, actor: &Actor, now: DateTime<Utc>) -> Result<bool, AppError> {
        let mut tx = self.store.begin().await.map_err(store_err)?;
        let Some(member) = tx.unlink_slack(&actor.user).await.map_err(store_err)? else {
            return Ok(false);
        };
        tx.append(
            NewEvent::new(Action::SlackUnlinked, actor.user.as_str(), now)
                .details(json!({ "slack_user_id": member })),
        )
        .await
        .map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        Ok(true)
    }

    /// The person who linked Slack member `member`, if anyone did.
    pub async fn person(&self, member: &str) -> Result<Option<UserId>, AppError> {
        self.store
            .person_by_slack_member(member)
            .await
            .map_err(store_err)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::app::memory::MemStore;

    fn now() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap()
    }

    fn actor(user: &str) -> Actor {
        Actor {
            user: UserId::new(user),
            groups: vec![],
            is_admin: false,
            approves_all: false,
            authenticated_at: None,
        }
    }

    #[tokio::test]
    async fn the_code_sent_links_the_member_and_a_wrong_one_does_not() {
        let store = MemStore::default();
        let links = SlackLinks::new(store.clone());
        let alice = actor("alice");
        assert!(
            links
                .offer(&alice, "alice@example.com", now())
                .await
                .is_err()
        );
        let code = links.offer(&alice, "UALICE001", now()).await.unwrap();
        assert_eq!(code.len(), 8);
        let wrong = if code == "00000000" {
            "00000001"
        } else {
            "00000000"
        };
        assert!(matches!(
            links.confirm(&alice, wrong, now()).await,
            Err(AppError::Forbidden(_))
        ));
        assert_eq!(links.person("UALICE001").await.unwrap(), None);
        let linked = links.confirm(&alice, &code, now()).await.unwrap();
        assert_eq!(linked.member, "UALICE001");
        assert_eq!(
            links.person("UALICE001").await.unwrap(),
            Some(UserId::new("alice"))
        );
        // Used up: the same code again finds nothing.
        assert!(links.confirm(&alice, &code, now()).await.is_err());
        assert!(links.unlink(&alice, now()).await.unwrap());
        assert!(!links.unlink(&alice, now()).await.unwrap());
        assert_eq!(links.person("UALICE001").await.unwrap(), None);
        assert_eq!(
            store.actions(),
            [
                Action::SlackLinkOffered,
                Action::SlackLinked,
                Action::SlackUnlinked
            ]
        );
    }

    #[tokio::test]
    async fn wrong_codes_lock_out_and_asking_again_buys_no_more_tries() {
        let links = SlackLinks::new(MemStore::default());
        let bob = actor("bob");
        let mut code = links.offer(&bob, "UBOB0001", now()).await.unwrap();
        let wrong = |c: &str| {
            if c == "12345678" {
                "87654321".to_owned()
            } else {
                "12345678".to_owned()
            }
        };
        for _ in 0..MAX_TRIES - 1 {
            assert!(links.confirm(&bob, &wrong(&code), now()).await.is_err());
        }
        // Not twice within 30 seconds: each code is a DM to someone.
        assert!(matches!(
            links.offer(&bob, "UBOB0001", now()).await,
            Err(AppError::Limit(_))
        ));
        let soon = now() + RESEND_AFTER;
        code = links.offer(&bob, "UBOB0001", soon).await.unwrap();
        assert!(links.confirm(&bob, &wrong(&code), soon).await.is_err());
        // Five wrong: even the right code is refused, and so is a new one, until the
        // lockout passes.
        assert!(matches!(
            links.confirm(&bob, &code, soon).await,
            Err(AppError::Limit(_))
        ));
        assert!(
            links
                .offer(&bob, "UBOB0001", soon + RESEND_AFTER)
                .await
                .is_err()
        );
        let later = soon + CODE_LIFETIME + TimeDelta::seconds(1);
        let fresh = links.offer(&bob, "UBOB0001", later).await.unwrap();
        assert!(links.confirm(&bob, &fresh, later).await.is_ok());
    }

    #[tokio::test]
    async fn an_expired_code_links_nothing() {
        let links = SlackLinks::new(MemStore::default());
        let carol = actor("carol");
        let code = links.offer(&carol, "UCAROL01", now()).await.unwrap();
        let late = now() + CODE_LIFETIME;
        assert!(links.confirm(&carol, &code, late).await.is_err());
        let status = links.status(&carol, late).await.unwrap();
        assert_eq!(status, SlackLinkStatus::default());
    }

    #[tokio::test]
    async fn a_member_proved_by_someone_else_moves_to_them() {
        let store = MemStore::default();
        let links = SlackLinks::new(store.clone());
        let (dave, erin) = (actor("dave"), actor("erin"));
        let code = links.offer(&dave, "USHARED01", now()).await.unwrap();
        links.confirm(&dave, &code, now()).await.unwrap();
        let code = links.offer(&erin, "USHARED01", now()).await.unwrap();
        links.confirm(&erin, &code, now()).await.unwrap();
        assert_eq!(
            links.person("USHARED01").await.unwrap(),
            Some(UserId::new("erin"))
        );
        assert_eq!(links.status(&dave, now()).await.unwrap().linked, None);
        let last = store.state().events.last().cloned().unwrap();
        assert_eq!(last.details["taken_from"], "dave");
    }
}
