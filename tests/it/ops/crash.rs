//! A kill -9 in the middle of a streaming reply leaves a consistent database, and the next
//! start marks the reply partial with the text that had streamed.

use std::time::Duration;

use parley::store::INTERRUPTED;
use tokio::io::AsyncReadExt;

use super::{Install, first_reply, open_db};
use crate::fake_llm::Script;
use crate::support::slow_answer;

/// The streaming reply's content, once the bot has recorded some of it.
async fn streamed_so_far(pool: &sqlx::SqlitePool) -> Option<String> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT content FROM messages WHERE role = 'assistant' AND status = 'streaming'",
    )
    .fetch_optional(pool)
    .await
    .ok()
    .flatten();
    row.map(|(content,)| content).filter(|c| !c.is_empty())
}

#[tokio::test]
async fn a_reply_killed_mid_stream_is_marked_partial_with_its_text_on_the_next_start() {
    let install = Install::new().await;
    let answer = slow_answer();
    install
        .fake
        .push(Script::reply(answer.clone()).delay(Duration::from_millis(100)));
    let mut child = install.command(&["chat"], &[]).spawn().expect("start");
    let mut stdin = child.stdin.take().expect("stdin");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"tell me a long story\n")
        .await
        .expect("asked");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 8];
    stdout
        .read_exact(&mut first)
        .await
        .expect("the reply starts streaming");
    let pool = open_db(&install.db()).await;
    let mut saved = None;
    for _ in 0..300 {
        saved = streamed_so_far(&pool).await;
        if saved.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let saved = saved.expect("the text so far is recorded while streaming");
    child.start_kill().expect("kill -9");
    child.wait().await.expect("killed");
    pool.close().await;

    let restart = install.run(&["chat"], "", &[]).await;
    assert_eq!(restart.code, Some(0), "{}", restart.stderr);
    assert!(
        restart.stderr.contains("marked replies"),
        "{}",
        restart.stderr
    );

    let (status, reason, content) = first_reply(&install).await;
    assert_eq!(status, "partial");
    assert_eq!(reason.as_deref(), Some(INTERRUPTED));
    assert!(content.len() >= saved.len(), "{content}");
    assert!(answer.starts_with(&content), "{content}");
}
