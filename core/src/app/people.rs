//! The people jitgate knows, as use cases: the record of a sign-in the identity provider
//! vouched for (audited, with a change of groups recorded once), the check of a
//! sign-in against the IAM Identity Center user bound to the person at first use (see
//! [`super::requests`]), an admin's unbind, and the names pages show.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::{Action, NewEvent, SYSTEM_ACTOR};
use crate::domain::{IdcLookup, User, UserId};

use super::error::AppError;
use super::ports::{Directory, PortFailure, Store, Transaction};

fn store_err(e: PortFailure) -> AppError {
    AppError::Store(e)
}

/// What a sign-in's lookup came to against the person's binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInCheck {
    /// Nothing bound yet, or the lookup finds the bound user (or nothing, or IdC did not
    /// answer: the binding, not the lookup, decides where grants go).
    Fine,
    /// IdC did not answer: the binding stands (this says why, for the log).
    Unchecked(String),
    /// The lookup finds another IdC user than the bound one: the sign-in is refused.
    Mismatch {
        /// The IdC user bound to the person.
        bound: String,
        /// The IdC user the new sign-in finds.
        found: String,
    },
}

/// The use cases over people.
pub struct People<S, D> {
    store: S,
    directory: std::sync::Arc<D>,
}

impl<S: Clone, D> Clone for People<S, D> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            directory: self.directory.clone(),
        }
    }
}

impl<S: Store, D: Directory> People<S, D> {
    /// The use cases over `store` and IdC's `directory`.
    pub fn new(store: S, directory: std::sync::Arc<D>) -> Self {
        Self { store, directory }
    }

    /// The person jitgate knows as `id`, as their provider last described them.
    pub async fn person(&self, id: &UserId) -> Result<Option<User>, AppError> {
        self.store.person(id).await.map_err(store_err)
    }

    /// The one person whose email is `email` (as another system, Slack, knows them);
    /// `None` when no one, or more than one person, has it.
    pub async fn by_email(&self, email: &str) -> Result<Option<User>, AppError> {
        let mut found = self.store.people_by_email(email).await.map_err(store_err)?;
        Ok(match found.len() {
            1 => found.pop(),
            _ => None,
        })
    }

    /// The display names of `ids` (user ids; jitgate itself needs none); someone who
    /// never signed in is left out (pages show their id).
    pub async fn display_names<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<HashMap<String, String>, AppError> {
        let mut names = HashMap::new();
        for id in ids {
            if id == SYSTEM_ACTOR || names.contains_key(id) {
                continue;
            }
            if let Some(user) = self.person(&UserId::new(id)).await? {
                names.insert(id.to_owned(), user.name.unwrap_or(user.user_name));
            }
        }
        Ok(names)
    }

    /// Records a sign-in the provider vouched for: the person as it described them, with
    /// `auth.signed_in`, and `auth.roles_changed` when their groups differ from the
    /// stored ones (read under the row's lock, so a change is recorded once).
    pub async fn record_sign_in(&self, user: &User, now: DateTime<Utc>) -> Result<(), AppError> {
        let mut tx = self.store.begin().await.map_err(store_err)?;
        let before = tx.record_person(user).await.map_err(store_err)?;
        let event = NewEvent::new(Action::SignedIn, user.id.as_str(), now).details(json!({
            "issuer": user.issuer,
            "user_name": user.user_name,
            "groups": user.groups,
        }));
        tx.append(event).await.map_err(store_err)?;
        if let Some(before) = before.filter(|groups| *groups != user.groups) {
            let event = NewEvent::new(Action::RolesChanged, user.id.as_str(), now).details(json!({
                "before": before,
                "after": user.groups,
                "via": "sign-in",
            }));
            tx.append(event).await.map_err(store_err)?;
        }
        tx.commit().await.map_err(store_err)
    }

    /// At sign-in: whether `lookup` (from the new claims) agrees with the binding of
    /// person `user`. A refusal is audited here, in a transaction of its own; IdC not
    /// answering lets the sign-in through (the binding stands, and is what grants use).
    pub async fn check_sign_in(
        &self,
        user: &UserId,
        lookup: &IdcLookup,
        now: DateTime<Utc>,
    ) -> Result<SignInCheck, AppError> {
        let bound = self
            .store
            .idc_standing(user)
            .await
            .map_err(store_err)?
            .and_then(|s| s.bound);
        let Some(bound) = bound else {
            return Ok(SignInCheck::Fine);
        };
        let found = match self.directory.find_user(lookup).await {
            Ok(Some(found)) if found != bound => found,
            Ok(_) => return Ok(SignInCheck::Fine),
            Err(e) => return Ok(SignInCheck::Unchecked(e.to_string())),
        };
        let (bound, found) = (bound.to_string(), found.to_string());
        let mut tx = self.store.begin().await.map_err(store_err)?;
        let event = NewEvent::new(Action::IdcBindingRefused, user.as_str(), now).details(json!({
            "bound": bound,
            "found": found,
            "lookup": lookup.to_string(),
        }));
        tx.append(event).await.map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        Ok(SignInCheck::Mismatch { bound, found })
    }
}

/// Removes `user`'s binding (an admin's re-bind, from the admin CLI), audited with
/// `by`; their next request binds the IdC user their sign-in then finds. Answers the
/// former binding.
pub async fn unbind<S: Store>(
    store: &S,
    user: &UserId,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, AppError> {
    let mut tx = store.begin().await.map_err(store_err)?;
    let was = tx.unbind_idc(user).await.map_err(store_err)?;
    let event = NewEvent::new(Action::IdcUnbound, by, now)
        .details(json!({ "user": user.as_str(), "was": was }));
    tx.append(event).await.map_err(store_err)?;
    tx.commit().await.map_err(store_err)?;
    Ok(was)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::app::memory::{MemDirectory, MemStore};
    use crate::audit::Action as Audited;
    use crate::domain::PrincipalId;

    fn now() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap()
    }

    fn alice(groups: &[&str]) -> User {
        User {
            id: UserId::new("alice"),
            issuer: "https://idp.example".into(),
            user_name: "alice".into(),
            email: None,
            name: Some("Alice Liddell".into()),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            last_login: now(),
            idc_lookup: Some(IdcLookup::UserName {
                user_name: "alice".into(),
            }),
            idc_user_id: None,
            claims_at: Some(now()),
            refresh_token: None,
            cut_off_at: None,
        }
    }

    fn people(store: &MemStore, finds: &str) -> People<MemStore, MemDirectory> {
        let directory = MemDirectory {
            users: [("alice".to_owned(), PrincipalId::new(finds))].into(),
            calls: Default::default(),
        };
        People::new(store.clone(), Arc::new(directory))
    }

    #[tokio::test]
    async fn a_sign_in_is_audited_and_a_change_of_groups_once() {
        let store = MemStore::default();
        let p = people(&store, "u-alice");
        p.record_sign_in(&alice(&["developers"]), now())
            .await
            .unwrap();
        p.record_sign_in(&alice(&["developers"]), now())
            .await
            .unwrap();
        p.record_sign_in(&alice(&["developers", "sre"]), now())
            .await
            .unwrap();
        assert_eq!(
            store.actions(),
            [
                Audited::SignedIn,
                Audited::SignedIn,
                Audited::SignedIn,
                Audited::RolesChanged
            ]
        );
        let names = p.display_names(["alice", "bob", "jitgate"]).await.unwrap();
        assert_eq!(
            names.get("alice").map(String::as_str),
            Some("Alice Liddell")
        );
        assert_eq!(names.len(), 1, "bob never signed in; jitgate needs no name");
    }

    #[tokio::test]
    async fn a_sign_in_pointing_at_another_idc_user_is_refused_and_audited() {
        let store = MemStore::default();
        people(&store, "u-alice")
            .record_sign_in(&alice(&["developers"]), now())
            .await
            .unwrap();
        let lookup = IdcLookup::UserName {
            user_name: "alice".into(),
        };
        let id = UserId::new("alice");
        // Not bound yet: fine whatever IdC says.
        let p = people(&store, "u-mallory");
        assert_eq!(
            p.check_sign_in(&id, &lookup, now()).await.unwrap(),
            SignInCheck::Fine
        );
        store.0.lock().unwrap().people.get_mut(&id).unwrap().bound =
            Some(PrincipalId::new("u-alice"));
        assert_eq!(
            people(&store, "u-alice")
                .check_sign_in(&id, &lookup, now())
                .await
                .unwrap(),
            SignInCheck::Fine
        );
        assert_eq!(
            p.check_sign_in(&id, &lookup, now()).await.unwrap(),
            SignInCheck::Mismatch {
                bound: "u-alice".into(),
                found: "u-mallory".into()
            }
        );
        assert_eq!(store.actions().last(), Some(&Audited::IdcBindingRefused));

        let was = unbind(&store, &id, "admin", now()).await.unwrap();
        assert_eq!(was.as_deref(), Some("u-alice"));
        assert_eq!(store.actions().last(), Some(&Audited::IdcUnbound));
        assert_eq!(
            p.check_sign_in(&id, &lookup, now()).await.unwrap(),
            SignInCheck::Fine
        );
    }
}
