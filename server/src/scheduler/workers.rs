//! Convergence workers: claim principals with a lease, converge each, record failures
//! with backoff, and give up on grants (never on revocations) after the configured
//! number of attempts.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::converge::{ConvergeError, converge};
use super::stopping;
use crate::audit::{Action, NewEvent, SYSTEM_ACTOR};
use crate::aws::IdentityCenter;
use crate::broker::Broker;
use crate::domain::RequestState;
use crate::store::principals::{self, Claim};
use crate::store::{StoreError, audit, requests};

/// Longest wait between attempts on a failing principal.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

pub(super) async fn run<I: IdentityCenter>(
    broker: Broker<I>,
    owner: String,
    mut stopped: watch::Receiver<bool>,
) {
    let settings = &broker.config().scheduler;
    let workers = settings.workers as usize;
    let poll = settings.poll_interval.get();
    let lease = settings.lease.get();
    let mut running: JoinSet<()> = JoinSet::new();
    let mut claims_made: u64 = 0;
    loop {
        if *stopped.borrow() {
            break;
        }
        let free = workers.saturating_sub(running.len());
        if free > 0 {
            let now = Utc::now();
            let until = now + TimeDelta::from_std(lease).unwrap_or(TimeDelta::seconds(60));
            // A token per claim: even this process's own workers never share a lease.
            claims_made += 1;
            let token = format!("{owner}#{claims_made}");
            match principals::claim(broker.db(), &token, now, until, free as i64).await {
                Ok(claims) if !claims.is_empty() => {
                    for claim in claims {
                        running.spawn(work(broker.clone(), token.clone(), claim));
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "claiming work failed"),
            }
        }
        tokio::select! {
            _ = broker.wakers().converge.notified() => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = stopping(&mut stopped) => break,
        }
    }
    // Let work in progress finish its current AWS call and record it.
    while running.join_next().await.is_some() {}
}

/// Converges one claimed principal, renewing its lease meanwhile, and records a failure.
async fn work<I: IdentityCenter>(broker: Broker<I>, owner: String, claim: Claim) {
    let lease = broker.config().scheduler.lease.get();
    let started = Utc::now();
    let _heartbeat = AbortOnDrop({
        let db = broker.db().clone();
        let (owner, principal) = (owner.clone(), claim.principal_id.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let until =
                    Utc::now() + TimeDelta::from_std(lease).unwrap_or(TimeDelta::seconds(60));
                match principals::renew(&db, &principal, &owner, until).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!(error = %e, principal, "lease renewal failed"),
                }
            }
        })
    });
    match converge(&broker, &owner, &claim).await {
        Ok(()) => {}
        Err(ConvergeError::LeaseLost(principal)) => {
            tracing::warn!(
                principal,
                "lease lost mid-converge; the new holder redoes the work"
            );
        }
        Err(ConvergeError::Broker(e)) => {
            if let Err(store) =
                record_failure(&broker, &owner, &claim, &e.to_string(), started).await
            {
                tracing::error!(error = %store, principal = claim.principal_id, "could not record a converge failure");
            }
        }
    }
}

/// Stops the heartbeat however `work` ends (returns, panics or is cancelled), so a
/// lease is never renewed for work nobody is doing.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Backoff with full jitter: uniform in [0, min(60s, 2^attempts s)], at least 1s.
fn retry_delay(attempts: i64) -> Duration {
    let ceiling = Duration::from_secs(1u64 << attempts.clamp(0, 6)).min(MAX_RETRY_DELAY);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(60_000);
    Duration::from_millis(rand::rng().random_range(1000.min(millis)..=millis))
}

async fn record_failure<I: IdentityCenter>(
    broker: &Broker<I>,
    owner: &str,
    claim: &Claim,
    error: &str,
    started: DateTime<Utc>,
) -> Result<(), StoreError> {
    let now = Utc::now();
    let pending = requests::of_principal_unsettled(broker.db(), &claim.principal_id).await?;
    // Only grants this converge saw can count this failure; one approved meanwhile has
    // not been tried yet.
    let grants: Vec<_> = pending
        .iter()
        .filter(|s| matches!(s.request.state, RequestState::Approved { approved_at } if approved_at <= started))
        .map(|s| s.request.id)
        .collect();
    let revokes: Vec<String> = pending
        .iter()
        .filter(|s| !s.request.wants_assignment())
        .map(|s| s.request.id.to_string())
        .collect();
    let delay = retry_delay(claim.attempts + 1);
    let next = now + TimeDelta::from_std(delay).unwrap_or(TimeDelta::seconds(60));

    let mut tx = broker.db().begin().await?;
    let Some(attempts) =
        principals::failed(&mut tx, &claim.principal_id, owner, error, next).await?
    else {
        // The lease moved on: its new holder records its own outcome.
        return Ok(());
    };
    let event = NewEvent::new(Action::ConvergeFailed, SYSTEM_ACTOR, now).details(json!({
        "principal_id": claim.principal_id,
        "attempt": attempts,
        "error": error,
        "grants_waiting": grants.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "revocations_waiting": revokes,
    }));
    audit::append(&mut tx, event).await?;
    tx.commit().await?;

    if !revokes.is_empty() {
        // The alarm: access that should be gone may still be live. Never given up on.
        tracing::error!(principal = claim.principal_id, attempt = attempts, error, requests = ?revokes, "revocation failing; will retry");
    }
    let grant_attempts = i64::from(broker.config().scheduler.grant_attempts);
    if attempts >= grant_attempts {
        for id in grants {
            let reason = format!("provisioning failed {attempts} times; last error: {error}");
            match broker.fail(id, reason, Utc::now()).await {
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, request = %id, "could not mark request failed")
                }
            }
        }
    } else if !grants.is_empty() {
        tracing::warn!(
            principal = claim.principal_id,
            attempt = attempts,
            error,
            "provisioning failed; will retry"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_is_bounded() {
        for attempts in 0..20 {
            let d = retry_delay(attempts);
            assert!(d <= MAX_RETRY_DELAY, "{d:?}");
            assert!(d >= Duration::from_secs(1), "{d:?}");
        }
    }
}
