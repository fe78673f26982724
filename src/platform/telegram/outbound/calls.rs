//! The Bot API calls behind [`TelegramPlatform`]'s sends and edits: drafts, messages, edits,
//! each in HTML first and in plain text when Telegram cannot parse the HTML.

use std::sync::atomic::Ordering;

use teloxide::RequestError;
use teloxide::payloads::{
    EditMessageReplyMarkupSetters, EditMessageTextSetters, SendMessageSetters,
};
use teloxide::prelude::Requester;
use teloxide::types::{
    ChatId, InlineKeyboardButton, InlineKeyboardMarkup, MessageId, ParseMode, ReplyParameters,
    ThreadId,
};

use super::{DRAFT, Rendered, Target, TelegramPlatform, render};
use crate::engine::event::MessageRef;
use crate::engine::ports::{Button, Phase, PlatformError};
use crate::platform::telegram::api::{self, SendMessageDraft};

impl TelegramPlatform {
    /// A new message: a draft while streaming in a private chat, else sendMessage.
    pub(super) async fn send_to(
        &self,
        target: Target,
        reply_to: Option<&MessageRef>,
        text: &str,
        phase: Phase,
        buttons: &[Button],
    ) -> Result<MessageRef, PlatformError> {
        let rendered = render(text, phase);
        if phase == Phase::Streaming && self.drafts_allowed(target) {
            let draft = self.next_draft.fetch_add(1, Ordering::Relaxed);
            if let Some(result) = self.draft(target, draft, &rendered, buttons).await {
                return result;
            }
        }
        self.send_message(target, reply_to, &rendered, buttons)
            .await
    }

    /// A new text for `message`: the next draft, the final message of a draft, or an edit.
    pub(super) async fn edit_in(
        &self,
        target: Target,
        message: &MessageRef,
        text: &str,
        phase: Phase,
        buttons: &[Button],
    ) -> Result<MessageRef, PlatformError> {
        let rendered = render(text, phase);
        let Some(draft) = message.as_str().strip_prefix(DRAFT) else {
            return self.edit_message(target, message, &rendered, buttons).await;
        };
        if phase == Phase::Streaming && self.drafts_allowed(target) {
            let draft = draft.parse().unwrap_or(1);
            if let Some(result) = self.draft(target, draft, &rendered, buttons).await {
                return result;
            }
        }
        // The final text of a draft (or a draft no longer allowed) becomes a real message.
        self.send_message(target, None, &rendered, buttons).await
    }

    /// Sends the HTML form, then the plain form if Telegram cannot parse the HTML. The second
    /// call goes in the slot the engine granted the first: `html::parse` checks every text
    /// before it is sent, so Telegram refusing it is rare, and the bot-wide window the engine
    /// keeps is longer than Telegram's by a margin that absorbs it.
    async fn with_fallback<T, F, Fut>(&self, text: &Rendered, call: F) -> Result<T, RequestError>
    where
        F: Fn(String, Option<ParseMode>) -> Fut,
        Fut: Future<Output = Result<T, RequestError>>,
    {
        if let Some(html) = &text.html {
            match call(html.clone(), Some(ParseMode::Html)).await {
                Err(error) if api::is_parse_error(&error) => {
                    tracing::warn!(%error, "Telegram refused the HTML; sending plain text");
                }
                other => return other,
            }
        }
        call(text.plain.clone(), None).await
    }

    async fn send_message(
        &self,
        target: Target,
        reply_to: Option<&MessageRef>,
        text: &Rendered,
        buttons: &[Button],
    ) -> Result<MessageRef, PlatformError> {
        let markup = keyboard(buttons);
        let reply_to = reply_to
            .and_then(|m| m.as_str().parse().ok())
            .map(MessageId);
        let sent = self
            .with_fallback(text, |body, mode| {
                let mut request = self.bot.send_message(ChatId(target.chat), body);
                if let Some(mode) = mode {
                    request = request.parse_mode(mode);
                }
                if let Some(thread) = target.thread {
                    request = request.message_thread_id(ThreadId(MessageId(thread)));
                }
                if let Some(id) = reply_to {
                    request = request
                        .reply_parameters(ReplyParameters::new(id).allow_sending_without_reply());
                }
                if let Some(markup) = &markup {
                    request = request.reply_markup(markup.clone());
                }
                async move { request.await }
            })
            .await
            .map_err(api::platform_error)?;
        Ok(MessageRef::new(sent.id.0.to_string()))
    }

    async fn edit_message(
        &self,
        target: Target,
        message: &MessageRef,
        text: &Rendered,
        buttons: &[Button],
    ) -> Result<MessageRef, PlatformError> {
        let markup = keyboard(buttons);
        let id: i32 = message
            .as_str()
            .parse()
            .map_err(|_| PlatformError::MessageGone)?;
        let result = self
            .with_fallback(text, |body, mode| {
                let mut request =
                    self.bot
                        .edit_message_text(ChatId(target.chat), MessageId(id), body);
                if let Some(mode) = mode {
                    request = request.parse_mode(mode);
                }
                if let Some(markup) = &markup {
                    request = request.reply_markup(markup.clone());
                }
                async move { request.await }
            })
            .await;
        match result {
            Ok(_) => Ok(message.clone()),
            Err(error) if api::is_not_modified(&error) => Ok(message.clone()),
            Err(error) => Err(api::platform_error(error)),
        }
    }

    /// Leaves exactly `buttons` under `message` (editMessageReplyMarkup); "not modified" is
    /// success, and a draft has none to change.
    pub(super) async fn markup_of(
        &self,
        target: Target,
        message: &MessageRef,
        buttons: &[Button],
    ) -> Result<(), PlatformError> {
        let Ok(id) = message.as_str().parse::<i32>() else {
            return Ok(());
        };
        let mut request = self
            .bot
            .edit_message_reply_markup(ChatId(target.chat), MessageId(id));
        if let Some(markup) = keyboard(buttons) {
            request = request.reply_markup(markup);
        }
        match request.await {
            Ok(_) => Ok(()),
            Err(error) if api::is_not_modified(&error) => Ok(()),
            Err(error) => Err(api::platform_error(error)),
        }
    }

    /// Deletes one of the bot's messages (deleteMessage).
    pub(super) async fn delete_in(
        &self,
        target: Target,
        message: &MessageRef,
    ) -> Result<(), PlatformError> {
        let id: i32 = message
            .as_str()
            .parse()
            .map_err(|_| PlatformError::MessageGone)?;
        let request = self.bot.delete_message(ChatId(target.chat), MessageId(id));
        request.await.map(drop).map_err(api::platform_error)
    }

    /// Streams `text` as draft `draft`; `None` when drafts are refused here.
    async fn draft(
        &self,
        target: Target,
        draft: i64,
        text: &Rendered,
        buttons: &[Button],
    ) -> Option<Result<MessageRef, PlatformError>> {
        let can_stop = buttons.iter().any(|b| b.stops).then_some(true);
        let result = self
            .with_fallback(text, |body, parse_mode| {
                let payload = SendMessageDraft {
                    chat_id: target.chat,
                    draft_id: draft,
                    text: body,
                    parse_mode,
                    can_stop,
                };
                api::send_draft(&self.bot, payload)
            })
            .await;
        match result {
            Ok(()) => Some(Ok(MessageRef::new(format!("{DRAFT}{draft}")))),
            // A refusal of the method itself (an older server answers 404): edits from now on.
            Err(error) => match api::platform_error(error.clone()) {
                PlatformError::Rejected(_) => {
                    self.refuse_drafts(target, &error);
                    None
                }
                other => Some(Err(other)),
            },
        }
    }
}

/// The inline keyboard of `buttons`, one row; `None` for no buttons.
fn keyboard(buttons: &[Button]) -> Option<InlineKeyboardMarkup> {
    let row: Vec<InlineKeyboardButton> = buttons
        .iter()
        .map(|b| InlineKeyboardButton::callback(b.label.clone(), b.data.clone()))
        .collect();
    (!row.is_empty()).then(|| InlineKeyboardMarkup::new([row]))
}
