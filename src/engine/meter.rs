//! What the engine counts, as a small port of its own: the engine says what happened, an
//! implementation outside it (the crate's metrics module, over Prometheus) records it. One meter serves the
//! whole process, as one metrics registry does; until one is installed nothing is recorded.

use std::sync::OnceLock;
use std::time::Duration;

use super::event::PlatformKind;
use super::ports::{ReplyStatus, Usage};

/// A platform call, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// A new message.
    Send,
    /// An edit of a message.
    Edit,
    /// The typing indicator.
    Typing,
}

impl CallKind {
    /// Every kind, for series known in advance.
    pub const ALL: [CallKind; 3] = [Self::Send, Self::Edit, Self::Typing];

    /// The kind's label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Edit => "edit",
            Self::Typing => "typing",
        }
    }
}

/// Records what the engine counts. Every method is cheap and never fails; the defaults record
/// nothing.
pub trait Meter: Send + Sync {
    /// An inbound message was queued.
    fn incoming(&self, _platform: PlatformKind) {}
    /// The dispatcher's shared queue holds `depth` messages.
    fn queue_depth(&self, _depth: usize) {}
    /// A reply started streaming.
    fn stream_started(&self) {}
    /// A reply stopped streaming, however it ended.
    fn stream_ended(&self) {}
    /// A reply's first text became visible `after` the model was asked.
    fn first_token(&self, _platform: PlatformKind, _after: Duration) {}
    /// A reply ended with `status` after `took`, having used `usage`.
    fn reply_finished(
        &self,
        _platform: PlatformKind,
        _status: ReplyStatus,
        _took: Duration,
        _usage: &Usage,
    ) {
    }
    /// A completion failed with an error of this `kind` (see `ModelError::kind`).
    fn completion_error(&self, _kind: &'static str) {}
    /// A call was made to a platform.
    fn platform_call(&self, _platform: PlatformKind, _kind: CallKind) {}
    /// The platform answered a call with 429, asking to wait `retry_after`.
    fn rate_limited(&self, _platform: PlatformKind, _kind: CallKind, _retry_after: Duration) {}
    /// A call waited behind others for the bot-wide budget (a preview), or was skipped while
    /// others waited (typing).
    fn deferred(&self, _platform: PlatformKind, _kind: CallKind) {}
}

/// Records nothing.
struct Silent;

impl Meter for Silent {}

static METER: OnceLock<&'static dyn Meter> = OnceLock::new();

/// Makes `meter` the process's meter; false when one was installed already (the first stays).
pub fn install(meter: &'static dyn Meter) -> bool {
    METER.set(meter).is_ok()
}

/// The process's meter: the installed one, or one that records nothing.
pub fn meter() -> &'static dyn Meter {
    METER.get().copied().unwrap_or(&Silent)
}

/// Counts a reply as streaming until dropped.
#[derive(Debug)]
pub struct Streaming(());

impl Streaming {
    /// Counts a reply as streaming.
    pub fn start() -> Self {
        meter().stream_started();
        Self(())
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        meter().stream_ended();
    }
}
