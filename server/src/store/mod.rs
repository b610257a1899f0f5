//! Storage: every SQL statement jitgate runs lives under this module. One schema on two
//! backends, SQLite (a file, WAL; the embedded default) and Postgres (several replicas),
//! reached through sqlx's `Any` driver so the same queries serve both; the few
//! statements that must differ (row locks, `SKIP LOCKED`) branch on [`Backend`].
//!
//! A state change is one [`WriteTx`]: it carries the audit events appended in it and
//! writes them to the structured log only once the transaction has committed.

pub mod assignments;
pub mod audit;
pub mod cli_logins;
pub mod jobs;
pub mod principals;
pub mod requests;
pub mod sessions;
pub mod tokens;
pub mod users;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Executor, Transaction};

use crate::audit::AuditEvent;

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("a database task failed: {0}")]
    Task(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("unsupported database URL: {0} (use sqlite://FILE or postgres://...)")]
    UnsupportedUrl(String),
}

/// Which SQL dialect the pool speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool to jitgate's database.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    /// Where writes go. On SQLite, one connection: the file has one write lock, and
    /// writers queued here are served in turn, where writers racing for the lock would
    /// sleep in SQLite's busy handler (up to 100 ms a try) and lose to newcomers.
    /// On Postgres, the same pool as reads (row locks order writers).
    writer: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connects to `url`; a SQLite file is created when missing and put in WAL mode.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, StoreError> {
        install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            (Backend::Sqlite, sqlite_url(url))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(StoreError::UnsupportedUrl(scheme_of(url)));
        };
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if backend == Backend::Postgres {
            let pool = AnyPoolOptions::new()
                .max_connections(max_connections.max(1))
                .connect(&url)
                .await?;
            return Ok(Db {
                writer: pool.clone(),
                pool,
                backend,
            });
        }
        if in_memory {
            // Each connection to an in-memory SQLite database is a database of its own.
            let pool = sqlite_pool(1).connect(&url).await?;
            return Ok(Db {
                writer: pool.clone(),
                pool,
                backend,
            });
        }
        // One long-lived connection, so settings made on it (see
        // `checkpoint_in_background`) last.
        let writer = sqlite_pool(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect(&url)
            .await?;
        let pool = sqlite_pool(max_connections.max(1)).connect(&url).await?;
        Ok(Db {
            pool,
            writer,
            backend,
        })
    }

    /// Applies the migrations of this backend that have not run yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("../migrations/sqlite")
                    .run(&self.pool)
                    .await?
            }
            Backend::Postgres => {
                sqlx::migrate!("../migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for statements that write outside a [`WriteTx`].
    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads first cannot upgrade to a
    /// writer once another connection has committed, and fails instead of waiting.
    ///
    /// The begin runs in a task of its own: sqlx leaves a SQLite connection inside a
    /// transaction for good when the future of a custom `BEGIN` is dropped between the
    /// statement and the transaction's creation (sqlx#3932), and an HTTP client hanging
    /// up at that moment would jam the one writer. A task always runs to completion; if
    /// the caller is gone by then, the transaction is dropped and rolled back.
    pub async fn begin(&self) -> Result<WriteTx, StoreError> {
        let (writer, backend) = (self.writer.clone(), self.backend);
        let tx = tokio::spawn(async move {
            match backend {
                Backend::Sqlite => writer.begin_with("BEGIN IMMEDIATE").await,
                Backend::Postgres => writer.begin().await,
            }
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))??;
        Ok(WriteTx {
            tx,
            backend: self.backend,
            events: Vec::new(),
        })
    }

    /// Takes SQLite's WAL checkpoints off the write path: by default the commit that
    /// fills the log past 1,000 pages copies it into the database file and syncs it,
    /// holding the write lock while requests queue behind it (a stall every hundred or
    /// so changes). The writer stops checkpointing and a background task checkpoints
    /// every `every` (`PASSIVE`: it never waits for, nor blocks, readers and the
    /// writer). Should the writer's connection ever be replaced, the new one checkpoints
    /// on commit again: slower, still correct. Nothing to do on Postgres.
    pub async fn checkpoint_in_background(&self, every: Duration) -> Result<(), StoreError> {
        if self.backend != Backend::Sqlite {
            return Ok(());
        }
        sqlx::query("PRAGMA wal_autocheckpoint = 0")
            .execute(&self.writer)
            .await?;
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if pool.is_closed() {
                    return;
                }
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&pool)
                    .await
                {
                    tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                }
            }
        });
        Ok(())
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pools, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// A write transaction and the audit events appended in it.
pub struct WriteTx {
    pub(crate) tx: Transaction<'static, Any>,
    pub(crate) backend: Backend,
    pub(crate) events: Vec<AuditEvent>,
}

impl WriteTx {
    /// Commits, then writes each audit event of the transaction to the structured log.
    pub async fn commit(self) -> Result<Vec<AuditEvent>, StoreError> {
        self.tx.commit().await?;
        for event in &self.events {
            event.log();
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

/// Pool options for SQLite connections: WAL lets readers run beside the one writer;
/// busy_timeout makes another process (an admin command, a second server) wait for the
/// write lock instead of failing.
fn sqlite_pool(max_connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        // A connection to a local file does not go stale; pinging it before each use
        // would cost a round trip to its worker thread per query.
        .test_before_acquire(false)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                Ok(())
            })
        })
}

/// sqlx opens SQLite read-write but will not create the file unless asked.
fn sqlite_url(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
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
