//! The scheduler: everything jitgate does without being asked.
//!
//! - `expiry`: sleeps until the next `expires_at` (re-armed whenever this process
//!   changes one, re-read every poll interval for other replicas' changes) and ends
//!   grants exactly on time.
//! - `workers`: claims principals whose AWS state is behind their grants (a lease per
//!   principal, `SKIP LOCKED` on Postgres) and converges them (`converge`).
//! - `sweep`: on a cron schedule, lapses unanswered requests, expires anything missed
//!   and checks drift.
//! - `catalog`: looks up the profiles' permission sets in IdC, retried until it works.
//! - `sessions`: ends the live Session Manager sessions of grants that ended.
//! - `inventory`: looks up the instances in the profiles' scope (the targets).
//! - `slack`: posts and updates each request's Slack channel message (with `[slack]`).
//! - `slack_dms`: sends requesters their DMs as their requests move (with `[slack]`).
//!
//! The database is the source of truth; every step is idempotent, so a process killed
//! at any point leaves work that the next claim of the same principal finishes.

mod catalog;
mod converge;
mod expiry;
mod inventory;
mod lease;
mod sessions;
mod slack;
mod slack_dms;
mod sweep;
mod workers;

pub use converge::{ConvergeError, converge};

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::aws::{IdentityCenter, MemberAccounts};
use crate::broker::Broker;
use crate::store::{Backend, Db, StoreError, jobs, principals, session_closings, slack_posts};

/// Who holds this process's leases: its node identity (stable across restarts, see
/// `Config::node_id`) and a part drawn at start, so a restarted process never mistakes
/// an old lease for one it is working on, yet can find (and release) every lease its
/// node ever took by the `node#` prefix.
#[derive(Debug, Clone)]
pub struct LeaseHolder {
    node: String,
    process: String,
    taken: Arc<std::sync::atomic::AtomicU64>,
}

impl LeaseHolder {
    /// The lease holder of this process on node `node` (which must not contain `#`).
    pub fn new(node: &str) -> Self {
        let random = uuid::Uuid::new_v4().simple().to_string();
        Self {
            node: node.replace('#', "_"),
            process: random.chars().take(8).collect(),
            taken: Arc::default(),
        }
    }

    /// The node identity.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The prefix every lease owner of this node starts with.
    pub fn node_prefix(&self) -> String {
        format!("{}#", self.node)
    }

    /// A fresh lease owner: even this process's own workers never share a lease.
    pub fn next_token(&self) -> String {
        let n = self
            .taken
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}#{}.{n}", self.node, self.process)
    }
}

/// Takes back, at start, the leases a previous process of this node left behind (it
/// was killed or timed out its shutdown): its work is resumed at once rather than after
/// the lease runs out. On SQLite every lease goes, since only one process may use the
/// file. Call once the listener is bound, which shows the predecessor is gone.
pub async fn reclaim_leases(db: &Db, holder: &LeaseHolder) -> Result<u64, StoreError> {
    let prefix = holder.node_prefix();
    let prefix = match db.backend() {
        Backend::Sqlite => None,
        Backend::Postgres => Some(prefix.as_str()),
    };
    let principals = principals::release_leases_of(db, prefix).await?;
    let jobs = jobs::release_leases_of(db, prefix).await?;
    let closings = session_closings::release_leases_of(db, prefix).await?;
    let posts = slack_posts::release_leases_of(db, prefix).await?
        + crate::store::slack_dms::release_leases_of(db, prefix).await?;
    if principals + jobs + closings + posts > 0 {
        tracing::info!(
            node = holder.node(),
            principals,
            jobs,
            session_closings = closings,
            slack_posts = posts,
            "took back leases left by this node's previous process"
        );
    }
    Ok(principals + jobs + closings + posts)
}

/// The running scheduler tasks of one process.
pub struct Scheduler {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
}

impl Scheduler {
    /// Starts the expiry timer, the convergence workers, the session closer and the sweep.
    pub fn start<I: IdentityCenter>(
        broker: Broker<I>,
        holder: LeaseHolder,
        member: Arc<dyn MemberAccounts>,
        slack: Option<Arc<crate::slack::SlackApi>>,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(expiry::run(broker.clone(), stopped.clone()));
        tasks.spawn(workers::run(
            broker.clone(),
            holder.clone(),
            stopped.clone(),
        ));
        tasks.spawn(catalog::run(broker.clone(), stopped.clone()));
        tasks.spawn(inventory::run(
            broker.clone(),
            member.clone(),
            stopped.clone(),
        ));
        tasks.spawn(sessions::run(
            broker.clone(),
            member.clone(),
            holder.clone(),
            stopped.clone(),
        ));
        if let Some(slack_api) = slack {
            tasks.spawn(slack::run(
                broker.clone(),
                slack_api.clone(),
                holder.clone(),
                stopped.clone(),
            ));
            tasks.spawn(slack_dms::run(
                broker.clone(),
                slack_api,
                holder.clone(),
                stopped.clone(),
            ));
        }
        tasks.spawn(sweep::run(broker, holder, stopped));
        Self { tasks, stop }
    }

    /// Stops taking new work and waits for work in progress to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Resolves when `stopped` turns true (or its sender is gone).
async fn stopping(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests;
