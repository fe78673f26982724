//! Button presses on Discord (component interactions, type 3): Stop on a streaming reply.
//! Answered within Discord's 3 s: a press that acts is acknowledged without a message (the
//! reply's own paced edit removes the button); anyone else gets a short ephemeral answer.

use serenity::all::{ComponentInteraction, Context, Permissions};

use super::handler::{Handler, identity};
use super::inbound;
use crate::engine::controls::{Press, StopAnswer};
use crate::engine::event::UserId;

/// Shown for a press on a button the bot does not know.
const UNKNOWN: &str = "This button does nothing.";

impl Handler {
    /// Handles one press and answers it.
    pub(super) async fn pressed(&self, ctx: &Context, press: ComponentInteraction) {
        let answer = match Press::parse(&press.data.custom_id) {
            Some(Press::Stop(reply)) => self.stop(ctx, &press, reply),
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
        reply: crate::engine::ports::MessageRowId,
    ) -> Option<&'static str> {
        let (_, parent) = identity(ctx, press.guild_id, press.channel_id);
        let user = press.user.id;
        if !self
            .access
            .allows(press.guild_id, press.channel_id, parent, user)
        {
            return Some(StopAnswer::NotRunning.text());
        }
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
