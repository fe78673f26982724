//! Replies in channels: the engine's `Platform` over Discord's channel-message REST calls.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::files::Cdn;
use super::rest::{DiscordRest, MISSING_PERMISSIONS, RestError, UNKNOWN_MESSAGE};
use crate::engine::attachment::FileRef;
use crate::engine::event::{ChatKey, MessageRef, PlatformKind};
use crate::engine::pace::JITTER;
use crate::engine::ports::{
    Button, FetchError, LengthUnit, Limits, Phase, Platform, PlatformError, Window,
};
use crate::instances::Share;

/// Discord's content limit, in characters.
pub const MAX_CONTENT: usize = 2000;
/// Requests Discord allows a bot in one second, over all routes but interactions.
pub const GLOBAL_PER_SECOND: u32 = 50;
/// Discord shows typing for about 10 s.
const TYPING_EVERY: Duration = Duration::from_secs(8);

/// How fast the bot may write in one channel.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Shortest gap between two calls in one channel.
    pub min_interval: Duration,
    /// Calls allowed per window in one channel.
    pub bucket_size: u32,
    /// The window.
    pub bucket_window: Duration,
}

impl Pace {
    /// The limits the engine paces a channel by: the bucket's window kept [`JITTER`] longer,
    /// because Discord counts a call when it arrives and calls do not all arrive equally late;
    /// and Discord's global limit, which typing counts against too.
    pub fn limits(&self) -> Limits {
        Limits {
            max_len: MAX_CONTENT,
            unit: LengthUnit::Chars,
            min_interval: self.min_interval,
            window: Some(Window {
                count: self.bucket_size,
                per: self.bucket_window + JITTER,
            }),
            shared: None,
            bot: Some(Window {
                count: GLOBAL_PER_SECOND,
                per: Duration::from_secs(1),
            }),
            typing_counts: true,
            typing_every: TYPING_EVERY,
        }
    }
}

/// Maps a REST failure onto what the engine does next.
pub fn platform_error(error: RestError) -> PlatformError {
    match error {
        RestError::RateLimited(wait) => PlatformError::RetryAfter(wait),
        RestError::Api {
            code: UNKNOWN_MESSAGE,
            ..
        } => PlatformError::MessageGone,
        RestError::Api {
            status: 401 | 403 | 404,
            ..
        } => PlatformError::Forbidden(error.to_string()),
        RestError::Api { status, .. } if status >= 500 => {
            PlatformError::Unavailable(error.to_string())
        }
        RestError::Api { .. } => PlatformError::Rejected(error.to_string()),
        RestError::Network(_) => PlatformError::Unavailable(error.to_string()),
    }
}

/// The bot's messages in guild channels, threads and DMs.
#[derive(Debug)]
pub struct DiscordPlatform {
    rest: DiscordRest,
    pace: Pace,
    /// This instance's part of the bot-wide budget (all of it when alone).
    share: Share,
    cdn: Cdn,
    /// Channels where missing permissions were already logged.
    warned: Mutex<HashSet<String>>,
}

impl DiscordPlatform {
    /// A platform writing through `rest`, paced by `pace`, downloading attachments from `cdn`.
    pub fn new(rest: DiscordRest, pace: Pace, cdn: Cdn) -> Self {
        Self {
            rest,
            pace,
            share: Share::default(),
            cdn,
            warned: Mutex::default(),
        }
    }

    /// Among several instances, paced by this instance's `share` of the bot-wide budget.
    pub fn shared(self, share: Share) -> Self {
        Self { share, ..self }
    }

    /// Maps an error, logging missing permissions once per channel.
    fn failed(&self, channel: &str, error: RestError) -> PlatformError {
        if let RestError::Api {
            code: MISSING_PERMISSIONS,
            ..
        } = error
        {
            let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
            if warned.insert(channel.to_string()) {
                tracing::warn!(
                    channel,
                    "missing permissions to write in this channel (50013)"
                );
            }
        }
        platform_error(error)
    }
}

/// The components of `buttons`: one action row (none for no buttons). A Stop button is red.
fn components(buttons: &[Button]) -> serde_json::Value {
    if buttons.is_empty() {
        return serde_json::json!([]);
    }
    let row: Vec<serde_json::Value> = buttons
        .iter()
        .map(|b| {
            let style = if b.stops { 4 } else { 2 };
            serde_json::json!({ "type": 2, "style": style, "label": b.label, "custom_id": b.data })
        })
        .collect();
    serde_json::json!([{ "type": 1, "components": row }])
}

/// The channel to write in: the chat (threads are channels of their own).
fn channel(chat: &ChatKey) -> &str {
    chat.thread
        .as_ref()
        .map_or(chat.chat.as_str(), |t| t.as_str())
}

#[async_trait]
impl Platform for DiscordPlatform {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Discord
    }

    fn limits(&self, _chat: &ChatKey) -> Limits {
        self.share.limit(self.pace.limits())
    }

    async fn send(
        &self,
        chat: &ChatKey,
        reply_to: Option<&MessageRef>,
        text: &str,
        phase: Phase,
    ) -> Result<MessageRef, PlatformError> {
        self.send_with(chat, reply_to, text, phase, &[]).await
    }

    async fn edit(
        &self,
        chat: &ChatKey,
        message: &MessageRef,
        text: &str,
        phase: Phase,
    ) -> Result<MessageRef, PlatformError> {
        self.edit_with(chat, message, text, phase, &[]).await
    }

    /// Buttons become one action row of message components.
    async fn send_with(
        &self,
        chat: &ChatKey,
        reply_to: Option<&MessageRef>,
        text: &str,
        _phase: Phase,
        buttons: &[Button],
    ) -> Result<MessageRef, PlatformError> {
        let channel = channel(chat);
        let reply_to = reply_to.map(MessageRef::as_str);
        let components = (!buttons.is_empty()).then(|| components(buttons));
        match self
            .rest
            .create_message(channel, reply_to, text, components)
            .await
        {
            Ok(id) => Ok(MessageRef::new(id)),
            Err(error) => Err(self.failed(channel, error)),
        }
    }

    /// Every edit sets the components, so one without buttons removes them.
    async fn edit_with(
        &self,
        chat: &ChatKey,
        message: &MessageRef,
        text: &str,
        _phase: Phase,
        buttons: &[Button],
    ) -> Result<MessageRef, PlatformError> {
        let channel = channel(chat);
        match self
            .rest
            .edit_message(channel, message.as_str(), text, components(buttons))
            .await
        {
            Ok(id) => Ok(MessageRef::new(id)),
            Err(error) => Err(self.failed(channel, error)),
        }
    }

    async fn set_buttons(
        &self,
        chat: &ChatKey,
        message: &MessageRef,
        buttons: &[Button],
    ) -> Result<(), PlatformError> {
        let channel = channel(chat);
        let edit = self
            .rest
            .edit_components(channel, message.as_str(), components(buttons));
        edit.await.map_err(|error| self.failed(channel, error))
    }

    async fn delete(&self, chat: &ChatKey, message: &MessageRef) -> Result<(), PlatformError> {
        let channel = channel(chat);
        let delete = self.rest.delete_message(channel, message.as_str());
        delete.await.map_err(|error| self.failed(channel, error))
    }

    async fn typing(&self, chat: &ChatKey) -> Result<(), PlatformError> {
        let channel = channel(chat);
        let result = self.rest.typing(channel).await;
        result.map_err(|error| self.failed(channel, error))
    }

    /// `file` is an attachment URL.
    async fn fetch(&self, file: &FileRef, limit: u64) -> Result<Vec<u8>, FetchError> {
        self.cdn.fetch(file.as_str(), limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_bucket_is_paced_with_room_for_late_arrivals() {
        let pace = Pace {
            min_interval: Duration::from_millis(1000),
            bucket_size: 5,
            bucket_window: Duration::from_secs(5),
        };
        let window = pace.limits().window.expect("a bucket window");
        assert_eq!(window.count, 5);
        assert_eq!(window.per, Duration::from_secs(5) + JITTER);
    }
}
