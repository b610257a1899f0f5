//! The browser side of `jitgate login`: loopback redirect with PKCE, as a CLI drives it.

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::{browser, sign_in};
use crate::world::{Backend, World, prod_profile};

const PORT: u16 = 49_213;
const STATE: &str = "cli-state-0123456789";

fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn login_path(challenge: &str) -> String {
    format!(
        "/cli/login?port={PORT}&state={STATE}&code_challenge={challenge}&code_challenge_method=S256&name=laptop"
    )
}

fn csrf_of(page: &str) -> Result<String> {
    Ok(page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no CSRF token on the page")?
        .to_owned())
}

/// Confirms the CLI login in `client`'s session; returns the code from the loopback URL.
async fn approve(client: &reqwest::Client, server: &str, challenge: &str) -> Result<String> {
    let page = client
        .get(format!("{server}{}", login_path(challenge)))
        .send()
        .await?;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await?;
    assert!(page.contains("Authorize the jitgate CLI"), "{page}");
    let form = [
        ("csrf", csrf_of(&page)?),
        ("port", PORT.to_string()),
        ("state", STATE.to_owned()),
        ("code_challenge", challenge.to_owned()),
        ("name", "laptop".to_owned()),
    ];
    let answer = client
        .post(format!("{server}/cli/login"))
        .form(&form)
        .send()
        .await?;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let target = reqwest::Url::parse(
        answer
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .context("Location")?,
    )?;
    assert_eq!(
        target.host_str(),
        Some("127.0.0.1"),
        "only the loopback listener gets the code"
    );
    assert_eq!(target.port(), Some(PORT));
    assert_eq!(target.path(), "/callback");
    let query: std::collections::HashMap<_, _> = target.query_pairs().into_owned().collect();
    assert_eq!(query.get("state").map(String::as_str), Some(STATE));
    query.get("code").cloned().context("no code")
}

async fn trade(server: &str, code: &str, verifier: &str) -> Result<(StatusCode, Value)> {
    let answer = reqwest::Client::new()
        .post(format!("{server}/api/v1/cli/token"))
        .json(&json!({"code": code, "code_verifier": verifier}))
        .send()
        .await?;
    Ok((answer.status(), answer.json().await?))
}

#[tokio::test]
async fn the_cli_logs_in_through_the_browser_with_pkce() -> Result<()> {
    let w = World::start_with_sign_in(Backend::Sqlite, |b| b.profile(prod_profile())).await?;
    let server = w.server.listen_url();
    let verifier = "a-long-random-verifier-that-only-the-cli-process-knows-0123456789";
    let challenge = challenge_of(verifier);

    // Not signed in yet: sign in first, then come back to the same page.
    let client = browser()?;
    let first = client
        .get(format!("{server}{}", login_path(&challenge)))
        .send()
        .await?;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let location = first
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        location.starts_with("/login?return_to=/cli/login%3Fport%3D"),
        "{location}"
    );
    assert_eq!(
        sign_in(&client, &server, "alice").await?.status,
        StatusCode::SEE_OTHER
    );

    // A forged confirmation (no CSRF token) is refused.
    let forged = client
        .post(format!("{server}/cli/login"))
        .form(&[
            ("port", PORT.to_string()),
            ("state", STATE.into()),
            ("code_challenge", challenge.clone()),
        ])
        .send()
        .await?;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    // A wrong verifier is refused, and uses the code up.
    let code = approve(&client, &server, &challenge).await?;
    let (status, body) = trade(
        &server,
        &code,
        "someone-elses-verifier-someone-elses-verifier",
    )
    .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = trade(&server, &code, verifier).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a code works once");

    // The real flow: the CLI gets a token that acts as alice.
    let code = approve(&client, &server, &challenge).await?;
    let (status, created) = trade(&server, &code, verifier).await?;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().context("token")?;
    let me: Value = reqwest::Client::new()
        .get(format!("{server}/api/v1/me"))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(me["user_name"], "alice");

    // A broken link is refused before anything else.
    let broken = client
        .get(format!(
            "{server}/cli/login?port=80&state={STATE}&code_challenge=plain"
        ))
        .send()
        .await?;
    assert_eq!(broken.status(), StatusCode::BAD_REQUEST);

    // The approval and the token it became are in the audit trail.
    let events = jitgate_server::store::audit::page_since(&w.db, i64::MIN, 0, 10_000).await?;
    assert!(
        events
            .iter()
            .any(|e| e.action == "auth.cli_login_approved" && e.actor == "sub-alice")
    );
    assert!(events.iter().any(|e| e.action == "auth.token_issued"
        && e.actor == "sub-alice"
        && e.details["via"] == "cli"));
    Ok(())
}
