//! Crash safety and several replicas: a server killed with SIGKILL in the middle of
//! provisioning or revoking converges after restart, and two servers on one Postgres
//! act on each grant exactly once.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use jitgate_server::domain::{RequestId, StateName};

use crate::harness::{OpKind, PeerKnobs, ServerProcess, free_port};
use crate::world::on_both_backends;
use crate::world::{Backend, DEVELOPERS, World, prod_profile};

const LONG: Duration = Duration::from_secs(60);

/// The promise of a restart: the work a killed process left is finished within this long
/// of its successor starting, with the shipped lease (the successor takes back its own
/// node's leases at once instead of waiting them out).
const AFTER_RESTART: Duration = Duration::from_secs(5);

/// Where the server is killed.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// Right after the approval, while it holds the person's lease to provision.
    Approve,
    /// Right after a revocation, while it holds the person's lease to revoke.
    Revoke,
    /// 3 ms after the grant's `expires_at`.
    Expiry,
}

/// Waits until the server holds `who`'s lease (it is converging them): the moment the
/// walk-through found a kill left the work claimed by a dead process.
async fn wait_for_lease(w: &World, who: &str) -> Result<String> {
    crate::harness::wait_for(
        &format!("the server to claim {who}'s work"),
        LONG,
        Duration::from_millis(2),
        || async { w.lease_owner(who).await },
    )
    .await
}

async fn killed_then_restarted(backend: Backend, at: KillAt) -> Result<()> {
    let mut w = World::start(backend, PeerKnobs::default(), |b| b.profile(prod_profile())).await?;
    let duration = match at {
        KillAt::Expiry => Duration::from_secs(4),
        _ => Duration::from_secs(600),
    };
    let id = w.submit("alice", "prod-web", "app", duration).await?;
    w.approve_as("bob", id).await?;
    let want_present = matches!(at, KillAt::Approve);
    match at {
        KillAt::Approve => {
            let held = wait_for_lease(&w, "alice").await?;
            w.server.kill9().await?;
            assert_eq!(
                w.lease_owner("alice").await?,
                Some(held),
                "the dead process still holds the lease"
            );
            assert_eq!(
                w.request(id).await?.request.state.name(),
                StateName::Approved
            );
        }
        KillAt::Revoke => {
            w.wait_state(id, StateName::Active, LONG).await?;
            w.wait_converged("alice", LONG).await?;
            w.revoke_as("bob", id).await?;
            let held = wait_for_lease(&w, "alice").await?;
            w.server.kill9().await?;
            assert_eq!(w.lease_owner("alice").await?, Some(held));
        }
        KillAt::Expiry => {
            let active = w.wait_state(id, StateName::Active, LONG).await?;
            let expires_at = active
                .request
                .expires_at()
                .context("active without expiry")?;
            let until = (expires_at - chrono::Utc::now())
                .to_std()
                .unwrap_or_default()
                + Duration::from_millis(3);
            tokio::time::sleep(until).await;
            w.server.kill9().await?;
        }
    }
    assert!(
        w.request(id).await?.settled_at.is_none(),
        "the work is still owed when the server dies"
    );

    let restarted = tokio::time::Instant::now();
    w.server = ServerProcess::spawn(&w.config_toml).await?;
    w.wait_assignment("alice", "JitSsm", want_present, AFTER_RESTART)
        .await
        .with_context(|| {
            format!("{at:?}: not converged within {AFTER_RESTART:?} of the restart")
        })?;
    let took = restarted.elapsed();
    assert!(took <= AFTER_RESTART, "{at:?}: converged after {took:?}");
    if want_present {
        w.wait_state(id, StateName::Active, AFTER_RESTART).await?;
    } else {
        w.wait_settled(id, AFTER_RESTART).await?;
        w.wait_run_as_cleared("alice", AFTER_RESTART).await?;
        let deleted = w
            .audit_actions(id)
            .await?
            .iter()
            .filter(|a| *a == "aws.assignment_deleted")
            .count();
        assert_eq!(deleted, 1, "the deletion is recorded once");
    }
    let (ok, text) = w.audit_verify().await?;
    assert!(ok, "{text}");
    Ok(())
}

async fn killed_right_after_approve_provisions_within_seconds_of_restart(
    backend: Backend,
) -> Result<()> {
    killed_then_restarted(backend, KillAt::Approve).await
}

async fn killed_right_after_revoke_revokes_within_seconds_of_restart(
    backend: Backend,
) -> Result<()> {
    killed_then_restarted(backend, KillAt::Revoke).await
}

async fn killed_just_after_expiry_revokes_within_seconds_of_restart(
    backend: Backend,
) -> Result<()> {
    killed_then_restarted(backend, KillAt::Expiry).await
}

on_both_backends!(
    killed_right_after_approve_provisions_within_seconds_of_restart,
    killed_right_after_revoke_revokes_within_seconds_of_restart,
    killed_just_after_expiry_revokes_within_seconds_of_restart,
);

#[tokio::test]
async fn two_servers_on_one_postgres_act_on_each_grant_once() -> Result<()> {
    // IdC's call rate is per account, shared by every caller: each of two replicas gets
    // half (docs/OPERATIONS.md, "Several replicas"); operations in progress are counted
    // across replicas already.
    let w = World::start(Backend::Postgres, PeerKnobs::default(), |b| {
        // Two workers each, so the people's work spreads over both replicas.
        b.profile(prod_profile()).tps(10).workers(2)
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
    // Both replicas did work (each AWS change records the node that made it).
    let mut nodes = std::collections::BTreeSet::new();
    for id in &ids {
        for event in jitgate_server::store::audit::for_request(&w.db, &id.to_string()).await? {
            if let Some(node) = event.details["node"].as_str() {
                nodes.insert(node.to_owned());
            }
        }
    }
    assert_eq!(nodes.len(), 2, "work was done by {nodes:?}");
    let stats = w.peer.stats().await?;
    assert_eq!(
        stats["throttled"].as_u64(),
        Some(0),
        "limits kept together: {stats}"
    );
    let (ok, text) = w.audit_verify().await?;
    assert!(ok, "one chain with two writers: {text}");
    Ok(())
}

#[tokio::test]
async fn repeated_kills_at_random_moments_still_converge() -> Result<()> {
    use rand::Rng;
    let mut w = World::start(Backend::Sqlite, PeerKnobs::default(), |b| {
        b.profile(prod_profile())
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
    // JITGATE_KILL_SEED replays a schedule.
    let seed: u64 = match std::env::var("JITGATE_KILL_SEED") {
        Ok(text) => text.parse().context("JITGATE_KILL_SEED must be a number")?,
        Err(_) => rand::rng().random(),
    };
    eprintln!("kill schedule seed: {seed} (replay with JITGATE_KILL_SEED={seed})");
    let mut schedule = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let mut kills_mid_work = 0;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(schedule.random_range(200..1500))).await;
        w.server.kill9().await?;
        if jitgate_server::store::principals::unconverged_count(&w.db).await? > 0 {
            kills_mid_work += 1;
        }
        w.server = ServerProcess::spawn(&w.config_toml).await?;
    }
    assert!(
        kills_mid_work > 0,
        "no kill landed while work was in flight (seed {seed}): the test proved nothing"
    );
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
        w.wait_run_as_cleared(who, Duration::from_secs(10)).await?;
    }
    let (ok, text) = w.audit_verify().await?;
    assert!(ok, "{text}");
    Ok(())
}
