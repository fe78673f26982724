//! Pacing platform calls per chat: a minimum interval, a rolling window, and 429 pauses.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::{Instant, sleep_until};

use super::event::ChatKey;
use super::ports::Limits;

/// Chats tracked before idle ones are pruned; the threshold doubles with the live count.
const PRUNE_AT: usize = 64;

/// Paces sends and edits per chat for one platform; clones share the same state.
///
/// Every reply in a chat goes through the same `Pacer`, so concurrent replies share the chat's
/// budget. Memory stays bounded: chats idle past their interval, window and pause are forgotten.
#[derive(Debug, Clone, Default)]
pub struct Pacer {
    inner: Arc<Mutex<Chats>>,
}

#[derive(Debug, Default)]
struct Chats {
    chats: HashMap<ChatKey, ChatPace>,
    prune_at: usize,
}

#[derive(Debug, Default)]
struct ChatPace {
    /// Calls within the longest window that applies, oldest first.
    calls: VecDeque<Instant>,
    /// Nothing goes before this instant (a platform's retry-after).
    paused_until: Option<Instant>,
    /// When this entry holds no more information and can be dropped.
    forget_at: Option<Instant>,
}

impl ChatPace {
    /// The earliest instant a call is allowed, given `limits`.
    fn ready_at(&self, limits: &Limits, now: Instant) -> Instant {
        let mut at = now;
        if let Some(&last) = self.calls.back() {
            at = at.max(last + limits.min_interval);
        }
        if let Some(window) = limits.window.filter(|w| w.count > 0) {
            let count = window.count as usize;
            if self.calls.len() >= count {
                at = at.max(self.calls[self.calls.len() - count] + window.per);
            }
        }
        self.paused_until.map_or(at, |until| at.max(until))
    }

    /// Records a call made at `now` and drops calls no limit looks at any more.
    fn record(&mut self, limits: &Limits, now: Instant) {
        let keep = limits
            .window
            .map_or(Duration::ZERO, |w| w.per)
            .max(limits.min_interval);
        while self.calls.front().is_some_and(|&t| t + keep <= now) {
            self.calls.pop_front();
        }
        self.calls.push_back(now);
        let forget = now + keep;
        self.forget_at = Some(self.paused_until.map_or(forget, |p| p.max(forget)));
    }
}

impl Pacer {
    /// A pacer with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until a call in `chat` is allowed by `limits` and any pause, then records it.
    ///
    /// Cancel-safe: the call is recorded only when the future completes, so it can be raced in
    /// `select!` and dropped without using up a slot.
    pub async fn acquire(&self, chat: &ChatKey, limits: &Limits) {
        while let Err(ready) = self.try_acquire(chat, limits) {
            sleep_until(ready).await;
        }
    }

    /// Records a call in `chat` if `limits` and any pause allow one now; otherwise returns the
    /// earliest instant one may be allowed (another reply in the chat may take it first).
    pub fn try_acquire(&self, chat: &ChatKey, limits: &Limits) -> Result<(), Instant> {
        let mut chats = self.lock();
        let now = Instant::now();
        chats.prune(now);
        let pace = match chats.chats.get_mut(chat) {
            Some(pace) => pace,
            // The key is cloned only on first sight: this runs at every token of a reply.
            None => chats.chats.entry(chat.clone()).or_default(),
        };
        let ready = pace.ready_at(limits, now);
        if ready > now {
            return Err(ready);
        }
        pace.record(limits, now);
        Ok(())
    }

    /// The earliest instant a call in `chat` may be allowed, without taking it.
    pub fn ready_at(&self, chat: &ChatKey, limits: &Limits) -> Instant {
        let now = Instant::now();
        let chats = self.lock();
        chats
            .chats
            .get(chat)
            .map_or(now, |pace| pace.ready_at(limits, now))
    }

    /// Pauses every call in `chat` for `wait` (a platform's retry-after).
    pub fn pause(&self, chat: &ChatKey, wait: Duration) {
        let until = Instant::now() + wait;
        let mut chats = self.lock();
        let pace = chats.chats.entry(chat.clone()).or_default();
        pace.paused_until = Some(pace.paused_until.map_or(until, |p| p.max(until)));
        pace.forget_at = Some(pace.forget_at.map_or(until, |f| f.max(until)));
    }

    /// How many chats the pacer currently remembers.
    pub fn tracked_chats(&self) -> usize {
        self.lock().chats.len()
    }

    fn lock(&self) -> MutexGuard<'_, Chats> {
        // A panic while holding this lock cannot leave the map inconsistent; keep going.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Chats {
    /// Forgets idle chats once the map has grown past the threshold.
    fn prune(&mut self, now: Instant) {
        if self.chats.len() < self.prune_at.max(PRUNE_AT) {
            return;
        }
        self.chats
            .retain(|_, pace| pace.forget_at.is_some_and(|at| at > now));
        self.prune_at = self.chats.len() * 2;
    }
}

#[cfg(test)]
mod tests;
