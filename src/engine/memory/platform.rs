//! An in-memory chat platform that enforces a length limit and a rate limit.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::engine::attachment::FileRef;
use crate::engine::event::{ChatKey, MessageRef, PlatformKind};
use crate::engine::ports::{Button, FetchError, Limits, Phase, Platform, PlatformError, Rate};

/// Which platform method a recorded call used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// `send`.
    Send,
    /// `edit`.
    Edit,
    /// `typing`.
    Typing,
    /// `set_buttons`: the buttons under a message change, its text does not.
    Buttons,
}

/// One call the platform received, whatever its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The method.
    pub kind: CallKind,
    /// The chat it was for.
    pub chat: ChatKey,
    /// The message edited, or the message a send created.
    pub message: Option<MessageRef>,
    /// The text sent (empty for typing).
    pub text: String,
    /// The phase given (none for typing).
    pub phase: Option<Phase>,
    /// When it arrived (tokio's clock).
    pub at: Instant,
    /// What the platform answered.
    pub outcome: Result<(), PlatformError>,
}

/// A message as the platform stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Where it lives.
    pub chat: ChatKey,
    /// What it shows now.
    pub text: String,
    /// The phase of the last accepted send or edit.
    pub phase: Phase,
    /// The message it replies to.
    pub reply_to: Option<MessageRef>,
}

/// A [`Platform`] in memory that answers like a strict real one: too long → `Rejected`, too
/// fast for the chat, its shared scope or the bot-wide window → `RetryAfter` (counted as a 429), identical edit → `Rejected("message is not
/// modified")`, deleted message → `MessageGone`; faults can be injected.
///
/// An identical edit is accepted once when it turns a `Streaming` message `Final`, as a
/// platform that finalizes drafts would.
#[derive(Debug)]
pub struct MemoryPlatform {
    kind: PlatformKind,
    limits: Limits,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<Call>,
    messages: HashMap<MessageRef, StoredMessage>,
    order: Vec<MessageRef>,
    /// Accepted sends and edits per chat, per shared scope (the chat without its thread) and
    /// over the whole bot (typing too, where it counts).
    accepted: HashMap<ChatKey, VecDeque<Instant>>,
    scopes: HashMap<ChatKey, VecDeque<Instant>>,
    bot: VecDeque<Instant>,
    rate_limited: usize,
    forbidden: Option<String>,
    faults: VecDeque<PlatformError>,
    next_id: u64,
    /// Files users sent, by handle, and the handles fetched so far.
    files: HashMap<String, Vec<u8>>,
    fetched: Vec<String>,
}

impl MemoryPlatform {
    /// A Telegram-like platform with these limits.
    pub fn new(limits: Limits) -> Self {
        Self::with_kind(PlatformKind::Telegram, limits)
    }

    /// A Telegram-like platform that paces nothing, with messages up to `max_len` characters:
    /// for tests that do not look at pacing.
    pub fn unpaced(max_len: usize) -> Self {
        Self::new(Limits::unpaced(max_len, Duration::from_secs(5)))
    }

    /// A platform of the given kind with these limits.
    pub fn with_kind(kind: PlatformKind, limits: Limits) -> Self {
        Self {
            kind,
            limits,
            state: Mutex::default(),
        }
    }

    /// Every call received so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The message as it stands now; `None` if unknown or deleted.
    pub fn message(&self, message: &MessageRef) -> Option<StoredMessage> {
        self.lock().messages.get(message).cloned()
    }

    /// The texts of the live messages in `chat`, oldest first.
    pub fn texts(&self, chat: &ChatKey) -> Vec<String> {
        let state = self.lock();
        let live = state.order.iter().filter_map(|id| state.messages.get(id));
        live.filter(|m| &m.chat == chat)
            .map(|m| m.text.clone())
            .collect()
    }

    /// How many calls were answered with a rate-limit error (429) by the limit checks.
    pub fn rate_limited(&self) -> usize {
        self.lock().rate_limited
    }

    /// Deletes a message, as a user would; the next edit of it fails with `MessageGone`.
    pub fn delete(&self, message: &MessageRef) {
        self.lock().messages.remove(message);
    }

    /// Answers every later call with `Forbidden(reason)`.
    pub fn forbid(&self, reason: &str) {
        self.lock().forbidden = Some(reason.to_string());
    }

    /// Fails the next `count` sends and edits with `error`.
    pub fn fail_next(&self, count: usize, error: PlatformError) {
        let mut state = self.lock();
        state.faults.extend(std::iter::repeat_n(error, count));
    }

    /// Fails the next `count` sends and edits with `RetryAfter(wait)`.
    pub fn fail_next_with_retry_after(&self, count: usize, wait: Duration) {
        self.fail_next(count, PlatformError::RetryAfter(wait));
    }

    /// Makes the file `handle` fetchable with `bytes`, as a user's upload.
    pub fn put_file(&self, handle: &str, bytes: &[u8]) {
        self.lock().files.insert(handle.to_string(), bytes.to_vec());
    }

    /// The handles of every file fetched so far, in order.
    pub fn fetched(&self) -> Vec<String> {
        self.lock().fetched.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a test panicked while holding the lock.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// The checks every send and edit goes through before its own.
    fn admit(&mut self, limits: &Limits, chat: &ChatKey, text: &str) -> Result<(), PlatformError> {
        self.spend(limits, chat)?;
        if text.is_empty() {
            return Err(PlatformError::Rejected("message text is empty".into()));
        }
        if limits.unit.len(text) > limits.max_len {
            return Err(PlatformError::Rejected("message is too long".into()));
        }
        Ok(())
    }

    /// The checks every call that changes a message goes through: refused, failing, too soon
    /// (a 429), else counted against the chat, its scope and the bot.
    fn spend(&mut self, limits: &Limits, chat: &ChatKey) -> Result<(), PlatformError> {
        if let Some(reason) = &self.forbidden {
            return Err(PlatformError::Forbidden(reason.clone()));
        }
        if let Some(fault) = self.faults.pop_front() {
            return Err(fault);
        }
        let now = Instant::now();
        if let Some(wait) = self.too_soon(limits, chat, now) {
            self.rate_limited += 1;
            return Err(PlatformError::RetryAfter(wait));
        }
        self.accepted
            .entry(chat.clone())
            .or_default()
            .push_back(now);
        if limits.shared.is_some() {
            self.scopes.entry(scope(chat)).or_default().push_back(now);
        }
        if limits.bot.is_some() {
            self.bot.push_back(now);
        }
        Ok(())
    }

    /// How long a call in `chat` at `now` must still wait, if it comes too soon for the chat,
    /// its shared scope or the bot.
    fn too_soon(&mut self, limits: &Limits, chat: &ChatKey, now: Instant) -> Option<Duration> {
        let mut ready = too_soon_at(
            self.accepted.entry(chat.clone()).or_default(),
            &limits.chat_rate(),
            now,
        );
        if let Some(shared) = &limits.shared {
            let calls = self.scopes.entry(scope(chat)).or_default();
            ready = ready.max(too_soon_at(calls, shared, now));
        }
        if let Some(window) = limits.bot {
            ready = ready.max(too_soon_at(&mut self.bot, &Rate::window(window), now));
        }
        (ready > now).then(|| ready - now)
    }

    /// A typing call: counted against the bot-wide window where the platform counts it.
    fn typing(&mut self, limits: &Limits) -> Result<(), PlatformError> {
        if let Some(reason) = &self.forbidden {
            return Err(PlatformError::Forbidden(reason.clone()));
        }
        let (Some(window), true) = (limits.bot, limits.typing_counts) else {
            return Ok(());
        };
        let now = Instant::now();
        let ready = too_soon_at(&mut self.bot, &Rate::window(window), now);
        if ready > now {
            self.rate_limited += 1;
            return Err(PlatformError::RetryAfter(ready - now));
        }
        self.bot.push_back(now);
        Ok(())
    }

    fn create(
        &mut self,
        chat: &ChatKey,
        reply_to: Option<&MessageRef>,
        text: &str,
        phase: Phase,
    ) -> MessageRef {
        self.next_id += 1;
        let id = MessageRef::new(self.next_id.to_string());
        let stored = StoredMessage {
            chat: chat.clone(),
            text: text.to_string(),
            phase,
            reply_to: reply_to.cloned(),
        };
        self.messages.insert(id.clone(), stored);
        self.order.push(id.clone());
        id
    }

    fn change(
        &mut self,
        message: &MessageRef,
        text: &str,
        phase: Phase,
    ) -> Result<(), PlatformError> {
        let stored = self
            .messages
            .get_mut(message)
            .ok_or(PlatformError::MessageGone)?;
        let finalizes = phase == Phase::Final && stored.phase == Phase::Streaming;
        if stored.text == text && !finalizes {
            return Err(PlatformError::Rejected("message is not modified".into()));
        }
        stored.text = text.to_string();
        stored.phase = phase;
        Ok(())
    }

    fn record(
        &mut self,
        kind: CallKind,
        chat: &ChatKey,
        message: Option<MessageRef>,
        text: &str,
        phase: Option<Phase>,
        outcome: Result<(), PlatformError>,
    ) {
        let at = Instant::now();
        let text = text.to_string();
        self.calls.push(Call {
            kind,
            chat: chat.clone(),
            message,
            text,
            phase,
            at,
            outcome,
        });
    }
}

#[async_trait]
impl Platform for MemoryPlatform {
    fn kind(&self) -> PlatformKind {
        self.kind
    }

    fn limits(&self, _chat: &ChatKey) -> Limits {
        self.limits
    }

    async fn send(
        &self,
        chat: &ChatKey,
        reply_to: Option<&MessageRef>,
        text: &str,
        phase: Phase,
    ) -> Result<MessageRef, PlatformError> {
        let mut state = self.lock();
        let result = state
            .admit(&self.limits, chat, text)
            .map(|()| state.create(chat, reply_to, text, phase));
        let outcome = result.as_ref().map(|_| ()).map_err(Clone::clone);
        state.record(
            CallKind::Send,
            chat,
            result.clone().ok(),
            text,
            Some(phase),
            outcome,
        );
        result
    }

    async fn edit(
        &self,
        chat: &ChatKey,
        message: &MessageRef,
        text: &str,
        phase: Phase,
    ) -> Result<MessageRef, PlatformError> {
        let mut state = self.lock();
        let outcome = state
            .admit(&self.limits, chat, text)
            .and_then(|()| state.change(message, text, phase));
        let id = Some(message.clone());
        state.record(CallKind::Edit, chat, id, text, Some(phase), outcome.clone());
        outcome.map(|()| message.clone())
    }

    /// Paced like an edit; the buttons themselves are not kept.
    async fn set_buttons(
        &self,
        chat: &ChatKey,
        message: &MessageRef,
        _buttons: &[Button],
    ) -> Result<(), PlatformError> {
        let mut state = self.lock();
        let outcome = state.spend(&self.limits, chat).and_then(|()| {
            match state.messages.contains_key(message) {
                true => Ok(()),
                false => Err(PlatformError::MessageGone),
            }
        });
        let id = Some(message.clone());
        state.record(CallKind::Buttons, chat, id, "", None, outcome.clone());
        outcome
    }

    async fn typing(&self, chat: &ChatKey) -> Result<(), PlatformError> {
        let mut state = self.lock();
        let outcome = state.typing(&self.limits);
        state.record(CallKind::Typing, chat, None, "", None, outcome.clone());
        outcome
    }

    /// A file put with [`MemoryPlatform::put_file`]; longer than `limit` is `TooLarge`, as a
    /// download cut off at the limit is.
    async fn fetch(&self, file: &FileRef, limit: u64) -> Result<Vec<u8>, FetchError> {
        let mut state = self.lock();
        state.fetched.push(file.as_str().to_string());
        let bytes = state.files.get(file.as_str()).cloned();
        let bytes = bytes.ok_or_else(|| FetchError::Failed("no such file".into()))?;
        match bytes.len() as u64 {
            len if len > limit => Err(FetchError::TooLarge(limit)),
            _ => Ok(bytes),
        }
    }
}

/// The key of the scope `chat` shares: the chat without its thread.
fn scope(chat: &ChatKey) -> ChatKey {
    ChatKey {
        thread: None,
        ..chat.clone()
    }
}

/// The earliest instant `calls` allow one more by `rate`; forgets calls no rate looks at.
fn too_soon_at(calls: &mut VecDeque<Instant>, rate: &Rate, now: Instant) -> Instant {
    let keep = rate
        .window
        .map_or(Duration::ZERO, |w| w.per)
        .max(rate.min_interval);
    while calls.front().is_some_and(|&t| t + keep <= now) {
        calls.pop_front();
    }
    let mut ready = calls.back().map_or(now, |&last| last + rate.min_interval);
    if let Some(window) = rate.window.filter(|w| w.count > 0) {
        let count = window.count as usize;
        if calls.len() >= count {
            ready = ready.max(calls[calls.len() - count] + window.per);
        }
    }
    ready
}

#[cfg(test)]
mod tests;
