//! A bot-wide budget of platform calls: Telegram allows about 30 messages a second over all
//! chats, Discord 50 requests a second, on top of the per-chat pace the engine keeps.
//!
//! Slots are reserved in the order calls ask, so waiting calls neither starve nor wake in a herd.
//! A final text queues for its slot; a preview only takes a slot that is free now, and otherwise
//! answers [`PlatformError::Deferred`] (nothing was sent, and no platform said 429) so the engine
//! pauses that chat and later sends its newest text: when the budget is short, finals go first
//! and previews thin out.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::{Instant, sleep_until};

use crate::engine::ports::{Phase, PlatformError};

/// Room for timing jitter: the platform counts calls when they arrive, a little after their slot,
/// and not all equally late, so the window kept here is this much longer than the platform's.
pub const JITTER: Duration = Duration::from_millis(100);

/// At most `count` calls in any rolling window, shared by every chat of a platform.
#[derive(Debug)]
pub struct Budget {
    count: usize,
    window: Duration,
    /// Granted and reserved slots, oldest first (never decreasing).
    slots: Mutex<VecDeque<Instant>>,
}

impl Budget {
    /// A budget of `count` calls per `per`, kept with [`JITTER`] to spare.
    pub fn new(count: usize, per: Duration) -> Self {
        Self {
            count: count.max(1),
            window: per + JITTER,
            slots: Mutex::new(VecDeque::new()),
        }
    }

    /// Takes a slot for a call of `phase`: a final waits for its turn, a preview is told how long
    /// to wait when no slot is free now.
    pub async fn admit(&self, phase: Phase) -> Result<(), PlatformError> {
        match phase {
            Phase::Final => {
                self.acquire().await;
                Ok(())
            }
            Phase::Streaming => self.try_acquire().map_err(PlatformError::Deferred),
        }
    }

    /// Reserves the earliest free slot and waits for it.
    ///
    /// Not cancel-safe in one respect: a wait dropped early leaves its slot unused, which errs on
    /// the side of fewer calls.
    pub async fn acquire(&self) {
        let at = {
            let mut slots = self.lock();
            let at = self.next_slot(&mut slots, Instant::now());
            slots.push_back(at);
            at
        };
        sleep_until(at).await;
    }

    /// Takes a slot if one is free now; otherwise returns how long until the next one is.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        let mut slots = self.lock();
        let now = Instant::now();
        let at = self.next_slot(&mut slots, now);
        if at > now {
            return Err(at - now);
        }
        slots.push_back(now);
        Ok(())
    }

    /// The earliest slot after every reserved one that keeps `count` per window; forgets slots
    /// no window looks at any more.
    fn next_slot(&self, slots: &mut VecDeque<Instant>, now: Instant) -> Instant {
        while slots.front().is_some_and(|&t| t + self.window <= now) {
            slots.pop_front();
        }
        let after_reserved = slots.back().map_or(now, |&last| last.max(now));
        match slots.len().checked_sub(self.count) {
            Some(i) => after_reserved.max(slots[i] + self.window),
            None => after_reserved,
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Instant>> {
        // The queue holds plain instants: a panic elsewhere cannot leave it inconsistent.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests;
