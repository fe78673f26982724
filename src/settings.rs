//! The typed configuration tree: layered from the compiled-in defaults, an optional file and
//! `PARLEY__SECTION__KEY` environment variables, then parsed into the runtime [`Config`] before
//! anything starts.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::llm::{ModelOverride, Params};
use crate::store::DatabaseUrl;

mod error;
mod parse;

pub use crate::secret::Secret;
pub use error::SettingsError;
pub use parse::Config;

/// The shipped defaults (config/default.toml), compiled in so `parley` runs from any folder.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Keys whose environment values are comma-separated lists.
const LIST_KEYS: &[&str] = &[
    "llm.models",
    "llm.image_models",
    "llm.stop",
    "access.admins",
    "telegram.allowed_chats",
    "telegram.allowed_users",
    "discord.allowed_guilds",
    "discord.allowed_channels",
    "discord.allowed_users",
    "discord.guild_ids",
];

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The completion API.
    pub llm: LlmSettings,
    /// Who may change settings in groups.
    pub access: AccessSettings,
    /// The database: SQLite or PostgreSQL.
    pub store: StoreSettings,
    /// How much history a request carries.
    pub history: HistorySettings,
    /// Files users send.
    pub attachments: AttachmentSettings,
    /// Queues and concurrency.
    pub dispatch: DispatchSettings,
    /// The streaming reply engine.
    pub reply: ReplySettings,
    /// The Telegram adapter.
    pub telegram: TelegramSettings,
    /// The Discord adapter.
    pub discord: DiscordSettings,
    /// Logging.
    pub log: LogSettings,
    /// The health and metrics listener.
    pub http: HttpSettings,
    /// Stopping.
    pub shutdown: ShutdownSettings,
    /// Several instances on one database.
    pub instance: InstanceSettings,
}

/// `[llm]`: the OpenAI-compatible completion API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSettings {
    /// Base URL up to `/v1`.
    pub base_url: String,
    /// The API key, sent as a bearer token.
    pub api_key: Secret,
    /// Models users may switch between.
    pub models: Vec<String>,
    /// The model of chats that did not choose one.
    pub default_model: String,
    /// Models that read images; the others get a line asking to switch.
    pub image_models: Vec<String>,
    /// Header carrying the conversation id.
    pub conversation_header: String,
    /// Default system prompt ("" = none).
    pub system_prompt: String,
    /// Stream answers (true) or wait for the whole answer (false).
    pub stream: bool,
    /// Sampling temperature, 0..2 (unset = not sent).
    pub temperature: Option<f64>,
    /// Nucleus sampling, 0..1 (unset = not sent).
    pub top_p: Option<f64>,
    /// Replies per request (unset = not sent).
    pub n: Option<u32>,
    /// Up to 4 stop strings (unset = not sent).
    pub stop: Option<Vec<String>>,
    /// Longest reply in tokens (unset = not sent).
    pub max_tokens: Option<u32>,
    /// -2..2 (unset = not sent; reasoning models refuse it).
    pub presence_penalty: Option<f64>,
    /// -2..2 (unset = not sent; reasoning models refuse it).
    pub frequency_penalty: Option<f64>,
    /// Per-model changes to the body parameters.
    #[serde(default)]
    pub overrides: HashMap<String, ModelOverride>,
    /// Timeouts.
    pub timeouts: TimeoutSettings,
    /// Retries before the first token.
    pub retry: RetrySettings,
}

/// `[llm.timeouts]`, in seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutSettings {
    /// Connecting to the API.
    pub connect_secs: u64,
    /// Waiting for the first token.
    pub first_token_secs: u64,
    /// Longest gap between two chunks.
    pub idle_secs: u64,
    /// The whole reply.
    pub total_secs: u64,
}

/// `[llm.retry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff, in milliseconds.
    pub initial_backoff_ms: u64,
    /// Longest backoff, in milliseconds.
    pub max_backoff_ms: u64,
}

/// `[access]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessSettings {
    /// Platform-qualified user ids (`telegram:123`, `discord:456`) that may change settings.
    pub admins: Vec<String>,
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// `sqlite://path` (the folder is created) or `postgres://user:password@host/db`.
    pub database_url: DatabaseUrl,
    /// PostgreSQL connections in the pool.
    pub pool_size: u32,
    /// Seconds PostgreSQL lets one statement run before cancelling it.
    pub statement_timeout_secs: u64,
}

/// `[history]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySettings {
    /// Estimated tokens of history a request may carry.
    pub budget_tokens: usize,
    /// The estimate one image counts for in that budget.
    pub image_tokens: usize,
}

/// `[attachments]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentSettings {
    /// The largest image read, in bytes.
    pub max_image_bytes: u64,
    /// The largest text file read, in bytes.
    pub max_text_bytes: u64,
}

/// `[dispatch]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchSettings {
    /// Completions in flight at once, over all conversations.
    pub max_concurrent: usize,
    /// Incoming messages waiting, over all conversations.
    pub queue_capacity: usize,
    /// Messages waiting in one conversation before "busy".
    pub per_conversation: usize,
}

/// `[reply]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplySettings {
    /// Seconds without text before a "thinking…" placeholder shows (0 = never).
    pub thinking_after_secs: u64,
}

/// `[telegram]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramSettings {
    /// Bot token from @BotFather; empty disables Telegram.
    pub token: Secret,
    /// Bot API server.
    pub api_url: String,
    /// Shortest gap between two sends or edits in one chat, in milliseconds.
    pub edit_interval_ms: u64,
    /// Sends and edits allowed per minute in one group.
    pub group_per_minute: u32,
    /// Seconds one getUpdates long poll waits for updates (1..=50).
    pub poll_timeout_secs: u64,
    /// Seconds without a heartbeat after which an instance counts as dead and another takes
    /// over its polling and its chats (every lease, not only Telegram's).
    pub failover_secs: u64,
    /// Chats the bot answers in (empty = all).
    #[serde(deserialize_with = "ids")]
    pub allowed_chats: Vec<String>,
    /// Users the bot answers (empty = all).
    #[serde(deserialize_with = "ids")]
    pub allowed_users: Vec<String>,
    /// The public HTTPS URL Telegram posts updates to; set = webhook mode, empty = long polling.
    pub webhook_url: String,
    /// Sent by Telegram with every webhook request (`X-Telegram-Bot-Api-Secret-Token`).
    pub webhook_secret: Secret,
}

/// A list of ids, written as strings or numbers. A single id from the environment arrives as a
/// number (`config` parses `PARLEY__TELEGRAM__ALLOWED_CHATS=-100123` before splitting lists).
fn ids<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(i64),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Ids {
        Many(Vec<Id>),
        One(Id),
    }
    let text = |id: Id| match id {
        Id::Text(text) => text,
        Id::Number(number) => number.to_string(),
    };
    Ok(match Ids::deserialize(deserializer)? {
        Ids::Many(ids) => ids.into_iter().map(text).collect(),
        Ids::One(id) => vec![text(id)],
    })
}

/// `[discord]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordSettings {
    /// Bot token from the developer portal; empty disables Discord.
    pub token: Secret,
    /// A base URL replacing https://discord.com for REST (empty = none).
    pub proxy_url: String,
    /// Shortest gap between two sends or edits in one channel, in milliseconds.
    pub edit_interval_ms: u64,
    /// Message creates and edits Discord allows in one channel per window.
    pub bucket_size: u32,
    /// That window's length, in milliseconds.
    pub bucket_window_ms: u64,
    /// Guilds the bot answers in (empty = all).
    #[serde(deserialize_with = "ids")]
    pub allowed_guilds: Vec<String>,
    /// Channels the bot answers in (empty = all).
    #[serde(deserialize_with = "ids")]
    pub allowed_channels: Vec<String>,
    /// Users the bot answers (empty = all).
    #[serde(deserialize_with = "ids")]
    pub allowed_users: Vec<String>,
    /// Guilds to register slash commands in instantly (empty = global registration).
    #[serde(deserialize_with = "ids")]
    pub guild_ids: Vec<String>,
    /// The shards this process runs, `"0-3"` or `"2"` (empty = every shard of `shard_count`).
    #[serde(deserialize_with = "text")]
    pub shards: String,
    /// The bot's total number of shards (0 = one shard, or Discord's count is not used).
    pub shard_count: u32,
}

/// A text that may arrive as a number (`PARLEY__DISCORD__SHARDS=2` parses as one).
fn text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Text(String),
        Number(i64),
    }
    Ok(match Text::deserialize(deserializer)? {
        Text::Text(text) => text,
        Text::Number(number) => number.to_string(),
    })
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Filter directive when RUST_LOG is unset (`info`, `parley=debug`, ...).
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// `host:port` serving /healthz and /metrics; empty disables the listener.
    pub listen: String,
}

/// `[shutdown]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// Seconds in-flight replies may finish after SIGTERM before they are interrupted.
    pub grace_secs: u64,
}

/// `[instance]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSettings {
    /// Coordinate with other instances on the same database.
    pub coordinate: bool,
    /// This instance's id; empty = hostname-pid-random.
    pub id: String,
}

/// What the caller is about to do, which decides what the configuration must contain.
/// (`parley healthcheck` needs only [`Settings::http_listen`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `parley run`: at least one platform, and an API key.
    Run,
    /// `parley chat`: an API key.
    Chat,
    /// `parley check`: what `run` needs.
    Check,
}

impl LlmSettings {
    /// The body parameters sent with every request, before per-model overrides.
    pub fn params(&self) -> Params {
        Params {
            temperature: self.temperature,
            top_p: self.top_p,
            n: self.n,
            stop: self.stop.clone(),
            max_tokens: self.max_tokens,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
        }
    }
}

impl Settings {
    /// Loads defaults, then `file`, then the process environment; [`Config::from_settings`]
    /// then parses what was loaded.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_from(file, None)
    }

    /// Like [`Settings::load`], with the environment given as a map (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
    ) -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(SettingsError::new(
                    "--config",
                    format!(
                        "{} does not exist; give the path of a TOML file",
                        path.display()
                    ),
                ));
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        let mut environment = config::Environment::with_prefix("PARLEY")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",");
        for key in LIST_KEYS {
            environment = environment.with_list_parse_key(key);
        }
        builder = builder.add_source(environment.source(env));
        builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(SettingsError::from_config)
    }

    /// True when Telegram is configured.
    pub fn telegram_enabled(&self) -> bool {
        !self.telegram.token.is_empty()
    }

    /// True when Discord is configured.
    pub fn discord_enabled(&self) -> bool {
        !self.discord.token.is_empty()
    }
}

#[cfg(test)]
mod tests;
