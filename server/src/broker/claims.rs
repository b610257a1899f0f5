//! Roles follow the identity provider: a person's groups are at most `[auth]
//! claims_max_age` old on every request, by session or API token alike. Older ones are
//! confirmed again with the provider's refresh token (one refresh per person at a time);
//! a changed set of groups is audited. A person the provider no longer accepts loses
//! every session and API token at once. Without a refresh token, older claims are not
//! used: the session ends, and API tokens wait for the person's next sign-in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use secrecy::ExposeSecret;
use serde_json::json;

use super::{Broker, BrokerError};
use crate::audit::{Action, NewEvent};
use crate::aws::IdentityCenter;
use crate::oidc::{Provider, RefreshError};
use crate::store::users::{self, User};
use crate::store::{audit, tokens};

/// One refresh per person at a time in this process: concurrent requests of a person
/// whose claims just went stale wait for the first one's answer.
#[derive(Default)]
pub struct Refreshing(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl Refreshing {
    fn lock_for(&self, user_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let Ok(mut map) = self.0.lock() else {
            return Arc::default();
        };
        if map.len() > 10_000 {
            map.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        map.entry(user_id.to_owned()).or_default().clone()
    }
}

/// Why a person's claims cannot be used now.
#[derive(Debug)]
pub enum Stale {
    /// Sign in again: no refresh token, or the provider no longer accepts them.
    SignInAgain(String),
    /// The provider cannot confirm them now (retry later: 503).
    Unavailable(String),
    /// jitgate failed (the store).
    Failed(BrokerError),
}

impl<T: Into<BrokerError>> From<T> for Stale {
    fn from(e: T) -> Self {
        Stale::Failed(e.into())
    }
}

impl<I: IdentityCenter> Broker<I> {
    /// `user` (as an edge found them: session or API token) with claims at most
    /// `claims_max_age` old, confirmed again with `provider` if need be.
    pub async fn confirmed(&self, user: User, provider: &Provider) -> Result<User, Stale> {
        current(self, user, provider).await
    }
}

async fn current<I: IdentityCenter>(
    broker: &Broker<I>,
    user: User,
    provider: &Provider,
) -> Result<User, Stale> {
    let max_age = broker.config.auth.claims_max_age.get();
    let fresh = |u: &User| {
        u.claims_at.is_some_and(|at| {
            (broker.now() - at).to_std().is_ok_and(|age| age <= max_age) || at > broker.now()
        })
    };
    if fresh(&user) {
        return Ok(user);
    }
    let lock = broker.refreshing.lock_for(user.id.as_str());
    let _one_at_a_time = lock.lock().await;
    // Another request may have refreshed them while this one waited.
    let user = users::get(&broker.db, user.id.as_str())
        .await?
        .ok_or_else(|| Stale::SignInAgain("jitgate no longer knows this person".into()))?;
    if fresh(&user) {
        return Ok(user);
    }
    let Some(refresh_token) = user.refresh_token.clone() else {
        return Err(Stale::SignInAgain(format!(
            "your roles were confirmed more than {} ago and the identity provider gave \
             jitgate no way to confirm them again: sign in to jitgate again",
            broker.config.auth.claims_max_age
        )));
    };
    let oidc = provider.get().map_err(Stale::Unavailable)?;
    match oidc.refresh(refresh_token.0.as_str()).await {
        Ok(refreshed) => confirm(broker, user, refreshed).await,
        Err(RefreshError::Rejected(why)) => {
            if withdraw(broker, &user, &refresh_token).await? {
                tracing::warn!(user = %user.id, reason = %why, "the identity provider no longer accepts this person; their sessions and API tokens end");
                return Err(Stale::SignInAgain(
                    "the identity provider no longer accepts you: your sessions and API \
                     tokens have ended"
                        .into(),
                ));
            }
            // The token was replaced meanwhile (a sign-in, another replica's refresh):
            // what counts is what that left.
            match users::get(&broker.db, user.id.as_str()).await? {
                Some(now) if fresh(&now) => Ok(now),
                _ => Err(Stale::SignInAgain(
                    "your roles could not be confirmed: sign in to jitgate again".into(),
                )),
            }
        }
        Err(RefreshError::Unavailable(why)) => {
            tracing::warn!(user = %user.id, reason = %why, "cannot confirm claims with the identity provider");
            Err(Stale::Unavailable(
                "jitgate cannot confirm your roles with the identity provider right now; try \
                 again shortly"
                    .into(),
            ))
        }
    }
}

/// Records the confirmed claims; a change of groups is audited with both sets. A sign-in
/// that confirmed them while this refresh was on its way wins (it is newer).
async fn confirm<I: IdentityCenter>(
    broker: &Broker<I>,
    mut user: User,
    refreshed: crate::oidc::Refreshed,
) -> Result<User, Stale> {
    let now = broker.now();
    let mut tx = broker.db.begin().await?;
    let Some((stored_groups, stored_at)) =
        users::claims_for_update(&mut tx, user.id.as_str()).await?
    else {
        return Err(Stale::SignInAgain(
            "jitgate no longer knows this person".into(),
        ));
    };
    if stored_at > user.claims_at {
        drop(tx);
        return users::get(&broker.db, user.id.as_str())
            .await?
            .ok_or_else(|| Stale::SignInAgain("jitgate no longer knows this person".into()));
    }
    let refresh_token = refreshed.refresh_token.as_ref().map(|t| t.expose_secret());
    users::confirm_claims(
        &mut tx,
        user.id.as_str(),
        &refreshed.groups,
        refresh_token,
        now,
    )
    .await?;
    if refreshed.groups != stored_groups {
        let event = NewEvent::new(Action::RolesChanged, user.id.as_str(), now).details(json!({
            "before": stored_groups,
            "after": refreshed.groups,
            "via": "refresh",
        }));
        audit::append(&mut tx, event).await?;
    }
    tx.commit().await?;
    user.groups = refreshed.groups;
    user.claims_at = Some(now);
    if let Some(token) = refreshed.refresh_token {
        user.refresh_token = Some(users::RefreshToken(token.expose_secret().to_owned()));
    }
    Ok(user)
}

/// Ends every session and API token of a person the provider no longer accepts, unless
/// the rejected token was replaced meanwhile (`false`: nothing done).
async fn withdraw<I: IdentityCenter>(
    broker: &Broker<I>,
    user: &User,
    rejected: &users::RefreshToken,
) -> Result<bool, BrokerError> {
    let now = broker.now();
    let mut tx = broker.db.begin().await?;
    if !users::cut_off(&mut tx, user.id.as_str(), now, rejected).await? {
        return Ok(false);
    }
    let revoked = tokens::revoke_all(&mut tx, user.id.as_str(), now).await?;
    let event = NewEvent::new(Action::AccessWithdrawn, user.id.as_str(), now).details(json!({
        "reason": "the identity provider no longer accepts this person",
        "tokens_revoked": revoked,
    }));
    audit::append(&mut tx, event).await?;
    tx.commit().await?;
    Ok(true)
}
