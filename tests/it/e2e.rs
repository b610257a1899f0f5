//! End to end through sign-in: people signed in through the OpenID provider act over the
//! API, and each scenario checks AWS (the peer) for the outcome on *their* IdC user: the
//! assignment exists while a grant is active and is gone within the promise
//! ([`REVOKE_PROMISE`] of the revoke's answer or of `expires_at`, measured by the peer's
//! own record of the delete), with the shipped defaults and IdC's own timing.

use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, ensure};
use jitgate_server::domain::{RequestId, StateName};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{OpKind, PeerKnobs, ProfileSpec, ServerProcess};
use crate::world::{Backend, NO_IDC_USER, REVOKE_PROMISE, World, prod_profile, refusal};

const LONG: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

async fn world(profiles: Vec<ProfileSpec>) -> Result<World> {
    World::start(Backend::Sqlite, PeerKnobs::default(), |mut b| {
        for p in profiles {
            b = b.profile(p);
        }
        b
    })
    .await
}

/// `prod-web` needing two approvals.
fn two_approvals() -> ProfileSpec {
    ProfileSpec {
        approvals_required: 2,
        ..prod_profile()
    }
}

fn session_document() -> ProfileSpec {
    ProfileSpec {
        name: "staging".into(),
        permission_set: "JitSsm-{os_user}".into(),
        run_as_mode: "session-document".into(),
        allowed_os_users: vec!["deploy".into(), "readonly".into()],
        ..prod_profile()
    }
}

/// The operations the peer received for `who`, of `kind`.
async fn ops_for(w: &World, who: &str, kind: OpKind) -> Result<usize> {
    let principal = w.user_id(who)?;
    Ok(w.peer
        .history()
        .await?
        .iter()
        .filter(|op| op.op == kind && op.principal_id == principal)
        .count())
}

async fn expires_at(w: &World, id: RequestId) -> Result<SystemTime> {
    Ok(w.request(id)
        .await?
        .request
        .expires_at()
        .context("not active")?
        .into())
}

#[tokio::test]
async fn a_denied_request_never_reaches_aws() -> Result<()> {
    let w = world(vec![prod_profile()]).await?;
    let id = w.submit("alice", "prod-web", "app", HOUR).await?;
    let denied = w.deny_as("bob", id, "not during the freeze").await?;
    assert_eq!(denied.state, jitgate_proto::RequestState::Denied);
    // An approval after the denial is refused and changes nothing.
    let late = w
        .approve_as("carol", id)
        .await
        .err()
        .context("approved after denial")?;
    assert_eq!(
        refusal(&late).map(|r| r.status),
        Some(StatusCode::CONFLICT),
        "{late:#}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(w.request(id).await?.request.state.name(), StateName::Denied);
    assert_eq!(ops_for(&w, "alice", OpKind::Create).await?, 0);
    assert_eq!(w.user_attribute("alice", "nickName").await?, None);
    Ok(())
}

#[tokio::test]
async fn two_of_n_needs_two_people_and_lands_on_the_requesters_user() -> Result<()> {
    let w = world(vec![two_approvals()]).await?;
    let id = w.submit("alice", "prod-web", "app", HOUR).await?;
    let after_one = w.approve_as("bob", id).await?;
    assert_eq!(after_one.state, jitgate_proto::RequestState::Pending);
    assert_eq!(after_one.approvals_missing, 1);
    // The same approver twice does not count twice.
    let again = w
        .approve_as("bob", id)
        .await
        .err()
        .context("bob approved twice")?;
    assert_eq!(
        refusal(&again).map(|r| r.status),
        Some(StatusCode::CONFLICT),
        "{again:#}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        ops_for(&w, "alice", OpKind::Create).await?,
        0,
        "nothing before two approvals"
    );
    w.approve_as("carol", id).await?;
    w.wait_state(id, StateName::Active, LONG).await?;
    assert!(w.has_assignment("alice", "JitSsm").await?);
    // Nobody else got it.
    let assigned: Vec<_> = w.peer.assignments().await?;
    assert_eq!(assigned.len(), 1, "{assigned:?}");
    assert_eq!(assigned[0].principal_id, w.user_id("alice")?);
    Ok(())
}

#[tokio::test]
async fn two_approvers_of_a_two_of_n_at_once_approve_once() -> Result<()> {
    let w = world(vec![two_approvals()]).await?;
    let id = w.submit("alice", "prod-web", "app", HOUR).await?;
    w.token_for("bob").await?;
    w.token_for("carol").await?;
    let (bob, carol) = tokio::join!(w.approve_as("bob", id), w.approve_as("carol", id));
    bob?;
    carol?;
    w.wait_state(id, StateName::Active, LONG).await?;
    let actions = w.audit_actions(id).await?;
    let count = |a: &str| actions.iter().filter(|x| *x == a).count();
    assert_eq!(count("request.approved"), 1, "{actions:?}");
    assert_eq!(count("request.approval_recorded"), 1, "{actions:?}");
    assert_eq!(ops_for(&w, "alice", OpKind::Create).await?, 1);
    Ok(())
}

#[tokio::test]
async fn revoked_by_an_approver_or_an_admin_is_gone_within_the_promise() -> Result<()> {
    let w = world(vec![prod_profile()]).await?;
    let by_approver = w.submit("alice", "prod-web", "app", HOUR).await?;
    let by_admin = w.submit("dave", "prod-web", "readonly", HOUR).await?;
    w.approve_as("bob", by_approver).await?;
    w.approve_as("bob", by_admin).await?;
    w.wait_state(by_approver, StateName::Active, LONG).await?;
    w.wait_state(by_admin, StateName::Active, LONG).await?;
    w.wait_converged("alice", LONG).await?;
    w.wait_converged("dave", LONG).await?;

    w.revoke_as("bob", by_approver).await?;
    w.assert_gone_within("alice", "JitSsm", SystemTime::now(), REVOKE_PROMISE)
        .await?;
    w.revoke_as("carol", by_admin).await?;
    w.assert_gone_within("dave", "JitSsm", SystemTime::now(), REVOKE_PROMISE)
        .await?;
    w.wait_run_as_cleared("alice", LONG).await?;
    Ok(())
}

#[tokio::test]
async fn an_approved_extension_moves_the_end_and_access_ends_then() -> Result<()> {
    let w = world(vec![prod_profile()]).await?;
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(6))
        .await?;
    w.approve_as("bob", id).await?;
    w.wait_state(id, StateName::Active, LONG).await?;
    let first_end = expires_at(&w, id).await?;
    let asked = w.extend_as("alice", id, Duration::from_secs(6)).await?;
    assert!(
        asked.extension.is_some(),
        "the extension waits for an approver"
    );
    w.approve_as("bob", id).await?;
    let new_end = expires_at(&w, id).await?;
    assert_eq!(new_end.duration_since(first_end)?, Duration::from_secs(6));
    // Still there after the first end...
    let until_first = first_end
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(until_first + Duration::from_millis(1500)).await;
    assert!(
        w.has_assignment("alice", "JitSsm").await?,
        "ended at the old time"
    );
    // ...and gone within the promise of the new one.
    w.assert_gone_within("alice", "JitSsm", new_end, REVOKE_PROMISE)
        .await?;
    Ok(())
}

#[tokio::test]
async fn session_document_grants_end_at_expiry_and_at_revoke() -> Result<()> {
    let w = world(vec![session_document()]).await?;
    let expiring = w
        .submit("alice", "staging", "deploy", Duration::from_secs(5))
        .await?;
    let revoked = w.submit("alice", "staging", "readonly", HOUR).await?;
    w.approve_as("bob", expiring).await?;
    w.approve_as("bob", revoked).await?;
    w.wait_state(expiring, StateName::Active, LONG).await?;
    w.wait_state(revoked, StateName::Active, LONG).await?;
    assert!(w.has_assignment("alice", "JitSsm-deploy").await?);
    assert!(w.has_assignment("alice", "JitSsm-readonly").await?);
    let end = expires_at(&w, expiring).await?;
    w.assert_gone_within("alice", "JitSsm-deploy", end, REVOKE_PROMISE)
        .await?;
    assert!(
        w.has_assignment("alice", "JitSsm-readonly").await?,
        "the other grant stays"
    );
    w.revoke_as("alice", revoked).await?;
    w.assert_gone_within(
        "alice",
        "JitSsm-readonly",
        SystemTime::now(),
        REVOKE_PROMISE,
    )
    .await?;
    assert_eq!(w.user_attribute("alice", "nickName").await?, None);
    Ok(())
}

#[tokio::test]
async fn revoked_while_its_create_is_in_flight_it_is_gone_soon_after_the_create() -> Result<()> {
    let w = world(vec![prod_profile()]).await?;
    let id = w.submit("alice", "prod-web", "app", HOUR).await?;
    w.approve_as("bob", id).await?;
    // Revoke as soon as the create reaches IdC (it takes about a second there).
    crate::harness::wait_until(
        "the create to reach the peer",
        LONG,
        Duration::from_millis(10),
        || async { Ok(ops_for(&w, "alice", OpKind::Create).await? == 1) },
    )
    .await?;
    w.revoke_as("alice", id).await?;
    // IdC refuses a delete while the create runs; the delete follows the create.
    w.wait_settled(id, LONG).await?;
    let principal = w.user_id("alice")?;
    let created_at = w
        .peer
        .history()
        .await?
        .into_iter()
        .find(|op| op.op == OpKind::Create && op.principal_id == principal)
        .and_then(|op| op.completed_at)
        .context("the create never completed")?;
    let created = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(created_at);
    w.assert_gone_within("alice", "JitSsm", created, REVOKE_PROMISE)
        .await?;
    assert_ne!(w.request(id).await?.request.state.name(), StateName::Active);
    Ok(())
}

#[tokio::test]
async fn a_grant_expiring_while_the_server_is_down_ends_when_it_is_back() -> Result<()> {
    let mut w = world(vec![prod_profile()]).await?;
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(4))
        .await?;
    w.approve_as("bob", id).await?;
    w.wait_state(id, StateName::Active, LONG).await?;
    w.wait_converged("alice", LONG).await?;
    w.server.kill9().await?;
    let end = expires_at(&w, id).await?;
    let wait = end.duration_since(SystemTime::now()).unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_secs(2)).await;
    assert!(
        w.has_assignment("alice", "JitSsm").await?,
        "nobody revoked meanwhile"
    );
    let back = SystemTime::now();
    w.server = ServerProcess::spawn(&w.config_toml).await?;
    w.assert_gone_within("alice", "JitSsm", back, Duration::from_secs(5))
        .await?;
    let actions = w.audit_actions(id).await?;
    assert_eq!(
        actions.iter().filter(|a| *a == "request.expired").count(),
        1
    );
    Ok(())
}

#[tokio::test]
async fn a_person_without_an_idc_user_is_refused_before_anything_is_made() -> Result<()> {
    let w = world(vec![prod_profile()]).await?;
    let refused = w
        .submit(NO_IDC_USER, "prod-web", "app", HOUR)
        .await
        .err()
        .context("a person without an IdC user got a request")?;
    let refused = refusal(&refused).context("not a refusal")?;
    // The same answer as the web gives: not allowed, and why.
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused.code, "no_idc_user");
    assert!(
        refused.message.contains("no IAM Identity Center user"),
        "{refused}"
    );
    let listed = w.api(NO_IDC_USER, "/requests", None).await?;
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
    assert!(w.peer.history().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn approve_racing_cancel_ends_one_way_and_aws_agrees() -> Result<()> {
    let w = world(vec![prod_profile()]).await?;
    for who in ["alice", "bob"] {
        w.token_for(who).await?;
    }
    for round in 0..3 {
        let id = w.submit("alice", "prod-web", "app", HOUR).await?;
        let (approved, cancelled) = tokio::join!(w.approve_as("bob", id), w.cancel_as("alice", id));
        // A cancel may come before or after the approval (an approved request that is
        // not active yet may be cancelled); an approval after a cancel is refused.
        ensure!(
            cancelled.is_ok() || approved.is_ok(),
            "round {round}: both refused"
        );
        let final_state = w.request(id).await?.request.state.name();
        match (&approved, &cancelled) {
            (_, Ok(_)) => assert_eq!(final_state, StateName::Cancelled, "round {round}"),
            (Ok(_), Err(e)) => {
                // The cancel came too late: the grant went active.
                assert_eq!(
                    refusal(e).map(|r| r.status),
                    Some(StatusCode::CONFLICT),
                    "{e:#}"
                );
                w.wait_state(id, StateName::Active, LONG).await?;
                assert!(w.has_assignment("alice", "JitSsm").await?);
                w.revoke_as("alice", id).await?;
            }
            (Err(_), Err(_)) => unreachable!(),
        }
        w.wait_settled(id, LONG).await?;
        w.wait_converged("alice", LONG).await?;
        assert!(!w.has_assignment("alice", "JitSsm").await?, "round {round}");
    }
    Ok(())
}

#[tokio::test]
async fn revoke_racing_expiry_ends_once() -> Result<()> {
    let w = world(vec![prod_profile()]).await?;
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(5))
        .await?;
    w.approve_as("bob", id).await?;
    w.wait_state(id, StateName::Active, LONG).await?;
    w.token_for("alice").await?;
    let end = expires_at(&w, id).await?;
    tokio::time::sleep(end.duration_since(SystemTime::now()).unwrap_or_default()).await;
    // Revoke exactly as the grant expires: either may win, never both.
    let revoked = w.revoke_as("alice", id).await;
    w.assert_gone_within("alice", "JitSsm", end, REVOKE_PROMISE)
        .await?;
    let actions = w.audit_actions(id).await?;
    let ended: Vec<_> = actions
        .iter()
        .filter(|a| *a == "request.expired" || *a == "request.revoked")
        .collect();
    assert_eq!(ended.len(), 1, "{actions:?} (revoke answered {revoked:?})");
    assert_eq!(ops_for(&w, "alice", OpKind::Delete).await?, 1);
    let cleared = w.api("alice", &format!("/requests/{id}"), None).await?;
    assert_eq!(cleared["state"], json!("ended"));
    Ok(())
}

#[tokio::test]
async fn admins_approve_only_when_the_config_gives_them_the_power() -> Result<()> {
    let w = world(vec![prod_profile()]).await?;
    let id = w.submit("alice", "prod-web", "app", HOUR).await?;
    // olga administers jitgate but approves nothing by default...
    let seen = w.api("olga", &format!("/requests/{id}"), None).await?;
    assert_eq!(seen["state"], json!("pending"), "admins see every request");
    let refused = w
        .approve_as("olga", id)
        .await
        .err()
        .context("olga approved")?;
    assert_eq!(
        refusal(&refused).map(|r| r.status),
        Some(StatusCode::FORBIDDEN),
        "{refused:#}"
    );
    assert_eq!(
        w.request(id).await?.request.state.name(),
        StateName::Pending
    );
    // ...and still ends what is granted.
    w.approve_as("bob", id).await?;
    w.wait_state(id, StateName::Active, LONG).await?;
    w.revoke_as("olga", id).await?;
    w.wait_settled(id, LONG).await?;

    // With [auth] admins_approve = true she approves.
    let w = World::start(Backend::Sqlite, PeerKnobs::default(), |b| {
        b.profile(prod_profile())
            .raw("[auth]\nadmins_approve = true\n")
    })
    .await?;
    let id = w.submit("alice", "prod-web", "app", HOUR).await?;
    w.approve_as("olga", id).await?;
    w.wait_state(id, StateName::Active, LONG).await?;
    Ok(())
}
