//! Reading a message's attachments at its turn: which kinds are read, the size limits (checked
//! before downloading where the platform says the size, and while downloading), what the bytes
//! are, and the one short line each problem gets.

use futures_util::future::join_all;

use super::sniff::{self, ImageType};
use super::{Attachment, AttachmentKind, StoredFile, human_size};
use crate::engine::ports::{FetchError, ModelName, Platform};

/// The largest files read, per kind (`attachments.max_image_bytes`, `max_text_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachmentLimits {
    /// The largest image, in bytes.
    pub max_image_bytes: u64,
    /// The largest text file, in bytes.
    pub max_text_bytes: u64,
}

/// Whether the chat's model reads images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSupport {
    /// It does (`llm.image_models` lists it).
    Reads,
    /// It does not; `suggest` is a model the chat may switch to that does.
    Cannot {
        /// The chat's model.
        model: ModelName,
        /// A model of `llm.models` that reads images, if any.
        suggest: Option<ModelName>,
    },
}

impl ImageSupport {
    fn check(&self) -> Result<(), String> {
        match self {
            Self::Reads => Ok(()),
            Self::Cannot {
                model,
                suggest: Some(other),
            } => Err(format!(
                "{model} cannot read images — switch with /model {other} and send it again."
            )),
            Self::Cannot { model, .. } => Err(format!(
                "{model} cannot read images, and no model of this bot can."
            )),
        }
    }
}

/// What a message's attachments gave: the files read, and one line per problem.
#[derive(Debug, Default)]
pub struct Read {
    /// The files the model gets, in the message's order.
    pub files: Vec<StoredFile>,
    /// Short lines for the chat, one per distinct problem.
    pub problems: Vec<String>,
}

/// What an attachment is expected to be before its bytes are seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Image,
    Text,
}

/// Reads every attachment through `platform` (downloads run side by side).
pub async fn read_all(
    attachments: &[Attachment],
    platform: &dyn Platform,
    limits: AttachmentLimits,
    images: &ImageSupport,
) -> Read {
    let reads = attachments
        .iter()
        .map(|a| read_one(a, platform, limits, images));
    let mut read = Read::default();
    for result in join_all(reads).await {
        match result {
            Ok(file) => read.files.push(file),
            Err(problem) if !read.problems.contains(&problem) => read.problems.push(problem),
            Err(_) => {}
        }
    }
    read
}

async fn read_one(
    attachment: &Attachment,
    platform: &dyn Platform,
    limits: AttachmentLimits,
    images: &ImageSupport,
) -> Result<StoredFile, String> {
    let expect = expect(attachment)?;
    if expect == Expect::Image {
        images.check()?;
    }
    let cap = match expect {
        Expect::Image => limits.max_image_bytes,
        Expect::Text => limits.max_text_bytes,
    };
    let name = &attachment.name;
    if let Some(size) = attachment.size.filter(|size| *size > cap) {
        return Err(too_large(name, expect, Some(size), cap));
    }
    let data = match platform.fetch(&attachment.source, cap).await {
        Ok(data) => data,
        // The platform's own limit may be lower than ours.
        Err(FetchError::TooLarge(limit)) => {
            return Err(too_large(name, expect, None, limit.min(cap)));
        }
        Err(FetchError::Unsupported) => return Err("Files cannot be read here.".into()),
        Err(FetchError::Failed(why)) => {
            tracing::warn!(%why, "could not download an attachment");
            return Err(format!(
                "I could not download {name} — please send it again."
            ));
        }
    };
    if data.len() as u64 > cap {
        return Err(too_large(name, expect, Some(data.len() as u64), cap));
    }
    if let Some(kind) = ImageType::sniff(&data) {
        images.check()?;
        return Ok(StoredFile::image(name.clone(), kind, data));
    }
    if expect == Expect::Image {
        return Err(format!(
            "{name} is not an image I can read (PNG, JPEG, WebP or GIF)."
        ));
    }
    match sniff::text(&data) {
        Some(text) => Ok(StoredFile::text(name.clone(), text)),
        None => Err(format!(
            "I can't read {name}: I read images and UTF-8 text files."
        )),
    }
}

fn too_large(name: &str, expect: Expect, size: Option<u64>, cap: u64) -> String {
    let what = match expect {
        Expect::Image => "images",
        Expect::Text => "text files",
    };
    let size = size.map_or(String::new(), |s| format!("{}; ", human_size(s)));
    format!(
        "{name} is too large ({size}I read {what} up to {}) — send a smaller file.",
        human_size(cap)
    )
}

/// What an attachment should be, by the platform's word, its MIME type and its name; a kind
/// Parley does not read is the problem's line.
fn expect(attachment: &Attachment) -> Result<Expect, String> {
    let refused = |what: &str| format!("I can't read {what} — send text, an image or a text file.");
    match attachment.kind {
        AttachmentKind::Photo => return Ok(Expect::Image),
        AttachmentKind::Unreadable(what) => return Err(refused(what)),
        AttachmentKind::File => {}
    }
    let mime = attachment
        .mime
        .as_deref()
        .unwrap_or("")
        .to_ascii_lowercase();
    let extension = attachment
        .name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    if let Some(what) = unread_kind(&mime, &extension) {
        return Err(refused(what));
    }
    let image_mime = mime.starts_with("image/") && mime != "image/svg+xml";
    // Other image types too: refused by their bytes as images, not as long texts.
    let image_name = matches!(
        extension.as_str(),
        "png" | "jpg" | "jpeg" | "webp" | "gif" | "heic" | "heif" | "avif" | "bmp" | "tif" | "tiff"
    );
    Ok(if image_mime || image_name {
        Expect::Image
    } else {
        Expect::Text
    })
}

/// The kinds of file refused without downloading them, by MIME type or extension.
fn unread_kind(mime: &str, extension: &str) -> Option<&'static str> {
    let (top, sub) = mime.split_once('/').unwrap_or((mime, ""));
    match (top, sub, extension) {
        ("audio", ..) | (_, _, "mp3" | "ogg" | "oga" | "opus" | "wav" | "m4a" | "flac") => {
            Some("audio files")
        }
        ("video", ..) | (_, _, "mp4" | "mov" | "webm" | "mkv" | "avi") => Some("videos"),
        (_, "pdf", _) | (_, _, "pdf") => Some("PDF files"),
        (_, "zip" | "gzip" | "x-tar" | "x-7z-compressed" | "vnd.rar" | "x-rar-compressed", _)
        | (_, _, "zip" | "gz" | "tgz" | "tar" | "7z" | "rar" | "bz2" | "xz" | "zst") => {
            Some("archives")
        }
        (_, _, "docx" | "xlsx" | "pptx" | "odt" | "ods" | "doc" | "xls") => {
            Some("office documents")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
