//! Keeping a lease while its work runs: a heartbeat renews it every third of the lease,
//! so a live holder never loses it and a dead one's work moves after one lease.

use std::future::Future;
use std::time::Duration;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use jitgate_core::clock::Clock;

use crate::store::StoreError;

/// Renews a lease in the background until dropped (however the work ends: returns,
/// fails or is cancelled), so a lease is never renewed for work nobody is doing.
pub(super) struct Heartbeat(tokio::task::JoinHandle<()>);

impl Heartbeat {
    /// Calls `renew(new lease_until)` every `lease / 3`; stops when it answers `false`
    /// (the lease was taken over) and logs failures naming `what`.
    pub fn start<F, Fut>(what: String, lease: Duration, clock: Arc<dyn Clock>, renew: F) -> Self
    where
        F: Fn(DateTime<Utc>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<bool, StoreError>> + Send,
    {
        Heartbeat(tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                match renew(lease_until(clock.now(), lease)).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!(error = %e, lease = what, "lease renewal failed"),
                }
            }
        }))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// When a lease taken at `now` for `lease` runs out.
pub(super) fn lease_until(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + TimeDelta::from_std(lease).unwrap_or(TimeDelta::seconds(10))
}
