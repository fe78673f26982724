//! The streaming reply engine: turns a model's token stream into paced sends and edits that
//! end with every message showing its exact final text.
//!
//! Invariant: the texts of all messages of a reply, with the fence markup [`split`] added and
//! the interruption marker removed, put together equal [`ReplyOutcome::text`].
//!
//! [`split`]: super::split

mod run;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::controls::Stopper;
use super::event::{ChatKey, MessageRef};
use super::meter::{Streaming, meter};
use super::pace::Pacer;
use super::ports::{Button, MessageRowId, ModelError, Platform, ReplyStatus, TokenStream, Usage};

/// The marker that starts the text appended to an interrupted reply.
pub const INTERRUPTED: &str = "⚠️ reply interrupted: ";

/// The marker a reply someone stopped ends with.
pub const STOPPED_MARKER: &str = "⏹ stopped";

/// What the engine says when a shutdown interrupts a reply.
pub const RESTARTED: &str = "the bot restarted";

/// How a reply looks while it streams.
#[derive(Clone)]
pub struct ReplyOptions {
    /// After this long without content, show a "thinking… Ns" placeholder; `None` never does.
    /// The default is 3 s: long enough that fast models never show it.
    pub thinking_after: Option<Duration>,
    /// The short sentence shown for a model error; the default is [`ModelError::user_message`].
    pub error_text: Arc<dyn Fn(&ModelError) -> String + Send + Sync>,
}

impl Default for ReplyOptions {
    fn default() -> Self {
        Self {
            thinking_after: Some(Duration::from_secs(3)),
            error_text: Arc::new(ModelError::user_message),
        }
    }
}

impl fmt::Debug for ReplyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyOptions")
            .field("thinking_after", &self.thinking_after)
            .finish_non_exhaustive()
    }
}

/// Told how a reply progresses, so the caller can store it early and a crash loses little.
#[async_trait]
pub trait ReplyObserver: Send + Sync {
    /// The reply's messages changed (one was created, replaced or lost); all of them, in order.
    async fn messages_changed(&self, messages: &[MessageRef]);

    /// The model's text so far: told when a message is finished and at most every few seconds
    /// while one streams, never per token.
    async fn text_so_far(&self, _text: &str) {}

    /// The model's stream has ended (or never started): what is left is landing the final text,
    /// which may wait for the platform's budget. Told once, before that.
    fn stream_ended(&self) {}
}

#[async_trait]
impl ReplyObserver for () {
    async fn messages_changed(&self, _messages: &[MessageRef]) {}
}

/// Everything a reply needs besides its token stream.
#[derive(Clone, Copy)]
pub struct ReplyContext<'a> {
    /// Where the reply is shown.
    pub platform: &'a dyn Platform,
    /// The platform's pacer, shared by every reply on it.
    pub pacer: &'a Pacer,
    /// The chat the reply goes to.
    pub chat: &'a ChatKey,
    /// The user message the first message of the reply answers.
    pub reply_to: Option<&'a MessageRef>,
    /// Placeholder and error wording.
    pub options: &'a ReplyOptions,
    /// Told about the messages as they appear.
    pub observer: &'a dyn ReplyObserver,
    /// Shutdown: stop reading and mark the reply interrupted.
    pub cancel: &'a CancellationToken,
    /// The Stop control shown while the reply streams, if it has one.
    pub stop: Option<StopControl<'a>>,
    /// The stored reply, when its last message should carry the finished reply's buttons
    /// (Regenerate, and Continue after a cut).
    pub row: Option<MessageRowId>,
    /// Messages of an earlier answer to write this one into, in order (a regenerate shows the
    /// new answer in place of the old); those left over are deleted at the end.
    pub reuse: &'a [MessageRef],
    /// With several answers, which one this is and how many there are ("◀ k/N ▶").
    pub browse: Option<(usize, usize)>,
    /// When the model was asked: the start of the time-to-first-token and reply-time metrics.
    /// `None` for a stored answer shown again (◀ ▶, `/alt`): no model was asked, and it is not
    /// counted as a reply.
    pub asked_at: Option<Instant>,
}

/// The Stop control of a streaming reply: the button its previews carry, and the switch a
/// press throws (its token is a child of the shutdown token, so it ends the read either way).
#[derive(Clone, Copy)]
pub struct StopControl<'a> {
    /// Shown under every preview; the final texts carry no button.
    pub button: &'a Button,
    /// Stops the reply.
    pub stopper: &'a Stopper,
}

/// How a reply ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyOutcome {
    /// The model's full visible text (no markers, no fence markup).
    pub text: String,
    /// Complete, partial or failed.
    pub status: ReplyStatus,
    /// Why it is partial or failed.
    pub reason: Option<String>,
    /// The platform messages the reply occupies, in order.
    pub messages: Vec<MessageRef>,
    /// Token usage the model reported, summed.
    pub usage: Usage,
    /// The model error that ended it, if one did.
    pub error: Option<ModelError>,
    /// Why the model finished (`stop`, `length`, ...), when it did.
    pub finish_reason: Option<String>,
    /// The other choices of a request with `n` above 1, in index order: text and finish
    /// reason (the shown text is the first choice's).
    pub others: Vec<(String, Option<String>)>,
}

/// Streams `stream` into the chat of `ctx` and returns once the final state has landed (or
/// could not: then the outcome says why).
pub async fn stream_reply(
    ctx: &ReplyContext<'_>,
    stream: Result<TokenStream, ModelError>,
) -> ReplyOutcome {
    let platform = ctx.platform.kind();
    let Some(asked_at) = ctx.asked_at else {
        // A stored answer shown again: platform calls, but no reply to count.
        return run::Reply::new(ctx).run(stream).await;
    };
    let _streaming = Streaming::start();
    let outcome = run::Reply::new(ctx).run(stream).await;
    let took = asked_at.elapsed();
    meter().reply_finished(platform, outcome.status, took, &outcome.usage);
    if let Some(error) = &outcome.error {
        meter().completion_error(error.kind());
    }
    outcome
}

#[cfg(test)]
mod tests;
