//! The engine's `Store` port, implemented by [`SqliteStore`] over the query modules.

use async_trait::async_trait;

use super::{SqliteStore, conversations, messages, replies, settings, usage};
use crate::engine::event::{ChatKey, ConversationId, MessageRef, PlatformKind, UserId};
use crate::engine::ports::{
    ChatSettings, Conversation, InterruptedReply, LastReply, MessageRowId, ModelName, ReplyRecord,
    Store, StoreError, StoredMessage, TurnContext, TurnRows, TurnStart, UsageTotals,
};

#[async_trait]
impl Store for SqliteStore {
    async fn conversation(&self, key: &ChatKey) -> Result<Conversation, StoreError> {
        conversations::current(&self.pools.reads, &self.pools.writes, key).await
    }

    async fn turn_context(&self, key: &ChatKey) -> Result<TurnContext, StoreError> {
        conversations::turn_context(&self.pools.reads, key).await
    }

    async fn reset(&self, key: &ChatKey) -> Result<Conversation, StoreError> {
        conversations::reset(&self.pools.writes, key).await
    }

    async fn history(
        &self,
        conversation: ConversationId,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        conversations::history(&self.pools.reads, conversation).await
    }

    async fn start_turn(&self, turn: &TurnStart<'_>) -> Result<TurnRows, StoreError> {
        messages::start_turn(&self.pools.writes, turn, self.instance()).await
    }

    async fn set_reply_messages(
        &self,
        reply: MessageRowId,
        messages: &[MessageRef],
    ) -> Result<(), StoreError> {
        messages::set_platform_messages(&self.pools.writes, reply, messages).await
    }

    async fn set_reply_text(&self, reply: MessageRowId, text: &str) -> Result<(), StoreError> {
        messages::set_text(&self.pools.writes, reply, text).await
    }

    async fn finish_reply(
        &self,
        reply: MessageRowId,
        record: &ReplyRecord,
    ) -> Result<(), StoreError> {
        messages::finish(&self.pools.writes, reply, record).await
    }

    async fn last_reply(&self, key: &ChatKey) -> Result<Option<LastReply>, StoreError> {
        replies::last(&self.pools.reads, key).await
    }

    async fn reopen_reply(&self, reply: MessageRowId, keep: bool) -> Result<(), StoreError> {
        replies::reopen(&self.pools.writes, reply, keep, self.instance()).await
    }

    async fn alternatives(&self, reply: MessageRowId) -> Result<Vec<String>, StoreError> {
        replies::alternatives(&self.pools.reads, reply).await
    }

    async fn add_alternative(
        &self,
        reply: MessageRowId,
        content: &str,
        finish_reason: Option<&str>,
    ) -> Result<usize, StoreError> {
        replies::add(&self.pools.writes, reply, content, finish_reason).await
    }

    async fn set_alternative(
        &self,
        reply: MessageRowId,
        index: usize,
        content: &str,
        finish_reason: Option<&str>,
    ) -> Result<(), StoreError> {
        replies::set(&self.pools.writes, reply, index, content, finish_reason).await
    }

    async fn show_alternative(
        &self,
        reply: MessageRowId,
        index: usize,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        replies::show(&self.pools.writes, reply, index).await
    }

    async fn settings(&self, key: &ChatKey) -> Result<ChatSettings, StoreError> {
        settings::load(&self.pools.reads, key).await
    }

    async fn set_model(&self, key: &ChatKey, model: Option<&ModelName>) -> Result<(), StoreError> {
        settings::set_model(&self.pools.writes, key, model).await
    }

    async fn set_system_prompt(
        &self,
        key: &ChatKey,
        prompt: Option<&str>,
    ) -> Result<(), StoreError> {
        settings::set_system_prompt(&self.pools.writes, key, prompt).await
    }

    async fn set_n(&self, key: &ChatKey, n: Option<u32>) -> Result<(), StoreError> {
        settings::set_n(&self.pools.writes, key, n).await
    }

    async fn chat_usage(&self, key: &ChatKey) -> Result<UsageTotals, StoreError> {
        usage::per_chat(&self.pools.reads, key).await
    }

    async fn user_usage(
        &self,
        platform: PlatformKind,
        user: &UserId,
    ) -> Result<UsageTotals, StoreError> {
        usage::per_user(&self.pools.reads, platform, user).await
    }

    async fn recover_interrupted(
        &self,
        platform: PlatformKind,
    ) -> Result<Vec<InterruptedReply>, StoreError> {
        messages::recover_interrupted(&self.pools.writes, platform).await
    }
}
