//! The read loop's timers and read states behind one call, [`Clocks::next`]: what happens
//! next in a reply — shutdown, a preview's slot, the time to read again, typing, the thinking
//! placeholder, or the stream's next event.

use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::{Instant, Sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::engine::pace::Grant;
use crate::engine::ports::{Limits, ModelError, StreamEvent, TokenStream};

/// While a preview waits in the bot-wide queue, reads are held for at most this long at a time.
const WAIT_SLICE: Duration = Duration::from_millis(500);
/// How far off a slot granted by the bot-wide queue is taken to be: its wait is unknown, so
/// reads are held slice by slice until it comes.
const WAIT_UNKNOWN: Duration = Duration::from_secs(3600);
/// Where typing costs a slot of the bot-wide budget, how long a reply waits for text before it
/// shows typing.
const TYPING_AFTER: Duration = Duration::from_secs(1);

/// How often the thinking placeholder's seconds are updated.
const THINKING_EVERY: Duration = Duration::from_secs(5);
/// While a preview waits for its slot, the stream is left unread for at most this long at a
/// time: the socket holds the tokens, and the bot wakes about once per slice instead of once
/// per token. Between slices it reads what came for [`CATCH_UP`], so the socket never holds
/// more than a slice's worth.
const HOLD_SLICE: Duration = Duration::from_secs(2);
/// Reading resumes this long before the slot, so the preview (or the final text, if the stream
/// ended meanwhile) goes out on time with everything the model sent: what the socket held is
/// read in a few milliseconds.
const CATCH_UP: Duration = Duration::from_millis(20);

/// Whether the read loop reads the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reads {
    /// Every token as it comes.
    Open,
    /// Not until `resume`: a preview waits for its slot.
    Held,
    /// Between two held slices, until `resume`.
    Draining,
}

/// The read loop's clocks, kept across its iterations.
pub(super) struct Clocks {
    /// When the pacer may allow the next preview.
    preview: Pin<Box<Sleep>>,
    preview_armed: bool,
    /// The deadline of `preview`.
    preview_at: Instant,
    /// A preview waiting behind other calls for the bot-wide budget; reads stay open.
    grant: Option<Grant>,
    /// When held reads resume, or a drain between slices ends.
    resume: Pin<Box<Sleep>>,
    reads: Reads,
    /// When the typing indicator is due.
    typing: Pin<Box<Sleep>>,
    /// How often typing is shown again.
    typing_every: Duration,
    /// Typing was shown once (or is due at once): the model's thinking no longer brings it
    /// forward.
    typing_started: bool,
    /// When the thinking placeholder is due.
    thinking: Pin<Box<Sleep>>,
    thinking_armed: bool,
}

impl Clocks {
    /// The clocks of a reply that starts at `start`. Where a typing call costs a slot of the
    /// bot-wide budget, typing waits [`TYPING_AFTER`] (or until the model shows it is thinking):
    /// a model that answers at once needs none, and the slot goes to a first text.
    pub(super) fn new(start: Instant, limits: &Limits, thinking_after: Option<Duration>) -> Self {
        let typing_at = if limits.typing_counts {
            start + TYPING_AFTER
        } else {
            start
        };
        Self {
            preview: Box::pin(sleep_until(start)),
            preview_armed: false,
            preview_at: start,
            grant: None,
            resume: Box::pin(sleep_until(start)),
            reads: Reads::Open,
            typing: Box::pin(sleep_until(typing_at)),
            typing_every: limits.typing_every.max(Duration::from_secs(1)),
            typing_started: !limits.typing_counts,
            thinking: Box::pin(sleep_until(start + thinking_after.unwrap_or_default())),
            thinking_armed: thinking_after.is_some(),
        }
    }

    /// Arms the preview for `ready` and holds reads until shortly before it.
    pub(super) fn arm_preview(&mut self, ready: Instant) {
        self.preview.as_mut().reset(ready);
        self.preview_armed = true;
        self.preview_at = ready;
        self.hold(Instant::now());
    }

    /// No preview is waiting: read every token.
    pub(super) fn disarm_preview(&mut self) {
        self.preview_armed = false;
        self.reads = Reads::Open;
    }

    /// Leaves the stream unread for a slice, or until [`CATCH_UP`] before the preview's slot
    /// when that comes first; reads on when the slot is closer than that.
    pub(super) fn hold(&mut self, now: Instant) {
        if self.preview_at.saturating_duration_since(now) <= CATCH_UP {
            self.reads = Reads::Open;
            return;
        }
        self.reads = Reads::Held;
        // A wait in the bot-wide queue can be long: shorter slices there keep each catch-up
        // (and the read buffers it grows) small.
        let slice = if self.grant.is_some() {
            WAIT_SLICE
        } else {
            HOLD_SLICE
        };
        let until = (self.preview_at - CATCH_UP).min(now + slice);
        self.resume.as_mut().reset(until);
    }

    /// The resume clock fired: after a slice that ends well before the slot, read what came
    /// for [`CATCH_UP`] and hold again; near the slot, read on.
    pub(super) fn resume_fired(&mut self) {
        let now = Instant::now();
        let far = self.preview_at.saturating_duration_since(now) > 2 * CATCH_UP;
        match self.reads {
            Reads::Held if self.preview_pending() && far => {
                self.reads = Reads::Draining;
                self.resume.as_mut().reset(now + CATCH_UP);
            }
            Reads::Draining if self.preview_pending() => self.hold(now),
            _ => self.reads = Reads::Open,
        }
    }
}

/// What happens next in a reply.
pub(super) enum Next {
    /// Shutdown: stop reading.
    Cancelled,
    /// A preview's slot was granted after waiting for the bot-wide budget.
    Granted,
    /// The chat's next slot has come: a preview may go.
    Slot,
    /// Held reads may resume (or a drain between slices ends).
    Resume,
    /// The typing indicator is due.
    Typing,
    /// The thinking placeholder's seconds are due.
    Thinking,
    /// The stream's next event, or its end.
    Event(Option<Result<StreamEvent, ModelError>>),
}

impl Clocks {
    /// A preview waits behind other calls for the bot-wide budget.
    /// A preview waits behind other calls for the bot-wide budget, for as long as it takes:
    /// reads are held in slices meanwhile (the newest text is read when the slot comes).
    pub(super) fn wait_for(&mut self, grant: Grant) {
        self.grant = Some(grant);
        let now = Instant::now();
        self.preview_at = now + WAIT_UNKNOWN;
        self.hold(now);
    }

    /// True while a preview's slot is armed or waited for: nothing new can be asked.
    pub(super) fn preview_pending(&self) -> bool {
        self.preview_armed || self.grant.is_some()
    }

    /// The model shows it is thinking: typing, if it has not shown yet, is due now.
    pub(super) fn model_thinking(&mut self) {
        if !self.typing_started {
            self.typing_started = true;
            self.typing.as_mut().reset(Instant::now());
        }
    }

    /// Waits for what happens next. `typing` and `thinking` say whether those clocks count now;
    /// while reads are held and the model has not `finished`, the transport is told that
    /// nothing is read for a while.
    pub(super) async fn next(
        &mut self,
        stream: &mut TokenStream,
        cancel: &CancellationToken,
        typing: bool,
        thinking: bool,
        finished: bool,
    ) -> Next {
        // Once the model has finished, what is left (usage, the end) is already on its way:
        // read it rather than hold a connection that may go back to its pool meanwhile.
        if self.reads == Reads::Held && !finished {
            stream.hold();
        }
        let thinking = thinking && self.thinking_armed;
        let next = tokio::select! {
            biased;
            () = cancel.cancelled() => Next::Cancelled,
            () = granted(&mut self.grant) => Next::Granted,
            () = &mut self.preview, if self.preview_armed => Next::Slot,
            () = &mut self.resume, if self.reads != Reads::Open => Next::Resume,
            () = &mut self.typing, if typing => Next::Typing,
            () = &mut self.thinking, if thinking => Next::Thinking,
            item = stream.next(), if self.reads != Reads::Held => Next::Event(item),
        };
        match next {
            Next::Granted => {
                self.grant = None;
                self.reads = Reads::Open;
            }
            Next::Slot => self.disarm_preview(),
            Next::Resume => self.resume_fired(),
            Next::Typing => {
                self.typing_started = true;
                let at = Instant::now() + self.typing_every;
                self.typing.as_mut().reset(at);
            }
            Next::Thinking => {
                let at = Instant::now() + THINKING_EVERY;
                self.thinking.as_mut().reset(at);
            }
            Next::Cancelled | Next::Event(_) => {}
        }
        next
    }
}

/// Completes when `grant` is granted; never while there is none.
async fn granted(grant: &mut Option<Grant>) {
    match grant {
        Some(grant) => grant.await,
        None => std::future::pending().await,
    }
}
