//! `parley run` stopping and crashing with a reply in flight: SIGTERM marks it after the grace,
//! kill -9 leaves it to the next start, which marks it in the chat.

use std::sync::Arc;
use std::time::Duration;

use parley::store::INTERRUPTED;

use super::{Bot, Install, first_reply, open_db};
use crate::fake_llm::Script;
use crate::fake_telegram::{FakeTelegram, User, group, private};
use crate::support::MARKER;

/// A long answer streamed slowly: 4 characters every 100 ms, about 35 s in all.
fn slow_answer() -> Script {
    let text: String = (0..90).map(|i| format!("part{i:03} ")).collect();
    Script::reply(text).delay(Duration::from_millis(100))
}

#[tokio::test]
async fn sigterm_lets_the_grace_pass_then_marks_the_streaming_reply_and_exits_0() {
    let install = Install::new().await;
    install.fake.push(slow_answer());
    // The marker is one more paced call after the grace, and the row is written after it, all
    // within one second (stop.rs's MARKING_TIME): with the default 1-s chat interval the marker
    // can wait most of that second for its slot, and under a loaded test run the row then
    // missed it. A short interval keeps this test about the order, not the machine's speed.
    let env = [
        ("PARLEY__SHUTDOWN__GRACE_SECS", "1"),
        ("PARLEY__TELEGRAM__EDIT_INTERVAL_MS", "100"),
    ];
    let bot = Bot::start(&install, None, &env).await;
    bot.wait_healthy().await;
    let alice = User::new(4242, "Alice");
    bot.tg
        .user_writes(&private(&alice), &alice, "tell me a long story");
    bot.tg
        .wait_for(30, "the reply streaming", |tg| {
            !tg.drafts(alice.id).is_empty()
        })
        .await;
    let metrics = bot.get("/metrics").await;
    let incoming = r#"parley_incoming_messages_total{platform="telegram"} 1"#;
    assert!(metrics.contains(incoming), "{metrics}");
    assert!(metrics.contains("parley_active_streams 1"), "{metrics}");
    let tg = bot.tg.clone();
    let run = bot.terminate().await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let messages = tg.messages(alice.id);
    let last = messages.last().expect("the reply landed as a message");
    assert!(last.text.starts_with("part000 part001"), "{}", last.text);
    assert!(last.text.ends_with(MARKER), "{}", last.text);
    let (status, _, content) = first_reply(&install).await;
    assert_eq!(status, "partial");
    assert!(
        content.starts_with("part000") && !content.contains("⚠️"),
        "{content}"
    );
}

#[tokio::test]
async fn a_reply_killed_mid_stream_is_marked_in_the_chat_on_the_next_start() {
    let install = Install::new().await;
    install.fake.push(slow_answer());
    let tg = Arc::new(FakeTelegram::start().await);
    let (bob, room) = (User::new(905, "Bob"), group(-100905, None));
    let bot = Bot::start_with(&install, tg.clone(), None, &[]).await;
    bot.wait_healthy().await;
    tg.user_writes(&room, &bob, "@parley_bot tell me a long story");
    let pool = open_db(&install.db()).await;
    let mut recorded = false;
    for _ in 0..300 {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT content, platform_messages FROM messages WHERE status = 'streaming'",
        )
        .fetch_optional(&pool)
        .await
        .ok()
        .flatten();
        recorded = row.is_some_and(|(text, refs)| !text.is_empty() && refs != "[]");
        if recorded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recorded,
        "the text and message so far are recorded while streaming"
    );
    pool.close().await;
    bot.kill().await;
    let shown = tg.messages(room.id);
    assert!(!shown[0].text.contains("interrupted"), "{}", shown[0].text);

    let again = Bot::start_with(&install, tg.clone(), None, &[]).await;
    tg.wait_for(30, "the interrupted reply marked", |tg| {
        let messages = tg.messages(room.id);
        messages.first().is_some_and(|m| m.text.ends_with(MARKER))
    })
    .await;
    let marked = &tg.messages(room.id)[0];
    assert!(marked.text.starts_with("part000"), "{}", marked.text);
    let run = again.terminate().await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let (status, reason, content) = first_reply(&install).await;
    assert_eq!(status, "partial");
    assert_eq!(reason.as_deref(), Some(INTERRUPTED));
    assert!(content.starts_with("part000"), "{content}");
}
