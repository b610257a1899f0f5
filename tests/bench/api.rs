//! The `api` scenario: the JSON API under load from Debian's `wrk`, against an
//! authenticated `GET /api/v1/requests` and `POST /api/v1/requests`; the server's time
//! from start to answering `/readyz`; its memory idle and under load.
//!
//! Each endpoint is measured twice: paced at the target rate (1,000 req/s, the figure
//! the target is about) and unpaced (the most it answers on this machine).

use std::time::Duration;

use anyhow::{Result, bail};
use chrono::{TimeDelta, Utc};
use jitgate_server::domain::{Draft, UserId};
use jitgate_server::store::{requests, tokens, users};

use super::{ACCOUNT, Bench, memory, restart, start};
use crate::wrk::{self, Figures, Load, Shape};

/// Requesters whose tokens the POST load rotates over.
const USERS: usize = 20;
/// Pending requests of the first user, which the GET load lists.
const LISTED: usize = 50;
/// The target: p99 under this many milliseconds at this rate.
const TARGET_RATE: u32 = 1_000;
const TARGET_P99_MS: f64 = 5.0;

const CREATE_BODY: &str = "{\"profile\":\"reviewed\",\"account_id\":\"111111111111\",\
    \"os_user\":\"app\",\"duration\":\"1h\",\"reason\":\"benchmark\"}";

pub async fn run() -> Result<()> {
    let mut b = start(USERS).await?;
    let tokens = issue_tokens(&b).await?;
    for _ in 0..LISTED {
        b.broker
            .submit(&person(&b, &b.users[0]), draft(), Utc::now())
            .await?;
    }

    // A fresh process: how fast it is ready, and how big when idle.
    let ready = restart(&mut b).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle_rss, _) = memory(b.server.pid())?;

    println!("## api: the JSON API under load (wrk)\n");
    println!(
        "Paced lines offer {TARGET_RATE} req/s (16 connections, 2 wrk threads, 20 s); \
         unpaced lines send as fast as answers come (8 connections, 10 s).\n"
    );
    println!("| figure | value | target |\n| --- | --- | --- |");
    println!(
        "| start to /readyz (incl. IdC discovery against the peer) | {} ms | < 300 ms |",
        ready.as_millis()
    );
    println!(
        "| server RSS, idle | {:.1} MiB | < 30 MB |",
        idle_rss as f64 / 1024.0
    );

    let dir = tempfile::tempdir()?;
    let url = format!("{}/api/v1/requests", b.server.listen_url());
    let list = Load {
        method: "GET",
        body: None,
        tokens: &tokens[..1],
    };
    let create = Load {
        method: "POST",
        body: Some(CREATE_BODY),
        tokens: &tokens,
    };
    let paced = Shape {
        connections: 16,
        threads: 2,
        rate: Some(TARGET_RATE),
        seconds: 20,
    };
    let unpaced = Shape {
        connections: 8,
        threads: 2,
        rate: None,
        seconds: 10,
    };
    const LIST: &str = "GET /api/v1/requests (50 listed)";
    const CREATE: &str = "POST /api/v1/requests (create)";
    for shape in [paced, unpaced] {
        measure(&b, &dir, &url, LIST, &list, shape).await?;
    }
    // Each requester's IdC user id is looked up once (then cached): do it before the
    // clock starts, as a running server has long done.
    warm_up(&url, &tokens).await?;
    for shape in [paced, unpaced] {
        measure(&b, &dir, &url, CREATE, &create, shape).await?;
    }
    // The same listing once the creates have filled the table: a page of the newest must
    // not cost more with tens of thousands of requests than with fifty.
    let total: i64 = requests::count_by_state(&b.db)
        .await?
        .iter()
        .map(|(_, n)| n)
        .sum();
    let label = format!("GET /api/v1/requests (newest 100 of {total} in the database)");
    measure(&b, &dir, &url, &label, &list, paced).await?;
    println!();
    Ok(())
}

/// One wrk run of `load` in `shape`, printed as a table row.
async fn measure(
    b: &Bench,
    dir: &tempfile::TempDir,
    url: &str,
    label: &str,
    load: &Load<'_>,
    shape: Shape,
) -> Result<()> {
    let name = format!(
        "{}-{}",
        load.method.to_lowercase(),
        shape.rate.map_or("unpaced".to_owned(), |r| r.to_string())
    );
    let script = wrk::script(dir.path(), &name, load, shape)?;
    let pid = b.server.pid();
    let samples = shape.seconds * 5;
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        for _ in 0..samples {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Ok((rss, _)) = memory(pid) {
                peak = peak.max(rss);
            }
        }
        peak
    });
    let f = wrk::run(&script, url, shape).await?;
    let loaded_rss = sampler.await.unwrap_or(0);
    if f.failures() > 0 {
        eprintln!(
            "{label}: {} failed; the server's log ends with:\n{}",
            describe_failures(&f),
            crate::harness::last_lines(&b.server.log(), 20)
        );
    }
    let (how, verdict) = match shape.rate {
        Some(rate) => (
            format!("paced at {rate} req/s"),
            verdict(&f, rate).to_owned(),
        ),
        None => (
            format!("unpaced, {} connections", shape.connections),
            "(saturation)".to_owned(),
        ),
    };
    println!(
        "| {label}, {how} | {:.0} req/s; p50 {:.2} ms, p99 {:.2} ms; non-2xx {}; RSS under load {:.1} MiB | {verdict} |",
        f.requests_per_second,
        f.p50_ms,
        f.p99_ms,
        describe_failures(&f),
        loaded_rss as f64 / 1024.0
    );
    Ok(())
}

fn verdict(f: &Figures, rate: u32) -> &'static str {
    // wrk's rate counts the whole run; allow the ramp at its start.
    let delivered = f.requests_per_second >= f64::from(rate) * 0.97;
    if f.failures() > 0 {
        "not met (errors)"
    } else if !delivered {
        "not met (rate not reached)"
    } else if f.p99_ms < TARGET_P99_MS {
        "p99 < 5 ms at 1,000 req/s: met"
    } else {
        "p99 < 5 ms at 1,000 req/s: not met"
    }
}

fn describe_failures(f: &Figures) -> String {
    if f.failures() == 0 {
        return "0".to_owned();
    }
    f.statuses
        .iter()
        .filter(|(s, _)| !(200..300).contains(s))
        .map(|(s, n)| format!("{n} × {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One API token per bench user, written straight into the database.
pub(super) async fn issue_tokens(b: &Bench) -> Result<Vec<String>> {
    let now = Utc::now();
    let mut out = Vec::new();
    for user in &b.users {
        let mut tx = b.db.begin().await?;
        users::upsert(
            &mut tx,
            &users::User {
                id: UserId::new(user.clone()),
                issuer: "bench".into(),
                user_name: user.clone(),
                email: Some(format!("{user}@example.com")),
                name: None,
                groups: vec!["developers".into()],
                last_login: now,
                idc_lookup: Some(jitgate_server::domain::IdcLookup::UserName {
                    user_name: user.clone(),
                }),
                idc_user_id: None,
                claims_at: Some(now),
                refresh_token: None,
                cut_off_at: None,
            },
        )
        .await?;
        let token = format!("jgt_bench{}", uuid::Uuid::new_v4().simple());
        let hash = {
            use sha2::Digest;
            sha2::Sha256::digest(token.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let record = tokens::ApiToken {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: UserId::new(user.clone()),
            name: "bench".into(),
            created_at: now,
            expires_at: now + TimeDelta::days(1),
            last_used_at: None,
            revoked_at: None,
        };
        tokens::insert(&mut tx, &record, &hash).await?;
        tx.commit().await?;
        out.push(token);
    }
    Ok(out)
}

/// One create per token through the API.
async fn warm_up(url: &str, tokens: &[String]) -> Result<()> {
    let client = reqwest::Client::new();
    for token in tokens {
        let response = client
            .post(url)
            .bearer_auth(token)
            .header("Content-Type", "application/json")
            .body(CREATE_BODY)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "warm-up create failed: {} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
    }
    Ok(())
}

fn person(b: &Bench, user: &str) -> jitgate_core::domain::Actor {
    b.broker
        .rules()
        .actor(UserId::new(user.to_owned()), vec!["developers".into()])
}

fn draft() -> Draft {
    Draft {
        profile: "reviewed".into(),
        account: ACCOUNT.into(),
        os_user: "app".into(),
        duration: Duration::from_secs(3600),
        reason: "benchmark".into(),
        ticket: None,
    }
}
