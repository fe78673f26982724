//! Token usage totals per chat place and per user, summed over stored replies.

use sqlx::PgPool;

use super::super::rows::{self, TotalsRow, failed};
use crate::engine::event::{ChatKey, PlatformKind, UserId};
use crate::engine::ports::{StoreError, UsageTotals};

/// PostgreSQL sums BIGINTs as NUMERIC: each total is cast back.
const PER_CHAT: &str = "SELECT COUNT(m.id), COALESCE(SUM(m.prompt_tokens), 0)::BIGINT, \
     COALESCE(SUM(m.completion_tokens), 0)::BIGINT, COALESCE(SUM(m.cached_tokens), 0)::BIGINT, \
     COALESCE(SUM(m.reasoning_tokens), 0)::BIGINT \
     FROM messages m JOIN conversations c ON c.id = m.conversation \
     WHERE c.platform = $1 AND c.chat = $2 AND c.thread = $3 AND m.role = 'assistant'";

const PER_USER: &str = "SELECT COUNT(r.id), COALESCE(SUM(r.prompt_tokens), 0)::BIGINT, \
     COALESCE(SUM(r.completion_tokens), 0)::BIGINT, COALESCE(SUM(r.cached_tokens), 0)::BIGINT, \
     COALESCE(SUM(r.reasoning_tokens), 0)::BIGINT \
     FROM messages u \
     JOIN conversations c ON c.id = u.conversation \
     JOIN messages r ON r.in_reply_to = u.id \
     WHERE u.role = 'user' AND u.author_id = $2 AND c.platform = $1 AND r.role = 'assistant'";

/// Usage of every reply of this chat place, over all its conversations.
pub(super) async fn per_chat(pool: &PgPool, key: &ChatKey) -> Result<UsageTotals, StoreError> {
    let row: TotalsRow = sqlx::query_as(PER_CHAT)
        .bind(key.platform.as_str())
        .bind(key.chat.as_str())
        .bind(rows::thread_column(key))
        .fetch_one(pool)
        .await
        .map_err(failed("sum the chat's usage"))?;
    Ok(rows::totals(row))
}

/// Usage of the replies to one user's messages on one platform.
pub(super) async fn per_user(
    pool: &PgPool,
    platform: PlatformKind,
    user: &UserId,
) -> Result<UsageTotals, StoreError> {
    let row: TotalsRow = sqlx::query_as(PER_USER)
        .bind(platform.as_str())
        .bind(user.as_str())
        .fetch_one(pool)
        .await
        .map_err(failed("sum the user's usage"))?;
    Ok(rows::totals(row))
}
