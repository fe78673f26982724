//! Long polling with backoff, and what each update turns into: a queued turn, a command, the
//! help text, the /model keyboard or a refusal.

use std::sync::Arc;
use std::time::Duration;

use teloxide::payloads::GetUpdatesSetters;
use teloxide::prelude::Requester;
use teloxide::requests::Request;
use teloxide::types::{AllowedUpdate, Update, UpdateKind};
use teloxide::{Bot, RequestError};
use tokio_util::sync::CancellationToken;

use super::access::{Access, REFUSAL};
use super::inbound::{Action, Addressed, Me, map_message};
use super::{Services, TelegramConfig, TelegramPlatform, commands};
use crate::engine::event::{Content, Incoming};
use crate::engine::ports::{ModelName, Platform};

/// The longest wait between failed polls.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long stopping waits to confirm the handled updates.
const CONFIRM_WAIT: Duration = Duration::from_secs(2);

/// The running adapter: polls and routes updates.
pub(super) struct Adapter {
    pub(super) bot: Bot,
    pub(super) me: Me,
    pub(super) platform: Arc<TelegramPlatform>,
    pub(super) services: Services,
    pub(super) access: Arc<Access>,
    pub(super) models: Vec<ModelName>,
    pub(super) default_model: ModelName,
    poll_timeout: Duration,
    poll_backoff: Duration,
}

impl Adapter {
    pub(super) fn new(
        config: &TelegramConfig,
        me: Me,
        platform: Arc<TelegramPlatform>,
        services: Services,
    ) -> Self {
        let access = Access::new(
            &config.allowed_chats,
            &config.allowed_users,
            &config.admins,
            config.refusal_every,
        );
        Self {
            bot: platform.bot().clone(),
            me,
            platform,
            services,
            access: Arc::new(access),
            models: config.models.clone(),
            default_model: config.default_model.clone(),
            poll_timeout: config.poll_timeout,
            poll_backoff: config.poll_backoff,
        }
    }

    /// Polls until `stop`; failures back off and never end the loop.
    pub(super) async fn run(self, stop: CancellationToken) {
        let adapter = Arc::new(self);
        let mut offset = 0;
        let mut backoff = adapter.poll_backoff;
        loop {
            let request = adapter
                .bot
                .get_updates()
                .offset(offset)
                .timeout(adapter.poll_timeout.as_secs() as u32)
                .allowed_updates([AllowedUpdate::Message, AllowedUpdate::CallbackQuery]);
            let result = tokio::select! {
                () = stop.cancelled() => break,
                result = request.send() => result,
            };
            match result {
                Ok(updates) => {
                    adapter.services.health.beat();
                    backoff = adapter.poll_backoff;
                    for update in updates {
                        offset = offset.max(update.id.0 as i32 + 1);
                        adapter.handle(update).await;
                    }
                }
                Err(error) => {
                    let wait = match &error {
                        RequestError::RetryAfter(after) => after.duration().max(backoff),
                        _ => backoff,
                    };
                    tracing::warn!(%error, retry_in = ?wait, "telegram polling failed");
                    adapter.services.health.fail(format!("getUpdates: {error}"));
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(wait) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        adapter.confirm(offset).await;
        tracing::info!("telegram polling stopped");
    }

    /// Tells the server which updates were handled, so a restart does not see them again.
    async fn confirm(&self, offset: i32) {
        if offset == 0 {
            return;
        }
        let request = self.bot.get_updates().offset(offset).timeout(0).limit(1);
        if let Ok(Err(error)) = tokio::time::timeout(CONFIRM_WAIT, request.send()).await {
            tracing::warn!(%error, "could not confirm the last updates");
        }
    }

    async fn handle(self: &Arc<Self>, update: Update) {
        match update.kind {
            UpdateKind::Message(message) => {
                if let Some(addressed) = map_message(&message, &self.me) {
                    self.on_message(addressed).await;
                }
            }
            UpdateKind::CallbackQuery(query) => {
                let adapter = self.clone();
                self.services
                    .tracker
                    .spawn(async move { adapter.on_callback(query).await });
            }
            _ => {}
        }
    }

    async fn on_message(self: &Arc<Self>, addressed: Addressed) {
        let (chat, user) = (addressed.key.chat.as_str(), addressed.author.id.as_str());
        if !self.access.allows(chat, user) {
            tracing::info!(chat, "message from a chat or user not allowed");
            if self.access.refuse_now(chat) {
                self.notice(&addressed, REFUSAL.to_string());
            }
            return;
        }
        match addressed.action.clone() {
            Action::Prompt(text) => self.submit(&addressed, Content::Prompt(text), false),
            Action::Command(command) => {
                let may = command.changes_settings() && self.may_configure(&addressed).await;
                self.submit(&addressed, Content::Command(command), may);
            }
            Action::Help => self.notice(&addressed, commands::help_text(addressed.private)),
            Action::ModelMenu => {
                let adapter = self.clone();
                self.services
                    .tracker
                    .spawn(async move { adapter.model_menu(&addressed).await });
            }
            Action::EmptyAsk => self.notice(&addressed, "Ask me something: /ask <question>".into()),
            Action::Unknown(name) => self.notice(
                &addressed,
                format!("I don't know /{name} — /help lists my commands."),
            ),
        }
    }

    /// True in private chats, for listed admins and for the group's administrators.
    pub(super) async fn may_configure(&self, addressed: &Addressed) -> bool {
        let (chat, user) = (addressed.key.chat.as_str(), addressed.author.id.as_str());
        addressed.private || self.access.may_configure(&self.bot, chat, user).await
    }

    pub(super) fn incoming(&self, addressed: &Addressed, content: Content, may: bool) -> Incoming {
        Incoming {
            key: addressed.key.clone(),
            author: addressed.author.clone(),
            content,
            private: addressed.private,
            may_configure: addressed.private || may,
            reply_to: addressed.reply_to.clone(),
            received_at: std::time::Instant::now(),
        }
    }

    fn submit(&self, addressed: &Addressed, content: Content, may: bool) {
        let incoming = self.incoming(addressed, content, may);
        let platform: Arc<dyn Platform> = self.platform.clone();
        if let Err(error) = self.services.dispatcher.submit(incoming, platform) {
            tracing::warn!(%error, chat = %addressed.key, "message not queued");
        }
    }

    /// Sends a short answer outside the conversation's queue.
    pub(super) fn notice(&self, addressed: &Addressed, text: String) {
        let engine = self.services.engine.clone();
        let platform = self.platform.clone();
        let (key, reply_to) = (addressed.key.clone(), addressed.reply_to.clone());
        self.services.tracker.spawn(async move {
            engine
                .notify(platform.as_ref(), &key, reply_to.as_ref(), &text)
                .await;
        });
    }

    /// The model this chat uses now.
    pub(super) async fn current_model(&self, addressed: &Addressed) -> ModelName {
        let settings = self.services.engine.store().settings(&addressed.key).await;
        settings
            .ok()
            .and_then(|s| s.model)
            .filter(|m| self.models.contains(m))
            .unwrap_or_else(|| self.default_model.clone())
    }
}
