//! The store as the application layer's port (`jitgate_core::app::ports`): each method
//! is one of this module's statements, so the SQL stays here and the use cases stay in
//! the core.

use chrono::{DateTime, Utc};

use jitgate_core::app::ports::{
    Binding, IdcStanding, PortFailure, PortResult, RequestQuery, Store, Transaction,
};
use jitgate_core::audit::{AuditEvent, EventFilter, NewEvent};
use jitgate_core::domain::{
    ApiToken, CliLogin, OsUser, PrincipalId, Request, RequestId, RequestRecord, User, UserId,
};

use super::{
    Db, StoreError, WriteTx, audit, cli_logins, principals, requests, slack_links, tokens, users,
};
use jitgate_core::app::{PendingSlackLink, SlackLink};

fn port(e: StoreError) -> PortFailure {
    PortFailure::new(e)
}

impl Store for Db {
    type Tx = WriteTx;

    async fn begin(&self) -> PortResult<WriteTx> {
        Db::begin(self).await.map_err(port)
    }

    async fn request(&self, id: RequestId) -> PortResult<Option<RequestRecord>> {
        requests::get(self, id).await.map_err(port)
    }

    async fn list(&self, query: &RequestQuery) -> PortResult<Vec<RequestRecord>> {
        requests::list(self, query).await.map_err(port)
    }

    async fn approval_queue(
        &self,
        approver: &UserId,
        profiles: &[String],
        offset: i64,
        limit: i64,
    ) -> PortResult<Vec<RequestRecord>> {
        requests::approval_queue(self, approver, profiles, offset, limit)
            .await
            .map_err(port)
    }

    async fn person(&self, user: &UserId) -> PortResult<Option<User>> {
        users::get(self, user.as_str()).await.map_err(port)
    }

    async fn people_by_email(&self, email: &str) -> PortResult<Vec<User>> {
        users::by_email(self, email).await.map_err(port)
    }

    async fn tokens_of(&self, user: &UserId) -> PortResult<Vec<ApiToken>> {
        tokens::of_user(self, user.as_str()).await.map_err(port)
    }

    async fn token_owner(&self, hash: &str, now: DateTime<Utc>) -> PortResult<Option<User>> {
        let found = tokens::authenticate(self, hash, now).await.map_err(port)?;
        Ok(found.map(|(_, user)| user))
    }

    async fn redeem_cli_login(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> PortResult<Option<CliLogin>> {
        cli_logins::redeem(self, hash, now).await.map_err(port)
    }

    async fn events_of_request(&self, request_id: &str) -> PortResult<Vec<AuditEvent>> {
        audit::for_request(self, request_id).await.map_err(port)
    }

    async fn events_since(
        &self,
        since_millis: i64,
        after: i64,
        limit: i64,
    ) -> PortResult<Vec<AuditEvent>> {
        audit::page_since(self, since_millis, after, limit)
            .await
            .map_err(port)
    }

    async fn search_events(
        &self,
        filter: &EventFilter<'_>,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> PortResult<Vec<AuditEvent>> {
        audit::search(self, filter, after, upto, limit)
            .await
            .map_err(port)
    }

    async fn first_event_since(&self, since_millis: i64) -> PortResult<Option<i64>> {
        audit::first_seq_since(self, since_millis)
            .await
            .map_err(port)
    }

    async fn last_event(&self) -> PortResult<i64> {
        let (seq, _) = audit::head(self).await.map_err(port)?;
        Ok(seq)
    }

    async fn idc_standing(&self, user: &UserId) -> PortResult<Option<IdcStanding>> {
        let user = users::get(self, user.as_str()).await.map_err(port)?;
        Ok(user.map(|u| IdcStanding {
            bound: u.idc_user_id.map(PrincipalId::new),
            lookup: u.idc_lookup,
        }))
    }

    async fn slack_link_of(&self, user: &UserId) -> PortResult<Option<SlackLink>> {
        slack_links::link_of(self, user.as_str())
            .await
            .map_err(port)
    }

    async fn pending_slack_link(&self, user: &UserId) -> PortResult<Option<PendingSlackLink>> {
        slack_links::pending(self, user.as_str())
            .await
            .map_err(port)
    }

    async fn person_by_slack_member(&self, member: &str) -> PortResult<Option<UserId>> {
        slack_links::person_of(self, member).await.map_err(port)
    }
}

impl Transaction for WriteTx {
    async fn lock_principal(&mut self, principal: &PrincipalId) -> PortResult<()> {
        principals::lock(self, principal).await.map_err(port)
    }

    async fn principal_of(&mut self, id: RequestId) -> PortResult<Option<PrincipalId>> {
        let found = requests::principal_of(self, id).await.map_err(port)?;
        Ok(found.map(PrincipalId::new))
    }

    async fn lock_request(&mut self, id: RequestId) -> PortResult<Option<RequestRecord>> {
        requests::lock(self, id).await.map_err(port)
    }

    async fn insert_request(&mut self, record: &RequestRecord) -> PortResult<()> {
        requests::insert(self, record).await.map_err(port)
    }

    async fn save_request(&mut self, record: &RequestRecord, now: DateTime<Utc>) -> PortResult<()> {
        requests::save(self, record, now).await.map_err(port)
    }

    async fn touch_principal(&mut self, principal: &PrincipalId) -> PortResult<()> {
        principals::touch(self, principal).await.map_err(port)
    }

    async fn open_count(&mut self, requester: &UserId, cap: i64) -> PortResult<i64> {
        requests::open_count(self, requester, cap)
            .await
            .map_err(port)
    }

    async fn run_as_conflict(
        &mut self,
        requester: &UserId,
        principal: &PrincipalId,
        os_user: &OsUser,
    ) -> PortResult<Option<Request>> {
        requests::run_as_conflict(self, requester, principal, os_user.as_str())
            .await
            .map_err(port)
    }

    async fn bind_idc(&mut self, user: &UserId, principal: &PrincipalId) -> PortResult<Binding> {
        users::bind_idc(self, user.as_str(), principal)
            .await
            .map_err(port)
    }

    async fn record_person(&mut self, user: &User) -> PortResult<Option<Vec<String>>> {
        let before = users::claims_for_update(self, user.id.as_str())
            .await
            .map_err(port)?;
        users::upsert(self, user).await.map_err(port)?;
        Ok(before.map(|(groups, _)| groups))
    }

    async fn unbind_idc(&mut self, user: &UserId) -> PortResult<Option<String>> {
        users::unbind_idc(self, user.as_str()).await.map_err(port)
    }

    async fn live_tokens(&mut self, user: &UserId, now: DateTime<Utc>) -> PortResult<i64> {
        tokens::live_count(self, user.as_str(), now)
            .await
            .map_err(port)
    }

    async fn insert_token(&mut self, token: &ApiToken, hash: &str) -> PortResult<()> {
        tokens::insert(self, token, hash).await.map_err(port)
    }

    async fn revoke_token(
        &mut self,
        user: &UserId,
        id: &str,
        now: DateTime<Utc>,
    ) -> PortResult<bool> {
        tokens::revoke(self, user.as_str(), id, now)
            .await
            .map_err(port)
    }

    async fn insert_cli_login(
        &mut self,
        hash: &str,
        login: &CliLogin,
        expires_at: DateTime<Utc>,
    ) -> PortResult<()> {
        cli_logins::insert(self, hash, login, expires_at)
            .await
            .map_err(port)
    }

    async fn pending_slack_link(
        &mut self,
        user: &UserId,
    ) -> PortResult<Option<(PendingSlackLink, String)>> {
        slack_links::pending_for_update(self, user.as_str())
            .await
            .map_err(port)
    }

    async fn put_pending_slack_link(
        &mut self,
        user: &UserId,
        pending: &PendingSlackLink,
        hash: &str,
    ) -> PortResult<()> {
        slack_links::put_pending(self, user.as_str(), pending, hash)
            .await
            .map_err(port)
    }

    async fn drop_pending_slack_link(&mut self, user: &UserId) -> PortResult<()> {
        slack_links::drop_pending(self, user.as_str())
            .await
            .map_err(port)
    }

    async fn link_slack(
        &mut self,
        user: &UserId,
        member: &str,
        now: DateTime<Utc>,
    ) -> PortResult<Option<UserId>> {
        slack_links::link(self, user.as_str(), member, now)
            .await
            .map_err(port)
    }

    async fn unlink_slack(&mut self, user: &UserId) -> PortResult<Option<String>> {
        slack_links::unlink(self, user.as_str()).await.map_err(port)
    }

    async fn append(&mut self, event: NewEvent) -> PortResult<()> {
        audit::append(self, event).await.map(drop).map_err(port)
    }

    async fn commit(self) -> PortResult<()> {
        WriteTx::commit(self).await.map(drop).map_err(port)
    }
}
