//! Turns `[store]` into PostgreSQL connection options, checks the server answers, opens the pool
//! and migrates the database.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::engine::ports::StoreError;
use crate::store::StoreConfig;

/// How long start-up waits for the server to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a query waits for a free connection of the pool before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection options `config` describes: its URL (`sslmode` and the other parameters
/// included) and the statement timeout on every connection.
pub fn connect_options(config: &StoreConfig) -> Result<PgConnectOptions, StoreError> {
    let options = PgConnectOptions::from_str(config.url.expose())
        .map_err(|e| StoreError::caused(format!("{} is not a PostgreSQL URL", config.url), e))?;
    let timeout_ms = config.statement_timeout.as_millis().to_string();
    Ok(options
        .application_name("parley")
        .options([("statement_timeout", timeout_ms.as_str())]))
}

/// Connects once (to fail early with the server's reason), then opens the pool and migrates.
pub(super) async fn open_pool(config: &StoreConfig) -> Result<PgPool, StoreError> {
    let options = connect_options(config)?;
    let cannot_connect = |e: sqlx::Error| {
        StoreError::caused(
            "cannot connect to PostgreSQL (is the server running, and do the URL's host, port, \
             user, password and database name it?)",
            e,
        )
    };
    let first = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
        .await
        .map_err(|_| {
            StoreError::new(format!(
                "PostgreSQL did not answer within {} s (is the host reachable?)",
                CONNECT_TIMEOUT.as_secs()
            ))
        })?
        .map_err(cannot_connect)?;
    first.close().await.map_err(cannot_connect)?;
    let pool = PgPoolOptions::new()
        .max_connections(config.pool_size)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(cannot_connect)?;
    sqlx::migrate!("migrations/postgres")
        .run(&pool)
        .await
        .map_err(|e| StoreError::caused("cannot migrate the PostgreSQL database", e))?;
    Ok(pool)
}
