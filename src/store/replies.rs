//! What the reply controls read and write: a chat's newest reply, reopening a reply for a
//! regenerate or a continue, and the alternatives it keeps.

use sqlx::SqlitePool;

use super::rows::{self, failed};
use crate::engine::event::ChatKey;
use crate::engine::ports::{LastReply, MessageRowId, ReplyStatus, StoreError};

const LAST_REPLY: &str = "SELECT m.id, m.status, m.content, m.finish_reason, m.platform_messages \
     FROM messages m JOIN conversations c ON c.id = m.conversation \
     WHERE c.platform = ?1 AND c.chat = ?2 AND c.thread = ?3 AND c.ended_at IS NULL \
     AND m.role = 'assistant' ORDER BY m.id DESC LIMIT 1";

/// The shown answer becomes the set's first, when the reply has no set yet.
const KEEP: &str = "INSERT INTO reply_alternatives (reply, position, content, finish_reason, created_at) \
     SELECT id, 0, content, finish_reason, ?2 \
     FROM messages WHERE id = ?1 AND role = 'assistant' AND status != 'streaming' \
     AND NOT EXISTS (SELECT 1 FROM reply_alternatives WHERE reply = ?1)";

const ADD: &str = "INSERT INTO reply_alternatives (reply, position, content, finish_reason, created_at) \
     VALUES (?1, (SELECT COUNT(*) FROM reply_alternatives WHERE reply = ?1), ?2, ?3, ?4) \
     RETURNING position";

const SET: &str = "UPDATE reply_alternatives SET content = ?3, finish_reason = ?4 \
     WHERE reply = ?1 AND position = ?2";

const SHOW: &str = "UPDATE messages SET content = a.content, finish_reason = a.finish_reason, \
     updated_at = ?3 FROM (SELECT content, finish_reason FROM reply_alternatives \
     WHERE reply = ?1 AND position = ?2) AS a \
     WHERE messages.id = ?1 AND messages.status != 'streaming' \
     RETURNING messages.content, messages.finish_reason";

const REOPEN: &str = "UPDATE messages SET status = 'streaming', updated_at = ?2, instance = ?3 \
     WHERE id = ?1 AND role = 'assistant' AND status != 'streaming'";

const ALTERNATIVES: &str =
    "SELECT content FROM reply_alternatives WHERE reply = ?1 ORDER BY position";

type LastRow = (i64, String, String, Option<String>, String);

/// The newest reply of `key`'s active conversation.
pub(super) async fn last(
    reads: &SqlitePool,
    key: &ChatKey,
) -> Result<Option<LastReply>, StoreError> {
    let row: Option<LastRow> = sqlx::query_as(LAST_REPLY)
        .bind(key.platform.as_str())
        .bind(key.chat.as_str())
        .bind(rows::thread_column(key))
        .fetch_optional(reads)
        .await
        .map_err(failed("read the last reply"))?;
    let Some((id, status, content, finish_reason, refs)) = row else {
        return Ok(None);
    };
    let status = ReplyStatus::parse(&status)
        .ok_or_else(|| StoreError::new(format!("reply {id} has an unknown status {status}")))?;
    Ok(Some(LastReply {
        id: MessageRowId(id),
        status,
        content,
        finish_reason,
        platform_messages: rows::refs_from_json(&refs)?,
    }))
}

/// Keeps the shown text as an alternative (with `keep`) and marks the reply streaming (by
/// `instance`, when instances coordinate), in one transaction.
pub(super) async fn reopen(
    writes: &SqlitePool,
    reply: MessageRowId,
    keep: bool,
    instance: Option<&str>,
) -> Result<(), StoreError> {
    let mut tx = writes
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(failed("reopen the reply: begin"))?;
    let now = rows::now_ms();
    if keep {
        sqlx::query(KEEP)
            .bind(reply.0)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(failed("keep the reply's alternative"))?;
    }
    let done = sqlx::query(REOPEN)
        .bind(reply.0)
        .bind(now)
        .bind(instance)
        .execute(&mut *tx)
        .await
        .map_err(failed("reopen the reply"))?;
    if done.rows_affected() != 1 {
        return Err(StoreError::unknown_reply(reply));
    }
    tx.commit()
        .await
        .map_err(failed("reopen the reply: commit"))
}

/// The reply's alternatives, oldest first.
pub(super) async fn alternatives(
    reads: &SqlitePool,
    reply: MessageRowId,
) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar(ALTERNATIVES)
        .bind(reply.0)
        .fetch_all(reads)
        .await
        .map_err(failed("read the reply's alternatives"))
}

/// Adds an answer to the reply's set; its position.
pub(super) async fn add(
    writes: &SqlitePool,
    reply: MessageRowId,
    content: &str,
    finish_reason: Option<&str>,
) -> Result<usize, StoreError> {
    let position: i64 = sqlx::query_scalar(ADD)
        .bind(reply.0)
        .bind(content)
        .bind(finish_reason)
        .bind(rows::now_ms())
        .fetch_one(writes)
        .await
        .map_err(failed("add an alternative"))?;
    Ok(usize::try_from(position).unwrap_or_default())
}

/// Replaces the set's answer `index`, if it has one.
pub(super) async fn set(
    writes: &SqlitePool,
    reply: MessageRowId,
    index: usize,
    content: &str,
    finish_reason: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(SET)
        .bind(reply.0)
        .bind(i64::try_from(index).unwrap_or(i64::MAX))
        .bind(content)
        .bind(finish_reason)
        .execute(writes)
        .await
        .map_err(failed("replace an alternative"))?;
    Ok(())
}

/// Makes the set's answer `index` the reply's shown text; it and its finish reason, or `None`
/// when the reply has no such answer (or still streams).
pub(super) async fn show(
    writes: &SqlitePool,
    reply: MessageRowId,
    index: usize,
) -> Result<Option<(String, Option<String>)>, StoreError> {
    sqlx::query_as(SHOW)
        .bind(reply.0)
        .bind(i64::try_from(index).unwrap_or(i64::MAX))
        .bind(rows::now_ms())
        .fetch_optional(writes)
        .await
        .map_err(failed("show an alternative"))
}
