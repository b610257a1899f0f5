//! What one converge step should do for a person, decided from what jitgate knows (the
//! person's requests, the assignments it may have made, the run-as attribute) and the
//! time: pure code, so every rule below is unit-tested without AWS or a database.
//!
//! The rules, in the order a step applies them:
//! 1. Follow every operation in progress (poll its status); give up on one older than
//!    the operation timeout.
//! 2. Delete every assignment no approved or active request wants (revocations first,
//!    never behind a grant); one with a create in progress is deleted once the create
//!    ends (IdC refuses a second operation on the same assignment meanwhile).
//! 3. Settle ended requests whose assignment another grant still needs, or that never
//!    had one.
//! 4. Write the run-as attribute for a principal-tag grant once no assignment that could
//!    carry another OS user is still being removed (so an old grant's assignment never
//!    runs as a new OS user).
//! 5. Create the assignments grants want; a principal-tag grant's only once the
//!    attribute holds its OS user.
//! 6. Activate approved requests whose assignment (and attribute) is in place.
//! 7. Clear the attribute when no grant needs it and no principal-tag assignment is left.
//!
//! A cause that failed (an assignment's operation, the attribute) is skipped until its
//! retry time: its back-off never holds up anything else.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::aws::{AssignmentKey, OpKind};
use crate::domain::RequestRecord;
use crate::domain::{RequestId, RequestState, RunAsMode};
use crate::store::assignments::{AssignmentRow, AssignmentState, InFlight};
use crate::store::principals::RunAs;

/// What a step knows.
pub(super) struct Snapshot<'a> {
    pub requests: &'a [RequestRecord],
    pub rows: &'a [AssignmentRow],
    pub run_as: &'a RunAs,
    pub now: DateTime<Utc>,
    pub operation_timeout: chrono::TimeDelta,
}

/// What a step should do, and what it leaves outstanding.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Plan {
    /// Operations in progress to poll.
    pub follow: Vec<(AssignmentKey, InFlight)>,
    /// Operations in progress for longer than the operation timeout: given up.
    pub timed_out: Vec<(AssignmentKey, InFlight)>,
    /// Assignments to delete, with the ended requests that owe the deletion.
    pub delete: Vec<(AssignmentKey, Vec<RequestId>)>,
    /// Ended requests whose assignment other grants still need: settled, kept.
    pub keep: Vec<(RequestId, AssignmentKey, Vec<RequestId>)>,
    /// Ended requests that never held an assignment: settled.
    pub settle: Vec<RequestId>,
    /// The OS user to write into the run-as attribute.
    pub write_run_as: Option<String>,
    /// Assignments to create, with the grants that want them.
    pub create: Vec<(AssignmentKey, Vec<RequestId>)>,
    /// Approved requests whose assignment and attribute are in place.
    pub activate: Vec<RequestId>,
    /// Clear the run-as attribute.
    pub clear_run_as: bool,
    /// Work that waits: on an operation in progress, a back-off or another step.
    pub waiting: Vec<Waiting>,
}

/// Why a step cannot finish a person yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Waiting {
    /// An operation in progress on this assignment.
    Operation(AssignmentKey, OpKind),
    /// This assignment's operation failed; retried at this time.
    AssignmentRetry(AssignmentKey, DateTime<Utc>),
    /// The attribute's write or clear failed; retried at this time.
    RunAsRetry(DateTime<Utc>),
    /// Something the next step can do once this one's changes are recorded.
    NextStep,
}

impl Plan {
    /// Whether the step has nothing to do and nothing waits: the person is converged.
    pub fn is_done(&self) -> bool {
        *self == Plan::default()
    }

    /// When a retry of a backing-off cause is due, the earliest; `None` if none waits.
    pub fn next_retry(&self) -> Option<DateTime<Utc>> {
        self.waiting
            .iter()
            .filter_map(|w| match w {
                Waiting::AssignmentRetry(_, at) | Waiting::RunAsRetry(at) => Some(*at),
                _ => None,
            })
            .min()
    }

    /// Whether an operation is in progress (worth polling soon).
    pub fn has_operations(&self) -> bool {
        !self.follow.is_empty()
            || self
                .waiting
                .iter()
                .any(|w| matches!(w, Waiting::Operation(..)))
    }
}

/// The assignment a request is for.
pub(super) fn key_of(s: &RequestRecord) -> AssignmentKey {
    AssignmentKey {
        principal_id: s.principal_id.clone(),
        account_id: s.request.account.to_string(),
        permission_set_arn: s.permission_set_arn.clone(),
    }
}

/// Whether the attribute holds what the principal-tag grants need (nothing needed: yes).
fn attribute_ready_for(attribute: &RunAs, wanted: Option<&str>) -> bool {
    match wanted {
        Some(os_user) => attribute.confirmed.as_deref() == Some(os_user),
        None => true,
    }
}

/// Decides one step.
pub(super) fn plan(snapshot: &Snapshot<'_>) -> Plan {
    let now = snapshot.now;
    let mut out = Plan::default();

    // What grants want: assignments (with their grants) and, for principal-tag grants,
    // the OS user in the attribute.
    let mut wanted: BTreeMap<AssignmentKey, Vec<&RequestRecord>> = BTreeMap::new();
    let mut run_as: Option<&str> = None;
    for s in snapshot
        .requests
        .iter()
        .filter(|s| s.request.wants_assignment())
    {
        wanted.entry(key_of(s)).or_default().push(s);
        if s.request.run_as_mode == RunAsMode::PrincipalTag && run_as.is_none() {
            run_as = Some(s.request.os_user.as_str());
        }
    }
    let needs_attribute = |key: &AssignmentKey| {
        wanted.get(key).is_some_and(|grants| {
            grants
                .iter()
                .any(|s| s.request.run_as_mode == RunAsMode::PrincipalTag)
        })
    };
    let ended: Vec<&RequestRecord> = snapshot
        .requests
        .iter()
        .filter(|s| !s.request.wants_assignment())
        .collect();
    let rows: BTreeMap<&AssignmentKey, &AssignmentRow> =
        snapshot.rows.iter().map(|r| (&r.key, r)).collect();
    let backing_off = |row: &AssignmentRow| row.failures.retry_at.filter(|at| *at > now);

    // 1. Operations in progress.
    let mut busy: BTreeSet<&AssignmentKey> = BTreeSet::new();
    for row in snapshot.rows {
        let Some(op) = &row.in_flight else { continue };
        busy.insert(&row.key);
        if let Some(at) = backing_off(row) {
            // Polling it failed: wait like any failing cause.
            out.waiting
                .push(Waiting::AssignmentRetry(row.key.clone(), at));
        } else if now - op.started_at >= snapshot.operation_timeout {
            out.timed_out.push((row.key.clone(), op.clone()));
        } else {
            out.follow.push((row.key.clone(), op.clone()));
        }
    }

    // An assignment left by an ended grant that only grants not yet active want, for an
    // OS user the attribute does not hold yet, is removed rather than kept: kept, it would
    // go on running as the old grant's OS user, covered by no active grant, until the
    // attribute write succeeds (or, if it never does, for good).
    let stale: BTreeSet<&AssignmentKey> = snapshot
        .rows
        .iter()
        .filter(|r| r.state == AssignmentState::Present && !busy.contains(&r.key))
        .filter(|r| {
            wanted.get(&r.key).is_some_and(|grants| {
                run_as.is_some()
                    && !attribute_ready_for(snapshot.run_as, run_as)
                    && grants.iter().all(|s| {
                        s.request.run_as_mode == RunAsMode::PrincipalTag
                            && matches!(s.request.state, RequestState::Approved { .. })
                    })
            })
        })
        .map(|r| &r.key)
        .collect();
    let unwanted = |key: &AssignmentKey| !wanted.contains_key(key) || stale.contains(key);

    // 2. Deletes. An ended request owes the deletion of its assignment; one that no
    // grant wants goes whether or not a request owes it (left by a crash).
    // Assignments that may carry a principal-tag OS user while being removed: they hold
    // up the attribute's write (rule 4) and clear (rule 7).
    let mut tagged_removals = false;
    for row in snapshot.rows.iter().filter(|r| unwanted(&r.key)) {
        let owed: Vec<&RequestRecord> = ended
            .iter()
            .copied()
            .filter(|s| key_of(s) == row.key)
            .collect();
        // Unknown (no request owes it): assume it may carry the attribute.
        if owed.is_empty()
            || owed
                .iter()
                .any(|s| s.request.run_as_mode == RunAsMode::PrincipalTag)
        {
            tagged_removals = true;
        }
        if busy.contains(&row.key) {
            continue; // followed above; deleted once its operation ends
        }
        if let Some(at) = backing_off(row) {
            out.waiting
                .push(Waiting::AssignmentRetry(row.key.clone(), at));
            continue;
        }
        out.delete
            .push((row.key.clone(), owed.iter().map(|s| s.request.id).collect()));
    }

    // 3. Ended requests with nothing of their own to delete.
    for s in &ended {
        let key = key_of(s);
        if stale.contains(&key) {
            continue; // settled with the delete
        }
        if let Some(still) = wanted.get(&key) {
            out.keep.push((
                s.request.id,
                key,
                still.iter().map(|w| w.request.id).collect(),
            ));
        } else if !rows.contains_key(&key) {
            out.settle.push(s.request.id);
        }
    }

    // 4. The attribute a principal-tag grant needs.
    let attribute_ready = attribute_ready_for(snapshot.run_as, run_as);
    if let Some(os_user) = run_as
        && !attribute_ready
    {
        if let Some(at) = snapshot.run_as.failures.retry_at.filter(|at| *at > now) {
            out.waiting.push(Waiting::RunAsRetry(at));
        } else if tagged_removals {
            out.waiting.push(Waiting::NextStep);
        } else {
            out.write_run_as = Some(os_user.to_owned());
        }
    }

    // 5. Creates, and 6. activations.
    for (key, grants) in &wanted {
        if stale.contains(key) {
            out.waiting.push(Waiting::NextStep);
            continue; // created again once the old one is gone and the attribute set
        }
        let row = rows.get(key);
        let present = row.is_some_and(|r| r.state == AssignmentState::Present);
        let ready = present && !busy.contains(key) && (attribute_ready || !needs_attribute(key));
        if ready {
            out.activate.extend(
                grants
                    .iter()
                    .filter(|s| matches!(s.request.state, RequestState::Approved { .. }))
                    .map(|s| s.request.id),
            );
            continue;
        }
        if present || busy.contains(key) {
            // Present and waiting for the attribute, or an operation in progress.
            if !busy.contains(key) {
                out.waiting.push(Waiting::NextStep);
            }
            continue;
        }
        if let Some(at) = row.and_then(|r| backing_off(r)) {
            out.waiting.push(Waiting::AssignmentRetry(key.clone(), at));
        } else if needs_attribute(key) && !attribute_ready {
            // Waits for rule 4 (already recorded as waiting or writing).
            if out.write_run_as.is_none()
                && !out
                    .waiting
                    .iter()
                    .any(|w| matches!(w, Waiting::RunAsRetry(_) | Waiting::NextStep))
            {
                out.waiting.push(Waiting::NextStep);
            }
        } else {
            out.create
                .push((key.clone(), grants.iter().map(|s| s.request.id).collect()));
        }
    }

    // 7. The attribute no grant needs any more.
    let attribute_set = snapshot.run_as.written.is_some() || snapshot.run_as.confirmed.is_some();
    if run_as.is_none() && attribute_set {
        if let Some(at) = snapshot.run_as.failures.retry_at.filter(|at| *at > now) {
            out.waiting.push(Waiting::RunAsRetry(at));
        } else if tagged_removals {
            out.waiting.push(Waiting::NextStep);
        } else {
            out.clear_run_as = true;
        }
    }

    for (key, op) in &out.follow {
        out.waiting.push(Waiting::Operation(key.clone(), op.kind));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::time::Duration;

    use chrono::TimeDelta;

    use super::*;
    use crate::domain::{EndReason, Request, UserId};
    use crate::store::assignments::Failures;

    const PRINCIPAL: &str = "u-alice";
    const TAGGED: &str = "arn:aws:sso:::permissionSet/ssoins-1/ps-tagged";
    const DOC: &str = "arn:aws:sso:::permissionSet/ssoins-1/ps-doc";

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).unwrap() + TimeDelta::seconds(secs)
    }

    fn request(n: u128, mode: RunAsMode, os_user: &str, state: RequestState) -> RequestRecord {
        RequestRecord {
            request: Request {
                id: RequestId(uuid::Uuid::from_u128(n)),
                requester: UserId::new("alice"),
                profile: "prod".into(),
                account: "111111111111".parse().unwrap(),
                os_user: os_user.parse().unwrap(),
                run_as_mode: mode,
                duration: Duration::from_secs(3600),
                reason: "incident".into(),
                ticket: None,
                created_at: t(0),
                approvals: Vec::new(),
                extension: None,
                state,
            },
            principal_id: PRINCIPAL.into(),
            permission_set_arn: match mode {
                RunAsMode::PrincipalTag => TAGGED.into(),
                RunAsMode::SessionDocument => DOC.into(),
            },
            settled_at: None,
        }
    }

    fn approved() -> RequestState {
        RequestState::Approved { approved_at: t(0) }
    }

    fn active() -> RequestState {
        RequestState::Active {
            activated_at: t(0),
            expires_at: t(3600),
        }
    }

    fn ended() -> RequestState {
        RequestState::Ended {
            activated_at: Some(t(0)),
            ended_at: t(10),
            why: EndReason::Expired,
        }
    }

    fn key(arn: &str) -> AssignmentKey {
        AssignmentKey {
            principal_id: PRINCIPAL.into(),
            account_id: "111111111111".into(),
            permission_set_arn: arn.into(),
        }
    }

    fn row(arn: &str, state: AssignmentState) -> AssignmentRow {
        AssignmentRow {
            key: key(arn),
            state,
            in_flight: None,
            failures: Failures::default(),
        }
    }

    fn in_flight(mut row: AssignmentRow, kind: OpKind, started: DateTime<Utc>) -> AssignmentRow {
        row.in_flight = Some(InFlight {
            kind,
            request_id: "op-1".into(),
            started_at: started,
        });
        row
    }

    fn failing(mut row: AssignmentRow, retry_at: DateTime<Utc>) -> AssignmentRow {
        row.failures = Failures {
            count: 1,
            last_error: Some("boom".into()),
            retry_at: Some(retry_at),
        };
        row
    }

    fn run_as(confirmed: Option<&str>) -> RunAs {
        RunAs {
            written: confirmed.map(str::to_owned),
            confirmed: confirmed.map(str::to_owned),
            failures: Failures::default(),
        }
    }

    fn plan_at(
        now: DateTime<Utc>,
        requests: &[RequestRecord],
        rows: &[AssignmentRow],
        run_as: &RunAs,
    ) -> Plan {
        plan(&Snapshot {
            requests,
            rows,
            run_as,
            now,
            operation_timeout: TimeDelta::minutes(5),
        })
    }

    fn id(n: u128) -> RequestId {
        RequestId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn nothing_wanted_nothing_held_is_done() {
        let p = plan_at(t(0), &[], &[], &RunAs::default());
        assert!(p.is_done());
    }

    #[test]
    fn a_principal_tag_grant_writes_the_attribute_before_its_create() {
        let reqs = [request(1, RunAsMode::PrincipalTag, "app", approved())];
        let p = plan_at(t(1), &reqs, &[], &RunAs::default());
        assert_eq!(p.write_run_as.as_deref(), Some("app"));
        assert!(p.create.is_empty(), "the create waits for the attribute");
        assert!(!p.is_done());

        let p = plan_at(t(1), &reqs, &[], &run_as(Some("app")));
        assert_eq!(p.create, vec![(key(TAGGED), vec![id(1)])]);
        assert_eq!(p.write_run_as, None);
    }

    #[test]
    fn a_session_document_grant_is_created_whatever_the_attribute_does() {
        let reqs = [
            request(1, RunAsMode::PrincipalTag, "app", approved()),
            request(2, RunAsMode::SessionDocument, "deploy", approved()),
        ];
        let attribute = RunAs {
            failures: Failures {
                count: 3,
                last_error: Some("AccessDenied".into()),
                retry_at: Some(t(60)),
            },
            ..RunAs::default()
        };
        let p = plan_at(t(1), &reqs, &[], &attribute);
        assert_eq!(p.create, vec![(key(DOC), vec![id(2)])]);
        assert_eq!(p.write_run_as, None, "the attribute backs off");
        assert_eq!(p.next_retry(), Some(t(60)));
    }

    #[test]
    fn activation_needs_the_assignment_and_for_principal_tag_the_attribute() {
        let reqs = [
            request(1, RunAsMode::PrincipalTag, "app", approved()),
            request(2, RunAsMode::SessionDocument, "deploy", approved()),
        ];
        let rows = [
            row(TAGGED, AssignmentState::Present),
            row(DOC, AssignmentState::Present),
        ];
        let p = plan_at(t(1), &reqs, &rows, &RunAs::default());
        assert_eq!(p.activate, vec![id(2)]);
        let p = plan_at(t(1), &reqs, &rows, &run_as(Some("app")));
        let mut activated = p.activate.clone();
        activated.sort();
        assert_eq!(activated, vec![id(1), id(2)]);
    }

    #[test]
    fn an_ended_grant_is_deleted_even_while_a_create_of_another_backs_off() {
        let reqs = [
            request(1, RunAsMode::SessionDocument, "deploy", ended()),
            request(2, RunAsMode::PrincipalTag, "app", approved()),
        ];
        let rows = [
            row(DOC, AssignmentState::Present),
            failing(row(TAGGED, AssignmentState::Creating), t(100)),
        ];
        let p = plan_at(t(1), &reqs, &rows, &run_as(Some("app")));
        assert_eq!(p.delete, vec![(key(DOC), vec![id(1)])]);
        assert!(
            p.create.is_empty(),
            "the failing create waits for its retry"
        );
        assert_eq!(p.next_retry(), Some(t(100)));
    }

    #[test]
    fn a_revocation_is_not_held_up_by_a_stuck_create_of_another_grant() {
        let reqs = [
            request(1, RunAsMode::SessionDocument, "deploy", ended()),
            request(2, RunAsMode::PrincipalTag, "app", approved()),
        ];
        let rows = [
            row(DOC, AssignmentState::Present),
            in_flight(row(TAGGED, AssignmentState::Creating), OpKind::Create, t(0)),
        ];
        let p = plan_at(t(30), &reqs, &rows, &run_as(Some("app")));
        assert_eq!(p.delete, vec![(key(DOC), vec![id(1)])]);
        assert_eq!(p.follow.len(), 1);
        assert!(p.has_operations());
    }

    #[test]
    fn a_revoked_grant_whose_create_is_in_flight_is_deleted_after_the_create() {
        let reqs = [request(1, RunAsMode::SessionDocument, "deploy", ended())];
        let rows = [in_flight(
            row(DOC, AssignmentState::Creating),
            OpKind::Create,
            t(0),
        )];
        let p = plan_at(t(1), &reqs, &rows, &RunAs::default());
        assert!(
            p.delete.is_empty(),
            "IdC refuses a second operation meanwhile"
        );
        assert_eq!(p.follow[0].0, key(DOC));
        // Once the create has ended, the delete goes.
        let rows = [row(DOC, AssignmentState::Present)];
        let p = plan_at(t(2), &reqs, &rows, &RunAs::default());
        assert_eq!(p.delete, vec![(key(DOC), vec![id(1)])]);
    }

    #[test]
    fn an_operation_past_the_timeout_is_given_up() {
        let reqs = [request(1, RunAsMode::SessionDocument, "deploy", approved())];
        let rows = [in_flight(
            row(DOC, AssignmentState::Creating),
            OpKind::Create,
            t(0),
        )];
        let p = plan_at(t(301), &reqs, &rows, &RunAs::default());
        assert_eq!(p.timed_out.len(), 1);
        assert!(p.follow.is_empty());
    }

    #[test]
    fn the_attribute_waits_for_the_removal_of_an_old_principal_tag_assignment() {
        let reqs = [
            request(1, RunAsMode::PrincipalTag, "app", ended()),
            request(2, RunAsMode::PrincipalTag, "readonly", approved()),
        ];
        let other = "arn:aws:sso:::permissionSet/ssoins-1/ps-other";
        let mut old = request(1, RunAsMode::PrincipalTag, "app", ended());
        old.permission_set_arn = other.into();
        let reqs = [old, reqs[1].clone()];
        let rows = [row(other, AssignmentState::Present)];
        let p = plan_at(t(1), &reqs, &rows, &run_as(Some("app")));
        assert_eq!(p.delete.len(), 1);
        assert_eq!(
            p.write_run_as, None,
            "never a new OS user on the old grant's assignment"
        );
        let p = plan_at(t(2), &reqs[1..], &[], &run_as(Some("app")));
        assert_eq!(p.write_run_as.as_deref(), Some("readonly"));
    }

    #[test]
    fn the_attribute_is_cleared_after_the_last_principal_tag_assignment_is_gone() {
        let reqs = [request(1, RunAsMode::PrincipalTag, "app", ended())];
        let rows = [row(TAGGED, AssignmentState::Present)];
        let p = plan_at(t(1), &reqs, &rows, &run_as(Some("app")));
        assert!(!p.clear_run_as);
        let p = plan_at(t(2), &[], &[], &run_as(Some("app")));
        assert!(p.clear_run_as);
        assert!(!p.is_done());
        let p = plan_at(t(3), &[], &[], &RunAs::default());
        assert!(p.is_done());
    }

    #[test]
    fn an_old_grants_assignment_is_not_kept_for_a_new_os_user_not_yet_written() {
        // A (app) ended; B (readonly) approved on the same permission set; the attribute
        // still says app: A's assignment goes first, then the attribute, then B's.
        let reqs = [
            request(1, RunAsMode::PrincipalTag, "app", ended()),
            request(2, RunAsMode::PrincipalTag, "readonly", approved()),
        ];
        let rows = [row(TAGGED, AssignmentState::Present)];
        let p = plan_at(t(1), &reqs, &rows, &run_as(Some("app")));
        assert_eq!(p.delete, vec![(key(TAGGED), vec![id(1)])]);
        assert!(p.keep.is_empty());
        assert_eq!(
            p.write_run_as, None,
            "not while the old assignment is there"
        );
        assert!(p.activate.is_empty() && p.create.is_empty());
        // With the same OS user it is simply kept.
        let reqs = [
            request(1, RunAsMode::PrincipalTag, "app", ended()),
            request(2, RunAsMode::PrincipalTag, "app", approved()),
        ];
        let p = plan_at(t(1), &reqs, &rows, &run_as(Some("app")));
        assert!(p.delete.is_empty());
        assert_eq!(p.keep.len(), 1);
        assert_eq!(p.activate, vec![id(2)]);
    }

    #[test]
    fn an_ended_request_whose_assignment_another_grant_needs_is_kept() {
        let reqs = [
            request(1, RunAsMode::SessionDocument, "deploy", ended()),
            request(2, RunAsMode::SessionDocument, "deploy", active()),
        ];
        let rows = [row(DOC, AssignmentState::Present)];
        let p = plan_at(t(1), &reqs, &rows, &RunAs::default());
        assert_eq!(p.keep, vec![(id(1), key(DOC), vec![id(2)])]);
        assert!(p.delete.is_empty());
    }

    #[test]
    fn an_ended_request_that_never_held_an_assignment_is_settled() {
        let reqs = [request(1, RunAsMode::SessionDocument, "deploy", ended())];
        let p = plan_at(t(1), &reqs, &[], &RunAs::default());
        assert_eq!(p.settle, vec![id(1)]);
    }

    #[test]
    fn a_failing_delete_backs_off_and_is_retried_when_due() {
        let reqs = [request(1, RunAsMode::SessionDocument, "deploy", ended())];
        let rows = [failing(row(DOC, AssignmentState::Present), t(5))];
        let p = plan_at(t(1), &reqs, &rows, &RunAs::default());
        assert!(p.delete.is_empty());
        assert_eq!(p.next_retry(), Some(t(5)));
        let p = plan_at(t(5), &reqs, &rows, &RunAs::default());
        assert_eq!(p.delete.len(), 1);
    }
}
