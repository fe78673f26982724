//! Tests of the pacer, on tokio's paused clock.

use std::sync::{Arc, Mutex};
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
        shared: None,
        bot: None,
        typing_counts: false,
        typing_every: Duration::from_secs(5),
    }
}

/// Limits of a chat with a bot-wide budget of `count` calls a second.
fn budgeted(min_interval_ms: u64, count: u32) -> Limits {
    Limits {
        bot: Some(Window {
            count,
            per: Duration::from_secs(1),
        }),
        typing_counts: true,
        ..limits(min_interval_ms, None)
    }
}

fn chat(name: &str) -> ChatKey {
    ChatKey::new(PlatformKind::Telegram, name)
}

const FINAL: Urgency = Urgency::Final;

#[tokio::test(start_paused = true)]
async fn first_call_goes_at_once_and_the_next_waits_the_interval() {
    let pacer = Pacer::new();
    let start = Instant::now();
    let limits = limits(1000, None);
    pacer.acquire(&chat("a"), &limits, FINAL).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    pacer.acquire(&chat("a"), &limits, FINAL).await;
    assert_eq!(start.elapsed(), Duration::from_millis(1000));
}

#[tokio::test(start_paused = true)]
async fn other_chats_are_not_slowed_down() {
    let pacer = Pacer::new();
    let start = Instant::now();
    let limits = limits(1000, None);
    pacer.acquire(&chat("a"), &limits, FINAL).await;
    pacer.acquire(&chat("b"), &limits, FINAL).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn the_rolling_window_limits_bursts() {
    let pacer = Pacer::new();
    let start = Instant::now();
    let limits = limits(100, Some((3, 3000)));
    for _ in 0..4 {
        pacer.acquire(&chat("a"), &limits, FINAL).await;
    }
    assert_eq!(start.elapsed(), Duration::from_millis(3000));
}

#[tokio::test(start_paused = true)]
async fn a_pause_holds_every_call_until_it_ends() {
    let pacer = Pacer::new();
    let start = Instant::now();
    let limits = limits(10, None);
    pacer.pause(&chat("a"), &limits, Duration::from_secs(7));
    pacer.acquire(&chat("a"), &limits, FINAL).await;
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
            pacer.acquire(&chat("a"), &limits, FINAL).await;
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
    pacer.acquire(&a, &limits, FINAL).await;
    let raced = tokio::time::timeout(Duration::from_millis(10), pacer.acquire(&a, &limits, FINAL));
    assert!(raced.await.is_err());
    pacer.acquire(&a, &limits, FINAL).await;
    assert_eq!(start.elapsed(), Duration::from_millis(1000));
}

#[tokio::test(start_paused = true)]
async fn idle_chats_are_forgotten() {
    let pacer = Pacer::new();
    let limits = limits(1000, Some((20, 60_000)));
    for i in 0..200 {
        pacer.acquire(&chat(&i.to_string()), &limits, FINAL).await;
    }
    tokio::time::advance(Duration::from_secs(61)).await;
    for i in 0..70 {
        pacer
            .acquire(&chat(&format!("new{i}")), &limits, FINAL)
            .await;
    }
    assert!(pacer.tracked_chats() <= 140, "{}", pacer.tracked_chats());
}

#[tokio::test(start_paused = true)]
async fn try_acquire_takes_a_free_slot_or_says_when_the_next_opens() {
    let pacer = Pacer::new();
    let start = Instant::now();
    let limits = limits(1000, None);
    assert_eq!(pacer.try_acquire(&chat("a"), &limits, FINAL), Ok(()));
    let next = start + Duration::from_millis(1000);
    assert_eq!(pacer.try_acquire(&chat("a"), &limits, FINAL), Err(next));
    pacer.pause(&chat("a"), &limits, Duration::from_secs(3));
    let paused = start + Duration::from_secs(3);
    assert_eq!(pacer.try_acquire(&chat("a"), &limits, FINAL), Err(paused));
}

/// Limits of a topic in a group whose topics share `count` calls per `per_ms`.
fn topic_limits(count: u32, per_ms: u64) -> Limits {
    Limits {
        shared: Some(Rate {
            min_interval: Duration::from_millis(100),
            window: Some(Window {
                count,
                per: Duration::from_millis(per_ms),
            }),
        }),
        ..limits(100, None)
    }
}

#[tokio::test(start_paused = true)]
async fn the_topics_of_a_group_share_the_groups_budget() {
    let pacer = Pacer::new();
    let start = Instant::now();
    let limits = topic_limits(3, 3000);
    let group = chat("-100");
    for topic in ["1", "2", "3"] {
        pacer
            .acquire(&group.clone().with_thread(topic), &limits, FINAL)
            .await;
    }
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(200),
        "the group's gap, not the window"
    );
    pacer
        .acquire(&group.clone().with_thread("4"), &limits, FINAL)
        .await;
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(3),
        "the fourth waits for the group window"
    );
    pacer
        .acquire(&chat("-200").with_thread("1"), &limits, FINAL)
        .await;
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(3),
        "another group has its own budget"
    );
}

#[tokio::test(start_paused = true)]
async fn a_429_in_one_topic_pauses_the_whole_group() {
    let pacer = Pacer::new();
    let start = Instant::now();
    let limits = topic_limits(20, 60_000);
    let group = chat("-100");
    pacer.pause(
        &group.clone().with_thread("1"),
        &limits,
        Duration::from_secs(5),
    );
    pacer
        .acquire(&group.clone().with_thread("2"), &limits, FINAL)
        .await;
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn previews_spread_over_a_windowed_chat_and_leave_the_final_text_a_slot() {
    let pacer = Pacer::new();
    let start = Instant::now();
    // 20 a minute with one call a second allowed: previews go every 3 s, not every second.
    let limits = topic_limits(20, 60_000);
    let topic = chat("-100").with_thread("1");
    let mut previews = Vec::new();
    for _ in 0..21 {
        pacer.acquire(&topic, &limits, Urgency::Preview).await;
        previews.push(start.elapsed());
    }
    let gaps: Vec<Duration> = previews.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g == Duration::from_secs(3)),
        "{gaps:?}"
    );
    // A minute of previews: the final text still gets its slot within the spread gap.
    let before = start.elapsed();
    pacer.acquire(&topic, &limits, FINAL).await;
    assert!(start.elapsed() - before <= Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn waiting_calls_are_served_most_urgent_first_and_previews_oldest_first() {
    let pacer = Pacer::new();
    let limits = budgeted(0, 2);
    // Use up the bot-wide budget.
    pacer.acquire(&chat("x"), &limits, FINAL).await;
    pacer.acquire(&chat("y"), &limits, FINAL).await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let wanted = [
        ("old preview", Urgency::Preview),
        ("newer preview", Urgency::Preview),
        ("final", Urgency::Final),
        ("first", Urgency::First),
    ];
    let mut tasks = Vec::new();
    for (i, (name, urgency)) in wanted.into_iter().enumerate() {
        let (pacer, order) = (pacer.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            pacer.acquire(&chat(&i.to_string()), &limits, urgency).await;
            order.lock().unwrap().push(name);
        }));
        tokio::time::advance(Duration::from_millis(1)).await;
    }
    for task in tasks {
        task.await.unwrap();
    }
    let order = order.lock().unwrap().clone();
    assert_eq!(order, ["first", "final", "old preview", "newer preview"]);
}

#[tokio::test(start_paused = true)]
async fn a_busy_bot_wide_budget_stays_busy_without_bursts_and_within_its_window() {
    let pacer = Pacer::new();
    let start = Instant::now();
    let limits = budgeted(1000, 30);
    let times = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..300 {
        let (pacer, times) = (pacer.clone(), times.clone());
        tasks.push(tokio::spawn(async move {
            // Each chat calls three times, a second apart at the earliest.
            for _ in 0..3 {
                pacer
                    .acquire(&chat(&i.to_string()), &limits, Urgency::Preview)
                    .await;
                times.lock().unwrap().push(start.elapsed());
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut times = times.lock().unwrap().clone();
    times.sort();
    assert_eq!(times.len(), 900);
    let window = Duration::from_secs(1) + JITTER;
    for (i, at) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|t| **t - *at < window).count();
        assert!(
            in_window <= 30,
            "{in_window} calls within {window:?} from {at:?}"
        );
    }
    // Busy: once calls wait for the budget, one call every window/30, never a burst.
    let gap = window / 30;
    let busy = &times[30..];
    assert!(
        busy.windows(2).all(|w| w[1] - w[0] >= gap),
        "a burst in {busy:?}"
    );
    // Never idle while calls wait: after the first window, the other 870 calls take about 870
    // gaps (each grant may come up to a millisecond late: tokio's timers have a resolution of
    // 1 ms).
    let took = *times.last().unwrap();
    assert!(
        took <= window + gap * 870 + Duration::from_millis(870),
        "took {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_goes_at_once_while_the_bot_wide_window_has_room_and_nothing_waits_for_it() {
    let pacer = Pacer::new();
    let start = Instant::now();
    let limits = budgeted(1000, 30);
    // Most of the window used, by chats that now wait for their own next slot.
    for i in 0..29 {
        pacer.acquire(&chat(&i.to_string()), &limits, FINAL).await;
    }
    let waiting: Vec<Grant> = (0..3)
        .map(|i| pacer.acquire(&chat(&i.to_string()), &limits, FINAL))
        .collect();
    assert!(waiting.iter().all(|w| !w.was_immediate()));
    // They wait for their chats, not for the bot: a first text elsewhere takes the last slot.
    let first = pacer.acquire(&chat("new"), &limits, Urgency::First);
    assert!(first.was_immediate());
    first.await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    // A call in a chat where one waits queues behind it, whatever its urgency.
    let behind = pacer.acquire(&chat("1"), &limits, Urgency::First);
    assert!(!behind.was_immediate());
    // The window is full now: the next call in a new chat waits for the bot-wide budget, and
    // typing is skipped while it does.
    let full = pacer.acquire(&chat("other"), &limits, Urgency::First);
    assert!(!full.was_immediate());
    assert!(
        pacer
            .try_acquire(&chat("t"), &limits, Urgency::Typing)
            .is_err()
    );
    drop((waiting, behind));
    full.await;
    assert_eq!(start.elapsed(), Duration::from_secs(1) + JITTER);
}

#[tokio::test(start_paused = true)]
async fn typing_is_skipped_while_calls_wait_and_counts_only_where_the_platform_counts_it() {
    let pacer = Pacer::new();
    let limits = budgeted(0, 1);
    pacer.acquire(&chat("a"), &limits, FINAL).await;
    let waiting = pacer.acquire(&chat("b"), &limits, FINAL);
    assert!(!waiting.was_immediate());
    assert!(
        pacer
            .try_acquire(&chat("c"), &limits, Urgency::Typing)
            .is_err()
    );
    waiting.await;
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(
        pacer.try_acquire(&chat("c"), &limits, Urgency::Typing),
        Ok(())
    );
    // Typing used the budget: a final now waits for the next slot.
    let start = Instant::now();
    pacer.acquire(&chat("c"), &limits, FINAL).await;
    assert_eq!(start.elapsed(), Duration::from_secs(1) + JITTER);
    // Where typing does not count, it never waits and uses nothing.
    let uncounted = Limits {
        typing_counts: false,
        ..limits
    };
    for _ in 0..5 {
        assert_eq!(
            pacer.try_acquire(&chat("d"), &uncounted, Urgency::Typing),
            Ok(())
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_dropped_wait_leaves_the_queue_without_using_a_slot() {
    let pacer = Pacer::new();
    let start = Instant::now();
    let limits = budgeted(0, 1);
    pacer.acquire(&chat("a"), &limits, FINAL).await;
    let dropped = pacer.acquire(&chat("b"), &limits, Urgency::First);
    drop(dropped);
    pacer.acquire(&chat("c"), &limits, Urgency::Preview).await;
    assert_eq!(start.elapsed(), Duration::from_secs(1) + JITTER);
}

#[tokio::test(start_paused = true)]
async fn a_call_outside_the_bot_wide_budget_does_not_wait_for_it() {
    let pacer = Pacer::new();
    let start = Instant::now();
    let limits = budgeted(0, 1);
    pacer.acquire(&chat("a"), &limits, FINAL).await;
    let queued = tokio::spawn({
        let pacer = pacer.clone();
        async move { pacer.acquire(&chat("b"), &limits, FINAL).await }
    });
    tokio::task::yield_now().await;
    let outside = Limits {
        bot: None,
        ..limits
    };
    pacer.acquire(&chat("c"), &outside, FINAL).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    queued.await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1) + JITTER);
}

#[tokio::test(start_paused = true)]
async fn acquire_when_ready_says_when_the_chat_allows_a_call_without_queueing() {
    let pacer = Pacer::new();
    let start = Instant::now();
    let limits = budgeted(1000, 30);
    pacer.acquire(&chat("a"), &limits, FINAL).await;
    let early = pacer.acquire_when_ready(&chat("a"), &limits, Urgency::Preview);
    assert_eq!(early.err(), Some(start + Duration::from_secs(1)));
    // Nothing was queued: another chat still goes at once.
    let other = pacer.acquire_when_ready(&chat("b"), &limits, Urgency::Preview);
    assert!(other.is_ok_and(|grant| grant.was_immediate()));
}

#[tokio::test(start_paused = true)]
async fn a_chat_handed_over_is_paced_where_the_other_pacer_left_off() {
    let (before, after) = (Pacer::new(), Pacer::new());
    let limits = topic_limits(3, 3000);
    let group = chat("-100");
    for topic in ["1", "2", "3"] {
        before
            .acquire(&group.clone().with_thread(topic), &limits, FINAL)
            .await;
    }
    before.acquire(&chat("-200"), &limits, FINAL).await;
    let recent = before.recent(&group);
    assert_eq!(
        recent,
        [0, 100, 200].map(Duration::from_millis),
        "the group's three calls, newest first; not another chat's"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Handed over half a second later, with those calls.
    let start = Instant::now();
    let ago: Vec<Duration> = recent
        .iter()
        .map(|d| *d + Duration::from_millis(500))
        .collect();
    after.seed(&group, &ago);
    after
        .acquire(&group.clone().with_thread("4"), &limits, FINAL)
        .await;
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(2300),
        "the group's window counts the calls made before the handover: 3 s after the first"
    );
    assert_eq!(after.recent(&group).len(), 4);
    let fresh = Pacer::new();
    let start = Instant::now();
    fresh
        .acquire(&group.clone().with_thread("4"), &limits, FINAL)
        .await;
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "without them it would go at once"
    );
}
