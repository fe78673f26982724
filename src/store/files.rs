//! Files of user messages: stored once by content (`files`), named per message
//! (`message_files`), read back with the history they belong to.

use std::collections::HashMap;

use sqlx::{SqliteConnection, SqliteExecutor};

use super::rows::{self, failed};
use crate::engine::attachment::{FileContent, ImageType, StoredFile};
use crate::engine::event::ConversationId;
use crate::engine::ports::{MessageRowId, StoreError};

/// Stores a file's bytes unless a file with the same content is stored already.
const INSERT_FILE: &str = "INSERT INTO files (digest, kind, mime, size, data, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (digest) DO NOTHING";

const INSERT_LINK: &str =
    "INSERT INTO message_files (message, position, digest, name) VALUES (?1, ?2, ?3, ?4)";

/// The files of every message of a conversation, in message and position order.
const OF_CONVERSATION: &str = "SELECT l.message, l.name, f.kind, f.mime, f.data \
     FROM message_files l \
     JOIN files f ON f.digest = l.digest \
     JOIN messages m ON m.id = l.message \
     JOIN conversations c ON c.id = m.conversation \
     WHERE c.uuid = ?1 ORDER BY l.message, l.position";

/// One row of [`OF_CONVERSATION`].
type FileRow = (i64, String, String, String, Vec<u8>);

/// Stores `files` as the files of the user message `message`, in order; meant for the turn's
/// transaction.
pub(super) async fn add(
    tx: &mut SqliteConnection,
    message: MessageRowId,
    files: &[StoredFile],
) -> Result<(), StoreError> {
    for (position, file) in files.iter().enumerate() {
        let digest = file.digest();
        let kind = if file.is_image() { "image" } else { "text" };
        let bytes = file.bytes();
        sqlx::query(INSERT_FILE)
            .bind(&digest)
            .bind(kind)
            .bind(file.mime())
            .bind(i64::try_from(bytes.len()).unwrap_or(i64::MAX))
            .bind(bytes)
            .bind(rows::now_ms())
            .execute(&mut *tx)
            .await
            .map_err(failed("store a file"))?;
        sqlx::query(INSERT_LINK)
            .bind(message.0)
            .bind(i64::try_from(position).unwrap_or(i64::MAX))
            .bind(&digest)
            .bind(&file.name)
            .execute(&mut *tx)
            .await
            .map_err(failed("name a message's file"))?;
    }
    Ok(())
}

/// The files of every message of `conversation` that has any, by message row id.
pub(super) async fn of_conversation<'e>(
    db: impl SqliteExecutor<'e>,
    conversation: ConversationId,
) -> Result<HashMap<i64, Vec<StoredFile>>, StoreError> {
    let found: Vec<FileRow> = sqlx::query_as(OF_CONVERSATION)
        .bind(conversation.to_string())
        .fetch_all(db)
        .await
        .map_err(failed("read the conversation's files"))?;
    let mut files: HashMap<i64, Vec<StoredFile>> = HashMap::new();
    for (message, name, kind, mime, data) in found {
        files
            .entry(message)
            .or_default()
            .push(file(name, &kind, &mime, data)?);
    }
    Ok(files)
}

/// A stored file from its columns.
pub(super) fn file(
    name: String,
    kind: &str,
    mime: &str,
    data: Vec<u8>,
) -> Result<StoredFile, StoreError> {
    let content = match (kind, ImageType::from_mime(mime)) {
        ("image", Some(kind)) => FileContent::Image {
            kind,
            data: data.into(),
        },
        ("text", _) => FileContent::Text(
            String::from_utf8(data)
                .map_err(|e| StoreError::caused("a stored text file is not UTF-8", e))?
                .into(),
        ),
        _ => {
            return Err(StoreError::new(format!(
                "unknown file kind {kind:?} ({mime:?}) in the database"
            )));
        }
    };
    Ok(StoredFile { name, content })
}
