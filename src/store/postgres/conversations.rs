//! Conversations: get-or-create the active one of a chat place, reset it, read its history.

use sqlx::{PgConnection, PgExecutor, PgPool};

use super::super::rows::{self, failed};
use super::{files, settings};
use crate::engine::event::{ChatKey, ConversationId};
use crate::engine::ports::{Conversation, StoreError, StoredMessage, TurnContext};

const SELECT_ACTIVE: &str = "SELECT uuid FROM conversations \
     WHERE platform = $1 AND chat = $2 AND thread = $3 AND ended_at IS NULL";

/// Inserts nothing (and returns no row) when another caller created the active conversation
/// first; a caller whose insert races one in flight waits for it to commit or roll back.
const INSERT_IF_NONE: &str = "INSERT INTO conversations (uuid, platform, chat, thread, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING uuid";

const INSERT: &str = "INSERT INTO conversations (uuid, platform, chat, thread, created_at) \
     VALUES ($1, $2, $3, $4, $5) RETURNING uuid";

const END_ACTIVE: &str = "UPDATE conversations SET ended_at = $4 \
     WHERE platform = $1 AND chat = $2 AND thread = $3 AND ended_at IS NULL";

/// See the SQLite store's query of the same name: one row per history message, or one row of
/// NULLs past the settings when there is none.
const TURN_CONTEXT: &str = "SELECT c.uuid, s.model, s.system_prompt, s.n, m.role, m.author_name, m.content, \
     m.id, EXISTS (SELECT 1 FROM message_files l WHERE l.message = m.id) \
     FROM (SELECT $1::TEXT AS platform, $2::TEXT AS chat, $3::TEXT AS thread) k \
     LEFT JOIN conversations c \
       ON c.platform = k.platform AND c.chat = k.chat AND c.thread = k.thread \
       AND c.ended_at IS NULL \
     LEFT JOIN chat_settings s \
       ON s.platform = k.platform AND s.chat = k.chat AND s.thread = k.thread \
     LEFT JOIN messages m \
       ON m.conversation = c.id AND (m.role = 'user' OR m.status IN ('complete', 'partial')) \
     ORDER BY m.id";

const HISTORY: &str = "SELECT m.role, m.author_name, m.content, m.id, \
     EXISTS (SELECT 1 FROM message_files l WHERE l.message = m.id) \
     FROM messages m JOIN conversations c ON c.id = m.conversation \
     WHERE c.uuid = $1 AND (m.role = 'user' OR m.status IN ('complete', 'partial')) \
     ORDER BY m.id";

/// How often a reset retries when a concurrent reset of the same place committed first.
const RESET_ATTEMPTS: usize = 8;

/// The active conversation of `key`, created on first sight; concurrent first calls agree.
pub(super) async fn current(pool: &PgPool, key: &ChatKey) -> Result<Conversation, StoreError> {
    if let Some(id) = active(pool, key).await? {
        return Ok(found(id, key));
    }
    let id = match insert(pool, INSERT_IF_NONE, ConversationId::random(), key).await? {
        Some(id) => id,
        // Another caller created it first (and committed: the insert waited for it).
        None => active(pool, key).await?.ok_or_else(|| vanished(key))?,
    };
    Ok(found(id, key))
}

/// Stores `conversation` as the active one of `key` unless the place has one already; returns
/// the one that is active now. Meant for a transaction.
pub(super) async fn create_if_none(
    tx: &mut PgConnection,
    conversation: ConversationId,
    key: &ChatKey,
) -> Result<ConversationId, StoreError> {
    match insert(&mut *tx, INSERT_IF_NONE, conversation, key).await? {
        Some(id) => Ok(id),
        // Another turn created it first; read committed shows it to the next statement.
        None => active(&mut *tx, key).await?.ok_or_else(|| vanished(key)),
    }
}

/// One row of [`TURN_CONTEXT`].
type ContextRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<bool>,
);

/// One message of a history: role, author name, content, row id, whether it has files.
type HistoryRow = (String, Option<String>, String, i64, bool);

/// What a turn reads before its request, in one query (two when the conversation has files); a
/// place without a conversation gets a fresh id, stored later by the turn's first write.
pub(super) async fn turn_context(pool: &PgPool, key: &ChatKey) -> Result<TurnContext, StoreError> {
    let found_rows: Vec<ContextRow> = sqlx::query_as(TURN_CONTEXT)
        .bind(key.platform.as_str())
        .bind(key.chat.as_str())
        .bind(rows::thread_column(key))
        .fetch_all(pool)
        .await
        .map_err(failed("read the conversation"))?;
    let Some((uuid, model, system_prompt, n, ..)) = found_rows.first() else {
        return Err(StoreError::new(format!("no context row for {key}")));
    };
    let settings = settings::from_columns(model.clone(), system_prompt.clone(), *n);
    let Some(uuid) = uuid else {
        return Ok(TurnContext {
            conversation: found(ConversationId::random(), key),
            new: true,
            settings,
            history: Vec::new(),
        });
    };
    let conversation = found(rows::conversation_id(uuid)?, key);
    let messages: Vec<HistoryRow> = found_rows
        .into_iter()
        .filter_map(|(_, _, _, _, role, author_name, content, id, has_files)| {
            Some((role?, author_name, content?, id?, has_files?))
        })
        .collect();
    let history = with_files(pool, conversation.id, messages).await?;
    Ok(TurnContext {
        conversation,
        new: false,
        settings,
        history,
    })
}

fn vanished(key: &ChatKey) -> StoreError {
    StoreError::new(format!(
        "the conversation of {key} vanished while it was created"
    ))
}

/// Ends the active conversation of `key` (if any) and starts a new one, in one transaction.
/// Two resets of one place at once both succeed, one after the other, as SQLite's single writer
/// has them: the one that finds the other's new conversation committed under it retries.
pub(super) async fn reset(pool: &PgPool, key: &ChatKey) -> Result<Conversation, StoreError> {
    let mut attempt = 1;
    loop {
        match reset_once(pool, key).await {
            Err(error) if attempt < RESET_ATTEMPTS && super::is_unique_violation(&error) => {
                attempt += 1
            }
            result => return result.map_err(failed("reset")),
        }
    }
}

async fn reset_once(pool: &PgPool, key: &ChatKey) -> Result<Conversation, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(END_ACTIVE)
        .bind(key.platform.as_str())
        .bind(key.chat.as_str())
        .bind(rows::thread_column(key))
        .bind(rows::now_ms())
        .execute(&mut *tx)
        .await?;
    let id = ConversationId::random();
    sqlx::query(INSERT)
        .bind(id.to_string())
        .bind(key.platform.as_str())
        .bind(key.chat.as_str())
        .bind(rows::thread_column(key))
        .bind(rows::now_ms())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(found(id, key))
}

/// User messages and complete or partial replies of a conversation, oldest first.
pub(super) async fn history(
    pool: &PgPool,
    conversation: ConversationId,
) -> Result<Vec<StoredMessage>, StoreError> {
    let found: Vec<HistoryRow> = sqlx::query_as(HISTORY)
        .bind(conversation.to_string())
        .fetch_all(pool)
        .await
        .map_err(failed("history"))?;
    with_files(pool, conversation, found).await
}

/// The history messages of `rows`, with their files read when any has some.
async fn with_files(
    pool: &PgPool,
    conversation: ConversationId,
    messages: Vec<HistoryRow>,
) -> Result<Vec<StoredMessage>, StoreError> {
    let mut files = if messages.iter().any(|row| row.4) {
        files::of_conversation(pool, conversation).await?
    } else {
        Default::default()
    };
    messages
        .into_iter()
        .map(|(role, author_name, content, id, _)| {
            Ok(StoredMessage {
                role: rows::role(&role)?,
                author_name,
                content,
                files: files.remove(&id).unwrap_or_default(),
            })
        })
        .collect()
}

async fn active<'e>(
    db: impl PgExecutor<'e>,
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
/// [`INSERT_IF_NONE`]); returns its id, or `None` when the statement inserted nothing.
async fn insert<'e>(
    db: impl PgExecutor<'e>,
    sql: &'static str,
    id: ConversationId,
    key: &ChatKey,
) -> Result<Option<ConversationId>, StoreError> {
    let created: Option<String> = sqlx::query_scalar(sql)
        .bind(id.to_string())
        .bind(key.platform.as_str())
        .bind(key.chat.as_str())
        .bind(rows::thread_column(key))
        .bind(rows::now_ms())
        .fetch_optional(db)
        .await
        .map_err(failed("create the conversation"))?;
    created.as_deref().map(rows::conversation_id).transpose()
}

fn found(id: ConversationId, key: &ChatKey) -> Conversation {
    Conversation {
        id,
        key: key.clone(),
    }
}
