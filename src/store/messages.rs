//! Messages: user prompts as they arrive, replies from `streaming` to how they ended.

use sqlx::{SqliteExecutor, SqlitePool};

use super::rows::{self, failed};
use super::{conversations, files};
use crate::engine::event::{Author, ConversationId, MessageRef, PlatformKind};
use crate::engine::ports::{
    InterruptedReply, MessageRowId, ModelName, ReplyRecord, StoreError, TurnRows, TurnStart,
};

/// The failure reason stored on replies a restart interrupted.
pub const INTERRUPTED: &str = "interrupted: the bot restarted";

const INSERT_USER: &str = "INSERT INTO messages \
     (conversation, role, author_id, author_name, content, status, created_at, updated_at) \
     SELECT id, 'user', ?2, ?3, ?4, 'complete', ?5, ?5 FROM conversations WHERE uuid = ?1 \
     RETURNING id";

const INSERT_REPLY: &str = "INSERT INTO messages \
     (conversation, role, model, status, in_reply_to, created_at, updated_at, instance) \
     SELECT id, 'assistant', ?2, 'streaming', ?3, ?4, ?4, ?5 FROM conversations WHERE uuid = ?1 \
     RETURNING id";

const SET_PLATFORM_MESSAGES: &str = "UPDATE messages SET platform_messages = ?2, updated_at = ?3 \
     WHERE id = ?1 AND role = 'assistant'";

const SET_TEXT: &str = "UPDATE messages SET content = ?2, updated_at = ?3 \
     WHERE id = ?1 AND role = 'assistant' AND status = 'streaming'";

const FINISH: &str = "UPDATE messages SET content = ?2, status = ?3, failure_reason = ?4, \
     platform_messages = ?5, prompt_tokens = prompt_tokens + ?6, \
     completion_tokens = completion_tokens + ?7, cached_tokens = cached_tokens + ?8, \
     reasoning_tokens = reasoning_tokens + ?9, updated_at = ?10, finish_reason = ?11 \
     WHERE id = ?1 AND role = 'assistant'";

/// One statement, so a crash cannot leave some rows marked and others not.
const RECOVER: &str = "UPDATE messages SET status = 'partial', failure_reason = ?1, updated_at = ?2 \
     WHERE status = 'streaming' \
     AND conversation IN (SELECT id FROM conversations WHERE platform = ?3) \
     RETURNING id, platform_messages, content, \
     (SELECT platform FROM conversations c WHERE c.id = messages.conversation), \
     (SELECT chat FROM conversations c WHERE c.id = messages.conversation), \
     (SELECT thread FROM conversations c WHERE c.id = messages.conversation)";

/// Stores a turn's user message and its reply row (streamed by `instance`, when instances
/// coordinate), and first its conversation when the turn asks: one transaction, one commit.
pub(super) async fn start_turn(
    writes: &SqlitePool,
    turn: &TurnStart<'_>,
    instance: Option<&str>,
) -> Result<TurnRows, StoreError> {
    let mut tx = writes
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(failed("start the turn: begin"))?;
    let conversation = match turn.create_in {
        Some(key) => conversations::create_if_none(&mut tx, turn.conversation, key).await?,
        None => turn.conversation,
    };
    let user = add_user(&mut *tx, conversation, turn.author, turn.content).await?;
    files::add(&mut tx, user, turn.files).await?;
    let reply = start_reply(&mut *tx, conversation, user, turn.model, instance).await?;
    tx.commit()
        .await
        .map_err(failed("start the turn: commit"))?;
    Ok(TurnRows {
        conversation,
        reply,
    })
}

/// Stores a user message in `conversation`.
async fn add_user<'e>(
    db: impl SqliteExecutor<'e>,
    conversation: ConversationId,
    author: &Author,
    content: &str,
) -> Result<MessageRowId, StoreError> {
    let id: Option<i64> = sqlx::query_scalar(INSERT_USER)
        .bind(conversation.to_string())
        .bind(author.id.as_str())
        .bind(&author.display_name)
        .bind(content)
        .bind(rows::now_ms())
        .fetch_optional(db)
        .await
        .map_err(failed("store the user message"))?;
    id.map(MessageRowId)
        .ok_or_else(|| StoreError::unknown_conversation(conversation))
}

/// Creates a `streaming` reply to `in_reply_to`.
async fn start_reply<'e>(
    db: impl SqliteExecutor<'e>,
    conversation: ConversationId,
    in_reply_to: MessageRowId,
    model: &ModelName,
    instance: Option<&str>,
) -> Result<MessageRowId, StoreError> {
    let id: Option<i64> = sqlx::query_scalar(INSERT_REPLY)
        .bind(conversation.to_string())
        .bind(model.as_str())
        .bind(in_reply_to.0)
        .bind(rows::now_ms())
        .bind(instance)
        .fetch_optional(db)
        .await
        .map_err(failed("start the reply"))?;
    id.map(MessageRowId)
        .ok_or_else(|| StoreError::unknown_conversation(conversation))
}

/// Records the platform messages a reply occupies so far.
pub(super) async fn set_platform_messages(
    pool: &SqlitePool,
    reply: MessageRowId,
    messages: &[MessageRef],
) -> Result<(), StoreError> {
    let done = sqlx::query(SET_PLATFORM_MESSAGES)
        .bind(reply.0)
        .bind(rows::refs_to_json(messages)?)
        .bind(rows::now_ms())
        .execute(pool)
        .await
        .map_err(failed("record the reply's messages"))?;
    expect_one(done.rows_affected(), reply)
}

/// Records the text of a reply still streaming; a reply that already ended is left alone.
pub(super) async fn set_text(
    pool: &SqlitePool,
    reply: MessageRowId,
    text: &str,
) -> Result<(), StoreError> {
    sqlx::query(SET_TEXT)
        .bind(reply.0)
        .bind(text)
        .bind(rows::now_ms())
        .execute(pool)
        .await
        .map_err(failed("record the reply's text so far"))?;
    Ok(())
}

/// Records how a reply ended.
pub(super) async fn finish(
    pool: &SqlitePool,
    reply: MessageRowId,
    record: &ReplyRecord,
) -> Result<(), StoreError> {
    let usage = &record.usage;
    let done = sqlx::query(FINISH)
        .bind(reply.0)
        .bind(&record.content)
        .bind(record.status.as_str())
        .bind(record.reason.as_deref())
        .bind(rows::refs_to_json(&record.platform_messages)?)
        .bind(rows::to_column(usage.prompt_tokens))
        .bind(rows::to_column(usage.completion_tokens))
        .bind(rows::to_column(usage.cached_tokens))
        .bind(rows::to_column(usage.reasoning_tokens))
        .bind(rows::now_ms())
        .bind(record.finish_reason.as_deref())
        .execute(pool)
        .await
        .map_err(failed("finish the reply"))?;
    expect_one(done.rows_affected(), reply)
}

/// Marks every `streaming` reply `partial` (interrupted) and returns them, oldest first.
pub(super) async fn recover_interrupted(
    pool: &SqlitePool,
    platform: PlatformKind,
) -> Result<Vec<InterruptedReply>, StoreError> {
    let marked: Vec<MarkedRow> = sqlx::query_as(RECOVER)
        .bind(INTERRUPTED)
        .bind(rows::now_ms())
        .bind(platform.as_str())
        .fetch_all(pool)
        .await
        .map_err(failed("mark interrupted replies"))?;
    interrupted(marked)
}

/// The rows a marking statement returned: id, platform messages, content, platform, chat,
/// thread.
pub(super) type MarkedRow = (i64, String, String, String, String, String);

/// The interrupted replies of a marking statement's rows, oldest first.
pub(super) fn interrupted(marked: Vec<MarkedRow>) -> Result<Vec<InterruptedReply>, StoreError> {
    let mut replies = marked
        .into_iter()
        .map(|(id, refs, content, platform, chat, thread)| {
            Ok(InterruptedReply {
                id: MessageRowId(id),
                key: rows::chat_key(&platform, chat, thread)?,
                platform_messages: rows::refs_from_json(&refs)?,
                content,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    replies.sort_by_key(|reply| reply.id.0);
    Ok(replies)
}

fn expect_one(rows_affected: u64, reply: MessageRowId) -> Result<(), StoreError> {
    match rows_affected {
        1 => Ok(()),
        _ => Err(StoreError::unknown_reply(reply)),
    }
}
