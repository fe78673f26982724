//! The gateway event handler: registers slash commands on READY, queues addressed messages,
//! answers slash commands.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use secrecy::SecretString;
use serenity::all::{
    ChannelId, Command as DiscordCommand, CommandInteraction, Context, EventHandler, GuildId,
    Interaction, Message, Permissions, Ready,
};

use super::arrivals::Arrivals;
use super::commands::{self, Slash};
use super::coordinated;
use super::files::{self, Cdn};
use super::inbound::{self, Access, Identity, Inbound};
use super::interaction::InteractionPlatform;
use super::outbound::{DiscordPlatform, MAX_CONTENT, Pace};
use super::rest::DiscordRest;
use crate::engine::dispatcher::{Dispatcher, SubmitError, with_receipt};
use crate::engine::event::{Author, ChatKey, Content, Incoming, UserId};
use crate::engine::ports::{LengthUnit, ModelName, Platform, Receipt};
use crate::engine::split;
use crate::engine::turn::Engine;
use crate::instances::{Instance, Scope};

/// How often a channel another instance holds is asked for again.
const LEASE_RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// Everything the handler needs; shared by every event.
pub struct Handler {
    /// The conversation engine (commands).
    pub engine: Arc<Engine>,
    /// Where prompts are queued.
    pub dispatcher: Dispatcher,
    /// Replies in channels.
    pub platform: Arc<DiscordPlatform>,
    /// REST calls for interactions.
    pub rest: DiscordRest,
    /// Channel pacing, for interaction replies.
    pub pace: Pace,
    /// Downloads of attachments, for interaction replies.
    pub cdn: Cdn,
    /// Where the bot answers, and its admins.
    pub access: Access,
    /// `/model`'s choices.
    pub models: Vec<ModelName>,
    /// Guilds to register commands in (empty = global).
    pub guild_ids: Vec<GuildId>,
    /// Set once the commands are registered.
    pub registered: AtomicBool,
    /// This process among several instances on one database; `None` when alone.
    pub instance: Option<Instance>,
    /// Addressed messages, taken in each channel's order.
    pub arrivals: Arrivals<Arrived>,
}

/// An addressed message as it arrived, with what the gateway cache said about it then.
pub struct Arrived {
    message: Message,
    me: Identity,
    parent: Option<ChannelId>,
    inbound: Inbound,
}

/// Shown when another instance answers in the channel and keeps doing so past the failover
/// time (two instances receive the same channel: their shard ranges overlap).
const ELSEWHERE: &str =
    "Another instance of this bot is answering in this channel — please try again in a moment.";

/// Shown when a slash command comes from a place the bot does not serve.
const NOT_HERE: &str = "I don't answer here.";

/// Shown when the channel's queue is full.
pub(super) const BUSY: &str = "I'm busy — try again in a moment.";

#[async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        tracing::info!(user = %ready.user.name, "connected to the Discord gateway");
        if !self.registered.swap(true, Ordering::SeqCst) {
            self.register(&ctx).await;
        }
    }

    async fn message(&self, ctx: Context, message: Message) {
        let (me, parent) = identity(&ctx, message.guild_id, message.channel_id);
        let Some(inbound) = inbound::to_inbound(&message, &me, &self.access, parent) else {
            return;
        };
        let (channel, id) = (message.channel_id, message.id);
        let arrived = Arrived {
            message,
            me,
            parent,
            inbound,
        };
        // Alone, a message is queued the moment its task runs: two tasks swap only for
        // messages of one channel within the same instant, whose order nobody chose. Among
        // several instances each waits for a database write first, long enough for a later
        // message to overtake it: there a channel's messages are taken in id order.
        if self.instance.is_none() {
            return self.take(arrived).await;
        }
        let take = |arrived| self.take(arrived);
        self.arrivals.in_order(channel, id, arrived, take).await;
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        match interaction {
            Interaction::Command(command) => self.slash(&ctx, command).await,
            Interaction::Component(press) => self.pressed(&ctx, press).await,
            _ => {}
        }
    }
}

impl Handler {
    /// Answers an addressed message, in its channel's order: a turn is kept in the shared
    /// inbox among several instances, else queued here.
    async fn take(&self, arrived: Arrived) {
        let Arrived {
            message,
            me,
            parent,
            inbound,
        } = arrived;
        let incoming = match inbound {
            Inbound::Turn(incoming) => incoming,
            Inbound::NothingAsked { key, reply_to } => {
                let platform = self.platform.as_ref();
                let text = inbound::NOTHING_ASKED;
                self.engine
                    .notify(platform, &key, Some(&reply_to), text)
                    .await;
                return;
            }
        };
        // Among several instances the message waits in the shared inbox for the instance
        // holding its channel; when the database fails it is answered here, as when alone.
        if let Some(instance) = &self.instance
            && coordinated::keep(instance, &message, &me, parent, &incoming.key)
                .await
                .is_some()
        {
            return;
        }
        let (key, reply_to) = (incoming.key.clone(), incoming.reply_to.clone());
        tracing::debug!(chat = %key, "queueing a Discord message");
        if !self.queue_here(incoming, self.platform.clone()).await {
            let platform = self.platform.as_ref();
            self.engine
                .notify(platform, &key, reply_to.as_ref(), ELSEWHERE)
                .await;
        }
    }
}

/// The bot's identity in a guild and a thread's parent channel, from the cache when known.
pub(super) fn identity(
    ctx: &Context,
    guild: Option<GuildId>,
    channel: ChannelId,
) -> (Identity, Option<ChannelId>) {
    let user = ctx.cache.current_user().id;
    let mut me = Identity {
        user,
        roles: Vec::new(),
    };
    let Some(guild) = guild.and_then(|g| ctx.cache.guild(g)) else {
        return (me, None);
    };
    if let Some(member) = guild.members.get(&user) {
        me.roles = member.roles.clone();
    }
    let thread = guild.threads.iter().find(|t| t.id == channel);
    (me, thread.and_then(|t| t.parent_id))
}

impl Handler {
    /// Whether this instance may talk to `key`'s channel: always when alone; among several
    /// instances once it holds the channel's lease. Another instance holding it (its shard
    /// moved here) keeps it until it stops or dies: this waits up to the failover time for it.
    async fn may_speak(&self, key: &ChatKey) -> bool {
        let Some(instance) = &self.instance else {
            return true;
        };
        let scope = Scope::of_chat(key);
        let deadline = tokio::time::Instant::now() + instance.failover() + LEASE_RETRY;
        loop {
            if instance.hold(&scope).await {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(chat = %key, "another instance keeps answering in this channel");
                return false;
            }
            tokio::time::sleep(LEASE_RETRY).await;
        }
    }

    /// Queues `incoming` on this instance once it may talk to the channel (false when another
    /// instance keeps answering there). Among several instances its turn counts as running in
    /// the channel from now until it ends, so a graceful stop keeps the channel's lease for it.
    async fn queue_here(&self, incoming: Incoming, platform: Arc<dyn Platform>) -> bool {
        let turn = self.counted(&incoming.key);
        if !self.may_speak(&incoming.key).await {
            return false;
        }
        // A message turned away (busy, stopping) was answered or logged there.
        let _ = self.submit(incoming, platform, turn).await;
        true
    }

    /// Among several instances, a turn in `key`'s channel answered here, counted as running.
    pub(super) fn counted(&self, key: &ChatKey) -> Option<Box<dyn Receipt>> {
        let instance = self.instance.as_ref()?;
        Some(instance.local_turn(&Scope::of_chat(key)))
    }

    /// Queues `incoming`, carrying `turn` (from [`Handler::counted`]) to its end.
    pub(super) async fn submit(
        &self,
        incoming: Incoming,
        platform: Arc<dyn Platform>,
        turn: Option<Box<dyn Receipt>>,
    ) -> Result<(), SubmitError> {
        let dispatcher = &self.dispatcher;
        let submitted = match turn {
            Some(turn) => {
                with_receipt(turn, async { dispatcher.submit(incoming, platform) })
                    .await
                    .0
            }
            None => dispatcher.submit(incoming, platform),
        };
        if let Err(error) = submitted {
            tracing::warn!(%error, "could not queue a Discord turn");
        }
        submitted
    }

    async fn register(&self, ctx: &Context) {
        let definitions = commands::definitions(&self.models);
        if self.guild_ids.is_empty() {
            match DiscordCommand::set_global_commands(&ctx.http, definitions).await {
                Ok(_) => tracing::info!("registered slash commands globally"),
                Err(error) => tracing::error!(%error, "could not register slash commands"),
            }
            return;
        }
        for guild in &self.guild_ids {
            match guild.set_commands(&ctx.http, definitions.clone()).await {
                Ok(_) => tracing::info!(%guild, "registered slash commands in a guild"),
                Err(error) => tracing::error!(%error, %guild, "could not register slash commands"),
            }
        }
    }

    /// Defers within Discord's 3 s, then answers: ephemeral for commands, streamed for /ask.
    async fn slash(&self, ctx: &Context, command: CommandInteraction) {
        let parsed = commands::parse(&command.data.name, &command.data.options);
        let (_, parent) = identity(ctx, command.guild_id, command.channel_id);
        let served = self.access.allows(
            command.guild_id,
            command.channel_id,
            parent,
            command.user.id,
        );
        let ephemeral = !(served && matches!(parsed, Some(Slash::Ask(_))));
        let id = command.id.to_string();
        if let Err(error) = self.rest.defer(&id, &command.token, ephemeral).await {
            tracing::warn!(%error, "could not acknowledge a slash command");
            return;
        }
        let token = SecretString::from(command.token.clone());
        let app = command.application_id.to_string();
        // A command and /ask take their place in the channel's turn order, like a message;
        // the answer fills the deferred response.
        let content = match parsed {
            _ if !served => Err(NOT_HERE.to_string()),
            None if command.data.name == "ask" => Err(inbound::NOTHING_ASKED.to_string()),
            None => Err("Unknown command.".to_string()),
            Some(Slash::Command(neutral)) => Ok(Content::Command(neutral)),
            Some(Slash::Ask(prompt)) => Ok(Content::Prompt(prompt)),
            // The last reply changes in the channel's own messages, in the channel's turn order.
            Some(Slash::Reply(neutral)) => {
                let said = Slash::queued(&neutral);
                let incoming = self.incoming(&command, Content::Command(neutral));
                let turn = self.counted(&incoming.key);
                match self.submit(incoming, self.platform.clone(), turn).await {
                    Ok(()) => Err(said.to_string()),
                    Err(_) => Err(BUSY.to_string()),
                }
            }
        };
        let answer = match content {
            Ok(content) => {
                // Answered here: the interaction's token must not be kept in the database.
                let incoming = self.incoming(&command, content);
                let (rest, cdn) = (self.rest.clone(), self.cdn.clone());
                let platform =
                    InteractionPlatform::new(rest, self.pace, cdn, app.clone(), token, ephemeral);
                if !self.queue_here(incoming, Arc::new(platform)).await {
                    let edit =
                        self.rest
                            .edit_response(&app, &command.token, "@original", ELSEWHERE);
                    if let Err(error) = edit.await {
                        tracing::warn!(%error, "could not answer a slash command");
                    }
                }
                return;
            }
            Err(answer) => answer,
        };
        let answer = split::truncate(&answer, MAX_CONTENT, LengthUnit::Chars);
        let edit = self
            .rest
            .edit_response(&app, &command.token, "@original", &answer);
        if let Err(error) = edit.await {
            tracing::warn!(%error, "could not answer a slash command");
        }
    }

    /// The engine's view of a slash command.
    fn incoming(&self, command: &CommandInteraction, content: Content) -> Incoming {
        let private = command.guild_id.is_none();
        let manager = command
            .member
            .as_ref()
            .and_then(|m| m.permissions)
            .is_some_and(|p| p.contains(Permissions::MANAGE_GUILD));
        let user = &command.user;
        let name = command.member.as_ref().and_then(|m| m.nick.clone());
        Incoming {
            key: inbound::chat_key(command.channel_id),
            author: Author {
                id: UserId::new(user.id.to_string()),
                display_name: name.unwrap_or_else(|| user.display_name().to_string()),
            },
            attachments: match content {
                Content::Prompt(_) => files::ask_attachment(command),
                Content::Command(_) => Vec::new(),
            },
            content,
            private,
            may_configure: private || manager || self.access.is_admin(user.id),
            reply_to: None,
            received_at: Instant::now(),
        }
    }
}
