//! The engine's `Store` port, implemented by [`PgStore`] over the query modules.

use async_trait::async_trait;

use super::{PgStore, conversations, messages, replies, settings, usage};
use crate::engine::event::{ChatKey, ConversationId, MessageRef, PlatformKind, UserId};
use crate::engine::ports::{
    ChatSettings, Conversation, InterruptedReply, LastReply, MessageRowId, ModelName, ReplyRecord,
    Store, StoreError, StoredMessage, TurnContext, TurnRows, TurnStart, UsageTotals,
};

#[async_trait]
impl Store for PgStore {
    async fn conversation(&self, key: &ChatKey) -> Result<Conversation, StoreError> {
        conversations::current(&self.pool, key).await
    }

    async fn turn_context(&self, key: &ChatKey) -> Result<TurnContext, StoreError> {
        conversations::turn_context(&self.pool, key).await
    }

    async fn reset(&self, key: &ChatKey) -> Result<Conversation, StoreError> {
        conversations::reset(&self.pool, key).await
    }

    async fn history(
        &self,
        conversation: ConversationId,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        conversations::history(&self.pool, conversation).await
    }

    async fn start_turn(&self, turn: &TurnStart<'_>) -> Result<TurnRows, StoreError> {
        messages::start_turn(&self.pool, turn, self.instance()).await
    }

    async fn set_reply_messages(
        &self,
        reply: MessageRowId,
        messages: &[MessageRef],
    ) -> Result<(), StoreError> {
        messages::set_platform_messages(&self.pool, reply, messages).await
    }

    async fn set_reply_text(&self, reply: MessageRowId, text: &str) -> Result<(), StoreError> {
        messages::set_text(&self.pool, reply, text).await
    }

    async fn finish_reply(
        &self,
        reply: MessageRowId,
        record: &ReplyRecord,
    ) -> Result<(), StoreError> {
        messages::finish(&self.pool, reply, record).await
    }

    async fn last_reply(&self, key: &ChatKey) -> Result<Option<LastReply>, StoreError> {
        replies::last(&self.pool, key).await
    }

    async fn reopen_reply(&self, reply: MessageRowId, keep: bool) -> Result<(), StoreError> {
        replies::reopen(&self.pool, reply, keep, self.instance()).await
    }

    async fn alternatives(&self, reply: MessageRowId) -> Result<Vec<String>, StoreError> {
        replies::alternatives(&self.pool, reply).await
    }

    async fn add_alternative(
        &self,
        reply: MessageRowId,
        content: &str,
        finish_reason: Option<&str>,
    ) -> Result<usize, StoreError> {
        replies::add(&self.pool, reply, content, finish_reason).await
    }

    async fn set_alternative(
        &self,
        reply: MessageRowId,
        index: usize,
        content: &str,
        finish_reason: Option<&str>,
    ) -> Result<(), StoreError> {
        replies::set(&self.pool, reply, index, content, finish_reason).await
    }

    async fn show_alternative(
        &self,
        reply: MessageRowId,
        index: usize,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        replies::show(&self.pool, reply, index).await
    }

    async fn settings(&self, key: &ChatKey) -> Result<ChatSettings, StoreError> {
        settings::load(&self.pool, key).await
    }

    async fn set_model(&self, key: &ChatKey, model: Option<&ModelName>) -> Result<(), StoreError> {
        settings::set_model(&self.pool, key, model).await
    }

    async fn set_system_prompt(
        &self,
        key: &ChatKey,
        prompt: Option<&str>,
    ) -> Result<(), StoreError> {
        settings::set_system_prompt(&self.pool, key, prompt).await
    }

    async fn set_n(&self, key: &ChatKey, n: Option<u32>) -> Result<(), StoreError> {
        settings::set_n(&self.pool, key, n).await
    }

    async fn chat_usage(&self, key: &ChatKey) -> Result<UsageTotals, StoreError> {
        usage::per_chat(&self.pool, key).await
    }

    async fn user_usage(
        &self,
        platform: PlatformKind,
        user: &UserId,
    ) -> Result<UsageTotals, StoreError> {
        usage::per_user(&self.pool, platform, user).await
    }

    async fn recover_interrupted(
        &self,
        platform: PlatformKind,
    ) -> Result<Vec<InterruptedReply>, StoreError> {
        messages::recover_interrupted(&self.pool, platform).await
    }
}
