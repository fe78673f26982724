//! The engine's [`Platform`] on Telegram: drafts in private chats (with a fallback to edits),
//! sendMessage and editMessageText elsewhere, HTML with a plain-text fallback.

mod calls;

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use async_trait::async_trait;
use teloxide::payloads::SendChatActionSetters;
use teloxide::prelude::Requester;
use teloxide::types::{ChatAction, ChatId, MessageId, ThreadId};
use teloxide::{Bot, RequestError};

use super::api;
use super::files::Files;
use super::{format, html};
use crate::engine::attachment::FileRef;
use crate::engine::event::{ChatKey, MessageRef, PlatformKind, UserId};
use crate::engine::ports::{
    Button, FetchError, LengthUnit, Limits, Phase, Platform, PlatformError, Rate, Window,
};
use crate::instances::Share;

/// Longest text after entity parsing, in UTF-16 units.
pub const MAX_LEN: usize = 4096;
/// How long Telegram shows "typing…" after one sendChatAction.
const TYPING_EVERY: Duration = Duration::from_secs(4);
/// Messages (sends, edits, drafts) Telegram allows in one second over all chats.
pub const PER_SECOND: u32 = 30;
/// Message references of drafts start with this.
const DRAFT: &str = "draft:";

/// Pacing the platform reports to the engine.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Shortest gap between two sends or edits in one chat.
    pub min_interval: Duration,
    /// The rolling budget of a group.
    pub group_window: Window,
}

/// Telegram as the reply engine sees it.
pub struct TelegramPlatform {
    bot: Bot,
    pace: Pace,
    /// This instance's part of the bot-wide budget (all of it when alone).
    share: Share,
    files: Files,
    /// Private chats where drafts were refused: they stream with edits.
    no_drafts: Mutex<HashSet<i64>>,
    next_draft: AtomicI64,
}

/// Where a message goes.
#[derive(Debug, Clone, Copy)]
struct Target {
    chat: i64,
    thread: Option<i32>,
}

impl Target {
    fn parse(key: &ChatKey) -> Result<Self, PlatformError> {
        let chat = key.chat.as_str().parse().map_err(|_| not_ours(key))?;
        let thread = match &key.thread {
            Some(thread) => Some(thread.as_str().parse().map_err(|_| not_ours(key))?),
            None => None,
        };
        Ok(Self { chat, thread })
    }

    /// Private chats have positive ids (the user's), groups negative ones.
    fn private(self) -> bool {
        self.chat > 0
    }
}

fn not_ours(key: &ChatKey) -> PlatformError {
    PlatformError::Rejected(format!("{key} is not a Telegram chat"))
}

/// A text in both forms: HTML when it converts within the limits, else plain.
struct Rendered {
    html: Option<String>,
    plain: String,
}

fn render(markdown: &str, phase: Phase) -> Rendered {
    let html = match phase {
        Phase::Streaming => format::preview(markdown),
        Phase::Final => format::to_html(markdown),
    };
    let fits = html::parse(&html)
        .is_ok_and(|text| !text.trim().is_empty() && text.encode_utf16().count() <= MAX_LEN);
    Rendered {
        html: fits.then_some(html),
        plain: markdown.to_string(),
    }
}

impl TelegramPlatform {
    /// A platform sending through `bot`, paced by `pace`, downloading users' files with `files`.
    pub fn new(bot: Bot, pace: Pace, files: Files) -> Self {
        Self {
            bot,
            pace,
            share: Share::default(),
            files,
            no_drafts: Mutex::new(HashSet::new()),
            next_draft: AtomicI64::new(1),
        }
    }

    /// Among several instances, paced by this instance's `share` of the bot-wide budget.
    pub fn shared(self, share: Share) -> Self {
        Self { share, ..self }
    }

    /// The bot it sends with.
    pub fn bot(&self) -> &Bot {
        &self.bot
    }

    fn drafts_allowed(&self, target: Target) -> bool {
        let refused = self.no_drafts.lock().map(|set| set.contains(&target.chat));
        target.private() && target.thread.is_none() && !refused.unwrap_or(true)
    }

    fn refuse_drafts(&self, target: Target, error: &RequestError) {
        tracing::info!(chat = target.chat, %error, "drafts refused; streaming with edits here");
        if let Ok(mut set) = self.no_drafts.lock() {
            set.insert(target.chat);
        }
    }
}

#[async_trait]
impl Platform for TelegramPlatform {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Telegram
    }

    /// About one message a second in a chat; in a group, the group's budget shared by all its
    /// topics; about 30 messages a second over all chats (this instance's part of them, among
    /// several). Chat actions are not messages.
    fn limits(&self, chat: &ChatKey) -> Limits {
        let group = Target::parse(chat).is_ok_and(|t| !t.private());
        self.share.limit(Limits {
            max_len: MAX_LEN,
            unit: LengthUnit::Utf16,
            min_interval: self.pace.min_interval,
            window: None,
            shared: group.then_some(Rate {
                min_interval: self.pace.min_interval,
                window: Some(self.pace.group_window),
            }),
            bot: Some(Window {
                count: PER_SECOND,
                per: Duration::from_secs(1),
            }),
            typing_counts: false,
            typing_every: TYPING_EVERY,
        })
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

    /// Buttons become an inline keyboard; a draft shows Telegram's own stop control instead
    /// (`can_stop`), since a draft carries no keyboard.
    async fn send_with(
        &self,
        chat: &ChatKey,
        reply_to: Option<&MessageRef>,
        text: &str,
        phase: Phase,
        buttons: &[Button],
    ) -> Result<MessageRef, PlatformError> {
        let target = Target::parse(chat)?;
        self.send_to(target, reply_to, text, phase, buttons).await
    }

    /// An edit without buttons removes the keyboard (Telegram drops a markup not sent again).
    async fn edit_with(
        &self,
        chat: &ChatKey,
        message: &MessageRef,
        text: &str,
        phase: Phase,
        buttons: &[Button],
    ) -> Result<MessageRef, PlatformError> {
        let target = Target::parse(chat)?;
        self.edit_in(target, message, text, phase, buttons).await
    }

    /// editMessageReplyMarkup; a draft has no buttons to change.
    async fn set_buttons(
        &self,
        chat: &ChatKey,
        message: &MessageRef,
        buttons: &[Button],
    ) -> Result<(), PlatformError> {
        let target = Target::parse(chat)?;
        self.markup_of(target, message, buttons).await
    }

    async fn delete(&self, chat: &ChatKey, message: &MessageRef) -> Result<(), PlatformError> {
        let target = Target::parse(chat)?;
        self.delete_in(target, message).await
    }

    async fn typing(&self, chat: &ChatKey) -> Result<(), PlatformError> {
        let target = Target::parse(chat)?;
        let mut request = self
            .bot
            .send_chat_action(ChatId(target.chat), ChatAction::Typing);
        if let Some(thread) = target.thread {
            request = request.message_thread_id(ThreadId(MessageId(thread)));
        }
        request.await.map(|_| ()).map_err(api::platform_error)
    }

    async fn is_chat_admin(&self, chat: &ChatKey, user: &UserId) -> bool {
        super::access::chat_admin(&self.bot, chat.chat.as_str(), user.as_str()).await
    }

    /// `file` is a Telegram file id: getFile, then the download.
    async fn fetch(&self, file: &FileRef, limit: u64) -> Result<Vec<u8>, FetchError> {
        self.files.fetch(file.as_str(), limit).await
    }
}
