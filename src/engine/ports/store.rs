//! The conversation `Store` port: the rows and records a turn reads and writes, and the
//! store's error.

use std::fmt;

use async_trait::async_trait;

use super::model::{ModelName, Role, Usage};
use crate::engine::attachment::StoredFile;
use crate::engine::event::{Author, ChatKey, ConversationId, MessageRef, PlatformKind, UserId};

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
    /// The files a user message brought, in order (none for replies).
    pub files: Vec<StoredFile>,
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
    /// Token usage, when the API reported it; added to what the reply counted before (a
    /// regenerated or continued reply counts every attempt).
    pub usage: Usage,
    /// Why the model finished (`stop`, `length`, ...), when it said.
    pub finish_reason: Option<String>,
}

/// The newest reply of a chat's current conversation, as the reply controls see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastReply {
    /// Its row: what its buttons name.
    pub id: MessageRowId,
    /// Where it stands.
    pub status: ReplyStatus,
    /// The text shown (and in the history).
    pub content: String,
    /// Why the model finished it, when it said.
    pub finish_reason: Option<String>,
    /// The platform messages it occupies, in order.
    pub platform_messages: Vec<MessageRef>,
}

/// Per-chat settings; `None` means the configured default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatSettings {
    /// The model this chat uses.
    pub model: Option<ModelName>,
    /// This chat's system prompt.
    pub system_prompt: Option<String>,
    /// Answers per request this chat chose with `/n` (1..4).
    pub n: Option<u32>,
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
    /// The files their message brought, stored once by content.
    pub files: &'a [StoredFile],
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

    /// The newest reply of the chat's current conversation (none after a reset).
    async fn last_reply(&self, key: &ChatKey) -> Result<Option<LastReply>, StoreError>;

    /// Reopens a finished reply for a regenerate or a continue: it is `streaming` again (out of
    /// the history until it finishes). With `keep`, a reply without a set of answers first gets
    /// one holding its shown text and finish reason (position 0). A reply still streaming is not
    /// reopened ([`StoreError::unknown_reply`]).
    async fn reopen_reply(&self, reply: MessageRowId, keep: bool) -> Result<(), StoreError>;

    /// The reply's set of answers, by position (empty for a reply with one answer).
    async fn alternatives(&self, reply: MessageRowId) -> Result<Vec<String>, StoreError>;

    /// Adds an answer to the reply's set; its position.
    async fn add_alternative(
        &self,
        reply: MessageRowId,
        content: &str,
        finish_reason: Option<&str>,
    ) -> Result<usize, StoreError>;

    /// Replaces the set's answer `index` (a Continue made the answer shown longer); an index the
    /// set does not have changes nothing.
    async fn set_alternative(
        &self,
        reply: MessageRowId,
        index: usize,
        content: &str,
        finish_reason: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Makes the set's answer `index` the reply's shown text (what the history holds); it and
    /// its finish reason, or `None` when there is no such answer or the reply streams.
    async fn show_alternative(
        &self,
        reply: MessageRowId,
        index: usize,
    ) -> Result<Option<(String, Option<String>)>, StoreError>;

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

    /// Sets (or with `None` clears) the answers per request the chat asks for.
    async fn set_n(&self, key: &ChatKey, n: Option<u32>) -> Result<(), StoreError>;

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
