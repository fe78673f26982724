//! The calls made at one level (a chat, a shared scope, the bot) and when the next may go.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::engine::ports::Rate;

/// How long seeded calls keep a level remembered: past the longest window a platform counts
/// in a chat (Telegram's minute in a group), with room for jitter.
const SEEDED_KEEP: Duration = Duration::from_secs(61);

/// How a level spaces the calls it lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Spacing {
    /// As the rate allows: its gap, and as many calls as the window holds back to back.
    Plain,
    /// A window's calls spread evenly over it: at most one per `per / count`. Previews are
    /// spaced so in a chat's window, so a slow reply spreads its chat's budget over the reply
    /// instead of spending it at the start and leaving its final text waiting; the bot-wide
    /// window is spaced so while calls wait for it, so a busy budget stays busy without bursts.
    Spread,
}

/// One level's recent calls and pause.
#[derive(Debug, Default)]
pub(super) struct Track {
    /// Calls within the longest span any rate looks at, oldest first.
    calls: VecDeque<Instant>,
    /// Nothing goes before this instant (a platform's retry-after).
    paused_until: Option<Instant>,
    /// When this entry holds no more information and can be dropped.
    pub(super) forget_at: Option<Instant>,
}

impl Track {
    /// The earliest instant a call is allowed by `rate`, spaced by `spacing`.
    pub(super) fn ready_at(&self, rate: &Rate, spacing: Spacing, now: Instant) -> Instant {
        let mut at = now;
        let window = rate.window.filter(|w| w.count > 0);
        if let Some(&last) = self.calls.back() {
            let spread = match (spacing, window) {
                (Spacing::Spread, Some(w)) => w.per / w.count,
                _ => Duration::ZERO,
            };
            at = at.max(last + rate.min_interval.max(spread));
        }
        if let Some(window) = window {
            let count = window.count as usize;
            if self.calls.len() >= count {
                at = at.max(self.calls[self.calls.len() - count] + window.per);
            }
        }
        self.paused_until.map_or(at, |until| at.max(until))
    }

    /// Records a call made at `now` and drops the calls `rate` no longer looks at.
    pub(super) fn record(&mut self, rate: &Rate, now: Instant) {
        let keep = rate
            .window
            .map_or(Duration::ZERO, |w| w.per)
            .max(rate.min_interval);
        while self.calls.front().is_some_and(|&t| t + keep <= now) {
            self.calls.pop_front();
        }
        self.calls.push_back(now);
        let forget = now + keep;
        self.forget_at = Some(self.paused_until.map_or(forget, |p| p.max(forget)));
    }

    /// The calls remembered, oldest first.
    pub(super) fn calls(&self) -> impl Iterator<Item = Instant> + '_ {
        self.calls.iter().copied()
    }

    /// Adds calls made elsewhere before now (another process's, in a chat it handed over);
    /// they are forgotten as the rates that look at them would forget them, at the latest a
    /// minute and a second after the newest.
    pub(super) fn seed(&mut self, calls: &[Instant], now: Instant) {
        let mut all: Vec<Instant> = self.calls.iter().chain(calls).copied().collect();
        all.sort_unstable();
        all.dedup();
        self.calls = all.into();
        let forget = self.calls.back().map_or(now, |last| *last + SEEDED_KEEP);
        self.forget_at = Some(self.forget_at.map_or(forget, |f| f.max(forget)));
    }

    /// Holds every call until `until`.
    pub(super) fn pause(&mut self, until: Instant) {
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
        self.forget_at = Some(self.forget_at.map_or(until, |f| f.max(until)));
    }
}
