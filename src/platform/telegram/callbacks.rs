//! The /model keyboard: sending it, and switching the chat's model when a button is pressed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use teloxide::RequestError;
use teloxide::payloads::{AnswerCallbackQuerySetters, EditMessageTextSetters, SendMessageSetters};
use teloxide::prelude::Requester;
use teloxide::types::{CallbackQuery, ChatId, MessageId, ParseMode, ReplyParameters, ThreadId};

use super::access::REFUSAL;
use super::format::escape;
use super::inbound::{Action, Addressed};
use super::polling::Adapter;
use super::stops::pressed_by;
use super::{TelegramPlatform, api, commands};
use crate::engine::command::Command;
use crate::engine::controls::Press;
use crate::engine::deliver::{Delivery, Policy};
use crate::engine::event::{ChatKey, Content, MessageRef, PlatformKind};
use crate::engine::pace::Urgency;
use crate::engine::ports::{LengthUnit, Limits, Phase, Platform, PlatformError};
use crate::engine::split;
use crate::engine::turn::ADMINS_ONLY;

/// Telegram shows at most this many characters of a callback answer.
const MAX_CALLBACK_TEXT: usize = 200;

impl Adapter {
    /// Sends the current model with one button per model.
    pub(super) async fn model_menu(&self, addressed: &Addressed) {
        let current = self.current_model(addressed).await;
        let text = format!("Model: <b>{}</b>\nPick one:", escape(current.as_str()));
        let keyboard = commands::model_keyboard(&self.models, Some(current.as_str()));
        let result = self
            .paced(&addressed.key, || {
                let mut request = self
                    .bot
                    .send_message(chat_id(&addressed.key), text.clone())
                    .parse_mode(ParseMode::Html)
                    .reply_markup(keyboard.clone());
                if let Some(thread) = thread_id(&addressed.key) {
                    request = request.message_thread_id(thread);
                }
                if let Some(id) = message_id(addressed.reply_to.as_ref().map(|m| m.as_str())) {
                    request = request
                        .reply_parameters(ReplyParameters::new(id).allow_sending_without_reply());
                }
                async move { request.await.map(|_| ()) }
            })
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, chat = %addressed.key, "could not send the model keyboard");
        }
    }

    /// Answers a button press; a model button switches the chat's model.
    pub(super) async fn on_callback(&self, query: CallbackQuery, number: u64) {
        let answer = self.callback_answer(&query, number).await;
        let short = split::truncate(&answer, MAX_CALLBACK_TEXT, LengthUnit::Chars);
        let request = self.bot.answer_callback_query(query.id.clone()).text(short);
        if let Err(error) = request.await {
            tracing::warn!(%error, "could not answer a button press");
        }
    }

    async fn callback_answer(&self, query: &CallbackQuery, number: u64) -> String {
        match query.data.as_deref().and_then(Press::parse) {
            Some(Press::Stop(reply)) => return self.stop_pressed(query, reply).await,
            Some(redo) => return self.redo_pressed(query, redo, number).await,
            None => {}
        }
        let Some(name) = query.data.as_deref().and_then(commands::picked_model) else {
            return "This button does nothing.".into();
        };
        let command = Command::Model(Some(name.to_string()));
        let Some((addressed, message)) = pressed_by(query, Action::Command(command.clone())) else {
            return "This menu is too old; send /model again.".into();
        };
        let (chat, user) = (addressed.key.chat.as_str(), addressed.author.id.as_str());
        if !self.access.allows(chat, user) {
            return REFUSAL.into();
        }
        if !self.may_configure(&addressed).await {
            return ADMINS_ONLY.into();
        }
        // The switch takes its place in the chat's turn order, like a typed /model: its answer
        // replaces the keyboard when its turn comes.
        let keyboard = Arc::new(KeyboardReply {
            inner: self.platform.clone(),
            message,
            used: AtomicBool::new(false),
        });
        self.submit_to(&addressed, Content::Command(command), true, keyboard);
        format!("Switching to {name}…")
    }

    /// Runs `call` through the engine's one delivery path: within every level of the chat's
    /// pace, sitting out rate limits and outages as a notice does.
    async fn paced<F, Fut>(&self, key: &ChatKey, call: F) -> Result<(), PlatformError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), RequestError>>,
    {
        let pacer = self.services.engine.pacer(self.platform.kind());
        let limits = self.platform.limits(key);
        let delivery = Delivery::new(pacer, key, limits, Urgency::First, Policy::NOTICE);
        delivery
            .run(|| async { call().await.map_err(api::platform_error) })
            .await
    }
}

fn chat_id(key: &ChatKey) -> ChatId {
    ChatId(key.chat.as_str().parse().unwrap_or_default())
}

fn thread_id(key: &ChatKey) -> Option<ThreadId> {
    let id = message_id(key.thread.as_ref().map(|t| t.as_str()))?;
    Some(ThreadId(id))
}

fn message_id(id: Option<&str>) -> Option<MessageId> {
    id.and_then(|id| id.parse().ok()).map(MessageId)
}

/// Where the answer to a keyboard press goes: its first message replaces the keyboard message,
/// any further one is sent as usual.
struct KeyboardReply {
    inner: Arc<TelegramPlatform>,
    message: MessageId,
    used: AtomicBool,
}

#[async_trait]
impl Platform for KeyboardReply {
    fn kind(&self) -> PlatformKind {
        self.inner.kind()
    }

    fn limits(&self, chat: &ChatKey) -> Limits {
        self.inner.limits(chat)
    }

    async fn send(
        &self,
        chat: &ChatKey,
        reply_to: Option<&MessageRef>,
        text: &str,
        phase: Phase,
    ) -> Result<MessageRef, PlatformError> {
        if self.used.swap(true, Ordering::SeqCst) {
            return self.inner.send(chat, reply_to, text, phase).await;
        }
        let request = self
            .inner
            .bot()
            .edit_message_text(chat_id(chat), self.message, escape(text))
            .parse_mode(ParseMode::Html);
        match request.await {
            Ok(_) => Ok(MessageRef::new(self.message.0.to_string())),
            Err(error) => {
                self.used.store(false, Ordering::SeqCst);
                Err(api::platform_error(error))
            }
        }
    }

    async fn edit(
        &self,
        chat: &ChatKey,
        message: &MessageRef,
        text: &str,
        phase: Phase,
    ) -> Result<MessageRef, PlatformError> {
        self.inner.edit(chat, message, text, phase).await
    }

    async fn typing(&self, chat: &ChatKey) -> Result<(), PlatformError> {
        self.inner.typing(chat).await
    }
}
