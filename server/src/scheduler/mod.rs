//! The scheduler: everything jitgate does without being asked.
//!
//! - `expiry`: sleeps until the next `expires_at` (re-armed whenever this process
//!   changes one, re-read every poll interval for other replicas' changes) and ends
//!   grants exactly on time.
//! - `workers`: claims principals whose AWS state is behind their grants (a lease per
//!   principal, `SKIP LOCKED` on Postgres) and converges them (`converge`).
//! - `sweep`: on a cron schedule, lapses unanswered requests, expires anything missed
//!   and checks drift.
//!
//! The database is the source of truth; every step is idempotent, so a process killed
//! at any point leaves work that the next claim of the same principal finishes.

mod converge;
mod expiry;
mod sweep;
mod workers;

pub use converge::{ConvergeError, converge};

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::aws::IdentityCenter;
use crate::broker::{Broker, Catalog};

/// Identifies this process as a lease holder: host, pid and a random part, so a
/// restarted process never mistakes an old lease for its own.
pub fn owner_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}/{}/{}", std::process::id(), &random[..8])
}

/// The running scheduler tasks of one process.
pub struct Scheduler {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
}

impl Scheduler {
    /// Starts the expiry timer, the convergence workers and the sweep.
    pub fn start<I: IdentityCenter>(
        broker: Broker<I>,
        catalog: Arc<Catalog>,
        owner: String,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(expiry::run(broker.clone(), stopped.clone()));
        tasks.spawn(workers::run(broker.clone(), owner.clone(), stopped.clone()));
        tasks.spawn(sweep::run(broker, catalog, owner, stopped));
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
