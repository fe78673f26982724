//! The Discord adapter: serenity's gateway for events, slash commands registered at start,
//! and replies streamed through the engine's `Platform` port.
//!
//! With `discord.proxy_url` set, serenity's `Http` goes through the proxy with its ratelimiter
//! off (serenity ignores a proxy otherwise); the calls replies make read 429s themselves (see
//! [`rest`]), so the engine pauses a channel for exactly the `retry_after` Discord asks.

mod arrivals;
mod commands;
mod coordinated;
mod files;
mod handler;
mod identify;
mod inbound;
mod interaction;
mod liveness;
mod outbound;
mod presses;
mod probe;
mod rest;
mod shards;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serenity::all::{Client, ClientBuilder, GatewayIntents, GuildId, HttpBuilder};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use commands::Slash;
pub use inbound::{Access, Identity};
pub use interaction::InteractionPlatform;
pub use outbound::{DiscordPlatform, Pace};
pub use probe::DiscordProbe;
pub use shards::ShardRange;

use crate::engine::dispatcher::Dispatcher;
use crate::engine::event::PlatformKind;
use crate::engine::ports::ModelName;
use crate::engine::turn::Engine;
use crate::health::HealthHandle;
use crate::instances::Instance;
use crate::secret::Secret;
use handler::Handler;
use identify::IdentifyTurns;
use rest::{DiscordRest, RestError};

/// Discord's REST base when no proxy is configured.
const DISCORD: &str = "https://discord.com";

/// What the Discord adapter needs, resolved from the settings.
#[derive(Debug, Clone)]
pub struct DiscordConfig {
    /// The bot token (never logged).
    pub token: Secret,
    /// A base URL replacing https://discord.com for REST (`discord.proxy_url`; `None`: none).
    pub proxy_url: Option<String>,
    /// Pacing of sends and edits in one channel.
    pub pace: Pace,
    /// Where the bot answers, and its admins.
    pub access: Access,
    /// `/model`'s choices.
    pub models: Vec<ModelName>,
    /// Guilds to register slash commands in instantly (empty = global registration).
    pub guild_ids: Vec<GuildId>,
    /// The gateway shards this process runs.
    pub shards: ShardRange,
}

impl DiscordConfig {
    /// Where REST calls go: the proxy when set, Discord otherwise.
    fn base_url(&self) -> &str {
        self.proxy_url.as_deref().unwrap_or(DISCORD)
    }

    /// Where REST calls go, for error lines: the proxy names its key.
    fn describe(&self) -> String {
        match &self.proxy_url {
            None => DISCORD.to_string(),
            Some(proxy) => format!("{proxy} (discord.proxy_url)"),
        }
    }

    /// The REST client every call of the adapter goes through.
    fn rest(&self, client: reqwest::Client) -> DiscordRest {
        DiscordRest::new(client, self.base_url(), self.token.to_secret_string())
    }
}

/// Why the Discord adapter could not start; each names the key to fix.
#[derive(Debug, thiserror::Error)]
pub enum DiscordError {
    /// Discord refused the token.
    #[error(
        "discord.token was refused by Discord ({0}); copy the bot token from the developer portal into PARLEY__DISCORD__TOKEN"
    )]
    TokenRefused(String),
    /// Discord (or the proxy) did not answer.
    #[error("could not reach Discord at {url}: {reason}")]
    Unreachable {
        /// The base URL tried.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// serenity could not build its client.
    #[error("could not start the Discord gateway client: {0}")]
    Client(String),
}

/// The intents the bot needs: guild and DM messages with their content.
pub fn intents() -> GatewayIntents {
    GatewayIntents::GUILDS
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::DIRECT_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT
}

/// A configured guild id (`discord.guild_ids`): a Discord snowflake, a positive number.
pub fn guild_id(text: &str) -> Option<GuildId> {
    match text.trim().parse::<u64>() {
        Ok(n) if n > 0 => Some(GuildId::new(n)),
        _ => None,
    }
}

/// Checks the token, connects the shards of `config.shards` to the gateway and serves until
/// `stop` is cancelled. The gateway task belongs to `tracker`; serenity reconnects on its own.
/// `health` beats while every shard is connected. Among coordinating instances (`instance`) the
/// shards identify in turns with the other instances' (see [`identify`]). Returns the channel
/// platform, for marking interrupted replies.
pub async fn start(
    config: DiscordConfig,
    engine: Arc<Engine>,
    dispatcher: Dispatcher,
    tracker: &TaskTracker,
    stop: CancellationToken,
    health: HealthHandle,
    instance: Option<Instance>,
) -> Result<Arc<DiscordPlatform>, DiscordError> {
    let shards = config.shards;
    let client = DiscordRest::http_client().map_err(|e| DiscordError::Client(e.to_string()))?;
    let rest = config.rest(client.clone());
    check_token(&rest, &config.describe()).await?;
    // A bot of one shard, alone, starts as it always did; the others ask Discord first.
    let asks = !shards.is_single() || instance.is_some();
    let max_concurrency = match asks {
        true => shards::check(&rest, shards).await,
        false => 1,
    };
    let limited = asks.then(|| rest.clone());
    let turns = instance
        .clone()
        .map(|instance| IdentifyTurns::new(instance, shards, max_concurrency));
    let cdn = files::Cdn::new(config.proxy_url.as_deref()).map_err(DiscordError::Client)?;
    let mut platform = DiscordPlatform::new(rest.clone(), config.pace, cdn.clone());
    if let Some(instance) = &instance {
        platform = platform.shared(instance.share(PlatformKind::Discord));
    }
    let platform = Arc::new(platform);
    let mut http = HttpBuilder::new(config.token.expose()).client(client);
    if let Some(proxy) = &config.proxy_url {
        http = http.proxy(proxy.as_str()).ratelimiter_disabled(true);
    }
    if let Some(instance) = &instance {
        // Its shards' events come to this instance: it answers on Discord from now on.
        instance.receives(PlatformKind::Discord).await;
        let inbox = coordinated::Inbox {
            engine: engine.clone(),
            dispatcher: dispatcher.clone(),
            platform: platform.clone(),
            access: config.access.clone(),
        };
        instance.serve(PlatformKind::Discord, Arc::new(inbox));
    }
    let handler = Handler {
        engine,
        dispatcher,
        platform: platform.clone(),
        rest,
        pace: config.pace,
        cdn,
        access: config.access,
        models: config.models,
        guild_ids: config.guild_ids,
        registered: AtomicBool::new(false),
        instance,
        arrivals: Default::default(),
    };
    let gateway = ClientBuilder::new_with_http(http.build(), intents())
        .event_handler(handler)
        .await
        .map_err(|e| DiscordError::Client(e.to_string()))?;
    tracing::info!("connecting {shards} to the Discord gateway");
    tracker.spawn(serve(gateway, shards, stop, health, turns, limited));
    Ok(platform)
}

/// Checks the token before connecting, so a bad one stops start-up with a clear line.
async fn check_token(rest: &DiscordRest, url: &str) -> Result<(), DiscordError> {
    match rest.current_user().await {
        Ok(_) => Ok(()),
        Err(error @ RestError::Api { status: 401, .. }) => {
            Err(DiscordError::TokenRefused(error.to_string()))
        }
        Err(error) => Err(DiscordError::Unreachable {
            url: url.to_string(),
            reason: error.to_string(),
        }),
    }
}

/// Runs the shards of `range` until `stop`, then closes them; with `turns`, only once this
/// instance's turn to identify has come, and with `limited`, only while Discord's session
/// start limit allows them all. (serenity's `start_shard_range` takes the last shard id as the
/// range's end and starts it too.)
async fn serve(
    mut gateway: Client,
    range: ShardRange,
    stop: CancellationToken,
    health: HealthHandle,
    turns: Option<IdentifyTurns>,
    limited: Option<DiscordRest>,
) {
    let shards = gateway.shard_manager.clone();
    let run = async {
        if let Some(turns) = &turns {
            turns.take().await;
        }
        if let Some(rest) = &limited {
            shards::await_session_starts(rest, range).await;
        }
        // Gives the turn up once the shards are connected, then waits as long as they run.
        let released = async {
            if let Some(turns) = &turns {
                turns.release_once_connected(&shards, range).await;
            }
            std::future::pending().await
        };
        tokio::select! {
            result = gateway.start_shard_range(range.first..range.last, range.count) => result,
            result = released => result,
        }
    };
    tokio::select! {
        result = run => {
            if let Err(error) = result {
                tracing::error!(%error, "the Discord gateway stopped");
                health.down(format!("the gateway stopped: {error}"));
            }
        }
        () = liveness::watch(shards.clone(), range, health.clone()) => {}
        () = stop.cancelled() => {}
    }
    shards.shutdown_all().await;
    if let Some(turns) = &turns {
        turns.release().await;
    }
    tracing::info!("disconnected from the Discord gateway");
}
