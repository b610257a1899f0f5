//! The use cases on in-memory ports: what each writes, in one transaction or not at all,
//! and what it refuses before it writes anything. (The integration tests run the same
//! use cases on the real store and peers.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::app::memory::{Counted, MemDirectory, MemStore, Sets};
use crate::audit::Action as Audited;
use crate::domain::{ErrorKind, PermissionSetArn, RunAsMode, StateName};

fn policy(name: &str) -> Policy {
    Policy {
        profile: name.into(),
        accounts: vec!["111111111111".parse().unwrap()],
        allowed_os_users: vec!["app".parse().unwrap(), "deploy".parse().unwrap()],
        min_duration: Duration::from_secs(60),
        max_duration: Duration::from_secs(8 * 3600),
        requester_groups: vec!["developers".into()],
        approver_groups: vec!["sre".into()],
        approvers: Vec::new(),
        approvals_required: 1,
        auto_approve: false,
        approval_timeout: Duration::from_secs(3600),
        run_as_mode: RunAsMode::PrincipalTag,
        step_up: false,
    }
}

fn rules(profiles: &[&str]) -> Arc<Rules> {
    Arc::new(Rules::new(
        vec!["admins".into()],
        false,
        profiles.iter().map(|p| policy(p)).collect(),
    ))
}

struct World {
    store: MemStore,
    directory: Arc<MemDirectory>,
    signals: Arc<Counted>,
    app: Requests<MemStore, MemDirectory>,
    now: DateTime<Utc>,
}

impl World {
    fn new() -> Self {
        Self::with(rules(&["prod"]), true, 3)
    }

    fn with(rules: Arc<Rules>, sets_resolved: bool, max_open: u32) -> Self {
        let store = MemStore::default();
        for user in ["alice", "bob", "carol"] {
            store.signed_in(user);
        }
        let directory = Arc::new(MemDirectory {
            users: [("alice", "u-alice"), ("bob", "u-bob")]
                .into_iter()
                .map(|(n, p)| (n.to_owned(), PrincipalId::new(p)))
                .collect(),
            calls: AtomicUsize::new(0),
        });
        let signals = Arc::new(Counted::default());
        let app = Requests::new(
            store.clone(),
            directory.clone(),
            Arc::new(Sets(sets_resolved)),
            signals.clone(),
            rules,
            max_open,
        );
        World {
            store,
            directory,
            signals,
            app,
            now: DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap(),
        }
    }

    fn actor(&self, user: &str, group: &str) -> Actor {
        self.app
            .rules()
            .actor(UserId::new(user), vec![group.into()])
    }

    async fn submit(&self, user: &str, os_user: &str) -> Result<RequestRecord, AppError> {
        let draft = Draft {
            profile: "prod".into(),
            account: "111111111111".into(),
            os_user: os_user.into(),
            duration: Duration::from_secs(3600),
            reason: "deploy the fix".into(),
            ticket: None,
        };
        self.app
            .submit(&self.actor(user, "developers"), draft, self.now)
            .await
    }
}

#[tokio::test]
async fn the_first_request_binds_the_idc_user_once_and_audits_it() {
    let w = World::new();
    let first = w.submit("alice", "app").await.unwrap();
    assert_eq!(first.principal_id, PrincipalId::new("u-alice"));
    assert_eq!(
        first.permission_set_arn,
        PermissionSetArn::from("arn:aws:sso:::permissionSet/ssoins-1/ps-prod-app")
    );
    assert_eq!(
        w.store.actions(),
        [Audited::IdcBound, Audited::RequestSubmitted]
    );

    let second = w.submit("alice", "app").await.unwrap();
    assert_eq!(second.principal_id, first.principal_id);
    assert_eq!(
        w.directory.calls.load(Ordering::SeqCst),
        1,
        "a bound person's IdC user is not looked up again"
    );
    assert_eq!(w.store.actions().last(), Some(&Audited::RequestSubmitted));
    assert_eq!(w.store.actions().len(), 3, "bound once");
}

#[tokio::test]
async fn self_approval_is_refused_and_changes_nothing() {
    let w = World::new();
    let id = w.submit("alice", "app").await.unwrap().request.id;
    let before = w.store.state().events.len();
    // Alice is an approver too, and still may not approve her own request.
    let alice = w.app.rules().actor(
        UserId::new("alice"),
        vec!["developers".into(), "sre".into()],
    );
    let e = w
        .app
        .act(&alice, id, Action::Approve, w.now)
        .await
        .unwrap_err();
    match e {
        AppError::Domain(e) => assert_eq!(e.kind(), ErrorKind::Forbidden, "{e}"),
        other => panic!("want a domain refusal, got {other:?}"),
    }
    let state = w.store.state();
    assert_eq!(state.events.len(), before, "no audit event for a refusal");
    assert_eq!(state.requests[0].request.state.name(), StateName::Pending);
    assert_eq!(w.signals.converge.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_approval_is_saved_with_its_event_and_wakes_convergence() {
    let w = World::new();
    let id = w.submit("alice", "app").await.unwrap().request.id;
    let approved = w
        .app
        .act(&w.actor("bob", "sre"), id, Action::Approve, w.now)
        .await
        .unwrap();
    assert_eq!(approved.request.state.name(), StateName::Approved);
    let state = w.store.state();
    assert_eq!(
        state.requests[0], approved,
        "what was answered is what was saved"
    );
    assert_eq!(
        state.events.last().map(|e| (e.action, e.actor.as_str())),
        Some((Audited::RequestApproved, "bob"))
    );
    assert_eq!(state.touched, [PrincipalId::new("u-alice")]);
    assert_eq!(w.signals.converge.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn someone_without_an_idc_user_is_refused_before_anything_is_written() {
    let w = World::new();
    let e = w.submit("carol", "app").await.unwrap_err();
    assert!(matches!(e, AppError::NoIdcUser { .. }), "{e:?}");
    assert!(
        e.to_string().contains("userName"),
        "says what was looked for: {e}"
    );
    let state = w.store.state();
    assert!(state.requests.is_empty() && state.events.is_empty());
}

#[tokio::test]
async fn bad_input_and_a_missing_catalog_cost_no_idc_call() {
    let w = World::with(rules(&["prod"]), false, 3);
    let e = w.submit("alice", "app").await.unwrap_err();
    assert!(matches!(e, AppError::NoPermissionSet(_)), "{e:?}");
    let e = World::new().submit("alice", "root").await.unwrap_err();
    assert!(matches!(e, AppError::Domain(_)), "{e:?}");
    assert_eq!(w.directory.calls.load(Ordering::SeqCst), 0);
    assert!(w.store.state().events.is_empty());
}

#[tokio::test]
async fn the_open_request_cap_holds() {
    let w = World::with(rules(&["prod"]), true, 2);
    w.submit("alice", "app").await.unwrap();
    w.submit("alice", "app").await.unwrap();
    let e = w.submit("alice", "app").await.unwrap_err();
    assert!(matches!(e, AppError::TooManyOpen { open: 2 }), "{e:?}");
    assert_eq!(w.store.state().requests.len(), 2);
}

#[tokio::test]
async fn a_second_os_user_at_once_is_refused_in_principal_tag_mode() {
    let w = World::new();
    w.submit("alice", "app").await.unwrap();
    let e = w.submit("alice", "deploy").await.unwrap_err();
    assert!(matches!(e, AppError::Domain(_)), "{e:?}");
    assert_eq!(w.store.state().requests.len(), 1);
}

#[tokio::test]
async fn a_step_no_longer_due_is_nothing_to_do() {
    let w = World::new();
    let id = w.submit("alice", "app").await.unwrap().request.id;
    let before = w.store.state().events.len();
    assert_eq!(
        w.app.expire(id, w.now).await.unwrap(),
        None,
        "pending: nothing to expire"
    );
    assert_eq!(
        w.app.activate(id, w.now).await.unwrap(),
        None,
        "not approved yet"
    );
    assert_eq!(w.store.state().events.len(), before);
    let e = w.app.expire(RequestId::new_v4(), w.now).await.unwrap_err();
    assert!(matches!(e, AppError::NotFound(_)), "{e:?}");
}

#[tokio::test]
async fn a_grant_ends_on_time_and_tells_the_expiry_timer_about_changes() {
    let w = World::new();
    let id = w.submit("alice", "app").await.unwrap().request.id;
    w.app
        .act(&w.actor("bob", "sre"), id, Action::Approve, w.now)
        .await
        .unwrap();
    let active = w.app.activate(id, w.now).await.unwrap().unwrap();
    assert_eq!(active.request.state.name(), StateName::Active);
    assert_eq!(w.signals.expiry.load(Ordering::SeqCst), 1, "a new expiry");
    let early = w.now + TimeDelta::minutes(30);
    assert_eq!(w.app.expire(id, early).await.unwrap(), None, "not due yet");
    let due = w.now + TimeDelta::hours(1);
    let ended = w.app.expire(id, due).await.unwrap().unwrap();
    assert_eq!(ended.request.state.name(), StateName::Ended);
    assert_eq!(w.store.actions().last(), Some(&Audited::RequestExpired));
    assert_eq!(w.store.state().events.last().unwrap().actor, SYSTEM_ACTOR);
}

#[tokio::test]
async fn removing_a_profile_never_stops_its_grants_from_ending() {
    let w = World::new();
    let id = w.submit("alice", "app").await.unwrap().request.id;
    w.app
        .act(&w.actor("bob", "sre"), id, Action::Approve, w.now)
        .await
        .unwrap();
    w.app.activate(id, w.now).await.unwrap().unwrap();
    // The same store under a config without the profile.
    let after = Requests::new(
        w.store.clone(),
        w.directory.clone(),
        Arc::new(Sets(true)),
        w.signals.clone(),
        rules(&["staging"]),
        3,
    );
    let alice = after
        .rules()
        .actor(UserId::new("alice"), vec!["developers".into()]);
    let revoked = after
        .act(&alice, id, Action::Revoke { comment: None }, w.now)
        .await
        .unwrap();
    assert_eq!(revoked.request.state.name(), StateName::Ended);
    assert_eq!(w.store.actions().last(), Some(&Audited::RequestRevoked));
}

#[tokio::test]
async fn an_open_request_of_a_removed_profile_is_closed_saying_why() {
    let w = World::new();
    let id = w.submit("alice", "app").await.unwrap().request.id;
    assert_eq!(
        w.app.close_removed(id, w.now).await.unwrap(),
        None,
        "still configured"
    );
    let after = Requests::new(
        w.store.clone(),
        w.directory.clone(),
        Arc::new(Sets(true)),
        w.signals.clone(),
        rules(&["staging"]),
        3,
    );
    let closed = after.close_removed(id, w.now).await.unwrap().unwrap();
    assert_eq!(closed.request.state.name(), StateName::Lapsed);
    let event = w.store.state().events.last().cloned().unwrap();
    assert_eq!(event.action, Audited::RequestLapsed);
    assert!(
        event.details["comment"]
            .as_str()
            .unwrap()
            .contains("removed")
    );
}

#[tokio::test]
async fn people_see_their_own_and_what_they_approve_and_nothing_else() {
    let w = World::with(rules(&["prod", "staging"]), true, 3);
    let prod = w.submit("alice", "app").await.unwrap().request.id;
    let everything = Listing {
        limit: 100,
        ..Listing::default()
    };
    // Bob approves prod; Carol, in QA, approves nothing; an admin sees all.
    let bob = w.actor("bob", "sre");
    let carol = w.actor("carol", "qa");
    let admin = w.actor("root", "admins");
    assert_eq!(w.app.list(&bob, everything.clone()).await.unwrap().len(), 1);
    assert_eq!(w.app.get(&bob, prod).await.unwrap().request.id, prod);
    assert!(
        w.app
            .list(&carol, everything.clone())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        w.app.get(&carol, prod).await,
        Err(AppError::NotFound(_))
    ));
    // Acting on what one may not see is "not found" too, so ids cannot be probed.
    let e = w
        .app
        .act(&carol, prod, Action::Cancel, w.now)
        .await
        .unwrap_err();
    assert!(matches!(e, AppError::NotFound(_)), "{e:?}");
    assert_eq!(w.app.list(&admin, everything).await.unwrap().len(), 1);

    // The queue: Bob's shows Alice's request until he approved it.
    let queue = w.app.approval_queue(&bob, None, 0, 50).await.unwrap();
    assert_eq!(queue.len(), 1);
    assert!(
        w.app
            .approval_queue(&bob, Some("staging"), 0, 50)
            .await
            .unwrap()
            .is_empty()
    );
    let alice = w.actor("alice", "developers");
    assert!(
        w.app
            .approval_queue(&alice, None, 0, 50)
            .await
            .unwrap()
            .is_empty()
    );
}

struct FixedInventory(Vec<crate::domain::Target>);

impl crate::app::ports::Inventory for FixedInventory {
    fn snapshot(&self) -> Option<crate::app::ports::InventorySnapshot> {
        Some(crate::app::ports::InventorySnapshot {
            targets: Arc::new(self.0.clone()),
            looked_up_at: DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
        })
    }
}

#[tokio::test]
async fn targets_are_what_a_persons_profiles_and_grants_reach() {
    use crate::app::targets::Targets;
    use crate::domain::{Target, TargetScope};
    use std::collections::BTreeMap;
    let w = World::new();
    let target = |name: &str, env: &str| Target {
        instance_id: format!("i-{name}"),
        name: Some(name.into()),
        account: "111111111111".parse().unwrap(),
        region: "us-east-1".into(),
        tags: BTreeMap::from([("env".to_owned(), env.to_owned())]),
        ping: Some("Online".into()),
    };
    let scope = TargetScope {
        profile: "prod".into(),
        accounts: vec!["111111111111".parse().unwrap()],
        regions: vec!["us-east-1".into()],
        tags: BTreeMap::from([("env".to_owned(), "prod".to_owned())]),
    };
    let targets = Targets::new(
        w.app.clone(),
        Arc::new(FixedInventory(vec![
            target("web-1", "prod"),
            target("db-1", "staging"),
        ])),
        vec![scope],
        w.app.rules_arc(),
    );
    let alice = w.actor("alice", "developers");
    let seen = targets.list(&alice, "").await.unwrap().reachable;
    assert_eq!(
        seen.len(),
        1,
        "db-1 is outside every profile's tags: {seen:?}"
    );
    assert_eq!(seen[0].profiles, ["prod"]);
    assert!(seen[0].grants.is_empty());
    assert!(
        targets
            .list(&alice, "db")
            .await
            .unwrap()
            .reachable
            .is_empty()
    );

    let id = w.submit("alice", "app").await.unwrap().request.id;
    let bob = w.actor("bob", "sre");
    w.app.act(&bob, id, Action::Approve, w.now).await.unwrap();
    w.app.activate(id, w.now).await.unwrap().unwrap();
    let seen = targets.list(&alice, "WEB").await.unwrap().reachable;
    assert_eq!(seen[0].grants, [id], "her active grant reaches web-1");

    let outsider = w.actor("carol", "contractors");
    assert!(
        targets
            .list(&outsider, "")
            .await
            .unwrap()
            .reachable
            .is_empty()
    );
    let admin = w.actor("carol", "admins");
    assert_eq!(targets.list(&admin, "").await.unwrap().reachable.len(), 1);
}

#[tokio::test]
async fn only_the_grantee_connects_and_only_while_the_grant_is_active() {
    let w = World::new();
    let id = w.submit("alice", "app").await.unwrap().request.id;
    let alice = w.actor("alice", "developers");
    let bob = w.actor("bob", "sre");
    let kind = |e: AppError| match e {
        AppError::Domain(e) => e.kind(),
        other => panic!("want a domain refusal, got {other:?}"),
    };
    let pending = w.app.connectable(&alice, id).await.unwrap_err();
    assert_eq!(kind(pending), ErrorKind::Conflict, "not active yet");
    w.app.act(&bob, id, Action::Approve, w.now).await.unwrap();
    w.app.activate(id, w.now).await.unwrap().unwrap();
    let record = w.app.connectable(&alice, id).await.unwrap();
    assert_eq!(record.request.id, id);
    let approver = w.app.connectable(&bob, id).await.unwrap_err();
    assert_eq!(
        kind(approver),
        ErrorKind::Forbidden,
        "an approver sees the grant but does not connect through it"
    );
    let stranger = w.actor("carol", "developers");
    assert!(matches!(
        w.app.connectable(&stranger, id).await,
        Err(AppError::NotFound(_))
    ));
    w.app.expire(id, w.now + TimeDelta::hours(1)).await.unwrap();
    let ended = w.app.connectable(&alice, id).await.unwrap_err();
    assert_eq!(kind(ended), ErrorKind::Conflict, "ended");
}

#[tokio::test]
async fn a_step_up_profile_takes_approvals_only_from_a_fresh_sign_in() {
    let stepped = Policy {
        step_up: true,
        ..policy("prod")
    };
    let w = World::with(
        Arc::new(Rules::new(vec!["admins".into()], false, vec![stepped])),
        true,
        3,
    );
    let id = w.submit("alice", "app").await.unwrap().request.id;
    // No sign-in time (the API, the CLI, a Slack click), or one too old: sign in again.
    let mut bob = w.actor("bob", "sre");
    for at in [None, Some(w.now - TimeDelta::minutes(6))] {
        bob.authenticated_at = at;
        assert!(matches!(
            w.app.act(&bob, id, Action::Approve, w.now).await,
            Err(AppError::StepUpRequired { .. })
        ));
    }
    // Alice's own approval is refused for what it is, not for her sign-in.
    let alice = w.actor("alice", "sre");
    match w.app.act(&alice, id, Action::Approve, w.now).await {
        Err(AppError::Domain(e)) => assert_eq!(e.kind(), ErrorKind::Forbidden),
        other => panic!("self-approval: {other:?}"),
    }
    bob.authenticated_at = Some(w.now - TimeDelta::minutes(4));
    let approved = w.app.act(&bob, id, Action::Approve, w.now).await.unwrap();
    assert_eq!(approved.request.state.name(), StateName::Approved);
}
