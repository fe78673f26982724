//! The chat `Platform` port: the limits it declares, the phases of a send or edit and the
//! errors the reply engine acts on.

use std::time::Duration;

use async_trait::async_trait;

use crate::engine::attachment::FileRef;
use crate::engine::event::{ChatKey, MessageRef, PlatformKind, UserId};

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

impl Rate {
    /// A rolling window alone, with no gap between calls (a bot-wide budget).
    pub fn window(window: Window) -> Self {
        Self {
            min_interval: Duration::ZERO,
            window: Some(window),
        }
    }
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
    /// Limits that pace nothing: messages up to `max_len` characters, typing refreshed every
    /// `typing_every` (a terminal, tests that do not look at pacing).
    pub fn unpaced(max_len: usize, typing_every: Duration) -> Self {
        Self {
            max_len,
            unit: LengthUnit::Chars,
            min_interval: Duration::ZERO,
            window: None,
            shared: None,
            bot: None,
            typing_counts: false,
            typing_every,
        }
    }

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

/// A button under a message: its label, and the data a press sends back to the bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    /// What the button says.
    pub label: String,
    /// What a press sends back (at most 64 bytes: Telegram's limit).
    pub data: String,
    /// A Stop button: a platform with a stop control of its own for streamed text (a
    /// Telegram draft's) may show that instead.
    pub stops: bool,
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

/// Why an attachment could not be fetched. The text never holds a URL or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The file is larger than the limit asked for (or than the platform lets a bot download).
    #[error("larger than {0} bytes")]
    TooLarge(u64),
    /// The platform does not hand out files (or not this one).
    #[error("files are not available here")]
    Unsupported,
    /// The download failed (network, timeout, the platform refused); what happened.
    #[error("download failed: {0}")]
    Failed(String),
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

    /// Like [`Platform::send`], with `buttons` under the message. A platform without buttons
    /// sends the text alone (the default).
    async fn send_with(
        &self,
        chat: &ChatKey,
        reply_to: Option<&MessageRef>,
        text: &str,
        phase: Phase,
        _buttons: &[Button],
    ) -> Result<MessageRef, PlatformError> {
        self.send(chat, reply_to, text, phase).await
    }

    /// Like [`Platform::edit`], leaving exactly `buttons` under the message (none removes
    /// them). A platform without buttons edits the text alone (the default).
    async fn edit_with(
        &self,
        chat: &ChatKey,
        message: &MessageRef,
        text: &str,
        phase: Phase,
        _buttons: &[Button],
    ) -> Result<MessageRef, PlatformError> {
        self.edit(chat, message, text, phase).await
    }

    /// Leaves exactly `buttons` under `message` without changing its text (none removes
    /// them). A platform without buttons has nothing to do (the default).
    async fn set_buttons(
        &self,
        _chat: &ChatKey,
        _message: &MessageRef,
        _buttons: &[Button],
    ) -> Result<(), PlatformError> {
        Ok(())
    }

    /// Deletes one of the bot's messages (a regenerated reply that needs fewer messages than
    /// before). The default: the platform cannot, and says so.
    async fn delete(&self, _chat: &ChatKey, _message: &MessageRef) -> Result<(), PlatformError> {
        Err(PlatformError::Rejected(
            "messages cannot be deleted here".into(),
        ))
    }

    /// Shows the typing indicator in `chat`.
    async fn typing(&self, chat: &ChatKey) -> Result<(), PlatformError>;

    /// Whether `user` administers `chat` on the platform, and so may change its settings. The
    /// engine asks only for a settings command from someone not already known to be allowed,
    /// when the command's turn comes (never on an adapter's intake, where one slow lookup would
    /// hold every later update). The default: no one does.
    async fn is_chat_admin(&self, _chat: &ChatKey, _user: &UserId) -> bool {
        false
    }

    /// Downloads the file `file` names, refusing with [`FetchError::TooLarge`] once it is
    /// longer than `limit` bytes (checked before downloading where the platform says the size,
    /// and while reading). Has timeouts of its own. The default: no files.
    async fn fetch(&self, _file: &FileRef, _limit: u64) -> Result<Vec<u8>, FetchError> {
        Err(FetchError::Unsupported)
    }
}
