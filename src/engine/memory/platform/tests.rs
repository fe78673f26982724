//! Tests that the in-memory platform enforces what real platforms enforce.

use std::time::Duration;

use super::*;
use crate::engine::ports::{LengthUnit, Window};

fn platform() -> MemoryPlatform {
    MemoryPlatform::new(Limits {
        max_len: 10,
        unit: LengthUnit::Utf16,
        min_interval: Duration::from_secs(1),
        window: Some(Window {
            count: 3,
            per: Duration::from_secs(10),
        }),
        shared: None,
        bot: None,
        typing_counts: false,
        typing_every: Duration::from_secs(5),
    })
}

fn chat() -> ChatKey {
    ChatKey::new(PlatformKind::Telegram, "1")
}

#[tokio::test(start_paused = true)]
async fn text_longer_than_the_limit_is_rejected() {
    let platform = platform();
    let result = platform
        .send(&chat(), None, &"😀".repeat(6), Phase::Final)
        .await;
    assert!(matches!(result, Err(PlatformError::Rejected(_))));
}

#[tokio::test(start_paused = true)]
async fn calls_closer_than_the_interval_get_retry_after_and_count_as_429() {
    let platform = platform();
    let id = platform
        .send(&chat(), None, "a", Phase::Streaming)
        .await
        .unwrap();
    tokio::time::advance(Duration::from_millis(400)).await;
    let result = platform.edit(&chat(), &id, "ab", Phase::Streaming).await;
    assert_eq!(
        result,
        Err(PlatformError::RetryAfter(Duration::from_millis(600)))
    );
    assert_eq!(platform.rate_limited(), 1);
    assert_eq!(platform.message(&id).unwrap().text, "a");
}

#[tokio::test(start_paused = true)]
async fn the_window_limits_calls_beyond_its_count() {
    let platform = platform();
    for _ in 0..3 {
        platform
            .send(&chat(), None, "a", Phase::Final)
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    let result = platform.send(&chat(), None, "a", Phase::Final).await;
    assert_eq!(
        result,
        Err(PlatformError::RetryAfter(Duration::from_secs(7)))
    );
}

#[tokio::test(start_paused = true)]
async fn an_identical_edit_is_not_modified_unless_it_finalizes() {
    let platform = platform();
    let id = platform
        .send(&chat(), None, "a", Phase::Streaming)
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    let again = platform.edit(&chat(), &id, "a", Phase::Streaming).await;
    assert_eq!(
        again,
        Err(PlatformError::Rejected("message is not modified".into()))
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(platform.edit(&chat(), &id, "a", Phase::Final).await.is_ok());
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(
        platform
            .edit(&chat(), &id, "a", Phase::Final)
            .await
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn a_deleted_message_is_gone_for_edits() {
    let platform = platform();
    let id = platform
        .send(&chat(), None, "a", Phase::Streaming)
        .await
        .unwrap();
    platform.delete(&id);
    tokio::time::advance(Duration::from_secs(1)).await;
    let result = platform.edit(&chat(), &id, "b", Phase::Final).await;
    assert_eq!(result, Err(PlatformError::MessageGone));
    assert!(platform.texts(&chat()).is_empty());
}

#[tokio::test(start_paused = true)]
async fn injected_faults_and_forbidden_answer_in_order() {
    let platform = platform();
    platform.fail_next_with_retry_after(1, Duration::from_secs(3));
    let first = platform.send(&chat(), None, "a", Phase::Final).await;
    assert_eq!(
        first,
        Err(PlatformError::RetryAfter(Duration::from_secs(3)))
    );
    platform.forbid("blocked");
    let second = platform.send(&chat(), None, "a", Phase::Final).await;
    assert_eq!(second, Err(PlatformError::Forbidden("blocked".into())));
    assert_eq!(platform.calls().len(), 2);
}
