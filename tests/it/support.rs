//! What the tests share: for the binary, the `parley` command, configured only through the
//! environment; for the bot started in-process, the configuration `parley run` would parse from
//! that environment. Both point at the fake completion server and a database file.

pub mod log;
pub mod postgres;

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;

use parley::settings::{Config, Purpose, Settings};
use tokio::process::Command;

use crate::fake_llm::{FAKE_KEY, FakeLlm};

/// `parley ARGS` with a clean environment: the fake's key and URL, the database at `db`, no
/// "thinking…" placeholder, every stream piped, killed when dropped.
pub fn parley_command(args: &[&str], llm: &FakeLlm, db: &Path) -> Command {
    parley_command_of(env!("CARGO_BIN_EXE_parley"), args, llm, db)
}

/// Like [`parley_command`], with the binary at `bin`.
pub fn parley_command_of(bin: &str, args: &[&str], llm: &FakeLlm, db: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_clear()
        .env("PARLEY__LLM__API_KEY", FAKE_KEY)
        .env("PARLEY__LLM__BASE_URL", llm.base_url())
        .env("PARLEY__STORE__DATABASE_URL", db_url(db))
        .env("PARLEY__REPLY__THINKING_AFTER_SECS", "0")
        // Tests run side by side: `/healthz` on a port the system picks, unless a test sets one.
        .env("PARLEY__HTTP__LISTEN", "127.0.0.1:0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// The `sqlite://` URL of a database file.
pub fn db_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// The `PARLEY__...` variables of a bot started in-process with [`app_config`]: the fake's key and
/// URL, the database at `db`, no "thinking…" placeholder, and `/healthz` on a port the system
/// picks (tests run side by side).
pub fn app_env(llm: &FakeLlm, db: &Path) -> HashMap<String, String> {
    [
        ("PARLEY__LLM__API_KEY", FAKE_KEY.to_string()),
        ("PARLEY__LLM__BASE_URL", llm.base_url()),
        ("PARLEY__STORE__DATABASE_URL", db_url(db)),
        ("PARLEY__REPLY__THINKING_AFTER_SECS", "0".into()),
        ("PARLEY__HTTP__LISTEN", "127.0.0.1:0".into()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value))
    .collect()
}

/// What `parley run` parses `env` into, over the defaults; for `App::start`.
pub fn app_config(env: &HashMap<String, String>) -> Config {
    let settings = Settings::load_from(None, Some(env.clone())).expect("valid test settings");
    Config::from_settings(&settings, Purpose::Run).expect("valid test settings")
}

/// Status, reason and content of every reply stored in the database at `db`, in order.
pub async fn stored_replies(db: &Path) -> Vec<(String, Option<String>, String)> {
    let pool = sqlx::SqlitePool::connect(&db_url(db))
        .await
        .expect("opens the database");
    let rows = sqlx::query_as(
        "SELECT status, failure_reason, content FROM messages WHERE role = 'assistant' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("the reply rows");
    pool.close().await;
    rows
}

/// The alternatives stored for every reply in the database at `db`: (reply row, content), in
/// order.
pub async fn stored_alternatives(db: &Path) -> Vec<(i64, String)> {
    let pool = sqlx::SqlitePool::connect(&db_url(db))
        .await
        .expect("opens the database");
    let rows =
        sqlx::query_as("SELECT reply, content FROM reply_alternatives ORDER BY reply, position")
            .fetch_all(&pool)
            .await
            .expect("the alternatives");
    pool.close().await;
    rows
}

/// The marker an interrupted reply ends with, as a chat shows it.
pub const MARKER: &str = "⚠️ reply interrupted: the bot restarted";

/// A long answer of 150 parts (4 characters a read): streamed with a delay, it is still
/// streaming when a test stops or kills the bot.
pub fn slow_answer() -> String {
    (0..150).map(|i| format!("part{i:03} ")).collect()
}
