//! The traits the engine needs from the outside world: a chat `Platform`, a completion `Model`
//! and a conversation `Store`, with the value types that cross them.

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::Stream;

use super::event::{Author, ChatKey, ConversationId, MessageRef, PlatformKind, UserId};

// ---------------------------------------------------------------------------------------------
// Platform
// ---------------------------------------------------------------------------------------------

/// How a platform measures message length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthUnit {
    /// Unicode scalar values (Discord's 2,000 "characters").
    Chars,
    /// UTF-16 code units (Telegram's 4,096).
    Utf16,
}

impl LengthUnit {
    /// The length of `text` in this unit.
    pub fn len(self, text: &str) -> usize {
        match self {
            Self::Chars => text.chars().count(),
            Self::Utf16 => text.encode_utf16().count(),
        }
    }

    /// The length of one character in this unit.
    pub fn char_len(self, c: char) -> usize {
        match self {
            Self::Chars => 1,
            Self::Utf16 => c.len_utf16(),
        }
    }
}

/// A rolling-window budget: at most `count` calls in any `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Calls allowed in one window.
    pub count: u32,
    /// The window's length.
    pub per: Duration,
}

/// How fast calls may go at one level (a chat, or a scope several chats share).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Shortest gap between two calls.
    pub min_interval: Duration,
    /// A rolling budget on top of `min_interval`.
    pub window: Option<Window>,
}

/// What a platform allows in one chat, at every level it counts calls; the engine's pacer
/// keeps all of them, so an adapter never holds a call back itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest message text, in `unit`.
    pub max_len: usize,
    /// How `max_len` is measured.
    pub unit: LengthUnit,
    /// Shortest gap between two calls (sends and edits together) in one chat.
    pub min_interval: Duration,
    /// A chat-wide rolling budget on top of `min_interval`, shared by concurrent replies.
    pub window: Option<Window>,
    /// A budget every thread of the chat shares (the chat key without its thread): all forum
    /// topics of a Telegram group count against the group's limits.
    pub shared: Option<Rate>,
    /// The bot-wide budget over every chat of the platform (Telegram's ~30 messages a second,
    /// Discord's 50 requests a second); `None` where calls do not count against one.
    pub bot: Option<Window>,
    /// Whether a typing call counts against `bot` (Discord's does; Telegram's chat actions are
    /// not messages).
    pub typing_counts: bool,
    /// How often the typing indicator must be refreshed to stay visible.
    pub typing_every: Duration,
}

impl Limits {
    /// The chat's own rate.
    pub fn chat_rate(&self) -> Rate {
        Rate {
            min_interval: self.min_interval,
            window: self.window,
        }
    }
}

/// Whether a send or edit shows an intermediate state or the final text of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A preview while tokens still arrive; the platform may render it provisionally.
    Streaming,
    /// The finished text of this message; it must land exactly.
    Final,
}

/// Why a platform call failed, in the terms the reply engine acts on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// The platform answered 429 (and only that): pause this chat for the duration, then send
    /// the newest text.
    #[error("rate limited; retry after {0:?}")]
    RetryAfter(Duration),
    /// The message to edit no longer exists (deleted by a user); continue in a new one.
    #[error("the message to edit no longer exists")]
    MessageGone,
    /// The bot may not write here (blocked, kicked, missing permissions); stop this reply.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The platform refused the request itself (bad request); retrying the same will not help.
    #[error("rejected: {0}")]
    Rejected(String),
    /// A network error or server failure; a later attempt may succeed.
    #[error("platform unavailable: {0}")]
    Unavailable(String),
}

/// A chat platform as the engine sees it. Implementations convert to and from their wire types.
///
/// Contract: `send`, `edit` and `typing` make one call to the platform (two when a format the
/// platform refused is sent again as plain text) and report what the platform said: the text
/// is visible and the message's reference returned, or a [`PlatformError`] says what to do next
/// (`RetryAfter` only for the platform's own 429s). They never wait for a budget or retry rate
/// limits themselves: the engine paces every call by [`Platform::limits`] and retries. `text` is Markdown as the model wrote it, already
/// split to fit [`Limits::max_len`]; the platform converts it to its own format.
#[async_trait]
pub trait Platform: Send + Sync {
    /// Which platform this is.
    fn kind(&self) -> PlatformKind;

    /// The limits that apply in `chat`.
    fn limits(&self, chat: &ChatKey) -> Limits;

    /// Sends a new message, as a reply to `reply_to` when given.
    async fn send(
        &self,
        chat: &ChatKey,
        reply_to: Option<&MessageRef>,
        text: &str,
        phase: Phase,
    ) -> Result<MessageRef, PlatformError>;

    /// Replaces the text of `message`; returns the reference it has afterwards (a platform may
    /// turn a draft into a real message on the final edit).
    async fn edit(
        &self,
        chat: &ChatKey,
        message: &MessageRef,
        text: &str,
        phase: Phase,
    ) -> Result<MessageRef, PlatformError>;

    /// Shows the typing indicator in `chat`.
    async fn typing(&self, chat: &ChatKey) -> Result<(), PlatformError>;
}

// ---------------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------------

/// A model name as the completion API knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelName(String);

impl ModelName {
    /// Wraps a model name.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The name as sent to the API.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who said a message in a completion request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions for the model.
    System,
    /// A person.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The role's wire and database name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

/// One message of a completion request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Who said it.
    pub role: Role,
    /// What was said, exactly as sent (display-name prefix included in groups).
    pub content: String,
}

/// A completion request for one turn of one conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionRequest {
    /// Sent as the conversation header, so the provider's prompt cache keeps hitting.
    pub conversation: ConversationId,
    /// The model to ask.
    pub model: ModelName,
    /// System prompt, history and the new message, in order.
    pub messages: Vec<ChatMessage>,
}

/// Token counts the API reported for one reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u64,
    /// Tokens in the answer (reasoning included).
    pub completion_tokens: u64,
    /// Prompt tokens served from the provider's cache.
    pub cached_tokens: u64,
    /// Completion tokens spent thinking.
    pub reasoning_tokens: u64,
}

/// One event of a streamed completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// Visible answer text.
    Content(String),
    /// The model is thinking: reasoning text (never shown as the answer) or an empty delta.
    Thinking(String),
    /// The API reported token usage.
    Usage(Usage),
    /// The model finished, with the API's finish reason (`stop`, `length`, ...).
    Finished(String),
}

/// Which wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// Connecting to the API.
    Connect,
    /// Waiting for the first token.
    FirstToken,
    /// Waiting between two chunks.
    Idle,
    /// The whole reply.
    Total,
}

/// Why a completion failed, with a short sentence a chat user can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// 429 from the API.
    #[error("rate limited by the model provider")]
    RateLimited {
        /// How long the API asked us to wait.
        retry_after: Option<Duration>,
    },
    /// 401/403: the API key is wrong or lacks access.
    #[error("the API key was refused")]
    Unauthorized,
    /// The API does not know the model.
    #[error("unknown model {0}")]
    UnknownModel(String),
    /// The API refused the request (400) for another reason; the API's message.
    #[error("request refused: {0}")]
    BadRequest(String),
    /// 5xx, a connection failure or an unreadable answer.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// A timeout ran out.
    #[error("timed out ({0:?})")]
    Timeout(TimeoutKind),
    /// The stream ended without a finish reason.
    #[error("upstream closed the stream")]
    Incomplete,
    /// The API sent an error object in the middle of the stream.
    #[error("upstream error: {0}")]
    Upstream(String),
}

impl ModelError {
    /// Every value [`ModelError::kind`] can return, for metrics known in advance.
    pub const KINDS: [&'static str; 11] = [
        "rate_limited",
        "unauthorized",
        "unknown_model",
        "bad_request",
        "unavailable",
        "timeout_connect",
        "timeout_first_token",
        "timeout_idle",
        "timeout_total",
        "incomplete",
        "upstream",
    ];

    /// A short stable name for metrics and logs: `rate_limited`, `timeout_idle`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::Unauthorized => "unauthorized",
            Self::UnknownModel(_) => "unknown_model",
            Self::BadRequest(_) => "bad_request",
            Self::Unavailable(_) => "unavailable",
            Self::Timeout(TimeoutKind::Connect) => "timeout_connect",
            Self::Timeout(TimeoutKind::FirstToken) => "timeout_first_token",
            Self::Timeout(TimeoutKind::Idle) => "timeout_idle",
            Self::Timeout(TimeoutKind::Total) => "timeout_total",
            Self::Incomplete => "incomplete",
            Self::Upstream(_) => "upstream",
        }
    }

    /// A short sentence for the chat: no stack trace, no secret.
    pub fn user_message(&self) -> String {
        match self {
            Self::RateLimited {
                retry_after: Some(wait),
            } => format!(
                "The model provider is rate limiting us — try again in {} s.",
                wait.as_secs_f64().ceil().max(1.0) as u64
            ),
            Self::RateLimited { retry_after: None } => {
                "The model provider is rate limiting us — try again in a moment.".into()
            }
            Self::Unauthorized => {
                "The model provider refused the API key: invalid API key (ask the bot's admin to check llm.api_key).".into()
            }
            Self::UnknownModel(name) => format!("Unknown model `{name}`."),
            Self::BadRequest(reason) => format!("The model provider refused the request: {reason}"),
            Self::Unavailable(_) => "The model provider is unavailable right now (upstream unavailable) — try again shortly.".into(),
            Self::Timeout(TimeoutKind::Connect) => {
                "Could not reach the model provider (connection timed out).".into()
            }
            Self::Timeout(TimeoutKind::FirstToken) => {
                "The model took too long to start answering.".into()
            }
            Self::Timeout(TimeoutKind::Idle) => "upstream stalled".into(),
            Self::Timeout(TimeoutKind::Total) => "the reply took too long".into(),
            Self::Incomplete => "upstream closed the stream".into(),
            Self::Upstream(reason) => format!("upstream error: {reason}"),
        }
    }
}

/// A stream of completion events; it ends after `Finished` (and a possible `Usage`).
///
/// A reader that leaves the stream unread for a while (a preview waits for its slot) says so
/// with [`TokenStream::hold`]; a transport that can (see [`Hold`]) then stops waking the bot for
/// every token that arrives meanwhile. Reading the stream again ends the hold first, so a held
/// transport is never waited on.
pub struct TokenStream {
    events: Pin<Box<dyn Stream<Item = Result<StreamEvent, ModelError>> + Send>>,
    hold: Option<Box<dyn Hold>>,
    held: bool,
}

/// What a transport can do while its reader leaves a stream unread.
pub trait Hold: Send + Sync {
    /// The reader will not read for a while: arriving data may wait unannounced.
    fn hold(&self);
    /// Announce what arrives at once again, including what is already there.
    fn release(&self);
}

impl TokenStream {
    /// A stream of `events` whose transport has nothing to do while it is held.
    pub fn new(
        events: impl Stream<Item = Result<StreamEvent, ModelError>> + Send + 'static,
    ) -> Self {
        Self {
            events: Box::pin(events),
            hold: None,
            held: false,
        }
    }

    /// The same stream, telling `hold` when it is held.
    pub fn with_hold(mut self, hold: Box<dyn Hold>) -> Self {
        self.hold = Some(hold);
        self
    }

    /// The stream is left unread for a while; the next read ends the hold.
    pub fn hold(&mut self) {
        if let Some(hold) = self.hold.as_ref().filter(|_| !self.held) {
            hold.hold();
            self.held = true;
        }
    }

    fn release(&mut self) {
        if let Some(hold) = self.hold.as_ref().filter(|_| self.held) {
            hold.release();
            self.held = false;
        }
    }
}

impl Stream for TokenStream {
    type Item = Result<StreamEvent, ModelError>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.release();
        self.events.as_mut().poll_next(cx)
    }
}

impl Drop for TokenStream {
    fn drop(&mut self) {
        self.release();
    }
}

impl fmt::Debug for TokenStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenStream")
            .field("holds", &self.hold.is_some())
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

/// An OpenAI-compatible chat-completions endpoint.
///
/// Contract: `complete` retries what is safe to retry before returning; once it returns a
/// stream, every item is either an event or a final error, and a stream that ends without
/// `Finished` ends with `Err(ModelError::Incomplete)` instead.
#[async_trait]
pub trait Model: Send + Sync {
    /// Starts a completion and returns its event stream.
    async fn complete(&self, request: CompletionRequest) -> Result<TokenStream, ModelError>;
}

// ---------------------------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------------------------

/// A stored conversation: the place it belongs to and its stable id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// The stable random id sent as the conversation header.
    pub id: ConversationId,
    /// Where the conversation happens.
    pub key: ChatKey,
}

/// The database id of one stored message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageRowId(pub i64);

/// A message of a conversation's history, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// User or assistant.
    pub role: Role,
    /// The author's display name for user messages.
    pub author_name: Option<String>,
    /// The text: the user's prompt, or the model's answer (partial answers as far as they got).
    pub content: String,
}

/// Where a reply stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStatus {
    /// Tokens are still arriving.
    Streaming,
    /// The model finished and the final text landed.
    Complete,
    /// The reply stopped part-way (upstream failure, restart); the text is what arrived.
    Partial,
    /// Nothing usable arrived.
    Failed,
}

impl ReplyStatus {
    /// The status's database name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Streaming => "streaming",
            Self::Complete => "complete",
            Self::Partial => "partial",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored status name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "streaming" => Some(Self::Streaming),
            "complete" => Some(Self::Complete),
            "partial" => Some(Self::Partial),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// How a reply ended, as recorded in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyRecord {
    /// The model's text as far as it got (no interruption marker).
    pub content: String,
    /// Complete, partial or failed.
    pub status: ReplyStatus,
    /// Why it is partial or failed.
    pub reason: Option<String>,
    /// The platform messages the reply occupies, in order.
    pub platform_messages: Vec<MessageRef>,
    /// Token usage, when the API reported it.
    pub usage: Usage,
}

/// Per-chat settings; `None` means the configured default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatSettings {
    /// The model this chat uses.
    pub model: Option<ModelName>,
    /// This chat's system prompt.
    pub system_prompt: Option<String>,
}

/// What a turn reads before it asks the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnContext {
    /// The chat's current conversation; when `new`, one not stored yet.
    pub conversation: Conversation,
    /// The place has no conversation yet: `conversation` has a fresh random id, which
    /// [`Store::start_turn`] stores.
    pub new: bool,
    /// The chat's settings.
    pub settings: ChatSettings,
    /// The conversation's history, oldest first.
    pub history: Vec<StoredMessage>,
}

/// What a turn stores once its request has left.
#[derive(Debug, Clone, Copy)]
pub struct TurnStart<'a> {
    /// The conversation the turn's context named.
    pub conversation: ConversationId,
    /// When the context was `new`: the place to create `conversation` in first.
    pub create_in: Option<&'a ChatKey>,
    /// Who wrote the message.
    pub author: &'a Author,
    /// What they wrote.
    pub content: &'a str,
    /// The model that answers.
    pub model: &'a ModelName,
}

/// What a turn's first write stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnRows {
    /// The conversation they belong to: the turn's own, or the one another turn created for the
    /// place first.
    pub conversation: ConversationId,
    /// The reply, status `streaming`.
    pub reply: MessageRowId,
}

/// Token totals over many replies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageTotals {
    /// Replies counted.
    pub replies: u64,
    /// Summed usage.
    pub usage: Usage,
}

/// A reply a crash left `streaming`, now marked partial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterruptedReply {
    /// The reply's row.
    pub id: MessageRowId,
    /// Where it was being written.
    pub key: ChatKey,
    /// The platform messages it occupied, so they can be marked as interrupted.
    pub platform_messages: Vec<MessageRef>,
    /// The text recorded while it streamed (it may lag what was shown by a few seconds).
    pub content: String,
}

/// A failure of the store: its message names what failed (never a secret), its
/// [`source`](std::error::Error::source) keeps the cause, when there is one.
#[derive(Debug, thiserror::Error)]
#[error("database error: {context}")]
pub struct StoreError {
    context: String,
    #[source]
    cause: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl StoreError {
    /// A failure that `context` describes in full.
    pub fn new(context: impl Into<String>) -> Self {
        Self {
            context: context.into(),
            cause: None,
        }
    }

    /// `context` failed because of `cause`.
    pub fn caused(
        context: impl Into<String>,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            context: context.into(),
            cause: Some(cause.into()),
        }
    }

    /// The conversation a turn names is not stored.
    pub fn unknown_conversation(conversation: ConversationId) -> Self {
        Self::new(format!("no conversation {conversation} is stored"))
    }

    /// The reply a write names is not stored.
    pub fn unknown_reply(reply: MessageRowId) -> Self {
        Self::new(format!("no reply with row id {} is stored", reply.0))
    }

    /// The message and every cause under it, joined by `: `, for a log line (the JSON log
    /// format shows only an error's own message).
    pub fn chain(&self) -> impl fmt::Display + '_ {
        ErrorChain(self)
    }
}

/// Displays an error followed by its sources.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

/// Conversation storage.
///
/// Contract: every method is durable when it returns. `conversation` creates the chat's
/// conversation on first sight and returns the same id until `reset`. `history` returns user
/// messages and replies that are complete or partial, oldest first. A turn in a conversation
/// that is not stored fails with [`StoreError::unknown_conversation`], a write to a reply that
/// is not stored with [`StoreError::unknown_reply`]. Every store runs the suite in
/// `tests/it/store/suite.rs`, which holds it to this.
#[async_trait]
pub trait Store: Send + Sync {
    /// The chat's current conversation, created with a new random id on first sight.
    async fn conversation(&self, key: &ChatKey) -> Result<Conversation, StoreError>;

    /// Everything a turn reads before its request: the chat's current conversation, its
    /// settings and its history. It writes nothing: a place without a conversation gets a fresh
    /// id marked `new`, which `start_turn` stores. A store should answer it in as few round trips
    /// as it can: it sits between a message arriving and the request leaving.
    async fn turn_context(&self, key: &ChatKey) -> Result<TurnContext, StoreError>;

    /// Stores a turn's user message and its `streaming` reply row, `in_reply_to` the message
    /// (usage per user is counted through it). With `turn.create_in` it creates the conversation
    /// first — unless another turn created the place's conversation first, which the rows then
    /// join. All of it or none of it.
    async fn start_turn(&self, turn: &TurnStart<'_>) -> Result<TurnRows, StoreError>;

    /// Starts a new conversation with a new id; the old one stays stored.
    async fn reset(&self, key: &ChatKey) -> Result<Conversation, StoreError>;

    /// The conversation's history, oldest first (failed and streaming replies left out).
    async fn history(&self, conversation: ConversationId)
    -> Result<Vec<StoredMessage>, StoreError>;

    /// Records the platform messages a streaming reply occupies so far.
    async fn set_reply_messages(
        &self,
        reply: MessageRowId,
        messages: &[MessageRef],
    ) -> Result<(), StoreError>;

    /// Records the text of a reply still streaming, so a crash keeps what was shown. A reply
    /// that already ended (or is not stored) is left alone, without an error: a late write must
    /// not undo how the reply ended.
    async fn set_reply_text(&self, reply: MessageRowId, text: &str) -> Result<(), StoreError>;

    /// Records how a reply ended.
    async fn finish_reply(
        &self,
        reply: MessageRowId,
        record: &ReplyRecord,
    ) -> Result<(), StoreError>;

    /// The chat's settings.
    async fn settings(&self, key: &ChatKey) -> Result<ChatSettings, StoreError>;

    /// Sets (or with `None` clears) the chat's model.
    async fn set_model(&self, key: &ChatKey, model: Option<&ModelName>) -> Result<(), StoreError>;

    /// Sets (or with `None` clears) the chat's system prompt.
    async fn set_system_prompt(
        &self,
        key: &ChatKey,
        prompt: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Usage of every reply in this chat, over all its conversations.
    async fn chat_usage(&self, key: &ChatKey) -> Result<UsageTotals, StoreError>;

    /// Usage of the replies to one user's messages on one platform.
    async fn user_usage(
        &self,
        platform: PlatformKind,
        user: &UserId,
    ) -> Result<UsageTotals, StoreError>;

    /// Marks every reply on `platform` still `streaming` as `partial` (interrupted) and returns
    /// them. Per platform, so `parley chat` on a live database leaves a running bot's replies be.
    async fn recover_interrupted(
        &self,
        platform: PlatformKind,
    ) -> Result<Vec<InterruptedReply>, StoreError>;
}
