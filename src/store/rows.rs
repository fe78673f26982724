//! Conversions between the engine's types and the columns they are stored in.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::engine::event::{ChatId, ChatKey, ConversationId, MessageRef, PlatformKind, ThreadId};
use crate::engine::ports::{Role, StoreError, Usage, UsageTotals};

/// Maps a sqlx error to a [`StoreError`] that says which operation failed, caused by it.
pub(super) fn failed(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::caused(what, e)
}

/// The current time in unix milliseconds.
pub(super) fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// The `thread` column of a key: a chat without a thread stores the empty string.
pub(super) fn thread_column(key: &ChatKey) -> &str {
    key.thread.as_ref().map_or("", ThreadId::as_str)
}

/// Rebuilds a [`ChatKey`] from its `platform`, `chat` and `thread` columns.
pub(super) fn chat_key(
    platform: &str,
    chat: String,
    thread: String,
) -> Result<ChatKey, StoreError> {
    let platform = PlatformKind::parse(platform)
        .ok_or_else(|| StoreError::new(format!("unknown platform {platform:?} in the database")))?;
    Ok(ChatKey {
        platform,
        chat: ChatId::new(chat),
        thread: (!thread.is_empty()).then(|| ThreadId::new(thread)),
    })
}

/// Parses a stored conversation uuid.
pub(super) fn conversation_id(text: &str) -> Result<ConversationId, StoreError> {
    ConversationId::parse(text).ok_or_else(|| {
        StoreError::new(format!(
            "malformed conversation id {text:?} in the database"
        ))
    })
}

/// Parses a stored message role.
pub(super) fn role(name: &str) -> Result<Role, StoreError> {
    match name {
        "user" => Ok(Role::User),
        "assistant" => Ok(Role::Assistant),
        other => Err(StoreError::new(format!(
            "unknown role {other:?} in the database"
        ))),
    }
}

/// Writes platform message references as a JSON array of strings.
pub(super) fn refs_to_json(refs: &[MessageRef]) -> Result<String, StoreError> {
    let texts: Vec<&str> = refs.iter().map(MessageRef::as_str).collect();
    serde_json::to_string(&texts)
        .map_err(|e| StoreError::caused("cannot encode platform message ids", e))
}

/// Reads a JSON array of platform message references.
pub(super) fn refs_from_json(text: &str) -> Result<Vec<MessageRef>, StoreError> {
    let texts: Vec<String> = serde_json::from_str(text)
        .map_err(|e| StoreError::caused("malformed platform message ids in the database", e))?;
    Ok(texts.into_iter().map(MessageRef::new).collect())
}

/// A token count as stored (SQLite integers are signed).
pub(super) fn to_column(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// A stored count back as unsigned; a negative value (never written) reads as zero.
pub(super) fn from_column(count: i64) -> u64 {
    u64::try_from(count).unwrap_or(0)
}

/// The columns of a usage query: replies, prompt, completion, cached, reasoning.
pub(super) type TotalsRow = (i64, i64, i64, i64, i64);

/// Turns a usage query's row into [`UsageTotals`].
pub(super) fn totals((replies, prompt, completion, cached, reasoning): TotalsRow) -> UsageTotals {
    UsageTotals {
        replies: from_column(replies),
        usage: Usage {
            prompt_tokens: from_column(prompt),
            completion_tokens: from_column(completion),
            cached_tokens: from_column(cached),
            reasoning_tokens: from_column(reasoning),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_survives_its_columns_with_and_without_a_thread() {
        let plain = ChatKey::new(PlatformKind::Telegram, "-100");
        let threaded = plain.clone().with_thread("7");
        for key in [plain, threaded] {
            let thread = thread_column(&key).to_owned();
            let back = chat_key(key.platform.as_str(), key.chat.to_string(), thread);
            assert_eq!(back.ok(), Some(key));
        }
    }

    #[test]
    fn message_refs_survive_their_json_form() {
        let refs = vec![MessageRef::new("1"), MessageRef::new("a\"b")];
        let json = refs_to_json(&refs).ok().unwrap_or_default();
        assert_eq!(refs_from_json(&json).ok(), Some(refs));
    }

    #[test]
    fn a_failed_query_keeps_the_sqlx_error_as_its_source() {
        let error = failed("read the chat settings")(sqlx::Error::RowNotFound);
        assert_eq!(error.to_string(), "database error: read the chat settings");
        let source = std::error::Error::source(&error).expect("the cause is kept");
        assert!(
            matches!(
                source.downcast_ref::<sqlx::Error>(),
                Some(sqlx::Error::RowNotFound)
            ),
            "{source:?}"
        );
        assert_eq!(
            error.chain().to_string(),
            format!(
                "database error: read the chat settings: {}",
                sqlx::Error::RowNotFound
            )
        );
    }

    #[test]
    fn unknown_platforms_and_roles_are_errors() {
        assert!(chat_key("irc", "x".into(), String::new()).is_err());
        assert!(role("system").is_err());
    }
}
