//! One reply in progress: the read loop, coalesced previews, continuation and final landing.

use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use tokio::time::Instant;

use super::{ReplyContext, ReplyOutcome};
use crate::engine::controls::final_buttons;
use crate::engine::deliver::{Delivery, Policy};
use crate::engine::event::MessageRef;
use crate::engine::meter::{CallKind::Edit, CallKind::Send, meter};
use crate::engine::pace::Urgency;
use crate::engine::ports::{
    Button, Limits, ModelError, Phase, PlatformError, StreamEvent, TokenStream, Usage,
};
use crate::engine::split::{self, Position};

/// Shortest gap between two recordings of the text so far while a message streams.
const PROGRESS_EVERY: Duration = Duration::from_secs(3);

/// The bot may not write in the chat any more; the reply stops.
struct Forbidden(String);

/// How reading the stream ended.
enum End {
    Complete,
    Failed(ModelError),
    Cancelled,
}

mod clocks;
mod finish;
mod progress;

use clocks::{Clocks, Next};

/// The state of one reply.
pub(super) struct Reply<'a> {
    ctx: ReplyContext<'a>,
    limits: Limits,
    /// The model's visible text so far.
    text: String,
    /// Where the current message starts in `text`.
    at: Position,
    /// The message being written, once sent.
    current: Option<MessageRef>,
    /// What `current` shows.
    shown: String,
    /// A preview the platform rejected; not retried until the text changes.
    skipped: Option<String>,
    /// The "thinking…" text wanted while there is no content.
    placeholder: Option<String>,
    /// Every message of the reply, in order.
    messages: Vec<MessageRef>,
    /// True once content is visible: typing stops.
    content_shown: bool,
    finished: bool,
    /// Why the model finished, once it said.
    finish_reason: Option<String>,
    usage: Usage,
    /// Why a final text could not be delivered.
    trouble: Option<String>,
    /// When the text so far was last told to the observer.
    saved_at: Instant,
    /// Messages of an earlier answer not written into yet (see [`ReplyContext::reuse`]).
    spare: std::collections::VecDeque<MessageRef>,
    /// True while the reply's last message lands: it carries the finished reply's buttons.
    closing: bool,
    /// The other choices of a request with `n` above 1, by index: text and finish reason.
    others: std::collections::BTreeMap<usize, (String, Option<String>)>,
}

impl<'a> Reply<'a> {
    pub(super) fn new(ctx: &ReplyContext<'a>) -> Self {
        Self {
            ctx: *ctx,
            limits: ctx.platform.limits(ctx.chat),
            text: String::new(),
            at: Position::default(),
            current: None,
            shown: String::new(),
            skipped: None,
            placeholder: None,
            messages: Vec::new(),
            content_shown: false,
            finished: false,
            finish_reason: None,
            usage: Usage::default(),
            trouble: None,
            saved_at: Instant::now(),
            spare: ctx.reuse.iter().cloned().collect(),
            closing: false,
            others: Default::default(),
        }
        .with_spare()
    }

    /// Writes into the next message of an earlier answer, when one is left.
    fn with_spare(mut self) -> Self {
        self.take_spare();
        self
    }

    fn take_spare(&mut self) {
        if let Some(message) = self.spare.pop_front() {
            self.messages.push(message.clone());
            self.current = Some(message);
        }
    }

    /// Reads the stream to its end, then lands the final state and reports it.
    pub(super) async fn run(mut self, stream: Result<TokenStream, ModelError>) -> ReplyOutcome {
        let end = match stream {
            Ok(stream) => self.read(stream).await,
            Err(error) => Ok(End::Failed(error)),
        };
        // The stream is dropped: the connection is free, whatever the final text waits for.
        self.ctx.observer.stream_ended();
        let result = match end {
            Ok(end) => self.finish(end).await,
            Err(forbidden) => Err(forbidden),
        };
        match result {
            Ok(outcome) => outcome,
            Err(Forbidden(reason)) => self.forbidden_outcome(reason),
        }
    }

    /// The read loop: typing, placeholder, coalesced previews and continuations, one thing at a
    /// time as [`Clocks::next`] says it happens.
    ///
    /// The pacer is asked again only when its answer may have changed; while a preview waits
    /// for its slot the stream is read only in short drains between slices and from shortly
    /// before the slot (see [`clocks`]).
    async fn read(&mut self, mut stream: TokenStream) -> Result<End, Forbidden> {
        let ctx = self.ctx;
        let start = Instant::now();
        let mut clocks = Clocks::new(start, &self.limits, ctx.options.thinking_after);
        loop {
            let cancel = self.cancel_token();
            if cancel.is_cancelled() {
                return Ok(End::Cancelled);
            }
            if self.preview_now(&mut clocks) {
                self.previewed(&mut clocks).await?;
                continue;
            }
            let typing = !self.content_shown;
            let thinking = self.text.is_empty();
            let next = clocks.next(&mut stream, cancel, typing, thinking, self.finished);
            match next.await {
                Next::Cancelled => return Ok(End::Cancelled),
                Next::Granted => {
                    // Reads were held while the slot was waited for: read what came first.
                    if let Some(end) = self.catch_up(&mut stream).await? {
                        return Ok(end);
                    }
                    self.previewed(&mut clocks).await?;
                }
                Next::Slot | Next::Resume => {}
                // Typing is a courtesy; its failures change nothing.
                Next::Typing => drop(self.typing().await),
                Next::Thinking => {
                    let seconds = start.elapsed().as_secs();
                    self.placeholder = Some(format!("thinking… {seconds}s"));
                }
                Next::Event(Some(Ok(event))) => {
                    if matches!(event, StreamEvent::Thinking(_)) {
                        clocks.model_thinking();
                    }
                    self.absorb(event).await?;
                }
                Next::Event(Some(Err(error))) => return Ok(End::Failed(error)),
                Next::Event(None) if self.finished => return Ok(End::Complete),
                Next::Event(None) => return Ok(End::Failed(ModelError::Incomplete)),
            }
        }
    }

    /// What ends the read early: the Stop control's token (a child of shutdown's), else
    /// shutdown's.
    fn cancel_token(&self) -> &'a tokio_util::sync::CancellationToken {
        match self.ctx.stop {
            Some(stop) => stop.stopper.token(),
            None => self.ctx.cancel,
        }
    }

    /// True when the reply ended because someone pressed Stop.
    pub(super) fn stopped(&self) -> bool {
        self.ctx.stop.is_some_and(|stop| stop.stopper.pressed())
    }

    /// Takes in every event the stream has ready now, without waiting; how the stream ended,
    /// if it did meanwhile.
    async fn catch_up(&mut self, stream: &mut TokenStream) -> Result<Option<End>, Forbidden> {
        while let Some(item) = stream.next().now_or_never() {
            match item {
                Some(Ok(event)) => self.absorb(event).await?,
                Some(Err(error)) => return Ok(Some(End::Failed(error))),
                None if self.finished => return Ok(Some(End::Complete)),
                None => return Ok(Some(End::Failed(ModelError::Incomplete))),
            }
        }
        Ok(None)
    }

    /// True when a preview is wanted and the pacer just granted it a slot. Otherwise, when the
    /// chat allows no call yet, arms the preview clock for when it may; when the chat does but
    /// other calls wait for the bot-wide budget, keeps the grant to wait for.
    ///
    /// While the clock is armed nothing can be shown, so reads stay held until shortly before
    /// it fires, whether or not new text has come yet (see [`clocks`]).
    fn preview_now(&self, clocks: &mut Clocks) -> bool {
        if clocks.preview_pending() {
            return false;
        }
        if !self.dirty() {
            clocks.disarm_preview();
            return false;
        }
        let (pacer, chat) = (self.ctx.pacer, self.ctx.chat);
        let urgency = self.urgency(Phase::Streaming);
        let grant = match pacer.acquire_when_ready(chat, &self.limits, urgency) {
            Ok(grant) => grant,
            Err(ready) => {
                clocks.arm_preview(ready);
                return false;
            }
        };
        if grant.was_immediate() {
            return true;
        }
        let kind = if self.current.is_some() { Edit } else { Send };
        meter().deferred(self.ctx.platform.kind(), kind);
        clocks.wait_for(grant);
        false
    }

    /// Sends the preview a slot was granted for; nothing new can be shown before the chat's
    /// next slot, so reads are held until then.
    async fn previewed(&mut self, clocks: &mut Clocks) -> Result<(), Forbidden> {
        self.preview().await?;
        let urgency = self.urgency(Phase::Streaming);
        clocks.arm_preview(
            self.ctx
                .pacer
                .ready_at(self.ctx.chat, &self.limits, urgency),
        );
        Ok(())
    }

    /// How urgent a call of `phase` is: until content is visible every call is the reply's
    /// first visible text.
    fn urgency(&self, phase: Phase) -> Urgency {
        match phase {
            _ if !self.content_shown => Urgency::First,
            Phase::Final => Urgency::Final,
            Phase::Streaming => Urgency::Preview,
        }
    }

    /// Takes in one stream event; content past the length limit finalizes the current message.
    async fn absorb(&mut self, event: StreamEvent) -> Result<(), Forbidden> {
        match event {
            StreamEvent::Content(text) if !text.is_empty() => {
                self.text.push_str(&text);
                self.placeholder = None;
                self.roll_over().await?;
            }
            StreamEvent::Content(_) | StreamEvent::Thinking(_) => {}
            StreamEvent::Other { index, text } => {
                self.others.entry(index).or_default().0.push_str(&text);
            }
            StreamEvent::OtherFinished { index, reason } => {
                self.others.entry(index).or_default().1 = Some(reason);
            }
            StreamEvent::Usage(usage) => add_usage(&mut self.usage, usage),
            StreamEvent::Finished(reason) => {
                self.finished = true;
                self.finish_reason = Some(reason);
            }
        }
        Ok(())
    }

    /// While the current message cannot hold the rest, lands its final piece and moves on.
    async fn roll_over(&mut self) -> Result<(), Forbidden> {
        let (max_len, unit) = (self.limits.max_len, self.limits.unit);
        while let Some((piece, next)) = split::cut(&self.text, &self.at, max_len, unit) {
            self.land(piece.text).await?;
            self.next_message(next);
            self.save_progress().await;
        }
        Ok(())
    }

    /// Starts a new message at `at` (the next one of an earlier answer, when one is left).
    fn next_message(&mut self, at: Position) {
        self.at = at;
        self.current = None;
        self.shown.clear();
        self.skipped = None;
        self.take_spare();
    }

    /// What the current message should show now.
    fn target(&self) -> Option<String> {
        if self.text.len() > self.at.offset {
            Some(split::tail(&self.text, &self.at).text)
        } else {
            self.placeholder.clone()
        }
    }

    /// True when a preview would change what the current message shows (compared in place:
    /// this runs at every token).
    fn dirty(&self) -> bool {
        if self.text.len() > self.at.offset {
            let prefix = self.at.reopen.as_deref().unwrap_or("");
            let rest = &self.text[self.at.offset..];
            let is_target = |shown: &str| shown.strip_prefix(prefix) == Some(rest);
            !is_target(&self.shown) && !self.skipped.as_deref().is_some_and(is_target)
        } else {
            let placeholder = self.placeholder.as_ref();
            placeholder.is_some_and(|p| *p != self.shown && Some(p) != self.skipped.as_ref())
        }
    }

    /// Sends the newest text as a preview; the caller holds a pacer slot.
    async fn preview(&mut self) -> Result<(), Forbidden> {
        let Some(text) = self.target() else {
            return Ok(());
        };
        self.save_progress_every(PROGRESS_EVERY).await;
        match self.call(&text, Phase::Streaming).await {
            Err(PlatformError::RetryAfter(wait)) => {
                self.ctx.pacer.pause(self.ctx.chat, &self.limits, wait);
            }
            Err(PlatformError::Forbidden(reason)) => return Err(Forbidden(reason)),
            Err(PlatformError::Rejected(_)) => self.skipped = Some(text),
            // Gone: the next preview starts a new message. Unavailable: the next slot retries.
            Ok(()) | Err(PlatformError::MessageGone | PlatformError::Unavailable(_)) => {}
        }
        Ok(())
    }

    /// Makes `text` the final text of the current message through the one delivery path,
    /// trying again until it lands or trying cannot help (then `trouble` says why).
    async fn land(&mut self, text: String) -> Result<(), Forbidden> {
        let (pacer, chat) = (self.ctx.pacer, self.ctx.chat);
        let urgency = self.urgency(Phase::Final);
        let mut delivery = Delivery::new(pacer, chat, self.limits, urgency, Policy::FINAL);
        loop {
            delivery.slot().await;
            let error = match self.call(&text, Phase::Final).await {
                Ok(()) => return Ok(()),
                // The message already shows exactly this text: the final state is there.
                Err(PlatformError::Rejected(_)) if self.current.is_some() && self.shown == text => {
                    return Ok(());
                }
                Err(PlatformError::Forbidden(reason)) => return Err(Forbidden(reason)),
                // The message was deleted: the next try sends a new one.
                Err(PlatformError::MessageGone) => continue,
                Err(error) => error,
            };
            if !delivery.again(&error).await {
                self.trouble = Some(format!("the final text could not be delivered: {error}"));
                return Ok(());
            }
        }
    }

    /// One send (no current message) or edit of the current message, without pacing.
    async fn call(&mut self, text: &str, phase: Phase) -> Result<(), PlatformError> {
        let (platform, chat) = (self.ctx.platform, self.ctx.chat);
        let buttons = self.buttons(phase);
        let (kind, result) = match &self.current {
            Some(message) => {
                let edit = platform.edit_with(chat, message, text, phase, &buttons);
                (Edit, edit.await)
            }
            None => {
                let reply_to = self.ctx.reply_to.filter(|_| self.messages.is_empty());
                let send = platform.send_with(chat, reply_to, text, phase, &buttons);
                (Send, send.await)
            }
        };
        self.count_call(kind, result.as_ref().err());
        match result {
            Ok(message) => {
                self.shown_as(message, text).await;
                Ok(())
            }
            Err(PlatformError::MessageGone) => {
                self.lost().await;
                Err(PlatformError::MessageGone)
            }
            Err(error) => Err(error),
        }
    }

    /// The buttons a call of `phase` leaves under the message: Stop while streaming, the
    /// finished reply's on its last message (when it has text to regenerate), else none.
    fn buttons(&self, phase: Phase) -> Vec<Button> {
        match (phase, self.ctx.stop, self.ctx.row) {
            (Phase::Streaming, Some(stop), _) => vec![stop.button.clone()],
            (Phase::Final, _, Some(row)) if self.closing && !self.text.is_empty() => {
                let choices = self.others.values().filter(|(t, _)| !t.is_empty()).count();
                let browse = self
                    .ctx
                    .browse
                    .or((choices > 0).then_some((0, choices + 1)));
                final_buttons(row, self.finish_reason.as_deref(), browse)
            }
            _ => Vec::new(),
        }
    }

    /// Records that `message` now shows `text`.
    async fn shown_as(&mut self, message: MessageRef, text: &str) {
        self.shown = text.to_string();
        if !self.content_shown && !self.text.is_empty() {
            self.content_shown = true;
            if let Some(asked_at) = self.ctx.asked_at {
                meter().first_token(self.ctx.platform.kind(), asked_at.elapsed());
            }
        }
        let changed = match &self.current {
            Some(current) if *current == message => false,
            Some(current) => {
                let old = current.clone();
                self.messages
                    .iter_mut()
                    .filter(|m| **m == old)
                    .for_each(|m| *m = message.clone());
                true
            }
            None => {
                self.messages.push(message.clone());
                true
            }
        };
        self.current = Some(message);
        if changed {
            self.ctx.observer.messages_changed(&self.messages).await;
        }
    }

    /// The current message was deleted: forget it; the next call sends a new one.
    async fn lost(&mut self) {
        if let Some(gone) = self.current.take() {
            self.messages.retain(|m| *m != gone);
            self.shown.clear();
            self.ctx.observer.messages_changed(&self.messages).await;
        }
    }
}

/// Sums reported usage.
fn add_usage(total: &mut Usage, more: Usage) {
    total.prompt_tokens += more.prompt_tokens;
    total.completion_tokens += more.completion_tokens;
    total.cached_tokens += more.cached_tokens;
    total.reasoning_tokens += more.reasoning_tokens;
}
