//! Replies to a slash command: the engine's `Platform` over one interaction's webhook. The
//! first message fills the deferred original response; continuations are follow-ups.

use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::files::Cdn;
use super::outbound::{Pace, platform_error};
use super::rest::DiscordRest;
use crate::engine::attachment::FileRef;
use crate::engine::event::{ChatKey, MessageRef, PlatformKind};
use crate::engine::ports::{FetchError, Limits, Phase, Platform, PlatformError};

/// One deferred interaction's response messages. Its `Debug` hides the interaction token.
pub struct InteractionPlatform {
    rest: DiscordRest,
    pace: Pace,
    cdn: Cdn,
    application: String,
    token: SecretString,
    /// Only the user who asked sees the answer (a command's), follow-ups included.
    ephemeral: bool,
    /// The original response's id, once it shows text.
    original: Mutex<Option<MessageRef>>,
}

impl fmt::Debug for InteractionPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InteractionPlatform")
            .field("application", &self.application)
            .finish_non_exhaustive()
    }
}

impl InteractionPlatform {
    /// The response messages of the interaction with `token`, deferred already (ephemeral or
    /// not, as `ephemeral` says; follow-ups are sent the same way); `/ask`'s attachment comes
    /// from `cdn`.
    pub fn new(
        rest: DiscordRest,
        pace: Pace,
        cdn: Cdn,
        application: String,
        token: SecretString,
        ephemeral: bool,
    ) -> Self {
        Self {
            rest,
            pace,
            cdn,
            application,
            token,
            ephemeral,
            original: Mutex::new(None),
        }
    }

    fn original(&self) -> Option<MessageRef> {
        let original = self.original.lock().unwrap_or_else(|p| p.into_inner());
        original.clone()
    }

    fn set_original(&self, message: &MessageRef) {
        let mut original = self.original.lock().unwrap_or_else(|p| p.into_inner());
        *original = Some(message.clone());
    }
}

#[async_trait]
impl Platform for InteractionPlatform {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Discord
    }

    /// The channel's pace; interaction webhooks do not count against the global limit.
    fn limits(&self, _chat: &ChatKey) -> Limits {
        Limits {
            bot: None,
            ..self.pace.limits()
        }
    }

    /// The first send fills the original response; later ones are follow-ups.
    async fn send(
        &self,
        _chat: &ChatKey,
        _reply_to: Option<&MessageRef>,
        text: &str,
        _phase: Phase,
    ) -> Result<MessageRef, PlatformError> {
        let (app, token) = (self.application.as_str(), self.token.expose_secret());
        if self.original().is_some() {
            let id = self.rest.follow_up(app, token, text, self.ephemeral).await;
            return id.map(MessageRef::new).map_err(platform_error);
        }
        let result = self.rest.edit_response(app, token, "@original", text).await;
        let message = result.map(MessageRef::new).map_err(platform_error)?;
        self.set_original(&message);
        Ok(message)
    }

    async fn edit(
        &self,
        _chat: &ChatKey,
        message: &MessageRef,
        text: &str,
        _phase: Phase,
    ) -> Result<MessageRef, PlatformError> {
        let (app, token) = (self.application.as_str(), self.token.expose_secret());
        let result = self
            .rest
            .edit_response(app, token, message.as_str(), text)
            .await;
        result.map(MessageRef::new).map_err(platform_error)
    }

    /// The deferred response already shows "thinking…".
    async fn typing(&self, _chat: &ChatKey) -> Result<(), PlatformError> {
        Ok(())
    }

    /// `file` is the URL of `/ask`'s attachment.
    async fn fetch(&self, file: &FileRef, limit: u64) -> Result<Vec<u8>, FetchError> {
        self.cdn.fetch(file.as_str(), limit).await
    }
}
