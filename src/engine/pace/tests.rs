//! Tests of the pacer, on tokio's paused clock.

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::engine::event::PlatformKind;
use crate::engine::ports::{LengthUnit, Window};

fn limits(min_interval_ms: u64, window: Option<(u32, u64)>) -> Limits {
    Limits {
        max_len: 100,
        unit: LengthUnit::Chars,
        min_interval: Duration::from_millis(min_interval_ms),
        window: window.map(|(count, per)| Window {
            count,
            per: Duration::from_millis(per),
        }),
        typing_every: Duration::from_secs(5),
    }
}

fn chat(name: &str) -> ChatKey {
    ChatKey::new(PlatformKind::Telegram, name)
}

#[tokio::test(start_paused = true)]
async fn first_call_goes_at_once_and_the_next_waits_the_interval() {
    let pacer = Pacer::new();
    let start = Instant::now();
    let limits = limits(1000, None);
    pacer.acquire(&chat("a"), &limits).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    pacer.acquire(&chat("a"), &limits).await;
    assert_eq!(start.elapsed(), Duration::from_millis(1000));
}

#[tokio::test(start_paused = true)]
async fn other_chats_are_not_slowed_down() {
    let pacer = Pacer::new();
    let start = Instant::now();
    let limits = limits(1000, None);
    pacer.acquire(&chat("a"), &limits).await;
    pacer.acquire(&chat("b"), &limits).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn the_rolling_window_limits_bursts() {
    let pacer = Pacer::new();
    let start = Instant::now();
    let limits = limits(100, Some((3, 3000)));
    for _ in 0..4 {
        pacer.acquire(&chat("a"), &limits).await;
    }
    assert_eq!(start.elapsed(), Duration::from_millis(3000));
}

#[tokio::test(start_paused = true)]
async fn a_pause_holds_every_call_until_it_ends() {
    let pacer = Pacer::new();
    let start = Instant::now();
    pacer.pause(&chat("a"), Duration::from_secs(7));
    pacer.acquire(&chat("a"), &limits(10, None)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_share_the_chat_interval() {
    let pacer = Pacer::new();
    let start = Instant::now();
    let limits = limits(500, None);
    let calls = (0..4).map(|_| {
        let pacer = pacer.clone();
        async move {
            pacer.acquire(&chat("a"), &limits).await;
            start.elapsed()
        }
    });
    let mut times = futures_util::future::join_all(calls).await;
    times.sort();
    let expected: Vec<_> = (0..4).map(|i| Duration::from_millis(500 * i)).collect();
    assert_eq!(times, expected);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_acquire_does_not_use_a_slot() {
    let pacer = Pacer::new();
    let start = Instant::now();
    let limits = limits(1000, None);
    let a = chat("a");
    pacer.acquire(&a, &limits).await;
    let raced = tokio::time::timeout(Duration::from_millis(10), pacer.acquire(&a, &limits));
    assert!(raced.await.is_err());
    pacer.acquire(&a, &limits).await;
    assert_eq!(start.elapsed(), Duration::from_millis(1000));
}

#[tokio::test(start_paused = true)]
async fn idle_chats_are_forgotten() {
    let pacer = Pacer::new();
    let limits = limits(1000, Some((20, 60_000)));
    for i in 0..200 {
        pacer.acquire(&chat(&i.to_string()), &limits).await;
    }
    tokio::time::advance(Duration::from_secs(61)).await;
    for i in 0..70 {
        pacer.acquire(&chat(&format!("new{i}")), &limits).await;
    }
    assert!(pacer.tracked_chats() <= 140, "{}", pacer.tracked_chats());
}

#[tokio::test(start_paused = true)]
async fn try_acquire_takes_a_free_slot_or_says_when_the_next_opens() {
    let pacer = Pacer::new();
    let start = Instant::now();
    let limits = limits(1000, None);
    assert_eq!(pacer.try_acquire(&chat("a"), &limits), Ok(()));
    let next = start + Duration::from_millis(1000);
    assert_eq!(pacer.try_acquire(&chat("a"), &limits), Err(next));
    pacer.pause(&chat("a"), Duration::from_secs(3));
    let paused = start + Duration::from_secs(3);
    assert_eq!(pacer.try_acquire(&chat("a"), &limits), Err(paused));
}
