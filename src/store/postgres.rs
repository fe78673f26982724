//! PostgreSQL conversation storage through sqlx: the [`PgStore`] behind the engine's `Store`
//! port, with the SQLite store's behaviour (same rows, order, conflicts and recovery marking).
//! One module per concern, as the SQLite store has.

mod connect;
mod conversations;
mod files;
mod instances;
mod messages;
mod port;
mod replies;
mod settings;
mod usage;

use std::fmt;
use std::sync::Arc;

pub use connect::connect_options;

use sqlx::PgPool;

use super::StoreConfig;
use super::rows;
use crate::engine::ports::StoreError;
use crate::instances::InstanceId;

/// The conversation store on one PostgreSQL database; cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The instance whose replies this store records, when instances coordinate.
    instance: Option<Arc<str>>,
}

impl PgStore {
    /// Connects to `config.url` (one connection first, so a bad address or password fails here
    /// with its cause), opens the pool and applies the migrations of `migrations/postgres`.
    pub async fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        let pool = connect::open_pool(config).await?;
        Ok(Self {
            pool,
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
            .execute(&self.pool)
            .await
            .map_err(rows::failed("ping"))?;
        Ok(())
    }

    /// The statement timeout a connection of the pool runs with, as PostgreSQL shows it
    /// (`30s`).
    pub async fn statement_timeout(&self) -> Result<String, StoreError> {
        sqlx::query_scalar("SHOW statement_timeout")
            .fetch_one(&self.pool)
            .await
            .map_err(rows::failed("show statement_timeout"))
    }

    /// The pool, for the tests of this store and the modules beside it.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Waits for queries in flight, then closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Whether `error` is PostgreSQL refusing a row a unique index already holds: what a
/// statement meets when a concurrent transaction committed the same row first.
fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool's own Debug is harmless today, but the connect options hold the password.
        f.debug_struct("PgStore")
            .field("connections", &self.pool.size())
            .finish_non_exhaustive()
    }
}
