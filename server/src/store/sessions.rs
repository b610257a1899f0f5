//! Web sessions live in the database too (tower-sessions' sqlx stores, tables of their
//! own), so a restart or another replica keeps people signed in. The stores only ever
//! see a hash of the cookie's session id ([`HashedIds`]), as API tokens are kept: a
//! copy of the database (a backup, a read-only user) holds no id that signs anyone in.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use tower_sessions::ExpiredDeletion;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use super::{Backend, StoreError};

/// The session store of the configured backend.
#[derive(Debug, Clone)]
pub enum SessionStores {
    Sqlite(HashedIds<SqliteStore>),
    Postgres(HashedIds<PostgresStore>),
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
            SessionStores::Sqlite(HashedIds(store))
        }
        Backend::Postgres => {
            let pool = PgPoolOptions::new().max_connections(4).connect(url).await?;
            let store = PostgresStore::new(pool);
            store.migrate().await?;
            SessionStores::Postgres(HashedIds(store))
        }
    };
    let cleanup = stores.clone();
    tokio::spawn(async move {
        let result = match cleanup {
            SessionStores::Sqlite(s) => s.0.continuously_delete_expired(cleanup_every).await,
            SessionStores::Postgres(s) => s.0.continuously_delete_expired(cleanup_every).await,
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "expired-session cleanup stopped");
        }
    });
    Ok(stores)
}

/// A session store that keys records by `sha256(id)` instead of the id in the cookie.
/// Records leave it with the cookie's id again, so tower-sessions never notices.
#[derive(Debug, Clone)]
pub struct HashedIds<S>(pub S);

/// The stored key of a session id: the first 128 bits of its SHA-256. The id is 128
/// random bits, so this is as hard to invert or collide as the id is to guess.
fn stored_id(id: &Id) -> Id {
    let digest = Sha256::digest(id.0.to_le_bytes());
    let mut first = [0u8; 16];
    for (to, from) in first.iter_mut().zip(digest.iter()) {
        *to = *from;
    }
    Id(i128::from_le_bytes(first))
}

fn stored_record(record: &Record) -> Record {
    Record {
        id: stored_id(&record.id),
        ..record.clone()
    }
}

#[async_trait]
impl<S: SessionStore + Clone> SessionStore for HashedIds<S> {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // A new id whose hash is taken is drawn again, as the inner stores do for ids.
        while self.0.load(&stored_id(&record.id)).await?.is_some() {
            record.id = Id::default();
        }
        self.0.save(&stored_record(record)).await
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.0.save(&stored_record(record)).await
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let loaded = self.0.load(&stored_id(id)).await?;
        Ok(loaded.map(|record| Record { id: *id, ..record }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.0.delete(&stored_id(id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_key_is_stable_and_not_the_id() {
        let id = Id::default();
        assert_eq!(stored_id(&id), stored_id(&id));
        assert_ne!(stored_id(&id), id);
        assert_ne!(stored_id(&id), stored_id(&Id::default()));
    }
}
