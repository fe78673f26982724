//! The settings parsed, once, into the runtime configuration each part of the bot starts with.
//! Every problem found stops the parse with one line naming its key and how to fix it.

mod instance;
mod llm;
mod platforms;
mod scale;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use super::{
    AttachmentSettings, DispatchSettings, Purpose, Settings, SettingsError, StoreSettings,
};
use crate::engine::attachment::read::AttachmentLimits;
use crate::engine::dispatcher::DispatchConfig;
use crate::engine::turn::EngineConfig;
use crate::instances::InstanceConfig;
use crate::llm::ClientConfig;
use crate::platform::discord::DiscordConfig;
use crate::platform::telegram::TelegramConfig;
use crate::store::StoreConfig;

/// The runtime configuration: the settings resolved into what the store, the completion client,
/// the engine, the dispatcher, each enabled platform and the health listener are started with.
#[derive(Debug, Clone)]
pub struct Config {
    /// The database (`[store]`).
    pub store: StoreConfig,
    /// The completion client.
    pub client: ClientConfig,
    /// The conversation engine.
    pub engine: EngineConfig,
    /// The dispatcher's queues.
    pub dispatch: DispatchConfig,
    /// The Telegram adapter; `None` when `telegram.token` is empty.
    pub telegram: Option<TelegramConfig>,
    /// The Discord adapter; `None` when `discord.token` is empty.
    pub discord: Option<DiscordConfig>,
    /// Where `/healthz` and `/metrics` are served (`http.listen`; `None`: not served).
    pub listen: Option<SocketAddr>,
    /// How long replies may finish after SIGTERM before they are interrupted.
    pub grace: Duration,
    /// This instance among others on the database (`instance.coordinate`); `None`: alone.
    pub instance: Option<InstanceConfig>,
}

impl Config {
    /// Parses `settings` for `purpose`: what `parley run`, `chat` or `check` starts with.
    pub fn from_settings(settings: &Settings, purpose: Purpose) -> Result<Self, SettingsError> {
        let listen = settings.http_listen()?;
        let grace = grace(settings.shutdown.grace_secs)?;
        let (client, models) = llm::client(&settings.llm, purpose)?;
        let platforms = platforms::parse(settings, &models, purpose)?;
        let store = store(&settings.store)?;
        let history_budget =
            at_least(settings.history.budget_tokens, 256, "history.budget_tokens")?;
        let image_tokens = at_least(settings.history.image_tokens, 1, "history.image_tokens")?;
        let attachments = attachments(&settings.attachments)?;
        let (dispatch, max_concurrent) = dispatch(&settings.dispatch)?;
        check_log(settings)?;
        let instance = instance::parse(settings)?;
        let engine = EngineConfig {
            models: models.all,
            default_model: models.default,
            system_prompt: llm::system_prompt(&settings.llm),
            history_budget,
            image_tokens,
            image_models: llm::image_models(&settings.llm)?,
            attachments,
            max_concurrent,
            thinking_after: (settings.reply.thinking_after_secs > 0)
                .then(|| Duration::from_secs(settings.reply.thinking_after_secs)),
        };
        Ok(Self {
            store,
            client,
            engine,
            dispatch,
            telegram: platforms.telegram,
            discord: platforms.discord,
            listen,
            grace,
            instance,
        })
    }
}

impl Settings {
    /// `http.listen` as an address; `None` when it is empty (no listener). All that
    /// `parley healthcheck` needs.
    pub fn http_listen(&self) -> Result<Option<SocketAddr>, SettingsError> {
        let listen = &self.http.listen;
        if listen.is_empty() {
            return Ok(None);
        }
        listen.parse().map(Some).map_err(|_| {
            SettingsError::new(
                "http.listen",
                format!(
                    "`{listen}` is not an address; write it like 127.0.0.1:9464, or \"\" to disable"
                ),
            )
        })
    }
}

/// `Ok` when `ok` holds; otherwise the problem with `key`.
fn check(ok: bool, key: &str, message: impl FnOnce() -> String) -> Result<(), SettingsError> {
    if ok {
        Ok(())
    } else {
        Err(SettingsError::new(key, message()))
    }
}

/// `value`, when it is at least `min`.
fn at_least<T: PartialOrd + fmt::Display + Copy>(
    value: T,
    min: T,
    key: &str,
) -> Result<T, SettingsError> {
    check(value >= min, key, || format!("must be at least {min}"))?;
    Ok(value)
}

/// `value`, when it is an http(s) URL with a host.
fn http_url(value: &str, key: &str) -> Result<String, SettingsError> {
    let ok = reqwest::Url::parse(value)
        .map(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
        .unwrap_or(false);
    check(ok, key, || {
        format!("`{value}` is not an http(s) URL; write it like https://host/path")
    })?;
    Ok(value.to_string())
}

/// `shutdown.grace_secs`.
fn grace(secs: u64) -> Result<Duration, SettingsError> {
    check((1..=3600).contains(&secs), "shutdown.grace_secs", || {
        "must be between 1 and 3600".into()
    })?;
    Ok(Duration::from_secs(secs))
}

/// `[store]`: the database URL (SQLite or PostgreSQL), the pool size and statement timeout.
fn store(s: &StoreSettings) -> Result<StoreConfig, SettingsError> {
    let url = &s.database_url;
    check(
        url.expose().starts_with("sqlite:") || url.is_postgres(),
        "store.database_url",
        || {
            "must start with sqlite: or postgres://, like sqlite://data/parley.db or \
             postgres://parley:password@localhost:5432/parley"
                .into()
        },
    )?;
    let config = StoreConfig {
        url: url.clone(),
        pool_size: at_least(s.pool_size, 1, "store.pool_size")?,
        statement_timeout: Duration::from_secs(at_least(
            s.statement_timeout_secs,
            1,
            "store.statement_timeout_secs",
        )?),
    };
    if url.is_postgres() {
        crate::store::postgres::connect_options(&config).map_err(|_| {
            SettingsError::new(
                "store.database_url",
                format!(
                    "`{url}` is not a PostgreSQL URL; write it like \
                     postgres://user:password@host:5432/database (add ?sslmode=require for TLS)"
                ),
            )
        })?;
    }
    Ok(config)
}

/// The dispatcher's queues and the completion cap (`[dispatch]`).
fn dispatch(d: &DispatchSettings) -> Result<(DispatchConfig, usize), SettingsError> {
    let max_concurrent = at_least(d.max_concurrent, 1, "dispatch.max_concurrent")?;
    let config = DispatchConfig {
        queue_capacity: at_least(d.queue_capacity, 1, "dispatch.queue_capacity")?,
        per_conversation: at_least(d.per_conversation, 1, "dispatch.per_conversation")?,
    };
    Ok((config, max_concurrent))
}

/// The largest image a bot may be asked to hold (and send, base64, with every later turn).
const MAX_IMAGE_BYTES: u64 = 100 << 20;
/// The largest text file: far beyond any model's context already.
const MAX_TEXT_BYTES: u64 = 10 << 20;

/// `[attachments]`: the size limits per kind.
fn attachments(a: &AttachmentSettings) -> Result<AttachmentLimits, SettingsError> {
    let bytes = |value: u64, max: u64, key: &str| {
        check((1024..=max).contains(&value), key, || {
            format!("must be between 1024 and {max} bytes (10 MiB is 10485760)")
        })
        .map(|()| value)
    };
    Ok(AttachmentLimits {
        max_image_bytes: bytes(
            a.max_image_bytes,
            MAX_IMAGE_BYTES,
            "attachments.max_image_bytes",
        )?,
        max_text_bytes: bytes(
            a.max_text_bytes,
            MAX_TEXT_BYTES,
            "attachments.max_text_bytes",
        )?,
    })
}

/// `[log]`, which the subscriber reads as it is: only checked here.
fn check_log(settings: &Settings) -> Result<(), SettingsError> {
    let log = &settings.log;
    check(
        matches!(log.format.as_str(), "text" | "json"),
        "log.format",
        || format!("`{}` is not a format; use \"text\" or \"json\"", log.format),
    )?;
    check(
        tracing_subscriber::EnvFilter::try_new(&log.level).is_ok(),
        "log.level",
        || {
            format!(
                "`{}` is not a log filter; use info, debug, or parley=debug",
                log.level
            )
        },
    )
}
