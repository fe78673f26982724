//! Telegram through the Bot API (teloxide): long polling or a webhook, inbound mapping, streamed
//! replies with drafts and edits, HTML formatting, commands.

mod access;
mod api;
mod callbacks;
mod commands;
mod coordinated;
mod files;
pub mod format;
pub mod html;
mod inbound;
mod intake;
mod long_poll;
mod outbound;
mod polling;
mod probe;
mod stops;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use teloxide::prelude::Requester;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::engine::dispatcher::Dispatcher;
use crate::engine::event::PlatformKind;
use crate::engine::ports::ModelName;
use crate::engine::turn::Engine;
use crate::health::HealthHandle;
use crate::instances::Instance;
use crate::secret::Secret;

pub use files::BOT_DOWNLOAD_LIMIT;
pub use outbound::{Pace, TelegramPlatform};
pub use probe::TelegramProbe;
pub use webhook::{SECRET_HEADER, WEBHOOK_PATH, Webhook, WebhookReceiver, WebhookSlot};

/// A refused chat is told so at most once in this period.
pub const REFUSAL_EVERY: Duration = Duration::from_secs(3600);

/// The first wait after a failed getUpdates.
pub const POLL_BACKOFF: Duration = Duration::from_millis(500);

/// What the Telegram adapter needs, resolved from the settings.
#[derive(Debug, Clone)]
pub struct TelegramConfig {
    /// The bot token (never logged).
    pub token: Secret,
    /// The Bot API server.
    pub api_url: String,
    /// Pacing of sends and edits.
    pub pace: Pace,
    /// Chats answered (empty = all).
    pub allowed_chats: Vec<String>,
    /// Users answered (empty = all).
    pub allowed_users: Vec<String>,
    /// `access.admins`, platform-qualified.
    pub admins: Vec<String>,
    /// Models offered by the /model keyboard.
    pub models: Vec<ModelName>,
    /// The model of chats that chose none.
    pub default_model: ModelName,
    /// A refused chat is told so at most once in this period.
    pub refusal_every: Duration,
    /// How long one getUpdates call waits for updates (`telegram.poll_timeout_secs`).
    pub poll_timeout: Duration,
    /// The first wait after a failed getUpdates; it doubles up to 5 s after a server or
    /// network failure, up to 30 s after a refusal.
    pub poll_backoff: Duration,
    /// Webhook mode (`telegram.webhook_url`); `None`: long polling.
    pub webhook: Option<Webhook>,
}

/// Why the adapter could not start; each names the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The API URL does not parse.
    #[error("telegram.api_url is not a URL: {0}")]
    BadUrl(String),
    /// getMe refused the token.
    #[error("telegram.token was refused by the Bot API ({0}); check PARLEY__TELEGRAM__TOKEN")]
    BadToken(String),
    /// The Bot API could not be reached.
    #[error("telegram.api_url: the Bot API did not answer getMe: {0}")]
    Unreachable(String),
    /// Removing the webhook failed; polling would fail too.
    #[error("telegram: could not remove the webhook set for this bot: {0}")]
    Webhook(String),
    /// setWebhook refused the URL (or the secret).
    #[error(
        "telegram.webhook_url was refused by the Bot API ({0}); it must be a public HTTPS URL on port 443, 80, 88 or 8443 that reaches http.listen"
    )]
    WebhookRefused(String),
    /// setWebhook got no answer.
    #[error("telegram.webhook_url: the Bot API did not answer setWebhook: {0}")]
    WebhookUnanswered(String),
}

/// What the adapter runs on, shared with the rest of the app.
#[derive(Clone)]
pub struct Services {
    /// The conversation engine (commands, notices, pacing).
    pub engine: Arc<Engine>,
    /// Where prompts and commands are queued.
    pub dispatcher: Dispatcher,
    /// Owns the polling task and the notices it sends.
    pub tracker: TaskTracker,
    /// Stops polling.
    pub stop: CancellationToken,
    /// Beats after every successful getUpdates (polling) or healthy getWebhookInfo and taken
    /// update (webhook), for `/healthz`.
    pub health: HealthHandle,
    /// Filled with the webhook receiver in webhook mode, for `/telegram/webhook`.
    pub webhook: WebhookSlot,
    /// This process among several instances on one database; `None` when alone.
    pub instance: Option<Instance>,
}

/// Connects (getMe, setMyCommands) and starts taking updates under `services`: in webhook mode
/// it registers the webhook (setWebhook) and serves it through `services.webhook`; otherwise it
/// removes any webhook (Telegram refuses getUpdates while one is set) and polls.
pub async fn start(
    config: TelegramConfig,
    services: Services,
) -> Result<Arc<TelegramPlatform>, StartError> {
    let bot = api::bot(config.token.expose(), &config.api_url).map_err(StartError::BadUrl)?;
    let long_poll = long_poll::LongPoll::new(config.token.expose(), &config.api_url)
        .map_err(StartError::BadUrl)?;
    let me = get_me(&bot).await?;
    if config.webhook.is_none() {
        bot.delete_webhook()
            .await
            .map_err(|e| StartError::Webhook(e.to_string()))?;
    }
    if let Err(error) = bot.set_my_commands(commands::bot_commands()).await {
        tracing::warn!(%error, "could not register the command menu");
    }
    let files = files::Files::new(bot.clone(), config.token.expose(), &config.api_url)
        .map_err(StartError::BadUrl)?;
    let mut platform = TelegramPlatform::new(bot.clone(), config.pace, files);
    if let Some(instance) = &services.instance {
        platform = platform.shared(instance.share(PlatformKind::Telegram));
    }
    let platform = Arc::new(platform);
    let username = me.username.clone();
    let adapter = polling::Adapter::new(&config, me, platform.clone(), services.clone(), long_poll);
    let adapter = Arc::new(adapter);
    adapter.serve_inbox();
    let intake = Arc::new(intake::Intake::new(adapter.clone()));
    match &config.webhook {
        Some(hook) => {
            // Behind a load balancer every instance receives updates: each answers from now on.
            if let Some(instance) = &services.instance {
                instance.receives(PlatformKind::Telegram).await;
            }
            webhook::start(&bot, hook, intake, &services).await?;
            let path = WEBHOOK_PATH;
            tracing::info!(bot = %username, path, "telegram connected; taking updates on the webhook");
        }
        None => {
            tracing::info!(bot = %username, "telegram connected; polling for updates");
            services.tracker.spawn(adapter.run(intake, services.stop));
        }
    }
    Ok(platform)
}

async fn get_me(bot: &teloxide::Bot) -> Result<inbound::Me, StartError> {
    let mut wait = Duration::from_millis(500);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match bot.get_me().await {
            Ok(me) => {
                return Ok(inbound::Me {
                    id: me.id.0,
                    username: me.username.clone().unwrap_or_default(),
                });
            }
            Err(teloxide::RequestError::Api(error)) => {
                return Err(StartError::BadToken(error.to_string()));
            }
            Err(error) if attempt >= 3 => return Err(StartError::Unreachable(error.to_string())),
            Err(error) => tracing::warn!(%error, "getMe failed; retrying"),
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}
