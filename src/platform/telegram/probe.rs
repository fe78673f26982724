//! `parley check --online` for Telegram: one getMe with the configured token.

use async_trait::async_trait;
use teloxide::prelude::Requester;

use super::{TelegramConfig, api};
use crate::platform::probe::{Probe, ProbeError};
use crate::secret::Secret;

/// Asks the Bot API who the bot is.
pub struct TelegramProbe {
    token: Secret,
    api_url: String,
}

impl TelegramProbe {
    /// A probe with the adapter's token and API server.
    pub fn new(config: &TelegramConfig) -> Self {
        Self {
            token: config.token.clone(),
            api_url: config.api_url.clone(),
        }
    }
}

#[async_trait]
impl Probe for TelegramProbe {
    async fn probe(&self) -> Result<String, ProbeError> {
        let bot = api::bot(self.token.expose(), &self.api_url).map_err(ProbeError)?;
        // teloxide removes the token from the URLs in its errors.
        let me = bot
            .get_me()
            .await
            .map_err(|e| ProbeError(format!("getMe: {e}")))?;
        Ok(format!(
            "getMe: @{}",
            me.username.clone().unwrap_or_default()
        ))
    }
}
