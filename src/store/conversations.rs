//! Conversations: get-or-create the active one of a chat place, reset it, read its history.

use sqlx::{SqliteExecutor, SqlitePool};

use super::rows::{self, failed};
use super::settings;
use crate::engine::event::{ChatKey, ConversationId};
use crate::engine::ports::{ChatSettings, Conversation, StoreError, StoredMessage, TurnContext};

const SELECT_ACTIVE: &str = "SELECT uuid FROM conversations \
     WHERE platform = ?1 AND chat = ?2 AND thread = ?3 AND ended_at IS NULL";

/// What the inserts return: the new conversation's uuid and its place's settings (a place may
/// have chosen them before it had a conversation), so a new place costs one statement.
macro_rules! insert_returning {
    ($conflict:literal) => {
        concat!(
            "INSERT INTO conversations (uuid, platform, chat, thread, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ",
            $conflict,
            "RETURNING uuid, \
             (SELECT model FROM chat_settings s \
               WHERE s.platform = ?2 AND s.chat = ?3 AND s.thread = ?4), \
             (SELECT system_prompt FROM chat_settings s \
               WHERE s.platform = ?2 AND s.chat = ?3 AND s.thread = ?4)"
        )
    };
}

/// Inserts nothing (and returns no row) when another caller created the active conversation
/// first.
const INSERT_IF_NONE: &str = insert_returning!("ON CONFLICT DO NOTHING ");

const INSERT: &str = insert_returning!("");

const END_ACTIVE: &str = "UPDATE conversations SET ended_at = ?4 \
     WHERE platform = ?1 AND chat = ?2 AND thread = ?3 AND ended_at IS NULL";

/// The active conversation of a place with its settings and history, one row per history
/// message (or one row with NULL message columns when it has none). The `thread` and `status`
/// conditions are those of [`SELECT_ACTIVE`] and [`HISTORY`].
const TURN_CONTEXT: &str = "SELECT c.uuid, s.model, s.system_prompt, m.role, m.author_name, m.content \
     FROM conversations c \
     LEFT JOIN chat_settings s \
       ON s.platform = c.platform AND s.chat = c.chat AND s.thread = c.thread \
     LEFT JOIN messages m \
       ON m.conversation = c.id AND (m.role = 'user' OR m.status IN ('complete', 'partial')) \
     WHERE c.platform = ?1 AND c.chat = ?2 AND c.thread = ?3 AND c.ended_at IS NULL \
     ORDER BY m.id";

const HISTORY: &str = "SELECT m.role, m.author_name, m.content \
     FROM messages m JOIN conversations c ON c.id = m.conversation \
     WHERE c.uuid = ?1 AND (m.role = 'user' OR m.status IN ('complete', 'partial')) \
     ORDER BY m.id";

/// The active conversation of `key`, created on first sight (through `writes`); concurrent first
/// calls agree.
pub(super) async fn current(
    reads: &SqlitePool,
    writes: &SqlitePool,
    key: &ChatKey,
) -> Result<Conversation, StoreError> {
    if let Some(id) = active(reads, key).await? {
        return Ok(found(id, key));
    }
    let id = match insert(writes, INSERT_IF_NONE, ConversationId::random(), key).await? {
        Some((id, _)) => id,
        // Another caller created it first.
        None => active(reads, key).await?.ok_or_else(|| vanished(key))?,
    };
    Ok(found(id, key))
}

/// One row of [`TURN_CONTEXT`].
type ContextRow = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// What a turn reads before its request, in one query for a known place; a new place costs one
/// insert more (through `writes`), which also returns the place's settings.
pub(super) async fn turn_context(
    reads: &SqlitePool,
    writes: &SqlitePool,
    key: &ChatKey,
) -> Result<TurnContext, StoreError> {
    if let Some(context) = read_context(reads, key).await? {
        return Ok(context);
    }
    let created = insert(writes, INSERT_IF_NONE, ConversationId::random(), key).await?;
    let Some((id, settings)) = created else {
        // Another turn created it first: read it as it is now.
        return read_context(reads, key).await?.ok_or_else(|| vanished(key));
    };
    Ok(TurnContext {
        conversation: found(id, key),
        settings,
        history: Vec::new(),
    })
}

async fn read_context(pool: &SqlitePool, key: &ChatKey) -> Result<Option<TurnContext>, StoreError> {
    let found_rows: Vec<ContextRow> = sqlx::query_as(TURN_CONTEXT)
        .bind(key.platform.as_str())
        .bind(key.chat.as_str())
        .bind(rows::thread_column(key))
        .fetch_all(pool)
        .await
        .map_err(failed("read the conversation"))?;
    let Some((uuid, model, system_prompt, ..)) = found_rows.first() else {
        return Ok(None);
    };
    let conversation = found(rows::conversation_id(uuid)?, key);
    let settings = settings::from_columns(model.clone(), system_prompt.clone());
    let history = found_rows
        .into_iter()
        .filter_map(|(_, _, _, role, author_name, content)| {
            Some(stored(&role?, author_name, content?))
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(TurnContext {
        conversation,
        settings,
        history,
    }))
}

fn vanished(key: &ChatKey) -> StoreError {
    StoreError(format!(
        "the conversation of {key} vanished while it was created"
    ))
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
        .map(|(role, author_name, content)| stored(&role, author_name, content))
        .collect()
}

/// A history message from its `role`, `author_name` and `content` columns.
fn stored(
    role: &str,
    author_name: Option<String>,
    content: String,
) -> Result<StoredMessage, StoreError> {
    Ok(StoredMessage {
        role: rows::role(role)?,
        author_name,
        content,
    })
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

/// Inserts conversation `id` as the active one of `key` with `sql` ([`INSERT`] or
/// [`INSERT_IF_NONE`]); returns its id and its place's settings, or `None` when the statement
/// inserted nothing.
async fn insert<'e>(
    db: impl SqliteExecutor<'e>,
    sql: &'static str,
    id: ConversationId,
    key: &ChatKey,
) -> Result<Option<(ConversationId, ChatSettings)>, StoreError> {
    let created: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(sql)
        .bind(id.to_string())
        .bind(key.platform.as_str())
        .bind(key.chat.as_str())
        .bind(rows::thread_column(key))
        .bind(rows::now_ms())
        .fetch_optional(db)
        .await
        .map_err(failed("create the conversation"))?;
    let Some((uuid, model, system_prompt)) = created else {
        return Ok(None);
    };
    let settings = settings::from_columns(model, system_prompt);
    Ok(Some((rows::conversation_id(&uuid)?, settings)))
}

fn found(id: ConversationId, key: &ChatKey) -> Conversation {
    Conversation {
        id,
        key: key.clone(),
    }
}
