//! Web sign-in against the real OpenID provider (node `oidc-provider`): the happy path,
//! and every way a forged or stale answer must be refused.

use anyhow::{Context, Result};
use reqwest::StatusCode;

use crate::harness::{OidcPeer, browser, session_cookie, sign_in};
use crate::world::on_both_backends;
use crate::world::{Backend, World, prod_profile};

async fn world(backend: Backend) -> Result<World> {
    World::start_with_sign_in(backend, |b| b.profile(prod_profile())).await
}

fn provider(w: &World) -> Result<&OidcPeer> {
    Ok(&w.oidc)
}

async fn home_of(client: &reqwest::Client, w: &World) -> Result<String> {
    Ok(client
        .get(format!("{}/", w.server.listen_url()))
        .send()
        .await?
        .text()
        .await?)
}

async fn signs_in_and_out(backend: Backend) -> Result<()> {
    let w = world(backend).await?;
    let server = w.server.listen_url();
    let client = browser()?;
    assert!(home_of(&client, &w).await?.contains("Sign in"));

    let outcome = sign_in(&client, &server, "alice").await?;
    assert_eq!(outcome.status, StatusCode::SEE_OTHER, "{}", outcome.body);
    assert_eq!(outcome.location.as_deref(), Some("/"));
    let home = home_of(&client, &w).await?;
    assert!(home.contains("Signed in as Alice Example"), "{home}");
    assert!(
        home.contains("developers"),
        "groups come from the provider: {home}"
    );
    assert!(home.contains("requester (prod-web)"), "{home}");

    // Signing out needs the session's CSRF token.
    let refused = client
        .post(format!("{server}/logout"))
        .form(&[("csrf", "forged")])
        .send()
        .await?;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(home_of(&client, &w).await?.contains("Signed in as"));
    let token = home
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no CSRF token on the page")?;
    let out = client
        .post(format!("{server}/logout"))
        .form(&[("csrf", token)])
        .send()
        .await?;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(!home_of(&client, &w).await?.contains("Signed in as"));
    Ok(())
}

on_both_backends!(signs_in_and_out);

#[tokio::test]
async fn the_session_cookie_is_http_only_lax_and_renewed_at_sign_in() -> Result<()> {
    let w = world(Backend::Sqlite).await?;
    let client = browser()?;
    let outcome = sign_in(&client, &w.server.listen_url(), "bob").await?;
    assert_eq!(outcome.status, StatusCode::SEE_OTHER, "{}", outcome.body);
    let before = outcome
        .cookie_at_start
        .context("a session holds the sign-in in progress")?;
    let after = outcome
        .cookie_at_end
        .context("signing in sets the session cookie")?;
    for cookie in [&before, &after] {
        let lower = cookie.to_ascii_lowercase();
        assert!(
            lower.contains("httponly") && lower.contains("samesite=lax"),
            "{cookie}"
        );
        assert!(
            !lower.contains("secure"),
            "plain-http public_url: no Secure flag: {cookie}"
        );
    }
    // A new session id at sign-in: an id planted before (session fixation) is worthless.
    assert_ne!(before.split(';').next(), after.split(';').next());
    let home = home_of(&client, &w).await?;
    assert!(home.contains("approver (prod-web)"), "{home}");
    Ok(())
}

#[tokio::test]
async fn a_callback_with_a_tampered_state_is_refused() -> Result<()> {
    let w = world(Backend::Sqlite).await?;
    let server = w.server.listen_url();
    let client = browser()?;
    client.get(format!("{server}/login")).send().await?;
    let forged = client
        .get(format!("{server}/auth/callback?code=stolen&state=forged"))
        .send()
        .await?;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert!(forged.text().await?.contains("state mismatch"));
    // Nor is a callback nobody started.
    let unsolicited = browser()?
        .get(format!("{server}/auth/callback?code=x&state=y"))
        .send()
        .await?;
    assert_eq!(unsolicited.status(), StatusCode::BAD_REQUEST);
    assert!(!home_of(&client, &w).await?.contains("Signed in as"));
    Ok(())
}

#[tokio::test]
async fn bad_id_tokens_from_the_provider_are_refused() -> Result<()> {
    let w = world(Backend::Sqlite).await?;
    let server = w.server.listen_url();
    for mode in [
        "wrong_nonce",
        "expired",
        "foreign_key",
        "wrong_audience",
        "wrong_issuer",
        "unknown_kid",
    ] {
        provider(&w)?.tamper_next_id_token(mode).await?;
        let client = browser()?;
        let outcome = sign_in(&client, &server, "alice").await?;
        assert_eq!(
            outcome.status,
            StatusCode::UNAUTHORIZED,
            "{mode}: {}",
            outcome.body
        );
        assert!(outcome.body.contains("Sign-in refused"), "{mode}");
        assert!(
            !home_of(&client, &w).await?.contains("Signed in as"),
            "{mode}: not signed in"
        );
    }
    // The provider's reason is logged for the operator, not shown to the browser.
    assert!(w.server.log().contains("sign-in refused"));
    Ok(())
}

#[tokio::test]
async fn an_unknown_person_is_not_signed_in() -> Result<()> {
    let w = world(Backend::Sqlite).await?;
    let client = browser()?;
    let outcome = sign_in(&client, &w.server.listen_url(), "mallory").await?;
    assert_eq!(outcome.status, StatusCode::UNAUTHORIZED, "{}", outcome.body);
    assert!(!home_of(&client, &w).await?.contains("Signed in as"));
    Ok(())
}

#[tokio::test]
async fn pages_carry_the_security_headers() -> Result<()> {
    let w = world(Backend::Sqlite).await?;
    let response = browser()?
        .get(format!("{}/", w.server.listen_url()))
        .send()
        .await?;
    let h = response.headers();
    let csp = h
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(
        h.get("referrer-policy").and_then(|v| v.to_str().ok()),
        Some("no-referrer")
    );
    assert_eq!(
        h.get("x-frame-options").and_then(|v| v.to_str().ok()),
        Some("DENY")
    );
    Ok(())
}

/// Where a sign-in returns to is a local path and nothing else: inputs that a browser
/// would turn into another host, or that cannot be a header, return home; none is a
/// 500. An anonymous sign-in keeps its session minutes, not the signed-in idle time.
#[tokio::test]
async fn return_to_is_a_local_path_and_pre_login_state_is_short_lived() -> Result<()> {
    let w = world(Backend::Sqlite).await?;
    let server = w.server.listen_url();
    let long = format!("/{}", "a".repeat(60_000));
    for return_to in [
        "/%09/evil.example".to_owned(),
        "/%5Cevil.example".to_owned(),
        "//evil.example".to_owned(),
        "/%0Bx".to_owned(),
        "/a%0D%0ASet-Cookie:%20x=1".to_owned(),
        long,
    ] {
        let client = browser()?;
        let start = format!("/login?return_to={return_to}");
        let outcome = crate::harness::sign_in_from(&client, &server, &start, "alice").await?;
        assert_eq!(
            outcome.status,
            StatusCode::SEE_OTHER,
            "{return_to:.40}: {}",
            outcome.body
        );
        assert_eq!(outcome.location.as_deref(), Some("/"), "{return_to:.40}");
    }
    // A local deep link is kept.
    let client = browser()?;
    let outcome = crate::harness::sign_in_from(
        &client,
        &server,
        "/login?return_to=/approvals?page=2",
        "alice",
    )
    .await?;
    assert_eq!(outcome.location.as_deref(), Some("/approvals?page=2"));

    // The cookie of an anonymous GET /login lives ten minutes at most.
    let anonymous = browser()?
        .get(format!("{server}/login?return_to=/requests"))
        .send()
        .await?;
    let cookie = session_cookie(&anonymous).context("/login set no session cookie")?;
    let max_age: i64 = cookie
        .split(';')
        .find_map(|a| a.trim().strip_prefix("Max-Age="))
        .with_context(|| format!("no Max-Age in {cookie}"))?
        .parse()?;
    assert!(
        max_age <= 600,
        "pre-login session lives {max_age}s: {cookie}"
    );
    Ok(())
}

/// The idle timeout slides with use: a session used all along outlives it, an unused one
/// does not. (Idle 4s here instead of 8h, so the test can watch it.)
#[tokio::test]
async fn the_idle_timeout_slides_with_use() -> Result<()> {
    let w = World::start_with_sign_in(Backend::Sqlite, |b| {
        b.profile(prod_profile())
            .raw("[auth]\nsession_idle = \"4s\"\n")
    })
    .await?;
    let server = w.server.listen_url();
    let busy = browser()?;
    let idle = browser()?;
    for client in [&busy, &idle] {
        let outcome = sign_in(client, &server, "alice").await?;
        assert_eq!(outcome.status, StatusCode::SEE_OTHER);
    }
    for _ in 0..8 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert!(
            home_of(&busy, &w).await?.contains("Signed in as"),
            "a session in use expired"
        );
    }
    assert!(
        !home_of(&idle, &w).await?.contains("Signed in as"),
        "an unused session outlived its idle timeout"
    );
    Ok(())
}

/// The database keeps a hash of each session id, as it does of API tokens: a copy of the
/// session table (a backup, a read-only user) signs nobody in.
async fn session_ids_are_stored_hashed(backend: Backend) -> Result<()> {
    let w = world(backend).await?;
    let server = w.server.listen_url();
    let client = browser()?;
    let outcome = sign_in(&client, &server, "alice").await?;
    let cookie = outcome
        .cookie_at_end
        .context("sign-in set no session cookie")?;
    let id = cookie
        .trim_start_matches("jitgate_session=")
        .split(';')
        .next()
        .context("empty session cookie")?
        .to_owned();
    assert!(home_of(&client, &w).await?.contains("Signed in as"));

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&w.db_url).await?;
    let table = match backend {
        Backend::Sqlite => "tower_sessions",
        Backend::Postgres => "tower_sessions.session",
    };
    let stored: Vec<String> = sqlx::query_scalar(&format!("SELECT id FROM {table}"))
        .fetch_all(&pool)
        .await?;
    assert!(!stored.is_empty(), "the session is kept in the database");
    assert!(
        !stored.contains(&id),
        "the cookie's session id is stored as it is"
    );

    // Presenting what the table holds as a cookie signs nobody in.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    for stolen in &stored {
        let page = plain
            .get(format!("{server}/"))
            .header("cookie", format!("jitgate_session={stolen}"))
            .send()
            .await?
            .text()
            .await?;
        assert!(!page.contains("Signed in as"), "a stored id signed in");
    }
    Ok(())
}

on_both_backends!(session_ids_are_stored_hashed);
