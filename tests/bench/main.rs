//! `jitgate-bench`: revocation lag and drain rate of a real `jitgate-server` (release
//! build) against the AWS peer enforcing IAM Identity Center's limits (20 admin calls/s,
//! 10 assignment operations in progress), and the server's memory with many grants.
//!
//! Scenarios:
//! - `spread`: N grants (default 200) whose expiries are spread evenly over a minute;
//! - `burst`: N grants (default 1,000) all expiring within the same second;
//! - `rss`: N active grants (default 10,000) loaded into the database, then the server's
//!   resident memory once it is up and idle;
//! - `sessions`: N grants (default 50) with a live Session Manager session each, expiring
//!   in the same second: the lag until each session is ended (sessions.rs);
//! - `api`: the JSON API's latency under load (api.rs).
//!
//! Lag of one grant = when its assignment was really gone in the peer (the peer's
//! completion time of the delete) minus its `expires_at`. Grants are provisioned for
//! real through the server; then their `expires_at` is rewritten in the database to the
//! scenario's schedule (provisioning 1,000 grants through a 20/s quota takes minutes and
//! would smear any schedule set at request time).

// The tests, the benchmark and the demo stand outside the server and compare what it did
// with real time, so they read the wall clock (the server reads it only through its Clock).
#![allow(clippy::disallowed_methods)]
// Test code: a failed expectation panics where it failed (the lint floor of
// Cargo.toml is for the server and the core).
#![allow(clippy::indexing_slicing, clippy::expect_used, clippy::panic)]

mod api;
mod sessions;
mod ssh;
use testkit as harness;
mod wrk;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_ssoadmin::config::Credentials;
use chrono::{DateTime, TimeDelta, Utc};
use clap::{Parser, ValueEnum};
use futures::stream::{self, StreamExt, TryStreamExt};
use jitgate_server::aws::IdcClient;
use jitgate_server::broker::{Broker, Catalog, CatalogCell, Wakers};
use jitgate_server::config::load_from_str;
use jitgate_server::domain::RequestRecord;
use jitgate_server::domain::{
    AccountId, Draft, OsUser, Request, RequestId, RequestState, RunAsMode, StateName, UserId,
};
use jitgate_server::store::Db;
use jitgate_server::store::requests;
use serde_json::json;

use harness::{
    AwsPeer, ConfigBuilder, OpKind, PeerKnobs, ProfileSpec, ServerProcess, sqlite_url_in,
};

const ACCOUNT: &str = "111111111111";
/// IAM Identity Center's admin API quota and outstanding-operation limit, enforced by
/// the peer and configured in the server alike.
const TPS: u32 = 20;
const OUTSTANDING: u32 = 10;

#[derive(Parser)]
#[command(about = "Measure jitgate's revocation lag, drain rate and memory")]
struct Args {
    /// Scenarios to run.
    #[arg(long, value_enum, num_args = 1.., default_values_t = [Scenario::Spread, Scenario::Burst, Scenario::Rss, Scenario::Sessions, Scenario::Api, Scenario::Ssh])]
    scenario: Vec<Scenario>,
    #[arg(long, default_value_t = 200)]
    spread_grants: usize,
    #[arg(long, default_value_t = 1000)]
    burst_grants: usize,
    #[arg(long, default_value_t = 10_000)]
    rss_grants: usize,
    #[arg(long, default_value_t = 50)]
    session_grants: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Spread,
    Burst,
    Rss,
    Sessions,
    Api,
    Ssh,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    println!(
        "# jitgate-bench ({})\n",
        Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    println!(
        "Peer limits: {TPS} sso-admin calls/s, {OUTSTANDING} assignment operations in progress; \
         server: release build, SQLite, same limits configured.\n"
    );
    for scenario in &args.scenario {
        match scenario {
            Scenario::Spread => {
                let report = revocations(
                    args.spread_grants,
                    Schedule::SpreadOver(Duration::from_secs(60)),
                )
                .await?;
                report.print(&format!(
                    "spread: {} grants expiring evenly over one minute",
                    args.spread_grants
                ));
            }
            Scenario::Burst => {
                let report = revocations(args.burst_grants, Schedule::SameSecond).await?;
                report.print(&format!(
                    "burst: {} grants expiring in the same second",
                    args.burst_grants
                ));
            }
            Scenario::Rss => rss(args.rss_grants).await?,
            Scenario::Sessions => sessions::run(args.session_grants).await?,
            Scenario::Api => api::run().await?,
            Scenario::Ssh => ssh::run().await?,
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Schedule {
    SpreadOver(Duration),
    SameSecond,
}

/// A running peer + server + in-process broker on one SQLite database.
struct Bench {
    peer: AwsPeer,
    server: ServerProcess,
    db: Db,
    broker: Broker<IdcClient>,
    users: Vec<String>,
    _dir: tempfile::TempDir,
}

async fn start(grants: usize) -> Result<Bench> {
    let dir = tempfile::tempdir()?;
    // The peer completes operations at once: the lag measured is jitgate's part (real
    // IdC adds its own seconds); its call-rate and in-progress limits stay on.
    let peer = AwsPeer::start(PeerKnobs {
        assignment_delay_ms: 0,
        tps_limit: TPS,
        max_outstanding: OUTSTANDING,
        ..PeerKnobs::default()
    })
    .await?;
    let users: Vec<String> = (0..grants).map(|i| format!("user{i:05}")).collect();
    let seed_users: Vec<_> = users
        .iter()
        .map(|u| json!({"user_name": u, "email": format!("{u}@example.com"), "display_name": format!("Bench {u}")}))
        .collect();
    let seed = peer
        .seed(&json!({"users": seed_users, "permission_sets": [{"name": "JitSsm"}], "accounts": [ACCOUNT]}))
        .await?;
    let profile = ProfileSpec {
        auto_approve: true,
        max_duration: "24h".into(),
        ..ProfileSpec::default()
    };
    // Requests to this profile stay pending: the API benchmark lists and creates them
    // without provisioning work in the background.
    let reviewed = ProfileSpec {
        name: "reviewed".into(),
        max_duration: "24h".into(),
        ..ProfileSpec::default()
    };
    let config_toml = ConfigBuilder::from_seed(&sqlite_url_in(dir.path()), peer.url(), &seed)?
        .profile(profile)
        .profile(reviewed)
        .tps(TPS)
        .max_outstanding(OUTSTANDING)
        .workers(32)
        // The API benchmark creates thousands of requests per user.
        .raw("[auth]\nmax_open_requests = 1000000\n")
        .render();
    let server = ServerProcess::spawn_with(&config_toml, &[("RUST_LOG", "warn")]).await?;
    let config = Arc::new(load_from_str(&config_toml, harness::test_env())?);
    let db = harness::keyed(Db::connect(config.database.url.expose(), 8).await?);
    // The people act in process, without signing in: their user rows say how IdC
    // finds them, as a sign-in would have recorded.
    for user in &users {
        let row = jitgate_server::store::users::by_user_name(
            user,
            user,
            vec!["developers".into()],
            chrono::Utc::now(),
        );
        jitgate_server::store::users::save(&db, &row).await?;
    }
    let idc = IdcClient::connect_with(
        &config.aws,
        Some(Credentials::new("bench", "bench", None, None, "bench")),
    )
    .await?;
    let (catalog, missing) = Catalog::resolve(&config, &idc.permission_sets_by_name().await?);
    anyhow::ensure!(missing.is_empty(), "{missing:?}");
    let broker = Broker::new(
        db.clone(),
        config,
        Arc::new(idc),
        Arc::new(CatalogCell::resolved(catalog)),
        Arc::new(Wakers::default()),
        Arc::new(jitgate_core::clock::SystemClock),
    );
    Ok(Bench {
        peer,
        server,
        db,
        broker,
        users,
        _dir: dir,
    })
}

/// Counts of requests per state.
async fn count(db: &Db, state: StateName) -> Result<i64> {
    Ok(requests::count_by_state(db)
        .await?
        .into_iter()
        .find(|(s, _)| s == state.as_str())
        .map_or(0, |(_, n)| n))
}

async fn wait_count(db: &Db, state: StateName, n: usize, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    while count(db, state).await? < n as i64 {
        if started.elapsed() > timeout {
            bail!("timed out waiting for {n} {state} requests");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(started.elapsed())
}

struct Report {
    grants: usize,
    burst: bool,
    provision_secs: f64,
    lags: Vec<f64>,
    drain_secs: f64,
    sso_calls: u64,
    throttled: u64,
    peak_calls_per_sec: u64,
    rss_kib: u64,
    hwm_kib: u64,
}

impl Report {
    fn print(&self, title: &str) {
        let mut lags = self.lags.clone();
        lags.sort_by(f64::total_cmp);
        let at = |q: f64| lags[((lags.len() as f64 - 1.0) * q).round() as usize];
        let calls_per_revoke = self.sso_calls as f64 / self.grants as f64;
        // Each revocation needs at least a delete and one status read: 2 admin calls.
        let allowed = f64::from(TPS) / 2.0;
        let drained = self.grants as f64 / self.drain_secs;
        println!("## {title}\n");
        println!("| figure | value |\n| --- | --- |");
        println!(
            "| provisioning (all grants active) | {:.1} s |",
            self.provision_secs
        );
        println!("| revocation lag p50 | {:.3} s |", at(0.50));
        println!("| revocation lag p99 | {:.3} s |", at(0.99));
        println!("| revocation lag max | {:.3} s |", at(1.0));
        // Only a burst drains as fast as it can; a spread schedule sets its own pace.
        if self.burst {
            println!(
                "| drain: first expiry to last assignment gone | {:.1} s ({drained:.2} revocations/s) |",
                self.drain_secs
            );
            println!(
                "| quota-limited maximum ({TPS} calls/s, 2 calls per revocation) | {allowed:.2} revocations/s → {:.0}% reached |",
                100.0 * drained / allowed
            );
        }
        println!(
            "| sso-admin calls per revocation | {calls_per_revoke:.2} ({} throttled by the peer) |",
            self.throttled
        );
        println!(
            "| peak sso-admin calls in one second (peer) | {} |",
            self.peak_calls_per_sec
        );
        println!(
            "| server RSS after the run / peak | {:.1} MiB / {:.1} MiB |\n",
            self.rss_kib as f64 / 1024.0,
            self.hwm_kib as f64 / 1024.0
        );
    }
}

async fn revocations(grants: usize, schedule: Schedule) -> Result<Report> {
    let b = start(grants).await?;
    eprintln!("provisioning {grants} grants through the {TPS}/s quota...");
    let started = Instant::now();
    let ids: Vec<RequestId> = stream::iter(b.users.iter().cloned())
        .map(|user| submit(&b.broker, user))
        .buffer_unordered(16)
        .try_collect()
        .await?;
    wait_count(&b.db, StateName::Active, grants, Duration::from_secs(1200)).await?;
    let provision_secs = started.elapsed().as_secs_f64();

    b.peer.reset().await?;
    let first = Utc::now() + TimeDelta::seconds(5);
    let expiries = reschedule(&b.db, &ids, first, schedule).await?;
    eprintln!("expiring {grants} grants ({schedule:?})...");
    let last_expiry = expiries.values().max().copied().unwrap_or(first);
    let timeout =
        (last_expiry - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(1200);
    wait_settled(&b.db, &ids, timeout).await?;

    let history = b.peer.history().await?;
    let principal_of: HashMap<String, RequestId> = {
        let mut map = HashMap::new();
        for id in &ids {
            let stored = requests::get(&b.db, *id)
                .await?
                .context("request vanished")?;
            map.insert(stored.principal_id.0, *id);
        }
        map
    };
    let mut lags = Vec::new();
    let mut last_gone = first.timestamp_millis() as f64 / 1000.0;
    for op in history.iter().filter(|op| op.op == OpKind::Delete) {
        let (Some(id), Some(done)) = (principal_of.get(&op.principal_id), op.completed_at) else {
            continue;
        };
        let expires = expiries.get(id).context("no expiry for request")?;
        lags.push(done - expires.timestamp_millis() as f64 / 1000.0);
        last_gone = last_gone.max(done);
    }
    if lags.len() != grants {
        bail!("{} deletions seen for {grants} grants", lags.len());
    }
    let stats = b.peer.stats().await?;
    let sso_calls = stats["actions"]
        .as_object()
        .map(|a| {
            a.iter()
                .filter(|(k, _)| k.starts_with("sso-admin:"))
                .filter_map(|(_, v)| v.as_u64())
                .sum()
        })
        .unwrap_or(0);
    let (rss_kib, hwm_kib) = memory(b.server.pid())?;
    Ok(Report {
        grants,
        burst: matches!(schedule, Schedule::SameSecond),
        provision_secs,
        lags,
        drain_secs: last_gone - first.timestamp_millis() as f64 / 1000.0,
        sso_calls,
        throttled: stats["throttled"].as_u64().unwrap_or(0),
        peak_calls_per_sec: stats["peak_sso_admin_calls_per_second"]
            .as_u64()
            .unwrap_or(0),
        rss_kib,
        hwm_kib,
    })
}

async fn submit(broker: &Broker<IdcClient>, user: String) -> Result<RequestId> {
    let actor = broker
        .rules()
        .actor(UserId::new(user), vec!["developers".into()]);
    let draft = Draft {
        profile: "prod-web".into(),
        account: ACCOUNT.into(),
        os_user: "app".into(),
        duration: Duration::from_secs(3 * 3600),
        reason: "benchmark".into(),
        ticket: None,
    };
    Ok(broker.submit(&actor, draft, Utc::now()).await?.request.id)
}

/// Rewrites the active grants' `expires_at` to the scenario's schedule, starting at `first`.
async fn reschedule(
    db: &Db,
    ids: &[RequestId],
    first: DateTime<Utc>,
    schedule: Schedule,
) -> Result<HashMap<RequestId, DateTime<Utc>>> {
    let step = match schedule {
        Schedule::SpreadOver(over) => over / ids.len().max(1) as u32,
        Schedule::SameSecond => Duration::from_secs(1) / ids.len().max(1) as u32,
    };
    let mut expiries = HashMap::new();
    let mut tx = db.begin().await?;
    for (i, id) in ids.iter().enumerate() {
        let mut stored = requests::lock(&mut tx, *id)
            .await?
            .context("request vanished")?;
        let RequestState::Active { activated_at, .. } = stored.request.state else {
            bail!("request {id} is not active");
        };
        let expires_at = first + TimeDelta::from_std(step * i as u32)?;
        stored.request.state = RequestState::Active {
            activated_at,
            expires_at,
        };
        requests::save(&mut tx, &stored, Utc::now()).await?;
        expiries.insert(*id, expires_at);
    }
    tx.commit().await?;
    Ok(expiries)
}

async fn wait_settled(db: &Db, ids: &[RequestId], timeout: Duration) -> Result<()> {
    let started = Instant::now();
    for id in ids {
        loop {
            let stored = requests::get(db, *id).await?.context("request vanished")?;
            if stored.settled_at.is_some() {
                break;
            }
            if started.elapsed() > timeout {
                bail!("timed out waiting for {id} to be settled");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Restarts the server on the same config; returns how long it took to answer `/readyz`.
async fn restart(b: &mut Bench) -> Result<Duration> {
    let config = std::fs::read_to_string(b.server.config_path())?;
    b.server.terminate().await?;
    let started = Instant::now();
    b.server = ServerProcess::spawn_with(&config, &[("RUST_LOG", "warn")]).await?;
    Ok(started.elapsed())
}

/// Resident and peak resident memory of a process, in KiB.
fn memory(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// Loads `grants` active grants straight into the database (no AWS work: they are
/// already provisioned as far as the server knows), starts the server and reads its
/// memory once it is up and has run its first passes.
async fn rss(grants: usize) -> Result<()> {
    let b = start(1).await?;
    let now = Utc::now();
    let mut tx = b.db.begin().await?;
    for i in 0..grants {
        let request = Request {
            id: RequestId::new_v4(),
            requester: UserId::new(format!("load{i:05}")),
            profile: "prod-web".into(),
            account: AccountId::parse(ACCOUNT)?,
            os_user: OsUser::parse("app")?,
            run_as_mode: RunAsMode::PrincipalTag,
            duration: Duration::from_secs(8 * 3600),
            reason: "memory benchmark".into(),
            ticket: None,
            created_at: now,
            approvals: Vec::new(),
            extension: None,
            state: RequestState::Active {
                activated_at: now,
                expires_at: now + TimeDelta::hours(8) + TimeDelta::seconds(i as i64),
            },
        };
        let stored = RequestRecord {
            request,
            principal_id: format!("principal-{i:05}").into(),
            permission_set_arn: "arn:aws:sso:::permissionSet/ssoins-0/ps-0".into(),
            settled_at: None,
        };
        requests::insert(&mut tx, &stored).await?;
    }
    tx.commit().await?;
    // Restart so the measured process has only ever seen the loaded database.
    let mut b = b;
    let ready = restart(&mut b).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (rss, hwm) = memory(b.server.pid())?;
    println!("## rss: {grants} active grants\n");
    println!("| figure | value |\n| --- | --- |");
    println!("| server RSS, idle | {:.1} MiB |", rss as f64 / 1024.0);
    println!("| server peak RSS | {:.1} MiB |", hwm as f64 / 1024.0);
    println!(
        "| start to /readyz (incl. IdC discovery against the peer) | {} ms |\n",
        ready.as_millis()
    );
    Ok(())
}
