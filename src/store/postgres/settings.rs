//! Per-chat settings: the model, system prompt and answers per request a chat place chose.

use sqlx::PgPool;

use super::super::rows::{self, failed};
use crate::engine::event::ChatKey;
use crate::engine::ports::{ChatSettings, ModelName, StoreError};

pub(super) use super::super::settings::from_columns;

const SELECT: &str = "SELECT model, system_prompt, n FROM chat_settings \
     WHERE platform = $1 AND chat = $2 AND thread = $3";

const UPSERT_MODEL: &str = "INSERT INTO chat_settings (platform, chat, thread, model, updated_at) \
     VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (platform, chat, thread) \
     DO UPDATE SET model = excluded.model, updated_at = excluded.updated_at";

const UPSERT_PROMPT: &str = "INSERT INTO chat_settings \
     (platform, chat, thread, system_prompt, updated_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (platform, chat, thread) \
     DO UPDATE SET system_prompt = excluded.system_prompt, updated_at = excluded.updated_at";

const UPSERT_N: &str = "INSERT INTO chat_settings (platform, chat, thread, n, updated_at) \
     VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (platform, chat, thread) \
     DO UPDATE SET n = excluded.n, updated_at = excluded.updated_at";

/// The settings of exactly this chat place (a thread does not inherit its chat's settings).
pub(super) async fn load(pool: &PgPool, key: &ChatKey) -> Result<ChatSettings, StoreError> {
    let row: Option<(Option<String>, Option<String>, Option<i64>)> = sqlx::query_as(SELECT)
        .bind(key.platform.as_str())
        .bind(key.chat.as_str())
        .bind(rows::thread_column(key))
        .fetch_optional(pool)
        .await
        .map_err(failed("read the chat settings"))?;
    let (model, system_prompt, n) = row.unwrap_or_default();
    Ok(from_columns(model, system_prompt, n))
}

/// Sets or clears the chat's answers per request.
pub(super) async fn set_n(pool: &PgPool, key: &ChatKey, n: Option<u32>) -> Result<(), StoreError> {
    sqlx::query(UPSERT_N)
        .bind(key.platform.as_str())
        .bind(key.chat.as_str())
        .bind(rows::thread_column(key))
        .bind(n.map(i64::from))
        .bind(rows::now_ms())
        .execute(pool)
        .await
        .map_err(failed("write the chat settings"))?;
    Ok(())
}

/// Sets or clears the chat's model.
pub(super) async fn set_model(
    pool: &PgPool,
    key: &ChatKey,
    model: Option<&ModelName>,
) -> Result<(), StoreError> {
    upsert(pool, UPSERT_MODEL, key, model.map(ModelName::as_str)).await
}

/// Sets or clears the chat's system prompt.
pub(super) async fn set_system_prompt(
    pool: &PgPool,
    key: &ChatKey,
    prompt: Option<&str>,
) -> Result<(), StoreError> {
    upsert(pool, UPSERT_PROMPT, key, prompt).await
}

async fn upsert(
    pool: &PgPool,
    sql: &'static str,
    key: &ChatKey,
    value: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(sql)
        .bind(key.platform.as_str())
        .bind(key.chat.as_str())
        .bind(rows::thread_column(key))
        .bind(value)
        .bind(rows::now_ms())
        .execute(pool)
        .await
        .map_err(failed("write the chat settings"))?;
    Ok(())
}
