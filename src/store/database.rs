//! The opened database, whichever backend `store.database_url` selects: what the app, `/healthz`
//! and `parley check` hold, and the engine's `Store` port on it.

use std::sync::Arc;
use std::time::Duration;

use super::{DatabaseUrl, PgStore, SqliteStore};
use crate::engine::ports::{Store, StoreError};
use crate::instances::{Coordination, InstanceId};

/// `[store]` as the store opens with it.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `store.database_url`: `postgres://` or `postgresql://` selects PostgreSQL, anything else
    /// SQLite.
    pub url: DatabaseUrl,
    /// `store.pool_size`: PostgreSQL connections (SQLite keeps its one writer and three
    /// readers).
    pub pool_size: u32,
    /// `store.statement_timeout_secs`: PostgreSQL cancels a statement that runs longer.
    pub statement_timeout: Duration,
}

impl StoreConfig {
    /// The defaults (`config/default.toml`) for `url`.
    pub fn new(url: DatabaseUrl) -> Self {
        Self {
            url,
            pool_size: 10,
            statement_timeout: Duration::from_secs(30),
        }
    }
}

/// The open database: SQLite or PostgreSQL; cheap to clone.
#[derive(Debug, Clone)]
pub enum Database {
    /// An SQLite file (or an in-memory database).
    Sqlite(Arc<SqliteStore>),
    /// A PostgreSQL server.
    Postgres(Arc<PgStore>),
}

impl Database {
    /// Opens and migrates the database `config.url` names.
    pub async fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        Ok(match config.url.is_postgres() {
            true => Self::Postgres(Arc::new(PgStore::open(config).await?)),
            false => Self::Sqlite(Arc::new(SqliteStore::open(config.url.expose()).await?)),
        })
    }

    /// The same database, recording `instance` as the one streaming the replies it starts.
    pub fn for_instance(self, instance: &InstanceId) -> Self {
        match self {
            Self::Sqlite(store) => Self::Sqlite(Arc::new((*store).clone().for_instance(instance))),
            Self::Postgres(store) => {
                Self::Postgres(Arc::new((*store).clone().for_instance(instance)))
            }
        }
    }

    /// How instances share this database.
    pub fn coordination(&self) -> Arc<dyn Coordination> {
        match self {
            Self::Sqlite(store) => store.clone(),
            Self::Postgres(store) => store.clone(),
        }
    }

    /// The engine's `Store` port on this database.
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(store) => store.clone(),
            Self::Postgres(store) => store.clone(),
        }
    }

    /// Checks that the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(store) => store.ping().await,
            Self::Postgres(store) => store.ping().await,
        }
    }

    /// `ok` when the database is sound: SQLite's integrity check; PostgreSQL checks its own
    /// pages, so there a query that answers is enough.
    pub async fn integrity_check(&self) -> Result<String, StoreError> {
        match self {
            Self::Sqlite(store) => store.integrity_check().await,
            Self::Postgres(store) => store.ping().await.map(|()| "ok".to_string()),
        }
    }

    /// Waits for queries in flight, then closes every connection.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(store) => store.close().await,
            Self::Postgres(store) => store.close().await,
        }
    }
}
