//! Attachments: what an adapter says a message brings along ([`Attachment`]), and the files the
//! engine read from them ([`StoredFile`]: an image or a UTF-8 text, stored once by content).

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};

pub mod read;
mod sniff;

pub use sniff::ImageType;

/// Where a platform can fetch an attachment's bytes: a Telegram file id, a Discord attachment
/// URL, a local path for `parley chat`. Only the platform that made it reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct FileRef(String);

impl FileRef {
    /// Wraps a platform's handle of a file.
    pub fn new(handle: impl Into<String>) -> Self {
        Self(handle.into())
    }

    /// The handle as the platform wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A handle may be a signed URL: never printed.
impl fmt::Debug for FileRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileRef(..)")
    }
}

/// What the platform says a file is, before anything is downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentKind {
    /// A photo: an image by the platform's word (Telegram compresses photos to JPEG).
    Photo,
    /// A file: an image or a text file, as its type, its name and then its bytes say.
    File,
    /// A kind Parley does not read; the plural noun for the notice ("voice messages").
    Unreadable(&'static str),
}

/// One file a message brings along, as its platform describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The file name the user sees ("photo.jpg" for a photo without one).
    pub name: String,
    /// What the platform says it is.
    pub kind: AttachmentKind,
    /// The MIME type the platform reports, if any.
    pub mime: Option<String>,
    /// The size in bytes the platform reports, if any: checked before downloading.
    pub size: Option<u64>,
    /// Where the platform fetches it.
    pub source: FileRef,
}

/// The content of a file the engine read.
#[derive(Clone, PartialEq, Eq)]
pub enum FileContent {
    /// An image of a type the model reads.
    Image {
        /// Its type, from its first bytes.
        kind: ImageType,
        /// The file's bytes, exactly as downloaded (shared, never copied per turn).
        data: Bytes,
    },
    /// A UTF-8 text file (a byte-order mark removed).
    Text(Arc<str>),
}

/// The bytes are left out: an image's can be megabytes.
impl fmt::Debug for FileContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Image { kind, data } => write!(f, "Image({kind:?}, {} bytes)", data.len()),
            Self::Text(text) => write!(f, "Text({} bytes)", text.len()),
        }
    }
}

/// A file of a user message: read once, stored once by content, sent the same way every turn.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// The name the user gave it.
    pub name: String,
    /// What it holds.
    pub content: FileContent,
}

impl StoredFile {
    /// An image file.
    pub fn image(name: impl Into<String>, kind: ImageType, data: impl Into<Bytes>) -> Self {
        Self {
            name: name.into(),
            content: FileContent::Image {
                kind,
                data: data.into(),
            },
        }
    }

    /// A text file.
    pub fn text(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            content: FileContent::Text(text.into()),
        }
    }

    /// True for an image.
    pub fn is_image(&self) -> bool {
        matches!(self.content, FileContent::Image { .. })
    }

    /// The stored bytes: the image's, or the text's UTF-8.
    pub fn bytes(&self) -> &[u8] {
        match &self.content {
            FileContent::Image { data, .. } => data,
            FileContent::Text(text) => text.as_bytes(),
        }
    }

    /// The MIME type stored with it.
    pub fn mime(&self) -> &'static str {
        match &self.content {
            FileContent::Image { kind, .. } => kind.mime(),
            FileContent::Text(_) => "text/plain",
        }
    }

    /// The content's address: the SHA-256 of [`StoredFile::bytes`], in hex.
    pub fn digest(&self) -> String {
        Sha256::digest(self.bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The bytes are left out: an image's can be megabytes.
impl fmt::Debug for StoredFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredFile")
            .field("name", &self.name)
            .field("mime", &self.mime())
            .field("bytes", &self.bytes().len())
            .finish()
    }
}

/// A size for a chat line: "12.5 MB", "300 KB", "17 bytes" (binary units, as the limits are).
pub fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    match bytes {
        b if b >= MIB => {
            let tenths = (b * 10).div_ceil(MIB);
            match tenths % 10 {
                0 => format!("{} MB", tenths / 10),
                rest => format!("{}.{rest} MB", tenths / 10),
            }
        }
        b if b >= KIB => format!("{} KB", b.div_ceil(KIB)),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_files_address_is_the_sha256_of_its_bytes() {
        let file = StoredFile::text("a.txt", "abc");
        assert_eq!(
            file.digest(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            StoredFile::image("x.png", ImageType::Png, b"abc".to_vec()).digest(),
            file.digest()
        );
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human_size(10 * 1024 * 1024), "10 MB");
        assert_eq!(human_size(12 * 1024 * 1024 + 1), "12.1 MB");
        assert_eq!(human_size(256 * 1024), "256 KB");
        assert_eq!(human_size(17), "17 bytes");
    }

    #[test]
    fn debug_output_shows_no_bytes_and_no_handle() {
        let file = StoredFile::text("secret.txt", "the content");
        assert!(!format!("{file:?}").contains("the content"));
        let handle = FileRef::new("https://x/file/bot123:abc/photo.jpg");
        assert_eq!(format!("{handle:?}"), "FileRef(..)");
    }
}
