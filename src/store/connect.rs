//! Turns a database URL into SQLite connection options, opens the pool and migrates it.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::engine::ports::StoreError;

/// How long a connection waits for another one's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections for a file database: WAL lets readers run beside the single writer.
const FILE_CONNECTIONS: u32 = 4;

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    /// A private in-memory database that lives as long as the pool.
    Memory,
    /// A file, created with its folder when missing.
    File(PathBuf),
}

/// Reads `sqlite://path`, `sqlite:path`, a plain path, or `sqlite::memory:`.
fn locate(database_url: &str) -> Result<Location, StoreError> {
    let rest = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .unwrap_or(database_url);
    match rest {
        ":memory:" => Ok(Location::Memory),
        "" => Err(StoreError("the database URL names no file".into())),
        path if path.contains('?') => Err(StoreError(format!(
            "the database URL {database_url} has query parameters; give a plain path"
        ))),
        path => Ok(Location::File(PathBuf::from(path))),
    }
}

/// Opens the pool for `database_url` and applies the embedded migrations.
pub(super) async fn open_pool(database_url: &str) -> Result<SqlitePool, StoreError> {
    let pool = match locate(database_url)? {
        Location::Memory => open_memory().await?,
        Location::File(path) => open_file(&path).await?,
    };
    sqlx::migrate!()
        .run(&pool)
        .await
        .map_err(|e| StoreError(format!("cannot migrate the database {database_url}: {e}")))?;
    Ok(pool)
}

async fn open_memory() -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::from_str("sqlite::memory:")
        .map_err(|e| StoreError(format!("cannot open an in-memory database: {e}")))?
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    // One connection that never closes: the database lives exactly as long as it.
    SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await
        .map_err(|e| StoreError(format!("cannot open an in-memory database: {e}")))
}

async fn open_file(path: &Path) -> Result<SqlitePool, StoreError> {
    let name = path.display();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| StoreError(format!("cannot create the folder of {name}: {e}")))?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    SqlitePoolOptions::new()
        .max_connections(FILE_CONNECTIONS)
        // A connection to a local file does not go stale; the default ping before each use is
        // one more round trip to the connection's thread for every query.
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(|e| StoreError(format!("cannot open the database {name}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_plain_paths_name_the_same_file() {
        let file = Location::File(PathBuf::from("data/parley.db"));
        assert_eq!(locate("sqlite://data/parley.db").ok(), Some(file.clone()));
        assert_eq!(locate("sqlite:data/parley.db").ok(), Some(file.clone()));
        assert_eq!(locate("data/parley.db").ok(), Some(file));
    }

    #[test]
    fn absolute_paths_keep_their_leading_slash() {
        let file = Location::File(PathBuf::from("/var/lib/parley.db"));
        assert_eq!(locate("sqlite:///var/lib/parley.db").ok(), Some(file));
    }

    #[test]
    fn memory_urls_are_recognised() {
        assert_eq!(locate("sqlite::memory:").ok(), Some(Location::Memory));
        assert_eq!(locate("sqlite://:memory:").ok(), Some(Location::Memory));
    }

    #[test]
    fn empty_urls_and_query_parameters_are_refused() {
        assert!(locate("sqlite://").is_err());
        assert!(locate("").is_err());
        assert!(locate("sqlite://x.db?mode=ro").is_err());
    }
}
