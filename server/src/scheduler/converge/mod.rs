//! Converging one person's AWS state on what their grants want (the controller step).
//!
//! Desired: an account assignment for every approved or active request, and, when one
//! of them is in principal-tag mode, its OS user in the run-as attribute. Known: the
//! `assignments` rows and `run_as_written`, written *before* each create or attribute
//! write, so after a crash at any point they cover everything AWS may hold.
//!
//! A pass over a claimed person is a loop of steps. Each step reads what jitgate knows,
//! lets `plan` decide (the rules and their order are documented there), and carries the
//! plan out: it sends IdC operations without waiting for them, polls the ones in
//! progress, and records every outcome in its own transaction with its audit event. The
//! pass repeats steps while they make progress or operations are in progress, for at
//! most [`INLINE_WAIT`]; then it releases the person with the time to look again. So a
//! slow operation never holds up the person's other work (a revocation above all), and
//! a decision made meanwhile is picked up by the next step.
//!
//! Failures stay with their cause (an assignment's operation, the attribute): each is
//! recorded on that cause with its own back-off, logged once per attempt saying exactly
//! what is retried, and audited once per run of failures. A grant fails only when a
//! cause it needs has failed `[scheduler] grant_attempts` times; a revocation is never
//! given up.

mod plan;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use rand::Rng;
use serde_json::json;

use crate::audit::{Action, NewEvent, SYSTEM_ACTOR};
use crate::aws::{AssignmentKey, AwsError, IdentityCenter, OpKind, OpStatus, PrincipalKind};
use crate::broker::{Broker, BrokerError};
use crate::domain::RequestRecord;
use crate::domain::{PrincipalId, RequestId, RequestState, RunAsMode};
use crate::store::assignments::{self, AssignmentState, InFlight};
use crate::store::principals::{self, Claim, RunAs};
use crate::store::requests;
use crate::store::{StoreError, WriteTx, audit};
use plan::{Plan, Snapshot, Waiting, key_of};

/// How long one pass keeps polling operations in progress before it releases the person
/// (with a time to look again), so a worker is never tied up by one slow operation.
const INLINE_WAIT: Duration = Duration::from_secs(5);
/// First pause between polls of operations in progress; it grows by half to the max.
const FIRST_POLL: Duration = Duration::from_millis(200);
const MAX_POLL: Duration = Duration::from_secs(2);
/// Back-off ceiling for what a grant needs (creates, the attribute write).
const MAX_GRANT_RETRY: Duration = Duration::from_secs(60);
/// Back-off ceiling for revocations: they finish within seconds of AWS answering again.
const MAX_REVOKE_RETRY: Duration = Duration::from_secs(4);
/// When to look again at a person whose operation could not be sent because the
/// account's operations in progress are at the cap (not a failure).
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// Why a pass stopped early.
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

/// One pass over a claimed principal, as lease holder `owner`.
pub async fn converge<I: IdentityCenter>(
    broker: &Broker<I>,
    owner: &str,
    claim: &Claim,
) -> Result<(), ConvergeError> {
    let pass = Pass {
        broker,
        owner,
        principal: &claim.principal_id,
    };
    let started = tokio::time::Instant::now();
    let mut pause = FIRST_POLL;
    loop {
        // Read before the requests: a change made after this read bumps it again, so
        // recording it as converged never hides a newer decision.
        let generation = principals::generation(broker.db(), pass.principal).await?;
        let (plan, progressed) = pass.step().await?;
        if plan.is_done() {
            let mut tx = pass.tx().await?;
            principals::converged(&mut tx, pass.principal, owner, generation).await?;
            tx.commit().await?;
            return Ok(());
        }
        let out_of_time = started.elapsed() >= INLINE_WAIT;
        if progressed && !out_of_time {
            pause = FIRST_POLL;
            continue;
        }
        if out_of_time || !plan.has_operations() {
            // What is outstanding now, after this step's changes and failures.
            return pass.postpone().await;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(MAX_POLL);
    }
}

/// A cause of failure: what was attempted.
#[derive(Debug, Clone, Copy)]
enum Cause<'a> {
    /// An operation on an assignment (sending it, polling it, or its outcome).
    Assignment(&'a AssignmentKey, OpKind),
    /// Writing the OS user into the run-as attribute.
    WriteRunAs(&'a str),
    /// Clearing the run-as attribute.
    ClearRunAs,
}

impl Cause<'_> {
    /// Whether this cause ends access (never given up on, retried fast): clearing the
    /// attribute, or an operation on an assignment no grant wants (a delete, or a create
    /// still in flight for a grant revoked meanwhile).
    fn is_revocation(self, requests: &[RequestRecord]) -> bool {
        match self {
            Cause::Assignment(key, _) => !requests
                .iter()
                .any(|s| s.request.wants_assignment() && &key_of(s) == key),
            Cause::WriteRunAs(_) => false,
            Cause::ClearRunAs => true,
        }
    }

    /// What was attempted, for people: "create the assignment …".
    fn describe(self) -> String {
        match self {
            Cause::Assignment(key, OpKind::Create) => format!(
                "create the assignment of permission set {} on account {}",
                key.permission_set_arn, key.account_id
            ),
            Cause::Assignment(key, OpKind::Delete) => format!(
                "delete the assignment of permission set {} on account {}",
                key.permission_set_arn, key.account_id
            ),
            Cause::WriteRunAs(os_user) => format!("set your OS user ({os_user})"),
            Cause::ClearRunAs => "clear the OS-user attribute".to_owned(),
        }
    }

    /// The stored kind of a failing attribute cause.
    fn run_as_kind(self) -> &'static str {
        match self {
            Cause::ClearRunAs => "clear",
            _ => "write",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Cause::Assignment(_, OpKind::Create) => "assignment.create",
            Cause::Assignment(_, OpKind::Delete) => "assignment.delete",
            Cause::WriteRunAs(_) => "run_as.write",
            Cause::ClearRunAs => "run_as.clear",
        }
    }
}

/// What else a failure's transaction records besides the failure itself.
#[derive(Debug, Clone, Copy, Default)]
struct AlsoRecord<'a> {
    /// The operation ended (FAILED or given up): forget it.
    op_ended: bool,
    /// IdC refused the attribute write outright: the attribute holds this again.
    run_as_refused: Option<Option<&'a str>>,
}

/// The pass over one principal: the steps and how each outcome is recorded.
struct Pass<'a, I> {
    broker: &'a Broker<I>,
    owner: &'a str,
    principal: &'a PrincipalId,
}

/// What one step knows: the person's requests, their assignments, the attribute.
struct Known {
    requests: Vec<RequestRecord>,
    rows: Vec<assignments::AssignmentRow>,
    run_as: RunAs,
}

impl<I: IdentityCenter> Pass<'_, I> {
    async fn read(&self) -> Result<Known, ConvergeError> {
        let db = self.broker.db();
        Ok(Known {
            requests: requests::of_principal_unsettled(db, self.principal).await?,
            rows: assignments::of_principal(db, self.principal).await?,
            run_as: principals::run_as(db, self.principal).await?,
        })
    }

    fn plan(&self, known: &Known) -> Plan {
        let timeout = self.broker.config().aws.operation_timeout.get();
        plan::plan(&Snapshot {
            requests: &known.requests,
            rows: &known.rows,
            run_as: &known.run_as,
            now: self.broker.now(),
            operation_timeout: TimeDelta::from_std(timeout).unwrap_or(TimeDelta::MAX),
        })
    }

    /// Reads, plans and carries out one step; whether anything changed.
    async fn step(&self) -> Result<(Plan, bool), ConvergeError> {
        let known = self.read().await?;
        let requests = &known.requests;
        let plan = self.plan(&known);
        let timeout = self.broker.config().aws.operation_timeout.get();
        let mut progressed = false;
        for (key, op) in &plan.follow {
            progressed |= self.follow(key, op, requests).await?;
        }
        for (key, op) in &plan.timed_out {
            let error = AwsError::Timeout {
                operation: op.kind.operation(),
                waited_secs: timeout.as_secs(),
            };
            let also = AlsoRecord {
                op_ended: true,
                ..AlsoRecord::default()
            };
            self.failed(Cause::Assignment(key, op.kind), &error, requests, also)
                .await?;
            progressed = true;
        }
        for (key, owed) in &plan.delete {
            progressed |= self.delete(key, owed, requests).await?;
        }
        for (id, key, still) in &plan.keep {
            self.keep(*id, key, still).await?;
            progressed = true;
        }
        if !plan.settle.is_empty() {
            let mut tx = self.tx().await?;
            settle_all(&mut tx, &plan.settle, self.broker.now()).await?;
            tx.commit().await?;
            progressed = true;
        }
        if let Some(os_user) = &plan.write_run_as {
            progressed |= self.write_run_as(os_user, &known.run_as, requests).await?;
        }
        for (key, grants) in &plan.create {
            progressed |= self.create(key, grants, requests).await?;
        }
        for id in &plan.activate {
            // One request that cannot be activated must not hold up the others.
            match self.broker.activate(*id, self.broker.now()).await {
                Ok(_) => progressed = true,
                Err(e) => {
                    tracing::error!(error = %e, request = %id, "could not activate request")
                }
            }
        }
        if plan.clear_run_as {
            progressed |= self.clear_run_as(requests).await?;
        }
        Ok((plan, progressed))
    }

    /// Polls an operation in progress and records its end.
    async fn follow(
        &self,
        key: &AssignmentKey,
        op: &InFlight,
        requests: &[RequestRecord],
    ) -> Result<bool, ConvergeError> {
        let cause = Cause::Assignment(key, op.kind);
        match self
            .broker
            .idc()
            .operation_status(op.kind, &op.request_id)
            .await
        {
            Ok(OpStatus::InProgress) => Ok(false),
            Ok(OpStatus::Succeeded) => {
                match op.kind {
                    OpKind::Create => self.created(key, requests).await?,
                    OpKind::Delete => self.deleted(key, requests).await?,
                }
                Ok(true)
            }
            Ok(OpStatus::Failed(reason)) => {
                let error = AwsError::OperationFailed {
                    operation: op.kind.operation(),
                    reason,
                };
                let also = AlsoRecord {
                    op_ended: true,
                    ..AlsoRecord::default()
                };
                self.failed(cause, &error, requests, also).await?;
                Ok(true)
            }
            Err(error) => {
                self.failed(cause, &error, requests, AlsoRecord::default())
                    .await?;
                Ok(false)
            }
        }
    }

    /// Whether another assignment operation may be sent now: IdC allows about ten in
    /// progress for the whole account (`[aws] max_outstanding_assignments`, counted in the
    /// database across replicas); creates leave a quarter of them (at least one) to
    /// deletes, so revocations never queue behind a burst of grants.
    async fn may_send(&self, kind: OpKind) -> Result<bool, ConvergeError> {
        let limit = self.broker.config().aws.max_outstanding_assignments;
        Ok(assignments::in_flight_count(self.broker.db()).await? < send_cap(kind, limit))
    }

    /// Fails with `LeaseLost` unless this pass still holds the person: checked right
    /// before every AWS write, so a worker that lost its lease changes nothing in AWS.
    async fn ensure_lease(&self) -> Result<(), ConvergeError> {
        // Dropped unused: rolled back.
        drop(self.tx().await?);
        Ok(())
    }

    /// Sends the delete of an assignment no grant wants. The row is marked `creating`
    /// (it may or may not exist) first: if a grant wants it again later, it is created
    /// again rather than taken as present after a delete that may have gone through.
    async fn delete(
        &self,
        key: &AssignmentKey,
        owed: &[RequestId],
        requests: &[RequestRecord],
    ) -> Result<bool, ConvergeError> {
        if !self.may_send(OpKind::Delete).await? {
            tracing::debug!(owed = ?owed, "delete waits: the account's operations in progress are at the cap");
            return Ok(false);
        }
        let mut tx = self.tx().await?;
        assignments::put(&mut tx, key, AssignmentState::Creating, self.broker.now()).await?;
        tx.commit().await?;
        self.ensure_lease().await?;
        match self
            .broker
            .idc()
            .start_delete(key, PrincipalKind::User)
            .await
        {
            Ok(None) => {
                self.deleted(key, requests).await?;
                Ok(true)
            }
            Ok(Some(op)) => match op.status {
                OpStatus::Succeeded => {
                    self.deleted(key, requests).await?;
                    Ok(true)
                }
                OpStatus::Failed(reason) => {
                    let error = AwsError::OperationFailed {
                        operation: OpKind::Delete.operation(),
                        reason,
                    };
                    let cause = Cause::Assignment(key, OpKind::Delete);
                    self.failed(cause, &error, requests, AlsoRecord::default())
                        .await?;
                    Ok(false)
                }
                OpStatus::InProgress => {
                    self.started(key, OpKind::Delete, op.request_id).await?;
                    Ok(true)
                }
            },
            Err(error) => {
                let cause = Cause::Assignment(key, OpKind::Delete);
                self.failed(cause, &error, requests, AlsoRecord::default())
                    .await?;
                Ok(false)
            }
        }
    }

    /// Sends the create of an assignment grants want; the row is written first, so a
    /// crash after sending leaves it accounted for.
    async fn create(
        &self,
        key: &AssignmentKey,
        grants: &[RequestId],
        requests: &[RequestRecord],
    ) -> Result<bool, ConvergeError> {
        if !self.may_send(OpKind::Create).await? {
            tracing::debug!(grants = ?grants, "create waits: the account's operations in progress are at the cap");
            return Ok(false);
        }
        let mut tx = self.tx().await?;
        assignments::put(&mut tx, key, AssignmentState::Creating, self.broker.now()).await?;
        tx.commit().await?;
        self.ensure_lease().await?;
        let cause = Cause::Assignment(key, OpKind::Create);
        match self.broker.idc().start_create(key).await {
            Ok(op) => match op.status {
                OpStatus::InProgress => {
                    self.started(key, OpKind::Create, op.request_id).await?;
                    Ok(true)
                }
                OpStatus::Succeeded => {
                    self.created(key, requests).await?;
                    Ok(true)
                }
                OpStatus::Failed(reason) => {
                    let error = AwsError::OperationFailed {
                        operation: OpKind::Create.operation(),
                        reason,
                    };
                    self.failed(cause, &error, requests, AlsoRecord::default())
                        .await?;
                    Ok(false)
                }
            },
            Err(error) => {
                self.failed(cause, &error, requests, AlsoRecord::default())
                    .await?;
                Ok(false)
            }
        }
    }

    /// Records an operation IdC accepted, whoever holds the lease now: if another worker
    /// took over meanwhile it must learn of it (over-recording is safe, forgetting is
    /// not), and the person is marked for another look.
    async fn started(
        &self,
        key: &AssignmentKey,
        kind: OpKind,
        request_id: String,
    ) -> Result<(), ConvergeError> {
        let op = InFlight {
            kind,
            request_id,
            started_at: self.broker.now(),
        };
        match self.tx().await {
            Ok(mut tx) => {
                assignments::op_started(&mut tx, key, &op).await?;
                tx.commit().await?;
                Ok(())
            }
            Err(ConvergeError::LeaseLost(p)) => {
                let mut tx = self.broker.db().begin().await?;
                principals::lock(&mut tx, &key.principal_id).await?;
                assignments::op_started(&mut tx, key, &op).await?;
                principals::touch(&mut tx, &key.principal_id).await?;
                tx.commit().await?;
                Err(ConvergeError::LeaseLost(p))
            }
            Err(e) => Err(e),
        }
    }

    /// Records a create that succeeded.
    async fn created(
        &self,
        key: &AssignmentKey,
        requests: &[RequestRecord],
    ) -> Result<(), ConvergeError> {
        let wanting: Vec<RequestId> = requests
            .iter()
            .filter(|s| s.request.wants_assignment() && &key_of(s) == key)
            .map(|s| s.request.id)
            .collect();
        let event = NewEvent::new(Action::AssignmentCreated, SYSTEM_ACTOR, self.broker.now())
            .details(json!({ "assignment": key, "requests": ids(&wanting), "node": self.node() }));
        let event = match wanting.first() {
            Some(first) => event.request(first),
            None => event,
        };
        let mut tx = self.tx().await?;
        assignments::put(&mut tx, key, AssignmentState::Present, self.broker.now()).await?;
        assignments::op_ended(&mut tx, key).await?;
        assignments::succeeded(&mut tx, key).await?;
        audit::append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a delete that succeeded (or found nothing): the row goes, and the ended
    /// requests that owed it are settled.
    async fn deleted(
        &self,
        key: &AssignmentKey,
        requests: &[RequestRecord],
    ) -> Result<(), ConvergeError> {
        let owed: Vec<RequestId> = requests
            .iter()
            .filter(|s| !s.request.wants_assignment() && &key_of(s) == key)
            .map(|s| s.request.id)
            .collect();
        let event = NewEvent::new(Action::AssignmentDeleted, SYSTEM_ACTOR, self.broker.now())
            .details(json!({ "assignment": key, "requests": ids(&owed), "node": self.node() }));
        let event = match owed.last() {
            Some(last) => event.request(last),
            None => event,
        };
        let mut tx = self.tx().await?;
        assignments::remove(&mut tx, key).await?;
        settle_all(&mut tx, &owed, self.broker.now()).await?;
        audit::append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Settles an ended request whose assignment other grants still need.
    async fn keep(
        &self,
        id: RequestId,
        key: &AssignmentKey,
        still: &[RequestId],
    ) -> Result<(), ConvergeError> {
        let event = NewEvent::new(Action::AssignmentKept, SYSTEM_ACTOR, self.broker.now())
            .request(id)
            .details(json!({ "assignment": key, "still_needed_by": ids(still) }));
        let mut tx = self.tx().await?;
        settle_all(&mut tx, &[id], self.broker.now()).await?;
        audit::append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes the OS user a principal-tag grant needs into the attribute.
    async fn write_run_as(
        &self,
        os_user: &str,
        before: &RunAs,
        requests: &[RequestRecord],
    ) -> Result<bool, ConvergeError> {
        let mut tx = self.tx().await?;
        principals::run_as_intent(&mut tx, self.principal, os_user).await?;
        tx.commit().await?;
        self.ensure_lease().await?;
        match self
            .broker
            .idc()
            .set_run_as(self.principal, Some(os_user))
            .await
        {
            Ok(()) => {
                let event = NewEvent::new(Action::AttributeSet, SYSTEM_ACTOR, self.broker.now())
                    .details(json!({
                        "principal_id": self.principal,
                        "attribute": self.broker.config().aws.run_as_attribute,
                        "os_user": os_user,
                        "node": self.node(),
                    }));
                let mut tx = self.tx().await?;
                principals::run_as_confirmed(&mut tx, self.principal, Some(os_user)).await?;
                audit::append(&mut tx, event).await?;
                tx.commit().await?;
                Ok(true)
            }
            Err(error) => {
                // IdC refused outright: nothing was written, so nothing is owed for it.
                let also = AlsoRecord {
                    run_as_refused: error.is_refusal().then_some(before.written.as_deref()),
                    ..AlsoRecord::default()
                };
                self.failed(Cause::WriteRunAs(os_user), &error, requests, also)
                    .await?;
                Ok(false)
            }
        }
    }

    /// Clears the attribute once no grant needs it.
    async fn clear_run_as(&self, requests: &[RequestRecord]) -> Result<bool, ConvergeError> {
        self.ensure_lease().await?;
        match self.broker.idc().set_run_as(self.principal, None).await {
            Ok(()) => {
                let event =
                    NewEvent::new(Action::AttributeCleared, SYSTEM_ACTOR, self.broker.now())
                        .details(json!({
                            "principal_id": self.principal,
                            "attribute": self.broker.config().aws.run_as_attribute,
                            "node": self.node(),
                        }));
                let mut tx = self.tx().await?;
                principals::run_as_confirmed(&mut tx, self.principal, None).await?;
                audit::append(&mut tx, event).await?;
                tx.commit().await?;
                Ok(true)
            }
            Err(error) => {
                self.failed(Cause::ClearRunAs, &error, requests, AlsoRecord::default())
                    .await?;
                Ok(false)
            }
        }
    }

    /// Records a failure of `cause`, in one transaction with what else it changes: its
    /// back-off, an audit event when a run of failures starts, and, for what a grant
    /// needs, the failure of the grants once they have had their attempts; then one log
    /// line saying what is retried and when.
    async fn failed(
        &self,
        cause: Cause<'_>,
        error: &AwsError,
        requests: &[RequestRecord],
        also: AlsoRecord<'_>,
    ) -> Result<(), ConvergeError> {
        let affected = affected_by(cause, requests);
        let revocation = cause.is_revocation(requests);
        let now = self.broker.now();
        let text = error.to_string();
        let mut tx = self.tx().await?;
        if also.op_ended
            && let Cause::Assignment(key, _) = cause
        {
            assignments::op_ended(&mut tx, key).await?;
        }
        if let Some(written) = also.run_as_refused {
            principals::run_as_refused(&mut tx, self.principal, written).await?;
        }
        // The back-off grows with the failures of this run; the count comes back from
        // the update itself (no second read while the row is locked).
        let provisional = now + delta(retry_delay(1, revocation));
        let count = match cause {
            Cause::Assignment(key, kind) => {
                assignments::failed(&mut tx, key, kind, &text, provisional).await?
            }
            Cause::WriteRunAs(_) | Cause::ClearRunAs => {
                principals::run_as_failed(
                    &mut tx,
                    self.principal,
                    cause.run_as_kind(),
                    &text,
                    provisional,
                )
                .await?
            }
        };
        let retry_in = retry_delay(count, revocation);
        if count > 1 {
            let retry_at = now + delta(retry_in);
            match cause {
                Cause::Assignment(key, kind) => {
                    assignments::failed_retry_at(&mut tx, key, kind, retry_at).await?
                }
                _ => principals::run_as_retry_at(&mut tx, self.principal, retry_at).await?,
            }
        }
        let grant_attempts = i64::from(self.broker.config().scheduler.grant_attempts);
        let gives_up = !revocation && count >= grant_attempts && !affected.is_empty();
        if count == 1 || gives_up {
            let mut event =
                NewEvent::new(Action::ConvergeFailed, SYSTEM_ACTOR, now).details(json!({
                    "principal_id": self.principal,
                    "cause": cause.label(),
                    "attempted": cause.describe(),
                    "attempt": count,
                    "error": text,
                    "requests": ids(&affected),
                    "node": self.node(),
                }));
            if let Some(first) = affected.first() {
                event = event.request(first);
            }
            audit::append(&mut tx, event).await?;
        }
        if gives_up {
            // The next grant that needs this cause gets attempts of its own.
            match cause {
                Cause::Assignment(key, _) => assignments::failures_reset(&mut tx, key).await?,
                _ => principals::run_as_failures_reset(&mut tx, self.principal).await?,
            }
        }
        tx.commit().await?;

        let retry_secs = retry_in.as_secs_f32();
        if revocation {
            // The alarm: access that should be gone may still be live. Never given up on.
            tracing::error!(
                principal = %self.principal,
                attempt = count,
                retry_in_secs = retry_secs,
                requests = ?ids(&affected),
                error = %text,
                "revocation failing; will retry: could not {}",
                cause.describe()
            );
        } else if gives_up {
            tracing::error!(
                principal = %self.principal,
                attempt = count,
                requests = ?ids(&affected),
                error = %text,
                "provisioning failed; giving up on the grants: could not {}",
                cause.describe()
            );
        } else {
            tracing::warn!(
                principal = %self.principal,
                attempt = count,
                of = grant_attempts,
                retry_in_secs = retry_secs,
                requests = ?ids(&affected),
                error = %text,
                "provisioning failing; will retry: could not {}",
                cause.describe()
            );
        }
        if gives_up {
            let reason = format!(
                "provisioning failed after {count} attempts: {}. An administrator can find \
                 the detail in the audit trail (aws.converge_failed).",
                error.plain_reason(&cause.describe())
            );
            for id in affected.iter().filter(|id| {
                requests.iter().any(|s| {
                    s.request.id == **id && matches!(s.request.state, RequestState::Approved { .. })
                })
            }) {
                if let Err(e) = self
                    .broker
                    .fail(*id, reason.clone(), self.broker.now())
                    .await
                {
                    tracing::error!(error = %e, request = %id, "could not mark request failed");
                }
            }
        }
        Ok(())
    }

    /// Releases the person with what is outstanding now (read again, after this pass's
    /// changes and failures) and when to look again: the earliest retry, sooner while an
    /// operation is in progress or waits for room among the operations in progress.
    async fn postpone(&self) -> Result<(), ConvergeError> {
        let known = self.read().await?;
        let plan = self.plan(&known);
        let now = self.broker.now();
        let soon = now + delta(BUSY_RETRY);
        let waits_for_room = !plan.delete.is_empty() || !plan.create.is_empty();
        let next = match plan.next_retry() {
            Some(at) if !plan.has_operations() && !waits_for_room => at.max(now),
            Some(at) => at.clamp(now, soon),
            None => soon,
        };
        let outstanding: Vec<String> = plan.waiting.iter().map(describe_waiting).collect();
        let mut tx = self.tx().await?;
        principals::postpone(
            &mut tx,
            self.principal,
            self.owner,
            &outstanding.join("; "),
            next,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The node this pass runs on (the lease owner up to `#`), recorded with what it
    /// did in AWS so an operator can tell replicas' work apart.
    fn node(&self) -> &str {
        self.owner.split('#').next().unwrap_or(self.owner)
    }

    /// A transaction of this pass, opened only while we hold the lease, so a worker
    /// whose lease was taken over records nothing.
    async fn tx(&self) -> Result<WriteTx, ConvergeError> {
        let mut tx = self.broker.db().begin().await?;
        if !principals::holds_lease(&mut tx, self.principal, self.owner).await? {
            return Err(ConvergeError::LeaseLost(self.principal.to_string()));
        }
        Ok(tx)
    }
}

/// The requests a failure of `cause` concerns: the grants that need it, or the ended
/// requests whose revocation waits on it.
fn affected_by(cause: Cause<'_>, requests: &[RequestRecord]) -> Vec<RequestId> {
    requests
        .iter()
        .filter(|s| match cause {
            Cause::Assignment(key, OpKind::Create) => {
                s.request.wants_assignment() && &key_of(s) == key
            }
            Cause::Assignment(key, OpKind::Delete) => {
                !s.request.wants_assignment() && &key_of(s) == key
            }
            Cause::WriteRunAs(_) => {
                s.request.wants_assignment() && s.request.run_as_mode == RunAsMode::PrincipalTag
            }
            Cause::ClearRunAs => {
                !s.request.wants_assignment() && s.request.run_as_mode == RunAsMode::PrincipalTag
            }
        })
        .map(|s| s.request.id)
        .collect()
}

fn describe_waiting(w: &Waiting) -> String {
    match w {
        Waiting::Operation(key, kind) => format!(
            "{} of {}/{} in progress",
            kind.operation(),
            key.account_id,
            key.permission_set_arn
        ),
        Waiting::AssignmentRetry(key, at) => format!(
            "assignment {}/{} retried at {}",
            key.account_id,
            key.permission_set_arn,
            at.to_rfc3339()
        ),
        Waiting::RunAsRetry(at) => format!("run-as attribute retried at {}", at.to_rfc3339()),
        Waiting::NextStep => "more to do".to_owned(),
    }
}

fn ids(requests: &[RequestId]) -> Vec<String> {
    requests.iter().map(ToString::to_string).collect()
}

async fn settle_all(
    tx: &mut WriteTx,
    ids: &[RequestId],
    now: chrono::DateTime<Utc>,
) -> Result<(), StoreError> {
    for id in ids {
        requests::settle(tx, *id, now).await?;
    }
    Ok(())
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::seconds(60))
}

/// How many operations may be in progress for one of `kind` to be sent, of `limit`:
/// creates leave a quarter (rounded up) to deletes once there are two or more.
fn send_cap(kind: OpKind, limit: u32) -> i64 {
    let limit = i64::from(limit.max(1));
    match kind {
        OpKind::Delete => limit,
        OpKind::Create if limit >= 2 => limit - (limit + 3) / 4,
        OpKind::Create => limit,
    }
}

/// Back-off before attempt `attempt + 1` of a cause, with full jitter and at least
/// half a second: up to a minute for what grants need, a few seconds for revocations,
/// which must finish soon after AWS answers again.
fn retry_delay(attempt: i64, revocation: bool) -> Duration {
    let cap = if revocation {
        MAX_REVOKE_RETRY
    } else {
        MAX_GRANT_RETRY
    };
    let ceiling = Duration::from_millis(500 << attempt.clamp(0, 8)).min(cap);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(60_000);
    Duration::from_millis(rand::rng().random_range(500.min(millis)..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_leave_room_for_deletes() {
        assert_eq!(send_cap(OpKind::Delete, 10), 10);
        assert_eq!(send_cap(OpKind::Create, 10), 7);
        assert_eq!(send_cap(OpKind::Create, 4), 3);
        assert_eq!(send_cap(OpKind::Create, 2), 1);
        assert_eq!(send_cap(OpKind::Create, 1), 1, "one slot cannot be split");
        assert_eq!(send_cap(OpKind::Delete, 0), 1);
    }

    #[test]
    fn retry_delays_are_bounded_per_kind() {
        for attempt in 0..30 {
            let grant = retry_delay(attempt, false);
            assert!(grant >= Duration::from_millis(500) && grant <= MAX_GRANT_RETRY);
            let revoke = retry_delay(attempt, true);
            assert!(revoke >= Duration::from_millis(500) && revoke <= MAX_REVOKE_RETRY);
        }
    }
}
