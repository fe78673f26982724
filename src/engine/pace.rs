//! Pacing platform calls at every level a platform counts them: the chat, a scope several
//! chats share (all forum topics of a Telegram group count against the group), and the bot as
//! a whole (Telegram's ~30 messages a second, Discord's 50 requests a second).
//!
//! The adapter declares the levels in [`Limits`]; the engine asks the [`Pacer`] before every
//! call and the adapter only reports what the platform said. When calls wait, a slot goes to
//! the most urgent call every level allows (see [`Urgency`]), the oldest first among equals, as
//! soon as it is free: the budget is spent in order and never left idle while a call waits.

mod track;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::time::{Instant, sleep_until};

use super::event::{ChatId, ChatKey};
use super::ports::{Limits, Rate};
use track::{Spacing, Track};

/// Room for timing jitter at the bot-wide level: the platform counts calls when they arrive, a
/// little after their slot and not all equally late, so the window kept is this much longer
/// than the platform's.
pub const JITTER: Duration = Duration::from_millis(100);

/// The most calls of one chat [`Pacer::recent`] hands over: more than any chat's window holds
/// (Telegram allows 20 a minute in a group, Discord 5 in 5 seconds in a channel).
pub const HANDED_OVER: usize = 32;

/// Chats tracked before idle ones are pruned; the threshold doubles with the live count.
const PRUNE_AT: usize = 64;

/// What a call is for. When calls wait for a slot, the most urgent goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Urgency {
    /// A reply's first visible text: until it lands, the user sees nothing.
    First,
    /// The final text of a message: it must land, and the reply is done once it has.
    Final,
    /// A preview of text still streaming; in a chat with a rolling window previews are spread
    /// over the window, so the final text never waits long for its slot.
    Preview,
    /// The typing indicator: worth little, so it never waits; it is skipped while other calls
    /// wait for the bot-wide budget.
    Typing,
}

/// Paces the calls of one platform; clones share the same state.
///
/// Memory stays bounded: levels idle past their interval, window and pause are forgotten.
#[derive(Debug, Clone, Default)]
pub struct Pacer {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the driver when a call starts waiting.
    wake: Notify,
}

#[derive(Debug, Default)]
struct State {
    chats: HashMap<ChatKey, Track>,
    /// Scopes several chats share, by the chat without its thread.
    scopes: HashMap<ChatId, Track>,
    bot: Track,
    /// Calls waiting for a slot, most urgent first.
    queue: BTreeMap<Rank, Waiter>,
    /// Waiting calls that do not count against the bot-wide budget.
    unbudgeted: usize,
    next_seq: u64,
    /// A waiting call is held back by the bot-wide budget alone: the budget is the bottleneck,
    /// so the bot level spreads its calls (see [`State::bot_spacing`]) and new calls queue.
    contended: bool,
    /// A driver task grants slots to waiting calls.
    driving: bool,
    prune_at: usize,
}

/// The order waiting calls are served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    urgency: Urgency,
    since: Instant,
    seq: u64,
}

#[derive(Debug)]
struct Waiter {
    chat: ChatKey,
    limits: Limits,
    grant: oneshot::Sender<()>,
}

impl Pacer {
    /// A pacer with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until every level of `limits` allows a call of `urgency` in `chat` and no more
    /// urgent call waits for the same slot, then records it.
    ///
    /// Cancel-safe: dropped before it completes, the call leaves the queue without using a
    /// slot.
    pub fn acquire(&self, chat: &ChatKey, limits: &Limits, urgency: Urgency) -> Grant {
        let mut state = self.lock();
        let now = Instant::now();
        state.prune(now);
        self.grant(state, chat, limits, urgency, now)
    }

    /// Like [`Pacer::acquire`] once `chat` and its scope allow a call of `urgency`; until then,
    /// the instant they may (without waiting in the queue meanwhile).
    pub fn acquire_when_ready(
        &self,
        chat: &ChatKey,
        limits: &Limits,
        urgency: Urgency,
    ) -> Result<Grant, Instant> {
        let mut state = self.lock();
        let now = Instant::now();
        state.prune(now);
        let ready = state.local_ready_at(chat, limits, urgency, now);
        if ready > now {
            return Err(ready);
        }
        Ok(self.grant(state, chat, limits, urgency, now))
    }

    /// Records the call now if every level allows it and no waiting call has a claim on the
    /// slot (one held back by the bot-wide budget, or one in the same chat or scope), else
    /// queues it.
    fn grant(
        &self,
        mut state: MutexGuard<'_, State>,
        chat: &ChatKey,
        limits: &Limits,
        urgency: Urgency,
        now: Instant,
    ) -> Grant {
        let local = state.local_ready_at(chat, limits, urgency, now);
        let bot = state.bot_ready_at(limits, urgency, now);
        if local.max(bot) <= now && !state.claimed(chat, limits, urgency) {
            state.record(chat, limits, urgency, now);
            return Grant(None);
        }
        // Held back by the bot-wide budget alone: the budget is contended from now on.
        state.contended |= local <= now && bot > now;
        let (grant, granted) = oneshot::channel();
        let rank = Rank {
            urgency,
            since: now,
            seq: state.next_seq,
        };
        state.next_seq += 1;
        state.unbudgeted += usize::from(bot_rate(limits, urgency).is_none());
        let waiter = Waiter {
            chat: chat.clone(),
            limits: *limits,
            grant,
        };
        state.queue.insert(rank, waiter);
        if state.driving {
            self.shared.wake.notify_one();
        } else {
            state.driving = true;
            tokio::spawn(drive(self.shared.clone()));
        }
        Grant(Some(Waiting {
            shared: self.shared.clone(),
            rank,
            granted,
        }))
    }

    /// Records a call of `urgency` in `chat` if every level allows one now and no call waits;
    /// otherwise returns the earliest instant one may be allowed (a waiting call may take it).
    /// For calls that are worth making only now, such as typing.
    pub fn try_acquire(
        &self,
        chat: &ChatKey,
        limits: &Limits,
        urgency: Urgency,
    ) -> Result<(), Instant> {
        let mut state = self.lock();
        let now = Instant::now();
        state.prune(now);
        let ready = state.ready_at(chat, limits, urgency, now);
        let budgeted = bot_rate(limits, urgency).is_some();
        if ready > now || (budgeted && state.contended) {
            return Err(ready.max(now));
        }
        state.record(chat, limits, urgency, now);
        Ok(())
    }

    /// The earliest instant `chat` and the scope it shares allow a call of `urgency`, without
    /// taking it; the bot-wide budget is not asked (it changes with every other chat's call).
    pub fn ready_at(&self, chat: &ChatKey, limits: &Limits, urgency: Urgency) -> Instant {
        self.lock()
            .local_ready_at(chat, limits, urgency, Instant::now())
    }

    /// The platform answered 429 in `chat`: holds every call there, and in the scope the chat
    /// shares, for `wait`.
    pub fn pause(&self, chat: &ChatKey, limits: &Limits, wait: Duration) {
        let until = Instant::now() + wait;
        let mut state = self.lock();
        state.chats.entry(chat.clone()).or_default().pause(until);
        if limits.shared.is_some() {
            let scope = state.scopes.entry(chat.chat.clone()).or_default();
            scope.pause(until);
        }
    }

    /// The calls made lately in `chat` (the chat's own level and the scope its threads share),
    /// newest first and at most [`HANDED_OVER`], as how long ago each was: what another
    /// process taking the chat over needs to go on pacing it.
    pub fn recent(&self, chat: &ChatKey) -> Vec<Duration> {
        let state = self.lock();
        let now = Instant::now();
        let mut calls: Vec<Instant> = state
            .chats
            .iter()
            .filter(|(key, _)| key.platform == chat.platform && key.chat == chat.chat)
            .map(|(_, track)| track)
            .chain(state.scopes.get(&chat.chat))
            .flat_map(|track| track.calls())
            .collect();
        calls.sort_unstable_by(|a, b| b.cmp(a));
        calls.dedup();
        calls.truncate(HANDED_OVER);
        calls
            .iter()
            .map(|at| now.saturating_duration_since(*at))
            .collect()
    }

    /// Counts calls another process made in `chat` before handing it over (`ago`: how long ago
    /// each was) as made here, at the chat's own level and in the scope its threads share.
    pub fn seed(&self, chat: &ChatKey, ago: &[Duration]) {
        let now = Instant::now();
        let calls: Vec<Instant> = ago.iter().filter_map(|d| now.checked_sub(*d)).collect();
        if calls.is_empty() {
            return;
        }
        let key = ChatKey::new(chat.platform, chat.chat.as_str());
        let mut state = self.lock();
        state.chats.entry(key).or_default().seed(&calls, now);
        state
            .scopes
            .entry(chat.chat.clone())
            .or_default()
            .seed(&calls, now);
    }

    /// How many chats and scopes the pacer currently remembers.
    pub fn tracked_chats(&self) -> usize {
        let state = self.lock();
        state.chats.len() + state.scopes.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the maps inconsistent; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The wait for a slot [`Pacer::acquire`] returns; completes once the call is recorded.
#[must_use = "the slot is granted when the grant completes"]
#[derive(Debug)]
pub struct Grant(Option<Waiting>);

#[derive(Debug)]
struct Waiting {
    shared: Arc<Shared>,
    rank: Rank,
    granted: oneshot::Receiver<()>,
}

impl Grant {
    /// True when the slot was free at once: the call did not wait behind others.
    pub fn was_immediate(&self) -> bool {
        self.0.is_none()
    }
}

impl Future for Grant {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(waiting) = self.0.as_mut() else {
            return Poll::Ready(());
        };
        match Pin::new(&mut waiting.granted).poll(cx) {
            Poll::Ready(_) => {
                // Granted (the driver never drops a waiter without granting it).
                self.0 = None;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if let Some(waiter) = state.queue.remove(&self.rank) {
            state.unbudgeted -= usize::from(bot_rate(&waiter.limits, self.rank.urgency).is_none());
        }
        if state.queue.is_empty() {
            state.contended = false;
        }
        // A call granted while this wait was being dropped leaves its slot unused, which errs
        // on the side of fewer calls.
    }
}

/// Grants slots to waiting calls as they free up; ends when no call waits (the next call that
/// has to wait starts it again), so it needs no owner to stop it.
async fn drive(shared: Arc<Shared>) {
    loop {
        let next = {
            let mut state = shared.lock();
            match state.dispatch(Instant::now()) {
                Some(next) => next,
                None => {
                    state.driving = false;
                    return;
                }
            }
        };
        tokio::select! {
            () = sleep_until(next) => {}
            () = shared.wake.notified() => {}
        }
    }
}

impl State {
    /// Grants every waiting call that may go now, most urgent first; returns when the next
    /// may, or `None` when no call waits.
    fn dispatch(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut granted = Vec::new();
        let mut contended = false;
        let spacing = self.bot_spacing();
        let State {
            chats,
            scopes,
            bot,
            queue,
            unbudgeted,
            ..
        } = self;
        for (rank, waiter) in queue.iter() {
            let (chat, limits, urgency) = (&waiter.chat, &waiter.limits, rank.urgency);
            let ready = local_ready_at(chats, scopes, chat, limits, urgency, now);
            if ready > now {
                next = Some(next.map_or(ready, |n| n.min(ready)));
                continue;
            }
            if let Some(rate) = bot_rate(limits, urgency) {
                let bot_ready = bot.ready_at(&rate, spacing, now);
                if bot_ready > now {
                    contended = true;
                    next = Some(next.map_or(bot_ready, |n| n.min(bot_ready)));
                    if *unbudgeted == 0 {
                        // Nothing else can go before the bot-wide slot frees.
                        break;
                    }
                    continue;
                }
            }
            record_in(chats, scopes, bot, chat, limits, urgency, now);
            granted.push(*rank);
        }
        for rank in granted {
            if let Some(waiter) = queue.remove(&rank) {
                *unbudgeted -= usize::from(bot_rate(&waiter.limits, rank.urgency).is_none());
                // A receiver dropped meanwhile leaves its slot unused (fewer calls, not more).
                let _ = waiter.grant.send(());
            }
        }
        self.contended = contended;
        if self.queue.is_empty() {
            None
        } else {
            next.or(Some(now))
        }
    }

    /// How the bot level spaces its calls: as its window allows while nothing waits for it, a
    /// call goes at once (a quiet bot adds no delay); while calls wait for it, one every
    /// window/count, so a busy budget stays busy without bursts.
    fn bot_spacing(&self) -> Spacing {
        if self.contended {
            Spacing::Spread
        } else {
            Spacing::Plain
        }
    }

    /// True when a waiting call has a claim on the slot a call of `urgency` in `chat` would
    /// take: the bot-wide budget is contended (and the call counts against it), or a call
    /// waits in the same chat or the scope it shares.
    fn claimed(&self, chat: &ChatKey, limits: &Limits, urgency: Urgency) -> bool {
        if self.queue.is_empty() {
            return false;
        }
        if self.contended && bot_rate(limits, urgency).is_some() {
            return true;
        }
        let shares = limits.shared.is_some();
        self.queue
            .values()
            .any(|w| w.chat == *chat || (shares && w.chat.chat == chat.chat))
    }

    /// The earliest instant the bot-wide budget allows a call of `urgency` under `limits`.
    fn bot_ready_at(&self, limits: &Limits, urgency: Urgency, now: Instant) -> Instant {
        match bot_rate(limits, urgency) {
            Some(rate) => self.bot.ready_at(&rate, self.bot_spacing(), now),
            None => now,
        }
    }

    fn ready_at(&self, chat: &ChatKey, limits: &Limits, urgency: Urgency, now: Instant) -> Instant {
        let at = self.local_ready_at(chat, limits, urgency, now);
        at.max(self.bot_ready_at(limits, urgency, now))
    }

    fn local_ready_at(
        &self,
        chat: &ChatKey,
        limits: &Limits,
        urgency: Urgency,
        now: Instant,
    ) -> Instant {
        local_ready_at(&self.chats, &self.scopes, chat, limits, urgency, now)
    }

    fn record(&mut self, chat: &ChatKey, limits: &Limits, urgency: Urgency, now: Instant) {
        record_in(
            &mut self.chats,
            &mut self.scopes,
            &mut self.bot,
            chat,
            limits,
            urgency,
            now,
        );
    }

    /// Forgets idle chats and scopes once the maps have grown past the threshold.
    fn prune(&mut self, now: Instant) {
        if self.chats.len() + self.scopes.len() < self.prune_at.max(PRUNE_AT) {
            return;
        }
        let live = |track: &Track| track.forget_at.is_some_and(|at| at > now);
        self.chats.retain(|_, track| live(track));
        self.scopes.retain(|_, track| live(track));
        self.prune_at = (self.chats.len() + self.scopes.len()) * 2;
    }
}

/// The bot-wide rate a call of `urgency` counts against, if any.
fn bot_rate(limits: &Limits, urgency: Urgency) -> Option<Rate> {
    if urgency == Urgency::Typing && !limits.typing_counts {
        return None;
    }
    limits.bot.map(|mut window| {
        window.per += JITTER;
        Rate::window(window)
    })
}

fn local_ready_at(
    chats: &HashMap<ChatKey, Track>,
    scopes: &HashMap<ChatId, Track>,
    chat: &ChatKey,
    limits: &Limits,
    urgency: Urgency,
    now: Instant,
) -> Instant {
    let spacing = match urgency {
        Urgency::First | Urgency::Final => Spacing::Plain,
        Urgency::Preview => Spacing::Spread,
        // Typing has its own limits on the platforms; only the bot-wide budget may count it.
        Urgency::Typing => return now,
    };
    let mut at = chats
        .get(chat)
        .map_or(now, |t| t.ready_at(&limits.chat_rate(), spacing, now));
    if let Some(shared) = &limits.shared
        && let Some(scope) = scopes.get(&chat.chat)
    {
        at = at.max(scope.ready_at(shared, spacing, now));
    }
    at
}

fn record_in(
    chats: &mut HashMap<ChatKey, Track>,
    scopes: &mut HashMap<ChatId, Track>,
    bot: &mut Track,
    chat: &ChatKey,
    limits: &Limits,
    urgency: Urgency,
    now: Instant,
) {
    if let Some(rate) = bot_rate(limits, urgency) {
        bot.record(&rate, now);
    }
    if urgency == Urgency::Typing {
        return;
    }
    let track = match chats.get_mut(chat) {
        Some(track) => track,
        None => chats.entry(chat.clone()).or_default(),
    };
    track.record(&limits.chat_rate(), now);
    if let Some(shared) = &limits.shared {
        let scope = match scopes.get_mut(&chat.chat) {
            Some(scope) => scope,
            None => scopes.entry(chat.chat.clone()).or_default(),
        };
        scope.record(shared, now);
    }
}

#[cfg(test)]
mod tests;
