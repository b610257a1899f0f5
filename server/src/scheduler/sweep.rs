//! The cron sweep: lapses requests nobody answered in time, expires grants a timer
//! missed, and compares AWS with what jitgate made (drift). One replica at a time runs
//! it, under a job lease.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use tokio::sync::watch;

use super::expiry::expire_due;
use super::lease::{Heartbeat, lease_until};
use super::{LeaseHolder, stopping};
use crate::audit::{Action, NewEvent, SYSTEM_ACTOR};
use crate::aws::{AssignmentKey, IdentityCenter, PrincipalKind, delete_and_wait};
use crate::broker::{Broker, BrokerError, Catalog};
use crate::config::{DriftAction, parse_cron};
use crate::store::drift::{self, DriftKey};
use crate::store::{assignments, audit, jobs, principals, requests};

/// The job lease's name.
const SWEEP_JOB: &str = "sweep";

pub(super) async fn run<I: IdentityCenter>(
    broker: Broker<I>,
    holder: LeaseHolder,
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
    let lease = broker.config().scheduler.lease.get();
    let mut config_checked = false;
    loop {
        let Some(next) = schedule.after(&broker.now()).next() else {
            return;
        };
        let wait = (next - broker.now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopping(&mut stopped) => return,
        }
        // A lease per run, kept by a heartbeat while the sweep runs and released after
        // it: the next run, here or on another replica, never waits for it, and a sweep
        // whose process died is taken over after one lease.
        let owner = holder.next_token();
        let now = broker.now();
        match jobs::try_lease(broker.db(), SWEEP_JOB, &owner, now, lease_until(now, lease)).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::error!(error = %e, "sweep lease failed");
                continue;
            }
        }
        let heartbeat = Heartbeat::start(SWEEP_JOB.into(), lease, broker.clock(), {
            let (db, owner) = (broker.db().clone(), owner.clone());
            move |until| {
                let (db, owner) = (db.clone(), owner.clone());
                async move { jobs::renew(&db, SWEEP_JOB, &owner, until).await }
            }
        });
        if let Err(e) = sweep_once(&broker, &owner, &mut config_checked).await {
            tracing::error!(error = %e, "sweep failed; next run retries");
        }
        drop(heartbeat);
        if let Err(e) = jobs::release(broker.db(), SWEEP_JOB, &owner).await {
            tracing::warn!(error = %e, "could not release the sweep lease; it runs out");
        }
    }
}

/// One sweep pass.
pub async fn sweep_once<I: IdentityCenter>(
    broker: &Broker<I>,
    owner: &str,
    config_checked: &mut bool,
) -> Result<(), BrokerError> {
    // Requests of a removed profile can only exist from before this process's config
    // (none can be made or approved under it now): one look per process is enough.
    if !*config_checked {
        close_removed_profiles(broker).await?;
        *config_checked = true;
    }
    for profile in &broker.config().profiles {
        let timeout = TimeDelta::from_std(profile.approval_timeout.get()).unwrap_or(TimeDelta::MAX);
        let cutoff = broker
            .now()
            .checked_sub_signed(timeout)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        for id in requests::pending_since_before(broker.db(), &profile.name, cutoff, 10_000).await?
        {
            if let Err(e) = broker.lapse(id, broker.now()).await {
                tracing::error!(error = %e, request = %id, "could not lapse request");
            }
        }
    }
    expire_due(broker).await?;
    crate::store::cli_logins::purge_expired(broker.db(), broker.now()).await?;
    match broker.catalog().get() {
        Ok(catalog) => check_drift(broker, &catalog, owner).await,
        // Nothing to compare with until the permission sets are known.
        Err(_) => Ok(()),
    }
}

/// Closes the open requests of profiles no longer in the config: pending ones lapse,
/// approved ones not yet active fail, each with the reason in the audit trail. (Active
/// grants of such a profile run until they expire or are revoked.)
async fn close_removed_profiles<I: IdentityCenter>(broker: &Broker<I>) -> Result<(), BrokerError> {
    for profile in requests::open_profiles(broker.db()).await? {
        if broker.config().profile(&profile).is_some() {
            continue;
        }
        for id in requests::open_of_profile(broker.db(), &profile, 10_000).await? {
            match broker.close_removed(id, broker.now()).await {
                Ok(Some(_)) => {
                    tracing::warn!(request = %id, profile, "closed a request of a profile removed from the configuration");
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, request = %id, "could not close a request of a removed profile")
                }
            }
        }
    }
    Ok(())
}

/// Finds assignments on jitgate's permission sets that jitgate has no record of
/// making (made by hand, to a group, or left by a bug) and reports or removes them.
/// Each is reported once (remembered in the database across restarts); one that goes
/// away is forgotten, so it is reported again if it comes back.
async fn check_drift<I: IdentityCenter>(
    broker: &Broker<I>,
    catalog: &Catalog,
    owner: &str,
) -> Result<(), BrokerError> {
    let known_before: Vec<AssignmentKey> = assignments::all(broker.db())
        .await?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mut in_aws = Vec::new();
    for (account_id, permission_set_arn) in catalog.managed(broker.config()) {
        for (principal_type, principal_id) in broker
            .idc()
            .assigned_principals(&account_id, &permission_set_arn)
            .await?
        {
            in_aws.push(DriftKey {
                principal_type,
                principal_id,
                account_id: account_id.clone(),
                permission_set_arn: permission_set_arn.clone(),
            });
        }
    }
    // An assignment jitgate made is known if its row existed before or after the
    // listing: a row is written before its create is sent and removed only after its
    // delete succeeded, so one of the two reads saw it whichever happened meanwhile.
    let known: HashSet<AssignmentKey> = known_before
        .into_iter()
        .chain(
            assignments::all(broker.db())
                .await?
                .into_iter()
                .map(|(k, _)| k),
        )
        .collect();
    let drift: HashSet<DriftKey> = in_aws
        .into_iter()
        .filter(|d| d.principal_type == PrincipalKind::Group || !known.contains(&key_of(d)))
        .collect();
    let seen = drift::seen(broker.db()).await?;
    for gone in seen.difference(&drift) {
        drift::forget(broker.db(), gone).await?;
    }
    let action = broker.config().scheduler.drift;
    let mut found: Vec<&DriftKey> = drift.iter().collect();
    found.sort();
    for key in found {
        match action {
            DriftAction::Report => {
                if !seen.contains(key) {
                    tracing::warn!(assignment = ?key, "drift: an assignment on a jitgate permission set that jitgate did not make");
                    let now = broker.now();
                    let mut tx = broker.db().begin().await?;
                    drift::record(&mut tx, key, now).await?;
                    let event = NewEvent::new(Action::DriftFound, SYSTEM_ACTOR, now)
                        .details(json!({ "assignment": key }));
                    audit::append(&mut tx, event).await?;
                    tx.commit().await?;
                }
            }
            DriftAction::Remove => remove_drift(broker, owner, key).await?,
        }
    }
    Ok(())
}

/// The user assignment key of a drift (for comparison with jitgate's records).
fn key_of(d: &DriftKey) -> AssignmentKey {
    AssignmentKey {
        principal_id: d.principal_id.clone().into(),
        account_id: d.account_id.clone(),
        permission_set_arn: d.permission_set_arn.clone().into(),
    }
}

/// Removes an unknown assignment. A user's is handed to convergence: recorded as one
/// jitgate may have made, with the person marked for work, so the next pass deletes it
/// (no grant wants it) under the person's lease, with the guarantees of any revocation;
/// if a grant comes to want it first, it is kept. A group's (jitgate never assigns
/// groups) is deleted here.
async fn remove_drift<I: IdentityCenter>(
    broker: &Broker<I>,
    _owner: &str,
    drift: &DriftKey,
) -> Result<(), BrokerError> {
    let key = key_of(drift);
    if drift.principal_type == PrincipalKind::Group {
        let timeout = broker.config().aws.operation_timeout.get();
        delete_and_wait(broker.idc(), &key, PrincipalKind::Group, timeout).await?;
        tracing::warn!(assignment = ?drift, "drift removed (a group's assignment)");
        return record_removed(broker, drift).await;
    }
    let mut tx = broker.db().begin().await?;
    principals::lock(&mut tx, &key.principal_id).await?;
    if assignments::is_tracked(&mut tx, &key).await? {
        // jitgate has started to track it since the listing: not drift.
        return Ok(());
    }
    assignments::put(
        &mut tx,
        &key,
        assignments::AssignmentState::Creating,
        broker.now(),
    )
    .await?;
    principals::touch(&mut tx, &key.principal_id).await?;
    let event = NewEvent::new(Action::DriftRemoved, SYSTEM_ACTOR, broker.now())
        .details(json!({ "assignment": drift, "removed_by": "convergence" }));
    audit::append(&mut tx, event).await?;
    tx.commit().await?;
    broker.wakers().converge.notify_one();
    tracing::warn!(assignment = ?drift, "drift: removing an assignment jitgate did not make");
    drift::forget(broker.db(), drift).await?;
    Ok(())
}

async fn record_removed<I: IdentityCenter>(
    broker: &Broker<I>,
    drift: &DriftKey,
) -> Result<(), BrokerError> {
    let mut tx = broker.db().begin().await?;
    let event = NewEvent::new(Action::DriftRemoved, SYSTEM_ACTOR, broker.now())
        .details(json!({ "assignment": drift }));
    audit::append(&mut tx, event).await?;
    tx.commit().await?;
    drift::forget(broker.db(), drift).await?;
    Ok(())
}
