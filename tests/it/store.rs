//! Storage behaviour that must hold on both backends: one audit chain under concurrent
//! writers, append-only audit rows, and exclusive work leases.

use std::collections::HashSet;

use anyhow::Result;
use chrono::{TimeDelta, Utc};
use jitgate_server::audit::{Action, NewEvent};
use jitgate_server::store::{Db, audit as stored, principals};
use serde_json::json;

use crate::harness::{sqlite_url_in, start_postgres};
use crate::world::Backend;
use crate::world::on_both_backends;

/// A migrated, empty database (the temp dir keeps a SQLite file alive).
pub async fn empty_db(backend: Backend) -> Result<(Db, String, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let url = match backend {
        Backend::Sqlite => sqlite_url_in(dir.path()),
        Backend::Postgres => start_postgres().await?.fresh_database().await?,
    };
    let db = crate::harness::keyed(Db::connect(&url, 8).await?);
    db.migrate().await?;
    Ok((db, url, dir))
}

/// Appends `n` events, each in its own transaction.
pub async fn append_events(db: &Db, actor: &str, n: usize) -> Result<()> {
    for i in 0..n {
        let mut tx = db.begin().await?;
        let event = NewEvent::new(Action::RequestSubmitted, actor, Utc::now())
            .request(format!("r-{actor}-{i}"))
            .details(json!({"i": i, "note": "ünïcödé and \"quotes\""}));
        stored::append(&mut tx, event).await?;
        tx.commit().await?;
    }
    Ok(())
}

async fn concurrent_writers_form_one_chain(backend: Backend) -> Result<()> {
    let (db, _url, _dir) = empty_db(backend).await?;
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let db = db.clone();
            tokio::spawn(async move { append_events(&db, &format!("writer{w}"), 20).await })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    let verified = jitgate_server::trail::verify(&db, &crate::harness::audit_keys())
        .await?
        .map_err(|b| anyhow::anyhow!("{b}"))?;
    assert_eq!(verified.events, 120);
    Ok(())
}

on_both_backends!(concurrent_writers_form_one_chain);

async fn audit_rows_are_append_only(backend: Backend) -> Result<()> {
    let (db, url, _dir) = empty_db(backend).await?;
    append_events(&db, "alice", 2).await?;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await?;
    let update = sqlx::query("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1")
        .execute(&pool)
        .await;
    // Refused by the trigger, not by anything else (a typo in the statement would fail too).
    let refused_by_trigger = |result: Result<sqlx::any::AnyQueryResult, sqlx::Error>| {
        result
            .err()
            .is_some_and(|e| e.to_string().contains("audit events are append-only"))
    };
    assert!(
        refused_by_trigger(update),
        "audit rows must not be updatable"
    );
    let delete = sqlx::query("DELETE FROM audit_events WHERE seq = 2")
        .execute(&pool)
        .await;
    assert!(
        refused_by_trigger(delete),
        "audit rows must not be deletable"
    );
    let verified = jitgate_server::trail::verify(&db, &crate::harness::audit_keys())
        .await?
        .map_err(|b| anyhow::anyhow!("{b}"))?;
    assert_eq!(verified.events, 2, "both events still there, unchanged");
    Ok(())
}

on_both_backends!(audit_rows_are_append_only);

async fn leases_are_exclusive(backend: Backend) -> Result<()> {
    let (db, _url, _dir) = empty_db(backend).await?;
    let mut tx = db.begin().await?;
    for p in 0..20 {
        principals::touch(&mut tx, &format!("p{p}").into()).await?;
    }
    tx.commit().await?;

    let now = Utc::now();
    let until = now + TimeDelta::seconds(30);
    let (a, b) = tokio::join!(
        principals::claim(&db, "replica-a", now, until, 15),
        principals::claim(&db, "replica-b", now, until, 15)
    );
    let (a, b) = (a?, b?);
    let a_ids: HashSet<_> = a.iter().map(|c| c.principal_id.clone()).collect();
    let b_ids: HashSet<_> = b.iter().map(|c| c.principal_id.clone()).collect();
    assert!(a_ids.is_disjoint(&b_ids), "a principal was claimed twice");
    assert_eq!(
        a_ids.len() + b_ids.len(),
        20,
        "every principal claimed once"
    );

    // Nothing is left to claim while the leases run; after they expire, work is taken over.
    assert!(
        principals::claim(&db, "replica-c", now, until, 50)
            .await?
            .is_empty()
    );
    let later = until + TimeDelta::seconds(1);
    let taken =
        principals::claim(&db, "replica-c", later, later + TimeDelta::seconds(30), 50).await?;
    assert_eq!(taken.len(), 20, "a dead replica's work is taken over");
    // The old holder can no longer renew, so it records nothing.
    let first = &a[0].principal_id;
    assert!(!principals::renew(&db, first, "replica-a", later + TimeDelta::seconds(60)).await?);
    Ok(())
}

on_both_backends!(leases_are_exclusive);
