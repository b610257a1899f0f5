//! `jitgate-server`: the broker process and its admin commands.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use jitgate_core::clock::{Clock, SystemClock};
use jitgate_server::audit;
use jitgate_server::aws::{IdcClient, MemberClients};
use jitgate_server::broker::{Broker, CatalogCell, Wakers};
use jitgate_server::config::{self, Config, SlackMode};
use jitgate_server::http::{AppState, router};
use jitgate_server::oidc::Provider;
use jitgate_server::scheduler::{LeaseHolder, Scheduler, reclaim_leases};
use jitgate_server::store::{Db, sessions};
use jitgate_server::trail::{self, ExportFormat};

#[derive(Parser)]
#[command(
    name = "jitgate-server",
    version,
    about = "Just-in-time SSM access broker for AWS EC2"
)]
struct Cli {
    /// Config file (TOML); every key can be overridden with JITGATE_<SECTION>_<KEY>.
    #[arg(
        long,
        short,
        global = true,
        env = "JITGATE_CONFIG",
        default_value = "jitgate.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker: HTTP listener, expiry timers, provisioning workers, sweep.
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Validate the config and print it as loaded, secrets redacted; exit 1 on errors.
    CheckConfig,
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Who a person is in IAM Identity Center.
    Identity {
        #[command(subcommand)]
        command: IdentityCommand,
    },
}

#[derive(Subcommand)]
enum IdentityCommand {
    /// Forget the IAM Identity Center user bound to a person (audited), so their next
    /// sign-in and request bind the one their sign-in then points to. For a person whose
    /// account changed at the identity provider on purpose.
    Rebind {
        /// The person's jitgate user id (the OIDC subject, as the audit trail shows it).
        #[arg(long)]
        user: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain, checking each event's keyed hash; exit 1 naming the first
    /// bad event. Needs the current key and, after a rotation, the earlier ones.
    Verify {
        /// A chain head recorded elsewhere (the server logs it; `SEQ:HASH`): the chain
        /// must still hold event SEQ with this hash.
        #[arg(long, value_name = "SEQ:HASH")]
        head: Option<String>,
    },
    /// Write events as JSON lines or CSV to standard output.
    Export {
        /// Only events at or after this time: RFC 3339 (2026-11-01T00:00:00Z), a date
        /// (2026-11-01, UTC) or an age (24h, 7d).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(cli.command, Command::Serve));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::CheckConfig = cli.command {
        return check_config(&cli.config);
    }
    let config = Arc::new(load(&cli.config)?);
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let db = open(&config, true).await?;
            db.migrate().await.context("migrating the database")?;
            eprintln!("database schema is up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { command } => {
            let db = open(&config, false).await?;
            match command {
                AuditCommand::Verify { head } => {
                    let head = head.as_deref().map(parse_head).transpose()?;
                    verify(&db, &config.audit.keys(), head).await
                }
                AuditCommand::Export { since, format } => {
                    let since = since.as_deref().map(parse_since).transpose()?;
                    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                    let n = trail::export(&db, since, format, &mut out).await?;
                    eprintln!("exported {n} events");
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Command::Identity {
            command: IdentityCommand::Rebind { user },
        } => {
            let db = open(&config, false)
                .await?
                .with_audit_key(config.audit.keys().current().cloned());
            if jitgate_server::store::users::get(&db, &user)
                .await?
                .is_none()
            {
                bail!(
                    "no jitgate user `{user}` has signed in; give the OIDC subject as the audit trail shows it"
                );
            }
            let operator = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
            let actor = format!("admin command ({operator})");
            let was = jitgate_server::broker::unbind(&db, &user, &actor, SystemClock.now()).await?;
            match was {
                Some(idc) => eprintln!(
                    "{user} is no longer bound to IAM Identity Center user {idc}; their next request binds anew"
                ),
                None => eprintln!("{user} was not bound to any IAM Identity Center user"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig => Ok(ExitCode::SUCCESS),
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Ok(config::load_from_file(path)?)
}

fn check_config(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    match config::load_from_file(path) {
        Ok(config) => {
            print!(
                "{}",
                toml::to_string_pretty(&config).context("rendering the config")?
            );
            eprintln!("{}: configuration OK", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn open(config: &Config, create: bool) -> anyhow::Result<Db> {
    let url = config.database.url.expose();
    if !create
        && let Some(path) = jitgate_server::store::sqlite_path(url)
        && !path.is_empty()
        && !path.contains(":memory:")
        && !std::path::Path::new(path).exists()
    {
        bail!(
            "no database at {path} (database.url); run `jitgate-server migrate` or `serve` first"
        );
    }
    Db::connect(url, config.database.max_connections)
        .await
        .with_context(|| format!("connecting to {}", config.database.url.redacted()))
}

async fn verify(
    db: &Db,
    keys: &audit::AuditKeys,
    head: Option<(i64, String)>,
) -> anyhow::Result<ExitCode> {
    match trail::verify(db, keys).await? {
        Ok(v) => {
            if let Some((seq, hash)) = head {
                let held = trail::hash_of(db, seq).await?;
                if held.as_deref() != Some(hash.as_str()) {
                    println!(
                        "audit chain BROKEN at event {seq}: the recorded head says its hash is \
                         {hash}, the database holds {}",
                        held.as_deref().unwrap_or("no such event")
                    );
                    return Ok(ExitCode::FAILURE);
                }
            }
            let keyed = match v.keyed_from {
                Some(1) => "all keyed".to_owned(),
                Some(first) => format!("keyed from event {first}"),
                None => "none keyed".to_owned(),
            };
            println!(
                "audit chain OK: {} events ({keyed}), head {}:{}",
                v.events, v.events, v.head_hash
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(broken) => {
            println!("audit chain BROKEN at event {}: {}", broken.seq, broken.why);
            Ok(ExitCode::FAILURE)
        }
    }
}

fn parse_head(text: &str) -> anyhow::Result<(i64, String)> {
    let parsed = text.split_once(':').and_then(|(seq, hash)| {
        let hash = hash.trim().to_ascii_lowercase();
        let hex = hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit());
        Some((seq.trim().parse::<i64>().ok().filter(|n| *n > 0)?, hash)).filter(|_| hex)
    });
    parsed.ok_or_else(|| {
        anyhow::anyhow!(
            "--head takes SEQ:HASH as the server logs it (\"audit chain head\" lines), e.g. \
             1234:9f86d081…, with the 64 hex digits of the hash"
        )
    })
}

fn parse_since(text: &str) -> anyhow::Result<DateTime<Utc>> {
    jitgate_core::parse::since(text, SystemClock.now()).map_err(|e| anyhow::anyhow!("--since {e}"))
}

async fn serve(config: Arc<Config>) -> anyhow::Result<ExitCode> {
    let db = open(&config, true)
        .await?
        .with_audit_key(config.audit.keys().current().cloned())
        .with_slack_outbox(config.slack.is_some());
    db.migrate().await.context("migrating the database")?;
    trail::record_key(&db, SystemClock.now())
        .await
        .context("recording the audit key in the chain")?;
    tokio::spawn(trail::log_head_every(
        db.clone(),
        config.audit.head_log_every.get(),
    ));
    db.checkpoint_in_background(Duration::from_millis(250))
        .await
        .context("setting up WAL checkpoints")?;
    // Neither IdC nor the identity provider is called before the scheduler runs: one of
    // them being down must not stop revocations. Both are reached in the background.
    let idc = IdcClient::connect(&config.aws)
        .await
        .context("setting up the AWS clients")?;
    let wakers = Arc::new(Wakers::default());
    let broker = Broker::new(
        db.clone(),
        config.clone(),
        Arc::new(idc),
        Arc::new(CatalogCell::default()),
        wakers,
        Arc::new(SystemClock),
    );
    // Bound before the scheduler starts: a predecessor on the same listen address (and
    // so the same default node id) is then known to be gone, and its leases are ours.
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("binding {} (server.listen)", config.server.listen))?;
    let holder = LeaseHolder::new(&config.node_id());
    tracing::info!(node = holder.node(), listen = %config.server.listen, "jitgate-server starting");
    reclaim_leases(&db, &holder)
        .await
        .context("taking back this node's leases")?;
    let member = Arc::new(MemberClients::connect(&config.aws, None).await);
    let slack = match &config.slack {
        Some(settings) => Some(Arc::new(
            jitgate_server::slack::SlackApi::new(settings)
                .context("setting up the Slack client")?,
        )),
        None => None,
    };
    let scheduler = Scheduler::start(broker.clone(), holder, member, slack.clone());

    let oidc = match &config.oidc {
        Some(oidc) => Provider::discover(oidc.clone(), config.server.public_url.clone()),
        None => {
            tracing::warn!("no [oidc] configured: web sign-in is off");
            Provider::not_configured()
        }
    };
    let sessions = sessions::open(
        config.database.url.expose(),
        db.backend(),
        Duration::from_secs(600),
    )
    .await
    .context("opening the session store")?;
    let interactions = slack
        .clone()
        .map(|slack| jitgate_server::slack::Interactions {
            broker: broker.clone(),
            oidc: oidc.clone(),
            slack,
            user_match: config
                .slack
                .as_ref()
                .map(|s| s.user_match)
                .unwrap_or_default(),
        });
    let slack_mode = config.slack.as_ref().map(|s| s.mode);
    let slack_http = match (interactions, slack_mode) {
        (Some(interactions), Some(SlackMode::Socket)) => {
            jitgate_server::slack::socket::spawn(interactions);
            None
        }
        (interactions, _) => interactions,
    };
    let state = AppState {
        slack,
        slack_http,
        config: config.clone(),
        oidc,
        broker,
    };
    // The scheduler stops before the listener is released: a successor bound to the same
    // address takes back this node's leases, so none may be in use by then.
    let stop_scheduler = async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing work in progress");
        if tokio::time::timeout(Duration::from_secs(30), scheduler.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                "work still in progress after 30s; a restart takes it back, or another \
                 replica after its lease"
            );
        }
    };
    let limits = jitgate_server::http::listen::Limits {
        header_read_timeout: config.server.header_read_timeout.get(),
        max_connections: config.server.max_connections as usize,
    };
    jitgate_server::http::listen::serve(
        listener,
        match sessions {
            sessions::SessionStores::Sqlite(s) => router(state, s),
            sessions::SessionStores::Postgres(s) => router(state, s),
        },
        limits,
        stop_scheduler,
    )
    .await;
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// JSON logs on stderr for `serve` (RUST_LOG filters, default info); warnings only,
/// as text, for the one-shot commands whose output is on stdout.
fn init_logging(serve: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if serve { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if serve {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}
