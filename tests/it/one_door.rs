//! One door: for every action on a request, every role gets the same outcome from the
//! web and from the API. The outcomes are written once, in [`EXPECTED`]; each cell is
//! played on a fresh request through each edge and both answers are checked against it.

use std::time::Duration;

use anyhow::{Context, Result};
use futures::future::try_join_all;
use jitgate_server::domain::{RequestId, StateName};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{ProfileSpec, browser, sign_in};
use crate::world::{Backend, World, prod_profile};

/// The roles, in [`EXPECTED`]'s column order: nobody signed in, the requester (alice), an
/// approver of another profile only (erin), an approver (bob), an admin (carol), and a
/// developer with nothing to do with the request (dave).
const ROLES: [Option<&str>; 6] = [
    None,
    Some("alice"),
    Some("erin"),
    Some("bob"),
    Some("carol"),
    Some("dave"),
];

/// What a role gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Done (or, for `view`, shown).
    Ok,
    /// Sign in first.
    Unauthorized,
    /// Not allowed, and told why.
    Forbidden,
    /// Not theirs to see: no sign that it exists.
    NotFound,
}
use Outcome::{Forbidden as F, NotFound as N, Ok as O, Unauthorized as U};

/// The state a request is in when the action is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    /// alice's request, pending.
    Pending,
    /// alice's grant, active.
    Active,
}

/// The one table: (action, the request's state, outcome per role of [`ROLES`]).
const EXPECTED: &[(&str, Subject, [Outcome; 6])] = &[
    ("view", Subject::Pending, [U, O, N, O, O, N]),
    // Nobody approves their own request; an admin approves any.
    ("approve", Subject::Pending, [U, F, N, O, O, N]),
    ("deny", Subject::Pending, [U, F, N, O, O, N]),
    // The requester or an admin withdraws it; an approver denies instead.
    ("cancel", Subject::Pending, [U, O, N, F, O, N]),
    ("revoke", Subject::Active, [U, O, N, O, O, N]),
    // Only the requester asks for more time.
    ("extend", Subject::Active, [U, O, N, F, F, N]),
];

/// A signed-in browser with its CSRF token, and an API token, for one role.
struct Person {
    browser: reqwest::Client,
    csrf: String,
    token: Option<String>,
}

async fn person(w: &World, login: Option<&str>) -> Result<Person> {
    let Some(login) = login else {
        return Ok(Person {
            browser: browser()?,
            csrf: String::new(),
            token: None,
        });
    };
    let browser = browser()?;
    let outcome = sign_in(&browser, &w.server.listen_url(), login).await?;
    anyhow::ensure!(outcome.status == StatusCode::SEE_OTHER, "{login} signs in");
    let home = browser
        .get(format!("{}/", w.server.listen_url()))
        .send()
        .await?
        .text()
        .await?;
    let csrf = home
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no CSRF token")?
        .to_owned();
    Ok(Person {
        browser,
        csrf,
        token: Some(w.token_for(login).await?),
    })
}

/// alice's request in `subject`'s state, fresh for one cell.
async fn subject(w: &World, subject: Subject) -> Result<RequestId> {
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    if subject == Subject::Active {
        w.approve_as("bob", id).await?;
    }
    Ok(id)
}

/// The outcome a status stands for, on either edge.
fn outcome_of(status: StatusCode) -> Result<Outcome> {
    Ok(match status {
        StatusCode::OK | StatusCode::SEE_OTHER => Outcome::Ok,
        StatusCode::UNAUTHORIZED => Outcome::Unauthorized,
        StatusCode::FORBIDDEN => Outcome::Forbidden,
        StatusCode::NOT_FOUND => Outcome::NotFound,
        other => anyhow::bail!("unexpected status {other}"),
    })
}

/// `action` on `id` through the web pages.
async fn on_the_web(w: &World, who: &Person, action: &str, id: RequestId) -> Result<StatusCode> {
    let base = w.server.listen_url();
    if action == "view" {
        return Ok(who
            .browser
            .get(format!("{base}/requests/{id}"))
            .send()
            .await?
            .status());
    }
    let mut form = vec![("csrf", who.csrf.as_str())];
    if action == "extend" {
        form.extend([("duration", "30m"), ("reason", "one door")]);
    }
    Ok(who
        .browser
        .post(format!("{base}/requests/{id}/{action}"))
        .form(&form)
        .send()
        .await?
        .status())
}

/// `action` on `id` through the JSON API.
async fn through_the_api(
    w: &World,
    who: &Person,
    action: &str,
    id: RequestId,
) -> Result<StatusCode> {
    let base = w.server.listen_url();
    let http = reqwest::Client::new();
    let request = if action == "view" {
        http.get(format!("{base}/api/v1/requests/{id}"))
    } else {
        let body: Value = match action {
            "extend" => json!({ "duration": "30m", "reason": "one door" }),
            _ => json!({}),
        };
        http.post(format!("{base}/api/v1/requests/{id}/{action}"))
            .json(&body)
    };
    let request = match &who.token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    Ok(request.send().await?.status())
}

#[tokio::test]
async fn the_web_and_the_api_decide_every_action_alike() -> Result<()> {
    let staging = ProfileSpec {
        name: "staging".into(),
        approver_groups: vec!["contractors".into()],
        ..prod_profile()
    };
    // A fresh request of alice's per cell and edge: more than the default cap of open
    // requests per person (50), which is not what this test is about.
    let w = World::start_with_sign_in(Backend::Sqlite, |b| {
        b.profile(prod_profile())
            .profile(staging)
            .raw("[auth]\nmax_open_requests = 500\n")
    })
    .await?;
    let people = try_join_all(ROLES.iter().map(|login| person(&w, *login))).await?;

    // A fresh request per cell and edge, made up front (active ones provision together).
    let mut cells = Vec::new();
    for (action, state, expected) in EXPECTED {
        for (role, want) in expected.iter().enumerate() {
            let web = subject(&w, *state).await?;
            let api = subject(&w, *state).await?;
            cells.push((*action, *state, role, *want, web, api));
        }
    }
    for (_, state, _, _, web, api) in &cells {
        if *state == Subject::Active {
            w.wait_state(*web, StateName::Active, Duration::from_secs(60))
                .await?;
            w.wait_state(*api, StateName::Active, Duration::from_secs(60))
                .await?;
        }
    }

    let mut disagreements = Vec::new();
    for (action, state, role, want, web, api) in cells {
        let who = &people[role];
        let name = ROLES[role].unwrap_or("anonymous");
        let web_status = on_the_web(&w, who, action, web).await?;
        let api_status = through_the_api(&w, who, action, api).await?;
        let web_outcome =
            outcome_of(web_status).with_context(|| format!("web: {name} {action} ({state:?})"))?;
        let api_outcome =
            outcome_of(api_status).with_context(|| format!("API: {name} {action} ({state:?})"))?;
        if web_outcome != want || api_outcome != want {
            disagreements.push(format!(
                "{name} {action} ({state:?}): expected {want:?}, web {web_status}, API {api_status}"
            ));
        }
        // A refused action changed nothing, on either edge.
        if want != Outcome::Ok {
            for id in [web, api] {
                let state_now = w.request(id).await?.request.state.name();
                let unchanged = match state {
                    Subject::Pending => state_now == StateName::Pending,
                    Subject::Active => state_now == StateName::Active,
                };
                if !unchanged {
                    disagreements.push(format!(
                        "{name} {action} ({state:?}) was refused but left {id} {state_now}"
                    ));
                }
            }
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    Ok(())
}
