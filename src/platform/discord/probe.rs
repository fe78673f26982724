//! `parley check --online` for Discord: one `GET /users/@me` with the configured token.

use async_trait::async_trait;

use super::rest::DiscordRest;
use super::{DiscordConfig, DiscordError};
use crate::platform::probe::{Probe, ProbeError};

/// Asks Discord who the bot is.
pub struct DiscordProbe {
    rest: DiscordRest,
}

impl DiscordProbe {
    /// A probe with the adapter's token and base URL (`discord.proxy_url` when set).
    pub fn new(config: &DiscordConfig) -> Result<Self, DiscordError> {
        let client = DiscordRest::http_client().map_err(|e| DiscordError::Client(e.to_string()))?;
        Ok(Self {
            rest: config.rest(client),
        })
    }
}

#[async_trait]
impl Probe for DiscordProbe {
    async fn probe(&self) -> Result<String, ProbeError> {
        match self.rest.current_user().await {
            Ok(id) => Ok(format!("current user {id}")),
            Err(error) => Err(ProbeError(format!("current user: {error}"))),
        }
    }
}
