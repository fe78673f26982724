//! `[telegram]`, `[discord]` and `[access]` parsed: each enabled adapter's own configuration.

use std::collections::HashSet;
use std::time::Duration;

use super::llm::Models;
use super::scale;
use super::{check, http_url};
use crate::engine::ports::Window;
use crate::platform::discord::{self, Access, DiscordConfig};
use crate::platform::telegram::{self, TelegramConfig};
use crate::settings::{Purpose, Settings, SettingsError};

/// The adapters to start.
pub(super) struct Platforms {
    /// Telegram, when its token is set.
    pub telegram: Option<TelegramConfig>,
    /// Discord, when its token is set.
    pub discord: Option<DiscordConfig>,
}

/// The enabled adapters' configurations; `run` and `check` need at least one.
pub(super) fn parse(
    settings: &Settings,
    models: &Models,
    purpose: Purpose,
) -> Result<Platforms, SettingsError> {
    if purpose != Purpose::Chat {
        check(
            settings.telegram_enabled() || settings.discord_enabled(),
            "telegram.token",
            || {
                "no platform is enabled; set PARLEY__TELEGRAM__TOKEN or PARLEY__DISCORD__TOKEN (or try `parley chat`)".into()
            },
        )?;
    }
    let api_url = http_url(&settings.telegram.api_url, "telegram.api_url")?;
    let proxy_url = proxy_url(&settings.discord.proxy_url)?;
    let group_window = group_window(settings.telegram.group_per_minute)?;
    let poll_timeout = poll_timeout(settings.telegram.poll_timeout_secs)?;
    let admins = admins(&settings.access.admins)?;
    let webhook = match settings.telegram_enabled() {
        true => scale::webhook(settings)?,
        false => None,
    };
    let telegram = settings.telegram_enabled().then(|| {
        let t = &settings.telegram;
        TelegramConfig {
            token: t.token.clone(),
            api_url,
            pace: telegram::Pace {
                min_interval: Duration::from_millis(t.edit_interval_ms),
                group_window,
            },
            allowed_chats: t.allowed_chats.clone(),
            allowed_users: t.allowed_users.clone(),
            admins: admins.clone(),
            models: models.all.clone(),
            default_model: models.default.clone(),
            refusal_every: telegram::REFUSAL_EVERY,
            poll_timeout,
            poll_backoff: telegram::POLL_BACKOFF,
            webhook,
        }
    });
    let discord = match settings.discord_enabled() {
        true => Some(discord_config(settings, proxy_url, &admins, models)?),
        false => None,
    };
    Ok(Platforms { telegram, discord })
}

/// `discord.proxy_url`; `None` when empty.
fn proxy_url(value: &str) -> Result<Option<String>, SettingsError> {
    if value.is_empty() {
        return Ok(None);
    }
    http_url(value, "discord.proxy_url")?;
    let proxy = value.trim();
    Ok((!proxy.is_empty()).then(|| proxy.to_string()))
}

/// `telegram.group_per_minute` as a window.
fn group_window(count: u32) -> Result<Window, SettingsError> {
    check(count > 0, "telegram.group_per_minute", || {
        "must be at least 1".into()
    })?;
    Ok(Window {
        count,
        per: Duration::from_secs(60),
    })
}

/// `telegram.poll_timeout_secs`.
fn poll_timeout(secs: u64) -> Result<Duration, SettingsError> {
    check(
        (1..=50).contains(&secs),
        "telegram.poll_timeout_secs",
        || "must be 1 to 50 seconds (the Bot API holds a poll at most 50 s)".into(),
    )?;
    Ok(Duration::from_secs(secs))
}

/// `access.admins`: each `telegram:ID` or `discord:ID`.
fn admins(admins: &[String]) -> Result<Vec<String>, SettingsError> {
    for admin in admins {
        let ok = admin
            .split_once(':')
            .is_some_and(|(p, id)| matches!(p, "telegram" | "discord") && !id.is_empty());
        check(ok, "access.admins", || {
            format!("`{admin}` must look like telegram:123 or discord:456")
        })?;
    }
    Ok(admins.to_vec())
}

fn discord_config(
    settings: &Settings,
    proxy_url: Option<String>,
    admins: &[String],
    models: &Models,
) -> Result<DiscordConfig, SettingsError> {
    let d = &settings.discord;
    let set = |list: &[String]| -> HashSet<String> {
        list.iter().map(|s| s.trim().to_string()).collect()
    };
    let admins = admins.iter().filter(|a| a.starts_with("discord:"));
    let guild_ids = d.guild_ids.iter().map(|id| {
        discord::guild_id(id).ok_or_else(|| {
            SettingsError::new("discord.guild_ids", format!("`{id}` is not a Discord id"))
        })
    });
    Ok(DiscordConfig {
        token: d.token.clone(),
        proxy_url,
        pace: discord::Pace {
            min_interval: Duration::from_millis(d.edit_interval_ms),
            bucket_size: d.bucket_size,
            bucket_window: Duration::from_millis(d.bucket_window_ms),
        },
        access: Access {
            guilds: set(&d.allowed_guilds),
            channels: set(&d.allowed_channels),
            users: set(&d.allowed_users),
            admins: admins.cloned().collect(),
        },
        models: models.all.clone(),
        guild_ids: guild_ids.collect::<Result<_, _>>()?,
        shards: scale::shards(settings)?,
    })
}
