//! The /model keyboard: sending it, and switching the chat's model when a button is pressed.

use teloxide::RequestError;
use teloxide::payloads::{AnswerCallbackQuerySetters, EditMessageTextSetters, SendMessageSetters};
use teloxide::prelude::Requester;
use teloxide::types::{CallbackQuery, ChatId, MessageId, ParseMode, ReplyParameters, ThreadId};

use super::access::REFUSAL;
use super::format::escape;
use super::inbound::{Action, Addressed, chat_key};
use super::polling::Adapter;
use super::{api, commands};
use crate::engine::command::Command;
use crate::engine::deliver::{Delivery, Policy};
use crate::engine::event::{Author, ChatKey, Content, UserId};
use crate::engine::pace::Urgency;
use crate::engine::ports::{LengthUnit, Platform, PlatformError};
use crate::engine::split;

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
    pub(super) async fn on_callback(&self, query: CallbackQuery) {
        let answer = self.callback_answer(&query).await;
        let short = split::truncate(&answer, MAX_CALLBACK_TEXT, LengthUnit::Chars);
        let request = self.bot.answer_callback_query(query.id.clone()).text(short);
        if let Err(error) = request.await {
            tracing::warn!(%error, "could not answer a button press");
        }
    }

    async fn callback_answer(&self, query: &CallbackQuery) -> String {
        let Some(name) = query.data.as_deref().and_then(commands::picked_model) else {
            return "This button does nothing.".into();
        };
        let Some(message) = query.message.as_ref().and_then(|m| m.regular_message()) else {
            return "This menu is too old; send /model again.".into();
        };
        let command = Command::Model(Some(name.to_string()));
        let addressed = Addressed {
            key: chat_key(message),
            author: Author {
                id: UserId::new(query.from.id.0.to_string()),
                display_name: query.from.full_name(),
            },
            private: message.chat.is_private(),
            reply_to: None,
            action: Action::Command(command.clone()),
        };
        let (chat, user) = (addressed.key.chat.as_str(), addressed.author.id.as_str());
        if !self.access.allows(chat, user) {
            return REFUSAL.into();
        }
        let may = self.may_configure(&addressed).await;
        let incoming = self.incoming(&addressed, Content::Command(command.clone()), may);
        let answer = self.services.engine.run_command(&incoming, &command).await;
        if may {
            self.replace_keyboard(&addressed.key, message.id, &answer)
                .await;
        }
        answer
    }

    /// Replaces the keyboard message with the outcome of the press.
    async fn replace_keyboard(&self, key: &ChatKey, message: MessageId, text: &str) {
        let result = self
            .paced(key, || {
                let request = self
                    .bot
                    .edit_message_text(chat_id(key), message, escape(text));
                async move { request.parse_mode(ParseMode::Html).await.map(|_| ()) }
            })
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, chat = %key, "could not update the model keyboard");
        }
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
