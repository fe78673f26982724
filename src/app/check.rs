//! `parley check [--online]`: validates what `run` would start; online, it also calls the
//! completion API and each enabled platform once. One line per check; never a secret.

use anyhow::bail;

use crate::engine::event::PlatformKind;
use crate::engine::ports::ModelName;
use crate::llm::OpenAiClient;
use crate::platform::discord::{DiscordConfig, DiscordProbe};
use crate::platform::probe::Probe;
use crate::platform::telegram::{TelegramConfig, TelegramProbe};
use crate::settings::Settings;

use super::{client_config, open_store};

/// What `parley check` prints, and whether every check passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// One line per check.
    pub lines: Vec<String>,
    /// False when an online check failed.
    pub ok: bool,
}

/// Validates the config and the database; with `online`, calls the API and the platforms.
pub async fn check(settings: &Settings, online: bool) -> anyhow::Result<CheckReport> {
    let store = open_store(settings).await?;
    let integrity = store.integrity_check().await?;
    store.close().await;
    if integrity != "ok" {
        bail!("store.database_url: the database failed its integrity check: {integrity}");
    }
    let mut report = CheckReport {
        lines: offline_lines(settings),
        ok: true,
    };
    if online {
        report.add("model API online", api_online(settings).await);
        for kind in enabled_platforms(settings) {
            let line = format!("{kind} online");
            match probe(settings, kind) {
                Some(probe) => report.add(&line, probe.probe().await.map_err(|e| e.to_string())),
                None => report.lines.push(format!(
                    "{line}: not checked (the adapter could not be set up)"
                )),
            }
        }
    }
    Ok(report)
}

impl CheckReport {
    fn add(&mut self, name: &str, result: Result<String, String>) {
        match result {
            Ok(detail) => self.lines.push(format!("{name}: OK ({detail})")),
            Err(reason) => {
                self.ok = false;
                self.lines.push(format!("{name}: FAILED: {reason}"));
            }
        }
    }
}

fn offline_lines(settings: &Settings) -> Vec<String> {
    let mut lines = vec![
        "config: ok".to_string(),
        format!("database: ok ({})", settings.store.database_url),
        format!(
            "model API: {} (key {}), default model {}",
            settings.llm.base_url, settings.llm.api_key, settings.llm.default_model
        ),
    ];
    for (name, enabled) in [
        ("telegram", settings.telegram_enabled()),
        ("discord", settings.discord_enabled()),
    ] {
        let state = if enabled {
            "would start"
        } else {
            "disabled (no token)"
        };
        lines.push(format!("{name}: {state}"));
    }
    lines
}

fn enabled_platforms(settings: &Settings) -> Vec<PlatformKind> {
    let mut kinds = Vec::new();
    if settings.telegram_enabled() {
        kinds.push(PlatformKind::Telegram);
    }
    if settings.discord_enabled() {
        kinds.push(PlatformKind::Discord);
    }
    kinds
}

/// One non-streaming, one-token request to the default model.
async fn api_online(settings: &Settings) -> Result<String, String> {
    let client = OpenAiClient::new(client_config(settings)).map_err(|e| e.to_string())?;
    let model = ModelName::new(&settings.llm.default_model);
    match client.ping(&model).await {
        Ok(()) => Ok(format!("{model} answered")),
        Err(error) => Err(error.to_string()),
    }
}

/// The adapter's online check for `kind`; `None` when the adapter cannot be set up.
fn probe(settings: &Settings, kind: PlatformKind) -> Option<Box<dyn Probe>> {
    match kind {
        PlatformKind::Telegram => {
            let config = TelegramConfig::from_settings(settings);
            Some(Box::new(TelegramProbe::new(&config)))
        }
        PlatformKind::Discord => match DiscordConfig::from_settings(settings)
            .and_then(|config| DiscordProbe::new(&config))
        {
            Ok(probe) => Some(Box::new(probe)),
            Err(error) => {
                tracing::warn!(%error, "cannot check Discord");
                None
            }
        },
        PlatformKind::Console => None,
    }
}
