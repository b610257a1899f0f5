//! The cron sweep: lapses requests nobody answered in time, expires grants a timer
//! missed, and compares AWS with what jitgate made (drift). One replica at a time runs
//! it, under a job lease.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use tokio::sync::watch;

use super::expiry::expire_due;
use super::stopping;
use crate::audit::{Action, NewEvent, SYSTEM_ACTOR};
use crate::aws::{AssignmentKey, IdentityCenter};
use crate::broker::{Broker, BrokerError, Catalog};
use crate::config::{DriftAction, parse_cron};
use crate::store::{assignments, audit, jobs, principals, requests};

/// How long one sweep may hold the job lease.
const SWEEP_LEASE: TimeDelta = TimeDelta::minutes(10);

pub(super) async fn run<I: IdentityCenter>(
    broker: Broker<I>,
    catalog: Arc<Catalog>,
    owner: String,
    mut stopped: watch::Receiver<bool>,
) {
    let schedule = match parse_cron(&broker.config().scheduler.sweep) {
        Ok(s) => s,
        Err(e) => {
            // check-config refuses this at start; here only as a last guard.
            tracing::error!(error = %e, "sweep disabled: bad schedule");
            return;
        }
    };
    let mut reported: HashSet<AssignmentKey> = HashSet::new();
    loop {
        let Some(next) = schedule.upcoming(Utc).next() else {
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopping(&mut stopped) => return,
        }
        let now = Utc::now();
        match jobs::try_lease(broker.db(), "sweep", &owner, now, now + SWEEP_LEASE).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::error!(error = %e, "sweep lease failed");
                continue;
            }
        }
        if let Err(e) = sweep_once(&broker, &catalog, &owner, &mut reported).await {
            tracing::error!(error = %e, "sweep failed; next run retries");
        }
    }
}

/// One sweep pass.
pub async fn sweep_once<I: IdentityCenter>(
    broker: &Broker<I>,
    catalog: &Catalog,
    owner: &str,
    reported: &mut HashSet<AssignmentKey>,
) -> Result<(), BrokerError> {
    for profile in &broker.config().profiles {
        let timeout = TimeDelta::from_std(profile.approval_timeout.get()).unwrap_or(TimeDelta::MAX);
        let cutoff = Utc::now()
            .checked_sub_signed(timeout)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        for id in requests::pending_since_before(broker.db(), &profile.name, cutoff, 10_000).await?
        {
            if let Err(e) = broker.lapse(id, Utc::now()).await {
                tracing::error!(error = %e, request = %id, "could not lapse request");
            }
        }
    }
    expire_due(broker).await?;
    check_drift(broker, catalog, owner, reported).await
}

/// Finds assignments on jitgate's permission sets that jitgate has no record of
/// making (made by hand, or left by a bug) and reports or removes them.
async fn check_drift<I: IdentityCenter>(
    broker: &Broker<I>,
    catalog: &Catalog,
    owner: &str,
    reported: &mut HashSet<AssignmentKey>,
) -> Result<(), BrokerError> {
    let mut in_aws = Vec::new();
    for (account_id, permission_set_arn) in catalog.managed(broker.config()) {
        for principal_id in broker
            .idc()
            .assigned_users(&account_id, &permission_set_arn)
            .await?
        {
            in_aws.push(AssignmentKey {
                principal_id,
                account_id: account_id.clone(),
                permission_set_arn: permission_set_arn.clone(),
            });
        }
    }
    // Read our records only after listing AWS: a row is written before its create is
    // sent, so anything the listing saw that jitgate made is already recorded here.
    let known: HashSet<AssignmentKey> = assignments::all(broker.db())
        .await?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let action = broker.config().scheduler.drift;
    for key in in_aws.into_iter().filter(|k| !known.contains(k)) {
        match action {
            DriftAction::Report => {
                tracing::warn!(assignment = ?key, "drift: an assignment on a jitgate permission set that jitgate did not make");
                if reported.insert(key.clone()) {
                    record(broker, Action::DriftFound, &key).await?;
                }
            }
            DriftAction::Remove => remove_drift(broker, owner, &key).await?,
        }
    }
    Ok(())
}

/// Deletes an unknown assignment while holding its person's lease, so no converge of
/// that person runs meanwhile; skipped (until the next sweep) if one is running, or if
/// jitgate has started to track the assignment since the listing.
async fn remove_drift<I: IdentityCenter>(
    broker: &Broker<I>,
    owner: &str,
    key: &AssignmentKey,
) -> Result<(), BrokerError> {
    let now = Utc::now();
    let until = now
        + TimeDelta::from_std(broker.config().scheduler.lease.get())
            .unwrap_or(TimeDelta::seconds(60));
    if !principals::try_lease(broker.db(), &key.principal_id, owner, now, until).await? {
        return Ok(());
    }
    let tracked = assignments::of_principal(broker.db(), &key.principal_id)
        .await?
        .iter()
        .any(|(k, _)| k == key);
    let result = if tracked {
        Ok(())
    } else {
        match broker.idc().delete_assignment(key).await {
            Ok(()) => {
                tracing::warn!(assignment = ?key, "drift removed");
                record(broker, Action::DriftRemoved, key).await
            }
            Err(e) => Err(e.into()),
        }
    };
    principals::release(broker.db(), &key.principal_id, owner).await?;
    result
}

async fn record<I: IdentityCenter>(
    broker: &Broker<I>,
    action: Action,
    key: &AssignmentKey,
) -> Result<(), BrokerError> {
    let mut tx = broker.db().begin().await?;
    let event =
        NewEvent::new(action, SYSTEM_ACTOR, Utc::now()).details(json!({ "assignment": key }));
    audit::append(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}
