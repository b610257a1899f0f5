//! Upgrading: a database written by the previous release (schema up to migration 0007),
//! holding an active grant and a revocation still owed, is migrated by the new server at
//! start, which then finishes the owed revocation and ends the grant on time.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use chrono::Utc;
use jitgate_server::audit::Hashed;
use jitgate_server::config::load_from_str;
use jitgate_server::domain::{Actor, Draft, Request, RequestId, StateName, UserId};
use jitgate_server::store::Db;
use sqlx::Row;

use crate::harness::ProfileSpec;
use crate::harness::{PeerKnobs, ServerProcess, repo_root, sqlite_url_in, start_postgres};
use crate::world::on_both_backends;
use crate::world::{ACCOUNT, Backend, REVOKE_PROMISE, World, prod_profile};

/// The last migration of the previous release.
const PREVIOUS_SCHEMA: &str = "0007";

/// A database at the previous release's schema: its migrations applied by sqlx's
/// migrator, as that release did.
async fn previous_release_db(backend: Backend, dir: &Path) -> Result<String> {
    let (url, folder) = match backend {
        Backend::Sqlite => (sqlite_url_in(dir), "sqlite"),
        Backend::Postgres => (start_postgres().await?.fresh_database().await?, "postgres"),
    };
    let old = dir.join("migrations");
    std::fs::create_dir_all(&old)?;
    for entry in std::fs::read_dir(repo_root().join("migrations").join(folder))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.as_bytes().get(..4) <= Some(PREVIOUS_SCHEMA.as_bytes()) {
            std::fs::copy(&path, old.join(name))?;
        }
    }
    sqlx::any::install_default_drivers();
    let connect_url = match backend {
        Backend::Sqlite => format!("{url}?mode=rwc"),
        Backend::Postgres => url.clone(),
    };
    let pool = sqlx::AnyPool::connect(&connect_url).await?;
    sqlx::migrate::Migrator::new(old.as_path())
        .await?
        .run(&pool)
        .await
        .context("applying the previous release's migrations")?;
    pool.close().await;
    Ok(url)
}

fn actor(name: &str, groups: &[&str]) -> Actor {
    Actor {
        user: UserId::new(format!("sub-{name}")),
        groups: groups.iter().map(ToString::to_string).collect(),
        is_admin: false,
        approves_all: false,
        authenticated_at: None,
    }
}

/// A request row as the previous release's schema holds it.
async fn insert_request_row(
    pool: &sqlx::AnyPool,
    r: &Request,
    principal: &str,
    permission_set_arn: &str,
) -> Result<()> {
    let millis = |t: chrono::DateTime<Utc>| t.timestamp_millis();
    sqlx::query(
        "INSERT INTO requests (id, requester, profile, account_id, os_user, run_as_mode, \
         duration_secs, reason, ticket, created_at, state, expires_at, principal_id, \
         permission_set_arn, detail, updated_at, settled_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, NULL)",
    )
    .bind(r.id.to_string())
    .bind(r.requester.as_str().to_owned())
    .bind(r.profile.clone())
    .bind(r.account.as_str().to_owned())
    .bind(r.os_user.as_str().to_owned())
    .bind(r.run_as_mode.as_str())
    .bind(r.duration.as_secs() as i64)
    .bind(r.reason.clone())
    .bind(r.ticket.clone())
    .bind(millis(r.created_at))
    .bind(r.state.name().as_str())
    .bind(r.expires_at().map(millis))
    .bind(principal.to_owned())
    .bind(permission_set_arn.to_owned())
    .bind(serde_json::to_string(r)?)
    .bind(millis(r.created_at))
    .execute(pool)
    .await
    .context("the previous release's request row")?;
    Ok(())
}

/// What the previous release wrote for a grant of `who`, in its own schema's columns:
/// the request, the person's principal row, the assignment (present) and an audit event.
async fn write_grant(
    pool: &sqlx::AnyPool,
    w: &World,
    request: Request,
    who: &str,
) -> Result<RequestId> {
    let principal = w.user_id(who)?;
    let permission_set_arn = w.permission_set("JitSsm")?;
    let r = &request;
    let millis = |t: chrono::DateTime<Utc>| t.timestamp_millis();
    insert_request_row(pool, r, &principal, &permission_set_arn).await?;
    sqlx::query(
        "INSERT INTO principals (principal_id, generation, converged_generation) \
         VALUES ($1, 1, 1) ON CONFLICT (principal_id) DO NOTHING",
    )
    .bind(principal.clone())
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO assignments (principal_id, account_id, permission_set_arn, state, updated_at) \
         VALUES ($1, $2, $3, 'present', $4)",
    )
    .bind(principal.clone())
    .bind(ACCOUNT)
    .bind(permission_set_arn)
    .bind(millis(Utc::now()))
    .execute(pool)
    .await?;
    // The previous release's audit event: a plain SHA-256 hash and no key id (the new
    // server keys the chain from its first start on).
    let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        .fetch_one(pool)
        .await?;
    let (seq, prev): (i64, String) = (head.try_get("seq")?, head.try_get("hash")?);
    let at = millis(Utc::now());
    let (request_id, details) = (r.id.to_string(), serde_json::json!({}));
    let hash = Hashed {
        prev_hash: &prev,
        seq,
        at_millis: at,
        actor: r.requester.as_str(),
        action: "request.submitted",
        request_id: Some(&request_id),
        details: &details,
    }
    .hash(None);
    sqlx::query(
        "INSERT INTO audit_events (seq, at, actor, action, request_id, details, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(seq)
    .bind(at)
    .bind(r.requester.as_str())
    .bind("request.submitted")
    .bind(&request_id)
    .bind(details.to_string())
    .bind(&prev)
    .bind(&hash)
    .execute(pool)
    .await?;
    Ok(r.id)
}

async fn upgrade_finishes_the_work_of_the_previous_release(backend: Backend) -> Result<()> {
    // Two approvals, so a pending request can hold one (the approval queue's backfill).
    let profile = ProfileSpec {
        approvals_required: 2,
        ..prod_profile()
    };
    let mut w = World::start(backend, PeerKnobs::default(), |b| b.profile(profile)).await?;
    w.server.kill9().await?;
    let dir = tempfile::tempdir()?;
    let url = previous_release_db(backend, dir.path()).await?;

    // The previous release's data: alice's active grant (its assignment in AWS) and
    // dave's revoked grant whose assignment is still there (the revocation owed).
    let config = load_from_str(&w.config_toml, crate::harness::test_env())?;
    let policy = config.profile("prod-web").context("prod-web")?.policy();
    let now = Utc::now();
    let bob = actor("bob", &["sre"]);
    let carol = actor("carol", &["sre"]);
    let draft = |os_user: &str, secs: u64| Draft {
        profile: "prod-web".into(),
        account: ACCOUNT.into(),
        os_user: os_user.into(),
        duration: Duration::from_secs(secs),
        reason: "written by the previous release".into(),
        ticket: None,
    };
    let alice = actor("alice", &["developers"]);
    let active = Request::submit(
        RequestId::new_v4(),
        draft("app", 8),
        &alice,
        &policy,
        &[],
        now,
    )?
    .approve(&bob, &policy, now)?
    .approve(&carol, &policy, now)?
    .activate(now)?;
    let expires_at: SystemTime = active.expires_at().context("active")?.into();
    let dave = actor("dave", &["developers"]);
    let revoked = Request::submit(
        RequestId::new_v4(),
        draft("readonly", 3600),
        &dave,
        &policy,
        &[],
        now,
    )?
    .approve(&bob, &policy, now)?
    .approve(&carol, &policy, now)?
    .activate(now)?
    .revoke(&dave, &policy, None, now)?;
    let frank = actor("frank", &["developers"]);
    let waiting = Request::submit(
        RequestId::new_v4(),
        draft("app", 3600),
        &frank,
        &policy,
        &[],
        now,
    )?
    .approve(&bob, &policy, now)?;
    sqlx::any::install_default_drivers();
    let raw = match backend {
        Backend::Sqlite => format!("{url}?mode=rw"),
        Backend::Postgres => url.clone(),
    };
    let pool = sqlx::AnyPool::connect(&raw).await?;
    let active = write_grant(&pool, &w, active, "alice").await?;
    let revoked = write_grant(&pool, &w, revoked, "dave").await?;
    insert_request_row(
        &pool,
        &waiting,
        &w.user_id("frank")?,
        &w.permission_set("JitSsm")?,
    )
    .await?;
    // dave's revocation is owed: his desired state is ahead of AWS.
    sqlx::query(
        "UPDATE principals SET generation = 2, converged_generation = 1 WHERE principal_id = $1",
    )
    .bind(w.user_id("dave")?)
    .execute(&pool)
    .await?;
    pool.close().await;
    w.assign_by_hand("USER", &w.user_id("alice")?, "JitSsm")
        .await?;
    w.assign_by_hand("USER", &w.user_id("dave")?, "JitSsm")
        .await?;

    // The new server on the old database.
    let database = w.config_toml.replace(
        &w.config_toml
            .lines()
            .find(|l| l.trim_start().starts_with("url ="))
            .context("no database url in the config")?
            .to_owned(),
        &format!("url = \"{url}\""),
    );
    w.config_toml = database;
    w.db = crate::harness::keyed(Db::connect(&url, 2).await?);
    let started = SystemTime::now();
    w.server = ServerProcess::spawn(&w.config_toml).await?;

    w.assert_gone_within("dave", "JitSsm", started, Duration::from_secs(5))
        .await?;
    w.wait_settled(revoked, Duration::from_secs(10)).await?;
    w.assert_gone_within("alice", "JitSsm", expires_at, REVOKE_PROMISE)
        .await?;
    assert_eq!(
        w.request(active).await?.request.state.name(),
        StateName::Ended
    );
    let (ok, text) = w.audit_verify().await?;
    assert!(ok, "the old chain and the new events verify as one: {text}");
    assert!(
        text.contains("keyed from event 3"),
        "the two old events keep plain hashes, the new server keys the rest: {text}"
    );
    // The approval queue knows what the old release's pending request waits for: bob
    // approved it already, carol has not.
    let profiles = ["prod-web".to_owned()];
    let queue_of = async |who: &str| {
        let who = jitgate_core::domain::UserId::new(who);
        jitgate_server::store::requests::approval_queue(&w.db, &who, &profiles, 0, 10).await
    };
    assert!(queue_of("sub-bob").await?.is_empty());
    let carols = queue_of("sub-carol").await?;
    assert_eq!(carols.len(), 1);
    assert_eq!(carols[0].request.id, waiting.id);
    Ok(())
}

on_both_backends!(upgrade_finishes_the_work_of_the_previous_release);
