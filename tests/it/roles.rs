//! Roles follow the identity provider within `[auth] claims_max_age`, through open web
//! sessions and API tokens alike: a person removed from a group stops using its powers,
//! and a person the provider no longer accepts loses every session and token. Against
//! the real OIDC peer (refresh tokens, userinfo), changed between requests.

use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::StatusCode;
use serde_json::json;

use crate::world::{Backend, Refused, World, prod_profile};

/// The bound under test, shortened from the shipped 15 minutes so the test waits
/// seconds instead; the refresh it triggers is the same.
const MAX_AGE: &str = "2s";
const PAST_MAX_AGE: Duration = Duration::from_millis(2_500);

async fn world() -> Result<World> {
    World::start_with_sign_in(Backend::Sqlite, |b| {
        b.profile(prod_profile())
            .raw(&format!("[auth]\nclaims_max_age = \"{MAX_AGE}\"\n"))
    })
    .await
}

async fn events(w: &World, action: &str, actor: &str) -> Result<Vec<serde_json::Value>> {
    Ok(w.audit_events(action)
        .await?
        .into_iter()
        .filter(|e| e.actor == actor)
        .map(|e| e.details)
        .collect())
}

#[tokio::test]
async fn a_removed_group_stops_approving_within_the_bound() -> Result<()> {
    let w = world().await?;
    let server = w.server.listen_url();
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    // bob approves (group sre) with a web session and an API token, both made now.
    let (bob_web, _) = w.session_of("bob").await?;
    w.token_for("bob").await?;
    let queue = bob_web.get(format!("{server}/approvals")).send().await?;
    assert_eq!(queue.status(), StatusCode::OK);

    w.oidc
        .change_account("bob", json!({ "groups": [] }))
        .await?;
    tokio::time::sleep(PAST_MAX_AGE).await;

    let refused = w
        .approve_as("bob", id)
        .await
        .err()
        .context("bob approved through his token after leaving sre")?
        .downcast::<Refused>()?;
    // Not an approver any more, he may not even see alice's request: the answer is the
    // one for a request that does not exist (ids cannot be probed).
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{refused}");
    let queue = bob_web.get(format!("{server}/approvals")).send().await?;
    assert_eq!(
        queue.status(),
        StatusCode::FORBIDDEN,
        "the web session still approves"
    );
    let changes = events(&w, "auth.roles_changed", "sub-bob").await?;
    assert_eq!(changes.len(), 1, "one change, audited once: {changes:?}");
    assert_eq!(changes[0]["before"], json!(["sre"]));
    assert_eq!(changes[0]["after"], json!([]));

    // Back in the group, he approves again once the claims are confirmed.
    w.oidc
        .change_account("bob", json!({ "groups": ["sre"] }))
        .await?;
    tokio::time::sleep(PAST_MAX_AGE).await;
    w.approve_as("bob", id).await?;
    Ok(())
}

#[tokio::test]
async fn a_person_the_provider_no_longer_accepts_loses_sessions_and_tokens() -> Result<()> {
    let w = world().await?;
    let (dave_web, _) = w.session_of("dave").await?;
    let id = w
        .submit("dave", "prod-web", "app", Duration::from_secs(3600))
        .await?;

    w.oidc
        .change_account("dave", json!({ "deleted": true }))
        .await?;
    tokio::time::sleep(PAST_MAX_AGE).await;

    let refused = w
        .cancel_as("dave", id)
        .await
        .err()
        .context("a token of a deleted person still works")?
        .downcast::<Refused>()?;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused}");
    assert!(refused.message.contains("no longer accepts"), "{refused}");
    assert!(
        !w.is_signed_in(&dave_web).await?,
        "the web session survived"
    );
    let withdrawn = events(&w, "auth.access_withdrawn", "sub-dave").await?;
    assert_eq!(withdrawn.len(), 1, "{withdrawn:?}");
    assert_eq!(withdrawn[0]["tokens_revoked"], 1);
    Ok(())
}

#[tokio::test]
async fn without_a_refresh_token_old_claims_wait_for_the_next_sign_in() -> Result<()> {
    let w = world().await?;
    w.oidc.issue_refresh_tokens(false).await?;
    let (alice_web, _) = w.session_of("alice").await?;
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    tokio::time::sleep(PAST_MAX_AGE).await;

    // Nothing can confirm her roles: the session ends, the token waits.
    assert!(
        !w.is_signed_in(&alice_web).await?,
        "the session outlived its claims"
    );
    let refused = w
        .cancel_as("alice", id)
        .await
        .err()
        .context("a token used claims older than claims_max_age")?
        .downcast::<Refused>()?;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused}");
    assert!(
        refused.message.contains("sign in"),
        "says what to do: {refused}"
    );
    assert!(
        events(&w, "auth.access_withdrawn", "sub-alice")
            .await?
            .is_empty(),
        "nothing was withdrawn: she only has to sign in again"
    );

    // A new sign-in confirms them, and the same token works again.
    w.session_of("alice").await?;
    w.cancel_as("alice", id).await?;
    Ok(())
}
