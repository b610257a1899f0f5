//! The `sessions` scenario: how soon after `expires_at` the live Session Manager sessions
//! of expired grants are ended. N grants (default 50), each with one session opened the
//! way a developer opens it (IdC sign-in, role credentials, `StartSession` at the peer),
//! all expiring within the same second; lag of one grant = when the peer ended its
//! session minus its `expires_at`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{TimeDelta, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use jitgate_server::domain::{RequestId, StateName};
use jitgate_server::store::requests;
use serde_json::json;

use super::{ACCOUNT, Schedule, reschedule, start, submit, wait_count};
use crate::harness::SessionAsk;

pub async fn run(grants: usize) -> Result<()> {
    let b = start(grants).await?;
    let seeded = b
        .peer
        .seed(&json!({"instances": [{"name": "web-1", "account": ACCOUNT}]}))
        .await?;
    let target = seeded["instances"]["web-1"]["instance_id"]
        .as_str()
        .context("no instance id")?
        .to_owned();
    eprintln!("provisioning {grants} grants and opening a session on each...");
    let ids: Vec<RequestId> = stream::iter(b.users.iter().cloned())
        .map(|user| submit(&b.broker, user))
        .buffer_unordered(16)
        .try_collect()
        .await?;
    wait_count(&b.db, StateName::Active, grants, Duration::from_secs(1200)).await?;
    stream::iter(b.users.iter())
        .map(|user| {
            let ask = SessionAsk {
                user_name: user,
                account_id: ACCOUNT,
                permission_set: "JitSsm",
                target: &target,
                reason: None,
                document: None,
            };
            let peer = &b.peer;
            async move { peer.open_session(&ask).await }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<String>>()
        .await?;

    let first = Utc::now() + TimeDelta::seconds(5);
    let expiries = reschedule(&b.db, &ids, first, Schedule::SameSecond).await?;
    eprintln!("expiring {grants} grants in the same second...");
    let started = Instant::now();
    let sessions = loop {
        let sessions = b.peer.sessions().await?;
        if sessions.iter().all(|s| !s.active) {
            break sessions;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("sessions still live 10 minutes after their grants expired");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut request_of = HashMap::new();
    for id in &ids {
        let stored = requests::get(&b.db, *id)
            .await?
            .context("request vanished")?;
        request_of.insert(stored.principal_id.0, *id);
    }
    let mut lags: Vec<f64> = sessions
        .iter()
        .map(|s| {
            let id = request_of.get(&s.user_id).context("session of no grant")?;
            let expires = expiries.get(id).context("no expiry")?;
            let ended = s.ended_at.context("ended session without an end")?;
            Ok(ended - expires.timestamp_millis() as f64 / 1000.0)
        })
        .collect::<Result<_>>()?;
    if lags.len() != grants {
        bail!("{} sessions seen for {grants} grants", lags.len());
    }
    lags.sort_by(f64::total_cmp);
    let at = |q: f64| lags[((lags.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "## sessions: {grants} grants with a live session each, expiring in the same second\n"
    );
    println!("| figure | value |\n| --- | --- |");
    println!(
        "| lag from expires_at to its session ended, p50 | {:.3} s |",
        at(0.5)
    );
    println!("| lag p99 | {:.3} s |", at(0.99));
    println!(
        "| lag from expires_at to the last session ended | {:.3} s |\n",
        at(1.0)
    );
    Ok(())
}
