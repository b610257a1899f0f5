//! The cron sweep: lapsing unanswered requests and drift on managed permission sets.

use std::time::Duration;

use anyhow::{Context, Result};
use jitgate_server::domain::StateName;
use jitgate_server::store::audit;

use crate::harness::{PeerKnobs, ProfileSpec, wait_until};
use crate::world::{Backend, World, prod_profile};

/// The sweep runs every second here instead of every minute, so its work (lapses, drift)
/// is seen in seconds; what it does does not depend on its cadence.
const EVERY_SECOND: &str = "* * * * * *";

/// An assignment of JitSsm to `who` made behind jitgate's back.
async fn assign_by_hand(w: &World, who: &str) -> Result<()> {
    w.assign_by_hand("USER", &w.user_id(who)?, "JitSsm").await
}

async fn count_actions(w: &World, action: &str) -> Result<usize> {
    let events = audit::page_since(&w.db, i64::MIN, 0, 10_000).await?;
    Ok(events.iter().filter(|e| e.action == action).count())
}

#[tokio::test]
async fn unanswered_requests_lapse() -> Result<()> {
    let profile = ProfileSpec {
        approval_timeout: "2s".into(),
        ..prod_profile()
    };
    let w = World::start(Backend::Sqlite, PeerKnobs::default(), |b| {
        b.profile(profile).sweep(EVERY_SECOND)
    })
    .await?;
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(600))
        .await?;
    w.wait_state(id, StateName::Lapsed, Duration::from_secs(20))
        .await?;
    let refused = w
        .approve_as("bob", id)
        .await
        .err()
        .context("a lapsed request was approved")?;
    let refused = crate::world::refusal(&refused).context("not a refusal")?;
    assert_eq!(refused.status, reqwest::StatusCode::CONFLICT, "{refused}");
    assert!(refused.message.contains("lapsed"), "{refused}");
    assert_eq!(w.request(id).await?.request.state.name(), StateName::Lapsed);
    assert!(w.peer.assignments().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn drift_is_removed_when_configured() -> Result<()> {
    let w = World::start(Backend::Sqlite, PeerKnobs::default(), |b| {
        b.profile(prod_profile())
            .sweep(EVERY_SECOND)
            .drift("remove")
    })
    .await?;
    // A legitimate grant stays; the hand-made assignment goes.
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(600))
        .await?;
    w.approve_as("bob", id).await?;
    w.wait_state(id, StateName::Active, Duration::from_secs(30))
        .await?;
    assign_by_hand(&w, "dave").await?;
    w.wait_assignment("dave", "JitSsm", false, Duration::from_secs(20))
        .await?;
    // The audit event is committed just after the delete.
    wait_until(
        "drift removal to be audited",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || async { Ok(count_actions(&w, "aws.drift_removed").await? == 1) },
    )
    .await?;
    assert!(
        w.has_assignment("alice", "JitSsm").await?,
        "jitgate's own grant is not drift"
    );
    Ok(())
}

#[tokio::test]
async fn drift_is_reported_once_even_across_restarts_and_groups_count() -> Result<()> {
    let mut w = World::start(Backend::Sqlite, PeerKnobs::default(), |b| {
        b.profile(prod_profile()).sweep(EVERY_SECOND)
    })
    .await?;
    let reported = async |w: &World, n: usize| {
        wait_until(
            &format!("{n} drifts to be reported"),
            Duration::from_secs(30),
            Duration::from_millis(200),
            || async { Ok(count_actions(w, "aws.drift_found").await? == n) },
        )
        .await
    };
    assign_by_hand(&w, "carol").await?;
    reported(&w, 1).await?;
    // A group's assignment on a jitgate permission set is drift too (jitgate assigns
    // users only); seeing it reported also shows that later sweeps ran.
    w.assign_by_hand("GROUP", &w.group_id("ops")?, "JitSsm")
        .await?;
    reported(&w, 2).await?;
    // After a restart the drift already reported is not reported again; a new one is
    // (so sweeps did run meanwhile).
    w.restart().await?;
    assign_by_hand(&w, "dave").await?;
    reported(&w, 3).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count_actions(&w, "aws.drift_found").await?, 3);
    let events = audit::page_since(&w.db, i64::MIN, 0, 10_000).await?;
    assert!(
        events.iter().any(|e| e.action == "aws.drift_found"
            && e.details["assignment"]["principal_type"] == "group"),
        "the group's assignment is reported as a group's"
    );
    assert!(
        w.has_assignment("carol", "JitSsm").await?,
        "report leaves AWS alone"
    );
    Ok(())
}
