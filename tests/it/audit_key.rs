//! The audit chain against the database's own users: someone who can write the database
//! (and so drop the append-only guard and recompute hashes) still cannot forge history,
//! because the hashes are keyed with a key the database never holds. Key rotation is
//! recorded in the chain, and the head logged by the server checks the database later.

use std::time::Duration;

use anyhow::{Context, Result};
use jitgate_server::audit::{AuditKey, Hashed};
use jitgate_server::store::audit as stored;
use sqlx::AnyPool;

use crate::harness::{AUDIT_KEY, ConfigBuilder, ServerProcess, run_cli, run_cli_with};
use crate::store::{append_events, empty_db};
use crate::world::on_both_backends;
use crate::world::{Backend, World, prod_profile};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn config_for(db_url: &str) -> Result<String> {
    Ok(ConfigBuilder::new(db_url, "http://127.0.0.1:9")?
        .profile(prod_profile())
        .render())
}

/// Turns off the append-only triggers, as the database's owner can.
async fn disable_guards(pool: &AnyPool, backend: Backend) -> Result<()> {
    let statements: &[&str] = match backend {
        Backend::Sqlite => &[
            "DROP TRIGGER audit_events_no_update",
            "DROP TRIGGER audit_events_no_delete",
        ],
        Backend::Postgres => &["ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change"],
    };
    for statement in statements {
        sqlx::query(statement).execute(pool).await?;
    }
    Ok(())
}

/// How an attacker who can write the database recomputes the hashes.
#[derive(Clone, Copy)]
enum Rewrite<'a> {
    /// Plain SHA-256, the way the chain was hashed before it was keyed; `drop_key_ids`
    /// also clears the key ids, so the rewrite looks like an unkeyed chain.
    Plain { drop_key_ids: bool },
    /// HMAC with a key they hold (a retired, leaked one), naming it.
    With(&'a AuditKey),
}

/// Sets event `from`'s actor to mallory and recomputes that event's hash and every one
/// after it as `how` says.
async fn rewrite_from(
    db: &jitgate_server::store::Db,
    pool: &AnyPool,
    from: i64,
    how: Rewrite<'_>,
) -> Result<()> {
    let events = stored::page_since(db, i64::MIN, 0, 10_000).await?;
    let mut prev = events
        .iter()
        .find(|e| e.seq == from)
        .map(|e| e.prev_hash.clone())
        .context("no such event")?;
    for event in events.iter().filter(|e| e.seq >= from) {
        let actor = if event.seq == from {
            "mallory"
        } else {
            event.actor.as_str()
        };
        let hash = Hashed {
            prev_hash: &prev,
            seq: event.seq,
            at_millis: event.at.timestamp_millis(),
            actor,
            action: event.action.as_str(),
            request_id: event.request_id.as_deref(),
            details: &event.details,
        }
        .hash(match how {
            Rewrite::Plain { .. } => None,
            Rewrite::With(key) => Some(key),
        });
        let key_id = match how {
            Rewrite::Plain { drop_key_ids: true } => None,
            Rewrite::Plain {
                drop_key_ids: false,
            } => event.key_id.clone(),
            Rewrite::With(key) => Some(key.id().to_owned()),
        };
        sqlx::query(
            "UPDATE audit_events SET actor = $1, prev_hash = $2, hash = $3, key_id = $4 \
             WHERE seq = $5",
        )
        .bind(actor)
        .bind(&prev)
        .bind(&hash)
        .bind(key_id)
        .bind(event.seq)
        .execute(pool)
        .await?;
        prev = hash;
    }
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&prev)
        .execute(pool)
        .await?;
    Ok(())
}

async fn a_rewrite_with_recomputed_hashes_is_caught(backend: Backend) -> Result<()> {
    for (from, drop_key_ids, expect) in [
        (3, false, "BROKEN at event 3"),
        (3, true, "BROKEN at event 3"),
        (1, true, "no event is signed with the current key"),
    ] {
        let (db, url, _dir) = empty_db(backend).await?;
        append_events(&db, "alice", 5).await?;
        let config = config_for(&url)?;
        let out = run_cli(&["audit", "verify"], &config).await?;
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains("5 events (all keyed)"),
            "{}",
            text(&out)
        );

        sqlx::any::install_default_drivers();
        let pool = AnyPool::connect(&url).await?;
        disable_guards(&pool, backend).await?;
        rewrite_from(&db, &pool, from, Rewrite::Plain { drop_key_ids }).await?;
        let out = run_cli(&["audit", "verify"], &config).await?;
        assert_eq!(
            out.status.code(),
            Some(1),
            "rewrite from {from} (key ids dropped: {drop_key_ids}) passed: {}",
            text(&out)
        );
        assert!(text(&out).contains(expect), "{}", text(&out));
        pool.close().await;
    }
    Ok(())
}

on_both_backends!(a_rewrite_with_recomputed_hashes_is_caught);

/// The first `audit chain head` line of a server log, as `SEQ:HASH`.
fn logged_head(log: &str) -> Result<String> {
    let line = log
        .lines()
        .find(|l| l.contains("audit chain head"))
        .with_context(|| format!("no chain head in the log:\n{log}"))?;
    let json: serde_json::Value = serde_json::from_str(line)?;
    Ok(format!(
        "{}:{}",
        json["seq"],
        json["hash"].as_str().context("no hash")?
    ))
}

#[tokio::test]
async fn rotation_is_recorded_and_the_logged_head_checks_the_database() -> Result<()> {
    const NEW_KEY: &str = "the-rotated-audit-key-fedcba9876543210";
    let mut w = World::start_with_sign_in(Backend::Sqlite, |b| b.profile(prod_profile())).await?;
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    w.approve_as("bob", id).await?;
    let head = logged_head(&w.server.log())?;

    w.server.terminate().await?;
    w.server = ServerProcess::spawn_with(
        &w.config_toml,
        &[
            ("JITGATE_AUDIT_KEY", NEW_KEY),
            ("JITGATE_AUDIT_PREVIOUS_KEYS", AUDIT_KEY),
        ],
    )
    .await?;
    w.revoke_as("alice", id).await?;

    let events = stored::page_since(&w.db, i64::MIN, 0, 10_000).await?;
    let changes: Vec<serde_json::Value> = events
        .iter()
        .filter(|e| e.action == "audit.key_changed")
        .map(|e| serde_json::json!({ "seq": e.seq, "details": e.details }))
        .collect();
    let (old, new) = (AuditKey::new(AUDIT_KEY), AuditKey::new(NEW_KEY));
    assert_eq!(changes.len(), 2, "first start and rotation: {changes:?}");
    assert_eq!(changes[0]["details"]["to"], old.id());
    assert_eq!(changes[1]["details"]["from"], old.id());
    assert_eq!(changes[1]["details"]["to"], new.id());
    let last = events.last().context("no events")?;
    assert_eq!(
        last.key_id.as_deref(),
        Some(new.id()),
        "new events use the new key"
    );

    let both = [
        ("JITGATE_AUDIT_KEY", NEW_KEY),
        ("JITGATE_AUDIT_PREVIOUS_KEYS", AUDIT_KEY),
    ];
    let out = run_cli_with(&["audit", "verify"], &w.config_toml, &both).await?;
    assert!(out.status.success(), "{}", text(&out));
    let only_new = [("JITGATE_AUDIT_KEY", NEW_KEY)];
    let out = run_cli_with(&["audit", "verify"], &w.config_toml, &only_new).await?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(old.id()),
        "names the missing key: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("JITGATE_AUDIT_PREVIOUS_KEYS"),
        "{}",
        text(&out)
    );

    // The head the first server logged still matches the database...
    let args = ["audit", "verify", "--head", head.as_str()];
    let out = run_cli_with(&args, &w.config_toml, &both).await?;
    assert!(out.status.success(), "{head}: {}", text(&out));
    // ...and a head the database does not hold is reported.
    let (seq, _) = head.split_once(':').context("SEQ:HASH")?;
    let forged = format!("{seq}:{}", "ab".repeat(32));
    let args = ["audit", "verify", "--head", forged.as_str()];
    let out = run_cli_with(&args, &w.config_toml, &both).await?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("BROKEN at event {seq}")),
        "{}",
        text(&out)
    );

    // Someone holding the retired (perhaps leaked) key re-signs history from the rotation
    // on with it, as if the rotation had not happened: caught.
    let rotation = changes[1]["seq"].as_i64().context("no seq")?;
    sqlx::any::install_default_drivers();
    let pool = AnyPool::connect(&w.db_url).await?;
    disable_guards(&pool, Backend::Sqlite).await?;
    rewrite_from(&w.db, &pool, rotation, Rewrite::With(&old)).await?;
    let out = run_cli_with(&["audit", "verify"], &w.config_toml, &both).await?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("BROKEN at event {rotation}")),
        "{}",
        text(&out)
    );
    Ok(())
}
