//! Turns a database URL into SQLite connection options, opens the pool and migrates it.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::migrate::MigrateError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::engine::ports::StoreError;

/// How long a connection waits for another one's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Reading connections for a file database: WAL lets them run beside the writer.
const READ_CONNECTIONS: u32 = 3;

/// Each connection's page cache, in KiB (SQLite's `cache_size` when negative). SQLite's default
/// is 2,000 KiB a connection, 8 MB over the four; a turn reads its conversation's latest rows
/// and the writer appends, and a page not in the cache comes from the operating system's file
/// cache (one read call, microseconds).
const CACHE_KIB: u32 = 512;

/// The connections of one database: every write goes through `writes`, which has a single
/// connection, so writes queue in the pool (in order, without sleeping) instead of contending
/// for SQLite's write lock, whose busy handler sleeps 1, 2, 5, 10… ms between tries.
#[derive(Debug, Clone)]
pub(super) struct Pools {
    /// Queries that only read.
    pub reads: SqlitePool,
    /// Statements that write; one connection.
    pub writes: SqlitePool,
}

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
        "" => Err(StoreError::new("the database URL names no file")),
        path if path.contains('?') => Err(StoreError::new(format!(
            "the database URL {database_url} has query parameters; give a plain path"
        ))),
        path => Ok(Location::File(PathBuf::from(path))),
    }
}

/// Opens the connections to `database_url` and applies the embedded migrations.
pub(super) async fn open_pools(database_url: &str) -> Result<Pools, StoreError> {
    let pools = match locate(database_url)? {
        Location::Memory => {
            let pool = open_memory().await?;
            Pools {
                reads: pool.clone(),
                writes: pool,
            }
        }
        Location::File(path) => open_file(&path).await?,
    };
    migrate(&pools.writes).await.map_err(|e| {
        StoreError::caused(format!("cannot migrate the database {database_url}"), e)
    })?;
    Ok(pools)
}

/// Whether `error` is SQLite saying another connection holds the lock (busy, locked).
fn busy(error: &sqlx::Error) -> bool {
    let code = match error {
        sqlx::Error::Database(db) => db.code(),
        _ => None,
    };
    // SQLITE_BUSY and SQLITE_LOCKED, and their extended codes (the low byte).
    code.and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

/// How often opening and migrating are tried while another process opens the same file.
const MIGRATE_TRIES: u32 = 10;

/// Applies the embedded migrations. Two processes opening a new file at once (two instances on
/// one SQLite file) both find a migration unapplied and one of them fails to apply it: SQLite
/// has no lock for sqlx's migrator to take. Each migration commits with its record, so the one
/// that failed tries again after a moment and finds it applied.
async fn migrate(pool: &SqlitePool) -> Result<(), MigrateError> {
    let raced = |e: &MigrateError| {
        matches!(
            e,
            MigrateError::Execute(_) | MigrateError::ExecuteMigration(..)
        )
    };
    beside_others("migrating", raced, || {
        sqlx::migrate!("migrations/sqlite").run(pool)
    })
    .await
}

/// Runs `attempt` until it succeeds, fails otherwise than `raced` says another process doing
/// the same at that moment makes it fail, or has been tried [`MIGRATE_TRIES`] times; a little
/// longer between each try.
async fn beside_others<T, E, F, Fut>(
    doing: &str,
    raced: impl Fn(&E) -> bool,
    attempt: F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(error) if tries < MIGRATE_TRIES && raced(&error) => {
                tracing::debug!(%error, "{doing} beside another process; trying again");
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50 * u64::from(tries))).await;
            }
            done => return done,
        }
    }
}

async fn open_memory() -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::from_str("sqlite::memory:")
        .map_err(|e| StoreError::caused("cannot open an in-memory database", e))?
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
        .map_err(|e| StoreError::caused("cannot open an in-memory database", e))
}

async fn open_file(path: &Path) -> Result<Pools, StoreError> {
    let name = path.display();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| StoreError::caused(format!("cannot create the folder of {name}"), e))?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
        .pragma("cache_size", format!("-{CACHE_KIB}"));
    let cannot_open =
        |e: sqlx::Error| StoreError::caused(format!("cannot open the database {name}"), e);
    // The writer first: it creates the file and switches it to WAL.
    let writes = file_pool_beside_others(1, &options)
        .await
        .map_err(cannot_open)?;
    let reads = file_pool_beside_others(READ_CONNECTIONS, &options)
        .await
        .map_err(cannot_open)?;
    Ok(Pools { reads, writes })
}

/// [`file_pool`], tried again after a moment while another process opening the same file holds
/// the lock that switching it to WAL needs: SQLite answers busy at once there (its busy handler
/// does not wait for it).
async fn file_pool_beside_others(
    connections: u32,
    options: &SqliteConnectOptions,
) -> Result<SqlitePool, sqlx::Error> {
    beside_others("opening", busy, || file_pool(connections, options.clone())).await
}

async fn file_pool(
    connections: u32,
    options: SqliteConnectOptions,
) -> Result<SqlitePool, sqlx::Error> {
    SqlitePoolOptions::new()
        .max_connections(connections)
        // A connection to a local file does not go stale; the default ping before each use is
        // one more round trip to the connection's thread for every query.
        .test_before_acquire(false)
        .connect_with(options)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_processes_opening_a_new_file_at_once_both_migrate_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        for i in 0..20 {
            let url = format!(
                "sqlite://{}",
                dir.path().join(format!("new{i}.db")).display()
            );
            let (a, b) = tokio::join!(open_pools(&url), open_pools(&url));
            a.expect("the first opens");
            b.expect("the second opens");
        }
    }

    #[tokio::test]
    async fn a_file_database_writes_through_one_connection_and_reads_beside_it() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let url = format!("sqlite://{}", dir.path().join("one-writer.db").display());
        let pools = open_pools(&url).await.expect("opens");
        assert_eq!(pools.writes.options().get_max_connections(), 1);
        assert_eq!(
            pools.reads.options().get_max_connections(),
            READ_CONNECTIONS
        );
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&pools.writes)
            .await
            .expect("creates");
        sqlx::query("INSERT INTO t VALUES (7)")
            .execute(&pools.writes)
            .await
            .expect("writes");
        let x: i64 = sqlx::query_scalar("SELECT x FROM t")
            .fetch_one(&pools.reads)
            .await
            .expect("a reader sees the committed row");
        assert_eq!(x, 7);
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&pools.reads)
            .await
            .expect("reads the journal mode");
        assert_eq!(mode, "wal");
    }

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
