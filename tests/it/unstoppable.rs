//! Revocation that nothing stops: a restart, an identity provider or IAM Identity Center
//! down at start, a profile removed from the config, a stuck operation of the same
//! person, AWS down for a while. Each scenario failed before the engine was fixed; each
//! checks AWS (the peer) for the promise.

use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, ensure};
use jitgate_server::domain::StateName;
use reqwest::StatusCode;

use crate::harness::{Fault, PeerKnobs, ProfileSpec, ServerProcess, wait_until};
use crate::world::{Backend, REVOKE_PROMISE, World, prod_profile, refusal};

const LONG: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// The sweep runs every second in these tests, so a lapse is seen in seconds; the fault
/// (a sweep lease outliving its process) stopped it whatever its cadence.
const EVERY_SECOND: &str = "* * * * * *";

/// A `staging` profile in session-document mode (one permission set per OS user).
fn staging() -> ProfileSpec {
    ProfileSpec {
        name: "staging".into(),
        permission_set: "JitSsm-{os_user}".into(),
        run_as_mode: "session-document".into(),
        allowed_os_users: vec!["deploy".into(), "readonly".into()],
        ..prod_profile()
    }
}

/// `who`'s grant of `profile` as `os_user`, approved by bob and active.
async fn active_grant(
    w: &World,
    who: &str,
    profile: &str,
    os_user: &str,
    duration: Duration,
) -> Result<jitgate_server::domain::RequestId> {
    let id = w.submit(who, profile, os_user, duration).await?;
    w.approve_as("bob", id).await?;
    w.wait_state(id, StateName::Active, LONG).await?;
    Ok(id)
}

#[tokio::test]
async fn the_sweep_runs_right_after_a_restart() -> Result<()> {
    let profile = ProfileSpec {
        approval_timeout: "2s".into(),
        ..prod_profile()
    };
    let mut w = World::start(Backend::Sqlite, PeerKnobs::default(), |b| {
        b.profile(profile).sweep(EVERY_SECOND)
    })
    .await?;
    // A lapse shows that a sweep ran (and held its lease) before the kill.
    let before = w.submit("alice", "prod-web", "app", HOUR).await?;
    w.wait_state(before, StateName::Lapsed, Duration::from_secs(20))
        .await?;
    w.restart().await?;
    let after = w.submit("dave", "prod-web", "app", HOUR).await?;
    let submitted = tokio::time::Instant::now();
    w.wait_state(after, StateName::Lapsed, Duration::from_secs(30))
        .await?;
    let took = submitted.elapsed();
    ensure!(
        took <= Duration::from_secs(6),
        "lapsed {took:?} after a 2s timeout: the sweep waited"
    );
    Ok(())
}

#[tokio::test]
async fn revocations_go_on_when_the_identity_provider_is_down_at_start() -> Result<()> {
    let mut w = World::start(Backend::Sqlite, PeerKnobs::default(), |b| {
        b.profile(prod_profile())
    })
    .await?;
    let revoked = active_grant(&w, "alice", "prod-web", "app", HOUR).await?;
    let expiring = active_grant(&w, "dave", "prod-web", "app", Duration::from_secs(12)).await?;
    w.server.kill9().await?;
    w.oidc.stop().await?;
    w.server = ServerProcess::spawn_alive(&w.config_toml).await?;

    // Not ready, and saying why; sign-in says it waits for the provider.
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("{}/readyz", w.server.listen_url()))
        .send()
        .await?;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let why = ready.text().await?;
    assert!(why.contains("oidc"), "{why}");
    let login = http
        .get(format!("{}/login", w.server.listen_url()))
        .send()
        .await?;
    assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        login
            .text()
            .await?
            .contains("cannot reach the identity provider")
    );

    // API tokens do not need the provider: revoking works, and so does expiry.
    w.revoke_as("alice", revoked).await?;
    w.assert_gone_within("alice", "JitSsm", SystemTime::now(), REVOKE_PROMISE)
        .await?;
    let expires_at = w
        .request(expiring)
        .await?
        .request
        .expires_at()
        .context("active without expiry")?;
    w.assert_gone_within("dave", "JitSsm", expires_at.into(), REVOKE_PROMISE)
        .await?;
    Ok(())
}

#[tokio::test]
async fn revocations_go_on_when_iam_identity_center_is_down_at_start() -> Result<()> {
    let mut w = World::start(Backend::Sqlite, PeerKnobs::default(), |b| {
        b.profile(prod_profile())
    })
    .await?;
    let id = active_grant(&w, "alice", "prod-web", "app", HOUR).await?;
    w.token_for("dave").await?;
    w.server.kill9().await?;
    let outage = Duration::from_secs(8);
    w.peer.outage(outage.as_secs_f64()).await?;
    let outage_ends = SystemTime::now() + outage;
    w.server = ServerProcess::spawn_alive(&w.config_toml).await?;

    let ready = reqwest::get(format!("{}/readyz", w.server.listen_url())).await?;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.text().await?.contains("aws"));
    // A new grant is refused with a reason while IdC cannot be reached; a revocation is not.
    let refused = w
        .submit("dave", "prod-web", "app", HOUR)
        .await
        .err()
        .context("a grant was accepted while IdC was unreachable")?;
    let refused = refusal(&refused).context("not a refusal")?;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{refused}");
    assert!(refused.message.contains("IAM Identity Center"), "{refused}");
    w.revoke_as("alice", id).await?;
    w.assert_gone_within("alice", "JitSsm", outage_ends, Duration::from_secs(8))
        .await?;
    // Once IdC answers, the server is ready and grants again.
    wait_until(
        "the server to be ready",
        LONG,
        Duration::from_millis(200),
        || async {
            Ok(reqwest::get(format!("{}/readyz", w.server.listen_url()))
                .await?
                .status()
                .is_success())
        },
    )
    .await?;
    active_grant(&w, "dave", "prod-web", "app", HOUR).await?;
    Ok(())
}

#[tokio::test]
async fn a_profile_removed_across_a_restart_still_ends_its_grants() -> Result<()> {
    let old = ProfileSpec {
        name: "old".into(),
        ..prod_profile()
    };
    let mut w = World::start(Backend::Sqlite, PeerKnobs::default(), |b| {
        b.profile(prod_profile()).profile(old).sweep(EVERY_SECOND)
    })
    .await?;
    let revoked = active_grant(&w, "alice", "old", "app", HOUR).await?;
    let expiring = active_grant(&w, "dave", "old", "app", Duration::from_secs(15)).await?;
    let pending = w.submit("frank", "old", "app", HOUR).await?;
    let unapproved = w.submit("grace", "old", "app", HOUR).await?;

    // The same config without profile `old`.
    let mut config: toml::Table = w.config_toml.parse()?;
    if let Some(toml::Value::Array(profiles)) = config.get_mut("profiles") {
        profiles.retain(|p| p.get("name").and_then(|n| n.as_str()) != Some("old"));
    }
    w.config_toml = config.to_string();
    w.restart().await?;

    // Its requests no longer go ahead, and the trail says why.
    w.wait_state(pending, StateName::Lapsed, Duration::from_secs(15))
        .await?;
    let refused = w
        .approve_as("carol", unapproved)
        .await
        .err()
        .context("a request of a removed profile was approved")?;
    let refused = refusal(&refused).context("not a refusal")?;
    assert!(refused.message.contains("no profile `old`"), "{refused}");
    w.wait_state(unapproved, StateName::Lapsed, Duration::from_secs(15))
        .await?;
    let lapse = jitgate_server::store::audit::for_request(&w.db, &pending.to_string())
        .await?
        .into_iter()
        .find(|e| e.action == "request.lapsed")
        .context("no lapse event")?;
    assert!(
        lapse.details["comment"]
            .as_str()
            .is_some_and(|c| c.contains("profile `old` was removed")),
        "{lapse:?}"
    );
    // Its grants still end: revoked by the requester, and at expiry.
    w.revoke_as("alice", revoked).await?;
    w.assert_gone_within("alice", "JitSsm", SystemTime::now(), REVOKE_PROMISE)
        .await?;
    let expires_at = w
        .request(expiring)
        .await?
        .request
        .expires_at()
        .context("active without expiry")?;
    w.assert_gone_within("dave", "JitSsm", expires_at.into(), REVOKE_PROMISE)
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_stuck_create_does_not_hold_up_a_revocation_of_the_same_person() -> Result<()> {
    let w = World::start(Backend::Sqlite, PeerKnobs::default(), |b| {
        b.profile(prod_profile()).profile(staging())
    })
    .await?;
    let working = active_grant(&w, "alice", "staging", "deploy", HOUR).await?;
    w.peer
        .set_faults(&[Fault {
            action: "CreateAccountAssignment",
            effect: "stuck",
            principal_id: Some(w.user_id("alice")?),
        }])
        .await?;
    let stuck = w.submit("alice", "prod-web", "app", HOUR).await?;
    w.approve_as("bob", stuck).await?;
    wait_until(
        "alice's create to be in progress",
        LONG,
        Duration::from_millis(50),
        || async { Ok(w.peer.stats().await?["outstanding"].as_u64() == Some(1)) },
    )
    .await?;

    w.revoke_as("alice", working).await?;
    w.assert_gone_within("alice", "JitSsm-deploy", SystemTime::now(), REVOKE_PROMISE)
        .await?;
    assert_eq!(
        w.request(stuck).await?.request.state.name(),
        StateName::Approved
    );
    // Once IdC finishes the create, the stuck grant goes active.
    w.peer.set_faults(&[]).await?;
    w.wait_state(stuck, StateName::Active, LONG).await?;
    Ok(())
}

#[tokio::test]
async fn a_revocation_finishes_within_seconds_of_aws_answering_again() -> Result<()> {
    let w = World::start(Backend::Sqlite, PeerKnobs::default(), |b| {
        b.profile(prod_profile())
    })
    .await?;
    let id = active_grant(&w, "alice", "prod-web", "app", HOUR).await?;
    let outage = Duration::from_secs(20);
    w.peer.outage(outage.as_secs_f64()).await?;
    let outage_ends = SystemTime::now() + outage;
    w.revoke_as("alice", id).await?;
    tokio::time::sleep(outage).await;
    assert!(
        w.has_assignment("alice", "JitSsm").await?,
        "the peer was down: nothing could be deleted"
    );
    w.assert_gone_within("alice", "JitSsm", outage_ends, Duration::from_secs(8))
        .await?;
    Ok(())
}
