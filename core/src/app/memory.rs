//! In-memory ports for the application layer's unit tests: a store whose transaction
//! works on a copy and puts it back at commit (so a dropped transaction changes
//! nothing), IdC's directory, permission sets and wake-ups that count.

#![allow(clippy::unwrap_used, clippy::cast_possible_wrap)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::app::ports::{
    Binding, Directory, IdcStanding, NoPermissionSet, PermissionSets, PortResult, RequestQuery,
    Signals, Store, Transaction,
};
use crate::audit::{Action as Audited, AuditEvent, EventFilter, NewEvent};
use crate::domain::{
    ApiToken, CliLogin, IdcLookup, OsUser, PermissionSetArn, PrincipalId, Request, RequestId,
    RequestRecord, StateName, User, UserId,
};
use crate::domain::{PendingSlackLink, SlackLink};

#[derive(Clone, Default)]
pub(crate) struct State {
    pub requests: Vec<RequestRecord>,
    pub people: HashMap<UserId, IdcStanding>,
    pub users: HashMap<UserId, User>,
    pub events: Vec<NewEvent>,
    pub touched: Vec<PrincipalId>,
    pub tokens: Vec<(ApiToken, String)>,
    pub cli_logins: Vec<(String, CliLogin, DateTime<Utc>, bool)>,
    pub slack_links: HashMap<UserId, SlackLink>,
    pub pending_slack: HashMap<UserId, (PendingSlackLink, String)>,
}

/// A store that keeps everything in memory: a transaction works on a copy and puts it
/// back at commit, so a dropped transaction changes nothing.
#[derive(Clone, Default)]
pub(crate) struct MemStore(pub Arc<Mutex<State>>);

impl MemStore {
    pub fn state(&self) -> State {
        self.0.lock().unwrap().clone()
    }

    pub fn actions(&self) -> Vec<Audited> {
        self.state().events.iter().map(|e| e.action).collect()
    }

    /// The trail as the store would give it back (hash fields left empty).
    pub fn stored_events(&self) -> Vec<AuditEvent> {
        self.state()
            .events
            .into_iter()
            .enumerate()
            .map(|(i, e)| AuditEvent {
                seq: i as i64 + 1,
                at: e.at,
                actor: e.actor,
                action: e.action.into(),
                request_id: e.request_id,
                details: e.details,
                prev_hash: String::new(),
                hash: String::new(),
                key_id: None,
            })
            .collect()
    }

    pub fn signed_in(&self, user: &str) {
        self.0.lock().unwrap().people.insert(
            UserId::new(user),
            IdcStanding {
                bound: None,
                lookup: Some(IdcLookup::UserName {
                    user_name: user.into(),
                }),
            },
        );
    }
}

pub(crate) struct MemTx {
    store: Arc<Mutex<State>>,
    work: State,
}

impl Store for MemStore {
    type Tx = MemTx;

    async fn begin(&self) -> PortResult<MemTx> {
        Ok(MemTx {
            store: self.0.clone(),
            work: self.state(),
        })
    }

    async fn request(&self, id: RequestId) -> PortResult<Option<RequestRecord>> {
        Ok(self
            .state()
            .requests
            .into_iter()
            .find(|r| r.request.id == id))
    }

    async fn list(&self, query: &RequestQuery) -> PortResult<Vec<RequestRecord>> {
        let l = &query.listing;
        let mut found: Vec<RequestRecord> = self
            .state()
            .requests
            .into_iter()
            .filter(|r| {
                let q = &r.request;
                l.requester.as_ref().is_none_or(|u| &q.requester == u)
                    && l.profiles.as_ref().is_none_or(|p| p.contains(&q.profile))
                    && (l.states.is_empty() || l.states.contains(&q.state.name()))
                    && query.visible_to.as_ref().is_none_or(|(me, approves)| {
                        &q.requester == me || approves.contains(&q.profile)
                    })
            })
            .collect();
        found.reverse();
        found.truncate(usize::try_from(l.limit).unwrap_or(0));
        Ok(found)
    }

    async fn approval_queue(
        &self,
        approver: &UserId,
        profiles: &[String],
        offset: i64,
        limit: i64,
    ) -> PortResult<Vec<RequestRecord>> {
        Ok(self
            .state()
            .requests
            .into_iter()
            .filter(|r| {
                let q = &r.request;
                q.state.name() == StateName::Pending
                    && &q.requester != approver
                    && profiles.contains(&q.profile)
                    && q.approvals.iter().all(|a| &a.by != approver)
            })
            .skip(usize::try_from(offset).unwrap_or(0))
            .take(usize::try_from(limit).unwrap_or(0))
            .collect())
    }

    async fn person(&self, user: &UserId) -> PortResult<Option<User>> {
        Ok(self.state().users.get(user).cloned())
    }

    async fn people_by_email(&self, email: &str) -> PortResult<Vec<User>> {
        Ok(self
            .state()
            .users
            .into_values()
            .filter(|u| {
                u.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .take(2)
            .collect())
    }

    async fn tokens_of(&self, user: &UserId) -> PortResult<Vec<ApiToken>> {
        let mut found: Vec<ApiToken> = self
            .state()
            .tokens
            .into_iter()
            .filter(|(t, _)| &t.user_id == user)
            .map(|(t, _)| t)
            .collect();
        found.reverse();
        Ok(found)
    }

    async fn token_owner(&self, hash: &str, now: DateTime<Utc>) -> PortResult<Option<User>> {
        let state = self.state();
        let owner = state
            .tokens
            .iter()
            .find(|(t, h)| h == hash && t.revoked_at.is_none() && t.expires_at > now)
            .and_then(|(t, _)| state.users.get(&t.user_id).cloned());
        Ok(owner)
    }

    async fn redeem_cli_login(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> PortResult<Option<CliLogin>> {
        let mut state = self.0.lock().unwrap();
        for (h, login, expires_at, used) in &mut state.cli_logins {
            if h == hash && !*used && *expires_at > now {
                *used = true;
                return Ok(Some(login.clone()));
            }
        }
        Ok(None)
    }

    async fn events_of_request(&self, request_id: &str) -> PortResult<Vec<AuditEvent>> {
        Ok(self
            .stored_events()
            .into_iter()
            .filter(|e| e.request_id.as_deref() == Some(request_id))
            .collect())
    }

    async fn events_since(
        &self,
        since_millis: i64,
        after: i64,
        limit: i64,
    ) -> PortResult<Vec<AuditEvent>> {
        Ok(self
            .stored_events()
            .into_iter()
            .filter(|e| e.seq > after && e.at.timestamp_millis() >= since_millis)
            .take(usize::try_from(limit).unwrap_or(0))
            .collect())
    }

    async fn search_events(
        &self,
        filter: &EventFilter<'_>,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> PortResult<Vec<AuditEvent>> {
        Ok(self
            .stored_events()
            .into_iter()
            .filter(|e| {
                e.seq > after
                    && e.seq <= upto
                    && e.at.timestamp_millis() >= filter.since_millis
                    && filter.actor.is_none_or(|a| e.actor == a)
                    && filter
                        .action_prefix
                        .is_none_or(|p| e.action.as_str().starts_with(p))
                    && filter
                        .request_id
                        .is_none_or(|r| e.request_id.as_deref() == Some(r))
            })
            .take(usize::try_from(limit).unwrap_or(0))
            .collect())
    }

    async fn first_event_since(&self, since_millis: i64) -> PortResult<Option<i64>> {
        Ok(self
            .stored_events()
            .into_iter()
            .find(|e| e.at.timestamp_millis() >= since_millis)
            .map(|e| e.seq))
    }

    async fn last_event(&self) -> PortResult<i64> {
        Ok(self.state().events.len() as i64)
    }

    async fn idc_standing(&self, user: &UserId) -> PortResult<Option<IdcStanding>> {
        Ok(self.state().people.get(user).cloned())
    }

    async fn slack_link_of(&self, user: &UserId) -> PortResult<Option<SlackLink>> {
        Ok(self.state().slack_links.get(user).cloned())
    }

    async fn pending_slack_link(&self, user: &UserId) -> PortResult<Option<PendingSlackLink>> {
        Ok(self.state().pending_slack.get(user).map(|(p, _)| p.clone()))
    }

    async fn person_by_slack_member(&self, member: &str) -> PortResult<Option<UserId>> {
        Ok(self
            .state()
            .slack_links
            .iter()
            .find(|(_, l)| l.member == member)
            .map(|(u, _)| u.clone()))
    }
}

impl Transaction for MemTx {
    async fn lock_principal(&mut self, _: &PrincipalId) -> PortResult<()> {
        Ok(())
    }

    async fn principal_of(&mut self, id: RequestId) -> PortResult<Option<PrincipalId>> {
        Ok(self
            .work
            .requests
            .iter()
            .find(|r| r.request.id == id)
            .map(|r| r.principal_id.clone()))
    }

    async fn lock_request(&mut self, id: RequestId) -> PortResult<Option<RequestRecord>> {
        Ok(self
            .work
            .requests
            .iter()
            .find(|r| r.request.id == id)
            .cloned())
    }

    async fn insert_request(&mut self, record: &RequestRecord) -> PortResult<()> {
        self.work.requests.push(record.clone());
        Ok(())
    }

    async fn save_request(&mut self, record: &RequestRecord, _: DateTime<Utc>) -> PortResult<()> {
        for r in &mut self.work.requests {
            if r.request.id == record.request.id {
                *r = record.clone();
            }
        }
        Ok(())
    }

    async fn touch_principal(&mut self, principal: &PrincipalId) -> PortResult<()> {
        self.work.touched.push(principal.clone());
        Ok(())
    }

    async fn open_count(&mut self, requester: &UserId, cap: i64) -> PortResult<i64> {
        let open = self
            .work
            .requests
            .iter()
            .filter(|r| &r.request.requester == requester && r.request.is_open())
            .count();
        Ok((open as i64).min(cap))
    }

    async fn run_as_conflict(
        &mut self,
        requester: &UserId,
        _: &PrincipalId,
        os_user: &OsUser,
    ) -> PortResult<Option<Request>> {
        Ok(self
            .work
            .requests
            .iter()
            .find(|r| {
                &r.request.requester == requester
                    && r.request.is_open()
                    && &r.request.os_user != os_user
            })
            .map(|r| r.request.clone()))
    }

    async fn bind_idc(&mut self, user: &UserId, principal: &PrincipalId) -> PortResult<Binding> {
        if let Some((holder, _)) = self
            .work
            .people
            .iter()
            .find(|(u, s)| *u != user && s.bound.as_ref() == Some(principal))
        {
            return Ok(Binding::Taken(holder.to_string()));
        }
        let Some(standing) = self.work.people.get_mut(user) else {
            return Ok(Binding::Taken("(no such user)".into()));
        };
        Ok(match &standing.bound {
            Some(b) if b == principal => Binding::Same,
            Some(b) => Binding::Other(b.to_string()),
            None => {
                standing.bound = Some(principal.clone());
                Binding::New
            }
        })
    }

    async fn record_person(&mut self, user: &User) -> PortResult<Option<Vec<String>>> {
        let id = user.id.clone();
        let before = self.work.users.get(&id).map(|u| u.groups.clone());
        self.work.users.insert(id.clone(), user.clone());
        let standing = self.work.people.entry(id).or_insert(IdcStanding {
            bound: None,
            lookup: None,
        });
        standing.lookup = user.idc_lookup.clone();
        Ok(before)
    }

    async fn unbind_idc(&mut self, user: &UserId) -> PortResult<Option<String>> {
        Ok(self
            .work
            .people
            .get_mut(user)
            .and_then(|s| s.bound.take())
            .map(|p| p.to_string()))
    }

    async fn live_tokens(&mut self, user: &UserId, now: DateTime<Utc>) -> PortResult<i64> {
        Ok(self
            .work
            .tokens
            .iter()
            .filter(|(t, _)| &t.user_id == user && t.revoked_at.is_none() && t.expires_at > now)
            .count() as i64)
    }

    async fn insert_token(&mut self, token: &ApiToken, hash: &str) -> PortResult<()> {
        self.work.tokens.push((token.clone(), hash.to_owned()));
        Ok(())
    }

    async fn revoke_token(
        &mut self,
        user: &UserId,
        id: &str,
        now: DateTime<Utc>,
    ) -> PortResult<bool> {
        for (t, _) in &mut self.work.tokens {
            if &t.user_id == user && t.id == id && t.revoked_at.is_none() {
                t.revoked_at = Some(now);
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn insert_cli_login(
        &mut self,
        hash: &str,
        login: &CliLogin,
        expires_at: DateTime<Utc>,
    ) -> PortResult<()> {
        self.work
            .cli_logins
            .push((hash.to_owned(), login.clone(), expires_at, false));
        Ok(())
    }

    async fn append(&mut self, event: NewEvent) -> PortResult<()> {
        self.work.events.push(event);
        Ok(())
    }

    async fn pending_slack_link(
        &mut self,
        user: &UserId,
    ) -> PortResult<Option<(PendingSlackLink, String)>> {
        Ok(self.work.pending_slack.get(user).cloned())
    }

    async fn put_pending_slack_link(
        &mut self,
        user: &UserId,
        pending: &PendingSlackLink,
        hash: &str,
    ) -> PortResult<()> {
        self.work
            .pending_slack
            .insert(user.clone(), (pending.clone(), hash.to_owned()));
        Ok(())
    }

    async fn drop_pending_slack_link(&mut self, user: &UserId) -> PortResult<()> {
        self.work.pending_slack.remove(user);
        Ok(())
    }

    async fn link_slack(
        &mut self,
        user: &UserId,
        member: &str,
        now: DateTime<Utc>,
    ) -> PortResult<Option<UserId>> {
        let before = self
            .work
            .slack_links
            .iter()
            .find(|(u, l)| l.member == member && *u != user)
            .map(|(u, _)| u.clone());
        if let Some(other) = &before {
            self.work.slack_links.remove(other);
        }
        self.work.slack_links.insert(
            user.clone(),
            SlackLink {
                member: member.to_owned(),
                linked_at: now,
            },
        );
        Ok(before)
    }

    async fn unlink_slack(&mut self, user: &UserId) -> PortResult<Option<String>> {
        Ok(self.work.slack_links.remove(user).map(|l| l.member))
    }

    async fn commit(self) -> PortResult<()> {
        *self.store.lock().unwrap() = self.work;
        Ok(())
    }
}

/// IdC's directory: people found by user name; counts its calls.
#[derive(Default)]
pub(crate) struct MemDirectory {
    pub users: HashMap<String, PrincipalId>,
    pub calls: AtomicUsize,
}

impl Directory for MemDirectory {
    async fn find_user(&self, lookup: &IdcLookup) -> PortResult<Option<PrincipalId>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(match lookup {
            IdcLookup::UserName { user_name } => self.users.get(user_name).cloned(),
            _ => None,
        })
    }
}

/// Permission sets named after the profile and OS user, or none (IdC not reached yet).
pub(crate) struct Sets(pub bool);

impl PermissionSets for Sets {
    fn arn_for(
        &self,
        profile: &str,
        os_user: &OsUser,
    ) -> Result<PermissionSetArn, NoPermissionSet> {
        if self.0 {
            Ok(PermissionSetArn::from(format!(
                "arn:aws:sso:::permissionSet/ssoins-1/ps-{profile}-{os_user}"
            )))
        } else {
            Err(NoPermissionSet(
                "IAM Identity Center not reached yet".into(),
            ))
        }
    }
}

#[derive(Default)]
pub(crate) struct Counted {
    pub converge: AtomicUsize,
    pub expiry: AtomicUsize,
}

impl Signals for Counted {
    fn converge(&self) {
        self.converge.fetch_add(1, Ordering::SeqCst);
    }

    fn expiry(&self) {
        self.expiry.fetch_add(1, Ordering::SeqCst);
    }
}
