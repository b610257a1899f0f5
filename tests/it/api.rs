//! The JSON API with bearer tokens, against the real server and OpenID provider: token
//! life cycle, the request flow, JSON errors, and who may call what.

use std::time::Duration;

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::ProfileSpec;
use crate::world::on_both_backends;
use crate::world::{Backend, World, prod_profile};

/// A second profile approved by contractors only: erin approves it and nothing else.
fn staging_profile() -> ProfileSpec {
    ProfileSpec {
        name: "staging".into(),
        approver_groups: vec!["contractors".into()],
        ..prod_profile()
    }
}

async fn world() -> Result<World> {
    World::start_with_sign_in(Backend::Sqlite, |b| {
        b.profile(prod_profile()).profile(staging_profile())
    })
    .await
}

/// A signed-in browser and its session's CSRF token.
async fn session_of(w: &World, login: &str) -> Result<(reqwest::Client, String)> {
    w.session_of(login).await
}

/// A bearer token for `login`, made from their web session (a fresh one each call).
async fn token_for(w: &World, login: &str) -> Result<String> {
    let (client, csrf) = session_of(w, login).await?;
    let created: Value = client
        .post(format!("{}/api/v1/tokens", w.server.listen_url()))
        .header("x-csrf-token", csrf)
        .json(&json!({"name": "tests"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    created["token"]
        .as_str()
        .map(str::to_owned)
        .context("no token in answer")
}

/// Calls the API; returns status and JSON body (Null when empty).
async fn call(
    w: &World,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<(StatusCode, Value)> {
    let mut request =
        reqwest::Client::new().request(method, format!("{}/api/v1{path}", w.server.listen_url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?
    };
    Ok((status, json))
}

fn new_request(profile: &str, duration: &str) -> Value {
    json!({"profile": profile, "account_id": "111111111111", "os_user": "app", "duration": duration, "reason": "deploy hotfix"})
}

#[tokio::test]
async fn tokens_are_made_from_a_session_listed_and_revoked() -> Result<()> {
    let w = world().await?;
    let (client, csrf) = session_of(&w, "alice").await?;
    let url = format!("{}/api/v1/tokens", w.server.listen_url());
    // A session-authenticated change needs the CSRF header.
    let refused = client
        .post(&url)
        .json(&json!({"name": "cli"}))
        .send()
        .await?;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    let created: Value = client
        .post(&url)
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "cli"}))
        .send()
        .await?
        .json()
        .await?;
    let token = created["token"].as_str().context("token")?.to_owned();
    assert!(token.starts_with("jgt_"));
    let (status, me) = call(&w, Some(&token), Method::GET, "/me", None).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user_name"], "alice");
    assert_eq!(me["requester_of"], json!(["prod-web", "staging"]));

    // Listed without its secret; a token cannot mint another.
    let (_, listed) = call(&w, Some(&token), Method::GET, "/tokens", None).await?;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert!(
        !listed.to_string().contains(&token[4..]),
        "the secret is never listed"
    );
    let (status, _) = call(
        &w,
        Some(&token),
        Method::POST,
        "/tokens",
        Some(json!({"name": "x"})),
    )
    .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Someone else cannot revoke it; its owner can, and then it is refused.
    let bob = token_for(&w, "bob").await?;
    let id = created["id"].as_str().context("id")?;
    let (status, _) = call(
        &w,
        Some(&bob),
        Method::DELETE,
        &format!("/tokens/{id}"),
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &w,
        Some(&token),
        Method::DELETE,
        &format!("/tokens/{id}"),
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(&w, Some(&token), Method::GET, "/me", None).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");

    // An expired token is refused too.
    let short: Value = client
        .post(&url)
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "short", "expires_in": "1s"}))
        .send()
        .await?
        .json()
        .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, _) = call(&w, short["token"].as_str(), Method::GET, "/me", None).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&w, Some("jgt_0000"), Method::GET, "/me", None).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Sign-ins, issued and revoked tokens are in the audit trail, by the person.
    let events = jitgate_server::store::audit::page_since(&w.db, i64::MIN, 0, 10_000).await?;
    let by = |action: &str, actor: &str| {
        events
            .iter()
            .filter(|e| e.action == action && e.actor == actor)
            .count()
    };
    assert!(by("auth.signed_in", "sub-alice") >= 1);
    assert!(by("auth.token_issued", "sub-alice") >= 2, "{events:?}");
    assert_eq!(by("auth.token_revoked", "sub-alice"), 1);
    assert!(
        !format!("{events:?}").contains(&token[4..]),
        "a token's secret in the audit trail"
    );
    let (ok, text) = w.audit_verify().await?;
    assert!(ok, "{text}");
    Ok(())
}

#[tokio::test]
async fn requests_flow_through_the_api_with_clear_errors() -> Result<()> {
    let w = world().await?;
    let alice = token_for(&w, "alice").await?;
    let bob = token_for(&w, "bob").await?;

    let (status, body) = call(
        &w,
        Some(&alice),
        Method::POST,
        "/requests",
        Some(new_request("prod-web", "soon")),
    )
    .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "duration");
    let mut root = new_request("prod-web", "1h");
    root["os_user"] = json!("root");
    let (status, body) = call(&w, Some(&alice), Method::POST, "/requests", Some(root)).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "os_user");
    let (status, body) = call(
        &w,
        Some(&alice),
        Method::POST,
        "/requests",
        Some(new_request("nope", "1h")),
    )
    .await?;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("profile"))
    );
    let (status, body) = call(
        &w,
        Some(&alice),
        Method::POST,
        "/requests",
        Some(json!({"profile": "prod-web"})),
    )
    .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");

    let (status, created) = call(
        &w,
        Some(&alice),
        Method::POST,
        "/requests",
        Some(new_request("prod-web", "1h")),
    )
    .await?;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["state"], "pending");
    let id = created["id"].as_str().context("id")?.to_owned();

    let (status, body) = call(
        &w,
        Some(&alice),
        Method::POST,
        &format!("/requests/{id}/approve"),
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "no self-approval: {body}");
    let (_, queue) = call(
        &w,
        Some(&bob),
        Method::GET,
        "/requests?to_approve=true",
        None,
    )
    .await?;
    assert!(
        queue.to_string().contains(&id),
        "bob's queue has it: {queue}"
    );
    let (status, approved) = call(
        &w,
        Some(&bob),
        Method::POST,
        &format!("/requests/{id}/approve"),
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["state"], "approved");
    let (status, again) = call(
        &w,
        Some(&bob),
        Method::POST,
        &format!("/requests/{id}/approve"),
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");

    w.wait_state(
        id.parse()?,
        jitgate_server::domain::StateName::Active,
        Duration::from_secs(30),
    )
    .await?;
    let (status, revoked) = call(
        &w,
        Some(&alice),
        Method::POST,
        &format!("/requests/{id}/revoke"),
        Some(json!({"comment": "done"})),
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["state"], "ended");
    assert_eq!(revoked["end_reason"], "revoked");
    let (_, mine) = call(&w, Some(&alice), Method::GET, "/requests?mine=true", None).await?;
    assert_eq!(mine.as_array().map(Vec::len), Some(1));
    Ok(())
}

#[tokio::test]
async fn every_api_route_answers_each_role_as_expected() -> Result<()> {
    let w = world().await?;
    // Roles: anonymous, requester (alice), approver of another profile (erin approves
    // staging only), approver (bob), admin (carol).
    let tokens = [
        ("anonymous", None),
        ("requester", Some(token_for(&w, "alice").await?)),
        ("other approver", Some(token_for(&w, "erin").await?)),
        ("approver", Some(token_for(&w, "bob").await?)),
        ("admin", Some(token_for(&w, "carol").await?)),
    ];
    let alice = tokens[1].1.clone();
    let (_, created) = call(
        &w,
        alice.as_deref(),
        Method::POST,
        "/requests",
        Some(new_request("prod-web", "1h")),
    )
    .await?;
    let id = created["id"].as_str().context("id")?.to_owned();
    let ok = StatusCode::OK;
    let (u, f, n) = (
        StatusCode::UNAUTHORIZED,
        StatusCode::FORBIDDEN,
        StatusCode::NOT_FOUND,
    );
    // (method, path, body, expected status per role in the order above). Actions are
    // chosen so that none of them changes the request: each role's refusal is shown.
    let matrix: Vec<(Method, String, Option<Value>, [StatusCode; 5])> = vec![
        (Method::GET, "/me".into(), None, [u, ok, ok, ok, ok]),
        (Method::GET, "/profiles".into(), None, [u, ok, ok, ok, ok]),
        (Method::GET, "/requests".into(), None, [u, ok, ok, ok, ok]),
        (
            Method::GET,
            format!("/requests/{id}"),
            None,
            [u, ok, n, ok, ok],
        ),
        (
            Method::POST,
            format!("/requests/{id}/approve"),
            None,
            [u, f, n, ok, StatusCode::CONFLICT],
        ),
        // Only the grantee connects, and only through an active grant (this one is
        // pending): everyone else who sees it is refused.
        (
            Method::GET,
            format!("/requests/{id}/connection"),
            None,
            [u, StatusCode::CONFLICT, n, f, f],
        ),
        (Method::GET, "/tokens".into(), None, [u, ok, ok, ok, ok]),
        (
            Method::POST,
            "/tokens".into(),
            Some(json!({"name": "x"})),
            [u, f, f, f, f],
        ),
        (Method::GET, "/audit".into(), None, [u, f, f, f, ok]),
        (Method::GET, "/nowhere".into(), None, [n, n, n, n, n]),
    ];
    for (method, path, body, expected) in matrix {
        for ((role, token), want) in tokens.iter().zip(expected) {
            let (got, answer) =
                call(&w, token.as_deref(), method.clone(), &path, body.clone()).await?;
            assert_eq!(got, want, "{role} {method} {path}: {answer}");
            if !got.is_success() {
                assert!(
                    answer["error"]["message"].is_string(),
                    "{role} {method} {path}: JSON error body: {answer}"
                );
            }
        }
    }
    // What a listing shows depends on the role too.
    let (_, seen_by_erin) =
        call(&w, tokens[2].1.as_deref(), Method::GET, "/requests", None).await?;
    assert_eq!(seen_by_erin, json!([]), "erin approves staging only");
    let (_, seen_by_carol) =
        call(&w, tokens[4].1.as_deref(), Method::GET, "/requests", None).await?;
    assert_eq!(seen_by_carol.as_array().map(Vec::len), Some(1));
    Ok(())
}

/// The (method, path) operations `server/src/http/api/mod.rs` routes, read from its source.
fn routed_operations() -> Result<std::collections::BTreeSet<(String, String)>> {
    let source =
        std::fs::read_to_string(crate::harness::repo_root().join("server/src/http/api/mod.rs"))?;
    let mut ops = std::collections::BTreeSet::new();
    for line in source
        .lines()
        .filter(|l| l.trim_start().starts_with(".route(\""))
    {
        let path = line.split('"').nth(1).context("route path")?.to_owned();
        for method in ["get", "post", "put", "patch", "delete"] {
            if line.contains(&format!("{method}(")) {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    Ok(ops)
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes() -> Result<()> {
    let w = world().await?;
    let (status, doc) = call(&w, None, Method::GET, "/openapi.json", None).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().context("paths")? {
        for method in item.as_object().context("path item")?.keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let mut routed = routed_operations()?;
    routed.remove(&("GET".into(), "/openapi.json".into()));
    assert!(!routed.is_empty());
    assert_eq!(
        documented, routed,
        "openapi.json and the router list different operations"
    );

    // Every documented operation is served (the fallback answers unknown routes).
    let carol = token_for(&w, "carol").await?;
    for (method, path) in &documented {
        let concrete = path.replace("{id}", "00000000-0000-0000-0000-000000000000");
        let method = Method::from_bytes(method.as_bytes())?;
        let (_, answer) =
            call(&w, Some(&carol), method.clone(), &concrete, Some(json!({}))).await?;
        assert!(
            !answer.to_string().contains("no such API route"),
            "{method} {path} is documented but not routed"
        );
    }
    Ok(())
}

/// Clients that hang up mid-request (timeouts, closed laptops) abandon their request's
/// transaction at any point; the server must roll it back and keep taking writes.
#[tokio::test]
async fn clients_hanging_up_mid_request_do_not_jam_writes() -> Result<()> {
    // 1,500 creates by one person, most cut short: past the default cap of open requests
    // per person (50), which is not what this test is about.
    let w = World::start_with_sign_in(Backend::Sqlite, |b| {
        b.profile(prod_profile())
            .profile(staging_profile())
            .raw("[auth]\nmax_open_requests = 100000\n")
    })
    .await?;
    let alice = token_for(&w, "alice").await?;
    let url = format!("{}/api/v1/requests", w.server.listen_url());
    // Timeouts spread over the time a create takes, so hang-ups land at every step.
    let hang_ups = (0..1500u64).map(|i| {
        let (url, token) = (url.clone(), alice.clone());
        async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_micros(300 + (i * 137) % 12_000))
                .build()?;
            let _ = client
                .post(&url)
                .bearer_auth(&token)
                .json(&new_request("prod-web", "1h"))
                .send()
                .await;
            anyhow::Ok(())
        }
    });
    futures::stream::iter(hang_ups)
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    for _ in 0..3 {
        let (status, body) = call(
            &w,
            Some(&alice),
            Method::POST,
            "/requests",
            Some(new_request("prod-web", "1h")),
        )
        .await?;
        assert_eq!(status, StatusCode::CREATED, "writes still work: {body}");
    }
    Ok(())
}

/// Who sees which requests in `GET /requests`: their own, and those of the profiles they
/// approve (each once, newest first, up to `limit`); admins everything.
async fn listings_show_own_and_approvable_requests(backend: Backend) -> Result<()> {
    let ops = ProfileSpec {
        name: "ops".into(),
        requester_groups: vec!["developers".into(), "sre".into()],
        approver_groups: vec!["developers".into()],
        ..prod_profile()
    };
    let w = World::start_with_sign_in(backend, |b| b.profile(prod_profile()).profile(ops)).await?;
    let mut tokens = std::collections::HashMap::new();
    for login in ["alice", "bob", "carol", "dave", "erin"] {
        tokens.insert(login, token_for(&w, login).await?);
    }
    let mut ids = std::collections::HashMap::new();
    for (label, login, profile) in [
        ("A1", "alice", "prod-web"),
        ("A2", "alice", "ops"),
        ("B1", "bob", "ops"),
        ("C1", "carol", "ops"),
        ("D1", "dave", "prod-web"),
    ] {
        let (status, body) = call(
            &w,
            Some(&tokens[login]),
            Method::POST,
            "/requests",
            Some(new_request(profile, "1h")),
        )
        .await?;
        assert_eq!(status, StatusCode::CREATED, "{label}: {body}");
        ids.insert(body["id"].as_str().context("id")?.to_owned(), label);
    }
    let listed = |body: &Value| -> Vec<&str> {
        let mut labels: Vec<&str> = body
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| ids.get(r["id"].as_str()?).copied())
            .collect();
        labels.sort_unstable();
        labels
    };
    for (login, expected) in [
        ("bob", vec!["A1", "B1", "D1"]),
        ("alice", vec!["A1", "A2", "B1", "C1"]),
        ("erin", vec![]),
        ("carol", vec!["A1", "A2", "B1", "C1", "D1"]),
    ] {
        let (status, body) = call(&w, Some(&tokens[login]), Method::GET, "/requests", None).await?;
        assert_eq!(status, StatusCode::OK, "{login}: {body}");
        assert_eq!(listed(&body), expected, "{login} sees");
        let times: Vec<&str> = body
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["created_at"].as_str())
            .collect();
        assert!(
            times.windows(2).all(|p| p[0] >= p[1]),
            "{login}: newest first: {times:?}"
        );
    }
    let (_, all) = call(&w, Some(&tokens["alice"]), Method::GET, "/requests", None).await?;
    let (_, page) = call(
        &w,
        Some(&tokens["alice"]),
        Method::GET,
        "/requests?limit=2",
        None,
    )
    .await?;
    let first_two: Vec<&Value> = all.as_array().into_iter().flatten().take(2).collect();
    let page: Vec<&Value> = page.as_array().into_iter().flatten().collect();
    assert_eq!(
        page, first_two,
        "a limit returns the newest of the same list"
    );
    Ok(())
}

on_both_backends!(listings_show_own_and_approvable_requests);
