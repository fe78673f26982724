//! What only the PostgreSQL store has: a database of its own on the test server
//! (`support::postgres`), its URL's errors, its statement timeout, its migrations, a restart, and
//! the bot running on it end to end.

use std::sync::Arc;
use std::time::Duration;

use parley::engine::event::PlatformKind;
use parley::engine::ports::{ReplyStatus, Store, Usage};
use parley::store::{Database, DatabaseUrl, INTERRUPTED, PgStore, StoreConfig};

use super::suite::{record, refs, start, telegram, turn};
use crate::fake_llm::{FakeLlm, Script};
use crate::fake_telegram::{FAKE_TOKEN, FakeLimits, User, private};
use crate::support::parley_command;
use crate::support::postgres::database;
use crate::telegram::Harness;

/// A new, empty store on a database of its own; `None` when the tests have no server.
pub async fn fresh() -> Option<(Arc<dyn Store>, ())> {
    let url = database().await?;
    Some((Arc::new(open(&url).await), ()))
}

/// The store on `url` with the default settings.
async fn open(url: &str) -> PgStore {
    PgStore::open(&StoreConfig::new(DatabaseUrl::new(url)))
        .await
        .expect("the store opens")
}

/// The migrations the database at `url` records as applied.
async fn applied_migrations(store: &PgStore) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(store.pool())
        .await
        .expect("the migration table")
}

/// The versions of the migrations in `migrations/postgres/`, in order.
fn shipped_migrations() -> Vec<i64> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres");
    let mut versions: Vec<i64> = std::fs::read_dir(dir)
        .expect("the migrations folder")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.split('_').next()?.parse().ok()
        })
        .collect();
    versions.sort_unstable();
    versions
}

#[tokio::test]
async fn opening_twice_migrates_once_and_keeps_the_conversation() {
    let Some(url) = database().await else { return };
    let key = telegram("42");
    let store = open(&url).await;
    let first = store.conversation(&key).await.expect("created");
    let shipped = shipped_migrations();
    assert!(shipped.len() >= 5, "{shipped:?}");
    assert_eq!(applied_migrations(&store).await, shipped);
    store.close().await;

    let reopened = open(&url).await;
    assert_eq!(applied_migrations(&reopened).await, shipped);
    assert_eq!(reopened.conversation(&key).await.expect("found"), first);
}

#[tokio::test]
async fn a_reply_left_streaming_by_a_restart_is_stored_partial_with_the_reason() {
    let Some(url) = database().await else { return };
    let topic = telegram("-100").with_thread("3");
    let reply = {
        let store = open(&url).await;
        let id = store.conversation(&topic).await.expect("created").id;
        let done = record("done", ReplyStatus::Complete, Usage::default());
        turn(&store, id, "7", "earlier", &done).await;
        let reply = start(&store, id, "7", "go").await.expect("streaming").reply;
        store
            .set_reply_messages(reply, &refs(&["101", "102"]))
            .await
            .expect("recorded");
        store
            .set_reply_text(reply, "half of the")
            .await
            .expect("text so far");
        store.close().await;
        reply
    };

    let store = open(&url).await;
    let recovered = store
        .recover_interrupted(PlatformKind::Telegram)
        .await
        .expect("recovered");
    let found: Vec<_> = recovered
        .iter()
        .map(|r| (r.id, r.content.as_str()))
        .collect();
    assert_eq!(found, [(reply, "half of the")]);
    assert_eq!(recovered[0].platform_messages, refs(&["101", "102"]));
    let (status, reason): (String, Option<String>) =
        sqlx::query_as("SELECT status, failure_reason FROM messages WHERE id = $1")
            .bind(reply.0)
            .fetch_one(store.pool())
            .await
            .expect("the row");
    assert_eq!(status, "partial");
    assert_eq!(reason.as_deref(), Some(INTERRUPTED));
}

#[tokio::test]
async fn the_statement_timeout_cancels_a_longer_statement() {
    let Some(url) = database().await else { return };
    let config = StoreConfig {
        statement_timeout: Duration::from_secs(1),
        ..StoreConfig::new(DatabaseUrl::new(&url))
    };
    let store = PgStore::open(&config).await.expect("opens");
    assert_eq!(store.statement_timeout().await.expect("shown"), "1s");
    let slept = sqlx::query("SELECT pg_sleep(10)")
        .execute(store.pool())
        .await
        .expect_err("cancelled");
    assert!(slept.to_string().contains("statement timeout"), "{slept}");
    store.ping().await.expect("the connection still answers");
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_the_servers_reason_but_not_the_password() {
    let Some(url) = database().await else { return };
    let mut wrong = reqwest::Url::parse(&url).expect("parses");
    wrong.set_password(Some("not-the-password")).expect("set");
    let config = StoreConfig::new(DatabaseUrl::new(wrong.as_str()));
    let error = Database::open(&config).await.expect_err("refused");
    let text = error.chain().to_string();
    assert!(
        text.contains("cannot connect to PostgreSQL (is the server running"),
        "{text}"
    );
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(
        !text.contains("not-the-password"),
        "the password leaks: {text}"
    );
    assert!(!format!("{config:?}").contains("not-the-password"));
}

/// `parley check` with `store.database_url = url`: its exit code and stderr.
async fn check_with(url: &str) -> (Option<i32>, String) {
    let llm = FakeLlm::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let output = parley_command(&["check"], &llm, &dir.path().join("unused.db"))
        .env("PARLEY__STORE__DATABASE_URL", url)
        .env("PARLEY__TELEGRAM__TOKEN", FAKE_TOKEN)
        .output()
        .await
        .expect("parley check runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr)
}

#[tokio::test]
async fn an_unreachable_server_stops_start_up_with_one_line_naming_the_setting() {
    // Nothing listens on port 1.
    let (code, stderr) = check_with("postgres://parley:pw-not-shown@127.0.0.1:1/parley").await;
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("store.database_url = postgres://parley:***@127.0.0.1:1/parley"),
        "{stderr}"
    );
    assert!(stderr.contains("is the server running"), "{stderr}");
    assert!(
        !stderr.contains("pw-not-shown"),
        "the password leaks: {stderr}"
    );
}

#[tokio::test]
async fn a_url_postgres_cannot_read_is_a_config_error_naming_the_setting() {
    let (code, stderr) = check_with("postgres://parley:pw-not-shown@db:port/parley").await;
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("config error: store.database_url"),
        "{stderr}"
    );
    assert!(
        stderr.contains("postgres://user:password@host:5432/database"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("pw-not-shown"),
        "the password leaks: {stderr}"
    );
}

#[tokio::test]
async fn the_bot_on_postgres_answers_a_telegram_message_and_stores_it_there() {
    let Some(url) = database().await else { return };
    let mut harness =
        Harness::with_limits(FakeLimits::default(), &[("STORE__DATABASE_URL", &url)]).await;
    assert!(harness.parsed_config().store.url.is_postgres());
    let alice = User::new(501, "Alice");
    harness.llm.push(Script::reply("Stored in PostgreSQL."));
    harness
        .tg
        .user_writes(&private(&alice), &alice, "where do you keep this?");
    harness
        .tg
        .wait_for(10, "the reply", |tg| tg.messages(501).len() == 1)
        .await;
    assert_eq!(harness.tg.messages(501)[0].text, "Stored in PostgreSQL.");
    harness.stop().await;

    let store = open(&url).await;
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT role, status, content FROM messages ORDER BY id")
            .fetch_all(store.pool())
            .await
            .expect("the rows");
    let rows: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|(r, s, c)| (r.as_str(), s.as_str(), c.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("user", "complete", "where do you keep this?"),
            ("assistant", "complete", "Stored in PostgreSQL."),
        ]
    );
}

#[tokio::test]
async fn sslmode_require_in_the_url_connects_over_tls() {
    let Some(url) = database().await else { return };
    let url = format!("{url}?sslmode=require");
    let store = open(&url).await;
    let tls: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .expect("the connection's TLS state");
    assert!(tls, "sslmode=require connects over TLS");
    let plain = open(&format!("{url}&sslmode=disable")).await;
    let tls: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(plain.pool())
        .await
        .expect("the connection's TLS state");
    assert!(!tls, "sslmode=disable does not");
}
