//! The broker: the server's assembly of the application layer. The use cases that
//! change a request (submit, approve, deny, cancel, revoke, extend, and the scheduler's
//! expire, lapse, activate, fail) live in the core (`jitgate_core::app::requests`), run
//! here on the server's adapters: the store ([`Db`]), IAM Identity Center, the
//! permission set catalog and the scheduler's wake-ups. The broker also holds what the
//! edges share (config, clock, rules) and the sign-in side of identity (`claims`,
//! `identity`).

mod catalog;
mod claims;
mod credentials;
mod identity;
mod inventory;
mod reads;
mod slack_links;

pub use catalog::{Catalog, CatalogCell, CatalogSets, NotResolved};
pub use claims::Stale;
pub use credentials::{IssuedToken, TOKEN_PREFIX};
pub use identity::{SignInCheck, unbind};
pub use inventory::InventoryCell;
pub use jitgate_core::app::ports::Listing;
pub use jitgate_core::app::{Action, Via};
pub use jitgate_core::app::{Reachable, TargetList};
pub use reads::{AUDIT_SCAN_LIMIT, AuditExport, AuditPage};
pub use slack_links::{SlackLinkStatus, is_member_id};

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use jitgate_core::app::ports::{PortFailure, Signals};
use jitgate_core::app::{
    AppError, Credentials, People, Requests, Rules, SlackLinks, Targets, Trail,
};
use jitgate_core::clock::Clock;

use crate::aws::{AwsError, IdcDirectory, IdentityCenter};
use crate::config::Config;
use crate::domain::RequestRecord;
use crate::domain::{Actor, DomainError, Draft, RequestId, StateName};
use crate::store::{Db, StoreError};

/// Why the broker refused or could not do something: the application layer's reason
/// (`AppError`), or a failure of one of the server's adapters, recovered from the port
/// so the edges can tell a database failure from an AWS one.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    App(AppError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// An adapter failed with an error of a kind the broker does not know.
    #[error(transparent)]
    Port(PortFailure),
}

impl From<AppError> for BrokerError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Store(f) | AppError::Directory(f) => match f.downcast::<StoreError>() {
                Ok(e) => BrokerError::Store(e),
                Err(f) => match f.downcast::<AwsError>() {
                    Ok(e) => BrokerError::Aws(e),
                    Err(f) => BrokerError::Port(f),
                },
            },
            e => BrokerError::App(e),
        }
    }
}

impl From<DomainError> for BrokerError {
    fn from(e: DomainError) -> Self {
        BrokerError::App(AppError::Domain(e))
    }
}

/// Wake-ups for the scheduler when this process changed something it should act on.
#[derive(Debug, Default)]
pub struct Wakers {
    /// A person's desired AWS state changed.
    pub converge: Notify,
    /// The set of active grants or their `expires_at` changed.
    pub expiry: Notify,
    /// A grant ended, so its live sessions may be owed an end (scheduler/sessions.rs).
    pub sessions: Notify,
    /// A request changed, so its Slack message may be owed an update (scheduler/slack.rs).
    pub slack: Notify,
    /// A request changed, so its requester may be owed a DM (scheduler/slack_dms.rs).
    pub slack_dms: Notify,
}

impl Signals for Wakers {
    fn converge(&self) {
        self.converge.notify_one();
        // Every change that may end a grant signals convergence: the session closer looks too.
        self.sessions.notify_one();
        self.slack.notify_one();
        self.slack_dms.notify_one();
    }

    fn expiry(&self) {
        self.expiry.notify_one();
    }
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
    /// The use cases over requests, on this server's adapters.
    requests: Requests<Db, IdcDirectory<I>>,
    /// API tokens and CLI logins.
    credentials: Credentials<Db>,
    /// Sign-ins and the people jitgate knows.
    people: People<Db, IdcDirectory<I>>,
    /// The audit trail, for admins.
    trail: Trail<Db>,
    /// The instances in the profiles' scope, as last looked up.
    inventory: Arc<InventoryCell>,
    /// Which of them a person reaches.
    targets: Targets<Db, IdcDirectory<I>>,
    /// Claims refreshes in flight in this process, one per person.
    refreshing: Arc<claims::Refreshing>,
    /// The Slack accounts people linked.
    slack_links: SlackLinks<Db>,
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
            requests: self.requests.clone(),
            credentials: self.credentials.clone(),
            people: self.people.clone(),
            trail: self.trail.clone(),
            inventory: self.inventory.clone(),
            targets: self.targets.clone(),
            refreshing: self.refreshing.clone(),
            slack_links: self.slack_links.clone(),
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
        let directory = Arc::new(IdcDirectory(idc.clone()));
        let credentials = Credentials::new(db.clone(), config.auth.max_tokens);
        let people = People::new(db.clone(), directory.clone());
        let trail = Trail::new(db.clone(), config.auth.admin_groups.clone());
        let requests = Requests::new(
            db.clone(),
            directory,
            Arc::new(CatalogSets {
                cell: catalog.clone(),
                config: config.clone(),
            }),
            wakers.clone(),
            rules.clone(),
            config.auth.max_open_requests,
        );
        let inventory = Arc::new(InventoryCell::default());
        let db_for_links = db.clone();
        let targets = Targets::new(
            requests.clone(),
            inventory.clone(),
            config
                .profiles
                .iter()
                .map(|p| p.target_scope(&config.aws.region))
                .collect(),
            rules.clone(),
        );
        Self {
            db,
            config,
            idc,
            catalog,
            wakers,
            clock,
            rules,
            requests,
            credentials,
            people,
            trail,
            inventory,
            targets,
            refreshing: Arc::default(),
            slack_links: SlackLinks::new(db_for_links),
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

    /// The request `id` if `actor` may see it, else "not found".
    pub async fn request(
        &self,
        actor: &Actor,
        id: RequestId,
    ) -> Result<RequestRecord, BrokerError> {
        Ok(self.requests.get(actor, id).await?)
    }

    /// The active grant `id` of `actor`, with its permission set's name (the role name
    /// of IdC's portal), for connecting through it.
    pub async fn connection(
        &self,
        actor: &Actor,
        id: RequestId,
    ) -> Result<(RequestRecord, Option<String>), BrokerError> {
        let record = self.requests.connectable(actor, id).await?;
        let name = self.permission_set_name(&record).await?;
        Ok((record, name))
    }

    /// The grant's permission set name: from the config when the catalog still maps the
    /// grant's profile and OS user to its ARN (no AWS call), else from IdC.
    pub async fn permission_set_name(
        &self,
        record: &RequestRecord,
    ) -> Result<Option<String>, AwsError> {
        let request = &record.request;
        let from_config = self.config().profile(&request.profile).and_then(|p| {
            let catalog = self.catalog().get().ok()?;
            let arn = catalog.arn_for(p, &request.os_user).ok()?;
            let name = p.permission_set_for(&request.os_user);
            (arn == record.permission_set_arn.as_str() && !name.starts_with("arn:")).then_some(name)
        });
        match from_config {
            Some(name) => Ok(Some(name)),
            None => {
                self.idc
                    .permission_set_name(record.permission_set_arn.as_str())
                    .await
            }
        }
    }

    /// The requests `listing` asks for that `actor` may see, newest first.
    pub async fn list(
        &self,
        actor: &Actor,
        listing: Listing,
    ) -> Result<Vec<RequestRecord>, BrokerError> {
        Ok(self.requests.list(actor, listing).await?)
    }

    /// `actor`'s own requests in `states` (all when empty), newest first.
    pub async fn mine(
        &self,
        actor: &Actor,
        states: Vec<StateName>,
        created_before: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<RequestRecord>, BrokerError> {
        Ok(self
            .requests
            .mine(actor, states, created_before, limit)
            .await?)
    }

    /// What waits for `actor`'s decision (the one queue of every edge).
    pub async fn approval_queue(
        &self,
        actor: &Actor,
        profile: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<RequestRecord>, BrokerError> {
        Ok(self
            .requests
            .approval_queue(actor, profile, offset, limit)
            .await?)
    }

    /// The instances `query` picks that `actor` reaches (`jitgate_core::app::Targets`).
    pub async fn targets(&self, actor: &Actor, query: &str) -> Result<TargetList, BrokerError> {
        Ok(self.targets.list(actor, query).await?)
    }

    /// The instances `grant` reaches (for its page; the caller checked visibility).
    pub fn reached_by(&self, grant: &crate::domain::Request) -> Vec<crate::domain::Target> {
        self.targets.reached_by(grant)
    }

    /// Where the scheduler records each lookup of the instances in scope.
    pub fn inventory(&self) -> &Arc<InventoryCell> {
        &self.inventory
    }

    /// Files a new request for `actor` (`jitgate_core::app::Requests::submit`).
    pub async fn submit(
        &self,
        actor: &Actor,
        draft: Draft,
        now: DateTime<Utc>,
    ) -> Result<RequestRecord, BrokerError> {
        Ok(self.requests.submit(actor, draft, now).await?)
    }

    /// Applies one of a person's actions on a request (every edge shares this).
    pub async fn act(
        &self,
        actor: &Actor,
        id: RequestId,
        action: Action,
        now: DateTime<Utc>,
    ) -> Result<RequestRecord, BrokerError> {
        Ok(self.requests.act(actor, id, action, now).await?)
    }

    /// [`Self::act`] through another edge than the web or the API, which the audit
    /// event records (a Slack click).
    pub async fn act_via(
        &self,
        actor: &Actor,
        id: RequestId,
        action: Action,
        via: &Via,
    ) -> Result<RequestRecord, BrokerError> {
        Ok(self
            .requests
            .act_via(actor, id, action, self.now(), Some(via))
            .await?)
    }

    /// Ends an active grant whose time is up; `Ok(None)` when it is not (or no longer) due.
    pub async fn expire(
        &self,
        id: RequestId,
        now: DateTime<Utc>,
    ) -> Result<Option<RequestRecord>, BrokerError> {
        Ok(self.requests.expire(id, now).await?)
    }

    /// Lapses a pending request nobody answered in time; `Ok(None)` when not due.
    pub async fn lapse(
        &self,
        id: RequestId,
        now: DateTime<Utc>,
    ) -> Result<Option<RequestRecord>, BrokerError> {
        Ok(self.requests.lapse(id, now).await?)
    }

    /// Closes an open request of a profile no longer in the config.
    pub async fn close_removed(
        &self,
        id: RequestId,
        now: DateTime<Utc>,
    ) -> Result<Option<RequestRecord>, BrokerError> {
        Ok(self.requests.close_removed(id, now).await?)
    }

    /// Marks an approved request active once its assignment exists.
    pub async fn activate(
        &self,
        id: RequestId,
        now: DateTime<Utc>,
    ) -> Result<Option<RequestRecord>, BrokerError> {
        Ok(self.requests.activate(id, now).await?)
    }

    /// Marks an approved request failed after provisioning gave up.
    pub async fn fail(
        &self,
        id: RequestId,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<Option<RequestRecord>, BrokerError> {
        Ok(self.requests.fail(id, reason, now).await?)
    }
}
