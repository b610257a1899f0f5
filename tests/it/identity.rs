//! A grant lands on the right AWS identity: people are matched to IAM Identity Center
//! users only by claims the operator trusts (by default a verified email), the IdC user
//! found first is bound to the person, and claims changed at the provider afterwards
//! never move a grant to someone else's IdC user. Against the real OIDC peer, whose
//! accounts change between sign-ins as an IdP admin (or a self-service page) would.

use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{browser, run_cli, sign_in};
use crate::world::on_both_backends;
use crate::world::{Backend, NO_IDC_USER, Refused, SCIM_ISSUER, World, prod_profile};

// A preferred_username naming someone else counts for nothing by default either: the
// unit tests of server/src/oidc/idc_match.rs cover the rule for each claim.

fn refused(e: anyhow::Error) -> Result<Refused> {
    e.downcast::<Refused>()
        .map_err(|e| anyhow::anyhow!("expected a refusal, got {e:#}"))
}

async fn actions(w: &World, action: &str) -> Result<Vec<serde_json::Value>> {
    Ok(w.audit_events(action)
        .await?
        .into_iter()
        .map(|e| json!({ "actor": e.actor, "details": e.details }))
        .collect())
}

#[tokio::test]
async fn an_unverified_email_finds_no_aws_identity() -> Result<()> {
    let w = World::start_with_sign_in(Backend::Sqlite, |b| b.profile(prod_profile())).await?;
    // zed has no IdC user of their own; they set alice's email at the provider, which
    // does not verify it.
    w.oidc
        .change_account(
            NO_IDC_USER,
            json!({ "email": "alice@example.com", "email_verified": false }),
        )
        .await?;
    let e = refused(
        w.submit(NO_IDC_USER, "prod-web", "app", Duration::from_secs(3600))
            .await
            .err()
            .context("zed was given alice's AWS identity")?,
    )?;
    assert_eq!(e.status, StatusCode::FORBIDDEN, "{e}");
    assert_eq!(e.code, "no_idc_user", "{e}");
    assert!(e.message.contains("verified"), "says why: {e}");
    assert!(actions(&w, "auth.idc_bound").await?.is_empty());
    Ok(())
}

async fn a_changed_email_never_moves_a_grant(backend: Backend) -> Result<()> {
    let w = World::start_with_sign_in(backend, |b| b.profile(prod_profile())).await?;
    let server = w.server.listen_url();
    // alice and dave each ask once: each is bound to their own IdC user.
    let alices = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    let daves = w
        .submit("dave", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    assert_eq!(
        w.request(alices).await?.principal_id.as_str(),
        w.user_id("alice")?
    );
    assert_eq!(
        w.request(daves).await?.principal_id.as_str(),
        w.user_id("dave")?
    );
    let bound = actions(&w, "auth.idc_bound").await?;
    assert_eq!(bound.len(), 2, "{bound:?}");

    // A preferred_username naming alice counts for nothing: his sign-in still finds dave.
    w.oidc
        .change_account("dave", json!({ "preferred_username": "alice" }))
        .await?;
    let outcome = sign_in(&browser()?, &server, "dave").await?;
    assert_eq!(outcome.status, StatusCode::SEE_OTHER, "{}", outcome.body);
    assert!(actions(&w, "auth.idc_binding_refused").await?.is_empty());

    // dave's account at the provider now carries alice's (verified) email.
    w.oidc
        .change_account("dave", json!({ "email": "alice@example.com" }))
        .await?;
    // His API token still asks for dave's own IdC user: the binding decides.
    w.cancel_as("dave", daves).await?;
    let again = w
        .submit("dave", "prod-web", "readonly", Duration::from_secs(3600))
        .await?;
    assert_eq!(
        w.request(again).await?.principal_id.as_str(),
        w.user_id("dave")?
    );
    // A new sign-in that would make him alice in AWS is refused, and recorded.
    let client = browser()?;
    let outcome = sign_in(&client, &server, "dave").await?;
    assert_eq!(outcome.status, StatusCode::FORBIDDEN, "{}", outcome.body);
    assert!(outcome.body.contains("re-bind"), "{}", outcome.body);
    assert!(
        !w.is_signed_in(&client).await?,
        "the refused sign-in left a session"
    );
    let refusals = actions(&w, "auth.idc_binding_refused").await?;
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0]["details"]["bound"], w.user_id("dave")?);
    assert_eq!(refusals[0]["details"]["found"], w.user_id("alice")?);

    // An admin re-binds him: audited. alice's IdC user is hers, so it is still not his.
    let out = run_cli(
        &["identity", "rebind", "--user", "sub-dave"],
        &w.config_toml,
    )
    .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(actions(&w, "auth.idc_unbound").await?.len(), 1);
    let outcome = sign_in(&browser()?, &server, "dave").await?;
    assert_eq!(outcome.status, StatusCode::SEE_OTHER, "{}", outcome.body);
    w.cancel_as("dave", again).await?;
    let e = refused(
        w.submit("dave", "prod-web", "app", Duration::from_secs(3600))
            .await
            .err()
            .context("dave was bound to alice's IdC user")?,
    )?;
    assert_eq!(e.code, "idc_binding", "{e}");
    assert!(e.message.contains("another jitgate user"), "{e}");
    Ok(())
}

on_both_backends!(a_changed_email_never_moves_a_grant);

#[tokio::test]
async fn by_external_id_the_subject_decides_whatever_the_email_says() -> Result<()> {
    let w = World::start_with_sign_in(Backend::Sqlite, |b| {
        b.profile(prod_profile()).raw(&format!(
            "[auth]\nidc_match = \"external_id\"\nidc_external_id_issuer = \"{SCIM_ISSUER}\"\n"
        ))
    })
    .await?;
    // dave's (verified) email at the provider is alice's: his subject still finds him.
    w.oidc
        .change_account("dave", json!({ "email": "alice@example.com" }))
        .await?;
    let id = w
        .submit("dave", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    assert_eq!(
        w.request(id).await?.principal_id.as_str(),
        w.user_id("dave")?
    );
    // zed has no user provisioned by SCIM: no external id is theirs.
    let e = refused(
        w.submit(NO_IDC_USER, "prod-web", "app", Duration::from_secs(3600))
            .await
            .err()
            .context("zed was given an AWS identity")?,
    )?;
    assert_eq!(e.code, "no_idc_user", "{e}");
    Ok(())
}
