//! The bot-wide budget: Telegram allows about 30 messages per second over all chats, on top of
//! the per-chat pace the engine keeps.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};

/// Calls allowed in one second over all chats.
pub const PER_SECOND: usize = 30;

/// A rolling one-second window of calls, shared by every chat.
#[derive(Debug, Default)]
pub struct Budget {
    calls: Mutex<VecDeque<Instant>>,
}

impl Budget {
    /// Waits until one more call fits the window, then records it.
    pub async fn acquire(&self) {
        loop {
            let ready = {
                let Ok(mut calls) = self.calls.lock() else {
                    return;
                };
                let now = Instant::now();
                while calls
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= SECOND)
                {
                    calls.pop_front();
                }
                if calls.len() < PER_SECOND {
                    calls.push_back(now);
                    return;
                }
                calls.front().map_or(now, |t| *t + SECOND)
            };
            sleep_until(ready).await;
        }
    }
}

const SECOND: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_thirty_first_call_in_a_second_waits() {
        let budget = Budget::default();
        let start = Instant::now();
        for _ in 0..PER_SECOND {
            budget.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        budget.acquire().await;
        assert_eq!(start.elapsed(), SECOND);
    }
}
