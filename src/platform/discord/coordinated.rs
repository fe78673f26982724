//! Discord among several instances: an addressed message kept in the shared inbox, once
//! however often the gateway delivers it, for the instance holding its channel; and the inbox's
//! messages answered as if just received, by whichever instance that is.
//!
//! What is kept is the message (trimmed to what the mapping reads) with what the receiving
//! instance's gateway cache said about it: the bot's roles in the guild and a thread's parent
//! channel. The instance answering it may hold neither in its cache (another shard range); it
//! needs only REST. Nothing secret is kept: a message carries no token.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serenity::all::{ChannelId, Message, RoleId, UserId as DiscordUserId};

use super::inbound::{self, Access, Identity, Inbound};
use super::outbound::DiscordPlatform;
use crate::engine::dispatcher::Dispatcher;
use crate::engine::event::{ChatKey, PlatformKind};
use crate::engine::turn::Engine;
use crate::instances::{InboxHandler, Instance, Scope};

/// Shown when a message waited too long for its channel's instance (one died with it queued).
pub const TOO_OLD: &str = "Sorry, your message arrived while the bot was switching over and \
     waited too long — please send it again.";

/// A message as the inbox keeps it.
#[derive(Serialize, Deserialize)]
struct Kept {
    message: Message,
    /// The bot user, as the receiving instance knew it.
    user: DiscordUserId,
    /// The bot's roles in the message's guild, from the receiving instance's cache.
    roles: Vec<RoleId>,
    /// A thread's parent channel, from the receiving instance's cache.
    parent: Option<ChannelId>,
}

impl Kept {
    /// `message` as received with `me` and `parent`, without the parts the mapping never
    /// reads (some of which serenity does not read back as it writes them).
    fn new(message: &Message, me: &Identity, parent: Option<ChannelId>) -> Self {
        let mut message = message.clone();
        trim(&mut message);
        if let Some(replied) = message.referenced_message.as_deref_mut() {
            trim(replied);
            replied.referenced_message = None;
        }
        Self {
            message,
            user: me.user,
            roles: me.roles.clone(),
            parent,
        }
    }

    fn identity(&self) -> Identity {
        Identity {
            user: self.user,
            roles: self.roles.clone(),
        }
    }

    fn decode(payload: &str) -> Option<Self> {
        match serde_json::from_str(payload) {
            Ok(kept) => Some(kept),
            Err(error) => {
                tracing::warn!(%error, "skipping a Discord message from the inbox");
                None
            }
        }
    }
}

/// Clears what [`inbound::to_inbound`] does not read.
fn trim(message: &mut Message) {
    message.embeds.clear();
    message.components.clear();
    message.message_snapshots.clear();
    message.reactions.clear();
    message.thread = None;
    message.interaction_metadata = None;
    message.activity = None;
    message.application = None;
    message.role_subscription_data = None;
    message.poll = None;
    message.mention_channels.clear();
}

/// Keeps `message` (addressed to the bot, for `key`'s channel) in the shared inbox:
/// `Some(true)` when it is new, `Some(false)` when it was kept before (the gateway delivered it
/// again, or to two instances). `None` when the database failed: then the caller answers it.
pub(super) async fn keep(
    instance: &Instance,
    message: &Message,
    me: &Identity,
    parent: Option<ChannelId>,
    key: &ChatKey,
) -> Option<bool> {
    let scope = Scope::of_chat(key);
    let payload = match serde_json::to_string(&Kept::new(message, me, parent)) {
        Ok(payload) => payload,
        Err(error) => {
            tracing::warn!(%error, "could not write a Discord message for the inbox");
            return None;
        }
    };
    let id = message.id.to_string();
    match instance
        .accept(PlatformKind::Discord, &scope, &id, &payload)
        .await
    {
        Ok(new) => Some(new),
        Err(error) => {
            tracing::warn!(%scope, error = %error.chain(),
                "could not keep a Discord message in the shared inbox; answering it here");
            None
        }
    }
}

/// Answers the Discord messages the inbox hands over.
pub struct Inbox {
    /// The conversation engine (notices).
    pub engine: Arc<Engine>,
    /// Where prompts are queued.
    pub dispatcher: Dispatcher,
    /// Replies in channels.
    pub platform: Arc<DiscordPlatform>,
    /// Where the bot answers, and its admins.
    pub access: Access,
}

impl Inbox {
    /// The turn a kept message asks for, mapped as the receiving instance would have.
    fn inbound(&self, payload: &str) -> Option<Inbound> {
        let kept = Kept::decode(payload)?;
        inbound::to_inbound(&kept.message, &kept.identity(), &self.access, kept.parent)
    }
}

#[async_trait]
impl InboxHandler for Inbox {
    async fn deliver(&self, payload: &str) {
        let Some(Inbound::Turn(incoming)) = self.inbound(payload) else {
            return;
        };
        tracing::debug!(chat = %incoming.key, "queueing a Discord message from the inbox");
        if let Err(error) = self.dispatcher.submit(incoming, self.platform.clone()) {
            tracing::warn!(%error, "could not queue a Discord message");
        }
    }

    async fn too_old(&self, payload: &str) {
        let Some(Inbound::Turn(incoming)) = self.inbound(payload) else {
            return;
        };
        let (key, reply_to) = (&incoming.key, incoming.reply_to.as_ref());
        let platform = self.platform.as_ref();
        self.engine.notify(platform, key, reply_to, TOO_OLD).await;
    }
}

#[cfg(test)]
mod tests;
