//! Conversation storage through sqlx, behind the engine's `Store` port: the [`SqliteStore`]
//! (its query modules here), the [`PgStore`] (in `postgres/`), and the [`Database`] that
//! `store.database_url` selects between them.

mod connect;
mod conversations;
mod database;
mod files;
mod instances;
mod messages;
mod port;
pub mod postgres;
mod replies;
mod rows;
mod settings;
mod url;
mod usage;

pub use database::{Database, StoreConfig};
pub use messages::INTERRUPTED;
pub use postgres::PgStore;
pub use url::DatabaseUrl;

use std::sync::Arc;

use crate::engine::ports::StoreError;
use crate::instances::InstanceId;

/// The connection settings SQLite reports, for health output and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pragmas {
    /// `wal` for a file database, `memory` for an in-memory one.
    pub journal_mode: String,
    /// Whether foreign keys are enforced.
    pub foreign_keys: bool,
    /// How long a connection waits for a lock, in milliseconds.
    pub busy_timeout_ms: i64,
}

/// The conversation store on one SQLite database; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pools: connect::Pools,
    /// The instance whose replies this store records, when instances coordinate.
    instance: Option<Arc<str>>,
}

impl SqliteStore {
    /// Opens (creating file and folder if missing) and migrates the database at `database_url`:
    /// `sqlite://path`, `sqlite:path`, a plain path, or `sqlite::memory:`.
    pub async fn open(database_url: &str) -> Result<Self, StoreError> {
        let pools = connect::open_pools(database_url).await?;
        Ok(Self {
            pools,
            instance: None,
        })
    }

    /// The same store, recording `instance` as the one streaming the replies it starts.
    pub fn for_instance(self, instance: &InstanceId) -> Self {
        Self {
            instance: Some(instance.as_str().into()),
            ..self
        }
    }

    /// The instance recorded on new replies.
    fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// Checks that the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pools.reads)
            .await
            .map_err(rows::failed("ping"))?;
        Ok(())
    }

    /// Runs SQLite's integrity check; a healthy database answers `ok`.
    pub async fn integrity_check(&self) -> Result<String, StoreError> {
        let lines: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&self.pools.reads)
            .await
            .map_err(rows::failed("integrity check"))?;
        Ok(lines.join("\n"))
    }

    /// The journal mode, foreign-key and busy-timeout settings of the writing connection.
    pub async fn pragmas(&self) -> Result<Pragmas, StoreError> {
        let mut conn = self
            .pools
            .writes
            .acquire()
            .await
            .map_err(rows::failed("pragmas"))?;
        let journal_mode = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .map_err(rows::failed("pragma journal_mode"))?;
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *conn)
            .await
            .map_err(rows::failed("pragma foreign_keys"))?;
        let busy_timeout_ms = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await
            .map_err(rows::failed("pragma busy_timeout"))?;
        Ok(Pragmas {
            journal_mode,
            foreign_keys: foreign_keys == 1,
            busy_timeout_ms,
        })
    }

    /// Waits for queries in flight, then closes every connection.
    pub async fn close(&self) {
        self.pools.reads.close().await;
        self.pools.writes.close().await;
    }
}
