//! The completion `Model` port: the request, the events of a streamed answer (`TokenStream`
//! and its `Hold`) and the errors a completion ends with.

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

use crate::engine::event::ConversationId;

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

/// A part of a user message after its text: what an attachment became.
#[derive(Clone, PartialEq, Eq)]
pub enum Part {
    /// Text: a text file's name and fenced content, or the stand-in for an image the model
    /// cannot read.
    Text(String),
    /// An image, sent as a `data:` URL of exactly these bytes.
    Image {
        /// Its MIME type.
        mime: &'static str,
        /// The image file's bytes (shared, never copied per request).
        data: Bytes,
    },
}

/// An image's bytes are left out.
impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => f.debug_tuple("Text").field(text).finish(),
            Self::Image { mime, data } => f
                .debug_struct("Image")
                .field("mime", mime)
                .field("bytes", &data.len())
                .finish(),
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
    /// What its attachments became, sent after `content` (none: `content` is sent alone, as
    /// a plain string).
    pub parts: Vec<Part>,
}

impl ChatMessage {
    /// A message of text alone.
    pub fn text(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            parts: Vec::new(),
        }
    }
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
    /// Answers asked for, when the chat chose (`/n`); else the client's `llm.n`.
    pub n: Option<u32>,
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
    /// Text of another choice than the first (a request with `n` above 1): `index` from 1.
    Other {
        /// The choice's index.
        index: usize,
        /// Its visible text.
        text: String,
    },
    /// Another choice than the first finished, with its finish reason.
    OtherFinished {
        /// The choice's index.
        index: usize,
        /// Why it finished.
        reason: String,
    },
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
