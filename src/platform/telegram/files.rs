//! Attachments on Telegram: what a message brings along (its photo or document, the kinds not
//! read), and downloading a file: `getFile`, then `/file/bot<token>/<file_path>` with a size cap
//! and timeouts. The file URL holds the bot token: it is built here and never leaves.

use teloxide::prelude::Requester;
use teloxide::types::{FileId, FileMeta, Message};
use teloxide::{ApiError, Bot, RequestError};

use crate::engine::attachment::{Attachment, AttachmentKind, FileRef};
use crate::engine::ports::FetchError;
use crate::platform::download;

/// What Telegram lets a bot download through the Bot API (getFile refuses larger files).
pub const BOT_DOWNLOAD_LIMIT: u64 = 20 * 1000 * 1000;

/// The files a message brings: a photo (its largest size), a document, or one line's worth
/// for a kind Parley does not read.
pub fn attachments(message: &Message) -> Vec<Attachment> {
    let file = |name: String, kind, mime: Option<String>, meta: &FileMeta| Attachment {
        name,
        kind,
        mime,
        // teloxide reads a missing `file_size` as u32::MAX.
        size: (meta.size != u32::MAX).then_some(u64::from(meta.size)),
        source: FileRef::new(meta.id.0.clone()),
    };
    let unreadable = |what, meta: &FileMeta| {
        let name = what_name(what);
        file(name, AttachmentKind::Unreadable(what), None, meta)
    };
    if let Some(largest) = message.photo().and_then(|sizes| sizes.last()) {
        let name = "photo.jpg".to_string();
        return vec![file(name, AttachmentKind::Photo, None, &largest.file)];
    }
    if let Some(document) = message.document() {
        let name = document.file_name.clone().unwrap_or_else(|| "file".into());
        let mime = document.mime_type.as_ref().map(ToString::to_string);
        return vec![file(name, AttachmentKind::File, mime, &document.file)];
    }
    let kinds = [
        message.voice().map(|v| ("voice messages", &v.file)),
        message.video_note().map(|v| ("video messages", &v.file)),
        message.video().map(|v| ("videos", &v.file)),
        message.animation().map(|a| ("animations", &a.file)),
        message.audio().map(|a| ("audio files", &a.file)),
        message.sticker().map(|s| ("stickers", &s.file)),
    ];
    kinds
        .into_iter()
        .flatten()
        .take(1)
        .map(|(what, meta)| unreadable(what, meta))
        .collect()
}

/// A name for a file of a kind that has none.
fn what_name(what: &str) -> String {
    what.trim_end_matches('s').replace(' ', "-")
}

/// Downloads the bot's files. Holds the bot token inside its URL: never printed (no `Debug`).
pub struct Files {
    bot: Bot,
    client: reqwest::Client,
    /// `{api_url}/file/bot{token}/`.
    root: reqwest::Url,
}

impl Files {
    /// The files of the bot `token` on the Bot API server `api_url`.
    pub fn new(bot: Bot, token: &str, api_url: &str) -> Result<Self, String> {
        let base = reqwest::Url::parse(api_url).map_err(|e| e.to_string())?;
        let root = base
            .join(&format!("/file/bot{token}/"))
            .map_err(|_| "the API URL does not take a file path".to_string())?;
        let client = download::client()?;
        Ok(Self { bot, client, root })
    }

    /// The file with id `id`, at most `limit` bytes: its size from getFile is checked first.
    pub async fn fetch(&self, id: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        let file = self.bot.get_file(FileId(id.to_string())).await;
        let file = file.map_err(get_file_error)?;
        if file.meta.size != u32::MAX && u64::from(file.meta.size) > limit {
            return Err(FetchError::TooLarge(limit));
        }
        // A path is relative to the bot's file root; a leading slash would leave it.
        let path = file.path.trim_start_matches('/');
        let url = self
            .root
            .join(path)
            .map_err(|_| FetchError::Failed("getFile gave an unusable file path".into()))?;
        download::get(&self.client, url, limit).await
    }
}

/// getFile's refusal of a file over the bot limit is a size problem; the rest say what failed.
/// teloxide keeps the token out of its errors.
fn get_file_error(error: RequestError) -> FetchError {
    match error {
        RequestError::Api(ApiError::Unknown(text)) if text.contains("file is too big") => {
            FetchError::TooLarge(BOT_DOWNLOAD_LIMIT)
        }
        other => FetchError::Failed(format!("getFile: {other}")),
    }
}
