//! The authorization matrix of the web app: every route × every role → the status a
//! person gets (the API's matrix is in `api.rs`). Roles: anonymous, requester (alice),
//! approver of another profile (erin approves staging only), approver (bob), admin
//! (carol).

use anyhow::{Context, Result};
use reqwest::{Method, StatusCode};

use crate::harness::{ProfileSpec, browser, sign_in};
use crate::world::{Backend, World, prod_profile};

const ANYONE: usize = 5;

/// A person's browser and the CSRF token of their session (anonymous: none).
struct Role {
    name: &'static str,
    client: reqwest::Client,
    csrf: String,
}

async fn role(w: &World, name: &'static str, login: Option<&str>) -> Result<Role> {
    let client = browser()?;
    let mut csrf = String::new();
    if let Some(login) = login {
        let outcome = sign_in(&client, &w.server.listen_url(), login).await?;
        anyhow::ensure!(
            outcome.status == StatusCode::SEE_OTHER,
            "{login}: {}",
            outcome.body
        );
        let home = client
            .get(format!("{}/", w.server.listen_url()))
            .send()
            .await?
            .text()
            .await?;
        csrf = home
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .context("no CSRF token")?
            .to_owned();
    }
    Ok(Role { name, client, csrf })
}

/// `role` asks for prod-web through the form (as their OIDC subject); the new id.
async fn submit_as(w: &World, role: &Role) -> Result<String> {
    let form = [
        ("csrf", role.csrf.as_str()),
        ("profile", "prod-web"),
        ("account", "111111111111"),
        ("os_user", "app"),
        ("duration", "1h"),
        ("reason", "authorization matrix"),
        ("ticket", ""),
    ];
    let created = role
        .client
        .post(format!("{}/requests", w.server.listen_url()))
        .form(&form)
        .send()
        .await?;
    anyhow::ensure!(
        created.status() == StatusCode::SEE_OTHER,
        "submit: {}",
        created.status()
    );
    Ok(created
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| l.strip_prefix("/requests/"))
        .context("redirect to the request page")?
        .to_owned())
}

#[tokio::test]
async fn every_web_route_answers_each_role_as_expected() -> Result<()> {
    let staging = ProfileSpec {
        name: "staging".into(),
        approver_groups: vec!["contractors".into()],
        ..prod_profile()
    };
    let w = World::start_with_sign_in(Backend::Sqlite, |b| {
        b.profile(prod_profile()).profile(staging)
    })
    .await?;
    let roles = [
        role(&w, "anonymous", None).await?,
        role(&w, "requester", Some("alice")).await?,
        role(&w, "other approver", Some("erin")).await?,
        role(&w, "approver", Some("bob")).await?,
        role(&w, "admin", Some("carol")).await?,
    ];
    let id = submit_as(&w, &roles[1]).await?;
    let (ok, see_other) = (StatusCode::OK, StatusCode::SEE_OTHER);
    let (u, f, n, c) = (
        StatusCode::UNAUTHORIZED,
        StatusCode::FORBIDDEN,
        StatusCode::NOT_FOUND,
        StatusCode::CONFLICT,
    );
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let cli = format!(
        "/cli/login?port=49152&state=matrix-state-0123&code_challenge={challenge}&code_challenge_method=S256"
    );
    // (method, path, expected per role); POSTs send the role's CSRF token.
    // Actions leave the request as it was for every role but the last that succeeds.
    let matrix: Vec<(Method, String, [StatusCode; ANYONE])> = vec![
        (Method::GET, "/healthz".into(), [ok, ok, ok, ok, ok]),
        (Method::GET, "/".into(), [ok, ok, ok, ok, ok]),
        (Method::GET, "/login".into(), [see_other; ANYONE]),
        (Method::GET, "/requests/new".into(), [u, ok, f, f, f]),
        (Method::GET, "/requests".into(), [u, ok, ok, ok, ok]),
        (Method::GET, "/approvals".into(), [u, f, ok, ok, ok]),
        (Method::GET, format!("/requests/{id}"), [u, ok, n, ok, ok]),
        (
            Method::POST,
            format!("/requests/{id}/approve"),
            [u, f, n, see_other, c],
        ),
        (
            Method::POST,
            format!("/requests/{id}/cancel"),
            [u, see_other, n, c, c],
        ),
        (Method::GET, "/admin/requests".into(), [u, f, f, f, ok]),
        (Method::GET, "/admin/audit".into(), [u, f, f, f, ok]),
        (
            Method::GET,
            "/admin/audit/export?format=csv".into(),
            [u, f, f, f, ok],
        ),
        (Method::GET, cli, [see_other, ok, ok, ok, ok]),
        // Linking a Slack account: anyone signed in, for themselves; without [slack]
        // (as here) there is nothing to link (tests/it/slack_link.rs has it set up).
        (Method::GET, "/settings/slack".into(), [u, n, n, n, n]),
        (
            Method::POST,
            "/settings/slack/unlink".into(),
            [u, n, n, n, n],
        ),
    ];
    for (method, path, expected) in &matrix {
        for (role, want) in roles.iter().zip(expected) {
            let url = format!("{}{path}", w.server.listen_url());
            let response = if *method == Method::POST {
                role.client
                    .post(&url)
                    .form(&[("csrf", role.csrf.as_str())])
                    .send()
                    .await?
            } else {
                role.client.get(&url).send().await?
            };
            assert_eq!(response.status(), *want, "{} {method} {path}", role.name);
        }
    }
    // Cancelling someone else's request: an approver may not, an admin may.
    let second = submit_as(&w, &roles[1]).await?;
    let cancel = |role: &Role| {
        role.client
            .post(format!(
                "{}/requests/{second}/cancel",
                w.server.listen_url()
            ))
            .form(&[("csrf", role.csrf.clone())])
            .send()
    };
    assert_eq!(
        cancel(&roles[3]).await?.status(),
        f,
        "approver cancels alice's request"
    );
    assert_eq!(
        cancel(&roles[4]).await?.status(),
        see_other,
        "admin cancels alice's request"
    );

    // A POST without the session's CSRF token changes nothing, for anyone.
    for role in &roles[1..] {
        let answer = role
            .client
            .post(format!("{}/logout", w.server.listen_url()))
            .form(&[("reason", "forged")])
            .send()
            .await?;
        assert_eq!(answer.status(), f, "{} logout without CSRF", role.name);
        let home = role
            .client
            .get(format!("{}/", w.server.listen_url()))
            .send()
            .await?
            .text()
            .await?;
        assert!(
            home.contains("Sign out"),
            "{} is still signed in",
            role.name
        );
    }
    Ok(())
}
