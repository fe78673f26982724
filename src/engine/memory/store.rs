//! An in-memory conversation store with the same contract as the SQLite one; the store suite in
//! `tests/it/store/suite.rs` runs against both.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::engine::attachment::StoredFile;
use crate::engine::event::{Author, ChatKey, ConversationId, MessageRef, PlatformKind, UserId};
use crate::engine::ports::{
    ChatSettings, Conversation, InterruptedReply, LastReply, MessageRowId, ModelName, ReplyRecord,
    ReplyStatus, Role, Store, StoreError, StoredMessage, TurnContext, TurnRows, TurnStart, Usage,
    UsageTotals,
};

#[derive(Debug, Clone)]
struct Row {
    conversation: ConversationId,
    role: Role,
    author: Option<Author>,
    content: String,
    files: Vec<StoredFile>,
    status: ReplyStatus,
    reason: Option<String>,
    in_reply_to: Option<MessageRowId>,
    platform_messages: Vec<MessageRef>,
    usage: Usage,
    finish_reason: Option<String>,
    /// The set of answers, by position (empty for one answer).
    alternatives: Vec<(String, Option<String>)>,
}

#[derive(Default)]
struct State {
    conversations: Vec<(Conversation, bool)>,
    rows: Vec<Row>,
    settings: Vec<(ChatKey, ChatSettings)>,
}

/// A `Store` in memory: for engine tests and benchmarks.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> Result<T, StoreError> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| StoreError::new("the memory store's lock is poisoned"))?;
        Ok(f(&mut state))
    }

    /// Every stored reply's record so far, oldest first (for assertions).
    pub fn replies(&self) -> Vec<(ReplyStatus, String, Option<String>)> {
        self.with(|s| {
            s.rows
                .iter()
                .filter(|r| r.role == Role::Assistant)
                .map(|r| (r.status, r.content.clone(), r.reason.clone()))
                .collect()
        })
        .unwrap_or_default()
    }
}

fn add_usage(total: &mut Usage, more: Usage) {
    total.prompt_tokens += more.prompt_tokens;
    total.completion_tokens += more.completion_tokens;
    total.cached_tokens += more.cached_tokens;
    total.reasoning_tokens += more.reasoning_tokens;
}

fn totals<'a>(rows: impl Iterator<Item = &'a Row>) -> UsageTotals {
    rows.fold(UsageTotals::default(), |mut t, r| {
        t.replies += 1;
        t.usage.prompt_tokens += r.usage.prompt_tokens;
        t.usage.completion_tokens += r.usage.completion_tokens;
        t.usage.cached_tokens += r.usage.cached_tokens;
        t.usage.reasoning_tokens += r.usage.reasoning_tokens;
        t
    })
}

impl State {
    fn find_active(&self, key: &ChatKey) -> Option<Conversation> {
        self.conversations
            .iter()
            .find(|(c, active)| *active && c.key == *key)
            .map(|(c, _)| c.clone())
    }

    fn active(&mut self, key: &ChatKey) -> Conversation {
        if let Some(conversation) = self.find_active(key) {
            return conversation;
        }
        let conversation = Conversation {
            id: ConversationId::random(),
            key: key.clone(),
        };
        self.conversations.push((conversation.clone(), true));
        conversation
    }

    fn history(&self, conversation: ConversationId) -> Vec<StoredMessage> {
        self.rows
            .iter()
            .filter(|r| r.conversation == conversation)
            .filter(|r| matches!(r.status, ReplyStatus::Complete | ReplyStatus::Partial))
            .map(|r| StoredMessage {
                role: r.role,
                author_name: r.author.as_ref().map(|a| a.display_name.clone()),
                content: r.content.clone(),
                files: r.files.clone(),
            })
            .collect()
    }

    fn key_of(&self, id: ConversationId) -> Option<&ChatKey> {
        self.conversations
            .iter()
            .find(|(c, _)| c.id == id)
            .map(|(c, _)| &c.key)
    }

    fn settings_mut(&mut self, key: &ChatKey) -> &mut ChatSettings {
        let index = match self.settings.iter().position(|(k, _)| k == key) {
            Some(index) => index,
            None => {
                self.settings.push((key.clone(), ChatSettings::default()));
                self.settings.len() - 1
            }
        };
        &mut self.settings[index].1
    }

    fn push(&mut self, row: Row) -> MessageRowId {
        self.rows.push(row);
        MessageRowId(self.rows.len() as i64)
    }

    /// The reply stored as `id`; a user message is not one.
    fn reply(&mut self, id: MessageRowId) -> Result<&mut Row, StoreError> {
        usize::try_from(id.0 - 1)
            .ok()
            .and_then(|i| self.rows.get_mut(i))
            .filter(|r| r.role == Role::Assistant)
            .ok_or_else(|| StoreError::unknown_reply(id))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn conversation(&self, key: &ChatKey) -> Result<Conversation, StoreError> {
        self.with(|s| s.active(key))
    }

    async fn reset(&self, key: &ChatKey) -> Result<Conversation, StoreError> {
        self.with(|s| {
            for (c, active) in &mut s.conversations {
                if c.key == *key {
                    *active = false;
                }
            }
            s.active(key)
        })
    }

    async fn history(
        &self,
        conversation: ConversationId,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.with(|s| s.history(conversation))
    }

    async fn turn_context(&self, key: &ChatKey) -> Result<TurnContext, StoreError> {
        self.with(|s| {
            let settings = s.settings_mut(key).clone();
            let Some(conversation) = s.find_active(key) else {
                return TurnContext {
                    conversation: Conversation {
                        id: ConversationId::random(),
                        key: key.clone(),
                    },
                    new: true,
                    settings,
                    history: Vec::new(),
                };
            };
            TurnContext {
                history: s.history(conversation.id),
                conversation,
                new: false,
                settings,
            }
        })
    }

    async fn start_turn(&self, turn: &TurnStart<'_>) -> Result<TurnRows, StoreError> {
        self.with(|s| {
            let conversation = match turn.create_in.map(|key| (key, s.find_active(key))) {
                Some((key, None)) => {
                    let created = Conversation {
                        id: turn.conversation,
                        key: key.clone(),
                    };
                    s.conversations.push((created, true));
                    turn.conversation
                }
                // Another turn created the place's conversation first.
                Some((_, Some(active))) => active.id,
                None => turn.conversation,
            };
            if s.key_of(conversation).is_none() {
                return Err(StoreError::unknown_conversation(conversation));
            }
            let user = s.push(Row {
                conversation,
                role: Role::User,
                author: Some(turn.author.clone()),
                content: turn.content.into(),
                files: turn.files.to_vec(),
                status: ReplyStatus::Complete,
                reason: None,
                in_reply_to: None,
                platform_messages: Vec::new(),
                usage: Usage::default(),
                finish_reason: None,
                alternatives: Vec::new(),
            });
            let reply = s.push(Row {
                conversation,
                role: Role::Assistant,
                author: None,
                content: String::new(),
                files: Vec::new(),
                status: ReplyStatus::Streaming,
                reason: None,
                in_reply_to: Some(user),
                platform_messages: Vec::new(),
                usage: Usage::default(),
                finish_reason: None,
                alternatives: Vec::new(),
            });
            Ok(TurnRows {
                conversation,
                reply,
            })
        })?
    }

    async fn set_reply_messages(
        &self,
        reply: MessageRowId,
        messages: &[MessageRef],
    ) -> Result<(), StoreError> {
        self.with(|s| {
            s.reply(reply)
                .map(|r| r.platform_messages = messages.to_vec())
        })?
    }

    async fn set_reply_text(&self, reply: MessageRowId, text: &str) -> Result<(), StoreError> {
        // A reply that already ended (or is not stored) is left alone.
        self.with(|s| {
            if let Ok(row) = s.reply(reply)
                && row.status == ReplyStatus::Streaming
            {
                row.content = text.to_string();
            }
        })
    }

    async fn finish_reply(
        &self,
        reply: MessageRowId,
        record: &ReplyRecord,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            s.reply(reply).map(|r| {
                r.content = record.content.clone();
                r.status = record.status;
                r.reason = record.reason.clone();
                r.platform_messages = record.platform_messages.clone();
                add_usage(&mut r.usage, record.usage);
                r.finish_reason = record.finish_reason.clone();
            })
        })?
    }

    async fn last_reply(&self, key: &ChatKey) -> Result<Option<LastReply>, StoreError> {
        self.with(|s| {
            let conversation = s.find_active(key)?.id;
            let rows = s.rows.iter().enumerate().rev();
            let mut replies = rows.filter(|(_, r)| r.conversation == conversation);
            let (index, row) = replies.find(|(_, r)| r.role == Role::Assistant)?;
            Some(LastReply {
                id: MessageRowId(index as i64 + 1),
                status: row.status,
                content: row.content.clone(),
                finish_reason: row.finish_reason.clone(),
                platform_messages: row.platform_messages.clone(),
            })
        })
    }

    async fn reopen_reply(&self, reply: MessageRowId, keep: bool) -> Result<(), StoreError> {
        self.with(|s| {
            let row = s.reply(reply)?;
            if row.status == ReplyStatus::Streaming {
                return Err(StoreError::unknown_reply(reply));
            }
            if keep && row.alternatives.is_empty() {
                let kept = (row.content.clone(), row.finish_reason.clone());
                row.alternatives.push(kept);
            }
            row.status = ReplyStatus::Streaming;
            Ok(())
        })?
    }

    async fn alternatives(&self, reply: MessageRowId) -> Result<Vec<String>, StoreError> {
        self.with(|s| {
            let row = s.reply(reply)?;
            Ok(row.alternatives.iter().map(|(c, _)| c.clone()).collect())
        })?
    }

    async fn add_alternative(
        &self,
        reply: MessageRowId,
        content: &str,
        finish_reason: Option<&str>,
    ) -> Result<usize, StoreError> {
        self.with(|s| {
            let row = s.reply(reply)?;
            let added = (content.to_string(), finish_reason.map(str::to_string));
            row.alternatives.push(added);
            Ok(row.alternatives.len() - 1)
        })?
    }

    async fn set_alternative(
        &self,
        reply: MessageRowId,
        index: usize,
        content: &str,
        finish_reason: Option<&str>,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            let row = s.reply(reply)?;
            if let Some(answer) = row.alternatives.get_mut(index) {
                *answer = (content.to_string(), finish_reason.map(str::to_string));
            }
            Ok(())
        })?
    }

    async fn show_alternative(
        &self,
        reply: MessageRowId,
        index: usize,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        self.with(|s| {
            let row = s.reply(reply)?;
            let shown = row.alternatives.get(index).cloned();
            let shown = shown.filter(|_| row.status != ReplyStatus::Streaming);
            if let Some((content, finish_reason)) = &shown {
                row.content.clone_from(content);
                row.finish_reason.clone_from(finish_reason);
            }
            Ok(shown)
        })?
    }

    async fn settings(&self, key: &ChatKey) -> Result<ChatSettings, StoreError> {
        self.with(|s| s.settings_mut(key).clone())
    }

    async fn set_model(&self, key: &ChatKey, model: Option<&ModelName>) -> Result<(), StoreError> {
        self.with(|s| s.settings_mut(key).model = model.cloned())
    }

    async fn set_n(&self, key: &ChatKey, n: Option<u32>) -> Result<(), StoreError> {
        self.with(|s| s.settings_mut(key).n = n)
    }

    async fn set_system_prompt(
        &self,
        key: &ChatKey,
        prompt: Option<&str>,
    ) -> Result<(), StoreError> {
        self.with(|s| s.settings_mut(key).system_prompt = prompt.map(str::to_string))
    }

    async fn chat_usage(&self, key: &ChatKey) -> Result<UsageTotals, StoreError> {
        self.with(|s| {
            totals(
                s.rows
                    .iter()
                    .filter(|r| r.role == Role::Assistant && s.key_of(r.conversation) == Some(key)),
            )
        })
    }

    async fn user_usage(
        &self,
        platform: PlatformKind,
        user: &UserId,
    ) -> Result<UsageTotals, StoreError> {
        self.with(|s| {
            let asked = |r: &Row| {
                r.in_reply_to
                    .and_then(|id| s.rows.get(usize::try_from(id.0 - 1).ok()?))
                    .and_then(|q| q.author.as_ref())
                    .is_some_and(|a| a.id == *user)
                    && s.key_of(r.conversation)
                        .is_some_and(|k| k.platform == platform)
            };
            totals(
                s.rows
                    .iter()
                    .filter(|r| r.role == Role::Assistant && asked(r)),
            )
        })
    }

    async fn recover_interrupted(
        &self,
        platform: PlatformKind,
    ) -> Result<Vec<InterruptedReply>, StoreError> {
        self.with(|s| {
            let on_platform: Vec<ConversationId> = s
                .conversations
                .iter()
                .filter(|(c, _)| c.key.platform == platform)
                .map(|(c, _)| c.id)
                .collect();
            let mut found = Vec::new();
            for (i, row) in s.rows.iter_mut().enumerate() {
                if row.status == ReplyStatus::Streaming && on_platform.contains(&row.conversation) {
                    row.status = ReplyStatus::Partial;
                    row.reason = Some("interrupted: the bot restarted".into());
                    let messages = row.platform_messages.clone();
                    found.push((i, row.conversation, messages, row.content.clone()));
                }
            }
            found
                .into_iter()
                .filter_map(|(i, conversation, platform_messages, content)| {
                    Some(InterruptedReply {
                        id: MessageRowId(i as i64 + 1),
                        key: s.key_of(conversation)?.clone(),
                        platform_messages,
                        content,
                    })
                })
                .collect()
        })
    }
}
