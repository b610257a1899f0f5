//! Sign-in, as the broker runs it on the core's use cases (`jitgate_core::app::people`):
//! the record of a sign-in, and its check against the IAM Identity Center user bound to
//! the person at first use (`jitgate_core::app::requests`). The lookup a sign-in's
//! trusted claims allow (server/src/oidc/idc_match.rs) finds that user once; every later
//! grant uses the binding, whatever the claims say next. A sign-in whose claims would
//! find another IdC user is refused, audited, until an admin re-binds
//! (`jitgate-server identity rebind`); one IdC user is never bound to two people.

use chrono::{DateTime, Utc};

pub use jitgate_core::app::SignInCheck;

use super::{Broker, BrokerError};
use crate::aws::IdentityCenter;
use crate::domain::{IdcLookup, User, UserId};
use crate::store::Db;

impl<I: IdentityCenter> Broker<I> {
    /// Records a sign-in the provider vouched for (`auth.signed_in`, and
    /// `auth.roles_changed` when their groups changed).
    pub async fn record_sign_in(&self, user: &User, now: DateTime<Utc>) -> Result<(), BrokerError> {
        Ok(self.people.record_sign_in(user, now).await?)
    }

    /// At sign-in: whether `lookup` (from the new claims) agrees with the binding of
    /// person `user_id`; a refusal is audited. IdC not answering lets the sign-in
    /// through (logged): the binding stands, and is what grants use.
    pub async fn check_sign_in(
        &self,
        user_id: &str,
        lookup: &IdcLookup,
        now: DateTime<Utc>,
    ) -> Result<SignInCheck, BrokerError> {
        let check = self
            .people
            .check_sign_in(&UserId::new(user_id), lookup, now)
            .await?;
        if let SignInCheck::Unchecked(why) = &check {
            tracing::warn!(user = user_id, error = %why, "cannot check the IdC binding at sign-in; the binding stands");
        }
        Ok(check)
    }
}

/// Removes `user_id`'s binding (an admin's re-bind), audited with `actor`; their next
/// request binds the IdC user their sign-in then finds. Returns the former binding.
pub async fn unbind(
    db: &Db,
    user_id: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, BrokerError> {
    Ok(jitgate_core::app::people::unbind(db, &UserId::new(user_id), actor, now).await?)
}
