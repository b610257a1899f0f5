//! Client-side limits that keep one process inside IAM Identity Center's quotas: a
//! call rate for the admin APIs.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Shared limits of one process.
#[derive(Clone)]
pub struct Limits {
    admin_calls: Arc<DefaultDirectRateLimiter>,
}

impl Limits {
    /// At most `tps` admin API calls per second, spaced evenly (no burst: a burst of the
    /// full quota followed by the steady rate would exceed the quota in some one-second
    /// window). (Assignment operations in progress are capped across replicas by the
    /// converge step, from the database: scheduler/converge.)
    pub fn new(tps: u32) -> Self {
        let tps = NonZeroU32::new(tps).unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_secs(1) / tps.get();
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(tps))
            .allow_burst(NonZeroU32::MIN);
        Self {
            admin_calls: Arc::new(RateLimiter::direct(quota)),
        }
    }

    /// Waits for the right to make one admin API call.
    pub async fn admin_call(&self) {
        self.admin_calls.until_ready().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn admin_calls_are_spaced_to_the_rate() {
        // 5 calls at 50/s cannot take less than 4 periods of 20ms.
        let limits = Limits::new(50);
        let start = std::time::Instant::now();
        for _ in 0..5 {
            limits.admin_call().await;
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(75), "{elapsed:?}");
    }
}
