//! The expiry timer: ends each active grant at its `expires_at`.

use std::time::Duration;

use tokio::sync::watch;

use super::stopping;
use crate::aws::IdentityCenter;
use crate::broker::{Broker, BrokerError};
use crate::store::requests;

/// Grants expired per pass; more are taken in the next pass at once.
const BATCH: i64 = 500;

pub(super) async fn run<I: IdentityCenter>(broker: Broker<I>, mut stopped: watch::Receiver<bool>) {
    let poll = broker.config().scheduler.poll_interval.get();
    loop {
        let wait = match expire_due(&broker).await {
            Ok(ExpiryPass::More) => Duration::ZERO,
            Ok(ExpiryPass::NextAt(wait)) => wait.min(poll),
            Ok(ExpiryPass::Retry) => poll,
            Err(e) => {
                tracing::error!(error = %e, "expiry pass failed; retrying");
                poll
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = broker.wakers().expiry.notified() => {}
            _ = stopping(&mut stopped) => return,
        }
    }
}

pub(super) enum ExpiryPass {
    /// A full batch was expired; there may be more due now.
    More,
    /// Nothing more is due for this long.
    NextAt(Duration),
    /// Something could not be expired; try again after the poll interval.
    Retry,
}

/// Ends every grant due now, each in its own transaction; how long until the next.
pub(super) async fn expire_due<I: IdentityCenter>(
    broker: &Broker<I>,
) -> Result<ExpiryPass, BrokerError> {
    let now = broker.now();
    let due = requests::due_for_expiry(broker.db(), now, BATCH).await?;
    let mut failed = false;
    for id in &due {
        // One grant that cannot be expired must not hold up the others.
        match broker.expire(*id, now).await {
            Ok(Some(_)) => {
                broker.wakers().converge.notify_one();
                broker.wakers().sessions.notify_one();
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, request = %id, "could not expire grant; retrying");
                failed = true;
            }
        }
    }
    if failed {
        // It stays due: come back after a pause rather than spin on it.
        return Ok(ExpiryPass::Retry);
    }
    if due.len() as i64 == BATCH {
        return Ok(ExpiryPass::More);
    }
    let next = requests::next_expiry(broker.db()).await?;
    let wait = next
        .map(|at| (at - broker.now()).to_std().unwrap_or(Duration::ZERO))
        .unwrap_or(Duration::MAX);
    Ok(ExpiryPass::NextAt(wait))
}
