//! Converging one person's AWS state on what their grants want (the controller step).
//!
//! Desired: an account assignment for every approved or active request, and, when one
//! of them is in principal-tag mode, its OS user in the run-as attribute. Known: the
//! `assignments` rows and `run_as_written`, written *before* each create or attribute
//! write, so after a crash at any point they cover everything AWS may hold.
//!
//! Order: first remove what no grant wants (revocations never wait behind a grant),
//! settling the ended requests; then write the run-as attribute, so an OS user is
//! never live on an assignment left from an earlier grant; then create, then activate;
//! last, clear the attribute when no grant needs it.

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::json;

use crate::audit::{Action, NewEvent, SYSTEM_ACTOR};
use crate::aws::{AssignmentKey, IdentityCenter};
use crate::broker::{Broker, BrokerError};
use crate::domain::{RequestId, RequestState, RunAsMode};
use crate::store::assignments::{self, AssignmentState};
use crate::store::principals::{self, Claim};
use crate::store::requests::{self, StoredRequest};
use crate::store::{StoreError, WriteTx, audit};

/// Why a converge step stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConvergeError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("lease on principal {0} was lost to another worker")]
    LeaseLost(String),
}

impl From<StoreError> for ConvergeError {
    fn from(e: StoreError) -> Self {
        ConvergeError::Broker(e.into())
    }
}

impl From<crate::aws::AwsError> for ConvergeError {
    fn from(e: crate::aws::AwsError) -> Self {
        ConvergeError::Broker(e.into())
    }
}

/// What one principal's grants want from AWS.
struct Desired<'a> {
    assignments: BTreeMap<AssignmentKey, Vec<&'a StoredRequest>>,
    run_as: Option<String>,
}

fn key_of(s: &StoredRequest) -> AssignmentKey {
    AssignmentKey {
        principal_id: s.principal_id.clone(),
        account_id: s.request.account.to_string(),
        permission_set_arn: s.permission_set_arn.clone(),
    }
}

fn desired(requests: &[StoredRequest]) -> Desired<'_> {
    let mut assignments: BTreeMap<AssignmentKey, Vec<&StoredRequest>> = BTreeMap::new();
    let mut run_as = None;
    for s in requests.iter().filter(|s| s.request.wants_assignment()) {
        assignments.entry(key_of(s)).or_default().push(s);
        if s.request.run_as_mode == RunAsMode::PrincipalTag && run_as.is_none() {
            run_as = Some(s.request.os_user.to_string());
        }
    }
    Desired {
        assignments,
        run_as,
    }
}

fn ids(requests: &[&StoredRequest]) -> Vec<String> {
    requests.iter().map(|s| s.request.id.to_string()).collect()
}

/// One converge of one claimed principal, as lease holder `owner`.
pub async fn converge<I: IdentityCenter>(
    broker: &Broker<I>,
    owner: &str,
    claim: &Claim,
) -> Result<(), ConvergeError> {
    let db = broker.db();
    let principal = claim.principal_id.as_str();
    let requests = requests::of_principal_unsettled(db, principal).await?;
    let want = desired(&requests);
    let have: BTreeMap<AssignmentKey, AssignmentState> = assignments::of_principal(db, principal)
        .await?
        .into_iter()
        .collect();
    let run_as = principals::run_as(db, principal).await?;
    let step = Step {
        broker,
        owner,
        principal,
    };
    let ended: Vec<&StoredRequest> = requests
        .iter()
        .filter(|s| !s.request.wants_assignment())
        .collect();

    for key in have.keys().filter(|k| !want.assignments.contains_key(*k)) {
        broker.idc().delete_assignment(key).await?;
        let owed: Vec<&StoredRequest> = ended
            .iter()
            .copied()
            .filter(|s| &key_of(s) == key)
            .collect();
        let event = NewEvent::new(Action::AssignmentDeleted, SYSTEM_ACTOR, Utc::now())
            .details(json!({ "assignment": key, "requests": ids(&owed) }));
        let event = match owed.last() {
            Some(last) => event.request(last.request.id),
            None => event,
        };
        let settled: Vec<RequestId> = owed.iter().map(|s| s.request.id).collect();
        let mut tx = step.tx().await?;
        assignments::remove(&mut tx, key).await?;
        settle_all(&mut tx, &settled).await?;
        audit::append(&mut tx, event).await?;
        tx.commit().await?;
    }

    // Ended requests whose assignment another grant still needs, or that never got one.
    for s in &ended {
        let key = key_of(s);
        if have.contains_key(&key) && !want.assignments.contains_key(&key) {
            continue; // settled with the delete above
        }
        let mut tx = step.tx().await?;
        settle_all(&mut tx, &[s.request.id]).await?;
        if let Some(still) = want.assignments.get(&key) {
            let event = NewEvent::new(Action::AssignmentKept, SYSTEM_ACTOR, Utc::now())
                .request(s.request.id)
                .details(json!({ "assignment": key, "still_needed_by": ids(still) }));
            audit::append(&mut tx, event).await?;
        }
        tx.commit().await?;
    }

    if let Some(os_user) = &want.run_as
        && run_as.confirmed.as_deref() != Some(os_user.as_str())
    {
        let mut tx = step.tx().await?;
        principals::run_as_intent(&mut tx, principal, os_user).await?;
        tx.commit().await?;
        broker.idc().set_run_as(principal, Some(os_user)).await?;
        let event = NewEvent::new(Action::AttributeSet, SYSTEM_ACTOR, Utc::now()).details(json!({
            "principal_id": principal,
            "attribute": broker.config().aws.run_as_attribute,
            "os_user": os_user,
        }));
        let mut tx = step.tx().await?;
        principals::run_as_confirmed(&mut tx, principal, Some(os_user)).await?;
        audit::append(&mut tx, event).await?;
        tx.commit().await?;
    }

    for (key, wanting) in &want.assignments {
        if have.get(key) == Some(&AssignmentState::Present) {
            continue;
        }
        let mut tx = step.tx().await?;
        assignments::put(&mut tx, key, AssignmentState::Creating, Utc::now()).await?;
        tx.commit().await?;
        broker.idc().create_assignment(key).await?;
        let event = NewEvent::new(Action::AssignmentCreated, SYSTEM_ACTOR, Utc::now())
            .details(json!({ "assignment": key, "requests": ids(wanting) }));
        let event = match wanting.first() {
            Some(first) => event.request(first.request.id),
            None => event,
        };
        let mut tx = match step.tx().await {
            Ok(tx) => tx,
            Err(ConvergeError::LeaseLost(p)) => {
                // Our create went through after another worker took over and may have
                // deleted the row: record it again and have the person converged again.
                keep_track_of(broker, key).await?;
                return Err(ConvergeError::LeaseLost(p));
            }
            Err(e) => return Err(e),
        };
        assignments::put(&mut tx, key, AssignmentState::Present, Utc::now()).await?;
        audit::append(&mut tx, event).await?;
        tx.commit().await?;
    }

    for s in want.assignments.values().flatten() {
        if matches!(s.request.state, RequestState::Approved { .. }) {
            // One request that cannot be activated must not hold up the others.
            if let Err(e) = broker.activate(s.request.id, Utc::now()).await {
                tracing::error!(error = %e, request = %s.request.id, "could not activate request");
            }
        }
    }

    if want.run_as.is_none() && (run_as.written.is_some() || run_as.confirmed.is_some()) {
        broker.idc().set_run_as(principal, None).await?;
        let event =
            NewEvent::new(Action::AttributeCleared, SYSTEM_ACTOR, Utc::now()).details(json!({
                "principal_id": principal,
                "attribute": broker.config().aws.run_as_attribute,
            }));
        let mut tx = step.tx().await?;
        principals::run_as_confirmed(&mut tx, principal, None).await?;
        audit::append(&mut tx, event).await?;
        tx.commit().await?;
    }

    let mut tx = step.tx().await?;
    principals::converged(&mut tx, principal, owner, claim.generation).await?;
    tx.commit().await?;
    Ok(())
}

/// Records an assignment that may exist in AWS, whoever holds the lease: over-recording
/// is always safe (the next converge deletes what no grant wants), forgetting is not.
async fn keep_track_of<I: IdentityCenter>(
    broker: &Broker<I>,
    key: &AssignmentKey,
) -> Result<(), StoreError> {
    let mut tx = broker.db().begin().await?;
    principals::lock(&mut tx, &key.principal_id).await?;
    assignments::put(&mut tx, key, AssignmentState::Creating, Utc::now()).await?;
    principals::touch(&mut tx, &key.principal_id).await?;
    tx.commit().await?;
    Ok(())
}

async fn settle_all(tx: &mut WriteTx, ids: &[RequestId]) -> Result<(), StoreError> {
    let now = Utc::now();
    for id in ids {
        requests::settle(tx, *id, now).await?;
    }
    Ok(())
}

/// Opens the transactions of one converge, each only while we hold the lease, so a
/// worker whose lease was taken over records nothing.
struct Step<'a, I> {
    broker: &'a Broker<I>,
    owner: &'a str,
    principal: &'a str,
}

impl<I: IdentityCenter> Step<'_, I> {
    async fn tx(&self) -> Result<WriteTx, ConvergeError> {
        let mut tx = self.broker.db().begin().await?;
        if !principals::holds_lease(&mut tx, self.principal, self.owner).await? {
            return Err(ConvergeError::LeaseLost(self.principal.to_owned()));
        }
        Ok(tx)
    }
}
