//! Tests of marking crash-interrupted replies in the chat.

use std::time::Duration;

use super::*;
use crate::engine::event::{ChatKey, MessageRef, PlatformKind};
use crate::engine::memory::MemoryPlatform;
use crate::engine::ports::{LengthUnit, MessageRowId};

fn limits(max_len: usize) -> Limits {
    Limits {
        max_len,
        unit: LengthUnit::Chars,
        min_interval: Duration::from_millis(100),
        window: None,
        shared: None,
        bot: None,
        typing_counts: false,
        typing_every: Duration::from_secs(5),
    }
}

fn chat() -> ChatKey {
    ChatKey::new(PlatformKind::Telegram, "1")
}

fn reply(content: &str, messages: &[MessageRef]) -> InterruptedReply {
    InterruptedReply {
        id: MessageRowId(1),
        key: chat(),
        platform_messages: messages.to_vec(),
        content: content.into(),
    }
}

async fn sent(platform: &MemoryPlatform, text: &str) -> MessageRef {
    let id = platform.send(&chat(), None, text, Phase::Streaming).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    id.expect("sent")
}

#[tokio::test(start_paused = true)]
async fn the_last_message_keeps_its_text_and_gains_the_marker() {
    let platform = MemoryPlatform::new(limits(100));
    let message = sent(&platform, "Half an ans").await;
    let interrupted = reply("Half an answer", std::slice::from_ref(&message));
    mark_interrupted(&platform, &Pacer::new(), &interrupted)
        .await
        .expect("edited");
    let text = platform.message(&message).expect("exists").text;
    assert_eq!(
        text,
        "Half an answer\n\n⚠️ reply interrupted: the bot restarted"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reply_in_two_messages_marks_the_second_with_its_own_part() {
    let limits = limits(60);
    let content = format!("{}\n\n{}", "a".repeat(50), "b".repeat(18));
    let pieces = split::split(&content, limits.max_len, limits.unit);
    assert_eq!(pieces.len(), 2, "the text needs two messages");
    let marked = marked_text(
        &reply(&content, &[MessageRef::new("1"), MessageRef::new("2")]),
        &limits,
    );
    let marked = marked.expect("fits");
    assert!(marked.starts_with(&pieces[1].text), "{marked}");
    assert!(!marked.contains("aaa"), "{marked}");
}

#[tokio::test(start_paused = true)]
async fn text_recorded_past_the_last_sent_message_marks_that_message() {
    let content = format!("{}\n\n{}", "a".repeat(40), "b".repeat(40));
    let marked = marked_text(&reply(&content, &[MessageRef::new("1")]), &limits(80));
    assert_eq!(
        marked, None,
        "the first part and the marker do not fit together"
    );
    let longer = format!("{}\n\n{}", "a".repeat(150), "b".repeat(100));
    let marked = marked_text(&reply(&longer, &[MessageRef::new("1")]), &limits(200));
    let marked = marked.expect("fits");
    assert!(
        marked.starts_with("aaaa") && !marked.contains("bbb"),
        "{marked}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reply_without_text_shows_only_the_marker() {
    let marked = marked_text(&reply("", &[MessageRef::new("1")]), &limits(100));
    assert_eq!(
        marked.as_deref(),
        Some("⚠️ reply interrupted: the bot restarted")
    );
}

#[tokio::test(start_paused = true)]
async fn a_reply_interrupted_before_anything_showed_gets_the_marker_on_its_own() {
    let platform = MemoryPlatform::new(limits(100));
    // Text recorded but never shown: it is not shown now either.
    let interrupted = reply("Never shown", &[]);
    mark_interrupted(&platform, &Pacer::new(), &interrupted)
        .await
        .expect("sent");
    assert_eq!(
        platform.texts(&chat()),
        ["⚠️ reply interrupted: the bot restarted"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_last_message_gets_the_marker_as_an_answer() {
    let platform = MemoryPlatform::new(limits(45));
    let message = sent(&platform, "x").await;
    let interrupted = reply(&"y".repeat(45), std::slice::from_ref(&message));
    mark_interrupted(&platform, &Pacer::new(), &interrupted)
        .await
        .expect("answered");
    let texts = platform.texts(&chat());
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts[1].contains("reply interrupted"), "{texts:?}");
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_is_waited_out() {
    let platform = MemoryPlatform::new(limits(100));
    let message = sent(&platform, "Half").await;
    platform.fail_next_with_retry_after(1, Duration::from_secs(2));
    let interrupted = reply("Half", std::slice::from_ref(&message));
    mark_interrupted(&platform, &Pacer::new(), &interrupted)
        .await
        .expect("edited after the wait");
    assert!(
        platform
            .message(&message)
            .expect("exists")
            .text
            .ends_with("restarted")
    );
}
