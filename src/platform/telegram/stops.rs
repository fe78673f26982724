//! Reply controls from Telegram: the inline Stop button (groups, and private chats streamed
//! with edits), the draft's own stop control (`stopped_message_generation`), and Regenerate
//! and Continue, which take their place in the chat's turn order.

use serde_json::Value;
use teloxide::types::{CallbackQuery, MessageId};

use super::access::REFUSAL;
use super::inbound::{Action, Addressed, chat_key};
use super::long_poll::STOPPED_GENERATION;
use super::polling::Adapter;
use crate::engine::controls::{NOT_LAST, Press, StopAnswer};
use crate::engine::event::{Author, ChatKey, Content, PlatformKind, UserId};
use crate::engine::ports::MessageRowId;

/// The answer to a press the chat's full queue refused.
const BUSY: &str = "I'm busy — try again in a moment.";

impl Adapter {
    /// The answer to a press of Stop on the reply stored as `reply`: the asker stops it at
    /// once; anyone else only if they administer the chat (asked of Telegram then).
    pub(super) async fn stop_pressed(&self, query: &CallbackQuery, reply: MessageRowId) -> String {
        let Some((addressed, _)) = pressed_by(query, Action::Help) else {
            return StopAnswer::NotRunning.text().into();
        };
        let (key, user) = (&addressed.key, &addressed.author.id);
        if !self.access.allows(key.chat.as_str(), user.as_str()) {
            return REFUSAL.into();
        }
        let controls = self.services.engine.controls();
        let answer = match controls.stop(reply, key, user, false) {
            StopAnswer::NotYours if self.may_configure(&addressed).await => {
                controls.stop(reply, key, user, true)
            }
            answer => answer,
        };
        answer.text().into()
    }

    /// The answer to a press of Regenerate, Continue, ◀ or ▶: queued in the chat's turn order
    /// when it names the chat's last reply, else a short answer and nothing queued.
    pub(super) async fn redo_pressed(
        &self,
        query: &CallbackQuery,
        press: Press,
        number: u64,
    ) -> String {
        let Some((addressed, _)) = pressed_by(query, Action::Help) else {
            return NOT_LAST.into();
        };
        let (key, user) = (&addressed.key, &addressed.author.id);
        if !self.access.allows(key.chat.as_str(), user.as_str()) {
            return REFUSAL.into();
        }
        let engine = &self.services.engine;
        if !engine.is_last_reply(key, press.reply()).await {
            return NOT_LAST.into();
        }
        let command = match engine.controls().queue(press, number) {
            Ok(command) => command,
            Err(answer) => return answer.into(),
        };
        let content = Content::Command(command.clone());
        if !self.submit_to(&addressed, content, false, self.platform.clone()) {
            engine.controls().unqueued(&command);
            return BUSY.into();
        }
        match press {
            Press::Continue(_) => "Continuing…".into(),
            Press::Show(_, index) => format!("Showing answer {}.", index + 1),
            _ => "Regenerating…".into(),
        }
    }

    /// A user stopped a draft with Telegram's own control: stop what streams in that private
    /// chat (only its user sees the draft, and they asked for it).
    pub(super) fn generation_stopped(&self, update: &Value) {
        let stopped = &update[STOPPED_GENERATION];
        let Some(chat) = stopped["chat"]["id"].as_i64() else {
            return;
        };
        let key = ChatKey::new(PlatformKind::Telegram, chat.to_string());
        let key = match stopped["message_thread_id"].as_i64() {
            Some(thread) => key.with_thread(thread.to_string()),
            None => key,
        };
        let answer = self.services.engine.controls().stop_in(&key);
        tracing::info!(chat = %key, answer = ?answer, "the user stopped a draft");
    }
}

/// The press of a button under one of the bot's messages, as an addressed action of the user
/// who pressed, and the message; `None` when the message is too old for Telegram to say.
pub(super) fn pressed_by(query: &CallbackQuery, action: Action) -> Option<(Addressed, MessageId)> {
    let message = query.message.as_ref().and_then(|m| m.regular_message())?;
    let addressed = Addressed {
        key: chat_key(message),
        author: Author {
            id: UserId::new(query.from.id.0.to_string()),
            display_name: query.from.full_name(),
        },
        private: message.chat.is_private(),
        reply_to: None,
        attachments: Vec::new(),
        action,
    };
    Some((addressed, message.id))
}
