//! Storage: every SQL statement jitgate runs lives under this module. One schema on two
//! backends, SQLite (a file, WAL; the embedded default) and Postgres (several replicas).
//! Statements are written once, with `$N` parameters, and run through [`sql::query`]:
//! Postgres through sqlx, SQLite through rusqlite in the calling task ([`lite`] says
//! why). The few statements that must differ (row locks, `SKIP LOCKED`) branch on
//! [`Backend`].
//!
//! A state change is one [`WriteTx`]: it carries the audit events appended in it and
//! writes them to the structured log only once the transaction has committed.

pub mod assignments;
pub mod audit;
pub mod cli_logins;
pub mod drift;
pub mod jobs;
pub mod leases;
mod lite;
mod port;
pub mod principals;
pub mod requests;
pub mod session_closings;
pub mod sessions;
pub mod slack_dms;
pub mod slack_links;
pub mod slack_posts;
mod sql;
pub mod tokens;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Transaction};

use crate::audit::{AuditEvent, AuditKey};
pub use jitgate_core::parse::sqlite_path;
use sql::Target;

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("a database task failed: {0}")]
    Task(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("the database is closed (the server is shutting down)")]
    Closed,
    #[error("unsupported database URL: {0} (use sqlite://FILE or postgres://...)")]
    UnsupportedUrl(String),
    #[error(
        "SQLite path `{0}`: write it as is, without `%` or `#` (a percent-encoded path would \
         be read as two different files)"
    )]
    SqlitePath(String),
    #[error(
        "an in-memory SQLite database loses every grant, and the revocations owed, when the \
         server stops: use a file (sqlite:///var/lib/jitgate/jitgate.db)"
    )]
    InMemory,
}

/// Which SQL dialect the pool speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// jitgate's database: a handle that is cheap to clone.
#[derive(Clone)]
pub struct Db {
    pools: Pools,
    /// The key events appended through this handle are signed with (see `audit::key`).
    audit_key: Option<AuditKey>,
    /// Whether request changes owe their Slack channel message an update
    /// (`slack_posts`): on when `[slack]` is configured.
    slack_outbox: bool,
    /// The URL sqlx's migrator connects to (SQLite: the same file, created if missing).
    url: Arc<str>,
}

#[derive(Clone)]
enum Pools {
    /// One pool for reads and writes: row locks order writers.
    Postgres(AnyPool),
    Sqlite(Arc<lite::Sqlite>),
}

impl Db {
    /// Connects to `url`; a SQLite file is created when missing and put in WAL mode.
    /// `max_connections` bounds the Postgres pool, or the SQLite reader connections.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, StoreError> {
        install_default_drivers();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = AnyPoolOptions::new()
                .max_connections(max_connections.max(1))
                .connect(url)
                .await?;
            return Ok(Db {
                pools: Pools::Postgres(pool),
                audit_key: None,
                slack_outbox: false,
                url: url.into(),
            });
        }
        let path = sqlite_path(url).ok_or_else(|| StoreError::UnsupportedUrl(scheme_of(url)))?;
        if path.is_empty() || path.contains(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::InMemory);
        }
        // sqlx (migrations, sessions) decodes percent-encoding, rusqlite takes the path
        // as it is: refuse what they would read differently.
        if path.contains(['%', '#']) {
            return Err(StoreError::SqlitePath(path.to_owned()));
        }
        let sqlite = lite::Sqlite::open(std::path::Path::new(path), max_connections)?;
        Ok(Db {
            pools: Pools::Sqlite(Arc::new(sqlite)),
            audit_key: None,
            slack_outbox: false,
            url: format!("sqlite://{path}?mode=rwc").into(),
        })
    }

    /// This handle, signing the audit events it appends with `key`. Without a key
    /// events get plain hashes, as before the chain was keyed (the server always has
    /// one: config validation requires `[audit] key`).
    pub fn with_audit_key(mut self, key: Option<AuditKey>) -> Db {
        self.audit_key = key;
        self
    }

    /// This handle, owing every filed or changed request a Slack channel message
    /// (store/slack_posts.rs) in the same transaction as the change.
    pub fn with_slack_outbox(mut self, on: bool) -> Db {
        self.slack_outbox = on;
        self
    }

    pub(crate) fn audit_key(&self) -> Option<&AuditKey> {
        self.audit_key.as_ref()
    }

    /// Applies the migrations of this backend that have not run yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pools {
            Pools::Sqlite(_) => {
                // sqlx's migrator, on a connection of its own for the occasion.
                let pool = AnyPoolOptions::new()
                    .max_connections(1)
                    .connect(&self.url)
                    .await?;
                let result = sqlx::migrate!("../migrations/sqlite").run(&pool).await;
                pool.close().await;
                result?;
            }
            Pools::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Sqlite(_) => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    /// Where reads outside a transaction run.
    pub(crate) fn reader(&self) -> Target<'_> {
        Target::Read(self)
    }

    /// Where reads that may look at many rows run (see [`Target::Scan`]).
    pub(crate) fn scanner(&self) -> Target<'_> {
        Target::Scan(self)
    }

    /// Where statements that write outside a [`WriteTx`] run.
    pub(crate) fn writer(&self) -> Target<'_> {
        Target::Write(self)
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads first cannot upgrade to a
    /// writer once another connection has committed, and fails instead of waiting.
    ///
    /// On Postgres the begin runs in a task of its own: sqlx can leave a connection
    /// inside a transaction for good when the future of a `BEGIN` is dropped between the
    /// statement and the transaction's creation (sqlx#3932), and an HTTP client hanging
    /// up at that moment would poison a pooled connection. A task always runs to
    /// completion; if the caller is gone by then, the transaction is dropped and rolled
    /// back. (On SQLite nothing awaits between the `BEGIN` and the guard that rolls back.)
    pub async fn begin(&self) -> Result<WriteTx, StoreError> {
        let (inner, backend) = match &self.pools {
            Pools::Sqlite(sqlite) => (TxInner::Sqlite(sqlite.begin().await?), Backend::Sqlite),
            Pools::Postgres(pool) => {
                let pool = pool.clone();
                let tx = tokio::spawn(async move { pool.begin().await })
                    .await
                    .map_err(|e| StoreError::Task(e.to_string()))??;
                (TxInner::Postgres(tx), Backend::Postgres)
            }
        };
        Ok(WriteTx {
            inner,
            backend,
            events: Vec::new(),
            audit_key: self.audit_key.clone(),
            slack_outbox: self.slack_outbox,
        })
    }

    /// Takes SQLite's WAL checkpoints off the write path: by default the commit that
    /// fills the log past 1,000 pages copies it into the database file and syncs it,
    /// holding the write lock while requests queue behind it (a stall every hundred or
    /// so changes). The writer stops checkpointing and a thread checkpoints every
    /// `every` (`PASSIVE`: it never waits for, nor blocks, readers and the writer).
    /// Nothing to do on Postgres.
    pub async fn checkpoint_in_background(&self, every: Duration) -> Result<(), StoreError> {
        match &self.pools {
            Pools::Sqlite(sqlite) => sqlite.checkpoint_in_background(every).await,
            Pools::Postgres(_) => Ok(()),
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sql::query("SELECT 1").execute(self.reader()).await?;
        Ok(())
    }

    /// Closes the database, waiting for a write in progress to finish.
    pub async fn close(&self) {
        match &self.pools {
            Pools::Sqlite(sqlite) => sqlite.close().await,
            Pools::Postgres(pool) => pool.close().await,
        }
    }
}

/// A write transaction and the audit events appended in it.
pub struct WriteTx {
    inner: TxInner,
    pub(crate) backend: Backend,
    pub(crate) events: Vec<AuditEvent>,
    pub(crate) audit_key: Option<AuditKey>,
    pub(crate) slack_outbox: bool,
}

enum TxInner {
    Postgres(Transaction<'static, Any>),
    Sqlite(lite::Tx),
}

impl WriteTx {
    /// Commits, then writes each audit event of the transaction to the structured log.
    pub async fn commit(self) -> Result<Vec<AuditEvent>, StoreError> {
        match self.inner {
            TxInner::Postgres(tx) => tx.commit().await?,
            TxInner::Sqlite(tx) => tx.commit()?,
        }
        for event in &self.events {
            crate::audit::log(event);
        }
        Ok(self.events)
    }

    /// `FOR UPDATE` where the backend has row locks; SQLite's `BEGIN IMMEDIATE` already
    /// holds the one write lock.
    pub(crate) fn row_lock(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }
}

fn scheme_of(url: &str) -> String {
    url.split_once(':')
        .map_or_else(|| "(no scheme)".to_owned(), |(s, _)| format!("{s}:"))
}

/// Milliseconds since the epoch, the form every time column holds.
pub fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The inverse of [`to_millis`]; out-of-range values are corrupt data.
pub fn from_millis(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms} out of range")))
}
