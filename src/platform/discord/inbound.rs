//! Inbound messages: which ones the bot answers, and their conversion to `Incoming`.

use std::collections::HashSet;
use std::time::Instant;

use serenity::model::channel::Message;
use serenity::model::id::{ChannelId, GuildId, RoleId, UserId as DiscordUserId};

use super::files;
use crate::engine::command::Command;
use crate::engine::event::{Author, ChatKey, Content, Incoming, MessageRef, PlatformKind, UserId};

/// Who the bot is in the guild a message comes from.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The bot user.
    pub user: DiscordUserId,
    /// The bot's roles in this guild (mentioning one addresses the bot).
    pub roles: Vec<RoleId>,
}

/// Where the bot answers, and who may change settings.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Guilds answered in (empty = all; when set, DMs are outside).
    pub guilds: HashSet<String>,
    /// Channels answered in (empty = all); a thread is allowed when its parent is.
    pub channels: HashSet<String>,
    /// Users answered (empty = all).
    pub users: HashSet<String>,
    /// `discord:ID` entries of `access.admins`.
    pub admins: HashSet<String>,
}

fn allowed(list: &HashSet<String>, id: Option<String>) -> bool {
    list.is_empty() || id.is_some_and(|id| list.contains(&id))
}

impl Access {
    /// True when the bot answers `user` in `channel` (of `parent`, for a thread) in `guild`.
    pub fn allows(
        &self,
        guild: Option<GuildId>,
        channel: ChannelId,
        parent: Option<ChannelId>,
        user: DiscordUserId,
    ) -> bool {
        let in_channel = allowed(&self.channels, Some(channel.to_string()))
            || allowed(&self.channels, parent.map(|p| p.to_string()));
        allowed(&self.guilds, guild.map(|g| g.to_string()))
            && in_channel
            && allowed(&self.users, Some(user.to_string()))
    }

    /// True when `user` is listed in `access.admins`.
    pub fn is_admin(&self, user: DiscordUserId) -> bool {
        self.admins.contains(&format!("discord:{user}"))
    }
}

/// The conversation of a channel: each channel, thread and DM channel is its own.
pub fn chat_key(channel: ChannelId) -> ChatKey {
    ChatKey::new(PlatformKind::Discord, channel.to_string())
}

/// True when a guild message is meant for the bot: it mentions the bot or one of its roles,
/// or replies to one of its messages.
pub fn addressed(message: &Message, me: &Identity) -> bool {
    message.mentions.iter().any(|u| u.id == me.user)
        || message.mention_roles.iter().any(|r| me.roles.contains(r))
        || message
            .referenced_message
            .as_ref()
            .is_some_and(|m| m.author.id == me.user)
}

/// The text without the bot's user and role mentions, trimmed.
pub fn strip_mentions(content: &str, me: &Identity) -> String {
    let mut text = content
        .replace(&format!("<@{}>", me.user), " ")
        .replace(&format!("<@!{}>", me.user), " ");
    for role in &me.roles {
        text = text.replace(&format!("<@&{role}>"), " ");
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The name the author shows in the channel: nickname, global name, user name.
fn display_name(message: &Message) -> String {
    let nick = message.member.as_ref().and_then(|m| m.nick.clone());
    nick.unwrap_or_else(|| message.author.display_name().to_string())
}

/// A message the bot answers.
#[derive(Debug)]
pub enum Inbound {
    /// A prompt or a command for the engine.
    Turn(Incoming),
    /// The bot's mention alone: nothing asked yet; answered with [`NOTHING_ASKED`].
    NothingAsked {
        /// The conversation place.
        key: ChatKey,
        /// The user's message.
        reply_to: MessageRef,
    },
}

/// The answer to a mention without a question (and to an empty `/ask`).
pub const NOTHING_ASKED: &str = "Ask me something: mention me with your question, or use /ask.";

/// Converts a message the bot should answer; `None` for everything it ignores.
pub fn to_inbound(
    message: &Message,
    me: &Identity,
    access: &Access,
    parent: Option<ChannelId>,
) -> Option<Inbound> {
    if message.author.bot || message.author.id == me.user {
        return None;
    }
    let private = message.guild_id.is_none();
    if !private && !addressed(message, me) {
        return None;
    }
    let (guild, channel, user) = (message.guild_id, message.channel_id, message.author.id);
    if !access.allows(guild, channel, parent, user) {
        return None;
    }
    let text = strip_mentions(&message.content, me);
    let attachments = files::attachments(message);
    if text.is_empty() && attachments.is_empty() {
        return Some(Inbound::NothingAsked {
            key: chat_key(channel),
            reply_to: MessageRef::new(message.id.to_string()),
        });
    }
    let (content, attachments) = match Command::parse(&text) {
        Some(command) => (Content::Command(command), Vec::new()),
        None => (Content::Prompt(text), attachments),
    };
    Some(Inbound::Turn(Incoming {
        key: chat_key(channel),
        author: Author {
            id: UserId::new(user.to_string()),
            display_name: display_name(message),
        },
        content,
        attachments,
        private,
        may_configure: private || access.is_admin(user),
        reply_to: Some(MessageRef::new(message.id.to_string())),
        received_at: Instant::now(),
    }))
}

#[cfg(test)]
mod tests;
