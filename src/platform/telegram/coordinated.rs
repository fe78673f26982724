//! Telegram among several instances: updates the intake takes kept in the shared inbox for the
//! instance holding their chat, the poll lease that lets one instance poll, and the inbox's
//! updates handled as if just taken.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::value::RawValue;
use teloxide::types::{Update, UpdateKind};
use tokio_util::sync::CancellationToken;

use super::inbound::map_message;
use super::long_poll::{STOPPED_GENERATION, decode};
use super::polling::Adapter;
use crate::engine::event::{ChatKey, PlatformKind};
use crate::instances::{InboxHandler, Scope};

/// Shown when a message waited too long for its chat's instance (one died with it queued).
pub const TOO_OLD: &str = "Sorry, your message arrived while the bot was switching over and \
     waited too long — please send it again.";

impl Adapter {
    /// Among several instances, keeps a taken update in the shared inbox, once however often
    /// Telegram delivers it, for the instance holding its chat (this one at once when nobody
    /// else does): `Some(true)` when it is new, `Some(false)` when it was kept before. `None`
    /// when alone, for an update that names no chat, or when the database failed: then the
    /// intake handles it here.
    pub(super) async fn keep(&self, id: i64, raw: &RawValue) -> Option<bool> {
        let instance = self.services.instance.as_ref()?;
        let update = decode(raw).update.ok()?;
        let scope = scope_of(&update)?;
        let id = id.to_string();
        match instance
            .accept(PlatformKind::Telegram, &scope, &id, raw.get())
            .await
        {
            Ok(new) => Some(new),
            Err(error) => {
                tracing::warn!(%scope, error = %error.chain(),
                    "could not keep an update in the shared inbox; answering it here");
                None
            }
        }
    }

    /// Waits until this instance holds the poll lease (at once when alone); false when `stop`
    /// comes first. Standing by is healthy: the health beats meanwhile.
    pub(super) async fn may_poll(&self, stop: &CancellationToken) -> bool {
        let Some(instance) = &self.services.instance else {
            return true;
        };
        let lease = Scope::named(Scope::TELEGRAM_POLL);
        let retry =
            (instance.failover() / 10).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let mut standing_by = false;
        loop {
            if instance.acquire(&lease).await {
                if standing_by {
                    tracing::info!("took over polling Telegram");
                }
                return true;
            }
            if !standing_by {
                tracing::info!("another instance polls Telegram; standing by to take over");
                standing_by = true;
            }
            self.services.health.beat();
            tokio::select! {
                () = stop.cancelled() => return false,
                () = tokio::time::sleep(retry) => {}
            }
        }
    }

    /// Gives up the poll lease once polling stopped (a graceful stop hands it over at once).
    pub(super) async fn stop_polling(&self) {
        if let Some(instance) = &self.services.instance {
            instance.release(&Scope::named(Scope::TELEGRAM_POLL)).await;
        }
    }

    /// Lets the shared inbox hand this adapter the updates of the chats this instance holds.
    pub(super) fn serve_inbox(self: &Arc<Self>) {
        if let Some(instance) = &self.services.instance {
            instance.serve(PlatformKind::Telegram, Arc::new(Inbox(self.clone())));
        }
    }
}

/// The scope an update's chat is paced in: the chat, all its topics together.
fn scope_of(update: &Update) -> Option<Scope> {
    let chat = match &update.kind {
        UpdateKind::Error(raw) => raw[STOPPED_GENERATION]["chat"]["id"].as_i64()?,
        _ => update.chat()?.id.0,
    };
    Some(Scope::of_chat(&ChatKey::new(
        PlatformKind::Telegram,
        chat.to_string(),
    )))
}

/// The updates the inbox hands over, handled as if just polled.
struct Inbox(Arc<Adapter>);

impl Inbox {
    fn decode(payload: &str) -> Option<Update> {
        let raw: &RawValue = serde_json::from_str(payload).ok()?;
        match decode(raw).update {
            Ok(update) => Some(update),
            Err(why) => {
                tracing::warn!(%why, "skipping an update from the inbox");
                None
            }
        }
    }
}

#[async_trait]
impl InboxHandler for Inbox {
    async fn deliver(&self, payload: &str) {
        if let Some(update) = Self::decode(payload) {
            self.0.handle(update).await;
        }
    }

    async fn too_old(&self, payload: &str) {
        let Some(update) = Self::decode(payload) else {
            return;
        };
        if let UpdateKind::Message(message) = &update.kind
            && let Some(addressed) = map_message(message, &self.0.me)
        {
            self.0.notice(&addressed, TOO_OLD.to_string());
        }
    }
}
