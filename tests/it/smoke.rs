//! Proves the harness itself: each peer starts and answers, and the configs it renders
//! are ones the server accepts. Scenario tests build on these.

use anyhow::{Context, Result, ensure};
use jitgate_server::store::Db;
use serde_json::json;

use crate::harness::{
    AwsPeer, ConfigBuilder, PeerKnobs, ProfileSpec, sqlite_url_in, start_postgres,
};

#[tokio::test]
async fn fresh_postgres_databases_take_the_migrations() -> Result<()> {
    let postgres = start_postgres().await?;
    let first = postgres.fresh_database().await?;
    let second = postgres.fresh_database().await?;
    ensure!(first != second, "two fresh databases share the URL {first}");
    for url in [first, second] {
        let db = Db::connect(&url, 5)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        db.migrate()
            .await
            .with_context(|| format!("migrating {url}"))?;
        db.close().await;
    }
    Ok(())
}

#[tokio::test]
async fn aws_peer_starts_seeded_and_without_assignments() -> Result<()> {
    let peer = AwsPeer::start(PeerKnobs::default()).await?;
    let seeded = peer
        .seed(&json!({
            "users": [{"user_name": "alice", "email": "alice@example.com", "display_name": "Alice"}],
            "permission_sets": [{"name": "JitSsm", "session_duration": "PT1H"}],
            "accounts": ["111111111111"],
        }))
        .await?;
    ensure!(
        seeded["users"]["alice"].is_string(),
        "no user id for alice: {seeded}"
    );
    let arn = seeded["permission_sets"]["JitSsm"]
        .as_str()
        .unwrap_or_default();
    // moto writes arn:aws:sso:::instance/ssoins-../ps-.., AWS arn:aws:sso:::permissionSet/..
    ensure!(
        arn.starts_with("arn:aws:sso:::") && arn.contains("/ps-"),
        "odd permission set ARN: {seeded}"
    );
    ensure!(
        seeded["instance_arn"].is_string(),
        "no instance ARN: {seeded}"
    );
    let assignments = peer.assignments().await?;
    ensure!(
        assignments.is_empty(),
        "a fresh peer has assignments: {assignments:?}"
    );
    ensure!(peer.history().await?.is_empty(), "a fresh peer has history");
    Ok(())
}

#[tokio::test]
async fn config_builder_renders_what_the_server_accepts() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let builder = ConfigBuilder::new(&sqlite_url_in(dir.path()), "http://127.0.0.1:9")?
        .profile(ProfileSpec::default())
        .profile(ProfileSpec {
            name: "staging".into(),
            accounts: vec!["222222222222".into()],
            permission_set: "JitSsm-{os_user}".into(),
            run_as_mode: "session-document".into(),
            allowed_os_users: vec!["deploy".into()],
            auto_approve: true,
            ..ProfileSpec::default()
        })
        .scheduler_poll("200ms")
        .lease("3s")
        .sweep("*/2 * * * * *")
        .drift("remove")
        .workers(2)
        .tps(5)
        .raw("[scheduler]\ngrant_attempts = 2\n");
    let text = builder.render();
    let config = jitgate_server::config::load_from_str(&text, crate::harness::test_env())
        .with_context(|| format!("rendered config:\n{text}"))?;
    ensure!(config.server.listen == format!("127.0.0.1:{}", builder.listen_port()));
    ensure!(
        config.profiles.len() == 2,
        "profiles: {:?}",
        config.profiles
    );
    ensure!(config.scheduler.workers == 2 && config.aws.tps_limit == 5);
    ensure!(
        config.scheduler.grant_attempts == 2,
        "raw TOML was not merged:\n{text}"
    );
    ensure!(config.scheduler.poll_interval.get().as_millis() == 200);
    Ok(())
}
