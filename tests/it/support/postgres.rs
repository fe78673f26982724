//! A real PostgreSQL server for the tests: started once per test process by
//! `scripts/postgres.sh start --watch PID` (which installs Debian's `postgresql` package when it
//! is missing and we are root), and stopped by that script's watcher once this process has
//! exited. `PARLEY_TEST_POSTGRES_URL` names a running server to use instead (its user must be
//! allowed to create databases). Every test gets a database of its own, so tests run side by
//! side.
//!
//! Where no server can be started the PostgreSQL tests skip, saying so on stderr; with
//! `PARLEY_REQUIRE_POSTGRES=1` (set by `.ci/run`) they fail instead.

use std::io::Write;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use sqlx::Connection;

/// The server's URL (to its `postgres` database), or why there is none.
static SERVER: OnceLock<Result<String, String>> = OnceLock::new();

/// Whether the skip notice was printed.
static TOLD: Mutex<bool> = Mutex::new(false);

/// The URL of a new, empty database on the test server; `None` (after a notice on stderr) when
/// no server could be started and none is required.
pub async fn database() -> Option<String> {
    let server = match server() {
        Ok(url) => url,
        Err(reason) => return skip(reason),
    };
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(server)
        .await
        .expect("connects to the test server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("creates a test database");
    admin.close().await.expect("closes");
    Some(with_database(server, &name))
}

/// The server's URL, starting it on first use.
pub fn server() -> Result<&'static str, &'static str> {
    SERVER.get_or_init(start).as_deref().map_err(|e| e.as_str())
}

/// `url` naming database `name` instead.
pub fn with_database(url: &str, name: &str) -> String {
    let mut url = reqwest::Url::parse(url).expect("the test server's URL parses");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

fn start() -> Result<String, String> {
    if let Ok(url) = std::env::var("PARLEY_TEST_POSTGRES_URL") {
        return Ok(url);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postgres.sh");
    let pid = std::process::id().to_string();
    let output = Command::new("bash")
        .args([script, "start", "--watch", &pid])
        .output()
        .map_err(|e| format!("cannot run {script}: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let url = stdout.lines().last().unwrap_or_default();
    match output.status.success() && url.starts_with("postgres://") {
        true => Ok(url.to_string()),
        false => Err(format!("{script} failed: {}", stderr.trim())),
    }
}

/// Fails under `PARLEY_REQUIRE_POSTGRES=1`; otherwise says once why PostgreSQL tests skip.
fn skip(reason: &str) -> Option<String> {
    if std::env::var("PARLEY_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        panic!("PARLEY_REQUIRE_POSTGRES=1 but no PostgreSQL server could be started: {reason}");
    }
    let mut told = TOLD.lock().unwrap_or_else(|e| e.into_inner());
    if !*told {
        *told = true;
        // Straight to the process's stderr, past the test harness's capture.
        let _ = writeln!(
            std::io::stderr(),
            "\nPostgreSQL tests SKIPPED: no server could be started ({reason}). Install \
             Debian's postgresql package or set PARLEY_TEST_POSTGRES_URL; \
             PARLEY_REQUIRE_POSTGRES=1 makes this a failure.\n"
        );
    }
    None
}
