//! Web sessions live in the database too (tower-sessions' sqlx stores, tables of their
//! own), so a restart or another replica keeps people signed in.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use tower_sessions::ExpiredDeletion;
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use super::{Backend, StoreError};

/// The session store of the configured backend.
#[derive(Debug, Clone)]
pub enum SessionStores {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// Opens (and creates or upgrades) the session tables on the database at `url`, and
/// removes expired sessions in the background every `cleanup_every`.
pub async fn open(
    url: &str,
    backend: Backend,
    cleanup_every: Duration,
) -> Result<SessionStores, StoreError> {
    let stores = match backend {
        Backend::Sqlite => {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await?;
            let store = SqliteStore::new(pool);
            store.migrate().await?;
            SessionStores::Sqlite(store)
        }
        Backend::Postgres => {
            let pool = PgPoolOptions::new().max_connections(4).connect(url).await?;
            let store = PostgresStore::new(pool);
            store.migrate().await?;
            SessionStores::Postgres(store)
        }
    };
    let cleanup = stores.clone();
    tokio::spawn(async move {
        let result = match cleanup {
            SessionStores::Sqlite(s) => s.continuously_delete_expired(cleanup_every).await,
            SessionStores::Postgres(s) => s.continuously_delete_expired(cleanup_every).await,
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "expired-session cleanup stopped");
        }
    });
    Ok(stores)
}
