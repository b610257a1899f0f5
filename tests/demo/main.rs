//! `jitgate-demo`: `make demo`. It stands up the world with the test kit
//! (`stage.rs`: the AWS peer, the OpenID provider peer, the Slack peer and
//! `jitgate-server` on SQLite),
//! prints where everything is, and either leaves it running for a browser until Ctrl-C
//! (at a terminal) or runs the scripted walk-through and exits (no terminal on stdin, or
//! `JITGATE_DEMO_EXIT=1`; `JITGATE_DEMO_SCRIPTED=1` runs it at a terminal too).
//!
//! In the walk-through the people first sign in on the running server's web sign-in (through the OpenID
//! provider peer, as a browser would) and the demo shows what `GET /api/v1/me` says of
//! them. Then this program plays the people: it drives requests through the
//! `jitgate_server` broker in-process, on the same database as the running
//! `jitgate-server`, as the web app does. The server process does the rest
//! (provisioning, activation, expiry, revocation) against the AWS peer, and every step
//! prints what the database, the peer and the identity store really hold, so nothing
//! shown here is made up by the demo itself.

// The tests, the benchmark and the demo stand outside the server and compare what it did
// with real time, so they read the wall clock (the server reads it only through its Clock).
#![allow(clippy::disallowed_methods)]
// Test code: a failed expectation panics where it failed (the lint floor of
// Cargo.toml is for the server and the core).
#![allow(clippy::indexing_slicing, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_ssoadmin::config::Credentials;
use chrono::{DateTime, Utc};
use clap::Parser;
use jitgate_server::aws::IdcClient;
use jitgate_server::broker::{Action, Broker, Catalog, CatalogCell, Wakers};
use jitgate_server::config::{Config, load_from_file};
use jitgate_server::domain::RequestRecord;
use jitgate_server::domain::{Draft, EndReason, RequestId, RequestState, UserId};
use jitgate_server::store::requests;
use jitgate_server::store::{Db, audit as audit_store};
use serde::Deserialize;

/// How often to look at a request while waiting for the server to act on it.
const POLL: Duration = Duration::from_millis(250);
/// How long the server may take to provision or revoke before the demo gives up.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Interval of the countdown while alice's grant runs out.
const COUNTDOWN_EVERY: Duration = Duration::from_secs(5);

/// The demo's people and their groups (as the OIDC peer has them); they match the AWS
/// peer's seeded users and the demo config's `requester_groups` / `approver_groups`.
const PEOPLE: &[(&str, &[&str])] = &[
    ("alice", &["developers"]),
    ("bob", &["sre"]),
    ("carol", &["sre", "jitgate-admins"]),
];

mod stage;

/// Stands up jitgate with its peers and walks through a grant's life.
#[derive(Parser)]
#[command(name = "jitgate-demo")]
struct Args {}

/// What the walk-through talks to.
struct Target {
    /// The running server's config file (the demo uses its database and AWS settings).
    config: PathBuf,
    /// Base URL of the AWS peer, for its `/_peer/assignments` control API.
    peer: String,
    /// Base URL of the running server, where the people sign in first.
    server: String,
    /// The Slack peer, which brings bob's click over the server's Socket Mode connection.
    slack: Option<String>,
}

/// What `GET /api/v1/me` says of a signed-in person (the fields the demo shows).
#[derive(Debug, Deserialize)]
struct Me {
    user_name: String,
    groups: Vec<String>,
    is_admin: bool,
    requester_of: Vec<String>,
    approver_of: Vec<String>,
}

/// One account assignment as the peer's control API lists it.
#[derive(Debug, Deserialize)]
struct PeerAssignment {
    account_id: String,
    permission_set_arn: String,
    principal_id: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let Args {} = Args::parse();
    match demo().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jitgate-demo: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether an environment variable is set to 1.
fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

async fn demo() -> Result<()> {
    use std::io::IsTerminal;
    let interactive = std::io::stdin().is_terminal() && !flag("JITGATE_DEMO_EXIT");
    let stage = stage::Stage::up().await?;
    println!("\n{}", stage.describe());
    let outcome = walk_and_wait(&stage, interactive).await;
    let stopped = stage.down().await;
    outcome.and(stopped)
}

/// The scripted walk-through when asked for, the browser steps, then (at a terminal)
/// everything keeps running until Ctrl-C or TERM.
async fn walk_and_wait(stage: &stage::Stage, interactive: bool) -> Result<()> {
    if !interactive || flag("JITGATE_DEMO_SCRIPTED") {
        println!(
            "\nScripted walk-through: people sign in on the web, then act through the broker \
             library;\nthe server provisions, expires and revokes in the AWS peer."
        );
        let target = Target {
            config: stage.server.config_path(),
            peer: stage.aws.url().to_owned(),
            server: stage.url.clone(),
            slack: Some(stage.slack.url().to_owned()),
        };
        if let Err(e) = run(&target).await {
            let log = stage.server.log();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            eprintln!("\ndemo: the walk-through failed; last lines of the server's log:");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
            return Err(e);
        }
    }
    let url = &stage.url;
    let peer = stage.aws.url();
    let config = stage.server.config_path();
    println!(
        "\nTry it in a browser (any password):\n  \
         1. Open {url} and sign in as alice. New request: prod-web, account 111111111111,\n     \
         OS user app, 5 minutes, any reason. It waits for an approver (sre).\n  \
         2. In a private window, open {url}, sign in as bob; Approvals -> open it -> Approve.\n  \
         3. As alice, watch it turn active with the time left; the assignment is in the peer:\n       \
         curl -s {peer}/_peer/assignments\n     \
         It expires after 5 minutes (or Revoke it on its page) and the assignment goes away.\n  \
         4. Sign in as carol (admin): Admin -> Audit shows every step; export it as CSV.\n\
         Also: {url}/api/v1/openapi.json, and\n  \
         {server} audit verify --config {config}",
        config = config.display(),
        server = server_binary().display()
    );
    if !interactive {
        return Ok(());
    }
    println!("\nEverything keeps running; press Ctrl-C to stop it.");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    println!();
    Ok(())
}

/// Sends a Slack "Approve" click on request `id` by Slack member `member` as Slack does in
/// Socket Mode: the Slack peer pushes the envelope down the server's WebSocket and waits
/// for its acknowledgement.
async fn slack_click(peer: &str, member: &str, id: RequestId) -> Result<serde_json::Value> {
    let interaction = serde_json::json!({
        "type": "block_actions",
        "user": {"id": member},
        "actions": [{"action_id": "approve", "value": id.to_string()}],
        "response_url": format!("{peer}/response/demo"),
    });
    let http = reqwest::Client::new();
    // The server connects within a second or two of starting.
    for _ in 0..60 {
        let answer: serde_json::Value = http
            .post(format!("{peer}/_peer/socket/push"))
            .json(&serde_json::json!({"payload": interaction, "wait": 3}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if answer["error"] == "no_connection" {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            continue;
        }
        if answer["acked"] != true {
            bail!("the server did not acknowledge the Slack click within 3 s: {answer}");
        }
        return Ok(answer);
    }
    bail!("the server never opened its Slack Socket Mode connection")
}

/// The `jitgate-server` built beside this binary.
fn server_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("jitgate-server")))
        .unwrap_or_else(|| PathBuf::from("jitgate-server"))
}

async fn run(args: &Target) -> Result<()> {
    web_sign_in(args.server.trim_end_matches('/')).await?;
    let demo = Demo::connect(args).await?;
    let alice_request = demo.alice_asks().await?;
    demo.alice_approves_her_own(alice_request).await?;
    demo.alice_asks_for_a_second_os_user().await?;
    let alice = demo.bob_approves(alice_request, args).await?;
    let carol_request = demo.carol_gets_staging().await?;
    demo.carol_revokes(carol_request).await?;
    demo.alice_grant_expires(&alice).await?;
    demo.audit_timeline(alice_request).await
}

/// The broker and the views of AWS the walk-through reports from.
struct Demo {
    broker: Broker<IdcClient>,
    db: Db,
    http: reqwest::Client,
    peer: String,
    identity_store: aws_sdk_identitystore::Client,
    identity_store_id: String,
    run_as_attribute: String,
    /// Permission set ARN → name, so the output names them as the config does.
    set_names: HashMap<String, String>,
}

impl Demo {
    /// One of [`PEOPLE`] as the rules see them.
    fn actor(&self, name: &str) -> jitgate_core::domain::Actor {
        let (id, groups) = person(name);
        self.broker.rules().actor(id, groups)
    }

    /// Builds the broker the way `tests/it/world.rs` (and, later, the web app) does.
    async fn connect(args: &Target) -> Result<Demo> {
        let config = load_from_file(&args.config)
            .with_context(|| format!("loading {}", args.config.display()))?;
        let db = Db::connect(
            config.database.url.expose(),
            config.database.max_connections,
        )
        .await
        .with_context(|| format!("opening the database {}", config.database.url.redacted()))?
        .with_audit_key(config.audit.keys().current().cloned())
        // The demo files requests in process: they are announced in Slack as the
        // server's own would be.
        .with_slack_outbox(config.slack.is_some());
        // The peer accepts any keys; fixed ones keep the demo off the default chain.
        let credentials = Credentials::new("demo", "demo", None, None, "demo");
        let idc = IdcClient::connect_with(&config.aws, Some(credentials.clone()))
            .await
            .context("connecting to IAM Identity Center (the AWS peer)")?;
        let by_name = idc
            .permission_sets_by_name()
            .await
            .context("listing permission sets")?;
        let (catalog, missing) = Catalog::resolve(&config, &by_name);
        if !missing.is_empty() {
            let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
            return Err(anyhow!("{}", names.join("; ")));
        }
        let identity_store = identity_store_client(&config, &args.peer, credentials).await;
        let identity_store_id = idc
            .instance()
            .await
            .context("finding the IAM Identity Center instance (the AWS peer)")?
            .identity_store_id
            .clone();
        let run_as_attribute = config.aws.run_as_attribute.clone();
        let set_names = by_name.into_iter().map(|(name, arn)| (arn, name)).collect();
        // The people act here without signing in: record them as a sign-in would (found
        // in IdC by user name), so the broker knows how to find their IdC users.
        for (name, _) in PEOPLE {
            let (id, groups) = person(name);
            let mut row = jitgate_server::store::users::by_user_name(
                id.as_str(),
                name,
                groups,
                chrono::Utc::now(),
            );
            // As the OpenID provider peer gives it: Slack finds them by it.
            row.email = Some(format!("{name}@example.com"));
            jitgate_server::store::users::save(&db, &row)
                .await
                .context("recording the demo's people")?;
        }
        let broker = Broker::new(
            db.clone(),
            Arc::new(config),
            Arc::new(idc),
            Arc::new(CatalogCell::resolved(catalog)),
            // This process runs no scheduler: the server's workers find the changes
            // with their `poll_interval`, as they would a web app's.
            Arc::new(Wakers::default()),
            Arc::new(jitgate_core::clock::SystemClock),
        );
        Ok(Demo {
            broker,
            db,
            http: reqwest::Client::new(),
            peer: args.peer.trim_end_matches('/').to_owned(),
            identity_store,
            identity_store_id,
            run_as_attribute,
            set_names,
        })
    }

    /// Step 1: a request that needs an approver.
    async fn alice_asks(&self) -> Result<RequestId> {
        step(
            2,
            "alice asks for prod-web as OS user `app` for 45s (reason \"demo: look at the web logs\", ticket DEMO-1)",
        );
        let draft = Draft {
            profile: "prod-web".into(),
            account: "111111111111".into(),
            os_user: "app".into(),
            duration: Duration::from_secs(45),
            reason: "demo: look at the web logs".into(),
            ticket: Some("DEMO-1".into()),
        };
        let stored = self
            .broker
            .submit(&self.actor("alice"), draft, Utc::now())
            .await
            .context("alice's request for prod-web")?;
        let profile = self.profile("prod-web")?;
        detail(&format!("request {}", stored.request.id));
        detail(&format!(
            "state: {} (needs {} approval from {})",
            describe(&stored.request.state),
            profile.approvals_required,
            profile.approver_groups.join(", ")
        ));
        Ok(stored.request.id)
    }

    /// Step 2: nobody approves their own request, admins included.
    async fn alice_approves_her_own(&self, id: RequestId) -> Result<()> {
        step(3, "alice tries to approve her own request");
        match self
            .broker
            .act(&self.actor("alice"), id, Action::Approve, Utc::now())
            .await
        {
            Ok(_) => bail!("alice was allowed to approve her own request"),
            Err(refusal) => detail(&format!("refused: {refusal}")),
        }
        Ok(())
    }

    /// Step 3: in principal-tag mode the OS user lives in one attribute per person.
    async fn alice_asks_for_a_second_os_user(&self) -> Result<()> {
        step(4, "alice also asks for prod-web as `readonly` meanwhile");
        let draft = Draft {
            profile: "prod-web".into(),
            account: "111111111111".into(),
            os_user: "readonly".into(),
            duration: Duration::from_secs(45),
            reason: "demo: a second OS user".into(),
            ticket: Some("DEMO-1".into()),
        };
        match self
            .broker
            .submit(&self.actor("alice"), draft, Utc::now())
            .await
        {
            Ok(stored) => bail!(
                "alice got a second principal-tag request ({}) while one was open",
                stored.request.id
            ),
            Err(refusal) => detail(&format!("refused: {refusal}")),
        }
        Ok(())
    }

    /// Step 4: an approver approves; the server provisions and activates.
    async fn bob_approves(&self, id: RequestId, target: &Target) -> Result<RequestRecord> {
        match &target.slack {
            Some(peer) => {
                step(5, "bob (sre) approves with the Approve button in Slack");
                let ack = slack_click(peer, "UBOB", id).await?;
                detail(&format!(
                    "the click came over the server's Socket Mode WebSocket; acknowledged in {:.0} ms",
                    ack["seconds"].as_f64().unwrap_or_default() * 1000.0
                ));
                let (approved, _) = self
                    .wait_request(id, "approved", |r| {
                        !matches!(r.request.state, RequestState::Pending)
                    })
                    .await?;
                let events = audit_store::for_request(&self.db, &id.to_string()).await?;
                let by_slack = events.iter().any(|e| {
                    e.action == "request.approved"
                        && e.details["via"] == "slack"
                        && e.details["slack_user_id"] == "UBOB"
                });
                if !by_slack {
                    bail!("the approval should be in the audit trail as bob's, via Slack");
                }
                detail(&format!(
                    "state: {}; the audit event says via: slack, member UBOB; the server now \
                     writes the OS user and creates the assignment",
                    describe(&approved.request.state)
                ));
                // The channel message (posted when alice asked) follows the request.
                let messages: serde_json::Value = reqwest::get(format!("{peer}/_peer/messages"))
                    .await?
                    .json()
                    .await?;
                if let Some(message) = messages
                    .as_array()
                    .and_then(|m| m.iter().rev().find(|m| m["channel"] == "CACCESS"))
                {
                    let versions = message["versions"].as_array().map_or(0, Vec::len);
                    let text = message["versions"]
                        .as_array()
                        .and_then(|v| v.last())
                        .and_then(|v| v["text"].as_str())
                        .unwrap_or_default();
                    detail(&format!(
                        "the request's message in #access ({versions} version(s), updated in \
                         place): {text}"
                    ));
                }
            }
            None => {
                step(5, "bob (sre) approves");
                let approved = self
                    .broker
                    .act(&self.actor("bob"), id, Action::Approve, Utc::now())
                    .await
                    .context("bob's approval")?;
                detail(&format!(
                    "state: {}; the server now writes the OS user and creates the assignment",
                    describe(&approved.request.state)
                ));
            }
        }
        let (active, waited) = self
            .wait_request(id, "active", |r| {
                matches!(r.request.state, RequestState::Active { .. })
            })
            .await?;
        detail(&format!(
            "state: {} ({:.1}s after the approval)",
            describe(&active.request.state),
            waited.as_secs_f64()
        ));
        self.show_assignments("alice", active.principal_id.as_str())
            .await?;
        let run_as = self.run_as(active.principal_id.as_str()).await?;
        detail(&format!(
            "identity store: alice's {} = {}",
            self.run_as_attribute,
            show_attribute(&run_as)
        ));
        if run_as.as_deref() != Some("app") {
            bail!("alice's {} should be `app`", self.run_as_attribute);
        }
        Ok(active)
    }

    /// Step 5: an auto-approved profile in session-document mode.
    async fn carol_gets_staging(&self) -> Result<RequestId> {
        step(
            6,
            "carol asks for staging as `deploy` for 30s (auto-approved)",
        );
        let draft = Draft {
            profile: "staging".into(),
            account: "222222222222".into(),
            os_user: "deploy".into(),
            duration: Duration::from_secs(30),
            reason: "demo: deploy to staging".into(),
            ticket: None,
        };
        let stored = self
            .broker
            .submit(&self.actor("carol"), draft, Utc::now())
            .await
            .context("carol's request for staging")?;
        let id = stored.request.id;
        detail(&format!(
            "request {id}: {} at once",
            describe(&stored.request.state)
        ));
        let (active, waited) = self
            .wait_request(id, "active", |r| {
                matches!(r.request.state, RequestState::Active { .. })
            })
            .await?;
        detail(&format!(
            "state: {} ({:.1}s after submitting)",
            describe(&active.request.state),
            waited.as_secs_f64()
        ));
        self.show_assignments("carol", active.principal_id.as_str())
            .await?;
        // session-document mode encodes the OS user in the permission set, not the user.
        let run_as = self.run_as(active.principal_id.as_str()).await?;
        detail(&format!(
            "identity store: carol's {} = {} (session-document mode: the permission set carries the OS user)",
            self.run_as_attribute,
            show_attribute(&run_as)
        ));
        Ok(id)
    }

    /// Step 6: the requester ends her own grant early.
    async fn carol_revokes(&self, id: RequestId) -> Result<()> {
        step(7, "carol revokes her staging grant early");
        let revoked = self
            .broker
            .act(
                &self.actor("carol"),
                id,
                Action::Revoke {
                    comment: Some("demo: done deploying".into()),
                },
                Utc::now(),
            )
            .await
            .context("carol's revocation")?;
        detail(&format!("state: {}", describe(&revoked.request.state)));
        let (settled, waited) = self
            .wait_request(id, "settled (assignment deleted)", |r| {
                r.settled_at.is_some()
            })
            .await?;
        detail(&format!(
            "settled {:.1}s later: the server deleted the assignment",
            waited.as_secs_f64()
        ));
        self.show_assignments("carol", settled.principal_id.as_str())
            .await
    }

    /// Step 7: the timer ends alice's grant on time, then the server cleans up AWS.
    async fn alice_grant_expires(&self, active: &RequestRecord) -> Result<()> {
        let RequestState::Active { expires_at, .. } = active.request.state else {
            bail!("alice's request is no longer active");
        };
        step(
            8,
            &format!(
                "waiting for alice's grant to expire at {}",
                clock(expires_at)
            ),
        );
        let id = active.request.id;
        let deadline = Instant::now() + remaining(expires_at) + SETTLE_TIMEOUT;
        let mut next_countdown = Instant::now();
        let ended = loop {
            let current = self.request(id).await?;
            if let RequestState::Ended { .. } = current.request.state {
                break current;
            }
            if Instant::now() >= next_countdown {
                let left = remaining(expires_at);
                detail(&format!("{}s left", left.as_secs_f64().ceil()));
                next_countdown += COUNTDOWN_EVERY;
            }
            if Instant::now() > deadline {
                bail!(
                    "alice's grant was still {} {}s after it should have expired; see the server log",
                    describe(&current.request.state),
                    SETTLE_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(POLL).await;
        };
        if let RequestState::Ended { ended_at, .. } = ended.request.state {
            detail(&format!(
                "state: {} at {} ({}ms after expires_at)",
                describe(&ended.request.state),
                clock(ended_at),
                (ended_at - expires_at).num_milliseconds()
            ));
        }
        let (settled, waited) = self
            .wait_request(id, "settled (assignment deleted)", |r| {
                r.settled_at.is_some()
            })
            .await?;
        detail(&format!(
            "settled {:.1}s later: the server deleted the assignment",
            waited.as_secs_f64()
        ));
        self.show_assignments("alice", settled.principal_id.as_str())
            .await?;
        // The attribute is cleared after the last delete, so it may lag the settling.
        let cleared = self
            .wait_run_as_cleared(settled.principal_id.as_str())
            .await?;
        detail(&format!(
            "identity store: alice's {} = {}",
            self.run_as_attribute,
            show_attribute(&cleared)
        ));
        Ok(())
    }

    /// Step 8: what the audit trail recorded about alice's request, and the chain check.
    async fn audit_timeline(&self, id: RequestId) -> Result<()> {
        step(9, "the audit trail of alice's request");
        let events = audit_store::for_request(&self.db, &id.to_string())
            .await
            .context("reading the audit trail")?;
        for event in &events {
            detail(&format!(
                "{}  {:<8} {}",
                event.at.format("%H:%M:%S%.3f"),
                event.actor,
                event.action
            ));
        }
        match jitgate_server::trail::verify(&self.db, &self.broker.config().audit.keys())
            .await
            .context("verifying the audit chain")?
        {
            Ok(verified) => {
                detail(&format!(
                    "hash chain verified: {} events, head {}",
                    verified.events,
                    verified.head_hash.get(..16).unwrap_or(&verified.head_hash)
                ));
                Ok(())
            }
            Err(broken) => bail!("{broken}"),
        }
    }

    fn profile(&self, name: &str) -> Result<&jitgate_server::config::ProfileConfig> {
        self.broker
            .config()
            .profile(name)
            .with_context(|| format!("the demo config has no profile `{name}`"))
    }

    async fn request(&self, id: RequestId) -> Result<RequestRecord> {
        requests::get(&self.db, id)
            .await
            .with_context(|| format!("reading request {id}"))?
            .with_context(|| format!("request {id} is not in the database"))
    }

    /// Polls request `id` until `done` holds; returns it and how long that took.
    async fn wait_request(
        &self,
        id: RequestId,
        what: &str,
        done: impl Fn(&RequestRecord) -> bool,
    ) -> Result<(RequestRecord, Duration)> {
        let start = Instant::now();
        loop {
            let current = self.request(id).await?;
            if done(&current) {
                return Ok((current, start.elapsed()));
            }
            if start.elapsed() > SETTLE_TIMEOUT {
                bail!(
                    "request {id} was not {what} after {}s (it is {}); see the server log",
                    SETTLE_TIMEOUT.as_secs(),
                    describe(&current.request.state)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Prints the peer's assignments of `principal_id`, or that there are none.
    async fn show_assignments(&self, who: &str, principal_id: &str) -> Result<()> {
        let held: Vec<PeerAssignment> = self
            .peer_assignments()
            .await?
            .into_iter()
            .filter(|a| a.principal_id == principal_id)
            .collect();
        if held.is_empty() {
            detail(&format!(
                "AWS peer: {who} (principal {principal_id}) holds no assignment"
            ));
        }
        for a in &held {
            let set = self
                .set_names
                .get(&a.permission_set_arn)
                .unwrap_or(&a.permission_set_arn);
            detail(&format!(
                "AWS peer: {who} (principal {principal_id}) holds {set} on account {}",
                a.account_id
            ));
        }
        Ok(())
    }

    async fn peer_assignments(&self) -> Result<Vec<PeerAssignment>> {
        let url = format!("{}/_peer/assignments", self.peer);
        self.http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("GET {url}"))?
            .json()
            .await
            .with_context(|| format!("reading the answer of GET {url}"))
    }

    /// The run-as attribute of a person, read back from the identity store.
    async fn run_as(&self, principal_id: &str) -> Result<Option<String>> {
        let user = self
            .identity_store
            .describe_user()
            .identity_store_id(&self.identity_store_id)
            .user_id(principal_id)
            .send()
            .await
            .with_context(|| format!("identitystore:DescribeUser {principal_id}"))?;
        // The demo config maps SSMSessionRunAs to nickName, as the example config does.
        match self.run_as_attribute.as_str() {
            "nickName" => Ok(user.nick_name().map(str::to_owned)),
            "title" => Ok(user.title().map(str::to_owned)),
            other => {
                bail!("the demo reads nickName or title, not `{other}` (aws.run_as_attribute)")
            }
        }
    }

    async fn wait_run_as_cleared(&self, principal_id: &str) -> Result<Option<String>> {
        let start = Instant::now();
        loop {
            let value = self.run_as(principal_id).await?;
            if value.is_none() {
                return Ok(value);
            }
            if start.elapsed() > SETTLE_TIMEOUT {
                bail!(
                    "{} of {principal_id} still {} after {}s; see the server log",
                    self.run_as_attribute,
                    show_attribute(&value),
                    SETTLE_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Step 1: alice, bob and carol sign in on the web, as the printed walk-through tells a
/// person to, and the API says who they are and what they may do.
async fn web_sign_in(server: &str) -> Result<()> {
    step(
        1,
        &format!("alice, bob and carol sign in at {server} (OIDC provider peer)"),
    );
    for (name, _) in PEOPLE {
        // One cookie jar per person, as separate browser windows would have.
        let client = testkit::browser()?;
        let outcome = testkit::sign_in(&client, server, name)
            .await
            .with_context(|| format!("{name}'s web sign-in"))?;
        if !outcome.status.is_redirection() {
            bail!(
                "{name}'s sign-in answered {} instead of signing in: {}",
                outcome.status,
                outcome.body
            );
        }
        let url = format!("{server}/api/v1/me");
        let me: Me = client
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("GET {url} as {name}"))?
            .json()
            .await
            .with_context(|| format!("reading GET {url}"))?;
        let list = |v: &[String]| {
            if v.is_empty() {
                "-".to_owned()
            } else {
                v.join(", ")
            }
        };
        detail(&format!(
            "{:<6} groups {}; requests {}; approves {}{}",
            me.user_name,
            list(&me.groups),
            list(&me.requester_of),
            list(&me.approver_of),
            if me.is_admin { "; admin" } else { "" }
        ));
    }
    Ok(())
}

/// An identity-store client on the peer, to read back what the server wrote.
async fn identity_store_client(
    config: &Config,
    peer: &str,
    credentials: Credentials,
) -> aws_sdk_identitystore::Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(config.aws.region.clone()))
        .endpoint_url(peer)
        .credentials_provider(credentials)
        .load()
        .await;
    aws_sdk_identitystore::Client::new(&shared)
}

/// One of [`PEOPLE`]: their jitgate user id and groups, as the sign-in will hand them
/// to the broker.
fn person(name: &str) -> (UserId, Vec<String>) {
    let groups = PEOPLE
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, groups)| groups.iter().map(|g| (*g).to_owned()).collect())
        .unwrap_or_default();
    // The subject the demo's OpenID provider gives them, so the in-process actions and a
    // later sign-in in the browser are the same jitgate user.
    (UserId::new(format!("sub-{name}")), groups)
}

/// A request state in a few words.
fn describe(state: &RequestState) -> String {
    match state {
        RequestState::Active { expires_at, .. } => {
            format!("active, expires at {}", clock(*expires_at))
        }
        RequestState::Ended {
            why: EndReason::Expired,
            ..
        } => "ended (expired)".to_owned(),
        RequestState::Ended {
            why: EndReason::Revoked { by, .. },
            ..
        } => format!("ended (revoked by {by})"),
        RequestState::Failed { reason, .. } => format!("failed: {reason}"),
        other => other.name().to_string(),
    }
}

fn show_attribute(value: &Option<String>) -> String {
    match value {
        Some(v) => format!("`{v}`"),
        None => "(not set)".to_owned(),
    }
}

fn clock(t: DateTime<Utc>) -> String {
    t.format("%H:%M:%S UTC").to_string()
}

/// Time from now until `t`, zero once it has passed.
fn remaining(t: DateTime<Utc>) -> Duration {
    (t - Utc::now()).to_std().unwrap_or(Duration::ZERO)
}

fn step(n: u32, title: &str) {
    println!("\n{n}. {title}");
}

fn detail(line: &str) {
    println!("   {line}");
}
