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
use crate::instances::{Accepted, InboxHandler, Scope};

/// Shown when a message waited too long for its chat's instance (one died with it queued).
pub const TOO_OLD: &str = "Sorry, your message arrived while the bot was switching over and \
     waited too long — please send it again.";

impl Adapter {
    /// Among several instances, keeps taken updates in the shared inbox, once however often
    /// Telegram delivers them, for the instance holding their chat (this one at once when
    /// nobody else does), all in one write: for each, `Some(true)` when it is new,
    /// `Some(false)` when it was kept before. `None` for an update that names no chat (the
    /// intake handles it here), and for every update when alone or when the database failed
    /// (then the intake handles them here).
    pub(super) async fn keep_all(&self, batch: &[(i64, &RawValue)]) -> Vec<Option<bool>> {
        let Some(instance) = self.services.instance.as_ref() else {
            return vec![None; batch.len()];
        };
        let ids: Vec<String> = batch.iter().map(|(id, _)| id.to_string()).collect();
        let scopes: Vec<Option<Scope>> = batch
            .iter()
            .map(|(_, raw)| scope_of(&decode(raw).update.ok()?))
            .collect();
        let kept: Vec<Accepted<'_>> = batch
            .iter()
            .zip(&ids)
            .zip(&scopes)
            .filter_map(|(((_, raw), id), scope)| {
                Some(Accepted {
                    scope: scope.as_ref()?,
                    event_id: id,
                    payload: raw.get(),
                })
            })
            .collect();
        if kept.is_empty() {
            return vec![None; batch.len()];
        }
        let mut new = match instance.accept_all(PlatformKind::Telegram, &kept).await {
            Ok(new) => new.into_iter(),
            Err(error) => {
                tracing::warn!(count = kept.len(), error = %error.chain(),
                    "could not keep updates in the shared inbox; answering them here");
                return vec![None; batch.len()];
            }
        };
        scopes
            .iter()
            .map(|scope| scope.as_ref().and_then(|_| new.next()))
            .collect()
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
