//! Platform-neutral inbound events and the typed ids that cross layer boundaries.

use std::fmt;

use uuid::Uuid;

use super::attachment::Attachment;
use super::command::Command;

/// Which platform a chat lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PlatformKind {
    /// The terminal platform behind `parley chat`.
    Console,
    /// Telegram through the Bot API.
    Telegram,
    /// Discord through the gateway and REST.
    Discord,
}

impl PlatformKind {
    /// The stable lowercase name stored in the database and used in config (`telegram:123`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Console => "console",
            Self::Telegram => "telegram",
            Self::Discord => "discord",
        }
    }

    /// Parses the name written by [`PlatformKind::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "console" => Some(Self::Console),
            "telegram" => Some(Self::Telegram),
            "discord" => Some(Self::Discord),
            _ => None,
        }
    }
}

impl fmt::Display for PlatformKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Wraps a platform's id, written as text.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id as the platform writes it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A chat, channel or DM on its platform.
    ChatId
);
string_id!(
    /// A thread (Discord) or forum topic (Telegram) inside a chat.
    ThreadId
);
string_id!(
    /// A user on their platform.
    UserId
);
string_id!(
    /// A message the platform stored (a Telegram message id, a Discord snowflake, a draft id).
    MessageRef
);

/// Identifies one conversation place: a platform chat, optionally a thread or topic in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChatKey {
    /// The platform the chat is on.
    pub platform: PlatformKind,
    /// The chat, channel or DM.
    pub chat: ChatId,
    /// The thread or topic, when the conversation lives in one.
    pub thread: Option<ThreadId>,
}

impl ChatKey {
    /// A chat without a thread.
    pub fn new(platform: PlatformKind, chat: impl Into<String>) -> Self {
        Self {
            platform,
            chat: ChatId::new(chat),
            thread: None,
        }
    }

    /// The same chat, in a thread or topic.
    pub fn with_thread(mut self, thread: impl Into<String>) -> Self {
        self.thread = Some(ThreadId::new(thread));
        self
    }
}

impl fmt::Display for ChatKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.platform, self.chat)?;
        if let Some(thread) = &self.thread {
            write!(f, "/{thread}")?;
        }
        Ok(())
    }
}

/// The stable random id of one conversation, sent as the conversation header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConversationId(Uuid);

impl ConversationId {
    /// A new random (v4) id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// Parses a stored id.
    pub fn parse(text: &str) -> Option<Self> {
        Uuid::parse_str(text).ok().map(Self)
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// The platform user id.
    pub id: UserId,
    /// The name shown in the chat, used to tell speakers apart in groups.
    pub display_name: String,
}

/// What an inbound message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Text for the model, bot mention already stripped.
    Prompt(String),
    /// A platform-neutral command.
    Command(Command),
}

/// One inbound message, converted from a platform event at the adapter's edge.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The conversation place it belongs to.
    pub key: ChatKey,
    /// Who wrote it.
    pub author: Author,
    /// What it asks for.
    pub content: Content,
    /// The files a prompt brings along (its own, or those of the message it replies to),
    /// read at its turn.
    pub attachments: Vec<Attachment>,
    /// True in a private chat or DM; false in groups, guild channels and threads.
    pub private: bool,
    /// True when the author may change this chat's settings (private chat, server manager, or
    /// listed in `access.admins`); the adapter decides.
    pub may_configure: bool,
    /// The user's message, when the reply should answer it as a platform reply.
    pub reply_to: Option<MessageRef>,
    /// When the adapter received it, for latency metrics.
    pub received_at: std::time::Instant,
}
