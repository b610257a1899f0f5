//! The use cases that change a request: submit, approve, deny, cancel, revoke, extend
//! (a person's, with the [`Actor`] the edge built once for the HTTP request, the Slack
//! click or the CLI call), and expire, lapse, activate, fail, close (jitgate's own, from
//! the scheduler). Each is one transaction through the [`Store`] port: lock the person's
//! principal, then the request; apply the pure domain transition, which checks the
//! [`Rules`]' policy; save; append the audit event; mark the person for convergence.
//! AWS is never called inside the transaction.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::{Action as Audited, NewEvent, SYSTEM_ACTOR};
use crate::domain::{
    Actor, DomainError, Draft, IdcLookup, Policy, PrincipalId, Request, RequestId, RequestRecord,
    RequestState, UserId,
};

use super::authz::Rules;
use super::error::AppError;
use super::events;
use super::ports::{
    Binding, Directory, Listing, PermissionSets, PortFailure, RequestQuery, Signals, Store,
    Transaction,
};

/// What a person can do to an existing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Approve it, or its pending extension.
    Approve,
    /// Deny it, or drop its pending extension.
    Deny {
        /// Why, shown to the requester.
        comment: Option<String>,
    },
    /// Withdraw it before it is active.
    Cancel,
    /// End the grant early.
    Revoke {
        /// Why, shown to the requester.
        comment: Option<String>,
    },
    /// Ask for more time on an active grant.
    Extend {
        /// How much more.
        extra: Duration,
        /// Why.
        reason: String,
    },
}

/// The edge an action came through, when the audit trail records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A Slack interaction, by this Slack member.
    Slack {
        /// The clicking Slack member's id (`U...`).
        user_id: String,
    },
}

impl Via {
    fn record(&self, details: &mut serde_json::Map<String, serde_json::Value>) {
        match self {
            Via::Slack { user_id } => {
                details.insert("via".into(), "slack".into());
                details.insert("slack_user_id".into(), user_id.clone().into());
            }
        }
    }
}

/// Who an audit event names, and through which edge.
#[derive(Clone, Copy)]
struct Recorded<'a> {
    actor: &'a str,
    via: Option<&'a Via>,
}

impl Recorded<'static> {
    const SYSTEM: Recorded<'static> = Recorded {
        actor: SYSTEM_ACTOR,
        via: None,
    };
}

/// The use cases over requests, with the ports they run on.
pub struct Requests<S, D> {
    store: S,
    directory: Arc<D>,
    permission_sets: Arc<dyn PermissionSets>,
    signals: Arc<dyn Signals>,
    rules: Arc<Rules>,
    max_open: i64,
}

impl<S: Clone, D> Clone for Requests<S, D> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            directory: self.directory.clone(),
            permission_sets: self.permission_sets.clone(),
            signals: self.signals.clone(),
            rules: self.rules.clone(),
            max_open: self.max_open,
        }
    }
}

fn store_err(e: PortFailure) -> AppError {
    AppError::Store(e)
}

impl<S: Store, D: Directory> Requests<S, D> {
    /// The use cases over these ports, under `rules`, allowing each person `max_open`
    /// open requests.
    pub fn new(
        store: S,
        directory: Arc<D>,
        permission_sets: Arc<dyn PermissionSets>,
        signals: Arc<dyn Signals>,
        rules: Arc<Rules>,
        max_open: u32,
    ) -> Self {
        Self {
            store,
            directory,
            permission_sets,
            signals,
            rules,
            max_open: i64::from(max_open),
        }
    }

    /// The rules they decide by.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The rules, shared (for use cases built beside this one).
    pub fn rules_arc(&self) -> Arc<Rules> {
        self.rules.clone()
    }

    fn policy(&self, profile: &str) -> Result<&Policy, AppError> {
        self.rules
            .policy(profile)
            .ok_or_else(|| AppError::UnknownProfile {
                name: profile.to_owned(),
                known: self
                    .rules
                    .policies()
                    .iter()
                    .map(|p| p.profile.clone())
                    .collect(),
            })
    }

    /// The profile's policy, or [`Policy::removed`] for a profile no longer configured:
    /// removing a profile must never stop its grants from ending.
    fn policy_or_removed(&self, profile: &str) -> Policy {
        self.policy(profile)
            .cloned()
            .unwrap_or_else(|_| Policy::removed(profile))
    }

    /// The request `id`, if `actor` may see it: theirs, one they approve, any for an
    /// admin. Someone who may not see it is told it does not exist, so ids cannot be
    /// probed.
    pub async fn get(&self, actor: &Actor, id: RequestId) -> Result<RequestRecord, AppError> {
        match self.store.request(id).await.map_err(store_err)? {
            Some(record) if self.rules.may_view(actor, &record.request) => Ok(record),
            _ => Err(AppError::NotFound(id)),
        }
    }

    /// The grant `id`, for `actor` to connect through: only the person it was granted to
    /// connects, and only while it is active. Someone who may not see it is told it does
    /// not exist.
    pub async fn connectable(
        &self,
        actor: &Actor,
        id: RequestId,
    ) -> Result<RequestRecord, AppError> {
        let record = self.get(actor, id).await?;
        let request = &record.request;
        if request.requester != actor.user {
            return Err(DomainError::NotAllowed {
                action: "connect through",
                why: "only the person it was granted to connects through a grant".into(),
            }
            .into());
        }
        if !matches!(request.state, RequestState::Active { .. }) {
            return Err(DomainError::InvalidTransition {
                action: "connect through",
                state: request.state.name(),
            }
            .into());
        }
        Ok(record)
    }

    /// The audit events of request `id`, for someone who may see the request.
    pub async fn timeline(
        &self,
        actor: &Actor,
        id: RequestId,
    ) -> Result<Vec<crate::audit::AuditEvent>, AppError> {
        self.get(actor, id).await?;
        self.store
            .events_of_request(&id.to_string())
            .await
            .map_err(store_err)
    }

    /// The requests `listing` asks for that `actor` may see, newest first.
    pub async fn list(
        &self,
        actor: &Actor,
        listing: Listing,
    ) -> Result<Vec<RequestRecord>, AppError> {
        let visible_to =
            (!actor.is_admin).then(|| (actor.user.clone(), self.rules.approved_profiles(actor)));
        let query = RequestQuery {
            listing,
            visible_to,
        };
        self.store.list(&query).await.map_err(store_err)
    }

    /// `actor`'s own requests, newest first.
    pub async fn mine(
        &self,
        actor: &Actor,
        states: Vec<crate::domain::StateName>,
        created_before: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<RequestRecord>, AppError> {
        let listing = Listing {
            requester: Some(actor.user.clone()),
            states,
            created_before,
            limit,
            ..Listing::default()
        };
        self.list(actor, listing).await
    }

    /// What waits for `actor`'s decision, the same for every edge: pending requests and
    /// extensions of the profiles they approve, not their own, not approved by them
    /// already, oldest first with requesters taking turns.
    /// `profile` narrows it to one profile.
    pub async fn approval_queue(
        &self,
        actor: &Actor,
        profile: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<RequestRecord>, AppError> {
        let mut profiles = self.rules.approved_profiles(actor);
        if let Some(only) = profile {
            profiles.retain(|p| p == only);
        }
        if profiles.is_empty() {
            return Ok(Vec::new());
        }
        self.store
            .approval_queue(&actor.user, &profiles, offset, limit)
            .await
            .map_err(store_err)
    }

    /// Files a new request. The person's IdC user is looked up first, so someone
    /// without one is refused now rather than failing at provisioning.
    pub async fn submit(
        &self,
        actor: &Actor,
        draft: Draft,
        now: DateTime<Utc>,
    ) -> Result<RequestRecord, AppError> {
        let policy = self.policy(&draft.profile)?;
        // Validate before calling AWS: bad input must not cost an IdC call.
        let probe = Request::submit(RequestId::new_v4(), draft.clone(), actor, policy, &[], now)?;
        let permission_set_arn = self
            .permission_sets
            .arn_for(&draft.profile, &probe.os_user)?;
        let (principal, unbound) = self.principal_of(&actor.user).await?;

        let mut tx = self.store.begin().await.map_err(store_err)?;
        // The person's principal first, as the scheduler takes it: then the user row and
        // the audit head (bind), so no two transactions wait on each other.
        tx.lock_principal(&principal).await.map_err(store_err)?;
        if unbound {
            bind(&mut tx, &actor.user, &principal, now).await?;
        }
        let open = tx
            .open_count(&actor.user, self.max_open)
            .await
            .map_err(store_err)?;
        if open >= self.max_open {
            return Err(AppError::TooManyOpen { open });
        }
        let conflict = tx
            .run_as_conflict(&actor.user, &principal, &probe.os_user)
            .await
            .map_err(store_err)?;
        let request = Request::submit(
            RequestId::new_v4(),
            draft,
            actor,
            policy,
            conflict.as_slice(),
            now,
        )?;
        let record = RequestRecord {
            // Open, so nothing is settled yet: it may still come to hold an assignment.
            settled_at: None,
            request,
            principal_id: principal,
            permission_set_arn,
        };
        tx.insert_request(&record).await.map_err(store_err)?;
        let aws_changes = record.request.wants_assignment();
        if aws_changes {
            tx.touch_principal(&record.principal_id)
                .await
                .map_err(store_err)?;
        }
        tx.append(events::submitted(&record, actor.user.as_str(), now))
            .await
            .map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        if aws_changes {
            self.signals.converge();
        }
        Ok(record)
    }

    /// Applies one of a person's actions on a request: every edge comes through here.
    pub async fn act(
        &self,
        actor: &Actor,
        id: RequestId,
        action: Action,
        now: DateTime<Utc>,
    ) -> Result<RequestRecord, AppError> {
        self.act_via(actor, id, action, now, None).await
    }

    /// [`Self::act`], recording in the audit event which edge the action came through
    /// when it is not the web or the API (`via`).
    pub async fn act_via(
        &self,
        actor: &Actor,
        id: RequestId,
        action: Action,
        now: DateTime<Utc>,
        via: Option<&Via>,
    ) -> Result<RequestRecord, AppError> {
        // Someone who may not see the request is told it does not exist, whatever the
        // action; the domain then decides whether they may do it.
        self.get(actor, id).await?;
        let by = Recorded {
            actor: actor.user.as_str(),
            via,
        };
        match action {
            Action::Approve => {
                self.apply(id, by, None, now, |r| {
                    let policy = self.policy(&r.profile)?;
                    // Asked only of someone who could approve otherwise: a refusal for
                    // another reason says that reason, not "sign in again".
                    if policy.step_up
                        && policy.may_approve(actor)
                        && r.requester != actor.user
                        && !self.rules.stepped_up(actor, now)
                    {
                        return Err(AppError::StepUpRequired {
                            profile: policy.profile.clone(),
                        });
                    }
                    Ok(r.approve(actor, policy, now)?)
                })
                .await
            }
            Action::Deny { comment } => {
                self.apply(id, by, comment.clone(), now, |r| {
                    let policy = self.policy(&r.profile)?;
                    Ok(r.deny(actor, policy, comment, now)?)
                })
                .await
            }
            Action::Cancel => {
                self.apply(id, by, None, now, |r| Ok(r.cancel(actor, now)?))
                    .await
            }
            Action::Revoke { comment } => {
                self.apply(id, by, comment.clone(), now, |r| {
                    let policy = self.policy_or_removed(&r.profile);
                    Ok(r.revoke(actor, &policy, comment, now)?)
                })
                .await
            }
            Action::Extend { extra, reason } => {
                self.apply(id, by, Some(reason.clone()), now, |r| {
                    let policy = self.policy(&r.profile)?;
                    Ok(r.request_extension(actor, extra, reason, policy, now)?)
                })
                .await
            }
        }
    }

    /// Ends an active grant whose time is up. `Ok(None)` when it is not (or no longer)
    /// due: another process got there first, or it was extended. Needs no profile, so a
    /// grant outlives the removal of its profile from the config only until it expires.
    pub async fn expire(
        &self,
        id: RequestId,
        now: DateTime<Utc>,
    ) -> Result<Option<RequestRecord>, AppError> {
        self.system(id, now, |r| Ok(r.expire(now)?)).await
    }

    /// Lapses a pending request nobody answered in time; `Ok(None)` when not due.
    pub async fn lapse(
        &self,
        id: RequestId,
        now: DateTime<Utc>,
    ) -> Result<Option<RequestRecord>, AppError> {
        self.system(id, now, |r| {
            let policy = self.policy(&r.profile)?;
            Ok(r.lapse(policy, now)?)
        })
        .await
    }

    /// Closes an open request of a profile no longer configured: a pending one lapses,
    /// an approved one not yet active fails (no new access under a removed profile);
    /// the audit event says why. `Ok(None)` when it is no longer open, or its profile
    /// is configured.
    pub async fn close_removed(
        &self,
        id: RequestId,
        now: DateTime<Utc>,
    ) -> Result<Option<RequestRecord>, AppError> {
        let Some(current) = self.store.request(id).await.map_err(store_err)? else {
            return Ok(None);
        };
        let profile = current.request.profile;
        if self.rules.policy(&profile).is_some() {
            return Ok(None);
        }
        let why = format!("profile `{profile}` was removed from the configuration");
        let result = self
            .apply(id, Recorded::SYSTEM, Some(why.clone()), now, |r| {
                match r.state {
                    RequestState::Approved { .. } => Ok(r.fail(why.clone(), now)?),
                    _ => Ok(r.lapse(&Policy::removed(&profile), now)?),
                }
            })
            .await;
        settle_refusal(result)
    }

    /// Marks an approved request active once its assignment exists; `Ok(None)` when it
    /// is no longer approved (revoked or cancelled meanwhile).
    pub async fn activate(
        &self,
        id: RequestId,
        now: DateTime<Utc>,
    ) -> Result<Option<RequestRecord>, AppError> {
        self.system(id, now, |r| Ok(r.activate(now)?)).await
    }

    /// Marks an approved request failed after provisioning gave up.
    pub async fn fail(
        &self,
        id: RequestId,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<Option<RequestRecord>, AppError> {
        self.system(id, now, |r| Ok(r.fail(reason, now)?)).await
    }

    /// A transition jitgate makes on its own; a domain refusal means "nothing to do".
    async fn system(
        &self,
        id: RequestId,
        now: DateTime<Utc>,
        step: impl FnOnce(Request) -> Result<Request, AppError>,
    ) -> Result<Option<RequestRecord>, AppError> {
        settle_refusal(self.apply(id, Recorded::SYSTEM, None, now, step).await)
    }

    /// Locks the person, then the request, applies `step`, and saves the result with its
    /// audit event in one transaction. A refused step rolls back and changes nothing.
    async fn apply(
        &self,
        id: RequestId,
        by: Recorded<'_>,
        comment: Option<String>,
        now: DateTime<Utc>,
        step: impl FnOnce(Request) -> Result<Request, AppError>,
    ) -> Result<RequestRecord, AppError> {
        let mut tx = self.store.begin().await.map_err(store_err)?;
        let principal = tx
            .principal_of(id)
            .await
            .map_err(store_err)?
            .ok_or(AppError::NotFound(id))?;
        tx.lock_principal(&principal).await.map_err(store_err)?;
        let mut record = tx
            .lock_request(id)
            .await
            .map_err(store_err)?
            .ok_or(AppError::NotFound(id))?;
        let before = record.request.clone();
        record.request = step(before.clone())?;
        if !before.wants_assignment()
            && !record.request.wants_assignment()
            && !record.request.is_open()
        {
            // Closed without ever holding an assignment: nothing owed in AWS.
            record.settled_at.get_or_insert(now);
        }
        tx.save_request(&record, now).await.map_err(store_err)?;
        let aws_changes = before.wants_assignment() != record.request.wants_assignment();
        if aws_changes {
            tx.touch_principal(&record.principal_id)
                .await
                .map_err(store_err)?;
        }
        // The audit head is locked last, after the person and the request.
        let mut event = events::transition(&before, &record, by.actor, comment, now);
        if let (Some(via), serde_json::Value::Object(details)) = (by.via, &mut event.details) {
            via.record(details);
        }
        tx.append(event).await.map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        if aws_changes {
            self.signals.converge();
        }
        if before.expires_at() != record.request.expires_at() {
            self.signals.expiry();
        }
        Ok(record)
    }

    /// `user`'s IdC user id, and whether it still has to be bound (inside the
    /// transaction that first needs it). Calls IdC only for an unbound person.
    async fn principal_of(&self, user: &UserId) -> Result<(PrincipalId, bool), AppError> {
        let standing = self
            .store
            .idc_standing(user)
            .await
            .map_err(store_err)?
            .ok_or_else(|| AppError::NoIdcUser {
                detail: "jitgate has no record of your sign-in; sign in again".into(),
            })?;
        if let Some(bound) = standing.bound {
            return Ok((bound, false));
        }
        let lookup = standing.lookup.ok_or_else(|| AppError::NoIdcUser {
            detail: "your last sign-in predates identity matching; sign in again".into(),
        })?;
        if let IdcLookup::Unusable { why } = &lookup {
            return Err(AppError::NoIdcUser {
                detail: why.clone(),
            });
        }
        let found = self
            .directory
            .find_user(&lookup)
            .await
            .map_err(AppError::Directory)?
            .ok_or_else(|| AppError::NoIdcUser {
                detail: format!("none has the {lookup}"),
            })?;
        Ok((found, true))
    }
}

/// Binds `principal` to `user` inside `tx`, with its audit event; refuses when either is
/// bound otherwise (a concurrent first use, or another person's user).
async fn bind<T: Transaction>(
    tx: &mut T,
    user: &UserId,
    principal: &PrincipalId,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    match tx.bind_idc(user, principal).await.map_err(store_err)? {
        Binding::Same => Ok(()),
        Binding::New => {
            let event = NewEvent::new(Audited::IdcBound, user.as_str(), now)
                .details(json!({ "idc_user_id": principal }));
            tx.append(event).await.map_err(store_err)
        }
        Binding::Other(bound) => Err(AppError::IdcBindingMismatch {
            user: user.as_str().to_owned(),
            bound,
            found: principal.to_string(),
        }),
        Binding::Taken(_) => Err(AppError::IdcUserTaken {
            found: principal.to_string(),
        }),
    }
}

/// For jitgate's own steps: the domain refusing means the step is no longer due.
fn settle_refusal(
    result: Result<RequestRecord, AppError>,
) -> Result<Option<RequestRecord>, AppError> {
    match result {
        Ok(record) => Ok(Some(record)),
        Err(AppError::Domain(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
