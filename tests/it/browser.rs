//! The web app in a real browser (headless Chromium through chromedriver) against the real
//! server, OpenID provider and AWS peer: alice signs in on the provider's login form and
//! asks for access on the request form, bob approves it in a browser of his own, and alice
//! watches her grant go active and then expire. Screenshots of the home and request pages
//! are written to the target directory's `screenshots/` for review.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::harness::{Browser, ChromeDriver, png_size};
use crate::world::{ACCOUNT, Backend, World, prod_profile};

/// How long alice asks for: short, so the test sees it expire, and long enough that the
/// active grant is seen (and photographed) first.
const GRANT: &str = "20s";
/// How long provisioning against the AWS peer may take.
const PROVISIONING: Duration = Duration::from_secs(30);
/// How long after the grant's end the page may still say active.
const EXPIRY: Duration = Duration::from_secs(60);

/// Signs `login` in from jitgate's home page through the provider's login form, and waits
/// for jitgate's home page to greet them.
async fn sign_in(browser: &Browser, server: &str, login: &str) -> Result<()> {
    browser.goto(&format!("{server}/")).await?;
    browser.click("main a[href=\"/login\"]").await?;
    // The provider's login form (any password).
    browser.fill("input[name=\"login\"]", login).await?;
    browser.fill("input[name=\"password\"]", "any").await?;
    browser.click("form button[type=\"submit\"]").await?;
    browser
        .wait_text("main h1", &format!("{login}'s home page"), |t| {
            t.starts_with("Signed in as")
        })
        .await?;
    let at = browser.url().await?;
    if !at.as_str().starts_with(server) {
        bail!("{login} signed in but is on {at}, not on {server}");
    }
    Ok(())
}

/// The state badge on a request page.
const STATE: &str = "main h1 .state";
/// The status line under it ("waiting for 1 approval", "… left", "expired …").
const STATUS: &str = "main > p > strong";

async fn scenario(w: &World, alice: &Browser, driver: &ChromeDriver) -> Result<()> {
    let server = w.server.listen_url();

    // Alice signs in and asks for access on the form.
    sign_in(alice, &server, "alice").await?;
    alice.click("header nav a[href=\"/requests/new\"]").await?;
    alice.select("select#profile", "prod-web").await?;
    alice.select("select#account", ACCOUNT).await?;
    alice.select("select#os_user", "app").await?;
    alice.fill("input#duration", GRANT).await?;
    alice
        .fill("textarea#reason", "checking the web tier after a deploy")
        .await?;
    alice.fill("input#ticket", "INC-42").await?;
    alice
        .click("form[action=\"/requests\"] button[type=\"submit\"]")
        .await?;
    let state = alice
        .wait_text(STATE, "the new request's page", |t| !t.is_empty())
        .await?;
    assert_eq!(state, "pending");
    assert_eq!(alice.text(STATUS).await?, "waiting for 1 approval");
    let path = alice.url().await?.path().to_owned();
    let id = path
        .strip_prefix("/requests/")
        .context("not sent to the request page after submitting")?
        .to_owned();
    let stored = w.request(id.parse()?).await?;
    assert_eq!(stored.request.os_user.to_string(), "app");
    assert_eq!(stored.request.duration, Duration::from_secs(20));

    // Bob, in a browser of his own, finds it in his queue and approves it.
    let bob = driver.session().await?;
    let approved = async {
        sign_in(&bob, &server, "bob").await?;
        bob.click("header nav a[href=\"/approvals\"]").await?;
        bob.click(&format!("main h2 a[href=\"{path}\"]")).await?;
        bob.click(&format!("form[action=\"{path}/approve\"] button"))
            .await?;
        bob.wait_text(STATE, "the request after approving", |t| {
            t == "approved" || t == "active"
        })
        .await
    }
    .await;
    bob.close().await?;
    approved?;

    // Alice sees it active with its time left: the request page, then her home page.
    alice
        .reload_until(STATE, "the grant to be active", PROVISIONING, |t| {
            t == "active"
        })
        .await?;
    let left = alice.text(STATUS).await?;
    assert!(left.ends_with(" left"), "time left: {left}");
    // An active grant can be ended early.
    alice
        .find(&format!("form[action=\"{path}/revoke\"]"))
        .await?;
    let request_png = alice.screenshot("request-active").await?;
    alice.click("header a[href=\"/\"]").await?;
    alice
        .wait_text(
            &format!("main li a[href=\"{path}\"]"),
            "the grant on the home page",
            |t| t == "prod-web",
        )
        .await?;
    let mine = alice.text("main .card:nth-of-type(2)").await?;
    assert!(
        mine.contains(ACCOUNT) && mine.contains(" left"),
        "my access: {mine}"
    );
    let home_png = alice.screenshot("home-active").await?;

    // Back on the request page: it ends on time.
    alice.goto(&format!("{server}{path}")).await?;
    alice
        .reload_until(STATE, "the grant to end", EXPIRY, |t| t == "ended")
        .await?;
    let ended = alice.text(STATUS).await?;
    assert!(ended.starts_with("expired"), "status: {ended}");
    w.wait_assignment("alice", "JitSsm", false, PROVISIONING)
        .await?;

    for png in [&request_png, &home_png] {
        let bytes = std::fs::read(png).with_context(|| format!("reading {}", png.display()))?;
        let size = png_size(&bytes).with_context(|| format!("{} is not a PNG", png.display()))?;
        assert!(size.0 > 0 && size.1 > 0, "{}: {size:?}", png.display());
        println!("screenshot: {} ({}x{})", png.display(), size.0, size.1);
    }
    Ok(())
}

#[tokio::test]
async fn sign_in_request_approve_and_expire_in_chromium() -> Result<()> {
    let w = World::start_with_sign_in(Backend::Sqlite, |b| b.profile(prod_profile())).await?;
    let driver = ChromeDriver::start().await?;
    let alice = driver.session().await?;
    let outcome = scenario(&w, &alice, &driver).await;
    let closed = alice.close().await;
    outcome.with_context(|| {
        format!(
            "server log:\n{}\nchromedriver:\n{}",
            w.server.log(),
            driver.log()
        )
    })?;
    closed
}
