//! Crash safety and several replicas: a server killed with SIGKILL in the middle of
//! provisioning or revoking converges after restart, and two servers on one Postgres
//! act on each grant exactly once.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use jitgate_server::domain::{RequestId, StateName};

use crate::harness::{OpKind, PeerKnobs, ServerProcess, free_port, wait_until};
use crate::world::{Backend, DEVELOPERS, World, prod_profile};

const LONG: Duration = Duration::from_secs(60);

/// Waits until the peer has received an assignment operation of `kind`.
async fn wait_for_op(w: &World, kind: OpKind) -> Result<()> {
    wait_until(
        &format!("a {kind:?} to reach the peer"),
        LONG,
        Duration::from_millis(50),
        || async { Ok(w.peer.history().await?.iter().any(|op| op.op == kind)) },
    )
    .await
}

async fn killed_mid_provisioning(backend: Backend) -> Result<()> {
    // Assignments stay IN_PROGRESS for 2s, so the kill lands while one is outstanding.
    let knobs = PeerKnobs {
        assignment_delay_ms: 2000,
        ..PeerKnobs::default()
    };
    let mut w = World::start(backend, knobs, |b| b.profile(prod_profile()).lease("3s")).await?;
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(5))
        .await?;
    w.approve_as("bob", id).await?;
    wait_for_op(&w, OpKind::Create).await?;
    w.server.kill9().await?;
    assert_eq!(
        w.request(id).await?.request.state.name(),
        StateName::Approved
    );

    w.server = ServerProcess::spawn(&w.config_toml).await?;
    w.wait_state(id, StateName::Active, LONG).await?;
    assert!(w.has_assignment("alice", "JitSsm").await?);
    w.wait_settled(id, LONG).await?;
    assert!(
        !w.has_assignment("alice", "JitSsm").await?,
        "no orphan assignment"
    );
    w.wait_run_as_cleared("alice", Duration::from_secs(10))
        .await?;
    let (ok, text) = w.audit_verify().await?;
    assert!(ok, "{text}");
    Ok(())
}

#[tokio::test]
async fn killed_mid_provisioning_converges_after_restart_on_sqlite() -> Result<()> {
    killed_mid_provisioning(Backend::Sqlite).await
}

#[tokio::test]
async fn killed_mid_provisioning_converges_after_restart_on_postgres() -> Result<()> {
    killed_mid_provisioning(Backend::Postgres).await
}

async fn killed_mid_revoke(backend: Backend) -> Result<()> {
    let knobs = PeerKnobs {
        assignment_delay_ms: 2000,
        ..PeerKnobs::default()
    };
    let mut w = World::start(backend, knobs, |b| b.profile(prod_profile()).lease("3s")).await?;
    let id = w
        .submit("dave", "prod-web", "readonly", Duration::from_secs(2))
        .await?;
    w.approve_as("carol", id).await?;
    w.wait_state(id, StateName::Active, LONG).await?;
    wait_for_op(&w, OpKind::Delete).await?;
    w.server.kill9().await?;
    assert_eq!(w.request(id).await?.request.state.name(), StateName::Ended);
    assert!(
        w.request(id).await?.settled_at.is_none(),
        "the revocation is still owed"
    );

    w.server = ServerProcess::spawn(&w.config_toml).await?;
    w.wait_settled(id, LONG).await?;
    assert!(
        !w.has_assignment("dave", "JitSsm").await?,
        "revocation not lost"
    );
    w.wait_run_as_cleared("dave", Duration::from_secs(10))
        .await?;
    let deleted = w
        .audit_actions(id)
        .await?
        .iter()
        .filter(|a| *a == "aws.assignment_deleted")
        .count();
    assert_eq!(deleted, 1, "the deletion is recorded once");
    let (ok, text) = w.audit_verify().await?;
    assert!(ok, "{text}");
    Ok(())
}

#[tokio::test]
async fn killed_mid_revoke_converges_after_restart_on_sqlite() -> Result<()> {
    killed_mid_revoke(Backend::Sqlite).await
}

#[tokio::test]
async fn killed_mid_revoke_converges_after_restart_on_postgres() -> Result<()> {
    killed_mid_revoke(Backend::Postgres).await
}

#[tokio::test]
async fn two_servers_on_one_postgres_act_on_each_grant_once() -> Result<()> {
    let knobs = PeerKnobs {
        assignment_delay_ms: 200,
        ..PeerKnobs::default()
    };
    let w = World::start(Backend::Postgres, knobs, |b| {
        b.profile(prod_profile()).workers(2)
    })
    .await?;
    // A second replica: same config and database, its own listener.
    let second_toml = w
        .config_toml
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("listen") {
                free_port().map(|p| format!("listen = \"127.0.0.1:{p}\""))
            } else {
                Ok(l.to_owned())
            }
        })
        .collect::<Result<Vec<_>>>()?
        .join("\n");
    let second = ServerProcess::spawn(&second_toml).await?;

    let mut ids: Vec<RequestId> = Vec::new();
    for (i, who) in DEVELOPERS.iter().enumerate() {
        let id = w
            .submit(
                who,
                "prod-web",
                "app",
                Duration::from_secs(2 + (i as u64 % 3)),
            )
            .await?;
        w.approve_as(if i % 2 == 0 { "bob" } else { "carol" }, id)
            .await?;
        ids.push(id);
    }
    for id in &ids {
        w.wait_settled(*id, LONG)
            .await
            .with_context(|| format!("second server log:\n{}", second.log()))?;
    }

    let mut ops: HashMap<(OpKind, String), usize> = HashMap::new();
    for op in w.peer.history().await? {
        *ops.entry((op.op, op.principal_id)).or_default() += 1;
    }
    for who in DEVELOPERS {
        let principal = w.user_id(who)?;
        assert_eq!(
            ops.get(&(OpKind::Create, principal.clone())),
            Some(&1),
            "{who}: one create"
        );
        assert_eq!(
            ops.get(&(OpKind::Delete, principal)),
            Some(&1),
            "{who}: one delete"
        );
    }
    for id in &ids {
        let actions = w.audit_actions(*id).await?;
        for once in [
            "request.activated",
            "request.expired",
            "aws.assignment_deleted",
        ] {
            assert_eq!(
                actions.iter().filter(|a| *a == once).count(),
                1,
                "{once} once for {id}: {actions:?}"
            );
        }
    }
    assert!(w.peer.assignments().await?.is_empty());
    let (ok, text) = w.audit_verify().await?;
    assert!(ok, "one chain with two writers: {text}");
    Ok(())
}

#[tokio::test]
async fn repeated_kills_at_random_moments_still_converge() -> Result<()> {
    use rand::Rng;
    let knobs = PeerKnobs {
        assignment_delay_ms: 300,
        ..PeerKnobs::default()
    };
    let mut w = World::start(Backend::Sqlite, knobs, |b| {
        b.profile(prod_profile()).lease("2s")
    })
    .await?;
    let mut ids = Vec::new();
    for (i, who) in DEVELOPERS.iter().take(6).enumerate() {
        let id = w
            .submit(who, "prod-web", "app", Duration::from_secs(2 + i as u64))
            .await?;
        w.approve_as(if i % 2 == 0 { "bob" } else { "carol" }, id)
            .await?;
        ids.push(id);
    }
    // Kill the server at random moments while it provisions, expires and revokes.
    let seed: u64 = rand::rng().random();
    eprintln!("kill schedule seed: {seed}");
    let mut schedule = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(schedule.random_range(200..1500))).await;
        w.server.kill9().await?;
        w.server = ServerProcess::spawn(&w.config_toml).await?;
    }
    for id in &ids {
        w.wait_settled(*id, LONG).await?;
        let actions = w.audit_actions(*id).await?;
        assert_eq!(
            actions.iter().filter(|a| *a == "request.expired").count(),
            1,
            "{actions:?}"
        );
    }
    assert!(
        w.peer.assignments().await?.is_empty(),
        "no orphan assignment"
    );
    for who in DEVELOPERS.iter().take(6) {
        assert_eq!(
            w.user_attribute(who, "nickName").await?,
            None,
            "{who}'s attribute left set"
        );
    }
    let (ok, text) = w.audit_verify().await?;
    assert!(ok, "{text}");
    Ok(())
}
