//! The budget on tokio's paused clock.

use super::*;

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn the_call_past_the_count_waits_for_the_window_and_its_jitter() {
    let budget = Budget::new(30, SECOND);
    let start = Instant::now();
    for _ in 0..30 {
        budget.acquire().await;
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
    budget.acquire().await;
    assert_eq!(start.elapsed(), SECOND + JITTER);
}

#[tokio::test(start_paused = true)]
async fn a_preview_is_told_how_long_to_wait_when_the_budget_is_spent() {
    let budget = Budget::new(2, SECOND);
    assert!(budget.admit(Phase::Streaming).await.is_ok());
    assert!(budget.admit(Phase::Streaming).await.is_ok());
    let refused = budget.admit(Phase::Streaming).await;
    assert_eq!(refused, Err(PlatformError::Deferred(SECOND + JITTER)));
}

#[tokio::test(start_paused = true)]
async fn finals_queue_in_order_and_previews_do_not_jump_the_queue() {
    let budget = std::sync::Arc::new(Budget::new(1, SECOND));
    budget.acquire().await;
    let start = Instant::now();
    let queued = {
        let budget = budget.clone();
        tokio::spawn(async move { budget.admit(Phase::Final).await })
    };
    tokio::task::yield_now().await;
    let wait = budget
        .try_acquire()
        .expect_err("the final's slot is reserved");
    assert_eq!(wait, 2 * (SECOND + JITTER));
    assert!(queued.await.unwrap().is_ok());
    assert_eq!(start.elapsed(), SECOND + JITTER);
}

#[tokio::test(start_paused = true)]
async fn old_slots_are_forgotten() {
    let budget = Budget::new(3, SECOND);
    for _ in 0..3 {
        budget.acquire().await;
    }
    tokio::time::sleep(SECOND * 5).await;
    assert!(budget.try_acquire().is_ok());
    assert_eq!(budget.lock().len(), 1);
}
