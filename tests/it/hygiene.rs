//! What leaves the server is safe to keep and to open: nothing signed-in is cached, a
//! browser is told to stay on https, invisible characters never enter the record, and a
//! CSV export cannot run formulas in a spreadsheet.

use anyhow::{Context, Result};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::ServerProcess;
use crate::world::{Backend, World, prod_profile, refusal};

#[tokio::test]
async fn answers_are_not_cached_invisible_text_is_refused_and_csv_is_inert() -> Result<()> {
    let w = World::start_with_sign_in(Backend::Sqlite, |b| b.profile(prod_profile())).await?;
    let (client, csrf) = w.session_of("carol").await?;
    let page = client
        .get(format!("{}/requests", w.server.listen_url()))
        .send()
        .await?;
    assert_eq!(
        page.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store"),
        "a signed-in page"
    );
    assert!(
        page.headers().get("strict-transport-security").is_none(),
        "http: no HSTS"
    );
    let created = client
        .post(format!("{}/api/v1/tokens", w.server.listen_url()))
        .header("x-csrf-token", &csrf)
        .json(&json!({ "name": "hygiene" }))
        .send()
        .await?;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(
        created
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store"),
        "the answer that shows a token's secret"
    );

    // A reason with a right-to-left override reads differently from what it says.
    let refused = w
        .api(
            "alice",
            "/requests",
            Some(json!({
                "profile": "prod-web", "account_id": "111111111111", "os_user": "app",
                "duration": "1h", "reason": "look at \u{202E}gnp.exe", "ticket": "INC-1",
            })),
        )
        .await
        .err()
        .context("a reason with a bidi override was accepted")?;
    let refused = refusal(&refused).context("not a refusal")?;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{refused}"
    );
    assert_eq!(refused.field.as_deref(), Some("reason"));
    assert!(refused.message.contains("U+202E"), "{refused}");
    let bad_name = client
        .post(format!("{}/api/v1/tokens", w.server.listen_url()))
        .header("x-csrf-token", &csrf)
        .json(&json!({ "name": "laptop\u{7}" }))
        .send()
        .await?;
    assert_eq!(bad_name.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // An actor chosen to look like a formula is inert in the CSV export.
    let mut tx = w.db.begin().await?;
    let event = jitgate_server::audit::NewEvent::new(
        jitgate_server::audit::Action::RequestSubmitted,
        "=HYPERLINK(\"http://evil.example\")",
        chrono::Utc::now(),
    );
    jitgate_server::store::audit::append(&mut tx, event).await?;
    tx.commit().await?;
    let csv = client
        .get(format!(
            "{}/admin/audit/export?format=csv",
            w.server.listen_url()
        ))
        .send()
        .await?
        .text()
        .await?;
    assert!(csv.contains("'=HYPERLINK"), "{csv}");
    assert!(!csv.contains(",=HYPERLINK"), "a formula left live: {csv}");
    Ok(())
}

#[tokio::test]
async fn over_https_the_browser_is_told_to_stay_on_https() -> Result<()> {
    let mut w = World::start_with_sign_in(Backend::Sqlite, |b| b.profile(prod_profile())).await?;
    // The same server behind an https URL (a proxy terminating TLS), in place of the
    // world's (one process per SQLite file).
    w.server.kill9().await?;
    let mut config: toml::Table = w.config_toml.parse()?;
    let listen = format!("127.0.0.1:{}", crate::harness::free_port()?);
    if let Some(toml::Value::Table(server)) = config.get_mut("server") {
        server.insert("public_url".into(), "https://jitgate.example".into());
        server.insert("listen".into(), listen.into());
    }
    let https = ServerProcess::spawn(&config.to_string()).await?;
    let answer = reqwest::get(format!("{}/healthz", https.listen_url())).await?;
    let hsts = answer
        .headers()
        .get("strict-transport-security")
        .and_then(|v| v.to_str().ok())
        .context("no HSTS over https")?;
    assert!(hsts.starts_with("max-age="), "{hsts}");
    Ok(())
}

/// Slow and greedy clients: hundreds of connections that never finish their headers do
/// not stop anyone else from being answered, and are closed after the header timeout.
#[tokio::test]
async fn half_open_connections_do_not_lock_others_out() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = World::start_with_sign_in(Backend::Sqlite, |b| b.profile(prod_profile())).await?;
    let token = w.token_for("alice").await?;
    let address = w
        .server
        .listen_url()
        .trim_start_matches("http://")
        .to_owned();
    let mut stalled = Vec::new();
    for _ in 0..300 {
        let mut stream = tokio::net::TcpStream::connect(&address).await?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: jitgate\r\nX-Slow: ")
            .await?;
        stalled.push(stream);
    }
    let started = std::time::Instant::now();
    let health = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?
        .get(format!("{}/healthz", w.server.listen_url()))
        .send()
        .await?;
    assert_eq!(health.status(), StatusCode::OK);
    let me = reqwest::Client::new()
        .get(format!("{}/api/v1/me", w.server.listen_url()))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(
        me.status(),
        StatusCode::OK,
        "a signed-in request is answered"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // The stalled connections are closed once the header timeout (10s) has passed.
    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    let mut closed = 0;
    for stream in &mut stalled {
        let mut buf = [0u8; 256];
        match tokio::time::timeout(std::time::Duration::from_millis(200), stream.read(&mut buf))
            .await
        {
            Ok(Ok(_)) | Ok(Err(_)) => closed += 1, // EOF, a 408, or a reset
            Err(_) => {}                           // still open
        }
    }
    assert_eq!(
        closed,
        stalled.len(),
        "connections left open past the header timeout"
    );
    Ok(())
}

/// No one floods the approvers or hoards tokens: open requests and live API tokens per
/// person are capped (50 and 20 by default), with a refusal that says what to do.
#[tokio::test]
async fn open_requests_and_tokens_per_person_are_capped() -> Result<()> {
    let w = World::start_with_sign_in(Backend::Sqlite, |b| b.profile(prod_profile())).await?;
    let hour = std::time::Duration::from_secs(3600);
    let mut open = Vec::new();
    for _ in 0..50 {
        open.push(w.submit("alice", "prod-web", "app", hour).await?);
    }
    let refused = w
        .submit("alice", "prod-web", "app", hour)
        .await
        .err()
        .context("a 51st open request was accepted")?;
    let refused = refusal(&refused).context("not a refusal")?;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{refused}");
    assert!(refused.message.contains("cancel or end some"), "{refused}");
    // Others are not held back, and ending one makes room.
    w.submit("dave", "prod-web", "app", hour).await?;
    w.cancel_as("alice", open[0]).await?;
    w.submit("alice", "prod-web", "app", hour).await?;

    let (client, csrf) = w.session_of("carol").await?;
    let make = || {
        client
            .post(format!("{}/api/v1/tokens", w.server.listen_url()))
            .header("x-csrf-token", &csrf)
            .json(&json!({ "name": "one of many" }))
            .send()
    };
    for _ in 0..20 {
        assert_eq!(make().await?.status(), StatusCode::CREATED);
    }
    let over = make().await?;
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(over.text().await?.contains("revoke some"));
    Ok(())
}
