//! What only the SQLite store has: a real database file in a temporary folder, its URLs and
//! pragmas, and what survives closing and reopening it.

use std::path::Path;
use std::sync::Arc;

use parley::engine::event::PlatformKind;
use parley::engine::ports::{MessageRowId, ReplyStatus, Store, Usage};
use parley::store::{INTERRUPTED, SqliteStore};
use tempfile::TempDir;

use super::suite::{record, refs, start, telegram, turn};

/// A new, empty store in a file of its own folder, which must outlive it.
pub async fn fresh() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    (Arc::new(store), dir)
}

async fn open(dir: &TempDir) -> SqliteStore {
    open_at(&dir.path().join("parley.db")).await
}

async fn open_at(path: &Path) -> SqliteStore {
    let url = format!("sqlite://{}", path.display());
    SqliteStore::open(&url).await.expect("the store opens")
}

#[tokio::test]
async fn conversation_id_is_stable_across_close_and_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = telegram("42");
    let store = open(&dir).await;
    let first = store.conversation(&key).await.expect("created");
    store.close().await;

    let reopened = open(&dir).await;
    assert_eq!(reopened.conversation(&key).await.expect("found"), first);
}

#[tokio::test]
async fn a_reply_left_streaming_by_a_restart_is_stored_partial_with_the_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let topic = telegram("-100").with_thread("3");
    let reply = {
        let store = open(&dir).await;
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

    let store = open(&dir).await;
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
    let (status, reason) = status_of(&dir, reply).await;
    assert_eq!(status, "partial");
    assert_eq!(reason.as_deref(), Some(INTERRUPTED));
}

/// Reads a reply's status and reason straight from the file, beside the store.
async fn status_of(dir: &TempDir, reply: MessageRowId) -> (String, Option<String>) {
    let url = format!("sqlite://{}", dir.path().join("parley.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("connects");
    sqlx::query_as("SELECT status, failure_reason FROM messages WHERE id = ?1")
        .bind(reply.0)
        .fetch_one(&pool)
        .await
        .expect("row exists")
}

#[tokio::test]
async fn opening_creates_the_missing_parent_folder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a").join("b").join("parley.db");
    let store = open_at(&path).await;
    store.ping().await.expect("answers");
    assert!(path.exists());
}

#[tokio::test]
async fn plain_paths_and_sqlite_colon_urls_open_the_same_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("parley.db");
    let key = telegram("42");
    let by_plain = SqliteStore::open(&path.display().to_string())
        .await
        .expect("plain");
    let id = by_plain.conversation(&key).await.expect("created").id;
    by_plain.close().await;
    let by_url = SqliteStore::open(&format!("sqlite:{}", path.display()))
        .await
        .expect("url");
    assert_eq!(by_url.conversation(&key).await.expect("found").id, id);
}

#[tokio::test]
async fn a_file_database_runs_in_wal_mode_with_foreign_keys_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    let pragmas = store.pragmas().await.expect("pragmas");
    assert_eq!(pragmas.journal_mode, "wal");
    assert!(pragmas.foreign_keys);
    assert_eq!(pragmas.busy_timeout_ms, 5000);
}

#[tokio::test]
async fn integrity_check_says_ok() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    assert_eq!(store.integrity_check().await.expect("checked"), "ok");
}

#[tokio::test]
async fn an_in_memory_store_keeps_its_data_while_open() {
    let store = SqliteStore::open("sqlite::memory:").await.expect("opens");
    let key = telegram("42");
    let id = store.conversation(&key).await.expect("created").id;
    start(&store, id, "7", "hi").await.expect("stored");
    assert_eq!(store.conversation(&key).await.expect("found").id, id);
    assert_eq!(store.history(id).await.expect("history").len(), 1);
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![b'x'; 8192]).expect("written");
    let url = format!("sqlite://{}", path.display());
    let error = SqliteStore::open(&url).await.expect_err("refused");
    assert!(error.to_string().contains("garbage.db"), "{error}");
    let chain = error.chain().to_string();
    assert!(
        chain.contains("file is not a database"),
        "SQLite's cause is kept: {chain}"
    );
}
