//! Tests of the delivery routine against the in-memory platform, on tokio's paused clock.

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::engine::event::PlatformKind;
use crate::engine::memory::{CallKind, MemoryPlatform};
use crate::engine::ports::LengthUnit;

fn platform(max_len: usize) -> MemoryPlatform {
    MemoryPlatform::new(Limits {
        max_len,
        unit: LengthUnit::Chars,
        min_interval: Duration::from_secs(1),
        window: None,
        shared: None,
        bot: None,
        typing_counts: false,
        typing_every: Duration::from_secs(5),
    })
}

fn chat() -> ChatKey {
    ChatKey::new(PlatformKind::Telegram, "7")
}

fn sends(platform: &MemoryPlatform) -> usize {
    let calls = platform.calls().into_iter();
    calls.filter(|c| c.kind == CallKind::Send).count()
}

#[tokio::test(start_paused = true)]
async fn a_notice_sits_out_429s_and_lands() {
    let (platform, pacer) = (platform(100), Pacer::new());
    platform.fail_next_with_retry_after(2, Duration::from_secs(3));
    let start = Instant::now();
    let sent = send(&platform, &pacer, &chat(), None, "busy", Policy::NOTICE).await;
    assert_eq!(sent.map(|m| m.len()), Ok(1));
    assert_eq!(platform.texts(&chat()), ["busy"]);
    assert_eq!(start.elapsed(), Duration::from_secs(6), "two waits of 3 s");
    assert_eq!(sends(&platform), 3);
}

#[tokio::test(start_paused = true)]
async fn a_delivery_gives_up_after_the_429s_its_policy_allows() {
    let (platform, pacer) = (platform(100), Pacer::new());
    platform.fail_next_with_retry_after(10, Duration::from_secs(1));
    let sent = send(&platform, &pacer, &chat(), None, "hi", Policy::NOTICE).await;
    assert_eq!(sent, Err(PlatformError::RetryAfter(Duration::from_secs(1))));
    assert_eq!(sends(&platform), 1 + Policy::NOTICE.retry_afters as usize);
}

#[tokio::test(start_paused = true)]
async fn an_unavailable_platform_is_tried_again_after_a_backoff_then_given_up() {
    let (platform, pacer) = (platform(100), Pacer::new());
    let down = PlatformError::Unavailable("502".into());
    platform.fail_next(10, down.clone());
    let start = Instant::now();
    let sent = send(&platform, &pacer, &chat(), None, "hi", Policy::NOTICE).await;
    assert_eq!(sent, Err(down));
    assert_eq!(sends(&platform), Policy::NOTICE.unavailable as usize);
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(2),
        "one backoff of 2 s"
    );
}

#[tokio::test(start_paused = true)]
async fn a_forbidden_chat_is_not_tried_again() {
    let (platform, pacer) = (platform(100), Pacer::new());
    platform.forbid("blocked");
    let sent = send(&platform, &pacer, &chat(), None, "hi", Policy::FINAL).await;
    assert!(matches!(sent, Err(PlatformError::Forbidden(_))), "{sent:?}");
    assert_eq!(sends(&platform), 1);
}

#[tokio::test(start_paused = true)]
async fn a_long_answer_is_split_into_paced_messages_and_a_notice_is_cut() {
    let (platform, pacer) = (platform(20), Pacer::new());
    let question = MessageRef::new("q1");
    let answer = "one two three four five six seven eight nine ten";
    let start = Instant::now();
    let sent = send(
        &platform,
        &pacer,
        &chat(),
        Some(&question),
        answer,
        Policy::ANSWER,
    )
    .await
    .expect("sent");
    assert!(sent.len() >= 3, "{sent:?}");
    let texts = platform.texts(&chat());
    assert_eq!(texts.concat(), answer);
    let first = platform.message(&sent[0]).expect("the first message");
    assert_eq!(
        first.reply_to,
        Some(question),
        "the first piece answers the question"
    );
    assert!(
        platform
            .message(&sent[1])
            .expect("the second")
            .reply_to
            .is_none()
    );
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(sent.len() as u64 - 1),
        "paced"
    );
    assert_eq!(platform.rate_limited(), 0);
    let cut = send(&platform, &pacer, &chat(), None, answer, Policy::NOTICE).await;
    let cut = platform
        .message(&cut.expect("sent")[0])
        .expect("the notice")
        .text;
    assert_eq!(cut.chars().count(), 20);
    assert!(cut.ends_with('…'), "{cut}");
}
