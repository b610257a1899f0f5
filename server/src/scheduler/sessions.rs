//! Ending the live Session Manager sessions of ended grants.
//!
//! Deleting the assignment stops new credentials, but credentials IdC already issued
//! stay valid (up to the permission set's session duration) and a session opened with
//! them goes on. So when a grant ends, the transaction that ends it also owes the end of
//! its sessions (store/session_closings.rs). This task claims each owed duty with a
//! lease, lists the active sessions in the grant's account and the profile's regions
//! through the member role (aws/member.rs), ends those the person opened through the
//! grant's permission set, and records each end and the duty's close with audit events.
//! A failure is retried with a short back-off, never given up (like a revocation), and
//! every attempt is logged as an error: access that should be gone may be live.
//!
//! Which sessions: the owner IdC writes names the permission set
//! (`AWSReservedSSO_<name>_<16 hex>`) and the person (the role session name is their
//! identity-store user name). If another of the person's grants still wants the same
//! permission set on the same account, the sessions it covers stay: then only sessions
//! whose `Reason` names the ended grant (as `jitgate ssh` gives it) are ended.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use rand::Rng;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::lease::{Heartbeat, lease_until};
use super::{LeaseHolder, stopping};
use crate::audit::{Action, NewEvent, SYSTEM_ACTOR};
use crate::aws::{AwsError, IdentityCenter, LiveSession, MemberAccounts};
use crate::broker::Broker;
use crate::domain::{RequestId, RequestRecord};
use crate::store::session_closings::{self, Owed};
use crate::store::{StoreError, WriteTx, audit, requests};

/// Duties worked on at once by one process.
const CONCURRENT: usize = 4;
/// Back-off ceiling: sessions are ended within seconds of AWS answering again.
const MAX_RETRY: Duration = Duration::from_secs(4);

#[derive(Debug, thiserror::Error)]
enum CloseError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("lease on the session closing of request {0} was lost to another worker")]
    LeaseLost(RequestId),
}

pub(super) async fn run<I: IdentityCenter>(
    broker: Broker<I>,
    member: Arc<dyn MemberAccounts>,
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
            let claimed = session_closings::claim(
                broker.db(),
                &token,
                now,
                lease_until(now, lease),
                free as i64,
            )
            .await;
            match claimed {
                Ok(owed) if !owed.is_empty() => {
                    for duty in owed {
                        running.spawn(work(broker.clone(), member.clone(), token.clone(), duty));
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "claiming session closings failed"),
            }
        }
        let wait = match session_closings::next_due(broker.db(), broker.now()).await {
            Ok(Some(due)) if free > 0 => (due - broker.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(poll)
                .max(Duration::from_millis(50)),
            _ => poll,
        };
        tokio::select! {
            _ = broker.wakers().sessions.notified() => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stopping(&mut stopped) => break,
        }
    }
    while running.join_next().await.is_some() {}
}

/// Works one claimed duty, renewing its lease meanwhile.
async fn work<I: IdentityCenter>(
    broker: Broker<I>,
    member: Arc<dyn MemberAccounts>,
    owner: String,
    owed: Owed,
) {
    let id = owed.request_id;
    let _heartbeat = Heartbeat::start(
        format!("session closing {id}"),
        broker.config().scheduler.lease.get(),
        broker.clock(),
        {
            let (db, owner) = (broker.db().clone(), owner.clone());
            move |until| {
                let (db, owner) = (db.clone(), owner.clone());
                async move { session_closings::renew(&db, id, &owner, until).await }
            }
        },
    );
    let closing = Closing {
        broker: &broker,
        member: &*member,
        owner: &owner,
        owed: &owed,
    };
    match closing.close().await {
        Ok(()) => {}
        Err(CloseError::LeaseLost(_)) => {
            tracing::warn!(request = %id, "session closing lease lost; the new holder redoes it");
        }
        Err(CloseError::Aws(error)) => {
            if let Err(e) = closing.failed(&error).await {
                tracing::error!(error = %e, request = %id, "could not record a session-closing failure; its lease runs out");
            }
        }
        Err(CloseError::Store(e)) => {
            tracing::error!(error = %e, request = %id, "session closing failed on the database; its lease runs out and it is retried");
        }
    }
}

/// One duty being worked: the grant whose sessions are to end.
struct Closing<'a, I> {
    broker: &'a Broker<I>,
    member: &'a dyn MemberAccounts,
    owner: &'a str,
    owed: &'a Owed,
}

impl<I: IdentityCenter> Closing<'_, I> {
    async fn close(&self) -> Result<(), CloseError> {
        let id = self.owed.request_id;
        let Some(record) = requests::get(self.broker.db(), id).await? else {
            return self
                .done(json!({ "skipped": "the request no longer exists" }), &[])
                .await;
        };
        let aws = &self.broker.config().aws;
        if !aws.end_sessions {
            let details = json!({ "skipped": "[aws] end_sessions is off" });
            return self.done(details, &[]).await;
        }
        let request = &record.request;
        let account = request.account.to_string();
        let regions: Vec<String> = match self.broker.config().profile(&request.profile) {
            Some(p) => p
                .regions_or(&aws.region)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            None => vec![aws.region.clone()],
        };
        let scope = Scope {
            account_id: &account,
            request_id: id.to_string(),
            permission_set: self.broker.permission_set_name(&record).await?,
            user_name: self.broker.idc().user_name(&record.principal_id).await?,
            still_covered_by: self.still_covered_by(&record).await?,
        };
        let mut ended = Vec::new();
        for region in &regions {
            let live = self.member.active(&account, region).await?;
            for session in live.iter().filter(|s| scope.opened_through_grant(s)) {
                self.ensure_lease().await?;
                self.member
                    .terminate(&account, region, &session.session_id)
                    .await?;
                self.terminated(session, &account, region).await?;
                ended.push(session.session_id.clone());
            }
        }
        let details = json!({
            "account_id": account,
            "regions": regions,
            "permission_set": scope.permission_set,
            "user_name": scope.user_name,
            "kept_for_grants": scope.still_covered_by.iter().map(ToString::to_string).collect::<Vec<_>>(),
        });
        self.done(details, &ended).await
    }

    /// The person's other grants that still want the same permission set on the same
    /// account: their sessions are theirs to keep.
    async fn still_covered_by(&self, record: &RequestRecord) -> Result<Vec<RequestId>, StoreError> {
        let others =
            requests::of_principal_unsettled(self.broker.db(), &record.principal_id).await?;
        Ok(others
            .iter()
            .filter(|o| {
                o.request.id != record.request.id
                    && o.request.wants_assignment()
                    && o.request.account == record.request.account
                    && o.permission_set_arn == record.permission_set_arn
            })
            .map(|o| o.request.id)
            .collect())
    }

    async fn terminated(
        &self,
        session: &LiveSession,
        account: &str,
        region: &str,
    ) -> Result<(), CloseError> {
        let event = NewEvent::new(Action::SessionTerminated, SYSTEM_ACTOR, self.broker.now())
            .request(self.owed.request_id)
            .details(json!({
                "session_id": session.session_id,
                "target": session.target,
                "owner": session.owner,
                "account_id": account,
                "region": region,
                "node": self.node(),
            }));
        let mut tx = self.tx().await?;
        audit::append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Closes the duty with its audit event.
    async fn done(
        &self,
        mut details: serde_json::Value,
        ended: &[String],
    ) -> Result<(), CloseError> {
        let now = self.broker.now();
        if let Some(map) = details.as_object_mut() {
            map.insert("terminated".into(), json!(ended));
            map.insert("attempts".into(), json!(self.owed.attempts + 1));
            map.insert("node".into(), json!(self.node()));
        }
        let event = NewEvent::new(Action::SessionsClosed, SYSTEM_ACTOR, now)
            .request(self.owed.request_id)
            .details(details);
        let mut tx = self.tx().await?;
        session_closings::closed(&mut tx, self.owed.request_id, now).await?;
        audit::append(&mut tx, event).await?;
        tx.commit().await?;
        tracing::info!(
            request = %self.owed.request_id,
            terminated = ended.len(),
            lag_ms = (now - self.owed.owed_at).num_milliseconds(),
            "live sessions of the ended grant closed"
        );
        Ok(())
    }

    /// Records a failed attempt: its back-off, an audit event when a run of failures
    /// starts, and an error log line every time.
    async fn failed(&self, error: &AwsError) -> Result<(), CloseError> {
        let id = self.owed.request_id;
        let attempt = self.owed.attempts + 1;
        let retry_in = retry_delay(attempt);
        let now = self.broker.now();
        let text = error.to_string();
        let mut tx = self.tx().await?;
        let count = session_closings::failed(
            &mut tx,
            id,
            &text,
            now + TimeDelta::from_std(retry_in).unwrap_or(TimeDelta::seconds(4)),
        )
        .await?;
        if count == 1 {
            let event = NewEvent::new(Action::SessionCloseFailed, SYSTEM_ACTOR, now)
                .request(id)
                .details(json!({ "attempt": count, "error": text, "node": self.node() }));
            audit::append(&mut tx, event).await?;
        }
        tx.commit().await?;
        tracing::error!(
            request = %id,
            attempt = count,
            retry_in_secs = retry_in.as_secs_f32(),
            error = %text,
            "ending the live sessions of an ended grant failed; will retry"
        );
        Ok(())
    }

    /// Fails with `LeaseLost` unless this worker still holds the duty: checked before
    /// every session it ends, so a worker that lost its lease ends nothing more.
    async fn ensure_lease(&self) -> Result<(), CloseError> {
        drop(self.tx().await?);
        Ok(())
    }

    async fn tx(&self) -> Result<WriteTx, CloseError> {
        let id = self.owed.request_id;
        let mut tx = self.broker.db().begin().await?;
        if !session_closings::holds_lease(&mut tx, id, self.owner).await? {
            return Err(CloseError::LeaseLost(id));
        }
        Ok(tx)
    }

    fn node(&self) -> &str {
        self.owner.split('#').next().unwrap_or(self.owner)
    }
}

/// What identifies the sessions an ended grant opened.
#[derive(Debug)]
struct Scope<'a> {
    account_id: &'a str,
    request_id: String,
    /// The grant's permission set name; `None` if IdC no longer has it.
    permission_set: Option<String>,
    /// The person's identity-store user name; `None` if IdC no longer has them.
    user_name: Option<String>,
    /// The person's other grants that still want the same assignment.
    still_covered_by: Vec<RequestId>,
}

impl Scope<'_> {
    /// Whether `session` was opened by the person through the grant's permission set in
    /// its account, and is not covered by another of their grants (unless its `Reason`
    /// names this grant). Whatever is not known (a deleted user or permission set) cannot
    /// match, and at least one of the two must be known.
    fn opened_through_grant(&self, session: &LiveSession) -> bool {
        let Some((account, role, user)) = parse_owner(&session.owner) else {
            return false;
        };
        if account != self.account_id || (self.permission_set.is_none() && self.user_name.is_none())
        {
            return false;
        }
        let through_set = self
            .permission_set
            .as_deref()
            .is_none_or(|name| is_idc_role_of(role, name));
        let by_person = self
            .user_name
            .as_deref()
            .is_none_or(|name| user.eq_ignore_ascii_case(name));
        let named_this_grant = session.reason.as_deref() == Some(self.request_id.as_str());
        through_set
            && by_person
            && (self.still_covered_by.is_empty() || named_this_grant)
            && (self.user_name.is_some() || named_this_grant)
    }
}

/// (account, role name, role session name) of an assumed-role session owner ARN.
fn parse_owner(owner: &str) -> Option<(&str, &str, &str)> {
    let rest = owner.strip_prefix("arn:")?;
    let (_partition, rest) = rest.split_once(":sts::")?;
    let (account, rest) = rest.split_once(":assumed-role/")?;
    let (role, user) = rest.split_once('/')?;
    Some((account, role, user))
}

/// Whether `role` is the role IdC makes for permission set `name` in an account:
/// `AWSReservedSSO_<name>_<16 hex digits>` (a name may hold `_`, so the suffix is checked).
fn is_idc_role_of(role: &str, name: &str) -> bool {
    role.strip_prefix("AWSReservedSSO_")
        .and_then(|r| r.strip_prefix(name))
        .and_then(|r| r.strip_prefix('_'))
        .is_some_and(|suffix| suffix.len() == 16 && suffix.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Back-off before attempt `attempt + 1`, with full jitter and at least half a second.
fn retry_delay(attempt: i64) -> Duration {
    let ceiling = Duration::from_millis(500 << attempt.clamp(0, 8)).min(MAX_RETRY);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(4_000);
    Duration::from_millis(rand::rng().random_range(500.min(millis)..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &str = "0193a1b2-0000-7000-8000-000000000001";

    fn session(owner: &str, reason: Option<&str>) -> LiveSession {
        LiveSession {
            session_id: "s-1".into(),
            target: "i-1".into(),
            owner: owner.into(),
            reason: reason.map(str::to_owned),
        }
    }

    fn owner(account: &str, set: &str, user: &str) -> String {
        format!("arn:aws:sts::{account}:assumed-role/AWSReservedSSO_{set}_0123456789abcdef/{user}")
    }

    fn scope(covered: bool) -> Scope<'static> {
        Scope {
            account_id: "111111111111",
            request_id: REQUEST.into(),
            permission_set: Some("JitSsm".into()),
            user_name: Some("alice".into()),
            still_covered_by: if covered {
                vec![RequestId::new_v4()]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn ends_the_persons_sessions_through_the_grants_permission_set_only() {
        let s = scope(false);
        assert!(s.opened_through_grant(&session(&owner("111111111111", "JitSsm", "alice"), None)));
        assert!(s.opened_through_grant(&session(&owner("111111111111", "JitSsm", "Alice"), None)));
        for other in [
            owner("111111111111", "JitSsm", "bob"),
            owner("222222222222", "JitSsm", "alice"),
            owner("111111111111", "JitSsm_Admin", "alice"),
            owner("111111111111", "Other", "alice"),
            "arn:aws:sts::111111111111:assumed-role/AWSReservedSSO_JitSsm_short/alice".into(),
            "arn:aws:iam::111111111111:user/alice".into(),
            String::new(),
        ] {
            assert!(!s.opened_through_grant(&session(&other, None)), "{other}");
        }
    }

    #[test]
    fn another_grant_on_the_same_assignment_keeps_its_sessions() {
        let s = scope(true);
        let alice = owner("111111111111", "JitSsm", "alice");
        assert!(!s.opened_through_grant(&session(&alice, None)));
        assert!(!s.opened_through_grant(&session(&alice, Some("another-grant"))));
        assert!(s.opened_through_grant(&session(&alice, Some(REQUEST))));
    }

    #[test]
    fn what_is_unknown_never_matches_more() {
        let mut s = scope(false);
        s.user_name = None;
        let alice = owner("111111111111", "JitSsm", "alice");
        assert!(
            !s.opened_through_grant(&session(&alice, None)),
            "no user: only by reason"
        );
        assert!(s.opened_through_grant(&session(&alice, Some(REQUEST))));
        s.permission_set = None;
        assert!(!s.opened_through_grant(&session(&alice, Some(REQUEST))));
    }

    #[test]
    fn retry_delays_are_bounded() {
        for attempt in 0..30 {
            let d = retry_delay(attempt);
            assert!(d >= Duration::from_millis(500) && d <= MAX_RETRY);
        }
    }
}
