//! `parley check [--online]`: validates what `run` would start; online, it also calls the
//! completion API and each enabled platform once. One line per check; never a secret.

use anyhow::bail;

use crate::engine::attachment::human_size;
use crate::engine::event::PlatformKind;
use crate::llm::OpenAiClient;
use crate::platform::discord::DiscordProbe;
use crate::platform::probe::Probe;
use crate::platform::telegram::TelegramProbe;
use crate::settings::Config;

use super::{enabled_platforms, open_store};

/// What `parley check` prints, and whether every check passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// One line per check.
    pub lines: Vec<String>,
    /// False when an online check failed.
    pub ok: bool,
}

/// Validates the config and the database; with `online`, calls the API and the platforms.
pub async fn check(config: &Config, online: bool) -> anyhow::Result<CheckReport> {
    let database = open_store(&config.store, None).await?;
    let integrity = database.integrity_check().await?;
    database.close().await;
    if integrity != "ok" {
        bail!("store.database_url: the database failed its integrity check: {integrity}");
    }
    let mut report = CheckReport {
        lines: offline_lines(config),
        ok: true,
    };
    if online {
        report.add("model API online", api_online(config).await);
        for kind in enabled_platforms(config) {
            let line = format!("{kind} online");
            match probe(config, kind) {
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

fn offline_lines(config: &Config) -> Vec<String> {
    let mut lines = vec![
        "config: ok".to_string(),
        format!("database: ok ({})", config.store.url),
        // The parse refused an empty key, so there is one to hide.
        format!(
            "model API: {} (key ***), default model {}",
            config.client.base_url, config.engine.default_model
        ),
    ];
    lines.push(attachments_line(config));
    for (name, enabled) in [
        ("telegram", config.telegram.is_some()),
        ("discord", config.discord.is_some()),
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

/// What attachments are read: images up to their limit by which of the offered models, text files
/// up to theirs.
fn attachments_line(config: &Config) -> String {
    let engine = &config.engine;
    let readers: Vec<&str> = engine
        .models
        .iter()
        .filter(|m| engine.image_models.contains(m))
        .map(|m| m.as_str())
        .collect();
    let images = match readers.is_empty() {
        true => "no model of llm.models reads images (llm.image_models)".to_string(),
        false => format!(
            "images up to {} for {}",
            human_size(engine.attachments.max_image_bytes),
            readers.join(", ")
        ),
    };
    let texts = human_size(engine.attachments.max_text_bytes);
    format!("attachments: {images}; text files up to {texts}")
}

/// One non-streaming, one-token request to the default model.
async fn api_online(config: &Config) -> Result<String, String> {
    let client = OpenAiClient::new(config.client.clone()).map_err(|e| e.to_string())?;
    let model = &config.engine.default_model;
    match client.ping(model).await {
        Ok(()) => Ok(format!("{model} answered")),
        Err(error) => Err(error.to_string()),
    }
}

/// The adapter's online check for `kind`; `None` when the adapter cannot be set up.
fn probe(config: &Config, kind: PlatformKind) -> Option<Box<dyn Probe>> {
    match kind {
        PlatformKind::Telegram => {
            let probe = TelegramProbe::new(config.telegram.as_ref()?);
            Some(Box::new(probe))
        }
        PlatformKind::Discord => match DiscordProbe::new(config.discord.as_ref()?) {
            Ok(probe) => Some(Box::new(probe)),
            Err(error) => {
                tracing::warn!(%error, "cannot check Discord");
                None
            }
        },
        PlatformKind::Console => None,
    }
}
