//! The engine's [`Platform`] on Telegram: drafts in private chats (with a fallback to edits),
//! sendMessage and editMessageText elsewhere, HTML with a plain-text fallback.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use teloxide::payloads::{EditMessageTextSetters, SendChatActionSetters, SendMessageSetters};
use teloxide::prelude::Requester;
use teloxide::types::{ChatAction, ChatId, MessageId, ParseMode, ReplyParameters, ThreadId};
use teloxide::{Bot, RequestError};

use super::api::{self, SendMessageDraft};
use super::budget::Budget;
use super::{format, html};
use crate::engine::event::{ChatKey, MessageRef, PlatformKind};
use crate::engine::ports::{LengthUnit, Limits, Phase, Platform, PlatformError, Window};

/// Longest text after entity parsing, in UTF-16 units.
pub const MAX_LEN: usize = 4096;
/// How long Telegram shows "typing…" after one sendChatAction.
const TYPING_EVERY: Duration = Duration::from_secs(4);
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
    /// Private chats where drafts were refused: they stream with edits.
    no_drafts: Mutex<HashSet<i64>>,
    next_draft: AtomicI64,
    budget: Budget,
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
    /// A platform sending through `bot`, paced by `pace`.
    pub fn new(bot: Bot, pace: Pace) -> Self {
        Self {
            bot,
            pace,
            no_drafts: Mutex::new(HashSet::new()),
            next_draft: AtomicI64::new(1),
            budget: Budget::default(),
        }
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

    /// Sends the HTML form, then the plain form if Telegram cannot parse the HTML.
    async fn with_fallback<T, F, Fut>(&self, text: &Rendered, call: F) -> Result<T, RequestError>
    where
        F: Fn(String, Option<ParseMode>) -> Fut,
        Fut: Future<Output = Result<T, RequestError>>,
    {
        self.budget.acquire().await;
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
    ) -> Result<MessageRef, PlatformError> {
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
    ) -> Result<MessageRef, PlatformError> {
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
                async move { request.await }
            })
            .await;
        match result {
            Ok(_) => Ok(message.clone()),
            Err(error) if api::is_not_modified(&error) => Ok(message.clone()),
            Err(error) => Err(api::platform_error(error)),
        }
    }

    /// Streams `text` as draft `draft`; `None` when drafts are refused here.
    async fn draft(
        &self,
        target: Target,
        draft: i64,
        text: &Rendered,
    ) -> Option<Result<MessageRef, PlatformError>> {
        let result = self
            .with_fallback(text, |body, parse_mode| {
                let payload = SendMessageDraft {
                    chat_id: target.chat,
                    draft_id: draft,
                    text: body,
                    parse_mode,
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

#[async_trait]
impl Platform for TelegramPlatform {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Telegram
    }

    fn limits(&self, chat: &ChatKey) -> Limits {
        let group = Target::parse(chat).is_ok_and(|t| !t.private());
        Limits {
            max_len: MAX_LEN,
            unit: LengthUnit::Utf16,
            min_interval: self.pace.min_interval,
            window: group.then_some(self.pace.group_window),
            typing_every: TYPING_EVERY,
        }
    }

    async fn send(
        &self,
        chat: &ChatKey,
        reply_to: Option<&MessageRef>,
        text: &str,
        phase: Phase,
    ) -> Result<MessageRef, PlatformError> {
        let target = Target::parse(chat)?;
        let rendered = render(text, phase);
        if phase == Phase::Streaming && self.drafts_allowed(target) {
            let draft = self.next_draft.fetch_add(1, Ordering::Relaxed);
            if let Some(result) = self.draft(target, draft, &rendered).await {
                return result;
            }
        }
        self.send_message(target, reply_to, &rendered).await
    }

    async fn edit(
        &self,
        chat: &ChatKey,
        message: &MessageRef,
        text: &str,
        phase: Phase,
    ) -> Result<MessageRef, PlatformError> {
        let target = Target::parse(chat)?;
        let rendered = render(text, phase);
        let Some(draft) = message.as_str().strip_prefix(DRAFT) else {
            return self.edit_message(target, message, &rendered).await;
        };
        if phase == Phase::Streaming && self.drafts_allowed(target) {
            let draft = draft.parse().unwrap_or(1);
            if let Some(result) = self.draft(target, draft, &rendered).await {
                return result;
            }
        }
        // The final text of a draft (or a draft no longer allowed) becomes a real message.
        self.send_message(target, None, &rendered).await
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
}
