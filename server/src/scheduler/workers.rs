//! Convergence workers: claim principals with a lease (kept by a heartbeat) and run a
//! converge pass over each. A pass that leaves work for later sets when to look again;
//! the workers wake for that time, for a local change, or at the poll interval (other
//! replicas' changes), whichever comes first.

use std::time::Duration;

use chrono::TimeDelta;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::converge::{ConvergeError, converge};
use super::lease::{Heartbeat, lease_until};
use super::{LeaseHolder, stopping};
use crate::aws::IdentityCenter;
use crate::broker::Broker;
use crate::store::principals::{self, Claim};

pub(super) async fn run<I: IdentityCenter>(
    broker: Broker<I>,
    holder: LeaseHolder,
    mut stopped: watch::Receiver<bool>,
) {
    let settings = &broker.config().scheduler;
    let workers = settings.workers as usize;
    let poll = settings.poll_interval.get();
    let lease = settings.lease.get();
    let mut running: JoinSet<()> = JoinSet::new();
    loop {
        if *stopped.borrow() {
            break;
        }
        let free = workers.saturating_sub(running.len());
        if free > 0 {
            let now = broker.now();
            let until = lease_until(now, lease);
            let token = holder.next_token();
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
        let wait = match principals::next_claim_due(broker.db(), broker.now()).await {
            // At least 50ms, so a retry due now cannot spin the loop.
            Ok(Some(due)) if free > 0 => (due - broker.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(poll)
                .max(Duration::from_millis(50)),
            _ => poll,
        };
        tokio::select! {
            _ = broker.wakers().converge.notified() => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stopping(&mut stopped) => break,
        }
    }
    // Let work in progress finish its current AWS call and record it.
    while running.join_next().await.is_some() {}
}

/// Converges one claimed principal, renewing its lease meanwhile. Failures of AWS are
/// handled inside the pass, each with its cause; what ends up here is jitgate's own
/// (the database), retried after a pause.
async fn work<I: IdentityCenter>(broker: Broker<I>, owner: String, claim: Claim) {
    let lease = broker.config().scheduler.lease.get();
    let _heartbeat = Heartbeat::start(
        format!("principal {}", claim.principal_id),
        lease,
        broker.clock(),
        {
            let db = broker.db().clone();
            let (owner, principal) = (owner.clone(), claim.principal_id.clone());
            move |until| {
                let (db, owner, principal) = (db.clone(), owner.clone(), principal.clone());
                async move { principals::renew(&db, &principal, &owner, until).await }
            }
        },
    );
    match converge(&broker, &owner, &claim).await {
        Ok(()) => {}
        Err(ConvergeError::LeaseLost(principal)) => {
            tracing::warn!(
                principal,
                "lease lost mid-converge; the new holder redoes the work"
            );
        }
        Err(ConvergeError::Broker(e)) => {
            tracing::error!(error = %e, principal = %claim.principal_id, "converge failed; retrying");
            let retry = broker.now() + TimeDelta::seconds(2);
            let recorded = async {
                let mut tx = broker.db().begin().await?;
                principals::postpone(&mut tx, &claim.principal_id, &owner, &e.to_string(), retry)
                    .await?;
                tx.commit().await
            };
            if let Err(store) = recorded.await {
                tracing::error!(error = %store, principal = %claim.principal_id, "could not record a converge failure; its lease runs out");
            }
        }
    }
}
