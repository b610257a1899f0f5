//! A grant's life against the real AWS peer: approve, provision, expire, revoke, with
//! overlap, both run-as modes, faults and failures.

use std::time::Duration;

use anyhow::Context;
use anyhow::Result;
use jitgate_server::domain::{RequestState, StateName};
use jitgate_server::store::audit;
use reqwest::StatusCode;

use crate::harness::{Fault, PeerKnobs, ProfileSpec};
use crate::world::on_both_backends;
use crate::world::{Backend, REVOKE_PROMISE, World, prod_profile, refusal};

const SHORT: Duration = Duration::from_secs(30);
const LONG: Duration = Duration::from_secs(90);

/// Asserts that `expected` occur in `actual` in this order (other events may be between).
fn assert_in_order(actual: &[String], expected: &[&str]) {
    let mut rest = actual.iter();
    for want in expected {
        assert!(
            rest.any(|a| a == want),
            "expected {want} (in order {expected:?}) in audit trail {actual:?}"
        );
    }
}

async fn grant_lifecycle(backend: Backend) -> Result<()> {
    let w = World::start(backend, PeerKnobs::default(), |b| b.profile(prod_profile())).await?;
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(4))
        .await?;
    assert_eq!(
        w.request(id).await?.request.state.name(),
        StateName::Pending
    );
    assert!(
        !w.has_assignment("alice", "JitSsm").await?,
        "nothing is granted before approval"
    );

    // Nobody approves their own request.
    let own = w
        .approve_as("alice", id)
        .await
        .err()
        .context("alice approved her own request")?;
    let own = refusal(&own).context("not a refusal")?;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "{own}");
    assert!(own.message.contains("your own request"), "{own}");
    assert_eq!(
        w.request(id).await?.request.state.name(),
        StateName::Pending
    );

    w.approve_as("bob", id).await?;
    let active = w.wait_state(id, StateName::Active, SHORT).await?;
    assert!(w.has_assignment("alice", "JitSsm").await?);
    assert_eq!(
        w.user_attribute("alice", "nickName").await?.as_deref(),
        Some("app")
    );
    let RequestState::Active {
        activated_at,
        expires_at,
    } = active.request.state
    else {
        unreachable!()
    };
    assert_eq!(
        (expires_at - activated_at).num_seconds(),
        4,
        "duration runs from activation"
    );

    let ended = w.wait_state(id, StateName::Ended, SHORT).await?;
    assert!(matches!(ended.request.state, RequestState::Ended { .. }));
    w.wait_settled(id, SHORT).await?;
    assert!(
        !w.has_assignment("alice", "JitSsm").await?,
        "the assignment is gone once settled"
    );
    assert_eq!(
        w.user_attribute("alice", "nickName").await?,
        None,
        "run-as attribute cleared"
    );

    let actions = w.audit_actions(id).await?;
    assert_in_order(
        &actions,
        &[
            "request.submitted",
            "request.approved",
            "aws.assignment_created",
            "request.activated",
            "request.expired",
            "aws.assignment_deleted",
        ],
    );
    let (ok, text) = w.audit_verify().await?;
    assert!(ok && text.contains("audit chain OK"), "{text}");
    Ok(())
}

on_both_backends!(grant_lifecycle);

#[tokio::test]
async fn overlapping_grants_keep_the_shared_assignment_until_the_last_ends() -> Result<()> {
    let w = World::start(Backend::Sqlite, PeerKnobs::default(), |b| {
        b.profile(prod_profile())
    })
    .await?;
    let short = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3))
        .await?;
    let long = w
        .submit("alice", "prod-web", "app", Duration::from_secs(12))
        .await?;
    // One principal-tag OS user per person at a time: a third request as another user is refused.
    let other = w
        .submit("alice", "prod-web", "readonly", Duration::from_secs(60))
        .await;
    let message = format!(
        "{:#}",
        other.err().map(|e| e.to_string()).unwrap_or_default()
    );
    assert!(
        message.contains("`app`"),
        "refusal should name the OS user in use: {message}"
    );

    w.approve_as("bob", short).await?;
    w.approve_as("carol", long).await?;
    w.wait_state(short, StateName::Active, SHORT).await?;
    w.wait_state(long, StateName::Active, SHORT).await?;

    w.wait_settled(short, SHORT).await?;
    assert_eq!(
        w.request(long).await?.request.state.name(),
        StateName::Active
    );
    assert!(
        w.has_assignment("alice", "JitSsm").await?,
        "still needed by the longer grant"
    );
    assert_eq!(
        w.user_attribute("alice", "nickName").await?.as_deref(),
        Some("app")
    );
    assert!(
        w.audit_actions(short)
            .await?
            .contains(&"aws.assignment_kept".to_string())
    );

    w.wait_settled(long, SHORT).await?;
    assert!(!w.has_assignment("alice", "JitSsm").await?);
    w.wait_run_as_cleared("alice", Duration::from_secs(10))
        .await?;
    let deletes = w
        .peer
        .history()
        .await?
        .into_iter()
        .filter(|op| op.op == crate::harness::OpKind::Delete)
        .count();
    assert_eq!(deletes, 1, "one shared assignment, deleted once");
    Ok(())
}

#[tokio::test]
async fn revoking_early_removes_access_at_once() -> Result<()> {
    let w = World::start(Backend::Sqlite, PeerKnobs::default(), |b| {
        b.profile(prod_profile())
    })
    .await?;
    let id = w
        .submit("dave", "prod-web", "readonly", Duration::from_secs(3600))
        .await?;
    w.approve_as("carol", id).await?;
    w.wait_state(id, StateName::Active, SHORT).await?;
    // Someone who is neither requester, approver nor admin may not revoke (nor learn
    // that the request exists).
    let refused = w
        .revoke_as("alice", id)
        .await
        .err()
        .context("alice revoked dave's grant")?;
    assert_eq!(
        refusal(&refused).map(|r| r.status),
        Some(StatusCode::NOT_FOUND),
        "{refused:#}"
    );
    assert_eq!(w.request(id).await?.request.state.name(), StateName::Active);
    w.act(
        "dave",
        id,
        "revoke",
        serde_json::json!({ "comment": "done early" }),
    )
    .await?;
    let answered = tokio::time::Instant::now();
    w.wait_assignment("dave", "JitSsm", false, REVOKE_PROMISE)
        .await?;
    assert!(answered.elapsed() <= REVOKE_PROMISE);
    w.wait_settled(id, SHORT).await?;
    assert!(
        w.audit_actions(id)
            .await?
            .contains(&"request.revoked".to_string())
    );
    Ok(())
}

#[tokio::test]
async fn session_document_mode_grants_one_permission_set_per_os_user() -> Result<()> {
    let staging = ProfileSpec {
        name: "staging".into(),
        permission_set: "JitSsm-{os_user}".into(),
        run_as_mode: "session-document".into(),
        allowed_os_users: vec!["deploy".into(), "readonly".into()],
        auto_approve: true,
        ..prod_profile()
    };
    let w = World::start(Backend::Sqlite, PeerKnobs::default(), |b| {
        b.profile(staging)
    })
    .await?;
    // Different OS users at once are fine in this mode, and auto-approval needs nobody.
    let deploy = w
        .submit("alice", "staging", "deploy", Duration::from_secs(3600))
        .await?;
    let readonly = w
        .submit("alice", "staging", "readonly", Duration::from_secs(3600))
        .await?;
    w.wait_state(deploy, StateName::Active, SHORT).await?;
    w.wait_state(readonly, StateName::Active, SHORT).await?;
    assert!(w.has_assignment("alice", "JitSsm-deploy").await?);
    assert!(w.has_assignment("alice", "JitSsm-readonly").await?);
    assert!(!w.has_assignment("alice", "JitSsm").await?);
    assert_eq!(
        w.user_attribute("alice", "nickName").await?,
        None,
        "no attribute in this mode"
    );
    Ok(())
}

#[tokio::test]
async fn throttling_and_server_errors_are_survived() -> Result<()> {
    let knobs = PeerKnobs {
        assignment_delay_ms: 500,
        throttle_every: 3,
        error_every: 5,
        ..PeerKnobs::default()
    };
    let w = World::start(Backend::Sqlite, knobs, |b| b.profile(prod_profile())).await?;
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3))
        .await?;
    w.approve_as("bob", id).await?;
    w.wait_state(id, StateName::Active, Duration::from_secs(60))
        .await?;
    w.wait_settled(id, Duration::from_secs(60)).await?;
    assert!(!w.has_assignment("alice", "JitSsm").await?);
    let stats = w.peer.stats().await?;
    assert!(stats["throttled"].as_u64() > Some(0), "{stats}");
    assert!(stats["errors"].as_u64() > Some(0), "{stats}");
    Ok(())
}

#[tokio::test]
async fn a_grant_that_cannot_be_provisioned_fails_with_the_reason() -> Result<()> {
    // The peer fails assignments on accounts it was not seeded with, as IdC does for an
    // account outside the organization.
    let profile = ProfileSpec {
        accounts: vec!["111111111111".into(), "999999999999".into()],
        ..prod_profile()
    };
    let w = World::start(Backend::Sqlite, PeerKnobs::default(), |b| {
        b.profile(profile)
    })
    .await?;
    let id = w
        .submit_on(
            "alice",
            "prod-web",
            "999999999999",
            "app",
            Duration::from_secs(600),
        )
        .await?;
    w.approve_as("bob", id).await?;
    let failed = w
        .wait_state(id, StateName::Failed, Duration::from_secs(60))
        .await?;
    let RequestState::Failed { reason, .. } = &failed.request.state else {
        unreachable!()
    };
    // The requester reads what failed, not AWS's text; the audit trail has that.
    assert!(
        reason.contains("could not create the assignment") && reason.contains("after 5 attempts"),
        "{reason}"
    );
    assert!(!reason.contains("organization"), "AWS text shown: {reason}");
    w.wait_settled(id, SHORT).await?;
    assert!(w.peer.assignments().await?.is_empty());
    let events = audit::for_request(&w.db, &id.to_string()).await?;
    let failures: Vec<_> = events
        .iter()
        .filter(|e| e.action == "aws.converge_failed")
        .collect();
    assert!(
        !failures.is_empty()
            && failures.iter().all(|e| e.details["error"]
                .as_str()
                .is_some_and(|t| t.contains("not a member of the organization"))),
        "{events:?}"
    );
    assert!(
        failures.len() <= 2,
        "one event when the failures start and one when the grant gives up: {failures:?}"
    );
    assert!(
        events.iter().any(|e| e.action == "request.failed"),
        "{events:?}"
    );
    Ok(())
}

/// In principal-tag mode the OS user lives in one attribute per person, so a person's
/// open requests must all be for one OS user; others' requests and ended ones do not
/// count, however many requests are open.
async fn one_os_user_per_person(backend: Backend) -> Result<()> {
    let w = World::start(backend, PeerKnobs::default(), |b| b.profile(prod_profile())).await?;
    let hour = Duration::from_secs(3600);
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(w.submit("alice", "prod-web", "app", hour).await?);
    }
    let Err(refused) = w.submit("alice", "prod-web", "readonly", hour).await else {
        anyhow::bail!("a second OS user was accepted while requests for `app` are open");
    };
    let Some(conflict) = refusal(&refused).filter(|r| r.status == StatusCode::CONFLICT) else {
        anyhow::bail!("expected a run-as conflict, got {refused:#}");
    };
    assert_eq!(conflict.field.as_deref(), Some("os_user"), "{conflict}");
    assert!(conflict.message.contains("`app`"), "{conflict}");
    assert!(
        open.iter()
            .any(|id| conflict.message.contains(&id.to_string())),
        "the refusal names one of alice's open requests: {conflict}"
    );
    // Another person is not held back by alice's requests.
    w.submit("dave", "prod-web", "readonly", hour).await?;
    // Once alice's requests for `app` are over, she may ask for another OS user.
    for id in open {
        w.cancel_as("alice", id).await?;
    }
    w.submit("alice", "prod-web", "readonly", hour).await?;
    Ok(())
}

on_both_backends!(one_os_user_per_person);

/// Submissions arriving together each get their own answer, row and audit event, and
/// the one-OS-user rule holds between them (whichever OS user is saved first wins).
async fn concurrent_submissions(backend: Backend) -> Result<()> {
    let w = World::start(backend, PeerKnobs::default(), |b| b.profile(prod_profile())).await?;
    let hour = Duration::from_secs(3600);
    let asks = (0..24).map(|i| {
        let (who, os_user) = match i % 3 {
            0 => ("alice", "app"),
            1 => ("alice", "readonly"),
            _ => ("dave", "app"),
        };
        let w = &w;
        async move { (who, os_user, w.submit(who, "prod-web", os_user, hour).await) }
    });
    let answers = futures::future::join_all(asks).await;
    let mut alice_os_users = std::collections::BTreeSet::new();
    let mut refused = 0;
    for (who, os_user, answer) in &answers {
        match answer {
            Ok(id) => {
                let stored = w.request(*id).await?;
                assert_eq!(stored.request.requester.as_str(), format!("sub-{who}"));
                assert_eq!(stored.request.os_user.as_str(), *os_user);
                assert_eq!(w.audit_actions(*id).await?, vec!["request.submitted"]);
                if *who == "alice" {
                    alice_os_users.insert(*os_user);
                }
            }
            Err(e) => {
                assert_eq!(*who, "alice", "only alice asks for two OS users: {e:#}");
                assert!(
                    refusal(e).is_some_and(|r| r.status == StatusCode::CONFLICT
                        && r.field.as_deref() == Some("os_user")),
                    "refused for the OS user only: {e:#}"
                );
                refused += 1;
            }
        }
    }
    assert_eq!(alice_os_users.len(), 1, "alice holds one OS user");
    assert_eq!(refused, 8, "the 8 submissions for alice's other OS user");
    let (ok, report) = w.audit_verify().await?;
    assert!(ok, "{report}");
    Ok(())
}

on_both_backends!(concurrent_submissions);

/// A failure stays with what caused it: with the OS-user attribute write refused (the
/// broker's role lacks identitystore:UpdateUser), the person's session-document grant,
/// which never needs the attribute, still becomes active and is revoked at once; only
/// the principal-tag grant fails, with a reason and no AWS text; and once it has, the
/// audit trail stays still.
#[tokio::test]
async fn a_refused_attribute_write_fails_only_the_grant_that_needs_it() -> Result<()> {
    let staging = ProfileSpec {
        name: "staging".into(),
        permission_set: "JitSsm-{os_user}".into(),
        run_as_mode: "session-document".into(),
        allowed_os_users: vec!["deploy".into()],
        ..prod_profile()
    };
    let w = World::start(Backend::Sqlite, PeerKnobs::default(), |b| {
        b.profile(prod_profile()).profile(staging)
    })
    .await?;
    w.peer
        .set_faults(&[Fault {
            action: "UpdateUser",
            effect: "deny",
            principal_id: Some(w.user_id("alice")?),
        }])
        .await?;
    let tagged = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    let doc = w
        .submit("alice", "staging", "deploy", Duration::from_secs(3600))
        .await?;
    w.approve_as("bob", tagged).await?;
    w.approve_as("bob", doc).await?;

    w.wait_state(doc, StateName::Active, SHORT).await?;
    assert!(w.has_assignment("alice", "JitSsm-deploy").await?);
    let failed = w.wait_state(tagged, StateName::Failed, LONG).await?;
    let RequestState::Failed { reason, .. } = &failed.request.state else {
        unreachable!()
    };
    assert!(
        reason.contains("not allowed to set your OS user") && reason.contains("IAM permission"),
        "{reason}"
    );
    assert!(!reason.contains("UpdateUser"), "AWS text shown: {reason}");
    assert!(!w.has_assignment("alice", "JitSsm").await?);
    assert_eq!(w.user_attribute("alice", "nickName").await?, None);

    // Its page tells the requester whom to ask, without AWS's text; an admin reads the
    // missing permission.
    let page_of = async |who: &str| -> Result<String> {
        let (client, _) = w.session_of(who).await?;
        Ok(client
            .get(format!("{}/requests/{tagged}", w.server.listen_url()))
            .send()
            .await?
            .text()
            .await?)
    };
    let alice_sees = page_of("alice").await?;
    assert!(alice_sees.contains("What next"), "{alice_sees}");
    assert!(
        alice_sees.contains("Ask your jitgate administrator"),
        "{alice_sees}"
    );
    assert!(
        !alice_sees.contains("UpdateUser"),
        "AWS text shown to the requester"
    );
    let carol_sees = page_of("carol").await?;
    assert!(
        carol_sees.contains("role the action identitystore:UpdateUser: add it"),
        "{carol_sees}"
    );

    // The revocation of the working grant is not held up by the failed one.
    w.revoke_as("bob", doc).await?;
    let revoked_at = tokio::time::Instant::now();
    w.wait_assignment("alice", "JitSsm-deploy", false, REVOKE_PROMISE)
        .await?;
    assert!(revoked_at.elapsed() <= REVOKE_PROMISE);
    w.wait_converged("alice", SHORT).await?;

    // Nothing changes any more, and the trail says so by not growing.
    let before = audit::page_since(&w.db, i64::MIN, 0, 100_000).await?.len();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = audit::page_since(&w.db, i64::MIN, 0, 100_000).await?.len();
    assert_eq!(before, after, "audit events appended while nothing changed");
    let failures = audit::for_request(&w.db, &tagged.to_string())
        .await?
        .into_iter()
        .filter(|e| e.action == "aws.converge_failed")
        .count();
    assert!(
        (1..=2).contains(&failures),
        "{failures} converge_failed events"
    );
    Ok(())
}
