//! The broker: each use of jitgate (submit, approve, deny, cancel, revoke, extend, and
//! the scheduler's expire, lapse, activate, fail) as one transaction that loads the
//! request, applies the pure domain transition, saves it, appends its audit event and
//! marks the person's AWS state for convergence. AWS is never called inside it.

mod catalog;
mod claims;
mod events;
mod identity;

pub use catalog::{Catalog, CatalogCell, NotResolved};
pub use claims::Stale;
pub use identity::{SignInCheck, unbind};

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use jitgate_core::app::Rules;
use jitgate_core::clock::Clock;

use crate::audit::SYSTEM_ACTOR;
use crate::aws::{AwsError, IdentityCenter};
use crate::config::Config;
use crate::domain::RequestRecord;
use crate::domain::{Actor, DomainError, Draft, Request, RequestId, UserId};
use crate::store::requests;
use crate::store::{Db, StoreError, audit, principals};

/// Why the broker refused or could not do something.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("no request {0}")]
    NotFound(RequestId),
    #[error("no profile `{name}`; configured: {}", .known.join(", "))]
    UnknownProfile { name: String, known: Vec<String> },
    #[error(
        "no IAM Identity Center user found for you ({detail}): ask an administrator to \
         create one, or to check how jitgate matches people ([auth] idc_match)"
    )]
    NoIdcUser { detail: String },
    /// The person is bound to one IdC user and their sign-in now points to another.
    #[error(
        "your jitgate account is bound to IAM Identity Center user {bound}, but your \
         sign-in now points to {found}; an administrator must re-bind your account \
         (jitgate-server identity rebind --user {user}) before you can go on"
    )]
    IdcBindingMismatch {
        user: String,
        bound: String,
        found: String,
    },
    /// The IdC user the sign-in points to is bound to someone else.
    #[error(
        "the IAM Identity Center user your sign-in points to ({found}) belongs to another \
         jitgate user; ask an administrator"
    )]
    IdcUserTaken { found: String },
    /// A profile's permission set does not exist in IdC.
    /// The person has as many open requests as they may.
    #[error(
        "you have {open} open requests (pending, approved or active), the most one person may \
         have; cancel or end some before asking again"
    )]
    TooManyOpen { open: i64 },
    #[error(transparent)]
    Catalog(#[from] catalog::CatalogError),
    /// IdC has not been reached yet to look up permission sets.
    #[error(transparent)]
    NotReady(#[from] NotResolved),
}

/// What a person can do to an existing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Approve,
    Deny { comment: Option<String> },
    Cancel,
    Revoke { comment: Option<String> },
    Extend { extra: Duration, reason: String },
}

/// A signed-in person as the broker sees them.
#[derive(Debug, Clone)]
pub struct Person {
    /// Stable jitgate user id (the OIDC subject).
    pub id: UserId,
    /// Name used to find the IdC user (`userName`).
    pub user_name: String,
    /// Fallback for finding the IdC user.
    pub email: Option<String>,
    pub groups: Vec<String>,
}

/// Wake-ups for the scheduler when this process changed something it should act on.
#[derive(Debug, Default)]
pub struct Wakers {
    /// A person's desired AWS state changed.
    pub converge: Notify,
    /// The set of active grants or their `expires_at` changed.
    pub expiry: Notify,
}

/// The broker of one server process.
pub struct Broker<I> {
    db: Db,
    config: Arc<Config>,
    idc: Arc<I>,
    catalog: Arc<CatalogCell>,
    wakers: Arc<Wakers>,
    clock: Arc<dyn Clock>,
    rules: Arc<Rules>,
    /// Claims refreshes in flight in this process, one per person.
    refreshing: Arc<claims::Refreshing>,
}

impl<I> Clone for Broker<I> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            config: self.config.clone(),
            idc: self.idc.clone(),
            catalog: self.catalog.clone(),
            wakers: self.wakers.clone(),
            clock: self.clock.clone(),
            rules: self.rules.clone(),
            refreshing: self.refreshing.clone(),
        }
    }
}

impl<I: IdentityCenter> Broker<I> {
    pub fn new(
        db: Db,
        config: Arc<Config>,
        idc: Arc<I>,
        catalog: Arc<CatalogCell>,
        wakers: Arc<Wakers>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let rules = Arc::new(config.rules());
        Self {
            db,
            config,
            idc,
            catalog,
            wakers,
            clock,
            rules,
            refreshing: Arc::default(),
        }
    }

    /// The broker's clock (for tasks that outlive a borrow of the broker).
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The time now, from the broker's one clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The permission set catalog (resolved in the background).
    pub fn catalog(&self) -> &CatalogCell {
        &self.catalog
    }

    pub fn idc(&self) -> &I {
        &self.idc
    }

    pub fn wakers(&self) -> &Arc<Wakers> {
        &self.wakers
    }

    /// Who may do what (the application layer's rules, from the config).
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The domain actor for `person`, with roles as of their last sign-in.
    pub fn actor(&self, person: &Person) -> Actor {
        self.rules.actor(person.id.clone(), person.groups.clone())
    }

    fn policy(&self, profile: &str) -> Result<crate::domain::Policy, BrokerError> {
        self.rules
            .policy(profile)
            .cloned()
            .ok_or_else(|| BrokerError::UnknownProfile {
                name: profile.to_owned(),
                known: self
                    .config
                    .profiles
                    .iter()
                    .map(|p| p.name.clone())
                    .collect(),
            })
    }

    /// The profile's policy, or [`crate::domain::Policy::removed`] for a profile no longer
    /// in the config: removing a profile must never stop its grants from ending.
    fn policy_or_removed(&self, profile: &str) -> crate::domain::Policy {
        self.policy(profile)
            .unwrap_or_else(|_| crate::domain::Policy::removed(profile))
    }

    /// Files a new request. The person's IdC user is looked up first, so someone
    /// without one is refused now rather than failing at provisioning.
    pub async fn submit(
        &self,
        person: &Person,
        draft: Draft,
        now: DateTime<Utc>,
    ) -> Result<RequestRecord, BrokerError> {
        let policy = self.policy(&draft.profile)?;
        let profile =
            self.config
                .profile(&draft.profile)
                .ok_or_else(|| BrokerError::UnknownProfile {
                    name: draft.profile.clone(),
                    known: Vec::new(),
                })?;
        let actor = self.actor(person);
        // Validate before calling AWS: bad input must not cost an IdC call.
        let probe = Request::submit(
            RequestId::new_v4(),
            draft.clone(),
            &actor,
            &policy,
            &[],
            now,
        )?;
        let permission_set_arn = self.catalog.get()?.arn_for(profile, &probe.os_user)?;
        let (principal, unbound) = self.principal_of(person).await?;

        let mut tx = self.db.begin().await?;
        // The person's principal first, as the scheduler takes it: then the user row and
        // the audit head (bind), so no two transactions wait on each other.
        principals::lock(&mut tx, &principal).await?;
        if unbound {
            self.bind(&mut tx, person, &principal, now).await?;
        }
        let cap = i64::from(self.config.auth.max_open_requests);
        let open = requests::open_count(&mut tx, &person.id, cap).await?;
        if open >= cap {
            return Err(BrokerError::TooManyOpen { open });
        }
        let conflict =
            requests::run_as_conflict(&mut tx, &person.id, &principal, probe.os_user.as_str())
                .await?;
        let request = Request::submit(
            RequestId::new_v4(),
            draft,
            &actor,
            &policy,
            conflict.as_slice(),
            now,
        )?;
        let stored = RequestRecord {
            // Open, so nothing is settled yet: it may still come to hold an assignment.
            settled_at: None,
            request,
            principal_id: principal,
            permission_set_arn: permission_set_arn.into(),
        };
        requests::insert(&mut tx, &stored).await?;
        let aws_changes = stored.request.wants_assignment();
        if aws_changes {
            principals::touch(&mut tx, &stored.principal_id).await?;
        }
        audit::append(&mut tx, events::submitted(&stored, person.id.as_str(), now)).await?;
        tx.commit().await?;
        if aws_changes {
            self.wakers.converge.notify_one();
        }
        Ok(stored)
    }

    /// Records `person`'s approval (of the request or its pending extension).
    pub async fn approve(
        &self,
        person: &Person,
        id: RequestId,
        now: DateTime<Utc>,
    ) -> Result<RequestRecord, BrokerError> {
        let actor = self.actor(person);
        self.apply(id, person.id.as_str(), None, now, |r| {
            let policy = self.policy(&r.profile)?;
            Ok(r.approve(&actor, &policy, now)?)
        })
        .await
    }

    /// Denies the request (or drops its pending extension).
    pub async fn deny(
        &self,
        person: &Person,
        id: RequestId,
        comment: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<RequestRecord, BrokerError> {
        let actor = self.actor(person);
        self.apply(id, person.id.as_str(), comment.clone(), now, |r| {
            let policy = self.policy(&r.profile)?;
            Ok(r.deny(&actor, &policy, comment, now)?)
        })
        .await
    }

    /// Withdraws a request that is not active yet.
    pub async fn cancel(
        &self,
        person: &Person,
        id: RequestId,
        now: DateTime<Utc>,
    ) -> Result<RequestRecord, BrokerError> {
        let actor = self.actor(person);
        self.apply(id, person.id.as_str(), None, now, |r| {
            Ok(r.cancel(&actor, now)?)
        })
        .await
    }

    /// Ends a grant early.
    pub async fn revoke(
        &self,
        person: &Person,
        id: RequestId,
        comment: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<RequestRecord, BrokerError> {
        let actor = self.actor(person);
        self.apply(id, person.id.as_str(), comment.clone(), now, |r| {
            let policy = self.policy_or_removed(&r.profile);
            Ok(r.revoke(&actor, &policy, comment, now)?)
        })
        .await
    }

    /// Asks for more time on an active grant.
    pub async fn extend(
        &self,
        person: &Person,
        id: RequestId,
        extra: Duration,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<RequestRecord, BrokerError> {
        let actor = self.actor(person);
        self.apply(id, person.id.as_str(), Some(reason.clone()), now, |r| {
            let policy = self.policy(&r.profile)?;
            Ok(r.request_extension(&actor, extra, reason, &policy, now)?)
        })
        .await
    }

    /// Applies one of a person's actions on a request (the web and the API share this).
    pub async fn act(
        &self,
        person: &Person,
        id: RequestId,
        action: Action,
        now: DateTime<Utc>,
    ) -> Result<RequestRecord, BrokerError> {
        match action {
            Action::Approve => self.approve(person, id, now).await,
            Action::Deny { comment } => self.deny(person, id, comment, now).await,
            Action::Cancel => self.cancel(person, id, now).await,
            Action::Revoke { comment } => self.revoke(person, id, comment, now).await,
            Action::Extend { extra, reason } => self.extend(person, id, extra, reason, now).await,
        }
    }

    /// Ends an active grant whose time is up. `Ok(None)` when it is not (or no longer)
    /// due: another process got there first, or it was extended. Needs no profile, so a
    /// grant outlives the removal of its profile from the config only until it expires.
    pub async fn expire(
        &self,
        id: RequestId,
        now: DateTime<Utc>,
    ) -> Result<Option<RequestRecord>, BrokerError> {
        self.system(id, now, |r| Ok(r.expire(now)?)).await
    }

    /// Lapses a pending request nobody answered in time; `Ok(None)` when not due.
    pub async fn lapse(
        &self,
        id: RequestId,
        now: DateTime<Utc>,
    ) -> Result<Option<RequestRecord>, BrokerError> {
        self.system(id, now, |r| {
            let policy = self.policy(&r.profile)?;
            Ok(r.lapse(&policy, now)?)
        })
        .await
    }

    /// Closes an open request of a profile no longer in the config: a pending one
    /// lapses, an approved one not yet active fails (no new access under a removed
    /// profile); the audit event says why. `Ok(None)` when it is no longer open.
    pub async fn close_removed(
        &self,
        id: RequestId,
        now: DateTime<Utc>,
    ) -> Result<Option<RequestRecord>, BrokerError> {
        let Some(current) = requests::get(&self.db, id).await? else {
            return Ok(None);
        };
        let profile = current.request.profile;
        if self.config.profile(&profile).is_some() {
            return Ok(None);
        }
        let why = format!("profile `{profile}` was removed from the configuration");
        let result = self
            .apply(id, SYSTEM_ACTOR, Some(why.clone()), now, |r| {
                match r.state {
                    crate::domain::RequestState::Approved { .. } => Ok(r.fail(why.clone(), now)?),
                    _ => Ok(r.lapse(&crate::domain::Policy::removed(&profile), now)?),
                }
            })
            .await;
        match result {
            Ok(stored) => Ok(Some(stored)),
            Err(BrokerError::Domain(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Marks an approved request active once its assignment exists; `Ok(None)` when it
    /// is no longer approved (revoked or cancelled meanwhile).
    pub async fn activate(
        &self,
        id: RequestId,
        now: DateTime<Utc>,
    ) -> Result<Option<RequestRecord>, BrokerError> {
        self.system(id, now, |r| Ok(r.activate(now)?)).await
    }

    /// Marks an approved request failed after provisioning gave up.
    pub async fn fail(
        &self,
        id: RequestId,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<Option<RequestRecord>, BrokerError> {
        self.system(id, now, |r| Ok(r.fail(reason, now)?)).await
    }

    /// A transition jitgate makes on its own; a domain refusal means "nothing to do".
    async fn system(
        &self,
        id: RequestId,
        now: DateTime<Utc>,
        step: impl FnOnce(Request) -> Result<Request, BrokerError>,
    ) -> Result<Option<RequestRecord>, BrokerError> {
        match self.apply(id, SYSTEM_ACTOR, None, now, step).await {
            Ok(stored) => Ok(Some(stored)),
            Err(BrokerError::Domain(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Locks the person, then the request, applies `step`, and saves the result with its
    /// audit event in one transaction. A refused step rolls back and changes nothing.
    async fn apply(
        &self,
        id: RequestId,
        actor: &str,
        comment: Option<String>,
        now: DateTime<Utc>,
        step: impl FnOnce(Request) -> Result<Request, BrokerError>,
    ) -> Result<RequestRecord, BrokerError> {
        let mut tx = self.db.begin().await?;
        let principal = requests::principal_of(&mut tx, id)
            .await?
            .ok_or(BrokerError::NotFound(id))?;
        principals::lock(&mut tx, &principal.into()).await?;
        let mut stored = requests::lock(&mut tx, id)
            .await?
            .ok_or(BrokerError::NotFound(id))?;
        let before = stored.request.clone();
        stored.request = step(before.clone())?;
        if !before.wants_assignment()
            && !stored.request.wants_assignment()
            && !stored.request.is_open()
        {
            // Closed without ever holding an assignment: nothing owed in AWS.
            stored.settled_at.get_or_insert(now);
        }
        requests::save(&mut tx, &stored, now).await?;
        let aws_changes = before.wants_assignment() != stored.request.wants_assignment();
        if aws_changes {
            principals::touch(&mut tx, &stored.principal_id).await?;
        }
        // The audit head is locked last, after the person and the request.
        let event = events::transition(&before, &stored, actor, comment, now);
        audit::append(&mut tx, event).await?;
        tx.commit().await?;
        if aws_changes {
            self.wakers.converge.notify_one();
        }
        if before.expires_at() != stored.request.expires_at() {
            self.wakers.expiry.notify_one();
        }
        Ok(stored)
    }
}
