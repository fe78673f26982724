//! Conversations: get-or-create the active one of a chat place, reset it, read its history.

use sqlx::{SqliteExecutor, SqlitePool};

use super::rows::{self, failed};
use crate::engine::event::{ChatKey, ConversationId};
use crate::engine::ports::{Conversation, StoreError, StoredMessage};

const SELECT_ACTIVE: &str = "SELECT uuid FROM conversations \
     WHERE platform = ?1 AND chat = ?2 AND thread = ?3 AND ended_at IS NULL";

/// Does nothing when another caller created the active conversation first.
const INSERT_IF_NONE: &str = "INSERT INTO conversations (uuid, platform, chat, thread, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING";

const INSERT: &str = "INSERT INTO conversations (uuid, platform, chat, thread, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5)";

const END_ACTIVE: &str = "UPDATE conversations SET ended_at = ?4 \
     WHERE platform = ?1 AND chat = ?2 AND thread = ?3 AND ended_at IS NULL";

const HISTORY: &str = "SELECT m.role, m.author_name, m.content \
     FROM messages m JOIN conversations c ON c.id = m.conversation \
     WHERE c.uuid = ?1 AND (m.role = 'user' OR m.status IN ('complete', 'partial')) \
     ORDER BY m.id";

/// The active conversation of `key`, created on first sight; concurrent first calls agree.
pub(super) async fn current(pool: &SqlitePool, key: &ChatKey) -> Result<Conversation, StoreError> {
    if let Some(id) = active(pool, key).await? {
        return Ok(found(id, key));
    }
    insert(pool, INSERT_IF_NONE, ConversationId::random(), key).await?;
    let id = active(pool, key).await?.ok_or_else(|| {
        StoreError(format!(
            "the conversation of {key} vanished while it was created"
        ))
    })?;
    Ok(found(id, key))
}

/// Ends the active conversation of `key` (if any) and starts a new one, in one transaction.
pub(super) async fn reset(pool: &SqlitePool, key: &ChatKey) -> Result<Conversation, StoreError> {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(failed("reset: begin"))?;
    sqlx::query(END_ACTIVE)
        .bind(key.platform.as_str())
        .bind(key.chat.as_str())
        .bind(rows::thread_column(key))
        .bind(rows::now_ms())
        .execute(&mut *tx)
        .await
        .map_err(failed("reset: end the conversation"))?;
    let id = ConversationId::random();
    insert(&mut *tx, INSERT, id, key).await?;
    tx.commit().await.map_err(failed("reset: commit"))?;
    Ok(found(id, key))
}

/// User messages and complete or partial replies of a conversation, oldest first.
pub(super) async fn history(
    pool: &SqlitePool,
    conversation: ConversationId,
) -> Result<Vec<StoredMessage>, StoreError> {
    let found: Vec<(String, Option<String>, String)> = sqlx::query_as(HISTORY)
        .bind(conversation.to_string())
        .fetch_all(pool)
        .await
        .map_err(failed("history"))?;
    found
        .into_iter()
        .map(|(role, author_name, content)| {
            Ok(StoredMessage {
                role: rows::role(&role)?,
                author_name,
                content,
            })
        })
        .collect()
}

async fn active<'e>(
    db: impl SqliteExecutor<'e>,
    key: &ChatKey,
) -> Result<Option<ConversationId>, StoreError> {
    let uuid: Option<String> = sqlx::query_scalar(SELECT_ACTIVE)
        .bind(key.platform.as_str())
        .bind(key.chat.as_str())
        .bind(rows::thread_column(key))
        .fetch_optional(db)
        .await
        .map_err(failed("find the conversation"))?;
    uuid.as_deref().map(rows::conversation_id).transpose()
}

async fn insert<'e>(
    db: impl SqliteExecutor<'e>,
    sql: &'static str,
    id: ConversationId,
    key: &ChatKey,
) -> Result<(), StoreError> {
    sqlx::query(sql)
        .bind(id.to_string())
        .bind(key.platform.as_str())
        .bind(key.chat.as_str())
        .bind(rows::thread_column(key))
        .bind(rows::now_ms())
        .execute(db)
        .await
        .map_err(failed("create the conversation"))?;
    Ok(())
}

fn found(id: ConversationId, key: &ChatKey) -> Conversation {
    Conversation {
        id,
        key: key.clone(),
    }
}
