//! Which IAM Identity Center user a person's grants land on (the first use binds it:
//! `jitgate_core::app::requests`), and the record of a sign-in. The lookup their sign-in's
//! trusted claims allow (server/src/oidc/idc_match.rs) finds it once; it is then bound
//! to the person, and every later grant uses the binding, whatever the claims say next.
//! A sign-in whose claims would find another IdC user is refused, audited, until an
//! admin re-binds (`jitgate-server identity rebind`); one IdC user is never bound to two
//! people.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Broker, BrokerError};
use crate::audit::{Action, NewEvent};
use crate::aws::IdentityCenter;
use crate::domain::IdcLookup;
use crate::store::audit;
use crate::store::users::{self, User};

/// What a sign-in's lookup came to against the person's binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInCheck {
    /// Nothing bound yet, or the lookup finds the bound user (or nothing, or IdC did not
    /// answer: the binding, not the lookup, decides where grants go).
    Fine,
    /// The lookup finds another IdC user than the bound one: the sign-in is refused.
    Mismatch { bound: String, found: String },
}

impl<I: IdentityCenter> Broker<I> {
    /// Records a sign-in the provider vouched for: the person as it described them, with
    /// `auth.signed_in`, and `auth.roles_changed` when their groups differ from the stored
    /// ones (read under the row's lock, so a change is recorded once).
    pub async fn record_sign_in(&self, user: &User, now: DateTime<Utc>) -> Result<(), BrokerError> {
        let mut tx = self.db.begin().await?;
        let before = users::claims_for_update(&mut tx, &user.id).await?;
        users::upsert(&mut tx, user).await?;
        let event = NewEvent::new(Action::SignedIn, user.id.as_str(), now).details(json!({
            "issuer": user.issuer,
            "user_name": user.user_name,
            "groups": user.groups,
        }));
        audit::append(&mut tx, event).await?;
        if let Some((before, _)) = before.filter(|(groups, _)| *groups != user.groups) {
            let event = NewEvent::new(Action::RolesChanged, user.id.as_str(), now).details(json!({
                "before": before,
                "after": user.groups,
                "via": "sign-in",
            }));
            audit::append(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// At sign-in: whether `lookup` (from the new claims) agrees with the binding of the
    /// person `user_id`. A refusal is audited here, in a transaction of its own.
    pub async fn check_sign_in(
        &self,
        user_id: &str,
        lookup: &IdcLookup,
        now: DateTime<Utc>,
    ) -> Result<SignInCheck, BrokerError> {
        let Some(bound) = users::get(&self.db, user_id)
            .await?
            .and_then(|u| u.idc_user_id)
        else {
            return Ok(SignInCheck::Fine);
        };
        let found = match self.idc.find_user(lookup).await {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(SignInCheck::Fine),
            Err(e) => {
                tracing::warn!(user = user_id, error = %e, "cannot check the IdC binding at sign-in; the binding stands");
                return Ok(SignInCheck::Fine);
            }
        };
        if found.as_str() == bound {
            return Ok(SignInCheck::Fine);
        }
        let found = found.to_string();
        let mut tx = self.db.begin().await?;
        let event = NewEvent::new(Action::IdcBindingRefused, user_id, now).details(json!({
            "bound": bound,
            "found": found,
            "lookup": lookup.to_string(),
        }));
        audit::append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(SignInCheck::Mismatch { bound, found })
    }
}

/// Removes `user_id`'s binding (an admin's re-bind), audited with `actor`; their next
/// request binds the IdC user their sign-in then finds. Returns the former binding.
pub async fn unbind(
    db: &crate::store::Db,
    user_id: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, BrokerError> {
    let mut tx = db.begin().await?;
    let was = users::unbind_idc(&mut tx, user_id).await?;
    let event = NewEvent::new(Action::IdcUnbound, actor, now)
        .details(json!({ "user": user_id, "was": was }));
    audit::append(&mut tx, event).await?;
    tx.commit().await?;
    Ok(was)
}
