//! What the fake completion server answers to one request: a streamed reply shaped by the test,
//! or an error status with headers and body.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Holds the first read of the streams given it until the test opens it: replies whose first
/// tokens come together, however the requests were spread.
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<(AtomicBool, Notify)>);

impl Gate {
    /// Lets every stream held, and every later one, go on.
    pub fn open(&self) {
        self.0.0.store(true, Ordering::SeqCst);
        self.0.1.notify_waiters();
    }

    /// Waits until the gate is open.
    pub(super) async fn passed(&self) {
        loop {
            // Registered before the check: an `open` in between still wakes it.
            let opened = self.0.1.notified();
            if self.0.0.load(Ordering::SeqCst) {
                return;
            }
            opened.await;
        }
    }
}

/// How a streamed reply ends.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// Finish reason, usage (when asked for), then `data: [DONE]`.
    Done,
    /// Finish reason and usage, then the body closes without `[DONE]`.
    NoDone,
    /// The content, then the body closes: no finish reason, no usage, no `[DONE]`.
    NoFinish,
    /// After this many content chunks, a `data: {"error":..}` line, then the body closes.
    ErrorAfter(usize, String),
    /// After this many content chunks, nothing more is sent and the connection stays open.
    StallAfter(usize),
    /// After this many content chunks, the connection is cut mid-body.
    AbortAfter(usize),
}

/// One scripted answer, built with the methods below; `Script::reply` for a streamed (or, when
/// the request says `stream: false`, whole JSON) answer, `Script::status` for an error.
#[derive(Debug, Clone)]
pub struct Script {
    pub(super) status: Option<StatusReply>,
    pub(super) text: String,
    pub(super) chunk_chars: usize,
    pub(super) delay: Duration,
    pub(super) pings: bool,
    pub(super) crlf: bool,
    pub(super) split_at: Vec<usize>,
    pub(super) multiline: bool,
    pub(super) thinking: Vec<String>,
    pub(super) empty_deltas: usize,
    pub(super) finish_reason: String,
    pub(super) cached_tokens: u64,
    pub(super) reasoning_tokens: u64,
    pub(super) end: End,
    /// The texts of choices 1.. when a request asks for `n` above 1.
    pub(super) others: Vec<String>,
    /// Holds the first read until it opens.
    pub(super) gate: Option<Gate>,
}

/// An error answer: status, extra headers, body.
#[derive(Debug, Clone)]
pub(super) struct StatusReply {
    pub code: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub content_type: &'static str,
}

impl Script {
    /// A reply streaming `text` in chunks of 4 characters, finishing with `stop`.
    pub fn reply(text: impl Into<String>) -> Self {
        Self {
            status: None,
            text: text.into(),
            chunk_chars: 4,
            delay: Duration::ZERO,
            pings: false,
            crlf: false,
            split_at: Vec::new(),
            multiline: false,
            thinking: Vec::new(),
            empty_deltas: 0,
            finish_reason: "stop".into(),
            cached_tokens: 0,
            reasoning_tokens: 0,
            end: End::Done,
            others: Vec::new(),
            gate: None,
        }
    }

    /// The texts of choices 1, 2, … a request asking for `n` above 1 gets (a choice the script
    /// does not name answers `<text> (choice i)`); a request without `n` gets only choice 0.
    pub fn others(mut self, texts: &[&str]) -> Self {
        self.others = texts.iter().map(|t| t.to_string()).collect();
        self
    }

    /// An error answer with this status and a raw body (JSON content type).
    pub fn status(code: u16, body: impl Into<String>) -> Self {
        let status = StatusReply {
            code,
            headers: Vec::new(),
            body: body.into(),
            content_type: "application/json",
        };
        Self {
            status: Some(status),
            ..Self::reply("")
        }
    }

    /// An OpenAI-shaped error: `{"error":{"message","type","code"}}`.
    pub fn openai_error(code: u16, message: &str, kind: &str, error_code: &str) -> Self {
        let body = serde_json::json!({
            "error": { "message": message, "type": kind, "param": null, "code": error_code }
        });
        Self::status(code, body.to_string())
    }

    /// An xAI-shaped error: `{"code":"..","error":".."}`.
    pub fn xai_error(code: u16, error_code: &str, message: &str) -> Self {
        let body = serde_json::json!({ "code": error_code, "error": message });
        Self::status(code, body.to_string())
    }

    /// A gateway's HTML error page.
    pub fn html(code: u16) -> Self {
        let body = format!(
            "<html><head><title>{code} Bad Gateway</title></head><body><center><h1>{code} Bad \
             Gateway</h1></center><hr><center>nginx</center></body></html>"
        );
        let mut script = Self::status(code, body);
        if let Some(status) = &mut script.status {
            status.content_type = "text/html";
        }
        script
    }

    /// A 429 with an OpenAI-shaped body; add `header("retry-after", ..)` as needed.
    pub fn rate_limited() -> Self {
        Self::openai_error(429, "Rate limit reached", "requests", "rate_limit_exceeded")
    }

    /// Adds a response header (error answers).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Some(status) = &mut self.status {
            status.headers.push((name.into(), value.into()));
        }
        self
    }

    /// Content chunks of this many characters.
    pub fn chunk_chars(mut self, chars: usize) -> Self {
        self.chunk_chars = chars.max(1);
        self
    }

    /// The first read waits until `gate` opens (the status and headers go at once).
    pub fn after(mut self, gate: &Gate) -> Self {
        self.gate = Some(gate.clone());
        self
    }

    /// A pause before every read after the first.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// A `: ping` comment before every event.
    pub fn pings(mut self) -> Self {
        self.pings = true;
        self
    }

    /// CRLF line endings.
    pub fn crlf(mut self) -> Self {
        self.crlf = true;
        self
    }

    /// Sends the body as reads cut at these byte offsets (may cut an event or a UTF-8 char).
    pub fn split_at(mut self, offsets: &[usize]) -> Self {
        self.split_at = offsets.to_vec();
        self
    }

    /// Each event's JSON pretty-printed over several `data:` lines.
    pub fn multiline_data(mut self) -> Self {
        self.multiline = true;
        self
    }

    /// `delta.reasoning_content` chunks before the content.
    pub fn thinking(mut self, parts: &[&str]) -> Self {
        self.thinking = parts.iter().map(|p| p.to_string()).collect();
        self
    }

    /// Empty deltas before the content, as grok-4 sends while it thinks.
    pub fn empty_deltas(mut self, count: usize) -> Self {
        self.empty_deltas = count;
        self
    }

    /// The finish reason of the last chunk.
    pub fn finish_reason(mut self, reason: &str) -> Self {
        self.finish_reason = reason.into();
        self
    }

    /// Cached prompt tokens reported in the usage chunk.
    pub fn cached_tokens(mut self, tokens: u64) -> Self {
        self.cached_tokens = tokens;
        self
    }

    /// Reasoning tokens reported in the usage chunk.
    pub fn reasoning_tokens(mut self, tokens: u64) -> Self {
        self.reasoning_tokens = tokens;
        self
    }

    /// How the stream ends.
    pub fn end(mut self, end: End) -> Self {
        self.end = end;
        self
    }
}
