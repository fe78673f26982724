//! Button presses on Discord (component interactions, type 3): Stop on a streaming reply,
//! Regenerate and Continue on the last one. Answered within Discord's 3 s: a press that acts is
//! acknowledged without a message (the reply's own paced edits change the buttons); a press that
//! cannot act gets a short ephemeral answer.

use std::time::Instant;

use serenity::all::{ComponentInteraction, Context, Permissions};

use super::handler::{BUSY, Handler, identity};
use super::inbound;
use crate::engine::controls::{NOT_LAST, Press, StopAnswer};
use crate::engine::event::{Author, Content, Incoming, UserId};
use crate::engine::ports::MessageRowId;

/// Shown for a press on a button the bot does not know.
const UNKNOWN: &str = "This button does nothing.";

impl Handler {
    /// Handles one press and answers it.
    pub(super) async fn pressed(&self, ctx: &Context, press: ComponentInteraction) {
        let answer = match Press::parse(&press.data.custom_id) {
            Some(Press::Stop(reply)) => self.stop(ctx, &press, reply),
            Some(redo) => {
                // Numbered first, before anything waits: the newest ◀/▶ press shows.
                let number = self.engine.controls().arrived(redo);
                self.queue_redo(ctx, &press, (redo, number)).await
            }
            None => Some(UNKNOWN),
        };
        let id = press.id.to_string();
        if let Err(error) = self.rest.answer_press(&id, &press.token, answer).await {
            tracing::warn!(%error, "could not answer a button press");
        }
    }

    /// Stops the reply if the presser asked for it or manages the server; `None` when it
    /// stops (nothing to say), else the private answer.
    fn stop(
        &self,
        ctx: &Context,
        press: &ComponentInteraction,
        reply: MessageRowId,
    ) -> Option<&'static str> {
        if !self.serves(ctx, press) {
            return Some(StopAnswer::NotRunning.text());
        }
        let user = press.user.id;
        let manager = press
            .member
            .as_ref()
            .and_then(|m| m.permissions)
            .is_some_and(|p| p.contains(Permissions::MANAGE_GUILD));
        let admin = press.guild_id.is_none() || manager || self.access.is_admin(user);
        let key = inbound::chat_key(press.channel_id);
        let who = UserId::new(user.to_string());
        match self.engine.controls().stop(reply, &key, &who, admin) {
            StopAnswer::Stopped => None,
            refused => Some(refused.text()),
        }
    }
}

impl Handler {
    /// True when the bot answers the presser where they pressed.
    fn serves(&self, ctx: &Context, press: &ComponentInteraction) -> bool {
        let (_, parent) = identity(ctx, press.guild_id, press.channel_id);
        let (guild, channel) = (press.guild_id, press.channel_id);
        self.access.allows(guild, channel, parent, press.user.id)
    }

    /// Queues a Regenerate, Continue, ◀ or ▶ in the channel's turn order when it names the channel's
    /// last reply (`None`: acknowledged without a message); otherwise the private answer.
    async fn queue_redo(
        &self,
        ctx: &Context,
        press: &ComponentInteraction,
        (redo, number): (Press, u64),
    ) -> Option<&'static str> {
        if !self.serves(ctx, press) {
            return Some(NOT_LAST);
        }
        let user = press.user.id;
        let key = inbound::chat_key(press.channel_id);
        if !self.engine.is_last_reply(&key, redo.reply()).await {
            return Some(NOT_LAST);
        }
        let command = match self.engine.controls().queue(redo, number) {
            Ok(command) => command,
            Err(answer) => return Some(answer),
        };
        let name = press.member.as_ref().and_then(|m| m.nick.clone());
        let incoming = Incoming {
            key,
            author: Author {
                id: UserId::new(user.to_string()),
                display_name: name.unwrap_or_else(|| press.user.display_name().to_string()),
            },
            content: Content::Command(command.clone()),
            attachments: Vec::new(),
            private: press.guild_id.is_none(),
            may_configure: false,
            reply_to: None,
            received_at: Instant::now(),
        };
        let turn = self.counted(&incoming.key);
        match self.submit(incoming, self.platform.clone(), turn).await {
            Ok(()) => None,
            Err(_) => {
                self.engine.controls().unqueued(&command);
                Some(BUSY)
            }
        }
    }
}
