//! The terminal platform behind `parley chat`: replies stream to stdout as they arrive; files
//! given with `/attach PATH` are read from the local disk.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

use crate::engine::attachment::{Attachment, AttachmentKind, FileRef};
use crate::engine::event::{ChatKey, MessageRef, PlatformKind};
use crate::engine::ports::{FetchError, Limits, Phase, Platform, PlatformError};

/// Writes replies to a terminal (or any writer), appending as the text grows.
pub struct ConsolePlatform {
    out: Mutex<Output>,
    next_id: AtomicU64,
}

struct Output {
    writer: Box<dyn AsyncWrite + Send + Unpin>,
    /// What each message has printed so far.
    shown: HashMap<MessageRef, String>,
}

impl ConsolePlatform {
    /// A console writing to stdout.
    pub fn stdout() -> Self {
        Self::new(Box::new(tokio::io::stdout()))
    }

    /// A console writing to `writer`.
    pub fn new(writer: Box<dyn AsyncWrite + Send + Unpin>) -> Self {
        Self {
            out: Mutex::new(Output {
                writer,
                shown: HashMap::new(),
            }),
            next_id: AtomicU64::new(1),
        }
    }
}

impl Output {
    /// Prints what `text` adds to what `message` shows; a text that is not an extension (a
    /// placeholder replaced by the answer) starts on a fresh line.
    async fn show(
        &mut self,
        message: &MessageRef,
        text: &str,
        phase: Phase,
    ) -> std::io::Result<()> {
        let shown = self.shown.entry(message.clone()).or_default();
        let addition = match text.strip_prefix(shown.as_str()) {
            Some(rest) => rest.to_string(),
            None => format!("\n{text}"),
        };
        *shown = text.to_string();
        if phase == Phase::Final {
            self.shown.remove(message);
        }
        self.writer.write_all(addition.as_bytes()).await?;
        if phase == Phase::Final {
            self.writer.write_all(b"\n").await?;
        }
        self.writer.flush().await
    }
}

/// The attachment `/attach PATH` adds to the next message: the file at `path`, which must exist.
pub async fn attachment(path: &str) -> Result<Attachment, String> {
    let metadata = tokio::fs::metadata(path).await;
    let metadata = metadata.map_err(|e| format!("cannot read {path}: {e}"))?;
    if !metadata.is_file() {
        return Err(format!("{path} is not a file"));
    }
    let name = std::path::Path::new(path)
        .file_name()
        .map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned());
    Ok(Attachment {
        name,
        kind: AttachmentKind::File,
        mime: None,
        size: Some(metadata.len()),
        source: FileRef::new(path),
    })
}

fn io_error(error: std::io::Error) -> PlatformError {
    PlatformError::Unavailable(format!("terminal: {error}"))
}

#[async_trait]
impl Platform for ConsolePlatform {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Console
    }

    fn limits(&self, _chat: &ChatKey) -> Limits {
        Limits::unpaced(1 << 20, Duration::from_secs(3600))
    }

    async fn send(
        &self,
        _chat: &ChatKey,
        _reply_to: Option<&MessageRef>,
        text: &str,
        phase: Phase,
    ) -> Result<MessageRef, PlatformError> {
        let id = MessageRef::new(self.next_id.fetch_add(1, Ordering::Relaxed).to_string());
        let mut out = self.out.lock().await;
        out.show(&id, text, phase).await.map_err(io_error)?;
        Ok(id)
    }

    async fn edit(
        &self,
        _chat: &ChatKey,
        message: &MessageRef,
        text: &str,
        phase: Phase,
    ) -> Result<MessageRef, PlatformError> {
        let mut out = self.out.lock().await;
        out.show(message, text, phase).await.map_err(io_error)?;
        Ok(message.clone())
    }

    async fn typing(&self, _chat: &ChatKey) -> Result<(), PlatformError> {
        Ok(())
    }

    /// `file` is a local path; more than `limit` bytes is refused while reading.
    async fn fetch(&self, file: &FileRef, limit: u64) -> Result<Vec<u8>, FetchError> {
        let failed = |e: std::io::Error| FetchError::Failed(e.to_string());
        let opened = tokio::fs::File::open(file.as_str()).await.map_err(failed)?;
        let mut data = Vec::new();
        let mut reader = opened.take(limit.saturating_add(1));
        reader.read_to_end(&mut data).await.map_err(failed)?;
        match data.len() as u64 > limit {
            true => Err(FetchError::TooLarge(limit)),
            false => Ok(data),
        }
    }
}
