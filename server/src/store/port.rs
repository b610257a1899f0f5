//! The store as the application layer's port (`jitgate_core::app::ports`): each method
//! is one of this module's statements, so the SQL stays here and the use cases stay in
//! the core.

use chrono::{DateTime, Utc};

use jitgate_core::app::ports::{
    Binding, IdcStanding, PortFailure, PortResult, RequestQuery, Store, Transaction,
};
use jitgate_core::audit::NewEvent;
use jitgate_core::domain::{OsUser, PrincipalId, Request, RequestId, RequestRecord, UserId};

use super::{Db, StoreError, WriteTx, audit, principals, requests, users};

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

    async fn idc_standing(&self, user: &UserId) -> PortResult<Option<IdcStanding>> {
        let user = users::get(self, user.as_str()).await.map_err(port)?;
        Ok(user.map(|u| IdcStanding {
            bound: u.idc_user_id.map(PrincipalId::new),
            lookup: u.idc_lookup,
        }))
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

    async fn append(&mut self, event: NewEvent) -> PortResult<()> {
        audit::append(self, event).await.map(drop).map_err(port)
    }

    async fn commit(self) -> PortResult<()> {
        WriteTx::commit(self).await.map(drop).map_err(port)
    }
}
