//! Client-side limits that keep one process inside IAM Identity Center's quotas: a
//! call rate for the admin APIs and a cap on assignment operations in progress.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Shared limits of one process.
#[derive(Clone)]
pub struct Limits {
    admin_calls: Arc<DefaultDirectRateLimiter>,
    outstanding: Arc<Semaphore>,
    creates: Arc<Semaphore>,
}

/// The right to have one assignment operation in progress; released when dropped.
pub struct Slot {
    _outstanding: OwnedSemaphorePermit,
    _create: Option<OwnedSemaphorePermit>,
}

impl Limits {
    /// At most `tps` admin API calls per second, spaced evenly (no burst: a burst of the
    /// full quota followed by the steady rate would exceed the quota in some one-second
    /// window), and at most `outstanding` assignment operations in progress, of which
    /// creates may take all but a quarter (at least one): revocations never queue behind
    /// a burst of grants.
    pub fn new(tps: u32, outstanding: u32) -> Self {
        let tps = NonZeroU32::new(tps).unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_secs(1) / tps.get();
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(tps))
            .allow_burst(NonZeroU32::MIN);
        let outstanding = outstanding.max(1) as usize;
        let reserved_for_deletes = if outstanding > 1 {
            (outstanding / 4).max(1)
        } else {
            0
        };
        Self {
            admin_calls: Arc::new(RateLimiter::direct(quota)),
            outstanding: Arc::new(Semaphore::new(outstanding)),
            creates: Arc::new(Semaphore::new(outstanding - reserved_for_deletes)),
        }
    }

    /// Waits for the right to make one admin API call.
    pub async fn admin_call(&self) {
        self.admin_calls.until_ready().await;
    }

    /// Waits for a slot for one assignment operation, held until the slot drops.
    /// Creates first pass their own, smaller gate, so some slots always stay free for
    /// deletes. (The semaphores are never closed, so `None` only in theory.)
    pub async fn assignment_slot(&self, delete: bool) -> Option<Slot> {
        let create = if delete {
            None
        } else {
            Some(self.creates.clone().acquire_owned().await.ok()?)
        };
        let outstanding = self.outstanding.clone().acquire_owned().await.ok()?;
        Some(Slot {
            _outstanding: outstanding,
            _create: create,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn admin_calls_are_spaced_to_the_rate() {
        // 5 calls at 50/s cannot take less than 4 periods of 20ms.
        let limits = Limits::new(50, 10);
        let start = std::time::Instant::now();
        for _ in 0..5 {
            limits.admin_call().await;
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(75), "{elapsed:?}");
    }

    #[tokio::test]
    async fn outstanding_operations_are_capped() {
        let limits = Limits::new(20, 2);
        let a = limits.assignment_slot(true).await;
        let b = limits.assignment_slot(true).await;
        assert!(a.is_some() && b.is_some());
        let third =
            tokio::time::timeout(Duration::from_millis(50), limits.assignment_slot(true)).await;
        assert!(third.is_err(), "a third slot was granted");
        drop(a);
        let third =
            tokio::time::timeout(Duration::from_millis(50), limits.assignment_slot(true)).await;
        assert!(matches!(third, Ok(Some(_))));
    }

    #[tokio::test]
    async fn creates_leave_slots_for_deletes() {
        let limits = Limits::new(20, 4);
        let mut creates = Vec::new();
        for _ in 0..3 {
            creates.push(limits.assignment_slot(false).await);
        }
        let fourth_create =
            tokio::time::timeout(Duration::from_millis(50), limits.assignment_slot(false)).await;
        assert!(
            fourth_create.is_err(),
            "creates took the slot kept for deletes"
        );
        let delete =
            tokio::time::timeout(Duration::from_millis(50), limits.assignment_slot(true)).await;
        assert!(
            matches!(delete, Ok(Some(_))),
            "a delete waited behind creates"
        );
    }
}
