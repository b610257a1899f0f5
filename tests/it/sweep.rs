//! The cron sweep: lapsing unanswered requests and drift on managed permission sets.

use std::time::Duration;

use anyhow::Result;
use jitgate_server::domain::StateName;
use jitgate_server::store::audit;

use crate::harness::{PeerKnobs, ProfileSpec, wait_until};
use crate::world::{Backend, World, prod_profile};

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
    assert!(
        w.approve_as("bob", id).await.is_err(),
        "a lapsed request cannot be approved"
    );
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
async fn drift_is_reported_once_and_left_alone_by_default() -> Result<()> {
    let w = World::start(Backend::Sqlite, PeerKnobs::default(), |b| {
        b.profile(prod_profile())
            .sweep(EVERY_SECOND)
            .drift("report")
    })
    .await?;
    assign_by_hand(&w, "carol").await?;
    wait_until(
        "drift to be reported",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || async { Ok(count_actions(&w, "aws.drift_found").await? == 1) },
    )
    .await?;
    // Several more sweeps run; the same drift is not audited again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count_actions(&w, "aws.drift_found").await?, 1);
    assert!(w.has_assignment("carol", "JitSsm").await?);
    Ok(())
}
